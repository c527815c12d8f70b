#!/usr/bin/env bash
# latent vs PyTorch on the same CPU: builds latent_bench, runs every workload in both,
# alternating latent / PyTorch (A B A B ...), one fresh process per measurement, and prints the
# float GEMM peak of the machine, one table of medians, one RATIO line per workload and batch
# size, each workload's GFLOP/s as a fraction of the peak, each program's 2-thread / 1-thread
# speed (THREADS lines: the load test, with --background) and the one-sample latency (W5).
#
#   tests/benchmarks/compare.sh [--build default|hand|native|both|all] [--pairs N] [--quick]
#                               [--workloads W1,W2] [--seconds S] [--calls N]
#                               [--omp-wait-policy active|passive] [--background none|busy|train]
#                               [--gradient-chunks N]
#
#   --build B        default: the CMake Release build a user gets (no -march flag; the kernels
#                    are chosen at run time); hand: the README's by-hand g++ line;
#                    native: -O3 -march=native; both: default and native; all: the three,
#                    alternated
#   --pairs N        alternating latent/PyTorch pairs per measurement (default 5; medians over them)
#   --quick          1 pair, 0.5 s per process, 1 warm-up step, 1000 latency calls: a smoke test
#   --workloads LIST comma-separated subset of W1,W2,W3,W4 (default: all)
#   --seconds S      timed seconds per process (default 2)
#   --calls N        one-sample calls per latency measurement (default 10000)
#   --omp-wait-policy active|passive
#                    sets OMP_WAIT_POLICY for PyTorch, which runs on OpenMP (default: unset, as a
#                    user runs it; latent has its own threads)
#   --background L   other work on the machine during the measurements: busy = one busy loop,
#                    train = a second latent training process (W2, 1 thread); default none
#   --gradient-chunks N  latent's training with FitOptions::gradient_chunks = N (default 1, fit()'s
#                    default: whole batches; see the README, Training on several machines)
# Installs what is missing (python3-torch, libopenblas0-pthread, the build tools) with apt-get,
# as root or through sudo. Raw RESULT lines go to build-bench/compare-results.txt.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bench_root="$root/build-bench"
python=/usr/bin/python3  # Debian's: another python3 earlier in PATH may lack torch
pairs=5
seconds=2
warmup=2
workloads="W1,W2,W3,W4"
wait_policy=""
build_mode=default
calls=10000
background=none
gradient_chunks=1

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($# > 0)); do
    case $1 in
        --pairs) pairs=$2; shift 2 ;;
        --quick) pairs=1; seconds=0.5; warmup=1; calls=1000; shift ;;
        --build) build_mode=$2; shift 2 ;;
        --calls) calls=$2; shift 2 ;;
        --background) background=$2; shift 2 ;;
        --gradient-chunks) gradient_chunks=$2; shift 2 ;;
        --workloads) workloads=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --omp-wait-policy) wait_policy=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $pairs =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --pairs needs a positive integer" >&2; exit 2; }
[[ $gradient_chunks =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --gradient-chunks needs a positive integer" >&2; exit 2; }
case $build_mode in
    default) builds=(default) ;;
    native) builds=(native) ;;
    hand) builds=(hand) ;;
    both) builds=(default native) ;;
    all) builds=(default hand native) ;;
    *) echo "compare.sh: --build is default, hand, native, both or all" >&2; exit 2 ;;
esac
case $background in
    none | busy | train) ;;
    *) echo "compare.sh: --background is none, busy or train" >&2; exit 2 ;;
