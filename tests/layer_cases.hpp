// The layer configurations that the layer tests run through (tests/test_conv.cpp,
// tests/test_pool_reshape.cpp) and that tests/onnx exports to ONNX: one table per windowed
// layer, so a configuration added for one is checked by both.
#pragma once

#include <latent/layers/max_pool2d.hpp>
#include <latent/layers/padding.hpp>
#include <latent/layers/upsample2d.hpp>

#include <optional>
#include <string>
#include <vector>

namespace test {

using latent::Index;
using latent::Interpolation;
using latent::Padding;
using latent::Shape;
using latent::Size2;

// One layer configuration for the table-driven tests.
struct ConvCase {
    Index channels, height, width, filters;
    Size2 kernel, stride;
    Padding padding;
    std::optional<Size2> output_padding = std::nullopt;  // ConvTranspose2D only; none = Keras's None

    std::string label(const std::string& layer) const {
        std::string text = layer + " k=" + kernel.str() + " s=" + stride.str() + " " +
                           padding_name(padding) + " " + std::to_string(height) + "x" +
                           std::to_string(width) + " C=" + std::to_string(channels) +
                           " F=" + std::to_string(filters);
        if (output_padding) text += " output_padding=" + output_padding->str();
        return text;
    }
    Shape input() const { return {channels, height, width}; }
};

// Kernels 1, 3, 5, 7 and rectangular; strides 1, 2, 3 and rectangular; both paddings; odd
// non-square inputs; one filter; kernels wider than the input.
// {channels, height, width, filters, kernel, stride, padding}
inline const std::vector<ConvCase> conv_cases = {
    {3, 7, 5, 4, 1, 1, Padding::Same},
    {2, 9, 6, 3, 3, 1, Padding::Same},
    {2, 7, 5, 3, 3, 2, Padding::Same},
    {2, 9, 6, 3, 3, 2, Padding::Valid},
    {3, 7, 5, 2, 5, 2, Padding::Same},
    {1, 11, 10, 4, 5, 1, Padding::Valid},
    {2, 8, 7, 3, {3, 2}, {2, 1}, Padding::Same},
    {2, 9, 6, 3, {3, 2}, {1, 2}, Padding::Valid},
    {2, 7, 6, 3, 1, 2, Padding::Valid},
    {2, 4, 6, 3, 3, 2, Padding::Same},
    {3, 7, 5, 1, 3, 1, Padding::Same},
    {2, 10, 8, 3, 3, 3, Padding::Same},
    {1, 3, 3, 2, 7, 1, Padding::Same},
    {2, 5, 4, 2, 5, 2, Padding::Same},
    {2, 9, 7, 2, {2, 3}, {3, 2}, Padding::Valid},
    // Stride 1 with more filters than Conv2D's direct path takes (im2col + GEMM), and stride-1
    // cases for the direct path over several blocks of positions and wide kernels.
    {2, 9, 6, 6, 3, 1, Padding::Same},
    {1, 11, 10, 5, 5, 1, Padding::Valid},
    {3, 7, 5, 8, {3, 2}, 1, Padding::Same},
    {3, 28, 28, 1, 3, 1, Padding::Same},
    {4, 20, 17, 2, 5, 1, Padding::Valid},
    {2, 9, 13, 3, {1, 5}, 1, Padding::Same},
    {2, 12, 30, 4, {5, 3}, 1, Padding::Same},
    // The gradient checks' combinations that the rows above lack.
    {2, 9, 6, 2, 5, 1, Padding::Same},
    {2, 7, 5, 2, 1, 1, Padding::Valid},
    {2, 9, 6, 3, 3, 1, Padding::Valid},
    {2, 8, 6, 2, 1, 2, Padding::Same},
    {2, 9, 6, 2, 5, 2, Padding::Valid},
    {2, 9, 6, 6, {3, 2}, 1, Padding::Valid},
};

// The same variety for ConvTranspose2D, plus output_padding (op < stride on that axis).
// {channels, height, width, filters, kernel, stride, padding, output_padding}
inline const std::vector<ConvCase> transpose_cases = {
    {3, 4, 3, 4, 1, 1, Padding::Same},
    {2, 5, 4, 3, 3, 1, Padding::Same},
    {2, 5, 3, 3, 3, 2, Padding::Same},
    {2, 4, 3, 3, 3, 2, Padding::Valid},
    {3, 3, 4, 2, 5, 2, Padding::Same},
    {1, 5, 4, 4, 5, 1, Padding::Valid},
    {2, 4, 5, 3, {3, 2}, {2, 1}, Padding::Same},
    {2, 5, 3, 3, {3, 2}, {1, 2}, Padding::Valid},
    {2, 3, 4, 3, 1, 2, Padding::Valid},
    {2, 4, 3, 3, 3, 2, Padding::Same, Size2{1, 1}},
    {2, 3, 4, 2, {3, 2}, 2, Padding::Valid, Size2{1, 1}},
    {2, 3, 5, 2, {2, 3}, {2, 3}, Padding::Same, Size2{1, 2}},
    {2, 4, 3, 2, 3, 2, Padding::Same, Size2{0, 0}},
    {3, 4, 3, 1, 3, 2, Padding::Same},
    {2, 3, 4, 3, 3, 3, Padding::Same},
    {2, 3, 3, 2, {3, 2}, {3, 2}, Padding::Valid, Size2{2, 1}},
    {1, 2, 2, 2, 5, 1, Padding::Same},
    // The gradient checks' combinations that the rows above lack.
    {2, 5, 4, 3, 3, 1, Padding::Valid},
    {2, 5, 3, 3, {3, 2}, 1, Padding::Same},
    {2, 3, 4, 2, 3, 2, Padding::Valid, Size2{1, 1}},
    {2, 4, 3, 2, {3, 2}, 2, Padding::Same, Size2{1, 1}},
};


// MaxPool2D: pools 2 and 3 and rectangular, strides 1, 2 and the pool, both paddings.
struct PoolCase {
    const char* label;
    Size2 pool, stride;  // stride 0: the pool size
    Padding padding;
    Shape input;
};
inline const std::vector<PoolCase> pool_cases = {
    {"MaxPool2D 2x2 same 7x5", 2, 0, Padding::Same, {3, 7, 5}},
    {"MaxPool2D 2x2 valid 7x5", 2, 0, Padding::Valid, {3, 7, 5}},
    {"MaxPool2D 2x2 stride 1 same 7x5", 2, 1, Padding::Same, {2, 7, 5}},
    {"MaxPool2D 2x2 stride 1 valid 9x6", 2, 1, Padding::Valid, {2, 9, 6}},
    {"MaxPool2D 3x3 same 7x5", 3, 0, Padding::Same, {2, 7, 5}},
    {"MaxPool2D 3x3 valid 9x6", 3, 0, Padding::Valid, {2, 9, 6}},
    {"MaxPool2D 3x3 stride 2 same 9x6", 3, 2, Padding::Same, {2, 9, 6}},
    {"MaxPool2D 3x3 stride 2 valid 7x5", 3, 2, Padding::Valid, {3, 7, 5}},
    {"MaxPool2D 3x3 stride 1 same 7x5", 3, 1, Padding::Same, {2, 7, 5}},
    {"MaxPool2D 2x3 stride 1x2 same 9x6", Size2(2, 3), Size2(1, 2), Padding::Same, {2, 9, 6}},
};

// UpSample2D: both modes, square and rectangular factors, a one-pixel-high input.
struct UpSampleCase {
    const char* label;
    Size2 factor;
    Interpolation mode;
    Shape input;
};
inline const std::vector<UpSampleCase> upsample_cases = {
    {"UpSample2D nearest 2 3x5", 2, Interpolation::Nearest, {2, 3, 5}},
    {"UpSample2D nearest 2x3 5x3", Size2(2, 3), Interpolation::Nearest, {2, 5, 3}},
    {"UpSample2D bilinear 2 3x5", 2, Interpolation::Bilinear, {2, 3, 5}},
    {"UpSample2D bilinear 2x3 5x4", Size2(2, 3), Interpolation::Bilinear, {2, 5, 4}},
    {"UpSample2D bilinear 3 1x3", 3, Interpolation::Bilinear, {3, 1, 3}},
};

}  // namespace test
