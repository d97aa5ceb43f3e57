//! Block grinding for the simulations: real blocks on an in-memory regtest chain, each the
//! block a [`Template`](crate::block::Template) would assemble, its nonce ground through a
//! [`Job`] by a [`Kernel`] at nBits [`REGTEST_POW_LIMIT_BITS`] (about two nonces a block), and
//! the segments a run is cut into so that it spreads over threads yet gives the same figures
//! for a seed whatever their number. The forks and selfish-mining sims build on it.

use crate::block::header_bytes;
use crate::chain::{bip34_push, REGTEST_POW_LIMIT_BITS};
use crate::chain::{Chain, ChainParams};
use crate::hash::{Job, Kernel, IV};
use crate::pow::retarget::RetargetParams;
use crate::pow::{CompactTarget, Target};
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, Witness,
};
use rayon::prelude::*;

/// Header time of the first block a simulation builds (later ones 1 s apart).
pub(crate) const SIM_TIME0: u32 = 1_600_000_000;
/// The wall clock passed to [`Chain::submit`]: far enough ahead that no header is "too new".
pub(crate) const SIM_NOW: u32 = u32::MAX / 2;
/// The most blocks one segment mines before looking for a regeneration point (see the module
/// documentation). Small segments keep the chains in cache: 4096 runs 15–25% faster than 50,000.
pub const SEGMENT_BLOCKS: u64 = 4_096;
/// How many blocks past its quota a segment may go looking for a regeneration point before it
/// stops anyway (only at extreme parameters: a selfish pool near α = 1/2, a delay of many block
/// times); it bounds a segment's memory.
pub const FORCE_END_AFTER: u64 = 1 << 18;

/// A fresh in-memory regtest chain at fixed nBits [`REGTEST_POW_LIMIT_BITS`], with room for a segment's
/// blocks (so it does not grow, moving every block, as they come).
pub(crate) fn sim_chain() -> Chain {
    let pow_limit = ChainParams::regtest().pow_limit;
    let mut chain = Chain::new(
        ChainParams::regtest(),
        RetargetParams::fixed(
            CompactTarget::from_consensus(REGTEST_POW_LIMIT_BITS),
            pow_limit,
        ),
    );
    chain.reserve(SEGMENT_BLOCKS as usize + SEGMENT_BLOCKS as usize / 4);
    chain
}

/// Mines a real block on `chain`'s tip: what a [`Template`](crate::block::Template) with the
/// chain's next nBits and subsidy, coinbase `tag` as the extranonce and paying `payout` would
/// assemble, its nonce ground with `kernel`. `time` is raised above the tip's time if needed (so
/// above its median time past too: along every branch a simulation builds, times increase).
pub(crate) fn mine_on_tip(
    chain: &Chain,
    time: u32,
    tag: u64,
    payout: &ScriptBuf,
    kernel: Kernel,
) -> Block {
    let tip = chain.tip();
    let height = tip.height + 1;
    // A template's time is at least 1 (its median time past, 0 here, plus 1).
    let time = time.max(tip.block.header.time.saturating_add(1)).max(1);
    let value = chain.params().subsidy(height);
    // The chain's own nBits always decode (it validated them); the sim's are the fallback.
    let bits = chain.next_bits();
    let (bits, target) = if bits.to_consensus() == REGTEST_POW_LIMIT_BITS {
        (bits, SIM_TARGET)
    } else {
        match Target::from_compact(bits) {
            Ok(t) => (bits, t),
            Err(_) => (
                CompactTarget::from_consensus(REGTEST_POW_LIMIT_BITS),
                SIM_TARGET,
            ),
        }
    };
    // What `Template::builder(tip, height)...build()`, `Template::job` and `Template::assemble`
    // make (the template's defaults: version 0x20000000, no other transactions, no witness
    // commitment), with the coinbase built with one allocation per part and hashed once (a
    // block of one transaction has its txid as merkle root).
    let coinbase = sim_coinbase(height, tag, value, payout);
    let root = bitcoin::merkle_tree::calculate_root(std::iter::once(
        coinbase.compute_txid().to_raw_hash(),
    ))
    .map(TxMerkleNode::from_raw_hash)
    .unwrap_or_else(TxMerkleNode::all_zeros);
    let mut header = Header {
        version: Version::from_consensus(SIM_VERSION),
        prev_blockhash: BlockHash::from_byte_array(tip.hash),
        merkle_root: root,
        time,
        bits: bitcoin::CompactTarget::from_consensus(bits.to_consensus()),
        nonce: 0,
    };
    let job = sim_job(&header_bytes(&header), &target);
    let mut hits = Vec::with_capacity(4);
    let mut first = 0u32;
    // About every second nonce meets nBits 0x207fffff. 2^32 nonces cannot all fail (2^-2^32).
    while hits.is_empty() && first <= u32::MAX - GRIND_STEP {
        kernel.scan(&job, first, GRIND_STEP, &mut hits);
        first += GRIND_STEP;
    }
    header.nonce = hits.first().copied().unwrap_or(0);
    Block {
        header,
        txdata: vec![coinbase],
    }
}

/// The header version of a [`Template`](crate::block::Template) (its builder's default).
const SIM_VERSION: i32 = 0x2000_0000;

/// The target of nBits [`REGTEST_POW_LIMIT_BITS`] (`0x7fffff` × 256^29), decoded once and for all.
const SIM_TARGET: Target = Target::from_words([0, 0, 0, 0, 0, 0, 0, 0x7fff_ff00]);

