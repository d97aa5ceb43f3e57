//! `miner`: a proof-of-work mining engine.
//!
//! The flow (docs/ARCHITECTURE.md §1): the chain tip feeds the [`block`] template builder, which issues a
//! [`hash::Job`] to a [`backend`]; a found nonce is assembled into a block and submitted to the
//! [`chain`]. [`pow`] holds the proof-of-work quantities everything shares.
//!
//! Mining one block in-process (`examples/mine_one_block.rs`):
//!
//! ```
//! use miner::backend::CpuBackend;
//! use miner::block::Template;
//! use miner::chain::ChainParams;
//! use miner::mining::{search, SearchOutcome};
//! use std::sync::atomic::{AtomicBool, AtomicU64};
//!
//! let genesis = ChainParams::regtest().genesis.block_hash();
//! let template = Template::builder(genesis, 1).build()?;
//! let backend = CpuBackend::best()?;
//! let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
//! let SearchOutcome::Found(found) = search(&template, &backend, &cancel, &progress)? else {
//!     unreachable!("nothing raised the cancel flag");
//! };
//! assert!(template.target.is_met_by(&found.hash));
//! println!("block {} after {} trials", found.block.block_hash(), found.trials);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Cargo features, all on by default: `gpu` (the wgpu backend, `backend::gpu`), `node` (the
//! JSON-RPC `node` and the getblocktemplate `client`), `experiments` (the [`experiment`]s but
//! the retarget simulator, and their SVG figures) and `cli` (what only the `miner` binary
//! uses). `--no-default-features` builds the CPU engine alone.

// `unsafe fn` bodies mark each unsafe operation with its own `unsafe {}` block and `// SAFETY:`
// comment (the default in edition 2024).
#![deny(unsafe_op_in_unsafe_fn)]
// Every public item says what it is (missing_docs), and `pub` means public: an item that
// nothing outside the crate can reach is `pub(crate)` (unreachable_pub).
#![warn(missing_docs, unreachable_pub)]

/// The `bitcoin` crate this one builds on, whose types (`Block`, `BlockHash`, `ScriptBuf`,
/// `Amount`, ...) appear in its API.
pub use bitcoin;

pub mod backend;
pub mod block;
pub mod chain;
#[cfg(feature = "node")]
pub mod client;
pub mod experiment;
#[cfg(feature = "node")]
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod mining;
#[cfg(feature = "node")]
pub mod node;
pub mod pow;
pub mod stratum;
