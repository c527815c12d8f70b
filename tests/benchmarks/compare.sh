#!/usr/bin/env bash
# latent vs PyTorch on the same CPU: builds latent_bench (-O3 -march=native) in build-bench, runs
# every workload in both, alternating latent / PyTorch (A B A B ...), one fresh process per
# measurement, and prints one table of medians and one RATIO line per workload and batch size.
#
#   tests/benchmarks/compare.sh [--pairs N] [--quick] [--workloads W1,W2] [--seconds S]
#                               [--omp-wait-policy active|passive]
#
#   --pairs N        alternating latent/PyTorch pairs per measurement (default 5; medians over them)
#   --quick          1 pair, 0.5 s per process, 1 warm-up step: a smoke test, not a measurement
#   --workloads LIST comma-separated subset of W1,W2,W3,W4 (default: all)
#   --seconds S      timed seconds per process (default 2)
#   --omp-wait-policy active|passive
#                    sets OMP_WAIT_POLICY for both programs (default: unset, as a user runs them);
#                    passive keeps 2-thread runs usable on a machine busy with other work
# Installs what is missing (python3-torch, libopenblas0-pthread, the build tools) with apt-get,
# as root or through sudo. Raw RESULT lines go to build-bench/compare-results.txt.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
python=/usr/bin/python3  # Debian's: another python3 earlier in PATH may lack torch
pairs=5
seconds=2
warmup=2
workloads="W1,W2,W3,W4"
wait_policy=""

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($# > 0)); do
    case $1 in
        --pairs) pairs=$2; shift 2 ;;
        --quick) pairs=1; seconds=0.5; warmup=1; shift ;;
        --workloads) workloads=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --omp-wait-policy) wait_policy=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $pairs =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --pairs needs a positive integer" >&2; exit 2; }
case $wait_policy in
    "") ;;
    active | passive) export OMP_WAIT_POLICY=$wait_policy ;;
    *) echo "compare.sh: --omp-wait-policy is active or passive" >&2; exit 2 ;;
esac

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "compare.sh: installing packages needs root or sudo" >&2
        return 1
    fi
}

# --- dependencies -------------------------------------------------------------------------------
# python3-torch alone runs dense layers on the reference BLAS (about 17x slower): OpenBLAS too.
packages=(build-essential cmake pkg-config libeigen3-dev zlib1g-dev libstb-dev python3 python3-torch
          libopenblas0-pthread)
missing=()
for package in "${packages[@]}"; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)" == installed ]] || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    echo "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- build --------------------------------------------------------------------------------------
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLATENT_BUILD_BENCHMARKS=ON \
    -DLATENT_BUILD_TESTS=OFF -DLATENT_BUILD_EXAMPLES=OFF -DLATENT_INSTALL=OFF >"$build/compare-build.log" 2>&1 &&
    cmake --build "$build" --target latent_bench -j "$(nproc)" >>"$build/compare-build.log" 2>&1 ||
    { cat "$build/compare-build.log" >&2; exit 1; }
latent_bench="$build/tests/benchmarks/latent_bench"

# PyTorch runs with OpenBLAS choosing its own kernel for this CPU: the machine-wide
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from its environment alone.
torch_run() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/torch_bench.py" "$@"; }

# --- header -------------------------------------------------------------------------------------
started=$SECONDS
echo "latent vs PyTorch -- $(date '+%Y-%m-%d %H:%M:%S %Z')"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) logical CPUs; threads measured: 1 and 2"
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
echo "latent_bench: $("$compiler" --version | head -1), -O3 -march=native; training through fit()"
torch_run --blas-info
echo "pairs: $pairs (alternating latent, PyTorch), $seconds s timed per process after $warmup warm-up steps"
echo "OMP_WAIT_POLICY: ${OMP_WAIT_POLICY:-unset}"
echo

# --- measurements -------------------------------------------------------------------------------
results="$build/compare-results.txt"
: >"$results"
IFS=',' read -r -a selected <<<"$workloads"
mapfile -t configs < <("$latent_bench" --list)
for workload in "${selected[@]}"; do
    printf '%s\n' "${configs[@]}" | grep -q "^$workload " ||
        { echo "compare.sh: unknown workload '$workload' (known: W1, W2, W3, W4)" >&2; exit 2; }
