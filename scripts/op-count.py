#!/usr/bin/env python3
"""Instructions per nonce of each SIMD/SHA kernel's hot loop (scripts/op-count.sh runs this).

For each kernel, its `scan` symbol in the release build's disassembly (`objdump -d`) holds the
hot loop: of its loops (back edges), the one whose address range holds the most vector and SHA
instructions, counting those of the functions it calls (the compiler may keep the hash out of
line). Its size there is the static count. The dynamic count is what one iteration executes,
callees included (a `memset` or an out-of-line hash counts): the `scan_genesis` example, whose
start-up calibration runs every kernel the CPU has on a job no nonce meets (so each iteration
takes the common path: a full batch, no candidate), is single-stepped from one arrival at the
loop's head to the next. x86-64 runs natively under gdb (`stepi`; this file is also the gdb
script), aarch64 under qemu-user with one instruction per translation block and each executed
one logged (`-singlestep -d exec,nochain`). Per nonce is the median iteration over the nonces
an iteration hashes. Executed instructions are classed by mnemonic; `libc` are those outside the
binary.

Usage: op-count.py X86_BINARY X86_OBJDUMP ARM_BINARY ARM_OBJDUMP
"""

import os
import re
import statistics
import subprocess
import sys
import threading

# (architecture, kernel, symbol, nonces per iteration, MINER_DISABLE_KERNELS for the run)
KERNELS = [
    ("x86_64", "sha-ni (avx512vl build)", "miner::hash::x86_shani::avx512vl::scan", 8, ""),
    ("x86_64", "sha-ni (avx2 build)", "miner::hash::x86_shani::avx2::scan", 8, "avx512"),
    ("x86_64", "sha-ni (sse build)", "miner::hash::x86_shani::sse::scan", 8, "avx512,avx2"),
    ("x86_64", "avx512", "miner::hash::x86_avx512::scan", 16, ""),
    ("x86_64", "avx2", "miner::hash::x86_avx2::scan", 8, ""),
    ("aarch64", "armv8-sha", "miner::hash::arm_sha2::scan", 4, "sha2"),
    ("aarch64", "neon", "miner::hash::arm_neon::scan", 4, "sha2,armv8-sha"),
]
ITERATIONS = 6
CLASSES = ["sha", "vshift", "vector", "load", "store", "scalar", "libc"]

FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")


def tracer():
    """The gdb side: step OPCOUNT_ITERATIONS iterations from the loop head, print the PCs."""
    import gdb

    gdb.execute("set pagination off")
    gdb.execute("set confirm off")
    gdb.execute("starti", to_string=True)
    where = gdb.execute(f"info address {os.environ['OPCOUNT_MANGLED']}", to_string=True)
    runtime = int(re.search(r"is at (0x[0-9a-f]+)", where).group(1), 16)
    base = runtime - int(os.environ["OPCOUNT_FUNC"], 16)
    head = base + int(os.environ["OPCOUNT_HEAD"], 16)
    gdb.execute(f"break *{head:#x}", to_string=True)
    gdb.execute("continue", to_string=True)
    gdb.execute("set scheduler-locking step")
    if gdb.selected_frame().pc() != head:
        print("OPCOUNT never reached")
        return
    pcs = [head]
    for _ in range(int(os.environ["OPCOUNT_ITERATIONS"])):
        while True:
            gdb.execute("stepi", to_string=True)
            pc = gdb.selected_frame().pc()
            pcs.append(pc)
            if pc == head:
                break
    print("OPCOUNT " + " ".join(f"{pc - base:x}" for pc in pcs))
    gdb.execute("kill")


def functions(path):
    """{demangled symbol: (mangled-free start address, [(address, mnemonic, operands)])}."""
    funcs, name = {}, None
    for line in open(path):
        m = FUNC.match(line.rstrip("\n"))
        if m:
            name = m.group(2)
            funcs[name] = []
            continue
        m = INSN.match(line)
        if m and name is not None:
            funcs[name].append((int(m.group(1), 16), m.group(2), m.group(3).strip()))
    return funcs


def branch(arch, mnem, ops):
    """(kind, target) with kind 'jump', 'cond', 'call', 'ret' or None."""
    target = re.search(r"\b([0-9a-f]+) <", ops)
    target = int(target.group(1), 16) if target else None
    if arch == "x86_64":
        if mnem == "jmp":
            return ("jump", target)
        if mnem.startswith("j"):
            return ("cond", target)
        if mnem == "call":
            return ("call", target)
        if mnem.startswith("ret"):
            return ("ret", None)
    else:
        if mnem == "b":
            return ("jump", target)
        if mnem.startswith("b.") or mnem in ("cbz", "cbnz", "tbz", "tbnz"):
            return ("cond", target)
        if mnem in ("bl", "blr"):
            return ("call", target)
        if mnem in ("ret", "br"):
            return ("ret", None)
    return (None, None)


