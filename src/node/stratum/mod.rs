//! The Stratum v1 server (`miner node --stratum [ADDR:]PORT`): stock miners (cpuminer, cgminer,
//! bfgminer, ASIC firmware) mine the node's chain over long-lived TCP connections of JSON lines.
//!
//! One tokio task per connection on the node's runtime (no thread per miner), a bounded write
//! queue per miner (a miner that does not read is dropped, never waited on), lines of at most
//! [`Config::max_line_bytes`], a handshake and an idle timeout, a connection limit. A task
//! watching the tip builds a template paying `--stratum-payout` on every new tip and sends the
//! job (clean) to every authorized miner at once. A share is checked against the network
//! target first: one that meets it is assembled into a block and submitted to the chain at once
//! (on the blocking pool, as `submitblock` runs); then against the connection's share target,
//! DIFF1 / difficulty, where the difficulty is never above the network's. Vardiff moves each
//! connection's difficulty toward one share per `--stratum-share-interval`.
//!
//! Stock miners apply `mining.set_difficulty` only from the next `mining.notify`, so each
//! connection remembers the difficulty every job was sent under and judges a share at its
//! job's (as ckpool does), and every difficulty change is followed by a fresh job. Staleness
//! is decided against the chain's tip when the share is judged; duplicates are keyed on the
//! header hash per tip, whatever job id the share names.

pub use crate::stratum::request::{parse_request, Extension, Request, RequestError};

use super::rpc::NodeState;
use crate::block::Template;
use crate::pow::Target;
use crate::stratum::request::{self, resumed_extranonce1};
use crate::stratum::share::{self, check, effective_difficulty, rolled_version, Submission};
use crate::stratum::{
    Configured, ErrorCode, Granted, Job, Notification, Reconnect, Response, Subscribed,
    EXTRANONCE2_SIZE, VERSION_ROLLING_MASK,
};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Who may mine (`--stratum-auth`).
#[derive(Clone)]
pub enum Auth {
    /// Any user name and password.
    Any,
    /// These `user → password` pairs (the RPC credentials, or a file of `user:password` lines).
    Users(HashMap<String, String>),
}

/// Names the users, never their passwords.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Any => write!(f, "Any"),
            Auth::Users(users) => write!(f, "Users({} users)", users.len()),
        }
    }
}

impl Auth {
    fn allows(&self, user: &str, password: &str) -> bool {
        match self {
            Auth::Any => true,
            Auth::Users(users) => users.get(user).is_some_and(|p| {
                p.len() == password.len()
                    && p.bytes()
                        .zip(password.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }),
        }
    }

    /// Reads a file of `user:password` lines (blank lines and `#` comments skipped).
    pub fn from_file(path: &std::path::Path) -> Result<Auth, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the Stratum user file {}: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, password) = line.split_once(':').ok_or_else(|| {
                format!("{} line {}: expected user:password", path.display(), n + 1)
            })?;
            users.insert(user.to_string(), password.to_string());
        }
        if users.is_empty() {
            return Err(format!(
                "{}: no user:password lines, so no miner could log in",
                path.display()
            ));
        }
        Ok(Auth::Users(users))
    }
}

/// The Stratum server's settings; each is a `miner node` flag or a documented constant.
#[derive(Debug)]
pub struct Config {
    pub listener: std::net::TcpListener,
    pub auth: Auth,
    /// Initial share difficulty of a connection.
    pub difficulty: f64,
    /// Vardiff floor and ceiling.
    pub min_difficulty: f64,
    pub max_difficulty: f64,
    /// Target time between shares of one connection (vardiff).
    pub share_interval: Duration,
    /// Output script the coinbase of Stratum-mined blocks pays.
    pub payout: bitcoin::ScriptBuf,
    /// Miners connected at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// Bytes of one JSON line; a longer line closes the connection.
    pub max_line_bytes: usize,
    /// Time from connecting to a subscribed and authorized session.
    pub handshake_timeout: Duration,
    /// Time a connection may send nothing before it is closed.
    pub idle_timeout: Duration,
    /// Lines queued for a miner that is not reading; past it the miner is dropped.
    pub write_queue: usize,
    /// Time between refreshed (not clean) jobs on an unchanged tip.
    pub refresh: Duration,
}

impl Config {
    /// The defaults for a bound listener.
    pub fn new(listener: std::net::TcpListener, payout: bitcoin::ScriptBuf) -> Config {
        Config {
            listener,
            auth: Auth::Any,
            difficulty: 1.0,
            min_difficulty: 0.001,
            max_difficulty: 1e15,
            share_interval: Duration::from_secs(5),
            payout,
            max_connections: 20_000,
            max_line_bytes: MAX_LINE_BYTES,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            write_queue: 256,
            refresh: Duration::from_secs(30),
        }
    }

