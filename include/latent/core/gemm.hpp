// gemm(): the matrix product under every layer, with packing memory supplied by the caller.
//
// Float products run on latent's own kernels (kernels/sgemm.hpp), compiled for AVX2+FMA and for
// AVX-512 and chosen at run time, so a build without -march flags gets the machine's speed.
// Double products, and float ones on a CPU without AVX2 (or with LATENT_ISA=portable), run on
// Eigen's kernel, with the packing buffers in caller-owned scratch memory instead of the heap
// (`C.noalias() = A * B` would allocate them at every call) and with fixed blocking instead of
// Eigen's cache-size-dependent one, so the order of the sums -- and the results -- do not
// depend on the CPU model. Either way a steady-state training step allocates nothing.
//
// Operands are any Eigen expressions that Eigen itself would hand to its GEMM kernel: maps or
// matrices, row- or column-major, blocks of them, and transposes of those.
//
// Built with LATENT_USE_BLAS (CMake option of the same name), float and double products go to
// a single-threaded OpenBLAS instead (cblas_sgemm / cblas_dgemm): latent's threads split the
// batch, so each call runs on one thread, and results still do not depend on the thread count.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "errors.hpp"
#include "scratch.hpp"
#include "tensor.hpp"
#include "../kernels/sgemm.hpp"

#ifdef LATENT_USE_BLAS
#include <cblas.h>

#include <limits>
#endif

namespace latent {
namespace detail {

// Packing memory Eigen's blocked GEMM needs for an (m x n) += (m x depth) * (depth x n) product
// in its column-major form, and the blocking it will use. The blocking is fixed, not derived
// from the CPU's cache sizes as Eigen's own is: kc decides the order of the sums, so a
// cache-dependent kc would give different results on CPUs with other L1 sizes.
template <class T> struct GemmBlockingSizes {
    Index kc = 0, mc = 0, nc = 0;

    GemmBlockingSizes(Index m, Index n, Index depth)
        : kc(std::min<Index>(depth, 256)), mc(std::min<Index>(m, 192)), nc(std::min<Index>(n, 1536)) {}
    Index size_a() const { return (mc * kc + 15) / 16 * 16; }  // keeps B on a 64-byte boundary
    Index size_b() const { return kc * nc; }
    Index total() const { return size_a() + size_b(); }
};

// Eigen's blocking description, pointing at caller-owned memory instead of allocating its own.
template <class T> class CallerBlocking : public Eigen::internal::level3_blocking<T, T> {
public:
    CallerBlocking(const GemmBlockingSizes<T>& sizes, T* memory) {
        this->m_kc = sizes.kc;
        this->m_mc = sizes.mc;
        this->m_nc = sizes.nc;
        this->m_blockA = memory;
        this->m_blockB = memory + sizes.size_a();
    }
};

template <class Expression> constexpr int storage_order() {
    return (std::decay_t<Expression>::Flags & Eigen::RowMajorBit) ? Eigen::RowMajor : Eigen::ColMajor;
}

// The product as Eigen's kernel sees it: a row-major result is computed as the transposed,
// column-major one, so its m and n swap.
template <class Result> GemmBlockingSizes<typename std::decay_t<Result>::Scalar>
blocking_for(Index rows, Index cols, Index depth) {
    using T = typename std::decay_t<Result>::Scalar;
    return storage_order<Result>() == Eigen::RowMajor ? GemmBlockingSizes<T>(cols, rows, depth)
                                                      : GemmBlockingSizes<T>(rows, cols, depth);
}

// An Eigen matrix expression (a map, a block, a transpose of one) as the strided operand of
// kernels::sgemm.
template <class Pointer, class Expression> kernels::StridedMatrix<Pointer> strided(Pointer data, const Expression& m) {
    const bool row_major = storage_order<Expression>() == Eigen::RowMajor;
    const Index inner = m.innerStride(), outer = m.outerStride();
    return {data, m.rows(), m.cols(), row_major ? outer : inner, row_major ? inner : outer};
}

#ifdef LATENT_USE_BLAS
// result = alpha * lhs * rhs + beta * result through CBLAS, for operands whose elements are
// contiguous along their inner dimension; false (nothing done) when CBLAS cannot take them.
template <class T, class Result, class Lhs, class Rhs>
bool blas_gemm(Result& result, const Lhs& lhs, const Rhs& rhs, T alpha, T beta) {
    if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, double>) {
        return false;
    } else {
        constexpr Index limit = std::numeric_limits<int>::max();
        if (result.innerStride() != 1 || lhs.innerStride() != 1 || rhs.innerStride() != 1 ||
            std::max({result.rows(), result.cols(), lhs.cols(), result.outerStride(), lhs.outerStride(),
                      rhs.outerStride()}) > limit)
            return false;
        const bool row_major = storage_order<Result>() == Eigen::RowMajor;
        const auto order = row_major ? CblasRowMajor : CblasColMajor;
        const auto lhs_transpose = (storage_order<Lhs>() == Eigen::RowMajor) == row_major ? CblasNoTrans : CblasTrans;
        const auto rhs_transpose = (storage_order<Rhs>() == Eigen::RowMajor) == row_major ? CblasNoTrans : CblasTrans;
        const int rows = static_cast<int>(result.rows()), cols = static_cast<int>(result.cols());
        const int depth = static_cast<int>(lhs.cols());
        const auto stride = [](const auto& matrix) { return static_cast<int>(matrix.outerStride()); };
        if constexpr (std::is_same_v<T, float>)
            cblas_sgemm(order, lhs_transpose, rhs_transpose, rows, cols, depth, alpha, &lhs.coeffRef(0, 0),
                        stride(lhs), &rhs.coeffRef(0, 0), stride(rhs), beta, result.data(), stride(result));
        else
            cblas_dgemm(order, lhs_transpose, rhs_transpose, rows, cols, depth, alpha, &lhs.coeffRef(0, 0),
                        stride(lhs), &rhs.coeffRef(0, 0), stride(rhs), beta, result.data(), stride(result));
        return true;
    }
}
#endif

}  // namespace detail

