// fit(): epochs, data, validation and callbacks around train_step() (step.hpp).
// Determinism: shuffling, corruption, stochastic layers and initialisation each draw from a
// stream derived from the one seed and the epoch/batch/sample numbers (never from a running
// generator), so the same seed gives bit-identical weights with any thread count, and resuming
// at epoch k (FitOptions::resume_from) repeats exactly what an uninterrupted run would have done
// from epoch k on.
// Several processes (FitOptions::communicator, latent/mpi.hpp): each trains on its share of every
// batch's chunks, the chunks' gradients are added in a fixed tree across them (step.hpp), and
// every process applies the same update; all compute the same validation and History, and only
// the first writes files. Same seed and gradient_chunks: the same weights on 1, 2, 4... processes
// at any thread count as on one process.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "../core/batch_source.hpp"
#include "../core/communicator.hpp"
#include "../core/crc32.hpp"
#include "../core/errors.hpp"
#include "../core/pass.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../io/serialize.hpp"
#include "../kernels/scan.hpp"
#include "../losses/loss.hpp"
#include "callbacks.hpp"
#include "history.hpp"
#include "progress.hpp"
#include "step.hpp"

namespace latent {

// Corrupts a clean batch into `corrupted` (same shape) from `seed`; see data/corruption.hpp.
template <class T>
using CorruptionFn = std::function<void(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed)>;

template <class T = float> struct FitOptions {
    int epochs = 1;            // the epoch count to reach (as Keras), counting epochs done before a resume
    int initial_epoch = 0;     // epochs already done (set by resume_from)
    Index batch_size = 32;
    bool shuffle = true;
    std::uint64_t seed = 0;    // drives shuffling, corruption and stochastic layers
    double validation_split = 0.0;  // fraction of samples, taken from the end, kept for validation
    int verbose = 1;           // 0: silent; 1: progress on stderr
    std::vector<Callback<T>> callbacks;
    // Applied to every training batch's input (fresh noise per epoch and batch) and, with a fixed
    // seed, to the validation inputs. The targets stay clean: a denoising autoencoder.
    CorruptionFn<T> corruption;
    bool check_finite = true;  // stop with NumericError on a NaN/Inf loss or gradient
    // Samples per forward/backward pass within a batch (step.hpp). 0: chosen per model (see
    // detail::micro_batch_size): slices that keep activations in cache, else the whole batch.
    // Exact for models whose layers treat samples independently; a model with layers that mix
    // samples (BatchNorm, KLSparsity) always passes whole batches, and refuses a micro_batch.
    Index micro_batch = 0;
    // The callbacks' states from a checkpoint, by position (set by resume_from).
    CallbackStates callback_states;
    // Data-parallel training (core/communicator.hpp): the processes of the run (default: this one
    // alone), and the chunks each batch is cut into -- a power of two, at least the process count.
    // The chunks' gradients are computed alone and added in a fixed tree, so a run with the same
    // gradient_chunks gives the same weights on any number of processes (and threads); 1: the
    // whole batch at once, as without this option.
    Communicator communicator;
    Index gradient_chunks = 1;

    // Continues the training a checkpoint recorded: its epoch count and its callbacks' states
    // (the same callbacks must be in `callbacks`, in the same order). `epochs` stays the total.
    void resume_from(const TrainingProgress<T>& progress) {
        initial_epoch = progress.epochs_done;
        callback_states = progress.callback_states;
    }
};

namespace detail {

// Per-slice bytes of the model's largest activation: a share of the last-level cache.
constexpr Index micro_batch_bytes = Index(4) << 20;

// Samples per forward/backward pass for a batch of `batch` (slices of equal size, but the last).
// A layer whose input and output exceed the cache streams them through main memory, where two
// threads get little more bandwidth than one; passes over slices of the batch keep them in the
// shared last-level cache. Slices much smaller cost more than they save: every layer of every
// slice is one parallel loop, whose threads meet at its end (the MNIST denoiser at batch 128,
// 2 threads: slices of 8 samples, 1 MiB, trained at 0.85 of the speed of slices of 32, 4 MiB;
// at 1 thread the two ran alike). Each pass reads every weight again, so the automatic choice
// (requested == 0) slices only models whose weights are smaller than one slice's largest
// activation. Slicing needs a loss that declares its Reduction (the slices are weighted by it)
// and a model whose layers treat samples independently.
template <class T, class Model>
Index micro_batch_size(const Model& model, const Loss<T>& loss, Index batch, Index requested) {
    const bool sliceable = loss.reduction().has_value() && !model.mixes_samples();
    if (requested > 0 && requested < batch && !loss.reduction())
        throw ArgumentError("fit: micro_batch needs a loss that declares its Reduction (a reduction() member): " +
                            loss.type() + " does not");
    if (requested > 0 && requested < batch && model.mixes_samples())
        throw ArgumentError("fit: micro_batch " + std::to_string(requested) +
                            " would split batches, but the model has layers that use the statistics of a whole "
                            "batch (BatchNorm, KLSparsity); leave micro_batch at 0");
    if (requested > 0) return std::min(requested, batch);
    const Index largest = std::max<Index>(1, model.largest_activation());
    Index fitting = std::max<Index>(1, micro_batch_bytes / (largest * Index(sizeof(T))));
    if (!sliceable || fitting >= batch || model.parameter_count() > fitting * largest) return batch;
    // A multiple of 8 samples splits into chunks that 2, 4 or 8 threads share evenly.
    if (fitting >= 8) fitting -= fitting % 8;
    const Index slices = (batch + fitting - 1) / fitting;
    return (batch + slices - 1) / slices;
}

template <class T> void require_finite(ConstTensorView<T> data, const std::string& what) {
    if (kernels::all_finite(data.data(), data.size())) return;  // the search below only on failure
    const Index per_sample = std::max<Index>(1, data.size() / std::max<Index>(1, data.dimension(0)));
    for (Index i = 0; i < data.size(); ++i)
        if (!std::isfinite(data.data()[i]))
            throw NumericError(what + ": sample " + std::to_string(i / per_sample) + " holds a " +
                               (std::isnan(data.data()[i]) ? "NaN" : "infinite value") +
                               " (element " + std::to_string(i % per_sample) + ")");
}

// Copies samples order[first, first + count) of `source` into `batch` (grown, never shrunk).
template <class T>
TensorView<T> gather(const Tensor<T>& source, const std::vector<Index>& order, Index first, Index count,
                     std::vector<T>& batch) {
    const Shape shape = sample_shape(source);
    const Index size = shape.size();
    grow(batch, count * size);
    for (Index i = 0; i < count; ++i)
        std::memcpy(batch.data() + i * size, source.data() + order[static_cast<std::size_t>(first + i)] * size,
                    sizeof(T) * static_cast<std::size_t>(size));
    return view<T>(batch.data(), count, shape);
}

// The inputs of training batch b of `epoch`: `clean` itself, or -- with options.corruption --
// its corrupted copy in `corrupted`, drawn from derive_seed(seed, streams::corruption, epoch, b).
// Both fit() forms call this, so a batch streamed from disk is corrupted exactly like the same
// batch gathered from memory.
// A batch in chunks (share.chunks > 1) is corrupted chunk by chunk, chunk c from
// derive_seed(batch's seed, c), so that a process corrupts its share of a batch alone. `clean`
// holds the share's samples of a batch of `count`.
template <class T, class Options>
const T* corrupted_inputs(const Options& options, ConstTensorView<T> clean, int epoch, Index b, const BatchShare& share,
                          Index count, std::vector<T>& corrupted) {
    if (!options.corruption) return clean.data();
    grow(corrupted, clean.size());
    const std::uint64_t seed =
        derive_seed(options.seed, streams::corruption, static_cast<std::uint64_t>(epoch), static_cast<std::uint64_t>(b));
    if (share.chunks == 1) {
        options.corruption(clean, TensorView<T>(corrupted.data(), clean.dimensions()), seed);
        return corrupted.data();
    }
    const Shape shape = sample_shape<T>(clean);
    for (Index chunk = share.first_chunk(); chunk < share.end_chunk(); ++chunk) {
        const Index first = chunk_begin(count, share.chunks, chunk) - share.first(count);
        const Index n = chunk_begin(count, share.chunks, chunk + 1) - share.first(count) - first;
        if (n > 0)
            options.corruption(view<T>(clean.data() + first * shape.size(), n, shape),
                               view<T>(corrupted.data() + first * shape.size(), n, shape),
                               derive_seed(seed, static_cast<std::uint64_t>(chunk)));
    }
    return corrupted.data();
}

// Before the first step of a run over several processes: every process must start from the same
// weights and options, or their exchanges would mix different models (or wait forever).
template <class T, class Model>
void check_processes_agree(const Communicator& communicator, Model& model, const FitOptions<T>& options, Index batches) {
    if (communicator.alone()) return;
    std::vector<std::uint32_t> checksums;
    for (const auto& parameter : model.parameters())
        checksums.push_back(crc32_of(reinterpret_cast<const char*>(parameter.value),
                                     sizeof(T) * static_cast<std::size_t>(parameter.size)));
    const std::uint64_t weights =
        crc32_of(reinterpret_cast<const char*>(checksums.data()), sizeof(std::uint32_t) * checksums.size());
    const std::vector<std::pair<const char*, std::uint64_t>> facts{
        {"weights (build and initialise the model alike everywhere, or load the same file)", weights},
        {"parameter count", static_cast<std::uint64_t>(model.parameter_count())},
        {"batches per epoch (batch_size and sample count)", static_cast<std::uint64_t>(batches)},
        {"gradient_chunks", static_cast<std::uint64_t>(options.gradient_chunks)},
        {"seed", options.seed},
        {"epochs", static_cast<std::uint64_t>(options.epochs)},
        {"initial_epoch", static_cast<std::uint64_t>(options.initial_epoch)},
        {"micro_batch", static_cast<std::uint64_t>(options.micro_batch)}};
    std::vector<std::uint64_t> mine, all(facts.size() * static_cast<std::size_t>(communicator.ranks));
    for (const auto& fact : facts) mine.push_back(fact.second);
    communicator.all_gather(mine.data(), sizeof(std::uint64_t) * mine.size(), all.data());
    for (int rank = 1; rank < communicator.ranks; ++rank)
        for (std::size_t f = 0; f < facts.size(); ++f)
            if (all[rank * facts.size() + f] != all[f])
                throw ArgumentError(std::string("fit: process ") + std::to_string(rank) + " of " +
                                    std::to_string(communicator.ranks) + " has other " + facts[f].first +
                                    " than process 0: every process must run the same fit()");
}

// Weights and buffers of the model, copied out / written back, for callbacks.
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

template <class T, class Model> bool any_nonzero_gradient(const Model& model) {
    for (const auto& parameter : model.parameters())
        if ((Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(parameter.grad, parameter.size) != T(0)).any())
            return true;
    return false;
}

template <class O> double learning_rate_of(const O& optimizer) {
    if constexpr (is_detected<learning_rate_op, O>) return optimizer.learning_rate();
    else return NAN;
}

// The sums over an epoch's batches of the objective's parts, weighted by batch size.
class EpochSums {
public:
    void start(std::size_t terms) {
        reconstruction_ = 0;
        terms_.assign(terms, 0.0);
        samples_ = 0;
    }
    void add(const StepValues& values, Index samples) {
        const double weight = static_cast<double>(samples);
        reconstruction_ += values.reconstruction * weight;
        for (std::size_t t = 0; t < terms_.size(); ++t) terms_[t] += values.terms[t] * weight;
        samples_ += samples;
    }
    long long samples() const { return samples_; }
    double mean_total() const {
        double total = reconstruction_;
        for (double term : terms_) total += term;
        return samples_ > 0 ? total / static_cast<double>(samples_) : NAN;
    }
    // "reconstruction" and then each term, as means.
    std::vector<double> mean_parts() const {
        std::vector<double> parts{reconstruction_};
        parts.insert(parts.end(), terms_.begin(), terms_.end());
        for (double& part : parts) part = samples_ > 0 ? part / static_cast<double>(samples_) : NAN;
        return parts;
    }

private:
    double reconstruction_ = 0;
    std::vector<double> terms_;
    long long samples_ = 0;
};

// Mean objective over a data set, in batches, in Evaluation mode (no noise, terms computed).
// With a corruption, the inputs are corrupted from `corruption_seed` first.
template <class T, class Model>
EpochSums evaluate_sums(Model& model, const Loss<T>& loss, const Tensor<T>& inputs, const Tensor<T>& targets,
                        Index batch_size, const CorruptionFn<T>& corruption, std::uint64_t corruption_seed) {
    detail::require(batch_size >= 1, "evaluate", "batch_size must be >= 1");
    if (inputs.dimension(0) != targets.dimension(0))
        throw ShapeError("evaluate: " + std::to_string(inputs.dimension(0)) + " inputs but " +
                         std::to_string(targets.dimension(0)) + " targets");
    StepScratch<T> scratch;
    std::vector<T> corrupted;
    EpochSums sums;
    sums.start(model.term_names().size());
    Batch<T> batch;
    batch.input_shape = sample_shape(inputs);
    batch.target_shape = sample_shape(targets);
    batch.pass = Pass::evaluation();
    batch.pass.logits = model.has_logistic_output() && loss.has_logits_gradient();
    for (Index first = 0; first < inputs.dimension(0); first += batch_size) {
        const Index n = std::min(batch_size, inputs.dimension(0) - first);
        const ConstTensorView<T> clean = batch_slice<T>(view(inputs), first, n);
        if (corruption) {
            grow(corrupted, clean.size());
            corruption(clean, TensorView<T>(corrupted.data(), clean.dimensions()),
                       derive_seed(corruption_seed, static_cast<std::uint64_t>(first)));
        }
        batch.inputs = corruption ? corrupted.data() : clean.data();
        batch.targets = batch_slice<T>(view(targets), first, n).data();
        batch.count = n;
        sums.add(evaluate_step(model, loss, batch, scratch), n);
    }
    return sums;
}

// The states of the callbacks that have one, named "<position>:<type>".
template <class T> CallbackStates callback_states(const std::vector<Callback<T>>& callbacks) {
    CallbackStates states;
    for (std::size_t i = 0; i < callbacks.size(); ++i)
        if (callbacks[i].has_state()) states.emplace_back(std::to_string(i) + ":" + callbacks[i].type(), callbacks[i].state());
    return states;
}

template <class T> void restore_callback_states(std::vector<Callback<T>>& callbacks, const CallbackStates& states) {
    for (const auto& [name, state] : states) {
        const auto colon = name.find(':');
        const std::size_t position = colon == std::string::npos ? callbacks.size() : std::stoul(name.substr(0, colon));
        if (position >= callbacks.size() || !callbacks[position].has_state() ||
            std::to_string(position) + ":" + callbacks[position].type() != name)
            throw ArgumentError("fit: the checkpoint holds the state of callback " + name +
                                ", which FitOptions::callbacks does not have at that position (resume with the "
                                "callbacks of the run that wrote the checkpoint, in the same order)");
        callbacks[position].set_state(state);
    }
}

// Warns (progress stream and History) when an epoch's gradients were all exactly zero, or its
// loss did not move at all: the network no longer learns.
inline void warn_if_stalled(History& history, bool gradients_seen, ProgressBar& progress) {
    const int epoch = history.epoch.back();
    const std::size_t n = history.loss.size();
    std::string text;
    if (!gradients_seen) {
        history.dead_gradient_epochs.push_back(epoch);
        text = "epoch " + std::to_string(epoch + 1) + ": every gradient of every batch was exactly zero: the network "
               "no longer learns (a dead network: a learning rate far too high, or units that never activate)";
    } else if (n >= 2 && history.loss[n - 1] == history.loss[n - 2] && history.learning_rate[n - 1] != 0) {
        text = "epoch " + std::to_string(epoch + 1) + ": the training loss is exactly the previous epoch's (" +
               detail::readable_number(history.loss[n - 1]) + "): the network's output does not change";
    }
    if (text.empty()) return;
    history.warnings.push_back(text);
    progress.warning(text);
}

// The epoch loop shared by both fit() forms. `next_batch(epoch, b, batch)` points batch.inputs
// and batch.targets at batch b of `epoch`; `validate()` returns the validation sums (no samples:
// no validation data).
template <class T, class Model, class OptimizerType, class NextBatch, class Validate>
History run_epochs(Model& model, const Loss<T>& loss, OptimizerType& optimizer, const FitOptions<T>& options,
                   Index batches, NextBatch&& next_batch, Validate&& validate) {
    detail::require(options.initial_epoch >= 0, "fit", "initial_epoch must be >= 0");
    detail::require(options.epochs > options.initial_epoch || (options.epochs == 0 && options.initial_epoch == 0), "fit",
                    "epochs (" + std::to_string(options.epochs) + ") is the total epoch count, counting the " +
                        std::to_string(options.initial_epoch) + " already done: no epoch would run (to train " +
                        "N more, set epochs = " + std::to_string(options.initial_epoch) + " + N)");
    std::vector<Callback<T>> callbacks = options.callbacks;
    restore_callback_states(callbacks, options.callback_states);
    const bool has_terms = !model.term_names().empty();
    History history;
    if (has_terms) {
        history.term_names.push_back("reconstruction");
        for (const auto& name : model.term_names()) history.term_names.push_back(name);
        history.terms.assign(history.term_names.size(), {});
        history.val_terms.assign(history.term_names.size(), {});
    }
    const Communicator& communicator = options.communicator;
    const BatchShare share = share_of(communicator, options.gradient_chunks);
    check_processes_agree(communicator, model, options, batches);
    ProgressBar progress(communicator.rank == 0 ? options.verbose : 0, options.epochs);
    StepScratch<T> scratch;
    EpochSums sums;
    Batch<T> batch;
    batch.input_shape = model.input_shape();
    batch.target_shape = model.output_shape();
    batch.check_finite = options.check_finite;
    batch.share = share;
    batch.communicator = &communicator;
    const bool on_logits = model.has_logistic_output() && loss.has_logits_gradient();
    for (int epoch = options.initial_epoch; epoch < options.epochs; ++epoch) {
        const auto start = std::chrono::steady_clock::now();
        EpochBegin<T> begin{epoch, options.initial_epoch, &history, [&] { return learning_rate_of(optimizer); },
                            [&](double lr) { optimizer.set_learning_rate(lr); },
                            [&](const std::string& term, double factor) { model.scale_term(term, factor); }};
        for (auto& callback : callbacks) callback.on_epoch_begin(begin);
        progress.start_epoch(epoch, batches);
        sums.start(model.term_names().size());
        bool gradients_seen = false;
        for (Index b = 0; b < batches; ++b) {
            agree(communicator, "fit", [&] { next_batch(epoch, b, batch); });
            const Index count = batch.count;
            batch.pass = Pass::training_batch(options.seed, epoch, b, count);
            batch.pass.logits = on_logits;
            batch.slice_size = micro_batch_size<T>(model, loss, count, options.micro_batch);
            sums.add(train_step(model, loss, optimizer, batch, scratch), count);
            if (!gradients_seen) gradients_seen = any_nonzero_gradient<T>(model);
            progress.update(b + 1, sums.samples(), sums.mean_total());
        }
        const EpochSums validation = validate();
        history.epoch.push_back(epoch);
        history.loss.push_back(sums.mean_total());
        history.val_loss.push_back(validation.samples() > 0 ? validation.mean_total() : NAN);
        history.learning_rate.push_back(learning_rate_of(optimizer));
        if (has_terms) {
            const auto parts = sums.mean_parts(), val_parts = validation.mean_parts();
            for (std::size_t t = 0; t < parts.size(); ++t) {
                history.terms[t].push_back(parts[t]);
                history.val_terms[t].push_back(validation.samples() > 0 ? val_parts[t] : NAN);
            }
        }
        history.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        progress.end_epoch(sums.samples(), history.loss.back(), history.val_loss.back(), history.seconds.back(),
                           history.term_names, has_terms ? sums.mean_parts() : std::vector<double>{},
                           has_terms ? validation.mean_parts() : std::vector<double>{});
        warn_if_stalled(history, gradients_seen, progress);

        EpochEnd<T> end;
        end.epoch = epoch;
        end.history = &history;
        end.get_weights = [&] { return copy_weights<T>(model); };
        end.set_weights = [&](const std::vector<std::vector<T>>& weights) { restore_weights<T>(model, weights); };
        end.learning_rate = begin.learning_rate;
        end.set_learning_rate = begin.set_learning_rate;
        end.writer = communicator.rank == 0;
        end.save_checkpoint = [&, epochs_done = epoch + 1](const std::string& path) {
            // found by argument-dependent lookup
            if (end.writer) save_checkpoint(path, model, optimizer, epochs_done, callback_states(callbacks));
        };
        agree(communicator, "fit", [&] {  // a checkpoint that cannot be written stops every process
            for (auto& callback : callbacks) callback.on_epoch_end(end);
        });
        if (end.stop) {
            history.stopped_early = epoch + 1 < options.epochs;
            break;
        }
    }
    return history;
}

}  // namespace detail

// Mean objective (loss + terms) over a whole data set, in batches, in Evaluation mode. With a
// corruption, the inputs are corrupted from `corruption_seed` first.
template <class T, class Model, class LossType>
double evaluate(Model& model, const Tensor<T>& inputs, const Tensor<T>& targets, const LossType& loss,
                Index batch_size = 256, const CorruptionFn<T>& corruption = {}, std::uint64_t corruption_seed = 0) {
    detail::require_model_scalar<typename Model::Scalar, T>();
    return detail::evaluate_sums(model, Loss<T>(loss), inputs, targets, batch_size, corruption, corruption_seed)
        .mean_total();
}

// Trains `model` to map `inputs` to `targets` (pass the same tensor twice for a plain
// autoencoder). Optional explicit validation data; otherwise options.validation_split.
// `optimizer` is any optimizer type; it is updated in place (a named variable: it keeps state).
template <class T, class Model, class LossType, class OptimizerType>
History fit(Model& model, const Tensor<T>& inputs, const Tensor<T>& targets, const LossType& loss_value,
            OptimizerType& optimizer, const FitOptions<T>& options = {},
            const Tensor<T>* validation_inputs = nullptr, const Tensor<T>* validation_targets = nullptr) {
    detail::require_model_scalar<typename Model::Scalar, T>();
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
    const Loss<T> loss(loss_value);

    const Index total = inputs.dimension(0);
    const Index held_out = validation_inputs ? 0 : static_cast<Index>(std::floor(total * options.validation_split));
    const Index train_count = total - held_out;
    detail::require(train_count >= 1, "fit", "no training samples");
    const Index batches = (train_count + options.batch_size - 1) / options.batch_size;

    // Validation data: explicit, or the held-out tail (Keras takes the last samples, unshuffled).
    Tensor<T> tail_inputs, tail_targets;
    if (held_out > 0) {
        tail_inputs = samples(inputs, train_count, held_out);
        tail_targets = samples(targets, train_count, held_out);
        validation_inputs = &tail_inputs;
        validation_targets = &tail_targets;
    }

    std::vector<Index> order;
    std::vector<T> batch_inputs, batch_targets, corrupted;
    auto next_batch = [&](int epoch, Index b, Batch<T>& batch) {
        if (b == 0) epoch_order(order, train_count, options.shuffle, options.seed, epoch);
        const Index count = std::min(options.batch_size, train_count - b * options.batch_size);
        const Index first = b * options.batch_size + batch.share.first(count);  // this process's samples
        const Index held = batch.share.end(count) - batch.share.first(count);
        const TensorView<T> clean = detail::gather(inputs, order, first, held, batch_inputs);
        // An autoencoder's targets are usually its inputs: the same samples, gathered once.
        const T* y = &targets == &inputs ? clean.data() : detail::gather(targets, order, first, held, batch_targets).data();
        batch.inputs = detail::corrupted_inputs(options, const_view(clean), epoch, b, batch.share, count, corrupted);
        batch.targets = y;
        batch.count = count;
    };
    auto validate = [&]() {
        if (!validation_inputs) return detail::EpochSums();
        return detail::evaluate_sums(model, loss, *validation_inputs, *validation_targets,
                                     std::max<Index>(options.batch_size, 256), options.corruption,
                                     derive_seed(options.seed, streams::corruption, ~std::uint64_t{0}));
    };
    return detail::run_epochs<T>(model, loss, optimizer, options, batches, next_batch, validate);
}

// Trains from a batch source (data streamed from disk, generated, or corrupted on the fly).
// options.corruption is applied to each batch's inputs as in the form above; options.batch_size,
// shuffle and validation_split are the source's business (data/stream.hpp: a stream built with
// the same batch size, shuffle and seed gives the same batches as the tensors in memory). Over
// several processes, each source gives only its process's share (StreamOptions::share).
template <class T, class Model, class LossType, class OptimizerType>
History fit(Model& model, const BatchSource<T>& source, const LossType& loss_value, OptimizerType& optimizer,
            const FitOptions<T>& options = {}) {
    detail::require_model_scalar<typename Model::Scalar, T>();
    detail::require(source.batches_per_epoch >= 1 && static_cast<bool>(source.next), "fit",
                    "the batch source needs batches_per_epoch >= 1 and a next() function");
    detail::require(options.micro_batch >= 0, "fit", "micro_batch must be >= 0 (0: automatic)");
    const BatchShare share = share_of(options.communicator, options.gradient_chunks);
    if (!share.whole() && (source.share != share || source.batch_size < 1 || source.sample_count < 1))
        throw ArgumentError("fit: training as " + share.str() + ", the batch source must read that share of each "
                            "batch (StreamOptions::share = share_of(communicator, gradient_chunks)); it reads " +
                            (source.batch_size < 1 ? std::string("whole batches of unknown size") : source.share.str()));
    const Loss<T> loss(loss_value);
    Tensor<T> inputs, targets;
    std::vector<T> corrupted;
    auto next_batch = [&](int epoch, Index b, Batch<T>& batch) {
        source.next(epoch, b, inputs, targets);
        const bool targets_are_inputs = targets.size() == 0;  // an autoencoder's source may say so
        const Tensor<T>& y = targets_are_inputs ? inputs : targets;
        const Index count =
            share.whole() ? inputs.dimension(0) : std::min(source.batch_size, source.sample_count - b * source.batch_size);
        if (inputs.dimension(0) != share.end(count) - share.first(count))
            throw ShapeError("fit: batch source gave " + std::to_string(inputs.dimension(0)) + " samples for batch " +
                             std::to_string(b) + ", but " + share.str() + " holds " +
                             std::to_string(share.end(count) - share.first(count)) + " of its " + std::to_string(count));
        if (inputs.dimension(0) != y.dimension(0))
            throw ShapeError("fit: batch source gave " + std::to_string(inputs.dimension(0)) + " inputs but " +
                             std::to_string(y.dimension(0)) + " targets");
        if (options.check_finite) {
            detail::require_finite<T>(const_view(inputs), "fit: batch source inputs");
            if (!targets_are_inputs) detail::require_finite<T>(const_view(targets), "fit: batch source targets");
        }
        if (sample_shape(inputs) != model.input_shape() || sample_shape(y) != model.output_shape())
            throw ShapeError("fit: batch source gave inputs " + sample_shape(inputs).str() + " and targets " +
                             sample_shape(y).str() + "; the model maps " + model.input_shape().str() + " to " +
                             model.output_shape().str());
        batch.inputs = detail::corrupted_inputs(options, const_view(inputs), epoch, b, share, count, corrupted);
        batch.targets = y.data();
        batch.count = count;
    };
    return detail::run_epochs<T>(model, loss, optimizer, options, source.batches_per_epoch, next_batch,
                                 [] { return detail::EpochSums(); });
}

}  // namespace latent
