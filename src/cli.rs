//! The command line: clap structs and the handlers that wire the library together.

use crate::backend::gpu::{list_adapters, GpuBackend, GpuError, GpuOptions};
use crate::backend::{Backend, CombinedBackend, CpuBackend, StopAt, NONCE_END};
use crate::bench;
use crate::block::{Payout, DEFAULT_PAYOUT_HEX};
use crate::chain::{Chain, ChainParams};
use crate::hash::calibrate::KernelChoice;
use crate::hash::{display_hash, sha256d, Job, Kernel};
use crate::mining::{mine_next_with_clock, MineOutcome, MinedBlock, SystemClock};
use crate::output::{count, BlockStatus, HashRate, LiveRate};
use crate::pow::retarget::{
    Algorithm, AlgorithmName, RetargetParams, DEFAULT_ASERT_HALF_LIFE_BLOCKS,
    DEFAULT_BITCOIN_WINDOW, DEFAULT_LWMA_WINDOW,
};
use crate::pow::{CompactTarget, Difficulty, Target};
use crate::sim;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A proof-of-work mining engine: Bitcoin-exact block templates and SHA-256d nonce search.
///
/// Difficulty D is the expected number of hashes per block: a block is valid when
/// SHA256d(header), read as a little-endian 256-bit number, is at most floor((2^256-1)/D).
#[derive(Parser, Debug)]
#[command(
    name = "miner",
    version,
    propagate_version = true,
    override_usage = "miner [MINE OPTIONS]\n       miner <COMMAND> [OPTIONS]",
    after_help = "With no command, miner runs `mine`: `miner --difficulty 1e6 --blocks 5` is \
                  `miner mine --difficulty 1e6 --blocks 5`. `miner mine --help` lists its flags."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Mine blocks onto a local chain that starts from the regtest genesis block.
    ///
    /// Prints one line per block (height, hash, nonce, hashes tried, seconds, hash rate), a live
    /// hash-rate line on a terminal, and a summary at the end. Ctrl-C stops cleanly and still
    /// prints the summary.
    Mine(MineArgs),
    /// Search the nonces of one 80-byte header and print every nonce that meets the target.
    Scan(ScanArgs),
    /// Measure hash rates: every CPU kernel against the plain `sha2` loop in the same run, and
    /// the GPU with `--backend gpu|all`.
    Bench(BenchArgs),
    /// List the GPU adapters wgpu finds (the index and name `--adapter` takes).
    Devices(DevicesArgs),
    /// Simulate difficulty controllers under a hash-rate profile, without hashing: a table of
    /// interval statistics and recovery after each step; on request (--csv, --svg, --out) the
    /// series as CSV and an SVG chart.
    RetargetSim(SimArgs),
    /// Serve the local chain over Bitcoin Core's JSON-RPC (getblocktemplate, submitblock, ...)
    /// on 127.0.0.1, so other miners and processes can mine against it.
    Node(NodeArgs),
}

#[derive(Args, Debug)]
struct NodeArgs {
    /// Chain parameters: the preset `regtest`, or a JSON chain file (genesis, subsidy, halving
    /// interval, pow limit, controller; see the README).
    #[arg(long, value_name = "PRESET|FILE", default_value = "regtest")]
    chain: String,
    /// Where the chain store (chain.redb) and the cookie file (.cookie) live
    /// [default: the user's data directory, e.g. ~/.local/share/miner].
    #[arg(long, value_name = "DIR")]
    datadir: Option<std::path::PathBuf>,
    /// Address to listen on. Anything but loopback exposes the node to the network.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    rpcbind: std::net::IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, value_name = "PORT", default_value_t = 18443)]
    rpcport: u16,
    /// RPC user name (with --rpcpassword) instead of a cookie file.
    #[arg(long, value_name = "USER", requires = "rpcpassword")]
    rpcuser: Option<String>,
    /// RPC password (with --rpcuser).
    #[arg(long, value_name = "PASSWORD", requires = "rpcuser")]
    rpcpassword: Option<String>,
    /// Starting difficulty D of the chain (as for `mine`).
    #[arg(long, short = 'd', value_name = "D", default_value = "1e7", value_parser = parse_difficulty, allow_negative_numbers = true)]
    difficulty: Difficulty,
    /// Seconds a longpoll waits for a new tip before answering anyway.
    #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    longpoll_timeout: u64,
    #[command(flatten)]
    retarget: RetargetArgs,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Which hardware searches nonces.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BackendChoice {
    /// CPU threads running the fastest (or `--kernel`) kernel.
    Cpu,
    /// The GPU compute shader through wgpu (Vulkan).
    Gpu,
    /// CPU and GPU together, sharing the nonce range; CPU only if no GPU is found.
    All,
}

#[derive(Args, Debug)]
struct BackendArgs {
    /// Where to hash: cpu, gpu, or all (both, splitting the nonce range).
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    backend: BackendChoice,
    /// CPU worker threads [default: one per logical CPU].
    #[arg(long, short = 't', value_name = "T", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// CPU kernel: avx512, sha-ni, avx2, soft or sha2 [default: the fastest on this CPU, measured
    /// at start-up (tens of ms) and cached per CPU model in the data directory's
    /// kernel-calibration.json].
    #[arg(long, value_name = "NAME")]
    kernel: Option<Kernel>,
    /// Measure the CPU kernels again instead of using the cached choice (and update the cache).
    #[arg(long, conflicts_with = "kernel")]
    recalibrate: bool,
    #[command(flatten)]
    gpu: GpuArgs,
    /// Where the kernel choice is cached (set by the command from its data directory; the
    /// user's data directory when unset).
    #[arg(skip)]
    kernel_cache_dir: std::cell::OnceCell<Option<std::path::PathBuf>>,
    /// The CPU kernel choice, made once when the first CPU backend is built.
    #[arg(skip)]
    kernel_choice: std::cell::OnceCell<KernelChoice>,
}

#[derive(Args, Debug)]
struct GpuArgs {
    /// GPU adapter: its index (a number is always an index) or part of its name, as
    /// `miner devices` lists them [default: the most capable, discrete first].
    #[arg(long, value_name = "NAME|INDEX")]
    adapter: Option<String>,
    /// GPU nonces per shader invocation.
    #[arg(long, value_name = "N", default_value_t = GpuOptions::default().nonces_per_invocation,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    gpu_nonces_per_invocation: u32,
    /// GPU invocations per workgroup.
    #[arg(long, value_name = "N", default_value_t = GpuOptions::default().workgroup_size,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    gpu_workgroup_size: u32,
}

impl GpuArgs {
    fn open(&self) -> Result<GpuBackend, GpuError> {
        let options = GpuOptions {
            nonces_per_invocation: self.gpu_nonces_per_invocation,
            workgroup_size: self.gpu_workgroup_size,
            ..GpuOptions::default()
        };
        GpuBackend::new(self.adapter.as_deref(), options)
    }
}

/// Most `--threads` per logical CPU: more only adds switching, and thousands of threads make the
/// start-up look like a hang.
pub const MAX_THREADS_PER_CPU: usize = 64;

/// Refuses a `--threads` far above the logical CPUs, naming the limit and the CPU count.
fn check_threads(threads: Option<u16>) -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let most = cpus * MAX_THREADS_PER_CPU;
    match threads {
        Some(t) if usize::from(t) > most => bail!(
            "--threads {t}: at most {most} ({MAX_THREADS_PER_CPU} per logical CPU; this machine has {cpus}); \
             more threads only slow the search. Leave --threads out for one per CPU ({cpus})"
        ),
        _ => Ok(()),
    }
}

