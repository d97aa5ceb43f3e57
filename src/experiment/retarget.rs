//! `miner retarget-sim`: difficulty controllers under a hash-rate profile, without hashing.
//!
//! Each block's solve time is drawn from its exact distribution: the number of hashes until one
//! meets target `t` is geometric with success probability `(t + 1) / 2^256`, and the time is
//! that count over the hash rate of the moment. Every controller sees the same random numbers
//! (the same seed), so differences between them are the controllers', not luck's.

use crate::pow::retarget::{Algorithm, BlockInfo, RetargetParams};
use crate::pow::{Difficulty, Target};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// Intervals averaged when judging recovery after a step.
pub const RECOVERY_WINDOW: u64 = 20;
/// Recovered: the smoothed interval is within this fraction of the target.
pub const RECOVERY_TOLERANCE: f64 = 0.10;

/// Hash rate as a function of height.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq)]
struct Segment {
    from: u64,
    rate: Rate,
}

#[derive(Clone, Debug, PartialEq)]
enum Rate {
    Constant(f64),
    /// A miner that joins and leaves: `high` for `period` blocks, then `low` for `period`.
    OnOff {
        low: f64,
        high: f64,
        period: u64,
    },
}

/// Why a profile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad hash-rate profile '{0}': {1}. Use segments like '1M,10M@2500,1M@5000,onoff(1M/10M/50)@7500' (rate in H/s with k/M/G/T, '@' the first block) or 'steps'")]
pub struct ProfileError(pub String, pub String);

/// A hash rate in H/s from `1500`, `2.5k`, `1M`, `3G`, `1T`; positive and finite.
pub fn parse_rate(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1e3),
        'M' => (&s[..s.len() - 1], 1e6),
        'G' => (&s[..s.len() - 1], 1e9),
        'T' => (&s[..s.len() - 1], 1e12),
        _ => (s, 1.0),
    };
    let v = num.trim().parse::<f64>().ok()? * mult;
    (v.is_finite() && v > 0.0).then_some(v)
}

impl Profile {
    /// Parses a profile for a run of `blocks` blocks. `steps` is the preset: 1 MH/s, ten times
    /// that from a quarter of the run, back to 1 MH/s at half, then an on/off miner (10x for 50
    /// blocks, 1x for 50) from three quarters.
    pub fn parse(text: &str, blocks: u64) -> Result<Profile, ProfileError> {
        let err = |why: &str| ProfileError(text.to_string(), why.to_string());
        if text.trim() == "steps" {
            let q = blocks / 4;
            return Profile::parse(
                &format!("1M,10M@{q},1M@{},onoff(1M/10M/50)@{}", 2 * q, 3 * q),
                blocks,
            );
        }
        let mut segments = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(err("an empty segment"));
            }
            let (body, from) = match part.split_once('@') {
                Some((b, f)) => (
                    b.trim(),
                    f.trim()
                        .parse::<u64>()
                        .map_err(|_| err(&format!("'{f}' is not a block height")))?,
                ),
                None => (part, 0),
            };
            let rate = if let Some(inner) = body
                .strip_prefix("onoff(")
                .and_then(|b| b.strip_suffix(')'))
            {
                let fields: Vec<&str> = inner.split('/').collect();
                let [low, high, period] = fields[..] else {
                    return Err(err("onoff takes (LOW/HIGH/PERIOD)"));
                };
                Rate::OnOff {
                    low: parse_rate(low)
                        .ok_or_else(|| err(&format!("'{low}' is not a hash rate")))?,
                    high: parse_rate(high)
                        .ok_or_else(|| err(&format!("'{high}' is not a hash rate")))?,
                    period: period
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|&p| p > 0)
                        .ok_or_else(|| err(&format!("'{period}' is not a period in blocks")))?,
                }
            } else {
                Rate::Constant(
                    parse_rate(body).ok_or_else(|| err(&format!("'{body}' is not a hash rate")))?,
                )
            };
            if let Some(last) = segments.last() {
                let last: &Segment = last;
                if from <= last.from {
                    return Err(err("segment heights must increase"));
                }
            } else if from != 0 {
                return Err(err(
                    "the first segment must start at block 0 (leave out '@')",
                ));
            }
            segments.push(Segment { from, rate });
        }
        Ok(Profile { segments })
    }

    /// Hash rate (H/s) while block `index` (0-based) is mined.
    pub fn rate_at(&self, index: u64) -> f64 {
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|s| s.from <= index)
            .unwrap_or(&self.segments[0]);
        match seg.rate {
            Rate::Constant(r) => r,
            Rate::OnOff { low, high, period } => {
                if ((index - seg.from) / period).is_multiple_of(2) {
                    high
                } else {
                    low
                }
            }
        }
    }

    /// Block indexes where a segment begins (the steps recovery is measured after).
    pub fn steps(&self) -> Vec<u64> {
        self.segments.iter().skip(1).map(|s| s.from).collect()
    }
}

