#include <catch2/catch.hpp>

#include <latent/data/corruption.hpp>
#include <latent/data/metrics.hpp>
#include <latent/latent.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <utility>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

// Sets the thread count for one scope and restores the previous one.
class ThreadCount {
public:
    explicit ThreadCount(int count) : saved_(num_threads()) { set_num_threads(count); }
    ~ThreadCount() { set_num_threads(saved_); }
    ThreadCount(const ThreadCount&) = delete;
    ThreadCount& operator=(const ThreadCount&) = delete;

private:
    int saved_;
};

Tensor<float> constant_tensor(Index batch, const Shape& shape, float value) {
    Tensor<float> tensor = make_tensor<float>(batch, shape);
    tensor.setConstant(value);
    return tensor;
}

Tensor<float> corrupt(const Corruption<float>& corruption, const Tensor<float>& clean, std::uint64_t seed) {
    Tensor<float> corrupted;
    corruption.apply(clean, corrupted, seed);
    return corrupted;
}

std::vector<std::pair<std::string, Corruption<float>>> every_corruption() {
    return {{"GaussianNoise", GaussianNoise(0.0, 0.3)},
            {"SaltAndPepper", SaltAndPepper(0.2)},
            {"MaskingNoise", MaskingNoise(0.25)},
            {"BoxOcclusion", BoxOcclusion(4, 2)}};
}

// Counts of values equal to 0 and to 1.
std::pair<Index, Index> count_zeros_and_ones(const Tensor<float>& tensor) {
    Index zeros = 0, ones = 0;
    for (Index i = 0; i < tensor.size(); ++i) {
        zeros += tensor.data()[i] == 0.0f;
        ones += tensor.data()[i] == 1.0f;
    }
    return {zeros, ones};
}

}  // namespace

// -------------------------------------------------------------------------------- corruptions

TEST_CASE("corruption: same seed gives identical output, another seed a different one",
          "[data][corruption]") {
    const auto clean = test::random_tensor<float>(6, {2, 12, 10}, 1, 0.0, 1.0);
    for (const auto& [name, corruption] : every_corruption()) {
        INFO(name);
        const Tensor<float> first = corrupt(corruption, clean, 42);
        CHECK(test::max_abs_difference(first, corrupt(corruption, clean, 42)) == 0.0);
        CHECK(test::max_abs_difference(first, corrupt(corruption, clean, 43)) > 0.0);
        CHECK(test::max_abs_difference(first, clean) > 0.0);
    }
}

TEST_CASE("corruption: 1 and 2 threads give bit-identical output", "[data][corruption][threads]") {
    // 128 x 784 values: above latent::min_parallel_work, so two threads really share the work.
    const auto clean = test::random_tensor<float>(128, {1, 28, 28}, 2, 0.0, 1.0);
    for (const auto& [name, corruption] : every_corruption()) {
        INFO(name);
        Tensor<float> serial, parallel;
        {
            ThreadCount one(1);
            serial = corrupt(corruption, clean, 7);
        }
        {
            ThreadCount two(2);
            parallel = corrupt(corruption, clean, 7);
        }
        CHECK(test::max_abs_difference(serial, parallel) == 0.0);
    }
}

TEST_CASE("corruption: a sample's noise does not depend on the rest of the batch", "[data][corruption]") {
    // Sample n draws from Rng(derive_seed(seed, n)): corrupting samples 0..9 or 0..2 alone must
    // give the same first three samples.
    const auto clean = test::random_tensor<float>(10, {1, 16, 16}, 3, 0.0, 1.0);
    Tensor<float> head(3, 1, 16, 16);
    std::copy_n(clean.data(), head.size(), head.data());
    for (const auto& [name, corruption] : every_corruption()) {
        INFO(name);
        const Tensor<float> whole = corrupt(corruption, clean, 5);
        const Tensor<float> part = corrupt(corruption, head, 5);
        CHECK(std::equal(part.data(), part.data() + part.size(), whole.data()));
    }
}

