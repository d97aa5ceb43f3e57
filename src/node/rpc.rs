//! JSON-RPC method handlers, answering as Bitcoin Core does.

use crate::backend::Backend;
use crate::block::{header_bits, Payout};
use crate::chain::{Accepted, Chain, SubmitError};
use crate::hash::display_hash;
use crate::mining::{next_template, search, unix_now, SearchOutcome};
use crate::pow::Target;
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::{Block, ScriptBuf};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
    fn params(message: impl Into<String>) -> RpcError {
        RpcError::new(-32602, format!("Invalid params: {}", message.into()))
    }
}

/// Core's codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMETER: i64 = -8;
const INVALID_ADDRESS: i64 = -5;
const DESERIALIZATION_ERROR: i64 = -22;
const MISC_ERROR: i64 = -1;

/// What the handlers share: the chain (one writer at a time), a condition variable that wakes
/// longpolls when the tip changes, and the backend `generatetoaddress` mines with.
pub struct NodeState {
    chain: Mutex<Chain>,
    tip_changed: Condvar,
    backend: Box<dyn Backend>,
    stop: AtomicBool,
    /// How long a longpoll waits for a new tip before answering anyway.
    pub longpoll_timeout: Duration,
}

impl NodeState {
    pub fn new(chain: Chain, backend: Box<dyn Backend>) -> NodeState {
        NodeState {
            chain: Mutex::new(chain),
            tip_changed: Condvar::new(),
            backend,
            stop: AtomicBool::new(false),
            longpoll_timeout: Duration::from_secs(60),
        }
    }

    fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `stop` was called.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Wakes every longpoll so the server can exit.
    pub fn shut_down(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.tip_changed.notify_all();
    }

    /// Tip height and hash, for logs.
    pub fn tip(&self) -> (u32, String) {
        let c = self.chain();
        (c.height(), display_hash(&c.tip().hash))
    }
}

/// Handles one HTTP body: returns the HTTP status and the JSON reply, as Core's HTTP server does
/// (JSON-RPC 1.0 errors come with status 500, or 404 for an unknown method; 2.0 always 200).
pub fn dispatch(state: &NodeState, body: &[u8]) -> (u16, String) {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let reply = json!({"result": null, "error": {"code": PARSE_ERROR, "message": format!("Parse error: {e}")}, "id": null});
            return (500, reply.to_string());
        }
    };
    match request {
        Value::Array(batch) => {
            let replies: Vec<Value> = batch.iter().map(|r| one(state, r).1).collect();
            (200, Value::Array(replies).to_string())
        }
        single => {
            let (status, reply) = one(state, &single);
            (status, reply.to_string())
        }
    }
}

fn one(state: &NodeState, request: &Value) -> (u16, Value) {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let v2 = request.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let result = match request.get("method").and_then(Value::as_str) {
        None => Err(RpcError::new(
            INVALID_REQUEST,
            "Invalid Request: no method string",
        )),
        Some(method) => {
            let params = match request.get("params") {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => Ok(a.clone()),
                Some(_) => Err(RpcError::params("params must be an array")),
            };
            params.and_then(|p| call(state, method, &p))
        }
    };
    match (result, v2) {
        (Ok(value), false) => (200, json!({"result": value, "error": null, "id": id})),
        (Ok(value), true) => (200, json!({"jsonrpc": "2.0", "result": value, "id": id})),
        (Err(e), v2) => {
            let error = json!({"code": e.code, "message": e.message});
            if v2 {
                (200, json!({"jsonrpc": "2.0", "error": error, "id": id}))
            } else {
                let status = if e.code == METHOD_NOT_FOUND { 404 } else { 500 };
                (status, json!({"result": null, "error": error, "id": id}))
            }
        }
    }
}

fn arg_u64(params: &[Value], i: usize, name: &str, default: Option<u64>) -> Result<u64, RpcError> {
    match params.get(i) {
        None | Some(Value::Null) => {
            default.ok_or_else(|| RpcError::params(format!("missing {name}")))
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            RpcError::params(format!("{name} must be a non-negative integer, got {v}"))
        }),
    }
}

