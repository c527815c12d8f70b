#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

// Plain-loop Dense forward: the obviously-right reference the GEMM path must match.
Tensor<double> dense_reference(const Tensor<double>& x, const Matrix<double>& weight,
                               const Vector<double>& bias) {
    const Index batch = x.dimension(0), inputs = weight.cols(), units = weight.rows();
    Tensor<double> y(batch, units, 1, 1);
    for (Index n = 0; n < batch; ++n)
        for (Index u = 0; u < units; ++u) {
            double sum = bias(u);
            for (Index i = 0; i < inputs; ++i) sum += x.data()[n * inputs + i] * weight(u, i);
            y(n, u, 0, 0) = sum;
        }
    return y;
}

}  // namespace

TEST_CASE("dense: GEMM forward matches plain loops", "[dense]") {
    Layer<double> layer = Dense<double>(7);
    Rng rng(3);
    layer.build({3, 5, 2}, rng);
    auto* dense = layer.get<Dense<double>>();
    for (Index u = 0; u < 7; ++u) dense->bias()(u) = rng.uniform(-1, 1);
    const Tensor<double> x = test::random_tensor<double>(11, {3, 5, 2}, 4);
    Tensor<double> y = make_tensor<double>(11, {7, 1, 1});
    layer.forward(view(x), view(y));
    const Tensor<double> expected = dense_reference(x, dense->weight(), dense->bias());
    CHECK(test::max_abs_difference(y, expected) < 1e-12);
}

TEST_CASE("dense: small batches (column blocks) and large ones (row chunks) match plain loops, "
          "forward and backward", "[dense]") {
    // Below 64 rows the products split by blocks of output columns, from 64 on by rows.
    REQUIRE(Dense<double>::splits_columns(63));
    REQUIRE_FALSE(Dense<double>::splits_columns(64));
    for (const Index batch : {Index(5), Index(63), Index(64), Index(130)}) {
        Layer<double> layer = Dense<double>(150);
        Rng rng(7);
        layer.build({3, 10, 3}, rng);
        auto* dense = layer.get<Dense<double>>();
        for (Index u = 0; u < 150; ++u) dense->bias()(u) = rng.uniform(-1, 1);
        const Tensor<double> x = test::random_tensor<double>(batch, {3, 10, 3}, 8);
        const Tensor<double> dy = test::random_tensor<double>(batch, {150, 1, 1}, 9);
        Tensor<double> y = make_tensor<double>(batch, {150, 1, 1});
        Tensor<double> dx = make_tensor<double>(batch, {3, 10, 3});
        layer.forward(view(x), view(y));
        layer.backward(x, y, dy, dx);
        const Eigen::Map<const Matrix<double>> input(x.data(), batch, 90), grad_output(dy.data(), batch, 150);
        const Matrix<double> expected_dx = grad_output * dense->weight();
        const Matrix<double> expected_grad_weight = grad_output.transpose() * input;
        const Vector<double> expected_grad_bias = grad_output.colwise().sum().transpose();
        INFO("batch " << batch);
        CHECK(test::max_abs_difference(y, dense_reference(x, dense->weight(), dense->bias())) < 1e-12);
        CHECK((Eigen::Map<const Matrix<double>>(dx.data(), batch, 90) - expected_dx).cwiseAbs().maxCoeff() < 1e-12);
        CHECK((dense->grad_weight() - expected_grad_weight).cwiseAbs().maxCoeff() < 1e-11);
        CHECK((dense->grad_bias() - expected_grad_bias).cwiseAbs().maxCoeff() < 1e-11);
    }
}

TEST_CASE("dense: gradient check (input, weight, bias)", "[dense][gradcheck]") {
    Layer<double> layer = Dense<double>(5);
    const auto result =
        test::expect_gradients(layer, test::random_tensor<double>(3, {2, 3, 3}, 1), "Dense(5)");
    CHECK(result.entries.size() == 3);
    Layer<double> no_bias = Dense<double>(4, Init::HeNormal, false);
    CHECK(test::expect_gradients(no_bias, test::random_tensor<double>(2, {7, 1, 1}, 2),
                                 "Dense(4, no bias)").entries.size() == 2);
}