TEST_CASE("corruption: in place gives the same as out of place", "[data][corruption]") {
    const auto clean = test::random_tensor<float>(4, {3, 12, 12}, 4, 0.0, 1.0);
    for (const auto& [name, corruption] : every_corruption()) {
        INFO(name);
        Tensor<float> in_place = clean;
        corruption.apply(ConstTensorView<float>(in_place.data(), in_place.dimensions()), view(in_place), 9);
        CHECK(test::max_abs_difference(in_place, corrupt(corruption, clean, 9)) == 0.0);
    }
}

TEST_CASE("gaussian noise: mean and stddev of the noise match before clipping", "[data][corruption]") {
    // 256 x 32 x 32 = 262144 draws: the standard error of the measured stddev is about
    // 0.2 / sqrt(2 * 262144) = 0.00028, i.e. 0.14 %, far inside the 2 % tolerance.
    const auto clean = constant_tensor(256, {1, 32, 32}, 0.5f);
    const Tensor<float> noisy = corrupt(GaussianNoise(0.1, 0.2, false), clean, 11);
    double sum = 0, sum_sq = 0;
    for (Index i = 0; i < noisy.size(); ++i) {
        const double noise = double(noisy.data()[i]) - 0.5;
        sum += noise;
        sum_sq += noise * noise;
    }
    const double count = static_cast<double>(noisy.size());
    const double mean = sum / count, stddev = std::sqrt(sum_sq / count - mean * mean);
    CHECK(mean == Approx(0.1).margin(0.002));
    CHECK(stddev == Approx(0.2).epsilon(0.02));
}

TEST_CASE("gaussian noise: clipping keeps values in [0, 1]", "[data][corruption]") {
    const auto clean = test::random_tensor<float>(16, {1, 20, 20}, 5, 0.0, 1.0);
    const Tensor<float> clipped = corrupt(GaussianNoise(0.0, 1.0), clean, 3);
    const auto [zeros, ones] = count_zeros_and_ones(clipped);
    for (Index i = 0; i < clipped.size(); ++i) {
        REQUIRE(clipped.data()[i] >= 0.0f);
        REQUIRE(clipped.data()[i] <= 1.0f);
    }
    // With stddev 1 about a third of the values leave [0, 1] on each side and are clipped.
    CHECK(zeros > clipped.size() / 10);
    CHECK(ones > clipped.size() / 10);
    const Tensor<float> unclipped = corrupt(GaussianNoise(0.0, 1.0, false), clean, 3);
    const Eigen::Tensor<float, 0, Eigen::RowMajor> low = unclipped.minimum(), high = unclipped.maximum();
    CHECK(low() < 0.0f);
    CHECK(high() > 1.0f);
}

TEST_CASE("salt and pepper: fractions of 0 and 1 match the probability", "[data][corruption]") {
    // p = 0.2 over 262144 values: 10 % become 0 and 10 % become 1; the standard error of each
    // fraction is sqrt(0.1 * 0.9 / 262144) = 0.0006, the tolerance 0.005.
    const auto clean = constant_tensor(256, {1, 32, 32}, 0.5f);
    const Tensor<float> noisy = corrupt(SaltAndPepper(0.2), clean, 13);
    const auto [zeros, ones] = count_zeros_and_ones(noisy);
    const double count = static_cast<double>(noisy.size());
    CHECK(zeros / count == Approx(0.1).margin(0.005));
    CHECK(ones / count == Approx(0.1).margin(0.005));
    Index unchanged = 0;
    for (Index i = 0; i < noisy.size(); ++i) unchanged += noisy.data()[i] == 0.5f;
    CHECK(unchanged + zeros + ones == noisy.size());  // nothing else is touched
    CHECK(test::max_abs_difference(corrupt(SaltAndPepper(0.0), clean, 1), clean) == 0.0);
}

TEST_CASE("masking noise: fraction of zeroed values matches the probability", "[data][corruption]") {
    const auto clean = constant_tensor(256, {1, 32, 32}, 0.7f);
    const Tensor<float> masked = corrupt(MaskingNoise(0.3), clean, 17);
    Index zeros = 0, unchanged = 0;
    for (Index i = 0; i < masked.size(); ++i) {
        zeros += masked.data()[i] == 0.0f;
        unchanged += masked.data()[i] == 0.7f;
    }
    CHECK(zeros / double(masked.size()) == Approx(0.3).margin(0.005));  // std. error 0.0009
    CHECK(zeros + unchanged == masked.size());
    const auto [all_zero, none] = count_zeros_and_ones(corrupt(MaskingNoise(1.0), clean, 1));
    CHECK(all_zero == clean.size());
    CHECK(none == 0);
}

