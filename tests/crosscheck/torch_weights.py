#!/usr/bin/env python3
"""Cross-checks import_weights / export_weights (io/pytorch.hpp) against PyTorch, in float.

    python3 tests/crosscheck/torch_weights.py [--driver PATH | --cxx c++] [--keep DIR]

For every network of the example programs (torch_weights.cpp holds them; `torch_weights describe`
tells this script their layers, from which it builds the equivalent torch nn.Sequential pair):
  torch -> latent: a torch network with PyTorch's default initialisation (BatchNorm's statistics
      and affine values randomised too) writes its state_dict as .safetensors (float32, and float64
      to check the conversion), with numpy.savez (stored .npz) and numpy.savez_compressed
      (deflated .npz); latent imports each file and reconstructs the same inputs as torch;
  latent -> torch: latent trains a few full-batch Adam steps, exports .safetensors, deflated and
      stored .npz; torch loads each with load_state_dict(strict=True) and reconstructs the inputs.
Outputs are compared in evaluation mode (BatchNorm on running statistics, Dropout off; a VAE
reconstructs through the mean). Error: max |latent - torch| / max |torch| over all outputs.
Exits 1 when an error exceeds 1e-5.

TensorFlow "same" padding, which latent uses, puts the odd padding row and column at the
bottom and right. PyTorch's padding argument is symmetric, so:
  - Conv2D where the "same" total padding is odd (stride 2, kernel 3 on an even size: 0 before,
    1 after) needs an explicit asymmetric F.pad before the convolution; the script does it
    (TFConv2d) and prints those layers;
  - MaxPool2D "same" pads with -inf where the total is odd (never on the examples' even sizes);
  - ConvTranspose2D "same" (output = input x stride) keeps the full transposed convolution from
    its first row: torch's padding=1, output_padding=1 would crop the first row instead, so the
    script crops the last (TFConvTranspose2d).
These torch modules subclass nn.Conv2d / nn.ConvTranspose2d, so their state_dict names stay those
of the plain modules.

Needs python3 with torch and numpy (Debian: python3-torch); prints a line starting "SKIPPED:" and
exits 0 when they are missing.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as missing:
    print(f"SKIPPED: {missing.name} is not installed (Debian: apt-get install python3-torch)")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOLERANCE = 1e-5
TRAIN_STEPS = 3
BATCH = 4


def build_driver(cxx, directory):
    program = os.path.join(directory, "torch_weights")
    try:
        eigen = subprocess.run(["pkg-config", "--cflags", "eigen3"], check=True, capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        eigen = ["-I/usr/include/eigen3"]
    subprocess.run([cxx, "-std=c++17", "-O2", "-I" + os.path.join(ROOT, "include"), *eigen, "-isystem", "/usr/include/stb",
                    os.path.join(HERE, "torch_weights.cpp"), "-o", program, "-lstb", "-lpng", "-ljpeg", "-lz"], check=True)
    return program


def same_pads(size, kernel, stride):
    """TensorFlow "same": (before, after) padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFConv2d(nn.Conv2d):
    """nn.Conv2d with explicit (left, right, top, bottom) zero padding, which may be asymmetric."""

    def __init__(self, cin, cout, kernel, stride, pads):
        super().__init__(cin, cout, kernel, stride)
        self.pads = pads

    def forward(self, x):
        return super().forward(F.pad(x, self.pads))


class TFMaxPool2d(nn.MaxPool2d):
    def __init__(self, kernel, stride, pads):
        super().__init__(kernel, stride)
        self.pads = pads

    def forward(self, x):
        return super().forward(F.pad(x, self.pads, value=float("-inf")))


