// Writing images as PNG: one sample of a batch, or a grid of several batches (for example clean,
// noisy and reconstructed digits, one batch per row). Values are clamped to [0, 1] and rounded
// to 8 bits (byte = round(255 * clamp(v, 0, 1))); a NaN is a NumericError naming the file.
// Files are encoded in memory with stb_image_write and replaced atomically (a reader never sees
// half a file). How stb is linked is explained at the top of images.hpp.
#pragma once

#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/tensor.hpp"

namespace latent {

// The grey of the 1-pixel lines between the images of a grid, and of cells without an image:
// mid-grey shows against both black and white backgrounds (digits, faces).
constexpr double grid_separator_value = 0.5;

namespace detail {

inline void check_png_channels(Index channels, const std::string& where, const std::string& path,
                               const std::string& shape) {
    if (channels != 1 && channels != 3)
        throw ShapeError(where + ": '" + path + "': images of shape " + shape +
                         " have " + std::to_string(channels) + " channels; PNG needs 1 (grey) or 3 (RGB)");
}

// The planar image `plane` (channels, height, width) as interleaved 8-bit rows, each pixel
// repeated scale x scale times.
template <class T>
std::vector<unsigned char> png_pixels(const T* plane, Index channels, Index height, Index width, Index scale,
                                      const std::string& where, const std::string& path) {
    const Index out_width = width * scale;
    std::vector<unsigned char> pixels(static_cast<std::size_t>(channels * height * scale * out_width));
    for (Index c = 0; c < channels; ++c)
        for (Index y = 0; y < height; ++y)
            for (Index x = 0; x < width; ++x) {
                const double value = static_cast<double>(plane[(c * height + y) * width + x]);
                if (std::isnan(value))
                    throw NumericError(where + ": '" + path + "': pixel (channel " + std::to_string(c) + ", row " +
                                       std::to_string(y) + ", column " + std::to_string(x) + ") is NaN");
                const auto byte = static_cast<unsigned char>(std::lround(std::clamp(value, 0.0, 1.0) * 255.0));
                for (Index dy = 0; dy < scale; ++dy)
                    for (Index dx = 0; dx < scale; ++dx)
                        pixels[static_cast<std::size_t>(((y * scale + dy) * out_width + x * scale + dx) * channels + c)] = byte;
            }
    return pixels;
}

// stb_image_write counts bytes in int: stay well inside it (checked before any allocation).
inline void check_png_size(Index channels, Index height, Index width, const std::string& where,
                           const std::string& path) {
    require(width <= (Index{1} << 24) && height <= (Index{1} << 24) && height * width * channels <= (Index{1} << 30),
            where, "'" + path + "': a " + std::to_string(height) + "x" + std::to_string(width) +
                       " image is too large to write as PNG");
}

// Encodes interleaved 8-bit pixels as PNG in memory and writes them atomically to `path`.
inline void write_png(const std::string& path, const std::vector<unsigned char>& pixels, Index channels,
                      Index height, Index width, const std::string& where) {
    std::vector<char> encoded;
    auto append = [](void* context, void* data, int size) {
        auto* bytes = static_cast<std::vector<char>*>(context);
        bytes->insert(bytes->end(), static_cast<const char*>(data), static_cast<const char*>(data) + size);
    };
    const int ok = stbi_write_png_to_func(append, &encoded, static_cast<int>(width), static_cast<int>(height),
                                          static_cast<int>(channels), pixels.data(),
                                          static_cast<int>(width * channels));
    if (ok == 0) throw IoError(where + ": cannot encode '" + path + "' as PNG");
    write_file_atomically(path, [&](std::ostream& stream) {
        stream.write(encoded.data(), static_cast<std::streamsize>(encoded.size()));
    });
}

}  // namespace detail

// Writes sample `index` of `images` (N, C, H, W), C = 1 (grey) or 3 (RGB), as a PNG file.
template <class T> void save_png(const std::string& path, const Tensor<T>& images, Index index = 0) {
    const char* where = "save_png";
    const Shape shape = sample_shape(images);
    const std::string shape_text = batch_shape_str(images.dimension(0), shape);
    detail::require(index >= 0 && index < images.dimension(0), where,
                    "'" + path + "': index " + std::to_string(index) + " is outside a batch of shape " + shape_text);
    detail::check_png_channels(shape.channels, where, path, shape_text);
    if (shape.height < 1 || shape.width < 1)
        throw ShapeError(std::string(where) + ": '" + path + "': images of shape " + shape_text + " have no pixels");
    detail::check_png_size(shape.channels, shape.height, shape.width, where, path);
    const auto pixels = detail::png_pixels(images.data() + index * shape.size(), shape.channels, shape.height,
                                           shape.width, 1, where, path);
    detail::write_png(path, pixels, shape.channels, shape.height, shape.width, where);
}

// Writes a grid of images as one PNG: row r shows the first `columns` images of rows[r] (a batch
// (N_r, C, H, W); every row has the same C, H, W) from left to right; rows go top to bottom.
// columns = 0 means the largest N_r; cells of a row with fewer images stay separator grey.
// A 1-pixel line of grid_separator_value (0.5) separates neighbouring images and rows (none
// around the border), and every pixel is then repeated scale x scale times (nearest neighbour).
// The file is (R*H + R - 1) * scale pixels high and (columns*W + columns - 1) * scale wide.
template <class T>
void save_image_grid(const std::string& path, const std::vector<Tensor<T>>& rows, Index columns = 0,
                     Index scale = 1) {
    const std::string where = "save_image_grid";
    detail::require(!rows.empty(), where, "'" + path + "': no rows to show");
    detail::require(columns >= 0, where, "'" + path + "': columns must be >= 0, got " + std::to_string(columns));
    detail::require(scale >= 1, where, "'" + path + "': scale must be >= 1, got " + std::to_string(scale));
    const Shape shape = sample_shape(rows[0]);
    Index widest = 0;
    for (std::size_t r = 0; r < rows.size(); ++r) {
        if (sample_shape(rows[r]) != shape)
            throw ShapeError(where + ": '" + path + "': row " + std::to_string(r) + " has images of shape " +
                             sample_shape(rows[r]).str() + " but row 0 has " + shape.str());
        widest = std::max(widest, rows[r].dimension(0));
    }
    if (columns == 0) columns = widest;
    detail::require(columns >= 1, where, "'" + path + "': the rows hold no images");
    detail::check_png_channels(shape.channels, where, path, shape.str());
    if (shape.height < 1 || shape.width < 1)
        throw ShapeError(where + ": '" + path + "': images of shape " + shape.str() + " have no pixels");

    const Index row_count = static_cast<Index>(rows.size());
    const Index grid_height = row_count * shape.height + row_count - 1;
    const Index grid_width = columns * shape.width + columns - 1;
    detail::require(grid_height <= (Index{1} << 24) / scale && grid_width <= (Index{1} << 24) / scale, where,
                    "'" + path + "': the grid is too large to write as PNG");
    detail::check_png_size(shape.channels, grid_height * scale, grid_width * scale, where, path);
    Tensor<T> grid(1, shape.channels, grid_height, grid_width);
    grid.setConstant(static_cast<T>(grid_separator_value));
    for (Index r = 0; r < row_count; ++r) {
        const Tensor<T>& row = rows[static_cast<std::size_t>(r)];
        for (Index j = 0; j < std::min(columns, row.dimension(0)); ++j)
            for (Index c = 0; c < shape.channels; ++c)
                for (Index y = 0; y < shape.height; ++y)
                    for (Index x = 0; x < shape.width; ++x) {
                        const T value = row(j, c, y, x);
                        if (std::isnan(static_cast<double>(value)))
                            throw NumericError(where + ": '" + path + "': image " + std::to_string(j) + " of row " +
                                               std::to_string(r) + " has a NaN at (channel " + std::to_string(c) +
                                               ", row " + std::to_string(y) + ", column " + std::to_string(x) + ")");
                        grid(0, c, r * (shape.height + 1) + y, j * (shape.width + 1) + x) = value;
                    }
    }
    const auto pixels = detail::png_pixels(grid.data(), shape.channels, grid_height, grid_width, scale, where, path);
    detail::write_png(path, pixels, shape.channels, grid_height * scale, grid_width * scale, where);
}

// save_image_grid(path, {clean, noisy, output}): the rows as a braced list.
template <class T>
void save_image_grid(const std::string& path, std::initializer_list<Tensor<T>> rows, Index columns = 0,
                     Index scale = 1) {
    save_image_grid(path, std::vector<Tensor<T>>(rows), columns, scale);
}

}  // namespace latent
