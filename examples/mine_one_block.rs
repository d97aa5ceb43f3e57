//! Mine one block in-process: a template on the regtest genesis block (the builder's defaults:
//! regtest's easy nBits, a 50 BTC coinbase paying OP_TRUE, no other transactions), searched on
//! all CPUs with the fastest kernel. Needs no cargo feature:
//! `cargo run --example mine_one_block --no-default-features`.

use miner::backend::CpuBackend;
use miner::block::Template;
use miner::chain::ChainParams;
use miner::mining::{search, SearchOutcome};
use std::sync::atomic::{AtomicBool, AtomicU64};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let genesis = ChainParams::regtest().genesis.block_hash();
    let template = Template::builder(genesis, 1).build()?;
    let backend = CpuBackend::best()?;
    let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
    match search(&template, &backend, &cancel, &progress)? {
        SearchOutcome::Found(found) => println!(
            "block {} after {} trials",
            found.block.block_hash(),
            found.trials
        ),
        SearchOutcome::Cancelled { hashes } => println!("cancelled after {hashes} hashes"),
    }
    Ok(())
}
