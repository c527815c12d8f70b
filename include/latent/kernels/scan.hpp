// Checks over a whole array -- is every value finite, in range -- at the vector unit's speed.
//
// The scan runs to the end instead of stopping at the first failure: a loop with an early exit
// stays scalar (as Eigen's all() and allFinite() do), and a loop without one runs 16 floats
// wide through run_vectorized. A caller that needs the failing element searches for it after a
// failed check, which is the rare case.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../core/tensor.hpp"
#include "cpu_features.hpp"

namespace latent {
namespace kernels {

// Whether passes(values[i]) for every i < count, on the vector unit of `isa`. `passes` follows
// run_vectorized's rule: a lambda marked always_inline, of compares and bit operations.
template <class T, class Test> bool all_pass(Isa isa, const T* values, Index count, const Test& passes) {
    unsigned failures = 0;
    run_vectorized(isa, [&]() __attribute__((always_inline)) {
        unsigned failed = 0;
        for (Index i = 0; i < count; ++i) failed |= passes(values[i]) ? 0u : 1u;
        failures = failed;
    });
    return failures == 0;
}

// Whether no value is NaN or infinite, that is, no value has all its exponent bits set. Tested
// on the bits, so that a build with -ffinite-math-only cannot fold the test away.
template <class T> bool all_finite(Isa isa, const T* values, Index count) {
    static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "float or double");
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    const auto exponent = static_cast<Bits>(sizeof(T) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
    return all_pass(isa, values, count, [exponent](T value) __attribute__((always_inline)) {
        Bits bits;
        std::memcpy(&bits, &value, sizeof bits);
        return (bits & exponent) != exponent;
    });
}
template <class T> bool all_finite(const T* values, Index count) { return all_finite(active_isa(), values, count); }

}  // namespace kernels
}  // namespace latent
