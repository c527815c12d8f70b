// File helpers shared by every writer and reader: atomic replacement, whole-file reads and
// reads of pieces (FileReader).
//
// write_file_atomically(path, write) on POSIX systems:
//   - `path` is resolved through symbolic links first: the link stays, the file it points to is
//     replaced (a dangling link's target is created). A directory at the resolved path is an
//     IoError.
//   - The bytes go to a new temporary file next to the target, named
//     "<target>.tmp-<pid>-<16 random hex digits>" and created with O_CREAT | O_EXCL | O_NOFOLLOW
//     and mode 0600, so no other file (or planted link) is ever opened or truncated. It is
//     flushed to disk, given the target's permission bits (those of a new file, 0666 less the
//     umask, when there is no target yet) and renamed over the target.
//   - A process killed while saving leaves its temporary behind: every save first removes the
//     temporaries of the same target whose process no longer exists. Temporaries of live
//     processes (or of another machine sharing the folder) are left alone.
//   - If anything fails -- including an exception from `write` -- the temporary is removed, the
//     previous file is left untouched, and the error propagates (IoError for I/O failures).
// Elsewhere a plain temporary file and rename do the same without these guarantees.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <ostream>
#include <random>
#include <streambuf>
#include <string>
#include <system_error>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "errors.hpp"

namespace latent {
namespace detail {

inline std::string quoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

inline std::string error_text(int error) { return std::strerror(error); }

// The file a path names once symbolic links are followed (at most 40, as the kernel does);
// the path itself when it does not exist.
inline std::filesystem::path resolve_links(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    fs::path resolved = path;
    for (int hops = 0; hops < 40; ++hops) {
        std::error_code error;
        if (!fs::is_symlink(fs::symlink_status(resolved, error))) return resolved;
        const fs::path link = fs::read_symlink(resolved, error);
        if (error) throw IoError("cannot read the link " + quoted(resolved) + ": " + error.message());
        resolved = link.is_absolute() ? link : resolved.parent_path() / link;
    }
    throw IoError("cannot write " + quoted(path) + ": too many levels of symbolic links");
}

inline void require_not_directory(const std::filesystem::path& path, const std::string& shown) {
    std::error_code error;
    if (std::filesystem::is_directory(path, error))
        throw IoError("cannot use '" + shown + "' as a file: it is a directory");
}

#if defined(__unix__) || defined(__APPLE__)

// An output stream buffer over a file descriptor; failures are kept in `error` (an errno).
class DescriptorBuffer : public std::streambuf {
public:
    explicit DescriptorBuffer(int descriptor) : descriptor_(descriptor), buffer_(1 << 16) {
        setp(buffer_.data(), buffer_.data() + buffer_.size());
    }
    int error = 0;

protected:
    int_type overflow(int_type c) override {
        if (!drain()) return traits_type::eof();
        if (!traits_type::eq_int_type(c, traits_type::eof())) sputc(traits_type::to_char_type(c));
        return traits_type::not_eof(c);
    }
    int sync() override { return drain() ? 0 : -1; }

private:
    // Writes out what the buffer holds; false (with `error` set) when the descriptor refuses.
    bool drain() {
        const char* next = pbase();
        while (next < pptr()) {
            const ::ssize_t written = ::write(descriptor_, next, static_cast<std::size_t>(pptr() - next));
            if (written < 0 && errno == EINTR) continue;
            if (written <= 0) {
                error = written < 0 ? errno : EIO;
                return false;
            }
            next += written;
        }
        setp(buffer_.data(), buffer_.data() + buffer_.size());
        return true;
    }

