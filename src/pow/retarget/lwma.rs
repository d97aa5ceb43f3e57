//! LWMA-1 (zawy's linearly weighted moving average), as its reference C++
//! (`Lwma3CalculateNextWorkRequired`, Bitcoin Gold and descendants).

use crate::pow::CompactTarget;
use num_bigint::BigUint;

use super::BlockInfo;

/// nBits after `blocks`, the last `N + 1` blocks, oldest first (the first supplies only its
/// timestamp). Solve times are weighted 1..N, oldest lightest; a timestamp not after the previous
/// one counts as one second after it, and a solve time is capped at 6 spacings. The average target
/// is accumulated as `target / N / k` with `k = N(N+1)T/2`, in integers, as the reference does.
pub fn next_bits(blocks: &[BlockInfo], spacing: i64, pow_limit: &BigUint) -> CompactTarget {
    let n = blocks.len().saturating_sub(1).max(1) as i64;
    let t = spacing.max(1);
    let k = BigUint::from((n * (n + 1) * t / 2).max(1) as u64);
    let n_big = BigUint::from(n as u64);
    let mut previous = blocks[0].time;
    let mut weighted: i64 = 0;
    let mut average = BigUint::default();
    for (j, block) in blocks[1..].iter().enumerate() {
        let this = if block.time > previous {
            block.time
        } else {
            previous + 1
        };
        let solvetime = (6 * t).min(this - previous);
        previous = this;
        weighted += solvetime * (j as i64 + 1);
        average += block.bits.decode().value / &n_big / &k;
    }
    let mut next = average * BigUint::from(weighted.max(1) as u64);
    if &next > pow_limit {
        next = pow_limit.clone();
    }
    CompactTarget::encode(&next, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::Target;

    fn chain(times: &[i64], bits: u32) -> Vec<BlockInfo> {
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| BlockInfo {
                height: i as u64 + 1,
                time: t,
                bits: CompactTarget::from_consensus(bits),
            })
            .collect()
    }

    fn difficulty(bits: CompactTarget) -> f64 {
        Target::from_compact(bits).unwrap().difficulty().as_f64()
    }

    #[test]
    fn reacts_in_the_right_direction_and_caps_solvetimes() {
        let limit = (BigUint::from(1u8) << 255) - 1u8;
        let base = 0x1d00ffff;
        let on_time: Vec<i64> = (0..=10).map(|i| i * 600).collect();
        let fast: Vec<i64> = (0..=10).map(|i| i * 300).collect();
        let slow: Vec<i64> = (0..=10).map(|i| i * 1200).collect();
        let d0 = difficulty(CompactTarget::from_consensus(base));
        let d_on = difficulty(next_bits(&chain(&on_time, base), 600, &limit));
        let d_fast = difficulty(next_bits(&chain(&fast, base), 600, &limit));
        let d_slow = difficulty(next_bits(&chain(&slow, base), 600, &limit));
        assert!((d_on / d0 - 1.0).abs() < 1e-4, "{d_on} vs {d0}");
        assert!((d_fast / d0 - 2.0).abs() < 1e-3, "{d_fast}");
        assert!((d_slow / d0 - 0.5).abs() < 1e-3, "{d_slow}");
        // One 10-hour gap counts as 6 spacings; out-of-order times count as 1 s.
        let mut gap = on_time.clone();
        for t in gap.iter_mut().skip(10) {
            *t += 36_000;
        }
        let mut back = on_time.clone();
        back[10] = back[9] - 5000;
        let d_gap = difficulty(next_bits(&chain(&gap, base), 600, &limit));
        let d_back = difficulty(next_bits(&chain(&back, base), 600, &limit));
        // Weighted sum: 55*600 on time; the last (weight 10) becomes 3600 or 1.
        let expect_gap = 55.0 * 600.0 / (45.0 * 600.0 + 10.0 * 3600.0);
        let expect_back = 55.0 * 600.0 / (45.0 * 600.0 + 10.0 * 1.0);
        assert!((d_gap / d0 / expect_gap - 1.0).abs() < 1e-3, "{d_gap}");
        assert!((d_back / d0 / expect_back - 1.0).abs() < 1e-3, "{d_back}");
    }
}
