// The control of the compile-fail cases: the same calls with matching scalar types compile
// (it is built with the tests), so the cases fail for their scalar types only.
#include <latent/nn.hpp>

int main() {
    using namespace latent;
    Autoencoder<float> model(Encoder<float>{Flatten<float>(), Dense<float>(4)},
                             Decoder<float>{Dense<float>(16), Reshape<float>({1, 4, 4})}, {1, 4, 4});
    const Tensor<float> x = make_tensor<float>(2, Shape{1, 4, 4}).setZero();
    Adam<float> adam;
    FitOptions<float> options;
    options.verbose = 0;
    model.fit(x, x, MeanSquaredError<float>(), adam, options);
    model.reconstruct(x);
    Sequential<double> doubles{Flatten<double>(), Dense<double>(4)};
    doubles.build({1, 4, 4});
    doubles.predict(make_tensor<double>(2, Shape{1, 4, 4}).setZero());
}
