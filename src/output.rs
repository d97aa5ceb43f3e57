//! Formatting for people: hash rates, counts, durations, and the live progress line.

use indicatif::{ProgressBar, ProgressStyle};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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

    /// Mega-hashes per second.
    pub fn mhs(self) -> f64 {
        self.0 / 1e6
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
        let thread = {
            let (bar, stop) = (bar.clone(), stop.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut last = (Instant::now(), counter.load(Ordering::Relaxed));
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let now = (Instant::now(), counter.load(Ordering::Relaxed));
                    let dt = now.0.duration_since(last.0).as_secs_f64();
                    if dt >= 1.0 {
                        let rate = HashRate::from_count(now.1 - last.1, dt);
                        bar.set_message(format!(
                            "{rate}  {} hashes  {:.0} s",
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
        }
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
}
