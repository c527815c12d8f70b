// Sequential<T>: layers applied one after another. build() infers every shape, checks that each
// layer fits the previous one, initialises the weights and fixes the parameter list; activation
// and gradient buffers grow to the largest batch seen and are reused after that, so a
// steady-state training step allocates nothing. An element-wise layer (ReLU, Sigmoid, Flatten,
// ...) writes its output over its input's buffer when the layer before it does not need its own
// output for backward: a model keeps one buffer, not two, per such pair.
//
// Passes: forward and backward take a Pass (core/pass.hpp) that each layer receives with its
// own random stream (the model's stream and the layer's index). A model collects the terms its
// layers add to the objective (term_names(), term_values()), and knows whether its output is a
// final Sigmoid's (logistic_head()): then a loss can take its gradient on the logits.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../layers/activations.hpp"
#include "../layers/conv2d.hpp"
#include "../layers/layer.hpp"
#include "../layers/reshape.hpp"

namespace latent {

template <class T = float> class Sequential {
public:
    using Scalar = T;

    Sequential() = default;
    Sequential(std::initializer_list<Layer<T>> layers) : layers_(layers) {}
    explicit Sequential(std::vector<Layer<T>> layers) : layers_(std::move(layers)) {}

    Sequential(const Sequential& other)
        : layers_(other.layers_), input_shape_(other.input_shape_), built_(other.built_) {
        collect_parameters();
    }
    Sequential(Sequential&& other) noexcept = default;
    Sequential& operator=(const Sequential& other) {
        if (this != &other) *this = Sequential(other);
        return *this;
    }
    Sequential& operator=(Sequential&& other) noexcept = default;

    // Appends a layer; the model must be built (again) before use.
    Sequential& add(Layer<T> layer) {
        layers_.push_back(std::move(layer));
        built_ = false;
        return *this;
    }

    // Infers every layer's shape from `input`, initialises weights from `seed` (each layer from its
    // own stream, so adding a layer at the end does not change the others' initial weights).
    // Throws ShapeError naming the first layer that does not fit.
    Sequential& build(const Shape& input, std::uint64_t seed = 0) {
        if (layers_.empty()) throw ShapeError("Sequential: cannot build a model with no layers");
        Shape shape = input;
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            Rng rng(derive_seed(seed, streams::init, i));
            try {
                layers_[i].build(shape, rng);
            } catch (const ShapeError& error) {
                throw ShapeError("Sequential: " + layer_name(static_cast<Index>(i)) + " does not fit its input " +
                                 shape.str() + ": " + error.what() + layout_hint(input));
            }
            shape = layers_[i].output_shape();
        }
        input_shape_ = input;
        built_ = true;
        collect_parameters();
        return *this;
    }

    bool is_built() const { return built_; }
    Index size() const { return static_cast<Index>(layers_.size()); }
    Layer<T>& layer(Index index) { return layers_.at(static_cast<std::size_t>(index)); }
    const Layer<T>& layer(Index index) const { return layers_.at(static_cast<std::size_t>(index)); }
    const Shape& input_shape() const {
        require_built("input_shape");
        return input_shape_;
    }
    const Shape& output_shape() const {
        require_built("output_shape");
        return layers_.back().output_shape();
    }
    // "layer 3 (Conv2D)": how messages name a layer (1-based, as in summary()).
    std::string layer_name(Index index) const {
        return "layer " + std::to_string(index + 1) + " (" + layers_[static_cast<std::size_t>(index)].type() + ")";
    }

    // Runs the batch through every layer, each with its own stream of `pass`. The result views
    // an internal buffer that stays valid until the next forward(); `x` must stay alive until
    // backward() has run. A pass that computes terms leaves them in term_values().
    ConstTensorView<T> forward(ConstTensorView<T> x, const Pass& pass = {}) {
        require_built("forward");
        const Shape actual = sample_shape<T>(x);
        if (actual != input_shape_)
            throw ShapeError("Sequential forward: expected input of shape " +
                             batch_shape_str(x.dimension(0), input_shape_) + ", got " +
                             batch_shape_str(x.dimension(0), actual) + layout_hint(actual));
        const Index batch = x.dimension(0);
        reserve(batch);
        lend_workspace_to_layers();
        input_data_ = x.data();
        const T* current = x.data();  // (Eigen maps copy values on assignment: keep pointers)
        for (Index i = 0; i < size(); ++i) {
            auto& layer = layers_[static_cast<std::size_t>(i)];
            const TensorView<T> output = activation_view(i, batch);
            const ConstTensorView<T> input = view<T>(current, batch, layer.input_shape());
            if (Conv2D<T>* conv = conv_fusing_relu(i)) {
                conv->forward_relu(input, output);
                ++i;  // the ReLU's output is the same buffer, already written
            } else {
                layer.forward(input, output, pass.for_layer(static_cast<std::uint64_t>(i)));
            }
            current = output.data();
        }
        batch_ = batch;
        if (pass.computes_terms()) collect_term_values();
        return view<T>(current, batch, output_shape());
    }