impl BackendArgs {
    fn cpu(&self) -> Result<CpuBackend> {
        check_threads(self.threads)?;
        let kernel = self.choose_kernel().kernel;
        CpuBackend::new(kernel, self.threads.map(usize::from)).context("--kernel")
    }

    /// Caches the kernel choice under `datadir` (the command's `--datadir`; `None`: the user's
    /// data directory). Call before [`BackendArgs::build`].
    fn with_datadir(&self, datadir: Option<&std::path::Path>) -> &Self {
        let _ = self.kernel_cache_dir.set(data_dir(datadir, "").ok());
        self
    }

    /// The CPU kernel and why: `--kernel`, else the cached calibration for this CPU, else a fresh
    /// one (tens of ms). Made once; cache problems are warnings.
    fn choose_kernel(&self) -> &KernelChoice {
        self.kernel_choice.get_or_init(|| {
            let dir = self
                .kernel_cache_dir
                .get_or_init(|| data_dir(None, "").ok())
                .as_deref();
            let choice = KernelChoice::resolve(self.kernel, dir, self.recalibrate);
            if let Some(w) = &choice.warning {
                eprintln!("warning: {w}");
            }
            choice
        })
    }

    /// The kernel choice, if a CPU backend was built: for the header line.
    fn kernel_line(&self) -> String {
        self.kernel_choice
            .get()
            .map_or_else(String::new, |c| format!("; kernel {}", c.summary()))
    }

    /// `kernel`, `kernel_choice` and `kernel_rates_mhs` for `--json` summaries (null without a
    /// CPU backend).
    fn kernel_json(&self) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
        match self.kernel_choice.get() {
            Some(c) => (
                json!(c.kernel.name()),
                json!(c.reason.name()),
                c.rates_json(),
            ),
            None => (json!(null), json!(null), json!(null)),
        }
    }

    /// One line per flag given that the chosen backend does not read.
    fn ignored_flags(&self) -> Vec<String> {
        let defaults = GpuOptions::default();
        let mut out = Vec::new();
        if self.backend == BackendChoice::Cpu {
            let given: Vec<&str> = [
                (self.gpu.adapter.is_some(), "--adapter"),
                (
                    self.gpu.gpu_nonces_per_invocation != defaults.nonces_per_invocation,
                    "--gpu-nonces-per-invocation",
                ),
                (
                    self.gpu.gpu_workgroup_size != defaults.workgroup_size,
                    "--gpu-workgroup-size",
                ),
            ]
            .iter()
            .filter(|(g, _)| *g)
            .map(|(_, f)| *f)
            .collect();
            if !given.is_empty() {
                out.push(format!(
                    "{} ignored: the backend is the CPU; add --backend gpu (or all) to use the GPU",
                    given.join(", ")
                ));
            }
        }
        if self.backend == BackendChoice::Gpu {
            let given: Vec<&str> = [
                (self.threads.is_some(), "--threads"),
                (self.kernel.is_some(), "--kernel"),
                (self.recalibrate, "--recalibrate"),
            ]
            .iter()
            .filter(|(g, _)| *g)
            .map(|(_, f)| *f)
            .collect();
            if !given.is_empty() {
                out.push(format!(
                    "{} ignored: {} the CPU search and the backend is the GPU; \
                     use --backend all for both",
                    given.join(", "),
                    if given.len() == 1 {
                        "it sets"
                    } else {
                        "they set"
                    }
                ));
            }
        }
        out
    }

    fn build(&self) -> Result<Box<dyn Backend>> {
        for warning in self.ignored_flags() {
            eprintln!("warning: {warning}");
        }
        Ok(match self.backend {
            BackendChoice::Cpu => Box::new(self.cpu()?),
            BackendChoice::Gpu => Box::new(self.gpu.open().context("--backend gpu")?),
            BackendChoice::All => match self.gpu.open() {
                Ok(gpu) => Box::new(CombinedBackend::new(vec![
                    (Box::new(self.cpu()?) as Box<dyn Backend>, 1 << 24),
                    (Box::new(gpu), 1 << 30),
                ])),
                Err(e) => {
                    eprintln!("warning: --backend all runs on the CPU only: {e}");
                    Box::new(self.cpu()?)
                }
            },
        })
    }
}

#[derive(Args, Debug)]
struct MineArgs {
    /// Difficulty D, the expected hashes per block: 250000, 1e6, 1.5e9 (at least 1).
    ///
    /// The header stores the target as compact nBits, which rounds it down slightly; the
    /// effective difficulty is printed next to D.
    #[arg(long, short = 'd', value_name = "D", default_value = "1e7", value_parser = parse_difficulty, allow_negative_numbers = true)]
    difficulty: Difficulty,
    /// Stop after N blocks [default: mine until Ctrl-C].
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    blocks: Option<u64>,
    /// Coinbase payout: an address of the chain's network (regtest: bcrt1…, m…, n…, 2…; a
    /// mainnet chain file: bc1…, 1…, 3…) or an output script in hex.
    #[arg(long, value_name = "ADDR|SCRIPT", default_value = DEFAULT_PAYOUT_HEX, value_parser = parse_payout_arg)]
    payout: Payout,
    /// Print one JSON object per line: one per block, then a summary.
    #[arg(long)]
    json: bool,
    /// Chain parameters: the preset `regtest`, or a JSON chain file (genesis, subsidy, halving
    /// interval, pow limit, controller; see the README).
    #[arg(long, value_name = "PRESET|FILE", default_value = "regtest")]
    chain: String,
    /// Data directory of the crash-safe chain store; each set of chain rules (preset or file,
    /// controller, starting difficulty) keeps its own chain in a subdirectory, continued on the
    /// next run with the same rules, and `miner node` with the same flags serves it
    /// [default: the user's data directory, e.g. ~/.local/share/miner].
    #[arg(long, value_name = "DIR", conflicts_with = "node")]
    datadir: Option<std::path::PathBuf>,
    /// Mine a throwaway chain in memory instead (nothing is stored).
    #[arg(long, conflicts_with_all = ["datadir", "node"])]
    memory: bool,
    /// Mine for a node instead of a local chain: its JSON-RPC URL (getblocktemplate and
    /// submitblock), e.g. http://127.0.0.1:18443 for `miner node` or a regtest bitcoind.
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// RPC user for --node (with --rpcpassword).
    #[arg(long, value_name = "USER", requires = "rpcpassword", requires = "node")]
    rpcuser: Option<String>,
    /// RPC password for --node (with --rpcuser).
    #[arg(long, value_name = "PASSWORD", requires = "rpcuser")]
    rpcpassword: Option<String>,
    /// Cookie file with the node's credentials (`miner node` and bitcoind write `.cookie`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "node",
        conflicts_with = "rpcuser"
    )]
    rpccookiefile: Option<std::path::PathBuf>,
    #[command(flatten)]
    retarget: RetargetArgs,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Difficulty-controller flags shared by `mine` and `retarget-sim`.
