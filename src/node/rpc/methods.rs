//! The RPC methods: one match arm each, answering as Bitcoin Core does.

use super::args::{arg_hash, arg_str, arg_u64, no_more};
use super::envelope::{
    RpcError, DESERIALIZATION_ERROR, INVALID_ADDRESS, INVALID_PARAMETER, METHOD_NOT_FOUND,
    MISC_ERROR,
};
use super::render::{self, bdiff, header_json, network_hashps, template};
use super::Context;
use crate::block::{header_bits, Payout};
use crate::chain::SubmitError;
use crate::hash::display_hash;
use crate::mining::{clock_wait, next_template, unix_now, SearchOutcome};
use crate::node::state::Source;
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Block, ScriptBuf};
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;

/// `submitblock`'s argument decoded: the hex (surrounding whitespace ignored) of a
/// consensus-encoded block, or Core's "Block decode failed".
pub(crate) fn decode_block_hex(data: &str) -> Result<Block, RpcError> {
    hex::decode(data.trim())
        .ok()
        .and_then(|b| deserialize(&b).ok())
        .ok_or_else(|| RpcError::new(DESERIALIZATION_ERROR, "Block decode failed"))
}

pub(super) fn call(ctx: &Context, method: &str, params: &[Value]) -> Result<Value, RpcError> {
    let state = &*ctx.state;
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
            // A longpoll's wait happened before dispatch, in the server (an async wait).
            Ok(template(&state.chain()))
        }
        "submitblock" => {
            no_more(params, 2, "submitblock hexdata (dummy)")?;
            let data = arg_str(params, 0, "hexdata")?;
            let block = decode_block_hex(data)?;
            match state.submit(block, Source::Rpc) {
                Ok(s) if s.is_tip() => Ok(Value::Null),
                Ok(_) => Ok(json!("inconclusive")),
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
            let mut attempts: u64 = 0;
            while (hashes.len() as u64) < n {
                if attempts >= n.saturating_add(100) {
                    return Err(short(&hashes, n, "too many blocks went stale while mining"));
                }
                attempts += 1;
                // Blocks faster than one a second push the median time ahead of the clock: wait
                // for the clock (without holding the chain) rather than mine blocks the chain
                // must refuse as time-too-new.
                while clock_wait(&state.chain(), unix_now()) > 0 {
                    if state.stopping() {
                        return Err(short(&hashes, n, "the node is stopping"));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let template = next_template(&state.chain(), &payout)
                    .map_err(|e| RpcError::new(MISC_ERROR, e.to_string()))?;
                let found = match state.search(&template, &progress) {
                    Ok(SearchOutcome::Found(found)) => found,
                    Ok(SearchOutcome::Cancelled { .. }) => {
                        return Err(short(&hashes, n, "the node is stopping"));
                    }
                    Err(e) => return Err(short(&hashes, n, &e.to_string())),
                };
                match state.submit(found.block, Source::Generate) {
                    Ok(s) if s.is_tip() => {
                        hashes.push(json!(display_hash(&found.hash)));
                    }
                    Err(SubmitError::Store(e)) => {
                        return Err(short(&hashes, n, &format!("block not stored: {e}")));
                    }
                    _ => {}
                }
            }
            Ok(Value::Array(hashes))
        }
        "validateaddress" => {
            no_more(params, 1, "validateaddress address")?;
            let address = arg_str(params, 0, "address")?;
            let network = state.chain().params().network;
            Ok(match checked_address(address, network) {
                Ok(a) => {
                    let mut v = address_json(&a);
                    v["isvalid"] = json!(true);
                    v
                }
                Err(e) => json!({"isvalid": false, "error_locations": [], "error": e.to_string()}),
            })
        }
        "getaddressinfo" => {
            no_more(params, 1, "getaddressinfo address")?;
            let address = arg_str(params, 0, "address")?;
            let network = state.chain().params().network;
            let a = checked_address(address, network)
                .map_err(|e| RpcError::new(INVALID_ADDRESS, e.to_string()))?;
            let mut v = address_json(&a);
            for key in ["ismine", "solvable", "iswatchonly", "ischange"] {
                v[key] = json!(false);
            }
            v["labels"] = json!([]);
            Ok(v)
        }
        "preciousblock" => {
            // The node always follows the most work; like Core it answers null for a known block.
            no_more(params, 1, "preciousblock blockhash")?;
            let hash = arg_hash(params, 0)?;
            if state.chain().by_hash(&hash).is_none() {
                return Err(RpcError::new(INVALID_ADDRESS, "Block not found"));
            }
            Ok(Value::Null)
        }
        "getnetworkinfo" => {
            no_more(params, 0, "getnetworkinfo")?;
            Ok(json!({
                "version": 270000,
                "subversion": concat!("/miner:", env!("CARGO_PKG_VERSION"), "/"),
                "protocolversion": 70016,
                "localservices": "0000000000000000",
                "localservicesnames": [],
                "localrelay": true,
                "timeoffset": 0,
                "networkactive": true,
                "connections": 0,
                "connections_in": 0,
                "connections_out": 0,
                "networks": [],
                "relayfee": 0.00001,
                "incrementalfee": 0.00001,
                "localaddresses": [],
                "warnings": "",
            }))
        }
        "getrawtransaction" => {
            no_more(params, 3, "getrawtransaction txid (verbose) (blockhash)")?;
            let txid = arg_hash(params, 0)?;
            let verbose = match params.get(1) {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(v) => v.as_u64().is_some_and(|n| n > 0),
            };
            let chain = state.chain();
            let found = (0..=chain.height()).rev().find_map(|h| {
                let e = chain.get(h)?;
                let tx = e
                    .block
                    .txdata
                    .iter()
                    .find(|t| t.compute_txid().to_byte_array() == txid)?;
                Some((e, tx))
            });
            let Some((entry, tx)) = found else {
                return Err(RpcError::new(
                    INVALID_ADDRESS,
                    "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
                ));
            };
            let hex = hex::encode(serialize(tx));
            if !verbose {
                return Ok(json!(hex));
            }
            let size = serialize(tx).len();
            let network = chain.params().network;
            Ok(json!({
                "hex": hex,
                "txid": tx.compute_txid().to_string(),
                "hash": tx.compute_wtxid().to_string(),
                "size": size,
                "vsize": tx.vsize(),
                "weight": tx.weight().to_wu(),
                "version": tx.version.0,
                "locktime": tx.lock_time.to_consensus_u32(),
                "vin": tx.input.iter().map(|i| render::tx_input(i, tx.is_coinbase())).collect::<Vec<_>>(),
                "vout": tx.output.iter().enumerate().map(|(n, o)| render::tx_output(n, o, network)).collect::<Vec<_>>(),
                "blockhash": display_hash(&entry.hash),
                "confirmations": chain.height() - entry.height + 1,
                "time": entry.block.header.time,
                "blocktime": entry.block.header.time,
            }))
        }
        "getchaintips" => {
            no_more(params, 0, "getchaintips")?;
            let chain = state.chain();
            let tips: Vec<Value> = chain
                .tips()
                .into_iter()
                .map(|tip| {
                    // Walk back to the active chain to find the branch length.
                    let mut e = tip;
                    let mut branchlen = 0u32;
                    while chain.get(e.height).map(|a| a.hash) != Some(e.hash) {
                        branchlen += 1;
                        match chain.by_hash(&e.parent) {
                            Some(p) => e = p,
                            None => break,
                        }
                    }
                    let status = if branchlen == 0 {
                        "active"
                    } else {
                        "valid-fork"
                    };
                    json!({
                        "height": tip.height,
                        "hash": display_hash(&tip.hash),
                        "branchlen": branchlen,
                        "status": status,
                    })
                })
                .collect();
            Ok(Value::Array(tips))
        }
        "getstratuminfo" => {
            no_more(params, 0, "getstratuminfo")?;
            match ctx.stratum.get() {
                Some(stats) => Ok(stats.to_json()),
                None => Err(RpcError::new(
                    MISC_ERROR,
                    "Stratum is off: start the node with --stratum [ADDR:]PORT",
                )),
            }
        }
        "uptime" => {
            no_more(params, 0, "uptime")?;
            Ok(json!(state.uptime()))
        }
        "getpeerinfo" => {
            no_more(params, 0, "getpeerinfo")?;
            let get = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            let geti =
                |c: &std::sync::atomic::AtomicI64| c.load(std::sync::atomic::Ordering::Relaxed);
            let peers: Vec<Value> = ctx
                .peers
                .list()
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id,
                        "addr": p.addr.to_string(),
                        "inbound": p.inbound,
                        "version": get(&p.version),
                        "subver": p.subver.lock().map(|s| s.clone()).unwrap_or_default(),
                        "startingheight": geti(&p.startingheight),
                        "synced_headers": geti(&p.synced_headers),
                        "synced_blocks": geti(&p.synced_blocks),
                        "conntime": p.conntime,
                        "bytessent": get(&p.bytessent),
                        "bytesrecv": get(&p.bytesrecv),
                        "banscore": p.banscore.load(std::sync::atomic::Ordering::Relaxed),
                        "blocks_in_flight": get(&p.blocks_in_flight),
                        "relay_delay_ms": get(&p.relay_delay_ms),
                    })
                })
                .collect();
            Ok(Value::Array(peers))
        }
        "listbanned" => {
            no_more(params, 0, "listbanned")?;
            let now = u64::from(crate::mining::unix_now());
            let bans: Vec<Value> = ctx
                .peers
                .bans()
                .into_iter()
                .map(|(ip, ban)| {
                    json!({
                        "address": subnet(ip),
                        "ban_created": ban.created,
                        "banned_until": ban.until,
                        "ban_duration": ban.until - ban.created,
                        "time_remaining": ban.until.saturating_sub(now),
                    })
                })
                .collect();
            Ok(Value::Array(bans))
        }
        "setban" => {
            no_more(params, 4, "setban")?;
            let target = params.first().and_then(Value::as_str).ok_or_else(|| {
                RpcError::new(
                    INVALID_PARAMETER,
                    "setban \"subnet\" \"add|remove\" ( bantime )",
                )
            })?;
            let ip = parse_ban_target(target)?;
            let seconds = match params.get(2) {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64() {
                    Some(0) => None,
                    Some(s) => Some(s),
                    None => {
                        return Err(RpcError::new(
                            INVALID_PARAMETER,
                            "bantime must be a whole number of seconds",
                        ))
                    }
                },
            };
            match params.get(1).and_then(Value::as_str) {
                Some("add") => {
                    if ctx.peers.is_banned(ip) {
                        return Err(RpcError::new(
                            CLIENT_NODE_ALREADY_ADDED,
                            "Error: IP/Subnet already banned",
                        ));
                    }
                    ctx.peers.ban(ip, seconds);
                    Ok(Value::Null)
                }
                Some("remove") => {
                    if !ctx.peers.unban(ip) {
                        return Err(RpcError::new(
                            CLIENT_INVALID_IP_OR_SUBNET,
                            "Error: Unban failed. Requested address/subnet was not previously manually banned.",
                        ));
                    }
                    Ok(Value::Null)
                }
                _ => Err(RpcError::new(
                    INVALID_PARAMETER,
                    "setban: the command must be \"add\" or \"remove\"",
                )),
            }
        }
        "clearbanned" => {
            no_more(params, 0, "clearbanned")?;
            ctx.peers.clear_bans();
            Ok(Value::Null)
        }
        "getnodestats" => {
            no_more(params, 0, "getnodestats")?;
            let s = &state.blocks;
            let get = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            let mut figures = json!({
                "uptime": state.uptime(),
                "blocks_accepted": get(&s.blocks_accepted),
                "blocks_rejected": get(&s.blocks_rejected),
                "blocks_duplicate": get(&s.blocks_duplicate),
                "store_faults": get(&s.store_faults),
                "p2p_peers": ctx.peers.list().len(),
                "p2p_orphans": ctx.peers.orphans(),
                "p2p_banned": ctx.peers.bans().len(),
            });
            for (name, value) in ctx.transport.iter().flat_map(|t| t.counters()) {
                figures[name] = json!(value);
            }
            Ok(figures)
        }
        "stop" => {
            no_more(params, 0, "stop")?;
            state.shut_down();
            Ok(json!("miner node stopping"))
        }
        _ => Err(RpcError::new(METHOD_NOT_FOUND, "Method not found")),
    }
}

