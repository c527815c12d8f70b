// Reading images: one file into a (1, C, H, W) tensor, or a folder tree into a labelled batch.
// Values are scaled to [0, 1] (8-bit samples / 255).
//
// Decoding uses stb_image (PNG, JPEG, BMP, TGA, GIF's first frame, PSD, HDR, PIC); binary
// PGM/PPM ("P5"/"P6") are parsed here, because stb's PNM reader neither notices a truncated file
// nor byte-swaps 16-bit samples, and PGM is the format of common face data sets. Truncated or
// corrupt PNG, JPEG, PGM/PPM and uncompressed BMP files give FormatError; stb does not notice
// a truncated TGA (it reads zeros past the end), so prefer the formats above.
//
// How stb is linked. latent includes <stb_image.h> and <stb_image_write.h> WITHOUT defining
// STB_IMAGE_IMPLEMENTATION or STB_IMAGE_WRITE_IMPLEMENTATION: it only declares stb's functions.
// Their compiled code comes from a library, Debian's libstb (pkg-config module "stb", -lstb),
// which the CMake target latent::latent links. So any number of translation units can include
// latent's image headers, and a program can also call stb itself, without duplicate symbols.
// Without libstb, put stb_image.h and stb_image_write.h on the include path and, in exactly one
// .cpp file of the program, write
//     #define STB_IMAGE_IMPLEMENTATION
//     #define STB_IMAGE_WRITE_IMPLEMENTATION
//     #include <stb_image.h>
//     #include <stb_image_write.h>
// (and do not link libstb as well). stb's global switches, such as
// stbi_set_flip_vertically_on_load, apply to latent's reads too: leave them at their defaults.
#pragma once

#include <stb_image.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "resize.hpp"

