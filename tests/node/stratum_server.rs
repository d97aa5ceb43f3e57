//! `miner node --stratum`: a real node process on 127.0.0.1, driven by a Stratum miner written
//! here over raw TCP JSON lines. Shares are ground by this test from the notify it received
//! (`miner::stratum::NotifyJob` builds the header, with the conventions recorded from cpuminer).

use base64::Engine;
use miner::stratum::{share_target, NotifyJob as Job};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    rpc: String,
    stratum: String,
    auth: String,
    dir: std::path::PathBuf,
}

impl Node {
    /// A node with `--stratum 0` and `extra` flags; difficulty `-d` 1e12 unless given.
    fn start(name: &str, extra: &[&str]) -> Node {
        let dir = std::env::temp_dir().join(format!("miner-stratum-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_miner"))
            .args(["node", "--rpcport", "0", "--threads", "1", "--stratum", "0"])
            .arg("--datadir")
            .arg(&dir)
            .args(if extra.contains(&"-d") {
                &[][..]
            } else {
                &["-d", "1e12"][..]
            })
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start miner node");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let (mut rpc, mut stratum, mut cookie, mut banner) = (
            String::new(),
            String::new(),
            dir.join(".cookie"),
            String::new(),
        );
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
                rpc = rest.split_whitespace().next().unwrap().to_string();
                if let Some(path) = rest.split("cookie file ").nth(1) {
                    cookie = path.trim().trim_end_matches(')').into();
                }
            }
        }
        assert!(
            !rpc.is_empty() && !stratum.is_empty(),
            "no addresses: {banner}"
        );
        assert_eq!(
            banner.matches("stratum: listening on").count(),
            1,
            "{banner}"
        );
        std::thread::spawn(move || for _ in stderr.lines() {});
        let line = match extra.iter().position(|a| *a == "--rpcuser") {
            Some(i) => format!("{}:{}", extra[i + 1], extra[i + 3]),
            None => std::fs::read_to_string(&cookie).unwrap_or_default(),
        };
        let auth = base64::engine::general_purpose::STANDARD.encode(line.trim());
        Node {
            child,
            rpc,
            stratum,
            auth,
            dir,
        }
    }

    /// An RPC call's raw HTTP reply (head, body).
    fn post(&self, body: &str) -> (String, String) {
        let mut s = TcpStream::connect(&self.rpc).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.rpc, self.auth, body.len()
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    fn rpc(&self, method: &str, params: Value) -> Value {
        let (_, body) =
            self.post(&json!({"id": 1, "method": method, "params": params}).to_string());
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(v["error"].is_null(), "{method}: {v}");
        v["result"].clone()
    }

    fn miner(&self) -> Miner {
        Miner::connect(&self.stratum)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Stratum miner speaking raw JSON lines.
struct Miner {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    next_id: u64,
    /// Notifications seen while waiting for replies.
    pending: Vec<Value>,
    extranonce1: Vec<u8>,
    difficulty: f64,
    job: Option<Job>,
    /// Applies `mining.set_difficulty` only from the next `mining.notify`, as pooler's minerd
    /// and cpuminer-opt do (`difficulty` is the one applied, `next_difficulty` the one sent).
    stock: bool,
    next_difficulty: f64,
}

impl Miner {
    fn connect(addr: &str) -> Miner {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Miner {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            next_id: 1,
            pending: Vec::new(),
            extranonce1: Vec::new(),
            difficulty: 0.0,
            job: None,
            stock: false,
            next_difficulty: 0.0,
        }
    }

    fn send_line(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
        self.stream.write_all(b"\n").unwrap();
    }

    /// The next message, or None at the end of the stream (or a timeout).
    fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                self.note(&v);
                Some(v)
            }
        }
    }

    fn note(&mut self, v: &Value) {
        match v["method"].as_str() {
            Some("mining.set_difficulty") => {
                self.next_difficulty = v["params"][0].as_f64().unwrap();
                if !self.stock {
                    self.difficulty = self.next_difficulty;
                }
            }
            Some("mining.notify") => {
                self.job = Some(Job::from_notify(&v["params"]).unwrap());
                self.difficulty = self.next_difficulty;
            }
            _ => {}
        }
    }

    /// Sends a request and returns its reply, keeping notifications in `pending`.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_line(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let v = self.read().unwrap_or_else(|| panic!("{method}: no reply"));
            if v["id"] == json!(id) && v.get("method").is_none() {
                return v;
            }
            self.pending.push(v);
        }
    }

    /// The next notification named `method` (from `pending` first).
    fn wait_for(&mut self, method: &str) -> Value {
        if let Some(i) = self.pending.iter().position(|v| v["method"] == method) {
            return self.pending.remove(i);
        }
        loop {
            let v = self.read().unwrap_or_else(|| panic!("no {method}"));
            if v["method"] == method {
                return v;
            }
            self.pending.push(v);
        }
    }

    /// subscribe + authorize; returns the subscribe reply and waits for the first job.
    fn login(&mut self, user: &str) -> Value {
        let sub = self.call("mining.subscribe", json!(["test-miner/1.0"]));
        self.extranonce1 = hex::decode(sub["result"][1].as_str().unwrap()).unwrap();
        let auth = self.call("mining.authorize", json!([user, "x"]));
        assert_eq!(auth["result"], json!(true), "{auth}");
        self.wait_for("mining.notify");
        sub
    }

    /// Grinds nonces from `start` for a share (`meets` true) or a non-share at the current
    /// difficulty; returns the submit params.
    fn grind(
        &self,
        user: &str,
        en2: u32,
        version_bits: Option<u32>,
        meets: bool,
        start: u32,
    ) -> Value {
        let job = self.job.as_ref().expect("a job");
        let ntime = job.ntime;
        self.grind_on(
            job,
            self.difficulty,
            user,
            en2,
            ntime,
            version_bits,
            meets,
            start,
        )
    }

    /// As `grind`, on `job` at `difficulty` with `ntime`.
    #[allow(clippy::too_many_arguments)]
    fn grind_on(
        &self,
        job: &Job,
        difficulty: f64,
        user: &str,
        en2: u32,
        ntime: u32,
        version_bits: Option<u32>,
        meets: bool,
        start: u32,
    ) -> Value {
        let target = share_target(difficulty).unwrap();
        let version = match version_bits {
            Some(b) => (job.version & !0x1fff_e000) | b,
            None => job.version,
        };
        let en2b = en2.to_be_bytes();
        for nonce in start..start + 50_000_000 {
            let h = job.header(&self.extranonce1, &en2b, ntime, nonce, version);
            let hash = miner::hash::sha256d(&h);
            if target.is_met_by(&hash) == meets {
                let mut p = json!([
                    user,
                    job.id,
                    hex::encode(en2b),
                    format!("{ntime:08x}"),
                    format!("{nonce:08x}")
                ]);
                if let Some(b) = version_bits {
                    p.as_array_mut().unwrap().push(json!(format!("{b:08x}")));
                }
                return p;
            }
        }
        panic!("no nonce found");
    }

    fn header_hash(&self, params: &Value) -> String {
        let job = self.job.as_ref().unwrap();
        let en2 = hex::decode(params[2].as_str().unwrap()).unwrap();
        let nonce = u32::from_str_radix(params[4].as_str().unwrap(), 16).unwrap();
        let h = job.header(&self.extranonce1, &en2, job.ntime, nonce, job.version);
        let mut hash = miner::hash::sha256d(&h);
        hash.reverse();
        hex::encode(hash)
    }
}

