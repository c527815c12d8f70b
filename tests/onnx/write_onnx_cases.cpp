// Writes the ONNX cross-check cases into a folder: for each case NAME, NAME.onnx (export_onnx),
// NAME.input.npy and NAME.expected.npy (latent's output on that input), and one line "NAME" in
// cases.txt. run_onnxruntime.mjs runs every file in ONNX Runtime and compares; check_onnx.py
// runs the ONNX checker on every file.
//
// The cases: the example programs' networks (examples/*.cpp, rebuilt here layer for layer: their
// build functions live inside the programs) with every part they export, and each windowed
// layer configuration of tests/layer_cases.hpp alone, plus the element-wise and normalisation
// layers. Biases, batch-norm parameters and running statistics are random, not their initial
// zeros and ones, so each of them changes the output.
//
// Usage: write_onnx_cases FOLDER
#include <latent/io/onnx_export.hpp>
#include <latent/data/npy.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "../layer_cases.hpp"

using namespace latent;

namespace {

class CaseWriter {
public:
    explicit CaseWriter(std::filesystem::path folder) : folder_(std::move(folder)) {
        std::filesystem::create_directories(folder_);
    }

    // One case: the model's file, the input and the output latent computes.
    template <class Model>
    void add(const std::string& name, const Model& model, const OnnxOptions<float>& options, const Tensor<float>& input,
             const Tensor<float>& expected) {
        export_onnx(model, path(name + ".onnx"), options);
        save_npy(path(name + ".input.npy"), input);
        save_npy(path(name + ".expected.npy"), expected);
        names_.push_back(name);
    }

