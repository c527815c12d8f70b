// The fuzz targets: one function per loader that writes the input to a file and loads it. Used
// by the libFuzzer harnesses (fuzz_<loader>.cpp) and by fuzz_regression, which replays the
// files under regressions/<loader>/ in the ordinary test suite.
//
// Rule: a target may end in a loaded result or a latent::Error, nothing else. Any other
// exception, a crash or a sanitizer report is a finding.
#pragma once

#include <latent/io/npz.hpp>
#include <latent/io/safetensors.hpp>
#include <latent/latent.hpp>

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace fuzz {

enum class Outcome { Loaded, LatentError };

// Limits for image targets: small enough that a sound but large image stays far below
// libFuzzer's 2 GB memory limit under AddressSanitizer.
inline latent::ImageLimits fuzz_image_limits() {
    latent::ImageLimits limits;
    limits.max_pixels = std::uint64_t{1} << 22;
    limits.max_bytes = std::uint64_t{256} << 20;
    return limits;
}

// A file of this process for the input, named with `suffix` (the loaders look at the name).
inline std::string input_file(const std::string& suffix) {
    const char* shared_memory = "/dev/shm";
    const std::string folder = ::access(shared_memory, W_OK) == 0 ? shared_memory : "/tmp";
    return folder + "/latent-fuzz-" + std::to_string(::getpid()) + suffix;
}

inline std::string write_input(const std::uint8_t* data, std::size_t size, const std::string& suffix) {
    const std::string path = input_file(suffix);
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                  static_cast<std::streamsize>(size));
    return path;
}

// Runs `load(path)` on the input written to a file; a latent::Error is an expected outcome.
template <class Load> Outcome run(const std::uint8_t* data, std::size_t size, const std::string& suffix, Load&& load) {
    const std::string path = write_input(data, size, suffix);
    try {
        load(path);
    } catch (const latent::Error&) {
        return Outcome::LatentError;
    }
    return Outcome::Loaded;
}

// Loads with `first`, and with `second` when `first` gives a latent error: both readers see
// every input, and it counts as loaded when either reads it.
template <class First, class Second> void either(const std::string& path, First&& first, Second&& second) {
    try {
        first(path);
        return;
    } catch (const latent::Error&) {
    }
    second(path);
}

// The stream of a file (data/stream.hpp) against the whole-file reader: a file `load` reads
// streams to the same values, in order, in one epoch (or, holding no samples, is refused); a
// file `load` refuses, the stream refuses too. Anything else is a finding (std::logic_error).
template <class Load, class MakeStream>
void same_as_stream(const std::string& path, Load&& load, MakeStream&& make_stream) {
    latent::StreamOptions in_order;
    in_order.shuffle = false;
    in_order.batch_size = 7;
    latent::Tensor<float> loaded;
    try {
        loaded = load(path);
    } catch (const latent::Error&) {
        (void)make_stream(path, in_order);  // must throw a latent::Error too
        throw std::logic_error("the stream reads a file that the whole-file reader refuses");
    }
    if (loaded.size() == 0) {
        try {
            (void)make_stream(path, in_order);
        } catch (const latent::FormatError&) {
            return;
        }
        throw std::logic_error("the stream accepts a file of no samples");
    }
    const latent::BatchSource<float> source = make_stream(path, in_order).source();
    latent::Tensor<float> inputs, targets;
    latent::Index at = 0;
    for (latent::Index b = 0; b < source.batches_per_epoch; ++b) {
        source.next(0, b, inputs, targets);
        if (at + inputs.size() > loaded.size() ||
            std::memcmp(inputs.data(), loaded.data() + at, sizeof(float) * static_cast<std::size_t>(inputs.size())) != 0)
            throw std::logic_error("the stream's batches differ from the whole-file reader's tensor");
        at += inputs.size();
    }
    if (at != loaded.size()) throw std::logic_error("the stream gave fewer values than the whole-file reader");
}

inline Outcome npy(const std::uint8_t* data, std::size_t size) {
    return run(data, size, ".npy", [](const std::string& path) {
        either(
            path,
            [](const std::string& file) {
                same_as_stream(file, latent::load_npy<float>, latent::stream_npy<float>);
            },
            [](const std::string& file) { (void)latent::load_npy_matrix<double>(file); });
    });
}

inline Outcome idx(const std::uint8_t* data, std::size_t size) {
    const bool gzip = size >= 2 && data[0] == 0x1F && data[1] == 0x8B;  // read whole, never streamed
    return run(data, size, "-idx3-ubyte", [gzip](const std::string& path) {
        either(
            path,
            [gzip](const std::string& file) {
                if (gzip) (void)latent::read_idx_images<float>(file);
                else same_as_stream(file, latent::read_idx_images<float>, latent::stream_idx_images<float>);
            },
            [](const std::string& file) { (void)latent::read_idx_labels(file); });
    });
}

