// PyTorch weights: .safetensors and .npz readers and writers on good and hostile files, the
// state_dict names and layouts, and import_weights / export_weights (io/pytorch.hpp).
#include <catch2/catch.hpp>

#include <latent/io/pytorch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "helpers.hpp"

using namespace latent;
using Catch::Matchers::Contains;

namespace {

// The message of the `ErrorType` that `call` throws; a failed check when it throws none.
template <class ErrorType, class Call> std::string message_of(Call&& call) {
    try {
        call();
    } catch (const ErrorType& error) {
        return error.what();
    }
    FAIL_CHECK("the call threw no error of the expected type");
    return "";
}

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("latent_interop_weights_" + name)).string();
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Conv2D, an implicit flatten before a Dense, BatchNorm, Reshape and ConvTranspose2D: every
// mapping rule of io/pytorch.hpp.
Autoencoder<float> small_model(std::uint64_t seed) {
    return Autoencoder<float>(
        Encoder<float>{Conv2D<float>(4, 3, 2), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same), Dense<float>(5), BatchNorm<float>()},
        Decoder<float>{Dense<float>(64), Reshape<float>(Shape{1, 8, 8}), ConvTranspose2D<float>(1, 3, 2), Sigmoid<float>()},
        {1, 16, 16}, seed);
}

// Every value the state_dict points at, in order.
template <class Model> std::vector<float> all_values(Model& model) {
    std::vector<float> values;
    for (const auto& entry : state_dict(model))
        if (entry.values) values.insert(values.end(), entry.values, entry.values + entry.size);
    return values;
}

// Gives BatchNorm's running statistics values other than their start, so round trips see them.
void stir_batch_norm(Autoencoder<float>& model) {
    auto& norm = *model.encoder().layer(4).get<BatchNorm<float>>();
    for (auto& buffer : model.encoder().layer(4).buffers())
        for (Index i = 0; i < buffer.size; ++i) buffer.value[i] = 0.25f * static_cast<float>(i + 1);
    norm.weight().setConstant(1.5f);
}

// A .safetensors file from a header text and a data buffer.
std::string safetensors_file(const std::string& header, const std::string& data) {
    std::string file(8, '\0');
    for (int b = 0; b < 8; ++b) file[static_cast<std::size_t>(b)] = static_cast<char>((header.size() >> (8 * b)) & 0xFF);
    return file + header + data;
}

NamedArrays two_arrays() {
    const float weights[6] = {1, 2, 3, 4, 5, -6.5f};
    const std::int64_t count = 42;
    return {make_array("layer.weight", {2, 3}, weights), make_array("layer.num_batches_tracked", {}, &count)};
}

// One member of a hand-built zip archive.
struct ZipPiece {
    std::string name;
    std::string data;             // as stored in the archive
    std::uint32_t crc = 0;
    std::uint32_t uncompressed = 0;
    std::uint16_t method = 0;
    std::string local_extra;      // the local header's extra field
    bool zip64_local_sizes = false;  // 0xFFFFFFFF in the local sizes (numpy.savez does this)
};

void put16(std::string& out, std::uint32_t v) { out += static_cast<char>(v & 0xFF), out += static_cast<char>((v >> 8) & 0xFF); }
void put32(std::string& out, std::uint32_t v) { put16(out, v & 0xFFFF), put16(out, v >> 16); }

