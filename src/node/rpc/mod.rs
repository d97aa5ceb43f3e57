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

pub use self::envelope::{dispatch, RpcError};

use crate::backend::Backend;
use crate::chain::Chain;
use crate::hash::display_hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What the handlers share: the chain (one writer at a time), a condition variable that wakes
/// longpolls when the tip changes, and the backend `generatetoaddress` mines with.
pub struct NodeState {
    chain: Mutex<Chain>,
    tip_changed: Condvar,
    backend: Box<dyn Backend>,
    stop: AtomicBool,
    /// How long a longpoll waits for a new tip before answering anyway.
    pub longpoll_timeout: Duration,
}

impl NodeState {
    pub fn new(chain: Chain, backend: Box<dyn Backend>) -> NodeState {
        NodeState {
            chain: Mutex::new(chain),
            tip_changed: Condvar::new(),
            backend,
            stop: AtomicBool::new(false),
            longpoll_timeout: Duration::from_secs(60),
        }
    }

    fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `stop` was called.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Wakes every longpoll so the server can exit.
    pub fn shut_down(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.tip_changed.notify_all();
    }

    /// Tip height and hash, for logs.
    pub fn tip(&self) -> (u32, String) {
        let c = self.chain();
        (c.height(), display_hash(&c.tip().hash))
    }
}
