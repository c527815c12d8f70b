#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <optional>
#include <latent/layers/conv2d.hpp>
#include <latent/layers/conv_transpose2d.hpp>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "helpers.hpp"
#include "layer_cases.hpp"
#include "reference_layers.hpp"

using namespace latent;

namespace {

using test::conv_cases;
using test::ConvCase;
using test::transpose_cases;

// Largest |a - b| divided by max(1, largest |b|): absolute for values of order 1, relative for
// sums that grow with the batch (weight gradients).
template <class A, class B> double scaled_difference(const A& a, const B& b, Index size) {
    double worst = 0, scale = 1;
    for (Index i = 0; i < size; ++i) {
        worst = std::max(
            worst, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
        scale = std::max(scale, std::abs(static_cast<double>(b.data()[i])));
    }
    return worst / scale;
}

template <class T> double tolerance() { return std::is_same_v<T, float> ? 1e-5 : 1e-12; }

// Builds `layer` for `input` and gives it random biases (the initial biases are zero).
template <class T, class L>
L& build_with_random_bias(Layer<T>& layer, const Shape& input, std::uint64_t seed) {
    Rng rng(seed);
    layer.build(input, rng);
    L& inner = *layer.template get<L>();
    for (Index f = 0; f < inner.bias().size(); ++f)
        inner.bias()(f) = static_cast<T>(rng.uniform(-1, 1));
    return inner;
}

// Restores the thread setting when a test ends, also when it fails.
struct ThreadSettingGuard {
    int previous = num_threads();
    ~ThreadSettingGuard() { set_num_threads(previous); }
};

template <class T> double inner_product(const Tensor<T>& a, const Tensor<T>& b) {
    double sum = 0;
    for (Index i = 0; i < a.size(); ++i)
        sum += static_cast<double>(a.data()[i]) * static_cast<double>(b.data()[i]);
    return sum;
}

template <class T> bool bit_identical(const T* a, const T* b, Index size) {
    return std::memcmp(a, b, static_cast<std::size_t>(size) * sizeof(T)) == 0;
}

// A single-sample, single-channel tensor from rows of values.
Tensor<double> image(Index height, Index width, const std::vector<double>& values) {
    Tensor<double> tensor(1, 1, height, width);
    std::copy(values.begin(), values.end(), tensor.data());
    return tensor;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fast path against plain loops

TEMPLATE_TEST_CASE("conv2d: im2col + GEMM forward matches plain loops", "[conv2d]", float, double) {
    using T = TestType;
    for (const ConvCase& c : conv_cases) {
        INFO(c.label("Conv2D"));
        Layer<T> layer = Conv2D<T>(c.filters, c.kernel, c.stride, c.padding);
        const auto& conv = build_with_random_bias<T, Conv2D<T>>(layer, c.input(), 7);
        // 21 samples: several chunks of several samples each.
        const Tensor<T> x = test::random_tensor<T>(21, c.input(), 8);
        Tensor<T> y;
        layer.forward(x, y);
        const Tensor<T> expected = test::reference_conv2d_forward(x, conv.weight(), conv.bias(),
                                                                  c.kernel, c.stride, c.padding);
        REQUIRE(y.dimensions() == expected.dimensions());
        CHECK(scaled_difference(y, expected, y.size()) < tolerance<T>());
    }
}

TEMPLATE_TEST_CASE("conv2d: backward matches plain loops (input, weight and bias gradients)",
                   "[conv2d]", float, double) {
    using T = TestType;
    for (const ConvCase& c : conv_cases) {
        INFO(c.label("Conv2D"));
        Layer<T> layer = Conv2D<T>(c.filters, c.kernel, c.stride, c.padding);
        const auto& conv = build_with_random_bias<T, Conv2D<T>>(layer, c.input(), 9);
        const Tensor<T> x = test::random_tensor<T>(13, c.input(), 10);
        Tensor<T> y, dx;
        layer.forward(x, y);
        const Tensor<T> dy = test::random_tensor<T>(13, layer.output_shape(), 11);
        layer.backward(x, y, dy, dx);
        const auto expected =
            test::reference_conv2d_backward(x, conv.weight(), dy, c.kernel, c.stride, c.padding);
        CHECK(scaled_difference(dx, expected.input, dx.size()) < tolerance<T>());
        CHECK(scaled_difference(conv.grad_weight(), expected.weight, expected.weight.size()) <
              tolerance<T>());
        CHECK(scaled_difference(conv.grad_bias(), expected.bias, expected.bias.size()) <
              tolerance<T>());
    }
}

TEMPLATE_TEST_CASE("conv_transpose2d: GEMM + col2im forward matches the plain scatter loop",
                   "[conv_transpose2d]", float, double) {
    using T = TestType;
    for (const ConvCase& c : transpose_cases) {
        INFO(c.label("ConvTranspose2D"));
        Layer<T> layer =
            ConvTranspose2D<T>(c.filters, c.kernel, c.stride, c.padding, c.output_padding);
        const auto& deconv = build_with_random_bias<T, ConvTranspose2D<T>>(layer, c.input(), 12);
        const Tensor<T> x = test::random_tensor<T>(21, c.input(), 13);
        Tensor<T> y;
        layer.forward(x, y);
        const Tensor<T> expected = test::reference_conv_transpose2d_forward(
            x, deconv.weight(), deconv.bias(), c.filters, c.kernel, c.stride, c.padding,
            c.output_padding);
        REQUIRE(y.dimensions() == expected.dimensions());
        CHECK(scaled_difference(y, expected, y.size()) < tolerance<T>());
    }
}

TEMPLATE_TEST_CASE(
    "conv_transpose2d: backward matches plain loops (input, weight and bias gradients)",
    "[conv_transpose2d]", float, double) {
    using T = TestType;
    for (const ConvCase& c : transpose_cases) {
        INFO(c.label("ConvTranspose2D"));
        Layer<T> layer =
            ConvTranspose2D<T>(c.filters, c.kernel, c.stride, c.padding, c.output_padding);
        const auto& deconv = build_with_random_bias<T, ConvTranspose2D<T>>(layer, c.input(), 14);
        const Tensor<T> x = test::random_tensor<T>(13, c.input(), 15);
        Tensor<T> y, dx;
        layer.forward(x, y);
        const Tensor<T> dy = test::random_tensor<T>(13, layer.output_shape(), 16);
        layer.backward(x, y, dy, dx);
        const auto expected = test::reference_conv_transpose2d_backward(
            x, deconv.weight(), dy, c.kernel, c.stride, c.padding, c.output_padding);
        CHECK(scaled_difference(dx, expected.input, dx.size()) < tolerance<T>());
        CHECK(scaled_difference(deconv.grad_weight(), expected.weight, expected.weight.size()) <
              tolerance<T>());
        CHECK(scaled_difference(deconv.grad_bias(), expected.bias, expected.bias.size()) <
              tolerance<T>());
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient checks (double, central differences)

namespace {

void check_conv2d_gradients(const ConvCase& c, Index batch, std::uint64_t seed,
                            bool use_bias = true) {
    Layer<double> layer =
        Conv2D<double>(c.filters, c.kernel, c.stride, c.padding, Init::GlorotUniform, use_bias);
    const auto result =
        test::expect_gradients(layer, test::random_tensor<double>(batch, c.input(), seed),
                               c.label("Conv2D") + (use_bias ? "" : " no bias"));
    CHECK(result.entries.size() == (use_bias ? 3u : 2u));  // input, weight (, bias)
}

void check_conv_transpose2d_gradients(const ConvCase& c, Index batch, std::uint64_t seed,
                                      bool use_bias = true) {
    Layer<double> layer = ConvTranspose2D<double>(c.filters, c.kernel, c.stride, c.padding,
                                                  c.output_padding, Init::GlorotUniform, use_bias);
    const auto result =
        test::expect_gradients(layer, test::random_tensor<double>(batch, c.input(), seed),
                               c.label("ConvTranspose2D") + (use_bias ? "" : " no bias"));
    CHECK(result.entries.size() == (use_bias ? 3u : 2u));
}

}  // namespace

TEST_CASE("conv2d: gradient check, stride 1, same padding, kernels 1, 3 and 5",
          "[conv2d][gradcheck]") {
    check_conv2d_gradients({3, 7, 5, 2, 1, 1, Padding::Same}, 2, 1);
    check_conv2d_gradients({2, 7, 5, 3, 3, 1, Padding::Same}, 2, 2);
    check_conv2d_gradients({2, 9, 6, 2, 5, 1, Padding::Same}, 2, 3);
}

TEST_CASE("conv2d: gradient check, stride 1, valid padding, kernels 1, 3 and 5",
          "[conv2d][gradcheck]") {
    check_conv2d_gradients({2, 7, 5, 2, 1, 1, Padding::Valid}, 2, 4);
    check_conv2d_gradients({2, 9, 6, 3, 3, 1, Padding::Valid}, 3, 5);
    check_conv2d_gradients({2, 7, 6, 2, 5, 1, Padding::Valid}, 2, 6);
}

TEST_CASE("conv2d: gradient check, stride 2, same padding on odd and even sizes",
          "[conv2d][gradcheck]") {
    check_conv2d_gradients({2, 7, 5, 3, 3, 2, Padding::Same}, 2, 7);
    check_conv2d_gradients({2, 9, 6, 2, 5, 2, Padding::Same}, 2, 8);
    check_conv2d_gradients({2, 8, 6, 2, 1, 2, Padding::Same}, 2, 9);
}

TEST_CASE("conv2d: gradient check, stride 2, valid padding", "[conv2d][gradcheck]") {
    check_conv2d_gradients({2, 7, 5, 3, 3, 2, Padding::Valid}, 2, 10);
    check_conv2d_gradients({2, 9, 6, 2, 5, 2, Padding::Valid}, 3, 11);
}

TEST_CASE("conv2d: gradient check, 3x2 kernel, rectangular strides and stride 3",
          "[conv2d][gradcheck]") {
    check_conv2d_gradients({2, 7, 5, 3, {3, 2}, 1, Padding::Same}, 2, 12);
    check_conv2d_gradients({2, 9, 6, 2, {3, 2}, {2, 1}, Padding::Same}, 2, 13);
    check_conv2d_gradients({2, 9, 6, 2, {3, 2}, {1, 2}, Padding::Valid}, 2, 14);
    check_conv2d_gradients({2, 10, 7, 2, 3, 3, Padding::Same}, 2, 16);
}

TEST_CASE("conv2d: gradient check, stride 1 through im2col + GEMM (more filters than the direct path)",
          "[conv2d][gradcheck]") {
    REQUIRE_FALSE(Conv2D<double>(Conv2D<double>::max_direct_filters + 1, 3).uses_direct_path());
    check_conv2d_gradients({2, 7, 5, 5, 3, 1, Padding::Same}, 2, 17);
    check_conv2d_gradients({2, 9, 6, 6, {3, 2}, 1, Padding::Valid}, 2, 18);
}

TEST_CASE("conv2d: the direct path serves stride 1 with few filters only", "[conv2d]") {
    CHECK(Conv2D<float>(1, 3).uses_direct_path());
    CHECK(Conv2D<float>(Conv2D<float>::max_direct_filters, 5, 1, Padding::Valid).uses_direct_path());
    CHECK_FALSE(Conv2D<float>(Conv2D<float>::max_direct_filters + 1, 3).uses_direct_path());
    CHECK_FALSE(Conv2D<float>(1, 3, 2).uses_direct_path());
    CHECK_FALSE(Conv2D<float>(1, 3, {1, 2}).uses_direct_path());
}

TEST_CASE("conv2d: gradient check without bias", "[conv2d][gradcheck]") {
    check_conv2d_gradients({2, 7, 5, 3, 3, 2, Padding::Same}, 2, 15, false);
}

TEST_CASE("conv_transpose2d: gradient check, stride 1, both paddings, kernels 1, 3 and 5",
          "[conv_transpose2d][gradcheck]") {
    check_conv_transpose2d_gradients({3, 7, 5, 2, 1, 1, Padding::Same}, 2, 21);
    check_conv_transpose2d_gradients({2, 7, 5, 3, 3, 1, Padding::Same}, 2, 22);
    check_conv_transpose2d_gradients({2, 5, 4, 2, 5, 1, Padding::Same}, 2, 23);
    check_conv_transpose2d_gradients({2, 5, 4, 3, 3, 1, Padding::Valid}, 2, 24);
    check_conv_transpose2d_gradients({2, 3, 4, 2, 5, 1, Padding::Valid}, 2, 25);
}

TEST_CASE("conv_transpose2d: gradient check, stride 2, both paddings",
          "[conv_transpose2d][gradcheck]") {
    check_conv_transpose2d_gradients({2, 4, 3, 3, 3, 2, Padding::Same}, 2, 26);
    check_conv_transpose2d_gradients({2, 3, 4, 2, 5, 2, Padding::Same}, 2, 27);
    check_conv_transpose2d_gradients({2, 4, 3, 3, 3, 2, Padding::Valid}, 2, 28);
    check_conv_transpose2d_gradients({2, 3, 5, 2, 1, 2, Padding::Valid}, 2, 29);
}

TEST_CASE("conv_transpose2d: gradient check, 3x2 kernel and rectangular strides",
          "[conv_transpose2d][gradcheck]") {
    check_conv_transpose2d_gradients({2, 5, 3, 3, {3, 2}, 1, Padding::Same}, 2, 30);
    check_conv_transpose2d_gradients({2, 4, 3, 2, {3, 2}, {2, 1}, Padding::Same}, 2, 31);
    check_conv_transpose2d_gradients({2, 3, 4, 2, {3, 2}, {1, 2}, Padding::Valid}, 2, 32);
}

TEST_CASE("conv_transpose2d: gradient check with output_padding 1",
          "[conv_transpose2d][gradcheck]") {
    check_conv_transpose2d_gradients({2, 4, 3, 3, 3, 2, Padding::Same, 1}, 2, 33);
    check_conv_transpose2d_gradients({2, 3, 4, 2, 3, 2, Padding::Valid, 1}, 2, 34);
    check_conv_transpose2d_gradients({2, 4, 3, 2, {3, 2}, 2, Padding::Same, Size2{1, 1}}, 2, 35);
}

TEST_CASE("conv_transpose2d: gradient check without bias", "[conv_transpose2d][gradcheck]") {
    check_conv_transpose2d_gradients({2, 4, 3, 3, 3, 2, Padding::Same}, 2, 36, false);
}

// ---------------------------------------------------------------------------------------------
// Hand-computed values

namespace {

// Runs a built single-channel layer on `x` with the given weights, bias 0.
template <class L>
Tensor<double> run_with_weights(L layer_value, const Tensor<double>& x,
                                const std::vector<double>& weights, double bias = 0) {
    Layer<double> layer = std::move(layer_value);
    Rng rng(0);
    layer.build(sample_shape(x), rng);
    L& inner = *layer.get<L>();
    REQUIRE(inner.weight().size() == static_cast<Index>(weights.size()));
    std::copy(weights.begin(), weights.end(), inner.weight().data());
    inner.bias().setConstant(bias);
    Tensor<double> y;
    layer.forward(x, y);
    return y;
}

}  // namespace

TEST_CASE("conv2d: hand-computed 3x3 input, same padding, all-ones 3x3 kernel", "[conv2d]") {
    // x = 1 2 3 / 4 5 6 / 7 8 9; every output is the sum of its 3x3 neighbourhood (zeros outside).
    const auto x = image(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
    const auto y = run_with_weights(Conv2D<double>(1, 3), x, std::vector<double>(9, 1.0));
    REQUIRE(y.dimension(2) == 3);
    REQUIRE(y.dimension(3) == 3);
    CHECK(y(0, 0, 0, 0) == 1 + 2 + 4 + 5);          // 12
    CHECK(y(0, 0, 0, 1) == 1 + 2 + 3 + 4 + 5 + 6);  // 21
    CHECK(y(0, 0, 0, 2) == 2 + 3 + 5 + 6);          // 16
    CHECK(y(0, 0, 1, 0) == 1 + 2 + 4 + 5 + 7 + 8);  // 27
    CHECK(y(0, 0, 1, 1) == 45);                     // 1 + 2 + ... + 9
    CHECK(y(0, 0, 1, 2) == 2 + 3 + 5 + 6 + 8 + 9);  // 33
    CHECK(y(0, 0, 2, 0) == 4 + 5 + 7 + 8);          // 24
    CHECK(y(0, 0, 2, 1) == 4 + 5 + 6 + 7 + 8 + 9);  // 39
    CHECK(y(0, 0, 2, 2) == 5 + 6 + 8 + 9);          // 28
}

TEST_CASE("conv2d: hand-computed valid padding with an asymmetric 2x2 kernel and bias (no flip)",
          "[conv2d]") {
    // Cross-correlation, as in every framework: y[i][j] = sum W[a][b] * x[i+a][j+b] + 0.5,
    // W = 1 2 / 3 4, x = 1 2 3 / 4 5 6 / 7 8 9.
    const auto x = image(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
    const auto y = run_with_weights(Conv2D<double>(1, 2, 1, Padding::Valid), x, {1, 2, 3, 4}, 0.5);
    REQUIRE(y.dimension(2) == 2);
    REQUIRE(y.dimension(3) == 2);
    CHECK(y(0, 0, 0, 0) == 1 * 1 + 2 * 2 + 3 * 4 + 4 * 5 + 0.5);  // 37.5
    CHECK(y(0, 0, 0, 1) == 1 * 2 + 2 * 3 + 3 * 5 + 4 * 6 + 0.5);  // 47.5
    CHECK(y(0, 0, 1, 0) == 1 * 4 + 2 * 5 + 3 * 7 + 4 * 8 + 0.5);  // 67.5
    CHECK(y(0, 0, 1, 1) == 1 * 5 + 2 * 6 + 3 * 8 + 4 * 9 + 0.5);  // 77.5
}

TEST_CASE("conv2d: same padding with stride 2 on an even size pads only at the bottom/right",
          "[conv2d]") {
    // 4x4 input, k=3, s=2: out = ceil(4/2) = 2, padding total = (2-1)*2 + 3 - 4 = 1, all of it
    // after (pad_before 0). So the windows start at rows/cols 0 and 2; the second one reaches
    // the pad row/col 4. x = 1..16 row by row, all-ones kernel.
    const auto x = image(4, 4, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
    const auto y = run_with_weights(Conv2D<double>(1, 3, 2), x, std::vector<double>(9, 1.0));
    REQUIRE(y.dimension(2) == 2);
    REQUIRE(y.dimension(3) == 2);
    CHECK(y(0, 0, 0, 0) == 1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11);  // 54 (a pad before would give 14)
    CHECK(y(0, 0, 0, 1) == 3 + 4 + 7 + 8 + 11 + 12);              // 45
    CHECK(y(0, 0, 1, 0) == 9 + 10 + 11 + 13 + 14 + 15);           // 72
    CHECK(y(0, 0, 1, 1) == 11 + 12 + 15 + 16);                    // 54
}

TEST_CASE("conv_transpose2d: hand-computed 2x2 -> 4x4, stride 2, same padding",
          "[conv_transpose2d]") {
    // Full map (2-1)*2 + 3 = 5 per axis; out = 2*2 = 4; the crop before is the pad_before of a
    // Conv2D over 4 pixels with k=3, s=2: total (2-1)*2 + 3 - 4 = 1, before 0. So the output is
    // the full map's first 4 rows and columns; TensorFlow drops the odd last row/column.
    const auto x = image(2, 2, {1, 2, 3, 4});
    const auto y =
        run_with_weights(ConvTranspose2D<double>(1, 3, 2), x, std::vector<double>(9, 1.0));
    REQUIRE(y.dimension(2) == 4);
    REQUIRE(y.dimension(3) == 4);
    // With an all-ones kernel, input (i, j) adds its value to full rows 2i..2i+2, cols 2j..2j+2.
    const double expected[4][4] = {
        {1, 1, 1 + 2, 2},                      // full row 0: only input row 0
        {1, 1, 1 + 2, 2},                      // full row 1
        {1 + 3, 1 + 3, 1 + 2 + 3 + 4, 2 + 4},  // full row 2: both input rows overlap
        {3, 3, 3 + 4, 4},                      // full row 3: only input row 1 (row 4 is cropped)
    };
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) {
            INFO("row " << r << " col " << c);
            CHECK(y(0, 0, r, c) == expected[r][c]);
        }
}

TEST_CASE("conv_transpose2d: hand-computed kernel placement (no flip) and cropping",
          "[conv_transpose2d]") {
    // Only x[1][1] = 1 in a 2x2 input, kernel K = 1..9 row by row, stride 2, same: K lands at
    // full-map rows/cols 2..4; the output keeps rows/cols 0..3, so K's first 2x2 block shows at
    // output (2..3, 2..3) unflipped and the rest is 0 plus the bias 0.25.
    const auto x = image(2, 2, {0, 0, 0, 1});
    const auto y =
        run_with_weights(ConvTranspose2D<double>(1, 3, 2), x, {1, 2, 3, 4, 5, 6, 7, 8, 9}, 0.25);
    CHECK(y(0, 0, 2, 2) == 1 + 0.25);
    CHECK(y(0, 0, 2, 3) == 2 + 0.25);
    CHECK(y(0, 0, 3, 2) == 4 + 0.25);
    CHECK(y(0, 0, 3, 3) == 5 + 0.25);
    CHECK(y(0, 0, 0, 0) == 0.25);
    CHECK(y(0, 0, 1, 3) == 0.25);
    // Valid, stride 2, 1x1 input: the output is the whole 3x3 kernel times x, nothing cropped.
    const auto z = run_with_weights(ConvTranspose2D<double>(1, 3, 2, Padding::Valid),
                                    image(1, 1, {2}), {1, 2, 3, 4, 5, 6, 7, 8, 9});
    REQUIRE(z.dimension(2) == 3);  // 1*2 + max(3-2, 0)
    CHECK(z(0, 0, 0, 0) == 2 * 1);
    CHECK(z(0, 0, 1, 2) == 2 * 6);
    CHECK(z(0, 0, 2, 1) == 2 * 8);
}

TEST_CASE("conv_transpose2d: valid padding, kernel smaller than stride leaves bias-only pixels",
          "[conv_transpose2d]") {
    // k=1, s=2, valid: out = 2*2 + max(1-2, 0) = 4, full map (2-1)*2 + 1 = 3. Input (i, j) lands
    // at (2i, 2j); odd rows/cols and row/col 3 (past the full map) hold just the bias 0.5.
    const auto y = run_with_weights(ConvTranspose2D<double>(1, 1, 2, Padding::Valid),
                                    image(2, 2, {1, 2, 3, 4}), {10}, 0.5);
    REQUIRE(y.dimension(2) == 4);
    REQUIRE(y.dimension(3) == 4);
    CHECK(y(0, 0, 0, 0) == 10 * 1 + 0.5);
    CHECK(y(0, 0, 0, 2) == 10 * 2 + 0.5);
    CHECK(y(0, 0, 2, 0) == 10 * 3 + 0.5);
    CHECK(y(0, 0, 2, 2) == 10 * 4 + 0.5);
    CHECK(y(0, 0, 1, 1) == 0.5);
    CHECK(y(0, 0, 3, 3) == 0.5);
}

// ---------------------------------------------------------------------------------------------
// ConvTranspose2D is the adjoint of Conv2D

TEST_CASE("conv_transpose2d: adjoint of conv2d, <conv(x), g> == <x, conv_transpose(g)>",
          "[conv2d][conv_transpose2d]") {
    struct AdjointCase {
        Shape input;  // of the Conv2D
        Size2 kernel, stride;
        Padding padding;
        std::optional<Size2> output_padding;  // makes the ConvTranspose2D output equal the Conv2D input
    };
    const std::vector<AdjointCase> cases = {
        {{2, 7, 5}, 3, 1, Padding::Same, std::nullopt},  // 7x5 -> 7x5 -> 7x5
        {{2, 8, 6}, 3, 2, Padding::Same, std::nullopt},  // 8x6 -> 4x3 -> 4*2 x 3*2
        {{2, 8, 5}, {3, 2}, 2, Padding::Same, Size2{1, 1}},  // 8x5 -> 4x3 -> (4-1)*2+3-2+1 x (3-1)*2+2-2+1
        {{2, 7, 7}, 3, 2, Padding::Same, Size2{0, 0}},   // 7x7 -> 4x4 -> (4-1)*2+3-2+0: odd sizes come back
        {{2, 7, 5}, 3, 1, Padding::Valid, std::nullopt},  // 7x5 -> 5x3 -> (5-1)+3 x (3-1)+3
        {{2, 7, 5}, 3, 2, Padding::Valid, std::nullopt},  // 7x5 -> 3x2 -> (3-1)*2+3 x (2-1)*2+3
        {{2, 8, 6}, 3, 2, Padding::Valid, Size2{1, 1}},  // 8x6 -> 3x2 -> (3-1)*2+3+1 x (2-1)*2+3+1
    };
    const Index filters = 3;
    for (const auto& c : cases) {
        INFO("input " << c.input.str() << " k=" << c.kernel.str() << " s=" << c.stride.str() << " "
                      << padding_name(c.padding) << " output_padding="
                      << (c.output_padding ? c.output_padding->str() : "none"));
        Layer<double> conv =
            Conv2D<double>(filters, c.kernel, c.stride, c.padding, Init::GlorotUniform, false);
        Rng rng(5);
        conv.build(c.input, rng);
        Layer<double> deconv =
            ConvTranspose2D<double>(c.input.channels, c.kernel, c.stride, c.padding,
                                    c.output_padding, Init::GlorotUniform, false);
        deconv.build(conv.output_shape(), rng);
        REQUIRE(deconv.output_shape() == c.input);
        // Conv2D's (F, C, kh, kw) is ConvTranspose2D's (C_in = F, filters = C, kh, kw).
        deconv.get<ConvTranspose2D<double>>()->weight() = conv.get<Conv2D<double>>()->weight();
        const auto x = test::random_tensor<double>(2, c.input, 6);
        const auto g = test::random_tensor<double>(2, conv.output_shape(), 7);
        Tensor<double> conv_x, deconv_g;
        conv.forward(x, conv_x);
        deconv.forward(g, deconv_g);
        const double left = inner_product(conv_x, g), right = inner_product(x, deconv_g);
        CHECK(std::abs(left - right) < 1e-10 * std::max(1.0, std::abs(left)));
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes, arguments, configuration

TEST_CASE("conv2d: output shapes with same and valid padding", "[conv2d][shape]") {
    CHECK(Conv2D<float>(32, 3).output_shape({1, 28, 28}) == Shape{32, 28, 28});
    CHECK(Conv2D<float>(8, 3, 2).output_shape({3, 32, 32}) == Shape{8, 16, 16});
    CHECK(Conv2D<float>(8, 3, 2).output_shape({3, 7, 5}) ==
          Shape{8, 4, 3});  // ceil(7/2), ceil(5/2)
    CHECK(Conv2D<float>(4, 3, 1, Padding::Valid).output_shape({1, 7, 7}) == Shape{4, 5, 5});
    CHECK(Conv2D<float>(16, {3, 2}, {2, 1}, Padding::Valid).output_shape({2, 9, 6}) ==
          Shape{16, 4, 5});  // (9-3)/2+1, (6-2)/1+1
}

TEST_CASE("conv2d: valid padding with a kernel larger than the input throws ShapeError naming both",
          "[conv2d][shape]") {
    const Conv2D<float> conv(4, 5, 1, Padding::Valid);
    using Catch::Matchers::Contains;
    CHECK_THROWS_AS(conv.output_shape({1, 3, 7}), ShapeError);
    CHECK_THROWS_WITH(conv.output_shape({1, 3, 7}),
                      Contains("Conv2D") && Contains("5x5") && Contains("(1, 3, 7)"));
    Layer<float> layer = Conv2D<float>(4, 5, 1, Padding::Valid);
    Rng rng(0);
    CHECK_THROWS_AS(layer.build({1, 7, 3}, rng), ShapeError);
    CHECK_NOTHROW(layer.build({1, 5, 5}, rng));
}

TEST_CASE("conv_transpose2d: output shapes with and without output_padding",
          "[conv_transpose2d][shape]") {
    CHECK(ConvTranspose2D<float>(8, 3, 2).output_shape({4, 16, 16}) == Shape{8, 32, 32});
    CHECK(ConvTranspose2D<float>(8, 3, 2, Padding::Valid).output_shape({4, 7, 7}) ==
          Shape{8, 15, 15});  // (7-1)*2 + 3
    CHECK(ConvTranspose2D<float>(8, 1, 2, Padding::Valid).output_shape({4, 7, 5}) ==
          Shape{8, 14, 10});  // in*2 + max(1-2, 0)
    CHECK(ConvTranspose2D<float>(8, 3, 1).output_shape({4, 7, 5}) == Shape{8, 7, 5});
    // output_padding: same (in-1)*s + k - 2*(k/2) + op, valid (in-1)*s + k + op.
    CHECK(ConvTranspose2D<float>(8, 3, 2, Padding::Same, 1).output_shape({4, 4, 3}) ==
          Shape{8, 8, 6});  // 3*2 + 3 - 2 + 1, 2*2 + 3 - 2 + 1
    CHECK(ConvTranspose2D<float>(8, {3, 2}, 2, Padding::Same, Size2{0, 1}).output_shape({4, 4, 3}) ==
          Shape{8, 7, 5});  // 3*2 + 3 - 2 + 0, 2*2 + 2 - 2 + 1
    // An explicit 0 is not "no output_padding" (as in Keras): 8 -> 15 brings back an odd size.
    CHECK(ConvTranspose2D<float>(1, 3, 2, Padding::Same, 0).output_shape({4, 8, 8}) == Shape{1, 15, 15});
    CHECK(ConvTranspose2D<float>(1, 3, 2, Padding::Same).output_shape({4, 8, 8}) == Shape{1, 16, 16});
    CHECK(ConvTranspose2D<float>(8, 3, 2, Padding::Valid, 1).output_shape({4, 3, 2}) ==
          Shape{8, 8, 6});  // 2*2 + 3 + 1, 1*2 + 3 + 1
    CHECK(ConvTranspose2D<float>(8, 5, 3, Padding::Valid, Size2{2, 1}).output_shape({1, 2, 2}) ==
          Shape{8, 10, 9});  // 1*3 + 5 + 2, 1*3 + 5 + 1
}

TEST_CASE("conv_transpose2d: invalid output_padding throws ArgumentError",
          "[conv_transpose2d][shape]") {
    CHECK_THROWS_AS(ConvTranspose2D<float>(8, 3, 2, Padding::Same, 2), ArgumentError);
    CHECK_THROWS_WITH(ConvTranspose2D<float>(8, 3, 2, Padding::Same, 2),
                      Catch::Matchers::Contains("ConvTranspose2D") &&
                          Catch::Matchers::Contains("output_padding"));
    CHECK_THROWS_AS(ConvTranspose2D<float>(8, 3, 1, Padding::Same, 1),
                    ArgumentError);  // op >= stride
    CHECK_THROWS_AS(ConvTranspose2D<float>(8, 3, 2, Padding::Same, Size2{0, -1}), ArgumentError);
    CHECK_NOTHROW(ConvTranspose2D<float>(8, 3, {2, 3}, Padding::Same, Size2{1, 2}));
}

TEST_CASE("conv2d and conv_transpose2d: invalid filters, kernel or stride throw ArgumentError",
          "[conv2d][conv_transpose2d]") {
    CHECK_THROWS_AS(Conv2D<float>(0, 3), ArgumentError);
    CHECK_THROWS_WITH(Conv2D<float>(0, 3),
                      Catch::Matchers::Contains("Conv2D") && Catch::Matchers::Contains("filters"));
    CHECK_THROWS_AS(Conv2D<float>(4, {3, 0}), ArgumentError);
    CHECK_THROWS_AS(Conv2D<float>(4, 3, {0, 1}), ArgumentError);
    CHECK_THROWS_AS(ConvTranspose2D<float>(0, 3), ArgumentError);
    CHECK_THROWS_AS(ConvTranspose2D<float>(4, 0), ArgumentError);
    CHECK_THROWS_AS(ConvTranspose2D<float>(4, 3, 0), ArgumentError);
}

TEST_CASE("conv2d and conv_transpose2d: config round trip and parameters",
          "[conv2d][conv_transpose2d]") {
    const Conv2D<float> conv(16, {3, 2}, {2, 1}, Padding::Valid, Init::HeNormal, false);
    const Config conv_config = conv.config();
    CHECK(conv_config.str() ==
          "filters=16 kernel_h=3 kernel_w=2 stride_h=2 stride_w=1 padding=valid init=he_normal "
          "use_bias=0");
    CHECK(Conv2D<float>::from_config(conv_config).config().str() == conv_config.str());

    const ConvTranspose2D<float> deconv(8, 3, 2, Padding::Same, Size2{1, 0});
    const Config deconv_config = deconv.config();
    CHECK(deconv_config.str() ==
          "filters=8 kernel_h=3 kernel_w=3 stride_h=2 stride_w=2 padding=same output_padding_h=1 "
          "output_padding_w=0 init=glorot_uniform use_bias=1");
    CHECK(ConvTranspose2D<float>::from_config(deconv_config).config().str() == deconv_config.str());
    const Config no_padding_config = ConvTranspose2D<float>(8, 3, 2).config();  // none is stored as -1
    CHECK_THAT(no_padding_config.str(), Catch::Matchers::Contains("output_padding_h=-1 output_padding_w=-1"));
    CHECK_FALSE(ConvTranspose2D<float>::from_config(no_padding_config).output_padding().has_value());

    // Weight layouts as PyTorch: Conv2D (F, C*kh*kw), ConvTranspose2D (C, F*kh*kw).
    Layer<float> conv_layer = Conv2D<float>(16, {3, 2});
    Layer<float> deconv_layer = ConvTranspose2D<float>(8, {3, 2});
    Rng rng(1);
    conv_layer.build({5, 9, 9}, rng);
    deconv_layer.build({5, 9, 9}, rng);
    CHECK(conv_layer.get<Conv2D<float>>()->weight().rows() == 16);
    CHECK(conv_layer.get<Conv2D<float>>()->weight().cols() == 5 * 3 * 2);
    CHECK(deconv_layer.get<ConvTranspose2D<float>>()->weight().rows() == 5);
    CHECK(deconv_layer.get<ConvTranspose2D<float>>()->weight().cols() == 8 * 3 * 2);
    CHECK(conv_layer.parameter_count() == 16 * 5 * 3 * 2 + 16);
    CHECK(deconv_layer.parameter_count() == 5 * 8 * 3 * 2 + 8);
    // Glorot-uniform limit sqrt(6 / (fan_in + fan_out)) = sqrt(6 / (5*6 + 16*6)) for Conv2D.
    const double limit = std::sqrt(6.0 / (5 * 6 + 16 * 6));
    CHECK(conv_layer.get<Conv2D<float>>()->weight().cwiseAbs().maxCoeff() <= limit);
    CHECK(conv_layer.get<Conv2D<float>>()->weight().cwiseAbs().maxCoeff() > 0.8 * limit);
}

// ---------------------------------------------------------------------------------------------
// Threads and memory

namespace {

template <class L> struct ThreadRun {
    Tensor<float> y, dx;
    Matrix<float> grad_weight;
    Vector<float> grad_bias;
};

// Forward and backward of `layer_value` (built with a fixed seed) at `threads` threads.
template <class L>
ThreadRun<L> run_at_threads(const L& layer_value, const Tensor<float>& x, int threads) {
    set_num_threads(threads);
    Layer<float> layer = layer_value;
    Rng rng(3);
    layer.build(sample_shape(x), rng);
    ThreadRun<L> run;
    layer.forward(x, run.y);
    const Tensor<float> dy = test::random_tensor<float>(x.dimension(0), layer.output_shape(), 4);
    layer.backward(x, run.y, dy, run.dx);
    layer.backward(x, run.y, dy, run.dx);  // gradients accumulate over two calls
    run.grad_weight = layer.get<L>()->grad_weight();
    run.grad_bias = layer.get<L>()->grad_bias();
    return run;
}

template <class L> void check_thread_independence(const L& layer_value, const Shape& input) {
    ThreadSettingGuard guard;
    const Tensor<float> x = test::random_tensor<float>(37, input, 2);
    const auto one = run_at_threads(layer_value, x, 1);
    const auto two = run_at_threads(layer_value, x, 2);
    CHECK(bit_identical(one.y.data(), two.y.data(), one.y.size()));
    CHECK(bit_identical(one.dx.data(), two.dx.data(), one.dx.size()));
    CHECK(bit_identical(one.grad_weight.data(), two.grad_weight.data(), one.grad_weight.size()));
    CHECK(bit_identical(one.grad_bias.data(), two.grad_bias.data(), one.grad_bias.size()));
}

}  // namespace

TEST_CASE("conv2d: forward and backward are bit-identical with 1 and 2 threads",
          "[conv2d][threads]") {
    check_thread_independence(Conv2D<float>(5, 3, 2), {3, 13, 11});
    check_thread_independence(Conv2D<float>(4, {3, 2}, 1, Padding::Valid), {2, 9, 8});
    check_thread_independence(Conv2D<float>(1, 3), {8, 20, 20});  // direct path, split over threads
    check_thread_independence(Conv2D<float>(6, 3), {8, 20, 20});  // stride 1 through GEMM
}

TEST_CASE("conv_transpose2d: forward and backward are bit-identical with 1 and 2 threads",
          "[conv_transpose2d][threads]") {
    check_thread_independence(ConvTranspose2D<float>(5, 3, 2), {3, 7, 6});
    check_thread_independence(ConvTranspose2D<float>(4, {3, 2}, 2, Padding::Valid, 1), {2, 5, 4});
}


TEST_CASE("conv2d and conv_transpose2d: parameter gradients of two backward calls are twice one call's",
          "[conv2d][conv_transpose2d][gradients]") {
    test::check_gradients_accumulate(Conv2D<double>(5, 3, 2), {3, 9, 7});        // im2col + GEMM
    test::check_gradients_accumulate(Conv2D<double>(2, 3), {3, 9, 7});           // direct path
    test::check_gradients_accumulate(ConvTranspose2D<double>(4, 3, 2), {3, 5, 4});
}

// ---------------------------------------------------------------------------------------------
// A ReLU run by the Conv2D before it (Sequential does this for every such pair it can)

TEMPLATE_TEST_CASE("conv2d: forward_relu and backward_relu give the bits of Conv2D then ReLU, on every case "
                   "off the direct path, at 1 and 2 threads",
                   "[conv2d][relu]", float, double) {
    using T = TestType;
    ThreadSettingGuard guard;
    std::vector<ConvCase> cases = conv_cases;
    cases.push_back({3, 9, 8, 9, 3, 1, Padding::Same});  // stride 1 with more filters than the direct path
    Index fused = 0;
    for (const int threads : {1, 2})
        for (const ConvCase& c : cases) {
            INFO(c.label("Conv2D") << ", " << threads << " threads");
            set_num_threads(threads);
            Layer<T> apart = Conv2D<T>(c.filters, c.kernel, c.stride, c.padding);
            build_with_random_bias<T, Conv2D<T>>(apart, c.input(), 21);
            Layer<T> together = apart;
            Conv2D<T>& conv = *together.template get<Conv2D<T>>();
            if (!conv.fuses_relu()) continue;
            ++fused;
            Layer<T> relu = ReLU<T>();
            Rng rng(24);
            relu.build(apart.output_shape(), rng);
            const Tensor<T> x = test::random_tensor<T>(5, c.input(), 22);
            const Tensor<T> dy = test::random_tensor<T>(5, apart.output_shape(), 23);
            Tensor<T> conv_out, relu_out, relu_grad, dx;
            apart.forward(x, conv_out);
            relu.forward(conv_out, relu_out);
            relu.backward(conv_out, relu_out, dy, relu_grad);
            apart.backward(x, conv_out, relu_grad, dx);

            Tensor<T> fused_out(relu_out.dimensions()), fused_dx(dx.dimensions());
            conv.forward_relu(view(x), view(fused_out));
            conv.backward_relu(view(x), view(std::as_const(fused_out)), view(dy), view(fused_dx));
            const Conv2D<T>& reference = *apart.template get<Conv2D<T>>();
            CHECK(bit_identical(fused_out.data(), relu_out.data(), relu_out.size()));
            CHECK(bit_identical(fused_dx.data(), dx.data(), dx.size()));
            CHECK(bit_identical(conv.grad_weight().data(), reference.grad_weight().data(), reference.grad_weight().size()));
            CHECK(bit_identical(conv.grad_bias().data(), reference.grad_bias().data(), reference.grad_bias().size()));
        }
    CHECK(fused >= 20);  // both thread counts, most cases: the direct path takes stride 1 with <= 4 filters
    Conv2D<T> direct(2, 3);
    CHECK_FALSE(direct.fuses_relu());
}

TEST_CASE("sequential: Conv2D-ReLU pairs give the outputs, input gradient and parameter gradients of the "
          "layers run one by one, bit for bit",
          "[conv2d][relu][sequential]") {
    using T = float;
    Sequential<T> model{Conv2D<T>(8, 3),    ReLU<T>(), MaxPool2D<T>(2), Conv2D<T>(6, 3, 2), ReLU<T>(),
                        UpSample2D<T>(2),   Conv2D<T>(9, 3), ReLU<T>(),  Conv2D<T>(1, 3), Sigmoid<T>()};
    model.build({2, 12, 12});
    CHECK(model.shares_buffer_with_next(0));  // the pairs the model fuses share a buffer
    CHECK(model.shares_buffer_with_next(3));
    const Tensor<T> x = test::random_tensor<T>(6, {2, 12, 12}, 31);
    const Tensor<T> dy = test::random_tensor<T>(6, model.output_shape(), 32);

    // Layer by layer, through each layer's own forward and backward.
    std::vector<Tensor<T>> outputs(static_cast<std::size_t>(model.size()));
    const Tensor<T>* current = &x;
    for (Index i = 0; i < model.size(); ++i) {
        model.layer(i).forward(*current, outputs[static_cast<std::size_t>(i)]);
        current = &outputs[static_cast<std::size_t>(i)];
    }
    model.zero_grad();
    Tensor<T> grad = dy, grad_in;
    for (Index i = model.size() - 1; i >= 0; --i) {
        const Tensor<T>& input = i == 0 ? x : outputs[static_cast<std::size_t>(i - 1)];
        model.layer(i).backward(input, outputs[static_cast<std::size_t>(i)], grad, grad_in);
        grad = grad_in;
    }
    std::vector<std::vector<T>> expected_grads;
    for (const auto& parameter : model.parameters()) expected_grads.emplace_back(parameter.grad, parameter.grad + parameter.size);

    model.zero_grad();
    const auto output = model.forward(view(x));
    Pass pass;
    pass.input_gradient = true;
    const auto dx = model.backward(view(dy), pass);
    const Tensor<T>& expected_output = outputs.back();
    CHECK(bit_identical(output.data(), expected_output.data(), expected_output.size()));
    CHECK(bit_identical(dx.data(), grad.data(), grad.size()));
    const auto parameters = model.parameters();
    REQUIRE(parameters.size() == expected_grads.size());
    for (std::size_t p = 0; p < parameters.size(); ++p) {
        INFO("parameter " << p);
        CHECK(bit_identical(parameters[p].grad, expected_grads[p].data(), parameters[p].size));
    }
}

TEST_CASE("sequential: a ReLU replaced after build by another layer is not fused into the Conv2D before it",
          "[conv2d][relu][sequential]") {
    using T = float;
    Sequential<T> model{Conv2D<T>(8, 3), ReLU<T>(), Conv2D<T>(1, 3)};
    model.build({1, 8, 8});
    Rng rng(41);
    Layer<T> sigmoid = Sigmoid<T>();
    sigmoid.build(model.layer(0).output_shape(), rng);
    model.layer(1) = sigmoid;
    const Tensor<T> x = test::random_tensor<T>(3, {1, 8, 8}, 42);
    Tensor<T> conv_out, sigmoid_out, expected;
    model.layer(0).forward(x, conv_out);
    model.layer(1).forward(conv_out, sigmoid_out);
    model.layer(2).forward(sigmoid_out, expected);
    const auto output = model.forward(view(x));
    CHECK(bit_identical(output.data(), expected.data(), expected.size()));
}