std::string zip_archive(const std::vector<ZipPiece>& pieces) {
    std::string archive, directory;
    for (const ZipPiece& piece : pieces) {
        const auto offset = static_cast<std::uint32_t>(archive.size());
        put32(archive, 0x04034b50);
        put16(archive, 20), put16(archive, 0), put16(archive, piece.method), put16(archive, 0), put16(archive, 0x21);
        put32(archive, piece.crc);
        put32(archive, piece.zip64_local_sizes ? 0xFFFFFFFF : static_cast<std::uint32_t>(piece.data.size()));
        put32(archive, piece.zip64_local_sizes ? 0xFFFFFFFF : piece.uncompressed);
        put16(archive, static_cast<std::uint32_t>(piece.name.size())), put16(archive, static_cast<std::uint32_t>(piece.local_extra.size()));
        archive += piece.name + piece.local_extra + piece.data;
        put32(directory, 0x02014b50);
        put16(directory, 20), put16(directory, 20), put16(directory, 0), put16(directory, piece.method);
        put16(directory, 0), put16(directory, 0x21);
        put32(directory, piece.crc), put32(directory, static_cast<std::uint32_t>(piece.data.size())), put32(directory, piece.uncompressed);
        put16(directory, static_cast<std::uint32_t>(piece.name.size()));
        for (int i = 0; i < 4; ++i) put16(directory, 0);
        put32(directory, 0), put32(directory, offset);
        directory += piece.name;
    }
    const auto directory_offset = static_cast<std::uint32_t>(archive.size());
    archive += directory;
    put32(archive, 0x06054b50);
    put16(archive, 0), put16(archive, 0), put16(archive, static_cast<std::uint32_t>(pieces.size()));
    put16(archive, static_cast<std::uint32_t>(pieces.size()));
    put32(archive, static_cast<std::uint32_t>(directory.size())), put32(archive, directory_offset), put16(archive, 0);
    return archive;
}

// A stored member holding `npy`, the CRC right.
ZipPiece stored_piece(const std::string& name, const std::string& npy) {
    ZipPiece piece;
    piece.name = name;
    piece.data = npy;
    piece.crc = detail::crc32_of(npy.data(), npy.size());
    piece.uncompressed = static_cast<std::uint32_t>(npy.size());
    return piece;
}

std::string npy_of_floats(const std::vector<Index>& shape, const std::vector<float>& values) {
    return detail::npy_file_bytes("<f4", shape, make_array("x", shape, values.data()).bytes);
}

}  // namespace

TEST_CASE("state_dict: nn.Sequential module indices and torch layouts", "[interop]") {
    auto model = small_model(1);
    std::vector<std::string> names;
    std::vector<std::string> shapes;
    for (const auto& entry : state_dict(model)) {
        names.push_back(entry.name);
        shapes.push_back(shape_text(entry.shape));
    }
    // Conv2D 0, ReLU 1, MaxPool2d 2, the Dense's implicit Flatten 3 and Linear 4, BatchNorm1d 5;
    // Linear 0, Unflatten 1, ConvTranspose2d 2, Sigmoid 3.
    CHECK(names == std::vector<std::string>{"encoder.0.weight", "encoder.0.bias", "encoder.4.weight", "encoder.4.bias",
                                            "encoder.5.weight", "encoder.5.bias", "encoder.5.running_mean",
                                            "encoder.5.running_var", "encoder.5.num_batches_tracked", "decoder.0.weight",
                                            "decoder.0.bias", "decoder.2.weight", "decoder.2.bias"});
    CHECK(shapes == std::vector<std::string>{"(4, 1, 3, 3)", "(4)", "(5, 64)", "(5)", "(5)", "(5)", "(5)", "(5)", "()",
                                             "(64, 5)", "(64)", "(1, 1, 3, 3)", "(1)"});

    // ConvTranspose2D is (in, out, kh, kw); a ContractiveDense is Linear + Sigmoid (two modules).
    Sequential<float> unbuilt{Dense<float>(3)};
    Sequential<float> chain{ContractiveDense<float>(6, 0.1), Reshape<float>(Shape{3, 2, 1}), ConvTranspose2D<float>(2, {3, 1}),
                            Dense<float>(2)};
    chain.build({4, 1, 1});
    std::vector<std::string> chain_names;
    for (const auto& entry : state_dict(chain)) chain_names.push_back(entry.name + " " + shape_text(entry.shape));
    CHECK(chain_names == std::vector<std::string>{"0.weight (6, 4)", "0.bias (6)", "3.weight (3, 2, 3, 1)", "3.bias (2)",
                                                  "5.weight (2, 4)", "5.bias (2)"});
    CHECK_THROWS_AS(state_dict(unbuilt), ArgumentError);
}

