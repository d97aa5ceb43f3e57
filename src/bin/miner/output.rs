//! Formatting for people: hash rates, counts, durations, and the live progress line.

use indicatif::{ProgressBar, ProgressStyle};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Hashes per second.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct HashRate(pub f64);

impl HashRate {
    /// `hashes / seconds`, zero for an empty interval.
    pub fn from_count(hashes: u64, seconds: f64) -> HashRate {
        if seconds > 0.0 {
            HashRate(hashes as f64 / seconds)
        } else {
            HashRate(0.0)
        }
    }
}

/// `12.34 MH/s` style, with the unit chosen from H/s to PH/s.
impl fmt::Display for HashRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (value, unit) = scale(self.0);
        write!(f, "{value:.2} {unit}H/s")
    }
}

/// A count with an SI prefix: `9.87 M`.
pub fn count(n: f64) -> String {
    let (value, unit) = scale(n);
    if unit.is_empty() {
        format!("{n:.0}")
    } else {
        format!("{value:.2} {unit}")
    }
}

fn scale(x: f64) -> (f64, &'static str) {
    const UNITS: [&str; 6] = ["", "k", "M", "G", "T", "P"];
    let mut v = x;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    (v, UNITS[i])
}

/// A live status line on stderr (only when it is a terminal) showing the hash rate of the last
/// second, read from a shared counter that the backend bumps after every batch.
pub struct LiveRate {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    block: Arc<Mutex<Option<BlockStatus>>>,
}

/// What the live line says about the block being mined.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockStatus {
    /// 1-based number of the block being mined in this run.
    pub number: u64,
    /// How many the run will mine (`None`: until stopped).
    pub of: Option<u64>,
    /// Expected hashes per block at the current nBits.
    pub difficulty: f64,
}

impl BlockStatus {
    /// `block 3 of 10  D 1.00 M  ~0.04 s/block`, the expected time at `rate`.
    pub fn describe(&self, rate: HashRate) -> String {
        let of = self.of.map_or(String::new(), |n| format!(" of {n}"));
        let eta = if rate.0 > 0.0 {
            format!("  ~{} per block", seconds(self.difficulty / rate.0))
        } else {
            String::new()
        };
        format!(
            "block {}{of}  D {}{eta}",
            self.number,
            count(self.difficulty)
        )
    }
}

/// A duration for people: `850 ms`, `12.3 s`, `4.2 min`, `3.1 h`, `2.0 days`.
pub fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86_400.0)
    }
}

impl LiveRate {
    /// Starts the line; `label` prefixes it.
    pub fn start(label: String, counter: Arc<AtomicU64>) -> LiveRate {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label);
        let stop = Arc::new(AtomicBool::new(false));
        let block: Arc<Mutex<Option<BlockStatus>>> = Arc::new(Mutex::new(None));
        let thread = {
            let (bar, stop, block) = (bar.clone(), stop.clone(), block.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut last = (Instant::now(), counter.load(Ordering::Relaxed));
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let now = (Instant::now(), counter.load(Ordering::Relaxed));
                    let dt = now.0.duration_since(last.0).as_secs_f64();
                    if dt >= 1.0 {
                        let rate = HashRate::from_count(now.1 - last.1, dt);
                        let status = block
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .as_ref()
                            .map_or(String::new(), |b| format!("{}  ", b.describe(rate)));
                        bar.set_message(format!(
                            "{status}{rate}  {} hashes  {:.0} s",
                            count(now.1 as f64),
                            started.elapsed().as_secs_f64()
                        ));
                        last = now;
                    }
                    bar.tick();
                }
            })
        };
        LiveRate {
            bar,
            stop,
            thread: Some(thread),
            block,
        }
    }

    /// Sets what the line says about the block being mined (shown from the next refresh).
    pub fn set_block(&self, status: BlockStatus) {
        *self.block.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }

    /// Runs `f` (which prints to stdout) with the status line cleared, so lines don't mix.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }
}

impl Drop for LiveRate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rates_and_counts() {
        assert_eq!(HashRate(12_345_678.0).to_string(), "12.35 MH/s");
        assert_eq!(HashRate(999.0).to_string(), "999.00 H/s");
        assert_eq!(
            HashRate::from_count(3_000_000_000, 2.0).to_string(),
            "1.50 GH/s"
        );
        assert_eq!(HashRate::from_count(5, 0.0).0, 0.0);
        assert_eq!(count(9_870_000.0), "9.87 M");
        assert_eq!(count(42.0), "42");
    }

    #[test]
    fn block_status_gives_k_of_n_d_and_the_expected_time() {
        let status = BlockStatus {
            number: 3,
            of: Some(10),
            difficulty: 2e6,
        };
        assert_eq!(
            status.describe(HashRate(1e6)),
            "block 3 of 10  D 2.00 M  ~2.0 s per block"
        );
        let open = BlockStatus { of: None, ..status };
        assert_eq!(open.describe(HashRate(0.0)), "block 3  D 2.00 M");
        assert_eq!(seconds(0.25), "250 ms");
        assert_eq!(seconds(600.0), "10.0 min");
        assert_eq!(seconds(3.0 * 86_400.0), "3.0 days");
    }
}