/// [`Template::coinbase`](crate::block::Template::coinbase) of a template at `height` paying
/// `value` to `payout` with no other transactions and no witness commitment, for extranonce
/// `tag`: the BIP 34 height, the extranonce and the `/miner/` tag in the script, each part
/// allocated once at its size.
fn sim_coinbase(height: u32, tag: u64, value: Amount, payout: &ScriptBuf) -> Transaction {
    let push = bip34_push(height);
    let mut script = Vec::with_capacity(push.as_slice().len() + 9 + 8);
    script.extend_from_slice(push.as_slice());
    script.push(8);
    script.extend_from_slice(&tag.to_le_bytes());
    script.push(7);
    script.extend_from_slice(b"/miner/");
    Transaction {
        version: bitcoin::transaction::Version::ONE,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(script),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: payout.clone(),
        }],
    }
}

/// Nonces per [`Kernel::scan`] call when grinding at nBits `0x207fffff`.
const GRIND_STEP: u32 = 2;

/// [`Job::new`] with the midstate from the `sha2` crate's compression function (SHA extensions
/// where the CPU has them) rather than the portable one: the same job, 0.4 µs sooner.
pub(crate) fn sim_job(header: &[u8; 80], target: &Target) -> Job {
    let mut midstate = IV;
    sha2::compress256(
        &mut midstate,
        &[*sha2::digest::generic_array::GenericArray::from_slice(
            &header[..64],
        )],
    );
    let mut tail = [0u32; 3];
    for (i, w) in tail.iter_mut().enumerate() {
        let b = &header[64 + 4 * i..68 + 4 * i];
        *w = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    Job {
        midstate,
        tail,
        target: target.to_words(),
    }
}

/// The grinding kernel: the plain `sha2` loop ([`Kernel::Sha2`]). A simulated block needs about
/// two nonces at nBits `0x207fffff`, and there the SIMD kernels' per-call set-up and candidate
/// checks cost 1–5 µs a block against 0.25 µs for the loop (measured on a Zen 4 EPYC).
pub(crate) fn sim_kernel() -> Kernel {
    Kernel::Sha2
}

/// Runs `blocks` in segments of at most [`SEGMENT_BLOCKS`] in parallel: `segment(index, quota,
/// seed)` for each, seeded by [`part_seed`], results in segment order.
pub(crate) fn in_segments<T: Send>(
    blocks: u64,
    seed: u64,
    segment: impl Fn(u64, u64, u64) -> T + Sync,
) -> Vec<T> {
    (0..blocks.div_ceil(SEGMENT_BLOCKS))
        .into_par_iter()
        .map(|i| {
            let quota = SEGMENT_BLOCKS.min(blocks - i * SEGMENT_BLOCKS);
            segment(i, quota, part_seed(seed, i))
        })
        .collect()
}

/// A seed for part `index` of a run seeded with `seed` (SplitMix64 of both), so each part has
/// its own stream whatever the number of threads.
pub(crate) fn part_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed
        ^ index
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(0x2545_f491_4f6c_dd1d);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{header_bytes, Template};
    use crate::experiment::forks::node_payout;

    #[test]
    fn sim_job_is_job_new_and_blocks_are_valid() {
        let chain = sim_chain();
        let b = mine_on_tip(&chain, SIM_TIME0, 3, &node_payout(1), sim_kernel());
        let bytes = header_bytes(&b.header);
        let target =
            Target::from_compact(CompactTarget::from_consensus(REGTEST_POW_LIMIT_BITS)).unwrap();
        assert_eq!(sim_job(&bytes, &target), Job::new(&bytes, &target));
        assert_eq!(b.header.merkle_root, b.compute_merkle_root().unwrap());
        let mut chain = chain;
        assert!(chain.submit(b, SIM_NOW).is_ok());
    }

    #[test]
    fn sim_target_decodes_sim_bits() {
        assert_eq!(
            Target::from_compact(CompactTarget::from_consensus(REGTEST_POW_LIMIT_BITS)).unwrap(),
            SIM_TARGET
        );
    }

    /// `mine_on_tip` builds, at every height, the block a [`Template`] with the same settings
    /// assembles (heights 1–16 take `OP_n`, later ones a pushed number, from 128 with a sign
    /// byte).
    #[test]
    fn mine_on_tip_is_the_templates_block() {
        let kernel = sim_kernel();
        let mut chain = sim_chain();
        for i in 0..300u32 {
            let tip = chain.tip().clone();
            let payout = node_payout(i as usize % 3);
            let tag = u64::from(i) * 0x0101_0101_0101;
            let b = mine_on_tip(&chain, SIM_TIME0 + i, tag, &payout, kernel);
            let t = Template::builder(BlockHash::from_byte_array(tip.hash), tip.height + 1)
                .time(SIM_TIME0 + i)
                .bits(chain.next_bits())
                .value(chain.params().subsidy(tip.height + 1))
                .payout(payout)
                .build()
                .unwrap();
            assert_eq!(
                b,
                t.assemble(tag, b.header.nonce),
                "height {}",
                tip.height + 1
            );
            let mut unmined = b.header;
            unmined.nonce = 0;
            assert_eq!(t.job(tag).header, header_bytes(&unmined));
            chain.submit(b, SIM_NOW).unwrap();
        }
    }
}
