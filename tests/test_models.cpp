#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <sstream>
#include <thread>

#include "helpers.hpp"

using namespace latent;

namespace {

// A pass whose backward also computes the gradient with respect to the model's input.
Pass input_gradient_pass() {
    Pass pass;
    pass.input_gradient = true;
    return pass;
}

}  // namespace

namespace {

Sequential<double> small_dense_model() {
    return Sequential<double>{Dense<double>(6), Tanh<double>(), Dense<double>(3), Sigmoid<double>()};
}

}  // namespace

TEST_CASE("sequential: build infers every shape and counts parameters", "[models]") {
    Sequential<float> model{Conv2D<float>(8, 3), ReLU<float>(), MaxPool2D<float>(2), Flatten<float>(), Dense<float>(10)};
    model.build({1, 28, 28});
    CHECK(model.layer(0).output_shape() == Shape{8, 28, 28});
    CHECK(model.layer(2).output_shape() == Shape{8, 14, 14});
    CHECK(model.output_shape() == Shape{10, 1, 1});
    // conv: 8*1*3*3 + 8 = 80; dense: 10*8*14*14 + 10 = 15690
    CHECK(model.parameter_count() == 80 + 15690);
}

TEST_CASE("sequential: build names the first layer that does not fit", "[models][shape]") {
    Sequential<float> model{Conv2D<float>(4, 3, 1, Padding::Valid), Conv2D<float>(4, 5, 1, Padding::Valid)};
    try {
        model.build({1, 6, 6});  // 6x6 -> 4x4, then a 5x5 valid kernel does not fit
        FAIL("expected ShapeError");
    } catch (const ShapeError& error) {
        const std::string message = error.what();
        CHECK_THAT(message, Catch::Contains("layer 2 (Conv2D)"));
        CHECK_THAT(message, Catch::Contains("(4, 4, 4)"));
    }
}

TEST_CASE("sequential: forward of a wrong input shape throws ShapeError with both shapes", "[models][shape]") {
    auto model = small_dense_model();
    model.build({1, 4, 1});
    const Tensor<double> x = make_tensor<double>(2, {1, 5, 1});
    CHECK_THROWS_WITH(model.forward(view(x)),
                      "Sequential forward: expected input of shape (2, 1, 4, 1), got (2, 1, 5, 1)");
}

TEST_CASE("sequential: unbuilt model refuses to run", "[models]") {
    auto model = small_dense_model();
    const Tensor<double> x = make_tensor<double>(2, {1, 4, 1});
    CHECK_THROWS_AS(model.forward(view(x)), ShapeError);
    CHECK_THROWS_AS(Sequential<double>().build({1, 2, 2}), ShapeError);
}

TEST_CASE("sequential: forward equals the layers applied one by one", "[models]") {
    auto model = small_dense_model();
    model.build({1, 4, 1}, 7);
    const Tensor<double> x = test::random_tensor<double>(5, {1, 4, 1}, 3);
    const auto output = model.forward(view(x));
    Tensor<double> current = x, next;
    for (Index i = 0; i < model.size(); ++i) {
        model.layer(i).forward(current, next);
        current = next;
    }
    Tensor<double> result(output.dimensions());
    result = output;
    CHECK(test::max_abs_difference(result, current) == 0.0);
}

