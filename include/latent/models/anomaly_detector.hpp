// AnomalyDetector<T>: an autoencoder trained on normal samples, the scaler fitted on them and a
// threshold on the reconstruction error, kept and saved together so that a deployed detector
// cannot be fed unscaled data by mistake.
//   score(x)           one reconstruction error per sample of raw x (scaled inside first)
//   is_anomaly(x)      score(x) > threshold, per sample
//   squared_errors(x), feature_errors(x)   which features reconstruct badly (scaled units)
//   calibrate(normal, percentile)          the threshold from held-out normal samples
//   save(path), load(path)                 one model file (io/serialize.hpp): checksummed,
//                                          written atomically, refused when of another kind
// Scores are data/anomaly.hpp's: the mean (or sum) over a sample's features of the squared
// difference between the reconstruction and the scaled sample, in double.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../core/config.hpp"
#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "../data/anomaly.hpp"
#include "../data/detection_metrics.hpp"
#include "../data/scalers.hpp"
#include "../io/serialize.hpp"
#include "autoencoder.hpp"

namespace latent {

template <class T = float> class AnomalyDetector {
public:
    // `model` was trained on normal samples after `scaler` (fitted on them; NoScaling: none).
    // ShapeError if the scaler was fitted on another sample shape than the model's input.
    explicit AnomalyDetector(Autoencoder<T> model, Scaler<T> scaler = NoScaling{},
                             ErrorReduction score = ErrorReduction::mean)
        : model_(std::move(model)), scaler_(std::move(scaler)), score_(score) {
        check_scaler_shape("AnomalyDetector");
    }

    // One score per sample of raw (unscaled) x: the detector scales it first.
    std::vector<double> score(const Tensor<T>& x) { return reconstruction_errors(model_, scaled(x), score_); }

    // Per sample: is its score above the threshold? ArgumentError before a threshold is set.
    std::vector<bool> is_anomaly(const Tensor<T>& x) {
        const double limit = require_threshold("AnomalyDetector::is_anomaly");
        const std::vector<double> scores = score(x);
        std::vector<bool> flags(scores.size());
        for (std::size_t n = 0; n < scores.size(); ++n) flags[n] = scores[n] > limit;
        return flags;
    }

    // (reconstruction - scaled x)^2 per sample and feature, in x's shape.
    Tensor<T> squared_errors(const Tensor<T>& x) { return latent::squared_errors(model_, scaled(x)); }
    // The mean over x's samples of each feature's squared error (C*H*W values).
    std::vector<double> feature_errors(const Tensor<T>& x) { return latent::feature_errors(model_, scaled(x)); }

    // Sets the threshold to the `percentile` (NumPy's linear definition) of the scores of
    // `normal`, normal samples the model has not trained on, and returns it.
    double calibrate(const Tensor<T>& normal, double percentile = 99.0) {
        set_threshold(threshold_at_percentile(score(normal), percentile));
        return *threshold_;
    }
    void set_threshold(double threshold) {
        detail::require(std::isfinite(threshold), "AnomalyDetector::set_threshold",
                        "the threshold must be finite, got " + detail::readable_number(threshold));
        threshold_ = threshold;
    }
    // Empty until calibrate() or set_threshold().
    std::optional<double> threshold() const { return threshold_; }
    ErrorReduction score_kind() const { return score_; }
    const Scaler<T>& scaler() const { return scaler_; }
    Autoencoder<T>& model() { return model_; }
    const Autoencoder<T>& model() const { return model_; }

    // One file with the model, the scaler, the score kind and the threshold (which must be set).
    void save(const std::string& path) const {
        require_threshold("AnomalyDetector::save");
        detail::BinaryWriter out;
        out.string(file_kind);
        model_.write_model_part(out);
        detail::write_config(out, Config()
                                      .set("version", file_version)
                                      .set("score", score_ == ErrorReduction::mean ? "mean" : "sum")
                                      .set("threshold", *threshold_));
        detail::write_config(out, scaler_config(scaler_));
        detail::write_no_training(out);
        detail::write_model_file<T>(path, out.bytes());
    }

    // FormatError for a file that is not an AnomalyDetector's (a plain Autoencoder's included),
    // is corrupt, or holds a scaler that does not fit the model.
    static AnomalyDetector load(const std::string& path, const Registry<T>& registry = Registry<T>::builtin()) {
        return detail::read_model<T>(path, file_kind, nullptr, registry, [&](detail::PayloadReader<T>& reader) {
            Autoencoder<T> model = Autoencoder<T>::read_model_part(reader);
            const Config settings = detail::read_config(reader.in);
            const Config scaler = detail::read_config(reader.in);
            try {
                return from_parts(std::move(model), settings, scaler);
            } catch (const Error& error) {
                throw FormatError(reader.in.context() + ": " + error.what());
            }
        });
    }

private:
    static constexpr const char* file_kind = "AnomalyDetector";
    static constexpr std::int64_t file_version = 1;

    static AnomalyDetector from_parts(Autoencoder<T> model, const Config& settings, const Config& scaler) {
        const std::int64_t version = settings.get_int("version");
        if (version < 1 || version > file_version)
            throw FormatError("the detector is stored in version " + std::to_string(version) +
                              " of its format; this library reads version 1 (update latent)");
        const std::string& score = settings.get_string("score");
        if (score != "mean" && score != "sum")
            throw FormatError("unknown score '" + score + "' (mean or sum expected)");
        const double threshold = settings.get_double("threshold");
        if (!std::isfinite(threshold)) throw FormatError("the threshold is not finite");
        AnomalyDetector detector(std::move(model), scaler_from_config<T>(scaler),
                                 score == "mean" ? ErrorReduction::mean : ErrorReduction::sum);
        detector.threshold_ = threshold;
        return detector;
    }

    void check_scaler_shape(const char* where) const {
        const Shape fitted = std::visit(
            [&](const auto& scaler) -> Shape {
                if constexpr (std::is_same_v<std::decay_t<decltype(scaler)>, NoScaling>) return model_.input_shape();
                else {
                    detail::require(scaler.fitted(), where, "the scaler has not been fitted (call fit() first)");
                    return scaler.shape();
                }
            },
            scaler_);
        if (fitted != model_.input_shape())
            throw ShapeError(std::string(where) + ": the scaler was fitted on samples of shape " + fitted.str() +
                             ", the model takes " + model_.input_shape().str());
    }

    double require_threshold(const char* where) const {
        detail::require(threshold_.has_value(), where, "no threshold: call calibrate() or set_threshold() first");
        return *threshold_;
    }

    Tensor<T> scaled(const Tensor<T>& x) const { return scale(scaler_, x); }

    Autoencoder<T> model_;
    Scaler<T> scaler_;
    ErrorReduction score_;
    std::optional<double> threshold_;
};

}  // namespace latent
