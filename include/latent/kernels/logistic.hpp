// The logistic function y = 1 / (1 + exp(-x)) on float arrays, with the vector units the CPU has.
//
// Every path computes each element with the same IEEE operations in the same order: those of
// Eigen's SSE2 exp (Cephes' polynomial, with a multiply and a separate add where a fused
// multiply-add would round once) followed by 1 / (1 + e). So the SSE2 path of a plain x86-64
// build, the AVX2 and the AVX-512 kernels (4, 8 and 16 lanes) give the same bits as each other
// and as Eigen's vectorised (1 + exp(-x)).inverse() in such a build -- on every x86-64 CPU.
// NaN stays NaN; exp's argument is clamped to +-88.723 as Eigen's is, so y is 0 only for
// x = -infinity and 1 for x above about 17.
#pragma once

#include <cstring>

#include <Eigen/Core>

#include "../core/tensor.hpp"
#include "cpu_features.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__)
#include <immintrin.h>
#define LATENT_X86_LOGISTIC 1
#else
#define LATENT_X86_LOGISTIC 0
#endif

namespace latent {
namespace kernels {

#if LATENT_X86_LOGISTIC
namespace detail {

// The constants of Eigen's pexp_float (GenericPacketMathFunctions.h), in its names.
struct ExpConstants {
    static constexpr float exp_hi = 88.723f, exp_lo = -88.723f, log2e = 1.44269504088896341f;
    static constexpr float c1 = -0.693359375f, c2 = 2.12194440e-4f;
    static constexpr float p0 = 1.9875691500E-4f, p1 = 1.3981999507E-3f, p2 = 8.3334519073E-3f;
    static constexpr float p3 = 4.1665795894E-2f, p4 = 1.6666665459E-1f, p5 = 5.0000001201E-1f;
};

// A product the compiler must round before it is added to anything: with -ffp-contract=fast
// (GCC's default) it would otherwise fuse a * b + c into one FMA where the CPU has one.
__attribute__((always_inline)) inline __m128 rounded(__m128 product) {
    asm("" : "+x"(product));
    return product;
}
__attribute__((always_inline, target("avx2"))) inline __m256 rounded(__m256 product) {
    asm("" : "+x"(product));
    return product;
}
__attribute__((always_inline, target("avx512f"))) inline __m512 rounded(__m512 product) {
    asm("" : "+v"(product));
    return product;
}

// One vector of each width, written out three times: intrinsics of a wider set compile only
// inside a function with that target, and a generic template cannot carry one. The three are
// the same sequence of operations, those of
// Eigen's pexp_float with pmadd = multiply, then add, and its pldexp_generic (2^m in four
// factors), then 1 / (1 + e). min/max take the constant first: minps and maxps return their
// second operand when either is NaN, so NaN passes through.
inline __m128 logistic4(__m128 x) {
    using C = ExpConstants;
    const __m128 minus_x = _mm_xor_ps(x, _mm_set1_ps(-0.0f));
    const __m128 t = _mm_max_ps(_mm_set1_ps(C::exp_lo), _mm_min_ps(_mm_set1_ps(C::exp_hi), minus_x));
    const __m128 scaled = _mm_add_ps(rounded(_mm_mul_ps(t, _mm_set1_ps(C::log2e))), _mm_set1_ps(0.5f));
    // floor (SSE2 has none), exact below 2^31 in magnitude: truncate, step down where that rounded up
    const __m128 truncated = _mm_cvtepi32_ps(_mm_cvttps_epi32(scaled));
    const __m128 m = _mm_sub_ps(truncated, _mm_and_ps(_mm_cmpgt_ps(truncated, scaled), _mm_set1_ps(1.0f)));
    __m128 r = _mm_add_ps(rounded(_mm_mul_ps(m, _mm_set1_ps(C::c1))), t);
    r = _mm_add_ps(rounded(_mm_mul_ps(m, _mm_set1_ps(C::c2))), r);
    const __m128 r2 = rounded(_mm_mul_ps(r, r)), r3 = rounded(_mm_mul_ps(r2, r));
    __m128 y = _mm_add_ps(rounded(_mm_mul_ps(_mm_set1_ps(C::p0), r)), _mm_set1_ps(C::p1));
    __m128 y1 = _mm_add_ps(rounded(_mm_mul_ps(_mm_set1_ps(C::p3), r)), _mm_set1_ps(C::p4));
    const __m128 y2 = _mm_add_ps(r, _mm_set1_ps(1.0f));
    y = _mm_add_ps(rounded(_mm_mul_ps(y, r)), _mm_set1_ps(C::p2));
    y1 = _mm_add_ps(rounded(_mm_mul_ps(y1, r)), _mm_set1_ps(C::p5));
    y = _mm_add_ps(rounded(_mm_mul_ps(y, r3)), y1);
    y = _mm_add_ps(rounded(_mm_mul_ps(y, r2)), y2);
    const __m128i e = _mm_cvttps_epi32(_mm_max_ps(_mm_set1_ps(-278.0f), _mm_min_ps(_mm_set1_ps(278.0f), m)));
    const __m128i b = _mm_srai_epi32(e, 2);
    const __m128i bias = _mm_set1_epi32(127);
    const __m128 two_b = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(b, bias), 23));
    const __m128i rest = _mm_sub_epi32(_mm_sub_epi32(_mm_sub_epi32(e, b), b), b);
    const __m128 two_rest = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(rest, bias), 23));
    __m128 exp_minus_x = _mm_mul_ps(_mm_mul_ps(_mm_mul_ps(_mm_mul_ps(y, two_b), two_b), two_b), two_rest);
    exp_minus_x = _mm_max_ps(minus_x, exp_minus_x);  // exp(+inf) = +inf, exp(NaN) = NaN
    const __m128 one = _mm_set1_ps(1.0f);
    return _mm_div_ps(one, _mm_add_ps(one, exp_minus_x));
}

