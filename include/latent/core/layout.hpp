// Converting image batches stored channel-last (N, H, W, C), as NumPy, TensorFlow and most image
// libraries keep them, to latent's (N, C, H, W) and back.
#pragma once

#include "tensor.hpp"

namespace latent {

// `x` holds N samples of H x W pixels with C interleaved channels, read as the dimensions
// (N, H, W, C) of a row-major tensor; the result is (N, C, H, W).
template <class T> Tensor<T> nhwc_to_nchw(const Tensor<T>& x) {
    const Eigen::array<Index, 4> order{0, 3, 1, 2};
    return x.shuffle(order);
}

// The reverse: (N, C, H, W) to (N, H, W, C).
template <class T> Tensor<T> nchw_to_nhwc(const Tensor<T>& x) {
    const Eigen::array<Index, 4> order{0, 2, 3, 1};
    return x.shuffle(order);
}

}  // namespace latent