#[derive(Args, Debug, Clone)]
struct RetargetArgs {
    /// Target block interval for the difficulty controller: 600, 10s, 2m, 1h [default: 10s].
    /// Giving it without --retarget selects asert.
    #[arg(long, value_name = "T", value_parser = parse_duration_secs, allow_negative_numbers = true)]
    block_time: Option<i64>,
    /// Difficulty controller: fixed (every block at --difficulty), asert (aserti3-2d), bitcoin
    /// (retarget every --window blocks), lwma (LWMA-1 over --window blocks)
    /// [default: fixed, or asert when --block-time is given].
    #[arg(long, value_name = "ALGO")]
    retarget: Option<AlgorithmName>,
    /// Blocks per window: bitcoin's retarget period [default: 2016] or lwma's N [default: 45].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    window: Option<u32>,
    /// asert's half-life: 3600, 8m, 2h [default: 48 block times].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs, allow_negative_numbers = true)]
    half_life: Option<i64>,
}

/// Default target interval for local mining with a controller.
const DEFAULT_BLOCK_TIME_S: i64 = 10;

impl RetargetArgs {
    /// These flags, with a chain file's controller settings filling what they leave out.
    fn merged(&self, defaults: &crate::chain::ControllerDefaults) -> Result<RetargetArgs> {
        let retarget = match (&self.retarget, &defaults.retarget) {
            (Some(r), _) => Some(*r),
            (None, Some(name)) => Some(name.parse().context("chain file: controller.retarget")?),
            (None, None) => None,
        };
        let merged = RetargetArgs {
            block_time: self.block_time.or(defaults.block_time),
            retarget,
            window: self.window.or(defaults.window),
            half_life: self.half_life.or(defaults.half_life),
        };
        for warning in self.ignored_flags(merged.name()) {
            eprintln!("warning: {warning}");
        }
        merged.check_visible_spacing(self.block_time.is_some())?;
        Ok(merged)
    }

    /// The controller these flags select: --retarget, else asert when --block-time is given,
    /// else fixed.
    fn name(&self) -> AlgorithmName {
        self.retarget.unwrap_or(if self.block_time.is_some() {
            AlgorithmName::Asert
        } else {
            AlgorithmName::Fixed
        })
    }

    /// One line per flag given on the command line that the controller `name` does not read.
    fn ignored_flags(&self, name: AlgorithmName) -> Vec<String> {
        let mut out = Vec::new();
        match name {
            AlgorithmName::Fixed => {
                let given: Vec<&str> = [
                    (self.block_time.is_some(), "--block-time"),
                    (self.window.is_some(), "--window"),
                    (self.half_life.is_some(), "--half-life"),
                ]
                .iter()
                .filter(|(g, _)| *g)
                .map(|(_, f)| *f)
                .collect();
                if !given.is_empty() {
                    out.push(format!(
                        "{} ignored: --retarget fixed keeps every block at --difficulty; \
                         use --retarget asert, bitcoin or lwma for a controller that reads {}",
                        given.join(", "),
                        if given.len() == 1 { "it" } else { "them" }
                    ));
                }
            }
            AlgorithmName::Asert => {
                if self.window.is_some() {
                    out.push(
                        "--window ignored: asert has no window (it reads --half-life); \
                         --window is for --retarget bitcoin or lwma"
                            .into(),
                    );
                }
            }
            AlgorithmName::Bitcoin | AlgorithmName::Lwma => {
                if self.half_life.is_some() {
                    let which = if name == AlgorithmName::Lwma {
                        "lwma"
                    } else {
                        "bitcoin"
                    };
                    out.push(format!(
                        "--half-life ignored: {which} has no half-life (it reads --window); \
                         --half-life is for --retarget asert"
                    ));
                }
            }
        }
        out
    }

    /// Refuses a block time the controller cannot see. Header times are whole seconds and a
    /// solve time counts as at least 1 s in LWMA, so at a 1 s target every fast block looks on
    /// time and the difficulty can never rise.
    fn check_visible_spacing(&self, from_flag: bool) -> Result<()> {
        let spacing = self.spacing();
        if self.name() == AlgorithmName::Lwma && spacing < 2 {
            let source = if from_flag {
                format!("--block-time {spacing}")
            } else {
                format!("the chain file's controller.block_time {spacing}")
            };
            bail!(
                "{source}: lwma cannot work at a {spacing} s block time: header times are whole \
                 seconds and lwma counts every solve time as at least 1 s, so blocks faster than \
                 the target look on time and the difficulty never rises. Use --block-time 2 or \
                 more, or --retarget asert (which reads the total time since its anchor)"
            );
        }
        Ok(())
    }

    fn spacing(&self) -> i64 {
        self.block_time.unwrap_or(DEFAULT_BLOCK_TIME_S)
    }

    fn algorithm(&self, name: AlgorithmName) -> Algorithm {
        let spacing = self.spacing();
        match name {
            AlgorithmName::Fixed => Algorithm::Fixed,
            AlgorithmName::Bitcoin => Algorithm::Bitcoin {
                window: self.window.unwrap_or(DEFAULT_BITCOIN_WINDOW),
            },
            AlgorithmName::Asert => Algorithm::Asert {
                half_life: self
                    .half_life
                    .unwrap_or(DEFAULT_ASERT_HALF_LIFE_BLOCKS * spacing),
            },
            AlgorithmName::Lwma => Algorithm::Lwma {
                window: self.window.unwrap_or(DEFAULT_LWMA_WINDOW),
            },
        }
    }

