// What the example programs share: command-line flags, data loading, the build line, the
// RESULT line and error handling. This is example code, built on latent's public API only.
//
// Exit status of every example: 0 on success, 2 for bad flags or unreadable data (one line on
// stderr: "<program>: error: ..."), 1 for any other failure (also one line on stderr).
#pragma once

#include <latent/latent.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <new>
#include <regex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace example {

using latent::Index;
using Images = latent::Tensor<float>;

// A flag the user got wrong: printed as one line, exit status 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Data that cannot be found or read: printed as one line, exit status 2.
class DataError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// Command line

// The flags every example takes. Each program sets its own defaults before parsing.
struct CommonOptions {
    std::string data;          // data folder
    bool data_given = false;   // --data was on the command line (else the default is searched)
    int epochs = 1;
    Index batch = 32;
    Index train_limit = 0;     // 0 = all training images
    Index test_limit = 0;      // 0 = all test images
    int threads = 0;           // 0 = latent's default (LATENT_NUM_THREADS or all cores)
    std::uint64_t seed = 1;
    std::string out;           // output folder
    bool quiet = false;
};

// Parses "--name value", "--name=value" and "--switch". Every value is checked strictly: a
// number must be all digits and in range, so "--epochs 5x" or "--batch -3" is a UsageError.
class CommandLine {
public:
    CommandLine(std::string program, std::string description)
        : program_(std::move(program)), description_(std::move(description)) {}

    // An integer flag with the allowed range [low, high].
    template <class Integer>
    CommandLine& integer(const std::string& name, Integer& target, Integer low, Integer high,
                         const std::string& help) {
        add(name, "N", help, std::to_string(target), [&target, name, low, high](const std::string& text) {
            target = parse_integer<Integer>(name, text, low, high);
        });
        return *this;
    }
    // `given`, when set, records that the flag was on the command line.
    CommandLine& text(const std::string& name, std::string& target, const std::string& value_name,
                      const std::string& help, bool* given = nullptr, bool show_default = true) {
        add(name, value_name, help, show_default ? target : "", [&target, name, given](const std::string& text) {
            if (text.empty()) throw UsageError("--" + name + " needs a non-empty value");
            target = text;
            if (given != nullptr) *given = true;
        });
        return *this;
    }
    // A flag taking one of `choices`.
    CommandLine& choice(const std::string& name, std::string& target, const std::vector<std::string>& choices,
                        const std::string& help) {
        std::string names;
        for (const auto& option : choices) names += (names.empty() ? "" : "|") + option;
        add(name, names, help, target, [&target, name, choices, names](const std::string& text) {
            if (std::find(choices.begin(), choices.end(), text) == choices.end())
                throw UsageError("--" + name + " must be one of " + names + ", got '" + text + "'");
            target = text;
        });
        return *this;
    }
    CommandLine& flag(const std::string& name, bool& target, const std::string& help) {
        add(name, "", help, "", [&target](const std::string&) { target = true; });
        return *this;
    }

    // Parses argv; false when --help was asked for (the help is printed on stdout).
    bool parse(int argc, char** argv) {
        for (int i = 1; i < argc; ++i) {
            std::string argument = argv[i];
            if (argument == "--help" || argument == "-h") {
                std::cout << help();
                return false;
            }
            if (argument.rfind("--", 0) != 0 || argument.size() == 2)
                throw UsageError("unexpected argument '" + argument + "' (flags start with --; see --help)");
            std::string name = argument.substr(2), value;
            const auto equals = name.find('=');
            const bool inline_value = equals != std::string::npos;
            if (inline_value) {
                value = name.substr(equals + 1);
                name = name.substr(0, equals);
            }
            const Flag* flag = find(name);
            if (flag == nullptr) throw UsageError("unknown flag '--" + name + "' (see --help)");
            if (flag->value_name.empty()) {
                if (inline_value) throw UsageError("--" + name + " takes no value");
            } else if (!inline_value) {
                if (i + 1 >= argc) throw UsageError("--" + name + " needs a value (" + flag->value_name + ")");
                value = argv[++i];
            }
            flag->set(value);
        }
        return true;
    }

    std::string help() const {
        std::string text = "Usage: " + program_ + " [flags]\n\n" + description_ + "\nFlags:\n";
        for (const auto& flag : flags_) {
            std::string left = "  --" + flag.name + (flag.value_name.empty() ? "" : " " + flag.value_name);
            if (left.size() < 26) left.resize(26, ' ');
            else left += "\n" + std::string(26, ' ');
            text += left + flag.help;
            if (!flag.default_text.empty()) text += " (default " + flag.default_text + ")";
            text += "\n";
        }
        text += "  --help                  show this help and exit\n\n"
                "Exit status: 0 success, 2 bad flags or unreadable data, 1 any other failure.\n";
        return text;
    }

private:
    struct Flag {
        std::string name, value_name, help, default_text;
        std::function<void(const std::string&)> set;
    };

