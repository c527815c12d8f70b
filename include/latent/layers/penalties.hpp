// Penalties on a code: identity layers, placed after the code layer, that add a named term to
// the objective (layer.hpp: term(), term_value(), scale_term()) and its gradient to dx.
//
// Rules:
// - A term is weight * (sum over the slice's samples) / pass.whole_batch(slice): the mean over
//   the batch, and the slices of a batch add up to the batch (ActivityL1).
// - A term of whole-batch statistics (KLSparsity's mean activations) cannot be split into
//   slices: such a layer says mixes_samples(), so fit() never slices its model, and a pass over
//   a slice of a batch that computes terms is refused with ArgumentError.
// - A pass that does not compute terms (Inference) neither computes the value nor adds the
//   gradient; term_value() keeps the value of the last pass that did.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "../core/scratch.hpp"
#include "../core/threading.hpp"
#include "layer.hpp"

namespace latent {
namespace detail {

// A term's name, configured weight and current scale (scale_term), and its value from the last
// forward that computed it.
struct WeightedTerm {
    std::string name;
    double weight = 0;  // as configured (and saved)
    double scale = 1;   // set by scale_term: the weight in use is weight * scale
    double value = 0;   // weighted, from the last forward that computed terms

    WeightedTerm(const char* layer, std::string term_name, const char* weight_name, double configured)
        : name(std::move(term_name)), weight(configured) {
        require(!name.empty(), layer, "the term's name must not be empty");
        require(std::isfinite(configured) && configured >= 0.0, layer,
                std::string(weight_name) + " must be finite and >= 0, got " + detail::readable_number(configured));
    }
    double in_use() const { return weight * scale; }
};

// Blocks of the units of a batch of `units`-value samples, for sums over the batch: each block
// sums its units over every sample in sample order, so no partial sums need merging.
inline Chunks unit_blocks(Index units) { return Chunks{units, std::max<Index>(64, (units + 7) / 8)}; }

// sums[j] = sum_n f(values[n, j]) over a (batch, units) row-major array, in double.
template <class T, class F>
void sum_over_batch(const T* values, Index batch, Index units, std::vector<double>& sums, F f) {
    sums.assign(static_cast<std::size_t>(units), 0.0);
    const Chunks blocks = unit_blocks(units);
    parallel_for(blocks.count(), batch * units, [&](Index block) {
        const Index first = blocks.begin(block), end = first + blocks.size(block);
        for (Index n = 0; n < batch; ++n)
            for (Index j = first; j < end; ++j)
                sums[static_cast<std::size_t>(j)] += f(static_cast<double>(values[n * units + j]));
    });
}

// dx = dy + add(i) for every value i, in parallel slices (dx may be dy's memory).
template <class T, class Add> void add_to_gradient(const T* dy, T* dx, Index size, Add add) {
    const Chunks slices{size, 32768};
    parallel_for(slices.count(), size, [&](Index slice) {
        const Index begin = slices.begin(slice), end = begin + slices.size(slice);
        for (Index i = begin; i < end; ++i) dx[i] = dy[i] + add(i);
    });
}

}  // namespace detail

// ActivityL1: the sparse autoencoder of Keras's activity_regularizer=l1(lambda), placed after
// the code. Term "sparsity" (by default) = lambda * sum_n sum_j |h_nj| / N, the mean over the
// batch of each sample's L1 norm.
//   forward:  y = h;   term = lambda / N * sum |h|
//   backward: dx = dy + lambda / N * sign(h)        (sign(0) = 0)
template <class T = float> class ActivityL1 {
public:
    using Scalar = T;
    static constexpr const char* type_name = "ActivityL1";
    bool in_place() const { return true; }               // element-wise; backward reads y (= h)
    bool backward_reads_output() const { return true; }  // sign(y)

    explicit ActivityL1(double lambda, std::string term = "sparsity")
        : term_(type_name, std::move(term), "lambda", lambda) {}

    Shape output_shape(const Shape& input) const { return input; }

    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) {
        const Index batch = x.dimension(0), features = x.size() / std::max<Index>(batch, 1);
        gradient_step_ = 0;
        if (pass.computes_terms()) {
            const double per_sample = term_.in_use() / static_cast<double>(pass.whole_batch(batch));
            term_.value = per_sample * sum_of_magnitudes(x.data(), batch, features);
            gradient_step_ = static_cast<T>(per_sample);
        }
        if (x.data() != y.data()) std::copy_n(x.data(), x.size(), y.data());
    }

    void backward(ConstTensorView<T>, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        const T step = gradient_step_;
        const T* h = y.data();
        detail::add_to_gradient(dy.data(), dx.data(), dy.size(),
                                [&](Index i) { return h[i] > T(0) ? step : (h[i] < T(0) ? -step : T(0)); });
    }

    std::string term() const { return term_.name; }
    double term_value() const { return term_.value; }
    void scale_term(double factor) { term_.scale = factor; }

    Config config() const { return Config().set("lambda", term_.weight).set("term", term_.name); }
    static ActivityL1 from_config(const Config& config) {
        return ActivityL1(config.get_double("lambda"), config.get_string("term"));
    }

