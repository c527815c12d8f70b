// NumPy .npy files: tensors and code matrices out to Python (numpy.load), and back for tests.
//
// save_npy writes format version 1.0: the magic "\x93NUMPY", version bytes 1 0, a little-endian
// uint16 header length, then a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 1, 28, 28), }
// padded with spaces and ended by '\n' so that the data starts at a multiple of 64 bytes, then
// the values in C order, little-endian: float32 ('<f4') or float64 ('<f8') for tensors and
// matrices, the matching integer type ('|u1', '<i4', '<i8', ...) for a vector of integers.
//
// load_npy reads such files -- versions 1.0, 2.0 and 3.0 with descr '<f4' or '<f8', C order --
// and throws FormatError naming the file for anything else (wrong magic, other dtypes, Fortran
// order, truncated or excess data). Every size in the header is checked before anything is
// allocated: the product of the non-zero dimensions must be at most max_elements
// (core/checked.hpp), also for an array with a zero dimension, and the data must fill the file.
// The same checks work on a file held in memory (read_npy_layout): io/npz.hpp parses the members
// of .npz archives with them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/checked.hpp"
#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/tensor.hpp"

namespace latent {
namespace detail {

constexpr char npy_magic[] = "\x93NUMPY";
constexpr std::size_t npy_magic_size = 6;
constexpr std::size_t npy_alignment = 64;

inline bool host_is_little_endian() {
    const std::uint16_t one = 1;
    unsigned char first_byte = 0;
    std::memcpy(&first_byte, &one, 1);
    return first_byte == 1;
}

// NumPy's name of T: '<f4', '<f8', or '|u1', '|i1', '<u2', ... '<i8' for integers.
template <class T> std::string npy_descr() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                      (std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) <= 8),
                  "npy files are written as float32, float64 or integers of 1 to 8 bytes");
    if constexpr (std::is_floating_point_v<T>) return std::is_same_v<T, float> ? "<f4" : "<f8";
    const char order = sizeof(T) == 1 ? '|' : '<';
    return std::string(1, order) + (std::is_signed_v<T> ? 'i' : 'u') + std::to_string(sizeof(T));
}

// "(60000, 1, 28, 28)"; a one-element tuple keeps its comma: "(5,)".
inline std::string npy_shape_text(const std::vector<Index>& shape) {
    std::string text = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + (shape.size() == 1 ? ",)" : ")");
}

// Magic, version 1.0, header length and the padded dict: everything before the data.
inline std::string npy_header(const std::string& descr, const std::vector<Index>& shape) {
    std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " +
                       npy_shape_text(shape) + ", }";
    const std::size_t prefix = npy_magic_size + 2 + 2;  // magic, version, uint16 header length
    const std::size_t unpadded = prefix + dict.size() + 1;  // + the closing '\n'
    dict.append((npy_alignment - unpadded % npy_alignment) % npy_alignment, ' ');
    dict += '\n';
    const std::size_t header_length = dict.size();
    std::string header(npy_magic, npy_magic_size);
    header += '\x01';
    header += '\x00';
    header += static_cast<char>(header_length & 0xFF);
    header += static_cast<char>((header_length >> 8) & 0xFF);
    return header + dict;
}

// Writes `count` values of T after the header, as little-endian bytes whatever the host order.
template <class T>
void write_npy(const std::string& path, const T* values, Index count, const std::vector<Index>& shape) {
    const std::string header = npy_header(npy_descr<T>(), shape);
    write_file_atomically(path, [&](std::ostream& out) {
        out.write(header.data(), static_cast<std::streamsize>(header.size()));
        if (host_is_little_endian()) {
            out.write(reinterpret_cast<const char*>(values),
                      static_cast<std::streamsize>(count * static_cast<Index>(sizeof(T))));
            return;
        }
        char bytes[sizeof(T)];
        for (Index i = 0; i < count; ++i) {
            std::memcpy(bytes, values + i, sizeof(T));
            for (std::size_t b = 0; b < sizeof(T) / 2; ++b) std::swap(bytes[b], bytes[sizeof(T) - 1 - b]);
            out.write(bytes, sizeof(T));
        }
    });
}

// A whole .npy file in memory: the header for `descr` and `shape`, then `data` (already in the
// file's byte order). The members of an .npz archive are made this way.
inline std::string npy_file_bytes(const std::string& descr, const std::vector<Index>& shape, const std::string& data) {
    return npy_header(descr, shape) + data;
}

