//! Bitcoin's peer-to-peer protocol between nodes, on the node's tokio runtime: `--listen`
//! accepts peers, `--connect` dials them (and redials with backoff). Messages are the `bitcoin`
//! crate's `p2p` types, consensus-encoded over TCP: a 24-byte header (magic, command, length,
//! checksum) read first, its magic and length checked (at most `MAX_MESSAGE_BYTES`), then the
//! payload. Handshake version → verack both ways, then sendheaders; ping/pong; headers-first
//! sync (getheaders with a block locator → headers → getdata → block); new tips are announced
//! to every peer (headers to peers that sent sendheaders, inv otherwise). Unknown messages are
//! ignored; a malformed message, a wrong magic or an oversize length drops the peer.

use super::rpc::NodeState;
use crate::mining::unix_now;
use bitcoin::block::Header;
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::consensus::Decodable;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::BlockHash;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest message payload accepted (Core's MAX_PROTOCOL_MESSAGE_LENGTH).
pub const MAX_MESSAGE_BYTES: u32 = 4_000_000;
/// Headers in one `headers` message.
const MAX_HEADERS: usize = 2000;
/// Blocks requested from one peer and not yet received.
const MAX_IN_FLIGHT: usize = 16;
/// Blocks queued to request from one peer; past it, more headers are asked for only once the
/// queue drains.
const MAX_WANTED: usize = 8000;
/// Inbound peers at once (Core: 125 connections, 8 of them outbound); past it a new one is
/// closed at once.
const MAX_INBOUND: usize = 117;
/// Time to complete the version/verack handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// A peer silent this long (no message, not even a pong) is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const PING_INTERVAL: Duration = Duration::from_secs(120);
/// Non-connecting `headers` messages in a row before a peer is dropped (another chain).
const MAX_UNCONNECTING: u32 = 8;
/// The protocol version we speak (Core 0.12's; sendheaders needs 70012).
const OUR_VERSION: u32 = 70015;

/// What `miner node` was asked to do with peers.
#[derive(Debug, Default)]
pub struct Config {
    /// Where to accept peers (none: do not listen); bound before the node starts so its
    /// address (port 0: any free one) can be printed.
    pub listen: Option<std::net::TcpListener>,
    /// Peers to dial, each redialed with backoff when the connection ends.
    pub connect: Vec<SocketAddr>,
    /// Network magic to speak instead of the chain network's (Bitcoin SV's regtest: `dab5bffa`).
    pub magic: Option<Magic>,
}

/// What `getpeerinfo` reports of one peer.
#[derive(Debug)]
pub struct PeerInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub inbound: bool,
    pub conntime: u32,
    pub version: AtomicU64,
    pub subver: Mutex<String>,
    pub startingheight: AtomicI64,
    pub synced_headers: AtomicI64,
    pub synced_blocks: AtomicI64,
    pub bytessent: AtomicU64,
    pub bytesrecv: AtomicU64,
}

/// The connected peers, by id.
#[derive(Debug, Default)]
pub struct Peers {
    next_id: AtomicU64,
    table: Mutex<BTreeMap<u64, Arc<PeerInfo>>>,
}

impl Peers {
    /// The connected peers, by id.
    pub fn list(&self) -> Vec<Arc<PeerInfo>> {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn add(&self, addr: SocketAddr, inbound: bool) -> Arc<PeerInfo> {
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
        });
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, info.clone());
        info
    }

    fn remove(&self, id: u64) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// Starts the listener and the dialers; returns at once (the tasks run on the runtime).
