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
//!
//! This is the server role; the protocol (messages, job and share encodings, the share check)
//! is [`crate::stratum`]. Here: the settings ([`Config`], [`Auth`]), what `getstratuminfo`
//! reports (`Stats`), the job store with the duplicate set (`jobs`), the pure vardiff rule
//! (`vardiff`), one connection (`session`), and in this file the pool every connection
//! shares and all that talks to the chain (`NodeState`): the listener, the job builder and the
//! block submission.

mod config;
mod jobs;
mod session;
mod stats;
pub(crate) mod vardiff;

pub use self::config::{Auth, AuthFileError, Config};
pub(crate) use self::stats::Stats;

use self::jobs::{JobEntry, SeenShares};
use self::session::{connection, Sessions, REPLY_HEADROOM};
use crate::node::state::{NodeState, Source};
use crate::stratum::share::{self, Submission};
use crate::stratum::NotifyJob;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

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

    /// The lowest difficulty a connection may get: the floor, or the minimum the miner asked
    /// for (`mining.configure`), never above the ceiling.
    fn floor(&self, min_asked: f64) -> f64 {
        self.min_difficulty.max(min_asked).min(self.max_difficulty)
    }
}

/// Starts the Stratum server on the current runtime; the returned task ends once every miner
/// was told `client.reconnect` after `stop` (or the node's `stop`). Its figures go to `published`.
pub(crate) fn spawn(
    config: Config,
    state: Arc<NodeState>,
    stop: Arc<AtomicBool>,
    published: &std::sync::OnceLock<Arc<Stats>>,
) -> tokio::task::JoinHandle<()> {
    let listening = config
        .local_addr()
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let stats = Arc::new(Stats::new(listening));
    let _ = published.set(stats.clone());
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
        sessions: Mutex::new(Sessions::new(u32::from_le_bytes(seed))),
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
        let wait = tokio::task::spawn_blocking(move || {
            state.with_chain(|c| crate::mining::clock_wait(c, crate::mining::unix_now()))
        })
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
        match tokio::task::spawn_blocking(move || {
            state.with_chain(|c| crate::mining::next_template(c, &payout))
        })
        .await
        {
            Ok(Ok(template)) => {
                last_tip = now_tip;
                let id = format!("{:x}", pool.next_job.fetch_add(1, Ordering::Relaxed));
                let job = NotifyJob::from_template(id, &template, clean);
                let entry = Arc::new(JobEntry::new(job, template));
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
    verdict: &share::ShareCheck,
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
    let submit = move || {
        state
            .submit(block, Source::Stratum)
            .map(|s| (s.accepted, s.height))
    };
    match tokio::task::spawn_blocking(submit).await {
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
