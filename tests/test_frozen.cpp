// Frozen (models/frozen.hpp): a model prepared for serving gives the model's outputs bit for
// bit, one sample at a time or in batches, and the prepared copy cannot go stale.
#include "helpers.hpp"

#include <cstring>
#include <type_traits>
#include <vector>

using namespace latent;

namespace {

// Unit counts that leave part-filled vectors and groups of rows in the one-sample product
// (8-row vectors, 64-row groups), and inputs over two depth blocks.
template <class T> Autoencoder<T> dense_model() {
    return Autoencoder<T>(Encoder<T>{Flatten<T>(), Dense<T>(137), ReLU<T>(), Dense<T>(64), ReLU<T>(), Dense<T>(9)},
                          Decoder<T>{Dense<T>(70), ReLU<T>(), Dense<T>(300), Sigmoid<T>(), Reshape<T>({3, 10, 10})},
                          {3, 10, 10}, 8);
}

template <class T> bool same_bits(const T* a, const T* b, Index count) {
    return std::memcmp(a, b, sizeof(T) * static_cast<std::size_t>(count)) == 0;
}

// Frozen gives the model's bits, for one sample and for a batch. On the float vector kernels a
// sample alone also gives the bits it has in a batch (kernels/sgemm.hpp); Eigen's products (the
// portable path, double) promise that for neither.
template <class T> void check_one_sample_bits() {
    auto model = dense_model<T>();
    const Tensor<T> samples = test::random_tensor<T>(5, {3, 10, 10}, 3, 0.0, 1.0);
    const Tensor<T> batch_output = model.reconstruct(samples, 5);
    Frozen<Autoencoder<T>> frozen(model);
    const Index size = 300;
    const bool batch_independent = std::is_same_v<T, float> && kernels::sgemm_available();
    for (Index n = 0; n < 5; ++n) {
        INFO("sample " << n);
        const ConstTensorView<T> sample = view<T>(samples.data() + n * size, 1, Shape{3, 10, 10});
        const std::vector<T> alone(model.forward(sample).data(), model.forward(sample).data() + size);
        const ConstTensorView<T> served = frozen.forward(sample);
        CHECK(same_bits(served.data(), alone.data(), size));
        if (batch_independent) CHECK(same_bits(served.data(), batch_output.data() + n * size, size));
    }
    Frozen<Autoencoder<T>> copy = frozen;  // copies the frozen layers' aligned weights too
    const ConstTensorView<T> first_sample = view<T>(samples.data(), 1, Shape{3, 10, 10});
    const std::vector<T> served_first(frozen.forward(first_sample).data(), frozen.forward(first_sample).data() + size);
    CHECK(same_bits(copy.forward(first_sample).data(), served_first.data(), size));
    const Tensor<T> frozen_batch = frozen.reconstruct(samples, 5);
    CHECK(same_bits(frozen_batch.data(), batch_output.data(), batch_output.size()));
    CHECK(frozen.reconstruction_error(samples) == model.reconstruction_error(samples));
}

}  // namespace

TEST_CASE("frozen: one sample at a time gives the bits of the model's batch (float kernels, double)", "[frozen]") {
    check_one_sample_bits<float>();
    check_one_sample_bits<double>();
}

TEST_CASE("frozen: training the model afterwards leaves the frozen copy serving the old weights", "[frozen]") {
    auto model = dense_model<float>();
    const Tensor<float> data = test::random_tensor<float>(16, {3, 10, 10}, 4, 0.0, 1.0);
    const Tensor<float> before = model.reconstruct(data);
    Frozen<Autoencoder<float>> frozen(model);
    Adam<float> adam(1e-2);
    FitOptions<float> options;
    options.epochs = 2;
    options.verbose = 0;
    model.fit(data, data, MeanSquaredError<float>(), adam, options);
    const Tensor<float> served = frozen.reconstruct(data);
    CHECK(same_bits(served.data(), before.data(), before.size()));
    const Tensor<float> after = model.reconstruct(data);
    CHECK_FALSE(same_bits(after.data(), before.data(), before.size()));
}

TEST_CASE("frozen: a Dense layer drops its copy of the weights when they may change (backward, weight())",
          "[frozen]") {
    Dense<float> layer(37);
    Rng rng(2);
    layer.build({50, 1, 1}, rng);
    CHECK_FALSE(layer.frozen());
    if (!kernels::sgemm_available()) {
        layer.freeze();
        CHECK_FALSE(layer.frozen());  // the copy is only for the vector kernels
        test::skip("the rest needs AVX2 or AVX-512");
        return;
    }
    layer.freeze();
    CHECK(layer.frozen());
    layer.weight()(0, 0) = 3.0f;  // a write through the writable accessor
    CHECK_FALSE(layer.frozen());

    const Tensor<float> x = test::random_tensor<float>(1, {50, 1, 1}, 5);
    const Tensor<float> dy = test::random_tensor<float>(1, {37, 1, 1}, 6);
    Tensor<float> y(1, 37, 1, 1), dx(1, 50, 1, 1);
    const Tensor<float>& output = y;
    layer.freeze();
    layer.forward(view(x), view(y));
    CHECK(y.data()[0] != 0.0f);
    layer.backward(view(x), view(output), view(dy), view(dx));
    CHECK_FALSE(layer.frozen());
}
