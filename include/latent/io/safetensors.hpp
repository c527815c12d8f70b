// .safetensors files: named arrays behind a JSON header, the format PyTorch users share weights in.
//
// Layout: a little-endian u64 N, then N bytes of JSON, then the data buffer. The JSON is an
// object; each key but "__metadata__" names an array:
//   "encoder.0.weight": {"dtype": "F32", "shape": [32, 1, 3, 3], "data_offsets": [0, 1152]}
// with the offsets counted from the start of the data buffer and the values little-endian in C
// order. "__metadata__", when present, maps strings to strings (and is not kept).
//
// The file may be hostile. Before any array is copied, parse_safetensors checks, with checked
// arithmetic, and throws FormatError naming the file and the inconsistency otherwise:
//   - the file holds the 8 bytes of N, N is at most the bytes that follow and at most
//     max_safetensors_header (100 MiB);
//   - the header is valid JSON (nlohmann::json, which also checks the UTF-8), an object, with no
//     key repeated in any object (JSON parsers would silently keep the last one);
//   - every entry is an object of exactly "dtype", "shape" and "data_offsets"; dtype is F32, F64
//     or I64 (any other, known to the format or not, is refused by name); shape is a list of
//     non-negative integers whose product is at most max_elements; data_offsets is [begin, end]
//     with begin <= end, and end - begin = the shape's values x the dtype's size;
//   - the arrays, ordered by begin, tile the data buffer exactly: no overlap, no gap, nothing
//     outside it, no bytes after the last (the format forbids holes, so a file cannot hide a
//     second payload).
// write_safetensors writes the arrays in the given order, back to back, and pads the header
// with spaces to a multiple of 8 bytes so every array starts 8-byte aligned; the metadata is
// {"format": "pt"}, what PyTorch's own writer records. The file is replaced atomically.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "../core/checked.hpp"
#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "named_arrays.hpp"

namespace latent {

constexpr std::uint64_t max_safetensors_header = std::uint64_t{100} << 20;

namespace detail {

inline const char* safetensors_dtype(ElementType type) {
    return type == ElementType::F32 ? "F32" : type == ElementType::F64 ? "F64" : "I64";
}

// A header nests at most three deep (the header, an entry, its shape). Checked on the bytes
// before parsing: a parser keeps a stack entry per open bracket, so a hostile header of a million
// '[' would cost memory, and printing such a value would recurse as deep.
constexpr int max_safetensors_nesting = 3;

inline void require_shallow_json(std::string_view text, const std::string& where) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (const char c : text) {
        if (in_string) {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_safetensors_nesting)
                throw FormatError(where + "the header nests deeper than a .safetensors header does (" +
                                  std::to_string(max_safetensors_nesting) + " levels)");
        } else if (c == '}' || c == ']') {
            --depth;
        }
    }
}

// The header as JSON; FormatError for malformed JSON or a key repeated within an object.
inline nlohmann::json parse_safetensors_json(std::string_view text, const std::string& where) {
    require_shallow_json(text, where);
    std::vector<std::set<std::string>> keys_of_open_objects;
    std::string repeated;
    const auto note_keys = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if (event == Event::object_start) keys_of_open_objects.emplace_back();
        if (event == Event::object_end && !keys_of_open_objects.empty()) keys_of_open_objects.pop_back();
        if (event == Event::key && !keys_of_open_objects.empty() && repeated.empty() &&
            !keys_of_open_objects.back().insert(parsed.get<std::string>()).second)
            repeated = parsed.get<std::string>();
        return true;
    };
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(text.begin(), text.end(), note_keys);
    } catch (const nlohmann::json::exception& error) {
        throw FormatError(where + "the header is not valid JSON: " + error.what());
    }
    if (!repeated.empty()) throw FormatError(where + "the header repeats the key '" + repeated + "'");
    if (!header.is_object()) throw FormatError(where + "the header is not a JSON object");
    return header;
}

// A value as messages show it: its JSON, cut after 200 characters.
inline std::string json_excerpt(const nlohmann::json& value) {
    const std::string text = value.dump();
    return text.size() <= 200 ? text : text.substr(0, 200) + "...";
}

// A JSON number that must be a non-negative integer of at most `limit`.
inline std::uint64_t safetensors_size(const nlohmann::json& value, std::uint64_t limit, const std::string& what) {
    if (!value.is_number_unsigned() || value.get<std::uint64_t>() > limit)
        throw FormatError(what + " must be an integer in [0, " + std::to_string(limit) + "], got " + json_excerpt(value));
    return value.get<std::uint64_t>();
}

// Where one array's bytes lie in the data buffer.
struct SafetensorsEntry {
    NamedArray array;  // name, type and shape; bytes not yet copied
    std::uint64_t begin = 0, end = 0;
};

