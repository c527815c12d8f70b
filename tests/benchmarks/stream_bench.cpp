// stream_bench: how fast stream_image_folder decodes, and how much memory a streamed epoch takes.
//
//   stream_bench --dir D --count N generate    N generated 128x128 RGB images, as JPEG (quality
//                                              90) and PNG, in D/images-N/{jpeg,png} (once: a
//                                              complete folder is left as it is)
//   stream_bench --dir D --count N decode      images/s of one streamed epoch without training,
//                                              JPEG and PNG, 1 and 2 reading threads
//   stream_bench --dir D --count N epoch       one streamed training epoch of a small conv AE
//                                              (JPEG, 1 reading thread), and the peak RSS
//   stream_bench --dir D --count N w4-stream   one W4 epoch (workloads.hpp), streamed: 1 training
//                                              thread (--threads T: T) + 1 reading thread
//   stream_bench --dir D --count N w4-memory   one W4 epoch from load_image_folder's tensor, 1
//                                              thread or T (loading timed apart)
// Each mode prints one RESULT line. Peak RSS is the process's VmHWM (/proc/self/status): run each
// measurement in its own process, as these modes are.
#include <stb_image_write.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <latent/latent.hpp>

#include "workloads.hpp"

using namespace latent;
namespace fs = std::filesystem;

namespace {

constexpr int side = 128;
constexpr std::uint64_t seed = 42;

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The process's peak resident memory in MiB (VmHWM), or -1 where /proc is not there.
double peak_rss_mib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // the line is in kB
    return -1;
}

// Image n: a colour gradient, three soft discs and a little noise, so that both codecs see
// something like a photograph (smooth areas, edges, grain) rather than flat or random pixels.
std::vector<unsigned char> generated_image(int n) {
    Rng rng(derive_seed(seed, static_cast<std::uint64_t>(n)));
    double base[3], slope_x[3], slope_y[3];
    for (int c = 0; c < 3; ++c) {
        base[c] = rng.uniform(0.2, 0.8);
        slope_x[c] = rng.uniform(-0.003, 0.003);
        slope_y[c] = rng.uniform(-0.003, 0.003);
    }
    struct Disc { double y, x, radius, colour[3]; };
    std::vector<Disc> discs(3);
    for (auto& disc : discs) {
        disc.y = rng.uniform(0, side);
        disc.x = rng.uniform(0, side);
        disc.radius = rng.uniform(8, 40);
        for (double& value : disc.colour) value = rng.uniform(0, 1);
    }
    std::vector<unsigned char> pixels(side * side * 3);
    for (int y = 0; y < side; ++y)
        for (int x = 0; x < side; ++x)
            for (int c = 0; c < 3; ++c) {
                double value = base[c] + slope_x[c] * (x - side / 2) + slope_y[c] * (y - side / 2);
                for (const auto& disc : discs) {
                    const double distance = std::hypot(y - disc.y, x - disc.x);
                    const double inside = std::clamp((disc.radius - distance) / 2.0, 0.0, 1.0);  // soft edge
                    value += inside * (disc.colour[c] - value);
                }
                value += rng.normal(0, 0.02);
                pixels[(y * side + x) * 3 + c] = static_cast<unsigned char>(std::lround(255 * std::clamp(value, 0.0, 1.0)));
            }
    return pixels;
}

struct Folders {
    std::string jpeg, png;
};

Folders folders_for(const std::string& dir, int count) {
    const fs::path root = fs::path(dir) / ("images-" + std::to_string(count));
    return {(root / "jpeg").string(), (root / "png").string()};
}

// Writes the images of one format unless a previous run completed the folder (".complete",
// a hidden name that the image lister skips).
void generate(const std::string& folder, int count, bool jpeg) {
    const fs::path marker = fs::path(folder) / ".complete";
    if (fs::exists(marker)) return;
    fs::create_directories(folder);
    for (int n = 0; n < count; ++n) {
        const std::vector<unsigned char> pixels = generated_image(n);
        char name[32];
        std::snprintf(name, sizeof name, "%06d.%s", n, jpeg ? "jpg" : "png");
        const std::string path = (fs::path(folder) / name).string();
        const int ok = jpeg ? stbi_write_jpg(path.c_str(), side, side, 3, pixels.data(), 90)
                            : stbi_write_png(path.c_str(), side, side, 3, pixels.data(), side * 3);
        if (!ok) throw IoError("stream_bench: cannot write '" + path + "'");
    }
    std::ofstream(marker) << count << "\n";
}

std::uintmax_t folder_bytes(const std::string& folder) {
    std::uintmax_t bytes = 0;
    for (const auto& entry : fs::directory_iterator(folder))
        if (entry.is_regular_file()) bytes += entry.file_size();
    return bytes;
}

ImageFolderOptions rgb() {
    ImageFolderOptions options;
    options.channels = 3;
    return options;
}