// The parsed header of an .npy file.
struct NpyHeader {
    std::string descr;
    bool fortran_order = false;
    std::vector<Index> shape;
    std::size_t data_offset = 0;
};

// A reader for the header's dict literal: string keys mapped to a string, True/False, or a
// tuple of non-negative integers -- the only values the format uses.
class NpyDictParser {
public:
    NpyDictParser(std::string text, std::string path) : text_(std::move(text)), path_(std::move(path)) {}

    NpyHeader parse() {
        NpyHeader header;
        bool has_descr = false, has_order = false, has_shape = false;
        expect('{');
        while (!peek('}')) {
            const std::string key = parse_string();
            expect(':');
            if (key == "descr" && !has_descr) {
                header.descr = parse_string();
                has_descr = true;
            } else if (key == "fortran_order" && !has_order) {
                header.fortran_order = parse_bool();
                has_order = true;
            } else if (key == "shape" && !has_shape) {
                header.shape = parse_tuple();
                has_shape = true;
            } else {
                fail("unexpected or repeated key '" + key + "'");
            }
            if (!peek('}')) expect(',');
        }
        expect('}');
        if (!(has_descr && has_order && has_shape))
            fail("the header needs the keys 'descr', 'fortran_order' and 'shape'");
        return header;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw FormatError("'" + path_ + "': bad .npy header: " + what + " in \"" + text_ + "\"");
    }
    void skip_space() {
        while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\n'))
            ++position_;
    }
    bool peek(char c) {
        skip_space();
        return position_ < text_.size() && text_[position_] == c;
    }
    void expect(char c) {
        if (!peek(c)) fail(std::string("expected '") + c + "'");
        ++position_;
    }
    std::string parse_string() {
        skip_space();
        if (position_ >= text_.size() || (text_[position_] != '\'' && text_[position_] != '"'))
            fail("expected a quoted string");
        const char quote = text_[position_++];
        const std::size_t end = text_.find(quote, position_);
        if (end == std::string::npos) fail("unterminated string");
        std::string value = text_.substr(position_, end - position_);
        position_ = end + 1;
        return value;
    }
    bool parse_bool() {
        skip_space();
        for (const auto& [word, value] : {std::pair<const char*, bool>{"True", true}, {"False", false}}) {
            const std::size_t length = std::strlen(word);
            if (text_.compare(position_, length, word) == 0) {
                position_ += length;
                return value;
            }
        }
        fail("expected True or False");
    }
    std::vector<Index> parse_tuple() {
        std::vector<Index> values;
        expect('(');
        while (!peek(')')) {
            skip_space();
            const std::size_t start = position_;
            Index value = 0;
            while (position_ < text_.size() && text_[position_] >= '0' && text_[position_] <= '9') {
                if (value > (std::numeric_limits<Index>::max() - 9) / 10) fail("dimension too large");
                value = value * 10 + (text_[position_++] - '0');
            }
            if (position_ == start) fail("expected a non-negative integer in the shape");
            values.push_back(value);
            if (!peek(')')) expect(',');
        }
        expect(')');
        return values;
    }

    std::string text_;
    std::string path_;
    std::size_t position_ = 0;
};

inline std::uint32_t read_little_endian(const char* bytes, std::size_t count) {
    std::uint32_t value = 0;
    for (std::size_t i = count; i-- > 0;) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
    return value;
}

// The length of an .npy file's header -- magic, version, header length and dict -- from its
// first bytes (12 are enough for every version; fewer when the file is shorter). FormatError
// naming `path` for a wrong magic, an unknown version or too few bytes to tell.
inline std::size_t npy_header_length(std::string_view start, const std::string& path) {
    const std::string where = "'" + path + "': ";
    if (start.size() < npy_magic_size + 2 || std::memcmp(start.data(), npy_magic, npy_magic_size) != 0)
        throw FormatError(where + "not an .npy file (no \\x93NUMPY magic)");
    const int major = static_cast<unsigned char>(start[npy_magic_size]);
    if (major < 1 || major > 3)
        throw FormatError(where + "unsupported .npy format version " + std::to_string(major) +
                          " (1, 2 and 3 are read)");
    const std::size_t length_size = major == 1 ? 2 : 4;  // uint16 in 1.0, uint32 from 2.0 on
    const std::size_t dict_start = npy_magic_size + 2 + length_size;
    if (start.size() < dict_start) throw FormatError(where + "truncated .npy header");
    return dict_start + read_little_endian(start.data() + npy_magic_size + 2, length_size);
}

