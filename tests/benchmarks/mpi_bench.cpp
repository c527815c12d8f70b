// mpi_bench: data-parallel training over MPI (latent/mpi.hpp), measured and projected.
//
//   mpirun -np R mpi_bench --mode train --workload W2 [--batch 32] [--threads 1] [--steps 60]
//                          [--chunks 8]
//     trains the workload through fit() on R processes (global batch --batch, cut into
//     --chunks chunks; --chunks 1 on one process: the default whole-batch step) and prints, from
//     process 0, images/s of the whole run and the milliseconds per step spent in the exchanges
//     (waiting for the slower process included).
//   mpirun -np 2 mpi_bench --mode latency [--calls 2000]
//     the time of one exchange of a few bytes between two processes: the latency term of the
//     cost model below.
//   mpirun -np R mpi_bench --mode exchange [--calls 20]
//     for each workload's gradient size: latent's exchange (all-to-all of segments, the tree,
//     all-gather of totals) against MPI_Allreduce on the same floats, milliseconds per call.
//   mpi_bench --mode project --alpha-us A [--threads 1]
//     on one process: each workload's training step time and gradient bytes, and the step time
//     projected for 2 to 64 machines at 10 and 100 Gbit/s from the ring all-reduce cost model,
//     t(n) = step * ceil(batch / n) / batch + 2 (n - 1) A + 2 (n - 1) / n * bytes / bandwidth,
//     and the scaling efficiency step / (n t(n)). The global batch stays the workload's (so the
//     weights stay those of one machine): each machine computes its share of whole samples. The
//     model is optimistic: the optimizer's update and each chunk's reading of the weights do not
//     shrink with n, and it counts them as if they did.
#include <latent/latent.hpp>
#include <latent/mpi.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "workloads.hpp"

