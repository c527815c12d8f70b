// Optimizer<T>: a value that holds any of latent's optimizers, chosen at run time (from code, a
// config or a file). Implicitly constructible from each: `Optimizer<float> opt = Adam<float>(1e-3);`.
// Saving type() + config() + state() and rebuilding with from_config() and the same state
// continues training exactly where it stopped.
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "adadelta.hpp"
#include "adam.hpp"
#include "rmsprop.hpp"
#include "sgd.hpp"
#include "state.hpp"

namespace latent {

template <class T = float> class Optimizer {
public:
    using Scalar = T;
    using Variant = std::variant<SGD<T>, Adam<T>, AdamW<T>, RMSprop<T>, Adadelta<T>>;

    Optimizer() : optimizer_(Adam<T>()) {}  // Adam with PyTorch's defaults
    template <class X, class = std::enable_if_t<!std::is_same_v<std::decay_t<X>, Optimizer> &&
                                                std::is_constructible_v<Variant, X>>>
    Optimizer(X optimizer) : optimizer_(std::move(optimizer)) {}  // NOLINT: implicit by design

    // One update of every parameter from its gradient (see each optimizer's header).
    void step(const std::vector<Parameter<T>>& parameters) {
        std::visit([&](auto& optimizer) { optimizer.step(parameters); }, optimizer_);
    }

    double learning_rate() const {
        return std::visit([](const auto& optimizer) { return optimizer.learning_rate(); }, optimizer_);
    }
    void set_learning_rate(double lr) {
        std::visit([lr](auto& optimizer) { optimizer.set_learning_rate(lr); }, optimizer_);
    }

    OptimizerState<T>& state() {
        return std::visit([](auto& optimizer) -> OptimizerState<T>& { return optimizer.state(); },
                          optimizer_);
    }
    const OptimizerState<T>& state() const {
        return std::visit(
            [](const auto& optimizer) -> const OptimizerState<T>& { return optimizer.state(); },
            optimizer_);
    }

    std::string type() const {
        return std::visit(
            [](const auto& optimizer) -> std::string { return std::decay_t<decltype(optimizer)>::type_name; },
            optimizer_);
    }
    Config config() const {
        return std::visit([](const auto& optimizer) { return optimizer.config(); }, optimizer_);
    }

    // The optimizer named `type` (a type_name) with its configuration and a fresh state;
    // FormatError for an unknown type.
    static Optimizer from_config(const std::string& type, const Config& config) {
        if (type == SGD<T>::type_name) return SGD<T>::from_config(config);
        if (type == Adam<T>::type_name) return Adam<T>::from_config(config);
        if (type == AdamW<T>::type_name) return AdamW<T>::from_config(config);
        if (type == RMSprop<T>::type_name) return RMSprop<T>::from_config(config);
        if (type == Adadelta<T>::type_name) return Adadelta<T>::from_config(config);
        throw FormatError("unknown optimizer type '" + type +
                          "' (known: SGD, Adam, AdamW, RMSprop, Adadelta)");
    }

    // The held optimizer if it is an X, else nullptr.
    template <class X> X* get() { return std::get_if<X>(&optimizer_); }
    template <class X> const X* get() const { return std::get_if<X>(&optimizer_); }

private:
    Variant optimizer_;
};

}  // namespace latent
