// check_gradients: compares a layer's hand-written backward with central finite differences.
// Use it in double precision on every new layer type (latent's own tests do).
//
// The check uses the scalar L = sum_j r_j * y_j + term with fixed random weights r in [-1, 1],
// so dL/dy = r, where term is the layer's term_value() when the pass computes terms (a penalty
// the layer adds to the objective; 0 for layers without one). For each input value and each
// parameter value v it evaluates
//     numeric = (L(v + eps) - L(v - eps)) / (2 eps)
// and compares it with the analytic gradient from backward(). L(v+eps) - L(v-eps) is summed
// from the per-output differences, so outputs a perturbation does not touch contribute exactly 0.
// Relative error of one value: |analytic - numeric| / max(|analytic|, |numeric|, floor), with
// floor = 1e-6 * (1 + the largest |numeric| in that tensor): values that are tiny next to the
// tensor's scale are compared absolutely, where relative error is only round-off noise.
//
// Every forward and backward of a check gets the same Pass (GradientCheckOptions::pass), so a
// stochastic layer draws the same noise each time and is checked with its noise fixed, and a
// Training pass checks batch statistics (BatchNorm). With term_only, r = 0: L is the term alone
// and the check is of the term's own gradient. The layer's buffers (running statistics) are
// restored afterwards, so a check leaves them as they were.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <utility>
#include <string>
#include <vector>

#include "layer.hpp"

namespace latent {

struct GradientCheckResult {
    struct Entry {
        std::string name;  // "input" or a parameter name
        Index count = 0;
        double max_relative_error = 0;
        double max_absolute_error = 0;
        double max_gradient = 0;  // the largest |numeric| value: 0 means the check was vacuous
    };
    std::vector<Entry> entries;
    double max_relative_error = 0;
    double tolerance = 0;

