// What an image file is and what it may cost, decided before any pixel is decoded.
//
// Threat model: an image file may be hostile (crafted headers, truncation, lies about its size
// or its format). The format is chosen by the file's content (its magic bytes) and, unless the
// caller turns the check off, must agree with the file name's ending. The header's size is
// checked against ImageLimits before the decoder allocates: at most 64 megapixels and 2 GiB
// (file, decoder buffer and latent's buffers together) by default.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/errors.hpp"

namespace latent {

// Limits of one image read, checked from the header before decoding.
struct ImageLimits {
    std::uint64_t max_pixels = std::uint64_t{64} << 20;  // width * height
    std::uint64_t max_bytes = std::uint64_t{2} << 30;    // file + decoded samples + the tensor
    bool check_extension = true;  // the content's format must agree with the file name's ending
};

enum class ImageFormat { Png, Jpeg, Bmp, Pnm, Unknown };

namespace detail {

inline const char* image_format_name(ImageFormat format) {
    switch (format) {
        case ImageFormat::Png: return "PNG";
        case ImageFormat::Jpeg: return "JPEG";
        case ImageFormat::Bmp: return "BMP";
        case ImageFormat::Pnm: return "PGM/PPM";
        default: return "unknown";
    }
}

inline bool starts_with_bytes(const std::vector<char>& bytes, const char* magic, std::size_t size) {
    if (bytes.size() < size) return false;
    for (std::size_t i = 0; i < size; ++i)
        if (bytes[i] != magic[i]) return false;
    return true;
}

// The format the content's magic bytes announce.
inline ImageFormat image_format_of_content(const std::vector<char>& bytes) {
    if (starts_with_bytes(bytes, "\x89PNG\r\n\x1a\n", 8)) return ImageFormat::Png;
    if (starts_with_bytes(bytes, "\xff\xd8\xff", 3)) return ImageFormat::Jpeg;
    if (starts_with_bytes(bytes, "BM", 2)) return ImageFormat::Bmp;
    if (starts_with_bytes(bytes, "P5", 2) || starts_with_bytes(bytes, "P6", 2)) return ImageFormat::Pnm;
    return ImageFormat::Unknown;
}

// The format a file name's ending names (case-insensitive).
inline ImageFormat image_format_of_name(const std::string& path) {
    const std::size_t dot = path.find_last_of('.');
    if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return ImageFormat::Unknown;
    std::string ending = path.substr(dot + 1);
    for (char& c : ending) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (ending == "png") return ImageFormat::Png;
    if (ending == "jpg" || ending == "jpeg" || ending == "jpe") return ImageFormat::Jpeg;
    if (ending == "bmp" || ending == "dib") return ImageFormat::Bmp;
    if (ending == "pgm" || ending == "ppm" || ending == "pnm") return ImageFormat::Pnm;
    return ImageFormat::Unknown;
}

// The format to decode `bytes` as: FormatError naming `path` when the content is none that latent
// reads, or (with limits.check_extension) when it disagrees with the name.
inline ImageFormat choose_image_format(const std::vector<char>& bytes, const std::string& path,
                                       const ImageLimits& limits) {
    const std::string where = "load_image: '" + path + "': ";
    const ImageFormat content = image_format_of_content(bytes);
    if (content == ImageFormat::Unknown)
        throw FormatError(where + "not an image latent reads (PNG, JPEG, BMP, binary PGM/PPM): no known magic bytes");
    const ImageFormat named = image_format_of_name(path);
    if (limits.check_extension && named != content)
        throw FormatError(where + "the content is " + image_format_name(content) + " but the name says " +
                          (named == ImageFormat::Unknown ? std::string("no image format latent reads")
                                                         : std::string(image_format_name(named))) +
                          " (set ImageLimits::check_extension = false to go by the content)");
    return content;
}

// What decoding an image may cost, from ImageLimits and the tensor's scalar size.
struct PixelBudget {
    std::uint64_t max_pixels = 0;
    std::uint64_t max_bytes = 0;
    std::uint64_t file_bytes = 0;
    std::uint64_t channels = 1;     // of the tensor
    std::uint64_t value_bytes = 4;  // sizeof(T)

