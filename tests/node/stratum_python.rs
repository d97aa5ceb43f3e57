//! `miner node --stratum` checked by an independent Stratum v1 client: `tests/stratum_conformance.py`
//! (Python standard library only), written from the protocol and issue 15 rather than from the
//! server's code. It subscribes, configures version rolling, authorizes, grinds shares and a block
//! with its own header builder (first checked on the recorded cpuminer vector), and sends
//! malformed and oversized lines, a flood and half-open connections. This test starts the node,
//! runs the script against it and fails with the script's report when any check fails.

use crate::common::{run_bounded, stratum_listen, Node};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn independent_python_client_against_the_stratum_server() {
    // The client needs python3; CI has it, so its absence is a failure, not a skip.
    let python = Command::new("python3").arg("--version").output();
    assert!(
        matches!(&python, Ok(out) if out.status.success()),
        "python3 is needed to run tests/stratum_conformance.py (the independent Stratum client) \
         but `python3 --version` failed: {python:?}; install Python 3"
    );

    let dir = std::env::temp_dir().join(format!("miner-stratum-python-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Chain difficulty 1e5 (bdiff ~2.3e-5): a block takes a Python grind about half a second,
    // while shares at difficulty 1e-6 (~4,300 hashes) are mostly not blocks, so duplicate and
    // low-difficulty answers are not blurred by new tips.
    let child = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args([
            "node",
            "--stratum",
            "127.0.0.1:0",
            "--rpcport",
            "0",
            "--threads",
            "1",
        ])
        .arg("--datadir")
        .arg(&dir)
        .args(["--difficulty", "1e5"])
        .args(["--stratum-difficulty", "1e-6"])
        .args(["--stratum-min-difficulty", "1e-7"])
        .args(["--stratum-max-difficulty", "1e-4"])
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
            if tx.send(line).is_err() {
                // Nobody listens any more: keep draining.
                continue;
            }
        }
    });
    let (banner, listen) = stratum_listen(&rx);
    let (addr, port) = listen
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("`stratum: listening on {listen}` is not ADDR:PORT"));
    assert!(
        port.parse::<u16>().is_ok_and(|p| p != 0),
        "`stratum: listening on {listen}`: not a bound port"
    );

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/stratum_conformance.py");
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(addr.trim_matches(['[', ']']))
        .arg(port);
    let (code, stdout, stderr) = run_bounded(command, Duration::from_secs(300));
    println!("{stdout}");
    eprintln!("{stderr}");
    // What the node logged meanwhile, for the report.
    let log: Vec<String> = rx.try_iter().collect();
    let alive = node.child.try_wait().map(|s| s.is_none()).unwrap_or(false);
    assert!(
        alive,
        "the node exited while the Stratum client ran; its log:\n{banner}{}",
        log.join("\n")
    );
    // Shutdown: a miner connected when the node gets SIGTERM hears `client.reconnect`, and the
    // node exits promptly with miners still connected.
    let shutdown = reconnect_on_shutdown(&mut node, &listen);
    println!("shutdown: {shutdown:?}");
    match code {
        Some(0) => {}
        Some(code) => panic!(
            "tests/stratum_conformance.py failed (exit {code}) against `miner node --stratum {listen}`:\n\
             {stdout}\n{stderr}\nnode log (last lines):\n{}",
            log[log.len().saturating_sub(40)..].join("\n")
        ),
        None => panic!(
            "tests/stratum_conformance.py did not finish within 300 s:\n{stdout}\n{stderr}"
        ),
    }
    if let Err(why) = shutdown {
        panic!("shutdown with a Stratum miner connected: {why}");
    }
}

/// Connects a miner (subscribe, authorize, first notify), sends the node SIGTERM, and returns
/// what the miner heard: Ok when a `client.reconnect` came and the node exited within 15 s.
fn reconnect_on_shutdown(node: &mut Node, listen: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(listen).map_err(|e| format!("connect {listen}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"shutdown-check/1.0\"]}\n\
              {\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"test.shutdown\",\"x\"]}\n",
        )
        .map_err(|e| format!("send subscribe/authorize: {e}"))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut heard = Vec::new();
    let mut read =
        |heard: &mut Vec<String>, until: &dyn Fn(&Value) -> bool| -> Result<(), String> {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) => return Err(format!("connection closed; heard {heard:?}")),
                    Ok(_) => {
                        heard.push(line.trim().to_string());
                        if serde_json::from_str::<Value>(&line).is_ok_and(|v| until(&v)) {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(format!("{e}; heard {heard:?}")),
                }
            }
            Err(format!("nothing matching within 10 s; heard {heard:?}"))
        };
    read(&mut heard, &|v| v["method"] == "mining.notify")
        .map_err(|e| format!("before SIGTERM, no mining.notify: {e}"))?;
    let pid = node.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    if !matches!(killed, Ok(s) if s.success()) {
        return Err(format!("`kill -TERM {pid}` failed: {killed:?}"));
    }
    let sent = Instant::now();
    heard.clear();
    let reconnect = read(&mut heard, &|v| v["method"] == "client.reconnect");
    let exited = loop {
        match node.child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if sent.elapsed() < Duration::from_secs(15) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(None) => break Err("the node was still running 15 s after SIGTERM".to_string()),
            Err(e) => break Err(e.to_string()),
        }
    };
    match (reconnect, exited) {
        (Ok(()), Ok(status)) => Ok(format!(
            "client.reconnect heard ({}), node exited ({status}) {:.0} ms after SIGTERM",
            heard.last().map(String::as_str).unwrap_or(""),
            sent.elapsed().as_secs_f64() * 1000.0
        )),
        (Err(e), _) => Err(format!(
            "after SIGTERM the miner heard no client.reconnect: {e}"
        )),
        (_, Err(e)) => Err(e),
    }
}
