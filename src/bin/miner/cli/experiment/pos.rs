//! `miner experiment pos`: the seed's proof of stake, blocks against stake.

use super::stake::Stake;
use super::{Output, Report};
use crate::cli::args::rate;
use anyhow::{Context, Result};
use clap::Args;
use miner::backend::{Backend, CpuBackend};
use miner::experiment::chart::{line_chart, Series};
use miner::experiment::compare;
use miner::experiment::{pos, stake};
use miner::pow::retarget::{Algorithm, AlgorithmName, DEFAULT_LWMA_WINDOW};
use miner::pow::Difficulty;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub(super) struct PosArgs {
    #[command(flatten)]
    stake: Stake,
    /// Target block interval in whole seconds (each account gets one try per second).
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    block_time: u64,
    /// Main-chain blocks to make.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=10_000_000))]
    blocks: u64,
    /// The difficulty controller that retargets D toward --block-time: asert (half-life 48
    /// blocks), lwma (45 blocks), bitcoin (window 144 blocks) or fixed.
    #[arg(long, value_name = "NAME", default_value = "asert")]
    retarget: AlgorithmName,
    /// Seconds a block takes to reach the other stakers (forks when two make blocks within it).
    #[arg(long, value_name = "S", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    delay: u64,
    /// Transfers per block; their fees go to the block's maker (no new coins).
    #[arg(long, value_name = "N", default_value_t = 4)]
    txs_per_block: u32,
    /// The PoW hash rate to compare with (H/s, k/M/G/T/P/E suffixes); default: this machine's
    /// CPU rate, measured before the run with the engine's fastest kernel.
    #[arg(long, value_name = "RATE", value_parser = rate)]
    pow_hashrate: Option<f64>,
    #[command(flatten)]
    pub(super) out: Output,
}

/// The project's controllers with defaults scaled to the block time.
fn algorithm(name: AlgorithmName, block_time: u64) -> Algorithm {
    match name {
        AlgorithmName::Fixed => Algorithm::Fixed,
        AlgorithmName::Asert => pos::default_algorithm(block_time),
        AlgorithmName::Lwma => Algorithm::Lwma {
            window: DEFAULT_LWMA_WINDOW,
        },
        AlgorithmName::Bitcoin => Algorithm::Bitcoin { window: 144 },
    }
}

/// This machine's CPU hash rate: a short real mining run with the fastest kernel.
pub(super) fn measured_pow(blocks: u64, d: &Difficulty) -> Result<compare::PowMeasure> {
    let backend = CpuBackend::best().context("the CPU backend")?;
    eprintln!(
        "measuring this machine's PoW: {blocks} blocks at D = {} on {}",
        d.as_f64(),
        backend.name()
    );
    compare::measure_pow(&backend, d, blocks).context("the PoW run")
}

fn pos_params(a: &PosArgs, accounts: Vec<stake::Account>, pow_rate: f64) -> pos::PosParams {
    pos::PosParams {
        block_time_s: a.block_time,
        blocks: a.blocks,
        algorithm: algorithm(a.retarget, a.block_time),
        delay_s: a.delay,
        txs_per_block: a.txs_per_block,
        pow_hashrate_hs: pow_rate,
        seed: a.out.seed,
        ..pos::PosParams::new(accounts)
    }
}

