// anomaly_detection: one-class anomaly detection on MNIST or Fashion-MNIST, the protocol of
// Ruff et al., "Deep One-Class Classification" (ICML 2018): for each class c, a convolutional
// autoencoder is trained on the training images of class c only; every test image is scored by
// its reconstruction error, and the AUROC of "not c" (anomalies) against "c" (normal) is
// reported, with the average precision. The protocol printed at the start says everything a
// rerun needs; `--seeds N` repeats it with N seeds and reports the mean and std.
//
//   anomaly_detection                                           (MNIST from data/mnist)
//   anomaly_detection --data /usr/share/datasets/fashion-mnist  (Fashion-MNIST, gzip IDX)
#include "common.hpp"

#include <latent/data/anomaly.hpp>
#include <latent/data/detection_metrics.hpp>

#include <numeric>

namespace {

using namespace latent;

constexpr const char* program = "anomaly_detection";
constexpr Index classes = 10;

struct Settings {
    example::CommonOptions common;
    int seeds = 1;
    Index code = 32;
    int show_class = 0;
    std::string learning_rate = "0.001";
};

// Encoder 28x28 -> 14x14 -> 7x7 -> a code of `code` values; the decoder mirrors it.
Autoencoder<float> build_model(Index code, std::uint64_t seed) {
    Encoder<float> encoder{
        Conv2D<float>(16, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
        Conv2D<float>(8, 3),  ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
        Dense<float>(code),
    };
    Decoder<float> decoder{
        Dense<float>(8 * 7 * 7), ReLU<float>(), Reshape<float>(Shape{8, 7, 7}),
        UpSample2D<float>(2),    Conv2D<float>(16, 3), ReLU<float>(),
        UpSample2D<float>(2),    Conv2D<float>(1, 3),  Sigmoid<float>(),
    };
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{1, 28, 28}, seed);
}

struct LabelledImages {
    example::Images images;
    std::vector<std::uint8_t> labels;
};

struct Data {
    LabelledImages train, test;
};

LabelledImages first_labelled(example::Images images, std::vector<std::uint8_t> labels, Index limit,
                              const std::string& what) {
    if (static_cast<Index>(labels.size()) != images.dimension(0))
        throw example::DataError(what + ": " + std::to_string(images.dimension(0)) + " images but " +
                                 std::to_string(labels.size()) + " labels");
    images = example::first_samples(images, limit);
    labels.resize(static_cast<std::size_t>(images.dimension(0)));
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] >= classes)
            throw example::DataError(what + ": label " + std::to_string(i) + " is " + std::to_string(labels[i]) +
                                     ", expected 0-9");
    return {std::move(images), std::move(labels)};
}

// The four IDX files of MNIST or Fashion-MNIST (plain or .gz) in `folder`, with their labels.
Data load_data(const std::string& folder, Index train_limit, Index test_limit) {
    const std::string hint = " (pass --data with a folder holding the four MNIST-style IDX files)";
    std::error_code error;
    if (!std::filesystem::is_directory(folder, error))
        throw example::DataError("folder '" + folder + "' does not exist" + hint);
    try {
        const MnistFiles files = find_mnist(folder);
        return {first_labelled(read_idx_images<float>(files.train_images), read_idx_labels(files.train_labels),
                               train_limit, "training set"),
                first_labelled(read_idx_images<float>(files.test_images), read_idx_labels(files.test_labels),
                               test_limit, "test set")};
    } catch (const Error& failure) {
        throw example::DataError(std::string("cannot load the images: ") + failure.what() + hint);
    }
}

std::vector<Index> indices_of_class(const std::vector<std::uint8_t>& labels, int c) {
    std::vector<Index> indices;
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] == c) indices.push_back(static_cast<Index>(i));
    return indices;
}

