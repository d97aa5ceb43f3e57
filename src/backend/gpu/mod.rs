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
//! leaves the slots unmapped (`drain`). The dispatch arithmetic (sizes, caps,
//! grid shape) is in `dispatch.rs`, pure and unit-tested.

mod dispatch;

pub use dispatch::MAX_DISPATCH;

use super::{Backend, BackendError, JobHit, JobsReport, ScanReport, StopAt, NONCE_END};
use crate::hash::soft::Precomputed;
use crate::hash::{Job, Kernel};
use crate::pow::Target;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Instant;

/// The WGSL kernel.
pub const SHADER: &str = include_str!("../../../shaders/sha256d.wgsl");

/// 32-bit words in the shader's `Params` (nine `vec4<u32>`).
const PARAMS_WORDS: usize = 36;

/// Dispatches in flight.
pub const SLOTS: usize = 3;
/// What each dispatch should take; far below desktop watchdog limits (about 2 s).
pub const TARGET_DISPATCH_MS: f64 = 30.0;
/// A search that stops at its first hit keeps each dispatch to at most this fraction of the
/// expected hashes per hit: the dispatches still in flight when a hit lands run to their end, and
/// this keeps that overshoot to a few percent of a block's work.
pub const FIRST_HIT_SHARE: u64 = 64;

/// Why the GPU backend is unavailable or failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found: wgpu sees no Vulkan device. Install a Vulkan driver (for a software device: apt-get install mesa-vulkan-drivers), or use --backend cpu")]
    NoAdapter,
    #[error("no adapter matches '{0}'; `miner devices` lists them: {1}")]
    NoSuchAdapter(String, String),
    /// `--adapter N` with no adapter at index N (a number is an index, never part of a name).
    #[error("--adapter {0}: there is no adapter with index {0} ({1} found); `miner devices` lists them: {2}")]
    NoSuchIndex(usize, usize, String),
    #[error("could not open the GPU device {0}: {1}")]
    Device(String, String),
    #[error("{0}")]
    Options(String),
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
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

/// An instance of every compiled-in backend, or those `WGPU_BACKEND` names (e.g. `vulkan`).
fn instance() -> (wgpu::Instance, wgpu::Backends) {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = desc.backends;
    (wgpu::Instance::new(desc), backends)
}

fn adapters((instance, backends): &(wgpu::Instance, wgpu::Backends)) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(*backends))
}

fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

/// Every adapter wgpu finds, in its order (the index `--adapter` takes).
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters(&instance())
        .iter()
        .enumerate()
        .map(|(i, a)| summary(i, a))
        .collect()
}

fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Buffers of one in-flight dispatch.
struct Slot {
    params: wgpu::Buffer,
    hits: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// A dispatch on its way.
struct InFlight {
    slot: usize,
    /// The job's index in the search, and the job (to check hits and to re-scan).
    job_index: u64,
    job: Job,
    first: u64,
    count: u64,
    submitted: Instant,
    submission: wgpu::SubmissionIndex,
    mapped: mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
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
    fault: Mutex<Option<Fault>>,
}

/// A fault to inject into a scan, to test that every error path leaves the context usable.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The read-back of the scan's n-th dispatch (from 0) fails.
    CollectFails(u32),
    /// The scan's n-th dispatch reports nonce 0 as a hit whatever its hash.
    FalseHit(u32),
}

/// For a search that stops at its first hit: 1/[`FIRST_HIT_SHARE`] of the hashes a hit is
/// expected to take at `job`'s target.
fn first_hit_share(job: &Job, stop: StopAt) -> Option<u64> {
    match stop {
        StopAt::End => None,
        StopAt::FirstHit => {
            let expected = Target::from_words(job.target).work().to_f64();
            Some((expected / FIRST_HIT_SHARE as f64) as u64)
        }
    }
}

