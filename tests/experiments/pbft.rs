//! PBFT (`miner::experiment::pbft`): safety and liveness with up to f faulty replicas of each
//! kind, both failing once the faulty replicas reach N/3 (the seed's "why N = 3f + 1", shown by
//! runs), MAC rejection, checkpoints bounding the log, O(N²) messages, determinism, and the
//! same state machine on loopback TCP.

#![cfg(feature = "experiments")]

use miner::experiment::pbft::{
    decode_message, encode_message, recipients, sim, Audience, Client, Config, Fault, Message,
    Node, PbftParams, PbftResult, PrePrepare, Replica, Signed,
};

/// N replicas, 3 clients, 60 requests, the given faults.
fn params(n: usize, faults: &[(usize, Fault)]) -> PbftParams {
    let mut p = PbftParams::with_replicas(n);
    p.clients = 3;
    p.requests = 60;
    for &(i, f) in faults {
        p.faults[i] = f;
    }
    p
}

fn safe_and_live(p: &PbftParams, what: &str) -> PbftResult {
    let r = sim::run(p);
    assert!(r.safety_ok, "{what}: safety failed: {r:#?}");
    assert!(r.liveness_ok, "{what}: not live: {r:#?}");
    assert_eq!(r.requests_completed, p.requests, "{what}");
    r
}

#[test]
fn no_faults_commits_everything_in_view_0() {
    for n in [4, 7] {
        let r = safe_and_live(&params(n, &[]), &format!("n = {n}"));
        assert_eq!(r.view_changes, 0, "{r:#?}");
        assert_eq!(r.final_view, 0);
        assert_eq!(r.mac_failures, 0);
        assert_eq!(r.rejected, 0);
        // Three message delays (pre-prepare, prepare, commit) plus the request and the reply:
        // about 5 × 10 ms links.
        assert!(r.latency_p50_ms > 40.0 && r.latency_p50_ms < 80.0, "{r:#?}");
    }
}

#[test]
fn f_silent_backups_are_tolerated() {
    let s = Fault::Silent;
    safe_and_live(&params(4, &[(3, s)]), "n = 4, 1 silent");
    safe_and_live(&params(7, &[(5, s), (6, s)]), "n = 7, 2 silent");
}

#[test]
fn f_crashed_backups_are_tolerated() {
    let c = Fault::Crash { at_ms: 200.0 };
    safe_and_live(&params(4, &[(2, c)]), "n = 4, 1 crash");
    safe_and_live(
        &params(7, &[(3, c), (6, Fault::Crash { at_ms: 0.0 })]),
        "n = 7, 2 crash",
    );
}

#[test]
fn a_crashed_primary_is_replaced_by_a_view_change() {
    for (n, extra) in [(4, vec![]), (7, vec![(4, Fault::Silent)])] {
        let mut faults = vec![(0, Fault::Crash { at_ms: 0.0 })];
        faults.extend(extra);
        let r = safe_and_live(&params(n, &faults), &format!("n = {n}, primary crashed"));
        assert!(r.view_changes >= 1, "{r:#?}");
        assert!(r.final_view >= 1);
        assert!(r.messages.view_change > 0 && r.messages.new_view > 0);
    }
}

#[test]
fn an_equivocating_primary_is_replaced_by_a_view_change() {
    let e = Fault::Equivocate;
    for (n, faults) in [(4, vec![(0, e)]), (7, vec![(0, e), (5, Fault::Silent)])] {
        let r = safe_and_live(
            &params(n, &faults),
            &format!("n = {n}, equivocating primary"),
        );
        assert!(r.view_changes >= 1, "{r:#?}");
    }
}

#[test]
fn f_wrong_digest_replicas_are_tolerated() {
    let w = Fault::WrongDigest;
    let r = safe_and_live(&params(4, &[(2, w)]), "n = 4, 1 wrong digest");
    assert_eq!(r.view_changes, 0);
    safe_and_live(&params(7, &[(1, w), (5, w)]), "n = 7, 2 wrong digest");
    // As primary its pre-prepares do not match their requests: rejected, then replaced.
    let r = safe_and_live(&params(4, &[(0, w)]), "n = 4, wrong-digest primary");
    assert!(r.view_changes >= 1 && r.rejected > 0, "{r:#?}");
}

