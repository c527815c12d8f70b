// Data-parallel training over MPI gives the weights of one process, bit for bit. Run as
//   mpirun -np 1|2|4 [--oversubscribe] mpi_training
// Every check trains a small convolutional autoencoder with dropout, noise and Adam (batches
// whose last one is smaller than the chunk count, so some chunks are empty) on this run's
// processes, and compares with the same fit() on one process alone, at 1 and 2 threads. Each
// process checks; process 0 prints one line per check; the exit status is 1 if any failed.
#include <latent/latent.hpp>
#include <latent/mpi.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

using namespace latent;

namespace {

constexpr Index chunks = 8;

// Pixels uniform in [0, 1): the same on every process, from the seed.
Tensor<float> random_images(Index count, std::uint64_t seed) {
    Rng rng(seed);
    Tensor<float> images(count, 1, 8, 8);
    for (Index i = 0; i < images.size(); ++i) images.data()[i] = static_cast<float>(rng.uniform(0, 1));
    return images;
}

Autoencoder<float> model() {
    return Autoencoder<float>(
        Encoder<float>{Conv2D<float>(4, 3), ReLU<float>(), MaxPool2D<float>(2), Flatten<float>(), Dropout<float>(0.2),
                       Dense<float>(8), ReLU<float>()},
        Decoder<float>{Dense<float>(64), ReLU<float>(), Reshape<float>({4, 4, 4}), UpSample2D<float>(2),
                       Conv2D<float>(1, 3), Sigmoid<float>()},
        {1, 8, 8}, 11);
}

FitOptions<float> options(int epochs, const Communicator& communicator) {
    FitOptions<float> fit_options;
    fit_options.epochs = epochs;
    fit_options.batch_size = 20;  // 86 samples: batches of 20, 20, 20, 20, 6 (chunks 0 and 4 of the last empty)
    fit_options.seed = 5;
    fit_options.verbose = 0;
    fit_options.corruption = GaussianNoise(0.0, 0.1);
    fit_options.communicator = communicator;
    fit_options.gradient_chunks = chunks;
    return fit_options;
}

std::vector<float> weights(const Autoencoder<float>& trained) {
    std::vector<float> all;
    for (const auto& parameter : trained.parameters()) all.insert(all.end(), parameter.value, parameter.value + parameter.size);
    return all;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// One process alone, `threads` threads: the reference.
std::vector<float> alone(int epochs, int threads, const Tensor<float>& data, History* history = nullptr) {
    set_num_threads(threads);
    auto reference = model();
    Adam<float> adam(3e-3);
    const History trained = reference.fit(data, data, MeanSquaredError<float>(), adam, options(epochs, Communicator{}));
    if (history) *history = trained;
    set_num_threads(1);
    return weights(reference);
}

struct Checks {
    int rank = 0;
    bool failed = false;
    void report(const std::string& name, bool passed, const std::string& detail = "") {
        failed = failed || !passed;
        if (rank == 0 || !passed)
            std::printf("%s (process %d): %s%s%s\n", passed ? "PASS" : "FAIL", rank, name.c_str(),
                        detail.empty() ? "" : ": ", detail.c_str());
        std::fflush(stdout);
    }
};

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("latent_mpi_" + name)).string();
}

void in_memory(const Communicator& world, const Tensor<float>& data, Checks& checks) {
    auto distributed = model();
    Adam<float> adam(3e-3);
    set_num_threads(1);
    const History history = distributed.fit(data, data, MeanSquaredError<float>(), adam, options(3, world));
    History reference_history;
    const std::vector<float> one_thread = alone(3, 1, data, &reference_history);
    const std::vector<float> two_threads = alone(3, 2, data);
    checks.report(std::to_string(world.ranks) + " processes: weights bit-identical to one process at 1 thread",
                  same_bits(weights(distributed), one_thread));
    checks.report(std::to_string(world.ranks) + " processes: weights bit-identical to one process at 2 threads",
                  same_bits(weights(distributed), two_threads));
    checks.report("History: the loss of every epoch equals one process's", history.loss == reference_history.loss);
}

