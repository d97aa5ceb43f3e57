//! Proof-of-work quantities: [`Target`], [`CompactTarget`] (nBits), [`Difficulty`] and [`Work`].
//!
//! Conventions (docs/ARCHITECTURE.md §3): a block hash is read as a 256-bit little-endian integer and a block
//! is valid when `Hash(B) <= target`. The seed's difficulty `D` is the expected number of hashes
//! per block, `target = floor(M / D)` with `M = 2^256 - 1`. Bitcoin's difficulty ("bdiff") is
//! `DIFF1 / target` with `DIFF1 = 0xFFFF * 2^208`.

mod compact;
mod difficulty;
pub mod retarget;

pub use compact::{CompactTarget, DecodedCompact};
pub use difficulty::{Difficulty, ParseDifficultyError};

/// Regtest's proof-of-work limit as nBits, the easiest target the chain allows: about every
/// second nonce meets it. The default of a [`Template`](crate::block::Template) and the nBits
/// of the experiments' simulated chains (also `chain::REGTEST_POW_LIMIT_BITS`).
pub const REGTEST_POW_LIMIT_BITS: u32 = 0x207f_ffff;

use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};
use std::cmp::Ordering;
use std::fmt;

/// Why a target could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The nBits have the sign bit set with a non-zero mantissa.
    #[error("nBits {0} is negative (sign bit 0x00800000 set with a non-zero mantissa)")]
    Negative(CompactTarget),
    /// The nBits encode a value of more than 256 bits.
    #[error("nBits {0} overflows 256 bits")]
    Overflow(CompactTarget),
    /// The target is 0: no hash can meet it.
    #[error("the target is zero: no hash can meet it")]
    Zero,
    /// An integer past `2^256 - 1` ([`Target::from_biguint`]).
    #[error("the value is larger than 2^256 - 1")]
    TooLarge,
}

/// A 256-bit proof-of-work target: a hash meets it when `hash <= target` (both little-endian).
///
/// Stored as eight 32-bit words, least significant first, which is the form the kernels compare
/// against (word 7 is the "top word" used for early rejection).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target([u32; 8]);

impl Target {
    /// `M = 2^256 - 1`, the easiest possible target (every hash meets it).
    pub const MAX: Target = Target([u32::MAX; 8]);
    /// Bitcoin's difficulty-1 target, `0xFFFF * 2^208` (nBits `0x1d00ffff`).
    pub const DIFF1: Target = Target([0, 0, 0, 0, 0, 0, 0xffff_0000, 0]);

    /// Builds a target from its eight little-endian 32-bit words.
    pub const fn from_words(words: [u32; 8]) -> Target {
        Target(words)
    }

    /// The eight 32-bit words, least significant first.
    pub const fn to_words(&self) -> [u32; 8] {
        self.0
    }

    /// Builds a target from 32 little-endian bytes (the byte order of a raw hash).
    pub fn from_le_bytes(bytes: [u8; 32]) -> Target {
        let mut w = [0u32; 8];
        for (i, word) in w.iter_mut().enumerate() {
            *word = u32::from_le_bytes([
                bytes[4 * i],
                bytes[4 * i + 1],
                bytes[4 * i + 2],
                bytes[4 * i + 3],
            ]);
        }
        Target(w)
    }