def hot_loop(arch, insns, funcs):
    """(head, tail) of the loop that does the hashing: of the back edges in `insns`, the one whose
    range holds the most vector and SHA instructions (counting those of the functions it calls,
    where the compiler kept the hash out of line), the innermost on a tie."""
    start = {f[0][0]: f for f in funcs.values() if f}

    def work(body, depth=1):
        n = 0
        for _, m, o in body:
            if classify(arch, m, o) in ("sha", "vshift", "vector"):
                n += 1
            kind, target = branch(arch, m, o)
            if kind == "call" and depth > 0 and target in start:
                n += work(start[target], depth - 1)
        return n

    edges = []
    for a, m, o in insns:
        kind, target = branch(arch, m, o)
        if kind in ("jump", "cond") and target is not None and insns[0][0] <= target <= a:
            body = [i for i in insns if target <= i[0] <= a]
            edges.append((work(body), -(a - target), target, a))
    if not edges:
        return None
    _, _, head, tail = max(edges)
    return head, tail


def classify(arch, mnem, ops):
    if mnem.startswith("sha256"):
        return "sha"
    if arch == "aarch64":
        vector = re.search(r"\bv\d+\.|\bq\d+\b", ops)
        if re.match(r"ld", mnem):
            return "load"
        if re.match(r"st", mnem):
            return "store"
        if vector and mnem in ("ushr", "shl", "sli", "sri", "usra", "ssra"):
            return "vshift"
        return "vector" if vector else "scalar"
    vector = re.search(r"\b[xyz]mm\d+", ops)
    if re.match(r"v?p(s[lr][la]|ro[lr])", mnem) and vector:
        return "vshift"
    if re.match(r"v?mov", mnem) and "[" in ops and "lea" not in mnem:
        return "store" if "[" in ops.split(",")[0] else "load"
    return "vector" if vector else "scalar"


def trace_x86(binary, mangled, func, head, disable):
    env = dict(os.environ, OPCOUNT_MANGLED=mangled, OPCOUNT_FUNC=f"{func:x}",
               OPCOUNT_HEAD=f"{head:x}", OPCOUNT_ITERATIONS=str(ITERATIONS),
               MINER_DISABLE_KERNELS=disable)
    out = subprocess.run(["gdb", "-q", "-batch", "-x", __file__, binary], env=env,
                         capture_output=True, text=True, timeout=900).stdout
    line = next((l for l in out.splitlines() if l.startswith("OPCOUNT ")), None)
    if line is None or "never reached" in line:
        return None
    return [int(x, 16) for x in line.split()[1:]]


def trace_arm(binary, mangled, func, head, disable):
    """PCs (static addresses) of ITERATIONS iterations, logged by qemu-user."""
    env = dict(os.environ, MINER_DISABLE_KERNELS=disable)
    proc = subprocess.Popen(
        ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "-singlestep", "-d", "exec,nochain",
         "-D", "/dev/stderr", binary],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trace = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/[0-9a-f]+\] ?(\S*)")
    base, pcs, heads = None, None, 0
    # A kernel this emulated CPU lacks never reaches its head: give up after ten minutes.
    timer = threading.Timer(600, proc.kill)
    timer.start()
    try:
        for line in proc.stderr:
            m = trace.match(line)
            if not m:
                continue
            pc = int(m.group(1), 16)
            if base is None:
                if m.group(2) == mangled:
                    base = pc - func  # a call enters at the symbol's first instruction
                continue
            pc -= base
            if pcs is None:
                if pc == head:
                    pcs = [pc]
                continue
            pcs.append(pc)
            if pc == head:
                heads += 1
                if heads == ITERATIONS:
                    return pcs
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
    return None


