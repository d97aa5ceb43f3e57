#!/usr/bin/env bash
# Instructions per nonce of every SIMD/SHA kernel's hot loop in the release build: the x86-64
# kernels (sha-ni in its three builds, avx2, avx512) from the host build, the aarch64 ones
# (armv8-sha, neon) from a cross build, with the instruction mix and, for the aarch64 kernels,
# the cycles per nonce that published per-pipeline throughputs predict for Neoverse N1 and V1
# (a prediction, not a measurement). Usage: scripts/op-count.sh (about 2 minutes once built).
#
# Both builds are `cargo build --release --example scan_genesis --no-default-features`: a binary
# whose start-up calibration runs every kernel the CPU has through `Kernel::scan` on a job no
# nonce meets; the aarch64 one linked by aarch64-linux-gnu-gcc, as scripts/test.sh does. Each kernel
# is its own symbol (`miner::hash::arm_sha2::scan`, ...); scripts/op-count.py finds its hot loop
# in `objdump -d` and counts one iteration two ways: the instructions in the loop's address range
# (static), and those one iteration executes, callees included (dynamic: single-stepped, natively
# under gdb on x86-64, under qemu-user with `-singlestep -d exec,nochain` on aarch64). Per nonce
# is the executed count over the nonces an iteration hashes. The disassembly is left in
# target/op-count-x86_64.s and target/op-count-aarch64.s.
#
# Needs: objdump and gdb (x86-64, the kernels this CPU has), aarch64-linux-gnu-objdump and
# qemu-aarch64 (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user), python3, and the
# aarch64 target (`rustup target add aarch64-unknown-linux-gnu`); scripts/test.sh installs all
# but gdb.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'scripts/op-count.sh: %s\n' "$*" >&2; }

target_dir="${CARGO_TARGET_DIR:-target}"
say "building the host release binary (examples/scan_genesis)"
cargo build -q --release --example scan_genesis --no-default-features
host_bin="$target_dir/release/examples/scan_genesis"

say "building the aarch64 release binary"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
  cargo build -q --release --example scan_genesis --no-default-features \
  --target aarch64-unknown-linux-gnu
arm_bin="$target_dir/aarch64-unknown-linux-gnu/release/examples/scan_genesis"

objdump -d --no-show-raw-insn -M intel -C "$host_bin" >"$target_dir/op-count-x86_64.s"
aarch64-linux-gnu-objdump -d --no-show-raw-insn -C "$arm_bin" >"$target_dir/op-count-aarch64.s"
say "disassembly in $target_dir/op-count-x86_64.s and $target_dir/op-count-aarch64.s"

python3 scripts/op-count.py "$host_bin" "$target_dir/op-count-x86_64.s" \
  "$arm_bin" "$target_dir/op-count-aarch64.s"
