// Batch normalization with PyTorch's semantics, in two forms of one implementation:
//   BatchNorm<T>:   statistics per feature -- each of a sample's C*H*W values over the N samples
//                   of the batch (PyTorch's BatchNorm1d on the flattened (N, C*H*W) batch);
//   BatchNorm2D<T>: statistics per channel -- over the N*H*W values of the channel (BatchNorm2d).
// Below, k is a feature (or channel) and m the number of values it has in a batch (N or N*H*W).
//
// Rules (PyTorch's):
// - Training uses the batch's mean and biased variance (divided by m) and updates the running
//   statistics with the unbiased variance (divided by m - 1):
//     running_mean = (1 - momentum) * running_mean + momentum * mean
//     running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)
//   momentum 0.1 and eps 1e-5 by default; running_mean starts at 0, running_var at 1.
// - Evaluation and inference use the running statistics and change nothing.
// - weight (gamma, starts at 1) and bias (beta, starts at 0) are trained; running_mean and
//   running_var are buffers, saved with the weights.
// - The statistics are the whole batch's (mixes_samples): a training pass over a slice of a batch,
//   or with one value per feature (m = 1), is refused with ArgumentError.
// Sums over the batch run in double, each feature's in sample order, in parallel over blocks of
// features whose bounds depend on the shape only.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "../core/threading.hpp"
#include "layer.hpp"

namespace latent {

template <class T, bool PerChannel> class BatchNormalization {
public:
    using Scalar = T;
    static constexpr const char* type_name = PerChannel ? "BatchNorm2D" : "BatchNorm";
    bool mixes_samples() const { return true; }
    bool backward_reads_output() const { return false; }  // it reads x (for x_hat) and dy

    explicit BatchNormalization(double momentum = 0.1, double eps = 1e-5) : momentum_(momentum), eps_(eps) {
        detail::require(std::isfinite(momentum) && momentum >= 0.0 && momentum <= 1.0, type_name,
                        "momentum must be in [0, 1], got " + detail::readable_number(momentum));
        detail::require(std::isfinite(eps) && eps > 0.0, type_name,
                        "eps must be finite and > 0, got " + detail::readable_number(eps));
    }

    Shape output_shape(const Shape& input) const {
        if (input.size() < 1)
            throw ShapeError(std::string(type_name) + ": input shape " + input.str() + " has no elements");
        return input;
    }

    void build(const Shape& input, Rng&) {
        features_ = PerChannel ? input.channels : input.size();
        plane_ = PerChannel ? input.height * input.width : 1;
        weight_ = Vector<T>::Ones(features_);
        bias_ = Vector<T>::Zero(features_);
        grad_weight_ = Vector<T>::Zero(features_);
        grad_bias_ = Vector<T>::Zero(features_);
        running_mean_ = Vector<T>::Zero(features_);
        running_var_ = Vector<T>::Ones(features_);
        for (auto* statistic : {&mean_, &inv_std_, &sum_dy_, &sum_dy_x_hat_, &grad_scale_})
            statistic->assign(size(features_), 0.0);
    }

    // forward (training):  mean_k = sum x / m,  var_k = sum (x - mean_k)^2 / m,  inv_std_k = 1 / sqrt(var_k + eps)
    //                      y = gamma_k * x_hat + beta_k,  x_hat = (x - mean_k) * inv_std_k
    // forward (otherwise): the same with running_mean, running_var in place of mean, var
    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) {
        const Index batch = x.dimension(0);
        batch_statistics_ = pass.training();
        if (batch_statistics_) {
            check_training_batch(batch, pass);
            compute_batch_statistics(x.data(), batch);
        } else {
            for (Index k = 0; k < features_; ++k) {
                mean_[size(k)] = static_cast<double>(running_mean_(k));
                inv_std_[size(k)] = 1.0 / std::sqrt(static_cast<double>(running_var_(k)) + eps_);
            }
        }
        const T* in = x.data();
        T* out = y.data();
        const double *mean = mean_.data(), *inv_std = inv_std_.data();
        const T *gamma = weight_.data(), *beta = bias_.data();
        for_each_value(batch, [=](Index i, Index k) {
            out[i] = static_cast<T>(gamma[k] * ((in[i] - mean[k]) * inv_std[k]) + beta[k]);
        });
    }

