//! `miner experiment`: the command's JSON interface, files and errors, on small runs. The
//! figures' agreement with the published results is tested where they are computed
//! (src/experiment/*.rs) with enough trials; here a run must be well-formed, seeded and honest.

use serde_json::Value;
use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .arg("experiment")
        .args(args)
        .output()
        .expect("run miner");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, stdout, stderr) = run(&all);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn double_spend_rows_carry_the_interface_fields_and_nakamotos_published_values() {
    let args = [
        "double-spend",
        "--attacker",
        "0.1,0.6",
        "--confirmations",
        "1,5",
        "--trials",
        "3000",
        "--seed",
        "7",
    ];
    let v = json(&args);
    assert_eq!(v["kind"], "double-spend");
    assert_eq!(v["mode"], "sim");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    for row in rows {
        for key in ["q", "z", "p", "ci95", "trials", "nakamoto", "exact"] {
            assert!(!row[key].is_null(), "{key} missing: {row}");
        }
        let (p, lo, hi) = (f(&row["p"]), f(&row["ci95"][0]), f(&row["ci95"][1]));
        assert!(lo <= p && p <= hi && (0.0..=1.0).contains(&p), "{row}");
        assert_eq!(row["trials"], 3000);
    }
    // Nakamoto's §11 table: q = 0.1, z = 5 → 0.0009137.
    let q1z5 = rows
        .iter()
        .find(|r| f(&r["q"]) == 0.1 && r["z"] == 5)
        .expect("q 0.1 z 5");
    assert!((f(&q1z5["nakamoto"]) - 0.0009137).abs() < 5e-8, "{q1z5}");
    // The 51% attack always succeeds.
    for r in rows.iter().filter(|r| f(&r["q"]) == 0.6) {
        assert_eq!(f(&r["p"]), 1.0, "{r}");
    }
    // The same seed gives the same figures.
    let again = json(&args);
    assert_eq!(again["rows"], v["rows"]);
    assert!(f(&v["blocks"]) > 0.0);
}

#[test]
fn finality_rows_and_files() {
    let dir = std::env::temp_dir().join(format!("miner-experiment-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv = dir.join("f.csv");
    let svg = dir.join("f.svg");
    let (ok, stdout, stderr) = run(&[
        "finality",
        "--attacker",
        "0.2",
        "--depth",
        "1,2",
        "--trials",
        "2000",
        "--csv",
        csv.to_str().unwrap_or_default(),
        "--svg",
        svg.to_str().unwrap_or_default(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("theory"), "{stdout}");
    let table = std::fs::read_to_string(&csv).expect("csv written");
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("q,depth,p,ci95,trials,theory"));
    assert_eq!(lines.count(), 2);
    let picture = std::fs::read_to_string(&svg).expect("svg written");
    assert!(picture.starts_with("<svg") && picture.trim_end().ends_with("</svg>"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_live_rates_and_bad_shares_are_refused_with_the_fix_named() {
    let (ok, _, stderr) = run(&["double-spend", "--mode", "live", "--hashrate", "10"]);
    assert!(!ok);
    assert!(stderr.contains("at least 100 H/s"), "{stderr}");
    let (ok, _, stderr) = run(&[
        "forks",
        "--mode",
        "live",
        "--hashrate",
        "100",
        "--block-time",
        "0.01",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("raise --hashrate or --block-time"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&["double-spend", "--attacker", "1.5"]);
    assert!(!ok);
    assert!(stderr.contains("between 0 and 1"), "{stderr}");
    let (ok, _, stderr) = run(&["selfish", "--gamma", "2"]);
    assert!(!ok);
    assert!(stderr.contains("from 0 to 1"), "{stderr}");
}

#[test]
fn forks_and_selfish_rows_carry_the_interface_fields() {
    let v = json(&[
        "forks",
        "--nodes",
        "4",
        "--delay",
        "0,20000",
        "--block-time",
        "600",
        "--blocks",
        "3000",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    for key in ["delay_ms", "stale_rate", "ci95", "theory"] {
        assert!(!rows[0][key].is_null(), "{key}: {}", rows[0]);
    }
    // No delay, no forks.
    assert_eq!(f(&rows[0]["stale_rate"]), 0.0);
    assert!(f(&rows[1]["stale_rate"]) > 0.0, "{}", rows[1]);
    let v = json(&[
        "selfish", "--alpha", "0.2,0.45", "--gamma", "0", "--blocks", "20000",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    for key in ["alpha", "gamma", "revenue", "ci95", "theory"] {
        assert!(!rows[0][key].is_null(), "{key}: {}", rows[0]);
    }
    // Below the threshold selfish mining loses; well above it, it pays.
    assert!(f(&rows[0]["revenue"]) < 0.2, "{}", rows[0]);
    assert!(f(&rows[1]["revenue"]) > 0.45, "{}", rows[1]);
    assert!(v["thresholds"][0]["theory"].as_f64().is_some());
}
