// Element-wise activations, each its own layer so that every backward is one operation.
// Output shape = input shape. Work is split into fixed slices of the flat tensor.
// Every backward here is written in terms of the output y, never the input x: so a model can let
// an activation overwrite its input's buffer (in_place), which saves storing both.
#pragma once

#include <Eigen/Core>

#include <cmath>
#include <string>
#include <type_traits>

#include "../core/threading.hpp"
#include "../kernels/bits.hpp"
#include "../kernels/logistic.hpp"
#include "layer.hpp"

namespace latent {
namespace detail {

template <class T> using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T> using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// body(begin, count) over fixed slices of [0, size), in parallel (a tensor of activations).
template <class Body> void for_each_activation_slice(Index size, Body body) {
    const Chunks slices{size, 32768};
    parallel_for(slices.count(), size, [&](Index slice) { body(slices.begin(slice), slices.size(slice)); });
}

// y = f(x) over the whole tensor, in parallel slices. f maps an Eigen array of x to an array
// expression, so exp, log and tanh run on Eigen's vectorised functions.
template <class T, class F> void map_elements(const T* x, T* y, Index size, F f) {
    for_each_activation_slice(size, [&](Index begin, Index count) {
        const ConstArrayMap<T> in(x + begin, count);
        ArrayMap<T>(y + begin, count) = f(in);
    });
}

// dx = dy * g(x, y) over the whole tensor, in parallel slices; g as f above, of x and y.
template <class T, class G>
void map_gradient(const T* x, const T* y, const T* dy, T* dx, Index size, G g) {
    for_each_activation_slice(size, [&](Index begin, Index count) {
        const ConstArrayMap<T> in(x + begin, count), out(y + begin, count), grad_out(dy + begin, count);
        ArrayMap<T>(dx + begin, count) = grad_out * g(in, out);
    });
}

// out = f(in) element by element over the whole tensor, in parallel slices, on the CPU's widest
// vectors (run_vectorized): for choices between values, which Eigen 3.4 makes one element at a
// time. f is a scalar lambda marked always_inline that chooses on bits (kernels/bits.hpp); out
// may be in.
template <class T, class F> void map_scalars(const T* in, T* out, Index size, F f) {
    for_each_activation_slice(size, [&](Index begin, Index count) {
        const T* from = in + begin;
        T* to = out + begin;
        run_vectorized([from, to, count, f]() __attribute__((always_inline)) {
            for (Index i = 0; i < count; ++i) to[i] = f(from[i]);
        });
    });
}

// dx = dy * factor(v) element by element, v being x or y, as map_scalars.
template <class T, class F> void scale_gradient(const T* v, const T* dy, T* dx, Index size, F factor) {
    for_each_activation_slice(size, [&](Index begin, Index count) {
        const T* values = v + begin;
        const T* grad_out = dy + begin;
        T* grad_in = dx + begin;
        run_vectorized([values, grad_out, grad_in, count, factor]() __attribute__((always_inline)) {
            for (Index i = 0; i < count; ++i) grad_in[i] = grad_out[i] * factor(values[i]);
        });
    });
}

// The logistic function 1 / (1 + exp(-x)): Eigen clamps exp's argument to +-88.7, so very
// negative x give a tiny positive result, never NaN.
template <class Expression> auto logistic(const Expression& x) {
    using T = typename Expression::Scalar;
    return (T(1) + (-x).exp()).inverse();
}

// y = logistic(x) over the whole tensor (y may be x). Floats go through kernels/logistic.hpp:
// the widest vectors the CPU has, with the bits of Eigen's SSE2 code on every x86-64 CPU.
template <class T> void logistic_elements(const T* x, T* y, Index size) {
    if constexpr (std::is_same_v<T, float>) {
        const Isa isa = active_isa();
        for_each_activation_slice(size, [&](Index begin, Index count) { kernels::logistic(isa, x + begin, y + begin, count); });
    } else {
        map_elements(x, y, size, [](const auto& in) { return logistic(in); });
    }
}

// ReLU's two element-wise steps over count values, run by the ReLU layer on its slices and by a
// Conv2D that applies the ReLU after it (Conv2D::forward_relu): one definition, so both give the
// same bits.
//   forward   y = max(x, 0)            (y may be x)
//   backward  dx = dy * [y > 0]        (dx may be dy)
template <class T> void relu_values(const T* x, T* y, Index count) {
    ArrayMap<T>(y, count) = ConstArrayMap<T>(x, count).max(T(0));
}
template <class T> void relu_gradient_values(const T* y, const T* dy, T* dx, Index count) {
    run_vectorized([y, dy, dx, count]() __attribute__((always_inline)) {
        for (Index i = 0; i < count; ++i)
            dx[i] = dy[i] * kernels::detail::select(kernels::detail::is_positive(y[i]), T(1), T(0));
    });
}

}  // namespace detail

// ReLU: y = max(x, 0);  dx = dy * [x > 0] = dy * [y > 0]
template <class T = float> class ReLU {
public:
    using Scalar = T;
    static constexpr const char* type_name = "ReLU";
    bool in_place() const { return true; }  // backward reads y only
    bool backward_reads_output() const { return true; }
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        const T* in = x.data();
        T* out = y.data();
        detail::for_each_activation_slice(x.size(), [&](Index begin, Index count) {
            detail::relu_values(in + begin, out + begin, count);
        });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        const T* out = y.data();
        const T* grad_out = dy.data();
        T* grad_in = dx.data();
        detail::for_each_activation_slice(x.size(), [&](Index begin, Index count) {
            detail::relu_gradient_values(out + begin, grad_out + begin, grad_in + begin, count);
        });
    }
};

