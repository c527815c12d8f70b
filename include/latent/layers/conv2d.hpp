// Conv2D: a bank of `filters` kernels of size kh x kw slid over all C input channels, with
// TensorFlow's "same" / "valid" padding (padding.hpp). Input (N, C, H, W), output (N, F, OH, OW).
// Lowered to GEMMs: im2col over a chunk of samples, then one product with the weight matrix.
// A layer with few filters and stride 1 (e.g. the 1-filter output layer of an image
// autoencoder) convolves directly instead: its product would have only F rows, too few for a
// GEMM to pay for building C*kh*kw rows of columns (see uses_direct_path).
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "../core/checked.hpp"
#include "../core/gemm.hpp"
#include "../core/scratch.hpp"
#include "../core/threading.hpp"
#include "../kernels/cpu_features.hpp"
#include "activations.hpp"
#include "im2col.hpp"
#include "layer.hpp"
#include "padding.hpp"

namespace latent {
namespace detail {

// ---- Direct convolution (stride 1), for layers with few filters.
//
// Images keep their dense (rows x width) layout. Shifting an image by a rows is a constant
// offset a*width in memory, so a sum of row-shifted images is one contiguous multiply-add per
// term, which vectorizes along the width; a column shift is not (it would wrap into the
// neighbouring row). Column shifts are therefore applied on the few-filter side only:
//   forward      S[f,b] = sum_{c,a} W[f,c,a,b] * (x_c shifted by a rows), then
//                y_f = bias + sum_b (S[f,b] shifted by b columns)           (F*kw small planes)
//   backward     Q[f,b] = dy_f shifted by rows and by b columns             (F*kw small planes)
//                dx_c   = sum_{f,b,a} W[f,c,kh-1-a,kw-1-b] * (Q[f,b] shifted by a rows)
//                dW[f,c,kh-1-a,kw-1-b] = <x_c, Q[f,b] shifted by a rows>
// so the C-channel tensors x and dx are read and written in place, without copies.

// `count` planes `size` elements apart, each read at the row shifts 0, pitch, ..., (shifts-1)*pitch.
template <class T> struct ShiftedPlanes {
    const T* data;
    Index count, size, shifts, pitch;
};

// Positions computed per plane: a multiple of every block size of sum_row_shifted.
inline Index padded_length(Index positions) { return (positions + 63) / 64 * 64; }

// out[o][p] = sum_{s,a} table[(s*shifts + a)*table_stride + o] * source_s[p + a*pitch] for
// p < length, stored for p < limit (planes `out_size` apart). The sums of a block of positions
// stay in registers over all sources and shifts; a block holds 64 sums in all (fewer would
// leave the FMA units waiting, more would not fit the registers of plain SSE).
template <class T, int Outputs>
__attribute__((always_inline)) inline void sum_row_shifted(const ShiftedPlanes<T>& source, const T* table, Index table_stride, Index length,
                     Index limit, T* out, Index out_size) {
    constexpr Index block = Outputs == 1 ? 64 : Outputs == 4 ? 16 : 32;
    for (Index start = 0; start < length; start += block) {
        T sums[Outputs][block] = {};
        const T* weights = table;
        for (Index s = 0; s < source.count; ++s) {
            const T* plane = source.data + s * source.size + start;
            for (Index a = 0; a < source.shifts; ++a, weights += table_stride) {
                const T* shifted = plane + a * source.pitch;
                T w[Outputs];
                for (int o = 0; o < Outputs; ++o) w[o] = weights[o];
                for (Index i = 0; i < block; ++i) {
                    const T value = shifted[i];
                    for (int o = 0; o < Outputs; ++o) sums[o][i] += w[o] * value;
                }
            }
        }
        // Whole blocks are stored with constant bounds: a variable bound on `sums` would keep it
        // in memory instead of registers.
        if (start + block <= limit) {
            for (int o = 0; o < Outputs; ++o)
                for (Index i = 0; i < block; ++i) out[o * out_size + start + i] = sums[o][i];
            continue;
        }
        for (int o = 0; o < Outputs; ++o) {
            T last[block];
            for (Index i = 0; i < block; ++i) last[i] = sums[o][i];
            std::copy(last, last + std::clamp<Index>(limit - start, 0, block), out + o * out_size + start);
        }
    }
}

// sum_row_shifted for `outputs` output planes, in groups of up to 4, with the CPU's vector unit.
template <class T>
void sum_row_shifted(Index outputs, const ShiftedPlanes<T>& source, const T* table, Index length,
                     Index limit, T* out, Index out_size) {
    run_vectorized([&]() __attribute__((always_inline)) {
        for (Index first = 0; first < outputs; first += 4) {
            const T* group_table = table + first;
            T* group_out = out + first * out_size;
            switch (std::min<Index>(outputs - first, 4)) {
                case 1: sum_row_shifted<T, 1>(source, group_table, outputs, length, limit, group_out, out_size); break;
                case 2: sum_row_shifted<T, 2>(source, group_table, outputs, length, limit, group_out, out_size); break;
                case 3: sum_row_shifted<T, 3>(source, group_table, outputs, length, limit, group_out, out_size); break;
                default: sum_row_shifted<T, 4>(source, group_table, outputs, length, limit, group_out, out_size); break;
            }
        }
    });
}

// result[o] = sum_{p < length} image[p] * operand_o[p]. Each dot keeps `lanes` partial sums
// (lane i takes the positions p = i mod lanes) and adds them up in a fixed order, so its
// rounding depends on the shapes alone.
template <class T, int Outputs>
__attribute__((always_inline)) inline void dot_products(const T* image, Index length, const T* const* operands, T* result) {
    constexpr Index lanes = Outputs <= 2 ? 32 : 16;
    const T* operand[Outputs];
    for (int o = 0; o < Outputs; ++o) operand[o] = operands[o];
    T sums[Outputs][lanes] = {};
    Index p = 0;
    for (; p + lanes <= length; p += lanes)
        for (Index i = 0; i < lanes; ++i) {
            const T value = image[p + i];
            for (int o = 0; o < Outputs; ++o) sums[o][i] += value * operand[o][p + i];
        }
    for (Index i = 0; p + i < length; ++i)
        for (int o = 0; o < Outputs; ++o) sums[o][i] += image[p + i] * operand[o][p + i];
    for (int o = 0; o < Outputs; ++o) {
        T total = T(0);
        for (Index i = 0; i < lanes; ++i) total += sums[o][i];
        result[o] = total;
    }
}

// result[s*shifts + a] = <image, source_s shifted by a rows> over `length` positions, for every
// plane s and shift a, in groups of up to 4 that share the loads of `image`, with the CPU's
// vector unit.
template <class T>
void shifted_dot_products(const T* image, Index length, const ShiftedPlanes<T>& source, T* result) {
    run_vectorized([&]() __attribute__((always_inline)) {
        const Index total = source.count * source.shifts;
        for (Index first = 0; first < total; first += 4) {
            const Index group = std::min<Index>(total - first, 4);
            const T* operands[4] = {};
            for (Index k = 0; k < group; ++k) {
                const Index s = (first + k) / source.shifts, a = (first + k) % source.shifts;
                operands[k] = source.data + s * source.size + a * source.pitch;
            }
            switch (group) {
                case 1: dot_products<T, 1>(image, length, operands, result + first); break;
                case 2: dot_products<T, 2>(image, length, operands, result + first); break;
                case 3: dot_products<T, 3>(image, length, operands, result + first); break;
                default: dot_products<T, 4>(image, length, operands, result + first); break;
            }
        }
    });
}

// window[j] = image[offset + j] where 0 <= offset + j < image_size, else 0, for j < length.
template <class T> void copy_window(const T* image, Index image_size, Index offset, Index length, T* window) {
    const Index first = std::clamp<Index>(-offset, 0, length);
    const Index last = std::clamp<Index>(image_size - offset, first, length);
    std::fill_n(window, first, T(0));
    std::copy(image + offset + first, image + offset + last, window + first);
    std::fill(window + last, window + length, T(0));
}

// plane (`size` elements, rows `pitch` long) = zeros, with image (rows x width) placed so that
// image[r][c] lands at plane[r + top][c + left]; what falls outside the plane's columns
// [0, pitch) is dropped (left may be negative).
template <class T>
void place_shifted(const T* image, Index rows, Index width, Index top, Index left, Index pitch,
                   Index size, T* plane) {
    std::fill_n(plane, size, T(0));
    if (left == 0 && width == pitch) {  // whole rows: one copy
        std::copy_n(image, rows * width, plane + top * pitch);
        return;
    }
    const Index first = std::max<Index>(0, -left), last = std::min(width, pitch - left);
    for (Index row = 0; row < rows && first < last; ++row) {
        const T* from = image + row * width;
        T* to = plane + (row + top) * pitch + left;
        for (Index column = first; column < last; ++column) to[column] = from[column];
    }
}

}  // namespace detail

template <class T = float> class Conv2D {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Conv2D";
    bool backward_reads_output() const { return false; }  // it reads x and dy: y may be overwritten
    // Scratch memory of a call; a model lends all its layers one Workspace (core/workspace.hpp).
    void lend_workspace(Workspace<T>* workspace) { scratch_.lend(workspace); }

    Conv2D(Index filters, Size2 kernel, Size2 stride = 1, Padding padding = Padding::Same,
           Init init = Init::GlorotUniform, bool use_bias = true)
        : filters_(filters),
          kernel_(kernel),
          stride_(stride),
          padding_(padding),
          init_(init),
          use_bias_(use_bias) {
        detail::require(filters >= 1, "Conv2D",
                        "filters must be >= 1, got " + std::to_string(filters));
        detail::require(kernel.height >= 1 && kernel.width >= 1, "Conv2D",
                        "kernel must be at least 1x1, got " + kernel.str());
        detail::require(stride.height >= 1 && stride.width >= 1, "Conv2D",
                        "stride must be at least 1x1, got " + stride.str());
        checked_extent(filters, 1, "Conv2D", "filters");
        check_extents(kernel, 1, "Conv2D", "kernel");
        check_extents(stride, 1, "Conv2D", "stride");
    }

    Shape output_shape(const Shape& input) const {
        if (input.size() < 1)
            throw ShapeError("Conv2D: input shape " + input.str() + " has no elements");
        if (padding_ == Padding::Valid &&
            (input.height < kernel_.height || input.width < kernel_.width))
            throw ShapeError("Conv2D: kernel " + kernel_.str() + " does not fit input shape " +
                             input.str() +
                             " with valid padding (use padding same or a smaller kernel)");
        const ConvGeometry geometry = conv_geometry(input, kernel_, stride_, padding_);
        return checked_shape({filters_, geometry.output_height, geometry.output_width}, "Conv2D: output");
    }

    // weight is (F, C, kh, kw) as in PyTorch, held as an (F, C*kh*kw) matrix whose columns match
    // the rows of im2col. Keras's fans: fan_in = C*kh*kw, fan_out = F*kh*kw.
    void build(const Shape& input, Rng& rng) {
        const Index taps = checked_product({input.channels, kernel_.height, kernel_.width}, "Conv2D: kernel taps");
        checked_product({filters_, taps}, "Conv2D: weights (filters x taps)");
        weight_.resize(filters_, taps);
        grad_weight_ = Matrix<T>::Zero(filters_, taps);
        initialize(init_, weight_.data(), weight_.size(), taps,
                   filters_ * kernel_.height * kernel_.width, rng);
        bias_ = Vector<T>::Zero(filters_);
        grad_bias_ = Vector<T>::Zero(filters_);
    }

    // forward: y[n,f,oy,ox] = b[f] + sum_{c,ki,kj} W[f,c,ki,kj] * x[n,c,oy*sh-pt+ki,ox*sw-pl+kj]
    //          per chunk of S samples: Y (F, S*OH*OW) = W (F, C*kh*kw) * im2col(x)
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        const ConvGeometry g = conv_geometry(sample_shape<T>(x), kernel_, stride_, padding_);
        const Chunks chunks = conv_chunks(x.dimension(0), g.positions());
        if (uses_direct_path()) {
            direct_forward(g, chunks, x, y);
            return;
        }
        gemm_forward(g, chunks, x, y, false);
    }

