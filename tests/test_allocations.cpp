// A steady-state training step and an inference forward allocate no heap memory.
//
// This executable replaces the global operator new/delete with counting versions, and (outside
// AddressSanitizer builds, whose runtime owns malloc) also counts the C allocation functions, by
// defining malloc & co. in the executable on top of glibc's __libc_* entry points. The second
// counter sees what operator new cannot: Eigen's aligned_malloc (e.g. GEMM packing buffers larger
// than EIGEN_STACK_ALLOCATION_LIMIT) and the thread library.
//
// The step under test is the body of fit()'s batch loop (training/fit.hpp) with one batch per
// epoch: shuffle the sample order, gather inputs and targets, corrupt the inputs, then
// train_step() (training/step.hpp) -- zero_grad, forward + loss + backward over the slices, the
// NaN/Inf checks and the optimizer step -- as fit() calls it. After warm-up steps (buffers grow to the batch,
// Adam creates its state, the worker pool starts its threads) further steps of the same batch size must
// make zero allocations, at 1 and at 2 threads. On failure the test prints a backtrace of the
// first counted allocation (`addr2line -f -C -e test_allocations ADDRESS` names the frames).
#include <catch2/catch.hpp>

#include <execinfo.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <numeric>
#include <string>
#include <vector>

#include <latent/latent.hpp>

#include "benchmarks/workloads.hpp"
#include "helpers.hpp"

// --------------------------------------------------------------------------- counting allocator

#if defined(__SANITIZE_ADDRESS__)
#define LATENT_TEST_COUNTS_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LATENT_TEST_COUNTS_MALLOC 0
#endif
#endif
#if !defined(LATENT_TEST_COUNTS_MALLOC) && defined(__GLIBC__)
#define LATENT_TEST_COUNTS_MALLOC 1
#elif !defined(LATENT_TEST_COUNTS_MALLOC)
#define LATENT_TEST_COUNTS_MALLOC 0
#endif

