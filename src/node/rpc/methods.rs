//! The RPC methods: one match arm each, answering as Bitcoin Core does.

use super::args::{arg_hash, arg_str, arg_u64, no_more};
use super::envelope::{
    RpcError, DESERIALIZATION_ERROR, INVALID_ADDRESS, INVALID_PARAMETER, METHOD_NOT_FOUND,
    MISC_ERROR,
};
use super::render::{bdiff, header_json, network_hashps, template};
use super::NodeState;
use crate::block::{header_bits, Payout};
use crate::chain::{Accepted, SubmitError};
use crate::hash::display_hash;
use crate::mining::{next_template, search, unix_now, SearchOutcome};
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::{Block, ScriptBuf};
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

pub(super) fn call(state: &NodeState, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    match method {
        "getblockcount" => {
            no_more(params, 0, "getblockcount")?;
            Ok(json!(state.chain().height()))
        }
        "getbestblockhash" => {
            no_more(params, 0, "getbestblockhash")?;
            Ok(json!(display_hash(&state.chain().tip().hash)))
        }
        "getblockhash" => {
            no_more(params, 1, "getblockhash height")?;
            let height = arg_u64(params, 0, "height", None)?;
            let chain = state.chain();
            u32::try_from(height)
                .ok()
                .and_then(|h| chain.get(h))
                .map(|e| json!(display_hash(&e.hash)))
                .ok_or_else(|| RpcError::new(INVALID_PARAMETER, "Block height out of range"))
        }
        "getblockheader" => {
            no_more(params, 2, "getblockheader blockhash (verbose)")?;
            let hash = arg_hash(params, 0)?;
            let verbose = params.get(1).and_then(Value::as_bool).unwrap_or(true);
            let chain = state.chain();
            let e = chain
                .by_hash(&hash)
                .ok_or_else(|| RpcError::new(INVALID_ADDRESS, "Block not found"))?;
            if !verbose {
                return Ok(json!(hex::encode(serialize(&e.block.header))));
            }
            Ok(header_json(&chain, &hash))
        }
        "getblock" => {
            no_more(params, 2, "getblock blockhash (verbosity)")?;
            let hash = arg_hash(params, 0)?;
            let verbosity = match params.get(1) {
                None | Some(Value::Null) => 1,
                Some(Value::Bool(b)) => u64::from(*b),
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| RpcError::params("verbosity must be 0 or 1"))?,
            };
            let chain = state.chain();
            let e = chain
                .by_hash(&hash)
                .ok_or_else(|| RpcError::new(INVALID_ADDRESS, "Block not found"))?;
            match verbosity {
                0 => Ok(json!(hex::encode(serialize(&e.block)))),
                1 => {
                    let mut v = header_json(&chain, &hash);
                    let size = serialize(&e.block).len();
                    v["size"] = json!(size);
                    v["strippedsize"] = json!(size);
                    v["weight"] = json!(size * 4);
                    v["tx"] = json!(e
                        .block
                        .txdata
                        .iter()
                        .map(|t| t.compute_txid().to_string())
                        .collect::<Vec<_>>());
                    Ok(v)
                }
                _ => Err(RpcError::new(INVALID_PARAMETER, "verbosity must be 0 or 1")),
            }
        }
        "getdifficulty" => {
            no_more(params, 0, "getdifficulty")?;
            let chain = state.chain();
            Ok(json!(bdiff(header_bits(&chain.tip().block.header))))
        }
        "getmininginfo" => {
            no_more(params, 0, "getmininginfo")?;
            let chain = state.chain();
            Ok(json!({
                "blocks": chain.height(),
                "difficulty": bdiff(header_bits(&chain.tip().block.header)),
                "networkhashps": network_hashps(&chain, 120),
                "pooledtx": 0,
                "chain": chain.params().name,
                "warnings": "",
            }))
        }
        "getblockchaininfo" => {
            no_more(params, 0, "getblockchaininfo")?;
            let chain = state.chain();
            let tip = chain.tip();
            Ok(json!({
                "chain": chain.params().name,
                "blocks": chain.height(),
                "headers": chain.height(),
                "bestblockhash": display_hash(&tip.hash),
                "difficulty": bdiff(header_bits(&tip.block.header)),
                "time": tip.block.header.time,
                "mediantime": chain.median_time_past(),
                "verificationprogress": 1.0,
                "initialblockdownload": false,
                "chainwork": format!("{:064x}", tip.chain_work.as_biguint()),
                "pruned": false,
                "warnings": "",
            }))
        }
        "getnetworkhashps" => {
            no_more(params, 2, "getnetworkhashps (nblocks) (height)")?;
            let n = arg_u64(params, 0, "nblocks", Some(120))?;
            Ok(json!(network_hashps(&state.chain(), n)))
        }
        "getblocktemplate" => {
            no_more(
                params,
                1,
                "getblocktemplate ({\"rules\": [...], \"longpollid\": ...})",
            )?;
            let request = params.first().cloned().unwrap_or(Value::Null);
            if !(request.is_null() || request.is_object()) {
                return Err(RpcError::params("template_request must be an object"));
            }
            if let Some(id) = request.get("longpollid").and_then(Value::as_str) {
                wait_for_new_tip(state, id);
            }
            Ok(template(&state.chain()))
        }
        "submitblock" => {
            no_more(params, 2, "submitblock hexdata (dummy)")?;
            let data = arg_str(params, 0, "hexdata")?;
            let block: Block = hex::decode(data.trim())
                .ok()
                .and_then(|b| deserialize(&b).ok())
                .ok_or_else(|| RpcError::new(DESERIALIZATION_ERROR, "Block decode failed"))?;
            let outcome = state.chain().submit(block, unix_now());
            match outcome {
                Ok(Accepted::Tip) => {
                    state.tip_changed.notify_all();
                    Ok(Value::Null)
                }
                Ok(Accepted::SideBranch) => Ok(json!("inconclusive")),
                Err(SubmitError::Rejected(r)) => Ok(json!(r.to_string())),
                Err(SubmitError::Store(e)) => {
                    Err(RpcError::new(MISC_ERROR, format!("block not stored: {e}")))
                }
            }
        }
        "generatetoaddress" => {
            no_more(params, 3, "generatetoaddress nblocks address (maxtries)")?;
            let n = arg_u64(params, 0, "nblocks", None)?;
            let address = arg_str(params, 1, "address")?;
            let payout = Payout::parse(address).map_err(|_| {
                RpcError::new(
                    INVALID_ADDRESS,
                    format!("Error: Invalid address '{address}'"),
                )
            })?;
            // Core's DecodeDestination refuses another network's address with the same -5.
            let network = state.chain().params().network;
            payout.check_network(network).map_err(|e| {
                RpcError::new(INVALID_ADDRESS, format!("Error: Invalid address: {e}"))
            })?;
            let payout: ScriptBuf = payout.script;
            let mut hashes = Vec::new();
            let progress = AtomicU64::new(0);
            // The chain is locked only to build each template and to submit: other calls go on
            // while the backend searches. A block made stale meanwhile is mined again.
            let mut attempts = 0;
            while (hashes.len() as u64) < n && attempts < n + 100 {
                attempts += 1;
                let template = next_template(&state.chain(), &payout)
                    .map_err(|e| RpcError::new(MISC_ERROR, e.to_string()))?;
                let found = match search(&template, state.backend.as_ref(), &state.stop, &progress)
                {
                    Ok(SearchOutcome::Found(found)) => found,
                    Ok(SearchOutcome::Cancelled { .. }) => break, // the node is stopping
                    Err(e) => return Err(RpcError::new(MISC_ERROR, e.to_string())),
                };
                let outcome = state.chain().submit(found.block, unix_now());
                if let Ok(Accepted::Tip) = outcome {
                    hashes.push(json!(display_hash(&found.hash)));
                    state.tip_changed.notify_all();
                }
            }
            Ok(Value::Array(hashes))
        }
        "stop" => {
            no_more(params, 0, "stop")?;
            state.shut_down();
            Ok(json!("miner node stopping"))
        }
        _ => Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")),
    }
}

/// Blocks until the tip differs from `longpollid`, the timeout passes, or the node stops.
pub(super) fn wait_for_new_tip(state: &NodeState, longpollid: &str) {
    let deadline = Instant::now() + state.longpoll_timeout;
    let mut chain = state.chain();
    while display_hash(&chain.tip().hash) == longpollid && !state.stopping() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        chain = state
            .tip_changed
            .wait_timeout(chain, left.min(Duration::from_millis(500)))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
