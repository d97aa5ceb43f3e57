//! `miner bench`: the hash rate of every CPU kernel on one thread and on all threads, with the
//! plain `sha2` loop measured in the same run as the baseline every CPU ratio is taken against;
//! and the GPU backend's rate, with its ratio to the best CPU figure of the same run.

use miner::backend::gpu::{GpuBackend, GpuError, GpuOptions};
use miner::backend::{Backend, BackendError, CpuBackend, StopAt, NONCE_END};
use miner::hash::calibrate::KernelChoice;
use miner::hash::{Job, Kernel};
use miner::pow::Target;
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
    /// The process's CPU time over the CPU time the one-thread measurement should have had (1
    /// thread × wall time); `None` where the OS does not say (not Linux).
    pub cpu_share_one_thread: Option<f64>,
    /// The same for the all-threads measurement (`threads`, at most the logical CPUs, × wall).
    pub cpu_share_all_threads: Option<f64>,
    /// Either share below [`LOAD_WARN_SHARE`]: other programs took the CPU, so the figures are
    /// low and the ratios noisy.
    pub under_load: bool,
}

/// A measurement whose CPU share is below this got less CPU than it asked for: the machine is
/// busy (shared machines, other jobs), and `bench` says so.
pub const LOAD_WARN_SHARE: f64 = 0.8;

/// The CPU time of this process so far, in seconds (user + system, all threads), from
/// `/proc/self/stat`; `None` where that file is not there (not Linux).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 2 (the command name) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name, in clock ticks of
    // USER_HZ, which Linux fixes at 100 for user space on every architecture.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The share of the CPU time a measurement got: `cpu_s` over `min(threads, cpus) × wall_s`.
/// `None` when the measurement was too short to judge at the clock's 10 ms resolution.
pub fn cpu_share(cpu_s: f64, wall_s: f64, threads: usize, cpus: usize) -> Option<f64> {
    let expected = threads.min(cpus).max(1) as f64 * wall_s;
    (expected >= 0.5).then(|| cpu_s / expected)
}

/// Whether a measurement with this CPU share ran under load (another program took the CPU).
pub fn is_under_load(share: Option<f64>) -> bool {
    share.is_some_and(|s| s < LOAD_WARN_SHARE)
}

/// What `bench` says beside a GPU figure whose adapter is a CPU (llvmpipe/lavapipe, or any
/// adapter wgpu reports as `DeviceType::Cpu`).
pub const SOFTWARE_ADAPTER_NOTE: &str =
    "the GPU adapter is a software rasterizer on the CPU: this ratio is not a GPU's";

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
    /// The adapter is a CPU (wgpu's `DeviceType::Cpu`: llvmpipe/lavapipe, WARP, SwiftShader), so
    /// the GPU figure and its ratio measure the CPU again.
    pub software_adapter: bool,
    /// [`SOFTWARE_ADAPTER_NOTE`] when `software_adapter`.
    pub note: Option<String>,
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
    /// The CPU kernel `mine`, `scan` and `node` run by default, and why: fields `kernel`,
    /// `kernel_choice`, `kernel_rates_mhs`, `kernel_cache_file` (absent with `--backend gpu`).
    #[serde(flatten)]
    pub default_kernel: Option<DefaultKernel>,
}

/// The default CPU kernel as `bench` reports it (the same fields as `mine --json`'s summary).
#[derive(Clone, Debug, Serialize)]
pub struct DefaultKernel {
    /// Kernel name.
    pub kernel: String,
    /// `calibrated` (measured in this run), `cached` (measured earlier on this CPU and binary) or
    /// `--kernel`.
    pub kernel_choice: String,
    /// The calibration's one-thread rates by kernel, MH/s (empty for `--kernel`).
    pub kernel_rates_mhs: serde_json::Value,
    /// The cache file read or written, if any.
    pub kernel_cache_file: Option<String>,
}

