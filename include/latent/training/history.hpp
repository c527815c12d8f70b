// History: what fit() returns -- one entry per epoch run.
#pragma once

#include <cmath>
#include <vector>

namespace latent {

struct History {
    std::vector<int> epoch;        // 0-based epoch numbers (continuing after a resume)
    std::vector<double> loss;      // mean training loss of the epoch (batch losses weighted by size)
    std::vector<double> val_loss;  // validation loss after the epoch, NaN without validation data
    std::vector<double> seconds;   // wall time of the epoch, validation included
    bool stopped_early = false;    // a callback ended training before the last epoch

    std::size_t size() const { return loss.size(); }
    bool has_validation() const { return !val_loss.empty() && !std::isnan(val_loss.back()); }
};

}  // namespace latent
