// Dropout, AdditiveNoise, BatchNorm, BatchNorm2D, ActivityL1, KLSparsity, ContractiveDense:
// gradient checks in double (input, parameters, the term alone), hand-worked values, and the
// rules of passes (noise per sample, terms that add up over slices, batch statistics).
#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include "helpers.hpp"

#include <cmath>
#include <filesystem>
#include <string>
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

// Sets every value of every parameter of `layer` uniformly in [low, high).
void randomize_parameters(Layer<double>& layer, std::uint64_t seed, double low, double high) {
    Rng rng(seed);
    for (auto& parameter : layer.parameters())
        for (Index i = 0; i < parameter.size; ++i) parameter.value[i] = rng.uniform(low, high);
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
    test::expect_error<ArgumentError>([] { Dropout<float>(1.0); },
                                      "Dropout: p (the probability of dropping a value) must be in [0, 1)");
    test::expect_error<ArgumentError>([] { Dropout<float>(-0.1); }, "Dropout: p");
    test::expect_error<ArgumentError>([] { Dropout<float>{NAN}; }, "Dropout: p");
    test::expect_error<ArgumentError>([] { AdditiveNoise<float>(-1.0); },
                                      "AdditiveNoise: stddev must be finite and >= 0");
    test::expect_error<ArgumentError>([] { AdditiveNoise<float>{INFINITY}; }, "AdditiveNoise: stddev");
}

// ---------------------------------------------------------------- BatchNorm and BatchNorm2D

TEST_CASE("batch norm: gradient check in training (batch statistics), input, weight and bias",
          "[batchnorm][gradcheck]") {
    Layer<double> per_feature = built(BatchNorm<double>(), {3, 2, 3});
    randomize_parameters(per_feature, 12, 0.5, 1.5);
    const auto result = expect_gradients(per_feature, test::random_tensor<double>(5, {3, 2, 3}, 13),
                                         "BatchNorm training", with_pass(training_pass()));
    CHECK(result.entries.size() == 3);
    Layer<double> per_channel = built(BatchNorm2D<double>(), {4, 3, 5});
    randomize_parameters(per_channel, 14, 0.5, 1.5);
    CHECK(expect_gradients(per_channel, test::random_tensor<double>(3, {4, 3, 5}, 15), "BatchNorm2D training",
                           with_pass(training_pass()))
              .entries.size() == 3);
}

TEST_CASE("batch norm: gradient check in evaluation (running statistics), input, weight and bias",
          "[batchnorm][gradcheck]") {
    for (Layer<double> layer : {Layer<double>(BatchNorm<double>()), Layer<double>(BatchNorm2D<double>())}) {
        layer = built(layer, {3, 3, 2});
        randomize_parameters(layer, 16, 0.5, 1.5);
        Rng rng(17);
        for (auto& buffer : layer.buffers())
            for (Index i = 0; i < buffer.size; ++i) buffer.value[i] = rng.uniform(0.2, 2.0);
        expect_gradients(layer, test::random_tensor<double>(4, {3, 3, 2}, 18), layer.type() + " evaluation",
                         with_pass(Pass::evaluation()));
    }
}

