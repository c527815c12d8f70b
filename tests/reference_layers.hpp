// Plain-loop reference implementations of layers: slow and obviously right, the oracles the fast
// GEMM paths are compared with. They compute their padding and output sizes from the TensorFlow
// rules themselves (not through the library's helpers), so a wrong helper cannot hide here.
#pragma once

#include <latent/latent.hpp>
#include <latent/layers/padding.hpp>

#include <algorithm>
#include <optional>

namespace test {

using latent::Index;
using latent::Matrix;
using latent::Padding;
using latent::Size2;
using latent::Tensor;
using latent::Vector;

namespace reference_detail {

// One axis of a TensorFlow-padded window: output length and padding before.
struct Axis {
    Index output = 0;
    Index pad_before = 0;
};

inline Axis window_axis(Index in, Index kernel, Index stride, Padding padding) {
    if (padding == Padding::Valid) return {(in - kernel) / stride + 1, 0};
    const Index out = (in + stride - 1) / stride;  // ceil(in / stride)
    const Index total = std::max<Index>((out - 1) * stride + kernel - in, 0);
    return {out, total / 2};  // the odd pixel goes after (bottom/right)
}

// Keras's Conv2DTranspose output length; no output_padding is Keras's None.
inline Index transposed_length(Index in, Index kernel, Index stride, Padding padding,
                               std::optional<Index> output_padding) {
    if (!output_padding)
        return padding == Padding::Same ? in * stride
                                        : in * stride + std::max<Index>(kernel - stride, 0);
    if (padding == Padding::Same)
        return (in - 1) * stride + kernel - 2 * (kernel / 2) + *output_padding;
    return (in - 1) * stride + kernel + *output_padding;
}

template <class T>
T weight_at(const Matrix<T>& weight, Index row, Index channel, Index ki, Index kj, Size2 kernel) {
    return weight(row, (channel * kernel.height + ki) * kernel.width + kj);
}

}  // namespace reference_detail

// Conv2D forward: y[n,f,oy,ox] = b[f] + sum_{c,ki,kj} W[f,c,ki,kj] * x[n,c,oy*sh-pt+ki,ox*sw-pl+kj]
// weight (F, C*kh*kw) as in latent::Conv2D; an empty bias means none.
template <class T>
Tensor<T> reference_conv2d_forward(const Tensor<T>& x, const Matrix<T>& weight,
                                   const Vector<T>& bias, Size2 kernel, Size2 stride,
                                   Padding padding) {
    const Index batch = x.dimension(0), channels = x.dimension(1), filters = weight.rows();
    const auto rows =
        reference_detail::window_axis(x.dimension(2), kernel.height, stride.height, padding);
    const auto cols =
        reference_detail::window_axis(x.dimension(3), kernel.width, stride.width, padding);
    Tensor<T> y(batch, filters, rows.output, cols.output);
    for (Index n = 0; n < batch; ++n)
        for (Index f = 0; f < filters; ++f)
            for (Index oy = 0; oy < rows.output; ++oy)
                for (Index ox = 0; ox < cols.output; ++ox) {
                    double sum = bias.size() > 0 ? static_cast<double>(bias(f)) : 0.0;
                    for (Index c = 0; c < channels; ++c)
                        for (Index ki = 0; ki < kernel.height; ++ki)
                            for (Index kj = 0; kj < kernel.width; ++kj) {
                                const Index iy = oy * stride.height - rows.pad_before + ki;
                                const Index ix = ox * stride.width - cols.pad_before + kj;
                                if (iy < 0 || iy >= x.dimension(2) || ix < 0 ||
                                    ix >= x.dimension(3))
                                    continue;
                                sum += static_cast<double>(reference_detail::weight_at(
                                           weight, f, c, ki, kj, kernel)) *
                                       static_cast<double>(x(n, c, iy, ix));
                            }
                    y(n, f, oy, ox) = static_cast<T>(sum);
                }
    return y;
}

// Gradients of a layer's loss L given dL/dy.
template <class T> struct ReferenceGradients {
    Tensor<T> input;   // dL/dx
    Matrix<T> weight;  // dL/dW
    Vector<T> bias;    // dL/db
};

// Conv2D backward: every product W[f,c,ki,kj] * x[n,c,iy,ix] of the forward sends dy[n,f,oy,ox]
// to dx[n,c,iy,ix] (times W) and to dW[f,c,ki,kj] (times x); db[f] = sum of dy[., f, ., .].
template <class T>
ReferenceGradients<T> reference_conv2d_backward(const Tensor<T>& x, const Matrix<T>& weight,
                                                const Tensor<T>& dy, Size2 kernel, Size2 stride,
                                                Padding padding) {
    const Index batch = x.dimension(0), channels = x.dimension(1), filters = weight.rows();
    const auto rows =
        reference_detail::window_axis(x.dimension(2), kernel.height, stride.height, padding);
    const auto cols =
        reference_detail::window_axis(x.dimension(3), kernel.width, stride.width, padding);
    Tensor<double> dx(x.dimensions());
    dx.setZero();
    Matrix<double> dw = Matrix<double>::Zero(weight.rows(), weight.cols());
    Vector<double> db = Vector<double>::Zero(filters);
    for (Index n = 0; n < batch; ++n)
        for (Index f = 0; f < filters; ++f)
            for (Index oy = 0; oy < rows.output; ++oy)
                for (Index ox = 0; ox < cols.output; ++ox) {
                    const double g = static_cast<double>(dy(n, f, oy, ox));
                    db(f) += g;
                    for (Index c = 0; c < channels; ++c)
                        for (Index ki = 0; ki < kernel.height; ++ki)
                            for (Index kj = 0; kj < kernel.width; ++kj) {
                                const Index iy = oy * stride.height - rows.pad_before + ki;
                                const Index ix = ox * stride.width - cols.pad_before + kj;
                                if (iy < 0 || iy >= x.dimension(2) || ix < 0 ||
                                    ix >= x.dimension(3))
                                    continue;
                                const Index tap = (c * kernel.height + ki) * kernel.width + kj;
                                dx(n, c, iy, ix) += static_cast<double>(weight(f, tap)) * g;
                                dw(f, tap) += static_cast<double>(x(n, c, iy, ix)) * g;
                            }
                }
    return {dx.cast<T>(), dw.cast<T>(), db.cast<T>()};
}

// The geometry of a transposed convolution along one axis: output length, and the crop from the
// top/left of the full scatter map of length (in - 1) * stride + kernel.
inline reference_detail::Axis transposed_axis(Index in, Index kernel, Index stride, Padding padding,
                                              std::optional<Index> output_padding) {
    const Index out =
        reference_detail::transposed_length(in, kernel, stride, padding, output_padding);
    // TensorFlow crops what a Conv2D with an input of length `out` would pad before.
    return {out, reference_detail::window_axis(out, kernel, stride, padding).pad_before};
}

// ConvTranspose2D forward, as a scatter: x[n,c,i,j] * W[c,f,ki,kj] lands at full-map position
// (i*sh + ki, j*sw + kj), which is output position (i*sh + ki - crop_top, j*sw + kj - crop_left)
// when that lies inside the output. weight (C, F*kh*kw) as in latent::ConvTranspose2D.
template <class T>
Tensor<T> reference_conv_transpose2d_forward(const Tensor<T>& x, const Matrix<T>& weight,
                                             const Vector<T>& bias, Index filters, Size2 kernel,
                                             Size2 stride, Padding padding,
                                             std::optional<Size2> output_padding = std::nullopt) {
    const Index batch = x.dimension(0), channels = x.dimension(1);
    const auto rows = transposed_axis(x.dimension(2), kernel.height, stride.height, padding,
                                      output_padding ? std::optional<Index>(output_padding->height) : std::nullopt);
    const auto cols = transposed_axis(x.dimension(3), kernel.width, stride.width, padding,
                                      output_padding ? std::optional<Index>(output_padding->width) : std::nullopt);
    Tensor<double> y(batch, filters, rows.output, cols.output);
    for (Index n = 0; n < batch; ++n)
        for (Index f = 0; f < filters; ++f)
            for (Index oy = 0; oy < rows.output; ++oy)
                for (Index ox = 0; ox < cols.output; ++ox)
                    y(n, f, oy, ox) = bias.size() > 0 ? static_cast<double>(bias(f)) : 0.0;
    for (Index n = 0; n < batch; ++n)
        for (Index c = 0; c < channels; ++c)
            for (Index i = 0; i < x.dimension(2); ++i)
                for (Index j = 0; j < x.dimension(3); ++j)
                    for (Index f = 0; f < filters; ++f)
                        for (Index ki = 0; ki < kernel.height; ++ki)
                            for (Index kj = 0; kj < kernel.width; ++kj) {
                                const Index oy = i * stride.height + ki - rows.pad_before;
                                const Index ox = j * stride.width + kj - cols.pad_before;
                                if (oy < 0 || oy >= rows.output || ox < 0 || ox >= cols.output)
                                    continue;
                                y(n, f, oy, ox) += static_cast<double>(x(n, c, i, j)) *
                                                   static_cast<double>(reference_detail::weight_at(
                                                       weight, c, f, ki, kj, kernel));
                            }
    return y.cast<T>();
}

// ConvTranspose2D backward: each scatter product x[n,c,i,j] * W[c,f,ki,kj] -> y[n,f,oy,ox] sends
// dy[n,f,oy,ox] back to dx[n,c,i,j] (times W) and dW[c,f,ki,kj] (times x); db[f] = sum of dy.
template <class T>
ReferenceGradients<T> reference_conv_transpose2d_backward(const Tensor<T>& x,
                                                          const Matrix<T>& weight,
                                                          const Tensor<T>& dy, Size2 kernel,
                                                          Size2 stride, Padding padding,
                                                          std::optional<Size2> output_padding = std::nullopt) {
    const Index batch = x.dimension(0), channels = x.dimension(1), filters = dy.dimension(1);
    const auto rows = transposed_axis(x.dimension(2), kernel.height, stride.height, padding,
                                      output_padding ? std::optional<Index>(output_padding->height) : std::nullopt);
    const auto cols = transposed_axis(x.dimension(3), kernel.width, stride.width, padding,
                                      output_padding ? std::optional<Index>(output_padding->width) : std::nullopt);
    Tensor<double> dx(x.dimensions());
    dx.setZero();
    Matrix<double> dw = Matrix<double>::Zero(weight.rows(), weight.cols());
    Vector<double> db = Vector<double>::Zero(filters);
    for (Index n = 0; n < batch; ++n)
        for (Index f = 0; f < filters; ++f)
            for (Index oy = 0; oy < rows.output; ++oy)
                for (Index ox = 0; ox < cols.output; ++ox)
                    db(f) += static_cast<double>(dy(n, f, oy, ox));
    for (Index n = 0; n < batch; ++n)
        for (Index c = 0; c < channels; ++c)
            for (Index i = 0; i < x.dimension(2); ++i)
                for (Index j = 0; j < x.dimension(3); ++j)
                    for (Index f = 0; f < filters; ++f)
                        for (Index ki = 0; ki < kernel.height; ++ki)
                            for (Index kj = 0; kj < kernel.width; ++kj) {
                                const Index oy = i * stride.height + ki - rows.pad_before;
                                const Index ox = j * stride.width + kj - cols.pad_before;
                                if (oy < 0 || oy >= rows.output || ox < 0 || ox >= cols.output)
                                    continue;
                                const Index tap = (f * kernel.height + ki) * kernel.width + kj;
                                const double g = static_cast<double>(dy(n, f, oy, ox));
                                dx(n, c, i, j) += static_cast<double>(weight(c, tap)) * g;
                                dw(c, tap) += static_cast<double>(x(n, c, i, j)) * g;
                            }
    return {dx.cast<T>(), dw.cast<T>(), db.cast<T>()};
}

}  // namespace test