// LeakyReLU: y = x for x > 0, alpha * x otherwise;  dx = dy * (x > 0 ? 1 : alpha)
//            for alpha > 0, x > 0 exactly when y > 0, so dx = dy * (y > 0 ? 1 : alpha)
template <class T = float> class LeakyReLU {
public:
    using Scalar = T;
    static constexpr const char* type_name = "LeakyReLU";
    bool in_place() const { return alpha_ > T(0); }  // then y has the sign of x
    bool backward_reads_output() const { return true; }
    explicit LeakyReLU(double alpha = 0.01) : alpha_(static_cast<T>(alpha)) {
        detail::require(std::isfinite(alpha), "LeakyReLU", "alpha must be finite");
    }
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        const T alpha = alpha_;
        detail::map_scalars(x.data(), y.data(), x.size(),
                            [alpha](T in) __attribute__((always_inline)) {
                                return kernels::detail::select(kernels::detail::is_positive(in), in, alpha * in);
                            });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        const T alpha = alpha_;
        // y's sign decides when it can (alpha > 0), x's otherwise
        const T* decides = alpha > T(0) ? y.data() : x.data();
        detail::scale_gradient(decides, dy.data(), dx.data(), x.size(),
                               [alpha](T value) __attribute__((always_inline)) {
                                   return kernels::detail::select(kernels::detail::is_positive(value), T(1), alpha);
                               });
    }
    Config config() const { return Config().set("alpha", static_cast<double>(alpha_)); }
    static LeakyReLU from_config(const Config& config) { return LeakyReLU(config.get_double("alpha")); }
    T alpha() const { return alpha_; }

private:
    T alpha_;
};

// Sigmoid: y = 1 / (1 + exp(-x));  dx = dy * y * (1 - y)
template <class T = float> class Sigmoid {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Sigmoid";
    bool in_place() const { return true; }  // backward reads y only
    bool backward_reads_output() const { return true; }
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::logistic_elements(x.data(), y.data(), x.size());
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [](const auto&, const auto& out) { return out * (T(1) - out); });
    }
};

// Tanh: y = tanh(x);  dx = dy * (1 - y^2)
template <class T = float> class Tanh {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Tanh";
    bool in_place() const { return true; }  // backward reads y only
    bool backward_reads_output() const { return true; }
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::map_elements(x.data(), y.data(), x.size(), [](const auto& in) { return in.tanh(); });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [](const auto&, const auto& out) { return T(1) - out * out; });
    }
};

// Softplus: y = log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) so it never overflows;
//           dx = dy * sigmoid(x) = dy * (1 - exp(-y))   (exp(y) = 1 + exp(x))
template <class T = float> class Softplus {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Softplus";
    bool in_place() const { return true; }  // backward reads y only
    bool backward_reads_output() const { return true; }
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::map_elements(x.data(), y.data(), x.size(),
                             [](const auto& in) { return in.max(T(0)) + (-in.abs()).exp().log1p(); });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [](const auto&, const auto& out) { return -(-out).expm1(); });
    }
};

// Identity: y = x;  dx = dy. A placeholder where an activation is expected.
template <class T = float> class Identity {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Identity";
    bool in_place() const { return true; }
    bool backward_reads_output() const { return false; }
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::map_elements(x.data(), y.data(), x.size(), [](const auto& in) { return in; });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_elements(dy.data(), dx.data(), x.size(), [](const auto& grad_out) { return grad_out; });
    }
};

}  // namespace latent
