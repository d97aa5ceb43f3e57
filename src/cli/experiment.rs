//! `miner experiment KIND`: the seed's proof-of-work experiments (double-spend, forks,
//! selfish mining, finality), each printed beside the published result it is checked against.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use miner::experiment::chart::{fork_diagram, line_chart, Series};
use miner::experiment::{forks, race, selfish, stats, theory};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

mod consensus;
mod live;

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
    DoubleSpend(DoubleSpendArgs),
    /// Forks from propagation delay: N miners, each block reaching the others after the delay;
    /// the stale rate per delay beside 1 − e^(−delay/T), the reorg depths, and (--svg) a branch
    /// diagram of a short run.
    Forks(ForksArgs),
    /// Eyal & Sirer's selfish mining: the pool's share of the main chain beside their closed
    /// form, and the profitability threshold found from the runs beside (1−γ)/(3−2γ).
    Selfish(SelfishArgs),
    /// Finality: the chance that a block k deep is ever reorganised away by an attacker of share
    /// q who began a private branch when it was found (no pre-mined block): what "wait 6
    /// blocks" buys.
    Finality(FinalityArgs),
    /// The seed's proof of stake: account A may make the next block at second t when
    /// SHA-256d(Hash(B_prev) ‖ A ‖ t) ≤ bal(A)·M/D. Each account's share of blocks against its
    /// share of stake (χ²), block intervals, and the hashes a block costs beside PoW's.
    Pos(consensus::PosArgs),
    /// Delegated proof of stake: stake-weighted votes elect N delegates that produce in a
    /// shuffled round-robin; a block is irreversible once 2/3 + 1 of them have built on it.
    /// Time to irreversibility against N and offline delegates, throughput, concentration.
    Dpos(consensus::DposArgs),
    /// PBFT (Castro & Liskov): N replicas, REQUEST / PRE-PREPARE / PREPARE / COMMIT / REPLY,
    /// checkpoints, view changes, injected faults. Safety and liveness per fault count,
    /// messages per request against N, latency.
    Pbft(consensus::PbftArgs),
    /// PoW (the engine's real hashing), PoS, DPoS and PBFT side by side: throughput, time to
    /// finality, hashes and messages per block, tolerance to faulty participants.
    Compare(consensus::CompareArgs),
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

