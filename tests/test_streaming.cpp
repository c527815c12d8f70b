// Streams of batches from disk (data/stream.hpp): training from a stream gives the weights
// training from the same data in memory gives, bit for bit; errors name the file; threads never
// hang.
#include "helpers.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace latent;
using test::TempFolder;
namespace fs = std::filesystem;

namespace {

// 8x8 grey images of smooth random blobs, values in [0, 1] that are multiples of 1/255 (so an
// IDX or PNG file holds them exactly).
Tensor<float> blob_images(Index count, std::uint64_t seed) {
    Rng rng(seed);
    Tensor<float> images(count, 1, 8, 8);
    for (Index n = 0; n < count; ++n) {
        const double cy = rng.uniform(0, 8), cx = rng.uniform(0, 8), width = rng.uniform(1.5, 4);
        for (Index y = 0; y < 8; ++y)
            for (Index x = 0; x < 8; ++x) {
                const double d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
                images(n, 0, y, x) = static_cast<float>(std::lround(255 * std::exp(-d2 / (width * width)))) / 255.0f;
            }
    }
    return images;
}

Autoencoder<float> small_conv_autoencoder() {
    return Autoencoder<float>(Encoder<float>{Conv2D<float>(4, 3), ReLU<float>(), MaxPool2D<float>(2)},
                              Decoder<float>{UpSample2D<float>(2), Conv2D<float>(1, 3), Sigmoid<float>()},
                              {1, 8, 8}, 7);
}

std::vector<float> all_weights(const Autoencoder<float>& model) {
    std::vector<float> weights;
    for (const auto& parameter : model.parameters())
        weights.insert(weights.end(), parameter.value, parameter.value + parameter.size);
    return weights;
}

// Three epochs of batch 16 (the last batch of an epoch is shorter), shuffled, with noise.
FitOptions<float> fit_options() {
    FitOptions<float> options;
    options.epochs = 3;
    options.batch_size = 16;
    options.seed = 11;
    options.verbose = 0;
    options.corruption = GaussianNoise(0.0, 0.1);
    return options;
}

// The stream options that match fit_options(): the same batches, in the same order.
StreamOptions stream_options(int threads = 2) {
    const FitOptions<float> fit = fit_options();
    StreamOptions options;
    options.batch_size = fit.batch_size;
    options.shuffle = fit.shuffle;
    options.seed = fit.seed;
    options.threads = threads;
    return options;
}

// The weights after fit_options() training on `data` in memory and on `stream`, bit for bit.
void require_same_training(const Tensor<float>& data, const BatchStream<float>& stream) {
    auto in_memory = small_conv_autoencoder();
    Adam<float> adam_in_memory(3e-3);
    in_memory.fit(data, data, MeanSquaredError<float>(), adam_in_memory, fit_options());

    auto streamed = small_conv_autoencoder();
    Adam<float> adam_streamed(3e-3);
    const History history = streamed.fit(stream.source(), MeanSquaredError<float>(), adam_streamed, fit_options());
    REQUIRE(history.loss.size() == 3);
    CHECK(history.loss.back() < history.loss.front());

    const std::vector<float> expected = all_weights(in_memory), actual = all_weights(streamed);
    REQUIRE(expected.size() == actual.size());
    CHECK(std::memcmp(expected.data(), actual.data(), expected.size() * sizeof(float)) == 0);
}

// Every batch of `epochs` epochs, in order, as the stream gives them.
std::vector<Tensor<float>> all_batches(const BatchStream<float>& stream, int epochs) {
    const BatchSource<float> source = stream.source();
    std::vector<Tensor<float>> batches;
    for (int epoch = 0; epoch < epochs; ++epoch)
        for (Index b = 0; b < source.batches_per_epoch; ++b) {
            Tensor<float> inputs, targets;
            source.next(epoch, b, inputs, targets);
            batches.push_back(inputs);
        }
    return batches;
}

bool same_bits(const Tensor<float>& a, const Tensor<float>& b) {
    return a.dimensions() == b.dimensions() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

// A folder of `count` PNG images from blob_images (10x12 when `odd_size`, resized by the tests).
void write_png_folder(const TempFolder& folder, Index count) {
    const Tensor<float> images = blob_images(count, 5);
    for (Index n = 0; n < count; ++n) save_png(folder / ("img" + std::to_string(n) + ".png"), images, n);
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string big_endian(std::uint32_t value) {
    return {static_cast<char>(value >> 24), static_cast<char>(value >> 16), static_cast<char>(value >> 8),
            static_cast<char>(value)};
}

}  // namespace

TEST_CASE("stream_idx_images: training from the stream is bit-identical to training in memory", "[streaming]") {
    TempFolder folder("stream_idx");
    const std::string path = folder / "images.idx3-ubyte";
    write_idx_images(path, blob_images(70, 1));
    require_same_training(read_idx_images<float>(path), stream_idx_images<float>(path, stream_options()));
}

TEST_CASE("stream_npy: training from the stream is bit-identical to training in memory", "[streaming]") {
    TempFolder folder("stream_npy");
    const std::string path = folder / "images.npy";
    save_npy(path, test::random_tensor<float>(50, Shape{1, 8, 8}, 3, 0.0, 1.0));
    require_same_training(load_npy<float>(path), stream_npy<float>(path, stream_options()));
    // float64 data converts to the same floats as load_npy's
    const std::string doubles = folder / "doubles.npy";
    save_npy(doubles, test::random_tensor<double>(40, Shape{1, 8, 8}, 4, 0.0, 1.0));
    require_same_training(load_npy<float>(doubles), stream_npy<float>(doubles, stream_options(1)));
}

TEST_CASE("stream_image_folder: training from the stream is bit-identical to load_image_folder", "[streaming]") {
    TempFolder folder("stream_folder");
    write_png_folder(folder, 45);
    ImageFolderOptions same_size;
    const std::string path = folder / "";
    require_same_training(load_image_folder<float>(path, same_size).images,
                          stream_image_folder<float>(path, same_size, stream_options()));
}

TEST_CASE("stream_image_folder: resized images are the ones load_image_folder resizes", "[streaming]") {
    TempFolder folder("stream_resize");
    const Tensor<float> big = test::random_tensor<float>(20, Shape{3, 10, 12}, 9, 0.0, 1.0);
    for (Index n = 0; n < 20; ++n) save_png(folder / ("p" + std::to_string(n) + ".png"), big, n);
    ImageFolderOptions resized;
    resized.channels = 3;
    resized.height = 6;
    resized.width = 5;
    resized.resize = Resize::Bicubic;
    const Tensor<float> in_memory = load_image_folder<float>(folder / "", resized).images;
    StreamOptions in_order = stream_options();
    in_order.shuffle = false;
    in_order.batch_size = 20;
    const std::vector<Tensor<float>> batches = all_batches(stream_image_folder<float>(folder / "", resized, in_order), 1);
    REQUIRE(batches.size() == 1);
    CHECK(same_bits(batches[0], in_memory));
}

TEST_CASE("BatchStream: one and two reading threads give the same batches", "[streaming]") {
    TempFolder folder("stream_threads");
    write_png_folder(folder, 37);
    const auto one = all_batches(stream_image_folder<float>(folder / "", {}, stream_options(1)), 3);
    const auto two = all_batches(stream_image_folder<float>(folder / "", {}, stream_options(2)), 3);
    REQUIRE(one.size() == 9);
    REQUIRE(two.size() == one.size());
    for (std::size_t i = 0; i < one.size(); ++i) CHECK(same_bits(one[i], two[i]));
    CHECK(one[2].dimension(0) == 5);  // 37 = 16 + 16 + 5
    CHECK(!same_bits(one[0], one[3]));  // each epoch has its own order
}

TEST_CASE("BatchStream: a batch asked for out of turn is the one a sequential read gives", "[streaming]") {
    const Tensor<float> data = blob_images(40, 2);
    SampleReader<float> copy_sample = [&](Index index, float* values) {
        std::copy_n(data.data() + index * 64, 64, values);
    };
    const BatchStream<float> stream(40, Shape{1, 8, 8}, copy_sample, stream_options());
    const auto sequential = all_batches(stream, 3);
    const BatchSource<float> source = stream.source();
    Tensor<float> inputs, targets;
    source.next(2, 1, inputs, targets);  // a restart, as when a run resumes at epoch 2
    CHECK(same_bits(inputs, sequential[7]));
    CHECK(targets.size() == 0);  // "the targets are the inputs"
    source.next(0, 0, inputs, targets);  // and back
    CHECK(same_bits(inputs, sequential[0]));
    CHECK_THROWS_AS(source.next(0, 3, inputs, targets), ArgumentError);  // 3 batches per epoch
}

TEST_CASE("BatchStream: a corrupt file in the middle of an epoch stops training with its name", "[streaming][errors]") {
    TempFolder folder("stream_corrupt");
    write_png_folder(folder, 40);
    const std::string broken = folder / "img17.png";
    write_bytes(broken, "\x89PNG\r\n\x1a\n this is no PNG");
    const BatchStream<float> stream = stream_image_folder<float>(folder / "", {}, stream_options());
    auto model = small_conv_autoencoder();
    Adam<float> adam;
    test::expect_error<FormatError>([&] { model.fit(stream.source(), MeanSquaredError<float>(), adam, fit_options()); },
                                    "img17.png");
    CHECK(stream.skipped().empty());
}

TEST_CASE("BatchStream: BadSample::Skip leaves bad samples out of their batch and counts them", "[streaming][errors]") {
    TempFolder folder("stream_skip");
    write_png_folder(folder, 40);
    write_bytes(folder / "img17.png", "\x89PNG\r\n\x1a\n this is no PNG");
    const Tensor<float> other_size = test::random_tensor<float>(1, Shape{1, 9, 8}, 1, 0.0, 1.0);
    save_png(folder / "img30.png", other_size);  // the first image is 8x8: a ShapeError, skipped too
    StreamOptions skipping = stream_options();
    skipping.bad_sample = BadSample::Skip;
    const BatchStream<float> stream = stream_image_folder<float>(folder / "", {}, skipping);

    const auto batches = all_batches(stream, 2);
    Index samples = 0;
    for (const auto& batch : batches) samples += batch.dimension(0);
    CHECK(samples == 2 * 38);
    const std::vector<std::string> skipped = stream.skipped();
    REQUIRE(skipped.size() == 4);  // two files, two epochs
    CHECK(std::count_if(skipped.begin(), skipped.end(), [](const std::string& s) { return s.find("img17.png") != std::string::npos; }) == 2);
    CHECK(std::count_if(skipped.begin(), skipped.end(), [](const std::string& s) { return s.find("img30.png") != std::string::npos; }) == 2);

    auto model = small_conv_autoencoder();
    Adam<float> adam;
    const History history = model.fit(stream.source(), MeanSquaredError<float>(), adam, fit_options());
    CHECK(history.loss.size() == 3);
    CHECK(stream.skipped().size() == 4 + 6);
}

TEST_CASE("BatchStream: a batch of nothing but bad samples stops training even when skipping", "[streaming][errors]") {
    SampleReader<float> always_fails = [](Index index, float*) {
        throw FormatError("sample " + std::to_string(index) + " is unreadable");
    };
    StreamOptions skipping;
    skipping.bad_sample = BadSample::Skip;
    const BatchStream<float> stream(10, Shape{1, 8, 8}, always_fails, skipping);
    Tensor<float> inputs, targets;
    test::expect_error<FormatError>([&] { stream.source().next(0, 0, inputs, targets); }, "every sample of batch 0");
}

TEST_CASE("BatchStream: destroying a stream in the middle of an epoch does not hang", "[streaming][threads]") {
    // A slow reader: the threads are busy (or waiting for room ahead) when the stream goes.
    std::atomic<int> reads{0};
    SampleReader<float> slow = [&](Index, float* values) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        std::fill_n(values, 64, 0.5f);
        ++reads;
    };
    StreamOptions options;
    options.batch_size = 8;
    options.threads = 2;
    options.batches_ahead = 3;
    const auto start = std::chrono::steady_clock::now();
    {
        const BatchStream<float> stream(1000, Shape{1, 8, 8}, slow, options);
        Tensor<float> inputs, targets;
        stream.source().next(0, 0, inputs, targets);
        stream.source().next(0, 1, inputs, targets);
    }
    // Destroyed: at most the batches in flight are finished (a few ms each), not the epoch.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    CHECK(reads.load() <= 8 * (2 + 3 + 2));
}

TEST_CASE("BatchStream: an exception in fit while the stream is mid-epoch does not hang", "[streaming][threads]") {
    const Tensor<float> data = blob_images(64, 3);
    SampleReader<float> copy_sample = [&](Index index, float* values) {
        std::copy_n(data.data() + index * 64, 64, values);
    };
    const BatchStream<float> stream(64, Shape{1, 8, 8}, copy_sample, stream_options());
    BatchSource<float> failing = stream.source();
    failing.next = [next = failing.next](int epoch, Index batch, Tensor<float>& inputs, Tensor<float>& targets) {
        if (batch == 2) throw IoError("the network share went away");
        next(epoch, batch, inputs, targets);
    };
    auto model = small_conv_autoencoder();
    Adam<float> adam;
    CHECK_THROWS_AS(model.fit(failing, MeanSquaredError<float>(), adam, fit_options()), IoError);
    // Reaching the end of the test case destroys the stream, whose threads are reading ahead.
}

TEST_CASE("stream_idx_images: hostile and broken files give FormatError naming the file", "[streaming][errors]") {
    TempFolder folder("stream_idx_hostile");
    const std::string path = folder / "bad.idx3-ubyte";
    const auto header = [](std::uint32_t count, std::uint32_t rows, std::uint32_t cols) {
        return big_endian(0x803) + big_endian(count) + big_endian(rows) + big_endian(cols);
    };
    const auto refused = [&](const std::string& bytes, const std::string& part) {
        write_bytes(path, bytes);
        test::expect_error<FormatError>([&] { stream_idx_images<float>(path); }, part);
        test::expect_error<FormatError>([&] { stream_idx_images<float>(path); }, "bad.idx3-ubyte");
    };
    refused(header(100, 8, 8) + std::string(640, '\0'), "truncated");
    refused(header(2, 8, 8) + std::string(200, '\0'), "extra bytes");
    refused(header(0xFFFFFFFF, 0xFFFF, 0xFFFF), "not a plausible IDX file");  // 2^64 claimed bytes
    refused(header(3, 0, 8), "every dimension must be > 0");
    refused(big_endian(0x801) + big_endian(3) + "abc", "not an IDX image file");
    refused(std::string("\x1f\x8b\x08\x00", 4) + std::string(30, '\0'), "decompress it first");
    refused(std::string("\x00\x00\x08\x03\x00", 5), "shorter than the 16-byte IDX image header");
    CHECK_THROWS_AS(stream_idx_images<float>(folder / "missing"), IoError);
}

TEST_CASE("stream_idx_images: a file truncated while streaming stops training with its name", "[streaming][errors]") {
    TempFolder folder("stream_idx_shrinks");
    const std::string path = folder / "shrinking.idx3-ubyte";
    write_idx_images(path, blob_images(64, 1));
    StreamOptions options = stream_options();
    options.shuffle = false;
    options.batches_ahead = 1;
    const BatchStream<float> stream = stream_idx_images<float>(path, options);
    Tensor<float> inputs, targets;
    stream.source().next(0, 0, inputs, targets);
    fs::resize_file(path, 16 + 64 * 40);  // samples 40.. are gone
    stream.source().next(0, 1, inputs, targets);  // samples 16..31, perhaps read before the cut
    // Samples 32..47: one batch ahead, so read only once batch 1 was handed out, after the cut.
    test::expect_error<FormatError>([&] { stream.source().next(0, 2, inputs, targets); },
                                    "shrinking.idx3-ubyte': truncated");
}

TEST_CASE("stream_npy: hostile and broken files give FormatError naming the file", "[streaming][errors]") {
    TempFolder folder("stream_npy_hostile");
    const std::string path = folder / "bad.npy";
    const auto npy = [](const std::string& dict, const std::string& data) {
        return std::string("\x93NUMPY\x01\x00", 8) +
               static_cast<char>(dict.size() & 0xFF) + static_cast<char>(dict.size() >> 8) + dict + data;
    };
    const auto refused = [&](const std::string& bytes, const std::string& part) {
        write_bytes(path, bytes);
        test::expect_error<FormatError>([&] { stream_npy<float>(path); }, part);
        test::expect_error<FormatError>([&] { stream_npy<float>(path); }, "bad.npy");
    };
    const std::string f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': ";
    refused(npy(f4 + "(10, 4), }", std::string(40 * 4 - 3, '\0')), "truncated");
    refused(npy(f4 + "(10, 4), }", std::string(40 * 4 + 4, '\0')), "extra bytes");
    refused(npy(f4 + "(1048576, 2097152), }", ""), "has more than");
    refused(npy(f4 + "(2, 2, 2, 2, 2), }", std::string(32 * 4, '\0')), "dimensions; a tensor is read from 1 to 4");
    refused(npy(f4 + "(0, 3), }", ""), "holds no samples");
    refused(npy("{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", std::string(6, '\0')), "unsupported .npy dtype");
    refused(npy(f4 + "(3,), }", "").substr(0, 20), "truncated .npy header");
    refused("PK\x03\x04 not an npy file", "not an .npy file");
    // A version 2 header claiming 4 GiB of dict in a small file: refused before anything is read.
    refused(std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12) + "{}", "truncated .npy header");
}
