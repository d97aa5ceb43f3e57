#!/usr/bin/env bash
# Measures the GPU backend the way BENCHMARKS.md reports it, in one go:
#   1. the adapters wgpu finds;
#   2. the settings sweep (workgroup size x nonces per invocation) -> the best setting;
#   3. `bench --backend all` at that setting: the GPU beside every CPU kernel, same run;
#   4. `scan` and `mine` on the GPU at that setting, end to end (job changes, read-back,
#      validation), each sized to about E2E_SECONDS at the bench rate, and their ratio to it.
# Usage: scripts/measure-gpu.sh [OUTDIR]       (default OUTDIR: gpu-measure)
# Environment: MINER (default target/release/miner), SECONDS_PER (seconds per bench figure,
# default 2), E2E_SECONDS (default 10), SWEEP_WG and SWEEP_NPI (comma lists; default: the
# sweep's own). Needs python3 to read the JSON.
set -euo pipefail
miner=${MINER:-target/release/miner}
out=${1:-gpu-measure}
s=${SECONDS_PER:-2}
e2e=${E2E_SECONDS:-10}
sweep=()
[ -n "${SWEEP_WG:-}" ] && sweep+=(--sweep-workgroup-sizes "$SWEEP_WG")
[ -n "${SWEEP_NPI:-}" ] && sweep+=(--sweep-nonces "$SWEEP_NPI")
mkdir -p "$out"
genesis=0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d00000000
json() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); print($2)" "$1"; }

"$miner" devices | tee "$out/devices.txt"
"$miner" bench --backend gpu --gpu-sweep ${sweep[@]+"${sweep[@]}"} --seconds "$s" --json >"$out/sweep.json"
wg=$(json "$out/sweep.json" "v['gpu']['workgroup_size']")
npi=$(json "$out/sweep.json" "v['gpu']['nonces_per_invocation']")
flags=(--gpu-workgroup-size "$wg" --gpu-nonces-per-invocation "$npi")
"$miner" bench --backend all --seconds "$s" "${flags[@]}" --json >"$out/bench-all.json"
rate=$(json "$out/bench-all.json" "v['gpu']['mhs'] * 1e6")
# About E2E_SECONDS of scanning, within the 2^32 nonces of one header.
count=$(python3 -c "print(min(int($rate * $e2e), 2**32))")
"$miner" scan --backend gpu "${flags[@]}" --header "$genesis" --start 0 --count "$count" \
    --json >"$out/scan.json"
# Ten blocks of about E2E_SECONDS / 10 each (D at least 1e6).
d=$(python3 -c "print(max(int($rate * $e2e / 10), 10**6))")
"$miner" mine --backend gpu "${flags[@]}" --memory -d "$d" -n 10 --json >"$out/mine.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
sweep = json.load(open(f"{out}/sweep.json"))
bench = json.load(open(f"{out}/bench-all.json"))
last = lambda path: [json.loads(l) for l in open(path) if l.strip()][-1]
scan, mine = last(f"{out}/scan.json"), last(f"{out}/mine.json")
g = bench["gpu"]
print(f"adapter  {g['adapter']} ({g['backend']}, {g['device_type']}, driver {g['driver']})")
sw = sweep["gpu_sweep"]
print("sweep    " + ", ".join(f"{r['workgroup_size']}x{r['nonces_per_invocation']}: {r['mhs']:.1f}" for r in sw["results"]))
best = sweep["gpu"]
print(f"best     workgroup {best['workgroup_size']}, {best['nonces_per_invocation']} nonces/invocation: "
      f"{best['mhs']:.2f} MH/s = {best['mhs'] / sw['default_mhs']:.2f}x the default (256 x 8, {sw['default_mhs']:.2f})")
print(f"bench    gpu {g['mhs']:.2f} MH/s, {g['dispatch_nonces']} nonces/dispatch; gpu/cpu {g['ratio_to_best_cpu']:.2f}x against {g['best_cpu_kernel']}")
scan_mhs = scan["hashrate_hs"] / 1e6 if "hashrate_hs" in scan else scan["hashes"] / scan["seconds"] / 1e6
mine_mhs = mine["mean_hashrate_hs"] / 1e6
print(f"scan     {scan_mhs:.2f} MH/s = {scan_mhs / g['mhs']:.3f}x bench ({scan['hashes']} nonces)")
print(f"mine     {mine_mhs:.2f} MH/s = {mine_mhs / g['mhs']:.3f}x bench ({mine['blocks']} blocks at D {mine['difficulty']:.3g})")
PY
