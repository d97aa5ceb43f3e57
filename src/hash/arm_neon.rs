//! aarch64 NEON kernel: 4 nonces in the 4 lanes of a 128-bit vector (`uint32x4_t`), for ARM CPUs
//! without the SHA-256 instructions (Cortex-A53/A55/A72 built without the Cryptographic
//! Extension, e.g. the Raspberry Pi 3 and 4). NEON has no vector rotate, so a rotation is a shift
//! right and a shift-left-and-insert (`ushr` + `sli`); Ch is one bit select (`bsl`) and Maj
//! three logic operations, one of them shared with the next round. The body is
//! [`super::lanes`]'s, shared with the x86 lane kernels.
//!
//! NEON (Advanced SIMD) is part of the aarch64 baseline, so [`crate::hash::Kernel::scan`]'s
//! run-time check always passes on aarch64 Linux; the kernel is still an `unsafe fn` behind it,
//! as the x86 ones are.

use core::arch::aarch64::*;

type V = uint32x4_t;
const LANES: usize = 4;

#[inline]
#[target_feature(enable = "neon")]
fn splat(x: u32) -> V {
    vdupq_n_u32(x)
}
#[inline]
#[target_feature(enable = "neon")]
fn add(a: V, b: V) -> V {
    vaddq_u32(a, b)
}
#[inline]
#[target_feature(enable = "neon")]
fn xor3(a: V, b: V, c: V) -> V {
    veorq_u32(veorq_u32(a, b), c)
}
/// Rotate right by `$n`: `x >> n`, then `x << (32 - n)` inserted above it (`ushr` + `sli`).
macro_rules! ror {
    ($x:expr, $n:literal) => {
        vsliq_n_u32::<{ 32 - $n }>(vshrq_n_u32::<$n>($x), $x)
    };
}
#[inline]
#[target_feature(enable = "neon")]
fn bsig0(x: V) -> V {
    xor3(ror!(x, 2), ror!(x, 13), ror!(x, 22))
}
#[inline]
#[target_feature(enable = "neon")]
fn bsig1(x: V) -> V {
    xor3(ror!(x, 6), ror!(x, 11), ror!(x, 25))
}
#[inline]
#[target_feature(enable = "neon")]
fn ssig0(x: V) -> V {
    xor3(ror!(x, 7), ror!(x, 18), vshrq_n_u32::<3>(x))
}
#[inline]
#[target_feature(enable = "neon")]
fn ssig1(x: V) -> V {
    xor3(ror!(x, 17), ror!(x, 19), vshrq_n_u32::<10>(x))
}
/// `(e & f) | (!e & g)`: one bit select.
#[inline]
#[target_feature(enable = "neon")]
fn ch(e: V, f: V, g: V) -> V {
    vbslq_u32(e, f, g)
}
/// Majority as `b ^ ((a ^ b) & (b ^ c))`: the next round's `b ^ c` is this round's `a ^ b`, which
/// the compiler reuses, so a round pays three operations. (A bit select on `a ^ b` would be two,
/// but LLVM rewrites it into four: `((a ^ b) & c) | (a & b)`.)
#[inline]
#[target_feature(enable = "neon")]
fn maj(a: V, b: V, c: V) -> V {
    veorq_u32(b, vandq_u32(veorq_u32(a, b), veorq_u32(b, c)))
}
#[inline]
#[target_feature(enable = "neon")]
fn bswap(x: V) -> V {
    vreinterpretq_u32_u8(vrev32q_u8(vreinterpretq_u8_u32(x)))
}
/// `[base, base + 1, base + 2, base + 3]`, lane 0 first.
#[inline]
#[target_feature(enable = "neon")]
fn lane_nonces(base: u32) -> V {
    let offsets = vcombine_u32(vcreate_u32(1 << 32), vcreate_u32(3 << 32 | 2));
    vaddq_u32(splat(base), offsets)
}
/// Unsigned `x <= y` per lane, as bit `i` for lane `i`.
#[inline]
#[target_feature(enable = "neon")]
fn le_mask(x: V, y: V) -> u32 {
    let bits = vcombine_u32(vcreate_u32(2 << 32 | 1), vcreate_u32(8 << 32 | 4));
    vaddvq_u32(vandq_u32(vcleq_u32(x, y), bits))
}

super::lanes::lanes_kernel!("neon");
