// Size2: a 2-D extent (kernel size, stride, box size, ...), height then width.
#pragma once

#include <string>
#include <string_view>

#include "checked.hpp"
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

// Both axes of a configured extent in [minimum, max_extent] (core/checked.hpp): ArgumentError
// naming `where` and `what` otherwise.
inline void check_extents(Size2 size, Index minimum, std::string_view where, std::string_view what) {
    checked_extent(size.height, minimum, where, std::string(what) + " height");
    checked_extent(size.width, minimum, where, std::string(what) + " width");
}

}  // namespace latent
