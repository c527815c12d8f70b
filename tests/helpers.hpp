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
