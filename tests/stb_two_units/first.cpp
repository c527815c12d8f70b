// Writes a PNG through latent, reads it back through latent here and through stb itself in the
// other translation unit. Exit status 0 only when every reading agrees with the picture.
#include <latent/data/image_writer.hpp>
#include <latent/data/images.hpp>

#include <iostream>
#include <string>

#include "two_units.hpp"

int main(int argc, char** argv) {
    const std::string folder = argc > 1 ? argv[1] : ".";
    const std::string png_path = folder + "/stb_two_units_latent.png";
    const std::string direct_path = folder + "/stb_two_units_direct.png";
    using two_units::channels, two_units::height, two_units::width;
    try {
        latent::Tensor<float> picture(1, channels, height, width);
        for (int c = 0; c < channels; ++c)
            for (int y = 0; y < height; ++y)
                for (int x = 0; x < width; ++x)
                    picture(0, c, y, x) = static_cast<float>(two_units::expected_byte(c, y, x)) / 255.0f;
        latent::save_png(png_path, picture);
        const latent::Tensor<float> read_back = latent::load_image(png_path, channels);
        int mismatches = 0;
        for (int c = 0; c < channels; ++c)
            for (int y = 0; y < height; ++y)
                for (int x = 0; x < width; ++x)
                    if (read_back(0, c, y, x) != picture(0, c, y, x)) {
                        std::cerr << "latent read (" << c << ", " << y << ", " << x << ") = " << read_back(0, c, y, x)
                                  << ", wrote " << picture(0, c, y, x) << "\n";
                        ++mismatches;
                    }
        mismatches += two_units::check_with_direct_stb(png_path, direct_path);
        std::cout << (mismatches == 0 ? "both translation units agree\n" : "mismatches found\n");
        return mismatches == 0 ? 0 : 1;
    } catch (const std::exception& error) {
        std::cerr << "error: " << error.what() << "\n";
        return 1;
    }
}
