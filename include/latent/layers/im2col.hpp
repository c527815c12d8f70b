// im2col / col2im: the data movement that turns a 2-D convolution into one matrix product.
//
// A convolution slides a kernel_h x kernel_w window over a zero-padded (C, H, W) image. im2col
// writes, for a run of S samples, the (C*kh*kw, S*OH*OW) "columns" matrix: one row per kernel
// tap (c, ki, kj), one column per window position, the samples side by side. Then
//   conv forward        Y (F, S*OH*OW)  = W (F, C*kh*kw) * columns
//   conv input gradient dcolumns        = W^T * dY,  dX = col2im(dcolumns)
// col2im is the adjoint of im2col: it adds every column entry back onto the pixel it came from
// (entries that came from the padding are dropped). Conv2D uses both; ConvTranspose2D uses the
// same pair the other way round.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "../core/tensor.hpp"
#include "../core/scratch.hpp"
#include "../core/threading.hpp"
#include "../kernels/cpu_features.hpp"
#include "padding.hpp"

namespace latent {

// The geometry of one convolution: input image, window, padding before, and output size.
struct ConvGeometry {
    Index channels = 0;
    Index input_height = 0, input_width = 0;
    Size2 kernel, stride;
    Index pad_top = 0, pad_left = 0;  // the padding after follows from the output size
    Index output_height = 0, output_width = 0;

