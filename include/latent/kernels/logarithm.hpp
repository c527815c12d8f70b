// The natural logarithm of a float as plain scalar code that the compiler vectorizes, so that
// run_vectorized (cpu_features.hpp) compiles it for the CPU's widest vector unit.
//
// It is the algorithm of Eigen's vectorised log for float (plog_float: Cephes' polynomial on the
// mantissa in [sqrt(1/2), sqrt(2)), plus the exponent times ln 2), operation for operation and
// unfused, so every path -- 4, 8 or 16 lanes -- gives the bits of a plain x86-64 build's Eigen
// code for every input. log(0) = -inf, log(+inf) = +inf, NaN and negative numbers give NaN,
// denormals are taken as the smallest normal number (as Eigen does).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "../core/tensor.hpp"
#include "bits.hpp"
#include "cpu_features.hpp"

namespace latent {
namespace kernels {

// Every choice is made on integer bits (bits.hpp); positive floats order as their bits do.
__attribute__((always_inline)) inline float logarithm(float x) {
    constexpr std::uint32_t smallest_normal = 0x00800000u, infinity = 0x7f800000u, sign = 0x80000000u;
    constexpr std::uint32_t minus_infinity = 0xff800000u, not_a_number = 0x7fc00000u;
    constexpr float ln2 = 0.693147180559945309f;
    constexpr float p0 = 7.0376836292E-2f, p1 = -1.1514610310E-1f, p2 = 1.1676998740E-1f;
    constexpr float p3 = -1.2420140846E-1f, p4 = +1.4249322787E-1f, p5 = -1.6668057665E-1f;
    constexpr float p6 = +2.0000714765E-1f, p7 = -2.4999993993E-1f, p8 = +3.3333331174E-1f;
    const std::uint32_t bits = detail::bits_of(x);

    // x = m * 2^e with m in [0.5, 1): the exponent field less 126, and the mantissa under the
    // exponent of 0.5 (x below the smallest normal number taken as that number).
    const std::uint32_t clamped = bits < smallest_normal ? smallest_normal : bits;
    const std::uint32_t mantissa_bits = (clamped & 0x807fffffu) | 0x3f000000u;
    const float m = detail::float_of(mantissa_bits);

    // [0.5, 1) -> [sqrt(1/2), sqrt(2)), less 1: r = 2m - 1 (and e - 1) below sqrt(1/2), else m - 1
    // (both computed, one kept: a computation under a condition is a branch again)
    const bool low = mantissa_bits < detail::bits_of(0.707106781186547524f);
    const float exponent = static_cast<float>(static_cast<std::int32_t>(clamped >> 23) - 126 - (low ? 1 : 0));
    const float r = detail::select(low, (m - 1.0f) + m, m - 1.0f);

    // log(1 + r) = r - r^2/2 + r^3 P(r), P of degree 8 in three parts (Eigen's order)
    const float r2 = r * r, r3 = r2 * r;
    float y = p0 * r + p1, y1 = p3 * r + p4, y2 = p6 * r + p7;
    y = y * r + p2;
    y1 = y1 * r + p5;
    y2 = y2 * r + p8;
    y = y * r3 + y1;
    y = y * r3 + y2;
    y = y * r3;
    y = -0.5f * r2 + y;
    const float result = exponent * ln2 + (r + y);

    // log(+inf) = +inf, log(+-0) = -inf, NaN for NaN and negative numbers
    const std::uint32_t magnitude = bits & ~sign;
    const float finite = detail::select(bits == infinity, detail::float_of(infinity), result);
    const bool undefined = (magnitude > infinity) | (bits > sign);
    const float defined = detail::select(undefined, detail::float_of(not_a_number), finite);
    return detail::select(magnitude == 0, detail::float_of(minus_infinity), defined);
}

// y[i] = log(x[i]) for i < count, on the vector unit of `isa` (x and y may be the same array).
inline void logarithm(Isa isa, const float* x, float* y, Index count) {
    run_vectorized(isa, [&]() __attribute__((always_inline)) {
        for (Index i = 0; i < count; ++i) y[i] = logarithm(x[i]);
    });
}

}  // namespace kernels
}  // namespace latent
