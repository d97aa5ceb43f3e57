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

// ------------------------------------------------------------------------------------------
// The other consensus systems (pos, dpos, pbft) and the comparison.

#[test]
fn pos_rows_report_the_stake_test_the_interval_and_the_hash_ratio() {
    let dir = std::env::temp_dir().join(format!("miner-pos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let genesis = dir.join("genesis.json");
    let csv = dir.join("pos.csv");
    let svg = dir.join("pos.svg");
    let v = json(&[
        "pos",
        "--accounts",
        "40",
        "--blocks",
        "1500",
        "--pow-hashrate",
        "1M",
        "--write-genesis",
        genesis.to_str().expect("path"),
        "--csv",
        csv.to_str().expect("path"),
        "--svg",
        svg.to_str().expect("path"),
    ]);
    assert_eq!(v["kind"], "pos");
    let row = &v["rows"][0];
    assert_eq!(row["blocks"], 1500);
    assert_eq!(row["accounts"], 40);
    // Blocks follow stake: the χ² test does not reject at 0.001.
    assert!(f(&row["p_value"]) > 0.001, "{row}");
    // One try per account per second: about 40 × 10 hashes a block; PoW at 1 MH/s × 10 s.
    let per_block = f(&row["kernel_hashes_per_block"]);
    assert!((320.0..480.0).contains(&per_block), "{row}");
    assert_eq!(f(&row["pow_hashes_per_block"]), 1e7);
    assert!(
        (f(&row["pow_to_pos"]) - 1e7 / per_block).abs() < 1.0,
        "{row}"
    );
    assert_eq!(row["supply_before"], row["supply_after"]);
    assert_eq!(v["per_account"].as_array().map(Vec::len), Some(40));
    // The genesis written can be read back and gives the same run.
    let again = json(&[
        "pos",
        "--genesis",
        genesis.to_str().expect("path"),
        "--blocks",
        "1500",
        "--pow-hashrate",
        "1M",
    ]);
    assert_eq!(again["rows"][0]["chi_square"], row["chi_square"]);
    assert!(std::fs::read_to_string(&csv)
        .expect("csv")
        .starts_with("accounts,blocks"));
    assert!(std::fs::read_to_string(&svg).expect("svg").contains("<svg"));
    // A bad genesis file is named, with the problem.
    std::fs::write(&genesis, "{\"accounts\": []}").expect("write");
    let (ok, _, stderr) = run(&["pos", "--genesis", genesis.to_str().expect("path")]);
    assert!(!ok);
    assert!(stderr.contains("--genesis"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dpos_rows_show_irreversibility_stop_past_a_third_offline() {
    let v = json(&[
        "dpos",
        "--delegates",
        "21",
        "--offline",
        "0,0.2,0.4",
        "--rounds",
        "50",
        "--pos-blocks",
        "200",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    // No one offline: irreversible after ⌊2N/3⌋ = 14 slots at least (0.5 s each).
    assert!(f(&rows[0]["irreversible_p50_s"]) >= 7.0, "{}", rows[0]);
    assert_eq!(rows[0]["confirmations_needed"], 15);
    // 20% (4 of 21) offline: slower; 40% (8 of 21) offline: nothing becomes irreversible.
    assert!(f(&rows[1]["irreversible_p50_s"]) > f(&rows[0]["irreversible_p50_s"]));
    assert_eq!(rows[2]["irreversible_blocks"], 0, "{}", rows[2]);
    assert!(rows[2]["irreversible_p50_s"].is_null());
    for row in rows {
        assert!(f(&row["blocks_gini"]) > 0.0 && !row["pos_blocks_gini"].is_null());
    }
    // Voting out replaces the offline delegates and irreversibility resumes.
    let v = json(&[
        "dpos",
        "--delegates",
        "21",
        "--offline",
        "0.4",
        "--rounds",
        "50",
        "--vote-out",
        "0.5",
        "--pos-blocks",
        "0",
    ]);
    let row = &v["rows"][0];
    assert_eq!(row["voted_out"], 8, "{row}");
    assert!(f(&row["irreversible_blocks"]) > 0.0, "{row}");
    let (ok, _, stderr) = run(&["dpos", "--delegates", "101", "--accounts", "50"]);
    assert!(!ok && stderr.contains("101"), "{stderr}");
}

#[test]
fn pbft_keeps_safety_and_liveness_up_to_f_and_loses_one_past_it() {
    let v = json(&["pbft", "--replicas", "4,7", "--requests", "40"]);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 6, "faulty 0, f, f+1 for each N");
    for row in rows {
        let tolerated = row["faulty"].as_u64() <= row["f"].as_u64();
        assert_eq!(row["safety_ok"], true, "{row}");
        assert_eq!(row["liveness_ok"], tolerated, "{row}");
    }
    // Messages per request grow with N²: PREPARE and COMMIT go all to all.
    let m4 = f(&rows[0]["messages_per_request"]);
    let m7 = f(&rows[3]["messages_per_request"]);
    assert!(m7 / m4 > 2.0, "{m4} {m7}");
    // Two colluding Byzantine replicas of 4 (the primary equivocating) break safety.
    let v = json(&[
        "pbft",
        "--replicas",
        "4",
        "--faulty",
        "2",
        "--fault",
        "collude",
        "--requests",
        "20",
    ]);
    assert_eq!(v["rows"][0]["safety_ok"], false, "{}", v["rows"][0]);
    // The same replicas over loopback TCP.
    let v = json(&[
        "pbft",
        "--mode",
        "live",
        "--replicas",
        "4",
        "--faulty",
        "0,1",
        "--requests",
        "10",
    ]);
    assert_eq!(v["mode"], "live");
    for row in v["rows"].as_array().expect("rows") {
        assert_eq!(row["liveness_ok"], true, "{row}");
        assert_eq!(row["requests_completed"], 10, "{row}");
    }
    let (ok, _, stderr) = run(&["pbft", "--fault", "sleepy"]);
    assert!(!ok && stderr.contains("sleepy"), "{stderr}");
    let (ok, _, stderr) = run(&["pbft", "--replicas", "4", "--faulty", "9"]);
    assert!(!ok && stderr.contains("--faulty"), "{stderr}");
}

#[test]
fn compare_prints_every_system_with_finite_columns() {
    let v = json(&[
        "compare",
        "--accounts",
        "30",
        "--blocks",
        "300",
        "--requests",
        "30",
        "--pow-blocks",
        "3",
        "--pow-difficulty",
        "20000",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    let systems: Vec<&str> = rows.iter().filter_map(|r| r["system"].as_str()).collect();
    assert_eq!(systems, ["PoW", "PoS", "DPoS", "PBFT"]);
    for row in rows {
        for key in [
            "blocks_per_s",
            "tx_per_s",
            "finality_s",
            "hashes_per_block",
            "messages_per_block",
            "fault_tolerance",
            "nakamoto_coefficient",
        ] {
            let x = f(&row[key]);
            assert!(x.is_finite() && x > 0.0, "{key}: {row}");
        }
    }
    // PoW spends far more hashes a block than PoS; PBFT finalises far sooner than PoW.
    assert!(f(&rows[0]["hashes_per_block"]) > 100.0 * f(&rows[1]["hashes_per_block"]));
    assert!(f(&rows[3]["finality_s"]) < f(&rows[0]["finality_s"]) / 100.0);
    assert_eq!(v["pow_run"]["blocks"], 3);
}

/// Where `text` is not well-formed XML: the parser's complaint.
fn xml_error(text: &str) -> Option<String> {
    roxmltree::Document::parse(text)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn every_svg_the_experiments_write_is_valid_xml() {
    let dir = std::env::temp_dir().join(format!("miner-svg-xml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let runs: [(&str, &[&str]); 7] = [
        (
            "double-spend",
            &[
                "--attacker",
                "0.1,0.3",
                "--confirmations",
                "1,2",
                "--trials",
                "200",
            ],
        ),
        (
            "finality",
            &["--attacker", "0.2", "--depth", "1,2", "--trials", "200"],
        ),
        (
            "forks",
            &[
                "--nodes",
                "3",
                "--delay",
                "1000",
                "--blocks",
                "50",
                "--diagram-blocks",
                "10",
            ],
        ),
        ("selfish", &["--alpha", "0.2,0.4", "--blocks", "2000"]),
        ("pos", &["--accounts", "20", "--blocks", "300"]),
        (
            "dpos",
            &[
                "--accounts",
                "60",
                "--delegates",
                "5",
                "--rounds",
                "3",
                "--pos-blocks",
                "0",
            ],
        ),
        ("pbft", &["--replicas", "4", "--requests", "5"]),
    ];
    for (kind, args) in runs {
        let svg = dir.join(format!("{kind}.svg"));
        let mut all = vec![kind];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--svg", svg.to_str().expect("path")]);
        let (ok, _, stderr) = run(&all);
        assert!(ok, "{all:?}: {stderr}");
        let text = std::fs::read_to_string(&svg).expect("svg written");
        if let Some(e) = xml_error(&text) {
            panic!("{kind} --svg writes invalid XML: {e}");
        }
    }
    // retarget-sim draws its chart with plotters.
    let svg = dir.join("retarget.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["retarget-sim", "--blocks", "300", "--svg"])
        .arg(&svg)
        .output()
        .expect("run miner");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert_eq!(xml_error(&text), None, "retarget-sim --svg");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_svg_under_docs_is_valid_xml() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&docs).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "svg") {
            let text = std::fs::read_to_string(&path).expect("read");
            if let Some(e) = xml_error(&text) {
                panic!("{} is not valid XML: {e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} SVGs under docs/");
}

#[test]
fn svg_text_is_escaped() {
    assert_eq!(
        miner::experiment::chart::xml_text(r#"Eyal & Sirer <"a'">"#),
        "Eyal &amp; Sirer &lt;&quot;a&apos;&quot;&gt;"
    );
}
