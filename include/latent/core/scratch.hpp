// Scratch memory for parallel work, and a sum whose rounding does not depend on where its data
// lives. Both serve the rule that results never depend on the thread count.
#pragma once

#include <memory>
#include <vector>

#include "tensor.hpp"

namespace latent {
namespace detail {

// Sum of `count` values in an order fixed by `count` alone. (Eigen's vectorized sum first steps
// to an aligned address, so its rounding would depend on where a per-thread buffer starts.)
template <class T> T ordered_sum(const T* values, Index count) {
    constexpr Index lanes = 16;  // independent partial sums: vectorizable without reordering
    T partial[lanes] = {};
    Index i = 0;
    for (; i + lanes <= count; i += lanes)
        for (Index lane = 0; lane < lanes; ++lane) partial[lane] += values[i + lane];
    T total = 0;
    for (Index lane = 0; lane < lanes; ++lane) total += partial[lane];
    for (; i < count; ++i) total += values[i];
    return total;
}

// Per-worker slices of one growing buffer, for the scratch memory of parallel_for bodies. Every
// slice starts on a 64-byte boundary, so vectorized code that peels to alignment rounds the same
// way on every worker and results cannot depend on which thread ran a chunk. The buffer only
// grows: a call that needs no more room than an earlier one allocates nothing.
template <class T> class WorkerBuffers {
public:
    void reserve(Index workers, Index slice_size) {
        stride_ = (slice_size + lanes - 1) / lanes * lanes;
        const auto needed = static_cast<std::size_t>(workers * stride_ + lanes);
        if (buffer_.size() < needed) buffer_.resize(needed);
    }
    T* slice(int worker) {
        void* start = buffer_.data();
        std::size_t space = buffer_.size() * sizeof(T);
        return static_cast<T*>(std::align(alignment, sizeof(T), start, space)) + worker * stride_;
    }

private:
    static constexpr std::size_t alignment = 64;
    static constexpr Index lanes = static_cast<Index>(alignment / sizeof(T));
    std::vector<T> buffer_;
    Index stride_ = 0;
};

// Grows `buffer` to at least `size` elements; never shrinks, so its memory is reused.
template <class T> void grow(std::vector<T>& buffer, Index size) {
    if (static_cast<Index>(buffer.size()) < size) buffer.resize(static_cast<std::size_t>(size));
}

}  // namespace detail
}  // namespace latent
