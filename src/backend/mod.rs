//! Hashing backends behind one interface: given a [`Job`] and a nonce range, report the nonces
//! that meet the target. Backends never see the chain, the clock or the terminal.

mod combined;
mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
mod limited;

pub use combined::CombinedBackend;

pub use cpu::{CpuBackend, CpuBackendError};
pub use limited::RateLimited;

use crate::hash::Job;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64};

/// One past the last nonce.
pub const NONCE_END: u64 = 1 << 32;

/// `nonces` cut to the nonce space `0 .. 2^32`, as `(start, end)` with `start <= end`.
pub(crate) fn within_nonce_space(nonces: &Range<u64>) -> (u64, u64) {
    let start = nonces.start.min(NONCE_END);
    (start, nonces.end.clamp(start, NONCE_END))
}

/// When a scan may stop before the end of its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    /// Mining: the first hit is enough.
    FirstHit,
    /// Scanning: report every hit in the range.
    End,
}

/// What a scan found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Nonces whose hash meets the target, ascending. With [`StopAt::FirstHit`] the first is the
    /// first hit in nonce order: every nonce of the range below it was hashed.
    pub hits: Vec<u32>,
    /// Nonces hashed: all work done, including batches or dispatches that were in flight when
    /// the hit landed and so ran past it.
    pub hashes: u64,
    /// Whether the cancel flag stopped the scan before its range was done.
    pub cancelled: bool,
}

impl ScanReport {
    /// The trials to the first hit of a scan that began at nonce `start`: the number of nonces a
    /// sequential search from `start` hashes up to and including the hit (`None` without a hit).
    /// Unlike [`ScanReport::hashes`], it does not depend on how the search was split in parallel,
    /// so over many blocks it is exactly geometric with the target's success probability.
    pub fn trials_to_first_hit(&self, start: u64) -> Option<u64> {
        self.hits
            .first()
            .map(|&hit| (hit as u64).saturating_sub(start) + 1)
    }
}

/// The first hit of a search over a sequence of jobs ([`Backend::search_jobs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobHit {
    /// The job's index in the sequence (its extranonce when mining).
    pub job: u64,
    /// The nonce within that job whose hash meets its target.
    pub nonce: u32,
}

impl JobHit {
    /// Trials: the hit's position in the search order (jobs by index, each job's 2^32 nonces
    /// ascending), counted from 1, i.e. what a sequential searcher would have hashed.
    pub fn trials(&self) -> u64 {
        self.job
            .saturating_mul(NONCE_END)
            .saturating_add(u64::from(self.nonce) + 1)
    }
}

/// What a search over a sequence of jobs found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobsReport {
    /// The first hit in search order; `None` when the search was cancelled first.
    pub hit: Option<JobHit>,
    /// Nonces hashed over all jobs, including work in flight past the hit (on later jobs too).
    pub hashes: u64,
    /// Whether the cancel flag ended the search.
    pub cancelled: bool,
}

/// A backend failure (the GPU device was lost, a kernel reported a false hit, ...).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The CPU backend could not be built.
    #[error(transparent)]
    Cpu(#[from] CpuBackendError),
    /// The GPU backend could not be opened or failed during a scan.
    #[cfg(feature = "gpu")]
    #[error(transparent)]
    Gpu(#[from] gpu::GpuError),
}

/// A nonce-search backend.
pub trait Backend: Send + Sync {
    /// Human-readable name, e.g. `cpu (sha-ni, 2 threads)`.
    fn name(&self) -> String;

    /// Searches `nonces` (within `0 .. 2^32`) of `job`. Checks `cancel` between batches and adds
    /// each finished batch's size to `progress`, so a caller can show a live rate.
    ///
    /// Parallel backends work in a global nonce order: with [`StopAt::FirstHit`], when a hit
    /// lands, the work below it still finishes, so the lowest hit reported is the first hit in
    /// nonce order ([`ScanReport::trials_to_first_hit`] is exact) whatever the split.
    fn scan(
        &self,
        job: &Job,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<ScanReport, BackendError>;

    /// Searches the jobs `jobs` hands out (index 0, 1, 2, ...: one per extranonce when mining),
    /// each over all 2^32 nonces, until the first hit in search order (jobs by index, nonces
    /// ascending) or until `cancel` is raised. A hit in job k+1 counts only when job k has none,
    /// so [`JobHit::trials`] is exact.
    ///
    /// The default scans one job at a time ([`StopAt::FirstHit`]). A backend that keeps work in
    /// flight (the GPU) overrides it to start the next job while the current one's last batches
    /// run, so the device does not idle at every job change.
    fn search_jobs(
        &self,
        jobs: &mut dyn FnMut(u64) -> Job,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<JobsReport, BackendError> {
        let mut report = JobsReport::default();
        let mut index = 0u64;
        loop {
            let job = jobs(index);
            let scan = self.scan(&job, 0..NONCE_END, StopAt::FirstHit, cancel, progress)?;
            report.hashes += scan.hashes;
            if let Some(&nonce) = scan.hits.first() {
                report.hit = Some(JobHit { job: index, nonce });
                return Ok(report);
            }
            if scan.cancelled {
                report.cancelled = true;
                return Ok(report);
            }
            index = index.saturating_add(1);
        }
    }

    /// Hashes and busy seconds per part, for backends made of several (`--backend all`).
    fn parts(&self) -> Vec<PartStats> {
        Vec::new()
    }
}

/// One part of a combined backend: its name, hashes done and seconds spent so far.
#[derive(Clone, Debug, PartialEq)]
pub struct PartStats {
    /// The part's [`Backend::name`].
    pub name: String,
    /// Nonces the part has hashed so far.
    pub hashes: u64,
    /// Wall-clock seconds the part has spent scanning so far (its rate is `hashes / seconds`).
    pub seconds: f64,
}
