//! Compact nBits, bit for bit as Bitcoin Core's `arith_uint256::SetCompact` / `GetCompact`.

use num_bigint::BigUint;
use num_traits::ToPrimitive;
use std::fmt;
use std::str::FromStr;

/// The 32-bit compact form of a target stored in a block header ("nBits"): a one-byte size `s`
/// and a 23-bit mantissa `m` with a sign bit, meaning `m * 256^(s-3)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompactTarget(u32);

/// What Core's `SetCompact` yields: the value (modulo 2^256, as `arith_uint256` keeps it) and the
/// negative and overflow flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedCompact {
    /// `m * 256^(s-3)` modulo 2^256, the sign bit not part of `m`.
    pub value: BigUint,
    /// The sign bit is set and the mantissa is not zero.
    pub negative: bool,
    /// The value needs more than 256 bits (non-zero mantissa with a size past 32 bytes).
    pub overflow: bool,
}

impl CompactTarget {
    /// Wraps the raw header field.
    pub const fn from_consensus(bits: u32) -> CompactTarget {
        CompactTarget(bits)
    }

    /// The raw header field.
    pub const fn to_consensus(self) -> u32 {
        self.0
    }

    /// Decodes exactly as Core's `SetCompact(nCompact, &fNegative, &fOverflow)`.
    pub fn decode(self) -> DecodedCompact {
        let size = self.0 >> 24;
        let mut word = self.0 & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            BigUint::from(word)
        } else {
            // arith_uint256 drops bits shifted past 2^256.
            let full = BigUint::from(word) << (8 * (size - 3)) as usize;
            let mask = (BigUint::from(1u8) << 256) - 1u8;
            full & mask
        };
        let negative = word != 0 && (self.0 & 0x0080_0000) != 0;
        let overflow =
            word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        DecodedCompact {
            value,
            negative,
            overflow,
        }
    }

    /// Encodes exactly as Core's `GetCompact(fNegative)`; `value` must be below 2^256.
    /// Never emits a mantissa with bit 0x00800000 set (that bit is the sign).
    pub fn encode(value: &BigUint, negative: bool) -> CompactTarget {
        let mut size = value.bits().div_ceil(8) as u32;
        let mut compact: u32 = if size <= 3 {
            (value.to_u64().unwrap_or(0) << (8 * (3 - size))) as u32
        } else {
            (value >> (8 * (size - 3)) as usize).to_u32().unwrap_or(0)
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact |= size << 24;
        if negative && (compact & 0x007f_ffff) != 0 {
            compact |= 0x0080_0000;
        }
        CompactTarget(compact)
    }

    /// Bitcoin difficulty ("bdiff") of these nBits exactly as Bitcoin Core's `GetDifficulty`
    /// (src/rpc/blockchain.cpp) computes it for `getdifficulty`, `getmininginfo`,
    /// `getblockchaininfo` and `getblockheader`: `0xffff / mantissa`, scaled by `256^(29 - size)`
    /// one factor of 256 at a time, in `f64`.
    ///
    /// It reads only the size byte and the 24-bit mantissa, so nBits that `SetCompact` calls
    /// negative (sign bit `0x00800000` set) still have a figure, as in Core (`0x1d80ffff` gives
    /// `0xffff / 0x80ffff`), and a zero mantissa gives infinity (Core divides by zero too). The
    /// same arithmetic, in the same order, makes the rounding Core's, bit for bit.
    pub fn bdiff(self) -> f64 {
        let mut shift = (self.0 >> 24) & 0xff;
        let mut diff = f64::from(0x0000_ffff_u32) / f64::from(self.0 & 0x00ff_ffff);
        while shift < 29 {
            diff *= 256.0;
            shift += 1;
        }
        while shift > 29 {
            diff /= 256.0;
            shift -= 1;
        }
        diff
    }
}

/// `0x1d00ffff` style.
impl fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0)
    }
}

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget(0x{:08x})", self.0)
    }
}

/// Error for [`CompactTarget::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not nBits: expected 8 hex digits, optionally with 0x, e.g. 1d00ffff")]
pub struct ParseCompactError(String);

