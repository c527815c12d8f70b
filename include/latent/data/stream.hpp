// BatchStream: training batches read from disk while the model trains, in bounded memory.
//
// A stream knows how many samples there are, the shape of one, and how to read sample i
// (idx_stream.hpp, npy_stream.hpp and image_folder_stream.hpp make one for IDX files, .npy
// arrays and image folders). Its source() is a BatchSource for fit().
//
// Rules:
// - Order. Epoch e visits the samples in epoch_order(count, shuffle, seed, e) (core/random.hpp),
//   batch b holds positions [b * batch_size, (b + 1) * batch_size) of that order: the batches
//   fit() gathers from the same data in memory. With StreamOptions batch_size, shuffle and seed
//   equal to FitOptions', training from the stream gives bit-identical weights (fit() applies
//   FitOptions::corruption to streamed batches with the same seeds as to gathered ones).
// - Threads. `threads` background threads (1 or 2) read batches ahead, at most `batches_ahead`
//   of them beyond the one fit() is training on. A batch's content depends only on the seed, its
//   epoch and its index, never on the thread count or on which thread read it.
// - Memory. The stream holds at most batches_ahead + 1 batches (plus the file names of an image
//   folder, and right after a restart the batches still in flight), however many samples the
//   files hold.
// - Errors. A sample that cannot be read (a corrupt or truncated file, an image of the wrong
//   size: any latent::Error) stops training: fit() rethrows the reader's error, which names the
//   file, when it reaches that batch. With BadSample::Skip the sample is left out instead: its
//   batch is one sample shorter (the others keep their order and positions in the epoch's
//   order), and the error's message is kept in skipped(); a batch whose every sample failed
//   still stops training. Other exceptions (std::bad_alloc, ...) always stop training.
// - Lifetime. The threads stop when the stream and every BatchSource made from it are gone; a
//   thread in the middle of a sample finishes that sample first, then drops its batch. Calling
//   next() for a batch other than the one after the last (a resumed run, a new fit) drops what
//   was read ahead and starts again from that batch.
// - Batches. next() moves the batch into `inputs` and leaves `targets` empty: fit() then trains
//   on the inputs as targets (an autoencoder), without a copy.
// - Several processes. With StreamOptions::share (share_of(communicator, gradient_chunks), the
//   same as fit()'s), a stream reads only its process's share of each batch: no process reads the
//   whole data set. BadSample::Skip needs one process (a shorter share would change the others').
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../core/batch_source.hpp"
#include "../core/errors.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace latent {

// What a stream does with a sample it cannot read.
enum class BadSample {
    Stop,  // rethrow the reader's error from fit() (the default)
    Skip,  // leave the sample out of its batch and record the error (BatchStream::skipped())
};

struct StreamOptions {
    // Batches as fit() makes them: set these three to FitOptions' values.
    Index batch_size = 32;
    bool shuffle = true;
    std::uint64_t seed = 0;
    int threads = 1;        // background reading threads: 1 or 2
    int batches_ahead = 2;  // batches read ahead of the one in training (>= 1)
    BadSample bad_sample = BadSample::Stop;
    BatchShare share;       // the part of each batch to read (core/communicator.hpp); default all
};

// Reads sample `index` (0-based) into `values` (one sample's values, in (C, H, W) order). Called
// from the background threads, possibly two at once: it must not share mutable state. Throws a
// latent::Error naming the file for a sample it cannot read.
template <class T> using SampleReader = std::function<void(Index index, T* values)>;