    Index rows() const { return channels * kernel.height * kernel.width; }  // kernel taps
    Index positions() const { return output_height * output_width; }        // per sample
    Index image_size() const { return channels * input_height * input_width; }
};

// The TensorFlow-padded convolution of `input` (see padding.hpp). Output dims are 0 when a
// Valid window does not fit.
inline ConvGeometry conv_geometry(const Shape& input, Size2 kernel, Size2 stride, Padding padding) {
    ConvGeometry geometry;
    geometry.channels = input.channels;
    geometry.input_height = input.height;
    geometry.input_width = input.width;
    geometry.kernel = kernel;
    geometry.stride = stride;
    geometry.pad_top = window_pad_before(input.height, kernel.height, stride.height, padding);
    geometry.pad_left = window_pad_before(input.width, kernel.width, stride.width, padding);
    geometry.output_height =
        window_output_size(input.height, kernel.height, stride.height, padding);
    geometry.output_width = window_output_size(input.width, kernel.width, stride.width, padding);
    return geometry;
}

namespace detail {

// Strided windows read every stride-th pixel, which compilers do not vectorize. So for a stride
// above 1 each channel is first split into stride_h * stride_w phase planes, phase (a, b) holding
// x[a + sh*u][b + sw*v] (0 past the image), each ceil(H/sh) x ceil(W/sw). Kernel tap (ki, kj)
// then reads a single phase plane with unit stride: with ki - pad_top = a + sh*du and
// kj - pad_left = b + sw*dv, output (oy, ox) <- phase(a, b)[oy + du][ox + dv].
inline bool is_strided(const ConvGeometry& g) { return g.stride.height > 1 || g.stride.width > 1; }
inline Index phase_height(const ConvGeometry& g) {
    return (g.input_height + g.stride.height - 1) / g.stride.height;
}
inline Index phase_width(const ConvGeometry& g) {
    return (g.input_width + g.stride.width - 1) / g.stride.width;
}

// Elements of one channel as the taps read it: the image plane, or all its phase planes.
inline Index channel_source_size(const ConvGeometry& g) {
    if (!is_strided(g)) return g.input_height * g.input_width;
    return g.stride.height * g.stride.width * phase_height(g) * phase_width(g);
}

inline Index floor_mod(Index value, Index divisor) {
    return ((value % divisor) + divisor) % divisor;
}

// How one kernel tap reads its plane (plane_height x plane_width, at plane_offset within the
// channel's source): output (oy, ox) <- plane[oy + row_shift][ox + column_shift], 0 outside.
struct TapPlan {
    Index plane_offset = 0, plane_height = 0, plane_width = 0;
    Index output_height = 0, output_width = 0;
    Index row_shift = 0, column_shift = 0;
    Index first_row = 0, last_row = 0;        // output rows that read inside the plane
    Index first_column = 0, last_column = 0;  // output columns that read inside the plane
    // When output rows are as long as plane rows, output position p reads plane[p + shift]: one
    // contiguous run [first, last) for the whole plane, except the |column_shift| columns at the
    // left (< 0) or right (> 0) of each row, which wrap into the neighbouring row and must read 0.
    // Small images (14x14) then cost one copy per plane instead of one short copy per row.
    bool contiguous = false;
    Index shift = 0, first = 0, last = 0;
};

inline TapPlan tap_plan(const ConvGeometry& g, Index ki, Index kj) {
    TapPlan plan;
    plan.output_height = g.output_height;
    plan.output_width = g.output_width;
    const Index row = ki - g.pad_top, column = kj - g.pad_left;
    if (is_strided(g)) {
        const Index a = floor_mod(row, g.stride.height), b = floor_mod(column, g.stride.width);
        plan.plane_height = phase_height(g);
        plan.plane_width = phase_width(g);
        plan.plane_offset = (a * g.stride.width + b) * plan.plane_height * plan.plane_width;
        plan.row_shift = (row - a) / g.stride.height;
        plan.column_shift = (column - b) / g.stride.width;
    } else {
        plan.plane_height = g.input_height;
        plan.plane_width = g.input_width;
        plan.row_shift = row;
        plan.column_shift = column;
    }
    plan.last_row = std::clamp<Index>(plan.plane_height - plan.row_shift, 0, plan.output_height);
    plan.first_row = std::clamp<Index>(-plan.row_shift, 0, plan.last_row);
    plan.last_column =
        std::clamp<Index>(plan.plane_width - plan.column_shift, 0, plan.output_width);
    plan.first_column = std::clamp<Index>(-plan.column_shift, 0, plan.last_column);
    plan.contiguous = plan.output_width == plan.plane_width;
    const Index positions = plan.output_height * plan.output_width;
    plan.shift = plan.row_shift * plan.plane_width + plan.column_shift;
    plan.last = std::clamp<Index>(plan.plane_height * plan.plane_width - plan.shift, 0, positions);
    plan.first = std::clamp<Index>(-plan.shift, 0, plan.last);
    return plan;
}

// Zeroes the wrapped columns of a contiguous tap's output plane. (A 3x3 kernel wraps one
// column: a plain strided store, much cheaper than a fill call per row.)
template <class T> __attribute__((always_inline)) inline void zero_wrapped_columns(const TapPlan& plan, T* out) {
    const Index width = plan.output_width;
    const Index count = std::min(std::abs(plan.column_shift), width);
    if (count == 0) return;
    T* column = out + (plan.column_shift < 0 ? 0 : width - count);
    if (count == 1) {
        for (Index oy = 0; oy < plan.output_height; ++oy) column[oy * width] = T(0);
        return;
    }
    for (Index oy = 0; oy < plan.output_height; ++oy) std::fill_n(column + oy * width, count, T(0));
}

// One tap of one channel of one sample: out (OH*OW) <- the plane read through the window.
template <class T> __attribute__((always_inline)) inline void gather_tap(const TapPlan& plan, const T* plane, T* out) {
    if (plan.contiguous) {
        std::fill(out, out + plan.first, T(0));
        for (Index p = plan.first; p < plan.last; ++p) out[p] = plane[p + plan.shift];
        std::fill(out + plan.last, out + plan.output_height * plan.output_width, T(0));
        zero_wrapped_columns(plan, out);
        return;
    }
    for (Index oy = 0; oy < plan.output_height; ++oy, out += plan.output_width) {
        if (oy < plan.first_row || oy >= plan.last_row) {
            std::fill_n(out, plan.output_width, T(0));
            continue;
        }
        const T* in = plane + (oy + plan.row_shift) * plan.plane_width;
        std::fill_n(out, plan.first_column, T(0));
        for (Index ox = plan.first_column; ox < plan.last_column; ++ox)
            out[ox] = in[ox + plan.column_shift];
        std::fill(out + plan.last_column, out + plan.output_width, T(0));
    }
}

// The adjoint of gather_tap: plane += the tap's entries, each onto the pixel it was read from.
// May zero the entries of `in` that correspond to the padding.
template <class T> __attribute__((always_inline)) inline void scatter_tap(const TapPlan& plan, T* in, T* plane) {
    if (plan.contiguous) {
        // Zero the wrapped entries, so the contiguous add leaves their pixels as they are.
        zero_wrapped_columns(plan, in);
        for (Index p = plan.first; p < plan.last; ++p) plane[p + plan.shift] += in[p];
        return;
    }
    in += plan.first_row * plan.output_width;
    for (Index oy = plan.first_row; oy < plan.last_row; ++oy, in += plan.output_width) {
        T* out = plane + (oy + plan.row_shift) * plan.plane_width;
        for (Index ox = plan.first_column; ox < plan.last_column; ++ox)
            out[ox + plan.column_shift] += in[ox];
    }
}

// One image row <-> its stride phases: phase b of the row holds row[b + stride*v], and the
// phases lie `plane` elements apart. A stride of 2 (the common case) gets loops with a constant
// stride, which compilers vectorize with shuffles.
template <class T> void split_row(const T* row, Index width, Index stride, Index plane, T* phases) {
    if (stride == 2) {
        T* even = phases;
        T* odd = phases + plane;
        const Index pairs = width / 2;
        for (Index v = 0; v < pairs; ++v) {
            even[v] = row[2 * v];
            odd[v] = row[2 * v + 1];
        }
        if (width % 2 != 0) even[pairs] = row[width - 1];
        return;
    }
    for (Index b = 0; b < stride; ++b, phases += plane)
        for (Index v = 0; b + v * stride < width; ++v) phases[v] = row[b + v * stride];
}

template <class T> void merge_row(const T* phases, Index width, Index stride, Index plane, T* row) {
    if (stride == 2) {
        const T* even = phases;
        const T* odd = phases + plane;
        const Index pairs = width / 2;
        for (Index v = 0; v < pairs; ++v) {
            row[2 * v] = even[v];
            row[2 * v + 1] = odd[v];
        }
        if (width % 2 != 0) row[width - 1] = even[pairs];
        return;
    }
    for (Index b = 0; b < stride; ++b, phases += plane)
        for (Index v = 0; b + v * stride < width; ++v) row[b + v * stride] = phases[v];
}

// channel (H, W) -> its phase planes (see is_strided).
template <class T> void split_phases(const ConvGeometry& g, const T* channel, T* phases) {
    const Index width = phase_width(g), plane = phase_height(g) * width;
    std::fill_n(phases, channel_source_size(g), T(0));
    for (Index a = 0; a < g.stride.height; ++a) {
        T* out = phases + a * g.stride.width * plane;
        for (Index row = a; row < g.input_height; row += g.stride.height, out += width)
            split_row(channel + row * g.input_width, g.input_width, g.stride.width, plane, out);
    }
}

// The adjoint of split_phases: phase planes -> channel (overwritten); entries past the image
// are dropped.
template <class T> void merge_phases(const ConvGeometry& g, const T* phases, T* channel) {
    const Index width = phase_width(g), plane = phase_height(g) * width;
    for (Index a = 0; a < g.stride.height; ++a) {
        const T* in = phases + a * g.stride.width * plane;
        for (Index row = a; row < g.input_height; row += g.stride.height, in += width)
            merge_row(in, g.input_width, g.stride.width, plane, channel + row * g.input_width);
    }
}

}  // namespace detail

// The chunks a convolution layer splits a batch into, for `columns` GEMM columns per sample:
// about 1024 columns per chunk (the GEMMs run near full speed from about 200 columns on, and a
// 32-channel 3x3 chunk's columns, ~1 MB, stay in cache), at least 8 chunks when the batch allows
// so two threads balance, but never under 128 columns, so tiny images do not pay a thread
// hand-off per few microseconds of work. Depends on shapes only.
inline Chunks conv_chunks(Index batch, Index columns) {
    constexpr Index target_columns = 1024, min_chunks = 8, min_columns = 128;
    Chunks chunks = batch_chunks(batch, columns, target_columns, min_chunks);
    const Index per_sample = std::max<Index>(columns, 1);
    chunks.chunk_size = std::max(chunks.chunk_size, (min_columns + per_sample - 1) / per_sample);
    return chunks;
}

// Scratch elements im2col and col2im need for `samples` samples (their phase planes); 0 for a
// 1x1 stride.
inline Index im2col_scratch_size(const ConvGeometry& g, Index samples) {
    return detail::is_strided(g) ? samples * g.channels * detail::channel_source_size(g) : 0;
}

// columns(r, s*P + oy*OW + ox) = image_s(c, oy*sh - pad_top + ki, ox*sw - pad_left + kj), or 0
// in the padding, where r = (c*kh + ki)*kw + kj and P = OH*OW. `images` holds `samples`
// consecutive (C, H, W) images; `columns` is (rows, samples*P) row-major; `scratch` holds
// im2col_scratch_size(g, samples) elements. The copies of each tap run on the CPU's widest
// vectors (run_vectorized), as do col2im's sums, which keep their order.
template <class T>
void im2col(const ConvGeometry& g, const T* images, Index samples, T* columns, T* scratch) {
    const Index positions = g.positions(), plane = g.input_height * g.input_width;
    const Index source_size = detail::channel_source_size(g);
    const T* source = images;
    if (detail::is_strided(g)) {
        for (Index channel = 0; channel < samples * g.channels; ++channel)
            detail::split_phases(g, images + channel * plane, scratch + channel * source_size);
        source = scratch;
    }
    for (Index ki = 0; ki < g.kernel.height; ++ki)
        for (Index kj = 0; kj < g.kernel.width; ++kj) {
            const detail::TapPlan plan = detail::tap_plan(g, ki, kj);
            run_vectorized([&g, plan, source, columns, samples, positions, source_size, ki, kj]()
                               __attribute__((always_inline)) {
                for (Index c = 0; c < g.channels; ++c) {
                    const Index row = (c * g.kernel.height + ki) * g.kernel.width + kj;
                    for (Index s = 0; s < samples; ++s)
                        detail::gather_tap(plan, source + (s * g.channels + c) * source_size + plan.plane_offset,
                                           columns + (row * samples + s) * positions);
                }
            });
        }
}

// The adjoint of im2col: images_s(c, iy, ix) = sum of the column entries that im2col read from
// (c, iy, ix), added in kernel-tap order. Overwrites the `samples` images. `columns` is scratch
// too: entries that im2col would have read from the padding may be set to zero.
template <class T>
void col2im(const ConvGeometry& g, T* columns, Index samples, T* images, T* scratch) {
    const Index positions = g.positions(), plane = g.input_height * g.input_width;
    const Index source_size = detail::channel_source_size(g);
    T* sums = detail::is_strided(g) ? scratch : images;
    std::fill_n(sums, samples * g.channels * source_size, T(0));
    for (Index ki = 0; ki < g.kernel.height; ++ki)
        for (Index kj = 0; kj < g.kernel.width; ++kj) {
            const detail::TapPlan plan = detail::tap_plan(g, ki, kj);
            run_vectorized([&g, plan, columns, sums, samples, positions, source_size, ki, kj]()
                               __attribute__((always_inline)) {
                for (Index c = 0; c < g.channels; ++c) {
                    const Index row = (c * g.kernel.height + ki) * g.kernel.width + kj;
                    for (Index s = 0; s < samples; ++s)
                        detail::scatter_tap(plan, columns + (row * samples + s) * positions,
                                            sums + (s * g.channels + c) * source_size + plan.plane_offset);
                }
            });
        }
    if (detail::is_strided(g))
        for (Index channel = 0; channel < samples * g.channels; ++channel)
            detail::merge_phases(g, sums + channel * source_size, images + channel * plane);
}

}  // namespace latent
