// Adadelta (https://pytorch.org/docs/stable/optim.html, torch.optim.Adadelta; Zeiler 2012).
//
// PyTorch's rule, for every parameter p with gradient grad:
//     g = grad + weight_decay * p                              (if weight_decay != 0)
//     s = rho * s + (1 - rho) * g * g                          running mean of g^2
//     delta = sqrt(u + eps) / sqrt(s + eps) * g
//     u = rho * u + (1 - rho) * delta * delta                  running mean of delta^2
//     p = p - lr * delta
// Defaults: lr 1.0, rho 0.95, eps 1e-6, weight_decay 0 -- PyTorch's lr and eps with the rho of
// Zeiler's paper and Keras. torch.optim.Adadelta's own rho default is 0.9: Adadelta(1.0, 0.9)
// matches it exactly. Keras's Adadelta is Adadelta(0.001, 0.95, 1e-7).
//
// State: step, and two buffers per parameter in parameter order: s (square_avg) of
// parameter 0, u (acc_delta) of parameter 0, s of parameter 1, u of parameter 1, ...
// Arithmetic is in T with the operations in PyTorch's single-tensor order.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "../layers/config.hpp"
#include "state.hpp"

namespace latent {

template <class T = float> class Adadelta {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Adadelta";

    explicit Adadelta(double lr = 1.0, double rho = 0.95, double eps = 1e-6, double weight_decay = 0)
        : lr_(lr), rho_(rho), eps_(eps), weight_decay_(weight_decay) {
        detail::require_learning_rate(type_name, lr);
        detail::require_in_range(type_name, "rho", rho, 0, 1, true);
        detail::require_non_negative(type_name, "eps", eps);
        detail::require_non_negative(type_name, "weight_decay", weight_decay);
    }

    void step(const std::vector<Parameter<T>>& parameters) {
        detail::prepare_state(type_name, parameters, state_, 2, sizes_);
        for (std::size_t i = 0; i < parameters.size(); ++i)
            update(parameters[i], state_.buffers[2 * i].data(), state_.buffers[2 * i + 1].data());
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
            .set("rho", rho_)
            .set("eps", eps_)
            .set("weight_decay", weight_decay_);
    }
    static Adadelta from_config(const Config& config) {
        return Adadelta(config.get_double("lr"), config.get_double("rho"), config.get_double("eps"),
                        config.get_double("weight_decay"));
    }

private:
    void update(const Parameter<T>& parameter, T* square_avg, T* acc_delta) const {
        T* p = parameter.value;
        const T* grad = parameter.grad;
        const bool decays = weight_decay_ != 0;
        const T weight_decay = static_cast<T>(weight_decay_);
        const T rho = static_cast<T>(rho_), one_minus_rho = static_cast<T>(1 - rho_);
        const T eps = static_cast<T>(eps_), minus_lr = static_cast<T>(-lr_);
        detail::for_each_slice(parameter.size, [&](Index begin, Index end) {
            for (Index i = begin; i < end; ++i) {
                const T g = decays ? grad[i] + weight_decay * p[i] : grad[i];
                square_avg[i] = square_avg[i] * rho + one_minus_rho * g * g;
                const T std_dev = std::sqrt(square_avg[i] + eps);
                const T delta = std::sqrt(acc_delta[i] + eps) / std_dev * g;
                acc_delta[i] = acc_delta[i] * rho + one_minus_rho * delta * delta;
                p[i] = p[i] + minus_lr * delta;
            }
        });
    }

    double lr_, rho_, eps_, weight_decay_;
    OptimizerState<T> state_;
    std::vector<Index> sizes_;  // parameter sizes at the first step: only checks later calls
};

}  // namespace latent