    /// The controller `mine` runs, starting at `initial`.
    fn params(&self, initial: Target, pow_limit: Target) -> RetargetParams {
        let algorithm = self.algorithm(self.name());
        // A controller never goes easier than the limit, so it starts no easier either.
        let initial = if algorithm == Algorithm::Fixed {
            initial
        } else {
            initial.min(pow_limit)
        };
        RetargetParams {
            algorithm,
            spacing: self.spacing(),
            pow_limit,
            initial: initial.to_compact_lossy(),
        }
    }
}

#[derive(Args, Debug)]
struct SimArgs {
    /// Controllers to compare, comma-separated: asert,bitcoin,lwma,fixed.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "asert,bitcoin,lwma"
    )]
    algo: Vec<AlgorithmName>,
    /// Blocks to simulate.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    blocks: u64,
    /// Hash rate over the run: 'steps' (1 MH/s; 10x from N/4; 1x from N/2; an on/off miner
    /// from 3N/4), or segments like '1M,10M@2500,1M@5000,onoff(1M/10M/50)@7500' (H/s with
    /// k/M/G/T; '@' gives the block a segment starts at).
    #[arg(long, value_name = "PROFILE", default_value = "steps")]
    hashrate: String,
    /// Random seed (same seed, same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the per-block series here as CSV (nothing is written unless asked).
    #[arg(long, value_name = "FILE")]
    csv: Option<std::path::PathBuf>,
    /// Draw difficulty, hash rate and interval over height here as SVG (nothing is written
    /// unless asked).
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
    /// Write both into this directory (created if missing), as retarget-sim.csv and
    /// retarget-sim.svg; --csv and --svg still name their own files.
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    retarget: RetargetArgs,
}

#[derive(Args, Debug)]
struct ScanArgs {
    /// The 80-byte block header as 160 hex digits (its nonce field is ignored).
    #[arg(long, value_name = "HEX", value_parser = parse_header)]
    header: [u8; 80],
    /// First nonce to try.
    #[arg(long, value_name = "S", default_value_t = 0, value_parser = parse_nonce, allow_negative_numbers = true)]
    start: u32,
    /// Nonces to try [default: from --start to the end of the range, 2^32].
    #[arg(long, value_name = "C", value_parser = parse_count, allow_negative_numbers = true)]
    count: Option<u64>,
    /// Target floor((2^256-1)/D) instead of the header's own nBits.
    #[arg(long, short = 'd', value_name = "D", value_parser = parse_difficulty, allow_negative_numbers = true, conflicts_with = "bits")]
    difficulty: Option<Difficulty>,
    /// Target from these nBits (hex, e.g. 1d00ffff) instead of the header's own.
    #[arg(long, value_name = "B")]
    bits: Option<CompactTarget>,
    /// Print JSON: one object per hit, then a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Seconds per measurement (each kernel is measured on 1 thread and on T threads).
    #[arg(long, short = 's', value_name = "S", default_value_t = 2.0, value_parser = parse_seconds, allow_negative_numbers = true)]
    seconds: f64,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Measure the GPU at every workgroup size and nonces-per-invocation pair (see
    /// --sweep-workgroup-sizes, --sweep-nonces) and report the fastest; needs --backend gpu or all.
    #[arg(long)]
    gpu_sweep: bool,
    /// Workgroup sizes --gpu-sweep tries.
    #[arg(long, value_name = "LIST", value_delimiter = ',', requires = "gpu_sweep",
          default_value = "64,128,256,512",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    sweep_workgroup_sizes: Vec<u32>,
    /// Nonces per invocation --gpu-sweep tries.
    #[arg(long, value_name = "LIST", value_delimiter = ',', requires = "gpu_sweep",
          default_value = "1,2,4,8,16,32,64",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    sweep_nonces: Vec<u32>,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args, Debug)]
struct DevicesArgs {
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

fn parse_difficulty(s: &str) -> Result<Difficulty, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_payout_arg(s: &str) -> Result<Payout, String> {
    Payout::parse(s).map_err(|e| e.to_string())
}

fn parse_header(s: &str) -> Result<[u8; 80], String> {
    let t = s.trim();
    let bytes = hex::decode(t).map_err(|e| {
        format!("not hex ({e}); expected 160 hex digits, the 80-byte header in block order")
    })?;
    <[u8; 80]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "expected 160 hex digits (an 80-byte header), got {} digits ({} bytes)",
            t.len(),
            bytes.len()
        )
    })
}

fn parse_nonce(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("'{s}' is not a nonce; expected an integer from 0 to 4294967295"))
}

fn parse_count(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=NONCE_END).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a nonce count; expected an integer from 1 to 4294967296 (2^32)"
        )),
    }
}

/// Whole seconds from `600`, `10s`, `2m`, `1h`, `1d`; at least 1.
fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    if num.trim().is_empty() {
        return Err(format!(
            "'{s}' is not a duration; use e.g. 600, 10s, 2m or 1h"
        ));
    }
    let mult = match unit {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}'; use s, m, h or d, e.g. 10s or 2m"
            ))
        }
    };
    match num.trim().parse::<f64>() {
        Ok(v)
            if v.is_finite()
                && v * mult >= 1.0
                && v * mult <= 1e12
                && (v * mult).fract() == 0.0 =>
        {
            Ok((v * mult) as i64)
        }
        Ok(v)
            if v.is_finite() && v * mult > 0.0 && (v * mult).fract() != 0.0 && v * mult >= 1.0 =>
        {
            Err(format!(
                "'{s}' is not a whole number of seconds (block times are whole seconds)"
            ))
        }
        Ok(_) => Err(format!("'{s}' must be at least 1 second, e.g. 10s or 2m")),
        Err(_) => Err(format!(
            "'{s}' is not a duration; use e.g. 600, 10s, 2m or 1h"
        )),
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a duration; expected seconds between 0 and 3600, e.g. 2 or 0.5"
        )),
    }
}

/// Entry point for `main`.
pub fn run() -> Result<()> {
    quiet_mesa_runtime_dir();
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    match cli.command {
        Command::Mine(args) => mine(args),
        Command::Scan(args) => scan(args),
        Command::Bench(args) => bench(args),
        Command::Devices(args) => devices(args),
        Command::RetargetSim(args) => retarget_sim(args),
        Command::Node(args) => node(args),
    }
}

/// `argv` with `mine` inserted when no command is named: no arguments at all, or a first
/// argument that is a flag other than help/version (`miner --difficulty 1e6`). A first argument
/// that is not a flag is left to clap, so a mistyped command is still reported as one.
pub fn with_default_command(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = argv.get(1).and_then(|a| a.to_str());
    let mines = match first {
        None => argv.len() <= 1,
        Some(a) => a.starts_with('-') && !matches!(a, "-h" | "--help" | "-V" | "--version"),
    };
    if mines {
        argv.insert(1.min(argv.len()), "mine".into());
    }
    argv
}

