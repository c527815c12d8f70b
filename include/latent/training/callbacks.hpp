// Callbacks run after every epoch of fit(). A callback is any callable taking EpochEnd<T>&; it
// reads the history, may copy or restore the weights, save a checkpoint, or stop training.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "history.hpp"

namespace latent {

// The history as CSV: "epoch,loss,val_loss,seconds" (val_loss empty without validation data).
inline void write_history_csv(const std::string& path, const History& history) {
    write_file_atomically(path, [&](std::ostream& out) {
        out << "epoch,loss,val_loss,seconds\n";
        char line[160];
        for (std::size_t i = 0; i < history.size(); ++i) {
            if (std::isnan(history.val_loss[i]))
                std::snprintf(line, sizeof line, "%d,%.9g,,%.3f\n", history.epoch[i] + 1, history.loss[i],
                              history.seconds[i]);
            else
                std::snprintf(line, sizeof line, "%d,%.9g,%.9g,%.3f\n", history.epoch[i] + 1,
                              history.loss[i], history.val_loss[i], history.seconds[i]);
            out << line;
        }
    });
}

template <class T> struct EpochEnd {
    int epoch = 0;                 // the epoch that just ended (0-based)
    const History* history = nullptr;
    bool stop = false;             // set to true to end training after this epoch
    // The model's weights, copied out / written back (in parameter order).
    std::function<std::vector<std::vector<T>>()> get_weights;
    std::function<void(const std::vector<std::vector<T>>&)> set_weights;
    // Saves model, optimizer state and epoch count to a file (atomically).
    std::function<void(const std::string& path)> save_checkpoint;

    // The figure callbacks watch: val_loss when there is validation data, else loss.
    double monitored() const {
        return history->has_validation() ? history->val_loss.back() : history->loss.back();
    }
};

template <class T> using Callback = std::function<void(EpochEnd<T>&)>;

// Stops when the monitored loss has not improved by more than `min_delta` for `patience`
// epochs; with restore_best the weights of the best epoch are put back when it stops.
template <class T = float> class EarlyStopping {
public:
    explicit EarlyStopping(int patience = 5, double min_delta = 0.0, bool restore_best = true)
        : patience_(patience), min_delta_(min_delta), restore_best_(restore_best) {
        detail::require(patience >= 0, "EarlyStopping", "patience must be >= 0");
        detail::require(min_delta >= 0, "EarlyStopping", "min_delta must be >= 0");
    }

    void operator()(EpochEnd<T>& end) {
        const double value = end.monitored();
        if (value < best_ - min_delta_) {
            best_ = value;
            best_epoch_ = end.epoch;
            waited_ = 0;
            if (restore_best_) best_weights_ = end.get_weights();
            return;
        }
        if (++waited_ <= patience_) return;
        end.stop = true;
        if (restore_best_ && !best_weights_.empty()) end.set_weights(best_weights_);
    }

    int best_epoch() const { return best_epoch_; }
    double best() const { return best_; }

private:
    int patience_;
    double min_delta_;
    bool restore_best_;
    double best_ = std::numeric_limits<double>::infinity();
    int best_epoch_ = -1;
    int waited_ = 0;
    std::vector<std::vector<T>> best_weights_;
};

// Saves a resumable checkpoint (model, optimizer state, epoch) every `every` epochs.
template <class T = float> class Checkpoint {
public:
    explicit Checkpoint(std::string path, int every = 1) : path_(std::move(path)), every_(every) {
        detail::require(every >= 1, "Checkpoint", "every must be >= 1");
    }
    void operator()(EpochEnd<T>& end) const {
        if ((end.epoch + 1) % every_ == 0) end.save_checkpoint(path_);
    }

private:
    std::string path_;
    int every_;
};

// Writes epoch,loss,val_loss,seconds to a CSV file, rewritten atomically after every epoch.
template <class T = float> class CsvLogger {
public:
    explicit CsvLogger(std::string path) : path_(std::move(path)) {}
    void operator()(EpochEnd<T>& end) const { write_history_csv(path_, *end.history); }

private:
    std::string path_;
};

}  // namespace latent
