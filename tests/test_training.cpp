#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <numeric>
#include <set>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

// 64-pixel "images" that lie on a 3-dimensional manifold: x = sigmoid(A z), z ~ N(0, 1), with
// one fixed A (every call draws from the same manifold; `seed` picks the samples).
// A dense autoencoder with a 3-unit code can learn them almost exactly.
Tensor<float> low_rank_data(Index count, std::uint64_t seed) {
    Rng mixing_rng(1234);
    Matrix<double> mixing(64, 3);
    for (Index i = 0; i < mixing.size(); ++i) mixing.data()[i] = mixing_rng.normal(0, 1.5);
    Rng rng(seed);
    Tensor<float> data = make_tensor<float>(count, {1, 8, 8});
    for (Index n = 0; n < count; ++n) {
        Vector<double> z(3);
        for (Index k = 0; k < 3; ++k) z(k) = rng.normal();
        const Vector<double> pixels = mixing * z;
        for (Index p = 0; p < 64; ++p) data.data()[n * 64 + p] = static_cast<float>(1 / (1 + std::exp(-pixels(p))));
    }
    return data;
}

Autoencoder<float> small_autoencoder(std::uint64_t seed = 1) {
    return Autoencoder<float>(Encoder<float>{Flatten<float>(), Dense<float>(32), ReLU<float>(), Dense<float>(3)},
                              Decoder<float>{Dense<float>(32), ReLU<float>(), Dense<float>(64), Sigmoid<float>(),
                                             Reshape<float>({1, 8, 8})},
                              {1, 8, 8}, seed);
}

Autoencoder<float> small_conv_autoencoder(std::uint64_t seed = 1) {
    return Autoencoder<float>(Encoder<float>{Conv2D<float>(4, 3), ReLU<float>(), MaxPool2D<float>(2)},
                              Decoder<float>{UpSample2D<float>(2), Conv2D<float>(1, 3), Sigmoid<float>()},
                              {1, 8, 8}, seed);
}

std::vector<float> all_weights(const Autoencoder<float>& model) {
    std::vector<float> weights;
    for (const auto& parameter : model.parameters()) weights.insert(weights.end(), parameter.value, parameter.value + parameter.size);
    return weights;
}

FitOptions<float> quiet(int epochs, Index batch = 16, std::uint64_t seed = 3) {
    FitOptions<float> options;
    options.epochs = epochs;
    options.batch_size = batch;
    options.seed = seed;
    options.verbose = 0;
    return options;
}

// Trains the small dense autoencoder with `optimizer` and returns first / last epoch loss.
template <class OptimizerType> double loss_reduction(OptimizerType optimizer, int epochs) {
    const Tensor<float> data = low_rank_data(512, 9);
    auto model = small_autoencoder();
    const double initial = model.evaluate(data, data, MeanSquaredError<float>());
    model.fit(data, data, MeanSquaredError<float>(), optimizer, quiet(epochs));
    const double final = model.evaluate(data, data, MeanSquaredError<float>());
    INFO("initial " << initial << " final " << final);
    return initial / final;
}

}  // namespace

TEST_CASE("fit: SGD drives a small dense autoencoder's loss down at least 10x", "[training]") {
    CHECK(loss_reduction(SGD<float>(0.5, 0.9), 60) >= 10.0);
}

TEST_CASE("fit: SGD with Nesterov momentum drives the loss down at least 10x", "[training]") {
    CHECK(loss_reduction(SGD<float>(0.5, 0.9, true), 60) >= 10.0);
}

TEST_CASE("fit: Adam drives a small dense autoencoder's loss down at least 10x", "[training]") {
    CHECK(loss_reduction(Adam<float>(3e-3), 60) >= 10.0);
}

TEST_CASE("fit: AdamW drives a small dense autoencoder's loss down at least 10x", "[training]") {
    CHECK(loss_reduction(AdamW<float>(3e-3, 0.9, 0.999, 1e-8, 1e-4), 60) >= 10.0);
}

