#!/usr/bin/env python3
"""An independent Stratum v1 conformance client for `miner node --stratum`.

Usage: python3 tests/stratum_conformance.py ADDR PORT
       python3 tests/stratum_conformance.py --vector-only

Written from the Stratum v1 protocol (as cpuminer, cgminer and BIP 310 speak it) and issue 15's
text alone, not from the server's code: it builds coinbases, merkle roots and headers itself,
grinds shares with hashlib, and speaks raw JSON lines over TCP. Python 3 standard library only.

Every check prints `PASS name` or `FAIL name: what was sent, what came back` (a check marked
warn_only would print `WARN` and not fail the run; none is now). Exit status 0 only when no check
failed. Every wait is bounded (socket timeouts and deadlines).
"""

import hashlib
import json
import socket
import struct
import sys
import threading
import time

DIFF1 = 0xFFFF << 208
# BIP 310: the version bits a miner may roll, as issue 15 fixes them.
VERSION_MASK = 0x1FFFE000
MAX_LINE = 16 * 1024
TIMEOUT = 5.0  # seconds any single reply may take

# The session issue 15 recorded with pooler's cpuminer 2.5.1 against a plain Stratum server.
VECTOR = {
    "extranonce1": "f000000f",
    "difficulty": 0.001,
    "notify": [
        "job1",
        "466e2206590b1a116012afcabf5beb433a4fc3281f2a335e3cb7b2c70f9188f1",
        "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff130101",
        "2f737631746573742fffffffff0100f2052a01000000015100000000",
        [
            "2a6a41aeb1abf285919a8dd916b4d4799966a855d6bd9b5d9f2c2d6131647687",
            "d21e8f4234eb72e398934de4ee626c8164d9136d6844600874ce330a45d76d83",
        ],
        "20000000",
        "207fffff",
        "6b04fcf5",
        True,
    ],
    "submit": ["test.worker", "job1", "00000000", "6b04fcf5", "6df82800"],
    "hash": "0000034576ebe4f1518437dd6e8c78a38a88a0e5df09ab22d6ae1f9c905958c1",
}


# ---------------------------------------------------------------------------------------------
# Stratum v1 encodings, written here from the protocol (cpuminer's conventions).


def sha256d(data):
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def u32_field(hex8):
    """A notify/submit u32 (version, nbits, ntime, nonce): big-endian hex; the header holds it
    little-endian."""
    return struct.pack("<I", int(hex8, 16))


def prevhash_bytes(notify_prevhash):
    """Stratum sends the previous hash as eight 4-byte words, each byte-swapped relative to the
    header's (internal) order."""
    raw = bytes.fromhex(notify_prevhash)
    return b"".join(raw[i : i + 4][::-1] for i in range(0, 32, 4))


def stratum_prevhash(header_prev):
    """The inverse: header (internal) order to Stratum's word-swapped hex."""
    return b"".join(header_prev[i : i + 4][::-1] for i in range(0, 32, 4)).hex()


def coinbase(job, en1, en2):
    return bytes.fromhex(job["coinb1"] + en1 + en2 + job["coinb2"])


def merkle_root(job, en1, en2):
    root = sha256d(coinbase(job, en1, en2))
    for branch in job["branch"]:
        root = sha256d(root + bytes.fromhex(branch))
    return root


def header_prefix(job, en1, en2, version=None):
    """The header's first 76 bytes (all but the nonce)."""
    v = job["version"] if version is None else version
    return (
        struct.pack("<I", v)
        + prevhash_bytes(job["prevhash"])
        + merkle_root(job, en1, en2)
        + u32_field(job["ntime"])
        + u32_field(job["nbits"])
    )


def hash_int(header):
    return int.from_bytes(sha256d(header), "little")


def display(header):
    return sha256d(header)[::-1].hex()


def share_target(difficulty):
    """DIFF1 / difficulty, exact for the float given (fractional difficulties included)."""
    num, den = float(difficulty).as_integer_ratio()
    return DIFF1 * den // num


def nbits_target(nbits_hex):
    n = int(nbits_hex, 16)
    size, mant = n >> 24, n & 0x007FFFFF
    return mant << (8 * (size - 3)) if size >= 3 else mant >> (8 * (3 - size))


def job_from_notify(params):
    return {
        "id": params[0],
        "prevhash": params[1],
        "coinb1": params[2],
        "coinb2": params[3],
        "branch": params[4],
        "version": int(params[5], 16),
        "version_hex": params[5],
        "nbits": params[6],
        "ntime": params[7],
        "clean": params[8],
    }


def grind(job, en1, en2, target, version=None, avoid_target=None, limit=20_000_000, start=0):
    """The first nonce from `start` whose header hash is <= target (and, when avoid_target is
    given, above it: a share that is not a block). Returns (nonce, header) or None."""
    prefix = header_prefix(job, en1, en2, version)
    first = hashlib.sha256(prefix[:64])
    tail = prefix[64:]
    sha = hashlib.sha256
    pack = struct.pack
    for nonce in range(start, start + limit):
        h = first.copy()
        h.update(tail + pack("<I", nonce))
        value = int.from_bytes(sha(h.digest()).digest(), "little")
        if value <= target and (avoid_target is None or value > avoid_target):
            return nonce, prefix + pack("<I", nonce)
    return None