    void add(const std::string& name, const std::string& value_name, const std::string& help,
             const std::string& default_text, std::function<void(const std::string&)> set) {
        flags_.push_back({name, value_name, help, default_text, std::move(set)});
    }
    const Flag* find(const std::string& name) const {
        for (const auto& flag : flags_)
            if (flag.name == name) return &flag;
        return nullptr;
    }

    template <class Integer>
    static Integer parse_integer(const std::string& name, const std::string& text, Integer low, Integer high) {
        Integer value{};
        const char* end = text.data() + text.size();
        const auto [stop, status] = std::from_chars(text.data(), end, value);
        if (status == std::errc::invalid_argument || stop != end)
            throw UsageError("--" + name + " needs a whole number, got '" + text + "'");
        if (status == std::errc::result_out_of_range || value < low || value > high)
            throw UsageError("--" + name + " must be between " + std::to_string(low) + " and " +
                             std::to_string(high) + ", got '" + text + "'");
        return value;
    }

    std::string program_, description_;
    std::vector<Flag> flags_;
};

// Registers the common flags on `cli`; `data_help` says what --data expects. The default data
// folder (options.data) is looked up from the current folder, then from the source tree.
inline void add_common_flags(CommandLine& cli, CommonOptions& options, const std::string& data_help) {
    constexpr Index most = Index{1} << 40;
    const std::string indent = "\n" + std::string(26, ' ');
    const std::string data_default = indent + "(default " + options.data + ", looked up from the current" + indent +
                                     "folder, then from the source tree)";
    cli.text("data", options.data, "PATH", data_help + data_default, &options.data_given, false)
        .integer("epochs", options.epochs, 1, 100000, "training epochs")
        .integer("batch", options.batch, Index{1}, Index{1} << 20, "mini-batch size")
        .integer("train-limit", options.train_limit, Index{0}, most, "use the first N training images only (0 = all)")
        .integer("test-limit", options.test_limit, Index{0}, most, "use the first N test images only (0 = all)")
        .integer("threads", options.threads, 0, 4096, "threads (0 = LATENT_NUM_THREADS or all cores)")
        .integer("seed", options.seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max(),
                 "seed of weights, shuffling and noise")
        .text("out", options.out, "DIR", "folder for grid.png, history.csv, model.latent")
        .flag("quiet", options.quiet, "no progress output (verbose 0)");
}

// ---------------------------------------------------------------------------------------------
// Start-up and results

// Applies --threads and prints the build configuration on stdout, so that timings can be judged.
inline void start(const std::string& program, const CommonOptions& options) {
    if (options.threads > 0) latent::set_num_threads(options.threads);
#ifdef __OPTIMIZE__
    const char* build = "optimised";
#else
    const char* build = "NOT optimised (expect it to be many times slower; build in Release)";
#endif
    // A build without threads (LATENT_USE_THREADS=0) runs on one whatever --threads says.
    const int threads = latent::has_threads() ? latent::num_threads() : 1;
    std::cout << program << ": threads " << threads
              << ", build " << build << "\n";
}

// Creates the output folder (once the data has loaded, so a failed run leaves nothing behind).
inline void prepare_output(const CommonOptions& options) {
    std::error_code error;
    std::filesystem::create_directories(options.out, error);
    if (error) throw latent::IoError("cannot create output folder '" + options.out + "': " + error.message());
}

inline std::string output_path(const CommonOptions& options, const std::string& name) {
    return (std::filesystem::path(options.out) / name).string();
}

// Wall-clock seconds since construction.
class Stopwatch {
public:
    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }

