// Loss<T>: a value that holds any loss -- latent's or a user's -- chosen at run time (from code,
// a config or a file). Implicitly constructible from each: `Loss<float> loss = L1<float>();`.
//
// A loss type L provides
//   using Scalar = T;
//   static constexpr const char* type_name = "MyLoss";
//   double compute(ConstTensorView<T> prediction, ConstTensorView<T> target,
//                  TensorView<T> grad) const;          // the value; grad = dvalue/dprediction
// and optionally
//   Reduction reduction() const;     // how the value is formed (mse.hpp); without it fit()
//                                    // never passes a batch through in slices
//   double compute_on_logits(ConstTensorView<T> probability, ConstTensorView<T> target,
//                            TensorView<T> grad_logits) const;
//                                    // the same value, with the gradient taken with respect to
//                                    // the logits of a final Sigmoid (fit() uses it whenever a
//                                    // model's output passes through one)
//   void per_sample(ConstTensorView<T> prediction, ConstTensorView<T> target, T* out) const;
//   Config config() const;  static L from_config(const Config&);
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "../core/meta.hpp"
#include "bce.hpp"
#include "l1.hpp"
#include "mse.hpp"
#include "sse.hpp"

namespace latent {
namespace detail {

template <class L> using reduction_op = decltype(Reduction{std::declval<const L&>().reduction()});
template <class L, class T>
using on_logits_op = decltype(double{std::declval<const L&>().compute_on_logits(
    std::declval<ConstTensorView<T>>(), std::declval<ConstTensorView<T>>(), std::declval<TensorView<T>>())});
template <class L, class T>
using per_sample_op = decltype(std::declval<const L&>().per_sample(std::declval<ConstTensorView<T>>(),
                                                                   std::declval<ConstTensorView<T>>(),
                                                                   std::declval<T*>()));

}  // namespace detail

template <class T = float> class Loss {
public:
    using Scalar = T;

    Loss() : Loss(MeanSquaredError<T>()) {}
    template <class L, class = std::enable_if_t<!std::is_same_v<std::decay_t<L>, Loss>>>
    Loss(L loss) : self_(std::make_shared<const Holder<L>>(std::move(loss))) {  // NOLINT: implicit by design
        static_assert(std::is_same_v<typename L::Scalar, T>, "a loss's scalar type must match the model's");
    }

    // See each loss's header for the formula.
    double compute(ConstTensorView<T> prediction, ConstTensorView<T> target, TensorView<T> grad) const {
        return self_->compute(prediction, target, grad);
    }
    // Whether compute_on_logits is defined; ArgumentError from it otherwise.
    bool has_logits_gradient() const { return self_->has_logits_gradient(); }
    double compute_on_logits(ConstTensorView<T> probability, ConstTensorView<T> target, TensorView<T> grad_logits) const {
        return self_->compute_on_logits(probability, target, grad_logits);
    }
    // The loss's Reduction, or none when it does not say.
    std::optional<Reduction> reduction() const { return self_->reduction(); }
    void per_sample(ConstTensorView<T> prediction, ConstTensorView<T> target, T* out) const {
        self_->per_sample(prediction, target, out);
    }
    std::string type() const { return self_->type(); }
    Config config() const { return self_->config(); }

    // The held loss if it is an L, else nullptr.
    template <class L> const L* get() const {
        const auto* holder = dynamic_cast<const Holder<L>*>(self_.get());
        return holder ? &holder->loss : nullptr;
    }

private:
    struct Interface {
        virtual ~Interface() = default;
        virtual double compute(ConstTensorView<T> p, ConstTensorView<T> t, TensorView<T> grad) const = 0;
        virtual bool has_logits_gradient() const = 0;
        virtual double compute_on_logits(ConstTensorView<T> p, ConstTensorView<T> t, TensorView<T> grad) const = 0;
        virtual std::optional<Reduction> reduction() const = 0;
        virtual void per_sample(ConstTensorView<T> p, ConstTensorView<T> t, T* out) const = 0;
        virtual std::string type() const = 0;
        virtual Config config() const = 0;
    };

    template <class L> struct Holder final : Interface {
        explicit Holder(L held) : loss(std::move(held)) {}
        double compute(ConstTensorView<T> p, ConstTensorView<T> t, TensorView<T> grad) const override {
            return loss.compute(p, t, grad);
        }
        bool has_logits_gradient() const override { return detail::is_detected<detail::on_logits_op, L, T>; }
        double compute_on_logits(ConstTensorView<T> p, ConstTensorView<T> t, TensorView<T> grad) const override {
            if constexpr (detail::is_detected<detail::on_logits_op, L, T>) return loss.compute_on_logits(p, t, grad);
            else (void)p, (void)t, (void)grad, throw ArgumentError(std::string(L::type_name) + " has no gradient on the logits");
        }
        std::optional<Reduction> reduction() const override {
            if constexpr (detail::is_detected<detail::reduction_op, L>) return loss.reduction();
            else return std::nullopt;
        }
        void per_sample(ConstTensorView<T> p, ConstTensorView<T> t, T* out) const override {
            if constexpr (detail::is_detected<detail::per_sample_op, L, T>) loss.per_sample(p, t, out);
            else (void)p, (void)t, (void)out, throw ArgumentError(std::string(L::type_name) + " has no per-sample form");
        }
        std::string type() const override { return L::type_name; }
        Config config() const override {
            if constexpr (detail::is_detected<detail::config_op, L>) return loss.config();
            else return Config{};
        }
        L loss;
    };

    std::shared_ptr<const Interface> self_;  // immutable: copies share it
};

}  // namespace latent