    /// The address miners connect to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Longest JSON line accepted (16 KiB).
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Jobs kept per connection for late shares (with the difficulty each was sent under); older
/// job ids answer 21 "Job not found".
const KEEP_JOBS: usize = 16;
/// Workers one connection may authorize.
const MAX_CONN_WORKERS: usize = 64;
/// Share header hashes kept for the duplicate check on one tip (oldest forgotten first).
const MAX_SEEN_SHARES: usize = 1 << 19;
/// Time a write to a miner may take before the miner is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Free slots of the write queue kept before the next request is read: a request's handling
/// queues a reply and perhaps a difficulty and a job.
const REPLY_HEADROOM: usize = 16;
/// Sliding window of the hash-rate estimate.
const RATE_WINDOW: Duration = Duration::from_secs(600);
/// The window is kept as sums over buckets this long (at most 61 per worker).
const RATE_BUCKET: Duration = Duration::from_secs(10);
/// Failed `mining.authorize` calls before a connection is closed.
const MAX_AUTH_FAILURES: u32 = 5;
/// Delay before a refused `mining.authorize` is answered.
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(250);
/// Distinct worker names tracked for `getstratuminfo` (totals count them all); past it the
/// least recently active is forgotten.
const MAX_WORKERS: usize = 10_000;
/// Workers listed by `getstratuminfo` (the highest hash rates; `workers_total` counts all).
const MAX_LISTED: usize = 100;
/// Closed sessions whose extranonce1 can still be restored by a resubscribe.
const KEEP_SESSIONS: usize = 100_000;

/// Per-worker figures.
#[derive(Default, Debug)]
struct Worker {
    accepted: u64,
    rejected: u64,
    blocks: u64,
    difficulty: f64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Accepted shares' difficulties in the last [`RATE_WINDOW`], summed per [`RATE_BUCKET`]
    /// (bucket start, sum): bounded whatever the share rate.
    window: VecDeque<(Instant, f64)>,
}

impl Worker {
    fn hashrate(&mut self, now: Instant) -> f64 {
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.window.pop_front();
        }
        let Some(first) = self.first else { return 0.0 };
        let span = now.duration_since(first).min(RATE_WINDOW).as_secs_f64();
        let work: f64 = self.window.iter().map(|(_, d)| d).sum();
        // Shares older than the window's start are already dropped bucket by bucket.
        work * 4_294_967_296.0 / span.max(1.0)
    }
}

/// What `getstratuminfo` reports.
#[derive(Debug)]
pub struct Stats {
    pub listening: SocketAddr,
    pub connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub shares_accepted: AtomicU64,
    pub shares_rejected: AtomicU64,
    pub blocks: AtomicU64,
    pub lines_too_long: AtomicU64,
    pub slow_readers_dropped: AtomicU64,
    workers: Mutex<HashMap<String, Worker>>,
}

impl Stats {
    fn new(listening: SocketAddr) -> Stats {
        Stats {
            listening,
            connections: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            shares_accepted: AtomicU64::new(0),
            shares_rejected: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            lines_too_long: AtomicU64::new(0),
            slow_readers_dropped: AtomicU64::new(0),
            workers: Mutex::new(HashMap::new()),
        }
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<String, Worker>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a share. `worker` gets a table entry only if `create` (the caller decides: an
    /// accepted share, or any share of a worker authenticated by password); a rejected share
    /// from a name without one counts in the totals only, so names cost the table nothing.
    fn record(
        &self,
        worker: &str,
        accepted: Option<f64>,
        block: bool,
        difficulty: f64,
        create: bool,
    ) {
        let counter = if accepted.is_some() {
            &self.shares_accepted
        } else {
            &self.shares_rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if block {
            self.blocks.fetch_add(1, Ordering::Relaxed);
        }
        let mut workers = self.workers();
        let now = Instant::now();
        if !workers.contains_key(worker) {
            if !create {
                return;
            }
            if workers.len() >= MAX_WORKERS {
                // Forget the least recently active (a scan, only when the table is full).
                let oldest = workers
                    .iter()
                    .min_by_key(|(_, w)| w.last)
                    .map(|(name, _)| name.clone());
                if let Some(oldest) = oldest {
                    workers.remove(&oldest);
                }
            }
        }
        let w = workers.entry(worker.to_string()).or_default();
        w.difficulty = difficulty;
        w.first.get_or_insert(now);
        w.last = Some(now);
        match accepted {
            Some(d) => {
                w.accepted += 1;
                match w.window.back_mut() {
                    Some((start, sum)) if now.duration_since(*start) < RATE_BUCKET => *sum += d,
                    _ => w.window.push_back((now, d)),
                }
                while w
                    .window
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
                {
                    w.window.pop_front();
                }
            }
            None => w.rejected += 1,
        }
        if block {
            w.blocks += 1;
        }
    }

    /// The `getstratuminfo` answer.
    pub fn to_json(&self) -> Value {
        let now = Instant::now();
        let mut total_rate = 0.0;
        let mut workers = self.workers();
        let workers_total = workers.len();
        let mut rates: Vec<(f64, &String, &Worker)> = workers
            .iter_mut()
            .map(|(name, w)| {
                let rate = w.hashrate(now);
                total_rate += rate;
                (rate, name, &*w)
            })
            .collect();
        // The highest hash rates first (then by name), at most MAX_LISTED of them.
        rates.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        rates.truncate(MAX_LISTED);
        let list: Vec<Value> = rates
            .into_iter()
            .map(|(rate, name, w)| {
                json!({
                    "worker": name,
                    "shares_accepted": w.accepted,
                    "shares_rejected": w.rejected,
                    "blocks": w.blocks,
                    "difficulty": w.difficulty,
                    "hashrate_hs": rate,
                })
            })
            .collect();
        drop(workers);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "listening": format!("stratum+tcp://{}", self.listening),
            "connections": get(&self.connections),
            "connections_total": get(&self.connections_total),
            "connections_refused": get(&self.connections_refused),
            "workers": list,
            "workers_total": workers_total,
            "shares_accepted": get(&self.shares_accepted),
            "shares_rejected": get(&self.shares_rejected),
            "blocks": get(&self.blocks),
            "hashrate_hs": total_rate,
            "lines_too_long": get(&self.lines_too_long),
            "slow_readers_dropped": get(&self.slow_readers_dropped),
        })
    }
}

/// A job sent to miners, with what judging its shares needs.
struct JobEntry {
    job: Job,
    template: Template,
    network_target: Target,
    /// The previous block's display hash, compared with the chain's tip (the tip watch).
    prev_display: String,
    /// The `mining.notify` line with clean_jobs false and true, serialized once for every miner.
    notify_lines: [String; 2],
}

/// Extranonce1 values: unique among live connections; a closed session's can be restored.
struct Sessions {
    live: HashSet<u32>,
    closed: HashSet<u32>,
    order: VecDeque<u32>,
    next: u32,
}

impl Sessions {
    fn open(&mut self, wanted: Option<u32>) -> u32 {
        if let Some(w) = wanted {
            if self.closed.remove(&w) {
                self.live.insert(w);
                return w;
            }
        }
        loop {
            self.next = self.next.wrapping_add(1);
            let n = self.next;
            if !self.live.contains(&n) && !self.closed.contains(&n) {
                self.live.insert(n);
                return n;
            }
        }
    }

