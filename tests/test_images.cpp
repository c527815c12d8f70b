#include <catch2/catch.hpp>

#include <latent/data/image_writer.hpp>
#include <latent/data/images.hpp>
#include <latent/data/resize.hpp>

#include <stb_image_write.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "helpers.hpp"

using namespace latent;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

// A fresh folder under the system's temporary folder, removed with everything in it at the end.
struct TempFolder {
    fs::path path;
    explicit TempFolder(const std::string& name) {
        path = fs::temp_directory_path() / ("latent_images_" + name + "_" + std::to_string(::getpid()));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempFolder() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    std::string operator/(const std::string& relative) const { return (path / relative).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string file_bytes(const std::string& path) {
    const std::vector<char> bytes = read_file(path);
    return std::string(bytes.begin(), bytes.end());
}

void append_to_string(void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

// Interleaved 8-bit pixels encoded with stb directly (independent of latent's writer).
std::string encode_png(const std::vector<unsigned char>& pixels, int width, int height, int channels) {
    std::string out;
    REQUIRE(stbi_write_png_to_func(append_to_string, &out, width, height, channels, pixels.data(), width * channels));
    return out;
}
std::string encode_jpg(const std::vector<unsigned char>& pixels, int width, int height, int channels) {
    std::string out;
    REQUIRE(stbi_write_jpg_to_func(append_to_string, &out, width, height, channels, pixels.data(), 95));
    return out;
}
std::string encode_bmp(const std::vector<unsigned char>& pixels, int width, int height, int channels) {
    std::string out;
    REQUIRE(stbi_write_bmp_to_func(append_to_string, &out, width, height, channels, pixels.data()));
    return out;
}

// A (1, 1, height, width) PNG whose every pixel is `byte`.
std::string constant_png(int height, int width, unsigned char byte) {
    return encode_png(std::vector<unsigned char>(static_cast<std::size_t>(height * width), byte), width, height, 1);
}

// Runs `action`, which must throw E; returns the message.
template <class E, class Action> std::string message_of(Action&& action) {
    try {
        action();
    } catch (const E& error) {
        return error.what();
    } catch (const std::exception& other) {
        FAIL("threw a different exception: " << other.what());
    }
    FAIL("did not throw");
    return "";
}

// Pixel bytes p = (37 * i + 11) mod 256 for i = 0, 1, ...: every value class, not a ramp.
Tensor<float> byte_pattern_tensor(Index batch, Index channels, Index height, Index width) {
    Tensor<float> images(batch, channels, height, width);
    for (Index i = 0; i < images.size(); ++i) images.data()[i] = static_cast<float>((37 * i + 11) % 256) / 255.0f;
    return images;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reading and writing single files

TEST_CASE("images: PNG round trip, grey, exact to 1/255", "[images]") {
    TempFolder folder("png_grey");
    const Tensor<float> images = byte_pattern_tensor(2, 1, 5, 7);
    save_png(folder / "grey.png", images, 1);
    const Tensor<float> loaded = load_image(folder / "grey.png");
    REQUIRE(loaded.dimensions() == Tensor<float>::Dimensions(1, 1, 5, 7));
    for (Index i = 0; i < loaded.size(); ++i) CHECK(loaded.data()[i] == images.data()[35 + i]);  // sample 1
    // Nothing but the file is left behind by the atomic write.
    CHECK(std::distance(fs::directory_iterator(folder.path), fs::directory_iterator()) == 1);
}

TEST_CASE("images: PNG round trip, RGB, exact to 1/255", "[images]") {
    TempFolder folder("png_rgb");
    const Tensor<float> images = byte_pattern_tensor(1, 3, 4, 6);
    save_png(folder / "rgb.png", images);
    const Tensor<double> loaded = load_image<double>(folder / "rgb.png", 3);
    REQUIRE(loaded.dimensions() == Tensor<double>::Dimensions(1, 3, 4, 6));
    for (Index i = 0; i < loaded.size(); ++i)
        CHECK(std::abs(loaded.data()[i] - static_cast<double>(images.data()[i])) < 1e-7);
}

TEST_CASE("images: save_png clamps to [0, 1] and rounds to the nearest byte", "[images]") {
    TempFolder folder("png_clamp");
    Tensor<double> image(1, 1, 1, 5);
    // -0.5 -> 0; 1.7 -> 255; 0.5 * 255 = 127.5 -> 128; 100.4 / 255 -> 100; 100.6 / 255 -> 101.
    image.setValues({{{{-0.5, 1.7, 0.5, 100.4 / 255, 100.6 / 255}}}});
    save_png(folder / "clamp.png", image);
    const Tensor<double> loaded = load_image<double>(folder / "clamp.png");
    CHECK(loaded(0, 0, 0, 0) == 0.0);
    CHECK(loaded(0, 0, 0, 1) == 1.0);
    CHECK(loaded(0, 0, 0, 2) == 128.0 / 255);
    CHECK(loaded(0, 0, 0, 3) == 100.0 / 255);
    CHECK(loaded(0, 0, 0, 4) == 101.0 / 255);
}

TEST_CASE("images: colour read as grey uses stb's luminance, grey read as RGB is replicated", "[images]") {
    TempFolder folder("luminance");
    // (77 * 200 + 150 * 100 + 29 * 50) >> 8 = (15400 + 15000 + 1450) >> 8 = 31850 >> 8 = 124.
    write_bytes(folder / "rgb.png", encode_png({200, 100, 50}, 1, 1, 3));
    write_bytes(folder / "rgb.ppm", std::string("P6\n1 1\n255\n") + "\xC8\x64\x32");  // same pixel
    CHECK(load_image<double>(folder / "rgb.png")(0, 0, 0, 0) == 124.0 / 255);
    CHECK(load_image<double>(folder / "rgb.ppm")(0, 0, 0, 0) == 124.0 / 255);
    write_bytes(folder / "grey.png", encode_png({77}, 1, 1, 1));
    const Tensor<double> rgb = load_image<double>(folder / "grey.png", 3);
    REQUIRE(rgb.dimension(1) == 3);
    for (Index c = 0; c < 3; ++c) CHECK(rgb(0, c, 0, 0) == 77.0 / 255);
}

TEST_CASE("images: hand-written PGM with a comment line decodes", "[images][pgm]") {
    TempFolder folder("pgm");
    // 3 wide, 2 high; bytes 0, 51, ..., 255 are 0, 0.2, ..., 1.0 of 255.
    write_bytes(folder / "hand.pgm", "P5\n# written by hand\n3 2\n255\n"s + "\x00\x33\x66\x99\xCC\xFF"s);
    const Tensor<double> image = load_image<double>(folder / "hand.pgm");
    REQUIRE(image.dimensions() == Tensor<double>::Dimensions(1, 1, 2, 3));
    for (Index i = 0; i < 6; ++i) CHECK(image.data()[i] == Approx(0.2 * static_cast<double>(i)).margin(1e-12));
    // maxval 15: sample 15 is white, 5 is 1/3.
    write_bytes(folder / "four_bit.pgm", std::string("P5 2 1 15 ") + "\x0F\x05");
    const Tensor<double> four_bit = load_image<double>(folder / "four_bit.pgm");
    CHECK(four_bit(0, 0, 0, 0) == 1.0);
    CHECK(four_bit(0, 0, 0, 1) == Approx(5.0 / 15));
    // 16-bit samples are big-endian: 0x12 0x34 = 4660 of 65535.
    write_bytes(folder / "sixteen.pgm", std::string("P5\n1 1\n65535\n") + "\x12\x34");
    CHECK(load_image<double>(folder / "sixteen.pgm")(0, 0, 0, 0) == Approx(4660.0 / 65535));
}

TEST_CASE("images: JPG decodes with the right shape and close values", "[images]") {
    TempFolder folder("jpg");
    std::vector<unsigned char> pixels(16 * 12);  // a smooth diagonal gradient survives JPEG well
    for (int y = 0; y < 12; ++y)
        for (int x = 0; x < 16; ++x) pixels[static_cast<std::size_t>(y * 16 + x)] = static_cast<unsigned char>(40 + 5 * x + 6 * y);
    write_bytes(folder / "gradient.jpg", encode_jpg(pixels, 16, 12, 1));
    const Tensor<float> image = load_image(folder / "gradient.jpg");
    REQUIRE(image.dimensions() == Tensor<float>::Dimensions(1, 1, 12, 16));
    double worst = 0;
    for (int y = 0; y < 12; ++y)
        for (int x = 0; x < 16; ++x)
            worst = std::max(worst, std::abs(image(0, 0, y, x) - pixels[static_cast<std::size_t>(y * 16 + x)] / 255.0));
    CHECK(worst < 0.04);  // quality 95
    CHECK(load_image(folder / "gradient.jpg", 3).dimension(1) == 3);
}

TEST_CASE("images: BMP decodes exactly", "[images]") {
    TempFolder folder("bmp");
    const std::vector<unsigned char> pixels{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170};
    write_bytes(folder / "rgb.bmp", encode_bmp(pixels, 3, 2, 3));  // 3 wide, 2 high, RGB
    const Tensor<double> image = load_image<double>(folder / "rgb.bmp", 3);
    REQUIRE(image.dimensions() == Tensor<double>::Dimensions(1, 3, 2, 3));
    for (Index y = 0; y < 2; ++y)
        for (Index x = 0; x < 3; ++x)
            for (Index c = 0; c < 3; ++c)
                CHECK(image(0, c, y, x) == pixels[static_cast<std::size_t>((y * 3 + x) * 3 + c)] / 255.0);
}

TEST_CASE("images: broken files give FormatError naming the file, a missing one IoError", "[images][errors]") {
    TempFolder folder("broken");
    const std::string png = constant_png(8, 8, 100);
    write_bytes(folder / "truncated.png", png.substr(0, png.size() / 2));
    std::string noise(300, '\0');
    Rng rng(5);
    for (char& c : noise) c = static_cast<char>(rng.below(256));
    noise[0] = 'x';  // not a "P5"/"P6" magic by chance
    write_bytes(folder / "random.png", noise);
    write_bytes(folder / "empty.jpg", "");
    write_bytes(folder / "truncated.pgm", std::string("P5\n4 4\n255\n") + "\x01\x02\x03");
    write_bytes(folder / "no_size.pgm", "P5\n# only a comment\n");
    write_bytes(folder / "too_bright.pgm", std::string("P5 1 1 100 ") + "\xC8");  // 200 > maxval 100
    const std::string jpg = encode_jpg(std::vector<unsigned char>(64 * 64, 90), 64, 64, 1);
    write_bytes(folder / "truncated.jpg", jpg.substr(0, jpg.size() / 2));
    const std::string bmp = encode_bmp(std::vector<unsigned char>(8 * 8 * 3, 90), 8, 8, 3);
    write_bytes(folder / "truncated.bmp", bmp.substr(0, bmp.size() - 10));
    for (const char* name : {"truncated.png", "random.png", "empty.jpg", "truncated.pgm", "no_size.pgm",
                             "too_bright.pgm", "truncated.jpg", "truncated.bmp"}) {
        INFO(name);
        const std::string message = message_of<FormatError>([&] { load_image(folder / name); });
        CHECK_THAT(message, Catch::Contains(name));
    }
    const std::string missing = message_of<IoError>([&] { load_image(folder / "missing.png"); });
    CHECK_THAT(missing, Catch::Contains("missing.png"));
    CHECK_THROWS_AS(load_image(folder / "missing.png", 2), ArgumentError);
}

TEST_CASE("images: save_png errors name the file", "[images][errors]") {
    TempFolder folder("save_errors");
    Tensor<float> images = byte_pattern_tensor(2, 1, 3, 3);
    images(1, 0, 2, 1) = std::nanf("");
    const std::string nan = message_of<NumericError>([&] { save_png(folder / "nan.png", images, 1); });
    CHECK_THAT(nan, Catch::Contains("nan.png"));
    CHECK_FALSE(fs::exists(folder / "nan.png"));
    CHECK_NOTHROW(save_png(folder / "fine.png", images, 0));
    CHECK_THROWS_AS(save_png(folder / "index.png", images, 2), ArgumentError);
    CHECK_THAT(message_of<ShapeError>([&] { save_png(folder / "two.png", byte_pattern_tensor(1, 2, 3, 3)); }),
               Catch::Contains("two.png"));
    CHECK_THROWS_AS(save_png(folder / "no_such_folder/x.png", images), IoError);
}

// ---------------------------------------------------------------------------------------------
// Folders

TEST_CASE("image folder: natural order compares digit runs as numbers", "[images][folder]") {
    using detail::natural_less;
    CHECK(natural_less("s2", "s10"));
    CHECK_FALSE(natural_less("s10", "s2"));
    CHECK(natural_less("2.pgm", "10.pgm"));
    CHECK(natural_less("s9_10", "s10_1"));
    CHECK(natural_less("a", "b"));
    CHECK(natural_less("x", "x1"));
    CHECK(natural_less("01", "1") != natural_less("1", "01"));  // numerically equal: still ordered
    CHECK_FALSE(natural_less("abc", "abc"));
    CHECK(detail::natural_path_less("s2/10.pgm", "s10/1.pgm"));
}

namespace {

// a/{1,2,10}.png, b/x.PNG, c2/img.pgm, c2/deep/more.png, c10/img.pgm, root.png, plus files that
// must be ignored: notes.txt, .hidden/skip.png, and an empty folder. Every image is 3 high and
// 4 wide and constant with its own byte, so a loaded sample shows which file it came from.
void build_tree(const TempFolder& folder) {
    const std::vector<std::pair<std::string, unsigned char>> images{
        {"a/1.png", 10}, {"a/10.png", 30}, {"a/2.png", 20}, {"b/x.PNG", 40},
        {"c2/deep/more.png", 50}, {"root.png", 80}, {".hidden/skip.png", 90}};
    for (const auto& [name, byte] : images) write_bytes(folder / name, constant_png(3, 4, byte));
    write_bytes(folder / "c2/img.pgm", std::string("P5 4 3 255\n") + std::string(12, '\x3C'));   // 60
    write_bytes(folder / "c10/img.pgm", std::string("P5 4 3 255\n") + std::string(12, '\x46'));  // 70
    write_bytes(folder / "notes.txt", "not an image");
    fs::create_directories(folder.path / "empty");
}

}  // namespace

TEST_CASE("image folder: sorted paths, labels from first-level sub-folders", "[images][folder]") {
    TempFolder folder("tree");
    build_tree(folder);
    const ImageFolder<double> set = load_image_folder<double>(folder.path.string());
    const std::vector<std::string> relative{"a/1.png", "a/2.png", "a/10.png", "b/x.PNG", "c2/deep/more.png",
                                            "c2/img.pgm", "c10/img.pgm", "root.png"};
    const std::vector<int> bytes{10, 20, 30, 40, 50, 60, 70, 80};
    REQUIRE(set.paths.size() == relative.size());
    for (std::size_t i = 0; i < relative.size(); ++i) CHECK(set.paths[i] == folder / relative[i]);
    CHECK(set.class_names == std::vector<std::string>{"a", "b", "c2", "c10"});
    CHECK(set.labels == std::vector<int>{0, 0, 0, 1, 2, 2, 3, -1});
    REQUIRE(set.images.dimensions() == Tensor<double>::Dimensions(8, 1, 3, 4));
    for (Index n = 0; n < 8; ++n) {
        CHECK(set.images(n, 0, 0, 0) == bytes[static_cast<std::size_t>(n)] / 255.0);
        CHECK(set.images(n, 0, 2, 3) == bytes[static_cast<std::size_t>(n)] / 255.0);
    }
    // A filter on the relative path, and RGB reading.
    ImageFolderOptions options;
    options.channels = 3;
    options.filter = [](const std::string& path) { return path.rfind("c", 0) == 0; };
    const ImageFolder<float> only_c = load_image_folder(folder.path.string(), options);
    CHECK(only_c.class_names == std::vector<std::string>{"c2", "c10"});
    CHECK(only_c.labels == std::vector<int>{0, 0, 1});
    CHECK(only_c.images.dimension(1) == 3);
}

TEST_CASE("image folder: mixed sizes give ShapeError naming the first file that differs, resizing fixes it",
          "[images][folder]") {
    TempFolder folder("mixed");
    write_bytes(folder / "a/1.png", constant_png(3, 4, 100));
    write_bytes(folder / "a/2.png", constant_png(3, 4, 100));
    write_bytes(folder / "a/3.png", constant_png(5, 5, 100));
    write_bytes(folder / "b/1.png", constant_png(6, 2, 100));
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        const std::string message = message_of<ShapeError>([&] { load_image_folder(folder.path.string()); });
        CHECK_THAT(message, Catch::Contains("a/3.png") && !Catch::Contains("b/1.png"));
    }
    ImageFolderOptions options;
    options.height = 8;
    options.width = 6;
    for (Resize method : {Resize::Bilinear, Resize::Bicubic}) {
        options.resize = method;
        const ImageFolder<double> set = load_image_folder<double>(folder.path.string(), options);
        REQUIRE(set.images.dimensions() == Tensor<double>::Dimensions(4, 1, 8, 6));
        for (Index i = 0; i < set.images.size(); ++i)  // a constant image stays constant
            CHECK(set.images.data()[i] == Approx(100.0 / 255).margin(1e-12));
    }
    options.width = 0;
    CHECK_THROWS_AS(load_image_folder(folder.path.string(), options), ArgumentError);
}

TEST_CASE("image folder: missing folder IoError, no images FormatError naming the folder", "[images][folder][errors]") {
    TempFolder folder("empty_tree");
    CHECK_THAT(message_of<IoError>([&] { load_image_folder(folder / "absent"); }), Catch::Contains("absent"));
    fs::create_directories(folder.path / "nothing/inside");
    write_bytes(folder / "nothing/readme.txt", "text");
    CHECK_THAT(message_of<FormatError>([&] { load_image_folder(folder / "nothing"); }), Catch::Contains("nothing"));
    write_bytes(folder / "broken/a/bad.png", "not a png");
    CHECK_THAT(message_of<FormatError>([&] { load_image_folder(folder / "broken"); }), Catch::Contains("bad.png"));
}

TEST_CASE("image folder: Olivetti ORL layout, 40 subject folders of 10 faces", "[images][folder][data]") {
    const std::string root = test::shared_data_dir() + "/olivetti";
    if (test::shared_data_dir().empty() || !fs::exists(root + "/s1/1.pgm")) return test::skip("no Olivetti data at " + root);
    ImageFolderOptions options;
    options.filter = [](const std::string& path) { return path.rfind("olivetti64/", 0) != 0; };
    const ImageFolder<float> set = load_image_folder(root, options);
    REQUIRE(set.images.dimensions() == Tensor<float>::Dimensions(400, 1, 112, 92));
    REQUIRE(set.class_names.size() == 40);
    CHECK(set.class_names[0] == "s1");
    CHECK(set.class_names[1] == "s2");  // natural order: s2 before s10
    CHECK(set.class_names[9] == "s10");
    CHECK(set.class_names[39] == "s40");
    for (std::size_t i = 0; i < 400; ++i) CHECK(set.labels[i] == static_cast<int>(i / 10));  // 10 per class
    CHECK(set.paths[0] == root + "/s1/1.pgm");
    CHECK(set.paths[1] == root + "/s1/2.pgm");
    CHECK(set.paths[9] == root + "/s1/10.pgm");
    CHECK(set.paths[10] == root + "/s2/1.pgm");
    // Pixels against the file's own bytes: header "P5\n92 112\n255\n" is 14 bytes.
    const std::string raw = file_bytes(root + "/s10/3.pgm");
    const Index sample = 9 * 10 + 2;
    REQUIRE(set.paths[static_cast<std::size_t>(sample)] == root + "/s10/3.pgm");
    for (Index y : {0, 50, 111})
        for (Index x : {0, 45, 91})
            CHECK(set.images(sample, 0, y, x) ==
                  static_cast<unsigned char>(raw[static_cast<std::size_t>(14 + y * 92 + x)]) / 255.0f);
}

TEST_CASE("image folder: Olivetti 64x64 flat folder is unlabelled, values in [0, 242/255]", "[images][folder][data]") {
    const std::string root = test::shared_data_dir() + "/olivetti/olivetti64";
    if (test::shared_data_dir().empty() || !fs::exists(root)) return test::skip("no Olivetti data at " + root);
    const ImageFolder<float> set = load_image_folder(root);
    REQUIRE(set.images.dimensions() == Tensor<float>::Dimensions(400, 1, 64, 64));
    CHECK(set.class_names.empty());
    CHECK(std::all_of(set.labels.begin(), set.labels.end(), [](int label) { return label == -1; }));
    CHECK(set.paths[0] == root + "/s01_01.pgm");
    CHECK(set.paths[399] == root + "/s40_10.pgm");
    const float* begin = set.images.data();
    const float* end = begin + set.images.size();
    CHECK(*std::min_element(begin, end) == 0.0f);
    CHECK(*std::max_element(begin, end) == 242.0f / 255.0f);  // the data set's brightest pixel
}

// ---------------------------------------------------------------------------------------------
// Resizing

TEST_CASE("resize: a constant image stays constant, up and down, bilinear and bicubic", "[resize]") {
    Tensor<double> images(2, 3, 7, 5);
    images.setConstant(0.3);
    for (auto [height, width] : {std::pair<Index, Index>{11, 4}, {3, 9}, {1, 1}, {14, 10}}) {
        for (const Tensor<double>& resized : {resize_bilinear(images, height, width), resize_bicubic(images, height, width)}) {
            REQUIRE(resized.dimensions() == Tensor<double>::Dimensions(2, 3, height, width));
            for (Index i = 0; i < resized.size(); ++i) CHECK(resized.data()[i] == Approx(0.3).margin(1e-12));
        }
    }
}

TEST_CASE("resize: the same size returns the same values", "[resize]") {
    const Tensor<float> images = test::random_tensor<float>(3, {2, 6, 5}, 7, 0, 1);
    CHECK(test::max_abs_difference(resize_bilinear(images, 6, 5), images) == 0);
    CHECK(test::max_abs_difference(resize_bicubic(images, 6, 5), images) == 0);
}

TEST_CASE("resize: bilinear reproduces a linear ramp inside the image", "[resize]") {
    // x[h][w] = 2h + 3w + 1; an output pixel whose source coordinates s_h, s_w lie in
    // [0, in - 1] must equal 2 s_h + 3 s_w + 1, with s = (o + 0.5) * in / out - 0.5.
    Tensor<double> ramp(1, 1, 7, 9);
    for (Index h = 0; h < 7; ++h)
        for (Index w = 0; w < 9; ++w) ramp(0, 0, h, w) = 2.0 * h + 3.0 * w + 1;
    for (auto [height, width] : {std::pair<Index, Index>{17, 20}, {4, 5}, {7, 13}}) {
        const Tensor<double> resized = resize_bilinear(ramp, height, width);
        int checked = 0;
        for (Index oh = 0; oh < height; ++oh)
            for (Index ow = 0; ow < width; ++ow) {
                const double sh = (oh + 0.5) * 7 / height - 0.5, sw = (ow + 0.5) * 9 / width - 0.5;
                if (sh < 0 || sh > 6 || sw < 0 || sw > 8) continue;
                CHECK(resized(0, 0, oh, ow) == Approx(2 * sh + 3 * sw + 1).margin(1e-12));
                ++checked;
            }
        CHECK(checked > 0);
    }
}

TEST_CASE("resize: bilinear 2x2 -> 4x4 by hand", "[resize]") {
    // in = 2, out = 4: s = (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 -> clamped to 0 below and
    // to the last pixel above, the weights along an axis are
    //   o=0: x0;  o=1: 0.75 x0 + 0.25 x1;  o=2: 0.25 x0 + 0.75 x1;  o=3: x1.
    // Input [[0, 4], [8, 12]]: rows become [0, 1, 3, 4] and [8, 9, 11, 12]; then columns mix them
    // the same way: row 1 = 0.75 [0 1 3 4] + 0.25 [8 9 11 12] = [2 3 5 6], row 2 = [6 7 9 10].
    Tensor<float> input(1, 1, 2, 2);
    input.setValues({{{{0, 4}, {8, 12}}}});
    const Tensor<float> out = resize_bilinear(input, 4, 4);
    const float expected[4][4] = {{0, 1, 3, 4}, {2, 3, 5, 6}, {6, 7, 9, 10}, {8, 9, 11, 12}};
    for (Index y = 0; y < 4; ++y)
        for (Index x = 0; x < 4; ++x) CHECK(out(0, 0, y, x) == expected[y][x]);
}

TEST_CASE("resize: bicubic weights are Keys' kernel (a = -0.75) and sum to 1", "[resize]") {
    // t = 0: W(1) = 0, W(0) = 1, W(1) = 0, W(2) = 0.
    const auto at_zero = bicubic_weights(0.0);
    CHECK(at_zero[0] == 0.0);
    CHECK(at_zero[1] == 1.0);
    CHECK(at_zero[2] == 0.0);
    CHECK(at_zero[3] == 0.0);
    // t = 0.5: W(1.5) = a (1.5^3 - 5 * 1.5^2 + 8 * 1.5 - 4) = -0.75 * 0.125 = -0.09375;
    //          W(0.5) = (a + 2) 0.125 - (a + 3) 0.25 + 1 = 0.15625 - 0.5625 + 1 = 0.59375.
    const auto at_half = bicubic_weights(0.5);
    CHECK(at_half[0] == Approx(-0.09375));
    CHECK(at_half[1] == Approx(0.59375));
    CHECK(at_half[2] == Approx(0.59375));
    CHECK(at_half[3] == Approx(-0.09375));
    for (double t = 0; t < 1; t += 0.0625) {
        const auto w = bicubic_weights(t);
        CHECK(w[0] + w[1] + w[2] + w[3] == Approx(1.0).margin(1e-12));
    }
}

TEST_CASE("resize: bicubic matches the Keys kernel at fractional positions", "[resize]") {
    // t = 0 and 0.5 give equal outer weights, so they cannot tell the outer taps apart; t = 0.25
    // and 0.75 can. With a = -0.75, W(d) = 1.25 d^3 - 2.25 d^2 + 1 for |d| <= 1 and
    // -0.75 d^3 + 3.75 d^2 - 6 d + 3 for 1 < |d| < 2 (every value below is exact in binary):
    //   t = 0.25: W(1.25) = -0.10546875, W(0.25) = 0.87890625, W(0.75) = 0.26171875, W(1.75) = -0.03515625.
    const std::array<double, 4> quarter{-0.10546875, 0.87890625, 0.26171875, -0.03515625};
    const auto at_quarter = bicubic_weights(0.25);
    const auto at_three_quarters = bicubic_weights(0.75);  // the same weights, mirrored
    for (std::size_t k = 0; k < 4; ++k) {
        CHECK(at_quarter[k] == quarter[k]);
        CHECK(at_three_quarters[k] == quarter[3 - k]);
    }
}

TEST_CASE("resize: bicubic overshoots at an edge and is not clamped", "[resize]") {
    // A step 0 0 1 1 upscaled: Keys' negative lobes give values below 0 and above 1.
    Tensor<double> step(1, 1, 1, 4);
    step.setValues({{{{0, 0, 1, 1}}}});
    const Tensor<double> out = resize_bicubic(step, 1, 16);
    const double* begin = out.data();
    CHECK(*std::min_element(begin, begin + 16) < 0.0);
    CHECK(*std::max_element(begin, begin + 16) > 1.0);
}

TEST_CASE("resize: bad sizes are errors, results do not depend on the thread count", "[resize][errors]") {
    const Tensor<float> images = test::random_tensor<float>(5, {3, 9, 11}, 3, 0, 1);
    CHECK_THROWS_AS(resize_bilinear(images, 0, 4), ArgumentError);
    CHECK_THROWS_AS(resize_bicubic(images, 4, -1), ArgumentError);
    CHECK_THROWS_AS(resize_bilinear(Tensor<float>(1, 1, 0, 3), 2, 2), ShapeError);
    set_num_threads(1);
    const Tensor<float> one = resize_bicubic(images, 13, 6);
    set_num_threads(2);
    const Tensor<float> two = resize_bicubic(images, 13, 6);
    CHECK(test::max_abs_difference(one, two) == 0);
}

TEST_CASE("resize: bicubic 64 -> 32 of Olivetti faces stays within [-0.1, 1.1]", "[resize][data]") {
    const std::string root = test::shared_data_dir() + "/olivetti/olivetti64";
    if (test::shared_data_dir().empty() || !fs::exists(root)) return test::skip("no Olivetti data at " + root);
    const ImageFolder<float> set = load_image_folder(root);
    const Tensor<float> small = resize_bicubic(set.images, 32, 32);
    REQUIRE(small.dimensions() == Tensor<float>::Dimensions(400, 1, 32, 32));
    const float* begin = small.data();
    const float* end = begin + small.size();
    CHECK(*std::min_element(begin, end) >= -0.1f);
    CHECK(*std::max_element(begin, end) <= 1.1f);
}

// ---------------------------------------------------------------------------------------------
// Grids

TEST_CASE("image grid: size, separator pixels and image placement, scaled", "[images][grid]") {
    TempFolder folder("grid");
    // 2 rows x 3 images of 2 high x 3 wide; image (r, j) is constant (10 + 40 r + 10 j) / 255,
    // except its top-left pixel, which is 250 / 255 to check orientation.
    std::vector<Tensor<float>> rows;
    for (int r = 0; r < 2; ++r) {
        Tensor<float> batch(3, 1, 2, 3);
        for (Index j = 0; j < 3; ++j)
            for (Index y = 0; y < 2; ++y)
                for (Index x = 0; x < 3; ++x)
                    batch(j, 0, y, x) = (y == 0 && x == 0 ? 250.0f : static_cast<float>(10 + 40 * r + 10 * j)) / 255.0f;
        rows.push_back(batch);
    }
    save_image_grid(folder / "grid.png", rows, 0, 2);
    const Tensor<double> grid = load_image<double>(folder / "grid.png");
    // Height (2 rows * 2 + 1 separator) * 2 = 10; width (3 images * 3 + 2 separators) * 2 = 22.
    REQUIRE(grid.dimensions() == Tensor<double>::Dimensions(1, 1, 10, 22));
    const double separator = 128.0 / 255;  // round(0.5 * 255) = round(127.5) = 128
    for (Index Y = 0; Y < 10; ++Y)
        for (Index X = 0; X < 22; ++X) {
            const Index y = Y / 2, x = X / 2;  // unscaled grid pixel
            const bool on_separator = y % 3 == 2 || x % 4 == 3;
            double expected = separator;
            if (!on_separator) {
                const Index r = y / 3, j = x / 4, in_y = y % 3, in_x = x % 4;
                expected = (in_y == 0 && in_x == 0 ? 250.0 : 10.0 + 40.0 * r + 10.0 * j) / 255;
            }
            INFO("grid pixel " << Y << ", " << X);
            CHECK(grid(0, 0, Y, X) == expected);
        }
}

TEST_CASE("image grid: column count, short rows stay grey, RGB, shape errors", "[images][grid]") {
    TempFolder folder("grid_columns");
    Tensor<float> full(4, 3, 2, 2), short_row(1, 3, 2, 2);
    full.setConstant(1.0f);
    short_row.setConstant(0.0f);
    save_image_grid<float>(folder / "two.png", {full, short_row}, 2);
    const Tensor<double> grid = load_image<double>(folder / "two.png", 3);
    // 2 columns: width 2 * 2 + 1 = 5; 2 rows: height 2 * 2 + 1 = 5.
    REQUIRE(grid.dimensions() == Tensor<double>::Dimensions(1, 3, 5, 5));
    for (Index c = 0; c < 3; ++c) {
        CHECK(grid(0, c, 0, 0) == 1.0);             // row 0, image 0
        CHECK(grid(0, c, 1, 4) == 1.0);             // row 0, image 1
        CHECK(grid(0, c, 3, 0) == 0.0);             // row 1, image 0
        CHECK(grid(0, c, 4, 4) == 128.0 / 255);     // row 1 has no image 1: separator grey
        CHECK(grid(0, c, 2, 1) == 128.0 / 255);     // the line between the rows
    }
    CHECK_THROWS_AS(save_image_grid<float>(folder / "bad.png", {full, Tensor<float>(1, 3, 3, 2)}), ShapeError);
    CHECK_THROWS_AS(save_image_grid(folder / "bad.png", std::vector<Tensor<float>>{}), ArgumentError);
    CHECK_THROWS_AS(save_image_grid<float>(folder / "bad.png", {full}, 0, 0), ArgumentError);
    full(2, 1, 1, 1) = std::nanf("");
    CHECK_THAT(message_of<NumericError>([&] { save_image_grid<float>(folder / "nan.png", {full}); }),
               Catch::Contains("nan.png"));
}

namespace {

// `png` with the IHDR width and height replaced (and the chunk's CRC fixed, so only the size lies).
std::string png_claiming(std::string png, std::uint32_t width, std::uint32_t height) {
    const auto put_u32 = [&](std::size_t at, std::uint32_t value) {
        for (int k = 0; k < 4; ++k) png[at + k] = static_cast<char>(value >> (24 - 8 * k));
    };
    put_u32(16, width);
    put_u32(20, height);
    put_u32(29, static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17)));
    return png;
}

// `jpg` with the frame header's height and width replaced.
std::string jpg_claiming(std::string jpg, std::uint16_t width, std::uint16_t height) {
    const std::size_t frame = jpg.find("\xFF\xC0");
    REQUIRE(frame != std::string::npos);
    jpg[frame + 5] = static_cast<char>(height >> 8);
    jpg[frame + 6] = static_cast<char>(height & 0xFF);
    jpg[frame + 7] = static_cast<char>(width >> 8);
    jpg[frame + 8] = static_cast<char>(width & 0xFF);
    return jpg;
}

std::string little_endian(std::uint32_t value, int bytes) {
    std::string text;
    for (int k = 0; k < bytes; ++k) text += static_cast<char>((value >> (8 * k)) & 0xFF);
    return text;
}

}  // namespace

TEST_CASE("images: headers over the pixel limit are refused before decoding", "[images][hostile]") {
    TempFolder folder("limits");
    write_bytes(folder / "huge.png", png_claiming(constant_png(8, 8, 1), 32768, 32768));
    write_bytes(folder / "huge.jpg", jpg_claiming(encode_jpg(std::vector<unsigned char>(64, 9), 8, 8, 1), 26000, 26000));
    // A 30-byte OS/2 BMP claiming 16000 x 16000 at 24 bits.
    write_bytes(folder / "os2.bmp", "BM" + little_endian(30, 4) + little_endian(0, 4) + little_endian(26, 4) +
                                        little_endian(12, 4) + little_endian(16000, 2) + little_endian(16000, 2) +
                                        little_endian(1, 2) + little_endian(24, 2) + "\0\0\0\0"s);
    for (const char* name : {"huge.png", "huge.jpg", "os2.bmp"}) {
        INFO(name);
        CHECK_THAT(message_of<FormatError>([&] { load_image(folder / name); }), Catch::Contains(name));
    }
    CHECK_THAT(message_of<FormatError>([&] { load_image(folder / "huge.png"); }),
               Catch::Contains("32768x32768") && Catch::Contains("ImageLimits"));
    // A caller's own limits: pixels, and bytes (the file itself counts).
    write_bytes(folder / "small.png", constant_png(100, 100, 7));
    CHECK(load_image(folder / "small.png").dimension(3) == 100);
    ImageLimits few_pixels;
    few_pixels.max_pixels = 9999;
    CHECK_THROWS_AS(load_image(folder / "small.png", 1, few_pixels), FormatError);
    ImageLimits few_bytes;
    few_bytes.max_bytes = 100 * 100 * 4;
    CHECK_THROWS_AS(load_image(folder / "small.png", 1, few_bytes), FormatError);
    few_bytes.max_bytes = 16;
    CHECK_THROWS_WITH(load_image(folder / "small.png", 1, few_bytes), Catch::Contains("more than the limit of 16"));
    ImageFolderOptions options;
    options.limits = few_pixels;
    CHECK_THROWS_AS(load_image_folder(folder.path.string(), options), FormatError);
}

TEST_CASE("images: the content chooses the format and must agree with the name", "[images][hostile]") {
    TempFolder folder("sniff");
    const std::string png = constant_png(2, 3, 50);
    write_bytes(folder / "png.jpg", png);
    write_bytes(folder / "png.data", png);
    write_bytes(folder / "tga.png", std::string("\0\0\x02\0\0\0\0\0\0\0\0\0\x02\0\x02\0\x18\0"s) + std::string(12, '\x7F'));
    CHECK_THAT(message_of<FormatError>([&] { load_image(folder / "png.jpg"); }),
               Catch::Contains("png.jpg") && Catch::Contains("the content is PNG but the name says JPEG"));
    CHECK_THAT(message_of<FormatError>([&] { load_image(folder / "png.data"); }),
               Catch::Contains("no image format latent reads"));
    CHECK_THAT(message_of<FormatError>([&] { load_image(folder / "tga.png"); }), Catch::Contains("no known magic bytes"));
    ImageLimits by_content;
    by_content.check_extension = false;
    CHECK(load_image(folder / "png.jpg", 1, by_content)(0, 0, 1, 2) == 50.0f / 255);
    CHECK(load_image(folder / "png.data", 1, by_content).dimension(2) == 2);
    CHECK_THROWS_AS(load_image(folder / "tga.png", 1, by_content), FormatError);
}

TEST_CASE("images: BMP variants that stb would read past the end of are refused", "[images][hostile]") {
    TempFolder folder("bmp_variants");
    const std::string bmp = encode_bmp(std::vector<unsigned char>(4 * 4 * 3, 90), 4, 4, 3);
    std::string rle = bmp;
    rle.replace(30, 4, little_endian(1, 4));  // BI_RLE8
    write_bytes(folder / "rle.bmp", rle);
    std::string odd_header = bmp;
    odd_header.replace(14, 4, little_endian(64, 4));
    write_bytes(folder / "odd_header.bmp", odd_header);
    std::string far_offset = bmp;
    far_offset.replace(10, 4, little_endian(static_cast<std::uint32_t>(bmp.size()), 4));
    write_bytes(folder / "far_offset.bmp", far_offset);
    std::string zero_width = bmp;
    zero_width.replace(18, 4, little_endian(0, 4));
    write_bytes(folder / "zero_width.bmp", zero_width);
    write_bytes(folder / "tiny.bmp", "BM\x10\0\0\0"s);
    for (const char* name : {"rle.bmp", "odd_header.bmp", "far_offset.bmp", "zero_width.bmp", "tiny.bmp"}) {
        INFO(name);
        CHECK_THAT(message_of<FormatError>([&] { load_image(folder / name); }), Catch::Contains(name));
    }
    write_bytes(folder / "good.bmp", bmp);
    CHECK(load_image(folder / "good.bmp")(0, 0, 3, 3) == 90.0f / 255);
}

TEST_CASE("images: decoder errors are FormatErrors with the decoder's reason", "[images][hostile]") {
    TempFolder folder("reasons");
    std::string png = constant_png(8, 8, 3);
    png[40] = static_cast<char>(png[40] ^ 0x55);  // inside IDAT: its CRC no longer matches
    write_bytes(folder / "bad_crc.png", png);
    write_bytes(folder / "magic_only.png", "\x89PNG\r\n\x1a\n"s);
    std::string jpg = encode_jpg(std::vector<unsigned char>(64 * 64, 90), 64, 64, 1);
    jpg.erase(jpg.size() - 2);  // no end-of-image marker: libjpeg only warns, latent refuses
    write_bytes(folder / "no_eoi.jpg", jpg);
    for (const char* name : {"bad_crc.png", "magic_only.png", "no_eoi.jpg"}) {
        INFO(name);
        const std::string message = message_of<FormatError>([&] { load_image(folder / name); });
        CHECK_THAT(message, Catch::Contains(name) && Catch::Contains("cannot decode"));
    }
}
