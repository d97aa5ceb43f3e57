//! `miner node` under a small file-descriptor limit (`ulimit -n`, set by `sh` before the node
//! starts): the node raises its soft limit toward the hard one, derives its connection caps from
//! what it has, prints them, keeps the RPC answering while idle miners fill Stratum, and refuses
//! a cap that cannot fit, naming the numbers.

use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `sh -c 'ulimit ...; exec miner node ...'`: the limit applies to the node alone.
fn node_command(ulimit: &str, dir: &std::path::Path, extra: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "{ulimit} && exec \"$0\" node --rpcport 0 --threads 1 -d 1e9 --stratum 0 --datadir \"$1\" {extra}"
    ));
    cmd.arg(env!("CARGO_BIN_EXE_miner")).arg(dir);
    cmd
}

struct Node {
    child: Child,
    rpc: String,
    stratum: String,
    auth: String,
    banner: String,
    dir: std::path::PathBuf,
}

impl Node {
    fn start(name: &str, ulimit: &str) -> Node {
        let dir = std::env::temp_dir().join(format!("miner-fds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = node_command(ulimit, &dir, "")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sh");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let (mut rpc, mut stratum, mut banner, mut cookie) =
            (String::new(), String::new(), String::new(), None);
        let started = Instant::now();
        while rpc.is_empty() && started.elapsed() < Duration::from_secs(30) {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            banner.push_str(&line);
            if let Some(rest) = line.strip_prefix("stratum: listening on ") {
                stratum = rest.trim().to_string();
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                rpc = rest.split_whitespace().next().unwrap_or("").to_string();
                cookie = rest
                    .split("cookie file ")
                    .nth(1)
                    .map(|p| std::path::PathBuf::from(p.trim().trim_end_matches(')')));
            }
        }
        std::thread::spawn(move || for _ in stderr.lines() {});
        let cookie = cookie.and_then(|p| std::fs::read_to_string(p).ok());
        let auth =
            base64::engine::general_purpose::STANDARD.encode(cookie.unwrap_or_default().trim());
        // Built before the checks, so a failed one still kills the node (Drop).
        let node = Node {
            child,
            rpc,
            stratum,
            auth,
            banner,
            dir,
        };
        assert!(
            !node.rpc.is_empty() && !node.stratum.is_empty() && !node.auth.is_empty(),
            "{}",
            node.banner
        );
        node
    }

    /// One RPC call with a deadline; Err names what failed (connect, write, read).
    fn rpc(&self, method: &str, timeout: Duration) -> Result<Value, String> {
        let addr = self.rpc.parse().map_err(|e| format!("{e}"))?;
        let mut s =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let body = json!({"id": 1, "method": method, "params": []}).to_string();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.rpc, self.auth, body.len()
        )
        .map_err(|e| format!("write: {e}"))?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .map_err(|e| format!("read: {e}"))?;
        let body = reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {reply:?}"))?;
        Ok(v["result"].clone())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The caps line the node prints at start.
fn caps_line(banner: &str) -> &str {
    banner
        .lines()
        .find(|l| l.starts_with("file descriptors: "))
        .unwrap_or_else(|| panic!("no file descriptors line in:\n{banner}"))
}

#[test]
fn idle_miners_past_the_descriptors_leave_the_rpc_answering() {
    // Soft and hard 256: nothing to raise. 64 reserved, RPC 24 (an eighth of 192), Stratum 168.
    let node = Node::start("idle", "ulimit -n 256");
    assert_eq!(
        caps_line(&node.banner),
        "file descriptors: 256 (hard limit 256): at most 24 RPC connections, 168 Stratum miners",
        "{}",
        node.banner
    );
    // 300 idle miners: more than the process could hold without caps.
    let mut idle = Vec::new();
    for _ in 0..300 {
        match TcpStream::connect(&node.stratum) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {}: {e}", idle.len()),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // The RPC still accepts and answers, while every miner is still connected.
    for _ in 0..5 {
        let count = node.rpc("getblockcount", Duration::from_secs(5));
        assert_eq!(count, Ok(json!(0)), "RPC with 300 idle miners");
    }
    let info = node
        .rpc("getstratuminfo", Duration::from_secs(5))
        .expect("getstratuminfo");
    let connections = info["connections"].as_u64().expect("connections");
    let refused = info["connections_refused"].as_u64().expect("refused");
    assert!(connections <= 168, "{info}");
    assert!(refused >= 300 - 168, "{info}");
    drop(idle);
}

/// Runs the node under `ulimit -n 256` with `flags`; its stderr, after checking it failed.
fn refused_under_256(flags: &str) -> String {
    let dir = std::env::temp_dir().join(format!("miner-fds-cap-{}", std::process::id()));
    let out = node_command("ulimit -n 256", &dir, flags)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    err
}

#[test]
fn a_cap_above_the_descriptors_is_refused_with_the_numbers() {
    let err = refused_under_256("--stratum-max-connections 1000");
    assert!(
        err.contains("error: --stratum-max-connections 1000: this process may open 256 file descriptors (hard limit 256)"),
        "{err}"
    );
    assert!(err.contains("at most 168 fit"), "{err}");
    assert!(err.contains("ulimit -n"), "{err}");
    let err = refused_under_256("--rpc-max-connections 400");
    assert!(
        err.contains(
            "error: --rpc-max-connections 400: this process may open 256 file descriptors"
        ),
        "{err}"
    );
}

#[test]
fn the_soft_limit_is_raised_toward_the_hard_one() {
    let hard: u64 = String::from_utf8_lossy(
        &Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .expect("sh")
            .stdout,
    )
    .trim()
    .parse()
    .unwrap_or(u64::MAX);
    let node = Node::start("raise", "ulimit -Sn 256");
    let line = caps_line(&node.banner);
    if hard > 256 {
        let want = hard.min(64 + 512 + 20_000);
        assert!(
            line.starts_with(&format!(
                "file descriptors: {want} (raised from 256, hard limit "
            )),
            "{line}"
        );
    } else {
        assert!(
            line.starts_with("file descriptors: 256 (hard limit"),
            "{line}"
        );
    }
}
