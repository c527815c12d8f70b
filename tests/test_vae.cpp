// Variational autoencoders: GaussianSample's KL term in closed form, the gradient of the whole
// objective, determinism with threads and slices, one-file save/load/resume, the likelihood
// estimates, the generative uses, the losses' reductions, and bad arguments named.
#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

template <class Model> std::vector<double> weights_of(const Model& model) {
    std::vector<double> values;
    for (const auto& parameter : model.parameters()) values.insert(values.end(), parameter.value, parameter.value + parameter.size);
    return values;
}

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("latent_vae_" + name)).string();
}

// A VAE of 3x3 images: 9-5 tanh -> mu, log sigma^2 (2 each); 2-6 tanh-9 Bernoulli.
template <class T> VAE<T> small_vae(std::uint64_t seed = 1, double beta = 1.0) {
    return VAE<T>(Encoder<T>{Flatten<T>(), Dense<T>(5), Tanh<T>(), Dense<T>(4)},
                  Decoder<T>{Dense<T>(6), Tanh<T>(), Dense<T>(9), Sigmoid<T>(), Reshape<T>({1, 3, 3})}, {1, 3, 3}, seed,
                  GaussianSample<T>(beta));
}

// Binary images (x > 0.5 of uniform values).
template <class T> Tensor<T> binary_images(Index count, std::uint64_t seed) {
    Tensor<T> x = test::random_tensor<T>(count, {1, 3, 3}, seed, 0, 1);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = x.data()[i] > T(0.5) ? T(1) : T(0);
    return x;
}

template <class T> FitOptions<T> quiet(int epochs, Index batch_size = 8) {
    FitOptions<T> options;
    options.epochs = epochs;
    options.batch_size = batch_size;
    options.verbose = 0;
    return options;
}

// Samples [first, first + count) of x.
template <class T> Tensor<T> batch_copy(const Tensor<T>& x, Index first, Index count) {
    Tensor<T> copy = make_tensor<T>(count, sample_shape(x));
    const Index size = sample_shape(x).size();
    std::copy_n(x.data() + first * size, count * size, copy.data());
    return copy;
}

double mean_of(const std::vector<double>& values) {
    return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

}  // namespace

TEST_CASE("GaussianSample: the KL term in closed form on hand-worked values, z = mu outside training, "
          "z = mu + sigma eps in training", "[vae][terms]") {
    // Sample 0: mu = (1, 0), log sigma^2 = (0, 0):        KL = 1/2 (1 + 1 - 1 - 0) + 1/2 (0 + 1 - 1 - 0) = 0.5
    // Sample 1: mu = (0, 2), log sigma^2 = (log 4, -1):   KL = 1/2 (4 - 1 - log 4) + 1/2 (4 + e^-1 - 1 + 1)
    Tensor<double> x(2, 4, 1, 1);
    const double values[] = {1, 0, 0, 0, 0, 2, std::log(4.0), -1};
    std::copy(values, values + 8, x.data());
    const double kl0 = 0.5, kl1 = 0.5 * (3 - std::log(4.0)) + 0.5 * (4 + std::exp(-1.0));
    REQUIRE(kl1 == Approx(2.990792).epsilon(1e-6));  // 0.806853 + 2.183940
    Layer<double> layer = GaussianSample<double>(2.0);
    Rng rng(0);
    layer.build({4, 1, 1}, rng);
    CHECK(layer.output_shape() == Shape{2, 1, 1});
    CHECK(layer.term() == "kl");
    Tensor<double> z;
    layer.forward(x, z, Pass::evaluation());
    CHECK(layer.term_value() == Approx(2.0 * (kl0 + kl1) / 2).epsilon(1e-14));  // beta * mean over the batch
    CHECK(z(0, 0, 0, 0) == 1.0);
    CHECK(z(1, 1, 0, 0) == 2.0);
    // A slice of 2 of a batch of 8 divides by 8; scale_term multiplies beta (a warm-up).
    Pass slice = Pass::training_batch(3, 0, 0, 8);
    layer.scale_term(0.5);
    layer.forward(x, z, slice);
    CHECK(layer.term_value() == Approx(0.5 * 2.0 * (kl0 + kl1) / 8).epsilon(1e-14));
    const auto& noise = layer.get<GaussianSample<double>>()->noise();
    CHECK(z(0, 0, 0, 0) == Approx(1.0 + noise[0]).epsilon(1e-15));
    CHECK(z(1, 0, 0, 0) == Approx(0.0 + 2.0 * noise[2]).epsilon(1e-15));
    CHECK(z(1, 1, 0, 0) == Approx(2.0 + std::exp(-0.5) * noise[3]).epsilon(1e-15));
    CHECK(noise[0] != noise[1]);
    // Inference computes no term and keeps the last value.
    const double kept = layer.term_value();
    layer.forward(x, z, Pass{});
    CHECK(layer.term_value() == kept);
}

