//! Difficulty controllers: pure functions from the recent chain (heights, times, nBits) and their
//! parameters to the next block's nBits. No store, no clock.
//!
//! Local chains start at Bitcoin's regtest genesis block, dated 2011, so every controller looks
//! only at the blocks mined on top of it (height 1 onward); block 1 always gets the initial
//! nBits. That shifts Bitcoin's retarget boundaries by one block compared with Core (windows
//! start at height 1, not 0); the arithmetic is Core's. asert gives blocks 1 and 2 the initial
//! nBits and anchors at block 2, measuring from block 1's time ([`ASERT_ANCHOR_HEIGHT`]).

pub mod asert;
pub mod bitcoin;
pub mod lwma;

use super::{CompactTarget, Target};
use num_bigint::BigUint;
use std::fmt;
use std::str::FromStr;

/// What a controller reads of one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Its height (genesis is 0).
    pub height: u64,
    /// Header time, seconds since 1970.
    pub time: i64,
    /// Its nBits.
    pub bits: CompactTarget,
}

/// Height of asert's anchor block on a local chain.
///
/// Bitcoin Cash Node's `GetNextASERTWorkRequired` measures from the anchor block's nBits and the
/// time of the anchor's *parent* (`pindexAnchorBlock->pprev->GetBlockTime()`); its anchor is the
/// last block whose nBits the previous rule chose. Here blocks 1 and 2 carry the initial nBits
/// (no controller has a history before them), so block 2 is the anchor and block 1's real time
/// is the anchor time. Block 1 cannot be the anchor: its parent is the preset's genesis, and
/// regtest's is dated 2011, so measuring from it would put every block at the pow limit.
pub const ASERT_ANCHOR_HEIGHT: u64 = 2;

/// What asert measures from, as Bitcoin Cash Node's `Consensus::Params::ASERTAnchor`: the
/// anchor block's height and nBits and the time of the anchor's parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsertAnchor {
    /// Height of the anchor block ([`ASERT_ANCHOR_HEIGHT`] on a local chain).
    pub height: u64,
    /// The anchor block's nBits: the reference target.
    pub bits: CompactTarget,
    /// Header time of the anchor block's parent, seconds since 1970.
    pub parent_time: i64,
}

impl AsertAnchor {
    /// The anchor of a branch: `anchor` (the block at [`ASERT_ANCHOR_HEIGHT`]) and its parent.
    pub fn new(anchor: &BlockInfo, parent: &BlockInfo) -> AsertAnchor {
        AsertAnchor {
            height: anchor.height,
            bits: anchor.bits,
            parent_time: parent.time,
        }
    }

    /// The anchor within `blocks` (ascending, contiguous): the block at [`ASERT_ANCHOR_HEIGHT`]
    /// and the block before it, if `blocks` holds both.
    pub fn find(blocks: &[BlockInfo]) -> Option<AsertAnchor> {
        let i = blocks
            .iter()
            .position(|b| b.height == ASERT_ANCHOR_HEIGHT)?;
        let parent = blocks.get(i.checked_sub(1)?)?;
        Some(AsertAnchor::new(&blocks[i], parent))
    }
}

/// A difficulty algorithm and its own parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Every block at the initial nBits.
    Fixed,
    /// Bitcoin's retarget every `window` blocks, clamped to 4x either way.
    Bitcoin {
        /// Blocks per retarget period (2016 on Bitcoin).
        window: u32,
    },
    /// aserti3-2d with the given half-life in seconds, anchored at block 2 and measured from
    /// block 1's time (see [`AsertAnchor`]).
    Asert {
        /// Seconds: the target doubles for each `half_life` the chain falls behind its
        /// schedule, and halves for each it runs ahead.
        half_life: i64,
    },
    /// LWMA-1 over the last `window` solve times.
    Lwma {
        /// Solve times averaged, most recent weighted most.
        window: u32,
    },
}

