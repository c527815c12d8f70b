// Model files: architecture, weights and (optionally) the training state in one file.
//
// Layout, all integers little-endian:
//   header (32 bytes):  magic "\x89LATENT\n" | u32 format version | u32 scalar size (4 float, 8 double)
//                       | u64 payload size | u32 CRC-32 of the payload | u32 reserved (0)
//   payload:            string kind ("Sequential" or "Autoencoder") | model | training state
//   model:              i64 C, H, W of the input | sequential(s): u32 layer count, then per layer:
//                       string type | u32 n, n x (string key, string value) config
//                       | u32 m, m x (string name, u64 count, count scalars) parameters
//   training state:     u8 present | string optimizer type | config | i64 step
//                       | u32 k, k x (u64 count, count scalars) buffers | i64 epochs done
// Strings are u32 length + bytes. Every count is checked against the bytes left before any
// allocation. Files are written atomically (temporary file + rename).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../layers/registry.hpp"
#include "../models/sequential.hpp"
#include "../optimizers/optimizer.hpp"
#include "binary.hpp"

namespace latent {

// What a checkpoint holds besides the model: the optimizer (type, settings, moments, step
// count) and how many epochs were done -- pass it as FitOptions::initial_epoch to resume.
template <class T = float> struct TrainingProgress {
    std::optional<Optimizer<T>> optimizer;
    int epochs_done = 0;
};

namespace detail {

constexpr char model_file_magic[8] = {'\x89', 'L', 'A', 'T', 'E', 'N', 'T', '\n'};
constexpr std::uint32_t model_file_version = 1;
constexpr std::size_t model_header_size = 32;

inline std::uint32_t crc32_of(const char* data, std::size_t size) {
    return static_cast<std::uint32_t>(
        crc32_z(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data), static_cast<z_size_t>(size)));
}

inline const char* scalar_name(std::uint32_t bytes) { return bytes == 4 ? "float" : bytes == 8 ? "double" : "unknown"; }

inline void write_config(BinaryWriter& out, const Config& config) {
    out.u32(static_cast<std::uint32_t>(config.entries().size()));
    for (const auto& [key, value] : config.entries()) {
        out.string(key);
        out.string(value);
    }
}

inline Config read_config(BinaryReader& in) {
    Config config;
    const auto entries = in.count("config entry count", 8);
    for (std::uint64_t i = 0; i < entries; ++i) {
        const std::string key = in.string("config key");
        config.set(key, in.string("config value"));
    }
    return config;
}

template <class T> void write_sequential(BinaryWriter& out, const Sequential<T>& model) {
    const auto& parameters = model.parameters();
    const auto& owners = model.parameter_layers();
    out.u32(static_cast<std::uint32_t>(model.size()));
    for (Index i = 0; i < model.size(); ++i) {
        out.string(model.layer(i).type());
        write_config(out, model.layer(i).config());
        std::uint32_t count = 0;
        for (Index owner : owners) count += owner == i;
        out.u32(count);
        for (std::size_t p = 0; p < parameters.size(); ++p)
            if (owners[p] == i) {
                out.string(parameters[p].name);
                out.array(parameters[p].value, static_cast<std::uint64_t>(parameters[p].size));
            }
    }
}

// Rebuilds a Sequential for `input` from its layer list, then reads the weights into it.
template <class T>
Sequential<T> read_sequential(BinaryReader& in, const Shape& input, const LayerRegistry<T>& registry) {
    Sequential<T> model;
    const auto layer_count = in.count("layer count", 12);
    if (layer_count == 0) throw FormatError(in.context() + ": a model with no layers");
    std::vector<std::uint64_t> parameter_counts;
    std::vector<std::size_t> weight_offsets;  // where each layer's parameters start in the file
    BinaryReader layers = in;                 // first pass: architecture only
    for (std::uint64_t i = 0; i < layer_count; ++i) {
        const std::string type = layers.string("layer type");
        model.add(registry.create(type, read_config(layers)));
        const auto count = layers.count("parameter count", 12);
        for (std::uint64_t p = 0; p < count; ++p) {
            layers.string("parameter name");
            layers.template skip_array<T>("parameter values");
        }
    }
    model.build(input);
    // Second pass: the weights, checked against what the rebuilt layers expect.
    const auto& parameters = model.parameters();
    const auto& owners = model.parameter_layers();
    std::size_t next = 0;
    for (std::uint64_t i = 0; i < layer_count; ++i) {
        in.string("layer type");
        read_config(in);
        const auto count = in.count("parameter count", 12);
        const std::string layer = model.layer_name(static_cast<Index>(i));
        for (std::uint64_t p = 0; p < count; ++p, ++next) {
            const std::string name = in.string("parameter name");
            if (next >= parameters.size() || owners[next] != static_cast<Index>(i) || parameters[next].name != name)
                throw FormatError(in.context() + ": " + layer + " has no parameter '" + name +
                                  "' in this order (the file does not match the layer's definition)");
            in.array_into(parameters[next].value, static_cast<std::uint64_t>(parameters[next].size),
                          layer + " " + name);
        }
        if (next < parameters.size() && owners[next] == static_cast<Index>(i))
            throw FormatError(in.context() + ": " + layer + " is missing parameter '" + parameters[next].name + "'");
    }
    return model;
}

template <class T> void write_training(BinaryWriter& out, const Optimizer<T>* optimizer, int epochs_done) {
    out.u8(optimizer ? 1 : 0);
    if (!optimizer) return;
    out.string(optimizer->type());
    write_config(out, optimizer->config());
    const auto& state = optimizer->state();
    out.i64(state.step);
    out.u32(static_cast<std::uint32_t>(state.buffers.size()));
    for (const auto& buffer : state.buffers) out.array(buffer.data(), buffer.size());
    out.i64(epochs_done);
}

template <class T> void read_training(BinaryReader& in, TrainingProgress<T>* progress) {
    if (in.u8("training state flag") == 0) return;
    const std::string type = in.string("optimizer type");
    const Config config = read_config(in);
    OptimizerState<T> state;
    state.step = in.i64("optimizer step");
    const auto buffers = in.count("optimizer buffer count", 8);
    for (std::uint64_t b = 0; b < buffers; ++b) state.buffers.push_back(in.template array<T>("optimizer buffer"));
    const std::int64_t epochs = in.i64("epochs done");
    if (epochs < 0 || epochs > (std::int64_t{1} << 31)) throw FormatError(in.context() + ": bad epoch count");
    if (!progress) return;
    Optimizer<T> optimizer = Optimizer<T>::from_config(type, config);
    optimizer.state() = std::move(state);
    progress->optimizer = std::move(optimizer);
    progress->epochs_done = static_cast<int>(epochs);
}

inline void write_shape(BinaryWriter& out, const Shape& shape) {
    out.i64(shape.channels);
    out.i64(shape.height);
    out.i64(shape.width);
}

inline Shape read_shape(BinaryReader& in) {
    Shape shape{in.i64("input channels"), in.i64("input height"), in.i64("input width")};
    const Index limit = Index{1} << 31;
    if (shape.channels < 1 || shape.height < 1 || shape.width < 1 || shape.channels > limit ||
        shape.height > limit || shape.width > limit)
        throw FormatError(in.context() + ": invalid input shape " + shape.str());
    return shape;
}

// Header + payload, written atomically.
template <class T> void write_model_file(const std::string& path, const std::string& payload) {
    BinaryWriter header;
    for (char c : model_file_magic) header.u8(static_cast<std::uint8_t>(c));
    header.u32(model_file_version);
    header.u32(sizeof(T));
    header.u64(payload.size());
    header.u32(crc32_of(payload.data(), payload.size()));
    header.u32(0);
    write_file_atomically(path, [&](std::ostream& out) {
        out.write(header.bytes().data(), static_cast<std::streamsize>(header.bytes().size()));
        out.write(payload.data(), static_cast<std::streamsize>(payload.size()));
    });
}

// The checked payload of a model file; FormatError for every way the file can be wrong.
template <class T> std::vector<char> read_model_file(const std::string& path) {
    std::vector<char> bytes = read_file(path);
    const std::string where = "'" + path + "'";
    if (bytes.size() < model_header_size)
        throw FormatError(where + ": truncated: " + std::to_string(bytes.size()) + " bytes, a model file header has " +
                          std::to_string(model_header_size));
    if (std::memcmp(bytes.data(), model_file_magic, sizeof model_file_magic) != 0)
        throw FormatError(where + ": not a latent model file (wrong magic bytes)");
    BinaryReader header(bytes.data() + 8, model_header_size - 8, where);
    const std::uint32_t version = header.u32("format version");
    const std::uint32_t scalar = header.u32("scalar size");
    const std::uint64_t payload_size = header.u64("payload size");
    const std::uint32_t checksum = header.u32("checksum");
    if (version > model_file_version)
        throw FormatError(where + ": format version " + std::to_string(version) +
                          " is newer than this library reads (" + std::to_string(model_file_version) +
                          "); update latent");
    if (version == 0) throw FormatError(where + ": invalid format version 0");
    if (scalar != sizeof(T))
        throw FormatError(where + ": the file holds " + scalar_name(scalar) + " weights; load it as a " +
                          scalar_name(scalar) + " model, not " + scalar_name(sizeof(T)));
    const std::uint64_t actual = bytes.size() - model_header_size;
    if (payload_size != actual)
        throw FormatError(where + (payload_size > actual ? ": truncated: " : ": has trailing bytes: ") + "header says " +
                          std::to_string(payload_size) + " payload bytes, file has " + std::to_string(actual));
    if (crc32_of(bytes.data() + model_header_size, actual) != checksum)
        throw FormatError(where + ": checksum mismatch: the file is corrupt");
    bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(model_header_size));
    return bytes;
}

