#include <catch2/catch.hpp>

#include <latent/latent.hpp>
#include <latent/layers/max_pool2d.hpp>
#include <latent/layers/reshape.hpp>
#include <latent/layers/upsample2d.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "helpers.hpp"
#include "layer_cases.hpp"

using namespace latent;

namespace {

// A (1, 1, height, width) tensor holding `values` in row-major order.
template <class T> Tensor<T> grid(Index height, Index width, const std::vector<double>& values) {
    Tensor<T> tensor = make_tensor<T>(1, {1, height, width});
    REQUIRE(static_cast<Index>(values.size()) == tensor.size());
    for (Index i = 0; i < tensor.size(); ++i) tensor.data()[i] = static_cast<T>(values[i]);
    return tensor;
}

// Values 0.05 apart, in a seeded random order: no two cells of a pool window are within a
// finite-difference step of each other, so the arg-max never flips during a gradient check.
Tensor<double> distinct_tensor(Index batch, const Shape& shape, std::uint64_t seed) {
    Tensor<double> tensor = make_tensor<double>(batch, shape);
    std::vector<double> values(static_cast<std::size_t>(tensor.size()));
    for (std::size_t k = 0; k < values.size(); ++k)
        values[k] = 0.05 * (static_cast<double>(k) - static_cast<double>(values.size()) / 2);
    Rng rng(seed);
    latent::shuffle(values.begin(), values.end(), rng);
    std::copy(values.begin(), values.end(), tensor.data());
    return tensor;
}

template <class T> void build(Layer<T>& layer, const Tensor<T>& x) {
    Rng rng(0);
    layer.build(sample_shape(x), rng);
}

template <class T> Tensor<T> run_forward(Layer<T>& layer, const Tensor<T>& x) {
    if (!layer.is_built()) build(layer, x);
    Tensor<T> y;
    layer.forward(x, y);
    return y;
}

template <class T>
Tensor<T> run_backward(Layer<T>& layer, const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy) {
    Tensor<T> dx;
    layer.backward(x, y, dy, dx);
    return dx;
}

template <class T> bool bit_identical(const Tensor<T>& a, const Tensor<T>& b) {
    return a.dimensions() == b.dimensions() &&
           std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.size())) == 0;
}

double dot(const Tensor<double>& a, const Tensor<double>& b) {
    double sum = 0;
    for (Index i = 0; i < a.size(); ++i) sum += a.data()[i] * b.data()[i];
    return sum;
}

// Bilinear upsampling written straight from the formula, one output pixel at a time:
//   s = max((o + 0.5) / f - 0.5, 0), i0 = floor(s), i1 = min(i0 + 1, n - 1), w1 = s - i0.
Tensor<double> bilinear_reference(const Tensor<double>& x, Index factor_h, Index factor_w) {
    const Index batch = x.dimension(0), channels = x.dimension(1), in_h = x.dimension(2),
                in_w = x.dimension(3);
    Tensor<double> y(batch, channels, in_h * factor_h, in_w * factor_w);
    for (Index n = 0; n < batch; ++n)
        for (Index c = 0; c < channels; ++c)
            for (Index oh = 0; oh < in_h * factor_h; ++oh)
                for (Index ow = 0; ow < in_w * factor_w; ++ow) {
                    const double sh = std::max((oh + 0.5) / double(factor_h) - 0.5, 0.0);
                    const double sw = std::max((ow + 0.5) / double(factor_w) - 0.5, 0.0);
                    const Index h0 = Index(std::floor(sh)), w0 = Index(std::floor(sw));
                    const Index h1 = std::min(h0 + 1, in_h - 1), w1 = std::min(w0 + 1, in_w - 1);
                    const double a = sh - double(h0), b = sw - double(w0);
                    y(n, c, oh, ow) = (1 - a) * (1 - b) * x(n, c, h0, w0) + (1 - a) * b * x(n, c, h0, w1) +
                                      a * (1 - b) * x(n, c, h1, w0) + a * b * x(n, c, h1, w1);
                }
    return y;
}