TEST_CASE("dense: wrong input shape names layer, expected and actual shape", "[dense][shape]") {
    Layer<float> layer = Dense<float>(4);
    Rng rng(0);
    layer.build({1, 6, 1}, rng);
    const Tensor<float> x = make_tensor<float>(2, {1, 5, 1});
    Tensor<float> y = make_tensor<float>(2, {4, 1, 1});
    CHECK_THROWS_MATCHES(layer.forward(view(x), view(y)), ShapeError,
                         Catch::Matchers::Message(
                             "Dense forward: expected input of shape (2, 1, 6, 1), got (2, 1, 5, 1)"));
}

TEST_CASE("activations: gradient check of each activation", "[activations][gradcheck]") {
    const auto x = test::random_tensor_away_from_zero<double>(2, {3, 5, 4}, 11);
    Layer<double> relu = ReLU<double>(), leaky = LeakyReLU<double>(0.2), sigmoid = Sigmoid<double>(),
                  tanh = Tanh<double>(), softplus = Softplus<double>(), identity = Identity<double>();
    test::expect_gradients(relu, x, "ReLU");
    test::expect_gradients(leaky, x, "LeakyReLU(0.2)");
    test::expect_gradients(sigmoid, x, "Sigmoid");
    test::expect_gradients(tanh, x, "Tanh");
    test::expect_gradients(softplus, x, "Softplus");
    test::expect_gradients(identity, x, "Identity");
}

TEST_CASE("activations: forward values", "[activations]") {
    Tensor<double> x(1, 1, 1, 5);
    x.setValues({{{{-800.0, -1.0, 0.0, 2.0, 800.0}}}});
    auto run = [&](Layer<double> layer) {
        Rng rng(0);
        layer.build(sample_shape(x), rng);
        Tensor<double> y;
        layer.forward(x, y);
        return y;
    };
    const auto relu = run(ReLU<double>());
    CHECK(relu(0, 0, 0, 0) == 0.0);
    CHECK(relu(0, 0, 0, 3) == 2.0);
    const auto leaky = run(LeakyReLU<double>(0.1));
    CHECK(leaky(0, 0, 0, 1) == Approx(-0.1));
    const auto sigmoid = run(Sigmoid<double>());
    CHECK(sigmoid(0, 0, 0, 0) >= 0.0);  // 1 / (1 + exp(800)): exp overflows, the result is ~0, not NaN
    CHECK(sigmoid(0, 0, 0, 0) < 1e-300);
    CHECK(sigmoid(0, 0, 0, 2) == 0.5);
    CHECK(sigmoid(0, 0, 0, 4) == 1.0);
    CHECK(sigmoid(0, 0, 0, 3) == Approx(1.0 / (1.0 + std::exp(-2.0))));
    const auto softplus = run(Softplus<double>());
    CHECK(softplus(0, 0, 0, 4) == 800.0);  // no overflow
    CHECK(softplus(0, 0, 0, 2) == Approx(std::log(2.0)));
    CHECK(softplus(0, 0, 0, 0) >= 0.0);
    const auto tanh = run(Tanh<double>());
    CHECK(tanh(0, 0, 0, 3) == Approx(std::tanh(2.0)));
}

TEST_CASE("activations: float and double instantiations agree", "[activations]") {
    const auto xd = test::random_tensor<double>(2, {2, 3, 3}, 5, -4, 4);
    Tensor<float> xf = xd.cast<float>();
    Layer<double> d = Sigmoid<double>();
    Layer<float> f = Sigmoid<float>();
    Rng rng(0);
    d.build(sample_shape(xd), rng);
    f.build(sample_shape(xf), rng);
    Tensor<double> yd;
    Tensor<float> yf;
    d.forward(xd, yd);
    f.forward(xf, yf);
    CHECK(test::max_abs_difference<double>(yf.cast<double>(), yd) < 1e-6);
}

