#!/usr/bin/env bash
# Measures `miner node` over P2P the way examples/p2p_bench.rs does: relay latency A→B and
# A→B→C, initial sync rate from one peer and from three, and memory with many peers.
# Builds the release binary and the example, then runs the example with the arguments given.
# Usage: scripts/measure-p2p.sh [--blocks N] [--sync-blocks N] [--peers N] [--skip-relay]
#        [--skip-sync] [--skip-memory] [--json] [--generate] [--sync-timeout SECS] [--logs DIR]
# e.g.   scripts/measure-p2p.sh                                   (1000 blocks, 100,000, 100 peers)
#        scripts/measure-p2p.sh --blocks 30 --sync-blocks 3000 --peers 20   (a smoke run)
# Environment: FEATURES (cargo features, default node,cli); CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
features=${FEATURES:-node,cli}
cargo build --release --bin miner --example p2p_bench --features "$features" >&2
exec "$target/release/examples/p2p_bench" --miner "$target/release/miner" "$@"
