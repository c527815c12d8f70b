// The latent side of torch_weights.py: the example programs' networks, their weights moved
// through .safetensors and .npz files (io/pytorch.hpp), and their outputs on the script's inputs.
//
//   torch_weights list                         the network names, one a line
//   torch_weights describe NETWORK             the model kind, its input, then one line per layer:
//                                              "<encoder|decoder> <type> in=C,H,W out=C,H,W key=value..."
//                                              (the script builds the torch network from it)
//   torch_weights forward NETWORK WEIGHTS X Y  imports WEIGHTS, writes reconstruct(X) to Y (.npy)
//   torch_weights train NETWORK X STEPS PREFIX trains STEPS full-batch Adam steps on X (MSE), then
//                                              writes PREFIX.safetensors, PREFIX.npz (deflated),
//                                              PREFIX-stored.npz and reconstruct(X) as PREFIX-y.npy
// Exit status 2 with a message on stderr for bad arguments or files.
#include <latent/data/npy.hpp>
#include <latent/io/pytorch.hpp>
#include <latent/layers/activations.hpp>
#include <latent/layers/dropout.hpp>
#include <latent/layers/max_pool2d.hpp>
#include <latent/layers/reshape.hpp>
#include <latent/layers/upsample2d.hpp>
#include <latent/losses/mse.hpp>
#include <latent/optimizers/adam.hpp>
#include <latent/training/fit.hpp>

#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <type_traits>
#include <variant>

using namespace latent;