TEST_CASE("batch norm: running statistics after two training passes follow PyTorch's formula, and evaluation uses "
          "them",
          "[batchnorm]") {
    const double momentum = 0.1, eps = 1e-5;
    for (const bool per_channel : {false, true}) {
        Layer<double> layer = per_channel ? Layer<double>(BatchNorm2D<double>()) : Layer<double>(BatchNorm<double>());
        layer = built(layer, {2, 1, 3});
        randomize_parameters(layer, 19, 0.5, 1.5);
        // features: per channel, channel c holds the 3 values of a sample's row (m = N * 3);
        // per feature, each of the 6 values (m = N)
        const Index features = per_channel ? 2 : 6, plane = per_channel ? 3 : 1;
        std::vector<double> running_mean(features, 0.0), running_var(features, 1.0);
        for (const std::uint64_t seed : {20, 21}) {
            const Tensor<double> x = test::random_tensor<double>(4, {2, 1, 3}, seed, -2.0, 3.0);
            Tensor<double> y;
            layer.forward(x, y, training_pass());
            for (Index k = 0; k < features; ++k) {
                std::vector<double> values;
                for (Index n = 0; n < 4; ++n)
                    for (Index s = 0; s < plane; ++s) values.push_back(x.data()[(n * features + k) * plane + s]);
                const double m = static_cast<double>(values.size());
                double mean = 0, squares = 0;
                for (double v : values) mean += v / m;
                for (double v : values) squares += (v - mean) * (v - mean);
                // PyTorch: running = (1 - momentum) * running + momentum * statistic, unbiased variance
                running_mean[k] = (1 - momentum) * running_mean[k] + momentum * mean;
                running_var[k] = (1 - momentum) * running_var[k] + momentum * squares / (m - 1);
            }
        }
        const auto buffers = layer.buffers();
        INFO(layer.type());
        for (Index k = 0; k < features; ++k) {
            CHECK(std::abs(buffers[0].value[k] - running_mean[k]) < 1e-14);
            CHECK(std::abs(buffers[1].value[k] - running_var[k]) < 1e-14);
        }
        const Tensor<double> x = test::random_tensor<double>(3, {2, 1, 3}, 22);
        const double trained_mean = buffers[0].value[0], trained_var = buffers[1].value[0];
        Tensor<double> y;
        layer.forward(x, y, Pass::evaluation());
        const auto parameters = layer.parameters();
        double worst = 0;
        for (Index n = 0; n < 3; ++n)
            for (Index k = 0; k < features; ++k)
                for (Index s = 0; s < plane; ++s) {
                    const Index i = (n * features + k) * plane + s;
                    const double expected = parameters[0].value[k] * (x.data()[i] - running_mean[k]) /
                                                std::sqrt(running_var[k] + eps) +
                                            parameters[1].value[k];
                    worst = std::max(worst, std::abs(y.data()[i] - expected));
                }
        CHECK(worst < 1e-13);
        // and evaluation leaves the running statistics alone
        CHECK(buffers[0].value[0] == trained_mean);
        CHECK(buffers[1].value[0] == trained_var);
    }
}

TEST_CASE("batch norm: training normalizes each feature to mean 0 and biased variance 1 (before weight and bias)",
          "[batchnorm]") {
    Layer<double> layer = built(BatchNorm2D<double>(), {3, 4, 5});
    const Tensor<double> x = test::random_tensor<double>(6, {3, 4, 5}, 23, -1.0, 5.0);
    Tensor<double> y;
    layer.forward(x, y, training_pass());
    for (Index c = 0; c < 3; ++c) {
        double sum = 0, squares = 0;
        for (Index n = 0; n < 6; ++n)
            for (Index s = 0; s < 20; ++s) {
                const double v = y.data()[(n * 3 + c) * 20 + s];
                sum += v;
                squares += v * v;
            }
        CHECK(std::abs(sum / 120) < 1e-12);
        // var / (var + eps) with var the channel's biased variance
        CHECK(std::abs(squares / 120 - 1) < 1e-4);
    }
}

TEST_CASE("batch norm: parameters weight and bias, buffers running_mean and running_var, per feature or per channel",
          "[batchnorm]") {
    Layer<double> per_feature = built(BatchNorm<double>(), {3, 4, 5});
    Layer<double> per_channel = built(BatchNorm2D<double>(), {3, 4, 5});
    CHECK(per_feature.type() == "BatchNorm");
    CHECK(per_channel.type() == "BatchNorm2D");
    for (auto [layer, size] : {std::pair<Layer<double>*, Index>{&per_feature, 60}, {&per_channel, 3}}) {
        const auto parameters = layer->parameters();
        const auto buffers = layer->buffers();
        REQUIRE(parameters.size() == 2);
        REQUIRE(buffers.size() == 2);
        CHECK(parameters[0].name == "weight");
        CHECK(parameters[1].name == "bias");
        CHECK(buffers[0].name == "running_mean");
        CHECK(buffers[1].name == "running_var");
        for (Index i = 0; i < 2; ++i) {
            CHECK(parameters[i].size == size);
            CHECK(buffers[i].size == size);
        }
        CHECK(parameters[0].value[size - 1] == 1.0);
        CHECK(parameters[1].value[size - 1] == 0.0);
        CHECK(buffers[0].value[size - 1] == 0.0);
        CHECK(buffers[1].value[size - 1] == 1.0);
        CHECK(layer->mixes_samples());
        CHECK_FALSE(layer->in_place());
    }
}

