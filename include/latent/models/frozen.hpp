// Frozen<Model>: a trained model for serving, e.g. scoring requests one sample at a time. It
// holds its own copy of the model, prepared for inference only (on the float vector kernels a
// Dense layer keeps its weights by input as well, so a one-sample product reads them with plain
// vector loads: Dense::freeze), and offers inference only -- no training, no access to the
// weights -- so the prepared copy cannot go stale. Its outputs are the model's, bit for bit; a model trained further is frozen
// again to serve its new weights.
//
//   latent::Frozen<latent::Autoencoder<float>> scorer(model);
//   const auto output = scorer.forward(one_sample);   // valid until the next call
#pragma once

#include <vector>

#include "../core/pass.hpp"
#include "../core/tensor.hpp"

namespace latent {

template <class Model> class Frozen {
public:
    using Scalar = typename Model::Scalar;

    explicit Frozen(const Model& model) : model_(model) { model_.freeze(); }

    const Shape& input_shape() const { return model_.input_shape(); }
    const Shape& output_shape() const { return model_.output_shape(); }

    // The model's inference output for a batch x, in the model's own buffers: valid until the
    // next call, and no allocation once they have grown to the batch size. (Not const: the
    // buffers change. One thread at a time per Frozen; give each serving thread its own.)
    ConstTensorView<Scalar> forward(ConstTensorView<Scalar> x) { return model_.forward(x, Pass{}); }

    // As Autoencoder::reconstruct and reconstruction_error, for models that have them.
    Tensor<Scalar> reconstruct(const Tensor<Scalar>& x, Index batch_size = 256) {
        return model_.reconstruct(x, batch_size);
    }
    std::vector<double> reconstruction_error(const Tensor<Scalar>& x, Index batch_size = 256) {
        return model_.reconstruction_error(x, batch_size);
    }

private:
    Model model_;
};

}  // namespace latent
