// The library's one global setting: how many threads work on a batch.
//
// Work is split over the batch into chunks whose boundaries depend only on the data's shape,
// never on the thread count, and partial results are combined in chunk order. That is why a
// run gives bit-identical results with 1 and with N threads. The chunks run on latent's own
// threads (worker_pool.hpp), which never make a loop wait for a thread that has not started
// on it; Eigen's own GEMM stays single-threaded.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include <Eigen/Core>

// LATENT_USE_THREADS=0 builds a library that runs every loop on the calling thread.
#if !defined(LATENT_USE_THREADS) || LATENT_USE_THREADS
#define LATENT_HAS_THREADS 1
#else
#define LATENT_HAS_THREADS 0
#endif

#include "errors.hpp"
#include "tensor.hpp"
#include "worker_pool.hpp"

namespace latent {
namespace detail {

// Threads to use when nobody has called set_num_threads: LATENT_NUM_THREADS if it holds a
// positive integer, else the hardware concurrency.
inline int default_thread_count() {
    if (const char* text = std::getenv("LATENT_NUM_THREADS")) {
        char* end = nullptr;
        const long value = std::strtol(text, &end, 10);
        if (end != text && *end == '\0' && value > 0 && value <= 4096) return static_cast<int>(value);
    }
    const unsigned hardware = std::thread::hardware_concurrency();
    return hardware == 0 ? 1 : static_cast<int>(hardware);
}

inline int& thread_count_setting() {
    static int count = [] {
        Eigen::setNbThreads(1);
        return default_thread_count();
    }();
    return count;
}

}  // namespace detail

// Sets the number of threads latent uses (>= 1). In a build with LATENT_USE_THREADS=0 the
// library runs serially and this only records the value.
inline void set_num_threads(int count) {
    detail::require(count >= 1, "set_num_threads", "thread count must be >= 1, got " +
                                                        std::to_string(count));
    detail::thread_count_setting() = count;
    Eigen::setNbThreads(1);
}

inline int num_threads() { return detail::thread_count_setting(); }

// True unless the library was built with LATENT_USE_THREADS=0, i.e. set_num_threads(n > 1)
// runs in parallel.
constexpr bool has_threads() { return LATENT_HAS_THREADS != 0; }

// Calls body(i) -- or body(i, worker) -- for every i in [0, count), spread over num_threads()
// threads; `worker` in [0, num_threads()) identifies the thread, for per-thread scratch memory.
// The body must write only to memory owned by index i (or by its worker). An exception thrown
// by a body is rethrown here (the first one caught), after every iteration begun has finished.
template <class Body> void parallel_for(Index count, Body&& body) {
    auto call = [&body](Index i, int worker) {
        if constexpr (std::is_invocable_v<Body&, Index, int>) {
            body(i, worker);
        } else {
            (void)worker;
            body(i);
        }
    };
    const int threads = static_cast<int>(std::min<Index>(num_threads(), count));
    if constexpr (has_threads()) {
        auto invoke = [](void* context, Index i, int worker) {
            (*static_cast<decltype(call)*>(context))(i, worker);
        };
        if (threads > 1 && detail::WorkerPool::shared().run(count, threads, detail::LoopBody{invoke, &call}))
            return;
    }
    for (Index i = 0; i < count; ++i) call(i, 0);
}

// Below this many elementary operations a loop runs on the calling thread: waking a thread for
// less work costs more than it saves, and far more on a machine busy with other processes.
constexpr Index min_parallel_work = Index{1} << 16;

// parallel_for for a loop whose iterations add up to about `work` elementary operations
// (multiply-adds, element visits); serial when that is below min_parallel_work. The split into
// `count` iterations is the same either way, so results do not change.
template <class Body> void parallel_for(Index count, Index work, Body&& body) {
    if (work >= min_parallel_work) {
        parallel_for(count, std::forward<Body>(body));
        return;
    }
    for (Index i = 0; i < count; ++i) {
        if constexpr (std::is_invocable_v<Body&, Index, int>) body(i, 0);
        else body(i);
    }
}

// A split of `total` items into chunks of `chunk_size` (the last one may be shorter).
struct Chunks {
    Index total = 0;
    Index chunk_size = 1;

    Index count() const { return chunk_size == 0 ? 0 : (total + chunk_size - 1) / chunk_size; }
    Index begin(Index chunk) const { return chunk * chunk_size; }
    Index size(Index chunk) const { return std::min(chunk_size, total - begin(chunk)); }
};

// Chunks over a batch of `batch` samples with about `target_items` work items per chunk, where
// one sample has `items_per_sample` items, and at least `min_chunks` chunks when the batch is
// large enough (so two threads have work to share). Depends on shapes only.
inline Chunks batch_chunks(Index batch, Index items_per_sample, Index target_items = 2048,
                           Index min_chunks = 8) {
    const Index per_sample = std::max<Index>(items_per_sample, 1);
    Index size = std::max<Index>(1, (target_items + per_sample - 1) / per_sample);
    size = std::min(size, std::max<Index>(1, (batch + min_chunks - 1) / min_chunks));
    return Chunks{batch, size};
}

}  // namespace latent
