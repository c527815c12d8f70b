// The libFuzzer harness of every loader: built once per target as fuzz_<target>, it runs the
// target its own program name names (fuzz_npy runs fuzz::npy; see targets.hpp).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "targets.hpp"

namespace {

const std::function<fuzz::Outcome(const std::uint8_t*, std::size_t)>* target = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    std::string name = *argc > 0 ? (*argv)[0] : "";
    name = name.substr(name.find_last_of('/') + 1);
    const auto found = fuzz::by_name().find(name.rfind("fuzz_", 0) == 0 ? name.substr(5) : name);
    if (found == fuzz::by_name().end()) {
        std::fprintf(stderr, "%s: the program name must be fuzz_<target>, a target of tests/fuzz/targets.hpp\n",
                     name.c_str());
        std::exit(2);
    }
    target = &found->second;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    (*target)(data, size);
    return 0;
}