namespace {

// A layer whose backward is deliberately wrong (dx = 2 dy instead of dy): the checker must notice.
template <class T> struct BrokenIdentity {
    using Scalar = T;
    static constexpr const char* type_name = "BrokenIdentity";
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) { y = x; }
    void backward(ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        dx = dy * T(2);
    }
};

}  // namespace

TEST_CASE("check_gradients: detects a wrong backward", "[gradcheck]") {
    Layer<double> layer = BrokenIdentity<double>();
    const auto result = check_gradients(layer, test::random_tensor<double>(2, {1, 3, 3}, 1));
    CHECK_FALSE(result.passed());
    CHECK(result.max_relative_error > 0.4);
}

TEST_CASE("dense: bias gradient sums add each column in Eigen's vectorized order on every path, "
          "Eigen's own bits where it vectorizes", "[dense][gradients]") {
    Rng rng(31);
    for (Index rows : {1, 2, 3, 4, 5, 6, 8, 9, 13, 64, 257}) {
        for (Index columns : {1, 15, 16, 47, 64, 65, 112, 130}) {
            INFO(rows << " rows, " << columns << " columns");
            Matrix<float> grad_output(rows, columns + 3);  // a block of columns 1..columns of a wider matrix
            for (Index i = 0; i < grad_output.size(); ++i) grad_output.data()[i] = static_cast<float>(rng.normal(0.0, 1.0));
            Vector<float> sums = Vector<float>::Constant(columns, 0.5f);
            detail::add_column_sums(grad_output.data() + 1, rows, columns, grad_output.cols(), sums.data());
            // the order: row 0, + ((r + r+1) + (r+2 + r+3)) from r = 1 while r < (rows-1) & ~3, + the rest
            Index differ = 0;
            for (Index c = 0; c < columns; ++c) {
                float total = grad_output(0, c + 1);
                Index r = 1;
                for (; r < ((rows - 1) & ~Index(3)); r += 4)
                    total += (grad_output(r, c + 1) + grad_output(r + 1, c + 1)) +
                             (grad_output(r + 2, c + 1) + grad_output(r + 3, c + 1));
                for (; r < rows; ++r) total += grad_output(r, c + 1);
                differ += !test::same_float_bits(sums(c), 0.5f + total);
            }
            CHECK(differ == 0);
            // Eigen's packets cover the columns below a multiple of 16 in every build (4, 8 or 16 floats)
            const Index packed = columns / 16 * 16;
            const Vector<float> eigen =
                (Vector<float>::Constant(columns, 0.5f) + grad_output.middleCols(1, columns).colwise().sum().transpose());
            for (Index c = 0; c < packed; ++c) differ += !test::same_float_bits(sums(c), eigen(c));
            CHECK(differ == 0);
        }
    }
}

TEST_CASE("dense: weight and bias gradients accumulate over several backward calls, both splits",
          "[dense][gradients]") {
    test::check_gradients_accumulate(latent::Dense<double>(70), {3, 2, 2}, 5);    // column blocks (batch < 64)
    test::check_gradients_accumulate(latent::Dense<double>(9), {3, 2, 2}, 130);   // row chunks
}

