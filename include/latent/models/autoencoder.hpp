// Autoencoder<T>: an encoder and a decoder trained together to reproduce their input.
//   encode(x) -> codes, decode(z) -> images, reconstruct(x) = decode(encode(x)),
//   fit(...) trains both halves, save()/load() keep architecture, weights and training state.
// The constructor builds both halves and checks that the decoder gives back the input's shape.
#pragma once

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
        set_training(false);
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

    // Files: architecture + weights, and with an optimizer the state to resume training.
    void save(const std::string& path) const { detail::write_model_file<T>(path, payload(nullptr, 0)); }
    template <class OptimizerType>
    void save(const std::string& path, const OptimizerType& optimizer, int epochs_done) const {
        const Optimizer<T> any(optimizer);
        detail::write_model_file<T>(path, payload(&any, epochs_done));
    }
    static Autoencoder load(const std::string& path, const LayerRegistry<T>& registry = LayerRegistry<T>::builtin()) {
        return load_impl(path, nullptr, registry);
    }
    static Autoencoder load(const std::string& path, TrainingProgress<T>& progress,
                            const LayerRegistry<T>& registry = LayerRegistry<T>::builtin()) {
        return load_impl(path, &progress, registry);
    }

    void summary(std::ostream& out) const {
        encoder_.summary(out, "Encoder");
        decoder_.summary(out, "Decoder");
        out << "Autoencoder: " << input_shape().str() << " -> code " << code_shape().str() << " -> "
            << output_shape().str() << ", " << encoder_.parameter_count() + decoder_.parameter_count()
            << " parameters\n";
    }

    // The model interface fit() uses: one batch forward and backward through both halves.
    ConstTensorView<T> forward(ConstTensorView<T> x) { return decoder_.forward(encoder_.forward(x)); }
    ConstTensorView<T> backward(ConstTensorView<T> grad, bool skip_last_layer = false, bool want_input_gradient = false) {
        const auto grad_code = decoder_.backward(grad, skip_last_layer, true);
        return encoder_.backward(grad_code, false, want_input_gradient);
    }
    const std::vector<Parameter<T>>& parameters() const { return parameters_; }
    Index parameter_count() const { return encoder_.parameter_count() + decoder_.parameter_count(); }
    Index largest_activation() const { return std::max(encoder_.largest_activation(), decoder_.largest_activation()); }
    void zero_grad() {
        encoder_.zero_grad();
        decoder_.zero_grad();
    }
    void set_training(bool training) {
        encoder_.set_training(training);
        decoder_.set_training(training);
    }
    bool ends_with_sigmoid() const { return decoder_.ends_with_sigmoid(); }
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
        for (Index i = 0; i < decoder_.size(); ++i)
            if (decoder_.layer(i).template is<ConvTranspose2D<T>>()) {
                hint = " (without output_padding a stride-s ConvTranspose2D multiplies a size by s; with it "
                       "(same padding) the size is (in-1)*s + kernel - 2*(kernel/2) + output_padding: "
                       "output_padding = 0 brings 8 back to 15 for kernel 3, stride 2)";
                break;
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
    }

    std::string payload(const Optimizer<T>* optimizer, int epochs_done) const {
        detail::BinaryWriter out;
        out.string("Autoencoder");
        detail::write_shape(out, input_shape());
        detail::write_sequential(out, encoder_);
        detail::write_sequential(out, decoder_);
        detail::write_training(out, optimizer, epochs_done);
        return out.bytes();
    }

    static Autoencoder load_impl(const std::string& path, TrainingProgress<T>* progress,
                                 const LayerRegistry<T>& registry) {
        const std::vector<char> bytes = detail::read_model_file<T>(path);
        detail::BinaryReader in(bytes.data(), bytes.size(), "'" + path + "'");
        const std::string kind = in.string("model kind");
        if (kind != "Autoencoder")
            throw FormatError("'" + path + "' holds a model of kind '" + kind + "', not an Autoencoder");
        const Shape input = detail::read_shape(in);
        Encoder<T> encoder = detail::read_sequential(in, input, registry);
        Decoder<T> decoder = detail::read_sequential(in, encoder.output_shape(), registry);
        detail::read_training(in, progress);
        if (in.remaining() != 0) throw FormatError("'" + path + "': unexpected bytes after the model");
        return Autoencoder(std::move(encoder), std::move(decoder));
    }

    Encoder<T> encoder_;
    Decoder<T> decoder_;
    std::vector<Parameter<T>> parameters_;
    detail::ScratchSpace<T> workspace_;
};

// fit()'s Checkpoint callback saves through this (found by argument-dependent lookup).
template <class T, class OptimizerType>
void save_checkpoint(const std::string& path, const Autoencoder<T>& model, const OptimizerType& optimizer,
                     int epochs_done) {
    model.save(path, optimizer, epochs_done);
}

}  // namespace latent
