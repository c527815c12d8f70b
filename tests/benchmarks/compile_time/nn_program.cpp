// A small program of the network half: build, train, save, load and run a dense autoencoder.
// compile_time.sh compiles it with latent/nn.hpp and with latent/latent.hpp (UMBRELLA).
#include UMBRELLA

#include <iostream>

int main() {
    using namespace latent;
    const Tensor<float> x = make_tensor<float>(64, Shape{1, 8, 8}).setRandom();
    Autoencoder<float> model(Encoder<float>{Flatten<float>(), Dense<float>(16), ReLU<float>()},
                             Decoder<float>{Dense<float>(64), Sigmoid<float>(), Reshape<float>({1, 8, 8})}, {1, 8, 8});
    Adam<float> adam(1e-3);
    FitOptions<float> options;
    options.verbose = 0;
    model.fit(x, x, MeanSquaredError<float>(), adam, options);
    model.save("nn_program.latent");
    auto loaded = Autoencoder<float>::load("nn_program.latent");
    std::cout << loaded.reconstruction_error(x)[0] << "\n";
}
