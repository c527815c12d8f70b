// train_step(): one optimisation step on one batch, as the textbook writes it -- zero the
// gradients, forward, the objective and its gradient, backward, check, update -- and the
// evaluation of the objective on a batch. fit() (fit.hpp) is epochs, data, validation and
// callbacks around these two.
//
// The objective is the reconstruction loss plus the named terms the model's layers add (a
// penalty on the code, a KL divergence): objective = loss(output, target) + sum of terms.
//
// A batch may pass through forward and backward in slices (Batch::slice_size): activations then
// stay in cache. A slice of n of the batch's N samples counts n/N of a Mean or SumPerSample loss
// (all of a Sum), and layers divide their terms by N, so the slices' values and parameter
// gradients add up to the batch's. Models whose layers mix samples (batch statistics) are never
// sliced: their statistics are the whole batch's.
//
// For training over several processes, and for results that do not depend on their number, a
// batch may instead be cut into Batch::share.chunks chunks whose gradients are computed alone and
// added in a fixed tree (core/communicator.hpp, gradient_tree.hpp); each process then holds and
// passes only its share of the chunks, and the objective's value is the chunks' values added in
// chunk order. With several threads, each chunk runs whole on one thread, through a copy of the
// model for each thread but the first (StepScratch::model_copies): one meeting of the threads
// per round of chunks instead of one per layer, and the same bits as the chunks in turn.
//
// A model M that fit() trains provides (Sequential, Autoencoder and VariationalAutoencoder do):
//   using Scalar = T;
//   const Shape& input_shape() const;   const Shape& output_shape() const;
//   ConstTensorView<T> forward(ConstTensorView<T> x, const Pass& pass);
//   ConstTensorView<T> backward(ConstTensorView<T> grad, const Pass& pass);
//                                 // pass.logits: grad is dLoss/d(logits of the final Sigmoid)
//   const std::vector<Parameter<T>>& parameters() const;   void zero_grad();
//   bool has_logistic_output() const;     // its output is a final Sigmoid's (then pass.logits works)
//   bool mixes_samples() const;           // some layer uses batch statistics
//   const std::vector<std::string>& term_names() const;   const std::vector<double>& term_values() const;
//   void scale_term(const std::string& name, double factor);
//   std::string first_nonfinite_gradient() const;          // for error messages
//   Index largest_activation() const;   Index parameter_count() const;   // for automatic slicing
// and, for fit()'s checkpoints, a function found by argument-dependent lookup:
//   save_checkpoint(path, model, optimizer, epochs_done, callback_states)
#pragma once

#include <algorithm>
#include <any>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/communicator.hpp"
#include "../core/errors.hpp"
#include "../core/pass.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "../layers/layer.hpp"
#include "../losses/loss.hpp"
#include "gradient_tree.hpp"

namespace latent {

// The objective's value on a batch: the reconstruction loss and the model's terms (in the order
// of its term_names()).
struct StepValues {
    double reconstruction = 0;
    std::vector<double> terms;

