// IDX files, the format of MNIST and Fashion-MNIST: images and labels, plain or gzip-compressed.
//
// Layout: a big-endian uint32 header, then unsigned bytes.
//   images: magic 0x00000803, count, rows, cols, then count * rows * cols pixels, row by row
//   labels: magic 0x00000801, count, then count labels
// The reader checks the header against the real length of the (decompressed) data before it
// allocates anything, so a corrupt or hostile header gives a FormatError, never a huge allocation.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <new>
#include <ostream>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/tensor.hpp"

namespace latent {
namespace detail {

constexpr std::uint32_t idx_label_magic = 0x00000801;
constexpr std::uint32_t idx_image_magic = 0x00000803;
constexpr std::size_t idx_label_header_size = 8;
constexpr std::size_t idx_image_header_size = 16;
// No real IDX file comes near 2^48 bytes; the cap keeps every size computation far from overflow.
constexpr std::uint64_t idx_max_payload = std::uint64_t{1} << 48;
// Deflate never expands its input more than 1032:1 (zlib's documented limit), so a gzip file of
// n bytes cannot hold more than 1032 n bytes: larger header claims are rejected before inflating.
constexpr std::uint64_t deflate_max_ratio = 1032;

inline std::string quote_path(const std::string& path) { return "'" + path + "'"; }

inline std::uint32_t read_big_endian_u32(const char* bytes) {
    const auto* b = reinterpret_cast<const unsigned char*>(bytes);
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
           std::uint32_t{b[3]};
}

inline void append_big_endian_u32(std::vector<char>& bytes, std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8)
        bytes.push_back(static_cast<char>(static_cast<unsigned char>((value >> shift) & 0xFF)));
}

inline std::string hex32(std::uint32_t value) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08X", static_cast<unsigned>(value));
    return text;
}

// What a magic number that is not the expected one says, e.g. "magic 0x00000801 is a label file".
inline std::string describe_idx_magic(std::uint32_t magic) {
    const std::string text = "magic " + hex32(magic);
    if (magic == idx_label_magic) return text + " is a label file";
    if (magic == idx_image_magic) return text + " is an image file";
    if ((magic >> 16) != 0) return text + " is not an IDX magic number";
    const unsigned type = (magic >> 8) & 0xFF, dimensions = magic & 0xFF;
    const char* type_text = type == 0x08   ? "unsigned bytes"
                            : type == 0x09 ? "signed bytes"
                            : type == 0x0B ? "int16"
                            : type == 0x0C ? "int32"
                            : type == 0x0D ? "float32"
                            : type == 0x0E ? "float64"
                                           : nullptr;
    if (type_text == nullptr) return text + " is not an IDX magic number (unknown data type)";
    return text + " is a " + std::to_string(dimensions) + "-D IDX file of " + type_text;
}

inline bool is_gzip(const std::vector<char>& bytes) {
    return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1F &&
           static_cast<unsigned char>(bytes[1]) == 0x8B;
}

// Inflates a gzip file held in memory a piece at a time, so that the IDX header can be checked
// before the reader decides how much data to accept. Concatenated gzip members are read as one
// stream (as gzip -d does); a corrupt or truncated stream throws FormatError naming the file.
class GzipInflater {
public:
    GzipInflater(const std::vector<char>& compressed, std::string path)
        : path_(std::move(path)),
          input_(reinterpret_cast<const unsigned char*>(compressed.data())),
          input_left_(compressed.size()) {
        if (inflateInit2(&stream_, 15 + 16) != Z_OK) throw std::bad_alloc();  // 15 + 16: gzip only
    }
    ~GzipInflater() { inflateEnd(&stream_); }
    GzipInflater(const GzipInflater&) = delete;
    GzipInflater& operator=(const GzipInflater&) = delete;

    // Appends up to `count` decompressed bytes to `out`; fewer only where the data ends. The
    // buffer grows with the data actually produced, never by what a header claims.
    void read(std::vector<char>& out, std::size_t count) {
        constexpr std::size_t piece_limit = std::size_t{1} << 20;
        const std::size_t start = out.size();
        std::size_t produced = 0;
        while (produced < count && !finished_) {
            const std::size_t piece = std::min(count - produced, piece_limit);
            out.resize(start + produced + piece);
            stream_.next_out = reinterpret_cast<Bytef*>(out.data() + start + produced);
            stream_.avail_out = static_cast<uInt>(piece);
            refill();
            const int status = inflate(&stream_, Z_NO_FLUSH);
            produced += piece - stream_.avail_out;
            if (status == Z_STREAM_END) {
                next_member();
            } else if ((status == Z_OK || status == Z_BUF_ERROR) && input_exhausted() &&
                       stream_.avail_out > 0) {
                // inflate flushes all it can while output space remains: it needs input we lack
                throw FormatError(quote_path(path_) + ": truncated gzip data (the compressed stream "
                                  "ends before its end marker)");
            } else if (status != Z_OK) {
                throw FormatError(quote_path(path_) + ": corrupt gzip data (" +
                                  (stream_.msg ? stream_.msg : "zlib error " + std::to_string(status)) +
                                  ")");
            }
        }
        out.resize(start + produced);
    }

private:
    bool input_exhausted() const { return stream_.avail_in == 0 && input_left_ == 0; }

