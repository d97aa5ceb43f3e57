//! The GPU backend: `shaders/sha256d.wgsl` run through wgpu.
//!
//! The context (adapter, device, pipeline, buffers) is built once. A scan cuts its range into
//! dispatches sized to about [`TARGET_DISPATCH_MS`] and keeps up to [`SLOTS`] of them in flight,
//! each with its own parameter, hit and staging buffers, so the GPU works on the next dispatch
//! while the host reads back the last one. Only the small hit block is read back.

use super::{Backend, BackendError, ScanReport, StopAt, NONCE_END};
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
        let max_x = limits.max_compute_workgroups_per_dimension;
        Ok(GpuBackend {
            device,
            queue,
            pipeline,
            slots: Mutex::new(slots),
            info,
            options,
            max_workgroups_x: options.max_workgroups_x.unwrap_or(max_x).clamp(1, max_x),
            max_workgroups_y: max_x,
            dispatch: AtomicU64::new(options.initial_dispatch.unwrap_or(1 << 20)),
            hits_reset: std::iter::once(0)
                .chain(std::iter::repeat_n(
                    0xdead_beef_u32,
                    options.hit_capacity as usize,
                ))
                .collect(),
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

    /// Largest dispatch the grid limits allow.
    fn max_dispatch(&self) -> u64 {
        (self.per_group() * u64::from(self.max_workgroups_x) * u64::from(self.max_workgroups_y))
            .min(NONCE_END)
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

    /// Encodes and submits one dispatch of `count` nonces from `first` on `slot`.
    fn submit(
        &self,
        slot: &Slot,
        index: usize,
        job: &Job,
        pre: &Precomputed,
        first: u64,
        count: u64,
    ) -> InFlight {
        let invocations = count.div_ceil(u64::from(self.options.nonces_per_invocation));
        let groups = invocations.div_ceil(u64::from(self.options.workgroup_size));
        let (gx, gy) = if groups <= u64::from(self.max_workgroups_x) {
            (groups as u32, 1)
        } else {
            let gx = self.max_workgroups_x;
            (gx, groups.div_ceil(u64::from(gx)) as u32)
        };
        let grid_x = gx * self.options.workgroup_size;
        let params = GpuBackend::params(job, pre, first, count, grid_x);
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
            pass.dispatch_workgroups(gx, gy, 1);
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
            first,
            count,
            submitted: Instant::now(),
            submission,
            mapped: rx,
        }
    }

    /// Waits for a dispatch and reads its hit count and hits.
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
        let (count, nonces) = {
            let view = slot
                .staging
                .get_mapped_range(..)
                .map_err(|e| GpuError::Failed(e.to_string()))?;
            let words: &[u32] = bytemuck::cast_slice(&view);
            let count = words[0];
            let stored = (count as usize).min(words.len() - 1);
            (count, words[1..1 + stored].to_vec())
        };
        slot.staging.unmap();
        Ok((count, nonces))
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
        let next = next.clamp(self.per_group(), self.max_dispatch());
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
        let pre = Precomputed::new(job);
        let share = first_hit_share(job, stop);
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut free: Vec<usize> = (0..SLOTS).rev().collect();
        let mut next = start;
        let mut report = ScanReport::default();
        let mut stopping = false;
        let mut last_done = Instant::now();
        loop {
            while !stopping && next < end {
                let Some(index) = free.pop() else { break };
                let count = self.dispatch_for(share).min(end - next);
                in_flight.push_back(self.submit(&slots[index], index, job, &pre, next, count));
                next += count;
            }
            let Some(f) = in_flight.pop_front() else {
                break;
            };
            let (count, found) = self.collect(&slots[f.slot], &f)?;
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
            report.hashes += f.count;
            progress.fetch_add(f.count, Ordering::Relaxed);
            if count as usize > found.len() {
                // The hit array overflowed: the count is exact, so re-scan this dispatch on the
                // CPU rather than lose hits.
                let mut all = Vec::new();
                Kernel::best().scan(job, f.first as u32, f.count as u32, &mut all);
                report.hits.extend(all);
            } else {
                for nonce in found {
                    if !job.meets(nonce) {
                        return Err(GpuError::Failed(format!(
                            "the kernel reported nonce {nonce}, whose hash does not meet the target"
                        )));
                    }
                    report.hits.push(nonce);
                }
            }
            if cancel.load(Ordering::Relaxed) {
                stopping = true;
            }
            if stop == StopAt::FirstHit && !report.hits.is_empty() {
                stopping = true;
            }
        }
        report.cancelled = next < end && cancel.load(Ordering::Relaxed);
        report.hits.sort_unstable();
        report.hits.dedup();
        Ok(report)
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
