// latent: header-only autoencoders on Eigen. This umbrella header includes the whole library:
//   latent/nn.hpp    tensors, layers, models, losses, optimizers, training, model files
//   latent/data.hpp  image / IDX / .npy / CSV readers, writers, corruptions, metrics, scalers
//   io/pytorch.hpp   PyTorch weights in .safetensors (nlohmann-json) and .npz files
//   io/onnx_export.hpp  ONNX export
// A file that needs only one part compiles faster with that header alone (README, "What is in
// the box").
#pragma once

#include "data.hpp"
#include "nn.hpp"

#include "io/onnx_export.hpp"
#include "io/pytorch.hpp"
