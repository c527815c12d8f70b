// PyTorch weights in and out: a model's weights under the names and layouts of the state_dict()
// of the equivalent torch network, read from and written to .safetensors or .npz files.
//
// Names. A Sequential is an nn.Sequential: "<module>.<array>", the module counted as
// nn.Sequential counts them, parameter-less modules included. Every latent layer is one torch
// module, with two exceptions that keep the torch network the natural one:
//   - a Dense or ContractiveDense whose input is not flat (height or width above 1) flattens it
//     implicitly; in torch that is nn.Flatten() then nn.Linear, two modules, and the weights are
//     under the second;
//   - a ContractiveDense is nn.Linear then nn.Sigmoid, two modules, the weights under the first.
// An Autoencoder or a VariationalAutoencoder is a torch module with two nn.Sequential members,
// "encoder." and "decoder." (the VAE's GaussianSample has no weights and belongs to neither).
//
// Layouts (latent holds every array in torch's C order already, so values copy one to one):
//   Dense / ContractiveDense   nn.Linear         weight (out, in), bias (out)
//   Conv2D                     nn.Conv2d         weight (out, in, kh, kw) "OIHW", bias (out)
//   ConvTranspose2D            nn.ConvTranspose2d weight (in, out, kh, kw) "IOHW", bias (out)
//   BatchNorm (C*H*W features) nn.BatchNorm1d    weight, bias, running_mean, running_var (C*H*W),
//   BatchNorm2D (C channels)   nn.BatchNorm2d    ... (C), and num_batches_tracked, an int64 scalar
//   a layer of your own        one module        each parameter and buffer as a 1-D array
// latent does not count batches (its momentum is fixed, so the count would change nothing):
// num_batches_tracked is written as 0 and, on import, must be present as an int64 scalar and is
// otherwise ignored.
//
// Element types. export_weights writes the model's scalar type (float32 for float, float64 for
// double). import_weights reads float32 or float64 arrays into a model of either type, converting
// (float64 -> float rounds to nearest), and refuses a value that is not finite after conversion.
//
// import_weights checks every name, shape and element type against the model and reports every
// mismatch -- missing, unexpected, wrong shape, wrong type -- in one FormatError before it changes
// any weight; a file that fails to load leaves the model as it was.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../layers/batch_norm.hpp"
#include "../layers/contractive_dense.hpp"
#include "../layers/conv2d.hpp"
#include "../layers/conv_transpose2d.hpp"
#include "../layers/dense.hpp"
#include "../models/autoencoder.hpp"
#include "../models/sequential.hpp"
#include "../models/vae.hpp"
#include "named_arrays.hpp"
#include "npz.hpp"
#include "safetensors.hpp"

