// Anomaly scores from an autoencoder's reconstructions: inputs unlike the training data
// reconstruct worse. Free functions templated on the model, which needs only
//   Tensor<T> reconstruct(const Tensor<T>& x)    (same shape as x; Autoencoder has it).
// The data pass through the model in blocks of `block` samples, so memory stays bounded for
// large sets. Errors are computed in double whatever T is.
//   reconstruction_errors(model, x, reduction)  one score per sample: mean or sum over features
//                                               of (reconstruction - x)^2
//   squared_errors(model, x)                    (reconstruction - x)^2 per sample and feature,
//                                               x's shape: which columns / pixels are anomalous
//   feature_errors(model, x)                    the mean of squared_errors over the samples,
//                                               one value per feature
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/tensor.hpp"

namespace latent {

enum class ErrorReduction { mean, sum };

namespace detail {

// Calls visit(n, i, difference) for feature i of sample n, with difference = reconstruction - x
// in double.
template <class Model, class T, class Visit>
void visit_reconstruction_differences(Model& model, const Tensor<T>& x, Index block, const char* where, Visit visit) {
    require(block >= 1, where, "block must be >= 1, got " + std::to_string(block));
    const Index size = sample_shape(x).size();
    for (Index first = 0; first < x.dimension(0); first += block) {
        const Tensor<T> part = samples(x, first, block);
        const Tensor<T> reconstructed = model.reconstruct(part);
        if (reconstructed.dimensions() != part.dimensions())
            throw ShapeError(std::string(where) + ": the model reconstructs " +
                             batch_shape_str(part.dimension(0), sample_shape(part)) +
                             " as " + batch_shape_str(reconstructed.dimension(0), sample_shape(reconstructed)));
        for (Index n = 0; n < part.dimension(0); ++n)
            for (Index i = n * size; i < (n + 1) * size; ++i)
                visit(first + n, i - n * size,
                      static_cast<double>(reconstructed.data()[i]) - static_cast<double>(part.data()[i]));
    }
}

}  // namespace detail

// Each sample's reconstruction error: the mean (or the sum) over its features of the squared
// difference between the model's reconstruction and the sample.
template <class Model, class T>
std::vector<double> reconstruction_errors(Model& model, const Tensor<T>& x,
                                          ErrorReduction reduction = ErrorReduction::mean, Index block = 1024) {
    std::vector<double> errors(static_cast<std::size_t>(x.dimension(0)), 0.0);
    detail::visit_reconstruction_differences(model, x, block, "reconstruction_errors",
                                             [&](Index n, Index, double difference) {
                                                 errors[static_cast<std::size_t>(n)] += difference * difference;
                                             });
    if (reduction == ErrorReduction::mean && x.dimension(0) > 0) {
        const double size = static_cast<double>(sample_shape(x).size());
        for (double& error : errors) error /= size;
    }
    return errors;
}

// (reconstruction - x)^2 for every sample and feature, in x's shape.
template <class Model, class T> Tensor<T> squared_errors(Model& model, const Tensor<T>& x, Index block = 1024) {
    Tensor<T> errors(x.dimensions());
    const Index size = sample_shape(x).size();
    detail::visit_reconstruction_differences(model, x, block, "squared_errors",
                                             [&](Index n, Index i, double difference) {
                                                 errors.data()[n * size + i] = static_cast<T>(difference * difference);
                                             });
    return errors;
}

// The mean over samples of each feature's squared error (C*H*W values, in sample order):
// which features the model reconstructs worst. ArgumentError for an empty batch.
template <class Model, class T>
std::vector<double> feature_errors(Model& model, const Tensor<T>& x, Index block = 1024) {
    detail::require(x.dimension(0) > 0, "feature_errors", "no samples");
    std::vector<double> errors(static_cast<std::size_t>(sample_shape(x).size()), 0.0);
    detail::visit_reconstruction_differences(model, x, block, "feature_errors",
                                             [&](Index, Index i, double difference) {
                                                 errors[static_cast<std::size_t>(i)] += difference * difference;
                                             });
    for (double& error : errors) error /= static_cast<double>(x.dimension(0));
    return errors;
}

}  // namespace latent
