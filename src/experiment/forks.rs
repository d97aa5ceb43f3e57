//! Forks from propagation delay: N miners on a network whose blocks take `delay_s` to reach
//! each other, each holding its own [`Chain`] (the project's validation and most-work fork
//! choice, first seen winning ties). The seed's picture: two blocks found at one height before
//! either has propagated split the network, and the next block decides which branch survives.
//!
//! # The model
//! Virtual time. The next block anywhere comes after an exponential wait of mean
//! `block_time_s` (T) and belongs to node i with probability `shares[i]`, so each node is a
//! Poisson process of rate `shares[i] / T`. The finder builds a real block on its own current tip
//! ([`grind`](super::grind): a [`Template`], the nonce ground by [`Kernel`] at nBits `0x207fffff`),
//! submits it to its own chain at once, and every other node receives it `delay_s` (d) later
//! (an event queue ordered by time, ties by order of sending). A block whose parent a node lacks
//! waits in that node's buffer until the parent arrives (it cannot happen with one delay for all
//! links, but is handled). When the finds stop, every block in flight is delivered and node 0's
//! active chain is taken as the main chain; a block not on it is stale. Nodes that still
//! disagree at that point hold tips of equal work (each keeps the one it saw first), so the
//! number of stale blocks does not depend on whose chain is taken; [`ForkResult::tips_agree`]
//! says whether they agree.
//!
//! A reorganisation is a node's tip moving to a branch that does not extend its old tip; its
//! depth is the number of blocks removed from that node's active chain, counted over all nodes.
//!
//! # Theory
//! The first-order stale rate is the chance that a block is found while the previous one is
//! still propagating, `1 − e^(−d/T)` ([`first_order_stale_rate`]; e.g. Decker & Wattenhofer,
//! "Information propagation in the Bitcoin network", 2013). In this model a block found during
//! the delay by the node that found the previous block builds on it and forks nothing, so the
//! expected rate is `(1 − Σ sᵢ²)(1 − e^(−d/T))` ([`expected_stale_rate`]; `(1 − 1/N)(1 − e^(−d/T))`
//! for N equal nodes), up to terms of order `(d/T)²` (three or more blocks within one delay, a
//! tie broken by a block itself found within the delay). For many nodes the two agree.
//!
//! # Long runs
//! A run is cut into segments of at most [`SEGMENT_BLOCKS`](super::grind::SEGMENT_BLOCKS) blocks. A segment mines its quota,
//! then goes on until a *regeneration point*: nothing in flight and every node on the same tip.
//! From there nothing can change what came before (every node mines on that tip, every block
//! is known everywhere), and the future looks like a fresh start, so each segment runs on fresh
//! chains with its own random numbers (seeded by the run's seed and the segment's index) and the
//! segments run in parallel with rayon; the result does not depend on the number of threads.
//! The same regeneration points cut each segment into independent cycles, which give the
//! interval [`ForkResult::ci95`] (a ratio estimator; it stays honest when stale blocks come in
//! clusters at large delays, where a binomial interval would be too narrow).
//!
//! [`Template`]: crate::block::Template

use super::grind::{
    in_segments, mine_on_tip, sim_chain, sim_kernel, FORCE_END_AFTER, SIM_NOW, SIM_TIME0,
};
use super::stats::Cycles;
use crate::chain::{Chain, SubmitError};
use crate::hash::Kernel;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, ScriptBuf};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// One forks run.
#[derive(Clone, Debug, PartialEq)]
pub struct ForkParams {
    /// Each node's share of the hash rate (summing to 1; they are normalised).
    pub shares: Vec<f64>,
    /// Propagation delay between any two nodes, seconds.
    pub delay_s: f64,
    /// Mean time between blocks of the whole network, seconds.
    pub block_time_s: f64,
    /// Blocks to find (a run ends at the first regeneration point after this many).
    pub blocks: u64,
    /// Seed of the run's random draws; the same seed gives the same run.
    pub seed: u64,
}

