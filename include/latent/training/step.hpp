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
// chunk order.
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
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "../core/communicator.hpp"
#include "../core/errors.hpp"
#include "../core/pass.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "../kernels/scan.hpp"
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
};

namespace detail {

// Whether every parameter's `field` (value or grad) is free of NaN and infinity; the parameters
// are scanned in parallel.
template <class T>
bool all_finite_in(const std::vector<Parameter<T>>& parameters, T* Parameter<T>::*field, std::vector<char>& results) {
    results.assign(parameters.size(), 1);
    Index total = 0;
    for (const auto& parameter : parameters) total += parameter.size;
    parallel_for(static_cast<Index>(parameters.size()), total, [&](Index p) {
        const Parameter<T>& parameter = parameters[static_cast<std::size_t>(p)];
        results[static_cast<std::size_t>(p)] = kernels::all_finite(parameter.*field, parameter.size) ? 1 : 0;
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
                 StepScratch<T>& scratch, StepValues& values) {
    const Chunks slices{count, batch.slice_size > 0 ? std::min(batch.slice_size, count) : count};
    for (Index slice = 0; slice < slices.count(); ++slice) {
        Pass pass = batch.pass;
        pass.first_sample = first + slices.begin(slice);
        pass.batch_size = batch.count;
        const double weight = slice_weight(loss.reduction(), slices.size(slice), batch.count);
        const ConstTensorView<T> output = model.forward(batch.input_slice(pass.first_sample, slices.size(slice)), pass);
        const ConstTensorView<T> targets = batch.target_slice(pass.first_sample, slices.size(slice));
        values.reconstruction += weight * slice_loss(loss, output, targets, pass, weight, scratch.grad);
        model.backward(view<T>(static_cast<const T*>(scratch.grad.data()), slices.size(slice), sample_shape<T>(output)), pass);
        add_terms(model, values);
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
        for (Index chunk = share.first_chunk(); chunk < share.end_chunk(); ++chunk) {
            const Index first = chunk_begin(batch.count, share.chunks, chunk);
            const Index count = chunk_begin(batch.count, share.chunks, chunk + 1) - first;
            if (count > 0) {
                StepValues& values = scratch.chunk_values;
                values.clear(parts - 1);
                model.zero_grad();
                pass_slices(model, loss, batch, first, count, scratch, values);
                flatten_gradients(model.parameters(), scratch.chunk_tree.next_leaf(), scratch.chunk_tree.size());
                double* packed = scratch.packed_values.data() + (chunk - share.first_chunk()) * parts;
                packed[0] = values.reconstruction;
                std::copy(values.terms.begin(), values.terms.end(), packed + 1);
            }
            scratch.chunk_tree.push(count > 0);
        }
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
// the same gradients, values and update (see pass_chunks).
template <class T, class Model, class OptimizerType>
const StepValues& train_step(Model& model, const Loss<T>& loss, OptimizerType& optimizer, const Batch<T>& batch,
                             StepScratch<T>& scratch) {
    model.zero_grad();
    scratch.values.clear(model.term_names().size());
    if (batch.share.chunks == 1 && batch.share.whole())
        detail::pass_slices(model, loss, batch, 0, batch.count, scratch, scratch.values);
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
