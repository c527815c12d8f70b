#!/usr/bin/env bash
# The demo: from a fresh Debian/Ubuntu machine to a denoised-MNIST picture.
#   1. installs the build dependencies (with sudo when not root),
#   2. builds latent's examples in Release,
#   3. fetches MNIST (examples/get_mnist.sh),
#   4. trains the convolutional denoiser with its defaults and writes out/mnist_denoise/.
# Run it from anywhere: bash examples/demo.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

packages=(build-essential cmake pkg-config libeigen3-dev catch2 libstb-dev zlib1g-dev python3 npm)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "demo: installing ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLATENT_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target mnist_denoise
bash examples/get_mnist.sh
./build/examples/mnist_denoise --data data/mnist --out out/mnist_denoise
echo "demo: the clean / noisy / denoised digits are in $repo/out/mnist_denoise/grid.png"
