//! Bitcoin's peer-to-peer protocol between nodes, on the node's tokio runtime: `--listen`
//! accepts peers, `--connect` dials them (and redials with backoff). Messages are the `bitcoin`
//! crate's `p2p` types, consensus-encoded over TCP (`wire`): a 24-byte header read first, its
//! magic and length checked (at most `MAX_MESSAGE_BYTES`), then the payload. Handshake version →
//! verack both ways, then sendheaders; ping/pong; headers-first sync (getheaders with a block
//! locator → headers, their proof of work checked → getdata → block), the blocks fetched from
//! every peer that has them in parallel (`download`); new tips are announced to every peer
//! (headers to peers that sent sendheaders, inv otherwise), after `--relay-delay` if set.
//! Unknown messages are ignored. A peer that misbehaves runs up a ban score as Core scores it
//! (`peer`); at `--banscore` it is dropped and its address banned (`bans`).

mod bans;
mod download;
mod peer;
mod wire;

pub(crate) use self::bans::Ban;
pub(crate) use self::wire::decode_frame;

use self::bans::BanList;
use self::download::Download;
use super::state::NodeState;
use crate::chain::Chain;
use crate::mining::unix_now;
use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::p2p::Magic;
use bitcoin::BlockHash;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Inbound peers at once by default (Core: 125 connections, 8 of them outbound); past it a new
/// one is closed at once. `miner node` lowers it where file descriptors are short
/// (`node::fds`).
pub(crate) const MAX_INBOUND: usize = 117;
/// Bytes of messages read ahead and of partial frames that all peers together may hold; a
/// peer's reader waits (and TCP pushes back) while it is spent.
pub(crate) const READ_BUDGET: usize = 64 << 20;

/// How peers are treated: ban threshold and time, stall timeout, relay delay.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Ban score at which a peer is dropped and banned (Core's `-banscore`, 100).
    pub banscore: u32,
    /// How long a ban lasts (Core's `-bantime`, 24 h).
    pub bantime: Duration,
    /// A requested block not delivered in this long costs the peer 50 and is asked again.
    pub stall_timeout: Duration,
    /// Outgoing block announcements are held this long (for experiments); blocks asked for go
    /// at once.
    pub relay_delay: Duration,
    /// Where bans are kept across restarts (`banlist.json` in the data directory); none: in
    /// memory only.
    pub banlist: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            banscore: 100,
            bantime: Duration::from_secs(86_400),
            stall_timeout: Duration::from_secs(30),
            relay_delay: Duration::ZERO,
            banlist: None,
        }
    }
}

/// A peer to dial.
#[derive(Clone, Copy, Debug)]
pub struct Dial {
    /// Its address; dialed again with backoff whenever the connection ends.
    pub addr: SocketAddr,
    /// This peer's relay delay instead of the node's.
    pub relay_delay: Option<Duration>,
}

/// What `miner node` was asked to do with peers.
#[derive(Debug, Default)]
pub struct Config {
    /// Where to accept peers (none: do not listen); bound before the node starts so its
    /// address (port 0: any free one) can be printed.
    pub listen: Option<std::net::TcpListener>,
    /// Peers to dial, each redialed with backoff when the connection ends.
    pub connect: Vec<Dial>,
    /// Network magic to speak instead of the chain network's (Bitcoin SV's regtest: `dab5bffa`).
    pub magic: Option<Magic>,
    /// How peers are treated (ban score and time, stall timeout, relay delay, ban file).
    pub settings: Settings,
    /// Inbound peers at once (0 counts as 1); past it a new one is closed at once.
    pub max_inbound: usize,
}