// The first byte chooses: even = the rest is the .gz file itself, odd = the rest gzip-compressed
// (so the IDX parser behind the inflater sees arbitrary content).
inline Outcome idx_gzip(const std::uint8_t* data, std::size_t size) {
    std::vector<std::uint8_t> file;
    if (size > 0 && (data[0] & 1)) {
        uLongf packed = compressBound(static_cast<uLong>(size)) + 32;
        file.resize(packed);
        z_stream stream{};
        deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        stream.next_in = const_cast<Bytef*>(data + 1);
        stream.avail_in = static_cast<uInt>(size - 1);
        stream.next_out = file.data();
        stream.avail_out = static_cast<uInt>(file.size());
        deflate(&stream, Z_FINISH);
        file.resize(stream.total_out);
        deflateEnd(&stream);
    } else if (size > 0) {
        file.assign(data + 1, data + size);
    }
    return idx(file.data(), file.size());
}

// An image target: grey, then RGB, with the fuzzing limits.
inline Outcome image(const std::uint8_t* data, std::size_t size, const std::string& suffix) {
    return run(data, size, suffix, [](const std::string& path) {
        (void)latent::load_image<float>(path, 1, fuzz_image_limits());
        (void)latent::load_image<double>(path, 3, fuzz_image_limits());
    });
}
inline Outcome png(const std::uint8_t* data, std::size_t size) { return image(data, size, ".png"); }
inline Outcome jpeg(const std::uint8_t* data, std::size_t size) { return image(data, size, ".jpg"); }
inline Outcome bmp(const std::uint8_t* data, std::size_t size) { return image(data, size, ".bmp"); }
inline Outcome pnm(const std::uint8_t* data, std::size_t size) { return image(data, size, ".pgm"); }

// Runs a loaded model once on a zero batch when its tensors are small: a model that loads must
// also run without touching memory it does not own.
template <class Model> void run_once(Model& model, const latent::Shape& input) {
    const latent::Index small = latent::Index{1} << 20;
    if (input.size() > small || model.largest_activation() > small || model.parameter_count() > small) return;
    (void)model.predict(latent::make_tensor<float>(1, input));
}

inline void load_model(const std::string& path) {
    either(
        path,
        [](const std::string& file) {
            latent::TrainingProgress<float> progress;
            latent::Sequential<float> model = latent::load_sequential<float>(file, &progress);
            run_once(model, model.input_shape());
        },
        [](const std::string& file) {
            latent::Autoencoder<float> autoencoder = latent::Autoencoder<float>::load(file);
            run_once(autoencoder.encoder(), autoencoder.encoder().input_shape());
            run_once(autoencoder.decoder(), autoencoder.decoder().input_shape());
        });
}

inline Outcome model(const std::uint8_t* data, std::size_t size) { return run(data, size, ".latent", load_model); }

// The input with a valid 32-byte header written over its first 32 bytes (magic, version 1,
// float, the payload's size and CRC-32), so that the payload parser sees every input.
inline Outcome model_crc(const std::uint8_t* data, std::size_t size) {
    std::vector<std::uint8_t> file(data, data + size);
    if (file.size() < 32) file.resize(32);
    const auto put = [&](std::size_t at, std::uint64_t value, int bytes) {
        for (int k = 0; k < bytes; ++k) file[at + k] = static_cast<std::uint8_t>(value >> (8 * k));
    };
    std::memcpy(file.data(), "\x89LATENT\n", 8);
    put(8, 1, 4);
    put(12, sizeof(float), 4);
    put(16, file.size() - 32, 8);
    put(24, crc32_z(crc32(0L, Z_NULL, 0), file.data() + 32, file.size() - 32), 4);
    put(28, 0, 4);
    return run(file.data(), file.size(), ".latent", load_model);
}

// Weight files: a file that parses must also give every array's values (the invariant of
// io/named_arrays.hpp: its bytes are exactly its shape's values).
template <class Read> void read_weights(const std::string& path, Read&& read) {
    for (const latent::NamedArray& array : read(path))
        if (latent::array_values<double>(array).size() != static_cast<std::size_t>(latent::element_count(array.shape, array.name)))
            throw std::logic_error("an array's bytes do not match its shape");
}
inline Outcome safetensors(const std::uint8_t* data, std::size_t size) {
    return run(data, size, ".safetensors", [](const std::string& path) { read_weights(path, latent::read_safetensors); });
}
inline Outcome npz(const std::uint8_t* data, std::size_t size) {
    return run(data, size, ".npz", [](const std::string& path) { read_weights(path, latent::read_npz); });
}

// Every target by name, for fuzz_regression.
inline const std::map<std::string, std::function<Outcome(const std::uint8_t*, std::size_t)>>& by_name() {
    static const std::map<std::string, std::function<Outcome(const std::uint8_t*, std::size_t)>> targets{
        {"npy", npy}, {"idx", idx}, {"idx_gzip", idx_gzip}, {"png", png},          {"jpeg", jpeg},
        {"bmp", bmp}, {"pnm", pnm}, {"model", model},       {"model_crc", model_crc},
        {"safetensors", safetensors}, {"npz", npz}};
    return targets;
}

}  // namespace fuzz
