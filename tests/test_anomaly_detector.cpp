#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("latent_detector_" + name + "_" + std::to_string(::getpid()) + ".latent"))
        .string();
}

// Rows of 6 features far from standard units: normal rows lie near a line through feature space
// (feature j = 1000 * j + 50 * t * (j + 1), t in [-1, 1], plus a little noise); anomalies are
// drawn without that relation.
Tensor<float> rows(Index count, bool normal, std::uint64_t seed) {
    Rng rng(seed);
    Tensor<float> x(count, 6, 1, 1);
    for (Index n = 0; n < count; ++n) {
        const double t = rng.uniform(-1.0, 1.0);
        for (Index j = 0; j < 6; ++j) {
            const double offset = 1000.0 * static_cast<double>(j);
            const double spread = 50.0 * static_cast<double>(j + 1);
            x(n, j, 0, 0) = static_cast<float>(normal ? offset + spread * t + rng.uniform(-1.0, 1.0)
                                                      : offset + spread * rng.uniform(-1.0, 1.0));
        }
    }
    return x;
}

Autoencoder<float> trained_model(const Tensor<float>& scaled_train) {
    Autoencoder<float> model(Encoder<float>{Dense<float>(8), Tanh<float>(), Dense<float>(1)},
                             Decoder<float>{Dense<float>(8), Tanh<float>(), Dense<float>(6)}, {6, 1, 1}, 3);
    Adam<float> adam(1e-2);
    FitOptions<float> options;
    options.epochs = 60;
    options.batch_size = 16;
    options.verbose = 0;
    model.fit(scaled_train, scaled_train, MeanSquaredError<float>(), adam, options);
    return model;
}

struct Trained {
    Autoencoder<float> model;
    Standardizer<float> scaler;
};

Trained train_on_normal_rows() {
    Standardizer<float> scaler;
    const Tensor<float> train = scaler.fit_transform(rows(200, true, 1));
    return {trained_model(train), scaler};
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A detector file whose detector and scaler configs are the given ones, with a valid header and
// checksum: what load() finds when the payload itself is wrong.
void write_detector_file(const std::string& path, const Autoencoder<float>& model, const Config& settings,
                         const Config& scaler) {
    detail::BinaryWriter out;
    out.string("AnomalyDetector");
    model.write_model_part(out);
    detail::write_config(out, settings);
    detail::write_config(out, scaler);
    detail::write_no_training(out);
    detail::write_model_file<float>(path, out.bytes());
}

}  // namespace

TEST_CASE("AnomalyDetector scales raw samples itself and flags rows off the normal line", "[anomaly][detector]") {
    Trained trained = train_on_normal_rows();
    AnomalyDetector<float> detector(trained.model, trained.scaler);
    const Tensor<float> held_out = rows(100, true, 2), anomalies = rows(100, false, 3);

    // The scores of raw rows are the model's reconstruction errors of the scaled rows.
    const std::vector<double> expected = reconstruction_errors(trained.model, trained.scaler.transform(held_out));
    CHECK(detector.score(held_out) == expected);
    // Rows already scaled are not what the detector expects: their scores differ.
    CHECK(detector.score(trained.scaler.transform(held_out)) != expected);

    const double threshold = detector.calibrate(held_out, 99.0);
    CHECK(threshold == threshold_at_percentile(expected, 99.0));
    REQUIRE(detector.threshold().has_value());
    const std::vector<bool> normal_flags = detector.is_anomaly(held_out);
    const std::vector<bool> anomaly_flags = detector.is_anomaly(anomalies);
    const auto flagged = [](const std::vector<bool>& flags) { return std::count(flags.begin(), flags.end(), true); };
    CHECK(flagged(normal_flags) == 1);     // the 99th percentile of 100 scores leaves one above it
    CHECK(flagged(anomaly_flags) >= 80);   // most rows off the line reconstruct far worse
    CHECK(detector.feature_errors(anomalies).size() == 6);
    const Tensor<float> squared = detector.squared_errors(anomalies);
    CHECK(squared.dimensions() == anomalies.dimensions());
}

TEST_CASE("AnomalyDetector: a score equal to the threshold is normal, one just above it an anomaly",
          "[anomaly][detector]") {
    Trained trained = train_on_normal_rows();
    AnomalyDetector<float> detector(trained.model, trained.scaler);
    const Tensor<float> one = rows(1, false, 4);
    const double score = detector.score(one).front();
    REQUIRE(score > 0);
    detector.set_threshold(score);
    CHECK(detector.is_anomaly(one) == std::vector<bool>{false});
    detector.set_threshold(std::nextafter(score, 0.0));
    CHECK(detector.is_anomaly(one) == std::vector<bool>{true});
}

