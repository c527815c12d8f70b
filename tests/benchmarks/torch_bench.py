#!/usr/bin/python3
"""PyTorch side of latent's benchmark: the workloads of workloads.hpp, layer for layer.

Trains (forward + backward + Adam step) or runs (forward only, eval mode, no_grad) one workload
for a while and prints one machine-readable RESULT line, in the format of latent_bench:

    torch_bench.py --workload W2 --batch 128 --threads 2 --mode train [--seconds 2] [--warmup 2]
    torch_bench.py --blas-info      which BLAS PyTorch loaded, and its OpenBLAS kernel
    torch_bench.py --workload W1 --mode latency [--calls 10000]   one sample per call (W5)
    torch_bench.py --gemm-peak --threads N   float torch.mm on 1024^3, GFLOP/s (a PEAK line)

Same shapes, batch, loss and optimizer (torch.optim.Adam, lr 1e-3) as latent_bench; float32;
the same batch (uniform in [0, 1)) every step. TensorFlow's "same" padding is reproduced in
output size: stride-2 3x3 convolutions on even sizes use padding=1, ConvTranspose2d uses
padding=1, output_padding=1 (16 -> 32 and so on). torch.set_num_threads(t) sets the intra-op
threads; OpenBLAS (dense layers) keeps its own pool, so it is set to t as well through
openblas_set_num_threads, which PyTorch 1.13 does not do itself.
"""
import argparse
import ctypes
import resource
import sys
import time

import torch
from torch import nn


def conv(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


def conv_transpose(c_in, c_out):
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)


def sum_squared_error(output, target):
    """1/2 sum of squared errors over the whole batch (latent's SumSquaredError)."""
    return 0.5 * ((output - target) ** 2).sum()


def build(workload):
    """(model, sample shape, loss) of a workload; see workloads.hpp."""
    if workload == "W1":
        model = nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(),
            nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid())
        return model, (784,), nn.BCELoss()
    if workload == "W2":
        model = nn.Sequential(
            conv(1, 32), nn.ReLU(), nn.MaxPool2d(2),
            conv(32, 32), nn.ReLU(), nn.MaxPool2d(2),
            conv(32, 32), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
            conv(32, 32), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
            conv(32, 1), nn.Sigmoid())
        return model, (1, 28, 28), nn.BCELoss()
    if workload == "W3":
        model = nn.Sequential(
            conv(1, 16, 2), nn.ReLU(), conv(16, 32, 2), nn.ReLU(), conv(32, 64, 2), nn.ReLU(),
            conv(64, 128, 2), nn.ReLU(), nn.Flatten(), nn.Linear(512, 256), nn.Sigmoid(),
            nn.Linear(256, 512), nn.ReLU(), nn.Unflatten(1, (128, 2, 2)),
            conv_transpose(128, 64), nn.ReLU(), conv_transpose(64, 32), nn.ReLU(),
            conv_transpose(32, 16), nn.ReLU(), conv_transpose(16, 1), nn.Sigmoid())
        return model, (1, 32, 32), sum_squared_error
    if workload == "W4":
        model = nn.Sequential(
            conv(3, 32, 2), nn.ReLU(), conv(32, 64, 2), nn.ReLU(), conv(64, 128, 2), nn.ReLU(),
            conv(128, 256, 2), nn.ReLU(), nn.Flatten(), nn.Linear(256 * 8 * 8, 300),
            nn.Linear(300, 256 * 8 * 8), nn.ReLU(), nn.Unflatten(1, (256, 8, 8)),
            conv_transpose(256, 128), nn.ReLU(), conv_transpose(128, 64), nn.ReLU(),
            conv_transpose(64, 32), nn.ReLU(), conv_transpose(32, 3), nn.Sigmoid())
        return model, (3, 128, 128), nn.MSELoss()
    raise SystemExit(f"torch_bench.py: unknown workload '{workload}' (known: W1, W2, W3, W4)")


DEFAULT_BATCH = {"W1": 256, "W2": 32, "W3": 50, "W4": 16}


def mapped_libraries():
    """Paths of the shared libraries mapped into this process."""
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and ".so" in fields[5]:
                paths.add(fields[5])
    return sorted(paths)


def openblas_library():
    """ctypes handle of the OpenBLAS that PyTorch loaded, or None (e.g. the reference BLAS)."""
    paths = mapped_libraries()
    # libopenblas itself first; Debian's openblas-pthread/libblas.so.3 is the same code.
    for path in [p for p in paths if "libopenblas" in p] + [p for p in paths if "openblas" in p.lower()]:
            library = ctypes.CDLL(path)
            if hasattr(library, "openblas_get_corename"):
                return path, library
    return None, None


