// History: what fit() returns -- one entry per epoch run.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "../core/errors.hpp"

namespace latent {

struct History {
    std::vector<int> epoch;        // 0-based epoch numbers (continuing after a resume)
    std::vector<double> loss;      // mean training objective of the epoch (batches weighted by size)
    std::vector<double> val_loss;  // validation objective after the epoch, NaN without validation data
    std::vector<double> seconds;   // wall time of the epoch, validation included
    std::vector<double> learning_rate;  // the optimizer's learning rate in the epoch (NaN: it has none)
    // When the model's layers add terms to the objective: the objective's parts, "reconstruction"
    // first, then the terms in the model's order, and per part one value per epoch.
    std::vector<std::string> term_names;
    std::vector<std::vector<double>> terms, val_terms;
    bool stopped_early = false;    // a callback ended training before the last epoch
    // Epochs in which every gradient of every batch was exactly zero: the network no longer
    // learns (a dead network, usually from a learning rate far too high).
    std::vector<int> dead_gradient_epochs;
    std::vector<std::string> warnings;  // also printed on the progress stream

    std::size_t size() const { return loss.size(); }
    bool has_validation() const { return !val_loss.empty() && !std::isnan(val_loss.back()); }
    // The training values of part `name`, one per epoch; ArgumentError naming the parts otherwise.
    const std::vector<double>& term(const std::string& name) const { return find(name, terms); }
    const std::vector<double>& val_term(const std::string& name) const { return find(name, val_terms); }

private:
    const std::vector<double>& find(const std::string& name, const std::vector<std::vector<double>>& values) const {
        for (std::size_t t = 0; t < term_names.size(); ++t)
            if (term_names[t] == name) return values[t];
        std::string known;
        for (const auto& part : term_names) known += (known.empty() ? "" : ", ") + part;
        throw ArgumentError("History: no term '" + name + "'" +
                            (known.empty() ? " (the model adds no terms)" : " (terms: " + known + ")"));
    }
};

}  // namespace latent
