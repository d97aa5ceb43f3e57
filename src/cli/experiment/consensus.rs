//! `miner experiment pos|dpos|pbft|compare`: the seed's other consensus systems, each run on
//! its own rule, and the comparison with proof of work measured on this machine.

use super::{non_negative, positive, Output, Report};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use miner::backend::{Backend, CpuBackend};
use miner::experiment::chart::{line_chart, Series};
use miner::experiment::compare::{self, CompareRow};
use miner::experiment::pbft::{self, Fault, PbftParams, PbftResult};
use miner::experiment::{dpos, pos, race, stake, stats};
use miner::pow::retarget::{Algorithm, AlgorithmName, DEFAULT_LWMA_WINDOW};
use miner::pow::Difficulty;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Where the stake comes from: a genesis allocation file or a generated skewed one.
#[derive(Args, Debug)]
pub(crate) struct Stake {
    /// Accounts in the generated genesis allocation (skewed balances, from --seed); ignored
    /// with --genesis [default: 100; dpos: 300, enough for 101 delegates].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=100_000))]
    accounts: Option<u64>,
    /// A genesis allocation file: {"accounts": [{"name": "alice", "balance": 1000}, ...]}.
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,
    /// Write the genesis allocation used (generated or read) to this file.
    #[arg(long, value_name = "FILE")]
    write_genesis: Option<PathBuf>,
}

impl Stake {
    fn accounts(&self, seed: u64, default: u64) -> Result<Vec<stake::Account>> {
        let accounts = match &self.genesis {
            Some(path) => stake::load_genesis(path).context("--genesis")?,
            None => stake::default_genesis(self.accounts.unwrap_or(default) as usize, seed),
        };
        if let Some(path) = &self.write_genesis {
            stake::write_genesis(path, &accounts).context("--write-genesis")?;
        }
        Ok(accounts)
    }
}

