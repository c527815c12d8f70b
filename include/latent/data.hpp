// latent/data.hpp: data without the networks. Readers (images, MNIST IDX, NumPy .npy, CSV),
// streams of training batches from disk (data/stream.hpp), writers (PNG, image grids, .npy),
// corruptions, image-quality and detection metrics, scalers and reconstruction-error scores.
// Needs only core/ of the library; latent/nn.hpp is the other half, latent/latent.hpp includes
// both.
#pragma once

#include "core/errors.hpp"
#include "core/file.hpp"
#include "core/tensor.hpp"

#include "data/anomaly.hpp"
#include "data/corruption.hpp"
#include "data/csv.hpp"
#include "data/detection_metrics.hpp"
#include "data/idx.hpp"
#include "data/idx_stream.hpp"
#include "data/image_folder_stream.hpp"
#include "data/image_writer.hpp"
#include "data/images.hpp"
#include "data/metrics.hpp"
#include "data/npy.hpp"
#include "data/npy_stream.hpp"
#include "data/resize.hpp"
#include "data/scalers.hpp"
#include "data/stream.hpp"
