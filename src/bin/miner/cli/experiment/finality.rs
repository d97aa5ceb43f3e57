//! `miner experiment finality`: the chance that a block k deep is ever reorganised away.

use super::double_spend::plot_by_q;
use super::{or, progress, race_depths, race_trials, Common, Report};
use crate::cli::args::{positive, share};
use clap::Args;
use miner::experiment::{race, stats, theory};
use serde_json::json;

#[derive(Args, Debug)]
pub(super) struct FinalityArgs {
    /// Attacker shares of the hash rate, comma-separated, each in (0, 1) [default: 0.1 (sim),
    /// 0.3 (live)].
    #[arg(long, value_name = "Q[,Q...]", value_delimiter = ',', value_parser = share)]
    attacker: Vec<f64>,
    /// Depths k, comma-separated [default: 1,2,3,4,5,6 (sim), 1,2 (live)].
    #[arg(long, value_name = "K[,K...]", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1000))]
    depth: Vec<u32>,
    /// Races per (q, k) [default: 100000 (sim), 20 (live)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    trials: Option<u64>,
    /// The attacker gives up once it is this many blocks behind after the block is k deep
    /// [default: never in sim; 5 in live].
    #[arg(long, value_name = "BLOCKS", value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) give_up: Option<u32>,
    /// Live: the network's mean block interval in seconds [default: 0.5].
    #[arg(long, value_name = "S", value_parser = positive)]
    pub(super) block_time: Option<f64>,
    #[command(flatten)]
    pub(super) common: Common,
}

impl FinalityArgs {
    pub(super) fn attacker(&self) -> Vec<f64> {
        or(&self.attacker, self.common.live(), &[0.1], &[0.3])
    }
    pub(super) fn depth(&self) -> Vec<u32> {
        race_depths(&self.depth, self.common.live())
    }
    pub(super) fn trials(&self) -> u64 {
        race_trials(self.trials, self.common.live())
    }
}

pub(super) fn finality(a: &FinalityArgs) -> Report {
    let mut rows = Vec::new();
    let mut blocks = 0;
    for q in a.attacker() {
        for k in a.depth() {
            let r = race::race(&race::RaceParams {
                q,
                z: k,
                premine: false,
                give_up: a.give_up,
                trials: a.trials(),
                seed: a.common.out.seed,
            });
            blocks += r.blocks;
            let (lo, hi) = stats::wilson95(r.successes, r.trials);
            progress(&format!(
                "q {q} depth {k}: reorganised away in {} of {}",
                r.successes, r.trials
            ));
            rows.push(json!({
                "q": q,
                "depth": k,
                "p": r.successes as f64 / r.trials.max(1) as f64,
                "ci95": [lo, hi],
                "trials": r.trials,
                "successes": r.successes,
                "theory": theory::finality(q, k),
            }));
        }
    }
    let svg = plot_by_q(&rows, "depth", "depth k", &["theory"]);
    Report {
        footer: None,
        kind: "finality",
        columns: vec!["q", "depth", "p", "ci95", "trials", "theory"],
        rows,
        extra: Vec::new(),
        notes: vec!["theory: Σ_m C(m+k−1, m) p^k q^m min(1, (q/p)^(k−m+1)), the negative-binomial race with no pre-mined block".into()],
        svg: Some(svg),
        blocks,
    }
}
