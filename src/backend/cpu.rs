//! The CPU backend: rayon splits the nonce range into batches, each worker runs one kernel.

use super::{within_nonce_space, Backend, BackendError, ScanReport, StopAt};
use crate::hash::{Job, Kernel};
use crate::pow::Target;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Largest batch: a few milliseconds of work, so cancel is checked often and cheaply.
const MAX_BATCH: u64 = 1 << 16;
/// Smallest batch, so scheduling stays a small fraction of the work.
const MIN_BATCH: u64 = 1 << 10;

/// Nonces per batch for `job`: small when a hit is expected soon, so a block's hash count is not
/// inflated by whole batches that other threads finish after the hit.
fn batch_size(job: &Job, threads: usize) -> u64 {
    let expected = Target::from_words(job.target).work().to_f64();
    let per_thread = expected / (64.0 * threads as f64);
    let pow2 = if per_thread >= 1.0 {
        1u64 << (per_thread.log2().floor() as u32).min(62)
    } else {
        1
    };
    pow2.clamp(MIN_BATCH, MAX_BATCH)
}

/// Why a CPU backend could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CpuBackendError {
    /// The kernel asked for cannot run on this CPU (or is hidden by `MINER_DISABLE_KERNELS`);
    /// the second field lists the kernels that can, comma-separated.
    #[error("the {0} kernel is not supported by this CPU; available: {1}")]
    KernelUnavailable(Kernel, String),
    /// `Some(0)` threads.
    #[error("thread count must be at least 1")]
    NoThreads,
    /// The reason is in the message, not a `source()`, so `{:#}` prints it once.
    #[error("could not start the worker threads: {0}")]
    Pool(rayon::ThreadPoolBuildError),
}

impl From<rayon::ThreadPoolBuildError> for CpuBackendError {
    fn from(e: rayon::ThreadPoolBuildError) -> Self {
        CpuBackendError::Pool(e)
    }
}

/// A rayon pool running one [`Kernel`].
pub struct CpuBackend {
    kernel: Kernel,
    pool: rayon::ThreadPool,
}

impl CpuBackend {
    /// A backend with `threads` workers (`None`: one per logical CPU) running `kernel`.
    pub fn new(kernel: Kernel, threads: Option<usize>) -> Result<CpuBackend, CpuBackendError> {
        if !kernel.is_available() {
            let names: Vec<&str> = Kernel::available().iter().map(|k| k.name()).collect();
            return Err(CpuBackendError::KernelUnavailable(kernel, names.join(", ")));
        }
        let threads = match threads {
            Some(0) => return Err(CpuBackendError::NoThreads),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("miner-cpu-{i}"))
            .build()?;
        Ok(CpuBackend { kernel, pool })
    }

    /// The best kernel on all logical CPUs.
    pub fn best() -> Result<CpuBackend, CpuBackendError> {
        CpuBackend::new(Kernel::best(), None)
    }

    /// The kernel every worker runs.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Worker threads in the pool (each hashes its own share of every range).
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu ({}, {} threads)", self.kernel, self.threads())
    }

    fn scan(
        &self,
        job: &Job,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<ScanReport, BackendError> {
        let (start, end) = within_nonce_space(&nonces);
        let batch = batch_size(job, self.threads());
        let batches = (end - start).div_ceil(batch);
        // Batches are handed out one at a time in nonce order from a shared counter, so every
        // batch below a hit has been started when the hit lands. With `FirstHit`, no batch above
        // the lowest hit found so far is started, and those below it run to their end: the lowest
        // hit reported is the first hit in nonce order, and the nonces before it are exactly the
        // trials a sequential search would have made.
        let next = AtomicU64::new(0);
        let lowest_hit_batch = AtomicU64::new(u64::MAX);
        let skipped = AtomicBool::new(false);
        let hashes = AtomicU64::new(0);
        let hits = Mutex::new(Vec::new());
        self.pool.broadcast(|_| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= batches {
                break;
            }
            let below_hit = i < lowest_hit_batch.load(Ordering::Relaxed);
            if stop == StopAt::FirstHit && !below_hit {
                break;
            }
            // A cancel stops the search, except that batches below a hit already found still
            // run (a few milliseconds), so the hit that is reported is still the first one.
            if cancel.load(Ordering::Relaxed)
                && !(stop == StopAt::FirstHit
                    && below_hit
                    && lowest_hit_batch.load(Ordering::Relaxed) != u64::MAX)
            {
                skipped.store(true, Ordering::Relaxed);
                break;
            }
            let first = start + i * batch;
            let count = batch.min(end - first);
            let mut local = Vec::new();
            // `first < 2^32` and `first + count <= 2^32`: both fit the kernel's u32 range.
            self.kernel
                .scan(job, first as u32, count as u32, &mut local);
            hashes.fetch_add(count, Ordering::Relaxed);
            progress.fetch_add(count, Ordering::Relaxed);
            if !local.is_empty() {
                lowest_hit_batch.fetch_min(i, Ordering::Relaxed);
                hits.lock().unwrap_or_else(|e| e.into_inner()).extend(local);
            }
        });
        let mut hits = hits.into_inner().unwrap_or_else(|e| e.into_inner());
        hits.sort_unstable();
        Ok(ScanReport {
            hits,
            hashes: hashes.into_inner(),
            cancelled: skipped.into_inner() && cancel.load(Ordering::Relaxed),
        })
    }
}