/// Why [`ForkParams`] cannot be run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ForkParamsError {
    /// `shares` is empty.
    #[error("at least one node is needed")]
    NoNodes,
    /// A share is negative or not finite, or they sum to 0.
    #[error("hash shares must be finite and not negative, with a positive sum")]
    BadShares,
    /// `delay_s` is negative or not finite.
    #[error("the delay must be finite and not negative")]
    BadDelay,
    /// `block_time_s` is not positive and finite.
    #[error("the block time must be finite and positive")]
    BadBlockTime,
}

impl ForkParams {
    /// `n` nodes of equal share.
    pub fn equal(n: usize, delay_s: f64, block_time_s: f64, blocks: u64, seed: u64) -> ForkParams {
        ForkParams {
            shares: vec![1.0 / n.max(1) as f64; n],
            delay_s,
            block_time_s,
            blocks,
            seed,
        }
    }

    /// Whether [`run`] can use these parameters (it returns an empty result otherwise).
    pub fn check(&self) -> Result<(), ForkParamsError> {
        if self.shares.is_empty() {
            return Err(ForkParamsError::NoNodes);
        }
        let sum: f64 = self.shares.iter().sum();
        if self.shares.iter().any(|s| !s.is_finite() || *s < 0.0)
            || sum.is_nan()
            || sum <= 0.0
            || !sum.is_finite()
        {
            return Err(ForkParamsError::BadShares);
        }
        if !self.delay_s.is_finite() || self.delay_s < 0.0 {
            return Err(ForkParamsError::BadDelay);
        }
        if !self.block_time_s.is_finite() || self.block_time_s <= 0.0 {
            return Err(ForkParamsError::BadBlockTime);
        }
        Ok(())
    }
}

/// What a forks run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ForkResult {
    /// Blocks found.
    pub blocks: u64,
    /// Blocks not on the final main chain.
    pub stale: u64,
    /// Reorganisations by depth (blocks removed from a node's active chain), over all nodes.
    pub reorgs: BTreeMap<u32, u64>,
    /// The first `trace_blocks` blocks' events, in order.
    pub trace: Vec<TraceEvent>,
    /// The traced blocks that ended stale (for [`fork_diagram`](super::chart::fork_diagram)).
    pub traced_stale: Vec<BlockHash>,
    /// Whether every node ended on the same tip (when not, their tips have equal work).
    pub tips_agree: bool,
    /// 95% interval of the stale rate from the independent cycles between regeneration points
    /// (ratio estimator); `(0, 1)` with fewer than two cycles.
    pub ci95: (f64, f64),
    /// Independent cycles the interval rests on.
    pub cycles: u64,
}

impl ForkResult {
    /// Stale blocks over blocks found (0 for no blocks).
    pub fn stale_rate(&self) -> f64 {
        if self.blocks == 0 {
            0.0
        } else {
            self.stale as f64 / self.blocks as f64
        }
    }
}

/// One thing that happened to a traced block.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEvent {
    /// Virtual time, seconds from the start.
    pub time_s: f64,
    /// The node it happened at.
    pub node: usize,
    /// What happened.
    pub kind: TraceKind,
    /// For `Found` and `Received` the block's; for `Reorg` the node's new tip's.
    pub height: u32,
    /// The block's hash (for `Reorg`, the new tip's).
    pub hash: BlockHash,
    /// That block's parent's hash.
    pub parent: BlockHash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// What a [`TraceEvent`] records.
pub enum TraceKind {
    /// The node found the block (and made it its tip).
    Found,
    /// The block reached the node.
    Received,
    /// The block just received moved the node's tip to another branch, removing `depth` blocks
    /// from its active chain; `hash` is the new tip.
    Reorg {
        /// Blocks removed from the node's active chain.
        depth: u32,
    },
}

/// The first-order stale rate `1 − e^(−d/T)`: the chance that another block is found while one
/// propagates (the issue's `theory`).
pub fn first_order_stale_rate(delay_s: f64, block_time_s: f64) -> f64 {
    1.0 - (-delay_s / block_time_s).exp()
}