/// Mesa's software Vulkan (lavapipe) prints "error: XDG_RUNTIME_DIR is invalid or not set in
/// the environment." whenever wgpu opens it without that variable, which reads like our own
/// failure. When it is unset, point it at a private directory of ours before any thread starts.
#[cfg(unix)]
fn quiet_mesa_runtime_dir() {
    let set =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if set {
        return;
    }
    let dir = std::env::temp_dir().join(format!("miner-runtime-{}", current_uid_tag()));
    let made = std::fs::create_dir_all(&dir).is_ok() && {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok()
    };
    if made {
        // Edition 2021: set_var is safe; this runs first in `run`, before any thread exists.
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

#[cfg(not(unix))]
fn quiet_mesa_runtime_dir() {}

/// The user's name (or "user"), so each user gets their own runtime directory.
#[cfg(unix)]
fn current_uid_tag() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .unwrap_or_else(|| "user".into())
}

/// A cancel flag raised by Ctrl-C (a second Ctrl-C exits at once).
fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    let installed = ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will not stop cleanly: {e}");
    }
    flag
}

fn mine(args: MineArgs) -> Result<()> {
    if let Some(url) = args.node.clone() {
        return mine_for_node(&url, args);
    }
    let backend = args
        .backend
        .with_datadir(args.datadir.as_deref())
        .build()?;
    let params = ChainParams::load(&args.chain).context("--chain")?;
    // As Core's generatetoaddress: an address of another network is refused (a hex script is
    // taken as it is).
    args.payout
        .check_network(params.network)
        .with_context(|| format!("--payout (for --chain {})", args.chain))?;
    let retarget = args
        .retarget
        .merged(&params.controller)?
        .params(args.difficulty.to_target(), params.pow_limit);
    let first = Target::from_compact(retarget.initial).context("--difficulty: nBits for this D")?;
    let store = if args.memory {
        None
    } else {
        let root = data_dir(args.datadir.as_deref(), " or --memory")?;
        Some(Chain::store_path(&root, &params, &retarget))
    };
    let mut chain = match &store {
        Some(path) => Chain::open(path, params, retarget).context("--datadir")?,
        None => Chain::new(params, retarget),
    };
    if let Some(path) = &store {
        let flags = chain_flags(&args.chain, &args.difficulty, chain.retarget());
        note_other_chains(path, &flags, chain.height());
    }
    match &store {
        Some(path) => eprintln!(
            "mining on the {} chain in {} at height {} ({})",
            chain.params().name,
            path.display(),
            chain.height(),
            display_hash(&chain.tip().hash)
        ),
        None => eprintln!(
            "mining on a new in-memory {} chain from genesis {}",
            chain.params().name,
            display_hash(&chain.tip().hash)
        ),
    }
    let controller = match chain.retarget().algorithm {
        Algorithm::Fixed => "fixed".to_string(),
        a => format!("{a}, block time {} s", chain.retarget().spacing),
    };
    eprintln!(
        "D = {} (nBits {}, effective D {}, bdiff {:.6e}); difficulty {controller}; backend {}{}",
        args.difficulty,
        chain.retarget().initial,
        first.difficulty(),
        chain.retarget().initial.bdiff(),
        backend.name(),
        args.backend.kernel_line()
    );
    let cancel = ctrl_c_flag();
    let progress = Arc::new(AtomicU64::new(0));
    let live = LiveRate::start("mining".into(), progress.clone());
    let started = Instant::now();
    let mut mined: Vec<MinedBlock> = Vec::new();
    let mut spare_hashes = 0u64;
    let told_clock = AtomicBool::new(false);
    while args.blocks.is_none_or(|n| (mined.len() as u64) < n) {
        live.set_block(BlockStatus {
            number: mined.len() as u64 + 1,
            of: args.blocks,
            difficulty: Target::from_compact(chain.next_bits()).map_or(0.0, |t| t.work().to_f64()),
        });
        match mine_next_with_clock(
            &mut chain,
            backend.as_ref(),
            &args.payout.script,
            &cancel,
            &progress,
            &SystemClock,
            &mut |wait| {
                // Once per run: the reason holds for every later wait too.
                if !told_clock.swap(true, Ordering::Relaxed) {
                    live.suspend(|| eprintln!("{}", clock_wait_line(wait)));
                }
            },
        )? {
            MineOutcome::Mined(block) => {
                live.suspend(|| print_block(&block, args.json));
                mined.push(*block);
            }
            MineOutcome::Cancelled { hashes, .. } => {
                spare_hashes = hashes;
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(live);
    let interrupted = cancel.load(Ordering::SeqCst);
    print_mine_summary(
        &mined,
        spare_hashes,
        seconds,
        &args.difficulty,
        interrupted,
        args.json,
        &args.backend,
    );
    print_parts(backend.as_ref(), args.json);
    exit_130_if(interrupted);
    Ok(())
}

/// Why mining pauses when blocks come faster than one per second (printed once per run).
fn clock_wait_line(wait: u32) -> String {
    format!(
        "waiting {wait} s for the clock: the chain's median time is more than {} s ahead of it \
         (blocks faster than 1 per s push header times ahead, and a block may be at most 2 h \
         ahead of the clock); mining goes on as the clock catches up, at about 6 blocks per s",
        crate::chain::MAX_FUTURE_BLOCK_TIME
    )
}

fn print_block(b: &MinedBlock, json: bool) {
    let rate = HashRate::from_count(b.hashes, b.seconds);
    if json {
        println!(
            "{}",
            json!({
                "type": "block",
                "height": b.height,
                "hash": display_hash(&b.hash),
                "header": hex::encode(b.header),
                "nonce": b.nonce,
                "extranonce": b.extranonce,
                "bits": format!("{:08x}", b.bits.to_consensus()),
                "difficulty": block_difficulty(b),
                "trials": b.trials,
                "hashes": b.hashes,
                "seconds": b.seconds,
                "hashrate_hs": rate.0,
            })
        );
    } else {
        println!(
            "block {:>5}  {}  D {:>9}  nonce {:>10}  {:>9} trials  {:>9} hashes  {:>7.2} s  {}",
            b.height,
            display_hash(&b.hash),
            count(block_difficulty(b)),
            b.nonce,
            count(b.trials as f64),
            count(b.hashes as f64),
            b.seconds,
            rate
        );
    }
}

fn mine_for_node(url: &str, args: MineArgs) -> Result<()> {
    use crate::client::{run, ClientOptions, RpcClient};
    use crate::node::Credentials;
    let url = &crate::client::parse_node_url(url).context("--node")?;
    let credentials = match (&args.rpcuser, &args.rpcpassword, &args.rpccookiefile) {
        (Some(u), Some(p), _) => Credentials {
            user: u.clone(),
            password: p.clone(),
        },
        (_, _, Some(file)) => Credentials::from_cookie_file(file)
            .with_context(|| format!("--rpccookiefile {}", file.display()))?,
        _ => {
            bail!("--node needs credentials: --rpcuser and --rpcpassword, or --rpccookiefile FILE")
        }
    };
    let client = RpcClient::new(url, &credentials.user, &credentials.password);
    let backend = args.backend.build()?;
    eprintln!(
        "mining for the node at {url} with {}{}",
        backend.name(),
        args.backend.kernel_line()
    );
    let cancel = ctrl_c_flag();
    let progress = Arc::new(AtomicU64::new(0));
    let live = LiveRate::start("mining".into(), progress.clone());
    let started = Instant::now();
    let options = ClientOptions {
        payout: args.payout.script.clone(),
        blocks: args.blocks,
        max_backoff: std::time::Duration::from_secs(30),
    };
    let json_out = args.json;
    let accepted = run(
        &client,
        backend.as_ref(),
        &options,
        &cancel,
        &progress,
        |b| {
            live.suspend(|| {
                let rate = HashRate::from_count(b.hashes, b.seconds);
                let verdict = b.rejected.clone().unwrap_or_else(|| "accepted".into());
                if json_out {
                    println!(
                        "{}",
                        json!({"type": "block", "height": b.height, "hash": display_hash(&b.hash),
                               "header": hex::encode(b.header), "nonce": b.nonce, "trials": b.trials, "hashes": b.hashes,
                               "seconds": b.seconds, "hashrate_hs": rate.0, "accepted": b.rejected.is_none(),
                               "node_answer": b.rejected})
                    );
                } else {
                    println!(
                        "block {:>5}  {}  nonce {:>10}  {:>9} trials  {:>9} hashes  {:>7.2} s  {}  {verdict}",
                        b.height,
                        display_hash(&b.hash),
                        b.nonce,
                        count(b.trials as f64),
                        count(b.hashes as f64),
                        b.seconds,
                        rate
                    );
                }
            })
        },
        |event| live.suspend(|| eprintln!("{event}")),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    drop(live);
    let rate = HashRate::from_count(progress.load(Ordering::SeqCst), seconds);
    let (kernel, kernel_choice, kernel_rates) = args.backend.kernel_json();
    if args.json {
        println!(
            "{}",
            json!({"type": "summary", "accepted": accepted, "seconds": seconds, "mean_hashrate_hs": rate.0,
                   "interrupted": cancel.load(Ordering::SeqCst), "kernel": kernel,
                   "kernel_choice": kernel_choice, "kernel_rates_mhs": kernel_rates})
        );
    } else {
        println!("{accepted} blocks accepted by {url} in {seconds:.2} s, {rate}");
    }
    exit_130_if(cancel.load(Ordering::SeqCst));
    Ok(())
}

/// Exits with status 130, as shells expect of a program stopped by SIGINT, once the summary
/// is out.
fn exit_130_if(interrupted: bool) {
    if interrupted {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(130);
    }
}

/// Expected hashes for a block at its own nBits: the work of its target.
fn block_difficulty(b: &MinedBlock) -> f64 {
    Target::from_compact(b.bits).map_or(0.0, |t| t.work().to_f64())
}

/// The mean of `v` and the half-width of its 95% interval (mean ± 1.96 s / sqrt(n), s the
/// sample standard deviation; `NaN` below two values).
fn mean_ci95(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (var / n).sqrt())
}

fn print_mine_summary(
    mined: &[MinedBlock],
    spare_hashes: u64,
    seconds: f64,
    d: &Difficulty,
    interrupted: bool,
    json: bool,
    backend_args: &BackendArgs,
) {
    let n = mined.len();
    let trials: Vec<f64> = mined.iter().map(|b| b.trials as f64).collect();
    let hashes: Vec<f64> = mined.iter().map(|b| b.hashes as f64).collect();
    let block_seconds: f64 = mined.iter().map(|b| b.seconds).sum();
    let total_hashes = mined.iter().map(|b| b.hashes).sum::<u64>() + spare_hashes;
    let total_trials = mined.iter().map(|b| b.trials).sum::<u64>();
    let (mean_trials, trials_half) = mean_ci95(&trials);
    let (mean_hashes, hashes_half) = mean_ci95(&hashes);
    let (expected, _) = mean_ci95(&mined.iter().map(block_difficulty).collect::<Vec<_>>());
    // Work done past each block's winning nonce (in flight when the hit landed), as a share of
    // the trials.
    let overshoot = if total_trials > 0 {
        let mined_hashes = total_hashes - spare_hashes;
        (mined_hashes as f64 - total_trials as f64) / total_trials as f64
    } else {
        f64::NAN
    };
    let mean_seconds = if n > 0 {
        block_seconds / n as f64
    } else {
        f64::NAN
    };
    let rate = HashRate::from_count(total_hashes, seconds);
    let finite = |x: f64| if x.is_finite() { json!(x) } else { json!(null) };
    let interval = |mean: f64, half: f64| {
        if half.is_finite() {
            json!([(mean - half).max(0.0), mean + half])
        } else {
            json!(null)
        }
    };
    let (kernel, kernel_choice, kernel_rates) = backend_args.kernel_json();
    if json {
        println!(
            "{}",
            json!({
                "type": "summary",
                "blocks": n,
                "seconds": seconds,
                "hashes": total_hashes,
                "trials": total_trials,
                "mean_seconds_per_block": finite(mean_seconds),
                "mean_trials_per_block": finite(mean_trials),
                "mean_trials_per_block_ci95": interval(mean_trials, trials_half),
                "mean_hashes_per_block": finite(mean_hashes),
                "mean_hashes_per_block_ci95": interval(mean_hashes, hashes_half),
                "overshoot": finite(overshoot),
                "difficulty": d.as_f64(),
                "expected_hashes_per_block": finite(expected),
                "mean_hashrate_hs": rate.0,
                "interrupted": interrupted,
                "kernel": kernel,
                "kernel_choice": kernel_choice,
                "kernel_rates_mhs": kernel_rates,
            })
        );
        return;
    }
    if interrupted {
        println!("interrupted");
    }
    if n == 0 {
        println!(
            "no block found: {} hashes in {seconds:.2} s, {rate} (you asked for D = {d})",
            count(total_hashes as f64)
        );
        return;
    }
    let ci = if trials_half.is_finite() {
        format!(
            " (95% interval {} .. {})",
            count((mean_trials - trials_half).max(0.0)),
            count(mean_trials + trials_half)
        )
    } else {
        String::new()
    };
    println!(
        "{n} blocks in {seconds:.2} s: {mean_seconds:.3} s per block, {rate}; \
         trials per block: mean {}{ci}, expected {} (the blocks' mean D after nBits rounding; \
         you asked for D = {d}); hashes done per block: mean {} ({:+.2}% past the winning nonces)",
        count(mean_trials),
        count(expected),
        count(mean_hashes),
        overshoot * 100.0,
    );
}

fn retarget_sim(args: SimArgs) -> Result<()> {
    let profile = sim::Profile::parse(&args.hashrate, args.blocks).context("--hashrate")?;
    let mut seen = Vec::new();
    let algorithms: Vec<Algorithm> = args
        .algo
        .iter()
        .filter(|a| {
            let new = !seen.contains(*a);
            seen.push(**a);
            new
        })
        .map(|&a| args.retarget.algorithm(a))
        .collect();
    let cfg = sim::SimConfig {
        algorithms,
        spacing: args.retarget.spacing(),
        blocks: args.blocks,
        profile,
        seed: args.seed,
        pow_limit: ChainParams::regtest().pow_limit,
    };
    let runs = sim::simulate(&cfg);
    let stats: Vec<sim::SimStats> = runs.iter().map(|r| sim::stats(r, &cfg)).collect();
    // Files only when asked: --csv/--svg name them, --out DIR gives both a default name there.
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("--out {}: cannot create that directory", dir.display())
        })?;
    }
    let in_out = |name: &str| args.out.as_ref().map(|d| d.join(name));
    let csv = args.csv.clone().or_else(|| in_out("retarget-sim.csv"));
    let svg = args.svg.clone().or_else(|| in_out("retarget-sim.svg"));
    if let Some(path) = &csv {
        sim::write_csv(&runs, path).with_context(|| format!("--csv {}", path.display()))?;
    }
    if let Some(path) = &svg {
        sim::write_svg(&runs, cfg.spacing, path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("--svg {}", path.display()))?;
    }
    let written: Vec<String> = [&csv, &svg]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{}", sim::table(&stats, cfg.spacing));
        println!(
            "recover@H: blocks after the hash-rate step at block H until the {}-block mean interval is within {:.0}% of T",
            sim::RECOVERY_WINDOW,
            sim::RECOVERY_TOLERANCE * 100.0
        );
        if written.is_empty() {
            println!("no files written: --csv FILE, --svg FILE or --out DIR save the series and the chart");
        } else {
            println!("wrote {}", written.join(" and "));
        }
    }
    Ok(())
}

