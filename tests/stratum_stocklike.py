#!/usr/bin/env python3
"""A "stock miner" Stratum v1 client, written from the protocol alone (not from the server's code).

It models pooler's minerd 2.5.1 and cpuminer-opt in the one behaviour that matters for vardiff:
`mining.set_difficulty` is stored as *pending* and applies only from the next `mining.notify`; the
job received next is mined at it, while work on the current job goes on at the difficulty that was
in force when that job arrived. A correct pool judges a share at the difficulty in force when its
job was sent (and sends a fresh job right after a difficulty change), so such a miner never gets
"Low difficulty share" (code 23). This client mines real shares (sha256d with hashlib), logs every
submit with the difficulty it was mined at and the answer (stderr), and prints a JSON report on
stdout at the end.

Checks it can make on the way (--checks, any of a, b, c):
  a: resubmit an already accepted share (same job id)                   -> must be 22 (duplicate)
  b: after a refreshed notify (new job id, SAME prevhash, coinb1, coinb2, merkle branch, version,
     nbits), a share of the earlier job with its ntime rolled to the refreshed job's ntime is
     submitted under the earlier job (accepted), then under the new job id: the same 80-byte
     header                                                               -> must be 22
     (also, as `b_old_ntime`, an accepted share with its own older ntime under the new job id:
     any rejection is right, 22 or 20 "ntime out of range"; acceptance is a double credit)
  c: a share below the difficulty in force (and below every difficulty seen on the connection)
                                                                          -> must be 23
Their submits are not counted among the regular shares.

Usage: stratum_stocklike.py HOST PORT [--duration S] [--max-duration S] [--checks abc]
                            [--max-hashrate H] [--user U] [--password P]
--duration: seconds of mining; --max-duration: while check b still waits for a refreshed job, the
run goes on up to this many seconds. Exit status 0 when the run completed (the caller judges the
report), 2 when the connection or the handshake failed.

Python 3 standard library only.
"""

import argparse
import hashlib
import json
import select
import socket
import sys
import time
from fractions import Fraction

DIFF1 = 0x00000000FFFF0000000000000000000000000000000000000000000000000000
SHA = hashlib.sha256


def sha256d(data):
    return SHA(SHA(data).digest()).digest()


def target_for(diff):
    """Share target DIFF1 / diff, exact (diff is a Fraction parsed from the JSON text)."""
    if diff <= 0:
        return (1 << 256) - 1
    return min(int(Fraction(DIFF1) / diff), (1 << 256) - 1)


def swap_words(b):
    """Byte-swaps each 4-byte word: the notify's prevhash back to the header's prev field."""
    return b"".join(b[i : i + 4][::-1] for i in range(0, len(b), 4))


class Job:
    """A `mining.notify`, with the difficulty in force for it (the pending one when it came)."""

    def __init__(self, params, diff, extranonce1):
        (self.job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime, clean) = params[:9]
        self.prevhash_hex = prevhash
        self.coinb1 = coinb1
        self.coinb2 = coinb2
        self.branch = list(branch)
        self.version = version
        self.nbits = nbits
        self.ntime = ntime
        self.clean = bool(clean)
        self.diff = diff
        self.target = target_for(diff)
        self.prev = swap_words(bytes.fromhex(prevhash))
        self.extranonce1 = bytes.fromhex(extranonce1)

    def content(self):
        """What a refresh keeps: the same content means the same headers for the same inputs."""
        return (self.prevhash_hex, self.coinb1, self.coinb2, tuple(self.branch), self.version, self.nbits)

    def header76(self, extranonce2, ntime_hex):
        coinbase = bytes.fromhex(self.coinb1) + self.extranonce1 + extranonce2 + bytes.fromhex(self.coinb2)
        root = sha256d(coinbase)
        for h in self.branch:
            root = sha256d(root + bytes.fromhex(h))
        return (
            int(self.version, 16).to_bytes(4, "little")
            + self.prev
            + root
            + int(ntime_hex, 16).to_bytes(4, "little")
            + int(self.nbits, 16).to_bytes(4, "little")
        )


def grind(h76, start, count, target, reject_target=None):
    """Searches nonces start..start+count for a hash <= target (and > reject_target when given).
    Returns (nonce, hash_int) or (None, None)."""
    mid = SHA(h76[:64])
    tail = h76[64:76]
    top = target >> 248
    for nonce in range(start, start + count):
        c = mid.copy()
        c.update(tail + nonce.to_bytes(4, "little"))
        d = SHA(c.digest()).digest()
        if d[31] > top:
            continue
        v = int.from_bytes(d, "little")
        if v <= target and (reject_target is None or v > reject_target):
            return nonce, v
    return None, None


