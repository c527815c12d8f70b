// ConvTranspose2D ("deconvolution"): the transpose of Conv2D, as Keras's Conv2DTranspose and
// TensorFlow's conv2d_transpose compute it. Input (N, C, H, W), output (N, F, OH, OW).
//
// Every input pixel scatters its value times the kernel into a "full" map of length
// (in - 1) * stride + kernel per axis; the output is that map cropped by pad_before at the
// top/left, where pad_before is the padding of a Conv2D (same kernel, stride, padding) whose
// input has the output's length. That Conv2D maps the output shape back to the input shape, and
// this layer is exactly its input gradient -- so TensorFlow crops the odd pixel at the
// bottom/right, and output positions past the full map receive only the bias.
// Lowered to GEMMs: columns = W^T * x over a chunk of samples, then col2im into the output.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "../core/checked.hpp"
#include "../core/gemm.hpp"
#include "../core/threading.hpp"
#include "im2col.hpp"
#include "layer.hpp"
#include "padding.hpp"

namespace latent {

// Output length of a transposed convolution along one axis (Keras's deconv_output_length).
// Without output_padding (std::nullopt, Keras's None): Same gives in*stride, Valid
// in*stride + max(kernel - stride, 0). With output_padding op (0 included): Same gives
// (in-1)*stride + kernel - 2*(kernel/2) + op, Valid (in-1)*stride + kernel + op. So an odd size
// comes back from a stride-2 Same convolution with output_padding 0: 8 -> 15 for kernel 3.
inline Index conv_transpose_output_size(Index in, Index kernel, Index stride, Padding padding,
                                        std::optional<Index> output_padding) {
    const char* what = "ConvTranspose2D output size";
    if (!output_padding) {
        const Index spread = checked_multiply(in, stride, what);
        return padding == Padding::Same ? spread : checked_add(spread, std::max<Index>(kernel - stride, 0), what);
    }
    const Index spread = checked_multiply(in - 1, stride, what);
    const Index kept = padding == Padding::Same ? kernel - 2 * (kernel / 2) : kernel;
    return checked_add(checked_add(spread, kept, what), *output_padding, what);
}

template <class T = float> class ConvTranspose2D {
public:
    using Scalar = T;
    static constexpr const char* type_name = "ConvTranspose2D";
    bool backward_reads_output() const { return false; }  // it reads x and dy: y may be overwritten
    // Scratch memory of a call; a model lends all its layers one Workspace (core/workspace.hpp).
    void lend_workspace(Workspace<T>* workspace) { scratch_.lend(workspace); }

    // output_padding: none (the default, Keras's None) or a value per axis with 0 <= op < stride.
    ConvTranspose2D(Index filters, Size2 kernel, Size2 stride = 1, Padding padding = Padding::Same,
                    std::optional<Size2> output_padding = std::nullopt, Init init = Init::GlorotUniform,
                    bool use_bias = true)
        : filters_(filters),
          kernel_(kernel),
          stride_(stride),
          padding_(padding),
          output_padding_(output_padding),
          init_(init),
          use_bias_(use_bias) {
        const char* where = "ConvTranspose2D";
        detail::require(filters >= 1, where,
                        "filters must be >= 1, got " + std::to_string(filters));
        detail::require(kernel.height >= 1 && kernel.width >= 1, where,
                        "kernel must be at least 1x1, got " + kernel.str());
        detail::require(stride.height >= 1 && stride.width >= 1, where,
                        "stride must be at least 1x1, got " + stride.str());
        checked_extent(filters, 1, where, "filters");
        check_extents(kernel, 1, where, "kernel");
        check_extents(stride, 1, where, "stride");
        detail::require(!output_padding ||
                            (output_padding->height >= 0 && output_padding->height < stride.height &&
                             output_padding->width >= 0 && output_padding->width < stride.width),
                        where,
                        "output_padding must be >= 0 and smaller than the stride (" + stride.str() +
                            "), got " + (output_padding ? output_padding->str() : std::string()));
    }

    Shape output_shape(const Shape& input) const {
        if (input.size() < 1)
            throw ShapeError("ConvTranspose2D: input shape " + input.str() + " has no elements");
        return checked_shape({filters_,
                              conv_transpose_output_size(input.height, kernel_.height, stride_.height, padding_,
                                                         padding_along(&Size2::height)),
                              conv_transpose_output_size(input.width, kernel_.width, stride_.width, padding_,
                                                         padding_along(&Size2::width))},
                             "ConvTranspose2D: output");
    }

    // weight is (C, F, kh, kw) as in PyTorch, held as a (C, F*kh*kw) matrix: row c holds what
    // input channel c scatters. Keras's fans: fan_in = F*kh*kw, fan_out = C*kh*kw.
    void build(const Shape& input, Rng& rng) {
        const Index taps = checked_product({filters_, kernel_.height, kernel_.width}, "ConvTranspose2D: kernel taps");
        checked_product({input.channels, taps}, "ConvTranspose2D: weights (channels x taps)");
        weight_.resize(input.channels, taps);
        grad_weight_ = Matrix<T>::Zero(input.channels, taps);
        initialize(init_, weight_.data(), weight_.size(), taps,
                   input.channels * kernel_.height * kernel_.width, rng);
        bias_ = Vector<T>::Zero(filters_);
        grad_bias_ = Vector<T>::Zero(filters_);
    }

    // forward: y[n,f,i*sh+ki-pt, j*sw+kj-pl] += W[c,f,ki,kj] * x[n,c,i,j] (if inside), plus b[f]
    //          per chunk of S samples: y = col2im(W^T X) with X as (C, S*H*W)
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        const Shape input = sample_shape<T>(x), output = sample_shape<T>(y);
        const ConvGeometry g = geometry(output);
        const Chunks chunks = conv_chunks(x.dimension(0), g.positions());
        reserve_scratch(input, g, chunks);
        parallel_for(chunks.count(), work(g, x.dimension(0)), [&](Index chunk, int worker) {
            const Index first = chunks.begin(chunk), count = chunks.size(chunk);
            const Index columns = count * g.positions();
            T* input_buffer = scratch().staging.slice(worker);
            T* columns_buffer = scratch().columns.slice(worker);
            gather_channels(input, x.data() + first * input.size(), count, input_buffer);
            scratch().gemm.multiply(worker, MatrixView<T>(columns_buffer, g.rows(), columns), weight_.transpose(),
                                    ConstMatrixView<T>(input_buffer, input.channels, columns));
            T* y_chunk = y.data() + first * output.size();
            col2im(g, columns_buffer, count, y_chunk, scratch().phases.slice(worker));
            if (use_bias_) add_bias(output, count, y_chunk);
        });
    }

