// gemm(): the same products as Eigen's operator*, without heap allocations. This file checks
// Eigen's allocations itself (EIGEN_RUNTIME_NO_MALLOC), so it is its own test executable.
#define EIGEN_RUNTIME_NO_MALLOC
#include <catch2/catch.hpp>

#include <latent/core/gemm.hpp>
#include <latent/core/random.hpp>

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

TEST_CASE("gemm: wrong shapes and a short workspace are refused", "[gemm]") {
    const RowMatrix a = random_matrix<RowMatrix>(4, 3, 1), b = random_matrix<RowMatrix>(5, 2, 2);
    RowMatrix result(4, 2);
    std::vector<double> workspace(1000);
    CHECK_THROWS_AS(gemm(result, a, b, workspace.data(), 1000), ShapeError);
    const RowMatrix c = random_matrix<RowMatrix>(3, 2, 3);
    CHECK_THROWS_AS(gemm(result, a, c, workspace.data(), 2), Error);
}
