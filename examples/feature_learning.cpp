// feature_learning: what seven ways of training one dense autoencoder do to its code and to its
// first layer's features, on MNIST digits.
//
// Every variant has the same shape, 784-256-64-256-784, the same initial weights (one seed) and
// the same training (binary cross-entropy, Adam lr 1e-2, batch 128); only what the variant
// names changes:
//   encoder  Dense(256) Sigmoid, Dense(64) Sigmoid          784 -> 64 (code in [0, 1])
//   decoder  Dense(256) ReLU, Dense(784) Sigmoid, Reshape(1, 28, 28)
//   plain        as above
//   denoising    the training inputs get MaskingNoise(0.3) (fresh per batch); targets stay clean
//   sparse_l1    ActivityL1(lambda 1e-3) after the code: lambda * sum_j |h_j| per digit
//   sparse_kl    KLSparsity(rho 0.05, beta 1e-2) after the code: beta * sum_j KL(rho || mean h_j)
//   contractive  ContractiveDense(256, lambda 3e-5) replaces the first Dense + Sigmoid: lambda *
//                ||dh/dx||_F^2 of the first hidden layer
//   dropout      Dropout(0.25) after the first hidden layer (training only)
//   batchnorm    BatchNorm() between the first Dense and its Sigmoid
// The encoder's hidden layer is a sigmoid in every variant because the contractive penalty is
// defined for a Dense + Sigmoid layer: so the variants differ only by their penalty or noise.
// The code is a sigmoid for the KL penalty (a mean activation in (0, 1)), and so that the mean
// code activations compare. The weights of the penalties are small because the reconstruction
// loss is a mean over the 784 pixels: with a contractive lambda of 3e-4 the codes score a kNN
// accuracy of 0.47 (plain: 0.85; 8 epochs of batch 256), with 1e-1 they carry almost nothing.
// The learning rate is high so that the default run learns in 5 epochs (about 150 s of CPU time).
//
// Per variant, one line
//   RESULT variant=V test_psnr_db=P knn_accuracy=A mean_code_activation=M train_seconds=S
// P: reconstruction of the clean test digits (PSNR, data range 1); A: 5-nearest-neighbour
// classification of the test digits by their codes against the training digits' codes
// (Euclidean; majority vote, a tie going to the tied label whose nearest member is closest);
// M: the mean code value over all test digits and code units. And DIR/features_V.png: the first
// layer's first 100 units as 28x28 images (each unit's weights scaled to [0, 1]), 10 x 10, and
// DIR/history_V.csv (the objective's parts per epoch).
//
//   feature_learning --epochs 5 --batch 128 --train-limit 8000 --test-limit 2000 --threads 2
#include "common.hpp"

#include <map>
#include <numeric>
#include <sstream>

namespace {

using namespace latent;

constexpr const char* program = "feature_learning";
constexpr Index hidden_units = 256;
constexpr Index code_units = 64;
constexpr Index neighbours = 5;
constexpr Index grid_side = 10;  // features drawn: grid_side x grid_side first-layer units

const std::vector<std::string> all_variants = {"plain",       "denoising", "sparse_l1", "sparse_kl",
                                               "contractive", "dropout",   "batchnorm"};

// Each variant's setting; the header comment says why each value.
constexpr double masking_probability = 0.3;
constexpr double l1_lambda = 1e-3;
constexpr double kl_rho = 0.05;
constexpr double kl_beta = 1e-2;
constexpr double contractive_lambda = 3e-5;
constexpr double dropout_probability = 0.25;
constexpr double learning_rate = 1e-2;

// ---------------------------------------------------------------------------------------------
// Data: digits with their labels (the labels only score the codes; training never sees them)

struct Digits {
    example::Images images;
    std::vector<std::uint8_t> labels;
};

struct DigitSplit {
    Digits train, test;
};

std::vector<std::uint8_t> first_labels(std::vector<std::uint8_t> labels, Index count) {
    labels.resize(static_cast<std::size_t>(count));
    return labels;
}

DigitSplit load_digits(const std::string& folder, const example::CommonOptions& options) {
    example::TrainTest images = example::load_mnist(folder, options.train_limit, options.test_limit);
    try {
        const MnistFiles files = find_mnist(folder);
        std::vector<std::uint8_t> train_labels = read_idx_labels(files.train_labels);
        std::vector<std::uint8_t> test_labels = read_idx_labels(files.test_labels);
        const Index train_count = images.train.dimension(0), test_count = images.test.dimension(0);
        if (static_cast<Index>(train_labels.size()) < train_count || static_cast<Index>(test_labels.size()) < test_count)
            throw example::DataError("cannot load MNIST: fewer labels than images");
        return {{std::move(images.train), first_labels(std::move(train_labels), train_count)},
                {std::move(images.test), first_labels(std::move(test_labels), test_count)}};
    } catch (const Error& error) {
        throw example::DataError(std::string("cannot load the MNIST labels: ") + error.what());
    }
}

// ---------------------------------------------------------------------------------------------
// --variants

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> parts;
    std::stringstream stream(text);
    std::string part;
    while (std::getline(stream, part, ',')) parts.push_back(part);
    if (!text.empty() && text.back() == ',') parts.emplace_back();
    return parts;
}

