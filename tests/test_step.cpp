// The training step and what fit() builds around it: terms of the objective, slicing, the loss on
// the logits, user-defined optimizers and losses, schedules, resuming, warnings.
#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

// y = x, adding the term "energy" = weight * sum of x^2 over the slice / the whole batch's size:
// a layer with a term of its own, written as a user would (layers/layer.hpp).
template <class T> class Energy {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Energy";
    explicit Energy(double weight = 0.1) : weight_(weight) {}
    Shape output_shape(const Shape& input) const { return input; }
    // forward: y = x;  term = weight * sum_n,i x[n,i]^2 / N
    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) {
        std::copy_n(x.data(), x.size(), y.data());
        value_ = 0;
        if (!pass.computes_terms()) return;
        double sum = 0;
        for (Index i = 0; i < x.size(); ++i) sum += static_cast<double>(x.data()[i]) * x.data()[i];
        value_ = scale_ * weight_ * sum / static_cast<double>(pass.whole_batch(x.dimension(0)));
    }
    // backward: dx = dy + d(term)/dx = dy + 2 weight x / N
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx, const Pass& pass) {
        if (dx.data() == nullptr) return;
        const double factor = 2 * scale_ * weight_ / static_cast<double>(pass.whole_batch(x.dimension(0)));
        for (Index i = 0; i < x.size(); ++i) dx.data()[i] = dy.data()[i] + static_cast<T>(factor * x.data()[i]);
    }
    std::string term() const { return "energy"; }
    double term_value() const { return value_; }
    void scale_term(double factor) { scale_ = factor; }
    Config config() const { return Config().set("weight", weight_); }
    static Energy from_config(const Config& config) { return Energy(config.get_double("weight")); }

private:
    double weight_, scale_ = 1, value_ = 0;
};

// y = x - (mean of x over the batch): a layer whose samples depend on each other.
template <class T> class BatchCentre {
public:
    using Scalar = T;
    static constexpr const char* type_name = "BatchCentre";
    bool mixes_samples() const { return true; }
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) { centre(x, y); }
    // dx = dy - (mean of dy over the batch)
    void backward(ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() != nullptr) centre(dy, dx);
    }

private:
    static void centre(ConstTensorView<T> in, TensorView<T> out) {
        const ConstMatrixView<T> rows = as_matrix<T>(in);
        as_matrix<T>(out) = rows.rowwise() - rows.colwise().mean();
    }
};

// Plain SGD written outside the library, as a user would: the optimizer contract only.
template <class T> class PlainSGD {
public:
    using Scalar = T;
    static constexpr const char* type_name = "PlainSGD";
    explicit PlainSGD(double lr) : lr_(lr) {}
    void step(const std::vector<Parameter<T>>& parameters) {
        for (const auto& parameter : parameters)
            for (Index i = 0; i < parameter.size; ++i) parameter.value[i] -= static_cast<T>(lr_) * parameter.grad[i];
        ++state_.step;
    }
    OptimizerState<T>& state() { return state_; }
    const OptimizerState<T>& state() const { return state_; }
    Config config() const { return Config().set("lr", lr_); }
    static PlainSGD from_config(const Config& config) { return PlainSGD(config.get_double("lr")); }
    double learning_rate() const { return lr_; }
    void set_learning_rate(double lr) { lr_ = lr; }

private:
    double lr_;
    OptimizerState<T> state_;
};

// Mean absolute error written outside the library, declaring its Reduction.
template <class T> struct AbsoluteError {
    using Scalar = T;
    static constexpr const char* type_name = "AbsoluteError";
    Reduction reduction() const { return Reduction::Mean; }
    double compute(ConstTensorView<T> prediction, ConstTensorView<T> target, TensorView<T> grad) const {
        double sum = 0;
        const double count = static_cast<double>(prediction.size());
        for (Index i = 0; i < prediction.size(); ++i) {
            const double error = static_cast<double>(prediction.data()[i]) - target.data()[i];
            sum += std::abs(error);
            grad.data()[i] = static_cast<T>((error > 0) - (error < 0)) / static_cast<T>(count);
        }
        return sum / count;
    }
};

