// Optimizer<T>: a value that holds any optimizer -- latent's or a user's -- so a checkpoint can
// name it and a loader can rebuild it (io/registry.hpp). fit() takes any optimizer type
// directly; Optimizer<T> is what a loaded checkpoint hands back.
//
// An optimizer type O provides
//   using Scalar = T;
//   static constexpr const char* type_name = "MyOptimizer";    // unique; stored in checkpoints
//   void step(const std::vector<Parameter<T>>& parameters);    // one update from the gradients
//   OptimizerState<T>& state();  const OptimizerState<T>& state() const;
//                               // everything it learns while it runs (step count, moments):
//                               // no other member may affect an update
//   Config config() const;  static O from_config(const Config&);   // its hyper-parameters
// and, for learning-rate schedules,
//   double learning_rate() const;  void set_learning_rate(double lr);
// Saving type_name + config() + state() and rebuilding with from_config() and the same state
// continues training bit-identically.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/meta.hpp"
#include "adadelta.hpp"
#include "adam.hpp"
#include "rmsprop.hpp"
#include "sgd.hpp"
#include "state.hpp"

namespace latent {
namespace detail {

template <class O> using learning_rate_op = decltype(double{std::declval<const O&>().learning_rate()});
template <class O> using type_op = decltype(std::string{std::declval<const O&>().type()});

// The name an optimizer is saved under: type() of a wrapper, else O::type_name.
template <class O> std::string optimizer_type(const O& optimizer) {
    if constexpr (is_detected<type_op, O>) return optimizer.type();
    else return O::type_name;
}

}  // namespace detail

template <class T = float> class Optimizer {
public:
    using Scalar = T;

    Optimizer() : Optimizer(Adam<T>()) {}  // Adam with PyTorch's defaults
    template <class O, class = std::enable_if_t<!std::is_same_v<std::decay_t<O>, Optimizer>>>
    Optimizer(O optimizer) : self_(std::make_unique<Holder<O>>(std::move(optimizer))) {  // NOLINT: implicit
        static_assert(std::is_same_v<typename O::Scalar, T>, "an optimizer's scalar type must match the model's");
    }
    Optimizer(const Optimizer& other) : self_(other.self_->clone()) {}
    Optimizer(Optimizer&&) noexcept = default;
    Optimizer& operator=(const Optimizer& other) {
        if (this != &other) self_ = other.self_->clone();
        return *this;
    }
    Optimizer& operator=(Optimizer&&) noexcept = default;

    // One update of every parameter from its gradient (see each optimizer's header).
    void step(const std::vector<Parameter<T>>& parameters) { self_->step(parameters); }

    // ArgumentError for an optimizer without a learning rate.
    double learning_rate() const { return self_->learning_rate(); }
    void set_learning_rate(double lr) { self_->set_learning_rate(lr); }

    OptimizerState<T>& state() { return self_->state(); }
    const OptimizerState<T>& state() const { return std::as_const(*self_).state(); }
    std::string type() const { return self_->type(); }
    Config config() const { return self_->config(); }

    // The held optimizer if it is an O, else nullptr.
    template <class O> O* get() {
        auto* holder = dynamic_cast<Holder<O>*>(self_.get());
        return holder ? &holder->optimizer : nullptr;
    }
    template <class O> const O* get() const {
        const auto* holder = dynamic_cast<const Holder<O>*>(self_.get());
        return holder ? &holder->optimizer : nullptr;
    }

private:
    struct Interface {
        virtual ~Interface() = default;
        virtual std::unique_ptr<Interface> clone() const = 0;
        virtual void step(const std::vector<Parameter<T>>& parameters) = 0;
        virtual double learning_rate() const = 0;
        virtual void set_learning_rate(double lr) = 0;
        virtual OptimizerState<T>& state() = 0;
        virtual const OptimizerState<T>& state() const = 0;
        virtual std::string type() const = 0;
        virtual Config config() const = 0;
    };

    template <class O> struct Holder final : Interface {
        explicit Holder(O held) : optimizer(std::move(held)) {}
        std::unique_ptr<Interface> clone() const override { return std::make_unique<Holder>(optimizer); }
        void step(const std::vector<Parameter<T>>& parameters) override { optimizer.step(parameters); }
        double learning_rate() const override {
            if constexpr (detail::is_detected<detail::learning_rate_op, O>) return optimizer.learning_rate();
            else throw ArgumentError(std::string(O::type_name) + " has no learning rate");
        }
        void set_learning_rate(double lr) override {
            if constexpr (detail::is_detected<detail::learning_rate_op, O>) optimizer.set_learning_rate(lr);
            else (void)lr, throw ArgumentError(std::string(O::type_name) + " has no learning rate to set");
        }
        OptimizerState<T>& state() override { return optimizer.state(); }
        const OptimizerState<T>& state() const override { return optimizer.state(); }
        std::string type() const override { return O::type_name; }
        Config config() const override { return optimizer.config(); }
        O optimizer;
    };

    std::unique_ptr<Interface> self_;
};

}  // namespace latent
