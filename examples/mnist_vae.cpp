// mnist_vae: a variational autoencoder of binarised MNIST digits, scored in nats.
//
// Protocol: the first 8,000 training and 2,000 test images, pixels / 255 binarised once (x > 0.5).
//   dense (default)  encoder 784-400 ReLU -> mu, log sigma^2 (k = 20 each)
//                    decoder k-400 ReLU-784, Bernoulli logits (a final Sigmoid)
//   conv (--arch)    encoder Conv2D(32, 3, stride 2) ReLU 28->14, Conv2D(64, 3, stride 2) ReLU 14->7,
//                    Dense to mu, log sigma^2; decoder Dense(64*7*7) ReLU, ConvTranspose2D(32, 3,
//                    stride 2) ReLU 7->14, ConvTranspose2D(1, 3, stride 2) 14->28, Sigmoid
// Glorot-uniform weights, zero biases; Adam 1e-3, batch 100, shuffled, 50 epochs. The objective is
// BCE on the logits summed over the pixels plus the KL term, both averaged over the batch: the
// negative ELBO in nats per image. The test NLL is the importance-sampled estimate with --k samples.
//
//   mnist_vae --threads 2                      # RESULT test_neg_elbo_nats=... test_nll_nats=...
//   mnist_vae --latent 2                       # also manifold.png
//   mnist_vae --fashion                        # Fashion-MNIST from /usr/share/datasets/fashion-mnist
#include "common.hpp"

