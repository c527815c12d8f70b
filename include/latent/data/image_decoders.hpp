// Image decoders, one per format latent reads, each checking the header against a PixelBudget
// before it allocates pixels:
//   PNG      libpng (maintained and fuzzed upstream); 16-bit files keep their 16 bits
//   JPEG     libjpeg-turbo (the same); a file the library only warns about -- truncated data,
//            extraneous bytes -- is refused, and so is a progressive file of over 256 scans
//   PGM/PPM  binary "P5"/"P6", parsed here (8- or 16-bit samples, any maxval)
//   BMP      stb_image, after image_format.hpp has checked the header and the length
// libpng and libjpeg report errors by longjmp. The functions that call them hold only plain C
// data in their frames (no object with a destructor), so a longjmp out of the library skips no
// C++ cleanup; their buffers are malloc'ed into a result struct that the caller frees.
#pragma once

#include <jpeglib.h>
#include <png.h>
#include <stb_image.h>

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "image_format.hpp"

namespace latent {
namespace detail {

// Decoded pixels, interleaved (row by row, `channels` samples per pixel), before scaling.
struct DecodedPixels {
    Index width = 0;
    Index height = 0;
    int channels = 0;                    // as requested: 1 or 3
    std::vector<std::uint16_t> samples;  // width * height * channels
    double max_value = 255;              // the sample value that maps to 1.0
};

// stb's luminance for RGB -> grey, (77 r + 150 g + 29 b) >> 8, used for every format.
inline unsigned luminance(unsigned red, unsigned green, unsigned blue) {
    return (red * 77 + green * 150 + blue * 29) >> 8;
}

// `pixels` interleaved samples of `from` channels (1 or 3) as `to` channels (1 or 3): colour to
// grey by luminance, grey to colour by repetition.
template <class Sample>
void convert_channels(const Sample* in, std::size_t pixels, int from, int to, std::vector<std::uint16_t>& out) {
    out.resize(pixels * static_cast<std::size_t>(to));
    for (std::size_t p = 0; p < pixels; ++p) {
        const Sample* pixel = in + p * static_cast<std::size_t>(from);
        if (from == to) {
            for (int c = 0; c < to; ++c) out[p * to + c] = pixel[c];
        } else if (to == 1) {
            out[p] = static_cast<std::uint16_t>(luminance(pixel[0], pixel[1], pixel[2]));
        } else {
            for (int c = 0; c < 3; ++c) out[p * 3 + c] = pixel[0];
        }
    }
}

inline std::string image_error(const std::string& path, const std::string& what) {
    return "load_image: '" + path + "': " + what;
}

// ---- PGM/PPM --------------------------------------------------------------------------------

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
        if (value > (Index{1} << 24)) throw FormatError(image_error(path, std::string("PNM ") + what + " is too large"));
        ++at;
    }
    if (at == first) throw FormatError(image_error(path, std::string("PNM header has no valid ") + what));
    return value;
}