TEST_CASE("batch norm: training on a slice of a batch or on one value per feature is refused; bad arguments are named",
          "[batchnorm][arguments]") {
    Layer<double> layer = built(BatchNorm<double>(), {2, 1, 1});
    Tensor<double> y;
    Pass slice = training_pass();
    slice.batch_size = 8;
    const auto forward_slice = [&] { layer.forward(test::random_tensor<double>(4, {2, 1, 1}, 1), y, slice); };
    test::expect_error<ArgumentError>(
        forward_slice, "BatchNorm: batch statistics need the whole batch in one pass, got a slice of 4 of 8");
    test::expect_error<ArgumentError>(
        [&] { layer.forward(test::random_tensor<double>(1, {2, 1, 1}, 1), y, training_pass()); },
        "BatchNorm: training needs more than one value per feature, got a batch of 1");
    layer.forward(test::random_tensor<double>(1, {2, 1, 1}, 1), y, Pass::evaluation());  // evaluation: fine
    test::expect_error<ArgumentError>([] { BatchNorm2D<float>(1.5); }, "BatchNorm2D: momentum must be in [0, 1]");
    test::expect_error<ArgumentError>([] { BatchNorm<float>(0.1, 0.0); }, "BatchNorm: eps must be finite and > 0");
}

// ---------------------------------------------------------------- ActivityL1 and KLSparsity

TEST_CASE("activity L1: gradient check with the term (input) and of the term alone", "[penalties][gradcheck]") {
    Layer<double> layer = ActivityL1<double>(0.3);
    const Tensor<double> x = test::random_tensor_away_from_zero<double>(3, {5, 1, 3}, 24);
    Pass pass = training_pass();
    expect_gradients(layer, x, "ActivityL1 with term", with_pass(pass));
    const auto alone = expect_gradients(layer, x, "ActivityL1 term alone", with_pass(pass, true));
    CHECK(largest_gradient(alone) == Approx(0.3 / 3));
}

TEST_CASE("activity L1: the term is lambda * sum |h| / N, and scale_term multiplies the configured lambda",
          "[penalties]") {
    Layer<double> layer = built(ActivityL1<double>(0.5), {2, 1, 1});
    Tensor<double> x(3, 2, 1, 1), y;
    x.setValues({{{{0.5}}, {{-1.0}}}, {{{2.0}}, {{0.0}}}, {{{-0.25}}, {{1.5}}}});
    layer.forward(x, y, training_pass());
    CHECK(layer.term() == "sparsity");
    CHECK(layer.term_value() == Approx(0.5 * (0.5 + 1.0 + 2.0 + 0.0 + 0.25 + 1.5) / 3).epsilon(1e-15));
    layer.scale_term(0.1);
    layer.forward(x, y, training_pass());
    CHECK(layer.term_value() == Approx(0.05 * 5.25 / 3).epsilon(1e-15));
    CHECK(layer.config().get_double("lambda") == 0.5);  // the configured weight is what is saved
    layer.forward(x, y, Pass{});                       // inference: no term, the last value stays
    CHECK(layer.term_value() == Approx(0.05 * 5.25 / 3).epsilon(1e-15));
}

TEST_CASE("KL sparsity: gradient check with the term (input) and of the term alone", "[penalties][gradcheck]") {
    Layer<double> layer = KLSparsity<double>(0.1, 2.0);
    const Tensor<double> h = test::random_tensor<double>(4, {7, 1, 1}, 25, 0.05, 0.95);
    expect_gradients(layer, h, "KLSparsity with term", with_pass(training_pass()));
    const auto alone = expect_gradients(layer, h, "KLSparsity term alone", with_pass(training_pass(), true));
    CHECK(largest_gradient(alone) > 0.1);
    // 130 units of a (C, H, W) code: the mean activations are summed in three blocks of units
    Layer<double> wide = KLSparsity<double>(0.3, 0.5);
    expect_gradients(wide, test::random_tensor<double>(3, {5, 2, 13}, 46, 0.05, 0.95), "KLSparsity 130 units",
                     with_pass(training_pass()));
}