#[derive(Args, Debug)]
struct DoubleSpendArgs {
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
    give_up: Option<u32>,
    /// Mean block interval in seconds: turns the attack's length in blocks into time (sim), the
    /// live network's block time (live) [default: 600 (sim), 0.5 (live)].
    #[arg(long, value_name = "S", value_parser = positive)]
    block_time: Option<f64>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct FinalityArgs {
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
    give_up: Option<u32>,
    /// Live: the network's mean block interval in seconds [default: 0.5].
    #[arg(long, value_name = "S", value_parser = positive)]
    block_time: Option<f64>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct ForksArgs {
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
    common: Common,
}

#[derive(Args, Debug)]
struct SelfishArgs {
    /// Selfish pool shares α, comma-separated, each in (0, 0.5), ascending for the threshold
    /// [default: 0.2,0.25,0.3,0.35,0.4,0.45 (sim), 0.35 (live)].
    #[arg(long, value_name = "A[,A...]", value_delimiter = ',', value_parser = pool_share)]
    alpha: Vec<f64>,
    /// γ: the share of honest miners that mine on the pool's block during a tie, each in [0, 1]
    /// (live: rounded to whole honest nodes, at most (N−1)/N) [default: 0,0.5].
    #[arg(long, value_name = "G[,G...]", value_delimiter = ',', default_values_t = [0.0, 0.5], value_parser = unit)]
    gamma: Vec<f64>,
    /// Blocks per (α, γ) [default: 200000 (sim), 100 (live)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(10..=1_000_000_000))]
    blocks: Option<u64>,
    /// Live: honest nodes, each mining an equal part of 1 − α.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=32))]
    honest_nodes: u64,
    /// Live: the honest nodes' --relay-delay in ms; the pool's block must reach the γ-nodes
    /// before the honest one does, so keep it well above a few milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100.0, value_parser = non_negative)]
    relay_delay: f64,
    /// Live: the network's mean block interval in seconds [default: 1].
    #[arg(long, value_name = "S", value_parser = positive)]
    block_time: Option<f64>,
    #[command(flatten)]
    common: Common,
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

impl DoubleSpendArgs {
    fn attacker(&self) -> Vec<f64> {
        or(&self.attacker, self.common.live(), &[0.1, 0.3], &[0.3])
    }
    fn confirmations(&self) -> Vec<u32> {
        or(
            &self.confirmations,
            self.common.live(),
            &[1, 2, 3, 4, 5, 6],
            &[1, 2],
        )
    }
    fn trials(&self) -> u64 {
        self.trials
            .unwrap_or(if self.common.live() { 20 } else { 100_000 })
    }
    fn block_time(&self) -> f64 {
        self.block_time
            .unwrap_or(if self.common.live() { 0.5 } else { 600.0 })
    }
}

impl FinalityArgs {
    fn attacker(&self) -> Vec<f64> {
        or(&self.attacker, self.common.live(), &[0.1], &[0.3])
    }
    fn depth(&self) -> Vec<u32> {
        or(
            &self.depth,
            self.common.live(),
            &[1, 2, 3, 4, 5, 6],
            &[1, 2],
        )
    }
    fn trials(&self) -> u64 {
        self.trials
            .unwrap_or(if self.common.live() { 20 } else { 100_000 })
    }
}

impl ForksArgs {
    fn nodes(&self) -> u64 {
        self.nodes
            .unwrap_or(if self.common.live() { 3 } else { 10 })
    }
    fn delay(&self) -> Vec<f64> {
        or(
            &self.delay,
            self.common.live(),
            &[0.0, 1000.0, 5000.0, 20000.0],
            &[0.0, 100.0, 300.0],
        )
    }
    fn block_time(&self) -> f64 {
        self.block_time
            .unwrap_or(if self.common.live() { 1.0 } else { 600.0 })
    }
    fn blocks(&self) -> u64 {
        self.blocks
            .unwrap_or(if self.common.live() { 60 } else { 100_000 })
    }
    /// Each miner's share, normalised.
    fn shares(&self) -> Result<Vec<f64>> {
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

impl SelfishArgs {
    fn alpha(&self) -> Vec<f64> {
        or(
            &self.alpha,
            self.common.live(),
            &[0.2, 0.25, 0.3, 0.35, 0.4, 0.45],
            &[0.35],
        )
    }
    fn blocks(&self) -> u64 {
        self.blocks
            .unwrap_or(if self.common.live() { 100 } else { 200_000 })
    }
}

fn parse_f64(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{text}: expected a number"))
}

fn share(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "{text}: a share of the hash rate is between 0 and 1, e.g. 0.1"
        ))
    }
}

fn pool_share(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 && v < 0.5 {
        Ok(v)
    } else {
        Err(format!(
            "{text}: a selfish pool's share is between 0 and 0.5 (from half the hash rate it simply out-mines everyone), e.g. 0.3"
        ))
    }
}

fn unit(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{text}: expected a value from 0 to 1"))
    }
}

fn positive(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{text}: expected a number above 0"))
    }
}

fn hashrate(text: &str) -> Result<f64, String> {
    miner::experiment::retarget::parse_rate(text)
        .filter(|r| *r >= 100.0)
        .ok_or_else(|| format!("{text}: expected a hash rate of at least 100 H/s, e.g. 50k"))
}

fn non_negative(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{text}: expected a number of 0 or more"))
    }
}