    // The output of layer `index` from the last forward() -- unless the next layer computed in
    // place over it (shares_buffer_with_next(index)); the model's output is always kept.
    ConstTensorView<T> activation(Index index) const {
        const Shape shape = layers_.at(static_cast<std::size_t>(index)).output_shape();
        return view<T>(activations_[buffer_of_[static_cast<std::size_t>(index)]].data(), batch_, shape);
    }
    bool shares_buffer_with_next(Index index) const {
        const auto i = static_cast<std::size_t>(index);
        return i + 1 < buffer_of_.size() && buffer_of_[i + 1] == buffer_of_[i];
    }

    // Backpropagates dL/d(output) through the layers of the last forward(); parameter gradients
    // accumulate, and layers with terms add their terms' gradients. With pass.logits, `grad` is
    // dL/d(logits), the input of the logistic head (laid out as the output: the layers after the
    // head only regroup values), and backward starts below the head. With pass.input_gradient the
    // result views dL/d(model input) (an internal buffer, valid until the next backward);
    // otherwise it is empty.
    ConstTensorView<T> backward(ConstTensorView<T> grad, const Pass& pass = {}) {
        require_built("backward");
        if (input_data_ == nullptr) throw ShapeError("Sequential backward: call forward() first");
        if (pass.logits && logistic_head_ < 0)
            throw ArgumentError("Sequential backward: a gradient on the logits needs a model whose output is a "
                                "final Sigmoid's (followed only by Flatten or Reshape)");
        if (grad.dimension(0) != batch_ || sample_shape<T>(grad) != output_shape())
            throw ShapeError("Sequential backward: gradient should be " + batch_shape_str(batch_, output_shape()) +
                             ", got " + batch_shape_str(grad.dimension(0), sample_shape<T>(grad)));
        lend_workspace_to_layers();
        const Index last = pass.logits ? logistic_head_ - 1 : size() - 1;
        const std::vector<int>& targets = gradient_targets_[pass.logits ? 1 : 0];
        const T* current = grad.data();
        for (Index i = last; i >= 0; --i) {
            if (i > 0 && conv_fusing_relu(i - 1) != nullptr) continue;  // the Conv2D before it runs its backward
            auto& layer = layers_[static_cast<std::size_t>(i)];
            const ConstTensorView<T> x = i == 0 ? view<T>(input_data_, batch_, input_shape_) : activation(i - 1);
            const bool need_dx = i > 0 || pass.input_gradient;
            std::vector<T>& target = gradients_[static_cast<std::size_t>(targets[static_cast<std::size_t>(i)])];
            const TensorView<T> dx = need_dx ? view<T>(target.data(), batch_, layer.input_shape())
                                             : TensorView<T>(nullptr, 0, 0, 0, 0);
            const ConstTensorView<T> dy = view<T>(current, batch_, layer.output_shape());
            Conv2D<T>* conv = i < last ? conv_fusing_relu(i) : nullptr;
            if (conv != nullptr)  // dy is the ReLU's, activation(i) its output
                conv->backward_relu(x, activation(i), dy, dx);
            else
                layer.backward(x, activation(i), dy, dx, pass.for_layer(static_cast<std::uint64_t>(i)));
            current = dx.data();
        }
        if (!pass.input_gradient) return ConstTensorView<T>(nullptr, 0, 0, 0, 0);
        return view<T>(current, batch_, input_shape_);
    }

