#include <catch2/catch.hpp>

#include <latent/latent.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "helpers.hpp"

using namespace latent;

TEST_CASE("errors: numbers in messages have 6 significant digits", "[core][errors]") {
    CHECK(detail::readable_number(static_cast<double>(-0.4333333f)) == "-0.433333");  // not -0.43333330750465393
    CHECK(detail::readable_number(1e-8) == "1e-08");
    CHECK(detail::readable_number(300) == "300");
    CHECK(detail::readable_number(0.5) == "0.5");
    CHECK(detail::readable_number(1234567.0) == "1.23457e+06");
    CHECK(detail::readable_number(std::nan("")) == "nan");
    test::expect_error<ArgumentError>([] { Dropout<float>(1.5); }, "got 1.5");
    test::expect_error<ArgumentError>([] { MinMaxScaler<float>(2, 1); }, "got [2, 1]");
}

TEST_CASE("rng: same seed gives the same stream, different seeds differ", "[core][random]") {
    Rng a(42), b(42), c(43);
    for (int i = 0; i < 100; ++i) {
        const auto value = a.next_u64();
        CHECK(value == b.next_u64());
        CHECK(value != c.next_u64());
    }
}

TEST_CASE("rng: xoshiro256** reference output for seed 0", "[core][random]") {
    // SplitMix64 from state 0 gives the first seed word 0xE220A8397B1DCDAF (published test value).
    std::uint64_t state = 0;
    CHECK(splitmix64(state) == 0xE220A8397B1DCDAFull);
}

TEST_CASE("rng: uniform, normal and below have the right moments", "[core][random]") {
    Rng rng(7);
    const int count = 200000;
    double sum = 0, sum_sq = 0, normal_sum = 0, normal_sq = 0;
    std::vector<int> bins(5, 0);
    for (int i = 0; i < count; ++i) {
        const double u = rng.uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        sum += u;
        sum_sq += u * u;
        const double z = rng.normal();
        normal_sum += z;
        normal_sq += z * z;
        bins[rng.below(5)]++;
    }
    CHECK(sum / count == Approx(0.5).margin(0.005));
    CHECK(sum_sq / count - 0.25 == Approx(1.0 / 12).margin(0.002));
    CHECK(normal_sum / count == Approx(0.0).margin(0.01));
    CHECK(normal_sq / count == Approx(1.0).margin(0.01));
    for (int bin : bins) CHECK(bin == Approx(count / 5).epsilon(0.02));
}

TEST_CASE("rng: derived seeds give independent streams", "[core][random]") {
    std::set<std::uint64_t> seeds;
    for (std::uint64_t stream = 0; stream < 4; ++stream)
        for (std::uint64_t epoch = 0; epoch < 50; ++epoch) seeds.insert(derive_seed(1, stream, epoch));
    CHECK(seeds.size() == 200);
    CHECK(derive_seed(1, 2, 3) == derive_seed(1, 2, 3));
}

TEST_CASE("init: Glorot-uniform and He-normal ranges and spread", "[core][random]") {
    Rng rng(1);
    std::vector<float> w(20000);
    glorot_uniform(w.data(), static_cast<Index>(w.size()), 300, 100, rng);
    const double limit = std::sqrt(6.0 / 400);
    double sum_sq = 0;
    for (float v : w) {
        REQUIRE(std::abs(v) <= limit);
        sum_sq += double(v) * v;
    }
    CHECK(sum_sq / w.size() == Approx(limit * limit / 3).epsilon(0.03));
    he_normal(w.data(), static_cast<Index>(w.size()), 50, rng);
    sum_sq = 0;
    for (float v : w) sum_sq += double(v) * v;
    CHECK(sum_sq / w.size() == Approx(2.0 / 50).epsilon(0.03));
}

TEST_CASE("shape: size, equality and text", "[core][shape]") {
    const Shape shape{3, 28, 14};
    CHECK(shape.size() == 3 * 28 * 14);
    CHECK(shape == Shape{3, 28, 14});
    CHECK(shape != Shape{3, 14, 28});
    CHECK(shape.str() == "(3, 28, 14)");
    CHECK(batch_shape_str(8, shape) == "(8, 3, 28, 14)");
    const Tensor<float> x = make_tensor<float>(2, shape);
    CHECK(sample_shape(x) == shape);
    CHECK(x.dimension(0) == 2);
}