impl DefaultKernel {
    /// From the choice the command line made.
    pub fn new(choice: &KernelChoice) -> DefaultKernel {
        DefaultKernel {
            kernel: choice.kernel.name().to_string(),
            kernel_choice: choice.reason.name().to_string(),
            kernel_rates_mhs: choice.rates_json(),
            kernel_cache_file: choice.cache_file.as_ref().map(|p| p.display().to_string()),
        }
    }
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
    measure_timed(backend, seconds).map(|m| m.0)
}

/// [`measure`], with the wall time and the process CPU time (if known) the measurement took.
fn measure_timed(
    backend: &dyn Backend,
    seconds: f64,
) -> Result<(f64, f64, Option<f64>), BackendError> {
    let cpu_before = process_cpu_seconds();
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
    let cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let _ = timer.join();
    Ok((hashes as f64 / elapsed, elapsed, cpu))
}

/// Measures every available CPU kernel, baseline first. `on_progress` is told what runs next.
pub fn run_cpu(
    seconds: f64,
    threads: usize,
    on_progress: &mut impl FnMut(&str),
) -> Result<Vec<KernelFigures>, BackendError> {
    let mut kernels = Vec::new();
    let mut baseline = (f64::NAN, f64::NAN);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = |(_, wall, cpu): (f64, f64, Option<f64>), threads| {
        cpu.and_then(|cpu| cpu_share(cpu, wall, threads, cpus))
    };
    for kernel in Kernel::available() {
        on_progress(&format!("{kernel} on 1 thread"));
        let one_m = measure_timed(&CpuBackend::new(kernel, Some(1))?, seconds)?;
        on_progress(&format!("{kernel} on {threads} threads"));
        let all_m = measure_timed(&CpuBackend::new(kernel, Some(threads))?, seconds)?;
        let (one, all) = (one_m.0 / 1e6, all_m.0 / 1e6);
        let (share_one, share_all) = (share(one_m, 1), share(all_m, threads));
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
            cpu_share_one_thread: share_one,
            cpu_share_all_threads: share_all,
            under_load: is_under_load(share_one) || is_under_load(share_all),
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
        software_adapter: info.device_type == "Cpu",
        note: (info.device_type == "Cpu").then(|| SOFTWARE_ADAPTER_NOTE.to_string()),
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

impl DefaultKernel {
    /// `default  sha-ni (cached in FILE; ...)`, and a hint when this run's one-thread figures put
    /// another kernel more than 5% ahead.
    fn line(&self, measured: &[KernelFigures]) -> String {
        let rates = match self.kernel_rates_mhs.as_object() {
            Some(m) if !m.is_empty() => {
                let mut pairs: Vec<(&String, f64)> = m
                    .iter()
                    .map(|(k, v)| (k, v.as_f64().unwrap_or(f64::NAN)))
                    .collect();
                pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
                let list: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
                format!(": {} MH/s on one thread", list.join(", "))
            }
            _ => String::new(),
        };
        let file = self
            .kernel_cache_file
            .as_deref()
            .map_or_else(String::new, |f| format!(" (cache {f})"));
        let mut out = format!(
            "default  {} ({}{rates}){file}\n",
            self.kernel, self.kernel_choice
        );
        let chosen = measured.iter().find(|k| k.kernel == self.kernel);
        let fastest = measured
            .iter()
            .max_by(|a, b| a.mhs_one_thread.total_cmp(&b.mhs_one_thread));
        if let (Some(c), Some(f)) = (chosen, fastest) {
            if self.kernel_choice != "--kernel" && f.mhs_one_thread > 1.05 * c.mhs_one_thread {
                out += &format!(
                    "note     {} measured {:.0}% faster than {} in this run; if that holds, \
                     --recalibrate (or delete the cache file) to measure the choice again\n",
                    f.kernel,
                    (f.mhs_one_thread / c.mhs_one_thread - 1.0) * 100.0,
                    c.kernel
                );
            }
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
        if let Some(d) = &self.default_kernel {
            out += &d.line(&self.kernels);
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
                out += &format!("gpu/cpu  {r:.2}x (against {k})");
                if let Some(note) = &g.note {
                    out += &format!("; {note}");
                }
                out += "\n";
            } else if let Some(note) = &g.note {
                out += &format!(
                    "note     {}\n",
                    note.replace("this ratio is", "its figure is")
                );
            }
        }
        if let Some(warning) = load_warning(&self.kernels) {
            out += &warning;
            out += "\n";
        }
        out
    }
}

/// The warning `bench` prints when any CPU measurement got less than [`LOAD_WARN_SHARE`] of the
/// CPU time it should have had (threads × wall time): other programs were running, so the
/// rates are low and the ratios between kernels are not to be trusted. `None` when all got
/// their share (or the OS does not report CPU time).
pub fn load_warning(kernels: &[KernelFigures]) -> Option<String> {
    let measurements: Vec<(&str, usize, Option<f64>)> = kernels
        .iter()
        .flat_map(|k| {
            [
                (k.kernel.as_str(), 1, k.cpu_share_one_thread),
                (k.kernel.as_str(), k.threads, k.cpu_share_all_threads),
            ]
        })
        .collect();
    load_warning_for(&measurements)
}

/// [`load_warning`] over `(kernel, threads, CPU share)` per measurement.
pub fn load_warning_for(measurements: &[(&str, usize, Option<f64>)]) -> Option<String> {
    let mut starved = Vec::new();
    for &(kernel, threads, share) in measurements {
        if let Some(share) = share.filter(|&s| is_under_load(Some(s))) {
            let unit = if threads == 1 { "thread" } else { "threads" };
            starved.push(format!(
                "{kernel} on {threads} {unit} got {:.0}%",
                share * 100.0
            ));
        }
    }
    (!starved.is_empty()).then(|| {
        format!(
            "warning: the CPU is busy with other work: {} of the CPU time its threads asked for \
             (below {:.0}%), so those rates are low and the ratios noisy; re-run on an idle machine",
            starved.join(", "),
            LOAD_WARN_SHARE * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_share_is_cpu_time_over_threads_times_wall() {
        // 2 threads on 2 CPUs for 2 s should get 4 CPU seconds.
        assert_eq!(cpu_share(4.0, 2.0, 2, 2), Some(1.0));
        assert_eq!(cpu_share(2.0, 2.0, 2, 2), Some(0.5));
        // More threads than CPUs can only fill the CPUs.
        assert_eq!(cpu_share(3.9, 2.0, 8, 2), Some(0.975));
        // Too short to judge at 10 ms ticks.
        assert_eq!(cpu_share(0.0, 0.1, 2, 2), None);
    }

    #[test]
    fn load_is_flagged_below_eighty_percent_only() {
        assert!(!is_under_load(Some(0.95)));
        assert!(!is_under_load(Some(0.8)));
        assert!(is_under_load(Some(0.79)));
        assert!(!is_under_load(None), "no CPU time known: no warning");
        assert_eq!(
            load_warning_for(&[
                ("sha2", 1, Some(0.99)),
                ("sha2", 2, Some(0.97)),
                ("soft", 2, None)
            ]),
            None
        );
        let warning = load_warning_for(&[
            ("sha2", 1, Some(0.99)),
            ("sha-ni", 2, Some(0.55)),
            ("avx512", 1, Some(0.62)),
        ])
        .expect("two starved measurements");
        assert!(warning.starts_with("warning: the CPU is busy"), "{warning}");
        assert!(warning.contains("sha-ni on 2 threads got 55%"), "{warning}");
        assert!(warning.contains("avx512 on 1 thread got 62%"), "{warning}");
        assert!(!warning.contains("sha2"), "{warning}");
    }

    #[test]
    fn process_cpu_time_counts_this_process() {
        let start = process_cpu_seconds();
        if cfg!(not(target_os = "linux")) && start.is_none() {
            return; // no /proc here: bench reports no shares, and warns of nothing
        }
        let start = start.expect("/proc/self/stat gives the CPU time on Linux");
        // Spin until 0.1 s of CPU time shows up, or give up after 20 s of wall time.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        while process_cpu_seconds().unwrap_or(start) - start < 0.1 {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "CPU time did not grow while this thread spun"
            );
        }
    }
}