TEST_CASE("fit: RMSprop drives a small dense autoencoder's loss down at least 10x", "[training]") {
    CHECK(loss_reduction(RMSprop<float>(1e-3), 60) >= 10.0);
}

TEST_CASE("fit: Adadelta drives a small dense autoencoder's loss down at least 10x", "[training]") {
    CHECK(loss_reduction(Adadelta<float>(1.0), 60) >= 10.0);
}

TEST_CASE("fit: history has one entry per epoch and validation loss with a split", "[training]") {
    const Tensor<float> data = low_rank_data(100, 2);
    auto model = small_autoencoder();
    Adam<float> adam(1e-3);
    auto options = quiet(3);
    options.validation_split = 0.2;
    const History history = model.fit(data, data, MeanSquaredError<float>(), adam, options);
    REQUIRE(history.size() == 3);
    CHECK(history.epoch == std::vector<int>{0, 1, 2});
    CHECK(history.has_validation());
    for (std::size_t e = 0; e < 3; ++e) {
        CHECK(std::isfinite(history.loss[e]));
        CHECK(std::isfinite(history.val_loss[e]));
        CHECK(history.seconds[e] >= 0);
    }
    CHECK(history.loss[2] < history.loss[0]);
}

TEST_CASE("fit: bit-identical weights with 1 and 2 threads", "[training][threads]") {
    const int saved = num_threads();
    const Tensor<float> data = low_rank_data(96, 4);
    for (const Index micro_batch : {Index(0), Index(5)}) {  // the whole batch per pass; passes of 5
        auto run = [&](int threads) {
            set_num_threads(threads);
            auto model = small_conv_autoencoder();
            Adam<float> adam(1e-3);
            auto options = quiet(2, 32);
            options.corruption = GaussianNoise(0.0, 0.2);
            options.micro_batch = micro_batch;
            model.fit(data, data, BinaryCrossEntropy<float>(), adam, options);
            return all_weights(model);
        };
        const auto one = run(1), two = run(2);
        INFO("micro_batch " << micro_batch);
        CHECK(one == two);
    }
    set_num_threads(saved);
}

namespace {

struct StepResult {
    std::vector<double> initial, weights;
    double loss = 0;
};

// One SGD step on one batch of 12 (double precision), in forward/backward passes of
// `micro_batch` samples.
StepResult one_step(const Loss<double>& loss, Index micro_batch) {
    Autoencoder<double> model(Encoder<double>{Conv2D<double>(3, 3), ReLU<double>(), MaxPool2D<double>(2)},
                              Decoder<double>{UpSample2D<double>(2), Conv2D<double>(1, 3), Sigmoid<double>()},
                              {1, 8, 8}, 5);
    const Tensor<double> data = low_rank_data(12, 6).cast<double>();
    SGD<double> sgd(0.5);
    FitOptions<double> options;
    options.batch_size = 12;
    options.shuffle = false;
    options.verbose = 0;
    options.micro_batch = micro_batch;
    StepResult result;
    auto weights = [&model] {
        std::vector<double> values;
        for (const auto& parameter : model.parameters())
            values.insert(values.end(), parameter.value, parameter.value + parameter.size);
        return values;
    };
    result.initial = weights();
    result.loss = model.fit(data, data, loss, sgd, options).loss.back();
    result.weights = weights();
    return result;
}

// A loss that does not say whether it averages or sums.
struct PlainLoss {
    using Scalar = float;
    static constexpr const char* type_name = "PlainLoss";
    double compute(ConstTensorView<float> prediction, ConstTensorView<float> target, TensorView<float> grad) const {
        return MeanSquaredError<float>().compute(prediction, target, grad);
    }
};

}  // namespace

