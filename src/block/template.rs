//! The block template: everything of the next block except the extranonce and the nonce.

use crate::block::header_bytes;
use crate::hash::Job;
use crate::pow::{CompactTarget, Target, TargetError};
use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::opcodes::all::OP_RETURN;
use bitcoin::script::Builder;
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, Witness, WitnessMerkleNode, Wtxid,
};

/// Tag pushed after the 8-byte extranonce so blocks are recognisable.
const COINBASE_TAG: [u8; 7] = *b"/miner/";

/// The BIP 141 witness reserved value this miner puts in the coinbase input's witness: 32 zero
/// bytes, as Bitcoin Core does (its `default_witness_commitment` assumes this value).
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];

/// The 4 bytes after `OP_RETURN` and the 36-byte push that mark a BIP 141 commitment output.
pub const WITNESS_COMMITMENT_HEADER: [u8; 4] = [0xaa, 0x21, 0xa9, 0xed];

/// The next block, minus extranonce and nonce. Build one per tip; call [`Template::job`] with
/// extranonce 0, 1, 2, … as each job's 2^32 nonces run out, so no header is hashed twice.
#[derive(Clone, Debug)]
pub struct Template {
    pub version: i32,
    pub prev_hash: BlockHash,
    pub height: u32,
    pub bits: CompactTarget,
    pub time: u32,
    /// Subsidy plus fees.
    pub coinbase_value: Amount,
    pub payout: ScriptBuf,
    /// The other transactions, in block order (fees already in `coinbase_value`).
    pub transactions: Vec<Transaction>,
    /// The target the nonce search must meet, decoded from `bits`.
    pub target: Target,
    /// Put a BIP 141 witness commitment in the coinbase even when no transaction has witness
    /// data (a segwit node asks for one with `default_witness_commitment`). With any witness
    /// transaction in `transactions` the commitment is there whatever this says, since without
    /// it a segwit node rejects the block. `false` from [`Template::new`].
    pub commit_witness: bool,
}

/// One job: a header with a fixed extranonce, ready for a backend.
#[derive(Clone, Debug)]
pub struct MiningJob {
    pub extranonce: u64,
    /// The 80-byte header with nonce 0.
    pub header: [u8; 80],
    pub job: Job,
}