#[derive(Args, Debug)]
pub(crate) struct PosArgs {
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

#[derive(Args, Debug)]
pub(crate) struct DposArgs {
    #[command(flatten)]
    stake: Stake,
    /// Delegates elected, N, comma-separated (the seed's examples: EOS and Steemit 21, Ark 51,
    /// BitShares and Lisk 101).
    #[arg(long, value_name = "N[,N...]", value_delimiter = ',', default_values_t = [21, 51, 101])]
    delegates: Vec<usize>,
    /// Shares of the delegates offline from the start, comma-separated, each in [0, 1].
    #[arg(long, value_name = "S[,S...]", value_delimiter = ',', default_values_t = [0.0, 0.1, 0.2, 0.3, 0.4], value_parser = super::unit)]
    offline: Vec<f64>,
    /// Seconds per production slot.
    #[arg(long, value_name = "S", default_value_t = 0.5, value_parser = positive)]
    slot_time: f64,
    /// Production rounds (N slots each).
    #[arg(long, value_name = "R", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rounds: u64,
    /// Chance that an online delegate misses its slot anyway.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = super::unit)]
    miss_probability: f64,
    /// Holders withdraw their votes from a delegate that missed more than this share of its
    /// slots in a round and give them to the best candidate outside (1: never, so offline
    /// delegates stay and the table shows what they cost).
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = super::unit)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PbftMode {
    /// Deterministic discrete-event simulation in virtual time (seeded link delays).
    Sim,
    /// Real replicas as tasks, each with its own TCP listener on 127.0.0.1, in real time.
    Live,
}

#[derive(Args, Debug)]
pub(crate) struct PbftArgs {
    /// sim: virtual time; live: replicas over loopback TCP.
    #[arg(long, value_enum, default_value = "sim")]
    pub(super) mode: PbftMode,
    /// Replica counts N, comma-separated.
    #[arg(long, value_name = "N[,N...]", value_delimiter = ',', default_values_t = [4, 7, 10, 13])]
    replicas: Vec<usize>,
    /// Faulty replicas per row, comma-separated: a number, `f` (⌊(N−1)/3⌋, what N tolerates)
    /// or `f+1` (one past it).
    #[arg(long, value_name = "K[,K...]", value_delimiter = ',', default_values_t = ["0".to_string(), "f".to_string(), "f+1".to_string()])]
    faulty: Vec<String>,
    /// What the faulty replicas do: silent, crash, crash@MS, wrong-digest, equivocate (as
    /// primary), collude (Byzantine coalition with an equivocating primary), delay:MS.
    #[arg(long, value_name = "KIND", default_value = "silent")]
    fault: Fault,
    /// Put the primary (replica 0) among the faulty (always so for equivocate and collude);
    /// otherwise the last replicas are the faulty ones.
    #[arg(long)]
    faulty_primary: bool,
    /// Quorum size: `2f+1` (the protocol's), `n-f` (stays live at N = 3f, loses safety), or a
    /// number.
    #[arg(long, value_name = "Q", default_value = "2f+1")]
    quorum: String,
    /// Requests issued per row [default: 100 (sim), 20 (live)].
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    requests: Option<u64>,
    /// Closed-loop clients, one request outstanding each.
    #[arg(long, value_name = "C", default_value_t = 2)]
    clients: usize,
    /// Requests between checkpoints, k.
    #[arg(long, value_name = "K", default_value_t = 16)]
    checkpoint_interval: u64,
    /// Sequence numbers accepted above the low water mark (H = h + window).
    #[arg(long, value_name = "L", default_value_t = 32)]
    window: u64,
    /// Sim: fixed link delay, ms.
    #[arg(long, value_name = "MS", default_value_t = 10.0, value_parser = non_negative)]
    link_delay: f64,
    /// Sim: mean exponential jitter added to each message, ms.
    #[arg(long, value_name = "MS", default_value_t = 2.0, value_parser = non_negative)]
    jitter: f64,
    /// View-change timer (and the client's wait before it re-sends to all replicas), ms.
    #[arg(long, value_name = "MS", default_value_t = 500.0, value_parser = positive)]
    view_change_timeout: f64,
    /// Each row stops here, done or not, ms [default: 60000 (sim), 10000 (live)].
    #[arg(long, value_name = "MS", value_parser = positive)]
    time_limit: Option<f64>,
    #[command(flatten)]
    pub(super) out: Output,
}

#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    #[command(flatten)]
    stake: Stake,
    /// The block interval every chain-based system aims at (PoW, PoS) or its slot (DPoS), s.
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    block_time: u64,
    /// PoS blocks to make.
    #[arg(long, value_name = "N", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..=10_000_000))]
    blocks: u64,
    /// DPoS delegates.
    #[arg(long, value_name = "N", default_value_t = 21)]
    delegates: usize,
    /// PBFT replicas.
    #[arg(long, value_name = "N", default_value_t = 4)]
    replicas: usize,
    /// PBFT requests.
    #[arg(long, value_name = "R", default_value_t = 200)]
    requests: u64,
    /// The attacker share q (of hash rate or stake) that finality must resist.
    #[arg(long, value_name = "Q", default_value_t = 0.1, value_parser = super::share)]
    attacker: f64,
    /// The attack success probability accepted: PoW and PoS wait for the z at which a
    /// q-attacker succeeds at most this often (exact formula).
    #[arg(long, value_name = "P", default_value_t = 0.001, value_parser = super::share)]
    risk: f64,
    /// Blocks the real PoW run mines (the engine's fastest CPU kernel, all threads).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pow_blocks: u64,
    /// D of the real PoW run (expected hashes per block).
    #[arg(long, value_name = "D", default_value = "4e6")]
    pow_difficulty: Difficulty,
    /// Transactions per block, the same for every system.
    #[arg(long, value_name = "N", default_value_t = 100)]
    txs_per_block: u32,
    #[command(flatten)]
    pub(super) out: Output,
}

