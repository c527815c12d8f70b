// latent_microbench: per-layer speed at the benchmark workloads' shapes (workloads.hpp), in
// GFLOP/s next to the float GEMM peak this program measures on the same machine.
//
// FLOPs count 2*M*N*K per GEMM-equivalent:
//   Conv2D forward           2 * N * OH * OW * F * C * kh * kw
//   ConvTranspose2D forward  2 * N * H * W * C * F * kh * kw        (H, W: its input)
//   Dense forward            2 * N * inputs * units
//   backward                 2x forward (weight gradient + input gradient; the bias sums and
//                            the im2col/col2im copies are not counted)
// MaxPool2D and UpSample2D (W2's shapes) do no arithmetic to speak of: their rows show input
// elements per second (Gelem_per_s) instead.
// The peak: Eigen's float GEMM on row-major n x n matrices (n = 1024, 2048), 1 thread; the
// 2-thread peak runs two independent GEMMs at once on two std::threads (Eigen's own threading
// stays off, as in latent) and counts both. Each layer row shows pct_peak: its GFLOP/s over the
// 1024^3 peak for the same thread count, measured at start-up (best of 10).
// Time base: 1-thread rows and the 1-thread peak use the thread's CPU time (other processes on a
// shared machine do not inflate it); 2-thread rows and peaks use wall-clock time.
//
//   latent_microbench [--benchmark_filter=Conv2D] [--benchmark_min_time=0.5]
#include <benchmark/benchmark.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "workloads.hpp"

