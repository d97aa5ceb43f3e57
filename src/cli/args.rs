//! Value parsers for clap: each names the flag's expected form in its error.

use anyhow::Result;
use miner::backend::NONCE_END;
use miner::block::Payout;
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
