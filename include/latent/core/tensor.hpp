// The one activation type, its views, and the per-sample Shape.
//
// Tensor<T> is a rank-4 row-major Eigen tensor in NCHW order (batch, channels, height, width).
// Dense layers see a sample as a flat vector of C*H*W values and produce (N, units, 1, 1), so a
// Flatten costs nothing. Layers read and write through views (TensorView / ConstTensorView) of
// memory the model owns, which lets one buffer serve every batch size up to its capacity.
#pragma once

#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>

#include <algorithm>
#include <string>
#include <type_traits>

#include "checked.hpp"
#include "errors.hpp"

namespace latent {

using Index = Eigen::Index;

template <class T> using Tensor = Eigen::Tensor<T, 4, Eigen::RowMajor>;
template <class T> using TensorView = Eigen::TensorMap<Tensor<T>>;

// A read-only view. A Tensor converts to it implicitly; a TensorView needs const_view().
// Careful: assigning one Eigen map to another copies the values, it never rebinds the view.
template <class T> using ConstTensorView = Eigen::TensorMap<const Tensor<T>>;

template <class T> using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using MatrixView = Eigen::Map<Matrix<T>>;
template <class T> using ConstMatrixView = Eigen::Map<const Matrix<T>>;
template <class T> using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// The shape of one sample: channels, height, width. The batch size is not part of it.
struct Shape {
    Index channels = 0;
    Index height = 0;
    Index width = 0;

