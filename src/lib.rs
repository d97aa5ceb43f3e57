//! `miner`: a proof-of-work mining engine.
//!
//! The flow (docs/ARCHITECTURE.md §1): the chain tip feeds the [`block`] template builder, which issues a
//! [`hash::Job`] to a [`backend`]; a found nonce is assembled into a block and submitted to the
//! [`chain`]. [`pow`] holds the proof-of-work quantities everything shares.

pub mod backend;
pub mod bench;
pub mod block;
pub mod chain;
pub mod cli;
pub mod client;
pub mod hash;
pub mod mining;
pub mod node;
pub mod output;
pub mod pow;
pub mod sim;