class Client:
    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic()
        self.sock = socket.create_connection((args.host, args.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.next_id = 10
        self.replies = {}  # id -> message, for the handshake
        self.pending = {}  # submit id -> record
        self.extranonce1 = None
        self.en2_size = 4
        self.pending_diff = Fraction(1)  # minerd's default before any set_difficulty
        self.diffs_seen = []
        self.raises = 0
        self.lowers = 0
        self.last_set_difficulty_at = None
        self.notifies = 0
        self.clean_notifies = 0
        self.refreshes = 0  # notifies with a new job id and the same content as an earlier job
        self.job = None
        self.job_en2 = None  # the extranonce2 of the current job's work; None: take a fresh one
        self.jobs = {}  # job id -> Job
        self.accepted_by_content = {}  # Job.content() -> [record] of accepted regular shares
        self.en2_counter = 0
        self.sent = 0
        self.accepted = 0
        self.rejected = {}
        self.reject_log = []
        self.answers = 0
        self.hashes = 0
        self.blocks_meeting_nbits = 0
        self.checks = {c: {"state": "waiting"} for c in args.checks}
        self.closed = None

    def now(self):
        return time.monotonic() - self.t0

    def log(self, text):
        print("[%7.3f] %s" % (self.now(), text), file=sys.stderr, flush=True)

    def send(self, obj):
        self.sock.sendall((json.dumps(obj) + "\n").encode())

    def poll(self, wait):
        """Reads what the server sent within `wait` seconds and handles every complete line."""
        if self.closed:
            return
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return
        try:
            data = self.sock.recv(1 << 16)
        except OSError as e:
            self.closed = "recv: %s" % e
            return
        if not data:
            self.closed = "connection closed by the server"
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                self.handle(line)

    def handle(self, line):
        try:
            msg = json.loads(line, parse_float=Fraction)
        except ValueError:
            self.log("unparsable line from the server: %r" % line[:200])
            return
        method = msg.get("method")
        if method == "mining.set_difficulty":
            d = Fraction(msg["params"][0])
            prev = self.diffs_seen[-1] if self.diffs_seen else None
            if prev is not None and d > prev:
                self.raises += 1
            elif prev is not None and d < prev:
                self.lowers += 1
            self.diffs_seen.append(d)
            self.pending_diff = d
            self.last_set_difficulty_at = self.now()
            self.log("set_difficulty %s (pending until the next notify; current job at %s)"
                     % (float(d), float(self.job.diff) if self.job else None))
        elif method == "mining.notify":
            params = msg["params"]
            job = Job(params, self.pending_diff, self.extranonce1)
            self.notifies += 1
            if job.clean:
                self.clean_notifies += 1
            refresh = any(j.content() == job.content() for j in self.jobs.values())
            if refresh:
                self.refreshes += 1
            self.jobs[job.job_id] = job
            self.job = job
            self.job_en2 = None  # a fresh extranonce2 for the new job
            self.log("notify job=%s clean=%s ntime=%s refresh=%s -> mined at difficulty %s"
                     % (job.job_id, job.clean, job.ntime, refresh, float(job.diff)))
            if refresh and "b" in self.checks and self.checks["b"]["state"] == "waiting":
                self.check_b(job)
        elif method == "client.reconnect":
            self.closed = "client.reconnect %s" % (msg.get("params"),)
        elif method is not None:
            self.log("notification %s %s" % (method, msg.get("params")))
        else:
            mid = msg.get("id")
            if mid in self.pending:
                self.answer(self.pending.pop(mid), msg)
            else:
                self.replies[mid] = msg

    def request(self, method, params, timeout=10.0):
        mid = self.next_id
        self.next_id += 1
        self.send({"id": mid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while mid not in self.replies and time.monotonic() < deadline and not self.closed:
            self.poll(0.1)
        return self.replies.pop(mid, None)

    # -- shares -------------------------------------------------------------------------------

    def submit(self, job, en2, ntime, nonce, hash_int, kind, mined_at=None):
        """Sends a share (not waiting for the answer) and records it with the difficulty it was
        mined at: its job's unless `mined_at` says otherwise."""
        mid = self.next_id
        self.next_id += 1
        params = [self.args.user, job.job_id, en2.hex(), ntime, "%08x" % nonce]
        rec = {
            "id": mid,
            "kind": kind,
            "job": job.job_id,
            "params": params,
            "content": job.content(),
            "mined_at": job.diff if mined_at is None else mined_at,
            "pending_diff": self.pending_diff,
            "since_set_difficulty": None if self.last_set_difficulty_at is None
            else round(self.now() - self.last_set_difficulty_at, 3),
            "share_diff": float(Fraction(DIFF1) / max(hash_int, 1)),
            "hash": hash_int,
            "at": round(self.now(), 3),
        }
        self.pending[mid] = rec
        self.send({"id": mid, "method": "mining.submit", "params": params})
        if kind == "share":
            self.sent += 1
        return rec

    def answer(self, rec, msg):
        self.answers += 1
        err = msg.get("error")
        ok = msg.get("result") is True and not err
        code = None
        if not ok:
            code = err[0] if isinstance(err, list) and err and isinstance(err[0], int) else str(err)
        self.log("submit id=%d %s job=%s mined_at=%s pending=%s since_set_difficulty=%s share_diff=%.3g -> %s"
                 % (rec["id"], rec["kind"], rec["job"], float(rec["mined_at"]), float(rec["pending_diff"]),
                    rec["since_set_difficulty"], rec["share_diff"],
                    "accepted" if ok else json.dumps(err, default=float)))
        if rec["kind"] == "share":
            if ok:
                self.accepted += 1
                self.accepted_by_content.setdefault(rec["content"], []).append(rec)
                if "a" in self.checks and self.checks["a"]["state"] == "waiting":
                    self.check_a(rec)
                if "c" in self.checks and self.checks["c"]["state"] == "waiting":
                    self.check_c()
            else:
                key = str(code)
                self.rejected[key] = self.rejected.get(key, 0) + 1
                if len(self.reject_log) < 20:
                    self.reject_log.append({
                        "job": rec["job"], "mined_at": float(rec["mined_at"]),
                        "pending_diff": float(rec["pending_diff"]),
                        "since_set_difficulty": rec["since_set_difficulty"],
                        "share_diff": rec["share_diff"], "at": rec["at"],
                        "error": json.loads(json.dumps(err, default=float)),
                    })
        elif rec["kind"] == "b_first":
            check = self.checks["b"]
            check["first_answer"] = True if ok else code
            if ok:
                then = rec["then"]
                _, _, en2, ntime, nonce = rec["params"]
                check["state"] = "sent"
                check["params"] = [self.args.user, then.job_id, en2, ntime, nonce]
                self.log("check b: the same header under the refreshed job %s" % then.job_id)
                self.submit(then, bytes.fromhex(en2), ntime, int(nonce, 16), rec["hash"], "b",
                            mined_at=rec["mined_at"])
            else:
                # Try again at the next refreshed job (3 tries in all).
                check["error"] = json.loads(json.dumps(err, default=float))
                check["state"] = "waiting" if check.get("tries", 0) < 3 else "first submit rejected"
        else:
            check = self.checks[rec["kind"]]
            check["state"] = "answered"
            check["answer"] = True if ok else code
            check["error"] = None if ok else json.loads(json.dumps(err, default=float))

    def check_a(self, rec):
        """(a) The same submit again, same job id: a duplicate."""
        job = self.jobs[rec["job"]]
        _, _, en2, ntime, nonce = rec["params"]
        self.checks["a"].update(state="sent", job=job.job_id, params=rec["params"])
        self.log("check a: resubmitting the accepted share %s" % rec["params"])
        self.submit(job, bytes.fromhex(en2), ntime, int(nonce, 16), rec["hash"], "a")

    def check_b(self, job):
        """(b) The same 80-byte header under two job ids that differ only by the refresh. A share of
        the earlier job `first`, with its ntime rolled forward to the refreshed job's ntime (so that
        the ntime is in range for both jobs), is submitted under `first` and, once accepted, under
        the refreshed job's id: the pool must answer 22 (credited once). It is mined at the highest
        difficulty of both jobs and the pending one, so only the duplicate rule can reject it.
        Besides, the literal resubmission, an accepted share of `first` with its own (older) ntime
        under the refreshed job's id, is recorded as `b_old_ntime`: any rejection is right there
        (22, or 20 when the pool holds a job's ntime as the lowest), acceptance is a double credit."""
        first = None
        for j in self.jobs.values():
            if j.job_id != job.job_id and j.content() == job.content() and j.content() in self.accepted_by_content:
                first = j
        if first is None:
            self.checks["b"]["note"] = "refresh %s came before any accepted share of its content" % job.job_id
            return
        old = self.accepted_by_content[first.content()][0]
        _, _, en2, ntime, nonce = old["params"]
        self.checks["b_old_ntime"] = {"state": "sent", "job": job.job_id, "first_job": old["job"],
                                      "params": old["params"]}
        self.log("check b (old ntime): the accepted share %s of job %s under the refreshed job %s"
                 % (old["params"], old["job"], job.job_id))
        self.submit(job, bytes.fromhex(en2), ntime, int(nonce, 16), old["hash"], "b_old_ntime")

        diff = max(first.diff, job.diff, self.pending_diff)
        en2 = (0xFFFFFFFE).to_bytes(8, "big")[-self.en2_size:]
        h76 = first.header76(en2, job.ntime)
        nonce, v = grind(h76, 0, 1 << 26, target_for(diff))
        self.hashes += 0 if nonce is None else nonce + 1
        if nonce is None:
            self.checks["b"].update(state="not found")
            return
        self.checks["b"]["tries"] = self.checks["b"].get("tries", 0) + 1
        self.checks["b"].update(state="first sent", first_job=first.job_id, job=job.job_id,
                                ntime=job.ntime, mined_at=float(diff))
        self.log("check b: a share of job %s with ntime %s (the refreshed job %s's), difficulty %s"
                 % (first.job_id, job.ntime, job.job_id, float(diff)))
        rec = self.submit(first, en2, job.ntime, nonce, v, "b_first", mined_at=diff)
        rec["then"] = job

    def check_c(self):
        """(c) A share that meets a quarter of the easiest difficulty seen on this connection but
        not that difficulty itself: below the difficulty in force whatever grace the pool gives."""
        job = self.job
        easiest = min(self.diffs_seen + [job.diff])
        fail_target = target_for(easiest)
        low_target = target_for(easiest / 4)
        en2 = (0xFFFFFFFF).to_bytes(self.en2_size, "big")[-self.en2_size:]
        h76 = job.header76(en2, job.ntime)
        nonce, v = grind(h76, 0, 1 << 24, low_target, reject_target=fail_target)
        if nonce is None:
            self.checks["c"].update(state="not found")
            return
        self.checks["c"].update(state="sent", job=job.job_id, difficulty_in_force=float(job.diff),
                                share_diff=float(Fraction(DIFF1) / max(v, 1)))
        self.log("check c: a share of difficulty %.3g (in force %s, easiest seen %s)"
                 % (float(Fraction(DIFF1) / max(v, 1)), float(job.diff), float(easiest)))
        self.submit(job, en2, job.ntime, nonce, v, "c")

    # -- the run ------------------------------------------------------------------------------

    def handshake(self):
        sub = self.request("mining.subscribe", ["stocklike/1.0"])
        if not sub or sub.get("error") or not isinstance(sub.get("result"), list):
            raise RuntimeError("mining.subscribe failed: %r" % (sub,))
        res = sub["result"]
        self.extranonce1 = res[1]
        self.en2_size = int(res[2])
        auth = self.request("mining.authorize", [self.args.user, self.args.password])
        if not auth or auth.get("result") is not True:
            raise RuntimeError("mining.authorize failed: %r" % (auth,))
        self.log("subscribed: extranonce1=%s extranonce2_size=%d; authorized as %s"
                 % (self.extranonce1, self.en2_size, self.args.user))

    def mine(self):
        args = self.args
        batch = 2000
        nonce = 0
        h76 = None
        en2 = None
        started = time.monotonic()
        while not self.closed:
            elapsed = time.monotonic() - self.t0
            b_waits = "b" in self.checks and self.checks["b"]["state"] == "waiting"
            if elapsed >= args.duration and (not b_waits or elapsed >= args.max_duration):
                break
            self.poll(0)
            job = self.job
            if job is None:
                self.poll(0.1)
                continue
            if self.job_en2 is None:
                self.en2_counter += 1
                en2 = self.en2_counter.to_bytes(8, "big")[-self.en2_size:]
                self.job_en2 = en2
                h76 = job.header76(en2, job.ntime)
                nonce = 0
            found, v = grind(h76, nonce, batch, job.target)
            if found is None:
                nonce += batch
                self.hashes += batch
            else:
                self.hashes += found - nonce + 1
                nonce = found + 1
                if v <= bits_target(job.nbits):
                    self.blocks_meeting_nbits += 1
                self.submit(job, self.job_en2, job.ntime, found, v, "share")
            if nonce >= 0xFFFFFFFF - batch:
                self.job_en2 = None
            if args.max_hashrate > 0:
                ahead = self.hashes / args.max_hashrate - (time.monotonic() - started)
                if ahead > 0:
                    self.poll(ahead)
        # Collect the answers still due.
        deadline = time.monotonic() + 5
        while self.pending and time.monotonic() < deadline and not self.closed:
            self.poll(0.1)

    def report(self):
        elapsed = self.now()
        return {
            "extranonce1": self.extranonce1,
            "extranonce2_size": self.en2_size,
            "elapsed_s": round(elapsed, 3),
            "hashes": self.hashes,
            "hashrate_hs": round(self.hashes / elapsed) if elapsed > 0 else 0,
            "shares_sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_total": sum(self.rejected.values()),
            "unanswered": sum(1 for r in self.pending.values() if r["kind"] == "share"),
            "rejects_first": self.reject_log,
            "difficulties_seen": [float(d) for d in self.diffs_seen],
            "raises": self.raises,
            "lowers": self.lowers,
            "notifies": self.notifies,
            "clean_notifies": self.clean_notifies,
            "refresh_notifies": self.refreshes,
            "shares_meeting_nbits": self.blocks_meeting_nbits,
            "checks": {k: {kk: (float(vv) if isinstance(vv, Fraction) else vv) for kk, vv in v.items()}
                       for k, v in self.checks.items()},
            "closed": self.closed,
        }


# Mainnet block 1, cut as a pool would cut it: its coinbase split around an 8-byte "extranonce"
# (bytes 42..50), the genesis hash as a word-swapped prevhash, empty branch. The header must hash
# to block 1's hash, which checks the coinbase, merkle, prevhash and byte-order conventions.
BLOCK1_COINBASE = (
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0704ffff"
    "001d0104ffffffff0100f2052a0100000043410496b538e853519c726a2c91e61ec11600ae1390813a627c66fb"
    "8be7947be63c52da7589379515d4e0a604f8141781e62294721166bf621e73a82cbf2342c858eeac00000000"
)
GENESIS = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
BLOCK1 = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"


def self_test():
    """Checks the header builder on mainnet block 1 before talking to any server."""
    cb = bytes.fromhex(BLOCK1_COINBASE)
    params = ["t", swap_words(bytes.fromhex(GENESIS)[::-1]).hex(), cb[:42].hex(), cb[50:].hex(), [],
              "00000001", "1d00ffff", "4966bc61", True]
    job = Job(params, Fraction(1), cb[42:46].hex())
    nonce, v = grind(job.header76(cb[46:50], "4966bc61"), 0x9962E301, 1, target_for(Fraction(1)))
    got = v.to_bytes(32, "little")[::-1].hex() if v is not None else None
    if got != BLOCK1:
        raise RuntimeError("self-test: block 1 rebuilt from a notify hashes to %s, not %s" % (got, BLOCK1))


def bits_target(nbits_hex):
    bits = int(nbits_hex, 16)
    exp, mant = bits >> 24, bits & 0x007FFFFF
    return mant << (8 * (exp - 3)) if exp > 3 else mant >> (8 * (3 - exp))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--max-duration", type=float, default=None)
    p.add_argument("--checks", default="abc")
    p.add_argument("--max-hashrate", type=float, default=0.0, help="hashes per second, 0: no limit")
    p.add_argument("--user", default="stocklike.worker")
    p.add_argument("--password", default="x")
    args = p.parse_args()
    if args.max_duration is None:
        args.max_duration = args.duration
    args.checks = "".join(c for c in args.checks if c in "abc")
    try:
        self_test()
    except RuntimeError as e:
        print(json.dumps({"error": str(e)}))
        return 3
    try:
        client = Client(args)
        client.handshake()
    except (OSError, RuntimeError) as e:
        print(json.dumps({"error": str(e)}))
        return 2
    client.mine()
    print(json.dumps(client.report()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