TEST_CASE("GaussianSample: gradients in double with eps fixed by the pass, and of the KL term alone", "[vae][gradcheck]") {
    const Tensor<double> x = test::random_tensor<double>(5, {6, 1, 1}, 4, -1, 1);
    for (const bool term_only : {false, true}) {
        Layer<double> layer = GaussianSample<double>(0.7);
        GradientCheckOptions options;
        options.pass = Pass::training_batch(9, 1, 2, 5);
        options.term_only = term_only;
        const auto result = check_gradients(layer, x, options);
        std::cout << "GRADCHECK GaussianSample" << (term_only ? " (KL term alone)" : " (training)")
                  << ": max relative error " << result.max_relative_error << "\n";
        INFO(result.report());
        CHECK(result.passed());
    }
}

TEST_CASE("VAE: gradient check in double of the whole objective (BCE summed per image + beta KL) with eps "
          "fixed, for every parameter and the input", "[vae][gradcheck]") {
    VAE<double> model = small_vae<double>(3, 0.7);
    const Tensor<double> x = test::random_tensor<double>(3, {1, 3, 3}, 5, 0.05, 0.95);
    const Tensor<double> target = binary_images<double>(3, 6);
    const BinaryCrossEntropy<double> loss(1e-7, Reduction::SumPerSample);
    Pass pass = Pass::training_batch(11, 0, 0, 3);
    pass.logits = model.has_logistic_output();
    REQUIRE(pass.logits);
    pass.input_gradient = true;
    Tensor<double> grad(3, 1, 3, 3), unused(3, 1, 3, 3);
    auto objective = [&](const Tensor<double>& input) {
        const auto output = model.forward(view(input), pass);
        double value = loss.compute(output, view(target), view(unused));
        for (double term : model.term_values()) value += term;
        return value;
    };
    model.zero_grad();
    const auto output = model.forward(view(x), pass);
    loss.compute_on_logits(output, view(target), view(grad));
    const auto input_grad = model.backward(const_view(grad), pass);
    const std::vector<double> analytic_input(input_grad.data(), input_grad.data() + input_grad.size());
    REQUIRE(model.term_names() == std::vector<std::string>{"kl"});
    REQUIRE(model.term_values()[0] > 0.01);

    const double h = 1e-5;
    double worst = 0;
    auto compare = [&](double analytic, double numeric, double scale) {
        const double error = std::abs(analytic - numeric) / std::max({std::abs(analytic), std::abs(numeric), 1e-6 * (1 + scale)});
        worst = std::max(worst, error);
    };
    Index checked = 0;
    for (const auto& parameter : model.parameters())
        for (Index i = 0; i < parameter.size; ++i, ++checked) {
            const double saved = parameter.value[i];
            parameter.value[i] = saved + h;
            const double plus = objective(x);
            parameter.value[i] = saved - h;
            const double minus = objective(x);
            parameter.value[i] = saved;
            compare(parameter.grad[i], (plus - minus) / (2 * h), 1.0);
        }
    CHECK(checked == model.parameter_count());
    Tensor<double> moved = x;
    for (Index i = 0; i < x.size(); ++i) {
        moved.data()[i] = x.data()[i] + h;
        const double plus = objective(moved);
        moved.data()[i] = x.data()[i] - h;
        const double minus = objective(moved);
        moved.data()[i] = x.data()[i];
        compare(analytic_input[static_cast<std::size_t>(i)], (plus - minus) / (2 * h), 1.0);
    }
    std::cout << "GRADCHECK VariationalAutoencoder (BCE on logits + 0.7 KL, " << checked << " parameters and "
              << x.size() << " inputs): max relative error " << worst << "\n";
    CHECK(worst < 1e-6);
}