// Label 1 (anomaly) for every test image not of class c.
std::vector<int> anomaly_labels(const std::vector<std::uint8_t>& labels, int c) {
    std::vector<int> anomalous(labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) anomalous[i] = labels[i] == c ? 0 : 1;
    return anomalous;
}

double parse_learning_rate(const std::string& text) {
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !(value > 0) || !std::isfinite(value))
        throw example::UsageError("--lr needs a positive number, got '" + text + "'");
    return value;
}

void print_protocol(const Settings& settings, const Data& data, const std::string& folder, double learning_rate) {
    const auto& common = settings.common;
    const Autoencoder<float> model = build_model(settings.code, 0);
    std::cout << "Protocol (one-class, Ruff et al. 2018): data '" << folder << "', " << data.train.images.dimension(0)
              << " training and " << data.test.images.dimension(0) << " test images\n"
              << "  preprocessing: pixels / 255 in [0, 1], nothing else\n"
              << "  for each class c: train on the training images of class c only; score all test images by\n"
              << "  the mean squared error of their reconstruction; AUROC and average precision of\n"
              << "  'not c' (positive = anomaly) against 'c'\n"
              << "  network: the autoencoder below (weights differ per class and seed)\n"
              << "  training: MSE, Adam lr " << learning_rate << ", " << common.epochs << " epochs, batch "
              << common.batch << ", shuffled; the model after the last epoch is scored (no model selection)\n"
              << "  seeds: run k = 0.." << settings.seeds - 1 << " uses seed " << common.seed
              << " + k; class c's weights and shuffling draw from derive_seed(seed + k, c)\n"
              << "  summary: per class the mean over seeds; mean_auroc and std_auroc (n - 1) over all "
              << classes * settings.seeds << " (class, seed) AUROCs\n";
    model.summary(std::cout);
}

struct ClassRun {
    double auroc = 0, average_precision = 0, train_seconds = 0;
    std::vector<double> scores;
};

ClassRun run_class(const Settings& settings, const Data& data, int c, std::uint64_t seed, double learning_rate) {
    const example::Images normal = example::gather(data.train.images, indices_of_class(data.train.labels, c));
    if (normal.dimension(0) == 0)
        throw example::DataError("no training images of class " + std::to_string(c) + " (raise --train-limit)");
    Autoencoder<float> model = build_model(settings.code, seed);
    FitOptions<float> fit;
    fit.epochs = settings.common.epochs;
    fit.batch_size = settings.common.batch;
    fit.seed = seed;
    fit.verbose = 0;
    Adam<float> adam(learning_rate);
    const example::Stopwatch clock;
    model.fit(normal, normal, MeanSquaredError<float>(), adam, fit);
    ClassRun run;
    run.train_seconds = clock.seconds();
    run.scores = reconstruction_errors(model, data.test.images);
    const std::vector<int> labels = anomaly_labels(data.test.labels, c);
    run.auroc = roc_auc(labels, run.scores);
    run.average_precision = average_precision(labels, run.scores);
    return run;
}

// DIR/extremes.png: the least (top row) and the most (bottom row) anomalous test images of class c.
void save_extremes(const example::CommonOptions& options, const Data& data, int c, const std::vector<double>& scores) {
    std::vector<Index> of_class = indices_of_class(data.test.labels, c);
    std::sort(of_class.begin(), of_class.end(), [&](Index a, Index b) {
        return scores[static_cast<std::size_t>(a)] < scores[static_cast<std::size_t>(b)];
    });
    const std::size_t shown = std::min<std::size_t>(10, of_class.size() / 2);
    const std::vector<Index> least(of_class.begin(), of_class.begin() + static_cast<std::ptrdiff_t>(shown));
    const std::vector<Index> most(of_class.rbegin(), of_class.rbegin() + static_cast<std::ptrdiff_t>(shown));
    save_image_grid(example::output_path(options, "extremes.png"),
                    {example::gather(data.test.images, least), example::gather(data.test.images, most)},
                    static_cast<Index>(shown), 2);
}

