//! The node's shared state: the chain (one writer at a time), the watch that wakes whoever
//! waits on the tip, the one shutdown signal, the block counters and the backend
//! `generatetoaddress` mines with.
//!
//! It knows none of its users (RPC, HTTP, P2P, Stratum): they read the chain through
//! [`NodeState::chain`] / [`NodeState::with_chain`] and write it only through
//! [`NodeState::submit`] (or [`NodeState::submit_batch`] for a peer's blocks), which count,
//! wake the tip watch and log the same way whatever the path.

use crate::backend::Backend;
use crate::block::Template;
use crate::chain::{Accepted, Chain, Reject, SubmitError};
use crate::hash::display_hash;
use crate::mining::{MineError, SearchOutcome};
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the node's parts share: the chain (one writer at a time), a watch that wakes longpolls,
/// Stratum's job maker and peers when the tip changes (its value is the tip's display hash),
/// the backend `generatetoaddress` mines with, the shutdown signal and the block counters.
pub struct NodeState {
    chain: Mutex<Chain>,
    tip_watch: tokio::sync::watch::Sender<String>,
    backend: Box<dyn Backend>,
    stop: AtomicBool,
    started: Instant,
    /// What became of the blocks submitted on every path (`getnodestats`).
    pub(crate) blocks: BlockStats,
    /// How long a longpoll waits for a new tip before answering anyway (`--longpoll-timeout`;
    /// 60 s by default).
    pub longpoll_timeout: Duration,
}

/// Where a submitted block came from: names the path in the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The `submitblock` RPC.
    Rpc,
    /// The `generatetoaddress` RPC (the node's own backend).
    Generate,
    /// A Stratum miner's block-solving share.
    Stratum,
    /// A P2P peer, by its id.
    Peer(u64),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Rpc => "submitblock",
            Source::Generate => "generatetoaddress",
            Source::Stratum => "stratum",
            Source::Peer(_) => "p2p",
        })
    }
}

/// A block the chain took: where (the tip or a side branch) and at what height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Submitted {
    /// Whether it became the tip or went onto a side branch.
    pub(crate) accepted: Accepted,
    /// Its height in the chain.
    pub(crate) height: u32,
}

impl Submitted {
    /// Whether the block became the tip.
    pub(crate) fn is_tip(&self) -> bool {
        self.accepted == Accepted::Tip
    }
}

/// Block counters, reported by `getnodestats`.
#[derive(Default, Debug)]
pub(crate) struct BlockStats {
    /// Blocks the chain took, as the tip or on a side branch.
    pub(crate) blocks_accepted: AtomicU64,
    /// Blocks the chain refused for any reason but a duplicate.
    pub(crate) blocks_rejected: AtomicU64,
    /// Blocks submitted that the chain already had (not counted as rejected).
    pub(crate) blocks_duplicate: AtomicU64,
    /// Valid blocks the store failed to write (so the chain is unchanged).
    pub(crate) store_faults: AtomicU64,
}

impl BlockStats {
    /// Counts what became of a submitted block, the same way on every path (`submitblock`,
    /// `generatetoaddress`, Stratum, P2P): accepted (tip or side branch), duplicate, rejected
    /// (any other reason), or a store fault.
    fn count_submit(&self, outcome: &Result<Accepted, SubmitError>) {
        let counter = match outcome {
            Ok(_) => &self.blocks_accepted,
            Err(SubmitError::Rejected(Reject::Duplicate)) => &self.blocks_duplicate,
            Err(SubmitError::Rejected(_)) => &self.blocks_rejected,
            Err(SubmitError::Store(_)) => &self.store_faults,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The chain, locked for reading: writes go through [`NodeState::submit`].
pub(crate) struct ChainGuard<'a>(MutexGuard<'a, Chain>);

impl std::ops::Deref for ChainGuard<'_> {
    type Target = Chain;
    fn deref(&self) -> &Chain {
        &self.0
    }
}

impl NodeState {
    /// A node on `chain` whose `generatetoaddress` mines with `backend`; the tip watch starts
    /// at the chain's tip, the counters at zero, the longpoll timeout at 60 s.
    pub fn new(chain: Chain, backend: Box<dyn Backend>) -> NodeState {
        let tip = display_hash(&chain.tip().hash);
        NodeState {
            chain: Mutex::new(chain),
            tip_watch: tokio::sync::watch::Sender::new(tip),
            backend,
            stop: AtomicBool::new(false),
            started: Instant::now(),
            blocks: BlockStats::default(),
            longpoll_timeout: Duration::from_secs(60),
        }
    }

    /// The chain, locked (for reading) until the guard is dropped. Blocks: call it off the
    /// async threads where a commit may hold the lock.
    pub(crate) fn chain(&self) -> ChainGuard<'_> {
        ChainGuard(self.lock())
    }

