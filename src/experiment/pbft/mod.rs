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

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use bitcoin::hashes::{sha256, Hash, HashEngine, Hmac, HmacEngine};

#[cfg(feature = "node")]
pub mod live;
pub mod sim;

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
pub const MAX_REPLICAS: usize = 256;
/// Most clients a run may have.
pub const MAX_CLIENTS: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Parameters, faults, results
// ---------------------------------------------------------------------------------------------

/// What a replica does wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Honest.
    None,
    /// Stops completely at `at_ms` (virtual or real ms from the start): receives, sends and
    /// times out no more. Honest until then.
    Crash { at_ms: f64 },
    /// Receives and runs the protocol but never sends anything.
    Silent,
    /// Byzantine: every PRE-PREPARE, PREPARE, COMMIT and CHECKPOINT it sends carries a wrong
    /// digest, every REPLY a wrong result.
    WrongDigest,
    /// Byzantine: as primary it sends half of the backups a pre-prepare for the request and the
    /// other half a pre-prepare for the null request, at the same n, and casts no commit for
    /// either. As a backup it is honest.
    Equivocate,
    /// Byzantine, one of a coalition: as primary it equivocates like [`Fault::Equivocate`]; as
    /// any replica it sends PREPARE and COMMIT for every digest it sees at any n (in
    /// pre-prepares, prepares, commits), so that conflicting requests each find a quorum.
    Collude,
    /// Honest, but every message it sends is delayed by `ms` more.
    Delay { ms: f64 },
}

impl Fault {
    /// The extra delay of a message the replica sends at `now_ms`, or `None` when it sends
    /// nothing (silent, crashed).
    pub fn send_delay(&self, now_ms: f64) -> Option<f64> {
        match *self {
            Fault::Silent => None,
            Fault::Crash { at_ms } if now_ms >= at_ms => None,
            Fault::Delay { ms } => Some(ms),
            _ => Some(0.0),
        }
    }

    /// Whether the replica has stopped (crashed) by `now_ms`: it then receives nothing and its
    /// timers do not fire.
    pub fn is_down(&self, now_ms: f64) -> bool {
        matches!(*self, Fault::Crash { at_ms } if now_ms >= at_ms)
    }

    /// When the replica crashes, if it does.
    pub fn crash_at(&self) -> Option<f64> {
        match *self {
            Fault::Crash { at_ms } => Some(at_ms),
            _ => None,
        }
    }

    /// Whether it may send what the protocol forbids; such replicas are left out of the safety
    /// check (crashed, silent and slow replicas are not).
    pub fn is_byzantine(&self) -> bool {
        matches!(
            self,
            Fault::WrongDigest | Fault::Equivocate | Fault::Collude
        )
    }

    fn behaviour(&self) -> Behaviour {
        match self {
            Fault::WrongDigest => Behaviour::WrongDigest,
            Fault::Equivocate => Behaviour::Equivocate,
            Fault::Collude => Behaviour::Collude,
            _ => Behaviour::Honest,
        }
    }
}

const FAULT_FORMS: &str =
    "none, crash, crash@MS, silent, wrong-digest, equivocate, collude or delay:MS";

impl FromStr for Fault {
    type Err = String;

    /// `none`, `crash` (at 0 ms), `crash@500`, `silent`, `wrong-digest`, `equivocate`,
    /// `collude`, `delay:200`.
    fn from_str(s: &str) -> Result<Fault, String> {
        let t = s.trim().to_ascii_lowercase();
        let ms = |v: &str| -> Result<f64, String> {
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                _ => Err(format!(
                    "fault {s:?}: {v:?} is not a time in ms (a number ≥ 0); accepted forms: {FAULT_FORMS}"
                )),
            }
        };
        match t.as_str() {
            "none" | "honest" => Ok(Fault::None),
            "crash" => Ok(Fault::Crash { at_ms: 0.0 }),
            "silent" => Ok(Fault::Silent),
            "wrong-digest" => Ok(Fault::WrongDigest),
            "equivocate" => Ok(Fault::Equivocate),
            "collude" => Ok(Fault::Collude),
            _ => {
                if let Some(v) = t.strip_prefix("crash@") {
                    Ok(Fault::Crash { at_ms: ms(v)? })
                } else if let Some(v) = t.strip_prefix("delay:") {
                    Ok(Fault::Delay { ms: ms(v)? })
                } else {
                    Err(format!(
                        "unknown fault {s:?}: accepted forms are {FAULT_FORMS}"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => write!(f, "none"),
            Fault::Crash { at_ms } => write!(f, "crash@{at_ms}"),
            Fault::Silent => write!(f, "silent"),
            Fault::WrongDigest => write!(f, "wrong-digest"),
            Fault::Equivocate => write!(f, "equivocate"),
            Fault::Collude => write!(f, "collude"),
            Fault::Delay { ms } => write!(f, "delay:{ms}"),
        }
    }
}

/// What a replica's state machine does differently (the network faults are the drivers').
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Honest,
    WrongDigest,
    Equivocate,
    Collude,
}

/// One PBFT run, simulated or live.
#[derive(Clone, Debug, PartialEq)]
pub struct PbftParams {
    /// Replicas, N.
    pub n: usize,
    /// The fault of each replica (length N).
    pub faults: Vec<Fault>,
    /// Quorum size Q; `None` for [`default_quorum`] (2f + 1 when N = 3f + 1).
    pub quorum: Option<usize>,
    /// Executions between checkpoints, k.
    pub checkpoint_interval: u64,
    /// Sequence numbers a replica accepts above its low water mark, L (at least k; 2k in the
    /// paper).
    pub window: u64,
    /// Closed-loop clients, one request outstanding each.
    pub clients: usize,
    /// Requests issued in all, across the clients.
    pub requests: u64,
    /// Seeds the link delays (sim) and the keys (both).
    pub seed: u64,
    /// Sim: the fixed part of every link's delay, ms.
    pub link_delay_ms: f64,
    /// Sim: the mean of the exponential jitter added to each message's delay, ms.
    pub jitter_ms: f64,
    /// A replica's view-change timer (doubled at each expiry), and a client's wait before it
    /// sends its request to all replicas (doubled at each retry, up to 8×), ms.
    pub view_change_timeout_ms: f64,
    /// The run stops here, finished or not, ms (virtual in the sim, real live).
    pub time_limit_ms: f64,
}

impl Default for PbftParams {
    fn default() -> PbftParams {
        PbftParams::with_replicas(4)
    }
}

impl PbftParams {
    /// The defaults with `n` honest replicas: k = 16, L = 32, 2 clients, 100 requests, 10 ms
    /// links with 2 ms mean jitter, 500 ms view-change timeout, 60 s limit, seed 1.
    pub fn with_replicas(n: usize) -> PbftParams {
        PbftParams {
            n,
            faults: vec![Fault::None; n],
            quorum: None,
            checkpoint_interval: 16,
            window: 32,
            clients: 2,
            requests: 100,
            seed: 1,
            link_delay_ms: 10.0,
            jitter_ms: 2.0,
            view_change_timeout_ms: 500.0,
            time_limit_ms: 60_000.0,
        }
    }

    /// f = ⌊(N − 1)/3⌋, the Byzantine replicas N tolerates.
    pub fn f(&self) -> usize {
        self.n.saturating_sub(1) / 3
    }

    /// Q: the override or [`default_quorum`].
    pub fn quorum_size(&self) -> usize {
        self.quorum.unwrap_or_else(|| default_quorum(self.n))
    }

    /// Checks the parameters; the message names the field and the accepted range.
    pub fn check(&self) -> Result<(), String> {
        if self.n < 1 || self.n > MAX_REPLICAS {
            return Err(format!(
                "replicas n = {}: must be between 1 and {MAX_REPLICAS}",
                self.n
            ));
        }
        if self.faults.len() != self.n {
            return Err(format!(
                "{} faults given for n = {} replicas: give one per replica",
                self.faults.len(),
                self.n
            ));
        }
        let q = self.quorum_size();
        if q < 1 || q > self.n {
            return Err(format!("quorum {q}: must be between 1 and n = {}", self.n));
        }
        if self.checkpoint_interval < 1 {
            return Err("checkpoint interval k = 0: must be at least 1".into());
        }
        if self.window < self.checkpoint_interval {
            return Err(format!(
                "window L = {} is below the checkpoint interval k = {}: the low water mark could never move (use L ≥ k, e.g. 2k)",
                self.window, self.checkpoint_interval
            ));
        }
        if self.window > 1 << 20 {
            return Err(format!("window L = {}: at most 2^20", self.window));
        }
        if self.clients < 1 || self.clients > MAX_CLIENTS {
            return Err(format!(
                "clients = {}: must be between 1 and {MAX_CLIENTS}",
                self.clients
            ));
        }
        let ms = |name: &str, x: f64, positive: bool| -> Result<(), String> {
            if !x.is_finite() || x < 0.0 || (positive && x == 0.0) {
                let want = if positive { "> 0" } else { "≥ 0" };
                return Err(format!("{name} = {x}: must be a finite number {want}"));
            }
            Ok(())
        };
        ms("link delay (ms)", self.link_delay_ms, false)?;
        ms("jitter (ms)", self.jitter_ms, false)?;
        ms(
            "view-change timeout (ms)",
            self.view_change_timeout_ms,
            true,
        )?;
        ms("time limit (ms)", self.time_limit_ms, true)?;
        for (i, f) in self.faults.iter().enumerate() {
            match *f {
                Fault::Crash { at_ms } => ms(&format!("replica {i}'s crash time"), at_ms, false)?,
                Fault::Delay { ms: d } => ms(&format!("replica {i}'s delay"), d, false)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// The default quorum for N replicas: ⌈(N + f + 1)/2⌉ with f = ⌊(N − 1)/3⌋, which is the
/// paper's 2f + 1 when N = 3f + 1 and otherwise the smallest size for which any two quorums
/// share f + 1 replicas (2f + 1 alone would not, e.g. at N = 5: two quorums of 3 share one
/// replica, which may be the faulty one).
pub fn default_quorum(n: usize) -> usize {
    let f = n.saturating_sub(1) / 3;
    (n + f + 2) / 2
}

/// Messages sent, by type: a multicast to m receivers counts m.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounts {
    /// Client requests, client retransmissions and backups' forwards to the primary.
    pub request: u64,
    pub pre_prepare: u64,
    pub prepare: u64,
    pub commit: u64,
    pub reply: u64,
    pub checkpoint: u64,
    pub view_change: u64,
    pub new_view: u64,
    /// State-transfer requests and answers.
    pub fetch_state: u64,
    pub state: u64,
}

impl MessageCounts {
    /// Counts `copies` sends of a message.
    pub fn add(&mut self, m: &Message, copies: u64) {
        let slot = match m {
            Message::Request(_) => &mut self.request,
            Message::PrePrepare(_) => &mut self.pre_prepare,
            Message::Prepare(_) => &mut self.prepare,
            Message::Commit(_) => &mut self.commit,
            Message::Reply(_) => &mut self.reply,
            Message::Checkpoint(_) => &mut self.checkpoint,
            Message::ViewChange(_) => &mut self.view_change,
            Message::NewView(_) => &mut self.new_view,
            Message::FetchState(_) => &mut self.fetch_state,
            Message::State(_) => &mut self.state,
        };
        *slot += copies;
    }

    /// Adds another count to this one.
    pub fn merge(&mut self, o: &MessageCounts) {
        self.request += o.request;
        self.pre_prepare += o.pre_prepare;
        self.prepare += o.prepare;
        self.commit += o.commit;
        self.reply += o.reply;
        self.checkpoint += o.checkpoint;
        self.view_change += o.view_change;
        self.new_view += o.new_view;
        self.fetch_state += o.fetch_state;
        self.state += o.state;
    }

    pub fn total(&self) -> u64 {
        self.request
            + self.pre_prepare
            + self.prepare
            + self.commit
            + self.reply
            + self.checkpoint
            + self.view_change
            + self.new_view
            + self.fetch_state
            + self.state
    }
}

/// What a run gave. Latencies are virtual ms in the sim and real ms live; figures over no
/// completed requests are 0.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PbftResult {
    pub n: usize,
    /// Replicas with a fault other than `none`.
    pub faulty: usize,
    pub quorum: usize,
    pub requests_issued: u64,
    pub requests_completed: u64,
    /// No two honest (not Byzantine) replicas committed different digests at the same sequence
    /// number, and none committed two at one (checked on every commit, before garbage
    /// collection).
    pub safety_ok: bool,
    /// The lowest sequence number where safety failed.
    pub first_violation: Option<u64>,
    /// Every request was completed (accepted by its client) before the time limit.
    pub liveness_ok: bool,
    /// The most views an honest replica entered through NEW-VIEW.
    pub view_changes: u64,
    /// The highest view of an honest replica at the end.
    pub final_view: u64,
    pub messages_total: u64,
    /// Messages per completed request.
    pub messages_per_request: f64,
    pub messages: MessageCounts,
    /// From issue to the client's acceptance of f + 1 matching replies.
    pub latency_mean_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// The largest message log an honest replica held (pre-prepares, prepares, commits,
    /// checkpoints and pre-prepares kept for the next view), over the whole run.
    pub max_log_len: u64,
    /// The lowest stable checkpoint (low water mark h) among the honest replicas still up at
    /// the end.
    pub stable_checkpoint: u64,
    /// Messages replicas and clients dropped because a MAC failed.
    pub mac_failures: u64,
    /// Messages with a valid MAC that replicas rejected as malformed (a digest that does not
    /// match, a bad proof, a conflicting pre-prepare).
    pub rejected: u64,
    /// Replicas that caught up by state transfer, summed over replicas.
    pub state_transfers: u64,
    /// Live only: messages lost because a link's queue was full or a frame too large (0 in
    /// the sim, whose links are reliable).
    pub messages_dropped: u64,
    /// When the run ended (ms).
    pub elapsed_ms: f64,
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// A participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Replica(usize),
    Client(usize),
}

/// REQUEST ⟨o, t, c⟩.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub op: Vec<u8>,
    pub timestamp: u64,
    pub client: usize,
}

impl Request {
    /// d: SHA-256 of the request's encoding.
    pub fn digest(&self) -> Digest {
        let mut w = Vec::new();
        self.put_fields(&mut w);
        Sha256::digest(&w).into()
    }
}

/// PRE-PREPARE ⟨v, n, d⟩ with the client's request (`None`: the null request).
#[derive(Clone, Debug, PartialEq)]
pub struct PrePrepare {
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
    pub request: Option<Signed<Request>>,
}

/// PREPARE ⟨v, n, d, i⟩.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepare {
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
    pub replica: usize,
}

/// COMMIT ⟨v, n, d, i⟩.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub view: u64,
    pub seq: u64,
    pub digest: Digest,
    pub replica: usize,
}

/// REPLY ⟨v, t, c, i, r⟩.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub view: u64,
    pub timestamp: u64,
    pub client: usize,
    pub replica: usize,
    pub result: Vec<u8>,
}