TEST_CASE("sequential: gradient of the whole model matches finite differences", "[models][gradcheck]") {
    Sequential<double> model{Conv2D<double>(3, 3, 2), Tanh<double>(), Flatten<double>(), Dense<double>(4), Sigmoid<double>()};
    model.build({2, 5, 4}, 1);
    const Tensor<double> x = test::random_tensor<double>(2, {2, 5, 4}, 2);
    const Tensor<double> weights = test::random_tensor<double>(2, {4, 1, 1}, 3);
    auto objective = [&] {
        const auto y = model.forward(view(x));
        double sum = 0;
        for (Index i = 0; i < y.size(); ++i) sum += y.data()[i] * weights.data()[i];
        return sum;
    };
    objective();
    model.zero_grad();
    const auto grad_input = model.backward(view(weights), input_gradient_pass());
    std::vector<double> analytic(grad_input.data(), grad_input.data() + grad_input.size());
    const double eps = 1e-6;
    Tensor<double> perturbed = x;
    double worst = 0;
    for (Index i = 0; i < x.size(); ++i) {
        const double saved = x.data()[i];
        const_cast<double*>(x.data())[i] = saved + eps;
        const double plus = objective();
        const_cast<double*>(x.data())[i] = saved - eps;
        const double minus = objective();
        const_cast<double*>(x.data())[i] = saved;
        worst = std::max(worst, std::abs((plus - minus) / (2 * eps) - analytic[static_cast<std::size_t>(i)]));
    }
    CHECK(worst < 1e-8);
    // The first parameter (conv weight) gradient, checked at one element.
    objective();
    model.zero_grad();
    model.backward(view(weights));
    const auto& weight = model.parameters().front();
    const double analytic_weight = weight.grad[5];
    weight.value[5] += eps;
    const double plus = objective();
    weight.value[5] -= 2 * eps;
    const double minus = objective();
    weight.value[5] += eps;
    CHECK(analytic_weight == Approx((plus - minus) / (2 * eps)).epsilon(1e-6));
}

TEST_CASE("sequential: summary lists layers, shapes, parameter counts and the total", "[models]") {
    Sequential<float> model{Dense<float>(4), ReLU<float>(), Dense<float>(2)};
    model.build({3, 1, 1});
    std::ostringstream out;
    model.summary(out);
    const std::string text = out.str();
    CHECK_THAT(text, Catch::Contains("1 Dense"));
    CHECK_THAT(text, Catch::Contains("(4, 1, 1)"));
    CHECK_THAT(text, Catch::Contains("16"));  // 4*3 + 4
    CHECK_THAT(text, Catch::Contains("Total params: 26"));  // 16 + 2*4 + 2
}

TEST_CASE("sequential: copies are independent and keep their weights", "[models]") {
    auto model = small_dense_model();
    model.build({1, 4, 1}, 5);
    Sequential<double> copy = model;
    const Tensor<double> x = test::random_tensor<double>(3, {1, 4, 1}, 1);
    Tensor<double> a = model.predict(x), b = copy.predict(x);
    CHECK(test::max_abs_difference(a, b) == 0.0);
    copy.parameters().front().value[0] += 1.0;
    b = copy.predict(x);
    a = model.predict(x);
    CHECK(test::max_abs_difference(a, b) > 0.0);
}

TEST_CASE("sequential: same seed gives the same initial weights, another seed different ones", "[models]") {
    auto a = small_dense_model(), b = small_dense_model(), c = small_dense_model();
    a.build({1, 4, 1}, 11);
    b.build({1, 4, 1}, 11);
    c.build({1, 4, 1}, 12);
    CHECK(std::equal(a.parameters()[0].value, a.parameters()[0].value + a.parameters()[0].size, b.parameters()[0].value));
    CHECK_FALSE(std::equal(a.parameters()[0].value, a.parameters()[0].value + a.parameters()[0].size,
                           c.parameters()[0].value));
}

TEST_CASE("autoencoder: encode, decode and reconstruct shapes for a conv autoencoder", "[models]") {
    Autoencoder<float> model(Encoder<float>{Conv2D<float>(8, 3), ReLU<float>(), MaxPool2D<float>(2), Conv2D<float>(4, 3),
                                            ReLU<float>(), MaxPool2D<float>(2)},
                             Decoder<float>{Conv2D<float>(4, 3), ReLU<float>(), UpSample2D<float>(2), Conv2D<float>(8, 3),
                                            ReLU<float>(), UpSample2D<float>(2), Conv2D<float>(1, 3), Sigmoid<float>()},
                             {1, 28, 28});
    const Tensor<float> x = test::random_tensor<float>(3, {1, 28, 28}, 1, 0, 1);
    const Tensor<float> codes = model.encode(x);
    CHECK(sample_shape(codes) == Shape{4, 7, 7});
    const Tensor<float> decoded = model.decode(codes);
    const Tensor<float> reconstructed = model.reconstruct(x, 2);
    CHECK(sample_shape(reconstructed) == Shape{1, 28, 28});
    CHECK(test::max_abs_difference(decoded, reconstructed) < 1e-6);
    CHECK(model.has_logistic_output());
}