    // Bytes held at once for a width x height image whose decoder produces `decoded_channels`
    // samples of `sample_bytes` each; UINT64_MAX when that overflows.
    std::uint64_t cost(std::uint64_t width, std::uint64_t height, std::uint64_t decoded_channels,
                       std::uint64_t sample_bytes) const {
        const std::uint64_t per_pixel = decoded_channels * sample_bytes + channels * (2 + value_bytes);
        const std::uint64_t most = UINT64_MAX;
        if (width != 0 && height > most / width) return most;
        const std::uint64_t pixels = width * height;
        if (pixels != 0 && per_pixel > (most - file_bytes) / pixels) return most;
        return file_bytes + pixels * per_pixel;
    }
    bool allows(std::uint64_t width, std::uint64_t height, std::uint64_t decoded_channels,
                std::uint64_t sample_bytes) const {
        const bool few_pixels = width == 0 || height <= max_pixels / width;
        return few_pixels && cost(width, height, decoded_channels, sample_bytes) <= max_bytes;
    }
    // FormatError naming `path` and both limits.
    [[noreturn]] void refuse(const std::string& path, std::uint64_t width, std::uint64_t height,
                             std::uint64_t decoded_channels, std::uint64_t sample_bytes) const {
        throw FormatError("load_image: '" + path + "': the header says " + std::to_string(width) + "x" +
                          std::to_string(height) + " pixels (about " +
                          std::to_string(cost(width, height, decoded_channels, sample_bytes)) +
                          " bytes to decode), over the limit of " + std::to_string(max_pixels) + " pixels or " +
                          std::to_string(max_bytes) + " bytes (ImageLimits)");
    }
    void require(const std::string& path, std::uint64_t width, std::uint64_t height,
                 std::uint64_t decoded_channels, std::uint64_t sample_bytes) const {
        if (!allows(width, height, decoded_channels, sample_bytes))
            refuse(path, width, height, decoded_channels, sample_bytes);
    }
};

inline std::uint32_t little_endian_u32(const std::vector<char>& bytes, std::size_t at) {
    std::uint32_t value = 0;
    for (std::size_t k = 0; k < 4; ++k)
        value |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + k])) << (8 * k);
    return value;
}

inline std::uint32_t little_endian_u16(const std::vector<char>& bytes, std::size_t at) {
    return static_cast<unsigned char>(bytes[at]) | (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + 1])) << 8);
}

// The size a BMP header declares, after every check that makes stb's BMP reader safe: a Windows
// (40 to 124-byte) or OS/2 (12-byte) header, uncompressed or bit-field data only, 1 to 32 bits
// per pixel, and pixel rows (padded to 4 bytes) that the file holds in full.
struct BmpSize {
    std::uint64_t width = 0, height = 0;
};

inline BmpSize check_bmp_header(const std::vector<char>& bytes, const std::string& path) {
    const std::string where = "load_image: '" + path + "': BMP ";
    if (bytes.size() < 26) throw FormatError(where + "file is truncated: " + std::to_string(bytes.size()) + " bytes");
    const std::uint32_t header_size = little_endian_u32(bytes, 14);
    const bool os2 = header_size == 12;
    if (!os2 && header_size != 40 && header_size != 52 && header_size != 56 && header_size != 108 && header_size != 124)
        throw FormatError(where + "header of " + std::to_string(header_size) + " bytes is not one latent reads");
    if (bytes.size() < 14 + std::uint64_t{header_size})
        throw FormatError(where + "file is truncated inside its " + std::to_string(header_size) + "-byte header");
    const std::int64_t width = os2 ? little_endian_u16(bytes, 18) : static_cast<std::int32_t>(little_endian_u32(bytes, 18));
    const std::int64_t height = os2 ? little_endian_u16(bytes, 20) : static_cast<std::int32_t>(little_endian_u32(bytes, 22));
    const std::uint32_t bits = little_endian_u16(bytes, os2 ? 24 : 28);
    const std::uint32_t compression = os2 ? 0 : little_endian_u32(bytes, 30);
    if (compression != 0 && !(compression == 3 && (bits == 16 || bits == 32)))
        throw FormatError(where + "compression " + std::to_string(compression) +
                          " is not read (only uncompressed and 16/32-bit bit-field BMPs)");
    if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)
        throw FormatError(where + std::to_string(bits) + " bits per pixel is not a BMP depth");
    if (width < 1 || height == 0)
        throw FormatError(where + "size " + std::to_string(width) + "x" + std::to_string(height) + " has no pixels");
    const auto rows = static_cast<std::uint64_t>(height < 0 ? -height : height);
    const std::uint64_t row_bytes = (static_cast<std::uint64_t>(width) * bits + 31) / 32 * 4;
    const std::uint64_t offset = little_endian_u32(bytes, 10);
    if (offset < 14 + std::uint64_t{header_size} || offset > bytes.size() ||
        row_bytes > (bytes.size() - offset) / rows)
        throw FormatError(where + "file is truncated: " + std::to_string(width) + "x" + std::to_string(rows) + " at " +
                          std::to_string(bits) + " bits from byte " + std::to_string(offset) + " needs more than its " +
                          std::to_string(bytes.size()) + " bytes");
    return {static_cast<std::uint64_t>(width), rows};
}

}  // namespace detail
}  // namespace latent