    double total() const {
        double sum = reconstruction;
        for (double term : terms) sum += term;
        return sum;
    }
    void clear(std::size_t term_count) {
        reconstruction = 0;
        terms.assign(term_count, 0.0);  // (no allocation once the size is reached)
    }
};

// One batch as a step sees it: the data, where it is (a pass over the whole batch), and how it
// is passed through the model.
template <class T> struct Batch {
    const T* inputs = nullptr;   // the samples [share.first(count), share.end(count)) of `input_shape`
    const T* targets = nullptr;  // the same samples of `target_shape`
    Index count = 0;             // samples in the whole batch
    Shape input_shape, target_shape;
    Pass pass;               // mode, seed, epoch, batch number, batch size, logits
    Index slice_size = 0;    // samples per forward/backward pass; 0: the whole batch
    bool check_finite = true;
    BatchShare share;        // the chunks and this process's part of them (the default: all, one chunk)
    const Communicator* communicator = nullptr;  // for a share of several processes

    // Samples [first, first + n) of the batch (positions in the whole batch).
    ConstTensorView<T> input_slice(Index first, Index n) const {
        return view<T>(inputs + (first - share.first(count)) * input_shape.size(), n, input_shape);
    }
    ConstTensorView<T> target_slice(Index first, Index n) const {
        return view<T>(targets + (first - share.first(count)) * target_shape.size(), n, target_shape);
    }
};

// Memory a step reuses from batch to batch, so that a steady-state step allocates nothing.
template <class T> struct StepScratch {
    std::vector<T> grad;          // dLoss/d(output) of one slice
    std::vector<char> finite;     // per parameter, the result of the last finiteness scan
    StepValues values;
    // Batches in chunks: the chunks' gradient tree and values, and the exchange between processes.
    detail::GradientTree<T> chunk_tree;
    StepValues chunk_values;  // of the chunk passing
    std::vector<double> packed_values, all_values;
    detail::ExchangeScratch<T> exchange;
    // Chunks on several threads (pass_chunks_on_threads): thread w > 0 passes its chunks through
    // its own copy of the model, whose activations and gradients are its own. A std::any holds
    // the std::vector<Model> of copies, as this memory does not otherwise depend on the model.
    std::any model_copies;
    std::vector<char> copy_has_weights;        // per thread: its copy holds this step's weights
    std::vector<std::vector<T>> worker_grad;   // per thread: dLoss/d(output) of its slice
    std::vector<StepValues> worker_values;     // per thread: the values of its chunk
    std::vector<std::vector<T>> round_leaves;  // per chunk of a round: its gradient

    // The copies take the model's weights at every step, but anything else of it (a term's
    // scale, a layer's setting) only when made: call this after changing such a thing between
    // steps, and they are made again. fit() calls it before every epoch.
    void model_changed() { model_copies.reset(); }
};

namespace detail {

template <class T> bool all_finite(const T* values, Index count) {
    return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(values, count).allFinite();  // vectorised
}

// Whether every parameter's `field` (value or grad) is free of NaN and infinity; the parameters
// are scanned in parallel.
template <class T>
bool all_finite_in(const std::vector<Parameter<T>>& parameters, T* Parameter<T>::*field, std::vector<char>& results) {
    results.assign(parameters.size(), 1);
    Index total = 0;
    for (const auto& parameter : parameters) total += parameter.size;
    parallel_for(static_cast<Index>(parameters.size()), total, [&](Index p) {
        const Parameter<T>& parameter = parameters[static_cast<std::size_t>(p)];
        results[static_cast<std::size_t>(p)] = all_finite(parameter.*field, parameter.size) ? 1 : 0;
    });
    return std::all_of(results.begin(), results.end(), [](char ok) { return ok != 0; });
}

inline std::string where(const Pass& pass) {
    return "epoch " + std::to_string(pass.epoch + 1) + ", batch " + std::to_string(pass.batch + 1) + ": ";
}

// The share of the batch's loss that a slice of `slice` of its `batch` samples carries.
inline double slice_weight(const std::optional<Reduction>& reduction, Index slice, Index batch) {
    if (slice == batch || reduction == Reduction::Sum) return 1.0;
    return static_cast<double>(slice) / static_cast<double>(batch);
}

// The loss of one slice's output and, into scratch.grad, its gradient times `weight` (with
// respect to the logits when pass.logits).
template <class T>
double slice_loss(const Loss<T>& loss, ConstTensorView<T> output, ConstTensorView<T> targets, const Pass& pass,
                  double weight, std::vector<T>& grad_memory) {
    if (output.dimensions() != targets.dimensions())  // shapes per sample: the slice's count would mislead
        throw ShapeError("fit: targets have shape " + sample_shape<T>(targets).str() + " but the model outputs " +
                         sample_shape<T>(output).str());
    grow(grad_memory, output.size());
    const TensorView<T> grad(grad_memory.data(), output.dimensions());
    const double value = pass.logits ? loss.compute_on_logits(output, targets, grad) : loss.compute(output, targets, grad);
    if (weight != 1.0)
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(grad_memory.data(), output.size()) *= static_cast<T>(weight);
    return value;
}

template <class T, class Model> void check_objective(const Model& model, const StepValues& values, const Pass& pass) {
    const double total = values.total();
    if (std::isfinite(total)) return;
    const std::string layer = model.first_nonfinite_gradient();
    throw NumericError(where(pass) + "the loss is " + (std::isnan(total) ? "NaN" : "infinite") +
                       (layer.empty() ? std::string() : " (first non-finite gradient, from the output: " + layer + ")") +
                       "; the weights of the last good step were kept");
}

// A NaN or infinite gradient stops training before the update, so the weights stay those of the
// last good step.
template <class T, class Model> void check_gradients(const Model& model, const Pass& pass, std::vector<char>& results) {
    if (!all_finite_in(model.parameters(), &Parameter<T>::grad, results))
        throw NumericError(where(pass) + "the gradient of " + model.first_nonfinite_gradient() +
                           " is not finite; the weights of the last good step were kept");
}

// An update that overflows the weights (a learning rate far too high) stops training too. Its
// weights cannot be taken back without a copy of every weight at every step.
template <class T, class Model> void check_weights(const Model& model, const Pass& pass, std::vector<char>& results) {
    if (!all_finite_in(model.parameters(), &Parameter<T>::value, results))
        throw NumericError(where(pass) + "the update made weights non-finite (learning rate too high?); training stopped");
}

// Adds the terms of the model's last forward (already divided by the whole batch's size).
template <class Model> void add_terms(const Model& model, StepValues& values) {
    const std::vector<double>& terms = model.term_values();
    for (std::size_t t = 0; t < terms.size(); ++t) values.terms[t] += terms[t];
}

// Forward and backward over samples [first, first + count) of the batch, slice by slice: the
// parameter gradients add up in the parameters' grad, the objective's parts in `values`.
template <class T, class Model>
void pass_slices(Model& model, const Loss<T>& loss, const Batch<T>& batch, Index first, Index count,
                 std::vector<T>& grad_memory, StepValues& values) {
    const Chunks slices{count, batch.slice_size > 0 ? std::min(batch.slice_size, count) : count};
    for (Index slice = 0; slice < slices.count(); ++slice) {
        Pass pass = batch.pass;
        pass.first_sample = first + slices.begin(slice);
        pass.batch_size = batch.count;
        const double weight = slice_weight(loss.reduction(), slices.size(slice), batch.count);
        const ConstTensorView<T> output = model.forward(batch.input_slice(pass.first_sample, slices.size(slice)), pass);
        const ConstTensorView<T> targets = batch.target_slice(pass.first_sample, slices.size(slice));
        values.reconstruction += weight * slice_loss(loss, output, targets, pass, weight, grad_memory);
        model.backward(view<T>(static_cast<const T*>(grad_memory.data()), slices.size(slice), sample_shape<T>(output)), pass);
        add_terms(model, values);
    }
}

// Samples in chunk `chunk` of the batch.
template <class T> Index chunk_count(const Batch<T>& batch, Index chunk) {
    return chunk_begin(batch.count, batch.share.chunks, chunk + 1) - chunk_begin(batch.count, batch.share.chunks, chunk);
}

// One non-empty chunk through `model`, from zero gradients: its gradient into `leaf` (`leaf_size`
// values), its values into `packed` (the reconstruction loss, then the terms).
template <class T, class Model>
void pass_chunk(Model& model, const Loss<T>& loss, const Batch<T>& batch, Index chunk, std::vector<T>& grad_memory,
                StepValues& values, T* leaf, Index leaf_size, double* packed) {
    values.clear(model.term_names().size());
    model.zero_grad();
    pass_slices(model, loss, batch, chunk_begin(batch.count, batch.share.chunks, chunk), chunk_count(batch, chunk),
                grad_memory, values);
    flatten_gradients(model.parameters(), leaf, leaf_size);
    packed[0] = values.reconstruction;
    std::copy(values.terms.begin(), values.terms.end(), packed + 1);
}

// The chunks of this process's share one after another, each through the model (whose layers
// may spread their own loops over the threads).
template <class T, class Model>
void pass_chunks_in_turn(Model& model, const Loss<T>& loss, const Batch<T>& batch, StepScratch<T>& scratch) {
    const BatchShare& share = batch.share;
    const std::size_t parts = 1 + model.term_names().size();
    for (Index chunk = share.first_chunk(); chunk < share.end_chunk(); ++chunk) {
        const bool present = chunk_count(batch, chunk) > 0;
        if (present)
            pass_chunk(model, loss, batch, chunk, scratch.grad, scratch.chunk_values,
                       scratch.chunk_tree.next_leaf(), scratch.chunk_tree.size(),
                       scratch.packed_values.data() + (chunk - share.first_chunk()) * parts);
        scratch.chunk_tree.push(present);
    }
}

// The copies of the model for threads 1 .. threads-1, made when missing (or after
// model_changed()), with no weights of this step yet.
template <class T, class Model> std::vector<Model>& model_copies(const Model& model, StepScratch<T>& scratch, int threads) {
    auto* copies = std::any_cast<std::vector<Model>>(&scratch.model_copies);
    if (copies == nullptr || copies->size() + 1 < static_cast<std::size_t>(threads)) {
        scratch.model_copies = std::vector<Model>(static_cast<std::size_t>(threads - 1), model);
        copies = std::any_cast<std::vector<Model>>(&scratch.model_copies);
    }
    scratch.copy_has_weights.assign(static_cast<std::size_t>(threads), 0);
    return *copies;
}

template <class T> void copy_parameter_values(const std::vector<Parameter<T>>& from, const std::vector<Parameter<T>>& to) {
    for (std::size_t p = 0; p < from.size(); ++p) std::copy_n(from[p].value, from[p].size, to[p].value);
}

// The chunks of this process's share on `threads` threads, `threads` chunks at a time: each
// chunk runs on one thread from start to end (its layers' loops run on that thread), the master
// model on thread 0 and a copy on each other thread, so threads meet once per round instead of
// once per layer. Each chunk's sum is the same as in turn, and the tree the same, so the bits
// are too.
template <class T, class Model>
void pass_chunks_on_threads(Model& model, const Loss<T>& loss, const Batch<T>& batch, StepScratch<T>& scratch,
                            int threads) {
    std::vector<Model>& copies = model_copies(model, scratch, threads);
    const auto workers = static_cast<std::size_t>(threads);
    if (scratch.worker_grad.size() < workers) scratch.worker_grad.resize(workers);
    if (scratch.worker_values.size() < workers) scratch.worker_values.resize(workers);
    if (scratch.round_leaves.size() < workers) scratch.round_leaves.resize(workers);
    const BatchShare& share = batch.share;
    const std::size_t parts = 1 + model.term_names().size();
    const Index leaf_size = scratch.chunk_tree.size();
    for (Index round_first = share.first_chunk(); round_first < share.end_chunk(); round_first += threads) {
        const Index round = std::min<Index>(threads, share.end_chunk() - round_first);
        // (about a multiply-add per parameter and sample forward, and two backward)
        const Index work = 3 * chunk_count(batch, round_first) * round * model.parameter_count();
        parallel_for(round, work, [&](Index i, int worker) {
            const Index chunk = round_first + i;
            if (chunk_count(batch, chunk) == 0) return;
            Model& runner = worker == 0 ? model : copies[static_cast<std::size_t>(worker - 1)];
            if (worker > 0 && !scratch.copy_has_weights[static_cast<std::size_t>(worker)]) {
                copy_parameter_values(model.parameters(), runner.parameters());
                scratch.copy_has_weights[static_cast<std::size_t>(worker)] = 1;
            }
            std::vector<T>& leaf = scratch.round_leaves[static_cast<std::size_t>(i)];
            grow(leaf, leaf_size);
            pass_chunk(runner, loss, batch, chunk, scratch.worker_grad[static_cast<std::size_t>(worker)],
                       scratch.worker_values[static_cast<std::size_t>(worker)], leaf.data(), leaf_size,
                       scratch.packed_values.data() + (chunk - share.first_chunk()) * parts);
        });
        for (Index i = 0; i < round; ++i) {
            if (chunk_count(batch, round_first + i) > 0)
                scratch.chunk_tree.push(scratch.round_leaves[static_cast<std::size_t>(i)]);
            else
                scratch.chunk_tree.push(false);
        }
    }
}

// values += the chunk's values, part by part.
inline void add_values(StepValues& values, const double* chunk) {
    values.reconstruction += chunk[0];
    for (std::size_t t = 0; t < values.terms.size(); ++t) values.terms[t] += chunk[1 + t];
}

// The chunks of this process's share, each from zero gradients, into the gradient tree; then the
// tree finished across processes into the parameters' grad, and the chunks' values added in
// chunk order into scratch.values (on every process alike).
template <class T, class Model>
void pass_chunks(Model& model, const Loss<T>& loss, const Batch<T>& batch, StepScratch<T>& scratch) {
    const BatchShare& share = batch.share;
    if (!share.whole() && (batch.communicator == nullptr || batch.communicator->ranks != share.ranks))
        throw ArgumentError("train_step: the batch is " + share.str() + " but has no communicator of as many processes");
    if (model.mixes_samples())
        throw ArgumentError("fit: the model has layers that use the statistics of a whole batch (BatchNorm, "
                            "KLSparsity); gradient chunks and several processes would change them");
    const Communicator alone;
    const Communicator& communicator = share.whole() ? alone : *batch.communicator;
    const Index segment = (model.parameter_count() + share.ranks - 1) / share.ranks;
    const std::size_t parts = 1 + model.term_names().size();
    const Index local_chunks = share.end_chunk() - share.first_chunk();
    scratch.chunk_tree.start(segment * share.ranks);
    scratch.packed_values.assign(static_cast<std::size_t>(local_chunks) * parts, 0.0);
    agree(communicator, "fit", [&] {
        // (A model that cannot be copied has its chunks passed in turn.)
        if constexpr (std::is_copy_constructible_v<Model>) {
            const int threads = static_cast<int>(std::min<Index>(num_threads(), local_chunks));
            if (threads > 1) return pass_chunks_on_threads(model, loss, batch, scratch, threads);
        }
        pass_chunks_in_turn(model, loss, batch, scratch);
    });
    const std::vector<double>* all_values = &scratch.packed_values;
    if (share.whole()) {
        unflatten_gradients(scratch.chunk_tree.root(), model.parameters());
    } else {
        add_across_processes(communicator, share, batch.count, scratch.chunk_tree.root(), segment, scratch.exchange);
        unflatten_gradients(scratch.exchange.gathered.data(), model.parameters());
        gather_values(communicator, scratch.packed_values, scratch.all_values);
        all_values = &scratch.all_values;
    }
    for (std::size_t chunk = 0; chunk < all_values->size() / parts; ++chunk)
        add_values(scratch.values, all_values->data() + chunk * parts);
}

}  // namespace detail

// One optimisation step. With share.chunks > 1 or several processes, every process ends with
// the same gradients, values and update (see pass_chunks). With share.chunks > 1 and several
// threads, call scratch.model_changed() after changing the model other than its weights.
template <class T, class Model, class OptimizerType>
const StepValues& train_step(Model& model, const Loss<T>& loss, OptimizerType& optimizer, const Batch<T>& batch,
                             StepScratch<T>& scratch) {
    model.zero_grad();
    scratch.values.clear(model.term_names().size());
    if (batch.share.chunks == 1 && batch.share.whole())
        detail::pass_slices(model, loss, batch, 0, batch.count, scratch.grad, scratch.values);
    else
        detail::pass_chunks(model, loss, batch, scratch);
    if (batch.check_finite) {
        detail::check_objective<T>(model, scratch.values, batch.pass);
        detail::check_gradients<T>(model, batch.pass, scratch.finite);
    }
    optimizer.step(model.parameters());
    if (batch.check_finite) detail::check_weights<T>(model, batch.pass, scratch.finite);
    return scratch.values;
}

// The objective on one batch without training: one forward (batch.pass's mode, usually
// Evaluation), the loss and the terms.
template <class T, class Model>
const StepValues& evaluate_step(Model& model, const Loss<T>& loss, const Batch<T>& batch, StepScratch<T>& scratch) {
    Pass pass = batch.pass;
    pass.batch_size = batch.count;
    const ConstTensorView<T> output = model.forward(batch.input_slice(0, batch.count), pass);
    scratch.values.clear(model.term_names().size());
    scratch.values.reconstruction =
        detail::slice_loss(loss, output, batch.target_slice(0, batch.count), pass, 1.0, scratch.grad);
    if (pass.computes_terms()) detail::add_terms(model, scratch.values);
    return scratch.values;
}

}  // namespace latent
