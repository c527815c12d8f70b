#include <catch2/catch.hpp>

#include <latent/data/idx.hpp>
#include <latent/data/npy.hpp>
#include <latent/latent.hpp>

#include <zlib.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace latent;
using Catch::Matchers::Message;
namespace fs = std::filesystem;

namespace {

// Matches an exception whose what() contains `part` (Catch2 v2 only matches whole messages).
class MessageContainsMatcher : public Catch::MatcherBase<std::exception> {
public:
    explicit MessageContainsMatcher(std::string part) : part_(std::move(part)) {}
    bool match(const std::exception& error) const override {
        return std::string(error.what()).find(part_) != std::string::npos;
    }
    std::string describe() const override { return "message contains \"" + part_ + "\""; }

private:
    std::string part_;
};

MessageContainsMatcher MessageContains(std::string part) { return MessageContainsMatcher(std::move(part)); }

// A fresh folder under the system temporary directory, removed with everything in it.
class TempFolder {
public:
    TempFolder() {
        std::random_device entropy;
        const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
        path_ = fs::temp_directory_path() /
                ("latent-test-data-idx-" + std::to_string(stamp) + "-" + std::to_string(entropy()));
        fs::create_directories(path_);
    }
    ~TempFolder() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    TempFolder(const TempFolder&) = delete;
    TempFolder& operator=(const TempFolder&) = delete;

    std::string file(const std::string& name) const { return (path_ / name).string(); }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
    std::ofstream stream(path, std::ios::binary | std::ios::trunc);
    stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(stream.good());
}

// A gzip file of `bytes`, written with zlib's own gzip writer.
void write_gzip(const std::string& path, const std::vector<char>& bytes) {
    gzFile file = gzopen(path.c_str(), "wb");
    REQUIRE(file != nullptr);
    REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) ==
            static_cast<int>(bytes.size()));
    REQUIRE(gzclose(file) == Z_OK);
}

std::vector<char> big_endian_words(std::initializer_list<std::uint32_t> words) {
    std::vector<char> bytes;
    for (const std::uint32_t word : words)
        for (int shift = 24; shift >= 0; shift -= 8)
            bytes.push_back(static_cast<char>((word >> shift) & 0xFF));
    return bytes;
}

// An IDX image file's bytes: header, then `pixels` (default: count * rows * cols of them).
std::vector<char> idx_images(std::uint32_t magic, std::uint32_t count, std::uint32_t rows,
                             std::uint32_t cols, std::size_t pixels) {
    std::vector<char> bytes = big_endian_words({magic, count, rows, cols});
    for (std::size_t i = 0; i < pixels; ++i) bytes.push_back(static_cast<char>(i * 7 % 256));
    return bytes;
}

// Images whose values are exact bytes k / 255, from a fixed seed.
template <class T> Tensor<T> byte_valued_images(Index count, Index rows, Index cols, std::uint64_t seed) {
    Rng rng(seed);
    Tensor<T> images(count, 1, rows, cols);
    for (Index i = 0; i < images.size(); ++i)
        images.data()[i] = static_cast<T>(rng.below(256)) / static_cast<T>(255);
    return images;
}

}  // namespace

// ---------------------------------------------------------------------------------------- IDX

TEST_CASE("idx: images round trip through a plain file (float and double)", "[data][idx]") {
    TempFolder folder;
    const auto images = byte_valued_images<float>(5, 7, 3, 1);  // non-square on purpose
    write_idx_images(folder.file("images.idx"), images);
    CHECK(fs::file_size(folder.file("images.idx")) == 16 + 5 * 7 * 3);
    const Tensor<float> back = read_idx_images<float>(folder.file("images.idx"));
    REQUIRE(back.dimensions() == images.dimensions());
    CHECK(test::max_abs_difference(back, images) == 0.0);

    const Tensor<double> doubles = read_idx_images<double>(folder.file("images.idx"));
    CHECK(test::max_abs_difference<double>(doubles, images.cast<double>()) < 1e-7);
    CHECK(test::max_abs_difference(doubles, byte_valued_images<double>(5, 7, 3, 1)) == 0.0);
}

