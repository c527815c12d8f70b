// dense_autoencoder: dimensionality reduction of MNIST digits to 32 numbers, compared with PCA.
//
//   encoder  Flatten, Dense(256) ReLU, Dense(128) ReLU, Dense(32)        784 -> 32 (linear code)
//   decoder  Dense(128) ReLU, Dense(256) ReLU, Dense(784) Sigmoid, Reshape(1, 28, 28)
// Binary cross-entropy, Adam (lr 1e-3), batch 128, Glorot-uniform weights, no corruption.
// The code layer is linear (no activation): a ReLU there would leave some of the 32 numbers at
// zero for many digits, wasting part of a small code.
//
// The baseline is PCA with the same 32 dimensions, computed here with Eigen: the training
// images are centred, the 784x784 covariance is decomposed with SelfAdjointEigenSolver, and
// each test image is reconstructed from its 32 leading components (plain PCA: no clipping).
// PCA is the best *linear* 32-number code for squared error; the autoencoder's non-linear
// code beats it.
//
// Writes DIR/codes.npy, the (N, 32) codes of the test images (numpy.load reads it), and
// DIR/grid.png with rows: clean test digits, PCA reconstructions, autoencoder reconstructions.
#include "common.hpp"

#include <Eigen/Eigenvalues>

namespace {

using namespace latent;

constexpr const char* program = "dense_autoencoder";
constexpr Index code_size = 32;

Autoencoder<float> build_model(std::uint64_t seed) {
    Encoder<float> encoder{
        Flatten<float>(),
        Dense<float>(256), ReLU<float>(),
        Dense<float>(128), ReLU<float>(),
        Dense<float>(code_size),
    };
    Decoder<float> decoder{
        Dense<float>(128), ReLU<float>(),
        Dense<float>(256), ReLU<float>(),
        Dense<float>(784), Sigmoid<float>(),
        Reshape<float>(Shape{1, 28, 28}),
    };
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{1, 28, 28}, seed);
}

// A batch as an (N, pixels) matrix in double, for the PCA.
Eigen::MatrixXd as_rows(const example::Images& images) {
    const Index count = images.dimension(0), pixels = sample_shape(images).size();
    return ConstMatrixView<float>(images.data(), count, pixels).cast<double>();
}

// PCA with `components` dimensions fitted on `train`; returns the reconstructions of `test`:
//   mean = average training image,  C = (X - mean)^T (X - mean) / (N - 1),
//   V = the eigenvectors of C with the `components` largest eigenvalues (784 x k),
//   reconstruction = mean + (x - mean) V V^T.
example::Images pca_reconstruct(const example::Images& train, const example::Images& test, Index components) {
    const Eigen::MatrixXd train_rows = as_rows(train);
    const Eigen::RowVectorXd mean = train_rows.colwise().mean();
    const Eigen::MatrixXd centred = train_rows.rowwise() - mean;
    Eigen::MatrixXd covariance = Eigen::MatrixXd::Zero(centred.cols(), centred.cols());
    covariance.selfadjointView<Eigen::Lower>().rankUpdate(centred.transpose(), 1.0 / (centred.rows() - 1.0));
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(covariance);  // reads the lower triangle
    if (solver.info() != Eigen::Success) throw NumericError("PCA: the eigen-decomposition did not converge");
    // Eigenvalues come in increasing order: the leading components are the last columns.
    const Eigen::MatrixXd basis = solver.eigenvectors().rightCols(components);
    const Eigen::MatrixXd test_centred = as_rows(test).rowwise() - mean;
    const Eigen::MatrixXd reconstructed = (test_centred * basis * basis.transpose()).rowwise() + mean;

    example::Images result(test.dimensions());
    MatrixView<float>(result.data(), reconstructed.rows(), reconstructed.cols()) = reconstructed.cast<float>();
    return result;
}

int run(int argc, char** argv) {
    example::CommonOptions options;
    options.data = "data/mnist";
    options.epochs = 20;
    options.batch = 128;
    options.out = "out/dense_autoencoder";
    example::CommandLine cli(program,
                             "Trains the 784-256-128-32 dense autoencoder on MNIST digits and compares its 32-number\n"
                             "code with PCA at 32 components. Writes DIR/codes.npy (test codes), DIR/grid.png (rows:\n"
                             "clean, PCA, autoencoder), DIR/history.csv, DIR/model.latent and ends with a RESULT line\n"
                             "(input_psnr_db=inf: the input is not corrupted; pca_psnr_db is the PCA baseline).\n");
    example::add_common_flags(cli, options, "folder with the four MNIST IDX files, plain or .gz");
    if (!cli.parse(argc, argv)) return 0;

    example::start(program, options);
    const std::string folder = example::resolve_data(options, options.data);
    const example::TrainTest data = example::load_mnist(folder, options.train_limit, options.test_limit);
    std::cout << "MNIST from '" << folder << "': " << data.train.dimension(0) << " training, "
              << data.test.dimension(0) << " test images\n";

    const example::Stopwatch pca_clock;
    const example::Images pca = pca_reconstruct(data.train, data.test, code_size);
    const double pca_psnr = psnr(pca, data.test);
    std::cout << "PCA-" << code_size << " (eigen-decomposition of the covariance): test PSNR "
              << example::number(pca_psnr, 3) << " dB in " << example::number(pca_clock.seconds(), 2) << " s\n";

    example::prepare_output(options);
    Autoencoder<float> model = build_model(options.seed);
    if (!options.quiet) model.summary(std::cout);
    std::cout.flush();  // before the progress lines on stderr

    Adam<float> adam(1e-3);
    const example::Stopwatch clock;
    model.fit(data.train, data.train, BinaryCrossEntropy<float>(), adam, example::fit_options(options));
    const double train_seconds = clock.seconds();

    const example::Images codes = model.encode(data.test);  // (N, 32, 1, 1)
    save_npy(example::output_path(options, "codes.npy"),
             ConstMatrixView<float>(codes.data(), codes.dimension(0), code_size));
    const example::Images reconstructed = model.reconstruct(data.test);
    example::save_grid(options, {data.test, pca, reconstructed}, 10, 2);
    model.save(example::output_path(options, "model.latent"));
    std::cout << "wrote codes.npy, grid.png, history.csv and model.latent to '" << options.out << "'\n";
    example::print_result(reconstructed, data.test, data.test, train_seconds,
                          " pca_psnr_db=" + example::number(pca_psnr, 3));
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return example::guarded_main(program, argc, argv, run); }
