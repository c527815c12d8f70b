// Pass: where a forward or backward pass is. Most layers never look at it; a stochastic layer
// draws its noise from it, a layer that adds a term to the objective weights the term by it.
//
// Rules it serves:
// - Seeds, not generators: the noise of sample n comes from a stream derived from the run's
//   seed, the epoch, the batch, the layer and the sample's index within the batch, so it does
//   not depend on the thread count or on how a batch is passed through in slices.
// - Slices add up to the batch: a batch may be passed through in slices (fit()'s micro_batch);
//   a term averaged over the batch divides by batch_size (the whole batch), not by the slice's
//   size, so the slices' values and gradients add up to the batch's.
#pragma once

#include <cstdint>

#include "random.hpp"
#include "tensor.hpp"

namespace latent {

enum class Mode {
    Inference,   // predict / reconstruct: deterministic, no terms
    Evaluation,  // validation and evaluate(): deterministic, terms computed
    Training,    // a training step: stochastic layers draw noise, batch statistics, terms
};

struct Pass {
    Mode mode = Mode::Inference;
    std::uint64_t seed = 0;    // the run's seed (FitOptions::seed)
    int epoch = 0;
    Index batch = 0;           // the batch's number within its epoch
    Index first_sample = 0;    // the slice's first sample, counted within the batch
    Index batch_size = 0;      // samples in the whole batch; 0: the slice is the whole batch
    std::uint64_t stream = 0;  // random stream of this pass; a model derives one per layer
    // The model's output is taken before its final Sigmoid (and after any Flatten/Reshape that
    // follows it): the loss is computed on the logits, and backward starts there.
    bool logits = false;
    bool input_gradient = false;  // backward also computes dLoss/d(model input)

    bool training() const { return mode == Mode::Training; }
    bool computes_terms() const { return mode != Mode::Inference; }
    // The whole batch's size for a slice of `slice_size` samples.
    Index whole_batch(Index slice_size) const { return batch_size > 0 ? batch_size : slice_size; }

    // The pass as layer `index` of a model sees it: its own stream.
    Pass for_layer(std::uint64_t index) const {
        Pass pass = *this;
        pass.stream = derive_seed(stream, index);
        return pass;
    }
    // The generator of sample n of the slice (n counted from the slice's start).
    Rng sample_rng(Index n) const {
        return Rng(derive_seed(stream, static_cast<std::uint64_t>(first_sample + n)));
    }

    // A training pass over batch `batch` of `epoch`, whose noise derives from `seed`.
    static Pass training_batch(std::uint64_t seed, int epoch, Index batch, Index batch_size) {
        Pass pass;
        pass.mode = Mode::Training;
        pass.seed = seed;
        pass.epoch = epoch;
        pass.batch = batch;
        pass.batch_size = batch_size;
        pass.stream = derive_seed(seed, streams::noise, static_cast<std::uint64_t>(epoch),
                                  static_cast<std::uint64_t>(batch));
        return pass;
    }
    static Pass evaluation() {
        Pass pass;
        pass.mode = Mode::Evaluation;
        return pass;
    }
};

}  // namespace latent