pub fn spawn(config: Config, state: Arc<NodeState>, stop: Arc<AtomicBool>) {
    let magic = config.magic.unwrap_or_else(|| state.magic());
    if let Some(listener) = config.listen {
        let state = state.clone();
        let stop = stop.clone();
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
                        let inbound = state.peers.list().iter().filter(|p| p.inbound).count();
                        if inbound >= MAX_INBOUND {
                            tracing::info!(%peer, "p2p: inbound peer refused (at the limit)");
                            drop(stream);
                            continue;
                        }
                        let state = state.clone();
                        tokio::spawn(async move {
                            run_peer(stream, peer, true, magic, state).await;
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
    for addr in config.connect {
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            while !stop.load(Ordering::SeqCst) {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let since = tokio::time::Instant::now();
                        run_peer(stream, addr, false, magic, state.clone()).await;
                        // A connection that lasted resets the backoff; one dropped at once
                        // (refused handshake, banned) does not.
                        if since.elapsed() > Duration::from_secs(60) {
                            backoff = Duration::from_millis(500);
                        }
                    }
                    Err(e) => tracing::debug!(%addr, error = %e, "p2p: cannot connect"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        });
    }
}

/// One frame read off the wire: a decoded message, or why the peer is dropped.
async fn read_message(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    magic: Magic,
    info: &PeerInfo,
) -> Result<NetworkMessage, String> {
    let mut header = [0u8; 24];
    reader
        .read_exact(&mut header)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if header[..4] != magic.to_bytes() {
        return Err(format!(
            "wrong network magic {} (ours {})",
            hex::encode(&header[..4]),
            hex::encode(magic.to_bytes())
        ));
    }
    let length = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if length > MAX_MESSAGE_BYTES {
        return Err(format!(
            "message of {length} bytes is over the {MAX_MESSAGE_BYTES}-byte limit"
        ));
    }
    let mut frame = Vec::with_capacity(24 + length as usize);
    frame.extend_from_slice(&header);
    frame.resize(24 + length as usize, 0);
    reader
        .read_exact(&mut frame[24..])
        .await
        .map_err(|e| format!("read: {e}"))?;
    info.bytesrecv
        .fetch_add(frame.len() as u64, Ordering::Relaxed);
    match deserialize::<RawNetworkMessage>(&frame) {
        Ok(raw) => Ok(raw.into_payload()),
        // Bitcoin SV appends fields to `version` (an association id); Core reads the fields it
        // knows and ignores the rest, and so do we.
        Err(e)
            if &header[4..16] == b"version\0\0\0\0\0" && checksum_holds(&header, &frame[24..]) =>
        {
            let mut payload = &frame[24..];
            VersionMessage::consensus_decode(&mut payload)
                .map(NetworkMessage::Version)
                .map_err(|_| format!("malformed message: {e}"))
        }
        Err(e) => Err(format!("malformed message: {e}")),
    }
}

/// Whether the header's checksum is the payload's (first 4 bytes of its double SHA-256).
fn checksum_holds(header: &[u8; 24], payload: &[u8]) -> bool {
    let digest = bitcoin::hashes::sha256d::Hash::hash(payload);
    header[20..24] == digest.as_byte_array()[..4]
}

struct Writer {
    half: OwnedWriteHalf,
    magic: Magic,
    info: Arc<PeerInfo>,
}

impl Writer {
    async fn send(&mut self, message: NetworkMessage) -> std::io::Result<()> {
        let bytes = serialize(&RawNetworkMessage::new(self.magic, message));
        self.info
            .bytessent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.half.write_all(&bytes).await
    }
}

/// Per-peer sync state.
#[derive(Default)]
struct Sync {
    /// The peer asked for headers announcements.
    send_headers: bool,
    /// Blocks to request, in order, and the same as a set.
    wanted: VecDeque<BlockHash>,
    queued: HashSet<BlockHash>,
    /// The peer has more headers than fit the queue: ask again once it drains.
    more_headers: Option<BlockHash>,
    /// Blocks requested and not yet received.
    in_flight: HashSet<BlockHash>,
    /// Non-connecting headers messages in a row.
    unconnecting: u32,
    /// The tip last announced to (or learned from) this peer.
    announced: Option<BlockHash>,
}

async fn run_peer(
    stream: TcpStream,
    addr: SocketAddr,
    inbound: bool,
    magic: Magic,
    state: Arc<NodeState>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(addr);
    let info = state.peers.add(addr, inbound);
    tracing::info!(peer = info.id, %addr, inbound, "p2p: peer connected");
    let (mut reader, half) = stream.into_split();
    let mut writer = Writer {
        half,
        magic,
        info: info.clone(),
    };
    // The reader runs apart, so a half-read frame is never cancelled by the select below.
    let (tx, mut rx) = mpsc::channel::<Result<NetworkMessage, String>>(64);
    let reader_info = info.clone();
    let reader_task = tokio::spawn(async move {
        loop {
            let message = read_message(&mut reader, magic, &reader_info).await;
            let failed = message.is_err();
            if tx.send(message).await.is_err() || failed {
                return;
            }
        }
    });
    let why = peer_loop(&mut writer, &mut rx, addr, local, &state, &info).await;
    reader_task.abort();
    state.peers.remove(info.id);
    tracing::info!(peer = info.id, %addr, reason = %why, "p2p: peer disconnected");
}

fn version_message(addr: SocketAddr, local: SocketAddr, height: u32) -> VersionMessage {
    let mut version = VersionMessage::new(
        ServiceFlags::NETWORK,
        i64::from(unix_now()),
        Address::new(&addr, ServiceFlags::NONE),
        Address::new(&local, ServiceFlags::NETWORK),
        rand::random(),
        format!("/miner:{}/", env!("CARGO_PKG_VERSION")),
        height as i32,
    );
    version.version = OUR_VERSION;
    version.relay = true;
    version
}

async fn peer_loop(
    writer: &mut Writer,
    rx: &mut mpsc::Receiver<Result<NetworkMessage, String>>,
    addr: SocketAddr,
    local: SocketAddr,
    state: &Arc<NodeState>,
    info: &Arc<PeerInfo>,
) -> String {
    let (height, _) = state.tip();
    let io = |e: std::io::Error| format!("write: {e}");
    // Handshake: version → verack both ways.
    if let Err(e) = writer
        .send(NetworkMessage::Version(version_message(
            addr, local, height,
        )))
        .await
    {
        return io(e);
    }
    let handshake = async {
        let (mut got_version, mut got_verack) = (false, false);
        while !(got_version && got_verack) {
            match rx.recv().await {
                Some(Ok(NetworkMessage::Version(v))) if !got_version => {
                    got_version = true;
                    info.version.store(u64::from(v.version), Ordering::Relaxed);
                    *info.subver.lock().unwrap_or_else(|e| e.into_inner()) = v.user_agent;
                    info.startingheight
                        .store(i64::from(v.start_height), Ordering::Relaxed);
                    writer.send(NetworkMessage::Verack).await.map_err(io)?;
                }
                Some(Ok(NetworkMessage::Verack)) => got_verack = true,
                Some(Ok(_)) => {}
                Some(Err(why)) => return Err(why),
                None => return Err("closed".to_string()),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return why,
        Err(_) => return "handshake timed out".into(),
    }
    tracing::info!(peer = info.id, %addr, subver = %info.subver.lock().unwrap_or_else(|e| e.into_inner()), "p2p: handshake done");
    let mut sync = Sync::default();
    let mut tips = state.watch_tip();
    tips.borrow_and_update();
    let first = [
        NetworkMessage::SendHeaders,
        NetworkMessage::GetHeaders(get_headers(state.locator())),
    ];
    for m in first {
        if let Err(e) = writer.send(m).await {
            return io(e);
        }
    }
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        let result = tokio::select! {
            message = tokio::time::timeout(IDLE_TIMEOUT, rx.recv()) => match message {
                Err(_) => return "no message for too long".into(),
                Ok(None) => return "closed".into(),
                Ok(Some(Err(why))) => return why,
                Ok(Some(Ok(message))) => handle(message, writer, state, info, &mut sync).await,
            },
            changed = tips.changed() => {
                if changed.is_err() || state.stopping() {
                    return "node stopping".into();
                }
                announce(writer, state, &mut sync).await.map_err(io)
            }
            _ = ping.tick() => writer.send(NetworkMessage::Ping(rand::random())).await.map_err(io),
        };
        if let Err(why) = result {
            return why;
        }
    }
}

fn get_headers(locator: Vec<BlockHash>) -> GetHeadersMessage {
    GetHeadersMessage {
        version: OUR_VERSION,
        locator_hashes: locator,
        stop_hash: BlockHash::all_zeros(),
    }
}

/// Tells the peer about our new tip.
async fn announce(
    writer: &mut Writer,
    state: &Arc<NodeState>,
    sync: &mut Sync,
) -> std::io::Result<()> {
    let header = state.tip_header();
    let hash = header.block_hash();
    if sync.announced == Some(hash) {
        return Ok(());
    }
    sync.announced = Some(hash);
    let message = if sync.send_headers {
        NetworkMessage::Headers(vec![header])
    } else {
        NetworkMessage::Inv(vec![Inventory::Block(hash)])
    };
    writer.send(message).await
}

/// Requests the next wanted blocks, up to the in-flight bound.
async fn request_blocks(writer: &mut Writer, sync: &mut Sync) -> std::io::Result<()> {
    let mut ask = Vec::new();
    while sync.in_flight.len() < MAX_IN_FLIGHT {
        let Some(hash) = sync.wanted.pop_front() else {
            break;
        };
        sync.queued.remove(&hash);
        if sync.in_flight.insert(hash) {
            ask.push(Inventory::Block(hash));
        }
    }
    if !ask.is_empty() {
        writer.send(NetworkMessage::GetData(ask)).await?;
    }
    if sync.wanted.is_empty() && sync.in_flight.is_empty() {
        if let Some(last) = sync.more_headers.take() {
            writer
                .send(NetworkMessage::GetHeaders(get_headers(vec![last])))
                .await?;
        }
    }
    Ok(())
}

async fn handle(
    message: NetworkMessage,
    writer: &mut Writer,
    state: &Arc<NodeState>,
    info: &Arc<PeerInfo>,
    sync: &mut Sync,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("write: {e}");
    match message {
        NetworkMessage::Ping(nonce) => writer.send(NetworkMessage::Pong(nonce)).await.map_err(io),
        NetworkMessage::SendHeaders => {
            sync.send_headers = true;
            Ok(())
        }
        NetworkMessage::GetHeaders(request) => {
            let headers = state.headers_after(&request.locator_hashes, request.stop_hash);
            writer
                .send(NetworkMessage::Headers(headers))
                .await
                .map_err(io)
        }
        NetworkMessage::Headers(headers) => {
            let Some(first) = headers.first() else {
                return Ok(());
            };
            let full = headers.len() == MAX_HEADERS;
            let last = headers[headers.len() - 1].block_hash();
            let known = |h: &BlockHash| state.has_block(h);
            if !known(&first.prev_blockhash)
                && !sync.in_flight.contains(&first.prev_blockhash)
                && !sync.queued.contains(&first.prev_blockhash)
            {
                sync.unconnecting += 1;
                if sync.unconnecting > MAX_UNCONNECTING {
                    return Err("headers that never connect (another chain or genesis?)".into());
                }
                return writer
                    .send(NetworkMessage::GetHeaders(get_headers(state.locator())))
                    .await
                    .map_err(io);
            }
            sync.unconnecting = 0;
            let mut prev = first.prev_blockhash;
            // Where the queue filled up, if it did: headers from there on are asked for again.
            let mut cut = None;
            for header in &headers {
                if header.prev_blockhash != prev {
                    return Err("headers out of order".into());
                }
                let hash = header.block_hash();
                if !known(&hash) && !sync.in_flight.contains(&hash) && !sync.queued.contains(&hash)
                {
                    if sync.wanted.len() >= MAX_WANTED {
                        cut = Some(prev);
                        break;
                    }
                    sync.queued.insert(hash);
                    sync.wanted.push_back(hash);
                }
                prev = hash;
            }
            if let Some(height) = state.height_of(&last) {
                info.synced_headers
                    .store(i64::from(height), Ordering::Relaxed);
            }
            if let Some(at) = cut {
                sync.more_headers = Some(at);
            } else if full {
                if sync.wanted.len() + MAX_HEADERS <= MAX_WANTED {
                    writer
                        .send(NetworkMessage::GetHeaders(get_headers(vec![last])))
                        .await
                        .map_err(io)?;
                } else {
                    sync.more_headers = Some(last);
                }
            }
            request_blocks(writer, sync).await.map_err(io)
        }
        NetworkMessage::Inv(items) => {
            let unknown = items
                .iter()
                .any(|i| matches!(i, Inventory::Block(h) | Inventory::WitnessBlock(h) if !state.has_block(h)));
            if unknown {
                writer
                    .send(NetworkMessage::GetHeaders(get_headers(state.locator())))
                    .await
                    .map_err(io)?;
            }
            Ok(())
        }
        NetworkMessage::GetData(items) => {
            let mut missing = Vec::new();
            for item in items.into_iter().take(50_000) {
                match item {
                    Inventory::Block(h) | Inventory::WitnessBlock(h) => match state.block(&h) {
                        Some(block) => writer
                            .send(NetworkMessage::Block(block))
                            .await
                            .map_err(io)?,
                        None => missing.push(item),
                    },
                    other => missing.push(other),
                }
            }
            if !missing.is_empty() {
                writer
                    .send(NetworkMessage::NotFound(missing))
                    .await
                    .map_err(io)?;
            }
            Ok(())
        }
        NetworkMessage::NotFound(items) => {
            for item in items {
                if let Inventory::Block(h) | Inventory::WitnessBlock(h) = item {
                    sync.in_flight.remove(&h);
                }
            }
            request_blocks(writer, sync).await.map_err(io)
        }
        NetworkMessage::Block(block) => {
            let hash = block.block_hash();
            let asked = sync.in_flight.remove(&hash);
            let state2 = state.clone();
            let id = info.id;
            let verdict = tokio::task::spawn_blocking(move || state2.submit_from_peer(block, id))
                .await
                .map_err(|e| format!("block task: {e}"))?;
            match verdict {
                Ok(height) => {
                    info.synced_blocks
                        .store(i64::from(height), Ordering::Relaxed);
                }
                Err(reason) if asked || reason != "duplicate" => {
                    tracing::info!(peer = info.id, %hash, %reason, "p2p: block refused");
                    if !matches!(
                        reason.as_str(),
                        "duplicate" | "prev-blk-not-found" | "time-too-new"
                    ) {
                        return Err(format!("sent an invalid block ({reason})"));
                    }
                }
                Err(_) => {}
            }
            request_blocks(writer, sync).await.map_err(io)
        }
        _ => Ok(()),
    }
}

/// Block locator of `chain`'s active chain: the tip, then back 1, 1, ..., then doubling, then
/// genesis.
pub(crate) fn locator(chain: &crate::chain::Chain) -> Vec<BlockHash> {
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
pub(crate) fn headers_after(
    chain: &crate::chain::Chain,
    locator: &[BlockHash],
    stop: BlockHash,
) -> Vec<Header> {
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
    while out.len() < MAX_HEADERS {
        let Some(e) = chain.get(height) else { break };
        out.push(e.block.header);
        if e.hash == stop.to_byte_array() {
            break;
        }
        height += 1;
    }
    out
}
