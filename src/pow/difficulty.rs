//! The seed's difficulty `D`: the expected number of hashes per block, `target = floor(M / D)`.

use super::{ratio_f64, Target};
use num_bigint::BigUint;
use num_traits::{One, Zero};
use std::fmt;
use std::str::FromStr;

/// Why a difficulty was refused. The messages say what is accepted; the CLI prefixes the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDifficultyError {
    /// The text (the field) does not parse as a number.
    #[error("'{0}' is not a number; use a number such as 250000, 1e6 or 1.5e9")]
    NotANumber(String),
    /// Infinite or NaN.
    #[error("difficulty must be finite; use a number such as 250000, 1e6 or 1.5e9")]
    NotFinite,
    /// Zero or negative.
    #[error("difficulty must be positive (it is the expected number of hashes per block); use a number such as 250000 or 1e6")]
    NotPositive,
    /// Positive but below 1: fewer than one expected hash per block.
    #[error("difficulty must be at least 1 (it is the expected number of hashes per block)")]
    TooSmall,
    /// So large that the target would be 0.
    #[error("difficulty is too large: the target floor((2^256-1)/D) would be 0 (D must be below about 1.16e77)")]
    TooLarge,
}

/// Difficulty `D` in the seed's sense, kept as an exact ratio so `1.5e9` or `250000.25` give the
/// exact `floor(M / D)`. Always at least 1.
#[derive(Clone, PartialEq, Eq)]
pub struct Difficulty {
    numerator: BigUint,
    denominator: BigUint,
}

fn max_value() -> BigUint {
    Target::MAX.to_biguint()
}

impl Difficulty {
    fn from_ratio(
        numerator: BigUint,
        denominator: BigUint,
    ) -> Result<Difficulty, ParseDifficultyError> {
        if numerator.is_zero() {
            return Err(ParseDifficultyError::NotPositive);
        }
        if numerator < denominator {
            return Err(ParseDifficultyError::TooSmall);
        }
        if max_value() * &denominator / &numerator == BigUint::zero() {
            return Err(ParseDifficultyError::TooLarge);
        }
        Ok(Difficulty {
            numerator,
            denominator,
        })
    }

    /// A difficulty from a float (exactly its binary value).
    pub fn from_f64(d: f64) -> Result<Difficulty, ParseDifficultyError> {
        let (n, den) = positive_f64_to_ratio(d)?;
        Difficulty::from_ratio(n, den)
    }

    /// `D = M / target`, exactly.
    pub fn from_target(target: &Target) -> Difficulty {
        Difficulty {
            numerator: max_value(),
            denominator: target.to_biguint().max(BigUint::one()),
        }
    }

    /// `D = bdiff * M / DIFF1` (about `bdiff * 4295032833.0000153`).
    pub fn from_bdiff(bdiff: f64) -> Result<Difficulty, ParseDifficultyError> {
        let (n, d) = positive_f64_to_ratio(bdiff)?;
        Difficulty::from_ratio(n * max_value(), d * Target::DIFF1.to_biguint())
    }

    /// `target = floor(M / D)`; never zero (checked on construction).
    pub fn to_target(&self) -> Target {
        let value = max_value() * &self.denominator / &self.numerator;
        Target::from_biguint(&value).unwrap_or(Target::MAX)
    }

    /// Bitcoin difficulty of the same threshold: `D * DIFF1 / M`.
    pub fn to_bdiff(&self) -> f64 {
        ratio_f64(
            &(&self.numerator * Target::DIFF1.to_biguint()),
            &(&self.denominator * max_value()),
        )
    }

    /// The value as a float (expected hashes per block).
    pub fn as_f64(&self) -> f64 {
        ratio_f64(&self.numerator, &self.denominator)
    }
}

/// Converts a positive finite float to an exact ratio of integers.
pub(super) fn positive_f64_to_ratio(x: f64) -> Result<(BigUint, BigUint), ParseDifficultyError> {
    if x.is_nan() {
        return Err(ParseDifficultyError::NotANumber(x.to_string()));
    }
    if x.is_infinite() {
        return Err(ParseDifficultyError::NotFinite);
    }
    if x <= 0.0 {
        return Err(ParseDifficultyError::NotPositive);
    }
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mantissa, exp2) = if exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), exponent - 1075)
    };
    let m = BigUint::from(mantissa);
    if exp2 >= 0 {
        Ok((m << exp2 as usize, BigUint::one()))
    } else {
        Ok((m, BigUint::one() << (-exp2) as usize))
    }
}

