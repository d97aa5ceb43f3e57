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
        let connect: Vec<String> = connect.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        Node::start_with(name, &connect, &[])
    }

    /// Starts a node in a fresh data directory, dialing each `connect` (`ADDR:PORT[@MS]`), with
    /// `extra` arguments after the usual ones.
    fn start_with(name: &str, connect: &[String], extra: &[&str]) -> Node {
        let dir = std::env::temp_dir().join(format!("miner-p2p-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Node::resume(dir, connect, extra)
    }

    /// Starts a node on `dir` as it is (a restart keeps its chain).
    fn resume(dir: std::path::PathBuf, connect: &[String], extra: &[&str]) -> Node {
        Node::resume_env(dir, connect, extra, &[])
    }

    /// Starts a node on `dir` with `env` set in its environment (the store's test hooks).
    fn resume_env(
        dir: std::path::PathBuf,
        connect: &[String],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_miner"));
        command.envs(env.iter().copied());
        command
            .args(["node", "--rpcport", "0", "--threads", "1", "-d", "2"])
            .arg("--datadir")
            .arg(&dir)
            .args(["--listen", "0"]);
        for c in connect {
            command.args(["--connect", c]);
        }
        command.args(extra);
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

    /// Kills the node with SIGKILL (no shutdown of any kind) and hands back its data directory,
    /// left as the kill found it.
    fn kill9(mut self) -> std::path::PathBuf {
        self.child.kill().expect("SIGKILL the node");
        let _ = self.child.wait();
        // Drop then has no directory to remove.
        std::mem::take(&mut self.dir)
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

    fn height(&self) -> u64 {
        let h = self.rpc("getblockcount", json!([]));
        h.as_u64().unwrap_or_else(|| panic!("getblockcount: {h}"))
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
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
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
fn a_node_joining_late_syncs_10000_blocks() {
    // 10,000 blocks: five `headers` messages of at most 2000 each, and a long block download.
    let a = Node::start("late-a", &[]);
    for _ in 0..5 {
        a.generate(2000);
    }
    assert_eq!(a.height(), 10_000);
    let started = Instant::now();
    let b = Node::start("late-b", &[a.port]);
    assert!(
        same_tip(&[&a, &b], Duration::from_secs(180)),
        "B did not sync in 180 s: at height {}",
        b.height()
    );
    assert_eq!(b.height(), 10_000);
    eprintln!("10,000 blocks synced in {:?}", started.elapsed());
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

/// `127.0.0.1:PORT`, a `--connect` argument.
fn local(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn a_node_killed_with_sigkill_resyncs_what_it_missed_on_restart() {
    let a = Node::start("kill-a", &[]);
    let b = Node::start("kill-b", &[a.port]);
    let c = Node::start("kill-c", &[b.port]);
    assert!(
        eventually(Duration::from_secs(10), || b.peers() == 2 && c.peers() == 1),
        "the line did not connect"
    );
    a.generate(20);
    assert!(same_tip(&[&a, &b, &c], Duration::from_secs(20)));
    let had = c.height();
    assert_eq!(had, 20);
    let before: Vec<Value> = (0..=had)
        .map(|h| c.rpc("getblockhash", json!([h])))
        .collect();
    // SIGKILL: no shutdown, no flush; the data directory is left as the kill found it.
    let dir = c.kill9();
    a.generate(50);
    assert!(same_tip(&[&a, &b], Duration::from_secs(20)));
    let c = Node::resume(dir, &[local(b.port)], &[]);
    // Its blocks survived the kill: right after the restart, and all along the resync, it never
    // goes below what it had.
    let mut lowest = c.height();
    let synced = eventually(Duration::from_secs(60), || {
        lowest = lowest.min(c.height());
        c.best() == a.best()
    });
    assert!(
        lowest >= had,
        "C went down to height {lowest}, it had {had}"
    );
    assert!(
        synced,
        "C did not resync: at height {}, A at {}",
        c.height(),
        a.height()
    );
    assert_eq!(c.height(), 70);
    assert_eq!(c.height(), a.height());
    for (h, hash) in before.iter().enumerate() {
        assert_eq!(&c.rpc("getblockhash", json!([h])), hash, "height {h}");
    }
}

/// `getchaintips` of `node` has `hash` with this status and branch length.
fn has_tip(node: &Node, hash: &Value, status: &str, branchlen: u64) -> bool {
    node.rpc("getchaintips", json!([]))
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| &t["hash"] == hash && t["status"] == status && t["branchlen"] == branchlen)
}

#[test]
fn two_nodes_mining_at_once_fork_and_every_node_ends_on_the_most_work_tip() {
    // Every block announcement and block is held 500 ms, so blocks mined on A and C at nearly
    // the same time cross in flight: each node mines on its own tip, not on the other's block.
    let delay = ["--relay-delay", "500"];
    let a = Node::start_with("race-a", &[], &delay);
    let b = Node::start_with("race-b", &[local(a.port)], &delay);
    let c = Node::start_with("race-c", &[local(a.port), local(b.port)], &delay);
    assert!(
        eventually(Duration::from_secs(10), || {
            a.peers() == 2 && b.peers() == 2 && c.peers() == 2
        }),
        "the triangle did not connect"
    );
    let height_of = |n: &Node, hash: &Value| {
        let h = n.rpc("getblockheader", json!([hash]));
        h["height"]
            .as_u64()
            .unwrap_or_else(|| panic!("{hash}: {h}"))
    };
    let mut fork = None;
    for attempt in 1..=5 {
        assert!(
            same_tip(&[&a, &b, &c], Duration::from_secs(20)),
            "attempt {attempt}: the nodes did not agree before the race"
        );
        let base = a.height();
        let (on_a, on_c) = std::thread::scope(|s| {
            let ta = s.spawn(|| a.rpc("generatetoaddress", json!([1, "51"]))[0].clone());
            // Another payout than A's: the same template mined in the same second on both
            // would otherwise be the very same block.
            let tc = s.spawn(|| c.rpc("generatetoaddress", json!([1, "52"]))[0].clone());
            (ta.join().unwrap(), tc.join().unwrap())
        });
        assert!(on_a.is_string() && on_c.is_string(), "{on_a} {on_c}");
        assert_ne!(on_a, on_c);
        if height_of(&a, &on_a) == base + 1 && height_of(&c, &on_c) == base + 1 {
            fork = Some((on_a, on_c, base));
            break;
        }
        eprintln!(
            "attempt {attempt}: no fork: A mined {on_a} at {}, C {on_c} at {} (base {base})",
            height_of(&a, &on_a),
            height_of(&c, &on_c)
        );
    }
    let (on_a, on_c, base) = fork.expect("no fork in 5 attempts");
    // Each node sees both blocks: the one it has first active, the other a fork of one block.
    for (n, name) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        assert!(
            eventually(Duration::from_secs(20), || {
                let tips = n.rpc("getchaintips", json!([]));
                [&on_a, &on_c].iter().all(|h| {
                    tips.as_array()
                        .into_iter()
                        .flatten()
                        .any(|t| &&t["hash"] == h && t["height"] == base + 1)
                })
            }),
            "{name} did not see both blocks at {}: {}",
            base + 1,
            n.rpc("getchaintips", json!([]))
        );
        let active = n.best();
        let other = if active == on_a { &on_c } else { &on_a };
        assert!(active == on_a || active == on_c, "{name}: {active}");
        assert!(has_tip(n, other, "valid-fork", 1), "{name}");
    }
    // A breaks the tie: its next block makes its branch the most work.
    let winner = a.rpc("generatetoaddress", json!([1, "51"]))[0].clone();
    let parent = a.rpc("getblockheader", json!([winner]))["previousblockhash"].clone();
    assert!(parent == on_a || parent == on_c, "{parent}");
    let loser = if parent == on_a { &on_c } else { &on_a };
    assert!(
        same_tip(&[&a, &b, &c], Duration::from_secs(20)),
        "the nodes did not agree after A's next block"
    );
    assert_eq!(a.best(), winner);
    for (n, name) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        assert_eq!(n.height(), base + 2, "{name}");
        assert_eq!(n.best(), winner, "{name}");
        assert!(
            has_tip(n, &winner, "active", 0) && has_tip(n, loser, "valid-fork", 1),
            "{name}: {}",
            n.rpc("getchaintips", json!([]))
        );
    }
}

#[test]
fn a_peer_gets_a_longer_branch_from_a_third_node_over_several_peers() {
    let a = Node::start("multi-a", &[]);
    a.generate(2000);
    a.generate(1000);
    let b = Node::start("multi-b", &[a.port]);
    let c = Node::start("multi-c", &[a.port]);
    assert!(
        same_tip(&[&a, &b, &c], Duration::from_secs(90)),
        "B and C did not sync from A"
    );
    let d = Node::start("multi-d", &[a.port, b.port, c.port]);
    assert!(
        same_tip(&[&a, &b, &c, &d], Duration::from_secs(90)),
        "D did not sync: at height {}; its peers: {:#}; banned: {}",
        d.height(),
        d.rpc("getpeerinfo", json!([])),
        d.rpc("listbanned", json!([]))
    );
    assert_eq!(d.height(), 3000);
    let info = d.rpc("getpeerinfo", json!([]));
    let peers = info.as_array().expect("getpeerinfo");
    assert_eq!(peers.len(), 3, "{info:#}");
    // The blocks came from more than one peer (in parallel). Each peer may have sent D the whole
    // header chain (3000 headers of 81 bytes: 243 kB), so a peer counts as a block source only
    // past that plus 50 kB of blocks (some 270 of these blocks of about 185 bytes).
    let headers = 3000 * 81;
    let sources = peers
        .iter()
        .filter(|p| p["bytesrecv"].as_u64().unwrap_or(0) > headers + 50_000)
        .count();
    assert!(
        sources >= 2,
        "blocks came from fewer than two peers: {info:#}"
    );
}

#[test]
fn blocks_a_peer_was_fetching_when_it_died_are_fetched_from_another_peer() {
    // A holds 3000 blocks; B syncs them, then restarts with a 400 ms relay delay. D dials B
    // alone; once D has blocks in flight from B, A (restarted) dials D and offers the same
    // chain: the blocks B is fetching are queued for A too (deferred while B has them). B is
    // killed; D must get them from A.
    let a = Node::start_with("died-a", &[], &[]);
    for _ in 0..3 {
        a.generate(1000);
    }
    let b = Node::start_with("died-b", &[local(a.port)], &[]);
    assert!(same_tip(&[&a, &b], Duration::from_secs(60)));
    let a_dir = a.kill9();
    let b_dir = b.kill9();
    let b = Node::resume(b_dir, &[], &["--relay-delay", "400"]);
    let d = Node::start_with("died-d", &[local(b.port)], &["--p2p-stall-timeout", "20"]);
    let from_b = format!("127.0.0.1:{}", b.port);
    let b_busy = eventually(Duration::from_secs(20), || {
        d.rpc("getpeerinfo", json!([]))
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["addr"] == from_b && p["blocks_in_flight"].as_u64() > Some(0))
    });
    assert!(b_busy, "D never had blocks in flight from B");
    let a = Node::resume(a_dir, &[local(d.port)], &[]);
    assert!(
        eventually(Duration::from_secs(10), || d.peers() == 2),
        "A did not connect to D"
    );
    // Let A's headers arrive while B still holds its blocks.
    std::thread::sleep(Duration::from_millis(100));
    let before = d.height();
    drop(b);
    // Well inside the 20 s stall timeout: recovered by the other peer, not by a stall.
    assert!(
        same_tip(&[&a, &d], Duration::from_secs(15)),
        "D stuck at {} (was {before} when B died)",
        d.height()
    );
    assert_eq!(d.height(), 3000);
}

/// Every submit path counts the same way in `getnodestats`: a block from a peer or from
/// `generatetoaddress` is accepted, the same block again through `submitblock` a duplicate
/// (not a rejection).
#[test]
fn submit_counters_are_the_same_on_every_path() {
    let a = Node::start("count-a", &[]);
    let b = Node::start("count-b", &[a.port]);
    assert!(
        eventually(Duration::from_secs(10), || a.peers() == 1 && b.peers() == 1),
        "the nodes did not connect"
    );
    a.generate(2);
    assert!(same_tip(&[&a, &b], Duration::from_secs(10)));
    let hash = a.rpc("getblockhash", json!([1]));
    let hex = a.rpc("getblock", json!([hash, 0]));
    assert_eq!(b.rpc("submitblock", json!([hex])), "duplicate");
    assert_eq!(a.rpc("submitblock", json!([hex])), "duplicate");
    for (node, accepted) in [(&a, 2), (&b, 2)] {
        let stats = node.rpc("getnodestats", json!([]));
        assert_eq!(stats["blocks_accepted"], accepted, "{stats}");
        assert_eq!(stats["blocks_duplicate"], 1, "{stats}");
        assert_eq!(stats["blocks_rejected"], 0, "{stats}");
        assert_eq!(stats["store_faults"], 0, "{stats}");
    }
}

/// A sync that hits store faults (a full disk: the store's test hook fails the first commits)
/// resumes by itself once commits succeed again: the blocks are asked for again.
#[test]
fn a_sync_resumes_after_store_faults_clear() {
    let a = Node::start("fault-a", &[]);
    a.generate(30);
    let dir = std::env::temp_dir().join(format!("miner-p2p-fault-b-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let b = Node::resume_env(
        dir,
        &[format!("127.0.0.1:{}", a.port)],
        &["--p2p-stall-timeout", "4"],
        &[("MINER_TEST_HOOK_FAIL_COMMITS", "3")],
    );
    assert!(
        same_tip(&[&a, &b], Duration::from_secs(25)),
        "b did not reach a's tip: a {} b {}; b's peers {}",
        a.height(),
        b.height(),
        b.rpc("getpeerinfo", json!([]))
    );
    let stats = b.rpc("getnodestats", json!([]));
    assert!(stats["store_faults"].as_u64() >= Some(3), "{stats}");
    // Not the peer's fault: it is still connected, not banned.
    assert_eq!(b.peers(), 1);
    assert_eq!(b.rpc("listbanned", json!([])), json!([]));
}