namespace {

using Model = std::variant<Autoencoder<float>, VAE<float>>;
using F = float;

// The networks of examples/*.cpp, with their default sizes.
const std::map<std::string, std::function<Model()>>& networks() {
    static const std::map<std::string, std::function<Model()>> all{
        {"mnist_denoise", [] {
             return Autoencoder<F>(Encoder<F>{Conv2D<F>(32, 3), ReLU<F>(), MaxPool2D<F>(2, 2, Padding::Same), Conv2D<F>(32, 3),
                                              ReLU<F>(), MaxPool2D<F>(2, 2, Padding::Same)},
                                   Decoder<F>{Conv2D<F>(32, 3), ReLU<F>(), UpSample2D<F>(2), Conv2D<F>(32, 3), ReLU<F>(),
                                              UpSample2D<F>(2), Conv2D<F>(1, 3), Sigmoid<F>()},
                                   Shape{1, 28, 28}, 1);
         }},
        {"dense_autoencoder", [] {
             return Autoencoder<F>(Encoder<F>{Flatten<F>(), Dense<F>(256), ReLU<F>(), Dense<F>(128), ReLU<F>(), Dense<F>(32)},
                                   Decoder<F>{Dense<F>(128), ReLU<F>(), Dense<F>(256), ReLU<F>(), Dense<F>(784), Sigmoid<F>(),
                                              Reshape<F>(Shape{1, 28, 28})},
                                   Shape{1, 28, 28}, 1);
         }},
        {"olivetti_conv", [] {
             return Autoencoder<F>(Encoder<F>{Conv2D<F>(32, 3), ReLU<F>(), Conv2D<F>(64, 3, 2), ReLU<F>(), Conv2D<F>(64, 3), ReLU<F>()},
                                   Decoder<F>{ConvTranspose2D<F>(32, 3, 2), ReLU<F>(), Conv2D<F>(1, 3), Sigmoid<F>()},
                                   Shape{1, 32, 32}, 1);
         }},
        {"olivetti_tutorial", [] {
             return Autoencoder<F>(
                 Encoder<F>{Conv2D<F>(16, 3, 2), ReLU<F>(), Conv2D<F>(32, 3, 2), ReLU<F>(), Conv2D<F>(64, 3, 2), ReLU<F>(),
                            Conv2D<F>(128, 3, 2), ReLU<F>(), Flatten<F>(), Dense<F>(256), Sigmoid<F>()},
                 Decoder<F>{Dense<F>(512), ReLU<F>(), Reshape<F>(Shape{128, 2, 2}), ConvTranspose2D<F>(64, 3, 2), ReLU<F>(),
                            ConvTranspose2D<F>(32, 3, 2), ReLU<F>(), ConvTranspose2D<F>(16, 3, 2), ReLU<F>(),
                            ConvTranspose2D<F>(1, 3, 2), Sigmoid<F>()},
                 Shape{1, 32, 32}, 1);
         }},
        {"face_inpainting", [] {
             return Autoencoder<F>(Encoder<F>{Conv2D<F>(32, 3, 2), ReLU<F>(), Conv2D<F>(64, 3, 2), ReLU<F>(), Conv2D<F>(64, 3),
                                              ReLU<F>(), Conv2D<F>(64, 3), ReLU<F>()},
                                   Decoder<F>{ConvTranspose2D<F>(64, 3, 2), ReLU<F>(), ConvTranspose2D<F>(32, 3, 2), ReLU<F>(),
                                              Conv2D<F>(1, 3), Sigmoid<F>()},
                                   Shape{1, 64, 64}, 1);
         }},
        {"feature_learning_batchnorm", [] {
             return Autoencoder<F>(Encoder<F>{Dense<F>(256), BatchNorm<F>(), Sigmoid<F>(), Dense<F>(64), Sigmoid<F>()},
                                   Decoder<F>{Dense<F>(256), ReLU<F>(), Dense<F>(784), Sigmoid<F>(), Reshape<F>(Shape{1, 28, 28})},
                                   Shape{1, 28, 28}, 1);
         }},
        {"feature_learning_dropout", [] {
             return Autoencoder<F>(Encoder<F>{Dense<F>(256), Sigmoid<F>(), Dropout<F>(0.25), Dense<F>(64), Sigmoid<F>()},
                                   Decoder<F>{Dense<F>(256), ReLU<F>(), Dense<F>(784), Sigmoid<F>(), Reshape<F>(Shape{1, 28, 28})},
                                   Shape{1, 28, 28}, 1);
         }},
        {"feature_learning_contractive", [] {
             return Autoencoder<F>(Encoder<F>{ContractiveDense<F>(256, 3e-5), Dense<F>(64), Sigmoid<F>()},
                                   Decoder<F>{Dense<F>(256), ReLU<F>(), Dense<F>(784), Sigmoid<F>(), Reshape<F>(Shape{1, 28, 28})},
                                   Shape{1, 28, 28}, 1);
         }},
        {"anomaly_detection", [] {
             return Autoencoder<F>(Encoder<F>{Conv2D<F>(16, 3), ReLU<F>(), MaxPool2D<F>(2, 2, Padding::Same), Conv2D<F>(8, 3),
                                              ReLU<F>(), MaxPool2D<F>(2, 2, Padding::Same), Dense<F>(32)},
                                   Decoder<F>{Dense<F>(8 * 7 * 7), ReLU<F>(), Reshape<F>(Shape{8, 7, 7}), UpSample2D<F>(2),
                                              Conv2D<F>(16, 3), ReLU<F>(), UpSample2D<F>(2), Conv2D<F>(1, 3), Sigmoid<F>()},
                                   Shape{1, 28, 28}, 1);
         }},
        {"tabular_anomaly", [] {
             return Autoencoder<F>(Encoder<F>{Dense<F>(16), Tanh<F>(), Dense<F>(4)}, Decoder<F>{Dense<F>(16), Tanh<F>(), Dense<F>(30)},
                                   Shape{30, 1, 1}, 1);
         }},
        {"mnist_vae", [] {
             return VAE<F>(Encoder<F>{Flatten<F>(), Dense<F>(400), ReLU<F>(), Dense<F>(2 * 20)},
                           Decoder<F>{Dense<F>(400), ReLU<F>(), Dense<F>(784), Sigmoid<F>(), Reshape<F>({1, 28, 28})}, Shape{1, 28, 28},
                           1, GaussianSample<F>(1.0));
         }},
        {"mnist_vae_conv", [] {
             return VAE<F>(Encoder<F>{Conv2D<F>(32, 3, 2), ReLU<F>(), Conv2D<F>(64, 3, 2), ReLU<F>(), Flatten<F>(), Dense<F>(2 * 20)},
                           Decoder<F>{Dense<F>(64 * 7 * 7), ReLU<F>(), Reshape<F>({64, 7, 7}), ConvTranspose2D<F>(32, 3, 2), ReLU<F>(),
                                      ConvTranspose2D<F>(1, 3, 2), Sigmoid<F>()},
                           Shape{1, 28, 28}, 1, GaussianSample<F>(1.0));
         }},
    };
    return all;
}

Model build(const std::string& name) {
    const auto found = networks().find(name);
    if (found == networks().end()) throw ArgumentError("unknown network '" + name + "' (see: torch_weights list)");
    return found->second();
}

std::string shape_csv(const Shape& shape) {
    return std::to_string(shape.channels) + "," + std::to_string(shape.height) + "," + std::to_string(shape.width);
}

void describe(const std::string& part, const Sequential<F>& model) {
    for (Index i = 0; i < model.size(); ++i) {
        const Layer<F>& layer = model.layer(i);
        std::cout << part << " " << layer.type() << " in=" << shape_csv(layer.input_shape()) << " out=" << shape_csv(layer.output_shape());
        const Config config = layer.config();
        for (const auto& [key, value] : config.entries()) std::cout << " " << key << "=" << value;
        std::cout << "\n";
    }
}

int run(int argc, char** argv) {
    const std::string command = argc > 1 ? argv[1] : "";
    if (command == "list" && argc == 2) {
        for (const auto& entry : networks()) std::cout << entry.first << "\n";
        return 0;
    }
    if (argc < 3) throw ArgumentError("usage: torch_weights list | describe NETWORK | forward NETWORK WEIGHTS X Y | train NETWORK X STEPS PREFIX");
    Model model = build(argv[2]);
    return std::visit(
        [&](auto& net) {
            if (command == "describe" && argc == 3) {
                const bool vae = std::is_same_v<std::decay_t<decltype(net)>, VAE<F>>;
                std::cout << (vae ? "vae" : "autoencoder") << " input="
                          << shape_csv(net.encoder().input_shape()) << "\n";
                describe("encoder", net.encoder());
                describe("decoder", net.decoder());
            } else if (command == "forward" && argc == 6) {
                import_weights(net, argv[3]);
                save_npy(argv[5], net.reconstruct(load_npy<F>(argv[4])));
            } else if (command == "train" && argc == 6) {
                const Tensor<F> x = load_npy<F>(argv[3]);
                Adam<F> adam(1e-3);
                FitOptions<F> options;
                options.epochs = std::stoi(argv[4]);
                options.batch_size = x.dimension(0);
                options.verbose = 0;
                net.fit(x, x, MeanSquaredError<F>(), adam, options);
                const std::string prefix = argv[5];
                export_weights(net, prefix + ".safetensors");
                export_weights(net, prefix + ".npz");
                export_weights(net, prefix + "-stored.npz", NpzCompression::Stored);
                save_npy(prefix + "-y.npy", net.reconstruct(x));
            } else {
                throw ArgumentError("bad arguments for '" + command + "'");
            }
            return 0;
        },
        model);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& error) {
        std::cerr << "torch_weights: " << error.what() << "\n";
        return 2;
    }
}