TEST_CASE("VAE: training is bit-identical with 1 and 2 threads, the same whole or in slices, and shows "
          "reconstruction and kl (warmed up) in History", "[vae][threads][micro_batch]") {
    const Tensor<double> x = binary_images<double>(24, 7);
    const int saved = num_threads();
    auto run = [&](Index micro_batch, int threads, std::uint64_t seed) {
        set_num_threads(threads);
        VAE<double> model = small_vae<double>(2);
        Adam<double> adam(1e-2);
        auto options = quiet<double>(3, 12);
        options.micro_batch = micro_batch;
        options.seed = seed;
        options.callbacks.push_back(TermWeightSchedule<double>("kl", linear_warmup(2)));
        const History history = model.fit(x, x, BinaryCrossEntropy<double>(1e-7, Reduction::SumPerSample), adam, options);
        return std::make_pair(history, weights_of(model));
    };
    const auto [whole, whole_weights] = run(0, 1, 0);
    REQUIRE(whole.term_names == std::vector<std::string>{"reconstruction", "kl"});
    CHECK(whole.term("kl")[0] == 0.0);  // warm-up from 0
    CHECK(whole.term("kl")[1] > 0.0);
    CHECK(whole.loss[2] == Approx(whole.term("reconstruction")[2] + whole.term("kl")[2]).epsilon(1e-14));
    CHECK(whole.term("reconstruction")[0] > 9 * 0.3);  // in nats per image, not per pixel
    const auto [sliced, sliced_weights] = run(5, 1, 0);
    double worst = 0;
    for (std::size_t i = 0; i < whole_weights.size(); ++i) worst = std::max(worst, std::abs(sliced_weights[i] - whole_weights[i]));
    CHECK(worst < 1e-12);  // the same noise; the sums only in another order
    CHECK(run(0, 2, 0).second == whole_weights);
    CHECK(run(5, 2, 0).second == sliced_weights);
    CHECK(run(0, 1, 1).second != whole_weights);  // the noise depends on the seed
    set_num_threads(saved);
}

TEST_CASE("VAE: save -> load -> resume is bit-identical to an uninterrupted run, from one file", "[vae][serialization]") {
    const Tensor<float> x = binary_images<float>(32, 8);
    const BinaryCrossEntropy<float> loss(1e-7, Reduction::SumPerSample);
    auto options_for = [](int epochs) {
        auto options = quiet<float>(epochs);
        options.callbacks.push_back(TermWeightSchedule<float>("kl", linear_warmup(3)));
        return options;
    };
    VAE<float> uninterrupted = small_vae<float>(4);
    Adam<float> adam(1e-2);
    uninterrupted.fit(x, x, loss, adam, options_for(4));

    const std::string path = temp_path("resume.latent");
    VAE<float> first = small_vae<float>(4);
    Adam<float> first_adam(1e-2);
    auto first_options = options_for(2);
    first_options.callbacks.push_back(Checkpoint<float>(path, 2));
    first.fit(x, x, loss, first_adam, first_options);

    TrainingProgress<float> progress;
    VAE<float> resumed = VAE<float>::load(path, progress);
    REQUIRE(progress.optimizer.has_value());
    CHECK(progress.epochs_done == 2);
    CHECK(weights_of(resumed) == weights_of(first));
    auto resume_options = options_for(4);
    resume_options.resume_from(progress);
    resumed.fit(x, x, loss, *progress.optimizer, resume_options);
    CHECK(weights_of(resumed) == weights_of(uninterrupted));

    // Without training state, and the kind is checked.
    uninterrupted.save(path);
    VAE<float> loaded = VAE<float>::load(path);
    CHECK(test::max_abs_difference(loaded.reconstruct(x), uninterrupted.reconstruct(x)) == 0.0);
    CHECK(loaded.sampler().beta() == 1.0);
    CHECK(loaded.latent_size() == 2);
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); }, "kind 'VariationalAutoencoder'");
    std::filesystem::remove(path);
}

