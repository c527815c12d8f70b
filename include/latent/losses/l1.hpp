// L1: mean absolute error over all elements (Keras "mae", PyTorch L1Loss(reduction="mean")).
// Less sensitive to outliers than MeanSquaredError; gives sharper reconstructions.
#pragma once

#include <cmath>

#include "mse.hpp"

namespace latent {

template <class T = float> class L1 {
public:
    using Scalar = T;
    static constexpr const char* type_name = "L1";
    Reduction reduction() const { return Reduction::Mean; }

    // loss = (1/count) sum_i |p_i - t_i|
    // grad_i = sign(p_i - t_i) / count       (0 where p_i == t_i, as PyTorch)
    double compute(ConstTensorView<T> prediction, ConstTensorView<T> target, TensorView<T> grad) const {
        detail::check_loss_inputs(type_name, prediction, target, grad);
        const Index count = prediction.size();
        const T* p = prediction.data();
        const T* t = target.data();
        T* g = grad.data();
        const T grad_scale = static_cast<T>(1.0 / static_cast<double>(count));
        const double sum = detail::sum_over_elements(count, [&](Index i) {
            const T difference = p[i] - t[i];
            // branch-free sign: a mispredicted branch per element costs more than the rest
            g[i] = grad_scale * static_cast<T>((difference > T(0)) - (difference < T(0)));
            return std::abs(static_cast<double>(p[i]) - static_cast<double>(t[i]));
        });
        return sum / static_cast<double>(count);
    }

    // out[n] = mean over sample n of |p - t|
    void per_sample(ConstTensorView<T> prediction, ConstTensorView<T> target, T* out) const {
        detail::check_loss_inputs(type_name, prediction, target);
        const Index batch = prediction.dimension(0), sample_size = prediction.size() / batch;
        const T* p = prediction.data();
        const T* t = target.data();
        detail::sum_per_sample(batch, sample_size, 1.0 / static_cast<double>(sample_size), out,
                               [&](Index i) {
                                   return std::abs(static_cast<double>(p[i]) -
                                                   static_cast<double>(t[i]));
                               });
    }

    Config config() const { return Config(); }
    static L1 from_config(const Config&) { return L1(); }
};

}  // namespace latent
