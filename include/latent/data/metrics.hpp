// Image quality metrics for reconstructions: MSE, PSNR and SSIM, over a batch or per sample.
//
// Every metric takes two batches of the same (N, C, H, W) shape (ShapeError otherwise), works in
// double whatever T is, and gives the same result with any thread count (per-sample values are
// computed in parallel and combined in sample order).
//
// SSIM follows Wang, Bovik, Sheikh & Simoncelli (2004), computed exactly as
//   skimage.metrics.structural_similarity(a, b, data_range=R, gaussian_weights=True, sigma=1.5,
//                                         use_sample_covariance=False, channel_axis=0)
// for each image:
//   * window: 11x11 Gaussian, sigma 1.5, the separable weights g(k) = exp(-k^2 / (2 * 1.5^2)),
//     k = -5..5, normalised to sum 1 (scipy's gaussian_filter with truncate = 3.5);
//   * at each window position, over each channel separately: the weighted means mu_a, mu_b,
//     variances var_a = E[a^2] - mu_a^2, var_b, and covariance cov = E[ab] - mu_a mu_b
//     (population moments: no N/(N-1) correction);
//   * SSIM = (2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)),
//     C1 = (0.01 R)^2, C2 = (0.03 R)^2, R = data_range;
//   * only "valid" positions, where the window lies inside the image ((H-10) x (W-10) of them);
//     the mean over positions and channels is the image's SSIM, and ssim() is the mean over images.
// Images smaller than 11x11 are rejected (ArgumentError).
#pragma once

#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"