    /// `f` of the chain, read under its lock (see [`NodeState::chain`]).
    pub(crate) fn with_chain<R>(&self, f: impl FnOnce(&Chain) -> R) -> R {
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A block from `source`, validated and stored: counted, the tip watch woken when it
    /// becomes the tip, logged. Its height when the chain took it, or why not (typed: the
    /// chain's reason, or the store fault).
    pub(crate) fn submit(&self, block: Block, source: Source) -> Result<Submitted, SubmitError> {
        let hash = block.block_hash();
        let answer = {
            let mut chain = self.lock();
            let outcome = chain.submit(block, crate::mining::unix_now());
            let answer = self.settle(&chain, &hash, outcome);
            if answer.as_ref().is_ok_and(Submitted::is_tip) {
                self.tip_moved(&chain);
            }
            answer
        };
        log(source, &hash, &answer);
        answer
    }

    /// Blocks from `source` (a peer's, sent back to back), validated and stored as
    /// [`NodeState::submit`] does but with one commit: each block's hash and its answer.
    pub(crate) fn submit_batch(
        &self,
        blocks: Vec<Block>,
        source: Source,
    ) -> Vec<(BlockHash, Result<Submitted, SubmitError>)> {
        if blocks.is_empty() {
            return Vec::new();
        }
        let hashes: Vec<BlockHash> = blocks.iter().map(Block::block_hash).collect();
        let answers: Vec<_> = {
            let mut chain = self.lock();
            let outcomes = chain.submit_batch(blocks, crate::mining::unix_now());
            let answers: Vec<_> = hashes
                .into_iter()
                .zip(outcomes)
                .map(|(hash, outcome)| {
                    let answer = self.settle(&chain, &hash, outcome);
                    (hash, answer)
                })
                .collect();
            if answers
                .iter()
                .any(|(_, a)| a.as_ref().is_ok_and(Submitted::is_tip))
            {
                self.tip_moved(&chain);
            }
            answers
        };
        for (hash, answer) in &answers {
            log(source, hash, answer);
        }
        answers
    }

    /// Counts one block's outcome and, when the chain took it, finds its height.
    fn settle(
        &self,
        chain: &Chain,
        hash: &BlockHash,
        outcome: Result<Accepted, SubmitError>,
    ) -> Result<Submitted, SubmitError> {
        self.blocks.count_submit(&outcome);
        outcome.map(|accepted| Submitted {
            accepted,
            height: chain.by_hash(hash.as_byte_array()).map_or(0, |e| e.height),
        })
    }

    /// Tells the tip watch's receivers the tip is now `chain`'s.
    fn tip_moved(&self, chain: &Chain) {
        self.tip_watch.send_replace(display_hash(&chain.tip().hash));
    }

    /// Searches `template` with the node's backend until a block is found or the node stops
    /// (`generatetoaddress`); `progress` counts the hashes.
    pub(crate) fn search(
        &self,
        template: &Template,
        progress: &AtomicU64,
    ) -> Result<SearchOutcome, MineError> {
        crate::mining::search(template, self.backend.as_ref(), &self.stop, progress)
    }

    /// A receiver that sees every tip change (and the stop) as a change of its value.
    pub(crate) fn watch_tip(&self) -> tokio::sync::watch::Receiver<String> {
        self.tip_watch.subscribe()
    }

    /// Seconds since the node started.
    pub(crate) fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Whether `shut_down` was called.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The one shutdown signal: stops the backend's search and wakes every tip watcher
    /// (longpolls, Stratum's job maker, peers) so the server can exit.
    pub(crate) fn shut_down(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.tip_watch.send_modify(|_| {});
    }

    /// Tip height and hash, for logs.
    pub fn tip(&self) -> (u32, String) {
        let c = self.lock();
        (c.height(), display_hash(&c.tip().hash))
    }
}

/// Logs a submitted block's answer as each path always has: `submitblock` every outcome,
/// P2P the blocks taken, Stratum the refusals; every path a store fault, as an error.
/// `generatetoaddress` mines again after a refusal, and P2P logs and scores the peer's.
fn log(source: Source, hash: &BlockHash, answer: &Result<Submitted, SubmitError>) {
    match (source, answer) {
        (Source::Rpc, Ok(s)) if s.is_tip() => {
            tracing::info!(%hash, "submitblock: accepted as the new tip");
        }
        (Source::Rpc, Ok(_)) => {
            tracing::info!(%hash, "submitblock: accepted on a side branch (inconclusive)");
        }
        (Source::Peer(peer), Ok(s)) => {
            tracing::info!(peer, %hash, height = s.height, tip = s.is_tip(), "p2p: block accepted");
        }
        (Source::Rpc, Err(SubmitError::Rejected(r))) => {
            tracing::info!(%hash, reason = %r, "submitblock: rejected");
        }
        (Source::Stratum, Err(SubmitError::Rejected(r))) => {
            tracing::info!(%hash, reason = %r, "stratum: block rejected");
        }
        (Source::Peer(peer), Err(SubmitError::Store(e))) => {
            tracing::error!(peer, %hash, error = %e, "p2p: store fault, block not stored");
        }
        (_, Err(SubmitError::Store(e))) => {
            tracing::error!(%hash, error = %e, "{source}: store fault, block not stored");
        }
        (Source::Generate | Source::Stratum, Ok(_))
        | (Source::Generate | Source::Peer(_), Err(SubmitError::Rejected(_))) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;
    use crate::chain::ChainParams;
    use crate::hash::Kernel;
    use crate::pow::retarget::RetargetParams;
    use crate::pow::CompactTarget;

    fn regtest_state() -> NodeState {
        let params = ChainParams::regtest();
        let retarget = RetargetParams::fixed(
            CompactTarget::from_consensus(crate::pow::REGTEST_POW_LIMIT_BITS),
            params.pow_limit,
        );
        let backend = CpuBackend::new(Kernel::Soft, Some(1)).unwrap();
        NodeState::new(Chain::new(params, retarget), Box::new(backend))
    }

    fn mined(state: &NodeState) -> Block {
        let payout = bitcoin::ScriptBuf::new_op_return([0u8; 4]);
        let template = state
            .with_chain(|c| {
                crate::mining::next_template_at(c, &payout, c.tip().block.header.time + 1)
            })
            .unwrap();
        match state.search(&template, &AtomicU64::new(0)).unwrap() {
            SearchOutcome::Found(found) => found.block,
            SearchOutcome::Cancelled { .. } => panic!("the search was cancelled"),
        }
    }

    #[test]
    fn submit_counts_moves_the_tip_watch_and_answers_the_height() {
        let state = regtest_state();
        let mut tip = state.watch_tip();
        tip.borrow_and_update();
        let block = mined(&state);
        let answer = state.submit(block.clone(), Source::Rpc).unwrap();
        assert_eq!(
            answer,
            Submitted {
                accepted: Accepted::Tip,
                height: 1
            }
        );
        assert!(tip.has_changed().unwrap());
        assert_eq!(*tip.borrow_and_update(), state.tip().1);
        // The same block again, alone or in a peer's batch: a duplicate, the tip unmoved.
        let again = state.submit(block.clone(), Source::Stratum);
        assert!(matches!(
            again,
            Err(SubmitError::Rejected(Reject::Duplicate))
        ));
        let batch = state.submit_batch(vec![block.clone()], Source::Peer(3));
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].0, block.block_hash());
        assert!(matches!(
            batch[0].1,
            Err(SubmitError::Rejected(Reject::Duplicate))
        ));
        assert!(!tip.has_changed().unwrap());
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(count(&state.blocks.blocks_accepted), 1);
        assert_eq!(count(&state.blocks.blocks_duplicate), 2);
        assert_eq!(count(&state.blocks.blocks_rejected), 0);
        assert_eq!(count(&state.blocks.store_faults), 0);
    }

