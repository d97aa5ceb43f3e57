#!/usr/bin/env python3
"""Generates shaders/sha256d.wgsl: the SHA-256d nonce search, fully unrolled.

WGSL has no macros, so the 125 rounds are written out by this script with every constant folded:
the zero padding words are skipped, constant schedule terms are added up here, and each round's
K[t] + W[t] is a literal wherever W[t] is known. Run it after editing; commit both files.

    python3 shaders/gen_sha256d.py > shaders/sha256d.wgsl
"""

K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]
IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
M32 = 0xFFFFFFFF


def rotr(x, n):
    return ((x >> n) | (x << (32 - n))) & M32


def s0(x):
    return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3)


def s1(x):
    return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10)


def S0(x):
    return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22)


def S1(x):
    return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25)


def lit(v):
    return f"0x{v & M32:08x}u"


# WGSL text of the SHA-256 functions. Every rotate is a shift pair with literal amounts, which a
# driver maps to one funnel shift (or a rotate); a helper taking the amount at run time would
# leave that to its inliner.
def rot(x, n):
    return f"(({x} >> {n}u) | ({x} << {32 - n}u))"


def big_sigma0(x):
    return f"({rot(x, 2)} ^ {rot(x, 13)} ^ {rot(x, 22)})"


def big_sigma1(x):
    return f"({rot(x, 6)} ^ {rot(x, 11)} ^ {rot(x, 25)})"


def small_sigma0(x):
    return f"({rot(x, 7)} ^ {rot(x, 18)} ^ ({x} >> 3u))"


def small_sigma1(x):
    return f"({rot(x, 17)} ^ {rot(x, 19)} ^ ({x} >> 10u))"


SIGMA = {"ss0": small_sigma0, "ss1": small_sigma1}


class Word:
    """A schedule word: a known constant, or an expression held in a WGSL `let` or a uniform.
    `job` marks a word that is the same for every nonce of a job (it comes from Params)."""

    def __init__(self, const=None, name=None, job=False):
        self.const, self.name, self.job = const, name, job


# First-hash schedule words whose nonce-free part (the job words under a sigma, every other job
# word and the constants) the host adds up per job (src/hash/soft.rs, Precomputed::folds), in
# the uniform named here. Only the nonce-dependent terms are left in the shader.
FOLDS = {18: "p.w.z", 19: "p.w.w", 31: "p.c.x", 32: "p.c.y"}


def schedule(w, t, prefix, out):
    """Appends W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], folding constants."""
    const = 0
    terms = []
    fold = FOLDS.get(t) if prefix == "v" else None
    for word, fn in ((w[t - 2], "ss1"), (w[t - 7], None), (w[t - 15], "ss0"), (w[t - 16], None)):
        if fold and (word.const is not None or word.job):
            continue  # in the host's sum
        if word.const is not None:
            v = word.const
            if fn == "ss1":
                v = s1(v)
            elif fn == "ss0":
                v = s0(v)
            const = (const + v) & M32
        else:
            if word.job and (fn or word.name is None):
                raise SystemExit(f"W{t}: job word {word.name} under {fn} is not folded on the host")
            terms.append(SIGMA[fn](word.name) if fn else word.name)
    if fold:
        terms.append(fold)
    if not terms:
        w.append(Word(const=const))
        return
    if const:
        terms.append(lit(const))
    name = f"{prefix}{t}"
    out.append(f"        let {name} = {' + '.join(terms)};")
    w.append(Word(name=name))


def rounds(w, first, last, prefix, out, e_only=False):
    """Rounds first..last-1 on the vars a..h; schedule words are computed just before the round
    that needs them, so the words after the early reject are only computed for candidates.

    Maj(a, b, c) is written b ^ ((a ^ b) & (b ^ c)), and b ^ c is the previous round's a ^ b
    (var `bc`), so it costs three operations, not four. With `e_only` a round computes only the
    new e (= d + T1): what the early reject needs from rounds 57..60 of the second hash, whose
    new a would never be read there (e after round 60 takes d, which is a from rounds 53..56)."""
    for t in range(first, last):
        while len(w) <= t:
            schedule(w, len(w), prefix, out)
        word = w[t]
        if word.const is not None:
            kw = lit(K[t] + word.const)
        else:
            kw = f"{word.name} + {lit(K[t])}"
        t1 = f"t1 = h + {big_sigma1('e')} + (g ^ (e & (f ^ g))) + {kw};"
        if e_only:
            out.append(f"        {t1}")
            out.append("        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a;")
        else:
            out.append(f"        {t1}")
            out.append(f"        ab = a ^ b; t2 = {big_sigma0('a')} + (b ^ (ab & bc)); bc = ab;")
            out.append("        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;")


