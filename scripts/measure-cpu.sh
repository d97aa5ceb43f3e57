#!/usr/bin/env bash
# Measures the CPU kernels the way BENCHMARKS.md reports them, in one session:
#   1. the CPU (lscpu model name, family, model);
#   2. `miner bench --threads 1`: every kernel on one thread, against the `sha2` loop of the run;
#   3. `miner scan --threads 1` end to end, once per kernel (--kernel K), once with the default
#      (calibrated) kernel and once per build of sha-ni (MINER_DISABLE_KERNELS hides the
#      features of the wider builds), alternating for ROUNDS rounds; each rate is taken both per
#      wall second and per CPU second of the process (user + sys), which stays true on a shared,
#      loaded machine where wall-clock rates drop with time slicing;
#   4. kernels mixed across threads: two single-thread scans at once (one per core), e.g.
#      sha-ni beside avx512, against two of the same.
# Usage: scripts/measure-cpu.sh                 (prints a report; nothing is written)
# Environment: MINER (default target/release/miner), ROUNDS (default 5), SCAN_SECONDS (length of
# each scan at the kernel's bench rate, default 1), BENCH_SECONDS (default 2). Needs python3.
set -euo pipefail
export MINER=${MINER:-target/release/miner}
export ROUNDS=${ROUNDS:-5}
export SCAN_SECONDS=${SCAN_SECONDS:-1}
export BENCH_SECONDS=${BENCH_SECONDS:-2}
lscpu | grep -E '^(Model name|CPU family|Model|Thread\(s\) per core|CPU\(s\)):' || true
exec python3 - <<'PY'
import json, os, resource, statistics, subprocess, tempfile, time

miner = os.environ["MINER"]
rounds = int(os.environ["ROUNDS"])
scan_s = float(os.environ["SCAN_SECONDS"])
bench_s = os.environ["BENCH_SECONDS"]
genesis = ("0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd"
           "7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d00000000")

def run(args, env=None):
    """Runs miner; returns (stdout, wall seconds, CPU seconds of the child)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run([miner] + args, capture_output=True, text=True, check=True,
                         env=env).stdout
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return out, wall, cpu

cmd = ["bench", "--threads", "1", "--seconds", bench_s, "--json"]
bench = json.loads(run(cmd)[0])
print(f"\n$ miner {' '.join(cmd)}")
print(f"{'kernel':<8} {'MH/s':>8} {'vs sha2':>8}")
rates = {}
for k in bench["kernels"]:
    rates[k["kernel"]] = k["mhs_one_thread"]
    print(f"{k['kernel']:<8} {k['mhs_one_thread']:>8.2f} {k['ratio_to_sha2_one_thread']:>7.2f}x")
print(f"default kernel: {bench.get('kernel')} ({bench.get('kernel_choice')})")

# End to end: each kernel, the default, and the three builds of sha-ni (selected by hiding
# the features the wider builds need), alternating.
subjects = [(k, ["--kernel", k], None) for k in rates] + [("default", [], None)]
if "sha-ni" in rates:
    subjects += [("sha-ni/sse", ["--kernel", "sha-ni"], "avx512,avx2")]
    if "avx2" in rates:
        subjects += [("sha-ni/avx2", ["--kernel", "sha-ni"], "avx512")]
fast = max(rates.values())
wall_r = {s[0]: [] for s in subjects}
cpu_r = {s[0]: [] for s in subjects}
chosen = set()
for _ in range(rounds):
    for label, flags, hide in subjects:
        kernel = flags[1] if flags else None
        count = int((rates[kernel] if kernel else fast) * 1e6 * scan_s)
        args = ["scan", "--threads", "1", "--header", genesis, "--count", str(count),
                "-d", "1e15", "--json"] + flags
        env = dict(os.environ)
        if hide:
            env["MINER_DISABLE_KERNELS"] = hide
        out, wall, cpu = run(args, env)
        summary = json.loads(out.strip().splitlines()[-1])
        if label == "default":
            chosen.add(f"{summary['kernel']} ({summary['kernel_choice']})")
        wall_r[label].append(summary["hashes"] / wall / 1e6)
        cpu_r[label].append(summary["hashes"] / cpu / 1e6)
med = {label: statistics.median(cpu_r[label]) for label in cpu_r}
print(f"\n$ miner scan --threads 1 [--kernel K] --header <genesis> --count <{scan_s} s> -d 1e15"
      f" ({rounds} rounds, alternating; sha-ni/sse and sha-ni/avx2 with MINER_DISABLE_KERNELS"
      f" hiding avx512,avx2 or avx512)")
print(f"{'kernel':<12} {'MH/s per CPU s':>15} {'best':>7} {'vs sha2':>8} {'best vs best':>13}"
      f" {'MH/s per wall s':>16}")
best_sha2 = max(cpu_r["sha2"])
for label in cpu_r:
    print(f"{label:<12} {med[label]:>15.2f} {max(cpu_r[label]):>7.2f} {med[label] / med['sha2']:>7.2f}x"
          f" {max(cpu_r[label]) / best_sha2:>12.2f}x {statistics.median(wall_r[label]):>16.2f}")
print(f"default ran: {', '.join(sorted(chosen))}")

# Kernels mixed across threads: two one-thread scans at once.
pairs = [(a, b) for a, b in [("sha-ni", "avx512"), ("sha-ni", "sha-ni"), ("avx512", "avx512")]
         if a in rates and b in rates]
if pairs:
    print("\ntwo one-thread scans at once (one per core), MH/s per CPU second, median of rounds")
    for a, b in pairs:
        totals = []
        for _ in range(rounds):
            procs = []
            for k in (a, b):
                count = int(rates[k] * 1e6 * scan_s)
                args = [miner, "scan", "--threads", "1", "--kernel", k, "--header", genesis,
                        "--count", str(count), "-d", "1e15", "--json"]
                f = tempfile.TemporaryFile(mode="w+")
                procs.append((subprocess.Popen(args, stdout=f, stderr=subprocess.DEVNULL), f))
            total = 0.0
            for p, f in procs:
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                f.seek(0)
                summary = json.loads(f.read().strip().splitlines()[-1])
                total += summary["hashes"] / (ru.ru_utime + ru.ru_stime) / 1e6
            totals.append(total)
        print(f"{a} + {b}: {statistics.median(totals):.2f} MH/s (the two summed)")
PY