    int descriptor_;
    std::vector<char> buffer_;
};

// 64 bits from the system's random source as 16 hex digits: a name nobody can guess ahead.
inline std::string random_hex() {
    std::random_device device;
    static const char digits[] = "0123456789abcdef";
    std::uint64_t bits = (static_cast<std::uint64_t>(device()) << 32) | device();
    std::string text(16, '0');
    for (char& digit : text) {
        digit = digits[bits & 15];
        bits >>= 4;
    }
    return text;
}

// "<target file name>.tmp-": the prefix of every temporary of `target`.
inline std::string temporary_prefix(const std::filesystem::path& target) {
    return target.filename().string() + ".tmp-";
}

// The process id in a temporary's name "<prefix><pid>-<hex>", or 0 when the name is not one.
inline ::pid_t temporary_owner(const std::string& name, const std::string& prefix) {
    if (name.compare(0, prefix.size(), prefix) != 0) return 0;
    std::size_t at = prefix.size();
    long long pid = 0;
    while (at < name.size() && name[at] >= '0' && name[at] <= '9' && pid < (1LL << 31))
        pid = pid * 10 + (name[at++] - '0');
    const bool well_formed = at > prefix.size() && at + 17 == name.size() && name[at] == '-' &&
                             name.find_first_not_of("0123456789abcdef", at + 1) == std::string::npos;
    return well_formed && pid < (1LL << 31) ? static_cast<::pid_t>(pid) : 0;
}

// Removes the temporaries of `target` left by processes that no longer exist.
inline void remove_dead_temporaries(const std::filesystem::path& target) {
    namespace fs = std::filesystem;
    const fs::path folder = target.has_parent_path() ? target.parent_path() : fs::path(".");
    const std::string prefix = temporary_prefix(target);
    std::error_code error;
    for (fs::directory_iterator entry(folder, error), end; !error && entry != end; entry.increment(error)) {
        const ::pid_t owner = temporary_owner(entry->path().filename().string(), prefix);
        if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) {
            std::error_code ignored;
            fs::remove(entry->path(), ignored);
        }
    }
}

// The umask, read without changing it (Linux's /proc); 022 where it cannot be read.
inline ::mode_t current_umask() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.compare(0, 6, "Umask:") == 0) return static_cast<::mode_t>(std::stoul(line.substr(6), nullptr, 8));
    return 022;
}

// The permission bits the saved file gets: the target's own, or a new file's.
inline ::mode_t permissions_for(const std::filesystem::path& target) {
    struct ::stat status {};
    if (::stat(target.c_str(), &status) == 0) return status.st_mode & 07777;
    return 0666 & ~current_umask();
}

// A new temporary next to `target`, opened for writing: its name and descriptor.
struct Temporary {
    std::filesystem::path path;
    int descriptor = -1;
};

inline Temporary create_temporary(const std::filesystem::path& target, const std::string& shown) {
    for (int attempt = 0;; ++attempt) {
        Temporary temporary;
        temporary.path = target.string() + ".tmp-" + std::to_string(::getpid()) + "-" + random_hex();
        temporary.descriptor =
            ::open(temporary.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (temporary.descriptor >= 0) return temporary;
        if (errno != EEXIST || attempt == 8)
            throw IoError("cannot create a temporary file to write '" + shown + "' (" + temporary.path.string() +
                          "): " + error_text(errno));
    }
}

// Makes the rename of a file in `folder` durable; failures only lose durability, not data.
inline void flush_folder(const std::filesystem::path& target) {
    const std::filesystem::path folder = target.has_parent_path() ? target.parent_path() : ".";
    const int descriptor = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (descriptor < 0) return;
    ::fsync(descriptor);
    ::close(descriptor);
}

// Fills, flushes and closes the temporary; IoError naming `shown` when any step fails.
template <class Writer> void fill_temporary(Temporary& temporary, ::mode_t mode, const std::string& shown, Writer& write) {
    DescriptorBuffer buffer(temporary.descriptor);
    std::ostream stream(&buffer);
    write(stream);
    stream.flush();
    if (!stream || buffer.error != 0)
        throw IoError("writing '" + shown + "' failed: " + error_text(buffer.error != 0 ? buffer.error : EIO));
    if (::fchmod(temporary.descriptor, mode) != 0 || ::fsync(temporary.descriptor) != 0)
        throw IoError("writing '" + shown + "' failed: " + error_text(errno));
    const int descriptor = temporary.descriptor;
    temporary.descriptor = -1;
    if (::close(descriptor) != 0) throw IoError("writing '" + shown + "' failed: " + error_text(errno));
}

#endif  // POSIX

}  // namespace detail

// Replaces `path` atomically with what `write(stream)` puts into the stream (see the top of this
// header for temporaries, links and permissions). On failure the previous file is untouched.
template <class Writer> void write_file_atomically(const std::string& path, Writer&& write) {
    const std::filesystem::path target = detail::resolve_links(path);
    detail::require_not_directory(target, path);
#if defined(__unix__) || defined(__APPLE__)
    detail::remove_dead_temporaries(target);
    const ::mode_t mode = detail::permissions_for(target);
    detail::Temporary temporary = detail::create_temporary(target, path);
    try {
        detail::fill_temporary(temporary, mode, path, write);
        if (::rename(temporary.path.c_str(), target.c_str()) != 0)
            throw IoError("cannot rename '" + temporary.path.string() + "' to '" + target.string() +
                          "': " + detail::error_text(errno));
    } catch (...) {
        if (temporary.descriptor >= 0) ::close(temporary.descriptor);
        ::unlink(temporary.path.c_str());
        throw;
    }
    detail::flush_folder(target);
#else
    const std::filesystem::path temporary = target.string() + ".tmp";
    try {
        {
            std::ofstream stream(temporary, std::ios::binary | std::ios::trunc);
            if (!stream) throw IoError("cannot create '" + temporary.string() + "' to write '" + path + "'");
            write(stream);
            stream.flush();
            if (!stream) throw IoError("writing '" + path + "' failed (disk full?)");
        }
        std::filesystem::rename(temporary, target);
    } catch (const std::filesystem::filesystem_error& error) {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        throw IoError("cannot rename '" + temporary.string() + "' to '" + path + "': " + error.what());
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        throw;
    }
#endif
}

