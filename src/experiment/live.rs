//! Live runs: the sims' scenarios on real nodes with real mining.
//!
//! A live run starts real nodes in this process — the code of `miner node`: a chain store
//! (redb) in a temporary directory, the JSON-RPC server and, for honest nodes, P2P over
//! 127.0.0.1 — and real miners — the loop of `miner mine --node`: getblocktemplate with a
//! longpoll, SHA-256d on the CPU, submitblock — each held to its share of the hash rate by
//! [`RateLimited`] (`--max-hashrate`). The chain's difficulty D is the expected number of
//! hashes per block, so D = total hash rate × block time.
//!
//! Honest nodes peer with each other (every pair), each holding its block announcements for
//! the relay delay (`miner node --relay-delay`). An attacker (double-spend, finality) or a
//! selfish pool is a node of its own with no peers: its blocks reach the honest network only
//! when the driver publishes them (`submitblock` to honest nodes, as a pool would broadcast),
//! and it follows the honest chain when the driver hands it the honest blocks. The driver
//! hears of every block the moment its miner's `submitblock` returns, and applies the same
//! rules as the sims (`race`, `selfish`); which branch wins is decided by the nodes' own fork
//! choice, and every figure is read back from the nodes' chains over RPC.

use crate::backend::{CpuBackend, CpuBackendError, RateLimited};
use crate::chain::{Chain, ChainParams, StoreError};
use crate::client::{self, ClientError, ClientOptions, RpcClient, Submitted};
use crate::hash::{display_hash, Kernel};
use crate::node::p2p::{Config, Dial, Settings};
use crate::node::{Credentials, NodeState, ServeError, Server};
use crate::pow::retarget::RetargetParams;
use crate::pow::{Difficulty, ParseDifficultyError};
use bitcoin::hashes::Hash;
use bitcoin::ScriptBuf;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one backend call of a live miner runs before it looks for a new tip.
const SCAN_SLICE: Duration = Duration::from_millis(10);
/// RPC calls of the driver.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the honest nodes have to connect to each other before a run gives up.
const CONNECT_WAIT: Duration = Duration::from_secs(20);

/// Why a live run stopped before it had its figures. Each variant's message names its own
/// reason; where an underlying error is the reason it is `source()` and not repeated in the
/// message (the CLI prints the chain with `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The hash rate is below the 100 H/s a live run needs (or not a number).
    #[error("hash rate {0} H/s: a live run needs at least 100 H/s")]
    HashRate(f64),
    /// Hash rate × block time (the difficulty, in hashes per block) is below 4 or not finite.
    #[error("hash rate × block time = {0} hashes per block: too few for a difficulty (at least 4); raise --hashrate or --block-time")]
    TooFewHashes(f64),
    /// The difficulty (hashes per block) has no representation as a target.
    #[error("difficulty {value}")]
    Difficulty {
        /// Hash rate × block time.
        value: f64,
        /// Why it was refused.
        source: ParseDifficultyError,
    },
    /// A P2P listener on 127.0.0.1 could not be bound or read back.
    #[error("cannot listen on 127.0.0.1")]
    Listen(#[source] std::io::Error),
    /// The run's temporary store directory could not be created.
    #[error("cannot create {}", path.display())]
    StoreDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Node `index`'s chain store did not open.
    #[error("node {index}: chain store")]
    ChainStore {
        /// The node's index in the run.
        index: usize,
        /// The store's error.
        source: StoreError,
    },
    /// Node `index`'s CPU backend (for `generatetoaddress`) did not start.
    #[error("node {index}")]
    NodeBackend {
        /// The node's index in the run.
        index: usize,
        /// The backend's error.
        source: CpuBackendError,
    },
    /// Node `index`'s RPC server did not start.
    #[error("node {index}")]
    Server {
        /// The node's index in the run.
        index: usize,
        /// The server's error.
        source: ServeError,
    },
    /// Node `index`'s RPC server has no local address to call.
    #[error("node {index}: no RPC address")]
    NoRpcAddress {
        /// The node's index in the run.
        index: usize,
    },
    /// Miner `id`'s CPU backend did not start.
    #[error("miner {id}")]
    Miner {
        /// The miner's id in the run.
        id: usize,
        /// The backend's error.
        source: CpuBackendError,
    },
    /// A node's or miner's thread could not be spawned.
    #[error("cannot start thread {thread}")]
    Spawn {
        /// The thread's name (`live-node-N`, `live-miner-N`).
        thread: String,
        /// The OS's error.
        source: std::io::Error,
    },
    /// The honest nodes were not all connected to each other within 20 s (`CONNECT_WAIT`).
    #[error("the honest nodes did not connect to each other in {} s", CONNECT_WAIT.as_secs())]
    NotConnected,
    /// An RPC call to a node failed.
    #[error("{method}")]
    Rpc {
        /// The JSON-RPC method.
        method: &'static str,
        /// The client's error.
        source: ClientError,
    },
    /// A node answered an RPC call with a value of the wrong shape.
    #[error("{method} answered {value}")]
    Answer {
        /// The JSON-RPC method.
        method: &'static str,
        /// What the node answered.
        value: Value,
    },
    /// A node refused a block the driver relayed to it (`submitblock` answered neither null,
    /// `inconclusive` nor `duplicate`).
    #[error("submitblock refused a relayed block: {0}")]
    Refused(Value),
}

