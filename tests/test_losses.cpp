#include <catch2/catch.hpp>

#include <latent/latent.hpp>
#include <latent/losses/loss.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "helpers.hpp"

using namespace latent;
using Catch::Matchers::Contains;

namespace {

// A tensor of `batch` samples of `shape` holding `values` in row-major order.
template <class T>
Tensor<T> tensor_of(Index batch, const Shape& shape, std::initializer_list<double> values) {
    Tensor<T> tensor = make_tensor<T>(batch, shape);
    Index i = 0;
    for (double value : values) tensor.data()[i++] = static_cast<T>(value);
    return tensor;
}

// The tiny batch of the hand computations: 2 samples of 2 values each.
//   p = {0.2, 0.9 | 0.6, 0.3},  t = {0, 1 | 1, 0},  p - t = {0.2, -0.1 | -0.4, 0.3}
const Shape tiny_shape{1, 1, 2};
Tensor<double> tiny_prediction() { return tensor_of<double>(2, tiny_shape, {0.2, 0.9, 0.6, 0.3}); }
Tensor<double> tiny_target() { return tensor_of<double>(2, tiny_shape, {0, 1, 1, 0}); }

struct Evaluation {
    double value = 0;
    Tensor<double> grad;
    std::vector<double> per_sample;
};

template <class L> Evaluation evaluate(const L& loss, const Tensor<double>& p, const Tensor<double>& t) {
    Evaluation result;
    result.grad = make_tensor<double>(p.dimension(0), sample_shape(p));
    result.value = loss.compute(view(p), view(t), view(result.grad));
    result.per_sample.resize(static_cast<std::size_t>(p.dimension(0)));
    loss.per_sample(view(p), view(t), result.per_sample.data());
    return result;
}

void check_values(const Tensor<double>& actual, std::initializer_list<double> expected) {
    REQUIRE(actual.size() == static_cast<Index>(expected.size()));
    Index i = 0;
    for (double value : expected) {
        INFO("element " << i);
        CHECK(actual.data()[i++] == Approx(value).margin(1e-15).epsilon(1e-12));
    }
}

// Largest relative error between compute()'s gradient and the central difference
// (L(p + h) - L(p - h)) / 2h, in double. Values below 1e-3 of the largest gradient value are
// compared absolutely at that floor: their difference quotient is round-off of L (about 1e-17)
// divided by 2h, not a property of the gradient. Prints a GRADCHECK line.
template <class L>
double check_loss_gradient(const L& loss, const Tensor<double>& prediction,
                           const Tensor<double>& target, const std::string& label, double h = 1e-5) {
    Tensor<double> p = prediction;
    Tensor<double> grad = make_tensor<double>(p.dimension(0), sample_shape(p));
    Tensor<double> scratch = grad;
    loss.compute(view(std::as_const(p)), view(target), view(grad));
    std::vector<double> numeric;
    for (Index i = 0; i < p.size(); ++i) {
        const double saved = p.data()[i];
        p.data()[i] = saved + h;
        const double plus = loss.compute(view(std::as_const(p)), view(target), view(scratch));
        p.data()[i] = saved - h;
        const double minus = loss.compute(view(std::as_const(p)), view(target), view(scratch));
        p.data()[i] = saved;
        numeric.push_back((plus - minus) / (2 * h));
    }
    double scale = 0;
    for (double value : numeric) scale = std::max(scale, std::abs(value));
    const double floor = 1e-3 * scale;
    double worst = 0;
    for (Index i = 0; i < p.size(); ++i) {
        const double analytic = grad.data()[i], difference = std::abs(analytic - numeric[i]);
        worst = std::max(worst, difference / std::max({std::abs(analytic), std::abs(numeric[i]), floor}));
    }
    std::cout << "GRADCHECK " << label << ": max relative error " << worst << "\n";
    return worst;
}

}  // namespace