fn scan(args: ScanArgs) -> Result<()> {
    let start = u64::from(args.start);
    let count_nonces = args.count.unwrap_or(NONCE_END - start);
    let end = start + count_nonces;
    if end > NONCE_END {
        bail!(
            "--count: {} from --start {} passes the last nonce 4294967295; the most from there is {}",
            count_nonces,
            args.start,
            NONCE_END - start
        );
    }
    let header_bits = CompactTarget::from_consensus(u32::from_le_bytes([
        args.header[72],
        args.header[73],
        args.header[74],
        args.header[75],
    ]));
    let target = match (&args.difficulty, args.bits) {
        (Some(d), _) => d.to_target(),
        (None, Some(bits)) => Target::from_compact(bits).with_context(|| format!("--bits {bits}"))?,
        (None, None) => Target::from_compact(header_bits).with_context(|| {
            format!("the header's nBits {header_bits} give no usable target; pass --difficulty or --bits")
        })?,
    };
    let backend = args.backend.build()?;
    let job = Job::new(&args.header, &target);
    if !args.json {
        eprintln!(
            "scanning nonces {}..={} against target {target} with {}{}",
            start,
            end - 1,
            backend.name(),
            args.backend.kernel_line()
        );
    }
    let cancel = ctrl_c_flag();
    let progress = Arc::new(AtomicU64::new(0));
    let live = LiveRate::start("scanning".into(), progress.clone());
    let started = Instant::now();
    let report = backend.scan(&job, start..end, StopAt::End, &cancel, &progress)?;
    let seconds = started.elapsed().as_secs_f64();
    drop(live);
    let mut header = args.header;
    for &nonce in &report.hits {
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        let hash = display_hash(&sha256d(&header));
        if args.json {
            println!(
                "{}",
                json!({"type": "hit", "nonce": nonce, "hash": hash, "header": hex::encode(header)})
            );
        } else {
            println!("nonce {nonce:>10}  hash {hash}");
        }
    }
    let rate = HashRate::from_count(report.hashes, seconds);
    let (kernel, kernel_choice, kernel_rates) = args.backend.kernel_json();
    if args.json {
        println!(
            "{}",
            json!({"type": "summary", "hits": report.hits.len(), "hashes": report.hashes,
                   "seconds": seconds, "hashrate_hs": rate.0, "interrupted": report.cancelled,
                   "target": target.to_string(), "kernel": kernel, "kernel_choice": kernel_choice,
                   "kernel_rates_mhs": kernel_rates})
        );
    } else {
        println!(
            "{} hits in {} nonces, {seconds:.2} s, {rate}{}",
            report.hits.len(),
            report.hashes,
            if report.cancelled {
                " (interrupted)"
            } else {
                ""
            }
        );
    }
    print_parts(backend.as_ref(), args.json);
    Ok(())
}

