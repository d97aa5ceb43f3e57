//! PBFT on real sockets: every replica and client is a tokio task with its own `TcpListener`
//! on 127.0.0.1, running the same state machines as the sim ([`Replica`], [`Client`]) on the
//! real clock (ms since the start).
//!
//! Each ordered pair of participants that talk (replica → replica, replica → client,
//! client → replica) has one connection, opened by the sender's writer task on its first
//! message and re-opened after an error. Frames are a 4-byte big-endian length and
//! [`encode_message`]'s bytes, at most [`MAX_FRAME`]; a reader drops
//! the connection on a longer frame, on bytes that do not decode, or when a frame's body does
//! not arrive within [`READ_TIMEOUT`]. Channels are bounded: a task's inbox applies
//! back-pressure to its readers, and a sender whose link queue is full drops the message (a
//! lossy network, counted), so no task ever waits on another. Faults are applied where the
//! sim applies them: a crashed replica's task ends (its listener closes), a silent one's
//! messages are dropped before they are sent, a slow one's are held for the extra delay.
//! `link_delay_ms` and `jitter_ms` do not apply (the network is loopback's own).
//!
//! The run stops when the last request completes or at `time_limit_ms`, whichever is first;
//! every task then hands back its state within [`JOIN_TIMEOUT`], so a run always ends by
//! itself.

use super::{
    decode_message, encode_message, operation, recipients, summarize, Client, Config, Fault,
    Message, MessageCounts, Node, Observed, Outgoing, PbftParams, PbftResult, Replica, Signed,
};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

/// The largest frame body, bytes.
pub const MAX_FRAME: usize = 1 << 20;
/// A frame's body must arrive within this once its length has.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Once the run stops, how long each task has to hand back its state.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages waiting in a participant's inbox.
const INBOX: usize = 4096;
/// Frames waiting on one link.
const LINK: usize = 1024;

/// Why a live run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The parameters fail [`Config::new`]'s checks.
    #[error("invalid PBFT parameters: {0}")]
    Params(super::ParamsError),
    /// The run's own tokio runtime could not be built.
    #[error("could not start the tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// A replica or client could not bind its loopback listener.
    #[error("could not listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    /// A replica or client task panicked, or was still running after the stop.
    #[error("{who} did not finish: {why}")]
    Task {
        /// Which task: a replica or a client, by index.
        who: String,
        /// The join error, or how long it ran on.
        why: String,
    },
}

/// Runs replicas and clients on loopback TCP in a tokio runtime of its own; latencies in the
/// result are real ms.
pub fn run(p: &PbftParams) -> Result<PbftResult, LiveError> {
    let cfg = Config::new(p).map_err(LiveError::Params)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(LiveError::Runtime)?;
    let result = rt.block_on(run_async(p, &cfg));
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// A frame ready to write (length prefix included) and when to write it.
type Frame = (Instant, Arc<Vec<u8>>);

/// Milliseconds since the run started.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn ms(&self) -> f64 {
        self.0.elapsed().as_secs_f64() * 1000.0
    }

    fn at(&self, ms: f64) -> Instant {
        self.0 + duration_ms(ms)
    }
}

/// `ms` as a duration, clamped to [0, 10⁹ ms].
fn duration_ms(ms: f64) -> Duration {
    let ms = if ms.is_nan() { 0.0 } else { ms.clamp(0.0, 1e9) };
    Duration::from_secs_f64(ms / 1000.0)
}

/// One participant's outgoing side: a link per peer, and what it sent.
struct Wire {
    me: Node,
    n: usize,
    /// By participant index (replicas, then clients); `None` where no link exists.
    links: Vec<Option<mpsc::Sender<Frame>>>,
    counts: MessageCounts,
    dropped: u64,
}

impl Wire {
    fn send(&mut self, fault: Fault, now_ms: f64, out: Vec<Outgoing>) {
        let Some(extra) = fault.send_delay(now_ms) else {
            return;
        };
        let at = Instant::now() + duration_ms(extra);
        for o in out {
            let body = encode_message(&o.msg);
            let to = recipients(self.me, o.to, self.n);
            if body.len() > MAX_FRAME {
                self.dropped += to.len() as u64;
                continue;
            }
            let mut frame = Vec::with_capacity(4 + body.len());
            frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
            frame.extend_from_slice(&body);
            let frame = Arc::new(frame);
            self.counts.add(&o.msg.body, to.len() as u64);
            for node in to {
                let k = match node {
                    Node::Replica(i) => i,
                    Node::Client(c) => self.n + c,
                };
                let sent = self
                    .links
                    .get(k)
                    .and_then(Option::as_ref)
                    .is_some_and(|tx| tx.try_send((at, Arc::clone(&frame))).is_ok());
                if !sent {
                    self.dropped += 1;
                }
            }
        }
    }
}