TEST_CASE("export_weights then import_weights is bit-exact: safetensors, stored and deflated npz", "[interop]") {
    auto source = small_model(1);
    stir_batch_norm(source);
    const std::vector<float> expected = all_values(source);
    for (const std::string name : {"round.safetensors", "round.npz", "round-stored.npz"}) {
        const std::string path = temp_path(name);
        if (name == "round-stored.npz") export_weights(source, path, NpzCompression::Stored);
        else export_weights(source, path);
        auto target = small_model(2);
        REQUIRE(all_values(target) != expected);
        import_weights(target, path);
        const std::vector<float> loaded = all_values(target);
        REQUIRE(loaded.size() == expected.size());
        CHECK(std::memcmp(loaded.data(), expected.data(), expected.size() * sizeof(float)) == 0);
        const Tensor<float> x = test::random_tensor<float>(3, {1, 16, 16}, 5, 0.0, 1.0);
        CHECK(test::max_abs_difference(target.reconstruct(x), source.reconstruct(x)) == 0.0);
    }
    // The stored archive holds the .npy bytes as they are; the deflated one is smaller.
    CHECK(std::filesystem::file_size(temp_path("round.npz")) < std::filesystem::file_size(temp_path("round-stored.npz")));
}

TEST_CASE("import_weights converts float32 and float64 files to the model's scalar type", "[interop]") {
    auto source = small_model(1);
    const std::string path = temp_path("convert.safetensors");
    export_weights(source, path);
    Autoencoder<double> wide(
        Encoder<double>{Conv2D<double>(4, 3, 2), ReLU<double>(), MaxPool2D<double>(2, 2, Padding::Same), Dense<double>(5),
                        BatchNorm<double>()},
        Decoder<double>{Dense<double>(64), Reshape<double>(Shape{1, 8, 8}), ConvTranspose2D<double>(1, 3, 2), Sigmoid<double>()},
        {1, 16, 16}, 3);
    import_weights(wide, path);  // float32 -> double: exact
    const std::vector<float> expected = all_values(source);
    std::size_t at = 0;
    bool equal = true;
    for (const auto& entry : state_dict(wide))
        for (Index i = 0; entry.values && i < entry.size; ++i) equal = equal && entry.values[i] == static_cast<double>(expected[at++]);
    CHECK(equal);
    CHECK(at == expected.size());

    const std::string double_path = temp_path("convert.npz");
    export_weights(wide, double_path);  // float64 archive
    CHECK(read_npz(double_path).front().type == ElementType::F64);
    auto narrow = small_model(4);
    import_weights(narrow, double_path);  // float64 -> float: rounds, here exactly back
    CHECK(all_values(narrow) == expected);
}

TEST_CASE("import_weights reports every mismatch in one error and changes no weight", "[interop]") {
    auto model = small_model(1);
    const std::vector<float> before = all_values(model);
    // Another network: encoder.0 has 8 filters (so encoder.4 has 128 inputs), decoder.0 has 256
    // units and decoder.2 does not exist, encoder.6 is extra.
    Autoencoder<float> other(
        Encoder<float>{Conv2D<float>(8, 3, 2), ReLU<float>(), MaxPool2D<float>(2, 2, Padding::Same), Dense<float>(5), BatchNorm<float>(),
                       Dense<float>(5)},
        Decoder<float>{Dense<float>(256), Reshape<float>(Shape{1, 16, 16})}, {1, 16, 16}, 1);
    const std::string path = temp_path("mismatch.safetensors");
    export_weights(other, path);
    try {
        import_weights(model, path);
        FAIL("import_weights accepted weights of another network");
    } catch (const FormatError& error) {
        const std::string text = error.what();
        CHECK_THAT(text, Contains(path));
        CHECK_THAT(text, Contains("wrong shape: encoder.0.weight is (8, 1, 3, 3) in the file, the model needs (4, 1, 3, 3)"));
        CHECK_THAT(text, Contains("wrong shape: encoder.0.bias is (8)"));
        CHECK_THAT(text, Contains("wrong shape: decoder.0.weight is (256, 5) in the file, the model needs (64, 5)"));
        CHECK_THAT(text, Contains("missing decoder.2.weight (1, 1, 3, 3)"));
        CHECK_THAT(text, Contains("missing decoder.2.bias (1)"));
        CHECK_THAT(text, Contains("unexpected encoder.6.weight (5, 5)"));
        CHECK_THAT(text, Contains("unexpected encoder.6.bias (5)"));
        CHECK_THAT(text, Contains("wrong shape: encoder.4.weight is (5, 128) in the file, the model needs (5, 64)"));
        CHECK_THAT(text, Contains("(9 problems)"));
    }
    CHECK(all_values(model) == before);
}

