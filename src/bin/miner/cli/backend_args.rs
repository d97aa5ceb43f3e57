//! `--backend`, `--threads`, `--kernel` and the GPU flags: the flag group every hashing command
//! shares, and the backend it builds.

use super::args::parse_max_hashrate;
use super::data_dir;
use crate::output::{count, HashRate};
use anyhow::{bail, Context, Result};
use clap::Args;
use miner::backend::gpu::{GpuBackend, GpuError, GpuOptions};
use miner::backend::{Backend, CombinedBackend, CpuBackend};
use miner::hash::calibrate::KernelChoice;
use miner::hash::Kernel;
use serde_json::json;

/// Which hardware searches nonces.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendChoice {
    /// CPU threads running the fastest (or `--kernel`) kernel.
    Cpu,
    /// The GPU compute shader through wgpu (Vulkan).
    Gpu,
    /// CPU and GPU together, sharing the nonce range; CPU only if no GPU is found.
    All,
}

#[derive(Args, Debug)]
pub(crate) struct BackendArgs {
    /// Where to hash: cpu, gpu, or all (both, splitting the nonce range).
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    pub(crate) backend: BackendChoice,
    /// Hold the backend to at most this many hashes per second (H/s, or with k/M/G/T: 500k,
    /// 2M): to give miners set shares in experiments, or to leave the machine usable.
    #[arg(long, value_name = "RATE", value_parser = parse_max_hashrate)]
    pub(crate) max_hashrate: Option<f64>,
    /// CPU worker threads [default: one per logical CPU].
    #[arg(long, short = 't', value_name = "T", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) threads: Option<u16>,
    /// CPU kernel: avx512, sha-ni, avx2 (x86-64), armv8-sha, neon (aarch64), soft or sha2 [default: the fastest on this CPU, measured
    /// at start-up (tens of ms) and cached per CPU model in the data directory's
    /// kernel-calibration.json].
    #[arg(long, value_name = "NAME")]
    pub(crate) kernel: Option<Kernel>,
    /// Measure the CPU kernels again instead of using the cached choice (and update the cache).
    #[arg(long, conflicts_with = "kernel")]
    pub(crate) recalibrate: bool,
    #[command(flatten)]
    pub(crate) gpu: GpuArgs,
    /// Where the kernel choice is cached (set by the command from its data directory; the
    /// user's data directory when unset).
    #[arg(skip)]
    pub(crate) kernel_cache_dir: std::cell::OnceCell<Option<std::path::PathBuf>>,
    /// The CPU kernel choice, made once when the first CPU backend is built.
    #[arg(skip)]
    pub(crate) kernel_choice: std::cell::OnceCell<KernelChoice>,
}

#[derive(Args, Debug)]
pub(crate) struct GpuArgs {
    /// GPU adapter: its index (a number is always an index) or part of its name, as
    /// `miner devices` lists them [default: the most capable, discrete first].
    #[arg(long, value_name = "NAME|INDEX")]
    pub(crate) adapter: Option<String>,
    /// GPU nonces per shader invocation.
    #[arg(long, value_name = "N", default_value_t = GpuOptions::default().nonces_per_invocation,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) gpu_nonces_per_invocation: u32,
    /// GPU invocations per workgroup.
    #[arg(long, value_name = "N", default_value_t = GpuOptions::default().workgroup_size,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) gpu_workgroup_size: u32,
}

impl GpuArgs {
    pub(crate) fn open(&self) -> Result<GpuBackend, GpuError> {
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
pub(crate) fn check_threads(threads: Option<u16>) -> Result<()> {
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
    pub(crate) fn cpu(&self) -> Result<CpuBackend> {
        check_threads(self.threads)?;
        let kernel = self.choose_kernel().kernel;
        CpuBackend::new(kernel, self.threads.map(usize::from)).context("--kernel")
    }

    /// Caches the kernel choice under `datadir` (the command's `--datadir`; `None`: the user's
    /// data directory). Call before [`BackendArgs::build`].
    pub(crate) fn with_datadir(&self, datadir: Option<&std::path::Path>) -> &Self {
        let _ = self.kernel_cache_dir.set(data_dir(datadir, "").ok());
        self
    }

    /// The CPU kernel and why: `--kernel`, else the cached calibration for this CPU, else a fresh
    /// one (tens of ms). Made once; cache problems are warnings.
    pub(crate) fn choose_kernel(&self) -> &KernelChoice {
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
    pub(crate) fn kernel_line(&self) -> String {
        self.kernel_choice
            .get()
            .map_or_else(String::new, |c| format!("; kernel {}", c.summary()))
    }

    /// `kernel`, `kernel_choice` and `kernel_rates_mhs` for `--json` summaries (null without a
    /// CPU backend).
    pub(crate) fn kernel_json(&self) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
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
    pub(crate) fn ignored_flags(&self) -> Vec<String> {
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

    pub(crate) fn build(&self) -> Result<Box<dyn Backend>> {
        for warning in self.ignored_flags() {
            eprintln!("warning: {warning}");
        }
        let backend = self.build_unlimited()?;
        Ok(match self.max_hashrate {
            Some(rate) => Box::new(miner::backend::RateLimited::new(backend, rate)),
            None => backend,
        })
    }

    fn build_unlimited(&self) -> Result<Box<dyn Backend>> {
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

/// Each part's share and rate, for `--backend all`.
pub(crate) fn print_parts(backend: &dyn Backend, json: bool) {
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
