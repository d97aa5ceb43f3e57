//! The published results the experiments are checked against. p = 1 − q throughout. Every sum
//! runs over positive terms only, built by recurrences in log space, so z in the hundreds and q
//! up to 0.4999 neither overflow nor cancel (Nakamoto's own listing computes 1 − Σ, which loses
//! every digit once the figure nears 1e-16).
//!
//! - Nakamoto (2008), "Bitcoin: A Peer-to-Peer Electronic Cash System", §11: the attacker's
//!   progress while the merchant waits for z blocks taken as Poisson with mean z·q/p, then the
//!   gambler's ruin (q/p)^deficit to catch up ([`nakamoto`]; his table is reproduced to the 7
//!   digits he printed, and so is his "P < 0.001" table, up to z = 340).
//! - The exact figure (Rosenfeld 2014, "Analysis of hashrate-based double spending"; Grunspan &
//!   Pérez-Marco 2017, "Double spend races"): the attacker's blocks when the merchant has z are
//!   negative-binomial, P(m) = C(m+z−1, m) p^z q^m, not Poisson; with Rosenfeld's pre-mined
//!   block, success from m is min(1, (q/p)^(z−m)) ([`exact`]). It equals
//!   1 − Σ_{m≤z} C(m+z−1, m)(p^z q^m − p^m q^z) = I_{4pq}(z, 1/2). At q = 0.1 Nakamoto's figure
//!   is slightly higher at z = 1 (0.2046 against 2q = 0.2) and too low from z = 2 on, by a
//!   factor that grows with z (2.2 at z = 10, 5·10^6 at z = 60); very close to 1/2 it is the
//!   higher one again (0.99774 against 0.99681 at q = 0.4999, z = 200).
//! - [`finality`]: the same race without the pre-mined block, the attacker starting when the
//!   block is found and having to become strictly longer than the chain k deep.
//! - Eyal & Sirer (2014), "Majority is not enough: Bitcoin mining is vulnerable": the selfish
//!   pool's relative revenue and its profitability threshold (1−γ)/(3−2γ). Their revenue minus
//!   α is α(1−α)²((3−2γ)α − (1−γ)) / (1 − α(1 + (2−α)α)), so it crosses α exactly at the
//!   threshold, for every γ.
//! - The first-order stale rate 1 − e^(−d/T) (e.g. Decker & Wattenhofer 2013, "Information
//!   propagation in the Bitcoin network").

use super::stats::{ln_choose, ln_factorial};

/// The most terms an infinite tail is summed over (a guard: the stopping rule below ends every
/// tail with q < 1/2 long before, within a few thousand terms even at q = 0.4999, z = 200).
const MAX_TERMS: u64 = 10_000_000;

/// A sum of positive terms given by their logarithms, kept as max · Σ e^(l − max) so that
/// neither tiny nor huge terms overflow.
#[derive(Clone, Copy)]
struct LogSum {
    max: f64,
    scaled: f64,
}

impl LogSum {
    fn new() -> Self {
        Self {
            max: f64::NEG_INFINITY,
            scaled: 0.0,
        }
    }

    fn add(&mut self, ln_term: f64) {
        if ln_term == f64::NEG_INFINITY {
            return;
        }
        if ln_term > self.max {
            self.scaled = self.scaled * (self.max - ln_term).exp() + 1.0;
            self.max = ln_term;
        } else {
            self.scaled += (ln_term - self.max).exp();
        }
    }

    /// ln of the sum (−∞ for an empty one).
    fn ln(self) -> f64 {
        self.max + self.scaled.ln()
    }

    fn value(self) -> f64 {
        self.ln().exp()
    }
}

/// Σ_{j ≥ 0} t_j in log space, t_0 = e^`ln_first`, t_{j+1} = t_j · ratio(j). The ratios must
/// be below 1 and not increase (true of the negative-binomial and Poisson tails here), so the
/// rest after t_j is at most t_j·r/(1 − r), r = ratio(j): the sum stops once that is below
/// 1e-16 of the total, or after [`MAX_TERMS`] terms.
fn geometric_tail(ln_first: f64, ratio: impl Fn(u64) -> f64) -> LogSum {
    let mut sum = LogSum::new();
    let mut ln_t = ln_first;
    for j in 0..MAX_TERMS {
        sum.add(ln_t);
        let r = ratio(j);
        if r <= 0.0 {
            break;
        }
        ln_t += r.ln();
        if r < 1.0 && ln_t - (1.0 - r).ln() < sum.ln() + (1e-16f64).ln() {
            break;
        }
    }
    sum
}