    // backward: dbeta_k += sum dy,  dgamma_k += sum dy * x_hat
    //   training (mean and var depend on x): dx = gamma_k * inv_std_k * (dy - sum dy / m - x_hat * sum(dy * x_hat) / m)
    //   otherwise (constants):               dx = gamma_k * inv_std_k * dy
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        const Index batch = x.dimension(0);
        const T *in = x.data(), *grad_out = dy.data();
        const double *mean = mean_.data(), *inv_std = inv_std_.data();
        sum_per_feature(batch, sum_dy_, [=](Index i, Index) { return static_cast<double>(grad_out[i]); });
        sum_per_feature(batch, sum_dy_x_hat_,
                        [=](Index i, Index k) { return grad_out[i] * ((in[i] - mean[k]) * inv_std[k]); });
        const double m = static_cast<double>(batch * plane_);
        const double centred = batch_statistics_ ? 1.0 : 0.0;
        for (Index k = 0; k < features_; ++k) {
            grad_bias_(k) += static_cast<T>(sum_dy_[size(k)]);
            grad_weight_(k) += static_cast<T>(sum_dy_x_hat_[size(k)]);
            sum_dy_[size(k)] *= centred / m;        // now the mean of dy, or 0
            sum_dy_x_hat_[size(k)] *= centred / m;  // now the mean of dy * x_hat, or 0
            grad_scale_[size(k)] = weight_(k) * inv_std_[size(k)];
        }
        if (dx.data() == nullptr) return;
        T* grad_in = dx.data();
        const double *mean_dy = sum_dy_.data(), *mean_dy_x_hat = sum_dy_x_hat_.data(), *scale = grad_scale_.data();
        for_each_value(batch, [=](Index i, Index k) {
            const double x_hat = (in[i] - mean[k]) * inv_std[k];
            grad_in[i] = static_cast<T>(scale[k] * (grad_out[i] - mean_dy[k] - x_hat * mean_dy_x_hat[k]));
        });
    }

    // weight and bias, one per feature (or channel)
    Index parameter_values(const Shape& input) const { return 2 * (PerChannel ? input.channels : input.size()); }

    std::vector<Parameter<T>> parameters() {
        return {{"weight", weight_.data(), grad_weight_.data(), weight_.size()},
                {"bias", bias_.data(), grad_bias_.data(), bias_.size()}};
    }
    std::vector<Buffer<T>> buffers() {
        return {{"running_mean", running_mean_.data(), running_mean_.size()},
                {"running_var", running_var_.data(), running_var_.size()}};
    }

    Config config() const { return Config().set("momentum", momentum_).set("eps", eps_); }
    static BatchNormalization from_config(const Config& config) {
        return BatchNormalization(config.get_double("momentum"), config.get_double("eps"));
    }

    double momentum() const { return momentum_; }
    double eps() const { return eps_; }
    Vector<T>& weight() { return weight_; }
    Vector<T>& bias() { return bias_; }
    Vector<T>& running_mean() { return running_mean_; }
    Vector<T>& running_var() { return running_var_; }
    const Vector<T>& weight() const { return weight_; }
    const Vector<T>& bias() const { return bias_; }
    const Vector<T>& running_mean() const { return running_mean_; }
    const Vector<T>& running_var() const { return running_var_; }
    const Vector<T>& grad_weight() const { return grad_weight_; }
    const Vector<T>& grad_bias() const { return grad_bias_; }