fn rate(text: &str) -> Result<f64, String> {
    miner::experiment::retarget::parse_rate(text)
        .filter(|r| *r > 0.0)
        .ok_or_else(|| format!("{text}: expected a hash rate in H/s, e.g. 50M or 6e20"))
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
fn measured_pow(blocks: u64, d: &Difficulty) -> Result<compare::PowMeasure> {
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

pub(crate) fn pos(a: &PosArgs) -> Result<Report> {
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

pub(crate) fn dpos(a: &DposArgs) -> Result<Report> {
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

/// Faulty replica count from `0`, `f`, `f+1` or a number.
fn faulty_count(text: &str, n: usize) -> Result<usize> {
    let f = n.saturating_sub(1) / 3;
    let k = match text.trim() {
        "f" => f,
        "f+1" => f + 1,
        t => t
            .parse()
            .with_context(|| format!("--faulty {t}: expected a number, f or f+1"))?,
    };
    if k > n {
        bail!("--faulty {text}: {k} faulty replicas of {n}; at most N");
    }
    Ok(k)
}

fn quorum(text: &str, n: usize, faulty: usize) -> Result<Option<usize>> {
    let f = n.saturating_sub(1) / 3;
    match text.trim() {
        "2f+1" => Ok(None),
        // With N = 3f' replicas and f' = N/3 faults the system stays live only with a quorum of
        // N − f'; two such quorums meet in N − 2f' = f' replicas, all of which may lie.
        "n-f" => Ok(Some(n - faulty.max(f))),
        t => {
            let q: usize = t
                .parse()
                .with_context(|| format!("--quorum {t}: expected 2f+1, n-f or a number"))?;
            if q == 0 || q > n {
                bail!("--quorum {t}: a quorum is between 1 and N = {n}");
            }
            Ok(Some(q))
        }
    }
}

fn pbft_params(a: &PbftArgs, n: usize, k: usize, live: bool) -> Result<PbftParams> {
    let primary_first = a.faulty_primary || matches!(a.fault, Fault::Equivocate | Fault::Collude);
    let mut faults = vec![Fault::None; n];
    for i in 0..k {
        let at = if primary_first { i } else { n - 1 - i };
        faults[at] = a.fault;
    }
    let p = PbftParams {
        faults,
        quorum: quorum(&a.quorum, n, k)?,
        checkpoint_interval: a.checkpoint_interval,
        window: a.window,
        clients: a.clients,
        requests: a.requests.unwrap_or(if live { 20 } else { 100 }),
        seed: a.out.seed,
        link_delay_ms: a.link_delay,
        jitter_ms: a.jitter,
        view_change_timeout_ms: a.view_change_timeout,
        time_limit_ms: a
            .time_limit
            .unwrap_or(if live { 10_000.0 } else { 60_000.0 }),
        ..PbftParams::with_replicas(n)
    };
    p.check().map_err(|e| anyhow::anyhow!("pbft: {e}"))?;
    Ok(p)
}

fn pbft_row(r: &PbftResult, fault: &str) -> Value {
    let f = r.n.saturating_sub(1) / 3;
    // Per-request figures mean nothing when no request completed: null, shown as '-'.
    let done = |x: f64| (r.requests_completed > 0).then_some(x);
    json!({
        "n": r.n,
        "f": f,
        "faulty": r.faulty,
        "fault": if r.faulty == 0 { "none" } else { fault },
        "quorum": r.quorum,
        "safety_ok": r.safety_ok,
        "liveness_ok": r.liveness_ok,
        "first_violation": r.first_violation,
        "completed": format!("{}/{}", r.requests_completed, r.requests_issued),
        "requests_completed": r.requests_completed,
        "requests_issued": r.requests_issued,
        "view_changes": r.view_changes,
        "messages_total": r.messages_total,
        "messages_per_request": done(r.messages_per_request),
        "messages_per_request_over_n2": done(r.messages_per_request / (r.n * r.n) as f64),
        "messages": serde_json::to_value(&r.messages).unwrap_or(Value::Null),
        "latency_mean_ms": done(r.latency_mean_ms),
        "latency_p50_ms": done(r.latency_p50_ms),
        "latency_p99_ms": done(r.latency_p99_ms),
        "max_log_len": r.max_log_len,
        "stable_checkpoint": r.stable_checkpoint,
        "mac_failures": r.mac_failures,
        "rejected": r.rejected,
        "elapsed_ms": r.elapsed_ms,
    })
}

pub(crate) fn pbft(a: &PbftArgs) -> Result<Report> {
    let live = a.mode == PbftMode::Live;
    let fault = fault_name(&a.fault);
    let mut rows = Vec::new();
    for &n in &a.replicas {
        let mut seen = Vec::new();
        for text in &a.faulty {
            let k = faulty_count(text, n)?;
            if seen.contains(&k) {
                continue;
            }
            seen.push(k);
            let p = pbft_params(a, n, k, live)?;
            let r = if live {
                run_live(&p)?
            } else {
                pbft::sim::run(&p)
            };
            eprintln!(
                "N {n}, {k} {fault}: safety {}, liveness {}, {}/{} requests",
                r.safety_ok, r.liveness_ok, r.requests_completed, r.requests_issued
            );
            rows.push(pbft_row(&r, &fault));
        }
    }
    let requests: u64 = rows
        .iter()
        .filter_map(|r| r["requests_completed"].as_u64())
        .sum();
    let svg = plot_messages(&rows);
    Ok(Report {
        kind: "pbft",
        columns: vec![
            "n",
            "f",
            "faulty",
            "fault",
            "quorum",
            "safety_ok",
            "liveness_ok",
            "completed",
            "view_changes",
            "messages_per_request",
            "latency_p50_ms",
            "latency_p99_ms",
        ],
        rows,
        extra: Vec::new(),
        notes: vec![
            "f = ⌊(N−1)/3⌋; safety_ok: no two honest replicas committed different requests at one sequence number; liveness_ok: every request completed (f + 1 matching replies) before the time limit".into(),
            "past f faulty replicas PBFT loses liveness (silent, crash: fewer than 2f + 1 answer) or, with a quorum small enough to stay live (--quorum n-f), safety (collude)".into(),
            format!("messages_per_request: every message sent, per completed request (O(N²): PREPARE and COMMIT go all to all); latency in {} ms", if live { "real" } else { "virtual" }),
        ],
        svg: Some(svg),
        blocks: requests,
        footer: Some(format!(
            "{requests} requests committed by {} replicas",
            if live { "live" } else { "simulated" }
        )),
    })
}

fn fault_name(f: &Fault) -> String {
    match f {
        Fault::None => "none".into(),
        Fault::Crash { at_ms } if *at_ms <= 0.0 => "crash".into(),
        Fault::Crash { at_ms } => format!("crash@{at_ms}"),
        Fault::Silent => "silent".into(),
        Fault::WrongDigest => "wrong-digest".into(),
        Fault::Equivocate => "equivocate".into(),
        Fault::Collude => "collude".into(),
        Fault::Delay { ms } => format!("delay:{ms}"),
    }
}

fn run_live(p: &PbftParams) -> Result<PbftResult> {
    pbft::live::run(p).map_err(|e| anyhow::anyhow!("pbft live run: {e}"))
}

/// Messages per request against N (fault-free rows), beside c·N² through the first point.
fn plot_messages(rows: &[Value]) -> String {
    let clean: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r["faulty"].as_u64() == Some(0))
        .filter_map(|r| Some((r["n"].as_f64()?, r["messages_per_request"].as_f64()?)))
        .collect();
    let c = clean.first().map(|(n, m)| m / (n * n)).unwrap_or(0.0);
    line_chart(
        &[
            Series {
                label: "measured".into(),
                colour: "#1f77b4",
                dashed: false,
                points: clean.clone(),
                bars: Vec::new(),
            },
            Series {
                label: "c·N² (through N = first)".into(),
                colour: "#7f7f7f",
                dashed: true,
                points: clean.iter().map(|(n, _)| (*n, c * n * n)).collect(),
                bars: Vec::new(),
            },
        ],
        "replicas N",
        "messages per request",
        false,
    )
}

pub(crate) fn compare(a: &CompareArgs) -> Result<Report> {
    let seed = a.out.seed;
    let accounts = a.stake.accounts(seed, 100)?;
    let t = a.block_time as f64;
    let stakes: Vec<u64> = accounts.iter().map(|x| x.balance).collect();

    // Proof of work: the engine's real hashing, the exact double-spend formula for the depth,
    // and the 51% attack checked by the race sim.
    let pow_run = measured_pow(a.pow_blocks, &a.pow_difficulty)?;
    let z = compare::pow_confirmations(a.attacker, a.risk, 10_000)
        .context("no confirmation depth reaches --risk for this --attacker")?;
    let majority = race::race(&race::RaceParams {
        q: 0.5,
        z: 6,
        premine: true,
        give_up: None,
        trials: 200,
        seed,
    });
    let pow_row = CompareRow {
        system: "PoW".into(),
        blocks_per_s: 1.0 / t,
        tx_per_s: a.txs_per_block as f64 / t,
        finality_s: z as f64 * t,
        hashes_per_block: pow_run.hashrate_hs * t,
        messages_per_block: (accounts.len() - 1) as f64,
        fault_tolerance: 0.5,
        tolerance_of: "hash rate".into(),
        nakamoto_coefficient: stats::nakamoto_coefficient(&stakes, 0.5) as f64,
        notes: format!(
            "{z} blocks for q = {} at risk {} (exact); a 0.5 attacker won {} of {} races",
            a.attacker, a.risk, majority.successes, majority.trials
        ),
    };
    let pow_note = format!(
        "PoW run: {} blocks at D = {:.4e} on {} in {:.2} s, {} ({:.0} trials per block); a q = 0.5 attacker won {} of {} double-spend races",
        pow_run.blocks,
        pow_run.difficulty,
        pow_run.backend,
        pow_run.seconds,
        crate::output::HashRate(pow_run.hashrate_hs),
        pow_run.trials_per_block,
        majority.successes,
        majority.trials
    );

    // Proof of stake on the same allocation.
    let p = pos::PosParams {
        block_time_s: a.block_time,
        blocks: a.blocks,
        txs_per_block: 4,
        pow_hashrate_hs: pow_run.hashrate_hs,
        seed,
        ..pos::PosParams::new(accounts.clone())
    };
    eprintln!("proof of stake: {} blocks", p.blocks);
    let ps = pos::run(&p).context("pos")?;
    let pos_rate = 1.0 / ps.interval_mean_s;
    let pos_row = CompareRow {
        system: "PoS".into(),
        blocks_per_s: pos_rate,
        tx_per_s: pos_rate * a.txs_per_block as f64,
        finality_s: z as f64 * ps.interval_mean_s,
        hashes_per_block: ps.kernel_hashes_per_block,
        messages_per_block: (accounts.len() - 1) as f64,
        fault_tolerance: 0.5,
        tolerance_of: "stake".into(),
        nakamoto_coefficient: ps.blocks_nakamoto_majority as f64,
        notes: format!(
            "χ² p = {:.3} (blocks follow stake); the same {z}-block rule with stake in place of hash rate",
            ps.chi_square.p_value
        ),
    };

    // Delegated proof of stake, slot = the block time.
    let dp = dpos::DposParams {
        slot_time_s: t,
        rounds: 100,
        txs_per_block: a.txs_per_block,
        seed,
        ..dpos::DposParams::new(accounts.clone(), a.delegates)
    };
    eprintln!("delegated proof of stake: {} delegates", a.delegates);
    let d = dpos::run(&dp).context("dpos")?;
    let dpos_row = CompareRow {
        system: "DPoS".into(),
        blocks_per_s: d.blocks_per_s,
        tx_per_s: d.txs_per_s,
        finality_s: d.irreversible_mean_s.unwrap_or(f64::NAN),
        hashes_per_block: 1.0,
        messages_per_block: (accounts.len() - 1) as f64,
        fault_tolerance: 1.0 - (d.confirmations_needed as f64 / a.delegates as f64),
        tolerance_of: "delegates".into(),
        nakamoto_coefficient: d.blocks_nakamoto_majority as f64,
        notes: format!(
            "{} delegates, irreversible after {} producers; a block's hash, no search",
            a.delegates, d.confirmations_needed
        ),
    };

    // PBFT.
    let pp = PbftParams {
        requests: a.requests,
        seed,
        ..PbftParams::with_replicas(a.replicas)
    };
    pp.check().map_err(|e| anyhow::anyhow!("pbft: {e}"))?;
    eprintln!("pbft: {} replicas, {} requests", a.replicas, a.requests);
    let pb = pbft::sim::run(&pp);
    let f = pp.f();
    let pbft_rate = pb.requests_completed as f64 / (pb.elapsed_ms / 1000.0).max(1e-9);
    let pbft_row = CompareRow {
        system: "PBFT".into(),
        blocks_per_s: pbft_rate,
        tx_per_s: pbft_rate * a.txs_per_block as f64,
        finality_s: pb.latency_mean_ms / 1000.0,
        // Each message is one HMAC-SHA256 made by its sender and one checked by its receiver;
        // each replica digests the request once.
        hashes_per_block: 2.0 * pb.messages_per_request + a.replicas as f64,
        messages_per_block: pb.messages_per_request,
        fault_tolerance: f as f64 / a.replicas as f64,
        tolerance_of: "replicas".into(),
        nakamoto_coefficient: (f + 1) as f64,
        notes: format!(
            "one request per block, {} ms links; final at the client's f + 1 = {} replies; safety {}, liveness {}",
            pp.link_delay_ms,
            f + 1,
            pb.safety_ok,
            pb.liveness_ok
        ),
    };
    let rows: Vec<Value> = [pow_row, pos_row, dpos_row, pbft_row]
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    Ok(Report {
        kind: "compare",
        columns: vec![
            "system",
            "blocks_per_s",
            "tx_per_s",
            "finality_s",
            "hashes_per_block",
            "messages_per_block",
            "fault_tolerance",
            "tolerance_of",
            "nakamoto_coefficient",
        ],
        rows,
        extra: vec![
            (
                "pow_run",
                serde_json::to_value(&pow_run).unwrap_or(Value::Null),
            ),
            ("block_time_s", json!(a.block_time)),
            ("attacker", json!(a.attacker)),
            ("risk", json!(a.risk)),
        ],
        notes: vec![
            format!(
                "blocks_per_s: PoW mines at the chosen {t} s by construction (its D follows the hash rate); PoS measured (mean interval of its run); DPoS measured (filled {t} s slots); PBFT measured (requests committed per second of the sim, one request a block, 10 ms links)"
            ),
            format!(
                "finality_s: PoW and PoS wait z = {z} blocks, where an attacker with q = {} succeeds at most {} of the time (exact formula; PoS: the same race on stake); DPoS measured (mean time to the last irreversible block); PBFT measured (mean time to the client's f + 1 matching replies)",
                a.attacker, a.risk
            ),
            "hashes_per_block: PoW measured (this machine's rate × the interval: what one such machine spends per block); PoS measured (kernel tries: accounts × seconds); DPoS 1 (the block's own hash, nothing searched); PBFT from its measured messages (an HMAC made and one checked per message, and each replica's digest of the request)".into(),
            "messages_per_block: PoW, PoS, DPoS count one delivery of the block to each other participant (N − 1: a formula, not a network run); PBFT measured (every message sent per request)".into(),
            "fault_tolerance: the largest share of participants that may fail or attack with the system still safe and live: PoW and PoS < 1/2 (a 0.5 attacker wins every race, measured above), DPoS the delegates that may be offline with blocks still becoming irreversible (N − ⌊2N/3⌋ − 1, measured by `miner experiment dpos`), PBFT f/N (measured by `miner experiment pbft`)".into(),
            "nakamoto_coefficient: fewest participants with over half the blocks: PoW assumes hash rate spread as the stake; PoS and DPoS measured; PBFT f + 1, the replicas that can stall it".into(),
            pow_note,
        ],
        svg: None,
        blocks: 0,
        footer: Some("PoW, PoS, DPoS and PBFT compared".into()),
    })
}