TEST_CASE("tensor views: batch slices and matrix views share memory", "[core][tensor]") {
    Tensor<float> x = test::random_tensor<float>(4, {2, 3, 1}, 9);
    auto slice = batch_slice<float>(view(x), 1, 2);
    CHECK(slice.dimension(0) == 2);
    CHECK(slice.data() == x.data() + 6);
    auto matrix = as_matrix<float>(view(x));
    CHECK(matrix.rows() == 4);
    CHECK(matrix.cols() == 6);
    matrix(2, 5) = 123.0f;
    CHECK(x(2, 1, 2, 0) == 123.0f);
}

TEST_CASE("config: values round-trip exactly through text", "[core][config]") {
    Config config;
    config.set("filters", 32).set("alpha", 0.1).set("padding", "same").set("tiny", 1e-300);
    CHECK(config.get_int("filters") == 32);
    CHECK(config.get_double("alpha") == 0.1);
    CHECK(config.get_double("tiny") == 1e-300);
    CHECK(config.get_string("padding") == "same");
    CHECK(config.str() == "filters=32 alpha=0.1 padding=same tiny=1e-300");
    CHECK_THROWS_AS(config.get_int("missing"), FormatError);
    CHECK_THROWS_AS(config.get_int("padding"), FormatError);
}

TEST_CASE("threads: set_num_threads validates and parallel_for visits each index once",
          "[core][threads]") {
    const int saved = num_threads();
    CHECK_THROWS_AS(set_num_threads(0), ArgumentError);
    set_num_threads(2);
    CHECK(num_threads() == 2);
    std::vector<std::atomic<int>> visits(1000);
    parallel_for(1000, [&](Index i) { visits[static_cast<std::size_t>(i)]++; });
    for (const auto& v : visits) CHECK(v.load() == 1);
    set_num_threads(saved);
}

TEST_CASE("threads: an exception inside parallel_for reaches the caller", "[core][threads]") {
    const int saved = num_threads();
    set_num_threads(2);
    CHECK_THROWS_AS(parallel_for(64, [](Index i) {
                        if (i == 37) throw ShapeError("bad chunk");
                    }),
                    ShapeError);
    set_num_threads(saved);
}

TEST_CASE("threads: worker numbers stay below the loop's thread count, after a wider loop too",
          "[core][threads]") {
    const int saved = num_threads();
    set_num_threads(4);
    std::vector<std::atomic<int>> visits(64);
    parallel_for(64, [&](Index i) { visits[static_cast<std::size_t>(i)]++; });  // starts 3 pool threads
    for (int threads : {2, 3}) {
        set_num_threads(threads);
        std::atomic<int> highest{-1}, total{0};
        for (int repeat = 0; repeat < 200; ++repeat)
            parallel_for(16, [&](Index, int worker) {
                int seen = highest.load();
                while (worker > seen && !highest.compare_exchange_weak(seen, worker)) {}
                total++;
            });
        CHECK(highest.load() < threads);
        CHECK(total.load() == 200 * 16);
    }
    set_num_threads(4);
    std::atomic<int> highest{-1};
    parallel_for(2, [&](Index, int worker) { highest = std::max(highest.load(), worker); });
    CHECK(highest.load() < 2);  // a loop of 2 iterations runs on at most 2 threads
    set_num_threads(saved);
}

TEST_CASE("threads: thousands of short loops in a row each visit every index once", "[core][threads]") {
    const int saved = num_threads();
    set_num_threads(2);
    std::vector<int> visits(8);
    bool all_once = true;
    for (int loop = 0; loop < 20000; ++loop) {
        const Index count = 1 + loop % 8;
        std::fill(visits.begin(), visits.end(), 0);
        parallel_for(count, [&](Index i) { visits[static_cast<std::size_t>(i)]++; });
        for (Index i = 0; i < 8; ++i) all_once &= visits[static_cast<std::size_t>(i)] == (i < count ? 1 : 0);
    }
    CHECK(all_once);
    set_num_threads(saved);
}

TEST_CASE("threads: a loop inside a loop's body, and loops from two user threads at once, run all "
          "their iterations", "[core][threads]") {
    const int saved = num_threads();
    set_num_threads(2);
    std::vector<std::atomic<int>> visits(16 * 16);
    parallel_for(16, [&](Index outer) {
        parallel_for(16, [&](Index inner) { visits[static_cast<std::size_t>(outer * 16 + inner)]++; });
    });
    for (const auto& v : visits) CHECK(v.load() == 1);

    auto sum_of_loops = [](long long& sum) {
        for (int loop = 0; loop < 500; ++loop) {
            std::vector<long long> parts(32);
            parallel_for(32, [&](Index i) { parts[static_cast<std::size_t>(i)] = i + loop; });
            for (long long part : parts) sum += part;
        }
    };
    long long first = 0, second = 0;
    std::thread other([&] { sum_of_loops(second); });
    sum_of_loops(first);
    other.join();
    const long long expected = 500LL * (31 * 32 / 2) + 32LL * (499 * 500 / 2);
    CHECK(first == expected);
    CHECK(second == expected);
    set_num_threads(saved);
}