namespace {

using namespace latent;

// ---------------------------------------------------------------------------------------- GEMM

struct GemmOperands {
    Matrix<float> a, b, c;
    explicit GemmOperands(Index n)
        : a(Matrix<float>::Random(n, n)), b(Matrix<float>::Random(n, n)), c(Matrix<float>::Zero(n, n)) {}
    void multiply() { c.noalias() = a * b; }
};

double thread_cpu_seconds() {
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// One GEMM per thread, all at once; returns the wall time of the slowest. A single GEMM runs on
// the calling thread and returns its CPU time instead, which other processes on a shared
// machine do not inflate.
double concurrent_gemms(std::vector<GemmOperands>& operands) {
    if (operands.size() == 1) {
        const double start = thread_cpu_seconds();
        operands.front().multiply();
        return thread_cpu_seconds() - start;
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (auto& operand : operands) threads.emplace_back([&operand] { operand.multiply(); });
    for (auto& thread : threads) thread.join();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// GFLOP/s of `threads` concurrent n^3 GEMMs, best of `repeats`.
double measure_gemm_peak(Index n, int threads, int repeats) {
    Eigen::setNbThreads(1);
    std::vector<GemmOperands> operands;
    for (int t = 0; t < threads; ++t) operands.emplace_back(n);
    concurrent_gemms(operands);  // warm-up
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) best = std::min(best, concurrent_gemms(operands));
    return 2.0 * static_cast<double>(n * n * n) * threads / best * 1e-9;
}

void gemm_benchmark(benchmark::State& state, Index n, int threads) {
    Eigen::setNbThreads(1);
    std::vector<GemmOperands> operands;
    for (int t = 0; t < threads; ++t) operands.emplace_back(n);
    for (auto _ : state) {
        const double seconds = concurrent_gemms(operands);
        state.SetIterationTime(seconds);
        benchmark::DoNotOptimize(operands.front().c.data());
    }
    const double flops = 2.0 * static_cast<double>(n * n * n) * threads;
    state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// -------------------------------------------------------------------------------------- layers

struct Peaks {
    double one_thread = 0;   // GFLOP/s, 1024^3, 1 thread
    double two_threads = 0;  // GFLOP/s, two concurrent 1024^3 GEMMs
    double for_threads(int threads) const { return threads >= 2 ? two_threads : one_thread; }
};

struct LayerCase {
    std::string name;  // "W2 32->32 14x14"
    Index batch;
    Shape input;
    double forward_flops;
};

// Runs forward or backward of `layer` on `batch` samples of `input` with `threads` threads.
// (Through Layer<float>, as a model calls it: its shape checks cost nanoseconds.)
void layer_benchmark(benchmark::State& state, Layer<float> layer, const LayerCase& shape, bool backward,
                     int threads, const Peaks& peaks) {
    set_num_threads(threads);
    Rng rng(7);
    layer.build(shape.input, rng);
    const Shape output = layer.output_shape();
    bench::Workload random_input{"", "", shape.input, {}, bench::LossKind::MeanSquaredError};
    const Tensor<float> x = bench::random_batch(random_input, shape.batch, 3);
    Tensor<float> y = make_tensor<float>(shape.batch, output);
    Tensor<float> dy = make_tensor<float>(shape.batch, output);
    Tensor<float> dx = make_tensor<float>(shape.batch, shape.input);
    dy.setConstant(1e-3f);
    layer.forward(view(x), view(y));  // sizes the scratch buffers
    if (backward) layer.backward(view(x), const_view(y), const_view(dy), view(dx));
    for (auto _ : state) {
        if (backward) layer.backward(view(x), const_view(y), const_view(dy), view(dx));
        else layer.forward(view(x), view(y));
        benchmark::ClobberMemory();
    }
    state.counters["img_per_s"] = benchmark::Counter(static_cast<double>(shape.batch),
                                                     benchmark::Counter::kIsIterationInvariantRate);
    if (shape.forward_flops == 0) {  // a memory-bound layer: input elements per second instead
        state.counters["Gelem_per_s"] = benchmark::Counter(static_cast<double>(x.size()) * 1e-9,
                                                           benchmark::Counter::kIsIterationInvariantRate);
        return;
    }
    const double flops = shape.forward_flops * (backward ? 2.0 : 1.0);
    state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    // pct_peak = GFLOPS / peak * 100, expressed as a rate so the library divides by the time.
    state.counters["pct_peak"] = benchmark::Counter(flops * 1e-9 / peaks.for_threads(threads) * 100.0,
                                                    benchmark::Counter::kIsIterationInvariantRate);
}

double conv_flops(Index batch, const Shape& input, Index filters, Index kernel, Index stride) {
    const Index out_h = (input.height + stride - 1) / stride, out_w = (input.width + stride - 1) / stride;
    return 2.0 * static_cast<double>(batch * out_h * out_w * filters * input.channels * kernel * kernel);
}
double conv_transpose_flops(Index batch, const Shape& input, Index filters, Index kernel) {
    return 2.0 * static_cast<double>(batch * input.height * input.width * input.channels * filters * kernel * kernel);
}
double dense_flops(Index batch, const Shape& input, Index units) {
    return 2.0 * static_cast<double>(batch * input.size() * units);
}

struct ConvSpec {
    const char* workload;
    Index batch;
    Shape input;
    Index filters, stride;
};
struct DenseSpec {
    const char* workload;
    Index batch, inputs, units;
};

std::string shape_name(const char* workload, const Shape& input, Index filters, Index stride, Index batch) {
    std::string name = std::string(workload) + "/" + std::to_string(input.channels) + "->" +
                       std::to_string(filters) + "/" + std::to_string(input.height) + "x" +
                       std::to_string(input.width);
    if (stride != 1) name += "/s" + std::to_string(stride);
    return name + "/N" + std::to_string(batch);
}

template <class Make>
void register_both_passes(const std::string& kind, const LayerCase& shape, Make make, const Peaks& peaks) {
    for (const bool backward : {false, true})
        for (const int threads : {1, 2}) {
            const std::string name = kind + (backward ? "/backward/" : "/forward/") + shape.name + "/threads:" +
                                     std::to_string(threads);
            auto* registered = benchmark::RegisterBenchmark(name.c_str(), [=, &peaks](benchmark::State& state) {
                layer_benchmark(state, Layer<float>(make()), shape, backward, threads, peaks);
            });
            // 1 thread: rates per CPU second of the (only) thread, robust on a shared machine;
            // 2 threads: per wall-clock second, the only measure that counts both threads.
            registered->Unit(benchmark::kMicrosecond);
            if (threads > 1) registered->UseRealTime();
        }
}

void register_layers(const Peaks& peaks) {
    const std::vector<ConvSpec> convs{
        {"W2", 128, {1, 28, 28}, 32, 1},    {"W2", 128, {32, 14, 14}, 32, 1}, {"W2", 128, {32, 7, 7}, 32, 1},
        {"W2", 128, {32, 28, 28}, 1, 1},    {"W2", 32, {32, 14, 14}, 32, 1},
        {"W3", 50, {1, 32, 32}, 16, 2},     {"W3", 50, {16, 16, 16}, 32, 2}, {"W3", 50, {32, 8, 8}, 64, 2},
        {"W3", 50, {64, 4, 4}, 128, 2},
        {"W4", 16, {3, 128, 128}, 32, 2},   {"W4", 16, {32, 64, 64}, 64, 2}, {"W4", 16, {64, 32, 32}, 128, 2},
        {"W4", 16, {128, 16, 16}, 256, 2},
    };
    for (const auto& spec : convs) {
        const LayerCase shape{shape_name(spec.workload, spec.input, spec.filters, spec.stride, spec.batch),
                              spec.batch, spec.input,
                              conv_flops(spec.batch, spec.input, spec.filters, 3, spec.stride)};
        register_both_passes("Conv2D", shape, [spec] { return Conv2D<float>(spec.filters, 3, spec.stride); }, peaks);
    }
    const std::vector<ConvSpec> transposed{
        {"W3", 50, {128, 2, 2}, 64, 2},    {"W3", 50, {64, 4, 4}, 32, 2},   {"W3", 50, {32, 8, 8}, 16, 2},
        {"W3", 50, {16, 16, 16}, 1, 2},
        {"W4", 16, {256, 8, 8}, 128, 2},   {"W4", 16, {128, 16, 16}, 64, 2}, {"W4", 16, {64, 32, 32}, 32, 2},
        {"W4", 16, {32, 64, 64}, 3, 2},
    };
    for (const auto& spec : transposed) {
        const LayerCase shape{shape_name(spec.workload, spec.input, spec.filters, spec.stride, spec.batch),
                              spec.batch, spec.input,
                              conv_transpose_flops(spec.batch, spec.input, spec.filters, 3)};
        register_both_passes("ConvTranspose2D", shape,
                             [spec] { return ConvTranspose2D<float>(spec.filters, 3, spec.stride); }, peaks);
    }
    const std::vector<DenseSpec> denses{
        {"W1", 256, 784, 256}, {"W1", 256, 256, 128}, {"W1", 256, 128, 32}, {"W1", 256, 32, 128},
        {"W1", 256, 128, 256}, {"W1", 256, 256, 784}, {"W3", 50, 512, 256}, {"W3", 50, 256, 512},
        {"W4", 16, 16384, 300}, {"W4", 16, 300, 16384},
    };
    for (const auto& spec : denses) {
        const Shape input{spec.inputs, 1, 1};
        const LayerCase shape{std::string(spec.workload) + "/" + std::to_string(spec.inputs) + "->" +
                                  std::to_string(spec.units) + "/N" + std::to_string(spec.batch),
                              spec.batch, input, dense_flops(spec.batch, input, spec.units)};
        register_both_passes("Dense", shape, [spec] { return Dense<float>(spec.units); }, peaks);
    }
    // W2's memory-bound layers (no GEMM), for comparison with the convolutions around them.
    for (const Shape& input : {Shape{32, 28, 28}, Shape{32, 14, 14}}) {
        const LayerCase shape{shape_name("W2", input, 32, 1, 128), 128, input, 0};
        register_both_passes("MaxPool2D", shape, [] { return MaxPool2D<float>(2); }, peaks);
    }
    for (const Shape& input : {Shape{32, 7, 7}, Shape{32, 14, 14}}) {
        const LayerCase shape{shape_name("W2", input, 32, 1, 128), 128, input, 0};
        register_both_passes("UpSample2D", shape, [] { return UpSample2D<float>(2); }, peaks);
    }
}

void register_gemms() {
    for (const Index n : {1024, 2048})
        for (const int threads : {1, 2}) {
            const std::string name = "EigenGemm/" + std::to_string(n) + "^3/" +
                                     (threads == 1 ? std::string("threads:1") : "threads:2(two concurrent GEMMs)");
            benchmark::RegisterBenchmark(name.c_str(), [n, threads](benchmark::State& state) {
                gemm_benchmark(state, n, threads);
            })->Unit(benchmark::kMillisecond)->UseManualTime();
        }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    Peaks peaks;
    peaks.one_thread = measure_gemm_peak(1024, 1, 10);
    peaks.two_threads = measure_gemm_peak(1024, 2, 10);
    benchmark::AddCustomContext("gemm_peak_1024_1thread_GFLOPS", std::to_string(peaks.one_thread));
    benchmark::AddCustomContext("gemm_peak_1024_2threads_GFLOPS(two concurrent GEMMs)",
                                std::to_string(peaks.two_threads));
    benchmark::AddCustomContext("flops", "2*M*N*K per GEMM-equivalent; backward = 2x forward");
    register_gemms();
    register_layers(peaks);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