/// Whether `options` fit the adapter's limits; the error names the flag and the limit.
pub fn check_options(
    options: &GpuOptions,
    limits: &wgpu::Limits,
    adapter: &str,
) -> Result<(), GpuError> {
    let most = limits
        .max_compute_invocations_per_workgroup
        .min(limits.max_compute_workgroup_size_x);
    if options.workgroup_size == 0 || options.workgroup_size > most {
        return Err(GpuError::Options(format!(
            "--gpu-workgroup-size {}: {adapter} takes 1 to {most} invocations per workgroup; pass a size in that range (256 suits most GPUs)",
            options.workgroup_size
        )));
    }
    if options.nonces_per_invocation == 0 {
        return Err(GpuError::Options(
            "--gpu-nonces-per-invocation must be at least 1".to_string(),
        ));
    }
    // One workgroup is the smallest dispatch; it must fit in the largest.
    let per_group = u64::from(options.workgroup_size) * u64::from(options.nonces_per_invocation);
    if per_group > MAX_DISPATCH {
        return Err(GpuError::Options(format!(
            "--gpu-nonces-per-invocation {} with --gpu-workgroup-size {}: a workgroup would cover {per_group} nonces, more than the {MAX_DISPATCH} one dispatch may take; lower the nonces per invocation",
            options.nonces_per_invocation, options.workgroup_size
        )));
    }
    Ok(())
}

/// Bytes of the hit buffer: the count, then the nonces.
fn hits_bytes(capacity: u32) -> u64 {
    4 * (1 + u64::from(capacity))
}