    /// The 32 little-endian bytes.
    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, word) in self.0.iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
        }
        b
    }

    /// Builds a target from an arbitrary-precision integer; fails above `2^256 - 1`.
    pub fn from_biguint(value: &BigUint) -> Result<Target, TargetError> {
        let digits = value.to_u32_digits();
        if digits.len() > 8 {
            return Err(TargetError::TooLarge);
        }
        let mut w = [0u32; 8];
        w[..digits.len()].copy_from_slice(&digits);
        Ok(Target(w))
    }

    /// The target as an arbitrary-precision integer.
    pub fn to_biguint(&self) -> BigUint {
        BigUint::from_slice(&self.0)
    }

    /// Whether a hash in raw (little-endian) byte order meets this target: `hash <= target`.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        Target::from_le_bytes(*hash) <= *self
    }

    /// Decodes nBits the way Bitcoin Core's `CheckProofOfWork` accepts them: negative, overflowing
    /// and zero targets are errors.
    pub fn from_compact(bits: CompactTarget) -> Result<Target, TargetError> {
        let decoded = bits.decode();
        if decoded.negative {
            return Err(TargetError::Negative(bits));
        }
        if decoded.overflow {
            return Err(TargetError::Overflow(bits));
        }
        if decoded.value.is_zero() {
            return Err(TargetError::Zero);
        }
        Target::from_biguint(&decoded.value)
    }

    /// Encodes as nBits (Core's `GetCompact`). Lossy: the 24-bit mantissa is truncated, so the
    /// decoded target can be slightly below this one, never above.
    pub fn to_compact_lossy(&self) -> CompactTarget {
        CompactTarget::encode(&self.to_biguint(), false)
    }

    /// The seed's difficulty of this target, `M / target`, exactly.
    pub fn difficulty(&self) -> Difficulty {
        Difficulty::from_target(self)
    }

    /// Bitcoin difficulty, `DIFF1 / target`, as `getdifficulty` shows it.
    pub fn bdiff(&self) -> f64 {
        ratio_f64(&Target::DIFF1.to_biguint(), &self.to_biguint())
    }

    /// The target whose Bitcoin difficulty is `bdiff`: `floor(DIFF1 / bdiff)`, capped at `M`.
    pub fn from_bdiff(bdiff: f64) -> Result<Target, ParseDifficultyError> {
        let (num, den) = difficulty::positive_f64_to_ratio(bdiff)?;
        let value = Target::DIFF1.to_biguint() * den / num;
        if value.is_zero() {
            return Err(ParseDifficultyError::TooLarge);
        }
        Ok(Target::from_biguint(&value).unwrap_or(Target::MAX))
    }

    /// Expected hashes to find a block at this target, `floor(2^256 / (target + 1))`.
    pub fn work(&self) -> Work {
        Work::from_target(self)
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Big-endian hex, 64 digits, as hashes are displayed.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in self.0.iter().rev() {
            write!(f, "{w:08x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

/// Amount of work, in expected hashes: `floor(2^256 / (target + 1))` per block, summed over a
/// chain. Fork choice compares chain work, never block counts.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Work(BigUint);

impl Work {
    /// The work of one block at `target` (Core's `GetBlockProof`).
    pub fn from_target(target: &Target) -> Work {
        let two256 = BigUint::from(1u8) << 256;
        Work(two256 / (target.to_biguint() + 1u8))
    }

    /// The exact value.
    pub fn as_biguint(&self) -> &BigUint {
        &self.0
    }

    /// The value as a float (expected hashes), for display and statistics.
    pub fn to_f64(&self) -> f64 {
        self.0.to_f64().unwrap_or(f64::INFINITY)
    }
}

impl std::ops::Add for Work {
    type Output = Work;
    fn add(self, rhs: Work) -> Work {
        Work(self.0 + rhs.0)
    }
}

impl std::ops::AddAssign<&Work> for Work {
    fn add_assign(&mut self, rhs: &Work) {
        self.0 += &rhs.0;
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `a / b` as f64 without overflowing the intermediate conversions.
fn ratio_f64(a: &BigUint, b: &BigUint) -> f64 {
    if b.is_zero() {
        return f64::INFINITY;
    }
    // Scale both to at most 1000 bits' difference so each fits an f64 comfortably.
    let shift = a.bits().max(b.bits()).saturating_sub(1000);
    let (a, b) = (a >> shift, b >> shift);
    match (a.to_f64(), b.to_f64()) {
        (Some(x), Some(y)) if y != 0.0 => x / y,
        _ => f64::INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_of_difficulty_one_block() {
        // docs/ARCHITECTURE.md §6: the work of a 0x1d00ffff block is 4295032833 (0x100010001).
        let t = Target::from_compact(CompactTarget::from_consensus(0x1d00ffff)).unwrap();
        assert_eq!(t, Target::DIFF1);
        assert_eq!(t.work().as_biguint(), &BigUint::from(4_295_032_833u64));
        assert_eq!(t.bdiff(), 1.0);
    }

    #[test]
    fn ordering_compares_most_significant_word_first() {
        let mut small = [0u32; 8];
        small[0] = u32::MAX;
        let mut big = [0u32; 8];
        big[7] = 1;
        assert!(Target::from_words(small) < Target::from_words(big));
        assert!(Target::MAX > Target::DIFF1);
    }

    #[test]
    fn bytes_and_biguint_round_trip() {
        let t = Target::DIFF1;
        assert_eq!(Target::from_le_bytes(t.to_le_bytes()), t);
        assert_eq!(Target::from_biguint(&t.to_biguint()).unwrap(), t);
        assert_eq!(
            Target::from_biguint(&(BigUint::from(1u8) << 256)),
            Err(TargetError::TooLarge)
        );
        assert_eq!(
            t.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn is_met_by_is_inclusive() {
        let t = Target::DIFF1;
        assert!(t.is_met_by(&t.to_le_bytes()));
        let mut above = t.to_le_bytes();
        above[0] = 1;
        assert!(!t.is_met_by(&above));
    }
}