TEST_CASE("KL sparsity: the term on a tiny case written out", "[penalties]") {
    Layer<double> layer = built(KLSparsity<double>(0.1, 3.0), {2, 1, 1});
    Tensor<double> h(2, 2, 1, 1), y;
    h.setValues({{{{0.1}}, {{0.2}}}, {{{0.3}}, {{0.6}}}});
    layer.forward(h, y, Pass::evaluation());
    // rho_hat = (0.2, 0.4): the means of the columns
    // KL(0.1 || 0.2) = 0.1 log(0.1 / 0.2) + 0.9 log(0.9 / 0.8) = -0.0693147 + 0.1060047 = 0.0366900
    // KL(0.1 || 0.4) = 0.1 log(0.1 / 0.4) + 0.9 log(0.9 / 0.6) = -0.1386294 + 0.3649186 = 0.2262892
    // term = 3 * (0.0366900 + 0.2262892) = 0.7889375
    const double kl_1 = 0.1 * std::log(0.5) + 0.9 * std::log(0.9 / 0.8);
    const double kl_2 = 0.1 * std::log(0.25) + 0.9 * std::log(1.5);
    CHECK(layer.term_value() == Approx(3 * (kl_1 + kl_2)).epsilon(1e-14));
    CHECK(layer.term_value() == Approx(0.7889375).epsilon(1e-6));
    const auto& means = layer.get<KLSparsity<double>>()->mean_activation();
    CHECK(means[0] == Approx(0.2).epsilon(1e-15));
    CHECK(means[1] == Approx(0.4).epsilon(1e-15));
    // the gradient: beta / N * (-rho / rho_hat + (1 - rho) / (1 - rho_hat)), for every sample
    Tensor<double> dy = make_tensor<double>(2, {2, 1, 1}), dx;
    layer.backward(h, y, dy, dx, Pass::evaluation());
    CHECK(dx(1, 0, 0, 0) == Approx(1.5 * (-0.1 / 0.2 + 0.9 / 0.8)).epsilon(1e-14));
    CHECK(dx(0, 1, 0, 0) == Approx(1.5 * (-0.1 / 0.4 + 0.9 / 0.6)).epsilon(1e-14));
}

TEST_CASE("KL sparsity: a unit off for the whole batch gives a finite term (rho_hat clamped to 1e-6)", "[penalties]") {
    Layer<double> layer = built(KLSparsity<double>(0.05, 1.0), {1, 1, 1});
    Tensor<double> h = make_tensor<double>(3, {1, 1, 1}), y, dx;
    layer.forward(h, y, training_pass());
    CHECK(layer.term_value() == Approx(0.05 * std::log(0.05 / 1e-6) + 0.95 * std::log(0.95 / (1 - 1e-6))));
    layer.backward(h, y, make_tensor<double>(3, {1, 1, 1}), dx, training_pass());
    CHECK(std::isfinite(dx(0, 0, 0, 0)));
    CHECK(dx(0, 0, 0, 0) < 0);  // a descent step raises the unit
}

TEST_CASE("KL sparsity: a slice of a batch is refused (the means are the whole batch's); bad arguments are named",
          "[penalties][arguments]") {
    Layer<double> layer = built(KLSparsity<double>(0.05, 1.0), {3, 1, 1});
    CHECK(layer.mixes_samples());
    Pass slice = training_pass();
    slice.batch_size = 6;
    Tensor<double> y;
    test::expect_error<ArgumentError>(
        [&] { layer.forward(test::random_tensor<double>(3, {3, 1, 1}, 1, 0.1, 0.9), y, slice); },
        "KLSparsity: the mean activations need the whole batch in one pass, got a slice of 3 of 6 samples");
    test::expect_error<ArgumentError>([] { KLSparsity<float>(0.0, 1.0); },
                                      "KLSparsity: rho (the target mean activation) must be in (0, 1)");
    test::expect_error<ArgumentError>([] { KLSparsity<float>(0.05, -1.0); },
                                      "KLSparsity: beta must be finite and >= 0");
    test::expect_error<ArgumentError>([] { ActivityL1<float>{NAN}; }, "ActivityL1: lambda must be finite and >= 0");
    test::expect_error<ArgumentError>([] { ActivityL1<float>(0.1, ""); },
                                      "ActivityL1: the term's name must not be empty");
}

// ---------------------------------------------------------------- ContractiveDense

TEST_CASE("contractive dense: gradient check with the term (input, weight, bias) and of the term alone",
          "[contractive][gradcheck]") {
    Layer<double> layer = ContractiveDense<double>(5, 0.7);
    const Tensor<double> x = test::random_tensor<double>(3, {2, 3, 1}, 26);
    const auto with_term = expect_gradients(layer, x, "ContractiveDense(5) with term", with_pass(training_pass()));
    CHECK(with_term.entries.size() == 3);
    const auto alone = expect_gradients(layer, x, "ContractiveDense(5) term alone", with_pass(training_pass(), true));
    for (const auto& entry : alone.entries) {
        INFO(entry.name);
        CHECK(entry.max_gradient > 1e-3);
    }
    expect_gradients(layer, x, "ContractiveDense(5) inference (no term)", with_pass(Pass{}));
    // 70 units: the products and the per-unit sums run in two blocks of units
    Layer<double> wide = ContractiveDense<double>(70, 0.2);
    expect_gradients(wide, test::random_tensor<double>(3, {3, 1, 1}, 47), "ContractiveDense(70) with term",
                     with_pass(training_pass()));
}