/// Each part's share and rate, for `--backend all`.
fn print_parts(backend: &dyn Backend, json: bool) {
    for p in backend.parts() {
        let rate = HashRate::from_count(p.hashes, p.seconds);
        if json {
            println!(
                "{}",
                json!({"type": "part", "backend": p.name, "hashes": p.hashes,
                       "seconds": p.seconds, "hashrate_hs": rate.0})
            );
        } else {
            println!("  {}: {} hashes, {rate}", p.name, count(p.hashes as f64));
        }
    }
}

fn bench(args: BenchArgs) -> Result<()> {
    check_threads(args.backend.threads)?;
    let threads = args.backend.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let mut tell = |what: &str| {
        if !args.json {
            eprintln!("measuring {what} for {} s", args.seconds);
        }
    };
    if args.gpu_sweep && args.backend.backend == BackendChoice::Cpu {
        bail!("--gpu-sweep measures the GPU: add --backend gpu (or all, to compare with the CPU)");
    }
    // The kernel `mine` would run, chosen before the long measurements load the CPU.
    let default_kernel = (args.backend.backend != BackendChoice::Gpu)
        .then(|| bench::DefaultKernel::new(args.backend.choose_kernel()));
    let kernels = match args.backend.backend {
        BackendChoice::Gpu => Vec::new(),
        _ => bench::run_cpu(args.seconds, threads, &mut tell)?,
    };
    let mut gpu_sweep = None;
    let gpu = match args.backend.backend {
        BackendChoice::Cpu => None,
        choice if args.gpu_sweep => match bench::run_gpu_sweep(
            args.backend.gpu.adapter.as_deref(),
            &args.sweep_workgroup_sizes,
            &args.sweep_nonces,
            args.seconds,
            &kernels,
            &mut tell,
        ) {
            Ok(sweep) => {
                let best = sweep.best().cloned();
                gpu_sweep = Some(sweep);
                best
            }
            Err(e @ GpuError::NoAdapter) if choice == BackendChoice::All => {
                eprintln!("warning: --backend all measures the CPU only: {e}");
                None
            }
            Err(e) => return Err(e).context("--gpu-sweep"),
        },
        choice => match args.backend.gpu.open() {
            Ok(gpu) => {
                tell(&gpu.name());
                Some(bench::run_gpu(&gpu, args.seconds, &kernels)?)
            }
            Err(e) if choice == BackendChoice::All => {
                eprintln!("warning: --backend all measures the CPU only: {e}");
                None
            }
            Err(e) => return Err(e).context("--backend gpu"),
        },
    };
    let report = bench::BenchReport {
        seconds_per_measurement: args.seconds,
        kernels,
        gpu,
        gpu_sweep,
        default_kernel,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        // The table carries the warning; JSON carries the shares, and stderr the warning.
        if let Some(warning) = bench::load_warning(&report.kernels) {
            eprintln!("{warning}");
        }
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

/// `--datadir`, or the user's data directory; `or_else` completes the error's advice.
/// The flags (besides --datadir) that select the chain with these rules, for `mine` and `node`
/// alike: `--chain` unless regtest, `--difficulty`, and the controller's settings in full.
fn chain_flags(chain: &str, difficulty: &Difficulty, retarget: &RetargetParams) -> String {
    let mut flags = Vec::new();
    if chain != "regtest" {
        flags.push(format!("--chain {chain}"));
    }
    flags.push(format!("--difficulty {difficulty}"));
    let spacing = retarget.spacing;
    match retarget.algorithm {
        Algorithm::Fixed => {}
        Algorithm::Asert { half_life } => flags.push(format!(
            "--retarget asert --block-time {spacing} --half-life {half_life}"
        )),
        Algorithm::Bitcoin { window } => flags.push(format!(
            "--retarget bitcoin --block-time {spacing} --window {window}"
        )),
        Algorithm::Lwma { window } => flags.push(format!(
            "--retarget lwma --block-time {spacing} --window {window}"
        )),
    }
    flags.join(" ")
}

/// Records the flags beside the store at `store`, and when its chain is new (height 0) lists
/// the other chains of the data directory with the flags that select them, so a user who
/// mined with other flags sees where those blocks are instead of an empty chain.
fn note_other_chains(store: &std::path::Path, flags: &str, height: u32) {
    if let Err(e) = crate::chain::store::record_flags(store, flags) {
        eprintln!(
            "warning: could not record the chain's flags beside {}: {e}",
            store.display()
        );
    }
    if height != 0 {
        return;
    }
    let Some(root) = store.parent().and_then(std::path::Path::parent) else {
        return;
    };
    let others: Vec<_> = crate::chain::store::list_stores(root)
        .into_iter()
        .filter(|s| s.path != store)
        .collect();
    if others.is_empty() {
        return;
    }
    eprintln!(
        "note: this chain ({flags}) is new; {} holds {} other chain{}, each continued by its own flags:",
        root.display(),
        others.len(),
        if others.len() == 1 { "" } else { "s" }
    );
    for s in others {
        let name = s
            .path
            .strip_prefix(root)
            .unwrap_or(&s.path)
            .display()
            .to_string();
        let height = match (s.height, s.in_use) {
            (_, true) => "in use by another miner process".to_string(),
            (Some(h), _) => format!("height {h}"),
            (None, _) => "unreadable".to_string(),
        };
        let how = match (&s.flags, &s.rules) {
            (Some(f), _) => format!("flags: {f}"),
            (None, Some(r)) => format!("rules: {r}"),
            (None, None) => "flags not recorded".to_string(),
        };
        eprintln!("  {name}: {height}; {how}");
    }
}

fn data_dir(flag: Option<&std::path::Path>, or_else: &str) -> Result<std::path::PathBuf> {
    match flag
        .map(std::path::Path::to_path_buf)
        .or_else(|| dirs::data_dir().map(|d| d.join("miner")))
    {
        Some(d) => Ok(d),
        None => {
            bail!("--datadir: no user data directory is known here; pass --datadir DIR{or_else}")
        }
    }
}

fn node(args: NodeArgs) -> Result<()> {
    use crate::node::{Credentials, NodeState, Server};
    check_threads(args.backend.threads)?;
    let datadir = data_dir(args.datadir.as_deref(), "")?;
    let params = ChainParams::load(&args.chain).context("--chain")?;
    let retarget = args
        .retarget
        .merged(&params.controller)?
        .params(args.difficulty.to_target(), params.pow_limit);
    let store = Chain::store_path(&datadir, &params, &retarget);
    let chain = Chain::open(&store, params, retarget).context("--datadir")?;
    note_other_chains(
        &store,
        &chain_flags(&args.chain, &args.difficulty, chain.retarget()),
        chain.height(),
    );
    let backend = args
        .backend
        .with_datadir(args.datadir.as_deref())
        .build()?;
    let (credentials, cookie) = match (&args.rpcuser, &args.rpcpassword) {
        (Some(user), Some(password)) => (
            Credentials {
                user: user.clone(),
                password: password.clone(),
            },
            None,
        ),
        _ => (Credentials::cookie(), Some(datadir.join(".cookie"))),
    };
    let mut state = NodeState::new(chain, backend);
    state.longpoll_timeout = std::time::Duration::from_secs(args.longpoll_timeout);
    let state = Arc::new(state);
    let server = Server::bind(
        std::net::SocketAddr::new(args.rpcbind, args.rpcport),
        state.clone(),
        credentials,
        cookie.clone(),
    )?;
    let (height, tip) = state.tip();
    let addr = server
        .local_addr()
        .map_or_else(|| "?".into(), |a| a.to_string());
    eprintln!(
        "miner node: chain in {} at height {height} ({tip})",
        store.display()
    );
    match &cookie {
        Some(path) => eprintln!(
            "listening on http://{addr} (auth: cookie file {})",
            path.display()
        ),
        None => eprintln!("listening on http://{addr} (auth: --rpcuser/--rpcpassword)"),
    }
    let stop = ctrl_c_flag();
    server.run(stop);
    let (height, tip) = state.tip();
    eprintln!("miner node stopped at height {height} ({tip})");
    Ok(())
}

fn devices(args: DevicesArgs) -> Result<()> {
    let adapters = list_adapters();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!("no GPU adapters found (install a Vulkan driver, e.g. apt-get install mesa-vulkan-drivers)");
    }
    for a in adapters {
        println!(
            "{}: {} ({}, {}, driver {})",
            a.index, a.name, a.backend, a.device_type, a.driver
        );
    }
    Ok(())
}
