//! The protocol's messages, their authenticators (pairwise HMAC keys) and where they go.

use super::wire::{put_node, Body as _, Payload};
use super::*;
use bitcoin::hashes::{sha256, Hash, HashEngine, Hmac, HmacEngine};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// A participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// Replica i, 0 ≤ i < N.
    Replica(usize),
    /// Client c, 0 ≤ c < the run's client count.
    Client(usize),
}

/// REQUEST ⟨o, t, c⟩.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// o: the operation, opaque to the protocol.
    pub op: Vec<u8>,
    /// t: the client's request counter, increasing; orders its requests and makes execution
    /// at-most-once.
    pub timestamp: u64,
    /// c: the client that sent it.
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
    /// v: the view the primary assigned it in.
    pub view: u64,
    /// n: the sequence number.
    pub seq: u64,
    /// d: the request's digest ([`NULL_DIGEST`] for the null request).
    pub digest: Digest,
    /// The request itself, as the client signed it; `None` for the null request.
    pub request: Option<Signed<Request>>,
}

/// PREPARE ⟨v, n, d, i⟩.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepare {
    /// v.
    pub view: u64,
    /// n.
    pub seq: u64,
    /// d: the digest of the request pre-prepared at (v, n).
    pub digest: Digest,
    /// i: the sender.
    pub replica: usize,
}

/// COMMIT ⟨v, n, d, i⟩.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// v.
    pub view: u64,
    /// n.
    pub seq: u64,
    /// d: the digest of the request prepared at (v, n).
    pub digest: Digest,
    /// i: the sender.
    pub replica: usize,
}

/// REPLY ⟨v, t, c, i, r⟩.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// v: the sender's view when it answered (the client follows it to the primary).
    pub view: u64,
    /// t: the request's timestamp.
    pub timestamp: u64,
    /// c: the request's client.
    pub client: usize,
    /// i: the sender.
    pub replica: usize,
    /// r: the result of executing the request.
    pub result: Vec<u8>,
}

/// CHECKPOINT ⟨n, d, i⟩: d is the service state's digest after executing n.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// n: the last sequence number executed.
    pub seq: u64,
    /// d.
    pub digest: Digest,
    /// i: the sender.
    pub replica: usize,
}

/// P_m: a pre-prepare and Q − 1 matching prepares from distinct backups.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedCert {
    /// The pre-prepare ⟨v, n, d⟩.
    pub pre_prepare: Signed<PrePrepare>,
    /// Q − 1 prepares for the same (v, n, d), from distinct backups.
    pub prepares: Vec<Signed<Prepare>>,
}

/// VIEW-CHANGE ⟨v + 1, n, C, P, i⟩.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewChange {
    /// v + 1: the view the sender moves to.
    pub new_view: u64,
    /// n: the sender's last stable checkpoint.
    pub stable_seq: u64,
    /// The service state's digest at n.
    pub stable_digest: Digest,
    /// C: Q checkpoint messages proving it (empty at the genesis checkpoint 0).
    pub checkpoint_proof: Vec<Signed<Checkpoint>>,
    /// P: a prepared certificate for every sequence number above n that the sender prepared
    /// (the one of the highest view), in increasing n.
    pub prepared: Vec<PreparedCert>,
    /// i: the sender.
    pub replica: usize,
}

/// NEW-VIEW ⟨v + 1, V, O⟩.
#[derive(Clone, Debug, PartialEq)]
pub struct NewView {
    /// v + 1: the view it opens.
    pub view: u64,
    /// V: Q valid view-changes for `view`.
    pub view_changes: Vec<Signed<ViewChange>>,
    /// O: the pre-prepares of the new view for the sequence numbers V leaves open.
    pub pre_prepares: Vec<Signed<PrePrepare>>,
}

/// A lagging replica asks for the state at stable checkpoint `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchState {
    /// The stable checkpoint's sequence number.
    pub seq: u64,
    /// The replica asking.
    pub replica: usize,
}

/// The answer: the state at `seq`, which the receiver checks against the checkpoint's digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateTransfer {
    /// The stable checkpoint's sequence number.
    pub seq: u64,
    /// The service state after executing `seq`.
    pub state: ServiceState,
    /// The replica answering.
    pub replica: usize,
}

/// The replicated service: a hash chain of every executed (n, d), and each client's last
/// timestamp and reply (which makes execution at-most-once and lets replicas resend replies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// SHA-256 chain over every executed (n, d), from all zeros.
    pub history: Digest,
    /// Per client: its last executed timestamp and the reply to it.
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
    pub(super) fn extend(&mut self, seq: u64, d: &Digest) {
        let mut h = Sha256::new();
        h.update(self.history);
        h.update(seq.to_le_bytes());
        h.update(d);
        self.history = h.finalize().into();
    }
}

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A client's request.
    Request(Request),
    /// The primary's sequence-number assignment.
    PrePrepare(PrePrepare),
    /// A backup's agreement with a pre-prepare.
    Prepare(Prepare),
    /// A prepared replica's commit.
    Commit(Commit),
    /// A replica's answer to a client.
    Reply(Reply),
    /// A replica's state digest every k executions.
    Checkpoint(Checkpoint),
    /// A replica's vote to leave its view.
    ViewChange(ViewChange),
    /// The new primary's opening of a view.
    NewView(NewView),
    /// A lagging replica's state-transfer request.
    FetchState(FetchState),
    /// The answer to [`Message::FetchState`].
    State(StateTransfer),
}

/// Who an authenticator is for: every replica, or one client (REPLY).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// One MAC per replica.
    Replicas,
    /// One MAC, for client c.
    Client(usize),
}

/// A message with its sender and authenticator: MAC i is for replica i (or the one MAC for
/// the client of a REPLY), over the sender and the tagged message bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Signed<T> {
    /// The sender.
    pub from: Node,
    /// The message.
    pub body: T,
    /// The authenticator: one HMAC-SHA256 per receiver (see the type).
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
    pub(crate) fn verify(&self, keys: &KeyRing) -> bool {
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
pub(super) fn narrow<T: Clone>(s: &Signed<Message>, body: &T) -> Signed<T> {
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
    /// Replica i only.
    Replica(usize),
    /// Client c only.
    Client(usize),
}

/// A message a replica or client hands to its network.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// Where it goes.
    pub to: Dest,
    /// The message, signed by the sender.
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

#[cfg(test)]
mod tests {
    use super::super::testing::{cfg, keys};
    use super::*;

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
}
