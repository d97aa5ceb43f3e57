//! Stratum v1's job and share encodings: `mining.notify`'s job, the header a share implies,
//! share targets (the wire conventions are in the [module's](super) documentation).

use crate::block::Template;
use crate::hash::sha256d;
use crate::pow::Target;
use bitcoin::consensus::serialize;
use num_bigint::BigUint;
use serde_json::{json, Value};

/// Bytes of extranonce1, the server's per-connection part of the template's extranonce.
pub(crate) const EXTRANONCE1_SIZE: usize = 4;
/// Bytes of extranonce2, the part the miner rolls.
pub(crate) const EXTRANONCE2_SIZE: usize = 4;

/// BIP 310's version-rolling mask a server offers (the bits BIP 320 leaves to miners).
pub const VERSION_ROLLING_MASK: u32 = 0x1fff_e000;

/// A job as `mining.notify` carries it (the pool's job; the kernel's job, one header and a
/// target, is `crate::hash::Job`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyJob {
    /// The pool's name for the job; a `mining.submit` names it.
    pub id: String,
    /// The previous block's hash, internal byte order.
    pub prev_hash: [u8; 32],
    /// The coinbase's serialization before extranonce1.
    pub coinb1: Vec<u8>,
    /// The coinbase's serialization after extranonce2.
    pub coinb2: Vec<u8>,
    /// Merkle branch, each entry in internal byte order.
    pub branch: Vec<[u8; 32]>,
    /// The header's version before any rolling.
    pub version: u32,
    /// The network target in compact form (the header's nBits).
    pub nbits: u32,
    /// The header's time, Unix seconds.
    pub ntime: u32,
    /// Whether the jobs sent before are void (a new tip): shares for them are stale.
    pub clean: bool,
}

/// Why a notify or submit could not be read.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StratumError {
    /// A field missing or not in its wire form; the text names the field.
    #[error("{0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> StratumError {
    StratumError::Malformed(what.into())
}

/// `hex` decoded, or an error naming `what`.
pub(crate) fn hex_bytes(v: &Value, what: &str) -> Result<Vec<u8>, StratumError> {
    let s = v
        .as_str()
        .ok_or_else(|| malformed(format!("{what}: expected a hex string, got {v}")))?;
    hex::decode(s).map_err(|_| malformed(format!("{what}: not hex: {s:?}")))
}

/// A 32-bit number sent as 8 hex digits, big-endian.
pub fn hex_u32(v: &Value, what: &str) -> Result<u32, StratumError> {
    let b = hex_bytes(v, what)?;
    let b: [u8; 4] = b
        .try_into()
        .map_err(|_| malformed(format!("{what}: expected 8 hex digits, got {v}")))?;
    Ok(u32::from_be_bytes(b))
}

/// `n` as Stratum sends it: 8 hex digits, big-endian.
pub(crate) fn u32_hex(n: u32) -> String {
    hex::encode(n.to_be_bytes())
}

/// A hash in internal order, word-swapped as `prevhash` is sent.
pub(crate) fn swap_words(hash: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, i) in out.chunks_exact_mut(4).zip(hash.chunks_exact(4)) {
        o.copy_from_slice(&[i[3], i[2], i[1], i[0]]);
    }
    out
}

