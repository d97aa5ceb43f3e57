//! One miner's session (one tokio task per connection): reading its lines, answering its
//! requests (subscribe, authorize, configure, submit, ...), sending it jobs and difficulties,
//! and vardiff on its shares; plus the extranonce1 values of live and closed sessions.

use super::jobs::JobEntry;
use super::vardiff::{Step, Vardiff};
use super::{submit_block, Auth, BlockOutcome, Pool};
use crate::pow::Target;
use crate::stratum::request::{self, resumed_extranonce1};
use crate::stratum::share::{check, effective_difficulty, rolled_version, Submission};
use crate::stratum::{
    parse_request, Configured, ErrorCode, Extension, Granted, Notification, NotifyJob, Reconnect,
    Request, RequestError, Response, Subscribed, EXTRANONCE2_SIZE, VERSION_ROLLING_MASK,
};
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Jobs kept per connection for late shares (with the difficulty each was sent under); older
/// job ids answer 21 "Job not found".
const KEEP_JOBS: usize = 16;
/// Workers one connection may authorize.
const MAX_CONN_WORKERS: usize = 64;
/// Time a write to a miner may take before the miner is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Free slots of the write queue kept before the next request is read: a request's handling
/// queues a reply and perhaps a difficulty and a job.
pub(super) const REPLY_HEADROOM: usize = 16;
/// Failed `mining.authorize` calls before a connection is closed.
const MAX_AUTH_FAILURES: u32 = 5;
/// Delay before a refused `mining.authorize` is answered.
const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(250);
/// Closed sessions whose extranonce1 can still be restored by a resubscribe.
const KEEP_SESSIONS: usize = 100_000;

/// Extranonce1 values: unique among live connections; a closed session's can be restored.
pub(super) struct Sessions {
    live: HashSet<u32>,
    closed: HashSet<u32>,
    order: VecDeque<u32>,
    next: u32,
}

impl Sessions {
    /// No sessions yet; new extranonce1 values count up from after `seed`.
    pub(super) fn new(seed: u32) -> Sessions {
        Sessions {
            live: HashSet::new(),
            closed: HashSet::new(),
            order: VecDeque::new(),
            next: seed,
        }
    }

    pub(super) fn open(&mut self, wanted: Option<u32>) -> u32 {
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

/// Vardiff's window of one connection: shares accepted since it started.
struct Window {
    since: Instant,
    shares: u32,
}

impl Window {
    /// A window starting now.
    fn new() -> Window {
        Window {
            since: Instant::now(),
            shares: 0,
        }
    }
}

/// One miner's session: the server's side of a connection from a miner.
struct MinerConn {
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
    window: Window,
}

impl MinerConn {
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
            let job = NotifyJob {
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

pub(super) async fn connection(pool: &Arc<Pool>, stream: tokio::net::TcpStream, peer: SocketAddr) {
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
    let mut conn = MinerConn {
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
        window: Window {
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

/// Vardiff after a share (`after_share`) or on the timer: [`Vardiff::step`] on this
/// connection's window, then the change, if any.
fn retarget(pool: &Pool, conn: &mut MinerConn, after_share: bool) {
    if !conn.jobs_on {
        return;
    }
    let rule = Vardiff {
        interval: pool.share_interval.as_secs_f64(),
        floor: pool.floor(conn.min_asked),
        ceiling: pool.max_difficulty,
    };
    // The rate was measured at the difficulty applied (clamped to the network's).
    let applied = conn
        .sent_difficulty
        .unwrap_or(conn.difficulty)
        .min(conn.difficulty);
    let elapsed = conn.window.since.elapsed().as_secs_f64();
    match rule.step(
        conn.difficulty,
        applied,
        conn.window.shares,
        elapsed,
        after_share,
    ) {
        Step::Wait => {}
        Step::Restart => conn.window = Window::new(),
        Step::Change(d) => {
            conn.window = Window::new();
            conn.change_difficulty(pool, d);
        }
    }
}

async fn handle_line(pool: &Arc<Pool>, conn: &mut MinerConn, line: &[u8]) {
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
            let d = difficulty.clamp(pool.floor(conn.min_asked), pool.max_difficulty);
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

fn subscribe(pool: &Pool, conn: &mut MinerConn, id: &Value, wanted: Option<u32>) {
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

async fn authorize(pool: &Pool, conn: &mut MinerConn, id: &Value, user: &str, password: &str) {
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
fn start_jobs(pool: &Pool, conn: &mut MinerConn) {
    if conn.jobs_on || conn.extranonce1.is_none() || conn.workers.is_empty() {
        return;
    }
    conn.jobs_on = true;
    conn.window = Window::new();
    let entry = pool.current.borrow().clone();
    match entry {
        Some(entry) => conn.notify(&entry, true),
        None => {
            conn.send_difficulty(None);
        }
    }
}

fn configure(pool: &Pool, conn: &mut MinerConn, id: &Value, extensions: &[Extension]) {
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
fn submit_malformed(
    pool: &Pool,
    conn: &mut MinerConn,
    id: &Value,
    worker: Option<&str>,
    message: &str,
) {
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

async fn submit(pool: &Arc<Pool>, conn: &mut MinerConn, id: &Value, sub: &request::Submit) {
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
    let reject = |conn: &mut MinerConn, code: ErrorCode, message: &str| {
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
    conn.window.shares += 1;
    conn.reply(id, Value::Bool(true));
    retarget(pool, conn, true);
}