// A check over an array, at every length through 40 (every tail of every vector width) and for
// a bad value at every position, on each path this machine has.
template <class T> void check_all_finite_on_every_path() {
    using limits = std::numeric_limits<T>;
    for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512}) {
        if (static_cast<int>(isa) > static_cast<int>(detail::detected_isa())) continue;
        INFO("path " << isa_name(isa) << ", " << sizeof(T) * 8 << "-bit");
        for (Index count = 0; count <= 40; ++count) {
            std::vector<T> values(static_cast<std::size_t>(count), T(1));
            if (count > 2) values[1] = limits::max(), values[2] = limits::denorm_min();
            CHECK(kernels::all_finite(isa, values.data(), count));
            for (Index bad = 0; bad < count; ++bad)
                for (T value : {limits::quiet_NaN(), limits::infinity(), -limits::infinity()}) {
                    std::vector<T> with_bad = values;
                    with_bad[static_cast<std::size_t>(bad)] = value;
                    CHECK_FALSE(kernels::all_finite(isa, with_bad.data(), count));
                }
        }
    }
}

TEST_CASE("kernels::all_finite: finds a NaN or an infinity anywhere, on every path, float and double",
          "[core][kernels]") {
    check_all_finite_on_every_path<float>();
    check_all_finite_on_every_path<double>();
}

TEST_CASE("threads: after a loop that a pool thread held up, loops run on the caller for a while",
          "[core][threads]") {
    using Clock = std::chrono::steady_clock;
    const int saved = num_threads();
    set_num_threads(2);
    // The caller's iteration takes 0.2 ms, the pool thread's 20 ms: the loop is far slower than
    // the caller alone would have been, which pauses the pool for at least 1 ms. An attempt
    // counts only when the rule's premises held: the pool thread took an iteration, the caller's
    // own share was short (it was not descheduled itself), and the next loop started well
    // within the pause (0.5 ms). On a busy machine an attempt may miss one; then it is retried.
    int judged = 0;
    for (int attempt = 0; attempt < 200 && judged < 3; ++attempt) {
        std::atomic<bool> pool_thread_ran{false};
        Clock::duration caller_share{};
        const Clock::time_point loop_start = Clock::now();
        parallel_for(2, [&](Index, int worker) {
            if (worker == 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(200));
                caller_share = Clock::now() - loop_start;
                return;
            }
            pool_thread_ran = true;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        });
        const Clock::time_point loop_end = Clock::now();
        if (!pool_thread_ran || caller_share > std::chrono::milliseconds(2)) continue;

        std::atomic<int> highest{-1};
        std::atomic<bool> started{false};
        Clock::time_point next_start{};
        parallel_for(64, [&](Index, int worker) {
            if (!started.exchange(true)) next_start = Clock::now();
            std::this_thread::sleep_for(std::chrono::microseconds(1));
            int seen = highest.load();
            while (worker > seen && !highest.compare_exchange_weak(seen, worker)) {
            }
        });
        if (next_start - loop_end > std::chrono::microseconds(500)) continue;
        CHECK(highest.load() == 0);
        ++judged;
    }
    CHECK(judged >= 1);
    set_num_threads(saved);
}

TEST_CASE("threads: batch chunks depend on shape only and cover the batch", "[core][threads]") {
    for (Index batch : {1, 2, 7, 32, 128, 1000}) {
        const Chunks chunks = batch_chunks(batch, 196);
        Index covered = 0;
        for (Index c = 0; c < chunks.count(); ++c) {
            CHECK(chunks.begin(c) == covered);
            CHECK(chunks.size(c) >= 1);
            covered += chunks.size(c);
        }
        CHECK(covered == batch);
        if (batch >= 8) CHECK(chunks.count() >= 8);
    }
}

#include <filesystem>
#include <fstream>

TEST_CASE("file: atomic write replaces the file, a failing writer leaves the old one intact",
          "[core][file]") {
    const auto dir = std::filesystem::temp_directory_path() / "latent_test_atomic";
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "value.txt").string();
    write_file_atomically(path, [](std::ostream& out) { out << "first"; });
    CHECK(std::string(read_file(path).data(), 5) == "first");
    CHECK_THROWS_AS(write_file_atomically(path,
                                          [](std::ostream& out) {
                                              out << "sec";
                                              throw IoError("simulated failure half-way");
                                          }),
                    IoError);
    const auto bytes = read_file(path);
    CHECK(std::string(bytes.begin(), bytes.end()) == "first");
    std::size_t leftovers = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) leftovers += entry.path() != path;
    CHECK(leftovers == 0);  // the temporary file was removed
    CHECK_THROWS_AS(read_file((dir / "missing").string()), IoError);
    CHECK_THROWS_AS(write_file_atomically((dir / "no/such/dir/x").string(), [](std::ostream&) {}), IoError);
    std::filesystem::remove_all(dir);
}

