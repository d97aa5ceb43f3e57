//! `miner experiment KIND --mode live`: each row measured on real nodes and miners
//! ([`miner::experiment::live`]), beside the same scenario's sim and the published result. The
//! sim is run for the same parameters; `sim_range95` is the central 95% range of what a run of
//! the live run's size gives in the sim (binomial for the races, 400 sim runs of the same
//! length for forks and selfish), and `in_sim_range` says whether the live figure falls in it.

use super::double_spend::{plot_by_q, DoubleSpendArgs};
use super::finality::FinalityArgs;
use super::forks::ForksArgs;
use super::selfish::{plot_selfish, SelfishArgs};
use super::{progress, Report};
use anyhow::{Context, Result};
use miner::experiment::live::{self, LiveParams};
use miner::experiment::{forks, race, selfish, stats, theory};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Sim runs behind the range of a forks or selfish row.
const REPLICATES: u64 = 2000;
/// Sim races behind a race row's probability.
const SIM_RACES: u64 = 20_000;
/// Races give up this many blocks behind unless told (a live race must end).
const LIVE_GIVE_UP: u32 = 5;

fn params(common: &super::Common, block_time: f64) -> LiveParams {
    LiveParams {
        hashrate: common.hashrate,
        block_time_s: block_time,
        timeout: Duration::from_secs_f64(common.timeout),
        verbose: true,
    }
}

fn in_range(v: f64, (lo, hi): (f64, f64)) -> bool {
    v >= lo - 1e-12 && v <= hi + 1e-12
}

/// Tails left out of `sim_range95` and `sim_range999` (the latter is what the tests check, so
/// that a correct live run fails them once in a thousand).
const TAIL95: f64 = 0.025;
const TAIL999: f64 = 0.0005;

/// The sim's success probability for a race and the 95% and 99.9% ranges a run of `trials`
/// races gives.
fn race_sim(
    q: f64,
    z: u32,
    premine: bool,
    give_up: u32,
    trials: u64,
    seed: u64,
) -> (f64, (f64, f64), (f64, f64)) {
    let r = race::race(&race::RaceParams {
        q,
        z,
        premine,
        give_up: Some(give_up),
        trials: SIM_RACES,
        seed,
    });
    let p = r.successes as f64 / r.trials.max(1) as f64;
    (
        p,
        stats::binomial_range(p, trials, TAIL95),
        stats::binomial_range(p, trials, TAIL999),
    )
}

pub(super) fn double_spend(a: &DoubleSpendArgs) -> Result<Report> {
    let give_up = a.give_up.unwrap_or(LIVE_GIVE_UP);
    let block_time = a.block_time();
    let lp = params(&a.common, block_time);
    let mut rows = Vec::new();
    let mut blocks = 0;
    for q in a.attacker() {
        for z in a.confirmations() {
            progress(&format!("live q {q} z {z}: up to {} races", a.trials()));
            let r = live::race(
                &lp,
                &live::RaceLive {
                    q,
                    z,
                    premine: true,
                    give_up: Some(give_up),
                    trials: a.trials(),
                },
            )
            .with_context(|| format!("live run q {q} z {z}"))?;
            blocks += r.blocks;
            let p = r.successes as f64 / r.trials.max(1) as f64;
            let (sim_p, range, range999) =
                race_sim(q, z, true, give_up, r.trials, a.common.out.seed);
            let (nakamoto, exact) = (theory::nakamoto(q, z), theory::exact(q, z));
            rows.push(json!({
                "q": q,
                "z": z,
                "p": p,
                "ci95": stats::wilson95(r.successes, r.trials),
                "trials": r.trials,
                "successes": r.successes,
                "nakamoto": nakamoto,
                "exact": exact,
                "sim_p": sim_p,
                "sim_range95": range,
                "sim_range999": range999,
                "in_sim_range": in_range(p, range),
                "mean_attack_s": if r.successes > 0 { json!(r.mean_attack_s) } else { Value::Null },
                "give_up": give_up,
                "seconds": r.seconds,
            }));
        }
    }
    let svg = plot_by_q(&rows, "z", "confirmations z", &["nakamoto", "exact"]);
    Ok(Report {
        footer: None,
        kind: "double-spend",
        columns: vec![
            "q", "z", "p", "ci95", "trials", "sim_p", "sim_range95", "in_sim_range", "exact",
            "nakamoto", "mean_attack_s",
        ],
        rows,
        extra: vec![
            ("block_time_s", json!(block_time)),
            ("hashrate_hs", json!(lp.hashrate)),
            ("give_up", json!(give_up)),
        ],
        notes: vec![
            format!("live: one honest node and miner, one attacker node and miner, {} H/s in all, one block per {block_time} s; the attacker pre-mines a block, publishes when longer (submitblock), gives up {give_up} behind", lp.hashrate),
            format!("sim_p: the sim with the same give-up ({SIM_RACES} races); sim_range95: what a run of this many races shows 95% of the time; exact and nakamoto assume the attacker never gives up"),
            "mean_attack_s: measured seconds from the payment's release to the honest node's reorganisation".into(),
        ],
        svg: Some(svg),
        blocks,
    })
}