    bool passed() const { return max_relative_error < tolerance; }
    std::string report() const {
        std::ostringstream out;
        for (const auto& entry : entries)
            out << entry.name << ": max relative error " << entry.max_relative_error
                << " (max absolute " << entry.max_absolute_error << ", largest gradient " << entry.max_gradient << ", "
                << entry.count << " values)\n";
        return out.str();
    }
};

namespace detail {

// Relative error statistics of `analytic` against `numeric`, appended to `result`.
inline void add_gradient_entry(GradientCheckResult& result, const std::string& name,
                               const std::vector<double>& analytic,
                               const std::vector<double>& numeric) {
    double scale = 0;
    for (double value : numeric) scale = std::max(scale, std::abs(value));
    const double floor = 1e-6 * (1.0 + scale);
    GradientCheckResult::Entry entry{name, static_cast<Index>(numeric.size()), 0, 0, scale};
    for (std::size_t i = 0; i < numeric.size(); ++i) {
        const double error = std::abs(analytic[i] - numeric[i]);
        const double denominator = std::max({std::abs(analytic[i]), std::abs(numeric[i]), floor});
        entry.max_absolute_error = std::max(entry.max_absolute_error, error);
        entry.max_relative_error = std::max(entry.max_relative_error, error / denominator);
        if (!std::isfinite(error)) entry.max_relative_error = INFINITY;
    }
    result.max_relative_error = std::max(result.max_relative_error, entry.max_relative_error);
    result.entries.push_back(entry);
}

// Copies of the layer's buffers, and their restoration.
template <class T> std::vector<std::vector<T>> copy_buffers(Layer<T>& layer) {
    std::vector<std::vector<T>> copies;
    for (const auto& buffer : layer.buffers()) copies.emplace_back(buffer.value, buffer.value + buffer.size);
    return copies;
}
template <class T> void restore_buffers(Layer<T>& layer, const std::vector<std::vector<T>>& copies) {
    const std::vector<Buffer<T>> buffers = layer.buffers();
    for (std::size_t b = 0; b < buffers.size(); ++b) std::copy(copies[b].begin(), copies[b].end(), buffers[b].value);
}

}  // namespace detail

struct GradientCheckOptions {
    double eps = 1e-5;         // the finite-difference step
    double tolerance = 1e-6;   // on the relative error
    std::uint64_t seed = 0;    // of r, and of the weights of an unbuilt layer
    Pass pass = {};            // given to every forward and backward (mode, noise, batch size)
    bool term_only = false;    // r = 0: check the gradient of the layer's term alone
};

// Checks the input gradient and every parameter gradient of `layer` at `input`. An unbuilt layer
// is built for the input's shape with a generator seeded by options.seed. Works for float too,
// but only double gives errors near 1e-8; use double to validate a layer.
template <class T>
GradientCheckResult check_gradients(Layer<T>& layer, const Tensor<T>& input, const GradientCheckOptions& options) {
    Rng rng(options.seed);
    if (!layer.is_built()) layer.build(sample_shape(input), rng);
    const std::vector<std::vector<T>> saved_buffers = detail::copy_buffers(layer);
    const Pass& pass = options.pass;
    const double eps = options.eps;
    const Index batch = input.dimension(0);
    Tensor<T> x = input;
    Tensor<T> y = make_tensor<T>(batch, layer.output_shape());
    Tensor<T> y_plus = y, y_minus = y;
    Tensor<T> dy = y;
    for (Index j = 0; j < dy.size(); ++j)
        dy.data()[j] = options.term_only ? T(0) : static_cast<T>(rng.uniform(-1.0, 1.0));
    Tensor<T> dx = make_tensor<T>(batch, layer.input_shape());

    layer.zero_grad();
    layer.forward(view(std::as_const(x)), view(y), pass);
    layer.backward(view(std::as_const(x)), view(std::as_const(y)), view(std::as_const(dy)), view(dx), pass);

    // The layer's term after a forward, or 0.
    auto term = [&]() { return pass.computes_terms() ? layer.term_value() : 0.0; };
    // (L(v + eps) - L(v - eps)) / (2 eps) for the value at `value`.
    auto numeric_derivative = [&](T* value) {
        const T saved = *value;
        *value = static_cast<T>(saved + eps);
        layer.forward(view(std::as_const(x)), view(y_plus), pass);
        double difference = term();
        *value = static_cast<T>(saved - eps);
        layer.forward(view(std::as_const(x)), view(y_minus), pass);
        difference -= term();
        *value = saved;
        for (Index j = 0; j < y.size(); ++j)
            difference += static_cast<double>(dy.data()[j]) *
                          (static_cast<double>(y_plus.data()[j]) - static_cast<double>(y_minus.data()[j]));
        return difference / (2 * eps);
    };

    GradientCheckResult result;
    result.tolerance = options.tolerance;
    std::vector<double> analytic(dx.data(), dx.data() + dx.size()), numeric;
    for (Index i = 0; i < x.size(); ++i) numeric.push_back(numeric_derivative(x.data() + i));
    detail::add_gradient_entry(result, "input", analytic, numeric);

    for (auto& parameter : layer.parameters()) {
        analytic.assign(parameter.grad, parameter.grad + parameter.size);
        numeric.clear();
        for (Index i = 0; i < parameter.size; ++i) numeric.push_back(numeric_derivative(parameter.value + i));
        detail::add_gradient_entry(result, parameter.name, analytic, numeric);
    }
    layer.forward(view(std::as_const(x)), view(y), pass);  // leave the caches of the unperturbed input
    detail::restore_buffers(layer, saved_buffers);
    return result;
}

// The check with the default options but for the step, tolerance and seed (an Inference pass).
template <class T>
GradientCheckResult check_gradients(Layer<T>& layer, const Tensor<T>& input, double eps = 1e-5,
                                    double tolerance = 1e-6, std::uint64_t seed = 0) {
    GradientCheckOptions options;
    options.eps = eps;
    options.tolerance = tolerance;
    options.seed = seed;
    return check_gradients(layer, input, options);
}

}  // namespace latent
