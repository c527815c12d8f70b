// A small seeded random engine whose streams are the same on every platform and standard
// library (std::*_distribution are not), plus the weight initialisers.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <numeric>
#include <utility>
#include <vector>

#include "tensor.hpp"

namespace latent {

// SplitMix64 step: a strong 64-bit mixer, used to seed and to derive independent streams.
inline std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// A seed for an independent stream, from a base seed and up to three stream keys
// (e.g. derive_seed(seed, streams::shuffle, epoch)).
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0,
                                 std::uint64_t c = 0) {
    std::uint64_t state = seed;
    std::uint64_t mixed = splitmix64(state);
    for (std::uint64_t key : {a, b, c}) {
        state = mixed ^ (key * 0xD1B54A32D192ED03ull);
        mixed = splitmix64(state);
    }
    return mixed;
}

// Keys of the streams latent draws from, so that weights, shuffling and noise never share one.
namespace streams {
constexpr std::uint64_t init = 1;
constexpr std::uint64_t shuffle = 2;
constexpr std::uint64_t corruption = 3;
constexpr std::uint64_t split = 4;
constexpr std::uint64_t noise = 5;   // stochastic layers during training (core/pass.hpp)
}  // namespace streams

// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
class Rng {
public:
    explicit Rng(std::uint64_t seed = 0) {
        std::uint64_t state = seed;
        for (auto& word : state_) word = splitmix64(state);
    }

    std::uint64_t next_u64() {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
    double uniform(double low, double high) { return low + (high - low) * uniform(); }

    // Uniform integer in [0, bound), without modulo bias (bound > 0).
    std::uint64_t below(std::uint64_t bound) {
        const std::uint64_t limit = (~std::uint64_t{0} - bound + 1) % bound;  // 2^64 mod bound
        std::uint64_t draw = next_u64();
        while (draw < limit) draw = next_u64();
        return draw % bound;
    }

    // Standard normal by the Box-Muller transform (both values of a pair are used).
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        const double u1 = 1.0 - uniform();  // (0, 1]: log() stays finite
        const double u2 = uniform();
        const double radius = std::sqrt(-2.0 * std::log(u1));
        const double angle = 6.283185307179586476925 * u2;
        spare_ = radius * std::sin(angle);
        has_spare_ = true;
        return radius * std::cos(angle);
    }
    double normal(double mean, double stddev) { return mean + stddev * normal(); }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

    std::uint64_t state_[4];
    double spare_ = 0.0;
    bool has_spare_ = false;
};

// Fisher-Yates shuffle of [first, last) with `rng`.
template <class Iterator> void shuffle(Iterator first, Iterator last, Rng& rng) {
    const auto count = last - first;
    for (auto i = count - 1; i > 0; --i) {
        const auto j = static_cast<decltype(i)>(rng.below(static_cast<std::uint64_t>(i) + 1));
        std::swap(first[i], first[j]);
    }
}

// The order in which epoch `epoch` visits `count` samples: 0, 1, ..., count - 1, shuffled (when
// `shuffled`) by Rng(derive_seed(seed, streams::shuffle, epoch)). fit() draws its batches in this
// order, and so do the streams of data/stream.hpp: a stream and the same data in memory give the
// same batches for the same seed.
inline void epoch_order(std::vector<Index>& order, Index count, bool shuffled, std::uint64_t seed, int epoch) {
    order.resize(static_cast<std::size_t>(count));
    std::iota(order.begin(), order.end(), Index{0});
    if (!shuffled) return;
    Rng rng(derive_seed(seed, streams::shuffle, static_cast<std::uint64_t>(epoch)));
    shuffle(order.begin(), order.end(), rng);
}

// Glorot (Xavier) uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)). Keras's default.
template <class T>
void glorot_uniform(T* values, Index count, Index fan_in, Index fan_out, Rng& rng) {
    const double limit = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
    for (Index i = 0; i < count; ++i) values[i] = static_cast<T>(rng.uniform(-limit, limit));
}

// He (Kaiming) normal: N(0, 2 / fan_in), suited to ReLU networks.
template <class T> void he_normal(T* values, Index count, Index fan_in, Rng& rng) {
    const double stddev = std::sqrt(2.0 / static_cast<double>(fan_in));
    for (Index i = 0; i < count; ++i) values[i] = static_cast<T>(rng.normal(0.0, stddev));
}

// He (Kaiming) uniform: U(-limit, limit), limit = sqrt(6 / fan_in).
template <class T> void he_uniform(T* values, Index count, Index fan_in, Rng& rng) {
    const double limit = std::sqrt(6.0 / static_cast<double>(fan_in));
    for (Index i = 0; i < count; ++i) values[i] = static_cast<T>(rng.uniform(-limit, limit));
}

// Which initialiser a layer uses for its weights (biases always start at zero).
enum class Init { GlorotUniform, HeNormal, HeUniform };

inline const char* init_name(Init init) {
    switch (init) {
        case Init::GlorotUniform: return "glorot_uniform";
        case Init::HeNormal: return "he_normal";
        case Init::HeUniform: return "he_uniform";
    }
    return "glorot_uniform";
}

inline Init init_from_name(const std::string& name) {
    if (name == "glorot_uniform") return Init::GlorotUniform;
    if (name == "he_normal") return Init::HeNormal;
    if (name == "he_uniform") return Init::HeUniform;
    throw FormatError("unknown initialiser '" + name + "'");
}

template <class T>
void initialize(Init init, T* values, Index count, Index fan_in, Index fan_out, Rng& rng) {
    switch (init) {
        case Init::GlorotUniform: glorot_uniform(values, count, fan_in, fan_out, rng); break;
        case Init::HeNormal: he_normal(values, count, fan_in, rng); break;
        case Init::HeUniform: he_uniform(values, count, fan_in, rng); break;
    }
}

}  // namespace latent