TEST_CASE("MeanSquaredError: value, gradient and per-sample losses by hand", "[losses][mse]") {
    const auto result = evaluate(MeanSquaredError<double>(), tiny_prediction(), tiny_target());
    // (p - t)^2 = {0.04, 0.01 | 0.16, 0.09}, sum 0.30, mean over 4 elements = 0.075
    CHECK(result.value == Approx(0.075).epsilon(1e-12));
    // grad = 2 (p - t) / 4 = (p - t) / 2
    check_values(result.grad, {0.1, -0.05, -0.2, 0.15});
    // per sample: (0.04 + 0.01) / 2 = 0.025,  (0.16 + 0.09) / 2 = 0.125
    CHECK(result.per_sample[0] == Approx(0.025).epsilon(1e-12));
    CHECK(result.per_sample[1] == Approx(0.125).epsilon(1e-12));
}

TEST_CASE("SumSquaredError: value, gradient and per-sample losses by hand", "[losses][sse]") {
    const auto result = evaluate(SumSquaredError<double>(), tiny_prediction(), tiny_target());
    // 1/2 (0.04 + 0.01 + 0.16 + 0.09) = 0.15: the whole batch, not averaged
    CHECK(result.value == Approx(0.15).epsilon(1e-12));
    // grad = p - t
    check_values(result.grad, {0.2, -0.1, -0.4, 0.3});
    // per sample: 1/2 (0.04 + 0.01) = 0.025,  1/2 (0.16 + 0.09) = 0.125
    CHECK(result.per_sample[0] == Approx(0.025).epsilon(1e-12));
    CHECK(result.per_sample[1] == Approx(0.125).epsilon(1e-12));
}

TEST_CASE("L1: value, gradient and per-sample losses by hand", "[losses][l1]") {
    const auto result = evaluate(L1<double>(), tiny_prediction(), tiny_target());
    // |p - t| = {0.2, 0.1 | 0.4, 0.3}, sum 1.0, mean 0.25
    CHECK(result.value == Approx(0.25).epsilon(1e-12));
    // grad = sign(p - t) / 4
    check_values(result.grad, {0.25, -0.25, -0.25, 0.25});
    // per sample: (0.2 + 0.1) / 2 = 0.15,  (0.4 + 0.3) / 2 = 0.35
    CHECK(result.per_sample[0] == Approx(0.15).epsilon(1e-12));
    CHECK(result.per_sample[1] == Approx(0.35).epsilon(1e-12));

    // sign(0) = 0: a perfect prediction has a zero gradient there
    const auto exact = evaluate(L1<double>(), tensor_of<double>(1, {1, 1, 2}, {0.5, 0.7}),
                                tensor_of<double>(1, {1, 1, 2}, {0.5, 0.2}));
    CHECK(exact.value == Approx(0.25).epsilon(1e-12));  // (0 + 0.5) / 2
    check_values(exact.grad, {0.0, 0.5});                // {0, +1/2}
}

TEST_CASE("BinaryCrossEntropy: value, gradient and per-sample losses by hand", "[losses][bce]") {
    const auto result = evaluate(BinaryCrossEntropy<double>(), tiny_prediction(), tiny_target());
    // -(t log p + (1 - t) log(1 - p)): t = 0 gives -log(1 - p), t = 1 gives -log(p)
    //   {-log 0.8, -log 0.9 | -log 0.6, -log 0.7} = {0.223144, 0.105361 | 0.510826, 0.356675}
    const double terms[] = {-std::log(0.8), -std::log(0.9), -std::log(0.6), -std::log(0.7)};
    CHECK(result.value == Approx((terms[0] + terms[1] + terms[2] + terms[3]) / 4).epsilon(1e-12));
    CHECK(result.value == Approx(0.299001158669).epsilon(1e-11));
    // grad = (p - t) / (p (1 - p)) / 4: t = 0 gives 1 / (1 - p) / 4, t = 1 gives -1 / p / 4
    check_values(result.grad, {1 / 0.8 / 4, -1 / 0.9 / 4, -1 / 0.6 / 4, 1 / 0.7 / 4});
    CHECK(result.per_sample[0] == Approx((terms[0] + terms[1]) / 2).epsilon(1e-12));
    CHECK(result.per_sample[1] == Approx((terms[2] + terms[3]) / 2).epsilon(1e-12));
}