/// A simulation's settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The controllers to run, each over the same profile and random numbers.
    pub algorithms: Vec<Algorithm>,
    /// Target interval, seconds.
    pub spacing: i64,
    /// Blocks per controller.
    pub blocks: u64,
    /// The network's hash rate over the run.
    pub profile: Profile,
    /// Seed of the block times' random draws; each controller's run starts from it.
    pub seed: u64,
    /// The easiest target allowed (nBits never go above it).
    pub pow_limit: Target,
}

/// One simulated block.
#[derive(Clone, Debug, Serialize)]
pub struct SimBlock {
    /// The block's height, from 1.
    pub height: u64,
    /// Seconds since the start (real, not rounded to the header's whole seconds).
    pub time_s: f64,
    /// Seconds since the previous block (the start, for the first).
    pub interval_s: f64,
    /// The network's hash rate while it was mined, hashes per second.
    pub hashrate_hs: f64,
    /// D of the block's nBits.
    pub difficulty: f64,
    /// The block's nBits, 8 hex digits.
    pub bits: String,
}

/// One controller's run.
#[derive(Clone, Debug)]
pub struct SimRun {
    /// The controller.
    pub algorithm: Algorithm,
    /// Its blocks, in height order.
    pub blocks: Vec<SimBlock>,
}