TEST_CASE("contractive dense: the term is lambda * ||dh/dx||_F^2 / N with the Jacobian from finite differences of h",
          "[contractive]") {
    const double lambda = 0.6;
    const Index batch = 3, inputs = 4, units = 6;
    Layer<double> layer = built(ContractiveDense<double>(units, lambda), {inputs, 1, 1});
    randomize_parameters(layer, 27, -1.0, 1.0);
    Tensor<double> x = test::random_tensor<double>(batch, {inputs, 1, 1}, 28), y, h_plus, h_minus;
    layer.forward(x, y, training_pass());
    const double term = layer.term_value();
    double frobenius = 0;  // sum over samples of ||dh_n / dx_n||_F^2
    const double step = 1e-6;
    for (Index n = 0; n < batch; ++n)
        for (Index i = 0; i < inputs; ++i) {
            const double saved = x(n, i, 0, 0);
            x(n, i, 0, 0) = saved + step;
            layer.forward(x, h_plus, Pass{});
            x(n, i, 0, 0) = saved - step;
            layer.forward(x, h_minus, Pass{});
            x(n, i, 0, 0) = saved;
            for (Index j = 0; j < units; ++j) {
                const double derivative = (h_plus(n, j, 0, 0) - h_minus(n, j, 0, 0)) / (2 * step);
                frobenius += derivative * derivative;
            }
        }
    CHECK(term == Approx(lambda * frobenius / batch).epsilon(1e-8));
    CHECK(term > 1e-3);
}

TEST_CASE("contractive dense: bad arguments are named; weight() is (units, inputs)", "[contractive][arguments]") {
    test::expect_error<ArgumentError>([] { ContractiveDense<float>(0, 0.1); }, "ContractiveDense: units must be >= 1");
    test::expect_error<ArgumentError>([] { ContractiveDense<float>(4, -0.1); },
                                      "ContractiveDense: lambda must be finite and >= 0");
    Layer<double> layer = built(ContractiveDense<double>(4, 0.1), {3, 2, 1});
    CHECK(layer.get<ContractiveDense<double>>()->weight().rows() == 4);
    CHECK(layer.get<ContractiveDense<double>>()->weight().cols() == 6);
}

// ---------------------------------------------------------------- terms under slicing

namespace {

std::vector<double> copy_grad(const Parameter<double>& parameter) {
    return std::vector<double>(parameter.grad, parameter.grad + parameter.size);
}

struct Gradients {
    double term = 0;
    Tensor<double> dx;
    std::vector<std::vector<double>> parameters;
};

// The term, input gradient and parameter gradients of `x` passed in slices of `slice_size`
// (the whole batch when 0), each slice's pass saying where it is.
Gradients gradients_in_slices(Layer<double>& layer, const Tensor<double>& x, const Tensor<double>& dy,
                              Index slice_size) {
    const Index batch = x.dimension(0);
    const Shape in = sample_shape(x), out = sample_shape(dy);
    Gradients result;
    result.dx = make_tensor<double>(batch, in);
    layer.zero_grad();
    const Chunks slices{batch, slice_size > 0 ? slice_size : batch};
    for (Index s = 0; s < slices.count(); ++s) {
        Pass pass = training_pass();
        pass.first_sample = slices.begin(s);
        pass.batch_size = slice_size > 0 ? batch : 0;
        const Index first = slices.begin(s), count = slices.size(s);
        Tensor<double> y = make_tensor<double>(count, out);
        layer.forward(batch_slice<double>(view(x), first, count), view(y), pass);
        layer.backward(batch_slice<double>(view(x), first, count), const_view(y),
                       batch_slice<double>(view(dy), first, count),
                       view<double>(result.dx.data() + first * in.size(), count, in), pass);
        result.term += layer.term_value();
    }
    for (const auto& parameter : layer.parameters()) result.parameters.push_back(copy_grad(parameter));
    return result;
}

void expect_slices_add_up(Layer<double> layer, const Shape& input, const Shape& output) {
    layer = built(layer, input);
    const Tensor<double> x = test::random_tensor_away_from_zero<double>(7, input, 29);
    const Tensor<double> dy = test::random_tensor<double>(7, output, 30);
    const Gradients whole = gradients_in_slices(layer, x, dy, 0);
    for (const Index slice_size : {Index(1), Index(3)}) {
        const Gradients sliced = gradients_in_slices(layer, x, dy, slice_size);
        INFO(layer.type() << " in slices of " << slice_size);
        CHECK(whole.term > 0);
        CHECK(std::abs(sliced.term - whole.term) < 1e-12);
        CHECK(test::max_abs_difference(sliced.dx, whole.dx) < 1e-12);
        REQUIRE(sliced.parameters.size() == whole.parameters.size());
        for (std::size_t p = 0; p < whole.parameters.size(); ++p)
            for (std::size_t i = 0; i < whole.parameters[p].size(); ++i)
                CHECK(std::abs(sliced.parameters[p][i] - whole.parameters[p][i]) < 1e-12);
    }
}

}  // namespace

