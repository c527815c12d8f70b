// gemm(): the same products as Eigen's operator*, without heap allocations. This file checks
// Eigen's allocations itself (EIGEN_RUNTIME_NO_MALLOC), so it is its own test executable.
#define EIGEN_RUNTIME_NO_MALLOC
#include <catch2/catch.hpp>

#include <latent/core/gemm.hpp>
#include <latent/core/random.hpp>
#include <latent/kernels/cpu_features.hpp>

#include "helpers.hpp"

#include <cstring>
#include <vector>

using namespace latent;

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

template <class M> M random_matrix(Index rows, Index cols, std::uint64_t seed) {
    Rng rng(seed);
    M m(rows, cols);
    for (Index i = 0; i < m.size(); ++i) m.data()[i] = rng.uniform(-1, 1);
    return m;
}

// Runs gemm with Eigen's allocations forbidden; Eigen asserts (aborts) if it allocates anyway,
// so this is only reached by a passing run.
template <class Result, class Lhs, class Rhs>
void gemm_without_malloc(Result&& result, const Lhs& lhs, const Rhs& rhs, std::vector<double>& workspace,
                         bool accumulate = false) {
    Eigen::internal::set_is_malloc_allowed(false);
    gemm(result, lhs, rhs, workspace.data(), static_cast<Index>(workspace.size()), accumulate);
    Eigen::internal::set_is_malloc_allowed(true);
}

}  // namespace

TEST_CASE("gemm: matches Eigen's product for every operand orientation and size", "[gemm]") {
    const std::vector<std::array<Index, 3>> shapes = {{1, 1, 1},   {3, 5, 7},     {32, 288, 300}, {300, 64, 5},
                                                      {17, 1, 33}, {64, 784, 256}, {1, 288, 900}};
    for (const auto& [rows, depth, cols] : shapes) {
        INFO(rows << "x" << depth << " * " << depth << "x" << cols);
        const RowMatrix a = random_matrix<RowMatrix>(rows, depth, 1);
        const RowMatrix b = random_matrix<RowMatrix>(depth, cols, 2);
        const RowMatrix at = a.transpose(), bt = b.transpose();
        const RowMatrix expected = a * b;
        std::vector<double> workspace(static_cast<std::size_t>(gemm_workspace_size<double>(rows, cols, depth)));
        RowMatrix result(rows, cols);
        gemm_without_malloc(result, a, b, workspace);
        CHECK((result - expected).cwiseAbs().maxCoeff() < 1e-12);
        gemm_without_malloc(result, at.transpose(), b, workspace);
        CHECK((result - expected).cwiseAbs().maxCoeff() < 1e-12);
        gemm_without_malloc(result, a, bt.transpose(), workspace);
        CHECK((result - expected).cwiseAbs().maxCoeff() < 1e-12);
        gemm_without_malloc(result, at.transpose(), bt.transpose(), workspace);
        CHECK((result - expected).cwiseAbs().maxCoeff() < 1e-12);
        // A column-major result, and accumulation into it.
        std::vector<double> col_workspace(
            static_cast<std::size_t>(gemm_workspace_size<double>(rows, cols, depth, Eigen::ColMajor)));
        ColMatrix col_result = ColMatrix::Ones(rows, cols);
        gemm_without_malloc(col_result, a, b, col_workspace, true);
        CHECK((col_result - expected - ColMatrix::Ones(rows, cols)).cwiseAbs().maxCoeff() < 1e-12);
    }
}

TEST_CASE("gemm: blocks of maps (strided views) as operands and result", "[gemm]") {
    const RowMatrix a = random_matrix<RowMatrix>(40, 30, 3), b = random_matrix<RowMatrix>(30, 50, 4);
    RowMatrix result = RowMatrix::Zero(40, 60);
    std::vector<double> workspace(static_cast<std::size_t>(gemm_workspace_size<double>(10, 20, 25)));
    // rows 5..14 of a, columns 2..26 (depth 25); rows 3..27 of b, columns 7..26; into a block.
    gemm_without_malloc(result.block(20, 33, 10, 20), a.block(5, 2, 10, 25), b.block(3, 7, 25, 20), workspace);
    const RowMatrix expected = a.block(5, 2, 10, 25) * b.block(3, 7, 25, 20);
    CHECK((result.block(20, 33, 10, 20) - expected).cwiseAbs().maxCoeff() < 1e-12);
    CHECK(result.block(0, 0, 20, 60).cwiseAbs().maxCoeff() == 0.0);  // nothing outside the block
}

