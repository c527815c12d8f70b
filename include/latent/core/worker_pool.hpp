// The threads behind parallel_for: a pool started on first use, where a loop ends as soon as its
// iterations are done.
//
// Rules, and why:
// - The calling thread works too (as worker 0); pool threads join a loop when they wake and take
//   iterations one at a time from a shared counter. A loop waits only for iterations that have
//   been taken, never for a thread that has not arrived: on a machine busy with other processes
//   a pool thread may not get a core for milliseconds, and a loop that waited for every thread
//   (a barrier, as an OpenMP parallel region has) would run at the pace of the slowest one.
// - Idle threads spin for a few microseconds (loops in a training step follow each other
//   closely) and then sleep on a condition variable, so they take no CPU between batches.
// - Loops run serially for a while when threads cost time: when a loop took more than 200 us
//   longer than its caller alone would have (the caller's own pace times the iterations), because
//   a pool thread lost its core while it held an iteration -- a scheduler time slice on a busy
//   machine. The pause doubles while that lasts (1 ms up to 256 ms) and is reset by a loop that
//   gains. A quiet machine's delays (waking a sleeping thread takes tens of microseconds) stay
//   below the limit.
// - Loops also run serially for a while when the machine has no core to spare: over windows
//   of 10 ms of parallel loops the caller measures how long it waited for a core (the
//   scheduler's run delay). Above 15% in two windows in a row it shared its core with another
//   busy thread (its own pool thread, or another process), and one thread that keeps a core is
//   faster than two that take turns on one -- the loss is in the caller's serial code as much
//   as in the loops, where judging single loops cannot see it. The pause doubles from 20 ms to
//   1 s while the next window after it shows the same, and is reset by one that does not. A
//   caller that sleeps or waits for input between loops does not wait for a core, so it is not
//   taken for one that shares it; on a quiet machine almost all windows wait under 5%. With
//   both rules two threads on a busy machine are about as fast as one (README, Speed).
// - One loop at a time: a loop started while another one runs (from another user thread, or
//   from inside a loop's body) runs serially on its caller. Results cannot differ, because an
//   iteration's result never depends on which thread runs it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif

#if defined(__linux__)
#include <fcntl.h>
#include <unistd.h>
#endif

#include "tensor.hpp"

namespace latent {
namespace detail {

// One loop body without its type: invoke(context, iteration, worker).
struct LoopBody {
    void (*invoke)(void* context, Index iteration, int worker) = nullptr;
    void* context = nullptr;
};

// Tells the core the thread is spinning (lets the other hyperthread run, saves power).
inline void spin_pause() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    _mm_pause();
#endif
}

// How long the calling thread has been ready to run but waited for a core (the scheduler's
// run delay), or a negative duration where the system does not tell (it does on Linux).
inline std::chrono::nanoseconds thread_run_delay() {
#if defined(__linux__)
    const int file = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (file >= 0) {
        char text[96] = {};
        const ssize_t length = read(file, text, sizeof text - 1);
        close(file);
        unsigned long long on_core = 0, waited = 0;  // "<ns on a core> <ns waited> <slices>"
        if (length > 0 && std::sscanf(text, "%llu %llu", &on_core, &waited) == 2)
            return std::chrono::nanoseconds(static_cast<std::int64_t>(waited));
    }
#endif
    return std::chrono::nanoseconds(-1);
}

// Tells whether the thread that starts parallel loops keeps its core (the second serial rule in
// the rules above): over windows of at least `window` of parallel loops, the share of the time
// it waited for a core; `shared` after `windows_to_judge` windows in a row above
// `waited_limit`. Time the caller sleeps or waits for input is not waiting for a core, so a
// caller that is idle between loops is not taken for one that shares its core. A window longer
// than `stale` is dropped (it would judge old loops), as is one begun by another thread.
class CoreWatch {
public:
    using Clock = std::chrono::steady_clock;
    enum class Verdict { open, kept, shared };
    static constexpr std::chrono::milliseconds window{10}, stale{50};
    static constexpr double waited_limit = 0.15;
    static constexpr int windows_to_judge = 2;  // a quiet machine has single slow windows

    // Called when a parallel loop starts at `now`.
    Verdict observe(Clock::time_point now) {
        const std::thread::id caller = std::this_thread::get_id();
        if (!open_ || caller != caller_ || now - start_ > stale) {
            restart(now, caller, thread_run_delay());
            return Verdict::open;
        }
        if (now - start_ < window) return Verdict::open;
        const std::chrono::nanoseconds waited = thread_run_delay();
        const double waited_share = std::chrono::duration<double>(waited - start_waited_).count() /
                                    std::chrono::duration<double>(now - start_).count();
        restart(now, caller, waited);
        shared_windows_ = waited_share > waited_limit ? shared_windows_ + 1 : 0;
        if (shared_windows_ >= windows_to_judge) return Verdict::shared;
        return shared_windows_ == 0 ? Verdict::kept : Verdict::open;
    }

