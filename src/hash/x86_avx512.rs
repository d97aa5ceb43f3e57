//! AVX-512 kernel: 16 nonces in the 16 lanes of a zmm register; `vprord` for rotations and
//! `vpternlogd` for Ch, Maj and three-way XOR. The body is [`super::lanes`]'s.

use core::arch::x86_64::*;

type V = __m512i;
const LANES: usize = 16;

#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn splat(x: u32) -> V {
    _mm512_set1_epi32(x as i32)
}
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn add(a: V, b: V) -> V {
    _mm512_add_epi32(a, b)
}
/// `a ^ b ^ c` in one `vpternlogd`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn xor3(a: V, b: V, c: V) -> V {
    _mm512_ternarylogic_epi32::<0x96>(a, b, c)
}
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn bsig0(x: V) -> V {
    xor3(
        _mm512_ror_epi32::<2>(x),
        _mm512_ror_epi32::<13>(x),
        _mm512_ror_epi32::<22>(x),
    )
}
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn bsig1(x: V) -> V {
    xor3(
        _mm512_ror_epi32::<6>(x),
        _mm512_ror_epi32::<11>(x),
        _mm512_ror_epi32::<25>(x),
    )
}
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn ssig0(x: V) -> V {
    xor3(
        _mm512_ror_epi32::<7>(x),
        _mm512_ror_epi32::<18>(x),
        _mm512_srli_epi32::<3>(x),
    )
}
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn ssig1(x: V) -> V {
    xor3(
        _mm512_ror_epi32::<17>(x),
        _mm512_ror_epi32::<19>(x),
        _mm512_srli_epi32::<10>(x),
    )
}
/// `(e & f) ^ (!e & g)`: truth table 0xCA.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn ch(e: V, f: V, g: V) -> V {
    _mm512_ternarylogic_epi32::<0xCA>(e, f, g)
}
/// Majority: truth table 0xE8.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn maj(a: V, b: V, c: V) -> V {
    _mm512_ternarylogic_epi32::<0xE8>(a, b, c)
}
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn bswap(x: V) -> V {
    let m = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
    _mm512_shuffle_epi8(x, m)
}
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn lane_nonces(base: u32) -> V {
    let offsets = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    _mm512_add_epi32(splat(base), offsets)
}
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn le_mask(x: V, y: V) -> u32 {
    u32::from(_mm512_cmple_epu32_mask(x, y))
}

super::lanes::lanes_kernel!("avx512f,avx512bw");
