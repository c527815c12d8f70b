// Trains two small float autoencoders (dense, and convolutional with a transposed convolution)
// for a few Adam steps and prints a checksum of every trained weight's bits, the kernel family
// (LATENT_ISA) and the thread count; compare_kernels.cmake runs it on each family and compares.
#include <latent/latent.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>

using namespace latent;

namespace {

// FNV-1a over the bytes of every parameter.
template <class Model> std::uint64_t weight_checksum(Model& model) {
    std::uint64_t hash = 1469598103934665603ull;
    for (const auto& parameter : model.parameters()) {
        const auto* bytes = reinterpret_cast<const unsigned char*>(parameter.value);
        for (std::size_t i = 0; i < static_cast<std::size_t>(parameter.size) * sizeof(float); ++i)
            hash = (hash ^ bytes[i]) * 1099511628211ull;
    }
    return hash;
}

Tensor<float> random_images(Index count, const Shape& shape) {
    Tensor<float> images = make_tensor<float>(count, shape);
    Rng rng(3);
    for (Index i = 0; i < images.size(); ++i) images.data()[i] = static_cast<float>(rng.uniform());
    return images;
}

template <class Model> std::uint64_t train(Model& model, const Tensor<float>& images, const Loss<float>& loss) {
    Adam<float> adam(1e-3);
    FitOptions<float> options;
    options.epochs = 3;
    options.batch_size = 32;
    options.verbose = 0;
    model.fit(images, images, loss, adam, options);
    return weight_checksum(model);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1) set_num_threads(std::atoi(argv[1]));
    Autoencoder<float> dense(Encoder<float>{Dense<float>(300), ReLU<float>(), Dense<float>(40)},
                             Decoder<float>{Dense<float>(300), ReLU<float>(), Dense<float>(784), Sigmoid<float>()},
                             Shape{784, 1, 1}, 11);
    Autoencoder<float> conv(Encoder<float>{Conv2D<float>(16, 3, 2), ReLU<float>(), Conv2D<float>(24, 3)},
                            Decoder<float>{ConvTranspose2D<float>(16, 3, 2), ReLU<float>(), Conv2D<float>(1, 3),
                                           Sigmoid<float>()},
                            Shape{1, 28, 28}, 12);
    const std::uint64_t dense_sum = train(dense, random_images(96, Shape{784, 1, 1}), BinaryCrossEntropy<float>());
    const std::uint64_t conv_sum = train(conv, random_images(96, Shape{1, 28, 28}), MeanSquaredError<float>());
    std::printf("kernel=%s threads=%d dense=%016llx conv=%016llx\n", isa_name(active_isa()), num_threads(),
                static_cast<unsigned long long>(dense_sum), static_cast<unsigned long long>(conv_sum));
    return 0;
}