void streamed(const Communicator& world, const Tensor<float>& data, Checks& checks) {
    const std::string path = temp_path("data.npy");
    if (world.rank == 0) save_npy(path, data);
    MPI_Barrier(MPI_COMM_WORLD);
    StreamOptions stream_options;
    stream_options.batch_size = 20;
    stream_options.seed = 5;
    stream_options.share = share_of(world, chunks);
    {
        BatchStream<float> stream = stream_npy<float>(path, stream_options);
        auto distributed = model();
        Adam<float> adam(3e-3);
        distributed.fit(stream.source(), MeanSquaredError<float>(), adam, options(3, world));
        checks.report("streamed .npy, each process reading its share: weights bit-identical to one process in memory",
                      same_bits(weights(distributed), alone(3, 1, data)));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (world.rank == 0) std::filesystem::remove(path);
}

// Epoch 1 on the first half of the processes (one alone, for a run of two), checkpointed; epochs
// 2 and 3 resumed from the file on all of them.
void resumed_elsewhere(const Communicator& world, const Tensor<float>& data, Checks& checks) {
    const std::string path = temp_path("resume.latent");
    const int half = std::max(1, world.ranks / 2);
    MPI_Comm first_half;
    MPI_Comm_split(MPI_COMM_WORLD, world.rank < half ? 0 : 1, world.rank, &first_half);
    if (world.rank < half) {
        const Communicator part = mpi_communicator(first_half);
        auto first = model();
        Adam<float> adam(3e-3);
        auto first_options = options(1, part);
        first_options.callbacks.push_back(Checkpoint<float>(path));
        first.fit(data, data, MeanSquaredError<float>(), adam, first_options);
    }
    MPI_Comm_free(&first_half);
    MPI_Barrier(MPI_COMM_WORLD);
    TrainingProgress<float> progress;
    auto resumed = Autoencoder<float>::load(path, progress);
    auto resume_options = options(3, world);
    resume_options.resume_from(progress);
    resumed.fit(data, data, MeanSquaredError<float>(), *progress.optimizer, resume_options);
    checks.report("1 epoch on " + std::to_string(half) + " process(es), resumed on " + std::to_string(world.ranks) +
                      ": weights bit-identical to 3 epochs on one process",
                  same_bits(weights(resumed), alone(3, 1, data)));
    MPI_Barrier(MPI_COMM_WORLD);
    if (world.rank == 0) std::filesystem::remove(path);
}

// What one process's failure does to the others: they stop too, naming it; nobody waits.
void failures(const Communicator& world, const Tensor<float>& data, Checks& checks) {
    if (world.ranks == 1) return;
    BatchSource<float> source;
    source.batches_per_epoch = 5;
    source.share = share_of(world, chunks);
    source.batch_size = 20;
    source.sample_count = 86;
    source.next = [&](int, Index batch, Tensor<float>& inputs, Tensor<float>& targets) {
        if (batch == 2 && world.rank == world.ranks - 1) throw FormatError("sample file 'broken.png' is truncated");
        const Index count = std::min<Index>(20, 86 - batch * 20);
        inputs = samples(data, batch * 20 + source.share.first(count), source.share.end(count) - source.share.first(count));
        targets = Tensor<float>();
    };
    std::string message;
    try {
        auto failing = model();
        Adam<float> adam(3e-3);
        failing.fit(source, MeanSquaredError<float>(), adam, options(1, world));
    } catch (const Error& error) {
        message = error.what();
    }
    const bool named = world.rank == world.ranks - 1
                           ? message.find("broken.png") != std::string::npos
                           : message.find("process " + std::to_string(world.ranks - 1)) != std::string::npos &&
                                 message.find("broken.png") != std::string::npos;
    checks.report("a read error on the last process stops every process, naming the process and the file", named,
                  message);

    auto different = model();
    if (world.rank == 1) different.parameters()[0].value[0] += 1.0f;
    message.clear();
    try {
        Adam<float> adam(3e-3);
        different.fit(data, data, MeanSquaredError<float>(), adam, options(1, world));
    } catch (const ArgumentError& error) {
        message = error.what();
    }
    checks.report("different initial weights on one process are refused before training",
                  message.find("process 1") != std::string::npos && message.find("weights") != std::string::npos, message);
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    Checks checks;
    {
        const Communicator world = mpi_communicator();
        checks.rank = world.rank;
        const Tensor<float> data = random_images(86, 3);
        try {
            in_memory(world, data, checks);
            streamed(world, data, checks);
            resumed_elsewhere(world, data, checks);
            failures(world, data, checks);
        } catch (const std::exception& error) {
            checks.report("no unexpected exception", false, error.what());
        }
        int failed = checks.failed ? 1 : 0, any_failed = 0;
        MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        checks.failed = any_failed != 0;
    }
    MPI_Finalize();
    return checks.failed ? 1 : 0;
}