esac
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
# build-bench/default: CMake's Release flags only, as a user's project gets them;
# build-bench/hand: the README's by-hand line (under "A denoising autoencoder in thirty lines"),
# word for word but the file names;
# build-bench/native: -O3 -march=native on latent_bench.
mkdir -p "$bench_root"
for build in "${builds[@]}"; do
    dir="$bench_root/$build"
    if [[ $build == hand ]]; then
        mkdir -p "$dir/tests/benchmarks"
        g++ -std=c++17 -O3 -DNDEBUG "$here/latent_bench.cpp" -I "$root/include" -isystem /usr/include/eigen3 \
            -isystem /usr/include/stb -lstb -lpng -ljpeg -lz -o "$dir/tests/benchmarks/latent_bench" \
            >"$dir/compare-build.log" 2>&1 || { cat "$dir/compare-build.log" >&2; exit 1; }
        continue
    fi
    native=$([[ $build == native ]] && echo ON || echo OFF)
    mkdir -p "$dir"
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLATENT_BUILD_BENCHMARKS=ON -DLATENT_BENCHMARK_NATIVE=$native \
        -DLATENT_BUILD_TESTS=OFF -DLATENT_BUILD_EXAMPLES=OFF -DLATENT_INSTALL=OFF >"$dir/compare-build.log" 2>&1 &&
        cmake --build "$dir" --target latent_bench -j "$(nproc)" >>"$dir/compare-build.log" 2>&1 ||
        { cat "$dir/compare-build.log" >&2; exit 1; }
done
latent_run() {  # latent_run BUILD ARGS...: one latent_bench process, its RESULT/PEAK line tagged build=BUILD
    local build=$1
    shift
    "$bench_root/$build/tests/benchmarks/latent_bench" "$@" | grep -E '^(RESULT|PEAK)' | sed "s/\$/ build=$build/"
}

# PyTorch runs with OpenBLAS choosing its own kernel for this CPU: the machine-wide
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from its environment alone.
torch_run() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/torch_bench.py" "$@"; }

# --- header -------------------------------------------------------------------------------------
started=$SECONDS
echo "latent vs PyTorch -- $(date '+%Y-%m-%d %H:%M:%S %Z')"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) logical CPUs; threads measured: 1 and 2"
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
compiler=g++
[[ ! -f $bench_root/${builds[0]}/CMakeCache.txt ]] ||
    compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$bench_root/${builds[0]}/CMakeCache.txt")
echo "latent_bench: $("$compiler" --version | head -1), builds: ${builds[*]} (default = CMake Release," \
    "no -march; hand = the README's g++ line; native = -O3 -march=native); training through fit()"
echo "latent kernels: $(latent_run "${builds[0]}" --gemm-peak --seconds 0.01 | sed 's/.*kernel=\([^ ]*\).*/\1/')" \
    "(chosen at run time; LATENT_ISA=${LATENT_ISA:-unset})"
torch_run --blas-info
echo "pairs: $pairs (alternating latent, PyTorch), $seconds s timed per process after $warmup warm-up steps"
echo "OMP_WAIT_POLICY: ${OMP_WAIT_POLICY:-unset}; background work: $background; latent training: gradient_chunks=$gradient_chunks"
echo

# --- other work on the machine (--background) --------------------------------------------------
background_pid=""
stop_background() { [[ -z $background_pid ]] || kill "$background_pid" 2>/dev/null || true; }
trap stop_background EXIT
case $background in
    busy) (while :; do :; done) & background_pid=$! ;;
    train) (while :; do latent_run "${builds[0]}" --workload W2 --batch 128 --threads 1 --seconds 30 >/dev/null; done) &
           background_pid=$! ;;
esac

# --- measurements -------------------------------------------------------------------------------
results="$bench_root/compare-results.txt"
: >"$results"
record() { printf '%s\n' "$1" >>"$results"; sed "s/.* $2=\([^ ]*\).*/\1/" <<<"$1"; }  # record LINE FIELD

# The machine's float GEMM peak: every candidate kernel on 1024^3, best of the pairs.
for threads in 1 2; do
    printf 'GEMM 1024^3 threads %s (GFLOP/s, %s):' "$threads" "$(printf '%s/' "${builds[@]}")pytorch"
    for ((pair = 1; pair <= pairs; ++pair)); do
        printf ' '
        for build in "${builds[@]}"; do
            printf '%s/' "$(record "$(latent_run "$build" --gemm-peak --threads "$threads" --seconds 1)" gflops)"
        done
        printf '%s' "$(record "$(torch_run --gemm-peak --threads "$threads" --seconds 1 | grep '^PEAK')" gflops)"
    done
    echo
done

IFS=',' read -r -a selected <<<"$workloads"
mapfile -t configs < <("$bench_root/${builds[0]}/tests/benchmarks/latent_bench" --list)
for workload in "${selected[@]}"; do
    printf '%s\n' "${configs[@]}" | grep -q "^$workload " ||
        { echo "compare.sh: unknown workload '$workload' (known: W1, W2, W3, W4)" >&2; exit 2; }
