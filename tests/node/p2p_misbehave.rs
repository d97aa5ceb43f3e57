//! Misbehaving raw peers against a real `miner node`: each test completes the version/verack
//! handshake over 127.0.0.1, sends one kind of bad thing, and checks that the node
//!
//! 1. closes the connection within a bounded time,
//! 2. lists 127.0.0.1 in `listbanned` ("127.0.0.1/32", banned_until > ban_created),
//! 3. closes a new connection from 127.0.0.1 at once, without sending a `version`,
//! 4. kept its chain (getbestblockhash, getblockcount) unchanged,
//! 5. after `clearbanned` lists nothing and answers a new connection with a `version`.
//!
//! Written from the protocol and the ban-score spec alone (Bitcoin Core's scores), independent
//! of the node's P2P code. Each test runs on its own fresh node, since a ban covers 127.0.0.1.

use base64::Engine;
use bitcoin::block::{Header, Version};
use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{address::Address, Magic, ServiceFlags};
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Regtest's network magic, in wire order.
const REGTEST: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];
/// Mainnet's network magic, in wire order.
const MAINNET: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];
/// Regtest's nBits (`-d 2`): target 0x7fffff * 2^(8*(0x20-3)), also the pow limit.
const BITS: u32 = 0x207f_ffff;
/// The node's default `--bantime`.
const DEFAULT_BANTIME: i64 = 86_400;
/// How long the node may take to drop a peer that crossed the ban threshold.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The node under test (the pattern of tests/node/p2p.rs).

struct Node {
    child: Child,
    addr: String,
    auth: String,
    dir: std::path::PathBuf,
    /// The P2P port it listens on.
    port: u16,
}