inline SafetensorsEntry parse_safetensors_entry(const std::string& name, const nlohmann::json& entry,
                                                std::uint64_t buffer_size, const std::string& where) {
    const std::string array_where = where + "array '" + name + "'";
    const std::string what = array_where + ": ";
    if (!entry.is_object() || entry.size() != 3 || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
        throw FormatError(what + "an entry must be an object of exactly \"dtype\", \"shape\" and \"data_offsets\", got " +
                          json_excerpt(entry));
    SafetensorsEntry parsed;
    parsed.array.name = name;
    const nlohmann::json& dtype = entry["dtype"];
    if (dtype == "F32") parsed.array.type = ElementType::F32;
    else if (dtype == "F64") parsed.array.type = ElementType::F64;
    else if (dtype == "I64") parsed.array.type = ElementType::I64;
    else throw FormatError(what + "unsupported dtype " + json_excerpt(dtype) + " (F32, F64 and I64 are read)");
    const nlohmann::json& shape = entry["shape"];
    if (!shape.is_array()) throw FormatError(what + "shape must be a list, got " + json_excerpt(shape));
    for (const nlohmann::json& dimension : shape)
        parsed.array.shape.push_back(static_cast<Index>(safetensors_size(dimension, max_elements, what + "a dimension")));
    const Index count = element_count(parsed.array.shape, array_where);
    const nlohmann::json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
        throw FormatError(what + "data_offsets must be [begin, end], got " + json_excerpt(offsets));
    parsed.begin = safetensors_size(offsets[0], buffer_size, what + "data_offsets begin (the data buffer's size is the limit)");
    parsed.end = safetensors_size(offsets[1], buffer_size, what + "data_offsets end (the data buffer's size is the limit)");
    const std::uint64_t needed = checked_multiply<FormatError>(static_cast<std::uint64_t>(count),
                                                               std::uint64_t{element_size(parsed.array.type)}, what + "bytes");
    if (parsed.end < parsed.begin || parsed.end - parsed.begin != needed)
        throw FormatError(what + "data_offsets [" + std::to_string(parsed.begin) + ", " + std::to_string(parsed.end) +
                          "] do not hold the " + std::to_string(needed) + " bytes of shape " +
                          shape_text(parsed.array.shape) + " of " + dtype.get<std::string>());
    return parsed;
}

// Requires the entries, sorted by begin, to cover [0, buffer_size) without overlap or gap.
inline void require_tiling(std::vector<SafetensorsEntry>& entries, std::uint64_t buffer_size, const std::string& where) {
    std::sort(entries.begin(), entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t covered = 0;
    for (const SafetensorsEntry& entry : entries) {
        if (entry.begin < covered)
            throw FormatError(where + "array '" + entry.array.name + "' at [" + std::to_string(entry.begin) + ", " +
                              std::to_string(entry.end) + "] overlaps the array before it (which ends at " +
                              std::to_string(covered) + ")");
        if (entry.begin > covered)
            throw FormatError(where + "the data buffer has a gap: bytes [" + std::to_string(covered) + ", " +
                              std::to_string(entry.begin) + ") belong to no array");
        covered = entry.end;
    }
    if (covered != buffer_size)
        throw FormatError(where + "the data buffer has " + std::to_string(buffer_size) + " bytes, the arrays hold " +
                          std::to_string(covered));
}

inline void check_safetensors_metadata(const nlohmann::json& metadata, const std::string& where) {
    const bool strings = metadata.is_object() && std::all_of(metadata.begin(), metadata.end(),
                                                             [](const nlohmann::json& value) { return value.is_string(); });
    if (!strings) throw FormatError(where + "__metadata__ must map strings to strings, got " + json_excerpt(metadata));
}

}  // namespace detail

// The arrays of a .safetensors file held in `file` (see the top of this header for the checks),
// in the order of their data; `path` names the file in errors.
inline NamedArrays parse_safetensors(std::string_view file, const std::string& path) {
    const std::string where = "'" + path + "': ";
    if (file.size() < 8) throw FormatError(where + "not a .safetensors file: shorter than its 8-byte header length");
    std::uint64_t header_size = 0;
    for (int b = 7; b >= 0; --b) header_size = (header_size << 8) | static_cast<unsigned char>(file[static_cast<std::size_t>(b)]);
    if (header_size > file.size() - 8 || header_size > max_safetensors_header)
        throw FormatError(where + "the header length " + std::to_string(header_size) + " is larger than the " +
                          std::to_string(file.size() - 8) + " bytes after it (or than the limit of " +
                          std::to_string(max_safetensors_header) + ")");
    const nlohmann::json header = detail::parse_safetensors_json(file.substr(8, header_size), where);
    const std::string_view buffer = file.substr(8 + header_size);
    std::vector<detail::SafetensorsEntry> entries;
    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") detail::check_safetensors_metadata(entry, where);
        else entries.push_back(detail::parse_safetensors_entry(name, entry, buffer.size(), where));
    }
    detail::require_tiling(entries, buffer.size(), where);
    NamedArrays arrays;
    for (detail::SafetensorsEntry& entry : entries) {
        entry.array.bytes.assign(buffer.substr(entry.begin, entry.end - entry.begin));
        arrays.push_back(std::move(entry.array));
    }
    return arrays;
}

inline NamedArrays read_safetensors(const std::string& path) {
    const std::vector<char> file = read_file(path);
    return parse_safetensors(std::string_view(file.data(), file.size()), path);
}

// The bytes of a .safetensors file holding `arrays` in their order; ArgumentError when two
// share a name or a name is not valid UTF-8.
inline std::string safetensors_bytes(const NamedArrays& arrays) {
    require_unique_names<ArgumentError>(arrays, "safetensors");
    nlohmann::ordered_json header;
    header["__metadata__"] = {{"format", "pt"}};
    std::uint64_t offset = 0;
    for (const NamedArray& array : arrays) {
        const std::uint64_t end = offset + array.bytes.size();
        header[array.name] = {{"dtype", detail::safetensors_dtype(array.type)},
                              {"shape", array.shape},
                              {"data_offsets", {offset, end}}};
        offset = end;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& error) {
        throw ArgumentError(std::string("safetensors: an array name is not valid UTF-8: ") + error.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string file(8, '\0');
    for (int b = 0; b < 8; ++b) file[static_cast<std::size_t>(b)] = static_cast<char>((text.size() >> (8 * b)) & 0xFF);
    file += text;
    for (const NamedArray& array : arrays) file += array.bytes;
    return file;
}

// Writes `arrays` to `path` as a .safetensors file, atomically (core/file.hpp).
inline void write_safetensors(const std::string& path, const NamedArrays& arrays) {
    const std::string bytes = safetensors_bytes(arrays);
    write_file_atomically(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace latent
