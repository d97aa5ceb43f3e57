//! `miner experiment pbft`: PBFT's safety and liveness per fault count, messages per request.

use super::{Output, Report};
use crate::cli::args::{non_negative, positive};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use miner::experiment::chart::{line_chart, Series};
use miner::experiment::pbft::{self, Fault, PbftParams, PbftResult};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum PbftMode {
    /// Deterministic discrete-event simulation in virtual time (seeded link delays).
    Sim,
    /// Real replicas as tasks, each with its own TCP listener on 127.0.0.1, in real time.
    Live,
}

#[derive(Args, Debug)]
pub(super) struct PbftArgs {
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

pub(super) fn pbft_row(r: &PbftResult, fault: &str) -> Value {
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

pub(super) fn pbft(a: &PbftArgs) -> Result<Report> {
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
