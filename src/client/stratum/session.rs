//! A connected, subscribed and authorized pool: the handshake, the handling of what the pool
//! sends, and the search with its shares.

use super::connection::{Failback, Incoming, PoolConn};
use super::{
    done, extranonce2, next_slice, roll_version, PoolError, PoolOptions, PoolStats, ShareEvent,
    ShareJob, ShareResult, USER_AGENT,
};
use crate::backend::{Backend, StopAt, NONCE_END};
use crate::hash::{display_hash, sha256d};
use crate::pow::Target;
use crate::stratum::{
    difficulty_of, share_target, u32_hex, Configured, Extension, Notification, NotifyJob,
    ReplyError, Request, Response, Subscribed, VERSION_ROLLING_MASK,
};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

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

/// How a connection's mining ended.
pub(super) enum End {
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

pub(super) struct Pending {
    event: ShareEvent,
}

/// The callbacks a run reports through.
pub(super) struct Hooks<'a> {
    pub(super) share: &'a mut dyn FnMut(&ShareEvent),
    pub(super) event: &'a mut dyn FnMut(&str),
}

/// A connected, subscribed and authorized pool.
pub(super) struct Session {
    pub(super) conn: PoolConn,
    pub(super) index: usize,
    pub(super) url: String,
    pub(super) user: String,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) en1: Vec<u8>,
    pub(super) en2_size: usize,
    pub(super) difficulty: f64,
    pub(super) share_target: Target,
    /// The version-rolling mask agreed (0: none).
    pub(super) mask: u32,
    pub(super) configure_id: Option<u64>,
    pub(super) session_id: Option<String>,
    /// Jobs valid for submits (since the last clean job), oldest first.
    pub(super) jobs: VecDeque<NotifyJob>,
    /// New work is due (new job, difficulty, extranonce, mask).
    pub(super) dirty: bool,
    pub(super) en2_counter: u64,
    pub(super) pending: HashMap<u64, Pending>,
    /// Queued during the handshake.
    pub(super) early: Vec<Incoming>,
    /// A block was found on this job: wait for the next one (until the instant).
    pub(super) paused: Option<(String, Instant)>,
}

/// Why a handshake failed.
pub(super) enum OpenError {
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
    pub(super) fn open(
        options: &PoolOptions,
        rolling: bool,
        index: usize,
        host: &str,
        port: u16,
        session_id: Option<String>,
    ) -> Result<Session, OpenError> {
        let mut conn = PoolConn::open(host, port).map_err(|e| format!("cannot connect: {e}"))?;
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

    /// A share job for the newest job with the next extranonce2.
    fn next_work(&mut self) -> Option<ShareJob> {
        let job = self.jobs.back()?.clone();
        let en2 = extranonce2(self.en2_counter, self.en2_size);
        self.en2_counter = self.en2_counter.wrapping_add(1);
        let version = if self.mask != 0 {
            roll_version(job.version, self.mask, 0)
        } else {
            job.version
        };
        Some(ShareJob::new(
            job,
            &self.en1,
            &en2,
            version,
            self.mask,
            self.share_target,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn mine(
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
        let mut work: Option<ShareJob> = None;
        let mut backend_job = None;
        let mut roll = 0u32;
        let mut next = 0u64;
        let mut failback = Failback::new();
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
            if let Some(to) = failback.poll(index, &options.pools, options.failback_interval) {
                return Ok(End::Failback(to));
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
                backend_job = work.as_ref().map(ShareJob::backend_job);
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
                        *w = ShareJob::new(
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
        w: &ShareJob,
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
    pub(super) fn lose_pending(&mut self, stats: &mut PoolStats, hooks: &mut Hooks<'_>) {
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
