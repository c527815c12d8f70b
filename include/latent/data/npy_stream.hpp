// stream_npy: the samples of an .npy array as a BatchStream (stream.hpp), read a sample at a
// time at its offset in the file, never the whole file.
//
// Only the header is read when the stream is made; it is checked as load_npy checks it (dtype
// '<f4' or '<f8', C order, at most max_elements values, exactly the data bytes the shape needs)
// and the first dimension counts the samples, the others are one sample's (C, H, W), missing
// trailing ones 1 -- load_npy's tensor, so the batches equal those fit() gathers from it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../core/checked.hpp"
#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/tensor.hpp"
#include "npy.hpp"
#include "stream.hpp"

namespace latent {
namespace detail {

// No .npy writer pads its header past a few kilobytes; a longer one is refused, not read.
constexpr std::size_t npy_max_header_bytes = std::size_t{1} << 20;

// The header of the .npy file `file`, read from its first bytes only.
inline NpyHeader read_npy_file_header(const FileReader& file) {
    const std::string& path = file.path();
    std::vector<char> bytes(static_cast<std::size_t>(std::min<std::uint64_t>(file.size(), 12)));
    file.read(0, bytes.data(), bytes.size());
    const std::size_t length = npy_header_length(std::string_view(bytes.data(), bytes.size()), path);
    if (length > file.size())
        throw FormatError("'" + path + "': truncated .npy header: it says " + std::to_string(length) +
                          " bytes, the file has " + std::to_string(file.size()));
    if (length > npy_max_header_bytes)
        throw FormatError("'" + path + "': .npy header of " + std::to_string(length) + " bytes, more than the " +
                          std::to_string(npy_max_header_bytes) + " any writer makes");
    bytes.resize(length);
    file.read(0, bytes.data(), bytes.size());
    return read_npy_header(std::string_view(bytes.data(), bytes.size()), path);
}

}  // namespace detail

// A stream of the samples of the .npy array `path` (1 to 4 dimensions, '<f4' or '<f8', converted
// to T). FormatError naming the file for anything load_npy refuses, or an array of no samples;
// IoError when it cannot be opened. A file truncated while streaming stops training with a
// FormatError naming it (or skips the sample, StreamOptions::bad_sample).
template <class T = float> BatchStream<T> stream_npy(const std::string& path, const StreamOptions& options = {}) {
    auto file = std::make_shared<const FileReader>(path);
    const detail::NpyHeader header = detail::read_npy_file_header(*file);
    detail::check_npy_layout(header, file->size() - header.data_offset, path, {"<f4", "<f8"},
                             "little-endian float32 '<f4' and float64 '<f8'");
    const std::array<Index, 4> dims = detail::npy_tensor_dimensions(header.shape, path);
    const Shape shape{dims[1], dims[2], dims[3]};
    if (dims[0] == 0 || shape.size() == 0)
        throw FormatError("'" + path + "': .npy array of shape " + detail::npy_shape_text(header.shape) +
                          " holds no samples to stream");
    checked_product({options.batch_size, shape.size()}, "stream_npy: a batch (samples x values)");

    const std::size_t item_size = detail::npy_item_size(header.descr);
    const std::uint64_t data_offset = header.data_offset;
    SampleReader<T> read_sample = [file, shape, item_size, data_offset](Index index, T* values) {
        const std::size_t count = static_cast<std::size_t>(shape.size());
        std::vector<char> bytes(count * item_size);
        file->read(data_offset + static_cast<std::uint64_t>(index) * bytes.size(), bytes.data(), bytes.size());
        detail::convert_npy_values(bytes.data(), count, item_size, values);
    };
    return BatchStream<T>(dims[0], shape, std::move(read_sample), options);
}

}  // namespace latent