pub(super) fn pos(a: &PosArgs) -> Result<Report> {
    let accounts = a.stake.accounts(a.out.seed, 100)?;
    let pow_rate = match a.pow_hashrate {
        Some(r) => r,
        None => measured_pow(10, &Difficulty::from_f64(4e6)?)?.hashrate_hs,
    };
    let p = pos_params(a, accounts, pow_rate);
    eprintln!(
        "proof of stake: {} accounts, {} blocks of {} s, {}",
        p.accounts.len(),
        p.blocks,
        p.block_time_s,
        p.algorithm
    );
    let r = pos::run(&p).context("pos")?;
    let row = json!({
        "accounts": r.accounts,
        "block_time_s": r.block_time_s,
        "blocks": r.blocks,
        "orphaned": r.orphaned,
        "max_reorg_depth": r.max_reorg_depth,
        "interval_mean_s": r.interval_mean_s,
        "ci95": [r.interval_ci95_s.0, r.interval_ci95_s.1],
        "interval_median_s": r.interval_median_s,
        "interval_p90_s": r.interval_p90_s,
        "chi_square": r.chi_square.statistic,
        "df": r.chi_square.df,
        "p_value": r.chi_square.p_value,
        "kernel_hashes_per_block": r.kernel_hashes_per_block,
        "expected_kernel_hashes_per_block": r.expected_kernel_hashes_per_block,
        "pow_hashrate_hs": r.pow_hashrate_hs,
        "pow_hashes_per_block": r.pow_hashes_per_block,
        "pow_to_pos": r.pow_to_pos_hash_ratio,
        "blocks_gini": r.blocks_gini,
        "stake_gini": r.stake_gini,
        "blocks_nakamoto": r.blocks_nakamoto_majority,
        "stake_nakamoto": r.stake_nakamoto_majority,
        "supply_before": r.supply_before,
        "supply_after": r.supply_after,
        "final_d": r.final_d,
    });
    let mut by_stake: Vec<&pos::PosAccount> = r.per_account.iter().collect();
    by_stake.sort_by_key(|x| std::cmp::Reverse(x.genesis_balance));
    let mut notes = vec![
        format!(
            "chi_square, df, p_value: each account's main-chain blocks against its mean share of stake (χ² test; p above 0.001: no disagreement found, a test of little power against a bias in one account); collisions (several makers in one second) {}",
            fmt_p(r.chi_square_collisions.p_value)
        ),
        format!(
            "kernel_hashes_per_block: kernel evaluations per main-chain block (one per account per second: expected {:.0}); pow_hashes_per_block: {} × {} s, the hashes PoW spends on a block at the same interval; pow_to_pos: their ratio",
            r.expected_kernel_hashes_per_block,
            crate::output::HashRate(r.pow_hashrate_hs),
            r.block_time_s
        ),
        format!(
            "supply {} before and {} after (no new coins; makers earned the {} fees); D {:.4e} at the end",
            r.supply_before, r.supply_after, r.fees_total, r.final_d
        ),
        "largest accounts (stake share → block share, blocks, fees earned):".to_string(),
    ];
    for acc in by_stake.iter().take(5) {
        notes.push(format!(
            "  {:<12} {:.4} → {:.4}  {:>6}  {}",
            acc.name, acc.mean_stake_share, acc.block_share, acc.blocks, acc.fees_earned
        ));
    }
    let accounts_json: Vec<Value> = r
        .per_account
        .iter()
        .map(|acc| serde_json::to_value(acc).unwrap_or(Value::Null))
        .collect();
    let svg = plot_shares(&r.per_account, r.blocks);
    Ok(Report {
        kind: "pos",
        columns: vec![
            "accounts",
            "blocks",
            "orphaned",
            "interval_mean_s",
            "ci95",
            "chi_square",
            "df",
            "p_value",
            "kernel_hashes_per_block",
            "pow_hashes_per_block",
            "pow_to_pos",
            "blocks_gini",
            "stake_gini",
        ],
        rows: vec![row],
        extra: vec![("per_account", Value::Array(accounts_json))],
        notes,
        svg: Some(svg),
        blocks: r.blocks_made,
        footer: Some(format!(
            "{} stake blocks made ({} on the main chain), {} kernel hashes",
            r.blocks_made, r.blocks, r.kernel_hashes
        )),
    })
}

fn fmt_p(p: f64) -> String {
    format!("p = {p:.4}")
}

/// Block share against stake share, one point per account, beside y = x.
fn plot_shares(accounts: &[pos::PosAccount], blocks: u64) -> String {
    let mut points: Vec<(f64, f64, f64, f64)> = accounts
        .iter()
        .map(|a| {
            let (lo, hi) = miner::experiment::stats::wilson95(a.blocks, blocks);
            (a.mean_stake_share, a.block_share, lo, hi)
        })
        .collect();
    points.sort_by(|x, y| x.0.total_cmp(&y.0));
    let top = points.last().map(|p| p.0.max(p.1)).unwrap_or(1.0);
    line_chart(
        &[
            Series {
                label: "measured (95% interval)".into(),
                colour: "#1f77b4",
                dashed: false,
                points: points.iter().map(|p| (p.0, p.1)).collect(),
                bars: points.iter().map(|p| (p.0, p.2, p.3)).collect(),
            },
            Series {
                label: "blocks share = stake share".into(),
                colour: "#7f7f7f",
                dashed: true,
                points: vec![(0.0, 0.0), (top, top)],
                bars: Vec::new(),
            },
        ],
        "share of stake",
        "share of main-chain blocks",
        false,
    )
}
