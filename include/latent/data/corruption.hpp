// Corruptions for denoising autoencoders: each turns a clean batch into a noisy copy of it.
//
// The noise of sample n is drawn from Rng(derive_seed(seed, n)): the result depends on the seed
// and on the sample's index only, never on the thread count or on how the batch is split. Pass a
// fresh seed per batch and epoch (e.g. derive_seed(seed, streams::corruption, epoch, batch)).
// `clean` and `corrupted` must have the same shape; they may be the same memory (in place).
//
// Each corruption is a small value type with apply(clean, corrupted, seed) -- also callable as
// corruption(clean, corrupted, seed), so it can be FitOptions::corruption directly -- config()
// and from_config(); Corruption<T> holds any of them (or none) for models, configs and files.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "../core/errors.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../core/config.hpp"
#include "../core/size2.hpp"
#include "../core/threading.hpp"

namespace latent {
namespace detail {

template <class T>
void check_corruption_shapes(const char* name, const ConstTensorView<T>& clean,
                             const TensorView<T>& corrupted) {
    if (clean.dimensions() != corrupted.dimensions())
        throw ShapeError(std::string(name) + ": clean batch " +
                         batch_shape_str(clean.dimension(0), sample_shape<T>(clean)) +
                         " and corrupted batch " +
                         batch_shape_str(corrupted.dimension(0), sample_shape<T>(corrupted)) +
                         " differ in shape");
}

// Calls corrupt_sample(clean_sample, corrupted_sample, rng) for every sample, with the sample's
// own generator, in parallel over fixed chunks of samples.
template <class T, class CorruptSample>
void corrupt_each_sample(const char* name, ConstTensorView<T> clean, TensorView<T> corrupted,
                         std::uint64_t seed, CorruptSample corrupt_sample) {
    check_corruption_shapes(name, clean, corrupted);
    const Index sample_size = sample_shape<T>(clean).size();
    const Chunks chunks = batch_chunks(clean.dimension(0), sample_size);
    parallel_for(chunks.count(), clean.size(), [&](Index chunk) {
        const Index end = chunks.begin(chunk) + chunks.size(chunk);
        for (Index n = chunks.begin(chunk); n < end; ++n) {
            Rng rng(derive_seed(seed, static_cast<std::uint64_t>(n)));
            corrupt_sample(clean.data() + n * sample_size, corrupted.data() + n * sample_size, rng);
        }
    });
}

inline void require_probability(const char* name, double probability) {
    require(probability >= 0.0 && probability <= 1.0, name,
            "probability must be in [0, 1], got " + detail::readable_number(probability));
}

}  // namespace detail

// No corruption: corrupted = clean (a plain autoencoder).
class NoCorruption {
public:
    static constexpr const char* type_name = "None";

    template <class T>
    void operator()(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        apply(clean, corrupted, seed);
    }
    template <class T>
    void apply(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        (void)seed;
        detail::check_corruption_shapes(type_name, clean, corrupted);
        if (corrupted.data() != clean.data()) std::copy_n(clean.data(), clean.size(), corrupted.data());
    }
    Config config() const { return Config(); }
    static NoCorruption from_config(const Config&) { return NoCorruption(); }
};

// Additive Gaussian noise: corrupted = clean + N(mean, stddev^2) per value, then clipped to
// [0, 1] when `clip` (the default, which keeps the input in the range of the images).
class GaussianNoise {
public:
    static constexpr const char* type_name = "GaussianNoise";

    GaussianNoise(double mean, double stddev, bool clip = true)
        : stddev_(stddev), mean_(mean), clip_(clip) {
        detail::require(std::isfinite(stddev) && stddev >= 0.0, type_name,
                        "stddev must be finite and >= 0, got " + detail::readable_number(stddev));
        detail::require(std::isfinite(mean), type_name, "mean must be finite");
    }

