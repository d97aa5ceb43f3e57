//! The published results the experiments are checked against. p = 1 − q throughout; sums run
//! in log space so z in the hundreds and q near 1/2 neither overflow nor cancel.
//!
//! - Nakamoto (2008), §11: the attacker's progress while the merchant waits for z blocks taken as
//!   Poisson with mean z·q/p, then the gambler's ruin (q/p)^deficit to catch up.
//! - The exact figure (Rosenfeld 2014, "Analysis of hashrate-based double spending"; Grunspan &
//!   Pérez-Marco 2017, "Double spend races"): the attacker's blocks when the merchant has z are
//!   negative-binomial, P(m) = C(m+z−1, m) p^z q^m; with Rosenfeld's pre-mined block, success
//!   from m is min(1, (q/p)^(z−m)). It equals 1 − Σ_{m≤z} C(m+z−1, m)(p^z q^m − p^m q^z) =
//!   I_{4pq}(z, 1/2), and is above Nakamoto's figure.
//! - Eyal & Sirer (2014), "Majority is not enough": the selfish pool's relative revenue and its
//!   profitability threshold.

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// ln n!, exact sums below 256, Stirling's series above.
fn ln_factorial(n: u64) -> f64 {
    if n < 256 {
        (2..=n).map(|i| (i as f64).ln()).sum()
    } else {
        let x = n as f64 + 1.0;
        (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
            - 1.0 / (360.0 * x.powi(3))
    }
}

/// Σ_{m ≥ from} C(m+z−1, m) p^a q^m · (q/p)^0 with exponents chosen by `term`: sums positive
/// terms of a negative-binomial tail until they no longer count.
fn tail(q: f64, z: u32, from: u64, ln_term: impl Fn(u64) -> f64) -> f64 {
    let _ = (q, z);
    let mut sum = 0.0;
    let mut m = from;
    let mut small = 0;
    // Terms rise then fall geometrically (ratio → q); stop once they are negligible for a while.
    while m < from + 10_000_000 {
        let t = ln_term(m).exp();
        sum += t;
        if t < sum * 1e-17 || t == 0.0 && m > from + 64 {
            small += 1;
            if small > 64 {
                break;
            }
        } else {
            small = 0;
        }
        m += 1;
    }
    sum
}

/// Nakamoto's §11 figure: 1 − Σ_{k=0}^{z} e^{−λ} λ^k/k! (1 − (q/p)^{z−k}), λ = z·q/p; 1 for
/// q ≥ 0.5. Computed as in his C listing, with the Poisson terms in log space.
pub fn nakamoto(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q >= p {
        return 1.0;
    }
    if q <= 0.0 {
        return if z == 0 { 1.0 } else { 0.0 };
    }
    let lambda = f64::from(z) * q / p;
    let mut sum = 1.0;
    for k in 0..=z {
        let ln_poisson = -lambda + f64::from(k) * lambda.ln() - ln_factorial(u64::from(k));
        let poisson = if lambda == 0.0 {
            if k == 0 {
                1.0
            } else {
                0.0
            }
        } else {
            ln_poisson.exp()
        };
        sum -= poisson * (1.0 - (q / p).powi((z - k) as i32));
    }
    sum.clamp(0.0, 1.0)
}

/// The exact double-spend probability (Rosenfeld 2014; Grunspan & Pérez-Marco 2017), with
/// Rosenfeld's pre-mined block: Σ_{m<z} C(m+z−1, m) p^m q^z + Σ_{m≥z} C(m+z−1, m) p^z q^m (the
/// first sum is P(m)·(q/p)^(z−m), the second P(m ≥ z)); equal to
/// 1 − Σ_{m=0}^{z} C(m+z−1, m)(p^z q^m − p^m q^z), without its cancellation. 1 for q ≥ 0.5.
pub fn exact(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q >= p {
        return 1.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    if z == 0 {
        return 1.0;
    }
    let (lp, lq, zz) = (p.ln(), q.ln(), u64::from(z));
    let catch_up: f64 = (0..zz)
        .map(|m| (ln_choose(m + zz - 1, m) + m as f64 * lp + zz as f64 * lq).exp())
        .sum();
    let ahead = tail(q, z, zz, |m| {
        ln_choose(m + zz - 1, m) + zz as f64 * lp + m as f64 * lq
    });
    (catch_up + ahead).clamp(0.0, 1.0)
}

/// Finality: the probability that a block k deep is ever reorganised away by an attacker of
/// share q who began a private branch at its parent when it was found, with no pre-mined block,
/// and must become strictly longer: Σ_m C(m+k−1, m) p^k q^m · min(1, (q/p)^(k−m+1)), i.e.
/// Σ_{m≤k} C(m+k−1, m) p^(m−1) q^(k+1) + Σ_{m>k} C(m+k−1, m) p^k q^m. 1 for q ≥ 0.5.
pub fn finality(q: f64, k: u32) -> f64 {
    let p = 1.0 - q;
    if q >= p {
        return 1.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    let (lp, lq, kk) = (p.ln(), q.ln(), u64::from(k));
    if k == 0 {
        return q / p;
    }
    let catch_up: f64 = (0..=kk)
        .map(|m| (ln_choose(m + kk - 1, m) + (m as f64 - 1.0) * lp + (kk + 1) as f64 * lq).exp())
        .sum();
    let ahead = tail(q, k, kk + 1, |m| {
        ln_choose(m + kk - 1, m) + kk as f64 * lp + m as f64 * lq
    });
    (catch_up + ahead).clamp(0.0, 1.0)
}

/// Eyal & Sirer's relative revenue of a selfish pool of share α, γ the share of honest miners
/// that mine on the pool's block in a tie: (α(1−α)²(4α + γ(1−2α)) − α³) / (1 − α(1 + (2−α)α)).
pub fn selfish_revenue(alpha: f64, gamma: f64) -> f64 {
    let a = alpha;
    (a * (1.0 - a).powi(2) * (4.0 * a + gamma * (1.0 - 2.0 * a)) - a.powi(3))
        / (1.0 - a * (1.0 + (2.0 - a) * a))
}

/// Eyal & Sirer's profitability threshold (1−γ)/(3−2γ): above it selfish mining pays.
pub fn selfish_threshold(gamma: f64) -> f64 {
    (1.0 - gamma) / (3.0 - 2.0 * gamma)
}

/// First-order stale rate: the chance that another block is found while one propagates for
/// `delay_s`, blocks coming every `block_time_s` on average: 1 − e^(−d/T).
pub fn stale_rate(delay_s: f64, block_time_s: f64) -> f64 {
    1.0 - (-delay_s / block_time_s).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn nakamoto_reproduces_his_published_table() {
        let q1 = [
            (0, 1.0000000),
            (1, 0.2045873),
            (2, 0.0509779),
            (3, 0.0131722),
            (4, 0.0034552),
            (5, 0.0009137),
            (6, 0.0002428),
            (7, 0.0000647),
            (8, 0.0000173),
            (9, 0.0000046),
            (10, 0.0000012),
        ];
        for (z, want) in q1 {
            let got = nakamoto(0.1, z);
            assert!((got - want).abs() < 5e-8, "q 0.1 z {z}: {got} vs {want}");
        }
        let q3 = [
            (0, 1.0000000),
            (5, 0.1773523),
            (10, 0.0416605),
            (15, 0.0101008),
            (20, 0.0024804),
            (25, 0.0006132),
            (30, 0.0001522),
            (35, 0.0000379),
            (40, 0.0000095),
            (45, 0.0000024),
            (50, 0.0000006),
        ];
        for (z, want) in q3 {
            let got = nakamoto(0.3, z);
            assert!((got - want).abs() < 5e-8, "q 0.3 z {z}: {got} vs {want}");
        }
        assert_eq!(nakamoto(0.5, 6), 1.0);
    }

    #[test]
    fn exact_is_2q_at_one_block_matches_rosenfelds_closed_form_and_exceeds_nakamoto() {
        for q in [0.05, 0.1, 0.3, 0.45] {
            assert!(close(exact(q, 1), 2.0 * q, 1e-12), "q {q}");
            for z in 1..=12u32 {
                // Rosenfeld's closed form, summed directly (fine at these sizes).
                let p = 1.0 - q;
                let mut s = 1.0;
                for m in 0..=z {
                    let c = (ln_choose(u64::from(m + z) - 1, u64::from(m))).exp();
                    s -= c
                        * (p.powi(z as i32) * q.powi(m as i32)
                            - p.powi(m as i32) * q.powi(z as i32));
                }
                // The closed form cancels: agree to 1e-12 absolute (its own error).
                assert!(
                    (exact(q, z) - s).abs() < 1e-12,
                    "q {q} z {z}: {} vs {s}",
                    exact(q, z)
                );
            }
        }
        // Nakamoto's Poisson figure is the higher one at z = 1 (0.2046 vs 0.2) and too low
        // from z = 2 on, by a factor that grows with z.
        assert!(nakamoto(0.1, 1) > exact(0.1, 1));
        for z in 2..=10 {
            assert!(exact(0.1, z) > nakamoto(0.1, z), "z {z}");
        }
        assert!(exact(0.1, 10) / nakamoto(0.1, 10) > exact(0.1, 5) / nakamoto(0.1, 5));
        assert_eq!(exact(0.5, 3), 1.0);
        assert_eq!(exact(0.7, 3), 1.0);
        // Deep and close to a half: finite, in (0, 1), falling with z.
        let (a, b) = (exact(0.45, 200), exact(0.45, 201));
        assert!(a > b && b > 0.0 && a < 1.0, "{a} {b}");
    }

    #[test]
    fn exact_equals_the_incomplete_beta_form() {
        // I_x(z, 1/2) by numeric integration of t^(z−1)(1−t)^(−1/2) / B(z, 1/2), with the
        // substitution t = 1 − u² to remove the end singularity.
        fn ibeta(x: f64, z: u32) -> f64 {
            let f = |u: f64| 2.0 * (1.0 - u * u).powi(z as i32 - 1);
            let integral = |from: f64, to: f64| {
                let n = 200_000;
                let h = (to - from) / n as f64;
                (0..n)
                    .map(|i| {
                        let u = from + (i as f64 + 0.5) * h;
                        f(u) * h
                    })
                    .sum::<f64>()
            };
            integral((1.0 - x).sqrt(), 1.0) / integral(0.0, 1.0)
        }
        for (q, z) in [(0.1, 1), (0.1, 3), (0.3, 5), (0.25, 8)] {
            let x = 4.0 * q * (1.0 - q);
            let want = ibeta(x, z);
            assert!(
                close(exact(q, z), want, 1e-6),
                "q {q} z {z}: {} vs {want}",
                exact(q, z)
            );
        }
    }

    #[test]
    fn finality_matches_a_direct_sum_and_is_below_the_premined_race() {
        for q in [0.1, 0.2, 0.3] {
            let p: f64 = 1.0 - q;
            // k = 1: Σ_m p q^m min(1, (q/p)^(2−m)).
            let direct: f64 = (0..2000)
                .map(|m: i32| p * q.powi(m) * (q / p).powi(2 - m).min(1.0))
                .sum();
            assert!(close(finality(q, 1), direct, 1e-12), "q {q}");
            for k in 1..=8 {
                assert!(finality(q, k) < exact(q, k), "q {q} k {k}");
                assert!(finality(q, k + 1) < finality(q, k));
            }
        }
        assert_eq!(finality(0.5, 6), 1.0);
    }

    #[test]
    fn selfish_revenue_crosses_the_honest_share_at_the_threshold() {
        for gamma in [0.0, 0.5, 1.0] {
            let t = selfish_threshold(gamma);
            if t > 0.0 {
                assert!(
                    (selfish_revenue(t, gamma) - t).abs() < 1e-12,
                    "gamma {gamma}"
                );
                assert!(selfish_revenue(t - 0.02, gamma) < t - 0.02);
            }
            assert!(selfish_revenue(t + 0.02, gamma) > t + 0.02);
        }
        assert!((selfish_threshold(0.0) - 1.0 / 3.0).abs() < 1e-15);
        assert!((selfish_threshold(0.5) - 0.25).abs() < 1e-15);
    }

    #[test]
    fn stale_rate_is_zero_without_delay() {
        assert_eq!(stale_rate(0.0, 600.0), 0.0);
        assert!((stale_rate(6.0, 600.0) - (1.0 - (-0.01f64).exp())).abs() < 1e-15);
    }
}