def blas_info():
    torch.ones(2, 2) @ torch.ones(2, 2)  # make sure the BLAS is loaded
    blas_paths = [p for p in mapped_libraries() if any(k in p.lower() for k in ("blas", "lapack", "mkl"))]
    print(f"BLAS torch {torch.__version__}: libraries mapped: {', '.join(blas_paths) or 'none'}")
    path, library = openblas_library()
    if library is None:
        print("BLAS loaded: NOT OpenBLAS (reference BLAS? dense layers will be very slow; "
              "install libopenblas0-pthread)")
    else:
        library.openblas_get_corename.restype = ctypes.c_char_p
        library.openblas_get_config.restype = ctypes.c_char_p
        print(f"BLAS loaded: OpenBLAS {path}")
        print(f"BLAS OpenBLAS kernel (openblas_get_corename): {library.openblas_get_corename().decode()}")
        print(f"BLAS OpenBLAS config: {library.openblas_get_config().decode()}")
    config = torch.__config__.show()
    settings = [s.strip() for s in config.replace("\n", ",").split(",")]
    for key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP", "CPU capability usage"):
        for setting in settings:
            if key in setting:
                print(f"BLAS torch.__config__: {setting.split(': ')[-1].lstrip('- ')}")
    print(f"BLAS torch.backends.mkldnn.is_available(): {torch.backends.mkldnn.is_available()} "
          "(convolutions run on oneDNN when true)")


def set_threads(threads):
    torch.set_num_threads(threads)
    _, library = openblas_library()
    if library is not None and hasattr(library, "openblas_set_num_threads"):
        library.openblas_set_num_threads(threads)


def measure(step, warmup, seconds, min_steps):
    """Runs `step` warmup times, then until `seconds` and `min_steps` are both reached."""
    for _ in range(warmup):
        step()
    steps = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and steps >= min_steps:
            return steps, elapsed, time.process_time() - cpu_start


def gemm_peak(threads, seconds):
    """torch.mm (its BLAS) on 1024^3 float matrices: best GFLOP/s over `seconds`."""
    set_threads(threads)
    n = 1024
    a, b = torch.rand(n, n), torch.rand(n, n)
    c = torch.mm(a, b)
    best = float("inf")
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - begin)
    _, library = openblas_library()
    kernel = "unknown"
    if library is not None:
        library.openblas_get_corename.restype = ctypes.c_char_p
        kernel = "openblas-" + library.openblas_get_corename().decode()
    print(f"PEAK framework=pytorch kernel={kernel} threads={threads} gflops={2.0 * n ** 3 / best / 1e9:.1f}")


def latency(args):
    """W5: forward and the mean squared reconstruction error of one sample per call."""
    set_threads(args.threads)
    torch.manual_seed(42)
    model, sample_shape, _ = build(args.workload)
    model.eval()
    samples = torch.rand((64, 1) + sample_shape, dtype=torch.float32)
    checksum = 0.0
    with torch.inference_mode():
        for call in range(100):
            x = samples[call % 64]
            checksum += float(((model(x) - x) ** 2).mean())
        times = []
        for call in range(args.calls):
            x = samples[call % 64]
            begin = time.perf_counter()
            checksum += float(((model(x) - x) ** 2).mean())
            times.append((time.perf_counter() - begin) * 1e6)
    times.sort()
    def percentile(p):
        return times[int(p * (len(times) - 1))]
    print(f"RESULT framework=pytorch workload={args.workload} batch=1 threads={args.threads} mode=latency "
          f"calls={args.calls} p50_us={percentile(0.5):.2f} p99_us={percentile(0.99):.2f} "
          f"checksum={checksum:.6g} torch={torch.__version__}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="W2")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mode", choices=("train", "infer", "latency"), default="train")
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--gemm-peak", action="store_true")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-steps", type=int, default=3)
    parser.add_argument("--blas-info", action="store_true")
    args = parser.parse_args()
    if args.blas_info:
        blas_info()
        return
    if args.gemm_peak:
        gemm_peak(args.threads, args.seconds)
        return
    if args.mode == "latency":
        latency(args)
        return
    batch = args.batch or DEFAULT_BATCH.get(args.workload, 32)

    torch.manual_seed(42)
    set_threads(args.threads)
    model, sample_shape, criterion = build(args.workload)
    x = torch.rand((batch,) + sample_shape, dtype=torch.float32)
    last_loss = [0.0]

    if args.mode == "train":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()

        def step():
            optimizer.zero_grad()
            loss = criterion(model(x), x)
            loss.backward()
            optimizer.step()
            last_loss[0] = loss.item()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                output = model(x)
            last_loss[0] = float(output.view(-1)[0])

    steps, seconds, cpu_seconds = measure(step, args.warmup, args.seconds, args.min_steps)
    peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(f"RESULT framework=pytorch workload={args.workload} batch={batch} threads={args.threads} "
          f"mode={args.mode} loop={'train_step' if args.mode == 'train' else 'no_grad'} steps={steps} "
          f"seconds={seconds:.4f} img_per_s={steps * batch / seconds:.2f} cpu_util={cpu_seconds / seconds:.2f} "
          f"peak_rss_kb={peak_rss_kb} loss={last_loss[0]:.6g} torch={torch.__version__}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