impl Node {
    /// Starts a node listening for peers on a free port, with `extra` flags on its command line.
    fn start(name: &str, extra: &[&str]) -> Node {
        let dir =
            std::env::temp_dir().join(format!("miner-misbehave-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Node::start_in(dir, extra)
    }

    /// Stops the node and starts it again on the same data directory.
    fn restart(mut self, extra: &[&str]) -> Node {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = self.dir.clone();
        // Not dropped: that would remove the data directory.
        std::mem::forget(self);
        Node::start_in(dir, extra)
    }

    fn start_in(dir: std::path::PathBuf, extra: &[&str]) -> Node {
        Node::start_in_env(dir, extra, &[])
    }

    /// Starts a node on `dir` with `env` set in its environment (the store's test hooks).
    fn start_in_env(dir: std::path::PathBuf, extra: &[&str], env: &[(&str, &str)]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_miner"))
            .envs(env.iter().copied())
            .args(["node", "--rpcport", "0", "--threads", "1", "-d", "2"])
            .arg("--datadir")
            .arg(&dir)
            .args(["--listen", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start miner node");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut addr = String::new();
        let mut cookie = dir.join(".cookie");
        let mut banner = String::new();
        let mut port = 0;
        let started = Instant::now();
        while (addr.is_empty() || port == 0) && started.elapsed() < Duration::from_secs(20) {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            banner.push_str(&line);
            if let Some(rest) = line.split("listening for peers on ").nth(1) {
                port = rest.trim().rsplit(':').next().unwrap().parse().unwrap();
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                addr = rest.split_whitespace().next().unwrap().to_string();
                if let Some(path) = rest.split("cookie file ").nth(1) {
                    cookie = path.trim().trim_end_matches(')').into();
                }
            }
        }
        assert!(
            !addr.is_empty() && port != 0,
            "the node did not start ({extra:?}): {banner}"
        );
        std::thread::spawn(move || for _ in stderr.lines() {});
        let line = std::fs::read_to_string(&cookie).unwrap_or_default();
        let auth = base64::engine::general_purpose::STANDARD.encode(line.trim());
        Node {
            child,
            addr,
            auth,
            dir,
            port,
        }
    }

    /// The whole JSON-RPC reply.
    fn rpc_reply(&self, method: &str, params: Value) -> Value {
        let body = json!({"id": 1, "method": method, "params": params}).to_string();
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.auth,
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let body = reply
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or_default();
        serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("{method}: {e}: {reply}"))
    }

    /// The result of a call that must succeed.
    fn rpc(&self, method: &str, params: Value) -> Value {
        let reply = self.rpc_reply(method, params.clone());
        assert!(
            reply["error"].is_null(),
            "{method} {params}: error {}",
            reply["error"]
        );
        reply["result"].clone()
    }

    fn chain(&self) -> Chain {
        Chain {
            best: self.rpc("getbestblockhash", json!([])),
            count: self.rpc("getblockcount", json!([])),
        }
    }

    fn tip(&self) -> BlockHash {
        self.rpc("getbestblockhash", json!([]))
            .as_str()
            .expect("getbestblockhash: a string")
            .parse()
            .expect("getbestblockhash: a block hash")
    }

    fn generate(&self, n: u64) {
        let r = self.rpc("generatetoaddress", json!([n, "51"]));
        assert_eq!(r.as_array().map(Vec::len), Some(n as usize), "{r}");
    }

    fn listbanned(&self) -> Vec<Value> {
        let v = self.rpc("listbanned", json!([]));
        v.as_array()
            .unwrap_or_else(|| panic!("listbanned: not an array: {v}"))
            .clone()
    }

    /// The "banscore" of the node's only peer (the raw peer of the test).
    fn banscore(&self) -> Option<i64> {
        let info = self.rpc("getpeerinfo", json!([]));
        let peers = info.as_array()?;
        if peers.len() != 1 {
            return None;
        }
        peers[0]["banscore"].as_i64()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, PartialEq)]
struct Chain {
    best: Value,
    count: Value,
}

fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits until the node's peer has `score` ("banscore" in getpeerinfo).
fn assert_score(node: &Node, score: i64, after: &str) {
    let mut last = None;
    assert!(
        eventually(Duration::from_secs(5), || {
            last = node.banscore();
            last == Some(score)
        }),
        "after {after}: banscore {last:?}, want {score}; getpeerinfo {}",
        node.rpc("getpeerinfo", json!([]))
    );
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

// ---------------------------------------------------------------------------------------------
// Raw frames.

/// A well-formed frame of `msg` with `magic`.
fn frame_with(magic: [u8; 4], msg: NetworkMessage) -> Vec<u8> {
    serialize(&RawNetworkMessage::new(Magic::from_bytes(magic), msg))
}

fn frame(msg: NetworkMessage) -> Vec<u8> {
    frame_with(REGTEST, msg)
}

/// A frame built by hand: regtest magic, `command`, the length of `payload`, and `checksum`
/// (the correct one, first 4 bytes of SHA-256d of the payload, when None).
fn raw_frame(command: &str, payload: &[u8], checksum: Option<[u8; 4]>) -> Vec<u8> {
    assert!(command.len() <= 12);
    let mut out = REGTEST.to_vec();
    let mut cmd = [0u8; 12];
    cmd[..command.len()].copy_from_slice(command.as_bytes());
    out.extend(cmd);
    out.extend((payload.len() as u32).to_le_bytes());
    let sum = sha256d::Hash::hash(payload).to_byte_array();
    out.extend(checksum.unwrap_or([sum[0], sum[1], sum[2], sum[3]]));
    out.extend(payload);
    out
}

fn version_message() -> NetworkMessage {
    let here: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    NetworkMessage::Version(VersionMessage::new(
        services,
        now() as i64,
        Address::new(&here, services),
        Address::new(&here, services),
        rand::random(),
        "/misbehave-test:0.1/".into(),
        0,
    ))
}

/// A header on `prev` at nBits `bits` whose hash meets its own target (`pow_ok`) or does not:
/// the nonce is ground until it does (each try is a coin flip at regtest's target).
fn header(prev: BlockHash, time: u32, bits: u32, pow_ok: bool) -> Header {
    let mut h = Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: prev,
        merkle_root: TxMerkleNode::from_byte_array(rand::random()),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    while h.target().is_met_by(h.block_hash()) != pow_ok {
        h.nonce += 1;
        assert!(h.nonce < 1_000_000, "could not grind a header");
    }
    h
}

/// `n` continuous headers on `prev`, each with valid proof of work at regtest's nBits.
fn valid_chain(prev: BlockHash, n: usize) -> Vec<Header> {
    let start = now();
    let mut out: Vec<Header> = Vec::with_capacity(n);
    for i in 0..n {
        let parent = out.last().map_or(prev, Header::block_hash);
        out.push(header(parent, start + 1 + i as u32, BITS, true));
    }
    out
}

fn random_hash() -> BlockHash {
    BlockHash::from_byte_array(rand::random())
}

// ---------------------------------------------------------------------------------------------
// A raw peer: our writes from the test's thread, the node's frames read by a thread of its own
// (so a node writing to us never blocks on a full socket, and closing is seen at once).

enum Event {
    Frame(String, Vec<u8>),
    Closed(String),
}

struct Peer {
    stream: TcpStream,
    rx: Receiver<Event>,
    /// Frames received but not yet asked for.
    backlog: Vec<(String, Vec<u8>)>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
    /// Every command the node sent us, in order.
    seen: Vec<String>,
}

/// Splits one frame off the front of `buf`: (command, payload, frame length).
fn parse_frame(buf: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    if buf.len() < 24 {
        return None;
    }
    let len = u32::from_le_bytes(buf[16..20].try_into().unwrap()) as usize;
    if buf.len() < 24 + len {
        return None;
    }
    let cmd = String::from_utf8_lossy(&buf[4..16])
        .trim_end_matches('\0')
        .to_string();
    Some((cmd, buf[24..24 + len].to_vec(), 24 + len))
}

fn read_loop(mut s: TcpStream, tx: Sender<Event>) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        if started.elapsed() > Duration::from_secs(300) {
            let _ = tx.send(Event::Closed("reader gave up after 300 s".into()));
            return;
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                let _ = tx.send(Event::Closed("end of stream".into()));
                return;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                while let Some((cmd, payload, len)) = parse_frame(&buf) {
                    buf.drain(..len);
                    if tx.send(Event::Frame(cmd, payload)).is_err() {
                        return;
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Event::Closed(format!("read error: {e}")));
                return;
            }
        }
    }
}

impl Peer {
    fn connect(port: u16) -> Peer {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = stream.try_clone().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_loop(reader, tx));
        Peer {
            stream,
            rx,
            backlog: Vec::new(),
            closed: None,
            seen: Vec::new(),
        }
    }

    /// Connects, sends version and verack, and waits for the node's version and verack.
    fn handshake(port: u16) -> Peer {
        let mut p = Peer::connect(port);
        p.send_bytes(&frame(version_message()))
            .expect("send version");
        p.send_bytes(&frame(NetworkMessage::Verack))
            .expect("send verack");
        for cmd in ["version", "verack"] {
            assert!(
                p.wait_for(cmd, Duration::from_secs(10)).is_some(),
                "handshake: no {cmd} from the node (closed: {:?}, seen: {:?})",
                p.closed,
                p.seen
            );
        }
        p
    }

    fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    fn send(&mut self, msg: NetworkMessage) -> std::io::Result<()> {
        self.send_bytes(&frame(msg))
    }

    fn record(&mut self, event: Event) {
        match event {
            Event::Frame(cmd, payload) => {
                self.seen.push(cmd.clone());
                self.backlog.push((cmd, payload));
            }
            Event::Closed(why) => self.closed = Some(why),
        }
    }

    /// The payload of the next `cmd` the node sends, within `limit`; None if it does not.
    fn wait_for(&mut self, cmd: &str, limit: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.backlog.iter().position(|(c, _)| c == cmd) {
                return Some(self.backlog.remove(i).1);
            }
            if self.closed.is_some() {
                return None;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(event) => self.record(event),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.closed = Some("reader ended".into());
                    return None;
                }
            }
        }
    }

    /// Ok once the node has closed the connection, within `limit`.
    fn wait_closed(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while self.closed.is_none() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.rx.recv_timeout(left) {
                Ok(event) => self.record(event),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => self.closed = Some("reader ended".into()),
            }
        }
        match &self.closed {
            Some(_) => Ok(()),
            None => Err(format!(
                "still open after {limit:?} (the node sent: {:?})",
                self.seen
            )),
        }
    }

    /// True while the node has not closed the connection (checked for `wait`).
    fn still_open(&mut self, wait: Duration) -> bool {
        self.wait_closed(wait).is_err()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// (3): a new connection from 127.0.0.1 is closed at once, and the node sends nothing (no
/// `version`) even though we send ours.
fn assert_refused(port: u16) {
    let mut s = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => panic!("banned peer: connect failed outright ({e}): the listener is gone?"),
    };
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    // The node may already have closed it: a failing write is fine.
    let _ = s.write_all(&frame(version_message()));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
                ) =>
            {
                break
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "banned peer: a new connection was not closed within 3 s ({e}); the node sent {} bytes",
                got.len()
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "banned peer: the node keeps the new connection open"
        );
    }
    let mut cmds = Vec::new();
    let mut rest = &got[..];
    while let Some((cmd, _, len)) = parse_frame(rest) {
        cmds.push(cmd);
        rest = &rest[len..];
    }
    assert!(
        got.is_empty(),
        "banned peer: the node sent {} bytes (commands {cmds:?}) before closing",
        got.len()
    );
}

