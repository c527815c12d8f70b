// A writer of the protocol buffers wire format, enough to write ONNX files without libprotobuf.
//
// A message is a sequence of fields; each field is a key, varint(field_number << 3 | wire_type),
// followed by its value:
//   wire type 0 (varint):           integers, 7 bits per byte, least significant group first, the
//                                   high bit set on every byte but the last; a negative int64 is
//                                   its two's complement as a uint64 (always ten bytes);
//   wire type 2 (length-delimited): varint(byte count), then the bytes -- strings, bytes, nested
//                                   messages and packed repeated numbers;
//   wire type 5 (32-bit):           a float as its four IEEE-754 bytes, little-endian.
// Repeated numbers are written packed: one length-delimited field holding the values back to back.
// Fields are written in the order the caller adds them; readers accept any order.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace latent::protobuf {

enum class WireType : std::uint32_t { Varint = 0, LengthDelimited = 2, Fixed32 = 5 };

// Appends `value` as a base-128 varint.
inline void append_varint(std::string& out, std::uint64_t value) {
    while (value >= 0x80) {
        out += static_cast<char>((value & 0x7F) | 0x80);
        value >>= 7;
    }
    out += static_cast<char>(value);
}

// Appends the four bytes of `value` little-endian, whatever the host's byte order.
inline void append_float_bits(std::string& out, float value) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    for (int shift = 0; shift < 32; shift += 8) out += static_cast<char>((bits >> shift) & 0xFF);
}

// One message being built: add fields, then take bytes() (or nest it with add_message).
class Message {
public:
    // An int32, int64, uint64 or enum field (wire type 0).
    Message& add_int(std::uint32_t field, std::int64_t value) {
        key(field, WireType::Varint);
        append_varint(bytes_, static_cast<std::uint64_t>(value));
        return *this;
    }
    // A float field (wire type 5).
    Message& add_float(std::uint32_t field, float value) {
        key(field, WireType::Fixed32);
        append_float_bits(bytes_, value);
        return *this;
    }
    // A string or bytes field (wire type 2).
    Message& add_bytes(std::uint32_t field, const std::string& value) {
        key(field, WireType::LengthDelimited);
        append_varint(bytes_, value.size());
        bytes_ += value;
        return *this;
    }
    Message& add_message(std::uint32_t field, const Message& message) { return add_bytes(field, message.bytes()); }
    // A packed repeated int64 field; nothing for an empty list (as protobuf writes it).
    Message& add_packed_ints(std::uint32_t field, const std::vector<std::int64_t>& values) {
        if (values.empty()) return *this;
        std::string packed;
        for (const std::int64_t value : values) append_varint(packed, static_cast<std::uint64_t>(value));
        return add_bytes(field, packed);
    }
    // A packed repeated float field; nothing for an empty list.
    Message& add_packed_floats(std::uint32_t field, const std::vector<float>& values) {
        if (values.empty()) return *this;
        std::string packed;
        for (const float value : values) append_float_bits(packed, value);
        return add_bytes(field, packed);
    }

    const std::string& bytes() const { return bytes_; }

private:
    void key(std::uint32_t field, WireType type) {
        append_varint(bytes_, (std::uint64_t{field} << 3) | static_cast<std::uint32_t>(type));
    }

    std::string bytes_;
};

}  // namespace latent::protobuf