TEST_CASE("idx: labels round trip through a plain file", "[data][idx]") {
    TempFolder folder;
    const std::vector<std::uint8_t> labels{3, 1, 4, 1, 5, 9, 2, 6, 255, 0};
    write_idx_labels(folder.file("labels.idx"), labels);
    CHECK(fs::file_size(folder.file("labels.idx")) == 8 + labels.size());
    CHECK(read_idx_labels(folder.file("labels.idx")) == labels);
}

TEST_CASE("idx: gzip-compressed files read the same as plain ones", "[data][idx][gzip]") {
    TempFolder folder;
    const auto images = byte_valued_images<float>(20, 28, 28, 2);
    const std::vector<std::uint8_t> labels{7, 2, 1, 0, 4};
    write_idx_images(folder.file("images"), images);
    write_idx_labels(folder.file("labels"), labels);
    write_gzip(folder.file("images.gz"), read_file(folder.file("images")));
    write_gzip(folder.file("labels.gz"), read_file(folder.file("labels")));
    CHECK(test::max_abs_difference(read_idx_images<float>(folder.file("images.gz")), images) == 0.0);
    CHECK(read_idx_labels(folder.file("labels.gz")) == labels);
}

TEST_CASE("idx: concatenated gzip members read as one stream", "[data][idx][gzip]") {
    // `cat a.gz b.gz` is a valid gzip file holding the concatenation, as gzip -d reads it.
    TempFolder folder;
    const std::vector<char> file = idx_images(0x803, 2, 3, 4, 24);
    write_gzip(folder.file("head.gz"), std::vector<char>(file.begin(), file.begin() + 20));
    write_gzip(folder.file("tail.gz"), std::vector<char>(file.begin() + 20, file.end()));
    std::vector<char> joined = read_file(folder.file("head.gz"));
    const std::vector<char> tail = read_file(folder.file("tail.gz"));
    joined.insert(joined.end(), tail.begin(), tail.end());
    write_bytes(folder.file("joined.gz"), joined);
    write_bytes(folder.file("plain"), file);
    CHECK(test::max_abs_difference(read_idx_images<float>(folder.file("joined.gz")),
                                   read_idx_images<float>(folder.file("plain"))) == 0.0);
}

TEST_CASE("idx: writer rounds each value to the nearest byte", "[data][idx]") {
    TempFolder folder;
    Tensor<double> images(1, 1, 1, 5);
    // v * 255 = 0, 127.5, 255, 51, 0.255: bytes round(.) = 0, 128, 255, 51, 0
    images.setValues({{{{0.0, 0.5, 1.0, 0.2, 0.001}}}});
    write_idx_images(folder.file("rounded"), images);
    const std::vector<char> bytes = read_file(folder.file("rounded"));
    REQUIRE(bytes.size() == 16 + 5);
    CHECK(bytes[0] == 0);
    CHECK(bytes[3] == 0x03);   // magic 0x00000803
    CHECK(bytes[7] == 1);      // count
    CHECK(bytes[11] == 1);     // rows
    CHECK(bytes[15] == 5);     // cols
    const std::array<unsigned, 5> expected{0, 128, 255, 51, 0};
    for (std::size_t i = 0; i < expected.size(); ++i)
        CHECK(static_cast<unsigned char>(bytes[16 + i]) == expected[i]);
}

TEST_CASE("idx: writer rejects values outside [0, 1], NaN and wrong shapes", "[data][idx]") {
    TempFolder folder;
    Tensor<float> images(2, 1, 2, 2);
    images.setConstant(0.5f);
    images(1, 0, 1, 0) = 1.5f;
    CHECK_THROWS_MATCHES(write_idx_images(folder.file("bad"), images), ArgumentError,
                         Message("write_idx_images('" + folder.file("bad") +
                                 "'): value 1.5 of image 1 at row 1, column 0 is outside [0, 1]"));
    images(1, 0, 1, 0) = std::nanf("");
    CHECK_THROWS_MATCHES(write_idx_images(folder.file("bad"), images), ArgumentError,
                         MessageContains("is NaN"));
    images(1, 0, 1, 0) = -0.01f;
    CHECK_THROWS_AS(write_idx_images(folder.file("bad"), images), ArgumentError);
    CHECK_FALSE(fs::exists(folder.file("bad")));  // nothing written

    CHECK_THROWS_AS(write_idx_images(folder.file("bad"), Tensor<float>(2, 3, 4, 4)), ShapeError);
    CHECK_THROWS_AS(write_idx_images(folder.file("bad"), Tensor<float>(0, 1, 4, 4)), ShapeError);
    CHECK_THROWS_AS(write_idx_labels(folder.file("bad"), {}), ArgumentError);
}

