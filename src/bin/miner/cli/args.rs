//! Value parsers for clap: each names the flag's expected form in its error.

use anyhow::Result;
use miner::backend::NONCE_END;
use miner::block::Payout;
use miner::experiment::retarget::parse_rate;
use miner::pow::Difficulty;

pub(crate) fn parse_difficulty(s: &str) -> Result<Difficulty, String> {
    s.parse().map_err(|e| format!("{e}"))
}

pub(crate) fn parse_payout_arg(s: &str) -> Result<Payout, String> {
    Payout::parse(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_header(s: &str) -> Result<[u8; 80], String> {
    let t = s.trim();
    let bytes = hex::decode(t).map_err(|e| {
        format!("not hex ({e}); expected 160 hex digits, the 80-byte header in block order")
    })?;
    <[u8; 80]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "expected 160 hex digits (an 80-byte header), got {} digits ({} bytes)",
            t.len(),
            bytes.len()
        )
    })
}

pub(crate) fn parse_nonce(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("'{s}' is not a nonce; expected an integer from 0 to 4294967295"))
}

pub(crate) fn parse_count(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=NONCE_END).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a nonce count; expected an integer from 1 to 4294967296 (2^32)"
        )),
    }
}

/// Whole seconds from `600`, `10s`, `2m`, `1h`, `1d`; at least 1.
pub(crate) fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    if num.trim().is_empty() {
        return Err(format!(
            "'{s}' is not a duration; use e.g. 600, 10s, 2m or 1h"
        ));
    }
    let mult = match unit {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}'; use s, m, h or d, e.g. 10s or 2m"
            ))
        }
    };
    match num.trim().parse::<f64>() {
        Ok(v)
            if v.is_finite()
                && v * mult >= 1.0
                && v * mult <= 1e12
                && (v * mult).fract() == 0.0 =>
        {
            Ok((v * mult) as i64)
        }
        Ok(v)
            if v.is_finite() && v * mult > 0.0 && (v * mult).fract() != 0.0 && v * mult >= 1.0 =>
        {
            Err(format!(
                "'{s}' is not a whole number of seconds (block times are whole seconds)"
            ))
        }
        Ok(_) => Err(format!("'{s}' must be at least 1 second, e.g. 10s or 2m")),
        Err(_) => Err(format!(
            "'{s}' is not a duration; use e.g. 600, 10s, 2m or 1h"
        )),
    }
}

pub(crate) fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a duration; expected seconds between 0 and 3600, e.g. 2 or 0.5"
        )),
    }
}

/// A finite number.
pub(crate) fn parse_f64(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{text}: expected a number"))
}

/// A share of the hash rate (or stake): strictly between 0 and 1.
pub(crate) fn share(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "{text}: a share of the hash rate is between 0 and 1, e.g. 0.1"
        ))
    }
}

/// A selfish pool's share: strictly between 0 and 1/2.
pub(crate) fn pool_share(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 && v < 0.5 {
        Ok(v)
    } else {
        Err(format!(
            "{text}: a selfish pool's share is between 0 and 0.5 (from half the hash rate it simply out-mines everyone), e.g. 0.3"
        ))
    }
}

/// A probability or fraction: 0 to 1.
pub(crate) fn unit(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{text}: expected a value from 0 to 1"))
    }
}

/// A number above 0.
pub(crate) fn positive(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{text}: expected a number above 0"))
    }
}

/// A hash rate in H/s with an optional k/M/G/T/P/E suffix that `accept` takes, or an error
/// that says `expected` and gives an example.
fn hash_rate(text: &str, accept: impl Fn(f64) -> bool, expected: &str) -> Result<f64, String> {
    parse_rate(text)
        .filter(|r| accept(*r))
        .ok_or_else(|| format!("{text}: expected {expected}"))
}

/// `experiment --hashrate`: the live miners' hash rate, at least 100 H/s.
pub(crate) fn hashrate(text: &str) -> Result<f64, String> {
    hash_rate(
        text,
        |r| r >= 100.0,
        "a hash rate of at least 100 H/s, e.g. 50k",
    )
}

/// A number of 0 or more.
pub(crate) fn non_negative(text: &str) -> Result<f64, String> {
    let v = parse_f64(text)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{text}: expected a number of 0 or more"))
    }
}

/// `experiment pos --pow-hashrate`: a hash rate above 0.
pub(crate) fn rate(text: &str) -> Result<f64, String> {
    hash_rate(text, |r| r > 0.0, "a hash rate in H/s, e.g. 50M or 6e20")
}

/// `--max-hashrate`: H/s, with k/M/G/T.
pub(crate) fn parse_max_hashrate(text: &str) -> Result<f64, String> {
    hash_rate(
        text,
        |_| true,
        "a hash rate above 0 in H/s, e.g. 500k or 2M",
    )
}