def body():
    out = []
    # First hash, second block: W0..W2 and W16, W17 come from the job; W3 is the nonce. W0..W2
    # are used only by rounds 0..2 and by W16..W18, all on the host.
    w = [Word(job=True), Word(job=True), Word(job=True), Word(name="nw"), Word(const=0x80000000)]
    w += [Word(const=0) for _ in range(5, 15)] + [Word(const=640)]
    w += [Word(name="p.w.x", job=True), Word(name="p.w.y", job=True)]
    # Round 3 on the host with a zero nonce word: the nonce word then only adds to a and e.
    out.append("        a = p.s4a.x + nw; b = p.s4a.y; c = p.s4a.z; d = p.s4a.w;")
    out.append("        e = p.s4b.x + nw; f = p.s4b.y; g = p.s4b.z; h = p.s4b.w; bc = b ^ c;")
    rounds(w, 4, 64, "v", out)
    # Second hash: the first hash's words, then constant padding.
    for i, (src, comp) in enumerate(zip(["a", "b", "c", "d", "e", "f", "g", "h"], ["mida.x", "mida.y", "mida.z", "mida.w", "midb.x", "midb.y", "midb.z", "midb.w"])):
        out.append(f"        let u{i} = {src} + p.{comp};")
    w = [Word(name=f"u{i}") for i in range(8)] + [Word(const=0x80000000)]
    w += [Word(const=0) for _ in range(9, 15)] + [Word(const=256)]
    init = ["a", "b", "c", "d", "e", "f", "g", "h"]
    # Round 0 starts from the IV: everything but W0 = u0 is a constant, folded here.
    ia, ib, ic, id_, ie, if_, ig, ih = IV
    t1 = (ih + S1(ie) + (ig ^ (ie & (if_ ^ ig))) + K[0]) & M32
    t2 = (S0(ia) + (ib ^ ((ia ^ ib) & (ib ^ ic)))) & M32
    out.append(f"        a = u0 + {lit(t1 + t2)}; b = {lit(ia)}; c = {lit(ib)}; d = {lit(ic)};")
    out.append(f"        e = u0 + {lit(id_ + t1)}; f = {lit(ie)}; g = {lit(if_)}; h = {lit(ig)}; bc = {lit(ia ^ ib)};")
    rounds(w, 1, 57, "y", out)
    out.append("        // The state after round 56, for candidates to finish from.")
    out.append("        let s56 = array<u32, 9>(a, b, c, d, e, f, g, h, bc);")
    out.append("        // Rounds 57..60 for e alone: after them e is what h will be after 64, and H7")
    out.append("        // decides the early reject.")
    rounds(w, 57, 61, "y", out, e_only=True)
    out.append(f"        let h7 = e + {lit(IV[7])};")
    out.append("        if (bswap(h7) <= p.tb.w) {")
    late = ["        " + " ".join(f"{v} = s56[{i}];" for i, v in enumerate(init + ["bc"]))]
    rounds(w, 57, 64, "y", late)
    out += ["    " + line for line in late]
    out.append("            let hs = array<u32, 8>(" + ", ".join(f"{v} + {lit(IV[i])}" for i, v in enumerate(init)) + ");")
    return "\n".join(out)


HEADER = """// SHA-256d nonce search. GENERATED by shaders/gen_sha256d.py: edit that script, not this file.
//
// One invocation hashes NONCES_PER_INVOCATION consecutive nonces. Per job the host computes the
// midstate, the first four rounds of the second block (round 3 with a zero nonce word, which
// the nonce word then only adds to a and e), schedule words W16, W17 and the nonce-free parts
// of W18, W19, W31 and W32 (Params); here every round is unrolled, every rotate is a shift pair
// with literal amounts (one funnel shift on a GPU), constants are folded, and Maj reuses the
// previous round's a ^ b. The second hash runs rounds 0..56 in full and 57..60 for e alone, which
// is then what H7 will be: the early reject. Only candidates redo rounds 57..63 in full from
// the state after round 56 and compare all eight words. Hits go through an atomic counter into a
// small array; the count is exact even when the array overflows, so the host can re-scan
// instead of losing hits.

override WORKGROUP_SIZE: u32 = 256u;
override NONCES_PER_INVOCATION: u32 = 8u;

struct Params {
    s4a: vec4<u32>,   // state a..d after rounds 0..3 of the first hash's second block, W3 = 0
    s4b: vec4<u32>,   // state e..h, likewise
    mida: vec4<u32>,  // midstate H0..H3
    midb: vec4<u32>,  // midstate H4..H7
    w: vec4<u32>,     // W16, W17, nonce-free parts of W18 and W19
    c: vec4<u32>,     // nonce-free parts of W31 and W32, 0, 0
    x: vec4<u32>,     // first nonce, nonce count, invocations per grid row, 0
    ta: vec4<u32>,    // target words 0..3 (least significant first)
    tb: vec4<u32>,    // target words 4..7
}

struct Hits {
    count: atomic<u32>,
    nonces: array<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> hits: Hits;

fn bswap(x: u32) -> u32 {
    return (x << 24u) | ((x & 0xff00u) << 8u) | ((x >> 8u) & 0xff00u) | (x >> 24u);
}

// hash <= target, both as little-endian 256-bit integers; hash word i is bswap(H_i).
fn meets(hs: array<u32, 8>) -> bool {
    let t = array<u32, 8>(p.ta.x, p.ta.y, p.ta.z, p.ta.w, p.tb.x, p.tb.y, p.tb.z, p.tb.w);
    for (var i = 7i; i >= 0i; i--) {
        let hw = bswap(hs[i]);
        if (hw < t[i]) { return true; }
        if (hw > t[i]) { return false; }
    }
    return true;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let invocation = gid.y * p.x.z + gid.x;
    let count = p.x.y;
    var a: u32; var b: u32; var c: u32; var d: u32;
    var e: u32; var f: u32; var g: u32; var h: u32;
    var t1: u32; var t2: u32; var ab: u32; var bc: u32;
    for (var i = 0u; i < NONCES_PER_INVOCATION; i++) {
        let offset = invocation * NONCES_PER_INVOCATION + i;
        if (offset >= count) { return; }
        let nonce = p.x.x + offset;
        let nw = bswap(nonce);
"""

FOOTER = """
            if (meets(hs)) {
                let slot = atomicAdd(&hits.count, 1u);
                if (slot < arrayLength(&hits.nonces)) { hits.nonces[slot] = nonce; }
            }
        }
    }
}
"""

print(HEADER + body() + FOOTER, end="")