done
for config in "${configs[@]}"; do
    read -r workload batch _ <<<"$config"
    [[ " ${selected[*]} " == *" $workload "* ]] || continue
    for mode in train infer; do
        for threads in 1 2; do
            printf '%-3s batch %-4s %-5s threads %s:' "$workload" "$batch" "$mode" "$threads"
            for ((pair = 1; pair <= pairs; ++pair)); do
                common=(--workload "$workload" --batch "$batch" --threads "$threads" --mode "$mode"
                        --seconds "$seconds" --warmup "$warmup")
                a=$("$latent_bench" "${common[@]}" | grep '^RESULT')
                b=$(torch_run "${common[@]}" | grep '^RESULT')
                printf '%s\n%s\n' "$a" "$b" >>"$results"
                printf ' %s/%s' "$(sed 's/.*img_per_s=\([^ ]*\).*/\1/' <<<"$a")" \
                    "$(sed 's/.*img_per_s=\([^ ]*\).*/\1/' <<<"$b")"
            done
            echo
        done
    done
done
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg); measurements took $((SECONDS - started)) s"
echo

# --- table and RATIO lines ----------------------------------------------------------------------
"$python" - "$results" <<'EOF'
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)  # (framework, workload, batch, threads, mode) -> [fields]
order = []
for line in open(sys.argv[1]):
    fields = dict(item.split("=", 1) for item in line.split()[1:])
    key = (fields["workload"], int(fields["batch"]))
    if key not in order:
        order.append(key)
    runs[(fields["framework"],) + key + (int(fields["threads"]), fields["mode"])].append(fields)

def median(framework, workload, batch, threads, mode, field):
    values = [float(f[field]) for f in runs.get((framework, workload, batch, threads, mode), [])]
    return statistics.median(values) if values else float("nan")

def spread(framework, workload, batch, threads, mode):
    values = [float(f["img_per_s"]) for f in runs.get((framework, workload, batch, threads, mode), [])]
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0

print("median img/s over the pairs; ratio = latent / PyTorch at the same thread count; peak RSS and")
print("CPU use (CPU seconds per second; = threads when the run had the CPUs to itself) of the training runs")
header = (f"{'workload':<8} {'batch':>5} {'thr':>3} | {'train latent':>12} {'PyTorch':>9} {'ratio':>6} | "
          f"{'infer latent':>12} {'PyTorch':>9} {'ratio':>6} | {'RSS MB latent':>13} {'PyTorch':>8} | "
          f"{'cpu latent':>10} {'PyTorch':>7}")
print(header)
print("-" * len(header))
worst = (0.0, "")
for workload, batch in order:
    for threads in (1, 2):
        cells = []
        for mode in ("train", "infer"):
            ours = median("latent", workload, batch, threads, mode, "img_per_s")
            theirs = median("pytorch", workload, batch, threads, mode, "img_per_s")
            cells.append(f"{ours:12.1f} {theirs:9.1f} {ours / theirs:6.2f}")
            for framework in ("latent", "pytorch"):
                s = spread(framework, workload, batch, threads, mode)
                if s > worst[0]:
                    worst = (s, f"{framework} {workload} batch {batch} {mode} {threads} thread(s)")
        rss_ours = median("latent", workload, batch, threads, "train", "peak_rss_kb") / 1024
        rss_theirs = median("pytorch", workload, batch, threads, "train", "peak_rss_kb") / 1024
        cpu_ours = median("latent", workload, batch, threads, "train", "cpu_util")
        cpu_theirs = median("pytorch", workload, batch, threads, "train", "cpu_util")
        print(f"{workload:<8} {batch:>5} {threads:>3} | {cells[0]} | {cells[1]} | {rss_ours:13.1f} {rss_theirs:8.1f} | "
              f"{cpu_ours:10.2f} {cpu_theirs:7.2f}")
print()
if worst[1]:
    print(f"largest spread over the pairs, (max - min) / median img/s: {worst[0] * 100:.0f}% ({worst[1]})")
print("RATIO lines: latent at 2 threads / PyTorch's best (the faster of its 1- and 2-thread medians);")
print("rss = latent's training peak RSS (2 threads) / PyTorch's (at the thread count of its best training run)")
for workload, batch in order:
    line = f"RATIO workload={workload} batch={batch} threads=2"
    best_train_threads = 1
    for mode in ("train", "infer"):
        ours = median("latent", workload, batch, 2, mode, "img_per_s")
        by_threads = {t: median("pytorch", workload, batch, t, mode, "img_per_s") for t in (1, 2)}
        best = max(by_threads, key=by_threads.get)
        if mode == "train":
            best_train_threads = best
        line += f" {mode}={ours / by_threads[best]:.2f}"
    rss = (median("latent", workload, batch, 2, "train", "peak_rss_kb") /
           median("pytorch", workload, batch, best_train_threads, "train", "peak_rss_kb"))
    print(line + f" rss={rss:.2f}")
EOF
echo "total time: $((SECONDS)) s"
