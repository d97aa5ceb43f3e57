//! The x86 SHA-extensions kernel: `sha256rnds2` does two rounds, `sha256msg1/2` the schedule.
//!
//! Eight nonces run interleaved so independent dependency chains fill the SHA unit's pipeline
//! (one stream alone is bound by `sha256rnds2` latency; BENCHMARKS.md has 1 to 8 streams). With
//! enough streams the SHA unit's throughput is the limit, so the kernel issues as few
//! `sha256rnds2` as it can: 60 per nonce. Per job: the midstate and rounds 0..=3 of the second
//! block with a zero nonce word (the nonce word only adds to `a` and `e` in round 3). Per nonce:
//! rounds 4..=63 of the first hash (30 `sha256rnds2`), rounds 0..=59 of the second (30), and
//! round 60 on the scalar ALUs, whose new `e` is what H7 will be (early reject). Candidates are
//! confirmed with [`Job::meets`].

use super::soft::Precomputed as SoftPrecomputed;
use super::{is_candidate, Job, IV, K};
use core::arch::x86_64::*;

/// Nonces hashed together (independent streams in flight).
const STREAMS: usize = 8;

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn set(w: [u32; 4]) -> __m128i {
    _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
}

/// `K[4g .. 4g + 4]`, lane 0 first.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn k4(g: usize) -> __m128i {
    set([K[4 * g], K[4 * g + 1], K[4 * g + 2], K[4 * g + 3]])
}

/// A state `[a, b, c, d, e, f, g, h]` in the register layout the SHA instructions use.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn to_abef_cdgh(s: &[u32; 8]) -> (__m128i, __m128i) {
    let dcba = set([s[0], s[1], s[2], s[3]]);
    let efgh = set([s[4], s[5], s[6], s[7]]);
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(efgh, 0x1B);
    (
        _mm_alignr_epi8(cdab, efgh, 8),
        _mm_blend_epi16(efgh, cdab, 0xF0),
    )
}

/// The inverse of [`to_abef_cdgh`]: words `[a, b, c, d]` and `[e, f, g, h]`, lane 0 first.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn from_abef_cdgh(abef: __m128i, cdgh: __m128i) -> (__m128i, __m128i) {
    let feba = _mm_shuffle_epi32(abef, 0x1B);
    let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    (
        _mm_blend_epi16(feba, dchg, 0xF0),
        _mm_alignr_epi8(dchg, feba, 8),
    )
}

/// Four rounds with `kw = K + W` for those rounds.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, kw: __m128i) {
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, kw);
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(kw, 0x0E));
}

/// The next four schedule words from the previous sixteen.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    _mm_sha256msg2_epu32(
        _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4)),
        w3,
    )
}

/// Per-job values.
struct Precomputed {
    mid_abef: __m128i,
    mid_cdgh: __m128i,
    /// ABEF after rounds 0..=3 of the second block run with a zero nonce word: the nonce word
    /// only adds to `a` and `e` in round 3, so the real ABEF is this plus `[0, nw, 0, nw]`.
    abef4: __m128i,
    /// CDGH after round 3 (nonce-free).
    cdgh4: __m128i,
    tail: [u32; 3],
    iv_abef: __m128i,
    iv_cdgh: __m128i,
}

impl Precomputed {
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn new(job: &Job) -> Precomputed {
        let (mid_abef, mid_cdgh) = to_abef_cdgh(&job.midstate);
        let (abef4, cdgh4) = to_abef_cdgh(&SoftPrecomputed::new(job).state4_zero_nonce);
        let (iv_abef, iv_cdgh) = to_abef_cdgh(&IV);
        Precomputed {
            mid_abef,
            mid_cdgh,
            abef4,
            cdgh4,
            tail: job.tail,
            iv_abef,
            iv_cdgh,
        }
    }