double mean_of(const std::vector<double>& values) {
    return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

// Sample standard deviation (n - 1 in the denominator); 0 for a single value.
double std_of(const std::vector<double>& values) {
    if (values.size() < 2) return 0.0;
    const double mean = mean_of(values);
    double sum = 0;
    for (double value : values) sum += (value - mean) * (value - mean);
    return std::sqrt(sum / static_cast<double>(values.size() - 1));
}

int run(int argc, char** argv) {
    Settings settings;
    auto& options = settings.common;
    options.data = "data/mnist";
    options.epochs = 30;
    options.batch = 64;
    options.out = "out/anomaly_detection";
    example::CommandLine cli(program,
                             "One-class anomaly detection (Ruff et al. 2018): for each digit (or garment) c, trains a\n"
                             "convolutional autoencoder on the training images of class c only and scores every test\n"
                             "image by its reconstruction error; prints the AUROC and average precision of 'not c'\n"
                             "against 'c' per class, then the mean and std over classes and seeds. Writes\n"
                             "DIR/extremes.png: the least and the most anomalous test images of --show-class.\n");
    example::add_common_flags(cli, options, "folder with the four MNIST or Fashion-MNIST IDX files, plain or .gz");
    cli.integer("seeds", settings.seeds, 1, 100, "runs with seeds seed, seed + 1, ...")
        .integer("code", settings.code, Index{1}, Index{4096}, "code size (units of the Dense bottleneck)")
        .integer("show-class", settings.show_class, 0, 9, "class whose test images extremes.png shows")
        .text("lr", settings.learning_rate, "RATE", "Adam's learning rate");
    if (!cli.parse(argc, argv)) return 0;
    const double learning_rate = parse_learning_rate(settings.learning_rate);

    example::start(program, options);
    const std::string folder = example::resolve_data(options, options.data);
    const Data data = load_data(folder, options.train_limit, options.test_limit);
    print_protocol(settings, data, folder, learning_rate);
    example::prepare_output(options);
    std::cout.flush();

    std::vector<std::vector<ClassRun>> runs(classes);
    double train_seconds = 0;
    for (int k = 0; k < settings.seeds; ++k)
        for (int c = 0; c < classes; ++c) {
            const std::uint64_t seed = derive_seed(options.seed + static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(c));
            runs[c].push_back(run_class(settings, data, c, seed, learning_rate));
            train_seconds += runs[c].back().train_seconds;
            if (!options.quiet)
                std::cout << "seed " << options.seed + k << " class " << c << ": auroc "
                          << example::number(runs[c].back().auroc, 4) << " (" << example::number(train_seconds, 1)
                          << " s of training so far)" << std::endl;
        }
    save_extremes(options, data, settings.show_class, runs[static_cast<std::size_t>(settings.show_class)][0].scores);
    std::cout << "wrote extremes.png (top: least, bottom: most anomalous test images of class " << settings.show_class
              << ") to '" << options.out << "'\n";

    std::vector<double> all;
    for (int c = 0; c < classes; ++c) {
        std::vector<double> aurocs, precisions;
        for (const ClassRun& run : runs[c]) {
            aurocs.push_back(run.auroc);
            precisions.push_back(run.average_precision);
            all.push_back(run.auroc);
        }
        std::cout << "RESULT class=" << c << " auroc=" << example::number(mean_of(aurocs), 4)
                  << " average_precision=" << example::number(mean_of(precisions), 4);
        if (settings.seeds > 1) std::cout << " auroc_std=" << example::number(std_of(aurocs), 4);
        std::cout << "\n";
    }
    std::cout << "RESULT mean_auroc=" << example::number(mean_of(all), 4) << " std_auroc="
              << example::number(std_of(all), 4) << " seeds=" << settings.seeds
              << " train_seconds=" << example::number(train_seconds, 1) << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return example::guarded_main(program, argc, argv, run); }
