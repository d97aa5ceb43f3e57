//! Crash safety: `miner mine --datadir` is killed with SIGKILL at arbitrary moments, many times;
//! every block it had printed (printed only after the store committed it) must be in the store
//! when it is reopened, and the store must open cleanly every time.

use miner::chain::{Chain, ChainParams};
use miner::pow::retarget::{Algorithm, RetargetParams};
use miner::pow::Difficulty;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn display_to_raw(hex_str: &str) -> [u8; 32] {
    let mut b: [u8; 32] = hex::decode(hex_str).unwrap().try_into().unwrap();
    b.reverse();
    b
}

#[test]
fn blocks_printed_before_a_kill_9_are_in_the_store() {
    let dir = std::env::temp_dir().join(format!("miner-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The rules `mine -d 2e4` uses: fixed difficulty, the default 10 s spacing.
    let rules = RetargetParams {
        algorithm: Algorithm::Fixed,
        spacing: 10,
        pow_limit: ChainParams::regtest().pow_limit,
        initial: "2e4"
            .parse::<Difficulty>()
            .unwrap()
            .to_target()
            .to_compact_lossy(),
    };
    let mut acknowledged: Vec<String> = Vec::new();
    let mut heights_seen = 0;
    let mut kill_points = Vec::new();
    for round in 0..8u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_miner"))
            .args(["mine", "-d", "2e4", "--json", "--threads", "1", "--datadir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start miner");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Kill at a different moment each round: after 5, 10, ..., 40 acknowledged blocks (or
        // 10 s, on a machine too loaded to get there).
        let wanted = 5 + 5 * round as usize;
        let started = Instant::now();
        let mut got = 0;
        while got < wanted && started.elapsed() < Duration::from_secs(10) {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                let v: Value = serde_json::from_str(&line).unwrap();
                if v["type"] == "block" {
                    acknowledged.push(v["hash"].as_str().unwrap().to_string());
                    got += 1;
                }
            }
        }
        child.kill().expect("SIGKILL"); // Rust's kill() sends SIGKILL on Unix
        let _ = child.wait();
        kill_points.push(got);
        // Lines already in the pipe were printed before the kill: they count too.
        reader.join().unwrap();
        while let Ok(line) = rx.try_recv() {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["type"] == "block" {
                acknowledged.push(v["hash"].as_str().unwrap().to_string());
            }
        }
        let path = Chain::store_path(&dir, &ChainParams::regtest(), &rules);
        let chain = Chain::open(&path, ChainParams::regtest(), rules.clone())
            .unwrap_or_else(|e| panic!("round {round}: store did not reopen: {e}"));
        for hash in &acknowledged {
            assert!(
                chain.by_hash(&display_to_raw(hash)).is_some(),
                "round {round}: lost {hash}"
            );
        }
        assert!(
            chain.height() as usize >= heights_seen,
            "the tip went backwards"
        );
        heights_seen = chain.height() as usize;
    }
    assert!(
        acknowledged.len() >= 40,
        "only {} blocks acknowledged",
        acknowledged.len()
    );
    // The kills did land at spread-out points of a run, from a few blocks in to dozens.
    let (fewest, most) = (
        kill_points.iter().min().copied().unwrap_or(0),
        kill_points.iter().max().copied().unwrap_or(0),
    );
    assert!(
        fewest <= 10 && most >= 30,
        "kills after {kill_points:?} blocks: not spread over 5..40"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
