//! PBFT, Practical Byzantine Fault Tolerance (Castro & Liskov, OSDI 1999; TOCS 2002), as one
//! replica state machine driven by two networks: a seeded discrete-event simulation ([`sim`])
//! and real replicas on loopback TCP ([`live`], feature `node`).
//!
//! # The protocol
//!
//! N replicas, of which f = ⌊(N − 1)/3⌋ may be Byzantine; quorums have Q replicas, 2f + 1 by
//! default when N = 3f + 1 (see [`default_quorum`] for other N). Views are numbered; the primary
//! of view v is replica v mod N.
//!
//! - A client sends REQUEST ⟨o, t, c⟩ to the primary; the primary assigns the next sequence
//!   number n and multicasts PRE-PREPARE ⟨v, n, d⟩ with the request (d = SHA-256 of the request's
//!   encoding). A backup accepts it when it is in view v, n lies between the low water mark h
//!   and h + L (the window), d is the request's digest, and it accepted no other pre-prepare for
//!   v and n; then it multicasts PREPARE ⟨v, n, d, i⟩.
//! - Prepared: the pre-prepare and Q − 1 matching prepares from distinct backups (2f + 1 in all).
//!   A prepared replica multicasts COMMIT ⟨v, n, d, i⟩; committed-local: prepared and Q matching
//!   commits, its own included. Requests execute in sequence-number order; each execution
//!   answers REPLY ⟨v, t, c, i, r⟩, and the client accepts N − Q + 1 (f + 1) matching results
//!   from distinct replicas.
//! - Every k executions a replica multicasts CHECKPOINT ⟨n, d, i⟩ (d: the digest of the service
//!   state, a hash chain of the executed (n, d) pairs and the last reply to each client). Q
//!   matching checkpoints make it stable: h moves up to n and every log entry at or below it is
//!   discarded. A replica that finds itself behind a stable checkpoint fetches the state from
//!   the others and checks it against the checkpoint's digest (state transfer).
//! - View change: a replica waiting for a request starts a timer (restarted after every
//!   execution); on expiry it multicasts VIEW-CHANGE ⟨v + 1, n, C, P, i⟩ (its stable checkpoint
//!   n, the Q checkpoints proving it, and a prepared certificate for every request prepared
//!   above n) and accepts no more normal-case messages of view v, nor a NEW-VIEW for any view
//!   below v + 1. The new primary collects Q view-changes and multicasts NEW-VIEW
//!   ⟨v + 1, V, O⟩: O re-issues, for every n between the highest stable checkpoint in V and the
//!   highest prepared n, the request prepared in the highest view, or a null request. Backups
//!   recompute O before they enter the view. A replica that sees N − Q + 1 view-changes for
//!   higher views joins the lowest; one whose view change does not complete in time moves on to
//!   the next view. A client that times out sends its request to all replicas, so that backups
//!   learn of it.
//!
//! Choices the papers leave open, each found necessary by randomised runs (see the tests):
//! every waiting replica runs the timer, the primary too (the paper names backups; a primary
//! one commit short, with the others done or gone, would otherwise wait for ever); each
//! expiry doubles the timeout and it is never reset (a timeout below the network's delays then
//! grows past them instead of causing view change after view change); VIEW-CHANGE messages are
//! kept per view and sender, not just each sender's latest (links reorder); and normal-case
//! messages up to one window above the high water mark are kept, though not acted on, until
//! h moves (a replica slightly behind would otherwise drop them and fall back on state
//! transfer).
//!
//! Every message carries an authenticator: one HMAC-SHA256 per receiver (one per replica, or
//! the single one of a REPLY's client) over the sender and the message's bytes, each with the
//! key the sender shares with that receiver; keys derive from the run's seed. Receivers drop,
//! and count, messages whose MAC fails. The proofs nested in VIEW-CHANGE and NEW-VIEW keep the
//! authenticators of the messages they quote, so each replica checks its own MAC in them: the
//! OSDI version signs these messages; with MACs, a Byzantine sender could make a proof that
//! checks for some replicas and not others, which the TOCS protocol handles with extra
//! acknowledgements that are not modelled here.
//!
//! Not modelled: request batching, read-only and tentative execution, MAC truncation,
//! retransmission of lost normal-case messages (links here are reliable), key refreshment.
//!
//! # Faults
//!
//! A [`Fault`] per replica. Crash, Silent and Delay act on the network and are applied by the
//! drivers (`Fault::send_delay`, `Fault::is_down`); WrongDigest, Equivocate and Collude change
//! what the replica sends and live in the state machine. The safety check compares every pair
//! of replicas that are not Byzantine (crashed, silent and slow replicas are honest).
//!
//! Why N = 3f + 1: with f replicas silent, N − f must still form quorums, and two quorums must
//! share an honest replica, so (N − f) − f > f. The tests show both halves failing at N = 3f.

mod client;
#[cfg(feature = "node")]
pub mod live;
mod message;
mod params;
mod replica;
mod results;
pub mod sim;
mod wire;

pub use client::*;
pub use message::*;
pub use params::*;
pub use replica::*;
pub use results::*;
pub use wire::{decode_message, encode_message, DecodeError};

/// A SHA-256 digest (of a request, of the service state).
pub type Digest = [u8; 32];
/// One HMAC-SHA256 of an authenticator.
pub type Mac = [u8; 32];

/// The digest of the null request (no operation), which NEW-VIEW uses to fill gaps. No
/// request's SHA-256 is all zeros in practice.
pub const NULL_DIGEST: Digest = [0; 32];

/// Views ahead of its own for which a replica keeps normal-case messages (they arrive before
/// the NEW-VIEW that opens the view, links reorder).
const VIEW_AHEAD: u64 = 4;

/// Views above its own for which a replica keeps VIEW-CHANGE messages.
const VC_AHEAD: u64 = 64;

/// A replica's view-change timeout doubles at most up to this multiple of the base.
const TIMEOUT_CAP: f64 = 64.0;

/// Most replicas a run may have (the sim's cost grows as N² per request).
pub(crate) const MAX_REPLICAS: usize = 256;
/// Most clients a run may have.
pub(crate) const MAX_CLIENTS: usize = 4096;

/// What the submodules' unit tests share: a run's config and a participant's keys.
#[cfg(test)]
mod testing {
    use super::*;

    pub(super) fn cfg(n: usize) -> Config {
        Config::new(&PbftParams::with_replicas(n)).expect("valid")
    }

    pub(super) fn keys(c: &Config, me: Node) -> KeyRing {
        KeyRing::new(c.seed, c.n, c.clients, me)
    }
}