def read_varint(data, pos):
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def parse_coinbase(tx, en_offset, en_len):
    """Checks the coinbase is one whole transaction (legacy serialization) with the null prevout
    and the extranonces inside its scriptSig, which starts with a BIP 34 height push. Returns the
    height; raises ValueError naming the problem."""
    pos = 4
    count, pos = read_varint(tx, pos)
    if count != 1:
        raise ValueError("coinbase has %d inputs, expected 1 (or a witness marker)" % count)
    if tx[pos : pos + 36] != b"\x00" * 32 + b"\xff" * 4:
        raise ValueError("coinbase input's prevout is not null: %s" % tx[pos : pos + 36].hex())
    pos += 36
    script_len, pos = read_varint(tx, pos)
    script_start, script_end = pos, pos + script_len
    if not 2 <= script_len <= 100:
        raise ValueError("coinbase scriptSig is %d bytes, consensus allows 2..100" % script_len)
    if not (script_start <= en_offset and en_offset + en_len <= script_end):
        raise ValueError(
            "extranonce bytes %d..%d lie outside the scriptSig %d..%d"
            % (en_offset, en_offset + en_len, script_start, script_end)
        )
    push = tx[script_start]
    if 1 <= push <= 8:
        height = int.from_bytes(tx[script_start + 1 : script_start + 1 + push], "little")
    elif push == 0:
        height = 0
    elif 0x51 <= push <= 0x60:
        height = push - 0x50
    else:
        raise ValueError("scriptSig does not start with a BIP 34 height push: %02x" % push)
    pos = script_end + 4  # sequence
    outputs, pos = read_varint(tx, pos)
    if outputs < 1:
        raise ValueError("coinbase has no outputs")
    for _ in range(outputs):
        pos += 8
        n, pos = read_varint(tx, pos)
        pos += n
    pos += 4  # lock time
    if pos != len(tx):
        raise ValueError("coinbase is %d bytes but one transaction reads %d" % (len(tx), pos))
    return height


# ---------------------------------------------------------------------------------------------
# Raw JSON-lines connection.


class Closed(Exception):
    pass


