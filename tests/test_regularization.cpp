// Dropout and AdditiveNoise: gradient checks in double with the noise fixed by the pass, and the
// rules of passes (noise per sample, whatever the slicing or the thread count).
#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include "helpers.hpp"

#include <cmath>
#include <vector>

using namespace latent;

namespace {

// A training pass over batch 3 of epoch 1 of a run with seed 11, as layer 2 of a model sees it.
Pass training_pass() { return Pass::training_batch(11, 1, 3, 0).for_layer(2); }

GradientCheckOptions with_pass(const Pass& pass, bool term_only = false) {
    GradientCheckOptions options;
    options.pass = pass;
    options.term_only = term_only;
    return options;
}

// check_gradients with `options`, printing "GRADCHECK <label>: <max relative error>"; fails the
// test case unless every gradient is within tolerance.
GradientCheckResult expect_gradients(Layer<double>& layer, const Tensor<double>& input, const std::string& label,
                                     const GradientCheckOptions& options) {
    const GradientCheckResult result = check_gradients(layer, input, options);
    std::cout << "GRADCHECK " << label << ": max relative error " << result.max_relative_error << "\n";
    INFO(label << "\n" << result.report());
    CHECK(result.passed());
    return result;
}

// The largest gradient any entry of a check saw: a check of a term alone must see one.
double largest_gradient(const GradientCheckResult& result) {
    double largest = 0;
    for (const auto& entry : result.entries) largest = std::max(largest, entry.max_gradient);
    return largest;
}

// Forward and backward of a built layer on whole tensors with one pass.
struct Run {
    Tensor<double> y, dx;
};
Run run(Layer<double>& layer, const Tensor<double>& x, const Tensor<double>& dy, const Pass& pass) {
    Run result;
    layer.forward(x, result.y, pass);
    layer.backward(x, result.y, dy, result.dx, pass);
    return result;
}

Layer<double> built(Layer<double> layer, const Shape& input, std::uint64_t seed = 5) {
    Rng rng(seed);
    layer.build(input, rng);
    return layer;
}

// The layer's output for `x` in a training pass computed with `threads` threads (then restored).
Tensor<double> forward_with_threads(Layer<double>& layer, const Tensor<double>& x, int threads) {
    const int previous = num_threads();
    set_num_threads(threads);
    Tensor<double> y;
    layer.forward(x, y, training_pass());
    set_num_threads(previous);
    return y;
}

}  // namespace

// ---------------------------------------------------------------- Dropout and AdditiveNoise

TEST_CASE("dropout: gradient check in training with the pass's mask fixed (input)", "[dropout][gradcheck]") {
    Layer<double> layer = Dropout<double>(0.4);
    const auto result = expect_gradients(layer, test::random_tensor<double>(3, {2, 3, 5}, 1), "Dropout(0.4) training",
                                         with_pass(training_pass()));
    CHECK(result.entries.size() == 1);
    CHECK(largest_gradient(result) > 0.5);
}

TEST_CASE("additive noise: gradient check in training with the pass's noise fixed (input)", "[dropout][gradcheck]") {
    Layer<double> layer = AdditiveNoise<double>(0.3);
    const auto result = expect_gradients(layer, test::random_tensor<double>(4, {3, 1, 5}, 2),
                                         "AdditiveNoise(0.3) training", with_pass(training_pass()));
    CHECK(result.entries.size() == 1);
}

TEST_CASE("dropout and additive noise: identity in evaluation and inference, forward and backward", "[dropout]") {
    const Tensor<double> x = test::random_tensor<double>(5, {2, 3, 3}, 3);
    const Tensor<double> dy = test::random_tensor<double>(5, {2, 3, 3}, 4);
    for (Layer<double> layer : {Layer<double>(Dropout<double>(0.5)), Layer<double>(AdditiveNoise<double>(0.5))})
        for (const Pass& pass : {Pass::evaluation(), Pass{}}) {
            layer = built(layer, {2, 3, 3});
            const Run result = run(layer, x, dy, pass);
            INFO(layer.type() << (pass.mode == Mode::Evaluation ? " evaluation" : " inference"));
            CHECK(test::max_abs_difference(result.y, x) == 0);
            CHECK(test::max_abs_difference(result.dx, dy) == 0);
        }
}

