//! The command line: clap structs and the handlers that wire the library together.

use crate::backend::gpu::{list_adapters, GpuBackend, GpuError, GpuOptions};
use crate::backend::{Backend, CombinedBackend, CpuBackend, StopAt, NONCE_END};
use crate::bench;
use crate::block::{parse_payout, DEFAULT_PAYOUT_HEX};
use crate::chain::{Chain, ChainParams};
use crate::hash::{display_hash, sha256d, Job, Kernel};
use crate::mining::{mine_next, MineOutcome, MinedBlock};
use crate::output::{count, HashRate, LiveRate};
use crate::pow::{CompactTarget, Difficulty, Target};
use anyhow::{bail, Context, Result};
use bitcoin::ScriptBuf;
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
#[command(name = "miner", version, propagate_version = true)]
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
    /// CPU kernel: avx512, sha-ni, avx2, soft or sha2 [default: the fastest this CPU supports].
    #[arg(long, value_name = "NAME")]
    kernel: Option<Kernel>,
    #[command(flatten)]
    gpu: GpuArgs,
}

#[derive(Args, Debug)]
struct GpuArgs {
    /// GPU adapter: its index or part of its name, as `miner devices` lists them
    /// [default: the most capable, discrete first].
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

impl BackendArgs {
    fn cpu(&self) -> Result<CpuBackend> {
        let kernel = self.kernel.unwrap_or_else(Kernel::best);
        CpuBackend::new(kernel, self.threads.map(usize::from)).context("--kernel")
    }

    fn build(&self) -> Result<Box<dyn Backend>> {
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
    /// Coinbase payout: an address (bc1…, 1…, 3…, tb1…, bcrt1…) or an output script in hex.
    #[arg(long, value_name = "ADDR|SCRIPT", default_value = DEFAULT_PAYOUT_HEX, value_parser = parse_payout_arg)]
    payout: ScriptBuf,
    /// Print one JSON object per line: one per block, then a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
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

fn parse_payout_arg(s: &str) -> Result<ScriptBuf, String> {
    parse_payout(s).map_err(|e| e.to_string())
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
    let cli = Cli::parse();
    match cli.command {
        Command::Mine(args) => mine(args),
        Command::Scan(args) => scan(args),
        Command::Bench(args) => bench(args),
        Command::Devices(args) => devices(args),
    }
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
    let backend = args.backend.build()?;
    let target = args.difficulty.to_target();
    let bits = target.to_compact_lossy();
    let effective = Target::from_compact(bits).context("--difficulty: nBits for this D")?;
    let mut chain = Chain::new(ChainParams::regtest(), bits);
    eprintln!(
        "mining on a new {} chain from genesis {}",
        chain.params().name,
        display_hash(&chain.tip().hash)
    );
    eprintln!(
        "D = {} (nBits {bits}, effective D {}, bdiff {:.6e}); backend {}",
        args.difficulty,
        effective.difficulty(),
        effective.bdiff(),
        backend.name()
    );
    let cancel = ctrl_c_flag();
    let progress = Arc::new(AtomicU64::new(0));
    let live = LiveRate::start("mining".into(), progress.clone());
    let started = Instant::now();
    let mut mined: Vec<MinedBlock> = Vec::new();
    let mut spare_hashes = 0u64;
    while args.blocks.is_none_or(|n| (mined.len() as u64) < n) {
        match mine_next(
            &mut chain,
            backend.as_ref(),
            &args.payout,
            &cancel,
            &progress,
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
        &effective,
        interrupted,
        args.json,
    );
    print_parts(backend.as_ref(), args.json);
    Ok(())
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
                "hashes": b.hashes,
                "seconds": b.seconds,
                "hashrate_hs": rate.0,
            })
        );
    } else {
        println!(
            "block {:>5}  {}  nonce {:>10}  {:>9} hashes  {:>7.2} s  {}",
            b.height,
            display_hash(&b.hash),
            b.nonce,
            count(b.hashes as f64),
            b.seconds,
            rate
        );
    }
}

fn print_mine_summary(
    mined: &[MinedBlock],
    spare_hashes: u64,
    seconds: f64,
    d: &Difficulty,
    effective: &Target,
    interrupted: bool,
    json: bool,
) {
    let n = mined.len();
    let block_hashes: u64 = mined.iter().map(|b| b.hashes).sum();
    let block_seconds: f64 = mined.iter().map(|b| b.seconds).sum();
    let total_hashes = block_hashes + spare_hashes;
    let mean_hashes = if n > 0 {
        block_hashes as f64 / n as f64
    } else {
        0.0
    };
    let mean_seconds = if n > 0 { block_seconds / n as f64 } else { 0.0 };
    let rate = HashRate::from_count(total_hashes, seconds);
    let effective_d = effective.work().to_f64();
    if json {
        println!(
            "{}",
            json!({
                "type": "summary",
                "blocks": n,
                "seconds": seconds,
                "hashes": total_hashes,
                "mean_seconds_per_block": mean_seconds,
                "mean_hashes_per_block": mean_hashes,
                "difficulty": d.as_f64(),
                "expected_hashes_per_block": effective_d,
                "mean_hashrate_hs": rate.0,
                "interrupted": interrupted,
            })
        );
    } else {
        if interrupted {
            println!("interrupted");
        }
        println!(
            "{n} blocks in {seconds:.2} s: {mean_seconds:.3} s per block, {} hashes per block \
             (expected D = {d}; {} after nBits rounding), {rate}",
            count(mean_hashes),
            count(effective_d),
        );
    }
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
            "scanning nonces {}..={} against target {target} with {}",
            start,
            end - 1,
            backend.name()
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
    if args.json {
        println!(
            "{}",
            json!({"type": "summary", "hits": report.hits.len(), "hashes": report.hashes,
                   "seconds": seconds, "hashrate_hs": rate.0, "interrupted": report.cancelled,
                   "target": target.to_string()})
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
    let threads = args.backend.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let mut tell = |what: &str| {
        if !args.json {
            eprintln!("measuring {what} for {} s", args.seconds);
        }
    };
    let kernels = match args.backend.backend {
        BackendChoice::Gpu => Vec::new(),
        _ => bench::run_cpu(args.seconds, threads, &mut tell)?,
    };
    let gpu = match args.backend.backend {
        BackendChoice::Cpu => None,
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
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
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