/// What every client task shares: the request counter, and the stop signal it raises after
/// the last completion.
struct Shared {
    issued: AtomicU64,
    completed: AtomicU64,
    total: u64,
    stop: watch::Sender<bool>,
}

struct ReplicaEnd {
    replica: Replica,
    counts: MessageCounts,
    dropped: u64,
}

struct ClientEnd {
    latencies: Vec<f64>,
    counts: MessageCounts,
    dropped: u64,
    mac_failures: u64,
}

async fn run_async(p: &PbftParams, cfg: &Config) -> Result<PbftResult, LiveError> {
    let total = p.n + p.clients;
    let mut listeners = Vec::with_capacity(total);
    let mut addrs = Vec::with_capacity(total);
    for _ in 0..total {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(LiveError::Bind)?;
        addrs.push(l.local_addr().map_err(LiveError::Bind)?);
        listeners.push(l);
    }
    let clock = Clock(Instant::now());
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        issued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        total: p.requests,
        stop: stop_tx,
    });
    let mut background: Vec<JoinHandle<()>> = Vec::new();
    let mut inboxes = Vec::with_capacity(total);
    for l in listeners {
        let (tx, rx) = mpsc::channel(INBOX);
        inboxes.push(rx);
        background.push(tokio::spawn(accept_loop(l, tx, stop_rx.clone())));
    }
    let node = |k: usize| {
        if k < p.n {
            Node::Replica(k)
        } else {
            Node::Client(k - p.n)
        }
    };
    let mut wires = Vec::with_capacity(total);
    for a in 0..total {
        let mut links = Vec::with_capacity(total);
        for (b, &addr) in addrs.iter().enumerate() {
            // Clients talk to replicas only.
            if a == b || (a >= p.n && b >= p.n) {
                links.push(None);
                continue;
            }
            let (tx, rx) = mpsc::channel(LINK);
            background.push(tokio::spawn(writer(addr, rx, stop_rx.clone())));
            links.push(Some(tx));
        }
        wires.push(Wire {
            me: node(a),
            n: p.n,
            links,
            counts: MessageCounts::default(),
            dropped: 0,
        });
    }
    let mut replica_tasks = Vec::with_capacity(p.n);
    let mut client_tasks = Vec::with_capacity(p.clients);
    for (k, (inbox, wire)) in inboxes.into_iter().zip(wires).enumerate() {
        match node(k) {
            Node::Replica(i) => {
                let r = Replica::new(i, cfg, p.faults[i]);
                replica_tasks.push(tokio::spawn(replica_task(
                    r,
                    p.faults[i],
                    inbox,
                    wire,
                    stop_rx.clone(),
                    clock,
                )));
            }
            Node::Client(c) => {
                let client = Client::new(c, cfg);
                client_tasks.push(tokio::spawn(client_task(
                    client,
                    inbox,
                    wire,
                    stop_rx.clone(),
                    clock,
                    Arc::clone(&shared),
                )));
            }
        }
    }
    if p.requests > 0 {
        let mut done = stop_rx.clone();
        let _ = timeout(duration_ms(p.time_limit_ms), done.wait_for(|s| *s)).await;
    }
    shared.stop.send_replace(true);
    let end_ms = clock.ms().min(p.time_limit_ms);

    let mut replicas = Vec::with_capacity(p.n);
    let mut counts = MessageCounts::default();
    let mut dropped = 0;
    for (i, h) in replica_tasks.into_iter().enumerate() {
        let end = join(h, format!("replica {i}")).await?;
        counts.merge(&end.counts);
        dropped += end.dropped;
        replicas.push(end.replica);
    }
    let mut latencies = Vec::new();
    let mut client_mac_failures = 0;
    for (c, h) in client_tasks.into_iter().enumerate() {
        let end = join(h, format!("client {c}")).await?;
        counts.merge(&end.counts);
        dropped += end.dropped;
        latencies.extend(end.latencies);
        client_mac_failures += end.mac_failures;
    }
    for b in background {
        b.abort();
    }
    let completed = latencies.len() as u64;
    Ok(summarize(
        p,
        Observed {
            replicas: &replicas,
            counts,
            latencies,
            issued: shared.issued.load(Ordering::SeqCst),
            completed,
            client_mac_failures,
            dropped,
            end_ms,
        },
    ))
}

async fn join<T>(h: JoinHandle<T>, who: String) -> Result<T, LiveError> {
    match timeout(JOIN_TIMEOUT, h).await {
        Ok(Ok(end)) => Ok(end),
        Ok(Err(e)) => Err(LiveError::Task {
            who,
            why: e.to_string(),
        }),
        Err(_) => Err(LiveError::Task {
            who,
            why: format!("still running {JOIN_TIMEOUT:?} after the stop"),
        }),
    }
}