impl NotifyJob {
    /// Reads `mining.notify`'s params.
    pub fn from_notify(params: &Value) -> Result<NotifyJob, StratumError> {
        let p = params
            .as_array()
            .filter(|p| p.len() >= 9)
            .ok_or_else(|| malformed("mining.notify: expected 9 params"))?;
        let prev: [u8; 32] = hex_bytes(&p[1], "prevhash")?
            .try_into()
            .map_err(|_| malformed("prevhash: expected 64 hex digits"))?;
        let branch = p[4]
            .as_array()
            .ok_or_else(|| malformed("merkle branch: expected an array"))?
            .iter()
            .map(|b| {
                hex_bytes(b, "merkle branch")?
                    .try_into()
                    .map_err(|_| malformed("merkle branch: expected 64 hex digits per entry"))
            })
            .collect::<Result<Vec<[u8; 32]>, _>>()?;
        Ok(NotifyJob {
            id: p[0]
                .as_str()
                .ok_or_else(|| malformed("job id: expected a string"))?
                .to_string(),
            prev_hash: swap_words(&prev),
            coinb1: hex_bytes(&p[2], "coinb1")?,
            coinb2: hex_bytes(&p[3], "coinb2")?,
            branch,
            version: hex_u32(&p[5], "version")?,
            nbits: hex_u32(&p[6], "nbits")?,
            ntime: hex_u32(&p[7], "ntime")?,
            clean: p[8].as_bool().unwrap_or(false),
        })
    }

    /// `mining.notify`'s params.
    pub fn to_notify(&self) -> Value {
        json!([
            self.id,
            hex::encode(swap_words(&self.prev_hash)),
            hex::encode(&self.coinb1),
            hex::encode(&self.coinb2),
            self.branch.iter().map(hex::encode).collect::<Vec<_>>(),
            u32_hex(self.version),
            u32_hex(self.nbits),
            u32_hex(self.ntime),
            self.clean,
        ])
    }

    /// The coinbase (non-witness serialization) for these extranonces.
    pub(crate) fn coinbase(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
        let mut c = Vec::with_capacity(
            self.coinb1.len() + extranonce1.len() + extranonce2.len() + self.coinb2.len(),
        );
        c.extend_from_slice(&self.coinb1);
        c.extend_from_slice(extranonce1);
        c.extend_from_slice(extranonce2);
        c.extend_from_slice(&self.coinb2);
        c
    }