    // A ReLU after the layer, applied to each chunk's output while it is in cache: the outputs
    // of forward() then of ReLU, bit for bit, with one pass over y instead of two (Sequential
    // uses it for a Conv2D followed by a ReLU). Its backward is backward_relu. Not on the direct
    // path, whose layers have too few filters for it to matter.
    //   forward_relu:  y = max(conv(x), 0)
    //   backward_relu: given y = forward_relu(x) and dy = dL/dy, the backward of conv with
    //                  dL/dconv(x) = dy * [y > 0], which is never stored
    bool fuses_relu() const { return !uses_direct_path(); }
    void forward_relu(ConstTensorView<T> x, TensorView<T> y) {
        if (!fuses_relu()) throw ArgumentError("Conv2D: forward_relu is for layers off the direct path");
        const ConvGeometry g = conv_geometry(sample_shape<T>(x), kernel_, stride_, padding_);
        gemm_forward(g, conv_chunks(x.dimension(0), g.positions()), x, y, true);
    }
    void backward_relu(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (!fuses_relu()) throw ArgumentError("Conv2D: backward_relu is for layers off the direct path");
        const ConvGeometry g = conv_geometry(sample_shape<T>(x), kernel_, stride_, padding_);
        gemm_backward(g, conv_chunks(x.dimension(0), g.positions()), x, y.data(), dy, dx);
    }

