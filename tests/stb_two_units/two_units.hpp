// What the two translation units of the stb link test share.
#pragma once

#include <latent/core/tensor.hpp>

#include <string>

namespace two_units {

// The RGB test picture: byte (c, y, x) = (29 * (c * height + y) * width + 31 * x + 7) mod 256.
constexpr int channels = 3;
constexpr int height = 5;
constexpr int width = 7;
inline unsigned char expected_byte(int c, int y, int x) {
    return static_cast<unsigned char>((29 * (c * height + y) * width + 31 * x + 7) % 256);
}

// second.cpp: checks `png_path` (written by latent) decoded with stb directly, then writes
// `direct_path` with stb directly and checks that latent reads it back. Returns the number of
// mismatches found and prints each.
int check_with_direct_stb(const std::string& png_path, const std::string& direct_path);

}  // namespace two_units
