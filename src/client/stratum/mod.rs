//! The Stratum v1 client behind `miner mine --pool stratum+tcp://HOST:PORT`: one TCP connection
//! to a pool at a time (a reader thread per connection, the search on the caller's thread),
//! `mining.configure` (BIP 310 version rolling), `mining.subscribe`, `mining.authorize`,
//! `mining.extranonce.subscribe`; jobs from `mining.notify` (a clean job cancels the search at
//! once), share targets from `mining.set_difficulty`, `mining.set_extranonce`,
//! `mining.set_version_mask`, `client.reconnect`, `mining.ping`. Pools are tried in the order
//! given: on a failure or a lost connection the next one, with backoff once every pool failed in
//! a row, and back to an earlier pool as soon as a probe finds it reachable again.
//!
//! Each job is searched as a sequence of works: extranonce2 (a little-endian counter, rolled per
//! job and when a work's nonces run out) and, when the pool allows version rolling, the version
//! bits inside the pool's mask (rolled before a new extranonce2 is taken). A share found for a job
//! that a clean `mining.notify` has replaced is counted stale and not sent.

use super::{next_slice, sleep_unless};
use crate::backend::{Backend, StopAt, NONCE_END};
use crate::hash::{display_hash, sha256d};
use crate::pow::{CompactTarget, Target};
use crate::stratum::{
    difficulty_of, share_target, u32_hex, BadCall, Configured, ErrorCode, Extension, Job,
    Notification, PoolLine, ReplyError, Request, Response, StratumError, Submit, Subscribed,
    VERSION_ROLLING_MASK,
};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the client calls itself in `mining.subscribe`.
pub const USER_AGENT: &str = concat!("miner/", env!("CARGO_PKG_VERSION"));

/// The longest line accepted from a pool (a notify with a deep merkle branch is a few KiB).
const MAX_LINE: usize = 1 << 20;
/// How long the handshake (subscribe and authorize answered) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `mining.subscribe` may go unanswered while `mining.configure` is unanswered too
/// before the configure is blamed (a pool that does not know it may drop or ignore it, and some
/// drop the connection: ckpool's "Dropping mining.configure from unsubscribed client").
const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that has sent nothing for this long is taken as dead (half-open).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Jobs kept valid for submits (those since the last clean job, newest last).
const MAX_JOBS: usize = 16;
/// After a share that is also a block, the job's tip is spent: wait this long for the pool's
/// next job before searching the same job again.
const BLOCK_PAUSE: Duration = Duration::from_secs(3);
/// How long to wait for the answers to shares in flight when mining stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// ... and when it is interrupted (Ctrl-C).
const CANCEL_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the client cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A pool URL no retry can make work.
    #[error("'{url}' cannot be a pool's address: {why}; give stratum+tcp://HOST:PORT, e.g. stratum+tcp://127.0.0.1:3333")]
    BadUrl { url: String, why: String },
    #[error("no pool given: add --pool stratum+tcp://HOST:PORT")]
    NoPool,
    #[error("backend failed: {0}")]
    Backend(String),
}

/// A pool's address as the user gave it, and where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUrl {
    /// The URL as given (trimmed): what summaries name the pool by.
    pub url: String,
    pub host: String,
    pub port: u16,
}

/// Reads `stratum+tcp://HOST:PORT` (also `stratum://`, `tcp://` or a bare `HOST:PORT`; IPv6 as
/// `[::1]:3333`). TLS schemes and URLs without a port are refused.
pub fn parse_pool_url(input: &str) -> Result<PoolUrl, PoolError> {
    let text = input.trim();
    let bad = |why: &str| PoolError::BadUrl {
        url: text.to_string(),
        why: why.to_string(),
    };
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("stratum+tcp".to_string(), text),
    };
    match scheme.as_str() {
        "stratum+tcp" | "stratum" | "tcp" => {}
        "stratum+ssl" | "stratum+tls" | "ssl" | "tls" => {
            return Err(bad(
                "this build speaks plain TCP only (no TLS); use the pool's stratum+tcp:// port",
            ))
        }
        other => return Err(bad(&format!("the scheme '{other}' is not stratum+tcp"))),
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once("]:") {
            Some((h, p)) => (h, p),
            None => return Err(bad("an IPv6 address needs the form [ADDR]:PORT")),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => return Err(bad("it names no port (pools differ: 3333 is common)")),
        }
    };
    if host.is_empty() {
        return Err(bad("it names no host"));
    }
    if host.contains(char::is_whitespace) {
        return Err(bad("the host contains a space"));
    }
    let port = match port.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => n as u16,
        Ok(n) => return Err(bad(&format!("port {n} is not between 1 and 65535"))),
        Err(_) if port.is_empty() => return Err(bad("the port after ':' is empty")),
        Err(_) => return Err(bad(&format!("port '{port}' is not a number"))),
    };
    Ok(PoolUrl {
        url: text.to_string(),
        host: host.to_string(),
        port,
    })
}

/// How a pool run goes and ends.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Pools in order of preference (failover).
    pub pools: Vec<PoolUrl>,
    pub user: String,
    pub password: String,
    /// Stop after this many block candidates: accepted shares that meet the job's nBits target
    /// (the pool, not the client, submits a block, and it does not say whether it did).
    pub blocks: Option<u64>,
    /// Stop after this many accepted shares.
    pub shares: Option<u64>,
    /// Offer BIP 310 version rolling (`mining.configure`). A pool that closes the connection
    /// (or stays silent) before answering `mining.subscribe` while the configure is unanswered
    /// is reconnected to once without it, for the rest of the run.
    pub version_rolling: bool,
    /// Longest wait between reconnection rounds.
    pub max_backoff: Duration,
    /// While on a later pool, how often to probe the earlier ones.
    pub failback_interval: Duration,
    /// About how long one backend call runs before new messages are looked at (a clean job
    /// cancels the call at once regardless).
    pub scan_slice: Duration,
}