// The whole content of a file, at most `max_bytes` long; IoError naming the file when it cannot
// be read (a directory included), FormatError when it is longer than `max_bytes`.
inline std::vector<char> read_file(const std::string& path,
                                   std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max()) {
    detail::require_not_directory(path, path);
    std::ifstream stream(path, std::ios::binary);
    if (!stream) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
    std::vector<char> bytes;
    try {
        stream.seekg(0, std::ios::end);
        const std::streamoff size = stream.tellg();
        stream.seekg(0, std::ios::beg);
        if (size > 0 && static_cast<std::uint64_t>(size) > max_bytes)
            throw FormatError("'" + path + "': the file has " + std::to_string(size) + " bytes, more than the limit of " +
                              std::to_string(max_bytes));
        if (size > 0) bytes.reserve(static_cast<std::size_t>(size));
        bytes.assign(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
    } catch (const std::ios_base::failure& error) {
        throw IoError("reading '" + path + "' failed: " + error.what());
    }
    if (stream.bad()) throw IoError("reading '" + path + "' failed");
    if (bytes.size() > max_bytes)
        throw FormatError("'" + path + "': the file is longer than the limit of " + std::to_string(max_bytes) + " bytes");
    return bytes;
}

// A file read in pieces at given offsets, by several threads at once, never as a whole: the
// streams of data/ read only the samples of the batch at hand. The size is the one when opened.
class FileReader {
public:
    // IoError naming the file when it cannot be opened (or is a directory).
    explicit FileReader(const std::string& path) : path_(path) {
        detail::require_not_directory(path, path);
#if defined(__unix__) || defined(__APPLE__)
        descriptor_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (descriptor_ < 0) throw IoError("cannot open '" + path + "': " + detail::error_text(errno));
        struct ::stat status {};
        if (::fstat(descriptor_, &status) != 0) {
            const int error = errno;
            ::close(descriptor_);
            throw IoError("cannot read the size of '" + path + "': " + detail::error_text(error));
        }
        size_ = static_cast<std::uint64_t>(status.st_size);
#else
        stream_.open(path, std::ios::binary);
        if (!stream_) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
        stream_.seekg(0, std::ios::end);
        size_ = static_cast<std::uint64_t>(stream_.tellg());
#endif
    }
    FileReader(const FileReader&) = delete;
    FileReader& operator=(const FileReader&) = delete;
    ~FileReader() {
#if defined(__unix__) || defined(__APPLE__)
        ::close(descriptor_);
#endif
    }

    const std::string& path() const { return path_; }
    std::uint64_t size() const { return size_; }

    // Exactly `count` bytes at `offset` into `out`. FormatError naming the file when it ends
    // before (it was truncated since it was opened); IoError when reading fails.
    void read(std::uint64_t offset, char* out, std::size_t count) const {
        const auto truncated = [&] {
            return FormatError("'" + path_ + "': truncated: " + std::to_string(count) + " bytes at offset " +
                               std::to_string(offset) + " are past the end of the file");
        };
#if defined(__unix__) || defined(__APPLE__)
        while (count > 0) {
            const ::ssize_t got = ::pread(descriptor_, out, count, static_cast<::off_t>(offset));
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) throw IoError("reading '" + path_ + "' failed: " + detail::error_text(errno));
            if (got == 0) throw truncated();
            out += got;
            offset += static_cast<std::uint64_t>(got);
            count -= static_cast<std::size_t>(got);
        }
#else
        std::lock_guard<std::mutex> lock(mutex_);  // one position for every thread
        stream_.clear();
        stream_.seekg(static_cast<std::streamoff>(offset));
        stream_.read(out, static_cast<std::streamsize>(count));
        if (static_cast<std::size_t>(stream_.gcount()) != count) throw truncated();
#endif
    }

private:
    std::string path_;
    std::uint64_t size_ = 0;
#if defined(__unix__) || defined(__APPLE__)
    int descriptor_ = -1;
#else
    mutable std::ifstream stream_;
    mutable std::mutex mutex_;
#endif
};

}  // namespace latent
