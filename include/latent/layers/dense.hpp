// Dense (fully connected): every output unit is a weighted sum of all C*H*W input values.
// Input (N, C, H, W) is read as an (N, C*H*W) matrix; output is (N, units, 1, 1).
#pragma once

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/checked.hpp"
#include "../core/gemm.hpp"
#include "../core/threading.hpp"
#include "../kernels/cpu_features.hpp"
#include "layer.hpp"

namespace latent {
namespace detail {

// rows[r * stride + c] += values[c] for r < count, c < columns, on the CPU's widest vector unit.
template <class T> void add_to_rows(T* rows, Index count, Index columns, Index stride, const T* values) {
    run_vectorized([rows, count, columns, stride, values]() __attribute__((always_inline)) {
        for (Index r = 0; r < count; ++r)
            for (Index c = 0; c < columns; ++c) rows[r * stride + c] += values[c];
    });
}

// sums[c] += the sum over r < count of rows[r * stride + c], for c < columns, on the CPU's widest
// vector unit. Each column is summed in the order of Eigen's vectorized colwise().sum(): row 0,
// plus rows in groups of four ((r0 + r1) + (r2 + r3)) up to row (count - 1) & ~3, plus the rest
// one by one -- so the same bits as Eigen's for every column, whatever the build's vector width.
template <class T> void add_column_sums(const T* rows, Index count, Index columns, Index stride, T* sums) {
    if (count == 0) return;
    run_vectorized([rows, count, columns, stride, sums]() __attribute__((always_inline)) {
        constexpr Index block = 64;
        const Index grouped_end = (count - 1) & ~Index(3);
        for (Index first = 0; first < columns; first += block) {
            const Index width = std::min(block, columns - first);
            const T* column = rows + first;
            T column_sums[block];
            for (Index c = 0; c < width; ++c) column_sums[c] = column[c];
            Index r = 1;
            for (; r < grouped_end; r += 4) {
                const T* row = column + r * stride;
                for (Index c = 0; c < width; ++c)
                    column_sums[c] += (row[c] + row[stride + c]) + (row[2 * stride + c] + row[3 * stride + c]);
            }
            for (; r < count; ++r)
                for (Index c = 0; c < width; ++c) column_sums[c] += column[r * stride + c];
            for (Index c = 0; c < width; ++c) sums[first + c] += column_sums[c];
        }
    });
}

}  // namespace detail

template <class T = float> class Dense {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Dense";
    bool backward_reads_output() const { return false; }  // it reads x and dy: y may be overwritten
    // Scratch memory of a call; a model lends all its layers one Workspace (core/workspace.hpp).
    void lend_workspace(Workspace<T>* workspace) { scratch_.lend(workspace); }

    explicit Dense(Index units, Init init = Init::GlorotUniform, bool use_bias = true)
        : units_(units), init_(init), use_bias_(use_bias) {
        detail::require(units >= 1, "Dense", "units must be >= 1, got " + std::to_string(units));
        checked_extent(units, 1, "Dense", "units");
    }

    Shape output_shape(const Shape& input) const {
        if (input.size() < 1)
            throw ShapeError("Dense: input shape " + input.str() + " has no elements");
        return {units_, 1, 1};
    }

    // weight is (units, inputs) as in PyTorch; fan_in = inputs, fan_out = units.
    void build(const Shape& input, Rng& rng) {
        const Index inputs = input.size();
        checked_product({units_, inputs}, "Dense: weights (units x inputs)");
        weight_.resize(units_, inputs);
        thaw();
        grad_weight_ = Matrix<T>::Zero(units_, inputs);
        initialize(init_, weight_.data(), weight_.size(), inputs, units_, rng);
        bias_ = Vector<T>::Zero(units_);
        grad_bias_ = Vector<T>::Zero(units_);
    }

    // forward: y[n, u] = sum_i x[n, i] * W[u, i] + b[u]            (Y = X W^T + b)
    // GEMM over chunks of rows, or for a small batch over blocks of units (see splits_columns);
    // an output's value never depends on how many threads run.
    void forward(ConstTensorView<T> x, TensorView<T> y) {
        const ConstMatrixView<T> input = as_matrix<T>(x);
        MatrixView<T> output = as_matrix<T>(y);
        const Chunks rows = row_chunks(input.rows());
        reserve_gemm(rows, input.cols());
        if (splits_columns(input.rows())) {
            const Chunks blocks = column_chunks(units_);
            const bool by_input = input.rows() == 1 && frozen();
            parallel_for(blocks.count(), input.rows() * units_ * input.cols(), [&](Index block, int worker) {
                const Index first = blocks.begin(block), count = blocks.size(block);
                auto out = output.middleCols(first, count);
                if (by_input)
                    scratch().gemm.multiply(worker, out, input, weight_by_input().middleCols(first, count));
                else
                    scratch().gemm.multiply(worker, out, input, weight_.middleRows(first, count).transpose());
                if (use_bias_) detail::add_to_rows(out.data(), input.rows(), count, units_, bias_.data() + first);
            });
            return;
        }
        parallel_for(rows.count(), input.rows() * units_ * input.cols(), [&](Index chunk, int worker) {
            const Index first = rows.begin(chunk), count = rows.size(chunk);
            auto out = output.middleRows(first, count);
            scratch().gemm.multiply(worker, out, input.middleRows(first, count), weight_.transpose());
            if (use_bias_) detail::add_to_rows(out.data(), count, units_, units_, bias_.data());
        });
    }

    // backward: dW[u, i] += sum_n dy[n, u] * x[n, i]               (dW += dY^T X)
    //           db[u]    += sum_n dy[n, u]
    //           dx[n, i]  = sum_u dy[n, u] * W[u, i]               (dX = dY W)
    // dW is split by blocks of units (each sums over the whole batch: no partial sums to merge).
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        thaw();  // training: the weights will change
        const ConstMatrixView<T> input = as_matrix<T>(x);
        const ConstMatrixView<T> grad_output = as_matrix<T>(dy);
        const Chunks unit_blocks = unit_chunks();
        const Chunks rows = row_chunks(input.rows());
        reserve_gemm(rows, input.cols());
        parallel_for(unit_blocks.count(), input.rows() * units_ * input.cols(), [&](Index block, int worker) {
            const Index first = unit_blocks.begin(block), count = unit_blocks.size(block);
            scratch().gemm.multiply(worker, grad_weight_.middleRows(first, count),
                                    grad_output.middleCols(first, count).transpose(), input, /*accumulate=*/true);
            if (use_bias_)
                detail::add_column_sums(grad_output.data() + first, input.rows(), count, units_,
                                        grad_bias_.data() + first);
        });
        if (dx.data() == nullptr) return;
        MatrixView<T> grad_input = as_matrix<T>(dx);
        if (splits_columns(input.rows())) {  // by blocks of dX's columns, each over the whole batch
            const Chunks blocks = column_chunks(input.cols());
            parallel_for(blocks.count(), input.rows() * units_ * input.cols(), [&](Index block, int worker) {
                const Index first = blocks.begin(block), count = blocks.size(block);
                scratch().gemm.multiply(worker, grad_input.middleCols(first, count), grad_output,
                                        weight_.middleCols(first, count));
            });
            return;
        }
        parallel_for(rows.count(), input.rows() * units_ * input.cols(), [&](Index chunk, int worker) {
            const Index first = rows.begin(chunk), count = rows.size(chunk);
            scratch().gemm.multiply(worker, grad_input.middleRows(first, count), grad_output.middleRows(first, count),
                                    weight_);
        });
    }