TEST_CASE("gemm: a product of depth 0 is zero: it zeroes the result, or adds nothing to it", "[gemm]") {
    const RowMatrix a(4, 0), b(0, 3);
    const RowMatrix before = random_matrix<RowMatrix>(4, 3, 7);
    std::vector<double> workspace(16);
    RowMatrix result = before;
    gemm_without_malloc(result, a, b, workspace, true);
    CHECK(result == before);
    gemm_without_malloc(result, a, b, workspace, false);
    CHECK(result.cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("gemm: wrong shapes and a short workspace are refused", "[gemm]") {
    const RowMatrix a = random_matrix<RowMatrix>(4, 3, 1), b = random_matrix<RowMatrix>(5, 2, 2);
    RowMatrix result(4, 2);
    std::vector<double> workspace(1000);
    CHECK_THROWS_AS(gemm(result, a, b, workspace.data(), 1000), ShapeError);
    const RowMatrix c = random_matrix<RowMatrix>(3, 2, 3);
    CHECK_THROWS_AS(gemm(result, a, c, workspace.data(), 2), Error);
}

namespace {

using FloatRowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The vector kernels this CPU can run (the ones it cannot are left out, not failed).
std::vector<Isa> runnable_vector_kernels() {
    std::vector<Isa> kernels;
    for (Isa isa : {Isa::Avx2, Isa::Avx512})
        if (static_cast<int>(isa) <= static_cast<int>(detail::detected_isa())) kernels.push_back(isa);
    return kernels;
}

}  // namespace

TEST_CASE("sgemm: every vector kernel gives the reference loops' bits, for every orientation and edge", "[gemm]") {
    const auto kernels_here = runnable_vector_kernels();
    if (kernels_here.empty()) {
        test::skip("this CPU has neither AVX2 nor AVX-512");
        return;
    }
    // Sizes around the tile (32 x 12 or 8, 16 x 6) and block (192 rows, 256 depth, 1536 columns) edges.
    const std::vector<std::array<Index, 3>> shapes = {{1, 1, 1},    {3, 5, 7},     {32, 12, 256}, {33, 13, 257},
                                                      {17, 1, 33},  {1, 288, 900}, {193, 7, 513}, {40, 1537, 20},
                                                      {100, 300, 700}, {40, 1, 700},  {1, 40, 700},
                                                      {300, 1, 513},   // one column: the unpacked path
                                                      {784, 32, 288}, {288, 32, 784}, {50, 16, 9},  // 32 x 8 tiles
                                                      // A row-major C that stays row-major (its transpose
                                                      // pads twice the area): a 1-channel 3x3 layer's dW
                                                      {32, 9, 1568}, {33, 5, 300}, {64, 3, 600}};
    Rng rng(7);
    for (const auto& [rows, cols, depth] : shapes)
        for (int orientation = 0; orientation < 8; ++orientation) {
            INFO(rows << "x" << depth << " * " << depth << "x" << cols << ", orientation " << orientation);
            std::vector<float> a(static_cast<std::size_t>(rows * depth)), b(static_cast<std::size_t>(depth * cols));
            std::vector<float> initial(static_cast<std::size_t>(rows * cols));
            for (std::vector<float>* values : {&a, &b, &initial})
                for (float& value : *values) value = static_cast<float>(rng.uniform(-1, 1));
            // Bit 0: A column-major; bit 1: B column-major; bit 2: C column-major.
            const kernels::ConstMatrixRef lhs = (orientation & 1) ? kernels::ConstMatrixRef{a.data(), rows, depth, 1, rows}
                                                                  : kernels::ConstMatrixRef{a.data(), rows, depth, depth, 1};
            const kernels::ConstMatrixRef rhs = (orientation & 2) ? kernels::ConstMatrixRef{b.data(), depth, cols, 1, depth}
                                                                  : kernels::ConstMatrixRef{b.data(), depth, cols, cols, 1};
            const auto result_ref = [&](std::vector<float>& values) {
                return (orientation & 4) ? kernels::MatrixRef{values.data(), rows, cols, 1, rows}
                                         : kernels::MatrixRef{values.data(), rows, cols, cols, 1};
            };
            for (const bool accumulate : {false, true}) {
                std::vector<float> expected = initial;
                kernels::sgemm_reference(result_ref(expected), lhs, rhs, accumulate);
                for (Isa isa : kernels_here) {
                    INFO(isa_name(isa) << (accumulate ? ", accumulating" : ""));
                    std::vector<float> result = initial;
                    std::vector<float> workspace(static_cast<std::size_t>(kernels::sgemm_workspace_size(rows, cols, depth)));
                    kernels::sgemm(result_ref(result), lhs, rhs, workspace.data(), static_cast<Index>(workspace.size()),
                                   accumulate, isa);
                    CHECK(std::memcmp(result.data(), expected.data(), result.size() * sizeof(float)) == 0);
                }
            }
        }
}

TEST_CASE("sgemm: the reference loops are the product (to float rounding)", "[gemm]") {
    const FloatRowMatrix a = random_matrix<RowMatrix>(37, 600, 8).cast<float>();
    const FloatRowMatrix b = random_matrix<RowMatrix>(600, 29, 9).cast<float>();
    FloatRowMatrix result(37, 29);
    kernels::sgemm_reference({result.data(), 37, 29, 29, 1}, {a.data(), 37, 600, 600, 1}, {b.data(), 600, 29, 29, 1},
                             false);
    const RowMatrix exact = a.cast<double>() * b.cast<double>();
    CHECK((result.cast<double>() - exact).cwiseAbs().maxCoeff() < 1e-4);
}

TEST_CASE("gemm: results do not depend on the CPU's cache sizes", "[gemm]") {
    // Eigen sizes its depth blocks from the L1 cache; gemm() must not, or a CPU with another L1
    // would sum in another order. Tried with two cache configurations, in double and float.
    std::ptrdiff_t l1 = 0, l2 = 0, l3 = 0;
    Eigen::internal::manage_caching_sizes(Eigen::GetAction, &l1, &l2, &l3);
    const RowMatrix a = random_matrix<RowMatrix>(64, 1500, 10), b = random_matrix<RowMatrix>(1500, 70, 11);
    const FloatRowMatrix a_float = a.cast<float>(), b_float = b.cast<float>();
    std::vector<double> workspace(static_cast<std::size_t>(gemm_workspace_size<double>(64, 70, 1500)));
    std::vector<float> float_workspace(static_cast<std::size_t>(gemm_workspace_size<float>(64, 70, 1500)));
    RowMatrix first(64, 70), second(64, 70);
    FloatRowMatrix first_float(64, 70), second_float(64, 70);
    Eigen::setCpuCacheSizes(32 * 1024, 1024 * 1024, 32 * 1024 * 1024);
    gemm_without_malloc(first, a, b, workspace);
    gemm(first_float, a_float, b_float, float_workspace.data(), static_cast<Index>(float_workspace.size()));
    Eigen::setCpuCacheSizes(48 * 1024, 2 * 1024 * 1024, 105 * 1024 * 1024);
    gemm_without_malloc(second, a, b, workspace);
    gemm(second_float, a_float, b_float, float_workspace.data(), static_cast<Index>(float_workspace.size()));
    Eigen::setCpuCacheSizes(l1, l2, l3);
    CHECK(std::memcmp(first.data(), second.data(), sizeof(double) * 64 * 70) == 0);
    CHECK(std::memcmp(first_float.data(), second_float.data(), sizeof(float) * 64 * 70) == 0);
}

TEST_CASE("LATENT_ISA: names a kernel family the CPU has, else a clear error", "[gemm]") {
    CHECK(detail::choose_isa("", Isa::Avx512) == Isa::Avx512);
    CHECK(detail::choose_isa("portable", Isa::Avx512) == Isa::Portable);
    CHECK(detail::choose_isa("avx2", Isa::Avx512) == Isa::Avx2);
    CHECK(detail::choose_isa("avx2", Isa::Avx2) == Isa::Avx2);
    CHECK_THROWS_WITH(detail::choose_isa("avx512", Isa::Avx2),
                      Catch::Contains("LATENT_ISA=avx512") && Catch::Contains("at most avx2"));
    CHECK_THROWS_WITH(detail::choose_isa("sse", Isa::Avx512), Catch::Contains("not one of portable, avx2, avx512"));
    CHECK_THROWS_AS(detail::choose_isa("AVX2", Isa::Avx512), ArgumentError);
}

TEST_CASE("sgemm: one column alone gives the bits it has inside a wider product", "[gemm]") {
    // The one-column path (one sample through a Dense layer) skips packing; it must sum in the
    // packed kernel's order, so a sample's output does not depend on the batch around it. A is
    // row-major (a Dense layer's weights: transposed loads) or column-major (a frozen layer's
    // weights by input: plain loads, several vectors of rows at a time); the row counts cover
    // whole groups and every kind of last group, the depth three depth blocks.
    const auto kernels_here = runnable_vector_kernels();
    if (kernels_here.empty()) {
        test::skip("this CPU has neither AVX2 nor AVX-512");
        return;
    }
    const Index depth = 700, cols = 9;
    const FloatRowMatrix b = random_matrix<RowMatrix>(depth, cols, 13).cast<float>();
    for (Index rows : {1, 9, 45, 64, 137, 200}) {
        const FloatRowMatrix a = random_matrix<RowMatrix>(rows, depth, 12).cast<float>();
        const FloatRowMatrix a_by_column = a.transpose();  // a column-major copy of A
        const FloatRowMatrix start = random_matrix<RowMatrix>(rows, cols, 14).cast<float>();
        for (bool column_major : {false, true})
            for (bool accumulate : {false, true})
                for (Isa isa : kernels_here) {
                    INFO(isa_name(isa) << ", " << rows << " rows, A " << (column_major ? "column" : "row")
                                       << "-major, accumulate " << accumulate);
                    const kernels::ConstMatrixRef a_ref = column_major
                                                              ? kernels::ConstMatrixRef{a_by_column.data(), rows, depth, 1, rows}
                                                              : kernels::ConstMatrixRef{a.data(), rows, depth, depth, 1};
                    std::vector<float> whole(static_cast<std::size_t>(rows * cols));
                    for (Index j = 0; j < cols; ++j)
                        for (Index i = 0; i < rows; ++i) whole[static_cast<std::size_t>(j * rows + i)] = start(i, j);
                    std::vector<float> workspace(static_cast<std::size_t>(kernels::sgemm_workspace_size(rows, cols, depth)));
                    kernels::sgemm({whole.data(), rows, cols, 1, rows}, a_ref, {b.data(), depth, cols, cols, 1},
                                   workspace.data(), static_cast<Index>(workspace.size()), accumulate, isa);
                    for (Index j = 0; j < cols; ++j) {
                        std::vector<float> column(static_cast<std::size_t>(rows));
                        for (Index i = 0; i < rows; ++i) column[static_cast<std::size_t>(i)] = start(i, j);
                        const FloatRowMatrix b_column = b.col(j);  // contiguous, as one sample's input is
                        kernels::sgemm({column.data(), rows, 1, 1, rows}, a_ref, {b_column.data(), depth, 1, 1, 1},
                                       workspace.data(), static_cast<Index>(workspace.size()), accumulate, isa);
                        CHECK(std::memcmp(column.data(), whole.data() + j * rows, sizeof(float) * rows) == 0);
                    }
                }
    }
}