TEST_CASE("logarithm: the SSE2, AVX2 and AVX-512 paths give the same bits as each other and as "
          "Eigen's SSE2 log, tails and special values included", "[losses][bce][kernels]") {
    std::vector<float> range;
    for (float v = 1e-7f; v <= 1.0f; v += 0.000371f) range.push_back(v);  // BCE's range
    using limits = std::numeric_limits<float>;
    const std::vector<float> x = test::with_any_bit_patterns(
        range, 11, {0.0f, -0.0f, 1.0f, -1.0f, limits::infinity(), -limits::infinity(), limits::quiet_NaN(),
                    limits::denorm_min(), limits::min(), limits::max()});
    const Index count = static_cast<Index>(x.size());

    std::vector<float> portable(x.size());
    kernels::logarithm(Isa::Portable, x.data(), portable.data(), count);
    Index inaccurate = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const float value = x[i], y = portable[i];
        if (std::isnan(value) || value < 0) inaccurate += !std::isnan(y);
        else if (value == 0) inaccurate += !(y == -std::numeric_limits<float>::infinity());
        else if (std::isinf(value)) inaccurate += !(y == value);
        else {  // denormals are taken as the smallest normal number
            const double exact = std::log(std::max(static_cast<double>(value), 1.17549435e-38));
            inaccurate += std::abs(y - exact) > 2.5e-7 * std::max(1.0, std::abs(exact));
        }
    }
    CHECK(inaccurate == 0);
#if defined(__SSE2__) && !defined(__FMA__)
    // Eigen's own vectorised code, in a build without FMA (as the default x86-64 one).
    const Eigen::ArrayXf eigen = Eigen::Map<const Eigen::ArrayXf>(x.data(), count).log();
    Index differ = 0;
    for (Index i = 0; i < count; ++i) differ += !test::same_float_bits(portable[static_cast<std::size_t>(i)], eigen[i]);
    CHECK(differ == 0);
#endif
    test::check_vector_paths_match_portable(
        [](Isa isa, const float* in, float* out, Index n) { kernels::logarithm(isa, in, out, n); }, x, portable);
}

TEST_CASE("BinaryCrossEntropy: float values agree with the double loss, blocks and tails included",
          "[losses][bce]") {
    for (Index count : {1, 7, 255, 256, 257, 1000, 5000}) {
        INFO("elements " << count);
        Rng rng(static_cast<std::uint64_t>(count));
        Tensor<float> prediction(count, 1, 1, 1), target(count, 1, 1, 1), grad(count, 1, 1, 1);
        Tensor<double> prediction_d(count, 1, 1, 1), target_d(count, 1, 1, 1), grad_d(count, 1, 1, 1);
        for (Index i = 0; i < count; ++i) {
            prediction.data()[i] = static_cast<float>(rng.uniform(0.0, 1.0));
            target.data()[i] = static_cast<float>(rng.uniform(0.0, 1.0));
            prediction_d.data()[i] = prediction.data()[i];
            target_d.data()[i] = target.data()[i];
        }
        const double in_float = BinaryCrossEntropy<float>().compute(prediction, target, grad);
        const double in_double = BinaryCrossEntropy<double>().compute(prediction_d, target_d, grad_d);
        CHECK(in_float == Approx(in_double).epsilon(1e-6));
        const double on_logits = BinaryCrossEntropy<float>().compute_on_logits(prediction, target, grad);
        CHECK(on_logits == in_float);
    }
}