    // The index of the Sigmoid whose output is the model's output (only Flatten or Reshape may
    // follow it), or -1: where a loss on the logits starts backward.
    Index logistic_head() const { return logistic_head_; }
    bool has_logistic_output() const { return logistic_head_ >= 0; }
    // True when a sample's output depends on the other samples of its batch (batch statistics).
    bool mixes_samples() const {
        return std::any_of(layers_.begin(), layers_.end(), [](const Layer<T>& layer) { return layer.mixes_samples(); });
    }

    // The names of the terms the layers add to the objective, each once, in layer order; and
    // their values from the last forward whose pass computed terms (layers that share a name add up).
    const std::vector<std::string>& term_names() const { return term_names_; }
    const std::vector<double>& term_values() const { return term_values_; }
    // Multiplies the configured weight of every layer's term `name` by `factor` (a schedule's
    // warm-up); ArgumentError when no layer adds that term.
    void scale_term(const std::string& name, double factor) {
        if (std::find(term_names_.begin(), term_names_.end(), name) == term_names_.end())
            throw ArgumentError("scale_term: no layer of the model adds a term '" + name + "'" + known_terms());
        for (auto& layer : layers_)
            if (layer.term() == name) layer.scale_term(factor);
    }

    // The scratch memory the layers share during a pass: the model's own, or one lent to it (an
    // Autoencoder lends one to both halves).
    void lend_workspace(Workspace<T>* workspace) { workspace_.lend(workspace); }

    // Every parameter (value and gradient views) in layer order; fixed after build().
    const std::vector<Parameter<T>>& parameters() const { return parameters_; }
    // The layer index each entry of parameters() belongs to.
    const std::vector<Index>& parameter_layers() const { return parameter_layers_; }
    // Every buffer (state saved with the weights, not trained) in layer order, and its layer.
    const std::vector<Buffer<T>>& buffers() const { return buffers_; }
    const std::vector<Index>& buffer_layers() const { return buffer_layers_; }
    // Elements per sample of the largest tensor a pass holds: the input or a layer's output.
    Index largest_activation() const {
        Index largest = input_shape_.size();
        for (const auto& layer : layers_) largest = std::max(largest, layer.output_shape().size());
        return largest;
    }
    Index parameter_count() const {
        Index count = 0;
        for (const auto& parameter : parameters_) count += parameter.size;
        return count;
    }
    void zero_grad() {
        for (auto& parameter : parameters_) std::fill_n(parameter.grad, parameter.size, T(0));
    }
    // Prepares every layer for inference only (the layer contract's freeze()); for Frozen.
    void freeze() {
        for (auto& layer : layers_) layer.freeze();
    }
    // The name of the layer nearest the output whose parameter gradient holds a NaN or an
    // infinity (where a numeric failure showed first during backward), or "" if all are finite.
    std::string first_nonfinite_gradient(const std::string& prefix = "") const {
        for (std::size_t p = parameters_.size(); p-- > 0;) {
            const auto& parameter = parameters_[p];
            for (Index i = 0; i < parameter.size; ++i)
                if (!std::isfinite(parameter.grad[i]))
                    return prefix + layer_name(parameter_layers_[p]) + " " + parameter.name;
        }
        return "";
    }

    // Predictions for a whole tensor, computed in batches of `batch_size` (allocates the result).
    Tensor<T> predict(const Tensor<T>& x, Index batch_size = 256) {
        detail::require(batch_size >= 1, "Sequential::predict", "batch_size must be >= 1");
        require_built("predict");
        const Index count = x.dimension(0);
        Tensor<T> result = make_tensor<T>(count, output_shape());
        const Index out_size = output_shape().size();
        for (Index first = 0; first < count; first += batch_size) {
            const Index n = std::min(batch_size, count - first);
            const auto output = forward(batch_slice<T>(view(x), first, n));
            std::copy_n(output.data(), n * out_size, result.data() + first * out_size);
        }
        return result;
    }

    // A tensor of another scalar type than the model's: a compile-time error naming both types.
    template <class U> Tensor<T> predict(const Tensor<U>&, Index = 256) {
        return detail::refuse_other_scalar<T, U, Tensor<T>>();
    }