    // zlib counts input in uInt: hand it over in pieces of at most 1 GiB.
    void refill() {
        if (stream_.avail_in > 0 || input_left_ == 0) return;
        const std::size_t take = std::min<std::size_t>(input_left_, std::size_t{1} << 30);
        stream_.next_in = const_cast<Bytef*>(input_);
        stream_.avail_in = static_cast<uInt>(take);
        input_ += take;
        input_left_ -= take;
    }

    // At the end of a gzip member: either the file ends, or another member follows.
    void next_member() {
        refill();
        if (stream_.avail_in == 0) {
            finished_ = true;
            return;
        }
        if (*stream_.next_in != 0x1F)
            throw FormatError(quote_path(path_) + ": corrupt gzip data (unexpected bytes after the "
                              "end of the compressed stream)");
        inflateReset(&stream_);  // inflate checks the rest of the next member's header
    }

    std::string path_;
    z_stream stream_{};
    const unsigned char* input_;
    std::size_t input_left_;
    bool finished_ = false;
};

// What an IDX header promises: the payload length and a description for messages.
struct IdxHeader {
    std::uint64_t payload_bytes = 0;
    std::string description;  // "60000 images of 28x28"
};

// The bytes of an IDX file after any decompression; the payload starts at `payload_offset`.
struct IdxContent {
    std::vector<char> bytes;
    std::size_t payload_offset = 0;
    const unsigned char* payload() const {
        return reinterpret_cast<const unsigned char*>(bytes.data()) + payload_offset;
    }
};

inline void check_idx_length(const std::string& path, std::size_t header_size,
                             const IdxHeader& header, std::uint64_t actual, bool gzip) {
    const std::uint64_t expected = header_size + header.payload_bytes;
    const std::string has = gzip ? "decompressed data has " : "file has ";
    if (actual < expected)
        throw FormatError(quote_path(path) + ": truncated: header says " + header.description + " = " +
                          std::to_string(expected) + " bytes, " + has + std::to_string(actual) +
                          " bytes");
    if (actual > expected) {
        // A gzip file is inflated only one byte past the promised end: its excess is not counted.
        const std::string excess =
            gzip ? "decompressed data goes on past that"
                 : "file has " + std::to_string(actual) + " bytes (" +
                       std::to_string(actual - expected) + " extra bytes)";
        throw FormatError(quote_path(path) + ": extra bytes: header says " + header.description +
                          " = " + std::to_string(expected) + " bytes, " + excess);
    }
}

inline void check_idx_magic(const std::string& path, const char* header, std::uint32_t expected,
                            const char* kind) {
    const std::uint32_t magic = read_big_endian_u32(header);
    if (magic != expected)
        throw FormatError(quote_path(path) + ": not an IDX " + kind + " file (" +
                          describe_idx_magic(magic) + "; expected " + hex32(expected) + ")");
}

// Reads a plain or gzip IDX file whose header is `header_size` bytes: `parse_header(bytes)`
// validates the header and says how long the payload must be; the data must match it exactly.
// The magic number is checked first, so that a short file of the other kind is named as such.
template <class ParseHeader>
IdxContent read_idx_content(const std::string& path, std::uint32_t magic, std::size_t header_size,
                            const char* kind, ParseHeader parse_header) {
    std::vector<char> file = read_file(path);
    const auto check_complete_header = [&](const std::vector<char>& bytes, const char* what) {
        if (bytes.size() >= 4) check_idx_magic(path, bytes.data(), magic, kind);
        if (bytes.size() < header_size)
            throw FormatError(quote_path(path) + ": truncated: " + what +
                              std::to_string(bytes.size()) + " bytes, shorter than the " +
                              std::to_string(header_size) + "-byte IDX " + kind + " header");
    };
    if (!is_gzip(file)) {
        check_complete_header(file, "file has ");
        const IdxHeader header = parse_header(file.data());
        check_idx_length(path, header_size, header, file.size(), false);
        return {std::move(file), header_size};
    }
    GzipInflater inflater(file, path);
    std::vector<char> content;
    inflater.read(content, header_size);
    check_complete_header(content, "decompressed data has ");
    const IdxHeader header = parse_header(content.data());
    const std::uint64_t expected = header_size + header.payload_bytes;
    if (expected / deflate_max_ratio > file.size())
        throw FormatError(quote_path(path) + ": truncated: header says " + header.description + " = " +
                          std::to_string(expected) + " bytes, more than a gzip file of " +
                          std::to_string(file.size()) + " bytes can hold");
    inflater.read(content, static_cast<std::size_t>(header.payload_bytes) + 1);  // +1: detect excess
    check_idx_length(path, header_size, header, content.size(), true);
    return {std::move(content), header_size};
}