TEST_CASE("box occlusion: one box zeroes exactly size^2 pixels per channel, same place in each",
          "[data][corruption]") {
    const auto clean = constant_tensor(20, {3, 28, 28}, 1.0f);
    const Tensor<float> occluded = corrupt(BoxOcclusion(5, 1), clean, 19);
    for (Index n = 0; n < occluded.dimension(0); ++n) {
        Index zeros = 0, top = 28, bottom = -1, left = 28, right = -1;
        for (Index h = 0; h < 28; ++h)
            for (Index w = 0; w < 28; ++w) {
                const bool zero = occluded(n, 0, h, w) == 0.0f;
                REQUIRE(occluded(n, 1, h, w) == occluded(n, 0, h, w));  // same position per channel
                REQUIRE(occluded(n, 2, h, w) == occluded(n, 0, h, w));
                if (!zero) continue;
                ++zeros;
                top = std::min(top, h), bottom = std::max(bottom, h);
                left = std::min(left, w), right = std::max(right, w);
            }
        CHECK(zeros == 25);
        CHECK(bottom - top == 4);  // the 25 zeros form one 5x5 square
        CHECK(right - left == 4);
    }
    // Rectangular boxes: 3 rows by 7 columns.
    const Tensor<float> wide = corrupt(BoxOcclusion(Size2(3, 7), 1), clean, 2);
    CHECK(count_zeros_and_ones(wide).first == 20 * 3 * 21);
}

TEST_CASE("box occlusion: positions cover every place where the box fits, and no other",
          "[data][corruption]") {
    // An 8x8 image and a 3x3 box: top-left corners (0..5) x (0..5), 36 places. 2000 boxes land
    // about 55 times on each; missing one by chance has probability 36 * (35/36)^2000 < 1e-20.
    const auto clean = constant_tensor(2000, {1, 8, 8}, 1.0f);
    const Tensor<float> occluded = corrupt(BoxOcclusion(3, 1), clean, 23);
    std::set<std::pair<Index, Index>> corners;
    for (Index n = 0; n < occluded.dimension(0); ++n) {
        Index top = -1, left = -1;
        for (Index h = 0; h < 8 && top < 0; ++h)
            for (Index w = 0; w < 8; ++w)
                if (occluded(n, 0, h, w) == 0.0f) {
                    top = h, left = w;
                    break;
                }
        REQUIRE(top >= 0);
        corners.insert({top, left});
    }
    CHECK(corners.size() == 36);
    CHECK(corners.begin()->first == 0);
    CHECK(corners.rbegin()->first == 5);
}

TEST_CASE("box occlusion: several boxes zero at most count * size^2 pixels", "[data][corruption]") {
    const auto clean = constant_tensor(50, {1, 10, 10}, 1.0f);
    const Tensor<float> occluded = corrupt(BoxOcclusion(4, 3), clean, 29);
    for (Index n = 0; n < occluded.dimension(0); ++n) {
        Index zeros = 0;
        for (Index i = 0; i < 100; ++i) zeros += occluded.data()[n * 100 + i] == 0.0f;
        CHECK(zeros >= 16);
        CHECK(zeros <= 48);
    }
}

