//! The GPU backend: `shaders/sha256d.wgsl` run through wgpu.
//!
//! The context (adapter, device, pipeline, buffers) is built once. A scan cuts its range into
//! dispatches sized to about [`TARGET_DISPATCH_MS`] and keeps up to [`SLOTS`] of them in flight,
//! each with its own parameter, hit and staging buffers, so the GPU works on the next dispatch
//! while the host reads back the last one. Only the small hit block is read back.
//!
//! Mining ([`Backend::search_jobs`]) runs one pipeline across jobs: when a job's last dispatch
//! is submitted, the next job's first ones follow while it runs, so a fast device does not idle
//! at every extranonce roll. Dispatches complete in submission order, which is the search
//! order, so the first hit read back is the first in order. Every exit path, errors included,
//! leaves the slots unmapped (`drain`).
//!
//! The rooms: `adapter.rs` lists and chooses adapters and opens the device; `context.rs` builds
//! the pipeline and the slots' buffers and submits, reads back and drains dispatches;
//! `dispatch.rs` is the scheduling arithmetic (dispatch sizes and caps, the grid, the first-hit
//! share, the adapt rule), pure and unit-tested without a device; `scan.rs` is the scan loop.
//! This file keeps the public types.

mod adapter;
mod context;
mod dispatch;
mod scan;

pub use adapter::list_adapters;
pub use dispatch::{FIRST_HIT_SHARE, MAX_DISPATCH, TARGET_DISPATCH_MS};

use super::{Backend, BackendError, JobsReport, ScanReport, StopAt, NONCE_END};
use crate::hash::Job;
use adapter::check_options;
use context::Slot;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The WGSL kernel.
pub const SHADER: &str = include_str!("../../../shaders/sha256d.wgsl");

/// Dispatches in flight.
pub const SLOTS: usize = 3;

/// Why the GPU backend is unavailable or failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// wgpu finds no adapter at all.
    #[error("no GPU adapter found: wgpu sees no Vulkan device. Install a Vulkan driver (for a software device: apt-get install mesa-vulkan-drivers), or use --backend cpu")]
    NoAdapter,
    /// No adapter's name contains the selector (first field); the second lists the adapters.
    #[error("no adapter matches '{0}'; `miner devices` lists them: {1}")]
    NoSuchAdapter(String, String),
    /// `--adapter N` with no adapter at index N (a number is an index, never part of a name).
    #[error("--adapter {0}: there is no adapter with index {0} ({1} found); `miner devices` lists them: {2}")]
    NoSuchIndex(usize, usize, String),
    /// The adapter (first field) was found but its device or pipeline could not be created;
    /// the second field is wgpu's reason.
    #[error("could not open the GPU device {0}: {1}")]
    Device(String, String),
    /// The options do not fit the adapter's limits, or a scan was asked for an empty range;
    /// the message names the flag and the limit.
    #[error("{0}")]
    Options(String),
    /// A submission, a read-back or the device itself failed mid-scan, or the kernel reported
    /// a hit whose hash does not meet the target.
    #[error("the GPU failed during a scan: {0}")]
    Failed(String),
}

/// Tuning knobs; the defaults suit a large discrete GPU and adapt the dispatch size at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuOptions {
    /// Invocations per workgroup.
    pub workgroup_size: u32,
    /// Nonces each invocation hashes.
    pub nonces_per_invocation: u32,
    /// Room for hits per dispatch; more are counted, and the dispatch is re-scanned on the CPU.
    pub hit_capacity: u32,
    /// Largest workgroup count in x before the dispatch becomes 2-D (`None`: the device limit).
    pub max_workgroups_x: Option<u32>,
    /// Nonces per dispatch to start from (`None`: 2^20), then adapted to ~30 ms.
    pub initial_dispatch: Option<u64>,
    /// Keep the dispatch size fixed instead of adapting it.
    pub fixed_dispatch: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            workgroup_size: 256,
            nonces_per_invocation: 8,
            hit_capacity: 1024,
            max_workgroups_x: None,
            initial_dispatch: None,
            fixed_dispatch: false,
        }
    }
}

