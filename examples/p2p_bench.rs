//! P2P benchmarks for `miner node`: real node processes on 127.0.0.1 (temporary data
//! directories, `-d 2`, `--threads 1`) and raw P2P probes of our own.
//!
//! 1. Relay latency: A; B --connect A; C --connect B. A probe connected to each of A, B and C
//!    (version/verack, sendheaders, pongs) records when each node announces each block
//!    (`headers` or `inv`). `--blocks N` times: `generatetoaddress 1` on A, wait until all three
//!    announced it. A→B = t_B - t_A, A→B→C = t_C - t_A.
//! 2. Initial sync: A with `--sync-blocks N` blocks (submitted in `submitblock` batches, with
//!    times a second apart in the past; `--generate`: `generatetoaddress` in chunks of 5000,
//!    which the two-hour future limit slows to ~6 blocks/s past ~43,000 blocks; see
//!    `submit_chain`); S --connect A, timed from its start to `getblockcount == N`. Then A's data directory copied twice, A1..A3 started on the three,
//!    S2 --connect all three, same timing.
//! 3. Memory: a fresh node's VmRSS, then with `--peers N` probe connections (handshake done,
//!    pings answered) after 2 s.
//!
//! `cargo run --release --features node --example p2p_bench -- [--miner PATH] [--blocks N]
//!  [--sync-blocks N] [--peers N] [--skip-relay] [--skip-sync] [--skip-memory] [--json]
//!  [--generate] [--sync-timeout SECS (each sync's bound, default 600)] [--logs DIR (the nodes'
//!  stderr, one file each)]`, or `scripts/measure-p2p.sh [same flags]`.
//!
//! The table goes to stdout; with `--json` it goes to stderr and stdout gets one JSON object.
//! Progress goes to stderr. Every node is killed when the bench ends, panics included.

use base64::Engine;
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::BlockHash;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Regtest's magic, wire order.
const MAGIC: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
/// BENCHMARKS.md: connecting blocks in memory, for comparison with the sync rates.
const IN_MEMORY_CEILING: f64 = 449_494.0;
/// Blocks per `generatetoaddress` call when building the sync chain.
const GENERATE_CHUNK: u64 = 5000;

struct Options {
    miner: PathBuf,
    blocks: usize,
    sync_blocks: u64,
    peers: usize,
    skip_relay: bool,
    skip_sync: bool,
    skip_memory: bool,
    json: bool,
    generate: bool,
    sync_timeout: Duration,
    logs: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: p2p_bench [--miner PATH] [--blocks N] [--sync-blocks N] [--peers N] [--skip-relay] \
         [--skip-sync] [--skip-memory] [--json] [--generate] [--sync-timeout SECS] [--logs DIR]"
    );
    std::process::exit(2);
}

fn parse_options() -> Options {
    let mut o = Options {
        miner: PathBuf::from("target/release/miner"),
        blocks: 1000,
        sync_blocks: 100_000,
        peers: 100,
        skip_relay: false,
        skip_sync: false,
        skip_memory: false,
        json: false,
        generate: false,
        sync_timeout: Duration::from_secs(600),
        logs: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> String {
            args.next().unwrap_or_else(|| {
                eprintln!("{name} needs a value");
                usage()
            })
        };
        fn num<T: std::str::FromStr>(name: &str, text: String) -> T {
            text.parse().unwrap_or_else(|_| {
                eprintln!("{name}: not a number: {text}");
                usage()
            })
        }
        match arg.as_str() {
            "--miner" => o.miner = value("--miner").into(),
            "--blocks" => o.blocks = num("--blocks", value("--blocks")),
            "--sync-blocks" => o.sync_blocks = num("--sync-blocks", value("--sync-blocks")),
            "--peers" => o.peers = num("--peers", value("--peers")),
            "--sync-timeout" => {
                o.sync_timeout = Duration::from_secs(num("--sync-timeout", value("--sync-timeout")))
            }
            "--logs" => o.logs = Some(value("--logs").into()),
            "--skip-relay" => o.skip_relay = true,
            "--skip-sync" => o.skip_sync = true,
            "--skip-memory" => o.skip_memory = true,
            "--json" => o.json = true,
            "--generate" => o.generate = true,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {other}");
                usage()
            }
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// A `miner node` process; killed (and its data directory removed) on drop.
struct Node {
    name: String,
    child: Child,
    pid: u32,
    rpc_addr: String,
    auth: String,
    dir: PathBuf,
    /// P2P port.
    port: u16,
    /// The node's stderr, line by line (the log, kept for the report of odd behaviour).
    log: Arc<Mutex<Vec<String>>>,
    /// Remove `dir` on drop.
    owns_dir: bool,
}

/// Pids of the running nodes, for the signal handler (a killed bench kills its nodes too; a
/// panic is covered by `Node`'s drop).
static CHILDREN: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];

extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn kill(pid: i32, sig: i32) -> i32;
    fn _exit(status: i32) -> !;
}

