// UpSample2D: enlarges each channel by an integer factor, (N, C, H, W) -> (N, C, H*fh, W*fw),
// as Keras's UpSampling2D.
//   Nearest:  y[oh, ow] = x[oh / fh, ow / fw]  (each pixel repeated into an fh x fw block).
//   Bilinear: tf.image.resize bilinear with half_pixel_centers (= PyTorch's Upsample(mode=
//             "bilinear", align_corners=False)). Along each axis, for output index o, factor f
//             and input length n:
//                 s = max((o + 0.5) / f - 0.5, 0),  i0 = floor(s),  i1 = min(i0 + 1, n - 1),
//                 w1 = s - i0 (weight of i1),  w0 = 1 - w1 (weight of i0);
//             y[oh, ow] = sum over a in {0,1}, b in {0,1} of wa(oh) * wb(ow) * x[ia(oh), ib(ow)].
// Both modes are linear in x; backward applies the exact adjoint (the same weights, transposed).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../core/checked.hpp"
#include "../core/threading.hpp"
#include "layer.hpp"
#include "padding.hpp"

namespace latent {

enum class Interpolation { Nearest, Bilinear };

inline const char* interpolation_name(Interpolation mode) {
    return mode == Interpolation::Nearest ? "nearest" : "bilinear";
}

inline Interpolation interpolation_from_name(const std::string& name) {
    if (name == "nearest") return Interpolation::Nearest;
    if (name == "bilinear") return Interpolation::Bilinear;
    throw FormatError("unknown interpolation '" + name + "' (expected 'nearest' or 'bilinear')");
}

template <class T = float> class UpSample2D {
public:
    using Scalar = T;
    static constexpr const char* type_name = "UpSample2D";
    bool backward_reads_output() const { return false; }  // it reads dy alone

    explicit UpSample2D(Size2 factor, Interpolation mode = Interpolation::Nearest)
        : factor_(factor), mode_(mode) {
        detail::require(factor.height >= 1 && factor.width >= 1, "UpSample2D",
                        "factor must be >= 1 along both axes, got " + factor.str());
        check_extents(factor, 1, "UpSample2D", "factor");
    }

    Shape output_shape(const Shape& input) const {
        if (input.size() < 1)
            throw ShapeError("UpSample2D: input shape " + input.str() + " has no elements");
        const char* what = "UpSample2D output size";
        return checked_shape({input.channels, checked_multiply(input.height, factor_.height, what),
                              checked_multiply(input.width, factor_.width, what)},
                             "UpSample2D: output");
    }

    // forward: nearest  y[oh, ow] = x[oh / fh, ow / fw]
    //          bilinear y[oh, ow] = sum_ab wa(oh) wb(ow) x[ia(oh), ib(ow)]   (see the top comment)
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        const Geometry g = geometry_of(x);
        if (mode_ == Interpolation::Bilinear) update_taps(g);
        for_each_plane(g, [&](Index plane) {
            const T* in = x.data() + plane * g.in_h * g.in_w;
            T* out = y.data() + plane * g.out_h * g.out_w;
            if (mode_ == Interpolation::Nearest) nearest_forward(g, in, out);
            else bilinear_forward(g, in, out);
        });
    }

    // backward: nearest  dx[ih, iw] = sum of dy over the fh x fw block [ih*fh, iw*fw]
    //           bilinear dx[ia(oh), ib(ow)] += wa(oh) wb(ow) dy[oh, ow]   (dx zeroed first)
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        const Geometry g = geometry_of(x);
        if (mode_ == Interpolation::Bilinear) update_taps(g);
        for_each_plane(g, [&](Index plane) {
            const T* grad_out = dy.data() + plane * g.out_h * g.out_w;
            T* grad_in = dx.data() + plane * g.in_h * g.in_w;
            if (mode_ == Interpolation::Nearest) nearest_backward(g, grad_out, grad_in);
            else bilinear_backward(g, grad_out, grad_in);
        });
    }

    Config config() const {
        return Config()
            .set("factor_h", factor_.height)
            .set("factor_w", factor_.width)
            .set("interpolation", interpolation_name(mode_));
    }
    static UpSample2D from_config(const Config& config) {
        return UpSample2D({config.get_int("factor_h"), config.get_int("factor_w")},
                          interpolation_from_name(config.get_string("interpolation")));
    }

    const Size2& factor() const { return factor_; }
    Interpolation interpolation() const { return mode_; }

