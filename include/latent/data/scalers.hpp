// Per-feature scaling of samples, fitted on training data and applied to any later data:
//   Standardizer   y = (x - mean) / std            (population std, as scikit-learn's StandardScaler)
//   MinMaxScaler   y = low + (x - min) (high - low) / (max - min)   (feature range [low, high])
// A feature is one element of a sample (C*H*W of them; D for a table read by read_csv).
// Statistics are computed in double; outputs are of the scalar type T.
//
// Constant features (one value in every fitted sample) get scale 1, so no division by zero:
// the Standardizer maps them to x - mean (0 for the fitted value), the MinMaxScaler to
// x - min + low (low for the fitted value); both still invert exactly.
//
// Errors: ArgumentError for an empty batch or a scaler used before fit(); ShapeError when the
// samples' shape differs from the fitted one; NumericError for a NaN or infinite value, naming
// the sample and the feature.
//
// config() / from_config(): the fitted scaler as a Config (core/config.hpp), a list of named
// text values that a model file can store as it stores a layer's:
//   scaler    "Standardizer" or "MinMaxScaler"       version   1
//   channels, height, width                          the fitted sample shape
//   Standardizer:  mean, std    D numbers each, separated by single spaces
//   MinMaxScaler:  min, max     D numbers each;  low, high   the feature range
// Numbers are written with the shortest text that reads back to the same double, so a round
// trip gives the same scaler bit for bit. from_config refuses (FormatError) any other kind or
// version, a list of the wrong length and non-finite or inconsistent values.
//
// Scaler<T> holds any of them, or NoScaling (samples used as they are, e.g. images in [0, 1]);
// scale(), scaler_config() and scaler_from_config() work on it (config of NoScaling: scaler=none).
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "../core/config.hpp"
#include "../core/errors.hpp"
#include "../core/tensor.hpp"

namespace latent {
namespace detail {

constexpr std::int64_t scaler_config_version = 1;

template <class T> void require_finite_samples(const Tensor<T>& x, const std::string& where) {
    const Index size = sample_shape(x).size();
    for (Index i = 0; i < x.size(); ++i)
        if (!std::isfinite(static_cast<double>(x.data()[i])))
            throw NumericError(where + ": sample " + std::to_string(i / size) + ", feature " + std::to_string(i % size) +
                               " is " + (std::isnan(static_cast<double>(x.data()[i])) ? "NaN" : "infinite"));
}

// y = (x - offset[j]) / scale[j] for feature j of every sample, and its inverse: the map both
// scalers are.
class AffineScaling {
public:
    AffineScaling() = default;
    AffineScaling(Shape shape, std::vector<double> offset, std::vector<double> scale)
        : shape_(shape), offset_(std::move(offset)), scale_(std::move(scale)), fitted_(true) {}

    bool fitted() const { return fitted_; }
    const Shape& shape() const { return shape_; }

    template <class T> Tensor<T> apply(const Tensor<T>& x, bool inverse, const std::string& where) const {
        check(x, where);
        Tensor<T> y(x.dimensions());
        const Index size = shape_.size();
        for (Index i = 0; i < x.size(); ++i) {
            const auto j = static_cast<std::size_t>(i % size);
            const double value = static_cast<double>(x.data()[i]);
            y.data()[i] = static_cast<T>(inverse ? value * scale_[j] + offset_[j] : (value - offset_[j]) / scale_[j]);
        }
        return y;
    }

private:
    template <class T> void check(const Tensor<T>& x, const std::string& where) const {
        require(fitted_, where, "the scaler has not been fitted (call fit() first)");
        if (sample_shape(x) != shape_)
            throw ShapeError(where + ": the scaler was fitted on samples of shape " + shape_.str() + ", got " +
                             batch_shape_str(x.dimension(0), sample_shape(x)));
        require_finite_samples(x, where);
    }

