// export_onnx(model, path, options): a built Sequential, Autoencoder (its encoder, decoder or whole
// reconstruction) or VAE (through the mean: encode gives mu, reconstruct decodes mu) as an ONNX
// model, opset 17, float, with a dynamic batch dimension (io/onnx.hpp). The file is written
// atomically (core/file.hpp); to_onnx gives the same bytes in memory.
//
// Each layer becomes the ONNX nodes that compute its inference forward pass:
//   Dense             Gemm (transB = 1; weight (units, inputs) as latent holds it)
//   ContractiveDense  Gemm, Sigmoid
//   Conv2D            Conv; "same" padding as explicit pads, the odd pixel at the bottom/right
//   ConvTranspose2D   ConvTranspose; pads crop the full map at the top/left as latent does, and
//                     output positions past it (which get only the bias) are output_padding
//   MaxPool2D         MaxPool with the same pads (padded cells never win, as in latent)
//   UpSample2D        Resize with scales (1, 1, fh, fw): nearest as half_pixel +
//                     round_prefer_floor (source index floor(o / f) with a margin of 1/(2f)
//                     against rounding, where asymmetric + floor would sit on the boundary);
//                     bilinear as linear + half_pixel, which clamps the source position to the
//                     input as latent does
//   ReLU, LeakyReLU, Sigmoid, Tanh, Softplus, Identity: Relu, LeakyRelu (alpha), Sigmoid, Tanh,
//                     Softplus, Identity
//   Flatten, Reshape  Flatten (axis 1), Reshape (batch copied)
//   BatchNorm         BatchNormalization on (batch, C*H*W), running statistics
//   BatchNorm2D       BatchNormalization on (batch, C, H, W), running statistics
//   Dropout, AdditiveNoise, ActivityL1, KLSparsity: Identity (they change nothing at inference)
//   GaussianSample    Slice of the first k channels: the mean mu
// Names follow the model: layer i of the encoder is the node "encoder.i" with initializers
// "encoder.i.weight", "encoder.i.bias" (a Sequential alone: "i", "i.weight").
//
// Another layer type, a user's own included, exports through a function registered for it:
//   auto exporters = OnnxExporters<float>::builtin();
//   exporters.add<Scale<float>>([](const Scale<float>& layer, OnnxLayerContext& site) {
//       const std::string scale = site.graph.add_floats(site.name + ".scale", {layer.scale()});
//       return site.graph.add_node("Mul", site.name, {site.input.name, scale}, site.input.rank);
//   });
//   options.exporters = exporters;
// Without one the export stops with an ArgumentError naming the layer and its place. The export
// functions live in their own registry, beside Registry<T> (io/registry.hpp) rather than in it:
// Registry is what every loader takes and knows nothing of ONNX; an exporter is only needed here.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../layers/activations.hpp"
#include "../layers/batch_norm.hpp"
#include "../layers/contractive_dense.hpp"
#include "../layers/conv2d.hpp"
#include "../layers/conv_transpose2d.hpp"
#include "../layers/dense.hpp"
#include "../layers/dropout.hpp"
#include "../layers/gaussian_sample.hpp"
#include "../layers/layer.hpp"
#include "../layers/max_pool2d.hpp"
#include "../layers/padding.hpp"
#include "../layers/penalties.hpp"
#include "../layers/reshape.hpp"
#include "../layers/upsample2d.hpp"
#include "../models/autoencoder.hpp"
#include "../models/sequential.hpp"
#include "../models/vae.hpp"
#include "onnx.hpp"

