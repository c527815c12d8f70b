// Loss<T>: a value that holds any of latent's losses, chosen at run time (from code, a config
// or a file). Implicitly constructible from each loss: `Loss<float> loss = L1<float>();`.
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "bce.hpp"
#include "l1.hpp"
#include "mse.hpp"
#include "sse.hpp"

namespace latent {

template <class T = float> class Loss {
public:
    using Scalar = T;
    using Variant = std::variant<MeanSquaredError<T>, SumSquaredError<T>, BinaryCrossEntropy<T>, L1<T>>;

    Loss() = default;  // MeanSquaredError
    template <class L, class = std::enable_if_t<!std::is_same_v<std::decay_t<L>, Loss> &&
                                                std::is_constructible_v<Variant, L>>>
    Loss(L loss) : loss_(std::move(loss)) {}  // NOLINT: implicit by design

    // See each loss's header for the formula.
    double compute(ConstTensorView<T> prediction, ConstTensorView<T> target, TensorView<T> grad) const {
        return std::visit([&](const auto& loss) { return loss.compute(prediction, target, grad); }, loss_);
    }
    void per_sample(ConstTensorView<T> prediction, ConstTensorView<T> target, T* out) const {
        std::visit([&](const auto& loss) { loss.per_sample(prediction, target, out); }, loss_);
    }

    // The loss of a Sigmoid's output with the gradient with respect to the Sigmoid's input
    // (see bce.hpp). ArgumentError for losses that do not fuse with Sigmoid.
    double compute_from_sigmoid(ConstTensorView<T> probability, ConstTensorView<T> target,
                                TensorView<T> grad_logits) const {
        return std::visit(
            [&](const auto& loss) -> double {
                using Held = std::decay_t<decltype(loss)>;
                if constexpr (Held::fuses_with_sigmoid) {
                    return loss.compute_from_sigmoid(probability, target, grad_logits);
                } else {
                    throw ArgumentError(std::string(Held::type_name) +
                                        ": compute_from_sigmoid is only defined for losses that "
                                        "fuse with a final Sigmoid (BinaryCrossEntropy)");
                }
            },
            loss_);
    }

    // True when the value is a mean over elements, false when a sum.
    bool averages() const {
        return std::visit([](const auto& loss) { return std::decay_t<decltype(loss)>::averages; }, loss_);
    }
    bool fuses_with_sigmoid() const {
        return std::visit([](const auto& loss) { return std::decay_t<decltype(loss)>::fuses_with_sigmoid; },
                          loss_);
    }
    std::string type() const {
        return std::visit([](const auto& loss) -> std::string { return std::decay_t<decltype(loss)>::type_name; },
                          loss_);
    }
    Config config() const {
        return std::visit([](const auto& loss) { return loss.config(); }, loss_);
    }

    // The loss named `type` (a type_name) with its configuration; FormatError for an unknown type.
    static Loss from_config(const std::string& type, const Config& config) {
        if (type == MeanSquaredError<T>::type_name) return MeanSquaredError<T>::from_config(config);
        if (type == SumSquaredError<T>::type_name) return SumSquaredError<T>::from_config(config);
        if (type == BinaryCrossEntropy<T>::type_name) return BinaryCrossEntropy<T>::from_config(config);
        if (type == L1<T>::type_name) return L1<T>::from_config(config);
        throw FormatError("unknown loss type '" + type +
                          "' (known: MeanSquaredError, SumSquaredError, BinaryCrossEntropy, L1)");
    }

    // The held loss if it is an L, else nullptr.
    template <class L> L* get() { return std::get_if<L>(&loss_); }
    template <class L> const L* get() const { return std::get_if<L>(&loss_); }

private:
    Variant loss_;
};

}  // namespace latent