done
for config in "${configs[@]}"; do
    read -r workload batch _ <<<"$config"
    [[ " ${selected[*]} " == *" $workload "* ]] || continue
    for mode in train infer; do
        for threads in 1 2; do
            printf '%-3s batch %-4s %-5s threads %s (img/s, %s):' "$workload" "$batch" "$mode" "$threads" \
                "$(printf '%s/' "${builds[@]}")pytorch"
            for ((pair = 1; pair <= pairs; ++pair)); do
                common=(--workload "$workload" --batch "$batch" --threads "$threads" --mode "$mode"
                        --seconds "$seconds" --warmup "$warmup")
                latent_only=()
                [[ $mode == train ]] && latent_only=(--gradient-chunks "$gradient_chunks")
                printf ' '
                for build in "${builds[@]}"; do
                    printf '%s/' "$(record "$(latent_run "$build" "${common[@]}" "${latent_only[@]}")" img_per_s)"
                done
                printf '%s' "$(record "$(torch_run "${common[@]}" | grep '^RESULT')" img_per_s)"
            done
            echo
        done
    done
done

# W5: one sample per call through the W1 and W2 networks, 1 thread.
for workload in W1 W2; do
    [[ " ${selected[*]} " == *" $workload "* ]] || continue
    printf 'W5 (%s, one sample) p50 us, %s:' "$workload" "$(printf '%s/' "${builds[@]}")pytorch"
    for ((pair = 1; pair <= pairs; ++pair)); do
        common=(--workload "$workload" --threads 1 --mode latency --calls "$calls")
        printf ' '
        for build in "${builds[@]}"; do printf '%s/' "$(record "$(latent_run "$build" "${common[@]}")" p50_us)"; done
        printf '%s' "$(record "$(torch_run "${common[@]}" | grep '^RESULT')" p50_us)"
    done
    echo
done
stop_background
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg); measurements took $((SECONDS - started)) s"
echo

# --- table, RATIO, FRACTION and LATENCY lines ----------------------------------------------------
"$python" - "$results" <<'EOF'
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)  # (source, workload, batch, threads, mode) -> [fields]; source = latent-<build> | pytorch
peaks = defaultdict(list)  # (source, threads) -> [gflops]
order, sources = [], []
for line in open(sys.argv[1]):
    kind, *items = line.split()
    fields = dict(item.split("=", 1) for item in items)
    source = fields["framework"] + ("-" + fields["build"] if "build" in fields else "")
    if source not in sources:
        sources.append(source)
    if kind == "PEAK":
        peaks[(source, int(fields["threads"]))].append(float(fields["gflops"]))
        continue
    key = (fields["workload"], int(fields["batch"]))
    if fields["mode"] != "latency" and key not in order:
        order.append(key)
    runs[(source,) + key + (int(fields["threads"]), fields["mode"])].append(fields)
builds = [s for s in sources if s.startswith("latent-")]

def median(source, workload, batch, threads, mode, field):
    values = [float(f[field]) for f in runs.get((source, workload, batch, threads, mode), [])]
    return statistics.median(values) if values else float("nan")

print("GEMM peak, float 1024^3, GFLOP/s (best over the pairs):")
peak = {}
for threads in (1, 2):
    best = {s: max(v) for (s, t), v in peaks.items() if t == threads}
    peak[threads] = max(best.values()) if best else float("nan")
    print(f"  {threads} thread(s): " + ", ".join(f"{s} {g:.1f}" for s, g in best.items()) + f"  -> peak {peak[threads]:.1f}")
print()
print("median img/s over the pairs; ratio = latent / PyTorch at the same thread count")
header = f"{'workload':<8} {'batch':>5} {'thr':>3} |" + "".join(
    f" {'train ' + b[7:]:>14} {'ratio':>5} |" for b in builds) + f" {'train PyTorch':>13} |" + "".join(
    f" {'infer ' + b[7:]:>14} {'ratio':>5} |" for b in builds) + f" {'infer PyTorch':>13}"
