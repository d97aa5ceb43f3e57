//! Block download shared by every peer: a block requested from one peer is not requested from
//! another while it is in flight, so a node syncing from several peers fetches each block once,
//! from whichever peer asked for it first, in parallel. Blocks that arrive before their parent
//! (another peer's block below them is still on its way) wait in a bounded orphan pool and are
//! connected when the parent is.

use bitcoin::{Block, BlockHash};
use std::collections::{HashMap, VecDeque};

/// Blocks waiting for their parent, at most.
const MAX_ORPHANS: usize = 2048;
/// Bytes of blocks waiting for their parent, at most.
const MAX_ORPHAN_BYTES: usize = 64 << 20;

/// What the peers share.
#[derive(Debug, Default)]
pub(crate) struct Download {
    /// Block → the peer it is requested from, and its height.
    in_flight: HashMap<BlockHash, (u64, u32)>,
    /// Parent → blocks waiting for it, and their hashes, sizes and arrival order.
    orphans: HashMap<BlockHash, Vec<Block>>,
    orphan_hashes: HashMap<BlockHash, u32>,
    orphan_order: VecDeque<(BlockHash, BlockHash, usize)>,
    orphan_bytes: usize,
}

impl Download {
    /// Claims `hash` (at `height`) for `peer`; false when another peer has it in flight.
    pub(crate) fn claim(&mut self, hash: BlockHash, peer: u64, height: u32) -> bool {
        match self.in_flight.get(&hash) {
            Some(&(p, _)) => p == peer,
            None => {
                self.in_flight.insert(hash, (peer, height));
                true
            }
        }
    }

    /// Whether `hash` is requested from a peer other than `peer`.
    pub(crate) fn elsewhere(&self, hash: &BlockHash, peer: u64) -> bool {
        self.in_flight.get(hash).is_some_and(|&(p, _)| p != peer)
    }

    /// Ends `peer`'s claim on `hash` (received, not found, stalled).
    pub(crate) fn release(&mut self, hash: &BlockHash, peer: u64) {
        if self.in_flight.get(hash).is_some_and(|&(p, _)| p == peer) {
            self.in_flight.remove(hash);
        }
    }

    /// Ends every claim of `peer` (it disconnected).
    pub(crate) fn release_peer(&mut self, peer: u64) {
        self.in_flight.retain(|_, (p, _)| *p != peer);
    }

    /// Whether `hash` waits in the orphan pool.
    pub(crate) fn is_orphan(&self, hash: &BlockHash) -> bool {
        self.orphan_hashes.contains_key(hash)
    }

    /// The height of a block in flight from any peer or waiting in the orphan pool.
    pub(crate) fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.in_flight
            .get(hash)
            .map(|&(_, h)| h)
            .or_else(|| self.orphan_hashes.get(hash).copied())
    }

    /// Keeps `block` (at `height`) until its parent connects; false (and the block dropped)
    /// when the pool is full even after the oldest orphans make room.
    pub(crate) fn add_orphan(&mut self, block: Block, height: u32) -> bool {
        let hash = block.block_hash();
        if self.orphan_hashes.contains_key(&hash) {
            return true;
        }
        let size = block.total_size();
        if size > MAX_ORPHAN_BYTES {
            return false;
        }
        while self.orphan_order.len() >= MAX_ORPHANS || self.orphan_bytes + size > MAX_ORPHAN_BYTES
        {
            let Some((old, parent, bytes)) = self.orphan_order.pop_front() else {
                break;
            };
            if self.orphan_hashes.remove(&old).is_some() {
                self.orphan_bytes -= bytes;
                if let Some(list) = self.orphans.get_mut(&parent) {
                    list.retain(|b| b.block_hash() != old);
                    if list.is_empty() {
                        self.orphans.remove(&parent);
                    }
                }
            }
        }
        let parent = block.header.prev_blockhash;
        self.orphan_hashes.insert(hash, height);
        self.orphan_order.push_back((hash, parent, size));
        self.orphan_bytes += size;
        self.orphans.entry(parent).or_default().push(block);
        true
    }

    /// Takes the blocks that waited for `parent`.
    pub(crate) fn children(&mut self, parent: &BlockHash) -> Vec<Block> {
        let children = self.orphans.remove(parent).unwrap_or_default();
        for child in &children {
            let hash = child.block_hash();
            self.orphan_hashes.remove(&hash);
            if let Some(at) = self.orphan_order.iter().position(|(h, _, _)| *h == hash) {
                if let Some((_, _, bytes)) = self.orphan_order.remove(at) {
                    self.orphan_bytes -= bytes;
                }
            }
        }
        children
    }

    /// Blocks in the orphan pool.
    pub(crate) fn orphan_count(&self) -> usize {
        self.orphan_hashes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn block(prev: u8, nonce: u32) -> Block {
        Block {
            header: bitcoin::block::Header {
                version: bitcoin::block::Version::ONE,
                prev_blockhash: BlockHash::from_byte_array([prev; 32]),
                merkle_root: bitcoin::TxMerkleNode::all_zeros(),
                time: 0,
                bits: bitcoin::CompactTarget::from_consensus(crate::pow::REGTEST_POW_LIMIT_BITS),
                nonce,
            },
            txdata: vec![],
        }
    }

    #[test]
    fn a_block_in_flight_from_one_peer_is_not_claimed_by_another_until_released() {
        let mut d = Download::default();
        let h = BlockHash::from_byte_array([7; 32]);
        assert!(d.claim(h, 1, 9));
        assert!(d.claim(h, 1, 9));
        assert!(!d.claim(h, 2, 9));
        assert_eq!(d.height_of(&h), Some(9));
        assert!(d.elsewhere(&h, 2));
        d.release(&h, 2);
        assert!(d.elsewhere(&h, 2), "only the holder releases");
        d.release_peer(1);
        assert!(d.claim(h, 2, 9));
    }

    #[test]
    fn orphans_wait_for_their_parent_and_the_pool_is_bounded() {
        let mut d = Download::default();
        assert!(d.add_orphan(block(1, 0), 5));
        assert!(d.add_orphan(block(1, 1), 5));
        assert!(d.add_orphan(block(2, 0), 6));
        assert_eq!(d.orphan_count(), 3);
        let kids = d.children(&BlockHash::from_byte_array([1; 32]));
        assert_eq!(kids.len(), 2);
        assert_eq!(d.orphan_count(), 1);
        for n in 0..(MAX_ORPHANS as u32 + 10) {
            assert!(d.add_orphan(block(3, n), 7));
        }
        assert_eq!(d.orphan_count(), MAX_ORPHANS);
        assert!(
            !d.is_orphan(&block(2, 0).block_hash()),
            "the oldest went first"
        );
        assert!(d.is_orphan(&block(3, MAX_ORPHANS as u32 + 9).block_hash()));
    }
}