TEST_CASE("corruption: parameters are validated", "[data][corruption]") {
    CHECK_THROWS_AS(GaussianNoise(0.0, -0.1), ArgumentError);
    CHECK_THROWS_AS(GaussianNoise(0.0, std::nan("")), ArgumentError);
    CHECK_THROWS_AS(GaussianNoise(std::numeric_limits<double>::infinity(), 0.1), ArgumentError);
    CHECK_THROWS_MATCHES(SaltAndPepper(1.5), ArgumentError,
                         Catch::Matchers::Message("SaltAndPepper: probability must be in [0, 1], got 1.5"));
    CHECK_THROWS_AS(SaltAndPepper(std::nan("")), ArgumentError);
    CHECK_THROWS_AS(MaskingNoise(-0.01), ArgumentError);
    CHECK_THROWS_AS(BoxOcclusion(0, 1), ArgumentError);
    CHECK_THROWS_AS(BoxOcclusion(Size2(3, 0), 1), ArgumentError);
    CHECK_THROWS_AS(BoxOcclusion(3, 0), ArgumentError);

    const auto clean = constant_tensor(2, {1, 6, 6}, 0.5f);
    Tensor<float> out(2, 1, 6, 6);
    CHECK_THROWS_MATCHES(BoxOcclusion(Size2(4, 7)).apply(view(clean), view(out), 1), ShapeError,
                         Catch::Matchers::Message("BoxOcclusion: a 4x7 box does not fit in 6x6 images"));
    Tensor<float> wrong(2, 1, 6, 5);
    CHECK_THROWS_MATCHES(MaskingNoise(0.1).apply(view(clean), view(wrong), 1), ShapeError,
                         Catch::Matchers::Message("MaskingNoise: clean batch (2, 1, 6, 6) and corrupted "
                                                  "batch (2, 1, 6, 5) differ in shape"));
}

TEST_CASE("corruption: type, config and from_config round trip", "[data][corruption][config]") {
    const auto clean = test::random_tensor<float>(3, {2, 9, 9}, 6, 0.0, 1.0);
    auto all = every_corruption();
    all.emplace_back("GaussianNoise", GaussianNoise(-0.05, 0.25, false));
    all.emplace_back("None", Corruption<float>());
    for (const auto& [name, corruption] : all) {
        INFO(name << " " << corruption.config().str());
        CHECK(corruption.type() == name);
        const Corruption<float> rebuilt = Corruption<float>::from_config(corruption.type(), corruption.config());
        CHECK(rebuilt.config().str() == corruption.config().str());
        CHECK(test::max_abs_difference(corrupt(rebuilt, clean, 31), corrupt(corruption, clean, 31)) == 0.0);
    }
    CHECK(Corruption<float>(BoxOcclusion(Size2(2, 5), 3)).config().str() == "height=2 width=5 count=3");
    CHECK(Corruption<float>(GaussianNoise(0.0, 0.5)).get<GaussianNoise>()->stddev() == 0.5);
    CHECK_THROWS_AS(Corruption<float>::from_config("Blur", Config()), FormatError);
}

TEST_CASE("corruption: None copies the clean batch", "[data][corruption]") {
    const auto clean = test::random_tensor<float>(3, {1, 5, 5}, 8, 0.0, 1.0);
    CHECK(test::max_abs_difference(corrupt(Corruption<float>(), clean, 1), clean) == 0.0);
}

// ------------------------------------------------------------------------------------ metrics

TEST_CASE("metrics: MSE and PSNR by hand", "[data][metrics]") {
    // An error of 0.1 everywhere: MSE = 0.1^2 = 0.01, PSNR = 10 log10(1 / 0.01) = 20 dB.
    const auto a = constant_tensor(2, {1, 4, 4}, 0.5f);
    const auto b = constant_tensor(2, {1, 4, 4}, 0.6f);
    CHECK(mse(a, b) == Approx(0.01).epsilon(1e-6));
    CHECK(psnr(a, b) == Approx(20.0).epsilon(1e-6));
    // data_range 2: PSNR = 10 log10(4 / 0.01) = 20 + 10 log10(4) = 26.0206 dB.
    CHECK(psnr(a, b, 2.0) == Approx(26.020599913).epsilon(1e-6));

    // Per sample: errors 0.1 and 0.2 -> MSE 0.01 and 0.04 -> PSNR 20 dB and
    // 10 log10(25) = 13.9794 dB. Batch MSE (0.01 + 0.04) / 2 = 0.025 -> 10 log10(40) = 16.0206 dB.
    Tensor<double> x(2, 1, 3, 3), y(2, 1, 3, 3);
    x.setZero();
    for (Index i = 0; i < 9; ++i) y.data()[i] = 0.1, y.data()[9 + i] = -0.2;
    const auto errors = mse_per_sample(x, y);
    REQUIRE(errors.size() == 2);
    CHECK(errors[0] == Approx(0.01));
    CHECK(errors[1] == Approx(0.04));
    CHECK(mse(x, y) == Approx(0.025));
    const auto ratios = psnr_per_sample(x, y);
    CHECK(ratios[0] == Approx(20.0));
    CHECK(ratios[1] == Approx(13.979400087));
    CHECK(psnr(x, y) == Approx(16.020599913));

    // Mixed errors in one sample: 0.1 on half the values, 0.3 on the other half ->
    // MSE (0.01 + 0.09) / 2 = 0.05.
    Tensor<double> zeros(1, 1, 1, 4), mixed(1, 1, 1, 4);
    zeros.setZero();
    mixed.setValues({{{{0.1, 0.3, -0.1, 0.3}}}});
    CHECK(mse(zeros, mixed) == Approx(0.05));
}