TEST_CASE("VAE: log_likelihood >= elbo on average, finite in float for k = 5000, log p(x|z) exact from the logits",
          "[vae][likelihood]") {
    const Tensor<float> x = binary_images<float>(64, 9);
    VAE<float> model = small_vae<float>(5);
    Adam<float> adam(1e-2);
    model.fit(x, x, BinaryCrossEntropy<float>(1e-7, Reduction::SumPerSample), adam, quiet<float>(20));
    const Tensor<float> test_images = binary_images<float>(10, 10);
    const std::vector<double> bound = model.elbo(test_images, 1);
    const std::vector<double> likelihood = model.log_likelihood(test_images, 5000, 2);
    for (std::size_t n = 0; n < likelihood.size(); ++n) {
        REQUIRE(std::isfinite(likelihood[n]));
        CHECK(likelihood[n] < 0.0);
    }
    CHECK(mean_of(likelihood) >= mean_of(bound));
    CHECK(model.log_likelihood(test_images, 50, 2) == model.log_likelihood(test_images, 50, 2));  // seeded

    // A decoder whose logits are 30 for every z: p = 1 in float, yet log p(x|z) is exact:
    // -sum_i [30 - 30 x_i + log1p(e^-30)], so elbo = that - KL in closed form.
    Dense<float>& last = *model.decoder().layer(2).get<Dense<float>>();
    last.weight().setZero();
    last.bias().setConstant(30.0f);
    const std::vector<double> divergence = model.kl_divergence(test_images);
    const std::vector<double> saturated = model.elbo(test_images, 1);
    const std::vector<double> saturated_likelihood = model.log_likelihood(test_images, 2000, 3);
    for (Index n = 0; n < test_images.dimension(0); ++n) {
        double zeros = 0;
        for (Index i = 0; i < 9; ++i) zeros += test_images.data()[n * 9 + i] == 0.0f ? 1 : 0;
        const double expected = -(30 * zeros + 9 * std::log1p(std::exp(-30.0)));
        CHECK(saturated[static_cast<std::size_t>(n)] == Approx(expected - divergence[static_cast<std::size_t>(n)]).epsilon(1e-6));
        // E_q[p(z) / q(z|x)] = 1: the estimate approaches log p(x|z), which does not depend on z.
        CHECK(saturated_likelihood[static_cast<std::size_t>(n)] == Approx(expected).margin(0.2));
    }
}

TEST_CASE("VAE: a Gaussian decoder (no final Sigmoid) trains on 1/2 sum of squared errors per image, and its "
          "log p(x|z) is the unit-variance Gaussian's", "[vae][likelihood]") {
    const Tensor<float> x = test::random_tensor<float>(32, {1, 3, 3}, 15, 0, 1);
    VAE<float> model(Encoder<float>{Flatten<float>(), Dense<float>(5), Tanh<float>(), Dense<float>(4)},
                     Decoder<float>{Dense<float>(6), Tanh<float>(), Dense<float>(9), Reshape<float>({1, 3, 3})}, {1, 3, 3}, 6);
    CHECK(!model.has_logistic_output());
    Adam<float> adam(1e-2);
    const History history = model.fit(x, x, SumSquaredError<float>(Reduction::SumPerSample), adam, quiet<float>(10));
    CHECK(history.term("reconstruction").back() < history.term("reconstruction").front());
    Dense<float>& last = *model.decoder().layer(2).get<Dense<float>>();
    last.weight().setZero();
    last.bias().setConstant(0.25f);
    const std::vector<double> bound = model.elbo(x, 4), divergence = model.kl_divergence(x);
    for (Index n = 0; n < 4; ++n) {
        double squares = 0;
        for (Index i = 0; i < 9; ++i) squares += std::pow(static_cast<double>(x.data()[n * 9 + i]) - 0.25, 2);
        const double expected = -0.5 * squares - 4.5 * std::log(2 * 3.14159265358979323846);
        CHECK(bound[static_cast<std::size_t>(n)] == Approx(expected - divergence[static_cast<std::size_t>(n)]).epsilon(1e-6));
    }
}

