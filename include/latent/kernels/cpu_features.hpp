// Which instruction set the matrix kernels use, chosen once per process at run time.
//
// One binary, compiled for plain x86-64, carries kernels for AVX2+FMA and for AVX-512 and picks
// the widest one the CPU (and the operating system) supports. LATENT_ISA=portable|avx2|avx512
// forces a narrower one: to compare paths, or to run the suite's numerics through the kernel an
// older CPU would use. Asking for more than the CPU has is an error, not a silent fallback.
//
// Results depend on the path's family only: the AVX2 and AVX-512 kernels compute every element
// in the same order with the same fused multiply-adds, so they agree bit for bit; the portable
// path (Eigen's kernel, no FMA) rounds differently.
#pragma once

#include <cstdlib>
#include <string>

#include "../core/errors.hpp"

namespace latent {

enum class Isa { Portable, Avx2, Avx512 };

inline const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Avx512: return "avx512";
        case Isa::Avx2: return "avx2";
        case Isa::Portable: break;
    }
    return "portable";
}

namespace detail {

// The widest kernel this CPU and its operating system can run.
inline Isa detected_isa() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the vector registers (XGETBV).
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return Isa::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
    return Isa::Portable;
}

// The path LATENT_ISA asks for (`requested`, may be empty), given what the CPU has.
inline Isa choose_isa(const std::string& requested, Isa available) {
    if (requested.empty()) return available;
    Isa wanted = Isa::Portable;
    if (requested == "avx512") wanted = Isa::Avx512;
    else if (requested == "avx2") wanted = Isa::Avx2;
    else if (requested != "portable")
        throw ArgumentError("LATENT_ISA: '" + requested + "' is not one of portable, avx2, avx512");
    if (static_cast<int>(wanted) > static_cast<int>(available))
        throw ArgumentError(std::string("LATENT_ISA=") + requested + ": this CPU supports at most " +
                            isa_name(available));
    return wanted;
}

}  // namespace detail

// The kernel family in use: LATENT_ISA if set, else the widest the CPU supports. Read once, so
// a process never mixes paths.
inline Isa active_isa() {
    static const Isa isa = [] {
        const char* requested = std::getenv("LATENT_ISA");
        return detail::choose_isa(requested ? requested : "", detail::detected_isa());
    }();
    return isa;
}

namespace detail {

// GCC only: its optimize attribute keeps multiply-adds unfused in these copies whatever the
// build's -ffp-contract and -march, and vectorizes them at -O2 as well (whose cost model
// refuses loops as long as a logarithm's). Clang has no such attribute: there run_vectorized
// runs the loops as the build compiles them.
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
#define LATENT_VECTORIZED_COPIES 1
template <class Loops>
__attribute__((target("avx512f"), optimize("fp-contract=off", "tree-vectorize", "vect-cost-model=dynamic"))) void
run_for_avx512(const Loops& loops) {
    loops();
}
template <class Loops>
__attribute__((target("avx2"), optimize("fp-contract=off", "tree-vectorize", "vect-cost-model=dynamic"))) void
run_for_avx2(const Loops& loops) {
    loops();
}
template <class Loops>
__attribute__((optimize("fp-contract=off", "tree-vectorize", "vect-cost-model=dynamic"))) void
run_portable(const Loops& loops) {
    loops();
}
#else
#define LATENT_VECTORIZED_COPIES 0
#endif

}  // namespace detail

// Runs loops() compiled for the vector unit of `isa` (default: active_isa()): plain C++ loops,
// written once, that the compiler vectorizes 16, 8 or 4 floats wide. The rule: `loops` is a
// lambda marked __attribute__((always_inline)), and every function it calls for the work is
// always_inline too, since only code inlined into the copies above is compiled for their
// instruction set (Eigen's expressions are not: their packets are fixed by the build's flags),
// and choices inside the loops are selects on integer bits, not branches (see
// kernels/logarithm.hpp). No copy fuses a multiply and an add, and vectorizing reorders no
// floating-point operation (the compiler does that only under -ffast-math), so the three give
// the same bits as each other and as a plain x86-64 build.
template <class Loops> void run_vectorized(Isa isa, const Loops& loops) {
#if LATENT_VECTORIZED_COPIES
    switch (isa) {
        case Isa::Avx512: detail::run_for_avx512(loops); return;
        case Isa::Avx2: detail::run_for_avx2(loops); return;
        case Isa::Portable: detail::run_portable(loops); return;
    }
#endif
    static_cast<void>(isa);
    loops();
}
template <class Loops> void run_vectorized(const Loops& loops) { run_vectorized(active_isa(), loops); }

}  // namespace latent
