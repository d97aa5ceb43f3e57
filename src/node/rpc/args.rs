//! Positional RPC parameters, with errors worded as Core's.

use super::envelope::{RpcError, INVALID_PARAMETER};
use serde_json::Value;

pub(super) fn arg_u64(
    params: &[Value],
    i: usize,
    name: &str,
    default: Option<u64>,
) -> Result<u64, RpcError> {
    match params.get(i) {
        None | Some(Value::Null) => {
            default.ok_or_else(|| RpcError::params(format!("missing {name}")))
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            RpcError::params(format!("{name} must be a non-negative integer, got {v}"))
        }),
    }
}

pub(super) fn arg_str<'a>(params: &'a [Value], i: usize, name: &str) -> Result<&'a str, RpcError> {
    match params.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(RpcError::params(format!(
            "{name} must be a string, got {v}"
        ))),
        None => Err(RpcError::params(format!("missing {name}"))),
    }
}

pub(super) fn no_more(params: &[Value], n: usize, usage: &str) -> Result<(), RpcError> {
    if params.len() > n {
        return Err(RpcError::params(format!(
            "too many arguments; usage: {usage}"
        )));
    }
    Ok(())
}

/// A block hash argument in display order.
pub(super) fn arg_hash(params: &[Value], i: usize) -> Result<[u8; 32], RpcError> {
    let s = arg_str(params, i, "blockhash")?;
    let bytes = hex::decode(s)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMETER,
                format!(
                    "blockhash must be of length 64 hex digits (not {}, for '{s}')",
                    s.len()
                ),
            )
        })?;
    let mut raw: [u8; 32] = bytes.try_into().unwrap_or([0; 32]);
    raw.reverse();
    Ok(raw)
}
