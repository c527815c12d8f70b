// onnx::Graph: builds an ONNX model (IR version 8, opset 17, the default "ai.onnx" domain) node by
// node and writes it as ModelProto bytes (io/protobuf.hpp), without libprotobuf.
//
// Rules of the graphs latent writes:
// - Every value is float. A double model's weights are rounded to the nearest float.
// - The graph's input and output are (batch, C, H, W) with a dynamic batch dimension (a named
//   dim_param); inside, a value is either rank 4, (batch, C, H, W), or rank 2, (batch, features),
//   after a Flatten or a Gemm. to_matrix and to_image convert between the two where a node needs
//   the other, so consecutive dense layers stay rank 2.
// - Every value, node and initializer name is unique; a repeated one is an ArgumentError.
// - Initializers hold their values as raw_data, little-endian whatever the host's byte order.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "protobuf.hpp"

namespace latent::onnx {

constexpr std::int64_t ir_version = 8;  // the IR version of opset 17 (ONNX 1.12)
constexpr std::int64_t opset_version = 17;

// The field numbers of onnx.proto (ONNX 1.12) that latent writes.
namespace proto {
struct ModelProto {
    static constexpr std::uint32_t ir_version = 1, producer_name = 2, producer_version = 3, graph = 7,
                                   opset_import = 8;
};
struct OperatorSetIdProto {
    static constexpr std::uint32_t domain = 1, version = 2;
};
struct GraphProto {
    static constexpr std::uint32_t node = 1, name = 2, initializer = 5, input = 11, output = 12;
};
struct NodeProto {
    static constexpr std::uint32_t input = 1, output = 2, name = 3, op_type = 4, attribute = 5;
};
struct AttributeProto {
    static constexpr std::uint32_t name = 1, f = 2, i = 3, s = 4, floats = 7, ints = 8, type = 20;
    // AttributeProto.AttributeType
    static constexpr std::int64_t type_float = 1, type_int = 2, type_string = 3, type_floats = 6, type_ints = 7;
};
struct TensorProto {
    static constexpr std::uint32_t dims = 1, data_type = 2, name = 8, raw_data = 9;
    // TensorProto.DataType
    static constexpr std::int64_t type_float = 1, type_int64 = 7;
};
struct ValueInfoProto {
    static constexpr std::uint32_t name = 1, type = 2;
};
struct TypeProto {
    static constexpr std::uint32_t tensor_type = 1;
};
struct TypeProtoTensor {  // TypeProto.Tensor
    static constexpr std::uint32_t elem_type = 1, shape = 2;
};
struct TensorShapeProto {
    static constexpr std::uint32_t dim = 1;
};
struct Dimension {  // TensorShapeProto.Dimension
    static constexpr std::uint32_t dim_value = 1, dim_param = 2;
};
}  // namespace proto

using AttributeValue = std::variant<std::int64_t, float, std::string, std::vector<std::int64_t>, std::vector<float>>;

// A node attribute: kernel_shape, pads, alpha, mode, ...
struct Attribute {
    std::string name;
    AttributeValue value;
};

// A value of the graph: its name and rank (4: (batch, C, H, W); 2: (batch, features)).
struct Value {
    std::string name;
    int rank = 4;
};

class Graph {
public:
    explicit Graph(std::string name, std::string batch_name = "batch")
        : name_(std::move(name)), batch_name_(std::move(batch_name)) {}

    // The graph's input and output, float (batch, C, H, W).
    Value add_input(const std::string& name, const Shape& shape) {
        claim(name);
        inputs_.push_back(value_info(name, shape));
        return {name, 4};
    }
    void add_output(const Value& value, const Shape& shape) { outputs_.push_back(value_info(value.name, shape)); }

    // A float initializer of the given dimensions, from `values` (their product long), converted to float.
    template <class T> std::string add_weights(const std::string& name, const std::vector<std::int64_t>& dims, const T* values) {
        std::string raw;
        const std::int64_t count = element_count(dims);
        raw.reserve(static_cast<std::size_t>(count) * 4);
        for (std::int64_t i = 0; i < count; ++i) protobuf::append_float_bits(raw, static_cast<float>(values[i]));
        return add_initializer(name, dims, proto::TensorProto::type_float, raw);
    }
    // A 1-D int64 initializer (the shape of a Reshape, the bounds of a Slice).
    std::string add_int64s(const std::string& name, const std::vector<std::int64_t>& values) {
        std::string raw;
        for (const std::int64_t value : values) {
            const auto bits = static_cast<std::uint64_t>(value);
            for (int shift = 0; shift < 64; shift += 8) raw += static_cast<char>((bits >> shift) & 0xFF);
        }
        return add_initializer(name, {static_cast<std::int64_t>(values.size())}, proto::TensorProto::type_int64, raw);
    }
    // A 1-D float initializer given by its values (the scales of a Resize).
    std::string add_floats(const std::string& name, const std::vector<float>& values) {
        return add_weights(name, {static_cast<std::int64_t>(values.size())}, values.data());
    }