// Sets the thread count for one scope and restores the previous setting, even on failure.
struct ThreadCount {
    explicit ThreadCount(int count) : saved(num_threads()) { set_num_threads(count); }
    ~ThreadCount() { set_num_threads(saved); }
    int saved;
};

}  // namespace

// ---------------------------------------------------------------------------------- MaxPool2D

TEMPLATE_TEST_CASE("max_pool2d: 2x2 pool on a 4x4 input, hand-computed maxima and gradient routing",
                   "[max_pool2d]", float, double) {
    // Windows (2x2, stride 2):      top-left {1,3,4,2} -> 4 at (1,0)   top-right {2,0,1,5} -> 5 at (1,3)
    //   1  3 |  2  0                bottom-left {0,-1,6,2} -> 6 at (3,0)
    //   4  2 |  1  5                bottom-right {9,7,3,8} -> 9 at (2,2)
    //   0 -1 |  9  7
    //   6  2 |  3  8
    const auto x = grid<TestType>(4, 4, {1, 3, 2, 0, 4, 2, 1, 5, 0, -1, 9, 7, 6, 2, 3, 8});
    Layer<TestType> layer = MaxPool2D<TestType>(2);
    const auto y = run_forward(layer, x);
    REQUIRE(sample_shape(y) == Shape{1, 2, 2});
    CHECK(y(0, 0, 0, 0) == 4);
    CHECK(y(0, 0, 0, 1) == 5);
    CHECK(y(0, 0, 1, 0) == 6);
    CHECK(y(0, 0, 1, 1) == 9);
    CHECK(layer.template get<MaxPool2D<TestType>>()->argmax() == std::vector<Index>{4, 7, 12, 10});

    // dy = [[0.5, -1], [2, 3]] lands on the arg-max cells only; every other dx is 0.
    const auto dy = grid<TestType>(2, 2, {0.5, -1, 2, 3});
    const auto dx = run_backward(layer, x, y, dy);
    const auto expected = grid<TestType>(4, 4, {0, 0, 0, 0, 0.5, 0, 0, -1, 0, 0, 3, 0, 2, 0, 0, 0});
    CHECK(test::max_abs_difference(dx, expected) == 0.0);
}

TEMPLATE_TEST_CASE("max_pool2d: ties send the gradient to the first maximum in row-major order",
                   "[max_pool2d]", float, double) {
    // Left window {5,5 / 5,1}: the three 5s tie, the first in row-major order is (0,0).
    // Right window {1,7 / 7,7}: the three 7s tie, the first is (0,3).
    const auto x = grid<TestType>(2, 4, {5, 5, 1, 7, 5, 1, 7, 7});
    Layer<TestType> layer = MaxPool2D<TestType>(2);
    const auto y = run_forward(layer, x);
    CHECK(y(0, 0, 0, 0) == 5);
    CHECK(y(0, 0, 0, 1) == 7);
    const auto dx = run_backward(layer, x, y, grid<TestType>(1, 2, {1, 2}));
    CHECK(test::max_abs_difference(dx, grid<TestType>(2, 4, {1, 0, 0, 2, 0, 0, 0, 0})) == 0.0);
}

TEMPLATE_TEST_CASE("max_pool2d: the first maximum wins on ties in the general path",
                   "[max_pool2d]", float, double) {
    // Pool 3 (not the 2x2 fast path) on {1,5,5 / 5,2,5 / 0,5,5}: the six 5s tie, the first in
    // row-major order is (0,1).
    Layer<TestType> pool3 = MaxPool2D<TestType>(3);
    const auto x = grid<TestType>(3, 3, {1, 5, 5, 5, 2, 5, 0, 5, 5});
    const auto y = run_forward(pool3, x);
    CHECK(y(0, 0, 0, 0) == 5);
    CHECK(pool3.template get<MaxPool2D<TestType>>()->argmax() == std::vector<Index>{1});
    const auto dx = run_backward(pool3, x, y, grid<TestType>(1, 1, {1}));
    CHECK(test::max_abs_difference(dx, grid<TestType>(3, 3, {0, 1, 0, 0, 0, 0, 0, 0, 0})) == 0.0);

    // Pool 2, stride 1 on a constant 2x3 input: window (0,0) takes (0,0), window (0,1) takes (0,1).
    Layer<TestType> overlapping = MaxPool2D<TestType>(2, 1);
    const auto flat = grid<TestType>(2, 3, {5, 5, 5, 5, 5, 5});
    const auto flat_y = run_forward(overlapping, flat);
    const auto flat_dx = run_backward(overlapping, flat, flat_y, grid<TestType>(1, 2, {1, 2}));
    CHECK(test::max_abs_difference(flat_dx, grid<TestType>(2, 3, {1, 2, 0, 0, 0, 0})) == 0.0);
}

