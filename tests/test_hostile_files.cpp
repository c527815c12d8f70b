// Saving over hostile or unlucky conditions: links, permissions, directories, leftover
// temporaries and a process killed while it saves.
#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

using namespace latent;
namespace fs = std::filesystem;

namespace {

// A fresh empty folder under the system's temporary directory.
fs::path fresh_folder(const std::string& name) {
    const fs::path folder = fs::temp_directory_path() / ("latent_hostile_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(folder);
    fs::create_directories(folder);
    return folder;
}

void save_text(const fs::path& path, const std::string& text) {
    write_file_atomically(path.string(), [&](std::ostream& out) { out << text; });
}

std::string load_text(const fs::path& path) {
    const std::vector<char> bytes = read_file(path.string());
    return std::string(bytes.begin(), bytes.end());
}

::mode_t permission_bits(const fs::path& path) {
    struct ::stat status {};
    REQUIRE(::stat(path.c_str(), &status) == 0);
    return status.st_mode & 07777;
}

// Files in `folder` whose name starts with `prefix`.
int count_with_prefix(const fs::path& folder, const std::string& prefix) {
    int count = 0;
    for (const auto& entry : fs::directory_iterator(folder))
        count += entry.path().filename().string().rfind(prefix, 0) == 0;
    return count;
}

// The id of a process that has exited and been reaped.
::pid_t dead_process_id() {
    const ::pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    int status = 0;
    ::waitpid(child, &status, 0);
    return child;
}

}  // namespace

TEST_CASE("saving keeps the target's permission bits, and a new file gets 0666 less the umask",
          "[hostile][file]") {
    const fs::path folder = fresh_folder("mode");
    const fs::path path = folder / "private.bin";
    save_text(path, "one");
    const ::mode_t mask = ::umask(022);
    ::umask(mask);
    CHECK(permission_bits(path) == (0666 & ~mask));
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
    save_text(path, "two");
    CHECK(permission_bits(path) == 0600);
    CHECK(load_text(path) == "two");
    fs::remove_all(folder);
}

TEST_CASE("saving through a symbolic link replaces the file it points to and keeps the link",
          "[hostile][file]") {
    const fs::path folder = fresh_folder("link");
    fs::create_directories(folder / "real");
    save_text(folder / "real" / "model.bin", "old");
    fs::create_symlink("real/model.bin", folder / "link.bin");
    save_text(folder / "link.bin", "new");
    CHECK(fs::is_symlink(folder / "link.bin"));
    CHECK(load_text(folder / "real" / "model.bin") == "new");
    // A dangling link: the file it names is created.
    fs::create_symlink("real/created.bin", folder / "dangling.bin");
    save_text(folder / "dangling.bin", "made");
    CHECK(load_text(folder / "real" / "created.bin") == "made");
    CHECK(count_with_prefix(folder / "real", "model.bin.tmp-") == 0);
    fs::remove_all(folder);
}

TEST_CASE("a directory passed as a file gives IoError when saving and when reading", "[hostile][file]") {
    const fs::path folder = fresh_folder("directory");
    CHECK_THROWS_AS(save_text(folder, "x"), IoError);
    CHECK_THROWS_WITH(read_file(folder.string()), Catch::Matchers::Contains("is a directory"));
    CHECK_THROWS_AS(load_npy<float>(folder.string()), IoError);
    fs::remove_all(folder);
}

TEST_CASE("read_file refuses a file longer than the caller's limit before reading it", "[hostile][file]") {
    const fs::path folder = fresh_folder("limit");
    save_text(folder / "ten", "0123456789");
    CHECK(read_file((folder / "ten").string(), 10).size() == 10);
    CHECK_THROWS_AS(read_file((folder / "ten").string(), 9), FormatError);
    fs::remove_all(folder);
}

TEST_CASE("saving removes temporaries of dead processes and leaves those of live ones", "[hostile][file]") {
    const fs::path folder = fresh_folder("leftovers");
    const fs::path target = folder / "model.bin";
    const std::string dead = "model.bin.tmp-" + std::to_string(dead_process_id()) + "-0123456789abcdef";
    const std::string live = "model.bin.tmp-" + std::to_string(::getpid()) + "-fedcba9876543210";
    const std::string other = "other.bin.tmp-" + std::to_string(dead_process_id()) + "-0123456789abcdef";
    for (const std::string& name : {dead, live, other}) save_text(folder / name, "leftover");
    save_text(target, "saved");
    CHECK_FALSE(fs::exists(folder / dead));
    CHECK(fs::exists(folder / live));
    CHECK(fs::exists(folder / other));  // another target's temporaries are not this save's business
    fs::remove_all(folder);
}

TEST_CASE("kill -9 during save: the previous file always loads and no temporaries pile up",
          "[hostile][file][kill]") {
    const fs::path folder = fresh_folder("kill");
    const fs::path path = folder / "codes.npy";
    const Index values = Index{1} << 22;  // 16 MiB of float32 per save
    Tensor<float> generation(1, 1, 1, values);
    generation.setConstant(0.0f);
    save_npy(path.string(), generation);
    std::mt19937 random(12);
    std::uniform_int_distribution<int> delay_ms(1, 120);
    constexpr int kills = 30;
    for (int kill = 0; kill < kills; ++kill) {
        const ::pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            Tensor<float> values_to_save(1, 1, 1, values);
            for (int round = 1;; ++round) {
                values_to_save.setConstant(static_cast<float>(kill * 1000 + round));
                save_npy(path.string(), values_to_save);
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        REQUIRE(WIFSIGNALED(status));
        const Tensor<float> loaded = load_npy<float>(path.string());
        REQUIRE(loaded.size() == values);
        const float first = loaded.data()[0];
        CHECK(Eigen::Map<const Eigen::ArrayXf>(loaded.data(), values).cwiseEqual(first).all());
        // Each save first removes what dead savers left, so at most the last child's is there.
        CHECK(count_with_prefix(folder, "codes.npy.tmp-") <= 1);
    }
    save_npy(path.string(), generation);  // the next save clears what the killed ones left
    CHECK(count_with_prefix(folder, "codes.npy.tmp-") == 0);
    fs::remove_all(folder);
}
