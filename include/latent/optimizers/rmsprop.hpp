// RMSprop (https://pytorch.org/docs/stable/optim.html, torch.optim.RMSprop).
//
// PyTorch's rule, for every parameter p with gradient grad:
//     g = grad + weight_decay * p                       (if weight_decay != 0)
//     s = alpha * s + (1 - alpha) * g * g               running mean of g^2
//     centered:  a = alpha * a + (1 - alpha) * g;  avg = sqrt(s - a * a) + eps
//     otherwise: avg = sqrt(s) + eps
//     momentum > 0: b = momentum * b + g / avg;  p = p - lr * b
//     otherwise:    p = p - lr * g / avg
// Defaults (PyTorch's): lr 0.01, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered
// false. Keras's RMSprop calls alpha "rho" (default 0.9) and uses lr 0.001, eps 1e-7.
//
// State: step, and per parameter, in parameter order: s (square_avg); then b (momentum buffer)
// if momentum > 0; then a (grad_avg) if centered -- PyTorch's order of creation.
// Arithmetic is in T with the operations in PyTorch's single-tensor order.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "../layers/config.hpp"
#include "state.hpp"

namespace latent {

template <class T = float> class RMSprop {
public:
    using Scalar = T;
    static constexpr const char* type_name = "RMSprop";

    explicit RMSprop(double lr = 0.01, double alpha = 0.99, double eps = 1e-8,
                     double weight_decay = 0, double momentum = 0, bool centered = false)
        : lr_(lr), alpha_(alpha), eps_(eps), weight_decay_(weight_decay), momentum_(momentum),
          centered_(centered) {
        detail::require_learning_rate(type_name, lr);
        detail::require_in_range(type_name, "alpha", alpha, 0, 1, true);
        detail::require_non_negative(type_name, "eps", eps);
        detail::require_non_negative(type_name, "weight_decay", weight_decay);
        detail::require_non_negative(type_name, "momentum", momentum);
    }

    void step(const std::vector<Parameter<T>>& parameters) {
        const std::size_t per_parameter = buffers_per_parameter();
        detail::prepare_state(type_name, parameters, state_, per_parameter, sizes_);
        for (std::size_t i = 0; i < parameters.size(); ++i) {
            auto& buffers = state_.buffers;
            const std::size_t first = i * per_parameter;
            T* square_avg = buffers[first].data();
            T* momentum_buffer = momentum_ > 0 ? buffers[first + 1].data() : nullptr;
            T* grad_avg = centered_ ? buffers[first + per_parameter - 1].data() : nullptr;
            update(parameters[i], square_avg, momentum_buffer, grad_avg);
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
            .set("alpha", alpha_)
            .set("eps", eps_)
            .set("weight_decay", weight_decay_)
            .set("momentum", momentum_)
            .set("centered", centered_ ? 1 : 0);
    }
    static RMSprop from_config(const Config& config) {
        return RMSprop(config.get_double("lr"), config.get_double("alpha"), config.get_double("eps"),
                       config.get_double("weight_decay"), config.get_double("momentum"),
                       config.get_int("centered") != 0);
    }

private:
    std::size_t buffers_per_parameter() const {
        return 1 + (momentum_ > 0 ? 1 : 0) + (centered_ ? 1 : 0);
    }

    void update(const Parameter<T>& parameter, T* square_avg, T* momentum_buffer, T* grad_avg) const {
        T* p = parameter.value;
        const T* grad = parameter.grad;
        const bool decays = weight_decay_ != 0;
        const T weight_decay = static_cast<T>(weight_decay_);
        const T alpha = static_cast<T>(alpha_), one_minus_alpha = static_cast<T>(1 - alpha_);
        const T eps = static_cast<T>(eps_), momentum = static_cast<T>(momentum_);
        const T minus_lr = static_cast<T>(-lr_);
        detail::for_each_slice(parameter.size, [&](Index begin, Index end) {
            for (Index i = begin; i < end; ++i) {
                const T g = decays ? grad[i] + weight_decay * p[i] : grad[i];
                square_avg[i] = square_avg[i] * alpha + one_minus_alpha * g * g;
                T avg;
                if (grad_avg != nullptr) {
                    grad_avg[i] = grad_avg[i] * alpha + one_minus_alpha * g;
                    avg = std::sqrt(square_avg[i] + T(-1) * grad_avg[i] * grad_avg[i]);
                } else {
                    avg = std::sqrt(square_avg[i]);
                }
                avg = avg + eps;
                if (momentum_buffer != nullptr) {
                    momentum_buffer[i] = momentum_buffer[i] * momentum + g / avg;
                    p[i] = p[i] + minus_lr * momentum_buffer[i];
                } else {
                    p[i] = p[i] + minus_lr * (g / avg);
                }
            }
        });
    }

    double lr_, alpha_, eps_, weight_decay_, momentum_;
    bool centered_;
    OptimizerState<T> state_;
    std::vector<Index> sizes_;  // parameter sizes at the first step: only checks later calls
};

}  // namespace latent
