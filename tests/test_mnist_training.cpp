// End-to-end: the dense autoencoder of the Keras tutorial on real MNIST digits.
#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <filesystem>

#include "helpers.hpp"

using namespace latent;

namespace {

// The first `count` samples of a tensor.
Tensor<float> first_samples(const Tensor<float>& images, Index count) {
    const Index n = std::min(count, images.dimension(0));
    return images.slice(Eigen::array<Index, 4>{0, 0, 0, 0},
                        Eigen::array<Index, 4>{n, images.dimension(1), images.dimension(2), images.dimension(3)});
}

}  // namespace

TEST_CASE("mnist: dense 784-256-128-32 autoencoder reaches test PSNR >= 15 dB in 10 epochs", "[mnist][slow]") {
#ifdef LATENT_MNIST_DIR
    const std::string folder = LATENT_MNIST_DIR;
#else
    const std::string folder;
#endif
    if (folder.empty() || !std::filesystem::exists(folder)) {
        test::skip("no MNIST files in '" + folder + "' (run examples/get_mnist.sh)");
        return;
    }
    const MnistFiles files = find_mnist(folder);
    const Tensor<float> train = first_samples(read_idx_images<float>(files.train_images), 8000);
    const Tensor<float> test_images = first_samples(read_idx_images<float>(files.test_images), 2000);
    REQUIRE(train.dimension(0) == 8000);
    REQUIRE(test_images.dimension(0) == 2000);

    Autoencoder<float> model(
        Encoder<float>{Flatten<float>(), Dense<float>(256), ReLU<float>(), Dense<float>(128), ReLU<float>(), Dense<float>(32),
                       ReLU<float>()},
        Decoder<float>{Dense<float>(128), ReLU<float>(), Dense<float>(256), ReLU<float>(), Dense<float>(784),
                       Reshape<float>({1, 28, 28}), Sigmoid<float>()},
        {1, 28, 28}, /*seed=*/1);
    Adam<float> adam(1e-3);
    FitOptions<float> options;
    options.epochs = 10;
    options.batch_size = 128;
    options.seed = 1;
    options.verbose = 0;
    model.fit(train, train, BinaryCrossEntropy<float>(), adam, options);
    const Tensor<float> reconstructed = model.reconstruct(test_images);
    const double test_psnr = psnr(reconstructed, test_images);
    std::cout << "MNIST dense autoencoder: test PSNR " << test_psnr << " dB after 10 epochs\n";
    CHECK(test_psnr >= 15.0);
}
