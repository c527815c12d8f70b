// Must not compile: a Tensor<float> into a double Sequential's predict().
#include <latent/nn.hpp>

int main() {
    using namespace latent;
    Sequential<double> model{Flatten<double>(), Dense<double>(4)};
    model.build({1, 4, 4});
    const Tensor<float> x = make_tensor<float>(2, Shape{1, 4, 4}).setZero();
    model.predict(x);
}