/// CHECKPOINT ⟨n, d, i⟩: d is the service state's digest after executing n.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub digest: Digest,
    pub replica: usize,
}

/// P_m: a pre-prepare and Q − 1 matching prepares from distinct backups.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedCert {
    pub pre_prepare: Signed<PrePrepare>,
    pub prepares: Vec<Signed<Prepare>>,
}

/// VIEW-CHANGE ⟨v + 1, n, C, P, i⟩.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewChange {
    pub new_view: u64,
    /// n: the sender's last stable checkpoint.
    pub stable_seq: u64,
    pub stable_digest: Digest,
    /// C: Q checkpoint messages proving it (empty at the genesis checkpoint 0).
    pub checkpoint_proof: Vec<Signed<Checkpoint>>,
    /// P: a prepared certificate for every sequence number above n that the sender prepared
    /// (the one of the highest view), in increasing n.
    pub prepared: Vec<PreparedCert>,
    pub replica: usize,
}

/// NEW-VIEW ⟨v + 1, V, O⟩.
#[derive(Clone, Debug, PartialEq)]
pub struct NewView {
    pub view: u64,
    /// V: Q valid view-changes for `view`.
    pub view_changes: Vec<Signed<ViewChange>>,
    /// O: the pre-prepares of the new view for the sequence numbers V leaves open.
    pub pre_prepares: Vec<Signed<PrePrepare>>,
}

/// A lagging replica asks for the state at stable checkpoint `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchState {
    pub seq: u64,
    pub replica: usize,
}

/// The answer: the state at `seq`, which the receiver checks against the checkpoint's digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateTransfer {
    pub seq: u64,
    pub state: ServiceState,
    pub replica: usize,
}

/// The replicated service: a hash chain of every executed (n, d), and each client's last
/// timestamp and reply (which makes execution at-most-once and lets replicas resend replies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    pub history: Digest,
    pub replies: BTreeMap<usize, (u64, Vec<u8>)>,
}

impl ServiceState {
    /// The checkpoint digest.
    pub fn digest(&self) -> Digest {
        let mut w = Vec::new();
        self.put_fields(&mut w);
        Sha256::digest(&w).into()
    }

    /// Executes (n, d): extends the chain; the result of a request is the chain after it.
    fn extend(&mut self, seq: u64, d: &Digest) {
        let mut h = Sha256::new();
        h.update(self.history);
        h.update(seq.to_le_bytes());
        h.update(d);
        self.history = h.finalize().into();
    }

    fn put_fields(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.history);
        put_len(w, self.replies.len());
        for (c, (t, r)) in &self.replies {
            put_index(w, *c);
            put_u64(w, *t);
            put_bytes(w, r);
        }
    }

    fn get_fields(r: &mut Reader<'_>) -> Result<ServiceState, DecodeError> {
        let history = r.digest()?;
        let count = r.count(16)?;
        let mut replies = BTreeMap::new();
        for _ in 0..count {
            let c = r.index()?;
            let t = r.u64()?;
            let res = r.bytes()?;
            replies.insert(c, (t, res));
        }
        Ok(ServiceState { history, replies })
    }
}

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Request(Request),
    PrePrepare(PrePrepare),
    Prepare(Prepare),
    Commit(Commit),
    Reply(Reply),
    Checkpoint(Checkpoint),
    ViewChange(ViewChange),
    NewView(NewView),
    FetchState(FetchState),
    State(StateTransfer),
}

/// Who an authenticator is for: every replica, or one client (REPLY).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Replicas,
    Client(usize),
}

/// A message with its sender and authenticator: MAC i is for replica i (or the one MAC for
/// the client of a REPLY), over the sender and the tagged message bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Signed<T> {
    pub from: Node,
    pub body: T,
    pub auth: Vec<Mac>,
}

impl<T: Payload> Signed<T> {
    fn authenticated_bytes(from: Node, body: &T) -> Vec<u8> {
        let mut w = Vec::with_capacity(64);
        put_node(&mut w, from);
        body.put(&mut w);
        w
    }

    /// Signs `body` as `keys`' owner, with one MAC per member of `to`.
    pub fn sign(keys: &KeyRing, body: T, to: Audience) -> Signed<T> {
        let bytes = Self::authenticated_bytes(keys.me, &body);
        let auth = match to {
            Audience::Replicas => (0..keys.n)
                .map(|i| keys.mac(Node::Replica(i), &bytes).unwrap_or([0; 32]))
                .collect(),
            Audience::Client(c) => vec![keys.mac(Node::Client(c), &bytes).unwrap_or([0; 32])],
        };
        Signed {
            from: keys.me,
            body,
            auth,
        }
    }

    /// Whether the MAC for `keys`' owner checks, with the key it shares with the sender.
    pub fn verify(&self, keys: &KeyRing) -> bool {
        let mac = match keys.me {
            Node::Replica(i) => self.auth.get(i),
            Node::Client(_) if self.auth.len() == 1 => self.auth.first(),
            Node::Client(_) => None,
        };
        let Some(mac) = mac else { return false };
        let bytes = Self::authenticated_bytes(self.from, &self.body);
        keys.mac(self.from, &bytes)
            .is_some_and(|want| bitcoin::hashes::cmp::fixed_time_eq(&want, mac))
    }

