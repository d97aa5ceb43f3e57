//! `miner bench`: the hash rate of every CPU kernel on one thread and on all threads, with the
//! plain `sha2` loop measured in the same run as the baseline every ratio is taken against.

use crate::backend::{Backend, CpuBackend, CpuBackendError, StopAt, NONCE_END};
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

/// A whole bench run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Seconds each measurement ran.
    pub seconds_per_measurement: f64,
    pub kernels: Vec<KernelFigures>,
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
pub fn measure(backend: &dyn Backend, seconds: f64) -> f64 {
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
            .scan(&job, 0..NONCE_END, StopAt::End, &cancel, &progress)
            .hashes;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = timer.join();
    hashes as f64 / elapsed
}

/// Measures every available kernel, baseline first. `on_progress` is told what runs next.
pub fn run(
    seconds: f64,
    threads: usize,
    mut on_progress: impl FnMut(&str),
) -> Result<BenchReport, CpuBackendError> {
    let mut kernels = Vec::new();
    let mut baseline = (f64::NAN, f64::NAN);
    for kernel in Kernel::available() {
        on_progress(&format!("{kernel} on 1 thread"));
        let one = measure(&CpuBackend::new(kernel, Some(1))?, seconds) / 1e6;
        on_progress(&format!("{kernel} on {threads} threads"));
        let all = measure(&CpuBackend::new(kernel, Some(threads))?, seconds) / 1e6;
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
    Ok(BenchReport {
        seconds_per_measurement: seconds,
        kernels,
    })
}

impl BenchReport {
    /// The table `miner bench` prints.
    pub fn table(&self) -> String {
        let threads = self.kernels.first().map_or(0, |k| k.threads);
        let mut out = format!(
            "{:<8} {:>12} {:>9} {:>14} {:>9} {:>8}\n",
            "kernel",
            "1 thread",
            "vs sha2",
            format!("{threads} threads"),
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
        out
    }
}
