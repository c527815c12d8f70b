// VariationalAutoencoder<T> (VAE<T>): an encoder to the parameters of q(z|x) = N(mu, sigma^2),
// a GaussianSample that draws z from it and adds the KL term, and a decoder from z.
//   encoder: input -> 2k values as (2k, 1, 1): the FIRST k are mu, the SECOND k are log sigma^2
//   decoder: (k, 1, 1) -> the input's shape; ending in a Sigmoid it is a Bernoulli decoder
//            (fit() then takes the BCE gradient on its logits), otherwise a Gaussian one
// The objective fit() minimises is loss(decoder(z), x) + beta * KL(q(z|x) || N(0, I)): with
// BinaryCrossEntropy<T>(1e-7, Reduction::SumPerSample) it is the negative ELBO in nats per image,
// and History shows "reconstruction" and "kl" apart. TermWeightSchedule("kl", linear_warmup(N))
// warms the KL weight up from 0.
//
// Evaluation: elbo() and log_likelihood() score images in nats, per image. log p(x|z) is the
// Bernoulli likelihood computed exactly from the decoder's logits (the input of its final Sigmoid)
// when the decoder ends in one, else the Gaussian likelihood of unit variance:
//   Bernoulli: log p(x|z) = -sum_i [max(l_i, 0) - l_i x_i + log1p(exp(-|l_i|))],  l = logits
//   Gaussian:  log p(x|z) = -1/2 sum_i (x_i - y_i)^2 - D/2 log(2 pi)
// Random draws come from seeds: image n of a call uses the stream derive_seed(seed, n), so a
// score does not depend on the batch size or the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../io/serialize.hpp"
#include "../layers/gaussian_sample.hpp"
#include "../training/fit.hpp"
#include "sequential.hpp"

