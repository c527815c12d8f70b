// .npz files: a zip archive of .npy files, one per array ("encoder.0.weight.npy"), as
// numpy.savez (stored members) and numpy.savez_compressed (deflated members) write them.
//
// Reading (parse_npz) treats the archive as hostile and checks, before anything is inflated:
//   - the end-of-central-directory record ends the file (after its comment), describes one disk,
//     and its central directory lies right before it;
//   - zip64 archives are refused by name (a zip64 end record, or 0xFFFF / 0xFFFFFFFF in a count,
//     size or offset): weight files this large are not read. A zip64 extra field in a *local*
//     header is accepted when its sizes equal the central directory's: numpy.savez writes one for
//     every member, even small ones;
//   - every central entry: not encrypted, method 0 (stored) or 8 (deflated), a name ending in
//     ".npy" and not repeated; its local header has the same signature, name and method, and the
//     same CRC and sizes unless they follow in a data descriptor (flag bit 3);
//   - the members' data lie before the central directory and do not overlap;
//   - a stored member's two sizes agree; a deflated member inflates to exactly its size, ending
//     exactly at its compressed size (the output grows as the inflater produces it, so a size
//     field alone never decides an allocation); the CRC-32 of the data matches;
//   - each member is an .npy file that data/npy.hpp's parser accepts ('<f4', '<f8' or '<i8', C
//     order, exactly the bytes its shape needs).
// Errors are FormatError naming the file, and the member when one is at fault.
// Writing (write_npz) makes a plain zip (no zip64, no data descriptors, the 1980-01-01 date numpy
// uses) with stored or deflated members, atomically.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "../core/checked.hpp"
#include "../core/crc32.hpp"
#include "../core/errors.hpp"
#include "../core/file.hpp"
#include "../data/npy.hpp"
#include "named_arrays.hpp"

namespace latent {

enum class NpzCompression { Stored, Deflated };

namespace detail {

constexpr std::uint32_t zip_local_signature = 0x04034b50;
constexpr std::uint32_t zip_central_signature = 0x02014b50;
constexpr std::uint32_t zip_end_signature = 0x06054b50;
constexpr std::uint32_t zip64_locator_signature = 0x07064b50;
constexpr std::size_t zip_local_size = 30, zip_central_size = 46, zip_end_size = 22;
constexpr std::uint16_t zip_stored = 0, zip_deflated = 8;
constexpr std::uint16_t zip_encrypted_flag = 1, zip_descriptor_flag = 8;
constexpr std::uint32_t zip64_marker = 0xFFFFFFFF;

// Little-endian reads at an offset the caller has checked against the size.
inline std::uint32_t zip_u16(std::string_view bytes, std::size_t at) {
    return static_cast<unsigned char>(bytes[at]) | static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + 1])) << 8;
}
inline std::uint32_t zip_u32(std::string_view bytes, std::size_t at) { return zip_u16(bytes, at) | zip_u16(bytes, at + 2) << 16; }
inline std::uint64_t zip_u64(std::string_view bytes, std::size_t at) {
    return zip_u32(bytes, at) | static_cast<std::uint64_t>(zip_u32(bytes, at + 4)) << 32;
}

// One member as the central directory describes it, and where its data lie.
struct ZipMember {
    std::string name;
    std::uint16_t flags = 0, method = 0;
    std::uint32_t crc = 0;
    std::uint64_t compressed = 0, uncompressed = 0, local_offset = 0, data_begin = 0;
};

// What the end-of-central-directory record says.
struct ZipDirectory {
    std::uint64_t offset = 0, size = 0;
    std::uint32_t entries = 0;
};

class ZipReader {
public:
    ZipReader(std::string_view file, const std::string& path) : file_(file), where_("'" + path + "': ") {}

    std::vector<ZipMember> members() {
        const ZipDirectory directory = find_directory();
        std::vector<ZipMember> members;
        std::size_t at = static_cast<std::size_t>(directory.offset);
        for (std::uint32_t i = 0; i < directory.entries; ++i) members.push_back(central_entry(at, directory));
        if (at != directory.offset + directory.size)
            fail("the central directory's " + std::to_string(directory.entries) + " entries do not fill its " +
                 std::to_string(directory.size) + " bytes");
        require_disjoint(members, directory.offset);
        return members;
    }

