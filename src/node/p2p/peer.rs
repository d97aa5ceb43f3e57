//! One peer's connection: handshake, then its messages answered, the blocks it has fetched,
//! our new tips announced to it, and its misbehaviour scored as Core scores it:
//!
//! | what the peer did | points |
//! |---|---|
//! | a block that fails validation | 100 |
//! | a header whose proof of work fails | 100 |
//! | a malformed message (bad checksum, undecodable) or one over 4,000,000 bytes | 100 |
//! | more messages than a burst of 5,000, refilled at 2,000/s (requested blocks free) | 100 |
//! | `headers` that do not chain, or more than 2,000 of them | 20 |
//! | `inv`/`getdata` of more than 50,000 entries, a locator of more than 101 | 20 |
//! | every 10th `headers` in a row that does not connect to anything we know | 20 |
//! | a requested block not delivered within `--p2p-stall-timeout` | 50 |
//! | a message not finished within `--p2p-stall-timeout` of its header (it holds read budget) | 50 |
//!
//! Core drops (without a score) peers that send oversize messages or stall; here they are
//! scored so that every kind of misbehaviour ends in a ban. A wrong network magic is an honest
//! node of another network: dropped, not scored.

use super::download::Download;
use super::wire::{read_message, ReadError, Writer};
use super::{lock, PeerInfo, Settings};
use super::{Disconnect, Net};
use crate::mining::unix_now;
use crate::node::state::Source;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::{Block, BlockHash};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Headers in one `headers` message.
pub(super) const MAX_HEADERS: usize = 2000;
/// Entries in one `inv`, `getdata` or `notfound` (Core's MAX_INV_SZ).
const MAX_INV: usize = 50_000;
/// Hashes in a block locator (Core's MAX_LOCATOR_SZ).
const MAX_LOCATOR: usize = 101;
/// Blocks requested from one peer and not yet received.
const MAX_IN_FLIGHT: usize = 16;
/// Blocks requested only this far above our tip (Core's BLOCK_DOWNLOAD_WINDOW), so blocks
/// from several peers arriving out of order fit the orphan pool.
const DOWNLOAD_WINDOW: u32 = 1024;
/// Blocks queued to request from one peer; past it, more headers are asked for only once the
/// queue drains.
const MAX_WANTED: usize = 8000;
/// Announcements waiting for their relay delay to pass, per peer; past it they go at once.
const MAX_DELAYED: usize = 50_000;
/// Time to complete the version/verack handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// A peer silent this long (no message, not even a pong) is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const PING_INTERVAL: Duration = Duration::from_secs(120);
/// Non-connecting `headers` messages in a row that cost a peer 20 (Core's
/// MAX_UNCONNECTING_HEADERS).
const UNCONNECTING_PER_PENALTY: u32 = 10;
/// Messages a peer may send in a burst, and per second after it.
const FLOOD_BURST: f64 = 5000.0;
const FLOOD_RATE: f64 = 2000.0;
/// Messages read ahead of the one being handled, and their bytes at most (so a peer holds at
/// most 4 MB of read-ahead plus the message being handled and one partial frame, each up to
/// 4 MB; all peers together hold at most the node-wide `READ_BUDGET` of read-ahead and partial
/// frames).
const READ_AHEAD: usize = 4;
const READ_AHEAD_BYTES: usize = 4 << 20;
/// The first wait after a store fault before blocks are requested again, and the longest.
const STORE_RETRY_FIRST: Duration = Duration::from_secs(1);
const STORE_RETRY_MAX: Duration = Duration::from_secs(30);
/// Blocks stored with one commit, at most.
const MAX_BATCH: usize = 64;
/// The protocol version we speak (Core 0.12's; sendheaders needs 70012).
const OUR_VERSION: u32 = 70015;

/// A message read ahead, with the read-ahead bytes it holds until handled.
type Incoming = (
    Result<NetworkMessage, ReadError>,
    Vec<tokio::sync::OwnedSemaphorePermit>,
);

/// An announcement to send once the relay delay has passed. Only announcements wait: a block
/// the peer asks for after the (held) announcement goes at once, so a block reaches a peer
/// `--relay-delay` plus one round trip after it was connected here.
type Delayed = bitcoin::p2p::message::NetworkMessage;

