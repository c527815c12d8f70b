// SGD: stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.
//
// PyTorch's rule and defaults (https://pytorch.org/docs/stable/optim.html, torch.optim.SGD),
// for every parameter p with gradient grad, at step t = 1, 2, ...:
//     g = grad + weight_decay * p                               (if weight_decay != 0)
//     b = g                                       at t = 1      (if momentum != 0)
//     b = momentum * b + (1 - dampening) * g      at t > 1
//     g = nesterov ? g + momentum * b : b
//     p = p - lr * g
// Defaults: lr 0.01, momentum 0, nesterov false, weight_decay 0, dampening 0 (Keras's too; its
// momentum form, velocity = momentum * velocity - lr * g, is this one while lr stays constant).
//
// State: step, and with momentum one buffer per parameter, in parameter order (momentum buffer
// b of parameter 0, of parameter 1, ...). Without momentum no buffer.
// Arithmetic is in T with the operations in PyTorch's single-tensor order, so a float32 run
// agrees with torch's to round-off.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "../layers/config.hpp"
#include "state.hpp"

namespace latent {

template <class T = float> class SGD {
public:
    using Scalar = T;
    static constexpr const char* type_name = "SGD";

    explicit SGD(double lr = 0.01, double momentum = 0, bool nesterov = false,
                 double weight_decay = 0, double dampening = 0)
        : lr_(lr), momentum_(momentum), nesterov_(nesterov), weight_decay_(weight_decay),
          dampening_(dampening) {
        detail::require_learning_rate(type_name, lr);
        detail::require_non_negative(type_name, "momentum", momentum);
        detail::require_non_negative(type_name, "weight_decay", weight_decay);
        detail::require(std::isfinite(dampening), type_name, "dampening must be finite");
        detail::require(!nesterov || (momentum > 0 && dampening == 0), type_name,
                        "nesterov momentum requires momentum > 0 and dampening 0");
    }
    // A number where `nesterov` goes (SGD(0.1, 0.9, 1e-4) meaning a weight decay) would quietly
    // become `true`; this overload turns that mistake into a compile error.
    template <class NotBool, class... Rest, class = std::enable_if_t<!std::is_same_v<NotBool, bool>>>
    SGD(double lr, double momentum, NotBool nesterov, Rest...) = delete;

    // One update of every parameter from its gradient.
    void step(const std::vector<Parameter<T>>& parameters) {
        const bool uses_momentum = momentum_ != 0;
        detail::prepare_state(type_name, parameters, state_, uses_momentum ? 1 : 0, sizes_);
        const bool first_step = state_.step == 0;
        for (std::size_t i = 0; i < parameters.size(); ++i) {
            T* momentum_buffer = uses_momentum ? state_.buffers[i].data() : nullptr;
            update(parameters[i], momentum_buffer, first_step);
        }
        ++state_.step;
    }

    double learning_rate() const { return lr_; }
    void set_learning_rate(double lr) {
        detail::require_learning_rate(type_name, lr);
        lr_ = lr;
    }

    OptimizerState<T>& state() { return state_; }
    const OptimizerState<T>& state() const { return state_; }

    Config config() const {
        return Config()
            .set("lr", lr_)
            .set("momentum", momentum_)
            .set("nesterov", nesterov_ ? 1 : 0)
            .set("weight_decay", weight_decay_)
            .set("dampening", dampening_);
    }
    static SGD from_config(const Config& config) {
        return SGD(config.get_double("lr"), config.get_double("momentum"),
                   config.get_int("nesterov") != 0, config.get_double("weight_decay"),
                   config.get_double("dampening"));
    }

private:
    void update(const Parameter<T>& parameter, T* momentum_buffer, bool first_step) const {
        T* p = parameter.value;
        const T* grad = parameter.grad;
        const T weight_decay = static_cast<T>(weight_decay_), momentum = static_cast<T>(momentum_);
        const T one_minus_dampening = static_cast<T>(1 - dampening_), minus_lr = static_cast<T>(-lr_);
        const bool decays = weight_decay_ != 0, nesterov = nesterov_;
        detail::for_each_slice(parameter.size, [&](Index begin, Index end) {
            for (Index i = begin; i < end; ++i) {
                T g = decays ? grad[i] + weight_decay * p[i] : grad[i];
                if (momentum_buffer != nullptr) {
                    T& b = momentum_buffer[i];
                    b = first_step ? g : b * momentum + one_minus_dampening * g;
                    g = nesterov ? g + momentum * b : b;
                }
                p[i] = p[i] + minus_lr * g;
            }
        });
    }

    double lr_, momentum_;
    bool nesterov_;
    double weight_decay_, dampening_;
    OptimizerState<T> state_;
    std::vector<Index> sizes_;  // parameter sizes at the first step: only checks later calls
};

}  // namespace latent
