//! The statistics the experiments share: intervals (Wilson, Student's t, the ratio estimate over
//! regeneration cycles, binomial and sample ranges), nearest-rank quantiles, log-gamma and
//! log-binomials, the χ² tail (regularised incomplete gamma), and concentration (Gini, the
//! Nakamoto coefficient).

/// z for a two-sided 95% normal interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score 95% interval for `successes` of `trials` (Wilson 1927): unlike the normal
/// approximation it stays inside [0, 1] and is not empty at 0 or `trials` successes. (0, 1) for
/// no trials.
pub fn wilson95(successes: u64, trials: u64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Student's t for a two-sided 95% interval with `df` degrees of freedom.
fn t95(df: u64) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df as usize - 1],
        _ => Z95,
    }
}

/// Mean and 95% interval of `n` samples given as their sum and sum of squares: mean ± t·s/√n
/// with Student's t for n − 1 degrees of freedom (a few independent runs' figures). NaN ends for
/// fewer than two samples.
pub fn mean_ci95(n: u64, sum: f64, sum_sq: f64) -> (f64, (f64, f64)) {
    if n == 0 {
        return (f64::NAN, (f64::NAN, f64::NAN));
    }
    let k = n as f64;
    let mean = sum / k;
    if n < 2 {
        return (mean, (f64::NAN, f64::NAN));
    }
    let var = ((sum_sq - k * mean * mean) / (k - 1.0)).max(0.0);
    let half = t95(n - 1) * (var / k).sqrt();
    (mean, (mean - half, mean + half))
}

/// Nakamoto-coefficient threshold for control of block production and of the chain's history
/// in PoW and PoS: more than half.
pub const MAJORITY: f64 = 0.5;

/// Nakamoto-coefficient threshold for BFT-style finality (DPoS irreversibility, PBFT): more than
/// a third of the producers can stop blocks from becoming final.
pub const BFT_THIRD: f64 = 1.0 / 3.0;

/// Gini coefficient of `values`: 0 when all are equal, `1 − 1/n` when one holds everything.
/// `G = Σᵢ (2i − n − 1)·x₍ᵢ₎ / (n·Σx)` over the values sorted ascending (i from 1); 0 for no
/// values or a zero total. Zeros count as entities holding nothing.
pub fn gini(values: &[u64]) -> f64 {
    let n = values.len();
    let total: u128 = values.iter().map(|&v| u128::from(v)).sum();
    if n == 0 || total == 0 {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let nf = n as f64;
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| (2.0 * (i as f64 + 1.0) - nf - 1.0) * x as f64)
        .sum();
    weighted / (nf * total as f64)
}

/// Nakamoto coefficient: the smallest number of entities that together hold more than
/// `threshold` of the total of `values` (balances for stake, counts of blocks made for block
/// production).
///
/// Which threshold matters depends on the consensus: [`MAJORITY`] (1/2) for control of the
/// chain in PoW and PoS (a majority of hash rate or stake can outpace everyone else); for
/// BFT-style finality, as DPoS's irreversibility and PBFT have, [`BFT_THIRD`] (1/3): more than
/// a third of the producers withholding their confirmations stops blocks from becoming final.
///
/// 0 for a zero total; `values.len()` when no set of entities exceeds the threshold (a
/// threshold of 1 or more).
pub fn nakamoto_coefficient(values: &[u64], threshold: f64) -> usize {
    let total: u128 = values.iter().map(|&v| u128::from(v)).sum();
    if total == 0 {
        return 0;
    }
    let bar = threshold.max(0.0) * total as f64;
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut held: u128 = 0;
    for (k, &v) in sorted.iter().enumerate() {
        held += u128::from(v);
        if held as f64 > bar {
            return k + 1;
        }
    }
    values.len()
}

/// Upper tail of the χ² distribution with `df` degrees of freedom: `Q(df/2, x/2)`.
pub(crate) fn chi_square_p(x: f64, df: u64) -> f64 {
    if df == 0 {
        return 1.0;
    }
    gamma_q(df as f64 / 2.0, x / 2.0)
}

/// Relative accuracy the incomplete-gamma iterations stop at.
const GAMMA_EPS: f64 = 1e-15;

/// Iteration cap (the series needs about √a·few terms near x ≈ a; the fraction fewer).
const GAMMA_MAX_ITER: usize = 10_000;

/// Smallest magnitude Lentz's method lets a denominator take.
const GAMMA_TINY: f64 = 1e-300;

/// The regularized upper incomplete gamma function `Q(a, x) = Γ(a, x)/Γ(a)` for `a > 0`.
///
/// As Numerical Recipes' `gammq`: for `x < a + 1` the series of the lower function `P(a, x)`
/// converges fast and `Q = 1 − P`; above, the continued fraction for `Q` (evaluated with
/// Lentz's modified method) converges fast and gives the small tail values without the
/// cancellation `1 − P` would suffer. 1 for `x ≤ 0`, NaN for `a ≤ 0` or NaN inputs.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x == f64::INFINITY {
        return 0.0;
    }
    if x < a + 1.0 {
        (1.0 - gamma_p_series(a, x)).max(0.0)
    } else {
        gamma_q_fraction(a, x)
    }
}

