//! `miner bench`: measure the CPU kernels and the GPU.

use super::args::parse_seconds;
use super::backend_args::{check_threads, BackendArgs, BackendChoice};
use crate::bench;
use anyhow::{bail, Context, Result};
use clap::Args;
use miner::backend::gpu::GpuError;
use miner::backend::Backend;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Seconds per measurement (each kernel is measured on 1 thread and on T threads).
    #[arg(long, short = 's', value_name = "S", default_value_t = 2.0, value_parser = parse_seconds, allow_negative_numbers = true)]
    pub(crate) seconds: f64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
    /// Measure the GPU at every workgroup size and nonces-per-invocation pair (see
    /// --sweep-workgroup-sizes, --sweep-nonces) and report the fastest; needs --backend gpu or all.
    #[arg(long)]
    pub(crate) gpu_sweep: bool,
    /// Workgroup sizes --gpu-sweep tries.
    #[arg(long, value_name = "LIST", value_delimiter = ',', requires = "gpu_sweep",
          default_value = "64,128,256,512",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) sweep_workgroup_sizes: Vec<u32>,
    /// Nonces per invocation --gpu-sweep tries.
    #[arg(long, value_name = "LIST", value_delimiter = ',', requires = "gpu_sweep",
          default_value = "1,2,4,8,16,32,64",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) sweep_nonces: Vec<u32>,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

pub(crate) fn bench(args: BenchArgs) -> Result<()> {
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