// The variants named in `text`, in the order given; UsageError for an unknown or repeated name.
std::vector<std::string> parse_variants(const std::string& text) {
    std::string known;
    for (const auto& variant : all_variants) known += (known.empty() ? "" : ",") + variant;
    std::vector<std::string> chosen;
    for (const std::string& name : split_commas(text)) {
        if (std::find(all_variants.begin(), all_variants.end(), name) == all_variants.end())
            throw example::UsageError("--variants: unknown variant '" + name + "' (known: " + known + ")");
        if (std::find(chosen.begin(), chosen.end(), name) != chosen.end())
            throw example::UsageError("--variants: '" + name + "' is named twice");
        chosen.push_back(name);
    }
    return chosen;
}

// ---------------------------------------------------------------------------------------------
// The models

// Dense(256) + Sigmoid, or what the variant puts in its place or between the two.
std::vector<Layer<float>> first_hidden_layer(const std::string& variant) {
    if (variant == "contractive") return {ContractiveDense<float>(hidden_units, contractive_lambda)};
    if (variant == "batchnorm") return {Dense<float>(hidden_units), BatchNorm<float>(), Sigmoid<float>()};
    if (variant == "dropout") return {Dense<float>(hidden_units), Sigmoid<float>(), Dropout<float>(dropout_probability)};
    return {Dense<float>(hidden_units), Sigmoid<float>()};
}

Encoder<float> build_encoder(const std::string& variant) {
    std::vector<Layer<float>> layers = first_hidden_layer(variant);
    layers.push_back(Dense<float>(code_units));
    layers.push_back(Sigmoid<float>());
    if (variant == "sparse_l1") layers.push_back(ActivityL1<float>(l1_lambda));
    if (variant == "sparse_kl") layers.push_back(KLSparsity<float>(kl_rho, kl_beta));
    return Encoder<float>(std::move(layers));
}

Autoencoder<float> build_model(const std::string& variant, std::uint64_t seed) {
    Decoder<float> decoder{
        Dense<float>(hidden_units), ReLU<float>(),
        Dense<float>(784),          Sigmoid<float>(),
        Reshape<float>(Shape{1, 28, 28}),
    };
    return Autoencoder<float>(build_encoder(variant), std::move(decoder), Shape{1, 28, 28}, seed);
}

// The first layer's weights, (units, 784): row u is unit u's feature.
const Matrix<float>& first_layer_weight(Autoencoder<float>& model) {
    Layer<float>& first = model.encoder().layer(0);
    if (auto* dense = first.get<Dense<float>>()) return dense->weight();
    if (auto* contractive = first.get<ContractiveDense<float>>()) return contractive->weight();
    throw ArgumentError(std::string(program) + ": the first layer is a " + first.type() + ", not a Dense layer");
}

// ---------------------------------------------------------------------------------------------
// Training