TEST_CASE("fit: passes over slices of a batch (micro_batch) give the whole batch's step, every loss",
          "[training][micro_batch]") {
    const std::vector<std::pair<const char*, Loss<double>>> losses = {
        {"MSE", MeanSquaredError<double>()}, {"SSE", SumSquaredError<double>()},
        {"BCE (fused with the Sigmoid)", BinaryCrossEntropy<double>()}, {"L1", L1<double>()}};
    for (const auto& [name, loss] : losses) {
        const StepResult whole = one_step(loss, 12);
        for (const Index micro_batch : {Index(5), Index(1)}) {  // slices 5, 5, 2 and twelve of 1
            const StepResult sliced = one_step(loss, micro_batch);
            INFO(name << ", micro_batch " << micro_batch);
            CHECK(sliced.loss == Approx(whole.loss).epsilon(1e-12));
            double worst = 0, moved = 0;
            for (std::size_t i = 0; i < whole.weights.size(); ++i) {
                worst = std::max(worst, std::abs(sliced.weights[i] - whole.weights[i]));
                moved = std::max(moved, std::abs(whole.weights[i] - whole.initial[i]));
            }
            CHECK(moved > 1e-4);  // the step changed the weights: the comparison means something
            CHECK(worst < 1e-12);
        }
    }
}

TEST_CASE("fit: the automatic micro_batch keeps a slice's largest activation near 4 MiB, only for small "
          "weights", "[training][micro_batch]") {
    // The MNIST denoiser: 32x28x28 floats (98 KiB) per sample at the largest; 28k weights.
    Autoencoder<float> mnist(Encoder<float>{Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same),
                                            Conv2D<float>(32, 3), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same)},
                             Decoder<float>{Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
                                            Conv2D<float>(32, 3), ReLU<float>(), UpSample2D<float>(2),
                                            Conv2D<float>(1, 3), Sigmoid<float>()},
                             {1, 28, 28});
    const Loss<float> bce = BinaryCrossEntropy<float>();
    CHECK(mnist.largest_activation() == 32 * 28 * 28);
    // 4 MiB holds 41 samples; a multiple of 8 (40) shares evenly among threads.
    CHECK(detail::micro_batch_size<float>(mnist, bce, 128, 0) == 32);  // 4 slices of 32
    CHECK(detail::micro_batch_size<float>(mnist, bce, 100, 0) == 34);  // 3 slices: 34, 34, 32
    CHECK(detail::micro_batch_size<float>(mnist, bce, 50, 0) == 25);   // 2 slices of 25
    CHECK(detail::micro_batch_size<float>(mnist, bce, 40, 0) == 40);   // a batch that fits stays whole
    CHECK(detail::micro_batch_size<float>(mnist, bce, 32, 0) == 32);
    CHECK(detail::micro_batch_size<float>(mnist, bce, 128, 20) == 20);  // as requested
    CHECK(detail::micro_batch_size<float>(mnist, bce, 16, 20) == 16);
    // Large weights: every pass would read 2.1M weights again, so the batch stays whole.
    Autoencoder<float> wide(Encoder<float>{Conv2D<float>(8, 3), Flatten<float>(), Dense<float>(64)},
                            Decoder<float>{Dense<float>(3 * 64 * 64), Reshape<float>({3, 64, 64})}, {3, 64, 64});
    CHECK(detail::micro_batch_size<float>(wide, bce, 64, 0) == 64);
    // Small activations (a dense autoencoder): one pass.
    CHECK(detail::micro_batch_size<float>(small_autoencoder(), bce, 256, 0) == 256);
    // A loss that does not say how it reduces is never sliced, and refuses a requested slice.
    const Loss<float> plain = PlainLoss();
    CHECK(detail::micro_batch_size<float>(mnist, plain, 128, 0) == 128);
    CHECK_THROWS_AS(detail::micro_batch_size<float>(mnist, plain, 128, 16), ArgumentError);
    const Tensor<float> data = low_rank_data(8, 1);
    auto model = small_autoencoder();
    Adam<float> adam;
    auto options = quiet(1);
    options.micro_batch = -1;
    CHECK_THROWS_WITH(model.fit(data, data, MeanSquaredError<float>(), adam, options),
                      Catch::Contains("micro_batch must be >= 0"));
}