    // A table like Keras's model.summary(): layer, output shape, parameter count, totals.
    void summary(std::ostream& out, const std::string& title = "Sequential") const {
        require_built("summary");
        const std::string rule(72, '-');
        out << title << ", input " << input_shape_.str() << "\n" << rule << "\n"
            << std::left << std::setw(30) << "Layer (type)" << std::setw(20) << "Output shape"
            << std::right << std::setw(12) << "Params" << "   Config\n"
            << rule << "\n";
        Index total = 0;
        for (Index i = 0; i < size(); ++i) {
            const auto& layer = layers_[static_cast<std::size_t>(i)];
            const Index count = layer_parameter_count(i);
            total += count;
            out << std::left << std::setw(30) << (std::to_string(i + 1) + " " + layer.type())
                << std::setw(20) << layer.output_shape().str() << std::right << std::setw(12) << count
                << "   " << layer.config().str() << "\n";
        }
        out << rule << "\nTotal params: " << total << "\n";
    }

private:
    void require_built(const char* what) const {
        if (!built_)
            throw ShapeError(std::string("Sequential::") + what +
                             ": the model is not built; call build(input_shape) first");
    }

    Index layer_parameter_count(Index layer) const {
        Index count = 0;
        for (std::size_t p = 0; p < parameters_.size(); ++p)
            if (parameter_layers_[p] == layer) count += parameters_[p].size;
        return count;
    }

