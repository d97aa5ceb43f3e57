//! PBFT (`miner::experiment::pbft`): safety and liveness with up to f faulty replicas of each
//! kind, both failing once the faulty replicas reach N/3 (the seed's "why N = 3f + 1", shown by
//! runs), MAC rejection, checkpoints bounding the log, O(N²) messages, determinism, and the
//! same state machine on loopback TCP.

use miner::experiment::pbft::{
    decode_message, encode_message, sim, Audience, Client, Config, Fault, Message, Node,
    PbftParams, PbftResult, PrePrepare, Replica, Signed,
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
    assert!(e.contains("faults"), "{e}");
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
}

#[test]
fn zz_dump() {
    let c = Fault::Collude;
    let cases: Vec<(&str, PbftParams)> = vec![
        ("n4", params(4, &[])),
        ("n7", params(7, &[])),
        ("n4 silent", params(4, &[(3, Fault::Silent)])),
        (
            "n4 crash primary",
            params(4, &[(0, Fault::Crash { at_ms: 0.0 })]),
        ),
        (
            "n7 crash primary+silent",
            params(7, &[(0, Fault::Crash { at_ms: 0.0 }), (4, Fault::Silent)]),
        ),
        ("n4 equiv", params(4, &[(0, Fault::Equivocate)])),
        (
            "n7 equiv",
            params(7, &[(0, Fault::Equivocate), (5, Fault::Silent)]),
        ),
        ("n4 wd primary", params(4, &[(0, Fault::WrongDigest)])),
        ("n4 wd", params(4, &[(2, Fault::WrongDigest)])),
        ("n4 collude1", params(4, &[(0, c)])),
        ("n4 collude2", params(4, &[(0, c), (1, c)])),
        (
            "n6 collude q4",
            PbftParams {
                quorum: Some(4),
                ..params(6, &[(0, c), (1, c)])
            },
        ),
        (
            "n3 silent q3",
            PbftParams {
                quorum: Some(3),
                time_limit_ms: 10_000.0,
                ..params(3, &[(2, Fault::Silent)])
            },
        ),
        ("n4 delay", params(4, &[(3, Fault::Delay { ms: 150.0 })])),
    ];
    for (name, p) in cases {
        let r = sim::run(&p);
        println!("{name}: safe {} live {} done {}/{} vc {} view {} msgs/req {:.1} p50 {:.1} p99 {:.1} mean {:.1} log {} h {} mac {} rej {} st {} viol {:?} by type {:?}",
            r.safety_ok, r.liveness_ok, r.requests_completed, r.requests_issued, r.view_changes, r.final_view, r.messages_per_request, r.latency_p50_ms, r.latency_p99_ms, r.latency_mean_ms, r.max_log_len, r.stable_checkpoint, r.mac_failures, r.rejected, r.state_transfers, r.first_violation, r.messages);
    }
    for n in [4, 7, 10, 13] {
        let mut p = PbftParams::with_replicas(n);
        p.requests = 100;
        p.clients = 1;
        let r = sim::run(&p);
        println!(
            "table n {n}: msgs/req {:.1} ratio {:.3} p50 {:.1} p99 {:.1}",
            r.messages_per_request,
            r.messages_per_request / (n * n) as f64,
            r.latency_p50_ms,
            r.latency_p99_ms
        );
    }
}

#[test]
fn zz_sweep() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let kinds = [
        Fault::Silent,
        Fault::Crash { at_ms: 0.0 },
        Fault::Crash { at_ms: 300.0 },
        Fault::WrongDigest,
        Fault::Equivocate,
        Fault::Collude,
        Fault::Delay { ms: 80.0 },
    ];
    let mut bad = 0;
    for trial in 0..400 {
        let n = [4usize, 5, 7, 10][rng.gen_range(0..4)];
        let f = (n - 1) / 3;
        let mut p = PbftParams::with_replicas(n);
        p.seed = trial;
        p.requests = 80;
        p.clients = rng.gen_range(1..5);
        p.checkpoint_interval = [2, 5, 16][rng.gen_range(0..3)];
        p.window = p.checkpoint_interval * rng.gen_range(1..4);
        p.jitter_ms = [0.0, 5.0, 30.0][rng.gen_range(0..3)];
        p.view_change_timeout_ms = [60.0, 150.0, 500.0][rng.gen_range(0..3)];
        p.time_limit_ms = 120_000.0;
        let k = rng.gen_range(0..=f);
        for _ in 0..k {
            let i = rng.gen_range(0..n);
            p.faults[i] = kinds[rng.gen_range(0..kinds.len())];
        }
        let r = sim::run(&p);
        if !r.safety_ok || !r.liveness_ok {
            bad += 1;
            println!("BAD trial {trial} n {n} faults {:?} k {} L {} jit {} to {} clients {}: safe {} live {} done {}/{} vc {} view {} st {}",
                p.faults.iter().map(|f| f.to_string()).collect::<Vec<_>>(), p.checkpoint_interval, p.window, p.jitter_ms, p.view_change_timeout_ms, p.clients, r.safety_ok, r.liveness_ok, r.requests_completed, p.requests, r.view_changes, r.final_view, r.state_transfers);
        }
    }
    println!("bad {bad}");
}

#[test]
fn zz_one() {
    let mut p = PbftParams::with_replicas(4);
    p.seed = 169;
    p.requests = 80;
    p.clients = 3;
    p.checkpoint_interval = 2;
    p.window = 4;
    p.jitter_ms = 30.0;
    p.view_change_timeout_ms = 60.0;
    p.time_limit_ms = 120_000.0;
    let r = sim::run(&p);
    println!("RESULT {r:?}");
}
