//! The seed's comparison slide, measured: proof of work (the engine's real hashing), proof of
//! stake, delegated proof of stake and PBFT side by side. This module holds the proof-of-work
//! side (a real mining run on an in-memory chain, and the confirmation depth a chosen attack
//! probability asks for) and the one row shape every system reports in; the command
//! (`miner experiment compare`) runs the other systems' own experiments and fills their rows.

use super::theory;
use crate::backend::Backend;
use crate::chain::{Chain, ChainParams};
use crate::mining::{mine_next, MineError, MineOutcome};
use crate::pow::retarget::RetargetParams;
use crate::pow::{Difficulty, Target};
use bitcoin::ScriptBuf;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

/// What a real proof-of-work run measured: `blocks` mined one after another on an in-memory
/// regtest chain at difficulty `difficulty` (D: expected hashes per block).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PowMeasure {
    /// The backend's name.
    pub backend: String,
    /// D, expected hashes per block.
    pub difficulty: f64,
    /// Blocks mined.
    pub blocks: u64,
    /// Every nonce hashed (work in flight past each hit included).
    pub hashes: u64,
    /// The winning nonces' positions in search order, summed: exactly geometric, mean D.
    pub trials: u64,
    /// Wall-clock seconds the mining took.
    pub seconds: f64,
    /// `hashes / seconds`.
    pub hashrate_hs: f64,
    /// `trials / blocks`: the measured hashes a block takes (D in expectation).
    pub trials_per_block: f64,
}

/// Mines `blocks` blocks at difficulty `difficulty` on a fresh in-memory regtest chain with
/// `backend`, each found by the real SHA-256d search and connected by the chain code.
pub fn measure_pow(
    backend: &dyn Backend,
    difficulty: &Difficulty,
    blocks: u64,
) -> Result<PowMeasure, MineError> {
    let params = ChainParams::regtest();
    let bits = difficulty.to_target().to_compact_lossy();
    let mut chain = Chain::new(
        params.clone(),
        RetargetParams::fixed(bits, params.pow_limit),
    );
    let payout = ScriptBuf::new();
    let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
    let (mut hashes, mut trials) = (0u64, 0u64);
    let started = Instant::now();
    for _ in 0..blocks {
        match mine_next(&mut chain, backend, &payout, &cancel, &progress)? {
            MineOutcome::Mined(b) => {
                hashes += b.hashes;
                trials += b.trials;
            }
            // Nothing raises `cancel` here.
            MineOutcome::Cancelled { hashes: h, .. } => hashes += h,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(PowMeasure {
        backend: backend.name(),
        difficulty: Target::from_compact(bits)
            .map(|t| t.difficulty().as_f64())
            .unwrap_or(f64::NAN),
        blocks,
        hashes,
        trials,
        seconds,
        hashrate_hs: hashes as f64 / seconds.max(1e-9),
        trials_per_block: trials as f64 / blocks.max(1) as f64,
    })
}

/// The fewest confirmations z (the payment's block counted) at which an attacker of hash share
/// `q` succeeds with probability at most `max_p`, by the exact formula (Rosenfeld 2014;
/// [`theory::exact`]). `None` when q ≥ 1/2 (no depth is enough: the 51% attack) or no z up to
/// `limit` is.
pub fn pow_confirmations(q: f64, max_p: f64, limit: u32) -> Option<u32> {
    if q >= 0.5 {
        return None;
    }
    (1..=limit).find(|&z| theory::exact(q, z) <= max_p)
}

/// One system's row of the comparison. Every figure is measured by that system's run on this
/// machine, except where `notes` says it is a formula.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareRow {
    /// The system's name.
    pub system: String,
    /// Blocks (PBFT: committed requests) per second of the system's clock.
    pub blocks_per_s: f64,
    /// Transactions per second at the run's transactions per block.
    pub tx_per_s: f64,
    /// Seconds from a block's creation until it cannot be reverted (PoW: z blocks for the chosen
    /// attack probability; PoS: the same depth rule on stake; DPoS: last irreversible block;
    /// PBFT: the client's f + 1 replies).
    pub finality_s: f64,
    /// Hash evaluations spent per block (PoW: nonces; PoS: kernel tries; DPoS and PBFT: digests
    /// and MACs the protocol computes).
    pub hashes_per_block: f64,
    /// Messages sent per block over the network.
    pub messages_per_block: f64,
    /// The largest share of participants (hash rate, stake, delegates, replicas) that may fail
    /// or attack with the system still safe and live.
    pub fault_tolerance: f64,
    /// What `fault_tolerance` counts.
    pub tolerance_of: String,
    /// Nakamoto coefficient of block production (entities that together made over half the
    /// blocks; PBFT: replicas needed to stall it, f + 1).
    pub nakamoto_coefficient: f64,
    /// Free text: how the figures were obtained (the rule, the run's checks).
    pub notes: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::CpuBackend;
    use crate::hash::Kernel;

    #[test]
    fn confirmations_follow_the_exact_formula() {
        // exact(0.1, z) falls below 0.001 first at z = 6 (0.00059; z = 5: 0.0027... ).
        let z = pow_confirmations(0.1, 0.001, 100).expect("a depth");
        assert!(theory::exact(0.1, z) <= 0.001);
        assert!(theory::exact(0.1, z - 1) > 0.001);
        assert_eq!(pow_confirmations(0.5, 0.001, 100), None);
        assert_eq!(pow_confirmations(0.45, 1e-9, 3), None);
    }

    #[test]
    fn a_real_pow_run_counts_its_blocks_and_hashes() {
        let backend = CpuBackend::new(Kernel::Soft, Some(1)).expect("the portable kernel");
        let d = Difficulty::from_f64(2000.0).expect("D");
        let m = measure_pow(&backend, &d, 30).expect("mined");
        assert_eq!(m.blocks, 30);
        assert!(m.hashes >= m.trials && m.trials >= 30, "{m:?}");
        // 30 geometric draws of mean ~2000: the mean is within a factor 3 with overwhelming
        // probability (the chance of leaving it is below 1e-6).
        assert!(
            m.trials_per_block > 600.0 && m.trials_per_block < 6000.0,
            "{m:?}"
        );
        assert!(m.hashrate_hs > 0.0);
    }
}
