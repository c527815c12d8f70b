// SumSquaredError: half the sum of squared errors over the whole batch, not averaged
// (TensorFlow's tf.nn.l2_loss). Its gradient is simply the error, whatever the batch size.
#pragma once

#include "mse.hpp"

namespace latent {

template <class T = float> class SumSquaredError {
public:
    using Scalar = T;
    static constexpr const char* type_name = "SumSquaredError";
    Reduction reduction() const { return Reduction::Sum; }

    // loss = 1/2 sum_i (p_i - t_i)^2
    // grad_i = p_i - t_i
    double compute(ConstTensorView<T> prediction, ConstTensorView<T> target, TensorView<T> grad) const {
        detail::check_loss_inputs(type_name, prediction, target, grad);
        const T* p = prediction.data();
        const T* t = target.data();
        T* g = grad.data();
        const double sum = detail::sum_over_elements(prediction.size(), [&](Index i) {
            g[i] = p[i] - t[i];
            const double difference = static_cast<double>(p[i]) - static_cast<double>(t[i]);
            return difference * difference;
        });
        return 0.5 * sum;
    }

    // out[n] = 1/2 sum over sample n of (p - t)^2
    void per_sample(ConstTensorView<T> prediction, ConstTensorView<T> target, T* out) const {
        detail::check_loss_inputs(type_name, prediction, target);
        const Index batch = prediction.dimension(0), sample_size = prediction.size() / batch;
        const T* p = prediction.data();
        const T* t = target.data();
        detail::sum_per_sample(batch, sample_size, 0.5, out, [&](Index i) {
            const double difference = static_cast<double>(p[i]) - static_cast<double>(t[i]);
            return difference * difference;
        });
    }

    Config config() const { return Config(); }
    static SumSquaredError from_config(const Config&) { return SumSquaredError(); }
};

}  // namespace latent