/// generatetoaddress's failure after `hashes` of `n` blocks: an error, never a short list.
fn short(hashes: &[Value], n: u64, why: &str) -> RpcError {
    RpcError::new(
        MISC_ERROR,
        format!(
            "generatetoaddress mined {} of {n} blocks, then failed: {why}; mined: {}",
            hashes.len(),
            Value::Array(hashes.to_vec())
        ),
    )
}

/// Why `validateaddress` / `getaddressinfo` refused an address; the text is Core's
/// `error` (and the RPC error's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum AddressError {
    /// Not an address at all (an output script or other text is not one).
    #[error("Invalid address")]
    Invalid,
    /// A valid address of another network than the chain's.
    #[error("Invalid address: another network's")]
    OtherNetwork,
}

/// An address of the chain's network (not an output script), or why not.
fn checked_address(
    text: &str,
    network: bitcoin::Network,
) -> Result<bitcoin::Address, AddressError> {
    let unchecked = text
        .trim()
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .map_err(|_| AddressError::Invalid)?;
    unchecked
        .require_network(network)
        .map_err(|_| AddressError::OtherNetwork)
}

/// The fields validateaddress and getaddressinfo share.
fn address_json(a: &bitcoin::Address) -> Value {
    let script = a.script_pubkey();
    let mut v = json!({
        "address": a.to_string(),
        "scriptPubKey": hex::encode(script.as_bytes()),
        "isscript": script.is_p2sh(),
        "iswitness": script.is_witness_program(),
    });
    if let Some(program) = a.witness_program() {
        v["witness_version"] = json!(program.version().to_num());
        v["witness_program"] = json!(hex::encode(program.program().as_bytes()));
    }
    v
}

