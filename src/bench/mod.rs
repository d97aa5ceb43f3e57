//! `miner bench`: the hash rate of every CPU kernel on one thread and on all threads, with the
//! plain `sha2` loop measured in the same run as the baseline every CPU ratio is taken against;
//! and the GPU backend's rate, with its ratio to the best CPU figure of the same run.

use crate::backend::gpu::{GpuBackend, GpuError, GpuOptions};
use crate::backend::{Backend, BackendError, CpuBackend, StopAt, NONCE_END};
use crate::hash::{Job, Kernel};
use crate::pow::Target;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One kernel's figures. Field names carry their units; this is the `--json` schema.
#[derive(Clone, Debug, Serialize)]
pub struct KernelFigures {
    /// Kernel name (`sha2` is the baseline).
    pub kernel: String,
    /// Million hashes per second on one thread.
    pub mhs_one_thread: f64,
    /// Million hashes per second on `threads` threads.
    pub mhs_all_threads: f64,
    /// Threads used for `mhs_all_threads`.
    pub threads: usize,
    /// `mhs_one_thread` over the `sha2` baseline's, same run.
    pub ratio_to_sha2_one_thread: f64,
    /// `mhs_all_threads` over the `sha2` baseline's, same run.
    pub ratio_to_sha2_all_threads: f64,
    /// `mhs_all_threads / mhs_one_thread`.
    pub thread_scaling: f64,
}

/// The GPU backend's figures.
#[derive(Clone, Debug, Serialize)]
pub struct GpuFigures {
    pub adapter: String,
    /// wgpu backend (Vulkan, ...).
    pub backend: String,
    /// DiscreteGpu, Cpu (a software device such as lavapipe), ...
    pub device_type: String,
    pub driver: String,
    /// Million hashes per second, whole scans including read-back.
    pub mhs: f64,
    pub workgroup_size: u32,
    pub nonces_per_invocation: u32,
    /// Nonces per dispatch after adaptation.
    pub dispatch_nonces: u64,
    /// `mhs` over the best CPU kernel's all-threads figure of the same run, if measured.
    pub ratio_to_best_cpu: Option<f64>,
    /// The CPU kernel that ratio is taken against.
    pub best_cpu_kernel: Option<String>,
}

/// A whole bench run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Seconds each measurement ran.
    pub seconds_per_measurement: f64,
    /// Empty with `--backend gpu`.
    pub kernels: Vec<KernelFigures>,
    /// Absent with `--backend cpu`; with `--gpu-sweep`, the fastest setting.
    pub gpu: Option<GpuFigures>,
    /// With `--gpu-sweep`: every setting measured, in the order tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_sweep: Option<GpuSweep>,
}

/// `miner bench --gpu-sweep`: the GPU at every workgroup size and nonces-per-invocation pair.
#[derive(Clone, Debug, Serialize)]
pub struct GpuSweep {
    /// Workgroup sizes tried (the table's columns).
    pub workgroup_sizes: Vec<u32>,
    /// Nonces per invocation tried (the table's rows).
    pub nonces_per_invocation: Vec<u32>,
    /// One entry per setting the adapter accepted.
    pub results: Vec<GpuFigures>,
    /// Settings the adapter refused, with why.
    pub refused: Vec<String>,
    /// The default setting's rate in this run, if it was in the grid.
    pub default_mhs: Option<f64>,
}

/// A job whose target no hash meets (target 0), so every nonce runs the whole kernel path.
fn bench_job() -> Job {
    let mut header = [0u8; 80];
    for (i, b) in header.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    Job::new(&header, &Target::from_words([0; 8]))
}

