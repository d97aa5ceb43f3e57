//! The block template: everything of the next block except the extranonce and the nonce.

use crate::block::header_bytes;
use crate::hash::Job;
use crate::pow::REGTEST_POW_LIMIT_BITS;
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
    /// The header's version field (BIP 9 bits).
    pub version: i32,
    /// The parent block: the tip this template builds on.
    pub prev_hash: BlockHash,
    /// The new block's height (genesis is 0); the coinbase commits to it (BIP 34).
    pub height: u32,
    /// The header's nBits: the compact form of [`Template::target`].
    pub bits: CompactTarget,
    /// The header's time, Unix seconds; the builder raises it above the median time past it is
    /// given.
    pub time: u32,
    /// Subsidy plus fees.
    pub coinbase_value: Amount,
    /// The script the coinbase's value is paid to.
    pub payout: ScriptBuf,
    /// The other transactions, in block order (fees already in `coinbase_value`).
    pub transactions: Vec<Transaction>,
    /// The target the nonce search must meet, decoded from `bits`.
    pub target: Target,
    /// Put a BIP 141 witness commitment in the coinbase even when no transaction has witness
    /// data (a segwit node asks for one with `default_witness_commitment`). With any witness
    /// transaction in `transactions` the commitment is there whatever this says, since without
    /// it a segwit node rejects the block. `false` unless [`TemplateBuilder::commit_witness`]
    /// asks for it.
    pub commit_witness: bool,
}

/// One job: a header with a fixed extranonce, ready for a backend.
#[derive(Clone, Debug)]
pub struct MiningJob {
    /// The extranonce in this job's coinbase (see [`Template::job`]).
    pub extranonce: u64,
    /// The 80-byte header with nonce 0.
    pub header: [u8; 80],
    /// What a backend hashes: the header's midstate, tail and target.
    pub job: Job,
}

/// The coinbase value a [`TemplateBuilder`] uses unless told otherwise: the first halving
/// period's subsidy, 50 BTC.
pub const DEFAULT_TEMPLATE_VALUE_SAT: u64 = 5_000_000_000;

/// Builds a [`Template`] from named settings, so callers set what they know and take sane
/// defaults for the rest (see [`Template::builder`]).
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct TemplateBuilder {
    prev_hash: BlockHash,
    height: u32,
    version: i32,
    median_time_past: u32,
    time: Option<u32>,
    bits: CompactTarget,
    coinbase_value: Amount,
    payout: ScriptBuf,
    transactions: Vec<Transaction>,
    commit_witness: bool,
}

impl TemplateBuilder {
    /// The header's version [default: `0x20000000`, BIP 9 with no bits signalled].
    pub fn version(mut self, version: i32) -> Self {
        self.version = version;
        self
    }

    /// The median time of the last 11 blocks; the block's time is raised above it
    /// [default: 0, no floor].
    pub fn median_time_past(mut self, median_time_past: u32) -> Self {
        self.median_time_past = median_time_past;
        self
    }

    /// The header's time, Unix seconds; raised to `median_time_past + 1` when below it (a
    /// block's time must exceed the median of the last 11) [default: the system clock at
    /// [`TemplateBuilder::build`]].
    pub fn time(mut self, time: u32) -> Self {
        self.time = Some(time);
        self
    }

    /// The compact target (nBits) the block must meet [default: regtest's proof-of-work
    /// limit, [`REGTEST_POW_LIMIT_BITS`], which about every second nonce meets, so a default
    /// template mines in microseconds].
    pub fn bits(mut self, bits: CompactTarget) -> Self {
        self.bits = bits;
        self
    }

    /// The coinbase output's value: subsidy plus fees [default: [`DEFAULT_TEMPLATE_VALUE_SAT`]].
    pub fn value(mut self, value: Amount) -> Self {
        self.coinbase_value = value;
        self
    }

    /// The coinbase output's script [default: `OP_TRUE`, which anyone can spend: fine for a
    /// local chain, never for real money].
    pub fn payout(mut self, payout: ScriptBuf) -> Self {
        self.payout = payout;
        self
    }

    /// The block's other transactions, in block order, their fees already in
    /// [`TemplateBuilder::value`] [default: none].
    pub fn transactions(mut self, transactions: Vec<Transaction>) -> Self {
        self.transactions = transactions;
        self
    }

    /// Put a BIP 141 witness commitment in the coinbase even without witness transactions (see
    /// [`Template::commit_witness`]) [default: false].
    pub fn commit_witness(mut self, commit_witness: bool) -> Self {
        self.commit_witness = commit_witness;
        self
    }