// `file` is the whole .npy file (a file read from disk or a member of an .npz archive), or at
// least its header; `path` the name errors give it.
inline NpyHeader read_npy_header(std::string_view file, const std::string& path) {
    const std::size_t header_length = npy_header_length(file, path);
    const std::size_t dict_start = file[npy_magic_size] == 1 ? npy_magic_size + 4 : npy_magic_size + 6;
    const std::size_t dict_length = header_length - dict_start;
    if (file.size() - dict_start < dict_length)
        throw FormatError("'" + path + "': truncated .npy header: it says " + std::to_string(dict_length) +
                          " bytes, the file has " + std::to_string(file.size() - dict_start) +
                          " after the header length");
    NpyHeader header =
        NpyDictParser(std::string(file.data() + dict_start, dict_length), path).parse();
    header.data_offset = header_length;
    return header;
}

// The number of values of `shape`. FormatError when the product of its non-zero dimensions
// exceeds max_elements: an empty array with absurd dimensions is refused like a full one.
inline std::uint64_t npy_element_count(const std::vector<Index>& shape, const std::string& path) {
    Index nonzero = 1;
    bool empty = false;
    for (const Index dimension : shape) {
        empty = empty || dimension == 0;
        nonzero = checked_multiply<FormatError>(nonzero, std::max<Index>(dimension, 1), "'" + path + "': .npy shape");
        if (nonzero > max_elements)
            throw FormatError("'" + path + "': .npy shape " + npy_shape_text(shape) + " has more than " +
                              std::to_string(max_elements) + " values (or would if its zero dimensions grew)");
    }
    return empty ? 0 : static_cast<std::uint64_t>(nonzero);
}

// The bytes of one value of a dtype read here: '<f4' 4, '<f8' and '<i8' 8; 0 for any other.
inline std::size_t npy_item_size(const std::string& descr) {
    if (descr == "<f4") return 4;
    if (descr == "<f8" || descr == "<i8") return 8;
    return 0;
}

// An .npy header checked against the data that follows it: a dtype among `descrs` (named by
// `descrs_text` in the error), C order, and exactly the data bytes its shape needs after the
// header (`data_bytes` of them follow it). FormatError naming `path` otherwise.
inline void check_npy_layout(const NpyHeader& header, std::uint64_t data_bytes, const std::string& path,
                             std::initializer_list<const char*> descrs, const char* descrs_text) {
    const std::string where = "'" + path + "': ";
    if (std::none_of(descrs.begin(), descrs.end(), [&](const char* descr) { return header.descr == descr; }))
        throw FormatError(where + "unsupported .npy dtype '" + header.descr + "' (only " + descrs_text + " are read)");
    if (header.fortran_order)
        throw FormatError(where + ".npy data in Fortran order is not supported (C order only)");
    const std::uint64_t count = npy_element_count(header.shape, path);
    const std::uint64_t expected = count * npy_item_size(header.descr), actual = data_bytes;
    if (actual != expected)
        throw FormatError(where + (actual < expected ? "truncated" : "extra bytes") + ": shape " +
                          npy_shape_text(header.shape) + " of " + header.descr + " needs " +
                          std::to_string(expected) + " data bytes, the file has " +
                          std::to_string(actual));
}

// The header of a whole .npy file held in `file`, checked against it as check_npy_layout says.
inline NpyHeader read_npy_layout(std::string_view file, const std::string& path,
                                 std::initializer_list<const char*> descrs, const char* descrs_text) {
    const NpyHeader header = read_npy_header(file, path);
    check_npy_layout(header, file.size() - header.data_offset, path, descrs, descrs_text);
    return header;
}

// Converts `count` little-endian values of `item_size` bytes (4: float32, 8: float64) at `data`
// into T, whatever the host's byte order.
template <class T> void convert_npy_values(const char* data, std::size_t count, std::size_t item_size, T* values) {
    const bool swap = !host_is_little_endian();
    const auto convert = [&](auto stored) {  // stored: a float or a double, as in the file
        using Stored = decltype(stored);
        char bytes[sizeof(Stored)];
        for (std::size_t i = 0; i < count; ++i) {
            std::memcpy(bytes, data + i * sizeof(Stored), sizeof(Stored));
            if (swap)
                for (std::size_t b = 0; b < sizeof(Stored) / 2; ++b)
                    std::swap(bytes[b], bytes[sizeof(Stored) - 1 - b]);
            std::memcpy(&stored, bytes, sizeof(Stored));
            values[i] = static_cast<T>(stored);
        }
    };
    if (item_size == 4) convert(float{});
    else convert(double{});
}