TEST_CASE("import_weights refuses wrong element types and values that are not finite, model unchanged", "[interop]") {
    auto model = small_model(1);
    const std::vector<float> before = all_values(model);
    NamedArrays arrays;
    for (const auto& entry : state_dict(model)) {
        const std::int64_t zero = 0;
        arrays.push_back(entry.values ? make_array(entry.name, entry.shape, entry.values) : make_array(entry.name, entry.shape, &zero));
    }
    const std::string path = temp_path("types.safetensors");

    NamedArrays wrong_type = arrays;
    const std::vector<std::int64_t> integers(4, 1);
    wrong_type[1] = make_array("encoder.0.bias", {4}, integers.data());       // a weight as int64
    const float one = 1;
    wrong_type[8] = make_array("encoder.5.num_batches_tracked", {}, &one);  // the counter as float32
    write_safetensors(path, wrong_type);
    CHECK_THAT(message_of<FormatError>([&] { import_weights(model, path); }), Contains("wrong type: encoder.0.bias is int64 in the file, the model needs float32 or float64") &&
                             Contains("wrong type: encoder.5.num_batches_tracked is float32 in the file, the model needs int64"));

    NamedArrays not_finite = arrays;
    std::vector<double> huge(5, 1.0);
    huge[3] = 1e300;  // finite as a double, infinite as a float
    not_finite[6] = make_array("encoder.5.running_mean", {5}, huge.data());
    write_npz(path + ".npz", not_finite);
    CHECK_THAT(message_of<NumericError>([&] { import_weights(model, path + ".npz"); }), Contains("encoder.5.running_mean") && Contains("not finite"));
    CHECK(all_values(model) == before);

    CHECK_THAT(message_of<ArgumentError>([&] { export_weights(model, temp_path("weights.bin")); }), Contains(".safetensors or .npz"));
}

TEST_CASE("a VAE's weights go out and back under encoder. and decoder.", "[interop]") {
    auto make = [](std::uint64_t seed) {
        return VAE<float>(Encoder<float>{Flatten<float>(), Dense<float>(6), ReLU<float>(), Dense<float>(4)},
                          Decoder<float>{Dense<float>(6), ReLU<float>(), Dense<float>(9), Sigmoid<float>(), Reshape<float>({1, 3, 3})},
                          {1, 3, 3}, seed);
    };
    auto source = make(1);
    auto target = make(2);
    const std::string path = temp_path("vae.npz");
    export_weights(source, path);
    std::vector<std::string> names;
    for (const auto& array : read_npz(path)) names.push_back(array.name);
    CHECK(names == std::vector<std::string>{"encoder.1.weight", "encoder.1.bias", "encoder.3.weight", "encoder.3.bias",
                                            "decoder.0.weight", "decoder.0.bias", "decoder.2.weight", "decoder.2.bias"});
    import_weights(target, path);
    CHECK(all_values(target) == all_values(source));
}

TEST_CASE("safetensors: a written file parses back to the same arrays", "[interop]") {
    const NamedArrays arrays = two_arrays();
    const std::string bytes = safetensors_bytes(arrays);
    CHECK(static_cast<unsigned char>(bytes[0]) % 8 == 0);  // the header is padded to 8 bytes
    const NamedArrays back = parse_safetensors(bytes, "two.safetensors");
    REQUIRE(back.size() == 2);
    CHECK(back[0].name == "layer.weight");
    CHECK(back[0].shape == std::vector<Index>{2, 3});
    CHECK(array_values<float>(back[0]) == std::vector<float>{1, 2, 3, 4, 5, -6.5f});
    CHECK(back[1].type == ElementType::I64);
    CHECK(back[1].shape.empty());
    CHECK(array_values<double>(back[1]) == std::vector<double>{42});
    CHECK_THROWS_AS(safetensors_bytes({arrays[0], arrays[0]}), ArgumentError);
}