TEST_CASE("idx: wrong magic number gives FormatError", "[data][idx][broken]") {
    TempFolder folder;
    const std::string path = folder.file("magic");
    write_bytes(path, idx_images(0x12345678, 1, 2, 2, 4));
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         Message("'" + path + "': not an IDX image file (magic 0x12345678 is not "
                                 "an IDX magic number; expected 0x00000803)"));
    write_bytes(path, idx_images(0x00000D03, 1, 2, 2, 16));  // a float32 IDX file
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         MessageContains("magic 0x00000D03 is a 3-D IDX file of float32"));
}

TEST_CASE("idx: label file read as images (and images as labels) gives FormatError",
          "[data][idx][broken]") {
    TempFolder folder;
    write_idx_labels(folder.file("labels"), {1, 2, 3});
    CHECK_THROWS_MATCHES(read_idx_images(folder.file("labels")), FormatError,
                         Message("'" + folder.file("labels") +
                                 "': not an IDX image file (magic 0x00000801 is a label file; "
                                 "expected 0x00000803)"));
    write_idx_images(folder.file("images"), byte_valued_images<float>(2, 3, 3, 1));
    CHECK_THROWS_MATCHES(read_idx_labels(folder.file("images")), FormatError,
                         MessageContains("not an IDX label file (magic 0x00000803 is an image file"));
}

TEST_CASE("idx: truncated pixel data gives FormatError with both sizes", "[data][idx][broken]") {
    TempFolder folder;
    const std::string path = folder.file("x.idx");
    // 60000 images of 28x28 promise 16 + 60000 * 784 = 47040016 bytes; the file has 16 + 984.
    write_bytes(path, idx_images(0x803, 60000, 28, 28, 984));
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         Message("'" + path + "': truncated: header says 60000 images of 28x28 = "
                                 "47040016 bytes, file has 1000 bytes"));
    write_bytes(path, big_endian_words({0x801, 10, 0}));  // 10 labels promised, 4 bytes present
    CHECK_THROWS_MATCHES(read_idx_labels(path), FormatError,
                         Message("'" + path + "': truncated: header says 10 labels = 18 bytes, "
                                 "file has 12 bytes"));
}

TEST_CASE("idx: a file one byte shorter than its header says is refused, naming the file",
          "[data][idx][broken]") {
    TempFolder folder;
    const std::string path = folder.file("short.idx");
    // 2 images of 3x4 promise 16 + 24 = 40 bytes; the file stops one pixel early.
    write_bytes(path, idx_images(0x803, 2, 3, 4, 2 * 3 * 4 - 1));
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         Message("'" + path + "': truncated: header says 2 images of 3x4 = 40 bytes, "
                                 "file has 39 bytes"));
    write_gzip(path + ".gz", read_file(path));
    CHECK_THROWS_MATCHES(read_idx_images(path + ".gz"), FormatError,
                         Message("'" + path + ".gz': truncated: header says 2 images of 3x4 = 40 bytes, "
                                 "decompressed data has 39 bytes"));
    // 3 labels promise 8 + 3 = 11 bytes; the file has two of them.
    std::vector<char> labels = big_endian_words({0x801, 3});
    labels.push_back(1);
    labels.push_back(2);
    write_bytes(path, labels);
    CHECK_THROWS_MATCHES(read_idx_labels(path), FormatError,
                         Message("'" + path + "': truncated: header says 3 labels = 11 bytes, "
                                 "file has 10 bytes"));
}

TEST_CASE("idx: truncated header gives FormatError", "[data][idx][broken]") {
    TempFolder folder;
    const std::string path = folder.file("short");
    write_bytes(path, big_endian_words({0x803, 1, 28}));
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         Message("'" + path + "': truncated: file has 12 bytes, shorter than the "
                                 "16-byte IDX image header"));
    write_bytes(path, {});
    CHECK_THROWS_AS(read_idx_labels(path), FormatError);
}