/// Per-peer state.
struct PeerSync {
    /// The peer asked for headers announcements.
    send_headers: bool,
    /// Blocks to request from it, in order, with their heights; and (with `deferred`) the
    /// same as a map.
    wanted: VecDeque<(BlockHash, u32)>,
    queued: HashMap<BlockHash, u32>,
    /// Blocks it has that another peer is fetching, by height: asked of this peer if that one
    /// fails to deliver.
    deferred: BTreeSet<(u32, BlockHash)>,
    /// It has more headers than fit the queue: ask again once it drains.
    more_headers: Option<BlockHash>,
    /// Blocks requested from it: when, and their heights.
    in_flight: HashMap<BlockHash, (Instant, u32)>,
    /// Non-connecting headers messages in a row.
    unconnecting: u32,
    /// The tip last announced to (or learned from) this peer.
    announced: Option<BlockHash>,
    /// Held by the relay delay.
    delay: Duration,
    delayed: VecDeque<(Instant, Delayed)>,
    /// Flood bucket: messages it may still send, refilled over time.
    tokens: f64,
    refilled: Instant,
    /// After a store fault (a full disk): no blocks are requested before this, and the wait
    /// doubles with each fault in a row (1 s to 30 s); the blocks are back in `wanted`.
    retry_at: Option<Instant>,
    retry_backoff: Duration,
}

impl PeerSync {
    fn new(delay: Duration) -> PeerSync {
        PeerSync {
            send_headers: false,
            wanted: VecDeque::new(),
            queued: HashMap::new(),
            deferred: BTreeSet::new(),
            more_headers: None,
            in_flight: HashMap::new(),
            unconnecting: 0,
            announced: None,
            delay,
            delayed: VecDeque::new(),
            tokens: FLOOD_BURST,
            refilled: Instant::now(),
            retry_at: None,
            retry_backoff: STORE_RETRY_FIRST,
        }
    }