TEST_CASE("threads: loops with little work stay on the calling thread", "[core][threads]") {
    const int saved = num_threads();
    set_num_threads(2);
    std::vector<int> workers(64, -1);
    parallel_for(64, min_parallel_work - 1, [&](Index i, int worker) { workers[static_cast<std::size_t>(i)] = worker; });
    for (int worker : workers) CHECK(worker == 0);
    std::vector<std::atomic<int>> visits(64);
    parallel_for(64, min_parallel_work, [&](Index i) { visits[static_cast<std::size_t>(i)]++; });
    for (const auto& v : visits) CHECK(v.load() == 1);
    set_num_threads(saved);
}

// Spins until `until`, calling observe at every pass; returns the first verdict that is not
// `open`, or `open` when none came.
static detail::CoreWatch::Verdict watch_until(detail::CoreWatch& watch, std::chrono::steady_clock::time_point until) {
    using Verdict = detail::CoreWatch::Verdict;
    while (std::chrono::steady_clock::now() < until) {
        const Verdict verdict = watch.observe(std::chrono::steady_clock::now());
        if (verdict != Verdict::open) return verdict;
    }
    return Verdict::open;
}

TEST_CASE("threads: the core watch says a caller shares its core when more threads are busy than "
          "there are cores, and drops a stale window",
          "[core][threads]") {
    using Clock = std::chrono::steady_clock;
    using Verdict = detail::CoreWatch::Verdict;
    if (detail::thread_run_delay().count() < 0) {
        WARN("this system does not report a thread's run delay: the core watch is off, nothing to test");
        return;
    }
    detail::CoreWatch watch;
    CHECK(watch.observe(Clock::now()) == Verdict::open);  // the first call opens a window
    CHECK(watch.observe(Clock::now()) == Verdict::open);  // shorter than a window
    std::this_thread::sleep_for(detail::CoreWatch::stale + std::chrono::milliseconds(10));
    CHECK(watch.observe(Clock::now()) == Verdict::open);  // dropped and reopened, not judged

    // One busy thread per core besides this one: this thread must wait for a core about a third
    // of the time on two cores (more on a machine that is busy already).
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    std::atomic<bool> stop{false};
    std::vector<std::thread> busy;
    for (unsigned i = 0; i < cores; ++i)
        busy.emplace_back([&stop] {
            while (!stop.load(std::memory_order_relaxed)) {
            }
        });
    Verdict verdict = Verdict::open;
    const Clock::time_point until = Clock::now() + std::chrono::seconds(5);
    while (verdict != Verdict::shared && Clock::now() < until) verdict = watch_until(watch, until);
    stop = true;
    for (std::thread& thread : busy) thread.join();
    CHECK(verdict == Verdict::shared);
}

TEST_CASE("scratch: an aligned array starts on a cache line, holds zeros at first and copies its values",
          "[core]") {
    detail::AlignedArray<float> empty;
    CHECK(empty.size() == 0);
    CHECK(empty.data() == nullptr);
    for (Index size : {1, 7, 1000}) {
        detail::AlignedArray<float> values(size);
        CHECK(reinterpret_cast<std::uintptr_t>(values.data()) % 64 == 0);
        for (Index i = 0; i < size; ++i) CHECK(values.data()[i] == 0.0f);
        for (Index i = 0; i < size; ++i) values.data()[i] = static_cast<float>(i) + 0.5f;
        const detail::AlignedArray<float> copy = values;
        REQUIRE(copy.size() == size);
        CHECK(copy.data() != values.data());
        CHECK(reinterpret_cast<std::uintptr_t>(copy.data()) % 64 == 0);
        for (Index i = 0; i < size; ++i) CHECK(copy.data()[i] == values.data()[i]);
        detail::AlignedArray<float> assigned;
        assigned = copy;
        CHECK(assigned.size() == size);
        CHECK(assigned.data()[size - 1] == copy.data()[size - 1]);
        detail::AlignedArray<float> moved = std::move(assigned);
        CHECK(moved.size() == size);
        CHECK(assigned.size() == 0);  // a moved-from array is empty, not a size without values
        CHECK(assigned.data() == nullptr);
        moved = detail::AlignedArray<float>();
        CHECK(moved.size() == 0);
    }
}