    Shape shape_;
    std::vector<double> offset_, scale_;
    bool fitted_ = false;
};

// Per-feature minimum and maximum over the samples of a non-empty, finite batch.
template <class T> void feature_extremes(const Tensor<T>& x, std::vector<double>& low, std::vector<double>& high) {
    const auto size = static_cast<std::size_t>(sample_shape(x).size());
    low.assign(size, std::numeric_limits<double>::infinity());
    high.assign(size, -std::numeric_limits<double>::infinity());
    for (Index i = 0; i < x.size(); ++i) {
        const auto j = static_cast<std::size_t>(i) % size;
        low[j] = std::min(low[j], static_cast<double>(x.data()[i]));
        high[j] = std::max(high[j], static_cast<double>(x.data()[i]));
    }
}

template <class T> void check_fit_input(const Tensor<T>& x, const std::string& where) {
    require(x.dimension(0) > 0 && x.size() > 0, where, "cannot fit on an empty batch");
    require_finite_samples(x, where);
}

inline std::string join_numbers(const std::vector<double>& values) {
    std::string text;
    char buffer[64];
    for (double value : values) {
        const auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
        text += (text.empty() ? "" : " ") + std::string(buffer, end);
    }
    return text;
}

inline std::vector<double> split_numbers(const Config& config, const std::string& key, std::size_t count) {
    const std::string& text = config.get_string(key);
    std::vector<double> values;
    const char* at = text.data();
    const char* end = text.data() + text.size();
    while (at < end) {
        double value = 0;
        const auto [stop, status] = std::from_chars(at, end, value);
        if (status != std::errc() || !std::isfinite(value) || (stop != end && *stop != ' '))
            throw FormatError("scaler config '" + key + "': value " + std::to_string(values.size()) +
                              " is not a finite number");
        values.push_back(value);
        at = stop == end ? end : stop + 1;
    }
    if (values.size() != count)
        throw FormatError("scaler config '" + key + "' holds " + std::to_string(values.size()) + " numbers, expected " +
                          std::to_string(count) + " (one per feature)");
    return values;
}

inline Config scaler_config_head(const std::string& kind, const Shape& shape) {
    return Config()
        .set("scaler", kind)
        .set("version", scaler_config_version)
        .set("channels", static_cast<std::int64_t>(shape.channels))
        .set("height", static_cast<std::int64_t>(shape.height))
        .set("width", static_cast<std::int64_t>(shape.width));
}

// The sample shape of a scaler config of `kind`, checked.
inline Shape read_scaler_config_head(const Config& config, const std::string& kind) {
    if (config.get_string("scaler") != kind)
        throw FormatError("scaler config holds a '" + config.get_string("scaler") + "', not a " + kind);
    if (config.get_int("version") != scaler_config_version)
        throw FormatError(kind + " config version " + std::to_string(config.get_int("version")) +
                          " is not supported (this library reads version " + std::to_string(scaler_config_version) + ")");
    const std::int64_t channels = config.get_int("channels"), height = config.get_int("height"),
                       width = config.get_int("width");
    constexpr std::int64_t most = std::int64_t{1} << 31;
    if (channels < 1 || height < 1 || width < 1 || channels > most || height > most || width > most ||
        channels * height > most || channels * height * width > most)
        throw FormatError(kind + " config: sample shape " + std::to_string(channels) + "x" + std::to_string(height) + "x" +
                          std::to_string(width) + " is not valid");
    return Shape{static_cast<Index>(channels), static_cast<Index>(height), static_cast<Index>(width)};
}

}  // namespace detail

// Per feature: subtract the mean, divide by the standard deviation (population, 1/N).
template <class T = float> class Standardizer {
public:
    Standardizer& fit(const Tensor<T>& x) {
        detail::check_fit_input(x, "Standardizer::fit");
        const auto size = static_cast<std::size_t>(sample_shape(x).size());
        const auto count = static_cast<double>(x.dimension(0));
        std::vector<double> low, high;
        detail::feature_extremes(x, low, high);
        mean_.assign(size, 0.0);
        std_.assign(size, 0.0);
        for (Index i = 0; i < x.size(); ++i) mean_[static_cast<std::size_t>(i) % size] += static_cast<double>(x.data()[i]);
        for (double& mean : mean_) mean /= count;
        for (Index i = 0; i < x.size(); ++i) {
            const auto j = static_cast<std::size_t>(i) % size;
            const double deviation = static_cast<double>(x.data()[i]) - mean_[j];
            std_[j] += deviation * deviation;
        }
        for (std::size_t j = 0; j < size; ++j) {
            std_[j] = low[j] == high[j] ? 0.0 : std::sqrt(std_[j] / count);
            if (low[j] == high[j]) mean_[j] = low[j];  // exact: the fitted value maps to 0
        }
        build(sample_shape(x));
        return *this;
    }
    Tensor<T> transform(const Tensor<T>& x) const { return scaling_.apply(x, false, "Standardizer::transform"); }
    Tensor<T> inverse_transform(const Tensor<T>& y) const {
        return scaling_.apply(y, true, "Standardizer::inverse_transform");
    }
    Tensor<T> fit_transform(const Tensor<T>& x) { return fit(x).transform(x); }

    bool fitted() const { return scaling_.fitted(); }
    // The sample shape fitted on.
    const Shape& shape() const { return scaling_.shape(); }
    const std::vector<double>& mean() const { return mean_; }
    // The standard deviations; 0 for a constant feature (which is divided by 1).
    const std::vector<double>& stddev() const { return std_; }

    Config config() const {
        detail::require(fitted(), "Standardizer::config", "the scaler has not been fitted (call fit() first)");
        return detail::scaler_config_head("Standardizer", scaling_.shape())
            .set("mean", detail::join_numbers(mean_))
            .set("std", detail::join_numbers(std_));
    }
    static Standardizer from_config(const Config& config) {
        const Shape shape = detail::read_scaler_config_head(config, "Standardizer");
        const auto size = static_cast<std::size_t>(shape.size());
        Standardizer scaler;
        scaler.mean_ = detail::split_numbers(config, "mean", size);
        scaler.std_ = detail::split_numbers(config, "std", size);
        for (double value : scaler.std_)
            if (value < 0) throw FormatError("Standardizer config: a standard deviation is negative");
        scaler.build(shape);
        return scaler;
    }

private:
    void build(const Shape& shape) {
        std::vector<double> scale(std_);
        for (double& value : scale) value = value == 0.0 ? 1.0 : value;
        scaling_ = detail::AffineScaling(shape, mean_, std::move(scale));
    }

    std::vector<double> mean_, std_;
    detail::AffineScaling scaling_;
};

// Per feature: map [min, max] of the fitted data onto [low, high] (default [0, 1]). Later data
// outside the fitted range maps outside [low, high]; nothing is clipped.
template <class T = float> class MinMaxScaler {
public:
    explicit MinMaxScaler(double low = 0.0, double high = 1.0) : low_(low), high_(high) {
        detail::require(std::isfinite(low) && std::isfinite(high) && low < high, "MinMaxScaler",
                        "the feature range needs finite low < high, got [" + detail::readable_number(low) + ", " +
                            detail::readable_number(high) + "]");
    }

    MinMaxScaler& fit(const Tensor<T>& x) {
        detail::check_fit_input(x, "MinMaxScaler::fit");
        detail::feature_extremes(x, min_, max_);
        build(sample_shape(x));
        return *this;
    }
    Tensor<T> transform(const Tensor<T>& x) const { return scaling_.apply(x, false, "MinMaxScaler::transform"); }
    Tensor<T> inverse_transform(const Tensor<T>& y) const {
        return scaling_.apply(y, true, "MinMaxScaler::inverse_transform");
    }
    Tensor<T> fit_transform(const Tensor<T>& x) { return fit(x).transform(x); }

    bool fitted() const { return scaling_.fitted(); }
    // The sample shape fitted on.
    const Shape& shape() const { return scaling_.shape(); }
    const std::vector<double>& data_min() const { return min_; }
    const std::vector<double>& data_max() const { return max_; }
    double low() const { return low_; }
    double high() const { return high_; }

    Config config() const {
        detail::require(fitted(), "MinMaxScaler::config", "the scaler has not been fitted (call fit() first)");
        return detail::scaler_config_head("MinMaxScaler", scaling_.shape())
            .set("min", detail::join_numbers(min_))
            .set("max", detail::join_numbers(max_))
            .set("low", low_)
            .set("high", high_);
    }
    static MinMaxScaler from_config(const Config& config) {
        const Shape shape = detail::read_scaler_config_head(config, "MinMaxScaler");
        const double low = config.get_double("low"), high = config.get_double("high");
        if (!(std::isfinite(low) && std::isfinite(high) && low < high))
            throw FormatError("MinMaxScaler config: the feature range needs finite low < high");
        MinMaxScaler scaler(low, high);
        const auto size = static_cast<std::size_t>(shape.size());
        scaler.min_ = detail::split_numbers(config, "min", size);
        scaler.max_ = detail::split_numbers(config, "max", size);
        for (std::size_t j = 0; j < size; ++j)
            if (scaler.min_[j] > scaler.max_[j])
                throw FormatError("MinMaxScaler config: feature " + std::to_string(j) + " has min > max");
        scaler.build(shape);
        return scaler;
    }

private:
    // y = (x - offset) / scale with scale = (max - min) / (high - low), offset = min - low * scale.
    void build(const Shape& shape) {
        std::vector<double> offset(min_.size()), scale(min_.size());
        for (std::size_t j = 0; j < min_.size(); ++j) {
            scale[j] = min_[j] == max_[j] ? 1.0 : (max_[j] - min_[j]) / (high_ - low_);
            offset[j] = min_[j] - low_ * scale[j];
        }
        scaling_ = detail::AffineScaling(shape, std::move(offset), std::move(scale));
    }

    double low_, high_;
    std::vector<double> min_, max_;
    detail::AffineScaling scaling_;
};

// Samples used as they are: no scaler.
struct NoScaling {};

// Any of the scalers, for code that holds one chosen at run time (AnomalyDetector).
template <class T = float> using Scaler = std::variant<NoScaling, Standardizer<T>, MinMaxScaler<T>>;

// x through `scaler`'s transform(); NoScaling checks that x is finite and returns a copy.
template <class T> Tensor<T> scale(const Scaler<T>& scaler, const Tensor<T>& x) {
    if (std::holds_alternative<NoScaling>(scaler)) {
        detail::require_finite_samples(x, "scale");
        return x;
    }
    if (const auto* standardizer = std::get_if<Standardizer<T>>(&scaler)) return standardizer->transform(x);
    return std::get<MinMaxScaler<T>>(scaler).transform(x);
}

template <class T> Config scaler_config(const Scaler<T>& scaler) {
    if (std::holds_alternative<NoScaling>(scaler)) return Config().set("scaler", "none");
    if (const auto* standardizer = std::get_if<Standardizer<T>>(&scaler)) return standardizer->config();
    return std::get<MinMaxScaler<T>>(scaler).config();
}

// The scaler a config describes, of the kind its "scaler" value names; FormatError for another.
template <class T> Scaler<T> scaler_from_config(const Config& config) {
    const std::string& kind = config.get_string("scaler");
    if (kind == "none") return NoScaling{};
    if (kind == "Standardizer") return Standardizer<T>::from_config(config);
    if (kind == "MinMaxScaler") return MinMaxScaler<T>::from_config(config);
    throw FormatError("scaler config: unknown scaler '" + kind + "' (this library knows none, Standardizer and "
                      "MinMaxScaler)");
}

}  // namespace latent
