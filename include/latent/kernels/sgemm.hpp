// sgemm(): C = A * B (or C += A * B) in float, with kernels for AVX2+FMA and AVX-512 chosen at
// run time, so a build without -march flags still runs at the speed of the machine.
//
// The classic blocked scheme: B is packed in panels of kc x nr, A in panels of mr x kc, and a
// register-blocked micro-kernel multiplies one A panel by one B panel into an mr x nr tile.
//
// The rule that makes results reproducible: every element of C is the sum over k in blocks of
// kSgemmDepthBlock, each block accumulated in k order with one fused multiply-add per term,
// starting from zero, then added to C. Only that block size (a constant) decides the rounding
// -- not the tile sizes, the cache sizes, the thread count or the vector width -- so the AVX2
// and AVX-512 kernels give the same bits on every CPU that runs them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "cpu_features.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LATENT_X86_KERNELS 1
// The micro-kernels' loops over tile columns must be unrolled for the accumulators to live in
// registers; -O2 alone does not unroll them.
#define LATENT_UNROLL _Pragma("GCC unroll 16")
#else
#define LATENT_X86_KERNELS 0
#endif

namespace latent {
namespace kernels {

// A matrix operand: element (i, j) is data[i * row_stride + j * col_stride].
template <class Pointer> struct StridedMatrix {
    Pointer data;
    Index rows, cols, row_stride, col_stride;

    auto& at(Index i, Index j) const { return data[i * row_stride + j * col_stride]; }
    StridedMatrix transposed() const { return {data, cols, rows, col_stride, row_stride}; }
};
using ConstMatrixRef = StridedMatrix<const float*>;
using MatrixRef = StridedMatrix<float*>;

// The summation block along k (see the rule above); the other block sizes only tile the work.
constexpr Index kSgemmDepthBlock = 256;
constexpr Index kSgemmRowBlock = 192;     // rows of A packed at once: 192 x 256 floats = 192 KiB (L2)
constexpr Index kSgemmColBlock = 1536;    // columns of B packed at once: 1.5 MiB (L3)
constexpr Index kSgemmMaxTileRows = 32;   // the widest micro-kernel's mr and nr,
constexpr Index kSgemmMaxTileCols = 12;   // for sizing packing memory

constexpr Index round_up(Index value, Index multiple) { return (value + multiple - 1) / multiple * multiple; }

// Floats of packing memory sgemm() needs for an (m x k) * (k x n) product, whichever kernel runs.
inline Index sgemm_workspace_size(Index m, Index n, Index k) {
    const Index depth = std::min(k, kSgemmDepthBlock);
    const Index packed_a = round_up(std::min(m, kSgemmRowBlock), kSgemmMaxTileRows) * depth;
    const Index packed_b = round_up(std::min(n, kSgemmColBlock), kSgemmMaxTileCols) * depth;
    const Index transposed_a = round_up(std::min(n, kSgemmRowBlock), kSgemmMaxTileRows) * depth;
    const Index transposed_b = round_up(std::min(m, kSgemmColBlock), kSgemmMaxTileCols) * depth;
    return round_up(std::max(packed_a + packed_b, transposed_a + transposed_b), 16) + 32;  // + alignment
}

// The plain loops sgemm() must agree with exactly (same order, same fused multiply-adds); for
// tests, and as the definition of what the fast kernels compute.
inline void sgemm_reference(MatrixRef c, ConstMatrixRef a, ConstMatrixRef b, bool accumulate) {
    for (Index i = 0; i < c.rows; ++i)
        for (Index j = 0; j < c.cols; ++j) {
            float total = accumulate ? c.at(i, j) : 0.0f;
            for (Index block = 0; block < a.cols; block += kSgemmDepthBlock) {
                float partial = 0.0f;
                const Index end = std::min(a.cols, block + kSgemmDepthBlock);
                for (Index p = block; p < end; ++p) partial = std::fma(a.at(i, p), b.at(p, j), partial);
                total = (block == 0 && !accumulate) ? partial : total + partial;
            }
            c.at(i, j) = total;
        }
}

namespace detail {

// The area of the micro-tiles that cover an m x n result on the kernel of `isa` (see
// product_avx512 and product_avx2 for the tile shapes).
inline Index tile_area(Index m, Index n, Isa isa) {
    if (isa == Isa::Avx512) return round_up(m, 32) * std::min(round_up(n, 8), round_up(n, 12));
    return round_up(m, 16) * round_up(n, 6);
}

// Writes an mr x nr tile (column-major in `tile`) to the valid rows x cols of c: stored on the
// first depth block of a product that does not accumulate, added otherwise.
inline void write_tile(const float* tile, Index tile_rows, MatrixRef c, Index rows, Index cols, bool add) {
    for (Index j = 0; j < cols; ++j)
        for (Index i = 0; i < rows; ++i) {
            float& target = c.at(i, j);
            target = add ? target + tile[j * tile_rows + i] : tile[j * tile_rows + i];
        }
}

#if LATENT_X86_KERNELS

// One depth block of C += A_packed * B_packed for a rows x cols block of c, over micro-tiles of
// 32 x nr: 2 * nr accumulators of 16 floats, each column j of the tile updated as
// tile[:, j] = fma(a[:, p], b[p, j], tile[:, j]) for p in k order. nr is 12 (24 accumulators)
// or 8 where that pads C's columns less (32 filters: 4 tiles of 8, not 3 of 12 with 4 columns
// wasted; see product_avx512).
template <Index nr>
__attribute__((target("avx512f,fma"))) inline void macro_kernel_avx512(const float* packed_a, const float* packed_b,
                                                                       Index depth, MatrixRef c, Index rows,
                                                                       Index cols, bool add) {
    constexpr Index mr = 32;
    alignas(64) float tile[mr * nr];
    for (Index col = 0; col < cols; col += nr) {
        const float* b_panel = packed_b + col * depth;
        for (Index row = 0; row < rows; row += mr) {
            const float* a = packed_a + row * depth;
            const float* b = b_panel;
            __m512 acc[nr][2];
            LATENT_UNROLL
            for (Index j = 0; j < nr; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
            for (Index p = 0; p < depth; ++p, a += mr, b += nr) {
                const __m512 a_low = _mm512_load_ps(a), a_high = _mm512_load_ps(a + 16);
                LATENT_UNROLL
                for (Index j = 0; j < nr; ++j) {
                    const __m512 b_value = _mm512_set1_ps(b[j]);
                    acc[j][0] = _mm512_fmadd_ps(a_low, b_value, acc[j][0]);
                    acc[j][1] = _mm512_fmadd_ps(a_high, b_value, acc[j][1]);
                }
            }
            // Through memory, so the accumulators are only ever indexed by constants (a
            // variable index would keep them on the stack inside the loop above).
            LATENT_UNROLL
            for (Index j = 0; j < nr; ++j) {
                _mm512_store_ps(tile + j * mr, acc[j][0]);
                _mm512_store_ps(tile + j * mr + 16, acc[j][1]);
            }
            const Index valid_rows = std::min(mr, rows - row), valid_cols = std::min(nr, cols - col);
            MatrixRef target{&c.at(row, col), valid_rows, valid_cols, c.row_stride, c.col_stride};
            if (valid_rows < mr || c.row_stride != 1) {
                write_tile(tile, mr, target, valid_rows, valid_cols, add);
                continue;
            }
            for (Index j = 0; j < valid_cols; ++j) {  // whole columns in place
                float* column = &target.at(0, j);
                __m512 low = _mm512_load_ps(tile + j * mr), high = _mm512_load_ps(tile + j * mr + 16);
                if (add) {
                    low = _mm512_add_ps(_mm512_loadu_ps(column), low);
                    high = _mm512_add_ps(_mm512_loadu_ps(column + 16), high);
                }
                _mm512_storeu_ps(column, low);
                _mm512_storeu_ps(column + 16, high);
            }
        }
    }
}

// The same for AVX2: micro-tiles of 16 x 6, 12 accumulators of 8 floats.
__attribute__((target("avx2,fma"))) inline void macro_kernel_avx2(const float* packed_a, const float* packed_b,
                                                                  Index depth, MatrixRef c, Index rows, Index cols,
                                                                  bool add) {
    constexpr Index mr = 16, nr = 6;
    alignas(32) float tile[mr * nr];
    for (Index col = 0; col < cols; col += nr) {
        const float* b_panel = packed_b + col * depth;
        for (Index row = 0; row < rows; row += mr) {
            const float* a = packed_a + row * depth;
            const float* b = b_panel;
            __m256 acc[nr][2];
            LATENT_UNROLL
            for (Index j = 0; j < nr; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
            for (Index p = 0; p < depth; ++p, a += mr, b += nr) {
                const __m256 a_low = _mm256_load_ps(a), a_high = _mm256_load_ps(a + 8);
                LATENT_UNROLL
                for (Index j = 0; j < nr; ++j) {
                    const __m256 b_value = _mm256_broadcast_ss(b + j);
                    acc[j][0] = _mm256_fmadd_ps(a_low, b_value, acc[j][0]);
                    acc[j][1] = _mm256_fmadd_ps(a_high, b_value, acc[j][1]);
                }
            }
            // Through memory, so the accumulators are only ever indexed by constants (a
            // variable index would keep them on the stack inside the loop above).
            LATENT_UNROLL
            for (Index j = 0; j < nr; ++j) {
                _mm256_store_ps(tile + j * mr, acc[j][0]);
                _mm256_store_ps(tile + j * mr + 8, acc[j][1]);
            }
            const Index valid_rows = std::min(mr, rows - row), valid_cols = std::min(nr, cols - col);
            MatrixRef target{&c.at(row, col), valid_rows, valid_cols, c.row_stride, c.col_stride};
            if (valid_rows < mr || c.row_stride != 1) {
                write_tile(tile, mr, target, valid_rows, valid_cols, add);
                continue;
            }
            for (Index j = 0; j < valid_cols; ++j) {  // whole columns in place
                float* column = &target.at(0, j);
                __m256 low = _mm256_load_ps(tile + j * mr), high = _mm256_load_ps(tile + j * mr + 8);
                if (add) {
                    low = _mm256_add_ps(_mm256_loadu_ps(column), low);
                    high = _mm256_add_ps(_mm256_loadu_ps(column + 8), high);
                }
                _mm256_storeu_ps(column, low);
                _mm256_storeu_ps(column + 8, high);
            }
        }
    }
}

// A product with one column, c = A * b -- one sample through a Dense layer -- skips packing,
// whose cost would exceed the product's. A vector of rows at a time, each lane summing its row
// by the rule above (blocks of kSgemmDepthBlock from zero, one fused multiply-add per term, then
// added to the total); A's columns come from in-register transposes of its rows when A is
// row-major (a Dense layer's weights), from single loads when it is column-major, and from
// gathers otherwise. The rows past the last whole vector run in a vector with masked lanes.

// Columns p .. p + 15 of rows row .. row + valid_rows - 1 of a row-major A, as 16 vectors that
// each hold one column (rows in lanes, lanes past valid_rows zero): 16 loads and a 16 x 16
// transpose in registers (unpack pairs of rows, then 4 x 4 blocks within 128-bit lanes, then the
// lanes), much cheaper than 16 gathers. (The zero-masked forms: the plain ones start from an
// undefined vector, which g++ 12 warns about.)
__attribute__((target("avx512f,fma"))) __attribute__((always_inline)) inline void
load_transposed_16x16(ConstMatrixRef a, Index row, Index p, __m512 columns[16], Index valid_rows = 16) {
    __m512 rows[16], pairs[16], quads[16];
    for (int r = 0; r < 16; ++r) rows[r] = r < valid_rows ? _mm512_loadu_ps(&a.at(row + r, p)) : _mm512_setzero_ps();
    for (int i = 0; i < 8; ++i) {
        pairs[2 * i] = _mm512_maskz_unpacklo_ps(0xFFFF, rows[2 * i], rows[2 * i + 1]);
        pairs[2 * i + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, rows[2 * i], rows[2 * i + 1]);
    }
    // quads[4i + j], 128-bit lane l: rows 4i .. 4i + 3 of column 4l + j.
    for (int i = 0; i < 4; ++i) {
        quads[4 * i] = _mm512_shuffle_ps(pairs[4 * i], pairs[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        quads[4 * i + 1] = _mm512_shuffle_ps(pairs[4 * i], pairs[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        quads[4 * i + 2] = _mm512_shuffle_ps(pairs[4 * i + 1], pairs[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        quads[4 * i + 3] = _mm512_shuffle_ps(pairs[4 * i + 1], pairs[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    // Column 4l + j gathers lane l of quads[j], quads[4 + j], quads[8 + j], quads[12 + j].
    for (int j = 0; j < 4; ++j) {
        const __m512 low_first = _mm512_maskz_shuffle_f32x4(0xFFFF, quads[j], quads[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 high_first = _mm512_maskz_shuffle_f32x4(0xFFFF, quads[j], quads[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512 low_second = _mm512_maskz_shuffle_f32x4(0xFFFF, quads[8 + j], quads[12 + j], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 high_second = _mm512_maskz_shuffle_f32x4(0xFFFF, quads[8 + j], quads[12 + j], _MM_SHUFFLE(3, 2, 3, 2));
        columns[j] = _mm512_maskz_shuffle_f32x4(0xFFFF, low_first, low_second, _MM_SHUFFLE(2, 0, 2, 0));
        columns[4 + j] = _mm512_maskz_shuffle_f32x4(0xFFFF, low_first, low_second, _MM_SHUFFLE(3, 1, 3, 1));
        columns[8 + j] = _mm512_maskz_shuffle_f32x4(0xFFFF, high_first, high_second, _MM_SHUFFLE(2, 0, 2, 0));
        columns[12 + j] = _mm512_maskz_shuffle_f32x4(0xFFFF, high_first, high_second, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

// Rows row .. row + valid_rows - 1 (at most 16) of c = A * b, one row per lane. A group of fewer
// rows (the last one) runs the same vector code with the other lanes masked off: a scalar row
// would cost a whole vector's time, as its fused multiply-adds form one dependency chain.
__attribute__((target("avx512f,fma"))) __attribute__((always_inline)) inline void
column_group_avx512(MatrixRef c, ConstMatrixRef a, const float* b, bool accumulate, Index row, Index valid_rows) {
    // (The gathers are masked in every group: the unmasked one warns in g++ 12.)
    const __mmask16 lanes = static_cast<__mmask16>((1u << valid_rows) - 1);
    const __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32(static_cast<int>(a.row_stride)));
    __m512 total = _mm512_setzero_ps();
    for (Index block = 0; block < a.cols; block += kSgemmDepthBlock) {
        const Index end = std::min(a.cols, block + kSgemmDepthBlock);
        __m512 partial = _mm512_setzero_ps();
        Index p = block;
        if (a.col_stride == 1)
            for (; p + 16 <= end; p += 16) {
                __m512 columns[16];
                load_transposed_16x16(a, row, p, columns, valid_rows);
                LATENT_UNROLL
                for (int q = 0; q < 16; ++q) partial = _mm512_fmadd_ps(columns[q], _mm512_set1_ps(b[p + q]), partial);
            }
        for (; p < end; ++p) {  // the rest of the block, and a column-major A
            const float* column = &a.at(row, p);
            const __m512 values = a.row_stride == 1 ? _mm512_maskz_loadu_ps(lanes, column)
                                                    : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, offsets, column, 4);
            partial = _mm512_fmadd_ps(values, _mm512_set1_ps(b[p]), partial);
        }
        total = block > 0     ? _mm512_add_ps(total, partial)
                : accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, &c.at(row, 0)), partial)
                             : partial;
    }
    _mm512_mask_storeu_ps(&c.at(row, 0), lanes, total);
}

__attribute__((target("avx512f,fma"))) inline void column_product_avx512(MatrixRef c, ConstMatrixRef a,
                                                                         const float* b, bool accumulate) {
    constexpr Index lanes = 16;
    Index row = 0;
    for (; row + lanes <= c.rows; row += lanes) column_group_avx512(c, a, b, accumulate, row, lanes);
    if (row < c.rows) column_group_avx512(c, a, b, accumulate, row, c.rows - row);
}

// Columns p .. p + 7 of rows row .. row + valid_rows - 1 (at most 8) of a row-major A, as 8
// vectors that each hold one column (lanes past valid_rows zero): 128-bit loads that put rows
// r and r + 4 in the two halves, then a 4 x 4 transpose within each half -- several times faster
// than AVX2's gathers.
__attribute__((target("avx2,fma"))) __attribute__((always_inline)) inline void
load_transposed_8x8(ConstMatrixRef a, Index row, Index p, __m256 columns[8], Index valid_rows) {
    const auto quarter = [&](Index r, Index offset) __attribute__((target("avx2"))) {
        return r < valid_rows ? _mm_loadu_ps(&a.at(row + r, p + offset)) : _mm_setzero_ps();
    };
    __m256 rows[8];  // rows[4h + i]: columns p + 4h .. p + 4h + 3 of row i (low half) and row i + 4
    for (int h = 0; h < 2; ++h)
        for (int i = 0; i < 4; ++i)
            rows[4 * h + i] = _mm256_insertf128_ps(_mm256_castps128_ps256(quarter(i, 4 * h)), quarter(i + 4, 4 * h), 1);
    for (int h = 0; h < 2; ++h) {
        const __m256* four = rows + 4 * h;
        const __m256 low01 = _mm256_unpacklo_ps(four[0], four[1]), high01 = _mm256_unpackhi_ps(four[0], four[1]);
        const __m256 low23 = _mm256_unpacklo_ps(four[2], four[3]), high23 = _mm256_unpackhi_ps(four[2], four[3]);
        columns[4 * h] = _mm256_shuffle_ps(low01, low23, _MM_SHUFFLE(1, 0, 1, 0));
        columns[4 * h + 1] = _mm256_shuffle_ps(low01, low23, _MM_SHUFFLE(3, 2, 3, 2));
        columns[4 * h + 2] = _mm256_shuffle_ps(high01, high23, _MM_SHUFFLE(1, 0, 1, 0));
        columns[4 * h + 3] = _mm256_shuffle_ps(high01, high23, _MM_SHUFFLE(3, 2, 3, 2));
    }
}

// One depth step of 8 rows' sums (lanes past valid_rows stay zero): `partial` plus columns
// p .. p + 7 of the rows, times b[p .. p + 7], one fused multiply-add per column in p order.
__attribute__((target("avx2,fma"))) __attribute__((always_inline)) inline __m256
column_step_8x8(ConstMatrixRef a, const float* b, Index row, Index p, Index valid_rows, __m256 partial) {
    __m256 columns[8];
    load_transposed_8x8(a, row, p, columns, valid_rows);
    LATENT_UNROLL
    for (int q = 0; q < 8; ++q) partial = _mm256_fmadd_ps(columns[q], _mm256_broadcast_ss(b + p + q), partial);
    return partial;
}

// The same for column p alone: one masked load, or a gather when A is not column-major.
__attribute__((target("avx2,fma"))) __attribute__((always_inline)) inline __m256
column_step_one(ConstMatrixRef a, const float* b, Index row, Index p, __m256i lanes, __m256 partial) {
    const __m256i offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32(static_cast<int>(a.row_stride)));
    const float* column = &a.at(row, p);
    const __m256 values = a.row_stride == 1
                              ? _mm256_maskload_ps(column, lanes)
                              : _mm256_mask_i32gather_ps(_mm256_setzero_ps(), column, offsets, _mm256_castsi256_ps(lanes), 4);
    return _mm256_fmadd_ps(values, _mm256_broadcast_ss(b + p), partial);
}

// Rows row .. row + valid_rows - 1 (at most 16) of c = A * b: two vectors of 8 rows, each lane
// one row's sum. Two independent sums hide the latency of each one's chain of fused
// multiply-adds; a last group of fewer rows masks the lanes past the end.
__attribute__((target("avx2,fma"))) __attribute__((always_inline)) inline void
column_group_avx2(MatrixRef c, ConstMatrixRef a, const float* b, bool accumulate, Index row, Index valid_rows) {
    constexpr Index lanes = 8;
    const Index valid_low = std::min(valid_rows, lanes), valid_high = valid_rows - valid_low;
    const __m256i lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i low_lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid_low)), lane_index);
    const __m256i high_lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid_high)), lane_index);
    float* const low_target = &c.at(row, 0);
    float* const high_target = low_target + lanes * c.row_stride;
    __m256 total_low = _mm256_setzero_ps(), total_high = _mm256_setzero_ps();
    for (Index block = 0; block < a.cols; block += kSgemmDepthBlock) {
        const Index end = std::min(a.cols, block + kSgemmDepthBlock);
        __m256 low = _mm256_setzero_ps(), high = _mm256_setzero_ps();
        Index p = block;
        if (a.col_stride == 1)
            for (; p + 8 <= end; p += 8) {
                low = column_step_8x8(a, b, row, p, valid_low, low);
                if (valid_high > 0) high = column_step_8x8(a, b, row + lanes, p, valid_high, high);
            }
        for (; p < end; ++p) {  // the rest of the block, and a column-major A
            low = column_step_one(a, b, row, p, low_lanes, low);
            if (valid_high > 0) high = column_step_one(a, b, row + lanes, p, high_lanes, high);
        }
        if (block > 0) {
            total_low = _mm256_add_ps(total_low, low);
            total_high = _mm256_add_ps(total_high, high);
        } else if (accumulate) {
            total_low = _mm256_add_ps(_mm256_maskload_ps(low_target, low_lanes), low);
            if (valid_high > 0) total_high = _mm256_add_ps(_mm256_maskload_ps(high_target, high_lanes), high);
        } else {
            total_low = low;
            total_high = high;
        }
    }
    _mm256_maskstore_ps(low_target, low_lanes, total_low);
    if (valid_high > 0) _mm256_maskstore_ps(high_target, high_lanes, total_high);
}

__attribute__((target("avx2,fma"))) inline void column_product_avx2(MatrixRef c, ConstMatrixRef a, const float* b,
                                                                    bool accumulate) {
    constexpr Index rows_per_group = 16;
    Index row = 0;
    for (; row + rows_per_group <= c.rows; row += rows_per_group)
        column_group_avx2(c, a, b, accumulate, row, rows_per_group);
    if (row < c.rows) column_group_avx2(c, a, b, accumulate, row, c.rows - row);
}

// c = A * b for a column-major A (a frozen Dense layer's weights by input, W^T): `vectors`
// vectors of 8 rows at a time, so as many independent chains of fused multiply-adds hide each
// one's latency, with one plain load per vector and term (the row-major path is bound by its
// transposes instead). Each lane sums its row by the rule above, so the bits are those of the
// other paths, on AVX2 and AVX-512 CPUs alike: both run this kernel, which reaches the loads'
// limit with 8 lanes. C holds the running total between depth blocks (a float stored and loaded
// back is the same float). A group's last vector may be part-filled (`last_rows` of it valid):
// it alone is loaded and stored with a mask, as a masked load is slower than a plain one.
template <int vectors>
__attribute__((target("avx2,fma"))) __attribute__((always_inline)) inline void
column_major_group_avx2(MatrixRef c, ConstMatrixRef a, const float* b, bool accumulate, Index row, Index last_rows) {
    constexpr Index lanes = 8;
    constexpr int last = vectors - 1;
    const bool masked = last_rows < lanes;
    const __m256i last_lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(last_rows)),
                                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const auto load = [&](const float* from, int v) __attribute__((target("avx2"))) {
        return v == last && masked ? _mm256_maskload_ps(from, last_lanes) : _mm256_loadu_ps(from);
    };
    float* const target = &c.at(row, 0);
    for (Index block = 0; block < a.cols; block += kSgemmDepthBlock) {
        const Index end = std::min(a.cols, block + kSgemmDepthBlock);
        __m256 partial[vectors];
        for (int v = 0; v < vectors; ++v) partial[v] = _mm256_setzero_ps();
        for (Index p = block; p < end; ++p) {
            const float* column = &a.at(row, p);
            const __m256 factor = _mm256_broadcast_ss(b + p);
            LATENT_UNROLL
            for (int v = 0; v < vectors; ++v) partial[v] = _mm256_fmadd_ps(load(column + lanes * v, v), factor, partial[v]);
        }
        for (int v = 0; v < vectors; ++v) {
            float* const out = target + lanes * v;
            const __m256 total = block > 0 || accumulate ? _mm256_add_ps(load(out, v), partial[v]) : partial[v];
            if (v == last && masked) _mm256_maskstore_ps(out, last_lanes, total);
            else _mm256_storeu_ps(out, total);
        }
    }
}

__attribute__((target("avx2,fma"))) inline void column_major_product_avx2(MatrixRef c, ConstMatrixRef a,
                                                                          const float* b, bool accumulate) {
    constexpr Index lanes = 8, group = 8 * lanes;
    Index row = 0;
    for (; row + group <= c.rows; row += group) column_major_group_avx2<8>(c, a, b, accumulate, row, lanes);
    const Index rest = c.rows - row, last_rows = rest - (rest - 1) / lanes * lanes;
    switch ((rest + lanes - 1) / lanes) {
    case 1: return column_major_group_avx2<1>(c, a, b, accumulate, row, last_rows);
    case 2: return column_major_group_avx2<2>(c, a, b, accumulate, row, last_rows);
    case 3: return column_major_group_avx2<3>(c, a, b, accumulate, row, last_rows);
    case 4: return column_major_group_avx2<4>(c, a, b, accumulate, row, last_rows);
    case 5: return column_major_group_avx2<5>(c, a, b, accumulate, row, last_rows);
    case 6: return column_major_group_avx2<6>(c, a, b, accumulate, row, last_rows);
    case 7: return column_major_group_avx2<7>(c, a, b, accumulate, row, last_rows);
    default: return;
    }
}

// Columns p .. p + 15 of rows row .. row + valid_rows - 1 of a row-major source, transposed into
// out[q * out_stride + i] = source(row + i, p + q) for i < 16 (zeros past valid_rows). Not
// always_inline: pack_panels, which calls it, is compiled for no particular family.
__attribute__((target("avx512f,fma"))) inline void
store_transposed_16x16(ConstMatrixRef source, Index row, Index p, Index valid_rows, float* out, Index out_stride) {
    __m512 columns[16];
    load_transposed_16x16(source, row, p, columns, valid_rows);
    for (int q = 0; q < 16; ++q) _mm512_storeu_ps(out + q * out_stride, columns[q]);
}

// The same for 8 x 8.
__attribute__((target("avx2,fma"))) inline void
store_transposed_8x8(ConstMatrixRef source, Index row, Index p, Index valid_rows, float* out, Index out_stride) {
    __m256 columns[8];
    load_transposed_8x8(source, row, p, columns, valid_rows);
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(out + q * out_stride, columns[q]);
}

// Packs a block of `source` (rows x depth, read as source.at(i, p)) into panels of `tile` rows:
// panel r holds, for each p, the `tile` values source(r*tile + i, p); rows past the end are
// zeros. Both operands pack this way: A as it is, B transposed (its columns are the rows).
// Each storage order gets a loop that reads memory in order: unit-stride copies for the values
// of one p, or, when a row's values are contiguous along p, a transpose -- of vector x vector
// blocks in registers (the transposes above: 16 x 16 for AVX-512's tiles of 32, 8 x 8 for the
// others) where the tile is a whole number of vectors, else one value at a time. A copy either
// way, so the packing changes no result.
// Inlined into each kernel family's product below, so it is compiled for that family.
template <Index tile, Isa isa>
__attribute__((always_inline)) inline void pack_panels(ConstMatrixRef source, float* packed) {
    constexpr Index lanes = isa == Isa::Avx512 && tile % 16 == 0 ? 16 : 8;
    const Index rows = source.rows, depth = source.cols;
    for (Index panel = 0; panel < rows; panel += tile, packed += tile * depth) {
        const Index valid = std::min(tile, rows - panel);
        if (valid < tile)
            for (Index p = 0; p < depth; ++p)
                for (Index i = valid; i < tile; ++i) packed[p * tile + i] = 0.0f;
        if (source.row_stride == 1 && valid == tile) {  // a fixed-size copy: a few vector moves
            for (Index p = 0; p < depth; ++p) std::memcpy(packed + p * tile, &source.at(panel, p), sizeof(float) * tile);
        } else if (source.row_stride == 1) {
            for (Index p = 0; p < depth; ++p) std::memcpy(packed + p * tile, &source.at(panel, p), sizeof(float) * valid);
        } else if (source.col_stride == 1) {
            Index p = 0;
            if constexpr (tile % lanes == 0)
                for (; p + lanes <= depth; p += lanes)
                    for (Index group = 0; group < valid; group += lanes) {
                        float* const out = packed + p * tile + group;
                        const Index group_rows = std::min(lanes, valid - group);
                        if constexpr (lanes == 16)
                            store_transposed_16x16(source, panel + group, p, group_rows, out, tile);
                        else
                            store_transposed_8x8(source, panel + group, p, group_rows, out, tile);
                    }
            for (Index i = 0; i < valid; ++i) {
                const float* row = &source.at(panel + i, 0);
                for (Index q = p; q < depth; ++q) packed[q * tile + i] = row[q];
            }
        } else {
            for (Index p = 0; p < depth; ++p)
                for (Index i = 0; i < valid; ++i) packed[p * tile + i] = source.at(panel + i, p);
        }
    }
}

// C = A * B (or C += A * B) over blocks: for each block of columns and each depth block, B's
// block is packed once; for each block of rows, A's block is packed and the macro-kernel runs.
using MacroKernel = void (*)(const float*, const float*, Index, MatrixRef, Index, Index, bool);
template <Index tile_rows, Index tile_cols, MacroKernel macro_kernel, Isa isa>
__attribute__((always_inline)) inline void blocked_product(MatrixRef c, ConstMatrixRef a, ConstMatrixRef b,
                                                           float* packed_a, float* packed_b, bool accumulate) {
    const Index m = c.rows, n = c.cols, k = a.cols;
    for (Index col = 0; col < n; col += kSgemmColBlock) {
        const Index cols = std::min(kSgemmColBlock, n - col);
        for (Index depth_start = 0; depth_start < k; depth_start += kSgemmDepthBlock) {
            const Index depth = std::min(kSgemmDepthBlock, k - depth_start);
            const ConstMatrixRef b_block{&b.at(depth_start, col), depth, cols, b.row_stride, b.col_stride};
            pack_panels<tile_cols, isa>(b_block.transposed(), packed_b);
            const bool add = accumulate || depth_start > 0;
            for (Index row = 0; row < m; row += kSgemmRowBlock) {
                const Index rows = std::min(kSgemmRowBlock, m - row);
                pack_panels<tile_rows, isa>({&a.at(row, depth_start), rows, depth, a.row_stride, a.col_stride}, packed_a);
                macro_kernel(packed_a, packed_b, depth, {&c.at(row, col), rows, cols, c.row_stride, c.col_stride},
                             rows, cols, add);
            }
        }
    }
}

// Tiles of 32 x 8 where they pad C's columns less than 32 x 12 do (the tile shape changes no
// result: each element's sums are the rule's).
__attribute__((target("avx512f,fma"))) inline void product_avx512(MatrixRef c, ConstMatrixRef a, ConstMatrixRef b,
                                                                  float* packed_a, float* packed_b, bool accumulate) {
    if (round_up(c.cols, 8) < round_up(c.cols, 12))
        return blocked_product<32, 8, macro_kernel_avx512<8>, Isa::Avx512>(c, a, b, packed_a, packed_b, accumulate);
    blocked_product<32, 12, macro_kernel_avx512<12>, Isa::Avx512>(c, a, b, packed_a, packed_b, accumulate);
}

__attribute__((target("avx2,fma"))) inline void product_avx2(MatrixRef c, ConstMatrixRef a, ConstMatrixRef b,
                                                             float* packed_a, float* packed_b, bool accumulate) {
    blocked_product<16, 6, macro_kernel_avx2, Isa::Avx2>(c, a, b, packed_a, packed_b, accumulate);
}

#endif  // LATENT_X86_KERNELS

}  // namespace detail

// True when sgemm() has a kernel for this process's instruction set (see active_isa()).
inline bool sgemm_available(Isa isa = active_isa()) { return isa == Isa::Avx2 || isa == Isa::Avx512; }

// c = a * b, or c += a * b with `accumulate`, on the kernel of `isa` (sgemm_available(isa) must
// hold). `workspace` holds at least sgemm_workspace_size(m, n, k) floats; it is overwritten.
inline void sgemm(MatrixRef c, ConstMatrixRef a, ConstMatrixRef b, float* workspace, Index workspace_size,
                  bool accumulate, Isa isa = active_isa()) {
    if (a.rows != c.rows || b.cols != c.cols || a.cols != b.rows)
        throw ShapeError("sgemm: (" + std::to_string(a.rows) + "x" + std::to_string(a.cols) + ") * (" +
                         std::to_string(b.rows) + "x" + std::to_string(b.cols) + ") into (" +
                         std::to_string(c.rows) + "x" + std::to_string(c.cols) + ")");
    if (workspace_size < sgemm_workspace_size(c.rows, c.cols, a.cols))
        throw Error("sgemm: workspace of " + std::to_string(workspace_size) + " floats is too small (needs " +
                    std::to_string(sgemm_workspace_size(c.rows, c.cols, a.cols)) + ")");
    // The micro-kernels write whole columns of a tile; a row-major C is computed as the
    // column-major C^T = B^T A^T (the same sums in the same order) unless its tiles would then
    // cover at least twice the area (a 32 x 9 weight gradient as 9 x 32: 9 of a tile's 32 rows
    // used). Tiles of a row-major C are written one element at a time, which costs about as
    // much as a short depth block's multiply-adds, so a small saving of padding would not pay.
    if (c.row_stride != 1 && c.col_stride == 1 &&
        detail::tile_area(c.cols, c.rows, isa) < 2 * detail::tile_area(c.rows, c.cols, isa)) {
        c = c.transposed();
        const ConstMatrixRef old_a = a;
        a = b.transposed();
        b = old_a.transposed();
    }
    const Index m = c.rows, n = c.cols, k = a.cols;
    if (m == 0 || n == 0) return;
    float* packed_a = reinterpret_cast<float*>(round_up(reinterpret_cast<std::uintptr_t>(workspace), 64));
    float* packed_b = packed_a + round_up(round_up(std::min(m, kSgemmRowBlock), kSgemmMaxTileRows) *
                                              std::min(k, kSgemmDepthBlock), 16);
    if (k == 0) {
        if (!accumulate)
            for (Index j = 0; j < n; ++j)
                for (Index i = 0; i < m; ++i) c.at(i, j) = 0.0f;
        return;
    }
#if LATENT_X86_KERNELS
    // One column, contiguous: the unpacked paths -- plain loads for a column-major A (on AVX2
    // and AVX-512 alike), else transposes or gathers (gather offsets must fit in 32 bits).
    if (n == 1 && c.row_stride == 1 && b.row_stride == 1 && a.row_stride == 1 && sgemm_available(isa))
        return detail::column_major_product_avx2(c, a, b.data, accumulate);
    if (n == 1 && c.row_stride == 1 && b.row_stride == 1 && a.row_stride <= (Index{1} << 26)) {
        if (isa == Isa::Avx512) return detail::column_product_avx512(c, a, b.data, accumulate);
        if (isa == Isa::Avx2) return detail::column_product_avx2(c, a, b.data, accumulate);
    }
    if (isa == Isa::Avx512) return detail::product_avx512(c, a, b, packed_a, packed_b, accumulate);
    if (isa == Isa::Avx2) return detail::product_avx2(c, a, b, packed_a, packed_b, accumulate);
#endif
    (void)packed_b;
    throw Error("sgemm: no vector kernel for instruction set '" + std::string(isa_name(isa)) + "'");
}

}  // namespace kernels
}  // namespace latent
