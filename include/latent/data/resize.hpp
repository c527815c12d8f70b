// Image resizing of whole batches (N, C, H, W), each channel of each sample on its own, with
// the semantics of PyTorch's F.interpolate(x, size, mode, align_corners=False) without
// antialiasing. Along each axis, output position o of `out` maps to the source coordinate
//   s = (o + 0.5) * in / out - 0.5
// Bilinear: s is clamped below at 0; i0 = floor(s), i1 = min(i0 + 1, in - 1), t = s - i0;
//   y = (1 - t) * x[i0] + t * x[i1].
// Bicubic (Keys' cubic convolution, a = -0.75 as in PyTorch): f = floor(s) (s not clamped),
//   t = s - f; y = sum_{k=0..3} W(t + 1 - k) * x[clamp(f - 1 + k, 0, in - 1)], with
//   W(d) = (a + 2)|d|^3 - (a + 3)|d|^2 + 1            for |d| <= 1
//   W(d) = a|d|^3 - 5a|d|^2 + 8a|d| - 4a              for 1 < |d| < 2,  0 otherwise.
// Both are separable: rows are interpolated first, then columns (PyTorch's order of operations).
// Bicubic overshoots near edges (a value can leave [0, 1]); the result is NOT clamped, so it
// stays an exact linear map of the input. Clamp afterwards if the caller needs [0, 1].
// An axis whose size does not change is copied as is, so resizing to the same size is exact.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"

namespace latent {

enum class Resize { Bilinear, Bicubic };

inline const char* resize_name(Resize method) {
    return method == Resize::Bilinear ? "bilinear" : "bicubic";
}

// The four bicubic weights of the neighbours floor(s) - 1 .. floor(s) + 2, for t = s - floor(s)
// in [0, 1). They sum to 1 for every t (the kernel is a partition of unity).
inline std::array<double, 4> bicubic_weights(double t) {
    constexpr double a = -0.75;
    auto near = [](double d) { return ((a + 2) * d - (a + 3)) * d * d + 1; };  // |d| <= 1
    auto far = [](double d) { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; };  // 1 < |d| < 2
    return {far(t + 1), near(t), near(1 - t), far(2 - t)};
}

namespace detail {

// How every output position along one axis reads the input: `taps` (index, weight) pairs per
// position, stored position after position.
struct ResampleAxis {
    Index in = 0;
    Index out = 0;
    Index taps = 0;
    std::vector<Index> index;
    std::vector<double> weight;

    bool identity() const { return in == out; }
};

inline double source_coordinate(Index o, Index in, Index out) {
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    return scale * (static_cast<double>(o) + 0.5) - 0.5;
}

inline ResampleAxis bilinear_axis(Index in, Index out) {
    ResampleAxis axis{in, out, 2, std::vector<Index>(out * 2), std::vector<double>(out * 2)};
    for (Index o = 0; o < out; ++o) {
        const double s = std::max(source_coordinate(o, in, out), 0.0);
        const Index i0 = std::min(static_cast<Index>(s), in - 1);  // s >= 0: truncation is floor
        const double t = s - static_cast<double>(i0);
        axis.index[2 * o] = i0;
        axis.index[2 * o + 1] = std::min(i0 + 1, in - 1);
        axis.weight[2 * o] = 1.0 - t;
        axis.weight[2 * o + 1] = t;
    }
    return axis;
}

inline ResampleAxis bicubic_axis(Index in, Index out) {
    ResampleAxis axis{in, out, 4, std::vector<Index>(out * 4), std::vector<double>(out * 4)};
    for (Index o = 0; o < out; ++o) {
        const double s = source_coordinate(o, in, out);
        const double floor_s = std::floor(s);
        const Index f = static_cast<Index>(floor_s);
        const std::array<double, 4> weights = bicubic_weights(s - floor_s);
        for (Index k = 0; k < 4; ++k) {
            axis.index[4 * o + k] = std::clamp<Index>(f - 1 + k, 0, in - 1);
            axis.weight[4 * o + k] = weights[k];
        }
    }
    return axis;
}

// One plane: rows then columns. `row_pass` holds the (in_height, out_width) intermediate.
template <class T>
void resample_plane(const T* source, T* target, const ResampleAxis& rows, const ResampleAxis& cols,
                    std::vector<T>& row_pass) {
    const Index in_width = cols.in, out_width = cols.out;
    const T* horizontal = source;  // (rows.in, out_width)
    if (!cols.identity()) {
        row_pass.resize(rows.in * out_width);
        for (Index h = 0; h < rows.in; ++h) {
            const T* line = source + h * in_width;
            T* result = row_pass.data() + h * out_width;
            for (Index o = 0; o < out_width; ++o) {
                T sum = 0;
                for (Index k = 0; k < cols.taps; ++k)
                    sum += static_cast<T>(cols.weight[o * cols.taps + k]) * line[cols.index[o * cols.taps + k]];
                result[o] = sum;
            }
        }
        horizontal = row_pass.data();
    }
    if (rows.identity()) {
        std::copy(horizontal, horizontal + rows.in * out_width, target);
        return;
    }
    for (Index o = 0; o < rows.out; ++o) {
        T* result = target + o * out_width;
        std::fill(result, result + out_width, T(0));
        for (Index k = 0; k < rows.taps; ++k) {
            const T weight = static_cast<T>(rows.weight[o * rows.taps + k]);
            const T* line = horizontal + rows.index[o * rows.taps + k] * out_width;
            for (Index w = 0; w < out_width; ++w) result[w] += weight * line[w];
        }
    }
}

template <class T>
Tensor<T> resample(const Tensor<T>& input, Index height, Index width, Resize method) {
    const std::string where = std::string("resize_") + resize_name(method);
    require(height >= 1 && width >= 1, where,
            "target size must be at least 1x1, got " + std::to_string(height) + "x" +
                std::to_string(width));
    if (input.dimension(1) < 1 || input.dimension(2) < 1 || input.dimension(3) < 1)
        throw ShapeError(where + ": input " + batch_shape_str(input.dimension(0), sample_shape(input)) +
                         " has no pixels");
    const Index in_height = input.dimension(2), in_width = input.dimension(3);
    auto make_axis = method == Resize::Bilinear ? bilinear_axis : bicubic_axis;
    const ResampleAxis rows = make_axis(in_height, height), cols = make_axis(in_width, width);
    Tensor<T> output(input.dimension(0), input.dimension(1), height, width);
    const Index planes = input.dimension(0) * input.dimension(1);
    // Every output value depends on its own plane only, so the thread count cannot change it.
    std::vector<std::vector<T>> row_pass(static_cast<std::size_t>(num_threads()));
    parallel_for(planes, [&](Index plane, int worker) {
        resample_plane(input.data() + plane * in_height * in_width, output.data() + plane * height * width,
                       rows, cols, row_pass[static_cast<std::size_t>(worker)]);
    });
    return output;
}

}  // namespace detail

// Bilinear resize of every image in the batch to (height, width); see the formulas above.
template <class T> Tensor<T> resize_bilinear(const Tensor<T>& images, Index height, Index width) {
    return detail::resample(images, height, width, Resize::Bilinear);
}

// Bicubic resize (a = -0.75) of every image in the batch; values may leave [0, 1] (not clamped).
template <class T> Tensor<T> resize_bicubic(const Tensor<T>& images, Index height, Index width) {
    return detail::resample(images, height, width, Resize::Bicubic);
}

template <class T>
Tensor<T> resize(const Tensor<T>& images, Index height, Index width, Resize method) {
    return detail::resample(images, height, width, method);
}

}  // namespace latent