namespace latent {
namespace detail {

// Decoded pixels, interleaved (row by row, `channels` samples per pixel), before scaling.
struct DecodedPixels {
    Index width = 0;
    Index height = 0;
    int channels = 0;               // as requested: 1 or 3
    std::vector<unsigned> samples;  // width * height * channels
    double max_value = 255;         // the sample value that maps to 1.0
};

// stb's luminance for RGB -> grey, (77 r + 150 g + 29 b) >> 8, so PNM and stb files agree.
inline unsigned luminance(unsigned red, unsigned green, unsigned blue) {
    return (red * 77 + green * 150 + blue * 29) >> 8;
}

inline bool is_binary_pnm(const std::vector<char>& bytes) {
    return bytes.size() >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6');
}

// Reads one PNM header number: skips whitespace and '#' comments to the end of their line.
inline Index pnm_header_number(const std::vector<char>& bytes, std::size_t& at, const std::string& path,
                               const char* what) {
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
    while (at < bytes.size() && (is_space(bytes[at]) || bytes[at] == '#')) {
        if (bytes[at] == '#')
            while (at < bytes.size() && bytes[at] != '\n' && bytes[at] != '\r') ++at;
        else
            ++at;
    }
    Index value = 0;
    const std::size_t first = at;
    while (at < bytes.size() && bytes[at] >= '0' && bytes[at] <= '9') {
        value = value * 10 + (bytes[at] - '0');
        if (value > (Index{1} << 24)) throw FormatError("load_image: '" + path + "': PNM " + what + " is too large");
        ++at;
    }
    if (at == first) throw FormatError("load_image: '" + path + "': PNM header has no valid " + what);
    return value;
}

// Binary PGM (P5, grey) or PPM (P6, RGB), 8-bit (maxval <= 255) or 16-bit big-endian samples.
inline DecodedPixels decode_pnm(const std::vector<char>& bytes, int channels, const std::string& path) {
    const int file_channels = bytes[1] == '6' ? 3 : 1;
    std::size_t at = 2;
    const Index width = pnm_header_number(bytes, at, path, "width");
    const Index height = pnm_header_number(bytes, at, path, "height");
    const Index max_value = pnm_header_number(bytes, at, path, "maxval");
    if (width < 1 || height < 1) throw FormatError("load_image: '" + path + "': PNM image has no pixels");
    if (max_value < 1 || max_value > 65535)
        throw FormatError("load_image: '" + path + "': PNM maxval " + std::to_string(max_value) + " is outside 1..65535");
    if (at >= bytes.size()) throw FormatError("load_image: '" + path + "': PNM file ends after its header");
    if (bytes[at] != ' ' && bytes[at] != '\t' && bytes[at] != '\n' && bytes[at] != '\r')
        throw FormatError("load_image: '" + path + "': PNM header is not followed by whitespace");
    ++at;  // the single whitespace character between header and pixels
    const std::size_t sample_bytes = max_value > 255 ? 2 : 1;
    const std::size_t sample_count = static_cast<std::size_t>(width * height) * file_channels;
    if (bytes.size() - at < sample_count * sample_bytes)
        throw FormatError("load_image: '" + path + "': PNM file is truncated: " + std::to_string(width) + "x" +
                          std::to_string(height) + " needs " + std::to_string(sample_count * sample_bytes) +
                          " pixel bytes, found " + std::to_string(bytes.size() - at));
    auto sample = [&](std::size_t i) {
        const auto byte = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(bytes[k])); };
        const unsigned value = sample_bytes == 1 ? byte(at + i) : (byte(at + 2 * i) << 8) | byte(at + 2 * i + 1);
        if (value > static_cast<unsigned>(max_value))
            throw FormatError("load_image: '" + path + "': PNM sample " + std::to_string(value) + " exceeds maxval " +
                              std::to_string(max_value));
        return value;
    };
    DecodedPixels pixels{width, height, channels, std::vector<unsigned>(static_cast<std::size_t>(width * height) * channels),
                         static_cast<double>(max_value)};
    const std::size_t pixel_count = static_cast<std::size_t>(width * height);
    for (std::size_t p = 0; p < pixel_count; ++p) {
        if (file_channels == channels) {
            for (int c = 0; c < channels; ++c) pixels.samples[p * channels + c] = sample(p * channels + c);
        } else if (channels == 1) {
            pixels.samples[p] = luminance(sample(3 * p), sample(3 * p + 1), sample(3 * p + 2));
        } else {
            const unsigned grey = sample(p);
            for (int c = 0; c < 3; ++c) pixels.samples[p * 3 + c] = grey;
        }
    }
    return pixels;
}

inline std::uint32_t little_endian_u32(const std::vector<char>& bytes, std::size_t at) {
    std::uint32_t value = 0;
    for (std::size_t k = 0; k < 4; ++k) value |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + k])) << (8 * k);
    return value;
}

// stb reads past the end of a BMP as zeros instead of failing, so an uncompressed BMP's pixel
// data length (rows padded to 4 bytes) is checked against the file size first.
inline void check_bmp_length(const std::vector<char>& bytes, const std::string& path) {
    if (bytes.size() < 34 || bytes[0] != 'B' || bytes[1] != 'M') return;  // stb reports it
    const std::uint32_t header_size = little_endian_u32(bytes, 14);
    const std::uint32_t compression = little_endian_u32(bytes, 30);
    if (header_size < 40 || (compression != 0 && compression != 3)) return;  // OS/2 or RLE: stb's checks
    const long long width = static_cast<std::int32_t>(little_endian_u32(bytes, 18));
    const long long height = static_cast<std::int32_t>(little_endian_u32(bytes, 22));
    const long long bits = static_cast<unsigned char>(bytes[28]) | (static_cast<unsigned char>(bytes[29]) << 8);
    const long long row_bytes = (std::llabs(width) * bits + 31) / 32 * 4;
    const long long needed = static_cast<long long>(little_endian_u32(bytes, 10)) + row_bytes * std::llabs(height);
    if (static_cast<long long>(bytes.size()) < needed)
        throw FormatError("load_image: '" + path + "': BMP file is truncated: needs " + std::to_string(needed) +
                          " bytes, has " + std::to_string(bytes.size()));
}

