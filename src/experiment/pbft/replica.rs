//! The replica state machine: normal case, checkpoints, state transfer and view changes.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// The settings every participant of a run shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Replicas N.
    pub n: usize,
    /// Quorum size Q ([`PbftParams::quorum_size`]).
    pub quorum: usize,
    /// Clients.
    pub clients: usize,
    /// Checkpoint interval k: a checkpoint every k sequence numbers.
    pub checkpoint_interval: u64,
    /// Window L: sequence numbers accepted above the low water mark.
    pub window: u64,
    /// View-change timeout, ms.
    pub timeout_ms: f64,
    /// The run's seed; participants derive their MAC keys from it.
    pub seed: u64,
}

impl Config {
    /// The shared settings of `p`, after [`PbftParams::check`].
    pub fn new(p: &PbftParams) -> Result<Config, ParamsError> {
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
    /// Messages dropped because their MAC did not verify.
    pub mac_failures: u64,
    /// Messages with a valid MAC refused: wrong sender for their kind, or not acceptable
    /// in the replica's state.
    pub rejected: u64,
    /// New views installed (NEW-VIEW accepted or sent).
    pub views_installed: u64,
    /// View changes this replica started (VIEW-CHANGE sent).
    pub view_changes_started: u64,
    /// States taken from another replica (state transfer) instead of executing.
    pub state_transfers: u64,
    /// Sequence numbers executed.
    pub executed: u64,
    /// The largest the message log ([`Replica::log_len`]) grew.
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

    /// Its replica index i (0..N).
    pub fn id(&self) -> usize {
        self.id
    }

    /// v: the view it is in (or last installed, during a view change).
    pub fn view(&self) -> u64 {
        self.view
    }

    /// h: the last stable checkpoint.
    pub fn low_water_mark(&self) -> u64 {
        self.low
    }

    /// The last sequence number it executed (or took by state transfer).
    pub fn last_executed(&self) -> u64 {
        self.last_exec
    }

    /// Whether it is between VIEW-CHANGE and NEW-VIEW.
    pub fn in_view_change(&self) -> bool {
        self.status != Status::Normal
    }

    /// Its counters and commit record.
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
        self.send_prepare(v, seq, d);
    }

    /// Sends this replica's PREPARE for (v, seq, d) to the others and logs it as its own vote.
    fn send_prepare(&mut self, v: u64, seq: u64, d: Digest) {
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
            self.send_prepare(v, seq, d);
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

#[cfg(test)]
mod tests {
    use super::*;

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