TEMPLATE_TEST_CASE("max_pool2d: overlapping windows (stride 1) add their gradients",
                   "[max_pool2d]", float, double) {
    // x = [1 3 2], pool 1x2 stride 1: windows {1,3} and {3,2} both take the 3 at index 1,
    // so dx = [0, dy0 + dy1, 0] = [0, 0.5 + 0.25, 0].
    const auto x = grid<TestType>(1, 3, {1, 3, 2});
    Layer<TestType> layer = MaxPool2D<TestType>(Size2(1, 2), 1);
    const auto y = run_forward(layer, x);
    CHECK(test::max_abs_difference(y, grid<TestType>(1, 2, {3, 3})) == 0.0);
    const auto dx = run_backward(layer, x, y, grid<TestType>(1, 2, {0.5, 0.25}));
    CHECK(test::max_abs_difference(dx, grid<TestType>(1, 3, {0, 0.75, 0})) == 0.0);
}

TEMPLATE_TEST_CASE("max_pool2d: same padding on 3x3 -> 2x2 pads bottom/right with -infinity",
                   "[max_pool2d]", float, double) {
    // Pool 2, stride 2, same: out = ceil(3 / 2) = 2, pad total = (2 - 1) * 2 + 2 - 3 = 1, all of
    // it after (bottom/right). The windows are
    //   (0,0) rows 0-1, cols 0-1: {-1,-2,-4,-5} -> -1     (0,1) rows 0-1, col 2: {-3,-6} -> -3
    //   (1,0) row 2, cols 0-1:    {-7,-8} -> -7           (1,1) row 2, col 2:    {-9}    -> -9
    // Zero padding would give 0 in three cells; padding at the top/left would give -1, -2, -4, -5.
    const auto x = grid<TestType>(3, 3, {-1, -2, -3, -4, -5, -6, -7, -8, -9});
    Layer<TestType> layer = MaxPool2D<TestType>(2, 0, Padding::Same);
    const auto y = run_forward(layer, x);
    CHECK(test::max_abs_difference(y, grid<TestType>(2, 2, {-1, -3, -7, -9})) == 0.0);
    const auto dx = run_backward(layer, x, y, grid<TestType>(2, 2, {1, 2, 3, 4}));
    CHECK(test::max_abs_difference(dx, grid<TestType>(3, 3, {1, 0, 2, 0, 0, 0, 3, 0, 4})) == 0.0);
}

