// Checked arithmetic for sizes that come from a file or a configuration, and the limits such
// sizes must keep. Every product or sum of such sizes goes through these helpers, so a hostile
// value gives a latent error naming what overflowed instead of wrapping around. Messages are
// built only on failure: the helpers allocate nothing on the success path.
//
// Limits (they bound arithmetic, not memory: a loader must still check sizes against its bytes):
//   max_extent    = 2^24  largest value of one configured size or axis: channels, height, width,
//                         units, filters, kernel, stride, upsampling factor
//   max_elements  = 2^40  largest product: the values of one sample, the weights of one layer
// With both, batch * elements * sizeof(double) stays far below 2^63 for any batch below 2^20.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "errors.hpp"

namespace latent {

constexpr std::int64_t max_extent = std::int64_t{1} << 24;
constexpr std::int64_t max_elements = std::int64_t{1} << 40;

namespace detail {

// a * b, or false when the product does not fit in Int (both non-negative).
template <class Int> bool multiply_fits(Int a, Int b, Int& product) {
    static_assert(std::is_integral_v<Int>, "sizes are integers");
    if (b != 0 && a > std::numeric_limits<Int>::max() / b) return false;
    product = a * b;
    return true;
}

template <class Error, class Int> void require_non_negative(Int value, std::string_view what) {
    if constexpr (std::is_signed_v<Int>)
        if (value < 0) throw Error(std::string(what) + ": negative size " + std::to_string(value));
}

}  // namespace detail

// a * b for sizes (both >= 0); Error("<what>: <a> x <b> overflows") when it does not fit in Int.
template <class Error = ShapeError, class Int> Int checked_multiply(Int a, Int b, std::string_view what) {
    detail::require_non_negative<Error>(a, what);
    detail::require_non_negative<Error>(b, what);
    Int product = 0;
    if (!detail::multiply_fits(a, b, product))
        throw Error(std::string(what) + ": " + std::to_string(a) + " x " + std::to_string(b) + " overflows");
    return product;
}

// a + b for sizes (both >= 0); Error("<what>: <a> + <b> overflows") when it does not fit in Int.
template <class Error = ShapeError, class Int> Int checked_add(Int a, Int b, std::string_view what) {
    detail::require_non_negative<Error>(a, what);
    detail::require_non_negative<Error>(b, what);
    if (a > std::numeric_limits<Int>::max() - b)
        throw Error(std::string(what) + ": " + std::to_string(a) + " + " + std::to_string(b) + " overflows");
    return a + b;
}

// The product of sizes, required to be at most `limit` (max_elements unless told):
// Error("<what>: ... exceeds the limit of ...") otherwise. Every factor must be >= 0.
template <class Error = ShapeError, class Int>
Int checked_product(std::initializer_list<Int> factors, std::string_view what,
                    Int limit = static_cast<Int>(max_elements)) {
    Int product = 1;
    bool fits = true;
    for (const Int factor : factors) {
        detail::require_non_negative<Error>(factor, what);
        fits = fits && detail::multiply_fits(product, factor, product);
    }
    if (!fits || product > limit) {
        std::string text;
        for (const Int factor : factors) text += (text.empty() ? "" : " x ") + std::to_string(factor);
        throw Error(std::string(what) + ": " + text + " exceeds the limit of " + std::to_string(limit) + " elements");
    }
    return product;
}

// `value` itself, required to be in [minimum, max_extent]: ArgumentError naming `what` otherwise.
inline std::int64_t checked_extent(std::int64_t value, std::int64_t minimum, std::string_view where,
                                   std::string_view what) {
    if (value < minimum || value > max_extent)
        throw ArgumentError(std::string(where) + ": " + std::string(what) + " must be in [" + std::to_string(minimum) + ", " +
                            std::to_string(max_extent) + "], got " + std::to_string(value));
    return value;
}

}  // namespace latent