namespace latent {

// One entry of a model's state_dict: its torch name and shape, and the latent array holding its
// values in the same order (null for num_batches_tracked, which latent does not keep).
template <class T> struct StateDictEntry {
    std::string name;
    std::vector<Index> shape;
    T* values = nullptr;
    Index size = 0;
};

namespace detail {

// The torch modules a latent layer stands for: `before` parameter-less ones ahead of the module
// that holds its arrays (an implicit nn.Flatten), `after` ones behind it (nn.Sigmoid).
struct TorchModules {
    Index before = 0, after = 0;
};

template <class T> TorchModules torch_modules(const Layer<T>& layer) {
    const bool linear = layer.template is<Dense<T>>() || layer.template is<ContractiveDense<T>>();
    const bool flat_input = layer.input_shape().height == 1 && layer.input_shape().width == 1;
    return {linear && !flat_input ? 1 : 0, layer.template is<ContractiveDense<T>>() ? 1 : 0};
}

template <class T> bool is_batch_norm(const Layer<T>& layer) { return layer.template is<BatchNorm<T>>() || layer.template is<BatchNorm2D<T>>(); }

// The torch shape of the layer's array `name` of `size` values.
template <class T> std::vector<Index> torch_shape(const Layer<T>& layer, const std::string& name, Index size) {
    const Shape& in = layer.input_shape();
    const Shape& out = layer.output_shape();
    if (name == "weight") {
        if (layer.template is<Dense<T>>() || layer.template is<ContractiveDense<T>>()) return {out.size(), in.size()};
        if (const auto* conv = layer.template get<Conv2D<T>>()) return {out.channels, in.channels, conv->kernel().height, conv->kernel().width};
        if (const auto* deconv = layer.template get<ConvTranspose2D<T>>())
            return {in.channels, out.channels, deconv->kernel().height, deconv->kernel().width};
    }
    return {size};
}

template <class T>
void append_state_dict(Sequential<T>& model, const std::string& prefix, std::vector<StateDictEntry<T>>& entries) {
    if (!model.is_built()) throw ArgumentError("state_dict: the model is not built (build it first)");
    Index module = 0;
    for (Index i = 0; i < model.size(); ++i) {
        Layer<T>& layer = model.layer(i);
        const TorchModules modules = torch_modules(layer);
        const std::string owner = prefix + std::to_string(module + modules.before) + ".";
        for (const Parameter<T>& parameter : layer.parameters())
            entries.push_back({owner + parameter.name, torch_shape(layer, parameter.name, parameter.size), parameter.value, parameter.size});
        for (const Buffer<T>& buffer : layer.buffers()) entries.push_back({owner + buffer.name, {buffer.size}, buffer.value, buffer.size});
        if (is_batch_norm(layer)) entries.push_back({owner + "num_batches_tracked", {}, nullptr, 1});
        module += modules.before + 1 + modules.after;
    }
}

template <class T, class Model> std::vector<StateDictEntry<T>> encoder_decoder_state_dict(Model& model) {
    std::vector<StateDictEntry<T>> entries;
    append_state_dict(model.encoder(), "encoder.", entries);
    append_state_dict(model.decoder(), "decoder.", entries);
    return entries;
}

}  // namespace detail

// The state_dict of the torch network equivalent to `model` (see the top of this header).
template <class T> std::vector<StateDictEntry<T>> state_dict(Sequential<T>& model) {
    std::vector<StateDictEntry<T>> entries;
    detail::append_state_dict(model, "", entries);
    return entries;
}
template <class T> std::vector<StateDictEntry<T>> state_dict(Autoencoder<T>& model) {
    return detail::encoder_decoder_state_dict<T>(model);
}
template <class T> std::vector<StateDictEntry<T>> state_dict(VariationalAutoencoder<T>& model) {
    return detail::encoder_decoder_state_dict<T>(model);
}

namespace detail {

inline bool has_suffix(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A weight file's arrays: an .npz archive when the name ends in ".npz" or the content starts
// like a zip archive, a .safetensors file otherwise.
inline NamedArrays read_weight_file(const std::string& path) {
    const std::vector<char> file = read_file(path);
    const std::string_view bytes(file.data(), file.size());
    const bool zip = bytes.substr(0, 4) == std::string_view("PK\x03\x04", 4) || bytes.substr(0, 4) == std::string_view("PK\x05\x06", 4);
    return has_suffix(path, ".npz") || zip ? parse_npz(bytes, path) : parse_safetensors(bytes, path);
}

// Every way `arrays` fails to fit `entries`, one line each; empty when they fit.
template <class T>
std::vector<std::string> weight_mismatches(const std::vector<StateDictEntry<T>>& entries, const NamedArrays& arrays) {
    std::map<std::string, const NamedArray*> by_name;
    for (const NamedArray& array : arrays) by_name[array.name] = &array;
    std::vector<std::string> problems;
    for (const StateDictEntry<T>& entry : entries) {
        const auto found = by_name.find(entry.name);
        if (found == by_name.end()) {
            problems.push_back("missing " + entry.name + " " + shape_text(entry.shape));
            continue;
        }
        const NamedArray& array = *found->second;
        by_name.erase(found);
        if (array.shape != entry.shape)
            problems.push_back("wrong shape: " + entry.name + " is " + shape_text(array.shape) + " in the file, the model needs " +
                               shape_text(entry.shape));
        const bool counter = entry.values == nullptr;
        if (counter != (array.type == ElementType::I64))
            problems.push_back("wrong type: " + entry.name + " is " + element_type_name(array.type) + " in the file, the model needs " +
                               (counter ? "int64" : "float32 or float64"));
    }
    for (const auto& [name, array] : by_name) problems.push_back("unexpected " + name + " " + shape_text(array->shape));
    return problems;
}

}  // namespace detail

// Replaces the weights of `model` (a built Sequential, Autoencoder or VariationalAutoencoder)
// with those of the .safetensors or .npz file `path`. Every name, shape and type is checked first;
// FormatError listing every mismatch, NumericError for a value that is not finite, and the model
// unchanged, when the file does not fit.
template <class Model> void import_weights(Model& model, const std::string& path) {
    using T = typename Model::Scalar;
    const NamedArrays arrays = detail::read_weight_file(path);
    const std::vector<StateDictEntry<T>> entries = state_dict(model);
    const std::vector<std::string> problems = detail::weight_mismatches(entries, arrays);
    if (!problems.empty()) {
        std::string text = "'" + path + "': the weights do not fit the model (" + std::to_string(problems.size()) +
                           (problems.size() == 1 ? " problem):" : " problems):");
        for (const std::string& problem : problems) text += "\n  " + problem;
        throw FormatError(text);
    }
    std::map<std::string, const NamedArray*> by_name;
    for (const NamedArray& array : arrays) by_name[array.name] = &array;
    std::vector<std::vector<T>> staged;  // all converted and checked before the first one is copied
    for (const StateDictEntry<T>& entry : entries) {
        if (entry.values == nullptr) continue;
        staged.push_back(array_values<T>(*by_name.at(entry.name)));
        for (const T value : staged.back())
            if (!std::isfinite(value))
                throw NumericError("'" + path + "': " + entry.name + " holds a value that is not finite (" + std::to_string(value) + ")");
    }
    auto next = staged.begin();
    for (const StateDictEntry<T>& entry : entries) {
        if (entry.values == nullptr) continue;
        std::copy(next->begin(), next->end(), entry.values);
        ++next;
    }
}

// Writes the weights of `model` under their state_dict names to `path`, atomically: a
// .safetensors file, or an .npz archive (deflated members unless told) -- chosen by the name's
// ending; ArgumentError for any other.
template <class Model>
void export_weights(Model& model, const std::string& path, NpzCompression compression = NpzCompression::Deflated) {
    using T = typename Model::Scalar;
    const bool npz = detail::has_suffix(path, ".npz");
    if (!npz && !detail::has_suffix(path, ".safetensors"))
        throw ArgumentError("export_weights: '" + path + "': the name must end in .safetensors or .npz");
    NamedArrays arrays;
    const std::int64_t batches_tracked = 0;
    for (const StateDictEntry<T>& entry : state_dict(model))
        arrays.push_back(entry.values ? make_array(entry.name, entry.shape, entry.values)
                                      : make_array(entry.name, entry.shape, &batches_tracked));
    if (npz) write_npz(path, arrays, compression);
    else write_safetensors(path, arrays);
}

}  // namespace latent