TEST_CASE("metrics: identical batches give MSE 0, PSNR +inf and SSIM 1", "[data][metrics]") {
    const auto x = test::random_tensor<float>(3, {2, 13, 17}, 9, 0.0, 1.0);
    CHECK(mse(x, x) == 0.0);
    CHECK(std::isinf(psnr(x, x)));
    CHECK(psnr(x, x) > 0);
    for (double value : psnr_per_sample(x, x)) CHECK(std::isinf(value));
    CHECK(ssim(x, x) == Approx(1.0).epsilon(1e-12));
    for (double value : ssim_per_sample(x, x)) CHECK(value == Approx(1.0).epsilon(1e-12));
}

TEST_CASE("metrics: SSIM of two constant images by hand", "[data][metrics][ssim]") {
    // Constant images a = 0.5, b = 0.6: every window has mu_a = 0.5, mu_b = 0.6 and zero
    // variances and covariance, so the contrast-structure factor is (2*0 + C2) / (0 + 0 + C2) = 1
    // and SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 R)^2:
    //   R = 1: (0.6 + 0.0001) / (0.25 + 0.36 + 0.0001) = 0.6001 / 0.6101
    //   R = 2: (0.6 + 0.0004) / (0.61 + 0.0004)        = 0.6004 / 0.6104
    const auto a = constant_tensor(2, {3, 12, 15}, 0.5f);
    const auto b = constant_tensor(2, {3, 12, 15}, 0.6f);
    CHECK(ssim(a, b) == Approx(0.6001 / 0.6101).epsilon(1e-6));
    CHECK(ssim(a, b, 2.0) == Approx(0.6004 / 0.6104).epsilon(1e-6));
    // Black against white: (0 + C1) / (0 + 1 + C1) = 0.0001 / 1.0001.
    CHECK(ssim(constant_tensor(1, {1, 11, 11}, 0.0f), constant_tensor(1, {1, 11, 11}, 1.0f)) ==
          Approx(0.0001 / 1.0001).epsilon(1e-6));
}

TEST_CASE("metrics: SSIM matches scikit-image's structural_similarity", "[data][metrics][ssim]") {
    // Reference values from scikit-image 0.19.3:
    //   structural_similarity(x, y, data_range=1, gaussian_weights=True, sigma=1.5,
    //                         use_sample_covariance=False)
    // for x[i, j] = (i*j mod 7) / 6 and y[i, j] = ((i*j mod 7) + (i + 2j mod 3)) / 8, 13x16.
    Tensor<double> x(1, 1, 13, 16), y(1, 1, 13, 16);
    for (Index i = 0; i < 13; ++i)
        for (Index j = 0; j < 16; ++j) {
            x(0, 0, i, j) = double((i * j) % 7) / 6;
            y(0, 0, i, j) = double((i * j) % 7 + (i + 2 * j) % 3) / 8;
        }
    CHECK(ssim(x, y) == Approx(0.898395880225858).margin(1e-12));

    // Two channels (channel_axis=0), 12x14: channel 0 as above, channel 1 x = ((i + j) mod 4) / 3
    // and y = 1 - x. skimage: -0.045389679026931 (data_range 1), -0.035217276266036 (data_range 2).
    Tensor<double> a(1, 2, 12, 14), b(1, 2, 12, 14);
    for (Index i = 0; i < 12; ++i)
        for (Index j = 0; j < 14; ++j) {
            a(0, 0, i, j) = double((i * j) % 7) / 6;
            b(0, 0, i, j) = double((i * j) % 7 + (i + 2 * j) % 3) / 8;
            a(0, 1, i, j) = double((i + j) % 4) / 3;
            b(0, 1, i, j) = 1 - a(0, 1, i, j);
        }
    CHECK(ssim(a, b) == Approx(-0.045389679026931).margin(1e-12));
    CHECK(ssim(a, b, 2.0) == Approx(-0.035217276266036).margin(1e-12));
}

