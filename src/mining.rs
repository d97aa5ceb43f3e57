//! The mining loop that wires the pieces together: chain tip → template → job → backend →
//! found nonce → block → chain. Rolls the extranonce whenever a job's 2^32 nonces are spent, so
//! no header is hashed twice (docs/ARCHITECTURE.md §4). It lives here rather than in `cli` so
//! library users and the node can share it.

use crate::backend::{Backend, BackendError};
use crate::block::{header_bytes, header_hash, JobSource, Template};
use crate::chain::{Chain, SubmitError, MAX_FUTURE_BLOCK_TIME};
use crate::pow::{CompactTarget, TargetError};
use bitcoin::{Block, ScriptBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A block this process mined and the chain accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct MinedBlock {
    /// The block's height on the chain.
    pub height: u32,
    /// Raw byte order.
    pub hash: [u8; 32],
    /// The 80-byte header.
    pub header: [u8; 80],
    /// The winning nonce.
    pub nonce: u32,
    /// The extranonce in its coinbase: the job index the hit fell in.
    pub extranonce: u64,
    /// The nBits it met.
    pub bits: CompactTarget,
    /// Trials: the position of the winning nonce in the search order (jobs by extranonce, nonces
    /// ascending), i.e. what a sequential searcher would have hashed. Geometric with mean
    /// `2^256 / (target + 1)`, whatever the backend's parallel split.
    pub trials: u64,
    /// Nonces hashed for this block, over all its jobs: `trials` plus the work that was in
    /// flight when the hit landed.
    pub hashes: u64,
    /// Wall-clock seconds of the mining call ([`mine_next`]), a wait for the clock included.
    pub seconds: f64,
    /// The block as submitted to the chain.
    pub block: Block,
}

/// How one call of [`mine_next`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum MineOutcome {
    /// A block was found and the chain accepted it.
    Mined(Box<MinedBlock>),
    /// The cancel flag was raised first.
    Cancelled {
        /// Nonces hashed before the cancel was seen.
        hashes: u64,
        /// Wall-clock seconds of the call.
        seconds: f64,
    },
}