#[test]
fn slow_replicas_are_tolerated() {
    let d = Fault::Delay { ms: 150.0 };
    safe_and_live(&params(4, &[(3, d)]), "n = 4, 1 slow backup");
    safe_and_live(
        &params(7, &[(0, d), (6, d)]),
        "n = 7, slow primary and backup",
    );
}

/// With N = 3f, f silent replicas leave 2f, fewer than a quorum 2f + 1 that would make any two
/// quorums share an honest replica: nothing commits. Safety holds.
#[test]
fn liveness_fails_when_silent_replicas_reach_a_third() {
    for (n, silent) in [(3, vec![2]), (6, vec![4, 5])] {
        let mut p = params(
            n,
            &silent
                .iter()
                .map(|&i| (i, Fault::Silent))
                .collect::<Vec<_>>(),
        );
        p.quorum = Some(2 * (n / 3) + 1);
        p.time_limit_ms = 10_000.0;
        let r = sim::run(&p);
        assert!(!r.liveness_ok, "n = {n}: {r:#?}");
        assert_eq!(r.requests_completed, 0, "n = {n}");
        assert!(r.safety_ok, "n = {n}: {r:#?}");
    }
    // The same f silent replicas at N = 3f + 1 (quorum 2f + 1): live.
    safe_and_live(&params(4, &[(3, Fault::Silent)]), "n = 4");
    safe_and_live(
        &params(7, &[(5, Fault::Silent), (6, Fault::Silent)]),
        "n = 7",
    );
}

/// With N = 3f and the quorum lowered to N − f (so that f silent replicas would not stop it),
/// two quorums share only f replicas, all Byzantine: an equivocating primary and its colluders
/// get one half of the honest replicas to commit the request and the other half the null
/// request at the same n.
#[test]
fn safety_fails_when_byzantine_replicas_reach_a_third() {
    let c = Fault::Collude;
    for (n, faults) in [(3, vec![(0, c)]), (6, vec![(0, c), (1, c)])] {
        let mut p = params(n, &faults);
        p.quorum = Some(n - n / 3);
        let r = sim::run(&p);
        assert!(!r.safety_ok, "n = {n}: {r:#?}");
        assert_eq!(r.first_violation, Some(1), "n = {n}");
        assert!(r.requests_completed > 0, "n = {n}: {r:#?}");
    }
    // N = 4 tolerates one Byzantine replica, not two.
    let r = sim::run(&params(4, &[(0, c), (1, c)]));
    assert!(!r.safety_ok, "n = 4, 2 Byzantine: {r:#?}");
    // The same coalition of f at N = 3f + 1: the honest replicas never commit conflicting
    // digests (at N = 4 the colluding primary only leaves one backup behind, which catches up
    // by state transfer).
    safe_and_live(&params(4, &[(0, c)]), "n = 4, 1 colluder");
    safe_and_live(&params(7, &[(0, c), (1, c)]), "n = 7, 2 colluders");
}

/// Random mixes of up to f faults of every kind, small windows, heavy jitter and timeouts
/// shorter than the network's delays. Sweeps like this one (thousands of trials) found a
/// replica entering a view below one it had already sent VIEW-CHANGE for (a committed request
/// lost: safety) and quorums for a view lost to reordered VIEW-CHANGEs (liveness).
#[test]
fn random_fault_mixes_up_to_f_stay_safe_and_live() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
    let kinds = [
        Fault::Silent,
        Fault::Crash { at_ms: 0.0 },
        Fault::Crash { at_ms: 300.0 },
        Fault::WrongDigest,
        Fault::Equivocate,
        Fault::Collude,
        Fault::Delay { ms: 80.0 },
    ];
    for trial in 0..120 {
        let n = [4, 5, 6, 7, 10][rng.gen_range(0..5)];
        let f = (n - 1) / 3;
        let mut p = PbftParams::with_replicas(n);
        p.seed = trial;
        p.requests = 40;
        p.clients = rng.gen_range(1..5);
        p.checkpoint_interval = [2, 5, 16][rng.gen_range(0..3)];
        p.window = p.checkpoint_interval * rng.gen_range(1..4);
        p.jitter_ms = [0.0, 5.0, 30.0, 100.0][rng.gen_range(0..4)];
        p.view_change_timeout_ms = [30.0, 60.0, 150.0, 500.0][rng.gen_range(0..4)];
        p.time_limit_ms = 120_000.0;
        let mut order: Vec<usize> = (0..n).collect();
        for j in 0..f {
            let t = rng.gen_range(j..n);
            order.swap(j, t);
            p.faults[order[j]] = kinds[rng.gen_range(0..kinds.len())];
        }
        let r = sim::run(&p);
        assert!(r.safety_ok && r.liveness_ok, "trial {trial}: {p:?}\n{r:#?}");
    }
}