__attribute__((target("avx2"))) inline __m256 logistic8(__m256 x) {
    using C = ExpConstants;
    const __m256 minus_x = _mm256_xor_ps(x, _mm256_set1_ps(-0.0f));
    const __m256 t = _mm256_max_ps(_mm256_set1_ps(C::exp_lo), _mm256_min_ps(_mm256_set1_ps(C::exp_hi), minus_x));
    const __m256 m = _mm256_floor_ps(_mm256_add_ps(rounded(_mm256_mul_ps(t, _mm256_set1_ps(C::log2e))), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_add_ps(rounded(_mm256_mul_ps(m, _mm256_set1_ps(C::c1))), t);
    r = _mm256_add_ps(rounded(_mm256_mul_ps(m, _mm256_set1_ps(C::c2))), r);
    const __m256 r2 = rounded(_mm256_mul_ps(r, r)), r3 = rounded(_mm256_mul_ps(r2, r));
    __m256 y = _mm256_add_ps(rounded(_mm256_mul_ps(_mm256_set1_ps(C::p0), r)), _mm256_set1_ps(C::p1));
    __m256 y1 = _mm256_add_ps(rounded(_mm256_mul_ps(_mm256_set1_ps(C::p3), r)), _mm256_set1_ps(C::p4));
    const __m256 y2 = _mm256_add_ps(r, _mm256_set1_ps(1.0f));
    y = _mm256_add_ps(rounded(_mm256_mul_ps(y, r)), _mm256_set1_ps(C::p2));
    y1 = _mm256_add_ps(rounded(_mm256_mul_ps(y1, r)), _mm256_set1_ps(C::p5));
    y = _mm256_add_ps(rounded(_mm256_mul_ps(y, r3)), y1);
    y = _mm256_add_ps(rounded(_mm256_mul_ps(y, r2)), y2);
    const __m256i e = _mm256_cvttps_epi32(_mm256_max_ps(_mm256_set1_ps(-278.0f), _mm256_min_ps(_mm256_set1_ps(278.0f), m)));
    const __m256i b = _mm256_srai_epi32(e, 2);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 two_b = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, bias), 23));
    const __m256i rest = _mm256_sub_epi32(_mm256_sub_epi32(_mm256_sub_epi32(e, b), b), b);
    const __m256 two_rest = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(rest, bias), 23));
    __m256 exp_minus_x = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(y, two_b), two_b), two_b), two_rest);
    exp_minus_x = _mm256_max_ps(minus_x, exp_minus_x);
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp_minus_x));
}

