//! The stake flags `pos`, `dpos` and `compare` share: a genesis allocation file or a generated
//! skewed one.

use anyhow::{Context, Result};
use clap::Args;
use miner::experiment::stake;
use std::path::PathBuf;

/// Where the stake comes from: a genesis allocation file or a generated skewed one.
#[derive(Args, Debug)]
pub(super) struct Stake {
    /// Accounts in the generated genesis allocation (skewed balances, from --seed); ignored
    /// with --genesis [default: 100; dpos: 300, enough for 101 delegates].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=100_000))]
    accounts: Option<u64>,
    /// A genesis allocation file: {"accounts": [{"name": "alice", "balance": 1000}, ...]}.
    #[arg(long, value_name = "FILE")]
    genesis: Option<PathBuf>,
    /// Write the genesis allocation used (generated or read) to this file.
    #[arg(long, value_name = "FILE")]
    write_genesis: Option<PathBuf>,
}

impl Stake {
    pub(super) fn accounts(&self, seed: u64, default: u64) -> Result<Vec<stake::Account>> {
        let accounts = match &self.genesis {
            Some(path) => stake::load_genesis(path).context("--genesis")?,
            None => stake::default_genesis(self.accounts.unwrap_or(default) as usize, seed),
        };
        if let Some(path) = &self.write_genesis {
            stake::write_genesis(path, &accounts).context("--write-genesis")?;
        }
        Ok(accounts)
    }
}