/// The network's common settings.
#[derive(Clone, Debug)]
pub struct LiveParams {
    /// All miners' hash rate together, H/s.
    pub hashrate: f64,
    /// Mean block interval, seconds.
    pub block_time_s: f64,
    /// The run stops (with what it has) after this long.
    pub timeout: Duration,
    /// Whether to print progress lines on stderr.
    pub verbose: bool,
}

impl LiveParams {
    /// Expected hashes per block.
    pub fn difficulty(&self) -> f64 {
        self.hashrate * self.block_time_s
    }

    fn check(&self) -> Result<(), LiveError> {
        if !(self.hashrate.is_finite() && self.hashrate >= 100.0) {
            return Err(LiveError::HashRate(self.hashrate));
        }
        let d = self.difficulty();
        if !(d.is_finite() && d >= 4.0) {
            return Err(LiveError::TooFewHashes(d));
        }
        Ok(())
    }
}

/// A block a live miner found, as its `submitblock` answered.
#[derive(Clone, Debug)]
pub struct Found {
    /// The miner's id in the run.
    pub miner: usize,
    /// The node its miner submits to.
    pub node: usize,
    /// Its height.
    pub height: u32,
    /// Display hash (as RPC prints it).
    pub hash: String,
    /// Display hash of its parent.
    pub parent: String,
    /// It became its node's tip (`submitblock` answered null).
    pub tip: bool,
    /// The node stored it (tip or side branch).
    pub accepted: bool,
}

impl Found {
    fn from(miner: usize, node: usize, s: &Submitted) -> Found {
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&s.header[4..36]);
        let side = s.rejected.as_deref() == Some("inconclusive");
        Found {
            miner,
            node,
            height: s.height,
            hash: display_hash(&s.hash),
            parent: display_hash(&prev),
            tip: s.rejected.is_none(),
            accepted: s.rejected.is_none() || side,
        }
    }
}

/// Where `settle_breaking_ties` pays its tie-breaking block (a regtest address).
const TIE_BREAK_ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// One node: the server of `miner node`, on its own thread and runtime.
pub struct Node {
    /// A JSON-RPC client of the node (its cookie credentials).
    pub rpc: RpcClient,
    state: Arc<NodeState>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    fn call(&self, method: &'static str, params: Value) -> Result<Value, LiveError> {
        self.rpc
            .call(method, params, RPC_TIMEOUT)
            .map_err(|source| LiveError::Rpc { method, source })
    }

    /// Calls `method` and reads its answer as a string.
    fn call_str(&self, method: &'static str, params: Value) -> Result<String, LiveError> {
        match self.call(method, params)? {
            Value::String(s) => Ok(s),
            value => Err(LiveError::Answer { method, value }),
        }
    }

    /// Tip height.
    pub fn height(&self) -> Result<u32, LiveError> {
        let method = "getblockcount";
        let value = self.call(method, json!([]))?;
        match value.as_u64().and_then(|h| u32::try_from(h).ok()) {
            Some(h) => Ok(h),
            None => Err(LiveError::Answer { method, value }),
        }
    }

    /// Tip hash.
    pub fn best(&self) -> Result<String, LiveError> {
        self.call_str("getbestblockhash", json!([]))
    }

    /// Hash of the active chain's block at `height`.
    pub fn hash_at(&self, height: u32) -> Result<String, LiveError> {
        self.call_str("getblockhash", json!([height]))
    }

    fn raw(&self, hash: &str) -> Result<String, LiveError> {
        self.call_str("getblock", json!([hash, 0]))
    }

    /// Submits a block (hex); Ok whether it became the tip, went to a side branch or was
    /// already there.
    fn submit(&self, raw: &str) -> Result<(), LiveError> {
        match self.call("submitblock", json!([raw]))? {
            Value::Null => Ok(()),
            Value::String(s) if s == "inconclusive" || s == "duplicate" => Ok(()),
            other => Err(LiveError::Refused(other)),
        }
    }

