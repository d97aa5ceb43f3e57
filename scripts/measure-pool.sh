#!/usr/bin/env bash
# Measures `miner mine --pool` against `miner bench` in one session, as BENCHMARKS.md reports it:
# ROUNDS times, alternately,
#   1. `miner bench --threads T --seconds B --json` (B = BENCH_SECONDS per measurement; bench
#      measures every kernel): the all-threads rate of the kernel `mine` picks (the report's
#      "kernel");
#   2. a fresh `miner node --stratum 127.0.0.1:0 -d 1e12 --stratum-difficulty 0.01` and
#      `miner mine --pool stratum+tcp://ADDR --threads T --json` for S seconds (then SIGINT): the
#      pool summary's hashrate_hs (hashes over the seconds connected);
# and prints each round's ratio pool / bench, and the mean.
# Usage: scripts/measure-pool.sh   Environment: MINER (default target/release/miner), ROUNDS (3),
# SECONDS_EACH (10, the mine --pool run), BENCH_SECONDS (2), THREADS (all logical CPUs).
# Needs python3.
set -euo pipefail
export MINER=${MINER:-target/release/miner}
export ROUNDS=${ROUNDS:-3}
export SECONDS_EACH=${SECONDS_EACH:-10}
export THREADS=${THREADS:-$(nproc)}
export BENCH_SECONDS=${BENCH_SECONDS:-2}
lscpu | grep -E '^(Model name|CPU family|Model|CPU\(s\)):' || true
exec python3 - <<'PY'
import json, os, signal, subprocess, tempfile, time

miner, rounds = os.environ["MINER"], int(os.environ["ROUNDS"])
secs, threads = float(os.environ["SECONDS_EACH"]), os.environ["THREADS"]

def bench():
    out = subprocess.run([miner, "bench", "--threads", threads, "--seconds", os.environ["BENCH_SECONDS"], "--json"],
                         capture_output=True, text=True, check=True).stdout
    d = json.loads(out)
    k = next(k for k in d["kernels"] if k["kernel"] == d["kernel"])
    return d["kernel"], k["mhs_all_threads"] * 1e6

def pool():
    with tempfile.TemporaryDirectory() as dir:
        node = subprocess.Popen([miner, "node", "--rpcport", "0", "--rpcuser", "u", "--rpcpassword", "p",
                                 "--datadir", dir, "--stratum", "127.0.0.1:0", "-d", "1e12",
                                 "--stratum-difficulty", "0.01"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            addr = None
            deadline = time.time() + 30
            while addr is None and time.time() < deadline:
                line = node.stderr.readline()
                if line.startswith("stratum: listening on "):
                    addr = line.split()[-1]
            if addr is None:
                raise SystemExit("the node did not start")
            m = subprocess.Popen([miner, "mine", "--pool", f"stratum+tcp://{addr}", "--threads", threads,
                                  "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(secs)
            m.send_signal(signal.SIGINT)
            out, _ = m.communicate(timeout=30)
            summary = [json.loads(l) for l in out.splitlines() if '"pool_summary"' in l][-1]
            return summary["hashrate_hs"], summary["accepted"], summary["seconds"]
        finally:
            node.kill()
            node.wait()

ratios = []
for r in range(rounds):
    kernel, b = bench()
    p, accepted, connected = pool()
    ratios.append(p / b)
    print(f"round {r + 1}: bench ({kernel}, {threads} threads) {b / 1e6:.2f} MH/s; mine --pool "
          f"{p / 1e6:.2f} MH/s over {connected:.1f} s connected, {accepted} shares accepted; ratio {p / b:.3f}")
print(f"mean ratio {sum(ratios) / len(ratios):.3f} over {rounds} rounds")
PY
