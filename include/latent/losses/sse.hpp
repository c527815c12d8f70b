// SumSquaredError: half the sum of squared errors, by default over the whole batch and not
// averaged (Sum: TensorFlow's tf.nn.l2_loss), whose gradient is simply the error whatever the
// batch size; with SumPerSample, averaged over the samples (a Gaussian decoder's -log p(x|z) per
// image, up to a constant), with Mean over the elements.
#pragma once

#include "mse.hpp"

namespace latent {

template <class T = float> class SumSquaredError {
public:
    using Scalar = T;
    static constexpr const char* type_name = "SumSquaredError";
    Reduction reduction() const { return reduction_; }

    explicit SumSquaredError(Reduction reduction = Reduction::Sum) : reduction_(reduction) {}

    // loss = 1/2 sum_i (p_i - t_i)^2 / divisor,  divisor = 1, batch or count (reduction)
    // grad_i = (p_i - t_i) / divisor
    double compute(ConstTensorView<T> prediction, ConstTensorView<T> target, TensorView<T> grad) const {
        detail::check_loss_inputs(type_name, prediction, target, grad);
        const T* p = prediction.data();
        const T* t = target.data();
        T* g = grad.data();
        if (reduction_ == Reduction::Sum) {
            const double sum = detail::sum_over_elements(prediction.size(), [&](Index i) {
                g[i] = p[i] - t[i];
                const double difference = static_cast<double>(p[i]) - static_cast<double>(t[i]);
                return difference * difference;
            });
            return 0.5 * sum;
        }
        const double divisor = detail::reduction_divisor(reduction_, prediction.size(), prediction.dimension(0));
        const T grad_scale = static_cast<T>(1.0 / divisor);
        const double sum = detail::sum_over_elements(prediction.size(), [&](Index i) {
            g[i] = grad_scale * (p[i] - t[i]);
            const double difference = static_cast<double>(p[i]) - static_cast<double>(t[i]);
            return difference * difference;
        });
        return 0.5 * sum / divisor;
    }

    // out[n] = the loss of sample n alone: 1/2 sum over sample n of (p - t)^2 (Sum, SumPerSample),
    // or 1/2 its mean (Mean)
    void per_sample(ConstTensorView<T> prediction, ConstTensorView<T> target, T* out) const {
        detail::check_loss_inputs(type_name, prediction, target);
        const Index batch = prediction.dimension(0), sample_size = prediction.size() / batch;
        const T* p = prediction.data();
        const T* t = target.data();
        const double scale = reduction_ == Reduction::Mean ? 0.5 / static_cast<double>(sample_size) : 0.5;
        detail::sum_per_sample(batch, sample_size, scale, out, [&](Index i) {
            const double difference = static_cast<double>(p[i]) - static_cast<double>(t[i]);
            return difference * difference;
        });
    }

    Config config() const {
        Config config;
        detail::set_reduction(config, reduction_, Reduction::Sum);
        return config;
    }
    static SumSquaredError from_config(const Config& config) {
        return SumSquaredError(detail::get_reduction(config, Reduction::Sum, type_name));
    }

private:
    Reduction reduction_;
};

}  // namespace latent
