//! `miner experiment forks`: stale blocks and reorgs from propagation delay, and the branch
//! diagram of a short run.

use super::{or, progress, Common, Report};
use crate::cli::args::{non_negative, positive};
use anyhow::{bail, Result};
use clap::Args;
use miner::experiment::chart::fork_diagram;
use miner::experiment::{forks, theory};
use serde_json::json;

#[derive(Args, Debug)]
pub(super) struct ForksArgs {
    /// Miners (nodes), equal shares unless --shares [default: 10 (sim), 3 (live)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=1000))]
    nodes: Option<u64>,
    /// Hash shares per node, comma-separated (normalised to sum 1); overrides --nodes.
    #[arg(long, value_name = "S[,S...]", value_delimiter = ',', value_parser = positive)]
    shares: Vec<f64>,
    /// Propagation delays in milliseconds, comma-separated [default: 0,1000,5000,20000 (sim),
    /// 0,100,300 (live, where it is each node's --relay-delay)].
    #[arg(long, value_name = "MS[,MS...]", value_delimiter = ',', value_parser = non_negative)]
    delay: Vec<f64>,
    /// Mean block interval T in seconds [default: 600 (sim), 1 (live)].
    #[arg(long, value_name = "S", value_parser = positive)]
    block_time: Option<f64>,
    /// Blocks per delay [default: 100000 (sim), 60 (live)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(10..=1_000_000_000))]
    blocks: Option<u64>,
    /// Blocks drawn in the --svg branch diagram (a short run at the largest delay).
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = clap::value_parser!(u64).range(2..=2000))]
    diagram_blocks: u64,
    #[command(flatten)]
    pub(super) common: Common,
}

impl ForksArgs {
    fn nodes(&self) -> u64 {
        self.nodes
            .unwrap_or(if self.common.live() { 3 } else { 10 })
    }
    pub(super) fn delay(&self) -> Vec<f64> {
        or(
            &self.delay,
            self.common.live(),
            &[0.0, 1000.0, 5000.0, 20000.0],
            &[0.0, 100.0, 300.0],
        )
    }
    pub(super) fn block_time(&self) -> f64 {
        self.block_time
            .unwrap_or(if self.common.live() { 1.0 } else { 600.0 })
    }
    pub(super) fn blocks(&self) -> u64 {
        self.blocks
            .unwrap_or(if self.common.live() { 60 } else { 100_000 })
    }
    /// Each miner's share, normalised.
    pub(super) fn shares(&self) -> Result<Vec<f64>> {
        let shares: Vec<f64> = if self.shares.is_empty() {
            let n = self.nodes();
            vec![1.0 / n as f64; n as usize]
        } else {
            let sum: f64 = self.shares.iter().sum();
            self.shares.iter().map(|s| s / sum).collect()
        };
        if shares.len() < 2 {
            bail!("--shares: give at least two miners' shares, e.g. --shares 0.6,0.4");
        }
        Ok(shares)
    }
}

pub(super) fn forks_run(a: &ForksArgs) -> Result<Report> {
    let shares = a.shares()?;
    let mut rows = Vec::new();
    let mut blocks = 0;
    for delay_ms in a.delay() {
        let params = forks::ForkParams {
            shares: shares.clone(),
            delay_s: delay_ms / 1000.0,
            block_time_s: a.block_time(),
            blocks: a.blocks(),
            seed: a.common.out.seed,
        };
        params.check().map_err(|e| anyhow::anyhow!("{e}"))?;
        let r = forks::run(&params, 0);
        blocks += r.blocks;
        progress(&format!(
            "delay {delay_ms} ms: {} of {} blocks stale",
            r.stale, r.blocks
        ));
        rows.push(json!({
            "delay_ms": delay_ms,
            "stale_rate": r.stale_rate(),
            "ci95": [r.ci95.0, r.ci95.1],
            "theory": theory::stale_rate(delay_ms / 1000.0, a.block_time()),
            "theory_same_miner_excluded": forks::expected_stale_rate(&params),
            "blocks": r.blocks,
            "stale": r.stale,
            "tips_agree": r.tips_agree,
            "reorgs": r.reorgs.iter().map(|(d, n)| (d.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        }));
    }
    let largest = a.delay().into_iter().fold(0.0, f64::max);
    let diagram_params = forks::ForkParams {
        shares: shares.clone(),
        delay_s: largest / 1000.0,
        block_time_s: a.block_time(),
        blocks: a.diagram_blocks,
        seed: a.common.out.seed,
    };
    let diagram = forks::run(&diagram_params, a.diagram_blocks);
    Ok(Report {
        footer: None,
        kind: "forks",
        columns: vec![
            "delay_ms",
            "stale_rate",
            "ci95",
            "theory",
            "theory_same_miner_excluded",
            "blocks",
            "stale",
        ],
        rows,
        extra: vec![
            ("nodes", json!(shares.len())),
            ("shares", json!(shares)),
            ("block_time_s", json!(a.block_time())),
        ],
        notes: vec![
            "theory: 1 − e^(−delay/T), the chance another block is found while one propagates (first order)".into(),
            "theory_same_miner_excluded: (1 − Σ share²)(1 − e^(−delay/T)): a block found meanwhile by the same miner builds on its own and is no fork".into(),
        ],
        svg: Some(fork_diagram(&diagram, &diagram_params)),
        blocks,
    })
}
