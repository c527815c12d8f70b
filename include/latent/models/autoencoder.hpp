// Autoencoder<T>: an encoder and a decoder trained together to reproduce their input.
//   encode(x) -> codes, decode(z) -> images, reconstruct(x) = decode(encode(x)),
//   fit(...) trains both halves, save()/load() keep architecture, weights and training state.
// The constructor builds both halves and checks that the decoder gives back the input's shape.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../io/serialize.hpp"
#include "../layers/conv_transpose2d.hpp"
#include "../training/fit.hpp"
#include "sequential.hpp"

namespace latent {

template <class T = float> class Autoencoder {
public:
    using Scalar = T;

    // Builds the encoder for `input` and the decoder for the encoder's output; weights are
    // initialised from `seed`. ShapeError if the decoder does not give back `input`'s shape.
    Autoencoder(Encoder<T> encoder, Decoder<T> decoder, const Shape& input, std::uint64_t seed = 0)
        : encoder_(std::move(encoder)), decoder_(std::move(decoder)) {
        encoder_.build(input, derive_seed(seed, 0));
        decoder_.build(encoder_.output_shape(), derive_seed(seed, 1));
        check_round_trip();
        collect_parameters();
        share_workspace();
    }
    Autoencoder(const Autoencoder& other) : encoder_(other.encoder_), decoder_(other.decoder_) {
        collect_parameters();
        share_workspace();
    }
    Autoencoder(Autoencoder&&) noexcept = default;
    Autoencoder& operator=(const Autoencoder& other) {
        if (this != &other) *this = Autoencoder(other);
        return *this;
    }
    Autoencoder& operator=(Autoencoder&&) noexcept = default;

    Encoder<T>& encoder() { return encoder_; }
    const Encoder<T>& encoder() const { return encoder_; }
    Decoder<T>& decoder() { return decoder_; }
    const Decoder<T>& decoder() const { return decoder_; }
    const Shape& input_shape() const { return encoder_.input_shape(); }
    const Shape& output_shape() const { return decoder_.output_shape(); }
    const Shape& code_shape() const { return encoder_.output_shape(); }

    // Inference on whole tensors, in batches of `batch_size` (allocate their results).
    Tensor<T> encode(const Tensor<T>& x, Index batch_size = 256) { return encoder_.predict(x, batch_size); }
    Tensor<T> decode(const Tensor<T>& codes, Index batch_size = 256) { return decoder_.predict(codes, batch_size); }
    Tensor<T> reconstruct(const Tensor<T>& x, Index batch_size = 256) {
        detail::require(batch_size >= 1, "Autoencoder::reconstruct", "batch_size must be >= 1");
        check_input(x, "reconstruct");
        Tensor<T> result = make_tensor<T>(x.dimension(0), output_shape());
        const Index size = output_shape().size();
        for (Index first = 0; first < x.dimension(0); first += batch_size) {
            const Index n = std::min(batch_size, x.dimension(0) - first);
            const auto output = forward(batch_slice<T>(view(x), first, n));
            std::copy_n(output.data(), n * size, result.data() + first * size);
        }
        return result;
    }

    // Each sample's mean squared reconstruction error: an anomaly score (inputs unlike the
    // training data reconstruct worse). Threshold it, e.g., at a high percentile of the scores
    // of the training data.
    std::vector<double> reconstruction_error(const Tensor<T>& x, Index batch_size = 256) {
        const Tensor<T> reconstructed = reconstruct(x, batch_size);
        const Index size = input_shape().size();
        std::vector<double> errors(static_cast<std::size_t>(x.dimension(0)));
        for (Index n = 0; n < x.dimension(0); ++n) {
            double sum = 0;
            for (Index i = n * size; i < (n + 1) * size; ++i) {
                const double difference = static_cast<double>(reconstructed.data()[i]) - x.data()[i];
                sum += difference * difference;
            }
            errors[static_cast<std::size_t>(n)] = sum / static_cast<double>(size);
        }
        return errors;
    }

    // Tensors of another scalar type than the model's: compile-time errors naming both types
    // (core/tensor.hpp), not Eigen's conversion errors.
    template <class U> Tensor<T> encode(const Tensor<U>&, Index = 256) { return detail::refuse_other_scalar<T, U, Tensor<T>>(); }
    template <class U> Tensor<T> decode(const Tensor<U>&, Index = 256) { return detail::refuse_other_scalar<T, U, Tensor<T>>(); }
    template <class U> Tensor<T> reconstruct(const Tensor<U>&, Index = 256) {
        return detail::refuse_other_scalar<T, U, Tensor<T>>();
    }
    template <class U> std::vector<double> reconstruction_error(const Tensor<U>&, Index = 256) {
        return detail::refuse_other_scalar<T, U, std::vector<double>>();
    }
    template <class U, class LossType, class OptimizerType>
    History fit(const Tensor<U>&, const Tensor<U>&, const LossType&, OptimizerType&, const FitOptions<T>& = {}) {
        return detail::refuse_other_scalar<T, U, History>();
    }

    // Trains on inputs -> targets (targets = inputs for a plain autoencoder, clean images for a
    // denoising one, or set options.corruption to corrupt inputs on the fly).
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

    // Files: architecture + weights, and with an optimizer (any optimizer type) the state to
    // resume training.
    void save(const std::string& path) const { detail::write_model_file<T>(path, payload(detail::write_no_training)); }
    template <class OptimizerType>
    void save(const std::string& path, const OptimizerType& optimizer, int epochs_done,
              const CallbackStates& callback_states = {}) const {
        detail::write_model_file<T>(path, payload([&](detail::BinaryWriter& out) {
                                        detail::write_training<T>(out, optimizer, epochs_done, callback_states);
                                    }));
    }
    static Autoencoder load(const std::string& path, const Registry<T>& registry = Registry<T>::builtin()) {
        return load_impl(path, nullptr, registry);
    }
    static Autoencoder load(const std::string& path, TrainingProgress<T>& progress,
                            const Registry<T>& registry = Registry<T>::builtin()) {
        return load_impl(path, &progress, registry);
    }

    // The model part of a file's payload (io/serialize.hpp): input shape, encoder, decoder; for
    // files that hold an autoencoder and more (models/anomaly_detector.hpp).
    void write_model_part(detail::BinaryWriter& out) const {
        detail::write_shape(out, input_shape());
        detail::write_sequential(out, encoder_);
        detail::write_sequential(out, decoder_);
    }
    static Autoencoder read_model_part(detail::PayloadReader<T>& reader) {
        const Shape input = detail::read_shape(reader.in);
        Encoder<T> encoder = detail::read_sequential(reader, input);
        Decoder<T> decoder = detail::read_sequential(reader, encoder.output_shape());
        return Autoencoder(std::move(encoder), std::move(decoder));
    }

    void summary(std::ostream& out) const {
        encoder_.summary(out, "Encoder");
        decoder_.summary(out, "Decoder");
        out << "Autoencoder: " << input_shape().str() << " -> code " << code_shape().str() << " -> "
            << output_shape().str() << ", " << encoder_.parameter_count() + decoder_.parameter_count()
            << " parameters\n";
    }

    // The model interface fit() uses (training/step.hpp): a pass through both halves, each with
    // its own stream; the logits, when asked for, are the decoder's.
    ConstTensorView<T> forward(ConstTensorView<T> x, const Pass& pass = {}) {
        const auto output = decoder_.forward(encoder_.forward(x, encoder_pass(pass)), pass.for_layer(1));
        if (pass.computes_terms()) collect_term_values();
        return output;
    }
    ConstTensorView<T> backward(ConstTensorView<T> grad, const Pass& pass = {}) {
        Pass decoder_pass = pass.for_layer(1);
        decoder_pass.input_gradient = true;
        const auto grad_code = decoder_.backward(grad, decoder_pass);
        return encoder_.backward(grad_code, encoder_pass(pass));
    }
    const std::vector<Parameter<T>>& parameters() const { return parameters_; }
    Index parameter_count() const { return encoder_.parameter_count() + decoder_.parameter_count(); }
    Index largest_activation() const { return std::max(encoder_.largest_activation(), decoder_.largest_activation()); }
    void zero_grad() {
        encoder_.zero_grad();
        decoder_.zero_grad();
    }
    void freeze() {  // for Frozen (models/frozen.hpp)
        encoder_.freeze();
        decoder_.freeze();
    }
    bool has_logistic_output() const { return decoder_.logistic_head() >= 0; }
    bool mixes_samples() const { return encoder_.mixes_samples() || decoder_.mixes_samples(); }
    const std::vector<std::string>& term_names() const { return term_names_; }
    const std::vector<double>& term_values() const { return term_values_; }
    void scale_term(const std::string& name, double factor) {
        const auto has = [&name](const Sequential<T>& half) {
            return std::find(half.term_names().begin(), half.term_names().end(), name) != half.term_names().end();
        };
        if (!has(encoder_) && !has(decoder_)) encoder_.scale_term(name, factor);  // throws, naming the terms
        if (has(encoder_)) encoder_.scale_term(name, factor);
        if (has(decoder_)) decoder_.scale_term(name, factor);
    }
    std::string first_nonfinite_gradient() const {
        std::string name = decoder_.first_nonfinite_gradient("decoder ");
        return name.empty() ? encoder_.first_nonfinite_gradient("encoder ") : name;
    }

private:
    Autoencoder(Encoder<T> encoder, Decoder<T> decoder) : encoder_(std::move(encoder)), decoder_(std::move(decoder)) {
        check_round_trip();
        collect_parameters();
        share_workspace();
    }

    // Both halves run their layers on one Workspace: they never run at the same time. (A move
    // keeps the Workspace's address, so the loan survives moves of the model.)
    void share_workspace() {
        encoder_.lend_workspace(&workspace_.get());
        decoder_.lend_workspace(&workspace_.get());
    }

    void check_round_trip() const {
        const Shape input = encoder_.input_shape(), output = decoder_.output_shape();
        if (input == output) return;
        std::string hint;
        if (input.size() == output.size())
            hint = " (the same " + std::to_string(input.size()) + " values: end the decoder with Reshape({" +
                   std::to_string(input.channels) + ", " + std::to_string(input.height) + ", " +
                   std::to_string(input.width) + "}))";
        for (Index i = 0; i < decoder_.size() && hint.empty(); ++i)
            if (decoder_.layer(i).template is<ConvTranspose2D<T>>()) {
                hint = " (without output_padding a stride-s ConvTranspose2D multiplies a size by s; with it "
                       "(same padding) the size is (in-1)*s + kernel - 2*(kernel/2) + output_padding: "
                       "output_padding = 0 brings 8 back to 15 for kernel 3, stride 2)";
            }
        throw ShapeError("Autoencoder: the decoder outputs " + output.str() + " but the input is " + input.str() +
                         "; they must be equal" + hint);
    }

    void check_input(const Tensor<T>& x, const char* what) const {
        if (sample_shape(x) != input_shape())
            throw ShapeError(std::string("Autoencoder::") + what + ": expected input of shape " +
                             batch_shape_str(x.dimension(0), input_shape()) + ", got " +
                             batch_shape_str(x.dimension(0), sample_shape(x)));
    }

    void collect_parameters() {
        parameters_ = encoder_.parameters();
        for (const auto& parameter : decoder_.parameters()) parameters_.push_back(parameter);
        term_names_ = encoder_.term_names();
        for (const auto& name : decoder_.term_names())
            if (std::find(term_names_.begin(), term_names_.end(), name) == term_names_.end()) term_names_.push_back(name);
        term_values_.assign(term_names_.size(), 0.0);
    }

    // The two halves' term values, added up by name.
    void collect_term_values() {
        std::fill(term_values_.begin(), term_values_.end(), 0.0);
        for (const Sequential<T>* half : {&encoder_, &decoder_})
            for (std::size_t t = 0; t < half->term_names().size(); ++t) {
                const auto slot = std::find(term_names_.begin(), term_names_.end(), half->term_names()[t]);
                term_values_[static_cast<std::size_t>(slot - term_names_.begin())] += half->term_values()[t];
            }
    }

    // The encoder's pass: its own stream, never the logits (those are the decoder's output).
    static Pass encoder_pass(const Pass& pass) {
        Pass encoder = pass.for_layer(0);
        encoder.logits = false;
        return encoder;
    }

    template <class WriteTraining> std::string payload(WriteTraining&& write_training_part) const {
        detail::BinaryWriter out;
        out.string("Autoencoder");
        write_model_part(out);
        write_training_part(out);
        return out.bytes();
    }

    static Autoencoder load_impl(const std::string& path, TrainingProgress<T>* progress, const Registry<T>& registry) {
        return detail::read_model<T>(path, "Autoencoder", progress, registry, read_model_part);
    }

    Encoder<T> encoder_;
    Decoder<T> decoder_;
    std::vector<Parameter<T>> parameters_;
    std::vector<std::string> term_names_;
    std::vector<double> term_values_;
    detail::ScratchSpace<T> workspace_;
};

// fit()'s Checkpoint callback saves through this (found by argument-dependent lookup).
template <class T, class OptimizerType>
void save_checkpoint(const std::string& path, const Autoencoder<T>& model, const OptimizerType& optimizer,
                     int epochs_done, const CallbackStates& callback_states = {}) {
    model.save(path, optimizer, epochs_done, callback_states);
}

}  // namespace latent
