// latent/nn.hpp: networks without the data readers. Tensors, layers, models (with the anomaly
// detector and the scalers and scores it uses), losses, optimizers, training and model files --
// everything that builds, trains, saves, loads and runs a model, and no image, IDX, NumPy or CSV
// code (none of libpng's, libjpeg's or stb's headers).
// latent/data.hpp is the other half; latent/latent.hpp includes both.
#pragma once

#include "core/errors.hpp"
#include "core/file.hpp"
#include "core/layout.hpp"
#include "core/pass.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "core/threading.hpp"

#include "layers/activations.hpp"
#include "layers/batch_norm.hpp"
#include "layers/config.hpp"
#include "layers/contractive_dense.hpp"
#include "layers/conv2d.hpp"
#include "layers/conv_transpose2d.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/gaussian_sample.hpp"
#include "layers/gradient_check.hpp"
#include "layers/layer.hpp"
#include "layers/max_pool2d.hpp"
#include "layers/padding.hpp"
#include "layers/penalties.hpp"
#include "layers/reshape.hpp"
#include "layers/upsample2d.hpp"

#include "losses/loss.hpp"
#include "optimizers/optimizer.hpp"

#include "models/anomaly_detector.hpp"
#include "models/autoencoder.hpp"
#include "models/frozen.hpp"
#include "models/sequential.hpp"
#include "models/vae.hpp"

#include "training/callbacks.hpp"
#include "training/fit.hpp"
#include "training/history.hpp"
#include "training/schedules.hpp"
#include "training/step.hpp"

// Model files: latent's own format.
#include "io/registry.hpp"
#include "io/serialize.hpp"

// Other formats -- PyTorch weights (io/pytorch.hpp: .safetensors and .npz) and ONNX export
// (io/onnx_export.hpp) -- are included by latent.hpp, not here: the first brings a JSON parser
// and the .npy reader.