namespace detail {

// The threads and the batches they have read, shared by a BatchStream and its BatchSources.
// Batches are numbered by a ticket, epoch * batches_per_epoch + batch: the threads read tickets
// in increasing order, each thread a whole batch at a time.
template <class T> class BatchPrefetcher {
public:
    BatchPrefetcher(Index sample_count, Shape sample_shape, SampleReader<T> read_sample, StreamOptions options)
        : sample_count_(sample_count),
          sample_shape_(sample_shape),
          read_sample_(std::move(read_sample)),
          options_(options),
          batches_per_epoch_((sample_count + options.batch_size - 1) / options.batch_size) {
        try {
            for (int t = 0; t < options_.threads; ++t) threads_.emplace_back([this] { read_batches(); });
        } catch (...) {  // a thread could not start: stop the ones that did before giving up
            stop_threads();
            throw;
        }
    }

    BatchPrefetcher(const BatchPrefetcher&) = delete;
    BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

    ~BatchPrefetcher() { stop_threads(); }

    Index batches_per_epoch() const { return batches_per_epoch_; }
    Shape sample_shape() const { return sample_shape_; }
    Index sample_count() const { return sample_count_; }
    const StreamOptions& options() const { return options_; }

    // Batch `batch` of `epoch` into `inputs`; `targets` is left empty, which fit() takes as
    // "the targets are the inputs" (an autoencoder's), so the batch is never copied.
    void next(int epoch, Index batch, Tensor<T>& inputs, Tensor<T>& targets) {
        require(epoch >= 0 && batch >= 0 && batch < batches_per_epoch_, "BatchStream",
                "no batch " + std::to_string(batch) + " in epoch " + std::to_string(epoch) + " (" +
                    std::to_string(batches_per_epoch_) + " batches per epoch)");
        const std::uint64_t ticket = static_cast<std::uint64_t>(epoch) * static_cast<std::uint64_t>(batches_per_epoch_) +
                                     static_cast<std::uint64_t>(batch);
        ReadBatch read;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            if (ticket != wanted_) {  // not the batch after the last one: start again from here
                ++generation_;
                ready_.clear();
                wanted_ = ticket;
                next_to_read_ = ticket;
                work_wanted_.notify_all();
            }
            // A thread reads `ticket` now or soon: it is within batches_ahead of wanted_.
            batch_ready_.wait(lock, [&] { return ready_.count(ticket) > 0; });
            read = std::move(ready_.at(ticket));
            ready_.erase(ticket);
            wanted_ = ticket + 1;
            skipped_.insert(skipped_.end(), read.skipped.begin(), read.skipped.end());
        }
        work_wanted_.notify_all();
        if (read.error) std::rethrow_exception(read.error);
        inputs = std::move(read.samples);
        targets = Tensor<T>();
    }

    std::vector<std::string> skipped() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return skipped_;
    }

private:
    void stop_threads() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        work_wanted_.notify_all();
        for (auto& thread : threads_) thread.join();
    }

    // One batch as a thread read it: `count` samples, or the error that stops training.
    struct ReadBatch {
        Tensor<T> samples;  // (count, C, H, W)
        Index count = 0;
        std::exception_ptr error;
        std::vector<std::string> skipped;  // messages of the samples left out (BadSample::Skip)
    };

    // A background thread: reads the next ticket while it is at most batches_ahead beyond the
    // one fit() waits for. A batch read for an older generation (before a restart) is dropped.
    void read_batches() {
        std::vector<Index> order;
        int order_epoch = -1;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            work_wanted_.wait(lock, [&] {
                return stopping_ || next_to_read_ < wanted_ + static_cast<std::uint64_t>(options_.batches_ahead);
            });
            if (stopping_) return;
            const std::uint64_t ticket = next_to_read_++;
            const std::uint64_t generation = generation_;
            lock.unlock();
            const int epoch = static_cast<int>(ticket / static_cast<std::uint64_t>(batches_per_epoch_));
            const Index batch = static_cast<Index>(ticket % static_cast<std::uint64_t>(batches_per_epoch_));
            if (epoch != order_epoch) {
                epoch_order(order, sample_count_, options_.shuffle, options_.seed, epoch);
                order_epoch = epoch;
            }
            ReadBatch read = read_batch(order, epoch, batch);
            lock.lock();
            if (generation == generation_) {
                ready_.emplace(ticket, std::move(read));
                batch_ready_.notify_all();
            }
        }
    }

    // Reads the samples of one batch; never throws (errors are kept in the result).
    ReadBatch read_batch(const std::vector<Index>& order, int epoch, Index batch) {
        ReadBatch read;
        try {
            const Index whole = std::min(options_.batch_size, sample_count_ - batch * options_.batch_size);
            const Index first = batch * options_.batch_size + options_.share.first(whole);
            const Index count = options_.share.end(whole) - options_.share.first(whole);
            const Index size = sample_shape_.size();
            read.samples.resize(count, sample_shape_.channels, sample_shape_.height, sample_shape_.width);
            for (Index i = 0; i < count && !stopping_; ++i) {  // a stopping stream drops the batch
                try {
                    read_sample_(order[static_cast<std::size_t>(first + i)], read.samples.data() + read.count * size);
                    ++read.count;
                } catch (const Error& error) {
                    if (options_.bad_sample == BadSample::Stop) throw;
                    read.skipped.emplace_back(error.what());
                }
            }
            if (stopping_) return read;  // incomplete, and nobody will ask for it
            if (count > 0 && read.count == 0)
                throw FormatError("BatchStream: every sample of batch " + std::to_string(batch) + " of epoch " +
                                  std::to_string(epoch) + " failed to read; the first: " + read.skipped.front());
            if (read.count < count) read.samples = latent::samples(read.samples, 0, read.count);  // some were skipped
        } catch (...) {
            read.error = std::current_exception();
        }
        return read;
    }

    const Index sample_count_;
    const Shape sample_shape_;
    const SampleReader<T> read_sample_;
    const StreamOptions options_;
    const Index batches_per_epoch_;

    mutable std::mutex mutex_;
    std::condition_variable work_wanted_;  // a thread may read another batch, or must stop
    std::condition_variable batch_ready_;  // a batch was read
    std::atomic<bool> stopping_{false};  // the threads must return (also read between samples)
    std::uint64_t wanted_ = 0;        // the ticket fit() waits for, or will ask for next
    std::uint64_t next_to_read_ = 0;  // the ticket the next free thread reads
    std::uint64_t generation_ = 0;    // counts restarts; batches of an older one are dropped
    std::map<std::uint64_t, ReadBatch> ready_;
    std::vector<std::string> skipped_;  // in the order fit() received the batches
    std::vector<std::thread> threads_;  // last: started once everything above exists
};

}  // namespace detail

