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