// Binary PGM (P5, grey) or PPM (P6, RGB), 8-bit (maxval <= 255) or 16-bit big-endian samples.
inline DecodedPixels decode_pnm(const std::vector<char>& bytes, int channels, const std::string& path,
                                const PixelBudget& budget) {
    const int file_channels = bytes[1] == '6' ? 3 : 1;
    std::size_t at = 2;
    const Index width = pnm_header_number(bytes, at, path, "width");
    const Index height = pnm_header_number(bytes, at, path, "height");
    const Index max_value = pnm_header_number(bytes, at, path, "maxval");
    if (width < 1 || height < 1) throw FormatError(image_error(path, "PNM image has no pixels"));
    if (max_value < 1 || max_value > 65535)
        throw FormatError(image_error(path, "PNM maxval " + std::to_string(max_value) + " is outside 1..65535"));
    if (at >= bytes.size()) throw FormatError(image_error(path, "PNM file ends after its header"));
    if (bytes[at] != ' ' && bytes[at] != '\t' && bytes[at] != '\n' && bytes[at] != '\r')
        throw FormatError(image_error(path, "PNM header is not followed by whitespace"));
    ++at;  // the single whitespace character between header and pixels
    const std::size_t sample_bytes = max_value > 255 ? 2 : 1;
    budget.require(path, static_cast<std::uint64_t>(width), static_cast<std::uint64_t>(height),
                   static_cast<unsigned>(file_channels), 2);
    const std::size_t pixel_count = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
    const std::size_t sample_count = pixel_count * file_channels;
    if ((bytes.size() - at) / sample_bytes < sample_count)
        throw FormatError(image_error(path, "PNM file is truncated: " + std::to_string(width) + "x" +
                                                std::to_string(height) + " needs " +
                                                std::to_string(sample_count * sample_bytes) + " pixel bytes, found " +
                                                std::to_string(bytes.size() - at)));
    std::vector<std::uint16_t> file_samples(sample_count);
    const auto byte = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(bytes[k])); };
    for (std::size_t i = 0; i < sample_count; ++i) {
        const unsigned value = sample_bytes == 1 ? byte(at + i) : (byte(at + 2 * i) << 8) | byte(at + 2 * i + 1);
        if (value > static_cast<unsigned>(max_value))
            throw FormatError(image_error(path, "PNM sample " + std::to_string(value) + " exceeds maxval " +
                                                    std::to_string(max_value)));
        file_samples[i] = static_cast<std::uint16_t>(value);
    }
    DecodedPixels pixels{width, height, channels, {}, static_cast<double>(max_value)};
    convert_channels(file_samples.data(), pixel_count, file_channels, channels, pixels.samples);
    return pixels;
}

// ---- what the C decoders hand back ------------------------------------------------------------

// A decoder's result: malloc'ed interleaved samples (freed by the destructor), or a message.
struct RawImage {
    std::uint32_t width = 0, height = 0;
    int channels = 0;      // samples per pixel: 1 or 3
    int sample_bytes = 1;  // 1, or 2 for 16-bit samples in host order
    unsigned char* pixels = nullptr;
    void* rows = nullptr;  // scratch row pointers
    bool over_budget = false;
    char message[JMSG_LENGTH_MAX > 256 ? JMSG_LENGTH_MAX : 256] = {};
};

struct RawImageDeleter {
    void operator()(RawImage* image) const {
        std::free(image->pixels);
        std::free(image->rows);
        delete image;
    }
};
using RawImagePointer = std::unique_ptr<RawImage, RawImageDeleter>;

inline void copy_message(RawImage& image, const char* message) {
    std::snprintf(image.message, sizeof image.message, "%s", message ? message : "unknown error");
}

// Pixels of a decoded RawImage, converted to `channels`.
inline DecodedPixels pixels_of(const RawImage& image, int channels) {
    DecodedPixels pixels{image.width, image.height, channels, {}, image.sample_bytes == 2 ? 65535.0 : 255.0};
    const std::size_t count = static_cast<std::size_t>(image.width) * image.height;
    if (image.sample_bytes == 2)
        convert_channels(reinterpret_cast<const std::uint16_t*>(image.pixels), count, image.channels, channels,
                         pixels.samples);
    else
        convert_channels(image.pixels, count, image.channels, channels, pixels.samples);
    return pixels;
}

inline bool host_is_little_endian_for_images() {
    const std::uint16_t one = 1;
    unsigned char first = 0;
    std::memcpy(&first, &one, 1);
    return first == 1;
}

// ---- PNG --------------------------------------------------------------------------------------

struct PngSource {
    const unsigned char* data;
    std::size_t size;
    std::size_t at;
    RawImage* image;
};

extern "C" inline void latent_png_read(png_structp png, png_bytep out, png_size_t count) {
    auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
    if (source->size - source->at < count) png_error(png, "the file ends inside the image data (truncated)");
    std::memcpy(out, source->data + source->at, count);
    source->at += count;
}