    // weight (units x inputs) and bias (units)
    Index parameter_values(const Shape& input) const {
        return checked_product({units_, input.size()}, "Dense: weights (units x inputs)") + (use_bias_ ? units_ : 0);
    }

    std::vector<Parameter<T>> parameters() {
        std::vector<Parameter<T>> list{{"weight", weight_.data(), grad_weight_.data(), weight_.size()}};
        if (use_bias_) list.push_back({"bias", bias_.data(), grad_bias_.data(), bias_.size()});
        return list;
    }

    Config config() const {
        return Config()
            .set("units", units_)
            .set("init", init_name(init_))
            .set("use_bias", use_bias_ ? 1 : 0);
    }
    static Dense from_config(const Config& config) {
        return Dense(config.get_int("units"), init_from_name(config.get_string("init")),
                     config.get_int("use_bias") != 0);
    }

    Index units() const { return units_; }
    bool use_bias() const { return use_bias_; }
    Matrix<T>& weight() {  // (writable: a frozen copy would go stale)
        thaw();
        return weight_;
    }
    const Matrix<T>& weight() const { return weight_; }
    Vector<T>& bias() { return bias_; }
    const Vector<T>& bias() const { return bias_; }
    const Matrix<T>& grad_weight() const { return grad_weight_; }
    const Vector<T>& grad_bias() const { return grad_bias_; }