    fn close(&mut self, en1: u32) {
        self.live.remove(&en1);
        self.closed.insert(en1);
        self.order.push_back(en1);
        while self.order.len() > KEEP_SESSIONS {
            if let Some(old) = self.order.pop_front() {
                if !self.live.contains(&old) {
                    self.closed.remove(&old);
                }
            }
        }
    }
}

/// What every connection shares.
struct Pool {
    state: Arc<NodeState>,
    auth: Auth,
    difficulty: f64,
    min_difficulty: f64,
    max_difficulty: f64,
    share_interval: Duration,
    payout: bitcoin::ScriptBuf,
    max_line_bytes: usize,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    write_queue: usize,
    refresh: Duration,
    stats: Arc<Stats>,
    /// The chain's tip (display hash), as the chain sets it when a block becomes the tip.
    tip: watch::Receiver<String>,
    /// Header hashes of the shares accepted on the current tip (duplicates answer 22).
    seen: Mutex<SeenShares>,
    /// Held from the stale check of a block-solving share to the chain's answer, so a second
    /// block on the same tip is judged after the first one moved it.
    block_submit: tokio::sync::Mutex<()>,
    current: watch::Sender<Option<Arc<JobEntry>>>,
    shutdown: watch::Sender<bool>,
    sessions: Mutex<Sessions>,
    next_job: AtomicU64,
}

/// The duplicate check: the header hashes of shares on one tip, whatever job id they named
/// (a refreshed job reissues the same coinbase and branch, so the same header). Cleared when
/// the tip changes; past [`MAX_SEEN_SHARES`] the oldest are forgotten.
#[derive(Default)]
struct SeenShares {
    tip: String,
    hashes: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl SeenShares {
    /// Whether `hash` is new on `tip` (and now remembered).
    fn insert(&mut self, tip: &str, hash: [u8; 32]) -> bool {
        if self.tip != tip {
            self.tip = tip.to_string();
            self.hashes.clear();
            self.order.clear();
        }
        if !self.hashes.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        while self.order.len() > MAX_SEEN_SHARES {
            if let Some(old) = self.order.pop_front() {
                self.hashes.remove(&old);
            }
        }
        true
    }
}

impl Pool {
    fn seen(&self) -> MutexGuard<'_, SeenShares> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `entry` builds on the chain's tip now.
    fn on_tip(&self, entry: &JobEntry) -> bool {
        *self.tip.borrow() == entry.prev_display
    }
    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts the Stratum server on the current runtime; the returned task ends once every miner
/// was told `client.reconnect` after `stop` (or the node's `stop`).
pub(crate) fn spawn(
    config: Config,
    state: Arc<NodeState>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let listening = config
        .local_addr()
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let stats = Arc::new(Stats::new(listening));
    let _ = state.stratum.set(stats.clone());
    let mut seed = [0u8; 4];
    rand::Rng::fill(&mut rand::thread_rng(), &mut seed);
    let min_difficulty = config.min_difficulty;
    let max_difficulty = config.max_difficulty.max(min_difficulty);
    let tip = state.watch_tip();
    let pool = Arc::new(Pool {
        state,
        auth: config.auth,
        difficulty: config.difficulty.clamp(min_difficulty, max_difficulty),
        min_difficulty,
        max_difficulty,
        share_interval: config.share_interval.max(Duration::from_millis(100)),
        payout: config.payout,
        max_line_bytes: config.max_line_bytes,
        handshake_timeout: config.handshake_timeout,
        idle_timeout: config.idle_timeout,
        write_queue: config.write_queue.max(2 * REPLY_HEADROOM),
        refresh: config.refresh,
        stats,
        tip,
        seen: Mutex::new(SeenShares::default()),
        block_submit: tokio::sync::Mutex::new(()),
        current: watch::Sender::new(None),
        shutdown: watch::Sender::new(false),
        sessions: Mutex::new(Sessions {
            live: HashSet::new(),
            closed: HashSet::new(),
            order: VecDeque::new(),
            next: u32::from_le_bytes(seed),
        }),
        next_job: AtomicU64::new(1),
    });
    let listener = config.listener;
    let max_connections = config.max_connections.max(1);
    tokio::spawn(async move {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "stratum: cannot register the listening socket");
                return;
            }
        };
        tokio::spawn(make_jobs(pool.clone()));
        accept(pool, listener, max_connections, stop).await;
    })
}

