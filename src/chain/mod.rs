//! The local chain that `miner mine` extends: parameters, validation with Bitcoin Core's reject
//! reasons, and the block list. This first version keeps the chain in memory and accepts only
//! blocks on its tip; the persistent store and fork choice come with the node.

mod params;

pub use params::ChainParams;

use crate::block::{header_bits, header_hash};
use crate::pow::retarget::{BlockInfo, RetargetParams};
use crate::pow::{CompactTarget, Target, Work};
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{Amount, Block, BlockHash};

/// Why a block was refused, with the reason string Bitcoin Core's `submitblock` answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("duplicate")]
    Duplicate,
    #[error("inconclusive")]
    Inconclusive,
    #[error("prev-blk-not-found")]
    PrevBlockNotFound,
    #[error("high-hash")]
    HighHash,
    #[error("bad-diffbits")]
    BadDiffBits,
    #[error("bad-txnmrklroot")]
    BadMerkleRoot,
    #[error("time-too-old")]
    TimeTooOld,
    #[error("time-too-new")]
    TimeTooNew,
    #[error("bad-cb-missing")]
    CoinbaseMissing,
    #[error("bad-cb-multiple")]
    CoinbaseMultiple,
    #[error("bad-cb-length")]
    CoinbaseLength,
    #[error("bad-cb-height")]
    CoinbaseHeight,
    #[error("bad-cb-amount")]
    CoinbaseAmount,
    #[error("bad-blk-length")]
    BlockLength,
}

/// Bitcoin's largest allowed future drift of a block's time (Core's `MAX_FUTURE_BLOCK_TIME`).
pub const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// Blocks whose median time a new block's time must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// Largest serialized block we accept (legacy 1 MB limit; no witness data here).
pub const MAX_BLOCK_SIZE: usize = 1_000_000;

/// One stored block with its hash and the chain work up to it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub block: Block,
    /// Raw byte order.
    pub hash: [u8; 32],
    pub chain_work: Work,
}

/// A chain of valid blocks from the preset's genesis.
#[derive(Clone, Debug)]
pub struct Chain {
    params: ChainParams,
    /// The difficulty controller every block after genesis must follow.
    retarget: RetargetParams,
    entries: Vec<Entry>,
    /// What the controller reads of blocks 1.. (genesis excluded).
    history: Vec<BlockInfo>,
}