/// What `getpeerinfo` reports of one peer.
#[derive(Debug)]
pub(crate) struct PeerInfo {
    /// The node's number for it, unique while the node runs (from 0, in connection order).
    pub(crate) id: u64,
    /// Its address (the remote end of the TCP connection).
    pub(crate) addr: SocketAddr,
    /// Whether it connected to us (true) or we dialed it.
    pub(crate) inbound: bool,
    /// When it connected, in seconds since 1970.
    pub(crate) conntime: u32,
    /// The protocol version from its `version` message; 0 until then.
    pub(crate) version: AtomicU64,
    /// Its user agent from its `version` message; empty until then.
    pub(crate) subver: Mutex<String>,
    /// The height its `version` message announced; -1 until then.
    pub(crate) startingheight: AtomicI64,
    /// Height of the highest header it sent us; -1 until it sends one.
    pub(crate) synced_headers: AtomicI64,
    /// Height of the highest block it delivered; -1 until it delivers one.
    pub(crate) synced_blocks: AtomicI64,
    /// Bytes of the frames written to it (headers and payloads).
    pub(crate) bytessent: AtomicU64,
    /// Bytes of the frames read from it (headers and payloads).
    pub(crate) bytesrecv: AtomicU64,
    /// Misbehaviour so far, as Core scores it.
    pub(crate) banscore: AtomicU32,
    /// Blocks requested from it and not yet received.
    pub(crate) blocks_in_flight: AtomicU64,
    /// Its relay delay in milliseconds.
    pub(crate) relay_delay_ms: AtomicU64,
    /// Wakes its task to drop it (its address was banned).
    kick: tokio::sync::Notify,
}

/// The connected peers, by id, and what they share: bans and the block download.
#[derive(Debug)]
pub(crate) struct Peers {
    next_id: AtomicU64,
    table: Mutex<BTreeMap<u64, Arc<PeerInfo>>>,
    bans: Mutex<BanList>,
    download: Mutex<Download>,
    banscore: AtomicU32,
    bantime: AtomicU64,
    /// The node-wide `READ_BUDGET`, in bytes.
    read_budget: Arc<tokio::sync::Semaphore>,
}

