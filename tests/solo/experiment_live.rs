//! `miner experiment KIND --mode live`: one short live run of each kind, on real nodes (the
//! code of `miner node`, P2P over 127.0.0.1) and real rate-limited miners. Each row's figure
//! must fall in the range the sim gives for a run of that size. The check uses the 99.9% range
//! (`sim_range999`) so that a correct run fails it about once in a thousand per row; the 95%
//! range is what the table shows.

use serde_json::Value;
use std::process::Command;

/// One live run at a time: each is real time on real nodes and rate-limited miners, and four at
/// once on a 2-core machine stretch the relay delays and block times the runs are judged by.
use crate::ONE_AT_A_TIME;

fn live(args: &[&str]) -> Value {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .arg("experiment")
        .args(args)
        .args(["--mode", "live", "--json", "--timeout", "120"])
        .output()
        .expect("run miner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    eprintln!("{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["mode"], "live", "{v}");
    v
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The row's measured figure lies in the sim's 99.9% range, and the 95% range is inside it.
fn in_sim_range(row: &Value, key: &str) {
    let x = f(&row[key]);
    let (lo, hi) = (f(&row["sim_range999"][0]), f(&row["sim_range999"][1]));
    let (lo95, hi95) = (f(&row["sim_range95"][0]), f(&row["sim_range95"][1]));
    assert!(lo <= lo95 && hi95 <= hi, "{row}");
    assert!(
        x >= lo - 1e-9 && x <= hi + 1e-9,
        "{key} = {x} outside the sim's range [{lo}, {hi}]: {row}"
    );
    assert_eq!(
        row["in_sim_range"],
        x >= lo95 - 1e-12 && x <= hi95 + 1e-12,
        "{row}"
    );
}

#[test]
fn live_forks_between_three_nodes_match_the_sim() {
    let v = live(&[
        "forks",
        "--nodes",
        "3",
        "--delay",
        "150",
        "--block-time",
        "0.3",
        "--blocks",
        "40",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert!(f(&row["blocks"]) >= 40.0, "{row}");
    assert_eq!(row["tips_agree"], true, "{row}");
    // Real delays fork the chain: with 150 ms on 0.3 s blocks a third of the blocks go stale
    // in the sim; none at all would mean the delay was not applied.
    assert!(f(&row["stale"]) >= 1.0, "{row}");
    in_sim_range(row, "stale_rate");
    // The difficulty sets the pace: hash rate × block time hashes per block.
    let interval = f(&row["block_interval_s"]);
    assert!(interval > 0.1 && interval < 0.9, "{row}");
}

#[test]
fn live_double_spend_races_match_the_sim_and_a_majority_always_wins() {
    let v = live(&[
        "double-spend",
        "--attacker",
        "0.3,0.6",
        "--confirmations",
        "1",
        "--trials",
        "6",
        "--block-time",
        "0.2",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(f(&row["trials"]), 6.0, "{row}");
        in_sim_range(row, "p");
        assert!(f(&row["exact"]) > 0.0 && f(&row["nakamoto"]) > 0.0, "{row}");
    }
    // q = 0.6 out-mines the honest side: the sim's failures (falling 5 behind right after
    // the merchant accepts) are rare, and the live range allows at most one.
    assert!(f(&rows[1]["p"]) >= 5.0 / 6.0, "{}", rows[1]);
    assert!(f(&rows[1]["mean_attack_s"]) > 0.0, "{}", rows[1]);
}

#[test]
fn live_finality_races_match_the_sim() {
    let v = live(&[
        "finality",
        "--attacker",
        "0.3",
        "--depth",
        "1",
        "--trials",
        "8",
        "--block-time",
        "0.2",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(f(&rows[0]["trials"]), 8.0, "{}", rows[0]);
    in_sim_range(&rows[0], "p");
}

#[test]
fn live_selfish_pool_matches_the_sim() {
    let v = live(&[
        "selfish",
        "--alpha",
        "0.35",
        "--gamma",
        "0.5",
        "--blocks",
        "50",
        "--block-time",
        "0.4",
        "--relay-delay",
        "100",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(f(&row["gamma_effective"]), 0.5, "{row}");
    assert_eq!(row["tips_agree"], true, "{row}");
    // The main chain holds the pool's blocks and the honest ones, fewer than were found
    // (the pool's strategy orphans blocks on both sides).
    let (main, found) = (f(&row["main_chain"]), f(&row["blocks"]));
    assert!(main >= 20.0 && main < found, "{row}");
    assert!(f(&row["pool_blocks"]) >= 1.0, "{row}");
    in_sim_range(row, "revenue");
}