    // A node `op_type` named `name` whose one output is the value `name`, of rank `rank`.
    // An empty input name stands for an omitted optional input.
    Value add_node(const std::string& op_type, const std::string& name, const std::vector<std::string>& inputs,
                   int rank, const std::vector<Attribute>& attributes = {}) {
        claim(name);
        protobuf::Message node;
        for (const std::string& input : inputs) node.add_bytes(proto::NodeProto::input, input);
        node.add_bytes(proto::NodeProto::output, name);
        node.add_bytes(proto::NodeProto::name, name);
        node.add_bytes(proto::NodeProto::op_type, op_type);
        for (const Attribute& attribute : attributes) node.add_message(proto::NodeProto::attribute, encode(attribute));
        nodes_.push_back(std::move(node));
        return {name, rank};
    }

    // ModelProto: the IR version, the opset, the producer and this graph.
    std::string model_bytes(const std::string& producer_name, const std::string& producer_version) const {
        protobuf::Message graph;
        for (const auto& node : nodes_) graph.add_message(proto::GraphProto::node, node);
        graph.add_bytes(proto::GraphProto::name, name_);
        for (const auto& initializer : initializers_) graph.add_message(proto::GraphProto::initializer, initializer);
        for (const auto& input : inputs_) graph.add_message(proto::GraphProto::input, input);
        for (const auto& output : outputs_) graph.add_message(proto::GraphProto::output, output);
        protobuf::Message opset;
        opset.add_bytes(proto::OperatorSetIdProto::domain, "").add_int(proto::OperatorSetIdProto::version, opset_version);
        protobuf::Message model;
        model.add_int(proto::ModelProto::ir_version, ir_version)
            .add_bytes(proto::ModelProto::producer_name, producer_name)
            .add_bytes(proto::ModelProto::producer_version, producer_version)
            .add_message(proto::ModelProto::graph, graph)
            .add_message(proto::ModelProto::opset_import, opset);
        return model.bytes();
    }

private:
    void claim(const std::string& name) {
        if (name.empty()) throw ArgumentError("ONNX export: a value needs a name");
        if (!names_.insert(name).second) throw ArgumentError("ONNX export: the name '" + name + "' is used twice");
    }

    static std::int64_t element_count(const std::vector<std::int64_t>& dims) {
        std::int64_t count = 1;
        for (const std::int64_t dim : dims) count *= dim;
        return count;
    }

    std::string add_initializer(const std::string& name, const std::vector<std::int64_t>& dims, std::int64_t data_type,
                                const std::string& raw) {
        claim(name);
        protobuf::Message tensor;
        tensor.add_packed_ints(proto::TensorProto::dims, dims)
            .add_int(proto::TensorProto::data_type, data_type)
            .add_bytes(proto::TensorProto::name, name)
            .add_bytes(proto::TensorProto::raw_data, raw);
        initializers_.push_back(std::move(tensor));
        return name;
    }

    // ValueInfoProto of a float (batch, C, H, W) value.
    protobuf::Message value_info(const std::string& name, const Shape& shape) const {
        protobuf::Message dims;
        dims.add_message(proto::TensorShapeProto::dim, protobuf::Message().add_bytes(proto::Dimension::dim_param, batch_name_));
        for (const Index extent : {shape.channels, shape.height, shape.width})
            dims.add_message(proto::TensorShapeProto::dim, protobuf::Message().add_int(proto::Dimension::dim_value, extent));
        protobuf::Message tensor;
        tensor.add_int(proto::TypeProtoTensor::elem_type, proto::TensorProto::type_float)
            .add_message(proto::TypeProtoTensor::shape, dims);
        protobuf::Message info;
        info.add_bytes(proto::ValueInfoProto::name, name)
            .add_message(proto::ValueInfoProto::type, protobuf::Message().add_message(proto::TypeProto::tensor_type, tensor));
        return info;
    }

    static protobuf::Message encode(const Attribute& attribute) {
        using A = proto::AttributeProto;
        protobuf::Message message;
        message.add_bytes(A::name, attribute.name);
        std::visit(
            [&](const auto& value) {
                using V = std::decay_t<decltype(value)>;
                if constexpr (std::is_same_v<V, std::int64_t>) message.add_int(A::i, value).add_int(A::type, A::type_int);
                else if constexpr (std::is_same_v<V, float>) message.add_float(A::f, value).add_int(A::type, A::type_float);
                else if constexpr (std::is_same_v<V, std::string>) message.add_bytes(A::s, value).add_int(A::type, A::type_string);
                else if constexpr (std::is_same_v<V, std::vector<std::int64_t>>)
                    message.add_packed_ints(A::ints, value).add_int(A::type, A::type_ints);
                else message.add_packed_floats(A::floats, value).add_int(A::type, A::type_floats);
            },
            attribute.value);
        return message;
    }

    std::string name_, batch_name_;
    std::set<std::string> names_;
    std::vector<protobuf::Message> nodes_, initializers_, inputs_, outputs_;
};

// `value` as (batch, features): a Flatten node when it is rank 4.
inline Value to_matrix(Graph& graph, const Value& value) {
    if (value.rank == 2) return value;
    return graph.add_node("Flatten", value.name + ".flatten", {value.name}, 2, {{"axis", std::int64_t{1}}});
}

// `value` as (batch, C, H, W) of `shape`: a Reshape node when it is rank 2.
inline Value to_image(Graph& graph, const Value& value, const Shape& shape) {
    if (value.rank == 4) return value;
    const std::string name = value.name + ".reshape";
    // 0 copies the batch dimension from the input.
    const std::string target = graph.add_int64s(name + ".shape", {0, shape.channels, shape.height, shape.width});
    return graph.add_node("Reshape", name, {value.name, target}, 4);
}

}  // namespace latent::onnx
