//! `miner node --stratum` mined by a model of a stock miner: `tests/stratum_stocklike.py`
//! (Python standard library only), written from the Stratum v1 protocol alone, not from the
//! server's code. Like pooler's minerd 2.5.1 and cpuminer-opt, it applies `mining.set_difficulty`
//! only from the next `mining.notify`: work on the current job goes on at the difficulty in force
//! when that job came. A pool that judges each share at the difficulty of its job (and sends a
//! fresh job after a change) rejects none of its shares; one that judges shares at a raised
//! difficulty before any new job answers "Low difficulty share" (23) after every vardiff raise.
//!
//! The test starts the node with a share interval of 1 s and a low starting difficulty, so that
//! vardiff raises the difficulty several times while the client mines (~20 s, its hash rate
//! capped at 150 kH/s), and asserts: no share of the client rejected (in particular none with
//! 23), at least 2 raises, at least 10 shares accepted, an accepted share sent again answered 22
//! (check a), the same 80-byte header (a share of the earlier job with its ntime rolled to the
//! refreshed job's) sent again under a refreshed job's id answered 22 (check b), an accepted share
//! with its own ntime under the refreshed job's id not accepted, and a share below the
//! difficulty in force answered 23 (check c).

use crate::common::{run_bounded, stratum_listen, Node};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Seconds the client mines.
const DURATION_S: u64 = 20;
/// Seconds between refreshed jobs asked of the node when it has `--stratum-refresh`.
const REFRESH_S: u64 = 8;
/// Without `--stratum-refresh`, the node refreshes the job every 30 s: check b waits up to this.
const DEFAULT_REFRESH_WAIT_S: u64 = 40;
/// The client's hash-rate cap (hashes per second): keeps the machine's load and the share rate
/// bounded whatever the CPU.
const MAX_HASHRATE: u64 = 150_000;
/// Accepted shares required of the run.
const MIN_ACCEPTED: u64 = 10;

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn a_stock_miner_applying_difficulty_at_the_next_job_gets_no_low_difficulty_rejects() {
    // The client needs python3; CI has it, so its absence is a failure, not a skip.
    let python = Command::new("python3").arg("--version").output();
    assert!(
        matches!(&python, Ok(out) if out.status.success()),
        "python3 is needed to run tests/stratum_stocklike.py (the stock-miner model) but \
         `python3 --version` failed: {python:?}; install Python 3"
    );

    // `--stratum-refresh SECS` (the refreshed job's period) is newer than the server; without it
    // check b waits for the default 30 s refresh.
    let help = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["node", "--help"])
        .output()
        .expect("run miner node --help");
    let has_refresh = String::from_utf8_lossy(&help.stdout).contains("--stratum-refresh");

    let dir = std::env::temp_dir().join(format!("miner-stratum-stocklike-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Chain difficulty 1e9 (bdiff ~0.23): no share of a Python grind is a block, so the tip and
    // the job's content stay put. Shares start at 3e-7 (~1,300 hashes), so at 150 kH/s the
    // client sends ~115 shares a second against a 1 s interval: vardiff raises the difficulty
    // (16x at most a step) toward ~3.5e-5, twice or more as long as the client hashes above
    // ~25 kH/s (Python's hashlib does ~400 kH/s on one core); the ceiling 1e-4 bounds a share's
    // cost.
    let mut command = Command::new(env!("CARGO_BIN_EXE_miner"));
    command
        .args(["node", "--stratum", "127.0.0.1:0", "--rpcport", "0"])
        .arg("--datadir")
        .arg(&dir)
        .args(["--difficulty", "1e9"])
        .args(["--stratum-difficulty", "3e-7"])
        .args(["--stratum-min-difficulty", "1e-7"])
        .args(["--stratum-max-difficulty", "1e-4"])
        .args(["--stratum-share-interval", "1"]);
    if has_refresh {
        command.args(["--stratum-refresh", &REFRESH_S.to_string()]);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start miner node");
    let mut node = Node { child, dir };

    let stderr = node.child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // Reads the node's stderr to the end (so it never blocks on a full pipe), forwarding lines.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // Nobody listening any more is fine: keep draining.
            let _ = tx.send(line);
        }
    });
    let (banner, listen) = stratum_listen(&rx);
    let (addr, port) = listen
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("`stratum: listening on {listen}` is not ADDR:PORT"));

    let max_duration = if has_refresh {
        DURATION_S
    } else {
        DEFAULT_REFRESH_WAIT_S
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/stratum_stocklike.py");
    let mut python = Command::new("python3");
    python
        .arg(&script)
        .arg(addr.trim_matches(['[', ']']))
        .arg(port)
        .args(["--duration", &DURATION_S.to_string()])
        .args(["--max-duration", &max_duration.to_string()])
        .args(["--max-hashrate", &MAX_HASHRATE.to_string()])
        .args(["--checks", "abc"]);
    let (code, stdout, stderr) = run_bounded(python, Duration::from_secs(max_duration + 30));
    let log: Vec<String> = rx.try_iter().collect();
    let node_log = log[log.len().saturating_sub(30)..].join("\n");
    let alive = node.child.try_wait().map(|s| s.is_none()).unwrap_or(false);
    assert!(
        alive,
        "the node exited while the stock-miner client ran; its log:\n{banner}{node_log}"
    );
    let report: Value = match (
        code,
        stdout.lines().last().map(serde_json::from_str::<Value>),
    ) {
        (Some(0), Some(Ok(report))) => report,
        _ => panic!(
            "tests/stratum_stocklike.py did not complete (exit {code:?}; None: killed after {} s) \
             against `miner node --stratum {listen}`:\nstdout: {stdout}\nstderr (last lines):\n{}\n\
             node log (last lines):\n{node_log}",
            max_duration + 30,
            tail(&stderr, 40)
        ),
    };
    println!("{report:#}");

    let n = |key: &str| report[key].as_u64().unwrap_or(0);
    let sent = n("shares_sent");
    let accepted = n("accepted");
    let rejected_total = n("rejected_total");
    let low_difficulty = report["rejected"]["23"].as_u64().unwrap_or(0);
    let raises = n("raises");
    let check = |c: &str| report["checks"][c]["answer"].clone();
    let summary = format!(
        "shares sent {sent}, accepted {accepted}, rejected {rejected_total} (by code {}; 23 = low \
         difficulty: {low_difficulty}), unanswered {}; difficulty raises {raises}, lowers {} \
         (difficulties seen {}); notifies {} (clean {}, refreshed {}); hash rate {} H/s over {} s; \
         check a (resubmit) answered {}, check b (same header under a refreshed job) {} (the \
         earlier job's share with its own ntime under it: {}), check c (below the difficulty in \
         force) {}{}",
        report["rejected"],
        n("unanswered"),
        n("lowers"),
        report["difficulties_seen"],
        n("notifies"),
        n("clean_notifies"),
        n("refresh_notifies"),
        n("hashrate_hs"),
        report["elapsed_s"],
        check("a"),
        check("b"),
        report["checks"]["b_old_ntime"]["answer"],
        check("c"),
        if has_refresh {
            format!(" (node run with --stratum-refresh {REFRESH_S})")
        } else {
            " (node has no --stratum-refresh: check b waited for the default 30 s refresh)"
                .to_string()
        },
    );
    println!("{summary}");

    let mut failures = Vec::new();
    if low_difficulty > 0 {
        failures.push(format!(
            "{low_difficulty} of {sent} shares were rejected as low difficulty (23), though each \
             met the difficulty in force when its job was sent; first rejects: {}",
            Value::Array(
                report["rejects_first"]
                    .as_array()
                    .map(|r| r.iter().take(3).cloned().collect())
                    .unwrap_or_default()
            )
        ));
    }
    if rejected_total > low_difficulty {
        failures.push(format!(
            "{} shares were rejected with other codes: {}",
            rejected_total - low_difficulty,
            report["rejected"]
        ));
    }
    if raises < 2 {
        failures.push(format!(
            "vardiff raised the difficulty {raises} times (at least 2 expected at a 1 s interval)"
        ));
    }
    if accepted < MIN_ACCEPTED {
        failures.push(format!(
            "{accepted} shares accepted (at least {MIN_ACCEPTED} expected)"
        ));
    }
    for (c, want, what) in [
        ("a", 22, "an accepted share sent again under its own job"),
        (
            "b",
            22,
            "an accepted share's header sent again under a refreshed job's id",
        ),
        ("c", 23, "a share below the difficulty in force"),
    ] {
        if check(c).as_u64() != Some(want) {
            failures.push(format!(
                "check {c}: {what} was answered {} (want {want}); check state: {}",
                check(c),
                report["checks"][c]
            ));
        }
    }
    // The literal resubmission (the accepted share, its older ntime, under the refreshed job's
    // id): any rejection is right (22, or 20 when the job's ntime is the lowest allowed);
    // acceptance credits one header twice.
    let old_ntime = &report["checks"]["b_old_ntime"];
    if old_ntime["answer"] == Value::Bool(true) {
        failures.push(format!(
            "check b (old ntime): an accepted share sent again under a refreshed job's id was \
             accepted again: {old_ntime}"
        ));
    }
    assert!(
        failures.is_empty(),
        "the stock-miner model against `miner node --stratum`:\n- {}\n\n{summary}\n\nclient log \
         (last lines):\n{}\n\nnode log (last lines):\n{node_log}",
        failures.join("\n- "),
        tail(&stderr, 25)
    );
}