private:
    static std::size_t size(Index index) { return static_cast<std::size_t>(index); }

    // (The messages are built only on failure: a training step allocates nothing.)
    void check_training_batch(Index batch, const Pass& pass) const {
        if (pass.whole_batch(batch) != batch)
            throw ArgumentError(std::string(type_name) +
                                ": batch statistics need the whole batch in one pass, got a slice of " +
                                std::to_string(batch) + " of " + std::to_string(pass.whole_batch(batch)) + " samples");
        if (batch * plane_ <= 1)
            throw ArgumentError(std::string(type_name) + ": training needs more than one value per " +
                                (PerChannel ? "channel" : "feature") + ", got a batch of " + std::to_string(batch));
    }

    // mean_, inv_std_ from the batch (two passes: the mean, then the centred squares), and the
    // running statistics' update.
    void compute_batch_statistics(const T* x, Index batch) {
        const double m = static_cast<double>(batch * plane_);
        sum_per_feature(batch, mean_, [=](Index i, Index) { return static_cast<double>(x[i]); });
        for (double& mean : mean_) mean /= m;
        sum_per_feature(batch, inv_std_, [&](Index i, Index k) {
            const double centred = x[i] - mean_[size(k)];
            return centred * centred;
        });
        for (Index k = 0; k < features_; ++k) {
            const double variance = inv_std_[size(k)] / m;
            inv_std_[size(k)] = 1.0 / std::sqrt(variance + eps_);
            running_mean_(k) = static_cast<T>((1 - momentum_) * running_mean_(k) + momentum_ * mean_[size(k)]);
            running_var_(k) = static_cast<T>((1 - momentum_) * running_var_(k) + momentum_ * variance * m / (m - 1));
        }
    }

    // sums[k] = sum of value(i, k) over the values i of feature k, in parallel blocks of features
    // (bounds from the shape only). Within a sample's plane of a feature the sum runs in `lanes`
    // interleaved partial sums: vectorisable, in an order fixed by the shape.
    template <class Value> void sum_per_feature(Index batch, std::vector<double>& sums, Value value) const {
        std::fill(sums.begin(), sums.end(), 0.0);
        const Chunks blocks{features_, (features_ + 7) / 8};
        parallel_for(blocks.count(), batch * features_ * plane_, [&](Index block) {
            const Index first = blocks.begin(block), end = first + blocks.size(block);
            double* total = sums.data();
            for (Index n = 0; n < batch; ++n) {
                if (plane_ == 1) {
                    for (Index k = first; k < end; ++k) total[k] += value(n * features_ + k, k);
                    continue;
                }
                for (Index k = first; k < end; ++k) total[k] += plane_sum((n * features_ + k) * plane_, k, value);
            }
        });
    }

    // The sum of value(i, k) over the plane_ values from `start`: `lanes` partial sums, then the rest.
    template <class Value> double plane_sum(Index start, Index k, Value& value) const {
        constexpr Index lanes = 8;
        double partial[lanes] = {};
        Index s = 0;
        for (; s + lanes <= plane_; s += lanes)
            for (Index lane = 0; lane < lanes; ++lane) partial[lane] += value(start + s + lane, k);
        double sum = 0;
        for (double part : partial) sum += part;
        for (; s < plane_; ++s) sum += value(start + s, k);
        return sum;
    }

    // body(i, k) for every value i of the batch, k its feature, in parallel chunks of samples.
    template <class Body> void for_each_value(Index batch, Body body) const {
        const Chunks chunks = batch_chunks(batch, features_ * plane_);
        parallel_for(chunks.count(), batch * features_ * plane_, [&](Index chunk) {
            for (Index n = chunks.begin(chunk); n < chunks.begin(chunk) + chunks.size(chunk); ++n) {
                if (plane_ == 1) {
                    for (Index k = 0; k < features_; ++k) body(n * features_ + k, k);
                    continue;
                }
                for (Index k = 0; k < features_; ++k)
                    for (Index i = (n * features_ + k) * plane_, end = i + plane_; i < end; ++i) body(i, k);
            }
        });
    }

    double momentum_;
    double eps_;
    Index features_ = 0;  // features (BatchNorm) or channels (BatchNorm2D) with statistics of their own
    Index plane_ = 1;     // values per feature per sample: 1, or H*W
    Vector<T> weight_, bias_, grad_weight_, grad_bias_;
    Vector<T> running_mean_, running_var_;
    bool batch_statistics_ = false;                           // the last forward used the batch's statistics
    std::vector<double> mean_, inv_std_;                      // the statistics the last forward used, per feature
    std::vector<double> sum_dy_, sum_dy_x_hat_, grad_scale_;  // per feature, in backward
};

// Per feature of (C, H, W): as PyTorch's BatchNorm1d on (N, C*H*W).
template <class T = float> using BatchNorm = BatchNormalization<T, false>;
// Per channel, over N*H*W: as PyTorch's BatchNorm2d.
template <class T = float> using BatchNorm2D = BatchNormalization<T, true>;

}  // namespace latent
