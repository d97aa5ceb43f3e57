//! The stake experiments end to end: a genesis allocation written to a file and read back, the
//! seed's PoS and DPoS run on it, and the file errors a user can cause.

#![cfg(feature = "experiments")]

use miner::experiment::dpos::{self, DposParams};
use miner::experiment::pos::{self, PosParams};
use miner::experiment::stake::{default_genesis, load_genesis, write_genesis, Account, StakeError};
use miner::experiment::stats::gini;
use std::path::PathBuf;

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("miner-stake-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn genesis_file_round_trip_then_pos_and_dpos_on_it() {
    let dir = scratch("roundtrip");
    let path = dir.join("genesis.json");
    let accounts = default_genesis(40, 21);
    write_genesis(&path, &accounts).unwrap();
    let loaded = load_genesis(&path).unwrap();
    assert_eq!(loaded, accounts);

    let mut p = PosParams::new(loaded.clone());
    p.blocks = 1_500;
    let pos = pos::run(&p).unwrap();
    assert_eq!(pos.blocks, 1_500);
    assert_eq!(pos.supply_before, pos.supply_after);
    assert!(pos.chi_square.p_value > 1e-3, "{:?}", pos.chi_square);

    let mut d = DposParams::new(loaded, 21);
    d.rounds = 50;
    let dpos = dpos::run(&d).unwrap();
    // Everyone online: every slot filled, each delegate one block a round.
    assert_eq!(dpos.blocks, 21 * 50);
    assert_eq!(dpos.blocks_gini_producers, 0.0);
    assert_eq!(dpos.blocks_nakamoto_majority, 11);
    assert_eq!(dpos.blocks_nakamoto_third, 8);
    assert_eq!(dpos.irreversible_min_s, Some(14.0 * 0.5));
    // The same stake distribution, two productions: PoS spreads blocks over every holder in
    // proportion to stake, DPoS over the 21 delegates only.
    assert_eq!(pos.stake_gini, dpos.stake_gini);
    let stakes: Vec<u64> = accounts.iter().map(|a| a.balance).collect();
    assert_eq!(pos.stake_gini, gini(&stakes));
    let pos_producers = pos.per_account.iter().filter(|a| a.blocks > 0).count();
    assert!(pos_producers > 21, "{pos_producers} PoS producers");
    assert_eq!(dpos.per_account.iter().filter(|a| a.blocks > 0).count(), 21);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn genesis_file_errors_name_the_problem_and_the_fix() {
    let dir = scratch("errors");
    let missing = dir.join("nope.json");
    let e = load_genesis(&missing).unwrap_err();
    assert!(matches!(e, StakeError::Read { .. }));
    assert!(
        e.to_string().contains("nope.json") && e.to_string().contains("check the path"),
        "{e}"
    );

    let cases: [(&str, &str, &str); 6] = [
        (
            "bad.json",
            "{\"accounts\": [",
            "not a valid genesis allocation",
        ),
        (
            "negative.json",
            r#"{"accounts": [{"name": "a", "balance": -5}]}"#,
            "whole, non-negative balances",
        ),
        ("empty.json", r#"{"accounts": []}"#, "lists no accounts"),
        (
            "zero.json",
            r#"{"accounts": [{"name": "a", "balance": 0}, {"name": "b", "balance": 0}]}"#,
            "add up to 0",
        ),
        (
            "dup.json",
            r#"{"accounts": [{"name": "a", "balance": 1}, {"name": "a", "balance": 2}]}"#,
            "'a' appears twice",
        ),
        (
            "typo.json",
            r#"{"accounts": [{"name": "a", "balanse": 1}]}"#,
            "line 1",
        ),
    ];
    for (file, text, expected) in cases {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        let e = load_genesis(&path).unwrap_err();
        assert!(e.to_string().contains(expected), "{file}: {e}");
        assert!(e.to_string().contains(file), "{file}: {e}");
    }
    let ok = dir.join("ok.json");
    std::fs::write(
        &ok,
        r#"{"accounts": [{"name": "alice", "balance": 1000}, {"name": "bob", "balance": 250}]}"#,
    )
    .unwrap();
    assert_eq!(
        load_genesis(&ok).unwrap(),
        vec![Account::new("alice", 1000), Account::new("bob", 250)]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The figures quoted in the report (`cargo test --release --test experiments -- stake:: --ignored
/// --nocapture`): PoS with 100 default accounts at 10-second blocks, DPoS with N = 21 at 0, 20
/// and 40% offline (with and without voting out), N = 51.
#[test]
#[ignore = "prints figures; run in release"]
fn figures() {
    let accounts = default_genesis(100, 1);
    let start = std::time::Instant::now();
    let r = pos::run(&PosParams::new(accounts.clone())).unwrap();
    println!(
        "PoS 100 accounts, 10 s, {} blocks ({:.2} s): chi2 {:.1} df {} p {:.3} (collision model p {:.3}); interval mean {:.2} s [{:.2}, {:.2}], median {}, p90 {}; kernel hashes/block {:.0} (expected {:.0}); pow hashes/block {:.3e} ratio {:.3e}; blocks gini {:.3} nakamoto(1/2) {} (1/3) {}; stake gini {:.3} nakamoto(1/2) {} (1/3) {}; orphaned {}; final D {:.4e} vs {:.4e}",
        r.blocks,
        start.elapsed().as_secs_f64(),
        r.chi_square.statistic,
        r.chi_square.df,
        r.chi_square.p_value,
        r.chi_square_collisions.p_value,
        r.interval_mean_s,
        r.interval_ci95_s.0,
        r.interval_ci95_s.1,
        r.interval_median_s,
        r.interval_p90_s,
        r.kernel_hashes_per_block,
        r.expected_kernel_hashes_per_block,
        r.pow_hashes_per_block,
        r.pow_to_pos_hash_ratio,
        r.blocks_gini,
        r.blocks_nakamoto_majority,
        r.blocks_nakamoto_third,
        r.stake_gini,
        r.stake_nakamoto_majority,
        r.stake_nakamoto_third,
        r.orphaned,
        r.final_d,
        r.expected_d,
    );
    let cases = [
        (21, 0.0, 0.5),
        (21, 0.2, 0.5),
        (21, 0.2, 1.0),
        (21, 0.4, 1.0),
        (21, 0.4, 0.5),
        (51, 0.0, 0.5),
        (51, 0.2, 1.0),
    ];
    for (n, offline, vote_out) in cases {
        let mut p = DposParams::new(accounts.clone(), n);
        p.rounds = 1_000;
        p.offline_share = offline;
        p.vote_out_missed_share = vote_out;
        let start = std::time::Instant::now();
        let d = dpos::run(&p).unwrap();
        println!(
            "DPoS N={n} offline {offline} vote-out {vote_out} ({:.2} s): irreversible p50 {:?} p99 {:?} mean {:?}; LIB {} of {} blocks; missed {} ({:.3}); voted out {}; recovered after {:?} rounds; {:.2} blocks/s {:.0} tx/s; blocks gini all {:.3} producers {:.3} nakamoto(1/2) {} (1/3) {}",
            start.elapsed().as_secs_f64(),
            d.irreversible_p50_s,
            d.irreversible_p99_s,
            d.irreversible_mean_s,
            d.lib_height,
            d.blocks,
            d.missed_slots,
            d.missed_share,
            d.voted_out.len(),
            d.rounds_to_recover,
            d.blocks_per_s,
            d.txs_per_s,
            d.blocks_gini_all,
            d.blocks_gini_producers,
            d.blocks_nakamoto_majority,
            d.blocks_nakamoto_third,
        );
    }
}