/// `e^(−x) x^a / Γ(a)`, the factor both expansions share, in logarithms.
fn gamma_prefactor(a: f64, x: f64) -> f64 {
    (-x + a * x.ln() - ln_gamma(a)).exp()
}

/// `P(a, x) = e^(−x) x^a / Γ(a+1) · Σₙ xⁿ / ((a+1)…(a+n))`.
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut ap = a;
    let mut term = 1.0 / a;
    let mut sum = term;
    for _ in 0..GAMMA_MAX_ITER {
        ap += 1.0;
        term *= x / ap;
        sum += term;
        if term.abs() < sum.abs() * GAMMA_EPS {
            break;
        }
    }
    sum * gamma_prefactor(a, x)
}

/// `Q(a, x) = e^(−x) x^a / Γ(a) · 1/(x+1−a− 1·(1−a)/(x+3−a− 2·(2−a)/(x+5−a− …)))`, by Lentz.
fn gamma_q_fraction(a: f64, x: f64) -> f64 {
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / GAMMA_TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..=GAMMA_MAX_ITER {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < GAMMA_TINY {
            d = GAMMA_TINY;
        }
        c = b + an / c;
        if c.abs() < GAMMA_TINY {
            c = GAMMA_TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < GAMMA_EPS {
            break;
        }
    }
    gamma_prefactor(a, x) * h
}

/// `ln Γ(x)` for `x > 0`: Lanczos' approximation with g = 7 and nine coefficients (relative
/// error about 1e-15), with the reflection formula below 1/2.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, &c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// `q`-quantile of sorted values by the nearest-rank method (the smallest value with at least
/// `q` of the values at or below it); NaN when empty.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The central range of Binomial(n, p) / n leaving `tail` out on each side (0.025: the 95%
/// range): what a run of `n` trials shows that often when the sim's probability is right.
pub fn binomial_range(p: f64, n: u64, tail: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let p = p.clamp(0.0, 1.0);
    // Walk the pmf in log space.
    let ln_pmf = |k: u64| -> f64 {
        let (nf, kf) = (n as f64, k as f64);
        let ln_choose = ln_gamma(nf + 1.0) - ln_gamma(kf + 1.0) - ln_gamma(nf - kf + 1.0);
        let a = if k == 0 { 0.0 } else { kf * p.ln() };
        let b = if k == n {
            0.0
        } else {
            (nf - kf) * (1.0 - p).ln()
        };
        ln_choose + a + b
    };
    let mut cdf = 0.0;
    let (mut lo, mut hi) = (None, None);
    for k in 0..=n {
        cdf += ln_pmf(k).exp();
        if lo.is_none() && cdf > tail {
            lo = Some(k);
        }
        if hi.is_none() && cdf >= 1.0 - tail {
            hi = Some(k);
            break;
        }
    }
    let nf = n as f64;
    (lo.unwrap_or(0) as f64 / nf, hi.unwrap_or(n) as f64 / nf)
}

/// The central range of samples leaving `tail` out on each side (order statistics).
pub fn sample_range(samples: &mut [f64], tail: f64) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 1.0);
    }
    samples.sort_by(f64::total_cmp);
    let last = (samples.len() - 1) as f64;
    let at = |q: f64| samples[(last * q).round() as usize];
    (at(tail), at(1.0 - tail))
}

/// ln n!: exact sums below 256, Stirling's series above (absolute error about 1e-13).
pub(crate) fn ln_factorial(n: u64) -> f64 {
    if n < 256 {
        (2..=n).map(|i| (i as f64).ln()).sum()
    } else {
        let x = n as f64 + 1.0;
        (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
            - 1.0 / (360.0 * x.powi(3))
    }
}

/// ln C(n, k), k ≤ n.
pub(crate) fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// Sums over independent cycles of (x, y) for a ratio estimate Σx / Σy and its interval.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct Cycles {
    pub n: u64,
    pub x: f64,
    pub y: f64,
    pub xx: f64,
    pub yy: f64,
    pub xy: f64,
}

impl Cycles {
    pub(crate) fn add(&mut self, x: f64, y: f64) {
        self.n += 1;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.yy += y * y;
        self.xy += x * y;
    }

    pub(crate) fn merge(&mut self, o: &Cycles) {
        self.n += o.n;
        self.x += o.x;
        self.y += o.y;
        self.xx += o.xx;
        self.yy += o.yy;
        self.xy += o.xy;
    }

    /// 95% interval of Σx / Σy by the delta method over cycles, clamped to [0, 1]; (0, 1) with
    /// fewer than two cycles or no y.
    pub(crate) fn ratio_ci95(&self) -> (f64, f64) {
        if self.n < 2 || self.y <= 0.0 {
            return (0.0, 1.0);
        }
        let n = self.n as f64;
        let r = self.x / self.y;
        let s2 = ((self.xx - 2.0 * r * self.xy + r * r * self.yy) / (n - 1.0)).max(0.0);
        let se = (s2 / n).sqrt() / (self.y / n);
        ((r - 1.96 * se).max(0.0), (r + 1.96 * se).min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn wilson_matches_known_values() {
        let (lo, hi) = wilson95(0, 10);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.2775).abs() < 1e-4, "{hi}");
        let (lo, hi) = wilson95(5, 10);
        assert!(
            (lo - 0.2366).abs() < 1e-4 && (hi - 0.7634).abs() < 1e-4,
            "{lo} {hi}"
        );
        assert_eq!(wilson95(0, 0), (0.0, 1.0));
    }

