// tabular_anomaly: an anomaly detector for the rows of a CSV table, from an autoencoder trained
// on normal rows only.
//
// Protocol (printed at the start):
//   * rows whose label is --normal are normal, every other row is an anomaly;
//   * the normal rows are shuffled (from --seed); 80% train the detector, 20% are held out;
//   * a Standardizer fitted on the training rows scales every row;
//   * the dense autoencoder D -> hidden -> code -> hidden -> D (Tanh, linear output) is trained
//     with MSE and Adam on the training rows; each row's score is its mean squared
//     reconstruction error (in standardised units);
//   * the threshold is the 99th percentile (NumPy's linear definition) of the held-out normal
//     rows' scores; a row is flagged when its score is above it;
//   * AUROC, average precision, and precision and recall at the threshold are measured on the
//     held-out normal rows and all anomalies; pca_auroc is the same AUROC for PCA reconstruction
//     error with as many components as the code has units.
// Writes DIR/detector.latent, the AnomalyDetector (model, scaler, score kind and threshold in one
// model file; AnomalyDetector<float>::load reads it back and scores raw rows), and ends with a
// RESULT line.
//
//   tabular_anomaly                        (the breast-cancer table of Debian's python3-sklearn)
//   tabular_anomaly --data sensors.csv --label status --normal ok
#include "common.hpp"

#include <latent/data/csv.hpp>
#include <latent/models/anomaly_detector.hpp>

#include <Eigen/Eigenvalues>

namespace {

using namespace latent;

constexpr const char* program = "tabular_anomaly";
// 569 rows, 30 features, target 0 = malignant, 1 = benign; its first line, "569,30,malignant,benign",
// is not a header of the columns.
constexpr const char* breast_cancer_csv = "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv";
constexpr double threshold_percentile = 99.0;
constexpr double train_fraction = 0.8;

struct Settings {
    std::string data = breast_cancer_csv;
    bool data_given = false;
    std::string label = "-1";
    std::string normal = "1";
    Index skip_lines = 0;
    bool no_header = false;
    std::string delimiter = ",";
    Index code = 4;
    Index hidden = 16;
    int epochs = 300;
    Index batch = 32;
    std::uint64_t seed = 1;
    int threads = 0;
    std::string out = "out/tabular_anomaly";
    bool quiet = false;
};

example::CommandLine command_line(Settings& settings) {
    example::CommandLine cli(program,
                             "Trains an autoencoder on the normal rows of a CSV table and reports how well its\n"
                             "reconstruction error separates the other rows (AUROC, average precision, precision and\n"
                             "recall at the 99th percentile of held-out normal scores), next to PCA with as many\n"
                             "components as the code. Without --data: the breast-cancer table of Debian's\n"
                             "python3-sklearn (its first line skipped, no header, label = last column, benign (1) =\n"
                             "normal). Writes DIR/detector.latent (model, scaler and threshold in one file); ends\n"
                             "with a RESULT line.\n");
    constexpr Index most = Index{1} << 40;
    cli.text("data", settings.data, "FILE", "CSV table", &settings.data_given)
        .text("label", settings.label, "COLUMN", "label column: a header name, or an index (0 = first, -1 = last)")
        .text("normal", settings.normal, "VALUE", "label of the normal rows")
        .integer("skip-lines", settings.skip_lines, Index{0}, most, "lines to ignore before the header")
        .flag("no-header", settings.no_header, "the table has no header line")
        .text("delimiter", settings.delimiter, "CHAR", "field separator (one character; 'tab' for a tab)")
        .integer("code", settings.code, Index{1}, Index{4096}, "code size (and PCA components)")
        .integer("hidden", settings.hidden, Index{1}, Index{1} << 16, "units of the hidden layers")
        .integer("epochs", settings.epochs, 1, 100000, "training epochs")
        .integer("batch", settings.batch, Index{1}, Index{1} << 20, "mini-batch size")
        .integer("seed", settings.seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
                 "seed of the split, the weights and the shuffling")
        .integer("threads", settings.threads, 0, 4096, "threads (0 = LATENT_NUM_THREADS or all cores)")
        .text("out", settings.out, "DIR", "folder for detector.latent")
        .flag("quiet", settings.quiet, "no progress output");
    return cli;
}

// The label column from its flag: an integer is an index, anything else a header name.
CsvColumn label_column(const std::string& text) {
    Index index = 0;
    const auto [stop, status] = std::from_chars(text.data(), text.data() + text.size(), index);
    if (status == std::errc() && stop == text.data() + text.size()) return CsvColumn(index);
    return CsvColumn(text);
}

CsvOptions csv_options(const Settings& settings) {
    CsvOptions options;
    options.label = label_column(settings.label);
    if (settings.delimiter == "tab") options.delimiter = '\t';
    else if (settings.delimiter.size() == 1) options.delimiter = settings.delimiter[0];
    else throw example::UsageError("--delimiter must be one character or 'tab', got '" + settings.delimiter + "'");
    options.header = !settings.no_header;
    options.skip_lines = settings.skip_lines;
    if (!settings.data_given) {  // the breast-cancer table's layout
        options.header = false;
        options.skip_lines = 1;
    }
    return options;
}

CsvTable<float> load_table(const Settings& settings) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(settings.data, error))
        throw example::DataError("no CSV file '" + settings.data + "'" +
                                 (settings.data_given ? "" : " (install python3-sklearn, or pass --data FILE)"));
    try {
        return read_csv<float>(settings.data, csv_options(settings));
    } catch (const ArgumentError& failure) {
        throw example::UsageError(failure.what());
    } catch (const Error& failure) {
        throw example::DataError(failure.what());
    }
}