namespace {

using namespace latent;
using Clock = std::chrono::steady_clock;

struct Options {
    std::string mode = "train";
    std::string workload = "W2";
    Index batch = 0;
    int threads = 1;
    int steps = 60;
    Index chunks = 8;
    long calls = 0;  // 0: 2000 exchanges in latency mode, 20 in exchange mode
    double alpha_us = -1;
};

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A communicator that adds the time spent in its exchanges to *seconds.
Communicator timed(Communicator inner, double* seconds) {
    Communicator outer = inner;
    outer.all_gather = [inner, seconds](const void* send, std::size_t bytes, void* receive) {
        const auto start = Clock::now();
        inner.all_gather(send, bytes, receive);
        *seconds += seconds_since(start);
    };
    outer.all_to_all = [inner, seconds](const void* send, std::size_t bytes, void* receive) {
        const auto start = Clock::now();
        inner.all_to_all(send, bytes, receive);
        *seconds += seconds_since(start);
    };
    return outer;
}

// Trains `steps` steps after one warm-up epoch of 4 steps; returns images/s and seconds per step
// in the exchanges.
std::pair<double, double> train(const bench::Workload& workload, Index batch, int steps, Index chunks,
                                const Communicator& communicator, int threads) {
    set_num_threads(threads);
    const int batches = 4;
    const Tensor<float> data = bench::random_batch(workload, batch * batches);
    auto model = bench::build_model(workload, 3);
    Adam<float> adam(1e-3);
    double exchange_seconds = 0, measured_exchange = 0;
    Clock::time_point start;
    FitOptions<float> options;
    options.batch_size = batch;
    options.epochs = 1 + (steps + batches - 1) / batches;
    options.verbose = 0;
    options.gradient_chunks = chunks;
    options.communicator = timed(communicator, &exchange_seconds);
    options.callbacks.push_back([&](EpochEnd<float>& end) {
        if (end.epoch == 0) {
            start = Clock::now();
            exchange_seconds = 0;
        }
        measured_exchange = exchange_seconds;
    });
    model.fit(data, data, bench::make_loss(workload.loss), adam, options);
    const double seconds = seconds_since(start);
    const double measured_steps = static_cast<double>((options.epochs - 1) * batches);
    return {measured_steps * static_cast<double>(batch) / seconds, measured_exchange / measured_steps};
}

int train_mode(const Options& options) {
    const Communicator world = mpi_communicator();
    const bench::Workload workload = bench::find_workload(options.workload);
    const Index batch = options.batch > 0 ? options.batch : workload.batches.front();
    const auto [images_per_second, exchange] = train(workload, batch, options.steps, options.chunks, world, options.threads);
    if (world.rank == 0)
        std::printf("RESULT mode=train workload=%s batch=%lld processes=%d threads=%d chunks=%lld images_per_s=%.1f "
                    "exchange_ms_per_step=%.3f\n",
                    workload.name.c_str(), static_cast<long long>(batch), world.ranks, options.threads,
                    static_cast<long long>(options.chunks), images_per_second, 1e3 * exchange);
    return 0;
}

// Round trips of the smallest exchanges: an all_to_all and an all_gather of 4 bytes per process.
int latency_mode(const Options& options) {
    const Communicator world = mpi_communicator();
    const long calls = options.calls > 0 ? options.calls : 2000;
    std::vector<float> send(static_cast<std::size_t>(world.ranks), 1.0f), receive(send.size());
    for (long call = 0; call < calls / 10; ++call) world.all_to_all(send.data(), sizeof(float), receive.data());
    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = Clock::now();
    for (long call = 0; call < calls; ++call) {
        world.all_to_all(send.data(), sizeof(float), receive.data());
        world.all_gather(send.data(), sizeof(float), receive.data());
    }
    const double per_exchange = seconds_since(start) / (2.0 * static_cast<double>(calls));
    if (world.rank == 0)
        std::printf("RESULT mode=latency processes=%d exchange_us=%.2f\n", world.ranks, 1e6 * per_exchange);
    return 0;
}

double milliseconds_per_call(long calls, const std::function<void()>& call) {
    call();
    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = Clock::now();
    for (long i = 0; i < calls; ++i) call();
    MPI_Barrier(MPI_COMM_WORLD);
    return 1e3 * seconds_since(start) / static_cast<double>(calls);
}

int exchange_mode(const Options& options) {
    const Communicator world = mpi_communicator();
    const BatchShare share = share_of(world, world.ranks);
    const long calls = options.calls > 0 ? options.calls : 20;
    for (const auto& workload : bench::all_workloads()) {
        const Index parameters = bench::build_model(workload, 3).parameter_count();
        const Index segment = (parameters + world.ranks - 1) / world.ranks;
        std::vector<float> local(static_cast<std::size_t>(segment * world.ranks), 1.0f), summed(local.size());
        detail::ExchangeScratch<float> scratch;
        const double tree = milliseconds_per_call(calls, [&] {
            detail::add_across_processes(world, share, world.ranks, local.data(), segment, scratch);
        });
        const double allreduce = milliseconds_per_call(calls, [&] {
            MPI_Allreduce(local.data(), summed.data(), static_cast<int>(parameters), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        });
        if (world.rank == 0)
            std::printf("RESULT mode=exchange processes=%d workload=%s gradient_mb=%.2f latent_ms=%.3f "
                        "mpi_allreduce_ms=%.3f ratio=%.2f\n",
                        world.ranks, workload.name.c_str(), 4e-6 * static_cast<double>(parameters), tree, allreduce,
                        tree / allreduce);
    }
    return 0;
}

int project_mode(const Options& options) {
    detail::require(options.alpha_us >= 0, "mpi_bench", "--mode project needs --alpha-us (from --mode latency)");
    std::printf("PROJECT alpha_us=%.2f threads=%d (per-step compute measured here; ring all-reduce model)\n",
                options.alpha_us, options.threads);
    for (const auto& workload : bench::all_workloads()) {
        const Index batch = workload.batches.front();
        const int steps = workload.name == "W4" ? 8 : 40;
        const double images_per_second = train(workload, batch, steps, 1, Communicator{}, options.threads).first;
        const double step = static_cast<double>(batch) / images_per_second;
        const double bytes = 4.0 * static_cast<double>(bench::build_model(workload, 3).parameter_count());
        std::printf("STEP workload=%s batch=%lld step_ms=%.2f gradient_mb=%.2f\n", workload.name.c_str(),
                    static_cast<long long>(batch), 1e3 * step, bytes / 1e6);
        for (double gbits : {10.0, 100.0})
            for (int machines : {2, 4, 8, 16, 32, 64}) {
                const double n = machines;
                const double exchange = 2 * (n - 1) * options.alpha_us * 1e-6 + 2 * (n - 1) / n * bytes * 8 / (gbits * 1e9);
                const double share = std::ceil(static_cast<double>(batch) / n) / static_cast<double>(batch);
                const double time = step * share + exchange;
                std::printf("SCALING workload=%s gbit_s=%.0f machines=%d step_ms=%.3f exchange_ms=%.3f speedup=%.2f "
                            "efficiency=%.2f\n",
                            workload.name.c_str(), gbits, machines, 1e3 * time, 1e3 * exchange, step / time,
                            step / (n * time));
            }
    }
    return 0;
}

[[noreturn]] void usage(const std::string& problem) {
    std::cerr << "mpi_bench: " << problem << "\n"
              << "usage: mpirun -np R mpi_bench --mode train --workload W1|W2|W3|W4 [--batch N] [--threads N] "
                 "[--steps N] [--chunks N]\n"
                 "       mpirun -np 2 mpi_bench --mode latency [--calls N]\n"
                 "       mpirun -np R mpi_bench --mode exchange [--calls N]\n"
                 "       mpi_bench --mode project --alpha-us A [--threads N]\n";
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) usage("missing value after " + flag);
        const std::string value = argv[++i];
        try {
            if (flag == "--mode") options.mode = value;
            else if (flag == "--workload") options.workload = value;
            else if (flag == "--batch") options.batch = std::stoll(value);
            else if (flag == "--threads") options.threads = std::stoi(value);
            else if (flag == "--steps") options.steps = std::stoi(value);
            else if (flag == "--chunks") options.chunks = std::stoll(value);
            else if (flag == "--calls") options.calls = std::stol(value);
            else if (flag == "--alpha-us") options.alpha_us = std::stod(value);
            else usage("unknown flag " + flag);
        } catch (const std::logic_error&) {
            usage("bad value '" + value + "' for " + flag);
        }
    }
    if (options.mode != "train" && options.mode != "latency" && options.mode != "exchange" && options.mode != "project")
        usage("--mode is train, latency, exchange or project");
    if (options.threads < 1 || options.steps < 1 || options.calls < 0 || options.batch < 0) usage("counts must be >= 1");
    return options;
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse(argc, argv);
    MPI_Init(&argc, &argv);
    int status = 0;
    try {
        if (options.mode == "train") status = train_mode(options);
        else if (options.mode == "latency") status = latency_mode(options);
        else if (options.mode == "exchange") status = exchange_mode(options);
        else status = project_mode(options);
    } catch (const std::exception& error) {
        std::cerr << "mpi_bench: " << error.what() << "\n";
        status = 1;
    }
    MPI_Finalize();
    return status;
}