    // The member's data, inflated if need be, checked against its size and CRC.
    std::string contents(const ZipMember& member) const {
        const std::string_view stored = file_.substr(static_cast<std::size_t>(member.data_begin),
                                                     static_cast<std::size_t>(member.compressed));
        std::string data = member.method == zip_stored ? std::string(stored) : inflated(stored, member);
        if (crc32_of(data.data(), data.size()) != member.crc) fail("member '" + member.name + "': CRC-32 mismatch (corrupt data)");
        return data;
    }

    [[noreturn]] void fail(const std::string& what) const { throw FormatError(where_ + "bad .npz (zip) archive: " + what); }

private:
    void require_bytes(std::uint64_t at, std::uint64_t count, const std::string& what) const {
        if (at > file_.size() || count > file_.size() - at)
            fail(what + " at byte " + std::to_string(at) + " runs past the end of the file (" +
                 std::to_string(file_.size()) + " bytes)");
    }

    ZipDirectory find_directory() const {
        if (file_.size() < zip_end_size) fail("too short to be a zip archive (" + std::to_string(file_.size()) + " bytes)");
        const std::size_t lowest = file_.size() - zip_end_size - std::min<std::size_t>(file_.size() - zip_end_size, 0xFFFF);
        for (std::size_t at = file_.size() - zip_end_size + 1; at-- > lowest;) {
            if (zip_u32(file_, at) != zip_end_signature || at + zip_end_size + zip_u16(file_, at + 20) != file_.size()) continue;
            if (at >= 20 && zip_u32(file_, at - 20) == zip64_locator_signature) fail("zip64 archives are not read");
            ZipDirectory directory{zip_u32(file_, at + 16), zip_u32(file_, at + 12), zip_u16(file_, at + 10)};
            if (directory.entries == 0xFFFF || directory.offset == zip64_marker || directory.size == zip64_marker)
                fail("zip64 archives are not read");
            if (zip_u16(file_, at + 4) != 0 || zip_u16(file_, at + 6) != 0 || zip_u16(file_, at + 8) != directory.entries)
                fail("multi-disk archives are not read");
            if (directory.offset + directory.size != at)
                fail("the central directory (" + std::to_string(directory.size) + " bytes at " +
                     std::to_string(directory.offset) + ") does not end where its end record starts (" + std::to_string(at) + ")");
            return directory;
        }
        fail("no end-of-central-directory record (not a zip archive, or truncated)");
    }

    ZipMember central_entry(std::size_t& at, const ZipDirectory& directory) const {
        require_bytes(at, zip_central_size, "a central directory entry");
        if (at + zip_central_size > directory.offset + directory.size) fail("a central directory entry runs past the directory");
        if (zip_u32(file_, at) != zip_central_signature) fail("bad central directory signature at byte " + std::to_string(at));
        ZipMember member;
        member.flags = static_cast<std::uint16_t>(zip_u16(file_, at + 8));
        member.method = static_cast<std::uint16_t>(zip_u16(file_, at + 10));
        member.crc = zip_u32(file_, at + 16);
        member.compressed = zip_u32(file_, at + 20);
        member.uncompressed = zip_u32(file_, at + 24);
        member.local_offset = zip_u32(file_, at + 42);
        const std::size_t name_size = zip_u16(file_, at + 28);
        const std::size_t variable = name_size + zip_u16(file_, at + 30) + zip_u16(file_, at + 32);
        require_bytes(at + zip_central_size, variable, "a central directory entry's name and fields");
        member.name = std::string(file_.substr(at + zip_central_size, name_size));
        at += zip_central_size + variable;
        if (member.compressed == zip64_marker || member.uncompressed == zip64_marker || member.local_offset == zip64_marker)
            fail("member '" + member.name + "': zip64 archives are not read");
        if (member.flags & zip_encrypted_flag) fail("member '" + member.name + "' is encrypted");
        if (member.method != zip_stored && member.method != zip_deflated)
            fail("member '" + member.name + "': compression method " + std::to_string(member.method) +
                 " is not read (0, stored, and 8, deflated, are)");
        if (member.method == zip_stored && member.compressed != member.uncompressed)
            fail("member '" + member.name + "': a stored member's sizes differ (" + std::to_string(member.compressed) + " and " +
                 std::to_string(member.uncompressed) + " bytes)");
        check_local_header(member);
        return member;
    }