    // Drops the window in progress: loops are about to run serially, and a window measures
    // parallel ones only. The count of shared windows in a row stays.
    void close() { open_ = false; }

private:
    void restart(Clock::time_point now, std::thread::id caller, std::chrono::nanoseconds waited) {
        open_ = waited.count() >= 0;
        caller_ = caller;
        start_ = now;
        start_waited_ = waited;
    }

    bool open_ = false;
    int shared_windows_ = 0;  // windows in a row in which the caller shared its core
    std::thread::id caller_;
    Clock::time_point start_{};
    std::chrono::nanoseconds start_waited_{0};
};

class WorkerPool {
public:
    // How long an idle thread (or a caller waiting for the last iterations) spins before it sleeps.
    static constexpr std::chrono::microseconds spin_time{50};
    // Loops of more iterations than this run serially (the counter holds 32 bits of iteration).
    static constexpr Index max_iterations = (Index{1} << 31) - 1;

    // The process's pool. Its threads are started on first use and joined at exit.
    static WorkerPool& shared() {
        static WorkerPool pool;
        return pool;
    }

    WorkerPool() = default;
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    ~WorkerPool() {
        {
            std::lock_guard<std::mutex> lock(sleep_mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (std::thread& thread : threads_) thread.join();
    }

    // Runs body for every iteration in [0, count) on the caller and up to threads - 1 pool
    // threads (worker numbers below `threads`). Returns false, having run nothing, when the
    // pool is busy with another loop or the caller is inside a loop's body; the caller then
    // runs the loop itself. The first exception a body throws is rethrown after all taken
    // iterations have finished.
    bool run(Index count, int threads, LoopBody body) {
        if (inside_loop() || count > max_iterations) return false;
        std::unique_lock<std::mutex> job_lock(job_mutex_, std::try_to_lock);
        if (!job_lock.owns_lock()) return false;
        const Clock::time_point start = Clock::now();
        if (start < serial_until_) {
            core_watch_.close();
            return false;
        }
        if (!core_kept(start)) return false;
        start_threads(threads - 1);

        // Close the last loop's ticket before its fields are overwritten: a thread that read
        // them late then fails its compare-exchange. The closed ticket has a generation of its
        // own and no iteration to take; the new loop gets the one after it.
        const std::uint64_t closed = (ticket_.load(std::memory_order_relaxed) >> 32) + 1;
        ticket_.store(closed << 32 | no_iteration, std::memory_order_seq_cst);
        body_ = body;
        count_.store(count, std::memory_order_relaxed);
        participants_.store(threads, std::memory_order_relaxed);
        finished_.store(0, std::memory_order_relaxed);
        error_ = nullptr;
        const std::uint64_t generation = closed + 1;
        ticket_.store(generation << 32, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            std::lock_guard<std::mutex> lock(sleep_mutex_);
            wake_.notify_all();
        }

        inside_loop() = true;
        const Index own_iterations = take_iterations(generation, 0);
        inside_loop() = false;
        const Clock::time_point own_end = Clock::now();
        wait_until_finished();
        judge_speed(count, own_iterations, own_end - start, Clock::now() - start);
        if (error_) std::rethrow_exception(error_);
        return true;
    }

private:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::microseconds lost_time_limit{200}, first_pause{1000}, longest_pause{256000};
    static constexpr std::chrono::milliseconds first_shared_core_pause{20}, longest_shared_core_pause{1000};

    // Compares the loop's time with the caller's estimate of running it alone, and pauses the
    // pool (see the rules above) when the threads lost time.
    void judge_speed(Index count, Index own_iterations, Clock::duration own_time, Clock::duration loop_time) {
        if (own_iterations == 0) return;  // nothing to judge the pace by
        const Clock::duration alone = own_time * count / own_iterations;
        if (loop_time < alone) {
            pause_ = first_pause;
        } else if (loop_time > alone + lost_time_limit) {
            serial_until_ = Clock::now() + pause_;
            pause_ = std::min<Clock::duration>(pause_ * 2, longest_pause);
        }
    }

    // Asks the core watch about the loops since the last pause it caused; pauses the pool when
    // the caller shared its core (see the rules above).
    bool core_kept(Clock::time_point now) {
        switch (core_watch_.observe(now)) {
            case CoreWatch::Verdict::open: return true;
            case CoreWatch::Verdict::kept: shared_core_pause_ = first_shared_core_pause; return true;
            case CoreWatch::Verdict::shared: break;
        }
        serial_until_ = now + shared_core_pause_;
        shared_core_pause_ = std::min<Clock::duration>(shared_core_pause_ * 2, longest_shared_core_pause);
        core_watch_.close();
        return false;
    }

    static bool& inside_loop() {
        thread_local bool inside = false;
        return inside;
    }

    void start_threads(int wanted) {
        while (static_cast<int>(threads_.size()) < wanted) {
            const int worker = static_cast<int>(threads_.size()) + 1;
            threads_.emplace_back([this, worker] { serve(worker); });
        }
    }

    // Takes iteration after iteration of loop `generation` until none is left. The ticket holds
    // the generation (high 32 bits) and the next untaken iteration (low 32 bits), so a thread
    // that arrives after its loop has ended fails the compare-exchange and touches nothing
    // else: the body, which lives on the caller's stack, is called only for a taken iteration
    // of a loop that cannot end before that iteration finishes.
    // Returns the number of iterations this thread ran.
    Index take_iterations(std::uint64_t generation, int worker) {
        Index taken = 0;
        std::uint64_t ticket = ticket_.load(std::memory_order_acquire);
        for (;;) {
            if ((ticket >> 32) != generation) return taken;
            const Index iteration = static_cast<Index>(ticket & 0xffffffffu);
            const Index count = count_.load(std::memory_order_relaxed);
            if (iteration >= count) return taken;
            if (!ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel,
                                               std::memory_order_acquire))
                continue;
            ++taken;
            try {
                body_.invoke(body_.context, iteration, worker);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex_);
                if (!error_) error_ = std::current_exception();
            }
            // `count` was read before this iteration was taken: once the last one is counted,
            // the caller may publish the next loop and overwrite count_.
            if (finished_.fetch_add(1, std::memory_order_acq_rel) + 1 == count) {
                std::lock_guard<std::mutex> lock(sleep_mutex_);
                done_.notify_all();
            }
            ticket = ticket_.load(std::memory_order_acquire);
        }
    }

