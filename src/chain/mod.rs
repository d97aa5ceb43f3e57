//! The local chain: parameters, validation with Bitcoin Core's reject reasons, every valid block
//! kept in a tree, the tip at the most cumulative work (never the most blocks), reorganizations
//! when a heavier branch arrives, and an optional crash-safe store ([`store`]).

mod params;
pub mod store;

pub use params::{ChainParams, ControllerDefaults, ParamsError, REGTEST_POW_LIMIT_BITS};
pub use store::StoreError;

use crate::block::header_bits;
use crate::pow::retarget::{
    Algorithm, AsertAnchor, BlockInfo, RetargetParams, ASERT_ANCHOR_HEIGHT,
};
use crate::pow::{CompactTarget, Target, Work};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, BlockHash};
use std::collections::HashMap;
use std::path::Path;
use store::Store;

/// Why a block was refused, with the reason string Bitcoin Core's `submitblock` answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The chain already holds this block.
    #[error("duplicate")]
    Duplicate,
    /// The parent is not in the chain (it may still be on its way from a peer).
    #[error("prev-blk-not-found")]
    PrevBlockNotFound,
    /// The hash is above the nBits' target, or the nBits are negative, zero, overflowing or
    /// easier than the pow limit (Core calls all of these `high-hash`).
    #[error("high-hash")]
    HighHash,
    /// Well-formed nBits that differ from what the difficulty controller demands at this height.
    #[error("bad-diffbits")]
    BadDiffBits,
    /// The header's merkle root is not the root of the block's transactions.
    #[error("bad-txnmrklroot")]
    BadMerkleRoot,
    /// The time is not above the median time of the parent and the 10 blocks before it.
    #[error("time-too-old")]
    TimeTooOld,
    /// The time is more than [`MAX_FUTURE_BLOCK_TIME`] ahead of the local clock.
    #[error("time-too-new")]
    TimeTooNew,
    /// The first transaction is missing or not a coinbase.
    #[error("bad-cb-missing")]
    CoinbaseMissing,
    /// A transaction after the first is a coinbase too.
    #[error("bad-cb-multiple")]
    CoinbaseMultiple,
    /// The coinbase's input script is not 2 to 100 bytes long.
    #[error("bad-cb-length")]
    CoinbaseLength,
    /// The coinbase's input script does not start with the block height (BIP 34).
    #[error("bad-cb-height")]
    CoinbaseHeight,
    /// The coinbase pays out more than the subsidy at this height (no fees are counted).
    #[error("bad-cb-amount")]
    CoinbaseAmount,
    /// The serialized block is larger than [`MAX_BLOCK_SIZE`].
    #[error("bad-blk-length")]
    BlockLength,
}

impl Reject {
    /// Whether a peer that sent a block refused for this reason misbehaved (Core scores an
    /// invalid block): not for a block we already have, one whose parent we lack (it may be on
    /// its way) or one too far in the future by our clock (ours may lag). The P2P ban score
    /// decides on this, never on the reason's text.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            Reject::Duplicate | Reject::PrevBlockNotFound | Reject::TimeTooNew
        )
    }
}

/// Why `submit` did not accept a block: it is invalid, or it could not be stored (and so was not
/// accepted).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The block is invalid; nothing was stored.
    #[error(transparent)]
    Rejected(#[from] Reject),
    /// The block is valid but the store failed to write it, so the chain is unchanged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where an accepted block went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// It extends the most-work chain (possibly after a reorganization).
    Tip,
    /// Valid, stored, but on a branch with less work ("inconclusive" in `submitblock`).
    SideBranch,
}

/// Bitcoin's largest allowed future drift of a block's time (Core's `MAX_FUTURE_BLOCK_TIME`).
pub const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// Blocks whose median time a new block's time must exceed.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// Largest serialized block we accept (legacy 1 MB limit; no witness data here).
pub const MAX_BLOCK_SIZE: usize = 1_000_000;

/// One stored block with its place in the tree.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The block itself.
    pub block: Block,
    /// Raw byte order.
    pub hash: [u8; 32],
    /// Blocks between this one and genesis (genesis is 0).
    pub height: u32,
    /// Raw byte order; all zeros for genesis.
    pub parent: [u8; 32],
    /// Work of this block and all its ancestors.
    pub chain_work: Work,
    /// What the difficulty controller reads of it.
    pub info: BlockInfo,
    /// The block at [`ASERT_ANCHOR_HEIGHT`] (2) of this branch, asert's anchor; `None` below it.
    pub anchor: Option<[u8; 32]>,
    /// The header times of this block and its ancestors, newest first: the first
    /// `min(height + 1, MEDIAN_TIME_SPAN)` are set. A child's median time past reads them
    /// without walking the tree.
    times: [u32; MEDIAN_TIME_SPAN],
    /// The parent's slot in [`Chain::entries`]; [`NO_SLOT`] for genesis.
    parent_slot: u32,
}

/// The parent slot of genesis.
const NO_SLOT: u32 = u32::MAX;

impl Entry {
    /// How many of [`Entry::times`] are set.
    fn time_count(&self) -> usize {
        (self.height as usize + 1).min(MEDIAN_TIME_SPAN)
    }

    /// The times a child at `time` carries: its own, then this block's.
    fn child_times(&self, time: u32) -> [u32; MEDIAN_TIME_SPAN] {
        let mut times = [0; MEDIAN_TIME_SPAN];
        times[0] = time;
        times[1..].copy_from_slice(&self.times[..MEDIAN_TIME_SPAN - 1]);
        times
    }
}

