//! `miner node`s peering over Bitcoin's P2P protocol on 127.0.0.1: real processes, free ports,
//! temporary data directories, low difficulty so `generatetoaddress` is instant.

use base64::Engine;
use bitcoin::hashes::Hash;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    addr: String,
    auth: String,
    dir: std::path::PathBuf,
    /// The P2P port it listens on.
    port: u16,
}

impl Node {
    /// Starts a node listening for peers on a free port and dialing `connect`.
    fn start(name: &str, connect: &[u16]) -> Node {
        let dir = std::env::temp_dir().join(format!("miner-p2p-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut command = Command::new(env!("CARGO_BIN_EXE_miner"));
        command
            .args(["node", "--rpcport", "0", "--threads", "1", "-d", "2"])
            .arg("--datadir")
            .arg(&dir)
            .args(["--listen", "0"]);
        for p in connect {
            command.args(["--connect", &format!("127.0.0.1:{p}")]);
        }
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("start miner node");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut addr = String::new();
        let mut cookie = dir.join(".cookie");
        let mut banner = String::new();
        let mut port = 0;
        let started = Instant::now();
        while addr.is_empty() && started.elapsed() < Duration::from_secs(20) {
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
            "the node did not start: {banner}"
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

    fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"id": 1, "method": method, "params": params}).to_string();
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
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
        serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("{e}: {reply}"))["result"]
            .clone()
    }

    fn best(&self) -> Value {
        self.rpc("getbestblockhash", json!([]))
    }

    fn generate(&self, n: u64) {
        let r = self.rpc("generatetoaddress", json!([n, "51"]));
        assert_eq!(r.as_array().map(Vec::len), Some(n as usize), "{r}");
    }

