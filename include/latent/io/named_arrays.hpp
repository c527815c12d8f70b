// Named arrays: what a weight file (.safetensors, .npz) holds, in memory, between the file and the
// model. The readers check every array against the file before they return one; the writers take
// arrays that make_array built, so both can trust the invariant below.
//
// Invariant of a NamedArray: `bytes` holds exactly element_count(shape) values of `type`, in C
// order and little-endian (the order of both file formats, whatever the host's).
// Element types: F32 and F64 for weights, I64 for counters (BatchNorm's num_batches_tracked).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/checked.hpp"
#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "../data/npy.hpp"

namespace latent {

enum class ElementType { F32, F64, I64 };

struct NamedArray {
    std::string name;
    ElementType type = ElementType::F32;
    std::vector<Index> shape;  // empty for a scalar
    std::string bytes;         // element_count(shape) values of `type`, little-endian, C order
};
using NamedArrays = std::vector<NamedArray>;

inline std::size_t element_size(ElementType type) { return type == ElementType::F32 ? 4 : 8; }

// "float32", "float64", "int64": how messages name an element type.
inline const char* element_type_name(ElementType type) {
    return type == ElementType::F32 ? "float32" : type == ElementType::F64 ? "float64" : "int64";
}

// "(32, 1, 3, 3)", "()" for a scalar: how messages show a shape.
inline std::string shape_text(const std::vector<Index>& shape) {
    std::string text = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + ")";
}

// The number of values of `shape` (1 for a scalar); FormatError("<where>: ...") when a dimension
// is negative or the product exceeds max_elements.
inline Index element_count(const std::vector<Index>& shape, const std::string& where) {
    Index count = 1;
    for (const Index dimension : shape)
        count = checked_product<FormatError>({count, dimension}, where + ": shape " + shape_text(shape));
    return count;
}

namespace detail {

template <class Stored> constexpr ElementType element_type_of() {
    static_assert(std::is_same_v<Stored, float> || std::is_same_v<Stored, double> ||
                      std::is_same_v<Stored, std::int64_t>,
                  "weight files hold float32, float64 or int64 arrays");
    if constexpr (std::is_same_v<Stored, float>) return ElementType::F32;
    else if constexpr (std::is_same_v<Stored, double>) return ElementType::F64;
    else return ElementType::I64;
}

// One value between host order and little-endian bytes (a byte swap on big-endian hosts).
template <class Value> void to_little_endian(Value value, char* bytes) {
    std::memcpy(bytes, &value, sizeof(Value));
    if (!host_is_little_endian())
        for (std::size_t b = 0; b < sizeof(Value) / 2; ++b) std::swap(bytes[b], bytes[sizeof(Value) - 1 - b]);
}
template <class Value> Value from_little_endian(const char* bytes) {
    char copy[sizeof(Value)];
    std::memcpy(copy, bytes, sizeof(Value));
    if (!host_is_little_endian())
        for (std::size_t b = 0; b < sizeof(Value) / 2; ++b) std::swap(copy[b], copy[sizeof(Value) - 1 - b]);
    Value value;
    std::memcpy(&value, copy, sizeof(Value));
    return value;
}

}  // namespace detail

// An array named `name` of `shape` holding `values` (element_count(shape) of them) as Stored.
template <class Stored>
NamedArray make_array(std::string name, std::vector<Index> shape, const Stored* values) {
    NamedArray array{std::move(name), detail::element_type_of<Stored>(), std::move(shape), {}};
    const Index count = element_count(array.shape, array.name);
    array.bytes.resize(static_cast<std::size_t>(count) * sizeof(Stored));
    for (Index i = 0; i < count; ++i) detail::to_little_endian(values[i], &array.bytes[static_cast<std::size_t>(i) * sizeof(Stored)]);
    return array;
}

// The array's values converted to T: float32 -> double is exact, float64 -> float rounds to the
// nearest float (as torch's tensor.float() does), int64 converts as static_cast does.
template <class T> std::vector<T> array_values(const NamedArray& array) {
    const std::size_t count = array.bytes.size() / element_size(array.type);
    std::vector<T> values(count);
    const char* bytes = array.bytes.data();
    for (std::size_t i = 0; i < count; ++i) {
        const char* at = bytes + i * element_size(array.type);
        switch (array.type) {
            case ElementType::F32: values[i] = static_cast<T>(detail::from_little_endian<float>(at)); break;
            case ElementType::F64: values[i] = static_cast<T>(detail::from_little_endian<double>(at)); break;
            case ElementType::I64: values[i] = static_cast<T>(detail::from_little_endian<std::int64_t>(at)); break;
        }
    }
    return values;
}

// Error("'<path>': two arrays are named '<name>'") when a name repeats: FormatError for a file
// read, ArgumentError for arrays about to be written.
template <class Error = FormatError> void require_unique_names(const NamedArrays& arrays, const std::string& path) {
    std::vector<const std::string*> names;
    for (const auto& array : arrays) names.push_back(&array.name);
    std::sort(names.begin(), names.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
    for (std::size_t i = 1; i < names.size(); ++i)
        if (*names[i] == *names[i - 1])
            throw Error("'" + path + "': two arrays are named '" + *names[i] + "'");
}

}  // namespace latent