// The chain hashes every block it is offered with the block module's heap-free header hash.
use crate::block::header_hash;

/// The BIP 34 height push a coinbase's script must start with, as
/// `Builder::new().push_int(height)` writes it (`OP_0`, `OP_1`..`OP_16`, else the minimal
/// little-endian number with its length), without the heap.
pub(crate) struct HeightPush {
    bytes: [u8; 6],
    len: usize,
}

impl HeightPush {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

pub(crate) fn bip34_push(height: u32) -> HeightPush {
    let mut bytes = [0u8; 6];
    let len = match height {
        // OP_0.
        0 => 1,
        // OP_PUSHNUM_1 (0x51) .. OP_PUSHNUM_16.
        1..=16 => {
            bytes[0] = 0x50 + height as u8;
            1
        }
        _ => {
            // Script number: little-endian, a 0x00 after a top byte with its sign bit set.
            let mut n = height;
            let mut len = 1;
            while n > 0xff {
                bytes[len] = n as u8;
                len += 1;
                n >>= 8;
            }
            bytes[len] = n as u8;
            len += 1;
            if n & 0x80 != 0 {
                bytes[len] = 0;
                len += 1;
            }
            // A direct push of len - 1 bytes (at most 5).
            bytes[0] = (len - 1) as u8;
            len
        }
    };
    HeightPush { bytes, len }
}

/// What one nBits value decodes to, kept for the controller's initial nBits (every block's
/// under a fixed controller), so checking and inserting a block at them is no big-integer work.
#[derive(Clone, Debug)]
struct KnownBits {
    bits: CompactTarget,
    /// The target when it decodes and is within the pow limit (else no hash meets it).
    target: Option<Target>,
    /// One block's work at these bits (0 if they do not decode).
    work: Work,
}

impl KnownBits {
    fn new(bits: CompactTarget, pow_limit: Target) -> KnownBits {
        let decoded = Target::from_compact(bits);
        KnownBits {
            bits,
            target: decoded.as_ref().ok().copied().filter(|t| *t <= pow_limit),
            work: decoded.map(|t| t.work()).unwrap_or_default(),
        }
    }
}

/// Hashes block-hash keys cheaply: each 8 bytes folded in with one 64×64→128-bit multiply, mixed
/// with a key drawn per chain (so a peer that grinds blocks cannot aim them at one bucket).
/// SipHash was about a quarter of the experiments' time in `submit`; block hashes are already
/// uniform, so four multiplies spread them as well.
#[derive(Clone, Debug)]
pub(crate) struct BlockHasher {
    key: u64,
}

impl BlockHasher {
    fn new() -> BlockHasher {
        BlockHasher {
            key: rand::random::<u64>() | 1,
        }
    }
}

impl std::hash::BuildHasher for BlockHasher {
    type Hasher = BlockHashState;
    fn build_hasher(&self) -> BlockHashState {
        BlockHashState {
            key: self.key,
            state: 0,
        }
    }
}

/// The running state of [`BlockHasher`].
#[derive(Debug)]
pub(crate) struct BlockHashState {
    key: u64,
    state: u64,
}

impl std::hash::Hasher for BlockHashState {
    fn write(&mut self, bytes: &[u8]) {
        // A [u8; 32] key arrives as its length then its bytes: fold every 8 bytes in.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let x = (self.state ^ u64::from_le_bytes(word) ^ self.key) as u128
                * 0x9e37_79b9_7f4a_7c15u128;
            self.state = (x as u64) ^ ((x >> 64) as u64);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.write(&(n as u64).to_le_bytes());
    }
    fn finish(&self) -> u64 {
        self.state
    }
}

/// Every valid block from the preset's genesis, and the most-work chain through them.
pub struct Chain {
    params: ChainParams,
    retarget: RetargetParams,
    /// Every block, in the order they were added (genesis first): slots never move, so a
    /// parent is found by its slot without hashing, and an entry is moved once, when added.
    entries: Vec<Entry>,
    /// The slot of each block by hash.
    slots: HashMap<[u8; 32], u32, BlockHasher>,
    /// The most-work chain, by height: slots.
    active: Vec<u32>,
    store: Option<Store>,
    /// The controller's initial nBits, decoded.
    known: KnownBits,
}

impl Chain {
    /// A new in-memory chain holding only the genesis block; later blocks follow `retarget`.
    pub fn new(params: ChainParams, retarget: RetargetParams) -> Chain {
        let genesis = params.genesis.clone();
        let hash = header_hash(&genesis.header);
        let bits = header_bits(&genesis.header);
        let work = Target::from_compact(bits)
            .map(|t| t.work())
            .unwrap_or_default();
        let mut times = [0; MEDIAN_TIME_SPAN];
        times[0] = genesis.header.time;
        let entry = Entry {
            info: BlockInfo {
                height: 0,
                time: i64::from(genesis.header.time),
                bits,
            },
            block: genesis,
            hash,
            height: 0,
            parent: [0; 32],
            chain_work: work,
            anchor: None,
            times,
            parent_slot: NO_SLOT,
        };
        let known = KnownBits::new(retarget.initial, retarget.pow_limit);
        Chain {
            known,
            params,
            retarget,
            entries: vec![entry],
            slots: {
                let mut slots = HashMap::with_hasher(BlockHasher::new());
                slots.insert(hash, 0);
                slots
            },
            active: vec![0],
            store: None,
        }
    }

