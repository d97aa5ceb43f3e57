//! `miner experiment compare`: PoW (measured on this machine), PoS, DPoS and PBFT side by side.

use super::pos::measured_pow;
use super::stake::Stake;
use super::{Output, Report};
use crate::cli::args::share;
use anyhow::{Context, Result};
use clap::Args;
use miner::experiment::compare::{self, CompareRow};
use miner::experiment::pbft::{self, PbftParams};
use miner::experiment::{dpos, pos, race, stats};
use miner::pow::Difficulty;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub(super) struct CompareArgs {
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
    #[arg(long, value_name = "Q", default_value_t = 0.1, value_parser = share)]
    attacker: f64,
    /// The attack success probability accepted: PoW and PoS wait for the z at which a
    /// q-attacker succeeds at most this often (exact formula).
    #[arg(long, value_name = "P", default_value_t = 0.001, value_parser = share)]
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

pub(super) fn compare(a: &CompareArgs) -> Result<Report> {
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
