//! A template's jobs, extranonce by extranonce, with everything that does not depend on the
//! extranonce built once. At GH/s rates a job's 2^32 nonces last well under a second, and a
//! fresh [`Template::job`] re-hashes every transaction for the merkle root; here only the
//! coinbase's txid and its branch up the tree are hashed per job.

use crate::block::{header_bytes, MiningJob, Template};
use crate::hash::{sha256d, Job};
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{Transaction, TxMerkleNode};

/// The jobs of one template. [`JobSource::job`] equals [`Template::job`] for every extranonce.
pub struct JobSource<'a> {
    template: &'a Template,
    /// The coinbase for extranonce 0; only its script (which carries the extranonce) changes.
    coinbase: Transaction,
    /// The coinbase's merkle branch: the sibling at each level of the tree, bottom up.
    branch: Vec<[u8; 32]>,
}

/// The hashes one level up: pairs hashed together, the last one paired with itself when the
/// count is odd (as Bitcoin does).
fn level_up(level: &[[u8; 32]]) -> Vec<[u8; 32]> {
    level
        .chunks(2)
        .map(|pair| {
            let mut both = [0u8; 64];
            both[..32].copy_from_slice(&pair[0]);
            both[32..].copy_from_slice(pair.get(1).unwrap_or(&pair[0]));
            sha256d(&both)
        })
        .collect()
}

impl<'a> JobSource<'a> {
    /// Hashes `template`'s transactions and the coinbase branch once.
    pub fn new(template: &'a Template) -> JobSource<'a> {
        let coinbase = template.coinbase(0);
        // The tree with the coinbase's leaf as a placeholder: the sibling of the coinbase's
        // node at each level never depends on the coinbase.
        let mut level: Vec<[u8; 32]> = std::iter::once([0u8; 32])
            .chain(
                template
                    .transactions
                    .iter()
                    .map(|t| t.compute_txid().to_byte_array()),
            )
            .collect();
        let mut branch = Vec::new();
        while level.len() > 1 {
            branch.push(level[1]);
            level = level_up(&level);
        }
        JobSource {
            template,
            coinbase,
            branch,
        }
    }

    /// The merkle root for `extranonce`: the coinbase's txid hashed up its branch.
    pub fn merkle_root(&self, extranonce: u64) -> TxMerkleNode {
        let mut coinbase = self.coinbase.clone();
        if let Some(input) = coinbase.input.first_mut() {
            input.script_sig = self.template.coinbase_script(extranonce);
        }
        let mut node = coinbase.compute_txid().to_byte_array();
        for sibling in &self.branch {
            let mut both = [0u8; 64];
            both[..32].copy_from_slice(&node);
            both[32..].copy_from_slice(sibling);
            node = sha256d(&both);
        }
        TxMerkleNode::from_byte_array(node)
    }

    /// The job for `extranonce`, as [`Template::job`] builds it.
    pub fn job(&self, extranonce: u64) -> MiningJob {
        let t = self.template;
        let header = header_bytes(&Header {
            version: Version::from_consensus(t.version),
            prev_blockhash: t.prev_hash,
            merkle_root: self.merkle_root(extranonce),
            time: t.time,
            bits: bitcoin::CompactTarget::from_consensus(t.bits.to_consensus()),
            nonce: 0,
        });
        MiningJob {
            extranonce,
            header,
            job: Job::new(&header, &t.target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::CompactTarget;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version as TxVersion;
    use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Txid, Witness};

    /// A distinct spend per `i`.
    fn tx(i: u32) -> Transaction {
        Transaction {
            version: TxVersion::ONE,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([i as u8 + 1; 32]), i),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1000 + u64::from(i)),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            }],
        }
    }

    #[test]
    fn jobs_equal_the_templates_own_for_any_number_of_transactions() {
        // 0 to 9 other transactions: odd and even levels, and trees of 1 to 4 levels.
        for n in 0..10u32 {
            let t = Template::builder(BlockHash::from_byte_array([n as u8; 32]), 100 + n)
                .median_time_past(1_700_000_000)
                .time(1_700_000_100)
                .bits(CompactTarget::from_consensus(
                    crate::pow::REGTEST_POW_LIMIT_BITS,
                ))
                .value(Amount::from_sat(5_000_000_000))
                .payout(ScriptBuf::from_bytes(vec![0x51]))
                .transactions((0..n).map(tx).collect())
                .build()
                .expect("template");
            // And with a BIP 141 commitment output in the coinbase.
            let mut segwit = t.clone();
            segwit.commit_witness = true;
            for t in [t, segwit] {
                let jobs = JobSource::new(&t);
                for extranonce in [0u64, 1, 2, 255, 256, 1 << 40, u64::MAX] {
                    assert_eq!(
                        jobs.merkle_root(extranonce),
                        t.merkle_root(extranonce),
                        "{n} transactions, extranonce {extranonce}"
                    );
                    let (a, b) = (jobs.job(extranonce), t.job(extranonce));
                    assert_eq!(
                        (a.extranonce, a.header, a.job),
                        (b.extranonce, b.header, b.job)
                    );
                }
            }
        }
    }
}