async fn accept(
    pool: Arc<Pool>,
    listener: tokio::net::TcpListener,
    max: usize,
    stop: Arc<AtomicBool>,
) {
    let connections = Arc::new(Semaphore::new(max));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        pool.stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, limit = max, "stratum: connection limit reached: connection closed");
                        drop(stream);
                        continue;
                    };
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        connection(&pool, stream, peer).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "stratum: accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tick.tick() => {
                if stop.load(Ordering::SeqCst) || pool.state.stopping() {
                    break;
                }
            }
        }
    }
    drop(listener);
    pool.shutdown.send_replace(true);
    // Let every miner receive its client.reconnect.
    let deadline = Instant::now() + Duration::from_secs(2);
    while connections.available_permits() < max && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Builds a job on every new tip (clean) and every `refresh` (not clean), and publishes it.
async fn make_jobs(pool: Arc<Pool>) {
    let mut tip = pool.state.watch_tip();
    let mut shutdown = pool.shutdown.subscribe();
    let mut last_tip = String::new();
    loop {
        let now_tip = tip.borrow_and_update().clone();
        if pool.state.stopping() || *shutdown.borrow() {
            return;
        }
        let clean = now_tip != last_tip;
        // Blocks faster than one a second push the median time past ahead of the clock: wait
        // for the clock rather than hand out a job whose blocks the chain must refuse.
        let state = pool.state.clone();
        let wait = tokio::task::spawn_blocking(move || state.clock_wait())
            .await
            .unwrap_or(0);
        if wait > 0 {
            tracing::debug!(
                seconds = wait,
                "stratum: waiting for the clock to pass the median time of the last blocks"
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                _ = shutdown.changed() => return,
            }
        }
        let (state, payout) = (pool.state.clone(), pool.payout.clone());
        match tokio::task::spawn_blocking(move || state.template_for(&payout)).await {
            Ok(Ok(template)) => {
                last_tip = now_tip;
                let id = format!("{:x}", pool.next_job.fetch_add(1, Ordering::Relaxed));
                let job = Job::from_template(id, &template, clean);
                let network_target = template.target;
                let notify_lines = [false, true].map(|clean| {
                    Notification::Notify(Job {
                        clean,
                        ..job.clone()
                    })
                    .to_line()
                });
                let mut prev = job.prev_hash;
                prev.reverse();
                let entry = Arc::new(JobEntry {
                    prev_display: hex::encode(prev),
                    job,
                    template,
                    network_target,
                    notify_lines,
                });
                tracing::debug!(job = %entry.job.id, height = entry.template.height, clean, "stratum: new job");
                pool.current.send_replace(Some(entry));
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "stratum: cannot build a template; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "stratum: template task failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        tokio::select! {
            changed = tip.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(pool.refresh) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One line read, the end of the stream, or a line over the limit.
enum Line {
    Complete,
    Eof,
    TooLong,
}

/// Reads up to a `\n` into `buf` (without it). Cancel-safe: bytes taken from the reader are
/// already in `buf`, so a `select!` may drop this future and call it again.
async fn read_line(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        if let Some(i) = available.iter().position(|b| *b == b'\n') {
            if buf.len() + i > max {
                return Ok(Line::TooLong);
            }
            buf.extend_from_slice(&available[..i]);
            reader.consume(i + 1);
            return Ok(Line::Complete);
        }
        let n = available.len();
        if buf.len() + n > max {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(available);
        reader.consume(n);
    }
}

/// Vardiff's state of one connection.
struct Vardiff {
    since: Instant,
    shares: u32,
}

/// One miner's session.
struct Conn {
    peer: SocketAddr,
    out: mpsc::Sender<String>,
    /// The write queue overflowed: the miner is not reading.
    dead: bool,
    extranonce1: Option<u32>,
    workers: HashSet<String>,
    auth_failures: u32,
    version_mask: u32,
    /// The difficulty jobs are sent under from now on (before the network clamp).
    difficulty: f64,
    /// The last [`KEEP_JOBS`] jobs sent to this connection: job id, job, and the difficulty
    /// in force when it was sent (a share is judged at it: stock miners apply a
    /// `mining.set_difficulty` only from the next `mining.notify`).
    jobs: VecDeque<(String, Arc<JobEntry>, f64)>,
    /// Floor asked with `mining.configure` minimum-difficulty.
    min_asked: f64,
    /// The difficulty last sent with `mining.set_difficulty`.
    sent_difficulty: Option<f64>,
    /// Jobs flow once subscribed and authorized.
    jobs_on: bool,
    vardiff: Vardiff,
}

impl Conn {
    /// Queues one line (newline included).
    fn send(&mut self, line: String) {
        if self.out.try_send(line).is_err() {
            self.dead = true;
        }
    }

    fn reply(&mut self, id: &Value, result: Value) {
        self.send(Response::ok(id, result).to_line());
    }

    fn error(&mut self, id: &Value, code: ErrorCode, message: &str) {
        self.send(Response::error(id, code, message).to_line());
    }

    /// Sends `mining.set_difficulty` if the applied difficulty differs from the last sent;
    /// whether it did.
    fn send_difficulty(&mut self, network_target: Option<&Target>) -> bool {
        let d = match network_target {
            Some(t) => effective_difficulty(self.difficulty, t),
            None => self.difficulty,
        };
        if self.sent_difficulty == Some(d) {
            return false;
        }
        self.sent_difficulty = Some(d);
        self.send(Notification::SetDifficulty(d).to_line());
        true
    }

    /// Remembers that `entry` was sent as `job_id` under the current difficulty.
    fn sent_job(&mut self, job_id: String, entry: &Arc<JobEntry>) {
        self.jobs
            .push_back((job_id, entry.clone(), self.difficulty));
        while self.jobs.len() > KEEP_JOBS {
            self.jobs.pop_front();
        }
    }

    fn notify(&mut self, entry: &Arc<JobEntry>, clean: bool) {
        self.send_difficulty(Some(&entry.network_target));
        self.sent_job(entry.job.id.clone(), entry);
        self.send(entry.notify_lines[usize::from(clean)].clone());
    }

    /// Moves the connection to difficulty `d`: once jobs flow, `mining.set_difficulty` and at
    /// once a fresh job (the current template under a new job id, clean_jobs false) that the
    /// miner applies it from. Shares of the jobs sent before keep the difficulty they were
    /// sent under.
    fn change_difficulty(&mut self, pool: &Pool, d: f64) {
        if d == self.difficulty {
            return;
        }
        self.difficulty = d;
        if !self.jobs_on {
            return;
        }
        let entry = pool.current.borrow().clone();
        let sent = self.send_difficulty(entry.as_ref().map(|e| &e.network_target));
        if let (true, Some(entry)) = (sent, entry) {
            let id = format!("{:x}", pool.next_job.fetch_add(1, Ordering::Relaxed));
            let job = Job {
                id: id.clone(),
                clean: false,
                ..entry.job.clone()
            };
            self.sent_job(id, &entry);
            self.send(Notification::Notify(job).to_line());
        }
    }

    /// The job sent to this connection as `job_id`, and the difficulty its shares are judged
    /// at: the one it was sent under, or the current one if lower (a miner that applies a
    /// lowered difficulty at once is not refused either).
    fn job(&self, job_id: &str) -> Option<(Arc<JobEntry>, f64)> {
        self.jobs
            .iter()
            .rev()
            .find(|(id, _, _)| id == job_id)
            .map(|(_, e, d)| (e.clone(), d.min(self.difficulty)))
    }
}

async fn connection(pool: &Arc<Pool>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let stats = &pool.stats;
    stats.connections.fetch_add(1, Ordering::Relaxed);
    stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let (out, mut queue) = mpsc::channel::<String>(pool.write_queue);
    let writer = tokio::spawn(async move {
        while let Some(line) = queue.recv().await {
            match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(line.as_bytes())).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), write.shutdown()).await;
    });
    let mut reader = BufReader::with_capacity(4096, read);
    let mut jobs = pool.current.subscribe();
    jobs.mark_unchanged();
    let mut shutdown = pool.shutdown.subscribe();
    let opened = Instant::now();
    let mut conn = Conn {
        peer,
        out,
        dead: false,
        extranonce1: None,
        workers: HashSet::new(),
        auth_failures: 0,
        version_mask: 0,
        difficulty: pool.difficulty,
        jobs: VecDeque::new(),
        min_asked: 0.0,
        sent_difficulty: None,
        jobs_on: false,
        vardiff: Vardiff {
            since: opened,
            shares: 0,
        },
    };
    let mut buf = Vec::new();
    let mut last_line = opened;
    let mut vardiff = tokio::time::interval_at(opened + pool.share_interval, pool.share_interval);
    let why = loop {
        let idle_at = last_line + pool.idle_timeout;
        let deadline = if conn.jobs_on {
            idle_at
        } else {
            idle_at.min(opened + pool.handshake_timeout)
        };
        tokio::select! {
            read = read_line(&mut reader, &mut buf, pool.max_line_bytes) => match read {
                Ok(Line::Complete) => {
                    last_line = Instant::now();
                    let line = std::mem::take(&mut buf);
                    handle_line(pool, &mut conn, &line).await;
                    // Back-pressure: pipelined requests wait (the next line is not read) until
                    // the replies drain; a miner that leaves them unread for WRITE_TIMEOUT is
                    // dropped.
                    if !conn.dead && conn.out.capacity() < REPLY_HEADROOM {
                        match tokio::time::timeout(WRITE_TIMEOUT, conn.out.reserve_many(REPLY_HEADROOM)).await {
                            Ok(Ok(permits)) => drop(permits),
                            _ => conn.dead = true,
                        }
                    }
                }
                Ok(Line::Eof) => break "closed by the miner",
                Ok(Line::TooLong) => {
                    stats.lines_too_long.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, limit = pool.max_line_bytes, "stratum: line too long: connection closed");
                    break "line too long";
                }
                Err(_) => break "read error",
            },
            changed = jobs.changed() => {
                if changed.is_err() {
                    break "server stopping";
                }
                let entry = jobs.borrow_and_update().clone();
                if let (true, Some(entry)) = (conn.jobs_on, entry) {
                    conn.notify(&entry, entry.job.clean);
                }
            }
            _ = shutdown.changed() => {
                conn.send(Notification::Reconnect(Reconnect::default()).to_line());
                break "server stopping";
            }
            _ = tokio::time::sleep_until(deadline) => {
                break if conn.jobs_on { "idle timeout" } else { "handshake timeout" };
            }
            _ = vardiff.tick() => retarget(pool, &mut conn, false),
        }
        if conn.dead {
            stats.slow_readers_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "stratum: miner not reading (write queue full): dropped");
            break "write queue full";
        }
        if conn.auth_failures >= MAX_AUTH_FAILURES {
            break "too many failed authorizations";
        }
    };
    tracing::debug!(%peer, reason = why, "stratum: connection closed");
    if let Some(en1) = conn.extranonce1 {
        pool.sessions().close(en1);
    }
    let dead = conn.dead;
    drop(conn);
    let mut writer = writer;
    // A miner that is not reading gets nothing more; the others get what is queued (the
    // client.reconnect included) for up to 2 s.
    if dead
        || tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    stats.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Vardiff: after enough shares (or time), moves the difficulty toward one share per
/// `share_interval`, by a factor of 1/4 to 16 per step, within the floor and ceiling.
fn retarget(pool: &Pool, conn: &mut Conn, after_share: bool) {
    if !conn.jobs_on {
        return;
    }
    let interval = pool.share_interval.as_secs_f64();
    let elapsed = conn.vardiff.since.elapsed().as_secs_f64();
    let shares = conn.vardiff.shares;
    let enough = (shares >= 8 && elapsed > 0.0) || elapsed >= interval * 6.0;
    if !enough || (after_share && shares < 8) {
        return;
    }
    let per_share = elapsed / f64::from(shares.max(1));
    let factor = (interval / per_share.max(1e-6)).clamp(0.25, 16.0);
    let floor = pool
        .min_difficulty
        .max(conn.min_asked)
        .min(pool.max_difficulty);
    // The rate was measured at the difficulty applied (clamped to the network's).
    let applied = conn
        .sent_difficulty
        .unwrap_or(conn.difficulty)
        .min(conn.difficulty);
    let d = (applied * factor).clamp(floor, pool.max_difficulty);
    conn.vardiff = Vardiff {
        since: Instant::now(),
        shares: 0,
    };
    if (d / conn.difficulty - 1.0).abs() < 0.2 {
        return;
    }
    conn.change_difficulty(pool, d);
}

async fn handle_line(pool: &Arc<Pool>, conn: &mut Conn, line: &[u8]) {
    let request = match parse_request(line) {
        Ok(r) => r,
        Err(RequestError::BadParams {
            id,
            method: "mining.submit",
            worker,
            message,
        }) => return submit_malformed(pool, conn, &id, worker.as_deref(), &message),
        Err(e) => return conn.error(&e.id(), ErrorCode::Other, &e.to_string()),
    };
    match request {
        Request::Nothing => {}
        Request::Subscribe { id, session, .. } => {
            subscribe(pool, conn, &id, resumed_extranonce1(session.as_deref()))
        }
        Request::Authorize { id, user, password } => {
            authorize(pool, conn, &id, &user, &password).await
        }
        Request::Submit { id, submit: s } => submit(pool, conn, &id, &s).await,
        Request::Configure { id, extensions } => configure(pool, conn, &id, &extensions),
        Request::SuggestDifficulty { id, difficulty } => {
            let floor = pool
                .min_difficulty
                .max(conn.min_asked)
                .min(pool.max_difficulty);
            let d = difficulty.clamp(floor, pool.max_difficulty);
            conn.reply(&id, Value::Bool(true));
            conn.change_difficulty(pool, d);
        }
        Request::ExtranonceSubscribe { id } => {
            // The extranonce1 of a session never changes, so no mining.set_extranonce follows.
            conn.reply(&id, Value::Bool(true))
        }
        Request::Ping { id } => conn.reply(&id, Value::from("pong")),
        Request::GetTransactions { id } => conn.reply(&id, Value::Array(Vec::new())),
    }
}

fn subscribe(pool: &Pool, conn: &mut Conn, id: &Value, wanted: Option<u32>) {
    let en1 = match conn.extranonce1 {
        Some(en1) => en1,
        None => {
            let en1 = pool.sessions().open(wanted);
            conn.extranonce1 = Some(en1);
            en1
        }
    };
    let subscribed = Subscribed {
        session: Some(hex::encode(en1.to_be_bytes())),
        extranonce1: en1.to_be_bytes().to_vec(),
        extranonce2_size: EXTRANONCE2_SIZE,
    };
    conn.reply(id, subscribed.to_value());
    start_jobs(pool, conn);
}

async fn authorize(pool: &Pool, conn: &mut Conn, id: &Value, user: &str, password: &str) {
    if user.is_empty() || user.len() > 256 || !pool.auth.allows(user, password) {
        conn.auth_failures += 1;
        tracing::warn!(peer = %conn.peer, user, "stratum: authorization refused");
        // As the RPC's 250 ms: guessing passwords costs the guesser time (no thread is held).
        tokio::time::sleep(AUTH_FAILURE_DELAY).await;
        conn.send(refused(id, "unauthorized worker"));
        return;
    }
    if !conn.workers.contains(user) && conn.workers.len() >= MAX_CONN_WORKERS {
        // Not a password failure: no delay, and it does not count toward closing.
        tracing::debug!(peer = %conn.peer, user, "stratum: worker limit of the connection reached");
        let message = format!(
            "too many workers on this connection: the limit is {MAX_CONN_WORKERS}; open another connection"
        );
        conn.send(refused(id, &message));
        return;
    }
    conn.workers.insert(user.to_string());
    conn.reply(id, Value::Bool(true));
    start_jobs(pool, conn);
}

/// A refused `mining.authorize`: result false and error 24 `message`.
fn refused(id: &Value, message: &str) -> String {
    Response {
        result: Value::Bool(false),
        ..Response::error(id, ErrorCode::Unauthorized, message)
    }
    .to_line()
}

/// Once subscribed and authorized: the difficulty and the current job.
fn start_jobs(pool: &Pool, conn: &mut Conn) {
    if conn.jobs_on || conn.extranonce1.is_none() || conn.workers.is_empty() {
        return;
    }
    conn.jobs_on = true;
    conn.vardiff = Vardiff {
        since: Instant::now(),
        shares: 0,
    };
    let entry = pool.current.borrow().clone();
    match entry {
        Some(entry) => conn.notify(&entry, true),
        None => {
            conn.send_difficulty(None);
        }
    }
}

fn configure(pool: &Pool, conn: &mut Conn, id: &Value, extensions: &[Extension]) {
    let mut result = Configured::default();
    for extension in extensions {
        result.0.push(match extension {
            Extension::VersionRolling { mask, .. } => {
                let asked = mask.unwrap_or(u32::MAX);
                conn.version_mask = VERSION_ROLLING_MASK & asked;
                Granted::VersionRolling {
                    mask: conn.version_mask,
                }
            }
            Extension::MinimumDifficulty { value } => {
                let v = *value;
                if let Some(v) = v {
                    conn.min_asked = v.min(pool.max_difficulty);
                }
                Granted::MinimumDifficulty(v.is_some())
            }
            Extension::Other(other) => Granted::Refused(other.clone()),
        });
    }
    conn.reply(id, result.to_value());
    if conn.difficulty < conn.min_asked {
        conn.change_difficulty(pool, conn.min_asked);
    }
}

/// A `mining.submit` whose params do not decode: refused (20) once the connection is subscribed
/// and the worker authorized (else 25 or 24, as a well-formed one).
fn submit_malformed(pool: &Pool, conn: &mut Conn, id: &Value, worker: Option<&str>, message: &str) {
    if conn.extranonce1.is_none() {
        pool.stats.shares_rejected.fetch_add(1, Ordering::Relaxed);
        return conn.error(id, ErrorCode::NotSubscribed, "Not subscribed");
    }
    match worker.filter(|w| conn.workers.contains(*w)) {
        Some(w) => {
            let create = matches!(pool.auth, Auth::Users(_));
            pool.stats.record(w, None, false, conn.difficulty, create)
        }
        None => {
            pool.stats.shares_rejected.fetch_add(1, Ordering::Relaxed);
            return conn.error(id, ErrorCode::Unauthorized, "Unauthorized worker");
        }
    }
    conn.error(id, ErrorCode::Other, message);
}

async fn submit(pool: &Arc<Pool>, conn: &mut Conn, id: &Value, sub: &request::Submit) {
    let worker = sub.worker.as_str();
    let Some(en1) = conn.extranonce1 else {
        pool.stats.shares_rejected.fetch_add(1, Ordering::Relaxed);
        return conn.error(id, ErrorCode::NotSubscribed, "Not subscribed");
    };
    if !conn.workers.contains(worker) {
        pool.stats.shares_rejected.fetch_add(1, Ordering::Relaxed);
        return conn.error(id, ErrorCode::Unauthorized, "Unauthorized worker");
    }
    // Rejected shares add a table entry only for workers authenticated by password.
    let create = matches!(pool.auth, Auth::Users(_));
    let reject = |conn: &mut Conn, code: ErrorCode, message: &str| {
        pool.stats
            .record(worker, None, false, conn.difficulty, create);
        conn.error(id, code, message);
    };
    // The request decoder takes EXTRANONCE2_SIZE bytes only.
    let Ok(en2) = <[u8; EXTRANONCE2_SIZE]>::try_from(sub.extranonce2.as_slice()) else {
        return reject(conn, ErrorCode::Other, "extranonce2: expected 8 hex digits");
    };
    let (job_id, ntime, nonce, bits) =
        (sub.job_id.as_str(), sub.ntime, sub.nonce, sub.version_bits);
    let Some((entry, job_difficulty)) = conn.job(job_id) else {
        return reject(conn, ErrorCode::Stale, "Job not found");
    };
    // Against the chain's tip now: the newest job lags it while the next template is built.
    if !pool.on_tip(&entry) {
        return reject(
            conn,
            ErrorCode::Stale,
            "Job not found (stale: the chain has a new tip)",
        );
    }
    if ntime < entry.job.ntime || ntime > crate::mining::unix_now().saturating_add(7200) {
        return reject(conn, ErrorCode::Other, "ntime out of range");
    }
    let Some(version) = rolled_version(entry.job.version, conn.version_mask, bits) else {
        return reject(
            conn,
            ErrorCode::Other,
            "version bits outside the negotiated mask",
        );
    };
    let s = Submission {
        extranonce1: en1.to_be_bytes(),
        extranonce2: en2,
        ntime,
        nonce,
        version,
    };
    let difficulty = effective_difficulty(job_difficulty, &entry.network_target);
    let verdict = check(&entry.job, &s, difficulty, &entry.network_target);
    if !verdict.share {
        return reject(conn, ErrorCode::LowDifficulty, "Low difficulty share");
    }
    if !pool.seen().insert(&entry.prev_display, verdict.hash) {
        return reject(conn, ErrorCode::Duplicate, "Duplicate share");
    }
    let mut block = false;
    if verdict.block {
        match submit_block(pool, &entry, &s, &verdict, worker).await {
            BlockOutcome::Tip => block = true,
            BlockOutcome::Stale => {
                return reject(
                    conn,
                    ErrorCode::Stale,
                    "Job not found (stale: the chain has a new tip)",
                )
            }
            BlockOutcome::NotTip => {}
        }
    }
    pool.stats
        .record(worker, Some(difficulty), block, difficulty, true);
    conn.vardiff.shares += 1;
    conn.reply(id, Value::Bool(true));
    retarget(pool, conn, true);
}

/// What became of a block-solving share.
enum BlockOutcome {
    /// The chain took it as its new tip: a block (counted in `blocks`).
    Tip,
    /// The chain's tip had moved before it could be submitted: not submitted, refused as
    /// stale (21) like any share of a job whose tip is gone.
    Stale,
    /// Submitted but not the tip (stored on a side branch because another block reached the
    /// chain first, or refused by it): the share is accepted, no block is counted.
    NotTip,
}

/// Assembles the block a share found and submits it to the chain (on the blocking pool), if
/// its job still builds on the chain's tip. One at a time: the tip is checked again under
/// [`Pool::block_submit`], so of two blocks on one tip the second is judged stale.
async fn submit_block(
    pool: &Arc<Pool>,
    entry: &Arc<JobEntry>,
    s: &Submission,
    verdict: &share::Verdict,
    worker: &str,
) -> BlockOutcome {
    let hash = verdict.display_hash();
    let height = entry.template.height;
    let Some(extranonce) = crate::stratum::template_extranonce(&s.extranonce1, &s.extranonce2)
    else {
        return BlockOutcome::NotTip;
    };
    let mut block = entry.template.assemble(extranonce, s.nonce);
    block.header.time = s.ntime;
    block.header.version = bitcoin::block::Version::from_consensus(s.version as i32);
    let assembled = crate::block::header_bytes(&block.header);
    if assembled != verdict.header {
        tracing::error!(
            %hash,
            "stratum: the assembled block's header differs from the share's: not submitted"
        );
        return BlockOutcome::NotTip;
    }
    let _one_at_a_time = pool.block_submit.lock().await;
    if !pool.on_tip(entry) {
        tracing::info!(worker, height, %hash, "stratum: block-solving share on a tip that is gone: stale, not submitted");
        return BlockOutcome::Stale;
    }
    let state = pool.state.clone();
    match tokio::task::spawn_blocking(move || state.submit_mined(block, "stratum")).await {
        Ok(Ok((crate::chain::Accepted::Tip, height))) => {
            tracing::info!(worker, height, %hash, "stratum: block found and accepted");
            BlockOutcome::Tip
        }
        Ok(Ok((crate::chain::Accepted::SideBranch, height))) => {
            tracing::info!(worker, height, %hash, "stratum: block found but stored on a side branch (another block reached the chain first): not counted");
            BlockOutcome::NotTip
        }
        Ok(Err(reason)) => {
            tracing::warn!(worker, height, %hash, %reason, "stratum: block found but refused by the chain: not counted");
            BlockOutcome::NotTip
        }
        Err(e) => {
            tracing::error!(error = %e, "stratum: block submission failed");
            BlockOutcome::NotTip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22 item 4: names with only rejected shares add no entry; the table, each worker's
    /// rate window and the `getstratuminfo` answer stay bounded.
    #[test]
    fn the_worker_table_its_windows_and_the_answer_are_bounded() {
        let stats = Stats::new(SocketAddr::from(([127, 0, 0, 1], 3333)));
        for i in 0..64_000 {
            stats.record(&format!("garbage{i}"), None, false, 1.0, false);
        }
        assert_eq!(stats.workers().len(), 0);
        assert_eq!(stats.shares_rejected.load(Ordering::Relaxed), 64_000);
        for i in 0..MAX_WORKERS + 500 {
            stats.record(&format!("w{i}"), Some(0.001), false, 0.001, true);
        }
        for _ in 0..100_000 {
            stats.record("fast", Some(1.0), false, 1.0, true);
        }
        {
            let workers = stats.workers();
            assert_eq!(workers.len(), MAX_WORKERS);
            assert!(
                workers["fast"].window.len() <= 2,
                "{}",
                workers["fast"].window.len()
            );
            assert!(
                !workers.contains_key("w0"),
                "the least recently active is forgotten"
            );
        }
        let started = std::time::Instant::now();
        let answer = stats.to_json();
        let took = started.elapsed();
        let bytes = answer.to_string().len();
        eprintln!("getstratuminfo with {MAX_WORKERS} workers: {bytes} bytes in {took:?}");
        assert_eq!(answer["workers"].as_array().map(Vec::len), Some(MAX_LISTED));
        assert_eq!(answer["workers_total"], MAX_WORKERS);
        assert_eq!(answer["workers"][0]["worker"], "fast", "highest rate first");
        assert!(bytes < 32 * 1024, "{bytes}");
    }
}