impl PoolOptions {
    /// Options with the defaults `miner mine --pool` uses.
    pub fn new(pools: Vec<PoolUrl>) -> PoolOptions {
        PoolOptions {
            pools,
            user: "miner".into(),
            password: "x".into(),
            blocks: None,
            shares: None,
            version_rolling: true,
            max_backoff: Duration::from_secs(30),
            failback_interval: Duration::from_secs(15),
            scan_slice: Duration::from_millis(100),
        }
    }
}

/// Counts for one pool (the `--pool` entry, whatever host a `client.reconnect` sent us to).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolStats {
    pub url: String,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Shares the pool refused for another reason than staleness, and shares left unanswered
    /// when the connection closed.
    pub rejected: u64,
    /// Shares for replaced jobs: found after a clean job and not sent, or refused by the pool
    /// as stale (error 21 or a message naming a stale or unknown job).
    pub stale: u64,
    /// Of `stale`, those not sent.
    pub stale_unsent: u64,
    /// Block candidates: accepted shares that also meet the job's network target (nBits).
    /// Whether the pool submitted them as blocks is not known to the client.
    pub blocks: u64,
    /// Hashes done on this pool's jobs.
    pub hashes: u64,
    /// Seconds connected (after the handshake).
    pub seconds: f64,
    /// Successful handshakes.
    pub connects: u64,
    /// Failed connection attempts and lost connections.
    pub failures: u64,
    /// The last share difficulty the pool set.
    pub difficulty: f64,
    /// The version-rolling mask in use at the last connection (0: not rolling).
    pub version_mask: u32,
}

impl PoolStats {
    /// Hashes per second while connected.
    pub fn hashrate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.hashes as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// What became of a share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareResult {
    Accepted,
    /// Refused (or unanswered) for this reason.
    Rejected(String),
    /// For a replaced job: `sent` false when found after a clean job (never sent), true when
    /// the pool refused it as stale.
    Stale {
        sent: bool,
        reason: String,
    },
}

/// One share found, with its fate.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareEvent {
    pub pool: String,
    pub job: String,
    pub extranonce2: String,
    pub ntime: String,
    pub nonce: String,
    /// The header's full version (hex, big-endian).
    pub version: String,
    /// The hash, display order.
    pub hash: String,
    /// The share difficulty in force when it was found.
    pub share_difficulty: f64,
    /// The hash's own difficulty (DIFF1 / hash).
    pub hash_difficulty: f64,
    /// Whether it meets the job's network target (a block candidate).
    pub block: bool,
    pub result: ShareResult,
}

/// The client's side of the work a pool hands out: a job with this connection's extranonce1,
/// one extranonce2 and one version; what it hashes and what it submits.
#[derive(Clone, Debug)]
pub struct Work {
    pub job: Job,
    pub extranonce1: Vec<u8>,
    pub extranonce2: Vec<u8>,
    /// The header's version (the job's, with rolled bits inside `version_mask`).
    pub version: u32,
    /// The pool's version-rolling mask; 0 when not rolling (5-parameter submits).
    pub version_mask: u32,
    pub share_target: Target,
    /// The job's nBits target (`None` if the nBits are invalid).
    pub network_target: Option<Target>,
    header: [u8; 80],
}

impl Work {
    pub fn new(
        job: Job,
        extranonce1: &[u8],
        extranonce2: &[u8],
        version: u32,
        version_mask: u32,
        share_target: Target,
    ) -> Work {
        let header = job.header(extranonce1, extranonce2, job.ntime, 0, version);
        let network_target = Target::from_compact(CompactTarget::from_consensus(job.nbits)).ok();
        Work {
            job,
            extranonce1: extranonce1.to_vec(),
            extranonce2: extranonce2.to_vec(),
            version,
            version_mask,
            share_target,
            network_target,
            header,
        }
    }

    /// The 80-byte header with `nonce`.
    pub fn header(&self, nonce: u32) -> [u8; 80] {
        let mut h = self.header;
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// The backend's job: this header, searched against the share target.
    pub fn backend_job(&self) -> crate::hash::Job {
        crate::hash::Job::new(&self.header, &self.share_target)
    }

    /// The `mining.submit` for `nonce`: worker, job id, extranonce2, ntime, nonce, and the
    /// rolled version bits (`version & mask`, BIP 310) when rolling.
    pub fn submit(&self, user: &str, nonce: u32) -> Submit {
        Submit {
            worker: user.to_string(),
            job_id: self.job.id.clone(),
            extranonce2: self.extranonce2.clone(),
            ntime: self.job.ntime,
            nonce,
            version_bits: (self.version_mask != 0).then_some(self.version & self.version_mask),
        }
    }

    /// [`Work::submit`]'s params as sent.
    pub fn submit_params(&self, user: &str, nonce: u32) -> Value {
        self.submit(user, nonce).params()
    }
}

/// Extranonce2 number `counter` in `size` bytes, little-endian (bytes past 8 are zero; a
/// counter too large for `size` bytes wraps).
pub fn extranonce2(counter: u64, size: usize) -> Vec<u8> {
    let le = counter.to_le_bytes();
    (0..size).map(|i| le.get(i).copied().unwrap_or(0)).collect()
}

/// `base` with the low bits of `roll` spread over the set bits of `mask` (bit i of `roll` goes
/// to the i-th set bit of `mask`, counting from the least significant).
pub fn roll_version(base: u32, mask: u32, roll: u32) -> u32 {
    let mut out = base & !mask;
    let mut m = mask;
    let mut i = 0;
    while m != 0 {
        let bit = m & m.wrapping_neg();
        if roll >> i & 1 == 1 {
            out |= bit;
        }
        m &= m - 1;
        i += 1;
    }
    out
}

/// A message from the pool, as the reader thread passes it on.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// `mining.notify`: the job, or why it does not decode.
    Notify(Result<Job, StratumError>),
    /// `mining.set_difficulty`, `mining.set_extranonce`, `mining.set_version_mask` or
    /// `client.reconnect`, decoded.
    Pool(Notification),
    /// One of those whose params do not decode.
    Ignored(BadCall),
    Note(String),
    Reply {
        id: u64,
        response: Response,
    },
    Closed(String),
}