/// Core's RPC_CLIENT_NODE_ALREADY_ADDED and RPC_CLIENT_INVALID_IP_OR_SUBNET.
const CLIENT_NODE_ALREADY_ADDED: i64 = -23;
const CLIENT_INVALID_IP_OR_SUBNET: i64 = -30;

/// `setban`'s address: an IP, or a single-address subnet (`/32`, `/128`) as Core writes them.
fn parse_ban_target(text: &str) -> Result<std::net::IpAddr, RpcError> {
    let (ip, mask) = match text.split_once('/') {
        Some((ip, mask)) => (ip, Some(mask)),
        None => (text, None),
    };
    let invalid = || {
        RpcError::new(
            CLIENT_INVALID_IP_OR_SUBNET,
            format!("Error: Invalid IP/Subnet {text}: give one address, e.g. 127.0.0.1 or 127.0.0.1/32 (wider subnets are not supported)"),
        )
    };
    let ip: std::net::IpAddr = ip.parse().map_err(|_| invalid())?;
    let full = if ip.is_ipv4() { "32" } else { "128" };
    match mask {
        None => Ok(ip),
        Some(m) if m == full => Ok(ip),
        Some(_) => Err(invalid()),
    }
}

/// An address as Core's `listbanned` writes it: a subnet of one.
fn subnet(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(_) => format!("{ip}/32"),
        std::net::IpAddr::V6(_) => format!("{ip}/128"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusals keep Core's wording (`validateaddress`'s `error`, `getaddressinfo`'s
    /// message), and an address of the chain's network passes.
    #[test]
    fn checked_address_refuses_with_core_text() {
        let mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
        let regtest = checked_address(mainnet, bitcoin::Network::Bitcoin)
            .map(|a| bitcoin::Address::from_script(&a.script_pubkey(), bitcoin::Network::Regtest));
        let Ok(Ok(regtest)) = regtest else {
            panic!("the BIP 173 address decodes: {regtest:?}");
        };
        assert!(checked_address(&regtest.to_string(), bitcoin::Network::Regtest).is_ok());
        let other = checked_address(mainnet, bitcoin::Network::Regtest);
        assert_eq!(other, Err(AddressError::OtherNetwork));
        assert_eq!(
            AddressError::OtherNetwork.to_string(),
            "Invalid address: another network's"
        );
        let invalid = checked_address(
            "0014751e76e8199196d454941c45d1b3a323f1433bd6",
            bitcoin::Network::Regtest,
        );
        assert_eq!(invalid, Err(AddressError::Invalid));
        assert_eq!(AddressError::Invalid.to_string(), "Invalid address");
    }
}