impl Default for Peers {
    fn default() -> Peers {
        let settings = Settings::default();
        Peers {
            next_id: AtomicU64::new(0),
            table: Mutex::default(),
            bans: Mutex::default(),
            download: Mutex::default(),
            banscore: AtomicU32::new(settings.banscore),
            bantime: AtomicU64::new(settings.bantime.as_secs()),
            read_budget: Arc::new(tokio::sync::Semaphore::new(READ_BUDGET)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a peer's session ended: the `reason` of the "p2p: peer disconnected" log line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Disconnect {
    /// The peer closed the connection.
    #[error("closed")]
    Closed,
    /// No version/verack exchange within the handshake timeout.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// Nothing heard from the peer within the idle timeout.
    #[error("no message for too long")]
    Idle,
    /// The node is shutting down.
    #[error("node stopping")]
    Stopping,
    /// `setban` banned the peer's address while it was connected.
    #[error("its address was banned (setban)")]
    Kicked,
    /// More messages than its flood bucket holds.
    #[error("message flood")]
    Flood,
    /// Its ban score reached the threshold: its address is banned for `seconds`.
    #[error("banned for {seconds} s: {why} (ban score {score})")]
    Banned {
        /// How long the ban lasts.
        seconds: u64,
        /// The misbehaviour that crossed the threshold.
        why: String,
        /// The score it reached.
        score: u32,
    },
    /// Reading from it failed (after scoring what was its fault).
    #[error(transparent)]
    Read(wire::ReadError),
    /// Writing to it failed.
    #[error(transparent)]
    Send(#[from] wire::SendError),
    /// The blocking task that stores its blocks panicked or was cancelled.
    #[error("block task: {0}")]
    BlockTask(tokio::task::JoinError),
}

impl Peers {
    /// The connected peers, by id.
    pub(crate) fn list(&self) -> Vec<Arc<PeerInfo>> {
        lock(&self.table).values().cloned().collect()
    }

    fn add(&self, addr: SocketAddr, inbound: bool, relay_delay: Duration) -> Arc<PeerInfo> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(PeerInfo {
            id,
            addr,
            inbound,
            conntime: unix_now(),
            version: AtomicU64::new(0),
            subver: Mutex::new(String::new()),
            startingheight: AtomicI64::new(-1),
            synced_headers: AtomicI64::new(-1),
            synced_blocks: AtomicI64::new(-1),
            bytessent: AtomicU64::new(0),
            bytesrecv: AtomicU64::new(0),
            banscore: AtomicU32::new(0),
            blocks_in_flight: AtomicU64::new(0),
            relay_delay_ms: AtomicU64::new(relay_delay.as_millis() as u64),
            kick: tokio::sync::Notify::new(),
        });
        lock(&self.table).insert(id, info.clone());
        info
    }

    fn remove(&self, id: u64) {
        lock(&self.table).remove(&id);
        lock(&self.download).release_peer(id);
    }

    /// Adds `points` to the peer's ban score; past the threshold its address is banned and the
    /// error says why (the caller drops the peer).
    fn misbehaving(&self, info: &PeerInfo, points: u32, why: &str) -> Result<(), Disconnect> {
        let score = info.banscore.fetch_add(points, Ordering::Relaxed) + points;
        let limit = self.banscore.load(Ordering::Relaxed);
        tracing::info!(peer = info.id, addr = %info.addr, points, score, %why, "p2p: peer misbehaving");
        if score >= limit {
            let seconds = self.bantime.load(Ordering::Relaxed);
            lock(&self.bans).add(info.addr.ip(), u64::from(unix_now()), seconds);
            tracing::warn!(peer = info.id, addr = %info.addr, seconds, %why, "p2p: peer banned");
            return Err(Disconnect::Banned {
                seconds,
                why: why.to_string(),
                score,
            });
        }
        Ok(())
    }

    /// Whether `ip` is banned now.
    pub(crate) fn is_banned(&self, ip: IpAddr) -> bool {
        lock(&self.bans).is_banned(ip, u64::from(unix_now()))
    }

    /// Bans `ip` (for `seconds`, or `--bantime`) and drops its peers, as Core's `setban add`.
    pub(crate) fn ban(&self, ip: IpAddr, seconds: Option<u64>) {
        let seconds = seconds.unwrap_or_else(|| self.bantime.load(Ordering::Relaxed));
        lock(&self.bans).add(ip, u64::from(unix_now()), seconds);
        for peer in self.list() {
            if peer.addr.ip() == ip {
                peer.kick.notify_one();
            }
        }
    }

    /// Lifts the ban on `ip`; whether there was one.
    pub(crate) fn unban(&self, ip: IpAddr) -> bool {
        lock(&self.bans).remove(ip)
    }

    /// Lifts every ban.
    pub(crate) fn clear_bans(&self) {
        lock(&self.bans).clear();
    }

    /// Blocks waiting in the orphan pool for their parent.
    pub(crate) fn orphans(&self) -> usize {
        lock(&self.download).orphan_count()
    }

    /// Bans in force.
    pub(crate) fn bans(&self) -> Vec<(IpAddr, Ban)> {
        lock(&self.bans).list(u64::from(unix_now()))
    }
}

/// What every peer task shares: the node's state and the peer table, with the reads of the
/// chain P2P makes (each takes the chain's lock: call them off the async threads).
pub(crate) struct Net {
    pub(crate) node: Arc<NodeState>,
    pub(crate) peers: Arc<Peers>,
}

impl Net {
    /// A block locator of the active chain.
    fn locator(&self) -> Vec<BlockHash> {
        self.node.with_chain(locator)
    }

    /// Headers answering a `getheaders`.
    fn headers_after(&self, locator: &[BlockHash], stop: BlockHash) -> Vec<Header> {
        self.node.with_chain(|c| headers_after(c, locator, stop))
    }

    /// Whether the block is stored.
    fn has_block(&self, hash: &BlockHash) -> bool {
        self.height_of(hash).is_some()
    }

    /// Height of a stored block.
    fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.node
            .with_chain(|c| c.by_hash(hash.as_byte_array()).map(|e| e.height))
    }

    /// A stored block.
    fn block(&self, hash: &BlockHash) -> Option<bitcoin::Block> {
        self.node
            .with_chain(|c| c.by_hash(hash.as_byte_array()).map(|e| e.block.clone()))
    }

    /// The first of `headers` whose proof of work fails Core's `CheckProofOfWork`, if any.
    fn first_without_pow(&self, headers: &[Header]) -> Option<usize> {
        self.node.with_chain(|c| first_without_pow(c, headers))
    }

    /// The tip's header.
    fn tip_header(&self) -> Header {
        self.node.with_chain(|c| c.tip().block.header)
    }
}

/// Starts the listener and the dialers, sharing `peers` (the table `getpeerinfo` and the ban
/// RPCs read); returns at once (the tasks run on the runtime).
pub(crate) fn spawn(
    config: Config,
    node: Arc<NodeState>,
    peers: Arc<Peers>,
    stop: Arc<AtomicBool>,
) {
    let magic = config
        .magic
        .unwrap_or_else(|| node.with_chain(|c| Magic::from(c.params().network)));
    let settings = Arc::new(config.settings);
    let max_inbound = config.max_inbound.max(1);
    peers.banscore.store(settings.banscore, Ordering::Relaxed);
    peers
        .bantime
        .store(settings.bantime.as_secs(), Ordering::Relaxed);
    if let Some(path) = &settings.banlist {
        *lock(&peers.bans) = BanList::load(path, u64::from(unix_now()));
    }
    let net = Arc::new(Net { node, peers });
    if let Some(listener) = config.listen {
        let net = net.clone();
        let stop = stop.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "p2p: cannot listen");
                    return;
                }
            };
            while !stop.load(Ordering::SeqCst) {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        if net.peers.is_banned(peer.ip()) {
                            tracing::debug!(%peer, "p2p: inbound peer refused (banned)");
                            drop(stream);
                            continue;
                        }
                        let inbound = net.peers.list().iter().filter(|p| p.inbound).count();
                        if inbound >= max_inbound {
                            tracing::info!(%peer, "p2p: inbound peer refused (at the limit)");
                            drop(stream);
                            continue;
                        }
                        let net = net.clone();
                        let settings = settings.clone();
                        let delay = settings.relay_delay;
                        tokio::spawn(async move {
                            peer::run(stream, peer, true, magic, delay, net, settings).await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "p2p: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    for dial in config.connect {
        let net = net.clone();
        let stop = stop.clone();
        let settings = settings.clone();
        let delay = dial.relay_delay.unwrap_or(settings.relay_delay);
        let addr = dial.addr;
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            while !stop.load(Ordering::SeqCst) {
                if net.peers.is_banned(addr.ip()) {
                    tracing::debug!(%addr, "p2p: not dialing a banned address");
                } else {
                    match TcpStream::connect(addr).await {
                        Ok(stream) => {
                            let since = tokio::time::Instant::now();
                            peer::run(
                                stream,
                                addr,
                                false,
                                magic,
                                delay,
                                net.clone(),
                                settings.clone(),
                            )
                            .await;
                            // A connection that lasted resets the backoff; one dropped at once
                            // (refused handshake, banned) does not.
                            if since.elapsed() > Duration::from_secs(60) {
                                backoff = Duration::from_millis(500);
                            }
                        }
                        Err(e) => tracing::debug!(%addr, error = %e, "p2p: cannot connect"),
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        });
    }
}

/// The first of `headers` whose proof of work fails Core's `CheckProofOfWork` on `chain`
/// (nBits that decode to a target within the pow limit, met by the header's hash), if any.
pub(crate) fn first_without_pow(chain: &Chain, headers: &[Header]) -> Option<usize> {
    headers.iter().position(|h| {
        let bits = crate::pow::CompactTarget::from_consensus(h.bits.to_consensus());
        !chain.proof_of_work_holds(bits, &h.block_hash().to_byte_array())
    })
}

/// Block locator of `chain`'s active chain: the tip, then back 1, 1, ..., then doubling, then
/// genesis.
pub(crate) fn locator(chain: &Chain) -> Vec<BlockHash> {
    let mut out = Vec::new();
    let mut height = i64::from(chain.height());
    let mut step = 1;
    while height > 0 {
        if let Some(e) = chain.get(height as u32) {
            out.push(BlockHash::from_byte_array(e.hash));
        }
        if out.len() >= 10 {
            step *= 2;
        }
        height -= step;
    }
    if let Some(g) = chain.get(0) {
        out.push(BlockHash::from_byte_array(g.hash));
    }
    out
}

/// Headers after the first locator hash on `chain`'s active chain (genesis if none is), up to
/// 2000 or `stop`.
pub(crate) fn headers_after(chain: &Chain, locator: &[BlockHash], stop: BlockHash) -> Vec<Header> {
    let start = locator
        .iter()
        .find_map(|h| {
            let entry = chain.by_hash(h.as_byte_array())?;
            let active = chain.get(entry.height)?;
            (active.hash == entry.hash).then_some(entry.height)
        })
        .unwrap_or(0);
    let mut out = Vec::new();
    let mut height = start + 1;
    while out.len() < peer::MAX_HEADERS {
        let Some(e) = chain.get(height) else { break };
        out.push(e.block.header);
        if e.hash == stop.to_byte_array() {
            break;
        }
        height += 1;
    }
    out
}
