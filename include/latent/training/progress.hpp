// Training progress on stderr. On a terminal: one line per epoch redrawn in place (at most ten
// times a second) with the batch count, images/s, running loss and ETA. Otherwise (a log file, a
// pipe, CI): one plain line per finished epoch, so logs stay readable.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace latent {

class ProgressBar {
public:
    using Clock = std::chrono::steady_clock;

    // Writes to stderr; `out` and `terminal` let tests look at what it prints.
    ProgressBar(int verbose, int epochs, std::FILE* out = stderr)
        : ProgressBar(verbose, epochs, out, out == stderr && stderr_is_terminal()) {}
    ProgressBar(int verbose, int epochs, std::FILE* out, bool terminal)
        : verbose_(verbose), epochs_(epochs), out_(out), terminal_(terminal) {}

    void start_epoch(int epoch, long long batches) {
        epoch_ = epoch;
        batches_ = batches;
        start_ = last_draw_ = Clock::now();
    }

    void update(long long batch_done, long long images_done, double running_loss) {
        if (verbose_ <= 0 || !terminal_) return;
        const auto now = Clock::now();
        if (batch_done < batches_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
        last_draw_ = now;
        const double elapsed = seconds_since(start_, now);
        const double rate = elapsed > 0 ? images_done / elapsed : 0.0;
        const double eta = batch_done > 0 ? elapsed * (batches_ - batch_done) / batch_done : 0.0;
        const int width = 24;
        const int filled = batches_ > 0 ? static_cast<int>(width * batch_done / batches_) : width;
        std::string bar(static_cast<std::size_t>(filled), '=');
        if (filled < width) bar += '>' + std::string(static_cast<std::size_t>(width - filled - 1), ' ');
        std::fprintf(out_, "\repoch %d/%d [%s] %lld/%lld  %.0f img/s  loss %.5f  ETA %.0fs   ",
                     epoch_ + 1, epochs_, bar.c_str(), batch_done, batches_, rate, running_loss, eta);
        std::fflush(out_);
    }

    // The epoch's line; with `names`, each part of the objective beside the total:
    // "loss 0.101 (reconstruction 0.100, sparsity 0.001)".
    void end_epoch(long long images, double loss, double val_loss, double seconds,
                   const std::vector<std::string>& names = {}, const std::vector<double>& parts = {},
                   const std::vector<double>& val_parts = {}) {
        if (verbose_ <= 0) return;
        if (terminal_) std::fprintf(out_, "\r\033[K");
        std::fprintf(out_, "epoch %d/%d  loss %.6f", epoch_ + 1, epochs_, loss);
        print_parts(names, parts);
        if (!std::isnan(val_loss)) {
            std::fprintf(out_, "  val_loss %.6f", val_loss);
            print_parts(names, val_parts);
        }
        std::fprintf(out_, "  %.1fs  %.0f img/s\n", seconds, seconds > 0 ? images / seconds : 0.0);
        std::fflush(out_);
    }

    // A line of its own, "warning: <text>", whatever the verbosity but 0.
    void warning(const std::string& text) {
        if (verbose_ <= 0) return;
        if (terminal_) std::fprintf(out_, "\r\033[K");
        std::fprintf(out_, "warning: %s\n", text.c_str());
        std::fflush(out_);
    }

private:
    void print_parts(const std::vector<std::string>& names, const std::vector<double>& values) {
        if (names.empty() || values.size() != names.size()) return;
        for (std::size_t i = 0; i < names.size(); ++i)
            std::fprintf(out_, "%s%s %.6f%s", i == 0 ? " (" : ", ", names[i].c_str(), values[i],
                         i + 1 == names.size() ? ")" : "");
    }

    static bool stderr_is_terminal() {
#if defined(__unix__) || defined(__APPLE__)
        return ::isatty(2) != 0;
#else
        return false;
#endif
    }
    static double seconds_since(Clock::time_point from, Clock::time_point to) {
        return std::chrono::duration<double>(to - from).count();
    }

    int verbose_;
    int epochs_;
    std::FILE* out_;
    bool terminal_;
    int epoch_ = 0;
    long long batches_ = 0;
    Clock::time_point start_, last_draw_;
};

}  // namespace latent
