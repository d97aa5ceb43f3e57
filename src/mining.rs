//! The mining loop that wires the pieces together: chain tip → template → job → backend →
//! found nonce → block → chain. Rolls the extranonce whenever a job's 2^32 nonces are spent, so
//! no header is hashed twice. (DESIGN.md's module table has no row for this loop; it lives here
//! rather than in `cli` so library users and the node can share it.)

use crate::backend::{Backend, BackendError, StopAt, NONCE_END};
use crate::block::{header_bytes, header_hash, Template};
use crate::chain::{Chain, SubmitError};
use crate::pow::{CompactTarget, TargetError};
use bitcoin::{Block, ScriptBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A block this process mined and the chain accepted.
#[derive(Clone, Debug)]
pub struct MinedBlock {
    pub height: u32,
    /// Raw byte order.
    pub hash: [u8; 32],
    pub header: [u8; 80],
    pub nonce: u32,
    pub extranonce: u64,
    pub bits: CompactTarget,
    /// Nonces hashed for this block, over all its jobs.
    pub hashes: u64,
    pub seconds: f64,
    pub block: Block,
}

/// How one call of [`mine_next`] ended.
#[derive(Clone, Debug)]
pub enum MineOutcome {
    Mined(Box<MinedBlock>),
    /// The cancel flag was raised first.
    Cancelled {
        hashes: u64,
        seconds: f64,
    },
}

/// Failures that are bugs or bad chain settings, never a user's everyday input.
#[derive(Debug, thiserror::Error)]
pub enum MineError {
    #[error("the chain's nBits cannot be mined: {0}")]
    Bits(#[from] TargetError),
    #[error("backend {backend} reported nonce {nonce}, whose hash does not meet the target")]
    FalseHit { backend: String, nonce: u32 },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the chain did not take our own block: {0}")]
    Submit(#[from] SubmitError),
}

/// Seconds since 1970, saturated to the header's 32-bit field.
pub fn unix_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The template for the next block on `chain`'s tip, paying `payout`.
pub fn next_template(chain: &Chain, payout: &ScriptBuf) -> Result<Template, MineError> {
    let height = chain.height() + 1;
    Ok(Template::new(
        chain.tip_hash(),
        height,
        chain.median_time_past(),
        unix_now(),
        chain.next_bits(),
        chain.params().subsidy(height),
        payout.clone(),
        Vec::new(),
    )?)
}

/// A block found for a template, not yet submitted.
pub struct Found {
    pub block: Block,
    pub hash: [u8; 32],
    pub nonce: u32,
    pub extranonce: u64,
    pub hashes: u64,
}

/// Searches `template`'s jobs (extranonce 0, 1, ...) until a block is found (`Some`) or
/// `cancel` is raised (`None`, with the hashes done). Needs no chain: callers that share one can
/// release it while this runs.
pub fn search(
    template: &Template,
    backend: &dyn Backend,
    cancel: &AtomicBool,
    progress: &AtomicU64,
) -> Result<Result<Found, u64>, MineError> {
    let mut hashes = 0u64;
    for extranonce in 0u64.. {
        let job = template.job(extranonce);
        let report = backend.scan(&job.job, 0..NONCE_END, StopAt::FirstHit, cancel, progress)?;
        hashes += report.hashes;
        if let Some(&nonce) = report.hits.first() {
            let block = template.assemble(extranonce, nonce);
            let hash = header_hash(&block.header);
            if !template.target.is_met_by(&hash) {
                return Err(MineError::FalseHit {
                    backend: backend.name(),
                    nonce,
                });
            }
            return Ok(Ok(Found {
                block,
                hash,
                nonce,
                extranonce,
                hashes,
            }));
        }
        if report.cancelled {
            break;
        }
    }
    Ok(Err(hashes))
}

/// Mines one block on the tip of `chain`, paying `payout`, and appends it.
pub fn mine_next(
    chain: &mut Chain,
    backend: &dyn Backend,
    payout: &ScriptBuf,
    cancel: &AtomicBool,
    progress: &AtomicU64,
) -> Result<MineOutcome, MineError> {
    let started = Instant::now();
    let template = next_template(chain, payout)?;
    match search(&template, backend, cancel, progress)? {
        Ok(found) => {
            let header = header_bytes(&found.block.header);
            chain.submit(found.block.clone(), unix_now())?;
            Ok(MineOutcome::Mined(Box::new(MinedBlock {
                height: template.height,
                hash: found.hash,
                header,
                nonce: found.nonce,
                extranonce: found.extranonce,
                bits: template.bits,
                hashes: found.hashes,
                seconds: started.elapsed().as_secs_f64(),
                block: found.block,
            })))
        }
        Err(hashes) => Ok(MineOutcome::Cancelled {
            hashes,
            seconds: started.elapsed().as_secs_f64(),
        }),
    }
}
