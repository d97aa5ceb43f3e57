//! The ARMv8 SHA-256 kernel: `sha256h` and `sha256h2` do four rounds (the new ABCD and EFGH
//! halves of the state), `sha256su0` and `sha256su1` the schedule, four words at a time.
//!
//! Four nonces run interleaved: each `sha256h`/`sha256h2` waits for the previous pair's result (4
//! cycles on Neoverse N1 and V1, which issue them on one pipeline), so one stream alone would leave
//! the SHA unit idle most cycles. Four streams issue about 14 SHA instructions per 4-cycle wait, so
//! the unit itself is the limit, and their state and schedule (24 registers) fit the 32 vector
//! registers without spilling; the x86 kernel's eight would not. Per job, as in the x86 kernel: the
//! midstate; rounds 0..=3 of the second block run with a zero nonce word (the nonce word only adds
//! to `a` and `e` in round 3, so the real state is that plus `[nw, 0, 0, 0]` in both halves); the
//! first hash's W16..W19 without the nonce's terms (W16 and W17 do not depend on it, W18 and W19
//! only add `s0(nw)` and `nw`); `K + W` of every round group whose message words are padding; and
//! every `sha256su0` whose inputs are padding or nonce-free (first hash W20, W24, W28; second hash
//! W24). Per nonce: rounds 4..=63 of the first hash, 0..=59 of the second, and its rounds 60..=63
//! on EFGH alone (`sha256h2` without `sha256h`), whose H lane is then `e` after round 60: what H7
//! will be (less IV7), which decides the early reject. Candidates are confirmed with
//! [`Job::meets`](crate::hash::Job::meets).
//!
//! The state layout is the natural one (`[a, b, c, d]` and `[e, f, g, h]`, lane 0 first), so,
//! unlike x86's ABEF/CDGH, no shuffles enter or leave it.
//!
//! The module is crate-private: its `unsafe fn` is reached only through the safe dispatch
//! ([`crate::hash::Kernel::scan`]), which checks the CPU's features first.

use super::soft::{small_sigma0 as s0, Precomputed as SoftPrecomputed};
use super::{is_candidate, Job, IV, K};
use core::arch::aarch64::*;

/// Nonces hashed together (independent streams in flight).
const STREAMS: usize = 4;

type V = uint32x4_t;

/// `[w[0], w[1], w[2], w[3]]`, lane 0 first.
#[inline]
#[target_feature(enable = "neon,sha2")]
fn set(w: [u32; 4]) -> V {
    let lo = u64::from(w[1]) << 32 | u64::from(w[0]);
    let hi = u64::from(w[3]) << 32 | u64::from(w[2]);
    vcombine_u32(vcreate_u32(lo), vcreate_u32(hi))
}

/// `K[4g .. 4g + 4]`, lane 0 first.
#[inline]
#[target_feature(enable = "neon,sha2")]
fn k4(g: usize) -> V {
    set([K[4 * g], K[4 * g + 1], K[4 * g + 2], K[4 * g + 3]])
}

/// Four rounds with `kw = K + W` for those rounds.
#[inline]
#[target_feature(enable = "neon,sha2")]
fn rounds4(abcd: &mut V, efgh: &mut V, kw: V) {
    let abcd0 = *abcd;
    *abcd = vsha256hq_u32(abcd0, *efgh, kw);
    *efgh = vsha256h2q_u32(*efgh, abcd0, kw);
}

/// The next four schedule words from the previous sixteen (`w0` the oldest four).
#[inline]
#[target_feature(enable = "neon,sha2")]
fn schedule(w0: V, w1: V, w2: V, w3: V) -> V {
    vsha256su1q_u32(vsha256su0q_u32(w0, w1), w2, w3)
}

