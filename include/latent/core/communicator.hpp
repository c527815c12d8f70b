// Communicator: how the processes of a data-parallel run exchange bytes, and the fixed division
// of a batch into chunks that makes their result independent of how many processes there are.
// It lives in core/ because fit() (training/) and the streams (data/) both use it; MPI itself is
// only in latent/mpi.hpp, which builds one from an MPI_Comm.
//
// The rule (training/gradient_tree.hpp): a batch of N samples is cut into `chunks` chunks (a
// power of two), chunk c holding positions [N*c/chunks, N*(c+1)/chunks) of the batch; each
// chunk's gradient is computed alone, and the chunks' gradients are added in a fixed balanced
// binary tree. A run over `ranks` processes (a power of two, at most `chunks`) gives process r
// the chunks [r*chunks/ranks, (r+1)*chunks/ranks): whole subtrees, so every process count, and
// every thread count, adds the same numbers in the same order.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "errors.hpp"
#include "tensor.hpp"

namespace latent {

// A run of `ranks` processes, this one being `rank`. The default is one process alone (the
// exchanges are then never called).
struct Communicator {
    int rank = 0;
    int ranks = 1;
    // Every process sends `bytes` bytes and receives everyone's, rank after rank (ranks * bytes).
    std::function<void(const void* send, std::size_t bytes, void* receive)> all_gather;
    // Every process sends `ranks` blocks of `bytes` bytes, block r to process r, and receives
    // block `rank` of every process, rank after rank.
    std::function<void(const void* send, std::size_t bytes, void* receive)> all_to_all;

    bool alone() const { return ranks == 1; }
};

constexpr bool is_power_of_two(Index value) { return value >= 1 && (value & (value - 1)) == 0; }

// The first position of chunk `chunk` of `chunks` in a batch of `count` samples (chunk == chunks:
// the end). Chunks differ in size by one sample at most; with count < chunks some are empty.
inline Index chunk_begin(Index count, Index chunks, Index chunk) { return count * chunk / chunks; }

// The part of every batch that one process of a run trains on (and reads, for a stream).
struct BatchShare {
    int rank = 0;
    int ranks = 1;
    Index chunks = 1;

    Index first_chunk() const { return chunks * rank / ranks; }
    Index end_chunk() const { return chunks * (rank + 1) / ranks; }
    Index first(Index count) const { return chunk_begin(count, chunks, first_chunk()); }
    Index end(Index count) const { return chunk_begin(count, chunks, end_chunk()); }
    bool whole() const { return ranks == 1; }
    std::string str() const {
        return "process " + std::to_string(rank) + " of " + std::to_string(ranks) + ", " + std::to_string(chunks) +
               " chunks";
    }
    bool operator==(const BatchShare& other) const {
        return whole() ? other.whole() : rank == other.rank && ranks == other.ranks && chunks == other.chunks;
    }
    bool operator!=(const BatchShare& other) const { return !(*this == other); }
};

// Checks the rule above for a share; `where` names the caller in the message.
inline void check_share(const BatchShare& share, const std::string& where) {
    detail::require(is_power_of_two(share.chunks), where,
                    "gradient_chunks must be a power of two, got " + std::to_string(share.chunks));
    detail::require(is_power_of_two(share.ranks) && share.ranks <= share.chunks, where,
                    "a run over " + std::to_string(share.ranks) + " processes needs a power of two of them, at most "
                    "gradient_chunks (" + std::to_string(share.chunks) + ")");
    detail::require(share.rank >= 0 && share.rank < share.ranks, where,
                    "rank " + std::to_string(share.rank) + " is not in [0, " + std::to_string(share.ranks) + ")");
}

// The share of `communicator`'s process when batches are cut into `chunks`.
inline BatchShare share_of(const Communicator& communicator, Index chunks) {
    const BatchShare share{communicator.rank, communicator.ranks, chunks};
    check_share(share, "fit");
    detail::require(communicator.alone() || (communicator.all_gather && communicator.all_to_all), "fit",
                    "a communicator of several processes needs all_gather and all_to_all functions");
    return share;
}

}  // namespace latent