namespace {

using namespace latent;

constexpr const char* program = "mnist_vae";

VAE<float> build_model(const std::string& arch, Index latent, double beta, std::uint64_t seed) {
    if (arch == "conv") {
        Encoder<float> encoder{Conv2D<float>(32, 3, 2), ReLU<float>(), Conv2D<float>(64, 3, 2), ReLU<float>(),
                               Flatten<float>(), Dense<float>(2 * latent)};
        Decoder<float> decoder{Dense<float>(64 * 7 * 7), ReLU<float>(), Reshape<float>({64, 7, 7}),
                               ConvTranspose2D<float>(32, 3, 2), ReLU<float>(), ConvTranspose2D<float>(1, 3, 2),
                               Sigmoid<float>()};
        return VAE<float>(std::move(encoder), std::move(decoder), Shape{1, 28, 28}, seed, GaussianSample<float>(beta));
    }
    Encoder<float> encoder{Flatten<float>(), Dense<float>(400), ReLU<float>(), Dense<float>(2 * latent)};
    Decoder<float> decoder{Dense<float>(400), ReLU<float>(), Dense<float>(784), Sigmoid<float>(), Reshape<float>({1, 28, 28})};
    return VAE<float>(std::move(encoder), std::move(decoder), Shape{1, 28, 28}, seed, GaussianSample<float>(beta));
}

// Pixels binarised once: 1 where x > 0.5, else 0.
example::Images binarised(const example::Images& images) {
    example::Images result = images;
    for (Index i = 0; i < result.size(); ++i) result.data()[i] = result.data()[i] > 0.5f ? 1.0f : 0.0f;
    return result;
}

// The standard normal's quantile: the z with Phi(z) = p, by bisection on erfc (|error| < 1e-12).
double normal_quantile(double p) {
    double low = -10, high = 10;
    for (int i = 0; i < 80; ++i) {
        const double middle = 0.5 * (low + high);
        (0.5 * std::erfc(-middle / std::sqrt(2.0)) < p ? low : high) = middle;
    }
    return 0.5 * (low + high);
}

// `rows` batches of `per_row` images each, cut from `images` in order.
std::vector<example::Images> rows_of(const example::Images& images, Index rows, Index per_row) {
    std::vector<example::Images> result;
    for (Index r = 0; r < rows; ++r) result.push_back(example::samples(images, r * per_row, per_row));
    return result;
}

double mean_of(const std::vector<double>& values) {
    double sum = 0;
    for (double value : values) sum += value;
    return sum / static_cast<double>(values.size());
}

int run(int argc, char** argv) {
    example::CommonOptions options;
    options.data = "data/mnist";
    options.epochs = 50;
    options.batch = 100;
    options.train_limit = 8000;
    options.test_limit = 2000;
    options.seed = 0;
    options.out = "out/mnist_vae";
    std::string arch = "dense";
    Index latent = 20, importance_samples = 1000;
    int warmup = 0, beta_percent = 100;
    bool fashion = false;
    example::CommandLine cli(program,
                             "Trains a variational autoencoder on binarised MNIST (pixels > 0.5) and scores the test\n"
                             "images in nats: the negative ELBO, the KL term and the importance-sampled NLL.\n"
                             "Writes DIR/samples.png (10x10 generated digits), DIR/interpolation.png (rows of 10\n"
                             "steps between test digits), DIR/manifold.png (with --latent 2), DIR/grid.png (test\n"
                             "digits and their reconstructions), DIR/history.csv, DIR/model.latent, and ends with\n"
                             "a RESULT line.\n");
    example::add_common_flags(cli, options, "folder with the four MNIST IDX files, plain or .gz");
    cli.choice("arch", arch, {"dense", "conv"}, "network: 784-400-(k, k) dense, or two stride-2 convolutions")
        .integer("latent", latent, Index{1}, Index{1000}, "latent dimensions k (2 also writes manifold.png)")
        .integer("k", importance_samples, Index{1}, Index{1000000}, "importance samples per test image for the NLL")
        .integer("warmup", warmup, 0, 100000, "KL warm-up: its weight rises linearly from 0 over N epochs (0 = none)")
        .integer("beta-percent", beta_percent, 0, 100000, "beta, the KL weight, in percent")
        .flag("fashion", fashion, "Fashion-MNIST from /usr/share/datasets/fashion-mnist (unless --data is given)");
    if (!cli.parse(argc, argv)) return 0;
    if (fashion && !options.data_given) {
        options.data = "/usr/share/datasets/fashion-mnist";
        options.data_given = true;
    }

    example::start(program, options);
    const std::string folder = example::resolve_data(options, options.data);
    const example::TrainTest data = example::load_mnist(folder, options.train_limit, options.test_limit);
    const example::Images train = binarised(data.train), test = binarised(data.test);
    std::cout << (fashion ? "Fashion-MNIST" : "MNIST") << " from '" << folder << "': " << train.dimension(0)
              << " training, " << test.dimension(0) << " test images, binarised (x > 0.5)\n";

    example::prepare_output(options);
    VAE<float> model = build_model(arch, latent, beta_percent / 100.0, options.seed);
    if (!options.quiet) model.summary(std::cout);
    std::cout.flush();  // before the progress lines on stderr

    FitOptions<float> fit = example::fit_options(options);
    if (warmup > 0) fit.callbacks.push_back(TermWeightSchedule<float>("kl", linear_warmup(warmup)));
    Adam<float> adam(1e-3);
    const BinaryCrossEntropy<float> reconstruction(1e-7, Reduction::SumPerSample);  // nats per image
    const example::Stopwatch clock;
    model.fit(train, train, reconstruction, adam, fit);
    const double train_seconds = clock.seconds();
    model.save(example::output_path(options, "model.latent"), adam, options.epochs);

    const example::Stopwatch evaluation;
    const std::uint64_t score_seed = derive_seed(options.seed, 0x5c07e);
    const double neg_elbo = -mean_of(model.elbo(test, score_seed));
    const double kl = mean_of(model.kl_divergence(test));
    const double nll = -mean_of(model.log_likelihood(test, importance_samples, score_seed));
    std::cout << "evaluation: " << example::number(evaluation.seconds(), 2) << " s for " << test.dimension(0)
              << " test images, k = " << importance_samples << "\n";

    // Pictures: generated digits, interpolations between test digits, reconstructions.
    const Index shown = std::min<Index>(10, test.dimension(0) / 2);
    save_image_grid(example::output_path(options, "samples.png"), rows_of(model.generate(100, options.seed + 1), 10, 10), 10, 2);
    const example::Images path = model.interpolate(example::samples(test, 0, shown), example::samples(test, shown, shown), 10);
    save_image_grid(example::output_path(options, "interpolation.png"), rows_of(path, shown, 10), 10, 2);
    example::save_grid(options, {test, model.reconstruct(test)}, 10, 2);
    std::string written = "samples.png, interpolation.png, grid.png";
    if (latent == 2) {
        Tensor<float> grid(400, 2, 1, 1);
        for (Index row = 0; row < 20; ++row)
            for (Index column = 0; column < 20; ++column) {
                grid(row * 20 + column, 0, 0, 0) = static_cast<float>(normal_quantile((column + 0.5) / 20));
                grid(row * 20 + column, 1, 0, 0) = static_cast<float>(normal_quantile(1 - (row + 0.5) / 20));
            }
        save_image_grid(example::output_path(options, "manifold.png"), rows_of(model.decode(grid), 20, 20), 20, 1);
        written += ", manifold.png";
    }
    std::cout << "wrote " << written << ", history.csv and model.latent to '" << options.out << "'\n";
    std::cout << "RESULT test_neg_elbo_nats=" << example::number(neg_elbo, 2) << " test_nll_nats=" << example::number(nll, 2)
              << " test_kl_nats=" << example::number(kl, 2) << " train_seconds=" << example::number(train_seconds, 2)
              << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return example::guarded_main(program, argc, argv, run); }
