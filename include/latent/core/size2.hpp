// Size2: a 2-D extent (kernel size, stride, box size, ...), height then width.
#pragma once

#include <string>

#include "tensor.hpp"

namespace latent {

// A 2-D extent (kernel size, stride, ...): height then width.
struct Size2 {
    Index height = 1;
    Index width = 1;
    Size2() = default;
    Size2(Index both) : height(both), width(both) {}  // NOLINT: implicit, so Conv2D(32, 3) works
    Size2(Index h, Index w) : height(h), width(w) {}
    bool operator==(const Size2& other) const { return height == other.height && width == other.width; }
    std::string str() const { return std::to_string(height) + "x" + std::to_string(width); }
};

}  // namespace latent
