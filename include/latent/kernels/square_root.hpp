// Square roots of float and double arrays, correctly rounded (IEEE 754's sqrt), with the vector
// units the CPU has.
//
// A kernel of its own because neither obvious way is both fast and the same on every CPU:
// std::sqrt in a run_vectorized loop stays a scalar call (it may set errno, and GCC decides that
// per translation unit, not per function), and Eigen's float sqrt under its default
// EIGEN_FAST_MATH is the CPU's reciprocal-square-root estimate refined by one Newton step, whose
// bits differ between CPU models with the same instruction set. The sqrtps and sqrtpd
// instructions round correctly on every CPU, so every path here gives std::sqrt's bits.
#pragma once

#include <cmath>
#include <type_traits>

#include "../core/tensor.hpp"
#include "cpu_features.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__)
#include <immintrin.h>
#define LATENT_X86_SQUARE_ROOT 1
#else
#define LATENT_X86_SQUARE_ROOT 0
#endif

namespace latent {
namespace kernels {
namespace detail {

// The elements a vector loop leaves over, one at a time (std::sqrt is the same instruction).
template <class T> void square_roots_scalar(const T* in, T* out, Index begin, Index count) {
    for (Index i = begin; i < count; ++i) out[i] = std::sqrt(in[i]);
}

#if LATENT_X86_SQUARE_ROOT
// One loop per width and type: intrinsics of a wider set compile only inside a function with
// that target.
// AVX-512 takes the masked form with every lane on: the plain _mm512_sqrt_ps trips GCC 12's
// -Wmaybe-uninitialized inside its own header.
__attribute__((target("avx512f"))) inline void square_roots_avx512(const float* in, float* out, Index count) {
    Index i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512 x = _mm512_loadu_ps(in + i);
        _mm512_storeu_ps(out + i, _mm512_mask_sqrt_ps(x, 0xFFFF, x));
    }
    square_roots_scalar(in, out, i, count);
}
__attribute__((target("avx512f"))) inline void square_roots_avx512(const double* in, double* out, Index count) {
    Index i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m512d x = _mm512_loadu_pd(in + i);
        _mm512_storeu_pd(out + i, _mm512_mask_sqrt_pd(x, 0xFF, x));
    }
    square_roots_scalar(in, out, i, count);
}
__attribute__((target("avx2"))) inline void square_roots_avx2(const float* in, float* out, Index count) {
    Index i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, _mm256_sqrt_ps(_mm256_loadu_ps(in + i)));
    square_roots_scalar(in, out, i, count);
}
__attribute__((target("avx2"))) inline void square_roots_avx2(const double* in, double* out, Index count) {
    Index i = 0;
    for (; i + 4 <= count; i += 4) _mm256_storeu_pd(out + i, _mm256_sqrt_pd(_mm256_loadu_pd(in + i)));
    square_roots_scalar(in, out, i, count);
}
inline void square_roots_sse2(const float* in, float* out, Index count) {
    Index i = 0;
    for (; i + 4 <= count; i += 4) _mm_storeu_ps(out + i, _mm_sqrt_ps(_mm_loadu_ps(in + i)));
    square_roots_scalar(in, out, i, count);
}
inline void square_roots_sse2(const double* in, double* out, Index count) {
    Index i = 0;
    for (; i + 2 <= count; i += 2) _mm_storeu_pd(out + i, _mm_sqrt_pd(_mm_loadu_pd(in + i)));
    square_roots_scalar(in, out, i, count);
}
#endif

}  // namespace detail

// out[i] = sqrt(in[i]) for i < count, with the vector unit of `isa` (default: active_isa());
// in and out may be the same array. NaN and negative inputs give NaN, as std::sqrt does.
template <class T> void square_roots(Isa isa, const T* in, T* out, Index count) {
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "float or double");
#if LATENT_X86_SQUARE_ROOT
    switch (isa) {
        case Isa::Avx512: return detail::square_roots_avx512(in, out, count);
        case Isa::Avx2: return detail::square_roots_avx2(in, out, count);
        case Isa::Portable: return detail::square_roots_sse2(in, out, count);
    }
#endif
    static_cast<void>(isa);
    detail::square_roots_scalar(in, out, 0, count);
}
template <class T> void square_roots(const T* in, T* out, Index count) { square_roots(active_isa(), in, out, count); }

}  // namespace kernels
}  // namespace latent