// Reads an .npy file of '<f4' or '<f8' values in C order into `values` (converted to T).
template <class T>
std::vector<Index> read_npy(const std::string& path, std::vector<T>& values) {
    const std::vector<char> file = read_file(path);
    const NpyHeader header = read_npy_layout(std::string_view(file.data(), file.size()), path, {"<f4", "<f8"},
                                             "little-endian float32 '<f4' and float64 '<f8'");
    const std::size_t item_size = npy_item_size(header.descr);
    const std::uint64_t count = (file.size() - header.data_offset) / item_size;
    values.resize(static_cast<std::size_t>(count));
    convert_npy_values(file.data() + header.data_offset, values.size(), item_size, values.data());
    return header.shape;
}

// The (N, C, H, W) dimensions of a tensor holding an array of `shape`: missing trailing
// dimensions are 1. FormatError for an array of no or more than 4 dimensions.
inline std::array<Index, 4> npy_tensor_dimensions(const std::vector<Index>& shape, const std::string& path) {
    if (shape.empty() || shape.size() > 4)
        throw FormatError("'" + path + "': .npy array of shape " + npy_shape_text(shape) + " has " +
                          std::to_string(shape.size()) + " dimensions; a tensor is read from 1 to 4");
    std::array<Index, 4> dims{1, 1, 1, 1};
    std::copy(shape.begin(), shape.end(), dims.begin());
    return dims;
}

}  // namespace detail

// Writes a tensor as an (N, C, H, W) array of float32 / float64 (as T), atomically.
template <class T> void save_npy(const std::string& path, const Tensor<T>& tensor) {
    const std::vector<Index> shape{tensor.dimension(0), tensor.dimension(1), tensor.dimension(2),
                                   tensor.dimension(3)};
    detail::write_npy(path, tensor.data(), tensor.size(), shape);
}

// Writes a matrix -- e.g. one row of latent codes per sample -- as a (rows, cols) array, atomically.
template <class Derived> void save_npy(const std::string& path, const Eigen::MatrixBase<Derived>& matrix) {
    using T = typename Derived::Scalar;
    const Matrix<T> row_major = matrix;  // C order, whatever the storage order of `matrix`
    detail::write_npy(path, row_major.data(), row_major.size(), {row_major.rows(), row_major.cols()});
}

// Writes a vector of integers -- e.g. labels -- as a 1-D array of the same integer type
// (uint8 '|u1', int32 '<i4', int64 '<i8', ...), atomically.
template <class Int, class = std::enable_if_t<std::is_integral_v<Int>>>
void save_npy(const std::string& path, const std::vector<Int>& values) {
    detail::write_npy(path, values.data(), static_cast<Index>(values.size()), {static_cast<Index>(values.size())});
}

// Writes a tensor as an (N, C*H*W) array, one row per sample, atomically: codes of shape
// (N, D, 1, 1) become the (N, D) matrix NumPy users expect.
template <class T> void save_npy_rows(const std::string& path, const Tensor<T>& tensor) {
    const Index rows = tensor.dimension(0);
    const Index columns = sample_shape(tensor).size();
    detail::write_npy(path, tensor.data(), tensor.size(), {rows, columns});
}

// Reads an .npy array of 1 to 4 dimensions as a tensor; missing trailing dimensions are 1, so a
// (rows, cols) file of codes becomes (rows, cols, 1, 1) -- the shape a Dense layer produces.
// '<f4' and '<f8' data are both accepted and converted to T.
template <class T = float> Tensor<T> load_npy(const std::string& path) {
    std::vector<T> values;
    const std::array<Index, 4> dims = detail::npy_tensor_dimensions(detail::read_npy(path, values), path);
    Tensor<T> tensor(dims[0], dims[1], dims[2], dims[3]);
    std::copy(values.begin(), values.end(), tensor.data());
    return tensor;
}

// Reads a 2-D .npy array as a row-major matrix (FormatError for any other number of dimensions).
template <class T = float> Matrix<T> load_npy_matrix(const std::string& path) {
    std::vector<T> values;
    const std::vector<Index> shape = detail::read_npy(path, values);
    if (shape.size() != 2)
        throw FormatError("'" + path + "': .npy array of shape " + detail::npy_shape_text(shape) +
                          " is not 2-D");
    return ConstMatrixView<T>(values.data(), shape[0], shape[1]);
}

}  // namespace latent