pub(super) fn finality(a: &FinalityArgs) -> Result<Report> {
    let give_up = a.give_up.unwrap_or(LIVE_GIVE_UP);
    let block_time = a.block_time.unwrap_or(0.5);
    let lp = params(&a.common, block_time);
    let mut rows = Vec::new();
    let mut blocks = 0;
    for q in a.attacker() {
        for k in a.depth() {
            progress(&format!("live q {q} depth {k}: up to {} races", a.trials()));
            let r = live::race(
                &lp,
                &live::RaceLive {
                    q,
                    z: k,
                    premine: false,
                    give_up: Some(give_up),
                    trials: a.trials(),
                },
            )
            .with_context(|| format!("live run q {q} depth {k}"))?;
            blocks += r.blocks;
            let p = r.successes as f64 / r.trials.max(1) as f64;
            let (sim_p, range, range999) =
                race_sim(q, k, false, give_up, r.trials, a.common.out.seed);
            rows.push(json!({
                "q": q,
                "depth": k,
                "p": p,
                "ci95": stats::wilson95(r.successes, r.trials),
                "trials": r.trials,
                "successes": r.successes,
                "theory": theory::finality(q, k),
                "sim_p": sim_p,
                "sim_range95": range,
                "sim_range999": range999,
                "in_sim_range": in_range(p, range),
                "give_up": give_up,
                "seconds": r.seconds,
            }));
        }
    }
    let svg = plot_by_q(&rows, "depth", "depth k", &["theory"]);
    Ok(Report {
        footer: None,
        kind: "finality",
        columns: vec![
            "q", "depth", "p", "ci95", "trials", "sim_p", "sim_range95", "in_sim_range", "theory",
        ],
        rows,
        extra: vec![
            ("block_time_s", json!(block_time)),
            ("hashrate_hs", json!(lp.hashrate)),
            ("give_up", json!(give_up)),
        ],
        notes: vec![
            format!("live: the attacker's node starts a private branch at the parent of each new honest block, publishes when longer, gives up {give_up} behind; {} H/s, one block per {block_time} s", lp.hashrate),
            format!("sim_p: the sim with the same give-up ({SIM_RACES} races); theory assumes the attacker never gives up"),
        ],
        svg: Some(svg),
        blocks,
    })
}

