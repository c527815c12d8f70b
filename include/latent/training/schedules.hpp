// Schedules: how the learning rate, or the weight of a term of the objective, changes from epoch
// to epoch. A Schedule is a factor as a function of the epoch; two callbacks apply one:
//   LearningRateSchedule(schedule)  lr = base lr * factor(epoch), base = the optimizer's learning
//                                   rate when training started (saved in checkpoints)
//   TermWeightSchedule(term, schedule)  the term's weight = its configured weight * factor(epoch)
// and ReduceLROnPlateau lowers the learning rate when the monitored loss stops improving.
// Each factor depends on the epoch alone, and every state is saved in checkpoints, so a resumed
// run follows the schedule exactly. Formulas follow PyTorch's torch.optim.lr_scheduler (stepped
// once per epoch), in closed form.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "../core/config.hpp"
#include "../core/errors.hpp"
#include "callbacks.hpp"

namespace latent {

struct Schedule {
    std::function<double(int epoch)> factor;
    std::string description;  // "step_decay(10, 0.5)", for messages
};

// factor = gamma ^ floor(epoch / step_size)                       (StepLR)
inline Schedule step_decay(int step_size, double gamma) {
    detail::require(step_size >= 1, "step_decay", "step_size must be >= 1");
    detail::require(gamma > 0 && std::isfinite(gamma), "step_decay", "gamma must be finite and > 0");
    return {[=](int epoch) { return std::pow(gamma, epoch / step_size); },
            "step_decay(" + std::to_string(step_size) + ", " + detail::readable_number(gamma) + ")"};
}

// factor = gamma ^ (number of milestones <= epoch)                 (MultiStepLR)
inline Schedule multi_step(std::vector<int> milestones, double gamma) {
    detail::require(std::is_sorted(milestones.begin(), milestones.end()), "multi_step", "milestones must be increasing");
    detail::require(gamma > 0 && std::isfinite(gamma), "multi_step", "gamma must be finite and > 0");
    return {[=](int epoch) {
                const auto passed = std::upper_bound(milestones.begin(), milestones.end(), epoch) - milestones.begin();
                return std::pow(gamma, static_cast<double>(passed));
            },
            "multi_step"};
}

// factor = gamma ^ epoch                                           (ExponentialLR)
inline Schedule exponential_decay(double gamma) {
    detail::require(gamma > 0 && std::isfinite(gamma), "exponential_decay", "gamma must be finite and > 0");
    return {[=](int epoch) { return std::pow(gamma, epoch); }, "exponential_decay(" + detail::readable_number(gamma) + ")"};
}

// factor = min + (1 - min) * (1 + cos(pi * epoch / epochs)) / 2, constant min after `epochs`
// (CosineAnnealingLR with eta_min = min * base)
inline Schedule cosine_decay(int epochs, double min_factor = 0.0) {
    detail::require(epochs >= 1, "cosine_decay", "epochs must be >= 1");
    detail::require(min_factor >= 0 && min_factor <= 1, "cosine_decay", "min_factor must be in [0, 1]");
    return {[=](int epoch) {
                const double progress = std::min(1.0, static_cast<double>(epoch) / epochs);
                return min_factor + (1 - min_factor) * (1 + std::cos(3.141592653589793238462643 * progress)) / 2;
            },
            "cosine_decay(" + std::to_string(epochs) + ")"};
}

// factor = start + (1 - start) * min(epoch / epochs, 1): from `start` up to 1 over `epochs`
// epochs (LinearLR with end_factor 1; with start 0, the KL warm-up of a VAE)
inline Schedule linear_warmup(int epochs, double start_factor = 0.0) {
    detail::require(epochs >= 1, "linear_warmup", "epochs must be >= 1");
    detail::require(start_factor >= 0 && start_factor <= 1, "linear_warmup", "start_factor must be in [0, 1]");
    return {[=](int epoch) {
                return start_factor + (1 - start_factor) * std::min(1.0, static_cast<double>(epoch) / epochs);
            },
            "linear_warmup(" + std::to_string(epochs) + ")"};
}

// `first` for its `epochs`, then `then` counted from 0 (a warm-up followed by a decay).
inline Schedule then_after(Schedule first, int epochs, Schedule then) {
    detail::require(epochs >= 0, "then_after", "epochs must be >= 0");
    return {[=](int epoch) { return epoch < epochs ? first.factor(epoch) : then.factor(epoch - epochs); },
            first.description + " then " + then.description};
}

// Sets the optimizer's learning rate to base * factor(epoch) before every epoch.
template <class T = float> class LearningRateSchedule {
public:
    static constexpr const char* type_name = "LearningRateSchedule";
    explicit LearningRateSchedule(Schedule schedule) : schedule_(std::move(schedule)) {}

    void on_epoch_begin(EpochBegin<T>& begin) {
        if (std::isnan(base_)) {
            detail::require(begin.epoch == begin.initial_epoch && begin.initial_epoch == 0, "LearningRateSchedule",
                            "resumed at epoch " + std::to_string(begin.initial_epoch + 1) +
                                " without its state: pass the checkpoint's TrainingProgress to "
                                "FitOptions::resume_from()");
            base_ = begin.learning_rate();
        }
        begin.set_learning_rate(base_ * schedule_.factor(begin.epoch));
    }
    Config state() const { return Config().set("base", base_); }
    void set_state(const Config& state) { base_ = state.get_double("base"); }

private:
    Schedule schedule_;
    double base_ = std::numeric_limits<double>::quiet_NaN();  // the learning rate at epoch 0
};

// Multiplies the configured weight of term `term` by factor(epoch) before every epoch.
template <class T = float> class TermWeightSchedule {
public:
    TermWeightSchedule(std::string term, Schedule schedule) : term_(std::move(term)), schedule_(std::move(schedule)) {}
    void on_epoch_begin(EpochBegin<T>& begin) { begin.scale_term(term_, schedule_.factor(begin.epoch)); }

private:
    std::string term_;
    Schedule schedule_;
};

// PyTorch's ReduceLROnPlateau (mode "min", relative threshold): when the monitored loss has not
// fallen below best * (1 - threshold) for more than `patience` epochs, lr = max(lr * factor,
// min_lr), then `cooldown` epochs without counting.
template <class T = float> class ReduceLROnPlateau {
public:
    static constexpr const char* type_name = "ReduceLROnPlateau";
    explicit ReduceLROnPlateau(double factor = 0.1, int patience = 10, double threshold = 1e-4, int cooldown = 0,
                               double min_lr = 0.0)
        : factor_(factor), patience_(patience), threshold_(threshold), cooldown_(cooldown), min_lr_(min_lr) {
        detail::require(factor > 0 && factor < 1, type_name, "factor must be in (0, 1)");
        detail::require(patience >= 0 && cooldown >= 0, type_name, "patience and cooldown must be >= 0");
        detail::require(threshold >= 0 && min_lr >= 0, type_name, "threshold and min_lr must be >= 0");
    }

    void on_epoch_end(EpochEnd<T>& end) {
        const double value = end.monitored();
        if (value < best_ * (1 - threshold_)) {
            best_ = value;
            bad_epochs_ = 0;
        } else {
            ++bad_epochs_;
        }
        if (cooling_ > 0) {
            --cooling_;
            bad_epochs_ = 0;
        }
        if (bad_epochs_ <= patience_) return;
        const double lr = end.learning_rate();
        const double lowered = std::max(lr * factor_, min_lr_);
        if (lr - lowered > 1e-8) end.set_learning_rate(lowered);  // PyTorch's eps
        cooling_ = cooldown_;
        bad_epochs_ = 0;
    }

    Config state() const { return Config().set("best", best_).set("bad_epochs", bad_epochs_).set("cooling", cooling_); }
    void set_state(const Config& state) {
        best_ = state.get_double("best");
        bad_epochs_ = static_cast<int>(state.get_int("bad_epochs"));
        cooling_ = static_cast<int>(state.get_int("cooling"));
    }

private:
    double factor_;
    int patience_;
    double threshold_;
    int cooldown_;
    double min_lr_;
    double best_ = std::numeric_limits<double>::infinity();
    int bad_epochs_ = 0;
    int cooling_ = 0;
};

}  // namespace latent
