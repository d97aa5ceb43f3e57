//! What a GPU loses at job changes: the hash rate over jobs of 2^k nonces each, searched as
//! `mine` does (one pipeline across jobs: the next job's dispatches are submitted while the
//! current job's last ones run) against one scan per job (the pipeline drains at every
//! change). At GH/s a real job of 2^32 nonces lasts well under a second; small jobs on a slow
//! device show the same effect.
//!
//! ```text
//! cargo run --release --example gpu_job_changes -- [k = 22] [seconds = 3]
//! ```

use miner::backend::gpu::{GpuBackend, GpuOptions};
use miner::backend::{Backend, StopAt};
use miner::hash::Job;
use miner::pow::Target;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Job `index`, with a target no hash meets, so the search runs until cancelled.
fn job(index: u64) -> Job {
    let mut header = [7u8; 80];
    header[0..8].copy_from_slice(&index.to_le_bytes());
    Job::new(&header, &Target::from_words([0; 8]))
}

/// Runs `search` with a cancel flag raised after `seconds`; returns hashes per second.
fn rate(seconds: f64, search: impl FnOnce(&AtomicBool) -> u64) -> f64 {
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    let hashes = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            cancel.store(true, Ordering::Relaxed);
        });
        search(&cancel)
    });
    hashes as f64 / started.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let k: u32 = args.next().map_or(Ok(22), |a| a.parse())?;
    let seconds: f64 = args.next().map_or(Ok(3.0), |a| a.parse())?;
    if !(12..=32).contains(&k) {
        return Err(format!("k = {k}: jobs of 2^k nonces need k in 12..=32").into());
    }
    let per_job = 1u64 << k;
    let gpu = GpuBackend::new(None, GpuOptions::default())?;
    println!("{} ; jobs of 2^{k} nonces, {seconds} s each", gpu.name());
    let pipelined = |cancel: &AtomicBool| {
        let progress = AtomicU64::new(0);
        gpu.search_jobs_over(&mut job, 0..per_job, cancel, &progress)
            .map(|r| r.hashes)
    };
    let one_scan_per_job = |cancel: &AtomicBool| {
        let progress = AtomicU64::new(0);
        let mut hashes = 0;
        for index in 0.. {
            let r = gpu.scan(&job(index), 0..per_job, StopAt::FirstHit, cancel, &progress)?;
            hashes += r.hashes;
            if r.cancelled || cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok::<u64, Box<dyn std::error::Error>>(hashes)
    };
    // Warm up: let the dispatch size adapt to the device.
    rate(1.0, |c| pipelined(c).unwrap_or(0));
    for round in 1..=2 {
        let mut failed = None;
        let a = rate(seconds, |c| {
            one_scan_per_job(c).unwrap_or_else(|e| {
                failed = Some(e.to_string());
                0
            })
        });
        let b = rate(seconds, |c| {
            pipelined(c).unwrap_or_else(|e| {
                failed = Some(e.to_string());
                0
            })
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        println!(
            "round {round}: one scan per job {:.2} MH/s, pipelined across jobs {:.2} MH/s ({:.3}x)",
            a / 1e6,
            b / 1e6,
            b / a
        );
    }
    Ok(())
}