/// (5) second half: a new connection that sends a version gets the node's version.
fn assert_accepted(port: u16, what: &str) {
    let mut p = Peer::connect(port);
    let _ = p.send(version_message());
    assert!(
        p.wait_for("version", Duration::from_secs(10)).is_some(),
        "{what}: a new connection got no version from the node (closed: {:?}, seen: {:?})",
        p.closed,
        p.seen
    );
}

fn ban_entry(list: &[Value]) -> Option<&Value> {
    list.iter().find(|e| e["address"] == "127.0.0.1/32")
}

/// (2): `listbanned` lists 127.0.0.1 for `bantime` seconds.
fn assert_listed(node: &Node, bantime: i64) {
    let mut list = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            list = node.listbanned();
            ban_entry(&list).is_some()
        }),
        "listbanned does not list 127.0.0.1/32: {list:?}"
    );
    let e = ban_entry(&list).unwrap();
    let int = |k: &str| {
        e[k].as_i64()
            .unwrap_or_else(|| panic!("listbanned: {k} not an integer: {e}"))
    };
    let (created, until) = (int("ban_created"), int("banned_until"));
    assert!(until > created, "banned_until <= ban_created: {e}");
    assert!(
        (until - created - bantime).abs() <= 1,
        "banned for {} s, want {bantime}: {e}",
        until - created
    );
    assert!(
        (int("ban_duration") - bantime).abs() <= 1,
        "ban_duration, want {bantime}: {e}"
    );
    let left = int("time_remaining");
    assert!(left > 0 && left <= bantime, "time_remaining: {e}");
    let t = now() as i64;
    assert!(
        (created - t).abs() < 60,
        "ban_created is not now ({t}): {e}"
    );
}

