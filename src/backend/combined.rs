//! `--backend all`: several backends share one nonce range. Each part pulls the next chunk from a
//! shared counter, so a fast GPU and a slower CPU both stay busy until the range is done, and a
//! hit in one part stops the others.

use super::{within_nonce_space, Backend, BackendError, PartStats, ScanReport, StopAt, NONCE_END};
use crate::hash::Job;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Part {
    backend: Box<dyn Backend>,
    /// Largest chunk this part takes at once.
    max_chunk: u64,
    hashes: AtomicU64,
    nanos: AtomicU64,
}

/// Backends working one range together.
pub struct CombinedBackend {
    parts: Vec<Part>,
    /// A part's failure during a scan in which another part found a hit: the hit is returned,
    /// and the failure is reported by the next scan instead of being lost with it.
    pending_failure: Mutex<Option<BackendError>>,
}

impl CombinedBackend {
    /// Combines `(backend, largest chunk it should take)` pairs.
    pub fn new(parts: Vec<(Box<dyn Backend>, u64)>) -> CombinedBackend {
        CombinedBackend {
            parts: parts
                .into_iter()
                .map(|(backend, max_chunk)| Part {
                    backend,
                    max_chunk: max_chunk.max(1),
                    hashes: AtomicU64::new(0),
                    nanos: AtomicU64::new(0),
                })
                .collect(),
            pending_failure: Mutex::new(None),
        }
    }
}

impl Backend for CombinedBackend {
    fn name(&self) -> String {
        let names: Vec<String> = self.parts.iter().map(|p| p.backend.name()).collect();
        names.join(" + ")
    }