// The payload an image header promises (its magic number is already checked).
inline IdxHeader parse_idx_image_header(const std::string& path, const char* header) {
    const std::uint64_t count = read_big_endian_u32(header + 4);
    const std::uint64_t rows = read_big_endian_u32(header + 8);
    const std::uint64_t cols = read_big_endian_u32(header + 12);
    IdxHeader result;
    result.description = std::to_string(count) + " images of " + std::to_string(rows) + "x" +
                         std::to_string(cols);
    if (count == 0 || rows == 0 || cols == 0)
        throw FormatError(quote_path(path) + ": header says " + result.description +
                          ": every dimension must be > 0");
    // Each factor is < 2^32, so rows * cols < 2^64; the division keeps the second product in range.
    const std::uint64_t pixels = rows * cols;
    if (pixels > idx_max_payload / count)
        throw FormatError(quote_path(path) + ": header says " + result.description +
                          ", more than 2^48 bytes: not a plausible IDX file");
    result.payload_bytes = count * pixels;
    return result;
}

// The payload a label header promises (its magic number is already checked).
inline IdxHeader parse_idx_label_header(const std::string& path, const char* header) {
    const std::uint64_t count = read_big_endian_u32(header + 4);
    IdxHeader result;
    result.description = std::to_string(count) + " labels";
    if (count == 0)
        throw FormatError(quote_path(path) + ": header says 0 labels: the count must be > 0");
    result.payload_bytes = count;
    return result;
}

// The value of each pixel byte: byte / 255 (in T's arithmetic, the same for every reader).
template <class T> std::array<T, 256> idx_pixel_values() {
    std::array<T, 256> value_of_byte;
    for (int k = 0; k < 256; ++k) value_of_byte[k] = static_cast<T>(k) / static_cast<T>(255);
    return value_of_byte;
}

}  // namespace detail

// The images of an IDX image file (plain or .gz) as a (count, 1, rows, cols) tensor with values
// pixel / 255 in [0, 1]. FormatError naming the file and the problem for anything that is not a
// well-formed IDX image file (wrong magic, zero dimensions, truncated or excess data, corrupt
// gzip); IoError when the file cannot be read.
template <class T = float> Tensor<T> read_idx_images(const std::string& path) {
    const detail::IdxContent content = detail::read_idx_content(
        path, detail::idx_image_magic, detail::idx_image_header_size, "image",
        [&](const char* header) { return detail::parse_idx_image_header(path, header); });
    const char* header = content.bytes.data();
    const Index count = detail::read_big_endian_u32(header + 4);
    const Index rows = detail::read_big_endian_u32(header + 8);
    const Index cols = detail::read_big_endian_u32(header + 12);
    const std::array<T, 256> value_of_byte = detail::idx_pixel_values<T>();
    Tensor<T> images(count, 1, rows, cols);
    const unsigned char* pixels = content.payload();
    T* values = images.data();
    for (Index i = 0; i < images.size(); ++i) values[i] = value_of_byte[pixels[i]];
    return images;
}

// The labels of an IDX label file (plain or .gz); errors as for read_idx_images.
inline std::vector<std::uint8_t> read_idx_labels(const std::string& path) {
    const detail::IdxContent content = detail::read_idx_content(
        path, detail::idx_label_magic, detail::idx_label_header_size, "label",
        [&](const char* header) { return detail::parse_idx_label_header(path, header); });
    const unsigned char* labels = content.payload();
    return std::vector<std::uint8_t>(labels, labels + (content.bytes.size() - content.payload_offset));
}