    /// The template; fails when the nBits give no usable target (zero, negative or overflowing).
    pub fn build(self) -> Result<Template, TargetError> {
        let target = Target::from_compact(self.bits)?;
        let now = self.time.unwrap_or_else(system_time);
        Ok(Template {
            version: self.version,
            prev_hash: self.prev_hash,
            height: self.height,
            bits: self.bits,
            time: now.max(self.median_time_past.saturating_add(1)),
            coinbase_value: self.coinbase_value,
            payout: self.payout,
            transactions: self.transactions,
            target,
            commit_witness: self.commit_witness,
        })
    }
}

/// The system clock in Unix seconds (0 before 1970, `u32::MAX` after 2106).
fn system_time() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl Template {
    /// A builder for the block at `height` on top of `prev_hash`. Every other setting has a
    /// default (see [`TemplateBuilder`]'s methods): the system clock's time, regtest's easiest
    /// nBits, a 50 BTC coinbase paying `OP_TRUE`, no other transactions. For example
    /// `Template::builder(tip, 1).bits(bits).payout(script).build()?`.
    pub fn builder(prev_hash: BlockHash, height: u32) -> TemplateBuilder {
        TemplateBuilder {
            prev_hash,
            height,
            version: 0x2000_0000,
            median_time_past: 0,
            time: None,
            bits: CompactTarget::from_consensus(REGTEST_POW_LIMIT_BITS),
            coinbase_value: Amount::from_sat(DEFAULT_TEMPLATE_VALUE_SAT),
            payout: ScriptBuf::from_bytes(vec![bitcoin::opcodes::OP_TRUE.to_u8()]),
            transactions: Vec::new(),
            commit_witness: false,
        }
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
        Template::builder(BlockHash::all_zeros(), height)
            .median_time_past(mtp)
            .time(now)
            .bits(CompactTarget::from_consensus(
                crate::pow::REGTEST_POW_LIMIT_BITS,
            ))
            .value(Amount::from_sat(5_000_000_000))
            .payout(ScriptBuf::from_bytes(vec![0x51]))
            .build()
            .unwrap()
    }

    #[test]
    fn builder_defaults_are_an_easy_op_true_block_at_the_clock() {
        let before = system_time();
        let t = Template::builder(BlockHash::all_zeros(), 7)
            .build()
            .unwrap();
        let after = system_time();
        assert_eq!(t.height, 7);
        assert_eq!(t.version, 0x2000_0000);
        assert_eq!(t.bits.to_consensus(), REGTEST_POW_LIMIT_BITS);
        assert_eq!(t.target, Target::from_compact(t.bits).unwrap());
        assert_eq!(
            t.coinbase_value,
            Amount::from_sat(DEFAULT_TEMPLATE_VALUE_SAT)
        );
        assert_eq!(t.payout.as_bytes(), [0x51], "OP_TRUE");
        assert!(t.transactions.is_empty());
        assert!(!t.commit_witness);
        assert!(
            (before..=after).contains(&t.time),
            "{before} <= {} <= {after}",
            t.time
        );
    }

    #[test]
    fn builder_settings_reach_the_template_and_time_stays_above_the_median() {
        let payout = ScriptBuf::from_bytes(vec![0x6a]);
        let t = Template::builder(BlockHash::all_zeros(), 3)
            .version(4)
            .median_time_past(1_000)
            .time(900)
            .bits(CompactTarget::from_consensus(0x1d00ffff))
            .value(Amount::from_sat(42))
            .payout(payout.clone())
            .commit_witness(true)
            .build()
            .unwrap();
        assert_eq!(t.version, 4);
        assert_eq!(
            t.time, 1_001,
            "a time at or below the median is raised past it"
        );
        assert_eq!(t.bits.to_consensus(), 0x1d00ffff);
        assert_eq!(t.coinbase_value, Amount::from_sat(42));
        assert_eq!(t.payout, payout);
        assert!(t.has_witness_commitment());
        let later = Template::builder(BlockHash::all_zeros(), 3)
            .median_time_past(1_000)
            .time(5_000)
            .build()
            .unwrap();
        assert_eq!(later.time, 5_000);
    }

    #[test]
    fn builder_refuses_bits_with_no_target() {
        let err = Template::builder(BlockHash::all_zeros(), 1)
            .bits(CompactTarget::from_consensus(0))
            .build()
            .unwrap_err();
        assert_eq!(err, TargetError::Zero, "{err}");
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