/// Default Bitcoin retarget window.
pub const DEFAULT_BITCOIN_WINDOW: u32 = 2016;
/// Default LWMA window (zawy's recommendation for most chains).
pub const DEFAULT_LWMA_WINDOW: u32 = 45;
/// Default ASERT half-life, in block intervals.
pub const DEFAULT_ASERT_HALF_LIFE_BLOCKS: i64 = 48;

impl Algorithm {
    /// The name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Fixed => "fixed",
            Algorithm::Bitcoin { .. } => "bitcoin",
            Algorithm::Asert { .. } => "asert",
            Algorithm::Lwma { .. } => "lwma",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Algorithm::Fixed => write!(f, "fixed"),
            Algorithm::Bitcoin { window } => write!(f, "bitcoin (window {window})"),
            Algorithm::Asert { half_life } => write!(f, "asert (half-life {half_life} s)"),
            Algorithm::Lwma { window } => write!(f, "lwma (N = {window})"),
        }
    }
}

/// The names `--retarget` and `--algo` accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlgorithmName {
    /// [`Algorithm::Fixed`]: `fixed`.
    Fixed,
    /// [`Algorithm::Bitcoin`]: `bitcoin` or `btc`.
    Bitcoin,
    /// [`Algorithm::Asert`]: `asert` or `aserti3-2d`.
    Asert,
    /// [`Algorithm::Lwma`]: `lwma`, `lwma1` or `lwma-1`.
    Lwma,
}

/// Error for [`AlgorithmName::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown difficulty algorithm '{0}'; known: asert, bitcoin, lwma, fixed")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for AlgorithmName {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fixed" => Ok(AlgorithmName::Fixed),
            "bitcoin" | "btc" => Ok(AlgorithmName::Bitcoin),
            "asert" | "aserti3-2d" => Ok(AlgorithmName::Asert),
            "lwma" | "lwma1" | "lwma-1" => Ok(AlgorithmName::Lwma),
            _ => Err(UnknownAlgorithm(s.to_string())),
        }
    }
}

/// Everything a controller needs besides the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetargetParams {
    /// The controller and its window or half-life.
    pub algorithm: Algorithm,
    /// Target block interval, seconds.
    pub spacing: i64,
    /// The easiest target allowed.
    pub pow_limit: Target,
    /// nBits of block 1 (and of every block, for `Fixed`).
    pub initial: CompactTarget,
}

impl RetargetParams {
    /// Every block at `bits`.
    pub fn fixed(bits: CompactTarget, pow_limit: Target) -> RetargetParams {
        RetargetParams {
            algorithm: Algorithm::Fixed,
            spacing: 600,
            pow_limit,
            initial: bits,
        }
    }

    /// How many of the latest blocks [`RetargetParams::next_bits`] reads (besides the anchor).
    pub fn history_needed(&self) -> usize {
        match self.algorithm {
            Algorithm::Fixed | Algorithm::Asert { .. } => 1,
            Algorithm::Bitcoin { window } => window.max(2) as usize,
            Algorithm::Lwma { window } => window.max(2) as usize + 1,
        }
    }

    /// nBits for the block after `chain`: the blocks from height 1 to the tip in order (the whole
    /// chain; for controllers other than asert, at least its last
    /// [`RetargetParams::history_needed`] blocks).
    pub fn next_bits(&self, chain: &[BlockInfo]) -> CompactTarget {
        self.next_bits_with_anchor(chain, AsertAnchor::find(chain).as_ref())
    }