Tensor<float> data(Index count, std::uint64_t seed) { return test::random_tensor<float>(count, {1, 4, 4}, seed, 0, 1); }

Autoencoder<float> small_model(std::uint64_t seed = 1) {
    return Autoencoder<float>(Encoder<float>{Flatten<float>(), Dense<float>(6), Sigmoid<float>(), Energy<float>(0.05)},
                              Decoder<float>{Dense<float>(16), Sigmoid<float>(), Reshape<float>({1, 4, 4})}, {1, 4, 4},
                              seed);
}

FitOptions<float> quiet(int epochs, Index batch = 8) {
    FitOptions<float> options;
    options.epochs = epochs;
    options.batch_size = batch;
    options.seed = 3;
    options.verbose = 0;
    return options;
}

template <class Model> std::vector<double> weights_of(const Model& model) {
    std::vector<double> values;
    for (const auto& parameter : model.parameters()) values.insert(values.end(), parameter.value, parameter.value + parameter.size);
    return values;
}

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("latent_step_" + name)).string();
}

}  // namespace

TEST_CASE("fit: a user-defined optimizer trains, checkpoints and resumes", "[step][optimizers][serialization]") {
    const Tensor<float> x = data(48, 1);
    auto uninterrupted = small_model();
    PlainSGD<float> sgd(0.5);
    const History full = uninterrupted.fit(x, x, MeanSquaredError<float>(), sgd, quiet(4));
    CHECK(full.loss.back() < full.loss.front());
    CHECK(sgd.state().step == 4 * 6);

    const std::string path = temp_path("user_optimizer.latent");
    auto first = small_model();
    PlainSGD<float> first_sgd(0.5);
    auto options = quiet(2);
    options.callbacks.push_back(Checkpoint<float>(path, 2));
    first.fit(x, x, MeanSquaredError<float>(), first_sgd, options);

    // Without the type registered the checkpoint names it; with it, training resumes exactly.
    auto registry = Registry<float>::builtin();
    registry.add_layer<Energy<float>>();
    TrainingProgress<float> unknown;
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path, unknown, registry); },
                                    "unknown optimizer type 'PlainSGD'");
    registry.add_optimizer<PlainSGD<float>>();
    TrainingProgress<float> progress;
    auto resumed = Autoencoder<float>::load(path, progress, registry);
    REQUIRE(progress.optimizer.has_value());
    REQUIRE(progress.optimizer->get<PlainSGD<float>>() != nullptr);
    CHECK(progress.optimizer->state().step == 2 * 6);
    auto resume_options = quiet(4);
    resume_options.resume_from(progress);
    resumed.fit(x, x, MeanSquaredError<float>(), *progress.optimizer, resume_options);
    std::filesystem::remove(path);
    CHECK(weights_of(resumed) == weights_of(uninterrupted));
}

TEST_CASE("fit: a user-defined loss trains, and its Reduction lets fit() slice batches exactly", "[step][losses]") {
    const Tensor<double> x = test::random_tensor<double>(12, {1, 4, 4}, 2, 0, 1);
    auto run = [&](Index micro_batch) {
        Autoencoder<double> model(Encoder<double>{Flatten<double>(), Dense<double>(5), Tanh<double>()},
                                  Decoder<double>{Dense<double>(16), Reshape<double>({1, 4, 4})}, {1, 4, 4}, 4);
        SGD<double> sgd(0.3);
        FitOptions<double> options;
        options.batch_size = 12;
        options.verbose = 0;
        options.micro_batch = micro_batch;
        const History history = model.fit(x, x, AbsoluteError<double>(), sgd, options);
        return std::make_pair(history.loss.back(), weights_of(model));
    };
    const auto whole = run(0), sliced = run(5);
    CHECK(sliced.first == Approx(whole.first).epsilon(1e-12));
    for (std::size_t i = 0; i < whole.second.size(); ++i) REQUIRE(std::abs(sliced.second[i] - whole.second[i]) < 1e-12);
}