TEST_CASE("metrics: SSIM decreases as noise grows", "[data][metrics][ssim]") {
    // A smooth image (a sum of two sinusoids in [0.1, 0.9]) so that the noise dominates the
    // local variance more and more.
    Tensor<float> clean(4, 1, 28, 28);
    for (Index n = 0; n < 4; ++n)
        for (Index h = 0; h < 28; ++h)
            for (Index w = 0; w < 28; ++w)
                clean(n, 0, h, w) = static_cast<float>(0.5 + 0.2 * std::sin(0.3 * h + n) +
                                                       0.2 * std::cos(0.2 * w));
    double previous = ssim(clean, clean);
    for (double stddev : {0.02, 0.05, 0.1, 0.2, 0.4}) {
        const double value = ssim(clean, corrupt(GaussianNoise(0.0, stddev), clean, 37));
        INFO("stddev " << stddev << ": SSIM " << value);
        CHECK(value < previous);
        previous = value;
    }
    CHECK(previous < 0.5);
}

TEST_CASE("metrics: 1 and 2 threads give identical values", "[data][metrics][threads]") {
    const auto a = test::random_tensor<float>(33, {4, 32, 32}, 10, 0.0, 1.0);  // above min_parallel_work
    const auto b = test::random_tensor<float>(33, {4, 32, 32}, 11, 0.0, 1.0);
    std::vector<double> serial, parallel;
    double serial_mse = 0, parallel_mse = 0;
    {
        ThreadCount one(1);
        serial = ssim_per_sample(a, b);
        serial_mse = mse(a, b);
    }
    {
        ThreadCount two(2);
        parallel = ssim_per_sample(a, b);
        parallel_mse = mse(a, b);
    }
    CHECK(serial == parallel);
    CHECK(serial_mse == parallel_mse);
}

TEST_CASE("metrics: shape mismatch, small images and bad ranges are rejected", "[data][metrics]") {
    const auto a = constant_tensor(2, {1, 12, 12}, 0.5f);
    const auto b = constant_tensor(2, {1, 12, 11}, 0.5f);
    CHECK_THROWS_MATCHES(mse(a, b), ShapeError,
                         Catch::Matchers::Message("mse: the two batches differ in shape: "
                                                  "(2, 1, 12, 12) and (2, 1, 12, 11)"));
    CHECK_THROWS_AS(psnr(a, b), ShapeError);
    CHECK_THROWS_AS(ssim(a, b), ShapeError);
    CHECK_THROWS_AS(mse_per_sample(a, constant_tensor(3, {1, 12, 12}, 0.5f)), ShapeError);
    const auto small = constant_tensor(1, {1, 10, 30}, 0.5f);
    CHECK_THROWS_MATCHES(ssim(small, small), ArgumentError,
                         Catch::Matchers::Message("ssim: images must be at least 11x11 (the size "
                                                  "of the Gaussian window), got 10x30"));
    CHECK_THROWS_AS(psnr(a, a, 0.0), ArgumentError);
    CHECK_THROWS_AS(ssim(a, a, -1.0), ArgumentError);
    CHECK_THROWS_AS(mse(Tensor<float>(0, 1, 4, 4), Tensor<float>(0, 1, 4, 4)), ArgumentError);
}
