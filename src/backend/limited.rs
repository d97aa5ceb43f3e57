//! `--max-hashrate`: any backend held to at most a given hash rate, for experiments that give
//! miners set shares of the hash rate (a live selfish-mining or double-spend run) or to leave a
//! machine usable. The range is scanned in slices of about 50 ms of work, in nonce order, and
//! after each slice the scan sleeps until the hashes done so far (over the backend's whole life)
//! fit the rate; the first hit is still the first in nonce order.

use super::{Backend, BackendError, PartStats, ScanReport, StopAt};
use crate::hash::Job;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A backend held to `rate` hashes per second.
pub struct RateLimited {
    inner: Box<dyn Backend>,
    rate: f64,
    started: Instant,
    hashed: AtomicU64,
}

impl RateLimited {
    /// `inner` at most `rate` hashes per second (`rate` > 0).
    pub fn new(inner: Box<dyn Backend>, rate: f64) -> RateLimited {
        RateLimited {
            inner,
            rate: rate.max(1.0),
            started: Instant::now(),
            hashed: AtomicU64::new(0),
        }
    }

    /// Nonces per slice: about 50 ms of work at the rate, at least 256.
    fn slice(&self) -> u64 {
        ((self.rate * 0.05) as u64).max(256)
    }
}

impl Backend for RateLimited {
    fn name(&self) -> String {
        format!("{}, at most {} H/s", self.inner.name(), self.rate)
    }

    fn scan(
        &self,
        job: &Job,
        nonces: Range<u64>,
        stop: StopAt,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> Result<ScanReport, BackendError> {
        let mut report = ScanReport::default();
        let mut at = nonces.start;
        while at < nonces.end {
            if cancel.load(Ordering::Relaxed) {
                report.cancelled = true;
                break;
            }
            let end = at.saturating_add(self.slice()).min(nonces.end);
            let part = self.inner.scan(job, at..end, stop, cancel, progress)?;
            report.hashes += part.hashes;
            report.hits.extend(&part.hits);
            let total = self.hashed.fetch_add(part.hashes, Ordering::Relaxed) + part.hashes;
            let due = self.started + Duration::from_secs_f64(total as f64 / self.rate);
            let now = Instant::now();
            if due > now {
                // Sleep in short steps so a cancel is seen within 50 ms.
                let mut left = due - now;
                while !left.is_zero() && !cancel.load(Ordering::Relaxed) {
                    let step = left.min(Duration::from_millis(50));
                    std::thread::sleep(step);
                    left -= step;
                }
            }
            if part.cancelled {
                report.cancelled = true;
                break;
            }
            if stop == StopAt::FirstHit && !report.hits.is_empty() {
                break;
            }
            at = end;
        }
        Ok(report)
    }

    fn parts(&self) -> Vec<PartStats> {
        self.inner.parts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;
    use crate::block::Template;
    use crate::chain::ChainParams;

    fn job() -> Job {
        let genesis = ChainParams::regtest().genesis.block_hash();
        let t = Template::builder(genesis, 1)
            .build()
            .unwrap_or_else(|e| panic!("template: {e}"));
        t.job(0).job
    }

    #[test]
    fn a_limited_scan_finds_the_same_hits_and_takes_at_least_hashes_over_rate() {
        let cpu = || {
            Box::new(
                CpuBackend::new(crate::hash::Kernel::best(), Some(1))
                    .unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let j = job();
        let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
        let plain = cpu()
            .scan(&j, 0..200_000, StopAt::End, &cancel, &progress)
            .unwrap_or_else(|e| panic!("{e}"));
        let limited = RateLimited::new(cpu(), 400_000.0);
        let started = Instant::now();
        let slow = limited
            .scan(&j, 0..200_000, StopAt::End, &cancel, &progress)
            .unwrap_or_else(|e| panic!("{e}"));
        let took = started.elapsed();
        assert_eq!(slow.hits, plain.hits);
        assert_eq!(slow.hashes, 200_000);
        // 200,000 hashes at 400,000 H/s: half a second at least (a lower bound only).
        assert!(took >= Duration::from_millis(480), "{took:?}");
        assert!(limited.name().contains("at most"), "{}", limited.name());
    }

    #[test]
    fn first_hit_stops_at_the_first_slice_with_a_hit() {
        let j = job();
        let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
        let cpu =
            CpuBackend::new(crate::hash::Kernel::best(), Some(1)).unwrap_or_else(|e| panic!("{e}"));
        let all = cpu
            .scan(&j, 0..1 << 20, StopAt::End, &cancel, &progress)
            .unwrap_or_else(|e| panic!("{e}"));
        let limited = RateLimited::new(Box::new(cpu), 1e9);
        let first = limited
            .scan(&j, 0..1 << 20, StopAt::FirstHit, &cancel, &progress)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.hits.first(), all.hits.first());
    }
}
