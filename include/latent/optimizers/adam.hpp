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

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../kernels/cpu_features.hpp"
#include "../kernels/square_root.hpp"
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

// Adam's per-element constants, in T (step_size and the bias correction computed in double).
template <class T> struct AdamScalars {
    T minus_step_size, bias_correction2_sqrt, beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
    T l2_weight_decay;   // added to the gradient times p (Adam); 0 for AdamW
    T decoupled_factor;  // p is multiplied by it first (AdamW); 1 for Adam, which leaves p as is
};

// The update runs in two halves over each block of elements, in PyTorch's order, with the
// square roots between them from kernels::square_roots (correctly rounded and vectorized; see
// there why not std::sqrt or Eigen's). The first half, the decay and the moments:
//     p = p (1 - lr wd) (AdamW);  g = grad (+ wd p, Adam);  m = m b1 + (1 - b1) g;  v = v b2 + (1 - b2) g^2
// p, grad, m and v are separate arrays; saying so (restrict) spares Clang's vectorizer the
// overlap checks that its cost model rejects the loop for.
template <class T, bool add_l2>
__attribute__((always_inline)) inline void adam_moments(T* __restrict p, const T* __restrict grad, T* __restrict m,
                                                        T* __restrict v, Index begin, Index end,
                                                        const AdamScalars<T>& s) {
    for (Index i = begin; i < end; ++i) {
        p[i] = p[i] * s.decoupled_factor;
        const T g = add_l2 ? grad[i] + s.l2_weight_decay * p[i] : grad[i];
        m[i] = m[i] * s.beta1 + s.one_minus_beta1 * g;
        v[i] = v[i] * s.beta2 + s.one_minus_beta2 * (g * g);
    }
}
// The second half, given root_v[i - begin] = sqrt(v[i]):
//     p = p - step_size m / (sqrt(v) / sqrt(1 - b2^t) + eps)
template <class T>
__attribute__((always_inline)) inline void adam_parameters(T* p, const T* m, const T* root_v, Index begin,
                                                           Index end, const AdamScalars<T>& s) {
    for (Index i = begin; i < end; ++i)
        p[i] = p[i] + s.minus_step_size * (m[i] / (root_v[i - begin] / s.bias_correction2_sqrt + s.eps));
}

// One Adam update of every parameter, shared by Adam and AdamW (they differ in the decay only).
template <class T>
void adam_step(const char* name, const std::vector<Parameter<T>>& parameters,
               OptimizerState<T>& state, std::vector<Index>& sizes, double lr, double beta1,
               double beta2, double eps, double weight_decay, WeightDecay decay) {
    prepare_state(name, parameters, state, 2, sizes);
    const double t = static_cast<double>(state.step + 1);
    const bool l2_decay = decay == WeightDecay::L2 && weight_decay != 0;
    const AdamScalars<T> scalars{static_cast<T>(-(lr / (1 - std::pow(beta1, t)))),
                                 static_cast<T>(std::sqrt(1 - std::pow(beta2, t))),
                                 static_cast<T>(beta1),
                                 static_cast<T>(1 - beta1),
                                 static_cast<T>(beta2),
                                 static_cast<T>(1 - beta2),
                                 static_cast<T>(eps),
                                 static_cast<T>(l2_decay ? weight_decay : 0),
                                 static_cast<T>(decay == WeightDecay::Decoupled ? 1 - lr * weight_decay : 1)};
    for (std::size_t index = 0; index < parameters.size(); ++index) {
        T* p = parameters[index].value;
        const T* grad = parameters[index].grad;
        T* m = state.buffers[2 * index].data();
        T* v = state.buffers[2 * index + 1].data();
        // Blocks small enough that sqrt(v) waits between the halves in a buffer in L1.
        constexpr Index block_size = 256;
        for_each_slice(parameters[index].size, [&](Index begin, Index end) {
            T root_v[block_size];
            for (Index block = begin; block < end; block += block_size) {
                const Index stop = std::min(end, block + block_size);
                run_vectorized([&]() __attribute__((always_inline)) {
                    if (l2_decay)
                        adam_moments<T, true>(p, grad, m, v, block, stop, scalars);
                    else
                        adam_moments<T, false>(p, grad, m, v, block, stop, scalars);
                });
                kernels::square_roots(v + block, root_v, stop - block);
                run_vectorized([&]() __attribute__((always_inline)) {
                    adam_parameters(p, m, root_v, block, stop, scalars);
                });
            }
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
