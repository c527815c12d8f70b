#!/usr/bin/env python3
"""Cross-checks latent's BatchNorm, BatchNorm2D, Dropout and penalties against PyTorch, in double.

    python3 tests/crosscheck/torch_layers.py [--cxx c++] [--keep DIR]

Builds torch_layers.cpp (the latent side) with the C++ compiler, writes the same inputs for both
as .npy files, and prints the max relative error of every compared array per case:
  BatchNorm   vs torch.nn.BatchNorm1d on the (N, C*H*W) batch, BatchNorm2D vs BatchNorm2d: two
      training passes then one evaluation pass; forward output, input gradient, weight and bias
      gradients, running mean and variance after each pass;
  Dropout vs torch.nn.Dropout: latent's and torch's own masks both give y/x in {0, 1/(1-p)}, a
      kept fraction near 1-p and dx = dy * y/x (backward uses the forward's mask); then latent's
      mask fed to torch (torch's dropout arithmetic, x * mask/(1-p), with autograd) gives
      latent's y and dx;
  Penalties: ContractiveDense's output, term (also against the Frobenius norm of the Jacobian
      torch.autograd.functional.jacobian computes) and input, weight and bias gradients;
      KLSparsity's and ActivityL1's terms and input gradients, each against torch's autograd of
      sum(dy * y) + term.
Relative error of one value: |a - b| / max(|a|, |b|, 1e-6 * max|b|), as check_gradients uses.
Needs python3 with torch and numpy, and Eigen (found by pkg-config eigen3 or in /usr/include/eigen3).
It is not part of ctest; exits 1 when an error exceeds 1e-12.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOLERANCE = 1e-12


def eigen_flags():
    try:
        return subprocess.run(["pkg-config", "--cflags", "eigen3"], check=True, capture_output=True,
                              text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return ["-I/usr/include/eigen3"]


def build_driver(cxx, directory):
    program = os.path.join(directory, "torch_layers")
    command = [cxx, "-std=c++17", "-O2", "-I" + os.path.join(ROOT, "include"), *eigen_flags(),
               os.path.join(HERE, "torch_layers.cpp"), "-o", program]
    subprocess.run(command, check=True)
    return program


def relative_error(a, b):
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    floor = 1e-6 * max(np.abs(b).max(), 1e-300)
    return float((np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)).max())


class Report:
    def __init__(self):
        self.worst = 0.0

    def compare(self, case, what, latent, reference):
        error = relative_error(latent, reference)
        self.worst = max(self.worst, error)
        print(f"  {case:<12} {what:<22} max relative error {error:.3e}")

    def fact(self, case, what, holds):
        if not holds:
            self.worst = float("inf")
        print(f"  {case:<12} {what:<52} {'yes' if holds else 'NO'}")


def save(directory, name, array):
    np.save(os.path.join(directory, name + ".npy"), np.ascontiguousarray(array, dtype=np.float64))


def load(directory, name):
    return np.load(os.path.join(directory, name + ".npy"))


def batch_norm_case(program, directory, layer, shape, report):
    """Two training passes and one evaluation pass through latent's `layer` and torch's."""
    rng = np.random.default_rng(7 if layer == "BatchNorm" else 8)
    n, c, h, w = shape
    features = c * h * w if layer == "BatchNorm" else c
    weight, bias = rng.uniform(0.5, 1.5, features), rng.uniform(-0.5, 0.5, features)
    save(directory, "weight", weight.reshape(1, features, 1, 1))
    save(directory, "bias", bias.reshape(1, features, 1, 1))
    passes = []
    for k in (1, 2, 3):
        x = rng.uniform(-2.0, 3.0, shape) * (1 + k)  # different statistics per pass
        dy = rng.uniform(-1.0, 1.0, shape)
        save(directory, f"x{k}", x)
        save(directory, f"dy{k}", dy)
        passes.append((x, dy))
    subprocess.run([program, layer, directory], check=True)

    torch_layer = (torch.nn.BatchNorm1d(features) if layer == "BatchNorm" else torch.nn.BatchNorm2d(features)).double()
    with torch.no_grad():
        torch_layer.weight.copy_(torch.from_numpy(weight))
        torch_layer.bias.copy_(torch.from_numpy(bias))
    to_torch = (lambda a: a.reshape(n, -1)) if layer == "BatchNorm" else (lambda a: a)
    for k, (x, dy) in enumerate(passes, start=1):
        torch_layer.train(k < 3)
        torch_layer.zero_grad()
        x_torch = torch.from_numpy(to_torch(x)).requires_grad_(True)
        y = torch_layer(x_torch)
        y.backward(torch.from_numpy(to_torch(dy)))
        mode = "train" if k < 3 else "eval"
        report.compare(layer, f"pass {k} ({mode}) y", load(directory, f"y{k}"), y.detach().numpy())
        report.compare(layer, f"pass {k} ({mode}) dx", load(directory, f"dx{k}"), x_torch.grad.numpy())
        report.compare(layer, f"pass {k} ({mode}) dweight", load(directory, f"grad_weight{k}"),
                       torch_layer.weight.grad.numpy())
        report.compare(layer, f"pass {k} ({mode}) dbias", load(directory, f"grad_bias{k}"),
                       torch_layer.bias.grad.numpy())
        report.compare(layer, f"pass {k} running_mean", load(directory, f"running_mean{k}"),
                       torch_layer.running_mean.numpy())
        report.compare(layer, f"pass {k} running_var", load(directory, f"running_var{k}"),
                       torch_layer.running_var.numpy())


def mask_facts(report, who, x, y, dx, dy, p):
    """y/x in {0, 1/(1-p)}, the kept fraction near 1-p, and dx = dy * y/x."""
    ratio = y / x
    scale = 1.0 / (1.0 - p)
    kept = ratio != 0
    report.fact("Dropout", f"{who}: y/x is 0 or 1/(1-p) everywhere",
                bool(np.all((ratio == 0) | (np.abs(ratio - scale) <= 1e-15 * scale))))
    fraction = kept.mean()
    sigma = np.sqrt(p * (1 - p) / x.size)
    report.fact("Dropout", f"{who}: kept fraction {fraction:.4f} within 4 sigma of {1 - p:.2f}",
                abs(fraction - (1 - p)) < 4 * sigma)
    report.fact("Dropout", f"{who}: backward uses the mask (dx = dy * y/x)",
                bool(np.all(np.abs(dx - dy * np.where(kept, scale, 0.0)) <= 1e-15 * np.abs(dy) * scale)))


def dropout_case(program, directory, report, p=0.3, shape=(16, 3, 10, 10)):
    rng = np.random.default_rng(9)
    x = rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape)  # no zeros: y/x is defined
    dy = rng.uniform(-1.0, 1.0, shape)
    save(directory, "x", x)
    save(directory, "dy", dy)
    subprocess.run([program, "Dropout", repr(p), directory], check=True)
    y_latent, dx_latent = load(directory, "y"), load(directory, "dx")
    mask_facts(report, "latent", x, y_latent, dx_latent, dy, p)

    torch.manual_seed(0)
    x_torch = torch.from_numpy(x).requires_grad_(True)
    y_torch = torch.nn.Dropout(p).train()(x_torch)
    y_torch.backward(torch.from_numpy(dy))
    mask_facts(report, "torch", x, y_torch.detach().numpy(), x_torch.grad.numpy(), dy, p)

    # latent's mask in torch's arithmetic: noise = bernoulli(1 - p) / (1 - p), y = x * noise
    noise = torch.from_numpy((y_latent != 0).astype(np.float64)).div_(1 - p)
    x_torch = torch.from_numpy(x).requires_grad_(True)
    y_torch = x_torch * noise
    y_torch.backward(torch.from_numpy(dy))
    report.compare("Dropout", "latent mask: y", y_latent, y_torch.detach().numpy())
    report.compare("Dropout", "latent mask: dx", dx_latent, x_torch.grad.numpy())


def penalties_case(program, directory, report, n=6, inputs=5, units=4):
    """ContractiveDense, KLSparsity and ActivityL1: terms and gradients against torch's autograd."""
    rng = np.random.default_rng(10)
    x, weight, bias = rng.uniform(-1, 1, (n, inputs)), rng.uniform(-1, 1, (units, inputs)), rng.uniform(-1, 1, units)
    h, a = rng.uniform(0.05, 0.95, (n, 7)), rng.uniform(0.1, 1.0, (n, 9)) * rng.choice([-1.0, 1.0], (n, 9))
    arrays = {"x": x, "dx": rng.uniform(-1, 1, (n, units)), "h": h, "dh": rng.uniform(-1, 1, h.shape), "a": a,
              "da": rng.uniform(-1, 1, a.shape), "weight": weight, "bias": bias.reshape(1, units)}
    for name, array in arrays.items():
        save(directory, name, array.reshape(*array.shape, *([1] * (4 - array.ndim))))
    subprocess.run([program, "Penalties", directory], check=True)

    # ContractiveDense: h = sigmoid(x W^T + b), term = lambda / N * sum_n ||dh_n/dx_n||_F^2
    lam = 0.7
    xt, wt, bt = (torch.from_numpy(v).requires_grad_(True) for v in (x, weight, bias))
    code = torch.sigmoid(xt @ wt.T + bt)
    slope = code * (1 - code)
    term = lam / n * ((slope ** 2) @ (wt ** 2).sum(1)).sum()
    jacobian = torch.autograd.functional.jacobian(lambda v: torch.sigmoid(v @ wt.T + bt).sum(0), xt.detach())
    report.compare("Penalties", "contractive y", load(directory, "contractive_y"), code.detach().numpy())
    report.compare("Penalties", "contractive term", load(directory, "contractive_term"), term.detach().numpy())
    report.compare("Penalties", "contractive term (J)", load(directory, "contractive_term"),
                   (lam / n * (jacobian ** 2).sum()).numpy())
    ((code * torch.from_numpy(arrays["dx"])).sum() + term).backward()
    report.compare("Penalties", "contractive dx", load(directory, "contractive_dx"), xt.grad.numpy())
    report.compare("Penalties", "contractive dweight", load(directory, "contractive_grad_weight"), wt.grad.numpy())
    report.compare("Penalties", "contractive dbias", load(directory, "contractive_grad_bias"), bt.grad.numpy())

    # KLSparsity: beta * sum_j KL(rho || mean_n h_nj)
    rho, beta = 0.2, 1.5
    ht = torch.from_numpy(h).requires_grad_(True)
    q = ht.mean(0)
    term = beta * (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()
    report.compare("Penalties", "kl term", load(directory, "kl_term"), term.detach().numpy())
    ((ht * torch.from_numpy(arrays["dh"])).sum() + term).backward()
    report.compare("Penalties", "kl dx", load(directory, "kl_dx"), ht.grad.numpy())

    # ActivityL1: lambda * sum |a| / N
    lam = 0.3
    at = torch.from_numpy(a).requires_grad_(True)
    term = lam * at.abs().sum() / n
    report.compare("Penalties", "l1 term", load(directory, "l1_term"), term.detach().numpy())
    ((at * torch.from_numpy(arrays["da"])).sum() + term).backward()
    report.compare("Penalties", "l1 dx", load(directory, "l1_dx"), at.grad.numpy())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cxx", default=os.environ.get("CXX", "c++"), help="C++ compiler (default: $CXX or c++)")
    parser.add_argument("--keep", help="write the program and the .npy files here and keep them")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    directory = args.keep or tempfile.mkdtemp(prefix="latent_torch_layers_")
    os.makedirs(directory, exist_ok=True)
    try:
        program = build_driver(args.cxx, directory)
        report = Report()
        print(f"torch {torch.__version__}, double precision")
        batch_norm_case(program, directory, "BatchNorm", (7, 3, 2, 5), report)
        batch_norm_case(program, directory, "BatchNorm2D", (5, 4, 3, 6), report)
        dropout_case(program, directory, report)
        penalties_case(program, directory, report)
        print(f"worst max relative error: {report.worst:.3e} (tolerance {TOLERANCE:g})")
        return 0 if report.worst <= TOLERANCE else 1
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
