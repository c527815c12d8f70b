// Element-wise activations, each its own layer so that every backward is one operation.
// Output shape = input shape. Work is split into fixed slices of the flat tensor.
#pragma once

#include <cmath>
#include <string>

#include "../core/threading.hpp"
#include "layer.hpp"

namespace latent {
namespace detail {

// y[i] = f(x[i]) over the whole tensor, in parallel slices.
template <class T, class F> void map_elements(const T* x, T* y, Index size, F f) {
    const Chunks slices{size, 32768};
    parallel_for(slices.count(), size, [&](Index slice) {
        const Index end = slices.begin(slice) + slices.size(slice);
        for (Index i = slices.begin(slice); i < end; ++i) y[i] = f(x[i]);
    });
}

// dx[i] = dy[i] * g(x[i], y[i]) over the whole tensor, in parallel slices.
template <class T, class G>
void map_gradient(const T* x, const T* y, const T* dy, T* dx, Index size, G g) {
    const Chunks slices{size, 32768};
    parallel_for(slices.count(), size, [&](Index slice) {
        const Index end = slices.begin(slice) + slices.size(slice);
        for (Index i = slices.begin(slice); i < end; ++i) dx[i] = dy[i] * g(x[i], y[i]);
    });
}

// Numerically stable logistic function: never evaluates exp of a large positive number.
template <class T> T sigmoid(T x) {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
}

}  // namespace detail

// ReLU: y = max(x, 0);  dx = dy * [x > 0]
template <class T = float> class ReLU {
public:
    using Scalar = T;
    static constexpr const char* type_name = "ReLU";
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::map_elements(x.data(), y.data(), x.size(), [](T v) { return v > T(0) ? v : T(0); });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [](T in, T) { return in > T(0) ? T(1) : T(0); });
    }
};

// LeakyReLU: y = x for x > 0, alpha * x otherwise;  dx = dy * (x > 0 ? 1 : alpha)
template <class T = float> class LeakyReLU {
public:
    using Scalar = T;
    static constexpr const char* type_name = "LeakyReLU";
    explicit LeakyReLU(double alpha = 0.01) : alpha_(static_cast<T>(alpha)) {
        detail::require(std::isfinite(alpha), "LeakyReLU", "alpha must be finite");
    }
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        const T alpha = alpha_;
        detail::map_elements(x.data(), y.data(), x.size(),
                             [alpha](T v) { return v > T(0) ? v : alpha * v; });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        const T alpha = alpha_;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [alpha](T in, T) { return in > T(0) ? T(1) : alpha; });
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
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::map_elements(x.data(), y.data(), x.size(), [](T v) { return detail::sigmoid(v); });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [](T, T out) { return out * (T(1) - out); });
    }
};

// Tanh: y = tanh(x);  dx = dy * (1 - y^2)
template <class T = float> class Tanh {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Tanh";
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::map_elements(x.data(), y.data(), x.size(), [](T v) { return std::tanh(v); });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [](T, T out) { return T(1) - out * out; });
    }
};

// Softplus: y = log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) so it never overflows;
//           dx = dy * sigmoid(x)
template <class T = float> class Softplus {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Softplus";
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::map_elements(x.data(), y.data(), x.size(), [](T v) {
            return (v > T(0) ? v : T(0)) + std::log1p(std::exp(-std::abs(v)));
        });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [](T in, T) { return detail::sigmoid(in); });
    }
};

// Identity: y = x;  dx = dy. A placeholder where an activation is expected.
template <class T = float> class Identity {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Identity";
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        detail::map_elements(x.data(), y.data(), x.size(), [](T v) { return v; });
    }
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        detail::map_gradient(x.data(), y.data(), dy.data(), dx.data(), x.size(),
                             [](T, T) { return T(1); });
    }
};

}  // namespace latent