TEST_CASE("dropout: about 1 - p of the values are kept, each scaled by 1 / (1 - p), and backward uses the same mask",
          "[dropout]") {
    const double p = 0.3;
    Layer<double> layer = built(Dropout<double>(p), {10, 10, 10});
    const Tensor<double> x = test::random_tensor_away_from_zero<double>(40, {10, 10, 10}, 5);
    const Tensor<double> dy = test::random_tensor<double>(40, {10, 10, 10}, 6);
    const Run result = run(layer, x, dy, training_pass());
    Index kept = 0, wrong = 0;
    for (Index i = 0; i < x.size(); ++i) {
        const double y = result.y.data()[i], dx = result.dx.data()[i];
        if (y == 0) {
            wrong += dx != 0;
        } else {
            ++kept;
            wrong += y != x.data()[i] * (1 / (1 - p)) || dx != dy.data()[i] * (1 / (1 - p));
        }
    }
    CHECK(wrong == 0);
    // 40000 draws: the kept fraction's standard deviation is sqrt(0.3 * 0.7 / 40000) = 0.0023
    CHECK(std::abs(static_cast<double>(kept) / x.size() - (1 - p)) < 0.01);
}

TEST_CASE("dropout and additive noise: a sample's noise is the same whether its batch is passed whole or in slices",
          "[dropout]") {
    const Tensor<double> x = test::random_tensor_away_from_zero<double>(10, {3, 4, 5}, 7);
    for (Layer<double> layer : {Layer<double>(Dropout<double>(0.5)), Layer<double>(AdditiveNoise<double>(1.0))}) {
        layer = built(layer, {3, 4, 5});
        Pass whole = training_pass();
        whole.batch_size = 10;
        Tensor<double> y_whole = make_tensor<double>(10, {3, 4, 5}), y_slices = y_whole;
        layer.forward(view(x), view(y_whole), whole);
        for (const auto& [first, count] : {std::pair<Index, Index>{0, 4}, {4, 1}, {5, 5}}) {
            Pass slice = whole;
            slice.first_sample = first;
            layer.forward(batch_slice<double>(view(x), first, count),
                          view<double>(y_slices.data() + first * 60, count, {3, 4, 5}), slice);
        }
        INFO(layer.type());
        CHECK(test::max_abs_difference(y_whole, y_slices) == 0);
        CHECK(test::max_abs_difference(y_whole, x) > 0);  // (and there is noise)
    }
}

TEST_CASE("dropout and additive noise: the noise is bit-identical with 1 and 2 threads", "[dropout][threads]") {
    const Tensor<double> x = test::random_tensor_away_from_zero<double>(64, {8, 16, 16}, 8);
    for (Layer<double> layer : {Layer<double>(Dropout<double>(0.25)), Layer<double>(AdditiveNoise<double>(0.1))}) {
        layer = built(layer, {8, 16, 16});
        INFO(layer.type());
        CHECK(test::max_abs_difference(forward_with_threads(layer, x, 1), forward_with_threads(layer, x, 2)) == 0);
    }
}

TEST_CASE("additive noise: the noise has mean 0 and the configured standard deviation", "[dropout]") {
    Layer<double> layer = built(AdditiveNoise<double>(0.25), {1, 100, 100});
    const Tensor<double> x = test::random_tensor<double>(4, {1, 100, 100}, 9);
    Tensor<double> y;
    layer.forward(x, y, training_pass());
    double sum = 0, squares = 0;
    for (Index i = 0; i < x.size(); ++i) {
        const double noise = y.data()[i] - x.data()[i];
        sum += noise;
        squares += noise * noise;
    }
    const double count = static_cast<double>(x.size());
    CHECK(std::abs(sum / count) < 0.01);  // 40000 draws: the mean's standard deviation is 0.00125
    CHECK(std::abs(std::sqrt(squares / count) - 0.25) < 0.005);
}

TEST_CASE("dropout and additive noise: bad arguments name the layer and the argument", "[dropout][arguments]") {
    test::expect_error<ArgumentError>([] { Dropout<float>(1.0); }, "Dropout: p (the probability of dropping a value) must be in [0, 1)");
    test::expect_error<ArgumentError>([] { Dropout<float>(-0.1); }, "Dropout: p");
    test::expect_error<ArgumentError>([] { Dropout<float>{NAN}; }, "Dropout: p");
    test::expect_error<ArgumentError>([] { AdditiveNoise<float>(-1.0); }, "AdditiveNoise: stddev must be finite and >= 0");
    test::expect_error<ArgumentError>([] { AdditiveNoise<float>{INFINITY}; }, "AdditiveNoise: stddev");
}