FitOptions<float> fit_options(const example::CommonOptions& options, const std::string& variant) {
    FitOptions<float> fit;
    fit.epochs = options.epochs;
    fit.batch_size = options.batch;
    fit.seed = options.seed;
    fit.verbose = options.quiet ? 0 : 1;
    fit.callbacks.push_back(CsvLogger<float>(example::output_path(options, "history_" + variant + ".csv")));
    if (variant == "denoising") fit.corruption = MaskingNoise(masking_probability);
    return fit;
}

// ---------------------------------------------------------------------------------------------
// Scoring the code

// Codes as an (N, code_units) row-major matrix.
ConstMatrixView<float> code_rows(const example::Images& codes) {
    return ConstMatrixView<float>(codes.data(), codes.dimension(0), sample_shape(codes).size());
}

// The majority label of `nearest` (neighbour indices, nearest first). A tie goes to the tied
// label met first in that order, i.e. the one whose nearest member is closest.
std::uint8_t vote(const std::vector<Index>& nearest, const std::vector<std::uint8_t>& labels) {
    std::map<std::uint8_t, int> votes;
    for (Index neighbour : nearest) ++votes[labels[static_cast<std::size_t>(neighbour)]];
    int most = 0;
    for (const auto& entry : votes) most = std::max(most, entry.second);
    for (Index neighbour : nearest) {
        const std::uint8_t label = labels[static_cast<std::size_t>(neighbour)];
        if (votes[label] == most) return label;
    }
    return labels[static_cast<std::size_t>(nearest.front())];
}

// The `count` smallest entries of `distances` (ties: the lower index first), nearest first.
std::vector<Index> nearest_indices(const Eigen::RowVectorXf& distances, Index count) {
    std::vector<Index> order(static_cast<std::size_t>(distances.size()));
    std::iota(order.begin(), order.end(), Index{0});
    count = std::min(count, static_cast<Index>(order.size()));
    std::partial_sort(order.begin(), order.begin() + count, order.end(), [&](Index a, Index b) {
        return distances(a) < distances(b) || (distances(a) == distances(b) && a < b);
    });
    order.resize(static_cast<std::size_t>(count));
    return order;
}

// The fraction of test codes whose k nearest training codes (Euclidean) vote for their label.
// Squared distances as |a|^2 + |b|^2 - 2 a.b, in blocks of test codes to bound the memory.
double knn_accuracy(const example::Images& train_codes, const std::vector<std::uint8_t>& train_labels,
                    const example::Images& test_codes, const std::vector<std::uint8_t>& test_labels) {
    const Eigen::MatrixXf train = code_rows(train_codes), test = code_rows(test_codes);
    const Eigen::RowVectorXf train_norms = train.rowwise().squaredNorm().transpose();
    constexpr Index block = 256;
    Index correct = 0;
    for (Index first = 0; first < test.rows(); first += block) {
        const Index count = std::min(block, test.rows() - first);
        Eigen::MatrixXf distances = -2.0f * test.middleRows(first, count) * train.transpose();
        distances.rowwise() += train_norms;  // |a|^2 is the same for a whole row: the ranking ignores it
        for (Index i = 0; i < count; ++i) {
            const std::uint8_t label = vote(nearest_indices(distances.row(i), neighbours), train_labels);
            if (label == test_labels[static_cast<std::size_t>(first + i)]) ++correct;
        }
    }
    return static_cast<double>(correct) / static_cast<double>(test.rows());
}

double mean_value(const example::Images& values) {
    double sum = 0;
    for (Index i = 0; i < values.size(); ++i) sum += static_cast<double>(values.data()[i]);
    return values.size() > 0 ? sum / static_cast<double>(values.size()) : 0.0;
}

// ---------------------------------------------------------------------------------------------
// The feature grid

// Unit u's weights as a 28x28 image, scaled to [0, 1] (a constant row becomes mid-grey).
void draw_feature(const Matrix<float>& weight, Index unit, float* image) {
    const float low = weight.row(unit).minCoeff(), high = weight.row(unit).maxCoeff();
    const float range = high - low;
    for (Index i = 0; i < weight.cols(); ++i)
        image[i] = range > 0 ? (weight(unit, i) - low) / range : 0.5f;
}