namespace latent {

// Where a layer is exported: the graph, the value it reads, its shapes (without the batch) and
// the name its node, output value and initializers start with.
struct OnnxLayerContext {
    onnx::Graph& graph;
    onnx::Value input;
    Shape input_shape, output_shape;
    std::string name;
};

// Export functions by layer type name. A plain value, passed in OnnxOptions: no global state.
template <class T = float> class OnnxExporters {
public:
    using Function = std::function<onnx::Value(const Layer<T>&, OnnxLayerContext&)>;

    // Every layer type latent ships.
    static OnnxExporters builtin();

    // Registers `function(const L&, OnnxLayerContext&) -> onnx::Value` for L::type_name; a later
    // registration of the same type wins.
    template <class L, class F> OnnxExporters& add(F function) {
        Function wrapped = [function](const Layer<T>& layer, OnnxLayerContext& site) {
            const L* held = layer.template get<L>();
            if (held == nullptr)  // another type with the same type_name
                throw ArgumentError("ONNX export: layer " + site.name + " is a " + layer.type() +
                                    " of another C++ type than its export function takes");
            return function(*held, site);
        };
        for (auto& entry : functions_)
            if (entry.first == L::type_name) {
                entry.second = std::move(wrapped);
                return *this;
            }
        functions_.emplace_back(L::type_name, std::move(wrapped));
        return *this;
    }

    bool has(const std::string& type) const { return find(type) != nullptr; }

    // The layer's nodes; ArgumentError naming the layer when no function is registered for it.
    onnx::Value export_layer(const Layer<T>& layer, OnnxLayerContext& site) const {
        const Function* function = find(layer.type());
        if (function == nullptr)
            throw ArgumentError("ONNX export: layer " + site.name + " (" + layer.type() +
                                ") has no ONNX export; register one: exporters.add<" + layer.type() +
                                "<T>>(function) and pass the exporters in OnnxOptions");
        return (*function)(layer, site);
    }

private:
    const Function* find(const std::string& type) const {
        for (const auto& entry : functions_)
            if (entry.first == type) return &entry.second;
        return nullptr;
    }
    std::vector<std::pair<std::string, Function>> functions_;
};

// Which part of an Autoencoder or VAE to export (a Sequential is exported whole).
enum class OnnxPart { Encoder, Decoder, Reconstruction };

template <class T = float> struct OnnxOptions {
    OnnxPart part = OnnxPart::Reconstruction;
    std::string input_name = "input";
    std::string output_name = "output";
    std::string batch_name = "batch";  // the dynamic dimension's dim_param
    OnnxExporters<T> exporters = OnnxExporters<T>::builtin();
};

namespace detail::onnx_export {

using onnx::Attribute;
using onnx::Value;
using Ints = std::vector<std::int64_t>;

// ONNX pads (top, left, bottom, right) of a window layer: latent's pad before, and the rest of
// the total TensorFlow padding after.
inline Ints window_pads(const Shape& input, Size2 kernel, Size2 stride, Padding padding) {
    auto axis = [&](Index in, Index k, Index s) {
        const Index out = window_output_size(in, k, s, padding);
        const Index before = window_pad_before(in, k, s, padding);
        const Index total = padding == Padding::Same ? std::max<Index>((out - 1) * s + k - in, 0) : 0;
        return std::pair<std::int64_t, std::int64_t>(before, total - before);
    };
    const auto [top, bottom] = axis(input.height, kernel.height, stride.height);
    const auto [left, right] = axis(input.width, kernel.width, stride.width);
    return {top, left, bottom, right};
}

inline Ints sizes(Size2 size) { return {size.height, size.width}; }

// The inputs of a Gemm, Conv or ConvTranspose with the layer's bias appended, when it has one.
template <class T> std::vector<std::string> with_bias(std::vector<std::string> inputs, bool use_bias,
                                                      OnnxLayerContext& site, const Vector<T>& bias) {
    if (use_bias) inputs.push_back(site.graph.add_weights(site.name + ".bias", {bias.size()}, bias.data()));
    return inputs;
}

// y = x W^T + b on (batch, inputs).
template <class T> Value gemm(OnnxLayerContext& site, const std::string& name, const Matrix<T>& weight,
                              bool use_bias, const Vector<T>& bias) {
    const Value x = onnx::to_matrix(site.graph, site.input);
    const std::string w = site.graph.add_weights(site.name + ".weight", {weight.rows(), weight.cols()}, weight.data());
    return site.graph.add_node("Gemm", name, with_bias({x.name, w}, use_bias, site, bias), 2,
                               {{"transB", std::int64_t{1}}});
}

template <class T> Value dense(const Dense<T>& layer, OnnxLayerContext& site) {
    return gemm(site, site.name, layer.weight(), layer.use_bias(), layer.bias());
}

template <class T> Value contractive_dense(const ContractiveDense<T>& layer, OnnxLayerContext& site) {
    const Value z = gemm(site, site.name + ".linear", layer.weight(), true, layer.bias());
    return site.graph.add_node("Sigmoid", site.name, {z.name}, 2);
}

template <class T> Value conv2d(const Conv2D<T>& layer, OnnxLayerContext& site) {
    const Value x = onnx::to_image(site.graph, site.input, site.input_shape);
    const Ints weight_dims{layer.filters(), site.input_shape.channels, layer.kernel().height, layer.kernel().width};
    const auto inputs = with_bias({x.name, site.graph.add_weights(site.name + ".weight", weight_dims, layer.weight().data())},
                                  layer.use_bias(), site, layer.bias());
    return site.graph.add_node("Conv", site.name, inputs, 4,
                               {{"kernel_shape", sizes(layer.kernel())},
                                {"strides", sizes(layer.stride())},
                                {"pads", window_pads(site.input_shape, layer.kernel(), layer.stride(), layer.padding())}});
}

// Along one axis of a transposed convolution: latent keeps the positions [before, before + out)
// of the full map of length (in - 1) * stride + kernel, where `before` is the padding of the
// Conv2D whose input is the output. ONNX crops pads_begin and pads_end from the map and appends
// output_padding positions after it: pads_end = what is left past the output, or output_padding
// = how far the output reaches past the map (0 <= it < stride, checked).
struct TransposeAxis {
    std::int64_t pad_begin, pad_end, output_padding;
};
inline TransposeAxis transpose_axis(Index in, Index out, Index kernel, Index stride, Padding padding,
                                    const std::string& name) {
    const Index full = (in - 1) * stride + kernel;
    const Index before = window_pad_before(out, kernel, stride, padding);
    const Index after = full - before - out;
    const TransposeAxis axis{before, std::max<Index>(after, 0), std::max<Index>(-after, 0)};
    if (axis.output_padding >= stride)
        throw ArgumentError("ONNX export: layer " + name + " (ConvTranspose2D) needs an output_padding of " +
                            std::to_string(axis.output_padding) + ", which ONNX allows only below the stride " +
                            std::to_string(stride));
    return axis;
}

template <class T> Value conv_transpose2d(const ConvTranspose2D<T>& layer, OnnxLayerContext& site) {
    const Value x = onnx::to_image(site.graph, site.input, site.input_shape);
    const Shape &in = site.input_shape, &out = site.output_shape;
    const TransposeAxis rows = transpose_axis(in.height, out.height, layer.kernel().height, layer.stride().height,
                                              layer.padding(), site.name);
    const TransposeAxis columns = transpose_axis(in.width, out.width, layer.kernel().width, layer.stride().width,
                                                 layer.padding(), site.name);
    // latent's weight (C, F*kh*kw) is ONNX's (C, F, kh, kw).
    const Ints weight_dims{in.channels, layer.filters(), layer.kernel().height, layer.kernel().width};
    const auto inputs = with_bias({x.name, site.graph.add_weights(site.name + ".weight", weight_dims, layer.weight().data())},
                                  layer.use_bias(), site, layer.bias());
    return site.graph.add_node(
        "ConvTranspose", site.name, inputs, 4,
        {{"kernel_shape", sizes(layer.kernel())},
         {"strides", sizes(layer.stride())},
         {"pads", Ints{rows.pad_begin, columns.pad_begin, rows.pad_end, columns.pad_end}},
         {"output_padding", Ints{rows.output_padding, columns.output_padding}}});
}

template <class T> Value max_pool2d(const MaxPool2D<T>& layer, OnnxLayerContext& site) {
    const Value x = onnx::to_image(site.graph, site.input, site.input_shape);
    return site.graph.add_node("MaxPool", site.name, {x.name}, 4,
                               {{"kernel_shape", sizes(layer.pool())},
                                {"strides", sizes(layer.stride())},
                                {"pads", window_pads(site.input_shape, layer.pool(), layer.stride(), layer.padding())}});
}

template <class T> Value upsample2d(const UpSample2D<T>& layer, OnnxLayerContext& site) {
    const Value x = onnx::to_image(site.graph, site.input, site.input_shape);
    const std::string scales = site.graph.add_floats(
        site.name + ".scales",
        {1.0f, 1.0f, static_cast<float>(layer.factor().height), static_cast<float>(layer.factor().width)});
    std::vector<Attribute> attributes{{"coordinate_transformation_mode", std::string("half_pixel")}};
    if (layer.interpolation() == Interpolation::Nearest) {
        attributes.push_back({"mode", std::string("nearest")});
        attributes.push_back({"nearest_mode", std::string("round_prefer_floor")});
    } else {
        attributes.push_back({"mode", std::string("linear")});
    }
    return site.graph.add_node("Resize", site.name, {x.name, "", scales}, 4, attributes);
}

template <class T> Value reshape(const Reshape<T>&, OnnxLayerContext& site) {
    const Shape& target = site.output_shape;
    const std::string shape =
        site.graph.add_int64s(site.name + ".shape", {0, target.channels, target.height, target.width});
    return site.graph.add_node("Reshape", site.name, {site.input.name, shape}, 4);
}

template <class T> Value flatten(const Flatten<T>&, OnnxLayerContext& site) {
    return site.graph.add_node("Flatten", site.name, {site.input.name}, 2, {{"axis", std::int64_t{1}}});
}

// Batch normalization with the running statistics: per feature on (batch, C*H*W), or per channel
// on (batch, C, H, W).
template <class T, bool PerChannel> Value batch_norm(const BatchNormalization<T, PerChannel>& layer, OnnxLayerContext& site) {
    const Value x = PerChannel ? onnx::to_image(site.graph, site.input, site.input_shape)
                               : onnx::to_matrix(site.graph, site.input);
    auto vector = [&](const char* what, const Vector<T>& values) {
        return site.graph.add_weights(site.name + "." + what, {values.size()}, values.data());
    };
    return site.graph.add_node("BatchNormalization", site.name,
                               {x.name, vector("weight", layer.weight()), vector("bias", layer.bias()),
                                vector("running_mean", layer.running_mean()), vector("running_var", layer.running_var())},
                               x.rank, {{"epsilon", static_cast<float>(layer.eps())}});
}

// The mean mu: the first k of the 2k channels.
template <class T> Value gaussian_mean(const GaussianSample<T>&, OnnxLayerContext& site) {
    auto bound = [&](const char* what, std::int64_t value) {
        return site.graph.add_int64s(site.name + "." + what, {value});
    };
    return site.graph.add_node("Slice", site.name,
                               {site.input.name, bound("starts", 0), bound("ends", site.output_shape.channels),
                                bound("axes", 1)},
                               site.input.rank);
}

// One node `op_type` on the input as it is: element-wise layers.
template <class L> auto elementwise(const char* op_type, std::vector<Attribute> attributes = {}) {
    return [op_type, attributes](const L&, OnnxLayerContext& site) {
        return site.graph.add_node(op_type, site.name, {site.input.name}, site.input.rank, attributes);
    };
}

template <class T> Value leaky_relu(const LeakyReLU<T>& layer, OnnxLayerContext& site) {
    return elementwise<LeakyReLU<T>>("LeakyRelu", {{"alpha", static_cast<float>(layer.alpha())}})(layer, site);
}

}  // namespace detail::onnx_export

template <class T> OnnxExporters<T> OnnxExporters<T>::builtin() {
    namespace ex = detail::onnx_export;
    OnnxExporters exporters;
    exporters.template add<Dense<T>>(ex::dense<T>)
        .template add<ContractiveDense<T>>(ex::contractive_dense<T>)
        .template add<Conv2D<T>>(ex::conv2d<T>)
        .template add<ConvTranspose2D<T>>(ex::conv_transpose2d<T>)
        .template add<MaxPool2D<T>>(ex::max_pool2d<T>)
        .template add<UpSample2D<T>>(ex::upsample2d<T>)
        .template add<Reshape<T>>(ex::reshape<T>)
        .template add<Flatten<T>>(ex::flatten<T>)
        .template add<BatchNorm<T>>(ex::batch_norm<T, false>)
        .template add<BatchNorm2D<T>>(ex::batch_norm<T, true>)
        .template add<GaussianSample<T>>(ex::gaussian_mean<T>)
        .template add<LeakyReLU<T>>(ex::leaky_relu<T>)
        .template add<ReLU<T>>(ex::elementwise<ReLU<T>>("Relu"))
        .template add<Sigmoid<T>>(ex::elementwise<Sigmoid<T>>("Sigmoid"))
        .template add<Tanh<T>>(ex::elementwise<Tanh<T>>("Tanh"))
        .template add<Softplus<T>>(ex::elementwise<Softplus<T>>("Softplus"))
        .template add<Identity<T>>(ex::elementwise<Identity<T>>("Identity"))
        .template add<Dropout<T>>(ex::elementwise<Dropout<T>>("Identity"))
        .template add<AdditiveNoise<T>>(ex::elementwise<AdditiveNoise<T>>("Identity"))
        .template add<ActivityL1<T>>(ex::elementwise<ActivityL1<T>>("Identity"))
        .template add<KLSparsity<T>>(ex::elementwise<KLSparsity<T>>("Identity"));
    return exporters;
}

namespace detail::onnx_export {

// The layers of `model` one after the other from `value`; names "<prefix>i".
template <class T> Value sequential(const Sequential<T>& model, const std::string& prefix, onnx::Graph& graph,
                                    Value value, const OnnxExporters<T>& exporters) {
    for (Index i = 0; i < model.size(); ++i) {
        const Layer<T>& layer = model.layer(i);
        OnnxLayerContext site{graph, value, layer.input_shape(), layer.output_shape(), prefix + std::to_string(i)};
        value = exporters.export_layer(layer, site);
    }
    return value;
}

template <class T> void require_built(const Sequential<T>& model, const char* what) {
    if (!model.is_built())
        throw ArgumentError(std::string("ONNX export: the ") + what + " is not built (its input shape is unknown)");
}

// A graph from `input_shape` through `body(graph, input value)` to `output_shape`, as ModelProto bytes.
template <class T, class Body>
std::string model_bytes(const OnnxOptions<T>& options, const std::string& graph_name, const Shape& input_shape,
                        const Shape& output_shape, Body&& body) {
    onnx::Graph graph(graph_name, options.batch_name);
    const Value input = graph.add_input(options.input_name, input_shape);
    const Value last = onnx::to_image(graph, body(graph, input), output_shape);
    const Value output = graph.add_node("Identity", options.output_name, {last.name}, 4);
    graph.add_output(output, output_shape);
    return graph.model_bytes("latent", "0.1");
}

inline const char* part_name(OnnxPart part) {
    return part == OnnxPart::Encoder ? "encoder" : part == OnnxPart::Decoder ? "decoder" : "reconstruction";
}

}  // namespace detail::onnx_export

// The ONNX model of a built Sequential, as the bytes of an .onnx file.
template <class T> std::string to_onnx(const Sequential<T>& model, const OnnxOptions<T>& options = {}) {
    namespace ex = detail::onnx_export;
    ex::require_built(model, "model");
    return ex::model_bytes(options, "sequential", model.input_shape(), model.output_shape(),
                           [&](onnx::Graph& graph, onnx::Value input) {
                               return ex::sequential(model, "", graph, input, options.exporters);
                           });
}

// An Autoencoder's options.part: the encoder (x -> code), the decoder (code -> x) or both.
template <class T> std::string to_onnx(const Autoencoder<T>& model, const OnnxOptions<T>& options = {}) {
    namespace ex = detail::onnx_export;
    ex::require_built(model.encoder(), "encoder");
    ex::require_built(model.decoder(), "decoder");
    const bool encoder = options.part != OnnxPart::Decoder, decoder = options.part != OnnxPart::Encoder;
    return ex::model_bytes(options, ex::part_name(options.part), encoder ? model.input_shape() : model.code_shape(),
                           decoder ? model.output_shape() : model.code_shape(),
                           [&](onnx::Graph& graph, onnx::Value value) {
                               if (encoder) value = ex::sequential(model.encoder(), "encoder.", graph, value, options.exporters);
                               if (decoder) value = ex::sequential(model.decoder(), "decoder.", graph, value, options.exporters);
                               return value;
                           });
}

// A VAE through its mean: the encoder to mu (x -> mu, as encode()), the decoder (z -> x), or
// both (x -> decoder(mu), as reconstruct()).
template <class T> std::string to_onnx(const VariationalAutoencoder<T>& model, const OnnxOptions<T>& options = {}) {
    namespace ex = detail::onnx_export;
    ex::require_built(model.encoder(), "encoder");
    const bool encoder = options.part != OnnxPart::Decoder, decoder = options.part != OnnxPart::Encoder;
    return ex::model_bytes(
        options, ex::part_name(options.part), encoder ? model.input_shape() : model.latent_shape(),
        decoder ? model.output_shape() : model.latent_shape(), [&](onnx::Graph& graph, onnx::Value value) {
            if (encoder) {
                value = ex::sequential(model.encoder(), "encoder.", graph, value, options.exporters);
                OnnxLayerContext site{graph, value, model.encoder().output_shape(), model.latent_shape(), "mean"};
                value = ex::gaussian_mean(model.sampler(), site);
            }
            if (decoder) value = ex::sequential(model.decoder(), "decoder.", graph, value, options.exporters);
            return value;
        });
}

// Writes to_onnx(model, options) to `path`, atomically.
template <class Model, class T>
void export_onnx(const Model& model, const std::string& path, const OnnxOptions<T>& options) {
    const std::string bytes = to_onnx(model, options);
    write_file_atomically(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}
template <class Model> void export_onnx(const Model& model, const std::string& path) {
    export_onnx(model, path, OnnxOptions<typename Model::Scalar>{});
}

}  // namespace latent