TEST_CASE("idx: extra bytes after the data give FormatError", "[data][idx][broken]") {
    TempFolder folder;
    const std::string path = folder.file("long");
    write_bytes(path, idx_images(0x803, 2, 3, 4, 2 * 3 * 4 + 4));
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         Message("'" + path + "': extra bytes: header says 2 images of 3x4 = 40 "
                                 "bytes, file has 44 bytes (4 extra bytes)"));
    write_gzip(path + ".gz", read_file(path));
    CHECK_THROWS_MATCHES(read_idx_images(path + ".gz"), FormatError,
                         MessageContains("extra bytes: header says 2 images of 3x4 = 40 bytes, "
                                          "decompressed data goes on past that"));
}

TEST_CASE("idx: zero dimensions give FormatError", "[data][idx][broken]") {
    TempFolder folder;
    const std::string path = folder.file("zero");
    write_bytes(path, idx_images(0x803, 5, 0, 28, 0));
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         Message("'" + path + "': header says 5 images of 0x28: every dimension "
                                 "must be > 0"));
    write_bytes(path, big_endian_words({0x801, 0}));
    CHECK_THROWS_MATCHES(read_idx_labels(path), FormatError, MessageContains("0 labels"));
}

TEST_CASE("idx: header claiming 10^12 pixels fails fast without allocating (plain and gzip)",
          "[data][idx][broken]") {
    TempFolder folder;
    const std::string path = folder.file("huge");
    // 10^6 images of 1000x1000 = 10^12 bytes claimed; 100 present. Reading must not try to
    // allocate 10^12 values (under AddressSanitizer that would abort the test).
    write_bytes(path, idx_images(0x803, 1000000, 1000, 1000, 100));
    write_gzip(path + ".gz", read_file(path));
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         Message("'" + path + "': truncated: header says 1000000 images of "
                                 "1000x1000 = 1000000000016 bytes, file has 116 bytes"));
    CHECK_THROWS_MATCHES(read_idx_images(path + ".gz"), FormatError,
                         MessageContains("1000000000016 bytes, more than a gzip file of"));
    // The largest header fields (2^32 - 1 each) stay within the size arithmetic.
    write_bytes(path, idx_images(0x803, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0));
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError, MessageContains("more than 2^48 bytes"));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(seconds < 0.5);
}

TEST_CASE("idx: corrupt gzip data gives FormatError", "[data][idx][gzip][broken]") {
    TempFolder folder;
    const std::string path = folder.file("corrupt.gz");
    write_idx_images(folder.file("plain"), byte_valued_images<float>(4, 28, 28, 3));
    write_gzip(path, read_file(folder.file("plain")));
    const std::vector<char> good = read_file(path);

    std::vector<char> bad_checksum = good;  // the gzip trailer: CRC-32, then the length
    bad_checksum[bad_checksum.size() - 8] ^= 0x55;
    write_bytes(path, bad_checksum);
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         Message("'" + path + "': corrupt gzip data (incorrect data check)"));

    std::vector<char> bad_method = good;  // byte 2 is the compression method, 8 = deflate
    bad_method[2] = 7;
    write_bytes(path, bad_method);
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError, MessageContains("corrupt gzip data"));

    for (std::size_t at : {std::size_t{20}, good.size() / 2}) {  // damage inside the compressed data
        std::vector<char> damaged = good;
        for (std::size_t i = at; i < at + 16; ++i) damaged[i] = static_cast<char>(~damaged[i]);
        write_bytes(path, damaged);
        CHECK_THROWS_AS(read_idx_images(path), FormatError);
    }

    std::vector<char> trailing = good;
    trailing.push_back('x');
    write_bytes(path, trailing);
    CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                         MessageContains("unexpected bytes after the end of the compressed stream"));
}

TEST_CASE("idx: truncated gzip stream gives FormatError", "[data][idx][gzip][broken]") {
    TempFolder folder;
    const std::string path = folder.file("cut.gz");
    write_idx_images(folder.file("plain"), byte_valued_images<float>(4, 28, 28, 4));
    write_gzip(path, read_file(folder.file("plain")));
    const std::vector<char> good = read_file(path);
    for (std::size_t keep : {good.size() - 4, good.size() / 2, std::size_t{12}}) {
        write_bytes(path, std::vector<char>(good.begin(), good.begin() + static_cast<long>(keep)));
        CHECK_THROWS_MATCHES(read_idx_images(path), FormatError,
                             MessageContains("'" + path + "': truncated"));
    }
}