/// Four replicas driven by hand: messages are delivered only when a test says so.
struct Net {
    replicas: Vec<Replica>,
    /// (to, message) not yet delivered.
    pending: Vec<(usize, Signed<Message>)>,
}

impl Net {
    fn new(cfg: &Config) -> Net {
        Net {
            replicas: (0..cfg.n)
                .map(|i| Replica::new(i, cfg, Fault::None))
                .collect(),
            pending: Vec::new(),
        }
    }

    fn post(&mut self, from: usize, out: Vec<miner::experiment::pbft::Outgoing>) {
        for o in out {
            for to in recipients(Node::Replica(from), o.to, self.replicas.len()) {
                if let Node::Replica(j) = to {
                    self.pending.push((j, o.msg.clone()));
                }
            }
        }
    }

    fn tick(&mut self, i: usize, now: f64) {
        let out = self.replicas[i].tick(now);
        self.post(i, out);
    }

    /// Delivers the pending messages that `pick` selects (and those they cause, if `pick`
    /// selects them too), until none is left.
    fn deliver(&mut self, now: f64, pick: impl Fn(usize, &Message) -> bool) {
        loop {
            let Some(k) = self.pending.iter().position(|(to, m)| pick(*to, &m.body)) else {
                return;
            };
            let (to, m) = self.pending.remove(k);
            let out = self.replicas[to].handle(&m, now);
            self.post(to, out);
        }
    }
}

fn is_view_change(m: &Message, view: u64) -> bool {
    matches!(m, Message::ViewChange(vc) if vc.new_view == view)
}

/// Backups 1–3 learn of a request the primary never orders, so their timers run.
fn stalled_primary(cfg: &Config) -> Net {
    let mut net = Net::new(cfg);
    let mut client = Client::new(0, cfg);
    let out = client.issue(b"pay".to_vec(), 0.0);
    for i in 1..4 {
        let fwd = net.replicas[i].handle(&out[0].msg, 1.0);
        assert!(
            !fwd.is_empty(),
            "backup {i} forwards the request to the primary"
        );
    }
    net
}

/// A replica that sent VIEW-CHANGE for v + 2 must not enter v + 1 when its NEW-VIEW arrives
/// late: its VIEW-CHANGE for v + 2, already sent, does not hold what it would prepare in
/// v + 1, and could make up the NEW-VIEW of v + 2 and lose a committed request (found by the
/// random runs: two honest replicas committed different requests at one n).
#[test]
fn a_replica_past_a_view_ignores_its_late_new_view() {
    let cfg = Config::new(&PbftParams::with_replicas(4)).expect("valid");
    let mut net = stalled_primary(&cfg);
    for i in 1..4 {
        net.tick(i, 600.0); // view-change timers expire: VIEW-CHANGE(1)
    }
    // Replica 3 gets the view-changes for 1 but not yet the NEW-VIEW.
    net.deliver(601.0, |_, m| is_view_change(m, 1));
    assert_eq!(
        net.replicas[1].view(),
        1,
        "replica 1, primary of view 1, entered it"
    );
    assert!(net.replicas[3].in_view_change());
    net.tick(3, 10_000.0); // its wait for NEW-VIEW(1) expires: VIEW-CHANGE(2)
    assert!(net.pending.iter().any(|(_, m)| is_view_change(&m.body, 2)));
    net.deliver(10_001.0, |to, m| {
        matches!(m, Message::NewView(_)) && to != 0
    });
    assert_eq!(net.replicas[2].view(), 1, "the NEW-VIEW is valid");
    assert_eq!(net.replicas[3].view(), 0, "but replica 3 is past view 1");
    assert!(net.replicas[3].in_view_change());
}

