//! The JSON Core shows for headers, block templates and chain figures.

use crate::block::header_bits;
use crate::chain::Chain;
use crate::hash::display_hash;
use crate::mining::unix_now;
use crate::pow::Target;
use serde_json::{json, Value};

/// The difficulty RPCs show for a block's nBits: Core's `GetDifficulty`, from the nBits alone
/// (so nBits with the sign bit set still give Core's non-zero figure).
pub(super) fn bdiff(bits: crate::pow::CompactTarget) -> f64 {
    bits.bdiff()
}

/// Core's `getnetworkhashps`: work of the last `n` blocks over the time they span.
pub(super) fn network_hashps(chain: &Chain, n: u64) -> f64 {
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

pub(super) fn header_json(chain: &Chain, hash: &[u8; 32]) -> Value {
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
pub(super) fn template(chain: &Chain) -> Value {
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

/// A transaction input as Core's `getrawtransaction ... true` shows it (`vin[]`): a coinbase
/// input as `{coinbase, sequence}`, any other as `{txid, vout, scriptSig: {asm, hex}, sequence}`,
/// with `txinwitness` when it has a witness.
pub(super) fn tx_input(input: &bitcoin::TxIn, coinbase: bool) -> Value {
    let mut v = if coinbase {
        json!({ "coinbase": hex::encode(input.script_sig.as_bytes()) })
    } else {
        json!({
            "txid": input.previous_output.txid.to_string(),
            "vout": input.previous_output.vout,
            "scriptSig": {
                "asm": input.script_sig.to_asm_string(),
                "hex": hex::encode(input.script_sig.as_bytes()),
            },
        })
    };
    if !input.witness.is_empty() {
        v["txinwitness"] = json!(input.witness.iter().map(hex::encode).collect::<Vec<_>>());
    }
    v["sequence"] = json!(input.sequence.0);
    v
}

/// A transaction output as Core shows it (`vout[]`): value in coins, index, and the script with
/// Core's type name and, where it has one, its address on `network`.
pub(super) fn tx_output(n: usize, output: &bitcoin::TxOut, network: bitcoin::Network) -> Value {
    let script = &output.script_pubkey;
    let kind = if script.is_p2pkh() {
        "pubkeyhash"
    } else if script.is_p2sh() {
        "scripthash"
    } else if script.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if script.is_p2wsh() {
        "witness_v0_scripthash"
    } else if script.is_p2tr() {
        "witness_v1_taproot"
    } else if script.is_op_return() {
        "nulldata"
    } else if script.is_p2pk() {
        "pubkey"
    } else if script.is_multisig() {
        "multisig"
    } else if script.is_witness_program() {
        "witness_unknown"
    } else {
        "nonstandard"
    };
    let mut spk = json!({
        "asm": script.to_asm_string(),
        "hex": hex::encode(script.as_bytes()),
        "type": kind,
    });
    if let Ok(address) = bitcoin::Address::from_script(script, network) {
        spk["address"] = json!(address.to_string());
    }
    json!({
        "value": output.value.to_btc(),
        "n": n,
        "scriptPubKey": spk,
    })
}
