// Layer<T>: a value that holds any layer type, so models are built at run time (from code, a
// config or a file) and users add layer types of their own without touching the library.
//
// A layer type L (see dense.hpp for a complete one) provides
//   using Scalar = T;
//   static constexpr const char* type_name = "MyLayer";       // unique; stored in model files
//   Shape output_shape(const Shape& input) const;              // throws ShapeError if unfit
//   void forward(ConstTensorView<T> x, TensorView<T> y);       // y = f(x), y pre-sized
//   void backward(ConstTensorView<T> x, ConstTensorView<T> y,  // x, y: as in the last forward
//                 ConstTensorView<T> dy, TensorView<T> dx);    // dx = dL/dx (overwrite);
//                                                              // grads += dL/dparam (accumulate)
// forward and backward may take a last `const Pass& pass` argument (core/pass.hpp): where the
// pass is -- training or not, epoch, batch, the slice's first sample, the whole batch's size,
// the layer's random stream. Layers that behave differently in training take it (Dropout,
// BatchNorm), and so do layers that add a term to the objective. Optionally also
//   void build(const Shape& input, Rng& rng);   // size and initialise parameters
//   std::vector<Parameter<T>> parameters();     // value + gradient views, stable after build
//   std::vector<Buffer<T>> buffers();           // state saved with the weights but not trained
//                                               // (BatchNorm's running statistics)
//   Index parameter_values(const Shape& input) const;   // how many parameter values build(input)
//                                               // creates, without allocating: a loader checks a
//                                               // file against it before building the model
//   Config config() const;  static L from_config(const Config&);   // for save/load
//   static constexpr int version = 1;           // of config + parameters + buffers in files;
//                                               // a file with a newer one is refused by name
//   bool in_place() const;                // true: forward may write y over x and backward dx
//                                         // over dy (the same memory); backward reads y, not x
//   bool backward_reads_output() const;   // false: backward never reads y (default: true)
// A model uses these two to let element-wise layers overwrite their input's buffer instead of
// keeping a copy of every activation: legal when the layer before does not need its output.
//   void lend_workspace(Workspace<T>* workspace);   // per-call scratch a model shares among its
//                                                   // layers (core/workspace.hpp); null: own
//   bool mixes_samples() const;   // true: a sample's output depends on the other samples of
//                                 // its batch (batch statistics); fit() then never slices
// A layer that adds a term to the objective (a penalty on its activations, a KL divergence):
//   std::string term() const;        // the term's name ("sparsity", "kl"); "" for none
//   double term_value() const;       // its weighted value from the last forward whose pass
//                                    // computes terms, over that slice: weight * (sum over the
//                                    // slice's samples) / pass.whole_batch(slice size)
//   void scale_term(double factor);  // multiplies the configured weight (schedules, warm-up)
// and its backward adds the term's gradient to dx and to its parameter gradients. For serving:
//   void freeze();   // keep what makes inference faster (a copy of the weights in another
//                    // order); backward() must drop it. Frozen (models/frozen.hpp) calls it.
//
// backward may be given a dx with no data (dx.data() == nullptr) when nobody needs the input
// gradient (the first layer of a model); it must then skip computing it. Parameter gradients
// accumulate (+=) so gradients of several batches can be summed; zero_grad() clears them. A
// layer that does not say mixes_samples() must treat the samples of a batch independently.
//
// The wrapper checks every shape on entry and throws ShapeError naming the layer, the expected
// and the actual shape, so layer code can assume consistent shapes.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../core/meta.hpp"
#include "../core/pass.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../core/workspace.hpp"
#include "config.hpp"

