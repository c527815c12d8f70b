// MaxPool2D: each output cell is the largest input value in its pool window, per channel.
// x is (N, C, H, W), y is (N, C, OH, OW) with OH, OW from window_output_size (TensorFlow rules).
// Same padding pads with -infinity, so padded cells never win; Valid needs the pool to fit.
// Keras's MaxPooling2D defaults apply: stride = pool, padding = "valid".
// The common 2x2 pool with stride 2 has a branch-free fast path that records each window's
// arg-max as a one-byte code (see forward_plane_2x2).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/checked.hpp"
#include "../core/threading.hpp"
#include "layer.hpp"
#include "padding.hpp"

namespace latent {

template <class T = float> class MaxPool2D {
public:
    using Scalar = T;
    static constexpr const char* type_name = "MaxPool2D";
    bool backward_reads_output() const { return false; }  // it reads the recorded arg-max and dy

    // A stride of 0 (along an axis) means "the pool size", as in Keras.
    explicit MaxPool2D(Size2 pool, Size2 stride = 0, Padding padding = Padding::Valid)
        : pool_(pool),
          stride_(stride.height == 0 ? pool.height : stride.height,
                  stride.width == 0 ? pool.width : stride.width),
          padding_(padding) {
        detail::require(pool.height >= 1 && pool.width >= 1, "MaxPool2D",
                        "pool must be >= 1 along both axes, got " + pool.str());
        detail::require(stride.height >= 0 && stride.width >= 0, "MaxPool2D",
                        "stride must be >= 1 along both axes (0 = pool size), got " + stride.str());
        check_extents(pool, 1, "MaxPool2D", "pool");
        check_extents(stride, 0, "MaxPool2D", "stride");
    }

    Shape output_shape(const Shape& input) const {
        const Shape output{input.channels, out_size(input.height, pool_.height, stride_.height),
                           out_size(input.width, pool_.width, stride_.width)};
        if (input.size() < 1 || checked_shape(output, "MaxPool2D: output").size() < 1)
            throw ShapeError(std::string("MaxPool2D: pool ") + pool_.str() + " with " +
                             padding_name(padding_) + " padding does not fit input " + input.str() +
                             " (output would be " + output.str() + ")");
        return output;
    }

    // forward: y[n, c, oh, ow] = max over the window x[n, c, oh*sh - pad_top + i, ow*sw - pad_left + j]
    //          (cells outside x are -inf); argmax_ keeps where the first maximum was found.
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        const Geometry geometry = geometry_of(x);
        const auto cells = static_cast<std::size_t>(geometry.planes * geometry.output_plane);
        if (is_2x2()) window_codes_.resize(cells);
        else argmax_.resize(cells);
        last_ = geometry;
        const Chunks chunks = plane_chunks(geometry);
        parallel_for(chunks.count(), geometry.planes * geometry.output_plane * pool_.height * pool_.width,
                     [&](Index chunk) {
            const Index end = chunks.begin(chunk) + chunks.size(chunk);
            for (Index plane = chunks.begin(chunk); plane < end; ++plane) {
                if (is_2x2()) forward_plane_2x2(geometry, plane, x.data(), y.data());
                else forward_plane(geometry, plane, x.data(), y.data());
            }
        });
    }

    // backward: dx = 0, then dx[n, argmax] += dy[n, c, oh, ow] for every output cell
    //           (windows that overlap when stride < pool add up). Each plane is scattered by
    //           one thread in output order, so the sums do not depend on the thread count.
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        const Geometry geometry = geometry_of(x);
        const std::size_t recorded = is_2x2() ? window_codes_.size() : argmax_.size();
        if (static_cast<Index>(recorded) != geometry.planes * geometry.output_plane)
            throw ShapeError("MaxPool2D backward: the last forward saw a different batch (" +
                             std::to_string(recorded) + " output cells recorded, " +
                             std::to_string(geometry.planes * geometry.output_plane) +
                             " expected); call forward on the same input first");
        const Chunks chunks = plane_chunks(geometry);
        parallel_for(chunks.count(), geometry.planes * geometry.output_plane * pool_.height * pool_.width,
                     [&](Index chunk) {
            const Index end = chunks.begin(chunk) + chunks.size(chunk);
            for (Index plane = chunks.begin(chunk); plane < end; ++plane) {
                if (is_2x2()) backward_plane_2x2(geometry, plane, dy.data(), dx.data());
                else backward_plane(geometry, plane, dy.data(), dx.data());
            }
        });
    }

    Config config() const {
        return Config()
            .set("pool_h", pool_.height)
            .set("pool_w", pool_.width)
            .set("stride_h", stride_.height)
            .set("stride_w", stride_.width)
            .set("padding", padding_name(padding_));
    }
    static MaxPool2D from_config(const Config& config) {
        return MaxPool2D({config.get_int("pool_h"), config.get_int("pool_w")},
                         {config.get_int("stride_h"), config.get_int("stride_w")},
                         padding_from_name(config.get_string("padding")));
    }

    const Size2& pool() const { return pool_; }
    const Size2& stride() const { return stride_; }
    Padding padding() const { return padding_; }
    // Flat index, within its input sample, of the input value each output cell took (last forward).
    // The 2x2 fast path records window codes instead; the indices are then derived on this call.
    const std::vector<Index>& argmax() const {
        if (is_2x2()) argmax_from_codes();
        return argmax_;
    }