// Everything else through stb; 16-bit PNGs keep their 16 bits.
inline DecodedPixels decode_with_stb(const std::vector<char>& bytes, int channels, const std::string& path) {
    if (bytes.size() > static_cast<std::size_t>(INT_MAX))
        throw FormatError("load_image: '" + path + "': file is too large to decode (over 2 GiB)");
    check_bmp_length(bytes, path);
    const auto* buffer = reinterpret_cast<const stbi_uc*>(bytes.data());
    const int length = static_cast<int>(bytes.size());
    const bool sixteen_bit = stbi_is_16_bit_from_memory(buffer, length) != 0;
    int width = 0, height = 0, file_channels = 0;
    void* data = sixteen_bit
                     ? static_cast<void*>(stbi_load_16_from_memory(buffer, length, &width, &height, &file_channels, channels))
                     : static_cast<void*>(stbi_load_from_memory(buffer, length, &width, &height, &file_channels, channels));
    if (data == nullptr)
        throw FormatError("load_image: '" + path + "': cannot decode image: " + std::string(stbi_failure_reason()));
    const std::unique_ptr<void, void (*)(void*)> owner(data, stbi_image_free);
    const std::size_t count = static_cast<std::size_t>(width) * height * channels;
    DecodedPixels pixels{width, height, channels, std::vector<unsigned>(count), sixteen_bit ? 65535.0 : 255.0};
    for (std::size_t i = 0; i < count; ++i)
        pixels.samples[i] = sixteen_bit ? static_cast<const stbi_us*>(data)[i] : static_cast<const stbi_uc*>(data)[i];
    return pixels;
}

}  // namespace detail

// One image file as a (1, channels, H, W) tensor with values in [0, 1] (sample / 255; / 65535 for
// 16-bit files; / maxval for PGM/PPM). channels = 1 gives grey (colour converted with stb's
// luminance, (77 R + 150 G + 29 B) >> 8), channels = 3 gives RGB (grey replicated).
// IoError when the file cannot be read; FormatError naming the file when it cannot be decoded.
template <class T = float> Tensor<T> load_image(const std::string& path, int channels = 1) {
    detail::require(channels == 1 || channels == 3, "load_image",
                    "channels must be 1 (grey) or 3 (RGB), got " + std::to_string(channels));
    const std::vector<char> bytes = read_file(path);
    if (bytes.empty()) throw FormatError("load_image: '" + path + "': image file is empty");
    const detail::DecodedPixels pixels = detail::is_binary_pnm(bytes) ? detail::decode_pnm(bytes, channels, path)
                                                                       : detail::decode_with_stb(bytes, channels, path);
    Tensor<T> image(1, channels, pixels.height, pixels.width);
    const T scale = static_cast<T>(pixels.max_value);
    for (int c = 0; c < channels; ++c)
        for (Index y = 0; y < pixels.height; ++y)
            for (Index x = 0; x < pixels.width; ++x)
                image(0, c, y, x) = static_cast<T>(pixels.samples[(y * pixels.width + x) * channels + c]) / scale;
    return image;
}

// How load_image_folder reads a folder tree.
struct ImageFolderOptions {
    int channels = 1;  // 1 = grey, 3 = RGB
    // Target size; 0 and 0 keep every image's own size, which must then be the same for all.
    Index height = 0;
    Index width = 0;
    Resize resize = Resize::Bilinear;  // used when height and width are set
    // File name endings read (compared case-insensitively); other files are ignored.
    std::vector<std::string> extensions{".pgm", ".png", ".jpg", ".jpeg", ".bmp"};
    // Optional: only files whose path relative to the folder ('/'-separated, e.g. "s1/3.pgm")
    // passes this test are read. Empty = every image file.
    std::function<bool(const std::string& relative_path)> filter;
};

