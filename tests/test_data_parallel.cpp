// Data-parallel training (core/communicator.hpp, training/gradient_tree.hpp): batches in chunks
// give the gradients of the whole batch, and a run over several processes -- here threads of
// this test, whose exchanges meet in memory -- gives one process's weights bit for bit.
// tests/mpi runs the same over MPI.
#include "helpers.hpp"

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

using namespace latent;

namespace {

// `ranks` communicators whose exchanges meet in memory, one per thread of a test: each exchange
// returns once every rank has made it.
class Loopback {
public:
    explicit Loopback(int ranks) : ranks_(ranks), blocks_(static_cast<std::size_t>(ranks)) {}

    Communicator communicator(int rank) {
        Communicator communicator;
        communicator.rank = rank;
        communicator.ranks = ranks_;
        communicator.all_gather = [this, rank](const void* send, std::size_t bytes, void* receive) {
            exchange(rank, send, bytes, [&](const std::vector<char>& block, int from) {
                std::memcpy(static_cast<char*>(receive) + from * bytes, block.data(), bytes);
            });
        };
        communicator.all_to_all = [this, rank](const void* send, std::size_t bytes, void* receive) {
            exchange(rank, send, bytes * static_cast<std::size_t>(ranks_), [&](const std::vector<char>& block, int from) {
                std::memcpy(static_cast<char*>(receive) + from * bytes, block.data() + rank * bytes, bytes);
            });
        };
        return communicator;
    }

private:
    // Posts `bytes` from `send`, waits for every rank's, reads each with `take`, and waits again
    // so that nobody posts the next exchange before all have read this one.
    template <class Take> void exchange(int rank, const void* send, std::size_t bytes, Take&& take) {
        std::unique_lock<std::mutex> lock(mutex_);
        blocks_[static_cast<std::size_t>(rank)].assign(static_cast<const char*>(send), static_cast<const char*>(send) + bytes);
        wait_for_all(lock);
        for (int from = 0; from < ranks_; ++from) take(blocks_[static_cast<std::size_t>(from)], from);
        wait_for_all(lock);
    }
    void wait_for_all(std::unique_lock<std::mutex>& lock) {
        const std::uint64_t generation = generation_;
        if (++arrived_ == ranks_) {
            arrived_ = 0;
            ++generation_;
            all_arrived_.notify_all();
        } else {
            all_arrived_.wait(lock, [&] { return generation_ != generation; });
        }
    }

