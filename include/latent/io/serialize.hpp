// Model files: architecture, weights and (optionally) the training state in one file.
//
// Layout, all integers little-endian (format version 2; version 1 files, which lack the parts
// marked [2], still load):
//   header (32 bytes):  magic "\x89LATENT\n" | u32 format version | u32 scalar size (4 float, 8 double)
//                       | u64 payload size | u32 CRC-32 of the payload | u32 reserved (0)
//   payload:            string kind ("Sequential", "Autoencoder", "VariationalAutoencoder" or
//                       "AnomalyDetector") | model | training state
//   model:              i64 C, H, W of the input | sequential(s): u32 layer count, then per layer:
//                       string type | [2] u32 the layer type's own format version
//                       | u32 n, n x (string key, string value) config
//                       | u32 m, m x (string name, u64 count, count scalars) parameters
//                       | [2] u32 b, b x (string name, u64 count, count scalars) buffers
//   training state:     u8 present | string optimizer type | config | i64 step
//                       | u32 k, k x (u64 count, count scalars) optimizer buffers | i64 epochs done
//                       | [2] u32 c, c x (string callback name, config) callback states
//   AnomalyDetector:    the Autoencoder's model | config of the detector (version, score, threshold)
//                       | config of its scaler (data/scalers.hpp) | training state absent (u8 0)
// Strings are u32 length + bytes. Every count is checked against the bytes left before any
// allocation. A layer stored in a newer version of its own format than the library's is refused
// by name. Files are written atomically (temporary file + rename).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "../core/crc32.hpp"
#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../models/sequential.hpp"
#include "../optimizers/optimizer.hpp"
#include "binary.hpp"
#include "registry.hpp"

