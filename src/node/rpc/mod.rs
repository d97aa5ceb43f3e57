//! JSON-RPC method handlers, answering as Bitcoin Core does.
//!
//! Split along its seams: `envelope` (the JSON-RPC request and reply, batches, HTTP status and
//! Core's error codes), `args` (positional parameters), `methods` (one arm per RPC) and
//! `render` (the JSON shapes of headers, templates and figures). What the methods read is
//! here: the [`Context`].

mod args;
mod envelope;
mod methods;
mod render;

pub(crate) use self::envelope::{dispatch, longpoll_id};
pub(crate) use self::methods::decode_block_hex;

use super::p2p::Peers;
use super::state::NodeState;
use super::stratum::Stats as StratumStats;
use std::sync::{Arc, OnceLock};

/// What the RPC methods answer from: the node's state, the peer table (`getpeerinfo`, the ban
/// RPCs; empty without P2P), the Stratum server's figures (`getstratuminfo`, set when
/// `--stratum` listens) and the counters of the layer that carries the calls (`getnodestats`).
pub(crate) struct Context {
    /// The node: its chain, block counters and backend.
    pub(crate) state: Arc<NodeState>,
    /// The connected peers and the bans; empty without P2P.
    pub(crate) peers: Arc<Peers>,
    /// The Stratum server's figures, set once it listens; unset without `--stratum`.
    pub(crate) stratum: OnceLock<Arc<StratumStats>>,
    /// The HTTP edge's counters; none where no server carries the calls (the fuzz harness).
    pub(crate) transport: Option<Arc<dyn Counters>>,
}

impl Context {
    /// A context for `state` with no peers, no Stratum and no transport counters.
    pub(crate) fn new(state: Arc<NodeState>) -> Context {
        Context {
            state,
            peers: Arc::default(),
            stratum: OnceLock::new(),
            transport: None,
        }
    }
}

/// Counters a layer above RPC keeps (the HTTP edge's), which `getnodestats` reports by these
/// names. A trait so RPC reads them without depending on that layer.
pub(crate) trait Counters: Send + Sync {
    /// Each counter's `getnodestats` field name and value.
    fn counters(&self) -> Vec<(&'static str, u64)>;
}
