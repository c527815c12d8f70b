#!/usr/bin/env bash
# Compile time and peak memory of the umbrella headers (README, "What is in the box"):
#   1. -fsyntax-only on a file that includes only latent/nn.hpp, latent/data.hpp or latent/latent.hpp;
#   2. a full -O3 compile and link of a small program of each half (nn_program.cpp,
#      data_program.cpp), with its own umbrella header and with latent/latent.hpp.
# Each figure is the minimum of REPEATS runs (default 3) of GNU time's wall clock, CPU time
# (user + system: less sensitive than the wall clock to other processes on a shared machine) and
# maximum resident set size. Usage: tests/benchmarks/compile_time/compile_time.sh [REPEATS]  (from anywhere)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
repeats="${1:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
flags=(-std=c++17 -O3 -I "$root/include" -isystem /usr/include/eigen3 -isystem /usr/include/stb)
libraries=(-lstb -lpng -ljpeg -lz)

# smaller <a> <b>: the smaller of two decimal numbers ("" counts as none).
smaller() { if [[ -z "$2" ]] || awk "BEGIN {exit !($1 < $2)}"; then echo "$1"; else echo "$2"; fi; }

# measure <label> <g++ arguments...>: prints the label and the least wall time, CPU time and peak RSS.
measure() {
    local label=$1 best_wall="" best_cpu="" best_kb=""
    shift
    for _ in $(seq "$repeats"); do
        /usr/bin/time -v -o "$work/time.txt" g++ "$@" >/dev/null
        local wall cpu kb
        wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, p, ":"); s = 0; for (i = 1; i <= n; ++i) s = s * 60 + p[i]; print s}' "$work/time.txt")
        cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$work/time.txt")
        kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
        best_wall=$(smaller "$wall" "$best_wall")
        best_cpu=$(smaller "$cpu" "$best_cpu")
        best_kb=$(smaller "$kb" "$best_kb")
    done
    printf '%-44s %6.1f s wall %6.1f s CPU %6d MB\n' "$label" "$best_wall" "$best_cpu" $((best_kb / 1024))
}

echo "g++ $(g++ -dumpfullversion), minimum of $repeats runs: wall time, CPU time, peak resident memory"
for header in nn data latent; do
    echo "#include <latent/$header.hpp>" >"$work/include_$header.cpp"
    measure "-fsyntax-only, latent/$header.hpp" "${flags[@]}" -fsyntax-only "$work/include_$header.cpp"
done
for half in nn data; do
    for header in "$half" latent; do
        measure "-O3 ${half}_program.cpp, latent/$header.hpp" "${flags[@]}" "-DUMBRELLA=<latent/$header.hpp>" \
            "$here/${half}_program.cpp" -o "$work/program" "${libraries[@]}"
    done
done