    // backward: dX = W im2col(dy);  dW += X im2col(dy)^T;  db[f] += sum_{n,oy,ox} dy[n,f,oy,ox]
    //           per chunk with X, dX as (C, S*H*W); the chunks' dW and db are summed in chunk order
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy,
                  TensorView<T> dx) {
        const Shape input = sample_shape<T>(x), output = sample_shape<T>(dy);
        const ConvGeometry g = geometry(output);
        const Chunks chunks = conv_chunks(x.dimension(0), g.positions());
        reserve_scratch(input, g, chunks);
        const Index weight_size = weight_.size();
        detail::grow(scratch().partial_weight, chunks.count() * weight_size);
        detail::grow(scratch().partial_bias, chunks.count() * filters_);
        parallel_for(chunks.count(), work(g, x.dimension(0)), [&](Index chunk, int worker) {
            const Index first = chunks.begin(chunk), count = chunks.size(chunk);
            const Index columns = count * g.positions();
            T* input_buffer = scratch().staging.slice(worker);
            T* columns_buffer = scratch().columns.slice(worker);
            const T* dy_chunk = dy.data() + first * output.size();
            im2col(g, dy_chunk, count, columns_buffer, scratch().phases.slice(worker));
            gather_channels(input, x.data() + first * input.size(), count, input_buffer);
            const ConstMatrixView<T> grad_columns(columns_buffer, g.rows(), columns);
            const ConstMatrixView<T> inputs(input_buffer, input.channels, columns);
            MatrixView<T> chunk_grad_weight(scratch().partial_weight.data() + chunk * weight_size,
                                            input.channels, g.rows());
            scratch().gemm.multiply(worker, chunk_grad_weight, inputs, grad_columns.transpose());
            if (use_bias_)
                sum_channels(output, dy_chunk, count, scratch().partial_bias.data() + chunk * filters_);
            if (dx.data() == nullptr) return;
            // X is no longer needed: its buffer receives the input gradient in the same layout.
            scratch().gemm.multiply(worker, MatrixView<T>(input_buffer, input.channels, columns), weight_, grad_columns);
            scatter_channels(input, input_buffer, count, dx.data() + first * input.size());
        });
        for (Index chunk = 0; chunk < chunks.count(); ++chunk) {
            grad_weight_ += ConstMatrixView<T>(scratch().partial_weight.data() + chunk * weight_size,
                                               weight_.rows(), weight_.cols());
            if (use_bias_)
                grad_bias_ +=
                    Eigen::Map<const Vector<T>>(scratch().partial_bias.data() + chunk * filters_, filters_);
        }
    }

    // weight (C x F*kh*kw) and bias (F)
    Index parameter_values(const Shape& input) const {
        return checked_product({input.channels, filters_, kernel_.height, kernel_.width}, "ConvTranspose2D: weights") +
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
            .set("output_padding_h", output_padding_ ? output_padding_->height : -1)  // -1: none
            .set("output_padding_w", output_padding_ ? output_padding_->width : -1)
            .set("init", init_name(init_))
            .set("use_bias", use_bias_ ? 1 : 0);
    }
    static ConvTranspose2D from_config(const Config& config) {
        return ConvTranspose2D(
            config.get_int("filters"), {config.get_int("kernel_h"), config.get_int("kernel_w")},
            {config.get_int("stride_h"), config.get_int("stride_w")},
            padding_from_name(config.get_string("padding")),
            output_padding_from(config.get_int("output_padding_h"), config.get_int("output_padding_w")),
            init_from_name(config.get_string("init")), config.get_int("use_bias") != 0);
    }

    Index filters() const { return filters_; }
    Size2 kernel() const { return kernel_; }
    Size2 stride() const { return stride_; }
    Padding padding() const { return padding_; }
    const std::optional<Size2>& output_padding() const { return output_padding_; }
    bool use_bias() const { return use_bias_; }
    Matrix<T>& weight() { return weight_; }
    const Matrix<T>& weight() const { return weight_; }
    Vector<T>& bias() { return bias_; }
    const Vector<T>& bias() const { return bias_; }
    const Matrix<T>& grad_weight() const { return grad_weight_; }
    const Vector<T>& grad_bias() const { return grad_bias_; }