class Conn:
    def __init__(self, addr, port, timeout=TIMEOUT):
        self.sock = socket.create_connection((addr, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.next_id = 1
        self.notes = []  # notifications (messages with a method) in arrival order
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw((json.dumps(obj) + "\n").encode())

    def read_line(self, deadline):
        """One line (bytes) before the deadline; raises Closed on EOF/reset, socket.timeout."""
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("no line before the deadline")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
                self.closed = True
                raise Closed("connection reset: %s" % e)
            if not chunk:
                self.closed = True
                raise Closed("connection closed by the server (EOF)")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read_msg(self, deadline):
        while True:
            line = self.read_line(deadline).strip()
            if not line:
                continue
            try:
                return json.loads(line)
            except ValueError:
                raise AssertionError("server sent a line that is not JSON: %r" % line[:300])

    def call(self, method, params, req_id=None, timeout=TIMEOUT):
        """Sends a request and returns the reply with its id; notifications met on the way are
        kept in self.notes. Returns (request, reply)."""
        if req_id is None:
            req_id = self.next_id
            self.next_id += 1
        request = {"id": req_id, "method": method, "params": params}
        self.send(request)
        return request, self.reply(req_id, timeout, request)

    def reply(self, req_id, timeout=TIMEOUT, request=None):
        deadline = time.time() + timeout
        while True:
            try:
                msg = self.read_msg(deadline)
            except socket.timeout:
                raise AssertionError(
                    "no reply within %.1f s to %s" % (timeout, json.dumps(request)[:300])
                )
            except Closed as e:
                raise AssertionError("%s while waiting for the reply to %s" % (e, json.dumps(request)[:300]))
            if isinstance(msg, dict) and msg.get("method") is not None:
                self.notes.append(msg)
                continue
            if isinstance(msg, dict) and msg.get("id") == req_id:
                return msg
            raise AssertionError(
                "reply with an unexpected id to %s: %s" % (json.dumps(request)[:300], json.dumps(msg)[:300])
            )

    def wait_note(self, method, timeout=TIMEOUT, pred=None):
        """The first notification `method` (already received or arriving before the timeout)
        satisfying pred; removes it and everything before it of that method."""
        deadline = time.time() + timeout
        while True:
            for i, note in enumerate(self.notes):
                if note.get("method") == method and (pred is None or pred(note)):
                    self.notes = [n for j, n in enumerate(self.notes) if j > i or n.get("method") != method]
                    return note
            try:
                msg = self.read_msg(deadline)
            except socket.timeout:
                raise AssertionError("no %s within %.1f s (got: %s)" % (method, timeout, summary(self.notes)))
            except Closed as e:
                raise AssertionError("%s while waiting for %s" % (e, method))
            if isinstance(msg, dict) and msg.get("method") is not None:
                self.notes.append(msg)
            else:
                raise AssertionError("unsolicited reply while waiting for %s: %s" % (method, json.dumps(msg)[:300]))

    def drain(self, seconds=0.05):
        """Reads whatever notifications arrive within `seconds`."""
        deadline = time.time() + seconds
        while True:
            try:
                msg = self.read_msg(deadline)
            except socket.timeout:
                return
            if isinstance(msg, dict) and msg.get("method") is not None:
                self.notes.append(msg)

    def is_closed_by_server(self, timeout):
        """True when the server closes (EOF/reset) within timeout; replies read meanwhile are
        dropped."""
        deadline = time.time() + timeout
        while True:
            try:
                self.read_line(deadline)
            except Closed:
                return True
            except socket.timeout:
                return False
            except OSError:
                return True


def summary(notes):
    return json.dumps([[n.get("method"), n.get("params")] for n in notes])[:400]


def error_code(reply):
    err = reply.get("error")
    if isinstance(err, list) and err and isinstance(err[0], int):
        return err[0]
    if isinstance(err, dict) and isinstance(err.get("code"), int):
        return err["code"]
    return None


def is_hex(s, nbytes=None):
    if not isinstance(s, str) or len(s) % 2:
        return False
    try:
        bytes.fromhex(s)
    except ValueError:
        return False
    return nbytes is None or len(s) == 2 * nbytes


# ---------------------------------------------------------------------------------------------
# A miner: one connection's state.


class Miner:
    def __init__(self, addr, port, user="test.worker", configure_first=False, mask="ffffffff"):
        self.conn = Conn(addr, port)
        self.user = user
        self.mask = None
        if configure_first:
            self.configure(mask)
        req, rep = self.conn.call("mining.subscribe", ["conformance/1.0"])
        self.subscribe_request, self.subscribe_reply = req, rep
        res = rep.get("result")
        if rep.get("error") is not None or not isinstance(res, list) or len(res) < 3:
            raise AssertionError("mining.subscribe: sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
        self.en1, self.en2_size = res[1], res[2]
        self.subs = res[0]

    def configure(self, mask="ffffffff"):
        req, rep = self.conn.call(
            "mining.configure",
            [["version-rolling"], {"version-rolling.mask": mask, "version-rolling.min-bit-count": 2}],
        )
        self.configure_request, self.configure_reply = req, rep
        res = rep.get("result")
        if isinstance(res, dict) and res.get("version-rolling") is True:
            self.mask = int(res.get("version-rolling.mask", "0"), 16)
        return req, rep

    def authorize(self, password="x"):
        return self.conn.call("mining.authorize", [self.user, password])

    def job(self, timeout=TIMEOUT, pred=None):
        """The newest job: waits for a first notify, then takes the last one that arrived."""
        note = self.conn.wait_note("mining.notify", timeout, pred)
        self.conn.drain(0.02)
        newer = [n for n in self.conn.notes if n.get("method") == "mining.notify"]
        if newer and pred is None:
            note = newer[-1]
            self.conn.notes = [n for n in self.conn.notes if n.get("method") != "mining.notify"]
        self.latest_job = job_from_notify(note["params"])
        return self.latest_job

    def difficulty(self):
        """The latest difficulty the server set on this connection (None before any)."""
        self.diffs = getattr(self, "diffs", [])
        for n in self.conn.notes:
            if n.get("method") == "mining.set_difficulty":
                self.diffs.append(n["params"][0])
        self.conn.notes = [n for n in self.conn.notes if n.get("method") != "mining.set_difficulty"]
        return self.diffs[-1] if self.diffs else None

    def share_target(self):
        """A target that meets every difficulty set on this connection lately (the hardest of
        them), so a share is good whichever of them the server applies to the job."""
        self.difficulty()
        return share_target(max(self.diffs[-3:]))

    def submit(self, job, en2, nonce, version_bits=None, ntime=None):
        params = [self.user, job["id"], en2, ntime or job["ntime"], "%08x" % nonce]
        if version_bits is not None:
            params.append("%08x" % version_bits)
        return self.conn.call("mining.submit", params)


# ---------------------------------------------------------------------------------------------
# The checks.

RESULTS = []


def check(name, warn_only=False):
    def wrap(fn):
        def run(*args):
            started = time.time()
            try:
                fn(*args)
            except AssertionError as e:
                RESULTS.append(("WARN" if warn_only else "FAIL", name, str(e)))
                print("%s %s: %s" % ("WARN" if warn_only else "FAIL", name, e), flush=True)
                return False
            except Exception as e:  # a crash of the check itself is a failure too
                RESULTS.append(("FAIL", name, "%s: %s" % (type(e).__name__, e)))
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
                return False
            RESULTS.append(("PASS", name, ""))
            print("PASS %s (%.2f s)" % (name, time.time() - started), flush=True)
            return True

        run.__name__ = fn.__name__
        return run

    return wrap


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


@check("vector: the header builder reproduces issue 15's recorded cpuminer share hash")
def check_vector():
    job = job_from_notify(VECTOR["notify"])
    user, job_id, en2, ntime, nonce = VECTOR["submit"]
    expect(job_id == job["id"] and ntime == job["ntime"], "vector inconsistent")
    prefix = header_prefix(job, VECTOR["extranonce1"], en2)
    header = prefix[:68] + u32_field(ntime) + prefix[72:] + u32_field(nonce)
    expect(len(header) == 80, "header is %d bytes" % len(header))
    got = display(header)
    expect(got == VECTOR["hash"], "built header %s hashes to %s, expected %s" % (header.hex(), got, VECTOR["hash"]))
    expect(hash_int(header) <= share_target(VECTOR["difficulty"]), "vector hash is not below DIFF1/0.001")
    # And the word-swap round trip used to compare a block hash with a notify's prevhash.
    expect(stratum_prevhash(prevhash_bytes(job["prevhash"])) == job["prevhash"], "prevhash swap round trip")


class Ctx:
    pass


@check("subscribe: result [[[\"mining.set_difficulty\",id],[\"mining.notify\",id]], extranonce1 (4 bytes hex), 4]")
def check_subscribe(ctx):
    m = Miner(ctx.addr, ctx.port)
    ctx.sub_miner = m
    rep = m.subscribe_reply
    sent = json.dumps(m.subscribe_request)
    res = rep.get("result")
    expect(rep.get("error") is None, "sent %s, got error %s" % (sent, json.dumps(rep)))
    expect(isinstance(res, list) and len(res) == 3, "sent %s, result is not a 3-element list: %s" % (sent, json.dumps(rep)))
    subs = res[0]
    expect(isinstance(subs, list), "result[0] is not a list: %s" % json.dumps(rep))
    pairs = {}
    for s in subs:
        expect(isinstance(s, list) and len(s) == 2 and isinstance(s[0], str), "subscription %r is not [method, id]" % (s,))
        expect(isinstance(s[1], str), "subscription id %r is not a string" % (s[1],))
        pairs[s[0]] = s[1]
    expect(
        "mining.set_difficulty" in pairs and "mining.notify" in pairs,
        "result[0] lacks mining.set_difficulty or mining.notify: %s" % json.dumps(subs),
    )
    expect(is_hex(res[1], 4), "extranonce1 %r is not 4 bytes of hex" % (res[1],))
    expect(res[2] == 4 and isinstance(res[2], int), "extranonce2_size %r, expected 4" % (res[2],))
    expect("jsonrpc" not in rep or rep.get("jsonrpc") == "2.0", "odd jsonrpc field: %s" % json.dumps(rep))


@check("configure (BIP 310) before subscribe: version-rolling true, mask within 0x1fffe000")
def check_configure(ctx):
    m = Miner(ctx.addr, ctx.port, configure_first=True, mask="ffffffff")
    ctx.main = m
    rep = m.configure_reply
    res = rep.get("result")
    expect(rep.get("error") is None and isinstance(res, dict), "sent %s, got %s" % (json.dumps(m.configure_request), json.dumps(rep)))
    expect(res.get("version-rolling") is True, "version-rolling not true: %s" % json.dumps(rep))
    mask_hex = res.get("version-rolling.mask")
    expect(is_hex(mask_hex, 4), "version-rolling.mask %r is not 8 hex digits" % (mask_hex,))
    mask = int(mask_hex, 16)
    expect(mask & ~VERSION_MASK == 0, "mask %08x has bits outside 0x1fffe000" % mask)
    expect(mask != 0, "mask is 0 though the miner offered ffffffff")


@check("configure after subscribe with a narrower miner mask 0x00ffe000: the answer is within it")
def check_configure_narrow(ctx):
    m = Miner(ctx.addr, ctx.port)
    req, rep = m.configure("00ffe000")
    res = rep.get("result")
    expect(isinstance(res, dict) and res.get("version-rolling") is True, "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
    mask = int(res.get("version-rolling.mask", "zz"), 16) if is_hex(res.get("version-rolling.mask"), 4) else None
    expect(mask is not None, "no 8-hex-digit mask in %s" % json.dumps(rep))
    expect(mask & ~(0x00FFE000 & VERSION_MASK) == 0, "mask %08x is not within 0x00ffe000 & 0x1fffe000" % mask)
    m.conn.close()


@check("authorize (any user by default) → true; then set_difficulty and notify arrive")
def check_authorize(ctx):
    m = ctx.main
    req, rep = m.authorize()
    expect(rep.get("error") is None and rep.get("result") is True, "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
    d = m.conn.wait_note("mining.set_difficulty")
    m.conn.notes.insert(0, d)
    p = d.get("params")
    expect(isinstance(p, list) and len(p) >= 1 and isinstance(p[0], (int, float)) and p[0] > 0, "set_difficulty params %r" % (p,))
    m.job()
    expect(m.difficulty() is not None, "no difficulty known")
    ctx.notify_raw = None


@check("notify: 9 params of the right shapes; coinb1+en1+en2+coinb2 is one coinbase with the extranonces inside a BIP 34 scriptSig")
def check_notify_shape(ctx):
    m = ctx.main
    j = m.latest_job
    expect(isinstance(j["id"], str) and j["id"], "job id %r" % (j["id"],))
    expect(is_hex(j["prevhash"], 32), "prevhash %r" % (j["prevhash"],))
    expect(is_hex(j["coinb1"]) and is_hex(j["coinb2"]), "coinb1/coinb2 not hex")
    expect(isinstance(j["branch"], list) and all(is_hex(b, 32) for b in j["branch"]), "merkle branch %r" % (j["branch"],))
    expect(is_hex(j["version_hex"], 4) and is_hex(j["nbits"], 4) and is_hex(j["ntime"], 4), "version/nbits/ntime not 8 hex digits: %s %s %s" % (j["version_hex"], j["nbits"], j["ntime"]))
    expect(isinstance(j["clean"], bool), "clean_jobs %r is not a boolean" % (j["clean"],))
    tx = coinbase(j, m.en1, "00" * m.en2_size)
    try:
        height = parse_coinbase(tx, len(j["coinb1"]) // 2, 4 + m.en2_size)
    except (ValueError, IndexError, KeyError) as e:
        raise AssertionError("coinbase %s: %s" % (tx.hex(), e))
    ctx.height = height
    ntime = int(j["ntime"], 16)
    if abs(ntime - time.time()) > 7200:
        print("  note: ntime %d is %.0f s from this machine's clock" % (ntime, ntime - time.time()))
    print("  job %s: height %d, nbits %s, version %s, %d branch hashes, difficulty %s" % (j["id"], height, j["nbits"], j["version_hex"], len(j["branch"]), m.difficulty()))


def fresh_job(m):
    """The newest job on a miner, reading anything pending first."""
    m.conn.drain(0.05)
    if any(n.get("method") == "mining.notify" for n in m.conn.notes):
        return m.job(0.1)
    return m.latest_job


@check("share: grind a share (not a block) at the set difficulty, submit → true")
def check_share(ctx):
    m = ctx.main
    j = fresh_job(m)
    target = m.share_target()
    net = nbits_target(j["nbits"])
    en2 = "00000001"
    found = grind(j, m.en1, en2, target, avoid_target=net)
    expect(found is not None, "no share found")
    nonce, header = found
    req, rep = m.submit(j, en2, nonce)
    ctx.share = (j, en2, nonce, header)
    expect(rep.get("error") is None and rep.get("result") is True, "sent %s (header %s, hash %s), got %s" % (json.dumps(req), header.hex(), display(header), json.dumps(rep)))


@check("duplicate: the same share again → error 22")
def check_duplicate(ctx):
    m = ctx.main
    j, en2, nonce, header = ctx.share
    req, rep = m.submit(j, en2, nonce)
    expect(rep.get("result") is not True and error_code(rep) == 22, "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))


@check("duplicate in other spelling: the same share with upper-case hex → refused (not counted twice)")
def check_duplicate_case(ctx):
    m = ctx.main
    j, en2, nonce, header = ctx.share
    params = [m.user, j["id"], en2.upper(), j["ntime"].upper(), ("%08x" % nonce).upper()]
    req, rep = m.conn.call("mining.submit", params)
    expect(rep.get("result") is not True and rep.get("error") is not None, "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))


@check("version bits outside the negotiated mask → refused")
def check_version_outside_mask(ctx):
    m = ctx.main
    expect(m.mask, "no mask negotiated")
    j = fresh_job(m)
    outside = 0x00000001  # bit 0: never in 0x1fffe000
    bits = (m.mask & -m.mask) | outside
    version = (j["version"] & ~(m.mask | outside)) | bits
    en2 = "00000008"
    nonce, header = grind(j, m.en1, en2, m.share_target(), version=version, avoid_target=nbits_target(j["nbits"]))
    # Only a header that is no share under the masked version tells "ignored the bits" apart.
    masked = (j["version"] & ~m.mask) | (bits & m.mask)
    lucky = hash_int(header_prefix(j, m.en1, en2, masked) + struct.pack("<I", nonce)) <= m.share_target()
    req, rep = m.submit(j, en2, nonce, version_bits=bits)
    expect(lucky or rep.get("result") is not True, "sent %s (version %08x, mask %08x), got %s" % (json.dumps(req), version, m.mask, json.dumps(rep)))


@check("ntime rolled forward by 1 s → accepted")
def check_ntime_roll(ctx):
    m = ctx.main
    j = dict(fresh_job(m))
    ntime = "%08x" % (int(j["ntime"], 16) + 1)
    rolled = dict(j, ntime=ntime)
    en2 = "00000009"
    nonce, header = grind(rolled, m.en1, en2, m.share_target(), avoid_target=nbits_target(j["nbits"]))
    req, rep = m.submit(j, en2, nonce, ntime=ntime)
    expect(rep.get("error") is None and rep.get("result") is True, "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))


@check("unknown job id → error 21")
def check_unknown_job(ctx):
    m = ctx.main
    j = dict(fresh_job(m))
    j["id"] = "no-such-job-" + j["id"]
    req, rep = m.submit(j, "00000002", 0)
    expect(rep.get("result") is not True and error_code(rep) == 21, "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))


@check("low difficulty: a header above the share target → error 23")
def check_low(ctx):
    m = ctx.main
    j = fresh_job(m)
    target = m.share_target()
    en2 = "00000003"
    prefix = header_prefix(j, m.en1, en2)
    nonce = next(n for n in range(1000) if hash_int(prefix + struct.pack("<I", n)) > target * 4)
    req, rep = m.submit(j, en2, nonce)
    expect(rep.get("result") is not True and error_code(rep) == 23, "sent %s (hash %s), got %s" % (json.dumps(req), display(prefix + struct.pack("<I", nonce)), json.dumps(rep)))


@check("version rolling: a share with rolled version bits (6th submit param) → true")
def check_version_rolling(ctx):
    m = ctx.main
    expect(m.mask, "no mask negotiated")
    j = fresh_job(m)
    bits = 0x00002000 & m.mask or (m.mask & -m.mask)
    version = (j["version"] & ~m.mask) | (bits & m.mask)
    expect(version != j["version"], "rolled version equals the job's")
    en2 = "00000004"
    found = grind(j, m.en1, en2, m.share_target(), version=version, avoid_target=nbits_target(j["nbits"]))
    nonce, header = found
    req, rep = m.submit(j, en2, nonce, version_bits=bits)
    expect(rep.get("error") is None and rep.get("result") is True, "sent %s (header %s, version %08x), got %s" % (json.dumps(req), header.hex(), version, json.dumps(rep)))


@check("block: a share that meets the network target → true, and a clean notify on the new tip (prevhash = that block) within 2 s")
def check_block(ctx):
    m = ctx.main
    j = fresh_job(m)
    net = nbits_target(j["nbits"])
    en2 = "00000005"
    expected = (2**256) // (net + 1)
    expect(expected < 3_000_000, "network target too hard for a Python grind (%d hashes expected)" % expected)
    found = grind(j, m.en1, en2, min(net, m.share_target()), limit=50_000_000)
    nonce, header = found
    req, rep = m.submit(j, en2, nonce)
    t0 = time.time()
    expect(rep.get("error") is None and rep.get("result") is True, "sent %s (block hash %s), got %s" % (json.dumps(req), display(header), json.dumps(rep)))
    want = stratum_prevhash(sha256d(header))
    try:
        note = m.conn.wait_note("mining.notify", 2.0, lambda n: n["params"][1] == want)
    except AssertionError as e:
        raise AssertionError("block %s accepted but: %s" % (display(header), e))
    dt = time.time() - t0
    new = job_from_notify(note["params"])
    m.latest_job = new
    ctx.block_job = j
    expect(new["clean"] is True, "the new tip's notify has clean_jobs %r" % (new["clean"],))
    expect(new["id"] != j["id"], "the new tip's job reuses job id %s" % j["id"])
    print("  block %s accepted; clean notify %s after %.0f ms" % (display(header), new["id"], dt * 1000))


@check("stale: a new share on the job the block superseded → error 21")
def check_stale(ctx):
    m = ctx.main
    j = getattr(ctx, "block_job", None)
    expect(j is not None, "no block was found, nothing is stale")
    en2 = "00000006"
    nonce, header = grind(j, m.en1, en2, m.share_target(), avoid_target=nbits_target(j["nbits"]))
    req, rep = m.submit(j, en2, nonce)
    expect(rep.get("result") is not True and error_code(rep) == 21, "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))


@check("extranonce1: unique across 10 more connections")
def check_unique_en1(ctx):
    seen = {ctx.main.en1: "main"}
    miners = []
    try:
        for i in range(10):
            m = Miner(ctx.addr, ctx.port)
            miners.append(m)
            expect(m.en1 not in seen, "connection %d got extranonce1 %s, already given to %s" % (i, m.en1, seen.get(m.en1)))
            seen[m.en1] = "connection %d" % i
    finally:
        for m in miners:
            m.conn.close()


@check("resubscribe with the old session id restores the extranonce1")
def check_resume(ctx):
    m = Miner(ctx.addr, ctx.port)
    session = dict(m.subs).get("mining.notify")
    en1 = m.en1
    m.conn.close()
    deadline = time.time() + 2
    got = None
    while time.time() < deadline:
        time.sleep(0.2)
        c = Conn(ctx.addr, ctx.port)
        req, rep = c.call("mining.subscribe", ["conformance/1.0", session])
        c.close()
        res = rep.get("result")
        got = rep
        if isinstance(res, list) and len(res) >= 2 and res[1] == en1:
            return
    raise AssertionError("had extranonce1 %s, session id %r; resubscribe sent [\"conformance/1.0\", %r], got %s" % (en1, session, session, json.dumps(got)))


@check("string request ids are echoed; mining.ping is answered")
def check_ids_ping(ctx):
    c = Conn(ctx.addr, ctx.port)
    try:
        req, rep = c.call("mining.subscribe", ["conformance/1.0"], req_id="sub-α")
        expect(rep.get("id") == "sub-α", "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
        req, rep = c.call("mining.ping", [])
        expect(rep.get("error") is None, "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
    finally:
        c.close()


@check("unknown method → an error reply, and the connection stays usable")
def check_unknown_method(ctx):
    c = Conn(ctx.addr, ctx.port)
    try:
        req, rep = c.call("mining.no_such_method", [1, 2, 3])
        expect(rep.get("error") is not None and rep.get("result") in (None, False), "sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
        req, rep = c.call("mining.subscribe", ["conformance/1.0"])
        expect(rep.get("error") is None and isinstance(rep.get("result"), list), "after the unknown method, sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
    finally:
        c.close()


@check("submit before authorize → error 24; submit before subscribe → error 24 or 25")
def check_unauthorized(ctx):
    m = Miner(ctx.addr, ctx.port)
    try:
        j = fresh_job(ctx.main)
        req, rep = m.submit(j, "00000000", 0)
        expect(rep.get("result") is not True and error_code(rep) == 24, "subscribed, not authorized: sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
    finally:
        m.conn.close()
    c = Conn(ctx.addr, ctx.port)
    try:
        req, rep = c.call("mining.submit", ["test.worker", j["id"], "00000000", j["ntime"], "00000000"])
        expect(rep.get("result") is not True and error_code(rep) in (24, 25), "not subscribed: sent %s, got %s" % (json.dumps(req), json.dumps(rep)))
    finally:
        c.close()


@check("mining.suggest_difficulty 2e-6 → a set_difficulty of 2e-6 (within floor/ceiling)")
def check_suggest(ctx):
    c = Conn(ctx.addr, ctx.port)
    try:
        c.call("mining.subscribe", ["conformance/1.0"])
        # Sent without waiting for its reply (servers differ on whether they answer it).
        c.send({"id": 50, "method": "mining.suggest_difficulty", "params": [2e-6]})
        c.send({"id": 51, "method": "mining.authorize", "params": ["test.suggest", "x"]})
        deadline = time.time() + 3
        seen = []
        while time.time() < deadline:
            try:
                msg = c.read_msg(deadline)
            except socket.timeout:
                break
            if isinstance(msg, dict) and msg.get("id") == 50 and msg.get("error") is not None:
                raise AssertionError("mining.suggest_difficulty [2e-6] answered %s" % json.dumps(msg))
            if isinstance(msg, dict) and msg.get("method") == "mining.set_difficulty":
                seen.append(msg["params"][0])
                if abs(msg["params"][0] - 2e-6) < 1e-12:
                    return
        raise AssertionError("set_difficulty values seen: %s" % seen)
    finally:
        c.close()


def fresh_miner_ok(ctx, within=2.0, what=""):
    """A new miner connects, subscribes, authorizes and gets a notify within `within` s."""
    t0 = time.time()
    try:
        m = Miner(ctx.addr, ctx.port, user="test.fresh")
        req, rep = m.authorize()
        expect(rep.get("result") is True, "fresh miner's authorize got %s" % json.dumps(rep))
        m.job(within)
    except (OSError, AssertionError) as e:
        raise AssertionError("%sa fresh miner was not served: %s" % (what, e))
    dt = time.time() - t0
    m.conn.close()
    expect(dt < within, "%sa fresh miner took %.2f s to be served (limit %.1f s)" % (what, dt, within))
    return dt


def main_alive(ctx, what=""):
    """The long-lived main miner still answers (a ping) within 2 s."""
    try:
        req, rep = ctx.main.conn.call("mining.ping", [], timeout=2.0)
    except (OSError, AssertionError) as e:
        raise AssertionError("%sthe established miner was harmed: %s" % (what, e))


MALFORMED = [
    b"{this is not json\n",
    b"[1, 2, 3]\n",
    b"42\n",
    b'"mining.subscribe"\n',
    b'{"id": 7}\n',
    b'{"id": 8, "method": "mining.subscribe", "params": "not a list"}\n',
    b'{"id": 9, "method": 17, "params": []}\n',
    b'{"id": 10, "method": "mining.submit", "params": [1, null, {}, [], true]}\n',
    b'{"id": 11, "method": "mining.authorize", "params": []}\n',
    b'{"id": 12, "method": "mining.submit", "params": ["test.worker", "%JOB%", "zz", "qq", "nothex!!"]}\n',
    b'{"id": 13, "method": "mining.submit", "params": ["test.worker", "%JOB%", "00", "%NTIME%", "00000000"]}\n',
    b'{"id": 14, "method": "mining.submit", "params": ["test.worker", "%JOB%", "0000000000", "%NTIME%", "00000000"]}\n',
    b'{"id": 15, "method": "mining.submit", "params": ["test.worker", "%JOB%", "00000000", "%NTIME%", "0000000000"]}\n',
    b'{"id": 16, "method": "mining.submit", "params": ["test.worker", "%JOB%", "00000000", "%NTIME%", "00000000", "zzzz"]}\n',
    b"\xff\xfe\x00garbage\x80\n",
    b"\n\n\r\n",
]


@check("malformed lines: each answered with an error, ignored, or cut off; the server keeps serving others")
def check_malformed(ctx):
    outcomes = []
    job = fresh_job(ctx.main)
    for line in MALFORMED:
        line = line.replace(b"%JOB%", job["id"].encode()).replace(b"%NTIME%", job["ntime"].encode())
        c = Conn(ctx.addr, ctx.port)
        try:
            c.call("mining.subscribe", ["conformance/1.0"], req_id=1)
            c.call("mining.authorize", ["test.worker", "x"], req_id=2)
            c.send_raw(line)
            # Then a valid request: either it is answered (the connection survived) or the
            # connection is closed; anything else (a hang) is a failure.
            try:
                c.send({"id": 99, "method": "mining.ping", "params": []})
            except OSError:
                outcomes.append("closed")
                continue
            deadline = time.time() + TIMEOUT
            got = []
            while True:
                try:
                    msg = c.read_msg(deadline)
                except Closed:
                    outcomes.append("closed after %s" % got)
                    break
                except socket.timeout:
                    raise AssertionError("sent %r then a ping: no reply and no close in %.0f s (got %s)" % (line, TIMEOUT, got))
                except AssertionError as e:
                    raise AssertionError("sent %r: %s" % (line, e))
                if isinstance(msg, dict) and msg.get("id") == 99:
                    outcomes.append("kept open, replies %s" % json.dumps(got) if got else "ignored, kept open")
                    break
                if isinstance(msg, dict) and msg.get("method"):
                    continue
                if b"mining.submit" in line:
                    expect(not (isinstance(msg, dict) and msg.get("result") is True),
                           "sent %r: the malformed share was accepted: %s" % (line, json.dumps(msg)))
                # Any reply to a malformed line is tolerated (an error, or a lenient result for a
                # well-formed line with odd params); it is shown in the outcomes.
                got.append(msg.get("error") if isinstance(msg, dict) and msg.get("error") is not None
                           else "result %s" % json.dumps(msg.get("result") if isinstance(msg, dict) else msg)[:40])
        finally:
            c.close()
    for l, o in zip(MALFORMED, outcomes):
        print("  %r → %s" % (l[:60], o))
    fresh_miner_ok(ctx, what="after malformed lines: ")
    main_alive(ctx, "after malformed lines: ")


@check("a 10 KiB line (under the 16 KiB limit) is served")
def check_long_ok(ctx):
    c = Conn(ctx.addr, ctx.port)
    try:
        req, rep = c.call("mining.subscribe", ["conformance/" + "x" * 10_000])
        expect(rep.get("error") is None and isinstance(rep.get("result"), list), "a %d-byte subscribe got %s" % (len(json.dumps(req)), json.dumps(rep)[:300]))
    finally:
        c.close()


@check("oversized line: 100 KiB without a newline → the connection is cut off; other miners unharmed")
def check_oversized(ctx):
    c = Conn(ctx.addr, ctx.port)
    try:
        c.call("mining.subscribe", ["conformance/1.0"])
        try:
            c.send_raw(b'{"id": 5, "method": "mining.subscribe", "params": ["' + b"A" * (100 * 1024))
        except OSError:
            pass  # cut off while sending: fine
        expect(c.is_closed_by_server(5.0), "the server kept a connection open 5 s after 100 KiB without a newline")
    finally:
        c.close()
    # And a whole oversized line with its newline, at once.
    c = Conn(ctx.addr, ctx.port)
    try:
        try:
            c.send_raw(b'{"id": 5, "method": "mining.subscribe", "params": ["' + b"B" * (100 * 1024) + b'"]}\n')
        except OSError:
            pass
        expect(c.is_closed_by_server(5.0), "the server kept a connection open 5 s after a 100 KiB line")
    finally:
        c.close()
    fresh_miner_ok(ctx, what="after oversized lines: ")
    main_alive(ctx, "after oversized lines: ")


@check("flood: 5,000 pings and unknown methods pipelined → answered or cut off; others served meanwhile")
def check_flood(ctx):
    c = Conn(ctx.addr, ctx.port, timeout=15)
    c.call("mining.subscribe", ["conformance/1.0"])
    N = 5000
    lines = []
    for i in range(N):
        method = "mining.ping" if i % 2 else "flood.unknown_%d" % i
        lines.append(json.dumps({"id": 1000 + i, "method": method, "params": []}))
    data = ("\n".join(lines) + "\n").encode()
    state = {"replies": 0, "closed": False, "bad": None, "sent": False, "write_timeout": False}
    # The writer gets its own socket object: Python's timeouts are per object, so the reader's
    # deadlines do not cut the writer's sendall short.
    wsock = c.sock.dup()
    wsock.settimeout(30)

    def reader():
        deadline = time.time() + 30
        while state["replies"] < N:
            try:
                msg = c.read_msg(deadline)
            except Closed:
                state["closed"] = True
                return
            except socket.timeout:
                return
            except (OSError, AssertionError) as e:
                state["bad"] = str(e)
                return
            if isinstance(msg, dict) and msg.get("method"):
                continue
            if isinstance(msg, dict) and isinstance(msg.get("id"), int) and msg["id"] >= 1000:
                state["replies"] += 1

    def writer():
        try:
            wsock.sendall(data)
            state["sent"] = True
        except socket.timeout:
            state["write_timeout"] = True
        except OSError:
            state["closed"] = True

    rt = threading.Thread(target=reader, daemon=True)
    wt = threading.Thread(target=writer, daemon=True)
    rt.start()
    wt.start()
    t0 = time.time()
    # During the flood: the established miner and a fresh one are served.
    during = []
    try:
        main_alive(ctx, "during the flood: ")
        during.append(fresh_miner_ok(ctx, what="during the flood: "))
    finally:
        rt.join(35)
        wt.join(35)
        wsock.close()
        c.close()
    expect(state["bad"] is None, "flood connection: %s" % state["bad"])
    expect(not state["write_timeout"] or state["closed"], "flood: the server stopped reading for 30 s without closing (%d replies)" % state["replies"])
    expect(state["replies"] == N or state["closed"], "flood: %d of %d answered and the connection was not closed within 30 s" % (state["replies"], N))
    print("  flood: %d of %d answered, %s, in %.2f s" % (state["replies"], N, "cut off" if state["closed"] else "connection kept", time.time() - t0))
    fresh_miner_ok(ctx, what="after the flood: ")
    main_alive(ctx, "after the flood: ")


@check("half-open: 50 silent sockets and 50 half lines → a fresh miner is still served in < 2 s")
def check_half_open(ctx):
    socks = []
    try:
        for i in range(100):
            s = socket.create_connection((ctx.addr, ctx.port), timeout=TIMEOUT)
            if i >= 50:
                s.sendall(b'{"id": 1, "method": "mining.subscr')
            socks.append(s)
        dt = fresh_miner_ok(ctx, within=2.0, what="with 100 half-open connections: ")
        main_alive(ctx, "with 100 half-open connections: ")
        print("  fresh miner served in %.0f ms" % (dt * 1000))
    finally:
        for s in socks:
            s.close()


@check("the established miner, after all of it, still submits a share → true")
def check_main_last(ctx):
    m = ctx.main
    j = fresh_job(m)
    en2 = "00000007"
    found = grind(j, m.en1, en2, m.share_target(), avoid_target=nbits_target(j["nbits"]))
    nonce, header = found
    req, rep = m.submit(j, en2, nonce)
    expect(rep.get("error") is None and rep.get("result") is True, "sent %s (hash %s), got %s" % (json.dumps(req), display(header), json.dumps(rep)))


def main(argv):
    if len(argv) == 2 and argv[1] == "--vector-only":
        ok = check_vector()
        return 0 if ok else 1
    if len(argv) != 3:
        print("usage: %s ADDR PORT | --vector-only" % argv[0], file=sys.stderr)
        return 2
    ctx = Ctx()
    ctx.addr, ctx.port = argv[1], int(argv[2])
    if not check_vector():
        print("FAILED: this client's own header builder is wrong; not testing the server")
        return 1
    # The main miner carries later checks: without it they cannot run.
    steps = [check_subscribe, check_configure]
    for step in steps:
        step(ctx)
    if not hasattr(ctx, "main") or not check_authorize(ctx):
        print("FAILED: no authorized miner to test with")
        return 1
    for step in [
        check_configure_narrow,
        check_notify_shape,
        check_share,
        check_duplicate,
        check_duplicate_case,
        check_unknown_job,
        check_low,
        check_version_rolling,
        check_version_outside_mask,
        check_ntime_roll,
        check_block,
        check_stale,
        check_unique_en1,
        check_resume,
        check_ids_ping,
        check_unknown_method,
        check_unauthorized,
        check_suggest,
        check_malformed,
        check_long_ok,
        check_oversized,
        check_flood,
        check_half_open,
        check_main_last,
    ]:
        step(ctx)
    failed = [r for r in RESULTS if r[0] == "FAIL"]
    warned = [r for r in RESULTS if r[0] == "WARN"]
    print("%d checks: %d passed, %d failed, %d warnings" % (len(RESULTS), len(RESULTS) - len(failed) - len(warned), len(failed), len(warned)))
    for status, name, why in failed + warned:
        print("%s %s: %s" % (status, name, why))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
