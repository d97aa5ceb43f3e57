//! Hashing backends behind one interface: given a [`Job`] and a nonce range, report the nonces
//! that meet the target. Backends never see the chain, the clock or the terminal.

mod cpu;

pub use cpu::{CpuBackend, CpuBackendError};

use crate::hash::Job;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64};

/// One past the last nonce.
pub const NONCE_END: u64 = 1 << 32;

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
    /// Nonces whose hash meets the target, ascending.
    pub hits: Vec<u32>,
    /// Nonces hashed (whole batches, including any hashed after a hit).
    pub hashes: u64,
    /// Whether the cancel flag stopped the scan before its range was done.
    pub cancelled: bool,
}

/// A nonce-search backend.
pub trait Backend: Send + Sync {
    /// Human-readable name, e.g. `cpu (sha-ni, 2 threads)`.
    fn name(&self) -> String;

    /// Searches `nonces` (within `0 .. 2^32`) of `job`. Checks `cancel` between batches and adds
    /// each finished batch's size to `progress`, so a caller can show a live rate.
    fn scan(
        &self,
        job: &Job,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> ScanReport;
}
