// Writes the seed corpus of every fuzz target: small valid files of each kind a loader reads.
//   fuzz_make_seeds <corpus folder>     (the committed corpus is tests/fuzz/corpus)
#include <latent/io/pytorch.hpp>
#include <latent/latent.hpp>

#include <jpeglib.h>
#include <png.h>
#include <stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace latent;
namespace fs = std::filesystem;

namespace {

fs::path folder_of(const fs::path& corpus, const std::string& target) {
    fs::create_directories(corpus / target);
    return corpus / target;
}

void write_bytes(const fs::path& path, const std::vector<unsigned char>& bytes) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
}

std::vector<unsigned char> bytes_of(const fs::path& path) {
    const std::vector<char> bytes = read_file(path.string());
    return std::vector<unsigned char>(bytes.begin(), bytes.end());
}

// A pattern that is neither constant nor a ramp.
std::vector<unsigned char> pattern(std::size_t count) {
    std::vector<unsigned char> bytes(count);
    for (std::size_t i = 0; i < count; ++i) bytes[i] = static_cast<unsigned char>((37 * i + 11) % 256);
    return bytes;
}

void npy_seeds(const fs::path& corpus) {
    const fs::path folder = folder_of(corpus, "npy");
    Tensor<float> tensor(2, 1, 2, 3);
    for (Index i = 0; i < tensor.size(); ++i) tensor.data()[i] = static_cast<float>(i) / 7;
    save_npy((folder / "tensor.npy").string(), tensor);
    save_npy_rows((folder / "rows_double.npy").string(), Tensor<double>(tensor.cast<double>()));
}

void idx_seeds(const fs::path& corpus) {
    Tensor<float> images(3, 1, 4, 5);
    for (Index i = 0; i < images.size(); ++i) images.data()[i] = static_cast<float>(i % 11) / 10;
    const fs::path idx = folder_of(corpus, "idx"), gzip = folder_of(corpus, "idx_gzip");
    write_idx_images((idx / "images").string(), images);
    write_idx_labels((idx / "labels").string(), {1, 7, 3});
    // idx_gzip: a leading odd byte asks the target to compress the rest itself.
    for (const char* name : {"images", "labels"}) {
        std::vector<unsigned char> bytes = bytes_of(idx / name);
        bytes.insert(bytes.begin(), 1);
        write_bytes(gzip / name, bytes);
    }
}

void png_seeds(const fs::path& corpus) {
    const fs::path folder = folder_of(corpus, "png");
    const auto write = [&](const char* name, png_uint_32 format, int width, int height) {
        png_image image{};
        image.version = PNG_IMAGE_VERSION;
        image.width = static_cast<png_uint_32>(width);
        image.height = static_cast<png_uint_32>(height);
        image.format = format;
        image.colormap_entries = (format & PNG_FORMAT_FLAG_COLORMAP) ? 256 : 0;
        const std::vector<unsigned char> pixels = pattern(PNG_IMAGE_SIZE(image));
        std::vector<unsigned char> colour_map = pattern(256 * 3);
        png_image_write_to_file(&image, (folder / name).c_str(), 0, pixels.data(), 0,
                                (format & PNG_FORMAT_FLAG_COLORMAP) ? colour_map.data() : nullptr);
    };
    write("grey.png", PNG_FORMAT_GRAY, 5, 4);
    write("rgb.png", PNG_FORMAT_RGB, 4, 3);
    write("rgba.png", PNG_FORMAT_RGBA, 3, 3);
    write("grey16.png", PNG_FORMAT_LINEAR_Y, 3, 2);
    write("palette.png", PNG_FORMAT_RGB_COLORMAP, 6, 2);
}

void jpeg_seeds(const fs::path& corpus) {
    const fs::path folder = folder_of(corpus, "jpeg");
    const std::vector<unsigned char> grey = pattern(16 * 8), rgb = pattern(8 * 8 * 3);
    stbi_write_jpg((folder / "grey.jpg").c_str(), 16, 8, 1, grey.data(), 90);
    stbi_write_jpg((folder / "rgb.jpg").c_str(), 8, 8, 3, rgb.data(), 90);
    // A progressive JPEG, written with libjpeg.
    jpeg_compress_struct info{};
    jpeg_error_mgr errors{};
    info.err = jpeg_std_error(&errors);
    jpeg_create_compress(&info);
    std::FILE* file = std::fopen((folder / "progressive.jpg").c_str(), "wb");
    jpeg_stdio_dest(&info, file);
    info.image_width = 8;
    info.image_height = 8;
    info.input_components = 3;
    info.in_color_space = JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_simple_progression(&info);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = const_cast<unsigned char*>(rgb.data()) + info.next_scanline * 8 * 3;
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    std::fclose(file);
}

void little_endian(std::vector<unsigned char>& bytes, std::uint32_t value, int count) {
    for (int k = 0; k < count; ++k) bytes.push_back(static_cast<unsigned char>(value >> (8 * k)));
}