TEST_CASE("fit: a layer's term is in the objective, and slices of a batch give the whole batch's step",
          "[step][terms][micro_batch]") {
    const Tensor<double> x = test::random_tensor<double>(12, {1, 4, 4}, 5, 0, 1);
    auto run = [&](Index micro_batch) {
        Autoencoder<double> model(Encoder<double>{Flatten<double>(), Dense<double>(6), Sigmoid<double>(), Energy<double>(0.2)},
                                  Decoder<double>{Dense<double>(16), Sigmoid<double>(), Reshape<double>({1, 4, 4})},
                                  {1, 4, 4}, 7);
        const auto initial = weights_of(model);
        SGD<double> sgd(0.5);
        FitOptions<double> options;
        options.batch_size = 12;
        options.shuffle = false;
        options.verbose = 0;
        options.micro_batch = micro_batch;
        const History history = model.fit(x, x, BinaryCrossEntropy<double>(), sgd, options);
        return std::make_tuple(history, weights_of(model), initial);
    };
    const auto [whole, whole_weights, initial] = run(12);
    REQUIRE(whole.term_names == std::vector<std::string>{"reconstruction", "energy"});
    // The objective is the sum of its parts; the term's value is > 0.
    CHECK(whole.loss[0] == Approx(whole.term("reconstruction")[0] + whole.term("energy")[0]).epsilon(1e-14));
    CHECK(whole.term("energy")[0] > 0.01);
    double moved = 0;
    for (std::size_t i = 0; i < initial.size(); ++i) moved = std::max(moved, std::abs(whole_weights[i] - initial[i]));
    CHECK(moved > 1e-4);
    for (const Index micro_batch : {Index(5), Index(1)}) {
        const auto [sliced, sliced_weights, unused] = run(micro_batch);
        INFO("micro_batch " << micro_batch);
        CHECK(sliced.term("energy")[0] == Approx(whole.term("energy")[0]).epsilon(1e-12));
        CHECK(sliced.term("reconstruction")[0] == Approx(whole.term("reconstruction")[0]).epsilon(1e-12));
        double worst = 0;
        for (std::size_t i = 0; i < whole_weights.size(); ++i)
            worst = std::max(worst, std::abs(sliced_weights[i] - whole_weights[i]));
        CHECK(worst < 1e-12);
    }
}

TEST_CASE("fit: the terms are shown beside the total in History, the progress line and the CSV log, "
          "for training and validation", "[step][terms][callbacks]") {
    const Tensor<float> x = data(40, 2);
    auto model = small_model();
    Adam<float> adam(1e-2);
    const std::string path = temp_path("terms.csv");
    auto options = quiet(2);
    options.validation_split = 0.2;
    options.callbacks.push_back(CsvLogger<float>(path));
    const History history = model.fit(x, x, MeanSquaredError<float>(), adam, options);
    REQUIRE(history.val_terms.size() == 2);
    CHECK(history.val_loss[1] == Approx(history.val_term("reconstruction")[1] + history.val_term("energy")[1]));
    CHECK_THROWS_WITH(history.term("kl"), Catch::Contains("no term 'kl'") && Catch::Contains("reconstruction, energy"));
    std::ifstream file(path);
    std::string header;
    std::getline(file, header);
    CHECK(header == "epoch,loss,reconstruction,energy,val_loss,val_reconstruction,val_energy,learning_rate,seconds");
    file.close();
    std::filesystem::remove(path);

    std::FILE* out = std::tmpfile();
    REQUIRE(out != nullptr);
    ProgressBar progress(1, 1, out, false);
    progress.start_epoch(0, 1);
    progress.end_epoch(10, 0.3, 0.4, 1.0, {"reconstruction", "energy"}, {0.25, 0.05}, {0.35, 0.05});
    std::rewind(out);
    char line[256] = {};
    REQUIRE(std::fgets(line, sizeof line, out) != nullptr);
    std::fclose(out);
    CHECK(std::string(line) == "epoch 1/1  loss 0.300000 (reconstruction 0.250000, energy 0.050000)  val_loss 0.400000 "
                               "(reconstruction 0.350000, energy 0.050000)  1.0s  10 img/s\n");
}