pub(crate) fn experiment(args: ExperimentArgs) -> Result<()> {
    let started = Instant::now();
    let (report, out, live) = match &args.kind {
        Kind::DoubleSpend(a) if a.common.live() => (live::double_spend(a)?, &a.common, true),
        Kind::Finality(a) if a.common.live() => (live::finality(a)?, &a.common, true),
        Kind::Forks(a) if a.common.live() => (live::forks(a)?, &a.common, true),
        Kind::Selfish(a) if a.common.live() => (live::selfish(a)?, &a.common, true),
        Kind::DoubleSpend(a) => (double_spend(a), &a.common, false),
        Kind::Finality(a) => (finality(a), &a.common, false),
        Kind::Forks(a) => (forks_run(a)?, &a.common, false),
        Kind::Selfish(a) => (selfish_run(a)?, &a.common, false),
        Kind::Pos(a) => {
            return emit_timed(consensus::pos(a)?, &a.out, false, started);
        }
        Kind::Dpos(a) => {
            return emit_timed(consensus::dpos(a)?, &a.out, false, started);
        }
        Kind::Pbft(a) => {
            let live = a.mode == consensus::PbftMode::Live;
            return emit_timed(consensus::pbft(a)?, &a.out, live, started);
        }
        Kind::Compare(a) => {
            return emit_timed(consensus::compare(a)?, &a.out, false, started);
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

fn double_spend(a: &DoubleSpendArgs) -> Report {
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

fn finality(a: &FinalityArgs) -> Report {
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

fn forks_run(a: &ForksArgs) -> Result<Report> {
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

fn selfish_run(a: &SelfishArgs) -> Result<Report> {
    let mut rows = Vec::new();
    let mut blocks = 0;
    let mut thresholds = Vec::new();
    for &gamma in &a.gamma {
        let mut curve = Vec::new();
        for alpha in a.alpha() {
            let params = selfish::SelfishParams {
                alpha,
                gamma,
                blocks: a.blocks(),
                seed: a.common.out.seed,
            };
            params
                .check()
                .map_err(|e| anyhow::anyhow!("--alpha {alpha} --gamma {gamma}: {e}"))?;
            let r = selfish::run(&params);
            blocks += r.blocks;
            progress(&format!(
                "alpha {alpha} gamma {gamma}: revenue {:.4}",
                r.revenue
            ));
            curve.push((alpha, r.revenue));
            rows.push(json!({
                "alpha": alpha,
                "gamma": gamma,
                "revenue": r.revenue,
                "ci95": [r.ci95.0, r.ci95.1],
                "theory": theory::selfish_revenue(alpha, gamma),
                "main_chain": r.main_chain,
                "pool_blocks": r.pool_blocks,
                "blocks": r.blocks,
            }));
        }
        // Where the measured revenue crosses α: linear between the neighbouring points.
        let found = curve.windows(2).find_map(|w| {
            let (a0, r0) = w[0];
            let (a1, r1) = w[1];
            let (d0, d1) = (r0 - a0, r1 - a1);
            (d0 <= 0.0 && d1 > 0.0).then(|| a0 + (a1 - a0) * (-d0) / (d1 - d0))
        });
        thresholds.push(json!({
            "gamma": gamma,
            "found": found,
            "theory": theory::selfish_threshold(gamma),
        }));
    }
    let svg = plot_selfish(&rows);
    Ok(Report {
        footer: None,
        kind: "selfish",
        columns: vec!["alpha", "gamma", "revenue", "ci95", "theory"],
        rows,
        extra: vec![("thresholds", Value::Array(thresholds))],
        notes: vec![
            "theory: Eyal & Sirer 2014, (α(1−α)²(4α+γ(1−2α)) − α³) / (1 − α(1+(2−α)α)); threshold (1−γ)/(3−2γ), found where the measured revenue crosses α (linear between neighbouring α)".into(),
            "ci95: a ratio estimate over the independent cycles between the pool's returns to no lead".into(),
        ],
        svg: Some(svg),
        blocks,
    })
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

/// A log-scale chart of p against `x` for each q: measured points with their intervals, and
/// the reference curves named in `refs`.
fn plot_by_q(rows: &[Value], x: &str, xlabel: &str, refs: &[&str]) -> String {
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

fn plot_selfish(rows: &[Value]) -> String {
    let mut series: Vec<Series> = Vec::new();
    let mut gammas: Vec<f64> = rows.iter().filter_map(|r| r["gamma"].as_f64()).collect();
    gammas.sort_by(f64::total_cmp);
    gammas.dedup();
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    for (i, g) in gammas.iter().enumerate() {
        let of_g: Vec<&Value> = rows
            .iter()
            .filter(|r| r["gamma"].as_f64() == Some(*g))
            .collect();
        let colour = colours[i % colours.len()];
        let point = |r: &&Value, key: &str| Some((r["alpha"].as_f64()?, r[key].as_f64()?));
        series.push(Series {
            label: format!("measured, γ = {g}"),
            colour,
            dashed: false,
            points: of_g.iter().filter_map(|r| point(r, "revenue")).collect(),
            bars: of_g
                .iter()
                .filter_map(|r| {
                    Some((
                        r["alpha"].as_f64()?,
                        r["ci95"][0].as_f64()?,
                        r["ci95"][1].as_f64()?,
                    ))
                })
                .collect(),
        });
        series.push(Series {
            label: format!("Eyal & Sirer, γ = {g}"),
            colour,
            dashed: true,
            points: of_g.iter().filter_map(|r| point(r, "theory")).collect(),
            bars: Vec::new(),
        });
    }
    let alphas: Vec<f64> = rows.iter().filter_map(|r| r["alpha"].as_f64()).collect();
    series.push(Series {
        label: "honest share (revenue = α)".into(),
        colour: "#7f7f7f",
        dashed: true,
        points: alphas.iter().map(|a| (*a, *a)).collect(),
        bars: Vec::new(),
    });
    line_chart(
        &series,
        "pool share α",
        "pool's share of the main chain",
        false,
    )
}
