// The sums of data-parallel training (core/communicator.hpp has the rule): a fixed binary tree
// over the chunks' gradients, the exchange that finishes it across processes, and the agreement
// that makes a failure on one process stop them all instead of leaving the others waiting.
#pragma once

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "../core/communicator.hpp"
#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "../layers/layer.hpp"

namespace latent {
namespace detail {

// Adds vectors of `size()` values ("leaves", in order) in a balanced binary tree: leaves 2i and
// 2i+1, then those sums pairwise, and so on up. As in a binary counter, a stack keeps one sum per
// finished subtree, and stack position i always uses buffer i, so a step allocates nothing once
// the buffers exist. An absent leaf (an empty chunk) leaves its sibling's sum as it is. After a
// power of two of leaves the stack holds the root alone.
template <class T> class GradientTree {
public:
    void start(Index size) {
        size_ = size;
        depth_ = 0;
    }
    Index size() const { return size_; }

    // Where the caller writes the next leaf's size() values, before push().
    T* next_leaf() {
        if (buffers_.size() <= depth_) {
            buffers_.emplace_back();
            levels_.push_back(0);
            present_.push_back(0);
        }
        grow(buffers_[depth_], size_);
        return buffers_[depth_].data();
    }

    void push(bool present) {
        next_leaf();  // the buffer exists even for an absent leaf
        levels_[depth_] = 0;
        present_[depth_] = present ? 1 : 0;
        ++depth_;
        while (depth_ >= 2 && levels_[depth_ - 1] == levels_[depth_ - 2]) merge_top_two();
    }

    bool complete() const { return depth_ == 1; }
    bool root_present() const { return present_[0] != 0; }
    T* root() { return buffers_[0].data(); }

private:
    // left + right: IEEE addition, so the order of the two does not matter, only the tree.
    void merge_top_two() {
        const std::size_t left = depth_ - 2, right = depth_ - 1;
        if (present_[left] && present_[right])
            Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(buffers_[left].data(), size_) +=
                Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(buffers_[right].data(), size_);
        else if (present_[right])
            std::swap(buffers_[left], buffers_[right]);
        present_[left] = present_[left] || present_[right];
        ++levels_[left];
        --depth_;
    }

    Index size_ = 0;
    std::size_t depth_ = 0;
    std::vector<std::vector<T>> buffers_;
    std::vector<int> levels_;
    std::vector<char> present_;
};

// The parameters' gradients, one after the other, into `flat` (size >= their total; the rest
// is zeroed), and back.
template <class T> void flatten_gradients(const std::vector<Parameter<T>>& parameters, T* flat, Index size) {
    Index offset = 0;
    for (const auto& parameter : parameters) {
        std::copy_n(parameter.grad, parameter.size, flat + offset);
        offset += parameter.size;
    }
    std::fill(flat + offset, flat + size, T(0));
}
template <class T> void unflatten_gradients(const T* flat, const std::vector<Parameter<T>>& parameters) {
    Index offset = 0;
    for (const auto& parameter : parameters) {
        std::copy_n(flat + offset, parameter.size, parameter.grad);
        offset += parameter.size;
    }
}

// Whether process `rank` of `share.ranks` holds a sample of a batch of `count` (its chunks may
// all be empty when count < chunks).
inline bool holds_samples(const BatchShare& share, int rank, Index count) {
    const BatchShare other{rank, share.ranks, share.chunks};
    return other.end(count) > other.first(count);
}

// What a process adds to the exchange: a segment per process of its subtree's sum, the sums
// of every process for its own segment, and that segment's total.
template <class T> struct ExchangeScratch {
    std::vector<T> received, total, gathered;
    GradientTree<T> segment_tree;
};

// Finishes the tree across processes: `local` (share.ranks segments of `segment` values) is this
// process's subtree sum. Each process adds its own segment of every process's sum in the tree
// (all_to_all), then every process gets every segment's total (all_gather): 2 (ranks - 1) /
// ranks of the vector sent per process, as a ring all-reduce does. The result is in `gathered`.
template <class T>
void add_across_processes(const Communicator& communicator, const BatchShare& share, Index count, const T* local,
                          Index segment, ExchangeScratch<T>& scratch) {
    const std::size_t segment_bytes = sizeof(T) * static_cast<std::size_t>(segment);
    const Index padded = segment * share.ranks;
    grow(scratch.received, padded);
    grow(scratch.gathered, padded);
    communicator.all_to_all(local, segment_bytes, scratch.received.data());
    scratch.segment_tree.start(segment);
    for (int rank = 0; rank < share.ranks; ++rank) {
        std::copy_n(scratch.received.data() + rank * segment, segment, scratch.segment_tree.next_leaf());
        scratch.segment_tree.push(holds_samples(share, rank, count));
    }
    communicator.all_gather(scratch.segment_tree.root(), segment_bytes, scratch.gathered.data());
}

// Every process's `values` (the same count on each), gathered in rank order.
inline void gather_values(const Communicator& communicator, const std::vector<double>& values, std::vector<double>& all) {
    all.resize(values.size() * static_cast<std::size_t>(communicator.ranks));
    communicator.all_gather(values.data(), sizeof(double) * values.size(), all.data());
}

// Bytes of a failure's message that reach the other processes.
constexpr std::size_t status_bytes = 256;

// Runs `work` on every process of `communicator` and makes them agree on its outcome: when it
// throws on one, it throws on all -- there the error itself, elsewhere an Error naming the
// process and its message -- so that no process waits forever in an exchange another has left.
template <class Work> void agree(const Communicator& communicator, const std::string& where, Work&& work) {
    if (communicator.alone()) {
        work();
        return;
    }
    std::exception_ptr error;
    std::string message;
    try {
        work();
    } catch (const std::exception& exception) {
        error = std::current_exception();
        message = exception.what();
    } catch (...) {
        error = std::current_exception();
        message = "an exception that is not a std::exception";
    }
    std::vector<char> status(status_bytes, 0), all(status_bytes * static_cast<std::size_t>(communicator.ranks));
    status[0] = error ? 1 : 0;
    message.copy(status.data() + 1, status_bytes - 2);
    communicator.all_gather(status.data(), status_bytes, all.data());
    if (error) std::rethrow_exception(error);
    for (int rank = 0; rank < communicator.ranks; ++rank) {
        const char* theirs = all.data() + static_cast<std::size_t>(rank) * status_bytes;
        if (theirs[0] != 0)
            throw Error(where + ": process " + std::to_string(rank) + " of " + std::to_string(communicator.ranks) +
                        " stopped: " + std::string(theirs + 1, strnlen(theirs + 1, status_bytes - 1)));
    }
}

}  // namespace detail
}  // namespace latent