template <class T>
std::string sequential_payload(const Sequential<T>& model, const Optimizer<T>* optimizer, int epochs_done) {
    BinaryWriter out;
    out.string("Sequential");
    write_shape(out, model.input_shape());
    write_sequential(out, model);
    write_training(out, optimizer, epochs_done);
    return out.bytes();
}

}  // namespace detail

// Saves a built model (architecture + weights).
template <class T> void save_model(const std::string& path, const Sequential<T>& model) {
    detail::write_model_file<T>(path, detail::sequential_payload<T>(model, nullptr, 0));
}

// Saves model, optimizer state and epoch count: everything fit() needs to resume exactly.
template <class T, class OptimizerType>
void save_checkpoint(const std::string& path, const Sequential<T>& model, const OptimizerType& optimizer,
                     int epochs_done) {
    const Optimizer<T> any(optimizer);
    detail::write_model_file<T>(path, detail::sequential_payload<T>(model, &any, epochs_done));
}

// Loads a Sequential saved by save_model/save_checkpoint; with `progress`, also the optimizer
// and epoch count when the file has them.
template <class T = float>
Sequential<T> load_sequential(const std::string& path, TrainingProgress<T>* progress = nullptr,
                              const LayerRegistry<T>& registry = LayerRegistry<T>::builtin()) {
    const std::vector<char> payload = detail::read_model_file<T>(path);
    detail::BinaryReader in(payload.data(), payload.size(), "'" + path + "'");
    const std::string kind = in.string("model kind");
    if (kind != "Sequential")
        throw FormatError("'" + path + "' holds a model of kind '" + kind + "', not a Sequential");
    const Shape input = detail::read_shape(in);
    Sequential<T> model = detail::read_sequential(in, input, registry);
    detail::read_training(in, progress);
    if (in.remaining() != 0) throw FormatError("'" + path + "': unexpected bytes after the model");
    return model;
}

}  // namespace latent