    /// [`RetargetParams::next_bits`] for a caller that holds only the latest blocks of a branch
    /// (`recent`, ascending and contiguous, ending at the parent) and that branch's asert anchor
    /// (block 2's nBits and block 1's time; `None` before block 2 exists). Given no anchor on a
    /// branch past block 2, asert keeps the parent's nBits.
    pub fn next_bits_with_anchor(
        &self,
        recent: &[BlockInfo],
        anchor: Option<&AsertAnchor>,
    ) -> CompactTarget {
        let Some(last) = recent.last() else {
            return self.initial;
        };
        let limit = self.pow_limit.to_biguint();
        match self.algorithm {
            Algorithm::Fixed => self.initial,
            Algorithm::Bitcoin { window } => {
                let window = window.max(2) as usize;
                // Retarget when the new block starts a window (heights 1, 1+w, 1+2w, ...).
                if !last.height.is_multiple_of(window as u64) || recent.len() < window {
                    return last.bits;
                }
                let first = &recent[recent.len() - window];
                bitcoin::retarget(
                    last.bits,
                    first.time,
                    last.time,
                    self.spacing * (window as i64),
                    &limit,
                )
            }
            Algorithm::Asert { half_life } => {
                if last.height < ASERT_ANCHOR_HEIGHT {
                    return self.initial;
                }
                // No anchor: measure from the parent as if it were on schedule, which keeps its
                // nBits.
                let anchor = anchor.copied().unwrap_or(AsertAnchor {
                    height: last.height,
                    bits: last.bits,
                    parent_time: last.time - self.spacing,
                });
                let reference = decode(anchor.bits).min(limit.clone());
                // As BCHN's GetNextASERTWorkRequired: the parent's time minus the anchor's
                // parent's time, the parent's height minus the anchor's.
                let target = asert::next_target(
                    &reference,
                    self.spacing,
                    last.time - anchor.parent_time,
                    last.height as i64 - anchor.height as i64,
                    &limit,
                    half_life.max(1),
                );
                CompactTarget::encode(&target, false)
            }
            Algorithm::Lwma { window } => {
                let n = window.max(2) as usize;
                if last.height < n as u64 + 1 || recent.len() < n + 1 {
                    return self.initial;
                }
                lwma::next_bits(&recent[recent.len() - n - 1..], self.spacing, &limit)
            }
        }
    }
}

/// Core's `SetCompact` value, ignoring the sign and overflow flags as Core's retarget code does.
fn decode(bits: CompactTarget) -> BigUint {
    bits.decode().value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(algorithm: Algorithm) -> RetargetParams {
        RetargetParams {
            algorithm,
            spacing: 600,
            pow_limit: Target::from_compact(CompactTarget::from_consensus(
                crate::pow::REGTEST_POW_LIMIT_BITS,
            ))
            .unwrap(),
            initial: CompactTarget::from_consensus(0x1d00ffff),
        }
    }

    fn steady(n: u64, spacing: i64) -> Vec<BlockInfo> {
        (1..=n)
            .map(|h| BlockInfo {
                height: h,
                time: 1_700_000_000 + h as i64 * spacing,
                bits: CompactTarget::from_consensus(0x1d00ffff),
            })
            .collect()
    }

    #[test]
    fn block_one_gets_the_initial_bits_and_steady_chains_keep_them() {
        for a in [
            Algorithm::Fixed,
            Algorithm::Bitcoin { window: 10 },
            Algorithm::Asert { half_life: 3600 },
            Algorithm::Lwma { window: 10 },
        ] {
            let p = params(a);
            assert_eq!(p.next_bits(&[]), p.initial, "{a}");
            let next = Target::from_compact(p.next_bits(&steady(30, 600))).unwrap();
            let initial = Target::from_compact(p.initial).unwrap();
            // LWMA's integer divisions lose a little; Bitcoin's window measures window - 1
            // intervals against window spacings (Core's off-by-one), so it settles 10/9 harder.
            let expected = if let Algorithm::Bitcoin { window } = a {
                f64::from(window) / f64::from(window - 1)
            } else {
                1.0
            };
            let ratio = next.difficulty().as_f64() / initial.difficulty().as_f64();
            assert!((ratio / expected - 1.0).abs() < 1e-3, "{a}: {ratio}");
        }
    }

    #[test]
    fn algorithm_names_parse() {
        assert_eq!(
            "ASERT".parse::<AlgorithmName>().unwrap(),
            AlgorithmName::Asert
        );
        assert_eq!(
            "lwma".parse::<AlgorithmName>().unwrap(),
            AlgorithmName::Lwma
        );
        assert!("dgw".parse::<AlgorithmName>().is_err());
    }
}