fn error_code(reply: &Value) -> i64 {
    reply["error"][0]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error: {reply}"))
}

/// Share difficulty pinned at 1e-6 (about 4,300 hashes a share), the network far harder.
const PINNED: [&str; 6] = [
    "--stratum-difficulty",
    "1e-6",
    "--stratum-min-difficulty",
    "1e-6",
    "--stratum-max-difficulty",
    "1e-6",
];

#[test]
fn subscribe_authorize_notify_have_stratums_shape_and_a_session_is_restored() {
    let node = Node::start("shape", &PINNED);
    let mut m = node.miner();
    let sub = m.call("mining.subscribe", json!(["cpuminer/2.5.1"]));
    let r = &sub["result"];
    assert!(sub["error"].is_null(), "{sub}");
    assert_eq!(r[0][0][0], "mining.set_difficulty");
    assert_eq!(r[0][1][0], "mining.notify");
    let en1 = r[1].as_str().unwrap().to_string();
    assert_eq!(en1.len(), 8, "{sub}");
    assert_eq!(r[2], 4);
    let auth = m.call("mining.authorize", json!(["w", "x"]));
    assert_eq!(auth["result"], true);
    let diff = m.wait_for("mining.set_difficulty");
    assert_eq!(diff["params"][0].as_f64(), Some(1e-6));
    let notify = m.wait_for("mining.notify");
    let p = notify["params"].as_array().unwrap();
    assert_eq!(p.len(), 9, "{notify}");
    assert_eq!(p[8], true, "the first job is clean");
    let job = Job::from_notify(&notify["params"]).unwrap();
    // prevhash, word-swapped, is the tip (genesis).
    let mut tip = hex::decode(node.rpc("getbestblockhash", json!([])).as_str().unwrap()).unwrap();
    tip.reverse();
    assert_eq!(job.prev_hash.to_vec(), tip);
    // The BIP34 height (1: OP_1) and the 8-byte extranonce push end coinb1.
    assert!(
        hex::encode(&job.coinb1).ends_with("5108"),
        "{}",
        hex::encode(&job.coinb1)
    );
    // A second miner gets another extranonce1.
    let mut other = node.miner();
    let sub2 = other.call("mining.subscribe", json!([]));
    assert_ne!(sub2["result"][1].as_str().unwrap(), en1);
    // After a disconnect, the session id restores the extranonce1.
    drop(m);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = node.miner();
    let sub3 = again.call("mining.subscribe", json!(["cpuminer/2.5.1", en1]));
    assert_eq!(sub3["result"][1].as_str().unwrap(), en1, "{sub3}");
}

