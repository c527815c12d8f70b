// Conv2D: a bank of `filters` kernels of size kh x kw slid over all C input channels, with
// TensorFlow's "same" / "valid" padding (padding.hpp). Input (N, C, H, W), output (N, F, OH, OW).
// Lowered to GEMMs: im2col over a chunk of samples, then one product with the weight matrix.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "../core/gemm.hpp"
#include "../core/threading.hpp"
#include "im2col.hpp"
#include "layer.hpp"
#include "padding.hpp"

namespace latent {

template <class T = float> class Conv2D {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Conv2D";

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
        return {filters_, geometry.output_height, geometry.output_width};
    }

    // weight is (F, C, kh, kw) as in PyTorch, held as an (F, C*kh*kw) matrix whose columns match
    // the rows of im2col. Keras's fans: fan_in = C*kh*kw, fan_out = F*kh*kw.
    void build(const Shape& input, Rng& rng) {
        const Index taps = input.channels * kernel_.height * kernel_.width;
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
        reserve_scratch(g, chunks);
        parallel_for(chunks.count(), work(g, x.dimension(0)), [&](Index chunk, int worker) {
            const Index first = chunks.begin(chunk), count = chunks.size(chunk);
            const Index columns = count * g.positions();
            T* im2col_buffer = columns_.slice(worker);
            T* product_buffer = products_.slice(worker);
            im2col(g, x.data() + first * g.image_size(), count, im2col_buffer,
                   phases_.slice(worker));
            gemm_.multiply(worker, MatrixView<T>(product_buffer, filters_, columns), weight_,
                           ConstMatrixView<T>(im2col_buffer, g.rows(), columns));
            scatter_output(g, product_buffer, count, y.data() + first * filters_ * g.positions());
        });
    }

    // backward: dW += dY im2col(x)^T;  db[f] += sum_{n,oy,ox} dy[n,f,oy,ox];  dx = col2im(W^T dY)
    //           per chunk with dY as (F, S*OH*OW); the chunks' dW and db are summed in chunk order
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy,
                  TensorView<T> dx) {
        const ConvGeometry g = conv_geometry(sample_shape<T>(x), kernel_, stride_, padding_);
        const Chunks chunks = conv_chunks(x.dimension(0), g.positions());
        reserve_scratch(g, chunks);
        const Index weight_size = weight_.size();
        detail::grow(partial_weight_, chunks.count() * weight_size);
        detail::grow(partial_bias_, chunks.count() * filters_);
        parallel_for(chunks.count(), work(g, x.dimension(0)), [&](Index chunk, int worker) {
            const Index first = chunks.begin(chunk), count = chunks.size(chunk);
            const Index columns = count * g.positions();
            T* im2col_buffer = columns_.slice(worker);
            T* grad_output_buffer = products_.slice(worker);
            im2col(g, x.data() + first * g.image_size(), count, im2col_buffer,
                   phases_.slice(worker));
            gather_output(g, dy.data() + first * filters_ * g.positions(), count,
                          grad_output_buffer);
            const ConstMatrixView<T> grad_output(grad_output_buffer, filters_, columns);
            const ConstMatrixView<T> input_columns(im2col_buffer, g.rows(), columns);
            MatrixView<T> chunk_grad_weight(partial_weight_.data() + chunk * weight_size, filters_,
                                            g.rows());
            gemm_.multiply(worker, chunk_grad_weight, grad_output, input_columns.transpose());
            if (use_bias_) {
                T* chunk_bias = partial_bias_.data() + chunk * filters_;
                for (Index f = 0; f < filters_; ++f)
                    chunk_bias[f] = detail::ordered_sum(grad_output_buffer + f * columns, columns);
            }
            if (dx.data() == nullptr) return;
            // The columns of x are no longer needed: their buffer receives the column gradients.
            gemm_.multiply(worker, MatrixView<T>(im2col_buffer, g.rows(), columns), weight_.transpose(),
                           grad_output);
            col2im(g, im2col_buffer, count, dx.data() + first * g.image_size(),
                   phases_.slice(worker));
        });
        for (Index chunk = 0; chunk < chunks.count(); ++chunk) {
            grad_weight_ += ConstMatrixView<T>(partial_weight_.data() + chunk * weight_size,
                                               filters_, g.rows());
            if (use_bias_)
                grad_bias_ +=
                    Eigen::Map<const Vector<T>>(partial_bias_.data() + chunk * filters_, filters_);
        }
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

private:
    // Multiply-adds of one pass over `batch` samples, which decides whether threads are worth it.
    Index work(const ConvGeometry& g, Index batch) const { return batch * g.positions() * g.rows() * filters_; }

    // Per-worker im2col, product and phase buffers for the largest chunk, and per-chunk partial
    // gradients; they only ever grow, so a call with the same or a smaller batch allocates nothing.
    void reserve_scratch(const ConvGeometry& g, const Chunks& chunks) {
        const Index workers = std::min<Index>(num_threads(), std::max<Index>(chunks.count(), 1));
        const Index columns = chunks.chunk_size * g.positions();
        columns_.reserve(workers, g.rows() * columns);
        products_.reserve(workers, filters_ * columns);
        phases_.reserve(workers, im2col_scratch_size(g, chunks.chunk_size));
        for (Index samples : {chunks.chunk_size, chunks.size(chunks.count() - 1)}) {
            const Index chunk_columns = samples * g.positions();
            gemm_.plan(filters_, chunk_columns, g.rows());  // forward
            gemm_.plan(filters_, g.rows(), chunk_columns);  // weight gradient
            gemm_.plan(g.rows(), chunk_columns, filters_);  // column gradients
        }
        gemm_.reserve(workers);
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

    // S samples of (F, P) in NCHW -> (F, S*P), the layout of the product.
    void gather_output(const ConvGeometry& g, const T* output, Index samples, T* product) const {
        const Index positions = g.positions(), row_length = samples * positions;
        for (Index s = 0; s < samples; ++s)
            for (Index f = 0; f < filters_; ++f)
                std::copy_n(output + (s * filters_ + f) * positions, positions,
                            product + f * row_length + s * positions);
    }

    Index filters_;
    Size2 kernel_, stride_;
    Padding padding_;
    Init init_;
    bool use_bias_;
    Matrix<T> weight_, grad_weight_;
    Vector<T> bias_, grad_bias_;
    detail::WorkerBuffers<T> columns_, products_, phases_;
    GemmScratch<T> gemm_;
    std::vector<T> partial_weight_, partial_bias_;  // one slice per chunk
};

}  // namespace latent