TEST_CASE("safetensors: every inconsistency is a FormatError naming the file and what is wrong", "[interop]") {
    const std::string data(24, '\0');
    const auto refused = [](const std::string& file, const std::string& what) {
        CHECK_THAT(message_of<FormatError>([&] { parse_safetensors(file, "bad.safetensors"); }), Contains("'bad.safetensors'") && Contains(what));
    };
    const std::string good = R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
    REQUIRE(parse_safetensors(safetensors_file(good, data), "bad.safetensors").size() == 1);

    refused("1234567", "shorter than its 8-byte header length");
    refused(safetensors_file(good, data).substr(0, 40), "header length");                     // truncated header
    refused(safetensors_file(good, data.substr(0, 23)), "data_offsets end");  // truncated data
    std::string huge = safetensors_file(good, data);
    huge[7] = '\x10';  // header length 2^60
    refused(huge, "is larger than the");
    refused(safetensors_file("[1, 2]", ""), "not a JSON object");
    refused(safetensors_file("{\"a\": ", ""), "not valid JSON");
    refused(safetensors_file(R"({"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}})", data.substr(0, 12)),
            "unsupported dtype \"F16\"");
    refused(safetensors_file(R"({"a":{"dtype":"Q9","shape":[2,3],"data_offsets":[0,24]}})", data), "unsupported dtype \"Q9\"");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[2,4],"data_offsets":[0,24]}})", data), "do not hold the 32 bytes");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}})", data), "a dimension must be an integer");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,24]}})", data), "a dimension must be an integer");
    refused(safetensors_file(R"({"a":{"dtype":"F64","shape":[1048576,1048576,8],"data_offsets":[0,24]}})", data), "exceeds the limit");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,48]}})", data), "data_offsets end");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data), "do not hold the 8 bytes");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                             data),
            "overlaps the array before it");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})",
                             data),
            "gap: bytes [8, 16)");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data), "the arrays hold 8");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})",
                             data),
            "repeats the key 'a'");
    refused(safetensors_file(R"({"a":{"dtype":"F32","dtype":"F64","shape":[6],"data_offsets":[0,24]}})", data), "repeats the key 'dtype'");
    refused(safetensors_file(R"({"a":{"dtype":"F32","shape":[6]}})", data), "exactly \"dtype\", \"shape\" and \"data_offsets\"");
    refused(safetensors_file(R"({"__metadata__":{"format":1},"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})", data),
            "__metadata__ must map strings to strings");
    refused(safetensors_file("{\"\xff\":{}}", data), "not valid JSON");  // not UTF-8
    refused(safetensors_file("{\"a\":[[[[1]]]]}", data), "nests deeper than a .safetensors header does");
    // Brackets inside strings (escaped quotes too) do not count.
    const std::string bracketed = R"({"__metadata__":{"note":"[[[{{\"[["},"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}})";
    CHECK(parse_safetensors(safetensors_file(bracketed, data), "ok.safetensors").size() == 1);
}

TEST_CASE("npz: stored and deflated archives parse back, and numpy.savez's zip64 local fields are read", "[interop]") {
    const NamedArrays arrays = two_arrays();
    for (const NpzCompression compression : {NpzCompression::Stored, NpzCompression::Deflated}) {
        const NamedArrays back = parse_npz(npz_bytes(arrays, compression), "two.npz");
        REQUIRE(back.size() == 2);
        CHECK(back[0].name == "layer.weight");
        CHECK(back[0].bytes == arrays[0].bytes);
        CHECK(back[1].name == "layer.num_batches_tracked");
        CHECK(back[1].shape.empty());
        CHECK(array_values<double>(back[1]) == std::vector<double>{42});
    }
    // A member whose local header says 0xFFFFFFFF and keeps its sizes in a zip64 extra field.
    const std::string npy = npy_of_floats({2}, {1.5f, 2.5f});
    ZipPiece piece = stored_piece("x.npy", npy);
    piece.zip64_local_sizes = true;
    std::string extra;
    put16(extra, 1), put16(extra, 16), put32(extra, static_cast<std::uint32_t>(npy.size())), put32(extra, 0);
    put32(extra, static_cast<std::uint32_t>(npy.size())), put32(extra, 0);
    piece.local_extra = extra;
    const NamedArrays numpy_style = parse_npz(zip_archive({piece}), "numpy.npz");
    REQUIRE(numpy_style.size() == 1);
    CHECK(array_values<float>(numpy_style[0]) == std::vector<float>{1.5f, 2.5f});
}

TEST_CASE("npz: every inconsistency is a FormatError naming the file (and the member)", "[interop]") {
    const auto refused = [](const std::string& file, const std::string& what) {
        CHECK_THAT(message_of<FormatError>([&] { parse_npz(file, "bad.npz"); }), Contains("'bad.npz") && Contains(what));
    };
    const std::string npy = npy_of_floats({2, 2}, {1, 2, 3, 4});
    const std::string good = zip_archive({stored_piece("w.npy", npy)});
    REQUIRE(parse_npz(good, "bad.npz").size() == 1);

    refused(good.substr(0, good.size() - 1), "no end-of-central-directory record");
    refused(good.substr(0, 10), "too short");
    refused(good + "junk", "no end-of-central-directory record");

    std::string bad_crc = good;
    bad_crc[30 + 5 + npy.size() - 1] ^= 0x40;  // the last data byte of the stored member
    refused(bad_crc, "member 'w.npy': CRC-32 mismatch");

    ZipPiece wrong_size = stored_piece("w.npy", npy);
    wrong_size.uncompressed -= 4;
    refused(zip_archive({wrong_size}), "stored member's sizes differ");

    const std::string packed = detail::deflate_raw(npy);
    ZipPiece deflated = stored_piece("w.npy", npy);
    deflated.data = packed;
    deflated.method = 8;
    REQUIRE(parse_npz(zip_archive({deflated}), "bad.npz").size() == 1);
    ZipPiece short_claim = deflated;
    short_claim.uncompressed -= 1;
    refused(zip_archive({short_claim}), "inflates to");
    ZipPiece long_claim = deflated;
    long_claim.uncompressed += 1000;
    refused(zip_archive({long_claim}), "inflates to");
    ZipPiece cut = deflated;
    cut.data = packed.substr(0, packed.size() / 2);
    refused(zip_archive({cut}), "member 'w.npy'");
    ZipPiece garbage = deflated;
    garbage.data = std::string(packed.size(), '\xff');
    refused(zip_archive({garbage}), "corrupt deflated data");
    ZipPiece method = deflated;
    method.method = 14;
    refused(zip_archive({method}), "compression method 14");

    refused(zip_archive({stored_piece("w.txt", npy)}), "member 'w.txt' is not an .npy file");
    refused(zip_archive({stored_piece("w.npy", npy), stored_piece("w.npy", npy)}), "two arrays are named 'w'");
    refused(zip_archive({stored_piece("w.npy", detail::npy_file_bytes("<i4", {2}, std::string(8, '\0')))}),
            "bad.npz/w.npy': unsupported .npy dtype '<i4'");
    refused(zip_archive({stored_piece("w.npy", npy.substr(0, npy.size() - 4))}), "bad.npz/w.npy': truncated");

    std::string zip64 = good;
    const std::size_t end = zip64.size() - 22;
    std::string locator;
    put32(locator, 0x07064b50);
    locator += std::string(16, '\0');
    zip64.insert(end, locator);
    // (the directory no longer ends where the end record starts, but zip64 is named first)
    refused(zip64, "zip64 archives are not read");
    std::string marker = good;
    for (int b = 0; b < 4; ++b) marker[end + 16 + b] = '\xff';  // directory offset 0xFFFFFFFF
    refused(marker, "zip64 archives are not read");

    std::string local_name = good;
    local_name[30] = 'v';  // the local header names "v.npy"
    refused(local_name, "the local header names another file");
    std::string offset = good;
    offset[good.size() - 22 - 5 - 4] = '\x07';  // the member's local header offset
    refused(offset, "member 'w.npy'");
    refused(zip_archive({stored_piece("a.npy", npy)}).replace(0, 4, "PK\x01\x02"), "no local header");
}

TEST_CASE("npz: members that overlap or run into the central directory are refused", "[interop]") {
    const std::string npy = npy_of_floats({1}, {7});
    std::string archive = zip_archive({stored_piece("a.npy", npy), stored_piece("b.npy", npy)});
    // Point b's central entry at a's local header: the two members then share their bytes.
    const std::size_t directory = 2 * (30 + 5 + npy.size());
    const std::size_t b_offset_field = directory + 46 + 5 + 42;
    for (int i = 0; i < 4; ++i) archive[b_offset_field + static_cast<std::size_t>(i)] = '\0';
    CHECK_THAT(message_of<FormatError>([&] { parse_npz(archive, "overlap.npz"); }), Contains("the local header names another file"));
    // Same name, same place: the overlap itself is what gives it away.
    std::string twins = zip_archive({stored_piece("a.npy", npy), stored_piece("a.npy", npy)});
    for (int i = 0; i < 4; ++i) twins[b_offset_field + static_cast<std::size_t>(i)] = '\0';
    CHECK_THAT(message_of<FormatError>([&] { parse_npz(twins, "overlap.npz"); }), Contains("overlaps the member before it"));
}

TEST_CASE("npz: a length reaching past the end of the file is refused, naming what it measures and where", "[interop]") {
    // One stored member: local header at 0 (30 bytes, the name w.npy at 30, data at 35), the
    // central entry at 35 + npy.size() (46 bytes, then the name), the 22-byte end record.
    const std::string npy = npy_of_floats({2}, {1, 2});
    const std::string good = zip_archive({stored_piece("w.npy", npy)});
    const std::size_t directory = 30 + 5 + npy.size();
    const auto set16 = [](std::string& bytes, std::size_t at, std::uint32_t value) {
        bytes[at] = static_cast<char>(value & 0xFF);
        bytes[at + 1] = static_cast<char>((value >> 8) & 0xFF);
    };
    const auto set32 = [&](std::string& bytes, std::size_t at, std::uint32_t value) {
        set16(bytes, at, value & 0xFFFF);
        set16(bytes, at + 2, value >> 16);
    };
    const auto message = [](const std::string& file) { return message_of<FormatError>([&] { parse_npz(file, "bad.npz"); }); };
    const std::string past_the_end = " runs past the end of the file (" + std::to_string(good.size()) + " bytes)";

    std::string local_extra = good;
    set16(local_extra, 28, 0xFFFF);  // the local header's extra field length
    CHECK(message(local_extra) == "'bad.npz': bad .npz (zip) archive: member 'w.npy': local header's name and extra "
                                  "field at byte 30" + past_the_end);

    std::string central_comment = good;
    set16(central_comment, directory + 32, 0xFFFF);  // the central entry's comment length
    CHECK(message(central_comment) == "'bad.npz': bad .npz (zip) archive: a central directory entry's name and fields "
                                      "at byte " + std::to_string(directory + 46) + past_the_end);

    std::string long_data = good;  // both headers agree on 65536 bytes of data
    for (const std::size_t at : {std::size_t{18}, std::size_t{22}, directory + 20, directory + 24}) set32(long_data, at, 65536);
    CHECK(message(long_data) == "'bad.npz': bad .npz (zip) archive: member 'w.npy': data at byte 35" + past_the_end);
}

TEST_CASE("import_weights picks the format by content, and names the file it cannot read", "[interop]") {
    auto model = small_model(1);
    const std::string zipped = temp_path("content.weights");
    write_bytes(zipped, npz_bytes({}, NpzCompression::Stored));
    CHECK_THAT(message_of<FormatError>([&] { import_weights(model, zipped); }), Contains("(13 problems)"));  // an empty .npz: all missing
    write_bytes(zipped, "not a weight file at all");
    CHECK_THAT(message_of<FormatError>([&] { import_weights(model, zipped); }), Contains(zipped));
    CHECK_THROWS_AS(import_weights(model, temp_path("does-not-exist.safetensors")), IoError);
}