impl Template {
    /// Builds a template on top of `prev_hash`. The time is `now`, raised to
    /// `median_time_past + 1` when the clock is behind (a block's time must exceed the median of
    /// the last 11).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        prev_hash: BlockHash,
        height: u32,
        median_time_past: u32,
        now: u32,
        bits: CompactTarget,
        coinbase_value: Amount,
        payout: ScriptBuf,
        transactions: Vec<Transaction>,
    ) -> Result<Template, TargetError> {
        let target = Target::from_compact(bits)?;
        Ok(Template {
            version: 0x2000_0000,
            prev_hash,
            height,
            bits,
            time: now.max(median_time_past.saturating_add(1)),
            coinbase_value,
            payout,
            transactions,
            target,
            commit_witness: false,
        })
    }

    /// Whether the coinbase carries a BIP 141 witness commitment (and the witness reserved value):
    /// when [`Template::commit_witness`] asks for it or any transaction has witness data. When
    /// neither holds, the coinbase and block are the legacy ones, byte for byte.
    pub fn has_witness_commitment(&self) -> bool {
        self.commit_witness
            || self
                .transactions
                .iter()
                .any(|t| t.input.iter().any(|i| !i.witness.is_empty()))
    }

    /// The BIP 141 commitment output script, `OP_RETURN 0xaa21a9ed <commitment>`, with
    /// commitment = SHA-256d(witness merkle root ‖ [`WITNESS_RESERVED_VALUE`]); the witness root
    /// is over the wtxids in block order with the coinbase's taken as 32 zero bytes. It does not
    /// depend on the coinbase, so it is the same for every extranonce, and equals the
    /// `default_witness_commitment` Bitcoin Core sends for the same transactions.
    pub fn witness_commitment_script(&self) -> ScriptBuf {
        let wtxids = std::iter::once(Wtxid::all_zeros())
            .chain(self.transactions.iter().map(Transaction::compute_wtxid))
            .map(|w| w.to_raw_hash());
        // The list is never empty (the coinbase's zero wtxid is in it), so the root exists.
        let root = bitcoin::merkle_tree::calculate_root(wtxids)
            .map(WitnessMerkleNode::from_raw_hash)
            .unwrap_or_else(WitnessMerkleNode::all_zeros);
        let commitment = Block::compute_witness_commitment(&root, &WITNESS_RESERVED_VALUE);
        let mut push = [0u8; 36];
        push[..4].copy_from_slice(&WITNESS_COMMITMENT_HEADER);
        push[4..].copy_from_slice(&commitment.to_byte_array());
        Builder::new()
            .push_opcode(OP_RETURN)
            .push_slice(push)
            .into_script()
    }

    /// The coinbase script: BIP34 height, the extranonce, a tag.
    pub fn coinbase_script(&self, extranonce: u64) -> ScriptBuf {
        Builder::new()
            .push_int(i64::from(self.height))
            .push_slice(extranonce.to_le_bytes())
            .push_slice(COINBASE_TAG)
            .into_script()
    }

    /// The coinbase transaction for `extranonce`: one output to the payout, plus, when
    /// [`Template::has_witness_commitment`], a zero-value commitment output
    /// ([`Template::witness_commitment_script`]) and the witness reserved value as the input's
    /// witness (BIP 141). The witness does not enter the txid, so the merkle root is unaffected.
    pub fn coinbase(&self, extranonce: u64) -> Transaction {
        let mut output = vec![TxOut {
            value: self.coinbase_value,
            script_pubkey: self.payout.clone(),
        }];
        let mut witness = Witness::new();
        if self.has_witness_commitment() {
            output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: self.witness_commitment_script(),
            });
            witness.push(WITNESS_RESERVED_VALUE);
        }
        Transaction {
            version: TxVersion::ONE,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: self.coinbase_script(extranonce),
                sequence: Sequence::MAX,
                witness,
            }],
            output,
        }
    }

    /// The merkle root of the coinbase for `extranonce` and the other transactions.
    pub fn merkle_root(&self, extranonce: u64) -> TxMerkleNode {
        let coinbase = self.coinbase(extranonce).compute_txid();
        let txids = std::iter::once(coinbase)
            .chain(self.transactions.iter().map(|t| t.compute_txid()))
            .map(|t| t.to_raw_hash());
        bitcoin::merkle_tree::calculate_root(txids)
            .map(TxMerkleNode::from_raw_hash)
            .unwrap_or_else(TxMerkleNode::all_zeros)
    }

    /// The header for `extranonce` and `nonce`.
    pub fn header(&self, extranonce: u64, nonce: u32) -> Header {
        Header {
            version: Version::from_consensus(self.version),
            prev_blockhash: self.prev_hash,
            merkle_root: self.merkle_root(extranonce),
            time: self.time,
            bits: bitcoin::CompactTarget::from_consensus(self.bits.to_consensus()),
            nonce,
        }
    }

    /// The job for `extranonce`: midstate, tail and target for a backend.
    pub fn job(&self, extranonce: u64) -> MiningJob {
        let header = header_bytes(&self.header(extranonce, 0));
        MiningJob {
            extranonce,
            header,
            job: Job::new(&header, &self.target),
        }
    }

    /// The whole block for a found `(extranonce, nonce)`.
    pub fn assemble(&self, extranonce: u64, nonce: u32) -> Block {
        let mut txdata = Vec::with_capacity(1 + self.transactions.len());
        txdata.push(self.coinbase(extranonce));
        txdata.extend(self.transactions.iter().cloned());
        Block {
            header: self.header(extranonce, nonce),
            txdata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::header_hash;

    fn template(height: u32, mtp: u32, now: u32) -> Template {
        Template::new(
            BlockHash::all_zeros(),
            height,
            mtp,
            now,
            CompactTarget::from_consensus(0x207fffff),
            Amount::from_sat(5_000_000_000),
            ScriptBuf::from_bytes(vec![0x51]),
            vec![],
        )
        .unwrap()
    }

    #[test]
    fn coinbase_starts_with_the_bip34_height() {
        for (height, prefix) in [
            (1u32, vec![0x51u8]),          // OP_1
            (16, vec![0x60]),              // OP_16
            (17, vec![0x01, 0x11]),        // push 1 byte
            (128, vec![0x02, 0x80, 0x00]), // sign bit needs a second byte
            (500_000, vec![0x03, 0x20, 0xa1, 0x07]),
        ] {
            let script = template(height, 0, 0).coinbase_script(7);
            assert!(
                script.as_bytes().starts_with(&prefix),
                "height {height}: {script:?}"
            );
            let len = script.len();
            assert!((2..=100).contains(&len), "coinbase script length {len}");
        }
    }

    #[test]
    fn time_never_falls_to_the_median_time_past() {
        assert_eq!(template(1, 1000, 5000).time, 5000);
        assert_eq!(template(1, 1000, 900).time, 1001);
        assert_eq!(template(1, 1000, 1000).time, 1001);
    }

    #[test]
    fn each_extranonce_gives_a_new_merkle_root_and_header() {
        let t = template(5, 0, 1_700_000_000);
        let mut roots = std::collections::HashSet::new();
        let mut headers = std::collections::HashSet::new();
        for extranonce in 0..100 {
            assert!(roots.insert(t.merkle_root(extranonce)));
            assert!(headers.insert(t.job(extranonce).header));
        }
    }

    #[test]
    fn assembled_block_matches_its_job() {
        let t = template(3, 0, 1_700_000_000);
        let mj = t.job(42);
        let block = t.assemble(42, 0x1234_5678);
        assert!(block.check_merkle_root());
        let mut h = mj.header;
        h[76..80].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        assert_eq!(crate::hash::sha256d(&h), header_hash(&block.header));
        assert_eq!(mj.job.hash(0x1234_5678), header_hash(&block.header));
        assert_eq!(
            block.txdata[0].output[0].value,
            Amount::from_sat(5_000_000_000)
        );
    }
}