    const int ranks_;
    std::vector<std::vector<char>> blocks_;
    std::mutex mutex_;
    std::condition_variable all_arrived_;
    int arrived_ = 0;
    std::uint64_t generation_ = 0;
};

template <class T> Autoencoder<T> conv_model_with_dropout() {
    return Autoencoder<T>(Encoder<T>{Conv2D<T>(4, 3), ReLU<T>(), MaxPool2D<T>(2), Flatten<T>(), Dropout<T>(0.2), Dense<T>(6)},
                          Decoder<T>{Dense<T>(64), Reshape<T>({4, 4, 4}), UpSample2D<T>(2), Conv2D<T>(1, 3), Sigmoid<T>()},
                          {1, 8, 8}, 21);
}

template <class T> Tensor<T> patterns(Index count) {
    Rng rng(17);
    Tensor<T> data(count, 1, 8, 8);
    for (Index i = 0; i < data.size(); ++i) data.data()[i] = static_cast<T>(rng.uniform(0, 1));
    return data;
}

// Batches of 12, 12, 12 and 1: in 16 chunks, the last batch leaves every chunk but one empty, and
// on 4 processes three hold no sample at all.
constexpr Index sample_count = 37;

FitOptions<float> chunked(int epochs, Index chunks) {
    FitOptions<float> options;
    options.epochs = epochs;
    options.batch_size = 12;
    options.seed = 9;
    options.verbose = 0;
    options.corruption = GaussianNoise(0.0, 0.2);
    options.gradient_chunks = chunks;
    return options;
}

std::vector<float> weights_of(const Autoencoder<float>& model) {
    std::vector<float> weights;
    for (const auto& parameter : model.parameters()) weights.insert(weights.end(), parameter.value, parameter.value + parameter.size);
    return weights;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

std::vector<float> train_alone(Index chunks, int threads) {
    set_num_threads(threads);
    const Tensor<float> data = patterns<float>(sample_count);
    auto model = conv_model_with_dropout<float>();
    Adam<float> adam(3e-3);
    model.fit(data, data, MeanSquaredError<float>(), adam, chunked(2, chunks));
    set_num_threads(1);
    return weights_of(model);
}

// Runs `process(rank, communicator)` on `ranks` threads, each a process of a Loopback run;
// returns each one's error message ("" if none).
std::vector<std::string> run_processes(int ranks, const std::function<void(int, const Communicator&)>& process) {
    Loopback loopback(ranks);
    std::vector<std::string> errors(static_cast<std::size_t>(ranks));
    std::vector<std::thread> threads;
    for (int rank = 0; rank < ranks; ++rank)
        threads.emplace_back([&, rank, communicator = loopback.communicator(rank)] {
            try {
                process(rank, communicator);
            } catch (const std::exception& error) {
                errors[static_cast<std::size_t>(rank)] = error.what();
            }
        });
    for (auto& thread : threads) thread.join();
    return errors;
}

// Trains on `ranks` Loopback processes; returns every one's weights.
std::vector<std::vector<float>> train_on(int ranks, Index chunks) {
    const Tensor<float> data = patterns<float>(sample_count);
    std::vector<std::vector<float>> weights(static_cast<std::size_t>(ranks));
    const auto errors = run_processes(ranks, [&](int rank, const Communicator& communicator) {
        auto model = conv_model_with_dropout<float>();
        Adam<float> adam(3e-3);
        auto options = chunked(2, chunks);
        options.communicator = communicator;
        model.fit(data, data, MeanSquaredError<float>(), adam, options);
        weights[static_cast<std::size_t>(rank)] = weights_of(model);
    });
    for (const auto& error : errors) REQUIRE(error.empty());
    return weights;
}

}  // namespace

TEST_CASE("gradient chunks: a step's gradients and loss equal the whole batch's (double, 1e-12)", "[data_parallel]") {
    const Tensor<double> data = patterns<double>(13);
    auto gradients = [&](Index chunks, double* loss) {
        auto model = conv_model_with_dropout<double>();
        Batch<double> batch;
        batch.inputs = batch.targets = data.data();
        batch.count = 13;
        batch.input_shape = batch.target_shape = Shape{1, 8, 8};
        batch.pass = Pass::training_batch(4, 0, 0, 13);
        batch.share.chunks = chunks;
        StepScratch<double> scratch;
        SGD<double> no_update(0.0);
        *loss = train_step(model, Loss<double>(MeanSquaredError<double>()), no_update, batch, scratch).total();
        std::vector<double> all;
        for (const auto& parameter : model.parameters()) all.insert(all.end(), parameter.grad, parameter.grad + parameter.size);
        return all;
    };
    double whole_loss = 0;
    const std::vector<double> whole = gradients(1, &whole_loss);
    for (Index chunks : {2, 4, 16}) {  // 16 > 13 samples: three chunks are empty
        double loss = 0;
        const std::vector<double> parts = gradients(chunks, &loss);
        REQUIRE(parts.size() == whole.size());
        double largest = 0, difference = 0;
        for (std::size_t i = 0; i < whole.size(); ++i) {
            largest = std::max(largest, std::abs(whole[i]));
            difference = std::max(difference, std::abs(parts[i] - whole[i]));
        }
        INFO("chunks " << chunks);
        CHECK(difference <= 1e-12 * largest);
        CHECK(std::abs(loss - whole_loss) <= 1e-12 * whole_loss);
        CHECK(largest > 0);
    }
}

TEST_CASE("gradient chunks: the same weights at 1 and 2 threads, and not those of whole batches", "[data_parallel]") {
    const std::vector<float> one_thread = train_alone(16, 1);
    CHECK(same_bits(one_thread, train_alone(16, 2)));
    CHECK_FALSE(same_bits(one_thread, train_alone(1, 1)));  // the tree adds in another order
}

TEST_CASE("data parallel: 2 and 4 processes train the weights of one, bit for bit", "[data_parallel]") {
    const std::vector<float> alone = train_alone(16, 1);
    for (int ranks : {2, 4}) {
        const auto weights = train_on(ranks, 16);
        for (int rank = 0; rank < ranks; ++rank) {
            INFO(ranks << " processes, process " << rank);
            CHECK(same_bits(weights[static_cast<std::size_t>(rank)], alone));
        }
    }
}

TEST_CASE("data parallel: chunk and process counts outside the rule are refused", "[data_parallel]") {
    const Tensor<float> data = patterns<float>(sample_count);
    auto model = conv_model_with_dropout<float>();
    Adam<float> adam;
    auto options = chunked(1, 6);
    test::expect_error<ArgumentError>([&] { model.fit(data, data, MeanSquaredError<float>(), adam, options); },
                                      "gradient_chunks must be a power of two, got 6");
    Loopback loopback(4);
    options = chunked(1, 2);
    options.communicator = loopback.communicator(0);
    test::expect_error<ArgumentError>([&] { model.fit(data, data, MeanSquaredError<float>(), adam, options); },
                                      "at most gradient_chunks (2)");
    Autoencoder<float> with_batch_norm(Encoder<float>{Flatten<float>(), Dense<float>(4), BatchNorm<float>()},
                                       Decoder<float>{Dense<float>(64), Reshape<float>({1, 8, 8})}, {1, 8, 8}, 1);
    test::expect_error<ArgumentError>(
        [&] { with_batch_norm.fit(data, data, MeanSquaredError<float>(), adam, chunked(1, 4)); }, "statistics of a whole batch");
}

TEST_CASE("data parallel: a stream reads only its process's share of each batch", "[data_parallel][streaming]") {
    const Index count = 45;
    for (int rank = 0; rank < 2; ++rank) {
        StreamOptions options;
        options.batch_size = 12;
        options.shuffle = false;
        options.share = BatchShare{rank, 2, 4};
        std::mutex mutex;
        std::vector<Index> read;
        BatchStream<float> stream(count, Shape{1, 1, 1}, [&](Index index, float* value) {
            *value = static_cast<float>(index);
            std::lock_guard<std::mutex> lock(mutex);
            read.push_back(index);
        }, options);
        const BatchSource<float> source = stream.source();
        Tensor<float> inputs, targets;
        std::vector<Index> given;
        for (Index b = 0; b < source.batches_per_epoch; ++b) {
            source.next(0, b, inputs, targets);
            for (Index i = 0; i < inputs.dimension(0); ++i) given.push_back(static_cast<Index>(inputs.data()[i]));
        }
        // Batches of 12, 12, 12, 9 in 4 chunks; rank 0 holds chunks 0-1, rank 1 chunks 2-3.
        std::vector<Index> expected;
        for (Index first = 0; first < count; first += 12) {
            const Index size = std::min<Index>(12, count - first);
            for (Index i = rank == 0 ? 0 : size / 2; i < (rank == 0 ? size / 2 : size); ++i) expected.push_back(first + i);
        }
        INFO("process " << rank);
        CHECK(given == expected);
        std::lock_guard<std::mutex> lock(mutex);
        CHECK(read.size() <= expected.size() + 2 * 6);  // its share, and at most two batches read ahead into epoch 2
    }
    StreamOptions skipping;
    skipping.share = BatchShare{0, 2, 2};
    skipping.bad_sample = BadSample::Skip;
    test::expect_error<ArgumentError>(
        [&] { BatchStream<float>(10, Shape{1, 1, 1}, [](Index, float* value) { *value = 0; }, skipping); },
        "BadSample::Skip needs one process");
}

TEST_CASE("data parallel: an error on one process stops every process, naming it", "[data_parallel]") {
    const Tensor<float> data = patterns<float>(sample_count);
    const auto errors = run_processes(2, [&](int rank, const Communicator& communicator) {
        auto options = chunked(1, 2);
        options.communicator = communicator;
        BatchSource<float> source;
        source.batches_per_epoch = 4;
        source.share = share_of(communicator, 2);
        source.batch_size = 12;
        source.sample_count = sample_count;
        source.next = [&](int, Index batch, Tensor<float>& inputs, Tensor<float>& targets) {
            if (rank == 1 && batch == 2) throw FormatError("'faces/0042.png' is truncated");
            const Index count = std::min<Index>(12, sample_count - batch * 12);
            inputs = samples(data, batch * 12 + source.share.first(count), source.share.end(count) - source.share.first(count));
            targets = Tensor<float>();
        };
        auto model = conv_model_with_dropout<float>();
        Adam<float> adam;
        model.fit(source, MeanSquaredError<float>(), adam, options);
    });
    CHECK(errors[1] == "'faces/0042.png' is truncated");
    CHECK(errors[0] == "fit: process 1 of 2 stopped: 'faces/0042.png' is truncated");
}

TEST_CASE("data parallel: processes that start from different weights are refused before the first step", "[data_parallel]") {
    const Tensor<float> data = patterns<float>(sample_count);
    const auto errors = run_processes(2, [&](int rank, const Communicator& communicator) {
        auto model = conv_model_with_dropout<float>();
        if (rank == 1) model.parameters().back().value[0] += 0.5f;
        auto options = chunked(1, 2);
        options.communicator = communicator;
        Adam<float> adam;
        model.fit(data, data, MeanSquaredError<float>(), adam, options);
    });
    for (const auto& error : errors) CHECK_THAT(error, Catch::StartsWith("fit: process 1 of 2 has other weights"));
}

TEST_CASE("data parallel: only the first process writes files", "[data_parallel]") {
    const test::TempFolder folder("data_parallel_writer");
    const Tensor<float> data = patterns<float>(sample_count);
    const auto path = [&](int rank) { return folder / ("history" + std::to_string(rank) + ".csv"); };
    const auto errors = run_processes(2, [&](int rank, const Communicator& communicator) {
        auto model = conv_model_with_dropout<float>();
        auto options = chunked(1, 2);
        options.communicator = communicator;
        options.callbacks.push_back(CsvLogger<float>(path(rank)));
        options.callbacks.push_back(Checkpoint<float>(path(rank) + ".latent"));
        Adam<float> adam;
        model.fit(data, data, MeanSquaredError<float>(), adam, options);
    });
    REQUIRE(errors[0].empty());
    REQUIRE(errors[1].empty());
    CHECK(std::filesystem::exists(path(0)));
    CHECK(std::filesystem::exists(path(0) + ".latent"));
    CHECK_FALSE(std::filesystem::exists(path(1)));
    CHECK_FALSE(std::filesystem::exists(path(1) + ".latent"));
}

TEST_CASE("gradient chunks: each chunk's corruption noise comes from its own stream", "[data_parallel]") {
    Tensor<float> clean(8, 1, 4, 4);
    clean.setConstant(0.5f);
    FitOptions<float> options;
    options.corruption = GaussianNoise(0.0, 0.1);
    std::vector<float> chunked_noise, second_half;
    const float* noisy = detail::corrupted_inputs(options, const_view(clean), 0, 0, BatchShare{0, 1, 2}, 8, chunked_noise);
    const Index sample = 16;
    // Chunks 0 and 1 hold samples 0-3 and 4-7 of identical inputs: their first samples' noise differs.
    CHECK_FALSE(std::equal(noisy, noisy + sample, noisy + 4 * sample));
    // Process 1 of 2 corrupts its share (chunk 1) alone, as the whole batch's chunk 1 was.
    const float* share = detail::corrupted_inputs(options, const_view(latent::samples(clean, 4, 4)), 0, 0,
                                                  BatchShare{1, 2, 2}, 8, second_half);
    CHECK(std::equal(share, share + 4 * sample, noisy + 4 * sample));
}
