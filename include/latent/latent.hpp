// latent: header-only autoencoders on Eigen. This umbrella header includes the whole library.
#pragma once

#include "core/errors.hpp"
#include "core/file.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "core/threading.hpp"

#include "layers/activations.hpp"
#include "layers/config.hpp"
#include "layers/dense.hpp"
#include "layers/gradient_check.hpp"
#include "layers/layer.hpp"