namespace {

// Counters live outside any function so that they are constant-initialised before the first
// allocation of the program; they are the one place a replaced allocator can keep its state.
std::atomic<bool> counting{false};
std::atomic<long> operator_new_calls{0};
std::atomic<long> malloc_calls{0};
// The first counted allocation's call stack.
constexpr int max_frames = 48;
void* first_frames[max_frames];
std::atomic<int> first_frame_count{0};
std::atomic<bool> first_taken{false};
thread_local bool inside_hook = false;

void note_allocation(std::atomic<long>& calls) {
    if (!counting.load(std::memory_order_relaxed) || inside_hook) return;
    calls.fetch_add(1, std::memory_order_relaxed);
    if (first_taken.exchange(true)) return;
    inside_hook = true;  // backtrace() must not count (or recurse into) itself
    first_frame_count = backtrace(first_frames, max_frames);
    inside_hook = false;
}

void* allocate(std::size_t size) {
    note_allocation(operator_new_calls);
    void* memory = std::malloc(size == 0 ? 1 : size);
    if (memory == nullptr) throw std::bad_alloc();
    return memory;
}

void* allocate_aligned(std::size_t size, std::align_val_t alignment) {
    note_allocation(operator_new_calls);
    const auto align = static_cast<std::size_t>(alignment);
    void* memory = std::aligned_alloc(align, (std::max<std::size_t>(size, 1) + align - 1) / align * align);
    if (memory == nullptr) throw std::bad_alloc();
    return memory;
}

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    try {
        return allocate(size);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return operator new(size, tag); }
void* operator new(std::size_t size, std::align_val_t alignment) { return allocate_aligned(size, alignment); }
void* operator new[](std::size_t size, std::align_val_t alignment) { return allocate_aligned(size, alignment); }
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
    try {
        return allocate_aligned(size, alignment);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t& tag) noexcept {
    return operator new(size, alignment, tag);
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete(void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete[](void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete(void* memory, std::align_val_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::align_val_t) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }
void operator delete(void* memory, std::align_val_t, const std::nothrow_t&) noexcept { std::free(memory); }
void operator delete[](void* memory, std::align_val_t, const std::nothrow_t&) noexcept { std::free(memory); }

#if LATENT_TEST_COUNTS_MALLOC
// glibc's allocator under its internal names: definitions here take precedence over libc's
// malloc for the whole process, and forward to the same allocator. free needs no counting.
extern "C" {
void* __libc_malloc(std::size_t size);
void* __libc_calloc(std::size_t count, std::size_t size);
void* __libc_realloc(void* memory, std::size_t size);
void* __libc_memalign(std::size_t alignment, std::size_t size);

void* malloc(std::size_t size) noexcept {
    note_allocation(malloc_calls);
    return __libc_malloc(size);
}
void* calloc(std::size_t count, std::size_t size) noexcept {
    note_allocation(malloc_calls);
    return __libc_calloc(count, size);
}
void* realloc(void* memory, std::size_t size) noexcept {
    note_allocation(malloc_calls);
    return __libc_realloc(memory, size);
}
void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
    note_allocation(malloc_calls);
    return __libc_memalign(alignment, size);
}
void* memalign(std::size_t alignment, std::size_t size) noexcept {
    note_allocation(malloc_calls);
    return __libc_memalign(alignment, size);
}
int posix_memalign(void** result, std::size_t alignment, std::size_t size) noexcept {
    note_allocation(malloc_calls);
    if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void* memory = __libc_memalign(alignment, size);
    if (memory == nullptr) return ENOMEM;
    *result = memory;
    return 0;
}
}
#endif

namespace {

using namespace latent;

struct Allocations {
    long operator_new = 0;
    long malloc_family = 0;  // includes the mallocs behind operator new; 0 when not counted
    long total() const { return operator_new + malloc_family; }
};

// Runs `body` with the counters on; prints the first allocation's call stack if there was one.
template <class Body> Allocations count_allocations(Body&& body) {
    void* frame[1];
    backtrace(frame, 1);  // the first call loads the unwinder (and allocates): not while counting
    operator_new_calls = 0;
    malloc_calls = 0;
    first_taken = false;
    counting = true;
    body();
    counting = false;
    const Allocations result{operator_new_calls.load(), malloc_calls.load()};
    if (result.total() > 0 && first_frame_count > 0) {
        static const char header[] = "first counted allocation (addr2line -f -C -e <this test> <address>):\n";
        (void)!write(STDERR_FILENO, header, sizeof header - 1);
        backtrace_symbols_fd(first_frames, first_frame_count, STDERR_FILENO);
    }
    return result;
}

// One iteration of fit()'s batch loop on a data set of exactly one batch (so every step starts
// an epoch and reshuffles), with fit()'s defaults: shuffling and check_finite on. Model: any
// model of fit()'s interface (training/step.hpp).
template <class Model> class ModelTrainingLoop {
public:
    ModelTrainingLoop(const bench::Workload& workload, Index batch, bool corrupt)
        : ModelTrainingLoop(bench::build_model(workload, 5), bench::random_batch(workload, batch, 9),
                            bench::make_loss(workload.loss), corrupt) {}
    ModelTrainingLoop(Model model, Tensor<float> data, Loss<float> loss, bool corrupt)
        : model_(std::move(model)),
          data_(std::move(data)),
          loss_(std::move(loss)),
          order_(static_cast<std::size_t>(data_.dimension(0))) {
        if (corrupt) corruption_ = GaussianNoise(0.0, 0.5);
    }

    void step() {
        const Index batch = data_.dimension(0);
        std::iota(order_.begin(), order_.end(), Index{0});
        Rng rng(derive_seed(1, streams::shuffle, static_cast<std::uint64_t>(epoch_)));
        shuffle(order_.begin(), order_.end(), rng);
        const ConstTensorView<float> clean = const_view<float>(detail::gather(data_, order_, 0, batch, inputs_));
        const ConstTensorView<float> targets = const_view<float>(detail::gather(data_, order_, 0, batch, targets_));
        if (corruption_) {
            if (corrupted_.size() < static_cast<std::size_t>(clean.size()))
                corrupted_.resize(static_cast<std::size_t>(clean.size()));
            corruption_(clean, TensorView<float>(corrupted_.data(), clean.dimensions()),
                        derive_seed(1, streams::corruption, static_cast<std::uint64_t>(epoch_)));
        }
        const ConstTensorView<float> x =
            corruption_ ? view<float>(static_cast<const float*>(corrupted_.data()), batch, model_.input_shape()) : clean;
        Batch<float> step_batch;
        step_batch.inputs = x.data();
        step_batch.targets = targets.data();
        step_batch.count = batch;
        step_batch.input_shape = step_batch.target_shape = model_.input_shape();
        step_batch.pass = Pass::training_batch(1, epoch_, 0, batch);
        step_batch.pass.logits = model_.has_logistic_output() && loss_.has_logits_gradient();
        step_batch.slice_size = detail::micro_batch_size<float>(model_, loss_, batch, 0);
        last_loss_ = train_step(model_, loss_, adam_, step_batch, scratch_).total();
        ++epoch_;
    }

    void infer() {
        const ConstTensorView<float> output = model_.forward(const_view(data_));
        last_output_ = output.data()[0];
    }

    double last_loss() const { return last_loss_; }

private:
    Model model_;
    Tensor<float> data_;
    Loss<float> loss_;
    Adam<float> adam_{1e-3};
    StepScratch<float> scratch_;
    CorruptionFn<float> corruption_;
    std::vector<Index> order_;
    std::vector<float> inputs_, targets_, corrupted_;
    int epoch_ = 0;
    double last_loss_ = 0;
    float last_output_ = 0;
};
using TrainingLoop = ModelTrainingLoop<Autoencoder<float>>;

constexpr int warmup_steps = 2;
constexpr int counted_steps = 3;

template <class MakeLoop> void check_training_steps(const std::string& name, MakeLoop&& make_loop) {
    for (const int threads : {1, 2}) {
        set_num_threads(threads);
        auto loop = make_loop();
        for (int i = 0; i < warmup_steps; ++i) loop.step();
        const Allocations allocations = count_allocations([&] {
            for (int i = 0; i < counted_steps; ++i) loop.step();
        });
        INFO(name << ", " << threads << " thread(s): " << allocations.operator_new << " operator new and "
                  << allocations.malloc_family << " malloc-family calls in " << counted_steps
                  << " training steps (malloc counted: " << LATENT_TEST_COUNTS_MALLOC << ")");
        CHECK(std::isfinite(loop.last_loss()));
        CHECK(allocations.operator_new == 0);
        CHECK(allocations.malloc_family == 0);
    }
    set_num_threads(1);
}

void check_training_steps(const std::string& workload_name, Index batch, bool corrupt) {
    check_training_steps(workload_name + ", batch " + std::to_string(batch),
                         [&] { return TrainingLoop(bench::find_workload(workload_name), batch, corrupt); });
}

void check_inference(const std::string& workload_name, Index batch) {
    for (const int threads : {1, 2}) {
        set_num_threads(threads);
        TrainingLoop loop(bench::find_workload(workload_name), batch, false);
        for (int i = 0; i < warmup_steps; ++i) loop.infer();
        const Allocations allocations = count_allocations([&] {
            for (int i = 0; i < counted_steps; ++i) loop.infer();
        });
        INFO(workload_name << ", batch " << batch << ", " << threads << " thread(s): " << allocations.operator_new
                           << " operator new and " << allocations.malloc_family << " malloc-family calls in "
                           << counted_steps << " inference forwards");
        CHECK(allocations.operator_new == 0);
        CHECK(allocations.malloc_family == 0);
    }
    set_num_threads(1);
}

}  // namespace

TEST_CASE("allocations: the counters see operator new and, outside sanitizer builds, malloc") {
    std::vector<int>* vector = nullptr;
    const Allocations by_new = count_allocations([&] { vector = new std::vector<int>(100); });
    delete vector;
    CHECK(by_new.operator_new == 2);  // the vector object and its 100 ints
    void* memory = nullptr;
    const Allocations by_malloc = count_allocations([&] { memory = std::malloc(64); });
    std::free(memory);
    CHECK(by_malloc.operator_new == 0);
    CHECK(by_malloc.malloc_family == LATENT_TEST_COUNTS_MALLOC);
}

TEST_CASE("allocations: steady-state training step of the dense autoencoder (W1), 1 and 2 threads") {
    check_training_steps("W1", 8, false);
}

TEST_CASE("allocations: steady-state training step of the MNIST conv denoiser (W2) with noise, 1 and 2 threads") {
    check_training_steps("W2", 4, true);
}

TEST_CASE("allocations: steady-state training step of the strided conv AE with Dense code (W3), 1 and 2 threads") {
    check_training_steps("W3", 4, false);
}

TEST_CASE("allocations: steady-state training steps with dropout, noise, batch norm and every penalty, 1 and 2 "
          "threads") {
    // Sliced (Dropout, noise, L1, contractive) and whole-batch (BatchNorm, KLSparsity) models.
    check_training_steps("dense AE with AdditiveNoise, ContractiveDense, ActivityL1, Dropout", [] {
        Autoencoder<float> model(Encoder<float>{Flatten<float>(), AdditiveNoise<float>(0.1), ContractiveDense<float>(64, 1e-3),
                                                Dropout<float>(0.2), Dense<float>(16), ReLU<float>(), ActivityL1<float>(1e-3)},
                                 Decoder<float>{Dense<float>(64), ReLU<float>(), Dense<float>(784), Sigmoid<float>(),
                                                Reshape<float>({1, 28, 28})},
                                 {1, 28, 28}, 5);
        return TrainingLoop(std::move(model), test::random_tensor<float>(24, {1, 28, 28}, 9, 0, 1),
                            BinaryCrossEntropy<float>(), true);
    });
    check_training_steps("conv AE with BatchNorm2D, BatchNorm and KLSparsity", [] {
        Autoencoder<float> model(Encoder<float>{Conv2D<float>(8, 3, 2), BatchNorm2D<float>(), ReLU<float>(), Flatten<float>(),
                                                Dense<float>(32), BatchNorm<float>(), Sigmoid<float>(),
                                                KLSparsity<float>(0.05, 0.1)},
                                 Decoder<float>{Dense<float>(784), Sigmoid<float>(), Reshape<float>({1, 28, 28})},
                                 {1, 28, 28}, 5);
        return TrainingLoop(std::move(model), test::random_tensor<float>(16, {1, 28, 28}, 9, 0, 1),
                            MeanSquaredError<float>(), false);
    });
}

TEST_CASE("allocations: steady-state training steps of a variational autoencoder, 1 and 2 threads") {
    // The step draws eps, computes the KL term and its gradient, and takes the BCE on the logits;
    // batches are sliced as fit() would slice them.
    for (const Index batch : {Index(24), Index(100)})
        check_training_steps("VAE 784-64-(8, 8), batch " + std::to_string(batch), [batch] {
            VAE<float> model(Encoder<float>{Flatten<float>(), Dense<float>(64), ReLU<float>(), Dense<float>(16)},
                             Decoder<float>{Dense<float>(64), ReLU<float>(), Dense<float>(784), Sigmoid<float>(),
                                            Reshape<float>({1, 28, 28})},
                             {1, 28, 28}, 5);
            return ModelTrainingLoop<VAE<float>>(std::move(model), test::random_tensor<float>(batch, {1, 28, 28}, 9, 0, 1),
                                                 BinaryCrossEntropy<float>(1e-7, Reduction::SumPerSample), false);
        });
}

TEST_CASE("allocations: steady-state inference forward of W1, W2 and W3, 1 and 2 threads") {
    check_inference("W1", 8);
    check_inference("W2", 4);
    check_inference("W3", 4);
}

namespace {

// Allocations made by a second forward + backward at the same batch and one at a smaller
// batch, after a first call at the full batch sized the scratch buffers.
template <class L> long steady_state_layer_allocations(const L& layer_value, const Shape& input) {
    Layer<float> layer = layer_value;
    Rng rng(0);
    layer.build(input, rng);
    const Index batch = 19, smaller = 6;
    const Tensor<float> x = test::random_tensor<float>(batch, input, 1);
    Tensor<float> y = make_tensor<float>(batch, layer.output_shape());
    Tensor<float> dx = make_tensor<float>(batch, input);
    const Tensor<float> dy = test::random_tensor<float>(batch, layer.output_shape(), 2);
    auto step = [&](Index count) {
        const auto x_part = batch_slice(view(x), 0, count);
        const auto y_part = batch_slice(view(y), 0, count);
        layer.forward(x_part, y_part);
        layer.backward(x_part, const_view(y_part), batch_slice(view(dy), 0, count),
                       batch_slice(view(dx), 0, count));
    };
    step(batch);
    return count_allocations([&] {
               step(batch);
               step(smaller);
           }).total();
}

}  // namespace

TEST_CASE("allocations: steady-state Conv2D (GEMM and direct paths) and ConvTranspose2D calls allocate nothing") {
    CHECK(steady_state_layer_allocations(Conv2D<float>(4, 3, 2), {3, 9, 7}) == 0);
    CHECK(steady_state_layer_allocations(Conv2D<float>(2, 3), {3, 9, 7}) == 0);  // direct path
    CHECK(steady_state_layer_allocations(ConvTranspose2D<float>(4, 3, 2), {3, 5, 4}) == 0);
}
