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

mod connection;
mod session;
mod url;

pub(crate) use self::connection::{route_line, Incoming, Routed};
pub(crate) use self::session::{reconnect_target, rolling_mask};
pub use self::url::{parse_pool_url, PoolUrl};

use self::session::{End, Hooks, OpenError, Session};
use super::{next_slice, sleep_unless};
use crate::backend::Backend;
use crate::pow::{CompactTarget, Target};
use crate::stratum::{NotifyJob, Submit};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the client calls itself in `mining.subscribe`.
pub(crate) const USER_AGENT: &str = concat!("miner/", env!("CARGO_PKG_VERSION"));

/// Why the client cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A pool URL no retry can make work.
    #[error("'{url}' cannot be a pool's address: {why}; give stratum+tcp://HOST:PORT, e.g. stratum+tcp://127.0.0.1:3333")]
    BadUrl {
        /// The URL as given (trimmed).
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The pool list is empty.
    #[error("no pool given: add --pool stratum+tcp://HOST:PORT")]
    NoPool,
    /// The mining backend failed; its message.
    #[error("backend failed: {0}")]
    Backend(String),
}

/// How a pool run goes and ends.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Pools in order of preference (failover).
    pub pools: Vec<PoolUrl>,
    /// `mining.authorize`'s user name, also the worker name of every `mining.submit`.
    pub user: String,
    /// `mining.authorize`'s password.
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
    /// The pool's URL as given.
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
    /// The pool accepted it.
    Accepted,
    /// Refused (or unanswered) for this reason.
    Rejected(String),
    /// For a replaced job: `sent` false when found after a clean job (never sent), true when
    /// the pool refused it as stale.
    Stale {
        /// Whether it was sent to the pool.
        sent: bool,
        /// The pool's refusal, or why it was not sent.
        reason: String,
    },
}

/// One share found, with its fate.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareEvent {
    /// The pool's URL as given.
    pub pool: String,
    /// The job id.
    pub job: String,
    /// The extranonce2, hex as submitted.
    pub extranonce2: String,
    /// The header's time, hex (big-endian) as submitted.
    pub ntime: String,
    /// The nonce, hex (big-endian) as submitted.
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
    /// What became of it.
    pub result: ShareResult,
}

/// What the client searches for shares: a pool's job with this connection's extranonce1, one
/// extranonce2 and one version; what it hashes and what it submits. (Not `crate::pow::Work`,
/// a chain's accumulated work.)
#[derive(Clone, Debug)]
pub struct ShareJob {
    /// The pool's job.
    pub(crate) job: NotifyJob,
    /// The connection's extranonce1, from `mining.subscribe` or `mining.set_extranonce`.
    pub(crate) extranonce1: Vec<u8>,
    /// This share job's extranonce2, of the size the pool set.
    pub(crate) extranonce2: Vec<u8>,
    /// The header's version (the job's, with rolled bits inside `version_mask`).
    pub(crate) version: u32,
    /// The pool's version-rolling mask; 0 when not rolling (5-parameter submits).
    pub(crate) version_mask: u32,
    /// The pool's share target, from its last `mining.set_difficulty`.
    pub(crate) share_target: Target,
    /// The job's nBits target (`None` if the nBits are invalid).
    pub network_target: Option<Target>,
    header: [u8; 80],
}

impl ShareJob {
    /// `job` with this connection's `extranonce1`, one `extranonce2` and the header version
    /// (`version`, rolled inside `version_mask`; mask 0: not rolling), searched against
    /// `share_target`.
    pub fn new(
        job: NotifyJob,
        extranonce1: &[u8],
        extranonce2: &[u8],
        version: u32,
        version_mask: u32,
        share_target: Target,
    ) -> ShareJob {
        let header = job.header(extranonce1, extranonce2, job.ntime, 0, version);
        let network_target = Target::from_compact(CompactTarget::from_consensus(job.nbits)).ok();
        ShareJob {
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
    pub(crate) fn submit(&self, user: &str, nonce: u32) -> Submit {
        Submit {
            worker: user.to_string(),
            job_id: self.job.id.clone(),
            extranonce2: self.extranonce2.clone(),
            ntime: self.job.ntime,
            nonce,
            version_bits: (self.version_mask != 0).then_some(self.version & self.version_mask),
        }
    }

    /// `ShareJob::submit`'s params as sent.
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

pub(super) fn done(options: &PoolOptions, stats: &[PoolStats]) -> bool {
    let blocks: u64 = stats.iter().map(|s| s.blocks).sum();
    let shares: u64 = stats.iter().map(|s| s.accepted).sum();
    options.blocks.is_some_and(|n| blocks >= n) || options.shares.is_some_and(|n| shares >= n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stratum::{error_text, is_stale_error, notify_subscription, VERSION_ROLLING_MASK};
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
