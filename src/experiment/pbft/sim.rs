//! PBFT on a simulated network: an event queue in virtual time (ms), every message delivered
//! after `link_delay_ms` plus an exponential jitter of mean `jitter_ms` drawn from one
//! `StdRng::seed_from_u64(seed)` stream, plus the sender's [`Fault::Delay`](super::Fault::Delay). Links are
//! reliable and may reorder. Replicas and clients are the shared state machines of
//! [`super`]; the sim only delivers, fires timers and applies the network faults (crash,
//! silent, delay). Deterministic for given parameters: same seed, same [`PbftResult`].

use super::{
    operation, recipients, summarize, Client, Config, Message, MessageCounts, Node, Observed,
    Outgoing, ParamsError, PbftParams, PbftResult, Replica, Signed,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;

/// Runs the simulation.
///
/// # Panics
///
/// If `p.check()` fails; [`try_run`] returns the error instead.
pub fn run(p: &PbftParams) -> PbftResult {
    match try_run(p) {
        Ok(r) => r,
        Err(e) => panic!("invalid PBFT parameters: {e}"),
    }
}

/// Runs the simulation, or says which parameter is wrong.
pub fn try_run(p: &PbftParams) -> Result<PbftResult, ParamsError> {
    let cfg = Config::new(p)?;
    let mut sim = Sim::new(p, &cfg);
    sim.run();
    let replicas = std::mem::take(&mut sim.replicas);
    Ok(summarize(
        p,
        Observed {
            replicas: &replicas,
            counts: sim.counts,
            latencies: sim.latencies,
            issued: sim.issued,
            completed: sim.completed,
            client_mac_failures: sim.clients.iter().map(Client::mac_failures).sum(),
            dropped: 0,
            end_ms: sim.now,
        },
    ))
}

enum Event {
    Deliver { to: Node, msg: Rc<Signed<Message>> },
    Wake(Node),
}

struct Scheduled {
    at: f64,
    /// Insertion order: ties in time resolve the same way every run.
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest event first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.total_cmp(&self.at).then(o.order.cmp(&self.order))
    }
}

struct Sim<'a> {
    p: &'a PbftParams,
    rng: StdRng,
    queue: BinaryHeap<Scheduled>,
    order: u64,
    now: f64,
    replicas: Vec<Replica>,
    clients: Vec<Client>,
    /// The earliest Wake queued for each participant (replicas, then clients).
    wake: Vec<Option<f64>>,
    counts: MessageCounts,
    latencies: Vec<f64>,
    issued: u64,
    completed: u64,
}

impl<'a> Sim<'a> {
    fn new(p: &'a PbftParams, cfg: &Config) -> Sim<'a> {
        Sim {
            p,
            rng: StdRng::seed_from_u64(p.seed),
            queue: BinaryHeap::new(),
            order: 0,
            now: 0.0,
            replicas: (0..p.n)
                .map(|i| Replica::new(i, cfg, p.faults[i]))
                .collect(),
            clients: (0..p.clients).map(|c| Client::new(c, cfg)).collect(),
            wake: vec![None; p.n + p.clients],
            counts: MessageCounts::default(),
            latencies: Vec::new(),
            issued: 0,
            completed: 0,
        }
    }

    fn push(&mut self, at: f64, event: Event) {
        self.order += 1;
        self.queue.push(Scheduled {
            at,
            order: self.order,
            event,
        });
    }

    fn index(&self, node: Node) -> usize {
        match node {
            Node::Replica(i) => i,
            Node::Client(c) => self.p.n + c,
        }
    }

    fn run(&mut self) {
        for c in 0..self.p.clients {
            self.issue(c);
        }
        while self.completed < self.p.requests {
            let Some(s) = self.queue.pop() else { break };
            if s.at > self.p.time_limit_ms {
                self.now = self.p.time_limit_ms;
                break;
            }
            self.now = s.at;
            match s.event {
                Event::Deliver {
                    to: Node::Replica(i),
                    msg,
                } => {
                    if !self.p.faults[i].is_down(self.now) {
                        let out = self.replicas[i].handle(&msg, self.now);
                        self.sent(Node::Replica(i), out);
                    }
                }
                Event::Deliver {
                    to: Node::Client(c),
                    msg,
                } => {
                    if let Some(done) = self.clients[c].handle(&msg, self.now) {
                        self.latencies.push(done.latency_ms);
                        self.completed += 1;
                        self.issue(c);
                    }
                    self.schedule_wake(Node::Client(c));
                }
                Event::Wake(node) => {
                    let k = self.index(node);
                    if self.wake[k] == Some(s.at) {
                        self.wake[k] = None;
                    }
                    match node {
                        Node::Replica(i) => {
                            if !self.p.faults[i].is_down(self.now) {
                                let out = self.replicas[i].tick(self.now);
                                self.sent(node, out);
                            }
                        }
                        Node::Client(c) => {
                            let out = self.clients[c].tick(self.now);
                            self.sent(node, out);
                        }
                    }
                }
            }
        }
    }

    /// The client's next request, if any are left to issue.
    fn issue(&mut self, c: usize) {
        if self.issued >= self.p.requests || !self.clients[c].is_idle() {
            return;
        }
        let op = operation(self.issued, c);
        self.issued += 1;
        let out = self.clients[c].issue(op, self.now);
        self.sent(Node::Client(c), out);
    }

    fn schedule_wake(&mut self, node: Node) {
        let deadline = match node {
            Node::Replica(i) => self.replicas[i].next_deadline(),
            Node::Client(c) => self.clients[c].next_deadline(),
        };
        let Some(d) = deadline else { return };
        let d = d.max(self.now);
        let k = self.index(node);
        if self.wake[k].is_none_or(|w| d < w) {
            self.wake[k] = Some(d);
            self.push(d, Event::Wake(node));
        }
    }

    /// Puts what `from` sent on the links (unless its fault swallows it), then re-arms its
    /// wake-up.
    fn sent(&mut self, from: Node, out: Vec<Outgoing>) {
        let extra = match from {
            Node::Replica(i) => self.p.faults[i].send_delay(self.now),
            Node::Client(_) => Some(0.0),
        };
        if let Some(extra) = extra {
            for o in out {
                let msg = Rc::new(o.msg);
                let to = recipients(from, o.to, self.p.n);
                self.counts.add(&msg.body, to.len() as u64);
                for node in to {
                    let at = self.now + self.link_delay() + extra;
                    self.push(
                        at,
                        Event::Deliver {
                            to: node,
                            msg: Rc::clone(&msg),
                        },
                    );
                }
            }
        }
        self.schedule_wake(from);
    }

    fn link_delay(&mut self) -> f64 {
        let jitter = if self.p.jitter_ms > 0.0 {
            let u: f64 = self.rng.gen();
            -self.p.jitter_ms * (1.0 - u).ln()
        } else {
            0.0
        };
        self.p.link_delay_ms + jitter
    }
}