TEST_CASE("VAE: encode, encode_distribution, decode, generate and interpolate give the shapes they say",
          "[vae][shapes]") {
    VAE<float> model(Encoder<float>{Conv2D<float>(4, 3, 2, Padding::Same), ReLU<float>(), Flatten<float>(), Dense<float>(6)},
                     Decoder<float>{Dense<float>(4 * 4 * 4), ReLU<float>(), Reshape<float>({4, 4, 4}),
                                    ConvTranspose2D<float>(1, 3, 2, Padding::Same), Sigmoid<float>()},
                     {1, 8, 8}, 3);
    CHECK(model.latent_size() == 3);
    CHECK(model.has_logistic_output());
    const Tensor<float> x = test::random_tensor<float>(4, {1, 8, 8}, 12, 0, 1);
    const auto [mean, log_variance] = model.encode_distribution(x);
    CHECK(sample_shape(mean) == Shape{3, 1, 1});
    CHECK(sample_shape(log_variance) == Shape{3, 1, 1});
    CHECK(test::max_abs_difference(model.encode(x), mean) == 0.0);
    const Tensor<float> samples = model.generate(7, 5);
    CHECK(samples.dimension(0) == 7);
    CHECK(sample_shape(samples) == Shape{1, 8, 8});
    CHECK(test::max_abs_difference(model.generate(7, 5), samples) == 0.0);
    CHECK(test::max_abs_difference(model.generate(7, 6), samples) > 0.0);
    const Tensor<float> a = batch_copy(x, 0, 2), b = batch_copy(x, 2, 2);
    const Tensor<float> path = model.interpolate(a, b, 5);
    CHECK(path.dimension(0) == 10);
    const Tensor<float> ends_a = model.reconstruct(a), ends_b = model.reconstruct(b);
    for (Index i = 0; i < 64; ++i) {
        CHECK(path.data()[i] == Approx(ends_a.data()[i]).margin(1e-6));               // pair 0, step 0
        CHECK(path.data()[4 * 64 + i] == Approx(ends_b.data()[i]).margin(1e-6));      // pair 0, step 4
        CHECK(path.data()[9 * 64 + i] == Approx(ends_b.data()[64 + i]).margin(1e-6)); // pair 1, step 4
    }
    CHECK(model.log_likelihood(x, 10).size() == 4);
}