fn arg_str<'a>(params: &'a [Value], i: usize, name: &str) -> Result<&'a str, RpcError> {
    match params.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(RpcError::params(format!(
            "{name} must be a string, got {v}"
        ))),
        None => Err(RpcError::params(format!("missing {name}"))),
    }
}

fn no_more(params: &[Value], n: usize, usage: &str) -> Result<(), RpcError> {
    if params.len() > n {
        return Err(RpcError::params(format!(
            "too many arguments; usage: {usage}"
        )));
    }
    Ok(())
}

/// A block hash argument in display order.
fn arg_hash(params: &[Value], i: usize) -> Result<[u8; 32], RpcError> {
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

fn call(state: &NodeState, method: &str, params: &[Value]) -> Result<Value, RpcError> {
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

/// The difficulty RPCs show for a block's nBits: Core's `GetDifficulty`, from the nBits alone
/// (so nBits with the sign bit set still give Core's non-zero figure).
fn bdiff(bits: crate::pow::CompactTarget) -> f64 {
    bits.bdiff()
}

/// Blocks until the tip differs from `longpollid`, the timeout passes, or the node stops.
fn wait_for_new_tip(state: &NodeState, longpollid: &str) {
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

/// Core's `getnetworkhashps`: work of the last `n` blocks over the time they span.
fn network_hashps(chain: &Chain, n: u64) -> f64 {
    let height = chain.height();
    let n = (n.min(u64::from(height))) as u32;
    if n == 0 {
        return 0.0;
    }
    let (Some(tip), Some(first)) = (chain.get(height), chain.get(height - n)) else {
        return 0.0;
    };
    let span = f64::from(tip.block.header.time) - f64::from(first.block.header.time);
    if span <= 0.0 {
        return 0.0;
    }
    (tip.chain_work.to_f64() - first.chain_work.to_f64()) / span
}

fn header_json(chain: &Chain, hash: &[u8; 32]) -> Value {
    let Some(e) = chain.by_hash(hash) else {
        return Value::Null;
    };
    let on_active = chain.get(e.height).is_some_and(|a| a.hash == *hash);
    let confirmations: i64 = if on_active {
        i64::from(chain.height()) - i64::from(e.height) + 1
    } else {
        -1
    };
    let h = &e.block.header;
    let mut v = json!({
        "hash": display_hash(hash),
        "confirmations": confirmations,
        "height": e.height,
        "version": h.version.to_consensus(),
        "versionHex": format!("{:08x}", h.version.to_consensus()),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "nonce": h.nonce,
        "bits": format!("{:08x}", h.bits.to_consensus()),
        "difficulty": bdiff(header_bits(h)),
        "chainwork": format!("{:064x}", e.chain_work.as_biguint()),
        "nTx": e.block.txdata.len(),
    });
    if e.height > 0 {
        v["previousblockhash"] = json!(display_hash(&e.parent));
    }
    if on_active {
        if let Some(next) = chain.get(e.height + 1) {
            v["nextblockhash"] = json!(display_hash(&next.hash));
        }
    }
    v
}

/// A BIP 22 template with the fields classic CPU miners read.
fn template(chain: &Chain) -> Value {
    let tip = chain.tip();
    let height = tip.height + 1;
    let bits = chain.next_bits();
    let target = Target::from_compact(bits)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mintime = chain.median_time_past().saturating_add(1);
    json!({
        "capabilities": ["proposal"],
        "version": 0x2000_0000,
        "rules": [],
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": display_hash(&tip.hash),
        "transactions": [],
        "coinbaseaux": {"flags": ""},
        "coinbasevalue": chain.params().subsidy(height).to_sat(),
        "longpollid": display_hash(&tip.hash),
        "target": target,
        "mintime": mintime,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sigoplimit": 20000,
        "sizelimit": crate::chain::MAX_BLOCK_SIZE,
        "weightlimit": 4 * crate::chain::MAX_BLOCK_SIZE,
        "curtime": unix_now().max(mintime),
        "bits": format!("{:08x}", bits.to_consensus()),
        "height": height,
    })
}