TEST_CASE("BinaryCrossEntropy: float gradients are the scalar formulas bit for bit on this vector path, for "
          "predictions of any bit pattern (negative, NaN, at and beyond the clamp)", "[losses][bce][kernels]") {
    const float low = static_cast<float>(1e-7), high = static_cast<float>(1.0 - 1e-7);
    std::vector<float> inside;
    for (float v = 0; v <= 1.0f; v += 0.00293f) inside.push_back(v);
    using limits = std::numeric_limits<float>;
    const std::vector<float> p = test::with_any_bit_patterns(
        inside, 23, {0.0f, -0.0f, low, std::nextafter(low, 0.0f), std::nextafter(low, 1.0f), high,
                     std::nextafter(high, 0.0f), std::nextafter(high, 2.0f), 1.0f, -1.0f, 1.5f, limits::infinity(),
                     -limits::infinity(), limits::quiet_NaN(), -limits::quiet_NaN()});
    const Index count = static_cast<Index>(p.size());
    Rng rng(29);
    std::vector<float> t(p.size());
    for (float& value : t) value = static_cast<float>(rng.uniform(0.0, 1.0));
    t[0] = 0.0f;
    t[1] = 1.0f;
    const float scale = static_cast<float>(1.0 / static_cast<double>(count));
    std::vector<float> grad(p.size()), grad_logits(p.size());
    const ConstTensorView<float> prediction(p.data(), count, 1, 1, 1), target(t.data(), count, 1, 1, 1);
    const double loss = BinaryCrossEntropy<float>().compute(prediction, target, TensorView<float>(grad.data(), count, 1, 1, 1));
    BinaryCrossEntropy<float>().compute_on_logits(prediction, target, TensorView<float>(grad_logits.data(), count, 1, 1, 1));
    CHECK(std::isnan(loss));  // NaN predictions give a NaN loss, not a clamped finite one
    Index differ = 0, differ_logits = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
        const float q = std::isnan(p[i]) ? p[i] : std::min(std::max(p[i], low), high);
        const bool clamped = p[i] < low || p[i] > high;
        const float expected = clamped ? 0.0f : (q - t[i]) / (q * (1.0f - q)) * scale;
        differ += !test::same_float_bits(grad[i], expected);
        differ_logits += !test::same_float_bits(grad_logits[i], (p[i] - t[i]) * scale);
    }
    INFO("path " << isa_name(active_isa()));
    CHECK(differ == 0);
    CHECK(differ_logits == 0);
}

TEST_CASE("BinaryCrossEntropy: the clamp keeps saturated predictions finite, with zero gradient",
          "[losses][bce]") {
    // p = 0 with t = 1 and p = 1 with t = 0 are clamped to 1e-7 and 1 - 1e-7:
    // each term is -log(1e-7) = 16.118096; the clamp is active, so the gradient is 0.
    const auto result = evaluate(BinaryCrossEntropy<double>(), tensor_of<double>(1, {1, 1, 2}, {0.0, 1.0}),
                                 tensor_of<double>(1, {1, 1, 2}, {1.0, 0.0}));
    CHECK(result.value == Approx(-std::log(1e-7)).epsilon(1e-9));
    check_values(result.grad, {0.0, 0.0});
}

TEST_CASE("losses: gradient equals a central finite difference of compute() in double",
          "[losses][gradcheck]") {
    const Shape shape{2, 3, 5};
    const Tensor<double> prediction = test::random_tensor<double>(3, shape, 21, 0.1, 0.9);
    const Tensor<double> target = test::random_tensor<double>(3, shape, 22, 0.0, 1.0);
    CHECK(check_loss_gradient(MeanSquaredError<double>(), prediction, target, "MeanSquaredError") < 1e-6);
    CHECK(check_loss_gradient(SumSquaredError<double>(), prediction, target, "SumSquaredError") < 1e-6);
    CHECK(check_loss_gradient(BinaryCrossEntropy<double>(), prediction, target, "BinaryCrossEntropy") < 1e-6);
    // L1 has a kink at p == t: keep every p 0.1 to 0.4 away from its target
    Tensor<double> away = target;
    for (Index i = 0; i < away.size(); ++i)
        away.data()[i] = target.data()[i] + (i % 2 == 0 ? 1 : -1) * (0.1 + 0.3 * prediction.data()[i]);
    CHECK(check_loss_gradient(L1<double>(), away, target, "L1") < 1e-6);
}