impl GpuBackend {
    /// Opens the adapter `selector` names (an index from `miner devices`, or, when it is not a
    /// number, part of its name, case-insensitive), or the most capable one.
    pub fn new(selector: Option<&str>, options: GpuOptions) -> Result<GpuBackend, GpuError> {
        let instance = instance();
        let all = adapters(&instance);
        if all.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let index = match selector {
            Some(sel) => {
                let sel = sel.trim();
                let names = || {
                    all.iter()
                        .enumerate()
                        .map(|(i, a)| format!("{i}: {}", a.get_info().name))
                        .collect::<Vec<String>>()
                        .join(", ")
                };
                match sel.parse::<usize>() {
                    // A number is an index only: "5" must not pick "llvmpipe (LLVM 15.0.6)".
                    Ok(i) if i < all.len() => i,
                    Ok(i) => return Err(GpuError::NoSuchIndex(i, all.len(), names())),
                    Err(_) => all
                        .iter()
                        .position(|a| {
                            a.get_info()
                                .name
                                .to_lowercase()
                                .contains(&sel.to_lowercase())
                        })
                        .ok_or_else(|| GpuError::NoSuchAdapter(sel.to_string(), names()))?,
                }
            }
            None => (0..all.len())
                .min_by_key(|&i| preference(all[i].get_info().device_type))
                .unwrap_or(0),
        };
        let adapter = &all[index];
        let info = summary(index, adapter);
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("miner"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::Device(info.name.clone(), e.to_string()))?;
        check_options(&options, &limits, &info.name)?;
        // Shader and pipeline errors come back as errors, not as wgpu's default panic.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("sha256d.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("sha256d"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: false },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("sha256d"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants = [
            ("WORKGROUP_SIZE", f64::from(options.workgroup_size)),
            (
                "NONCES_PER_INVOCATION",
                f64::from(options.nonces_per_invocation),
            ),
        ];
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("sha256d"),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device(info.name.clone(), e.to_string()));
        }
        let slots = (0..SLOTS)
            .map(|i| {
                let params = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("params {i}")),
                    size: 4 * PARAMS_WORDS as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let size = hits_bytes(options.hit_capacity);
                let hits = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("hits {i}")),
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let staging = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("staging {i}")),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(&format!("sha256d {i}")),
                    layout: &layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: params.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: hits.as_entire_binding(),
                        },
                    ],
                });
                Slot {
                    params,
                    hits,
                    staging,
                    bind_group,
                }
            })
            .collect();
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
            hits_reset: std::iter::once(0)
                .chain(std::iter::repeat_n(
                    0xdead_beef_u32,
                    options.hit_capacity as usize,
                ))
                .collect(),
            #[cfg(test)]
            fault: Mutex::new(None),
        })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.info
    }

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

    /// Nonces per dispatch: the adapted size, or for a first-hit search on an easy target
    /// (`share`, from [`first_hit_share`]) that share of the expected hashes per hit, though never
    /// below 1/32 of the adapted size (about 1 ms of work), under which the cost of a dispatch
    /// itself would eat the rate.
    fn dispatch_for(&self, share: Option<u64>) -> u64 {
        let adapted = self.dispatch_size();
        match share {
            None => adapted,
            Some(share) => adapted.min(share.max(adapted / 32).max(self.per_group())),
        }
    }

    /// Largest dispatch the grid limits allow, at most [`MAX_DISPATCH`].
    fn max_dispatch(&self) -> u64 {
        dispatch::max_dispatch(
            self.per_group(),
            self.max_workgroups_x,
            self.max_workgroups_y,
        )
    }

    /// The shader's `Params`, word for word.
    fn params(
        job: &Job,
        pre: &Precomputed,
        first: u64,
        count: u64,
        grid_x: u32,
    ) -> [u32; PARAMS_WORDS] {
        let mut p = [0u32; PARAMS_WORDS];
        p[0..8].copy_from_slice(&pre.state4_zero_nonce);
        p[8..16].copy_from_slice(&job.midstate);
        p[16] = pre.w[16];
        p[17] = pre.w[17];
        p[18..20].copy_from_slice(&pre.folds[0..2]);
        p[20..22].copy_from_slice(&pre.folds[2..4]);
        p[24] = first as u32;
        p[25] = count as u32;
        p[26] = grid_x;
        p[28..36].copy_from_slice(&job.target);
        p
    }

    /// Encodes and submits one dispatch: `count` nonces of `feed`'s job from `feed.next`, on
    /// `slot`.
    fn submit(&self, slot: &Slot, index: usize, feed: &Feed, count: u64) -> InFlight {
        let grid = dispatch::grid(count, self.per_group(), self.max_workgroups_x);
        let grid_x = grid.x * self.options.workgroup_size;
        let params = GpuBackend::params(&feed.job, &feed.pre, feed.next, count, grid_x);
        self.queue
            .write_buffer(&slot.params, 0, bytemuck::cast_slice(&params));
        // Count 0, and poison in the nonce array so an unwritten entry cannot pass for a hit.
        self.queue
            .write_buffer(&slot.hits, 0, bytemuck::cast_slice(&self.hits_reset));
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("sha256d"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("sha256d"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &slot.bind_group, &[]);
            pass.dispatch_workgroups(grid.x, grid.y, 1);
        }
        let size = hits_bytes(self.options.hit_capacity);
        encoder.copy_buffer_to_buffer(&slot.hits, 0, &slot.staging, 0, size);
        let submission = self.queue.submit([encoder.finish()]);
        let (tx, rx) = mpsc::channel();
        slot.staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        InFlight {
            slot: index,
            job_index: feed.index,
            job: feed.job,
            first: feed.next,
            count,
            submitted: Instant::now(),
            submission,
            mapped: rx,
        }
    }

    /// Waits for a dispatch and reads its hit count and hits. The staging buffer is unmapped
    /// again whenever its mapping succeeded, whatever happens after.
    fn collect(&self, slot: &Slot, f: &InFlight) -> Result<(u32, Vec<u32>), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(f.submission.clone()),
                timeout: None,
            })
            .map_err(|e| GpuError::Failed(e.to_string()))?;
        match f.mapped.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Failed(e.to_string())),
            Err(e) => return Err(GpuError::Failed(e.to_string())),
        }
        let read = slot.staging.get_mapped_range(..).map(|view| {
            let words: &[u32] = bytemuck::cast_slice(&view);
            let count = words.first().copied().unwrap_or(0);
            let stored = (count as usize).min(words.len().saturating_sub(1));
            (count, words[1..1 + stored].to_vec())
        });
        slot.staging.unmap();
        read.map_err(|e| GpuError::Failed(e.to_string()))
    }

    /// Leaves every slot unmapped and idle after a scan, on every exit path: a dispatch still in
    /// flight when a scan returns early (a failed read-back, a false hit) would otherwise keep
    /// its staging buffer mapped or pending, and the next scan's `map_async` on it would be a
    /// validation error (a panic under wgpu's default handler).
    fn drain(&self, slots: &[Slot], in_flight: &mut VecDeque<InFlight>) {
        // Errors here are ignored: the scan already failed or succeeded; what matters is that no
        // mapping outlives it.
        let _ = self.device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: None,
        });
        for f in in_flight.drain(..) {
            match f.mapped.try_recv() {
                // Mapped: give it back.
                Ok(Ok(())) => slots[f.slot].staging.unmap(),
                // Still pending (the device did not finish): unmapping aborts the mapping.
                Err(mpsc::TryRecvError::Empty) => slots[f.slot].staging.unmap(),
                // The mapping failed, or `collect` already took (and unmapped) it.
                Ok(Err(_)) | Err(mpsc::TryRecvError::Disconnected) => {}
            }
        }
    }

    /// Runs dispatches through the slots for the jobs `jobs` hands out (index 0, 1, ...; `None`
    /// ends them), each over `nonces`. When a job's last dispatch is submitted, the next job's
    /// first ones follow at once, so the device never waits for the host between jobs.
    /// Dispatches complete in submission order, which is the search order (jobs by index,
    /// nonces ascending): the first dispatch read back with a hit holds the first hit, and hits
    /// of later jobs are counted as hashes only.
    fn pipeline(
        &self,
        jobs: &mut dyn FnMut(u64) -> Option<Job>,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<Pipelined, GpuError> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut in_flight = VecDeque::new();
        let result = self.pipeline_on(&slots, &mut in_flight, jobs, nonces, stop, cancel, progress);
        self.drain(&slots, &mut in_flight);
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn pipeline_on(
        &self,
        slots: &[Slot],
        in_flight: &mut VecDeque<InFlight>,
        jobs: &mut dyn FnMut(u64) -> Option<Job>,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<Pipelined, GpuError> {
        let start = nonces.start.min(NONCE_END);
        let end = nonces.end.clamp(start, NONCE_END);
        let mut out = Pipelined::default();
        if start == end {
            return Ok(out);
        }
        #[cfg(test)]
        let fault = self.fault.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut dispatches = 0u32;
        let mut current = jobs(0).map(|job| Feed::new(0, job, start, stop));
        let mut free: Vec<usize> = (0..SLOTS).rev().collect();
        let mut stopping = false;
        let mut last_done = Instant::now();
        loop {
            // Fill the free slots, moving on to the next job as soon as this one is all
            // submitted.
            while !stopping && !free.is_empty() {
                let done = current.as_ref().filter(|f| f.next >= end).map(|f| f.index);
                if let Some(index) = done {
                    current = jobs(index + 1).map(|job| Feed::new(index + 1, job, start, stop));
                }
                let Some(feed) = current.as_mut() else { break };
                let Some(slot) = free.pop() else { break };
                let count = self.dispatch_for(feed.share).min(end - feed.next);
                in_flight.push_back(self.submit(&slots[slot], slot, feed, count));
                feed.next += count;
            }
            let Some(f) = in_flight.front() else { break };
            #[cfg(test)]
            if fault == Some(Fault::CollectFails(dispatches)) {
                return Err(GpuError::Failed(
                    "fault injection: the read-back failed".to_string(),
                ));
            }
            // On an error the dispatch stays in `in_flight`, for `drain`.
            let (count, found) = self.collect(&slots[f.slot], f)?;
            let Some(f) = in_flight.pop_front() else {
                break;
            };
            #[cfg(test)]
            let found = match fault {
                Some(Fault::FalseHit(n)) if n == dispatches => vec![0],
                _ => found,
            };
            dispatches = dispatches.wrapping_add(1);
            free.push(f.slot);
            let now = Instant::now();
            // With the pipeline full, completions are one dispatch apart.
            let busy = now.duration_since(last_done.max(f.submitted));
            last_done = now;
            let latency = now.duration_since(f.submitted);
            self.adapt(
                f.count,
                busy.as_secs_f64() * 1e3,
                latency.as_secs_f64() * 1e3,
            );
            out.hashes += f.count;
            progress.fetch_add(f.count, Ordering::Relaxed);
            let hits = if count as usize > found.len() {
                // The hit array overflowed: the count is exact, so re-scan this dispatch on the
                // CPU rather than lose hits. (A dispatch is at most 2^31 nonces, so its first
                // nonce and count fit the kernel's u32s.)
                let mut all = Vec::new();
                Kernel::best().scan(&f.job, f.first as u32, f.count as u32, &mut all);
                all
            } else {
                if let Some(&nonce) = found.iter().find(|&&n| !f.job.meets(n)) {
                    return Err(GpuError::Failed(format!(
                        "the kernel reported nonce {nonce}, whose hash does not meet the target"
                    )));
                }
                found
            };
            // Hits of a job after the first job with a hit come after the first hit in search
            // order: their dispatches count as hashes done, not as trials.
            if !hits.is_empty() && out.hit_job.is_none_or(|j| j == f.job_index) {
                out.hit_job = Some(f.job_index);
                out.hits.extend(hits);
            }
            if cancel.load(Ordering::Relaxed) {
                stopping = true;
            }
            if stop == StopAt::FirstHit && out.hit_job.is_some() {
                stopping = true;
            }
        }
        out.hits.sort_unstable();
        out.hits.dedup();
        Ok(out)
    }

    /// Adapts the dispatch size toward the target duration. A full-size dispatch doubles or
    /// halves it by `busy_ms`, the time since the previous completion. A smaller one (a range's
    /// tail, or a first-hit search's capped dispatch) can only double it, and only when its rate
    /// over `latency_ms`, from its submission to its read-back (never less than the dispatch
    /// itself took, so never too fast), says the size is far too small: mining at a low
    /// difficulty thus still learns a fast device's speed, and with it the floor of
    /// [`Self::dispatch_for`].
    fn adapt(&self, count: u64, busy_ms: f64, latency_ms: f64) {
        if self.options.fixed_dispatch {
            return;
        }
        let current = self.dispatch_size();
        let next = if count >= current {
            if busy_ms < TARGET_DISPATCH_MS / 2.0 {
                current * 2
            } else if busy_ms > TARGET_DISPATCH_MS * 2.0 {
                current / 2
            } else {
                current
            }
        } else if count as f64 * TARGET_DISPATCH_MS / latency_ms.max(1e-3) > 2.0 * current as f64 {
            current * 2
        } else {
            current
        };
        let next = next.clamp(
            self.per_group().min(self.max_dispatch()),
            self.max_dispatch(),
        );
        self.dispatch.store(next, Ordering::Relaxed);
    }

    /// The scan, with GPU failures as errors.
    pub fn try_scan(
        &self,
        job: &Job,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<ScanReport, GpuError> {
        let start = nonces.start.min(NONCE_END);
        let end = nonces.end.clamp(start, NONCE_END);
        let mut one = |index: u64| (index == 0).then_some(*job);
        let out = self.pipeline(&mut one, start..end, stop, cancel, progress)?;
        Ok(ScanReport {
            cancelled: out.hashes < end - start && cancel.load(Ordering::Relaxed),
            hits: out.hits,
            hashes: out.hashes,
        })
    }

    /// [`Backend::search_jobs`] with each job searched over `nonces` only (all `0..2^32` when
    /// mining; a smaller range lets a test cross many job boundaries quickly), GPU failures as
    /// errors. The hit is the first in the order jobs by index, nonces of `nonces` ascending.
    pub fn search_jobs_over(
        &self,
        jobs: &mut dyn FnMut(u64) -> Job,
        nonces: Range<u64>,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<JobsReport, GpuError> {
        if nonces.start >= nonces.end.min(NONCE_END) {
            return Err(GpuError::Options(format!(
                "a search over jobs needs at least one nonce per job, not {nonces:?}; pass a range within 0..2^32"
            )));
        }
        let mut all = |index: u64| Some(jobs(index));
        let out = self.pipeline(&mut all, nonces, StopAt::FirstHit, cancel, progress)?;
        let hit = out
            .hit_job
            .zip(out.hits.first().copied())
            .map(|(job, nonce)| JobHit { job, nonce });
        Ok(JobsReport {
            cancelled: hit.is_none(),
            hit,
            hashes: out.hashes,
        })
    }

    /// Makes the next scan fail as `fault` says.
    #[cfg(test)]
    fn inject_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(fault);
    }
}

/// The job a pipeline is submitting dispatches for.
struct Feed {
    /// The job's position in the search (its extranonce when mining).
    index: u64,
    job: Job,
    pre: Precomputed,
    /// The first-hit cap on a dispatch ([`first_hit_share`]).
    share: Option<u64>,
    /// The next nonce to submit.
    next: u64,
}

impl Feed {
    fn new(index: u64, job: Job, start: u64, stop: StopAt) -> Feed {
        Feed {
            index,
            pre: Precomputed::new(&job),
            share: first_hit_share(&job, stop),
            job,
            next: start,
        }
    }
}

/// What [`GpuBackend::pipeline`] found and did.
#[derive(Default)]
struct Pipelined {
    /// The first job with a hit, and its hits (ascending).
    hit_job: Option<u64>,
    hits: Vec<u32>,
    /// Nonces hashed over all jobs.
    hashes: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_beyond_the_adapter_limits_are_refused_with_the_flag_and_the_limit() {
        // WebGPU's default limits: 256 invocations per workgroup.
        let limits = wgpu::Limits::default();
        let ok = GpuOptions::default();
        assert!(check_options(&ok, &limits, "test adapter").is_ok());
        let big = GpuOptions {
            workgroup_size: 512,
            ..ok
        };
        let e = check_options(&big, &limits, "test adapter")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--gpu-workgroup-size 512") && e.contains("1 to 256"),
            "{e}"
        );
        let none = GpuOptions {
            nonces_per_invocation: 0,
            ..ok
        };
        let e = check_options(&none, &limits, "test adapter")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--gpu-nonces-per-invocation"), "{e}");
        // A workgroup of more nonces than one dispatch may take (2^8 x 2^24 = 2^32).
        let huge = GpuOptions {
            nonces_per_invocation: 1 << 24,
            ..ok
        };
        let e = check_options(&huge, &limits, "test adapter")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--gpu-nonces-per-invocation 16777216") && e.contains("2147483648"),
            "{e}"
        );
        let most = GpuOptions {
            nonces_per_invocation: 1 << 23,
            ..ok
        };
        assert!(check_options(&most, &limits, "test adapter").is_ok());
    }

    /// A backend on the first adapter; fails (never skips) without one, like tests/gpu.rs.
    fn device(options: GpuOptions) -> GpuBackend {
        GpuBackend::new(None, options).unwrap_or_else(|e| {
            panic!(
                "GPU tests need a wgpu adapter and found none ({e}). \
                 Install a Vulkan driver, e.g. `apt-get install -y mesa-vulkan-drivers`."
            )
        })
    }

    #[test]
    fn a_scan_that_fails_midway_leaves_the_slots_usable_for_the_next() {
        // Small fixed dispatches keep all three slots in flight when the fault strikes.
        let g = device(GpuOptions {
            initial_dispatch: Some(1 << 14),
            fixed_dispatch: true,
            ..GpuOptions::default()
        });
        // Every nonce meets this target, so the scan's hits are exactly its range.
        let easy = Job::new(&[9u8; 80], &Target::MAX);
        // No nonce meets this one, so a reported hit is false.
        let hard = Job::new(&[9u8; 80], &Target::from_words([0; 8]));
        let range = 1000..1000 + 10 * (1 << 14);
        let run = |job: &Job| {
            g.try_scan(
                job,
                range.clone(),
                StopAt::End,
                &AtomicBool::new(false),
                &AtomicU64::new(0),
            )
        };
        for fault in [
            Fault::CollectFails(0),
            Fault::CollectFails(4),
            Fault::FalseHit(0),
            Fault::FalseHit(5),
        ] {
            g.inject_fault(fault);
            let e = run(&hard).expect_err("the injected fault fails the scan");
            let e = e.to_string();
            match fault {
                Fault::CollectFails(_) => assert!(e.contains("fault injection"), "{e}"),
                Fault::FalseHit(_) => assert!(e.contains("does not meet the target"), "{e}"),
            }
            // The next scan maps the same staging buffers again: with a slot left mapped or
            // pending this is a wgpu validation error (a panic by default).
            let r = run(&easy).expect("the scan after a failed one");
            assert_eq!(
                r.hits,
                (range.start as u32..range.end as u32).collect::<Vec<_>>()
            );
            assert_eq!(r.hashes, range.end - range.start);
        }
    }

    #[test]
    fn first_hit_share_follows_the_expected_work() {
        let job = |top: u32| Job {
            midstate: [0; 8],
            tail: [0; 3],
            target: [
                u32::MAX,
                u32::MAX,
                u32::MAX,
                u32::MAX,
                u32::MAX,
                u32::MAX,
                u32::MAX,
                top,
            ],
        };
        assert_eq!(first_hit_share(&job(u32::MAX), StopAt::End), None);
        // A hit per 2^16 nonces: a share of 2^16 / 64 = 1024.
        assert_eq!(
            first_hit_share(&job(0x0000_ffff), StopAt::FirstHit),
            Some(1024)
        );
        // Every hash meets the easiest target: the share is 0, and the floor rules.
        assert_eq!(first_hit_share(&job(u32::MAX), StopAt::FirstHit), Some(0));
    }
}