TEST_CASE("autoencoder: a decoder that does not give back the input shape is rejected with a hint",
          "[models][shape]") {
    // 15 -> stride-2 conv -> 8 -> stride-2 transposed conv -> 16, not 15.
    try {
        Autoencoder<float> model(Encoder<float>{Conv2D<float>(4, 3, 2)}, Decoder<float>{ConvTranspose2D<float>(1, 3, 2)},
                                 {1, 15, 15});
        FAIL("expected ShapeError");
    } catch (const ShapeError& error) {
        const std::string message = error.what();
        CHECK_THAT(message, Catch::Contains("(1, 16, 16)"));
        CHECK_THAT(message, Catch::Contains("(1, 15, 15)"));
        CHECK_THAT(message, Catch::Contains("output_padding"));
    }
    // Following the hint: output_padding 0 gives (8-1)*2 + 3 - 2 + 0 = 15.
    Autoencoder<float> fixed(Encoder<float>{Conv2D<float>(4, 3, 2)},
                             Decoder<float>{ConvTranspose2D<float>(1, 3, 2, Padding::Same, 0)}, {1, 15, 15});
    CHECK(fixed.output_shape() == Shape{1, 15, 15});
}

TEST_CASE("sequential: in-place layers share buffers and give the same forward and backward", "[models]") {
    // Element-wise layers (activations, Reshape, Flatten) write over their input when the layer
    // before never reads its own output in backward (Conv2D, MaxPool2D, UpSample2D, Dense,
    // Reshape, Identity); an activation that reads its output (Sigmoid, Tanh) keeps its own.
    Sequential<double> model{Conv2D<double>(3, 3), ReLU<double>(), MaxPool2D<double>(2), Sigmoid<double>(),
                             UpSample2D<double>(2), Tanh<double>(), Flatten<double>(), Dense<double>(6),
                             Reshape<double>({2, 3, 1}), Sigmoid<double>(), Flatten<double>(),
                             Dense<double>(3), Identity<double>(), Tanh<double>()};
    model.build({2, 6, 4}, 3);
    const std::vector<bool> expected_sharing{true,  false, true,  false, true, false, false,
                                             true,  true,  false, false, true, true};
    for (std::size_t i = 0; i < expected_sharing.size(); ++i) {
        INFO("layer " << i << " (" << model.layer(static_cast<Index>(i)).type() << ")");
        CHECK(model.shares_buffer_with_next(static_cast<Index>(i)) == expected_sharing[i]);
    }
    const Tensor<double> x = test::random_tensor<double>(5, {2, 6, 4}, 4);
    const Tensor<double> dy = test::random_tensor<double>(5, {3, 1, 1}, 5);
    // Reference: every layer on its own tensors.
    std::vector<Tensor<double>> outputs{x};
    for (Index i = 0; i < model.size(); ++i) {
        Tensor<double> y;
        model.layer(i).forward(outputs.back(), y);
        outputs.push_back(y);
    }
    model.zero_grad();
    Tensor<double> grad = dy;
    for (Index i = model.size() - 1; i >= 0; --i) {
        Tensor<double> dx;
        model.layer(i).backward(outputs[static_cast<std::size_t>(i)], outputs[static_cast<std::size_t>(i + 1)], grad, dx);
        grad = dx;
    }
    std::vector<double> reference_grads;
    for (const auto& parameter : model.parameters())
        reference_grads.insert(reference_grads.end(), parameter.grad, parameter.grad + parameter.size);
    // The model, with its shared buffers.
    model.zero_grad();
    Tensor<double> output(5, 3, 1, 1);
    output = model.forward(view(x));
    CHECK(test::max_abs_difference(output, outputs.back()) == 0.0);
    Tensor<double> input_grad(x.dimensions());
    input_grad = model.backward(view(dy), input_gradient_pass());
    CHECK(test::max_abs_difference(input_grad, grad) == 0.0);
    std::vector<double> model_grads;
    for (const auto& parameter : model.parameters())
        model_grads.insert(model_grads.end(), parameter.grad, parameter.grad + parameter.size);
    CHECK(model_grads == reference_grads);
}

