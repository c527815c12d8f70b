// MeanSquaredError, and the shape checks and chunked reductions every loss shares.
//
// A loss reads a prediction and a target of the same shape (N, C, H, W), returns one number
// (accumulated in double) and writes grad = dLoss/dprediction in the prediction's shape.
// Sums run over fixed slices of the flat tensor whose boundaries depend on the element count
// only; the slices' partial sums are added in slice order, so the value is bit-identical with
// any number of threads.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <string>

#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "../layers/config.hpp"

namespace latent {

// How a loss turns a batch's element-wise errors into one value. It says how fit() weights the
// slices of a batch: a slice of n of the batch's N samples counts n/N of a Mean or SumPerSample
// value (the slice's own mean), all of a Sum.
enum class Reduction {
    Mean,          // over all elements of the batch (Keras, PyTorch's reduction="mean")
    SumPerSample,  // summed over each sample's elements, averaged over the samples ("per image")
    Sum,           // over all elements of the batch (PyTorch's reduction="sum")
};

namespace detail {

// The divisor of a loss's sum over `count` values in `batch` samples: count (Mean), batch
// (SumPerSample), 1 (Sum).
inline double reduction_divisor(Reduction reduction, Index count, Index batch) {
    if (reduction == Reduction::Mean) return static_cast<double>(count);
    if (reduction == Reduction::SumPerSample) return static_cast<double>(batch);
    return 1.0;
}

// A Reduction's name in configs and files, and back (FormatError naming `loss` for an unknown one).
inline const char* reduction_name(Reduction reduction) {
    if (reduction == Reduction::Mean) return "mean";
    return reduction == Reduction::SumPerSample ? "sum_per_sample" : "sum";
}
inline Reduction reduction_from_name(const std::string& name, const char* loss) {
    for (const Reduction reduction : {Reduction::Mean, Reduction::SumPerSample, Reduction::Sum})
        if (name == reduction_name(reduction)) return reduction;
    throw FormatError(std::string(loss) + ": unknown reduction '" + name + "' (known: mean, sum_per_sample, sum)");
}

// A loss's config holds its reduction only when it is not the loss's default, so configs and
// files of the default stay as they were.
inline void set_reduction(Config& config, Reduction reduction, Reduction default_reduction) {
    if (reduction != default_reduction) config.set("reduction", reduction_name(reduction));
}
inline Reduction get_reduction(const Config& config, Reduction default_reduction, const char* loss) {
    return config.has("reduction") ? reduction_from_name(config.get_string("reduction"), loss) : default_reduction;
}

template <class View> std::string loss_shape_str(const View& tensor) {
    return batch_shape_str(tensor.dimension(0),
                           Shape{tensor.dimension(1), tensor.dimension(2), tensor.dimension(3)});
}

// Throws ShapeError naming the loss and both shapes unless prediction and target have the same
// shape and at least one element.
template <class T>
void check_loss_inputs(const char* loss, const ConstTensorView<T>& prediction,
                       const ConstTensorView<T>& target) {
    if (prediction.dimensions() != target.dimensions())
        throw ShapeError(std::string(loss) + ": prediction " + loss_shape_str(prediction) +
                         " and target " + loss_shape_str(target) + " have different shapes");
    if (prediction.size() == 0)
        throw ShapeError(std::string(loss) + ": prediction " + loss_shape_str(prediction) +
                         " has no elements");
}

// As check_loss_inputs, plus the gradient must have the prediction's shape.
template <class T>
void check_loss_inputs(const char* loss, const ConstTensorView<T>& prediction,
                       const ConstTensorView<T>& target, const TensorView<T>& grad) {
    check_loss_inputs(loss, prediction, target);
    if (grad.dimensions() != prediction.dimensions())
        throw ShapeError(std::string(loss) + ": gradient " + loss_shape_str(grad) +
                         " should have the prediction's shape " + loss_shape_str(prediction));
}

// At most this many slices, so the partial sums live on the stack (a call allocates nothing).
constexpr Index max_loss_slices = 64;

// Slices of at least 8192 elements, at most max_loss_slices of them; depends on `count` only.
inline Chunks loss_slices(Index count) {
    const Index size = std::max<Index>(8192, (count + max_loss_slices - 1) / max_loss_slices);
    return Chunks{count, size};
}

// sum_i term(i) over [0, count) in double. `term` may also write element i of a gradient.
template <class Term> double sum_over_elements(Index count, Term term) {
    const Chunks slices = loss_slices(count);
    std::array<double, max_loss_slices> partial_sums{};
    parallel_for(slices.count(), count, [&](Index slice) {
        const Index end = slices.begin(slice) + slices.size(slice);
        double sum = 0;
        for (Index i = slices.begin(slice); i < end; ++i) sum += term(i);
        partial_sums[static_cast<std::size_t>(slice)] = sum;
    });
    double total = 0;
    for (Index slice = 0; slice < slices.count(); ++slice)
        total += partial_sums[static_cast<std::size_t>(slice)];
    return total;
}

// Elements per block of sum_over_blocks: small enough for a stack array, large enough to vectorise.
constexpr Index loss_block = 256;
template <class T> using LossBlock = Eigen::Array<T, Eigen::Dynamic, 1, 0, loss_block, 1>;

// The sum over [0, count) of block_sum(begin, end), called on consecutive blocks of at most
// loss_block elements, in double. Lets a loss compute its terms with Eigen's vectorised
// functions (log, exp) into a stack block and add them up in a fixed order.
template <class BlockSum> double sum_over_blocks(Index count, BlockSum block_sum) {
    const Chunks slices = loss_slices(count);
    std::array<double, max_loss_slices> partial_sums{};
    parallel_for(slices.count(), count, [&](Index slice) {
        const Index end = slices.begin(slice) + slices.size(slice);
        double sum = 0;
        for (Index begin = slices.begin(slice); begin < end; begin += loss_block)
            sum += block_sum(begin, std::min(begin + loss_block, end));
        partial_sums[static_cast<std::size_t>(slice)] = sum;
    });
    double total = 0;
    for (Index slice = 0; slice < slices.count(); ++slice) total += partial_sums[static_cast<std::size_t>(slice)];
    return total;
}

// The sum of values[0, count) in double, in 8 lanes (lane j takes the values i = j mod 8) added
// up in lane order: the lanes vectorize, and the order depends on `count` alone.
template <class T> __attribute__((always_inline)) inline double lane_sum(const T* values, Index count) {
    constexpr Index lanes = 8;
    double lane[lanes] = {};
    Index i = 0;
    for (; i + lanes <= count; i += lanes)
        for (Index j = 0; j < lanes; ++j) lane[j] += static_cast<double>(values[i + j]);
    for (Index j = 0; i + j < count; ++j) lane[j] += static_cast<double>(values[i + j]);
    double sum = 0;
    for (Index j = 0; j < lanes; ++j) sum += lane[j];
    return sum;
}

// out[n] = scale * sum of term(i) over the elements i of sample n (each sample summed serially).
template <class T, class Term>
void sum_per_sample(Index batch, Index sample_size, double scale, T* out, Term term) {
    const Chunks samples = batch_chunks(batch, sample_size);
    parallel_for(samples.count(), batch * sample_size, [&](Index chunk) {
        const Index end = samples.begin(chunk) + samples.size(chunk);
        for (Index n = samples.begin(chunk); n < end; ++n) {
            double sum = 0;
            for (Index i = n * sample_size; i < (n + 1) * sample_size; ++i) sum += term(i);
            out[n] = static_cast<T>(scale * sum);
        }
    });
}

}  // namespace detail

// Mean squared error: the sum of squared errors over the batch, divided as `reduction` says --
// by the element count (Mean, the default: Keras "mse", PyTorch MSELoss(reduction="mean")), by
// the sample count (SumPerSample: summed over each sample, averaged over the batch) or not (Sum).
template <class T = float> class MeanSquaredError {
public:
    using Scalar = T;
    static constexpr const char* type_name = "MeanSquaredError";
    Reduction reduction() const { return reduction_; }

    explicit MeanSquaredError(Reduction reduction = Reduction::Mean) : reduction_(reduction) {}

    // loss = (1/divisor) sum_i (p_i - t_i)^2,  divisor = count, batch or 1 (reduction)
    // grad_i = 2 (p_i - t_i) / divisor
    double compute(ConstTensorView<T> prediction, ConstTensorView<T> target, TensorView<T> grad) const {
        detail::check_loss_inputs(type_name, prediction, target, grad);
        const Index count = prediction.size();
        const double divisor = detail::reduction_divisor(reduction_, count, prediction.dimension(0));
        const T* p = prediction.data();
        const T* t = target.data();
        T* g = grad.data();
        const T grad_scale = static_cast<T>(2.0 / divisor);
        const double sum = detail::sum_over_elements(count, [&](Index i) {
            g[i] = grad_scale * (p[i] - t[i]);
            const double difference = static_cast<double>(p[i]) - static_cast<double>(t[i]);
            return difference * difference;
        });
        return sum / divisor;
    }

    // out[n] = the loss of sample n alone: the mean (Mean) or the sum (SumPerSample, Sum) of (p - t)^2
    void per_sample(ConstTensorView<T> prediction, ConstTensorView<T> target, T* out) const {
        detail::check_loss_inputs(type_name, prediction, target);
        const Index batch = prediction.dimension(0), sample_size = prediction.size() / batch;
        const T* p = prediction.data();
        const T* t = target.data();
        const double scale = reduction_ == Reduction::Mean ? 1.0 / static_cast<double>(sample_size) : 1.0;
        detail::sum_per_sample(batch, sample_size, scale, out,
                               [&](Index i) {
                                   const double difference =
                                       static_cast<double>(p[i]) - static_cast<double>(t[i]);
                                   return difference * difference;
                               });
    }

    Config config() const {
        Config config;
        detail::set_reduction(config, reduction_, Reduction::Mean);
        return config;
    }
    static MeanSquaredError from_config(const Config& config) {
        return MeanSquaredError(detail::get_reduction(config, Reduction::Mean, type_name));
    }

private:
    Reduction reduction_;
};

}  // namespace latent