/// One TCP connection to a pool and its reader thread.
struct Conn {
    stream: TcpStream,
    writer: Arc<Mutex<TcpStream>>,
    rx: Receiver<Incoming>,
    /// Raised by the reader on a clean job, a new difficulty, extranonce or mask, a reconnect
    /// request and a closed connection: the backend's cancel flag.
    abort: Arc<AtomicBool>,
    next_id: u64,
    reader: Option<JoinHandle<()>>,
    last_message: Arc<Mutex<Instant>>,
}

fn connect(host: &str, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{host} resolves to no address"),
    );
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn write_line(writer: &Mutex<TcpStream>, line: &str) -> std::io::Result<()> {
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    w.write_all(line.as_bytes())?;
    w.flush()
}

impl Conn {
    fn open(host: &str, port: u16) -> std::io::Result<Conn> {
        let stream = connect(host, port, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let writer = Arc::new(Mutex::new(stream.try_clone()?));
        let read_half = stream.try_clone()?;
        let (tx, rx) = mpsc::channel();
        let abort = Arc::new(AtomicBool::new(false));
        let last_message = Arc::new(Mutex::new(Instant::now()));
        let reader = {
            let (writer, abort, last) = (writer.clone(), abort.clone(), last_message.clone());
            std::thread::Builder::new()
                .name("stratum-reader".into())
                .spawn(move || read_loop(read_half, &writer, &tx, &abort, &last))?
        };
        Ok(Conn {
            stream,
            writer,
            rx,
            abort,
            next_id: 1,
            reader: Some(reader),
            last_message,
        })
    }

    /// Sends the request `make` builds for the next id; that id.
    fn send(&mut self, make: impl FnOnce(Value) -> Request) -> std::io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        write_line(&self.writer, &make(Value::from(id)).to_line())?;
        Ok(id)
    }