    // True when the forward and the input gradient split their products by blocks of output
    // columns instead of by rows: for a batch under 64 rows. Row chunks would then be a few rows
    // each, and every chunk's GEMM would pack the whole weight matrix again (16 rows x 16384 ->
    // 300: 4 packings of 4.9M weights for 4 rows each); column blocks pack each weight once.
    static bool splits_columns(Index rows) { return rows < 64; }

    // For serving one sample at a time (Frozen, models/frozen.hpp): keeps a copy of the weights
    // by input, W^T, which the one-sample product reads with plain vector loads instead of
    // in-register transposes of W's rows -- the same sums in the same order, so the same bits,
    // for twice the weights' memory. backward() and the writable weight() drop the copy; writes
    // through parameters() are not seen, which is why Frozen holds its model out of reach.
    // Only the float vector kernels read it (Eigen's products would sum in another order).
    // Its rows (one input's weights each) are padded to whole cache lines on a 64-byte boundary,
    // and the column blocks of forward() start at multiples of 16 units, so no vector load of
    // the product straddles two cache lines (W1's one-sample latency: 30 us with Eigen's
    // 16-byte alignment, 23 us aligned, on an AVX-512 CPU).
    void freeze() {
        if constexpr (std::is_same_v<T, float>) {
            if (!kernels::sgemm_available()) return;
            const Index inputs = weight_.cols(), stride = kernels::round_up(units_, 16);
            weight_by_input_ = detail::AlignedArray<T>(inputs * stride);
            Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>(weight_by_input_.data(), inputs, units_,
                                                           Eigen::OuterStride<>(stride)) = weight_.transpose();
        }
    }
    void thaw() { weight_by_input_ = detail::AlignedArray<T>(); }
    bool frozen() const { return weight_by_input_.size() > 0; }

private:
    Workspace<T>& scratch() { return scratch_.get(); }

    Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>> weight_by_input() const {
        const Index inputs = weight_.cols();
        return {weight_by_input_.data(), inputs, units_, Eigen::OuterStride<>(weight_by_input_.size() / inputs)};
    }

    // Up to 64 rows per GEMM, and at least 4 chunks for batches of 8 or more.
    static Chunks row_chunks(Index rows) { return batch_chunks(rows, 1, 64, 4); }
    // Column blocks of a small batch's products: up to 8 for two threads to share, of 64 columns or
    // more, in multiples of 16 -- the rows of W one vector of the one-sample product holds, so a
    // block's last vector is not a part-filled one (784 units: 7 blocks of 112, not 8 of 98).
    static Chunks column_chunks(Index columns) {
        return Chunks{columns, kernels::round_up(std::max<Index>(64, (columns + 7) / 8), 16)};
    }
    // Weight-gradient rows per GEMM: each block sums over the whole batch. At least 32 rows, and
    // at most 8 blocks: a product's fixed costs (packing the batch's inputs) are paid per block.
    Chunks unit_chunks() const { return Chunks{units_, std::max<Index>(32, (units_ + 7) / 8)}; }

    // Workspace for every product forward and backward run on this batch size.
    void reserve_gemm(const Chunks& rows, Index inputs) {
        Index chunks = rows.count();
        if (splits_columns(rows.total)) {
            const Chunks unit_blocks = column_chunks(units_), input_blocks = column_chunks(inputs);
            for (Index count : {unit_blocks.chunk_size, unit_blocks.size(unit_blocks.count() - 1)})
                scratch().gemm.plan(rows.total, count, inputs);  // forward
            for (Index count : {input_blocks.chunk_size, input_blocks.size(input_blocks.count() - 1)})
                scratch().gemm.plan(rows.total, count, units_);  // input gradient
            chunks = std::max(unit_blocks.count(), input_blocks.count());
        } else {
            for (Index count : {rows.chunk_size, rows.size(rows.count() - 1)}) {
                scratch().gemm.plan(count, units_, inputs);  // forward
                scratch().gemm.plan(count, inputs, units_);  // input gradient
            }
        }
        const Chunks units = unit_chunks();
        for (Index count : {units.chunk_size, units.size(units.count() - 1)})
            scratch().gemm.plan(count, inputs, rows.total);  // weight gradient
        scratch().gemm.reserve(std::min<Index>(num_threads(), std::max(chunks, units.count())));
    }

    Index units_;
    Init init_;
    bool use_bias_;
    Matrix<T> weight_, grad_weight_;
    detail::AlignedArray<T> weight_by_input_;  // W^T while frozen (see freeze()); else empty
    Vector<T> bias_, grad_bias_;
    detail::ScratchSpace<T> scratch_;  // GEMM packing space
};

}  // namespace latent