TEST_CASE("fit: same seed gives bit-identical weights, another seed different ones", "[training]") {
    const Tensor<float> data = low_rank_data(64, 4);
    auto run = [&](std::uint64_t seed) {
        auto model = small_autoencoder();
        Adam<float> adam(1e-3);
        model.fit(data, data, MeanSquaredError<float>(), adam, quiet(2, 16, seed));
        return all_weights(model);
    };
    CHECK(run(5) == run(5));
    CHECK(run(5) != run(6));
}

TEST_CASE("fit: resume equals uninterrupted (train 4 = train 2, save, load, train 2)", "[training][serialization]") {
    const Tensor<float> data = low_rank_data(80, 6);
    const auto path = (std::filesystem::temp_directory_path() / "latent_resume_test.latent").string();

    auto uninterrupted = small_conv_autoencoder();
    Adam<float> adam(2e-3);
    uninterrupted.fit(data, data, BinaryCrossEntropy<float>(), adam, quiet(4));

    auto first_half = small_conv_autoencoder();
    Adam<float> adam_first(2e-3);
    auto options = quiet(2);
    options.callbacks.push_back(Checkpoint<float>(path, 2));
    first_half.fit(data, data, BinaryCrossEntropy<float>(), adam_first, options);

    TrainingProgress<float> progress;
    auto resumed = Autoencoder<float>::load(path, progress);
    REQUIRE(progress.optimizer.has_value());
    CHECK(progress.epochs_done == 2);
    auto resume_options = quiet(4);
    resume_options.initial_epoch = progress.epochs_done;
    resumed.fit(data, data, BinaryCrossEntropy<float>(), *progress.optimizer, resume_options);
    std::filesystem::remove(path);
    CHECK(all_weights(resumed) == all_weights(uninterrupted));
}

TEST_CASE("fit: NaN in the data is refused before training with the sample index", "[training][numeric]") {
    Tensor<float> data = low_rank_data(20, 1);
    data(13, 0, 2, 2) = NAN;
    auto model = small_autoencoder();
    Adam<float> adam;
    CHECK_THROWS_WITH(model.fit(data, data, MeanSquaredError<float>(), adam, quiet(1)),
                      Catch::Contains("sample 13") && Catch::Contains("NaN"));
}

namespace {

// Mean squared error whose value is NaN from the `good_calls`+1-th call on: a loss that turns NaN
// mid-training, independent of how the arithmetic of any kernel rounds.
class TurnsNaN {
public:
    using Scalar = float;
    static constexpr const char* type_name = "TurnsNaN";
    explicit TurnsNaN(int good_calls) : calls_(std::make_shared<int>(0)), good_calls_(good_calls) {}
    double compute(ConstTensorView<float> prediction, ConstTensorView<float> target, TensorView<float> grad) const {
        const double value = MeanSquaredError<float>().compute(prediction, target, grad);
        return ++*calls_ > good_calls_ ? std::numeric_limits<double>::quiet_NaN() : value;
    }

private:
    std::shared_ptr<int> calls_;
    int good_calls_;
};

}  // namespace

TEST_CASE("fit: a loss that turns NaN stops training naming the epoch and batch, and the weights stay finite",
          "[training][numeric]") {
    const Tensor<float> data = low_rank_data(64, 3);
    auto model = Autoencoder<float>(Encoder<float>{Flatten<float>(), Dense<float>(16)},
                                    Decoder<float>{Dense<float>(64), Reshape<float>({1, 8, 8})}, {1, 8, 8}, 1);
    SGD<float> sgd(0.01f);
    const std::vector<float> before = all_weights(model);
    test::expect_error<NumericError>([&] { model.fit(data, data, TurnsNaN(9), sgd, quiet(5, 8)); },
                                     "epoch 2, batch 2: the loss is NaN");
    const std::vector<float> after = all_weights(model);
    for (float w : after) REQUIRE(std::isfinite(w));
    CHECK(after != before);  // the nine good steps were taken, the NaN one was not applied
}

