//! The lane-parallel kernel body shared by the SIMD kernels (AVX-512: 16 lanes, AVX2: 8, aarch64
//! NEON: 4): one nonce per 32-bit lane, every instruction working on all lanes.
//!
//! A kernel module defines `V` (the vector type), `LANES`, and these primitives, each an
//! `#[inline]` `#[target_feature]` function: `splat`, `add`, `bsig0`, `bsig1`, `ssig0`, `ssig1`
//! (the SHA-256 Σ/σ functions), `ch`, `maj`, `bswap` (per 32-bit lane), `lane_nonces(base)`
//! (`base + lane index`) and `le_mask(x, y)` (bit i set when lane i of x <= lane i of y,
//! unsigned). Then it invokes [`lanes_kernel!`] with its target features, which writes the
//! per-job precomputation and `scan`.
//!
//! What is folded per job: the midstate, rounds 0..2 of the first hash's second block, schedule
//! words W16 and W17, and every constant term of the schedule words that the zero padding makes
//! partly constant (W18..W33 of the first hash, W16..W31 of the second); rounds whose message word
//! is constant use a precomputed `K + W`. The second hash stops after round 61, where `e` is
//! already the final `H7 - IV7`, and only lanes whose top word passes are checked in full.

macro_rules! lanes_kernel {
    ($features:literal) => {
        use crate::hash::soft::{small_sigma0 as s0, small_sigma1 as s1, Precomputed};
        use crate::hash::{Job, IV, K};

        #[inline]
        #[target_feature(enable = $features)]
        fn splat8(x: &[u32; 8]) -> [V; 8] {
            let mut v = [splat(0); 8];
            for i in 0..8 {
                v[i] = splat(x[i]);
            }
            v
        }

        /// One round on all lanes with `kw = K[t] + W[t]`.
        #[inline]
        #[target_feature(enable = $features)]
        fn round(s: &mut [V; 8], kw: V) {
            let [a, b, c, d, e, f, g, h] = *s;
            let t1 = add(add(h, bsig1(e)), add(ch(e, f, g), kw));
            let t2 = add(bsig0(a), maj(a, b, c));
            *s = [add(t1, t2), a, b, c, add(d, t1), e, f, g];
        }

        /// `σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]`.
        #[inline]
        #[target_feature(enable = $features)]
        fn expand(w: &[V; 64], t: usize) -> V {
            add(
                add(ssig1(w[t - 2]), w[t - 7]),
                add(ssig0(w[t - 15]), w[t - 16]),
            )
        }

        /// Per-job values, splat across lanes.
        struct Lanes {
            mid: [V; 8],
            state3: [V; 8],
            /// `K[t] + W[t]` for the first hash's rounds 4..=17 (constant message words).
            kw1: [V; 18],
            /// Constant parts of the first hash's W18..W33.
            c18: V,
            c19: V,
            c20: V,
            c22: V,
            c23: V,
            c24: V,
            c30: V,
            c31: V,
            c32: V,
            c33: V,
            k: [V; 64],
            /// `K[t] + W[t]` for the second hash's rounds 8..=15 (padding).
            kw2: [V; 16],
            /// Constant parts of the second hash's W17, W22, W23, W24, W30, W31.
            d17: V,
            d22: V,
            d23: V,
            d24: V,
            d30: V,
            d31: V,
            top: V,
        }

        impl Lanes {
            #[inline]
            #[target_feature(enable = $features)]
            fn new(job: &Job) -> Lanes {
                let pre = Precomputed::new(job);
                let w = &pre.w;
                let mut kw1 = [splat(0); 18];
                for t in 4..18 {
                    kw1[t] = splat(K[t].wrapping_add(w[t]));
                }
                let mut kw2 = [splat(0); 16];
                let pad2 = |t: usize| match t {
                    8 => 0x8000_0000u32,
                    15 => 256,
                    _ => 0,
                };
                for t in 8..16 {
                    kw2[t] = splat(K[t].wrapping_add(pad2(t)));
                }
                let mut k = [splat(0); 64];
                for t in 0..64 {
                    k[t] = splat(K[t]);
                }
                Lanes {
                    mid: splat8(&job.midstate),
                    state3: splat8(&pre.state3),
                    kw1,
                    c18: splat(pre.folds[0]),
                    c19: splat(pre.folds[1]),
                    c20: splat(w[4]),
                    c22: splat(w[15]),
                    c23: splat(w[16]),
                    c24: splat(w[17]),
                    c30: splat(s0(w[15])),
                    c31: splat(pre.folds[2]),
                    c32: splat(pre.folds[3]),
                    c33: splat(w[17]),
                    k,
                    kw2,
                    d17: splat(s1(256)),
                    d22: splat(256),
                    d23: splat(s0(0x8000_0000)),
                    d24: splat(0x8000_0000),
                    d30: splat(s0(256)),
                    d31: splat(256),
                    top: splat(job.target[7]),
                }
            }

            /// Schedule word `t` (18..64) of the first hash's second block from the earlier
            /// ones, `w[3]` being the nonce word: only the nonce's terms are computed here, the
            /// rest come per job. With `t` a constant (the caller is unrolled) the match folds.
            #[inline]
            #[target_feature(enable = $features)]
            fn first_word(&self, w: &[V; 64], t: usize) -> V {
                match t {
                    18 => add(ssig0(w[3]), self.c18),
                    19 => add(w[3], self.c19),
                    20 => add(ssig1(w[18]), self.c20),
                    21 => ssig1(w[19]),
                    22 => add(ssig1(w[20]), self.c22),
                    23 => add(ssig1(w[21]), self.c23),
                    24 => add(ssig1(w[22]), self.c24),
                    25..=29 => add(ssig1(w[t - 2]), w[t - 7]),
                    30 => add(add(ssig1(w[28]), w[23]), self.c30),
                    31 => add(add(ssig1(w[29]), w[24]), self.c31),
                    32 => add(add(ssig1(w[30]), w[25]), self.c32),
                    33 => add(add(ssig1(w[31]), w[26]), add(ssig0(w[18]), self.c33)),
                    _ => expand(w, t),
                }
            }

            /// Schedule word `t` (16..61) of the second hash from the earlier ones (`u[0..8]`
            /// the first hash, the padding words folded into constants).
            #[inline]
            #[target_feature(enable = $features)]
            fn second_word(&self, u: &[V; 64], t: usize) -> V {
                match t {
                    16 => add(ssig0(u[1]), u[0]),
                    17 => add(add(ssig0(u[2]), u[1]), self.d17),
                    18..=21 => add(add(ssig1(u[t - 2]), ssig0(u[t - 15])), u[t - 16]),
                    22 => add(add(ssig1(u[20]), ssig0(u[7])), add(u[6], self.d22)),
                    23 => add(add(ssig1(u[21]), u[16]), add(u[7], self.d23)),
                    24 => add(add(ssig1(u[22]), u[17]), self.d24),
                    25..=29 => add(ssig1(u[t - 2]), u[t - 7]),
                    30 => add(add(ssig1(u[28]), u[23]), self.d30),
                    31 => add(add(ssig1(u[29]), u[24]), add(ssig0(u[16]), self.d31)),
                    _ => expand(u, t),
                }
            }

            /// `H7` of the double hash in every lane, for the nonce words `nw` (byte-swapped
            /// nonces). Fully unrolled (`unroll!`, in `hash/mod.rs`): each schedule word is
            /// computed just before its round, and with constant indices the arrays live in
            /// registers (rolled, the loops kept them in memory and cleared them every batch).
            #[inline]
            #[target_feature(enable = $features)]
            fn h7(&self, nw: V) -> V {
                let z = splat(0);
                // First hash, second block.
                let mut w = [z; 64];
                w[3] = nw;
                let mut s = self.state3;
                round(&mut s, add(nw, self.k[3]));
                unroll!(t in [4 5 6 7 8 9 10 11 12 13 14 15 16 17] {
                    round(&mut s, self.kw1[t]);
                });
                unroll!(t in [
                    18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40
                    41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
                ] {
                    w[t] = self.first_word(&w, t);
                    round(&mut s, add(w[t], self.k[t]));
                });
                // Second hash: the first hash's words, then padding.
                let mut u = [z; 64];
                for i in 0..8 {
                    u[i] = add(s[i], self.mid[i]);
                }
                let mut s = splat8(&IV);
                unroll!(t in [0 1 2 3 4 5 6 7] {
                    round(&mut s, add(u[t], self.k[t]));
                });
                unroll!(t in [8 9 10 11 12 13 14 15] {
                    round(&mut s, self.kw2[t]);
                });
                unroll!(t in [
                    16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38
                    39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
                ] {
                    u[t] = self.second_word(&u, t);
                    round(&mut s, add(u[t], self.k[t]));
                });
                // After 61 rounds e is what h will be after 64.
                add(s[4], splat(IV[7]))
            }
        }

        /// Searches `first .. first + count`; see [`crate::hash::Kernel::scan`].
        ///
        /// # Safety
        /// The CPU must support the target features this module is compiled for. (The body itself
        /// holds no unsafe operation: inside a function compiled for those features the intrinsics
        /// and the `#[target_feature]` helpers above are safe to call.)
        // Never inlined (one call per batch of nonces): where the features are baseline (NEON
        // on aarch64) it would otherwise melt into `Kernel::scan`, and scripts/op-count.sh reads
        // each kernel's hot loop from its own symbol.
        #[inline(never)]
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn scan(job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
            let lanes = Lanes::new(job);
            let mut done = 0u64;
            while done < u64::from(count) {
                let base = first.wrapping_add(done as u32);
                let valid = (u64::from(count) - done).min(LANES as u64) as u32;
                let nw = bswap(lane_nonces(base));
                let h7 = lanes.h7(nw);
                let mut mask = le_mask(bswap(h7), lanes.top);
                if valid < LANES as u32 {
                    mask &= (1u32 << valid) - 1;
                }
                while mask != 0 {
                    let lane = mask.trailing_zeros();
                    mask &= mask - 1;
                    let nonce = base.wrapping_add(lane);
                    if job.meets(nonce) {
                        hits.push(nonce);
                    }
                }
                done += LANES as u64;
            }
        }
    };
}

pub(crate) use lanes_kernel;