TEMPLATE_TEST_CASE("max_pool2d: same padding with an odd padding total puts the smaller half before",
                   "[max_pool2d]", float, double) {
    // The 2x2 stride-2 path never pads before (its windows start at 2 * oh), so these pools take
    // the general path. On inputs rising row by row each window's maximum is its bottom-right
    // cell inside the input, which shows where the window starts.
    //   Pool 3, stride 2 on 4x4: out = ceil(4 / 2) = 2, total = (2 - 1) * 2 + 3 - 4 = 1: 0 before,
    //   windows rows/cols 0-2 and 2-3 -> x(2,2), x(2,3), x(3,2), x(3,3) = 11, 12, 15, 16.
    //   (One pixel before would give x(1,1), x(1,3), x(3,1), x(3,3) = 6, 8, 14, 16.)
    const auto square = grid<TestType>(4, 4, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
    Layer<TestType> pool3 = MaxPool2D<TestType>(3, 2, Padding::Same);
    CHECK(test::max_abs_difference(run_forward(pool3, square), grid<TestType>(2, 2, {11, 12, 15, 16})) == 0.0);
    CHECK(pool3.template get<MaxPool2D<TestType>>()->argmax() == std::vector<Index>{10, 11, 14, 15});
    //   Pool 1x4, stride 1 on 1x5: out = 5, total = (5 - 1) * 1 + 4 - 5 = 3: 1 before, 2 after, so
    //   window ow covers cols ow - 1 .. ow + 2 -> x(min(ow + 2, 4)) = 3, 4, 5, 5, 5.
    //   (Two before would give 2, 3, 4, 5, 5.)
    const auto row = grid<TestType>(1, 5, {1, 2, 3, 4, 5});
    Layer<TestType> pool1x4 = MaxPool2D<TestType>(Size2(1, 4), 1, Padding::Same);
    CHECK(test::max_abs_difference(run_forward(pool1x4, row), grid<TestType>(1, 5, {3, 4, 5, 5, 5})) == 0.0);
}

TEST_CASE("max_pool2d: arg-max indices are flat within the sample, across channels",
          "[max_pool2d]") {
    // Channel 1 of a (2, 2, 2) sample starts at flat index 4; its maximum 8 sits at (1, 0) -> 6.
    Tensor<double> x(2, 2, 2, 2);
    x.setValues({{{{1, 2}, {3, 4}}, {{5, 6}, {8, 7}}}, {{{9, 1}, {1, 1}}, {{1, 1}, {1, 9}}}});
    Layer<double> layer = MaxPool2D<double>(2);
    run_forward(layer, x);
    CHECK(layer.get<MaxPool2D<double>>()->argmax() == std::vector<Index>{3, 6, 0, 7});
}

TEST_CASE("max_pool2d: 7x7 input, pool 2 gives 4x4 with same padding and 3x3 with valid",
          "[max_pool2d][shape]") {
    CHECK(MaxPool2D<float>(2, 0, Padding::Same).output_shape({5, 7, 7}) == Shape{5, 4, 4});
    CHECK(MaxPool2D<float>(2).output_shape({5, 7, 7}) == Shape{5, 3, 3});
    CHECK(MaxPool2D<float>(2).padding() == Padding::Valid);  // Keras's default
    CHECK(MaxPool2D<float>(3, 2, Padding::Same).output_shape({1, 9, 6}) == Shape{1, 5, 3});
    CHECK(MaxPool2D<float>(Size2(2, 3), Size2(1, 2)).output_shape({1, 7, 5}) == Shape{1, 6, 2});
}

TEST_CASE("max_pool2d: a valid pool larger than the input throws ShapeError naming both shapes",
          "[max_pool2d][shape]") {
    CHECK_THROWS_MATCHES(MaxPool2D<float>(3).output_shape({2, 2, 2}), ShapeError,
                         Catch::Matchers::Message("MaxPool2D: pool 3x3 with valid padding does not "
                                                  "fit input (2, 2, 2) (output would be (2, 0, 0))"));
    Layer<float> layer = MaxPool2D<float>(Size2(1, 4));
    Rng rng(0);
    CHECK_THROWS_AS(layer.build({1, 5, 3}, rng), ShapeError);
    // With same padding the window is clipped instead: 2x2 input, pool 3 -> 1x1.
    CHECK(MaxPool2D<float>(3, 0, Padding::Same).output_shape({2, 2, 2}) == Shape{2, 1, 1});
}

TEST_CASE("max_pool2d: invalid pool or stride throws ArgumentError", "[max_pool2d]") {
    CHECK_THROWS_AS(MaxPool2D<float>(0), ArgumentError);
    CHECK_THROWS_AS(MaxPool2D<float>(Size2(2, 0)), ArgumentError);
    CHECK_THROWS_AS(MaxPool2D<float>(2, Size2(-1, 1)), ArgumentError);
    CHECK(MaxPool2D<float>(Size2(2, 3)).stride() == Size2(2, 3));  // stride 0 = pool size
    CHECK(MaxPool2D<float>(Size2(2, 3), Size2(0, 1)).stride() == Size2(2, 1));
}

TEST_CASE("max_pool2d: backward without a matching forward throws ShapeError", "[max_pool2d]") {
    Layer<double> layer = MaxPool2D<double>(2);
    const auto x = test::random_tensor<double>(2, {1, 4, 4}, 1);
    build(layer, x);
    Tensor<double> y = make_tensor<double>(2, {1, 2, 2}), dx;
    CHECK_THROWS_AS(layer.backward(x, y, y, dx), ShapeError);
}

TEST_CASE("max_pool2d: gradient checks, pool 2 and 3, stride 1 and 2, same and valid",
          "[max_pool2d][gradcheck]") {
    std::uint64_t seed = 100;
    for (const test::PoolCase& c : test::pool_cases) {
        Layer<double> layer = MaxPool2D<double>(c.pool, c.stride, c.padding);
        const auto result = test::expect_gradients(layer, distinct_tensor(2, c.input, seed++), c.label);
        CHECK(result.entries.size() == 1);  // input only: no parameters
    }
}

TEMPLATE_TEST_CASE("max_pool2d: the 2x2 stride-2 fast path matches plain loops, ties and odd sizes included",
                   "[max_pool2d]", float, double) {
    // Values from a set of 4 make ties common; the reference scans each window in row-major
    // order, keeps the first strict maximum and routes dy there.
    for (const Padding padding : {Padding::Same, Padding::Valid})
        for (const Shape& input : {Shape{3, 7, 5}, Shape{2, 8, 6}, Shape{1, 1, 3}, Shape{2, 28, 28}}) {
            if (padding == Padding::Valid && input.height < 2) continue;
            Tensor<TestType> x = make_tensor<TestType>(3, input);
            Rng rng(static_cast<std::uint64_t>(input.height * 10 + input.width));
            for (Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<TestType>(rng.below(4));
            Layer<TestType> layer = MaxPool2D<TestType>(2, 2, padding);
            const Tensor<TestType> y = run_forward(layer, x);
            const Tensor<TestType> dy = test::random_tensor<TestType>(3, layer.output_shape(), 5);
            const Tensor<TestType> dx = run_backward(layer, x, y, dy);
            Tensor<TestType> expected_dx = make_tensor<TestType>(3, input);
            expected_dx.setZero();
            bool all_match = y.dimension(2) == (input.height + (padding == Padding::Same)) / 2 &&
                             y.dimension(3) == (input.width + (padding == Padding::Same)) / 2;
            for (Index n = 0; n < 3; ++n)
                for (Index c = 0; c < input.channels; ++c)
                    for (Index oh = 0; oh < y.dimension(2); ++oh)
                        for (Index ow = 0; ow < y.dimension(3); ++ow) {
                            Index best_h = 2 * oh, best_w = 2 * ow;
                            for (Index h = 2 * oh; h < std::min(2 * oh + 2, input.height); ++h)
                                for (Index w = 2 * ow; w < std::min(2 * ow + 2, input.width); ++w)
                                    if (x(n, c, h, w) > x(n, c, best_h, best_w)) best_h = h, best_w = w;
                            all_match = all_match && y(n, c, oh, ow) == x(n, c, best_h, best_w);
                            expected_dx(n, c, best_h, best_w) = dy(n, c, oh, ow);
                        }
            INFO("input " << input.str() << (padding == Padding::Same ? " same" : " valid"));
            CHECK(all_match);
            CHECK(bit_identical(dx, expected_dx));
        }
}

// --------------------------------------------------------------------------------- UpSample2D

TEMPLATE_TEST_CASE("upsample2d: nearest repeats each pixel into an fh x fw block, backward sums it",
                   "[upsample2d]", float, double) {
    // x = [[1, 2], [3, 4]], factor (2, 3): rows 0-1 are [1 1 1 2 2 2], rows 2-3 are [3 3 3 4 4 4].
    const auto x = grid<TestType>(2, 2, {1, 2, 3, 4});
    Layer<TestType> layer = UpSample2D<TestType>(Size2(2, 3));
    const auto y = run_forward(layer, x);
    CHECK(test::max_abs_difference(y, grid<TestType>(4, 6, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,  //
                                                            3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4})) == 0.0);
    // dy[oh, ow] = 6 oh + ow (0..23). dx[i, j] sums the block rows 2i..2i+1, cols 3j..3j+2:
    //   dx[0,0] = (0+1+2) + (6+7+8) = 24       dx[0,1] = (3+4+5) + (9+10+11) = 42
    //   dx[1,0] = (12+13+14) + (18+19+20) = 96  dx[1,1] = (15+16+17) + (21+22+23) = 114
    std::vector<double> ramp(24);
    for (std::size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<double>(i);
    const auto dx = run_backward(layer, x, y, grid<TestType>(4, 6, ramp));
    CHECK(test::max_abs_difference(dx, grid<TestType>(2, 2, {24, 42, 96, 114})) == 0.0);
}

TEMPLATE_TEST_CASE("upsample2d: bilinear 2x2 -> 4x4 matches the half-pixel formula by hand",
                   "[upsample2d]", float, double) {
    // Along each axis (n = 2, f = 2), s = max((o + 0.5) / 2 - 0.5, 0):
    //   o = 0: s = -0.25 -> 0     i0 = 0, i1 = 1, w1 = 0     -> 1.00 x[0]
    //   o = 1: s =  0.25          i0 = 0, i1 = 1, w1 = 0.25  -> 0.75 x[0] + 0.25 x[1]
    //   o = 2: s =  0.75          i0 = 0, i1 = 1, w1 = 0.75  -> 0.25 x[0] + 0.75 x[1]
    //   o = 3: s =  1.25          i0 = 1, i1 = 1, w1 = 0.25  -> 1.00 x[1]
    // so the interpolated coordinate is r(o) = 0, 0.25, 0.75, 1. The input x[i, j] = 2i + j is
    // linear, hence y[oh, ow] = 2 r(oh) + r(ow):
    //   oh = 0: 0   + (0, .25, .75, 1) = 0    0.25 0.75 1
    //   oh = 1: 0.5 + (...)            = 0.5  0.75 1.25 1.5
    //   oh = 2: 1.5 + (...)            = 1.5  1.75 2.25 2.5
    //   oh = 3: 2   + (...)            = 2    2.25 2.75 3
    const auto x = grid<TestType>(2, 2, {0, 1, 2, 3});
    Layer<TestType> layer = UpSample2D<TestType>(2, Interpolation::Bilinear);
    const auto y = run_forward(layer, x);
    const auto expected = grid<TestType>(4, 4, {0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5,  //
                                                1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3});
    CHECK(test::max_abs_difference(y, expected) < 1e-6);

    // Backward, dy = 1 at (1, 2) only: the row weights of oh = 1 are (0.75, 0.25), the column
    // weights of ow = 2 are (0.25, 0.75), so dx = [[.75*.25, .75*.75], [.25*.25, .25*.75]].
    auto dy = grid<TestType>(4, 4, std::vector<double>(16, 0.0));
    dy(0, 0, 1, 2) = 1;
    auto dx = run_backward(layer, x, y, dy);
    CHECK(test::max_abs_difference(dx, grid<TestType>(2, 2, {0.1875, 0.5625, 0.0625, 0.1875})) < 1e-6);
    // dy = 1 everywhere: per axis each input gets 1 + .75 + .25 + 0 = 2 (or 0 + .25 + .75 + 1),
    // so every dx is 2 * 2 = 4.
    dx = run_backward(layer, x, y, grid<TestType>(4, 4, std::vector<double>(16, 1.0)));
    CHECK(test::max_abs_difference(dx, grid<TestType>(2, 2, {4, 4, 4, 4})) < 1e-6);
}

TEST_CASE("upsample2d: bilinear agrees with a plain-loop reference on random data",
          "[upsample2d]") {
    const auto x = test::random_tensor<double>(3, {2, 5, 7}, 21);
    for (const Size2 factor : {Size2(2), Size2(3, 2), Size2(1, 4)}) {
        Layer<double> layer = UpSample2D<double>(factor, Interpolation::Bilinear);
        const auto y = run_forward(layer, x);
        INFO("factor " << factor.str());
        CHECK(test::max_abs_difference(y, bilinear_reference(x, factor.height, factor.width)) < 1e-12);

        Layer<float> single = UpSample2D<float>(factor, Interpolation::Bilinear);
        const Tensor<float> y_float = run_forward(single, Tensor<float>(x.cast<float>()));
        CHECK(test::max_abs_difference<double>(y_float.cast<double>(), y) < 1e-6);
    }
}

TEST_CASE("upsample2d: backward is the exact adjoint of forward (<Ax, dy> = <x, A^T dy>)",
          "[upsample2d]") {
    const auto x = test::random_tensor<double>(2, {3, 5, 4}, 31);
    for (const Interpolation mode : {Interpolation::Nearest, Interpolation::Bilinear}) {
        Layer<double> layer = UpSample2D<double>(Size2(2, 3), mode);
        const auto y = run_forward(layer, x);
        const auto dy = test::random_tensor<double>(2, sample_shape(y), 32);
        const auto dx = run_backward(layer, x, y, dy);
        INFO(interpolation_name(mode));
        CHECK(dot(y, dy) == Approx(dot(x, dx)).epsilon(1e-12));
    }
}

TEST_CASE("upsample2d: gradient checks, nearest and bilinear, factors 2 and 2x3",
          "[upsample2d][gradcheck]") {
    std::uint64_t seed = 200;
    for (const test::UpSampleCase& c : test::upsample_cases) {
        Layer<double> layer = UpSample2D<double>(c.factor, c.mode);
        test::expect_gradients(layer, test::random_tensor<double>(2, c.input, seed++), c.label);
    }
}

TEST_CASE("upsample2d: invalid factor throws ArgumentError, config round-trips", "[upsample2d]") {
    CHECK_THROWS_AS(UpSample2D<float>(0), ArgumentError);
    CHECK_THROWS_AS(UpSample2D<float>(Size2(2, -1)), ArgumentError);
    const UpSample2D<float> layer(Size2(2, 3), Interpolation::Bilinear);
    CHECK(layer.config().str() == "factor_h=2 factor_w=3 interpolation=bilinear");
    CHECK(UpSample2D<float>::from_config(layer.config()).config().str() == layer.config().str());
    CHECK(UpSample2D<float>(2).config().get_string("interpolation") == "nearest");
    Config bad = layer.config();
    bad.set("interpolation", "bicubic");
    CHECK_THROWS_AS(UpSample2D<float>::from_config(bad), FormatError);
}

// --------------------------------------------------------------------------- Flatten, Reshape

TEST_CASE("flatten and reshape: values keep their order, gradient checks", "[reshape][gradcheck]") {
    const auto x = test::random_tensor<double>(2, {3, 5, 4}, 41);
    Layer<double> flatten = Flatten<double>();
    const auto y = run_forward(flatten, x);
    CHECK(sample_shape(y) == Shape{60, 1, 1});
    CHECK(y(1, 2 * 20 + 3 * 4 + 1, 0, 0) == x(1, 2, 3, 1));  // index c*H*W + h*W + w
    test::expect_gradients(flatten, x, "Flatten 3x5x4");

    Layer<double> reshape = Reshape<double>({5, 4, 3});
    const auto z = run_forward(reshape, x);
    CHECK(sample_shape(z) == Shape{5, 4, 3});
    CHECK(z(1, 4, 3, 2) == x.data()[60 + 59]);  // the last value of sample 1
    test::expect_gradients(reshape, x, "Reshape 3x5x4 -> 5x4x3");
}

TEST_CASE("reshape: a size mismatch throws ShapeError naming both shapes", "[reshape][shape]") {
    CHECK_THROWS_MATCHES(Reshape<float>({2, 3, 3}).output_shape({1, 4, 4}), ShapeError,
                         Catch::Matchers::Message("Reshape: cannot reshape input (1, 4, 4) (16 "
                                                  "values) to (2, 3, 3) (18 values)"));
    Layer<float> layer = Reshape<float>({16, 1, 1});
    Rng rng(0);
    CHECK_THROWS_AS(layer.build({1, 4, 5}, rng), ShapeError);
    CHECK_NOTHROW(layer.build({1, 4, 4}, rng));
    CHECK_THROWS_AS(Reshape<float>({0, 4, 4}), ArgumentError);
    CHECK_THROWS_AS(Flatten<float>().output_shape({0, 4, 4}), ShapeError);
    CHECK(Reshape<float>::from_config(Reshape<float>({5, 4, 3}).config()).target() == Shape{5, 4, 3});
    CHECK(Reshape<float>({5, 4, 3}).config().str() == "channels=5 height=4 width=3");
}

// ------------------------------------------------------------------------------------- shared

TEST_CASE("pool and upsample: 28 -> 14 -> 7 -> 14 -> 28 through real tensors", "[shape]") {
    Layer<float> layers[] = {MaxPool2D<float>(2, 0, Padding::Same), MaxPool2D<float>(2, 0, Padding::Same),
                             UpSample2D<float>(2), UpSample2D<float>(2, Interpolation::Bilinear)};
    const Index sizes[] = {14, 7, 14, 28};
    Tensor<float> x = test::random_tensor<float>(2, {4, 28, 28}, 51);
    for (int i = 0; i < 4; ++i) {
        const Tensor<float> y = run_forward(layers[i], x);
        CHECK(sample_shape(y) == Shape{4, sizes[i], sizes[i]});
        x = y;
    }
}

TEST_CASE("pool and upsample: input gradient is skipped when dx has no data", "[shape]") {
    const auto x = test::random_tensor<double>(2, {2, 5, 5}, 61);
    Layer<double> layers[] = {MaxPool2D<double>(2, 0, Padding::Same), UpSample2D<double>(2),
                              UpSample2D<double>(2, Interpolation::Bilinear), Flatten<double>(),
                              Reshape<double>({5, 5, 2})};
    for (auto& layer : layers) {
        const auto y = run_forward(layer, x);
        TensorView<double> no_input_gradient(nullptr, 2, 2, 5, 5);
        CHECK_NOTHROW(layer.backward(view(x), view(y), view(y), no_input_gradient));
    }
}

TEST_CASE("max_pool2d: config round-trips through from_config", "[max_pool2d]") {
    const MaxPool2D<float> layer(Size2(2, 3), 0, Padding::Same);
    CHECK(layer.config().str() == "pool_h=2 pool_w=3 stride_h=2 stride_w=3 padding=same");
    const auto copy = MaxPool2D<float>::from_config(layer.config());
    CHECK(copy.pool() == Size2(2, 3));
    CHECK(copy.stride() == Size2(2, 3));
    CHECK(copy.padding() == Padding::Same);
}

TEST_CASE("pool and upsample: results are bit-identical with 1 and 2 threads", "[threads]") {
    const auto x = test::random_tensor<float>(64, {4, 29, 23}, 71);  // above min_parallel_work
    auto run = [&](Layer<float> layer, int threads) {
        const ThreadCount setting(threads);
        const Tensor<float> y = run_forward(layer, x);
        const Tensor<float> dy = test::random_tensor<float>(64, sample_shape(y), 72);
        const Tensor<float> dx = run_backward(layer, x, y, dy);
        return std::make_pair(y, dx);
    };
    const Layer<float> layers[] = {MaxPool2D<float>(3, 2, Padding::Same), MaxPool2D<float>(2, 1),
                                   UpSample2D<float>(Size2(2, 3)),
                                   UpSample2D<float>(Size2(2, 3), Interpolation::Bilinear)};
    const int saved = num_threads();
    for (const auto& layer : layers) {
        const auto one = run(layer, 1);
        const auto two = run(layer, 2);
        INFO(layer.type() << " " << layer.config().str());
        CHECK(bit_identical(one.first, two.first));
        CHECK(bit_identical(one.second, two.second));
    }
    CHECK(num_threads() == saved);
}