class TFConvTranspose2d(nn.ConvTranspose2d):
    """TensorFlow's conv2d_transpose: the full transposed convolution, cropped by the forward
    convolution's "before" padding (0 for Valid) to the output size, zero-extended at the
    bottom/right when shorter (output_padding), then the bias."""

    def __init__(self, cin, cout, kernel, stride, out_hw, same):
        super().__init__(cin, cout, kernel, stride)
        self.out_hw, self.same = out_hw, same

    def forward(self, x):
        full = F.conv_transpose2d(x, self.weight, None, self.stride)
        starts = []
        for axis, (size, out, k, s) in enumerate(zip(x.shape[2:], self.out_hw, self.kernel_size, self.stride)):
            total = (size - 1) * s + k - out
            starts.append(max(total, 0) // 2 if self.same else 0)
        y = full[:, :, starts[0]:starts[0] + self.out_hw[0], starts[1]:starts[1] + self.out_hw[1]]
        y = F.pad(y, (0, self.out_hw[1] - y.shape[3], 0, self.out_hw[0] - y.shape[2]))
        return y + self.bias.view(1, -1, 1, 1)


def torch_modules(layer, notes):
    """The torch modules of one latent layer (see io/pytorch.hpp for the mapping)."""
    kind, cin, cout, cfg = layer["type"], layer["in"], layer["out"], layer["config"]
    flat_input = cin[1] == 1 and cin[2] == 1
    if kind == "Conv2D":
        kernel, stride = (cfg["kernel_h"], cfg["kernel_w"]), (cfg["stride_h"], cfg["stride_w"])
        if cfg["padding"] == "valid":
            return [nn.Conv2d(cin[0], cout[0], kernel, stride)]
        (top, bottom), (left, right) = same_pads(cin[1], kernel[0], stride[0]), same_pads(cin[2], kernel[1], stride[1])
        if top == bottom and left == right:
            return [nn.Conv2d(cin[0], cout[0], kernel, stride, padding=(top, left))]
        notes.append(f"F.pad{(left, right, top, bottom)} before Conv2D")
        return [TFConv2d(cin[0], cout[0], kernel, stride, (left, right, top, bottom))]
    if kind == "ConvTranspose2D":
        kernel, stride = (cfg["kernel_h"], cfg["kernel_w"]), (cfg["stride_h"], cfg["stride_w"])
        return [TFConvTranspose2d(cin[0], cout[0], kernel, stride, (cout[1], cout[2]), cfg["padding"] == "same")]
    if kind == "MaxPool2D":
        kernel, stride = (cfg["pool_h"], cfg["pool_w"]), (cfg["stride_h"], cfg["stride_w"])
        if cfg["padding"] == "valid":
            return [nn.MaxPool2d(kernel, stride)]
        (top, bottom), (left, right) = same_pads(cin[1], kernel[0], stride[0]), same_pads(cin[2], kernel[1], stride[1])
        if top == bottom == left == right == 0:
            return [nn.MaxPool2d(kernel, stride)]
        notes.append(f"F.pad{(left, right, top, bottom)} with -inf before MaxPool2D")
        return [TFMaxPool2d(kernel, stride, (left, right, top, bottom))]
    if kind == "UpSample2D":
        mode = cfg["interpolation"]
        return [nn.Upsample(scale_factor=(cfg["factor_h"], cfg["factor_w"]), mode=mode,
                            **({} if mode == "nearest" else {"align_corners": False}))]
    if kind in ("Dense", "ContractiveDense"):
        modules = [] if flat_input else [nn.Flatten()]
        modules.append(nn.Linear(cin[0] * cin[1] * cin[2], cout[0], bias=cfg.get("use_bias", 1) == 1))
        return modules + ([nn.Sigmoid()] if kind == "ContractiveDense" else [])
    if kind == "BatchNorm":
        assert flat_input, "BatchNorm on a non-flat input needs Flatten/Unflatten in torch"
        return [nn.BatchNorm1d(cin[0], eps=cfg["eps"], momentum=cfg["momentum"])]
    if kind == "BatchNorm2D":
        return [nn.BatchNorm2d(cin[0], eps=cfg["eps"], momentum=cfg["momentum"])]
    if kind == "Flatten":
        return [nn.Flatten()]
    if kind == "Reshape":
        return [nn.Unflatten(1, (cfg["channels"], cfg["height"], cfg["width"]))]
    if kind == "Dropout":
        return [nn.Dropout(cfg["p"])]
    simple = {"ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "Softplus": nn.Softplus, "Identity": nn.Identity}
    if kind in simple:
        return [simple[kind]()]
    raise ValueError(f"no torch module for latent layer {kind}")


def number(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def describe(driver, network):
    lines = subprocess.run([driver, "describe", network], check=True, capture_output=True, text=True).stdout.splitlines()
    kind, input_text = lines[0].split()
    parts = {"encoder": [], "decoder": []}
    for line in lines[1:]:
        fields = line.split()
        values = dict(field.split("=", 1) for field in fields[2:])
        parts[fields[0]].append({"type": fields[1], "in": [int(v) for v in values.pop("in").split(",")],
                                 "out": [int(v) for v in values.pop("out").split(",")],
                                 "config": {key: number(value) for key, value in values.items()}})
    return kind, [int(v) for v in input_text.split("=")[1].split(",")], parts


class Network(nn.Module):
    """An Autoencoder (decoder(encoder(x))) or a VAE reconstructing through the mean."""

    def __init__(self, kind, parts, notes):
        super().__init__()
        self.kind = kind
        self.encoder = nn.Sequential(*[m for layer in parts["encoder"] for m in torch_modules(layer, notes)])
        self.decoder = nn.Sequential(*[m for layer in parts["decoder"] for m in torch_modules(layer, notes)])
        self.code = parts["encoder"][-1]["out"][0] // 2

    def forward(self, x):
        code = self.encoder(x)
        if self.kind == "vae":
            code = code.reshape(code.shape[0], -1)[:, :self.code]
        return self.decoder(code)


def randomise_batch_norm(model, generator):
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            size = module.num_features
            module.weight.data = 1 + 0.2 * torch.randn(size, generator=generator)
            module.bias.data = 0.2 * torch.randn(size, generator=generator)
            module.running_mean = 0.3 * torch.randn(size, generator=generator)
            module.running_var = 0.5 + torch.rand(size, generator=generator)
            module.num_batches_tracked.fill_(7)


def write_safetensors(path, state, dtype=None):
    """A .safetensors file written by hand: u64 header length, JSON header, the arrays."""
    names = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, tensor in state.items():
        array = tensor.detach().cpu().numpy()
        if dtype is not None and array.dtype.kind == "f":
            array = array.astype(dtype)
        array = array.astype(array.dtype.newbyteorder("<"), order="C")  # (ascontiguousarray makes a scalar 1-D)
        blob = array.tobytes()
        header[name] = {"dtype": names[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as source:
        data = source.read()
    (length,) = struct.unpack("<Q", data[:8])
    header, buffer = json.loads(data[8:8 + length]), data[8 + length:]
    types = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}
    return {name: torch.from_numpy(np.frombuffer(buffer[entry["data_offsets"][0]:entry["data_offsets"][1]],
                                                 dtype=types[entry["dtype"]]).reshape(entry["shape"]).copy())
            for name, entry in header.items() if name != "__metadata__"}


def read_npz(path):
    with np.load(path) as archive:
        return {name: torch.from_numpy(archive[name].copy()) for name in archive.files}


def relative_error(latent, reference):
    latent = np.asarray(latent, dtype=np.float64).ravel()
    reference = np.asarray(reference, dtype=np.float64).ravel()
    return float(np.abs(latent - reference).max() / max(np.abs(reference).max(), 1e-30))


def inputs(input_shape, generator):
    x = torch.rand(BATCH, *input_shape, generator=generator)
    return x, (x.reshape(BATCH, -1) if input_shape[1] == input_shape[2] == 1 else x)


def check(driver, network, directory, worst):
    kind, input_shape, parts = describe(driver, network)
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(11)
    notes = []
    model = Network(kind, parts, notes)
    randomise_batch_norm(model, generator)
    model.eval()
    x, torch_x = inputs(input_shape, generator)
    x_path = os.path.join(directory, network + "-x.npy")
    np.save(x_path, x.numpy())
    with torch.no_grad():
        expected = model(torch_x).numpy()
    state = model.state_dict()
    files = {"safetensors": network + ".safetensors", "safetensors f64": network + "-f64.safetensors",
             "npz stored": network + "-stored.npz", "npz deflated": network + "-deflated.npz"}
    paths = {label: os.path.join(directory, name) for label, name in files.items()}
    write_safetensors(paths["safetensors"], state)
    write_safetensors(paths["safetensors f64"], state, np.float64)
    np.savez(paths["npz stored"], **{name: tensor.numpy() for name, tensor in state.items()})
    np.savez_compressed(paths["npz deflated"], **{name: tensor.numpy() for name, tensor in state.items()})
    results = []
    for label, path in paths.items():
        y_path = path + "-y.npy"
        subprocess.run([driver, "forward", network, path, x_path, y_path], check=True)
        results.append(("torch -> latent", label, relative_error(np.load(y_path), expected)))

    prefix = os.path.join(directory, network + "-trained")
    subprocess.run([driver, "train", network, x_path, str(TRAIN_STEPS), prefix], check=True)
    latent_y = np.load(prefix + "-y.npy")
    for label, path, read in (("safetensors", prefix + ".safetensors", read_safetensors),
                              ("npz deflated", prefix + ".npz", read_npz), ("npz stored", prefix + "-stored.npz", read_npz)):
        trained = Network(kind, parts, [])
        trained.load_state_dict(read(path), strict=True)
        trained.eval()
        with torch.no_grad():
            results.append(("latent -> torch", label, relative_error(latent_y, trained(torch_x).numpy())))
    print(f"{network}: {kind}, input {tuple(input_shape)}, {sum(t.numel() for t in state.values())} values in "
          f"{len(state)} arrays" + (f"; {', '.join(sorted(set(notes)))}" if notes else ""))
    for direction, label, error in results:
        print(f"  {direction}  {label:<16} max relative error {error:.2e}")
        worst = max(worst, error)
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", help="the torch_weights program (built from torch_weights.cpp when not given)")
    parser.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    parser.add_argument("--keep", help="write the files here and keep them")
    arguments = parser.parse_args()
    directory = arguments.keep or tempfile.mkdtemp(prefix="latent-torch-weights-")
    os.makedirs(directory, exist_ok=True)
    try:
        driver = arguments.driver or build_driver(arguments.cxx, directory)
        torch.set_num_threads(1)
        print(f"torch {torch.__version__}, numpy {np.__version__}; {BATCH} inputs per network, {TRAIN_STEPS} training steps")
        networks = subprocess.run([driver, "list"], check=True, capture_output=True, text=True).stdout.split()
        worst = 0.0
        for network in networks:
            worst = check(driver, network, directory, worst)
        print(f"worst max relative error {worst:.2e} (tolerance {TOLERANCE:.0e})")
        return 0 if worst <= TOLERANCE else 1
    finally:
        if not arguments.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
