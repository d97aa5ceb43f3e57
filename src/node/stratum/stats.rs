//! What `getstratuminfo` reports: connection and share counters, and per-worker figures with a
//! bounded hash-rate window, in a bounded table.

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Sliding window of the hash-rate estimate.
const RATE_WINDOW: Duration = Duration::from_secs(600);
/// The window is kept as sums over buckets this long (at most 61 per worker).
const RATE_BUCKET: Duration = Duration::from_secs(10);
/// Distinct worker names tracked for `getstratuminfo` (totals count them all); past it the
/// least recently active is forgotten.
const MAX_WORKERS: usize = 10_000;
/// Workers listed by `getstratuminfo` (the highest hash rates; `workers_total` counts all).
const MAX_LISTED: usize = 100;

/// Per-worker figures.
#[derive(Default, Debug)]
struct Worker {
    accepted: u64,
    rejected: u64,
    blocks: u64,
    difficulty: f64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Accepted shares' difficulties in the last [`RATE_WINDOW`], summed per [`RATE_BUCKET`]
    /// (bucket start, sum): bounded whatever the share rate.
    window: VecDeque<(Instant, f64)>,
}

impl Worker {
    fn hashrate(&mut self, now: Instant) -> f64 {
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.window.pop_front();
        }
        let Some(first) = self.first else { return 0.0 };
        let span = now.duration_since(first).min(RATE_WINDOW).as_secs_f64();
        let work: f64 = self.window.iter().map(|(_, d)| d).sum();
        // Shares older than the window's start are already dropped bucket by bucket.
        work * 4_294_967_296.0 / span.max(1.0)
    }
}

/// What `getstratuminfo` reports.
#[derive(Debug)]
pub(crate) struct Stats {
    /// The address miners connect to.
    pub(crate) listening: SocketAddr,
    /// Connections open now.
    pub(crate) connections: AtomicU64,
    /// Connections served since the start.
    pub(crate) connections_total: AtomicU64,
    /// Connections closed at once because `--stratum-max-connections` were open.
    pub(crate) connections_refused: AtomicU64,
    /// Shares accepted (blocks included).
    pub(crate) shares_accepted: AtomicU64,
    /// Shares refused, for any reason.
    pub(crate) shares_rejected: AtomicU64,
    /// Accepted shares whose block became the chain's tip.
    pub(crate) blocks: AtomicU64,
    /// Connections closed for a line longer than `Config::max_line_bytes`.
    pub(crate) lines_too_long: AtomicU64,
    /// Connections dropped for not reading (a full write queue).
    pub(crate) slow_readers_dropped: AtomicU64,
    workers: Mutex<HashMap<String, Worker>>,
}

