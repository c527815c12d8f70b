// latent_bench: trains or runs one benchmark workload (workloads.hpp) for a while and prints one
// machine-readable RESULT line with the throughput and the process's peak resident memory.
// One run measures one thing in a fresh process, so peak RSS belongs to that workload alone.
//
//   latent_bench --workload W2 --batch 128 --threads 2 --mode train [--seconds 2] [--warmup 2]
//
// Training goes through latent::fit() -- what a user calls -- on a data set of exactly one batch
// (so every step sees the same batch, as in torch_bench.py), one step per epoch, with fit()'s
// defaults: shuffling and the NaN/Inf check on. A callback times the epochs after the warm-up
// and stops fit() once --seconds have passed. --loop step makes the calls fit() makes for a
// batch (zero_grad, forward + loss + backward, checked optimizer step) without the epoch loop,
// to show what the loop itself costs. Inference is Autoencoder::reconstruct() on the batch
// (eval mode, forward only, result copied into a new tensor as a user gets it).
//
//   latent_bench --workload W1 --mode latency [--calls 10000] [--serve frozen|model]
//
// W5, the deployment case: one sample at a time through forward() of a Frozen copy of the model
// (models/frozen.hpp; --serve model: of the model itself) and its anomaly score (the
// mean squared reconstruction error), --calls times; prints the p50 and p99 latency in
// microseconds and the heap allocations per call (counted by this program's operator new).
//
//   latent_bench --gemm-peak --threads N
//
// The float GEMM kernel's speed on 1024^3 (each of N threads multiplies its share of the
// columns), in GFLOP/s, as the ceiling the workloads' achieved GFLOP/s are compared with.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <iostream>
#include <limits>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "workloads.hpp"

// Every heap allocation through operator new, so the latency mode can show it makes none per
// call. (Aligned and nothrow forms are not replaced: their default versions do not count.)
std::atomic<long long> heap_allocations{0};