extern "C" fn on_signal(signum: i32) {
    // Async-signal-safe only: atomics, kill, _exit.
    for slot in &CHILDREN {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            unsafe { kill(pid, 9) };
        }
    }
    unsafe { _exit(128 + signum) }
}

/// SIGHUP, SIGINT and SIGTERM kill the nodes and end the bench.
fn kill_nodes_on_signals() {
    for signum in [1, 2, 15] {
        unsafe { signal(signum, on_signal as extern "C" fn(i32) as usize) };
    }
}

fn register_child(pid: u32) {
    // Past 64 nodes the rest go unregistered (the bench starts at most 6 at once).
    let _ = CHILDREN.iter().any(|s| {
        s.compare_exchange(0, pid as i32, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
}

fn unregister_child(pid: u32) {
    for slot in &CHILDREN {
        let _ = slot.compare_exchange(pid as i32, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("miner-p2p-bench-{}-{name}", std::process::id()))
}

impl Node {
    /// Starts a node on `dir` (created fresh unless `keep_dir`), listening for peers on a free
    /// port and dialing `connect`.
    fn start(
        o: &Options,
        name: &str,
        dir: PathBuf,
        keep_dir: bool,
        connect: &[u16],
    ) -> Result<Node, String> {
        if !keep_dir {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let mut command = Command::new(&o.miner);
        command
            .env("NO_COLOR", "1")
            .args(["node", "--rpcport", "0", "--threads", "1", "-d", "2"])
            .arg("--datadir")
            .arg(&dir)
            .args(["--listen", "0"]);
        for p in connect {
            command.args(["--connect", &format!("127.0.0.1:{p}")]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {}: {e}", o.miner.display()))?;
        let pid = child.id();
        register_child(pid);
        let stderr = child.stderr.take().expect("piped stderr");
        // From here on the guard owns the child: an early return kills it.
        let mut node = Node {
            name: name.to_string(),
            child,
            pid,
            rpc_addr: String::new(),
            auth: String::new(),
            dir: dir.clone(),
            port: 0,
            log: Arc::new(Mutex::new(Vec::new())),
            owns_dir: true,
        };
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let log = node.log.clone();
        let mut file = o.logs.as_ref().and_then(|d| {
            let _ = std::fs::create_dir_all(d);
            std::fs::File::create(d.join(format!("{name}.log"))).ok()
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let _ = tx.send(line.clone());
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: keep the first lines and the latest ones.
                if log.len() >= 20_000 {
                    log.drain(1000..11_000);
                }
                log.push(line);
            }
        });
        let mut cookie = dir.join(".cookie");
        let deadline = Instant::now() + Duration::from_secs(30);
        while node.rpc_addr.is_empty() || node.port == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => return Err(format!("node {name} did not start:\n{}", node.log_tail(30))),
            };
            if let Some(rest) = line.split("listening for peers on ").nth(1) {
                node.port = rest
                    .trim()
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                node.rpc_addr = rest.split_whitespace().next().unwrap_or("").to_string();
                if let Some(path) = rest.split("cookie file ").nth(1) {
                    cookie = path.trim().trim_end_matches(')').into();
                }
            }
        }
        let line = std::fs::read_to_string(&cookie)
            .map_err(|e| format!("{name}: read {}: {e}", cookie.display()))?;
        node.auth = base64::engine::general_purpose::STANDARD.encode(line.trim());
        Ok(node)
    }

    fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines containing any of `words`.
    fn log_matching(&self, words: &[&str]) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .filter(|l| words.iter().any(|w| l.contains(w)))
            .cloned()
            .collect()
    }

    /// POSTs `request` (one JSON-RPC call or a batch); the whole answer.
    fn try_post(&self, request: &Value, timeout: Duration) -> Result<Value, String> {
        let body = request.to_string();
        let mut s = TcpStream::connect(&self.rpc_addr).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.rpc_addr,
            self.auth,
            body.len()
        )
        .map_err(|e| format!("write: {e}"))?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .map_err(|e| format!("read: {e}"))?;
        let body = reply
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or_default();
        serde_json::from_str(body).map_err(|e| format!("{e}: {reply}"))
    }

    /// A batch (or any request) that must be answered.
    fn post(&self, request: &Value) -> Value {
        self.try_post(request, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn try_rpc(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, String> {
        let v = self
            .try_post(
                &json!({"id": 1, "method": method, "params": params}),
                timeout,
            )
            .map_err(|e| format!("{method}: {e}"))?;
        if !v["error"].is_null() {
            return Err(format!("{method}: {}", v["error"]));
        }
        Ok(v["result"].clone())
    }

    /// An RPC call that must succeed.
    fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    fn count(&self) -> Option<u64> {
        self.try_rpc("getblockcount", json!([]), Duration::from_secs(10))
            .ok()?
            .as_u64()
    }

    fn peers(&self) -> Vec<Value> {
        self.try_rpc("getpeerinfo", json!([]), Duration::from_secs(10))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// RPC `stop`, then waits (bounded) for the process to exit; kills it past the bound.
    /// Returns whether it exited by itself, and how long that took.
    fn stop(&mut self) -> (bool, Duration) {
        let started = Instant::now();
        let _ = self.try_rpc("stop", json!([]), Duration::from_secs(10));
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                unregister_child(self.pid);
                return (true, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (false, started.elapsed())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unregister_child(self.pid);
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `text` without ANSI escape sequences (colour codes in the node's log).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (0x40..=0x7e).
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn eventually(limit: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if f() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(every);
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Raw P2P probes

fn frame(m: NetworkMessage) -> Vec<u8> {
    serialize(&RawNetworkMessage::new(Magic::from_bytes(MAGIC), m))
}

fn read_message(s: &mut TcpStream) -> std::io::Result<NetworkMessage> {
    let mut header = [0u8; 24];
    s.read_exact(&mut header)?;
    if header[..4] != MAGIC {
        return Err(std::io::Error::other(format!(
            "wrong magic {}",
            hex::encode(&header[..4])
        )));
    }
    let length = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
    if length > 4_000_000 {
        return Err(std::io::Error::other(format!("message of {length} bytes")));
    }
    let mut bytes = header.to_vec();
    bytes.resize(24 + length, 0);
    s.read_exact(&mut bytes[24..])?;
    deserialize::<RawNetworkMessage>(&bytes)
        .map(|raw| raw.into_payload())
        .map_err(|e| std::io::Error::other(format!("undecodable message: {e}")))
}

/// Where a probe's announcements go: (block, node index, arrival time).
type Sink = Arc<Mutex<HashMap<BlockHash, Vec<Option<Instant>>>>>;

/// A raw P2P connection to a node that completed the handshake; a thread reads its messages,
/// answers pings and getheaders, and records block announcements. Closed on drop.
struct Probe {
    stream: TcpStream,
    closed: Arc<AtomicBool>,
}

impl Probe {
    /// Connects, handshakes (version, verack both ways), sends sendheaders.
    fn connect(port: u16, sink: Option<(Sink, usize, usize)>) -> Result<Probe, String> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        let _ = s.set_nodelay(true);
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let here = s.local_addr().map_err(|e| e.to_string())?;
        let there = s.peer_addr().map_err(|e| e.to_string())?;
        let mut version = VersionMessage::new(
            ServiceFlags::NONE,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            Address::new(&there, ServiceFlags::NONE),
            Address::new(&here, ServiceFlags::NONE),
            rand::random(),
            "/p2p_bench:0.1/".into(),
            0,
        );
        version.version = 70015;
        version.relay = true;
        s.write_all(&frame(NetworkMessage::Version(version)))
            .map_err(|e| format!("send version: {e}"))?;
        let (mut got_version, mut got_verack) = (false, false);
        while !(got_version && got_verack) {
            match read_message(&mut s).map_err(|e| format!("handshake: {e}"))? {
                NetworkMessage::Version(_) => {
                    got_version = true;
                    s.write_all(&frame(NetworkMessage::Verack))
                        .map_err(|e| format!("send verack: {e}"))?;
                }
                NetworkMessage::Verack => got_verack = true,
                _ => {}
            }
        }
        s.write_all(&frame(NetworkMessage::SendHeaders))
            .map_err(|e| format!("send sendheaders: {e}"))?;
        s.set_read_timeout(None).map_err(|e| e.to_string())?;
        let closed = Arc::new(AtomicBool::new(false));
        let mut reader = s.try_clone().map_err(|e| e.to_string())?;
        let flag = closed.clone();
        std::thread::spawn(move || {
            let record = |hash: BlockHash, at: Instant| {
                if let Some((sink, index, nodes)) = &sink {
                    let mut map = sink.lock().unwrap_or_else(|e| e.into_inner());
                    let slot = map.entry(hash).or_insert_with(|| vec![None; *nodes]);
                    slot[*index].get_or_insert(at);
                }
            };
            loop {
                let message = read_message(&mut reader);
                let at = Instant::now();
                let reply = match message {
                    Err(_) => break,
                    Ok(NetworkMessage::Ping(n)) => Some(NetworkMessage::Pong(n)),
                    // We have no blocks to offer: an empty answer, as an empty node gives.
                    Ok(NetworkMessage::GetHeaders(_)) => Some(NetworkMessage::Headers(vec![])),
                    Ok(NetworkMessage::Headers(headers)) => {
                        for h in headers {
                            record(h.block_hash(), at);
                        }
                        None
                    }
                    Ok(NetworkMessage::Inv(items)) => {
                        for i in items {
                            if let Inventory::Block(h) | Inventory::WitnessBlock(h) = i {
                                record(h, at);
                            }
                        }
                        None
                    }
                    Ok(_) => None,
                };
                if let Some(m) = reply {
                    if reader.write_all(&frame(m)).is_err() {
                        break;
                    }
                }
            }
            flag.store(true, Ordering::Relaxed);
        });
        Ok(Probe { stream: s, closed })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Clone, Copy)]
struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    mean: f64,
    max: f64,
}

/// Nearest-rank percentiles of `ms` (milliseconds).
fn stats(ms: &[f64]) -> Option<Stats> {
    if ms.is_empty() {
        return None;
    }
    let mut v = ms.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| v[((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Stats {
        n: v.len(),
        p50: rank(50.0),
        p99: rank(99.0),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        max: v[v.len() - 1],
    })
}

fn stats_json(s: Option<Stats>) -> Value {
    match s {
        Some(s) => {
            json!({"n": s.n, "p50_ms": s.p50, "p99_ms": s.p99, "mean_ms": s.mean, "max_ms": s.max})
        }
        None => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmarks

/// Odd things seen on the way, for the report.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn add(&mut self, note: String) {
        eprintln!("note: {note}");
        self.0.push(note);
    }
}

/// Lines of a node's log worth reporting: disconnections, refusals, bans, warnings, errors.
fn odd_log_lines(node: &Node, notes: &mut Notes) {
    let lines = node.log_matching(&[
        "disconnected",
        "refused",
        "ban",
        "WARN",
        "ERROR",
        "stall",
        "panick",
    ]);
    // A peer process that ended (killed at the end of a step) is not news.
    let ended = [
        "early eof",
        "connection reset",
        "Connection reset",
        "node stopping",
        "=closed",
    ];
    let odd: Vec<_> = lines
        .into_iter()
        .filter(|l| !ended.iter().any(|e| l.contains(e)))
        .collect();
    if !odd.is_empty() {
        let shown: Vec<_> = odd.iter().take(5).cloned().collect();
        notes.add(format!(
            "node {}: {} notable log line(s), first ones:\n    {}",
            node.name,
            odd.len(),
            shown.join("\n    ")
        ));
    }
}

fn relay(o: &Options, notes: &mut Notes) -> Value {
    eprintln!(
        "== relay latency: A; B --connect A; C --connect B; {} blocks",
        o.blocks
    );
    let a = Node::start(o, "relay-a", temp_dir("relay-a"), false, &[]).unwrap();
    let b = Node::start(o, "relay-b", temp_dir("relay-b"), false, &[a.port]).unwrap();
    let c = Node::start(o, "relay-c", temp_dir("relay-c"), false, &[b.port]).unwrap();
    assert!(
        eventually(Duration::from_secs(20), Duration::from_millis(50), || {
            b.peers().len() == 2 && c.peers().len() == 1
        }),
        "the line A-B-C did not connect"
    );
    let sink: Sink = Arc::default();
    let probes: Vec<Probe> = [&a, &b, &c]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Probe::connect(n.port, Some((sink.clone(), i, 3)))
                .unwrap_or_else(|e| panic!("probe to {}: {e}", n.name))
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(20), Duration::from_millis(50), || {
            a.peers().len() == 2 && b.peers().len() == 3 && c.peers().len() == 2
        }),
        "the probes are not all listed as peers"
    );
    let (mut ab, mut abc, mut gen_a) = (Vec::new(), Vec::new(), Vec::new());
    let mut missing = [0usize; 3];
    let mut rounds_missing = 0;
    let started = Instant::now();
    for i in 0..o.blocks {
        let asked = Instant::now();
        let r = a.rpc("generatetoaddress", json!([1, "51"]));
        let hash: BlockHash = r[0]
            .as_str()
            .and_then(|h| h.parse().ok())
            .unwrap_or_else(|| panic!("generatetoaddress answered {r}"));
        let mut seen = vec![None; 3];
        eventually(Duration::from_secs(10), Duration::from_millis(1), || {
            if let Some(s) = sink.lock().unwrap_or_else(|e| e.into_inner()).get(&hash) {
                seen = s.clone();
            }
            seen.iter().all(Option::is_some)
        });
        if seen.iter().any(Option::is_none) {
            rounds_missing += 1;
            for (m, s) in missing.iter_mut().zip(&seen) {
                *m += usize::from(s.is_none());
            }
            if rounds_missing <= 3 {
                notes.add(format!(
                    "relay block {} ({hash}): not announced within 10 s by {:?}",
                    i + 1,
                    ["A", "B", "C"]
                        .iter()
                        .zip(&seen)
                        .filter(|(_, s)| s.is_none())
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                ));
            }
        }
        let ms = |x: Instant, y: Instant| x.saturating_duration_since(y).as_secs_f64() * 1000.0;
        if let Some(ta) = seen[0] {
            gen_a.push(ms(ta, asked));
            if let Some(tb) = seen[1] {
                if tb < ta {
                    notes.add(format!("block {hash}: B announced it before A"));
                }
                ab.push(ms(tb, ta));
            }
            if let Some(tc) = seen[2] {
                abc.push(ms(tc, ta));
            }
        }
        if (i + 1) % 100 == 0 || i + 1 == o.blocks {
            eprintln!("  {}/{} blocks", i + 1, o.blocks);
        }
    }
    let elapsed = started.elapsed();
    for (p, n) in probes.iter().zip(["A", "B", "C"]) {
        if p.is_closed() {
            notes.add(format!("relay: node {n} closed the probe's connection"));
        }
    }
    let heights: Vec<_> = [&a, &b, &c].iter().map(|n| n.count()).collect();
    if heights.iter().any(|h| *h != Some(o.blocks as u64)) {
        notes.add(format!(
            "relay: heights at the end {heights:?}, expected {} each",
            o.blocks
        ));
    }
    for n in [&a, &b, &c] {
        odd_log_lines(n, notes);
    }
    let (sab, sabc, sgen) = (stats(&ab), stats(&abc), stats(&gen_a));
    json!({
        "blocks": o.blocks,
        "seconds": elapsed.as_secs_f64(),
        "rounds_missing": rounds_missing,
        "missing_by_node": {"A": missing[0], "B": missing[1], "C": missing[2]},
        "a_to_b": stats_json(sab),
        "a_to_b_to_c": stats_json(sabc),
        "generate_to_a_announce": stats_json(sgen),
    })
}

/// Starts `name` dialing `ports` and times it to `getblockcount == want`.
fn timed_sync(o: &Options, name: &str, ports: &[u16], want: u64, notes: &mut Notes) -> Value {
    let started = Instant::now();
    let s = Node::start(o, name, temp_dir(name), false, ports).unwrap();
    let startup = started.elapsed();
    let mut last = (0u64, Instant::now());
    let mut height = 0;
    let done = eventually(o.sync_timeout, Duration::from_millis(100), || {
        height = s.count().unwrap_or(height);
        if last.1.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "  {name}: {height}/{want} after {:.1} s ({:.0} blocks/s lately)",
                started.elapsed().as_secs_f64(),
                (height - last.0.min(height)) as f64 / last.1.elapsed().as_secs_f64()
            );
            last = (height, Instant::now());
        }
        height >= want
    });
    let seconds = started.elapsed().as_secs_f64();
    if !done {
        notes.add(format!(
            "{name}: reached only {height}/{want} blocks in {} s",
            o.sync_timeout.as_secs()
        ));
    }
    let peers = s.peers();
    let per_peer: Vec<Value> = peers
        .iter()
        .map(|p| json!({"addr": p["addr"], "bytesrecv": p["bytesrecv"], "synced_blocks": p["synced_blocks"]}))
        .collect();
    if peers.len() != ports.len() {
        notes.add(format!(
            "{name}: {} peer(s) at the end, dialed {}",
            peers.len(),
            ports.len()
        ));
    }
    odd_log_lines(&s, notes);
    eprintln!(
        "  {name}: {height} blocks in {seconds:.2} s = {:.0} blocks/s (start-up {:.0} ms)",
        height as f64 / seconds,
        startup.as_secs_f64() * 1000.0
    );
    json!({
        "peers": ports.len(),
        "completed": done,
        "blocks": height,
        "seconds": seconds,
        "startup_ms": startup.as_secs_f64() * 1000.0,
        "blocks_per_s": height as f64 / seconds,
        "per_peer": per_peer,
    })
}

/// Blocks per batched `submitblock` request.
const SUBMIT_BATCH: u64 = 250;

/// Extends `a`'s chain (at genesis) by `n` blocks of our own making, submitted in JSON-RPC
/// batches of `submitblock`: one coinbase (BIP34 height, an OP_TRUE output of 0), nBits
/// 0x207fffff, times one second apart ending a minute ago. `generatetoaddress` stamps blocks
/// max(MTP + 1, now), which runs ahead of the clock by a second every six blocks; past about
/// 43,000 blocks it reaches the two-hour future limit and then waits for the clock (about six
/// blocks a second), so a 100,000-block chain cannot be mined that way in reasonable time.
fn submit_chain(a: &Node, n: u64) {
    use bitcoin::blockdata::script::Builder;
    use bitcoin::{
        absolute, block, transaction, Amount, CompactTarget, OutPoint, ScriptBuf, Sequence,
        Transaction, TxIn, TxMerkleNode, TxOut, Witness,
    };
    let started = Instant::now();
    let mut prev: BlockHash = a
        .rpc("getbestblockhash", json!([]))
        .as_str()
        .and_then(|h| h.parse().ok())
        .expect("getbestblockhash");
    let height0 = a.count().expect("getblockcount");
    assert_eq!(height0, 0, "submit_chain wants a fresh node");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = now.saturating_sub(n + 60) as u32;
    let mut made = 0u64;
    while made < n {
        let k = SUBMIT_BATCH.min(n - made);
        let mut batch = Vec::with_capacity(k as usize);
        for _ in 0..k {
            let height = made + batch.len() as u64 + 1;
            let coinbase = Transaction {
                version: transaction::Version::ONE,
                lock_time: absolute::LockTime::ZERO,
                input: vec![TxIn {
                    previous_output: OutPoint::null(),
                    script_sig: Builder::new()
                        .push_int(height as i64)
                        .push_slice(b"p2pbench")
                        .into_script(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                }],
                output: vec![TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
                }],
            };
            let mut b = bitcoin::Block {
                header: block::Header {
                    version: block::Version::from_consensus(0x2000_0000),
                    prev_blockhash: prev,
                    merkle_root: TxMerkleNode::all_zeros(),
                    time: base + height as u32,
                    bits: CompactTarget::from_consensus(0x207f_ffff),
                    nonce: 0,
                },
                txdata: vec![coinbase],
            };
            b.header.merkle_root = b.compute_merkle_root().expect("merkle root");
            let target = b.header.target();
            while !target.is_met_by(b.header.block_hash()) {
                b.header.nonce += 1;
            }
            prev = b.header.block_hash();
            batch.push(json!({
                "id": height,
                "method": "submitblock",
                "params": [hex::encode(serialize(&b))],
            }));
        }
        let replies = a.post(&Value::Array(batch));
        let replies = replies.as_array().expect("a batch answer");
        assert_eq!(replies.len() as u64, k, "batch answer length");
        for r in replies {
            assert!(
                r["error"].is_null() && r["result"].is_null(),
                "submitblock {}: {r}",
                r["id"]
            );
        }
        made += k;
        if made.is_multiple_of(5000) || made == n {
            eprintln!(
                "  A: {made}/{n} blocks submitted ({:.0} blocks/s)",
                made as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
}

fn sync(o: &Options, notes: &mut Notes) -> Value {
    let n = o.sync_blocks;
    eprintln!("== initial sync of {n} blocks");
    let mut a = Node::start(o, "sync-a", temp_dir("sync-a"), false, &[]).unwrap();
    let started = Instant::now();
    if o.generate {
        let mut made = 0;
        while made < n {
            let k = GENERATE_CHUNK.min(n - made);
            let r = a.rpc("generatetoaddress", json!([k, "51"]));
            assert_eq!(
                r.as_array().map(Vec::len),
                Some(k as usize),
                "generatetoaddress"
            );
            made += k;
            eprintln!(
                "  A: {made}/{n} blocks mined ({:.0} blocks/s)",
                made as f64 / started.elapsed().as_secs_f64()
            );
        }
    } else {
        submit_chain(&a, n);
    }
    let mine_s = started.elapsed().as_secs_f64();
    let one = timed_sync(o, "sync-s", &[a.port], n, notes);
    odd_log_lines(&a, notes);

    eprintln!("== initial sync from three peers");
    let (exited, took) = a.stop();
    if !exited {
        notes.add(format!(
            "sync-a: did not exit within {:.0} s of RPC stop (killed)",
            took.as_secs_f64()
        ));
    }
    // A's directory lives on as A1's; A2's and A3's are copies.
    a.owns_dir = false;
    let dir = a.dir.clone();
    drop(a);
    let mut dirs = vec![dir.clone()];
    for k in 2..=3 {
        let copy = temp_dir(&format!("sync-a{k}"));
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(&dir, &copy).expect("copy A's data directory");
        dirs.push(copy);
    }
    let sources: Vec<Node> = dirs
        .into_iter()
        .enumerate()
        .map(|(i, d)| Node::start(o, &format!("sync-a{}", i + 1), d, true, &[]).unwrap())
        .collect();
    for s in &sources {
        let c = s.count();
        if c != Some(n) {
            notes.add(format!(
                "{}: getblockcount {c:?} after restart, expected {n}",
                s.name
            ));
        }
    }
    let ports: Vec<u16> = sources.iter().map(|s| s.port).collect();
    let three = timed_sync(o, "sync-s2", &ports, n, notes);
    for s in &sources {
        odd_log_lines(s, notes);
    }
    json!({
        "blocks": n,
        "mine_seconds": mine_s,
        "one_peer": one,
        "three_peers": three,
        "in_memory_ceiling_blocks_per_s": IN_MEMORY_CEILING,
    })
}

fn memory(o: &Options, notes: &mut Notes) -> Value {
    eprintln!("== memory with {} peers", o.peers);
    let node = Node::start(o, "mem", temp_dir("mem"), false, &[]).unwrap();
    // Let the start-up settle.
    std::thread::sleep(Duration::from_millis(500));
    let before = node.rss_kib().expect("read VmRSS");
    let mut probes = Vec::new();
    let mut failed = Vec::new();
    for i in 0..o.peers {
        match Probe::connect(node.port, None) {
            Ok(p) => probes.push(p),
            Err(e) => failed.push(format!("peer {}: {e}", i + 1)),
        }
    }
    if !failed.is_empty() {
        notes.add(format!(
            "memory: {} of {} probe handshakes failed (inbound limit is 117), first: {}",
            failed.len(),
            o.peers,
            failed[0]
        ));
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = node.rss_kib().expect("read VmRSS");
    let listed = node.peers().len();
    let open = probes.iter().filter(|p| !p.is_closed()).count();
    if listed != probes.len() || open != probes.len() {
        notes.add(format!(
            "memory: {} handshakes done, {open} still open, getpeerinfo lists {listed}",
            probes.len()
        ));
    }
    odd_log_lines(&node, notes);
    let per_peer = (after as f64 - before as f64) / probes.len().max(1) as f64;
    json!({
        "peers": probes.len(),
        "peers_asked": o.peers,
        "getpeerinfo": listed,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "per_peer_kib": per_peer,
    })
}

fn print_table(out: &mut dyn Write, result: &Value) -> std::io::Result<()> {
    if let Some(r) = result.get("relay") {
        writeln!(
            out,
            "\nrelay latency, {} blocks ({:.1} s; rounds with a missing announcement: {})",
            r["blocks"],
            r["seconds"].as_f64().unwrap_or(0.0),
            r["rounds_missing"]
        )?;
        writeln!(
            out,
            "{:<24} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "", "n", "p50 ms", "p99 ms", "mean ms", "max ms"
        )?;
        for (label, key) in [
            ("A→B", "a_to_b"),
            ("A→B→C", "a_to_b_to_c"),
            ("generate→A announce", "generate_to_a_announce"),
        ] {
            let s = &r[key];
            if s.is_null() {
                writeln!(out, "{label:<24} (no data)")?;
                continue;
            }
            let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
            writeln!(
                out,
                "{label:<24} {:>6} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                s["n"].to_string(),
                f("p50_ms"),
                f("p99_ms"),
                f("mean_ms"),
                f("max_ms")
            )?;
        }
    }
    if let Some(s) = result.get("sync") {
        writeln!(
            out,
            "\ninitial sync, {} blocks (built on A in {:.1} s)",
            s["blocks"],
            s["mine_seconds"].as_f64().unwrap_or(0.0)
        )?;
        writeln!(
            out,
            "{:<12} {:>9} {:>10} {:>12} {:>11}",
            "from", "blocks", "seconds", "blocks/s", "start-up ms"
        )?;
        for (label, key) in [("1 peer", "one_peer"), ("3 peers", "three_peers")] {
            let r = &s[key];
            writeln!(
                out,
                "{label:<12} {:>9} {:>10.2} {:>12.0} {:>11.0}{}",
                r["blocks"].to_string(),
                r["seconds"].as_f64().unwrap_or(f64::NAN),
                r["blocks_per_s"].as_f64().unwrap_or(f64::NAN),
                r["startup_ms"].as_f64().unwrap_or(f64::NAN),
                if r["completed"] == true {
                    ""
                } else {
                    "  (incomplete)"
                }
            )?;
            if let Some(peers) = r["per_peer"].as_array() {
                let each: Vec<String> = peers
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} B (synced_blocks {})",
                            p["addr"].as_str().unwrap_or("?"),
                            p["bytesrecv"],
                            p["synced_blocks"]
                        )
                    })
                    .collect();
                writeln!(out, "{:<12} received from: {}", "", each.join(", "))?;
            }
        }
        writeln!(
            out,
            "{:<12} {:>9} {:>10} {:>12.0}  (BENCHMARKS.md, connect in memory)",
            "ceiling", "", "", IN_MEMORY_CEILING
        )?;
    }
    if let Some(m) = result.get("memory") {
        writeln!(out, "\nmemory (VmRSS)")?;
        writeln!(
            out,
            "{:<10} {:>10} {:>10} {:>13}",
            "peers", "before KiB", "after KiB", "per peer KiB"
        )?;
        writeln!(
            out,
            "{:<10} {:>10} {:>10} {:>13.1}",
            m["peers"].to_string(),
            m["rss_before_kib"].to_string(),
            m["rss_after_kib"].to_string(),
            m["per_peer_kib"].as_f64().unwrap_or(f64::NAN)
        )?;
    }
    if let Some(n) = result.get("notes").and_then(Value::as_array) {
        if !n.is_empty() {
            writeln!(out, "\nnotes:")?;
            for x in n {
                writeln!(out, "- {}", x.as_str().unwrap_or_default())?;
            }
        }
    }
    Ok(())
}

fn main() {
    let o = parse_options();
    kill_nodes_on_signals();
    if !o.miner.exists() {
        eprintln!(
            "no miner binary at {} (build it: cargo build --release --bin miner, or pass --miner PATH)",
            o.miner.display()
        );
        std::process::exit(2);
    }
    let mut notes = Notes::default();
    let mut result = serde_json::Map::new();
    result.insert("miner".into(), json!(o.miner.display().to_string()));
    if !o.skip_relay {
        result.insert("relay".into(), relay(&o, &mut notes));
    }
    if !o.skip_sync {
        result.insert("sync".into(), sync(&o, &mut notes));
    }
    if !o.skip_memory {
        result.insert("memory".into(), memory(&o, &mut notes));
    }
    result.insert("notes".into(), json!(notes.0));
    let result = Value::Object(result);
    if o.json {
        let _ = print_table(&mut std::io::stderr(), &result);
        println!("{result}");
    } else {
        let _ = print_table(&mut std::io::stdout(), &result);
    }
}
