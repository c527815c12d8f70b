// Output sizes and padding of windowed layers (Conv2D, MaxPool2D), TensorFlow semantics:
//   Valid: out = floor((in - kernel) / stride) + 1, no padding; needs in >= kernel.
//   Same:  out = ceil(in / stride); the padding total = max((out - 1) * stride + kernel - in, 0)
//          is split with the smaller half before (top/left) and the extra pixel after.
#pragma once

#include <algorithm>
#include <string>

#include "../core/checked.hpp"
#include "../core/errors.hpp"
#include "../core/size2.hpp"
#include "../core/tensor.hpp"

namespace latent {

enum class Padding { Same, Valid };

inline const char* padding_name(Padding padding) { return padding == Padding::Same ? "same" : "valid"; }

inline Padding padding_from_name(const std::string& name) {
    if (name == "same") return Padding::Same;
    if (name == "valid") return Padding::Valid;
    throw FormatError("unknown padding '" + name + "' (expected 'same' or 'valid')");
}

// Output length along one axis; 0 when a Valid window does not fit. Needs in >= 0, kernel >= 1
// and stride >= 1; ShapeError when the arithmetic would overflow.
inline Index window_output_size(Index in, Index kernel, Index stride, Padding padding) {
    if (padding == Padding::Same) return checked_add(in, stride - 1, "window output size") / stride;
    return in >= kernel ? (in - kernel) / stride + 1 : 0;
}

// Padding before the first element along one axis (top or left); ShapeError on overflow.
inline Index window_pad_before(Index in, Index kernel, Index stride, Padding padding) {
    if (padding == Padding::Valid) return 0;
    const Index out = window_output_size(in, kernel, stride, padding);
    if (out < 1) return 0;
    const Index covered = checked_add(checked_multiply(out - 1, stride, "window padding"), kernel, "window padding");
    return std::max<Index>(covered - in, 0) / 2;
}


}  // namespace latent
