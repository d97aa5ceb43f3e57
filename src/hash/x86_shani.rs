//! The x86 SHA-extensions kernel: `sha256rnds2` does two rounds, `sha256msg1/2` the schedule.
//!
//! Eight nonces run interleaved so independent dependency chains keep the SHA unit busy (one
//! stream alone is bound by `sha256rnds2` latency; BENCHMARKS.md has 1 to 8 streams). Then the
//! SHA instructions (`sha256rnds2` and `sha256msg2` above all) and the register traffic around
//! them are the limit, so the kernel issues as few of them as it can. Per job: the midstate,
//! rounds 0..=3 of the second block run with a zero nonce word (the nonce word only adds to `a`
//! and `e` in round 3), the first hash's W16..W19 without the nonce's terms (W16 and W17 do not
//! depend on it, W18 and W19 only add `s0(nw)` and `nw`), and every `sha256msg1` whose inputs
//! are padding. Per nonce: rounds 4..=63 of the first hash and 0..=61 of the second; then the F
//! lane holds what H7 will be, which decides the early reject. Candidates are confirmed with
//! [`Job::meets`](crate::hash::Job::meets).
//!
//! The same code is compiled three times: with the legacy SSE encoding (`sse`, 16 xmm
//! registers), with VEX (`avx2`: three-operand forms, fewer register copies) and with AVX-512VL
//! enabled (`avx512vl`: 32 vector registers, so eight streams' state stops spilling). The SHA
//! instructions themselves exist only in the legacy encoding; what changes is everything around
//! them. On the Zen 4 EPYC the AVX-512VL build is about 1.2x the SSE one (BENCHMARKS.md);
//! [`crate::hash::Kernel::scan`] picks the widest one the CPU (and `MINER_DISABLE_KERNELS`)
//! allows.
//!
//! The module is crate-private: its `unsafe fn`s are reached only through the safe dispatch
//! ([`crate::hash::Kernel::scan`], [`crate::hash::ShaNiBuild::scan`] and, for the benches,
//! `ShaNiBuild::scan_streams`), each of which checks the CPU's features first.

/// Nonces hashed together (independent streams in flight).
const STREAMS: usize = 8;

