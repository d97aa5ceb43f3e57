//! `miner experiment dpos`: delegated proof of stake, time to irreversibility.

use super::stake::Stake;
use super::{Output, Report};
use crate::cli::args::{positive, unit};
use anyhow::{Context, Result};
use clap::Args;
use miner::experiment::chart::{line_chart, Series};
use miner::experiment::{dpos, pos};
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub(super) struct DposArgs {
    #[command(flatten)]
    stake: Stake,
    /// Delegates elected, N, comma-separated (the seed's examples: EOS and Steemit 21, Ark 51,
    /// BitShares and Lisk 101).
    #[arg(long, value_name = "N[,N...]", value_delimiter = ',', default_values_t = [21, 51, 101])]
    delegates: Vec<usize>,
    /// Shares of the delegates offline from the start, comma-separated, each in [0, 1].
    #[arg(long, value_name = "S[,S...]", value_delimiter = ',', default_values_t = [0.0, 0.1, 0.2, 0.3, 0.4], value_parser = unit)]
    offline: Vec<f64>,
    /// Seconds per production slot.
    #[arg(long, value_name = "S", default_value_t = 0.5, value_parser = positive)]
    slot_time: f64,
    /// Production rounds (N slots each).
    #[arg(long, value_name = "R", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rounds: u64,
    /// Chance that an online delegate misses its slot anyway.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = unit)]
    miss_probability: f64,
    /// Holders withdraw their votes from a delegate that missed more than this share of its
    /// slots in a round and give them to the best candidate outside (1: never, so offline
    /// delegates stay and the table shows what they cost).
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = unit)]
    vote_out: f64,
    /// Main-chain blocks of the PoS run on the same allocation, for its concentration figures
    /// (0: skip it).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pos_blocks: u64,
    /// Candidates each holder approves with its stake.
    #[arg(long, value_name = "K", default_value_t = 30)]
    votes_per_holder: usize,
    /// Transactions per block.
    #[arg(long, value_name = "N", default_value_t = 100)]
    txs_per_block: u32,
    #[command(flatten)]
    pub(super) out: Output,
}

