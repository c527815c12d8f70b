// Adam and AdamW (https://pytorch.org/docs/stable/optim.html, torch.optim.Adam / AdamW).
//
// PyTorch's rule, for every parameter p with gradient grad, at step t = 1, 2, ...:
//     g = grad + weight_decay * p            Adam only: L2 decay added to the gradient
//     p = p * (1 - lr * weight_decay)        AdamW only: decoupled decay, before the update
//     m = beta1 * m + (1 - beta1) * g
//     v = beta2 * v + (1 - beta2) * g * g
//     step_size = lr / (1 - beta1^t)
//     denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//     p = p - step_size * m / denom
// Defaults (PyTorch's): lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8; weight_decay 0 for Adam and
// 0.01 for AdamW. Keras's Adam uses eps 1e-7 and adds it to sqrt(v_hat) the same way.
//
// State: step (t above), and two buffers per parameter in parameter order: m of parameter 0,
// v of parameter 0, m of parameter 1, v of parameter 1, ...
// Arithmetic is in T with the operations in PyTorch's single-tensor order (scalars such as
// step_size computed in double first, as PyTorch computes them in Python), so a float32 run
// agrees with torch's to round-off.
#pragma once

#include <Eigen/Core>

#include <cmath>
#include <string>
#include <vector>

#include "../layers/config.hpp"
#include "state.hpp"

namespace latent {
namespace detail {

enum class WeightDecay { L2, Decoupled };

// Validates Adam's hyper-parameters for the optimizer called `name`.
inline void require_adam_arguments(const char* name, double lr, double beta1, double beta2,
                                   double eps, double weight_decay) {
    require_learning_rate(name, lr);
    require_in_range(name, "beta1", beta1, 0, 1, false);
    require_in_range(name, "beta2", beta2, 0, 1, false);
    require_non_negative(name, "eps", eps);
    require_non_negative(name, "weight_decay", weight_decay);
}

// One Adam update of every parameter, shared by Adam and AdamW (they differ in the decay only).
template <class T>
void adam_step(const char* name, const std::vector<Parameter<T>>& parameters,
               OptimizerState<T>& state, std::vector<Index>& sizes, double lr, double beta1,
               double beta2, double eps, double weight_decay, WeightDecay decay) {
    prepare_state(name, parameters, state, 2, sizes);
    const double t = static_cast<double>(state.step + 1);
    const T minus_step_size = static_cast<T>(-(lr / (1 - std::pow(beta1, t))));
    const T bias_correction2_sqrt = static_cast<T>(std::sqrt(1 - std::pow(beta2, t)));
    const T beta1_t = static_cast<T>(beta1), one_minus_beta1 = static_cast<T>(1 - beta1);
    const T beta2_t = static_cast<T>(beta2), one_minus_beta2 = static_cast<T>(1 - beta2);
    const T eps_t = static_cast<T>(eps);
    const bool l2_decay = decay == WeightDecay::L2 && weight_decay != 0;
    const T l2_weight_decay = static_cast<T>(weight_decay);
    const T decoupled_factor = static_cast<T>(1 - lr * weight_decay);
    const bool decoupled = decay == WeightDecay::Decoupled;

    // Eigen array expressions rather than a scalar loop: they vectorise (a scalar std::sqrt keeps
    // its errno check and blocks that), with the same operations in the same order.
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    for (std::size_t index = 0; index < parameters.size(); ++index) {
        T* p_data = parameters[index].value;
        const T* grad_data = parameters[index].grad;
        T* m_data = state.buffers[2 * index].data();
        T* v_data = state.buffers[2 * index + 1].data();
        for_each_slice(parameters[index].size, [&](Index begin, Index end) {
            Eigen::Map<Array> p(p_data + begin, end - begin), m(m_data + begin, end - begin),
                v(v_data + begin, end - begin);
            const Eigen::Map<const Array> grad(grad_data + begin, end - begin);
            if (decoupled) p *= decoupled_factor;
            if (l2_decay) {
                m = m * beta1_t + one_minus_beta1 * (grad + l2_weight_decay * p);
                v = v * beta2_t + one_minus_beta2 * (grad + l2_weight_decay * p).square();
            } else {
                m = m * beta1_t + one_minus_beta1 * grad;
                v = v * beta2_t + one_minus_beta2 * grad.square();
            }
            p += minus_step_size * (m / (v.sqrt() / bias_correction2_sqrt + eps_t));
        });
    }
    ++state.step;
}

// Adam and AdamW in one implementation; they differ in the decay only. Derived (Adam<T> or
// AdamW<T>) gives the type's name and its defaults.
template <class T, class Derived, WeightDecay decay> class AdamRule {
public:
    using Scalar = T;

    void step(const std::vector<Parameter<T>>& parameters) {
        adam_step(Derived::type_name, parameters, state_, sizes_, lr_, beta1_, beta2_, eps_, weight_decay_, decay);
    }

    double learning_rate() const { return lr_; }
    void set_learning_rate(double lr) {
        require_learning_rate(Derived::type_name, lr);
        lr_ = lr;
    }

    OptimizerState<T>& state() { return state_; }
    const OptimizerState<T>& state() const { return state_; }

    Config config() const {
        return Config()
            .set("lr", lr_)
            .set("beta1", beta1_)
            .set("beta2", beta2_)
            .set("eps", eps_)
            .set("weight_decay", weight_decay_);
    }
    static Derived from_config(const Config& config) {
        return Derived(config.get_double("lr"), config.get_double("beta1"), config.get_double("beta2"),
                       config.get_double("eps"), config.get_double("weight_decay"));
    }

protected:
    AdamRule(double lr, double beta1, double beta2, double eps, double weight_decay)
        : lr_(lr), beta1_(beta1), beta2_(beta2), eps_(eps), weight_decay_(weight_decay) {
        require_adam_arguments(Derived::type_name, lr, beta1, beta2, eps, weight_decay);
    }

private:
    double lr_, beta1_, beta2_, eps_, weight_decay_;
    OptimizerState<T> state_;
    std::vector<Index> sizes_;  // parameter sizes at the first step: only checks later calls
};

}  // namespace detail

// Adam with L2 weight decay added to the gradient (torch.optim.Adam; amsgrad not supported).
template <class T = float> class Adam : public detail::AdamRule<T, Adam<T>, detail::WeightDecay::L2> {
public:
    static constexpr const char* type_name = "Adam";
    explicit Adam(double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
                  double weight_decay = 0)
        : detail::AdamRule<T, Adam<T>, detail::WeightDecay::L2>(lr, beta1, beta2, eps, weight_decay) {}
};

// AdamW: Adam with decoupled weight decay, p *= 1 - lr * weight_decay (torch.optim.AdamW).
template <class T = float> class AdamW : public detail::AdamRule<T, AdamW<T>, detail::WeightDecay::Decoupled> {
public:
    static constexpr const char* type_name = "AdamW";
    explicit AdamW(double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
                   double weight_decay = 0.01)
        : detail::AdamRule<T, AdamW<T>, detail::WeightDecay::Decoupled>(lr, beta1, beta2, eps, weight_decay) {}
};

}  // namespace latent
