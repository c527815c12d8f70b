// Branch-free choices for run_vectorized loops (cpu_features.hpp): a floating-point comparison
// may trap, so the compiler keeps a branch around it, and a loop with branches does not
// vectorize; comparisons and selects on the integer bits compile to vector compares and blends.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace latent {
namespace kernels {
namespace detail {

__attribute__((always_inline)) inline std::uint32_t bits_of(float x) {
    std::uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    return bits;
}
__attribute__((always_inline)) inline std::uint64_t bits_of(double x) {
    std::uint64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    return bits;
}
__attribute__((always_inline)) inline float float_of(std::uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}
__attribute__((always_inline)) inline double float_of(std::uint64_t bits) {
    double x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

// `condition ? a : b` by masking bits.
template <class T> __attribute__((always_inline)) inline T select(bool condition, T a, T b) {
    using Bits = decltype(bits_of(a));
    const Bits mask = Bits(0) - static_cast<Bits>(condition);
    return float_of(static_cast<Bits>((bits_of(a) & mask) | (bits_of(b) & ~mask)));
}

// x > 0, false for NaN as the comparison is: the bits, read as a signed integer, lie in
// (0, bits of +infinity].
template <class T> __attribute__((always_inline)) inline bool is_positive(T x) {
    const auto bits = bits_of(x);
    using Signed = std::make_signed_t<decltype(bits)>;
    const Signed value = static_cast<Signed>(bits);
    return value > 0 && value <= static_cast<Signed>(bits_of(std::numeric_limits<T>::infinity()));
}

}  // namespace detail
}  // namespace kernels
}  // namespace latent