extern "C" inline void latent_png_error(png_structp png, png_const_charp message) {
    copy_message(*static_cast<PngSource*>(png_get_error_ptr(png))->image, message);
    png_longjmp(png, 1);
}

extern "C" inline void latent_png_warning(png_structp, png_const_charp) {}

// Sets libpng's transformations to 8- or 16-bit grey or RGB without alpha.
inline void request_grey_or_rgb(png_structp png, png_infop info) {
    const int colour = png_get_color_type(png, info);
    const int depth = png_get_bit_depth(png, info);
    if (colour == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (colour == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (colour & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (depth == 16 && host_is_little_endian_for_images()) png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

// Decodes a PNG into `image`; false with image.message (or image.over_budget) set on failure.
inline bool decode_png_raw(PngSource& source, const PixelBudget& budget) {
    RawImage& image = *source.image;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, latent_png_error, latent_png_warning);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (png == nullptr || info == nullptr) {
        png_destroy_read_struct(&png, &info, nullptr);
        copy_message(image, "out of memory");
        return false;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    png_set_read_fn(png, &source, latent_png_read);
    const std::uint64_t longest = budget.max_pixels < 0x7fffffff ? budget.max_pixels : 0x7fffffff;
    png_set_user_limits(png, static_cast<png_uint_32>(longest), static_cast<png_uint_32>(longest));
    png_read_info(png, info);
    image.width = png_get_image_width(png, info);
    image.height = png_get_image_height(png, info);
    request_grey_or_rgb(png, info);
    image.channels = png_get_channels(png, info);
    image.sample_bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    if (!budget.allows(image.width, image.height, static_cast<unsigned>(image.channels), image.sample_bytes)) {
        image.over_budget = true;
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    const std::size_t row_bytes = png_get_rowbytes(png, info);
    image.pixels = static_cast<unsigned char*>(std::malloc(row_bytes * image.height));
    image.rows = std::malloc(sizeof(png_bytep) * image.height);
    if (image.pixels == nullptr || image.rows == nullptr) png_error(png, "out of memory");
    auto** rows = static_cast<png_bytep*>(image.rows);
    for (std::uint32_t y = 0; y < image.height; ++y) rows[y] = image.pixels + y * row_bytes;
    png_read_image(png, rows);
    png_read_end(png, nullptr);
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
}

inline DecodedPixels decode_png(const std::vector<char>& bytes, int channels, const std::string& path,
                                const PixelBudget& budget) {
    const RawImagePointer image(new RawImage);
    PngSource source{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0, image.get()};
    if (!decode_png_raw(source, budget)) {
        if (image->over_budget) budget.refuse(path, image->width, image->height, image->channels, image->sample_bytes);
        throw FormatError(image_error(path, std::string("cannot decode PNG: ") + image->message));
    }
    return pixels_of(*image, channels);
}

// ---- JPEG -------------------------------------------------------------------------------------

constexpr int jpeg_max_scans = 256;

// libjpeg's error manager first, so that the pointer libjpeg hands back finds the rest.
struct JpegErrors {
    jpeg_error_mgr manager;
    std::jmp_buf jump;
    RawImage* image;
};

extern "C" inline void latent_jpeg_error_exit(j_common_ptr info) {
    auto* errors = reinterpret_cast<JpegErrors*>(info->err);
    char text[JMSG_LENGTH_MAX];
    (*info->err->format_message)(info, text);
    copy_message(*errors->image, text);
    std::longjmp(errors->jump, 1);
}

// Warnings (level -1: corrupt or truncated data) are errors for an untrusted file.
extern "C" inline void latent_jpeg_message(j_common_ptr info, int level) {
    if (level < 0) latent_jpeg_error_exit(info);
}

extern "C" inline void latent_jpeg_progress(j_common_ptr info) {
    auto* decompress = reinterpret_cast<j_decompress_ptr>(info);
    if (decompress->input_scan_number > jpeg_max_scans) {
        auto* errors = reinterpret_cast<JpegErrors*>(info->err);
        copy_message(*errors->image, "more than 256 progressive scans");
        std::longjmp(errors->jump, 1);
    }
}

// Decodes a JPEG into errors.image; false with the image's message (or over_budget) set on failure.
inline bool decode_jpeg_raw(const unsigned char* data, std::size_t size, JpegErrors& errors,
                            const PixelBudget& budget) {
    RawImage& image = *errors.image;
    jpeg_decompress_struct info{};
    jpeg_progress_mgr progress{};
    info.err = jpeg_std_error(&errors.manager);
    errors.manager.error_exit = latent_jpeg_error_exit;
    errors.manager.emit_message = latent_jpeg_message;
    if (setjmp(errors.jump)) {
        jpeg_destroy_decompress(&info);
        return false;
    }
    jpeg_create_decompress(&info);
    progress.progress_monitor = latent_jpeg_progress;
    info.progress = &progress;
    jpeg_mem_src(&info, data, static_cast<unsigned long>(size));
    jpeg_read_header(&info, TRUE);
    image.width = info.image_width;
    image.height = info.image_height;
    image.channels = info.jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    if (!budget.allows(image.width, image.height, static_cast<unsigned>(image.channels), 1)) {
        image.over_budget = true;
        jpeg_destroy_decompress(&info);
        return false;
    }
    info.out_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    info.mem->max_memory_to_use = static_cast<long>(budget.max_bytes > (1ULL << 62) ? (1ULL << 62) : budget.max_bytes);
    jpeg_start_decompress(&info);
    const std::size_t stride = static_cast<std::size_t>(info.output_width) * info.output_components;
    image.pixels = static_cast<unsigned char*>(std::malloc(stride * info.output_height));
    if (image.pixels == nullptr) {
        copy_message(image, "out of memory");
        jpeg_destroy_decompress(&info);
        return false;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = image.pixels + info.output_scanline * stride;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    return true;
}

inline DecodedPixels decode_jpeg(const std::vector<char>& bytes, int channels, const std::string& path,
                                 const PixelBudget& budget) {
    const RawImagePointer image(new RawImage);
    JpegErrors errors{};
    errors.image = image.get();
    if (!decode_jpeg_raw(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), errors, budget)) {
        if (image->over_budget) budget.refuse(path, image->width, image->height, image->channels, 1);
        throw FormatError(image_error(path, std::string("cannot decode JPEG: ") + image->message));
    }
    return pixels_of(*image, channels);
}

// ---- BMP --------------------------------------------------------------------------------------

inline DecodedPixels decode_bmp(const std::vector<char>& bytes, int channels, const std::string& path,
                                const PixelBudget& budget) {
    const BmpSize size = check_bmp_header(bytes, path);
    budget.require(path, size.width, size.height, 4 + static_cast<unsigned>(channels), 1);
    if (bytes.size() > static_cast<std::size_t>(INT32_MAX))
        throw FormatError(image_error(path, "BMP file is too large to decode (over 2 GiB)"));
    int width = 0, height = 0, file_channels = 0;
    stbi_uc* data = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()),
                                          &width, &height, &file_channels, channels);
    if (data == nullptr) {
        const char* reason = stbi_failure_reason();
        throw FormatError(image_error(path, std::string("cannot decode BMP: ") + (reason ? reason : "unknown error")));
    }
    const std::unique_ptr<stbi_uc, void (*)(void*)> owner(data, stbi_image_free);
    DecodedPixels pixels{width, height, channels, {}, 255.0};
    convert_channels(data, static_cast<std::size_t>(width) * static_cast<std::size_t>(height), channels, channels,
                     pixels.samples);
    return pixels;
}

}  // namespace detail
}  // namespace latent
