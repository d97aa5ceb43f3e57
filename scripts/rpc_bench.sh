#!/usr/bin/env bash
# Requests per second and p50/p99 latency of `getblockcount` at 8, 32 and 128 concurrent
# kept-alive clients, for each `miner` binary given (e.g. the old build's and the new one's),
# measured in one run. Usage: scripts/rpc_bench.sh SECONDS BIN [BIN...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=$1; shift
cargo build -q --example rpc_load
load=target/debug/examples/rpc_load
for bin in "$@"; do
  dir=$(mktemp -d)
  "$bin" node --datadir "$dir" --rpcport 0 --threads 1 -d 1e4 2>"$dir/log" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$dir/log" 2>/dev/null && break; sleep 0.1; done
  addr=$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$dir/log")
  cookie=$(sed -n 's/.*cookie file \(.*\))$/\1/p' "$dir/log")
  echo "== $bin ($addr)"
  for c in 8 32 128; do "$load" "$addr" "$cookie" "$c" "$secs"; done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
done