    fn put(&self, w: &mut Vec<u8>) {
        put_node(w, self.from);
        self.body.put(w);
        put_len(w, self.auth.len());
        for m in &self.auth {
            w.extend_from_slice(m);
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Signed<T>, DecodeError> {
        let from = r.node()?;
        let body = T::get(r)?;
        let count = r.count(32)?;
        let mut auth = Vec::with_capacity(count);
        for _ in 0..count {
            auth.push(r.digest()?);
        }
        Ok(Signed { from, body, auth })
    }
}

impl<T: Into<Message>> Signed<T> {
    /// The same signed message as a [`Message`] (the MACs cover the same bytes).
    pub fn widen(self) -> Signed<Message> {
        Signed {
            from: self.from,
            body: self.body.into(),
            auth: self.auth,
        }
    }
}

/// Re-labels a signed [`Message`]'s body as the part it carries (the MACs stay valid).
fn narrow<T: Clone>(s: &Signed<Message>, body: &T) -> Signed<T> {
    Signed {
        from: s.from,
        body: body.clone(),
        auth: s.auth.clone(),
    }
}

/// The pairwise keys one participant holds: HMAC-SHA256 engines keyed with the key it shares
/// with each replica and client, derived from the run's seed.
#[derive(Clone)]
pub struct KeyRing {
    me: Node,
    n: usize,
    clients: usize,
    engines: Vec<HmacEngine<sha256::Hash>>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("me", &self.me)
            .field("n", &self.n)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// `me`'s keys in a run of `n` replicas and `clients` clients.
    pub fn new(seed: u64, n: usize, clients: usize, me: Node) -> KeyRing {
        let index = |node: Node| match node {
            Node::Replica(i) => i,
            Node::Client(c) => n + c,
        };
        let a = index(me) as u64;
        let engines = (0..n + clients)
            .map(|b| {
                let (lo, hi) = (a.min(b as u64), a.max(b as u64));
                let mut h = Sha256::new();
                h.update(b"miner/pbft/pairwise-key");
                h.update(seed.to_le_bytes());
                h.update(lo.to_le_bytes());
                h.update(hi.to_le_bytes());
                let key: [u8; 32] = h.finalize().into();
                HmacEngine::<sha256::Hash>::new(&key)
            })
            .collect();
        KeyRing {
            me,
            n,
            clients,
            engines,
        }
    }

    /// Whose keys these are.
    pub fn owner(&self) -> Node {
        self.me
    }

    fn mac(&self, peer: Node, bytes: &[u8]) -> Option<Mac> {
        let i = match peer {
            Node::Replica(i) if i < self.n => i,
            Node::Client(c) if c < self.clients => self.n + c,
            _ => return None,
        };
        let mut e = self.engines.get(i)?.clone();
        e.input(bytes);
        Some(Hmac::<sha256::Hash>::from_engine(e).to_byte_array())
    }
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Every replica but the sender.
    Replicas,
    Replica(usize),
    Client(usize),
}

/// A message a replica or client hands to its network.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub to: Dest,
    pub msg: Signed<Message>,
}

/// The participants `to` names, seen from `from`, in a run of `n` replicas.
pub fn recipients(from: Node, to: Dest, n: usize) -> Vec<Node> {
    match to {
        Dest::Replicas => (0..n)
            .filter(|&j| from != Node::Replica(j))
            .map(Node::Replica)
            .collect(),
        Dest::Replica(j) => vec![Node::Replica(j)],
        Dest::Client(c) => vec![Node::Client(c)],
    }
}

/// The operation a run's `i`-th request carries (0-based, counted across clients).
pub fn operation(i: u64, client: usize) -> Vec<u8> {
    format!("op {i} by client {client}").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Wire encoding
// ---------------------------------------------------------------------------------------------

/// Why bytes are not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message truncated")]
    Truncated,
    #[error("unknown message tag {0}")]
    Tag(u8),
    #[error("unknown participant kind {0}")]
    NodeKind(u8),
    #[error("invalid flag byte {0}")]
    Flag(u8),
    #[error("a count of {0} does not fit in the message")]
    Count(u64),
    #[error("{0} bytes after the message")]
    Trailing(usize),
}

/// A cursor over a message's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.buf.first().copied().ok_or(DecodeError::Truncated)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn index(&mut self) -> Result<usize, DecodeError> {
        Ok(self.u32()? as usize)
    }

    fn digest(&mut self) -> Result<Digest, DecodeError> {
        let mut d = [0; 32];
        d.copy_from_slice(self.take(32)?);
        Ok(d)
    }

    /// A count of items each at least `min_size` bytes long: refused when they cannot fit, so
    /// a forged count allocates nothing.
    fn count(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let c = self.u32()? as usize;
        if c.saturating_mul(min_size.max(1)) > self.buf.len() {
            return Err(DecodeError::Count(c as u64));
        }
        Ok(c)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.count(1)?;
        Ok(self.take(len)?.to_vec())
    }

    fn node(&mut self) -> Result<Node, DecodeError> {
        match self.u8()? {
            0 => Ok(Node::Replica(self.index()?)),
            1 => Ok(Node::Client(self.index()?)),
            k => Err(DecodeError::NodeKind(k)),
        }
    }
}

fn put_u64(w: &mut Vec<u8>, x: u64) {
    w.extend_from_slice(&x.to_le_bytes());
}

fn put_index(w: &mut Vec<u8>, x: usize) {
    w.extend_from_slice(&(x as u32).to_le_bytes());
}

fn put_len(w: &mut Vec<u8>, x: usize) {
    put_index(w, x);
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_len(w, b.len());
    w.extend_from_slice(b);
}

fn put_node(w: &mut Vec<u8>, n: Node) {
    match n {
        Node::Replica(i) => {
            w.push(0);
            put_index(w, i);
        }
        Node::Client(c) => {
            w.push(1);
            put_index(w, c);
        }
    }
}

/// A value with its type tag on the wire: what a [`Signed`] authenticates.
pub trait Payload: Sized + Clone {
    /// Writes the tag and the fields.
    fn put(&self, w: &mut Vec<u8>);
    /// Reads the tag and the fields.
    fn get(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// One message type's fields and tag.
pub trait Body: Sized + Clone {
    const TAG: u8;
    fn put_fields(&self, w: &mut Vec<u8>);
    fn get_fields(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

impl<T: Body> Payload for T {
    fn put(&self, w: &mut Vec<u8>) {
        w.push(T::TAG);
        self.put_fields(w);
    }

    fn get(r: &mut Reader<'_>) -> Result<T, DecodeError> {
        match r.u8()? {
            t if t == T::TAG => T::get_fields(r),
            t => Err(DecodeError::Tag(t)),
        }
    }
}

macro_rules! into_message {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Message {
            fn from(m: $t) -> Message {
                Message::$v(m)
            }
        }
    )*};
}

into_message!(Request => Request, PrePrepare => PrePrepare, Prepare => Prepare, Commit => Commit,
    Reply => Reply, Checkpoint => Checkpoint, ViewChange => ViewChange, NewView => NewView,
    FetchState => FetchState, StateTransfer => State);

impl Body for Request {
    const TAG: u8 = 1;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_bytes(w, &self.op);
        put_u64(w, self.timestamp);
        put_index(w, self.client);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<Request, DecodeError> {
        Ok(Request {
            op: r.bytes()?,
            timestamp: r.u64()?,
            client: r.index()?,
        })
    }
}

impl Body for PrePrepare {
    const TAG: u8 = 2;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.view);
        put_u64(w, self.seq);
        w.extend_from_slice(&self.digest);
        match &self.request {
            None => w.push(0),
            Some(req) => {
                w.push(1);
                req.put(w);
            }
        }
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<PrePrepare, DecodeError> {
        let view = r.u64()?;
        let seq = r.u64()?;
        let digest = r.digest()?;
        let request = match r.u8()? {
            0 => None,
            1 => Some(Signed::get(r)?),
            f => return Err(DecodeError::Flag(f)),
        };
        Ok(PrePrepare {
            view,
            seq,
            digest,
            request,
        })
    }
}

macro_rules! vote_body {
    ($t:ident, $tag:expr) => {
        impl Body for $t {
            const TAG: u8 = $tag;
            fn put_fields(&self, w: &mut Vec<u8>) {
                put_u64(w, self.view);
                put_u64(w, self.seq);
                w.extend_from_slice(&self.digest);
                put_index(w, self.replica);
            }
            fn get_fields(r: &mut Reader<'_>) -> Result<$t, DecodeError> {
                Ok($t {
                    view: r.u64()?,
                    seq: r.u64()?,
                    digest: r.digest()?,
                    replica: r.index()?,
                })
            }
        }
    };
}

vote_body!(Prepare, 3);
vote_body!(Commit, 4);

impl Body for Reply {
    const TAG: u8 = 5;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.view);
        put_u64(w, self.timestamp);
        put_index(w, self.client);
        put_index(w, self.replica);
        put_bytes(w, &self.result);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<Reply, DecodeError> {
        Ok(Reply {
            view: r.u64()?,
            timestamp: r.u64()?,
            client: r.index()?,
            replica: r.index()?,
            result: r.bytes()?,
        })
    }
}

impl Body for Checkpoint {
    const TAG: u8 = 6;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.seq);
        w.extend_from_slice(&self.digest);
        put_index(w, self.replica);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<Checkpoint, DecodeError> {
        Ok(Checkpoint {
            seq: r.u64()?,
            digest: r.digest()?,
            replica: r.index()?,
        })
    }
}

impl PreparedCert {
    fn put(&self, w: &mut Vec<u8>) {
        self.pre_prepare.put(w);
        put_len(w, self.prepares.len());
        for p in &self.prepares {
            p.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<PreparedCert, DecodeError> {
        let pre_prepare = Signed::get(r)?;
        let count = r.count(32)?;
        let mut prepares = Vec::with_capacity(count);
        for _ in 0..count {
            prepares.push(Signed::get(r)?);
        }
        Ok(PreparedCert {
            pre_prepare,
            prepares,
        })
    }
}

impl Body for ViewChange {
    const TAG: u8 = 7;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.new_view);
        put_u64(w, self.stable_seq);
        w.extend_from_slice(&self.stable_digest);
        put_len(w, self.checkpoint_proof.len());
        for c in &self.checkpoint_proof {
            c.put(w);
        }
        put_len(w, self.prepared.len());
        for p in &self.prepared {
            p.put(w);
        }
        put_index(w, self.replica);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<ViewChange, DecodeError> {
        let new_view = r.u64()?;
        let stable_seq = r.u64()?;
        let stable_digest = r.digest()?;
        let count = r.count(32)?;
        let mut checkpoint_proof = Vec::with_capacity(count);
        for _ in 0..count {
            checkpoint_proof.push(Signed::get(r)?);
        }
        let count = r.count(32)?;
        let mut prepared = Vec::with_capacity(count);
        for _ in 0..count {
            prepared.push(PreparedCert::get(r)?);
        }
        Ok(ViewChange {
            new_view,
            stable_seq,
            stable_digest,
            checkpoint_proof,
            prepared,
            replica: r.index()?,
        })
    }
}

impl Body for NewView {
    const TAG: u8 = 8;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.view);
        put_len(w, self.view_changes.len());
        for v in &self.view_changes {
            v.put(w);
        }
        put_len(w, self.pre_prepares.len());
        for p in &self.pre_prepares {
            p.put(w);
        }
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<NewView, DecodeError> {
        let view = r.u64()?;
        let count = r.count(32)?;
        let mut view_changes = Vec::with_capacity(count);
        for _ in 0..count {
            view_changes.push(Signed::get(r)?);
        }
        let count = r.count(32)?;
        let mut pre_prepares = Vec::with_capacity(count);
        for _ in 0..count {
            pre_prepares.push(Signed::get(r)?);
        }
        Ok(NewView {
            view,
            view_changes,
            pre_prepares,
        })
    }
}

impl Body for FetchState {
    const TAG: u8 = 9;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.seq);
        put_index(w, self.replica);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<FetchState, DecodeError> {
        Ok(FetchState {
            seq: r.u64()?,
            replica: r.index()?,
        })
    }
}

impl Body for StateTransfer {
    const TAG: u8 = 10;
    fn put_fields(&self, w: &mut Vec<u8>) {
        put_u64(w, self.seq);
        self.state.put_fields(w);
        put_index(w, self.replica);
    }
    fn get_fields(r: &mut Reader<'_>) -> Result<StateTransfer, DecodeError> {
        Ok(StateTransfer {
            seq: r.u64()?,
            state: ServiceState::get_fields(r)?,
            replica: r.index()?,
        })
    }
}

impl Payload for Message {
    fn put(&self, w: &mut Vec<u8>) {
        match self {
            Message::Request(m) => m.put(w),
            Message::PrePrepare(m) => m.put(w),
            Message::Prepare(m) => m.put(w),
            Message::Commit(m) => m.put(w),
            Message::Reply(m) => m.put(w),
            Message::Checkpoint(m) => m.put(w),
            Message::ViewChange(m) => m.put(w),
            Message::NewView(m) => m.put(w),
            Message::FetchState(m) => m.put(w),
            Message::State(m) => m.put(w),
        }
    }

