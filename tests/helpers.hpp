// Small helpers shared by the tests.
#pragma once

#include <catch2/catch.hpp>
#include <latent/latent.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace test {

using latent::Index;
using latent::Shape;
using latent::Tensor;

// A tensor of uniform values in [low, high) from a fixed seed.
template <class T>
Tensor<T> random_tensor(Index batch, const Shape& shape, std::uint64_t seed, double low = -1.0,
                        double high = 1.0) {
    latent::Rng rng(seed);
    Tensor<T> tensor = latent::make_tensor<T>(batch, shape);
    for (Index i = 0; i < tensor.size(); ++i) tensor.data()[i] = static_cast<T>(rng.uniform(low, high));
    return tensor;
}

// Like random_tensor, but every value is at least `margin` away from zero: kinks (ReLU at 0)
// then stay outside the finite-difference step.
template <class T>
Tensor<T> random_tensor_away_from_zero(Index batch, const Shape& shape, std::uint64_t seed,
                                       double margin = 0.05) {
    Tensor<T> tensor = random_tensor<T>(batch, shape, seed);
    for (Index i = 0; i < tensor.size(); ++i) {
        T& value = tensor.data()[i];
        value = static_cast<T>(value >= 0 ? value + margin : value - margin);
    }
    return tensor;
}

template <class T> double max_abs_difference(const Tensor<T>& a, const Tensor<T>& b) {
    if (a.dimensions() != b.dimensions()) return INFINITY;
    double worst = 0;
    for (Index i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(static_cast<double>(a.data()[i]) - b.data()[i]));
    return worst;
}

// The folder of shared test data, or "" when it is absent (tests then SKIP with a message).
inline std::string shared_data_dir() {
#ifdef LATENT_SHARED_DATA_DIR
    return LATENT_SHARED_DATA_DIR;
#else
    return "";
#endif
}

}  // namespace test

#include <iostream>

namespace test {

// Marks the running test case as skipped for ctest (its SKIP_REGULAR_EXPRESSION is "SKIPPED:").
inline void skip(const std::string& why) { std::cout << "SKIPPED: " << why << std::endl; }

}  // namespace test

namespace test {

// Runs check_gradients in double, prints "GRADCHECK <label>: <max relative error>" (collected
// for the release notes) and fails the test case unless every gradient is within tolerance.
inline latent::GradientCheckResult expect_gradients(latent::Layer<double>& layer,
                                                    const Tensor<double>& input,
                                                    const std::string& label,
                                                    double eps = 1e-5, double tolerance = 1e-6) {
    const auto result = latent::check_gradients(layer, input, eps, tolerance);
    std::cout << "GRADCHECK " << label << ": max relative error " << result.max_relative_error
              << "\n";
    INFO(label << "\n" << result.report());
    CHECK(result.passed());
    return result;
}

}  // namespace test

namespace test {

// Runs `action`, which must throw an ErrorType whose message contains `part`.
template <class ErrorType, class Action> void expect_error(Action&& action, const std::string& part) {
    try {
        action();
    } catch (const ErrorType& error) {
        CHECK_THAT(std::string(error.what()), Catch::Contains(part));
        return;
    } catch (const std::exception& other) {
        FAIL("threw a different error: " << other.what());
    }
    FAIL("did not throw; expected an error containing: " << part);
}

}  // namespace test

namespace test {

// Parameter gradients after one backward call, and after two calls of the same batch (which must
// add up: gradients accumulate, so that slices of a batch or several batches can be summed).
template <class L> void check_gradients_accumulate(const L& layer_value, const Shape& input, Index batch = 5) {
    latent::Layer<double> layer = layer_value;
    latent::Rng rng(3);
    layer.build(input, rng);
    const Tensor<double> x = random_tensor<double>(batch, input, 2);
    Tensor<double> y, dx;
    layer.forward(x, y);
    const Tensor<double> dy = random_tensor<double>(batch, layer.output_shape(), 4);
    auto gradients = [&](int calls) {
        layer.zero_grad();
        for (int call = 0; call < calls; ++call) layer.backward(x, y, dy, dx);
        std::vector<double> values;
        for (const auto& parameter : layer.parameters()) values.insert(values.end(), parameter.grad, parameter.grad + parameter.size);
        return values;
    };
    const std::vector<double> once = gradients(1), twice = gradients(2);
    REQUIRE(once.size() == twice.size());
    double worst = 0, largest = 0;
    for (std::size_t i = 0; i < once.size(); ++i) {
        worst = std::max(worst, std::abs(twice[i] - 2 * once[i]));
        largest = std::max(largest, std::abs(once[i]));
    }
    CHECK(largest > 0.1);  // the gradients are not all zero: the comparison means something
    CHECK(worst <= 1e-12 * largest);
}


}  // namespace test

#include <filesystem>
#include <system_error>

#include <unistd.h>

namespace test {

// A fresh folder under the system's temporary folder, removed with everything in it at the end.
class TempFolder {
public:
    explicit TempFolder(const std::string& name)
        : path_(std::filesystem::temp_directory_path() / ("latent_" + name + "_" + std::to_string(::getpid()))) {
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    TempFolder(const TempFolder&) = delete;
    TempFolder& operator=(const TempFolder&) = delete;
    ~TempFolder() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    std::string operator/(const std::string& relative) const { return (path_ / relative).string(); }

private:
    std::filesystem::path path_;
};

}  // namespace test

#include <cstring>
#include <initializer_list>
#include <limits>
#include <vector>

namespace test {

// Equal bit patterns, with every NaN taken as equal to every other NaN.
inline bool same_float_bits(float a, float b) {
    return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b));
}

// Inputs for an elementwise float kernel: `values`, then 100,000 random bit patterns (negative,
// denormal, huge, NaN), then `specials`.
inline std::vector<float> with_any_bit_patterns(std::vector<float> values, std::uint64_t seed,
                                                std::initializer_list<float> specials) {
    latent::Rng rng(seed);
    for (int i = 0; i < 100000; ++i) {
        const auto bits = static_cast<std::uint32_t>(rng.next_u64() >> 32);
        float value;
        std::memcpy(&value, &bits, sizeof value);
        values.push_back(value);
    }
    values.insert(values.end(), specials);
    return values;
}

// An elementwise kernel `kernel(isa, in, out, count)` gives on every vector path this machine
// has the bits `portable` of its portable path over `x`, for every tail length, and writes
// nothing past the end.
template <class Kernel>
void check_vector_paths_match_portable(Kernel kernel, const std::vector<float>& x, const std::vector<float>& portable) {
    using latent::Isa;
    for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
        if (static_cast<int>(isa) > static_cast<int>(latent::detail::detected_isa())) continue;
        INFO("path " << latent::isa_name(isa));
        std::vector<float> vector_path(x.size());
        kernel(isa, x.data(), vector_path.data(), static_cast<Index>(x.size()));
        Index differ = 0;
        for (std::size_t i = 0; i < x.size(); ++i) differ += !same_float_bits(vector_path[i], portable[i]);
        CHECK(differ == 0);
        for (Index length = 0; length <= 40; ++length) {
            std::vector<float> tail(static_cast<std::size_t>(length) + 1, -7.0f);
            kernel(isa, x.data() + 3, tail.data(), length);
            for (Index i = 0; i < length; ++i)
                CHECK(same_float_bits(tail[static_cast<std::size_t>(i)], portable[static_cast<std::size_t>(i + 3)]));
            CHECK(tail.back() == -7.0f);
        }
    }
}

}  // namespace test
