// ContractiveDense: the encoder layer of a contractive autoencoder (Rifai et al. 2011), a Dense
// layer followed by a sigmoid, h = sigmoid(W x + b), that adds the squared Frobenius norm of its
// Jacobian dh/dx to the objective. For a sigmoid, dh_j/dx_i = h_j (1 - h_j) W_ji, so
//   term "contractive" = lambda / N * sum_n ||dh_n/dx_n||_F^2
//                      = lambda / N * sum_n sum_j (h_nj (1 - h_nj))^2 * sum_i W_ji^2
// over the slice's samples, N the whole batch (so slices add up to the batch). The Dense layer
// inside does the matrix products; weight() gives the first-layer features to draw.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "../core/scratch.hpp"
#include "../core/threading.hpp"
#include "activations.hpp"
#include "dense.hpp"
#include "layer.hpp"
#include "penalties.hpp"

namespace latent {

template <class T = float> class ContractiveDense {
public:
    using Scalar = T;
    static constexpr const char* type_name = "ContractiveDense";
    bool backward_reads_output() const { return true; }  // h; and x, for the weight gradient
    void lend_workspace(Workspace<T>* workspace) { dense_.lend_workspace(workspace); }

    ContractiveDense(Index units, double lambda, Init init = Init::GlorotUniform, std::string term = "contractive")
        : dense_(checked_units(units), init), term_(type_name, std::move(term), "lambda", lambda) {}

    Shape output_shape(const Shape& input) const { return dense_.output_shape(input); }
    void build(const Shape& input, Rng& rng) { dense_.build(input, rng); }

    // forward: z = W x + b (Dense);  h = sigmoid(z)
    //          term = c * sum_j (sum_n s_nj^2) * w_j,  s = h (1 - h),  w_j = sum_i W_ji^2,  c = lambda / N
    void forward(ConstTensorView<T> x, TensorView<T> y, const Pass& pass) {
        dense_.forward(x, y);
        detail::logistic_elements(y.data(), y.data(), y.size());
        const Index batch = x.dimension(0);
        coefficient_ = 0;
        if (!pass.computes_terms()) return;
        coefficient_ = term_.in_use() / static_cast<double>(pass.whole_batch(batch));
        squared_row_norms();
        detail::sum_over_batch(y.data(), batch, units(), slope_squares_, [](double h) {
            const double slope = h * (1 - h);
            return slope * slope;
        });
        double total = 0;
        for (Index j = 0; j < units(); ++j)
            total += slope_squares_[static_cast<std::size_t>(j)] * row_norms_[static_cast<std::size_t>(j)];
        term_.value = coefficient_ * total;
    }

    // backward: dz_nj = s_nj * (dy_nj + 2 c w_j s_nj (1 - 2 h_nj))     (d term / dh_nj = 2 c w_j s_nj ds/dh)
    //           dW, db, dx from dz (Dense);  dW_ji += 2 c (sum_n s_nj^2) W_ji   (the term through w_j)
    void backward(ConstTensorView<T> x, ConstTensorView<T> y, ConstTensorView<T> dy, TensorView<T> dx) {
        const Index batch = x.dimension(0), count = units();
        detail::grow(grad_logits_, y.size());
        const Chunks rows = batch_chunks(batch, count);
        parallel_for(rows.count(), y.size(), [&](Index chunk) {
            for (Index n = rows.begin(chunk); n < rows.begin(chunk) + rows.size(chunk); ++n)
                for (Index j = 0; j < count; ++j) {
                    const Index i = n * count + j;
                    const double h = static_cast<double>(y.data()[i]), slope = h * (1 - h);
                    const double from_term =
                        coefficient_ == 0
                            ? 0.0
                            : 2 * coefficient_ * row_norms_[static_cast<std::size_t>(j)] * slope * (1 - 2 * h);
                    grad_logits_[static_cast<std::size_t>(i)] =
                        static_cast<T>(slope * (static_cast<double>(dy.data()[i]) + from_term));
                }
        });
        dense_.backward(x, y, view<T>(static_cast<const T*>(grad_logits_.data()), batch, Shape{count, 1, 1}), dx);
        if (coefficient_ != 0) add_term_weight_gradient();
    }

    std::vector<Parameter<T>> parameters() { return dense_.parameters(); }
    Index parameter_values(const Shape& input) const { return dense_.parameter_values(input); }

    std::string term() const { return term_.name; }
    double term_value() const { return term_.value; }
    void scale_term(double factor) { term_.scale = factor; }

    Config config() const {
        return Config()
            .set("units", units())
            .set("lambda", term_.weight)
            .set("init", init_name(init()))
            .set("term", term_.name);
    }
    static ContractiveDense from_config(const Config& config) {
        return ContractiveDense(config.get_int("units"), config.get_double("lambda"),
                                init_from_name(config.get_string("init")), config.get_string("term"));
    }

    Index units() const { return dense_.units(); }
    double lambda() const { return term_.weight; }
    Matrix<T>& weight() { return dense_.weight(); }  // (units, inputs): row j is unit j's feature
    const Matrix<T>& weight() const { return dense_.weight(); }
    Vector<T>& bias() { return dense_.bias(); }
    const Vector<T>& bias() const { return dense_.bias(); }
    const Matrix<T>& grad_weight() const { return dense_.grad_weight(); }
    const Vector<T>& grad_bias() const { return dense_.grad_bias(); }

private:
    static Index checked_units(Index units) {
        detail::require(units >= 1, type_name, "units must be >= 1, got " + std::to_string(units));
        return units;
    }
    Init init() const { return init_from_name(dense_.config().get_string("init")); }

    // row_norms_[j] = w_j = sum_i W_ji^2, in parallel blocks of units.
    void squared_row_norms() {
        const Matrix<T>& weight = dense_.weight();
        row_norms_.resize(static_cast<std::size_t>(units()));
        const Chunks blocks = detail::unit_blocks(units());
        parallel_for(blocks.count(), weight.size(), [&](Index block) {
            for (Index j = blocks.begin(block); j < blocks.begin(block) + blocks.size(block); ++j) {
                double sum = 0;
                for (Index i = 0; i < weight.cols(); ++i) sum += static_cast<double>(weight(j, i)) * weight(j, i);
                row_norms_[static_cast<std::size_t>(j)] = sum;
            }
        });
    }

    // dW_ji += 2 c (sum_n s_nj^2) W_ji. Dense exposes its gradient read-only; the Dense is ours.
    void add_term_weight_gradient() {
        const Matrix<T>& weight = dense_.weight();
        T* grad = const_cast<T*>(dense_.grad_weight().data());
        const Chunks blocks = detail::unit_blocks(units());
        parallel_for(blocks.count(), weight.size(), [&](Index block) {
            for (Index j = blocks.begin(block); j < blocks.begin(block) + blocks.size(block); ++j) {
                const T factor = static_cast<T>(2 * coefficient_ * slope_squares_[static_cast<std::size_t>(j)]);
                for (Index i = 0; i < weight.cols(); ++i) grad[j * weight.cols() + i] += factor * weight(j, i);
            }
        });
    }

    Dense<T> dense_;
    detail::WeightedTerm term_;
    double coefficient_ = 0;             // c = lambda / N of the last forward; 0 when it computed no term
    std::vector<double> row_norms_;      // w_j, per unit
    std::vector<double> slope_squares_;  // sum_n s_nj^2 over the last forward's slice, per unit
    std::vector<T> grad_logits_;         // dz; grows to the largest batch
};

}  // namespace latent