/// Per-job values.
struct Precomputed {
    mid_abcd: V,
    mid_efgh: V,
    /// ABCD and EFGH after rounds 0..=3 of the second block run with a zero nonce word.
    abcd4: V,
    efgh4: V,
    /// `K + W` of the first hash's round groups 1..=3 (W4..W15: padding), at index `g - 1`.
    kw1: [V; 3],
    /// First hash W12..W15 (padding).
    w12: V,
    /// First hash W16..W19 with a zero nonce word: W18 lacks `s0(nw)`, W19 lacks `nw`.
    w16: V,
    /// First hash `sha256su0` results for W20..23, W24..27 and W28..31: their inputs are
    /// padding, or W16 (nonce-free).
    su0_20: V,
    su0_24: V,
    su0_28: V,
    iv_abcd: V,
    iv_efgh: V,
    /// Second hash W8..W11 and W12..W15 (padding).
    pad2: V,
    len2: V,
    /// `K + W` of the second hash's round groups 2 and 3 (padding).
    kw2: [V; 2],
    /// Second hash `sha256su0(W8..11, W12..15)` (padding), for W24..27.
    su0_2_24: V,
}

impl Precomputed {
    #[inline]
    #[target_feature(enable = "neon,sha2")]
    fn new(job: &Job) -> Precomputed {
        let soft = SoftPrecomputed::new(job);
        let s4 = &soft.state4_zero_nonce;
        let w = &soft.w;
        let words = |t: usize| set([w[t], w[t + 1], w[t + 2], w[t + 3]]);
        let kw = |t: usize, x: V| vaddq_u32(x, k4(t / 4));
        let w16 = set([w[16], w[17], soft.folds[0], soft.folds[1]]);
        let pad2 = set([0x8000_0000, 0, 0, 0]);
        let len2 = set([0, 0, 0, 256]);
        Precomputed {
            mid_abcd: set([
                job.midstate[0],
                job.midstate[1],
                job.midstate[2],
                job.midstate[3],
            ]),
            mid_efgh: set([
                job.midstate[4],
                job.midstate[5],
                job.midstate[6],
                job.midstate[7],
            ]),
            abcd4: set([s4[0], s4[1], s4[2], s4[3]]),
            efgh4: set([s4[4], s4[5], s4[6], s4[7]]),
            kw1: [kw(4, words(4)), kw(8, words(8)), kw(12, words(12))],
            w12: words(12),
            w16,
            su0_20: vsha256su0q_u32(words(4), words(8)),
            su0_24: vsha256su0q_u32(words(8), words(12)),
            su0_28: vsha256su0q_u32(words(12), w16),
            iv_abcd: set([IV[0], IV[1], IV[2], IV[3]]),
            iv_efgh: set([IV[4], IV[5], IV[6], IV[7]]),
            pad2,
            len2,
            kw2: [kw(8, pad2), kw(12, len2)],
            su0_2_24: vsha256su0q_u32(pad2, len2),
        }
    }