// Scratch values gemm() needs for a (rows x depth) * (depth x cols) product written to a matrix
// of `result_order`; reserve at least this much (per thread) before calling gemm().
template <class T>
Index gemm_workspace_size(Index rows, Index cols, Index depth, int result_order = Eigen::RowMajor) {
    const auto sizes = result_order == Eigen::RowMajor ? detail::GemmBlockingSizes<T>(cols, rows, depth)
                                                       : detail::GemmBlockingSizes<T>(rows, cols, depth);
    const Index eigen_size = sizes.total() + 16;  // + room to align the start to 64 bytes
    if constexpr (std::is_same_v<T, float>) return std::max(eigen_size, kernels::sgemm_workspace_size(rows, cols, depth));
    return eigen_size;
}

// result = lhs * rhs, or result += lhs * rhs with `accumulate`. `workspace` holds at least
// gemm_workspace_size(...) values; it is overwritten.
template <class Result, class Lhs, class Rhs, class T = typename std::decay_t<Result>::Scalar>
void gemm(Result&& result, const Lhs& lhs, const Rhs& rhs, T* workspace, Index workspace_size,
          bool accumulate = false) {
    using namespace Eigen::internal;
    using LhsTraits = blas_traits<Lhs>;
    using RhsTraits = blas_traits<Rhs>;
    const auto& actual_lhs = LhsTraits::extract(lhs);  // strips transposes and scalar factors
    const auto& actual_rhs = RhsTraits::extract(rhs);
    const Index rows = lhs.rows(), cols = rhs.cols(), depth = lhs.cols();
    if (rhs.rows() != depth || result.rows() != rows || result.cols() != cols)
        throw ShapeError("gemm: (" + std::to_string(rows) + "x" + std::to_string(depth) + ") * (" +
                         std::to_string(rhs.rows()) + "x" + std::to_string(cols) + ") into (" +
                         std::to_string(result.rows()) + "x" + std::to_string(result.cols()) + ")");
    if (rows == 0 || cols == 0 || depth == 0) {
        if (!accumulate) result.setZero();
        return;
    }
    const T alpha = LhsTraits::extractScalarFactor(lhs) * RhsTraits::extractScalarFactor(rhs);
#ifndef LATENT_USE_BLAS
    if constexpr (std::is_same_v<T, float>) {
        if (kernels::sgemm_available() && alpha == 1.0f) {
            kernels::sgemm(detail::strided(result.data(), result), detail::strided(&actual_lhs.coeffRef(0, 0), actual_lhs),
                           detail::strided(&actual_rhs.coeffRef(0, 0), actual_rhs), workspace, workspace_size,
                           accumulate);
            return;
        }
    }
#endif
    const auto sizes = detail::blocking_for<Result>(rows, cols, depth);
    void* start = workspace;
    std::size_t space = static_cast<std::size_t>(workspace_size) * sizeof(T);
    T* aligned = static_cast<T*>(std::align(64, sizeof(T) * static_cast<std::size_t>(sizes.total()), start, space));
    if (aligned == nullptr)  // (checked with BLAS too, so a caller's mistake shows in every build)
        throw Error("gemm: workspace of " + std::to_string(workspace_size) + " values is too small (needs " +
                    std::to_string(sizes.total() + 16) + ")");
#ifdef LATENT_USE_BLAS
    if (detail::blas_gemm<T>(result, actual_lhs, actual_rhs, alpha, accumulate ? T(1) : T(0))) return;
#endif
    if (!accumulate) result.setZero();
    detail::CallerBlocking<T> blocking(sizes, aligned);

    using ActualLhs = std::decay_t<decltype(actual_lhs)>;
    using ActualRhs = std::decay_t<decltype(actual_rhs)>;
    general_matrix_matrix_product<Index, T, detail::storage_order<ActualLhs>(), false, T,
                                  detail::storage_order<ActualRhs>(), false, detail::storage_order<Result>(),
                                  1>::run(rows, cols, depth, &actual_lhs.coeffRef(0, 0), actual_lhs.outerStride(),
                                          &actual_rhs.coeffRef(0, 0), actual_rhs.outerStride(), result.data(),
                                          result.innerStride(), result.outerStride(), alpha, blocking, nullptr);
}

// Per-worker gemm() workspaces for one layer. Before a parallel loop: plan() every product
// shape the loop will run, then reserve(workers); inside it: multiply(worker, ...). Memory only
// grows, so once the largest batch has been seen no call allocates.
template <class T> class GemmScratch {
public:
    void plan(Index rows, Index cols, Index depth, int result_order = Eigen::RowMajor) {
        per_worker_ = std::max(per_worker_, gemm_workspace_size<T>(rows, cols, depth, result_order));
    }
    void reserve(Index workers) { buffers_.reserve(workers, per_worker_); }

    template <class Result, class Lhs, class Rhs>
    void multiply(int worker, Result&& result, const Lhs& lhs, const Rhs& rhs, bool accumulate = false) {
        gemm(std::forward<Result>(result), lhs, rhs, buffers_.slice(worker), per_worker_, accumulate);
    }

private:
    detail::WorkerBuffers<T> buffers_;
    Index per_worker_ = 0;
};

}  // namespace latent
