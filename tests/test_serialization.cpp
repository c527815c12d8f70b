#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <filesystem>
#include <fstream>

#include "helpers.hpp"

using namespace latent;

namespace {

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("latent_serialization_" + name)).string();
}

std::vector<char> file_bytes(const std::string& path) { return read_file(path); }

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A model that holds every built-in layer type.
Autoencoder<float> every_layer_model() {
    return Autoencoder<float>(
        Encoder<float>{Conv2D<float>(4, {3, 2}, {2, 1}, Padding::Same), LeakyReLU<float>(0.2), MaxPool2D<float>(2, 1, Padding::Same),
                       Conv2D<float>(3, 3, 1, Padding::Valid, Init::HeNormal, false), Tanh<float>(), Flatten<float>(),
                       Dense<float>(5), Softplus<float>()},
        Decoder<float>{Dense<float>(3 * 3 * 4), Identity<float>(), Reshape<float>({3, 4, 3}),
                       UpSample2D<float>(2, Interpolation::Bilinear), ConvTranspose2D<float>(2, 3, 1, Padding::Valid),
                       ReLU<float>(), UpSample2D<float>({1, 1}), Conv2D<float>(1, 3, 1, Padding::Valid), Sigmoid<float>()},
        {1, 8, 6}, 3);
}

std::string saved_model(const std::string& name) {
    const std::string path = temp_path(name);
    auto model = every_layer_model();
    model.save(path);
    return path;
}

}  // namespace

TEST_CASE("save/load: a model with every layer type round-trips with identical outputs", "[serialization]") {
    auto model = every_layer_model();
    const std::string path = temp_path("roundtrip.latent");
    model.save(path);
    auto loaded = Autoencoder<float>::load(path);
    const Tensor<float> x = test::random_tensor<float>(3, {1, 8, 6}, 1, 0, 1);
    CHECK(test::max_abs_difference(model.reconstruct(x), loaded.reconstruct(x)) == 0.0);
    REQUIRE(loaded.encoder().size() == model.encoder().size());
    REQUIRE(loaded.decoder().size() == model.decoder().size());
    for (Index i = 0; i < model.decoder().size(); ++i) {
        CHECK(loaded.decoder().layer(i).type() == model.decoder().layer(i).type());
        CHECK(loaded.decoder().layer(i).config().str() == model.decoder().layer(i).config().str());
    }
    std::filesystem::remove(path);
}

TEST_CASE("save/load: the registry knows every built-in layer type", "[serialization]") {
    const auto registry = Registry<float>::builtin();
    for (const char* type : {"Dense", "Conv2D", "ConvTranspose2D", "MaxPool2D", "UpSample2D", "Flatten", "Reshape", "ReLU",
                             "LeakyReLU", "Sigmoid", "Tanh", "Softplus", "Identity"})
        CHECK(registry.has_layer(type));
    for (const char* type : {"SGD", "Adam", "AdamW", "RMSprop", "Adadelta"}) CHECK(registry.has_optimizer(type));
    for (const char* type : {"MeanSquaredError", "SumSquaredError", "BinaryCrossEntropy", "L1"}) CHECK(registry.has_loss(type));
}

TEST_CASE("save/load: a Sequential with optimizer state round-trips", "[serialization]") {
    Sequential<double> model{Dense<double>(3), Sigmoid<double>()};
    model.build({2, 1, 1}, 4);
    Adam<double> adam(0.01);
    const Tensor<double> x = test::random_tensor<double>(4, {2, 1, 1}, 2);
    FitOptions<double> options;
    options.epochs = 2;
    options.verbose = 0;
    const Tensor<double> targets = test::random_tensor<double>(4, {3, 1, 1}, 3, 0, 1);
    fit(model, x, targets, MeanSquaredError<double>(), adam, options);
    const std::string path = temp_path("sequential.latent");
    save_checkpoint(path, model, adam, 2);
    TrainingProgress<double> progress;
    auto loaded = load_sequential<double>(path, &progress);
    REQUIRE(progress.optimizer);
    CHECK(progress.optimizer->type() == "Adam");
    CHECK(progress.optimizer->state().step == adam.state().step);
    CHECK(progress.optimizer->state().buffers == adam.state().buffers);
    CHECK(progress.epochs_done == 2);
    CHECK(test::max_abs_difference(model.predict(x), loaded.predict(x)) == 0.0);
    std::filesystem::remove(path);
}

