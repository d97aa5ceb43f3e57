//! `miner experiment KIND`: the seed's proof-of-work experiments (double-spend, forks,
//! selfish mining, finality), each printed beside the published result it is checked against,
//! and the other consensus systems (pos, dpos, pbft, compare). Here: the subcommands, the flags
//! every kind shares, and the output (table, JSON, CSV, SVG); each kind's flags and run are in
//! its own module (`double_spend.rs`, `finality.rs`, `forks.rs`, `selfish.rs`, `pos.rs`,
//! `dpos.rs`, `pbft.rs`, `compare.rs`; `stake.rs` the stake flags, `live.rs` the `--mode live`
//! runs), the value parsers in `cli/args.rs`.

use crate::cli::args::{hashrate, positive};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

mod compare;
mod double_spend;
mod dpos;
mod finality;
mod forks;
mod live;
mod pbft;
mod pos;
mod selfish;
mod stake;

#[derive(Args, Debug)]
pub(crate) struct ExperimentArgs {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Subcommand, Debug)]
enum Kind {
    /// The double-spend race: a merchant accepts after z blocks (the payment's block counted,
    /// Rosenfeld's n); an attacker with share q of the hash rate, one block pre-mined (Rosenfeld's
    /// model), mines a private branch from the block before the payment and publishes it once it
    /// is longer. Measured success beside Nakamoto's §11 figure and the exact one (Rosenfeld
    /// 2014; Grunspan & Pérez-Marco 2017). q > 0.5 is the 51% attack: it always succeeds; at
    /// q = 0.5 it succeeds with probability 1 but may take arbitrarily long, and a trial is cut
    /// off (counted a failure) at 1,000,000 blocks.
    DoubleSpend(double_spend::DoubleSpendArgs),
    /// Forks from propagation delay: N miners, each block reaching the others after the delay;
    /// the stale rate per delay beside 1 − e^(−delay/T), the reorg depths, and (--svg) a branch
    /// diagram of a short run.
    Forks(forks::ForksArgs),
    /// Eyal & Sirer's selfish mining: the pool's share of the main chain beside their closed
    /// form, and the profitability threshold found from the runs beside (1−γ)/(3−2γ).
    Selfish(selfish::SelfishArgs),
    /// Finality: the chance that a block k deep is ever reorganised away by an attacker of share
    /// q who began a private branch when it was found (no pre-mined block): what "wait 6
    /// blocks" buys.
    Finality(finality::FinalityArgs),
    /// The seed's proof of stake: account A may make the next block at second t when
    /// SHA-256d(Hash(B_prev) ‖ A ‖ t) ≤ bal(A)·M/D. Each account's share of blocks against its
    /// share of stake (χ²), block intervals, and the hashes a block costs beside PoW's.
    Pos(pos::PosArgs),
    /// Delegated proof of stake: stake-weighted votes elect N delegates that produce in a
    /// shuffled round-robin; a block is irreversible once 2/3 + 1 of them have built on it.
    /// Time to irreversibility against N and offline delegates, throughput, concentration.
    Dpos(dpos::DposArgs),
    /// PBFT (Castro & Liskov): N replicas, REQUEST / PRE-PREPARE / PREPARE / COMMIT / REPLY,
    /// checkpoints, view changes, injected faults. Safety and liveness per fault count,
    /// messages per request against N, latency.
    Pbft(pbft::PbftArgs),
    /// PoW (the engine's real hashing), PoS, DPoS and PBFT side by side: throughput, time to
    /// finality::finality, hashes and messages per block, tolerance to faulty participants.
    Compare(compare::CompareArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Virtual time, real blocks connected by the chain code (seconds for millions of blocks).
    Sim,
    /// Real nodes (the code of `miner node`, peering over 127.0.0.1) and real miners (the loop
    /// of `miner mine --node`, held to their shares by --max-hashrate) in real time: fewer
    /// trials, each row beside the range the sim gives for a run of that size.
    Live,
}

#[derive(Args, Debug)]
struct Common {
    /// sim: virtual time with real blocks and the chain's own fork choice; live: real nodes.
    #[arg(long, value_enum, default_value = "sim")]
    mode: Mode,
    #[command(flatten)]
    out: Output,
    /// Live: all miners' hash rate together in H/s (k/M suffixes), split by their shares; the
    /// chain's difficulty is this × the block time.
    #[arg(long, value_name = "RATE", default_value = "50k", value_parser = hashrate)]
    hashrate: f64,
    /// Live: stop after this many seconds per row and report what was measured.
    #[arg(long, value_name = "S", default_value_t = 900.0, value_parser = positive)]
    timeout: f64,
}

/// The seed and the outputs, the same for every kind.
#[derive(Args, Debug)]
struct Output {
    /// Random seed: the same seed gives the same figures, whatever the thread count.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the rows as one JSON object (field names are an interface: q, z/depth, p, ci95,
    /// trials, nakamoto, exact, theory; delay_ms, stale_rate; alpha, gamma, revenue; the pos,
    /// dpos, pbft and compare fields are listed in the README).
    #[arg(long)]
    json: bool,
    /// Also write the rows as CSV here.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Also draw the figure here as SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

impl Common {
    fn live(&self) -> bool {
        self.mode == Mode::Live
    }
}

/// `list` if given, else the mode's default.
fn or<T: Clone>(list: &[T], live: bool, sim_default: &[T], live_default: &[T]) -> Vec<T> {
    match (list.is_empty(), live) {
        (false, _) => list.to_vec(),
        (true, false) => sim_default.to_vec(),
        (true, true) => live_default.to_vec(),
    }
}

/// The races' (double-spend and finality) depths, `--confirmations` or `--depth`: `given`, else
/// 1 to 6 in the sim and 1, 2 live.
fn race_depths(given: &[u32], live: bool) -> Vec<u32> {
    or(given, live, &[1, 2, 3, 4, 5, 6], &[1, 2])
}

/// The races' `--trials`: `given`, else 100,000 in the sim and 20 live.
fn race_trials(given: Option<u64>, live: bool) -> u64 {
    given.unwrap_or(if live { 20 } else { 100_000 })
}

pub(crate) fn experiment(args: ExperimentArgs) -> Result<()> {
    let started = Instant::now();
    let (report, out, live) = match &args.kind {
        Kind::DoubleSpend(a) if a.common.live() => (live::double_spend(a)?, &a.common, true),
        Kind::Finality(a) if a.common.live() => (live::finality(a)?, &a.common, true),
        Kind::Forks(a) if a.common.live() => (live::forks(a)?, &a.common, true),
        Kind::Selfish(a) if a.common.live() => (live::selfish(a)?, &a.common, true),
        Kind::DoubleSpend(a) => (double_spend::double_spend(a), &a.common, false),
        Kind::Finality(a) => (finality::finality(a), &a.common, false),
        Kind::Forks(a) => (forks::forks_run(a)?, &a.common, false),
        Kind::Selfish(a) => (selfish::selfish_run(a)?, &a.common, false),
        Kind::Pos(a) => {
            return emit_timed(pos::pos(a)?, &a.out, false, started);
        }
        Kind::Dpos(a) => {
            return emit_timed(dpos::dpos(a)?, &a.out, false, started);
        }
        Kind::Pbft(a) => {
            let live = a.mode == pbft::PbftMode::Live;
            return emit_timed(pbft::pbft(a)?, &a.out, live, started);
        }
        Kind::Compare(a) => {
            return emit_timed(compare::compare(a)?, &a.out, false, started);
        }
    };
    emit_timed(report, &out.out, live, started)
}

fn emit_timed(report: Report, out: &Output, live: bool, started: Instant) -> Result<()> {
    emit(report, out, live, started.elapsed().as_secs_f64())
}

/// What a run found: its rows (JSON objects with the interface's field names), the column
/// order for the table and CSV, extra JSON fields, an SVG, and the blocks it built.
struct Report {
    kind: &'static str,
    columns: Vec<&'static str>,
    rows: Vec<Value>,
    extra: Vec<(&'static str, Value)>,
    notes: Vec<String>,
    svg: Option<String>,
    blocks: u64,
    /// The closing line, where "N blocks built and connected" does not fit the kind.
    footer: Option<String>,
}

fn progress(text: &str) {
    eprintln!("{text}");
}

fn fmt(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                if f == 0.0 || (f.abs() >= 1e-3 && f.abs() < 1e6) {
                    format!("{f:.7}")
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string()
                } else {
                    format!("{f:.4e}")
                }
            }
            _ => n.to_string(),
        },
        Value::Array(items) => {
            format!("[{}]", items.iter().map(fmt).collect::<Vec<_>>().join(", "))
        }
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn emit(report: Report, common: &Output, live: bool, seconds: f64) -> Result<()> {
    let rate = report.blocks as f64 / seconds.max(1e-9);
    if let Some(path) = &common.csv {
        let mut out = String::new();
        out.push_str(&report.columns.join(","));
        out.push('\n');
        for row in &report.rows {
            let cells: Vec<String> = report
                .columns
                .iter()
                .map(|c| match &row[*c] {
                    Value::Array(v) => v.iter().map(fmt).collect::<Vec<_>>().join(" "),
                    v => fmt(v),
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        std::fs::write(path, out).with_context(|| format!("--csv {}", path.display()))?;
    }
    match (&common.svg, &report.svg) {
        (Some(path), Some(svg)) => {
            std::fs::write(path, svg).with_context(|| format!("--svg {}", path.display()))?
        }
        (Some(path), None) if report.kind == "compare" => eprintln!(
            "warning: --svg {}: compare draws no figure; `miner experiment pos|dpos|pbft --svg FILE` draw theirs",
            path.display()
        ),
        (Some(path), None) => eprintln!(
            "warning: --svg {}: a live forks run draws no branch diagram; the sim draws it (--mode sim --svg FILE)",
            path.display()
        ),
        _ => {}
    }
    let mut stdout = std::io::stdout().lock();
    if common.json {
        let mut object = serde_json::Map::new();
        object.insert("kind".into(), json!(report.kind));
        object.insert("mode".into(), json!(if live { "live" } else { "sim" }));
        object.insert("seed".into(), json!(common.seed));
        object.insert("rows".into(), Value::Array(report.rows));
        for (k, v) in report.extra {
            object.insert(k.into(), v);
        }
        object.insert("blocks".into(), json!(report.blocks));
        object.insert("seconds".into(), json!(seconds));
        object.insert("blocks_per_s".into(), json!(rate));
        writeln!(stdout, "{}", Value::Object(object))?;
        return Ok(());
    }
    let table: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| report.columns.iter().map(|c| fmt(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = report
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            table
                .iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(
        stdout,
        "{}",
        line(report.columns.iter().map(|c| c.to_string()).collect())
    )?;
    for row in table {
        writeln!(stdout, "{}", line(row))?;
    }
    for (k, v) in &report.extra {
        if *k == "thresholds" {
            for t in v.as_array().into_iter().flatten() {
                writeln!(
                    stdout,
                    "threshold at gamma {}: found {} (theory {})",
                    fmt(&t["gamma"]),
                    fmt(&t["found"]),
                    fmt(&t["theory"])
                )?;
            }
        }
    }
    for note in &report.notes {
        writeln!(stdout, "{note}")?;
    }
    match &report.footer {
        Some(footer) => writeln!(stdout, "{footer} in {seconds:.2} s")?,
        None => writeln!(
            stdout,
            "{} blocks {} in {seconds:.2} s ({rate:.0} blocks/s, {} threads)",
            report.blocks,
            if live {
                "mined on live nodes, with their sims,"
            } else {
                "built and connected"
            },
            rayon::current_num_threads()
        )?,
    }
    Ok(())
}