    // backward: dW += dY im2col(x)^T;  db[f] += sum_{n,oy,ox} dy[n,f,oy,ox];  dx = col2im(W^T dY)
    //           per chunk with dY as (F, S*OH*OW); the chunks' dW and db are summed in chunk order
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy,
                  TensorView<T> dx) {
        const ConvGeometry g = conv_geometry(sample_shape<T>(x), kernel_, stride_, padding_);
        const Chunks chunks = conv_chunks(x.dimension(0), g.positions());
        if (uses_direct_path()) {
            grow_partial_gradients(chunks);
            direct_backward(g, chunks, x, dy, dx);
            add_partial_gradients(g, chunks);
            return;
        }
        gemm_backward(g, chunks, x, nullptr, dy, dx);
    }

    // weight (F x C*kh*kw) and bias (F)
    Index parameter_values(const Shape& input) const {
        return checked_product({filters_, input.channels, kernel_.height, kernel_.width}, "Conv2D: weights") +
               (use_bias_ ? filters_ : 0);
    }

    std::vector<Parameter<T>> parameters() {
        std::vector<Parameter<T>> list{
            {"weight", weight_.data(), grad_weight_.data(), weight_.size()}};
        if (use_bias_) list.push_back({"bias", bias_.data(), grad_bias_.data(), bias_.size()});
        return list;
    }

    Config config() const {
        return Config()
            .set("filters", filters_)
            .set("kernel_h", kernel_.height)
            .set("kernel_w", kernel_.width)
            .set("stride_h", stride_.height)
            .set("stride_w", stride_.width)
            .set("padding", padding_name(padding_))
            .set("init", init_name(init_))
            .set("use_bias", use_bias_ ? 1 : 0);
    }
    static Conv2D from_config(const Config& config) {
        return Conv2D(config.get_int("filters"),
                      {config.get_int("kernel_h"), config.get_int("kernel_w")},
                      {config.get_int("stride_h"), config.get_int("stride_w")},
                      padding_from_name(config.get_string("padding")),
                      init_from_name(config.get_string("init")), config.get_int("use_bias") != 0);
    }

    Index filters() const { return filters_; }
    Size2 kernel() const { return kernel_; }
    Size2 stride() const { return stride_; }
    Padding padding() const { return padding_; }
    bool use_bias() const { return use_bias_; }
    Matrix<T>& weight() { return weight_; }
    const Matrix<T>& weight() const { return weight_; }
    Vector<T>& bias() { return bias_; }
    const Vector<T>& bias() const { return bias_; }
    const Matrix<T>& grad_weight() const { return grad_weight_; }
    const Vector<T>& grad_bias() const { return grad_bias_; }

    // True when this layer convolves directly rather than through im2col + GEMM: stride 1 and
    // at most 4 filters. Measured at 28x28 (C = 32, 3x3, same, batch 128): the direct path is
    // ~5x faster than the GEMM path for 1 filter, ~2.7x for 4; at 8 filters the GEMM path wins.
    bool uses_direct_path() const {
        return stride_.height == 1 && stride_.width == 1 && filters_ <= max_direct_filters;
    }
    static constexpr Index max_direct_filters = 4;