    // C*H*W. ShapeError for a negative axis or more than max_elements values (core/checked.hpp).
    Index size() const {
        Index product = 0;
        if (channels >= 0 && height >= 0 && width >= 0 && detail::multiply_fits(channels, height, product) &&
            detail::multiply_fits(product, width, product) && product <= max_elements)
            return product;
        throw ShapeError("shape " + str() + " has a negative axis or more than " + std::to_string(max_elements) +
                         " values");
    }
    bool operator==(const Shape& other) const {
        return channels == other.channels && height == other.height && width == other.width;
    }
    bool operator!=(const Shape& other) const { return !(*this == other); }
    // "(C, H, W)", e.g. "(32, 14, 14)".
    std::string str() const {
        return "(" + std::to_string(channels) + ", " + std::to_string(height) + ", " +
               std::to_string(width) + ")";
    }
};

// `shape` itself once its size() is known to be defined: ShapeError naming `where` otherwise.
inline Shape checked_shape(const Shape& shape, const char* where) {
    try {
        (void)shape.size();
    } catch (const ShapeError& error) {
        throw ShapeError(std::string(where) + ": " + error.what());
    }
    return shape;
}

template <class T> Shape sample_shape(const Tensor<T>& x) {
    return {x.dimension(1), x.dimension(2), x.dimension(3)};
}
template <class T> Shape sample_shape(const TensorView<T>& x) {
    return {x.dimension(1), x.dimension(2), x.dimension(3)};
}
template <class T> Shape sample_shape(const ConstTensorView<T>& x) {
    return {x.dimension(1), x.dimension(2), x.dimension(3)};
}

// "(N, C, H, W)" for messages.
inline std::string batch_shape_str(Index batch, const Shape& shape) {
    return "(" + std::to_string(batch) + ", " + std::to_string(shape.channels) + ", " +
           std::to_string(shape.height) + ", " + std::to_string(shape.width) + ")";
}

// A zero-filled tensor of `batch` samples of `shape`.
template <class T> Tensor<T> make_tensor(Index batch, const Shape& shape) {
    Tensor<T> tensor(batch, shape.channels, shape.height, shape.width);
    tensor.setZero();
    return tensor;
}

// Views of a whole tensor, and of `batch` samples of `shape` starting at `data`.
template <class T> TensorView<T> view(Tensor<T>& tensor) {
    return TensorView<T>(tensor.data(), tensor.dimensions());
}
template <class T> ConstTensorView<T> view(const Tensor<T>& tensor) {
    return ConstTensorView<T>(tensor.data(), tensor.dimensions());
}
template <class T> TensorView<T> view(T* data, Index batch, const Shape& shape) {
    return TensorView<T>(data, batch, shape.channels, shape.height, shape.width);
}
template <class T> ConstTensorView<T> view(const T* data, Index batch, const Shape& shape) {
    return ConstTensorView<T>(data, batch, shape.channels, shape.height, shape.width);
}
// Read-only views: Eigen does not convert a mutable map to a const one by itself.
template <class T> ConstTensorView<T> const_view(const TensorView<T>& tensor) {
    return ConstTensorView<T>(tensor.data(), tensor.dimensions());
}
template <class T> ConstTensorView<T> const_view(const Tensor<T>& tensor) {
    return ConstTensorView<T>(tensor.data(), tensor.dimensions());
}

// The batch as an (N, C*H*W) row-major matrix over the same memory.
template <class T> MatrixView<T> as_matrix(TensorView<T> x) {
    return MatrixView<T>(x.data(), x.dimension(0), x.size() / std::max<Index>(x.dimension(0), 1));
}
template <class T> ConstMatrixView<T> as_matrix(ConstTensorView<T> x) {
    return ConstMatrixView<T>(x.data(), x.dimension(0),
                              x.size() / std::max<Index>(x.dimension(0), 1));
}

// Samples [first, first + count) of a batch, as a view.
template <class T> TensorView<T> batch_slice(TensorView<T> x, Index first, Index count) {
    const Shape shape = sample_shape<T>(x);
    return view<T>(x.data() + first * shape.size(), count, shape);
}
template <class T> ConstTensorView<T> batch_slice(ConstTensorView<T> x, Index first, Index count) {
    const Shape shape = sample_shape<T>(x);
    return view<T>(x.data() + first * shape.size(), count, shape);
}

namespace detail {

// Compile-time check that a tensor of scalar `Given` may go into a model of scalar `Model`.
// Without it Eigen converts the tensor implicitly and fails thirty lines deep in its assignment
// code; with it the error names both types and the fix.
template <class Model, class Given> constexpr void require_model_scalar() {
    constexpr bool float_double_pair = (std::is_same_v<Model, float> && std::is_same_v<Given, double>) ||
                                       (std::is_same_v<Model, double> && std::is_same_v<Given, float>);
    static_assert(!(std::is_same_v<Model, float> && std::is_same_v<Given, double>),
                  "latent: a Tensor<double> was passed to a float model: convert it first "
                  "(Tensor<float> x32 = x.cast<float>();) or build the model with double");
    static_assert(!(std::is_same_v<Model, double> && std::is_same_v<Given, float>),
                  "latent: a Tensor<float> was passed to a double model: convert it first "
                  "(Tensor<double> x64 = x.cast<double>();) or build the model with float");
    static_assert(std::is_same_v<Model, Given> || float_double_pair,
                  "latent: the tensor's scalar type is not the model's (the template arguments of "
                  "require_model_scalar<model scalar, tensor scalar> above name both)");
}

// What the models' overloads for tensors of another scalar type return: they never compile.
template <class Model, class Given, class Result = void> Result refuse_other_scalar() {
    require_model_scalar<Model, Given>();
    return Result();
}

}  // namespace detail

// A copy of samples [first, first + count) of a batch; count is cut to what the batch holds.
template <class T> Tensor<T> samples(const Tensor<T>& x, Index first, Index count) {
    if (first < 0 || first > x.dimension(0) || count < 0)
        throw ShapeError("samples: cannot take " + std::to_string(count) + " samples from " + std::to_string(first) +
                         " of a batch of " + std::to_string(x.dimension(0)));
    count = std::min(count, x.dimension(0) - first);
    Tensor<T> result(count, x.dimension(1), x.dimension(2), x.dimension(3));
    std::copy_n(x.data() + first * (x.size() / std::max<Index>(1, x.dimension(0))), result.size(), result.data());
    return result;
}

}  // namespace latent