    /// A chain kept in the store at `path` (created if missing). Stored blocks are replayed
    /// parents first; the tip is again the most-work one. A store made with other chain
    /// parameters or another difficulty controller is refused.
    pub fn open(
        path: &Path,
        params: ChainParams,
        retarget: RetargetParams,
    ) -> Result<Chain, StoreError> {
        let (store, blocks) = Store::open(path, &Chain::rules(&params, &retarget))?;
        let mut chain = Chain::new(params, retarget);
        for (_, block) in blocks {
            // Validated before it was stored; `insert` recomputes its place in the tree.
            let hash = header_hash(&block.header);
            let Some(&parent) = chain
                .slots
                .get(&block.header.prev_blockhash.to_byte_array())
            else {
                return Err(StoreError::Corrupt(format!(
                    "block {} has no parent in the store",
                    crate::hash::display_hash(&hash)
                )));
            };
            chain.insert(block, hash, parent);
        }
        chain.store = Some(store);
        Ok(chain)
    }

    /// Where the store of a chain with these rules lives under a data directory: one
    /// subdirectory per set of rules (`regtest-1a2b3c4d/chain.redb`), so runs with other rules
    /// keep separate chains and runs with the same rules continue the same one.
    pub fn store_path(
        root: &Path,
        params: &ChainParams,
        retarget: &RetargetParams,
    ) -> std::path::PathBuf {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(Chain::rules(params, retarget).as_bytes());
        let name: String = params
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        root.join(format!("{name}-{}", &hex::encode(digest)[..8]))
            .join("chain.redb")
    }

    /// The description of the rules a store is bound to (refused on reopen if different).
    pub fn rules(params: &ChainParams, retarget: &RetargetParams) -> String {
        format!(
            "preset {}; controller {}; spacing {} s; initial nBits {}; pow limit {}",
            params.name, retarget.algorithm, retarget.spacing, retarget.initial, retarget.pow_limit
        )
    }

    /// The rules the chain was created with.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The difficulty controller.
    pub fn retarget(&self) -> &RetargetParams {
        &self.retarget
    }

    /// Height of the tip (genesis is 0).
    pub fn height(&self) -> u32 {
        (self.active.len() - 1) as u32
    }

    /// The last block of the active chain: the most cumulative work (the first seen of equals).
    pub fn tip(&self) -> &Entry {
        &self.entries[self.active[self.active.len() - 1] as usize]
    }

    /// [`Chain::tip`]'s hash, as the `bitcoin` crate's type.
    pub fn tip_hash(&self) -> BlockHash {
        BlockHash::from_byte_array(self.tip().hash)
    }

    /// The block at `height` on the most-work chain.
    pub fn get(&self, height: u32) -> Option<&Entry> {
        self.active
            .get(height as usize)
            .map(|&slot| &self.entries[slot as usize])
    }

    /// Any stored block, on the most-work chain or not.
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<&Entry> {
        self.slots
            .get(hash)
            .map(|&slot| &self.entries[slot as usize])
    }

    /// The parent of `e`, if it has one.
    fn parent_of(&self, e: &Entry) -> Option<&Entry> {
        self.entries.get(e.parent_slot as usize)
    }

    /// Blocks no stored block builds on: the active tip and the tips of side branches.
    pub fn tips(&self) -> Vec<&Entry> {
        let parents: std::collections::HashSet<&[u8; 32]> =
            self.entries.iter().map(|e| &e.parent).collect();
        let mut tips: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| !parents.contains(&e.hash))
            .collect();
        tips.sort_by(|a, b| b.height.cmp(&a.height).then(a.hash.cmp(&b.hash)));
        tips
    }

    /// Blocks stored, genesis included.
    pub fn block_count(&self) -> usize {
        self.entries.len()
    }