/// This model's stale rate to first order in d/T: `(1 − Σ sᵢ²)(1 − e^(−d/T))`, the chance that
/// the next block comes within the delay from a node other than the last block's finder (a node
/// builds on its own blocks at once). `(1 − 1/N)(1 − e^(−d/T))` for N equal nodes.
pub fn expected_stale_rate(p: &ForkParams) -> f64 {
    let sum: f64 = p.shares.iter().sum();
    if sum.is_nan() || sum <= 0.0 {
        return 0.0;
    }
    let same: f64 = p.shares.iter().map(|s| (s / sum) * (s / sum)).sum();
    (1.0 - same) * first_order_stale_rate(p.delay_s, p.block_time_s)
}

/// A pending delivery: block `block` reaches every node but its finder at `time`.
#[derive(Clone, Copy, Debug)]
struct Delivery {
    time: f64,
    seq: u64,
    block: usize,
}

impl PartialEq for Delivery {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Delivery {}
impl PartialOrd for Delivery {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delivery {
    /// Reversed, so `BinaryHeap` pops the earliest (then the first sent).
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .time
            .total_cmp(&self.time)
            .then(other.seq.cmp(&self.seq))
    }
}

/// One node: its chain and the blocks waiting for their parent.
struct Node {
    chain: Chain,
    orphans: HashMap<[u8; 32], Vec<usize>>,
}

/// What one segment measured.
#[derive(Default)]
struct Segment {
    blocks: u64,
    stale: u64,
    reorgs: BTreeMap<u32, u64>,
    trace: Vec<TraceEvent>,
    traced_stale: Vec<BlockHash>,
    tips_agree: bool,
    cycles: Cycles,
}

/// Runs the network for `p.blocks` blocks (see the module documentation) and traces the first
/// `trace_blocks` of them (0: no trace; at most [`SEGMENT_BLOCKS`](super::grind::SEGMENT_BLOCKS)). Parameters that fail
/// [`ForkParams::check`] give an empty result.
pub fn run(p: &ForkParams, trace_blocks: u64) -> ForkResult {
    let empty = ForkResult {
        blocks: 0,
        stale: 0,
        reorgs: BTreeMap::new(),
        trace: Vec::new(),
        traced_stale: Vec::new(),
        tips_agree: true,
        ci95: (0.0, 1.0),
        cycles: 0,
    };
    if p.check().is_err() || p.blocks == 0 {
        return empty;
    }
    let kernel = sim_kernel();
    let parts: Vec<Segment> = in_segments(p.blocks, p.seed, |i, quota, seed| {
        let trace = if i == 0 { trace_blocks } else { 0 };
        segment(p, quota, trace, seed, kernel)
    });
    let mut out = empty;
    let mut cycles = Cycles::default();
    for s in parts {
        out.blocks += s.blocks;
        out.stale += s.stale;
        for (d, c) in s.reorgs {
            *out.reorgs.entry(d).or_default() += c;
        }
        out.trace.extend(s.trace);
        out.traced_stale.extend(s.traced_stale);
        out.tips_agree &= s.tips_agree;
        cycles.merge(&s.cycles);
    }
    out.ci95 = cycles.ratio_ci95();
    out.cycles = cycles.n;
    out
}

/// Delivers block `b` to `node` (and any buffered children it frees), calling `on_reorg` with
/// the depth and the chain after each reorganisation it causes. `owned` is block `b` itself when
/// the caller hands it over (no copy is made then); it must not be one the node will buffer.
fn deliver(
    node: &mut Node,
    blocks: &[Block],
    b: usize,
    owned: Option<Block>,
    mut on_reorg: impl FnMut(u32, &Chain),
) {
    // `b` first, then the children it frees, last freed first.
    let mut next = Some((b, owned));
    let mut pending: Vec<usize> = Vec::new();
    while let Some((b, owned)) = next.take().or_else(|| pending.pop().map(|c| (c, None))) {
        let old = node.chain.tip().hash;
        let block = owned.unwrap_or_else(|| blocks[b].clone());
        match node.chain.submit(block, SIM_NOW) {
            Ok(_) => {
                let tip = node.chain.tip();
                if tip.hash != old && tip.parent != old {
                    // Walk the old branch back to the new active chain.
                    let mut depth = 0u32;
                    let mut cursor = node.chain.by_hash(&old);
                    while let Some(e) = cursor {
                        if node.chain.get(e.height).map(|a| a.hash) == Some(e.hash) {
                            break;
                        }
                        depth += 1;
                        cursor = node.chain.by_hash(&e.parent);
                    }
                    if depth > 0 {
                        on_reorg(depth, &node.chain);
                    }
                }
                if !node.orphans.is_empty() {
                    let hash = blocks[b].block_hash().to_byte_array();
                    if let Some(children) = node.orphans.remove(&hash) {
                        pending.extend(children);
                    }
                }
            }
            Err(SubmitError::Rejected(crate::chain::Reject::PrevBlockNotFound)) => {
                let parent = blocks[b].header.prev_blockhash.to_byte_array();
                node.orphans.entry(parent).or_default().push(b);
            }
            // Every block here is valid and new to the node; nothing else can happen.
            Err(_) => {}
        }
    }
}

fn hash_of(bytes: &[u8; 32]) -> BlockHash {
    BlockHash::from_byte_array(*bytes)
}

/// One segment on fresh chains: `quota` blocks, then on to a regeneration point.
fn segment(p: &ForkParams, quota: u64, trace_blocks: u64, seed: u64, kernel: Kernel) -> Segment {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = p.shares.len();
    let sum: f64 = p.shares.iter().sum();
    let mut cumulative = Vec::with_capacity(n);
    let mut acc = 0.0;
    for s in &p.shares {
        acc += s / sum;
        cumulative.push(acc);
    }
    let payouts: Vec<ScriptBuf> = (0..n).map(node_payout).collect();
    let mut nodes: Vec<Node> = (0..n)
        .map(|_| Node {
            chain: sim_chain(),
            orphans: HashMap::new(),
        })
        .collect();
    let mut blocks: Vec<Block> = Vec::new();
    let mut finders: Vec<usize> = Vec::new();
    let mut heights: Vec<u32> = Vec::new();
    let mut queue: BinaryHeap<Delivery> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut out = Segment::default();
    let mut trace: Vec<TraceEvent> = Vec::new();
    let mut now: f64;
    let mut next_find = exp_wait(&mut rng, p.block_time_s);
    // The last regeneration point: blocks found and node 0's height there.
    let (mut cycle_found, mut cycle_height) = (0u64, 0u32);
    loop {
        let deliver_first = queue.peek().is_some_and(|d| d.time <= next_find);
        if deliver_first {
            let Some(d) = queue.pop() else { break };
            now = d.time;
            let traced = (d.block as u64) < trace_blocks;
            let finder = finders[d.block];
            // The last node to receive the block may take it rather than a copy, when nothing
            // will need it again: it is not traced and no node buffers blocks (so none can
            // buffer it, and this node has its parent).
            let last = if finder == n - 1 {
                n.wrapping_sub(2)
            } else {
                n - 1
            };
            for k in 0..n {
                if k == finder {
                    continue;
                }
                let owned = if k == last
                    && !traced
                    && nodes.iter().all(|nd| nd.orphans.is_empty())
                    && nodes[k]
                        .chain
                        .by_hash(&blocks[d.block].header.prev_blockhash.to_byte_array())
                        .is_some()
                {
                    // A stand-in with the header (all that is read of it from now on).
                    let header = blocks[d.block].header;
                    Some(std::mem::replace(
                        &mut blocks[d.block],
                        Block {
                            header,
                            txdata: Vec::new(),
                        },
                    ))
                } else {
                    None
                };
                let node = &mut nodes[k];
                if traced {
                    trace.push(event(
                        now,
                        k,
                        TraceKind::Received,
                        &blocks[d.block],
                        heights[d.block],
                    ));
                }
                let mut reorgs = Vec::new();
                deliver(node, &blocks, d.block, owned, |depth, chain| {
                    let tip = chain.tip();
                    reorgs.push((depth, tip.height, hash_of(&tip.hash), hash_of(&tip.parent)));
                });
                for (depth, height, hash, parent) in reorgs {
                    *out.reorgs.entry(depth).or_default() += 1;
                    if traced {
                        trace.push(TraceEvent {
                            time_s: now,
                            node: k,
                            kind: TraceKind::Reorg { depth },
                            height,
                            hash,
                            parent,
                        });
                    }
                }
            }
        } else {
            if out.blocks >= quota && queue.is_empty() {
                // A regeneration point once every node holds the same tip.
                let tip = nodes[0].chain.tip().hash;
                if nodes.iter().all(|nd| nd.chain.tip().hash == tip) {
                    break;
                }
                if out.blocks >= quota + FORCE_END_AFTER {
                    break;
                }
            }
            if out.blocks >= quota + FORCE_END_AFTER {
                // Stop finding; deliver what is in flight, then end.
                next_find = f64::INFINITY;
                continue;
            }
            now = next_find;
            next_find = now + exp_wait(&mut rng, p.block_time_s);
            let u: f64 = rng.gen();
            let k = cumulative.iter().position(|c| u < *c).unwrap_or(n - 1);
            let index = blocks.len();
            let time = SIM_TIME0.saturating_add(index as u32);
            let block = mine_on_tip(&nodes[k].chain, time, index as u64, &payouts[k], kernel);
            blocks.push(block);
            finders.push(k);
            heights.push(nodes[k].chain.height() + 1);
            out.blocks += 1;
            if (index as u64) < trace_blocks {
                trace.push(event(
                    now,
                    k,
                    TraceKind::Found,
                    &blocks[index],
                    heights[index],
                ));
            }
            deliver(&mut nodes[k], &blocks, index, None, |_, _| {});
            queue.push(Delivery {
                time: now + p.delay_s,
                seq,
                block: index,
            });
            seq += 1;
        }
        if queue.is_empty() {
            let tip = nodes[0].chain.tip().hash;
            if nodes.iter().all(|nd| nd.chain.tip().hash == tip) {
                let height = nodes[0].chain.height();
                let found = out.blocks - cycle_found;
                let kept = u64::from(height - cycle_height);
                out.cycles
                    .add(found.saturating_sub(kept) as f64, found as f64);
                cycle_found = out.blocks;
                cycle_height = height;
            }
        }
    }
    let main = &nodes[0].chain;
    out.stale = out.blocks.saturating_sub(u64::from(main.height()));
    let tip = main.tip().hash;
    out.tips_agree = nodes.iter().all(|nd| nd.chain.tip().hash == tip);
    for b in blocks.iter().take(trace_blocks as usize) {
        let hash = b.block_hash();
        let on_main = main
            .by_hash(&hash.to_byte_array())
            .and_then(|e| main.get(e.height))
            .is_some_and(|e| e.hash == hash.to_byte_array());
        if !on_main {
            out.traced_stale.push(hash);
        }
    }
    out.trace = trace;
    out
}

/// An exponential wait of mean `mean`.
fn exp_wait(rng: &mut StdRng, mean: f64) -> f64 {
    let u: f64 = rng.gen();
    -(1.0 - u).ln() * mean
}

/// Node `k`'s coinbase output script: a push of its index, so a block names its finder.
pub(crate) fn node_payout(k: usize) -> ScriptBuf {
    let mut bytes = vec![0x08];
    bytes.extend_from_slice(&(k as u64).to_le_bytes());
    ScriptBuf::from_bytes(bytes)
}

fn event(time_s: f64, node: usize, kind: TraceKind, block: &Block, height: u32) -> TraceEvent {
    TraceEvent {
        time_s,
        node,
        kind,
        height,
        hash: block.block_hash(),
        parent: block.header.prev_blockhash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wilson score 95% interval (a private copy of `stats::wilson95`).
    fn wilson(k: u64, n: u64) -> (f64, f64) {
        if n == 0 {
            return (0.0, 1.0);
        }
        let (n, p, z) = (n as f64, k as f64 / n as f64, 1.96f64);
        let d = 1.0 + z * z / n;
        let c = (p + z * z / (2.0 * n)) / d;
        let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
        ((c - h).max(0.0), (c + h).min(1.0))
    }

    #[test]
    fn no_delay_no_stale_blocks() {
        let p = ForkParams::equal(4, 0.0, 600.0, 3_000, 7);
        let r = run(&p, 0);
        assert!(r.blocks >= 3_000);
        assert_eq!(r.stale, 0);
        assert!(r.reorgs.is_empty());
        assert!(r.tips_agree);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let p = ForkParams::equal(3, 30.0, 600.0, 2_000, 11);
        let a = run(&p, 20);
        let b = run(&p, 20);
        assert_eq!(a, b);
        let c = run(&ForkParams { seed: 12, ..p }, 20);
        assert_ne!(a.trace, c.trace);
    }

    /// Small d/T with 10 equal nodes: the stale rate lies within the Wilson 95% interval of
    /// this model's first-order expectation (1 − 1/N)(1 − e^(−d/T)); with N = 10 that differs
    /// from the bare 1 − e^(−d/T) by 10%, more than the interval (so both are printed).
    #[test]
    fn stale_rate_matches_theory_at_small_delay() {
        let t0 = std::time::Instant::now();
        let p = ForkParams::equal(10, 6.0, 600.0, 20_000, 1);
        let r = run(&p, 0);
        let (lo, hi) = wilson(r.stale, r.blocks);
        let want = expected_stale_rate(&p);
        eprintln!(
            "stale {} of {} = {:.5}, wilson ({lo:.5}, {hi:.5}), cycles ci ({:.5}, {:.5}); \
             expected (1-1/N)(1-e^-d/T) = {want:.5}, 1-e^-d/T = {:.5}; reorgs {:?}; {:?}",
            r.stale,
            r.blocks,
            r.stale_rate(),
            r.ci95.0,
            r.ci95.1,
            first_order_stale_rate(p.delay_s, p.block_time_s),
            r.reorgs,
            t0.elapsed()
        );
        assert!(lo <= want && want <= hi, "{want} outside ({lo}, {hi})");
        assert!(r.ci95.0 <= want && want <= r.ci95.1);
    }

    /// The bare theory 1 − e^(−d/T) holds where the model's (1 − 1/N) factor is near 1:
    /// with 32 nodes it is 3% off, a quarter of the interval's half-width at d/T = 0.01 and 20k
    /// blocks. (Long runs, 400k blocks: N = 32, d/T = 0.01 gives 0.00961, interval (0.00931,
    /// 0.00991), against 0.00964 expected and 0.00995 bare.)
    #[test]
    fn stale_rate_matches_bare_first_order_theory_with_many_nodes() {
        let p = ForkParams::equal(32, 6.0, 600.0, 20_000, 2);
        let r = run(&p, 0);
        let (lo, hi) = wilson(r.stale, r.blocks);
        let bare = first_order_stale_rate(p.delay_s, p.block_time_s);
        eprintln!(
            "32 nodes: stale {:.5} wilson ({lo:.5}, {hi:.5}), 1-e^-d/T {bare:.5}",
            r.stale_rate()
        );
        assert!(lo <= bare && bare <= hi, "{bare} outside ({lo}, {hi})");
    }

    #[test]
    fn ten_thousand_blocks_four_nodes_is_fast() {
        let t0 = std::time::Instant::now();
        let p = ForkParams::equal(4, 60.0, 600.0, 10_000, 3);
        let r = run(&p, 0);
        let took = t0.elapsed();
        eprintln!(
            "10k blocks, 4 nodes, d/T = 0.1: {took:?}, stale {} ({:.4}), reorgs {:?}",
            r.stale,
            r.stale_rate(),
            r.reorgs
        );
        assert!(r.stale > 0 && !r.reorgs.is_empty());
    }

    #[test]
    fn orphans_wait_for_their_parent() {
        let kernel = sim_kernel();
        let mut source = sim_chain();
        let mut blocks = Vec::new();
        for i in 0..3 {
            let b = mine_on_tip(
                &source,
                SIM_TIME0 + i,
                u64::from(i),
                &node_payout(0),
                kernel,
            );
            source.submit(b.clone(), SIM_NOW).unwrap();
            blocks.push(b);
        }
        let mut node = Node {
            chain: sim_chain(),
            orphans: HashMap::new(),
        };
        for b in [2, 1, 0] {
            deliver(&mut node, &blocks, b, None, |_, _| {});
        }
        assert_eq!(node.chain.tip().hash, source.tip().hash);
        assert!(node.orphans.is_empty());
    }
}