TEST_CASE("autoencoder: copies and moves keep working, each copy with its own scratch memory",
          "[models][workspace]") {
    // A model lends one Workspace to all its layers. A move must keep that loan valid, and a
    // copy must get a Workspace of its own: two copies may train at the same time.
    Autoencoder<float> original(Encoder<float>{Conv2D<float>(6, 3, 2), ReLU<float>(), Conv2D<float>(2, 3)},
                                Decoder<float>{ConvTranspose2D<float>(4, 3, 2), ReLU<float>(), Conv2D<float>(1, 3),
                                               Sigmoid<float>()},
                                {1, 12, 12}, 3);
    const Tensor<float> x = test::random_tensor<float>(6, {1, 12, 12}, 4, 0.0, 1.0);
    const Tensor<float> expected = original.reconstruct(x);
    const Autoencoder<float> copy = original;
    Autoencoder<float> moved = std::move(original);
    auto same = [](const Tensor<float>& a, const Tensor<float>& b) { return test::max_abs_difference(a, b) == 0.0; };
    CHECK(same(moved.reconstruct(x), expected));
    CHECK(same(Autoencoder<float>(copy).reconstruct(x), expected));

    auto train = [&x](Autoencoder<float> model) {
        Adam<float> adam(1e-2);
        FitOptions<float> options;
        options.epochs = 3;
        options.batch_size = 3;
        options.verbose = 0;
        model.fit(x, x, MeanSquaredError<float>(), adam, options);
        std::vector<float> weights;
        for (const auto& parameter : model.parameters())
            weights.insert(weights.end(), parameter.value, parameter.value + parameter.size);
        return weights;
    };
    const std::vector<float> alone = train(copy);
    std::vector<float> first, second;
    std::thread one([&] { first = train(copy); });
    std::thread two([&] { second = train(copy); });
    one.join();
    two.join();
    CHECK(first == alone);
    CHECK(second == alone);

    // A layer copied out of a model works after the model is gone.
    Layer<float> layer = [&] {
        Autoencoder<float> temporary = copy;
        temporary.reconstruct(x);
        return temporary.encoder().layer(0);
    }();
    Tensor<float> y;
    layer.forward(x, y);
    CHECK(y.dimension(1) == 6);
}

TEST_CASE("autoencoder: a dense decoder whose output has the input's size but not its shape suggests a Reshape",
          "[models][shape]") {
    test::expect_error<ShapeError>(
        [] {
            Autoencoder<float> model(Encoder<float>{Flatten<float>(), Dense<float>(32)}, Decoder<float>{Dense<float>(784)},
                                     {1, 28, 28});
        },
        "the decoder outputs (784, 1, 1) but the input is (1, 28, 28); they must be equal (the same 784 values: end "
        "the decoder with Reshape({1, 28, 28}))");
}

TEST_CASE("sequential: an input shape that looks like (H, W, C) is named as such, and nhwc_to_nchw converts it",
          "[models][shape]") {
    // (28, 28, 1) read as (C, H, W) is 28 channels of 28x1 images: MaxPool2D(2) cannot fit it.
    Sequential<float> model{Conv2D<float>(8, 3), MaxPool2D<float>(2)};
    test::expect_error<ShapeError>([&] { model.build({28, 28, 1}); },
                                   "latent expects (C, H, W) samples and (28, 28, 1) looks like (H, W, C) -- convert "
                                   "the images with nhwc_to_nchw()");
    // Two 2x3 images with 2 channels, channel-last: pixel (h, w) holds (10 h + w, -(10 h + w)).
    Tensor<float> nhwc(2, 2, 3, 2);
    for (Index n = 0; n < 2; ++n)
        for (Index h = 0; h < 2; ++h)
            for (Index w = 0; w < 3; ++w) {
                nhwc(n, h, w, 0) = static_cast<float>(100 * n + 10 * h + w);
                nhwc(n, h, w, 1) = -static_cast<float>(100 * n + 10 * h + w);
            }
    const Tensor<float> nchw = nhwc_to_nchw(nhwc);
    REQUIRE(sample_shape(nchw) == Shape{2, 2, 3});
    CHECK(nchw(1, 0, 1, 2) == 112.0f);
    CHECK(nchw(1, 1, 1, 2) == -112.0f);
    CHECK(test::max_abs_difference(nchw_to_nhwc(nchw), nhwc) == 0.0);
}