/// Σ_{j=0}^{n−1} t_j in log space, t_0 = e^`ln_first`, t_{j+1} = t_j · ratio(j).
fn finite_sum(ln_first: f64, n: u64, ratio: impl Fn(u64) -> f64) -> LogSum {
    let mut sum = LogSum::new();
    let mut ln_t = ln_first;
    for j in 0..n {
        sum.add(ln_t);
        ln_t += ratio(j).ln();
    }
    sum
}

/// Nakamoto's §11 figure: 1 − Σ_{k=0}^{z} e^{−λ} λ^k/k! (1 − (q/p)^{z−k}), λ = z·q/p; 1 for
/// q ≥ 0.5. Summed without the cancellation of his C listing (which loses all digits once the
/// figure nears 1e-16): it equals Σ_{k≤z} Poisson(k)·(q/p)^{z−k} + Σ_{k>z} Poisson(k), the
/// attacker either still behind by z − k and catching up, or already level or ahead.
pub fn nakamoto(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q.is_nan() {
        return f64::NAN;
    }
    if q >= p {
        return 1.0;
    }
    if q <= 0.0 {
        return if z == 0 { 1.0 } else { 0.0 };
    }
    if z == 0 {
        return 1.0;
    }
    let (ratio, zz) = (q / p, u64::from(z));
    let lambda = f64::from(z) * ratio;
    let (ln_lambda, ln_ratio) = (lambda.ln(), ratio.ln());
    // k ≤ z: Poisson(k) (q/p)^(z−k); the log of the k = 0 term is −λ + z ln(q/p).
    let behind = finite_sum(-lambda + f64::from(z) * ln_ratio, zz + 1, |k| {
        lambda / ((k + 1) as f64) / ratio
    });
    // k > z: Poisson(k), from k = z + 1; ratios λ/(k+1) < 1 and falling (λ < z).
    let ln_first = -lambda + (zz + 1) as f64 * ln_lambda - ln_factorial(zz + 1);
    let ahead = geometric_tail(ln_first, |j| lambda / ((zz + 2 + j) as f64));
    (behind.value() + ahead.value()).clamp(0.0, 1.0)
}