/// Accepts integers (`250000`), decimals (`2.5`) and scientific notation (`1e6`, `1.5E9`).
impl FromStr for Difficulty {
    type Err = ParseDifficultyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let not_a_number = || ParseDifficultyError::NotANumber(s.to_string());
        let lower = t.to_ascii_lowercase();
        if lower.contains("inf") {
            return Err(ParseDifficultyError::NotFinite);
        }
        if let Some(rest) = t.strip_prefix('-') {
            // A well-formed negative number gets the "must be positive" message.
            return match rest.parse::<Difficulty>() {
                Ok(_)
                | Err(ParseDifficultyError::TooSmall)
                | Err(ParseDifficultyError::TooLarge) => Err(ParseDifficultyError::NotPositive),
                Err(ParseDifficultyError::NotPositive) => Err(ParseDifficultyError::NotPositive),
                Err(_) => Err(not_a_number()),
            };
        }
        let t = t.strip_prefix('+').unwrap_or(t);
        let (mantissa, exponent) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        let digits_ok = |d: &str| d.chars().all(|c| c.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !digits_ok(int_part)
            || !digits_ok(frac_part)
        {
            return Err(not_a_number());
        }
        let exp10: i64 = match exponent {
            None => 0,
            Some(e) => {
                let body = e.strip_prefix(['+', '-']).unwrap_or(e);
                if body.is_empty() || !digits_ok(body) {
                    return Err(not_a_number());
                }
                // Anything past 1e±400 is far outside [1, 1.16e77]; don't build huge integers.
                match e.parse::<i64>() {
                    Ok(v) if v > 400 => return Err(ParseDifficultyError::TooLarge),
                    Ok(v) if v < -400 => return Err(ParseDifficultyError::TooSmall),
                    Ok(v) => v,
                    Err(_) if e.starts_with('-') => return Err(ParseDifficultyError::TooSmall),
                    Err(_) => return Err(ParseDifficultyError::TooLarge),
                }
            }
        };
        let all_digits = format!("{int_part}{frac_part}");
        if all_digits.len() > 400 {
            return Err(not_a_number());
        }
        let value = BigUint::parse_bytes(all_digits.as_bytes(), 10).unwrap_or_default();
        let scale = exp10 - frac_part.len() as i64;
        let ten = BigUint::from(10u8);
        let (numerator, denominator) = if scale >= 0 {
            (value * ten.pow(scale as u32), BigUint::one())
        } else {
            (value, ten.pow((-scale) as u32))
        };
        Difficulty::from_ratio(numerator, denominator)
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.as_f64();
        if v < 1e15 && v.fract() == 0.0 {
            write!(f, "{v:.0}")
        } else if v < 1e6 {
            write!(f, "{v:.3}")
        } else {
            write!(f, "{v:.6e}")
        }
    }
}

impl fmt::Debug for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Difficulty({}/{})", self.numerator, self.denominator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::CompactTarget;

    #[test]
    fn parses_the_accepted_forms_exactly() {
        let m = max_value();
        for (text, expected_target) in [
            ("250000", &m / 250_000u32),
            ("1e6", &m / 1_000_000u32),
            ("1.5e9", &m * 2u8 / 3_000_000_000u64),
            ("2.5", &m * 2u8 / 5u8),
            (" 1E3 ", &m / 1000u32),
            ("+42", &m / 42u8),
            ("1", m.clone()),
            ("0.5e1", &m / 5u8),
        ] {
            let d: Difficulty = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d.to_target().to_biguint(), expected_target, "{text}");
        }
    }

    #[test]
    fn refuses_bad_values_with_the_reason() {
        use ParseDifficultyError::*;
        for (text, err) in [
            ("0", NotPositive),
            ("0.0", NotPositive),
            ("-5", NotPositive),
            ("-1e6", NotPositive),
            ("NaN", NotANumber("NaN".into())),
            ("abc", NotANumber("abc".into())),
            ("", NotANumber("".into())),
            ("1e", NotANumber("1e".into())),
            ("1..2", NotANumber("1..2".into())),
            ("inf", NotFinite),
            ("0.5", TooSmall),
            ("1e-3", TooSmall),
            ("1e78", TooLarge),
            ("1e100000", TooLarge),
        ] {
            assert_eq!(text.parse::<Difficulty>(), Err(err), "{text:?}");
        }
    }

    #[test]
    fn difficulty_target_bdiff_round_trips() {
        // D -> target -> D keeps 12 significant digits for D far below 2^224.
        for d in [1.0, 2.0, 5e4, 1e6, 1.5e9, 4295032833.0, 1e15, 1e30] {
            let back = Difficulty::from_f64(d)
                .unwrap()
                .to_target()
                .difficulty()
                .as_f64();
            assert!(((back - d) / d).abs() < 1e-12, "{d} -> {back}");
        }
        // bdiff 1 is nBits 0x1d00ffff, which is D = 4295032833.0000153 (= 2^48/0xffff ...).
        let t = Target::from_compact(CompactTarget::from_consensus(0x1d00ffff)).unwrap();
        let d = t.difficulty().as_f64();
        assert!((d - 4_295_032_833.000_015).abs() < 1e-3, "{d}");
        assert_eq!(Difficulty::from_bdiff(1.0).unwrap().to_target(), t);
        // D -> bdiff -> D.
        for d in [5e4, 1e6, 1e12] {
            let diff = Difficulty::from_f64(d).unwrap();
            let bdiff = diff.to_bdiff();
            assert!((bdiff * 4_295_032_833.000_015 / d - 1.0).abs() < 1e-12);
            let back = Difficulty::from_bdiff(bdiff).unwrap().as_f64();
            assert!(((back - d) / d).abs() < 1e-12, "{d} -> {bdiff} -> {back}");
        }
        // Target <-> bdiff for a real mainnet nBits (block 125552: bdiff 244112.49).
        let t = Target::from_compact(CompactTarget::from_consensus(0x1a44b9f2)).unwrap();
        assert!(
            (t.bdiff() - 244_112.487_774_77).abs() < 1e-3,
            "{}",
            t.bdiff()
        );
        assert_eq!(
            Target::from_bdiff(t.bdiff()).unwrap().to_compact_lossy(),
            CompactTarget::from_consensus(0x1a44b9f2)
        );
    }
}