    fn scan(
        &self,
        job: &Job,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<ScanReport, BackendError> {
        if let Some(e) = self
            .pending_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(e);
        }
        let (start, end) = within_nonce_space(&nonces);
        let next = AtomicU64::new(start);
        // The lowest hit found so far (`NONCE_END`: none). Chunks are handed out in nonce order;
        // with `FirstHit`, a part working a chunk below the lowest hit runs it to its end (or to
        // its own first hit) while parts above it are stopped, so the reported first hit is the
        // first in nonce order and the trials before it are exact.
        let lowest_hit = AtomicU64::new(NONCE_END);
        let halt = AtomicBool::new(false);
        let running = AtomicUsize::new(self.parts.len());
        let hits = Mutex::new(Vec::new());
        let hashes = AtomicU64::new(0);
        let failure: Mutex<Option<BackendError>> = Mutex::new(None);
        // Per part: the first nonce of the chunk it works on, and its own stop flag.
        let current: Vec<AtomicU64> = self.parts.iter().map(|_| AtomicU64::new(0)).collect();
        let part_stop: Vec<AtomicBool> =
            self.parts.iter().map(|_| AtomicBool::new(false)).collect();
        // Chunks small enough that both parts get a share of short ranges.
        let share = ((end - start) / 16).max(1 << 16);
        std::thread::scope(|s| {
            for (i, part) in self.parts.iter().enumerate() {
                let (next, halt, running, hits, hashes, failure, lowest_hit) = (
                    &next,
                    &halt,
                    &running,
                    &hits,
                    &hashes,
                    &failure,
                    &lowest_hit,
                );
                let (current, part_stop) = (&current[i], &part_stop[i]);
                s.spawn(move || {
                    let chunk = share.min(part.max_chunk);
                    while !halt.load(Ordering::Relaxed) {
                        let first = next.fetch_add(chunk, Ordering::Relaxed);
                        if first >= end
                            || (stop == StopAt::FirstHit
                                && first > lowest_hit.load(Ordering::Relaxed))
                        {
                            break;
                        }
                        // Chunks come in increasing order, so once a part's chunk lies above a
                        // hit every later one does too: a stop raised for an old chunk can
                        // never land on a chunk below the hit.
                        current.store(first, Ordering::Relaxed);
                        let last = (first + chunk).min(end);
                        let started = Instant::now();
                        match part
                            .backend
                            .scan(job, first..last, stop, part_stop, progress)
                        {
                            Ok(r) => {
                                part.hashes.fetch_add(r.hashes, Ordering::Relaxed);
                                part.nanos.fetch_add(
                                    started.elapsed().as_nanos() as u64,
                                    Ordering::Relaxed,
                                );
                                hashes.fetch_add(r.hashes, Ordering::Relaxed);
                                if let Some(&lowest) = r.hits.first() {
                                    if stop == StopAt::FirstHit {
                                        lowest_hit.fetch_min(lowest as u64, Ordering::Relaxed);
                                    }
                                    hits.lock()
                                        .unwrap_or_else(|e| e.into_inner())
                                        .extend(r.hits);
                                }
                            }
                            Err(e) => {
                                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                                halt.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    running.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Pass the caller's cancel on to the parts, and stop the parts whose chunk lies
            // wholly above the first hit.
            while running.load(Ordering::Relaxed) > 0 {
                let cancelled = cancel.load(Ordering::Relaxed);
                if cancelled {
                    halt.store(true, Ordering::Relaxed);
                }
                let lowest = lowest_hit.load(Ordering::Relaxed);
                for (current, part_stop) in current.iter().zip(&part_stop) {
                    if cancelled
                        || (stop == StopAt::FirstHit && current.load(Ordering::Relaxed) > lowest)
                    {
                        part_stop.store(true, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut hits = hits.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            if hits.is_empty() {
                return Err(e);
            }
            // A block another part found is worth keeping: return it, fail on the next scan.
            *self
                .pending_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
        hits.sort_unstable();
        hits.dedup();
        let hashes = hashes.into_inner();
        Ok(ScanReport {
            cancelled: cancel.load(Ordering::Relaxed) && hashes < end - start,
            hits,
            hashes,
        })
    }

    fn parts(&self) -> Vec<PartStats> {
        self.parts
            .iter()
            .map(|p| PartStats {
                name: p.backend.name(),
                hashes: p.hashes.load(Ordering::Relaxed),
                seconds: p.nanos.load(Ordering::Relaxed) as f64 / 1e9,
            })
            .collect()
    }
}

// The mock part fails as a lost GPU does, with a `GpuError`: the tests need the `gpu` feature.
#[cfg(all(test, feature = "gpu"))]
mod tests {
    use super::*;
    use crate::backend::gpu::GpuError;
    use crate::backend::CpuBackend;
    use crate::hash::Kernel;
    use crate::pow::Target;

    /// A MOCK part that fails every scan after a delay: a GPU that is lost mid-run cannot be
    /// produced on demand, so this stands in for it. It raises `started` when a scan begins.
    struct FailingPart {
        started: std::sync::Arc<AtomicBool>,
    }

    impl Backend for FailingPart {
        fn name(&self) -> String {
            "failing mock".into()
        }
        fn scan(
            &self,
            _: &Job,
            _: Range<u64>,
            _: StopAt,
            _: &AtomicBool,
            _: &AtomicU64,
        ) -> Result<ScanReport, BackendError> {
            self.started.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            Err(GpuError::Failed("device lost (mock)".into()).into())
        }
    }

    /// A MOCK wrapper that holds a part back until the failing part has begun a scan (at most
    /// 10 s). Without it the other part could find its hit in the first chunk before the failing
    /// part's thread took a chunk; that part then never scans and nothing fails (seen once on a
    /// quiet 2-core machine).
    struct AfterFailing {
        inner: CpuBackend,
        started: std::sync::Arc<AtomicBool>,
    }

    impl Backend for AfterFailing {
        fn name(&self) -> String {
            self.inner.name()
        }
        fn scan(
            &self,
            job: &Job,
            nonces: Range<u64>,
            stop: StopAt,
            cancel: &AtomicBool,
            progress: &AtomicU64,
        ) -> Result<ScanReport, BackendError> {
            let waited = Instant::now();
            while !self.started.load(Ordering::SeqCst) && waited.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.inner.scan(job, nonces, stop, cancel, progress)
        }
    }

    #[test]
    fn a_failing_part_does_not_throw_away_the_other_parts_hit() {
        // Every nonce is a hit: the CPU part finds one at once, long before the mock fails.
        let job = Job::new(&[7u8; 80], &Target::from_le_bytes([0xff; 32]));
        let cpu = CpuBackend::new(Kernel::Soft, Some(1)).expect("cpu");
        let started = std::sync::Arc::new(AtomicBool::new(false));
        let failing = FailingPart {
            started: started.clone(),
        };
        let held = AfterFailing {
            inner: cpu,
            started,
        };
        let all = CombinedBackend::new(vec![
            (Box::new(failing) as Box<dyn Backend>, 1 << 20),
            (Box::new(held), 1 << 20),
        ]);
        let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
        let report = all
            .scan(&job, 0..NONCE_END, StopAt::FirstHit, &cancel, &progress)
            .expect("the CPU part's hit is returned despite the failing part");
        assert!(!report.hits.is_empty());
        // The failure is not lost: the next scan reports it.
        let next = all.scan(&job, 0..NONCE_END, StopAt::FirstHit, &cancel, &progress);
        let e = next.expect_err("the pending failure");
        assert!(e.to_string().contains("device lost (mock)"), "{e}");
    }
}
