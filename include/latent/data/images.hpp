// Reading images: one file into a (1, C, H, W) tensor, or a folder tree into a labelled batch.
// Values are scaled to [0, 1] (8-bit samples / 255, 16-bit / 65535, PGM/PPM / maxval).
//
// Formats: PNG (libpng), JPEG (libjpeg-turbo), binary PGM/PPM (parsed here) and uncompressed BMP
// (stb_image after a header check); image_decoders.hpp says which checks each gets. Any other
// content is a FormatError. Files are treated as untrusted (image_format.hpp): the format comes
// from the content and must match the name's ending, and the header's size is checked against
// ImageLimits (64 megapixels, 2 GiB by default) before anything is decoded.
//
// Linking. latent::latent links libpng, libjpeg and Debian's libstb (pkg-config "stb"), which
// holds stb's compiled code once per program: latent includes <stb_image.h> and
// <stb_image_write.h> WITHOUT STB_IMAGE_IMPLEMENTATION, so any number of translation units -- and
// the user's own stb code -- can include latent's image headers. Without CMake, link -lpng -ljpeg
// -lstb; without libstb, define STB_IMAGE_IMPLEMENTATION and STB_IMAGE_WRITE_IMPLEMENTATION
// before including <stb_image.h> and <stb_image_write.h> in exactly one .cpp file of the program
// (and do not link libstb as well). stb's global switches, such as
// stbi_set_flip_vertically_on_load, apply to latent's BMP reads too: leave them at their defaults.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "image_decoders.hpp"
#include "image_format.hpp"
#include "resize.hpp"

namespace latent {

// One image file as a (1, channels, H, W) tensor with values in [0, 1] (sample / 255; / 65535 for
// 16-bit files; / maxval for PGM/PPM). channels = 1 gives grey (colour converted with stb's
// luminance, (77 R + 150 G + 29 B) >> 8), channels = 3 gives RGB (grey replicated); alpha is
// dropped. IoError when the file cannot be read; FormatError naming the file when it is not an
// image latent reads, its name names another format, it exceeds `limits`, or it cannot be
// decoded (truncated or corrupt).
template <class T = float> Tensor<T> load_image(const std::string& path, int channels, const ImageLimits& limits) {
    detail::require(channels == 1 || channels == 3, "load_image",
                    "channels must be 1 (grey) or 3 (RGB), got " + std::to_string(channels));
    const std::vector<char> bytes = read_file(path, limits.max_bytes);
    if (bytes.empty()) throw FormatError("load_image: '" + path + "': image file is empty");
    const detail::PixelBudget budget{limits.max_pixels, limits.max_bytes, bytes.size(),
                                     static_cast<std::uint64_t>(channels), sizeof(T)};
    detail::DecodedPixels pixels;
    switch (detail::choose_image_format(bytes, path, limits)) {
        case ImageFormat::Png: pixels = detail::decode_png(bytes, channels, path, budget); break;
        case ImageFormat::Jpeg: pixels = detail::decode_jpeg(bytes, channels, path, budget); break;
        case ImageFormat::Bmp: pixels = detail::decode_bmp(bytes, channels, path, budget); break;
        default: pixels = detail::decode_pnm(bytes, channels, path, budget); break;  // PGM/PPM
    }
    Tensor<T> image(1, channels, pixels.height, pixels.width);
    const T scale = static_cast<T>(pixels.max_value);
    for (int c = 0; c < channels; ++c)
        for (Index y = 0; y < pixels.height; ++y)
            for (Index x = 0; x < pixels.width; ++x)
                image(0, c, y, x) = static_cast<T>(pixels.samples[(y * pixels.width + x) * channels + c]) / scale;
    return image;
}

// load_image with the default ImageLimits.
template <class T = float> Tensor<T> load_image(const std::string& path, int channels = 1) {
    return load_image<T>(path, channels, ImageLimits());
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
    ImageLimits limits;  // applied to each file
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

// Checks the ImageFolderOptions that load_image_folder and stream_image_folder share.
inline void check_image_folder_options(const char* where, const ImageFolderOptions& options) {
    require(options.channels == 1 || options.channels == 3, where,
            "channels must be 1 (grey) or 3 (RGB), got " + std::to_string(options.channels));
    require(options.height >= 0 && options.width >= 0 && (options.height == 0) == (options.width == 0), where,
            "height and width must both be 0 (keep) or both be positive, got " + std::to_string(options.height) +
                " and " + std::to_string(options.width));
}

// One image of a folder as `options` say: decoded, then resized when height and width are set.
template <class T> Tensor<T> read_folder_image(const std::string& path, const ImageFolderOptions& options) {
    Tensor<T> image = load_image<T>(path, options.channels, options.limits);
    if (options.height > 0) image = latent::resize(image, options.height, options.width, options.resize);
    return image;
}

// ShapeError unless `image` (read from `path`) has the shape of the folder's first image.
template <class T>
void require_folder_image_shape(const char* where, const Tensor<T>& image, const std::string& path, const Shape& shape,
                                const std::string& first_path) {
    if (sample_shape(image) == shape) return;
    throw ShapeError(std::string(where) + ": '" + path + "' is " + std::to_string(image.dimension(2)) + "x" +
                     std::to_string(image.dimension(3)) + " (height x width) but '" + first_path + "' is " +
                     std::to_string(shape.height) + "x" + std::to_string(shape.width) +
                     "; set ImageFolderOptions height and width to resize them all");
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
    detail::check_image_folder_options(where, options);
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

    auto read = [&](std::size_t i) { return detail::read_folder_image<T>(result.paths[i], options); };
    const Tensor<T> first = read(0);
    const Shape shape = sample_shape(first);
    const Index count = static_cast<Index>(files.size());
    checked_product({count, shape.size()}, "load_image_folder: the batch (images x values)");
    result.images = Tensor<T>(count, shape.channels, shape.height, shape.width);
    std::copy(first.data(), first.data() + shape.size(), result.images.data());

    // Each file writes only its own sample; errors are kept per file and the first one in file
    // order is reported, so the message does not depend on the thread count.
    std::vector<std::exception_ptr> errors(files.size());
    parallel_for(count - 1, [&](Index k) {
        const std::size_t i = static_cast<std::size_t>(k + 1);
        try {
            const Tensor<T> image = read(i);
            detail::require_folder_image_shape(where, image, result.paths[i], shape, result.paths[0]);
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