    template <class T>
    void operator()(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        apply(clean, corrupted, seed);
    }
    template <class T>
    void apply(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        const Index size = sample_shape<T>(clean).size();
        detail::corrupt_each_sample<T>(type_name, clean, corrupted, seed,
                                       [&](const T* in, T* out, Rng& rng) {
            for (Index i = 0; i < size; ++i) {
                const double noisy = static_cast<double>(in[i]) + rng.normal(mean_, stddev_);
                out[i] = static_cast<T>(clip_ ? std::clamp(noisy, 0.0, 1.0) : noisy);
            }
        });
    }

    Config config() const { return Config().set("stddev", stddev_).set("mean", mean_).set("clip", clip_ ? 1 : 0); }
    static GaussianNoise from_config(const Config& config) {
        return GaussianNoise(config.get_double("mean"), config.get_double("stddev"),
                             config.get_int("clip") != 0);
    }
    double stddev() const { return stddev_; }
    double mean() const { return mean_; }
    bool clip() const { return clip_; }

private:
    double stddev_;
    double mean_;
    bool clip_;
};

// Salt-and-pepper noise: each value becomes 0 (pepper) or 1 (salt), half each, with probability
// `probability`, and keeps its clean value otherwise. One uniform draw u per value:
// u < p/2 -> 0, p/2 <= u < p -> 1.
class SaltAndPepper {
public:
    static constexpr const char* type_name = "SaltAndPepper";

    explicit SaltAndPepper(double probability) : probability_(probability) {
        detail::require_probability(type_name, probability);
    }

    template <class T>
    void operator()(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        apply(clean, corrupted, seed);
    }
    template <class T>
    void apply(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        const Index size = sample_shape<T>(clean).size();
        const double half = probability_ / 2;
        detail::corrupt_each_sample<T>(type_name, clean, corrupted, seed,
                                       [&](const T* in, T* out, Rng& rng) {
            for (Index i = 0; i < size; ++i) {
                const double u = rng.uniform();
                out[i] = u < half ? T(0) : u < probability_ ? T(1) : in[i];
            }
        });
    }

    Config config() const { return Config().set("probability", probability_); }
    static SaltAndPepper from_config(const Config& config) {
        return SaltAndPepper(config.get_double("probability"));
    }
    double probability() const { return probability_; }

private:
    double probability_;
};

// Masking noise: each value is set to 0 with probability `probability` (Vincent et al. 2010).
class MaskingNoise {
public:
    static constexpr const char* type_name = "MaskingNoise";

    explicit MaskingNoise(double probability) : probability_(probability) {
        detail::require_probability(type_name, probability);
    }

    template <class T>
    void operator()(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        apply(clean, corrupted, seed);
    }
    template <class T>
    void apply(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        const Index size = sample_shape<T>(clean).size();
        detail::corrupt_each_sample<T>(type_name, clean, corrupted, seed,
                                       [&](const T* in, T* out, Rng& rng) {
            for (Index i = 0; i < size; ++i) out[i] = rng.uniform() < probability_ ? T(0) : in[i];
        });
    }

    Config config() const { return Config().set("probability", probability_); }
    static MaskingNoise from_config(const Config& config) {
        return MaskingNoise(config.get_double("probability"));
    }
    double probability() const { return probability_; }

private:
    double probability_;
};

// Box occlusion: `count` black (0) boxes of `size` per image, each at a uniformly random position
// that lies fully inside the image, the same position in every channel. Boxes may overlap.
// ShapeError from apply when a box is larger than the images.
class BoxOcclusion {
public:
    static constexpr const char* type_name = "BoxOcclusion";

    explicit BoxOcclusion(Size2 size, Index count = 1) : size_(size), count_(count) {
        detail::require(size.height >= 1 && size.width >= 1, type_name,
                        "box size must be >= 1x1, got " + size.str());
        detail::require(count >= 1, type_name, "box count must be >= 1, got " + std::to_string(count));
    }