TEST_CASE("sigmoid: the SSE2, AVX2 and AVX-512 paths give the same bits as each other and as "
          "Eigen's SSE2 code, tails and special values included", "[activations][kernels]") {
    std::vector<float> range;
    for (float v = -100.0f; v <= 100.0f; v += 0.0371f) range.push_back(v);
    using limits = std::numeric_limits<float>;
    const std::vector<float> x = test::with_any_bit_patterns(
        range, 7, {0.0f, -0.0f, limits::infinity(), -limits::infinity(), limits::quiet_NaN(), limits::denorm_min(),
                   88.72f, -88.72f});
    const Index count = static_cast<Index>(x.size());

    std::vector<float> portable(x.size());
    kernels::logistic(Isa::Portable, x.data(), portable.data(), count);
    Index inaccurate = 0;
    for (Index i = 0; i < count; ++i) {
        const float value = x[static_cast<std::size_t>(i)], y = portable[static_cast<std::size_t>(i)];
        const double exact = 1.0 / (1.0 + std::exp(-static_cast<double>(value)));
        if (std::isnan(value)) inaccurate += !std::isnan(y);
        else if (exact > 1e-30) inaccurate += std::abs(y - exact) > 3e-7 * exact;
        else inaccurate += !(y >= 0.0f && y < 1e-30f);
    }
    CHECK(inaccurate == 0);
#if defined(__SSE2__) && !defined(__FMA__)
    // Eigen's own vectorised code, in a build without FMA (as the default x86-64 one).
    const Eigen::Map<const Eigen::ArrayXf> in(x.data(), count);
    const Eigen::ArrayXf eigen = (1.0f + (-in).exp()).inverse();
    Index differ = 0;
    for (Index i = 0; i < count; ++i) differ += !test::same_float_bits(portable[static_cast<std::size_t>(i)], eigen[i]);
    CHECK(differ == 0);
#endif
    test::check_vector_paths_match_portable(
        [](Isa isa, const float* in, float* out, Index n) { kernels::logistic(isa, in, out, n); }, x, portable);
}

namespace {

// `layer`'s forward and backward over `x` (with upstream gradient `dy`) as flat arrays.
template <class Activation>
void run_activation(Activation& layer, const std::vector<float>& x, const std::vector<float>& dy,
                    std::vector<float>& y, std::vector<float>& dx) {
    const auto count = static_cast<Index>(x.size());
    y.assign(x.size(), 0.0f);
    dx.assign(x.size(), 0.0f);
    const ConstTensorView<float> in(x.data(), count, 1, 1, 1);
    layer.forward(in, TensorView<float>(y.data(), count, 1, 1, 1));
    layer.backward(in, ConstTensorView<float>(y.data(), count, 1, 1, 1), ConstTensorView<float>(dy.data(), count, 1, 1, 1),
                   TensorView<float>(dx.data(), count, 1, 1, 1));
}

}  // namespace

TEST_CASE("relu and leaky relu: forward and backward are the scalar formulas bit for bit, NaN, signed "
          "zeros, infinities and denormals included", "[activations][kernels]") {
    using limits = std::numeric_limits<float>;
    const std::initializer_list<float> specials{0.0f, -0.0f, limits::infinity(), -limits::infinity(),
                                                limits::quiet_NaN(), -limits::quiet_NaN(), limits::denorm_min(),
                                                -limits::denorm_min(), 1.0f, -1.0f};
    const std::vector<float> x = test::with_any_bit_patterns({}, 3, specials);
    std::vector<float> dy = test::with_any_bit_patterns({}, 4, specials);
    std::rotate(dy.begin(), dy.begin() + 5, dy.end());  // every special x meets other dy values
    std::vector<float> y, dx;
    const auto check = [&](auto forward, auto factor) {
        Index wrong_y = 0, wrong_dx = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
            wrong_y += !test::same_float_bits(y[i], forward(x[i]));
            wrong_dx += !test::same_float_bits(dx[i], dy[i] * factor(x[i], y[i]));
        }
        CHECK(wrong_y == 0);
        CHECK(wrong_dx == 0);
    };
    SECTION("ReLU: y = max(x, 0) keeping NaN and -0, dx = dy * [y > 0]") {
        ReLU<float> relu;
        run_activation(relu, x, dy, y, dx);
        check([](float v) { return std::max(v, 0.0f); }, [](float, float out) { return out > 0.0f ? 1.0f : 0.0f; });
    }
    for (const float alpha : {0.1f, -0.5f}) {  // y decides for alpha > 0, x otherwise
        DYNAMIC_SECTION("LeakyReLU(" << alpha << ")") {
            LeakyReLU<float> leaky(alpha);
            run_activation(leaky, x, dy, y, dx);
            check([alpha](float v) { return v > 0.0f ? v : alpha * v; },
                  [alpha](float in, float out) { return (alpha > 0.0f ? out : in) > 0.0f ? 1.0f : alpha; });
        }
    }
}