TEST_CASE("fit: an update that overflows stops training with NumericError", "[training][numeric]") {
    const Tensor<float> data = low_rank_data(64, 3);
    auto model = Autoencoder<float>(Encoder<float>{Flatten<float>(), Dense<float>(16)},
                                    Decoder<float>{Dense<float>(64), Reshape<float>({1, 8, 8})}, {1, 8, 8}, 1);
    SGD<float> sgd(std::numeric_limits<float>::max());  // lr * gradient overflows at the first step
    test::expect_error<NumericError>([&] { model.fit(data, data, SumSquaredError<float>(), sgd, quiet(5, 8)); },
                                     "epoch 1, batch 1: the update made weights non-finite (learning rate too high?)");
}

namespace {

// y = w * x, whose weight gradient turns NaN when a sample starts with a negative value.
template <class T> class FragileScale {
public:
    using Scalar = T;
    static constexpr const char* type_name = "FragileScale";
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) { y = x * weight_[0]; }
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        const Index per_sample = x.size() / x.dimension(0);
        for (Index n = 0; n < x.dimension(0); ++n)
            if (x.data()[n * per_sample] < 0) grad_[0] = std::numeric_limits<T>::quiet_NaN();
        if (dx.data() != nullptr) dx = dy * weight_[0];
    }
    std::vector<Parameter<T>> parameters() { return {{"weight", weight_.data(), grad_.data(), 1}}; }

private:
    std::vector<T> weight_{T(1)}, grad_{T(0)};
};

}  // namespace

TEST_CASE("fit: a NaN gradient stops training naming epoch, batch and layer, and the weights are kept",
          "[training][numeric]") {
    Tensor<float> data = low_rank_data(32, 3);
    data(20, 0, 0, 0) = -1.0f;  // sample 20 makes FragileScale's gradient NaN
    Sequential<float> model{FragileScale<float>(), Flatten<float>(), Dense<float>(64), Reshape<float>({1, 8, 8})};
    model.build({1, 8, 8}, 2);
    Adam<float> adam;
    auto options = quiet(3, 8);
    options.shuffle = false;  // sample 20 is in the third batch of the first epoch
    try {
        fit(model, data, data, MeanSquaredError<float>(), adam, options);
        FAIL("expected NumericError");
    } catch (const NumericError& error) {
        CHECK_THAT(std::string(error.what()),
                   Catch::Contains("epoch 1, batch 3: the gradient of layer 1 (FragileScale) weight is not finite"));
    }
    for (const auto& parameter : model.parameters())
        for (Index i = 0; i < parameter.size; ++i) REQUIRE(std::isfinite(parameter.value[i]));
}

TEST_CASE("fit: early stopping stops and restores the best weights", "[training][callbacks]") {
    const Tensor<float> data = low_rank_data(64, 8);
    auto model = small_autoencoder();
    SGD<float> sgd(0.0);  // nothing improves: stops after patience + 1 epochs
    auto options = quiet(20);
    options.shuffle = false;  // the same batches every epoch, so the same loss to the last bit
    int epochs_seen = 0;
    options.callbacks.push_back(EarlyStopping<float>(2));
    options.callbacks.push_back([&](EpochEnd<float>&) { ++epochs_seen; });
    const History history = model.fit(data, data, MeanSquaredError<float>(), sgd, options);
    CHECK(history.size() == 4);  // best at epoch 1, then 3 epochs without improvement
    CHECK(history.stopped_early);
}