/// Failures that are bugs or bad chain settings, never a user's everyday input.
#[derive(Debug, thiserror::Error)]
pub enum MineError {
    // Bits and Submit carry their reason in the message (the node answers RPC errors with
    // `to_string()`), so they are not a `source()` too: under `{:#}` it would print twice.
    /// The nBits the chain demands give no usable target (zero, negative, overflowing).
    #[error("the chain's nBits cannot be mined: {0}")]
    Bits(TargetError),
    /// A backend reported a hit that is not one: a kernel bug.
    #[error("backend {backend} reported nonce {nonce}, whose hash does not meet the target")]
    FalseHit {
        /// The backend's [`Backend::name`].
        backend: String,
        /// The nonce it reported.
        nonce: u32,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The chain refused a block built on its own tip and rules (a bug), or could not store it.
    #[error("the chain did not take our own block: {0}")]
    Submit(SubmitError),
}

impl From<TargetError> for MineError {
    fn from(e: TargetError) -> Self {
        MineError::Bits(e)
    }
}

impl From<SubmitError> for MineError {
    fn from(e: SubmitError) -> Self {
        MineError::Submit(e)
    }
}

/// Seconds since 1970, saturated to the header's 32-bit field.
pub fn unix_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The wall clock the miner reads and waits on; tests inject one that needs no real waiting.
pub trait Clock {
    /// Seconds since 1970.
    fn now(&self) -> u32;
    /// Lets `d` pass.
    fn sleep(&self, d: Duration);
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u32 {
        unix_now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Seconds until a block on `chain`'s tip can carry a time the chain accepts, at clock time
/// `now`: the time must exceed the median time past (MTP), and may be at most
/// [`MAX_FUTURE_BLOCK_TIME`] ahead of the clock. Blocks found faster than one per second push
/// the MTP ahead of the clock (about one second per six blocks), so a fast enough miner reaches
/// that limit and must let the clock catch up; 0 when no wait is needed.
pub fn clock_wait(chain: &Chain, now: u32) -> u32 {
    chain
        .median_time_past()
        .saturating_add(1)
        .saturating_sub(now.saturating_add(MAX_FUTURE_BLOCK_TIME))
}

/// Waits on `clock` until [`clock_wait`] is 0, calling `on_wait(seconds)` once first when a wait
/// is needed. Returns `false` if `cancel` was raised during the wait.
pub fn wait_for_clock(
    chain: &Chain,
    clock: &dyn Clock,
    cancel: &AtomicBool,
    on_wait: &mut dyn FnMut(u32),
) -> bool {
    let wait = clock_wait(chain, clock.now());
    if wait == 0 {
        return true;
    }
    on_wait(wait);
    while clock_wait(chain, clock.now()) > 0 {
        if cancel.load(Ordering::SeqCst) {
            return false;
        }
        clock.sleep(Duration::from_millis(100));
    }
    true
}

/// The template for the next block on `chain`'s tip, paying `payout`.
pub fn next_template(chain: &Chain, payout: &ScriptBuf) -> Result<Template, MineError> {
    next_template_at(chain, payout, unix_now())
}

/// [`next_template`] at clock time `now`.
pub fn next_template_at(
    chain: &Chain,
    payout: &ScriptBuf,
    now: u32,
) -> Result<Template, MineError> {
    let height = chain.height() + 1;
    Ok(Template::builder(chain.tip_hash(), height)
        .median_time_past(chain.median_time_past())
        .time(now)
        .bits(chain.next_bits())
        .value(chain.params().subsidy(height))
        .payout(payout.clone())
        .build()?)
}

/// A block found for a template, not yet submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The complete block, header nonce and coinbase extranonce filled in.
    pub block: Block,
    /// Its hash, raw byte order; meets the template's target.
    pub hash: [u8; 32],
    /// The winning nonce.
    pub nonce: u32,
    /// The extranonce of the job the hit fell in.
    pub extranonce: u64,
    /// The winning nonce's position in the search order (see [`MinedBlock::trials`]).
    pub trials: u64,
    /// All nonces hashed, including work in flight past the hit.
    pub hashes: u64,
}

/// How a [`search`] ended: a block, or the cancel flag first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchOutcome {
    /// A nonce met the target; the block is assembled and its hash checked on the host.
    Found(Found),
    /// `cancel` was raised before any nonce met the target.
    Cancelled {
        /// Nonces hashed before stopping.
        hashes: u64,
    },
}

impl SearchOutcome {
    /// The block, if one was found.
    pub fn found(self) -> Option<Found> {
        match self {
            SearchOutcome::Found(found) => Some(found),
            SearchOutcome::Cancelled { .. } => None,
        }
    }
}

/// Searches `template`'s jobs (extranonce 0, 1, ...) until a block is found
/// ([`SearchOutcome::Found`]) or `cancel` is raised ([`SearchOutcome::Cancelled`], with the
/// hashes done). Needs no chain: callers that share one can release it while this runs.
pub fn search(
    template: &Template,
    backend: &dyn Backend,
    cancel: &AtomicBool,
    progress: &AtomicU64,
) -> Result<SearchOutcome, MineError> {
    // One job per extranonce, the merkle branch built once; the backend may start the next
    // job while the last one's work is in flight, and reports the first hit in search order.
    let jobs = JobSource::new(template);
    let report =
        backend.search_jobs(&mut |extranonce| jobs.job(extranonce).job, cancel, progress)?;
    let Some(hit) = report.hit else {
        return Ok(SearchOutcome::Cancelled {
            hashes: report.hashes,
        });
    };
    let (extranonce, nonce) = (hit.job, hit.nonce);
    let block = template.assemble(extranonce, nonce);
    let hash = header_hash(&block.header);
    if !template.target.is_met_by(&hash) {
        return Err(MineError::FalseHit {
            backend: backend.name(),
            nonce,
        });
    }
    Ok(SearchOutcome::Found(Found {
        block,
        hash,
        nonce,
        extranonce,
        trials: hit.trials(),
        hashes: report.hashes,
    }))
}

/// Mines one block on the tip of `chain`, paying `payout`, and appends it. Waits silently for
/// the clock when the chain's times are too far ahead of it (see [`mine_next_with_clock`]).
pub fn mine_next(
    chain: &mut Chain,
    backend: &dyn Backend,
    payout: &ScriptBuf,
    cancel: &AtomicBool,
    progress: &AtomicU64,
) -> Result<MineOutcome, MineError> {
    mine_next_with_clock(
        chain,
        backend,
        payout,
        cancel,
        progress,
        &SystemClock,
        &mut |_| {},
    )
}

/// [`mine_next`] on `clock`. When the chain's median time past has run so far ahead of the clock
/// that our own block would be refused as `time-too-new`, it first waits for the clock
/// ([`wait_for_clock`]), calling `on_wait(seconds)` before each wait.
pub fn mine_next_with_clock(
    chain: &mut Chain,
    backend: &dyn Backend,
    payout: &ScriptBuf,
    cancel: &AtomicBool,
    progress: &AtomicU64,
    clock: &dyn Clock,
    on_wait: &mut dyn FnMut(u32),
) -> Result<MineOutcome, MineError> {
    let started = Instant::now();
    if !wait_for_clock(chain, clock, cancel, on_wait) {
        return Ok(MineOutcome::Cancelled {
            hashes: 0,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let template = next_template_at(chain, payout, clock.now())?;
    match search(&template, backend, cancel, progress)? {
        SearchOutcome::Found(found) => {
            let header = header_bytes(&found.block.header);
            chain.submit(found.block.clone(), clock.now())?;
            Ok(MineOutcome::Mined(Box::new(MinedBlock {
                height: template.height,
                hash: found.hash,
                header,
                nonce: found.nonce,
                extranonce: found.extranonce,
                bits: template.bits,
                trials: found.trials,
                hashes: found.hashes,
                seconds: started.elapsed().as_secs_f64(),
                block: found.block,
            })))
        }
        SearchOutcome::Cancelled { hashes } => Ok(MineOutcome::Cancelled {
            hashes,
            seconds: started.elapsed().as_secs_f64(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;
    use crate::hash::Kernel;
    use bitcoin::hashes::Hash;
    use bitcoin::BlockHash;

    fn backend() -> CpuBackend {
        CpuBackend::new(Kernel::Soft, Some(1)).unwrap()
    }

    #[test]
    fn search_finds_a_block_that_meets_the_template_target() {
        let template = Template::builder(BlockHash::all_zeros(), 1)
            .time(1_700_000_000)
            .build()
            .unwrap();
        let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
        let outcome = search(&template, &backend(), &cancel, &progress).unwrap();
        let SearchOutcome::Found(found) = outcome.clone() else {
            panic!("no block: {outcome:?}");
        };
        assert_eq!(found.hash, header_hash(&found.block.header));
        assert!(template.target.is_met_by(&found.hash));
        assert_eq!(found.block.header.nonce, found.nonce);
        assert!(
            found.trials >= 1 && found.trials <= found.hashes,
            "{found:?}"
        );
        assert_eq!(outcome.found(), Some(found));
    }

    #[test]
    fn search_cancelled_first_reports_the_hashes_and_no_block() {
        // A target no nonce of the first jobs meets, and the flag already raised.
        let template = Template::builder(BlockHash::all_zeros(), 1)
            .bits(CompactTarget::from_consensus(0x1b00ffff))
            .build()
            .unwrap();
        let (cancel, progress) = (AtomicBool::new(true), AtomicU64::new(0));
        let outcome = search(&template, &backend(), &cancel, &progress).unwrap();
        let SearchOutcome::Cancelled { hashes } = outcome else {
            panic!("expected a cancelled search: {outcome:?}");
        };
        assert_eq!(hashes, progress.load(Ordering::SeqCst));
        assert_eq!(outcome.found(), None);
    }
}