// A labelled batch read from a folder tree.
template <class T = float> struct ImageFolder {
    Tensor<T> images;                      // (N, C, H, W), values in [0, 1] (bicubic may overshoot)
    std::vector<int> labels;               // N entries: index into class_names, or -1
    std::vector<std::string> class_names;  // first-level sub-folders that hold images
    std::vector<std::string> paths;        // N entries: folder + relative path of each image

    Index size() const { return images.dimension(0); }
};

namespace detail {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Natural order: runs of digits compare as numbers ("s2" < "s10", "2.pgm" < "10.pgm"), other
// characters by byte value. Names equal as numbers ("01" and "1") fall back to byte order, so
// the order is total and the same on every platform.
inline bool natural_less(const std::string& a, const std::string& b) {
    std::size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (is_digit(a[i]) && is_digit(b[j])) {
            std::size_t a_end = i, b_end = j;
            while (a_end < a.size() && is_digit(a[a_end])) ++a_end;
            while (b_end < b.size() && is_digit(b[b_end])) ++b_end;
            while (i + 1 < a_end && a[i] == '0') ++i;  // leading zeros do not change the number
            while (j + 1 < b_end && b[j] == '0') ++j;
            if (a_end - i != b_end - j) return a_end - i < b_end - j;  // fewer digits = smaller
            const int order = a.compare(i, a_end - i, b, j, b_end - j);
            if (order != 0) return order < 0;
            i = a_end;
            j = b_end;
        } else {
            if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
            ++i;
            ++j;
        }
    }
    if (i < a.size() || j < b.size()) return j < b.size();  // a proper prefix comes first
    return a < b;
}

// Relative paths in natural order, folder by folder ("s2/10.pgm" < "s10/1.pgm").
inline bool natural_path_less(const std::filesystem::path& a, const std::filesystem::path& b) {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](const std::filesystem::path& x, const std::filesystem::path& y) {
                                            return natural_less(x.string(), y.string());
                                        });
}

inline std::string lower_case(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

inline bool has_extension(const std::string& name, const std::vector<std::string>& extensions) {
    const std::string lower = lower_case(name);
    return std::any_of(extensions.begin(), extensions.end(), [&](const std::string& extension) {
        const std::string wanted = lower_case(extension);
        return lower.size() > wanted.size() && lower.compare(lower.size() - wanted.size(), wanted.size(), wanted) == 0;
    });
}

// Image files under `folder`, relative to it, in natural order. Hidden entries (names starting
// with '.') are skipped, and so are symbolic links to folders (they could form cycles).
inline std::vector<std::filesystem::path> list_image_files(const std::string& folder, const ImageFolderOptions& options) {
    namespace fs = std::filesystem;
    const char* where = "load_image_folder";
    std::error_code error;
    if (!fs::exists(folder, error)) throw IoError(std::string(where) + ": folder '" + folder + "' does not exist");
    if (!fs::is_directory(folder, error)) throw IoError(std::string(where) + ": '" + folder + "' is not a folder");
    std::vector<fs::path> files;
    fs::recursive_directory_iterator entry(folder, fs::directory_options::none, error), end;
    for (; !error && entry != end; entry.increment(error)) {
        const std::string name = entry->path().filename().string();
        if (!name.empty() && name[0] == '.') {
            if (entry->is_directory(error)) entry.disable_recursion_pending();
            continue;
        }
        if (!entry->is_regular_file(error) || !has_extension(name, options.extensions)) continue;
        const fs::path relative = entry->path().lexically_relative(folder);
        if (options.filter && !options.filter(relative.generic_string())) continue;
        files.push_back(relative);
    }
    if (error) throw IoError(std::string(where) + ": cannot list '" + folder + "': " + error.message());
    std::sort(files.begin(), files.end(), natural_path_less);
    return files;
}

}  // namespace detail

