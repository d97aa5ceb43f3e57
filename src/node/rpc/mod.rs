//! JSON-RPC method handlers, answering as Bitcoin Core does.
//!
//! Split along its seams: `envelope` (the JSON-RPC request and reply, batches, HTTP status and
//! Core's error codes), `args` (positional parameters), `methods` (one arm per RPC) and
//! `render` (the JSON shapes of headers, templates and figures). The state the methods share
//! is here.

mod args;
mod envelope;
mod methods;
mod render;

pub use self::envelope::{dispatch, longpoll_id, RpcError};
pub(crate) use self::methods::decode_block_hex;

use crate::backend::Backend;
use crate::chain::Chain;
use crate::hash::display_hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the handlers share: the chain (one writer at a time), a watch that wakes longpolls when
/// the tip changes (its value is the tip's display hash), the backend `generatetoaddress` mines
/// with, and the counters `getnodestats` reports.
pub struct NodeState {
    chain: Mutex<Chain>,
    tip_watch: tokio::sync::watch::Sender<String>,
    backend: Box<dyn Backend>,
    stop: AtomicBool,
    started: Instant,
    /// Counters of what the server saw (connections, limits hit, auth failures, blocks).
    pub stats: NodeStats,
    /// How long a longpoll waits for a new tip before answering anyway.
    pub longpoll_timeout: Duration,
    /// Connected P2P peers (`getpeerinfo`).
    pub peers: crate::node::p2p::Peers,
    /// The Stratum server's figures (`getstratuminfo`), set when `--stratum` listens.
    pub stratum: std::sync::OnceLock<std::sync::Arc<crate::node::stratum::Stats>>,
}

/// Counters, reported by `getnodestats`.
#[derive(Default, Debug)]
pub struct NodeStats {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub accept_errors: AtomicU64,
    pub requests: AtomicU64,
    pub auth_failures: AtomicU64,
    pub bodies_too_large: AtomicU64,
    pub request_timeouts: AtomicU64,
    pub longpolls_active: AtomicU64,
    pub longpolls_refused: AtomicU64,
    pub blocks_accepted: AtomicU64,
    pub blocks_rejected: AtomicU64,
    /// Blocks submitted that the chain already had (not counted as rejected).
    pub blocks_duplicate: AtomicU64,
    pub store_faults: AtomicU64,
}

impl NodeStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts what became of a submitted block, the same way on every path (`submitblock`,
    /// `generatetoaddress`, Stratum, P2P): accepted (tip or side branch), duplicate, rejected
    /// (any other reason), or a store fault.
    pub fn count_submit(
        &self,
        outcome: &Result<crate::chain::Accepted, crate::chain::SubmitError>,
    ) {
        use crate::chain::{Reject, SubmitError};
        NodeStats::bump(match outcome {
            Ok(_) => &self.blocks_accepted,
            Err(SubmitError::Rejected(Reject::Duplicate)) => &self.blocks_duplicate,
            Err(SubmitError::Rejected(_)) => &self.blocks_rejected,
            Err(SubmitError::Store(_)) => &self.store_faults,
        });
    }
}

impl NodeState {
    pub fn new(chain: Chain, backend: Box<dyn Backend>) -> NodeState {
        let tip = display_hash(&chain.tip().hash);
        NodeState {
            chain: Mutex::new(chain),
            tip_watch: tokio::sync::watch::Sender::new(tip),
            backend,
            stop: AtomicBool::new(false),
            started: Instant::now(),
            stats: NodeStats::default(),
            longpoll_timeout: Duration::from_secs(60),
            peers: Default::default(),
            stratum: std::sync::OnceLock::new(),
        }
    }

    /// The template for the next block on the tip, paying `payout` (Stratum's jobs).
    pub(crate) fn template_for(
        &self,
        payout: &bitcoin::ScriptBuf,
    ) -> Result<crate::block::Template, String> {
        crate::mining::next_template(&self.chain(), payout).map_err(|e| e.to_string())
    }

    /// Seconds until a block on the tip can carry a time the chain accepts (see
    /// [`crate::mining::clock_wait`]); 0 when none.
    pub(crate) fn clock_wait(&self) -> u32 {
        crate::mining::clock_wait(&self.chain(), crate::mining::unix_now())
    }

    /// A block mined elsewhere (a Stratum share), validated and stored as `submitblock` does:
    /// wakes the tip watch when it becomes the tip. Returns the new height, or why it was
    /// refused (typed: the chain's reason, or the store fault).
    pub(crate) fn submit_mined(
        &self,
        block: bitcoin::Block,
        source: &str,
    ) -> Result<(crate::chain::Accepted, u32), crate::chain::SubmitError> {
        use crate::chain::{Accepted, SubmitError};
        let hash = block.block_hash();
        let mut chain = self.chain();
        let outcome = chain.submit(block, crate::mining::unix_now());
        self.stats.count_submit(&outcome);
        match outcome {
            Ok(accepted) => {
                if accepted == Accepted::Tip {
                    self.tip_moved(&chain);
                }
                let height = chain
                    .by_hash(&bitcoin::hashes::Hash::to_byte_array(hash))
                    .map_or(0, |e| e.height);
                Ok((accepted, height))
            }
            Err(SubmitError::Rejected(r)) => {
                tracing::info!(%hash, reason = %r, "{source}: block rejected");
                Err(SubmitError::Rejected(r))
            }
            Err(SubmitError::Store(e)) => {
                tracing::error!(%hash, error = %e, "{source}: store fault, block not stored");
                Err(SubmitError::Store(e))
            }
        }
    }

    fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells longpoll waiters the tip is now `chain`'s.
    pub(crate) fn tip_moved(&self, chain: &Chain) {
        self.tip_watch.send_replace(display_hash(&chain.tip().hash));
    }

    /// A receiver that sees every tip change (and the stop) as a change of its value.
    pub fn watch_tip(&self) -> tokio::sync::watch::Receiver<String> {
        self.tip_watch.subscribe()
    }

    /// Seconds since the node started.
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Whether `stop` was called.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Wakes every longpoll so the server can exit.
    pub fn shut_down(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.tip_watch.send_modify(|_| {});
    }

    /// Tip height and hash, for logs.
    pub fn tip(&self) -> (u32, String) {
        let c = self.chain();
        (c.height(), display_hash(&c.tip().hash))
    }

    /// The chain's network magic, for P2P framing.
    pub(crate) fn magic(&self) -> bitcoin::p2p::Magic {
        bitcoin::p2p::Magic::from(self.chain().params().network)
    }

    /// A block locator of the active chain.
    pub(crate) fn locator(&self) -> Vec<bitcoin::BlockHash> {
        crate::node::p2p::locator(&self.chain())
    }

    /// Headers answering a `getheaders`.
    pub(crate) fn headers_after(
        &self,
        locator: &[bitcoin::BlockHash],
        stop: bitcoin::BlockHash,
    ) -> Vec<bitcoin::block::Header> {
        crate::node::p2p::headers_after(&self.chain(), locator, stop)
    }

    /// Whether the block is stored.
    pub(crate) fn has_block(&self, hash: &bitcoin::BlockHash) -> bool {
        use bitcoin::hashes::Hash;
        self.chain().by_hash(hash.as_byte_array()).is_some()
    }

    /// Height of a stored block.
    pub(crate) fn height_of(&self, hash: &bitcoin::BlockHash) -> Option<u32> {
        use bitcoin::hashes::Hash;
        self.chain().by_hash(hash.as_byte_array()).map(|e| e.height)
    }

    /// A stored block.
    pub(crate) fn block(&self, hash: &bitcoin::BlockHash) -> Option<bitcoin::Block> {
        use bitcoin::hashes::Hash;
        self.chain()
            .by_hash(hash.as_byte_array())
            .map(|e| e.block.clone())
    }

    /// The first of `headers` whose proof of work fails Core's `CheckProofOfWork` (nBits that
    /// decode to a target within the pow limit, met by the header's hash), if any.
    pub(crate) fn first_without_pow(&self, headers: &[bitcoin::block::Header]) -> Option<usize> {
        use bitcoin::hashes::Hash;
        let chain = self.chain();
        headers.iter().position(|h| {
            let bits = crate::pow::CompactTarget::from_consensus(h.bits.to_consensus());
            !chain.proof_of_work_holds(bits, &h.block_hash().to_byte_array())
        })
    }

    /// The tip's header.
    pub(crate) fn tip_header(&self) -> bitcoin::block::Header {
        self.chain().tip().block.header
    }

    /// Blocks a peer sent, validated and stored as `submitblock` does but with one commit: each
    /// block's hash and its height, or why it was refused (typed).
    pub(crate) fn submit_batch_from_peer(
        &self,
        blocks: Vec<bitcoin::Block>,
        peer: u64,
    ) -> Vec<(bitcoin::BlockHash, Result<u32, crate::chain::SubmitError>)> {
        use crate::chain::Accepted;
        if blocks.is_empty() {
            return Vec::new();
        }
        let hashes: Vec<bitcoin::BlockHash> = blocks.iter().map(|b| b.block_hash()).collect();
        let mut chain = self.chain();
        let answers = chain.submit_batch(blocks, crate::mining::unix_now());
        let mut moved = false;
        let out = hashes
            .into_iter()
            .zip(answers)
            .map(|(hash, answer)| {
                self.stats.count_submit(&answer);
                let answer = answer.map(|accepted| {
                    moved |= accepted == Accepted::Tip;
                    let height = chain
                        .by_hash(&bitcoin::hashes::Hash::to_byte_array(hash))
                        .map_or(0, |e| e.height);
                    tracing::info!(peer, %hash, height, tip = accepted == Accepted::Tip, "p2p: block accepted");
                    height
                });
                if let Err(crate::chain::SubmitError::Store(e)) = &answer {
                    tracing::error!(peer, %hash, error = %e, "p2p: store fault, block not stored");
                }
                (hash, answer)
            })
            .collect();
        if moved {
            self.tip_moved(&chain);
        }
        out
    }
}