/// One adapter as `miner devices` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    /// Position in wgpu's adapter list: what `--adapter N` takes.
    pub index: usize,
    /// The adapter's name as the driver reports it (what `--adapter NAME` matches).
    pub name: String,
    /// The graphics API wgpu reaches it through, e.g. `Vulkan`.
    pub backend: String,
    /// wgpu's device type (`DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu`, `Other`).
    pub device_type: String,
    /// Driver name and version, as the driver reports them (may be empty).
    pub driver: String,
}

/// The wgpu context, built once.
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    slots: Mutex<Vec<Slot>>,
    info: AdapterSummary,
    options: GpuOptions,
    max_workgroups_x: u32,
    max_workgroups_y: u32,
    /// Nonces per dispatch, adapted across scans.
    dispatch: AtomicU64,
    /// What each dispatch's hit buffer is reset to: count 0, then poison.
    hits_reset: Vec<u32>,
    /// A fault the next scan injects (tests of the error paths only).
    #[cfg(test)]
    fault: Mutex<Option<scan::Fault>>,
}

impl GpuBackend {
    /// Opens the adapter `selector` names (an index from `miner devices`, or, when it is not a
    /// number, part of its name, case-insensitive), or the most capable one.
    pub fn new(selector: Option<&str>, options: GpuOptions) -> Result<GpuBackend, GpuError> {
        let (info, limits, device, queue) = adapter::open(selector)?;
        check_options(&options, &limits, &info.name)?;
        let (pipeline, slots) = context::build(&device, &options, &info.name)?;
        let max_x = limits.max_compute_workgroups_per_dimension.max(1);
        let per_group =
            u64::from(options.workgroup_size) * u64::from(options.nonces_per_invocation);
        let max_dispatch = dispatch::max_dispatch(per_group, max_x, max_x);
        Ok(GpuBackend {
            device,
            queue,
            pipeline,
            slots: Mutex::new(slots),
            info,
            options,
            max_workgroups_x: options.max_workgroups_x.unwrap_or(max_x).clamp(1, max_x),
            max_workgroups_y: max_x,
            dispatch: AtomicU64::new(dispatch::initial_dispatch(
                options.initial_dispatch,
                per_group,
                max_dispatch,
            )),
            hits_reset: context::hits_reset(options.hit_capacity),
            #[cfg(test)]
            fault: Mutex::new(None),
        })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.info
    }

    /// The options it was opened with (the dispatch size adapts from them; see
    /// [`GpuBackend::dispatch_size`] for the current one).
    pub fn options(&self) -> GpuOptions {
        self.options
    }

    /// Nonces per dispatch right now.
    pub fn dispatch_size(&self) -> u64 {
        self.dispatch.load(Ordering::Relaxed)
    }

    /// Nonces one workgroup covers.
    fn per_group(&self) -> u64 {
        u64::from(self.options.workgroup_size) * u64::from(self.options.nonces_per_invocation)
    }

    /// Largest dispatch the grid limits allow, at most [`MAX_DISPATCH`].
    fn max_dispatch(&self) -> u64 {
        dispatch::max_dispatch(
            self.per_group(),
            self.max_workgroups_x,
            self.max_workgroups_y,
        )
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        format!("gpu ({}, {})", self.info.name, self.info.backend)
    }

    fn scan(
        &self,
        job: &Job,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<ScanReport, BackendError> {
        Ok(self.try_scan(job, nonces, stop, cancel, progress)?)
    }

    /// Keeps the device busy across jobs: the next job's dispatches are submitted while the
    /// current job's last ones are in flight.
    fn search_jobs(
        &self,
        jobs: &mut dyn FnMut(u64) -> Job,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<JobsReport, BackendError> {
        Ok(self.search_jobs_over(jobs, 0..NONCE_END, cancel, progress)?)
    }
}