private:
    Workspace<T>& scratch() { return scratch_.get(); }

    // Multiply-adds of one pass over `batch` samples, which decides whether threads are worth it.
    Index work(const ConvGeometry& g, Index batch) const { return batch * g.positions() * g.rows() * filters_; }

    // Per-worker im2col, product and phase buffers for the largest chunk, and per-chunk partial
    // gradients; they only ever grow, so a call with the same or a smaller batch allocates nothing.
    void reserve_scratch(const ConvGeometry& g, const Chunks& chunks) {
        const Index workers = std::min<Index>(num_threads(), std::max<Index>(chunks.count(), 1));
        const Index columns = chunks.chunk_size * g.positions();
        scratch().columns.reserve(workers, g.rows() * columns);
        scratch().staging.reserve(workers, filters_ * columns);
        scratch().phases.reserve(workers, im2col_scratch_size(g, chunks.chunk_size));
        for (Index samples : {chunks.chunk_size, chunks.size(chunks.count() - 1)}) {
            const Index chunk_columns = samples * g.positions();
            scratch().gemm.plan(filters_, chunk_columns, g.rows());  // forward
            scratch().gemm.plan(filters_, g.rows(), chunk_columns);  // weight gradient
            scratch().gemm.plan(g.rows(), chunk_columns, filters_);  // column gradients
        }
        scratch().gemm.reserve(workers);
    }

    // Room for every chunk's partial dW and db.
    void grow_partial_gradients(const Chunks& chunks) {
        detail::grow(scratch().partial_weight, chunks.count() * weight_.size());
        detail::grow(scratch().partial_bias, chunks.count() * filters_);
    }

    // The chunks' partial dW and db, added to the gradients in chunk order.
    void add_partial_gradients(const ConvGeometry& g, const Chunks& chunks) {
        const Index weight_size = weight_.size();
        for (Index chunk = 0; chunk < chunks.count(); ++chunk) {
            grad_weight_ += ConstMatrixView<T>(scratch().partial_weight.data() + chunk * weight_size,
                                               filters_, g.rows());
            if (use_bias_)
                grad_bias_ +=
                    Eigen::Map<const Vector<T>>(scratch().partial_bias.data() + chunk * filters_, filters_);
        }
    }

    // im2col of samples [first, first + count) of x into this worker's columns buffer.
    T* chunk_columns(const ConvGeometry& g, ConstTensorView<T> x, Index first, Index count, int worker) {
        T* columns = scratch().columns.slice(worker);
        im2col(g, x.data() + first * g.image_size(), count, columns, scratch().phases.slice(worker));
        return columns;
    }

    // The GEMM path's forward, with the ReLU after it when `relu_after`.
    void gemm_forward(const ConvGeometry& g, const Chunks& chunks, ConstTensorView<T> x, TensorView<T> y,
                      bool relu_after) {
        reserve_scratch(g, chunks);
        parallel_for(chunks.count(), work(g, x.dimension(0)), [&](Index chunk, int worker) {
            const Index first = chunks.begin(chunk), count = chunks.size(chunk);
            const Index columns = count * g.positions();
            T* im2col_buffer = chunk_columns(g, x, first, count, worker);
            T* product_buffer = scratch().staging.slice(worker);
            scratch().gemm.multiply(worker, MatrixView<T>(product_buffer, filters_, columns), weight_,
                                    ConstMatrixView<T>(im2col_buffer, g.rows(), columns));
            T* chunk_output = y.data() + first * filters_ * g.positions();
            scatter_output(g, product_buffer, count, chunk_output);
            if (relu_after) detail::relu_values(chunk_output, chunk_output, count * filters_ * g.positions());
        });
    }

    // The GEMM path's backward; with `relu_output` (the ReLU's output y after this layer, see
    // forward_relu) dy is dL/dy and the layer's output gradient is dy * [y > 0].
    void gemm_backward(const ConvGeometry& g, const Chunks& chunks, ConstTensorView<T> x, const T* relu_output,
                       ConstTensorView<T> dy, TensorView<T> dx) {
        const Index weight_size = weight_.size();
        grow_partial_gradients(chunks);
        reserve_scratch(g, chunks);
        parallel_for(chunks.count(), work(g, x.dimension(0)), [&](Index chunk, int worker) {
            const Index first = chunks.begin(chunk), count = chunks.size(chunk);
            const Index columns = count * g.positions();
            T* im2col_buffer = chunk_columns(g, x, first, count, worker);
            T* grad_output_buffer = scratch().staging.slice(worker);
            const Index offset = first * filters_ * g.positions();
            gather_output(g, dy.data() + offset, relu_output == nullptr ? nullptr : relu_output + offset, count,
                          grad_output_buffer);
            const ConstMatrixView<T> grad_output(grad_output_buffer, filters_, columns);
            const ConstMatrixView<T> input_columns(im2col_buffer, g.rows(), columns);
            MatrixView<T> chunk_grad_weight(scratch().partial_weight.data() + chunk * weight_size, filters_,
                                            g.rows());
            scratch().gemm.multiply(worker, chunk_grad_weight, grad_output, input_columns.transpose());
            if (use_bias_) {
                T* chunk_bias = scratch().partial_bias.data() + chunk * filters_;
                for (Index f = 0; f < filters_; ++f)
                    chunk_bias[f] = detail::ordered_sum(grad_output_buffer + f * columns, columns);
            }
            if (dx.data() == nullptr) return;
            // The columns of x are no longer needed: their buffer receives the column gradients.
            scratch().gemm.multiply(worker, MatrixView<T>(im2col_buffer, g.rows(), columns), weight_.transpose(),
                                    grad_output);
            col2im(g, im2col_buffer, count, dx.data() + first * g.image_size(),
                   scratch().phases.slice(worker));
        });
        add_partial_gradients(g, chunks);
    }

    // ---- Direct path (uses_direct_path); see "Direct convolution" in detail above.

    // Plane sizes of the direct path. All planes have rows W long (the input's width).
    //
    // The forward reads x as if padded with pad_top zero rows before it and zeros after it. The
    // output positions whose reads all fall inside x -- from row pad_top on, in whole blocks --
    // read x where it lies; only the first pad_top rows and the rest after the last whole block
    // read small zero-padded copies ("windows") of each channel.
    struct DirectLayout {
        Index sum_length;       // positions of an S plane: OH*W rounded up to a whole block
        Index lead;             // pad_top*W: where x starts in the padded plane
        Index interior_length;  // positions from `lead` on that read x in place (whole blocks)
        Index top_length, top_size;        // positions [0, lead) and their window
        Index bottom_start, bottom_length, bottom_size;  // positions [bottom_start, OH*W), window
        Index grad_length;  // positions of a dx plane computed: H*W rounded up to a whole block
        Index grad_size;    // a Q plane (dy shifted), with the rows its row shifts read
    };

    DirectLayout direct_layout(const ConvGeometry& g) const {
        const Index width = g.input_width, reach = (kernel_.height - 1) * width;  // of the row shifts
        auto window_size = [reach](Index length) { return length == 0 ? 0 : (length + reach + 15) / 16 * 16; };
        DirectLayout layout{};
        layout.sum_length = detail::padded_length(g.output_height * width);
        layout.lead = g.pad_top * width;
        layout.interior_length = std::max<Index>(g.input_height * width - reach, 0) / 64 * 64;
        layout.top_length = detail::padded_length(layout.lead);
        layout.top_size = window_size(layout.top_length);
        layout.bottom_start = layout.lead + layout.interior_length;
        layout.bottom_length = detail::padded_length(g.output_height * width - layout.bottom_start);
        layout.bottom_size = window_size(layout.bottom_length);
        layout.grad_length = detail::padded_length(g.input_height * width);
        layout.grad_size = window_size(layout.grad_length);
        return layout;
    }

    // Per-worker buffers of the direct path: `columns` holds one sample's windows, `staging` the
    // S planes (forward) or the tap sums of dW (backward), `phases` the Q planes.
    void reserve_direct_scratch(const ConvGeometry& g, const Chunks& chunks, const DirectLayout& layout) {
        const Index workers = std::min<Index>(num_threads(), std::max<Index>(chunks.count(), 1));
        const Index shifted_planes = filters_ * kernel_.width;
        scratch().columns.reserve(workers, g.channels * (layout.top_size + layout.bottom_size));
        scratch().staging.reserve(workers, std::max(shifted_planes * layout.sum_length, shifted_planes * kernel_.height));
        scratch().phases.reserve(workers, shifted_planes * layout.grad_size);
    }

    // weight_table[(c*kh + a)*F*kw + f*kw + b] = W[f,c,a,b]: the forward's weights per source
    // row shift (c, a), for the F*kw S planes.
    void fill_forward_table(const ConvGeometry& g) {
        const Index kh = kernel_.height, kw = kernel_.width;
        std::vector<T>& table = scratch().weight_table;
        detail::grow(table, weight_.size());
        for (Index c = 0; c < g.channels; ++c)
            for (Index a = 0; a < kh; ++a)
                for (Index f = 0; f < filters_; ++f)
                    for (Index b = 0; b < kw; ++b)
                        table[static_cast<std::size_t>(((c * kh + a) * filters_ + f) * kw + b)] =
                            weight_(f, (c * kh + a) * kw + b);
    }

    // weight_table[((f*kw + b)*kh + a)*C + c] = W[f,c,kh-1-a,kw-1-b]: the input gradient's
    // weights per Q plane (f, b) and row shift a, for the C planes of dx.
    void fill_input_grad_table(const ConvGeometry& g) {
        const Index kh = kernel_.height, kw = kernel_.width;
        std::vector<T>& table = scratch().weight_table;
        detail::grow(table, weight_.size());
        for (Index f = 0; f < filters_; ++f)
            for (Index b = 0; b < kw; ++b)
                for (Index a = 0; a < kh; ++a)
                    for (Index c = 0; c < g.channels; ++c)
                        table[static_cast<std::size_t>(((f * kw + b) * kh + a) * g.channels + c)] =
                            weight_(f, (c * kh + kh - 1 - a) * kw + kw - 1 - b);
    }

    // forward, direct: S[f,b] = sum_{c,a} W[f,c,a,b] * xpad_c shifted by a rows    (xpad: pad_top zero rows first)
    //                  y[f,oy,ox] = b[f] + sum_b S[f,b][oy, ox + b - pad_left]      (0 outside S's columns)
    void direct_forward(const ConvGeometry& g, const Chunks& chunks, ConstTensorView<T> x, TensorView<T> y) {
        const DirectLayout layout = direct_layout(g);
        reserve_direct_scratch(g, chunks, layout);
        fill_forward_table(g);
        const Index width = g.input_width, plane = g.input_height * width, sums = filters_ * kernel_.width;
        const Index positions = g.output_height * width;
        parallel_for(chunks.count(), work(g, x.dimension(0)), [&](Index chunk, int worker) {
            T* top = scratch().columns.slice(worker);
            T* bottom = top + g.channels * layout.top_size;
            T* sum_planes = scratch().staging.slice(worker);
            // S positions [first, first + length) from planes whose element 0 is xpad[first].
            auto sum_part = [&](const T* planes, Index plane_size, Index first, Index length, Index limit) {
                const detail::ShiftedPlanes<T> source{planes, g.channels, plane_size, kernel_.height, width};
                detail::sum_row_shifted(sums, source, scratch().weight_table.data(), length, limit, sum_planes + first,
                                        layout.sum_length);
            };
            const Index end = chunks.begin(chunk) + chunks.size(chunk);
            for (Index n = chunks.begin(chunk); n < end; ++n) {
                const T* image = x.data() + n * g.image_size();
                for (Index c = 0; c < g.channels; ++c) {
                    detail::copy_window(image + c * plane, plane, -layout.lead, layout.top_size,
                                        top + c * layout.top_size);
                    detail::copy_window(image + c * plane, plane, layout.bottom_start - layout.lead,
                                        layout.bottom_size, bottom + c * layout.bottom_size);
                }
                sum_part(top, layout.top_size, 0, layout.top_length, layout.lead);
                sum_part(image, plane, layout.lead, layout.interior_length, layout.interior_length);
                sum_part(bottom, layout.bottom_size, layout.bottom_start, layout.bottom_length,
                         positions - layout.bottom_start);
                for (Index f = 0; f < filters_; ++f)
                    add_column_shifted(g, sum_planes + f * kernel_.width * layout.sum_length, layout.sum_length,
                                       use_bias_ ? bias_(f) : T(0),
                                       y.data() + (n * filters_ + f) * g.positions());
            }
        });
    }

    // out[oy, ox] = offset + sum_b sums_b[oy, ox + b - pad_left], the terms outside the kw planes'
    // W columns left out; added plane by plane (b = 0, 1, ...) so each pass vectorizes.
    void add_column_shifted(const ConvGeometry& g, const T* sums, Index sum_size, T offset, T* out) const {
        const Index width = g.input_width, out_width = g.output_width;
        for (Index oy = 0; oy < g.output_height; ++oy, out += out_width) {
            std::fill_n(out, out_width, offset);
            for (Index b = 0; b < kernel_.width; ++b) {
                const Index shift = b - g.pad_left;
                const Index first = std::max<Index>(0, -shift), last = std::min(out_width, width - shift);
                const T* row = sums + b * sum_size + oy * width + shift;
                for (Index ox = first; ox < last; ++ox) out[ox] += row[ox];
            }
        }
    }

    // backward, direct: Q[f,b] = dy_f placed at row kh-1-pad_top, column kw-1-pad_left-b   (rows W long)
    //   dW[f,c,kh-1-a,kw-1-b] += <x_c, Q[f,b] shifted by a rows>   (x[iy,ix] meets dy[iy+pt-ki, ix+pl-kj])
    //   dx_c = sum_{f,b,a} W[f,c,kh-1-a,kw-1-b] * Q[f,b] shifted by a rows;   db[f] += sum of dy_f
    void direct_backward(const ConvGeometry& g, const Chunks& chunks, ConstTensorView<T> x,
                         ConstTensorView<T> dy, TensorView<T> dx) {
        const DirectLayout layout = direct_layout(g);
        reserve_direct_scratch(g, chunks, layout);
        if (dx.data() != nullptr) fill_input_grad_table(g);
        const Index kh = kernel_.height, kw = kernel_.width, width = g.input_width;
        const Index plane = g.input_height * width, positions = g.positions(), weight_size = weight_.size();
        parallel_for(chunks.count(), work(g, x.dimension(0)), [&](Index chunk, int worker) {
            T* chunk_grad_weight = scratch().partial_weight.data() + chunk * weight_size;
            T* chunk_grad_bias = scratch().partial_bias.data() + chunk * filters_;
            std::fill_n(chunk_grad_weight, weight_size, T(0));
            std::fill_n(chunk_grad_bias, filters_, T(0));
            T* shifted = scratch().phases.slice(worker);
            T* tap_sums = scratch().staging.slice(worker);
            const detail::ShiftedPlanes<T> grad{shifted, filters_ * kw, layout.grad_size, kh, width};
            const Index end = chunks.begin(chunk) + chunks.size(chunk);
            for (Index n = chunks.begin(chunk); n < end; ++n) {
                const T* grad_out = dy.data() + n * filters_ * positions;
                for (Index f = 0; f < filters_; ++f)
                    for (Index b = 0; b < kw; ++b)
                        detail::place_shifted(grad_out + f * positions, g.output_height, g.output_width,
                                              kh - 1 - g.pad_top, kw - 1 - g.pad_left - b, width,
                                              layout.grad_size, shifted + (f * kw + b) * layout.grad_size);
                const T* image = x.data() + n * g.image_size();
                for (Index c = 0; c < g.channels; ++c) {
                    detail::shifted_dot_products(image + c * plane, plane, grad, tap_sums);
                    for (Index f = 0; f < filters_; ++f)
                        for (Index b = 0; b < kw; ++b)
                            for (Index a = 0; a < kh; ++a)
                                chunk_grad_weight[f * g.rows() + (c * kh + kh - 1 - a) * kw + kw - 1 - b] +=
                                    tap_sums[(f * kw + b) * kh + a];
                }
                if (use_bias_)
                    for (Index f = 0; f < filters_; ++f)
                        chunk_grad_bias[f] += detail::ordered_sum(grad_out + f * positions, positions);
                if (dx.data() != nullptr)
                    detail::sum_row_shifted(g.channels, grad, scratch().weight_table.data(), layout.grad_length, plane,
                                            dx.data() + n * g.image_size(), plane);
            }
        });
    }

    // (F, S*P) product -> S samples of (F, P) in NCHW, plus the bias.
    void scatter_output(const ConvGeometry& g, const T* product, Index samples, T* output) const {
        const Index positions = g.positions(), row_length = samples * positions;
        for (Index s = 0; s < samples; ++s)
            for (Index f = 0; f < filters_; ++f) {
                const T* from = product + f * row_length + s * positions;
                T* to = output + (s * filters_ + f) * positions;
                const T offset = use_bias_ ? bias_(f) : T(0);
                for (Index p = 0; p < positions; ++p) to[p] = from[p] + offset;
            }
    }

    // S samples of (F, P) in NCHW -> (F, S*P), the layout of the product; with `relu_output`
    // (same layout as `output`) each value times [relu_output > 0], as ReLU's backward.
    void gather_output(const ConvGeometry& g, const T* output, const T* relu_output, Index samples,
                       T* product) const {
        const Index positions = g.positions(), row_length = samples * positions;
        for (Index s = 0; s < samples; ++s)
            for (Index f = 0; f < filters_; ++f) {
                const Index from = (s * filters_ + f) * positions;
                T* to = product + f * row_length + s * positions;
                if (relu_output == nullptr) std::copy_n(output + from, positions, to);
                else detail::relu_gradient_values(relu_output + from, output + from, to, positions);
            }
    }

    Index filters_;
    Size2 kernel_, stride_;
    Padding padding_;
    Init init_;
    bool use_bias_;
    Matrix<T> weight_, grad_weight_;
    Vector<T> bias_, grad_bias_;
    detail::ScratchSpace<T> scratch_;  // columns, GEMM space, partial gradients, weight table
};

}  // namespace latent