private:
    Workspace<T>& scratch() { return scratch_.get(); }

    // Multiply-adds of one pass over `batch` samples, which decides whether threads are worth it.
    Index work(const ConvGeometry& g, Index batch) const { return batch * g.positions() * g.rows() * filters_; }

    std::optional<Index> padding_along(Index Size2::*axis) const {
        if (!output_padding_) return std::nullopt;
        return (*output_padding_).*axis;
    }
    static std::optional<Size2> output_padding_from(Index height, Index width) {
        if (height < 0 && width < 0) return std::nullopt;
        return Size2(height, width);
    }

    // The Conv2D whose input gradient this layer is: its input is our output, its output our input.
    ConvGeometry geometry(const Shape& output) const {
        return conv_geometry(output, kernel_, stride_, padding_);
    }

    // Per-worker input, columns and phase buffers for the largest chunk, and per-chunk partial
    // gradients; they only ever grow, so a call with the same or a smaller batch allocates nothing.
    void reserve_scratch(const Shape& input, const ConvGeometry& g, const Chunks& chunks) {
        const Index workers = std::min<Index>(num_threads(), std::max<Index>(chunks.count(), 1));
        scratch().staging.reserve(workers, chunks.chunk_size * input.size());
        scratch().columns.reserve(workers, g.rows() * chunks.chunk_size * g.positions());
        scratch().phases.reserve(workers, im2col_scratch_size(g, chunks.chunk_size));
        for (Index samples : {chunks.chunk_size, chunks.size(chunks.count() - 1)}) {
            const Index chunk_columns = samples * g.positions();
            scratch().gemm.plan(g.rows(), chunk_columns, input.channels);  // forward: columns
            scratch().gemm.plan(input.channels, g.rows(), chunk_columns);  // weight gradient
            scratch().gemm.plan(input.channels, chunk_columns, g.rows());  // input gradient
        }
        scratch().gemm.reserve(workers);
    }

    // S samples of (C, H*W) in NCHW <-> one (C, S*H*W) matrix with the samples side by side.
    static void gather_channels(const Shape& shape, const T* samples, Index count, T* matrix) {
        const Index plane = shape.height * shape.width;
        for (Index s = 0; s < count; ++s)
            for (Index c = 0; c < shape.channels; ++c)
                std::copy_n(samples + (s * shape.channels + c) * plane, plane,
                            matrix + (c * count + s) * plane);
    }
    static void scatter_channels(const Shape& shape, const T* matrix, Index count, T* samples) {
        const Index plane = shape.height * shape.width;
        for (Index s = 0; s < count; ++s)
            for (Index c = 0; c < shape.channels; ++c)
                std::copy_n(matrix + (c * count + s) * plane, plane,
                            samples + (s * shape.channels + c) * plane);
    }

    void add_bias(const Shape& output, Index count, T* samples) const {
        const Index plane = output.height * output.width;
        for (Index s = 0; s < count; ++s)
            for (Index f = 0; f < filters_; ++f) {
                T* channel = samples + (s * filters_ + f) * plane;
                for (Index p = 0; p < plane; ++p) channel[p] += bias_(f);
            }
    }

    // sums[f] = sum over the samples and pixels of channel f.
    void sum_channels(const Shape& output, const T* samples, Index count, T* sums) const {
        const Index plane = output.height * output.width;
        std::fill_n(sums, filters_, T(0));
        for (Index s = 0; s < count; ++s)
            for (Index f = 0; f < filters_; ++f)
                sums[f] += detail::ordered_sum(samples + (s * filters_ + f) * plane, plane);
    }

    Index filters_;
    Size2 kernel_, stride_;
    Padding padding_;
    std::optional<Size2> output_padding_;
    Init init_;
    bool use_bias_;
    Matrix<T> weight_, grad_weight_;
    Vector<T> bias_, grad_bias_;
    detail::ScratchSpace<T> scratch_;  // columns, staged inputs, GEMM space, partial gradients
};

}  // namespace latent
