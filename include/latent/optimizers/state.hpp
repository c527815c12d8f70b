// OptimizerState<T>: everything an optimizer learns while it runs (its step count and its
// per-parameter buffers), kept apart from its hyper-parameters (config()). Saving config() and
// state() and loading them into a fresh optimizer continues training bit-identically: no other
// member of an optimizer affects an update.
//
// Also what every optimizer shares: creating the state at the first step, checking that
// later steps get the same parameter list, and the update loop over fixed slices.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/threading.hpp"
#include "../layers/layer.hpp"

namespace latent {

template <class T> struct OptimizerState {
    std::int64_t step = 0;                   // updates taken so far
    std::vector<std::vector<T>> buffers;     // per-parameter buffers; each optimizer documents the order
};

namespace detail {

// Readies `state` for an update of `parameters` by an optimizer that keeps `buffers_per_parameter`
// buffers for each parameter (grouped by parameter: all buffers of parameter 0, then of
// parameter 1, ...). On the first step (state.step == 0, no buffers) the buffers are created as
// zeros -- the only allocation -- and the parameter sizes are recorded in `sizes`. Later steps
// must pass parameters of the same sizes in the same order, and the buffers (which may have
// been loaded) must fit them; ArgumentError otherwise, naming the parameter. `sizes` only serves
// this check: it never changes an update.
template <class T>
void prepare_state(const char* optimizer, const std::vector<Parameter<T>>& parameters,
                   OptimizerState<T>& state, std::size_t buffers_per_parameter,
                   std::vector<Index>& sizes) {
    // Messages are built only on failure: this runs at every step, which must not allocate.
    auto fail = [optimizer](const std::string& what) { throw ArgumentError(std::string(optimizer) + " step: " + what); };
    const char* same_list = " (pass the same parameter list at every step)";
    for (std::size_t i = 0; i < parameters.size(); ++i) {
        const Parameter<T>& parameter = parameters[i];
        if (parameter.size < 0 || (parameter.size > 0 && (parameter.value == nullptr || parameter.grad == nullptr)))
            fail("parameter " + std::to_string(i) + " ('" + parameter.name + "') has no value or gradient memory");
    }
    const bool first_step = state.step == 0 && state.buffers.empty();
    if (first_step || sizes.empty()) {
        sizes.clear();
        for (const auto& parameter : parameters) sizes.push_back(parameter.size);
    }
    if (first_step) {
        for (const auto& parameter : parameters)
            for (std::size_t b = 0; b < buffers_per_parameter; ++b)
                state.buffers.emplace_back(static_cast<std::size_t>(parameter.size), T(0));
        return;
    }
    if (parameters.size() != sizes.size())
        fail("got " + std::to_string(parameters.size()) + " parameters, but earlier steps had " +
             std::to_string(sizes.size()) + same_list);
    for (std::size_t i = 0; i < parameters.size(); ++i)
        if (parameters[i].size != sizes[i])
            fail("parameter " + std::to_string(i) + " ('" + parameters[i].name + "') has " +
                 std::to_string(parameters[i].size) + " values, but " + std::to_string(sizes[i]) +
                 " at earlier steps" + same_list);
    if (state.buffers.size() != buffers_per_parameter * parameters.size())
        fail("the state holds " + std::to_string(state.buffers.size()) + " buffers, expected " +
             std::to_string(buffers_per_parameter * parameters.size()) + " (" +
             std::to_string(buffers_per_parameter) + " per parameter for " + std::to_string(parameters.size()) +
             " parameters)");
    for (std::size_t i = 0; i < parameters.size(); ++i)
        for (std::size_t b = 0; b < buffers_per_parameter; ++b) {
            const std::size_t buffer = i * buffers_per_parameter + b;
            if (state.buffers[buffer].size() != static_cast<std::size_t>(parameters[i].size))
                fail("state buffer " + std::to_string(buffer) + " holds " +
                     std::to_string(state.buffers[buffer].size()) + " values, but parameter " + std::to_string(i) +
                     " ('" + parameters[i].name + "') has " + std::to_string(parameters[i].size) +
                     " (the state belongs to other parameters)");
        }
}

// Calls update(begin, end) over [0, size) in fixed slices, in parallel for large parameters.
// Updates are element-wise, so the result does not depend on the split or the thread count.
template <class Update> void for_each_slice(Index size, Update&& update) {
    const Chunks slices{size, 16384};
    parallel_for(slices.count(), size, [&](Index slice) {
        update(slices.begin(slice), slices.begin(slice) + slices.size(slice));
    });
}

// Hyper-parameter checks shared by the optimizers' constructors.
inline void require_learning_rate(const char* optimizer, double lr) {
    require(std::isfinite(lr) && lr >= 0, optimizer,
            "learning rate must be finite and >= 0, got " + readable_number(lr));
}
inline void require_in_range(const char* optimizer, const char* name, double value, double low,
                             double high, bool high_included) {
    const bool fits = value >= low && (high_included ? value <= high : value < high);
    require(fits, optimizer, std::string(name) + " must be in [" + readable_number(low) + ", " +
                                 readable_number(high) + (high_included ? "]" : ")") + ", got " +
                                 readable_number(value));
}
inline void require_non_negative(const char* optimizer, const char* name, double value) {
    require(std::isfinite(value) && value >= 0, optimizer,
            std::string(name) + " must be finite and >= 0, got " + readable_number(value));
}

}  // namespace detail
}  // namespace latent
