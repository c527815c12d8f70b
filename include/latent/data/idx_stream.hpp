// stream_idx_images: the images of an IDX file as a BatchStream (stream.hpp), read a sample at a
// time at its offset in the file, never the whole file.
//
// The header is checked as read_idx_images checks it (magic, dimensions, exact length) before
// the stream starts, and every value is byte / 255 as there, so the batches equal those fit()
// gathers from read_idx_images' tensor. Streaming needs an uncompressed file: gzip data cannot
// be read at an offset (FormatError: decompress it first, e.g. gunzip -k).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/checked.hpp"
#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/tensor.hpp"
#include "idx.hpp"
#include "stream.hpp"

namespace latent {

// A stream of the (1, rows, cols) images of the uncompressed IDX image file `path`, values in
// [0, 1]. FormatError naming the file for a gzip file or any header read_idx_images refuses;
// IoError when it cannot be opened. A file truncated while streaming stops training with a
// FormatError naming it (or skips the sample, StreamOptions::bad_sample).
template <class T = float> BatchStream<T> stream_idx_images(const std::string& path, const StreamOptions& options = {}) {
    auto file = std::make_shared<const FileReader>(path);
    std::vector<char> header(std::min<std::uint64_t>(file->size(), detail::idx_image_header_size));
    file->read(0, header.data(), header.size());
    if (detail::is_gzip(header))
        throw FormatError(detail::quote_path(path) + ": a gzip-compressed IDX file cannot be streamed (its samples "
                          "cannot be read at an offset); decompress it first (gunzip -k)");
    if (header.size() >= 4) detail::check_idx_magic(path, header.data(), detail::idx_image_magic, "image");
    if (header.size() < detail::idx_image_header_size)
        throw FormatError(detail::quote_path(path) + ": truncated: file has " + std::to_string(header.size()) +
                          " bytes, shorter than the 16-byte IDX image header");
    detail::check_idx_length(path, detail::idx_image_header_size, detail::parse_idx_image_header(path, header.data()),
                             file->size(), false);
    const Index count = detail::read_big_endian_u32(header.data() + 4);
    const Index rows = detail::read_big_endian_u32(header.data() + 8);
    const Index cols = detail::read_big_endian_u32(header.data() + 12);
    const Shape shape{1, rows, cols};
    // One sample's bytes must fit a batch in memory: checked like any tensor size.
    checked_product({options.batch_size, shape.size()}, "stream_idx_images: a batch (images x pixels)");

    const std::array<T, 256> value_of_byte = detail::idx_pixel_values<T>();
    SampleReader<T> read_sample = [file, shape, value_of_byte](Index index, T* values) {
        const std::size_t size = static_cast<std::size_t>(shape.size());
        std::vector<char> pixels(size);
        file->read(detail::idx_image_header_size + static_cast<std::uint64_t>(index) * size, pixels.data(), size);
        for (std::size_t i = 0; i < size; ++i) values[i] = value_of_byte[static_cast<unsigned char>(pixels[i])];
    };
    return BatchStream<T>(count, shape, std::move(read_sample), options);
}

}  // namespace latent