    /// H7 of the double hash for each nonce.
    // Indexed loops over streams and round groups mirror the algorithm and unroll to straight
    // code.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "neon,sha2")]
    fn h7<const N: usize>(&self, nonces: [u32; N]) -> [u32; N] {
        let zero = vdupq_n_u32(0);
        let mut abcd = [zero; N];
        let mut efgh = [zero; N];
        let mut w = [[zero; 4]; N];
        // First hash, second block: W = tail0 tail1 tail2 nonce | 0x80000000 0 0 0 | 0.. | .. 640.
        for s in 0..N {
            // Rounds 0..=3 are per job; the nonce word adds to `a` and `e`.
            let nw = vsetq_lane_u32::<0>(Job::nonce_word(nonces[s]), zero);
            abcd[s] = vaddq_u32(self.abcd4, nw);
            efgh[s] = vaddq_u32(self.efgh4, nw);
        }
        unroll!(g in [1 2 3] {
            for s in 0..N {
                rounds4(&mut abcd[s], &mut efgh[s], self.kw1[g - 1]);
            }
        });
        // W16..W31: the nonce-free terms are per job; only the nonce's own terms are added, and
        // the `sha256su0` halves of W20..W31 are per job.
        for s in 0..N {
            let nw = Job::nonce_word(nonces[s]);
            let w16 = vaddq_u32(self.w16, set([0, 0, s0(nw), nw]));
            w[s][0] = w16;
            rounds4(&mut abcd[s], &mut efgh[s], vaddq_u32(w16, k4(4)));
        }
        for s in 0..N {
            let w20 = vsha256su1q_u32(self.su0_20, self.w12, w[s][0]);
            w[s][1] = w20;
            rounds4(&mut abcd[s], &mut efgh[s], vaddq_u32(w20, k4(5)));
        }
        for s in 0..N {
            let w24 = vsha256su1q_u32(self.su0_24, w[s][0], w[s][1]);
            w[s][2] = w24;
            rounds4(&mut abcd[s], &mut efgh[s], vaddq_u32(w24, k4(6)));
        }
        for s in 0..N {
            let w28 = vsha256su1q_u32(self.su0_28, w[s][1], w[s][2]);
            w[s][3] = w28;
            rounds4(&mut abcd[s], &mut efgh[s], vaddq_u32(w28, k4(7)));
        }
        unroll!(g in [8 9 10 11 12 13 14 15] {
            for s in 0..N {
                let ws = &mut w[s];
                let next = schedule(ws[g % 4], ws[(g + 1) % 4], ws[(g + 2) % 4], ws[(g + 3) % 4]);
                ws[g % 4] = next;
                rounds4(&mut abcd[s], &mut efgh[s], vaddq_u32(next, k4(g)));
            }
        });
        // Second hash: W = the first hash's eight words | 0x80000000 0 0 0 | 0 0 0 256.
        for s in 0..N {
            let m0 = vaddq_u32(abcd[s], self.mid_abcd);
            let m1 = vaddq_u32(efgh[s], self.mid_efgh);
            w[s] = [m0, m1, self.pad2, self.len2];
            abcd[s] = self.iv_abcd;
            efgh[s] = self.iv_efgh;
        }
        unroll!(g in [0 1] {
            for s in 0..N {
                rounds4(&mut abcd[s], &mut efgh[s], vaddq_u32(w[s][g], k4(g)));
            }
        });
        unroll!(g in [2 3] {
            for s in 0..N {
                rounds4(&mut abcd[s], &mut efgh[s], self.kw2[g - 2]);
            }
        });
        unroll!(g in [4 5 6 7 8 9 10 11 12 13 14] {
            for s in 0..N {
                let ws = &mut w[s];
                let next = if g == 6 {
                    // `sha256su0` of the padding words W8..15 is a constant.
                    vsha256su1q_u32(self.su0_2_24, ws[0], ws[1])
                } else {
                    schedule(ws[g % 4], ws[(g + 1) % 4], ws[(g + 2) % 4], ws[(g + 3) % 4])
                };
                ws[g % 4] = next;
                rounds4(&mut abcd[s], &mut efgh[s], vaddq_u32(next, k4(g)));
            }
        });
        let mut out = [0u32; N];
        for s in 0..N {
            let ws = &w[s];
            // W60..63 (group 15: `15 % 4 == 3`); only W60 matters below.
            let next = schedule(ws[3], ws[0], ws[1], ws[2]);
            // Rounds 60..=63 on EFGH alone: its H lane is then `e` after round 60, which is h
            // after 63.
            let efgh64 = vsha256h2q_u32(efgh[s], abcd[s], vaddq_u32(next, k4(15)));
            out[s] = vgetq_lane_u32::<3>(efgh64).wrapping_add(IV[7]);
        }
        out
    }
}

/// Searches `first .. first + count`; see [`crate::hash::Kernel::scan`].
///
/// # Safety
/// The CPU must have NEON and the SHA-256 instructions (`sha2`). (The body holds no unsafe
/// operation: inside a function compiled for these features the intrinsics and the
/// `#[target_feature]` helpers are safe to call.)
#[target_feature(enable = "neon,sha2")]
pub(crate) unsafe fn scan(job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
    let pre = Precomputed::new(job);
    let top = job.target[7];
    let end = u64::from(first) + u64::from(count);
    let mut n = u64::from(first);
    while n < end {
        // Lanes past the end repeat the last nonce and are ignored.
        let nonces: [u32; STREAMS] = std::array::from_fn(|i| (n + i as u64).min(end - 1) as u32);
        let h = pre.h7(nonces);
        // Bit i for stream i when its top word passes (branch-free, so the common case, no
        // candidate, is one test), then only the streams inside the range.
        let mut mask = 0u32;
        for (i, &h7) in h.iter().enumerate() {
            mask |= u32::from(is_candidate(h7, top)) << i;
        }
        let valid = (end - n).min(STREAMS as u64) as u32;
        if valid < STREAMS as u32 {
            mask &= (1 << valid) - 1;
        }
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if job.meets(nonces[i]) {
                hits.push(nonces[i]);
            }
        }
        n += STREAMS as u64;
    }
}