    double lambda() const { return term_.weight; }

private:
    // sum |x| over the batch: per chunk of samples, the chunks' sums added in chunk order.
    double sum_of_magnitudes(const T* x, Index batch, Index features) {
        const Chunks chunks = batch_chunks(batch, features);
        partial_sums_.assign(static_cast<std::size_t>(chunks.count()), 0.0);
        parallel_for(chunks.count(), batch * features, [&](Index chunk) {
            const T* first = x + chunks.begin(chunk) * features;
            double sum = 0;
            for (Index i = 0; i < chunks.size(chunk) * features; ++i) sum += std::abs(static_cast<double>(first[i]));
            partial_sums_[static_cast<std::size_t>(chunk)] = sum;
        });
        double total = 0;
        for (double sum : partial_sums_) total += sum;
        return total;
    }

    detail::WeightedTerm term_;
    T gradient_step_ = 0;               // lambda / N of the last forward; 0 when it computed no term
    std::vector<double> partial_sums_;  // one per chunk; grows to the largest batch's count
};

// KLSparsity: Ng's sparse autoencoder, placed after a sigmoid code h in (0, 1). Term "sparsity"
// (by default) = beta * sum_j KL(rho || rho_hat_j), with rho_hat_j = sum_n h_nj / N the mean
// activation of unit j (each of the C*H*W values of a sample is a unit) over the whole batch:
//   KL(rho || q) = rho * log(rho / q) + (1 - rho) * log((1 - rho) / (1 - q))
//   forward:  y = h;   term = beta * sum_j KL(rho || rho_hat_j)
//   backward: dx[n, j] = dy[n, j] + beta / N * (-rho / rho_hat_j + (1 - rho) / (1 - rho_hat_j))
// rho_hat is clamped to [1e-6, 1 - 1e-6] in both the value and the gradient, so that a unit that
// is off (or on) for the whole batch gives a finite term and a gradient that pushes it back.
template <class T = float> class KLSparsity {
public:
    using Scalar = T;
    static constexpr const char* type_name = "KLSparsity";
    bool in_place() const { return true; }                // element-wise
    bool backward_reads_output() const { return false; }  // the per-unit gradient of forward
    bool mixes_samples() const { return true; }           // rho_hat is the whole batch's
    static constexpr double mean_floor = 1e-6;            // rho_hat in [mean_floor, 1 - mean_floor]

    KLSparsity(double rho, double beta, std::string term = "sparsity")
        : rho_(rho), term_(type_name, std::move(term), "beta", beta) {
        detail::require(std::isfinite(rho) && rho > 0.0 && rho < 1.0, type_name,
                        "rho (the target mean activation) must be in (0, 1), got " + detail::readable_number(rho));
    }

    Shape output_shape(const Shape& input) const { return input; }

    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) {
        const Index batch = x.dimension(0), units = x.size() / std::max<Index>(batch, 1);
        unit_gradient_.assign(static_cast<std::size_t>(units), T(0));  // (no allocation once sized)
        if (pass.computes_terms()) {
            if (pass.whole_batch(batch) != batch)  // (the message is built only on failure: no allocation)
                throw ArgumentError(std::string(type_name) +
                                    ": the mean activations need the whole batch in one pass, got a slice of " +
                                    std::to_string(batch) + " of " + std::to_string(pass.whole_batch(batch)) +
                                    " samples");
            detail::sum_over_batch(x.data(), batch, units, mean_activation_, [](double h) { return h; });
            term_.value = term_.in_use() * divergence(batch);
        }
        if (x.data() != y.data()) std::copy_n(x.data(), x.size(), y.data());
    }

    void backward(ConstTensorView<T>, ConstTensorView<T>, ConstTensorView<T> dy, TensorView<T> dx) {
        if (dx.data() == nullptr) return;
        const Index units = static_cast<Index>(unit_gradient_.size());
        detail::add_to_gradient(dy.data(), dx.data(), dy.size(),
                                [&](Index i) { return unit_gradient_[static_cast<std::size_t>(i % units)]; });
    }

    std::string term() const { return term_.name; }
    double term_value() const { return term_.value; }
    void scale_term(double factor) { term_.scale = factor; }

    Config config() const { return Config().set("rho", rho_).set("beta", term_.weight).set("term", term_.name); }
    static KLSparsity from_config(const Config& config) {
        return KLSparsity(config.get_double("rho"), config.get_double("beta"), config.get_string("term"));
    }

    double rho() const { return rho_; }
    double beta() const { return term_.weight; }
    // rho_hat_j of the last forward that computed the term (clamped), per unit.
    const std::vector<double>& mean_activation() const { return mean_activation_; }

private:
    // sum_j KL(rho || rho_hat_j), turning the sums of mean_activation_ into clamped means, and
    // the per-unit gradient of the term into unit_gradient_.
    double divergence(Index batch) {
        const double rho = rho_, per_sample = term_.in_use() / static_cast<double>(batch);
        double total = 0;
        for (std::size_t j = 0; j < mean_activation_.size(); ++j) {
            const double q = std::clamp(mean_activation_[j] / static_cast<double>(batch), mean_floor, 1.0 - mean_floor);
            mean_activation_[j] = q;
            total += rho * std::log(rho / q) + (1 - rho) * std::log((1 - rho) / (1 - q));
            unit_gradient_[j] = static_cast<T>(per_sample * (-rho / q + (1 - rho) / (1 - q)));
        }
        return total;
    }

    double rho_;
    detail::WeightedTerm term_;
    std::vector<double> mean_activation_;  // per unit
    std::vector<T> unit_gradient_;         // per unit: d(term)/d(h_nj), the same for every n; 0 without a term
};

}  // namespace latent
