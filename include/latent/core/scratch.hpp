// Scratch memory for parallel work, and a sum whose rounding does not depend on where its data
// lives. Both serve the rule that results never depend on the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <utility>
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

// `size` values, zeros at first, on a 64-byte boundary (a cache line): for data that vector
// loads read in long runs. Eigen's own memory is aligned to 16 bytes in a build without AVX, and
// a 32-byte load from it straddles two cache lines half the time. Copies copy the values.
template <class T> class AlignedArray {
public:
    AlignedArray() = default;
    explicit AlignedArray(Index size) : values_(allocate(size)), size_(size) { std::fill_n(data(), size, T(0)); }
    AlignedArray(const AlignedArray& other) : values_(allocate(other.size_)), size_(other.size_) {
        std::copy_n(other.data(), size_, data());
    }
    AlignedArray(AlignedArray&& other) noexcept { swap(other); }  // leaves `other` empty
    AlignedArray& operator=(AlignedArray other) noexcept {
        swap(other);
        return *this;
    }
    void swap(AlignedArray& other) noexcept {
        std::swap(values_, other.values_);
        std::swap(size_, other.size_);
    }

    T* data() { return values_.get(); }
    const T* data() const { return values_.get(); }
    Index size() const { return size_; }

private:
    static constexpr std::align_val_t alignment{64};
    struct Release {
        void operator()(T* values) const { ::operator delete[](values, alignment); }
    };
    static T* allocate(Index size) {
        if (size == 0) return nullptr;
        return static_cast<T*>(::operator new[](static_cast<std::size_t>(size) * sizeof(T), alignment));
    }

    std::unique_ptr<T[], Release> values_;
    Index size_ = 0;
};

// Grows `buffer` to at least `size` elements; never shrinks, so its memory is reused.
template <class T> void grow(std::vector<T>& buffer, Index size) {
    if (static_cast<Index>(buffer.size()) < size) buffer.resize(static_cast<std::size_t>(size));
}

}  // namespace detail
}  // namespace latent
