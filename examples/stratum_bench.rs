//! Stratum benchmarks for `miner node --stratum`: a real node process on 127.0.0.1 (temporary
//! data directory) and raw Stratum v1 connections of our own, written from the protocol (JSON
//! lines), not from the server's code.
//!
//! 1. Fan-out: `--connections N` miners subscribe and authorize and wait for their first job;
//!    the node's VmRSS before and after. Then `--tips K` times: `generatetoaddress 1` over RPC,
//!    and the time from the call to each miner's next `mining.notify` (p50, p99, max: the last
//!    miner's).
//! 2. Share validation: a node whose chain difficulty makes blocks unlikely and whose share
//!    difficulty is pinned tiny (every hash is a share); `--flooders F` connections send
//!    `--shares S` distinct submits each, pipelined. Accepted shares per second of wall time and
//!    per second of the node's CPU time (/proc/PID/stat), i.e. on one core.
//!
//! `cargo run --release --features node --example stratum_bench -- [--miner PATH]
//!  [--connections N] [--tips K] [--flooders F] [--shares S] [--skip-fanout] [--skip-shares]`.
//! The table goes to stdout, then one JSON line; progress to stderr. The node is killed when the
//! bench ends.

use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Options {
    miner: PathBuf,
    connections: usize,
    tips: usize,
    flooders: usize,
    shares: usize,
    skip_fanout: bool,
    skip_shares: bool,
}

fn options() -> Options {
    let mut o = Options {
        miner: PathBuf::from("target/release/miner"),
        connections: 10_000,
        tips: 5,
        flooders: 4,
        shares: 50_000,
        skip_fanout: false,
        skip_shares: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let value = |i: usize| -> &str {
        args.get(i + 1)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{} needs a value", args[i]))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--miner" => o.miner = PathBuf::from(value(i)),
            "--connections" => o.connections = value(i).parse().expect("--connections N"),
            "--tips" => o.tips = value(i).parse().expect("--tips K"),
            "--flooders" => o.flooders = value(i).parse().expect("--flooders F"),
            "--shares" => o.shares = value(i).parse().expect("--shares S"),
            "--skip-fanout" => {
                o.skip_fanout = true;
                i += 1;
                continue;
            }
            "--skip-shares" => {
                o.skip_shares = true;
                i += 1;
                continue;
            }
            other => panic!("unknown flag {other}"),
        }
        i += 2;
    }
    o
}

