//! `miner experiment selfish`: Eyal & Sirer's selfish mining, the pool's revenue beside their
//! closed form.

use super::{or, progress, Common, Report};
use crate::cli::args::{non_negative, pool_share, positive, unit};
use anyhow::Result;
use clap::Args;
use miner::experiment::chart::{line_chart, Series};
use miner::experiment::{selfish, theory};
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub(super) struct SelfishArgs {
    /// Selfish pool shares α, comma-separated, each in (0, 0.5), ascending for the threshold
    /// [default: 0.2,0.25,0.3,0.35,0.4,0.45 (sim), 0.35 (live)].
    #[arg(long, value_name = "A[,A...]", value_delimiter = ',', value_parser = pool_share)]
    alpha: Vec<f64>,
    /// γ: the share of honest miners that mine on the pool's block during a tie, each in [0, 1]
    /// (live: rounded to whole honest nodes, at most (N−1)/N) [default: 0,0.5].
    #[arg(long, value_name = "G[,G...]", value_delimiter = ',', default_values_t = [0.0, 0.5], value_parser = unit)]
    pub(super) gamma: Vec<f64>,
    /// Blocks per (α, γ) [default: 200000 (sim), 100 (live)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(10..=1_000_000_000))]
    blocks: Option<u64>,
    /// Live: honest nodes, each mining an equal part of 1 − α.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=32))]
    pub(super) honest_nodes: u64,
    /// Live: the honest nodes' --relay-delay in ms; the pool's block must reach the γ-nodes
    /// before the honest one does, so keep it well above a few milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100.0, value_parser = non_negative)]
    pub(super) relay_delay: f64,
    /// Live: the network's mean block interval in seconds [default: 1].
    #[arg(long, value_name = "S", value_parser = positive)]
    pub(super) block_time: Option<f64>,
    #[command(flatten)]
    pub(super) common: Common,
}

impl SelfishArgs {
    pub(super) fn alpha(&self) -> Vec<f64> {
        or(
            &self.alpha,
            self.common.live(),
            &[0.2, 0.25, 0.3, 0.35, 0.4, 0.45],
            &[0.35],
        )
    }
    pub(super) fn blocks(&self) -> u64 {
        self.blocks
            .unwrap_or(if self.common.live() { 100 } else { 200_000 })
    }
}

pub(super) fn selfish_run(a: &SelfishArgs) -> Result<Report> {
    let mut rows = Vec::new();
    let mut blocks = 0;
    let mut thresholds = Vec::new();
    for &gamma in &a.gamma {
        let mut curve = Vec::new();
        for alpha in a.alpha() {
            let params = selfish::SelfishParams {
                alpha,
                gamma,
                blocks: a.blocks(),
                seed: a.common.out.seed,
            };
            params
                .check()
                .map_err(|e| anyhow::anyhow!("--alpha {alpha} --gamma {gamma}: {e}"))?;
            let r = selfish::run(&params);
            blocks += r.blocks;
            progress(&format!(
                "alpha {alpha} gamma {gamma}: revenue {:.4}",
                r.revenue
            ));
            curve.push((alpha, r.revenue));
            rows.push(json!({
                "alpha": alpha,
                "gamma": gamma,
                "revenue": r.revenue,
                "ci95": [r.ci95.0, r.ci95.1],
                "theory": theory::selfish_revenue(alpha, gamma),
                "main_chain": r.main_chain,
                "pool_blocks": r.pool_blocks,
                "blocks": r.blocks,
            }));
        }
        // Where the measured revenue crosses α: linear between the neighbouring points.
        let found = curve.windows(2).find_map(|w| {
            let (a0, r0) = w[0];
            let (a1, r1) = w[1];
            let (d0, d1) = (r0 - a0, r1 - a1);
            (d0 <= 0.0 && d1 > 0.0).then(|| a0 + (a1 - a0) * (-d0) / (d1 - d0))
        });
        thresholds.push(json!({
            "gamma": gamma,
            "found": found,
            "theory": theory::selfish_threshold(gamma),
        }));
    }
    let svg = plot_selfish(&rows);
    Ok(Report {
        footer: None,
        kind: "selfish",
        columns: vec!["alpha", "gamma", "revenue", "ci95", "theory"],
        rows,
        extra: vec![("thresholds", Value::Array(thresholds))],
        notes: vec![
            "theory: Eyal & Sirer 2014, (α(1−α)²(4α+γ(1−2α)) − α³) / (1 − α(1+(2−α)α)); threshold (1−γ)/(3−2γ), found where the measured revenue crosses α (linear between neighbouring α)".into(),
            "ci95: a ratio estimate over the independent cycles between the pool's returns to no lead".into(),
        ],
        svg: Some(svg),
        blocks,
    })
}

pub(super) fn plot_selfish(rows: &[Value]) -> String {
    let mut series: Vec<Series> = Vec::new();
    let mut gammas: Vec<f64> = rows.iter().filter_map(|r| r["gamma"].as_f64()).collect();
    gammas.sort_by(f64::total_cmp);
    gammas.dedup();
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    for (i, g) in gammas.iter().enumerate() {
        let of_g: Vec<&Value> = rows
            .iter()
            .filter(|r| r["gamma"].as_f64() == Some(*g))
            .collect();
        let colour = colours[i % colours.len()];
        let point = |r: &&Value, key: &str| Some((r["alpha"].as_f64()?, r[key].as_f64()?));
        series.push(Series {
            label: format!("measured, γ = {g}"),
            colour,
            dashed: false,
            points: of_g.iter().filter_map(|r| point(r, "revenue")).collect(),
            bars: of_g
                .iter()
                .filter_map(|r| {
                    Some((
                        r["alpha"].as_f64()?,
                        r["ci95"][0].as_f64()?,
                        r["ci95"][1].as_f64()?,
                    ))
                })
                .collect(),
        });
        series.push(Series {
            label: format!("Eyal & Sirer, γ = {g}"),
            colour,
            dashed: true,
            points: of_g.iter().filter_map(|r| point(r, "theory")).collect(),
            bars: Vec::new(),
        });
    }
    let alphas: Vec<f64> = rows.iter().filter_map(|r| r["alpha"].as_f64()).collect();
    series.push(Series {
        label: "honest share (revenue = α)".into(),
        colour: "#7f7f7f",
        dashed: true,
        points: alphas.iter().map(|a| (*a, *a)).collect(),
        bars: Vec::new(),
    });
    line_chart(
        &series,
        "pool share α",
        "pool's share of the main chain",
        false,
    )
}