private:
    // Sizes of one forward/backward call; a "plane" is one channel of one sample.
    struct Geometry {
        Index channels, in_h, in_w, out_h, out_w, pad_top, pad_left;
        Index planes;        // N * C
        Index input_plane;   // H * W
        Index output_plane;  // OH * OW
    };

    // A 2x2 pool with stride 2: windows never overlap and, with either padding, start at
    // (2*oh, 2*ow) (Same pads only after an odd size, which clips the last window).
    bool is_2x2() const { return pool_ == Size2(2) && stride_ == Size2(2); }

    Index out_size(Index in, Index pool, Index stride) const {
        return window_output_size(in, pool, stride, padding_);
    }

    Geometry geometry_of(const ConstTensorView<T>& x) const {
        Geometry g{};
        g.channels = x.dimension(1);
        g.in_h = x.dimension(2);
        g.in_w = x.dimension(3);
        g.out_h = out_size(g.in_h, pool_.height, stride_.height);
        g.out_w = out_size(g.in_w, pool_.width, stride_.width);
        g.pad_top = window_pad_before(g.in_h, pool_.height, stride_.height, padding_);
        g.pad_left = window_pad_before(g.in_w, pool_.width, stride_.width, padding_);
        g.planes = x.dimension(0) * g.channels;
        g.input_plane = g.in_h * g.in_w;
        g.output_plane = g.out_h * g.out_w;
        return g;
    }

    // Fixed-size groups of planes: boundaries depend on the shape only.
    Chunks plane_chunks(const Geometry& g) const {
        return batch_chunks(g.planes, g.output_plane * pool_.height * pool_.width);
    }

    // One plane of the forward. The window is clipped to the input, which is what padding with
    // -inf amounts to; the strict '>' keeps the first maximum in row-major window order.
    void forward_plane(const Geometry& g, Index plane, const T* x, T* y) {
        const T* in = x + plane * g.input_plane;
        T* out = y + plane * g.output_plane;
        Index* arg = argmax_.data() + plane * g.output_plane;
        const Index channel_offset = (plane % g.channels) * g.input_plane;  // within the sample
        for (Index oh = 0; oh < g.out_h; ++oh) {
            const Index top = oh * stride_.height - g.pad_top;
            const Index row_begin = std::max<Index>(top, 0);
            const Index row_end = std::min(top + pool_.height, g.in_h);
            for (Index ow = 0; ow < g.out_w; ++ow) {
                const Index left = ow * stride_.width - g.pad_left;
                const Index col_begin = std::max<Index>(left, 0);
                const Index col_end = std::min(left + pool_.width, g.in_w);
                Index best = row_begin * g.in_w + col_begin;
                T best_value = in[best];
                for (Index row = row_begin; row < row_end; ++row)
                    for (Index col = col_begin; col < col_end; ++col)
                        if (in[row * g.in_w + col] > best_value) {
                            best = row * g.in_w + col;
                            best_value = in[best];
                        }
                out[oh * g.out_w + ow] = best_value;
                arg[oh * g.out_w + ow] = channel_offset + best;
            }
        }
    }

    // One plane of the 2x2 forward: y = max(a, b, c, d) of each window
    //     a b      with code = 0, 1, 2, 3 for the first maximum in that (row-major) order,
    //     c d      exactly the generic loop's strict '>' scan.
    // A window clipped by an odd size reads its missing column (row) as a copy of the one it has,
    // which a strict '>' never picks: the code stays within the window.
    void forward_plane_2x2(const Geometry& g, Index plane, const T* x, T* y) {
        const T* in = x + plane * g.input_plane;
        T* out = y + plane * g.output_plane;
        std::uint8_t* codes = window_codes_.data() + plane * g.output_plane;
        const Index full_w = g.in_w / 2;
        for (Index oh = 0; oh < g.out_h; ++oh, out += g.out_w, codes += g.out_w) {
            const T* top = in + 2 * oh * g.in_w;
            const T* bottom = 2 * oh + 1 < g.in_h ? top + g.in_w : top;
            for (Index ow = 0; ow < full_w; ++ow)
                max_of_window(top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1], out[ow],
                              codes[ow]);
            if (full_w < g.out_w)  // Same on an odd width: the last window has one column
                max_of_window(top[2 * full_w], top[2 * full_w], bottom[2 * full_w], bottom[2 * full_w],
                              out[full_w], codes[full_w]);
        }
    }

    // The scan without branches (a random input makes every branch a coin toss): the maximum
    // as selects the compiler turns into max instructions, the code as integer arithmetic.
    static void max_of_window(T a, T b, T c, T d, T& best, std::uint8_t& code) {
        T value = a;
        int where = 0;
        int greater = b > value;
        value = b > value ? b : value;
        where += greater * (1 - where);
        greater = c > value;
        value = c > value ? c : value;
        where += greater * (2 - where);
        greater = d > value;
        value = d > value ? d : value;
        where += greater * (3 - where);
        best = value;
        code = static_cast<std::uint8_t>(where);
    }

    // One plane of the 2x2 backward: dx = 0, then each window's dy lands on the cell its code
    // names (windows do not overlap, so no sums).
    void backward_plane_2x2(const Geometry& g, Index plane, const T* dy, T* dx) const {
        const T* grad_out = dy + plane * g.output_plane;
        const std::uint8_t* codes = window_codes_.data() + plane * g.output_plane;
        T* grad_in = dx + plane * g.input_plane;
        std::fill_n(grad_in, g.input_plane, T(0));
        const Index offset[4] = {0, 1, g.in_w, g.in_w + 1};  // of the code's cell from the window's
        for (Index oh = 0; oh < g.out_h; ++oh, grad_out += g.out_w, codes += g.out_w) {
            T* window = grad_in + 2 * oh * g.in_w;
            for (Index ow = 0; ow < g.out_w; ++ow) window[2 * ow + offset[codes[ow]]] = grad_out[ow];
        }
    }

    // argmax_ from the window codes of the last 2x2 forward.
    void argmax_from_codes() const {
        const Geometry& g = last_;
        argmax_.resize(window_codes_.size());
        for (std::size_t cell = 0; cell < window_codes_.size(); ++cell) {
            const auto index = static_cast<Index>(cell);
            const Index plane = index / std::max<Index>(g.output_plane, 1);
            const Index oh = index % g.output_plane / g.out_w, ow = index % g.out_w;
            const Index code = window_codes_[cell];
            argmax_[cell] = (plane % g.channels) * g.input_plane + (2 * oh + code / 2) * g.in_w + 2 * ow + code % 2;
        }
    }

    // One plane of the backward: the argmax indices of a plane all point into the same plane.
    void backward_plane(const Geometry& g, Index plane, const T* dy, T* dx) const {
        const Index sample = plane / g.channels;
        T* grad_sample = dx + sample * g.channels * g.input_plane;
        std::fill_n(grad_sample + (plane % g.channels) * g.input_plane, g.input_plane, T(0));
        const T* grad_out = dy + plane * g.output_plane;
        const Index* arg = argmax_.data() + plane * g.output_plane;
        for (Index cell = 0; cell < g.output_plane; ++cell) grad_sample[arg[cell]] += grad_out[cell];
    }

    Size2 pool_;
    Size2 stride_;
    Padding padding_;
    // One per output cell of the last forward (capacity is kept): the input's flat index within
    // its sample, or for the 2x2 path a window code (argmax_ is then filled only by argmax()).
    mutable std::vector<Index> argmax_;
    std::vector<std::uint8_t> window_codes_;
    Geometry last_{};  // of the last forward
};

}  // namespace latent