// DIR/features_V.png: the first grid_side^2 units, grid_side per row, one pixel per weight
// (289 x 289 pixels: small enough to keep beside the README).
void save_features(const example::CommonOptions& options, const std::string& variant, const Matrix<float>& weight) {
    std::vector<example::Images> rows;
    Index unit = 0;
    for (Index row = 0; row < grid_side && unit < weight.rows(); ++row) {
        const Index count = std::min(grid_side, weight.rows() - unit);
        example::Images images(count, 1, 28, 28);
        for (Index column = 0; column < count; ++column, ++unit) draw_feature(weight, unit, images.data() + column * 784);
        rows.push_back(std::move(images));
    }
    save_image_grid(example::output_path(options, "features_" + variant + ".png"), rows, grid_side, 1);
}

// ---------------------------------------------------------------------------------------------
// One variant, start to RESULT line

struct VariantResult {
    double psnr_db, knn_accuracy, mean_code_activation, train_seconds;
};

VariantResult run_variant(const example::CommonOptions& options, const std::string& variant, const DigitSplit& data) {
    Autoencoder<float> model = build_model(variant, options.seed);
    if (!options.quiet) std::cout << "--- " << variant << "\n" << std::flush;  // before the progress on stderr
    Adam<float> adam(learning_rate);
    const example::Stopwatch clock;
    model.fit(data.train.images, data.train.images, BinaryCrossEntropy<float>(), adam, fit_options(options, variant));
    const double train_seconds = clock.seconds();

    const example::Images train_codes = model.encode(data.train.images);
    const example::Images test_codes = model.encode(data.test.images);
    save_features(options, variant, first_layer_weight(model));
    return {psnr(model.reconstruct(data.test.images), data.test.images),
            knn_accuracy(train_codes, data.train.labels, test_codes, data.test.labels), mean_value(test_codes),
            train_seconds};
}

void print_result(const std::string& variant, const VariantResult& result) {
    std::cout << "RESULT variant=" << variant << " test_psnr_db=" << example::number(result.psnr_db, 3)
              << " knn_accuracy=" << example::number(result.knn_accuracy, 4)
              << " mean_code_activation=" << example::number(result.mean_code_activation, 4)
              << " train_seconds=" << example::number(result.train_seconds, 2) << std::endl;
}

int run(int argc, char** argv) {
    example::CommonOptions options;
    options.data = "data/mnist";
    options.epochs = 5;
    options.batch = 128;
    options.out = "out/feature_learning";
    std::string variants_text;
    for (const auto& variant : all_variants) variants_text += (variants_text.empty() ? "" : ",") + variant;
    example::CommandLine cli(program,
                             "Trains the 784-256-64-256-784 dense autoencoder on MNIST digits seven ways (plain,\n"
                             "denoising, sparse_l1, sparse_kl, contractive, dropout, batchnorm) and compares their\n"
                             "codes: one RESULT line per variant (test PSNR, 5-nearest-neighbour accuracy of the\n"
                             "codes, mean code activation). Writes DIR/features_V.png (the first layer's first 100\n"
                             "units as 28x28 images) and DIR/history_V.csv per variant V.\n");
    example::add_common_flags(cli, options, "folder with the four MNIST IDX files, plain or .gz");
    cli.text("variants", variants_text, "V,V,...", "the variants to run, in this order");
    if (!cli.parse(argc, argv)) return 0;
    const std::vector<std::string> variants = parse_variants(variants_text);

    example::start(program, options);
    const std::string folder = example::resolve_data(options, options.data);
    const DigitSplit data = load_digits(folder, options);
    std::cout << "MNIST from '" << folder << "': " << data.train.images.dimension(0) << " training, "
              << data.test.images.dimension(0) << " test images\n";
    if (data.train.images.dimension(0) < neighbours)
        throw example::UsageError("--train-limit: the 5-nearest-neighbour score needs at least 5 training digits");

    example::prepare_output(options);
    for (const std::string& variant : variants) print_result(variant, run_variant(options, variant, data));
    std::cout << "wrote features_V.png and history_V.csv for each variant V to '" << options.out << "'\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return example::guarded_main(program, argc, argv, run); }
