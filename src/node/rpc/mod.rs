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
    pub store_faults: AtomicU64,
}

impl NodeStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
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
        }
    }

    fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells longpoll waiters the tip is now `chain`'s.
    fn tip_moved(&self, chain: &Chain) {
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
}