/// The kernel body, compiled with the target features given.
macro_rules! shani_kernel {
    ($features:literal) => {
        use crate::hash::soft::{small_sigma0 as s0, Precomputed as SoftPrecomputed};
        use crate::hash::{is_candidate, Job, IV, K};
        use core::arch::x86_64::*;

        #[inline]
        #[target_feature(enable = $features)]
        fn set(w: [u32; 4]) -> __m128i {
            _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
        }

        /// `K[4g .. 4g + 4]`, lane 0 first.
        #[inline]
        #[target_feature(enable = $features)]
        fn k4(g: usize) -> __m128i {
            set([K[4 * g], K[4 * g + 1], K[4 * g + 2], K[4 * g + 3]])
        }

        /// A state `[a, b, c, d, e, f, g, h]` in the register layout the SHA instructions use.
        #[inline]
        #[target_feature(enable = $features)]
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
        #[target_feature(enable = $features)]
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
        #[target_feature(enable = $features)]
        fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, kw: __m128i) {
            *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, kw);
            *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(kw, 0x0E));
        }

        /// The next four schedule words from the previous sixteen.
        #[inline]
        #[target_feature(enable = $features)]
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
            /// First hash W16..W19 with a zero nonce word: W16 and W17 are nonce-free, W18 lacks
            /// `s0(nw)`, W19 lacks `nw`.
            w16: __m128i,
            /// First hash: `msg1(W4..7, W8..11) + W13..16`, the nonce-free input of W20..23's `msg2`.
            x20: __m128i,
            /// First hash: `msg1(W8..11, W12..15)`, nonce-free part of W24..27.
            m24: __m128i,
            /// Second hash: `msg1(W8..11, W12..15)` of the padding, for W24..27.
            m2_24: __m128i,
        }

        impl Precomputed {
            #[inline]
            #[target_feature(enable = $features)]
            fn new(job: &Job) -> Precomputed {
                let (mid_abef, mid_cdgh) = to_abef_cdgh(&job.midstate);
                let (abef4, cdgh4) = to_abef_cdgh(&SoftPrecomputed::new(job).state4_zero_nonce);
                let (iv_abef, iv_cdgh) = to_abef_cdgh(&IV);
                let soft = SoftPrecomputed::new(job);
                let w = &soft.w;
                let w16 = set([w[16], w[17], soft.folds[0], soft.folds[1]]);
                let pad1 = set([0x8000_0000, 0, 0, 0]);
                let len1 = set([0, 0, 0, 640]);
                let zero = _mm_setzero_si128();
                let x20 = _mm_add_epi32(
                    _mm_sha256msg1_epu32(pad1, zero),
                    set([w[13], w[14], w[15], w[16]]),
                );
                let m24 = _mm_sha256msg1_epu32(zero, len1);
                let m2_24 = _mm_sha256msg1_epu32(set([0x8000_0000, 0, 0, 0]), set([0, 0, 0, 256]));
                Precomputed {
                    w16,
                    x20,
                    m24,
                    m2_24,
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
            #[target_feature(enable = $features)]
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
                // W16..W27: the nonce-free terms are per job; only the nonce's own terms are added.
                for s in 0..LANES {
                    let nw = Job::nonce_word(nonces[s]);
                    let w16 = _mm_add_epi32(self.w16, set([0, 0, s0(nw), nw]));
                    w[s][0] = w16;
                    rounds4(&mut abef[s], &mut cdgh[s], _mm_add_epi32(w16, k4(4)));
                }
                for s in 0..LANES {
                    let w20 = _mm_sha256msg2_epu32(self.x20, w[s][0]);
                    w[s][1] = w20;
                    rounds4(&mut abef[s], &mut cdgh[s], _mm_add_epi32(w20, k4(5)));
                }
                for s in 0..LANES {
                    let ws = &mut w[s];
                    let w24 = _mm_sha256msg2_epu32(
                        _mm_add_epi32(self.m24, _mm_alignr_epi8(ws[1], ws[0], 4)),
                        ws[1],
                    );
                    ws[2] = w24;
                    rounds4(&mut abef[s], &mut cdgh[s], _mm_add_epi32(w24, k4(6)));
                }
                for g in 7..16 {
                    for s in 0..LANES {
                        let ws = &mut w[s];
                        let next =
                            schedule(ws[g % 4], ws[(g + 1) % 4], ws[(g + 2) % 4], ws[(g + 3) % 4]);
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
                        let next = if g == 6 {
                            // msg1 of the padding words W8..15 is a constant.
                            _mm_sha256msg2_epu32(
                                _mm_add_epi32(self.m2_24, _mm_alignr_epi8(ws[1], ws[0], 4)),
                                ws[1],
                            )
                        } else {
                            schedule(ws[g % 4], ws[(g + 1) % 4], ws[(g + 2) % 4], ws[(g + 3) % 4])
                        };
                        ws[g % 4] = next;
                        rounds4(&mut abef[s], &mut cdgh[s], _mm_add_epi32(next, k4(g)));
                    }
                }
                let mut out = [0u32; LANES];
                for s in 0..LANES {
                    let ws = &w[s];
                    let next = schedule(ws[15 % 4], ws[0], ws[1], ws[2]);
                    // Rounds 60 and 61 only: the new ABEF's F lane is e after 61 rounds, which is h
                    // after 64.
                    let abef62 =
                        _mm_sha256rnds2_epu32(cdgh[s], abef[s], _mm_add_epi32(next, k4(15)));
                    out[s] = (_mm_cvtsi128_si32(abef62) as u32).wrapping_add(IV[7]);
                }
                out
            }
        }

        /// Searches `first .. first + count`; see [`crate::hash::Kernel::scan`].
        ///
        /// # Safety
        /// The CPU must support the target features this module is compiled for.
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn scan(job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
            // SAFETY: our caller guarantees (this function's contract) that the CPU has the
            // target features this module is compiled for, which is all `scan_streams` needs.
            unsafe { scan_streams::<{ super::STREAMS }>(job, first, count, hits) }
        }

        /// [`scan`] with `N` interleaved streams (for measuring the best `N`).
        ///
        /// # Safety
        /// As [`scan`]. (The body holds no unsafe operation: inside a function compiled for these
        /// features the intrinsics and the `#[target_feature]` helpers are safe to call.)
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn scan_streams<const N: usize>(
            job: &Job,
            first: u32,
            count: u32,
            hits: &mut Vec<u32>,
        ) {
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
    };
}

/// Legacy SSE encoding: any CPU with the SHA extensions.
pub(crate) mod sse {
    shani_kernel!("sha,sse2,ssse3,sse4.1");
}

/// VEX encoding, for CPUs with SHA and AVX2.
pub(crate) mod avx2 {
    shani_kernel!("sha,sse2,ssse3,sse4.1,avx,avx2");
}

/// AVX-512VL enabled (32 vector registers), for CPUs with SHA and AVX-512 F + VL.
pub(crate) mod avx512vl {
    shani_kernel!("sha,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512vl");
}