/// (1) to (5) for a peer that was just sent something bannable.
fn assert_banned(
    node: &Node,
    peer: &mut Peer,
    before: &Chain,
    close_within: Duration,
    bantime: i64,
) {
    if let Err(e) = peer.wait_closed(close_within) {
        panic!(
            "not disconnected: {e}; getpeerinfo {}",
            node.rpc("getpeerinfo", json!([]))
        );
    }
    assert_listed(node, bantime);
    assert_refused(node.port);
    assert_eq!(&node.chain(), before, "the chain changed");
    node.rpc("clearbanned", json!([]));
    let list = node.listbanned();
    assert!(list.is_empty(), "after clearbanned: {list:?}");
    assert_accepted(node.port, "after clearbanned");
    assert_eq!(&node.chain(), before, "the chain changed");
}

/// A fresh node with 2 blocks mined, its chain, and a raw peer past the handshake.
fn setup(name: &str, extra: &[&str]) -> (Node, Chain, Peer) {
    let node = Node::start(name, extra);
    node.generate(2);
    let chain = node.chain();
    let peer = Peer::handshake(node.port);
    (node, chain, peer)
}

// ---------------------------------------------------------------------------------------------
// Score 100 at once.

#[test]
fn invalid_block_with_valid_pow_bans_the_peer() {
    let (node, before, mut peer) = setup("invalid-block", &[]);
    // Valid proof of work on the tip, but no transactions (no coinbase) and a zero merkle root.
    let mut h = header(node.tip(), now(), BITS, true);
    h.merkle_root = TxMerkleNode::from_byte_array([0; 32]);
    while !h.target().is_met_by(h.block_hash()) {
        h.nonce += 1;
    }
    let block = bitcoin::Block {
        header: h,
        txdata: vec![],
    };
    peer.send(NetworkMessage::Block(block)).expect("send block");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn header_with_hash_above_its_target_bans_the_peer() {
    let (node, before, mut peer) = setup("bad-pow", &[]);
    let h = header(node.tip(), now(), BITS, false);
    assert!(!h.target().is_met_by(h.block_hash()));
    peer.send(NetworkMessage::Headers(vec![h]))
        .expect("send headers");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn header_with_nbits_above_the_pow_limit_bans_the_peer() {
    let (node, before, mut peer) = setup("bits-above-limit", &[]);
    // 0x2100ffff: target 0xffff * 2^240, above regtest's limit 0x7fffff * 2^232; the hash
    // meets it (that is, the header is "valid" against its own, too easy, target).
    let h = header(node.tip(), now(), 0x2100_ffff, true);
    peer.send(NetworkMessage::Headers(vec![h]))
        .expect("send headers");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn malformed_payload_with_a_correct_checksum_bans_the_peer() {
    let (node, before, mut peer) = setup("malformed", &[]);
    // `headers` whose count says 5 but which holds 1 header (and its 0 transaction count).
    let h = header(node.tip(), now(), BITS, true);
    let mut payload = vec![5u8];
    payload.extend(serialize(&h));
    payload.push(0);
    peer.send_bytes(&raw_frame("headers", &payload, None))
        .expect("send headers");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn bad_checksum_bans_the_peer_for_bantime() {
    let (node, before, mut peer) = setup("bad-checksum", &["--bantime", "600"]);
    let payload = 42u64.to_le_bytes();
    let sum = sha256d::Hash::hash(&payload).to_byte_array();
    let wrong = [!sum[0], !sum[1], !sum[2], !sum[3]];
    peer.send_bytes(&raw_frame("ping", &payload, Some(wrong)))
        .expect("send ping");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, 600);
}

#[test]
fn oversize_length_bans_the_peer() {
    let (node, before, mut peer) = setup("oversize", &[]);
    // A `block` header announcing 4,000,001 bytes (the limit is 4,000,000), then a little data.
    let mut bytes = REGTEST.to_vec();
    bytes.extend(b"block\0\0\0\0\0\0\0");
    bytes.extend(4_000_001u32.to_le_bytes());
    bytes.extend([0u8; 4]);
    bytes.extend([0u8; 100]);
    peer.send_bytes(&bytes).expect("send header");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn a_flood_of_messages_bans_the_peer() {
    let (node, before, mut peer) = setup("flood", &[]);
    // 60000 empty `zzz` messages (burst 5000, refill 2000/s), written 2000 at a time.
    let one = raw_frame("zzz", &[], None);
    // Within the burst: no score, no disconnection.
    peer.send_bytes(&one.repeat(4000))
        .expect("send 4000 messages");
    std::thread::sleep(Duration::from_millis(500));
    assert_score(&node, 0, "4000 messages (within the burst of 5000)");
    assert!(
        peer.still_open(Duration::from_millis(100)),
        "disconnected after 4000 messages, within the burst of 5000"
    );
    let batch: Vec<u8> = one.repeat(2000);
    for _ in 0..30 {
        if peer.send_bytes(&batch).is_err() {
            break; // the node closed the connection
        }
    }
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

// ---------------------------------------------------------------------------------------------
// Score 20 per offence: five offences ban.

/// Sends `bytes` `times` times: the peer's score goes up by `step` each time and the fifth
/// (score 100) gets it disconnected.
fn offend_repeatedly(node: &Node, peer: &mut Peer, bytes: &[u8], what: &str) {
    for i in 1..=4 {
        peer.send_bytes(bytes)
            .unwrap_or_else(|e| panic!("send {what} #{i}: {e}"));
        assert_score(node, 20 * i, &format!("{what} #{i}"));
        assert!(
            peer.still_open(Duration::from_millis(100)),
            "disconnected after {what} #{i} (score {})",
            20 * i
        );
    }
    peer.send_bytes(bytes)
        .unwrap_or_else(|e| panic!("send {what} #5: {e}"));
}

#[test]
fn non_continuous_headers_five_times_ban_the_peer() {
    let (node, before, mut peer) = setup("non-continuous", &[]);
    // The first header connects to the tip; the second's parent is not the first.
    let first = header(node.tip(), now() + 1, BITS, true);
    let second = header(random_hash(), now() + 2, BITS, true);
    let bytes = frame(NetworkMessage::Headers(vec![first, second]));
    offend_repeatedly(&node, &mut peer, &bytes, "non-continuous headers");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn headers_messages_of_2001_headers_five_times_ban_the_peer() {
    let (node, before, mut peer) = setup("2001-headers", &[]);
    // A valid continuous run on the tip, one more than the 2000 a `headers` may hold.
    let run = valid_chain(node.tip(), 2001);
    let bytes = frame(NetworkMessage::Headers(run));
    offend_repeatedly(&node, &mut peer, &bytes, "2001 headers");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn inv_of_50001_entries_five_times_bans_the_peer() {
    let (node, before, mut peer) = setup("big-inv", &[]);
    let inv: Vec<Inventory> = (0..50_001)
        .map(|_| Inventory::Block(random_hash()))
        .collect();
    let bytes = frame(NetworkMessage::Inv(inv));
    offend_repeatedly(&node, &mut peer, &bytes, "inv of 50001");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn banscore_flag_sets_the_threshold() {
    let (node, before, mut peer) = setup("banscore-40", &["--banscore", "40"]);
    let first = header(node.tip(), now() + 1, BITS, true);
    let second = header(random_hash(), now() + 2, BITS, true);
    let bytes = frame(NetworkMessage::Headers(vec![first, second]));
    peer.send_bytes(&bytes).expect("send headers #1");
    assert_score(&node, 20, "non-continuous headers #1");
    assert!(
        peer.still_open(Duration::from_millis(300)),
        "disconnected at score 20 with --banscore 40"
    );
    peer.send_bytes(&bytes).expect("send headers #2");
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

#[test]
fn sixty_non_connecting_headers_ban_the_peer() {
    let (node, before, mut peer) = setup("non-connecting", &[]);
    // Each `headers` holds one header whose parent nobody knows: 20 per 10 in a row.
    let messages: Vec<Vec<u8>> = (0..60)
        .map(|_| {
            let h = header(random_hash(), now(), BITS, true);
            frame(NetworkMessage::Headers(vec![h]))
        })
        .collect();
    for (i, bytes) in messages.iter().enumerate() {
        let n = i as i64 + 1;
        if peer.send_bytes(bytes).is_err() {
            assert!(n > 50, "write failed after only {n} non-connecting headers");
            break;
        }
        if n % 10 == 0 && n < 50 {
            assert_score(&node, 20 * (n / 10), &format!("{n} non-connecting headers"));
        }
    }
    assert_banned(&node, &mut peer, &before, CLOSE_WITHIN, DEFAULT_BANTIME);
}

// ---------------------------------------------------------------------------------------------
// Score 50 per stall.

#[test]
fn a_peer_that_stalls_a_requested_block_twice_is_banned() {
    let (node, before, mut peer) = setup("stall", &["--p2p-stall-timeout", "2"]);
    // Answer the node's getheaders with 2 valid headers on its tip, then never send the blocks.
    let asked = peer.wait_for("getheaders", Duration::from_secs(10));
    let run = valid_chain(node.tip(), 2);
    let announced: Vec<BlockHash> = run.iter().map(Header::block_hash).collect();
    peer.send(NetworkMessage::Headers(run))
        .expect("send headers");
    let started = Instant::now();
    let close = peer.wait_closed(Duration::from_secs(20));
    let asked_blocks = peer.seen.iter().filter(|c| *c == "getdata").count();
    if let Err(e) = close {
        panic!(
            "not disconnected: {e}; getheaders received: {}, getdata received: {asked_blocks}; getpeerinfo {}",
            asked.is_some(),
            node.rpc("getpeerinfo", json!([]))
        );
    }
    // We are its only peer: the second stall needs the block asked of us again.
    assert!(
        asked_blocks >= 2,
        "banned after {asked_blocks} getdata for the blocks {announced:?}, want a request and its retry (the node sent {:?})",
        peer.seen
    );
    // At least one 2 s stall timeout must pass before any stall is scored.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "banned after {:?}, before a 2 s stall timeout could pass",
        started.elapsed()
    );
    assert_banned(&node, &mut peer, &before, Duration::ZERO, DEFAULT_BANTIME);
}

/// A peer that begins a big frame and never finishes it holds read budget the node cannot
/// drain: past the stall timeout it is dropped and scored 50 (as a stalled block): not banned
/// at the default score of 100, banned with `--banscore 50`.
#[test]
fn a_peer_that_leaves_a_frame_unfinished_is_dropped_and_scored_50() {
    let mut bytes = claimed_header("block", 1_000_000);
    bytes.extend_from_slice(&[0u8; 100_000]);
    for banscore in ["100", "50"] {
        let (node, before, mut peer) = setup(
            &format!("unfinished-{banscore}"),
            &["--p2p-stall-timeout", "2", "--banscore", banscore],
        );
        let started = Instant::now();
        peer.send_bytes(&bytes).expect("send a partial frame");
        if banscore == "50" {
            assert_banned(
                &node,
                &mut peer,
                &before,
                Duration::from_secs(15),
                DEFAULT_BANTIME,
            );
        } else if let Err(e) = peer.wait_closed(Duration::from_secs(15)) {
            panic!(
                "not disconnected: {e}; getpeerinfo {}",
                node.rpc("getpeerinfo", json!([]))
            );
        } else {
            assert!(node.listbanned().is_empty(), "{:?}", node.listbanned());
        }
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "dropped after {:?}, before the 2 s stall timeout",
            started.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Not bans.

#[test]
fn wrong_network_magic_disconnects_without_a_ban() {
    let node = Node::start("wrong-magic", &[]);
    node.generate(1);
    let before = node.chain();
    let mut peer = Peer::connect(node.port);
    peer.send_bytes(&frame_with(MAINNET, version_message()))
        .expect("send mainnet version");
    peer.wait_closed(CLOSE_WITHIN)
        .unwrap_or_else(|e| panic!("a mainnet-magic peer was not disconnected: {e}"));
    assert!(
        !peer.seen.iter().any(|c| c == "verack"),
        "the node acknowledged a mainnet version: {:?}",
        peer.seen
    );
    // Give a (wrong) ban time to land before checking there is none.
    std::thread::sleep(Duration::from_millis(500));
    let list = node.listbanned();
    assert!(list.is_empty(), "wrong magic got a ban: {list:?}");
    assert_accepted(node.port, "after a wrong-magic peer");
    let mut peer = Peer::handshake(node.port);
    assert!(peer.still_open(Duration::from_millis(500)));
    assert_eq!(node.chain(), before);
}

#[test]
fn setban_add_refuses_and_setban_remove_readmits_127_0_0_1() {
    let node = Node::start("setban", &[]);
    node.generate(1);
    let before = node.chain();
    assert_accepted(node.port, "before setban");
    node.rpc("setban", json!(["127.0.0.1", "add", 60]));
    assert_listed(&node, 60);
    assert_refused(node.port);
    node.rpc("setban", json!(["127.0.0.1", "remove"]));
    let list = node.listbanned();
    assert!(list.is_empty(), "after setban remove: {list:?}");
    assert_accepted(node.port, "after setban remove");
    assert_eq!(node.chain(), before);
}

// ---------------------------------------------------------------------------------------------
// Memory held for what peers send.

/// The node's resident memory in bytes (VmRSS in /proc/PID/status).
fn rss(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.child.id()))
        .expect("read /proc/PID/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// A frame header for `command` that claims `length` payload bytes (checksum of nothing).
fn claimed_header(command: &str, length: u32) -> Vec<u8> {
    let mut out = raw_frame(command, &[], None);
    out[16..20].copy_from_slice(&length.to_le_bytes());
    out
}

/// Opens `peers` raw connections that each send `bytes` and then keep the connection open
/// without reading; the node's RSS growth once they have sent (or the node stopped taking
/// bytes) is returned.
fn rss_growth_for_peers(node: &Node, peers: usize, bytes: Vec<u8>) -> (u64, u64) {
    let before = rss(node);
    let bytes = std::sync::Arc::new(bytes);
    let mut streams = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..peers {
        let s = TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut w = s.try_clone().unwrap();
        let bytes = bytes.clone();
        writers.push(std::thread::spawn(move || {
            // A node that stops taking bytes makes this time out: fine, it is what we measure.
            let _ = w.write_all(&bytes);
        }));
        streams.push(s);
    }
    for w in writers {
        let _ = w.join();
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss(node);
    eprintln!(
        "{peers} peers: node RSS {} MB -> {} MB",
        before >> 20,
        after >> 20
    );
    drop(streams);
    (before, after)
}

#[test]
fn headers_claiming_4_mb_do_not_make_the_node_allocate_it() {
    let node = Node::start("prealloc", &[]);
    // 100 peers, each a 24-byte header claiming 3,999,999 payload bytes and 145 of them.
    let mut bytes = claimed_header("block", 3_999_999);
    bytes.extend_from_slice(&[0u8; 145]);
    let (before, after) = rss_growth_for_peers(&node, 100, bytes);
    let growth = after.saturating_sub(before);
    assert!(
        growth < 64 << 20,
        "RSS grew {} MB (from {} MB) for 100 peers that sent 169 bytes each",
        growth >> 20,
        before >> 20
    );
    // The node still answers.
    node.rpc("getblockcount", json!([]));
}

#[test]
fn partial_big_frames_of_many_peers_hold_a_bounded_total() {
    let node = Node::start("readbudget", &[]);
    // 50 peers, each 3.9 MB of a 4 MB block frame that never completes: 195 MB sent.
    let mut bytes = claimed_header("block", 3_999_999);
    bytes.resize(24 + 3_900_000, 0);
    let (before, after) = rss_growth_for_peers(&node, 50, bytes);
    let growth = after.saturating_sub(before);
    assert!(
        growth < 120 << 20,
        "RSS grew {} MB (from {} MB) for 50 peers holding 3.9 MB partial frames",
        growth >> 20,
        before >> 20
    );
    node.rpc("getblockcount", json!([]));
}

#[test]
fn bans_survive_a_restart() {
    let (node, before, mut peer) = setup("ban-restart", &["--bantime", "600"]);
    let payload = 42u64.to_le_bytes();
    peer.send_bytes(&raw_frame("ping", &payload, Some([0, 0, 0, 0])))
        .expect("send ping");
    assert!(peer.wait_closed(CLOSE_WITHIN).is_ok(), "not disconnected");
    assert_listed(&node, 600);
    let node = node.restart(&["--bantime", "600"]);
    assert_listed(&node, 600);
    assert_refused(node.port);
    assert_eq!(node.chain(), before);
    node.rpc("clearbanned", json!([]));
    let node = node.restart(&[]);
    assert!(
        node.listbanned().is_empty(),
        "clearbanned did not reach the file"
    );
}

#[test]
fn trailing_bytes_after_a_known_payload_are_ignored() {
    let (node, _before, mut peer) = setup("trailing", &[]);
    let mut payload = 42u64.to_le_bytes().to_vec();
    payload.extend_from_slice(b"a field from a newer version");
    peer.send_bytes(&raw_frame("ping", &payload, None))
        .expect("send ping");
    let pong = peer.wait_for("pong", Duration::from_secs(10));
    assert_eq!(pong.as_deref(), Some(&42u64.to_le_bytes()[..]), "no pong");
    assert!(peer.still_open(Duration::from_millis(500)));
    assert_eq!(node.banscore(), Some(0));
    assert!(node.listbanned().is_empty());
}

/// While a slow commit holds the chain (the store's test hook delays each commit 3 s), peers
/// asking for headers do not stall the node's async threads: another peer's ping is answered.
#[test]
fn a_slow_commit_does_not_stall_other_peers() {
    let dir = std::env::temp_dir().join(format!("miner-misbehave-slow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = Node::start_in_env(dir, &[], &[("MINER_TEST_HOOK_COMMIT_DELAY_MS", "3000")]);
    let mut askers: Vec<Peer> = (0..6).map(|_| Peer::handshake(node.port)).collect();
    let mut pinger = Peer::handshake(node.port);
    let (addr, auth) = (node.addr.clone(), node.auth.clone());
    let miner = std::thread::spawn(move || {
        let body = json!({"id": 1, "method": "generatetoaddress", "params": [1, "51"]}).to_string();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = write!(
            s,
            "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
    });
    // Into the commit's 3 s: the askers' getheaders wait on the chain lock.
    std::thread::sleep(Duration::from_millis(700));
    for p in &mut askers {
        let _ = p.send(NetworkMessage::GetHeaders(
            bitcoin::p2p::message_blockdata::GetHeadersMessage {
                version: 70015,
                locator_hashes: vec![],
                stop_hash: BlockHash::all_zeros(),
            },
        ));
    }
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    pinger.send(NetworkMessage::Ping(7)).expect("send ping");
    let pong = pinger.wait_for("pong", Duration::from_secs(10));
    let took = sent.elapsed();
    let _ = miner.join();
    assert!(pong.is_some(), "no pong");
    assert!(
        took < Duration::from_millis(1000),
        "pong took {took:?} while a commit was held"
    );
}