TEST_CASE("losses: prediction and target of different shapes throw ShapeError naming both",
          "[losses][shape]") {
    const Tensor<float> prediction = make_tensor<float>(2, {1, 1, 2});
    const Tensor<float> target = make_tensor<float>(2, {1, 2, 1});
    Tensor<float> grad = make_tensor<float>(2, {1, 1, 2});
    float out[2];
    for (const Loss<float>& loss : {Loss<float>(MeanSquaredError<float>()), Loss<float>(SumSquaredError<float>()),
                                    Loss<float>(BinaryCrossEntropy<float>()), Loss<float>(L1<float>())}) {
        INFO(loss.type());
        const std::string expected =
            loss.type() + ": prediction (2, 1, 1, 2) and target (2, 1, 2, 1) have different shapes";
        CHECK_THROWS_MATCHES(loss.compute(view(prediction), view(target), view(grad)), ShapeError,
                             Catch::Matchers::Message(expected));
        CHECK_THROWS_MATCHES(loss.per_sample(view(prediction), view(target), out), ShapeError,
                             Catch::Matchers::Message(expected));
        // a gradient buffer of the wrong shape is refused too
        Tensor<float> wrong_grad = make_tensor<float>(1, {1, 1, 2});
        CHECK_THROWS_WITH(loss.compute(view(prediction), view(prediction), view(wrong_grad)),
                          Contains("gradient (1, 1, 1, 2)") && Contains("(2, 1, 1, 2)"));
    }
}

TEST_CASE("BinaryCrossEntropy: a target of 1.5 is rejected with ArgumentError", "[losses][bce]") {
    const Tensor<float> prediction = tensor_of<float>(2, {1, 1, 2}, {0.5, 0.5, 0.5, 0.5});
    const Tensor<float> target = tensor_of<float>(2, {1, 1, 2}, {0, 1, 1.5, 0});
    Tensor<float> grad = make_tensor<float>(2, {1, 1, 2});
    const BinaryCrossEntropy<float> bce;
    CHECK_THROWS_AS(bce.compute(view(prediction), view(target), view(grad)), ArgumentError);
    CHECK_THROWS_WITH(bce.compute(view(prediction), view(target), view(grad)),
                      Contains("target value 1.5 at element 2 (sample 1)") &&
                          Contains("normalise your images to [0,1]"));
    CHECK_THROWS_WITH(bce.compute_on_logits(view(prediction), view(target), view(grad)),
                      Contains("target value 1.5 at element 2 (sample 1)"));
    float out[2];
    CHECK_THROWS_AS(bce.per_sample(view(prediction), view(target), out), ArgumentError);
    // a target in [0, 255] is the usual cause
    const Tensor<float> bytes = tensor_of<float>(2, {1, 1, 2}, {0, 255, 0, 0});
    CHECK_THROWS_WITH(bce.compute(view(prediction), view(bytes), view(grad)),
                      Contains("255") && Contains("element 1"));
    CHECK_THROWS_AS(BinaryCrossEntropy<float>(-1e-7), ArgumentError);
}

TEST_CASE("BinaryCrossEntropy: a target outside [0, 1] or NaN is found at any position of any tail",
          "[losses][bce]") {
    const BinaryCrossEntropy<float> bce;
    for (Index count = 1; count <= 40; ++count) {
        Tensor<float> prediction = make_tensor<float>(1, {1, 1, count});
        prediction.setConstant(0.5f);
        Tensor<float> target = make_tensor<float>(1, {1, 1, count});
        for (Index i = 0; i < count; ++i) target.data()[i] = i % 3 == 0 ? 0.0f : i % 3 == 1 ? 1.0f : -0.0f;
        Tensor<float> grad = make_tensor<float>(1, {1, 1, count});
        CHECK_NOTHROW(bce.compute(view(std::as_const(prediction)), view(std::as_const(target)), view(grad)));
        for (Index bad = 0; bad < count; ++bad)
            for (float value : {1.0000001f, -1e-30f, std::numeric_limits<float>::quiet_NaN()}) {
                Tensor<float> with_bad = target;
                with_bad.data()[bad] = value;
                INFO("count " << count << ", element " << bad << " = " << value);
                CHECK_THROWS_WITH(bce.compute(view(std::as_const(prediction)), view(std::as_const(with_bad)), view(grad)),
                                  Contains("at element " + std::to_string(bad) + " "));
            }
    }
}