StreamOptions stream_options(int threads, Index batch_size) {
    StreamOptions options;
    options.batch_size = batch_size;
    options.seed = seed;
    options.threads = threads;
    options.batches_ahead = 4;
    return options;
}

FitOptions<float> fit_options(Index batch_size) {
    FitOptions<float> options;
    options.epochs = 1;
    options.batch_size = batch_size;
    options.seed = seed;
    options.verbose = 0;
    return options;
}

// Images/s of reading one whole epoch from the stream, nothing else done with the batches.
double decode_rate(const std::string& folder, int threads) {
    const BatchStream<float> stream = stream_image_folder<float>(folder, rgb(), stream_options(threads, 32));
    const BatchSource<float> source = stream.source();
    Tensor<float> inputs, targets;
    Index images = 0;
    const auto start = std::chrono::steady_clock::now();
    for (Index b = 0; b < source.batches_per_epoch; ++b) {
        source.next(0, b, inputs, targets);
        images += inputs.dimension(0);
    }
    return static_cast<double>(images) / seconds_since(start);
}

// A small conv AE on 128x128x3: the epoch's time goes to reading, not to training.
Autoencoder<float> small_model() {
    Encoder<float> encoder{Conv2D<float>(8, 3, 2), ReLU<float>(), Conv2D<float>(16, 3, 2), ReLU<float>()};
    Decoder<float> decoder{ConvTranspose2D<float>(8, 3, 2), ReLU<float>(), ConvTranspose2D<float>(3, 3, 2),
                           Sigmoid<float>()};
    return Autoencoder<float>(std::move(encoder), std::move(decoder), Shape{3, side, side}, seed);
}

int run(const std::string& mode, const std::string& dir, int count, int training_threads) {
    const Folders folders = folders_for(dir, count);
    if (mode == "generate") {
        const auto start = std::chrono::steady_clock::now();
        generate(folders.jpeg, count, true);
        generate(folders.png, count, false);
        std::cout << "RESULT mode=generate count=" << count << " jpeg_mib=" << folder_bytes(folders.jpeg) / 1048576.0
                  << " png_mib=" << folder_bytes(folders.png) / 1048576.0 << " seconds=" << seconds_since(start) << "\n";
        return 0;
    }
    if (mode == "decode") {
        for (const auto& [format, folder] : {std::pair{"jpeg", folders.jpeg}, std::pair{"png", folders.png}})
            for (int threads : {1, 2})
                std::cout << "RESULT mode=decode count=" << count << " format=" << format << " threads=" << threads
                          << " images_per_s=" << decode_rate(folder, threads) << "\n";
        return 0;
    }
    if (mode == "epoch" || mode == "w4-stream" || mode == "w4-memory") {
        set_num_threads(mode == "epoch" ? 1 : training_threads);
        const bool w4 = mode != "epoch";
        const Index batch_size = w4 ? 16 : 32;
        auto model = w4 ? bench::color_128(seed) : small_model();
        Adam<float> adam;
        const Loss<float> loss = MeanSquaredError<float>();
        double load_seconds = 0;
        auto start = std::chrono::steady_clock::now();
        if (mode == "w4-memory") {
            const Tensor<float> images = load_image_folder<float>(folders.jpeg, rgb()).images;
            load_seconds = seconds_since(start);
            start = std::chrono::steady_clock::now();
            model.fit(images, images, loss, adam, fit_options(batch_size));
        } else {
            const BatchStream<float> stream = stream_image_folder<float>(folders.jpeg, rgb(), stream_options(1, batch_size));
            model.fit(stream.source(), loss, adam, fit_options(batch_size));
        }
        const double epoch_seconds = seconds_since(start);
        std::cout << "RESULT mode=" << mode << " count=" << count << " format=jpeg load_s=" << load_seconds
                  << " epoch_s=" << epoch_seconds << " images_per_s=" << count / epoch_seconds
                  << " peak_rss_mib=" << peak_rss_mib() << "\n";
        return 0;
    }
    std::cerr << "stream_bench: unknown mode '" << mode << "' (generate, decode, epoch, w4-stream, w4-memory)\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir, mode;
    int count = 2000, threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string argument = argv[i];
        if (argument == "--dir" && i + 1 < argc) dir = argv[++i];
        else if (argument == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
        else if (argument == "--count" && i + 1 < argc) count = std::stoi(argv[++i]);
        else mode = argument;
    }
    if (dir.empty() || mode.empty() || count < 1 || threads < 1) {
        std::cerr << "usage: stream_bench --dir DIR [--count N] [--threads T] generate|decode|epoch|w4-stream|w4-memory\n";
        return 2;
    }
    try {
        return run(mode, dir, count, threads);
    } catch (const std::exception& error) {
        std::cerr << "stream_bench: " << error.what() << "\n";
        return 1;
    }
}