private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// A number for the RESULT line: "inf" for +infinity (e.g. the PSNR of an uncorrupted input).
inline std::string number(double value, int decimals) {
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    if (std::isnan(value)) return "nan";
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

// The RESULT line: test_* compare the model's output on the corrupted test inputs with the
// clean test images (MSE over all test pixels, PSNR from that MSE with data range 1);
// input_psnr_db compares the corrupted inputs with the clean ones; `extra` holds further
// " key=value" fields.
inline void print_result(const Images& output, const Images& corrupted, const Images& clean, double train_seconds,
                         const std::string& extra = "") {
    char mse[64];
    std::snprintf(mse, sizeof mse, "%.6g", latent::mse(output, clean));
    std::cout << "RESULT test_mse=" << mse << " test_psnr_db=" << number(latent::psnr(output, clean), 3)
              << " input_psnr_db=" << number(latent::psnr(corrupted, clean), 3)
              << " train_seconds=" << number(train_seconds, 2) << extra << std::endl;
}

// Fit options from the common flags; the history goes to DIR/history.csv after every epoch.
inline latent::FitOptions<float> fit_options(const CommonOptions& options) {
    latent::FitOptions<float> fit;
    fit.epochs = options.epochs;
    fit.batch_size = options.batch;
    fit.seed = options.seed;
    fit.verbose = options.quiet ? 0 : 1;
    fit.callbacks.push_back(latent::CsvLogger<float>(output_path(options, "history.csv")));
    return fit;
}

// ---------------------------------------------------------------------------------------------
// Tensors

// Samples [first, first + count) of a batch, copied.
inline Images samples(const Images& images, Index first, Index count) {
    return images.slice(Eigen::array<Index, 4>{first, 0, 0, 0},
                        Eigen::array<Index, 4>{count, images.dimension(1), images.dimension(2), images.dimension(3)});
}

// The first `limit` samples (all of them when limit is 0 or larger than the batch).
inline Images first_samples(const Images& images, Index limit) {
    const Index count = limit == 0 ? images.dimension(0) : std::min(limit, images.dimension(0));
    return samples(images, 0, count);
}

// The samples at `indices`, in that order.
inline Images gather(const Images& images, const std::vector<Index>& indices) {
    const latent::Shape shape = latent::sample_shape(images);
    Images result(static_cast<Index>(indices.size()), shape.channels, shape.height, shape.width);
    for (std::size_t i = 0; i < indices.size(); ++i)
        std::copy_n(images.data() + indices[i] * shape.size(), shape.size(),
                    result.data() + static_cast<Index>(i) * shape.size());
    return result;
}

// A corrupted copy of `clean`, made once from `seed` (a fixed test set).
template <class CorruptionType>
Images corrupt_once(const CorruptionType& corruption, const Images& clean, std::uint64_t seed) {
    Images corrupted(clean.dimensions());
    corruption.apply(latent::view(clean), latent::view(corrupted), seed);
    return corrupted;
}

// The seed the test images are corrupted with, once: a stream of its own, apart from the
// training batches' (fit draws those from derive_seed(seed, streams::corruption, epoch, batch)).
inline std::uint64_t test_corruption_seed(const CommonOptions& options) {
    constexpr std::uint64_t test_set_key = 0x7e57;
    return latent::derive_seed(latent::derive_seed(options.seed, test_set_key), latent::streams::corruption);
}

// DIR/grid.png: one row per batch in `rows` (e.g. clean, corrupted, output), each showing
// `columns` samples spread evenly over the batch (the same samples in every row; a test set
// sorted by person then shows several people), every pixel `scale` x `scale` times.
inline void save_grid(const CommonOptions& options, const std::vector<Images>& rows, Index columns, Index scale) {
    const Index count = rows.front().dimension(0);
    columns = std::min(columns, count);
    std::vector<Index> picked;
    for (Index i = 0; i < columns; ++i) picked.push_back(i * count / columns);
    std::vector<Images> shown;
    for (const Images& row : rows) shown.push_back(gather(row, picked));
    latent::save_image_grid(output_path(options, "grid.png"), shown, columns, scale);
}

// ---------------------------------------------------------------------------------------------
// Data

// The data folder: --data as given; without it the default, relative to the current folder if
// it exists there, else relative to the source tree (so the programs run from a build folder).
inline std::string resolve_data(const CommonOptions& options, const std::string& default_relative) {
    if (options.data_given) return options.data;
    namespace fs = std::filesystem;
    std::error_code error;
    if (fs::is_directory(default_relative, error)) return default_relative;
#ifdef LATENT_SOURCE_DIR
    const std::string in_source = (fs::path(LATENT_SOURCE_DIR) / default_relative).lexically_normal().string();
    if (fs::is_directory(in_source, error)) return in_source;
#endif
    return default_relative;
}

struct TrainTest {
    Images train, test;
};

// MNIST-style IDX files in `folder` (plain or .gz), the first train_limit / test_limit images.
inline TrainTest load_mnist(const std::string& folder, Index train_limit, Index test_limit) {
    const std::string hint = " (get it with examples/get_mnist.sh, or pass --data FOLDER)";
    std::error_code error;
    if (!std::filesystem::is_directory(folder, error))
        throw DataError("cannot load MNIST: folder '" + folder + "' does not exist" + hint);
    try {
        const latent::MnistFiles files = latent::find_mnist(folder);
        return {first_samples(latent::read_idx_images<float>(files.train_images), train_limit),
                first_samples(latent::read_idx_images<float>(files.test_images), test_limit)};
    } catch (const latent::Error& error) {
        throw DataError(std::string("cannot load MNIST: ") + error.what() + hint);
    }
}

// Olivetti faces with their subjects (1..40), from either layout:
//   olivetti64/sSS_KK.pgm  (subject SS from the file name), or
//   sS/K.pgm               (the ORL layout: subject S from the folder).
// Other files are ignored; in a folder holding both layouts (the data set's root) only the ORL
// folders match. Pixel values are byte / 255.
struct Faces {
    Images images;
    std::vector<int> subjects;
};

inline Faces load_faces(const std::string& folder) {
    static const std::regex flat(R"(s\d{1,4}_\d{1,4}\.pgm)", std::regex::icase);
    static const std::regex orl(R"(s\d{1,4}/\d{1,4}\.pgm)", std::regex::icase);
    latent::ImageFolderOptions options;
    options.extensions = {".pgm"};
    options.filter = [](const std::string& relative) {
        return std::regex_match(relative, flat) || std::regex_match(relative, orl);
    };
    try {
        auto folder_images = latent::load_image_folder<float>(folder, options);
        Faces faces{std::move(folder_images.images), {}};
        for (std::size_t i = 0; i < folder_images.paths.size(); ++i) {
            const int label = folder_images.labels[i];
            // ORL: the first-level folder "sS"; flat: the file name "sSS_KK.pgm".
            const std::string name = label >= 0
                                         ? folder_images.class_names[static_cast<std::size_t>(label)]
                                         : std::filesystem::path(folder_images.paths[i]).filename().string();
            faces.subjects.push_back(std::stoi(name.substr(1)));
        }
        return faces;
    } catch (const latent::Error& error) {
        throw DataError(std::string("cannot load the Olivetti faces: ") + error.what() +
                        " (pass --data with the olivetti64 folder or the ORL folder holding s1 ... s40)");
    }
}

// Train on subjects 1-35, test on 36-40 (people never seen in training), each limited to the
// first train_limit / test_limit images (0 = all).
inline TrainTest split_faces(const Faces& faces, Index train_limit, Index test_limit) {
    std::vector<Index> train, test;
    for (std::size_t i = 0; i < faces.subjects.size(); ++i)
        (faces.subjects[i] <= 35 ? train : test).push_back(static_cast<Index>(i));
    if (train_limit > 0 && static_cast<Index>(train.size()) > train_limit) train.resize(static_cast<std::size_t>(train_limit));
    if (test_limit > 0 && static_cast<Index>(test.size()) > test_limit) test.resize(static_cast<std::size_t>(test_limit));
    if (train.empty() || test.empty())
        throw DataError("the Olivetti split needs faces of subjects 1-35 (training) and 36-40 (test); found " +
                        std::to_string(train.size()) + " and " + std::to_string(test.size()));
    return {gather(faces.images, train), gather(faces.images, test)};
}

// Faces resized to size x size (bicubic) and kept in [0, 1]: bicubic overshoots near sharp
// edges. Faces already of that size are returned as they are.
inline Images resize_faces(const Images& faces, Index size) {
    if (faces.dimension(2) == size && faces.dimension(3) == size) return faces;
    Images resized = latent::resize_bicubic(faces, size, size);
    resized = resized.cwiseMax(0.0f).cwiseMin(1.0f);
    return resized;
}

// ---------------------------------------------------------------------------------------------
// main()

// Error messages may span lines (a list of paths tried): the examples print them on one.
inline std::string one_line(const std::string& text) {
    std::string line;
    for (char c : text) {
        const char shown = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
        if (shown == ' ' && (line.empty() || line.back() == ' ')) continue;  // one space between words
        line += shown;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line;
}

// Runs an example's body and turns every exception into one line on stderr and an exit status.
inline int guarded_main(const std::string& program, int argc, char** argv, int (*body)(int, char**)) {
    auto report = [&](const std::string& message, int status) {
        std::cout.flush();
        std::cerr << program << ": error: " << one_line(message) << std::endl;
        return status;
    };
    try {
        return body(argc, argv);
    } catch (const UsageError& error) {
        return report(error.what(), 2);
    } catch (const DataError& error) {
        return report(error.what(), 2);
    } catch (const std::bad_alloc&) {
        return report("out of memory", 1);
    } catch (const std::exception& error) {
        return report(error.what(), 1);
    } catch (...) {
        return report("unknown error", 1);
    }
}

}  // namespace example