pub(super) fn forks(a: &ForksArgs) -> Result<Report> {
    let shares = a.shares()?;
    let block_time = a.block_time();
    let lp = params(&a.common, block_time);
    let mut rows = Vec::new();
    let mut blocks = 0;
    for delay_ms in a.delay() {
        progress(&format!(
            "live delay {delay_ms} ms: {} nodes, {} blocks",
            shares.len(),
            a.blocks()
        ));
        let r = live::forks(
            &lp,
            &live::ForksLive {
                shares: shares.clone(),
                delay: Duration::from_secs_f64(delay_ms / 1000.0),
                blocks: a.blocks(),
            },
        )
        .with_context(|| format!("live run at delay {delay_ms} ms"))?;
        blocks += r.blocks;
        let rate = r.stale as f64 / r.blocks.max(1) as f64;
        let mut sims: Vec<f64> = (0..REPLICATES)
            .into_par_iter()
            .map(|i| {
                forks::run(
                    &forks::ForkParams {
                        shares: shares.clone(),
                        delay_s: delay_ms / 1000.0,
                        block_time_s: block_time,
                        blocks: r.blocks.max(10),
                        seed: a.common.out.seed.wrapping_add(i),
                    },
                    0,
                )
                .stale_rate()
            })
            .collect();
        let sim_mean = sims.iter().sum::<f64>() / sims.len().max(1) as f64;
        let range = stats::sample_range(&mut sims, TAIL95);
        let range999 = stats::sample_range(&mut sims, TAIL999);
        rows.push(json!({
            "delay_ms": delay_ms,
            "stale_rate": rate,
            "ci95": stats::wilson95(r.stale, r.blocks),
            "theory": theory::stale_rate(delay_ms / 1000.0, block_time),
            "theory_same_miner_excluded": forks::expected_stale_rate(&forks::ForkParams {
                shares: shares.clone(),
                delay_s: delay_ms / 1000.0,
                block_time_s: block_time,
                blocks: r.blocks,
                seed: a.common.out.seed,
            }),
            "sim_stale_rate": sim_mean,
            "sim_range95": range,
            "sim_range999": range999,
            "in_sim_range": in_range(rate, range),
            "blocks": r.blocks,
            "stale": r.stale,
            "tips_agree": r.tips_agree,
            "reorgs": r.reorgs.iter().map(|(d, n)| (d.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "block_interval_s": r.block_interval_s,
            "seconds": r.seconds,
        }));
    }
    Ok(Report {
        footer: None,
        kind: "forks",
        columns: vec![
            "delay_ms",
            "stale_rate",
            "ci95",
            "sim_stale_rate",
            "sim_range95",
            "in_sim_range",
            "theory",
            "blocks",
            "stale",
            "block_interval_s",
        ],
        rows,
        extra: vec![
            ("nodes", json!(shares.len())),
            ("shares", json!(shares)),
            ("block_time_s", json!(block_time)),
            ("hashrate_hs", json!(lp.hashrate)),
        ],
        notes: vec![
            format!("live: {} nodes peered pairwise on 127.0.0.1, each announcing blocks after --relay-delay = delay, each with a miner at its share of {} H/s", shares.len(), lp.hashrate),
            format!("sim_range95: the central 95% of {REPLICATES} sim runs of the live run's length; a live block also waits for the round trip, validation and the miners' switch (milliseconds), so at delay 0 live shows a few stale blocks the sim does not"),
            "reorgs: branch lengths of the stale branches the nodes hold (getchaintips valid-fork)".into(),
        ],
        svg: None,
        blocks,
    })
}

pub(super) fn selfish(a: &SelfishArgs) -> Result<Report> {
    let block_time = a.block_time.unwrap_or(1.0);
    let lp = params(&a.common, block_time);
    let mut rows = Vec::new();
    let mut blocks = 0;
    for &gamma in &a.gamma {
        for alpha in a.alpha() {
            let run = live::SelfishLive {
                alpha,
                gamma,
                honest_nodes: a.honest_nodes as usize,
                delay: Duration::from_secs_f64(a.relay_delay / 1000.0),
                blocks: a.blocks(),
            };
            let (_, g) = run.gamma_nodes();
            progress(&format!(
                "live alpha {alpha} gamma {gamma} (live: {g}): {} blocks",
                a.blocks()
            ));
            let r = live::selfish(&lp, &run)
                .with_context(|| format!("live run alpha {alpha} gamma {gamma}"))?;
            blocks += r.blocks;
            let mut sims: Vec<f64> = (0..REPLICATES)
                .into_par_iter()
                .map(|i| {
                    selfish::run(&selfish::SelfishParams {
                        alpha,
                        gamma: g,
                        blocks: r.blocks.max(10),
                        seed: a.common.out.seed.wrapping_add(i),
                    })
                    .revenue
                })
                .collect();
            let sim_mean = sims.iter().sum::<f64>() / sims.len().max(1) as f64;
            let range = stats::sample_range(&mut sims, TAIL95);
            let range999 = stats::sample_range(&mut sims, TAIL999);
            // The live run's own interval: the sim runs' spread around the live figure.
            let half = (range.1 - range.0) / 2.0;
            rows.push(json!({
                "alpha": alpha,
                "gamma": gamma,
                "gamma_effective": g,
                "revenue": r.revenue,
                "ci95": [(r.revenue - half).max(0.0), (r.revenue + half).min(1.0)],
                "theory": theory::selfish_revenue(alpha, g),
                "sim_revenue": sim_mean,
                "sim_range95": range,
                "sim_range999": range999,
                "in_sim_range": in_range(r.revenue, range),
                "main_chain": r.main_chain,
                "pool_blocks": r.pool_blocks,
                "blocks": r.blocks,
                "tips_agree": r.tips_agree,
                "seconds": r.seconds,
            }));
        }
    }
    let svg = plot_selfish(&rows);
    Ok(Report {
        footer: None,
        kind: "selfish",
        columns: vec![
            "alpha",
            "gamma_effective",
            "revenue",
            "ci95",
            "sim_revenue",
            "sim_range95",
            "in_sim_range",
            "theory",
            "main_chain",
            "pool_blocks",
        ],
        rows,
        extra: vec![
            ("block_time_s", json!(block_time)),
            ("hashrate_hs", json!(lp.hashrate)),
            ("honest_nodes", json!(a.honest_nodes)),
            ("relay_delay_ms", json!(a.relay_delay)),
        ],
        notes: vec![
            format!("live: {} honest nodes peered with --relay-delay {} ms, the pool's node apart; at a tie the pool sends its block to the finder and to round(γ·N) other honest nodes (gamma_effective = that / N)", a.honest_nodes, a.relay_delay),
            format!("revenue: the pool's blocks on the final main chain / its length; ci95 and sim_range95 from the spread of {REPLICATES} sim runs of the same length; theory: Eyal & Sirer at gamma_effective"),
        ],
        svg: Some(svg),
        blocks,
    })
}