struct Split {
    std::vector<Index> train, held_out_normal, anomalies;
};

// Normal rows shuffled from `seed`, the first 80% for training; every other row is an anomaly.
Split split_rows(const std::vector<std::string>& labels, const std::string& normal, std::uint64_t seed) {
    Split split;
    std::vector<Index> normal_rows;
    for (std::size_t i = 0; i < labels.size(); ++i)
        (labels[i] == normal ? normal_rows : split.anomalies).push_back(static_cast<Index>(i));
    if (normal_rows.size() < 10 || split.anomalies.empty())
        throw example::DataError("the table needs at least 10 rows labelled '" + normal + "' and one other row; it has " +
                                 std::to_string(normal_rows.size()) + " and " + std::to_string(split.anomalies.size()));
    Rng rng(derive_seed(seed, 0x5b117));
    shuffle(normal_rows.begin(), normal_rows.end(), rng);
    const auto train_count = static_cast<std::ptrdiff_t>(train_fraction * static_cast<double>(normal_rows.size()));
    split.train.assign(normal_rows.begin(), normal_rows.begin() + train_count);
    split.held_out_normal.assign(normal_rows.begin() + train_count, normal_rows.end());
    return split;
}

Autoencoder<float> build_model(Index features, const Settings& settings) {
    Encoder<float> encoder{Dense<float>(settings.hidden), Tanh<float>(), Dense<float>(settings.code)};
    Decoder<float> decoder{Dense<float>(settings.hidden), Tanh<float>(), Dense<float>(features)};
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{features, 1, 1}, settings.seed);
}

// PCA with `components` dimensions, fitted on the rows of `train`, as a model with
// reconstruct(): x -> mean + (x - mean) V V^T, V the leading eigenvectors of the covariance.
class Pca {
public:
    Pca(const example::Images& train, Index components) {
        const Eigen::MatrixXd rows = matrix_from_tensor(train).cast<double>();
        detail::require(components <= rows.cols(), "Pca", "more components than features");
        mean_ = rows.colwise().mean();
        const Eigen::MatrixXd centred = rows.rowwise() - mean_;
        const Eigen::MatrixXd covariance = centred.transpose() * centred / static_cast<double>(rows.rows() - 1);
        const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(covariance);
        if (solver.info() != Eigen::Success) throw NumericError("PCA: the eigen-decomposition did not converge");
        basis_ = solver.eigenvectors().rightCols(components);  // eigenvalues increase: the leading ones last
    }

    example::Images reconstruct(const example::Images& x) const {
        const Eigen::MatrixXd centred = matrix_from_tensor(x).cast<double>().rowwise() - mean_;
        const Eigen::MatrixXd rows = (centred * basis_ * basis_.transpose()).rowwise() + mean_;
        return tensor_from_matrix(rows.cast<float>().eval());
    }

private:
    Eigen::RowVectorXd mean_;
    Eigen::MatrixXd basis_;
};

std::vector<double> concatenate(std::vector<double> first, const std::vector<double>& second) {
    first.insert(first.end(), second.begin(), second.end());
    return first;
}

// Scores of the held-out normal rows then the anomalies; labels 0 and 1 to match.
struct Evaluation {
    std::vector<int> labels;
    std::vector<double> scores;
};

Evaluation evaluation_of(const std::vector<double>& normal_scores, const std::vector<double>& anomaly_scores) {
    Evaluation evaluation{std::vector<int>(normal_scores.size(), 0), concatenate(normal_scores, anomaly_scores)};
    evaluation.labels.resize(evaluation.scores.size(), 1);
    return evaluation;
}

// The features whose reconstruction error grows most from normal rows to anomalies.
void print_telling_features(AnomalyDetector<float>& detector, const CsvTable<float>& table,
                            const example::Images& held_out, const example::Images& anomalies) {
    const std::vector<double> normal = detector.feature_errors(held_out), anomalous = detector.feature_errors(anomalies);
    std::vector<std::size_t> order(normal.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    auto ratio = [&](std::size_t j) { return anomalous[j] / std::max(normal[j], 1e-12); };
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return ratio(a) > ratio(b); });
    std::cout << "features with the largest error ratio (anomalies / held-out normal rows):";
    for (std::size_t k = 0; k < std::min<std::size_t>(5, order.size()); ++k)
        std::cout << " '" << table.feature_names[order[k]] << "' " << example::number(ratio(order[k]), 1);
    std::cout << "\n";
}

