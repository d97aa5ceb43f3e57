//! `miner experiment double-spend`: the attacker's race against z confirmations, beside
//! Nakamoto's figure and the exact one.

use super::{or, progress, race_depths, race_trials, Common, Report};
use crate::cli::args::{positive, share};
use clap::Args;
use miner::experiment::chart::{line_chart, Series};
use miner::experiment::{race, stats, theory};
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub(super) struct DoubleSpendArgs {
    /// Attacker shares of the hash rate, comma-separated, each in (0, 1) [default: 0.1,0.3
    /// (sim), 0.3 (live)].
    #[arg(long, value_name = "Q[,Q...]", value_delimiter = ',', value_parser = share)]
    attacker: Vec<f64>,
    /// Confirmations the merchant waits for (the payment's block counted), comma-separated
    /// [default: 1,2,3,4,5,6 (sim), 1,2 (live)].
    #[arg(long, value_name = "Z[,Z...]", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1000))]
    confirmations: Vec<u32>,
    /// Races per (q, z) [default: 100000 (sim), 20 (live)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    trials: Option<u64>,
    /// The attacker gives up once it is this many blocks behind after the merchant accepted
    /// [default: never in sim, where a race is cut off only when its remaining chance is below
    /// 1e-12; 5 in live, which must end its races].
    #[arg(long, value_name = "BLOCKS", value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) give_up: Option<u32>,
    /// Mean block interval in seconds: turns the attack's length in blocks into time (sim), the
    /// live network's block time (live) [default: 600 (sim), 0.5 (live)].
    #[arg(long, value_name = "S", value_parser = positive)]
    block_time: Option<f64>,
    #[command(flatten)]
    pub(super) common: Common,
}

impl DoubleSpendArgs {
    pub(super) fn attacker(&self) -> Vec<f64> {
        or(&self.attacker, self.common.live(), &[0.1, 0.3], &[0.3])
    }
    pub(super) fn confirmations(&self) -> Vec<u32> {
        race_depths(&self.confirmations, self.common.live())
    }
    pub(super) fn trials(&self) -> u64 {
        race_trials(self.trials, self.common.live())
    }
    pub(super) fn block_time(&self) -> f64 {
        self.block_time
            .unwrap_or(if self.common.live() { 0.5 } else { 600.0 })
    }
}

pub(super) fn double_spend(a: &DoubleSpendArgs) -> Report {
    let mut rows = Vec::new();
    let mut blocks = 0;
    for q in a.attacker() {
        for z in a.confirmations() {
            let r = race::race(&race::RaceParams {
                q,
                z,
                premine: true,
                give_up: a.give_up,
                trials: a.trials(),
                seed: a.common.out.seed,
            });
            blocks += r.blocks;
            let p = r.successes as f64 / r.trials.max(1) as f64;
            let (lo, hi) = stats::wilson95(r.successes, r.trials);
            let (nakamoto, exact) = (theory::nakamoto(q, z), theory::exact(q, z));
            progress(&format!(
                "q {q} z {z}: {} of {} attacks succeeded",
                r.successes, r.trials
            ));
            rows.push(json!({
                "q": q,
                "z": z,
                "p": p,
                "ci95": [lo, hi],
                "trials": r.trials,
                "successes": r.successes,
                "nakamoto": nakamoto,
                "exact": exact,
                "exact_over_nakamoto": if nakamoto > 0.0 { exact / nakamoto } else { f64::NAN },
                "mean_blocks_to_success": r.mean_blocks_to_success,
                "mean_attack_s": r.mean_blocks_to_success * a.block_time(),
                "cut_off": r.cut_off,
                "give_up": a.give_up,
            }));
        }
    }
    let svg = plot_by_q(&rows, "z", "confirmations z", &["nakamoto", "exact"]);
    Report {
        footer: None,
        kind: "double-spend",
        columns: vec![
            "q",
            "z",
            "p",
            "ci95",
            "trials",
            "nakamoto",
            "exact",
            "exact_over_nakamoto",
            "mean_attack_s",
        ],
        rows,
        extra: vec![("block_time_s", json!(a.block_time()))],
        notes: vec![
            "p: measured success; nakamoto: Nakamoto 2008 §11 (Poisson: above the exact figure for small z, below it after: from z = 2 at q = 0.1, from z = 8 at q = 0.4); exact: Rosenfeld 2014 / Grunspan & Pérez-Marco 2017, I_4pq(z, 1/2)".into(),
            format!("mean_attack_s: blocks from the race start to a successful publication × {} s", a.block_time()),
        ],
        svg: Some(svg),
        blocks,
    }
}

/// A log-scale chart of p against `x` for each q: measured points with their intervals, and
/// the reference curves named in `refs`.
pub(super) fn plot_by_q(rows: &[Value], x: &str, xlabel: &str, refs: &[&str]) -> String {
    let mut series: Vec<Series> = Vec::new();
    let mut qs: Vec<f64> = rows.iter().filter_map(|r| r["q"].as_f64()).collect();
    qs.dedup();
    let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    for (i, q) in qs.iter().enumerate() {
        let of_q: Vec<&Value> = rows
            .iter()
            .filter(|r| r["q"].as_f64() == Some(*q))
            .collect();
        let colour = colours[i % colours.len()];
        let point = |r: &&Value, key: &str| Some((r[x].as_f64()?, r[key].as_f64()?));
        series.push(Series {
            label: format!("measured, q = {q}"),
            colour,
            dashed: false,
            points: of_q.iter().filter_map(|r| point(r, "p")).collect(),
            bars: of_q
                .iter()
                .filter_map(|r| {
                    Some((
                        r[x].as_f64()?,
                        r["ci95"][0].as_f64()?,
                        r["ci95"][1].as_f64()?,
                    ))
                })
                .collect(),
        });
        for (j, key) in refs.iter().enumerate() {
            series.push(Series {
                label: format!("{key}, q = {q}"),
                colour,
                dashed: j == 0 && refs.len() > 1,
                points: of_q.iter().filter_map(|r| point(r, key)).collect(),
                bars: Vec::new(),
            });
        }
    }
    line_chart(&series, xlabel, "probability", true)
}