#[test]
fn shares_are_accepted_and_duplicates_unknown_jobs_and_low_shares_refused() {
    let node = Node::start("shares", &PINNED);
    let mut m = node.miner();
    m.login("w1");
    let share = m.grind("w1", 7, None, true, 0);
    let ok = m.call("mining.submit", share.clone());
    assert_eq!(ok["result"], true, "{ok}");
    let dup = m.call("mining.submit", share.clone());
    assert_eq!(error_code(&dup), 22, "{dup}");
    let mut unknown = share.clone();
    unknown[1] = json!("no-such-job");
    assert_eq!(error_code(&m.call("mining.submit", unknown)), 21);
    let low = m.grind("w1", 8, None, false, 0);
    let r = m.call("mining.submit", low);
    assert_eq!(error_code(&r), 23, "{r}");
    // A worker this connection did not authorize.
    let mut stranger = share.clone();
    stranger[0] = json!("someone-else");
    assert_eq!(error_code(&m.call("mining.submit", stranger)), 24);
    // Figures over RPC.
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["shares_accepted"], 1, "{info}");
    assert_eq!(info["connections"], 1, "{info}");
    let w = &info["workers"][0];
    assert_eq!(w["worker"], "w1", "{info}");
    assert_eq!(w["shares_accepted"], 1);
    assert!(w["shares_rejected"].as_u64().unwrap() >= 3, "{info}");
    assert!(w["hashrate_hs"].as_f64().unwrap() > 0.0, "{info}");
    assert_eq!(
        node.rpc("getblockcount", json!([])),
        0,
        "no block at this difficulty"
    );
}

#[test]
fn submit_before_subscribe_is_25_and_before_authorize_is_24() {
    let node = Node::start("order", &PINNED);
    let mut m = node.miner();
    let params = json!(["w", "1", "00000000", "00000000", "00000000"]);
    assert_eq!(error_code(&m.call("mining.submit", params.clone())), 25);
    m.call("mining.subscribe", json!([]));
    assert_eq!(error_code(&m.call("mining.submit", params)), 24);
}

