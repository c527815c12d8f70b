// GaussianSample: the reparameterised sample of a variational autoencoder's code, and its KL term.
//
// Input per sample: 2k values as (2k, 1, 1) -- the FIRST k are the means mu of q(z|x), the SECOND
// k their log-variances log sigma^2 (not log sigma). Output: the k values z as (k, 1, 1).
// - Training: z = mu + exp(1/2 log sigma^2) * eps, eps ~ N(0, I) drawn from pass.sample_rng(n)
//   (so a sample's noise does not depend on threads or slices; layers/dropout.hpp's rule).
// - Evaluation and Inference: z = mu.
// - Term "kl" (by default), when the pass computes terms: beta * sum_n KL(q(z|x_n) || N(0, I)) / N,
//   the KL divergence summed over the k latent dimensions and averaged over the batch, in nats:
//     KL(q(z|x_n) || N(0, I)) = sum_j 1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "../core/scratch.hpp"
#include "dropout.hpp"
#include "layer.hpp"
#include "penalties.hpp"

namespace latent {

template <class T = float> class GaussianSample {
public:
    using Scalar = T;
    static constexpr const char* type_name = "GaussianSample";
    bool backward_reads_output() const { return false; }  // reads mu, log sigma^2 and the stored eps

    explicit GaussianSample(double beta = 1.0, std::string term = "kl")
        : term_(type_name, std::move(term), "beta", beta) {}

    Shape output_shape(const Shape& input) const {
        if (input.height != 1 || input.width != 1 || input.channels < 2 || input.channels % 2 != 0)
            throw ShapeError(std::string(type_name) + ": the input must be 2k values as (2k, 1, 1) -- the first k the "
                             "means mu, the second k the log-variances log sigma^2 -- got " + input.str() +
                             (input.height == 1 && input.width == 1 ? " (an odd count)" : ""));
        return {input.channels / 2, 1, 1};
    }

    // forward:  z = mu + exp(1/2 log sigma^2) * eps (Training), z = mu (otherwise);
    //           term = beta / N * sum_n,j 1/2 (mu^2 + exp(log sigma^2) - 1 - log sigma^2)
    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) {
        const Index batch = x.dimension(0), k = y.size() / std::max<Index>(batch, 1);
        drew_noise_ = pass.training();
        if (drew_noise_) detail::grow(noise_, batch * k);
        detail::grow(sample_divergence_, batch);
        detail::for_each_sample(batch, 2 * k, [&](Index n) {
            const T* mean = x.data() + n * 2 * k;
            const T* log_variance = mean + k;
            T* z = y.data() + n * k;
            if (drew_noise_) {
                Rng rng = pass.sample_rng(n);
                T* eps = noise_.data() + n * k;
                for (Index j = 0; j < k; ++j) {
                    eps[j] = static_cast<T>(rng.normal());
                    z[j] = mean[j] + std::exp(T(0.5) * log_variance[j]) * eps[j];
                }
            } else {
                std::copy_n(mean, k, z);
            }
            double divergence = 0;
            for (Index j = 0; j < k; ++j) {
                const double m = mean[j], v = log_variance[j];
                divergence += 0.5 * (m * m + std::exp(v) - 1.0 - v);
            }
            sample_divergence_[static_cast<std::size_t>(n)] = divergence;
        });
        gradient_weight_ = 0;
        if (!pass.computes_terms()) return;
        const double per_sample = term_.in_use() / static_cast<double>(pass.whole_batch(batch));
        double total = 0;
        for (Index n = 0; n < batch; ++n) total += sample_divergence_[static_cast<std::size_t>(n)];  // in sample order
        term_.value = per_sample * total;
        gradient_weight_ = static_cast<T>(per_sample);
    }

    // backward: d mu           = dz + beta/N * mu
    //           d log sigma^2  = dz * eps * 1/2 exp(1/2 log sigma^2) [Training] + beta/N * 1/2 (exp(log sigma^2) - 1)
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        const Index batch = x.dimension(0), k = dy.size() / std::max<Index>(batch, 1);
        const T weight = gradient_weight_;
        detail::for_each_sample(batch, 2 * k, [&](Index n) {
            const T* mean = x.data() + n * 2 * k;
            const T* log_variance = mean + k;
            const T* dz = dy.data() + n * k;
            T* d_mean = dx.data() + n * 2 * k;
            T* d_log_variance = d_mean + k;
            for (Index j = 0; j < k; ++j) {
                const T sigma = std::exp(T(0.5) * log_variance[j]);
                const T through_z = drew_noise_ ? dz[j] * noise_[static_cast<std::size_t>(n * k + j)] * T(0.5) * sigma : T(0);
                d_mean[j] = dz[j] + weight * mean[j];
                d_log_variance[j] = through_z + weight * T(0.5) * (sigma * sigma - T(1));
            }
        });
    }

    std::string term() const { return term_.name; }
    double term_value() const { return term_.value; }
    void scale_term(double factor) { term_.scale = factor; }

    Config config() const { return Config().set("beta", term_.weight).set("term", term_.name); }
    static GaussianSample from_config(const Config& config) {
        return GaussianSample(config.get_double("beta"), config.get_string("term"));
    }

    double beta() const { return term_.weight; }
    // eps of the last Training forward, (batch, k) row-major; meaningful only after one.
    const std::vector<T>& noise() const { return noise_; }
    // KL(q(z|x_n) || N(0, I)) of each sample of the last forward, unweighted, in nats.
    const std::vector<double>& sample_divergence() const { return sample_divergence_; }

private:
    detail::WeightedTerm term_;
    bool drew_noise_ = false;        // the last forward was a Training pass: z depends on eps
    T gradient_weight_ = 0;          // beta / N of the last forward; 0 when it computed no term
    std::vector<T> noise_;           // eps per sample and latent dimension; grows to the largest batch
    std::vector<double> sample_divergence_;  // per sample of the last forward; grows likewise
};

}  // namespace latent
