//! AVX2 kernel: 8 nonces in the 8 lanes of a ymm register. AVX2 has no rotate or ternary-logic
//! instruction, so each rotation is two shifts and an OR. The body is [`super::lanes`]'s.

use core::arch::x86_64::*;

type V = __m256i;
const LANES: usize = 8;

#[inline]
#[target_feature(enable = "avx2")]
fn splat(x: u32) -> V {
    _mm256_set1_epi32(x as i32)
}
#[inline]
#[target_feature(enable = "avx2")]
fn add(a: V, b: V) -> V {
    _mm256_add_epi32(a, b)
}
#[inline]
#[target_feature(enable = "avx2")]
fn xor3(a: V, b: V, c: V) -> V {
    _mm256_xor_si256(_mm256_xor_si256(a, b), c)
}
macro_rules! ror {
    ($x:expr, $n:literal) => {
        _mm256_or_si256(
            _mm256_srli_epi32::<$n>($x),
            _mm256_slli_epi32::<{ 32 - $n }>($x),
        )
    };
}
#[inline]
#[target_feature(enable = "avx2")]
fn bsig0(x: V) -> V {
    xor3(ror!(x, 2), ror!(x, 13), ror!(x, 22))
}
#[inline]
#[target_feature(enable = "avx2")]
fn bsig1(x: V) -> V {
    xor3(ror!(x, 6), ror!(x, 11), ror!(x, 25))
}
#[inline]
#[target_feature(enable = "avx2")]
fn ssig0(x: V) -> V {
    xor3(ror!(x, 7), ror!(x, 18), _mm256_srli_epi32::<3>(x))
}
#[inline]
#[target_feature(enable = "avx2")]
fn ssig1(x: V) -> V {
    xor3(ror!(x, 17), ror!(x, 19), _mm256_srli_epi32::<10>(x))
}
/// `g ^ (e & (f ^ g))`.
#[inline]
#[target_feature(enable = "avx2")]
fn ch(e: V, f: V, g: V) -> V {
    _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)))
}
/// `(a & b) | (c & (a | b))`.
#[inline]
#[target_feature(enable = "avx2")]
fn maj(a: V, b: V, c: V) -> V {
    _mm256_or_si256(
        _mm256_and_si256(a, b),
        _mm256_and_si256(c, _mm256_or_si256(a, b)),
    )
}
#[inline]
#[target_feature(enable = "avx2")]
fn bswap(x: V) -> V {
    let m = _mm256_set_epi8(
        12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4, 5,
        6, 7, 0, 1, 2, 3,
    );
    _mm256_shuffle_epi8(x, m)
}
#[inline]
#[target_feature(enable = "avx2")]
fn lane_nonces(base: u32) -> V {
    _mm256_add_epi32(splat(base), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0))
}
/// Unsigned `x <= y` per lane: `min(x, y) == x`.
#[inline]
#[target_feature(enable = "avx2")]
fn le_mask(x: V, y: V) -> u32 {
    let le = _mm256_cmpeq_epi32(_mm256_min_epu32(x, y), x);
    _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32
}

super::lanes::lanes_kernel!("avx2");
