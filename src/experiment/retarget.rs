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
    pub algorithms: Vec<Algorithm>,
    /// Target interval, seconds.
    pub spacing: i64,
    pub blocks: u64,
    pub profile: Profile,
    pub seed: u64,
    pub pow_limit: Target,
}

/// One simulated block.
#[derive(Clone, Debug, Serialize)]
pub struct SimBlock {
    pub height: u64,
    /// Seconds since the start (real, not rounded to the header's whole seconds).
    pub time_s: f64,
    pub interval_s: f64,
    pub hashrate_hs: f64,
    /// D of the block's nBits.
    pub difficulty: f64,
    pub bits: String,
}

/// One controller's run.
#[derive(Clone, Debug)]
pub struct SimRun {
    pub algorithm: Algorithm,
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
    pub algorithm: String,
    pub mean_interval_s: f64,
    /// `(mean - T) / T`, percent.
    pub mean_error_pct: f64,
    pub std_dev_s: f64,
    pub p95_s: f64,
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

/// Formats `v` with an SI prefix and at most three significant digits: `600 M`, `6 G`, `1.5 k`.
pub fn si(v: f64) -> String {
    let prefixes = [
        (1e12, " T"),
        (1e9, " G"),
        (1e6, " M"),
        (1e3, " k"),
        (1.0, " "),
    ];
    let (scale, prefix) = prefixes
        .iter()
        .copied()
        .find(|&(p, _)| v.abs() >= p * 0.9995)
        .unwrap_or((1.0, " "));
    let x = v / scale;
    let digits = if x >= 99.95 {
        0
    } else if x >= 9.995 {
        1
    } else {
        2
    };
    let mut text = format!("{x:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{prefix}").trim_end().to_string()
}

/// Tick values for a log axis over `lo..hi`: every `levels` value in range (where the run sits,
/// so those are always labelled), then 1, 2 and 5 times the powers of ten that are not within a
/// factor 1.5 of a tick already chosen (so no two labels collide or repeat).
pub fn log_ticks(lo: f64, hi: f64, levels: &[f64]) -> Vec<f64> {
    let mut ticks: Vec<f64> = Vec::new();
    let far = |ticks: &[f64], v: f64| ticks.iter().all(|t| (v / t).log10().abs() >= 0.176);
    for &v in levels {
        if v >= lo && v <= hi && far(&ticks, v) {
            ticks.push(v);
        }
    }
    if lo > 0.0 && hi > lo {
        let mut k = lo.log10().floor() as i32;
        while 10f64.powi(k) <= hi {
            for m in [1.0, 2.0, 5.0] {
                let v = m * 10f64.powi(k);
                if v >= lo && v <= hi && far(&ticks, v) {
                    ticks.push(v);
                }
            }
            k += 1;
        }
    }
    ticks.sort_by(f64::total_cmp);
    ticks
}

#[cfg(feature = "experiments")]
/// Line colours, one per controller (colour-blind-safe where it matters: red, blue, green).
const PALETTE: [plotters::style::RGBColor; 6] = [
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(23, 190, 207),
];

#[cfg(feature = "experiments")]
/// Draws the chart of a run as an SVG: on top, each controller's difficulty D (log scale) with
/// the ideal D (hash rate × T, the D that gives blocks every T seconds at the hash rate of the
/// moment; the right axis reads the same line as the hash rate); below, each controller's
/// 20-block mean interval against T. The y axes are labelled at the levels the run sits at (the
/// ideal D of each hash rate in the profile), the legend sits above the plots, outside the data.
pub fn write_svg(
    runs: &[SimRun],
    spacing: i64,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let (width, height) = (1200u32, 960u32);
    // Drawn in memory, then written: a file error is then the plain I/O error, not plotters'
    // "backend error: Drawing backend error: ..." around it.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let t = spacing as f64;
        let n = runs.iter().map(|r| r.blocks.len()).max().unwrap_or(1) as u64;
        let x_range = 1..n.max(2);
        let color = |i: usize| PALETTE[i % PALETTE.len()];
        let grid = BLACK.mix(0.12);
        let left = 100u32;
        let right = 110u32;
        let font = |size: u32| ("sans-serif", size).into_font();

        // Title and legend strip.
        let (head, body) = root.split_vertically(78);
        head.draw(&Text::new(
        format!("retarget-sim: difficulty controllers under a hash-rate profile (T = {spacing} s, {n} blocks)"),
        (width as i32 / 2, 18),
        font(20).into_text_style(&head).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
        let mut entries: Vec<(String, RGBColor, u32)> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.algorithm.to_string(), color(i), 2))
            .collect();
        entries.push((
            "ideal D = hash rate × T (right axis: the hash rate)".to_string(),
            BLACK,
            2,
        ));
        let label_style = font(14).into_text_style(&head);
        let mut x = left as i32;
        let mut y = 46;
        for (label, c, w) in &entries {
            let (tw, _) = head.estimate_text_size(label, &label_style)?;
            if x + 36 + tw as i32 > (width - right) as i32 && x > left as i32 {
                x = left as i32;
                y += 20;
            }
            head.draw(&PathElement::new(
                vec![(x, y), (x + 28, y)],
                c.stroke_width(*w),
            ))?;
            head.draw(&Text::new(
                label.clone(),
                (x + 34, y),
                label_style.pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += 34 + tw as i32 + 28;
        }

        let (top, bottom) = body.split_vertically(500);

        // Difficulty, log scale, with the ideal D.
        let ideal: Vec<(u64, f64)> = runs
            .first()
            .map(|r| {
                r.blocks
                    .iter()
                    .map(|b| (b.height, b.hashrate_hs * t))
                    .collect()
            })
            .unwrap_or_default();
        let all_d = runs
            .iter()
            .flat_map(|r| r.blocks.iter().map(|b| b.difficulty))
            .chain(ideal.iter().map(|p| p.1));
        let (d_min, d_max) = all_d.fold((f64::INFINITY, 0.0f64), |(lo, hi), d| {
            (lo.min(d), hi.max(d))
        });
        let (d_min, d_max) = if d_min.is_finite() && d_max > 0.0 {
            (d_min.max(1.0), d_max.max(d_min.max(1.0) * 2.0))
        } else {
            (1.0, 10.0)
        };
        let (lo, hi) = (d_min / 1.4, d_max * 1.4);
        let mut chart = ChartBuilder::on(&top)
            .caption("difficulty D over height", font(17))
            .margin_top(4)
            .margin_bottom(4)
            .x_label_area_size(44)
            .y_label_area_size(left)
            .right_y_label_area_size(right)
            .build_cartesian_2d(x_range.clone(), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(1)
            .y_label_formatter(&|_| String::new())
            .light_line_style(TRANSPARENT)
            .bold_line_style(grid)
            .x_desc("height (blocks)")
            .label_style(font(13))
            .axis_desc_style(font(14))
            .draw()?;
        let mut levels: Vec<f64> = Vec::new();
        for &(_, d) in &ideal {
            if !levels.iter().any(|&l| (l / d - 1.0).abs() < 1e-9) {
                levels.push(d);
            }
        }
        let ticks = log_ticks(lo, hi, &levels);
        let (x0, x1) = (1u64, n.max(2));
        for &v in &ticks {
            chart.draw_series(LineSeries::new([(x0, v), (x1, v)], grid.stroke_width(1)))?;
            let (px_left, py) = chart.backend_coord(&(x0, v));
            let (px_right, _) = chart.backend_coord(&(x1, v));
            let strong = levels.iter().any(|&l| (l / v - 1.0).abs() < 1e-9);
            let style = if strong {
                font(13).style(FontStyle::Bold)
            } else {
                font(13)
            };
            root.draw(&Text::new(
                si(v),
                (px_left - 6, py),
                style
                    .clone()
                    .into_text_style(&root)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            root.draw(&Text::new(
                {
                    let rate = si(v / t);
                    if rate.ends_with(char::is_alphabetic) {
                        format!("{rate}H/s")
                    } else {
                        format!("{rate} H/s")
                    }
                },
                (px_right + 6, py),
                style
                    .into_text_style(&root)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            root.draw(&PathElement::new(
                vec![(px_left - 4, py), (px_left, py)],
                BLACK,
            ))?;
            root.draw(&PathElement::new(
                vec![(px_right, py), (px_right + 4, py)],
                BLACK,
            ))?;
        }
        let mid_y = (chart.backend_coord(&(x0, lo)).1 + chart.backend_coord(&(x0, hi)).1) / 2;
        let (px_l, _) = chart.backend_coord(&(x0, lo));
        let (px_r, _) = chart.backend_coord(&(x1, lo));
        root.draw(&Text::new(
            "D (expected hashes per block)",
            (px_l - 78, mid_y),
            font(14)
                .transform(FontTransform::Rotate270)
                .into_text_style(&root)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        root.draw(&Text::new(
            "hash rate (ideal D / T)",
            (px_r + 92, mid_y),
            font(14)
                .transform(FontTransform::Rotate90)
                .into_text_style(&root)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        // The ideal first, so the controllers' lines stay readable where the on/off miner makes it
        // a comb.
        chart.draw_series(LineSeries::new(
            ideal.iter().copied(),
            BLACK.mix(0.8).stroke_width(2),
        ))?;
        for (i, run) in runs.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                run.blocks.iter().map(|b| (b.height, b.difficulty)),
                color(i).mix(0.9).stroke_width(1),
            ))?;
        }

        // The 20-block mean interval against T.
        let w = RECOVERY_WINDOW as usize;
        let smoothed: Vec<Vec<(u64, f64)>> = runs
            .iter()
            .map(|r| {
                r.blocks
                    .windows(w)
                    .map(|win| {
                        (
                            win[w - 1].height,
                            win.iter().map(|b| b.interval_s).sum::<f64>() / w as f64,
                        )
                    })
                    .collect()
            })
            .collect();
        let i_max = smoothed
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(t * 2.0, f64::max);
        let mut chart = ChartBuilder::on(&bottom)
            .caption(
                format!(
                "block interval over height ({w}-block mean; the black line is T = {spacing} s)"
            ),
                font(17),
            )
            .margin_top(4)
            .margin_bottom(8)
            .x_label_area_size(44)
            .y_label_area_size(left)
            .right_y_label_area_size(right)
            .build_cartesian_2d(x_range, 0.0..i_max * 1.05)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(grid)
            .y_labels(8)
            .x_desc("height (blocks)")
            .y_desc("seconds")
            .label_style(font(13))
            .axis_desc_style(font(14))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(x0, t), (x1, t)],
            BLACK.mix(0.8).stroke_width(2),
        ))?;
        for (i, points) in smoothed.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color(i).mix(0.9).stroke_width(1),
            ))?;
        }
        root.present()?;
    }
    std::fs::write(path, svg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_keeps_three_digits_and_the_prefix() {
        assert_eq!(si(6e8), "600 M");
        assert_eq!(si(6e9), "6 G");
        assert_eq!(si(1.6667e6), "1.67 M");
        assert_eq!(si(1e10), "10 G");
        assert_eq!(si(2.5e3), "2.5 k");
        assert_eq!(si(500.0), "500");
    }

    #[test]
    fn log_ticks_label_the_levels_and_never_repeat() {
        // The README's run: 1 MH/s and 10 MH/s at T = 600 s sit at 600 M and 6 G.
        let ticks = log_ticks(4.3e8, 8.4e9, &[6e8, 6e9]);
        assert!(ticks.contains(&6e8) && ticks.contains(&6e9), "{ticks:?}");
        // 5 G is too close to the 6 G level to get its own label; 1 G and 2 G are not.
        assert!(!ticks.contains(&5e9), "{ticks:?}");
        assert!(ticks.contains(&1e9) && ticks.contains(&2e9), "{ticks:?}");
        let labels: Vec<String> = ticks.iter().map(|&t| si(t)).collect();
        let mut unique = labels.clone();
        unique.dedup();
        assert_eq!(labels, unique, "a label printed twice");
        assert!(ticks.windows(2).all(|w| w[1] / w[0] >= 1.5), "{ticks:?}");
    }

    #[test]
    #[cfg(feature = "experiments")]
    fn the_chart_labels_the_levels_and_draws_the_ideal() {
        let blocks = 400;
        let cfg = SimConfig {
            algorithms: vec![Algorithm::Lwma { window: 45 }],
            spacing: 600,
            blocks,
            profile: Profile::parse("1M,10M@200", blocks).expect("a valid profile"),
            seed: 1,
            pow_limit: crate::chain::ChainParams::regtest().pow_limit,
        };
        let runs = simulate(&cfg);
        let path = std::env::temp_dir().join(format!("miner-sim-chart-{}.svg", std::process::id()));
        write_svg(&runs, cfg.spacing, &path).expect("the chart is drawn");
        let svg = std::fs::read_to_string(&path).expect("the chart was written");
        std::fs::remove_file(&path).expect("remove the chart");
        for label in [
            "600 M",
            "6 G",
            "1 MH/s",
            "10 MH/s",
            "ideal D = hash rate",
            "lwma (N = 45)",
        ] {
            assert!(svg.contains(label), "no '{label}' in the chart");
        }
    }
}