pub(super) fn dpos(a: &DposArgs) -> Result<Report> {
    let accounts = a.stake.accounts(a.out.seed, 300)?;
    let mut rows = Vec::new();
    for &n in &a.delegates {
        for &offline in &a.offline {
            let p = dpos::DposParams {
                slot_time_s: a.slot_time,
                rounds: a.rounds,
                offline_share: offline,
                miss_probability: a.miss_probability,
                vote_out_missed_share: a.vote_out,
                votes_per_holder: a.votes_per_holder,
                txs_per_block: a.txs_per_block,
                seed: a.out.seed,
                ..dpos::DposParams::new(accounts.clone(), n)
            };
            let r = dpos::run(&p).with_context(|| format!("dpos with {n} delegates"))?;
            eprintln!(
                "{n} delegates, {:.0}% offline: {} blocks, {} irreversible",
                offline * 100.0,
                r.blocks,
                r.irreversible_blocks
            );
            rows.push(json!({
                "delegates": n,
                "offline_share": offline,
                "offline": r.offline.len(),
                "confirmations_needed": r.confirmations_needed,
                "blocks": r.blocks,
                "missed_share": r.missed_share,
                "irreversible_blocks": r.irreversible_blocks,
                "irreversible_mean_s": r.irreversible_mean_s,
                "irreversible_p50_s": r.irreversible_p50_s,
                "irreversible_p99_s": r.irreversible_p99_s,
                "voted_out": r.voted_out.len(),
                "rounds_to_recover": r.rounds_to_recover,
                "blocks_per_s": r.blocks_per_s,
                "tx_per_s": r.txs_per_s,
                "blocks_gini": r.blocks_gini_all,
                "blocks_nakamoto": r.blocks_nakamoto_majority,
                "blocks_nakamoto_third": r.blocks_nakamoto_third,
                "stake_gini": r.stake_gini,
                "stake_nakamoto": r.stake_nakamoto_majority,
            }));
        }
    }
    // PoS on the same allocation: how concentrated its block production is.
    let mut extra = vec![("slot_time_s", json!(a.slot_time))];
    let mut notes = Vec::new();
    if a.pos_blocks > 0 {
        let p = pos::PosParams {
            blocks: a.pos_blocks.max(10),
            seed: a.out.seed,
            pow_hashrate_hs: 1.0,
            ..pos::PosParams::new(accounts.clone())
        };
        eprintln!(
            "PoS on the same {} accounts: {} blocks",
            accounts.len(),
            p.blocks
        );
        let r = pos::run(&p).context("pos on the same allocation")?;
        for row in &mut rows {
            row["pos_blocks_gini"] = json!(r.blocks_gini);
            row["pos_blocks_nakamoto"] = json!(r.blocks_nakamoto_majority);
        }
        notes.push(format!(
            "PoS on the same allocation ({} blocks): blocks gini {:.4}, Nakamoto coefficient {} (stake: {:.4}, {})",
            r.blocks, r.blocks_gini, r.blocks_nakamoto_majority, r.stake_gini, r.stake_nakamoto_majority
        ));
        extra.push((
            "pos",
            json!({
                "blocks": r.blocks,
                "blocks_gini": r.blocks_gini,
                "blocks_nakamoto": r.blocks_nakamoto_majority,
                "stake_gini": r.stake_gini,
                "stake_nakamoto": r.stake_nakamoto_majority,
            }),
        ));
    }
    let svg = plot_irreversibility(&rows);
    let blocks: u64 = rows.iter().filter_map(|r| r["blocks"].as_u64()).sum();
    Ok(Report {
        kind: "dpos",
        columns: vec![
            "delegates",
            "offline_share",
            "missed_share",
            "irreversible_p50_s",
            "irreversible_p99_s",
            "voted_out",
            "rounds_to_recover",
            "blocks_per_s",
            "tx_per_s",
            "blocks_gini",
            "blocks_nakamoto",
            "pos_blocks_gini",
            "pos_blocks_nakamoto",
        ],
        rows,
        extra,
        notes: [vec![
            format!("irreversible: a block once ⌊2N/3⌋ + 1 distinct delegates have built on it (EOS); slot {} s; '-' where no block became irreversible (more than a third offline and not yet voted out)", a.slot_time),
            "voted_out: delegates whose holders withdrew their votes after missed slots; rounds_to_recover: rounds until the missed-slot rate fell back".into(),
            "blocks_gini / blocks_nakamoto: concentration of block production over all accounts (nakamoto: fewest producers with over half the blocks); pos_*: the same for PoS on the same allocation".into(),
        ], notes].concat(),
        svg: Some(svg),
        blocks,
        footer: Some(format!("{blocks} DPoS blocks produced")),
    })
}

/// Median time to irreversibility against the offline share, one line per N.
fn plot_irreversibility(rows: &[Value]) -> String {
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let mut ns: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["delegates"].as_u64())
        .collect();
    ns.dedup();
    let series: Vec<Series> = ns
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // (offline share, p50, p99) of the rows of N where a block became irreversible.
            let bars: Vec<(f64, f64, f64)> = rows
                .iter()
                .filter(|r| r["delegates"].as_u64() == Some(*n))
                .filter_map(|r| {
                    Some((
                        r["offline_share"].as_f64()?,
                        r["irreversible_p50_s"].as_f64()?,
                        r["irreversible_p99_s"].as_f64()?,
                    ))
                })
                .collect();
            Series {
                label: format!("N = {n}: p50, bar to p99"),
                colour: colours[i % colours.len()],
                dashed: false,
                points: bars.iter().map(|b| (b.0, b.1)).collect(),
                bars,
            }
        })
        .collect();
    line_chart(
        &series,
        "share of delegates offline",
        "seconds to irreversibility",
        false,
    )
}
