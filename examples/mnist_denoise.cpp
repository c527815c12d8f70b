// mnist_denoise: the convolutional denoising autoencoder of the Keras MNIST tutorial.
//
// The digits are corrupted with Gaussian noise (std 0.5, clipped to [0, 1]) -- fresh noise for
// every batch of every epoch -- and the network learns to give back the clean digit:
//   encoder  Conv2D(32, 3x3, same) ReLU, MaxPool2D(2, same)   28x28 -> 14x14
//            Conv2D(32, 3x3, same) ReLU, MaxPool2D(2, same)   14x14 -> 7x7   (code: 32x7x7)
//   decoder  Conv2D(32, 3x3, same) ReLU, UpSample2D(2)        7x7 -> 14x14
//            Conv2D(32, 3x3, same) ReLU, UpSample2D(2)        14x14 -> 28x28
//            Conv2D(1, 3x3, same) Sigmoid
// Binary cross-entropy, Adam (lr 1e-3). The test images are corrupted once, with a fixed seed,
// so every run scores the same noisy inputs.
//
//   mnist_denoise --epochs 10 --batch 128 --train-limit 8000 --test-limit 2000 --threads 2
#include "common.hpp"

namespace {

using namespace latent;

constexpr const char* program = "mnist_denoise";

Autoencoder<float> build_model(std::uint64_t seed) {
    Encoder<float> encoder{
        Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
        Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
    };
    Decoder<float> decoder{
        Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
        Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
        Conv2D<float>(1, 3),  Sigmoid<float>(),
    };
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{1, 28, 28}, seed);
}

int run(int argc, char** argv) {
    example::CommonOptions options;
    options.data = "data/mnist";
    options.epochs = 5;
    options.batch = 128;
    options.out = "out/mnist_denoise";
    constexpr double noise = 0.5;
    example::CommandLine cli(program,
                             "Trains the convolutional denoising autoencoder of the Keras MNIST tutorial on digits\n"
                             "with Gaussian noise (std 0.5, clipped to [0, 1]) and reports how well it removes it.\n"
                             "Writes DIR/grid.png (rows: clean, noisy, denoised), DIR/history.csv, DIR/model.latent\n"
                             "and ends with a RESULT line.\n");
    example::add_common_flags(cli, options,
                              "folder with the four MNIST IDX files, plain or .gz");
    if (!cli.parse(argc, argv)) return 0;

    example::start(program, options);
    const std::string folder = example::resolve_data(options, options.data);
    const example::TrainTest data = example::load_mnist(folder, options.train_limit, options.test_limit);
    std::cout << "MNIST from '" << folder << "': " << data.train.dimension(0) << " training, "
              << data.test.dimension(0) << " test images; noise std " << noise << "\n";

    example::prepare_output(options);
    Autoencoder<float> model = build_model(options.seed);
    if (!options.quiet) model.summary(std::cout);
    std::cout.flush();  // before the progress lines on stderr

    const GaussianNoise corruption(0.0, noise);
    FitOptions<float> fit = example::fit_options(options);
    fit.corruption = corruption;
    Adam<float> adam(1e-3);
    const example::Stopwatch clock;
    model.fit(data.train, data.train, BinaryCrossEntropy<float>(), adam, fit);
    const double train_seconds = clock.seconds();

    const example::Images noisy_test =
        example::corrupt_once(corruption, data.test, example::test_corruption_seed(options));
    const example::Images denoised = model.reconstruct(noisy_test);
    example::save_grid(options, {data.test, noisy_test, denoised}, 10, 2);
    model.save(example::output_path(options, "model.latent"));
    std::cout << "wrote grid.png, history.csv and model.latent to '" << options.out << "'\n";
    example::print_result(denoised, noisy_test, data.test, train_seconds);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return example::guarded_main(program, argc, argv, run); }