    /// The active chain's hashes at heights `from..=to`.
    pub fn chain(&self, from: u32, to: u32) -> Result<Vec<String>, LiveError> {
        (from..=to).map(|h| self.hash_at(h)).collect()
    }

    /// `branchlen` of every `valid-fork` tip, by tip hash.
    fn fork_tips(&self) -> Result<Vec<(String, u64)>, LiveError> {
        let v = self.call("getchaintips", json!([]))?;
        Ok(v.as_array()
            .map(|tips| {
                tips.iter()
                    .filter(|t| t["status"] == "valid-fork")
                    .filter_map(|t| {
                        Some((t["hash"].as_str()?.to_string(), t["branchlen"].as_u64()?))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn peers(&self) -> Result<usize, LiveError> {
        let v = self.call("getpeerinfo", json!([]))?;
        Ok(v.as_array().map_or(0, Vec::len))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.state.shut_down();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One miner: `client::run` on its own thread with a rate-limited one-thread CPU backend.
struct Miner {
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Nodes, miners and the channel their blocks come through. Dropping it stops the miners,
/// then the nodes, and removes the stores.
pub struct Net {
    miners: Vec<Option<Miner>>,
    /// The nodes, honest ones first, by index.
    pub nodes: Vec<Node>,
    dir: PathBuf,
    tx: Sender<Found>,
    rx: Receiver<Found>,
    kernel: Kernel,
    /// Every block found so far, in the order the driver heard of it.
    pub found: Vec<Found>,
    /// When the nodes were up and connected: the run's clock starts here.
    pub started: Instant,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.miners.clear();
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Net {
    /// `honest` nodes peering with each other (announcements held `delay`) and `isolated`
    /// nodes with no peers, all on a fixed-difficulty regtest chain of `params.difficulty()`.
    pub fn start(
        params: &LiveParams,
        honest: usize,
        delay: Duration,
        isolated: usize,
    ) -> Result<Net, LiveError> {
        params.check()?;
        let dir = std::env::temp_dir().join(format!(
            "miner-live-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let (tx, rx) = channel();
        let mut net = Net {
            miners: Vec::new(),
            nodes: Vec::new(),
            dir,
            tx,
            rx,
            kernel: Kernel::best(),
            found: Vec::new(),
            started: Instant::now(),
        };
        let difficulty =
            Difficulty::from_f64(params.difficulty()).map_err(|source| LiveError::Difficulty {
                value: params.difficulty(),
                source,
            })?;
        let listeners = (0..honest)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(LiveError::Listen)?;
        let addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<Result<Vec<_>, _>>()
            .map_err(LiveError::Listen)?;
        for (i, listener) in listeners.into_iter().enumerate() {
            // Node i dials every node before it: one connection per pair.
            let dials = addrs[..i]
                .iter()
                .map(|&addr| Dial {
                    addr,
                    relay_delay: None,
                })
                .collect();
            let node = net.start_node(&difficulty, Some((listener, dials, delay)))?;
            net.nodes.push(node);
        }
        for _ in 0..isolated {
            let node = net.start_node(&difficulty, None)?;
            net.nodes.push(node);
        }
        // Wait until every honest pair is connected.
        let until = Instant::now() + CONNECT_WAIT;
        for node in &net.nodes[..honest] {
            while node.peers()? < honest - 1 {
                if Instant::now() > until {
                    return Err(LiveError::NotConnected);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        net.started = Instant::now();
        Ok(net)
    }

    fn start_node(
        &self,
        difficulty: &Difficulty,
        p2p: Option<(TcpListener, Vec<Dial>, Duration)>,
    ) -> Result<Node, LiveError> {
        let index = self.nodes.len();
        let params = ChainParams::regtest();
        let retarget =
            RetargetParams::fixed(difficulty.to_target().to_compact_lossy(), params.pow_limit);
        let store = self.dir.join(format!("node{index}")).join("chain.redb");
        if let Some(parent) = store.parent() {
            std::fs::create_dir_all(parent).map_err(|source| LiveError::StoreDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let chain = Chain::open(&store, params, retarget)
            .map_err(|source| LiveError::ChainStore { index, source })?;
        let backend = CpuBackend::new(self.kernel, Some(1))
            .map_err(|source| LiveError::NodeBackend { index, source })?;
        let state = Arc::new(NodeState::new(chain, Box::new(backend)));
        let credentials = Credentials::cookie();
        let server = Server::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            state.clone(),
            credentials.clone(),
            None,
        )
        .map_err(|source| LiveError::Server { index, source })?;
        let addr = server
            .local_addr()
            .ok_or(LiveError::NoRpcAddress { index })?;
        let server = match p2p {
            Some((listener, connect, relay_delay)) => server.with_p2p(Config {
                listen: Some(listener),
                connect,
                magic: None,
                settings: Settings {
                    relay_delay,
                    ..Settings::default()
                },
                max_inbound: crate::node::p2p::MAX_INBOUND,
            }),
            None => server,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            let name = format!("live-node-{index}");
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || server.run(stop))
                .map_err(|source| LiveError::Spawn {
                    thread: name,
                    source,
                })?
        };
        Ok(Node {
            rpc: RpcClient::new(
                &format!("http://{addr}"),
                &credentials.user,
                &credentials.password,
            ),
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Starts miner `id` on node `node` at `rate` H/s (replacing one with that id).
    pub fn start_miner(&mut self, id: usize, node: usize, rate: f64) -> Result<(), LiveError> {
        let inner = CpuBackend::new(self.kernel, Some(1))
            .map_err(|source| LiveError::Miner { id, source })?;
        let backend = RateLimited::new(Box::new(inner), rate);
        let rpc = self.nodes[node].rpc.clone();
        let tx = self.tx.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        // Each miner pays to its own script, so every block's finder is on the chain too.
        let mut tag = [0u8; 20];
        tag[..8].copy_from_slice(&(id as u64).to_le_bytes());
        let payout = ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(tag));
        let thread = {
            let cancel = cancel.clone();
            let name = format!("live-miner-{id}");
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let options = ClientOptions {
                        payout,
                        blocks: None,
                        max_backoff: Duration::from_secs(1),
                        scan_slice: SCAN_SLICE,
                    };
                    let progress = AtomicU64::new(0);
                    let _ = client::run(
                        &rpc,
                        &backend,
                        &options,
                        &cancel,
                        &progress,
                        |s| {
                            let _ = tx.send(Found::from(id, node, s));
                        },
                        |_| {},
                    );
                })
                .map_err(|source| LiveError::Spawn {
                    thread: name,
                    source,
                })?
        };
        if self.miners.len() <= id {
            self.miners.resize_with(id + 1, || None);
        }
        self.miners[id] = Some(Miner {
            cancel,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops miner `id` (its last block, if any, still comes through the channel).
    pub fn stop_miner(&mut self, id: usize) {
        if let Some(slot) = self.miners.get_mut(id) {
            *slot = None;
        }
    }

    /// Stops every miner.
    pub fn stop_miners(&mut self) {
        self.miners.clear();
    }

    /// The next block found, waiting at most `wait`.
    pub fn next(&mut self, wait: Duration) -> Option<Found> {
        match self.rx.recv_timeout(wait) {
            Ok(f) => {
                self.found.push(f.clone());
                Some(f)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Takes every block already reported.
    pub fn drain(&mut self) {
        while let Ok(f) = self.rx.try_recv() {
            self.found.push(f);
        }
    }

    /// Copies `from`'s active chain at heights `lo..=hi` to node `to`.
    pub fn copy(&self, from: usize, to: usize, lo: u32, hi: u32) -> Result<(), LiveError> {
        for h in lo..=hi {
            let hash = self.nodes[from].hash_at(h)?;
            let raw = self.nodes[from].raw(&hash)?;
            self.nodes[to].submit(&raw)?;
        }
        Ok(())
    }

    /// The highest height at or below `at` where nodes `a` and `b` have the same block.
    pub fn common(&self, a: usize, b: usize, at: u32) -> Result<u32, LiveError> {
        let mut h = at.min(self.nodes[a].height()?).min(self.nodes[b].height()?);
        while h > 0 && self.nodes[a].hash_at(h)? != self.nodes[b].hash_at(h)? {
            h -= 1;
        }
        Ok(h)
    }

    /// Waits (at most `wait` each time) until nodes `0..n` have the same tip. An equal-work tie
    /// left when the miners stopped never resolves by itself (each node keeps the branch it saw
    /// first), so then node 0 mines one more block (`generatetoaddress`), as the next block of a
    /// longer run would, and the nodes take the branch it extends; at most three times. The
    /// extra blocks are found by no miner of the run, so no figure counts them.
    pub fn settle_breaking_ties(
        &self,
        n: usize,
        wait: Duration,
        verbose: bool,
    ) -> Result<bool, LiveError> {
        for _ in 0..3 {
            if self.settle(n, wait)? {
                return Ok(true);
            }
            say(
                verbose,
                "  the nodes ended on tied branches: node 0 mines one more block (not counted) to settle them",
            );
            self.nodes[0].call("generatetoaddress", json!([1, TIE_BREAK_ADDRESS]))?;
        }
        self.settle(n, wait)
    }

    /// Waits (at most `wait`) until nodes `0..n` have the same tip.
    pub fn settle(&self, n: usize, wait: Duration) -> Result<bool, LiveError> {
        let until = Instant::now() + wait;
        loop {
            let tips = self.nodes[..n]
                .iter()
                .map(Node::best)
                .collect::<Result<HashSet<_>, _>>()?;
            if tips.len() <= 1 {
                return Ok(true);
            }
            if Instant::now() > until {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Blocks stored by their own node (tip or side branch), by hash, with their miner.
    fn accepted(&self) -> HashMap<String, usize> {
        self.found
            .iter()
            .filter(|f| f.accepted)
            .map(|f| (f.hash.clone(), f.miner))
            .collect()
    }
}

fn say(verbose: bool, text: &str) {
    if verbose {
        eprintln!("{text}");
    }
}

/// A live forks run.
#[derive(Clone, Debug)]
pub struct ForksLive {
    /// Each node's miner's share of the hash rate (one node per share).
    pub shares: Vec<f64>,
    /// Relay delay between the nodes.
    pub delay: Duration,
    /// Blocks to find.
    pub blocks: u64,
}

/// What a live forks run measured.
#[derive(Clone, Debug)]
pub struct ForksLiveResult {
    /// Blocks found and stored by their node.
    pub blocks: u64,
    /// Of them, not on node 0's final active chain.
    pub stale: u64,
    /// Whether every node ended on the same tip.
    pub tips_agree: bool,
    /// Branch lengths of the stale branches the nodes saw (getchaintips `valid-fork`).
    pub reorgs: BTreeMap<u64, u64>,
    /// Mean seconds between blocks, measured.
    pub block_interval_s: f64,
    /// Seconds the miners ran.
    pub seconds: f64,
    /// Blocks a node refused.
    pub refused: u64,
}

/// N nodes, each with a miner at its share, every pair peered with the relay delay.
pub fn forks(params: &LiveParams, run: &ForksLive) -> Result<ForksLiveResult, LiveError> {
    let n = run.shares.len();
    let mut net = Net::start(params, n, run.delay, 0)?;
    for (i, share) in run.shares.iter().enumerate() {
        net.start_miner(i, i, share * params.hashrate)?;
    }
    let deadline = net.started + params.timeout;
    let mut count = 0u64;
    while count < run.blocks && Instant::now() < deadline {
        if let Some(f) = net.next(Duration::from_millis(200)) {
            count += 1;
            if count.is_multiple_of(10) {
                say(
                    params.verbose,
                    &format!(
                        "  live: {count} of {} blocks (height {})",
                        run.blocks, f.height
                    ),
                );
            }
        }
    }
    let seconds = net.started.elapsed().as_secs_f64();
    net.stop_miners();
    net.drain();
    let tips_agree =
        net.settle_breaking_ties(n, run.delay * 3 + Duration::from_secs(3), params.verbose)?;
    let top = net.nodes[0].height()?;
    let main: HashSet<String> = net.nodes[0].chain(1, top)?.into_iter().collect();
    let accepted = net.accepted();
    let stale = accepted.keys().filter(|h| !main.contains(*h)).count() as u64;
    let mut tips = HashMap::new();
    for node in &net.nodes {
        for (hash, len) in node.fork_tips()? {
            tips.insert(hash, len);
        }
    }
    let mut reorgs = BTreeMap::new();
    for len in tips.values() {
        *reorgs.entry(*len).or_insert(0) += 1;
    }
    let refused = net.found.iter().filter(|f| !f.accepted).count() as u64;
    let blocks = accepted.len() as u64;
    Ok(ForksLiveResult {
        blocks,
        stale,
        tips_agree,
        reorgs,
        block_interval_s: seconds / (blocks.max(1) as f64),
        seconds,
        refused,
    })
}

/// A live double-spend (`premine`) or finality race.
#[derive(Clone, Debug)]
pub struct RaceLive {
    /// The attacker's share of the hash rate.
    pub q: f64,
    /// Honest blocks, counting the payment's, before the merchant accepts (the depth).
    pub z: u32,
    /// Whether the attacker first mines a one-block lead and only then is the payment
    /// released (Rosenfeld's double-spend model); without it, a finality race that starts at
    /// an honest block.
    pub premine: bool,
    /// The attacker gives up this many blocks behind (never when `None`).
    pub give_up: Option<u32>,
    /// Attacks to run.
    pub trials: u64,
}

/// What the live races measured.
#[derive(Clone, Debug, Default)]
pub struct RaceLiveResult {
    /// Attacks that ended (success or give-up) before the timeout.
    pub trials: u64,
    /// Of them, those where the honest node reorganised onto the attacker's branch.
    pub successes: u64,
    /// Mean seconds from the race start (the payment released, or the block found) to the
    /// honest node's reorganisation onto the attacker's branch, over successes.
    pub mean_attack_s: f64,
    /// Blocks found in all.
    pub blocks: u64,
    /// Seconds the run took.
    pub seconds: f64,
}

const HONEST: usize = 0;
const ATTACKER: usize = 1;

/// One honest node and miner (share 1 − q), one attacker node and miner (share q) that mines
/// only during a trial. A trial: the attacker's node takes the honest chain; with `premine`
/// (Rosenfeld's model) the attacker mines until its private branch is one block longer than
/// the honest one since they parted (adopting the honest chain whenever that is longer), and
/// only then is the payment released, in the next honest block; without it the race starts
/// when an honest block is found, the attacker mining on its parent. The merchant accepts at
/// z honest blocks counting the payment's; from then on the attacker publishes its branch as
/// soon as it is longer — success once the honest node has reorganised onto it — or gives up
/// `give_up` blocks behind.
pub fn race(params: &LiveParams, run: &RaceLive) -> Result<RaceLiveResult, LiveError> {
    let mut net = Net::start(params, 1, Duration::ZERO, 1)?;
    net.start_miner(HONEST, HONEST, (1.0 - run.q) * params.hashrate)?;
    let deadline = net.started + params.timeout;
    let mut result = RaceLiveResult::default();
    let mut attack_s = 0.0;
    while result.trials < run.trials && Instant::now() < deadline {
        match race_trial(&mut net, params, run, deadline)? {
            Some(Some(seconds)) => {
                result.successes += 1;
                attack_s += seconds;
                result.trials += 1;
            }
            Some(None) => result.trials += 1,
            None => break,
        }
        say(
            params.verbose,
            &format!(
                "  live q {} {} {}: {} of {} attacks succeeded",
                run.q,
                if run.premine { "z" } else { "depth" },
                run.z,
                result.successes,
                result.trials
            ),
        );
    }
    net.stop_miners();
    net.drain();
    result.blocks = net.found.iter().filter(|f| f.accepted).count() as u64;
    result.seconds = net.started.elapsed().as_secs_f64();
    result.mean_attack_s = attack_s / result.successes.max(1) as f64;
    Ok(result)
}

/// One trial: `Some(Some(seconds))` on success, `Some(None)` on failure, `None` when the run
/// ran out of time.
fn race_trial(
    net: &mut Net,
    params: &LiveParams,
    run: &RaceLive,
    deadline: Instant,
) -> Result<Option<Option<f64>>, LiveError> {
    let wait = Duration::from_millis(100);
    // The race's base: the honest tip (with a pre-mined block) or the parent of the next honest
    // block (without); the attacker's node takes the honest chain up to it. A block the
    // attacker found as its last trial ended may hold the attacker's node at equal height on
    // its own branch (first seen wins): then the race starts at a later honest block.
    let mut base;
    loop {
        if Instant::now() > deadline {
            return Ok(None);
        }
        base = if run.premine {
            net.nodes[HONEST].height()?
        } else {
            match net.next(wait) {
                Some(f) if f.miner == HONEST && f.tip => f.height - 1,
                _ => continue,
            }
        };
        let common = net.common(HONEST, ATTACKER, base)?;
        if base > common {
            net.copy(HONEST, ATTACKER, common + 1, base)?;
        }
        if net.nodes[ATTACKER].best()? == net.nodes[HONEST].hash_at(base)? {
            break;
        }
        if run.premine {
            net.next(wait);
        }
    }
    net.start_miner(ATTACKER, ATTACKER, run.q * params.hashrate)?;
    let heights = |net: &Net, base: u32| -> Result<(u32, u32), LiveError> {
        Ok((
            net.nodes[ATTACKER].height()?.saturating_sub(base),
            net.nodes[HONEST].height()?.saturating_sub(base),
        ))
    };
    // With a pre-mined block: wait until the attacker leads by one.
    let mut started = Instant::now();
    let mut h0 = 0;
    if run.premine {
        loop {
            let (a, h) = heights(net, base)?;
            if h > a {
                // The honest chain is longer: take it and start over from its tip.
                let top = base + h;
                net.copy(HONEST, ATTACKER, base + 1, top)?;
                base = top;
                continue;
            }
            if a == h + 1 {
                h0 = h;
                started = Instant::now();
                break;
            }
            if Instant::now() > deadline {
                net.stop_miner(ATTACKER);
                return Ok(None);
            }
            net.next(wait);
        }
    }
    let outcome = loop {
        let (a, h) = heights(net, base)?;
        let accepted = h >= h0 + run.z;
        if accepted && a > h {
            // Publish the private branch: the honest node decides by its own fork choice.
            let tip = net.nodes[ATTACKER].best()?;
            net.copy(ATTACKER, HONEST, base + 1, base + a)?;
            if net.nodes[HONEST].best()? == tip {
                break Some(Some(started.elapsed().as_secs_f64()));
            }
            // The honest node found another block meanwhile: the race goes on.
            continue;
        }
        if accepted && run.give_up.is_some_and(|g| h >= a + g) {
            break Some(None);
        }
        if Instant::now() > deadline {
            break None;
        }
        net.next(wait);
    };
    net.stop_miner(ATTACKER);
    Ok(outcome)
}

/// A live selfish-mining run.
#[derive(Clone, Debug)]
pub struct SelfishLive {
    /// The selfish pool's share α of the hash rate.
    pub alpha: f64,
    /// The share γ of honest hash rate that mines on the pool's block at a tie (rounded to
    /// whole honest nodes: [`SelfishLive::gamma_nodes`]).
    pub gamma: f64,
    /// Honest nodes, each with an equal share of 1 − α.
    pub honest_nodes: usize,
    /// Relay delay between honest nodes.
    pub delay: Duration,
    /// Blocks to find.
    pub blocks: u64,
}

impl SelfishLive {
    /// Honest nodes, besides the finder, that receive the pool's block at a tie, and the γ
    /// that gives: each honest node holds 1/N of the honest hash rate, so γ is what they
    /// hold, k/N (at most (N − 1)/N: the finder keeps its own block).
    pub fn gamma_nodes(&self) -> (usize, f64) {
        let n = self.honest_nodes.max(1);
        let k = ((self.gamma * n as f64).round() as usize).min(n - 1);
        (k, k as f64 / n as f64)
    }
}

/// What a live selfish run measured.
#[derive(Clone, Debug)]
pub struct SelfishLiveResult {
    /// The run's blocks on node 0's final active chain.
    pub main_chain: u64,
    /// Of them, the pool's.
    pub pool_blocks: u64,
    /// The pool's relative revenue: `pool_blocks / main_chain`.
    pub revenue: f64,
    /// Blocks found in all (stored by their node).
    pub blocks: u64,
    /// The γ the run could give with whole honest nodes ([`SelfishLive::gamma_nodes`]).
    pub gamma_effective: f64,
    /// Whether every honest node ended on the same tip.
    pub tips_agree: bool,
    /// Seconds the miners ran.
    pub seconds: f64,
}

/// Eyal & Sirer's strategy, driven from the pool's node: `honest_nodes` honest nodes peered
/// with the relay delay, the pool's node apart. At a tie the pool sends its block to the
/// finder and to the γ-nodes, which take it first (the honest block reaches them after the
/// relay delay) and mine on it.
pub fn selfish(params: &LiveParams, run: &SelfishLive) -> Result<SelfishLiveResult, LiveError> {
    let n = run.honest_nodes.max(1);
    let pool = n;
    let (k, gamma_effective) = run.gamma_nodes();
    let mut net = Net::start(params, n, run.delay, 1)?;
    for i in 0..n {
        net.start_miner(i, i, (1.0 - run.alpha) * params.hashrate / n as f64)?;
    }
    net.start_miner(pool, pool, run.alpha * params.hashrate)?;
    let deadline = net.started + params.timeout;
    // The pool's view: the branch point, its private blocks above it, and the public chain's
    // height.
    let (mut base, mut private, mut public) = (0u32, 0u32, 0u32);
    // Every publication sends the branch from its base (blocks a node has are answered
    // `duplicate`): nodes left out at a tie need the earlier blocks.
    let publish = |net: &Net, lo: u32, hi: u32, to: &[usize]| -> Result<(), LiveError> {
        for &node in to {
            // From where the node and the pool's chain part (the node may not have the base
            // yet, or hold another honest block at its height).
            let from = net.common(pool, node, lo.saturating_sub(1))?;
            net.copy(pool, node, (from + 1).min(lo), hi)?;
        }
        Ok(())
    };
    let everyone: Vec<usize> = (0..n).collect();
    let mut count = 0u64;
    while count < run.blocks && Instant::now() < deadline {
        let Some(f) = net.next(Duration::from_millis(200)) else {
            continue;
        };
        count += 1;
        if !f.tip {
            continue;
        }
        if f.miner == pool {
            if f.height != base + private + 1 {
                continue;
            }
            let tie = base + private == public;
            private += 1;
            if tie && private == 2 {
                // The pool wins the tie: publish the whole branch.
                publish(&net, base + 1, base + private, &everyone)?;
                base += private;
                public = base;
                private = 0;
            }
        } else {
            if f.height <= public {
                continue;
            }
            let mine = base + private;
            let lead = i64::from(mine) - i64::from(public);
            public = f.height;
            match lead {
                i64::MIN..=0 => {
                    // Adopt the honest chain (the finder's).
                    // From where the finder's chain and the pool's part: honest nodes may have
                    // forked among themselves below the finder's block.
                    let from = net.common(f.node, pool, base)?;
                    net.copy(f.node, pool, from + 1, f.height)?;
                    base = f.height;
                    private = 0;
                }
                1 => {
                    // A tie: the finder and the γ-nodes get the pool's block now.
                    let mut to = vec![f.node];
                    to.extend((0..n).filter(|&i| i != f.node).take(k));
                    publish(&net, base + 1, mine, &to)?;
                }
                2 => {
                    publish(&net, base + 1, mine, &everyone)?;
                    base = mine;
                    public = mine;
                    private = 0;
                }
                _ => {
                    // Far ahead: publish up to the honest height, keeping the lead.
                    publish(&net, base + 1, f.height, &everyone)?;
                }
            }
        }
        if count.is_multiple_of(20) {
            say(
                params.verbose,
                &format!(
                    "  live alpha {} gamma {}: {count} of {} blocks",
                    run.alpha, run.gamma, run.blocks
                ),
            );
        }
    }
    let seconds = net.started.elapsed().as_secs_f64();
    net.stop_miners();
    net.drain();
    let tips_agree =
        net.settle_breaking_ties(n, run.delay * 3 + Duration::from_secs(3), params.verbose)?;
    let top = net.nodes[0].height()?;
    let accepted = net.accepted();
    let main = net.nodes[0].chain(1, top)?;
    let pool_blocks = main
        .iter()
        .filter(|h| accepted.get(*h) == Some(&pool))
        .count() as u64;
    // Blocks the run's miners found (not a tie-breaking block of `settle_breaking_ties`).
    let main_chain = main.iter().filter(|h| accepted.contains_key(*h)).count() as u64;
    Ok(SelfishLiveResult {
        main_chain,
        pool_blocks,
        revenue: pool_blocks as f64 / main_chain.max(1) as f64,
        blocks: accepted.len() as u64,
        gamma_effective,
        tips_agree,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_maps_to_whole_honest_nodes() {
        let run = |gamma, honest_nodes| SelfishLive {
            alpha: 0.3,
            gamma,
            honest_nodes,
            delay: Duration::ZERO,
            blocks: 1,
        };
        assert_eq!(run(0.0, 2).gamma_nodes(), (0, 0.0));
        assert_eq!(run(0.5, 2).gamma_nodes(), (1, 0.5));
        assert_eq!(run(1.0, 2).gamma_nodes(), (1, 0.5));
        assert_eq!(run(0.5, 4).gamma_nodes(), (2, 0.5));
    }

    #[test]
    fn live_errors_print_their_reason_once() {
        let params = |hashrate, block_time_s| LiveParams {
            hashrate,
            block_time_s,
            timeout: Duration::from_secs(1),
            verbose: false,
        };
        let e = params(50.0, 1.0).check().expect_err("50 H/s");
        assert_eq!(
            e.to_string(),
            "hash rate 50 H/s: a live run needs at least 100 H/s"
        );
        let e = params(100.0, 0.01).check().expect_err("1 hash per block");
        assert!(
            e.to_string().contains("raise --hashrate or --block-time"),
            "{e}"
        );
        assert!(params(100.0, 1.0).check().is_ok());
        // A variant with a source leaves the source's text out of its own message.
        let e = LiveError::Rpc {
            method: "getblockcount",
            source: ClientError::Unauthorized,
        };
        assert_eq!(e.to_string(), "getblockcount");
        let source = std::error::Error::source(&e).expect("the client's error");
        assert!(source.to_string().contains("HTTP 401"), "{source}");
    }

    #[test]
    fn a_pair_of_live_nodes_mines_and_agrees() {
        let params = LiveParams {
            hashrate: 20_000.0,
            block_time_s: 0.1,
            timeout: Duration::from_secs(60),
            verbose: false,
        };
        let r = forks(
            &params,
            &ForksLive {
                shares: vec![0.5, 0.5],
                delay: Duration::ZERO,
                blocks: 10,
            },
        )
        .expect("live run");
        assert!(r.blocks >= 10, "{r:?}");
        assert!(r.tips_agree, "{r:?}");
        assert_eq!(r.refused, 0, "{r:?}");
    }
}
