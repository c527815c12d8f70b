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
// and optionally
//   void build(const Shape& input, Rng& rng);   // size and initialise parameters
//   std::vector<Parameter<T>> parameters();     // value + gradient views, stable after build
//   Config config() const;  static L from_config(const Config&);   // for save/load
//   void set_training(bool training);           // layers that differ at training time
//   bool in_place() const;                // true: forward may write y over x and backward dx
//                                         // over dy (the same memory); backward reads y, not x
//   bool backward_reads_output() const;   // false: backward never reads y (default: true)
// A model uses these to let element-wise layers overwrite their input's buffer instead of
// keeping a copy of every activation: legal when the layer before does not need its output.
//   void lend_workspace(Workspace<T>* workspace);   // per-call scratch a model shares among its
//                                                   // layers (core/workspace.hpp); null: own
//
// backward may be given a dx with no data (dx.data() == nullptr) when nobody needs the input
// gradient (the first layer of a model); it must then skip computing it. Parameter gradients
// accumulate (+=) so gradients of several batches can be summed; zero_grad() clears them.
//
// The wrapper checks every shape on entry and throws ShapeError naming the layer, the expected
// and the actual shape, so layer code can assume consistent shapes.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
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

namespace detail {

template <class L, class = void> struct has_build : std::false_type {};
template <class L>
struct has_build<L, std::void_t<decltype(std::declval<L&>().build(std::declval<const Shape&>(),
                                                                   std::declval<Rng&>()))>>
    : std::true_type {};

template <class L, class = void> struct has_parameters : std::false_type {};
template <class L>
struct has_parameters<L, std::void_t<decltype(std::declval<L&>().parameters())>> : std::true_type {};

template <class L, class = void> struct has_config : std::false_type {};
template <class L>
struct has_config<L, std::void_t<decltype(std::declval<const L&>().config())>> : std::true_type {};

template <class L, class = void> struct has_in_place : std::false_type {};
template <class L>
struct has_in_place<L, std::void_t<decltype(bool{std::declval<const L&>().in_place()})>> : std::true_type {};

template <class L, class = void> struct has_backward_reads_output : std::false_type {};
template <class L>
struct has_backward_reads_output<L, std::void_t<decltype(bool{std::declval<const L&>().backward_reads_output()})>>
    : std::true_type {};

template <class L, class = void> struct has_lend_workspace : std::false_type {};
template <class L>
struct has_lend_workspace<
    L, std::void_t<decltype(std::declval<L&>().lend_workspace(std::declval<Workspace<typename L::Scalar>*>()))>>
    : std::true_type {};

template <class L, class = void> struct has_set_training : std::false_type {};
template <class L>
struct has_set_training<L, std::void_t<decltype(std::declval<L&>().set_training(true))>>
    : std::true_type {};

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

    void forward(ConstTensorView<T> x, TensorView<T> y) {
        check_input(x, "forward");
        check_batch(y, x.dimension(0), output_shape_, "forward", "output");
        self_->forward(x, y);
    }

    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy,
                  TensorView<T> dx) {
        check_input(x, "backward");
        const Index batch = x.dimension(0);
        check_batch(y, batch, output_shape_, "backward", "output");
        check_batch(dy, batch, output_shape_, "backward", "output gradient");
        if (dx.data() != nullptr) check_batch(dx, batch, input_shape_, "backward", "input gradient");
        self_->backward(x, y, dy, dx);
    }

    // Convenience forms on whole tensors: y and dx are resized to fit (this may allocate).
    void forward(const Tensor<T>& x, Tensor<T>& y) {
        y.resize(x.dimension(0), output_shape_.channels, output_shape_.height, output_shape_.width);
        forward(view(x), view(y));
    }
    void backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
        dx.resize(x.dimensions());
        backward(view(x), view(y), view(dy), view(dx));
    }

    std::vector<Parameter<T>> parameters() { return self_->parameters(); }
    Index parameter_count() {
        Index count = 0;
        for (const auto& parameter : parameters()) count += parameter.size;
        return count;
    }
    void zero_grad() {
        for (auto& parameter : parameters()) std::fill_n(parameter.grad, parameter.size, T(0));
    }
    void set_training(bool training) { self_->set_training(training); }
    // See the layer contract above; layers that say nothing are neither.
    bool in_place() const { return self_->in_place(); }
    bool backward_reads_output() const { return self_->backward_reads_output(); }
    void lend_workspace(Workspace<T>* workspace) { self_->lend_workspace(workspace); }

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
        virtual Config config() const = 0;
        virtual Shape output_shape(const Shape& input) const = 0;
        virtual void build(const Shape& input, Rng& rng) = 0;
        virtual void forward(ConstTensorView<T> x, TensorView<T> y) = 0;
        virtual void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy,
                              TensorView<T> dx) = 0;
        virtual std::vector<Parameter<T>> parameters() = 0;
        virtual void set_training(bool training) = 0;
        virtual bool in_place() const = 0;
        virtual bool backward_reads_output() const = 0;
        virtual void lend_workspace(Workspace<T>* workspace) = 0;
    };

    template <class L> struct Holder final : Interface {
        explicit Holder(L held) : layer(std::move(held)) {}
        std::unique_ptr<Interface> clone() const override { return std::make_unique<Holder>(layer); }
        std::string type() const override { return L::type_name; }
        Config config() const override {
            if constexpr (detail::has_config<L>::value) return layer.config();
            else return Config{};
        }
        Shape output_shape(const Shape& input) const override { return layer.output_shape(input); }
        void build(const Shape& input, Rng& rng) override {
            if constexpr (detail::has_build<L>::value) layer.build(input, rng);
            else (void)input, (void)rng;
        }
        void forward(ConstTensorView<T> x, TensorView<T> y) override { layer.forward(x, y); }
        void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy,
                      TensorView<T> dx) override {
            layer.backward(x, y, dy, dx);
        }
        std::vector<Parameter<T>> parameters() override {
            if constexpr (detail::has_parameters<L>::value) return layer.parameters();
            else return {};
        }
        void set_training(bool training) override {
            if constexpr (detail::has_set_training<L>::value) layer.set_training(training);
            else (void)training;
        }
        bool in_place() const override {
            if constexpr (detail::has_in_place<L>::value) return layer.in_place();
            else return false;
        }
        bool backward_reads_output() const override {
            if constexpr (detail::has_backward_reads_output<L>::value) return layer.backward_reads_output();
            else return true;
        }
        void lend_workspace(Workspace<T>* workspace) override {
            if constexpr (detail::has_lend_workspace<L>::value) layer.lend_workspace(workspace);
            else (void)workspace;
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
