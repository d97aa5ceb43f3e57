//! aserti3-2d, bit for bit as Bitcoin Cash Node's `CalculateASERT` (src/pow.cpp).

use num_bigint::BigUint;
use num_traits::{One, Zero};

/// The next target: `reference * 2^((time_diff - spacing * (height_diff + 1)) / half_life)`,
/// with the exponent in 16.16 fixed point, the fractional power from the integer cubic
/// approximation, truncating division, an arithmetic shift for the integer part, and the
/// result clamped to `[1, pow_limit]`.
///
/// `time_diff` is the parent block's time minus the anchor block's parent's time;
/// `height_diff` the parent block's height minus the anchor's. Unlike the C++ (which asserts
/// `pow_limit < 2^224` to leave room in 256-bit integers) this uses arbitrary precision, so any
/// limit works and the results agree wherever the C++ is defined.
pub fn next_target(
    reference: &BigUint,
    spacing: i64,
    time_diff: i64,
    height_diff: i64,
    pow_limit: &BigUint,
    half_life: i64,
) -> BigUint {
    let exponent: i128 =
        ((i128::from(time_diff) - i128::from(spacing) * (i128::from(height_diff) + 1)) * 65536)
            / i128::from(half_life);
    let mut shifts = exponent >> 16;
    let frac = (exponent & 0xffff) as u128;
    let factor = 65536
        + ((195_766_423_245_049u128 * frac
            + 971_821_376u128 * frac * frac
            + 5127u128 * frac * frac * frac
            + (1u128 << 47))
            >> 48);
    let mut next = reference * BigUint::from(factor);
    shifts -= 16;
    if shifts <= 0 {
        let right = (-shifts).min(1 << 20) as usize;
        next >>= right;
    } else if shifts > 256 || next.bits() + shifts as u64 > 256 {
        // Would not fit 256 bits: the C++ detects the lost bits and takes the limit.
        next = pow_limit.clone();
    } else {
        next <<= shifts as usize;
    }
    if next.is_zero() {
        next = BigUint::one();
    } else if &next > pow_limit {
        next = pow_limit.clone();
    }
    next
}