TEST_CASE("term slicing: ActivityL1's term and input gradient add up over slices to the whole batch's",
          "[penalties][slicing]") {
    expect_slices_add_up(ActivityL1<double>(0.4), {3, 2, 2}, {3, 2, 2});
}

TEST_CASE("term slicing: ContractiveDense's term and input, weight and bias gradients add up over slices",
          "[contractive][slicing]") {
    expect_slices_add_up(ContractiveDense<double>(5, 0.8), {2, 3, 1}, {5, 1, 1});
}

// ---------------------------------------------------------------- declarations, registry

TEST_CASE("new layers: in-place and output-reading declarations, and terms, are as their backward needs",
          "[regularization]") {
    struct Expected {
        Layer<double> layer;
        bool in_place, reads_output, mixes_samples;
        std::string term;
    };
    const std::vector<Expected> table{
        {Dropout<double>(0.5), true, false, false, ""},
        {AdditiveNoise<double>(0.5), true, false, false, ""},
        {BatchNorm<double>(), false, false, true, ""},
        {BatchNorm2D<double>(), false, false, true, ""},
        {ActivityL1<double>(0.1), true, true, false, "sparsity"},
        {KLSparsity<double>(0.05, 3.0, "kl_code"), true, false, true, "kl_code"},
        {ContractiveDense<double>(3, 0.1), false, true, false, "contractive"},
    };
    for (const auto& expected : table) {
        INFO(expected.layer.type());
        CHECK(expected.layer.in_place() == expected.in_place);
        CHECK(expected.layer.backward_reads_output() == expected.reads_output);
        CHECK(expected.layer.mixes_samples() == expected.mixes_samples);
        CHECK(expected.layer.term() == expected.term);
    }
}

TEST_CASE("new layers: in place in a model (over the previous layer's buffer) they give the same gradients",
          "[regularization]") {
    // Dense does not read its output: Dropout and ActivityL1 write over it; Sigmoid reads its own:
    // KLSparsity gets a buffer of its own
    auto model = [] {
        return Sequential<double>{Dense<double>(6), Dropout<double>(0.3), ActivityL1<double>(0.2), Dense<double>(5),
                                  Sigmoid<double>(), KLSparsity<double>(0.2, 0.5), Dense<double>(3)};
    };
    Sequential<double> shared = model();
    shared.build({4, 1, 1}, 31);
    CHECK(shared.shares_buffer_with_next(0));
    CHECK(shared.shares_buffer_with_next(1));
    CHECK_FALSE(shared.shares_buffer_with_next(4));
    const Tensor<double> x = test::random_tensor<double>(5, {4, 1, 1}, 32);
    const Tensor<double> dy = test::random_tensor<double>(5, {3, 1, 1}, 33);
    Pass pass = Pass::training_batch(7, 0, 0, 5);
    shared.zero_grad();
    shared.forward(view(x), pass);
    pass.input_gradient = true;
    const ConstTensorView<double> dx = shared.backward(view(dy), pass);

    // the same layers one by one, each with its own tensors
    Sequential<double> reference = model();
    reference.build({4, 1, 1}, 31);
    std::vector<Tensor<double>> outputs(8);
    outputs[0] = x;
    for (Index i = 0; i < reference.size(); ++i)
        reference.layer(i).forward(outputs[i], outputs[i + 1], pass.for_layer(static_cast<std::uint64_t>(i)));
    Tensor<double> grad = dy, next;
    reference.zero_grad();
    for (Index i = reference.size() - 1; i >= 0; --i) {
        reference.layer(i).backward(outputs[i], outputs[i + 1], grad, next,
                                    pass.for_layer(static_cast<std::uint64_t>(i)));
        grad = next;
    }
    double worst = 0;
    for (Index i = 0; i < grad.size(); ++i) worst = std::max(worst, std::abs(grad.data()[i] - dx.data()[i]));
    for (std::size_t p = 0; p < shared.parameters().size(); ++p)
        for (Index i = 0; i < shared.parameters()[p].size; ++i)
            worst = std::max(worst, std::abs(shared.parameters()[p].grad[i] - reference.parameters()[p].grad[i]));
    CHECK(worst == 0);
    CHECK(shared.term_names() == std::vector<std::string>{"sparsity"});
}