// A stream of training batches over `sample_count` samples of `sample_shape`, read by
// `read_sample` on background threads (see the top of this header for the rules).
template <class T = float> class BatchStream {
public:
    BatchStream(Index sample_count, Shape sample_shape, SampleReader<T> read_sample, const StreamOptions& options = {}) {
        const char* where = "BatchStream";
        detail::require(sample_count >= 1, where, "a stream needs at least one sample");
        detail::require(sample_shape.size() >= 1, where, "samples must hold at least one value, got shape " + sample_shape.str());
        detail::require(options.batch_size >= 1, where, "batch_size must be >= 1");
        detail::require(options.threads == 1 || options.threads == 2, where,
                        "threads must be 1 or 2, got " + std::to_string(options.threads));
        detail::require(options.batches_ahead >= 1, where,
                        "batches_ahead must be >= 1, got " + std::to_string(options.batches_ahead));
        detail::require(static_cast<bool>(read_sample), where, "read_sample must be a function");
        detail::require(options.share.whole() || options.bad_sample == BadSample::Stop, where,
                        "BadSample::Skip needs one process: a share of a batch one sample shorter would move the "
                        "other processes' chunks");
        check_share(options.share, where);
        prefetcher_ = std::make_shared<detail::BatchPrefetcher<T>>(sample_count, sample_shape, std::move(read_sample), options);
    }

    // The batches for fit(model, stream.source(), ...); it keeps the stream's threads alive as
    // long as it exists.
    BatchSource<T> source() const {
        BatchSource<T> source;
        source.batches_per_epoch = prefetcher_->batches_per_epoch();
        source.share = prefetcher_->options().share;
        source.batch_size = prefetcher_->options().batch_size;
        source.sample_count = prefetcher_->sample_count();
        source.next = [prefetcher = prefetcher_](int epoch, Index batch, Tensor<T>& inputs, Tensor<T>& targets) {
            prefetcher->next(epoch, batch, inputs, targets);
        };
        return source;
    }

    Index batches_per_epoch() const { return prefetcher_->batches_per_epoch(); }
    Shape sample_shape() const { return prefetcher_->sample_shape(); }
    // The errors of the samples left out so far (BadSample::Skip), one per sample and epoch, in
    // the order fit() received their batches; skipped().size() is the count.
    std::vector<std::string> skipped() const { return prefetcher_->skipped(); }

private:
    std::shared_ptr<detail::BatchPrefetcher<T>> prefetcher_;
};

}  // namespace latent