    /// Takes one message from the flood bucket; false when it is empty.
    fn take_token(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * FLOOD_RATE).min(FLOOD_BURST);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Serves one connection until it ends; the peer is listed in `getpeerinfo` meanwhile.
pub(super) async fn run(
    stream: TcpStream,
    addr: SocketAddr,
    inbound: bool,
    magic: Magic,
    delay: Duration,
    net: Arc<Net>,
    settings: Arc<Settings>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(addr);
    let info = net.peers.add(addr, inbound, delay);
    tracing::info!(peer = info.id, %addr, inbound, "p2p: peer connected");
    let (mut reader, half) = stream.into_split();
    let mut writer = Writer {
        half,
        magic,
        info: info.clone(),
    };
    // The reader runs apart, so a half-read frame is never cancelled by the select below. What
    // it reads ahead is bounded in messages and bytes (each message holds permits for its size
    // until handled), so a peer sending faster than we handle waits on TCP.
    let (tx, mut rx) = mpsc::channel::<Incoming>(READ_AHEAD);
    let reader_info = info.clone();
    let budget = Arc::new(tokio::sync::Semaphore::new(READ_AHEAD_BYTES));
    let node_budget = net.peers.read_budget.clone();
    let frame_timeout = settings.stall_timeout;
    let reader_task = tokio::spawn(async move {
        loop {
            let read = read_message(
                &mut reader,
                magic,
                &reader_info,
                &node_budget,
                frame_timeout,
            );
            let incoming = match read.await {
                Ok(frame) => {
                    let bytes = frame.size.min(READ_AHEAD_BYTES) as u32;
                    match budget.clone().acquire_many_owned(bytes).await {
                        Ok(permit) => {
                            let mut held = vec![permit];
                            held.extend(frame.held);
                            (Ok(frame.message), held)
                        }
                        Err(_) => return,
                    }
                }
                Err(e) => (Err(e), Vec::new()),
            };
            let failed = incoming.0.is_err();
            if tx.send(incoming).await.is_err() || failed {
                return;
            }
        }
    });
    let mut sync = PeerSync::new(delay);
    let why = session(
        &mut writer,
        &mut rx,
        addr,
        local,
        &net,
        &info,
        &settings,
        &mut sync,
    )
    .await;
    reader_task.abort();
    // Releasing its blocks takes the download lock, which a commit of orphans can hold.
    tokio::task::block_in_place(|| net.peers.remove(info.id));
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

/// Turns a read error into why the peer is dropped, scoring it first where it misbehaved.
fn read_failed(net: &Net, info: &PeerInfo, error: ReadError) -> Disconnect {
    let points = match &error {
        ReadError::Io(_) | ReadError::Magic(_) | ReadError::Incomplete { .. } => 0,
        ReadError::Stalled(_) => 50,
        ReadError::Misbehaved(_) => 100,
    };
    if points > 0 {
        if let Err(banned) = net.peers.misbehaving(info, points, &error.to_string()) {
            return banned;
        }
    }
    Disconnect::Read(error)
}

#[allow(clippy::too_many_arguments)]
async fn session(
    writer: &mut Writer,
    rx: &mut mpsc::Receiver<Incoming>,
    addr: SocketAddr,
    local: SocketAddr,
    net: &Arc<Net>,
    info: &Arc<PeerInfo>,
    settings: &Settings,
    sync: &mut PeerSync,
) -> Disconnect {
    // The chain lock can be held by a commit (fsync): waited for off the async threads.
    let (height, _) = tokio::task::block_in_place(|| net.node.tip());
    // Handshake: version → verack both ways.
    if let Err(e) = writer
        .send(NetworkMessage::Version(version_message(
            addr, local, height,
        )))
        .await
    {
        return e.into();
    }
    let handshake = async {
        let (mut got_version, mut got_verack) = (false, false);
        while !(got_version && got_verack) {
            match rx.recv().await.map(|(m, _)| m) {
                Some(Ok(NetworkMessage::Version(v))) if !got_version => {
                    got_version = true;
                    info.version.store(u64::from(v.version), Ordering::Relaxed);
                    *lock(&info.subver) = v.user_agent;
                    info.startingheight
                        .store(i64::from(v.start_height), Ordering::Relaxed);
                    writer.send(NetworkMessage::Verack).await?;
                }
                Some(Ok(NetworkMessage::Verack)) => got_verack = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(read_failed(net, info, e)),
                None => return Err(Disconnect::Closed),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return why,
        Err(_) => return Disconnect::HandshakeTimeout,
    }
    tracing::info!(peer = info.id, %addr, subver = %lock(&info.subver), "p2p: handshake done");
    let mut tips = net.node.watch_tip();
    tips.borrow_and_update();
    for m in [
        NetworkMessage::SendHeaders,
        NetworkMessage::GetHeaders(get_headers(tokio::task::block_in_place(|| net.locator()))),
    ] {
        if let Err(e) = writer.send(m).await {
            return e.into();
        }
    }
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    let mut stall_check =
        tokio::time::interval((settings.stall_timeout / 4).max(Duration::from_millis(100)));
    stall_check.tick().await;
    // A message taken off the queue while gathering blocks, handled next.
    let mut pending: Option<Incoming> = None;
    loop {
        if let Some(incoming) = pending.take() {
            if let Err(why) = receive(incoming, rx, &mut pending, writer, net, info, sync).await {
                return why;
            }
            continue;
        }
        let due = sync.delayed.front().map(|(at, _)| *at);
        let result = tokio::select! {
            message = tokio::time::timeout(IDLE_TIMEOUT, rx.recv()) => match message {
                Err(_) => return Disconnect::Idle,
                Ok(None) => return Disconnect::Closed,
                Ok(Some(incoming)) => receive(incoming, rx, &mut pending, writer, net, info, sync).await,
            },
            changed = tips.changed() => {
                if changed.is_err() || net.node.stopping() {
                    return Disconnect::Stopping;
                }
                match announce(writer, net, sync).await {
                    // Another peer's block may have been one this peer was waiting on.
                    Ok(()) => request_blocks(writer, net, info, sync, false).await,
                    Err(e) => Err(e),
                }
            }
            () = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => send_due(writer, sync).await,
            _ = stall_check.tick() => match tokio::task::block_in_place(|| stalled(net, info, settings, sync)) {
                Ok(_) => request_blocks(writer, net, info, sync, true).await,
                Err(e) => Err(e),
            },
            () = info.kick.notified() => return Disconnect::Kicked,
            _ = ping.tick() => writer.send(NetworkMessage::Ping(rand::random())).await.map_err(Disconnect::from),
        };
        if let Err(why) = result {
            return why;
        }
        info.blocks_in_flight
            .store(sync.in_flight.len() as u64, Ordering::Relaxed);
    }
}

/// Handles one message read off the wire, after the flood check; a `block` takes the blocks
/// queued right behind it along, to be stored with one commit.
async fn receive(
    incoming: Incoming,
    rx: &mut mpsc::Receiver<Incoming>,
    pending: &mut Option<Incoming>,
    writer: &mut Writer,
    net: &Arc<Net>,
    info: &Arc<PeerInfo>,
    sync: &mut PeerSync,
) -> Result<(), Disconnect> {
    let (message, _permit) = incoming;
    let message = message.map_err(|e| read_failed(net, info, e))?;
    flood_check(&message, net, info, sync)?;
    let NetworkMessage::Block(first) = message else {
        return handle(message, writer, net, info, sync).await;
    };
    let mut blocks = vec![first];
    let mut permits = Vec::new();
    while blocks.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok((Ok(NetworkMessage::Block(block)), permit)) => {
                let block = NetworkMessage::Block(block);
                flood_check(&block, net, info, sync)?;
                if let NetworkMessage::Block(block) = block {
                    blocks.push(block);
                }
                permits.push(permit);
            }
            Ok(other) => {
                *pending = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    handle_blocks(blocks, writer, net, info, sync).await
}

/// Takes a message from the peer's flood bucket: past the bucket, the peer is banned. Free:
/// blocks we asked for, and the requests of a peer syncing from us (`getdata`, `getheaders`),
/// whose pace our own replies set.
fn flood_check(
    message: &NetworkMessage,
    net: &Net,
    info: &PeerInfo,
    sync: &mut PeerSync,
) -> Result<(), Disconnect> {
    let free = match message {
        NetworkMessage::Block(b) => sync.in_flight.contains_key(&b.block_hash()),
        NetworkMessage::GetData(_) | NetworkMessage::GetHeaders(_) => true,
        _ => false,
    };
    if free || sync.take_token() {
        return Ok(());
    }
    net.peers.misbehaving(info, 100, "message flood")?;
    Err(Disconnect::Flood)
}

fn get_headers(locator: Vec<BlockHash>) -> GetHeadersMessage {
    GetHeadersMessage {
        version: OUR_VERSION,
        locator_hashes: locator,
        stop_hash: BlockHash::all_zeros(),
    }
}

/// Sends `message` now, or queues it behind the relay delay.
async fn relay(writer: &mut Writer, sync: &mut PeerSync, item: Delayed) -> Result<(), Disconnect> {
    if sync.delay.is_zero() || sync.delayed.len() >= MAX_DELAYED {
        return Ok(writer.send(item).await?);
    }
    sync.delayed.push_back((Instant::now() + sync.delay, item));
    Ok(())
}

/// Sends what the relay delay held and is now due.
async fn send_due(writer: &mut Writer, sync: &mut PeerSync) -> Result<(), Disconnect> {
    let now = Instant::now();
    while sync.delayed.front().is_some_and(|(at, _)| *at <= now) {
        let Some((_, item)) = sync.delayed.pop_front() else {
            break;
        };
        writer.send(item).await?;
    }
    Ok(())
}

/// Tells the peer about our new tip.
async fn announce(writer: &mut Writer, net: &Net, sync: &mut PeerSync) -> Result<(), Disconnect> {
    let header = tokio::task::block_in_place(|| net.tip_header());
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
    relay(writer, sync, message).await
}

/// Releases blocks the peer has not delivered in time (50 points), so they are asked again;
/// whether any were.
fn stalled(
    net: &Net,
    info: &PeerInfo,
    settings: &Settings,
    sync: &mut PeerSync,
) -> Result<bool, Disconnect> {
    let now = Instant::now();
    let late: Vec<BlockHash> = sync
        .in_flight
        .iter()
        .filter(|(_, (at, _))| now.duration_since(*at) >= settings.stall_timeout)
        .map(|(h, _)| *h)
        .collect();
    if late.is_empty() {
        return Ok(false);
    }
    {
        let mut download = lock(&net.peers.download);
        let mut late: Vec<(u32, BlockHash)> = late
            .iter()
            .filter_map(|h| sync.in_flight.remove(h).map(|(_, height)| (height, *h)))
            .collect();
        late.sort();
        for (height, hash) in late.into_iter().rev() {
            download.release(&hash, info.id);
            if sync.queued.insert(hash, height).is_none() {
                sync.wanted.push_front((hash, height));
            }
        }
    }
    net.peers.misbehaving(
        info,
        50,
        &format!(
            "stalled: {} requested block(s) not delivered in {} s",
            late.len(),
            settings.stall_timeout.as_secs_f64()
        ),
    )?;
    Ok(true)
}

/// Requests the next wanted blocks that no other peer is fetching, up to the in-flight bound
/// and the download window; asks for more headers when this peer's queue has drained. With
/// `recycle` (on the stall timer, and whenever the queue is empty) blocks deferred to other
/// peers that those have since given up are taken back.
async fn request_blocks(
    writer: &mut Writer,
    net: &Net,
    info: &PeerInfo,
    sync: &mut PeerSync,
    recycle: bool,
) -> Result<(), Disconnect> {
    if let Some(at) = sync.retry_at {
        if Instant::now() < at {
            return Ok(());
        }
        sync.retry_at = None;
    }
    // The chain and download locks (a commit can hold them) are waited on as blocking work.
    let ask = tokio::task::block_in_place(|| blocks_to_ask(net, info, sync, recycle));
    if !ask.is_empty() {
        writer.send(NetworkMessage::GetData(ask)).await?;
    }
    if sync.wanted.is_empty() && sync.in_flight.is_empty() {
        if let Some(last) = sync.more_headers.take() {
            writer
                .send(NetworkMessage::GetHeaders(get_headers(vec![last])))
                .await?;
        } else if recycle
            && sync.deferred.is_empty()
            && info.synced_headers.load(Ordering::Relaxed)
                > i64::from(tokio::task::block_in_place(|| net.node.tip().0))
        {
            // The peer has blocks above our tip that nothing here is fetching (lost to a
            // store fault, or announcements missed): ask for its headers again.
            writer
                .send(NetworkMessage::GetHeaders(get_headers(
                    tokio::task::block_in_place(|| net.locator()),
                )))
                .await?;
        }
    }
    Ok(())
}

/// Claims the next wanted blocks (up to the in-flight bound and the download window) and
/// returns them; with `recycle`, deferred blocks that their peer gave up are taken back first.
/// Blocking: takes the chain and download locks.
fn blocks_to_ask(net: &Net, info: &PeerInfo, sync: &mut PeerSync, recycle: bool) -> Vec<Inventory> {
    let mut ask = Vec::new();
    let limit = net.node.tip().0.saturating_add(DOWNLOAD_WINDOW);
    let mut download = lock(&net.peers.download);
    if recycle || sync.wanted.is_empty() {
        let mut back = Vec::new();
        for &(height, hash) in sync
            .deferred
            .range(..(limit.saturating_add(1), BlockHash::all_zeros()))
        {
            if net.has_block(&hash) || download.is_orphan(&hash) {
                back.push((height, hash, false));
            } else if !download.elsewhere(&hash, info.id) {
                back.push((height, hash, true));
            }
        }
        // Taken back in height order, ahead of the rest of the queue.
        for (height, hash, want) in back.into_iter().rev() {
            sync.deferred.remove(&(height, hash));
            if want {
                sync.wanted.push_front((hash, height));
            } else {
                sync.queued.remove(&hash);
            }
        }
    }
    while sync.in_flight.len() < MAX_IN_FLIGHT {
        let Some((hash, height)) = sync.wanted.pop_front() else {
            break;
        };
        if height > limit {
            sync.wanted.push_front((hash, height));
            break;
        }
        if net.has_block(&hash) || download.is_orphan(&hash) {
            sync.queued.remove(&hash);
        } else if download.claim(hash, info.id, height) {
            sync.queued.remove(&hash);
            sync.in_flight.insert(hash, (Instant::now(), height));
            ask.push(Inventory::Block(hash));
        } else {
            sync.deferred.insert((height, hash));
        }
    }
    ask
}

/// What became of a block a peer sent.
enum BlockOutcome {
    /// Stored at this height (and any orphans it was the parent of).
    Stored(u32),
    /// Kept until its parent arrives.
    Orphan,
    /// Refused by the chain, with its typed reason.
    Rejected(crate::chain::Reject),
    /// Not stored: the store failed (not the peer's fault).
    StoreFault(String),
}

/// Validates and stores a peer's blocks (one commit for those whose parents are known), then
/// the orphans waiting for them; a block whose parent is unknown waits in the orphan pool if we
/// asked for it. Runs off the async threads. Locks: the download table, then the chain (never
/// the other way round).
fn connect(
    net: &Net,
    download: &std::sync::Mutex<Download>,
    blocks: Vec<(Block, Option<u32>)>,
    peer: u64,
) -> Vec<BlockOutcome> {
    let mut verdicts: Vec<Option<BlockOutcome>> = blocks.iter().map(|_| None).collect();
    let mut ready = Vec::new();
    let mut slots = Vec::new();
    {
        let mut d = lock(download);
        let mut batch: std::collections::HashSet<BlockHash> = Default::default();
        for (i, (block, asked)) in blocks.into_iter().enumerate() {
            let prev = block.header.prev_blockhash;
            if batch.contains(&prev) || net.has_block(&prev) {
                batch.insert(block.block_hash());
                ready.push(block);
                slots.push(i);
            } else {
                // Checked and kept under the download lock: a parent stored meanwhile takes
                // its children under the same lock, after it is in the chain, so none is
                // stranded.
                verdicts[i] = Some(if asked.is_some_and(|height| d.add_orphan(block, height)) {
                    BlockOutcome::Orphan
                } else {
                    BlockOutcome::Rejected(crate::chain::Reject::PrevBlockNotFound)
                });
            }
        }
    }
    let mut parents = Vec::new();
    for (slot, (hash, answer)) in slots
        .into_iter()
        .zip(net.node.submit_batch(ready, Source::Peer(peer)))
    {
        verdicts[slot] = Some(match answer {
            Ok(stored) => {
                parents.push(hash);
                BlockOutcome::Stored(stored.height)
            }
            Err(crate::chain::SubmitError::Rejected(r)) => BlockOutcome::Rejected(r),
            Err(crate::chain::SubmitError::Store(e)) => BlockOutcome::StoreFault(e.to_string()),
        });
    }
    while !parents.is_empty() {
        // Every block that waited on these, and on those, parents first: one commit for all.
        // The download lock is held until they are stored, so that no peer asks for one of
        // them again while it is neither an orphan nor in the chain.
        let mut children: Vec<Block> = Vec::new();
        let mut d = lock(download);
        while let Some(parent) = parents.pop() {
            for child in d.children(&parent) {
                parents.push(child.block_hash());
                children.push(child);
            }
        }
        let answers = net.node.submit_batch(children, Source::Peer(peer));
        drop(d);
        for (hash, answer) in answers {
            match answer {
                Ok(_) => parents.push(hash),
                Err(reason) => {
                    tracing::info!(peer, %hash, %reason, "p2p: orphan block refused")
                }
            }
        }
    }
    verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| BlockOutcome::StoreFault("not handled".into())))
        .collect()
}

async fn handle(
    message: NetworkMessage,
    writer: &mut Writer,
    net: &Arc<Net>,
    info: &Arc<PeerInfo>,
    sync: &mut PeerSync,
) -> Result<(), Disconnect> {
    let peers = &net.peers;
    match message {
        NetworkMessage::Ping(nonce) => Ok(writer.send(NetworkMessage::Pong(nonce)).await?),
        NetworkMessage::SendHeaders => {
            sync.send_headers = true;
            Ok(())
        }
        NetworkMessage::GetHeaders(request) => {
            if request.locator_hashes.len() > MAX_LOCATOR {
                return peers.misbehaving(info, 20, "block locator of more than 101 hashes");
            }
            let headers = tokio::task::block_in_place(|| {
                net.headers_after(&request.locator_hashes, request.stop_hash)
            });
            Ok(writer.send(NetworkMessage::Headers(headers)).await?)
        }
        NetworkMessage::Headers(headers) => {
            // Chain and download lookups (whose locks a commit can hold) and the proof-of-work
            // check of up to 2,000 headers run as blocking work, off the async threads.
            let next = tokio::task::block_in_place(|| headers_received(&headers, net, info, sync))?;
            match next {
                HeadersNext::Done => Ok(()),
                HeadersNext::Send(message) => Ok(writer.send(message).await?),
                HeadersNext::Request(more) => {
                    if let Some(message) = more {
                        writer.send(message).await?;
                    }
                    request_blocks(writer, net, info, sync, false).await
                }
            }
        }
        NetworkMessage::Inv(items) => {
            if items.len() > MAX_INV {
                return peers.misbehaving(info, 20, &format!("inv of {} entries", items.len()));
            }
            let unknown = tokio::task::block_in_place(|| {
                items.iter().any(|i| matches!(i, Inventory::Block(h) | Inventory::WitnessBlock(h) if !net.has_block(h)))
            });
            if unknown {
                writer
                    .send(NetworkMessage::GetHeaders(get_headers(
                        tokio::task::block_in_place(|| net.locator()),
                    )))
                    .await?;
            }
            Ok(())
        }
        NetworkMessage::GetData(items) => {
            if items.len() > MAX_INV {
                return peers.misbehaving(info, 20, &format!("getdata of {} entries", items.len()));
            }
            let mut missing = Vec::new();
            for item in items {
                let found = match item {
                    Inventory::Block(h) | Inventory::WitnessBlock(h) => {
                        tokio::task::block_in_place(|| net.block(&h))
                    }
                    _ => None,
                };
                match found {
                    Some(block) => writer.send(NetworkMessage::Block(block)).await?,
                    None => missing.push(item),
                }
            }
            if !missing.is_empty() {
                writer.send(NetworkMessage::NotFound(missing)).await?;
            }
            Ok(())
        }
        NetworkMessage::NotFound(items) => {
            if items.len() > MAX_INV {
                return peers.misbehaving(
                    info,
                    20,
                    &format!("notfound of {} entries", items.len()),
                );
            }
            tokio::task::block_in_place(|| {
                let mut download = lock(&peers.download);
                for item in items {
                    if let Inventory::Block(h) | Inventory::WitnessBlock(h) = item {
                        if sync.in_flight.remove(&h).is_some() {
                            download.release(&h, info.id);
                        }
                    }
                }
            });
            request_blocks(writer, net, info, sync, false).await
        }
        NetworkMessage::Block(block) => handle_blocks(vec![block], writer, net, info, sync).await,
        _ => Ok(()),
    }
}

/// What to do after a `headers` message was taken in.
enum HeadersNext {
    /// Nothing more (scored, or empty).
    Done,
    /// Send this (a getheaders with our locator: the headers did not connect).
    Send(NetworkMessage),
    /// Send this if any (getheaders for more), then request blocks.
    Request(Option<NetworkMessage>),
}

/// Takes in a `headers` message: checks it (chaining, proof of work), queues the blocks to
/// fetch. Blocking work (chain and download locks, header hashing): call it off the async
/// threads.
fn headers_received(
    headers: &[bitcoin::block::Header],
    net: &Net,
    info: &PeerInfo,
    sync: &mut PeerSync,
) -> Result<HeadersNext, Disconnect> {
    let peers = &net.peers;
    let Some(first) = headers.first() else {
        return Ok(HeadersNext::Done);
    };
    if headers.len() > MAX_HEADERS {
        return peers
            .misbehaving(
                info,
                20,
                &format!("headers message of {} headers", headers.len()),
            )
            .map(|()| HeadersNext::Done);
    }
    let full = headers.len() == MAX_HEADERS;
    let last = headers[headers.len() - 1].block_hash();
    // The height of a block we have, are fetching from any peer or will fetch from this
    // one.
    let known = |h: &BlockHash, sync: &PeerSync| -> Option<u32> {
        net.height_of(h)
            .or_else(|| sync.in_flight.get(h).map(|(_, height)| *height))
            .or_else(|| sync.queued.get(h).copied())
            .or_else(|| lock(&peers.download).height_of(h))
    };
    let Some(base) = known(&first.prev_blockhash, sync) else {
        sync.unconnecting += 1;
        if sync.unconnecting.is_multiple_of(UNCONNECTING_PER_PENALTY) {
            peers.misbehaving(
                info,
                20,
                &format!(
                    "{} headers messages in a row that do not connect",
                    sync.unconnecting
                ),
            )?;
        }
        return Ok(HeadersNext::Send(NetworkMessage::GetHeaders(get_headers(
            net.locator(),
        ))));
    };
    sync.unconnecting = 0;
    if headers
        .windows(2)
        .any(|w| w[1].prev_blockhash != w[0].block_hash())
    {
        return peers
            .misbehaving(info, 20, "non-continuous headers sequence")
            .map(|()| HeadersNext::Done);
    }
    if let Some(bad) = net.first_without_pow(headers) {
        return peers
            .misbehaving(
                info,
                100,
                &format!(
                    "header {} has invalid proof of work",
                    headers[bad].block_hash()
                ),
            )
            .map(|()| HeadersNext::Done);
    }
    let mut prev = first.prev_blockhash;
    // Where the queue filled up, if it did: headers from there on are asked for again.
    let mut cut = None;
    for (i, header) in headers.iter().enumerate() {
        let hash = header.block_hash();
        // Blocks another peer is fetching are queued here too (and deferred when their
        // turn comes), so that if that peer fails this one can deliver them.
        let queue = !net.has_block(&hash)
            && !sync.in_flight.contains_key(&hash)
            && !sync.queued.contains_key(&hash)
            && !lock(&peers.download).is_orphan(&hash);
        if queue {
            if sync.wanted.len() + sync.deferred.len() >= MAX_WANTED {
                cut = Some(prev);
                break;
            }
            let height = base.saturating_add(1 + i as u32);
            sync.queued.insert(hash, height);
            sync.wanted.push_back((hash, height));
        }
        prev = hash;
    }
    // The last header's height: the peer has at least this many.
    let height = base.saturating_add(headers.len() as u32);
    info.synced_headers
        .fetch_max(i64::from(height), Ordering::Relaxed);
    let mut more = None;
    if let Some(at) = cut {
        sync.more_headers = Some(at);
    } else if full {
        if sync.wanted.len() + sync.deferred.len() + MAX_HEADERS <= MAX_WANTED {
            more = Some(NetworkMessage::GetHeaders(get_headers(vec![last])));
        } else {
            sync.more_headers = Some(last);
        }
    }
    Ok(HeadersNext::Request(more))
}

/// Blocks a peer sent (several in a row are stored with one commit): validated, stored, the
/// peer scored for invalid ones; then more are requested.
async fn handle_blocks(
    blocks: Vec<Block>,
    writer: &mut Writer,
    net: &Arc<Net>,
    info: &Arc<PeerInfo>,
    sync: &mut PeerSync,
) -> Result<(), Disconnect> {
    let batch: Vec<(Block, Option<u32>)> = blocks
        .into_iter()
        .map(|b| {
            let asked = sync.in_flight.remove(&b.block_hash()).map(|(_, h)| h);
            (b, asked)
        })
        .collect();
    let asked: Vec<(BlockHash, Option<u32>)> =
        batch.iter().map(|(b, a)| (b.block_hash(), *a)).collect();
    let net2 = net.clone();
    let id = info.id;
    let verdicts = tokio::task::spawn_blocking(move || {
        let verdicts = connect(&net2, &net2.peers.download, batch, id);
        let mut download = lock(&net2.peers.download);
        for (hash, _) in &asked {
            download.release(hash, id);
        }
        (verdicts, asked)
    })
    .await
    .map_err(Disconnect::BlockTask)?;
    // Blocks not stored for a store fault, asked for again (in height order, first in line).
    let mut refetch: Vec<(u32, BlockHash)> = Vec::new();
    for (verdict, (hash, asked)) in verdicts.0.into_iter().zip(verdicts.1) {
        match verdict {
            BlockOutcome::Stored(height) => {
                sync.retry_backoff = STORE_RETRY_FIRST;
                info.synced_blocks
                    .fetch_max(i64::from(height), Ordering::Relaxed);
            }
            BlockOutcome::Orphan => {
                if let Some(height) = asked {
                    info.synced_blocks
                        .fetch_max(i64::from(height), Ordering::Relaxed);
                }
            }
            BlockOutcome::Rejected(reason) => {
                if asked.is_some() || reason != crate::chain::Reject::Duplicate {
                    tracing::info!(peer = info.id, %hash, %reason, "p2p: block refused");
                }
                if reason.is_peer_fault() {
                    net.peers.misbehaving(
                        info,
                        100,
                        &format!("invalid block {hash} ({reason})"),
                    )?;
                }
            }
            BlockOutcome::StoreFault(why) => {
                // Not the peer's fault: the block is wanted again, after a backoff (the disk
                // may be full for a while).
                tracing::warn!(peer = info.id, %hash, %why, "p2p: block not stored (store fault)");
                if let Some(height) = asked {
                    refetch.push((height, hash));
                }
                if sync.retry_at.is_none() {
                    sync.retry_at = Some(Instant::now() + sync.retry_backoff);
                    sync.retry_backoff = (sync.retry_backoff * 2).min(STORE_RETRY_MAX);
                }
            }
        }
    }
    refetch.sort();
    for (height, hash) in refetch.into_iter().rev() {
        if sync.queued.insert(hash, height).is_none() {
            sync.wanted.push_front((hash, height));
        }
    }
    request_blocks(writer, net, info, sync, false).await
}
