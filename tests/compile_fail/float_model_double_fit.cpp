// Must not compile: a float Autoencoder's fit() on Tensor<double> data.
#include <latent/nn.hpp>

int main() {
    using namespace latent;
    Autoencoder<float> model(Encoder<float>{Flatten<float>(), Dense<float>(4)},
                             Decoder<float>{Dense<float>(16), Reshape<float>({1, 4, 4})}, {1, 4, 4});
    const Tensor<double> x = make_tensor<double>(2, Shape{1, 4, 4}).setZero();
    Adam<float> adam;
    model.fit(x, x, MeanSquaredError<float>(), adam);
}