    #[test]
    fn a_batch_answers_each_block_with_its_height_and_wakes_the_watch_once() {
        let state = regtest_state();
        let first = mined(&state);
        // Build the second block on the first without storing it, as a peer sends them.
        let other = regtest_state();
        other.submit(first.clone(), Source::Rpc).unwrap();
        let second = mined(&other);
        let mut tip = state.watch_tip();
        tip.borrow_and_update();
        let answers = state.submit_batch(vec![first, second], Source::Peer(1));
        let heights: Vec<u32> = answers
            .iter()
            .map(|(_, a)| a.as_ref().unwrap().height)
            .collect();
        assert_eq!(heights, [1, 2]);
        assert!(tip.has_changed().unwrap());
        assert_eq!(state.tip().0, 2);
        assert_eq!(state.blocks.blocks_accepted.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn shut_down_raises_the_one_stop_signal_and_wakes_the_watch() {
        let state = regtest_state();
        let mut tip = state.watch_tip();
        tip.borrow_and_update();
        assert!(!state.stopping());
        state.shut_down();
        assert!(state.stopping());
        assert!(tip.has_changed().unwrap());
    }

    #[test]
    fn sources_are_named_as_the_logs_always_named_them() {
        assert_eq!(Source::Rpc.to_string(), "submitblock");
        assert_eq!(Source::Generate.to_string(), "generatetoaddress");
        assert_eq!(Source::Stratum.to_string(), "stratum");
        assert_eq!(Source::Peer(7).to_string(), "p2p");
    }
}
