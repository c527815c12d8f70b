// Little-endian binary encoding with bounds-checked decoding: the building blocks of model files.
// Every size read from a file is checked against the bytes that remain before anything is
// allocated, so a corrupt header cannot make the reader allocate terabytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/errors.hpp"

namespace latent {
namespace detail {

// Appends values to a byte string.
class BinaryWriter {
public:
    void u8(std::uint8_t value) { bytes_.push_back(static_cast<char>(value)); }
    void u32(std::uint32_t value) { integer(value, 4); }
    void u64(std::uint64_t value) { integer(value, 8); }
    void i64(std::int64_t value) { integer(static_cast<std::uint64_t>(value), 8); }
    void string(const std::string& text) {
        u32(static_cast<std::uint32_t>(text.size()));
        bytes_.append(text);
    }
    // An array of float/double as its IEEE-754 little-endian bytes, preceded by its length.
    template <class T> void array(const T* values, std::uint64_t count) {
        static_assert(std::is_floating_point_v<T>, "arrays hold float or double");
        u64(count);
        const std::size_t start = bytes_.size();
        bytes_.resize(start + count * sizeof(T));
        std::memcpy(&bytes_[start], values, count * sizeof(T));  // x86/ARM hosts are little-endian
    }
    const std::string& bytes() const { return bytes_; }

private:
    void integer(std::uint64_t value, int width) {
        for (int i = 0; i < width; ++i) bytes_.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
    }
    std::string bytes_;
};

// Reads values back; FormatError("<context>: truncated ...") when the bytes run out.
class BinaryReader {
public:
    BinaryReader(const char* data, std::size_t size, std::string context)
        : data_(data), size_(size), context_(std::move(context)) {}

    std::uint8_t u8(const char* what) { return static_cast<std::uint8_t>(integer(1, what)); }
    std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(integer(4, what)); }
    std::uint64_t u64(const char* what) { return integer(8, what); }
    std::int64_t i64(const char* what) { return static_cast<std::int64_t>(integer(8, what)); }
    std::string string(const char* what) {
        const std::uint32_t length = u32(what);
        need(length, what);
        std::string text(data_ + position_, length);
        position_ += length;
        return text;
    }
    // An array written by BinaryWriter::array; its length must equal `expected`.
    template <class T> void array_into(T* values, std::uint64_t expected, const std::string& what) {
        const std::uint64_t count = u64(what.c_str());
        if (count != expected)
            throw FormatError(context_ + ": " + what + " holds " + std::to_string(count) + " values, expected " +
                              std::to_string(expected));
        need_elements(count, sizeof(T), what.c_str());
        if (count > 0) std::memcpy(values, data_ + position_, count * sizeof(T));  // (an empty array's data may be null)
        position_ += count * sizeof(T);
    }
    template <class T> std::vector<T> array(const std::string& what) {
        const std::uint64_t count = u64(what.c_str());
        need_elements(count, sizeof(T), what.c_str());  // before allocating
        std::vector<T> values(count);
        if (count > 0) std::memcpy(values.data(), data_ + position_, count * sizeof(T));  // (an empty vector's data is null)
        position_ += count * sizeof(T);
        return values;
    }
    // Skips an array written by BinaryWriter::array; returns its length.
    template <class T> std::uint64_t skip_array(const char* what) {
        const std::uint64_t count = u64(what);
        need_elements(count, sizeof(T), what);
        position_ += count * sizeof(T);
        return count;
    }
    // A count of items that each take at least `min_item_bytes`: checked against what remains.
    std::uint64_t count(const char* what, std::uint64_t min_item_bytes) {
        const std::uint64_t value = u32(what);
        need_elements(value, min_item_bytes, what);
        return value;
    }
    std::size_t remaining() const { return size_ - position_; }
    const std::string& context() const { return context_; }

private:
    void need(std::uint64_t bytes, const char* what) const {
        if (bytes > size_ - position_)
            throw FormatError(context_ + ": truncated while reading " + what + " (needs " + std::to_string(bytes) +
                              " bytes, " + std::to_string(size_ - position_) + " left)");
    }
    void need_elements(std::uint64_t count, std::uint64_t element_bytes, const char* what) const {
        if (element_bytes != 0 && count > (size_ - position_) / element_bytes)
            throw FormatError(context_ + ": " + what + " claims " + std::to_string(count) +
                              " elements but only " + std::to_string(size_ - position_) + " bytes remain");
    }
    std::uint64_t integer(int width, const char* what) {
        need(static_cast<std::uint64_t>(width), what);
        std::uint64_t value = 0;
        for (int i = 0; i < width; ++i)
            value |= static_cast<std::uint64_t>(static_cast<unsigned char>(data_[position_ + i])) << (8 * i);
        position_ += static_cast<std::size_t>(width);
        return value;
    }

    const char* data_;
    std::size_t size_;
    std::size_t position_ = 0;
    std::string context_;
};

}  // namespace detail
}  // namespace latent
