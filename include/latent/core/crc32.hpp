// CRC-32 (the zlib / zip / PNG polynomial) of a byte range, through zlib: model files check their
// payload with it, and every member of a zip archive (.npz) carries one.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>

namespace latent {
namespace detail {

inline std::uint32_t crc32_of(const char* data, std::size_t size) {
    return static_cast<std::uint32_t>(
        crc32_z(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data), static_cast<z_size_t>(size)));
}

}  // namespace detail
}  // namespace latent