TEST_CASE("registry: every new layer is built from its type name and config, and keeps its config",
          "[regularization][registry]") {
    const auto registry = Registry<double>::builtin();
    const std::vector<Layer<double>> layers{
        Dropout<double>(0.25),       AdditiveNoise<double>(0.125), BatchNorm<double>(0.2, 1e-3),
        BatchNorm2D<double>(),       ActivityL1<double>(1e-4, "l1"), KLSparsity<double>(0.05, 3.0),
        ContractiveDense<double>(7, 0.01, Init::HeUniform)};
    for (const auto& layer : layers) {
        INFO(layer.type() << " " << layer.config().str());
        const Layer<double> rebuilt = registry.create_layer(layer.type(), layer.config());
        CHECK(rebuilt.type() == layer.type());
        CHECK(rebuilt.config().str() == layer.config().str());
    }
}

TEST_CASE("new layers: in float, a model of all of them runs a training pass with finite values and terms",
          "[regularization]") {
    Sequential<float> model{AdditiveNoise<float>(0.1), Conv2D<float>(4, 3, 1, Padding::Same), BatchNorm2D<float>(),
                            ReLU<float>(), Flatten<float>(), ContractiveDense<float>(8, 0.1),
                            KLSparsity<float>(0.1, 1.0), ActivityL1<float>(0.01), Dropout<float>(0.2), Dense<float>(6),
                            BatchNorm<float>()};
    model.build({2, 5, 5}, 34);
    const Tensor<float> x = test::random_tensor<float>(6, {2, 5, 5}, 35);
    const Tensor<float> dy = test::random_tensor<float>(6, {6, 1, 1}, 36);
    Pass pass = Pass::training_batch(3, 0, 0, 6);
    const ConstTensorView<float> y = model.forward(view(x), pass);
    CHECK(Eigen::Map<const Eigen::ArrayXf>(y.data(), y.size()).allFinite());
    model.backward(view(dy), pass);
    CHECK(model.first_nonfinite_gradient().empty());
    CHECK(model.term_names() == std::vector<std::string>{"contractive", "sparsity"});
    for (double value : model.term_values()) CHECK((std::isfinite(value) && value > 0));
}

namespace {

// A model of every new layer, in double, with `code` units in the code and `outputs` at the end.
Sequential<double> model_of_new_layers(Index code, Index outputs) {
    return Sequential<double>{AdditiveNoise<double>(0.1), Conv2D<double>(4, 3, 1, Padding::Same), BatchNorm2D<double>(),
                              ReLU<double>(), Flatten<double>(), ContractiveDense<double>(code, 0.1),
                              KLSparsity<double>(0.1, 1.0), ActivityL1<double>(0.01), Dropout<double>(0.2),
                              Dense<double>(outputs), BatchNorm<double>()};
}

// The output, terms, parameter gradients and buffers after two training passes with `threads`.
// Every layer has enough work to run in parallel (min_parallel_work values or more).
std::vector<double> training_results(int threads) {
    const int previous = num_threads();
    set_num_threads(threads);
    Sequential<double> model = model_of_new_layers(1100, 1030);
    model.build({2, 16, 16}, 37);
    const Tensor<double> x = test::random_tensor<double>(64, {2, 16, 16}, 38);
    const Tensor<double> dy = test::random_tensor<double>(64, {1030, 1, 1}, 39);
    std::vector<double> results;
    for (Index batch = 0; batch < 2; ++batch) {
        const Pass pass = Pass::training_batch(4, 0, batch, 64);
        model.zero_grad();
        const ConstTensorView<double> y = model.forward(view(x), pass);
        results.insert(results.end(), y.data(), y.data() + y.size());
        model.backward(view(dy), pass);
    }
    set_num_threads(previous);
    results.insert(results.end(), model.term_values().begin(), model.term_values().end());
    for (const auto& parameter : model.parameters())
        results.insert(results.end(), parameter.grad, parameter.grad + parameter.size);
    for (const auto& buffer : model.buffers()) results.insert(results.end(), buffer.value, buffer.value + buffer.size);
    return results;
}

}  // namespace

