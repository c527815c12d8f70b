// ONNX export: the protobuf writer's bytes against encodings worked out by hand, and exported
// models read back with the small protobuf reader below (names, shapes, attributes, initializer
// sizes and values). Running the files in ONNX Runtime and the ONNX checker is tests/onnx's job.
#include <catch2/catch.hpp>

#include <latent/io/onnx_export.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace latent;

namespace {

std::string hex(const std::string& bytes) {
    static const char digits[] = "0123456789ABCDEF";
    std::string text;
    for (const char byte : bytes) {
        const auto value = static_cast<unsigned char>(byte);
        if (!text.empty()) text += ' ';
        text += digits[value >> 4];
        text += digits[value & 0xF];
    }
    return text;
}

// ---------------------------------------------------------------------------------------------
// A protobuf reader, enough to take the writer's output apart: one message's fields in order.

struct Field {
    std::uint32_t number = 0;
    std::uint32_t wire_type = 0;
    std::uint64_t varint = 0;  // wire type 0
    std::string bytes;         // wire type 2; wire type 5: the four bytes
};

std::uint64_t read_varint(const std::string& data, std::size_t& at) {
    std::uint64_t value = 0;
    for (int shift = 0;; shift += 7) {
        REQUIRE(at < data.size());
        const auto byte = static_cast<unsigned char>(data[at++]);
        value |= std::uint64_t{byte & 0x7Fu} << shift;
        if ((byte & 0x80) == 0) return value;
    }
}

std::vector<Field> read_fields(const std::string& data) {
    std::vector<Field> fields;
    std::size_t at = 0;
    while (at < data.size()) {
        Field field;
        const std::uint64_t key = read_varint(data, at);
        field.number = static_cast<std::uint32_t>(key >> 3);
        field.wire_type = static_cast<std::uint32_t>(key & 7);
        if (field.wire_type == 0) {
            field.varint = read_varint(data, at);
        } else if (field.wire_type == 2) {
            const auto length = static_cast<std::size_t>(read_varint(data, at));
            REQUIRE(at + length <= data.size());
            field.bytes = data.substr(at, length);
            at += length;
        } else {
            REQUIRE(field.wire_type == 5);
            REQUIRE(at + 4 <= data.size());
            field.bytes = data.substr(at, 4);
            at += 4;
        }
        fields.push_back(field);
    }
    return fields;
}

std::vector<Field> fields_numbered(const std::string& message, std::uint32_t number) {
    std::vector<Field> found;
    for (const Field& field : read_fields(message))
        if (field.number == number) found.push_back(field);
    return found;
}

std::string only_bytes(const std::string& message, std::uint32_t number) {
    const auto found = fields_numbered(message, number);
    REQUIRE(found.size() == 1);
    return found[0].bytes;
}

std::int64_t only_int(const std::string& message, std::uint32_t number) {
    const auto found = fields_numbered(message, number);
    REQUIRE(found.size() == 1);
    return static_cast<std::int64_t>(found[0].varint);
}

std::vector<std::int64_t> packed_ints(const std::string& message, std::uint32_t number) {
    std::vector<std::int64_t> values;
    for (const Field& field : fields_numbered(message, number)) {
        std::size_t at = 0;
        while (at < field.bytes.size()) values.push_back(static_cast<std::int64_t>(read_varint(field.bytes, at)));
    }
    return values;
}

float little_endian_float(const char* bytes) {
    std::uint32_t bits = 0;
    for (int i = 3; i >= 0; --i) bits = (bits << 8) | static_cast<unsigned char>(bytes[i]);
    float value = 0;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// The parts of an exported ModelProto the tests look at.
struct ReadNode {
    std::string op_type, name;
    std::vector<std::string> inputs;
    std::map<std::string, std::string> attributes;  // name -> AttributeProto bytes
};
struct ReadInitializer {
    std::vector<std::int64_t> dims;
    std::int64_t data_type = 0;
    std::string raw;
};
struct ReadValue {
    std::string name, batch;
    std::vector<std::int64_t> dims;  // after the batch
};
struct ReadModel {
    std::int64_t ir_version = 0, opset = 0;
    std::vector<ReadNode> nodes;
    std::map<std::string, ReadInitializer> initializers;
    std::vector<ReadValue> inputs, outputs;

    std::vector<std::string> op_types() const {
        std::vector<std::string> types;
        for (const auto& node : nodes) types.push_back(node.op_type);
        return types;
    }
    const ReadNode& node(const std::string& name) const {
        for (const auto& node : nodes)
            if (node.name == name) return node;
        FAIL("no node " << name);
        return nodes.front();
    }
};

ReadValue read_value(const std::string& info) {
    namespace p = onnx::proto;
    ReadValue value;
    value.name = only_bytes(info, p::ValueInfoProto::name);
    const std::string tensor = only_bytes(only_bytes(info, p::ValueInfoProto::type), p::TypeProto::tensor_type);
    CHECK(only_int(tensor, p::TypeProtoTensor::elem_type) == p::TensorProto::type_float);
    const auto dims = fields_numbered(only_bytes(tensor, p::TypeProtoTensor::shape), p::TensorShapeProto::dim);
    REQUIRE(dims.size() == 4);
    value.batch = only_bytes(dims[0].bytes, p::Dimension::dim_param);
    for (std::size_t i = 1; i < dims.size(); ++i) value.dims.push_back(only_int(dims[i].bytes, p::Dimension::dim_value));
    return value;
}

ReadModel read_model(const std::string& bytes) {
    namespace p = onnx::proto;
    ReadModel model;
    model.ir_version = only_int(bytes, p::ModelProto::ir_version);
    model.opset = only_int(only_bytes(bytes, p::ModelProto::opset_import), p::OperatorSetIdProto::version);
    const std::string graph = only_bytes(bytes, p::ModelProto::graph);
    for (const Field& field : fields_numbered(graph, p::GraphProto::node)) {
        ReadNode node;
        node.op_type = only_bytes(field.bytes, p::NodeProto::op_type);
        node.name = only_bytes(field.bytes, p::NodeProto::name);
        CHECK(only_bytes(field.bytes, p::NodeProto::output) == node.name);
        for (const Field& input : fields_numbered(field.bytes, p::NodeProto::input)) node.inputs.push_back(input.bytes);
        for (const Field& attribute : fields_numbered(field.bytes, p::NodeProto::attribute))
            node.attributes[only_bytes(attribute.bytes, p::AttributeProto::name)] = attribute.bytes;
        model.nodes.push_back(node);
    }
    for (const Field& field : fields_numbered(graph, p::GraphProto::initializer)) {
        ReadInitializer initializer{packed_ints(field.bytes, p::TensorProto::dims),
                                    only_int(field.bytes, p::TensorProto::data_type),
                                    only_bytes(field.bytes, p::TensorProto::raw_data)};
        model.initializers[only_bytes(field.bytes, p::TensorProto::name)] = initializer;
    }
    for (const Field& field : fields_numbered(graph, p::GraphProto::input)) model.inputs.push_back(read_value(field.bytes));
    for (const Field& field : fields_numbered(graph, p::GraphProto::output)) model.outputs.push_back(read_value(field.bytes));
    return model;
}

std::vector<std::int64_t> ints_attribute(const ReadNode& node, const std::string& name) {
    REQUIRE(node.attributes.count(name) == 1);
    return packed_ints(node.attributes.at(name), onnx::proto::AttributeProto::ints);
}

std::string string_attribute(const ReadNode& node, const std::string& name) {
    REQUIRE(node.attributes.count(name) == 1);
    return only_bytes(node.attributes.at(name), onnx::proto::AttributeProto::s);
}

using Ints = std::vector<std::int64_t>;
using Strings = std::vector<std::string>;

// A layer of the user's own: y = x + offset.
template <class T> class Offset {
public:
    using Scalar = T;
    static constexpr const char* type_name = "Offset";
    explicit Offset(double offset = 0) : offset_(static_cast<T>(offset)) {}
    Shape output_shape(const Shape& input) const { return input; }
    void forward(ConstTensorView<T> x, TensorView<T> y) { y = x + offset_; }
    void backward(ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() != nullptr) dx = dy;
    }
    T offset() const { return offset_; }

private:
    T offset_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The wire format

TEST_CASE("protobuf: varints, 7 bits a byte, least significant group first", "[onnx][protobuf]") {
    auto varint = [](std::uint64_t value) {
        std::string out;
        protobuf::append_varint(out, value);
        return hex(out);
    };
    CHECK(varint(0) == "00");
    CHECK(varint(1) == "01");
    CHECK(varint(127) == "7F");
    CHECK(varint(128) == "80 01");                           // 128 = 0 + 1 * 2^7
    CHECK(varint(300) == "AC 02");                           // 300 = 44 + 2 * 2^7: 44 | 0x80 = 0xAC
    CHECK(varint(std::uint64_t{1} << 32) == "80 80 80 80 10");  // 2^32 = 16 * 2^28
}

TEST_CASE("protobuf: fields of each wire type, worked out by hand", "[onnx][protobuf]") {
    // key = field << 3 | wire type
    CHECK(hex(protobuf::Message().add_int(1, 150).bytes()) == "08 96 01");  // 1 << 3 | 0; 150 = 22 + 1 * 128
    CHECK(hex(protobuf::Message().add_int(16, 1).bytes()) == "80 01 01");   // key 128 needs two bytes
    // -1 as int64 is 2^64 - 1: nine bytes of seven ones and a last byte 01.
    CHECK(hex(protobuf::Message().add_int(2, -1).bytes()) == "10 FF FF FF FF FF FF FF FF FF 01");
    CHECK(hex(protobuf::Message().add_bytes(2, "testing").bytes()) == "12 07 74 65 73 74 69 6E 67");
    CHECK(hex(protobuf::Message().add_bytes(3, "").bytes()) == "1A 00");
    // 1.0f is 0x3F800000, written little-endian after the key 5 << 3 | 5 = 0x2D.
    CHECK(hex(protobuf::Message().add_float(5, 1.0f).bytes()) == "2D 00 00 80 3F");
    CHECK(hex(protobuf::Message().add_float(2, -2.5f).bytes()) == "15 00 00 20 C0");  // 0xC0200000
}

TEST_CASE("protobuf: packed repeated numbers and nested messages", "[onnx][protobuf]") {
    // 3 -> 03, 270 -> 8E 02, 86942 -> 9E A7 05: six bytes after the key 4 << 3 | 2 = 0x22.
    CHECK(hex(protobuf::Message().add_packed_ints(4, {3, 270, 86942}).bytes()) == "22 06 03 8E 02 9E A7 05");
    CHECK(hex(protobuf::Message().add_packed_floats(7, {1.0f, -2.0f}).bytes()) == "3A 08 00 00 80 3F 00 00 00 C0");
    CHECK(protobuf::Message().add_packed_ints(4, {}).bytes().empty());
    CHECK(protobuf::Message().add_packed_floats(4, {}).bytes().empty());
    const protobuf::Message inner = protobuf::Message().add_int(1, 150);
    CHECK(hex(protobuf::Message().add_message(3, inner).bytes()) == "1A 03 08 96 01");
    // Fields keep the order they were added in.
    CHECK(hex(protobuf::Message().add_int(2, 1).add_int(1, 2).bytes()) == "10 01 08 02");
}

// ---------------------------------------------------------------------------------------------
// Exported models, read back

TEST_CASE("onnx export: a convolutional autoencoder's graph, names, shapes and weights", "[onnx]") {
    Autoencoder<float> model(Encoder<float>{Conv2D<float>(4, 3, 2), ReLU<float>(), MaxPool2D<float>(2)},
                             Decoder<float>{UpSample2D<float>(2), ConvTranspose2D<float>(1, 3, 2), Sigmoid<float>()},
                             {1, 8, 8}, 3);
    model.encoder().layer(0).get<Conv2D<float>>()->bias()(2) = 0.75f;
    const ReadModel read = read_model(to_onnx(model));

    CHECK(read.ir_version == 8);
    CHECK(read.opset == 17);
    CHECK(read.op_types() == Strings{"Conv", "Relu", "MaxPool", "Resize", "ConvTranspose", "Sigmoid", "Identity"});
    REQUIRE(read.inputs.size() == 1);
    REQUIRE(read.outputs.size() == 1);
    CHECK(read.inputs[0].name == "input");
    CHECK(read.inputs[0].batch == "batch");
    CHECK(read.inputs[0].dims == Ints{1, 8, 8});
    CHECK(read.outputs[0].name == "output");
    CHECK(read.outputs[0].dims == Ints{1, 8, 8});

    // Conv 3x3 stride 2 "same" on 8: 4 outputs need (4 - 1) * 2 + 3 - 8 = 1 padding pixel, at the bottom/right.
    const ReadNode& conv = read.node("encoder.0");
    CHECK(conv.inputs == Strings{"input", "encoder.0.weight", "encoder.0.bias"});
    CHECK(ints_attribute(conv, "pads") == Ints{0, 0, 1, 1});
    CHECK(ints_attribute(conv, "strides") == Ints{2, 2});
    CHECK(ints_attribute(conv, "kernel_shape") == Ints{3, 3});
    const ReadInitializer& weight = read.initializers.at("encoder.0.weight");
    CHECK(weight.dims == Ints{4, 1, 3, 3});
    CHECK(weight.data_type == onnx::proto::TensorProto::type_float);
    REQUIRE(weight.raw.size() == 4 * 9 * sizeof(float));
    const auto& conv_weight = model.encoder().layer(0).get<Conv2D<float>>()->weight();
    for (Index i = 0; i < conv_weight.size(); ++i)
        CHECK(little_endian_float(weight.raw.data() + 4 * i) == conv_weight.data()[i]);
    CHECK(read.initializers.at("encoder.0.bias").dims == Ints{4});
    CHECK(little_endian_float(read.initializers.at("encoder.0.bias").raw.data() + 8) == 0.75f);

    CHECK(ints_attribute(read.node("encoder.2"), "pads") == Ints{0, 0, 0, 0});  // valid pooling
    const ReadNode& resize = read.node("decoder.0");
    CHECK(resize.inputs == Strings{"encoder.2", "", "decoder.0.scales"});
    CHECK(string_attribute(resize, "mode") == "nearest");
    CHECK(string_attribute(resize, "coordinate_transformation_mode") == "half_pixel");
    CHECK(string_attribute(resize, "nearest_mode") == "round_prefer_floor");
    const std::string& scales = read.initializers.at("decoder.0.scales").raw;
    REQUIRE(scales.size() == 16);
    CHECK(little_endian_float(scales.data() + 8) == 2.0f);

    // ConvTranspose 3x3 stride 2 "same" 4 -> 8: the full map is (4 - 1) * 2 + 3 = 9 long; the
    // Conv2D on 8 pads 0 before, so the ninth position is cropped at the end.
    const ReadNode& deconv = read.node("decoder.1");
    CHECK(ints_attribute(deconv, "pads") == Ints{0, 0, 1, 1});
    CHECK(ints_attribute(deconv, "output_padding") == Ints{0, 0});
    CHECK(read.initializers.at("decoder.1.weight").dims == Ints{4, 1, 3, 3});  // (C, F, kh, kw)
    CHECK(read.node("output").inputs == Strings{"decoder.2"});
}

TEST_CASE("onnx export: a transposed convolution reaching past its full map gets output_padding", "[onnx]") {
    // 1x1 kernel, stride 2, valid, 3 -> 3 * 2 + max(1 - 2, 0) = 6 outputs, but the full map is
    // (3 - 1) * 2 + 1 = 5 long: the sixth output (bias only) is ONNX's output_padding 1.
    Sequential<float> model{ConvTranspose2D<float>(2, 1, 2, Padding::Valid)};
    model.build({1, 3, 3});
    const ReadModel read = read_model(to_onnx(model));
    CHECK(read.outputs[0].dims == Ints{2, 6, 6});
    CHECK(ints_attribute(read.node("0"), "pads") == Ints{0, 0, 0, 0});
    CHECK(ints_attribute(read.node("0"), "output_padding") == Ints{1, 1});
}

TEST_CASE("onnx export: dense layers stay (batch, features) between a Flatten and a Reshape", "[onnx]") {
    Autoencoder<double> model(Encoder<double>{Dense<double>(3), Tanh<double>(), Dropout<double>(0.5)},
                              Decoder<double>{Dense<double>(12), BatchNorm<double>(), Reshape<double>(Shape{1, 3, 4})},
                              {1, 3, 4}, 5);
    OnnxOptions<double> options;
    options.input_name = "images";
    options.output_name = "restored";
    options.batch_name = "n";
    const ReadModel read = read_model(to_onnx(model, options));
    CHECK(read.op_types() ==
          Strings{"Flatten", "Gemm", "Tanh", "Identity", "Gemm", "BatchNormalization", "Reshape", "Identity"});
    CHECK(read.node("images.flatten").inputs == Strings{"images"});  // helper nodes are named after the value they read
    CHECK(read.inputs[0].name == "images");
    CHECK(read.inputs[0].batch == "n");
    CHECK(read.outputs[0].name == "restored");
    CHECK(read.outputs[0].batch == "n");
    CHECK(read.node("encoder.0").inputs == Strings{"images.flatten", "encoder.0.weight", "encoder.0.bias"});
    // A double model's weights are written as float, rounded to nearest.
    const ReadInitializer& weight = read.initializers.at("encoder.0.weight");
    CHECK(weight.dims == Ints{3, 12});
    CHECK(weight.data_type == onnx::proto::TensorProto::type_float);
    REQUIRE(weight.raw.size() == 36 * sizeof(float));
    const auto& dense_weight = model.encoder().layer(0).get<Dense<double>>()->weight();
    CHECK(little_endian_float(weight.raw.data() + 4 * 7) == static_cast<float>(dense_weight.data()[7]));
    for (const char* statistic : {"weight", "bias", "running_mean", "running_var"})
        CHECK(read.initializers.at(std::string("decoder.1.") + statistic).dims == Ints{12});
    CHECK(read.initializers.at("decoder.2.shape").data_type == onnx::proto::TensorProto::type_int64);
}

TEST_CASE("onnx export: Flatten keeps the batch axis apart (axis 1), so Gemm reads (batch, C*H*W)", "[onnx]") {
    // ONNX's Flatten makes (d0 * ... * d(axis-1), d(axis) * ... * d(n-1)) of its input: only axis 1
    // leaves the batch alone in the first dimension and puts the 2 * 3 * 5 = 30 features in the second.
    Sequential<float> model{Dense<float>(4)};
    model.build({2, 3, 5});
    const ReadModel read = read_model(to_onnx(model));
    CHECK(read.op_types() == Strings{"Flatten", "Gemm", "Reshape", "Identity"});
    const ReadNode& flatten = read.node("input.flatten");
    CHECK(flatten.inputs == Strings{"input"});
    REQUIRE(flatten.attributes.count("axis") == 1);
    const std::string& axis = flatten.attributes.at("axis");
    CHECK(only_int(axis, onnx::proto::AttributeProto::type) == onnx::proto::AttributeProto::type_int);
    CHECK(only_int(axis, onnx::proto::AttributeProto::i) == 1);
    CHECK(read.node("0").inputs == Strings{"input.flatten", "0.weight", "0.bias"});
    CHECK(read.initializers.at("0.weight").dims == Ints{4, 2 * 3 * 5});
}

TEST_CASE("onnx export: a VAE's encoder part ends in the mean, a Slice of the first k channels", "[onnx]") {
    VAE<float> model(Encoder<float>{Flatten<float>(), Dense<float>(2 * 3)},
                     Decoder<float>{Dense<float>(4), Sigmoid<float>(), Reshape<float>(Shape{1, 2, 2})}, {1, 2, 2}, 1);
    OnnxOptions<float> options;
    options.part = OnnxPart::Encoder;
    const ReadModel encoder = read_model(to_onnx(model, options));
    CHECK(encoder.op_types() == Strings{"Flatten", "Gemm", "Slice", "Reshape", "Identity"});
    CHECK(encoder.outputs[0].dims == Ints{3, 1, 1});
    const std::string& ends = encoder.initializers.at("mean.ends").raw;
    REQUIRE(ends.size() == 8);
    CHECK(ends[0] == 3);
    options.part = OnnxPart::Decoder;
    const ReadModel decoder = read_model(to_onnx(model, options));
    CHECK(decoder.inputs[0].dims == Ints{3, 1, 1});
    CHECK(decoder.op_types() == Strings{"Flatten", "Gemm", "Sigmoid", "Reshape", "Identity"});
}

TEST_CASE("onnx export: a layer without an export function is refused by name", "[onnx]") {
    Sequential<float> model{Dense<float>(4), Offset<float>(0.5)};
    model.build({2, 1, 1});
    CHECK_THROWS_MATCHES(to_onnx(model), ArgumentError,
                         Catch::Message("ONNX export: layer 1 (Offset) has no ONNX export; register one: "
                                        "exporters.add<Offset<T>>(function) and pass the exporters in OnnxOptions"));
    Autoencoder<float> autoencoder(Encoder<float>{Dense<float>(2)}, Decoder<float>{Offset<float>(1.0), Dense<float>(3)},
                                   {3, 1, 1});
    CHECK_THROWS_WITH(to_onnx(autoencoder), Catch::Contains("layer decoder.0 (Offset)"));
    CHECK_THROWS_AS(to_onnx(Sequential<float>{Dense<float>(2)}), ArgumentError);  // not built
}

TEST_CASE("onnx export: a user's export function is used for its layer type", "[onnx]") {
    Sequential<float> model{Dense<float>(4), Offset<float>(0.5)};
    model.build({2, 1, 1});
    OnnxOptions<float> options;
    options.exporters.add<Offset<float>>([](const Offset<float>& layer, OnnxLayerContext& site) {
        const std::string offset = site.graph.add_floats(site.name + ".offset", {layer.offset()});
        return site.graph.add_node("Add", site.name, {site.input.name, offset}, site.input.rank);
    });
    CHECK(options.exporters.has("Offset"));
    const ReadModel read = read_model(to_onnx(model, options));
    CHECK(read.op_types() == Strings{"Flatten", "Gemm", "Add", "Reshape", "Identity"});
    CHECK(read.node("1").inputs == Strings{"0", "1.offset"});
    CHECK(little_endian_float(read.initializers.at("1.offset").raw.data()) == 0.5f);
    CHECK(read.outputs[0].dims == Ints{4, 1, 1});
}

TEST_CASE("onnx export: export_onnx writes to_onnx's bytes atomically, replacing the file", "[onnx]") {
    Sequential<float> model{Conv2D<float>(2, 3), ReLU<float>()};
    model.build({1, 5, 5});
    const std::filesystem::path folder = std::filesystem::temp_directory_path() / "latent_onnx_export_test";
    std::filesystem::create_directories(folder);
    const std::string path = (folder / "model.onnx").string();
    std::ofstream(path) << "an older file";
    export_onnx(model, path);
    std::ifstream file(path, std::ios::binary);
    const std::string written((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    CHECK(written == to_onnx(model));
    CHECK(std::distance(std::filesystem::directory_iterator(folder), std::filesystem::directory_iterator()) == 1);
    CHECK_THROWS_AS(export_onnx(model, (folder / "missing" / "model.onnx").string()), IoError);
    std::filesystem::remove_all(folder);
}

TEST_CASE("onnx export: a name used twice in a graph is refused", "[onnx]") {
    onnx::Graph graph("g");
    graph.add_input("x", {1, 1, 1});
    CHECK_THROWS_WITH(graph.add_node("Relu", "x", {"x"}, 4), Catch::Contains("'x' is used twice"));
    CHECK_THROWS_AS(graph.add_floats("", {1.0f}), ArgumentError);
}