/// A node process; killed on drop.
struct Node {
    child: Child,
    rpc: String,
    stratum: SocketAddr,
    dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Node {
    fn start(miner: &PathBuf, name: &str, args: &[&str]) -> Node {
        let dir = std::env::temp_dir().join(format!("stratum-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut child = Command::new(miner)
            .args([
                "node",
                "--rpcport",
                "0",
                "--rpcuser",
                "u",
                "--rpcpassword",
                "p",
            ])
            .args(["--stratum", "127.0.0.1:0", "--datadir"])
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start miner node");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut rpc, mut stratum) = (None, None);
        let until = Instant::now() + Duration::from_secs(30);
        while rpc.is_none() || stratum.is_none() {
            let line = rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .expect("node did not start in 30 s");
            if let Some(rest) = line.strip_prefix("stratum: listening on ") {
                stratum = Some(rest.trim().parse::<SocketAddr>().expect("stratum address"));
            }
            if let Some(rest) = line.strip_prefix("listening on http://") {
                let addr = rest.split_whitespace().next().unwrap_or(rest);
                rpc = Some(format!("http://{addr}"));
            }
        }
        // Keep draining stderr so the node never blocks on it.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Node {
            child,
            rpc: rpc.unwrap_or_default(),
            stratum: stratum.expect("stratum address"),
            dir,
        }
    }

    fn call(&self, method: &str, params: Value) -> Value {
        let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
        let body = json!({"id": 1, "method": method, "params": params}).to_string();
        let reply: Value = ureq::post(&self.rpc)
            .set("Authorization", &format!("Basic {auth}"))
            .timeout(Duration::from_secs(120))
            .send_string(&body)
            .expect("rpc")
            .into_string()
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .expect("rpc json");
        reply["result"].clone()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// User + system CPU seconds of the node so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 (1-based), 12 and 13 after the name.
        (ticks(11) + ticks(12)) / 100.0
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A connection that has sent `mining.subscribe` and `mining.authorize` as `worker`: its reply
/// lines and its write half.
async fn login(
    addr: SocketAddr,
    worker: &str,
) -> Result<(Lines<AsyncBufReader<OwnedReadHalf>>, OwnedWriteHalf), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (read, mut write) = stream.into_split();
    let hello = format!(
        "{}\n{}\n",
        json!({"id": 1, "method": "mining.subscribe", "params": ["stratum-bench/1"]}),
        json!({"id": 2, "method": "mining.authorize", "params": [worker, "x"]})
    );
    write
        .write_all(hello.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    Ok((AsyncBufReader::new(read).lines(), write))
}

/// One miner of the fan-out: subscribe, authorize, then report every notify's arrival.
async fn fanout_miner(
    addr: SocketAddr,
    ready: Arc<AtomicUsize>,
    notes: mpsc::UnboundedSender<Instant>,
) -> Result<(), String> {
    let (mut lines, write) = login(addr, "bench").await?;
    let mut first = true;
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        if line.contains("\"mining.notify\"") {
            if first {
                first = false;
                ready.fetch_add(1, Ordering::SeqCst);
            } else {
                let _ = notes.send(Instant::now());
            }
        }
    }
    drop(write);
    Ok(())
}

fn fanout(o: &Options, rt: &tokio::runtime::Runtime) -> Value {
    let node = Node::start(&o.miner, "fanout", &["-d", "1000"]);
    let rss_idle = node.rss_kib();
    eprintln!(
        "fan-out: node up, VmRSS {rss_idle} KiB; opening {} connections",
        o.connections
    );
    let ready = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..o.connections {
        let (ready, tx, addr) = (ready.clone(), tx.clone(), node.stratum);
        rt.spawn(async move {
            if let Err(e) = fanout_miner(addr, ready, tx).await {
                eprintln!("connection {i}: {e}");
            }
        });
    }
    let until = Instant::now() + Duration::from_secs(120);
    while ready.load(Ordering::SeqCst) < o.connections && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let connected = ready.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    let rss_connected = node.rss_kib();
    eprintln!("fan-out: {connected} miners have a job; VmRSS {rss_connected} KiB");
    let mut latencies: Vec<f64> = Vec::new();
    let mut lasts = Vec::new();
    for tip in 0..o.tips {
        // Drain anything left from the last round.
        while rx.try_recv().is_ok() {}
        let t0 = Instant::now();
        node.call(
            "generatetoaddress",
            json!([1, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"]),
        );
        let mut got = Vec::with_capacity(connected);
        let until = t0 + Duration::from_secs(60);
        while got.len() < connected && Instant::now() < until {
            match rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), rx.recv()).await })
            {
                Ok(Some(at)) => got.push(at.duration_since(t0).as_secs_f64() * 1000.0),
                _ => break,
            }
        }
        got.sort_by(f64::total_cmp);
        eprintln!(
            "tip {tip}: {} of {connected} notified, p50 {:.2} ms, p99 {:.2} ms, last {:.2} ms",
            got.len(),
            percentile(&got, 0.5),
            percentile(&got, 0.99),
            got.last().copied().unwrap_or(f64::NAN)
        );
        lasts.push(got.last().copied().unwrap_or(f64::NAN));
        latencies.extend(got);
    }
    latencies.sort_by(f64::total_cmp);
    json!({
        "connections": connected,
        "rss_idle_kib": rss_idle,
        "rss_connected_kib": rss_connected,
        "rss_per_connection_kib": (rss_connected as f64 - rss_idle as f64) / connected.max(1) as f64,
        "tips": o.tips,
        "notify_ms_p50": percentile(&latencies, 0.5),
        "notify_ms_p99": percentile(&latencies, 0.99),
        "notify_ms_last_each_tip": lasts,
        "notified": latencies.len(),
    })
}

/// One flooder: `shares` distinct submits for the first job, pipelined; returns the accepted.
async fn flooder(addr: SocketAddr, index: usize, shares: usize) -> Result<(usize, usize), String> {
    let (mut lines, mut write) = login(addr, "flood").await?;
    let (job, ntime) = loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("closed before a job")?;
        let v: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        if v["method"] == "mining.notify" {
            break (
                v["params"][0].as_str().unwrap_or("").to_string(),
                v["params"][7].as_str().unwrap_or("").to_string(),
            );
        }
    };
    let writer = tokio::spawn(async move {
        let mut batch = String::new();
        for n in 0..shares {
            let id = 100 + n;
            batch.push_str(&format!(
                "{{\"id\":{id},\"method\":\"mining.submit\",\"params\":[\"flood\",\"{job}\",\"{:08x}\",\"{ntime}\",\"{:08x}\"]}}\n",
                index, n
            ));
            if batch.len() > 32 * 1024 {
                if write.write_all(batch.as_bytes()).await.is_err() {
                    return;
                }
                batch.clear();
            }
        }
        let _ = write.write_all(batch.as_bytes()).await;
        // Keep the socket open until the replies are read.
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
    let (mut accepted, mut answered) = (0, 0);
    while answered < shares {
        let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
        else {
            break;
        };
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["id"].as_u64().is_some_and(|id| id >= 100) {
            answered += 1;
            if v["result"] == true {
                accepted += 1;
            }
        }
    }
    writer.abort();
    Ok((accepted, answered))
}

fn share_rate(o: &Options, rt: &tokio::runtime::Runtime) -> Value {
    let tiny = "1e-12";
    let node = Node::start(
        &o.miner,
        "shares",
        &[
            "-d",
            "1e15",
            "--stratum-difficulty",
            tiny,
            "--stratum-min-difficulty",
            tiny,
            "--stratum-max-difficulty",
            tiny,
        ],
    );
    eprintln!(
        "shares: {} flooders × {} submits at share difficulty {tiny}",
        o.flooders, o.shares
    );
    let cpu0 = node.cpu_seconds();
    let t0 = Instant::now();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..o.flooders)
            .map(|i| tokio::spawn(flooder(node.stratum, i, o.shares)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        out
    });
    let wall = t0.elapsed().as_secs_f64();
    let cpu = node.cpu_seconds() - cpu0;
    let (mut accepted, mut answered) = (0, 0);
    for r in &results {
        match r {
            Ok((a, n)) => {
                accepted += a;
                answered += n;
            }
            Err(e) => eprintln!("flooder: {e}"),
        }
    }
    eprintln!(
        "shares: {accepted} accepted of {answered} answered in {wall:.2} s, node CPU {cpu:.2} s"
    );
    json!({
        "flooders": o.flooders,
        "sent": o.flooders * o.shares,
        "answered": answered,
        "accepted": accepted,
        "wall_s": wall,
        "node_cpu_s": cpu,
        "shares_per_s": accepted as f64 / wall,
        "shares_per_cpu_s": accepted as f64 / cpu.max(1e-9),
    })
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut out = serde_json::Map::new();
    if !o.skip_fanout {
        let f = fanout(&o, &rt);
        println!(
            "fan-out: {} connections, VmRSS {} → {} KiB ({:.1} KiB each); new tip → notify p50 {:.2} ms, p99 {:.2} ms over {} tips",
            f["connections"], f["rss_idle_kib"], f["rss_connected_kib"],
            f["rss_per_connection_kib"].as_f64().unwrap_or(f64::NAN),
            f["notify_ms_p50"].as_f64().unwrap_or(f64::NAN),
            f["notify_ms_p99"].as_f64().unwrap_or(f64::NAN),
            f["tips"]
        );
        out.insert("fanout".into(), f);
    }
    if !o.skip_shares {
        let s = share_rate(&o, &rt);
        println!(
            "shares: {} accepted in {:.2} s: {:.0} shares/s wall, {:.0} shares per node CPU second",
            s["accepted"],
            s["wall_s"].as_f64().unwrap_or(f64::NAN),
            s["shares_per_s"].as_f64().unwrap_or(f64::NAN),
            s["shares_per_cpu_s"].as_f64().unwrap_or(f64::NAN)
        );
        out.insert("shares".into(), s);
    }
    println!("{}", Value::Object(out));
}