/// The primary of a view counts a VIEW-CHANGE for it even after the same sender's
/// VIEW-CHANGE for a later view (links reorder): otherwise the quorum for the view may never
/// form (found by the random runs: no progress, every replica waiting on a different view).
#[test]
fn view_changes_are_kept_per_view_not_per_sender() {
    let cfg = Config::new(&PbftParams::with_replicas(4)).expect("valid");
    let mut net = stalled_primary(&cfg);
    for i in 1..4 {
        net.tick(i, 600.0);
    }
    // Replicas 2 and 3 see each other's VIEW-CHANGE(1): a quorum with their own.
    net.deliver(601.0, |to, m| is_view_change(m, 1) && (to == 2 || to == 3));
    net.tick(3, 10_000.0); // replica 3 moves on: VIEW-CHANGE(2)
                           // Replica 1, the new primary, gets 3's VIEW-CHANGE(2) before its VIEW-CHANGE(1).
    net.deliver(10_001.0, |to, m| is_view_change(m, 2) && to == 1);
    assert!(net.replicas[1].in_view_change());
    net.deliver(10_002.0, |to, m| is_view_change(m, 1) && to == 1);
    assert_eq!(
        net.replicas[1].view(),
        1,
        "NEW-VIEW(1) from VIEW-CHANGE(1)s of 1, 2, 3"
    );
}

/// The primary runs the request timer too. In this run (found by the random runs) a backup
/// gives up on view 2 alone before it commits there; the primary of view 2 stays one commit
/// short of a quorum (the wrong-digest replica's commits never match), while the other backup
/// and the wrong-digest replica have executed the request and wait for nothing. Only the
/// primary's own timer starts the view change that completes it; without it, no progress
/// ever again.
#[test]
fn a_primary_one_commit_short_starts_the_view_change_itself() {
    let mut p = params(4, &[(3, Fault::WrongDigest)]);
    p.seed = 350;
    p.clients = 1;
    p.requests = 40;
    p.checkpoint_interval = 5;
    p.window = 15;
    p.jitter_ms = 100.0;
    p.view_change_timeout_ms = 150.0;
    p.time_limit_ms = 120_000.0;
    safe_and_live(&p, "seed 350");
}

#[test]
fn a_tampered_byte_fails_the_mac_and_is_counted() {
    let p = PbftParams::with_replicas(4);
    let cfg = Config::new(&p).expect("valid");
    let mut client = Client::new(0, &cfg);
    let request = client.issue(b"transfer 1".to_vec(), 0.0);
    let Message::Request(body) = &request[0].msg.body else {
        panic!("a request")
    };
    let req = Signed {
        from: Node::Client(0),
        body: body.clone(),
        auth: request[0].msg.auth.clone(),
    };
    let primary = miner::experiment::pbft::KeyRing::new(cfg.seed, 4, cfg.clients, Node::Replica(0));
    let pp = Signed::sign(
        &primary,
        PrePrepare {
            view: 0,
            seq: 1,
            digest: req.body.digest(),
            request: Some(req),
        },
        Audience::Replicas,
    )
    .widen();
    let bytes = encode_message(&pp);
    let mut backup = Replica::new(1, &cfg, Fault::None);
    // Flip one byte of the digest (after the sender (5), the tag (1), v and n (16)).
    let mut tampered = bytes.clone();
    tampered[22] ^= 1;
    let m = decode_message(&tampered).expect("still well-formed");
    assert!(backup.handle(&m, 1.0).is_empty());
    assert_eq!(backup.stats().mac_failures, 1);
    // A forged sender fails too.
    let mut forged = pp.clone();
    forged.from = Node::Replica(2);
    assert!(backup.handle(&forged, 1.0).is_empty());
    assert_eq!(backup.stats().mac_failures, 2);
    // The untouched message is accepted: the backup prepares.
    let out = backup.handle(&decode_message(&bytes).expect("decodes"), 2.0);
    assert!(
        out.iter()
            .any(|o| matches!(o.msg.body, Message::Prepare(_))),
        "{out:?}"
    );
    assert_eq!(backup.stats().mac_failures, 2);
}