TEST_CASE("AnomalyDetector save and load: the same scores, decisions, threshold and scaler, bit for bit",
          "[anomaly][detector][serialization]") {
    Trained trained = train_on_normal_rows();
    const Tensor<float> held_out = rows(100, true, 2), anomalies = rows(100, false, 3);
    Tensor<float> probe(held_out.dimension(0) + anomalies.dimension(0), 6, 1, 1);
    probe = held_out.concatenate(anomalies, 0);

    MinMaxScaler<float> min_max(-1, 1);
    min_max.fit(rows(200, true, 1));
    std::vector<AnomalyDetector<float>> detectors{
        AnomalyDetector<float>(trained.model, trained.scaler),
        AnomalyDetector<float>(trained.model, min_max, ErrorReduction::sum),
        AnomalyDetector<float>(trained.model, NoScaling{}, ErrorReduction::sum)};
    for (std::size_t k = 0; k < detectors.size(); ++k) {
        AnomalyDetector<float>& detector = detectors[k];
        detector.calibrate(held_out, 97.5);
        const std::string path = temp_path("round_trip_" + std::to_string(k));
        detector.save(path);
        AnomalyDetector<float> loaded = AnomalyDetector<float>::load(path);
        std::filesystem::remove(path);

        CHECK(loaded.threshold() == detector.threshold());
        CHECK(loaded.score_kind() == detector.score_kind());
        CHECK(loaded.scaler().index() == detector.scaler().index());
        CHECK(scaler_config(loaded.scaler()).entries() == scaler_config(detector.scaler()).entries());
        CHECK(loaded.score(probe) == detector.score(probe));
        CHECK(loaded.is_anomaly(probe) == detector.is_anomaly(probe));
        CHECK(loaded.feature_errors(probe) == detector.feature_errors(probe));
        CHECK(test::max_abs_difference(loaded.squared_errors(probe), detector.squared_errors(probe)) == 0);
    }
    // The sum over the 6 features is 6 times the mean (to rounding) for the same model and scaling.
    AnomalyDetector<float> mean_score(trained.model, NoScaling{});
    const std::vector<double> mean = mean_score.score(probe), sum = detectors[2].score(probe);
    for (std::size_t n = 0; n < mean.size(); ++n) CHECK(sum[n] == Approx(6 * mean[n]).epsilon(1e-12));
}

TEST_CASE("AnomalyDetector refuses misuse: no threshold, unfitted or misfitted scalers, NaN rows",
          "[anomaly][detector]") {
    Trained trained = train_on_normal_rows();
    AnomalyDetector<float> detector(trained.model, trained.scaler);
    const Tensor<float> held_out = rows(20, true, 2);
    test::expect_error<ArgumentError>([&] { detector.is_anomaly(held_out); },
                                      "no threshold: call calibrate() or set_threshold() first");
    test::expect_error<ArgumentError>([&] { detector.save(temp_path("no_threshold")); }, "no threshold");
    CHECK_FALSE(std::filesystem::exists(temp_path("no_threshold")));
    test::expect_error<ArgumentError>([&] { detector.set_threshold(std::nan("")); }, "must be finite, got nan");
    test::expect_error<ArgumentError>([&] { AnomalyDetector<float>(trained.model, Standardizer<float>()); },
                                      "the scaler has not been fitted");
    Standardizer<float> other_shape;
    other_shape.fit(Tensor<float>(Tensor<float>(4, 5, 1, 1).setRandom()));
    test::expect_error<ShapeError>([&] { AnomalyDetector<float>(trained.model, other_shape); },
                                   "the scaler was fitted on samples of shape (5, 1, 1), the model takes (6, 1, 1)");
    Tensor<float> with_nan = held_out;
    with_nan(3, 2, 0, 0) = std::numeric_limits<float>::quiet_NaN();
    test::expect_error<NumericError>([&] { detector.score(with_nan); }, "sample 3, feature 2 is NaN");
    AnomalyDetector<float> unscaled(trained.model, NoScaling{});
    test::expect_error<NumericError>([&] { unscaled.score(with_nan); }, "sample 3, feature 2 is NaN");
    test::expect_error<ShapeError>([&] { unscaled.score(Tensor<float>(Tensor<float>(2, 5, 1, 1).setZero())); },
                                   "expected input of shape (2, 6, 1, 1)");
}

TEST_CASE("AnomalyDetector files: another kind, a flipped byte or a bad payload give FormatError",
          "[anomaly][detector][serialization][broken]") {
    Trained trained = train_on_normal_rows();
    AnomalyDetector<float> detector(trained.model, trained.scaler);
    detector.set_threshold(0.25);
    const std::string path = temp_path("broken"), model_path = temp_path("plain_model");
    detector.save(path);
    trained.model.save(model_path);

    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(model_path); },
                                    "holds a model of kind 'Autoencoder', not 'AnomalyDetector'");
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); },
                                    "holds a model of kind 'AnomalyDetector', not 'Autoencoder'");
    test::expect_error<FormatError>([&] { AnomalyDetector<double>::load(path); }, "holds float weights");

    const std::string good = read_bytes(path);
    std::string flipped = good;
    flipped[flipped.size() - 20] = static_cast<char>(flipped[flipped.size() - 20] ^ 0x10);
    write_bytes(path, flipped);
    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(path); }, "checksum mismatch");
    write_bytes(path, good.substr(0, good.size() - 3));
    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(path); }, "truncated");

    // Valid header and checksum, wrong contents.
    const Config settings = Config().set("version", 1).set("score", "mean").set("threshold", 0.25);
    const Config scaler = trained.scaler.config();
    write_detector_file(path, trained.model, Config(settings).set("version", 2), scaler);
    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(path); },
                                    "the detector is stored in version 2 of its format");
    write_detector_file(path, trained.model, Config(settings).set("score", "median"), scaler);
    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(path); }, "unknown score 'median'");
    write_detector_file(path, trained.model, Config(settings).set("threshold", "inf"), scaler);
    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(path); }, "threshold");
    write_detector_file(path, trained.model, settings, Config(scaler).set("scaler", "RobustScaler"));
    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(path); }, "unknown scaler 'RobustScaler'");
    Standardizer<float> five_features;
    five_features.fit(Tensor<float>(Tensor<float>(4, 5, 1, 1).setRandom()));
    write_detector_file(path, trained.model, settings, five_features.config());
    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(path); },
                                    "the scaler was fitted on samples of shape (5, 1, 1), the model takes (6, 1, 1)");
    // The message names the file.
    test::expect_error<FormatError>([&] { AnomalyDetector<float>::load(path); }, "'" + path + "'");
    std::filesystem::remove(path);
    std::filesystem::remove(model_path);
}