    /// Makes room for `additional` more blocks without growing (a caller that knows how many
    /// blocks it will add, such as a simulation's segment).
    #[cfg(feature = "experiments")]
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
        self.slots.reserve(additional);
        self.active.reserve(additional);
    }

    /// Up to `k` blocks ending at `hash`, oldest first, genesis excluded.
    fn recent(&self, hash: &[u8; 32], k: usize) -> Vec<BlockInfo> {
        let mut out = Vec::with_capacity(k);
        let mut cursor = self.by_hash(hash);
        while let Some(e) = cursor {
            if e.height == 0 || out.len() == k {
                break;
            }
            out.push(e.info);
            cursor = self.parent_of(e);
        }
        out.reverse();
        out
    }

    /// nBits a child of `parent` must carry.
    fn bits_after(&self, parent: &Entry) -> CompactTarget {
        // A fixed controller demands its nBits whatever the history.
        if parent.height == 0 || self.retarget.algorithm == Algorithm::Fixed {
            return self.retarget.initial;
        }
        let recent = self.recent(&parent.hash, self.retarget.history_needed());
        // asert measures from its anchor's nBits and the anchor's parent's real time, as
        // Bitcoin Cash Node does.
        let anchor = parent
            .anchor
            .and_then(|a| self.by_hash(&a))
            .and_then(|a| Some(AsertAnchor::new(&a.info, &self.parent_of(a)?.info)));
        self.retarget
            .next_bits_with_anchor(&recent, anchor.as_ref())
    }

    /// Median time of `parent` and its 10 ancestors, as Core's `GetMedianTimePast`.
    fn median_time_after(&self, parent: &Entry) -> u32 {
        let n = parent.time_count();
        let mut times = parent.times;
        let times = &mut times[..n];
        times.sort_unstable();
        times[n / 2]
    }

    /// nBits the next block on the tip must carry.
    pub fn next_bits(&self) -> CompactTarget {
        self.bits_after(self.tip())
    }

    /// Median time past of the tip.
    pub fn median_time_past(&self) -> u32 {
        self.median_time_after(self.tip())
    }

    /// Core's `CheckProofOfWork`: `bits` decode to a positive target that is not above the
    /// chain's pow limit, and `hash` (raw byte order) meets it.
    pub fn proof_of_work_holds(&self, bits: CompactTarget, hash: &[u8; 32]) -> bool {
        if bits == self.known.bits {
            return self.known.target.is_some_and(|t| t.is_met_by(hash));
        }
        match Target::from_compact(bits) {
            Ok(target) => target <= self.retarget.pow_limit && target.is_met_by(hash),
            Err(_) => false,
        }
    }

    /// Validates `block` against its parent, stores it (durably, when the chain has a store)
    /// and moves the tip if its branch now has the most work. `now` is the wall clock (seconds
    /// since 1970) for the future-time rule.
    pub fn submit(&mut self, block: Block, now: u32) -> Result<Accepted, SubmitError> {
        let (hash, parent, height) = self.check(&block, now)?;
        // Durable before it is acknowledged.
        if let Some(store) = self.store.as_mut() {
            store.put(height, &block)?;
        }
        Ok(self.insert(block, hash, parent))
    }

    /// Validates and stores `blocks` (each may build on one before it) with one durable commit
    /// for all that are valid, and applies fork choice: what `submit` of each in turn would
    /// answer, at a fraction of the syncs. If the commit fails, none is kept and every valid
    /// one answers the store error.
    pub fn submit_batch(
        &mut self,
        blocks: Vec<Block>,
        now: u32,
    ) -> Vec<Result<Accepted, SubmitError>> {
        let old_tip = self.active[self.active.len() - 1];
        // What this batch adds is the entries from here on.
        let old_len = self.entries.len();
        let mut answers = Vec::with_capacity(blocks.len());
        for block in blocks {
            match self.check(&block, now) {
                Ok((hash, parent, _)) => {
                    answers.push(Ok(self.insert(block, hash, parent)));
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        let Some(store) = self.store.as_mut() else {
            return answers;
        };
        if self.entries.len() == old_len {
            return answers;
        }
        let staged: Vec<(u32, &Block)> = self.entries[old_len..]
            .iter()
            .map(|e| (e.height, &e.block))
            .collect();
        if let Err(e) = store.put_many(&staged) {
            // Undo: drop what was added and put the old tip back.
            for e in &self.entries[old_len..] {
                self.slots.remove(&e.hash);
            }
            self.entries.truncate(old_len);
            self.set_tip(old_tip);
            let why = e.to_string();
            for answer in answers.iter_mut().filter(|a| a.is_ok()) {
                *answer = Err(SubmitError::Store(StoreError::Io(why.clone())));
            }
        }
        answers
    }

    /// Makes the branch ending at `tip` (a stored block) the active chain.
    fn set_tip(&mut self, tip: u32) {
        let mut branch = Vec::new();
        let mut cursor = tip;
        while self
            .active
            .get(self.entries[cursor as usize].height as usize)
            != Some(&cursor)
        {
            branch.push(cursor);
            cursor = self.entries[cursor as usize].parent_slot;
        }
        let fork_height = self.entries[cursor as usize].height as usize;
        self.active.truncate(fork_height + 1);
        self.active.extend(branch.into_iter().rev());
    }

    /// Core's checks of `block` against its parent: its hash, its parent's slot and its
    /// height, or why it is refused.
    fn check(&self, block: &Block, now: u32) -> Result<([u8; 32], u32, u32), SubmitError> {
        let hash = header_hash(&block.header);
        if self.slots.contains_key(&hash) {
            return Err(Reject::Duplicate.into());
        }
        // Context-free checks first, as Core's CheckBlock does. Core's CheckProofOfWork fails
        // for nBits that are negative, overflow or zero, or whose target is above the pow limit,
        // and CheckBlockHeader calls all of that "high-hash", as it does a hash above the target.
        // "bad-diffbits" is only for well-formed nBits that differ from what the rule demands.
        let bits = header_bits(&block.header);
        if !self.proof_of_work_holds(bits, &hash) {
            return Err(Reject::HighHash.into());
        }
        if !block.check_merkle_root() {
            return Err(Reject::BadMerkleRoot.into());
        }
        // The length of its consensus serialization, counted without serializing.
        if block.total_size() > MAX_BLOCK_SIZE {
            return Err(Reject::BlockLength.into());
        }
        let Some(coinbase) = block.txdata.first() else {
            return Err(Reject::CoinbaseMissing.into());
        };
        if !coinbase.is_coinbase() {
            return Err(Reject::CoinbaseMissing.into());
        }
        if block.txdata.iter().skip(1).any(|t| t.is_coinbase()) {
            return Err(Reject::CoinbaseMultiple.into());
        }
        let script_len = coinbase.input[0].script_sig.len();
        if !(2..=100).contains(&script_len) {
            return Err(Reject::CoinbaseLength.into());
        }
        // Contextual checks against the parent.
        let Some(&parent_slot) = self.slots.get(&block.header.prev_blockhash.to_byte_array())
        else {
            return Err(Reject::PrevBlockNotFound.into());
        };
        let parent = &self.entries[parent_slot as usize];
        let height = parent.height + 1;
        if bits != self.bits_after(parent) {
            return Err(Reject::BadDiffBits.into());
        }
        if block.header.time <= self.median_time_after(parent) {
            return Err(Reject::TimeTooOld.into());
        }
        if block.header.time > now.saturating_add(MAX_FUTURE_BLOCK_TIME) {
            return Err(Reject::TimeTooNew.into());
        }
        if !coinbase.input[0]
            .script_sig
            .as_bytes()
            .starts_with(bip34_push(height).as_slice())
        {
            return Err(Reject::CoinbaseHeight.into());
        }
        // No mempool yet: the other transactions carry no fees we can value, so the coinbase
        // may claim the subsidy only.
        let claimed: Option<Amount> = coinbase
            .output
            .iter()
            .try_fold(Amount::ZERO, |sum, o| sum.checked_add(o.value));
        match claimed {
            Some(v) if v <= self.params.subsidy(height) => {}
            _ => return Err(Reject::CoinbaseAmount.into()),
        }
        Ok((hash, parent_slot, height))
    }

    /// Adds a validated block under `parent` and applies fork choice.
    fn insert(&mut self, block: Block, hash: [u8; 32], parent_slot: u32) -> Accepted {
        let p = &self.entries[parent_slot as usize];
        let parent = p.hash;
        let height = p.height + 1;
        let bits = header_bits(&block.header);
        let mut chain_work = p.chain_work.clone();
        if bits == self.known.bits {
            chain_work += &self.known.work;
        } else {
            chain_work += &Target::from_compact(bits)
                .map(|t| t.work())
                .unwrap_or_default();
        }
        let times = p.child_times(block.header.time);
        let anchor = if u64::from(height) == ASERT_ANCHOR_HEIGHT {
            Some(hash)
        } else {
            p.anchor
        };
        let entry = Entry {
            info: BlockInfo {
                height: u64::from(height),
                time: i64::from(block.header.time),
                bits,
            },
            block,
            hash,
            height,
            parent,
            chain_work,
            anchor,
            times,
            parent_slot,
        };
        let heavier = entry.chain_work > self.tip().chain_work;
        let slot = self.entries.len() as u32;
        self.entries.push(entry);
        self.slots.insert(hash, slot);
        if !heavier {
            return Accepted::SideBranch;
        }
        if self.active.last() == Some(&parent_slot) {
            // It extends the tip: nothing to walk.
            self.active.push(slot);
        } else {
            // Reorganize: walk back from the new tip until the active chain is met.
            self.set_tip(slot);
        }
        Accepted::Tip
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::header_hash;
    use crate::block::Template;
    use crate::hash::{display_hash, Kernel};
    use bitcoin::script::Builder;
    use bitcoin::ScriptBuf;

    #[test]
    fn height_push_is_builders_push_int() {
        let mut heights: Vec<u32> = (0..70_000).collect();
        for shift in 16..32 {
            let top = 1u32 << shift;
            heights.extend([top - 1, top, top + 1, top | 0x80, top + 0x7f]);
        }
        heights.extend([0x7f_ffff, 0x80_0000, 0x7fff_ffff, 0x8000_0000, u32::MAX]);
        for h in heights {
            let want = Builder::new().push_int(i64::from(h)).into_script();
            assert_eq!(bip34_push(h).as_slice(), want.as_bytes(), "height {h}");
        }
    }

    #[test]
    fn header_hash_and_size_match_the_serializing_ones() {
        let c = regtest();
        let b = next_block(&c, 1_700_000_000, c.params().subsidy(1), 1);
        for block in [&b, &c.tip().block] {
            assert_eq!(
                crate::block::header_bytes(&block.header)[..],
                bitcoin::consensus::encode::serialize(&block.header)[..]
            );
            assert_eq!(
                super::header_hash(&block.header),
                header_hash(&block.header)
            );
            assert_eq!(
                block.total_size(),
                bitcoin::consensus::encode::serialize(block).len()
            );
        }
    }

    /// Mines the next block of `chain` with the portable kernel (easy bits only).
    fn next_block(chain: &Chain, time: u32, value: Amount, height: u32) -> Block {
        let t = Template::builder(chain.tip_hash(), height)
            .median_time_past(chain.median_time_past())
            .time(time)
            .bits(chain.next_bits())
            .value(value)
            .payout(ScriptBuf::from_bytes(vec![0x51]))
            .build()
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

    /// Submits a block that must be refused; the chain must not change.
    fn refused(c: &mut Chain, block: Block, now: u32) -> Reject {
        let (height, count) = (c.height(), c.block_count());
        let err = match c.submit(block, now) {
            Err(SubmitError::Rejected(r)) => r,
            other => panic!("expected a reject, got {other:?}"),
        };
        assert_eq!(
            (c.height(), c.block_count()),
            (height, count),
            "a refused block changed the chain"
        );
        err
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
        assert_eq!(refused(&mut c, bad_root, now), Reject::BadMerkleRoot);
        // A hash above the target.
        let mut high = good.clone();
        while Target::from_compact(c.next_bits())
            .unwrap()
            .is_met_by(&header_hash(&high.header))
        {
            high.header.nonce = high.header.nonce.wrapping_add(1);
        }
        assert_eq!(refused(&mut c, high, now), Reject::HighHash);
        let over = next_block(&c, now, subsidy + Amount::from_sat(1), 1);
        assert_eq!(refused(&mut c, over, now), Reject::CoinbaseAmount);
        let wrong_height = next_block(&c, now, subsidy, 2);
        assert_eq!(refused(&mut c, wrong_height, now), Reject::CoinbaseHeight);
        let future = next_block(&c, now + 3 * 3600, subsidy, 1);
        assert_eq!(refused(&mut c, future, now), Reject::TimeTooNew);
        let mut unknown_parent = good.clone();
        unknown_parent.header.prev_blockhash = BlockHash::from_byte_array([7; 32]);
        remine(&mut unknown_parent);
        assert_eq!(
            refused(&mut c, unknown_parent, now),
            Reject::PrevBlockNotFound
        );
        let mut old = good.clone();
        old.header.time = c.median_time_past();
        remine(&mut old);
        assert_eq!(refused(&mut c, old, now), Reject::TimeTooOld);
        let mut wrong_bits = Chain::new(ChainParams::regtest(), fixed(0x1f00ffff));
        assert_eq!(
            refused(&mut wrong_bits, good.clone(), now),
            Reject::BadDiffBits
        );
        assert_eq!(c.submit(good.clone(), now).unwrap(), Accepted::Tip);
        assert_eq!(c.height(), 1);
        assert_eq!(refused(&mut c, good, now), Reject::Duplicate);
    }

    #[test]
    fn undecodable_or_above_limit_bits_are_high_hash_and_merely_wrong_bits_bad_diffbits() {
        // Regtest limit 0x207fffff; the chain demands 0x2000ffff.
        let mut c = regtest();
        let now = 1_700_000_000;
        let good = next_block(&c, now, c.params().subsidy(1), 1);
        let with_bits = |bits: u32| {
            let mut b = good.clone();
            b.header.bits = bitcoin::CompactTarget::from_consensus(bits);
            b
        };
        // nBits CheckProofOfWork cannot use: negative (sign bit, non-zero mantissa), overflow,
        // zero (also the sign-bit twin of zero). No hash can make these valid.
        for bits in [
            0x2080_ffff,
            0x1d80_ffff,
            0xff12_3456,
            0x2300_0001,
            0x2000_0000,
            0x0480_0000,
        ] {
            assert_eq!(
                refused(&mut c, with_bits(bits), now),
                Reject::HighHash,
                "nBits 0x{bits:08x}"
            );
        }
        // Decodable but easier than the pow limit (0x2100_8000 is 2^255, just above it):
        // high-hash even though the hash meets the target.
        for bits in [0x2100_ffff, 0x2100_8000] {
            let mut above = with_bits(bits);
            remine(&mut above);
            assert!(Target::from_compact(header_bits(&above.header))
                .unwrap()
                .is_met_by(&header_hash(&above.header)));
            assert!(!c.proof_of_work_holds(header_bits(&above.header), &header_hash(&above.header)));
            assert_eq!(
                refused(&mut c, above, now),
                Reject::HighHash,
                "nBits 0x{bits:08x}"
            );
        }
        // Well-formed, within the limit, met by the hash, but not the demanded bits: easier
        // (the limit itself) and harder than demanded.
        for bits in [0x207f_ffff, 0x1f00_ffff] {
            let mut wrong = with_bits(bits);
            remine(&mut wrong);
            assert!(c.proof_of_work_holds(header_bits(&wrong.header), &header_hash(&wrong.header)));
            assert_eq!(
                refused(&mut c, wrong, now),
                Reject::BadDiffBits,
                "nBits 0x{bits:08x}"
            );
        }
        assert_eq!(c.submit(good, now).unwrap(), Accepted::Tip);
    }

    /// Mines a block on `parent` at `bits` (the chain must expect those bits).
    fn child(c: &Chain, parent: &Entry, time: u32, tag: u64) -> Block {
        let t = Template::builder(BlockHash::from_byte_array(parent.hash), parent.height + 1)
            .median_time_past(c.median_time_after(parent))
            .time(time)
            .bits(c.bits_after(parent))
            .value(c.params().subsidy(parent.height + 1))
            .payout(ScriptBuf::from_bytes(vec![0x51]))
            .build()
            .unwrap();
        let mj = t.job(tag);
        let mut hits = Vec::new();
        let mut first = 0u32;
        while hits.is_empty() {
            Kernel::best().scan(&mj.job, first, 1 << 16, &mut hits);
            first += 1 << 16;
        }
        t.assemble(tag, hits[0])
    }

    /// Bitcoin's retarget with a window of 2 blocks: block 3 is 4x harder than block 2 when
    /// block 2 came within a second of block 1, and 4x easier when it came hours later.
    fn window_of_two() -> RetargetParams {
        RetargetParams {
            algorithm: crate::pow::retarget::Algorithm::Bitcoin { window: 2 },
            spacing: 600,
            pow_limit: ChainParams::regtest().pow_limit,
            initial: CompactTarget::from_consensus(0x1f00ffff),
        }
    }

    #[test]
    fn tip_follows_most_work_not_most_blocks() {
        // From a shared block 1: branch A is slow (block 2 four hours later, so blocks 3 and 4
        // are 4x easier), branch B fast (block 2 a second later, so block 3 is 4x harder).
        // With W the work of block 1: A = W + W + W/4 + W/4 = 2.5 W over four blocks, B =
        // W + W + 4 W = 6 W over three. Most work picks B, a most-blocks rule A; in both
        // arrival orders the tip must be B's block 3, below A's height.
        let t0: u32 = 1_700_000_000;
        let now = t0 + 10_000_000;
        for b_first in [false, true] {
            let mut c = Chain::new(ChainParams::regtest(), window_of_two());
            let g = c.tip().clone();
            c.submit(child(&c, &g, t0, 0), now).unwrap();
            let shared = c.tip().clone();
            // Build both branches on chains of their own, then submit them in order.
            let mut a = Chain::new(ChainParams::regtest(), window_of_two());
            let mut b = Chain::new(ChainParams::regtest(), window_of_two());
            for side in [&mut a, &mut b] {
                side.submit(shared.block.clone(), now).unwrap();
            }
            for time in [t0 + 4 * 3600, t0 + 4 * 3600 + 1, t0 + 4 * 3600 + 2] {
                let tip = a.tip().clone();
                a.submit(child(&a, &tip, time, 1), now).unwrap();
            }
            for time in [t0 + 1, t0 + 2] {
                let tip = b.tip().clone();
                b.submit(child(&b, &tip, time, 2), now).unwrap();
            }
            assert_eq!((a.height(), b.height()), (4, 3));
            let work = |ch: &Chain, h: u32| ch.get(h).unwrap().chain_work.clone();
            let block_work = |ch: &Chain, h: u32| work(ch, h).to_f64() - work(ch, h - 1).to_f64();
            // The bits did what the comment says: A's blocks 3 and 4 are 4x easier, B's block
            // 3 is 4x harder (work ratios within the rounding of nBits).
            let w1 = block_work(&a, 1);
            for (ch, h, want) in [(&a, 3, 0.25), (&a, 4, 0.25), (&b, 3, 4.0)] {
                let got = block_work(ch, h) / w1;
                assert!((got / want - 1.0).abs() < 1e-3, "block {h}: {got} W");
            }
            assert!(work(&b, 3) > work(&a, 4), "B has more work");
            let blocks = |ch: &Chain| -> Vec<Block> {
                (2..=ch.height())
                    .map(|h| ch.get(h).unwrap().block.clone())
                    .collect()
            };
            let order: Vec<Block> = if b_first {
                [blocks(&b), blocks(&a)].concat()
            } else {
                [blocks(&a), blocks(&b)].concat()
            };
            for block in order {
                c.submit(block, now).unwrap();
            }
            assert_eq!(c.tip().hash, b.tip().hash, "b first: {b_first}");
            assert_eq!(c.height(), 3, "b first: {b_first}");
            // A's four blocks are kept as a side branch.
            assert!(c.by_hash(&a.tip().hash).is_some());
            assert_eq!(c.block_count(), 1 + 1 + 3 + 2);
        }
    }

    #[test]
    fn a_longer_branch_arriving_out_of_order_reorgs_and_equal_work_keeps_the_first_seen() {
        // Every block at one fixed rule, so work follows block count here: this test is about
        // arrival order, orphans and ties, not about work against length (that is
        // `tip_follows_most_work_not_most_blocks`).
        let easy = fixed(0x2000ffff);
        let now = 1_700_000_000;
        let mut c = Chain::new(ChainParams::regtest(), easy.clone());
        let genesis = c.tip().clone();
        let a1 = child(&c, &genesis, now, 1);
        assert_eq!(c.submit(a1.clone(), now).unwrap(), Accepted::Tip);
        let a1e = c.tip().clone();
        let a2 = child(&c, &a1e, now + 1, 1);
        c.submit(a2, now).unwrap();
        let a2e = c.tip().clone();
        let a3 = child(&c, &a2e, now + 2, 1);
        c.submit(a3, now).unwrap();
        assert_eq!(c.height(), 3);
        let a3_hash = c.tip().hash;
        // Branch B: four blocks on genesis, built on a chain of its own.
        let mut other = Chain::new(ChainParams::regtest(), easy);
        let mut b_blocks = Vec::new();
        for i in 0..4u32 {
            let parent = other.tip().clone();
            let b = child(&other, &parent, now + 100 + i, 2);
            other.submit(b.clone(), now + 200).unwrap();
            b_blocks.push(b);
        }
        // Out of order: B4 and B3 first (unknown parents), then B1, B2, B3, B4.
        assert_eq!(
            refused(&mut c, b_blocks[3].clone(), now + 200),
            Reject::PrevBlockNotFound
        );
        assert_eq!(
            c.submit(b_blocks[0].clone(), now + 200).unwrap(),
            Accepted::SideBranch
        );
        assert_eq!(
            c.submit(b_blocks[1].clone(), now + 200).unwrap(),
            Accepted::SideBranch
        );
        // Equal work (3 vs 3): the first seen keeps the tip.
        assert_eq!(
            c.submit(b_blocks[2].clone(), now + 200).unwrap(),
            Accepted::SideBranch
        );
        assert_eq!(c.tip().hash, a3_hash);
        assert_eq!(
            c.submit(b_blocks[3].clone(), now + 200).unwrap(),
            Accepted::Tip
        );
        assert_eq!(c.height(), 4);
        assert_eq!(c.tip().hash, other.tip().hash);
        for h in 1..=4 {
            assert_eq!(
                c.get(h).unwrap().hash,
                other.get(h).unwrap().hash,
                "height {h}"
            );
        }
        // Every block is kept: genesis, three of A, four of B.
        assert_eq!(c.block_count(), 8);
        assert!(c.by_hash(&a3_hash).is_some());
    }

    #[test]
    fn at_equal_height_the_branch_with_more_work_takes_the_tip() {
        // Rules where difficulty follows the chain (bitcoin, window 2): block 3 of a branch that
        // was slow gets easier bits, of a fast branch harder bits. Both branches reach height 3;
        // the fast one, seen second, has more work and takes the tip (a rule that counts
        // blocks, keeping the first seen on a tie, would not move it).
        let rules = window_of_two();
        let t0 = 1_700_000_000;
        let mut c = Chain::new(ChainParams::regtest(), rules.clone());
        let g = c.tip().clone();
        // Shared block 1, then two branches.
        let b1 = child(&c, &g, t0, 0);
        c.submit(b1, t0 + 10_000_000).unwrap();
        let e1 = c.tip().clone();
        // Slow branch: block 2 an hour later (window 2 closes at 2: retarget 4x easier).
        let s2 = child(&c, &e1, t0 + 4 * 3600, 1);
        c.submit(s2, t0 + 10_000_000).unwrap();
        let s2e = c.tip().clone();
        let s3 = child(&c, &s2e, t0 + 4 * 3600 + 1, 1);
        c.submit(s3, t0 + 10_000_000).unwrap();
        assert_eq!(c.height(), 3);
        let slow_work = c.tip().chain_work.clone();
        // Fast branch: block 2 one second later: 4x harder from block 3 on.
        let f2 = child(&c, &e1, t0 + 1, 2);
        let f2_hash = header_hash(&f2.header);
        assert_eq!(c.submit(f2, t0 + 10_000_000).unwrap(), Accepted::SideBranch);
        let f2e = c.by_hash(&f2_hash).cloned().unwrap();
        let f3 = child(&c, &f2e, t0 + 2, 2);
        let f3_bits = header_bits(&f3.header);
        assert_ne!(
            f3_bits,
            header_bits(&c.tip().block.header),
            "branches should differ in bits"
        );
        assert_eq!(c.submit(f3, t0 + 10_000_000).unwrap(), Accepted::Tip);
        // Same height (3) but more work: the fast branch has the tip.
        assert_eq!(c.height(), 3);
        assert!(c.tip().chain_work > slow_work);
    }

    #[test]
    fn a_batch_answers_as_submits_in_turn_would_and_is_stored_with_one_commit() {
        let rules = fixed(0x2000ffff);
        let now = 1_700_000_000;
        // Five blocks on genesis, made on a chain of their own.
        let mut source = Chain::new(ChainParams::regtest(), rules.clone());
        let mut blocks = Vec::new();
        for i in 0..5u32 {
            let parent = source.tip().clone();
            let b = child(&source, &parent, now + i, 3);
            source.submit(b.clone(), now + 100).unwrap();
            blocks.push(b);
        }
        let dir = std::env::temp_dir().join(format!("miner-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("chain.redb");
        {
            let mut c = Chain::open(&path, ChainParams::regtest(), rules.clone()).unwrap();
            let mut bad = blocks[2].clone();
            bad.header.merkle_root = bitcoin::TxMerkleNode::all_zeros();
            // 1, 2, a bad 3, 3, 5 (its parent 4 missing), 4, a duplicate of 1.
            let batch = vec![
                blocks[0].clone(),
                blocks[1].clone(),
                bad,
                blocks[2].clone(),
                blocks[4].clone(),
                blocks[3].clone(),
                blocks[0].clone(),
            ];
            let answers: Vec<Result<Accepted, Reject>> = c
                .submit_batch(batch, now + 100)
                .into_iter()
                .map(|a| {
                    a.map_err(|e| match e {
                        SubmitError::Rejected(r) => r,
                        SubmitError::Store(e) => panic!("store: {e}"),
                    })
                })
                .collect();
            // The bad block fails its proof of work or its merkle root, whichever comes first.
            assert!(matches!(
                answers[2],
                Err(Reject::HighHash | Reject::BadMerkleRoot)
            ));
            let rest: Vec<_> = answers
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 2)
                .map(|(_, a)| a.clone())
                .collect();
            assert_eq!(
                rest,
                vec![
                    Ok(Accepted::Tip),
                    Ok(Accepted::Tip),
                    Ok(Accepted::Tip),
                    Err(Reject::PrevBlockNotFound),
                    Ok(Accepted::Tip),
                    Err(Reject::Duplicate),
                ]
            );
            assert!(answers[2].is_err(), "the bad block is refused");
            assert_eq!(c.height(), 4);
            assert_eq!(c.tip().hash, source.get(4).unwrap().hash);
            assert!(c.submit_batch(Vec::new(), now).is_empty());
        }
        let c = Chain::open(&path, ChainParams::regtest(), rules).unwrap();
        assert_eq!(c.height(), 4, "the batch was stored");
        assert_eq!(c.tip().hash, source.get(4).unwrap().hash);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn store_survives_reopen_and_refuses_other_rules() {
        let dir = std::env::temp_dir().join(format!("miner-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("chain.redb");
        let rules = fixed(0x2000ffff);
        let now = 1_700_000_000;
        let tip = {
            let mut c = Chain::open(&path, ChainParams::regtest(), rules.clone()).unwrap();
            for i in 0..5 {
                let parent = c.tip().clone();
                let b = child(&c, &parent, now + i, 0);
                c.submit(b, now + 100).unwrap();
            }
            c.tip().hash
        };
        {
            let c = Chain::open(&path, ChainParams::regtest(), rules.clone()).unwrap();
            assert_eq!(c.height(), 5);
            assert_eq!(c.tip().hash, tip);
            // While it is open, a second opener is told so.
            let busy = Chain::open(&path, ChainParams::regtest(), rules)
                .err()
                .unwrap();
            assert!(
                busy.to_string().contains("cannot open the block store"),
                "{busy}"
            );
        }
        let err = Chain::open(&path, ChainParams::regtest(), fixed(0x1f00ffff))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("was made for another chain"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod reject_tests {
    use super::Reject;

    #[test]
    fn only_invalid_blocks_are_a_peers_fault() {
        for r in [
            Reject::Duplicate,
            Reject::PrevBlockNotFound,
            Reject::TimeTooNew,
        ] {
            assert!(!r.is_peer_fault(), "{r}");
        }
        for r in [
            Reject::HighHash,
            Reject::BadMerkleRoot,
            Reject::CoinbaseAmount,
        ] {
            assert!(r.is_peer_fault(), "{r}");
        }
    }
}