TEST_CASE("fit: early stopping puts back the weights of the best epoch", "[training][callbacks]") {
    // Epoch 1 trains normally and is the best. After it, and after every later epoch, a callback
    // that runs after EarlyStopping sets every weight to 3: the network saturates, and the next
    // epochs' losses are far worse. EarlyStopping(1) stops after epoch 3 and must restore the
    // weights it saw at the end of epoch 1.
    const Tensor<float> data = low_rank_data(64, 8);
    auto model = small_autoencoder();
    SGD<float> sgd(0.1);
    auto options = quiet(20);
    std::vector<std::vector<float>> best_weights;
    options.callbacks.push_back(EarlyStopping<float>(1));
    options.callbacks.push_back([&](EpochEnd<float>& end) {
        if (end.epoch == 0) best_weights = end.get_weights();
        if (end.stop) return;
        std::vector<std::vector<float>> spoiled = end.get_weights();
        for (auto& values : spoiled) std::fill(values.begin(), values.end(), 3.0f);
        end.set_weights(spoiled);
    });
    const History history = model.fit(data, data, MeanSquaredError<float>(), sgd, options);
    INFO("losses " << history.loss[0] << ", " << history.loss[1] << ", " << history.loss[2]);
    REQUIRE(history.size() == 3);
    CHECK(history.stopped_early);
    CHECK(history.loss[1] > history.loss[0]);
    CHECK(history.loss[2] > history.loss[0]);
    std::vector<float> restored, expected;
    for (const auto& parameter : model.parameters()) restored.insert(restored.end(), parameter.value, parameter.value + parameter.size);
    for (const auto& values : best_weights) expected.insert(expected.end(), values.begin(), values.end());
    CHECK(restored == expected);
}

namespace {

// A corruption that passes the batch through unchanged and records, per call, the seed it was
// given and the samples it saw (sample n of the data holds the value n / 64 everywhere).
struct RecordingCorruption {
    std::shared_ptr<std::vector<std::uint64_t>> seeds = std::make_shared<std::vector<std::uint64_t>>();
    std::shared_ptr<std::vector<Index>> samples = std::make_shared<std::vector<Index>>();

    void operator()(ConstTensorView<float> clean, TensorView<float> corrupted, std::uint64_t seed) const {
        seeds->push_back(seed);
        const Index sample_size = clean.size() / clean.dimension(0);
        for (Index n = 0; n < clean.dimension(0); ++n)
            samples->push_back(static_cast<Index>(std::lround(clean.data()[n * sample_size] * 64)));
        std::copy_n(clean.data(), clean.size(), corrupted.data());
    }
};

Tensor<float> numbered_samples(Index count) {
    Tensor<float> data = make_tensor<float>(count, {1, 8, 8});
    for (Index n = 0; n < count; ++n) std::fill_n(data.data() + n * 64, 64, static_cast<float>(n) / 64.0f);
    return data;
}

// Three epochs of 64 numbered samples in 4 batches of 16, through a RecordingCorruption.
RecordingCorruption record_three_epochs() {
    const Tensor<float> data = numbered_samples(64);
    auto model = small_autoencoder();
    SGD<float> sgd(0.01);
    auto options = quiet(3, 16);
    const RecordingCorruption recorder;
    options.corruption = recorder;
    model.fit(data, data, MeanSquaredError<float>(), sgd, options);
    return recorder;
}

}  // namespace

TEST_CASE("fit: every epoch shuffles the samples into a new order", "[training][shuffle]") {
    const RecordingCorruption recorder = record_three_epochs();
    REQUIRE(recorder.samples->size() == 3 * 64);
    std::vector<std::vector<Index>> orders;
    for (int epoch = 0; epoch < 3; ++epoch)
        orders.emplace_back(recorder.samples->begin() + epoch * 64, recorder.samples->begin() + (epoch + 1) * 64);
    std::vector<Index> every_sample(64);
    std::iota(every_sample.begin(), every_sample.end(), Index{0});
    for (const auto& order : orders) {
        std::vector<Index> sorted = order;
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted == every_sample);  // each sample once per epoch
        CHECK(order != every_sample);   // shuffled
    }
    CHECK(orders[0] != orders[1]);
    CHECK(orders[1] != orders[2]);
    CHECK(orders[0] != orders[2]);
}