TEST_CASE("idx: missing file gives IoError", "[data][idx][broken]") {
    TempFolder folder;
    CHECK_THROWS_MATCHES(read_idx_images(folder.file("absent")), IoError,
                         MessageContains("cannot open '" + folder.file("absent") + "'"));
    CHECK_THROWS_AS(read_idx_labels(folder.file("absent.gz")), IoError);
}

TEST_CASE("find_mnist: finds plain, gzip and dotted spellings", "[data][idx][mnist]") {
    TempFolder folder;
    for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels.idx1-ubyte",
                             "t10k-images.idx3-ubyte.gz", "t10k-labels-idx1-ubyte",
                             "t10k-labels-idx1-ubyte.gz"})
        write_bytes(folder.file(name), {'x'});
    const MnistFiles files = find_mnist(folder.path().string());
    CHECK(files.train_images == folder.file("train-images-idx3-ubyte.gz"));
    CHECK(files.train_labels == folder.file("train-labels.idx1-ubyte"));
    CHECK(files.test_images == folder.file("t10k-images.idx3-ubyte.gz"));
    CHECK(files.test_labels == folder.file("t10k-labels-idx1-ubyte"));  // plain preferred
}

TEST_CASE("find_mnist: missing files give IoError listing every path tried", "[data][idx][mnist]") {
    TempFolder folder;
    for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"})
        write_bytes(folder.file(name), {'x'});
    const std::string dir = folder.path().string();
    const std::string tried = "t10k-labels: tried '" + folder.file("t10k-labels-idx1-ubyte") + "' '" +
                              folder.file("t10k-labels.idx1-ubyte") + "' '" +
                              folder.file("t10k-labels-idx1-ubyte.gz") + "' '" +
                              folder.file("t10k-labels.idx1-ubyte.gz") + "'";
    CHECK_THROWS_MATCHES(find_mnist(dir), IoError,
                         Message("find_mnist: MNIST files missing in '" + dir + "':\n  " + tried));
    CHECK_THROWS_MATCHES(find_mnist(folder.file("no-such-folder")), IoError,
                         MessageContains("train-images: tried"));
}

TEST_CASE("mnist: the fetched files read with the expected counts", "[data][idx][mnist][dataset]") {
#ifdef LATENT_MNIST_DIR
    MnistFiles files;
    try {
        files = find_mnist(LATENT_MNIST_DIR);
    } catch (const IoError&) {
        test::skip("MNIST not found in " LATENT_MNIST_DIR " (run examples/get_mnist.sh)");
        return;
    }
    const Tensor<float> train = read_idx_images(files.train_images);
    const Tensor<float> test_images = read_idx_images(files.test_images);
    const auto train_labels = read_idx_labels(files.train_labels);
    const auto test_labels = read_idx_labels(files.test_labels);
    const bool npm_split = train.dimension(0) == 8000 && test_images.dimension(0) == 2000;
    const bool official = train.dimension(0) == 60000 && test_images.dimension(0) == 10000;
    CHECK((npm_split || official));
    CHECK(train.dimension(1) == 1);
    CHECK(train.dimension(2) == 28);
    CHECK(train.dimension(3) == 28);
    CHECK(static_cast<Index>(train_labels.size()) == train.dimension(0));
    CHECK(static_cast<Index>(test_labels.size()) == test_images.dimension(0));
    const Eigen::Tensor<float, 0, Eigen::RowMajor> low = train.minimum(), high = train.maximum();
    CHECK(low() == 0.0f);
    CHECK(high() == 1.0f);
    CHECK(*std::max_element(train_labels.begin(), train_labels.end()) < 10);
    CHECK(*std::max_element(test_labels.begin(), test_labels.end()) < 10);
#else
    test::skip("LATENT_MNIST_DIR is not defined");
#endif
}