async fn replica_task(
    mut r: Replica,
    fault: Fault,
    mut inbox: mpsc::Receiver<Signed<Message>>,
    mut wire: Wire,
    mut stop: watch::Receiver<bool>,
    clock: Clock,
) -> ReplicaEnd {
    loop {
        if *stop.borrow() || fault.is_down(clock.ms()) {
            break;
        }
        let wake = match (r.next_deadline(), fault.crash_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = sleep_until(clock.at(wake.unwrap_or(1e9)));
        let out = tokio::select! {
            m = inbox.recv() => match m {
                Some(m) => {
                    let now = clock.ms();
                    if fault.is_down(now) {
                        break;
                    }
                    r.handle(&m, now)
                }
                None => break,
            },
            _ = sleep, if wake.is_some() => r.tick(clock.ms()),
            _ = stop.changed() => break,
        };
        wire.send(fault, clock.ms(), out);
    }
    ReplicaEnd {
        replica: r,
        counts: wire.counts,
        dropped: wire.dropped,
    }
}

/// Claims the run's next request, if any is left, and sends it.
fn issue_next(c: &mut Client, wire: &mut Wire, shared: &Shared, clock: Clock) {
    let claimed = shared
        .issued
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| {
            (x < shared.total).then_some(x + 1)
        });
    if let Ok(i) = claimed {
        let out = c.issue(operation(i, c.id()), clock.ms());
        wire.send(Fault::None, clock.ms(), out);
    }
}

async fn client_task(
    mut c: Client,
    mut inbox: mpsc::Receiver<Signed<Message>>,
    mut wire: Wire,
    mut stop: watch::Receiver<bool>,
    clock: Clock,
    shared: Arc<Shared>,
) -> ClientEnd {
    let mut latencies = Vec::new();
    issue_next(&mut c, &mut wire, &shared, clock);
    loop {
        if *stop.borrow() {
            break;
        }
        let wake = c.next_deadline();
        let sleep = sleep_until(clock.at(wake.unwrap_or(1e9)));
        let out = tokio::select! {
            m = inbox.recv() => match m {
                Some(m) => {
                    if let Some(done) = c.handle(&m, clock.ms()) {
                        latencies.push(done.latency_ms);
                        if shared.completed.fetch_add(1, Ordering::SeqCst) + 1 >= shared.total {
                            shared.stop.send_replace(true);
                        }
                        issue_next(&mut c, &mut wire, &shared, clock);
                    }
                    Vec::new()
                }
                None => break,
            },
            _ = sleep, if wake.is_some() => c.tick(clock.ms()),
            _ = stop.changed() => break,
        };
        wire.send(Fault::None, clock.ms(), out);
    }
    ClientEnd {
        latencies,
        counts: wire.counts,
        dropped: wire.dropped,
        mac_failures: c.mac_failures(),
    }
}

/// Accepts connections until the run stops or the participant's inbox closes (it crashed).
async fn accept_loop(
    listener: TcpListener,
    inbox: mpsc::Sender<Signed<Message>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            a = listener.accept() => {
                if let Ok((s, _)) = a {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(reader(s, inbox.clone(), stop.clone()));
                }
            }
            _ = inbox.closed() => return,
            _ = stop.changed() => return,
        }
    }
}

/// Reads length-prefixed frames into the inbox; any malformed, oversized or stalled frame
/// ends the connection.
async fn reader(
    mut s: TcpStream,
    inbox: mpsc::Sender<Signed<Message>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let mut len = [0u8; 4];
        tokio::select! {
            r = s.read_exact(&mut len) => {
                if r.is_err() {
                    return;
                }
            }
            _ = inbox.closed() => return,
            _ = stop.changed() => return,
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return;
        }
        let mut buf = vec![0u8; len];
        if !matches!(
            timeout(READ_TIMEOUT, s.read_exact(&mut buf)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Ok(msg) = decode_message(&buf) else {
            return;
        };
        if inbox.send(msg).await.is_err() {
            return;
        }
    }
}

/// Writes one link's frames, each at its time, connecting (again) as needed; a frame that
/// cannot be written is lost.
async fn writer(addr: SocketAddr, mut rx: mpsc::Receiver<Frame>, mut stop: watch::Receiver<bool>) {
    let mut conn: Option<TcpStream> = None;
    loop {
        let (at, frame) = tokio::select! {
            m = rx.recv() => match m {
                Some(f) => f,
                None => return,
            },
            _ = stop.changed() => return,
        };
        sleep_until(at).await;
        if conn.is_none() {
            conn = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    Some(s)
                }
                _ => None,
            };
        }
        if let Some(s) = conn.as_mut() {
            if !matches!(
                timeout(WRITE_TIMEOUT, s.write_all(&frame)).await,
                Ok(Ok(()))
            ) {
                conn = None;
            }
        }
    }
}