    /// The merkle root (internal order) for these extranonces.
    pub(crate) fn merkle_root(&self, extranonce1: &[u8], extranonce2: &[u8]) -> [u8; 32] {
        let mut root = sha256d(&self.coinbase(extranonce1, extranonce2));
        for b in &self.branch {
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&root);
            pair[32..].copy_from_slice(b);
            root = sha256d(&pair);
        }
        root
    }

    /// The 80-byte header a share implies (`version` after any rolling).
    pub fn header(
        &self,
        extranonce1: &[u8],
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> [u8; 80] {
        let mut h = [0u8; 80];
        h[0..4].copy_from_slice(&version.to_le_bytes());
        h[4..36].copy_from_slice(&self.prev_hash);
        h[36..68].copy_from_slice(&self.merkle_root(extranonce1, extranonce2));
        h[68..72].copy_from_slice(&ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// A job for `template`: the coinbase split around the 8-byte extranonce push, the merkle
    /// branch of its other transactions.
    pub(crate) fn from_template(id: String, template: &Template, clean: bool) -> NotifyJob {
        // Two extranonces that differ in every byte find the extranonce's place.
        let (a, b) = (0u64, u64::MAX);
        let ca = serialize(&strip_witness(template.coinbase(a)));
        let cb = serialize(&strip_witness(template.coinbase(b)));
        let at = ca
            .iter()
            .zip(&cb)
            .position(|(x, y)| x != y)
            .unwrap_or(ca.len());
        let end = (at + 8).min(ca.len());
        let txids: Vec<[u8; 32]> = template
            .transactions
            .iter()
            .map(|t| {
                use bitcoin::hashes::Hash;
                t.compute_txid().to_byte_array()
            })
            .collect();
        NotifyJob {
            id,
            prev_hash: {
                use bitcoin::hashes::Hash;
                template.prev_hash.to_byte_array()
            },
            coinb1: ca[..at].to_vec(),
            coinb2: ca[end..].to_vec(),
            branch: merkle_branch(&txids),
            version: template.version as u32,
            nbits: template.bits.to_consensus(),
            ntime: template.time,
            clean,
        }
    }
}

fn strip_witness(mut tx: bitcoin::Transaction) -> bitcoin::Transaction {
    for input in &mut tx.input {
        input.witness = bitcoin::Witness::new();
    }
    tx
}

/// The template extranonce for `extranonce1 ‖ extranonce2` (8 bytes, little-endian).
pub(crate) fn template_extranonce(extranonce1: &[u8], extranonce2: &[u8]) -> Option<u64> {
    let mut b = [0u8; 8];
    if extranonce1.len() + extranonce2.len() != 8 {
        return None;
    }
    b[..extranonce1.len()].copy_from_slice(extranonce1);
    b[extranonce1.len()..].copy_from_slice(extranonce2);
    Some(u64::from_le_bytes(b))
}

/// The merkle branch of the coinbase's position (index 0) given the other transactions' txids
/// (internal order): at each level, the sibling of the coinbase's path.
pub(crate) fn merkle_branch(others: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut branch = Vec::new();
    // The level below, with a placeholder for the coinbase's (unknown) hash at index 0.
    let mut level: Vec<[u8; 32]> = std::iter::once([0u8; 32])
        .chain(others.iter().copied())
        .collect();
    while level.len() > 1 {
        branch.push(level[1]);
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        next.push([0u8; 32]);
        for pair in level.chunks(2).skip(1) {
            let right = pair.get(1).unwrap_or(&pair[0]);
            let mut both = [0u8; 64];
            both[..32].copy_from_slice(&pair[0]);
            both[32..].copy_from_slice(right);
            next.push(sha256d(&both));
        }
        level = next;
    }
    branch
}

/// Bitcoin's difficulty-1 target, 0xFFFF · 2^208.
pub(crate) fn diff1() -> BigUint {
    BigUint::from(0xFFFFu32) << 208
}

/// The target a share of `difficulty` must meet: DIFF1 / difficulty, at most 2^256 − 1.
/// Fractional difficulties work (0.001 gives a target 1000 times DIFF1).
pub fn share_target(difficulty: f64) -> Option<Target> {
    if !(difficulty.is_finite() && difficulty > 0.0) {
        return None;
    }
    // difficulty = mantissa · 2^exponent exactly, so DIFF1 / difficulty is computed in integers.
    let bits = difficulty.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & 0x000f_ffff_ffff_ffff;
    let (mantissa, exponent) = if raw_exp == 0 {
        (fraction << 1, -1075)
    } else {
        (fraction | (1 << 52), raw_exp - 1075)
    };
    let max = (BigUint::from(1u32) << 256u32) - 1u32;
    let t: BigUint = if exponent <= 0 {
        let shift = u32::try_from(-exponent).ok()?;
        if shift > 2000 {
            return Target::from_biguint(&max).ok();
        }
        (diff1() << shift) / mantissa
    } else {
        (diff1() >> u32::try_from(exponent).ok()?) / mantissa
    };
    let t = t.min(max);
    Target::from_biguint(&t).ok()
}

/// The difficulty of a target: DIFF1 / target (share difficulty of a hash, when given a hash as
/// a target).
pub(crate) fn difficulty_of(target_le: &[u8; 32]) -> f64 {
    let t = BigUint::from_bytes_le(target_le);
    if t == BigUint::from(0u32) {
        return f64::INFINITY;
    }
    use num_traits::ToPrimitive;
    let d1 = diff1().to_f64().unwrap_or(f64::MAX);
    d1 / t.to_f64().unwrap_or(f64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The session recorded with pooler's cpuminer 2.5.1 (issue 15): extranonce1 f000000f,
    /// extranonce2 size 4, difficulty 0.001.
    fn recorded() -> (NotifyJob, Value) {
        let notify = json!(["job1",
            "466e2206590b1a116012afcabf5beb433a4fc3281f2a335e3cb7b2c70f9188f1",
            "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff130101",
            "2f737631746573742fffffffff0100f2052a01000000015100000000",
            ["2a6a41aeb1abf285919a8dd916b4d4799966a855d6bd9b5d9f2c2d6131647687",
             "d21e8f4234eb72e398934de4ee626c8164d9136d6844600874ce330a45d76d83"],
            "20000000", "207fffff", "6b04fcf5", true]);
        (NotifyJob::from_notify(&notify).expect("notify"), notify)
    }

    #[test]
    fn the_recorded_cpuminer_share_hashes_as_recorded() {
        let (job, notify) = recorded();
        assert_eq!(job.to_notify(), notify, "notify round trip");
        let submit = ["test.worker", "job1", "00000000", "6b04fcf5", "6df82800"];
        let en1 = hex::decode("f000000f").unwrap();
        let en2 = hex::decode(submit[2]).unwrap();
        let ntime = hex_u32(&json!(submit[3]), "ntime").unwrap();
        let nonce = hex_u32(&json!(submit[4]), "nonce").unwrap();
        let header = job.header(&en1, &en2, ntime, nonce, job.version);
        let mut hash = sha256d(&header);
        hash.reverse();
        assert_eq!(
            hex::encode(hash),
            "0000034576ebe4f1518437dd6e8c78a38a88a0e5df09ab22d6ae1f9c905958c1"
        );
        let target = share_target(0.001).unwrap();
        hash.reverse();
        assert!(target.is_met_by(&hash));
        // ... and not a share at difficulty 1000 times higher.
        assert!(!share_target(10.0).unwrap().is_met_by(&hash));
    }

    #[test]
    fn share_targets_scale_with_difficulty() {
        assert_eq!(share_target(1.0).unwrap().to_biguint(), diff1());
        assert_eq!(share_target(2.0).unwrap().to_biguint(), diff1() / 2u32);
        assert_eq!(share_target(0.5).unwrap().to_biguint(), diff1() * 2u32);
        assert!(share_target(0.0).is_none() && share_target(f64::NAN).is_none());
        // Tiny difficulties clamp to the largest target.
        let max = (BigUint::from(1u32) << 256) - 1u32;
        assert_eq!(share_target(1e-30).unwrap().to_biguint(), max);
    }

    #[test]
    fn merkle_branches_rebuild_the_block_merkle_root() {
        for n in 0..9u8 {
            let others: Vec<[u8; 32]> = (0..n).map(|i| sha256d(&[i, 7])).collect();
            let coinbase = sha256d(b"coinbase");
            let all: Vec<bitcoin::hashes::sha256d::Hash> = std::iter::once(coinbase)
                .chain(others.iter().copied())
                .map(|h| {
                    use bitcoin::hashes::Hash;
                    bitcoin::hashes::sha256d::Hash::from_byte_array(h)
                })
                .collect();
            let want = {
                use bitcoin::hashes::Hash;
                bitcoin::merkle_tree::calculate_root(all.into_iter())
                    .unwrap()
                    .to_byte_array()
            };
            let mut root = coinbase;
            for b in merkle_branch(&others) {
                let mut pair = [0u8; 64];
                pair[..32].copy_from_slice(&root);
                pair[32..].copy_from_slice(&b);
                root = sha256d(&pair);
            }
            assert_eq!(root, want, "{n} other transactions");
        }
    }

    #[test]
    fn a_job_from_a_template_rebuilds_the_templates_header() {
        use crate::chain::ChainParams;
        let params = ChainParams::regtest();
        let template = Template::builder(params.genesis.block_hash(), 1)
            .time(1_700_000_000)
            .bits(crate::pow::CompactTarget::from_consensus(
                crate::pow::REGTEST_POW_LIMIT_BITS,
            ))
            .build()
            .expect("template");
        let job = NotifyJob::from_template("1".into(), &template, true);
        let (en1, en2) = ([1u8, 2, 3, 4], [5u8, 6, 7, 8]);
        let extranonce = template_extranonce(&en1, &en2).unwrap();
        let want = crate::block::header_bytes(&template.header(extranonce, 42));
        assert_eq!(job.header(&en1, &en2, template.time, 42, job.version), want);
    }
}