TEST_CASE("fit: the gradient is taken on the logits also when Flatten or Reshape follow the final Sigmoid",
          "[step][losses][sigmoid]") {
    // p = sigmoid(50) = 1 in float for targets 0: the chain through the Sigmoid gives exactly 0,
    // the gradient on the logits (p - t) does not. The Reshape after the Sigmoid must not hide it.
    const Tensor<float> targets = make_tensor<float>(4, {1, 1, 2});
    const Tensor<float> inputs = test::random_tensor<float>(4, {3, 1, 1}, 1);
    Sequential<float> model{Dense<float>(2), Sigmoid<float>(), Reshape<float>({1, 1, 2})};
    model.build({3, 1, 1});
    CHECK(model.logistic_head() == 1);
    model.layer(0).get<Dense<float>>()->bias().setConstant(50.0f);
    SGD<float> sgd(10.0);
    const History history = fit(model, inputs, targets, BinaryCrossEntropy<float>(), sgd, quiet(30, 4));
    CHECK(history.loss.back() < history.loss.front() / 10);
    // A model whose Sigmoid is followed by another kind of layer has no logistic output.
    Sequential<float> other{Dense<float>(2), Sigmoid<float>(), Dense<float>(2)};
    other.build({3, 1, 1});
    CHECK(other.logistic_head() == -1);
}

TEST_CASE("fit: a model with layers that mix samples is never sliced, and refuses an explicit micro_batch",
          "[step][micro_batch]") {
    Autoencoder<float> model(Encoder<float>{Conv2D<float>(32, 3), BatchCentre<float>(), ReLU<float>()},
                             Decoder<float>{Conv2D<float>(1, 3), Sigmoid<float>()}, {1, 28, 28});
    REQUIRE(model.mixes_samples());
    const Loss<float> loss = BinaryCrossEntropy<float>();
    CHECK(detail::micro_batch_size<float>(model, loss, 128, 0) == 128);  // would be 32 without BatchCentre
    CHECK(detail::micro_batch_size<float>(model, loss, 128, 128) == 128);
    CHECK_THROWS_WITH(detail::micro_batch_size<float>(model, loss, 128, 16),
                      Catch::Contains("statistics of a whole batch"));
}

TEST_CASE("schedules: factors follow PyTorch's schedulers in closed form", "[step][schedules]") {
    const Schedule step = step_decay(3, 0.5);
    CHECK(step.factor(0) == 1.0);
    CHECK(step.factor(2) == 1.0);
    CHECK(step.factor(3) == 0.5);
    CHECK(step.factor(7) == 0.25);
    const Schedule milestones = multi_step({2, 5}, 0.1);
    CHECK(milestones.factor(1) == 1.0);
    CHECK(milestones.factor(2) == Approx(0.1));
    CHECK(milestones.factor(6) == Approx(0.01));
    CHECK(exponential_decay(0.9).factor(2) == Approx(0.81));
    // CosineAnnealingLR, T_max 10, eta_min = 0.1 * base: at epoch 5, 0.1 + 0.9 * (1 + cos(pi / 2)) / 2 = 0.55
    const Schedule cosine = cosine_decay(10, 0.1);
    CHECK(cosine.factor(0) == Approx(1.0));
    CHECK(cosine.factor(5) == Approx(0.55));
    CHECK(cosine.factor(10) == Approx(0.1));
    CHECK(cosine.factor(15) == Approx(0.1));
    const Schedule warmup = linear_warmup(4);
    CHECK(warmup.factor(0) == 0.0);
    CHECK(warmup.factor(1) == 0.25);
    CHECK(warmup.factor(4) == 1.0);
    CHECK(warmup.factor(9) == 1.0);
    const Schedule chained = then_after(linear_warmup(2, 0.5), 2, step_decay(1, 0.5));
    CHECK(chained.factor(1) == 0.75);
    CHECK(chained.factor(2) == 1.0);
    CHECK(chained.factor(3) == 0.5);
    CHECK_THROWS_AS(step_decay(0, 0.5), ArgumentError);
}

