// The second translation unit: includes latent's image headers AND calls stb itself.
#include <latent/data/image_writer.hpp>
#include <latent/data/images.hpp>

#include <stb_image.h>
#include <stb_image_write.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "two_units.hpp"

namespace two_units {
namespace {

void append(void* context, void* data, int size) {
    auto* bytes = static_cast<std::vector<char>*>(context);
    bytes->insert(bytes->end(), static_cast<const char*>(data), static_cast<const char*>(data) + size);
}

// The picture as interleaved bytes, the layout stb reads and writes.
std::vector<unsigned char> interleaved_picture() {
    std::vector<unsigned char> bytes(channels * height * width);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            for (int c = 0; c < channels; ++c) bytes[(y * width + x) * channels + c] = expected_byte(c, y, x);
    return bytes;
}

}  // namespace

int check_with_direct_stb(const std::string& png_path, const std::string& direct_path) {
    int mismatches = 0;
    // 1. latent's file, decoded by stb directly.
    const std::vector<char> file = latent::read_file(png_path);
    int file_width = 0, file_height = 0, file_channels = 0;
    const std::unique_ptr<stbi_uc, void (*)(void*)> decoded(
        stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(file.data()), static_cast<int>(file.size()),
                              &file_width, &file_height, &file_channels, channels),
        stbi_image_free);
    if (!decoded || file_width != width || file_height != height || file_channels != channels) {
        std::cerr << "stb could not read latent's PNG as " << width << "x" << height << "x" << channels << "\n";
        return 1;
    }
    const std::vector<unsigned char> picture = interleaved_picture();
    for (std::size_t i = 0; i < picture.size(); ++i)
        if (decoded.get()[i] != picture[i]) {
            std::cerr << "stb read byte " << i << " = " << int(decoded.get()[i]) << ", expected " << int(picture[i]) << "\n";
            ++mismatches;
        }
    // 2. A PNG encoded by stb directly, read by latent.
    std::vector<char> encoded;
    if (stbi_write_png_to_func(append, &encoded, width, height, channels, picture.data(), width * channels) == 0) {
        std::cerr << "stb could not encode a PNG\n";
        return mismatches + 1;
    }
    latent::write_file_atomically(direct_path, [&](std::ostream& stream) {
        stream.write(encoded.data(), static_cast<std::streamsize>(encoded.size()));
    });
    const latent::Tensor<double> read_back = latent::load_image<double>(direct_path, channels);
    for (int c = 0; c < channels; ++c)
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x)
                if (read_back(0, c, y, x) != expected_byte(c, y, x) / 255.0) {
                    std::cerr << "latent read stb's byte (" << c << ", " << y << ", " << x << ") wrong\n";
                    ++mismatches;
                }
    return mismatches;
}

}  // namespace two_units