TEST_CASE("fashion-mnist: the Debian package's gzip files read (60000 + 10000 images)",
          "[data][idx][dataset]") {
    const std::string folder = "/usr/share/datasets/fashion-mnist";
    MnistFiles files;
    try {
        files = find_mnist(folder);
    } catch (const IoError&) {
        test::skip("Fashion-MNIST not installed in " + folder +
                   " (apt-get install dataset-fashion-mnist)");
        return;
    }
    const Tensor<float> train = read_idx_images(files.train_images);
    CHECK(train.dimension(0) == 60000);
    CHECK(train.dimension(2) == 28);
    CHECK(train.dimension(3) == 28);
    const auto train_labels = read_idx_labels(files.train_labels);
    const auto test_labels = read_idx_labels(files.test_labels);
    CHECK(read_idx_images(files.test_images).dimension(0) == 10000);
    REQUIRE(train_labels.size() == 60000);
    REQUIRE(test_labels.size() == 10000);
    std::array<int, 10> train_per_class{}, test_per_class{};
    for (const auto label : train_labels) train_per_class.at(label)++;
    for (const auto label : test_labels) test_per_class.at(label)++;
    for (int c = 0; c < 10; ++c) {
        CHECK(train_per_class[c] == 6000);
        CHECK(test_per_class[c] == 1000);
    }
}

// ---------------------------------------------------------------------------------------- npy

namespace {

// An .npy file from its parts, for broken-file tests.
std::vector<char> npy_file(const std::string& dict, const std::vector<char>& data,
                           const std::string& magic = "\x93NUMPY", char major = 1) {
    std::vector<char> bytes(magic.begin(), magic.end());
    bytes.push_back(major);
    bytes.push_back(0);
    bytes.push_back(static_cast<char>(dict.size() & 0xFF));
    bytes.push_back(static_cast<char>(dict.size() >> 8));
    if (major != 1) bytes.insert(bytes.end(), {0, 0});
    bytes.insert(bytes.end(), dict.begin(), dict.end());
    bytes.insert(bytes.end(), data.begin(), data.end());
    return bytes;
}

std::vector<char> float_bytes(std::initializer_list<float> values) {
    std::vector<char> bytes;
    for (const float value : values) {
        char raw[4];
        std::memcpy(raw, &value, 4);  // the test machine is little-endian, as checked below
        bytes.insert(bytes.end(), raw, raw + 4);
    }
    return bytes;
}

}  // namespace

TEST_CASE("npy: tensor and matrix round trips (float and double)", "[data][npy]") {
    TempFolder folder;
    const auto floats = test::random_tensor<float>(3, {2, 5, 4}, 1);
    save_npy(folder.file("f.npy"), floats);
    CHECK(test::max_abs_difference(load_npy<float>(folder.file("f.npy")), floats) == 0.0);

    const auto doubles = test::random_tensor<double>(2, {1, 3, 7}, 2);
    save_npy(folder.file("d.npy"), doubles);
    const Tensor<double> back = load_npy<double>(folder.file("d.npy"));
    REQUIRE(back.dimensions() == doubles.dimensions());
    CHECK(test::max_abs_difference(back, doubles) == 0.0);

    Eigen::MatrixXd column_major(2, 3);  // storage order must not matter: files are in C order
    column_major << 1, 2, 3, 4, 5, 6;
    save_npy(folder.file("m.npy"), column_major);
    const Matrix<double> matrix = load_npy_matrix<double>(folder.file("m.npy"));
    REQUIRE(matrix.rows() == 2);
    REQUIRE(matrix.cols() == 3);
    CHECK(matrix(0, 2) == 3.0);
    CHECK(matrix(1, 0) == 4.0);
    const Tensor<double> as_tensor = load_npy<double>(folder.file("m.npy"));  // (2, 3) -> (2, 3, 1, 1)
    CHECK(as_tensor.dimension(0) == 2);
    CHECK(as_tensor.dimension(1) == 3);
    CHECK(as_tensor.dimension(3) == 1);
    CHECK(as_tensor(1, 2, 0, 0) == 6.0);
    CHECK_THROWS_AS(load_npy_matrix<double>(folder.file("d.npy")), FormatError);  // 4-D
}

