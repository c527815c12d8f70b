// File helpers shared by every writer and reader: atomic replacement and whole-file reads.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#endif

#include "errors.hpp"

namespace latent {
namespace detail {

// Forces a written file's bytes to the disk before it is renamed into place (POSIX only).
inline void flush_to_disk(const std::filesystem::path& path) {
#if defined(__unix__) || defined(__APPLE__)
    const int descriptor = ::open(path.c_str(), O_RDONLY);
    if (descriptor < 0) return;
    ::fsync(descriptor);
    ::close(descriptor);
#else
    (void)path;
#endif
}

inline std::string temporary_name_for(const std::filesystem::path& path) {
    static std::atomic<unsigned> counter{0};
#if defined(__unix__) || defined(__APPLE__)
    const long process = static_cast<long>(::getpid());
#else
    const long process = 0;
#endif
    return path.string() + ".tmp-" + std::to_string(process) + "-" + std::to_string(counter++);
}

}  // namespace detail

// Replaces `path` atomically: `write(stream)` fills a temporary file in the same directory,
// which is flushed to disk and then renamed over `path`. If anything fails -- including an
// exception from `write` -- the temporary file is removed, the previous file at `path` is left
// untouched, and the error propagates (IoError for I/O failures).
template <class Writer> void write_file_atomically(const std::string& path, Writer&& write) {
    const std::filesystem::path target(path);
    const std::filesystem::path temporary = detail::temporary_name_for(target);
    auto remove_temporary = [&] {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
    };
    try {
        {
            std::ofstream stream(temporary, std::ios::binary | std::ios::trunc);
            if (!stream)
                throw IoError("cannot create '" + temporary.string() + "' to write '" + path +
                              "': " + std::strerror(errno));
            write(stream);
            stream.flush();
            if (!stream) throw IoError("writing '" + path + "' failed (disk full?)");
        }
        detail::flush_to_disk(temporary);
        std::error_code error;
        std::filesystem::rename(temporary, target, error);
        if (error) throw IoError("cannot rename '" + temporary.string() + "' to '" + path + "': " + error.message());
    } catch (...) {
        remove_temporary();
        throw;
    }
}

// The whole content of a file; IoError naming the file when it cannot be read.
inline std::vector<char> read_file(const std::string& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
    std::vector<char> bytes((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
    if (stream.bad()) throw IoError("reading '" + path + "' failed");
    return bytes;
}

}  // namespace latent
