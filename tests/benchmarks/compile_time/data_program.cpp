// A small program of the data half: read MNIST, corrupt it, measure and draw it.
// compile_time.sh compiles it with latent/data.hpp and with latent/latent.hpp (UMBRELLA).
#include UMBRELLA

#include <iostream>

int main(int argc, char** argv) {
    using namespace latent;
    const MnistFiles files = find_mnist(argc > 1 ? argv[1] : "data/mnist");
    const Tensor<float> clean = samples(read_idx_images(files.test_images), 0, 10);
    Tensor<float> noisy;
    Corruption<float>(GaussianNoise(0.0, 0.5)).apply(clean, noisy, /*seed=*/1);
    std::cout << "PSNR " << psnr(noisy, clean) << " dB\n";
    save_image_grid("data_program.png", {clean, noisy});
}