/// Runs every controller over the same profile and random numbers.
pub fn simulate(cfg: &SimConfig) -> Vec<SimRun> {
    let start_rate = cfg.profile.rate_at(0);
    let initial_d = (start_rate * cfg.spacing as f64).max(1.0);
    let initial_target = Difficulty::from_f64(initial_d)
        .map(|d| d.to_target())
        .unwrap_or(cfg.pow_limit)
        .min(cfg.pow_limit);
    let initial = initial_target.to_compact_lossy();
    cfg.algorithms
        .iter()
        .map(|&algorithm| {
            let params = RetargetParams {
                algorithm,
                spacing: cfg.spacing,
                pow_limit: cfg.pow_limit,
                initial,
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
            let start_time: i64 = 1_700_000_000;
            let mut chain: Vec<BlockInfo> = Vec::with_capacity(cfg.blocks as usize);
            let mut blocks = Vec::with_capacity(cfg.blocks as usize);
            let mut now = 0.0f64;
            for i in 0..cfg.blocks {
                let bits = params.next_bits(&chain);
                let target = Target::from_compact(bits).unwrap_or(cfg.pow_limit);
                let work = target.work().to_f64();
                let rate = cfg.profile.rate_at(i);
                let p = (1.0 / work).min(1.0);
                let u: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
                let hashes = if p >= 1.0 {
                    1.0
                } else {
                    (u.ln() / (-p).ln_1p()).ceil().max(1.0)
                };
                let interval = hashes / rate;
                now += interval;
                chain.push(BlockInfo {
                    height: i + 1,
                    time: start_time + now as i64,
                    bits,
                });
                blocks.push(SimBlock {
                    height: i + 1,
                    time_s: now,
                    interval_s: interval,
                    hashrate_hs: rate,
                    difficulty: work,
                    bits: format!("{:08x}", bits.to_consensus()),
                });
            }
            SimRun { algorithm, blocks }
        })
        .collect()
}

/// A controller's figures over a run. Field names carry units; this is the `--json` schema.
#[derive(Clone, Debug, Serialize)]
pub struct SimStats {
    /// The controller's name.
    pub algorithm: String,
    /// Mean block interval, seconds.
    pub mean_interval_s: f64,
    /// `(mean - T) / T`, percent.
    pub mean_error_pct: f64,
    /// Standard deviation of the block interval, seconds.
    pub std_dev_s: f64,
    /// 95th-percentile block interval, seconds.
    pub p95_s: f64,
    /// Longest block interval, seconds.
    pub max_s: f64,
    /// Per profile step: the step's block index and the blocks until the 20-block mean interval
    /// was back within 10% of T (`None`: not within the run).
    pub recovery_blocks: Vec<(u64, Option<u64>)>,
}

/// Figures for one run.
pub fn stats(run: &SimRun, cfg: &SimConfig) -> SimStats {
    let intervals: Vec<f64> = run.blocks.iter().map(|b| b.interval_s).collect();
    let n = intervals.len().max(1) as f64;
    let mean = intervals.iter().sum::<f64>() / n;
    let var = intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let mut sorted = intervals.clone();
    sorted.sort_by(f64::total_cmp);
    let p95 = sorted
        .get(((sorted.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    let t = cfg.spacing as f64;
    let recovery_blocks = cfg
        .profile
        .steps()
        .into_iter()
        .map(|step| {
            let w = RECOVERY_WINDOW as usize;
            let found = (step as usize + w..=intervals.len()).find(|&end| {
                let avg = intervals[end - w..end].iter().sum::<f64>() / w as f64;
                (avg - t).abs() <= RECOVERY_TOLERANCE * t
            });
            (step, found.map(|end| end as u64 - step))
        })
        .collect();
    SimStats {
        algorithm: run.algorithm.to_string(),
        mean_interval_s: mean,
        mean_error_pct: (mean - t) / t * 100.0,
        std_dev_s: var.sqrt(),
        p95_s: p95,
        max_s: sorted.last().copied().unwrap_or(0.0),
        recovery_blocks,
    }
}

/// The table `miner retarget-sim` prints.
pub fn table(all: &[SimStats], spacing: i64) -> String {
    let steps: Vec<u64> = all
        .first()
        .map(|s| s.recovery_blocks.iter().map(|r| r.0).collect())
        .unwrap_or_default();
    let mut out = format!(
        "{:<26} {:>10} {:>8} {:>9} {:>9} {:>10}",
        format!("algorithm (T = {spacing} s)"),
        "mean s",
        "error",
        "std s",
        "p95 s",
        "max s"
    );
    for s in &steps {
        let _ = write!(out, " {:>13}", format!("recover@{s}"));
    }
    out.push('\n');
    for s in all {
        let _ = write!(
            out,
            "{:<26} {:>10.2} {:>7.2}% {:>9.2} {:>9.2} {:>10.2}",
            s.algorithm, s.mean_interval_s, s.mean_error_pct, s.std_dev_s, s.p95_s, s.max_s
        );
        for (_, r) in &s.recovery_blocks {
            let cell = r.map_or("never".to_string(), |b| format!("{b} blocks"));
            let _ = write!(out, " {cell:>13}");
        }
        out.push('\n');
    }
    out
}

/// Writes every run's blocks as CSV: `algorithm,height,time_s,interval_s,hashrate_hs,difficulty,bits`.
pub fn write_csv(runs: &[SimRun], path: &Path) -> std::io::Result<()> {
    let mut out = String::from("algorithm,height,time_s,interval_s,hashrate_hs,difficulty,bits\n");
    for run in runs {
        for b in &run.blocks {
            let _ = writeln!(
                out,
                "{},{},{:.3},{:.3},{},{},{}",
                run.algorithm.name(),
                b.height,
                b.time_s,
                b.interval_s,
                b.hashrate_hs,
                b.difficulty,
                b.bits
            );
        }
    }
    std::fs::write(path, out)
}