namespace latent {

// The states of a run's callbacks (schedules, early stopping), by callback name.
using CallbackStates = std::vector<std::pair<std::string, Config>>;

// What a checkpoint holds besides the model: the optimizer (type, settings, moments, step
// count), how many epochs were done and the callbacks' states -- hand it to
// FitOptions::resume_from() to go on exactly where training stopped.
template <class T = float> struct TrainingProgress {
    std::optional<Optimizer<T>> optimizer;
    int epochs_done = 0;
    CallbackStates callback_states;
};

namespace detail {

constexpr char model_file_magic[8] = {'\x89', 'L', 'A', 'T', 'E', 'N', 'T', '\n'};
constexpr std::uint32_t model_file_version = 2;
constexpr std::size_t model_header_size = 32;

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

// One layer's named arrays (its parameters or its buffers) of a model's list of them.
template <class Arrays>
void write_arrays_of_layer(BinaryWriter& out, const std::vector<Index>& owners, Index layer, const Arrays& arrays) {
    std::uint32_t count = 0;
    for (Index owner : owners) count += owner == layer;
    out.u32(count);
    for (std::size_t a = 0; a < arrays.size(); ++a)
        if (owners[a] == layer) {
            out.string(arrays[a].name);
            out.array(arrays[a].value, static_cast<std::uint64_t>(arrays[a].size));
        }
}

template <class T> void write_sequential(BinaryWriter& out, const Sequential<T>& model) {
    out.u32(static_cast<std::uint32_t>(model.size()));
    for (Index i = 0; i < model.size(); ++i) {
        out.string(model.layer(i).type());
        out.u32(static_cast<std::uint32_t>(model.layer(i).version()));
        write_config(out, model.layer(i).config());
        write_arrays_of_layer(out, model.parameter_layers(), i, model.parameters());
        write_arrays_of_layer(out, model.buffer_layers(), i, model.buffers());
    }
}

// A model file's payload as it is read: the bytes, the file's format version, the registry
// that turns type names into objects.
template <class T> struct PayloadReader {
    BinaryReader in;
    std::uint32_t version;
    const Registry<T>& registry;
};

// Skips one layer's named arrays (its parameters or its buffers) and returns how many values
// they hold.
template <class T> std::uint64_t skip_arrays_of_layer(BinaryReader& in, const char* what) {
    const auto count = in.count(what, 12);
    std::uint64_t values = 0;
    for (std::uint64_t a = 0; a < count; ++a) {
        in.string("array name");
        values += in.template skip_array<T>("array values");  // each bounded by the file's size
    }
    return values;
}

// Reads one layer's named arrays into `arrays` (the model's parameters or buffers, with their
// owning layers), which must match the rebuilt layer's, name for name.
template <class T, class Arrays>
void read_arrays_of_layer(BinaryReader& in, const Sequential<T>& model, Index layer, const Arrays& arrays,
                          const std::vector<Index>& owners, std::size_t& next, const char* what) {
    const auto count = in.count(what, 12);
    const std::string layer_name = model.layer_name(layer);
    for (std::uint64_t a = 0; a < count; ++a) {
        const std::string name = in.string("array name");
        if (next >= arrays.size() || owners[next] != layer || arrays[next].name != name)
            throw FormatError(in.context() + ": " + layer_name + " has no " + what + " '" + name +
                              "' in this order (the file does not match the layer's definition)");
        in.array_into(arrays[next].value, static_cast<std::uint64_t>(arrays[next].size), layer_name + " " + name);
        ++next;
    }
    if (next < arrays.size() && owners[next] == layer)
        throw FormatError(in.context() + ": " + layer_name + " is missing " + what + " '" + arrays[next].name + "'");
}

// Rebuilds a Sequential for `input` from its layer list, then reads the weights into it. The
// whole configuration is checked against the file before any layer allocates: every layer's
// shape, and the parameter values its configuration implies against the values the file holds
// for it (a small file cannot make the loader allocate what a large layer would need).
template <class T> Sequential<T> read_sequential(PayloadReader<T>& file, const Shape& input) {
    BinaryReader& in = file.in;
    const bool has_versions = file.version >= 2;
    Sequential<T> model;
    const auto layer_count = in.count("layer count", 12);
    if (layer_count == 0) throw FormatError(in.context() + ": a model with no layers");
    BinaryReader layers = in;  // first pass: architecture only
    Shape shape = input;
    for (std::uint64_t i = 0; i < layer_count; ++i) {
        const std::string type = layers.string("layer type");
        const std::uint32_t version = has_versions ? layers.u32("layer version") : 1;
        Layer<T> layer = file.registry.create_layer(type, read_config(layers));
        const std::string name = "layer " + std::to_string(i + 1) + " (" + type + ")";
        if (version > static_cast<std::uint32_t>(layer.version()) || version == 0)
            throw FormatError(in.context() + ": " + name + " is stored in version " + std::to_string(version) +
                              " of its format; this library reads up to version " + std::to_string(layer.version()) +
                              " (update latent)");
        const std::uint64_t stored = skip_arrays_of_layer<T>(layers, "parameter");
        if (has_versions) skip_arrays_of_layer<T>(layers, "buffer");
        try {
            const std::optional<Index> expected = layer.parameter_values(shape);
            if (expected && static_cast<std::uint64_t>(*expected) != stored)
                throw FormatError(in.context() + ": " + name + " on input " + shape.str() + " has " +
                                  std::to_string(*expected) + " parameter values, the file holds " +
                                  std::to_string(stored));
            shape = layer.output_shape(shape);
        } catch (const ShapeError& error) {
            throw FormatError(in.context() + ": " + name + " does not fit its input " + shape.str() + ": " + error.what());
        }
        model.add(std::move(layer));
    }
    model.build(input);
    // Second pass: the weights and buffers, checked against what the rebuilt layers expect.
    std::size_t next_parameter = 0, next_buffer = 0;
    for (std::uint64_t i = 0; i < layer_count; ++i) {
        in.string("layer type");
        if (has_versions) in.u32("layer version");
        read_config(in);
        const auto layer = static_cast<Index>(i);
        read_arrays_of_layer(in, model, layer, model.parameters(), model.parameter_layers(), next_parameter, "parameter");
        if (has_versions)
            read_arrays_of_layer(in, model, layer, model.buffers(), model.buffer_layers(), next_buffer, "buffer");
        else if (next_buffer < model.buffers().size() && model.buffer_layers()[next_buffer] == layer)
            throw FormatError(in.context() + ": " + model.layer_name(layer) + " needs buffer '" +
                              model.buffers()[next_buffer].name + "', which format version 1 files do not hold");
    }
    return model;
}

// The training state of a checkpoint; `optimizer` is any optimizer type (optimizers/optimizer.hpp).
template <class T, class OptimizerType>
void write_training(BinaryWriter& out, const OptimizerType& optimizer, int epochs_done, const CallbackStates& states) {
    out.u8(1);
    out.string(optimizer_type(optimizer));
    write_config(out, optimizer.config());
    const OptimizerState<T>& state = optimizer.state();
    out.i64(state.step);
    out.u32(static_cast<std::uint32_t>(state.buffers.size()));
    for (const auto& buffer : state.buffers) out.array(buffer.data(), buffer.size());
    out.i64(epochs_done);
    out.u32(static_cast<std::uint32_t>(states.size()));
    for (const auto& [name, config] : states) {
        out.string(name);
        write_config(out, config);
    }
}
inline void write_no_training(BinaryWriter& out) { out.u8(0); }

template <class T> void read_training(PayloadReader<T>& file, TrainingProgress<T>* progress) {
    BinaryReader& in = file.in;
    if (in.u8("training state flag") == 0) return;
    const std::string type = in.string("optimizer type");
    const Config config = read_config(in);
    OptimizerState<T> state;
    state.step = in.i64("optimizer step");
    if (state.step < 0) throw FormatError(in.context() + ": negative optimizer step count");
    const auto buffers = in.count("optimizer buffer count", 8);
    for (std::uint64_t b = 0; b < buffers; ++b) state.buffers.push_back(in.template array<T>("optimizer buffer"));
    const std::int64_t epochs = in.i64("epochs done");
    if (epochs < 0 || epochs > (std::int64_t{1} << 31)) throw FormatError(in.context() + ": bad epoch count");
    CallbackStates states;
    if (file.version >= 2) {
        const auto count = in.count("callback state count", 8);
        for (std::uint64_t c = 0; c < count; ++c) {
            std::string name = in.string("callback name");
            states.emplace_back(std::move(name), read_config(in));
        }
    }
    if (!progress) return;
    Optimizer<T> optimizer = file.registry.create_optimizer(type, config);
    optimizer.state() = std::move(state);
    progress->optimizer = std::move(optimizer);
    progress->epochs_done = static_cast<int>(epochs);
    progress->callback_states = std::move(states);
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

// Header + payload, written atomically. (`version` other than the current one: for tests that
// check reading older files.)
template <class T>
void write_model_file(const std::string& path, const std::string& payload, std::uint32_t version = model_file_version) {
    BinaryWriter header;
    for (char c : model_file_magic) header.u8(static_cast<std::uint8_t>(c));
    header.u32(version);
    header.u32(sizeof(T));
    header.u64(payload.size());
    header.u32(crc32_of(payload.data(), payload.size()));
    header.u32(0);
    write_file_atomically(path, [&](std::ostream& out) {
        out.write(header.bytes().data(), static_cast<std::streamsize>(header.bytes().size()));
        out.write(payload.data(), static_cast<std::streamsize>(payload.size()));
    });
}

// A model file's checked payload and its format version.
struct ModelFile {
    std::vector<char> payload;
    std::uint32_t version = 0;
};

// FormatError for every way the file can be wrong.
template <class T> ModelFile read_model_file(const std::string& path) {
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
    return ModelFile{std::move(bytes), version};
}

// Reads a model file of `kind` ("Sequential", "Autoencoder"): `read_model` reads the model from
// the payload reader, then the training state goes to `progress` (when given) and nothing may follow.
template <class T, class ReadModel>
auto read_model(const std::string& path, const char* kind, TrainingProgress<T>* progress, const Registry<T>& registry,
                ReadModel&& read_model_part) {
    const ModelFile file = read_model_file<T>(path);
    PayloadReader<T> reader{BinaryReader(file.payload.data(), file.payload.size(), "'" + path + "'"), file.version,
                            registry};
    const std::string stored = reader.in.string("model kind");
    if (stored != kind)
        throw FormatError("'" + path + "' holds a model of kind '" + stored + "', not '" + kind +
                          "': load it with the loader of its kind");
    auto model = read_model_part(reader);
    read_training(reader, progress);
    if (reader.in.remaining() != 0) throw FormatError("'" + path + "': unexpected bytes after the model");
    return model;
}

// A Sequential's payload; `write_training_part(out)` writes the training state.
template <class T, class WriteTraining>
std::string sequential_payload(const Sequential<T>& model, WriteTraining&& write_training_part) {
    BinaryWriter out;
    out.string("Sequential");
    write_shape(out, model.input_shape());
    write_sequential(out, model);
    write_training_part(out);
    return out.bytes();
}

}  // namespace detail

// Saves a built model (architecture + weights).
template <class T> void save_model(const std::string& path, const Sequential<T>& model) {
    detail::write_model_file<T>(path, detail::sequential_payload(model, detail::write_no_training));
}

// Saves model, optimizer state, epoch count and the callbacks' states: everything fit() needs to
// resume exactly. `optimizer` is any optimizer type.
template <class T, class OptimizerType>
void save_checkpoint(const std::string& path, const Sequential<T>& model, const OptimizerType& optimizer,
                     int epochs_done, const CallbackStates& callback_states = {}) {
    detail::write_model_file<T>(path, detail::sequential_payload(model, [&](detail::BinaryWriter& out) {
                                    detail::write_training<T>(out, optimizer, epochs_done, callback_states);
                                }));
}

// Loads a Sequential saved by save_model/save_checkpoint; with `progress`, also the optimizer,
// epoch count and callback states when the file has them.
template <class T = float>
Sequential<T> load_sequential(const std::string& path, TrainingProgress<T>* progress = nullptr,
                              const Registry<T>& registry = Registry<T>::builtin()) {
    return detail::read_model<T>(path, "Sequential", progress, registry, [](detail::PayloadReader<T>& reader) {
        const Shape input = detail::read_shape(reader.in);
        return detail::read_sequential(reader, input);
    });
}

}  // namespace latent