// Writes a (count, 1, rows, cols) tensor of values in [0, 1] as an uncompressed IDX image file,
// each value rounded to the nearest of the bytes 0..255 (v * 255). Replaces `path` atomically.
// ShapeError for more than one channel or an empty tensor; ArgumentError (naming the position)
// for a value outside [0, 1] or NaN -- nothing is written then.
template <class T> void write_idx_images(const std::string& path, const Tensor<T>& images) {
    const std::string where = "write_idx_images(" + detail::quote_path(path) + ")";
    const Shape shape = sample_shape(images);
    const Index count = images.dimension(0);
    if (shape.channels != 1 || count < 1 || shape.height < 1 || shape.width < 1)
        throw ShapeError(where + ": IDX images need a (count, 1, rows, cols) tensor with every "
                         "dimension > 0, got " + batch_shape_str(count, shape));
    constexpr Index limit = std::numeric_limits<std::uint32_t>::max();
    if (count > limit || shape.height > limit || shape.width > limit)
        throw ShapeError(where + ": " + batch_shape_str(count, shape) +
                         " does not fit the 32-bit IDX header");
    std::vector<char> bytes;
    bytes.reserve(detail::idx_image_header_size + static_cast<std::size_t>(images.size()));
    for (const Index field : {Index{detail::idx_image_magic}, count, shape.height, shape.width})
        detail::append_big_endian_u32(bytes, static_cast<std::uint32_t>(field));
    const T* values = images.data();
    for (Index i = 0; i < images.size(); ++i) {
        const double value = static_cast<double>(values[i]);
        if (!(value >= 0.0 && value <= 1.0)) {  // also catches NaN
            const Index pixel = i % shape.size();
            throw ArgumentError(where + ": value " + detail::readable_number(value) + " of image " +
                                std::to_string(i / shape.size()) + " at row " +
                                std::to_string(pixel / shape.width) + ", column " +
                                std::to_string(pixel % shape.width) +
                                (std::isnan(value) ? " is NaN" : " is outside [0, 1]"));
        }
        bytes.push_back(static_cast<char>(static_cast<unsigned char>(std::lround(value * 255.0))));
    }
    write_file_atomically(path, [&](std::ostream& out) {
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    });
}

// Writes labels as an uncompressed IDX label file (atomically). ArgumentError when empty.
inline void write_idx_labels(const std::string& path, const std::vector<std::uint8_t>& labels) {
    const std::string where = "write_idx_labels(" + detail::quote_path(path) + ")";
    detail::require(!labels.empty(), where, "an IDX label file needs at least one label");
    detail::require(labels.size() <= std::numeric_limits<std::uint32_t>::max(), where,
                    "too many labels for the 32-bit IDX header");
    std::vector<char> bytes;
    bytes.reserve(detail::idx_label_header_size + labels.size());
    detail::append_big_endian_u32(bytes, detail::idx_label_magic);
    detail::append_big_endian_u32(bytes, static_cast<std::uint32_t>(labels.size()));
    bytes.insert(bytes.end(), labels.begin(), labels.end());
    write_file_atomically(path, [&](std::ostream& out) {
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    });
}

// The four files of an MNIST-style data set (MNIST, Fashion-MNIST, ...).
struct MnistFiles {
    std::string train_images;
    std::string train_labels;
    std::string test_images;
    std::string test_labels;
};

// Finds the four standard files in `folder`: train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each also accepted in the dotted spelling
// (train-images.idx3-ubyte) and gzip-compressed (.gz). Uncompressed files are preferred (they
// load faster). IoError listing every path tried when any of the four is missing.
inline MnistFiles find_mnist(const std::string& folder) {
    namespace fs = std::filesystem;
    std::string missing;
    const auto find = [&](const std::string& set, const char* kind, int idx_dimensions) {
        const std::string dimensions = "idx" + std::to_string(idx_dimensions) + "-ubyte";
        std::vector<std::string> tried;
        for (const char* suffix : {"", ".gz"})
            for (const char* separator : {"-", "."}) {
                const std::string path =
                    (fs::path(folder) / (set + "-" + kind + separator + dimensions + suffix)).string();
                std::error_code error;
                if (fs::is_regular_file(path, error)) return path;
                tried.push_back(path);
            }
        missing += "\n  " + set + "-" + kind + ": tried";
        for (const auto& path : tried) missing += " '" + path + "'";
        return std::string();
    };
    MnistFiles files;
    files.train_images = find("train", "images", 3);
    files.train_labels = find("train", "labels", 1);
    files.test_images = find("t10k", "images", 3);
    files.test_labels = find("t10k", "labels", 1);
    if (!missing.empty())
        throw IoError("find_mnist: MNIST files missing in '" + folder + "':" + missing);
    return files;
}

}  // namespace latent