__attribute__((target("avx512f"))) inline __m512 logistic16(__m512 x) {
    using C = ExpConstants;
    // g++ 12 warns that the unmasked forms read an uninitialised vector; all lanes are kept.
    const __mmask16 all = 0xffff;
    const __m512 minus_x = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
    const __m512 t = _mm512_maskz_max_ps(all, _mm512_set1_ps(C::exp_lo), _mm512_maskz_min_ps(all, _mm512_set1_ps(C::exp_hi), minus_x));
    const __m512 m = _mm512_maskz_roundscale_ps(all, _mm512_add_ps(rounded(_mm512_mul_ps(t, _mm512_set1_ps(C::log2e))), _mm512_set1_ps(0.5f)),
                                          _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_add_ps(rounded(_mm512_mul_ps(m, _mm512_set1_ps(C::c1))), t);
    r = _mm512_add_ps(rounded(_mm512_mul_ps(m, _mm512_set1_ps(C::c2))), r);
    const __m512 r2 = rounded(_mm512_mul_ps(r, r)), r3 = rounded(_mm512_mul_ps(r2, r));
    __m512 y = _mm512_add_ps(rounded(_mm512_mul_ps(_mm512_set1_ps(C::p0), r)), _mm512_set1_ps(C::p1));
    __m512 y1 = _mm512_add_ps(rounded(_mm512_mul_ps(_mm512_set1_ps(C::p3), r)), _mm512_set1_ps(C::p4));
    const __m512 y2 = _mm512_add_ps(r, _mm512_set1_ps(1.0f));
    y = _mm512_add_ps(rounded(_mm512_mul_ps(y, r)), _mm512_set1_ps(C::p2));
    y1 = _mm512_add_ps(rounded(_mm512_mul_ps(y1, r)), _mm512_set1_ps(C::p5));
    y = _mm512_add_ps(rounded(_mm512_mul_ps(y, r3)), y1);
    y = _mm512_add_ps(rounded(_mm512_mul_ps(y, r2)), y2);
    const __m512i e = _mm512_maskz_cvttps_epi32(all, _mm512_maskz_max_ps(all, _mm512_set1_ps(-278.0f), _mm512_maskz_min_ps(all, _mm512_set1_ps(278.0f), m)));
    const __m512i b = _mm512_maskz_srai_epi32(all, e, 2);
    const __m512i bias = _mm512_set1_epi32(127);
    const __m512 two_b = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_add_epi32(b, bias), 23));
    const __m512i rest = _mm512_sub_epi32(_mm512_sub_epi32(_mm512_sub_epi32(e, b), b), b);
    const __m512 two_rest = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_add_epi32(rest, bias), 23));
    __m512 exp_minus_x = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(y, two_b), two_b), two_b), two_rest);
    exp_minus_x = _mm512_maskz_max_ps(all, minus_x, exp_minus_x);
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp_minus_x));
}

inline void logistic_sse2(const float* x, float* y, Index count) {
    Index i = 0;
    for (; i + 4 <= count; i += 4) _mm_storeu_ps(y + i, logistic4(_mm_loadu_ps(x + i)));
    if (i == count) return;
    float tail[4] = {0, 0, 0, 0};
    std::memcpy(tail, x + i, static_cast<std::size_t>(count - i) * sizeof(float));
    _mm_storeu_ps(tail, logistic4(_mm_loadu_ps(tail)));
    std::memcpy(y + i, tail, static_cast<std::size_t>(count - i) * sizeof(float));
}

__attribute__((target("avx2"))) inline void logistic_avx2(const float* x, float* y, Index count) {
    Index i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, logistic8(_mm256_loadu_ps(x + i)));
    if (i == count) return;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count - i)), lanes);
    _mm256_maskstore_ps(y + i, mask, logistic8(_mm256_maskload_ps(x + i, mask)));
}

__attribute__((target("avx512f"))) inline void logistic_avx512(const float* x, float* y, Index count) {
    Index i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, logistic16(_mm512_loadu_ps(x + i)));
    if (i == count) return;
    const __mmask16 mask = static_cast<__mmask16>((1u << (count - i)) - 1u);
    _mm512_mask_storeu_ps(y + i, mask, logistic16(_mm512_maskz_loadu_ps(mask, x + i)));
}

}  // namespace detail

// y[i] = 1 / (1 + exp(-x[i])) for i in [0, count) on the given path (x may equal y);
// Isa::Portable is the SSE2 path.
inline void logistic(Isa isa, const float* x, float* y, Index count) {
    if (isa == Isa::Avx512) return detail::logistic_avx512(x, y, count);
    if (isa == Isa::Avx2) return detail::logistic_avx2(x, y, count);
    detail::logistic_sse2(x, y, count);
}
#else
// Elsewhere, Eigen's expression of the same function.
inline void logistic(Isa, const float* x, float* y, Index count) {
    const Eigen::Map<const Eigen::ArrayXf> in(x, count);
    Eigen::Map<Eigen::ArrayXf>(y, count) = (1.0f + (-in).exp()).inverse();
}
#endif

}  // namespace kernels
}  // namespace latent