// Reads every image under `folder` (recursively) into one batch.
// - Files: names ending in options.extensions (case-insensitive), hidden names skipped, sorted
//   in natural order folder by folder: "s2" before "s10", "2.pgm" before "10.pgm".
// - Labels: an image in a first-level sub-folder gets that sub-folder's class: its index in
//   class_names, the naturally sorted names of the sub-folders holding at least one image
//   (deeper folders belong to their first-level one). Images directly in `folder` get -1, so
//   a flat folder is an unlabelled set with no class_names.
// - Size: with options.height and width both 0 every image must have the size of the first one
//   (ShapeError naming the first file that differs); otherwise each image is resized to them.
// IoError for a missing folder; FormatError naming the folder when it holds no images, or
// naming the file that cannot be decoded. Files are decoded on latent's threads.
template <class T = float>
ImageFolder<T> load_image_folder(const std::string& folder, const ImageFolderOptions& options = ImageFolderOptions()) {
    const char* where = "load_image_folder";
    detail::require(options.channels == 1 || options.channels == 3, where,
                    "channels must be 1 (grey) or 3 (RGB), got " + std::to_string(options.channels));
    detail::require(options.height >= 0 && options.width >= 0 && (options.height == 0) == (options.width == 0), where,
                    "height and width must both be 0 (keep) or both be positive, got " +
                        std::to_string(options.height) + " and " + std::to_string(options.width));
    const std::vector<std::filesystem::path> files = detail::list_image_files(folder, options);
    if (files.empty()) throw FormatError(std::string(where) + ": no image files in '" + folder + "'");

    ImageFolder<T> result;
    std::map<std::string, int, decltype(&detail::natural_less)> classes(&detail::natural_less);
    for (const auto& file : files) {
        result.paths.push_back((std::filesystem::path(folder) / file).string());
        if (std::distance(file.begin(), file.end()) > 1) classes.emplace(file.begin()->string(), 0);
    }
    for (auto& [name, label] : classes) {
        label = static_cast<int>(result.class_names.size());
        result.class_names.push_back(name);
    }
    for (const auto& file : files)
        result.labels.push_back(std::distance(file.begin(), file.end()) > 1 ? classes.at(file.begin()->string()) : -1);

    const bool resizing = options.height > 0;
    auto read = [&](std::size_t i) {
        Tensor<T> image = load_image<T>(result.paths[i], options.channels);
        if (resizing) image = latent::resize(image, options.height, options.width, options.resize);
        return image;
    };
    const Tensor<T> first = read(0);
    const Shape shape = sample_shape(first);
    const Index count = static_cast<Index>(files.size());
    result.images = Tensor<T>(count, shape.channels, shape.height, shape.width);
    std::copy(first.data(), first.data() + shape.size(), result.images.data());

    // Each file writes only its own sample; errors are kept per file and the first one in file
    // order is reported, so the message does not depend on the thread count.
    std::vector<std::exception_ptr> errors(files.size());
    parallel_for(count - 1, [&](Index k) {
        const std::size_t i = static_cast<std::size_t>(k + 1);
        try {
            const Tensor<T> image = read(i);
            if (sample_shape(image) != shape)
                throw ShapeError(std::string(where) + ": '" + result.paths[i] + "' is " +
                                 std::to_string(image.dimension(2)) + "x" + std::to_string(image.dimension(3)) +
                                 " (height x width) but '" + result.paths[0] + "' is " + std::to_string(shape.height) +
                                 "x" + std::to_string(shape.width) +
                                 "; set ImageFolderOptions height and width to resize them all");
            std::copy(image.data(), image.data() + shape.size(), result.images.data() + (k + 1) * shape.size());
        } catch (...) {
            errors[i] = std::current_exception();
        }
    });
    for (const auto& error : errors)
        if (error) std::rethrow_exception(error);
    return result;
}

}  // namespace latent