#[test]
fn checkpoints_keep_the_log_bounded() {
    let mut p = PbftParams::with_replicas(4);
    p.checkpoint_interval = 10;
    p.window = 20;
    p.clients = 4;
    p.requests = 200;
    let r = safe_and_live(&p, "200 requests, k = 10");
    assert!(r.stable_checkpoint >= 190, "{r:#?}");
    // Per sequence number a log holds a pre-prepare, N − 1 prepares and N commits; the window
    // holds L of them, plus checkpoint messages. Two windows' worth is the bound; without
    // garbage collection the log would hold every message of the run.
    let bound = 2 * p.window * (2 * p.n as u64);
    assert!(r.max_log_len <= bound, "{} > {bound}", r.max_log_len);
    assert!(r.messages_total > 4 * bound);
}

#[test]
fn messages_per_request_grow_as_n_squared() {
    let mut per_request = Vec::new();
    for n in [4, 7, 10, 13] {
        let mut p = PbftParams::with_replicas(n);
        p.requests = 40;
        p.clients = 2;
        let r = safe_and_live(&p, &format!("n = {n}"));
        let ratio = r.messages_per_request / (n * n) as f64;
        // Prepares (N − 1)² and commits N(N − 1) dominate: about 2N² in all.
        assert!((1.5..2.5).contains(&ratio), "n = {n}: {ratio} {r:#?}");
        per_request.push(r.messages_per_request);
    }
    assert!(per_request[3] > 5.0 * per_request[0], "{per_request:?}");
}

#[test]
fn the_same_seed_gives_the_same_result() {
    let p = params(4, &[(0, Fault::Crash { at_ms: 100.0 })]);
    let a = sim::run(&p);
    assert_eq!(a, sim::run(&p));
    let other = sim::run(&PbftParams { seed: 2, ..p });
    assert_ne!(a.latency_mean_ms, other.latency_mean_ms);
}

#[test]
fn bad_parameters_are_refused_with_a_message() {
    let mut p = PbftParams::with_replicas(4);
    p.faults.pop();
    let e = sim::try_run(&p).expect_err("3 faults for 4 replicas");
    assert!(e.to_string().contains("faults"), "{e}");
}

#[cfg(feature = "node")]
mod live {
    use super::*;
    use miner::experiment::pbft::live;

    fn live_params(faults: &[(usize, Fault)]) -> PbftParams {
        let mut p = PbftParams::with_replicas(4);
        p.requests = 20;
        p.clients = 2;
        p.time_limit_ms = 10_000.0;
        for &(i, f) in faults {
            p.faults[i] = f;
        }
        p
    }

    #[test]
    fn four_replicas_on_loopback_complete_every_request() {
        let r = live::run(&live_params(&[])).expect("live run");
        assert!(r.liveness_ok && r.safety_ok, "{r:#?}");
        assert_eq!(r.requests_completed, 20);
        assert_eq!(r.mac_failures, 0);
        assert!(r.elapsed_ms < 5_000.0, "{r:#?}");
    }

    #[test]
    fn a_silent_backup_on_loopback_is_tolerated() {
        let r = live::run(&live_params(&[(2, Fault::Silent)])).expect("live run");
        assert!(r.liveness_ok && r.safety_ok, "{r:#?}");
    }

    /// Real timers: the backups' view-change timers replace a primary that never started.
    #[test]
    fn a_crashed_primary_on_loopback_is_replaced() {
        let mut p = live_params(&[(0, Fault::Crash { at_ms: 0.0 })]);
        p.view_change_timeout_ms = 200.0;
        let r = live::run(&p).expect("live run");
        assert!(r.liveness_ok && r.safety_ok, "{r:#?}");
        assert!(r.view_changes >= 1, "{r:#?}");
    }
}
