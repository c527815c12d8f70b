// Shape arithmetic of every layer, as a table, and the shapes through the reference networks.
#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <string>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

struct ShapeCase {
    std::string description;
    Shape input;
    Layer<float> layer;
    Shape expected;
};

std::vector<ShapeCase> shape_table() {
    return {
        {"Conv2D 3x3 same keeps 28x28", {1, 28, 28}, Conv2D<float>(32, 3), {32, 28, 28}},
        {"Conv2D 3x3 valid 28 -> 26", {1, 28, 28}, Conv2D<float>(8, 3, 1, Padding::Valid), {8, 26, 26}},
        {"Conv2D 5x5 valid 7x5 -> 3x1", {2, 7, 5}, Conv2D<float>(4, 5, 1, Padding::Valid), {4, 3, 1}},
        {"Conv2D 3x3 stride 2 same 32 -> 16", {3, 32, 32}, Conv2D<float>(16, 3, 2), {16, 16, 16}},
        {"Conv2D 3x3 stride 2 same 7 -> 4 (ceil)", {1, 7, 7}, Conv2D<float>(4, 3, 2), {4, 4, 4}},
        {"Conv2D 3x3 stride 2 valid 7 -> 3", {1, 7, 7}, Conv2D<float>(4, 3, 2, Padding::Valid), {4, 3, 3}},
        {"Conv2D 3x2 kernel stride 2x1 same 9x6", {1, 9, 6}, Conv2D<float>(2, {3, 2}, {2, 1}), {2, 5, 6}},
        {"Conv2D 1x1 keeps the size", {5, 4, 3}, Conv2D<float>(7, 1), {7, 4, 3}},
        {"ConvTranspose2D stride 2 same 16 -> 32", {16, 16, 16}, ConvTranspose2D<float>(3, 3, 2), {3, 32, 32}},
        {"ConvTranspose2D stride 2 same 7 -> 14", {32, 7, 7}, ConvTranspose2D<float>(32, 3, 2), {32, 14, 14}},
        {"ConvTranspose2D 3x3 valid stride 1 5 -> 7", {2, 5, 5}, ConvTranspose2D<float>(1, 3, 1, Padding::Valid), {1, 7, 7}},
        {"ConvTranspose2D 3x3 valid stride 2 7 -> 15", {1, 7, 7}, ConvTranspose2D<float>(1, 3, 2, Padding::Valid), {1, 15, 15}},
        {"ConvTranspose2D 1x1 valid stride 2 4 -> 8", {1, 4, 4}, ConvTranspose2D<float>(1, 1, 2, Padding::Valid), {1, 8, 8}},
        {"MaxPool2D 2 valid 28 -> 14", {32, 28, 28}, MaxPool2D<float>(2), {32, 14, 14}},
        {"MaxPool2D 2 same 7 -> 4", {32, 7, 7}, MaxPool2D<float>(2, 2, Padding::Same), {32, 4, 4}},
        {"MaxPool2D 2 valid 7 -> 3", {32, 7, 7}, MaxPool2D<float>(2, 2, Padding::Valid), {32, 3, 3}},
        {"MaxPool2D 3 stride 1 same keeps 5x4", {2, 5, 4}, MaxPool2D<float>(3, 1, Padding::Same), {2, 5, 4}},
        {"UpSample2D 2 nearest 7 -> 14", {32, 7, 7}, UpSample2D<float>(2), {32, 14, 14}},
        {"UpSample2D 2x3 bilinear 5x4 -> 10x12", {1, 5, 4}, UpSample2D<float>({2, 3}, Interpolation::Bilinear), {1, 10, 12}},
        {"Flatten (C, H, W) -> (C*H*W, 1, 1)", {3, 4, 5}, Flatten<float>(), {60, 1, 1}},
        {"Reshape 60 -> (3, 4, 5)", {60, 1, 1}, Reshape<float>({3, 4, 5}), {3, 4, 5}},
        {"Dense flattens any input", {3, 4, 5}, Dense<float>(10), {10, 1, 1}},
        {"activations keep the shape", {3, 4, 5}, LeakyReLU<float>(0.1), {3, 4, 5}},
    };
}

}  // namespace