TEST_CASE("BinaryCrossEntropy: fused Sigmoid gradient survives saturated logits, the unfused one vanishes",
          "[losses][bce][sigmoid]") {
    // logits {+40, -40, 30}, targets {0, 1, 0}: every output is saturated and wrong.
    // float sigmoid: {1, 4.2e-18, 1}; each is outside [1e-7, 1 - 1e-7], so the clamp is active.
    Tensor<float> logits = tensor_of<float>(1, {3, 1, 1}, {40, -40, 30});
    const Tensor<float> target = tensor_of<float>(1, {3, 1, 1}, {0, 1, 0});
    Layer<float> sigmoid = Sigmoid<float>();
    Rng rng(0);
    sigmoid.build({3, 1, 1}, rng);
    Tensor<float> probability;
    sigmoid.forward(logits, probability);
    const BinaryCrossEntropy<float> bce;

    // Unfused: dLoss/dp (0 under the clamp), then the Sigmoid's backward dp * p (1 - p).
    Tensor<float> grad_probability = make_tensor<float>(1, {3, 1, 1});
    const double unfused_value = bce.compute(view(std::as_const(probability)), view(target), view(grad_probability));
    Tensor<float> unfused_grad_logits;
    sigmoid.backward(logits, probability, grad_probability, unfused_grad_logits);
    for (Index i = 0; i < 3; ++i) {
        const float g = unfused_grad_logits.data()[i];
        INFO("logit " << logits.data()[i] << ": unfused gradient " << g);
        CHECK((g == 0.0f || std::isnan(g)));
    }

    // Fused: dLoss/dz = (p - t) / 3 = {(1 - 0) / 3, (0 - 1) / 3, (1 - 0) / 3} = {+1/3, -1/3, +1/3}
    Tensor<float> fused_grad_logits = make_tensor<float>(1, {3, 1, 1});
    const double fused_value =
        bce.compute_on_logits(view(std::as_const(probability)), view(target), view(fused_grad_logits));
    CHECK(fused_grad_logits.data()[0] == Approx(1.0 / 3).epsilon(1e-6));
    CHECK(fused_grad_logits.data()[1] == Approx(-1.0 / 3).epsilon(1e-6));
    CHECK(fused_grad_logits.data()[2] == Approx(1.0 / 3).epsilon(1e-6));
    // Same (clamped) value both ways. In float the clamp bounds are float(1e-7) and
    // float(1 - 1e-7) = 0.99999988 = 1 - 1.19e-7, so the loss is
    // (-log(1 - 0.99999988) - log(float(1e-7)) - log(1 - 0.99999988)) / 3 = (15.94 + 16.12 + 15.94) / 3
    CHECK(fused_value == unfused_value);
    const double low = static_cast<float>(1e-7), high = static_cast<float>(1 - 1e-7);
    // (The logarithms are taken in T, here float: agreement to float precision.)
    CHECK(fused_value == Approx((-2 * std::log(1 - high) - std::log(low)) / 3).epsilon(1e-6));
}

TEST_CASE("BinaryCrossEntropy: fused gradient equals the chain rule through Sigmoid when unsaturated",
          "[losses][bce][sigmoid]") {
    // dLoss/dz = dLoss/dp * p (1 - p) = (p - t) / (p (1 - p)) / count * p (1 - p) = (p - t) / count
    const Tensor<double> logits = test::random_tensor<double>(2, {2, 3, 3}, 31, -4, 4);
    const Tensor<double> target = test::random_tensor<double>(2, {2, 3, 3}, 32, 0, 1);
    Layer<double> sigmoid = Sigmoid<double>();
    Rng rng(0);
    sigmoid.build(sample_shape(logits), rng);
    Tensor<double> probability, grad_probability = make_tensor<double>(2, {2, 3, 3}), chained;
    sigmoid.forward(logits, probability);
    const BinaryCrossEntropy<double> bce;
    const double value = bce.compute(view(std::as_const(probability)), view(target), view(grad_probability));
    sigmoid.backward(logits, probability, grad_probability, chained);
    Tensor<double> fused = make_tensor<double>(2, {2, 3, 3});
    CHECK(bce.compute_on_logits(view(std::as_const(probability)), view(target), view(fused)) == value);
    CHECK(test::max_abs_difference(fused, chained) < 1e-15);
}