private:
    struct Geometry {
        Index planes, in_h, in_w, out_h, out_w;
    };

    // The two input taps of one output index along one axis and their weights (w0, w1).
    struct Tap {
        Index first, second;
        T weight_first, weight_second;
    };

    Geometry geometry_of(const ConstTensorView<T>& x) const {
        const Index in_h = x.dimension(2), in_w = x.dimension(3);
        return {x.dimension(0) * x.dimension(1), in_h, in_w, in_h * factor_.height,
                in_w * factor_.width};
    }

    // Runs body(plane) over all N*C planes in fixed groups; planes are independent.
    template <class Body> void for_each_plane(const Geometry& g, Body&& body) const {
        const Chunks chunks = batch_chunks(g.planes, g.out_h * g.out_w);
        parallel_for(chunks.count(), g.planes * g.out_h * g.out_w, [&](Index chunk) {
            const Index end = chunks.begin(chunk) + chunks.size(chunk);
            for (Index plane = chunks.begin(chunk); plane < end; ++plane) body(plane);
        });
    }

    // Builds output row ih*fh from input row ih, then repeats it fh - 1 times.
    void nearest_forward(const Geometry& g, const T* in, T* out) const {
        const Index fh = factor_.height, fw = factor_.width;
        if (fh == 2 && fw == 2) return nearest_forward_2x2(g, in, out);
        for (Index ih = 0; ih < g.in_h; ++ih) {
            const T* in_row = in + ih * g.in_w;
            T* out_row = out + ih * fh * g.out_w;
            for (Index iw = 0; iw < g.in_w; ++iw) std::fill_n(out_row + iw * fw, fw, in_row[iw]);
            for (Index copy = 1; copy < fh; ++copy)
                std::copy_n(out_row, g.out_w, out_row + copy * g.out_w);
        }
    }

    void nearest_backward(const Geometry& g, const T* grad_out, T* grad_in) const {
        const Index fh = factor_.height, fw = factor_.width;
        if (fh == 2 && fw == 2) return nearest_backward_2x2(g, grad_out, grad_in);
        for (Index ih = 0; ih < g.in_h; ++ih) {
            T* in_row = grad_in + ih * g.in_w;
            for (Index iw = 0; iw < g.in_w; ++iw) {
                T sum = T(0);
                for (Index oh = ih * fh; oh < (ih + 1) * fh; ++oh) {
                    const T* block = grad_out + oh * g.out_w + iw * fw;
                    for (Index k = 0; k < fw; ++k) sum += block[k];
                }
                in_row[iw] = sum;
            }
        }
    }

    // Factor 2 (the common case), with a plain loop the compiler vectorizes: each input value is
    // written into its 2x2 block of output rows 2*ih and 2*ih + 1.
    void nearest_forward_2x2(const Geometry& g, const T* in, T* out) const {
        for (Index ih = 0; ih < g.in_h; ++ih, in += g.in_w) {
            T* top = out + 2 * ih * g.out_w;
            T* bottom = top + g.out_w;
            for (Index iw = 0; iw < g.in_w; ++iw) {
                const T value = in[iw];
                top[2 * iw] = value;
                top[2 * iw + 1] = value;
                bottom[2 * iw] = value;
                bottom[2 * iw + 1] = value;
            }
        }
    }

    // dx[ih, iw] = (dy[2ih, 2iw] + dy[2ih+1, 2iw]) + (dy[2ih, 2iw+1] + dy[2ih+1, 2iw+1]): the row
    // pair is summed first, element by element, then adjacent pairs.
    void nearest_backward_2x2(const Geometry& g, const T* grad_out, T* grad_in) const {
        for (Index ih = 0; ih < g.in_h; ++ih, grad_in += g.in_w) {
            const T* top = grad_out + 2 * ih * g.out_w;
            const T* bottom = top + g.out_w;
            for (Index iw = 0; iw < g.in_w; ++iw)
                grad_in[iw] = (top[2 * iw] + bottom[2 * iw]) + (top[2 * iw + 1] + bottom[2 * iw + 1]);
        }
    }

    void bilinear_forward(const Geometry& g, const T* in, T* out) const {
        for (Index oh = 0; oh < g.out_h; ++oh) {
            const Tap& row = row_taps_[oh];
            const T* top = in + row.first * g.in_w;
            const T* bottom = in + row.second * g.in_w;
            for (Index ow = 0; ow < g.out_w; ++ow) {
                const Tap& col = col_taps_[ow];
                const T upper = col.weight_first * top[col.first] + col.weight_second * top[col.second];
                const T lower =
                    col.weight_first * bottom[col.first] + col.weight_second * bottom[col.second];
                out[oh * g.out_w + ow] = row.weight_first * upper + row.weight_second * lower;
            }
        }
    }

    // The adjoint of bilinear_forward: each dy spreads over the four taps with the same weights.
    void bilinear_backward(const Geometry& g, const T* grad_out, T* grad_in) const {
        std::fill_n(grad_in, g.in_h * g.in_w, T(0));
        for (Index oh = 0; oh < g.out_h; ++oh) {
            const Tap& row = row_taps_[oh];
            T* top = grad_in + row.first * g.in_w;
            T* bottom = grad_in + row.second * g.in_w;
            for (Index ow = 0; ow < g.out_w; ++ow) {
                const Tap& col = col_taps_[ow];
                const T grad = grad_out[oh * g.out_w + ow];
                const T grad_upper = row.weight_first * grad;
                const T grad_lower = row.weight_second * grad;
                top[col.first] += col.weight_first * grad_upper;
                top[col.second] += col.weight_second * grad_upper;
                bottom[col.first] += col.weight_first * grad_lower;
                bottom[col.second] += col.weight_second * grad_lower;
            }
        }
    }

    // Fills the tap tables for the current input size; they are resized, never shrunk, so a
    // steady-state call allocates nothing.
    void update_taps(const Geometry& g) {
        fill_taps(row_taps_, g.in_h, factor_.height);
        fill_taps(col_taps_, g.in_w, factor_.width);
    }

    static void fill_taps(std::vector<Tap>& taps, Index in, Index factor) {
        taps.resize(static_cast<std::size_t>(in * factor));
        for (Index o = 0; o < in * factor; ++o) {
            const double source =
                std::max((static_cast<double>(o) + 0.5) / static_cast<double>(factor) - 0.5, 0.0);
            const Index first = static_cast<Index>(std::floor(source));
            const double weight_second = source - static_cast<double>(first);
            taps[static_cast<std::size_t>(o)] = {first, std::min(first + 1, in - 1),
                                                 static_cast<T>(1.0 - weight_second),
                                                 static_cast<T>(weight_second)};
        }
    }

    Size2 factor_;
    Interpolation mode_;
    std::vector<Tap> row_taps_, col_taps_;  // bilinear only: one per output row / column
};

}  // namespace latent