print(header)
print("-" * len(header))
for workload, batch in order:
    for threads in (1, 2):
        row = f"{workload:<8} {batch:>5} {threads:>3} |"
        for mode in ("train", "infer"):
            theirs = median("pytorch", workload, batch, threads, mode, "img_per_s")
            for b in builds:
                ours = median(b, workload, batch, threads, mode, "img_per_s")
                row += f" {ours:14.1f} {ours / theirs:5.2f} |"
            row += f" {theirs:13.1f}" + (" |" if mode == "train" else "")
        print(row)
print()
print("RATIO lines: latent at 2 threads / PyTorch's best (the faster of its 1- and 2-thread medians);")
print("rss = latent's training peak RSS (2 threads) / PyTorch's (at the thread count of its best training run);")
print("vs_native = this build / the -march=native build, the worst of train/infer at 1 and 2 threads")
for b in builds:
    for workload, batch in order:
        line = f"RATIO build={b[7:]} workload={workload} batch={batch} threads=2"
        best_train_threads = 1
        for mode in ("train", "infer"):
            ours = median(b, workload, batch, 2, mode, "img_per_s")
            by_threads = {t: median("pytorch", workload, batch, t, mode, "img_per_s") for t in (1, 2)}
            best = max(by_threads, key=by_threads.get)
            if mode == "train":
                best_train_threads = best
            line += f" {mode}={ours / by_threads[best]:.2f}"
        rss = (median(b, workload, batch, 2, "train", "peak_rss_kb") /
               median("pytorch", workload, batch, best_train_threads, "train", "peak_rss_kb"))
        line += f" rss={rss:.2f}"
        if b != "latent-native" and "latent-native" in builds:
            worst = min(median(b, workload, batch, t, m, "img_per_s") /
                        median("latent-native", workload, batch, t, m, "img_per_s")
                        for t in (1, 2) for m in ("train", "infer"))
            line += f" vs_native={worst:.2f}"
        print(line)
print()
print("FRACTION lines: achieved GFLOP/s (2 flops per multiply-add of the workload's layers; training")
print("counts 3 passes) over the GEMM peak at the same thread count")
for b in builds:
    for workload, batch in order:
        for threads in (1, 2):
            train = median(b, workload, batch, threads, "train", "gflops")
            infer = median(b, workload, batch, threads, "infer", "gflops")
            print(f"FRACTION build={b[7:]} workload={workload} batch={batch} threads={threads} "
                  f"train_gflops={train:.1f} train={train / peak[threads]:.2f} "
                  f"infer_gflops={infer:.1f} infer={infer / peak[threads]:.2f}")
print()
print("THREADS lines: 2-thread / 1-thread img/s of each program (with --background busy|train, the")
print("load test: below 1.00 means the second thread made training slower)")
for source in builds + ["pytorch"]:
    for workload, batch in order:
        line = f"THREADS source={source} workload={workload} batch={batch}"
        for mode in ("train", "infer"):
            line += f" {mode}={median(source, workload, batch, 2, mode, 'img_per_s') / median(source, workload, batch, 1, mode, 'img_per_s'):.2f}"
        print(line)
print()
print("LATENCY lines (W5): one sample per call, 1 thread; medians over the pairs of each run's p50 and")
print("p99; ratio = latent's p50 / PyTorch's p50 (torch.inference_mode)")
for workload in ("W1", "W2"):
    theirs50 = median("pytorch", workload, 1, 1, "latency", "p50_us")
    theirs99 = median("pytorch", workload, 1, 1, "latency", "p99_us")
    for b in builds:
        if not runs.get((b, workload, 1, 1, "latency")):
            continue
        ours50 = median(b, workload, 1, 1, "latency", "p50_us")
        ours99 = median(b, workload, 1, 1, "latency", "p99_us")
        allocations = median(b, workload, 1, 1, "latency", "allocations_per_call")
        print(f"LATENCY build={b[7:]} workload={workload} p50_us={ours50:.1f} p99_us={ours99:.1f} "
              f"pytorch_p50_us={theirs50:.1f} pytorch_p99_us={theirs99:.1f} ratio={ours50 / theirs50:.2f} "
              f"allocations_per_call={allocations:g}")
EOF
echo "total time: $((SECONDS)) s"