#[test]
fn a_block_found_over_stratum_is_on_the_chain_and_a_clean_job_follows() {
    // D 2000: a block is about 2,000 hashes, easier than the share difficulty of 1, so the
    // share difficulty is clamped to the network's and every share is a block.
    let node = Node::start("block", &["-d", "2000"]);
    let mut m = node.miner();
    m.login("w");
    assert!(
        m.difficulty < 1e-6,
        "clamped to the network: {}",
        m.difficulty
    );
    let share = m.grind("w", 1, None, true, 0);
    let hash = m.header_hash(&share);
    let ok = m.call("mining.submit", share);
    assert_eq!(ok["result"], true, "{ok}");
    assert_eq!(node.rpc("getblockcount", json!([])), 1);
    assert_eq!(node.rpc("getbestblockhash", json!([])), json!(hash));
    let notify = m.wait_for("mining.notify");
    assert_eq!(notify["params"][8], true);
    let job = Job::from_notify(&notify["params"]).unwrap();
    let mut prev = job.prev_hash;
    prev.reverse();
    assert_eq!(hex::encode(prev), hash, "the new job builds on the block");
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["blocks"], 1, "{info}");
    assert_eq!(info["workers"][0]["blocks"], 1, "{info}");
    // The block pays OP_TRUE (the default payout) and its coinbase carries the extranonces.
    let block = node.rpc("getblock", json!([hash, 1]));
    assert_eq!(block["height"], 1, "{block}");
}