void print_protocol(const Settings& settings, const CsvTable<float>& table, const Split& split) {
    std::cout << "Protocol: '" << settings.data << "', " << table.samples.dimension(0) << " rows, "
              << table.feature_names.size() << " features, label column '" << table.label_name << "', normal = '"
              << settings.normal << "'\n"
              << "  " << split.train.size() << " normal rows train (80%, shuffled with seed " << settings.seed << "), "
              << split.held_out_normal.size() << " are held out; " << split.anomalies.size() << " anomalies\n"
              << "  Standardizer fitted on the training rows; autoencoder " << table.feature_names.size() << " -> "
              << settings.hidden << " (Tanh) -> " << settings.code << " -> " << settings.hidden << " (Tanh) -> "
              << table.feature_names.size() << ", MSE, Adam lr 1e-3, " << settings.epochs << " epochs, batch "
              << settings.batch << "; the last epoch's model is scored\n"
              << "  score: mean squared reconstruction error; threshold: 99th percentile (linear) of the held-out\n"
              << "  normal scores; metrics on held-out normal rows + anomalies; baseline: PCA with " << settings.code
              << " components\n";
}

int run(int argc, char** argv) {
    Settings settings;
    example::CommandLine cli = command_line(settings);
    if (!cli.parse(argc, argv)) return 0;
    example::CommonOptions common;
    common.threads = settings.threads;
    common.out = settings.out;
    example::start(program, common);

    const CsvTable<float> table = load_table(settings);
    const Split split = split_rows(table.labels, settings.normal, settings.seed);
    const auto features = static_cast<Index>(table.feature_names.size());
    if (settings.code > features) throw example::UsageError("--code cannot exceed the " + std::to_string(features) + " features");
    print_protocol(settings, table, split);
    example::prepare_output(common);

    // Raw rows; the detector scales them itself. PCA and training see the scaled rows.
    const example::Images held_out = example::gather(table.samples, split.held_out_normal);
    const example::Images anomalies = example::gather(table.samples, split.anomalies);
    Standardizer<float> scaler;
    const example::Images train = scaler.fit_transform(example::gather(table.samples, split.train));

    Autoencoder<float> model = build_model(features, settings);
    model.summary(std::cout);
    FitOptions<float> fit;
    fit.epochs = settings.epochs;
    fit.batch_size = settings.batch;
    fit.seed = settings.seed;
    fit.verbose = settings.quiet ? 0 : 1;
    Adam<float> adam(1e-3);
    std::cout.flush();
    const example::Stopwatch clock;
    model.fit(train, train, MeanSquaredError<float>(), adam, fit);
    const double train_seconds = clock.seconds();

    AnomalyDetector<float> detector(std::move(model), scaler);
    const double threshold = detector.calibrate(held_out, threshold_percentile);
    const Evaluation autoencoder = evaluation_of(detector.score(held_out), detector.score(anomalies));
    const PrecisionRecall at_threshold = precision_recall_at(autoencoder.labels, autoencoder.scores, threshold);
    Pca pca(train, settings.code);
    const Evaluation baseline = evaluation_of(reconstruction_errors(pca, scaler.transform(held_out)),
                                              reconstruction_errors(pca, scaler.transform(anomalies)));
    print_telling_features(detector, table, held_out, anomalies);

    const std::string detector_path = example::output_path(common, "detector.latent");
    detector.save(detector_path);
    AnomalyDetector<float> reloaded = AnomalyDetector<float>::load(detector_path);
    const bool same = reloaded.is_anomaly(anomalies) == detector.is_anomaly(anomalies) &&
                      reloaded.is_anomaly(held_out) == detector.is_anomaly(held_out);
    std::cout << "threshold " << example::number(threshold, 6) << ": " << at_threshold.true_positives << " of "
              << split.anomalies.size() << " anomalies and " << at_threshold.false_positives << " of "
              << split.held_out_normal.size() << " held-out normal rows flagged; wrote '" << detector_path << "'"
              << (same ? " (reloaded: the same decisions)" : "") << "\n";
    if (!same) throw Error("the reloaded detector's decisions differ from the trained one's");
    std::cout << "RESULT auroc=" << example::number(roc_auc(autoencoder.labels, autoencoder.scores), 4)
              << " average_precision=" << example::number(average_precision(autoencoder.labels, autoencoder.scores), 4)
              << " precision=" << example::number(at_threshold.precision, 4)
              << " recall=" << example::number(at_threshold.recall, 4)
              << " pca_auroc=" << example::number(roc_auc(baseline.labels, baseline.scores), 4)
              << " pca_average_precision=" << example::number(average_precision(baseline.labels, baseline.scores), 4)
              << " train_seconds=" << example::number(train_seconds, 2) << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return example::guarded_main(program, argc, argv, run); }