namespace latent {

// A view of one trainable array: its values and the matching gradient, both `size` long.
template <class T> struct Parameter {
    std::string name;  // "weight", "bias", ...
    T* value = nullptr;
    T* grad = nullptr;
    Index size = 0;
};

// A view of one array of state that is saved with the model but not trained.
template <class T> struct Buffer {
    std::string name;  // "running_mean", ...
    T* value = nullptr;
    Index size = 0;
};

namespace detail {

// The optional members of the layer contract, for is_detected (core/meta.hpp).
template <class L> using build_op = decltype(std::declval<L&>().build(std::declval<const Shape&>(), std::declval<Rng&>()));
template <class L> using parameters_op = decltype(std::declval<L&>().parameters());
template <class L> using buffers_op = decltype(std::declval<L&>().buffers());
template <class L>
using parameter_values_op = decltype(Index{std::declval<const L&>().parameter_values(std::declval<const Shape&>())});
template <class L> using version_op = decltype(int{L::version});
template <class L> using in_place_op = decltype(bool{std::declval<const L&>().in_place()});
template <class L> using backward_reads_output_op = decltype(bool{std::declval<const L&>().backward_reads_output()});
template <class L>
using lend_workspace_op = decltype(std::declval<L&>().lend_workspace(std::declval<Workspace<typename L::Scalar>*>()));
template <class L> using mixes_samples_op = decltype(bool{std::declval<const L&>().mixes_samples()});
template <class L> using term_op = decltype(std::string{std::declval<const L&>().term()});
template <class L> using term_value_op = decltype(double{std::declval<const L&>().term_value()});
template <class L> using scale_term_op = decltype(std::declval<L&>().scale_term(1.0));
template <class L> using freeze_op = decltype(std::declval<L&>().freeze());
template <class L, class T>
using forward_with_pass_op = decltype(std::declval<L&>().forward(std::declval<ConstTensorView<T>>(),
                                                                 std::declval<TensorView<T>>(), std::declval<const Pass&>()));
template <class L, class T>
using backward_with_pass_op =
    decltype(std::declval<L&>().backward(std::declval<ConstTensorView<T>>(), std::declval<ConstTensorView<T>>(),
                                         std::declval<ConstTensorView<T>>(), std::declval<TensorView<T>>(),
                                         std::declval<const Pass&>()));

}  // namespace detail

template <class T> class Layer {
public:
    using Scalar = T;

    template <class L, class = std::enable_if_t<!std::is_same_v<std::decay_t<L>, Layer>>>
    Layer(L layer) : self_(std::make_unique<Holder<L>>(std::move(layer))) {  // NOLINT: implicit
        static_assert(std::is_same_v<typename L::Scalar, T>,
                      "a layer's scalar type must match the model's (e.g. Dense<double> in a "
                      "Sequential<double>)");
    }
    Layer(const Layer& other)
        : self_(other.self_->clone()),
          input_shape_(other.input_shape_),
          output_shape_(other.output_shape_),
          built_(other.built_) {}
    Layer(Layer&&) noexcept = default;
    Layer& operator=(const Layer& other) {
        if (this != &other) *this = Layer(other);
        return *this;
    }
    Layer& operator=(Layer&&) noexcept = default;

    std::string type() const { return self_->type(); }
    int version() const { return self_->version(); }
    Config config() const { return self_->config(); }
    bool is_built() const { return built_; }
    const Shape& input_shape() const { return input_shape_; }
    const Shape& output_shape() const { return output_shape_; }

    // The output shape for `input`; throws ShapeError naming this layer if the input does not fit.
    Shape output_shape(const Shape& input) const { return self_->output_shape(input); }

    // Fixes the input shape, then sizes and initialises the parameters from `rng`.
    void build(const Shape& input, Rng& rng) {
        output_shape_ = self_->output_shape(input);
        input_shape_ = input;
        self_->build(input, rng);
        built_ = true;
    }

    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass = {}) {
        check_input(x, "forward");
        check_batch(y, x.dimension(0), output_shape_, "forward", "output");
        self_->forward(x, y, pass);
    }

    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx,
                  const Pass& pass = {}) {
        check_input(x, "backward");
        const Index batch = x.dimension(0);
        check_batch(y, batch, output_shape_, "backward", "output");
        check_batch(dy, batch, output_shape_, "backward", "output gradient");
        if (dx.data() != nullptr) check_batch(dx, batch, input_shape_, "backward", "input gradient");
        self_->backward(x, y, dy, dx, pass);
    }

    // Convenience forms on whole tensors: y and dx are resized to fit (this may allocate).
    void forward(const Tensor<T>& x, Tensor<T>& y, const Pass& pass = {}) {
        y.resize(x.dimension(0), output_shape_.channels, output_shape_.height, output_shape_.width);
        forward(view(x), view(y), pass);
    }
    void backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, const Pass& pass = {}) {
        dx.resize(x.dimensions());
        backward(view(x), view(y), view(dy), view(dx), pass);
    }

    std::vector<Parameter<T>> parameters() { return self_->parameters(); }
    std::vector<Buffer<T>> buffers() { return self_->buffers(); }
    // The parameter values build(input) would create (0 for a layer without parameters), or none
    // when a layer with parameters does not say.
    std::optional<Index> parameter_values(const Shape& input) const { return self_->parameter_values(input); }
    Index parameter_count() {
        Index count = 0;
        for (const auto& parameter : parameters()) count += parameter.size;
        return count;
    }
    void zero_grad() {
        for (auto& parameter : parameters()) std::fill_n(parameter.grad, parameter.size, T(0));
    }
    // See the layer contract above; layers that say nothing are neither.
    bool in_place() const { return self_->in_place(); }
    bool backward_reads_output() const { return self_->backward_reads_output(); }
    void lend_workspace(Workspace<T>* workspace) { self_->lend_workspace(workspace); }
    bool mixes_samples() const { return self_->mixes_samples(); }
    std::string term() const { return self_->term(); }
    double term_value() const { return self_->term_value(); }
    void scale_term(double factor) { self_->scale_term(factor); }
    void freeze() { self_->freeze(); }

    // The held layer if it is an L, else nullptr.
    template <class L> L* get() {
        auto* holder = dynamic_cast<Holder<L>*>(self_.get());
        return holder ? &holder->layer : nullptr;
    }
    template <class L> const L* get() const {
        const auto* holder = dynamic_cast<const Holder<L>*>(self_.get());
        return holder ? &holder->layer : nullptr;
    }
    template <class L> bool is() const { return get<L>() != nullptr; }