/// The exact double-spend probability (Rosenfeld 2014; Grunspan & Pérez-Marco 2017), with
/// Rosenfeld's pre-mined block: when the merchant has z blocks the attacker has m with
/// probability C(m+z−1, m) p^z q^m, and then succeeds with probability min(1, (q/p)^(z−m)).
/// Summed as Σ_{m<z} C(m+z−1, m) p^m q^z + Σ_{m≥z} C(m+z−1, m) p^z q^m (all terms positive,
/// by recurrences in log space); equal to 1 − Σ_{m=0}^{z} C(m+z−1, m)(p^z q^m − p^m q^z) =
/// I_{4pq}(z, 1/2) without that form's cancellation. 1 for q ≥ 0.5 and for z = 0.
pub fn exact(q: f64, z: u32) -> f64 {
    let p = 1.0 - q;
    if q.is_nan() {
        return f64::NAN;
    }
    if q >= p || z == 0 {
        return 1.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    let (lp, lq, zz) = (p.ln(), q.ln(), u64::from(z));
    let zf = zz as f64;
    // m = 0..z−1: C(m+z−1, m) p^m q^z; the m = 0 term is q^z.
    let catch_up = finite_sum(zf * lq, zz, |m| p * (m + zz) as f64 / (m + 1) as f64);
    // m ≥ z: C(m+z−1, m) p^z q^m, ratio q (m+z)/(m+1) ≤ 2q·z/(z+1) < 1, falling.
    let ln_first = ln_choose(2 * zz - 1, zz) + zf * lp + zf * lq;
    let ahead = geometric_tail(ln_first, |j| {
        let m = zz + j;
        q * (m + zz) as f64 / (m + 1) as f64
    });
    (catch_up.value() + ahead.value()).clamp(0.0, 1.0)
}

/// Finality: the probability that a block k deep is ever reorganised away by an attacker of
/// share q who began a private branch at its parent when it was found, with no pre-mined block,
/// and must become strictly longer: Σ_{m≥0} C(m+k−1, m) p^k q^m · min(1, (q/p)^(k−m+1)), i.e.
/// Σ_{m≤k} C(m+k−1, m) p^(m−1) q^(k+1) + Σ_{m>k} C(m+k−1, m) p^k q^m (the tail summed until
/// what is left is below 1e-16 of the total, in a bounded loop). q/p for k = 0; 1 for q ≥ 0.5.
pub fn finality(q: f64, k: u32) -> f64 {
    let p = 1.0 - q;
    if q.is_nan() {
        return f64::NAN;
    }
    if q >= p {
        return 1.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    if k == 0 {
        return q / p;
    }
    let (lp, lq, kk) = (p.ln(), q.ln(), u64::from(k));
    let kf = kk as f64;
    // m = 0..k: C(m+k−1, m) p^(m−1) q^(k+1); the m = 0 term is q^(k+1)/p.
    let catch_up = finite_sum(-lp + (kf + 1.0) * lq, kk + 1, |m| {
        p * (m + kk) as f64 / (m + 1) as f64
    });
    // m ≥ k+1: C(m+k−1, m) p^k q^m, ratio q (m+k)/(m+1) < 1, falling.
    let ln_first = ln_choose(2 * kk, kk + 1) + kf * lp + (kf + 1.0) * lq;
    let ahead = geometric_tail(ln_first, |j| {
        let m = kk + 1 + j;
        q * (m + kk) as f64 / (m + 1) as f64
    });
    (catch_up.value() + ahead.value()).clamp(0.0, 1.0)
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

    /// Nakamoto's C listing, verbatim in Rust (1 − Σ, fine where the figure is not tiny).
    fn nakamoto_listing(q: f64, z: u32) -> f64 {
        let p = 1.0 - q;
        let lambda = f64::from(z) * (q / p);
        let mut sum = 1.0;
        for k in 0..=z {
            let mut poisson = (-lambda).exp();
            for i in 1..=k {
                poisson *= lambda / f64::from(i);
            }
            sum -= poisson * (1.0 - (q / p).powi((z - k) as i32));
        }
        sum
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
        assert_eq!(nakamoto(0.8, 6), 1.0);
    }

    #[test]
    fn nakamoto_reproduces_his_p_below_a_thousandth_table() {
        // §11 "Solving for P less than 0.1%": the least z with P < 0.001.
        let table = [
            (0.10, 5),
            (0.15, 8),
            (0.20, 11),
            (0.25, 15),
            (0.30, 24),
            (0.35, 41),
            (0.40, 89),
            (0.45, 340),
        ];
        for (q, want) in table {
            let z = (0..1000).find(|&z| nakamoto(q, z) < 0.001);
            assert_eq!(z, Some(want), "q {q}");
        }
    }

    #[test]
    fn nakamoto_sums_without_cancellation() {
        for q in [0.05, 0.1, 0.3, 0.45] {
            for z in 0..=30 {
                let (got, listing) = (nakamoto(q, z), nakamoto_listing(q, z));
                assert!(
                    (got - listing).abs() < 1e-13,
                    "q {q} z {z}: {got} {listing}"
                );
            }
        }
        // Where the listing's 1 − Σ has no digits left, the sum still falls with z.
        let (a, b) = (nakamoto(0.1, 60), nakamoto(0.1, 61));
        assert!(a > b && b > 0.0 && a < 1e-20, "{a} {b}");
    }

    #[test]
    fn exact_matches_rational_arithmetic_and_is_2q_at_one_block() {
        // 1 − Σ_{m≤z} C(m+z−1, m)(p^z q^m − p^m q^z), evaluated in exact rational arithmetic
        // (Python fractions) and rounded to 7 digits. (Rosenfeld's n = z.)
        let q1 = [
            0.2000000, 0.0560000, 0.0171200, 0.0054560, 0.0017818, 0.0005914, 0.0001986, 0.0000672,
            0.0000229, 0.0000079,
        ];
        let q3 = [
            0.6000000, 0.4320000, 0.3261600, 0.2520720, 0.1976173, 0.1564496, 0.1247504, 0.1000251,
            0.0805539, 0.0651067,
        ];
        for (z, (w1, w3)) in (1u32..).zip(q1.into_iter().zip(q3)) {
            assert!(
                (exact(0.1, z) - w1).abs() < 5e-8,
                "q 0.1 z {z}: {}",
                exact(0.1, z)
            );
            assert!(
                (exact(0.3, z) - w3).abs() < 5e-8,
                "q 0.3 z {z}: {}",
                exact(0.3, z)
            );
        }
        for q in [0.01, 0.05, 0.1, 0.3, 0.45, 0.4999] {
            assert!(close(exact(q, 1), 2.0 * q, 1e-12), "q {q}");
        }
    }

    #[test]
    fn exact_matches_rosenfelds_closed_form() {
        for q in [0.05, 0.1, 0.3, 0.45] {
            let p: f64 = 1.0 - q;
            for z in 1..=12u32 {
                let mut s = 1.0;
                for m in 0..=z {
                    let c = ln_choose(u64::from(m + z) - 1, u64::from(m)).exp();
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
    }

    #[test]
    fn exact_exceeds_nakamoto_from_two_blocks() {
        // Nakamoto's Poisson figure is the higher one at z = 1 (0.2046 vs 2q = 0.2) and too low
        // from z = 2 on, by a factor that grows with z.
        assert!(nakamoto(0.1, 1) > exact(0.1, 1));
        let mut factor = 1.0;
        for z in 2..=10 {
            let f = exact(0.1, z) / nakamoto(0.1, z);
            assert!(f > factor, "z {z}: {f}");
            factor = f;
        }
        assert!(factor > 2.0, "{factor}");
        assert_eq!(exact(0.5, 3), 1.0);
        assert_eq!(exact(0.7, 3), 1.0);
        assert_eq!(exact(0.2, 0), 1.0);
        assert_eq!(exact(0.0, 3), 0.0);
    }

    #[test]
    fn deep_races_near_a_half_stay_finite_and_fall() {
        for f in [nakamoto, exact, finality] {
            for q in [0.1, 0.45, 0.4999] {
                let (a, b) = (f(q, 200), f(q, 201));
                assert!(a > b && b > 0.0 && a < 1.0, "q {q}: {a} {b}");
            }
            // Close to a half, 200 blocks buy little.
            assert!(f(0.4999, 200) > 0.9, "{}", f(0.4999, 200));
        }
        assert!(finality(0.4999, 200) < exact(0.4999, 200));
    }

    #[test]
    fn deep_values_match_high_precision_references() {
        // mpmath at 40–200 digits: betainc(z, 1/2, 0, 4pq) for `exact`, the defining sum for
        // `finality` and Nakamoto's 1 − Σ for `nakamoto`.
        type Formula = fn(f64, u32) -> f64;
        let cases: [(Formula, f64, u32, f64); 9] = [
            (exact, 0.1, 60, 2.160351892325197e-28),
            (exact, 0.1, 200, 9.066573971927763e-91),
            (exact, 0.45, 200, 0.04509410713707983),
            (exact, 0.4999, 200, 0.9968104643058006),
            (exact, 0.3, 1000, 8.461850073815489e-78),
            (finality, 0.45, 200, 0.04050903593244322),
            (finality, 0.1, 60, 4.285600010187664e-29),
            (nakamoto, 0.1, 60, 4.371848209605337e-35),
            (nakamoto, 0.4999, 200, 0.9977363453485787),
        ];
        for (f, q, z, want) in cases {
            assert!(
                close(f(q, z), want, 1e-11),
                "q {q} z {z}: {} vs {want}",
                f(q, z)
            );
        }
    }

    /// I_x(z, 1/2) by numeric integration of t^(z−1)(1−t)^(−1/2) / B(z, 1/2), with the
    /// substitution t = 1 − u² to remove the end singularity (midpoint rule).
    fn ibeta_half(x: f64, z: u32) -> f64 {
        let f = |u: f64| (1.0 - u * u).powi(z as i32 - 1);
        let integral = |from: f64, to: f64| {
            let n = 400_000;
            let h = (to - from) / n as f64;
            (0..n)
                .map(|i| f(from + (i as f64 + 0.5) * h) * h)
                .sum::<f64>()
        };
        integral((1.0 - x).sqrt(), 1.0) / integral(0.0, 1.0)
    }

    #[test]
    fn exact_equals_the_incomplete_beta_form() {
        for (q, z) in [
            (0.1, 1),
            (0.1, 3),
            (0.3, 5),
            (0.25, 8),
            (0.45, 50),
            (0.4999, 200),
        ] {
            let want = ibeta_half(4.0 * q * (1.0 - q), z);
            assert!(
                close(exact(q, z), want, 1e-6),
                "q {q} z {z}: {} vs {want}",
                exact(q, z)
            );
        }
    }

    #[test]
    fn finality_matches_a_direct_sum_and_is_below_the_premined_race() {
        for q in [0.1, 0.2, 0.3, 0.45] {
            let p: f64 = 1.0 - q;
            // k = 1: Σ_m p q^m min(1, (q/p)^(2−m)).
            let direct: f64 = (0..4000)
                .map(|m: i32| p * q.powi(m) * (q / p).powi(2 - m).min(1.0))
                .sum();
            assert!(close(finality(q, 1), direct, 1e-12), "q {q}");
            // k = 1 by hand: m = 0 needs two blocks, (q/p)²; m = 1 needs one, q/p; m ≥ 2 wins.
            let by_hand = p * (q / p).powi(2) + p * q * (q / p) + q * q;
            assert!(close(finality(q, 1), by_hand, 1e-12), "q {q}");
            // k = 2..5 against the defining sum with binomials from Pascal's rule.
            for k in 2..=5u32 {
                let mut c = 1.0; // C(m+k−1, m), m = 0
                let mut direct = 0.0;
                for m in 0..4000i32 {
                    let deficit = k as i32 - m + 1;
                    direct += c * p.powi(k as i32) * q.powi(m) * (q / p).powi(deficit).min(1.0);
                    c *= f64::from(m + k as i32) / f64::from(m + 1);
                }
                assert!(close(finality(q, k), direct, 1e-11), "q {q} k {k}");
            }
            assert!(close(finality(q, 0), q / p, 1e-15));
            for k in 1..=8 {
                assert!(finality(q, k) < exact(q, k), "q {q} k {k}");
                assert!(finality(q, k + 1) < finality(q, k));
            }
        }
        assert_eq!(finality(0.5, 6), 1.0);
        assert_eq!(finality(0.0, 6), 0.0);
    }

    #[test]
    fn selfish_revenue_crosses_the_honest_share_exactly_at_the_threshold() {
        for i in 0..=20 {
            let gamma = f64::from(i) / 20.0;
            let t = selfish_threshold(gamma);
            assert!(
                (selfish_revenue(t, gamma) - t).abs() < 1e-12,
                "gamma {gamma}"
            );
            if t > 0.01 {
                assert!(selfish_revenue(t - 0.01, gamma) < t - 0.01, "gamma {gamma}");
            }
            assert!(selfish_revenue(t + 0.01, gamma) > t + 0.01, "gamma {gamma}");
        }
        for alpha in [0.1, 0.2, 0.3, 0.33] {
            assert!(selfish_revenue(alpha, 0.0) < alpha, "{alpha}");
        }
        for alpha in [0.34, 0.4, 0.45] {
            assert!(selfish_revenue(alpha, 0.0) > alpha, "{alpha}");
        }
        assert!((selfish_threshold(0.0) - 1.0 / 3.0).abs() < 1e-15);
        assert!((selfish_threshold(0.5) - 0.25).abs() < 1e-15);
        assert_eq!(selfish_threshold(1.0), 0.0);
    }

    #[test]
    fn stale_rate_is_zero_without_delay() {
        assert_eq!(stale_rate(0.0, 600.0), 0.0);
        assert!((stale_rate(6.0, 600.0) - (1.0 - (-0.01f64).exp())).abs() < 1e-15);
    }
}
