// fit(): the training loop. Epochs of shuffled mini-batches; each step is
//   forward -> loss and dLoss/dOutput -> backward -> finiteness check -> optimizer step.
// Determinism: shuffling, corruption and initialisation each draw from a stream derived from
// the one seed and the epoch/batch numbers (never from a running generator), so the same seed
// gives bit-identical weights with any thread count, and resuming at epoch k (initial_epoch)
// repeats exactly what an uninterrupted run would have done from epoch k on.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "../io/serialize.hpp"
#include "callbacks.hpp"
#include "history.hpp"
#include "progress.hpp"

namespace latent {

// Corrupts a clean batch into `corrupted` (same shape) from `seed`; see data/corruption.hpp.
template <class T>
using CorruptionFn = std::function<void(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed)>;

template <class T = float> struct FitOptions {
    int epochs = 1;            // train until this epoch count is reached (as Keras)
    int initial_epoch = 0;     // epochs already done: set it when resuming from a checkpoint
    Index batch_size = 32;
    bool shuffle = true;
    std::uint64_t seed = 0;    // drives shuffling and corruption
    double validation_split = 0.0;  // fraction of samples, taken from the end, kept for validation
    int verbose = 1;           // 0: silent; 1: progress on stderr
    std::vector<Callback<T>> callbacks;
    // Applied to every training batch's input (fresh noise per epoch and batch) and, with a fixed
    // seed, to the validation inputs. The targets stay clean: a denoising autoencoder.
    CorruptionFn<T> corruption;
    bool check_finite = true;  // stop with NumericError on a NaN/Inf loss or gradient
    // Samples per forward/backward pass within a batch. The parameter gradients accumulate over
    // the passes, so a step is the batch's step up to rounding. 0: chosen per model (see
    // detail::micro_batch_size): slices that keep activations in cache, else the whole batch.
    // (Exact because every latent layer treats samples independently; a user's layer that
    // mixes the samples of a batch needs micro_batch = batch_size.)
    Index micro_batch = 0;
};

// A stream of batches for data that does not fit in memory (like a Keras generator):
// next(epoch, batch, inputs, targets) fills the two tensors (resizing them as needed).
template <class T = float> struct BatchSource {
    Index batches_per_epoch = 0;
    std::function<void(int epoch, Index batch, Tensor<T>& inputs, Tensor<T>& targets)> next;
};

namespace detail {

template <class L, class = void> struct has_fuses_method : std::false_type {};
template <class L>
struct has_fuses_method<L, std::void_t<decltype(std::declval<const L&>().fuses_with_sigmoid())>>
    : std::true_type {};
template <class L, class = void> struct has_fuses_constant : std::false_type {};
template <class L>
struct has_fuses_constant<L, std::void_t<decltype(bool{L::fuses_with_sigmoid})>> : std::true_type {};
template <class L, class T, class = void> struct has_fused_compute : std::false_type {};
template <class L, class T>
struct has_fused_compute<L, T,
                         std::void_t<decltype(std::declval<const L&>().compute_from_sigmoid(
                             std::declval<ConstTensorView<T>>(), std::declval<ConstTensorView<T>>(),
                             std::declval<TensorView<T>>()))>> : std::true_type {};

// Whether `loss` offers the fused Sigmoid + loss gradient (BinaryCrossEntropy does).
template <class T, class LossType> bool loss_fuses_with_sigmoid(const LossType& loss) {
    if constexpr (!has_fused_compute<LossType, T>::value) return false;
    else if constexpr (has_fuses_method<LossType>::value) return loss.fuses_with_sigmoid();
    else if constexpr (has_fuses_constant<LossType>::value) return LossType::fuses_with_sigmoid;
    else return false;
}

template <class L, class = void> struct has_averages_constant : std::false_type {};
template <class L> struct has_averages_constant<L, std::void_t<decltype(bool{L::averages})>> : std::true_type {};
template <class L, class = void> struct has_averages_method : std::false_type {};
template <class L>
struct has_averages_method<L, std::void_t<decltype(bool{std::declval<const L&>().averages()})>> : std::true_type {};
template <class M, class = void> struct has_largest_activation : std::false_type {};
template <class M>
struct has_largest_activation<M, std::void_t<decltype(Index{std::declval<const M&>().largest_activation()})>>
    : std::true_type {};

// 1 when `loss` is a mean over elements, 0 when a sum, -1 when it does not say (a user's loss).
template <class LossType> int loss_reduction(const LossType& loss) {
    if constexpr (has_averages_method<LossType>::value) return loss.averages() ? 1 : 0;
    else if constexpr (has_averages_constant<LossType>::value) return LossType::averages ? 1 : 0;
    else return -1;
}

// Per-slice bytes of the model's largest activation: about one core's L2 cache (1 MiB on this
// generation of x86 cores); measured on the MNIST denoiser at batch 128, slices of 8 to 16
// samples train 1.1-1.3x faster than the whole batch at 2 threads.
constexpr Index micro_batch_bytes = Index(1) << 20;

// Samples per forward/backward pass for a batch of `batch` (slices of equal size, but the last).
// A layer whose input and output exceed the cache streams them through main memory, where two
// threads get little more bandwidth than one; passes over slices of the batch keep them in
// cache. Each pass reads every weight again, so the automatic choice (requested == 0) slices
// only models whose weights are smaller than one slice's largest activation. Slicing needs a
// loss that is a mean or a sum over elements, the two cases the slices can be weighted for.
template <class T, class Model, class LossType>
Index micro_batch_size(const Model& model, const LossType& loss, Index batch, Index requested) {
    if (requested > 0 && loss_reduction(loss) < 0)
        throw ArgumentError("fit: micro_batch needs a loss that says whether it averages or sums over "
                            "elements (a static constexpr bool averages, or an averages() method)");
    if (requested > 0) return std::min(requested, batch);
    if constexpr (!has_largest_activation<Model>::value) return batch;
    else {
        const Index largest = std::max<Index>(1, model.largest_activation());
        Index fitting = std::max<Index>(1, micro_batch_bytes / (largest * Index(sizeof(T))));
        if (loss_reduction(loss) < 0 || fitting >= batch || model.parameter_count() > fitting * largest)
            return batch;
        // A multiple of 8 samples splits into chunks that 2, 4 or 8 threads share evenly (10
        // samples made 5 chunks, and 2 threads ran 3 and 2 of them: 10-15% slower than 8).
        if (fitting >= 8) fitting -= fitting % 8;
        const Index slices = (batch + fitting - 1) / fitting;
        return (batch + slices - 1) / slices;
    }
}

template <class T> void require_finite(ConstTensorView<T> data, const std::string& what) {
    const Index per_sample = std::max<Index>(1, data.size() / std::max<Index>(1, data.dimension(0)));
    for (Index i = 0; i < data.size(); ++i)
        if (!std::isfinite(data.data()[i]))
            throw NumericError(what + ": sample " + std::to_string(i / per_sample) + " holds a " +
                               (std::isnan(data.data()[i]) ? "NaN" : "infinite value") +
                               " (element " + std::to_string(i % per_sample) + ")");
}

template <class T> bool all_finite(const T* values, Index count) {
    return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(values, count).allFinite();  // vectorised
}

// Training and evaluation steps on one batch, with the buffers they reuse.
template <class T, class Model, class LossType> class Stepper {
public:
    Stepper(Model& model, const LossType& loss, Index micro_batch = 0)
        : model_(model), loss_(loss), micro_batch_(micro_batch) {}

    // Loss of the batch and dLoss/dParameters (accumulated into the model's gradients), in
    // passes over slices of the batch (micro_batch_size). A slice of n of the batch's N samples
    // adds n/N of its mean loss (or all of its sum) and of that loss's gradient.
    double loss_and_gradients(ConstTensorView<T> inputs, ConstTensorView<T> targets, int epoch, Index batch,
                              bool check_finite) {
        const Index count = inputs.dimension(0);
        const Chunks slices{count, micro_batch_size<T>(model_, loss_, count, micro_batch_)};
        double value = 0;
        for (Index slice = 0; slice < slices.count(); ++slice) {
            const Index first = slices.begin(slice), size = slices.size(slice);
            const double weight = slices.count() > 1 && loss_reduction(loss_) == 1
                                      ? static_cast<double>(size) / static_cast<double>(count) : 1.0;
            value += weight * slice_loss_and_gradients(batch_slice(inputs, first, size),
                                                       batch_slice(targets, first, size), weight);
        }
        if (check_finite && !std::isfinite(value))
            throw NumericError(where(epoch, batch) + "the loss is " + (std::isnan(value) ? "NaN" : "infinite") +
                               gradient_note() + "; the weights of the last good step were kept");
        return value;
    }

    double loss_only(ConstTensorView<T> inputs, ConstTensorView<T> targets) {
        const ConstTensorView<T> output = model_.forward(inputs);
        check_targets(output, targets);
        if (grad_.size() < static_cast<std::size_t>(output.size())) grad_.resize(static_cast<std::size_t>(output.size()));
        return loss_.compute(output, targets, TensorView<T>(grad_.data(), output.dimensions()));
    }

    bool fused_sigmoid() const { return loss_fuses_with_sigmoid<T>(loss_) && model_.ends_with_sigmoid(); }

    // Applies the optimizer's step. With check_finite the gradients are checked first: a NaN or
    // infinite gradient stops training before the step, so the weights stay those of the last
    // good step. The weights are checked after the step as well: an update that overflows (a
    // learning rate far too high) also stops training -- its weights cannot be taken back
    // without a copy of every weight at every step, which would cost as much memory as the
    // weights themselves.
    template <class OptimizerType>
    void step(OptimizerType& optimizer, int epoch, Index batch, bool check_finite) {
        const auto& parameters = model_.parameters();
        if (check_finite && !all_finite_in(&Parameter<T>::grad))
            throw NumericError(where(epoch, batch) + "the gradient of " + model_.first_nonfinite_gradient() +
                               " is not finite; the weights of the last good step were kept");
        optimizer.step(parameters);
        if (check_finite && !all_finite_in(&Parameter<T>::value))
            throw NumericError(where(epoch, batch) +
                               "the update made weights non-finite (learning rate too high?); training stopped");
    }

private:
    // One pass: forward, the loss and its gradient scaled by `weight`, backward.
    double slice_loss_and_gradients(ConstTensorView<T> inputs, ConstTensorView<T> targets, double weight) {
        const ConstTensorView<T> output = model_.forward(inputs);
        check_targets(output, targets);
        const bool fused = fused_sigmoid();
        if (grad_.size() < static_cast<std::size_t>(output.size())) grad_.resize(static_cast<std::size_t>(output.size()));
        TensorView<T> grad(grad_.data(), output.dimensions());
        double value = 0;
        if constexpr (has_fused_compute<LossType, T>::value)
            value = fused ? loss_.compute_from_sigmoid(output, targets, grad) : loss_.compute(output, targets, grad);
        else
            value = loss_.compute(output, targets, grad);
        if (weight != 1.0) scale(grad_.data(), grad.size(), static_cast<T>(weight));
        model_.backward(const_view<T>(grad), fused);
        return value;
    }

    // Whether every parameter's `field` (value or grad) is free of NaN and infinity; the
    // parameters are scanned in parallel.
    bool all_finite_in(T* Parameter<T>::*field) {
        const auto& parameters = model_.parameters();
        results_.assign(parameters.size(), 1);
        Index total = 0;
        for (const auto& parameter : parameters) total += parameter.size;
        parallel_for(static_cast<Index>(parameters.size()), total, [&](Index p) {
            const Parameter<T>& parameter = parameters[static_cast<std::size_t>(p)];
            results_[static_cast<std::size_t>(p)] = all_finite(parameter.*field, parameter.size) ? 1 : 0;
        });
        return std::all_of(results_.begin(), results_.end(), [](char ok) { return ok != 0; });
    }

    static void scale(T* values, Index count, T factor) {
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(values, count) *= factor;
    }

    static std::string where(int epoch, Index batch) {
        return "epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(batch + 1) + ": ";
    }
    std::string gradient_note() const {
        const std::string layer = model_.first_nonfinite_gradient();
        return layer.empty() ? std::string() : " (first non-finite gradient, from the output: " + layer + ")";
    }
    static void check_targets(ConstTensorView<T> output, ConstTensorView<T> targets) {
        // Shapes per sample: the tensors may be a slice of the batch the user passed.
        if (output.dimensions() != targets.dimensions())
            throw ShapeError("fit: targets have shape " + sample_shape<T>(targets).str() + " but the model outputs " +
                             sample_shape<T>(output).str());
    }

    Model& model_;
    const LossType& loss_;
    Index micro_batch_;  // FitOptions::micro_batch
    std::vector<T> grad_;
    std::vector<char> results_;
};

// Copies samples order[first, first + count) of `source` into `batch` (grown, never shrunk).
template <class T>
TensorView<T> gather(const Tensor<T>& source, const std::vector<Index>& order, Index first, Index count,
                     std::vector<T>& batch) {
    const Shape shape = sample_shape(source);
    const Index size = shape.size();
    if (batch.size() < static_cast<std::size_t>(count * size)) batch.resize(static_cast<std::size_t>(count * size));
    for (Index i = 0; i < count; ++i)
        std::memcpy(batch.data() + i * size, source.data() + order[static_cast<std::size_t>(first + i)] * size,
                    sizeof(T) * static_cast<std::size_t>(size));
    return view<T>(batch.data(), count, shape);
}

// Weights of all parameters, copied out / written back, for callbacks.
template <class T, class Model> std::vector<std::vector<T>> copy_weights(Model& model) {
    std::vector<std::vector<T>> weights;
    for (const auto& parameter : model.parameters()) weights.emplace_back(parameter.value, parameter.value + parameter.size);
    return weights;
}
template <class T, class Model> void restore_weights(Model& model, const std::vector<std::vector<T>>& weights) {
    const auto& parameters = model.parameters();
    if (weights.size() != parameters.size()) throw ArgumentError("set_weights: wrong number of parameter arrays");
    for (std::size_t p = 0; p < parameters.size(); ++p) {
        if (weights[p].size() != static_cast<std::size_t>(parameters[p].size))
            throw ArgumentError("set_weights: parameter " + std::to_string(p) + " has the wrong size");
        std::copy(weights[p].begin(), weights[p].end(), parameters[p].value);
    }
}

// The epoch loop shared by both fit() forms. `run_batch(epoch, b)` trains on batch b and
// returns {loss, samples}; `validate()` returns the validation loss or NaN.
template <class T, class Model, class OptimizerType, class RunBatch, class Validate>
History run_epochs(Model& model, OptimizerType& optimizer, const FitOptions<T>& options, Index batches,
                   RunBatch&& run_batch, Validate&& validate) {
    detail::require(options.epochs >= options.initial_epoch, "fit",
                    "epochs (" + std::to_string(options.epochs) + ") is below initial_epoch (" +
                        std::to_string(options.initial_epoch) + ")");
    detail::require(options.initial_epoch >= 0, "fit", "initial_epoch must be >= 0");
    History history;
    ProgressBar progress(options.verbose, options.epochs);
    for (int epoch = options.initial_epoch; epoch < options.epochs; ++epoch) {
        const auto start = std::chrono::steady_clock::now();
        progress.start_epoch(epoch, batches);
        model.set_training(true);
        double loss_sum = 0;
        long long samples = 0;
        for (Index b = 0; b < batches; ++b) {
            const auto [loss, count] = run_batch(epoch, b);
            loss_sum += loss * static_cast<double>(count);
            samples += count;
            progress.update(b + 1, samples, loss_sum / static_cast<double>(samples));
        }
        model.set_training(false);
        const double val_loss = validate();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        history.epoch.push_back(epoch);
        history.loss.push_back(samples > 0 ? loss_sum / static_cast<double>(samples) : NAN);
        history.val_loss.push_back(val_loss);
        history.seconds.push_back(seconds);
        progress.end_epoch(samples, history.loss.back(), val_loss, seconds);

        EpochEnd<T> end;
        end.epoch = epoch;
        end.history = &history;
        end.get_weights = [&] { return copy_weights<T>(model); };
        end.set_weights = [&](const std::vector<std::vector<T>>& weights) { restore_weights<T>(model, weights); };
        end.save_checkpoint = [&, epochs_done = epoch + 1](const std::string& path) {
            save_checkpoint(path, model, optimizer, epochs_done);  // found by argument-dependent lookup
        };
        for (auto& callback : options.callbacks) callback(end);
        if (end.stop) {
            history.stopped_early = epoch + 1 < options.epochs;
            break;
        }
    }
    return history;
}

}  // namespace detail

// Mean loss over a whole data set, in batches (inference mode). With a corruption, the inputs
// are corrupted from `corruption_seed` first.
template <class T, class Model, class LossType>
double evaluate(Model& model, const Tensor<T>& inputs, const Tensor<T>& targets, const LossType& loss,
                Index batch_size = 256, const CorruptionFn<T>& corruption = {}, std::uint64_t corruption_seed = 0) {
    detail::require(batch_size >= 1, "evaluate", "batch_size must be >= 1");
    if (inputs.dimension(0) != targets.dimension(0))
        throw ShapeError("evaluate: " + std::to_string(inputs.dimension(0)) + " inputs but " +
                         std::to_string(targets.dimension(0)) + " targets");
    model.set_training(false);
    detail::Stepper<T, Model, LossType> stepper(model, loss);
    std::vector<T> corrupted;
    double sum = 0;
    const Index count = inputs.dimension(0);
    for (Index first = 0; first < count; first += batch_size) {
        const Index n = std::min(batch_size, count - first);
        const ConstTensorView<T> clean = batch_slice<T>(view(inputs), first, n);
        if (corruption) {
            corrupted.resize(static_cast<std::size_t>(clean.size()));
            corruption(clean, TensorView<T>(corrupted.data(), clean.dimensions()),
                       derive_seed(corruption_seed, static_cast<std::uint64_t>(first)));
        }
        const ConstTensorView<T> batch_inputs = corruption ? view<T>(static_cast<const T*>(corrupted.data()), n, sample_shape(inputs)) : clean;
        sum += stepper.loss_only(batch_inputs, batch_slice<T>(view(targets), first, n)) * static_cast<double>(n);
    }
    return count > 0 ? sum / static_cast<double>(count) : NAN;
}

// Trains `model` to map `inputs` to `targets` (pass the same tensor twice for a plain
// autoencoder). Optional explicit validation data; otherwise options.validation_split.
template <class T, class Model, class LossType, class OptimizerType>
History fit(Model& model, const Tensor<T>& inputs, const Tensor<T>& targets, const LossType& loss,
            OptimizerType& optimizer, const FitOptions<T>& options = {},
            const Tensor<T>* validation_inputs = nullptr, const Tensor<T>* validation_targets = nullptr) {
    detail::require(options.batch_size >= 1, "fit", "batch_size must be >= 1");
    detail::require(options.micro_batch >= 0, "fit", "micro_batch must be >= 0 (0: automatic)");
    detail::require(options.validation_split >= 0 && options.validation_split < 1, "fit",
                    "validation_split must be in [0, 1)");
    if (inputs.dimension(0) != targets.dimension(0))
        throw ShapeError("fit: " + std::to_string(inputs.dimension(0)) + " inputs but " +
                         std::to_string(targets.dimension(0)) + " targets");
    if (sample_shape(inputs) != model.input_shape())
        throw ShapeError("fit: inputs have shape " + sample_shape(inputs).str() + " but the model expects " +
                         model.input_shape().str());
    if (sample_shape(targets) != model.output_shape())
        throw ShapeError("fit: targets have shape " + sample_shape(targets).str() + " but the model outputs " +
                         model.output_shape().str());
    if ((validation_inputs == nullptr) != (validation_targets == nullptr))
        throw ArgumentError("fit: give both validation inputs and validation targets, or neither");
    detail::require_finite<T>(view(inputs), "fit: inputs");
    detail::require_finite<T>(view(targets), "fit: targets");

    const Index total = inputs.dimension(0);
    const Index held_out = validation_inputs ? 0 : static_cast<Index>(std::floor(total * options.validation_split));
    const Index train_count = total - held_out;
    detail::require(train_count >= 1, "fit", "no training samples");
    const Index batches = (train_count + options.batch_size - 1) / options.batch_size;

    // Validation data: explicit, or the held-out tail (Keras takes the last samples, unshuffled).
    Tensor<T> tail_inputs, tail_targets;
    if (held_out > 0) {
        tail_inputs = inputs.slice(Eigen::array<Index, 4>{train_count, 0, 0, 0},
                                   Eigen::array<Index, 4>{held_out, inputs.dimension(1), inputs.dimension(2), inputs.dimension(3)});
        tail_targets = targets.slice(Eigen::array<Index, 4>{train_count, 0, 0, 0},
                                     Eigen::array<Index, 4>{held_out, targets.dimension(1), targets.dimension(2), targets.dimension(3)});
        validation_inputs = &tail_inputs;
        validation_targets = &tail_targets;
    }

    detail::Stepper<T, Model, LossType> stepper(model, loss, options.micro_batch);
    std::vector<Index> order(static_cast<std::size_t>(train_count));
    std::vector<T> batch_inputs, batch_targets, corrupted;
    auto run_batch = [&](int epoch, Index b) -> std::pair<double, Index> {
        if (b == 0) {
            std::iota(order.begin(), order.end(), Index{0});
            if (options.shuffle) {
                Rng rng(derive_seed(options.seed, streams::shuffle, static_cast<std::uint64_t>(epoch)));
                shuffle(order.begin(), order.end(), rng);
            }
        }
        const Index first = b * options.batch_size;
        const Index count = std::min(options.batch_size, train_count - first);
        const ConstTensorView<T> clean = const_view<T>(detail::gather(inputs, order, first, count, batch_inputs));
        // An autoencoder's targets are usually its inputs: the same samples, gathered once.
        const ConstTensorView<T> y = &targets == &inputs ? clean
                                     : const_view<T>(detail::gather(targets, order, first, count, batch_targets));
        if (options.corruption) {
            if (corrupted.size() < static_cast<std::size_t>(clean.size())) corrupted.resize(static_cast<std::size_t>(clean.size()));
            options.corruption(clean, TensorView<T>(corrupted.data(), clean.dimensions()),
                               derive_seed(options.seed, streams::corruption, static_cast<std::uint64_t>(epoch),
                                           static_cast<std::uint64_t>(b)));
        }
        // (Eigen maps copy values on assignment, so the input view is chosen, not reassigned.)
        const ConstTensorView<T> x = options.corruption ? view<T>(static_cast<const T*>(corrupted.data()), count, sample_shape(inputs)) : clean;
        model.zero_grad();
        const double value = stepper.loss_and_gradients(x, y, epoch, b, options.check_finite);
        stepper.step(optimizer, epoch, b, options.check_finite);
        return {value, count};
    };
    auto validate = [&]() -> double {
        if (!validation_inputs) return NAN;
        return evaluate(model, *validation_inputs, *validation_targets, loss, std::max<Index>(options.batch_size, 256),
                        options.corruption, derive_seed(options.seed, streams::corruption, ~std::uint64_t{0}));
    };
    return detail::run_epochs<T>(model, optimizer, options, batches, run_batch, validate);
}

// Trains from a batch source (data streamed from disk, generated, or corrupted on the fly).
template <class T, class Model, class LossType, class OptimizerType>
History fit(Model& model, const BatchSource<T>& source, const LossType& loss, OptimizerType& optimizer,
            const FitOptions<T>& options = {}) {
    detail::require(source.batches_per_epoch >= 1 && static_cast<bool>(source.next), "fit",
                    "the batch source needs batches_per_epoch >= 1 and a next() function");
    detail::require(options.micro_batch >= 0, "fit", "micro_batch must be >= 0 (0: automatic)");
    detail::Stepper<T, Model, LossType> stepper(model, loss, options.micro_batch);
    Tensor<T> inputs, targets;
    auto run_batch = [&](int epoch, Index b) -> std::pair<double, Index> {
        source.next(epoch, b, inputs, targets);
        if (inputs.dimension(0) != targets.dimension(0))
            throw ShapeError("fit: batch source gave " + std::to_string(inputs.dimension(0)) + " inputs but " +
                             std::to_string(targets.dimension(0)) + " targets");
        if (options.check_finite) {
            detail::require_finite<T>(const_view(inputs), "fit: batch source inputs");
            detail::require_finite<T>(const_view(targets), "fit: batch source targets");
        }
        model.zero_grad();
        const double value = stepper.loss_and_gradients(const_view(inputs), const_view(targets), epoch, b,
                                                       options.check_finite);
        stepper.step(optimizer, epoch, b, options.check_finite);
        return {value, inputs.dimension(0)};
    };
    return detail::run_epochs<T>(model, optimizer, options, source.batches_per_epoch, run_batch, [] { return NAN; });
}

}  // namespace latent