def main():
    x86_bin, x86_dump, arm_bin, arm_dump = sys.argv[1:5]
    dumps = {"x86_64": (x86_bin, functions(x86_dump)), "aarch64": (arm_bin, functions(arm_dump))}
    mangled = {}
    for arch, (binary, _) in dumps.items():
        nm = "nm" if arch == "x86_64" else "aarch64-linux-gnu-nm"
        symbols = subprocess.run([nm, binary], capture_output=True, text=True).stdout
        for line in symbols.splitlines():
            parts = line.split()
            if len(parts) == 3 and "4hash" in parts[2]:
                mangled[(arch, int(parts[0], 16))] = parts[2]
    rows = []
    for arch, kernel, symbol, nonces, disable in KERNELS:
        binary, funcs = dumps[arch]
        insns = funcs.get(symbol)
        if not insns:
            print(f"{kernel}: no symbol {symbol}", file=sys.stderr)
            continue
        func = insns[0][0]
        loop = hot_loop(arch, insns, funcs)
        if loop is None:
            print(f"{kernel}: no loop in {symbol}", file=sys.stderr)
            continue
        head, tail = loop
        static = sum(1 for a, _, _ in insns if head <= a <= tail)
        print(f"tracing {kernel} ({symbol}, loop {head:#x}..{tail:#x})", file=sys.stderr)
        trace = trace_x86 if arch == "x86_64" else trace_arm
        pcs = trace(binary, mangled[(arch, func)], func, head, disable)
        if pcs is None:
            print(f"{kernel}: not run on this machine (CPU lacks it?)", file=sys.stderr)
            continue
        by_address = {a: (m, o) for f in funcs.values() for a, m, o in f}
        iterations, counts, current = [], [], dict.fromkeys(CLASSES, 0)
        for pc in pcs[1:]:
            m, o = by_address.get(pc, (None, None))
            current["libc" if m is None else classify(arch, m, o)] += 1
            if pc == head:
                iterations.append(sum(current.values()))
                counts.append(current)
                current = dict.fromkeys(CLASSES, 0)
        median = statistics.median(iterations)
        # The class counts of an iteration of median length (the last one if none is).
        typical = next((c for c, n in zip(counts, iterations) if n == median), counts[-1])
        rows.append((arch, kernel, nonces, static, iterations, median, typical))

    print("Hot loop of each kernel, release build: static = instructions in the loop's address")
    print(f"range; executed = one iteration single-stepped (median of {ITERATIONS}), common path.")
    print("Executed per nonce, by class: sha = SHA-256 instructions; vshift = vector shifts and")
    print("rotates; vector = other vector ops; load/store = moves from/to memory; scalar = the")
    print("rest (loop control, nonce setup); libc = instructions outside the binary (memset).")
    print()
    head = f"{'arch':8} {'kernel':24} {'nonces':>6} {'static':>6} {'executed':>8} {'/nonce':>7} "
    print(head + " ".join(f"{c:>6}" for c in CLASSES))
    for arch, kernel, nonces, static, iterations, median, c in rows:
        per = " ".join(f"{c[k] / nonces:6.1f}" for k in CLASSES)
        print(f"{arch:8} {kernel:24} {nonces:6} {static:6} {median:8.0f} "
              f"{median / nonces:7.1f} {per}")
    for arch, kernel, nonces, static, iterations, median, c in rows:
        if len(set(iterations)) > 1:
            print(f"  ({kernel}: iterations executed {iterations})")

    # Predicted cycles per nonce for the aarch64 kernels: the busiest resource, from the Arm
    # Software Optimization Guides' pipelines (as LLVM's scheduling models encode them:
    # llvm/lib/Target/AArch64/AArch64SchedNeoverseN1.td, AArch64SchedNeoverseV1.td):
    #  Neoverse N1: SHA256H/H2/SU0/SU1 on V0 only, 1 per cycle; ASIMD shifts (USHR, SHL, SLI)
    #    on V1 only; other ASIMD on V0 or V1; 2 load/store pipelines; 4 instructions decoded a
    #    cycle.
    #  Neoverse V1: SHA-256 on V0 only; ASIMD shifts on V1 or V3; other ASIMD on V0..V3; 3 load
    #    pipelines (2 of them store); 5 instructions decoded a cycle (8 macro-ops from the
    #    macro-op cache, which the unrolled neon loop would not fit).
    print()
    print("Predicted cycles per nonce on Arm cores (busiest resource, from published per-pipeline")
    print("throughputs; a prediction, not a measurement):")
    for arch, kernel, nonces, static, iterations, median, c in rows:
        if arch != "aarch64":
            continue
        p = {k: v / nonces for k, v in c.items()}
        total = median / nonces
        vec = p["sha"] + p["vshift"] + p["vector"]
        mem = p["load"] + p["store"] + p["libc"]
        cores = [
            ("Neoverse N1", 2.5, {
                "V0 (SHA-256)": p["sha"],
                "V1 (vector shifts)": p["vshift"],
                "V0+V1 (all vector)": vec / 2,
                "load/store": mem / 2,
                "decode (4/cycle)": total / 4,
            }),
            ("Neoverse V1", 2.6, {
                "V0 (SHA-256)": p["sha"],
                "V1+V3 (vector shifts)": p["vshift"] / 2,
                "V0..V3 (all vector)": vec / 4,
                "load/store": mem / 3,
                "decode (5/cycle)": total / 5,
            }),
        ]
        for core, ghz, bounds in cores:
            limit = max(bounds, key=bounds.get)
            cycles = bounds[limit]
            print(f"  {kernel:10} {core}: {cycles:6.1f} cycles/nonce, bound by {limit}; "
                  f"{ghz * 1e3 / cycles:5.1f} MH/s per core at {ghz} GHz")


if __name__ == "__main__":
    try:
        import gdb  # noqa: F401  (present only when gdb runs this file)
    except ImportError:
        main()
    else:
        tracer()
