//! Find the genesis block's nonce with the fastest CPU kernel, as a library user would.
//!
//! Run: `cargo run --release --example scan_genesis`

use miner::backend::{Backend, CpuBackend, StopAt};
use miner::hash::{display_hash, Job};
use miner::pow::{CompactTarget, Target};
use std::sync::atomic::{AtomicBool, AtomicU64};

fn main() -> anyhow::Result<()> {
    let header: [u8; 80] = hex::decode(concat!(
        "01000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a",
        "29ab5f49",
        "ffff001d",
        "00000000"
    ))?
    .try_into()
    .map_err(|_| anyhow::anyhow!("not 80 bytes"))?;
    let target = Target::from_compact(CompactTarget::from_consensus(0x1d00ffff))?;
    let job = Job::new(&header, &target);
    let backend = CpuBackend::best()?;
    let start = 2_083_236_893 - 10_000_000;
    let report = backend.scan(
        &job,
        start..start + 20_000_000,
        StopAt::End,
        &AtomicBool::new(false),
        &AtomicU64::new(0),
    )?;
    for nonce in report.hits {
        println!("nonce {nonce}: {}", display_hash(&job.hash(nonce)));
    }
    Ok(())
}