    // The local header must agree with the central entry; it fixes where the data start.
    void check_local_header(ZipMember& member) const {
        const std::string what = "member '" + member.name + "': ";
        const std::uint64_t at = member.local_offset;
        require_bytes(at, zip_local_size, what + "local header");
        if (zip_u32(file_, at) != zip_local_signature) fail(what + "no local header at byte " + std::to_string(at));
        const std::size_t name_size = zip_u16(file_, at + 26), extra_size = zip_u16(file_, at + 28);
        require_bytes(at + zip_local_size, name_size + extra_size, what + "local header's name and extra field");
        if (file_.substr(at + zip_local_size, name_size) != member.name) fail(what + "the local header names another file");
        if (zip_u16(file_, at + 8) != member.method) fail(what + "the local header gives another compression method");
        std::uint64_t compressed = zip_u32(file_, at + 18), uncompressed = zip_u32(file_, at + 22);
        if (compressed == zip64_marker && uncompressed == zip64_marker)
            read_zip64_sizes(file_.substr(at + zip_local_size + name_size, extra_size), uncompressed, compressed, what);
        const bool sizes_follow = (zip_u16(file_, at + 6) & zip_descriptor_flag) != 0;
        if (!sizes_follow && (zip_u32(file_, at + 14) != member.crc || compressed != member.compressed ||
                              uncompressed != member.uncompressed))
            fail(what + "the local header's CRC or sizes differ from the central directory's");
        member.data_begin = at + zip_local_size + name_size + extra_size;
        require_bytes(member.data_begin, member.compressed, what + "data");
    }

    // The sizes of a zip64 extra field (id 1: uncompressed, then compressed, 8 bytes each).
    void read_zip64_sizes(std::string_view extra, std::uint64_t& uncompressed, std::uint64_t& compressed,
                          const std::string& what) const {
        for (std::size_t at = 0; at + 4 <= extra.size();) {
            const std::size_t size = zip_u16(extra, at + 2);
            if (size > extra.size() - at - 4) break;
            if (zip_u16(extra, at) == 1 && size >= 16) {
                uncompressed = zip_u64(extra, at + 4);
                compressed = zip_u64(extra, at + 12);
                return;
            }
            at += 4 + size;
        }
        fail(what + "the local header announces zip64 sizes but has no zip64 extra field");
    }

    // Members' data must lie before the central directory and not overlap one another.
    void require_disjoint(std::vector<ZipMember> members, std::uint64_t directory_offset) const {
        std::sort(members.begin(), members.end(),
                  [](const ZipMember& a, const ZipMember& b) { return a.local_offset < b.local_offset; });
        std::uint64_t end = 0;
        for (const ZipMember& member : members) {
            if (member.local_offset < end) fail("member '" + member.name + "' overlaps the member before it");
            end = member.data_begin + member.compressed;
            if (end > directory_offset) fail("member '" + member.name + "' runs into the central directory");
        }
    }

    std::string inflated(std::string_view compressed, const ZipMember& member) const;

    std::string_view file_;
    std::string where_;
};