TEST_CASE("fit: every batch of every epoch is corrupted from its own seed", "[training][corruption]") {
    const RecordingCorruption recorder = record_three_epochs();
    REQUIRE(recorder.seeds->size() == 3 * 4);
    const std::set<std::uint64_t> distinct(recorder.seeds->begin(), recorder.seeds->end());
    CHECK(distinct.size() == recorder.seeds->size());
}

TEST_CASE("fit: CSV logger writes one line per epoch", "[training][callbacks]") {
    const Tensor<float> data = low_rank_data(32, 8);
    const auto path = (std::filesystem::temp_directory_path() / "latent_history_test.csv").string();
    auto model = small_autoencoder();
    Adam<float> adam;
    auto options = quiet(3);
    options.validation_split = 0.25;
    options.callbacks.push_back(CsvLogger<float>(path));
    model.fit(data, data, MeanSquaredError<float>(), adam, options);
    std::ifstream file(path);
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(file, line)) lines.push_back(line);
    std::filesystem::remove(path);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "epoch,loss,val_loss,learning_rate,seconds");
    CHECK(lines[1].rfind("1,", 0) == 0);
    CHECK(lines[1].find(",0.001,") != std::string::npos);  // Adam's default learning rate
    CHECK(std::count(lines[3].begin(), lines[3].end(), ',') == 4);
}

TEST_CASE("fit: a batch source streams batches and trains", "[training]") {
    const Tensor<float> data = low_rank_data(128, 5);
    auto model = small_autoencoder();
    Adam<float> adam(3e-3);
    BatchSource<float> source;
    source.batches_per_epoch = 8;
    int calls = 0;
    source.next = [&](int, Index batch, Tensor<float>& inputs, Tensor<float>& targets) {
        ++calls;
        inputs = data.slice(Eigen::array<Index, 4>{batch * 16, 0, 0, 0}, Eigen::array<Index, 4>{16, 1, 8, 8});
        targets = inputs;
    };
    const History history = model.fit(source, MeanSquaredError<float>(), adam, quiet(10));
    CHECK(calls == 80);
    CHECK(history.loss.back() < history.loss.front() / 2);
}

TEST_CASE("fit: targets of the wrong shape are refused", "[training][shape]") {
    const Tensor<float> data = low_rank_data(8, 1);
    const Tensor<float> wrong = make_tensor<float>(8, {1, 4, 16});
    auto model = small_autoencoder();
    Adam<float> adam;
    CHECK_THROWS_AS(model.fit(data, wrong, MeanSquaredError<float>(), adam, quiet(1)), ShapeError);
    CHECK_THROWS_WITH(model.fit(data, wrong, MeanSquaredError<float>(), adam, quiet(1)),
                      Catch::Contains("targets have shape (1, 4, 16) but the model outputs (1, 8, 8)"));
    const Tensor<float> too_few = make_tensor<float>(4, {1, 8, 8});
    CHECK_THROWS_AS(model.fit(data, too_few, MeanSquaredError<float>(), adam, quiet(1)), ShapeError);
}

TEST_CASE("fit: BCE on a sigmoid output uses the fused gradient (model learns from saturated outputs)",
          "[training][losses]") {
    // One Dense + Sigmoid whose bias starts hugely saturated: p = sigmoid(50) = 1 in float for
    // targets 0. The unfused gradient p(1-p) * dL/dp is exactly 0 there; the fused (p - t) is not.
    Tensor<float> targets = make_tensor<float>(4, {2, 1, 1});
    const Tensor<float> inputs = test::random_tensor<float>(4, {3, 1, 1}, 1);
    Sequential<float> model{Dense<float>(2), Sigmoid<float>()};
    model.build({3, 1, 1});
    auto* dense = model.layer(0).get<Dense<float>>();
    dense->bias().setConstant(50.0f);
    SGD<float> sgd(10.0);  // the fused gradient is 1/8 per output: the bias falls 5 per epoch
    const History history = fit(model, inputs, targets, BinaryCrossEntropy<float>(), sgd, quiet(30, 4));
    CHECK(history.loss.back() < history.loss.front() / 10);
}