    // cases.txt, one name a line: written last, so a folder with it holds every case.
    void write_list() const {
        std::ofstream list(path("cases.txt"));
        for (const auto& name : names_) list << name << "\n";
        if (!list) throw IoError("cannot write " + path("cases.txt"));
    }

private:
    std::string path(const std::string& file) const { return (folder_ / file).string(); }
    std::filesystem::path folder_;
    std::vector<std::string> names_;
};

Tensor<float> uniform_tensor(Index batch, const Shape& shape, std::uint64_t seed, double low, double high) {
    Rng rng(seed);
    Tensor<float> tensor = make_tensor<float>(batch, shape);
    for (Index i = 0; i < tensor.size(); ++i) tensor.data()[i] = static_cast<float>(rng.uniform(low, high));
    return tensor;
}

// Random biases and batch-norm statistics, so that none of them is zero or one by accident.
void randomise_state(Sequential<float>& model, std::uint64_t seed) {
    Rng rng(seed);
    auto fill = [&](float* values, Index size, double low, double high) {
        for (Index i = 0; i < size; ++i) values[i] = static_cast<float>(rng.uniform(low, high));
    };
    for (Index i = 0; i < model.size(); ++i) {
        Layer<float>& layer = model.layer(i);
        const bool normalises = layer.is<BatchNorm<float>>() || layer.is<BatchNorm2D<float>>();
        for (auto& parameter : layer.parameters()) {
            if (parameter.name == "bias") fill(parameter.value, parameter.size, -0.3, 0.3);
            if (normalises && parameter.name == "weight") fill(parameter.value, parameter.size, 0.5, 1.5);
        }
        for (auto& buffer : layer.buffers()) {
            if (buffer.name == "running_mean") fill(buffer.value, buffer.size, -0.3, 0.3);
            if (buffer.name == "running_var") fill(buffer.value, buffer.size, 0.5, 1.5);
        }
    }
}

OnnxOptions<float> part(OnnxPart which) {
    OnnxOptions<float> options;
    options.part = which;
    return options;
}

// An autoencoder's three exports: the reconstruction, the encoder and the decoder (on codes of
// the input).
void add_autoencoder(CaseWriter& cases, const std::string& name, Autoencoder<float> model, std::uint64_t seed,
                     bool all_parts = true) {
    randomise_state(model.encoder(), seed);
    randomise_state(model.decoder(), seed + 1);
    const Index batch = 2;
    const Tensor<float> x = uniform_tensor(batch, model.input_shape(), seed + 2, 0.0, 1.0);
    cases.add(name + ".reconstruction", model, part(OnnxPart::Reconstruction), x, model.reconstruct(x));
    if (!all_parts) return;
    const Tensor<float> codes = model.encode(x);
    cases.add(name + ".encoder", model, part(OnnxPart::Encoder), x, codes);
    cases.add(name + ".decoder", model, part(OnnxPart::Decoder), codes, model.decode(codes));
}

// The VAE's mean path: encode (mu), decode (z ~ uniform in [-2, 2)), reconstruct through mu.
void add_vae(CaseWriter& cases, const std::string& name, VAE<float> model, std::uint64_t seed) {
    randomise_state(model.encoder(), seed);
    randomise_state(model.decoder(), seed + 1);
    const Tensor<float> x = uniform_tensor(2, model.input_shape(), seed + 2, 0.0, 1.0);
    const Tensor<float> z = uniform_tensor(2, model.latent_shape(), seed + 3, -2.0, 2.0);
    cases.add(name + ".reconstruction", model, part(OnnxPart::Reconstruction), x, model.reconstruct(x));
    cases.add(name + ".encoder", model, part(OnnxPart::Encoder), x, model.encode(x));
    cases.add(name + ".decoder", model, part(OnnxPart::Decoder), z, model.decode(z));
}

void add_examples(CaseWriter& cases) {
    add_autoencoder(cases, "mnist_denoise",
                    Autoencoder<float>(Encoder<float>{Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
                                                      Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same)},
                                       Decoder<float>{Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
                                                      Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
                                                      Conv2D<float>(1, 3), Sigmoid<float>()},
                                       {1, 28, 28}, 1),
                    10);
    add_autoencoder(cases, "dense_autoencoder",
                    Autoencoder<float>(Encoder<float>{Flatten<float>(), Dense<float>(256), ReLU<float>(), Dense<float>(128),
                                                      ReLU<float>(), Dense<float>(32)},
                                       Decoder<float>{Dense<float>(128), ReLU<float>(), Dense<float>(256), ReLU<float>(),
                                                      Dense<float>(784), Sigmoid<float>(), Reshape<float>(Shape{1, 28, 28})},
                                       {1, 28, 28}, 2),
                    20);
    add_autoencoder(cases, "olivetti_denoise_conv",
                    Autoencoder<float>(Encoder<float>{Conv2D<float>(32, 3), ReLU<float>(), Conv2D<float>(64, 3, 2), ReLU<float>(),
                                                      Conv2D<float>(64, 3), ReLU<float>()},
                                       Decoder<float>{ConvTranspose2D<float>(32, 3, 2), ReLU<float>(), Conv2D<float>(1, 3),
                                                      Sigmoid<float>()},
                                       {1, 32, 32}, 3),
                    30);
    add_autoencoder(cases, "olivetti_denoise_tutorial",
                    Autoencoder<float>(Encoder<float>{Conv2D<float>(16, 3, 2), ReLU<float>(), Conv2D<float>(32, 3, 2), ReLU<float>(),
                                                      Conv2D<float>(64, 3, 2), ReLU<float>(), Conv2D<float>(128, 3, 2), ReLU<float>(),
                                                      Flatten<float>(), Dense<float>(256), Sigmoid<float>()},
                                       Decoder<float>{Dense<float>(512), ReLU<float>(), Reshape<float>(Shape{128, 2, 2}),
                                                      ConvTranspose2D<float>(64, 3, 2), ReLU<float>(),
                                                      ConvTranspose2D<float>(32, 3, 2), ReLU<float>(),
                                                      ConvTranspose2D<float>(16, 3, 2), ReLU<float>(),
                                                      ConvTranspose2D<float>(1, 3, 2), Sigmoid<float>()},
                                       {1, 32, 32}, 4),
                    40);
    add_autoencoder(cases, "face_inpainting",
                    Autoencoder<float>(Encoder<float>{Conv2D<float>(32, 3, 2), ReLU<float>(), Conv2D<float>(64, 3, 2), ReLU<float>(),
                                                      Conv2D<float>(64, 3), ReLU<float>(), Conv2D<float>(64, 3), ReLU<float>()},
                                       Decoder<float>{ConvTranspose2D<float>(64, 3, 2), ReLU<float>(),
                                                      ConvTranspose2D<float>(32, 3, 2), ReLU<float>(), Conv2D<float>(1, 3),
                                                      Sigmoid<float>()},
                                       {1, 64, 64}, 5),
                    50);
    add_autoencoder(cases, "anomaly_detection",
                    Autoencoder<float>(Encoder<float>{Conv2D<float>(16, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
                                                      Conv2D<float>(8, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
                                                      Dense<float>(32)},
                                       Decoder<float>{Dense<float>(8 * 7 * 7), ReLU<float>(), Reshape<float>(Shape{8, 7, 7}),
                                                      UpSample2D<float>(2), Conv2D<float>(16, 3), ReLU<float>(),
                                                      UpSample2D<float>(2), Conv2D<float>(1, 3), Sigmoid<float>()},
                                       {1, 28, 28}, 6),
                    60);
    add_autoencoder(cases, "tabular_anomaly",
                    Autoencoder<float>(Encoder<float>{Dense<float>(16), Tanh<float>(), Dense<float>(4)},
                                       Decoder<float>{Dense<float>(16), Tanh<float>(), Dense<float>(30)}, {30, 1, 1}, 7),
                    70);
    // feature_learning: 784-256-64-256-784 with each variant's first layer and code (the denoising
    // variant trains the plain network: its masking noise is applied to the data, not in the model).
    const std::vector<std::pair<std::string, std::vector<Layer<float>>>> variants = {
        {"plain", {Dense<float>(256), Sigmoid<float>()}},
        {"contractive", {ContractiveDense<float>(256, 3e-5)}},
        {"dropout", {Dense<float>(256), Sigmoid<float>(), Dropout<float>(0.25)}},
        {"batchnorm", {Dense<float>(256), BatchNorm<float>(), Sigmoid<float>()}},
        {"sparse_l1", {Dense<float>(256), Sigmoid<float>()}},
        {"sparse_kl", {Dense<float>(256), Sigmoid<float>()}},
    };
    std::uint64_t seed = 80;
    for (const auto& [variant, first] : variants) {
        std::vector<Layer<float>> layers = first;
        layers.push_back(Dense<float>(64));
        layers.push_back(Sigmoid<float>());
        if (variant == "sparse_l1") layers.push_back(ActivityL1<float>(1e-3));
        if (variant == "sparse_kl") layers.push_back(KLSparsity<float>(0.05, 1e-2));
        add_autoencoder(cases, "feature_learning_" + variant,
                        Autoencoder<float>(Encoder<float>(layers),
                                           Decoder<float>{Dense<float>(256), ReLU<float>(), Dense<float>(784), Sigmoid<float>(),
                                                          Reshape<float>(Shape{1, 28, 28})},
                                           {1, 28, 28}, seed),
                        seed, /*all_parts=*/false);
        seed += 10;
    }
    add_vae(cases, "mnist_vae_dense",
            VAE<float>(Encoder<float>{Flatten<float>(), Dense<float>(400), ReLU<float>(), Dense<float>(2 * 20)},
                       Decoder<float>{Dense<float>(400), ReLU<float>(), Dense<float>(784), Sigmoid<float>(),
                                      Reshape<float>({1, 28, 28})},
                       {1, 28, 28}, 8),
            150);
    add_vae(cases, "mnist_vae_conv",
            VAE<float>(Encoder<float>{Conv2D<float>(32, 3, 2), ReLU<float>(), Conv2D<float>(64, 3, 2), ReLU<float>(),
                                      Flatten<float>(), Dense<float>(2 * 20)},
                       Decoder<float>{Dense<float>(64 * 7 * 7), ReLU<float>(), Reshape<float>({64, 7, 7}),
                                      ConvTranspose2D<float>(32, 3, 2), ReLU<float>(), ConvTranspose2D<float>(1, 3, 2),
                                      Sigmoid<float>()},
                       {1, 28, 28}, 9),
            160);
}

// One layer alone, on a batch of 3 inputs in [-1, 1).
void add_layer(CaseWriter& cases, const std::string& name, Layer<float> layer, const Shape& input, std::uint64_t seed) {
    Sequential<float> model{std::move(layer)};
    model.build(input, seed);
    randomise_state(model, seed + 1);
    const Tensor<float> x = uniform_tensor(3, input, seed + 2, -1.0, 1.0);
    cases.add(name, model, OnnxOptions<float>{}, x, model.predict(x));
}

// "Conv2D k=3x2 s=2x1 same 8x7 C=2 F=3" -> "Conv2D_k3x2_s2x1_same_8x7_C2_F3", a file name.
std::string file_name(std::string label) {
    std::string name;
    for (const char c : label) {
        if (c == ' ') name += '_';
        else if (c != '=') name += c;
    }
    return name;
}

void add_layer_table(CaseWriter& cases) {
    std::uint64_t seed = 1000;
    for (const test::ConvCase& c : test::conv_cases)
        add_layer(cases, file_name(c.label("Conv2D")), Conv2D<float>(c.filters, c.kernel, c.stride, c.padding), c.input(),
                  seed += 10);
    for (const test::ConvCase& c : test::transpose_cases)
        add_layer(cases, file_name(c.label("ConvTranspose2D")),
                  ConvTranspose2D<float>(c.filters, c.kernel, c.stride, c.padding, c.output_padding), c.input(), seed += 10);
    const test::ConvCase no_bias{2, 7, 5, 3, 3, 2, Padding::Same};
    add_layer(cases, file_name(no_bias.label("Conv2D")) + "_no_bias",
              Conv2D<float>(3, 3, 2, Padding::Same, Init::GlorotUniform, false), no_bias.input(), seed += 10);
    add_layer(cases, file_name(no_bias.label("ConvTranspose2D")) + "_no_bias",
              ConvTranspose2D<float>(3, 3, 2, Padding::Same, std::nullopt, Init::GlorotUniform, false), no_bias.input(),
              seed += 10);
    for (const test::PoolCase& c : test::pool_cases)
        add_layer(cases, file_name(c.label), MaxPool2D<float>(c.pool, c.stride, c.padding), c.input, seed += 10);
    for (const test::UpSampleCase& c : test::upsample_cases)
        add_layer(cases, file_name(c.label), UpSample2D<float>(c.factor, c.mode), c.input, seed += 10);
    const Shape image{3, 5, 4};
    add_layer(cases, "Dense_7_on_3x5x4", Dense<float>(7), image, seed += 10);
    add_layer(cases, "Dense_7_on_3x5x4_no_bias", Dense<float>(7, Init::GlorotUniform, false), image, seed += 10);
    add_layer(cases, "ContractiveDense_6", ContractiveDense<float>(6, 0.1), image, seed += 10);
    add_layer(cases, "BatchNorm_3x5x4", BatchNorm<float>(0.1, 1e-3), image, seed += 10);
    add_layer(cases, "BatchNorm2D_3x5x4", BatchNorm2D<float>(), image, seed += 10);
    add_layer(cases, "ReLU", ReLU<float>(), image, seed += 10);
    add_layer(cases, "LeakyReLU_0.2", LeakyReLU<float>(0.2), image, seed += 10);
    add_layer(cases, "Sigmoid", Sigmoid<float>(), image, seed += 10);
    add_layer(cases, "Tanh", Tanh<float>(), image, seed += 10);
    add_layer(cases, "Softplus", Softplus<float>(), image, seed += 10);
    add_layer(cases, "Identity", Identity<float>(), image, seed += 10);
    add_layer(cases, "Dropout_0.5", Dropout<float>(0.5), image, seed += 10);
    add_layer(cases, "AdditiveNoise_0.3", AdditiveNoise<float>(0.3), image, seed += 10);
    add_layer(cases, "Flatten", Flatten<float>(), image, seed += 10);
    add_layer(cases, "Reshape_to_6x2x5", Reshape<float>(Shape{6, 2, 5}), image, seed += 10);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: write_onnx_cases FOLDER\n";
        return 2;
    }
    try {
        CaseWriter cases(argv[1]);
        add_examples(cases);
        add_layer_table(cases);
        cases.write_list();
    } catch (const std::exception& error) {
        std::cerr << "write_onnx_cases: " << error.what() << "\n";
        return 1;
    }
    std::cout << "cases written to " << argv[1] << "\n";
}