TEST_CASE("fit: learning-rate schedules and ReduceLROnPlateau set the rate per epoch and resume exactly",
          "[step][schedules][serialization]") {
    const Tensor<float> x = data(48, 3);
    auto callbacks = [](FitOptions<float>& options) {
        options.callbacks.push_back(LearningRateSchedule<float>(step_decay(2, 0.5)));
        options.callbacks.push_back(ReduceLROnPlateau<float>(0.5, 0, 0.5));  // a 50% improvement or halve again
    };
    auto uninterrupted = small_model();
    Adam<float> adam(1e-2);
    auto options = quiet(6);
    callbacks(options);
    const History full = uninterrupted.fit(x, x, MeanSquaredError<float>(), adam, options);
    REQUIRE(full.learning_rate.size() == 6);
    CHECK(full.learning_rate[0] == Approx(1e-2));
    CHECK(full.learning_rate[1] == Approx(1e-2));
    CHECK(full.learning_rate[2] <= 0.5e-2 + 1e-12);  // step decay at epoch 2 (the plateau may halve more)

    const std::string path = temp_path("schedule.latent");
    auto first = small_model();
    Adam<float> first_adam(1e-2);
    auto first_options = quiet(3);
    callbacks(first_options);
    first_options.callbacks.push_back(Checkpoint<float>(path, 3));
    first.fit(x, x, MeanSquaredError<float>(), first_adam, first_options);

    auto registry = Registry<float>::builtin();
    registry.add_layer<Energy<float>>();
    TrainingProgress<float> progress;
    auto resumed = Autoencoder<float>::load(path, progress, registry);
    REQUIRE(progress.callback_states.size() == 2);
    CHECK(progress.callback_states[0].first == "0:LearningRateSchedule");
    CHECK(progress.callback_states[1].first == "1:ReduceLROnPlateau");
    auto resume_options = quiet(6);
    callbacks(resume_options);
    resume_options.callbacks.push_back(Checkpoint<float>(path, 3));
    resume_options.resume_from(progress);
    const History rest = resumed.fit(x, x, MeanSquaredError<float>(), *progress.optimizer, resume_options);
    std::filesystem::remove(path);
    CHECK(rest.learning_rate == std::vector<double>(full.learning_rate.begin() + 3, full.learning_rate.end()));
    CHECK(weights_of(resumed) == weights_of(uninterrupted));

    // A schedule resumed without its state says what to do.
    auto without_state = quiet(6);
    callbacks(without_state);
    without_state.initial_epoch = 3;
    Adam<float> other(1e-2);
    test::expect_error<ArgumentError>([&] { small_model().fit(x, x, MeanSquaredError<float>(), other, without_state); },
                                      "FitOptions::resume_from");
}

TEST_CASE("fit: a term-weight schedule scales a term per epoch (a warm-up from 0)", "[step][schedules][terms]") {
    const Tensor<float> x = data(32, 4);
    auto model = small_model();
    Adam<float> adam(1e-2);
    auto options = quiet(3);
    options.callbacks.push_back(TermWeightSchedule<float>("energy", linear_warmup(2)));
    const History history = model.fit(x, x, MeanSquaredError<float>(), adam, options);
    CHECK(history.term("energy")[0] == 0.0);
    CHECK(history.term("energy")[1] > 0.0);
    auto misspelled = quiet(1);
    misspelled.callbacks.push_back(TermWeightSchedule<float>("enrgy", linear_warmup(2)));
    test::expect_error<ArgumentError>([&] { model.fit(x, x, MeanSquaredError<float>(), adam, misspelled); },
                                      "no layer of the model adds a term 'enrgy' (its terms: energy)");
}

TEST_CASE("fit: epochs that do not exceed initial_epoch are refused, saying that epochs is the total",
          "[step][serialization]") {
    const Tensor<float> x = data(16, 5);
    auto model = small_model();
    Adam<float> adam;
    auto options = quiet(2);
    options.initial_epoch = 2;
    test::expect_error<ArgumentError>([&] { model.fit(x, x, MeanSquaredError<float>(), adam, options); },
                                      "epochs (2) is the total epoch count, counting the 2 already done: no epoch "
                                      "would run (to train N more, set epochs = 2 + N)");
}