TEST_CASE("new layers: outputs, terms, gradients and running statistics are bit-identical with 1 and 2 threads",
          "[regularization][threads]") {
    REQUIRE(64 * 4 * 16 * 16 >= min_parallel_work);
    REQUIRE(64 * 1030 >= min_parallel_work);
    const std::vector<double> one = training_results(1), two = training_results(2);
    REQUIRE(one.size() == two.size());
    Index different = 0;
    for (std::size_t i = 0; i < one.size(); ++i) different += one[i] != two[i];
    CHECK(different == 0);
}

TEST_CASE("new layers: a saved model loads with its configs, weights and running statistics", "[regularization][io]") {
    Sequential<double> model = model_of_new_layers(12, 7);
    model.build({2, 9, 9}, 40);
    const Tensor<double> x = test::random_tensor<double>(8, {2, 9, 9}, 41);
    model.forward(view(x), Pass::training_batch(5, 0, 0, 8));  // running statistics move off 0 and 1
    const std::string path =
        (std::filesystem::temp_directory_path() / "latent_regularization_model.latent").string();
    save_model(path, model);
    Sequential<double> loaded = load_sequential<double>(path);
    std::filesystem::remove(path);
    REQUIRE(loaded.size() == model.size());
    for (Index i = 0; i < model.size(); ++i) CHECK(loaded.layer(i).config().str() == model.layer(i).config().str());
    REQUIRE(loaded.buffers().size() == 4);
    for (std::size_t b = 0; b < model.buffers().size(); ++b)
        for (Index i = 0; i < model.buffers()[b].size; ++i)
            CHECK(loaded.buffers()[b].value[i] == model.buffers()[b].value[i]);
    CHECK(model.buffers()[0].value[0] != 0.0);
    const Tensor<double> expected = model.predict(x), actual = loaded.predict(x);
    CHECK(test::max_abs_difference(expected, actual) == 0);
}

TEST_CASE("train_step: a batch passed in slices gives the whole batch's loss, terms and updated weights "
          "(ContractiveDense, ActivityL1, Dropout)",
          "[regularization][slicing]") {
    const Index count = 7;
    const Tensor<double> inputs = test::random_tensor<double>(count, {4, 1, 1}, 42, 0.0, 1.0);
    const Tensor<double> targets = test::random_tensor<double>(count, {5, 1, 1}, 43, 0.0, 1.0);
    auto step = [&](Index slice_size, StepValues& values) {
        Sequential<double> model{ContractiveDense<double>(6, 0.3), ActivityL1<double>(0.05), Dropout<double>(0.25),
                                 Dense<double>(5), Sigmoid<double>()};
        model.build({4, 1, 1}, 44);
        SGD<double> optimizer(0.5);
        Batch<double> batch;
        batch.inputs = inputs.data();
        batch.targets = targets.data();
        batch.count = count;
        batch.input_shape = {4, 1, 1};
        batch.target_shape = {5, 1, 1};
        batch.pass = Pass::training_batch(45, 2, 1, count);
        batch.slice_size = slice_size;
        StepScratch<double> scratch;
        values = train_step(model, Loss<double>(MeanSquaredError<double>()), optimizer, batch, scratch);
        std::vector<double> weights;
        for (const auto& parameter : model.parameters())
            weights.insert(weights.end(), parameter.value, parameter.value + parameter.size);
        return weights;
    };
    StepValues whole, sliced;
    const std::vector<double> whole_weights = step(0, whole), sliced_weights = step(3, sliced);
    REQUIRE(whole.terms.size() == 2);  // contractive, sparsity
    CHECK(std::abs(sliced.reconstruction - whole.reconstruction) < 1e-12);
    for (std::size_t t = 0; t < whole.terms.size(); ++t) {
        CHECK(whole.terms[t] > 0);
        CHECK(std::abs(sliced.terms[t] - whole.terms[t]) < 1e-12);
    }
    REQUIRE(sliced_weights.size() == whole_weights.size());
    double worst = 0;
    for (std::size_t i = 0; i < whole_weights.size(); ++i)
        worst = std::max(worst, std::abs(sliced_weights[i] - whole_weights[i]));
    CHECK(worst < 1e-12);
}