    template <class T>
    void operator()(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        apply(clean, corrupted, seed);
    }
    template <class T>
    void apply(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        const Shape shape = sample_shape<T>(clean);
        if (size_.height > shape.height || size_.width > shape.width)
            throw ShapeError(std::string(type_name) + ": a " + size_.str() + " box does not fit in " +
                             std::to_string(shape.height) + "x" + std::to_string(shape.width) +
                             " images");
        const Index plane = shape.height * shape.width;
        detail::corrupt_each_sample<T>(type_name, clean, corrupted, seed,
                                       [&](const T* in, T* out, Rng& rng) {
            if (out != in) std::copy_n(in, shape.size(), out);
            for (Index box = 0; box < count_; ++box) {
                // Top-left corner uniform over the positions where the whole box fits.
                const auto top = static_cast<Index>(rng.below(static_cast<std::uint64_t>(shape.height - size_.height + 1)));
                const auto left = static_cast<Index>(rng.below(static_cast<std::uint64_t>(shape.width - size_.width + 1)));
                for (Index c = 0; c < shape.channels; ++c)
                    for (Index row = top; row < top + size_.height; ++row)
                        std::fill_n(out + c * plane + row * shape.width + left, size_.width, T(0));
            }
        });
    }

    Config config() const {
        return Config().set("height", size_.height).set("width", size_.width).set("count", count_);
    }
    static BoxOcclusion from_config(const Config& config) {
        return BoxOcclusion(Size2(config.get_int("height"), config.get_int("width")),
                            config.get_int("count"));
    }
    Size2 size() const { return size_; }
    Index count() const { return count_; }

private:
    Size2 size_;
    Index count_;
};

// Any one of the corruptions above; default-constructed it is NoCorruption ("None").
template <class T = float> class Corruption {
public:
    using Variant = std::variant<NoCorruption, GaussianNoise, SaltAndPepper, MaskingNoise, BoxOcclusion>;

    Corruption() = default;
    template <class C, class = std::enable_if_t<std::is_constructible_v<Variant, C> &&
                                                !std::is_same_v<std::decay_t<C>, Corruption>>>
    Corruption(C corruption) : corruption_(std::move(corruption)) {}  // NOLINT: implicit on purpose

    void operator()(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        apply(clean, corrupted, seed);
    }
    void apply(ConstTensorView<T> clean, TensorView<T> corrupted, std::uint64_t seed) const {
        std::visit([&](const auto& corruption) { corruption.apply(clean, corrupted, seed); }, corruption_);
    }
    // Whole-tensor form: `corrupted` is resized to the shape of `clean` (this may allocate).
    void apply(const Tensor<T>& clean, Tensor<T>& corrupted, std::uint64_t seed) const {
        corrupted.resize(clean.dimensions());
        apply(view(clean), view(corrupted), seed);
    }

    // "None", "GaussianNoise", "SaltAndPepper", "MaskingNoise" or "BoxOcclusion".
    std::string type() const {
        return std::visit([](const auto& corruption) -> std::string { return corruption.type_name; },
                          corruption_);
    }
    Config config() const {
        return std::visit([](const auto& corruption) { return corruption.config(); }, corruption_);
    }
    // The corruption that type() and config() describe; FormatError for an unknown type.
    static Corruption from_config(const std::string& type, const Config& config) {
        if (type == NoCorruption::type_name) return NoCorruption::from_config(config);
        if (type == GaussianNoise::type_name) return GaussianNoise::from_config(config);
        if (type == SaltAndPepper::type_name) return SaltAndPepper::from_config(config);
        if (type == MaskingNoise::type_name) return MaskingNoise::from_config(config);
        if (type == BoxOcclusion::type_name) return BoxOcclusion::from_config(config);
        throw FormatError("unknown corruption '" + type +
                          "' (expected None, GaussianNoise, SaltAndPepper, MaskingNoise or BoxOcclusion)");
    }

    // The held corruption if it is a C, else nullptr.
    template <class C> const C* get() const { return std::get_if<C>(&corruption_); }
    const Variant& variant() const { return corruption_; }

private:
    Variant corruption_;
};

}  // namespace latent
