// Error types. Everything a user controls (shapes, files, data, options) is reported with one
// of these, never with assert() or abort(): the host program decides what to do.
#pragma once

#include <charconv>
#include <stdexcept>
#include <string>

namespace latent {

// Base of every error latent throws.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A tensor or layer configuration does not fit: names the layer, the expected and the actual shape.
class ShapeError : public Error {
public:
    using Error::Error;
};

// A file is malformed, truncated, corrupt, of a newer version or of the wrong scalar type.
class FormatError : public Error {
public:
    using Error::Error;
};

// A file cannot be opened, read, written or renamed.
class IoError : public Error {
public:
    using Error::Error;
};

// A NaN or infinity was found in data, a loss or a gradient.
class NumericError : public Error {
public:
    using Error::Error;
};

// An argument is outside its documented range (a negative learning rate, zero filters, ...).
class ArgumentError : public Error {
public:
    using Error::Error;
};

namespace detail {

// A number as messages print it: 6 significant digits ("-0.433333", "1e-08", "300"), not the
// 17 that tell a float from its neighbours; the same text in every locale.
inline std::string readable_number(double value) {
    char text[32];
    const auto written = std::to_chars(text, text + sizeof text, value, std::chars_format::general, 6);
    return std::string(text, written.ptr);
}

// Throws ArgumentError("<where>: <what>") unless `condition` holds.
inline void require(bool condition, const std::string& where, const std::string& what) {
    if (!condition) throw ArgumentError(where + ": " + what);
}

}  // namespace detail
}  // namespace latent