namespace latent {
namespace detail {

template <class T>
void check_metric_inputs(const char* metric, const ConstTensorView<T>& a, const ConstTensorView<T>& b) {
    if (a.dimensions() != b.dimensions())
        throw ShapeError(std::string(metric) + ": the two batches differ in shape: " +
                         batch_shape_str(a.dimension(0), sample_shape<T>(a)) + " and " +
                         batch_shape_str(b.dimension(0), sample_shape<T>(b)));
    require(a.size() > 0, metric, "the batches are empty " +
                                      batch_shape_str(a.dimension(0), sample_shape<T>(a)));
}

inline void check_data_range(const char* metric, double data_range) {
    require(std::isfinite(data_range) && data_range > 0, metric,
            "data_range must be finite and > 0, got " + detail::readable_number(data_range));
}

// Sum of squared differences of each sample: sum_i (a[n, i] - b[n, i])^2.
template <class T>
std::vector<double> squared_error_sums(ConstTensorView<T> a, ConstTensorView<T> b) {
    const Index batch = a.dimension(0), size = sample_shape<T>(a).size();
    std::vector<double> sums(static_cast<std::size_t>(batch), 0.0);
    const Chunks chunks = batch_chunks(batch, size);
    parallel_for(chunks.count(), batch * size, [&](Index chunk) {
        const Index end = chunks.begin(chunk) + chunks.size(chunk);
        for (Index n = chunks.begin(chunk); n < end; ++n) {
            const T* x = a.data() + n * size;
            const T* y = b.data() + n * size;
            double sum = 0;
            for (Index i = 0; i < size; ++i) {
                const double difference = static_cast<double>(x[i]) - static_cast<double>(y[i]);
                sum += difference * difference;
            }
            sums[static_cast<std::size_t>(n)] = sum;
        }
    });
    return sums;
}

// 10 log10(R^2 / mse); +infinity for mse == 0.
inline double psnr_from_mse(double mse, double data_range) {
    if (mse == 0.0) return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(data_range * data_range / mse);
}

constexpr Index ssim_window = 11;
constexpr Index ssim_radius = ssim_window / 2;

// Gaussian weights exp(-k^2 / (2 sigma^2)), k = -5..5, sigma = 1.5, normalised to sum 1.
inline std::array<double, ssim_window> ssim_gaussian_weights() {
    std::array<double, ssim_window> weights{};
    const double sigma = 1.5;
    double sum = 0;
    for (Index k = 0; k < ssim_window; ++k) {
        const double offset = static_cast<double>(k - ssim_radius);
        weights[k] = std::exp(-offset * offset / (2 * sigma * sigma));
        sum += weights[k];
    }
    for (double& weight : weights) weight /= sum;
    return weights;
}

// Mean SSIM of one channel over its valid window positions. The separable Gaussian filter runs
// along rows into `scratch` (five moment images: a, b, a^2, b^2, ab), then down the columns.
template <class T>
double ssim_plane(const T* a, const T* b, Index height, Index width, double c1, double c2,
                  const std::array<double, ssim_window>& weights, std::vector<double>& scratch) {
    const Index out_height = height - ssim_window + 1, out_width = width - ssim_window + 1;
    const Index moment_size = height * out_width;
    scratch.resize(static_cast<std::size_t>(5 * moment_size));
    double* row_a = scratch.data();
    double* row_b = row_a + moment_size;
    double* row_aa = row_b + moment_size;
    double* row_bb = row_aa + moment_size;
    double* row_ab = row_bb + moment_size;
    for (Index r = 0; r < height; ++r)
        for (Index j = 0; j < out_width; ++j) {
            double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
            for (Index k = 0; k < ssim_window; ++k) {
                const double x = static_cast<double>(a[r * width + j + k]);
                const double y = static_cast<double>(b[r * width + j + k]);
                const double w = weights[k];
                sa += w * x;
                sb += w * y;
                saa += w * x * x;
                sbb += w * y * y;
                sab += w * x * y;
            }
            const Index at = r * out_width + j;
            row_a[at] = sa, row_b[at] = sb, row_aa[at] = saa, row_bb[at] = sbb, row_ab[at] = sab;
        }
    double total = 0;
    for (Index i = 0; i < out_height; ++i)
        for (Index j = 0; j < out_width; ++j) {
            double mu_a = 0, mu_b = 0, mean_aa = 0, mean_bb = 0, mean_ab = 0;
            for (Index k = 0; k < ssim_window; ++k) {
                const Index at = (i + k) * out_width + j;
                const double w = weights[k];
                mu_a += w * row_a[at];
                mu_b += w * row_b[at];
                mean_aa += w * row_aa[at];
                mean_bb += w * row_bb[at];
                mean_ab += w * row_ab[at];
            }
            const double var_a = mean_aa - mu_a * mu_a, var_b = mean_bb - mu_b * mu_b;
            const double covariance = mean_ab - mu_a * mu_b;
            total += ((2 * mu_a * mu_b + c1) * (2 * covariance + c2)) /
                     ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
        }
    return total / static_cast<double>(out_height * out_width);
}

inline double mean_of(const std::vector<double>& values) {
    return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

}  // namespace detail

// Mean squared error of each sample: mean_i (a[n, i] - b[n, i])^2.
template <class T> std::vector<double> mse_per_sample(ConstTensorView<T> a, ConstTensorView<T> b) {
    detail::check_metric_inputs("mse", a, b);
    std::vector<double> errors = detail::squared_error_sums(a, b);
    const double size = static_cast<double>(sample_shape<T>(a).size());
    for (double& error : errors) error /= size;
    return errors;
}

// Mean squared error over all elements of the batch.
template <class T> double mse(ConstTensorView<T> a, ConstTensorView<T> b) {
    detail::check_metric_inputs("mse", a, b);
    const std::vector<double> sums = detail::squared_error_sums(a, b);
    return std::accumulate(sums.begin(), sums.end(), 0.0) / static_cast<double>(a.size());
}

// Peak signal-to-noise ratio in dB, 10 log10(data_range^2 / mse), from the MSE of the whole batch
// (not the mean of per-sample PSNRs). Identical batches give +infinity: check std::isinf before
// averaging PSNRs.
template <class T> double psnr(ConstTensorView<T> a, ConstTensorView<T> b, double data_range = 1.0) {
    detail::check_data_range("psnr", data_range);
    return detail::psnr_from_mse(mse(a, b), data_range);
}

// PSNR of each sample (+infinity for a sample reproduced exactly).
template <class T>
std::vector<double> psnr_per_sample(ConstTensorView<T> a, ConstTensorView<T> b, double data_range = 1.0) {
    detail::check_data_range("psnr", data_range);
    std::vector<double> values = mse_per_sample(a, b);
    for (double& value : values) value = detail::psnr_from_mse(value, data_range);
    return values;
}

// SSIM of each sample (mean over its channels and valid window positions; see the top of this file).
template <class T>
std::vector<double> ssim_per_sample(ConstTensorView<T> a, ConstTensorView<T> b, double data_range = 1.0) {
    detail::check_metric_inputs("ssim", a, b);
    detail::check_data_range("ssim", data_range);
    const Shape shape = sample_shape<T>(a);
    detail::require(shape.height >= detail::ssim_window && shape.width >= detail::ssim_window, "ssim",
                    "images must be at least 11x11 (the size of the Gaussian window), got " +
                        std::to_string(shape.height) + "x" + std::to_string(shape.width));
    const double c1 = (0.01 * data_range) * (0.01 * data_range);
    const double c2 = (0.03 * data_range) * (0.03 * data_range);
    const auto weights = detail::ssim_gaussian_weights();
    const Index batch = a.dimension(0), plane = shape.height * shape.width;
    std::vector<double> values(static_cast<std::size_t>(batch), 0.0);
    std::vector<std::vector<double>> scratch(static_cast<std::size_t>(num_threads()));
    parallel_for(batch, [&](Index n, int worker) {
        double sum = 0;
        for (Index c = 0; c < shape.channels; ++c) {
            const Index offset = n * shape.size() + c * plane;
            sum += detail::ssim_plane(a.data() + offset, b.data() + offset, shape.height, shape.width,
                                      c1, c2, weights, scratch[static_cast<std::size_t>(worker)]);
        }
        values[static_cast<std::size_t>(n)] = sum / static_cast<double>(shape.channels);
    });
    return values;
}

// Mean SSIM over the images of the batch (1 for identical batches).
template <class T> double ssim(ConstTensorView<T> a, ConstTensorView<T> b, double data_range = 1.0) {
    return detail::mean_of(ssim_per_sample(a, b, data_range));
}

// The same metrics on whole tensors.
template <class T> double mse(const Tensor<T>& a, const Tensor<T>& b) { return mse(view(a), view(b)); }
template <class T> std::vector<double> mse_per_sample(const Tensor<T>& a, const Tensor<T>& b) {
    return mse_per_sample(view(a), view(b));
}
template <class T> double psnr(const Tensor<T>& a, const Tensor<T>& b, double data_range = 1.0) {
    return psnr(view(a), view(b), data_range);
}
template <class T>
std::vector<double> psnr_per_sample(const Tensor<T>& a, const Tensor<T>& b, double data_range = 1.0) {
    return psnr_per_sample(view(a), view(b), data_range);
}
template <class T> double ssim(const Tensor<T>& a, const Tensor<T>& b, double data_range = 1.0) {
    return ssim(view(a), view(b), data_range);
}
template <class T>
std::vector<double> ssim_per_sample(const Tensor<T>& a, const Tensor<T>& b, double data_range = 1.0) {
    return ssim_per_sample(view(a), view(b), data_range);
}

}  // namespace latent