// Raw deflate data to exactly member.uncompressed bytes, the output grown as it is produced.
inline std::string ZipReader::inflated(std::string_view compressed, const ZipMember& member) const {
    struct Stream {
        z_stream z{};
        Stream() {
            if (inflateInit2(&z, -15) != Z_OK) throw std::bad_alloc();  // -15: raw deflate, as in zip
        }
        ~Stream() { inflateEnd(&z); }
    } stream;
    const std::string what = "member '" + member.name + "': ";
    stream.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    stream.z.avail_in = static_cast<uInt>(compressed.size());
    std::string data;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        if (stream.z.total_out >= data.size()) {
            if (data.size() > member.uncompressed) fail(what + "inflates to more than its " + std::to_string(member.uncompressed) + " bytes");
            data.resize(static_cast<std::size_t>(std::min<std::uint64_t>(member.uncompressed + 1, std::max<std::size_t>(2 * data.size(), 1 << 16))));
        }
        stream.z.next_out = reinterpret_cast<Bytef*>(&data[stream.z.total_out]);
        stream.z.avail_out = static_cast<uInt>(data.size() - stream.z.total_out);
        status = ::inflate(&stream.z, Z_NO_FLUSH);
        // Output space is never 0 here, so no progress means the input ran out.
        if (status == Z_BUF_ERROR) fail(what + "the deflated data end early (truncated)");
        if (status != Z_OK && status != Z_STREAM_END)
            fail(what + "corrupt deflated data (" + std::string(stream.z.msg ? stream.z.msg : "zlib error") + ")");
    }
    if (stream.z.total_out != member.uncompressed || stream.z.avail_in != 0)
        fail(what + "inflates to " + std::to_string(stream.z.total_out) + " bytes from " +
             std::to_string(compressed.size() - stream.z.avail_in) + " of its " + std::to_string(compressed.size()) +
             " compressed bytes; the archive says " + std::to_string(member.uncompressed) + " from all of them");
    data.resize(stream.z.total_out);
    return data;
}

inline ElementType npz_element_type(const std::string& descr) {
    return descr == "<f4" ? ElementType::F32 : descr == "<f8" ? ElementType::F64 : ElementType::I64;
}
inline const char* npz_descr(ElementType type) {
    return type == ElementType::F32 ? "<f4" : type == ElementType::F64 ? "<f8" : "<i8";
}

// An .npy member's array; `shown` names it in errors ("weights.npz/encoder.0.weight.npy").
inline NamedArray npz_member_array(const std::string& name, const std::string& npy, const std::string& shown) {
    const NpyHeader header = read_npy_layout(npy, shown, {"<f4", "<f8", "<i8"},
                                             "little-endian float32 '<f4', float64 '<f8' and int64 '<i8'");
    return NamedArray{name, npz_element_type(header.descr), header.shape, npy.substr(header.data_offset)};
}

}  // namespace detail

// The arrays of the .npz archive held in `file`, in the central directory's order (see the top of
// this header for the checks); `path` names the file in errors.
inline NamedArrays parse_npz(std::string_view file, const std::string& path) {
    detail::ZipReader reader(file, path);
    const std::vector<detail::ZipMember> members = reader.members();
    NamedArrays arrays;
    for (const detail::ZipMember& member : members) {
        const std::string suffix = ".npy";
        if (member.name.size() <= suffix.size() || member.name.compare(member.name.size() - suffix.size(), suffix.size(), suffix) != 0)
            reader.fail("member '" + member.name + "' is not an .npy file (its name must end in .npy)");
        arrays.push_back(detail::npz_member_array(member.name.substr(0, member.name.size() - suffix.size()),
                                                  reader.contents(member), path + "/" + member.name));
    }
    require_unique_names(arrays, path);
    return arrays;
}

inline NamedArrays read_npz(const std::string& path) {
    const std::vector<char> file = read_file(path);
    return parse_npz(std::string_view(file.data(), file.size()), path);
}