TEST_CASE("save/load: truncated file throws FormatError", "[serialization]") {
    const std::string path = saved_model("truncated.latent");
    auto bytes = file_bytes(path);
    bytes.resize(bytes.size() - 10);
    write_bytes(path, bytes);
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); }, "truncated");
    bytes.resize(20);  // shorter than the header
    write_bytes(path, bytes);
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); }, "truncated");
    std::filesystem::remove(path);
}

TEST_CASE("save/load: bytes after the payload throw FormatError naming the file and both sizes",
          "[serialization]") {
    const std::string path = saved_model("trailing.latent");
    const auto bytes = file_bytes(path);
    const std::size_t payload = bytes.size() - detail::model_header_size;
    for (const std::string& tail : {std::string("x"), std::string(3, '\0')}) {
        std::vector<char> longer = bytes;
        longer.insert(longer.end(), tail.begin(), tail.end());
        write_bytes(path, longer);
        test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); },
                                        "'" + path + "': has trailing bytes: header says " + std::to_string(payload) +
                                            " payload bytes, file has " + std::to_string(payload + tail.size()));
    }
    std::filesystem::remove(path);
}

TEST_CASE("save/load: a flipped byte throws FormatError (checksum)", "[serialization]") {
    const std::string path = saved_model("flipped.latent");
    auto bytes = file_bytes(path);
    bytes[bytes.size() / 2] ^= 0x10;
    write_bytes(path, bytes);
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); }, "checksum");
    std::filesystem::remove(path);
}

TEST_CASE("save/load: wrong magic throws FormatError", "[serialization]") {
    const std::string path = saved_model("magic.latent");
    auto bytes = file_bytes(path);
    bytes[1] = 'X';
    write_bytes(path, bytes);
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); }, "not a latent model file");
    std::filesystem::remove(path);
}

TEST_CASE("save/load: a newer format version throws FormatError", "[serialization]") {
    const std::string path = saved_model("version.latent");
    auto bytes = file_bytes(path);
    bytes[8] = 7;  // the u32 format version follows the 8 magic bytes
    write_bytes(path, bytes);
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); }, "format version 7 is newer");
    std::filesystem::remove(path);
}

TEST_CASE("save/load: a double file loaded into a float model throws FormatError", "[serialization]") {
    Autoencoder<double> model(Encoder<double>{Flatten<double>(), Dense<double>(2)},
                              Decoder<double>{Dense<double>(4), Reshape<double>({1, 2, 2})}, {1, 2, 2});
    const std::string path = temp_path("double.latent");
    model.save(path);
    test::expect_error<FormatError>([&] { Autoencoder<float>::load(path); }, "holds double weights");
    CHECK_NOTHROW(Autoencoder<double>::load(path));
    std::filesystem::remove(path);
}

TEST_CASE("save/load: a header claiming 10^12 elements throws FormatError without allocating", "[serialization]") {
    // Build a valid file whose payload claims a parameter of 10^12 values, with a correct checksum,
    // so that only the size check can stop it.
    detail::BinaryWriter payload;
    payload.string("Sequential");
    detail::write_shape(payload, {1, 1, 1});
    payload.u32(1);
    payload.string("Dense");
    payload.u32(1);  // the layer's format version
    detail::write_config(payload, Dense<float>(1).config());
    payload.u32(1);
    payload.string("weight");
    payload.u64(1000000000000ull);
    const std::string path = temp_path("huge.latent");
    detail::write_model_file<float>(path, payload.bytes());
    test::expect_error<FormatError>([&] { load_sequential<float>(path); }, "claims 1000000000000 elements");
    std::filesystem::remove(path);
}

TEST_CASE("save/load: an unknown layer type names the type and how to register it", "[serialization]") {
    detail::BinaryWriter payload;
    payload.string("Sequential");
    detail::write_shape(payload, {1, 1, 1});
    payload.u32(1);
    payload.string("Wobble");
    detail::write_config(payload, Config());
    payload.u32(0);
    payload.u8(0);
    const std::string path = temp_path("unknown.latent");
    detail::write_model_file<float>(path, payload.bytes());
    test::expect_error<FormatError>([&] { load_sequential<float>(path); }, "unknown layer type 'Wobble'");
    std::filesystem::remove(path);
}

