// latent: header-only autoencoders on Eigen. This umbrella header includes the whole library.
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
#include "layers/gradient_check.hpp"
#include "layers/layer.hpp"
#include "layers/max_pool2d.hpp"
#include "layers/padding.hpp"
#include "layers/penalties.hpp"
#include "layers/reshape.hpp"
#include "layers/upsample2d.hpp"

#include "losses/loss.hpp"
#include "optimizers/optimizer.hpp"

#include "models/autoencoder.hpp"
#include "models/sequential.hpp"

#include "training/callbacks.hpp"
#include "training/fit.hpp"
#include "training/history.hpp"
#include "training/schedules.hpp"
#include "training/step.hpp"

#include "io/registry.hpp"
#include "io/serialize.hpp"

#include "data/corruption.hpp"
#include "data/idx.hpp"
#include "data/image_writer.hpp"
#include "data/images.hpp"
#include "data/metrics.hpp"
#include "data/npy.hpp"
#include "data/resize.hpp"