/// Hashes per second of `backend` over about `seconds`.
pub fn measure(backend: &dyn Backend, seconds: f64) -> Result<f64, BackendError> {
    let job = bench_job();
    let cancel = Arc::new(AtomicBool::new(false));
    let progress = AtomicU64::new(0);
    let timer = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            cancel.store(true, Ordering::Relaxed);
        })
    };
    let started = Instant::now();
    let mut hashes = 0;
    // A 2^32 range outlasts any sensible measurement; loop in case it does not.
    while !cancel.load(Ordering::Relaxed) {
        hashes += backend
            .scan(&job, 0..NONCE_END, StopAt::End, &cancel, &progress)?
            .hashes;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = timer.join();
    Ok(hashes as f64 / elapsed)
}

/// Measures every available CPU kernel, baseline first. `on_progress` is told what runs next.
pub fn run_cpu(
    seconds: f64,
    threads: usize,
    on_progress: &mut impl FnMut(&str),
) -> Result<Vec<KernelFigures>, BackendError> {
    let mut kernels = Vec::new();
    let mut baseline = (f64::NAN, f64::NAN);
    for kernel in Kernel::available() {
        on_progress(&format!("{kernel} on 1 thread"));
        let one = measure(&CpuBackend::new(kernel, Some(1))?, seconds)? / 1e6;
        on_progress(&format!("{kernel} on {threads} threads"));
        let all = measure(&CpuBackend::new(kernel, Some(threads))?, seconds)? / 1e6;
        if kernel == Kernel::Sha2 {
            baseline = (one, all);
        }
        kernels.push(KernelFigures {
            kernel: kernel.name().to_string(),
            mhs_one_thread: one,
            mhs_all_threads: all,
            threads,
            ratio_to_sha2_one_thread: one / baseline.0,
            ratio_to_sha2_all_threads: all / baseline.1,
            thread_scaling: all / one,
        });
    }
    Ok(kernels)
}

/// Measures the GPU backend (after a short warm-up that settles the dispatch size).
pub fn run_gpu(
    gpu: &GpuBackend,
    seconds: f64,
    cpu: &[KernelFigures],
) -> Result<GpuFigures, BackendError> {
    measure(gpu, seconds.min(1.0))?;
    let mhs = measure(gpu, seconds)? / 1e6;
    let best = cpu
        .iter()
        .max_by(|a, b| a.mhs_all_threads.total_cmp(&b.mhs_all_threads));
    let info = gpu.adapter();
    let options = gpu.options();
    Ok(GpuFigures {
        adapter: info.name.clone(),
        backend: info.backend.clone(),
        device_type: info.device_type.clone(),
        driver: info.driver.clone(),
        mhs,
        workgroup_size: options.workgroup_size,
        nonces_per_invocation: options.nonces_per_invocation,
        dispatch_nonces: gpu.dispatch_size(),
        ratio_to_best_cpu: best.map(|b| mhs / b.mhs_all_threads),
        best_cpu_kernel: best.map(|b| format!("{} on {} threads", b.kernel, b.threads)),
    })
}