/// Parses `1d00ffff` or `0x1d00ffff` (the way Bitcoin tools print nBits).
impl FromStr for CompactTarget {
    type Err = ParseCompactError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ParseCompactError(s.to_string()));
        }
        u32::from_str_radix(digits, 16)
            .map(CompactTarget)
            .map_err(|_| ParseCompactError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(hex: &str) -> BigUint {
        BigUint::parse_bytes(hex.as_bytes(), 16).unwrap()
    }

    /// Core's `bignum_SetCompact` test (src/test/arith_uint256_tests.cpp), row by row:
    /// (nBits, decoded value in hex, negative, overflow, re-encoded nBits with the sign).
    const CORE_TABLE: &[(u32, &str, bool, bool, u32)] = &[
        // Zero mantissas of every size decode to 0, never negative, and re-encode as 0.
        (0x0000_0000, "0", false, false, 0),
        (0x0012_3456, "0", false, false, 0),
        (0x0100_3456, "0", false, false, 0),
        (0x0200_0056, "0", false, false, 0),
        (0x0300_0000, "0", false, false, 0),
        (0x0400_0000, "0", false, false, 0),
        // Sign-bit twins of the zero rows: still zero, still not negative.
        (0x0092_3456, "0", false, false, 0),
        (0x0180_3456, "0", false, false, 0),
        (0x0280_0056, "0", false, false, 0),
        (0x0380_0000, "0", false, false, 0),
        (0x0480_0000, "0", false, false, 0),
        // Size 1 keeps only the top mantissa byte.
        (0x0112_3456, "12", false, false, 0x0112_0000),
        // Size 1 with the sign bit: 0x7e, negative.
        (0x01fe_dcba, "7e", true, false, 0x01fe_0000),
        (0x0212_3456, "1234", false, false, 0x0212_3400),
        (0x0312_3456, "123456", false, false, 0x0312_3456),
        (0x0412_3456, "12345600", false, false, 0x0412_3456),
        // Size 4 with the sign bit set: 0x12345600, negative.
        (0x0492_3456, "12345600", true, false, 0x0492_3456),
        // A mantissa with a leading zero byte re-encodes to the same bits.
        (0x0500_9234, "92340000", false, false, 0x0500_9234),
        // The largest size that still fits: 0x123456 * 2^232.
        (
            0x2012_3456,
            "1234560000000000000000000000000000000000000000000000000000000000",
            false,
            false,
            0x2012_3456,
        ),
    ];

    #[test]
    fn core_set_compact_table() {
        for &(bits, value, negative, overflow, reencoded) in CORE_TABLE {
            let d = CompactTarget::from_consensus(bits).decode();
            assert_eq!(d.value, big(value), "value of 0x{bits:08x}");
            assert_eq!(d.negative, negative, "negative flag of 0x{bits:08x}");
            assert_eq!(d.overflow, overflow, "overflow flag of 0x{bits:08x}");
            let again = CompactTarget::encode(&d.value, d.negative);
            assert_eq!(
                again.to_consensus(),
                reencoded,
                "re-encoding of 0x{bits:08x}"
            );
        }
    }

    #[test]
    fn overflow_is_flagged() {
        // 0xff123456: size 255 overflows.
        assert!(CompactTarget::from_consensus(0xff12_3456).decode().overflow);
        // Core's boundary cases: 0x2101_0000 fits (0x01 << 8*30 ... size 33 with word <= 0xffff).
        assert!(!CompactTarget::from_consensus(0x2100_ffff).decode().overflow);
        assert!(CompactTarget::from_consensus(0x2101_0000).decode().overflow);
        assert!(!CompactTarget::from_consensus(0x2200_00ff).decode().overflow);
        assert!(CompactTarget::from_consensus(0x2200_0100).decode().overflow);
        assert!(CompactTarget::from_consensus(0x2300_0001).decode().overflow);
    }

    #[test]
    fn encoding_never_sets_the_sign_bit() {
        // Core's bignum_SetCompact cases (docs/ARCHITECTURE.md §6): the value 0x80 encodes as 0x02008000.
        assert_eq!(
            CompactTarget::encode(&BigUint::from(0x80u32), false).to_consensus(),
            0x0200_8000
        );
        // Difficulty-1 target round-trips to Bitcoin's genesis bits.
        let diff1 = big("ffff0000000000000000000000000000000000000000000000000000");
        assert_eq!(
            CompactTarget::encode(&diff1, false).to_consensus(),
            0x1d00_ffff
        );
        // Every power of two re-encodes without the sign bit.
        for shift in 0..256 {
            let bits = CompactTarget::encode(&(BigUint::from(1u8) << shift), false).to_consensus();
            assert_eq!(bits & 0x0080_0000, 0, "2^{shift} encoded as 0x{bits:08x}");
        }
    }

    #[test]
    fn parses_hex_with_or_without_prefix() {
        assert_eq!(
            "1d00ffff".parse::<CompactTarget>().unwrap().to_consensus(),
            0x1d00ffff
        );
        assert_eq!(
            "0x207fffff"
                .parse::<CompactTarget>()
                .unwrap()
                .to_consensus(),
            0x207fffff
        );
        assert!("xyz".parse::<CompactTarget>().is_err());
        assert!("1d00ffff00".parse::<CompactTarget>().is_err());
        assert!("".parse::<CompactTarget>().is_err());
    }
}