TEST_CASE("fit: an epoch whose gradients are all exactly zero is reported as a dead network", "[step][numeric]") {
    const Tensor<float> x = data(16, 6);
    // Every ReLU input is hugely negative: the output is 0 for every sample, every gradient is 0.
    Sequential<float> model{Flatten<float>(), Dense<float>(16), ReLU<float>(), Reshape<float>({1, 4, 4})};
    model.build({1, 4, 4});
    model.layer(1).get<Dense<float>>()->bias().setConstant(-1e6f);
    SGD<float> sgd(0.1);
    const History history = fit(model, x, x, MeanSquaredError<float>(), sgd, quiet(2));
    CHECK(history.dead_gradient_epochs == std::vector<int>{0, 1});
    REQUIRE(history.warnings.size() == 2);
    CHECK_THAT(history.warnings[0], Catch::Contains("epoch 1: every gradient of every batch was exactly zero"));
}

TEST_CASE("fit: a loss that does not move is reported, with the loss printed readably", "[step][numeric]") {
    const Tensor<float> x = data(16, 6);
    // A learning rate so small that no float weight changes: gradients flow, the loss stays put.
    Sequential<float> model{Flatten<float>(), Dense<float>(8), Sigmoid<float>(), Dense<float>(16),
                            Reshape<float>({1, 4, 4})};
    model.build({1, 4, 4});
    SGD<float> tiny(1e-30);
    auto options = quiet(3, 16);
    options.shuffle = false;
    const History history = fit(model, x, x, MeanSquaredError<float>(), tiny, options);
    CHECK(history.dead_gradient_epochs.empty());
    REQUIRE(history.warnings.size() == 2);
    CHECK_THAT(history.warnings[0], Catch::Contains("epoch 2: the training loss is exactly the previous epoch's ("));
    // The loss in the message has at most 6 significant digits.
    const std::string& text = history.warnings[0];
    const std::string number = text.substr(text.find('(') + 1, text.find(')') - text.find('(') - 1);
    CHECK(std::stod(number) == Approx(history.loss[1]).epsilon(1e-5));
    CHECK(std::count_if(number.begin(), number.end(), [](char c) { return std::isdigit(c) != 0; }) <= 7);

    // The new user's case: SGD at lr 1e6 kills the network; fit() says so instead of finishing quietly.
    Sequential<float> relu_model{Flatten<float>(), Dense<float>(16), ReLU<float>(), Dense<float>(16),
                                 Reshape<float>({1, 4, 4})};
    relu_model.build({1, 4, 4});
    SGD<float> huge(1e6);
    try {
        const History dead = fit(relu_model, x, x, MeanSquaredError<float>(), huge, quiet(4));
        CHECK_FALSE(dead.warnings.empty());
    } catch (const NumericError& error) {  // or the update overflowed the weights, which stops training
        CHECK_THAT(error.what(), Catch::Contains("epoch"));
    }
}

TEST_CASE("fit: dropout and additive noise give the same step whole or in slices, and with 1 or 2 threads",
          "[step][noise][threads][micro_batch]") {
    const Tensor<double> x = test::random_tensor<double>(12, {1, 4, 4}, 8, 0, 1);
    const int saved = num_threads();
    auto run = [&](Index micro_batch, int threads) {
        set_num_threads(threads);
        Autoencoder<double> model(Encoder<double>{Flatten<double>(), AdditiveNoise<double>(0.1), Dense<double>(8),
                                                  ReLU<double>(), Dropout<double>(0.3)},
                                  Decoder<double>{Dense<double>(16), Reshape<double>({1, 4, 4})}, {1, 4, 4}, 9);
        SGD<double> sgd(0.5);
        FitOptions<double> options;
        options.epochs = 2;
        options.batch_size = 12;
        options.verbose = 0;
        options.micro_batch = micro_batch;
        model.fit(x, x, MeanSquaredError<double>(), sgd, options);
        return weights_of(model);
    };
    const auto whole = run(0, 1), sliced = run(5, 1);
    double worst = 0;
    for (std::size_t i = 0; i < whole.size(); ++i) worst = std::max(worst, std::abs(sliced[i] - whole[i]));
    CHECK(worst < 1e-12);
    CHECK(run(0, 2) == whole);
    CHECK(run(5, 2) == sliced);
    set_num_threads(saved);
}