/// Measures the GPU (`adapter` as `--adapter` takes it) at every pair of `workgroup_sizes` and
/// `nonces_per_invocation`, each for `seconds` after its warm-up. Settings the adapter refuses are
/// listed, not fatal; no adapter at all is an error.
pub fn run_gpu_sweep(
    adapter: Option<&str>,
    workgroup_sizes: &[u32],
    nonces_per_invocation: &[u32],
    seconds: f64,
    cpu: &[KernelFigures],
    on_progress: &mut impl FnMut(&str),
) -> Result<GpuSweep, GpuError> {
    let defaults = GpuOptions::default();
    let mut sweep = GpuSweep {
        workgroup_sizes: workgroup_sizes.to_vec(),
        nonces_per_invocation: nonces_per_invocation.to_vec(),
        results: Vec::new(),
        refused: Vec::new(),
        default_mhs: None,
    };
    for &n in nonces_per_invocation {
        for &w in workgroup_sizes {
            let options = GpuOptions {
                workgroup_size: w,
                nonces_per_invocation: n,
                ..defaults
            };
            let gpu = match GpuBackend::new(adapter, options) {
                Ok(gpu) => gpu,
                Err(e @ (GpuError::Options(_) | GpuError::Device(..))) => {
                    sweep
                        .refused
                        .push(format!("workgroup {w}, {n} nonces/invocation: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            on_progress(&format!(
                "{} at workgroup {w}, {n} nonces/invocation",
                gpu.name()
            ));
            let figures =
                run_gpu(&gpu, seconds, cpu).map_err(|e| GpuError::Failed(e.to_string()))?;
            if w == defaults.workgroup_size && n == defaults.nonces_per_invocation {
                sweep.default_mhs = Some(figures.mhs);
            }
            sweep.results.push(figures);
        }
    }
    Ok(sweep)
}

impl GpuSweep {
    /// The fastest setting measured.
    pub fn best(&self) -> Option<&GpuFigures> {
        self.results.iter().max_by(|a, b| a.mhs.total_cmp(&b.mhs))
    }

    /// The grid as text: MH/s, one row per nonces-per-invocation, one column per workgroup size.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "gpu sweep, MH/s (rows: nonces per invocation; columns: workgroup size)\n",
        );
        out += &format!("{:>8}", "");
        for w in &self.workgroup_sizes {
            out += &format!(" {w:>9}");
        }
        out += "\n";
        for &n in &self.nonces_per_invocation {
            out += &format!("{n:>8}");
            for &w in &self.workgroup_sizes {
                match self
                    .results
                    .iter()
                    .find(|r| r.workgroup_size == w && r.nonces_per_invocation == n)
                {
                    Some(r) => out += &format!(" {:>9.2}", r.mhs),
                    None => out += &format!(" {:>9}", "-"),
                }
            }
            out += "\n";
        }
        for r in &self.refused {
            out += &format!("refused: {r}\n");
        }
        if let Some(best) = self.best() {
            let versus = match self.default_mhs {
                Some(d) => format!(" ({:.2}x the default setting in this run)", best.mhs / d),
                None => String::new(),
            };
            out += &format!(
                "best     {:.2} MH/s at workgroup {}, {} nonces/invocation{versus}: \
                 --gpu-workgroup-size {} --gpu-nonces-per-invocation {}\n",
                best.mhs,
                best.workgroup_size,
                best.nonces_per_invocation,
                best.workgroup_size,
                best.nonces_per_invocation
            );
        }
        out
    }
}

impl BenchReport {
    /// The table `miner bench` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(first) = self.kernels.first() {
            out += &format!(
                "{:<8} {:>12} {:>9} {:>14} {:>9} {:>8}\n",
                "kernel",
                "1 thread",
                "vs sha2",
                format!("{} threads", first.threads),
                "vs sha2",
                "scaling"
            );
            for k in &self.kernels {
                out += &format!(
                    "{:<8} {:>7.2} MH/s {:>8.2}x {:>9.2} MH/s {:>8.2}x {:>7.2}x\n",
                    k.kernel,
                    k.mhs_one_thread,
                    k.ratio_to_sha2_one_thread,
                    k.mhs_all_threads,
                    k.ratio_to_sha2_all_threads,
                    k.thread_scaling
                );
            }
        }
        if let Some(sweep) = &self.gpu_sweep {
            out += &sweep.table();
        }
        if let Some(g) = &self.gpu {
            out += &format!(
                "gpu      {:.2} MH/s on {} ({}, {}, driver {}); workgroup {}, {} nonces/invocation, {} nonces/dispatch\n",
                g.mhs, g.adapter, g.backend, g.device_type, g.driver, g.workgroup_size,
                g.nonces_per_invocation, g.dispatch_nonces
            );
            if let (Some(r), Some(k)) = (g.ratio_to_best_cpu, &g.best_cpu_kernel) {
                out += &format!("gpu/cpu  {r:.2}x (against {k})\n");
            }
        }
        out
    }
}