namespace detail {

inline void put_u16(std::string& out, std::uint32_t value) {
    out += static_cast<char>(value & 0xFF);
    out += static_cast<char>((value >> 8) & 0xFF);
}
inline void put_u32(std::string& out, std::uint32_t value) {
    put_u16(out, value & 0xFFFF);
    put_u16(out, value >> 16);
}

inline std::string deflate_raw(const std::string& data) {
    z_stream stream{};
    if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::bad_alloc();
    std::string packed(deflateBound(&stream, static_cast<uLong>(data.size())), '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef*>(&packed[0]);
    stream.avail_out = static_cast<uInt>(packed.size());
    const int status = ::deflate(&stream, Z_FINISH);
    packed.resize(stream.total_out);
    deflateEnd(&stream);
    if (status != Z_STREAM_END) throw std::bad_alloc();
    return packed;
}

// The fields local and central headers share: version 2.0, flags, method, time, date, CRC, sizes.
inline void put_zip_common(std::string& out, std::uint16_t method, std::uint32_t crc, std::size_t compressed,
                           std::size_t uncompressed, std::size_t name_size) {
    put_u16(out, 20);
    put_u16(out, 0);
    put_u16(out, method);
    put_u16(out, 0);                     // 00:00:00
    put_u16(out, (0 << 9) | (1 << 5) | 1);  // 1980-01-01, the earliest DOS date (numpy's too)
    put_u32(out, crc);
    put_u32(out, static_cast<std::uint32_t>(compressed));
    put_u32(out, static_cast<std::uint32_t>(uncompressed));
    put_u16(out, static_cast<std::uint32_t>(name_size));
    put_u16(out, 0);  // extra field length
}

inline void require_fits_zip(std::uint64_t value, const std::string& what) {
    if (value >= zip64_marker) throw ArgumentError("npz: " + what + " needs zip64, which latent does not write");
}

}  // namespace detail

// The bytes of an .npz archive of `arrays` ("<name>.npy" members, in order).
inline std::string npz_bytes(const NamedArrays& arrays, NpzCompression compression = NpzCompression::Deflated) {
    require_unique_names<ArgumentError>(arrays, "npz");
    if (arrays.size() >= 0xFFFF) throw ArgumentError("npz: " + std::to_string(arrays.size()) + " arrays need zip64, which latent does not write");
    std::string archive, directory;
    for (const NamedArray& array : arrays) {
        const std::string name = array.name + ".npy";
        if (name.size() > 0xFFFF) throw ArgumentError("npz: the array name '" + array.name.substr(0, 64) + "...' is too long");
        const std::string npy = detail::npy_file_bytes(detail::npz_descr(array.type), array.shape, array.bytes);
        detail::require_fits_zip(npy.size(), "'" + name + "'");
        const std::uint16_t method = compression == NpzCompression::Deflated ? detail::zip_deflated : detail::zip_stored;
        const std::string data = method == detail::zip_deflated ? detail::deflate_raw(npy) : npy;
        const std::uint32_t crc = detail::crc32_of(npy.data(), npy.size());
        const std::size_t offset = archive.size();
        detail::require_fits_zip(offset + detail::zip_local_size + name.size() + data.size(), "the archive");
        detail::put_u32(archive, detail::zip_local_signature);
        detail::put_zip_common(archive, method, crc, data.size(), npy.size(), name.size());
        archive += name;
        archive += data;
        detail::put_u32(directory, detail::zip_central_signature);
        detail::put_u16(directory, 20);  // made by: version 2.0, MS-DOS attributes
        detail::put_zip_common(directory, method, crc, data.size(), npy.size(), name.size());
        detail::put_u16(directory, 0);  // comment length
        detail::put_u16(directory, 0);  // disk
        detail::put_u16(directory, 0);  // internal attributes
        detail::put_u32(directory, 0);  // external attributes
        detail::put_u32(directory, static_cast<std::uint32_t>(offset));
        directory += name;
    }
    detail::require_fits_zip(archive.size() + directory.size(), "the archive");
    const std::size_t directory_offset = archive.size();
    archive += directory;
    detail::put_u32(archive, detail::zip_end_signature);
    detail::put_u16(archive, 0);
    detail::put_u16(archive, 0);
    detail::put_u16(archive, static_cast<std::uint32_t>(arrays.size()));
    detail::put_u16(archive, static_cast<std::uint32_t>(arrays.size()));
    detail::put_u32(archive, static_cast<std::uint32_t>(directory.size()));
    detail::put_u32(archive, static_cast<std::uint32_t>(directory_offset));
    detail::put_u16(archive, 0);  // comment length
    return archive;
}

// Writes `arrays` to `path` as an .npz archive, atomically (core/file.hpp).
inline void write_npz(const std::string& path, const NamedArrays& arrays, NpzCompression compression = NpzCompression::Deflated) {
    const std::string bytes = npz_bytes(arrays, compression);
    write_file_atomically(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

}  // namespace latent
