// Stochastic layers: Dropout and AdditiveNoise. Both draw noise only in a Training pass and are
// the identity otherwise (evaluation, inference).
//
// Rule: the noise of sample n comes from pass.sample_rng(n), the stream of that sample of that
// batch of that layer (core/pass.hpp). A sample's noise is then the same whether its batch is
// passed whole or in slices, and whatever the number of threads. Within a sample the values are
// drawn in memory order.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../core/scratch.hpp"
#include "../core/threading.hpp"
#include "layer.hpp"

namespace latent {
namespace detail {

// Calls body(n) for every sample n of a batch of `batch` samples of `features` values each, in
// parallel chunks of samples (the samples are independent).
template <class Body> void for_each_sample(Index batch, Index features, Body&& body) {
    const Chunks chunks = batch_chunks(batch, features);
    parallel_for(chunks.count(), batch * features, [&](Index chunk) {
        for (Index n = chunks.begin(chunk); n < chunks.begin(chunk) + chunks.size(chunk); ++n) body(n);
    });
}

// y = x, unless y already is x (a model let the layer work in place).
template <class T> void copy_unless_same(const T* x, T* y, Index size) {
    if (x != y) std::copy_n(x, size, y);
}

}  // namespace detail

// Dropout (inverted): in training each value is kept with probability 1 - p and then scaled by
// 1 / (1 - p), or set to 0, so a value's expectation is unchanged and evaluation needs no
// rescaling. As Keras's Dropout(rate) and PyTorch's nn.Dropout(p).
//   forward:  y = x * m,   m = 0 with probability p, else 1 / (1 - p)   (identity outside training)
//   backward: dx = dy * m  (the m of the last forward)
template <class T = float> class Dropout {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Dropout";
    bool in_place() const { return true; }                // element-wise, backward reads the mask
    bool backward_reads_output() const { return false; }  // the mask, not y

    explicit Dropout(double p) : p_(p) {
        detail::require(std::isfinite(p) && p >= 0.0 && p < 1.0, type_name,
                        "p (the probability of dropping a value) must be in [0, 1), got " + detail::readable_number(p));
    }

    Shape output_shape(const Shape& input) const { return input; }

    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) {
        masked_ = pass.training();
        if (!masked_) return detail::copy_unless_same(x.data(), y.data(), x.size());
        const Index batch = x.dimension(0), features = x.size() / std::max<Index>(batch, 1);
        detail::grow(mask_, x.size());
        const T kept = static_cast<T>(1.0 / (1.0 - p_));
        detail::for_each_sample(batch, features, [&](Index n) {
            Rng rng = pass.sample_rng(n);
            T* mask = mask_.data() + n * features;
            const T* in = x.data() + n * features;
            T* out = y.data() + n * features;
            for (Index i = 0; i < features; ++i) {
                mask[i] = rng.uniform() < p_ ? T(0) : kept;
                out[i] = in[i] * mask[i];
            }
        });
    }

    void backward(ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        if (!masked_) return detail::copy_unless_same(dy.data(), dx.data(), dy.size());
        const Index size = dy.size();
        const Chunks slices{size, 32768};
        parallel_for(slices.count(), size, [&](Index slice) {
            const Index begin = slices.begin(slice), count = slices.size(slice);
            for (Index i = begin; i < begin + count; ++i)
                dx.data()[i] = dy.data()[i] * mask_[static_cast<std::size_t>(i)];
        });
    }

    Config config() const { return Config().set("p", p_); }
    static Dropout from_config(const Config& config) { return Dropout(config.get_double("p")); }

    double p() const { return p_; }
    // The multipliers of the last training forward, sample after sample (0 or 1 / (1 - p)).
    const T* mask() const { return mask_.data(); }

private:
    double p_;
    bool masked_ = false;  // the last forward was a training one (and drew mask_)
    std::vector<T> mask_;  // grows to the largest batch seen
};

// AdditiveNoise: adds zero-mean Gaussian noise of standard deviation `stddev` to every value in
// training: the noise layer at an encoder's input that makes a denoising autoencoder of any
// model. As Keras's GaussianNoise layer (the name GaussianNoise is latent's input corruption).
//   forward:  y = x + stddev * e,   e ~ N(0, 1) per value   (identity outside training)
//   backward: dx = dy               (the noise does not depend on x)
template <class T = float> class AdditiveNoise {
public:
    using Scalar = T;
    static constexpr const char* type_name = "AdditiveNoise";
    bool in_place() const { return true; }
    bool backward_reads_output() const { return false; }

    explicit AdditiveNoise(double stddev) : stddev_(stddev) {
        detail::require(std::isfinite(stddev) && stddev >= 0.0, type_name,
                        "stddev must be finite and >= 0, got " + detail::readable_number(stddev));
    }

    Shape output_shape(const Shape& input) const { return input; }

    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) {
        if (!pass.training()) return detail::copy_unless_same(x.data(), y.data(), x.size());
        const Index batch = x.dimension(0), features = x.size() / std::max<Index>(batch, 1);
        detail::for_each_sample(batch, features, [&](Index n) {
            Rng rng = pass.sample_rng(n);
            const T* in = x.data() + n * features;
            T* out = y.data() + n * features;
            for (Index i = 0; i < features; ++i) out[i] = in[i] + static_cast<T>(stddev_ * rng.normal());
        });
    }

    void backward(ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() != nullptr) detail::copy_unless_same(dy.data(), dx.data(), dy.size());
    }

    Config config() const { return Config().set("stddev", stddev_); }
    static AdditiveNoise from_config(const Config& config) { return AdditiveNoise(config.get_double("stddev")); }

    double stddev() const { return stddev_; }

private:
    double stddev_;
};

}  // namespace latent