TEST_CASE("npy: header bytes follow the NPY 1.0 spec", "[data][npy]") {
    REQUIRE(detail::host_is_little_endian());
    TempFolder folder;
    Tensor<float> tensor(2, 1, 3, 4);
    for (Index i = 0; i < tensor.size(); ++i) tensor.data()[i] = static_cast<float>(i) * 0.5f;
    save_npy(folder.file("t.npy"), tensor);
    const std::vector<char> bytes = read_file(folder.file("t.npy"));
    REQUIRE(bytes.size() > 10);
    CHECK(std::string(bytes.data(), 6) == "\x93NUMPY");
    CHECK(bytes[6] == 1);  // version 1.0
    CHECK(bytes[7] == 0);
    const std::size_t header_length =
        static_cast<unsigned char>(bytes[8]) + 256u * static_cast<unsigned char>(bytes[9]);
    const std::size_t data_start = 10 + header_length;
    CHECK(data_start % 64 == 0);
    const std::string dict(bytes.data() + 10, header_length);
    const std::string expected_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3, 4), }";
    CHECK(dict.substr(0, expected_dict.size()) == expected_dict);
    CHECK(dict.back() == '\n');
    CHECK(dict.find_first_not_of(' ', expected_dict.size()) == dict.size() - 1);  // spaces, then '\n'
    REQUIRE(bytes.size() == data_start + 24 * 4);
    float third;
    std::memcpy(&third, bytes.data() + data_start + 3 * 4, 4);
    CHECK(third == 1.5f);  // C order: element 3 is tensor(0, 0, 0, 3) = 3 * 0.5

    Matrix<double> codes(4, 1);
    codes << 1, 2, 3, 4;
    save_npy(folder.file("c.npy"), codes);
    const std::vector<char> code_bytes = read_file(folder.file("c.npy"));
    CHECK(std::string(code_bytes.data() + 10, 61) ==
          "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 1), }  ");
    // 10 prefix bytes + 59 dict characters + '\n' = 70 > 64: the data starts at 128.
    CHECK(code_bytes.size() == 128 + 4 * 8);
}

TEST_CASE("npy: a float64 file loads into a float tensor", "[data][npy]") {
    TempFolder folder;
    Tensor<double> values(1, 1, 1, 3);
    values.setValues({{{{0.25, -1.0, 1e30}}}});
    save_npy(folder.file("d.npy"), values);
    const Tensor<float> floats = load_npy<float>(folder.file("d.npy"));
    CHECK(floats(0, 0, 0, 0) == 0.25f);
    CHECK(floats(0, 0, 0, 2) == static_cast<float>(1e30));
}

TEST_CASE("npy: load rejects wrong magic, dtype, order, truncated and extra data", "[data][npy][broken]") {
    TempFolder folder;
    const std::string path = folder.file("bad.npy");
    const std::string good_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
    write_bytes(path, npy_file(good_dict, float_bytes({1.5f, 2.5f})));
    const Tensor<float> good = load_npy<float>(path);  // the builder itself makes valid files
    CHECK(good.dimension(0) == 2);
    CHECK(good(1, 0, 0, 0) == 2.5f);
    write_bytes(path, npy_file(good_dict, float_bytes({1.5f, 2.5f}), "\x93NUMPY", 2));
    CHECK(load_npy<float>(path)(0, 0, 0, 0) == 1.5f);  // version 2.0: 4-byte header length

    write_bytes(path, npy_file(good_dict, float_bytes({1, 2}), "\x93NUMPX"));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError,
                         Message("'" + path + "': not an .npy file (no \\x93NUMPY magic)"));
    write_bytes(path, npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n",
                               float_bytes({1, 2})));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError,
                         MessageContains("unsupported .npy dtype '<i4'"));
    write_bytes(path, npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n",
                               float_bytes({1, 2})));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError, MessageContains("dtype '>f4'"));
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }\n",
                               float_bytes({1, 2})));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError, MessageContains("Fortran order"));
    write_bytes(path, npy_file(good_dict, float_bytes({1})));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError,
                         Message("'" + path + "': truncated: shape (2,) of <f4 needs 8 data bytes, "
                                 "the file has 4"));
    write_bytes(path, npy_file(good_dict, float_bytes({1, 2, 3})));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError, MessageContains("extra bytes"));
    write_bytes(path, npy_file("{'descr': '<f4', 'shape': (2,), }\n", float_bytes({1, 2})));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError, MessageContains("bad .npy header"));
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n",
                               float_bytes({1, 2})));
    CHECK_THROWS_AS(load_npy<float>(path), FormatError);
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 2), }\n",
                               float_bytes({1, 2})));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError, MessageContains("has 5 dimensions"));
    std::vector<char> cut = npy_file(good_dict, {});
    cut.resize(30);  // the header length says more than the file holds
    write_bytes(path, cut);
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError, MessageContains("truncated .npy header"));
    CHECK_THROWS_AS(load_npy<float>(folder.file("absent.npy")), IoError);
}