private:
    struct Interface {
        virtual ~Interface() = default;
        virtual std::unique_ptr<Interface> clone() const = 0;
        virtual std::string type() const = 0;
        virtual int version() const = 0;
        virtual Config config() const = 0;
        virtual Shape output_shape(const Shape& input) const = 0;
        virtual void build(const Shape& input, Rng& rng) = 0;
        virtual void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) = 0;
        virtual void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy,
                              TensorView<T> dx, const Pass& pass) = 0;
        virtual std::vector<Parameter<T>> parameters() = 0;
        virtual std::vector<Buffer<T>> buffers() = 0;
        virtual std::optional<Index> parameter_values(const Shape& input) const = 0;
        virtual bool in_place() const = 0;
        virtual bool backward_reads_output() const = 0;
        virtual void lend_workspace(Workspace<T>* workspace) = 0;
        virtual bool mixes_samples() const = 0;
        virtual std::string term() const = 0;
        virtual double term_value() const = 0;
        virtual void scale_term(double factor) = 0;
        virtual void freeze() = 0;
    };

    // Forwards to L's members, or gives the contract's default where L has none.
    template <class L> struct Holder final : Interface {
        explicit Holder(L held) : layer(std::move(held)) {}
        std::unique_ptr<Interface> clone() const override { return std::make_unique<Holder>(layer); }
        std::string type() const override { return L::type_name; }
        int version() const override {
            if constexpr (detail::is_detected<detail::version_op, L>) return L::version;
            else return 1;
        }
        Config config() const override {
            if constexpr (detail::is_detected<detail::config_op, L>) return layer.config();
            else return Config{};
        }
        Shape output_shape(const Shape& input) const override { return layer.output_shape(input); }
        void build(const Shape& input, Rng& rng) override {
            if constexpr (detail::is_detected<detail::build_op, L>) layer.build(input, rng);
            else (void)input, (void)rng;
        }
        void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) override {
            if constexpr (detail::is_detected<detail::forward_with_pass_op, L, T>) layer.forward(x, y, pass);
            else (void)pass, layer.forward(x, y);
        }
        void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx,
                      const Pass& pass) override {
            if constexpr (detail::is_detected<detail::backward_with_pass_op, L, T>) layer.backward(x, y, dy, dx, pass);
            else (void)pass, layer.backward(x, y, dy, dx);
        }
        std::vector<Parameter<T>> parameters() override {
            if constexpr (detail::is_detected<detail::parameters_op, L>) return layer.parameters();
            else return {};
        }
        std::vector<Buffer<T>> buffers() override {
            if constexpr (detail::is_detected<detail::buffers_op, L>) return layer.buffers();
            else return {};
        }
        std::optional<Index> parameter_values(const Shape& input) const override {
            if constexpr (detail::is_detected<detail::parameter_values_op, L>) return layer.parameter_values(input);
            else if constexpr (detail::is_detected<detail::parameters_op, L>) return (void)input, std::nullopt;
            else return (void)input, Index{0};
        }
        bool in_place() const override {
            if constexpr (detail::is_detected<detail::in_place_op, L>) return layer.in_place();
            else return false;
        }
        bool backward_reads_output() const override {
            if constexpr (detail::is_detected<detail::backward_reads_output_op, L>) return layer.backward_reads_output();
            else return true;
        }
        void lend_workspace(Workspace<T>* workspace) override {
            if constexpr (detail::is_detected<detail::lend_workspace_op, L>) layer.lend_workspace(workspace);
            else (void)workspace;
        }
        bool mixes_samples() const override {
            if constexpr (detail::is_detected<detail::mixes_samples_op, L>) return layer.mixes_samples();
            else return false;
        }
        std::string term() const override {
            if constexpr (detail::is_detected<detail::term_op, L>) return layer.term();
            else return {};
        }
        double term_value() const override {
            if constexpr (detail::is_detected<detail::term_value_op, L>) return layer.term_value();
            else return 0.0;
        }
        void scale_term(double factor) override {
            if constexpr (detail::is_detected<detail::scale_term_op, L>) layer.scale_term(factor);
            else (void)factor;
        }
        void freeze() override {
            if constexpr (detail::is_detected<detail::freeze_op, L>) layer.freeze();
        }
        L layer;
    };

    template <class View>
    void check_batch(const View& tensor, Index batch, const Shape& shape, const char* pass,
                     const char* what) const {
        const Shape actual{tensor.dimension(1), tensor.dimension(2), tensor.dimension(3)};
        if (tensor.dimension(0) != batch || actual != shape)
            throw ShapeError(type() + " " + pass + ": " + what + " should be " +
                             batch_shape_str(batch, shape) + ", got " +
                             batch_shape_str(tensor.dimension(0), actual));
    }

    void check_input(const ConstTensorView<T>& x, const char* pass) const {
        if (!built_)
            throw ShapeError(type() + " " + pass + ": layer is not built (call build(input_shape) "
                             "or add it to a model and build the model)");
        const Shape actual = sample_shape<T>(x);
        if (actual != input_shape_)
            throw ShapeError(type() + " " + pass + ": expected input of shape " +
                             batch_shape_str(x.dimension(0), input_shape_) + ", got " +
                             batch_shape_str(x.dimension(0), actual));
    }

    std::unique_ptr<Interface> self_;
    Shape input_shape_;
    Shape output_shape_;
    bool built_ = false;
};

}  // namespace latent
