// Callbacks: what runs around fit()'s epochs. A callback is any object with one or more of
//   void on_epoch_begin(EpochBegin<T>& begin);   // before the epoch's first batch (schedules)
//   void on_epoch_end(EpochEnd<T>& end);         // after validation: read the history, copy or
//                                                // restore weights, checkpoint, stop
//   static constexpr const char* type_name;      // with state(): the name its state is saved under
//   Config state() const;  void set_state(const Config&);   // saved in checkpoints, so that a
//                                                // resumed run goes on exactly (schedules)
// or any callable taking EpochEnd<T>& (called at the end of every epoch). Callback<T> holds one;
// std::ref(callback) holds a reference, so the caller can read the callback after fit().
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/config.hpp"
#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../core/meta.hpp"
#include "history.hpp"

namespace latent {

// What a callback may see and change before an epoch.
template <class T> struct EpochBegin {
    int epoch = 0;                 // the epoch about to run (0-based)
    int initial_epoch = 0;         // the first epoch of this fit() call (> 0 when resuming)
    const History* history = nullptr;
    std::function<double()> learning_rate;            // the optimizer's
    std::function<void(double)> set_learning_rate;
    std::function<void(const std::string& term, double factor)> scale_term;  // Sequential::scale_term
};

// What a callback may see and do after an epoch.
template <class T> struct EpochEnd {
    int epoch = 0;                 // the epoch that just ended (0-based)
    const History* history = nullptr;
    bool stop = false;             // set to true to end training after this epoch
    // The model's weights and buffers, copied out / written back (in parameter order).
    std::function<std::vector<std::vector<T>>()> get_weights;
    std::function<void(const std::vector<std::vector<T>>&)> set_weights;
    std::function<double()> learning_rate;
    std::function<void(double)> set_learning_rate;
    // Saves model, optimizer state, epoch count and the callbacks' states to a file (atomically);
    // in a run over several processes, only on the first (elsewhere it does nothing).
    std::function<void(const std::string& path)> save_checkpoint;
    // Whether this process writes files: false on all but the first of a run over several
    // processes (FitOptions::communicator), which all hold the same weights and history.
    bool writer = true;

    // The figure callbacks watch: val_loss when there is validation data, else loss.
    double monitored() const {
        return history->has_validation() ? history->val_loss.back() : history->loss.back();
    }
};

namespace detail {

template <class C, class T> using on_epoch_begin_op = decltype(std::declval<C&>().on_epoch_begin(std::declval<EpochBegin<T>&>()));
template <class C, class T> using on_epoch_end_op = decltype(std::declval<C&>().on_epoch_end(std::declval<EpochEnd<T>&>()));
template <class C> using state_op = decltype(Config{std::declval<const C&>().state()});

template <class C> C& unwrap(C& callback) { return callback; }
template <class C> C& unwrap(std::reference_wrapper<C>& callback) { return callback.get(); }
template <class C> const C& unwrap(const C& callback) { return callback; }
template <class C> const C& unwrap(const std::reference_wrapper<C>& callback) { return callback.get(); }

}  // namespace detail

template <class T> class Callback {
public:
    template <class C, class = std::enable_if_t<!std::is_same_v<std::decay_t<C>, Callback>>>
    Callback(C callback) : self_(std::make_shared<Holder<C>>(std::move(callback))) {}  // NOLINT: implicit by design

    void on_epoch_begin(EpochBegin<T>& begin) { self_->on_epoch_begin(begin); }
    void on_epoch_end(EpochEnd<T>& end) { self_->on_epoch_end(end); }
    // Whether it has a state to save; its name in files; the state.
    bool has_state() const { return self_->has_state(); }
    std::string type() const { return self_->type(); }
    Config state() const { return self_->state(); }
    void set_state(const Config& state) { self_->set_state(state); }

private:
    struct Interface {
        virtual ~Interface() = default;
        virtual void on_epoch_begin(EpochBegin<T>& begin) = 0;
        virtual void on_epoch_end(EpochEnd<T>& end) = 0;
        virtual bool has_state() const = 0;
        virtual std::string type() const = 0;
        virtual Config state() const = 0;
        virtual void set_state(const Config& state) = 0;
    };

    template <class C> struct Holder final : Interface {
        using Held = std::decay_t<decltype(detail::unwrap(std::declval<C&>()))>;
        explicit Holder(C held) : callback(std::move(held)) {}
        void on_epoch_begin(EpochBegin<T>& begin) override {
            if constexpr (detail::is_detected<detail::on_epoch_begin_op, Held, T>) detail::unwrap(callback).on_epoch_begin(begin);
            else (void)begin;
        }
        void on_epoch_end(EpochEnd<T>& end) override {
            if constexpr (detail::is_detected<detail::on_epoch_end_op, Held, T>) detail::unwrap(callback).on_epoch_end(end);
            else if constexpr (std::is_invocable_v<Held&, EpochEnd<T>&>) detail::unwrap(callback)(end);
            else (void)end;
        }
        bool has_state() const override { return detail::is_detected<detail::state_op, Held>; }
        std::string type() const override {
            if constexpr (detail::is_detected<detail::state_op, Held>) return Held::type_name;
            else return "callback";
        }
        Config state() const override {
            if constexpr (detail::is_detected<detail::state_op, Held>) return detail::unwrap(callback).state();
            else return Config{};
        }
        void set_state(const Config& state) override {
            if constexpr (detail::is_detected<detail::state_op, Held>) detail::unwrap(callback).set_state(state);
            else (void)state;
        }
        C callback;
    };

    std::shared_ptr<Interface> self_;  // copies of a FitOptions share their callbacks' state
};

// The history as CSV: epoch, loss, the objective's parts, val_loss, their validation values,
// learning_rate, seconds (validation columns empty without validation data).
inline void write_history_csv(const std::string& path, const History& history) {
    auto number = [](double value) -> std::string {
        if (std::isnan(value)) return "";
        char text[32];
        std::snprintf(text, sizeof text, "%.9g", value);
        return text;
    };
    write_file_atomically(path, [&](std::ostream& out) {
        out << "epoch,loss";
        for (const auto& name : history.term_names) out << "," << name;
        out << ",val_loss";
        for (const auto& name : history.term_names) out << ",val_" << name;
        out << ",learning_rate,seconds\n";
        for (std::size_t i = 0; i < history.size(); ++i) {
            out << history.epoch[i] + 1 << "," << number(history.loss[i]);
            for (const auto& values : history.terms) out << "," << number(values[i]);
            out << "," << number(history.val_loss[i]);
            for (const auto& values : history.val_terms) out << "," << number(values[i]);
            char seconds[32];
            std::snprintf(seconds, sizeof seconds, "%.3f", history.seconds[i]);
            out << "," << number(history.learning_rate[i]) << "," << seconds << "\n";
        }
    });
}

// Stops when the monitored loss has not improved by more than `min_delta` for `patience`
// epochs; with restore_best the weights of the best epoch are put back when it stops. Its
// counters are saved in checkpoints (the best weights are not: after a resume it restores the
// best weights seen since).
template <class T = float> class EarlyStopping {
public:
    static constexpr const char* type_name = "EarlyStopping";

    explicit EarlyStopping(int patience = 5, double min_delta = 0.0, bool restore_best = true)
        : patience_(patience), min_delta_(min_delta), restore_best_(restore_best) {
        detail::require(patience >= 0, "EarlyStopping", "patience must be >= 0");
        detail::require(min_delta >= 0, "EarlyStopping", "min_delta must be >= 0");
    }

    void on_epoch_end(EpochEnd<T>& end) {
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

    Config state() const { return Config().set("best", best_).set("best_epoch", best_epoch_).set("waited", waited_); }
    void set_state(const Config& state) {
        best_ = state.get_double("best");
        best_epoch_ = static_cast<int>(state.get_int("best_epoch"));
        waited_ = static_cast<int>(state.get_int("waited"));
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

// Saves a resumable checkpoint (model, optimizer state, epoch, callback states) every `every` epochs.
template <class T = float> class Checkpoint {
public:
    explicit Checkpoint(std::string path, int every = 1) : path_(std::move(path)), every_(every) {
        detail::require(every >= 1, "Checkpoint", "every must be >= 1");
    }
    void on_epoch_end(EpochEnd<T>& end) const {
        if ((end.epoch + 1) % every_ == 0) end.save_checkpoint(path_);
    }

private:
    std::string path_;
    int every_;
};

// Writes the history (write_history_csv) to a CSV file, rewritten atomically after every epoch.
template <class T = float> class CsvLogger {
public:
    explicit CsvLogger(std::string path) : path_(std::move(path)) {}
    void on_epoch_end(EpochEnd<T>& end) const {
        if (end.writer) write_history_csv(path_, *end.history);
    }

private:
    std::string path_;
};

}  // namespace latent