TEST_CASE("Loss: forwards to the held loss, the registry rebuilds it from its config and rejects unknown types",
          "[losses][loss]") {
    const Tensor<double> p = tiny_prediction(), t = tiny_target();
    Loss<double> loss = L1<double>();
    CHECK(loss.type() == "L1");
    CHECK_FALSE(loss.has_logits_gradient());
    CHECK(evaluate(loss, p, t).value == Approx(0.25).epsilon(1e-12));
    CHECK(Loss<double>().type() == "MeanSquaredError");

    Tensor<double> grad = make_tensor<double>(2, tiny_shape);
    CHECK_THROWS_AS(loss.compute_on_logits(view(p), view(t), view(grad)), ArgumentError);
    CHECK_THROWS_AS(Loss<double>(SumSquaredError<double>()).compute_on_logits(view(p), view(t), view(grad)),
                    ArgumentError);

    loss = BinaryCrossEntropy<double>(1e-3);
    CHECK(loss.has_logits_gradient());
    CHECK(loss.get<BinaryCrossEntropy<double>>() != nullptr);
    CHECK(loss.get<L1<double>>() == nullptr);
    const auto registry = Registry<double>::builtin();
    const Loss<double> rebuilt = registry.create_loss(loss.type(), loss.config());
    REQUIRE(rebuilt.get<BinaryCrossEntropy<double>>() != nullptr);
    CHECK(rebuilt.get<BinaryCrossEntropy<double>>()->eps() == 1e-3);
    CHECK(rebuilt.compute_on_logits(view(p), view(t), view(grad)) == evaluate(loss, p, t).value);
    for (const char* type : {"MeanSquaredError", "SumSquaredError", "L1"})
        CHECK(registry.create_loss(type, Config()).type() == type);

    CHECK_THROWS_MATCHES(registry.create_loss("Hinge", Config()), FormatError,
                         Catch::Matchers::Message("unknown loss type 'Hinge' (one of your own? register it: "
                                                  "registry.add_loss<Hinge<T>>())"));
    CHECK_THROWS_AS(registry.create_loss("BinaryCrossEntropy", Config()), FormatError);
}

TEST_CASE("losses: values and per-sample losses are bit-identical with 1 and 2 threads",
          "[losses][threads]") {
    // 4 samples of 3x100x250 = 300000 values: 37 slices of 8192 elements
    const Tensor<float> p = test::random_tensor<float>(4, {3, 100, 250}, 41, 0.0, 1.0);
    const Tensor<float> t = test::random_tensor<float>(4, {3, 100, 250}, 42, 0.0, 1.0);
    const int threads = num_threads();
    for (const Loss<float>& loss : {Loss<float>(MeanSquaredError<float>()), Loss<float>(SumSquaredError<float>()),
                                    Loss<float>(BinaryCrossEntropy<float>()), Loss<float>(L1<float>())}) {
        INFO(loss.type());
        Tensor<float> grad_one = make_tensor<float>(4, {3, 100, 250}), grad_two = grad_one;
        float per_sample_one[4], per_sample_two[4];
        set_num_threads(1);
        const double one = loss.compute(view(p), view(t), view(grad_one));
        loss.per_sample(view(p), view(t), per_sample_one);
        set_num_threads(2);
        const double two = loss.compute(view(p), view(t), view(grad_two));
        loss.per_sample(view(p), view(t), per_sample_two);
        CHECK(one == two);
        CHECK(test::max_abs_difference(grad_one, grad_two) == 0.0);
        for (int n = 0; n < 4; ++n) CHECK(per_sample_one[n] == per_sample_two[n]);
        // the mean of the per-sample means is the batch mean for the averaging losses
        if (loss.type() != "SumSquaredError")
            CHECK((per_sample_one[0] + per_sample_one[1] + per_sample_one[2] + per_sample_one[3]) / 4 ==
                  Approx(one).epsilon(1e-5));
    }
    set_num_threads(threads);
}