    void wait_until_finished() {
        const Index count = count_.load(std::memory_order_relaxed);
        const auto spin_until = Clock::now() + spin_time;
        while (finished_.load(std::memory_order_acquire) != count) {
            if (Clock::now() < spin_until) {
                spin_pause();
                continue;
            }
            std::unique_lock<std::mutex> lock(sleep_mutex_);
            done_.wait(lock, [&] { return finished_.load(std::memory_order_acquire) == count; });
        }
    }

    // A pool thread: waits for a loop it may join, works on it, waits again.
    void serve(int worker) {
        std::uint64_t seen = 0;
        for (;;) {
            std::uint64_t generation = 0;
            if (!wait_for_loop(seen, generation)) return;
            seen = generation;
            // participants_ may already belong to a newer loop; take_iterations then finds the
            // ticket's generation changed and touches nothing.
            if (worker < participants_.load(std::memory_order_relaxed)) take_iterations(generation, worker);
        }
    }

    // Waits until a loop newer than `seen` is published (true, its generation in `generation`)
    // or the pool stops (false).
    bool wait_for_loop(std::uint64_t seen, std::uint64_t& generation) {
        const auto spin_until = Clock::now() + spin_time;
        for (;;) {
            generation = ticket_.load(std::memory_order_acquire) >> 32;
            if (generation != seen) return true;
            if (Clock::now() >= spin_until) break;
            spin_pause();
        }
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lock, [&] {
            generation = ticket_.load(std::memory_order_seq_cst) >> 32;
            return stopping_ || generation != seen;
        });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        return !stopping_;
    }

    std::mutex job_mutex_;                  // held by the caller of the loop in progress
    std::atomic<std::uint64_t> ticket_{0};  // generation << 32 | next untaken iteration
    std::atomic<Index> finished_{0};        // iterations of the current loop that have finished
    static constexpr std::uint64_t no_iteration = 0xffffffffu;  // above max_iterations

    // The current loop, written before its ticket is published. count_ and participants_ are
    // atomic because a thread that arrives late may read them while the next loop is set up.
    LoopBody body_;
    std::atomic<Index> count_{0};
    std::atomic<int> participants_{1};

    std::mutex error_mutex_;
    std::exception_ptr error_;

    std::mutex sleep_mutex_;  // guards stopping_ and the sleeps on wake_ and done_
    std::condition_variable wake_;
    std::condition_variable done_;
    std::atomic<int> sleepers_{0};
    bool stopping_ = false;
    std::vector<std::thread> threads_;

    Clock::time_point serial_until_{};  // loops before this time run serially (judge_speed, core_kept)
    Clock::duration pause_ = first_pause;
    CoreWatch core_watch_;  // used by the caller of the loop in progress only
    Clock::duration shared_core_pause_ = first_shared_core_pause;
};

}  // namespace detail
}  // namespace latent