    void collect_parameters() {
        parameters_.clear();
        parameter_layers_.clear();
        buffers_.clear();
        buffer_layers_.clear();
        if (!built_) return;
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            for (auto& parameter : layers_[i].parameters()) {
                parameters_.push_back(parameter);
                parameter_layers_.push_back(static_cast<Index>(i));
            }
            for (auto& buffer : layers_[i].buffers()) {
                buffers_.push_back(buffer);
                buffer_layers_.push_back(static_cast<Index>(i));
            }
        }
        find_logistic_head();
        collect_term_names();
        plan_buffers();
        for (auto& buffer : gradients_) buffer.clear();
        input_data_ = nullptr;
        batch_ = 0;
    }

    void find_logistic_head() {
        logistic_head_ = -1;
        for (Index i = size() - 1; i >= 0; --i) {
            const Layer<T>& layer = layers_[static_cast<std::size_t>(i)];
            if (layer.template is<Sigmoid<T>>()) {
                logistic_head_ = i;
                return;
            }
            if (!layer.template is<Flatten<T>>() && !layer.template is<Reshape<T>>()) return;
        }
    }

    void collect_term_names() {
        term_names_.clear();
        term_of_layer_.assign(layers_.size(), -1);
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            const std::string name = layers_[i].term();
            if (name.empty()) continue;
            auto found = std::find(term_names_.begin(), term_names_.end(), name);
            if (found == term_names_.end()) found = term_names_.insert(term_names_.end(), name);
            term_of_layer_[i] = static_cast<int>(found - term_names_.begin());
        }
        term_values_.assign(term_names_.size(), 0.0);
    }

    void collect_term_values() {
        std::fill(term_values_.begin(), term_values_.end(), 0.0);
        for (std::size_t i = 0; i < layers_.size(); ++i)
            if (term_of_layer_[i] >= 0) term_values_[static_cast<std::size_t>(term_of_layer_[i])] += layers_[i].term_value();
    }

    std::string known_terms() const {
        if (term_names_.empty()) return " (its layers add no terms)";
        std::string names;
        for (const auto& name : term_names_) names += (names.empty() ? "" : ", ") + name;
        return " (its terms: " + names + ")";
    }

    // A hint for an input shape that looks like (H, W, C) instead of (C, H, W).
    static std::string layout_hint(const Shape& input) {
        const bool looks_nhwc = (input.width == 1 || input.width == 3 || input.width == 4) && input.channels > 4 &&
                                input.height > 4;
        if (!looks_nhwc) return "";
        return "; note: latent expects (C, H, W) samples and " + input.str() + " looks like (H, W, C) -- convert "
               "the images with nhwc_to_nchw()";
    }

    // Which buffer holds each layer's output. An in-place layer shares the buffer of the layer
    // before it when that layer's backward does not read its output (which is then overwritten);
    // the first layer never writes over the caller's input. A Conv2D whose ReLU shares its
    // buffer runs the ReLU itself (conv_fusing_relu).
    void plan_buffers() {
        buffer_of_.assign(layers_.size(), 0);
        std::size_t buffers = 0;
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            const bool share = i > 0 && layers_[i].in_place() && !layers_[i - 1].backward_reads_output();
            buffer_of_[i] = share ? buffer_of_[i - 1] : buffers++;
        }
        activations_.assign(buffers, {});
        gradient_targets_[0] = plan_gradient_buffers(size() - 1);
        gradient_targets_[1] = plan_gradient_buffers(logistic_head_ - 1);  // backward from the logits
    }

    // Which of the two gradient buffers receives dL/d(input of layer i) when backward starts at
    // layer `last`. An in-place layer writes its dx over its dy once dy is in one of ours (its
    // backward is element-wise, or a copy); any other layer writes into the buffer that does not
    // hold its dy. The caller's gradient is never written over.
    std::vector<int> plan_gradient_buffers(Index last) const {
        std::vector<int> target(layers_.size(), 0);
        int holder = -1;  // the buffer holding the current dy; -1: the caller's memory
        for (Index i = last; i >= 0; --i) {
            const auto k = static_cast<std::size_t>(i);
            if (!(layers_[k].in_place() && holder >= 0)) holder = holder == 0 ? 1 : 0;
            target[k] = holder;
        }
        return target;
    }

    // Grows the buffers to hold `batch` samples; never shrinks them.
    void reserve(Index batch) {
        for (std::size_t i = 0; i < layers_.size(); ++i) {
            const auto needed = static_cast<std::size_t>(batch * layers_[i].output_shape().size());
            std::vector<T>& buffer = activations_[buffer_of_[i]];
            if (buffer.size() < needed) buffer.resize(needed);
        }
        for (const std::vector<int>& targets : gradient_targets_)
            for (std::size_t i = 0; i < layers_.size(); ++i) {
                const auto needed = static_cast<std::size_t>(batch * layers_[i].input_shape().size());
                std::vector<T>& buffer = gradients_[static_cast<std::size_t>(targets[i])];
                if (buffer.size() < needed) buffer.resize(needed);
            }
    }

    // Lent again before every pass: a copied model's layers start without a loan.
    void lend_workspace_to_layers() {
        Workspace<T>* workspace = &workspace_.get();
        for (auto& layer : layers_) layer.lend_workspace(workspace);
    }

    // Layer `index` if it is a Conv2D that runs the ReLU after it, else null: a Conv2D off the
    // direct path whose output buffer the next layer, a ReLU, writes over (Conv2D::forward_relu),
    // which saves a pass over the activations each way and a meeting of the threads. Asked at
    // every pass, so a layer replaced through layer() after build is not fused.
    Conv2D<T>* conv_fusing_relu(Index index) {
        if (!shares_buffer_with_next(index) || !layers_[static_cast<std::size_t>(index + 1)].template is<ReLU<T>>())
            return nullptr;
        Conv2D<T>* conv = layers_[static_cast<std::size_t>(index)].template get<Conv2D<T>>();
        return conv != nullptr && conv->fuses_relu() ? conv : nullptr;
    }

    TensorView<T> activation_view(Index index, Index batch) {
        return view<T>(activations_[buffer_of_[static_cast<std::size_t>(index)]].data(), batch,
                       layers_[static_cast<std::size_t>(index)].output_shape());
    }

    std::vector<Layer<T>> layers_;
    Shape input_shape_;
    bool built_ = false;
    std::vector<Parameter<T>> parameters_;
    std::vector<Index> parameter_layers_;
    std::vector<Buffer<T>> buffers_;
    std::vector<Index> buffer_layers_;
    std::vector<std::vector<T>> activations_;  // one buffer per group of layers sharing it
    std::vector<std::size_t> buffer_of_;         // the buffer each layer's output is in
    std::array<std::vector<T>, 2> gradients_;         // dL/d(layer input), alternating
    std::array<std::vector<int>, 2> gradient_targets_;  // per layer, the gradient buffer of its dx
                                                         // (backward from the last layer; from the logits)
    Index logistic_head_ = -1;                // see logistic_head()
    std::vector<std::string> term_names_;
    std::vector<int> term_of_layer_;          // per layer, its term's index in term_names_, or -1
    std::vector<double> term_values_;
    const T* input_data_ = nullptr;  // the last forward()'s input (the caller's memory)
    detail::ScratchSpace<T> workspace_;  // per-call scratch of the layers (core/workspace.hpp)
    Index batch_ = 0;
};

// An encoder and a decoder are plain Sequentials; the names say which half a model is.
template <class T = float> using Encoder = Sequential<T>;
template <class T = float> using Decoder = Sequential<T>;

}  // namespace latent