    fn get(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
        Ok(match r.peek()? {
            Request::TAG => Message::Request(Payload::get(r)?),
            PrePrepare::TAG => Message::PrePrepare(Payload::get(r)?),
            Prepare::TAG => Message::Prepare(Payload::get(r)?),
            Commit::TAG => Message::Commit(Payload::get(r)?),
            Reply::TAG => Message::Reply(Payload::get(r)?),
            Checkpoint::TAG => Message::Checkpoint(Payload::get(r)?),
            ViewChange::TAG => Message::ViewChange(Payload::get(r)?),
            NewView::TAG => Message::NewView(Payload::get(r)?),
            FetchState::TAG => Message::FetchState(Payload::get(r)?),
            StateTransfer::TAG => Message::State(Payload::get(r)?),
            t => return Err(DecodeError::Tag(t)),
        })
    }
}

/// A signed message's wire bytes (what [`live`] frames and a MAC check covers, plus the
/// authenticator).
pub fn encode_message(m: &Signed<Message>) -> Vec<u8> {
    let mut w = Vec::with_capacity(128);
    m.put(&mut w);
    w
}

/// Parses [`encode_message`]'s bytes; every byte must be used.
pub fn decode_message(bytes: &[u8]) -> Result<Signed<Message>, DecodeError> {
    let mut r = Reader { buf: bytes };
    let m = Signed::get(&mut r)?;
    if !r.buf.is_empty() {
        return Err(DecodeError::Trailing(r.buf.len()));
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------------
// The replica
// ---------------------------------------------------------------------------------------------

/// The settings every participant of a run shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub n: usize,
    pub quorum: usize,
    pub clients: usize,
    pub checkpoint_interval: u64,
    pub window: u64,
    pub timeout_ms: f64,
    pub seed: u64,
}

impl Config {
    /// The shared settings of `p`, after [`PbftParams::check`].
    pub fn new(p: &PbftParams) -> Result<Config, String> {
        p.check()?;
        Ok(Config {
            n: p.n,
            quorum: p.quorum_size(),
            clients: p.clients,
            checkpoint_interval: p.checkpoint_interval,
            window: p.window,
            timeout_ms: p.view_change_timeout_ms,
            seed: p.seed,
        })
    }

    /// p = v mod N.
    pub fn primary(&self, view: u64) -> usize {
        (view % self.n as u64) as usize
    }

    /// N − Q + 1 (f + 1 at the default quorum): matching replies a client needs, and
    /// view-changes for higher views that make a replica join one. One more than the replicas
    /// that may fail while the rest still form a quorum, so at least one honest replica.
    pub fn weak_quorum(&self) -> usize {
        self.n - self.quorum + 1
    }
}

/// Counters and the commit record of one replica, for the result (not protocol state: the
/// commit record is never garbage-collected, so that the safety check sees every commit).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaStats {
    pub mac_failures: u64,
    pub rejected: u64,
    pub views_installed: u64,
    pub view_changes_started: u64,
    pub state_transfers: u64,
    pub executed: u64,
    pub max_log_len: usize,
    /// n → d of every committed-local sequence number (the first digest committed there).
    pub committed: BTreeMap<u64, Digest>,
    /// The first n at which this replica committed a second, different digest.
    pub self_conflict: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Normal,
    /// Sent VIEW-CHANGE for `to`; `armed` once Q view-changes for it are in and the timer for
    /// the NEW-VIEW runs.
    ViewChange {
        to: u64,
        armed: bool,
    },
}

/// What one sequence number's log holds.
#[derive(Clone, Debug, Default)]
struct Slot {
    /// The accepted pre-prepare of the current view.
    pre_prepare: Option<Signed<PrePrepare>>,
    /// Prepares by (view, digest), then sender (backups only).
    prepares: BTreeMap<(u64, Digest), BTreeMap<usize, Signed<Prepare>>>,
    /// Commit senders by (view, digest).
    commits: BTreeMap<(u64, Digest), BTreeSet<usize>>,
    /// The views in which this replica sent its prepare and commit.
    prepare_sent: Option<u64>,
    commit_sent: Option<u64>,
    /// The prepared certificate of the highest view, kept across views for VIEW-CHANGE.
    cert: Option<PreparedCert>,
    /// Committed-local: the digest and its request, kept across views until executed.
    committed: Option<(Digest, Option<Signed<Request>>)>,
}

impl Slot {
    fn len(&self) -> usize {
        usize::from(self.pre_prepare.is_some())
            + self.prepares.values().map(BTreeMap::len).sum::<usize>()
            + self.commits.values().map(BTreeSet::len).sum::<usize>()
    }
}

/// What NEW-VIEW's V implies: the checkpoint to start from and O.
struct Plan {
    min_s: u64,
    stable_digest: Digest,
    proof: Vec<Signed<Checkpoint>>,
    max_s: u64,
    /// (n, d, request) for n in (min_s, max_s].
    entries: Vec<(u64, Digest, Option<Signed<Request>>)>,
}

/// Computes min-s, max-s and O from view-changes (the paper's rule: for each n, the request
/// prepared in the highest view, else the null request). Ties pick the first in V's order.
fn plan_new_view(vcs: &[Signed<ViewChange>]) -> Plan {
    let mut best: Option<&ViewChange> = None;
    for vc in vcs {
        if best.is_none_or(|b| vc.body.stable_seq > b.stable_seq) {
            best = Some(&vc.body);
        }
    }
    let (min_s, stable_digest, proof) = match best {
        Some(b) => (b.stable_seq, b.stable_digest, b.checkpoint_proof.clone()),
        None => (0, ServiceState::default().digest(), Vec::new()),
    };
    let mut chosen: BTreeMap<u64, &PrePrepare> = BTreeMap::new();
    for vc in vcs {
        for cert in &vc.body.prepared {
            let pp = &cert.pre_prepare.body;
            if pp.seq <= min_s {
                continue;
            }
            match chosen.get(&pp.seq) {
                Some(old) if old.view >= pp.view => {}
                _ => {
                    chosen.insert(pp.seq, pp);
                }
            }
        }
    }
    let max_s = chosen.keys().next_back().copied().unwrap_or(min_s);
    let entries = (min_s + 1..=max_s)
        .map(|n| match chosen.get(&n) {
            Some(pp) => (n, pp.digest, pp.request.clone()),
            None => (n, NULL_DIGEST, None),
        })
        .collect();
    Plan {
        min_s,
        stable_digest,
        proof,
        max_s,
        entries,
    }
}

/// One PBFT replica: pure state, driven by [`Replica::handle`] (a message arrives) and
/// [`Replica::tick`] (its timer may have expired) at a time in ms; both return what it sends.
/// The sim and the live network drive the same code.
#[derive(Debug)]
pub struct Replica {
    id: usize,
    cfg: Config,
    behaviour: Behaviour,
    keys: KeyRing,
    view: u64,
    status: Status,
    log: BTreeMap<u64, Slot>,
    /// Pre-prepares for views not yet entered, by (view, n).
    future: BTreeMap<(u64, u64), Signed<PrePrepare>>,
    /// The last sequence number this replica assigned as primary.
    next_seq: u64,
    /// h, the last stable checkpoint, its digest and proof.
    low: u64,
    stable_digest: Digest,
    stable_proof: Vec<Signed<Checkpoint>>,
    /// Checkpoint messages above h, by n and sender.
    checkpoints: BTreeMap<u64, BTreeMap<usize, Signed<Checkpoint>>>,
    /// Own states at checkpoints from h up, for state transfer.
    snapshots: BTreeMap<u64, ServiceState>,
    last_exec: u64,
    state: ServiceState,
    /// Requests known and not executed, by (client, timestamp).
    waiting: BTreeMap<(usize, u64), Signed<Request>>,
    /// Requests the primary assigned a number in this view.
    assigned: BTreeSet<(usize, u64)>,
    timer: Option<f64>,
    timeout: f64,
    /// Valid VIEW-CHANGE messages (its own included) by (view, sender), for views above its
    /// own up to VC_AHEAD: all of them, not each sender's latest, since links reorder and a
    /// quorum for a lower view may still be forming after a sender moved on.
    view_changes: BTreeMap<(u64, usize), Signed<ViewChange>>,
    /// The stable checkpoint whose state it is fetching.
    fetching: Option<u64>,
    /// Collude: the (v, n, d) it voted for.
    votes: BTreeSet<(u64, u64, Digest)>,
    out: Vec<Outgoing>,
    stats: ReplicaStats,
}

impl Replica {
    /// Replica `id` of a run, with its keys derived from the run's seed.
    pub fn new(id: usize, cfg: &Config, fault: Fault) -> Replica {
        let genesis = ServiceState::default();
        Replica {
            id,
            cfg: cfg.clone(),
            behaviour: fault.behaviour(),
            keys: KeyRing::new(cfg.seed, cfg.n, cfg.clients, Node::Replica(id)),
            view: 0,
            status: Status::Normal,
            log: BTreeMap::new(),
            future: BTreeMap::new(),
            next_seq: 0,
            low: 0,
            stable_digest: genesis.digest(),
            stable_proof: Vec::new(),
            checkpoints: BTreeMap::new(),
            snapshots: BTreeMap::from([(0, genesis.clone())]),
            last_exec: 0,
            state: genesis,
            waiting: BTreeMap::new(),
            assigned: BTreeSet::new(),
            timer: None,
            timeout: cfg.timeout_ms,
            view_changes: BTreeMap::new(),
            fetching: None,
            votes: BTreeSet::new(),
            out: Vec::new(),
            stats: ReplicaStats::default(),
        }
    }

    pub fn id(&self) -> usize {
        self.id
    }

    pub fn view(&self) -> u64 {
        self.view
    }

    /// h: the last stable checkpoint.
    pub fn low_water_mark(&self) -> u64 {
        self.low
    }

    pub fn last_executed(&self) -> u64 {
        self.last_exec
    }

    /// Whether it is between VIEW-CHANGE and NEW-VIEW.
    pub fn in_view_change(&self) -> bool {
        self.status != Status::Normal
    }

    pub fn stats(&self) -> &ReplicaStats {
        &self.stats
    }

    /// The service state it has executed to.
    pub fn state(&self) -> &ServiceState {
        &self.state
    }

    /// Messages in its log now: pre-prepares, prepares, commits, checkpoints, and pre-prepares
    /// kept for a later view.
    pub fn log_len(&self) -> usize {
        self.log.values().map(Slot::len).sum::<usize>()
            + self.checkpoints.values().map(BTreeMap::len).sum::<usize>()
            + self.future.len()
    }

