//! The portable kernel: plain Rust, any CPU. Uses the midstate, computes the three nonce-free
//! rounds of the second block and the two nonce-free schedule words once per job, stops the
//! second hash after the round that fixes H7 (early reject), and confirms candidates in full.

use super::{is_candidate, Job, IV, K};

#[inline(always)]
fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}
#[inline(always)]
fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}
#[inline(always)]
pub(crate) fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}
#[inline(always)]
pub(crate) fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// One SHA-256 round on the working state `s = [a, b, c, d, e, f, g, h]` with `kw = K[t] + W[t]`.
#[inline(always)]
fn round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h
        .wrapping_add(big_sigma1(e))
        .wrapping_add((e & f) ^ (!e & g))
        .wrapping_add(kw);
    let t2 = big_sigma0(a).wrapping_add((a & b) ^ (a & c) ^ (b & c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// Expands the message schedule from word 16 on.
#[inline(always)]
fn expand(w: &mut [u32; 64], from: usize) {
    for t in from..64 {
        w[t] = small_sigma1(w[t - 2])
            .wrapping_add(w[t - 7])
            .wrapping_add(small_sigma0(w[t - 15]))
            .wrapping_add(w[t - 16]);
    }
}

/// The SHA-256 compression function on one 16-word block.
pub(crate) fn compress(state: &mut [u32; 8], block: &[u32; 16]) {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    expand(&mut w, 16);
    let mut s = *state;
    for t in 0..64 {
        round(&mut s, K[t].wrapping_add(w[t]));
    }
    for (x, y) in state.iter_mut().zip(s) {
        *x = x.wrapping_add(y);
    }
}

/// The full double hash of `job` at `nonce`, as the eight output state words H0..H7.
pub(crate) fn double_hash(job: &Job, nonce: u32) -> [u32; 8] {
    let mut block = [0u32; 16];
    block[..3].copy_from_slice(&job.tail);
    block[3] = Job::nonce_word(nonce);
    block[4] = 0x8000_0000;
    block[15] = 640;
    let mut first = job.midstate;
    compress(&mut first, &block);
    let mut second_block = [0u32; 16];
    second_block[..8].copy_from_slice(&first);
    second_block[8] = 0x8000_0000;
    second_block[15] = 256;
    let mut second = IV;
    compress(&mut second, &second_block);
    second
}

/// Per-job precomputation, shared with the lane kernels and the GPU backend's host side.
pub(crate) struct Precomputed {
    /// Working state after rounds 0..3 of the second block (they use only W0..W2).
    pub(crate) state3: [u32; 8],
    /// The state after round 3 too, run with a zero nonce word: the real state after round 3
    /// is this with the nonce word added to `a` (word 0) and `e` (word 4).
    pub(crate) state4_zero_nonce: [u32; 8],
    /// The second block's schedule with every nonce-free word filled in (W3 is the nonce):
    /// W0..W2, the padding W4..W15, and W16, W17.
    pub(crate) w: [u32; 64],
    /// The nonce-free parts of W18, W19, W31 and W32 (the other words' nonce-free terms are
    /// single words or constants):
    /// W18 = s0(W3) + [s1(W16) + W2], W19 = W3 + [s1(W17) + s0(W4)],
    /// W31 = s1(W29) + W24 + [s0(W16) + W15], W32 = s1(W30) + W25 + [s0(W17) + W16].
    pub(crate) folds: [u32; 4],
}

impl Precomputed {
    pub(crate) fn new(job: &Job) -> Precomputed {
        let mut w = [0u32; 64];
        w[..3].copy_from_slice(&job.tail);
        w[4] = 0x8000_0000;
        w[15] = 640;
        // W16 and W17 depend on W0, W1, W2, W9..W15 only.
        for t in 16..18 {
            w[t] = small_sigma1(w[t - 2])
                .wrapping_add(w[t - 7])
                .wrapping_add(small_sigma0(w[t - 15]))
                .wrapping_add(w[t - 16]);
        }
        let mut s = job.midstate;
        for t in 0..3 {
            round(&mut s, K[t].wrapping_add(w[t]));
        }
        let mut s4 = s;
        round(&mut s4, K[3]);
        let folds = [
            small_sigma1(w[16]).wrapping_add(w[2]),
            small_sigma1(w[17]).wrapping_add(small_sigma0(w[4])),
            small_sigma0(w[16]).wrapping_add(w[15]),
            small_sigma0(w[17]).wrapping_add(w[16]),
        ];
        Precomputed {
            state3: s,
            state4_zero_nonce: s4,
            w,
            folds,
        }
    }

    /// H7 of the double hash at `nonce`, computed only as far as needed (round 61 of 64).
    #[inline(always)]
    fn h7(&self, midstate: &[u32; 8], nonce: u32) -> u32 {
        let mut w = self.w;
        w[3] = Job::nonce_word(nonce);
        expand(&mut w, 18);
        let mut s = self.state3;
        for t in 3..64 {
            round(&mut s, K[t].wrapping_add(w[t]));
        }
        let mut w2 = [0u32; 64];
        for i in 0..8 {
            w2[i] = midstate[i].wrapping_add(s[i]);
        }
        w2[8] = 0x8000_0000;
        w2[15] = 256;
        expand(&mut w2, 16);
        let mut s2 = IV;
        for t in 0..61 {
            round(&mut s2, K[t].wrapping_add(w2[t]));
        }
        // After 61 rounds, e is what h will be after 64.
        IV[7].wrapping_add(s2[4])
    }
}

/// Searches `first .. first + count`; see [`super::Kernel::scan`].
pub(crate) fn scan(job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
    let pre = Precomputed::new(job);
    let top = job.target[7];
    for offset in 0..count {
        let nonce = first.wrapping_add(offset);
        if is_candidate(pre.h7(&job.midstate, nonce), top) && job.meets(nonce) {
            hits.push(nonce);
        }
    }
}