TEST_CASE("npy: an empty array with absurd dimensions is refused before allocating", "[data][npy][hostile]") {
    TempFolder folder;
    const std::string path = folder.file("empty.npy");
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 3), }\n",
                               {}));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError, MessageContains("'" + path + "': .npy shape"));
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2097152, 1048576), }\n", {}));
    CHECK_THROWS_MATCHES(load_npy<float>(path), FormatError, MessageContains("more than 1099511627776 values"));
    // Dimensions whose product wraps around 2^64 to a small number.
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 1), }\n",
                               float_bytes({1})));
    CHECK_THROWS_AS(load_npy<float>(path), FormatError);
    // A sound empty array still loads.
    write_bytes(path, npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 16), }\n", {}));
    const Tensor<float> empty = load_npy<float>(path);
    CHECK(empty.dimension(0) == 0);
    CHECK(empty.dimension(1) == 16);
}

namespace {

// The header dict of a saved .npy file (up to its closing newline) and the data after it.
struct NpyParts {
    std::string dict;
    std::vector<char> data;
};
NpyParts npy_parts(const std::vector<char>& bytes) {
    const auto newline = std::find(bytes.begin() + 10, bytes.end(), '\n');
    REQUIRE(newline != bytes.end());
    REQUIRE((newline + 1 - bytes.begin()) % 64 == 0);
    return {std::string(bytes.begin() + 10, newline), std::vector<char>(newline + 1, bytes.end())};
}

}  // namespace

TEST_CASE("npy: integer vectors are saved with their own dtype", "[data][npy]") {
    TempFolder folder;
    const auto parts_of = [&](const std::string& name) { return npy_parts(read_file(folder.file(name))); };
    save_npy(folder.file("u8.npy"), std::vector<std::uint8_t>{0, 7, 255});
    save_npy(folder.file("i32.npy"), std::vector<int>{-1, 2});
    save_npy(folder.file("i64.npy"), std::vector<std::int64_t>{-(std::int64_t{1} << 40)});
    const NpyParts u8 = parts_of("u8.npy"), i32 = parts_of("i32.npy"), i64 = parts_of("i64.npy");
    CHECK_THAT(u8.dict, Catch::Matchers::StartsWith("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }"));
    CHECK_THAT(i32.dict, Catch::Matchers::StartsWith("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }"));
    CHECK_THAT(i64.dict, Catch::Matchers::StartsWith("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }"));
    REQUIRE(u8.data.size() == 3);
    CHECK(static_cast<unsigned char>(u8.data[2]) == 255);
    REQUIRE(i32.data.size() == 8);
    std::int32_t first = 0;
    std::memcpy(&first, i32.data.data(), 4);
    CHECK(first == -1);
    REQUIRE(i64.data.size() == 8);
    std::int64_t wide = 0;
    std::memcpy(&wide, i64.data.data(), 8);
    CHECK(wide == -(std::int64_t{1} << 40));
}

TEST_CASE("npy: save_npy_rows writes codes of shape (N, D, 1, 1) as an (N, D) matrix", "[data][npy]") {
    TempFolder folder;
    const auto codes = test::random_tensor<float>(5, {3, 1, 1}, 4);
    save_npy_rows(folder.file("codes.npy"), codes);
    CHECK_THAT(npy_parts(read_file(folder.file("codes.npy"))).dict,
               Catch::Matchers::StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3), }"));
    const Matrix<float> matrix = load_npy_matrix<float>(folder.file("codes.npy"));
    REQUIRE(matrix.rows() == 5);
    REQUIRE(matrix.cols() == 3);
    for (Index n = 0; n < 5; ++n)
        for (Index d = 0; d < 3; ++d) CHECK(matrix(n, d) == codes(n, d, 0, 0));
    // Images flatten to one row per sample.
    save_npy_rows(folder.file("images.npy"), test::random_tensor<double>(2, {1, 4, 4}, 5));
    CHECK(load_npy_matrix<double>(folder.file("images.npy")).cols() == 16);
}
