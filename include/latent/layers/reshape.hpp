// Flatten and Reshape: change how a sample's C*H*W values are grouped, not the values or their
// order. A sample is contiguous in NCHW memory, so both directions are plain copies -- and no
// copy at all when a model lets them work in place (the output then is the input's memory).
#pragma once

#include <algorithm>
#include <string>

#include "../core/checked.hpp"
#include "layer.hpp"

namespace latent {
// Flatten: (C, H, W) -> (C*H*W, 1, 1), as Keras's Flatten followed by a Dense.
template <class T = float> class Flatten {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Flatten";

    Shape output_shape(const Shape& input) const {
        if (input.size() < 1)
            throw ShapeError("Flatten: input shape " + input.str() + " has no elements");
        return {input.size(), 1, 1};
    }

    // forward: y[n, c*H*W + h*W + w, 0, 0] = x[n, c, h, w]   (same memory order: a copy)
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        if (y.data() != x.data()) std::copy_n(x.data(), x.size(), y.data());
    }
    bool in_place() const { return true; }
    bool backward_reads_output() const { return false; }

    // backward: dx[n, c, h, w] = dy[n, c*H*W + h*W + w, 0, 0]
    void backward(ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr || dx.data() == dy.data()) return;  // in place: nothing to move
        std::copy_n(dy.data(), dy.size(), dx.data());
    }

    Config config() const { return Config(); }
    static Flatten from_config(const Config&) { return Flatten(); }
};

// Reshape: (C, H, W) -> target (C', H', W') with C*H*W = C'*H'*W', values in the same order.
template <class T = float> class Reshape {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Reshape";

    explicit Reshape(Shape target) : target_(target) {
        detail::require(target.channels >= 1 && target.height >= 1 && target.width >= 1, "Reshape",
                        "target shape must be >= 1 along every axis, got " + target.str());
        checked_product<ArgumentError>({target.channels, target.height, target.width}, "Reshape: target shape");
    }

    Shape output_shape(const Shape& input) const {
        if (input.size() != target_.size())
            throw ShapeError("Reshape: cannot reshape input " + input.str() + " (" +
                             std::to_string(input.size()) + " values) to " + target_.str() + " (" +
                             std::to_string(target_.size()) + " values)");
        return target_;
    }

    // forward: flat(y[n]) = flat(x[n])   (a copy)
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        if (y.data() != x.data()) std::copy_n(x.data(), x.size(), y.data());
    }
    bool in_place() const { return true; }
    bool backward_reads_output() const { return false; }

    // backward: flat(dx[n]) = flat(dy[n])
    void backward(ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr || dx.data() == dy.data()) return;  // in place: nothing to move
        std::copy_n(dy.data(), dy.size(), dx.data());
    }

    Config config() const {
        return Config()
            .set("channels", target_.channels)
            .set("height", target_.height)
            .set("width", target_.width);
    }
    static Reshape from_config(const Config& config) {
        return Reshape(Shape{config.get_int("channels"), config.get_int("height"),
                             config.get_int("width")});
    }

    const Shape& target() const { return target_; }

private:
    Shape target_;
};

}  // namespace latent
