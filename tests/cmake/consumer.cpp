// A program that uses latent as any user's would: a Dense layer with weights set by hand, a
// forward pass over a batch, and the result checked against arithmetic done here; then weights
// through a .safetensors file, whose JSON header needs the nlohmann-json the package brings.
#include <latent/io/pytorch.hpp>
#include <latent/latent.hpp>

#include <cstdio>

int main() {
    // W = [[1, 0, -1], [0.5, 0.5, 0.5]], b = (0.25, -1), every sample x = (1, 2, 3):
    // y = W x + b = (1 + 0 - 3 + 0.25, 0.5 + 1 + 1.5 - 1) = (-1.75, 2), exact in float.
    latent::set_num_threads(2);
    latent::Layer<float> layer = latent::Dense<float>(2);
    latent::Rng rng(1);
    layer.build({3, 1, 1}, rng);
    auto* dense = layer.get<latent::Dense<float>>();
    dense->weight() << 1.0f, 0.0f, -1.0f, 0.5f, 0.5f, 0.5f;
    dense->bias() << 0.25f, -1.0f;

    const latent::Index batch = 64;  // several chunks, so two threads share the work
    latent::Tensor<float> x = latent::make_tensor<float>(batch, {3, 1, 1});
    for (latent::Index n = 0; n < batch; ++n)
        for (latent::Index i = 0; i < 3; ++i) x(n, i, 0, 0) = static_cast<float>(i + 1);
    latent::Tensor<float> y;
    layer.forward(x, y);

    for (latent::Index n = 0; n < batch; ++n) {
        if (y(n, 0, 0, 0) != -1.75f || y(n, 1, 0, 0) != 2.0f) {
            std::printf("consumer: sample %ld gave (%g, %g), expected (-1.75, 2)\n",
                        static_cast<long>(n), y(n, 0, 0, 0), y(n, 1, 0, 0));
            return 1;
        }
    }
    latent::Sequential<float> original{latent::Dense<float>(2)}, copy{latent::Dense<float>(2)};
    original.build({3, 1, 1}, 1);
    copy.build({3, 1, 1}, 2);
    latent::export_weights(original, "consumer-weights.safetensors");
    latent::import_weights(copy, "consumer-weights.safetensors");
    if (copy.layer(0).get<latent::Dense<float>>()->weight() != original.layer(0).get<latent::Dense<float>>()->weight()) {
        std::printf("consumer: the weights read back from consumer-weights.safetensors differ\n");
        return 1;
    }
    std::printf("consumer: Dense forward gave (-1.75, 2) for all %ld samples; threads: %s\n",
                static_cast<long>(batch), latent::has_threads() ? "yes" : "no");
    return 0;
}