    /// When [`Replica::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<f64> {
        self.timer
    }

    /// Processes a message that arrived at `now` (ms); returns what to send.
    pub fn handle(&mut self, msg: &Signed<Message>, now: f64) -> Vec<Outgoing> {
        if !msg.verify(&self.keys) {
            self.stats.mac_failures += 1;
            return Vec::new();
        }
        let from = msg.from;
        let valid = match &msg.body {
            Message::Request(r) if from == Node::Client(r.client) => {
                self.on_request(narrow(msg, r));
                true
            }
            Message::PrePrepare(pp) if from == Node::Replica(self.cfg.primary(pp.view)) => {
                self.on_pre_prepare(narrow(msg, pp))
            }
            Message::Prepare(p) if from == Node::Replica(p.replica) => {
                self.on_prepare(narrow(msg, p))
            }
            Message::Commit(c) if from == Node::Replica(c.replica) => self.on_commit(c),
            Message::Checkpoint(c) if from == Node::Replica(c.replica) => {
                self.on_checkpoint(narrow(msg, c))
            }
            Message::ViewChange(vc) if from == Node::Replica(vc.replica) => {
                self.on_view_change(narrow(msg, vc), now)
            }
            Message::NewView(nv) if from == Node::Replica(self.cfg.primary(nv.view)) => {
                self.on_new_view(nv)
            }
            Message::FetchState(f) if from == Node::Replica(f.replica) => {
                self.on_fetch(f);
                true
            }
            Message::State(s) if from == Node::Replica(s.replica) => self.on_state(s),
            _ => false,
        };
        if !valid {
            self.stats.rejected += 1;
        }
        self.after(now);
        std::mem::take(&mut self.out)
    }

    /// Fires its timer if it expired by `now`; returns what to send.
    pub fn tick(&mut self, now: f64) -> Vec<Outgoing> {
        if let Some(t) = self.timer {
            if now >= t {
                self.timer = None;
                // Every expiry doubles the timeout, which is never reset: a timeout shorter
                // than the network's delays grows past them instead of starting view change
                // after view change (at most TIMEOUT_CAP times the base).
                let doubled = (self.timeout * 2.0).min(self.cfg.timeout_ms * TIMEOUT_CAP);
                match self.status {
                    Status::Normal => {
                        if !self.waiting.is_empty() {
                            self.timeout = doubled;
                            self.start_view_change(self.view + 1, now);
                        }
                    }
                    Status::ViewChange { to, .. } => {
                        self.timeout = doubled;
                        self.start_view_change(to + 1, now);
                    }
                }
            }
        }
        self.after(now);
        std::mem::take(&mut self.out)
    }

    fn is_primary(&self) -> bool {
        self.cfg.primary(self.view) == self.id
    }

    fn normal(&self) -> bool {
        self.status == Status::Normal
    }

    fn in_window(&self, seq: u64) -> bool {
        seq > self.low && seq <= self.low + self.cfg.window
    }

    /// Up to one window above H: kept, not acted on, until h moves (a replica a little behind
    /// would otherwise drop them and could only catch up by state transfer).
    fn in_reach(&self, seq: u64) -> bool {
        seq > self.low && seq <= self.low + 2 * self.cfg.window
    }

    /// Normal-case messages of view `v` are taken in the current view (when not changing
    /// views) and kept for the next few views.
    fn accepts_view(&self, v: u64) -> bool {
        (v == self.view && self.normal()) || (v > self.view && v <= self.view + VIEW_AHEAD)
    }

    fn executed(&self, client: usize, t: u64) -> bool {
        self.state
            .replies
            .get(&client)
            .is_some_and(|(last, _)| t <= *last)
    }

    fn valid_request(&self, req: &Signed<Request>) -> bool {
        req.from == Node::Client(req.body.client) && req.verify(&self.keys)
    }

    /// A pre-prepare's digest is its request's (from a valid client), or the null digest.
    fn consistent(&self, pp: &PrePrepare) -> bool {
        match &pp.request {
            Some(req) => self.valid_request(req) && req.body.digest() == pp.digest,
            None => pp.digest == NULL_DIGEST,
        }
    }

    /// Signs and queues a message; returns the honest version (what the replica logs).
    fn send(&mut self, to: Dest, body: Message) -> Signed<Message> {
        let audience = match to {
            Dest::Client(c) => Audience::Client(c),
            _ => Audience::Replicas,
        };
        let honest = Signed::sign(&self.keys, body, audience);
        let wire = match self.behaviour {
            Behaviour::WrongDigest => match corrupt(&honest.body) {
                Some(bad) => Signed::sign(&self.keys, bad, audience),
                None => honest.clone(),
            },
            _ => honest.clone(),
        };
        self.out.push(Outgoing { to, msg: wire });
        honest
    }

    /// Work that follows any event: propose, execute, (re)arm the timer, measure the log.
    fn after(&mut self, now: f64) {
        loop {
            let before = (self.next_seq, self.last_exec, self.low);
            self.take_due_pre_prepares();
            self.propose_pending();
            self.execute_ready();
            if before == (self.next_seq, self.last_exec, self.low) {
                break;
            }
        }
        if self.normal() {
            if self.waiting.is_empty() {
                self.timer = None;
            } else if self.timer.is_none() {
                self.timer = Some(now + self.timeout);
            }
        }
        self.stats.max_log_len = self.stats.max_log_len.max(self.log_len());
    }

    /// Adds a validly signed request to the waiting set unless executed; true when new.
    fn note_request(&mut self, req: &Signed<Request>) -> bool {
        let (c, t) = (req.body.client, req.body.timestamp);
        if self.executed(c, t) || self.waiting.contains_key(&(c, t)) {
            return false;
        }
        self.waiting.insert((c, t), req.clone());
        true
    }

    fn send_reply(&mut self, client: usize) {
        if let Some((t, result)) = self.state.replies.get(&client).cloned() {
            let reply = Reply {
                view: self.view,
                timestamp: t,
                client,
                replica: self.id,
                result,
            };
            self.send(Dest::Client(client), Message::Reply(reply));
        }
    }

    fn on_request(&mut self, req: Signed<Request>) {
        let (c, t) = (req.body.client, req.body.timestamp);
        if let Some(last) = self.state.replies.get(&c).map(|x| x.0) {
            if t == last {
                self.send_reply(c);
            }
            if t <= last {
                return;
            }
        }
        if self.note_request(&req) && !self.is_primary() && self.normal() {
            let p = self.cfg.primary(self.view);
            self.out.push(Outgoing {
                to: Dest::Replica(p),
                msg: req.widen(),
            });
        }
    }

    /// The primary assigns sequence numbers to waiting requests, within the window.
    fn propose_pending(&mut self) {
        if !self.is_primary() || !self.normal() {
            return;
        }
        let pending: Vec<(usize, u64)> = self
            .waiting
            .keys()
            .filter(|k| !self.assigned.contains(k))
            .copied()
            .collect();
        for key in pending {
            if self.next_seq >= self.low + self.cfg.window {
                break;
            }
            let Some(req) = self.waiting.get(&key).cloned() else {
                continue;
            };
            self.next_seq += 1;
            let seq = self.next_seq;
            self.assigned.insert(key);
            let digest = req.body.digest();
            let pp = PrePrepare {
                view: self.view,
                seq,
                digest,
                request: Some(req),
            };
            let logged = match self.behaviour {
                Behaviour::Equivocate | Behaviour::Collude => {
                    let real = Signed::sign(&self.keys, pp, Audience::Replicas);
                    let null = Signed::sign(
                        &self.keys,
                        PrePrepare {
                            view: self.view,
                            seq,
                            digest: NULL_DIGEST,
                            request: None,
                        },
                        Audience::Replicas,
                    );
                    let backups = (0..self.cfg.n).filter(|&j| j != self.id);
                    for (k, j) in backups.enumerate() {
                        let m = if k % 2 == 0 { &real } else { &null };
                        self.out.push(Outgoing {
                            to: Dest::Replica(j),
                            msg: m.clone().widen(),
                        });
                    }
                    if self.behaviour == Behaviour::Collude {
                        self.collude_vote(self.view, seq, digest);
                        self.collude_vote(self.view, seq, NULL_DIGEST);
                    }
                    real
                }
                _ => {
                    let s = self.send(Dest::Replicas, Message::PrePrepare(pp.clone()));
                    Signed {
                        from: s.from,
                        body: pp,
                        auth: s.auth,
                    }
                }
            };
            self.log.entry(seq).or_default().pre_prepare = Some(logged);
            self.check(seq);
        }
    }

    fn on_pre_prepare(&mut self, pp: Signed<PrePrepare>) -> bool {
        if let Some(req) = &pp.body.request {
            // A validly signed request is pending whatever the primary did with it.
            if self.valid_request(req) {
                self.note_request(req);
            }
        }
        if !self.consistent(&pp.body) {
            return false;
        }
        let (v, seq) = (pp.body.view, pp.body.seq);
        let later = v > self.view && v <= self.view + VIEW_AHEAD;
        let above = v == self.view && self.normal() && !self.in_window(seq);
        if later || above {
            if self.in_reach(seq) {
                self.future.entry((v, seq)).or_insert(pp);
            }
            return true;
        }
        if v != self.view || !self.normal() || self.is_primary() || !self.in_window(seq) {
            return true;
        }
        self.accept_pre_prepare(pp)
    }

    /// Accepts the kept pre-prepares of the current view that are now within the window;
    /// drops those of past views.
    fn take_due_pre_prepares(&mut self) {
        self.future = self.future.split_off(&(self.view, 0));
        if !self.normal() || self.is_primary() {
            return;
        }
        let due: Vec<(u64, u64)> = self
            .future
            .range((self.view, 0)..(self.view + 1, 0))
            .map(|(k, _)| *k)
            .filter(|&(_, seq)| self.in_window(seq))
            .collect();
        for k in due {
            if let Some(pp) = self.future.remove(&k) {
                self.accept_pre_prepare(pp);
            }
        }
    }

    fn accept_pre_prepare(&mut self, pp: Signed<PrePrepare>) -> bool {
        let (v, seq, d) = (pp.body.view, pp.body.seq, pp.body.digest);
        let slot = self.log.entry(seq).or_default();
        if let Some(old) = &slot.pre_prepare {
            if old.body.view == v {
                // A second pre-prepare for (v, n): a duplicate, or a conflicting one.
                return old.body.digest == d;
            }
        }
        slot.pre_prepare = Some(pp);
        self.vote_prepare(v, seq, d);
        self.check(seq);
        true
    }

    fn vote_prepare(&mut self, v: u64, seq: u64, d: Digest) {
        if self.behaviour == Behaviour::Collude {
            self.collude_vote(v, seq, d);
            return;
        }
        if self.cfg.primary(v) == self.id {
            return;
        }
        let slot = self.log.entry(seq).or_default();
        if slot.prepare_sent == Some(v) {
            return;
        }
        slot.prepare_sent = Some(v);
        let body = Prepare {
            view: v,
            seq,
            digest: d,
            replica: self.id,
        };
        let s = self.send(Dest::Replicas, Message::Prepare(body.clone()));
        let own = Signed {
            from: s.from,
            body,
            auth: s.auth,
        };
        self.log
            .entry(seq)
            .or_default()
            .prepares
            .entry((v, d))
            .or_default()
            .insert(self.id, own);
    }

    fn vote_commit(&mut self, v: u64, seq: u64, d: Digest) {
        match self.behaviour {
            Behaviour::Collude => self.collude_vote(v, seq, d),
            Behaviour::Equivocate if self.cfg.primary(v) == self.id => {}
            _ => {
                let body = Commit {
                    view: v,
                    seq,
                    digest: d,
                    replica: self.id,
                };
                self.send(Dest::Replicas, Message::Commit(body));
                self.log
                    .entry(seq)
                    .or_default()
                    .commits
                    .entry((v, d))
                    .or_default()
                    .insert(self.id);
            }
        }
    }

    /// Collude: PREPARE (unless primary of v) and COMMIT for (v, n, d), once each.
    fn collude_vote(&mut self, v: u64, seq: u64, d: Digest) {
        if !self.in_window(seq) || !self.votes.insert((v, seq, d)) {
            return;
        }
        if self.cfg.primary(v) != self.id {
            let body = Prepare {
                view: v,
                seq,
                digest: d,
                replica: self.id,
            };
            let s = self.send(Dest::Replicas, Message::Prepare(body.clone()));
            let own = Signed {
                from: s.from,
                body,
                auth: s.auth,
            };
            self.log
                .entry(seq)
                .or_default()
                .prepares
                .entry((v, d))
                .or_default()
                .insert(self.id, own);
        }
        let body = Commit {
            view: v,
            seq,
            digest: d,
            replica: self.id,
        };
        self.send(Dest::Replicas, Message::Commit(body));
        self.log
            .entry(seq)
            .or_default()
            .commits
            .entry((v, d))
            .or_default()
            .insert(self.id);
    }

    fn on_prepare(&mut self, p: Signed<Prepare>) -> bool {
        let b = &p.body;
        if b.replica == self.cfg.primary(b.view) {
            return false; // the primary's pre-prepare is its prepare
        }
        if !self.accepts_view(b.view) || !self.in_reach(b.seq) {
            return true;
        }
        let (v, seq, d, from) = (b.view, b.seq, b.digest, b.replica);
        if self.behaviour == Behaviour::Collude {
            self.collude_vote(v, seq, d);
        }
        self.log
            .entry(seq)
            .or_default()
            .prepares
            .entry((v, d))
            .or_default()
            .insert(from, p);
        self.check(seq);
        true
    }

    fn on_commit(&mut self, c: &Commit) -> bool {
        if !self.accepts_view(c.view) || !self.in_reach(c.seq) {
            return true;
        }
        if self.behaviour == Behaviour::Collude {
            self.collude_vote(c.view, c.seq, c.digest);
        }
        self.log
            .entry(c.seq)
            .or_default()
            .commits
            .entry((c.view, c.digest))
            .or_default()
            .insert(c.replica);
        self.check(c.seq);
        true
    }

    /// Prepared → commit; committed-local → record and execute.
    fn check(&mut self, seq: u64) {
        let q = self.cfg.quorum;
        let Some(slot) = self.log.get_mut(&seq) else {
            return;
        };
        let Some(pp) = slot.pre_prepare.clone() else {
            return;
        };
        let (v, d) = (pp.body.view, pp.body.digest);
        let prepares = slot.prepares.get(&(v, d));
        if prepares.map_or(0, BTreeMap::len) + 1 < q {
            return;
        }
        if slot
            .cert
            .as_ref()
            .is_none_or(|c| c.pre_prepare.body.view < v)
        {
            let prepares = prepares
                .map(|m| m.values().take(q - 1).cloned().collect())
                .unwrap_or_default();
            slot.cert = Some(PreparedCert {
                pre_prepare: pp.clone(),
                prepares,
            });
        }
        if slot.commit_sent != Some(v) {
            slot.commit_sent = Some(v);
            self.vote_commit(v, seq, d);
        }
        let Some(slot) = self.log.get_mut(&seq) else {
            return;
        };
        if slot.commits.get(&(v, d)).map_or(0, BTreeSet::len) < q {
            return;
        }
        if slot.committed.is_none() {
            slot.committed = Some((d, pp.body.request.clone()));
        }
        match self.stats.committed.get(&seq) {
            None => {
                self.stats.committed.insert(seq, d);
            }
            Some(first) if *first != d => {
                self.stats.self_conflict.get_or_insert(seq);
            }
            _ => {}
        }
        self.execute_ready();
    }

    fn execute_ready(&mut self) {
        loop {
            let n = self.last_exec + 1;
            let Some((d, req)) = self.log.get(&n).and_then(|s| s.committed.clone()) else {
                break;
            };
            self.execute(n, d, req);
        }
    }

    fn execute(&mut self, n: u64, d: Digest, req: Option<Signed<Request>>) {
        self.state.extend(n, &d);
        self.last_exec = n;
        self.stats.executed += 1;
        if let Some(req) = req {
            let (c, t) = (req.body.client, req.body.timestamp);
            let last = self.state.replies.get(&c).map_or(0, |x| x.0);
            if t > last {
                let result = self.state.history.to_vec();
                self.state.replies.insert(c, (t, result));
            }
            if t >= last {
                self.send_reply(c);
            }
            self.waiting.retain(|&(wc, wt), _| wc != c || wt > t);
            if self.normal() {
                // Progress: the timer restarts.
                self.timer = None;
            }
        }
        if n.is_multiple_of(self.cfg.checkpoint_interval) {
            let digest = self.state.digest();
            self.snapshots.insert(n, self.state.clone());
            let body = Checkpoint {
                seq: n,
                digest,
                replica: self.id,
            };
            let s = self.send(Dest::Replicas, Message::Checkpoint(body.clone()));
            if n > self.low {
                let own = Signed {
                    from: s.from,
                    body,
                    auth: s.auth,
                };
                self.checkpoints.entry(n).or_default().insert(self.id, own);
                self.check_stable(n);
            }
        }
    }

    fn on_checkpoint(&mut self, c: Signed<Checkpoint>) -> bool {
        let (seq, from) = (c.body.seq, c.body.replica);
        if !seq.is_multiple_of(self.cfg.checkpoint_interval) {
            return false;
        }
        if seq <= self.low {
            return true;
        }
        self.checkpoints.entry(seq).or_default().insert(from, c);
        // Each sender keeps its latest few checkpoints: bounded memory, and a replica far
        // behind still sees the others' recent ones.
        let limit = (self.cfg.window / self.cfg.checkpoint_interval) as usize + 2;
        let theirs: Vec<u64> = self
            .checkpoints
            .iter()
            .filter(|(_, m)| m.contains_key(&from))
            .map(|(s, _)| *s)
            .collect();
        if theirs.len() > limit {
            if let Some(m) = self.checkpoints.get_mut(&theirs[0]) {
                m.remove(&from);
                if m.is_empty() {
                    self.checkpoints.remove(&theirs[0]);
                }
            }
        }
        self.check_stable(seq);
        true
    }

    fn check_stable(&mut self, seq: u64) {
        let q = self.cfg.quorum;
        let Some(by) = self.checkpoints.get(&seq) else {
            return;
        };
        let mut groups: BTreeMap<Digest, Vec<Signed<Checkpoint>>> = BTreeMap::new();
        for c in by.values() {
            groups.entry(c.body.digest).or_default().push(c.clone());
        }
        if let Some((d, mut proof)) = groups.into_iter().find(|(_, v)| v.len() >= q) {
            proof.truncate(q);
            self.adopt_stable(seq, d, proof);
        }
    }

    /// Makes checkpoint `seq` stable: h moves up, the log below it goes, and a replica that has
    /// not executed that far fetches the state.
    fn adopt_stable(&mut self, seq: u64, d: Digest, proof: Vec<Signed<Checkpoint>>) {
        if seq <= self.low {
            return;
        }
        self.low = seq;
        self.stable_digest = d;
        self.stable_proof = proof;
        self.log = self.log.split_off(&(seq + 1));
        self.checkpoints = self.checkpoints.split_off(&(seq + 1));
        self.snapshots = self.snapshots.split_off(&seq);
        self.future.retain(|&(_, s), _| s > seq);
        self.votes.retain(|&(_, s, _)| s > seq);
        self.next_seq = self.next_seq.max(seq);
        if self.last_exec < seq {
            self.fetching = Some(seq);
            let body = FetchState {
                seq,
                replica: self.id,
            };
            self.send(Dest::Replicas, Message::FetchState(body));
        }
    }

    fn on_fetch(&mut self, f: &FetchState) {
        if f.replica == self.id {
            return;
        }
        if let Some(state) = self.snapshots.get(&f.seq).cloned() {
            let body = StateTransfer {
                seq: f.seq,
                state,
                replica: self.id,
            };
            self.send(Dest::Replica(f.replica), Message::State(body));
        }
    }

    fn on_state(&mut self, s: &StateTransfer) -> bool {
        if self.fetching != Some(s.seq) || s.seq != self.low || self.last_exec >= s.seq {
            return true;
        }
        if s.state.digest() != self.stable_digest {
            return false;
        }
        self.state = s.state.clone();
        self.last_exec = s.seq;
        self.snapshots.insert(s.seq, s.state.clone());
        self.fetching = None;
        self.stats.state_transfers += 1;
        let replies = &self.state.replies;
        self.waiting
            .retain(|&(c, t), _| replies.get(&c).is_none_or(|(last, _)| t > *last));
        true
    }

    // --- view change ---

    fn start_view_change(&mut self, to: u64, now: f64) {
        if to <= self.view {
            return;
        }
        if let Status::ViewChange { to: t, .. } = self.status {
            if t >= to {
                return;
            }
        }
        self.status = Status::ViewChange { to, armed: false };
        self.timer = None;
        self.stats.view_changes_started += 1;
        let vc = ViewChange {
            new_view: to,
            stable_seq: self.low,
            stable_digest: self.stable_digest,
            checkpoint_proof: self.stable_proof.clone(),
            prepared: self.log.values().filter_map(|s| s.cert.clone()).collect(),
            replica: self.id,
        };
        let s = self.send(Dest::Replicas, Message::ViewChange(vc.clone()));
        self.view_changes.insert(
            (to, self.id),
            Signed {
                from: s.from,
                body: vc,
                auth: s.auth,
            },
        );
        self.check_view_change(to, now);
    }

    fn valid_view_change(&self, vc: &Signed<ViewChange>) -> bool {
        let b = &vc.body;
        let q = self.cfg.quorum;
        if vc.from != Node::Replica(b.replica) || b.replica >= self.cfg.n || !vc.verify(&self.keys)
        {
            return false;
        }
        if b.stable_seq == 0 {
            if b.stable_digest != ServiceState::default().digest() || !b.checkpoint_proof.is_empty()
            {
                return false;
            }
        } else {
            if !b.stable_seq.is_multiple_of(self.cfg.checkpoint_interval) {
                return false;
            }
            let mut senders = BTreeSet::new();
            for c in &b.checkpoint_proof {
                let ok = c.from == Node::Replica(c.body.replica)
                    && c.body.seq == b.stable_seq
                    && c.body.digest == b.stable_digest
                    && c.verify(&self.keys);
                if !ok || !senders.insert(c.body.replica) {
                    return false;
                }
            }
            if senders.len() < q {
                return false;
            }
        }
        let mut last = b.stable_seq;
        for cert in &b.prepared {
            let pp = &cert.pre_prepare;
            let (v, seq, d) = (pp.body.view, pp.body.seq, pp.body.digest);
            let primary = self.cfg.primary(v);
            let ok = seq > last
                && seq <= b.stable_seq + self.cfg.window
                && v < b.new_view
                && pp.from == Node::Replica(primary)
                && pp.verify(&self.keys)
                && self.consistent(&pp.body);
            if !ok {
                return false;
            }
            let mut senders = BTreeSet::new();
            for p in &cert.prepares {
                let ok = p.from == Node::Replica(p.body.replica)
                    && p.body.replica != primary
                    && (p.body.view, p.body.seq, p.body.digest) == (v, seq, d)
                    && p.verify(&self.keys);
                if !ok || !senders.insert(p.body.replica) {
                    return false;
                }
            }
            if senders.len() + 1 < q {
                return false;
            }
            last = seq;
        }
        true
    }

    fn on_view_change(&mut self, vc: Signed<ViewChange>, now: f64) -> bool {
        let (v, from) = (vc.body.new_view, vc.body.replica);
        if v <= self.view || v > self.view + VC_AHEAD || self.view_changes.contains_key(&(v, from))
        {
            return true;
        }
        if !self.valid_view_change(&vc) {
            return false;
        }
        self.view_changes.insert((v, from), vc);
        // Join: N − Q + 1 other replicas want views above ours, so one honest replica does;
        // go to the lowest of those views.
        let base = match self.status {
            Status::ViewChange { to, .. } => to,
            Status::Normal => self.view,
        };
        let higher = self.view_changes.range((base + 1, 0)..);
        let senders: BTreeSet<usize> = higher
            .clone()
            .map(|(&(_, j), _)| j)
            .filter(|&j| j != self.id)
            .collect();
        if senders.len() >= self.cfg.weak_quorum() {
            if let Some((&(lowest, _), _)) = higher.into_iter().find(|(&(_, j), _)| j != self.id) {
                self.start_view_change(lowest, now);
            }
        }
        self.check_view_change(v, now);
        true
    }

    /// With Q view-changes for `v`: the new primary sends NEW-VIEW; the others arm the timer
    /// that bounds the wait for it.
    fn check_view_change(&mut self, v: u64, now: f64) {
        let count = self.view_changes.range((v, 0)..(v + 1, 0)).count();
        if count < self.cfg.quorum
            || self.status
                != (Status::ViewChange {
                    to: v,
                    armed: false,
                })
        {
            return;
        }
        if self.cfg.primary(v) == self.id {
            self.send_new_view(v);
        } else {
            self.status = Status::ViewChange { to: v, armed: true };
            self.timer = Some(now + self.timeout);
        }
    }

    fn send_new_view(&mut self, v: u64) {
        let mut chosen: Vec<Signed<ViewChange>> = Vec::new();
        if let Some(own) = self.view_changes.get(&(v, self.id)) {
            chosen.push(own.clone());
        }
        for (&(_, j), c) in self.view_changes.range((v, 0)..(v + 1, 0)) {
            if j != self.id && chosen.len() < self.cfg.quorum {
                chosen.push(c.clone());
            }
        }
        let plan = plan_new_view(&chosen);
        let pre_prepares = plan
            .entries
            .iter()
            .map(|(seq, digest, request)| {
                let pp = PrePrepare {
                    view: v,
                    seq: *seq,
                    digest: *digest,
                    request: request.clone(),
                };
                Signed::sign(&self.keys, pp, Audience::Replicas)
            })
            .collect();
        let nv = NewView {
            view: v,
            view_changes: chosen,
            pre_prepares,
        };
        self.send(Dest::Replicas, Message::NewView(nv.clone()));
        self.install_new_view(&nv, plan);
    }

    fn on_new_view(&mut self, nv: &NewView) -> bool {
        let v = nv.view;
        // Having sent VIEW-CHANGE for `to`, a replica is past every lower view: were it to
        // enter one and prepare there, its VIEW-CHANGE (already sent, without those
        // certificates) could still make up the NEW-VIEW of `to` and lose a committed request.
        let lowest = match self.status {
            Status::ViewChange { to, .. } => to,
            Status::Normal => self.view + 1,
        };
        if v < lowest {
            return true;
        }
        if nv.view_changes.len() < self.cfg.quorum {
            return false;
        }
        let mut senders = BTreeSet::new();
        for vc in &nv.view_changes {
            if vc.body.new_view != v
                || !senders.insert(vc.body.replica)
                || !self.valid_view_change(vc)
            {
                return false;
            }
        }
        let plan = plan_new_view(&nv.view_changes);
        if plan.entries.len() != nv.pre_prepares.len() {
            return false;
        }
        let primary = Node::Replica(self.cfg.primary(v));
        for (pp, (seq, d, req)) in nv.pre_prepares.iter().zip(&plan.entries) {
            let same_request = match (&pp.body.request, req) {
                (None, None) => true,
                (Some(a), Some(b)) => a.body == b.body,
                _ => false,
            };
            let ok = pp.from == primary
                && pp.body.view == v
                && pp.body.seq == *seq
                && pp.body.digest == *d
                && same_request
                && pp.verify(&self.keys)
                && self.consistent(&pp.body);
            if !ok {
                return false;
            }
        }
        self.install_new_view(nv, plan);
        true
    }

    fn install_new_view(&mut self, nv: &NewView, plan: Plan) {
        let v = nv.view;
        self.view = v;
        self.status = Status::Normal;
        self.timer = None;
        self.stats.views_installed += 1;
        self.view_changes = self.view_changes.split_off(&(v + 1, 0));
        if plan.min_s > self.low {
            self.adopt_stable(plan.min_s, plan.stable_digest, plan.proof);
        }
        for slot in self.log.values_mut() {
            slot.pre_prepare = None;
            slot.prepares.retain(|&(pv, _), _| pv >= v);
            slot.commits.retain(|&(cv, _), _| cv >= v);
        }
        self.assigned.clear();
        for pp in &nv.pre_prepares {
            let seq = pp.body.seq;
            if !self.in_window(seq) {
                continue;
            }
            if let Some(req) = &pp.body.request {
                self.note_request(req);
                self.assigned.insert((req.body.client, req.body.timestamp));
            }
            self.log.entry(seq).or_default().pre_prepare = Some(pp.clone());
            self.vote_prepare(v, seq, pp.body.digest);
            self.check(seq);
        }
        self.next_seq = plan.max_s.max(self.low);
        // Pre-prepares that came before this NEW-VIEW are taken next, in `after`.
    }
}