    /// H7 of the double hash for each nonce.
    // Indexed loops over lanes and round groups mirror the algorithm and unroll to straight code.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn h7<const LANES: usize>(&self, nonces: [u32; LANES]) -> [u32; LANES] {
        let zero = _mm_setzero_si128();
        // First hash, second block: W = tail0 tail1 tail2 nonce | 0x80000000 0 0 0 | 0.. | .. 640.
        let pad1 = set([0x8000_0000, 0, 0, 0]);
        let len1 = set([0, 0, 0, 640]);
        let mut abef = [zero; LANES];
        let mut cdgh = [zero; LANES];
        let mut w = [[zero; 4]; LANES];
        for s in 0..LANES {
            let nw = Job::nonce_word(nonces[s]);
            // Rounds 0..=3 are per job; the nonce word adds to `a` and `e`.
            abef[s] = _mm_add_epi32(self.abef4, set([0, nw, 0, nw]));
            cdgh[s] = self.cdgh4;
            w[s] = [
                set([self.tail[0], self.tail[1], self.tail[2], nw]),
                pad1,
                zero,
                len1,
            ];
        }
        for g in 1..4 {
            for s in 0..LANES {
                rounds4(&mut abef[s], &mut cdgh[s], _mm_add_epi32(w[s][g], k4(g)));
            }
        }
        for g in 4..16 {
            for s in 0..LANES {
                let ws = &mut w[s];
                let next = schedule(ws[g % 4], ws[(g + 1) % 4], ws[(g + 2) % 4], ws[(g + 3) % 4]);
                ws[g % 4] = next;
                rounds4(&mut abef[s], &mut cdgh[s], _mm_add_epi32(next, k4(g)));
            }
        }
        // Second hash: W = the first hash's eight words | 0x80000000 0 0 0 | 0 0 0 256.
        let pad2 = set([0x8000_0000, 0, 0, 0]);
        let len2 = set([0, 0, 0, 256]);
        for s in 0..LANES {
            let (m0, m1) = from_abef_cdgh(
                _mm_add_epi32(abef[s], self.mid_abef),
                _mm_add_epi32(cdgh[s], self.mid_cdgh),
            );
            w[s] = [m0, m1, pad2, len2];
            abef[s] = self.iv_abef;
            cdgh[s] = self.iv_cdgh;
        }
        for g in 0..4 {
            for s in 0..LANES {
                rounds4(&mut abef[s], &mut cdgh[s], _mm_add_epi32(w[s][g], k4(g)));
            }
        }
        for g in 4..15 {
            for s in 0..LANES {
                let ws = &mut w[s];
                let next = schedule(ws[g % 4], ws[(g + 1) % 4], ws[(g + 2) % 4], ws[(g + 3) % 4]);
                ws[g % 4] = next;
                rounds4(&mut abef[s], &mut cdgh[s], _mm_add_epi32(next, k4(g)));
            }
        }
        let mut out = [0u32; LANES];
        for s in 0..LANES {
            let ws = &w[s];
            let next = schedule(ws[15 % 4], ws[0], ws[1], ws[2]);
            // Round 60 only, on the scalar ALUs (the SHA unit is the bottleneck): it gives e
            // after 61 rounds, which is h after 64.
            let w60 = _mm_cvtsi128_si32(next) as u32;
            let e = _mm_extract_epi32::<1>(abef[s]) as u32;
            let f = _mm_cvtsi128_si32(abef[s]) as u32;
            let d = _mm_extract_epi32::<2>(cdgh[s]) as u32;
            let g = _mm_extract_epi32::<1>(cdgh[s]) as u32;
            let h = _mm_cvtsi128_si32(cdgh[s]) as u32;
            let sigma1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let e61 = d
                .wrapping_add(h)
                .wrapping_add(sigma1)
                .wrapping_add(ch)
                .wrapping_add(K[60].wrapping_add(w60));
            out[s] = e61.wrapping_add(IV[7]);
        }
        out
    }
}

/// Searches `first .. first + count`; see [`super::Kernel::scan`].
///
/// # Safety
/// The CPU must support the SHA, SSE2, SSSE3 and SSE4.1 extensions.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub unsafe fn scan(job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
    scan_streams::<STREAMS>(job, first, count, hits)
}

/// [`scan`] with `N` interleaved streams (for measuring the best `N`).
///
/// # Safety
/// As [`scan`].
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub unsafe fn scan_streams<const N: usize>(job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
    let pre = Precomputed::new(job);
    let top = job.target[7];
    let end = u64::from(first) + u64::from(count);
    let mut n = u64::from(first);
    while n < end {
        // Lanes past the end repeat the last nonce and are ignored.
        let nonces: [u32; N] = std::array::from_fn(|i| (n + i as u64).min(end - 1) as u32);
        let h = pre.h7(nonces);
        for i in 0..N {
            if n + (i as u64) < end && is_candidate(h[i], top) && job.meets(nonces[i]) {
                hits.push(nonces[i]);
            }
        }
        n += N as u64;
    }
}