namespace {
void* counted_allocation(std::size_t size) {
    heap_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
    throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) { return counted_allocation(size); }
void* operator new[](std::size_t size) { return counted_allocation(size); }
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { std::free(memory); }

namespace {

using namespace latent;
using Clock = std::chrono::steady_clock;

struct Options {
    std::string workload = "W2";
    Index batch = 0;  // 0: the workload's first batch size
    int threads = 1;
    std::string mode = "train";  // train | infer | latency
    std::string loop = "fit";    // fit | step
    double seconds = 2.0;
    int warmup = 2;
    int min_steps = 3;
    bool check_finite = true;
    Index micro_batch = 0;  // FitOptions::micro_batch (0: fit()'s automatic choice)
    Index gradient_chunks = 1;  // FitOptions::gradient_chunks (1: whole batches, fit()'s default)
    long calls = 10000;     // latency mode
    std::string serve = "frozen";  // latency mode: frozen | model
    bool gemm_peak = false;
};

struct Measurement {
    long long steps = 0;
    double seconds = 0;
    double cpu_seconds = 0;  // process CPU time over the timed steps (all threads)
    double last_loss = 0;
};

double process_cpu_seconds() {
    timespec now{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

long peak_rss_kb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;  // kilobytes on Linux
}

// Starts the clock after `warmup` steps and says when `seconds` and `min_steps` are both done.
class StepTimer {
public:
    explicit StepTimer(const Options& options) : options_(options) {}

    // Call after every step; returns true when the measurement is complete.
    bool step_done() {
        ++steps_;
        if (steps_ == options_.warmup) {
            start_ = Clock::now();
            cpu_start_ = process_cpu_seconds();
            return false;
        }
        if (steps_ < options_.warmup) return false;
        result_.steps = steps_ - options_.warmup;
        result_.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
        result_.cpu_seconds = process_cpu_seconds() - cpu_start_;
        return result_.seconds >= options_.seconds && result_.steps >= options_.min_steps;
    }
    Measurement result() const { return result_; }

private:
    const Options& options_;
    int steps_ = 0;
    Clock::time_point start_;
    double cpu_start_ = 0;
    Measurement result_;
};

Measurement train_with_fit(Autoencoder<float>& model, const Tensor<float>& batch, const Loss<float>& loss,
                           const Options& options) {
    Adam<float> adam(1e-3);
    StepTimer timer(options);
    FitOptions<float> fit;
    fit.epochs = std::numeric_limits<int>::max();  // the callback stops it
    fit.batch_size = batch.dimension(0);
    fit.verbose = 0;
    fit.check_finite = options.check_finite;
    fit.micro_batch = options.micro_batch;
    fit.gradient_chunks = options.gradient_chunks;
    fit.callbacks.push_back([&](EpochEnd<float>& end) { end.stop = timer.step_done(); });
    const History history = model.fit(batch, batch, loss, adam, fit);
    Measurement result = timer.result();
    result.last_loss = history.loss.back();
    return result;
}

Measurement train_with_steps(Autoencoder<float>& model, const Tensor<float>& batch, const Loss<float>& loss,
                             const Options& options) {
    Adam<float> adam(1e-3);
    StepTimer timer(options);
    StepScratch<float> scratch;
    Batch<float> step_batch;
    step_batch.inputs = step_batch.targets = batch.data();
    step_batch.count = batch.dimension(0);
    step_batch.input_shape = step_batch.target_shape = model.input_shape();
    step_batch.check_finite = options.check_finite;
    step_batch.slice_size = detail::micro_batch_size<float>(model, loss, step_batch.count, options.micro_batch);
    step_batch.share.chunks = options.gradient_chunks;
    double value = 0;
    for (Index step = 0;; ++step) {
        step_batch.pass = Pass::training_batch(0, 0, step, step_batch.count);
        step_batch.pass.logits = model.has_logistic_output() && loss.has_logits_gradient();
        value = train_step(model, loss, adam, step_batch, scratch).total();
        if (timer.step_done()) break;
    }
    Measurement result = timer.result();
    result.last_loss = value;
    return result;
}

Measurement infer(Autoencoder<float>& model, const Tensor<float>& batch, const Options& options) {
    StepTimer timer(options);
    double checksum = 0;
    for (;;) {
        const Tensor<float> output = model.reconstruct(batch, batch.dimension(0));
        checksum += static_cast<double>(output.data()[0]);  // keeps the work observable
        if (timer.step_done()) break;
    }
    Measurement result = timer.result();
    result.last_loss = checksum / static_cast<double>(result.steps + options.warmup);
    return result;
}

// W5: one sample per call, the way a service scores requests: through a Frozen copy of the
// model (--serve frozen, the default), or through the model itself (--serve model).
template <class Scorer> int measure_latency(Scorer& model, const bench::Workload& workload, const Options& options) {
    const Tensor<float> samples = bench::random_batch(workload, 64);
    const Index sample_size = workload.input.size();
    const auto score = [&](long call) {
        const ConstTensorView<float> input = view(samples.data() + (call % 64) * sample_size, 1, workload.input);
        const ConstTensorView<float> output = model.forward(input);
        double error = 0;
        for (Index i = 0; i < sample_size; ++i) {
            const double difference = static_cast<double>(output.data()[i]) - input.data()[i];
            error += difference * difference;
        }
        return error / static_cast<double>(sample_size);
    };
    double checksum = 0;
    for (long call = 0; call < 100; ++call) checksum += score(call);  // warm-up: buffers grow here
    std::vector<double> microseconds(static_cast<std::size_t>(options.calls));
    const long long allocations_before = heap_allocations.load();
    for (long call = 0; call < options.calls; ++call) {
        const auto start = Clock::now();
        checksum += score(call);
        microseconds[static_cast<std::size_t>(call)] = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    }
    const long long allocations = heap_allocations.load() - allocations_before;
    std::sort(microseconds.begin(), microseconds.end());
    const auto percentile = [&](double p) {
        return microseconds[static_cast<std::size_t>(p * static_cast<double>(microseconds.size() - 1))];
    };
    std::printf("RESULT framework=latent workload=%s batch=1 threads=%d mode=latency calls=%ld p50_us=%.2f p99_us=%.2f "
                "allocations_per_call=%.3f isa=%s checksum=%.6g serve=%s\n",
                workload.name.c_str(), options.threads, options.calls, percentile(0.5), percentile(0.99),
                static_cast<double>(allocations) / static_cast<double>(options.calls), isa_name(active_isa()),
                checksum, options.serve.c_str());
    return 0;
}

// The GEMM kernel on 1024^3: each thread multiplies A by its own block of B's columns.
int measure_gemm_peak(const Options& options) {
    constexpr Index n = 1024;
    const int threads = options.threads;
    using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const RowMatrix a = RowMatrix::Random(n, n), b = RowMatrix::Random(n, n);
    RowMatrix c(n, n);
    const Index share = (n + threads - 1) / threads;
    std::vector<std::vector<float>> workspaces(static_cast<std::size_t>(threads));
    for (auto& workspace : workspaces)
        workspace.resize(static_cast<std::size_t>(gemm_workspace_size<float>(n, share, n)));
    const auto multiply = [&] {
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t)
            workers.emplace_back([&, t] {
                const Index first = t * share, count = std::min(share, n - first);
                auto& workspace = workspaces[static_cast<std::size_t>(t)];
                gemm(c.middleCols(first, count), a, b.middleCols(first, count), workspace.data(),
                     static_cast<Index>(workspace.size()));
            });
        for (auto& worker : workers) worker.join();
    };
    multiply();
    double best = 1e30;
    const auto start = Clock::now();
    do {
        const auto begin = Clock::now();
        multiply();
        best = std::min(best, std::chrono::duration<double>(Clock::now() - begin).count());
    } while (std::chrono::duration<double>(Clock::now() - start).count() < options.seconds);
    std::printf("PEAK framework=latent kernel=%s threads=%d gflops=%.1f\n", isa_name(active_isa()), threads,
                2.0 * n * n * n / best / 1e9);
    return 0;
}

void usage(std::ostream& out) {
    out << "usage: latent_bench --workload W1|W2|W3|W4 [--batch N] [--threads N] [--mode train|infer|latency]\n"
           "                    [--loop fit|step] [--seconds S] [--warmup N] [--min-steps N] [--no-check-finite]\n"
           "                    [--micro-batch N]  (samples per forward/backward pass; default: automatic)\n"
           "                    [--gradient-chunks N]  (FitOptions::gradient_chunks; default 1)\n"
           "                    [--calls N]  (latency mode: one-sample calls to time; default 10000)\n"
           "                    [--serve frozen|model]  (latency mode: through Frozen, the default, or the model)\n"
           "       latent_bench --gemm-peak [--threads N] [--seconds S]   (float GEMM on 1024^3)\n"
           "       latent_bench --list     (the workloads and their batch sizes, one per line)\n"
           "Prints: RESULT framework=latent workload=.. batch=.. threads=.. mode=.. steps=.. seconds=..\n"
           "        img_per_s=.. gflops=.. cpu_util=.. peak_rss_kb=.. loss=.. isa=..\n";
}

Options parse(int argc, char** argv) {
    Options options;
    auto value = [&](int& i) -> std::string {
        if (i + 1 >= argc) throw ArgumentError(std::string(argv[i]) + " needs a value");
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--workload") options.workload = value(i);
        else if (flag == "--batch") options.batch = std::stol(value(i));
        else if (flag == "--threads") options.threads = std::stoi(value(i));
        else if (flag == "--mode") options.mode = value(i);
        else if (flag == "--loop") options.loop = value(i);
        else if (flag == "--seconds") options.seconds = std::stod(value(i));
        else if (flag == "--warmup") options.warmup = std::stoi(value(i));
        else if (flag == "--min-steps") options.min_steps = std::stoi(value(i));
        else if (flag == "--no-check-finite") options.check_finite = false;
        else if (flag == "--micro-batch") options.micro_batch = std::stol(value(i));
        else if (flag == "--gradient-chunks") options.gradient_chunks = std::stol(value(i));
        else if (flag == "--calls") options.calls = std::stol(value(i));
        else if (flag == "--serve") options.serve = value(i);
        else if (flag == "--gemm-peak") options.gemm_peak = true;
        else if (flag == "--list") {
            for (const auto& workload : bench::all_workloads())
                for (const Index batch : workload.batches)
                    std::cout << workload.name << " " << batch << "  " << workload.description << "\n";
            std::exit(0);
        }
        else if (flag == "--help" || flag == "-h") {
            usage(std::cout);
            std::exit(0);
        } else {
            throw ArgumentError("unknown argument '" + flag + "'");
        }
    }
    detail::require(options.mode == "train" || options.mode == "infer" || options.mode == "latency", "latent_bench",
                    "--mode is train, infer or latency");
    detail::require(options.calls >= 1, "latent_bench", "--calls must be >= 1");
    detail::require(options.serve == "frozen" || options.serve == "model", "latent_bench", "--serve is frozen or model");
    detail::require(options.threads >= 1, "latent_bench", "--threads must be >= 1");
    detail::require(options.loop == "fit" || options.loop == "step", "latent_bench", "--loop is fit or step");
    detail::require(options.warmup >= 1, "latent_bench", "--warmup must be >= 1");
    detail::require(options.min_steps >= 1, "latent_bench", "--min-steps must be >= 1");
    return options;
}

int run(int argc, char** argv) {
    Options options = parse(argc, argv);
    if (options.gemm_peak) return measure_gemm_peak(options);
    const bench::Workload workload = bench::find_workload(options.workload);
    if (options.batch == 0) options.batch = workload.batches.front();
    set_num_threads(options.threads);

    Autoencoder<float> model = bench::build_model(workload, 42);
    const Tensor<float> batch = bench::random_batch(workload, options.batch);
    if (options.mode == "latency" && options.serve == "model") return measure_latency(model, workload, options);
    if (options.mode == "latency") {
        Frozen<Autoencoder<float>> frozen(model);
        return measure_latency(frozen, workload, options);
    }
    const Loss<float> loss = bench::make_loss(workload.loss);
    Measurement result;
    if (options.mode == "infer") result = infer(model, batch, options);
    else if (options.loop == "fit") result = train_with_fit(model, batch, loss, options);
    else result = train_with_steps(model, batch, loss, options);

    const double images_per_second = static_cast<double>(result.steps * options.batch) / result.seconds;
    const double gflops = images_per_second * bench::flops_per_sample(workload, options.mode == "train") / 1e9;
    std::printf("RESULT framework=latent workload=%s batch=%ld threads=%d mode=%s loop=%s steps=%lld "
                "seconds=%.4f img_per_s=%.2f gflops=%.2f cpu_util=%.2f peak_rss_kb=%ld loss=%.6g threads_built=%d isa=%s "
                "gradient_chunks=%ld\n",
                workload.name.c_str(), static_cast<long>(options.batch), options.threads, options.mode.c_str(),
                options.mode == "infer" ? "reconstruct" : options.loop.c_str(), result.steps, result.seconds,
                images_per_second, gflops, result.cpu_seconds / result.seconds, peak_rss_kb(), result.last_loss,
                has_threads() ? 1 : 0, isa_name(active_isa()), static_cast<long>(options.gradient_chunks));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::cerr << "latent_bench: " << error.what() << "\n";
        usage(std::cerr);
        return 2;
    }
}