#[test]
fn a_new_tip_sends_a_clean_job_to_every_miner_at_once() {
    let node = Node::start(
        "tip",
        &[
            "-d",
            "1e4",
            "--stratum-difficulty",
            "1e-6",
            "--stratum-min-difficulty",
            "1e-9",
        ],
    );
    let mut a = node.miner();
    let mut b = node.miner();
    a.login("a");
    b.login("b");
    let old_share = a.grind("a", 5, None, true, 0);
    let mined = node.rpc("generatetoaddress", json!([1, "51"]));
    let tip = mined[0].as_str().unwrap().to_string();
    let started = Instant::now();
    for m in [&mut a, &mut b] {
        let notify = m.wait_for("mining.notify");
        assert_eq!(notify["params"][8], true, "{notify}");
        let job = Job::from_notify(&notify["params"]).unwrap();
        let mut prev = job.prev_hash;
        prev.reverse();
        assert_eq!(hex::encode(prev), tip);
    }
    eprintln!(
        "clean notify to both miners {:?} after generatetoaddress returned",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A share on the job before the tip is stale.
    let r = a.call("mining.submit", old_share);
    assert_eq!(error_code(&r), 21, "{r}");
}

#[test]
fn version_rolling_is_negotiated_and_bits_outside_the_mask_refused() {
    let node = Node::start("rolling", &PINNED);
    let mut m = node.miner();
    let conf = m.call(
        "mining.configure",
        json!([["version-rolling"], {"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2}]),
    );
    assert_eq!(conf["result"]["version-rolling"], true, "{conf}");
    assert_eq!(conf["result"]["version-rolling.mask"], "1fffe000", "{conf}");
    let conf = m.call(
        "mining.configure",
        json!([["version-rolling", "subscribe-extranonce"], {"version-rolling.mask": "00ff0000"}]),
    );
    assert_eq!(conf["result"]["version-rolling.mask"], "00ff0000", "{conf}");
    assert_eq!(conf["result"]["subscribe-extranonce"], false, "{conf}");
    m.login("w");
    let inside = m.grind("w", 3, Some(0x0042_0000), true, 0);
    let r = m.call("mining.submit", inside);
    assert_eq!(r["result"], true, "{r}");
    // 0x00002000 is in BIP 310's mask but not in the negotiated 00ff0000.
    let outside = m.grind("w", 4, Some(0x0000_2000), true, 0);
    let r = m.call("mining.submit", outside);
    assert_eq!(error_code(&r), 20, "{r}");
}

#[test]
fn unknown_methods_and_malformed_lines_are_answered_and_the_connection_stays() {
    let node = Node::start("unknown", &PINNED);
    let mut m = node.miner();
    let r = m.call("mining.no_such_method", json!([]));
    assert_eq!(error_code(&r), 20, "{r}");
    m.send_line("this is not json");
    let r = m.read().expect("an answer to a malformed line");
    assert_eq!(error_code(&r), 20, "{r}");
    assert_eq!(m.call("mining.ping", json!([]))["result"], "pong");
    assert_eq!(
        m.call("mining.extranonce.subscribe", json!([]))["result"],
        true
    );
    assert_eq!(
        m.call("mining.suggest_difficulty", json!([1e-6]))["result"],
        true
    );
    // cpuminer-opt's form: the difficulty as a quoted string.
    assert_eq!(
        m.call("mining.suggest_difficulty", json!(["0.000001"]))["result"],
        true
    );
    assert_eq!(
        error_code(&m.call("mining.suggest_difficulty", json!(["lots"]))),
        20
    );
    m.login("w");
    let share = m.grind("w", 9, None, true, 0);
    assert_eq!(m.call("mining.submit", share)["result"], true);
}

#[test]
fn an_oversized_line_closes_that_connection_while_another_miner_keeps_working() {
    let node = Node::start("oversized", &PINNED);
    let mut good = node.miner();
    good.login("good");
    let mut bad = node.miner();
    let big = vec![b'a'; 20 * 1024];
    let _ = bad.stream.write_all(&big);
    let started = Instant::now();
    assert!(bad.read().is_none(), "the connection is closed");
    assert!(started.elapsed() < Duration::from_secs(10));
    let share = good.grind("good", 1, None, true, 0);
    assert_eq!(good.call("mining.submit", share)["result"], true);
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["lines_too_long"], 1, "{info}");
}

#[test]
fn stratum_auth_rpc_refuses_a_wrong_password() {
    let mut flags = vec![
        "--rpcuser",
        "alice",
        "--rpcpassword",
        "s3cret",
        "--stratum-auth",
        "rpc",
    ];
    flags.extend(PINNED);
    let node = Node::start("auth", &flags);
    let mut m = node.miner();
    m.call("mining.subscribe", json!([]));
    let r = m.call("mining.authorize", json!(["alice", "wrong"]));
    assert_eq!(r["result"], false, "{r}");
    assert_eq!(error_code(&r), 24, "{r}");
    let r = m.call("mining.authorize", json!(["mallory", "s3cret"]));
    assert_eq!(error_code(&r), 24, "{r}");
    let r = m.call("mining.authorize", json!(["alice", "s3cret"]));
    assert_eq!(r["result"], true, "{r}");
}

#[test]
fn getblocktemplate_replies_carry_x_stratum() {
    let node = Node::start("xstratum", &PINNED);
    let (head, body) =
        node.post(r#"{"id":1,"method":"getblocktemplate","params":[{"rules":["segwit"]}]}"#);
    let want = format!("x-stratum: stratum+tcp://{}", node.stratum);
    assert!(
        head.to_ascii_lowercase().contains(&want),
        "{head}\n(wanted {want})"
    );
    assert!(body.contains("previousblockhash"), "{body}");
}

#[test]
fn every_miner_is_told_to_reconnect_when_the_node_stops() {
    let node = Node::start("reconnect", &PINNED);
    let mut a = node.miner();
    let mut b = node.miner();
    a.login("a");
    b.call("mining.subscribe", json!([]));
    node.rpc("stop", json!([]));
    for m in [&mut a, &mut b] {
        let v = m.wait_for("client.reconnect");
        assert_eq!(v["method"], "client.reconnect");
    }
}

#[test]
fn vardiff_raises_the_difficulty_of_a_fast_miner() {
    let node = Node::start(
        "vardiff",
        &[
            "--stratum-difficulty",
            "1e-7",
            "--stratum-min-difficulty",
            "1e-7",
            "--stratum-max-difficulty",
            "1",
            "--stratum-share-interval",
            "60",
        ],
    );
    let mut m = node.miner();
    m.login("fast");
    let first = m.difficulty;
    let mut nonce = 0;
    for en2 in 0..12u32 {
        let share = m.grind("fast", en2, None, true, nonce);
        nonce = u32::from_str_radix(share[4].as_str().unwrap(), 16).unwrap() + 1;
        let r = m.call("mining.submit", share);
        assert_eq!(r["result"], true, "{r}");
        if m.difficulty > first {
            break;
        }
    }
    m.call("mining.ping", json!([]));
    let raised = m
        .pending
        .iter()
        .filter(|v| v["method"] == "mining.set_difficulty")
        .count();
    assert!(
        m.difficulty > first,
        "{} then {} ({raised} set_difficulty)",
        first,
        m.difficulty
    );
}

#[test]
fn a_miner_that_floods_without_reading_is_dropped_and_others_keep_working() {
    let node = Node::start("flood", &PINNED);
    let mut good = node.miner();
    good.login("good");
    let flooder = TcpStream::connect(&node.stratum).unwrap();
    flooder
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let writer = std::thread::spawn(move || {
        let mut flooder = flooder;
        let chunk = "{\"id\":1,\"method\":\"mining.ping\",\"params\":[]}\n".repeat(1000);
        for _ in 0..2000 {
            if flooder.write_all(chunk.as_bytes()).is_err() {
                return true;
            }
        }
        false
    });
    let cut = writer.join().unwrap();
    assert!(cut, "the flooder was never cut off");
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["slow_readers_dropped"], 1, "{info}");
    let share = good.grind("good", 1, None, true, 0);
    assert_eq!(good.call("mining.submit", share)["result"], true);
}

#[test]
fn the_connection_limit_and_the_handshake_timeout_close_connections() {
    let mut flags = vec![
        "--stratum-max-connections",
        "2",
        "--stratum-handshake-timeout",
        "1",
    ];
    flags.extend(PINNED);
    let node = Node::start("limits", &flags);
    let mut good = node.miner();
    good.login("good");
    // A second connection that never logs in is closed after the handshake timeout.
    let mut silent = node.miner();
    let started = Instant::now();
    assert!(silent.read().is_none(), "closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // With two open, a third is closed at once.
    let _second = node.miner();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = node.miner();
    assert!(third.read().is_none(), "refused");
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["connections_refused"], 1, "{info}");
    assert_eq!(good.call("mining.ping", json!([]))["result"], "pong");
}

/// Issue 22 item 1: a miner that applies `mining.set_difficulty` only from the next
/// `mining.notify` (pooler's minerd, cpuminer-opt) mines through a vardiff raise with no
/// low-difficulty reject, is sent a fresh job with the raise, and a share on the job from
/// before the raise is still judged at that job's difficulty long after it.
#[test]
fn a_stock_miner_mines_through_a_vardiff_raise_with_no_low_difficulty_rejects() {
    let node = Node::start(
        "stockraise",
        &[
            "--stratum-difficulty",
            "1e-7",
            "--stratum-min-difficulty",
            "1e-7",
            "--stratum-max-difficulty",
            "1e-6",
            "--stratum-share-interval",
            "0.1",
        ],
    );
    let mut m = node.miner();
    m.stock = true;
    m.login("stock");
    let first_job = m.job.clone().unwrap();
    let first = m.difficulty;
    assert_eq!(first, 1e-7);
    let (mut accepted, mut low, mut raised_at) = (0u32, 0u32, None::<Instant>);
    let started = Instant::now();
    let mut nonce = 0;
    let mut en2 = 0u32;
    // Past the old 5 s grace after the raise, bounded in all.
    while raised_at.is_none_or(|t| t.elapsed() < Duration::from_secs(7))
        && started.elapsed() < Duration::from_secs(25)
    {
        let share = m.grind("stock", en2, None, true, nonce);
        nonce = u32::from_str_radix(share[4].as_str().unwrap(), 16).unwrap() + 1;
        if nonce > 0xf000_0000 {
            en2 += 1;
            nonce = 0;
        }
        let r = m.call("mining.submit", share);
        if r["result"] == true {
            accepted += 1;
        } else {
            assert_eq!(error_code(&r), 23, "{r}");
            low += 1;
        }
        if raised_at.is_none() && m.next_difficulty > first {
            raised_at = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(raised_at.is_some(), "no raise in 25 s");
    assert_eq!(low, 0, "{low} low-difficulty rejects, {accepted} accepted");
    assert!(
        m.difficulty > first,
        "the raise came with a job the miner applied it from: {}",
        m.difficulty
    );
    // The job from before the raise: its difficulty, 7 s after the raise.
    let old = m.grind_on(
        &first_job,
        first,
        "stock",
        0xffff,
        first_job.ntime,
        None,
        true,
        0,
    );
    let r = m.call("mining.submit", old);
    assert_eq!(r["result"], true, "{r}");
}

/// Issue 22 item 1: `mining.suggest_difficulty` after the first job is followed by a fresh
/// (not clean) job with a new id, and the earlier job keeps its difficulty.
#[test]
fn a_difficulty_change_is_followed_by_a_fresh_job() {
    let node = Node::start(
        "freshjob",
        &[
            "--stratum-difficulty",
            "1e-7",
            "--stratum-min-difficulty",
            "1e-7",
            "--stratum-max-difficulty",
            "1e-3",
            "--stratum-share-interval",
            "60",
        ],
    );
    let mut m = node.miner();
    m.stock = true;
    m.login("w");
    m.pending.clear();
    let first_job = m.job.clone().unwrap();
    let r = m.call("mining.suggest_difficulty", json!([1e-5]));
    assert_eq!(r["result"], true, "{r}");
    let d = m.wait_for("mining.set_difficulty");
    assert_eq!(d["params"][0].as_f64(), Some(1e-5), "{d}");
    let notify = m.wait_for("mining.notify");
    assert_eq!(notify["params"][8], false, "{notify}");
    assert_ne!(notify["params"][0], json!(first_job.id), "{notify}");
    assert_eq!(m.difficulty, 1e-5);
    // A share on the fresh job at 1e-7 only is low; one meeting 1e-5 is accepted.
    let job = m.job.clone().unwrap();
    let low = m.grind_on(&job, 1e-5, "w", 1, job.ntime, None, false, 0);
    assert_eq!(error_code(&m.call("mining.submit", low)), 23);
    let ok = m.grind("w", 2, None, true, 0);
    assert_eq!(m.call("mining.submit", ok)["result"], true);
    // The first job's shares are judged at 1e-7.
    let old = m.grind_on(&first_job, 1e-7, "w", 3, first_job.ntime, None, true, 0);
    let r = m.call("mining.submit", old);
    assert_eq!(r["result"], true, "{r}");
}

/// Issue 22 item 2: the refreshed job reissues the same coinbase and branch, so the same header
/// under the new job id is a duplicate (22), not a second credit.
#[test]
fn the_same_header_under_a_refreshed_job_is_a_duplicate() {
    let mut flags = vec!["--stratum-refresh", "1"];
    flags.extend(PINNED);
    let node = Node::start("refreshdup", &flags);
    let mut m = node.miner();
    m.login("w");
    let a = m.job.clone().unwrap();
    // An ntime both jobs accept.
    let ntime = a.ntime + 60;
    let share = m.grind_on(&a, m.difficulty, "w", 7, ntime, None, true, 0);
    assert_eq!(m.call("mining.submit", share.clone())["result"], true);
    let notify = m.wait_for("mining.notify");
    let b = Job::from_notify(&notify["params"]).unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(
        (&a.prev_hash, &a.coinb1, &a.coinb2, &a.branch),
        (&b.prev_hash, &b.coinb1, &b.coinb2, &b.branch),
        "a refresh reissues the same coinbase and branch"
    );
    let mut again = share.clone();
    again[1] = json!(b.id);
    let r = m.call("mining.submit", again);
    assert_eq!(error_code(&r), 22, "{r}");
    let r = m.call("mining.submit", share);
    assert_eq!(error_code(&r), 22, "{r}");
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["shares_accepted"], 1, "{info}");
}

/// Issue 22 item 3: two block-solving shares of one job sent back to back: the first is the
/// block, the second is stale (21) and neither stored nor counted; three rounds (the race was
/// 2 of 3).
#[test]
fn two_block_solving_shares_back_to_back_make_one_block() {
    let node = Node::start("blockrace", &["-d", "2000"]);
    let mut m = node.miner();
    m.login("w");
    for round in 0..3u32 {
        let first = m.grind("w", 2 * round, None, true, 0);
        let second = m.grind("w", 2 * round + 1, None, true, 0);
        let (id1, id2) = (1000 + 2 * u64::from(round), 1001 + 2 * u64::from(round));
        let lines = format!(
            "{}\n{}",
            json!({"id": id1, "method": "mining.submit", "params": first}),
            json!({"id": id2, "method": "mining.submit", "params": second})
        );
        m.send_line(&lines);
        let mut replies = Vec::new();
        while replies.len() < 2 {
            let v = m.read().expect("a reply");
            if v.get("method").is_none() {
                replies.push(v);
            } else {
                m.pending.push(v);
            }
        }
        assert_eq!(replies[0]["id"], id1, "{replies:?}");
        assert_eq!(replies[0]["result"], true, "round {round}: {replies:?}");
        assert_eq!(error_code(&replies[1]), 21, "round {round}: {replies:?}");
        assert_eq!(node.rpc("getblockcount", json!([])), round + 1);
        // The clean job on the new tip.
        loop {
            let n = m.wait_for("mining.notify");
            if n["params"][8] == true {
                break;
            }
        }
    }
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["blocks"], 3, "{info}");
    assert_eq!(info["workers"][0]["blocks"], 3, "{info}");
    let tips = node.rpc("getchaintips", json!([]));
    assert_eq!(tips.as_array().unwrap().len(), 1, "no side branch: {tips}");
}

/// Issue 22 item 5: a 65th worker on one connection is refused at authorize, naming the limit.
#[test]
fn a_65th_worker_on_one_connection_is_refused_at_authorize() {
    let node = Node::start("workers65", &PINNED);
    let mut m = node.miner();
    m.login("w0");
    for i in 1..64 {
        let r = m.call("mining.authorize", json!([format!("w{i}"), "x"]));
        assert_eq!(r["result"], true, "{i}: {r}");
    }
    let r = m.call("mining.authorize", json!(["w64", "x"]));
    assert_eq!(r["result"], false, "{r}");
    assert_eq!(error_code(&r), 24, "{r}");
    assert!(r["error"][1].as_str().unwrap().contains("64"), "{r}");
    // Authorizing an already authorized name again is still fine.
    let r = m.call("mining.authorize", json!(["w3", "x"]));
    assert_eq!(r["result"], true, "{r}");
}

/// Issue 22 item 5: a malformed version-rolling mask is refused with a JSON-RPC error, not
/// granted the whole mask.
#[test]
fn malformed_version_rolling_masks_are_refused() {
    let node = Node::start("badmask", &PINNED);
    let mut m = node.miner();
    for mask in [json!("zz"), json!(123), json!("f".repeat(5000))] {
        let r = m.call(
            "mining.configure",
            json!([["version-rolling"], {"version-rolling.mask": mask}]),
        );
        assert_eq!(error_code(&r), 20, "{r}");
        assert!(r["result"].is_null(), "{r}");
    }
    // The connection stays, and a good mask is still granted.
    let r = m.call(
        "mining.configure",
        json!([["version-rolling"], {"version-rolling.mask": "00ff0000"}]),
    );
    assert_eq!(r["result"]["version-rolling.mask"], "00ff0000", "{r}");
}

/// Issue 22 item 4: rejected shares from many names build no table; accepted ones do, and
/// `getstratuminfo` lists at most 100 workers with `workers_total` counting all.
#[test]
fn many_worker_names_keep_the_table_and_the_answer_bounded() {
    let node = Node::start("manynames", &PINNED);
    let mut miners: Vec<Miner> = (0..3).map(|_| node.miner()).collect();
    for (c, m) in miners.iter_mut().enumerate() {
        m.login(&format!("c{c}w0"));
        for i in 1..64 {
            let r = m.call("mining.authorize", json!([format!("c{c}w{i}"), "x"]));
            assert_eq!(r["result"], true, "{r}");
        }
        for i in 0..64 {
            let garbage = json!([
                format!("c{c}w{i}"),
                "nojob",
                "00000000",
                "00000000",
                "00000000"
            ]);
            let r = m.call("mining.submit", garbage);
            assert!(r["error"].is_array(), "{r}");
        }
    }
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["workers_total"], 0, "{info}");
    assert_eq!(info["workers"].as_array().unwrap().len(), 0, "{info}");
    assert_eq!(info["shares_rejected"], 192, "{info}");
    // 130 names with an accepted share each.
    let mut n = 0;
    for (c, m) in miners.iter_mut().enumerate() {
        for i in 0..64 {
            if n == 130 {
                break;
            }
            let share = m.grind(&format!("c{c}w{i}"), i, None, true, 0);
            let r = m.call("mining.submit", share);
            assert_eq!(r["result"], true, "{r}");
            n += 1;
        }
    }
    let info = node.rpc("getstratuminfo", json!([]));
    assert_eq!(info["workers_total"], 130, "{info}");
    assert_eq!(info["workers"].as_array().unwrap().len(), 100, "{info}");
    assert_eq!(info["shares_accepted"], 130, "{info}");
}