/// WrongDigest's version of a message: the digest (or the result) with its first byte
/// flipped; `None` for messages it sends unchanged.
fn corrupt(m: &Message) -> Option<Message> {
    let flip = |d: &Digest| {
        let mut d = *d;
        d[0] ^= 0xff;
        d
    };
    Some(match m {
        Message::PrePrepare(p) => Message::PrePrepare(PrePrepare {
            digest: flip(&p.digest),
            ..p.clone()
        }),
        Message::Prepare(p) => Message::Prepare(Prepare {
            digest: flip(&p.digest),
            ..p.clone()
        }),
        Message::Commit(c) => Message::Commit(Commit {
            digest: flip(&c.digest),
            ..c.clone()
        }),
        Message::Checkpoint(c) => Message::Checkpoint(Checkpoint {
            digest: flip(&c.digest),
            ..c.clone()
        }),
        Message::Reply(r) => {
            let mut result = r.result.clone();
            match result.first_mut() {
                Some(b) => *b ^= 0xff,
                None => result.push(0xff),
            }
            Message::Reply(Reply {
                result,
                ..r.clone()
            })
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// A request the client accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub timestamp: u64,
    pub latency_ms: f64,
    pub result: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Pending {
    req: Signed<Request>,
    issued: f64,
    deadline: f64,
    timeout: f64,
    /// Each replica's reply: (view, result).
    replies: BTreeMap<usize, (u64, Vec<u8>)>,
}

/// A closed-loop client: one request outstanding, sent to the primary it believes in, sent to
/// every replica after each timeout (doubling up to 8× the base), accepted on N − Q + 1
/// matching results from distinct replicas.
#[derive(Debug)]
pub struct Client {
    id: usize,
    cfg: Config,
    keys: KeyRing,
    view: u64,
    last_timestamp: u64,
    pending: Option<Pending>,
    mac_failures: u64,
}

impl Client {
    pub fn new(id: usize, cfg: &Config) -> Client {
        Client {
            id,
            cfg: cfg.clone(),
            keys: KeyRing::new(cfg.seed, cfg.n, cfg.clients, Node::Client(id)),
            view: 0,
            last_timestamp: 0,
            pending: None,
            mac_failures: 0,
        }
    }

    pub fn id(&self) -> usize {
        self.id
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    /// Replies dropped because the MAC failed.
    pub fn mac_failures(&self) -> u64 {
        self.mac_failures
    }

    /// Sends a new request (nothing while one is outstanding).
    pub fn issue(&mut self, op: Vec<u8>, now: f64) -> Vec<Outgoing> {
        if self.pending.is_some() {
            return Vec::new();
        }
        self.last_timestamp += 1;
        let body = Request {
            op,
            timestamp: self.last_timestamp,
            client: self.id,
        };
        let req = Signed::sign(&self.keys, body, Audience::Replicas);
        let primary = self.cfg.primary(self.view);
        self.pending = Some(Pending {
            req: req.clone(),
            issued: now,
            deadline: now + self.cfg.timeout_ms,
            timeout: self.cfg.timeout_ms,
            replies: BTreeMap::new(),
        });
        vec![Outgoing {
            to: Dest::Replica(primary),
            msg: req.widen(),
        }]
    }

    /// Takes a reply; returns the request's completion once enough replies match.
    pub fn handle(&mut self, msg: &Signed<Message>, now: f64) -> Option<Completion> {
        if !msg.verify(&self.keys) {
            self.mac_failures += 1;
            return None;
        }
        let Message::Reply(r) = &msg.body else {
            return None;
        };
        if msg.from != Node::Replica(r.replica) || r.client != self.id {
            return None;
        }
        let p = self.pending.as_mut()?;
        if r.timestamp != p.req.body.timestamp {
            return None;
        }
        p.replies.insert(r.replica, (r.view, r.result.clone()));
        let matching: Vec<u64> = p
            .replies
            .values()
            .filter(|(_, res)| *res == r.result)
            .map(|(v, _)| *v)
            .collect();
        if matching.len() < self.cfg.weak_quorum() {
            return None;
        }
        self.view = matching.iter().copied().max().unwrap_or(self.view);
        let done = Completion {
            timestamp: p.req.body.timestamp,
            latency_ms: now - p.issued,
            result: r.result.clone(),
        };
        self.pending = None;
        Some(done)
    }

    /// On timeout, sends the outstanding request to every replica.
    pub fn tick(&mut self, now: f64) -> Vec<Outgoing> {
        let cap = self.cfg.timeout_ms * 8.0;
        match self.pending.as_mut() {
            Some(p) if now >= p.deadline => {
                p.timeout = (p.timeout * 2.0).min(cap);
                p.deadline = now + p.timeout;
                vec![Outgoing {
                    to: Dest::Replicas,
                    msg: p.req.clone().widen(),
                }]
            }
            _ => Vec::new(),
        }
    }

    pub fn next_deadline(&self) -> Option<f64> {
        self.pending.as_ref().map(|p| p.deadline)
    }
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// What a driver observed, to be turned into a [`PbftResult`].
pub(crate) struct Observed<'a> {
    pub replicas: &'a [Replica],
    pub counts: MessageCounts,
    pub latencies: Vec<f64>,
    pub issued: u64,
    pub completed: u64,
    pub client_mac_failures: u64,
    pub dropped: u64,
    pub end_ms: f64,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The result both drivers report: the safety check over every honest replica's commit
/// record, liveness, counts and latencies.
pub(crate) fn summarize(p: &PbftParams, o: Observed<'_>) -> PbftResult {
    let honest: Vec<&Replica> = o
        .replicas
        .iter()
        .filter(|r| p.faults.get(r.id).is_some_and(|f| !f.is_byzantine()))
        .collect();
    let mut first_violation: Option<u64> = None;
    let mut note = |n: u64| first_violation = Some(first_violation.map_or(n, |f| f.min(n)));
    let mut agreed: BTreeMap<u64, Digest> = BTreeMap::new();
    for r in &honest {
        if let Some(n) = r.stats.self_conflict {
            note(n);
        }
        for (&n, d) in &r.stats.committed {
            match agreed.get(&n) {
                Some(first) if first != d => note(n),
                Some(_) => {}
                None => {
                    agreed.insert(n, *d);
                }
            }
        }
    }
    let mut lat = o.latencies;
    lat.sort_by(f64::total_cmp);
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<f64>() / lat.len() as f64
    };
    let total = o.counts.total();
    let up = honest
        .iter()
        .filter(|r| !p.faults[r.id].is_down(o.end_ms))
        .map(|r| r.low);
    PbftResult {
        n: p.n,
        faulty: p.faults.iter().filter(|f| **f != Fault::None).count(),
        quorum: p.quorum_size(),
        requests_issued: o.issued,
        requests_completed: o.completed,
        safety_ok: first_violation.is_none(),
        first_violation,
        liveness_ok: o.completed == p.requests,
        view_changes: honest
            .iter()
            .map(|r| r.stats.views_installed)
            .max()
            .unwrap_or(0),
        final_view: honest.iter().map(|r| r.view).max().unwrap_or(0),
        messages_total: total,
        messages_per_request: if o.completed == 0 {
            0.0
        } else {
            total as f64 / o.completed as f64
        },
        messages: o.counts,
        latency_mean_ms: mean,
        latency_p50_ms: percentile(&lat, 0.50),
        latency_p99_ms: percentile(&lat, 0.99),
        max_log_len: honest
            .iter()
            .map(|r| r.stats.max_log_len as u64)
            .max()
            .unwrap_or(0),
        stable_checkpoint: up.min().unwrap_or(0),
        mac_failures: o.replicas.iter().map(|r| r.stats.mac_failures).sum::<u64>()
            + o.client_mac_failures,
        rejected: o.replicas.iter().map(|r| r.stats.rejected).sum(),
        state_transfers: o.replicas.iter().map(|r| r.stats.state_transfers).sum(),
        messages_dropped: o.dropped,
        elapsed_ms: o.end_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: usize) -> Config {
        Config::new(&PbftParams::with_replicas(n)).expect("valid")
    }

    fn keys(c: &Config, me: Node) -> KeyRing {
        KeyRing::new(c.seed, c.n, c.clients, me)
    }

    #[test]
    fn every_message_round_trips_through_the_wire_format() {
        let c = cfg(4);
        let client = keys(&c, Node::Client(0));
        let r0 = keys(&c, Node::Replica(0));
        let req = Signed::sign(
            &client,
            Request {
                op: b"x".to_vec(),
                timestamp: 3,
                client: 0,
            },
            Audience::Replicas,
        );
        let pp = Signed::sign(
            &r0,
            PrePrepare {
                view: 0,
                seq: 1,
                digest: req.body.digest(),
                request: Some(req.clone()),
            },
            Audience::Replicas,
        );
        let prep = Signed::sign(
            &keys(&c, Node::Replica(1)),
            Prepare {
                view: 0,
                seq: 1,
                digest: pp.body.digest,
                replica: 1,
            },
            Audience::Replicas,
        );
        let ckpt = Signed::sign(
            &r0,
            Checkpoint {
                seq: 16,
                digest: [7; 32],
                replica: 0,
            },
            Audience::Replicas,
        );
        let vc = ViewChange {
            new_view: 1,
            stable_seq: 16,
            stable_digest: [7; 32],
            checkpoint_proof: vec![ckpt.clone()],
            prepared: vec![PreparedCert {
                pre_prepare: pp.clone(),
                prepares: vec![prep.clone()],
            }],
            replica: 0,
        };
        let svc = ServiceState {
            history: [1; 32],
            replies: BTreeMap::from([(0, (3, vec![9, 9]))]),
        };
        let bodies = vec![
            Message::Request(req.body.clone()),
            Message::PrePrepare(pp.body.clone()),
            Message::Prepare(prep.body.clone()),
            Message::Commit(Commit {
                view: 2,
                seq: 5,
                digest: [3; 32],
                replica: 3,
            }),
            Message::Reply(Reply {
                view: 0,
                timestamp: 3,
                client: 0,
                replica: 2,
                result: vec![1, 2, 3],
            }),
            Message::Checkpoint(ckpt.body.clone()),
            Message::ViewChange(vc.clone()),
            Message::NewView(NewView {
                view: 1,
                view_changes: vec![Signed::sign(&r0, vc, Audience::Replicas)],
                pre_prepares: vec![pp.clone()],
            }),
            Message::FetchState(FetchState {
                seq: 16,
                replica: 1,
            }),
            Message::State(StateTransfer {
                seq: 16,
                state: svc,
                replica: 2,
            }),
        ];
        for body in bodies {
            let m = Signed::sign(&r0, body, Audience::Replicas);
            let bytes = encode_message(&m);
            let back = decode_message(&bytes).expect("decodes");
            assert_eq!(back, m);
            assert!(back.verify(&keys(&c, Node::Replica(2))));
            for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                assert!(decode_message(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode_message(&longer), Err(DecodeError::Trailing(1)));
        }
    }

    #[test]
    fn a_forged_count_allocates_nothing() {
        let c = cfg(4);
        let m = Signed::sign(
            &keys(&c, Node::Replica(0)),
            Message::FetchState(FetchState { seq: 1, replica: 0 }),
            Audience::Replicas,
        );
        let mut bytes = encode_message(&m);
        // The authenticator's count sits after node (5) + tag (1) + fields (12).
        bytes[18..22].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_message(&bytes), Err(DecodeError::Count(_))));
    }

    #[test]
    fn macs_bind_sender_receiver_and_bytes() {
        let c = cfg(4);
        let m = Signed::sign(
            &keys(&c, Node::Replica(1)),
            Message::Commit(Commit {
                view: 0,
                seq: 1,
                digest: [5; 32],
                replica: 1,
            }),
            Audience::Replicas,
        );
        assert_eq!(m.auth.len(), 4);
        for i in 0..4 {
            assert!(m.verify(&keys(&c, Node::Replica(i))));
        }
        assert!(!m.verify(&keys(&c, Node::Client(0))));
        let mut forged = m.clone();
        forged.from = Node::Replica(2);
        assert!(!forged.verify(&keys(&c, Node::Replica(0))));
        let other_seed = KeyRing::new(c.seed + 1, 4, c.clients, Node::Replica(0));
        assert!(!m.verify(&other_seed));
    }

    #[test]
    fn faults_parse_and_print() {
        for (s, f) in [
            ("none", Fault::None),
            ("crash", Fault::Crash { at_ms: 0.0 }),
            ("crash@500", Fault::Crash { at_ms: 500.0 }),
            ("silent", Fault::Silent),
            ("wrong-digest", Fault::WrongDigest),
            ("equivocate", Fault::Equivocate),
            ("collude", Fault::Collude),
            ("delay:200", Fault::Delay { ms: 200.0 }),
        ] {
            assert_eq!(s.parse::<Fault>(), Ok(f));
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f));
        }
        for bad in ["lie", "crash@", "crash@-1", "delay:x", "delay:inf"] {
            let e = bad.parse::<Fault>().expect_err(bad);
            assert!(e.contains("wrong-digest") && e.contains("delay:MS"), "{e}");
        }
    }

    #[test]
    fn params_check_names_the_problem() {
        let ok = PbftParams::default();
        assert_eq!(ok.check(), Ok(()));
        let cases: Vec<(PbftParams, &str)> = vec![
            (
                PbftParams {
                    n: 0,
                    faults: vec![],
                    ..ok.clone()
                },
                "replicas",
            ),
            (
                PbftParams {
                    faults: vec![Fault::None; 3],
                    ..ok.clone()
                },
                "faults",
            ),
            (
                PbftParams {
                    quorum: Some(5),
                    ..ok.clone()
                },
                "quorum",
            ),
            (
                PbftParams {
                    quorum: Some(0),
                    ..ok.clone()
                },
                "quorum",
            ),
            (
                PbftParams {
                    checkpoint_interval: 0,
                    ..ok.clone()
                },
                "checkpoint interval",
            ),
            (
                PbftParams {
                    window: 8,
                    ..ok.clone()
                },
                "window",
            ),
            (
                PbftParams {
                    clients: 0,
                    ..ok.clone()
                },
                "clients",
            ),
            (
                PbftParams {
                    view_change_timeout_ms: 0.0,
                    ..ok.clone()
                },
                "timeout",
            ),
            (
                PbftParams {
                    jitter_ms: f64::NAN,
                    ..ok.clone()
                },
                "jitter",
            ),
        ];
        for (p, word) in cases {
            let e = p.check().expect_err(word);
            assert!(e.contains(word), "{e:?} should name {word}");
        }
    }

    #[test]
    fn default_quorum_is_2f_plus_1_at_3f_plus_1_and_intersects_in_f_plus_1() {
        for f in 0..6 {
            assert_eq!(default_quorum(3 * f + 1), 2 * f + 1);
        }
        for n in 1..40 {
            let (q, f) = (default_quorum(n), (n - 1) / 3);
            assert!(2 * q > n + f, "n {n}: two quorums share f + 1 replicas");
            assert!(q <= n - f, "n {n}: live with f silent");
        }
    }

    #[test]
    fn a_single_replica_executes_alone() {
        let p = PbftParams {
            faults: vec![Fault::None],
            ..PbftParams::with_replicas(1)
        };
        let c = Config::new(&p).expect("valid");
        let mut r = Replica::new(0, &c, Fault::None);
        let mut client = Client::new(0, &c);
        let out = client.issue(b"a".to_vec(), 0.0);
        let replies = r.handle(&out[0].msg, 1.0);
        assert_eq!(r.last_executed(), 1);
        let done = replies
            .iter()
            .find_map(|o| client.handle(&o.msg, 2.0))
            .expect("accepted");
        assert_eq!(done.latency_ms, 2.0);
    }
}