namespace latent {

template <class T = float> class VariationalAutoencoder {
public:
    using Scalar = T;

    // Builds the encoder for `input`, the sampler for its 2k outputs and the decoder for k latent
    // values; weights are initialised from `seed`. ShapeError when the encoder's output is not 2k
    // values, when the decoder does not take k values, or when it does not give back `input`'s shape.
    VariationalAutoencoder(Encoder<T> encoder, Decoder<T> decoder, const Shape& input, std::uint64_t seed = 0,
                           GaussianSample<T> sampler = GaussianSample<T>())
        : encoder_(std::move(encoder)), sampler_{std::move(sampler)}, decoder_(std::move(decoder)) {
        encoder_.build(input, derive_seed(seed, 0));
        check_encoder_output();
        sampler_.build(encoder_.output_shape(), derive_seed(seed, 2));
        build_decoder(derive_seed(seed, 1));
        check_round_trip();
        collect_parameters();
        share_workspace();
    }
    VariationalAutoencoder(const VariationalAutoencoder& other)
        : encoder_(other.encoder_), sampler_(other.sampler_), decoder_(other.decoder_) {
        collect_parameters();
        share_workspace();
    }
    VariationalAutoencoder(VariationalAutoencoder&&) noexcept = default;
    VariationalAutoencoder& operator=(const VariationalAutoencoder& other) {
        if (this != &other) *this = VariationalAutoencoder(other);
        return *this;
    }
    VariationalAutoencoder& operator=(VariationalAutoencoder&&) noexcept = default;

    Encoder<T>& encoder() { return encoder_; }
    const Encoder<T>& encoder() const { return encoder_; }
    Decoder<T>& decoder() { return decoder_; }
    const Decoder<T>& decoder() const { return decoder_; }
    GaussianSample<T>& sampler() { return *sampler_.layer(0).template get<GaussianSample<T>>(); }
    const GaussianSample<T>& sampler() const { return *sampler_.layer(0).template get<GaussianSample<T>>(); }
    const Shape& input_shape() const { return encoder_.input_shape(); }
    const Shape& output_shape() const { return decoder_.output_shape(); }
    Index latent_size() const { return sampler_.output_shape().channels; }
    const Shape& latent_shape() const { return sampler_.output_shape(); }

    // mu of q(z|x) per sample, (n, k, 1, 1).
    Tensor<T> encode(const Tensor<T>& x, Index batch_size = 256) { return encode_distribution(x, batch_size).first; }
    // (mu, log sigma^2) of q(z|x) per sample, each (n, k, 1, 1).
    std::pair<Tensor<T>, Tensor<T>> encode_distribution(const Tensor<T>& x, Index batch_size = 256) {
        check_input(x, "encode_distribution");
        const Tensor<T> statistics = encoder_.predict(x, batch_size);
        const Index count = x.dimension(0), k = latent_size();
        std::pair<Tensor<T>, Tensor<T>> result{make_tensor<T>(count, latent_shape()), make_tensor<T>(count, latent_shape())};
        for (Index n = 0; n < count; ++n) {
            std::copy_n(statistics.data() + n * 2 * k, k, result.first.data() + n * k);
            std::copy_n(statistics.data() + n * 2 * k + k, k, result.second.data() + n * k);
        }
        return result;
    }
    // The decoder's output (probabilities for a Bernoulli decoder) for codes z of shape (n, k, 1, 1).
    Tensor<T> decode(const Tensor<T>& z, Index batch_size = 256) {
        if (sample_shape(z) != latent_shape())
            throw ShapeError("VariationalAutoencoder::decode: expected codes of shape " +
                             batch_shape_str(z.dimension(0), latent_shape()) + ", got " +
                             batch_shape_str(z.dimension(0), sample_shape(z)));
        return decoder_.predict(z, batch_size);
    }
    // decode(encode(x)): through the means, deterministic.
    Tensor<T> reconstruct(const Tensor<T>& x, Index batch_size = 256) { return decode(encode(x, batch_size), batch_size); }
    // `count` images decoded from z ~ N(0, I), drawn from `seed`.
    Tensor<T> generate(Index count, std::uint64_t seed = 0, Index batch_size = 256) {
        detail::require(count >= 1, "VariationalAutoencoder::generate", "count must be >= 1");
        Tensor<T> z = make_tensor<T>(count, latent_shape());
        Rng rng(seed);
        for (Index i = 0; i < z.size(); ++i) z.data()[i] = static_cast<T>(rng.normal());
        return decode(z, batch_size);
    }
    // For each pair (x_a[i], x_b[i]), `steps` images decoded along the straight line from mu(x_a[i])
    // to mu(x_b[i]), both ends included: (pairs * steps) images, pair by pair.
    Tensor<T> interpolate(const Tensor<T>& x_a, const Tensor<T>& x_b, Index steps) {
        detail::require(steps >= 2, "VariationalAutoencoder::interpolate", "steps must be >= 2 (both ends)");
        if (x_a.dimension(0) != x_b.dimension(0))
            throw ShapeError("VariationalAutoencoder::interpolate: x_a holds " + std::to_string(x_a.dimension(0)) +
                             " images but x_b " + std::to_string(x_b.dimension(0)) + "; they must pair up");
        const Tensor<T> mean_a = encode(x_a), mean_b = encode(x_b);
        const Index pairs = x_a.dimension(0), k = latent_size();
        Tensor<T> z = make_tensor<T>(pairs * steps, latent_shape());
        for (Index i = 0; i < pairs; ++i)
            for (Index s = 0; s < steps; ++s) {
                const double t = static_cast<double>(s) / static_cast<double>(steps - 1);
                for (Index j = 0; j < k; ++j)
                    z.data()[(i * steps + s) * k + j] =
                        static_cast<T>((1 - t) * mean_a.data()[i * k + j] + t * mean_b.data()[i * k + j]);
            }
        return decode(z);
    }

    // KL(q(z|x_n) || N(0, I)) per image, in nats (summed over the latent dimensions).
    std::vector<double> kl_divergence(const Tensor<T>& x) {
        const auto [mean, log_variance] = encode_distribution(x);
        const Index k = latent_size();
        std::vector<double> divergence(static_cast<std::size_t>(x.dimension(0)), 0.0);
        for (Index n = 0; n < x.dimension(0); ++n)
            for (Index j = n * k; j < (n + 1) * k; ++j) {
                const double m = mean.data()[j], v = log_variance.data()[j];
                divergence[static_cast<std::size_t>(n)] += 0.5 * (m * m + std::exp(v) - 1.0 - v);
            }
        return divergence;
    }

    // The evidence lower bound per image, in nats: log p(x|z) - KL(q(z|x) || N(0, I)) with one
    // z ~ q(z|x) per image (its eps from derive_seed(seed, n)) and the KL in closed form.
    std::vector<double> elbo(const Tensor<T>& x, std::uint64_t seed = 0) {
        const auto [mean, log_variance] = encode_distribution(x);
        const std::vector<double> divergence = kl_divergence(x);
        const Index count = x.dimension(0), k = latent_size(), pixels = input_shape().size();
        Sequential<T> net = likelihood_decoder();
        std::vector<double> result(static_cast<std::size_t>(count));
        constexpr Index rows = 256;
        Tensor<T> z = make_tensor<T>(std::min(rows, count), latent_shape());
        for (Index first = 0; first < count; first += rows) {
            const Index n_rows = std::min(rows, count - first);
            for (Index r = 0; r < n_rows; ++r) {
                Rng rng(derive_seed(seed, static_cast<std::uint64_t>(first + r)));
                for (Index j = (first + r) * k; j < (first + r + 1) * k; ++j)
                    z.data()[j - first * k] = static_cast<T>(mean.data()[j] + std::exp(0.5 * log_variance.data()[j]) * rng.normal());
            }
            log_conditional(net, view<T>(static_cast<const T*>(z.data()), n_rows, latent_shape()),
                            [&](Index r) { return x.data() + (first + r) * pixels; }, result.data() + first);
        }
        for (Index n = 0; n < count; ++n) result[static_cast<std::size_t>(n)] -= divergence[static_cast<std::size_t>(n)];
        return result;
    }

    // log p(x) per image, in nats, by importance sampling with `samples` draws z_i ~ q(z|x)
    // (Burda et al.'s bound, which tightens to log p(x) as samples grows):
    //   log p(x) ~ log (1/K) sum_i p(x|z_i) p(z_i) / q(z_i|x)
    // The log-weights and their log-sum-exp are in double, so the estimate stays finite in float
    // for thousands of samples. Image n draws its eps from derive_seed(seed, n).
    std::vector<double> log_likelihood(const Tensor<T>& x, Index samples, std::uint64_t seed = 0) {
        detail::require(samples >= 1, "VariationalAutoencoder::log_likelihood", "samples must be >= 1");
        const auto [mean, log_variance] = encode_distribution(x);
        const Index count = x.dimension(0), k = latent_size(), pixels = input_shape().size();
        Sequential<T> net = likelihood_decoder();
        const Index rows = std::min<Index>(samples, 1000);
        Tensor<T> z = make_tensor<T>(rows, latent_shape());
        std::vector<double> log_weight(static_cast<std::size_t>(samples)), prior_over_posterior(static_cast<std::size_t>(rows));
        std::vector<double> result(static_cast<std::size_t>(count));
        for (Index n = 0; n < count; ++n) {
            Rng rng(derive_seed(seed, static_cast<std::uint64_t>(n)));
            const T* m = mean.data() + n * k;
            const T* v = log_variance.data() + n * k;
            for (Index first = 0; first < samples; first += rows) {
                const Index n_rows = std::min(rows, samples - first);
                for (Index r = 0; r < n_rows; ++r) {
                    // log p(z) - log q(z|x) = sum_j -1/2 z_j^2 + 1/2 log sigma_j^2 + 1/2 eps_j^2 (the 2 pi cancel)
                    double log_ratio = 0;
                    for (Index j = 0; j < k; ++j) {
                        const double eps = rng.normal();
                        const T value = static_cast<T>(m[j] + std::exp(0.5 * v[j]) * eps);
                        z.data()[r * k + j] = value;
                        const double zd = static_cast<double>(value);
                        log_ratio += -0.5 * zd * zd + 0.5 * static_cast<double>(v[j]) + 0.5 * eps * eps;
                    }
                    prior_over_posterior[static_cast<std::size_t>(r)] = log_ratio;
                }
                log_conditional(net, view<T>(static_cast<const T*>(z.data()), n_rows, latent_shape()),
                                [&](Index) { return x.data() + n * pixels; }, log_weight.data() + first);
                for (Index r = 0; r < n_rows; ++r)
                    log_weight[static_cast<std::size_t>(first + r)] += prior_over_posterior[static_cast<std::size_t>(r)];
            }
            const double largest = *std::max_element(log_weight.begin(), log_weight.end());
            double sum = 0;
            for (double w : log_weight) sum += std::exp(w - largest);
            result[static_cast<std::size_t>(n)] = largest + std::log(sum) - std::log(static_cast<double>(samples));
        }
        return result;
    }

    // Tensors of another scalar type than the model's: compile-time errors naming both types
    // (core/tensor.hpp), not Eigen's conversion errors.
    template <class U> Tensor<T> encode(const Tensor<U>&, Index = 256) { return detail::refuse_other_scalar<T, U, Tensor<T>>(); }
    template <class U> Tensor<T> decode(const Tensor<U>&, Index = 256) { return detail::refuse_other_scalar<T, U, Tensor<T>>(); }
    template <class U> Tensor<T> reconstruct(const Tensor<U>&, Index = 256) {
        return detail::refuse_other_scalar<T, U, Tensor<T>>();
    }
    template <class U> std::vector<double> elbo(const Tensor<U>&, std::uint64_t = 0) {
        return detail::refuse_other_scalar<T, U, std::vector<double>>();
    }
    template <class U, class LossType, class OptimizerType>
    History fit(const Tensor<U>&, const Tensor<U>&, const LossType&, OptimizerType&, const FitOptions<T>& = {}) {
        return detail::refuse_other_scalar<T, U, History>();
    }

    // Trains on inputs -> targets (targets = inputs); see the header comment for the loss.
    template <class LossType, class OptimizerType>
    History fit(const Tensor<T>& inputs, const Tensor<T>& targets, const LossType& loss, OptimizerType& optimizer,
                const FitOptions<T>& options = {}, const Tensor<T>* validation_inputs = nullptr,
                const Tensor<T>* validation_targets = nullptr) {
        return latent::fit(*this, inputs, targets, loss, optimizer, options, validation_inputs, validation_targets);
    }
    template <class LossType, class OptimizerType>
    History fit(const BatchSource<T>& source, const LossType& loss, OptimizerType& optimizer,
                const FitOptions<T>& options = {}) {
        return latent::fit(*this, source, loss, optimizer, options);
    }
    template <class LossType>
    double evaluate(const Tensor<T>& inputs, const Tensor<T>& targets, const LossType& loss, Index batch_size = 256) {
        return latent::evaluate(*this, inputs, targets, loss, batch_size);
    }

    // One file: architecture (encoder, sampler, decoder), weights, and with an optimizer the
    // state to resume training (optimizer, epochs done, callback states such as a warm-up's).
    void save(const std::string& path) const { detail::write_model_file<T>(path, payload(detail::write_no_training)); }
    template <class OptimizerType>
    void save(const std::string& path, const OptimizerType& optimizer, int epochs_done,
              const CallbackStates& callback_states = {}) const {
        detail::write_model_file<T>(path, payload([&](detail::BinaryWriter& out) {
                                        detail::write_training<T>(out, optimizer, epochs_done, callback_states);
                                    }));
    }
    static VariationalAutoencoder load(const std::string& path, const Registry<T>& registry = Registry<T>::builtin()) {
        return load_impl(path, nullptr, registry);
    }
    static VariationalAutoencoder load(const std::string& path, TrainingProgress<T>& progress,
                                       const Registry<T>& registry = Registry<T>::builtin()) {
        return load_impl(path, &progress, registry);
    }

    void summary(std::ostream& out) const {
        encoder_.summary(out, "Encoder");
        decoder_.summary(out, "Decoder");
        out << "VariationalAutoencoder: " << input_shape().str() << " -> mu, log sigma^2 " << encoder_.output_shape().str()
            << " -> z " << latent_shape().str() << " -> " << output_shape().str() << ", " << parameter_count()
            << " parameters, beta " << sampler().beta() << "\n";
    }

    // The model interface fit() uses (training/step.hpp): encoder, sampler and decoder, each with
    // its own stream (0, 1, 2); the logits, when asked for, are the decoder's.
    ConstTensorView<T> forward(ConstTensorView<T> x, const Pass& pass = {}) {
        const auto statistics = encoder_.forward(x, inner_pass(pass, 0));
        const auto code = sampler_.forward(statistics, inner_pass(pass, 1));
        const auto output = decoder_.forward(code, pass.for_layer(2));
        if (pass.computes_terms()) collect_term_values();
        return output;
    }
    ConstTensorView<T> backward(ConstTensorView<T> grad, const Pass& pass = {}) {
        Pass decoder_pass = pass.for_layer(2);
        decoder_pass.input_gradient = true;
        const auto grad_code = decoder_.backward(grad, decoder_pass);
        Pass sampler_pass = inner_pass(pass, 1);
        sampler_pass.input_gradient = true;
        const auto grad_statistics = sampler_.backward(grad_code, sampler_pass);
        return encoder_.backward(grad_statistics, inner_pass(pass, 0));
    }
    const std::vector<Parameter<T>>& parameters() const { return parameters_; }
    Index parameter_count() const { return encoder_.parameter_count() + decoder_.parameter_count(); }
    Index largest_activation() const {
        return std::max({encoder_.largest_activation(), sampler_.largest_activation(), decoder_.largest_activation()});
    }
    void zero_grad() {
        encoder_.zero_grad();
        decoder_.zero_grad();
    }
    void freeze() {  // for Frozen (models/frozen.hpp)
        encoder_.freeze();
        sampler_.freeze();
        decoder_.freeze();
    }
    bool has_logistic_output() const { return decoder_.logistic_head() >= 0; }
    bool mixes_samples() const { return encoder_.mixes_samples() || sampler_.mixes_samples() || decoder_.mixes_samples(); }
    const std::vector<std::string>& term_names() const { return term_names_; }
    const std::vector<double>& term_values() const { return term_values_; }
    void scale_term(const std::string& name, double factor) {
        if (std::find(term_names_.begin(), term_names_.end(), name) == term_names_.end())
            sampler_.scale_term(name, factor);  // throws, naming the sampler's term
        for (Sequential<T>* part : {&encoder_, &sampler_, &decoder_})
            if (std::find(part->term_names().begin(), part->term_names().end(), name) != part->term_names().end())
                part->scale_term(name, factor);
    }
    std::string first_nonfinite_gradient() const {
        std::string name = decoder_.first_nonfinite_gradient("decoder ");
        return name.empty() ? encoder_.first_nonfinite_gradient("encoder ") : name;
    }

private:
    struct FromParts {};
    // From parts read from a file: all three built.
    VariationalAutoencoder(FromParts, Encoder<T> encoder, Sequential<T> sampler, Decoder<T> decoder)
        : encoder_(std::move(encoder)), sampler_(std::move(sampler)), decoder_(std::move(decoder)) {
        check_round_trip();
        collect_parameters();
        share_workspace();
    }

    void share_workspace() {
        for (Sequential<T>* part : {&encoder_, &sampler_, &decoder_}) part->lend_workspace(&workspace_.get());
    }

    void check_encoder_output() const {
        const Shape statistics = encoder_.output_shape();
        if (statistics.height == 1 && statistics.width == 1 && statistics.channels >= 2 && statistics.channels % 2 == 0)
            return;
        throw ShapeError("VariationalAutoencoder: the encoder outputs " + statistics.str() + " (" +
                         std::to_string(statistics.size()) + " values" +
                         (statistics.size() % 2 != 0 ? ", an odd count" : "") +
                         "); it must output 2k values as (2k, 1, 1), the first k the means mu and the second k the "
                         "log-variances log sigma^2 of q(z|x) (end it with Dense(2 * k))");
    }

    // The decoder takes the k latent values; a decoder built before for another input is refused.
    void build_decoder(std::uint64_t seed) {
        const Shape code = sampler_.output_shape();
        if (decoder_.is_built() && decoder_.input_shape() != code)
            throw ShapeError("VariationalAutoencoder: the decoder was built for input " + decoder_.input_shape().str() +
                             " but the latent code has k = " + std::to_string(code.channels) + " values " + code.str());
        try {
            decoder_.build(code, seed);
        } catch (const ShapeError& error) {
            throw ShapeError("VariationalAutoencoder: the decoder does not take the k = " + std::to_string(code.channels) +
                             " latent values " + code.str() + ": " + error.what());
        }
    }

    void check_round_trip() const {
        if (input_shape() == output_shape()) return;
        throw ShapeError("VariationalAutoencoder: the decoder outputs " + output_shape().str() + " but the input is " +
                         input_shape().str() + "; they must be equal" +
                         (input_shape().size() == output_shape().size() ? " (end the decoder with Reshape)" : ""));
    }

    void check_input(const Tensor<T>& x, const char* what) const {
        if (sample_shape(x) != input_shape())
            throw ShapeError(std::string("VariationalAutoencoder::") + what + ": expected input of shape " +
                             batch_shape_str(x.dimension(0), input_shape()) + ", got " +
                             batch_shape_str(x.dimension(0), sample_shape(x)));
    }

    void collect_parameters() {
        parameters_ = encoder_.parameters();
        for (const auto& parameter : decoder_.parameters()) parameters_.push_back(parameter);
        term_names_.clear();
        for (const Sequential<T>* part : {&encoder_, &sampler_, &decoder_})
            for (const auto& name : part->term_names())
                if (std::find(term_names_.begin(), term_names_.end(), name) == term_names_.end()) term_names_.push_back(name);
        term_values_.assign(term_names_.size(), 0.0);
    }

    // The three parts' term values, added up by name (no allocation).
    void collect_term_values() {
        std::fill(term_values_.begin(), term_values_.end(), 0.0);
        for (const Sequential<T>* part : {&encoder_, &sampler_, &decoder_})
            for (std::size_t t = 0; t < part->term_names().size(); ++t) {
                const auto slot = std::find(term_names_.begin(), term_names_.end(), part->term_names()[t]);
                term_values_[static_cast<std::size_t>(slot - term_names_.begin())] += part->term_values()[t];
            }
    }

    // The pass of part `index` before the decoder: its own stream, never the logits.
    static Pass inner_pass(const Pass& pass, std::uint64_t index) {
        Pass inner = pass.for_layer(index);
        inner.logits = false;
        return inner;
    }

    // The decoder up to its logits (a copy without the final Sigmoid and the regrouping layers
    // after it) for a Bernoulli decoder; a copy of the whole decoder for a Gaussian one.
    Sequential<T> likelihood_decoder() const {
        const Index head = decoder_.logistic_head();
        const Index kept = head >= 0 ? head : decoder_.size();
        std::vector<Layer<T>> layers;
        for (Index i = 0; i < kept; ++i) layers.push_back(decoder_.layer(i));
        if (layers.empty()) layers.push_back(Identity<T>());  // the decoder is a Sigmoid alone: logits = z
        Sequential<T> net(std::move(layers));
        net.build(latent_shape());
        // The same weights and buffers as the decoder's first layers (in layer order, a prefix of its lists).
        for (std::size_t p = 0; p < net.parameters().size() && kept > 0; ++p)
            std::copy_n(decoder_.parameters()[p].value, net.parameters()[p].size, net.parameters()[p].value);
        for (std::size_t b = 0; b < net.buffers().size() && kept > 0; ++b)
            std::copy_n(decoder_.buffers()[b].value, net.buffers()[b].size, net.buffers()[b].value);
        return net;
    }

    // out[r] = log p(x_r | z_r) for each row r of `z`, x_r = image_of(r) (formulas in the header).
    template <class ImageOf> void log_conditional(Sequential<T>& net, ConstTensorView<T> z, ImageOf image_of, double* out) {
        const Index rows = z.dimension(0), pixels = input_shape().size();
        const ConstTensorView<T> decoded = net.forward(z, Pass{});
        const bool bernoulli = decoder_.logistic_head() >= 0;
        const double gaussian_constant = 0.5 * static_cast<double>(pixels) * std::log(2.0 * 3.14159265358979323846);
        const Chunks chunks = batch_chunks(rows, pixels);
        parallel_for(chunks.count(), rows * pixels, [&](Index chunk) {
            for (Index r = chunks.begin(chunk); r < chunks.begin(chunk) + chunks.size(chunk); ++r) {
                using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
                const Eigen::Map<const Array> y(decoded.data() + r * pixels, pixels), x(image_of(r), pixels);
                if (bernoulli)
                    out[r] = -(y.max(T(0)) - y * x + (-y.abs()).exp().log1p()).template cast<double>().sum();
                else
                    out[r] = -0.5 * (x - y).square().template cast<double>().sum() - gaussian_constant;
            }
        });
    }

    template <class WriteTraining> std::string payload(WriteTraining&& write_training_part) const {
        detail::BinaryWriter out;
        out.string("VariationalAutoencoder");
        detail::write_shape(out, input_shape());
        detail::write_sequential(out, encoder_);
        detail::write_sequential(out, sampler_);
        detail::write_sequential(out, decoder_);
        write_training_part(out);
        return out.bytes();
    }

    static VariationalAutoencoder load_impl(const std::string& path, TrainingProgress<T>* progress,
                                            const Registry<T>& registry) {
        return detail::read_model<T>(path, "VariationalAutoencoder", progress, registry, [&](detail::PayloadReader<T>& reader) {
            const Shape input = detail::read_shape(reader.in);
            Encoder<T> encoder = detail::read_sequential(reader, input);
            Sequential<T> sampler = detail::read_sequential(reader, encoder.output_shape());
            if (sampler.size() != 1 || !sampler.layer(0).template is<GaussianSample<T>>())
                throw FormatError("'" + path + "': the VariationalAutoencoder's sampler is not one GaussianSample layer");
            Decoder<T> decoder = detail::read_sequential(reader, sampler.output_shape());
            return VariationalAutoencoder(FromParts{}, std::move(encoder), std::move(sampler), std::move(decoder));
        });
    }

    Encoder<T> encoder_;
    Sequential<T> sampler_;  // one GaussianSample
    Decoder<T> decoder_;
    std::vector<Parameter<T>> parameters_;
    std::vector<std::string> term_names_;
    std::vector<double> term_values_;
    detail::ScratchSpace<T> workspace_;
};

template <class T = float> using VAE = VariationalAutoencoder<T>;

// fit()'s Checkpoint callback saves through this (found by argument-dependent lookup).
template <class T, class OptimizerType>
void save_checkpoint(const std::string& path, const VariationalAutoencoder<T>& model, const OptimizerType& optimizer,
                     int epochs_done, const CallbackStates& callback_states = {}) {
    model.save(path, optimizer, epochs_done, callback_states);
}

}  // namespace latent
