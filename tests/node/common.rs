//! Helpers more than one test file of this binary uses.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the node (and removes its data directory) however the test ends.
pub struct Node {
    pub child: Child,
    pub dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command` to completion or `limit`, whichever comes first; returns (exit code or None
/// when it was killed at the limit, stdout, stderr).
pub fn run_bounded(mut command: Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code().or(Some(-1)),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    (code, stdout, stderr)
}

/// Reads the node's output lines from `rx` until it prints `stratum: listening on ADDR:PORT`
/// (at most 30 s; panics with what it printed otherwise) and returns what it printed up to
/// then and ADDR:PORT.
pub fn stratum_listen(rx: &std::sync::mpsc::Receiver<String>) -> (String, String) {
    let mut banner = String::new();
    let mut listen = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while listen.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(rest) = line.strip_prefix("stratum: listening on ") {
                    listen = Some(rest.trim().to_string());
                }
            }
            Err(_) => break,
        }
    }
    let listen = listen.unwrap_or_else(|| {
        panic!("the node did not print `stratum: listening on ADDR:PORT` within 30 s; it said:\n{banner}")
    });
    (banner, listen)
}