    #[test]
    fn mean_interval_uses_students_t() {
        // Samples 1, 2, 3: mean 2, s = 1, t(2) = 4.303.
        let (m, (lo, hi)) = mean_ci95(3, 6.0, 14.0);
        assert_eq!(m, 2.0);
        assert!((hi - lo - 2.0 * 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!(mean_ci95(1, 5.0, 25.0).1 .0.is_nan());
    }

    #[test]
    fn chi_square_p_values_match_tables() {
        // The 5% critical values of χ² for df = 1, 2, 10 (any table).
        assert!(close(chi_square_p(3.841_458_820_694_124, 1), 0.05, 1e-9));
        assert!(close(chi_square_p(3.84, 1), 0.050_043_521_248_705, 1e-9));
        assert!(close(chi_square_p(18.307_038_053_275_146, 10), 0.05, 1e-9));
        assert!(close(chi_square_p(18.307, 10), 0.050_000_589_091_398, 1e-9));
        // df = 2: Q(1, x/2) = e^(−x/2) exactly.
        assert!(close(chi_square_p(10.0, 2), (-5.0f64).exp(), 1e-12));
        // Far tail through the continued fraction: χ²=100, df=1 is erfc(√50) = 1.523970…e−23.
        assert!(close(
            chi_square_p(100.0, 1),
            1.523_970_604_832_105e-23,
            1e-9
        ));
        // The 1% critical value for df = 100 (x/2 = 67.9 > a + 1 = 51: the continued fraction).
        assert!(close(
            chi_square_p(135.806_723, 100),
            0.010_000_000_263_358,
            1e-9
        ));
        // Below the mean: the series side. Median of χ²₁ is 0.454936.
        assert!(close(chi_square_p(0.454_936_423_119_572_8, 1), 0.5, 1e-9));
        assert_eq!(chi_square_p(0.0, 3), 1.0);
        assert!(gamma_q(-1.0, 1.0).is_nan());
        assert!(close(ln_gamma(0.5), 0.572_364_942_924_700_1, 1e-14));
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-14));
    }

    #[test]
    fn gini_and_nakamoto() {
        assert_eq!(gini(&[5, 5, 5, 5]), 0.0);
        assert!(close(gini(&[0, 0, 0, 10]), 0.75, 1e-12));
        // Known value: 1, 2, 3, 4, 5 has G = 4/15.
        assert!(close(gini(&[3, 1, 5, 2, 4]), 4.0 / 15.0, 1e-12));
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(gini(&[0, 0]), 0.0);
        // 40 + 30 = 70 > 50; 40 alone is not.
        assert_eq!(nakamoto_coefficient(&[10, 30, 40, 20], MAJORITY), 2);
        // Exactly half is not control: 50 of 100 needs one more.
        assert_eq!(nakamoto_coefficient(&[50, 25, 25], MAJORITY), 2);
        assert_eq!(nakamoto_coefficient(&[51, 49], MAJORITY), 1);
        // One third: 7 equal producers of 21 hold exactly 1/3; it takes 8.
        assert_eq!(nakamoto_coefficient(&[1; 21], BFT_THIRD), 8);
        assert_eq!(nakamoto_coefficient(&[0, 0], MAJORITY), 0);
        assert_eq!(nakamoto_coefficient(&[1, 1], 1.0), 2);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile_sorted(&v, 0.5), 5.0);
        assert_eq!(quantile_sorted(&v, 0.9), 9.0);
        assert_eq!(quantile_sorted(&v, 0.99), 10.0);
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }

    #[test]
    fn binomial_ranges_hold_95_percent() {
        // n = 10, p = 0.5: P(X ≤ 1) = 0.0107, P(X ≤ 2) = 0.0547, P(X ≤ 7) = 0.9453,
        // P(X ≤ 8) = 0.9893, so the central range is 2..=8.
        assert_eq!(binomial_range(0.5, 10, 0.025), (0.2, 0.8));
        // P(X = 0) = 0.00098 is above 0.0005, so 0 is inside the 99.9% range.
        assert_eq!(binomial_range(0.5, 10, 0.0005).0, 0.0);
        assert_eq!(binomial_range(0.0, 20, 0.025), (0.0, 0.0));
        assert_eq!(binomial_range(1.0, 20, 0.025), (1.0, 1.0));
        let (lo, hi) = binomial_range(0.01, 1000, 0.025);
        assert!(lo > 0.0 && lo < 0.01 && hi > 0.01 && hi < 0.02, "{lo} {hi}");
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut f = 1.0f64;
        for n in 1..30u32 {
            f *= f64::from(n);
            assert!((ln_gamma(f64::from(n) + 1.0) - f.ln()).abs() < 1e-9, "{n}");
        }
    }
}
