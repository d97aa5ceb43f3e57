//! The scan loop: dispatches of one job or of a run of jobs pushed through the [`SLOTS`] slots
//! in search order (jobs by index, nonces ascending), hits read back in that order and checked
//! on the host, the dispatch size adapted as completions come in, and the slots drained on every
//! exit. [`GpuBackend::try_scan`] and [`GpuBackend::search_jobs_over`] are its two faces.

use super::context::{InFlight, Slot};
use super::{dispatch, GpuBackend, GpuError, SLOTS};
use crate::backend::{within_nonce_space, JobHit, JobsReport, ScanReport, StopAt, NONCE_END};
use crate::hash::soft::Precomputed;
use crate::hash::{Job, Kernel};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// A fault to inject into a scan, to test that every error path leaves the context usable.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// The read-back of the scan's n-th dispatch (from 0) fails.
    CollectFails(u32),
    /// The scan's n-th dispatch reports nonce 0 as a hit whatever its hash.
    FalseHit(u32),
}

impl GpuBackend {
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
        let (start, end) = within_nonce_space(&nonces);
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

    /// Nonces for the next dispatch of a job with first-hit cap `share`
    /// ([`dispatch::dispatch_for`] at the adapted size).
    fn dispatch_for(&self, share: Option<u64>) -> u64 {
        dispatch::dispatch_for(self.dispatch_size(), share, self.per_group())
    }

    /// Adapts the dispatch size after a dispatch of `count` nonces ([`dispatch::adapt`]),
    /// unless the options fix it.
    fn adapt(&self, count: u64, busy_ms: f64, latency_ms: f64) {
        if self.options.fixed_dispatch {
            return;
        }
        let next = dispatch::adapt(
            self.dispatch_size(),
            count,
            busy_ms,
            latency_ms,
            self.per_group(),
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
        let (start, end) = within_nonce_space(&nonces);
        let mut one = |index: u64| (index == 0).then_some(*job);
        let out = self.pipeline(&mut one, start..end, stop, cancel, progress)?;
        Ok(ScanReport {
            cancelled: out.hashes < end - start && cancel.load(Ordering::Relaxed),
            hits: out.hits,
            hashes: out.hashes,
        })
    }

    /// [`Backend::search_jobs`](crate::backend::Backend::search_jobs) with each job searched
    /// over `nonces` only (all `0..2^32` when mining; a smaller range lets a test cross many job
    /// boundaries quickly), GPU failures as errors. The hit is the first in the order jobs by
    /// index, nonces of `nonces` ascending.
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
pub(super) struct Feed {
    /// The job's position in the search (its extranonce when mining).
    pub(super) index: u64,
    pub(super) job: Job,
    pub(super) pre: Precomputed,
    /// The first-hit cap on a dispatch ([`dispatch::first_hit_share`]).
    share: Option<u64>,
    /// The next nonce to submit.
    pub(super) next: u64,
}

impl Feed {
    fn new(index: u64, job: Job, start: u64, stop: StopAt) -> Feed {
        Feed {
            index,
            pre: Precomputed::new(&job),
            share: dispatch::first_hit_share(&job, stop),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::GpuOptions;
    use crate::pow::Target;

    /// A backend on the first adapter; fails (never skips) without one, like tests/gpu/gpu.rs.
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
}