namespace {

// Everything a ProgressBar printed to a temporary file.
std::string progress_output(bool terminal, int verbose) {
    std::FILE* file = std::tmpfile();
    REQUIRE(file != nullptr);
    {
        ProgressBar progress(verbose, 2, file, terminal);
        for (int epoch = 0; epoch < 2; ++epoch) {
            progress.start_epoch(epoch, 3);
            for (int batch = 1; batch <= 3; ++batch) progress.update(batch, batch * 10, 0.5);
            progress.end_epoch(30, 0.25, epoch == 0 ? NAN : 0.125, 1.5);
        }
    }
    std::rewind(file);
    std::string text;
    for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) text += static_cast<char>(c);
    std::fclose(file);
    return text;
}

}  // namespace

TEST_CASE("progress: without a terminal, one plain line per epoch", "[training][progress]") {
    const std::string text = progress_output(false, 1);
    CHECK(text == "epoch 1/2  loss 0.250000  1.5s  20 img/s\n"
                  "epoch 2/2  loss 0.250000  val_loss 0.125000  1.5s  20 img/s\n");
}

TEST_CASE("progress: on a terminal, a bar redrawn in place with images/s, loss and ETA", "[training][progress]") {
    const std::string text = progress_output(true, 1);
    CHECK_THAT(text, Catch::Contains("\repoch 1/2 [========================] 3/3"));
    CHECK_THAT(text, Catch::Contains("img/s  loss 0.50000  ETA"));
    CHECK_THAT(text, Catch::Contains("\r\033[Kepoch 2/2  loss 0.250000  val_loss 0.125000"));
    CHECK(std::count(text.begin(), text.end(), '\n') == 2);  // one finished line per epoch
}

TEST_CASE("progress: verbose 0 prints nothing", "[training][progress]") {
    CHECK(progress_output(false, 0).empty());
    CHECK(progress_output(true, 0).empty());
}

TEST_CASE("autoencoder: reconstruction error scores unlike inputs higher (anomaly detection)", "[training]") {
    const Tensor<float> data = low_rank_data(256, 5);
    auto model = small_autoencoder();
    Adam<float> adam(3e-3);
    model.fit(data, data, MeanSquaredError<float>(), adam, quiet(40));
    // Inliers: fresh samples from the same manifold. Outliers: uniform noise in [0, 1].
    const Tensor<float> inliers = low_rank_data(32, 6);
    const Tensor<float> outliers = test::random_tensor<float>(32, {1, 8, 8}, 7, 0, 1);
    const auto inlier_scores = model.reconstruction_error(inliers);
    const auto outlier_scores = model.reconstruction_error(outliers);
    REQUIRE(inlier_scores.size() == 32);
    // Each score is the sample's mean squared error, computed here by hand for sample 3.
    const Tensor<float> reconstructed = model.reconstruct(inliers);
    double sum = 0;
    for (Index i = 3 * 64; i < 4 * 64; ++i) sum += std::pow(double(reconstructed.data()[i]) - inliers.data()[i], 2);
    CHECK(inlier_scores[3] == Approx(sum / 64).epsilon(1e-9));
    const double worst_inlier = *std::max_element(inlier_scores.begin(), inlier_scores.end());
    const double best_outlier = *std::min_element(outlier_scores.begin(), outlier_scores.end());
    CHECK(worst_inlier < best_outlier);
}