impl Stats {
    pub(super) fn new(listening: SocketAddr) -> Stats {
        Stats {
            listening,
            connections: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            shares_accepted: AtomicU64::new(0),
            shares_rejected: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            lines_too_long: AtomicU64::new(0),
            slow_readers_dropped: AtomicU64::new(0),
            workers: Mutex::new(HashMap::new()),
        }
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<String, Worker>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a share. `worker` gets a table entry only if `create` (the caller decides: an
    /// accepted share, or any share of a worker authenticated by password); a rejected share
    /// from a name without one counts in the totals only, so names cost the table nothing.
    pub(super) fn record(
        &self,
        worker: &str,
        accepted: Option<f64>,
        block: bool,
        difficulty: f64,
        create: bool,
    ) {
        let counter = if accepted.is_some() {
            &self.shares_accepted
        } else {
            &self.shares_rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if block {
            self.blocks.fetch_add(1, Ordering::Relaxed);
        }
        let mut workers = self.workers();
        let now = Instant::now();
        if !workers.contains_key(worker) {
            if !create {
                return;
            }
            if workers.len() >= MAX_WORKERS {
                // Forget the least recently active (a scan, only when the table is full).
                let oldest = workers
                    .iter()
                    .min_by_key(|(_, w)| w.last)
                    .map(|(name, _)| name.clone());
                if let Some(oldest) = oldest {
                    workers.remove(&oldest);
                }
            }
        }
        let w = workers.entry(worker.to_string()).or_default();
        w.difficulty = difficulty;
        w.first.get_or_insert(now);
        w.last = Some(now);
        match accepted {
            Some(d) => {
                w.accepted += 1;
                match w.window.back_mut() {
                    Some((start, sum)) if now.duration_since(*start) < RATE_BUCKET => *sum += d,
                    _ => w.window.push_back((now, d)),
                }
                while w
                    .window
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
                {
                    w.window.pop_front();
                }
            }
            None => w.rejected += 1,
        }
        if block {
            w.blocks += 1;
        }
    }

    /// The `getstratuminfo` answer.
    pub(crate) fn to_json(&self) -> Value {
        let now = Instant::now();
        let mut total_rate = 0.0;
        let mut workers = self.workers();
        let workers_total = workers.len();
        let mut rates: Vec<(f64, &String, &Worker)> = workers
            .iter_mut()
            .map(|(name, w)| {
                let rate = w.hashrate(now);
                total_rate += rate;
                (rate, name, &*w)
            })
            .collect();
        // The highest hash rates first (then by name), at most MAX_LISTED of them.
        rates.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        rates.truncate(MAX_LISTED);
        let list: Vec<Value> = rates
            .into_iter()
            .map(|(rate, name, w)| {
                json!({
                    "worker": name,
                    "shares_accepted": w.accepted,
                    "shares_rejected": w.rejected,
                    "blocks": w.blocks,
                    "difficulty": w.difficulty,
                    "hashrate_hs": rate,
                })
            })
            .collect();
        drop(workers);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "listening": format!("stratum+tcp://{}", self.listening),
            "connections": get(&self.connections),
            "connections_total": get(&self.connections_total),
            "connections_refused": get(&self.connections_refused),
            "workers": list,
            "workers_total": workers_total,
            "shares_accepted": get(&self.shares_accepted),
            "shares_rejected": get(&self.shares_rejected),
            "blocks": get(&self.blocks),
            "hashrate_hs": total_rate,
            "lines_too_long": get(&self.lines_too_long),
            "slow_readers_dropped": get(&self.slow_readers_dropped),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22 item 4: names with only rejected shares add no entry; the table, each worker's
    /// rate window and the `getstratuminfo` answer stay bounded.
    #[test]
    fn the_worker_table_its_windows_and_the_answer_are_bounded() {
        let stats = Stats::new(SocketAddr::from(([127, 0, 0, 1], 3333)));
        for i in 0..64_000 {
            stats.record(&format!("garbage{i}"), None, false, 1.0, false);
        }
        assert_eq!(stats.workers().len(), 0);
        assert_eq!(stats.shares_rejected.load(Ordering::Relaxed), 64_000);
        for i in 0..MAX_WORKERS + 500 {
            stats.record(&format!("w{i}"), Some(0.001), false, 0.001, true);
        }
        for _ in 0..100_000 {
            stats.record("fast", Some(1.0), false, 1.0, true);
        }
        {
            let workers = stats.workers();
            assert_eq!(workers.len(), MAX_WORKERS);
            assert!(
                workers["fast"].window.len() <= 2,
                "{}",
                workers["fast"].window.len()
            );
            assert!(
                !workers.contains_key("w0"),
                "the least recently active is forgotten"
            );
        }
        let started = std::time::Instant::now();
        let answer = stats.to_json();
        let took = started.elapsed();
        let bytes = answer.to_string().len();
        eprintln!("getstratuminfo with {MAX_WORKERS} workers: {bytes} bytes in {took:?}");
        assert_eq!(answer["workers"].as_array().map(Vec::len), Some(MAX_LISTED));
        assert_eq!(answer["workers_total"], MAX_WORKERS);
        assert_eq!(answer["workers"][0]["worker"], "fast", "highest rate first");
        assert!(bytes < 32 * 1024, "{bytes}");
    }
}