void bmp_seeds(const fs::path& corpus) {
    const fs::path folder = folder_of(corpus, "bmp");
    const std::vector<unsigned char> rgb = pattern(5 * 3 * 3);
    stbi_write_bmp((folder / "rgb24.bmp").c_str(), 5, 3, 3, rgb.data());
    // OS/2 (12-byte header), 2x2 at 24 bits: rows of 6 bytes padded to 8.
    std::vector<unsigned char> os2{'B', 'M'};
    little_endian(os2, 26 + 16, 4);
    little_endian(os2, 0, 4);
    little_endian(os2, 26, 4);
    little_endian(os2, 12, 4);
    for (std::uint32_t field : {2u, 2u, 1u, 24u}) little_endian(os2, field, 2);
    const std::vector<unsigned char> rows = pattern(16);
    os2.insert(os2.end(), rows.begin(), rows.end());
    write_bytes(folder / "os2.bmp", os2);
    // 8-bit with a 4-colour palette, 3x2, rows padded to 4 bytes.
    std::vector<unsigned char> paletted{'B', 'M'};
    little_endian(paletted, 54 + 16 + 8, 4);
    little_endian(paletted, 0, 4);
    little_endian(paletted, 54 + 16, 4);
    little_endian(paletted, 40, 4);
    little_endian(paletted, 3, 4);
    little_endian(paletted, 2, 4);
    little_endian(paletted, 1, 2);
    little_endian(paletted, 8, 2);
    for (int field = 0; field < 6; ++field) little_endian(paletted, field == 4 ? 4 : 0, 4);
    const std::vector<unsigned char> palette = pattern(16);
    paletted.insert(paletted.end(), palette.begin(), palette.end());
    for (unsigned char index : {0, 1, 2, 0, 3, 2, 1, 0}) paletted.push_back(index);
    write_bytes(folder / "paletted8.bmp", paletted);
}

void pnm_seeds(const fs::path& corpus) {
    const fs::path folder = folder_of(corpus, "pnm");
    const auto write = [&](const char* name, const std::string& header, std::size_t samples) {
        std::vector<unsigned char> bytes(header.begin(), header.end());
        const std::vector<unsigned char> body = pattern(samples);
        bytes.insert(bytes.end(), body.begin(), body.end());
        write_bytes(folder / name, bytes);
    };
    write("grey.pgm", "P5\n# comment\n4 3\n255\n", 12);
    write("rgb.pgm", "P6 2 2 255\n", 12);
    std::vector<unsigned char> sixteen{'P', '5', ' ', '2', ' ', '1', ' ', '6', '5', '5', '3', '5', '\n', 0x12, 0x34, 0xAB, 0xCD};
    write_bytes(folder / "grey16.pgm", sixteen);
}

void model_seeds(const fs::path& corpus) {
    const fs::path model = folder_of(corpus, "model"), crc = folder_of(corpus, "model_crc");
    Autoencoder<float> autoencoder(
        Encoder<float>{Conv2D<float>(2, 3, 2, Padding::Same), ReLU<float>(), MaxPool2D<float>(2, 1, Padding::Same),
                       Flatten<float>(), Dense<float>(3), Tanh<float>()},
        Decoder<float>{Dense<float>(2 * 2 * 2), Reshape<float>({2, 2, 2}), UpSample2D<float>(2, Interpolation::Bilinear),
                       ConvTranspose2D<float>(1, 3, 1, Padding::Same), Sigmoid<float>()},
        {1, 4, 4}, 1);
    autoencoder.save((model / "autoencoder.latent").string());
    Sequential<float> sequential{Dense<float>(3), LeakyReLU<float>(0.1), Dense<float>(2)};
    sequential.build({2, 1, 1}, 2);
    Adam<float> adam(0.01);
    save_checkpoint((model / "checkpoint.latent").string(), sequential, adam, 1);
    save_model((model / "sequential.latent").string(), sequential);
    for (const auto& entry : fs::directory_iterator(model))
        fs::copy_file(entry.path(), crc / entry.path().filename(), fs::copy_options::overwrite_existing);
}

// The weights of a small network with every mapping rule (an implicit flatten, BatchNorm's
// buffers and int64 counter, a transposed convolution), as .safetensors and as .npz.
void weight_seeds(const fs::path& corpus) {
    Autoencoder<float> model(Encoder<float>{Conv2D<float>(2, 3, 2), ReLU<float>(), Dense<float>(3), BatchNorm<float>()},
                             Decoder<float>{Dense<float>(16), Reshape<float>(Shape{1, 4, 4}), ConvTranspose2D<float>(1, 3, 2)},
                             {1, 8, 8}, 1);
    export_weights(model, (folder_of(corpus, "safetensors") / "autoencoder.safetensors").string());
    const fs::path npz = folder_of(corpus, "npz");
    export_weights(model, (npz / "deflated.npz").string());
    export_weights(model, (npz / "stored.npz").string(), NpzCompression::Stored);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_make_seeds <corpus folder>\n");
        return 2;
    }
    const fs::path corpus(argv[1]);
    npy_seeds(corpus);
    idx_seeds(corpus);
    png_seeds(corpus);
    jpeg_seeds(corpus);
    bmp_seeds(corpus);
    pnm_seeds(corpus);
    model_seeds(corpus);
    weight_seeds(corpus);
    return 0;
}