    fn idle(&self) -> Duration {
        self.last_message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn read_loop(
    stream: TcpStream,
    writer: &Mutex<TcpStream>,
    tx: &Sender<Incoming>,
    abort: &AtomicBool,
    last: &Mutex<Instant>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let why = loop {
        let room = (MAX_LINE + 1).saturating_sub(line.len()) as u64;
        match (&mut reader).take(room).read_until(b'\n', &mut line) {
            Ok(0) => break "the pool closed the connection".to_string(),
            Ok(_) if line.last() != Some(&b'\n') => {
                if line.len() > MAX_LINE {
                    break format!("the pool sent a line over {MAX_LINE} bytes");
                }
            }
            Ok(_) => {
                *last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                let routed = route_line(&line);
                line.clear();
                if !deliver(routed, writer, tx, abort) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break format!("reading from the pool failed: {e}"),
        }
    };
    let _ = tx.send(Incoming::Closed(why));
    abort.store(true, Ordering::SeqCst);
}

/// What the client does with one line from the pool: pass a message on to the mining side
/// (`cancels`: and raise the abort flag), answer the pool at once, or nothing.
#[derive(Debug)]
pub(crate) enum Routed {
    Pass(Incoming, bool),
    Answer(Value),
    Ignore,
}

/// Decodes one line from the pool (its bytes as read, newline included) into what the client
/// does with it: the whole of the client's parsing of pool input before the session's handling
/// (through the protocol's [`PoolLine`] and [`Notification`]), kept free of I/O so it can be
/// fuzzed (`crate::fuzzing`).
pub(crate) fn route_line(line: &[u8]) -> Routed {
    match PoolLine::parse(line) {
        PoolLine::Blank => Routed::Ignore,
        PoolLine::NotJson(shown) => Routed::Pass(
            Incoming::Note(format!("the pool sent a line that is not JSON: {shown}")),
            false,
        ),
        PoolLine::Reply(response) => match response.id.as_u64() {
            Some(id) => Routed::Pass(Incoming::Reply { id, response }, false),
            None => Routed::Ignore,
        },
        PoolLine::Call { id, method, params } => route_call(&id, &method, &params),
    }
}

/// Routes one method call from the pool (see [`route_line`]).
fn route_call(id: &Value, method: &str, params: &Value) -> Routed {
    let Some(decoded) = Notification::decode(method, params) else {
        if id.is_null() {
            return Routed::Ignore;
        }
        let unknown = format!("unknown method {method}");
        return Routed::Answer(Response::error(id, ErrorCode::Other, &unknown).to_value());
    };
    let (incoming, cancels) = match decoded {
        Err(bad) if bad.method == "mining.notify" => {
            let clean = bad.params.get(8).and_then(Value::as_bool).unwrap_or(false);
            (Incoming::Notify(Err(bad.why)), clean)
        }
        Err(bad) => (Incoming::Ignored(bad), true),
        Ok(Notification::Notify(job)) => {
            let clean = job.clean;
            (Incoming::Notify(Ok(job)), clean)
        }
        Ok(Notification::Ping) => {
            return Routed::Answer(Response::ok(id, Value::from("pong")).to_value());
        }
        Ok(Notification::GetVersion) => {
            return Routed::Answer(Response::ok(id, Value::from(USER_AGENT)).to_value());
        }
        Ok(Notification::ShowMessage(text)) => (
            Incoming::Note(format!("message from the pool: {text}")),
            false,
        ),
        Ok(other) => (Incoming::Pool(other), true),
    };
    Routed::Pass(incoming, cancels)
}

/// Acts on a routed line (answering pings and version queries here); false once the mining
/// side is gone.
fn deliver(
    routed: Routed,
    writer: &Mutex<TcpStream>,
    tx: &Sender<Incoming>,
    abort: &AtomicBool,
) -> bool {
    let (incoming, cancels) = match routed {
        Routed::Pass(incoming, cancels) => (incoming, cancels),
        Routed::Answer(reply) => {
            let _ = write_line(writer, &crate::stratum::message::line(reply));
            return true;
        }
        Routed::Ignore => return true,
    };
    // The message first, then the flag: whoever sees the flag finds the message queued. A job
    // message is queued holding the writer, which a submit holds from its staleness check to
    // its write: whatever this side writes after this (a pong) comes after any submit that did
    // not see the message.
    let _writer = (!matches!(incoming, Incoming::Reply { .. }))
        .then(|| writer.lock().unwrap_or_else(|e| e.into_inner()));
    if tx.send(incoming).is_err() {
        return false;
    }
    if cancels {
        abort.store(true, Ordering::SeqCst);
    }
    true
}

/// Whether a pool answers `mining.subscribe` within a few seconds.
fn probe(host: &str, port: u16) -> bool {
    let Ok(mut s) = connect(host, port, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
    let subscribe = Request::Subscribe {
        id: Value::from(1),
        user_agent: Some(USER_AGENT.into()),
        session: None,
    };
    if s.write_all(subscribe.to_line().as_bytes()).is_err() {
        return false;
    }
    let mut reader = BufReader::new(s.take(64 * 1024));
    for _ in 0..4 {
        let mut l = String::new();
        match reader.read_line(&mut l) {
            Ok(n) if n > 0 => match PoolLine::parse(l.as_bytes()) {
                PoolLine::Reply(r) if r.id.as_u64() == Some(1) => return !r.result.is_null(),
                PoolLine::Call { id, .. } if id.as_u64() == Some(1) => return false,
                _ => {}
            },
            _ => return false,
        }
    }
    false
}

/// How a connection's mining ended.
enum End {
    /// `--blocks`/`--shares` reached.
    Done,
    Cancelled,
    /// Lost: the reason.
    Lost(String),
    /// An earlier pool answers again.
    Failback(usize),
    /// The pool asked to reconnect (to this host and port, after this wait).
    Reconnect(String, u16, Duration),
}

struct Pending {
    event: ShareEvent,
}

/// The callbacks a run reports through.
struct Hooks<'a> {
    share: &'a mut dyn FnMut(&ShareEvent),
    event: &'a mut dyn FnMut(&str),
}

/// Mines for the pools in `options` until `--blocks`/`--shares` are reached or `cancel` is
/// raised. Calls `on_share` for every share found (with its fate) and `on_event` for connection
/// news. Returns the counts per pool, in the order given.
pub fn run(
    options: &PoolOptions,
    backend: &dyn Backend,
    cancel: &AtomicBool,
    progress: &AtomicU64,
    mut on_share: impl FnMut(&ShareEvent),
    mut on_event: impl FnMut(&str),
) -> Result<Vec<PoolStats>, PoolError> {
    if options.pools.is_empty() {
        return Err(PoolError::NoPool);
    }
    let mut hooks = Hooks {
        share: &mut on_share,
        event: &mut on_event,
    };
    let mut stats: Vec<PoolStats> = options
        .pools
        .iter()
        .map(|p| PoolStats {
            url: p.url.clone(),
            difficulty: 1.0,
            ..PoolStats::default()
        })
        .collect();
    let n = options.pools.len();
    let mut index = 0usize;
    let mut failed_in_row = 0usize;
    let mut backoff = Duration::from_secs(1);
    let mut redirect: Option<(usize, String, u16)> = None;
    let mut sessions: Vec<Option<String>> = vec![None; n];
    // Pools that dropped or ignored `mining.configure`: connected to without it from then on.
    let mut no_configure = vec![false; n];
    let mut slice = 4096u64;
    while !cancel.load(Ordering::SeqCst) && !done(options, &stats) {
        let pool = &options.pools[index];
        let (host, port) = match &redirect {
            Some((i, h, p)) if *i == index => (h.clone(), *p),
            _ => (pool.host.clone(), pool.port),
        };
        redirect = None;
        let rolling = options.version_rolling && !no_configure[index];
        let opened = Session::open(
            options,
            rolling,
            index,
            &host,
            port,
            sessions[index].clone(),
        );
        let mut session = match opened {
            Ok(s) => s,
            Err(OpenError::Configure(why)) => {
                stats[index].failures += 1;
                no_configure[index] = true;
                (hooks.event)(&format!(
                    "pool {} ({host}:{port}): {why} after mining.configure (BIP 310 version \
                     rolling), which some pools do not take before mining.subscribe; \
                     reconnecting without mining.configure (no version rolling; \
                     --no-version-rolling does this from the start)",
                    pool.url
                ));
                continue;
            }
            Err(OpenError::Other(why)) => {
                stats[index].failures += 1;
                failed_in_row += 1;
                let next = (index + 1) % n;
                if failed_in_row >= n {
                    (hooks.event)(&format!(
                        "pool {} ({host}:{port}): {why}; retrying in {} s",
                        pool.url,
                        backoff.as_secs()
                    ));
                    sleep_unless(cancel, backoff);
                    backoff = (backoff * 2).min(options.max_backoff);
                    failed_in_row = 0;
                    // A round that failed everywhere starts again at the first pool.
                    index = 0;
                } else {
                    (hooks.event)(&format!(
                        "pool {} ({host}:{port}): {why}; trying {}",
                        pool.url, options.pools[next].url
                    ));
                    index = next;
                }
                continue;
            }
        };
        failed_in_row = 0;
        stats[index].connects += 1;
        stats[index].version_mask = session.mask;
        sessions[index] = session.session_id.clone();
        (hooks.event)(&format!(
            "connected to pool {} ({host}:{port}) as {}: extranonce1 {}, extranonce2 {} bytes, {}",
            pool.url,
            options.user,
            hex::encode(&session.en1),
            session.en2_size,
            if session.mask != 0 {
                format!("version rolling mask {:08x}", session.mask)
            } else {
                "no version rolling".into()
            }
        ));
        let started = Instant::now();
        let end = session.mine(
            options, backend, cancel, progress, &mut stats, &mut hooks, &mut slice,
        );
        stats[index].seconds += started.elapsed().as_secs_f64();
        if started.elapsed() >= Duration::from_secs(10) {
            backoff = Duration::from_secs(1);
        }
        session.lose_pending(&mut stats[index], &mut hooks);
        drop(session);
        match end? {
            End::Done | End::Cancelled => break,
            End::Lost(why) => {
                stats[index].failures += 1;
                // A pool that drops miners soon after the handshake is not hammered: short
                // sessions back off like failed connections.
                let short = started.elapsed() < Duration::from_secs(10);
                let next = (index + 1) % n;
                (hooks.event)(&format!(
                    "lost pool {}: {why}; {}",
                    pool.url,
                    if n > 1 {
                        format!("switching to {}", options.pools[next].url)
                    } else {
                        "reconnecting".into()
                    }
                ));
                if short {
                    sleep_unless(cancel, backoff);
                    backoff = (backoff * 2).min(options.max_backoff);
                }
                index = next;
            }
            End::Failback(to) => {
                (hooks.event)(&format!(
                    "pool {} answers again; switching back from {}",
                    options.pools[to].url, pool.url
                ));
                index = to;
            }
            End::Reconnect(h, p, wait) => {
                (hooks.event)(&format!(
                    "pool {} asked to reconnect to {h}:{p} in {} s",
                    pool.url,
                    wait.as_secs()
                ));
                sleep_unless(cancel, wait);
                redirect = Some((index, h, p));
            }
        }
    }
    Ok(stats)
}

fn done(options: &PoolOptions, stats: &[PoolStats]) -> bool {
    let blocks: u64 = stats.iter().map(|s| s.blocks).sum();
    let shares: u64 = stats.iter().map(|s| s.accepted).sum();
    options.blocks.is_some_and(|n| blocks >= n) || options.shares.is_some_and(|n| shares >= n)
}

/// A connected, subscribed and authorized pool.
struct Session {
    conn: Conn,
    index: usize,
    url: String,
    user: String,
    host: String,
    port: u16,
    en1: Vec<u8>,
    en2_size: usize,
    difficulty: f64,
    share_target: Target,
    /// The version-rolling mask agreed (0: none).
    mask: u32,
    configure_id: Option<u64>,
    session_id: Option<String>,
    /// Jobs valid for submits (since the last clean job), oldest first.
    jobs: VecDeque<Job>,
    /// New work is due (new job, difficulty, extranonce, mask).
    dirty: bool,
    en2_counter: u64,
    pending: HashMap<u64, Pending>,
    /// Queued during the handshake.
    early: Vec<Incoming>,
    /// A block was found on this job: wait for the next one (until the instant).
    paused: Option<(String, Instant)>,
}

/// Why a handshake failed.
enum OpenError {
    /// The connection closed, or `mining.subscribe` went unanswered for [`CONFIGURE_TIMEOUT`],
    /// while `mining.configure` was unanswered: try again without it.
    Configure(String),
    Other(String),
}

impl From<String> for OpenError {
    fn from(why: String) -> Self {
        OpenError::Other(why)
    }
}

impl From<&str> for OpenError {
    fn from(why: &str) -> Self {
        OpenError::Other(why.to_string())
    }
}

impl Session {
    /// Connects, subscribes and authorizes; offers `mining.configure` first when `rolling`.
    fn open(
        options: &PoolOptions,
        rolling: bool,
        index: usize,
        host: &str,
        port: u16,
        session_id: Option<String>,
    ) -> Result<Session, OpenError> {
        let mut conn = Conn::open(host, port).map_err(|e| format!("cannot connect: {e}"))?;
        let io = |e: std::io::Error| format!("cannot write to the pool: {e}");
        let configure_id = if rolling {
            Some(
                conn.send(|id| Request::Configure {
                    id,
                    extensions: vec![Extension::VersionRolling {
                        mask: Some(VERSION_ROLLING_MASK),
                        min_bit_count: Some(2),
                    }],
                })
                .map_err(io)?,
            )
        } else {
            None
        };
        let sub_id = conn
            .send(|id| Request::Subscribe {
                id,
                user_agent: Some(USER_AGENT.into()),
                session: session_id.clone(),
            })
            .map_err(io)?;
        let auth_id = conn
            .send(|id| Request::Authorize {
                id,
                user: options.user.clone(),
                password: options.password.clone(),
            })
            .map_err(io)?;
        let mut s = Session {
            conn,
            index,
            url: options.pools[index].url.clone(),
            user: options.user.clone(),
            host: host.to_string(),
            port,
            en1: Vec::new(),
            en2_size: 4,
            difficulty: 1.0,
            share_target: share_target(1.0).ok_or("difficulty 1 has no target")?,
            mask: 0,
            configure_id,
            session_id: None,
            jobs: VecDeque::new(),
            dirty: true,
            en2_counter: 0,
            pending: HashMap::new(),
            early: Vec::new(),
            paused: None,
        };
        let started = Instant::now();
        let deadline = started + HANDSHAKE_TIMEOUT;
        let (mut subscribed, mut authorized) = (false, false);
        while !(subscribed && authorized) {
            // Nothing answered yet while the configure is pending: blame it.
            let blame_configure = !subscribed && s.configure_id.is_some();
            let until = if blame_configure {
                deadline.min(started + CONFIGURE_TIMEOUT)
            } else {
                deadline
            };
            let left = until.saturating_duration_since(Instant::now());
            let m = match s.conn.rx.recv_timeout(left) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) if blame_configure => {
                    return Err(OpenError::Configure(format!(
                        "no answer to mining.subscribe within {} s",
                        CONFIGURE_TIMEOUT.as_secs()
                    )))
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(OpenError::Other(format!(
                        "no answer to mining.{} within {} s",
                        if subscribed { "authorize" } else { "subscribe" },
                        HANDSHAKE_TIMEOUT.as_secs()
                    )))
                }
                Err(RecvTimeoutError::Disconnected) if blame_configure => {
                    return Err(OpenError::Configure("connection lost".into()))
                }
                Err(RecvTimeoutError::Disconnected) => return Err("connection lost".into()),
            };
            match m {
                Incoming::Reply { id, response } if id == sub_id => {
                    if response.error.is_some() || response.result.is_null() {
                        return Err(OpenError::Other(format!(
                            "mining.subscribe refused: {}",
                            response.error_text()
                        )));
                    }
                    let subscribed_as =
                        Subscribed::from_value(&response.result).map_err(|e| e.to_string())?;
                    s.en1 = subscribed_as.extranonce1;
                    s.en2_size = subscribed_as.extranonce2_size;
                    s.session_id = subscribed_as.session;
                    subscribed = true;
                }
                Incoming::Reply { id, response } if id == auth_id => {
                    if response.result.as_bool() != Some(true) {
                        return Err(format!(
                            "the pool refused worker '{}' (mining.authorize answered {}{}); check --user and --pass",
                            options.user,
                            response.result,
                            match &response.error { None => String::new(), Some(e) => format!(", error {}", e.text()) }
                        ).into());
                    }
                    authorized = true;
                }
                Incoming::Reply { id, response } if Some(id) == s.configure_id => {
                    s.configure_id = None;
                    s.mask = granted_mask(&response);
                }
                Incoming::Closed(why) if !subscribed && s.configure_id.is_some() => {
                    return Err(OpenError::Configure(why))
                }
                Incoming::Closed(why) => return Err(why.into()),
                other => s.early.push(other),
            }
        }
        // The answer, if any, is ignored: extranonce changes come as mining.set_extranonce.
        let _ = s.conn.send(|id| Request::ExtranonceSubscribe { id });
        Ok(s)
    }

    /// Handles one message; `Some` ends the session.
    fn handle(&mut self, m: Incoming, stats: &mut PoolStats, hooks: &mut Hooks<'_>) -> Option<End> {
        match m {
            Incoming::Notify(job) => match job {
                Ok(job) => {
                    if job.clean {
                        self.jobs.clear();
                    }
                    self.jobs.retain(|j| j.id != job.id);
                    self.jobs.push_back(job);
                    while self.jobs.len() > MAX_JOBS {
                        self.jobs.pop_front();
                    }
                    self.dirty = true;
                }
                Err(e) => (hooks.event)(&format!("pool {}: ignoring a job: {e}", self.url)),
            },
            Incoming::Pool(Notification::SetDifficulty(d)) => match share_target(d) {
                Some(t) => {
                    self.difficulty = d;
                    self.share_target = t;
                    stats.difficulty = d;
                    self.dirty = true;
                }
                None => (hooks.event)(&format!(
                    "pool {}: ignoring mining.set_difficulty {}: not a positive number",
                    self.url,
                    Notification::SetDifficulty(d).params()
                )),
            },
            Incoming::Pool(Notification::SetExtranonce {
                extranonce1,
                extranonce2_size,
            }) => {
                self.en1 = extranonce1;
                self.en2_size = extranonce2_size;
                self.dirty = true;
            }
            Incoming::Pool(Notification::SetVersionMask(m)) => {
                if self.mask != 0 || self.configure_id.is_some() {
                    self.mask = m & VERSION_ROLLING_MASK;
                    stats.version_mask = self.mask;
                    self.dirty = true;
                }
            }
            Incoming::Pool(Notification::Reconnect(r)) => {
                let (host, port, wait) = reconnect_to(&r, &self.host, self.port);
                return Some(End::Reconnect(host, port, wait));
            }
            // The reader passes no other notification on.
            Incoming::Pool(_) => {}
            Incoming::Ignored(bad) => match bad.method {
                "mining.set_difficulty" => (hooks.event)(&format!(
                    "pool {}: ignoring mining.set_difficulty {}: not a positive number",
                    self.url, bad.params
                )),
                "mining.set_extranonce" => (hooks.event)(&format!(
                    "pool {}: ignoring mining.set_extranonce {}",
                    self.url, bad.params
                )),
                _ => {}
            },
            Incoming::Note(text) => (hooks.event)(&format!("pool {}: {text}", self.url)),
            Incoming::Reply { id, response } => {
                if Some(id) == self.configure_id {
                    self.configure_id = None;
                    self.mask = granted_mask(&response);
                    stats.version_mask = self.mask;
                    self.dirty = true;
                } else if let Some(p) = self.pending.remove(&id) {
                    let mut event = p.event;
                    event.result = if response.is_true() {
                        stats.accepted += 1;
                        if event.block {
                            stats.blocks += 1;
                        }
                        ShareResult::Accepted
                    } else {
                        let reason = match &response.error {
                            None => format!("answered {}", response.result),
                            Some(e) => e.text(),
                        };
                        if response.error.as_ref().is_some_and(ReplyError::is_stale) {
                            stats.stale += 1;
                            ShareResult::Stale { sent: true, reason }
                        } else {
                            stats.rejected += 1;
                            ShareResult::Rejected(reason)
                        }
                    };
                    (hooks.share)(&event);
                }
            }
            Incoming::Closed(why) => return Some(End::Lost(why)),
        }
        None
    }

    /// Handles every message queued; `Some` ends the session.
    fn drain(&mut self, stats: &mut PoolStats, hooks: &mut Hooks<'_>) -> Option<End> {
        for m in std::mem::take(&mut self.early) {
            if let Some(end) = self.handle(m, stats, hooks) {
                return Some(end);
            }
        }
        while let Ok(m) = self.conn.rx.try_recv() {
            if let Some(end) = self.handle(m, stats, hooks) {
                return Some(end);
            }
        }
        None
    }

    /// Work for the newest job with the next extranonce2.
    fn next_work(&mut self) -> Option<Work> {
        let job = self.jobs.back()?.clone();
        let en2 = extranonce2(self.en2_counter, self.en2_size);
        self.en2_counter = self.en2_counter.wrapping_add(1);
        let version = if self.mask != 0 {
            roll_version(job.version, self.mask, 0)
        } else {
            job.version
        };
        Some(Work::new(
            job,
            &self.en1,
            &en2,
            version,
            self.mask,
            self.share_target,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn mine(
        &mut self,
        options: &PoolOptions,
        backend: &dyn Backend,
        cancel: &AtomicBool,
        progress: &AtomicU64,
        all: &mut [PoolStats],
        hooks: &mut Hooks<'_>,
        slice: &mut u64,
    ) -> Result<End, PoolError> {
        let index = self.index;
        let mut work: Option<Work> = None;
        let mut backend_job = None;
        let mut roll = 0u32;
        let mut next = 0u64;
        let failback = Arc::new(AtomicUsize::new(usize::MAX));
        let probing = Arc::new(AtomicBool::new(false));
        let mut last_probe = Instant::now();
        loop {
            // Lower the flag first: a message that raises it after this is drained below or
            // raises it again.
            self.conn.abort.store(false, Ordering::SeqCst);
            if let Some(end) = self.drain(&mut all[index], hooks) {
                return Ok(end);
            }
            if cancel.load(Ordering::SeqCst) {
                // Shares in flight get a moment for their answers.
                self.finish(&mut all[index], hooks, CANCEL_DRAIN_TIMEOUT);
                return Ok(End::Cancelled);
            }
            if done(options, all) {
                self.finish(&mut all[index], hooks, DRAIN_TIMEOUT);
                return Ok(End::Done);
            }
            let to = failback.load(Ordering::SeqCst);
            if to < index {
                return Ok(End::Failback(to));
            }
            if index > 0
                && last_probe.elapsed() >= options.failback_interval
                && !probing.swap(true, Ordering::SeqCst)
            {
                last_probe = Instant::now();
                let earlier: Vec<(usize, String, u16)> = options.pools[..index]
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i, p.host.clone(), p.port))
                    .collect();
                let (failback, probing) = (failback.clone(), probing.clone());
                std::thread::spawn(move || {
                    for (i, host, port) in earlier {
                        if probe(&host, port) {
                            failback.store(i, Ordering::SeqCst);
                            break;
                        }
                    }
                    probing.store(false, Ordering::SeqCst);
                });
            }
            if self.conn.idle() > IDLE_TIMEOUT {
                return Ok(End::Lost(format!(
                    "nothing from the pool in {} s",
                    IDLE_TIMEOUT.as_secs()
                )));
            }
            if let Some((job, until)) = &self.paused {
                let newer = self.jobs.back().is_some_and(|j| &j.id != job);
                if !newer && Instant::now() < *until {
                    if let Some(end) =
                        self.wait_message(&mut all[index], hooks, Duration::from_millis(50))?
                    {
                        return Ok(end);
                    }
                    continue;
                }
                self.paused = None;
            }
            if self.dirty || work.is_none() {
                self.dirty = false;
                roll = 0;
                next = 0;
                work = self.next_work();
                backend_job = work.as_ref().map(Work::backend_job);
            }
            let (Some(w), Some(job)) = (&work, &backend_job) else {
                // No job yet.
                if let Some(end) =
                    self.wait_message(&mut all[index], hooks, Duration::from_millis(100))?
                {
                    return Ok(end);
                }
                continue;
            };
            let end = (next + *slice).min(NONCE_END);
            let t = Instant::now();
            let report = backend
                .scan(job, next..end, StopAt::FirstHit, &self.conn.abort, progress)
                .map_err(|e| PoolError::Backend(e.to_string()))?;
            all[index].hashes += report.hashes;
            if let Some(&nonce) = report.hits.first() {
                let w = w.clone();
                if let Some(end) = self.found(&w, nonce, &mut all[index], hooks) {
                    return Ok(end);
                }
                next = u64::from(nonce) + 1;
            } else {
                if !report.cancelled {
                    *slice = next_slice(*slice, report.hashes, t.elapsed(), options.scan_slice);
                }
                next = end;
            }
            if next >= NONCE_END {
                // This work is exhausted: roll the version inside the mask, else a new
                // extranonce2.
                let room = if self.mask == 0 {
                    0
                } else {
                    1u64 << self.mask.count_ones().min(32)
                };
                roll += 1;
                next = 0;
                if u64::from(roll) < room {
                    if let Some(w) = &mut work {
                        let version = roll_version(w.job.version, self.mask, roll);
                        *w = Work::new(
                            w.job.clone(),
                            &w.extranonce1.clone(),
                            &w.extranonce2.clone(),
                            version,
                            self.mask,
                            w.share_target,
                        );
                        backend_job = Some(w.backend_job());
                    }
                } else {
                    self.dirty = true;
                }
            }
        }
    }

    /// Waits up to `d` for one message and handles it.
    fn wait_message(
        &mut self,
        stats: &mut PoolStats,
        hooks: &mut Hooks<'_>,
        d: Duration,
    ) -> Result<Option<End>, PoolError> {
        match self.conn.rx.recv_timeout(d) {
            Ok(m) => Ok(self.handle(m, stats, hooks)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Ok(Some(End::Lost("connection lost".into()))),
        }
    }

    /// A nonce the backend found for `w`: checked, then submitted unless its job was replaced.
    fn found(
        &mut self,
        w: &Work,
        nonce: u32,
        stats: &mut PoolStats,
        hooks: &mut Hooks<'_>,
    ) -> Option<End> {
        let header = w.header(nonce);
        let hash = sha256d(&header);
        if !w.share_target.is_met_by(&hash) {
            (hooks.event)(&format!(
                "the backend reported nonce {nonce:08x}, which does not meet the share target; not sent"
            ));
            return None;
        }
        // A clean job that came in meanwhile makes this one stale: look first, holding the
        // writer until the submit is written (see `dispatch`).
        let writer = self.conn.writer.clone();
        let mut out = writer.lock().unwrap_or_else(|e| e.into_inner());
        let ending = self.drain(stats, hooks);
        let block = w.network_target.is_some_and(|t| t.is_met_by(&hash));
        let mut event = ShareEvent {
            pool: self.url.clone(),
            job: w.job.id.clone(),
            extranonce2: hex::encode(&w.extranonce2),
            ntime: u32_hex(w.job.ntime),
            nonce: u32_hex(nonce),
            version: u32_hex(w.version),
            hash: display_hash(&hash),
            share_difficulty: self.difficulty,
            hash_difficulty: difficulty_of(&hash),
            block,
            result: ShareResult::Accepted,
        };
        let valid = self
            .jobs
            .iter()
            .any(|j| j.id == w.job.id && j.prev_hash == w.job.prev_hash);
        if !valid || ending.is_some() {
            stats.stale += 1;
            stats.stale_unsent += 1;
            event.result = ShareResult::Stale {
                sent: false,
                reason: if valid {
                    "found as the connection ended; not sent".into()
                } else {
                    "found after the pool replaced the job; not sent".into()
                },
            };
            (hooks.share)(&event);
            return ending;
        }
        let id = self.conn.next_id;
        self.conn.next_id += 1;
        let submit = Request::Submit {
            id: Value::from(id),
            submit: w.submit(&self.user, nonce),
        };
        let sent = out
            .write_all(submit.to_line().as_bytes())
            .and_then(|()| out.flush());
        drop(out);
        match sent {
            Ok(()) => {
                self.pending.insert(id, Pending { event });
            }
            Err(e) => {
                stats.rejected += 1;
                event.result = ShareResult::Rejected(format!("could not send: {e}"));
                (hooks.share)(&event);
            }
        }
        if block {
            self.paused = Some((w.job.id.clone(), Instant::now() + BLOCK_PAUSE));
        }
        None
    }

    /// Waits (bounded) for the answers to shares in flight.
    fn finish(&mut self, stats: &mut PoolStats, hooks: &mut Hooks<'_>, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.pending.is_empty() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conn.rx.recv_timeout(left) {
                Ok(m) => {
                    if self.handle(m, stats, hooks).is_some() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// Shares never answered count as rejected.
    fn lose_pending(&mut self, stats: &mut PoolStats, hooks: &mut Hooks<'_>) {
        let mut left: Vec<(u64, Pending)> = self.pending.drain().collect();
        left.sort_by_key(|(id, _)| *id);
        for (_, p) in left {
            let mut event = p.event;
            stats.rejected += 1;
            event.result = ShareResult::Rejected("no answer before the connection ended".into());
            (hooks.share)(&event);
        }
    }
}

/// Where `client.reconnect`'s params send the client (missing parts: the current host and
/// port) and how long to wait first (at most a minute).
pub(crate) fn reconnect_target(p: &Value, host: &str, port: u16) -> (String, u16, Duration) {
    reconnect_to(&crate::stratum::Reconnect::from_params(p), host, port)
}

/// [`reconnect_target`] for decoded params.
fn reconnect_to(r: &crate::stratum::Reconnect, host: &str, port: u16) -> (String, u16, Duration) {
    (
        r.host.clone().unwrap_or_else(|| host.to_string()),
        r.port.unwrap_or(port),
        Duration::from_secs(r.wait.unwrap_or(0).min(60)),
    )
}

/// The version-rolling mask a `mining.configure` answer grants (inside ours; 0: none).
pub(crate) fn rolling_mask(result: &Value, error: &Value) -> u32 {
    if !error.is_null() {
        return 0;
    }
    Configured::version_rolling(result).unwrap_or(0) & VERSION_ROLLING_MASK
}

/// [`rolling_mask`] of a reply.
fn granted_mask(r: &Response) -> u32 {
    rolling_mask(
        &r.result,
        r.error.as_ref().map_or(&Value::Null, ReplyError::as_value),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stratum::{error_text, is_stale_error, notify_subscription};
    use serde_json::json;

    /// The reader's routing, now a pure function: pings answered at once, jobs passed on (a
    /// clean one cancelling), replies passed on, blank lines and unknown notifications ignored,
    /// non-JSON lines reported.
    #[test]
    fn pool_lines_route_as_the_reader_acts_on_them() {
        match route_line(b"{\"id\":7,\"method\":\"mining.ping\",\"params\":[]}\n") {
            Routed::Answer(reply) => assert_eq!(reply["result"], "pong"),
            other => panic!("ping routed as {other:?}"),
        }
        let notify = br#"{"id":null,"method":"mining.notify","params":["j",1,2,3,4,5,6,7,true]}"#;
        assert!(matches!(
            route_line(notify),
            Routed::Pass(Incoming::Notify(_), true)
        ));
        assert!(matches!(
            route_line(b"{\"id\":3,\"result\":true,\"error\":null}\r\n"),
            Routed::Pass(Incoming::Reply { id: 3, .. }, false)
        ));
        assert!(matches!(route_line(b"  \r\n"), Routed::Ignore));
        assert!(matches!(
            route_line(br#"{"method":"x.unknown","params":[]}"#),
            Routed::Ignore
        ));
        assert!(matches!(
            route_line(b"not json\n"),
            Routed::Pass(Incoming::Note(n), false) if n.contains("not JSON")
        ));
        let (host, port, wait) =
            reconnect_target(&json!(["", "70000", "600"]), "pool.example", 3333);
        assert_eq!(
            (host.as_str(), port, wait.as_secs()),
            ("pool.example", 3333, 60)
        );
    }

    #[test]
    fn pool_errors_read_as_stale_or_not() {
        assert!(is_stale_error(&json!([21, "Job not found", null])));
        assert!(is_stale_error(&json!([20, "Stale share", null])));
        assert!(is_stale_error(
            &json!({"code": 21, "message": "job not found"})
        ));
        assert!(!is_stale_error(&json!([23, "Low difficulty share", null])));
        assert!(!is_stale_error(&json!([22, "Duplicate share", null])));
        assert!(!is_stale_error(&Value::Null));
        assert_eq!(
            error_text(&json!([23, "Low difficulty share", null])),
            "23 Low difficulty share"
        );
        assert_eq!(error_text(&Value::Null), "no reason given");
    }

    #[test]
    fn the_notify_subscription_id_is_found_in_either_shape() {
        let nested = json!([["mining.set_difficulty", "a"], ["mining.notify", "b"]]);
        assert_eq!(notify_subscription(&nested).as_deref(), Some("b"));
        let flat = json!(["mining.notify", "c"]);
        assert_eq!(notify_subscription(&flat).as_deref(), Some("c"));
        assert_eq!(notify_subscription(&json!(null)), None);
    }

    #[test]
    fn a_granted_mask_is_cut_to_the_one_asked_for() {
        let ok = json!({"version-rolling": true, "version-rolling.mask": "ffffffff"});
        assert_eq!(rolling_mask(&ok, &Value::Null), VERSION_ROLLING_MASK);
        let some = json!({"version-rolling": true, "version-rolling.mask": "00006000"});
        assert_eq!(rolling_mask(&some, &Value::Null), 0x6000);
        let no = json!({"version-rolling": false});
        assert_eq!(rolling_mask(&no, &Value::Null), 0);
        assert_eq!(rolling_mask(&Value::Null, &json!([20, "unknown", null])), 0);
    }
}
