// Replays files through a fuzz target in the ordinary test suite (any compiler):
//   fuzz_regression <target> <folder>...
// Files under a folder named "regressions" must each end in a latent::Error; files under any
// other folder (the seed corpus) must load. Exit status 0 when every file does what it must.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "targets.hpp"

namespace {

std::vector<std::uint8_t> bytes_of(const std::filesystem::path& path) {
    std::ifstream stream(path, std::ios::binary);
    return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
}

// Files of `folder` in name order (the order of messages does not depend on the file system).
std::vector<std::filesystem::path> files_in(const std::filesystem::path& folder) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(folder))
        if (entry.is_regular_file()) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3 || fuzz::by_name().count(argv[1]) == 0) {
        std::fprintf(stderr, "usage: fuzz_regression <target> <folder>...\n");
        return 2;
    }
    const auto& target = fuzz::by_name().at(argv[1]);
    int failures = 0, files = 0;
    for (int a = 2; a < argc; ++a) {
        const std::filesystem::path folder(argv[a]);
        const bool regressions = folder.filename() == "regressions" || folder.parent_path().filename() == "regressions";
        const fuzz::Outcome wanted = regressions ? fuzz::Outcome::LatentError : fuzz::Outcome::Loaded;
        for (const auto& path : files_in(folder)) {
            const std::vector<std::uint8_t> bytes = bytes_of(path);
            ++files;
            if (target(bytes.data(), bytes.size()) != wanted) {
                ++failures;
                std::fprintf(stderr, "%s: %s\n", path.c_str(),
                             regressions ? "loaded, but it must give a latent error" : "did not load");
            }
        }
    }
    std::printf("%s: %d files, %d failures\n", argv[1], files, failures);
    return failures == 0 && files > 0 ? 0 : 1;
}
