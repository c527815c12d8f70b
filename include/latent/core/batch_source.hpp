// BatchSource: batches handed to fit() one at a time, for data that does not fit in memory.
// It lives here, below both data/ (whose streams make one) and training/ (whose fit() reads one).
#pragma once

#include <functional>

#include "communicator.hpp"
#include "tensor.hpp"

namespace latent {

// A stream of batches for data that does not fit in memory (like a Keras generator):
// next(epoch, batch, inputs, targets) fills the two tensors (resizing them as needed); a source
// that leaves `targets` empty (size 0) means "the targets are the inputs", as for a plain or
// denoising autoencoder, and saves a copy. fit() applies FitOptions::corruption to the inputs,
// as it does to batches from memory.
template <class T = float> struct BatchSource {
    Index batches_per_epoch = 0;
    std::function<void(int epoch, Index batch, Tensor<T>& inputs, Tensor<T>& targets)> next;
    // For training over several processes: next() gives only `share` of each batch, and the whole
    // batches are those of `sample_count` samples in batches of `batch_size` (data/stream.hpp
    // sets them).
    BatchShare share;
    Index batch_size = 0;
    Index sample_count = 0;
};

}  // namespace latent
