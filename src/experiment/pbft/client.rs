//! The client: issues requests, retransmits them to every replica on timeout, and accepts
//! f + 1 matching replies.

use super::*;
use std::collections::BTreeMap;

/// A request the client accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The request's timestamp t.
    pub timestamp: u64,
    /// Milliseconds, on the driving network's clock, from issuing the request to accepting its
    /// result.
    pub latency_ms: f64,
    /// The accepted result r.
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
    /// Client `id` of a run with config `cfg`, idle, in view 0.
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

    /// This client's index c.
    pub fn id(&self) -> usize {
        self.id
    }

    /// No request outstanding.
    pub(crate) fn is_idle(&self) -> bool {
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

    /// When the outstanding request's timeout expires (ms on the network's clock); `None` when
    /// idle.
    pub(crate) fn next_deadline(&self) -> Option<f64> {
        self.pending.as_ref().map(|p| p.deadline)
    }
}
