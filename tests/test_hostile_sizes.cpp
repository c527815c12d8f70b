// Sizes a file or a configuration can ask for: checked arithmetic, layer limits, output shapes
// whose arithmetic would overflow, weights too large to allocate.
#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <cstdint>
#include <limits>

using namespace latent;
using Catch::Matchers::Contains;

namespace {

constexpr Index huge = std::numeric_limits<Index>::max();

template <class T> Layer<T> built(Layer<T> layer, const Shape& input) {
    Rng rng(0);
    layer.build(input, rng);
    return layer;
}

}  // namespace

TEST_CASE("checked arithmetic: exact results, and an error naming what overflowed", "[hostile][checked]") {
    CHECK(checked_multiply<ShapeError>(Index{1} << 31, Index{1} << 31, "area") == Index{1} << 62);
    CHECK(checked_add<ShapeError>(huge - 1, Index{1}, "length") == huge);
    CHECK(checked_product<ShapeError>({Index{2}, Index{3}, Index{4}}, "volume") == 24);
    CHECK(checked_multiply(std::uint64_t{1} << 32, std::uint64_t{1} << 31, "bytes") == std::uint64_t{1} << 63);
    CHECK_THROWS_WITH(checked_multiply<FormatError>(Index{1} << 32, Index{1} << 31, "area"),
                      Contains("area") && Contains("overflows"));
    CHECK_THROWS_AS(checked_multiply<FormatError>(Index{1} << 32, Index{1} << 31, "area"), FormatError);
    CHECK_THROWS_WITH(checked_add(huge, Index{1}, "length"), Contains("length") && Contains("overflows"));
    CHECK_THROWS_AS(checked_multiply(std::uint64_t{1} << 32, std::uint64_t{1} << 32, "bytes"), ShapeError);
    CHECK_THROWS_WITH(checked_multiply(Index{-1}, Index{3}, "rows"), Contains("rows: negative size -1"));
    // The product limit, and a product that wraps to a small number, are both refused.
    CHECK_THROWS_WITH(checked_product({Index{1} << 20, Index{1} << 21}, "sample"),
                      Contains("sample: 1048576 x 2097152 exceeds the limit"));
    CHECK_THROWS_AS(checked_product({Index{1} << 22, Index{1} << 21, Index{1} << 21}, "sample"), ShapeError);
    CHECK_THROWS_AS(checked_extent(max_extent + 1, 1, "Layer", "units"), ArgumentError);
    CHECK(checked_extent(max_extent, 1, "Layer", "units") == max_extent);
}

TEST_CASE("Shape::size refuses negative axes and more than max_elements values", "[hostile][checked]") {
    CHECK(Shape{1 << 10, 1 << 15, 1 << 15}.size() == max_elements);
    CHECK_THROWS_AS((Shape{1 << 10, 1 << 15, (1 << 15) + 1}.size()), ShapeError);
    // 2^22 * 2^21 * 2^21 = 2^64 wraps to 0 in 64-bit arithmetic.
    CHECK_THROWS_WITH((Shape{Index{1} << 22, Index{1} << 21, Index{1} << 21}.size()),
                      Contains("(4194304, 2097152, 2097152)"));
    CHECK_THROWS_AS((Shape{-1, 4, 4}.size()), ShapeError);
}

TEST_CASE("layer configurations above max_extent are refused by the constructor", "[hostile][limits]") {
    const Index over = max_extent + 1;
    CHECK_THROWS_WITH(Dense<float>(over), Contains("Dense") && Contains("units"));
    CHECK_THROWS_AS(Dense<float>(Index{1} << 40), ArgumentError);
    CHECK_THROWS_AS(Conv2D<float>(over, 3), ArgumentError);
    CHECK_THROWS_WITH(Conv2D<float>(8, {3, over}), Contains("kernel width"));
    CHECK_THROWS_WITH(Conv2D<float>(8, 3, {over, 1}), Contains("stride height"));
    CHECK_THROWS_AS(ConvTranspose2D<float>(8, 3, huge), ArgumentError);
    CHECK_THROWS_AS(ConvTranspose2D<float>(8, huge), ArgumentError);
    CHECK_THROWS_AS(MaxPool2D<float>(over), ArgumentError);
    CHECK_THROWS_AS(MaxPool2D<float>(2, over), ArgumentError);
    CHECK_THROWS_WITH(UpSample2D<float>({1, huge}), Contains("factor width"));
    CHECK_THROWS_AS(Reshape<float>(Shape{Index{1} << 22, Index{1} << 21, Index{1} << 21}), ArgumentError);
    // The largest allowed values still construct.
    CHECK_NOTHROW(Dense<float>(max_extent));
    CHECK_NOTHROW(UpSample2D<float>(max_extent));
}

TEST_CASE("output shapes whose arithmetic overflows give ShapeError", "[hostile][limits]") {
    CHECK_THROWS_AS(window_output_size(huge, 1, 2, Padding::Same), ShapeError);
    CHECK_THROWS_AS(window_pad_before(huge - 1, max_extent, 2, Padding::Same), ShapeError);
    CHECK_THROWS_AS(conv_transpose_output_size(huge / 2, 1, 4, Padding::Same, std::nullopt), ShapeError);
    CHECK_THROWS_AS(conv_transpose_output_size(huge / 2, 8, 2, Padding::Valid, Index{1}), ShapeError);
    const Shape wide{1, 1, Index{1} << 39};  // within max_elements
    CHECK_THROWS_AS(UpSample2D<float>({1, max_extent}).output_shape(wide), ShapeError);
    CHECK_THROWS_AS(ConvTranspose2D<float>(1, 1, {1, max_extent}).output_shape(wide), ShapeError);
    CHECK_THROWS_AS(Conv2D<float>(max_extent, 1).output_shape(Shape{1, 1 << 20, 1 << 20}), ShapeError);
    // A large but sound configuration still computes its shape.
    CHECK(UpSample2D<float>({2, 2}).output_shape(Shape{3, 1 << 10, 1 << 10}) == Shape{3, 1 << 11, 1 << 11});
    CHECK(MaxPool2D<float>(max_extent, 1, Padding::Same).output_shape(Shape{1, 5, 5}) == Shape{1, 5, 5});
}

TEST_CASE("weights beyond max_elements are refused before anything is allocated", "[hostile][limits]") {
    CHECK_THROWS_WITH(built<float>(Dense<float>(max_extent), Shape{1, 1 << 20, 1 << 20}),
                      Contains("Dense: weights"));
    CHECK_THROWS_WITH(built<float>(Conv2D<float>(max_extent, 1 << 9), Shape{1, 4, 4}),
                      Contains("Conv2D: weights"));
    CHECK_THROWS_WITH(built<float>(ConvTranspose2D<float>(max_extent, max_extent / 4), Shape{max_extent, 1, 1}),
                      Contains("ConvTranspose2D: kernel taps"));
}

TEST_CASE("a model whose configuration overflows fails to build with a latent error", "[hostile][limits]") {
    Sequential<float> model;
    model.add(UpSample2D<float>({max_extent, max_extent}));
    model.add(MaxPool2D<float>(2));
    CHECK_THROWS_AS(model.build(Shape{1, 1 << 10, 1 << 10}), ShapeError);
}