TEST_CASE("shapes: table of (input, layer, expected output)", "[shapes]") {
    for (auto& entry : shape_table()) {
        INFO(entry.description);
        CHECK(entry.layer.output_shape(entry.input) == entry.expected);
        // The layer really produces that shape when run.
        Rng rng(0);
        entry.layer.build(entry.input, rng);
        const Tensor<float> x = test::random_tensor<float>(2, entry.input, 1);
        Tensor<float> y;
        entry.layer.forward(x, y);
        CHECK(sample_shape(y) == entry.expected);
    }
}

TEST_CASE("shapes: the MNIST denoiser goes 28 -> 14 -> 7 -> 14 -> 28", "[shapes]") {
    Sequential<float> model{Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
                            Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
                            Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
                            Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
                            Conv2D<float>(1, 3), Sigmoid<float>()};
    model.build({1, 28, 28});
    const std::vector<Shape> expected{{32, 28, 28}, {32, 28, 28}, {32, 14, 14}, {32, 14, 14}, {32, 14, 14},
                                      {32, 7, 7},   {32, 7, 7},   {32, 7, 7},   {32, 14, 14}, {32, 14, 14},
                                      {32, 14, 14}, {32, 28, 28}, {1, 28, 28},  {1, 28, 28}};
    for (Index i = 0; i < model.size(); ++i) {
        INFO(model.layer_name(i));
        CHECK(model.layer(i).output_shape() == expected[static_cast<std::size_t>(i)]);
    }
}

TEST_CASE("shapes: 32x32 stride-2 conv gives 16x16, stride-2 transposed conv gives back 32x32", "[shapes]") {
    Autoencoder<float> model(Encoder<float>{Conv2D<float>(16, 3, 2), ReLU<float>()},
                             Decoder<float>{ConvTranspose2D<float>(1, 3, 2), Sigmoid<float>()}, {1, 32, 32});
    CHECK(model.code_shape() == Shape{16, 16, 16});
    CHECK(model.output_shape() == Shape{1, 32, 32});
}

TEST_CASE("shapes: a wrong input shape throws ShapeError naming layer, expected and actual shape", "[shapes]") {
    auto check_message = [](Layer<float> layer, const Shape& built_for, const Shape& given, const std::string& name) {
        Rng rng(0);
        layer.build(built_for, rng);
        const Tensor<float> x = make_tensor<float>(2, given);
        Tensor<float> y;
        test::expect_error<ShapeError>([&] { layer.forward(x, y); },
                                       name + " forward: expected input of shape " + batch_shape_str(2, built_for) +
                                           ", got " + batch_shape_str(2, given));
    };
    check_message(Conv2D<float>(4, 3), {3, 8, 8}, {1, 8, 8}, "Conv2D");
    check_message(ConvTranspose2D<float>(4, 3, 2), {2, 5, 5}, {2, 5, 6}, "ConvTranspose2D");
    check_message(MaxPool2D<float>(2), {1, 6, 6}, {1, 7, 6}, "MaxPool2D");
    check_message(UpSample2D<float>(2), {1, 6, 6}, {2, 6, 6}, "UpSample2D");
    check_message(Dense<float>(3), {4, 1, 1}, {5, 1, 1}, "Dense");
    check_message(Reshape<float>({2, 2, 1}), {4, 1, 1}, {1, 2, 2}, "Reshape");
    check_message(Sigmoid<float>(), {1, 3, 3}, {1, 3, 4}, "Sigmoid");
}

TEST_CASE("shapes: layers that cannot take an input say why", "[shapes]") {
    test::expect_error<ShapeError>([] { Conv2D<float>(4, 5, 1, Padding::Valid).output_shape({1, 3, 3}); }, "Conv2D");
    test::expect_error<ShapeError>([] { MaxPool2D<float>(3).output_shape({1, 2, 2}); }, "MaxPool2D");
    test::expect_error<ShapeError>([] { Reshape<float>({2, 3, 3}).output_shape({1, 4, 4}); }, "Reshape");
}
