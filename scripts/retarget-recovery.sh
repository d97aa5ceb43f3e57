#!/usr/bin/env bash
# How fast a controller follows a 10x step of hash rate, over many seeds, from `miner
# retarget-sim`'s per-block CSV: for each seed, the blocks after the step until the difficulty D
# first comes within a factor 2 of the new level (hash rate x T) and within 10% of it; then the
# mean, median and range over the seeds, for the step up (1 -> 10 MH/s at block 2500) and the step
# down (10 -> 1 MH/s at block 5000).
# It also prints the controller's mean interval error over the whole run, per seed and averaged.
# Usage: scripts/retarget-recovery.sh [ALGO] [SEEDS] [extra retarget-sim flags...]
#        (defaults: asert, 30 seeds; e.g. `lwma 10 --window 45`)
# Environment: MINER (default target/release/miner), SPACING (the block time T in seconds,
# default 600).
set -euo pipefail
miner=${MINER:-target/release/miner}
algo=${1:-asert}
seeds=${2:-30}
t=${SPACING:-600}
shift $(($# > 2 ? 2 : $#))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for seed in $(seq 1 "$seeds"); do
  "$miner" retarget-sim --algo "$algo" --block-time "$t" --blocks 7500 \
    --hashrate 1M,10M@2500,1M@5000 --seed "$seed" --csv "$tmp/s.csv" --json "$@" >"$tmp/s.json"
  err=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["mean_error_pct"])' "$tmp/s.json" 2>/dev/null ||
    grep -o '"mean_error_pct": *[-0-9.e]*' "$tmp/s.json" | grep -o '[-0-9.e]*$')
  awk -F, -v seed="$seed" -v err="$err" -v t="$t" '
    NR == 1 { next }
    { h = $2; d = $6 }
    h > 2500 && h <= 5000 { r = d / (1e7 * t)
      if (!u2 && r >= 0.5 && r <= 2) u2 = h - 2500
      if (!u10 && r >= 0.9 && r <= 1.1) u10 = h - 2500 }
    h > 5000 { r = d / (1e6 * t)
      if (!d2 && r >= 0.5 && r <= 2) d2 = h - 5000
      if (!d10 && r >= 0.9 && r <= 1.1) d10 = h - 5000 }
    END { printf "%d %d %d %d %d %s\n", seed, u2, u10, d2, d10, err }' "$tmp/s.csv"
done >"$tmp/all.txt"
echo "seed  up:x2 up:10%  down:x2 down:10%  mean interval error %"
awk '{ printf "%4d %7d %6d %8d %9d  %+.2f\n", $1, $2, $3, $4, $5, $6 }' "$tmp/all.txt"
summary() { # column, label
  cut -d' ' -f"$1" "$tmp/all.txt" | sort -n | awk -v label="$2" '
    { v[NR] = $1; s += $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%-44s mean %7.1f  median %6.1f  range %d..%d\n", label, s / NR, m, v[1], v[NR] }'
}
echo "over $seeds seeds, $algo, T = $t s, blocks after the step until D is"
summary 2 "10x up: within a factor 2 of the new level"
summary 3 "10x up: within 10% of the new level"
summary 4 "10x down: within a factor 2 of the new level"
summary 5 "10x down: within 10% of the new level"
awk '{ s += $6 } END { printf "mean interval error over the runs: %+.2f%%\n", s / NR }' "$tmp/all.txt"
