// BinaryCrossEntropy on probabilities, for targets in [0, 1] (images scaled to [0, 1]).
//
// As Keras, the prediction is clamped to [eps, 1 - eps] before the logarithms, so a saturated
// output gives a large but finite loss (Keras's backend also adds eps inside the logarithms;
// this loss uses the clamp alone). Where the clamp is active the gradient is 0, the derivative
// of the clamp -- which is why fit() takes the gradient on the logits when a model's output
// passes through a final Sigmoid (compute_on_logits): dLoss/dlogits = (p - t) / count skips the
// Sigmoid's backward, never divides by p (1 - p) and never vanishes on saturated outputs.
//
// The sum over the batch is divided as `reduction` says: by the element count (Mean, the
// default, as Keras), by the sample count (SumPerSample: summed over each image's pixels and
// averaged over the batch, a Bernoulli decoder's -log p(x|z) in nats per image) or not (Sum).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../kernels/logarithm.hpp"
#include "../kernels/scan.hpp"
#include "mse.hpp"

namespace latent {

template <class T = float> class BinaryCrossEntropy {
public:
    using Scalar = T;
    static constexpr const char* type_name = "BinaryCrossEntropy";
    Reduction reduction() const { return reduction_; }

    explicit BinaryCrossEntropy(double eps = 1e-7, Reduction reduction = Reduction::Mean)
        : eps_(eps), reduction_(reduction) {
        detail::require(eps >= 0 && eps < 0.5, type_name,
                        "eps must be in [0, 0.5), got " + detail::readable_number(eps));
    }

    // loss = -(1/divisor) sum_i [t_i log(q_i) + (1 - t_i) log(1 - q_i)],  q_i = clamp(p_i, eps, 1 - eps)
    // grad_i = (q_i - t_i) / (q_i (1 - q_i)) / divisor, and 0 where the clamp is active
    // (divisor = count, batch or 1: the reduction)
    double compute(ConstTensorView<T> prediction, ConstTensorView<T> target, TensorView<T> grad) const {
        detail::check_loss_inputs(type_name, prediction, target, grad);
        check_targets(target);
        const Index count = prediction.size(), prediction_batch = prediction.dimension(0);
        const T* p = prediction.data();
        const T* t = target.data();
        T* g = grad.data();
        const T low = static_cast<T>(eps_), high = static_cast<T>(1.0 - eps_);
        const double divisor = detail::reduction_divisor(reduction_, count, prediction_batch);
        const T grad_scale = static_cast<T>(1.0 / divisor);
        // zero where the clamp is active (below): the clamp's derivative
        const auto gradient = [grad_scale](T, T q_i, T t_i) __attribute__((always_inline)) {
            return (q_i - t_i) / (q_i * (T(1) - q_i)) * grad_scale;
        };
        const double sum = detail::sum_over_blocks(count, [&](Index begin, Index end) {
            return block_loss<true>(p + begin, t + begin, end - begin, low, high, g + begin, gradient);
        });
        return sum / divisor;
    }

    // The same value as compute(); the gradient is taken with respect to the logits z of a final
    // Sigmoid (p = sigmoid(z)), whose backward the caller then skips:
    // grad_logits_i = dLoss/dz_i = (p_i - t_i) / divisor
    double compute_on_logits(ConstTensorView<T> probability, ConstTensorView<T> target,
                                TensorView<T> grad_logits) const {
        detail::check_loss_inputs(type_name, probability, target, grad_logits);
        check_targets(target);
        const Index count = probability.size(), prediction_batch = probability.dimension(0);
        const T* p = probability.data();
        const T* t = target.data();
        T* g = grad_logits.data();
        const T low = static_cast<T>(eps_), high = static_cast<T>(1.0 - eps_);
        const double divisor = detail::reduction_divisor(reduction_, count, prediction_batch);
        const T grad_scale = static_cast<T>(1.0 / divisor);
        const auto gradient = [grad_scale](T p_i, T, T t_i) __attribute__((always_inline)) {
            return (p_i - t_i) * grad_scale;
        };
        const double sum = detail::sum_over_blocks(count, [&](Index begin, Index end) {
            return block_loss<false>(p + begin, t + begin, end - begin, low, high, g + begin, gradient);
        });
        return sum / divisor;
    }

    // out[n] = the loss of sample n alone: the mean (Mean) or the sum (SumPerSample, Sum) over
    // sample n of -(t log q + (1 - t) log(1 - q))
    void per_sample(ConstTensorView<T> prediction, ConstTensorView<T> target, T* out) const {
        detail::check_loss_inputs(type_name, prediction, target);
        check_targets(target);
        const Index batch = prediction.dimension(0), sample_size = prediction.size() / batch;
        const T* p = prediction.data();
        const T* t = target.data();
        const T low = static_cast<T>(eps_), high = static_cast<T>(1.0 - eps_);
        const double scale = reduction_ == Reduction::Mean ? 1.0 / static_cast<double>(sample_size) : 1.0;
        detail::sum_per_sample(batch, sample_size, scale, out,
                               [&](Index i) { return element_loss(std::clamp(p[i], low, high), t[i]); });
    }

    double eps() const { return eps_; }
    Config config() const {
        Config config;
        config.set("eps", eps_);
        detail::set_reduction(config, reduction_, Reduction::Mean);
        return config;
    }
    static BinaryCrossEntropy from_config(const Config& config) {
        return BinaryCrossEntropy(config.get_double("eps"), detail::get_reduction(config, Reduction::Mean, type_name));
    }

private:
    using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
    using Map = Eigen::Map<const Array>;
    using Block = detail::LossBlock<T>;

    // One block of `count` elements: q = clamp(p, low, high), g[i] = gradient(p, q, t) (0 where the
    // clamp is active if zero_where_clamped) and the sum of the terms -(t log q + (1 - t) log(1 - q)),
    // the terms in T and their sum in double, in 8 lanes (lane j takes the elements i = j mod 8)
    // added up in lane order. Float blocks run in one pass on the CPU's widest vector unit
    // (kernels/logarithm.hpp: the bits of Eigen's log in a plain x86-64 build), the same bits on
    // every path; double blocks are Eigen's expressions. A NaN prediction passes the clamp as NaN,
    // so its loss and gradient are NaN, not a clamped finite value.
    template <bool zero_where_clamped, class Gradient>
    static double block_loss(const T* p, const T* t, Index count, T low, T high, T* g, const Gradient& gradient) {
        std::array<T, detail::loss_block> terms;
        if constexpr (std::is_same_v<T, float>) {
            double sum = 0;
            // By value: a pointer read through the closure would be read again after every store to g.
            run_vectorized([&sum, &terms, &gradient, p, t, g, count, low, high]() __attribute__((always_inline)) {
                for (Index i = 0; i < count; ++i) {
                    const float q = clamp_bits(p[i], low, high);
                    const float value = gradient(p[i], q, t[i]);
                    // the clamp was active where it changed the bits of p
                    const bool clamped = kernels::detail::bits_of(q) != kernels::detail::bits_of(p[i]);
                    g[i] = zero_where_clamped ? kernels::detail::select(clamped, 0.0f, value) : value;
                    terms[static_cast<std::size_t>(i)] =
                        -(t[i] * kernels::logarithm(q) + (1.0f - t[i]) * kernels::logarithm(1.0f - q));
                }
                sum = detail::lane_sum(terms.data(), count);
            });
            return sum;
        } else {
            const Map p_block(p, count), t_block(t, count);
            const Block q = p_block.max(low).min(high);
            for (Index i = 0; i < count; ++i) {
                const bool clamped = p[i] < low || p[i] > high;
                g[i] = zero_where_clamped && clamped ? T(0) : gradient(p[i], q[i], t[i]);
            }
            Eigen::Map<Array>(terms.data(), count) = -(t_block * q.log() + (T(1) - t_block) * (T(1) - q).log());
            return detail::lane_sum(terms.data(), count);
        }
    }

    // clamp(p, low, high) for 0 < low < high, decided on the bits: non-negative floats order as
    // their bits do, and every negative one (sign bit set: a negative int) lies below low. NaN
    // is kept. Integer compares keep the loop branch-free (see kernels/logarithm.hpp).
    __attribute__((always_inline)) static float clamp_bits(float p, float low, float high) {
        const auto signed_bits = [](float x) __attribute__((always_inline)) {
            return static_cast<std::int32_t>(kernels::detail::bits_of(x));
        };
        const std::int32_t bits = signed_bits(p);
        const bool not_a_number = (kernels::detail::bits_of(p) & 0x7fffffffu) > 0x7f800000u;
        const float above_low = kernels::detail::select(bits < signed_bits(low), low, p);
        const float clamped = kernels::detail::select(bits > signed_bits(high), high, above_low);
        return kernels::detail::select(not_a_number, p, clamped);
    }

    // -(t log q + (1 - t) log(1 - q)) in double, q already clamped.
    static double element_loss(T q, T t) {
        const double probability = static_cast<double>(q), truth = static_cast<double>(t);
        return -(truth * std::log(probability) + (1.0 - truth) * std::log(1.0 - probability));
    }

    // Every target must lie in [0, 1]: cross-entropy of a target outside it has no meaning (and
    // is the usual symptom of images left in [0, 255]).
    static void check_targets(const ConstTensorView<T>& target) {
        const T* t = target.data();
        const Index count = target.size();
        // & rather than &&: a branch would keep the scan scalar. The search runs only on failure.
        const auto in_unit_range = [](T value) __attribute__((always_inline)) {
            return (value >= T(0)) & (value <= T(1));
        };
        if (kernels::all_pass(active_isa(), t, count, in_unit_range)) return;
        const T* bad = std::find_if_not(t, t + count, in_unit_range);
        const Index index = static_cast<Index>(bad - t);
        throw ArgumentError(std::string(type_name) + ": target value " +
                            detail::readable_number(static_cast<double>(*bad)) + " at element " + std::to_string(index) +
                            " (sample " + std::to_string(index / (count / target.dimension(0))) +
                            ") is outside [0, 1]: normalise your images to [0,1]");
    }

    double eps_;
    Reduction reduction_;
};

}  // namespace latent
