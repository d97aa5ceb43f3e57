//! The device side of the context, built once: the compute pipeline over `shaders/sha256d.wgsl`,
//! and [`SLOTS`] slots of buffers (parameters, hits, staging) with their bind groups. Then what
//! one dispatch does with a slot: write the parameters, submit, read the hits back, and the
//! `drain` that leaves every slot unmapped whatever way a scan ends.

use super::scan::Feed;
use super::{dispatch, GpuBackend, GpuError, GpuOptions, SHADER, SLOTS};
use crate::hash::soft::Precomputed;
use crate::hash::Job;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::Instant;

/// 32-bit words in the shader's `Params` (nine `vec4<u32>`).
const PARAMS_WORDS: usize = 36;

/// Buffers of one in-flight dispatch.
pub(super) struct Slot {
    params: wgpu::Buffer,
    hits: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// A dispatch on its way.
pub(super) struct InFlight {
    pub(super) slot: usize,
    /// The job's index in the search, and the job (to check hits and to re-scan).
    pub(super) job_index: u64,
    pub(super) job: Job,
    pub(super) first: u64,
    pub(super) count: u64,
    pub(super) submitted: Instant,
    submission: wgpu::SubmissionIndex,
    mapped: mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
}

/// Bytes of the hit buffer: the count, then the nonces.
fn hits_bytes(capacity: u32) -> u64 {
    4 * (1 + u64::from(capacity))
}

/// What each dispatch's hit buffer is reset to: count 0, then poison, so an unwritten entry
/// cannot pass for a hit.
pub(super) fn hits_reset(capacity: u32) -> Vec<u32> {
    std::iter::once(0)
        .chain(std::iter::repeat_n(0xdead_beef_u32, capacity as usize))
        .collect()
}

/// The compute pipeline (with `options`' workgroup size and nonces per invocation as override
/// constants) and the slots, on `device`. Shader and pipeline errors come back as
/// [`GpuError::Device`] naming `adapter`, not as wgpu's default panic.
pub(super) fn build(
    device: &wgpu::Device,
    options: &GpuOptions,
    adapter: &str,
) -> Result<(wgpu::ComputePipeline, Vec<Slot>), GpuError> {
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
        return Err(GpuError::Device(adapter.to_string(), e.to_string()));
    }
    let slots = (0..SLOTS)
        .map(|i| slot(device, &layout, options.hit_capacity, i))
        .collect();
    Ok((pipeline, slots))
}

/// The buffers and bind group of slot `i`.
fn slot(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    hit_capacity: u32,
    i: usize,
) -> Slot {
    let params = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(&format!("params {i}")),
        size: 4 * PARAMS_WORDS as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let size = hits_bytes(hit_capacity);
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
        layout,
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

impl GpuBackend {
    /// Encodes and submits one dispatch: `count` nonces of `feed`'s job from `feed.next`, on
    /// `slot`.
    pub(super) fn submit(&self, slot: &Slot, index: usize, feed: &Feed, count: u64) -> InFlight {
        let grid = dispatch::grid(count, self.per_group(), self.max_workgroups_x);
        let grid_x = grid.x * self.options.workgroup_size;
        let params = params(&feed.job, &feed.pre, feed.next, count, grid_x);
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
    pub(super) fn collect(&self, slot: &Slot, f: &InFlight) -> Result<(u32, Vec<u32>), GpuError> {
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
    pub(super) fn drain(&self, slots: &[Slot], in_flight: &mut VecDeque<InFlight>) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_buffer_holds_the_count_then_poison_in_every_entry() {
        assert_eq!(hits_bytes(1024), 4 * 1025);
        let reset = hits_reset(3);
        assert_eq!(reset, vec![0, 0xdead_beef, 0xdead_beef, 0xdead_beef]);
        assert_eq!(4 * reset.len() as u64, hits_bytes(3));
    }
}