TEST_CASE("Losses: a Reduction argument for BCE, MSE and SSE, the defaults unchanged, configs round-trip",
          "[vae][losses]") {
    const Tensor<double> p = test::random_tensor<double>(4, {1, 2, 3}, 13, 0.1, 0.9);
    const Tensor<double> t = test::random_tensor<double>(4, {1, 2, 3}, 14, 0, 1);
    Tensor<double> g_mean(4, 1, 2, 3), g_image(4, 1, 2, 3), g_sum(4, 1, 2, 3);
    const BinaryCrossEntropy<double> mean_bce, image_bce(1e-7, Reduction::SumPerSample), sum_bce(1e-7, Reduction::Sum);
    const double mean = mean_bce.compute(view(p), view(t), view(g_mean));
    CHECK(image_bce.compute(view(p), view(t), view(g_image)) == Approx(mean * 6).epsilon(1e-14));
    CHECK(sum_bce.compute_on_logits(view(p), view(t), view(g_sum)) == Approx(mean * 24).epsilon(1e-14));
    CHECK(g_image(1, 0, 1, 2) == Approx(6 * g_mean(1, 0, 1, 2)).epsilon(1e-14));
    CHECK(g_sum(1, 0, 1, 2) == Approx(p(1, 0, 1, 2) - t(1, 0, 1, 2)).epsilon(1e-14));
    std::vector<double> per_mean(4), per_image(4);
    mean_bce.per_sample(view(p), view(t), per_mean.data());
    image_bce.per_sample(view(p), view(t), per_image.data());
    CHECK(per_image[2] == Approx(6 * per_mean[2]).epsilon(1e-14));

    const double mse = MeanSquaredError<double>().compute(view(p), view(t), view(g_mean));
    CHECK(MeanSquaredError<double>(Reduction::SumPerSample).compute(view(p), view(t), view(g_image)) == Approx(mse * 6).epsilon(1e-14));
    const double sse = SumSquaredError<double>().compute(view(p), view(t), view(g_sum));
    CHECK(sse == Approx(mse * 12).epsilon(1e-14));
    CHECK(SumSquaredError<double>(Reduction::SumPerSample).compute(view(p), view(t), view(g_image)) == Approx(sse / 4).epsilon(1e-14));
    CHECK(g_image(3, 0, 0, 1) == Approx(g_sum(3, 0, 0, 1) / 4).epsilon(1e-14));

    CHECK(!mean_bce.config().has("reduction"));  // files of the defaults stay as they were
    CHECK(!SumSquaredError<double>().config().has("reduction"));
    CHECK(BinaryCrossEntropy<double>::from_config(image_bce.config()).reduction() == Reduction::SumPerSample);
    CHECK(BinaryCrossEntropy<double>::from_config(mean_bce.config()).reduction() == Reduction::Mean);
    CHECK(MeanSquaredError<double>::from_config(MeanSquaredError<double>(Reduction::Sum).config()).reduction() == Reduction::Sum);
    CHECK(SumSquaredError<double>::from_config(SumSquaredError<double>(Reduction::SumPerSample).config()).reduction() ==
          Reduction::SumPerSample);
    test::expect_error<FormatError>([] { BinaryCrossEntropy<double>::from_config(Config().set("eps", 1e-7).set("reduction", "per_pixel")); },
                                    "BinaryCrossEntropy: unknown reduction 'per_pixel'");
}

TEST_CASE("VAE: bad arguments are named", "[vae][errors]") {
    test::expect_error<ShapeError>(
        [] { VAE<float>(Encoder<float>{Flatten<float>(), Dense<float>(5)}, Decoder<float>{Dense<float>(9)}, {1, 3, 3}); },
        "the encoder outputs (5, 1, 1) (5 values, an odd count); it must output 2k values");
    test::expect_error<ShapeError>(
        [] {
            VAE<float>(Encoder<float>{Flatten<float>(), Dense<float>(4)}, Decoder<float>{Reshape<float>({1, 3, 1}), Flatten<float>()},
                       {1, 3, 3});
        },
        "the decoder does not take the k = 2 latent values (2, 1, 1)");
    test::expect_error<ShapeError>(
        [] {
            Decoder<float> decoder{Dense<float>(9), Reshape<float>({1, 3, 3})};
            decoder.build({3, 1, 1});
            VAE<float>(Encoder<float>{Flatten<float>(), Dense<float>(4)}, decoder, {1, 3, 3});
        },
        "the decoder was built for input (3, 1, 1) but the latent code has k = 2 values");
    test::expect_error<ShapeError>(
        [] { VAE<float>(Encoder<float>{Flatten<float>(), Dense<float>(4)}, Decoder<float>{Dense<float>(8)}, {1, 3, 3}); },
        "the decoder outputs (8, 1, 1) but the input is (1, 3, 3)");
    test::expect_error<ArgumentError>([] { GaussianSample<float>(-1.0); }, "beta must be finite and >= 0");
    VAE<float> model = small_vae<float>();
    const Tensor<float> x = binary_images<float>(2, 1);
    test::expect_error<ShapeError>([&] { model.decode(Tensor<float>(2, 3, 1, 1)); }, "expected codes of shape (2, 2, 1, 1)");
    test::expect_error<ArgumentError>([&] { model.interpolate(x, x, 1); }, "steps must be >= 2");
    test::expect_error<ArgumentError>([&] { model.log_likelihood(x, 0); }, "samples must be >= 1");
    test::expect_error<ShapeError>([&] { model.encode(Tensor<float>(2, 1, 4, 4)); }, "expected input of shape (2, 1, 3, 3)");
    test::expect_error<ArgumentError>([&] { model.scale_term("kld", 0.5); }, "no layer of the model adds a term 'kld'");
}
