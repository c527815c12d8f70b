// stream_image_folder: the images under a folder as a BatchStream (stream.hpp), decoded on the
// stream's background threads a batch at a time; only the file names stay in memory.
//
// The files, their order and the decoding (channels, limits, resize) are load_image_folder's,
// so the batches equal those fit() gathers from load_image_folder(folder, options).images. The
// first image is decoded when the stream is made, to learn the size when there is no resize.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../core/checked.hpp"
#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "images.hpp"
#include "stream.hpp"

namespace latent {

// A stream of the images under `folder`, read as load_image_folder reads them (labels aside).
// IoError for a missing folder; FormatError naming the folder when it holds no images, or
// naming the first file when it cannot be decoded. While streaming, a file that cannot be
// decoded, or whose size differs from the first one's when there is no resize (ShapeError),
// stops training with an error naming it -- or is skipped (StreamOptions::bad_sample).
template <class T = float>
BatchStream<T> stream_image_folder(const std::string& folder, const ImageFolderOptions& folder_options = {},
                                   const StreamOptions& options = {}) {
    const char* where = "stream_image_folder";
    detail::check_image_folder_options(where, folder_options);
    auto paths = std::make_shared<std::vector<std::string>>();
    for (const auto& file : detail::list_image_files(folder, folder_options))
        paths->push_back((std::filesystem::path(folder) / file).string());
    if (paths->empty()) throw FormatError(std::string(where) + ": no image files in '" + folder + "'");
    const Shape shape = sample_shape(detail::read_folder_image<T>(paths->front(), folder_options));
    checked_product({options.batch_size, shape.size()}, "stream_image_folder: a batch (images x values)");

    SampleReader<T> read_sample = [paths, shape, folder_options, where](Index index, T* values) {
        const std::string& path = (*paths)[static_cast<std::size_t>(index)];
        const Tensor<T> image = detail::read_folder_image<T>(path, folder_options);
        detail::require_folder_image_shape(where, image, path, shape, paths->front());
        std::copy(image.data(), image.data() + image.size(), values);
    };
    return BatchStream<T>(static_cast<Index>(paths->size()), shape, std::move(read_sample), options);
}

}  // namespace latent