impl Chain {
    /// A new chain holding only the genesis block; later blocks follow `retarget`.
    pub fn new(params: ChainParams, retarget: RetargetParams) -> Chain {
        let genesis = params.genesis.clone();
        let hash = header_hash(&genesis.header);
        let work = Target::from_compact(header_bits(&genesis.header))
            .map(|t| t.work())
            .unwrap_or_default();
        Chain {
            params,
            retarget,
            entries: vec![Entry {
                block: genesis,
                hash,
                chain_work: work,
            }],
            history: Vec::new(),
        }
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Height of the tip (genesis is 0).
    pub fn height(&self) -> u32 {
        (self.entries.len() - 1) as u32
    }

    pub fn tip(&self) -> &Entry {
        &self.entries[self.entries.len() - 1]
    }

    pub fn tip_hash(&self) -> BlockHash {
        BlockHash::from_byte_array(self.tip().hash)
    }

    /// The block at `height`, if the chain is that long.
    pub fn get(&self, height: u32) -> Option<&Entry> {
        self.entries.get(height as usize)
    }

    /// nBits the next block must carry.
    pub fn next_bits(&self) -> CompactTarget {
        self.retarget.next_bits(&self.history)
    }

    /// The difficulty controller.
    pub fn retarget(&self) -> &RetargetParams {
        &self.retarget
    }

    /// Median time of the last 11 blocks (fewer near genesis), as Core's `GetMedianTimePast`.
    pub fn median_time_past(&self) -> u32 {
        let mut times: Vec<u32> = self
            .entries
            .iter()
            .rev()
            .take(MEDIAN_TIME_SPAN)
            .map(|e| e.block.header.time)
            .collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Validates `block` against the tip and appends it. `now` is the wall clock (seconds since
    /// 1970) for the future-time rule.
    pub fn submit(&mut self, block: Block, now: u32) -> Result<&Entry, Reject> {
        let hash = header_hash(&block.header);
        if self.entries.iter().any(|e| e.hash == hash) {
            return Err(Reject::Duplicate);
        }
        // Context-free checks first, as Core's CheckBlock does.
        let bits = header_bits(&block.header);
        let target = Target::from_compact(bits).map_err(|_| Reject::BadDiffBits)?;
        if !target.is_met_by(&hash) {
            return Err(Reject::HighHash);
        }
        if !block.check_merkle_root() {
            return Err(Reject::BadMerkleRoot);
        }
        if bitcoin::consensus::encode::serialize(&block).len() > MAX_BLOCK_SIZE {
            return Err(Reject::BlockLength);
        }
        let Some(coinbase) = block.txdata.first() else {
            return Err(Reject::CoinbaseMissing);
        };
        if !coinbase.is_coinbase() {
            return Err(Reject::CoinbaseMissing);
        }
        if block.txdata.iter().skip(1).any(|t| t.is_coinbase()) {
            return Err(Reject::CoinbaseMultiple);
        }
        let script_len = coinbase.input[0].script_sig.len();
        if !(2..=100).contains(&script_len) {
            return Err(Reject::CoinbaseLength);
        }
        // Contextual checks against the tip.
        let prev = block.header.prev_blockhash.to_byte_array();
        if prev != self.tip().hash {
            return Err(if self.entries.iter().any(|e| e.hash == prev) {
                Reject::Inconclusive
            } else {
                Reject::PrevBlockNotFound
            });
        }
        let height = self.height() + 1;
        if bits != self.next_bits() {
            return Err(Reject::BadDiffBits);
        }
        if block.header.time <= self.median_time_past() {
            return Err(Reject::TimeTooOld);
        }
        if block.header.time > now.saturating_add(MAX_FUTURE_BLOCK_TIME) {
            return Err(Reject::TimeTooNew);
        }
        let bip34 = Builder::new().push_int(i64::from(height)).into_script();
        if !coinbase.input[0]
            .script_sig
            .as_bytes()
            .starts_with(bip34.as_bytes())
        {
            return Err(Reject::CoinbaseHeight);
        }
        // No mempool yet: the other transactions carry no fees we can value, so the coinbase
        // may claim the subsidy only.
        let claimed: Option<Amount> = coinbase
            .output
            .iter()
            .try_fold(Amount::ZERO, |sum, o| sum.checked_add(o.value));
        match claimed {
            Some(v) if v <= self.params.subsidy(height) => {}
            _ => return Err(Reject::CoinbaseAmount),
        }
        let chain_work = self.tip().chain_work.clone() + target.work();
        self.history.push(BlockInfo {
            height: u64::from(height),
            time: i64::from(block.header.time),
            bits,
        });
        self.entries.push(Entry {
            block,
            hash,
            chain_work,
        });
        Ok(self.tip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Template;
    use crate::hash::{display_hash, Kernel};
    use bitcoin::ScriptBuf;

    /// Mines the next block of `chain` with the portable kernel (easy bits only).
    fn next_block(chain: &Chain, time: u32, value: Amount, height: u32) -> Block {
        let t = Template::new(
            chain.tip_hash(),
            height,
            chain.median_time_past(),
            time,
            chain.next_bits(),
            value,
            ScriptBuf::from_bytes(vec![0x51]),
            vec![],
        )
        .unwrap();
        let mj = t.job(0);
        let mut hits = Vec::new();
        Kernel::Soft.scan(&mj.job, 0, 1 << 20, &mut hits);
        t.assemble(0, hits[0])
    }

    fn remine(block: &mut Block) {
        let target = Target::from_compact(header_bits(&block.header)).unwrap();
        while !target.is_met_by(&header_hash(&block.header)) {
            block.header.nonce += 1;
        }
    }

    fn fixed(bits: u32) -> RetargetParams {
        RetargetParams::fixed(
            CompactTarget::from_consensus(bits),
            ChainParams::regtest().pow_limit,
        )
    }

    fn regtest() -> Chain {
        Chain::new(ChainParams::regtest(), fixed(0x2000ffff))
    }

    #[test]
    fn genesis_is_bitcoins_regtest_genesis() {
        let c = regtest();
        assert_eq!(
            display_hash(&c.tip().hash),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
        assert_eq!(c.height(), 0);
    }

    #[test]
    fn accepts_valid_blocks_and_names_what_is_wrong_with_bad_ones() {
        let mut c = regtest();
        let now = 1_700_000_000;
        let subsidy = c.params().subsidy(1);
        let good = next_block(&c, now, subsidy, 1);
        // A wrong merkle root, with the header re-mined so the proof of work still holds.
        let mut bad_root = good.clone();
        bad_root.header.merkle_root = bitcoin::TxMerkleNode::all_zeros();
        remine(&mut bad_root);
        assert_eq!(
            c.clone().submit(bad_root, now).err(),
            Some(Reject::BadMerkleRoot)
        );
        // A hash above the target.
        let mut high = good.clone();
        while Target::from_compact(c.next_bits())
            .unwrap()
            .is_met_by(&header_hash(&high.header))
        {
            high.header.nonce = high.header.nonce.wrapping_add(1);
        }
        assert_eq!(c.clone().submit(high, now).err(), Some(Reject::HighHash));
        assert_eq!(
            c.clone()
                .submit(next_block(&c, now, subsidy + Amount::from_sat(1), 1), now)
                .err(),
            Some(Reject::CoinbaseAmount)
        );
        assert_eq!(
            c.clone().submit(next_block(&c, now, subsidy, 2), now).err(),
            Some(Reject::CoinbaseHeight)
        );
        assert_eq!(
            c.clone()
                .submit(next_block(&c, now + 3 * 3600, subsidy, 1), now)
                .err(),
            Some(Reject::TimeTooNew)
        );
        let mut unknown_parent = good.clone();
        unknown_parent.header.prev_blockhash = BlockHash::from_byte_array([7; 32]);
        remine(&mut unknown_parent);
        assert_eq!(
            c.clone().submit(unknown_parent, now).err(),
            Some(Reject::PrevBlockNotFound)
        );
        let mut old = good.clone();
        old.header.time = c.median_time_past();
        remine(&mut old);
        assert_eq!(c.clone().submit(old, now).err(), Some(Reject::TimeTooOld));
        let mut wrong_bits = Chain::new(ChainParams::regtest(), fixed(0x1f00ffff));
        assert_eq!(
            wrong_bits.submit(good.clone(), now).err(),
            Some(Reject::BadDiffBits)
        );
        c.submit(good.clone(), now).unwrap();
        assert_eq!(c.height(), 1);
        assert_eq!(c.clone().submit(good, now).err(), Some(Reject::Duplicate));
    }
}
