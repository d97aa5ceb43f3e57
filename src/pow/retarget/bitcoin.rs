//! Bitcoin's retarget, as Core's `CalculateNextWorkRequired` (src/pow.cpp).

use crate::pow::CompactTarget;
use num_bigint::BigUint;

/// nBits after a window that began at `first_time` and ended at `last_time` (the window's first
/// and last blocks, so it spans window-1 intervals, as in Core), given the last block's nBits.
/// The measured timespan is clamped to a quarter and four times `target_timespan`; the target is
/// multiplied by it, then divided by `target_timespan`, then capped at `pow_limit`.
pub fn retarget(
    last_bits: CompactTarget,
    first_time: i64,
    last_time: i64,
    target_timespan: i64,
    pow_limit: &BigUint,
) -> CompactTarget {
    let target_timespan = target_timespan.max(1);
    let actual = (last_time - first_time).clamp(target_timespan / 4, target_timespan * 4);
    let old = last_bits.decode().value;
    let mut new = old * BigUint::from(actual.max(0) as u64) / BigUint::from(target_timespan as u64);
    if &new > pow_limit {
        new = pow_limit.clone();
    }
    CompactTarget::encode(&new, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Core's `pow_tests.cpp` vectors (mainnet: two-week timespan, pow limit 2^224 - 1).
    /// (last height, last time, last bits, first time, expected bits)
    const CORE: &[(u32, i64, u32, i64, u32)] = &[
        // get_next_work: an ordinary retarget, slightly harder.
        (32255, 1262152739, 0x1d00ffff, 1261130161, 0x1d00d86a),
        // get_next_work_pow_limit: already at the limit and slow, stays at the limit.
        (2015, 1233061996, 0x1d00ffff, 1231006505, 0x1d00ffff),
        // get_next_work_lower_limit_actual: fast window, clamped to a quarter of the timespan.
        (68543, 1279297671, 0x1c05a3f4, 1279008237, 0x1c0168fd),
        // get_next_work_upper_limit_actual: slow window, clamped to four times the timespan.
        (46367, 1269211443, 0x1c387f6f, 1263163443, 0x1d00e1fd),
    ];

    #[test]
    fn cores_retarget_vectors() {
        let limit = (BigUint::from(1u8) << 224) - 1u8;
        for &(height, last_time, bits, first_time, expected) in CORE {
            let got = retarget(
                CompactTarget::from_consensus(bits),
                first_time,
                last_time,
                14 * 24 * 60 * 60,
                &limit,
            );
            assert_eq!(got.to_consensus(), expected, "last height {height}");
        }
    }
}