    fn peers(&self) -> usize {
        self.rpc("getpeerinfo", json!([]))
            .as_array()
            .map_or(0, Vec::len)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

fn same_tip(nodes: &[&Node], limit: Duration) -> bool {
    eventually(limit, || {
        let want = nodes[0].best();
        nodes.iter().all(|n| n.best() == want)
    })
}

#[test]
fn blocks_mined_on_one_node_reach_its_peer_and_getpeerinfo_lists_both_ends() {
    let a = Node::start("pair-a", &[]);
    let b = Node::start("pair-b", &[a.port]);
    assert!(
        eventually(Duration::from_secs(10), || a.peers() == 1 && b.peers() == 1),
        "the nodes did not connect"
    );
    let info = b.rpc("getpeerinfo", json!([]));
    let peer = &info[0];
    assert_eq!(peer["inbound"], false);
    assert_eq!(peer["addr"], format!("127.0.0.1:{}", a.port));
    assert!(peer["subver"].as_str().unwrap().starts_with("/miner:"));
    for key in [
        "id",
        "version",
        "startingheight",
        "conntime",
        "bytessent",
        "bytesrecv",
    ] {
        assert!(peer[key].is_number(), "{key}: {peer}");
    }
    assert_eq!(a.rpc("getpeerinfo", json!([]))[0]["inbound"], true);
    a.generate(3);
    assert!(same_tip(&[&a, &b], Duration::from_secs(10)));
    // And the other way.
    b.generate(2);
    assert!(same_tip(&[&a, &b], Duration::from_secs(10)));
    assert_eq!(a.rpc("getblockcount", json!([])), 5);
}

#[test]
fn three_nodes_in_a_line_relay_from_one_end_to_the_other() {
    let a = Node::start("line-a", &[]);
    let b = Node::start("line-b", &[a.port]);
    let c = Node::start("line-c", &[b.port]);
    assert!(eventually(Duration::from_secs(10), || b.peers() == 2 && c.peers() == 1));
    for _ in 0..3 {
        a.generate(1);
    }
    assert!(same_tip(&[&a, &b, &c], Duration::from_secs(10)));
    assert_eq!(c.rpc("getblockcount", json!([])), 3);
}

#[test]
fn a_node_started_later_syncs_2500_blocks_across_more_than_one_headers_message() {
    let a = Node::start("late-a", &[]);
    a.generate(2500);
    let b = Node::start("late-b", &[a.port]);
    assert!(same_tip(&[&a, &b], Duration::from_secs(30)));
    assert_eq!(b.rpc("getblockcount", json!([])), 2500);
}

/// Sends `bytes` as a raw peer; true when the node closes the connection within a few seconds.
fn dropped_after(port: u16, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn garbage_wrong_magic_and_oversize_lengths_drop_the_peer_and_the_node_goes_on() {
    let a = Node::start("bad", &[]);
    a.generate(1);
    let before = a.best();
    let regtest = [0xfa, 0xbf, 0xb5, 0xda];
    let mut garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    garbage.extend([0u8; 8]);
    let mut mainnet = vec![0xf9, 0xbe, 0xb4, 0xd9];
    mainnet.extend(b"version\0\0\0\0\0");
    mainnet.extend([0u8; 8]);
    let mut oversize = regtest.to_vec();
    oversize.extend(b"block\0\0\0\0\0\0\0");
    oversize.extend(u32::MAX.to_le_bytes());
    oversize.extend([0u8; 4]);
    let mut bad_checksum = regtest.to_vec();
    bad_checksum.extend(b"ping\0\0\0\0\0\0\0\0");
    bad_checksum.extend(8u32.to_le_bytes());
    bad_checksum.extend([1u8; 4]);
    bad_checksum.extend([0u8; 8]);
    for (what, bytes) in [
        ("garbage", garbage),
        ("wrong magic", mainnet),
        ("oversize length", oversize),
        ("bad checksum", bad_checksum),
    ] {
        assert!(dropped_after(a.port, &bytes), "{what}: not disconnected");
        assert_eq!(a.best(), before, "{what}");
    }
    assert!(eventually(Duration::from_secs(5), || a.peers() == 0));
    a.generate(1);
    assert_eq!(a.rpc("getblockcount", json!([])), 2);
}

#[test]
fn separate_chains_meet_through_a_third_node_and_every_node_ends_on_the_most_work_tip() {
    let a = Node::start("fork-a", &[]);
    let b = Node::start("fork-b", &[]);
    a.generate(3);
    b.generate(5);
    let heavier = b.best();
    assert_ne!(a.best(), heavier);
    // C joins both: it takes B's heavier chain and relays it to A, which reorganizes.
    let c = Node::start("fork-c", &[a.port, b.port]);
    assert!(same_tip(&[&a, &b, &c], Duration::from_secs(20)));
    assert_eq!(a.best(), heavier);
    assert_eq!(a.rpc("getblockcount", json!([])), 5);
}

#[test]
fn a_peer_sending_an_invalid_block_is_disconnected_and_the_chain_is_unchanged() {
    use bitcoin::consensus::encode::serialize;
    use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
    use bitcoin::p2p::message_network::VersionMessage;
    use bitcoin::p2p::{address::Address, Magic, ServiceFlags};
    let a = Node::start("invalid", &[]);
    a.generate(1);
    let before = a.best();
    let magic = Magic::from_bytes([0xfa, 0xbf, 0xb5, 0xda]);
    let frame = |m: NetworkMessage| serialize(&RawNetworkMessage::new(magic, m));
    let here: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let version = VersionMessage::new(
        ServiceFlags::NONE,
        0,
        Address::new(&here, ServiceFlags::NONE),
        Address::new(&here, ServiceFlags::NONE),
        7,
        "/test/".into(),
        0,
    );
    let prev: bitcoin::BlockHash = before.as_str().unwrap().parse().unwrap();
    // No coinbase, zero merkle root: invalid whatever its hash.
    let block = bitcoin::Block {
        header: bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: bitcoin::TxMerkleNode::from_byte_array([0; 32]),
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as u32,
            bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata: vec![],
    };
    let mut bytes = frame(NetworkMessage::Version(version));
    bytes.extend(frame(NetworkMessage::Verack));
    bytes.extend(frame(NetworkMessage::Block(block)));
    assert!(dropped_after(a.port, &bytes), "not disconnected");
    assert_eq!(a.best(), before);
    assert_eq!(a.rpc("getblockcount", json!([])), 1);
}
