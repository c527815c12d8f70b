#!/usr/bin/env bash
# Data-parallel training over MPI on this machine, and projected to a cluster (mpi_bench.cpp):
#   1. W2 (batch 32) and W4 (batch 16): 2 processes x 1 thread against 1 process x 2 threads
#      (the whole-batch step, and in 2 chunks: the bits of the 2-process run), and 1 x 1;
#      each measurement a fresh run, the four in turn, --pairs times;
#   2. the latency of one small exchange between 2 processes through the TCP loopback (the cost
#      model's latency term: a network's stack, not shared memory), and through shared memory;
#   3. latent's exchange against MPI_Allreduce on each workload's gradient, 2 processes;
#   4. per-step compute and gradient bytes of W1-W4 and their projected scaling to 2-64 machines
#      at 10 and 100 Gbit/s (ring all-reduce cost model with the latency measured in 2).
# Usage: tests/benchmarks/mpi_scaling.sh [--pairs N] [--build-dir DIR]   (Open MPI: mpirun)
# It builds mpi_bench in DIR (default build-mpi-bench) with CMake's Release flags only, as a
# user's project gets them (LATENT_BENCHMARK_NATIVE=OFF).
set -euo pipefail

pairs=2
build_dir=build-mpi-bench
while (($# > 0)); do
    case $1 in
        --pairs) pairs=$2; shift 2 ;;
        --build-dir) build_dir=$2; shift 2 ;;
        *) sed -n '2,13p' "$0"; exit 2 ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DLATENT_WITH_MPI=ON -DLATENT_BUILD_TESTS=OFF \
    -DLATENT_BUILD_EXAMPLES=OFF -DLATENT_BUILD_BENCHMARKS=ON -DLATENT_BENCHMARK_NATIVE=OFF >/dev/null
cmake --build "$build_dir" -j2 --target mpi_bench >/dev/null
bench=$build_dir/tests/benchmarks/mpi_bench

# Open MPI refuses root without these (containers); --bind-to none lets a process's threads use
# both cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { mpirun --bind-to none "$@"; }

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((pair = 1; pair <= pairs; pair++)); do
    for workload in "W2 32 80" "W4 16 16"; do
        read -r name batch steps <<<"$workload"
        run -np 2 "$bench" --mode train --workload "$name" --batch "$batch" --steps "$steps" --threads 1 --chunks 2
        run -np 1 "$bench" --mode train --workload "$name" --batch "$batch" --steps "$steps" --threads 2 --chunks 1
        run -np 1 "$bench" --mode train --workload "$name" --batch "$batch" --steps "$steps" --threads 2 --chunks 2
        run -np 1 "$bench" --mode train --workload "$name" --batch "$batch" --steps "$steps" --threads 1 --chunks 1
    done
done
echo "# latency through TCP on the loopback, then through shared memory:"
latency_line=$(run --mca btl self,tcp -np 2 "$bench" --mode latency)
echo "$latency_line"
latency=$(sed -n 's/.*exchange_us=\([0-9.]*\).*/\1/p' <<<"$latency_line")
run -np 2 "$bench" --mode latency
run -np 2 "$bench" --mode exchange
run -np 1 "$bench" --mode project --alpha-us "$latency"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