namespace {

// A user-defined layer: y = scale * x with a learnable scale.
template <class T> class Scale {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Scale";
    Shape output_shape(const Shape& input) const { return input; }
    void build(const Shape&, Rng&) { scale_ = {T(1)}, grad_ = {T(0)}; }
    void forward(ConstTensorView<T> x, TensorView<T> y) { y = x * scale_[0]; }
    void backward(ConstTensorView<T> x, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        const Eigen::Tensor<T, 0, Eigen::RowMajor> sum = (x * dy).sum();
        grad_[0] += sum();
        if (dx.data() != nullptr) dx = dy * scale_[0];
    }
    std::vector<Parameter<T>> parameters() { return {{"scale", scale_.data(), grad_.data(), 1}}; }

private:
    std::vector<T> scale_{T(1)}, grad_{T(0)};
};

}  // namespace

TEST_CASE("save/load: a user-defined layer round-trips through a registry", "[serialization]") {
    Sequential<double> model{Dense<double>(2), Scale<double>()};
    model.build({3, 1, 1});
    model.parameters().back().value[0] = 2.5;
    Layer<double> layer = Scale<double>();
    CHECK(check_gradients(layer, test::random_tensor<double>(2, {2, 2, 2}, 1)).passed());
    const std::string path = temp_path("custom.latent");
    save_model(path, model);
    CHECK_THROWS_AS(load_sequential<double>(path), FormatError);
    auto registry = Registry<double>::builtin();
    registry.add_layer<Scale<double>>();
    auto loaded = load_sequential<double>(path, nullptr, registry);
    CHECK(loaded.parameters().back().value[0] == 2.5);
    std::filesystem::remove(path);
}

TEST_CASE("save/load: a save that fails half-way through writing leaves the previous file loadable",
          "[serialization]") {
    const std::string path = saved_model("atomic.latent");
    const auto before = file_bytes(path);
    // The writer every save goes through, failing after it wrote part of a file: a save that
    // wrote over the target in place would leave these bytes in it.
    CHECK_THROWS_WITH(write_file_atomically(path,
                                            [](std::ostream& out) {
                                                out << "\x89LATENT\n a partial file";
                                                out.flush();
                                                throw Error("interrupted");
                                            }),
                      "interrupted");
    CHECK(file_bytes(path) == before);
    CHECK_NOTHROW(Autoencoder<float>::load(path));
    // And nothing of the failed write is left next to the file.
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
        CHECK(entry.path().filename().string().rfind("atomic.latent.tmp", 0) == std::string::npos);
    std::filesystem::remove(path);
}

TEST_CASE("save/load: a missing file throws IoError naming it", "[serialization]") {
    test::expect_error<IoError>([&] { Autoencoder<float>::load("/nonexistent/model.latent"); }, "/nonexistent/model.latent");
}

TEST_CASE("save/load: a file of format version 1 (no layer versions, buffers or callback states) still loads",
          "[serialization]") {
    // Format 1: kind, input shape, layer count, then per layer type | config | parameters.
    detail::BinaryWriter payload;
    payload.string("Sequential");
    detail::write_shape(payload, {3, 1, 1});
    payload.u32(2);
    payload.string("Dense");
    detail::write_config(payload, Dense<float>(2).config());
    payload.u32(2);
    const float weight[6] = {1, 2, 3, 4, 5, 6}, bias[2] = {0.5f, -0.5f};
    payload.string("weight");
    payload.array(weight, 6);
    payload.string("bias");
    payload.array(bias, 2);
    payload.string("Sigmoid");
    detail::write_config(payload, Config());
    payload.u32(0);
    payload.u8(0);  // no training state
    const std::string path = temp_path("version1.latent");
    detail::write_model_file<float>(path, payload.bytes(), 1);
    Sequential<float> model = load_sequential<float>(path);
    std::filesystem::remove(path);
    REQUIRE(model.size() == 2);
    CHECK(model.parameters()[0].value[5] == 6.0f);
    CHECK(model.parameters()[1].value[1] == -0.5f);
}

TEST_CASE("save/load: a layer stored in a newer version of its own format is refused by name", "[serialization]") {
    detail::BinaryWriter payload;
    payload.string("Sequential");
    detail::write_shape(payload, {3, 1, 1});
    payload.u32(1);
    payload.string("Sigmoid");
    payload.u32(9);  // Sigmoid's format is version 1
    detail::write_config(payload, Config());
    payload.u32(0);
    payload.u32(0);
    payload.u8(0);
    const std::string path = temp_path("layer_version.latent");
    detail::write_model_file<float>(path, payload.bytes());
    test::expect_error<FormatError>([&] { load_sequential<float>(path); },
                                    "layer 1 (Sigmoid) is stored in version 9 of its format; this library reads up "
                                    "to version 1");
    std::filesystem::remove(path);
}
