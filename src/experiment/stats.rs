//! Intervals for the experiments' figures.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
