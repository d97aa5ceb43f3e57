//! Double-spend and finality races, run on the project's own chain code.
//!
//! # The model (Rosenfeld's, with n = z)
//!
//! A merchant is paid in a block; the race starts at the block before it (genesis here). Each
//! new block is the attacker's with probability `q` (its share of the hash rate) and the honest
//! network's otherwise (`p = 1 − q`); the honest network's first block of the race holds the
//! payment, the attacker's private branch from the same parent holds the double spend. The
//! merchant accepts once the honest branch has `z` blocks, counting the payment's (Rosenfeld's
//! "n confirmations"). From then on the attacker publishes its branch as soon as it is strictly
//! longer, that is has more work: at equal work the first seen, the honest branch, stays.
//!
//! - With `premine` the attacker starts with one block already mined on the parent: Rosenfeld
//!   (2014), "Analysis of hashrate-based double spending", whose closed form is
//!   [`theory::exact`](super::theory::exact) (also Grunspan & Pérez-Marco 2017): when the honest
//!   branch reaches `z` the attacker's blocks are negative-binomial, and from `k` blocks short of
//!   strictly longer it ever gets there with probability `(q/p)^k`.
//! - Without it this is finality: the probability that a block `z` deep (the block and `z − 1`
//!   on top of it) is ever reorganised away by an attacker who started a private branch at its
//!   parent when it was found, [`theory::finality`](super::theory::finality).
//! - Nakamoto's §11 figure ([`theory::nakamoto`](super::theory::nakamoto)) approximates the
//!   attacker's progress by a Poisson variable: above the exact figure for small z and below it
//!   after (from z = 2 at q = 0.1, from z = 8 at q = 0.4); the sim is checked against the exact
//!   forms.
//!
//! With `q ≥ 1/2` the attacker always catches up (the 51% attack). The attacker gives up when
//! `give_up = Some(g)` and it is `g` blocks behind after acceptance (never before), and every
//! trial is cut off, counted in [`RaceResult::cut_off`] and as a failure, once the attacker's
//! remaining chance `(q/p)^deficit` is below 10⁻¹² (for `q < 1/2`) or the trial has run
//! [`MAX_TRIAL_BLOCKS`] blocks (for `q ≥ 1/2`, where the time to catch up has a heavy tail: at
//! `q = 1/2` its mean is infinite).
//!
//! # Real blocks, real fork choice
//!
//! Only who finds the next block is drawn at random. The blocks are real regtest blocks (nBits
//! 0x207fffff, nonces ground with [`Kernel::best`]): once per run an honest branch H1, H2, ...
//! and an attacker branch A1, A2, ... are built from genesis (distinct coinbase tags, header
//! times one second apart), extended on demand. Each trial connects them to a fresh
//! [`Chain`] (full validation, most-work fork choice, first seen wins ties): every honest block
//! as it is found, the attacker's whole branch when the counters say it is strictly longer. The
//! attack succeeds when the chain has reorganised to the attacker's tip; the chain code, not a
//! comparison of counters, decides it.
//!
//! Trials run in chunks of [`CHUNK`] over rayon, each chunk drawing from its own
//! `StdRng::seed_from_u64` derived from the seed and the chunk's index, so a result depends only
//! on the parameters and the seed, never on the number of threads.

use crate::block::Template;
use crate::chain::{Accepted, Chain, ChainParams, REGTEST_POW_LIMIT_BITS};
use crate::hash::Kernel;
use crate::pow::retarget::RetargetParams;
use crate::pow::CompactTarget;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, ScriptBuf};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::sync::{Arc, RwLock};

/// Trials per chunk; each chunk has its own random stream.
pub const CHUNK: u64 = 1024;

/// Blocks (both sides, after the race start) after which a trial is cut off: it bounds the
/// trials at `q ≥ 1/2`, which always succeed in the end but may take arbitrarily long.
pub const MAX_TRIAL_BLOCKS: u64 = 1_000_000;

/// Below this remaining chance of success a trial is cut off (for `q < 1/2`).
pub(crate) const CUT_OFF_CHANCE: f64 = 1e-12;

/// Blocks each branch is built with before any trial asks for more.
const INITIAL_BRANCH: usize = 256;

/// The clock passed to [`Chain::submit`]: far beyond every header time.
const NOW: u32 = u32::MAX / 2;

/// Coinbase tags (extranonces) of the two branches.
const HONEST_TAG: u64 = 0x484f_4e45_5354; // "HONEST"
const ATTACKER_TAG: u64 = 0x4154_5441_434b; // "ATTACK"

/// One experiment: `trials` races at attacker share `q` and `z` confirmations.
#[derive(Clone, Debug, PartialEq)]
pub struct RaceParams {
    /// The attacker's share of the hash rate, in [0, 1] (values outside are clamped; NaN is 0).
    pub q: f64,
    /// Honest blocks, the payment's included, before the merchant accepts (finality: the depth).
    pub z: u32,
    /// Whether the attacker starts with one block pre-mined on the parent (Rosenfeld's model,
    /// [`theory::exact`](super::theory::exact)); without it the race is
    /// [`theory::finality`](super::theory::finality)'s.
    pub premine: bool,
    /// Give up when this many blocks behind after the merchant accepted.
    pub give_up: Option<u32>,
    /// Independent races to run.
    pub trials: u64,
    /// Seed of the trials' random draws; the same seed gives the same result.
    pub seed: u64,
}

/// What the trials of one [`RaceParams`] gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RaceResult {
    /// Races run.
    pub trials: u64,
    /// Races the attacker won: its branch became strictly longer after the merchant accepted,
    /// so the chain reorganised onto it.
    pub successes: u64,
    /// Mean blocks (both sides) from the payment's race start until publication, over successful
    /// attacks; the pre-mined block is not counted. 0 when no attack succeeded.
    pub mean_blocks_to_success: f64,
    /// Trials cut off because the attacker's remaining chance was below 1e-12 (counted as
    /// failures), or, for `q ≥ 1/2`, because they ran [`MAX_TRIAL_BLOCKS`] blocks (at `q = 1`,
    /// where the payment is never confirmed, every trial with `z ≥ 1`). Without `give_up` this
    /// is nearly every failure.
    pub cut_off: u64,
    /// Blocks connected to the trials' chains in all (for the blocks/s benchmark): every honest
    /// block of every trial and the attacker's blocks at each publication. The two branches
    /// themselves are built once per run and not counted.
    pub blocks: u64,
}

/// Runs `p.trials` double-spend races (see the module docs) on all of rayon's threads.
/// Deterministic for given parameters and seed, whatever the thread count.
pub fn race(p: &RaceParams) -> RaceResult {
    let q = if p.q.is_nan() {
        0.0
    } else {
        p.q.clamp(0.0, 1.0)
    };
    let setup = Setup::new(q, p);
    let chunks = p.trials.div_ceil(CHUNK);
    let total = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let first = chunk * CHUNK;
            let n = CHUNK.min(p.trials - first);
            setup.run_chunk(chunk, n)
        })
        .reduce(Tally::default, Tally::add);
    RaceResult {
        trials: p.trials,
        successes: total.successes,
        mean_blocks_to_success: if total.successes == 0 {
            0.0
        } else {
            total.blocks_to_success as f64 / total.successes as f64
        },
        cut_off: total.cut_off,
        blocks: total.connected,
    }
}

/// Integer sums over trials: adding them in any order gives the same result.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    successes: u64,
    blocks_to_success: u64,
    cut_off: u64,
    connected: u64,
}

impl Tally {
    fn add(self, o: Tally) -> Tally {
        Tally {
            successes: self.successes + o.successes,
            blocks_to_success: self.blocks_to_success + o.blocks_to_success,
            cut_off: self.cut_off + o.cut_off,
            connected: self.connected + o.connected,
        }
    }
}

/// How one trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The chain reorganised to the attacker's branch after this many blocks (both sides,
    /// pre-mined block excluded).
    Success(u64),
    /// The attacker gave up, or published and the chain kept the honest branch.
    Failure,
    CutOff,
}

/// What every trial of a run shares: the parameters and the two pre-built branches.
struct Setup {
    q: f64,
    z: u32,
    premine: bool,
    give_up: Option<u32>,
    seed: u64,
    /// Cut a trial off once the attacker is this many blocks short of strictly longer; `None`
    /// for `q ≥ 1/2`.
    cut_deficit: Option<u64>,
    params: ChainParams,
    retarget: RetargetParams,
    honest: Branch,
    attacker: Branch,
}

impl Setup {
    fn new(q: f64, p: &RaceParams) -> Setup {
        let params = ChainParams::regtest();
        let retarget = RetargetParams::fixed(
            CompactTarget::from_consensus(REGTEST_POW_LIMIT_BITS),
            params.pow_limit,
        );
        let kernel = Kernel::best();
        Setup {
            q,
            z: p.z,
            premine: p.premine,
            give_up: p.give_up,
            seed: p.seed,
            cut_deficit: cut_deficit(q),
            honest: Branch::new(&params, HONEST_TAG, kernel),
            attacker: Branch::new(&params, ATTACKER_TAG, kernel),
            params,
            retarget,
        }
    }

    fn run_chunk(&self, chunk: u64, trials: u64) -> Tally {
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ (chunk + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut view = View {
            honest: self.honest.snapshot(),
            attacker: self.attacker.snapshot(),
        };
        let mut tally = Tally::default();
        for _ in 0..trials {
            let (outcome, connected) = self.trial(&mut rng, &mut view);
            tally.connected += connected;
            match outcome {
                Outcome::Success(blocks) => {
                    tally.successes += 1;
                    tally.blocks_to_success += blocks;
                }
                Outcome::Failure => {}
                Outcome::CutOff => tally.cut_off += 1,
            }
        }
        tally
    }

    /// One race on a fresh chain: its outcome and the blocks connected.
    fn trial(&self, rng: &mut StdRng, view: &mut View) -> (Outcome, u64) {
        let mut chain = Chain::new(self.params.clone(), self.retarget.clone());
        let premined = u64::from(self.premine);
        let z = u64::from(self.z);
        // Blocks on each branch: honest (submitted as found), attacker's (private until
        // published, the pre-mined one included).
        let (mut h, mut a) = (0u64, premined);
        let mut connected = 0u64;
        loop {
            if h >= z {
                if a > h {
                    // Publish the whole private branch; the chain decides.
                    for i in 1..=a {
                        submit(&mut chain, view.attacker(&self.attacker, i).block.clone());
                    }
                    connected += a;
                    let won = chain.tip().hash == view.attacker(&self.attacker, a).hash;
                    let outcome = if won {
                        Outcome::Success(h + a - premined)
                    } else {
                        Outcome::Failure
                    };
                    return (outcome, connected);
                }
                if self.give_up.is_some_and(|g| h - a >= u64::from(g)) {
                    return (Outcome::Failure, connected);
                }
            } else if self.q >= 1.0 {
                // The honest network finds nothing: the payment is never confirmed.
                return (Outcome::CutOff, connected);
            }
            if self.cut_deficit.is_some_and(|d| a <= h && h + 1 - a >= d) {
                return (Outcome::CutOff, connected);
            }
            if h + a - premined >= MAX_TRIAL_BLOCKS {
                return (Outcome::CutOff, connected);
            }
            if rng.gen_bool(self.q) {
                a += 1;
            } else {
                h += 1;
                let block = view.honest(&self.honest, h).block.clone();
                submit(&mut chain, block);
                connected += 1;
            }
        }
    }
}

/// The smallest deficit `d` (blocks short of strictly longer) with `(q/p)^d` below
/// [`CUT_OFF_CHANCE`]; `None` for `q ≥ 1/2`, where the attacker always catches up.
fn cut_deficit(q: f64) -> Option<u64> {
    if q >= 0.5 {
        return None;
    }
    let ratio = q / (1.0 - q);
    let mut d = 1u64;
    let mut chance = ratio;
    while chance >= CUT_OFF_CHANCE {
        d += 1;
        chance *= ratio;
    }
    Some(d)
}

/// Connects a block of a pre-built branch. They are valid by construction (built for these
/// rules, parents first), so a refusal is a bug in this module, not something a user can cause.
fn submit(chain: &mut Chain, block: Block) -> Accepted {
    match chain.submit(block, NOW) {
        Ok(accepted) => accepted,
        Err(e) => panic!("a pre-built race block was refused: {e}"),
    }
}

/// A block of a branch and its hash (raw byte order).
#[derive(Clone)]
struct Built {
    block: Block,
    hash: [u8; 32],
}

/// A branch from genesis, H1, H2, ... (index 0 is height 1), built on demand and shared by all
/// threads; trials read snapshots of it without locking.
struct Branch {
    tag: u64,
    kernel: Kernel,
    params: ChainParams,
    genesis: BlockHash,
    blocks: RwLock<Arc<Vec<Built>>>,
}

impl Branch {
    fn new(params: &ChainParams, tag: u64, kernel: Kernel) -> Branch {
        let branch = Branch {
            tag,
            kernel,
            params: params.clone(),
            genesis: params.genesis.block_hash(),
            blocks: RwLock::new(Arc::new(Vec::new())),
        };
        branch.at_least(INITIAL_BRANCH);
        branch
    }

    fn snapshot(&self) -> Arc<Vec<Built>> {
        Arc::clone(&self.blocks.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A snapshot of at least `len` blocks, building (at least doubling) when needed.
    fn at_least(&self, len: usize) -> Arc<Vec<Built>> {
        let mut guard = self.blocks.write().unwrap_or_else(|e| e.into_inner());
        if guard.len() >= len {
            return Arc::clone(&guard);
        }
        let target = len.max(2 * guard.len());
        let mut blocks = Vec::with_capacity(target);
        blocks.extend(guard.iter().cloned());
        while blocks.len() < target {
            let height = blocks.len() as u32 + 1;
            let parent = blocks
                .last()
                .map_or(self.genesis, |b: &Built| BlockHash::from_byte_array(b.hash));
            blocks.push(self.build(parent, height));
        }
        *guard = Arc::new(blocks);
        Arc::clone(&guard)
    }

    /// The branch's block at `height` on `parent`: header time genesis + height seconds.
    fn build(&self, parent: BlockHash, height: u32) -> Built {
        let genesis_time = self.params.genesis.header.time;
        let time = |h: u32| genesis_time + h;
        // Median of the parent and its ancestors, at most 11 (times increase by height).
        let lowest = height.saturating_sub(11);
        let median_time_past = time(lowest + (height - lowest) / 2);
        let template = Template::builder(parent, height)
            .median_time_past(median_time_past)
            .time(time(height))
            .bits(CompactTarget::from_consensus(REGTEST_POW_LIMIT_BITS))
            .value(self.params.subsidy(height))
            .payout(ScriptBuf::from_bytes(vec![0x51]))
            .build();
        // REGTEST_POW_LIMIT_BITS decode to a valid target; this cannot fail.
        let template = match template {
            Ok(t) => t,
            Err(e) => panic!("nBits {REGTEST_POW_LIMIT_BITS:#x} refused: {e}"),
        };
        let job = template.job(self.tag);
        let mut hits = Vec::new();
        let mut first = 0u32;
        // Half of all nonces pass: 64 tries fail with probability 2^-64.
        while hits.is_empty() {
            self.kernel.scan(&job.job, first, 64, &mut hits);
            first = first.wrapping_add(64);
        }
        let block = template.assemble(self.tag, hits[0]);
        let hash = crate::block::header_hash(&block.header);
        Built { block, hash }
    }
}

/// A chunk's snapshots of the two branches, refreshed when a trial runs past their end.
struct View {
    honest: Arc<Vec<Built>>,
    attacker: Arc<Vec<Built>>,
}

impl View {
    /// Block `height` (from 1) of the honest branch.
    fn honest(&mut self, branch: &Branch, height: u64) -> &Built {
        Self::get(&mut self.honest, branch, height)
    }

    fn attacker(&mut self, branch: &Branch, height: u64) -> &Built {
        Self::get(&mut self.attacker, branch, height)
    }

    fn get<'a>(snapshot: &'a mut Arc<Vec<Built>>, branch: &Branch, height: u64) -> &'a Built {
        let index = (height - 1) as usize;
        if index >= snapshot.len() {
            *snapshot = branch.at_least(index + 1);
        }
        &snapshot[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::stats::wilson95;
    use crate::experiment::theory::{exact, finality};
    use std::time::Instant;

    fn params(q: f64, z: u32, premine: bool, trials: u64) -> RaceParams {
        RaceParams {
            q,
            z,
            premine,
            give_up: None,
            trials,
            seed: 14,
        }
    }

    /// Runs and checks each (q, z) against `theory` within the Wilson 95% interval.
    fn agrees(q: f64, zs: &[(u32, u64)], premine: bool, theory: fn(f64, u32) -> f64) {
        let mut bad = Vec::new();
        for &(z, trials) in zs {
            let start = Instant::now();
            let r = race(&params(q, z, premine, trials));
            let (lo, hi) = wilson95(r.successes, r.trials);
            let t = theory(q, z);
            eprintln!(
                "q={q} z={z} premine={premine}: {}/{} = {:.6} [{lo:.6}, {hi:.6}] theory {t:.6} \
                 cut {} mean blocks {:.2}, {} blocks in {:.2?}",
                r.successes,
                r.trials,
                r.successes as f64 / r.trials as f64,
                r.cut_off,
                r.mean_blocks_to_success,
                r.blocks,
                start.elapsed()
            );
            if !(lo..=hi).contains(&t) {
                bad.push((z, t, lo, hi));
            }
        }
        assert!(bad.is_empty(), "outside the 95% interval: {bad:?}");
    }

    #[test]
    fn double_spend_matches_the_exact_formula_at_q_0_1() {
        // Fewer trials where the probability is large; ~10.7 M blocks in all.
        let zs = [
            (1, 50_000),
            (2, 100_000),
            (3, 200_000),
            (4, 200_000),
            (5, 100_000),
            (6, 100_000),
        ];
        agrees(0.1, &zs, true, exact);
    }

    #[test]
    fn double_spend_matches_the_exact_formula_at_q_0_3() {
        let zs: Vec<(u32, u64)> = (1..=10).map(|z| (z, 20_000)).collect();
        agrees(0.3, &zs, true, exact);
    }

    #[test]
    fn finality_matches_its_formula_at_q_0_2() {
        let zs: Vec<(u32, u64)> = (1..=4).map(|k| (k, 50_000)).collect();
        agrees(0.2, &zs, false, finality);
    }

    #[test]
    fn a_majority_attacker_always_succeeds() {
        for q in [0.5, 0.6] {
            for premine in [true, false] {
                for z in [1, 3, 6] {
                    let r = race(&params(q, z, premine, 200));
                    assert_eq!(
                        (r.successes, r.cut_off),
                        (200, 0),
                        "q={q} z={z} premine={premine}"
                    );
                    assert!(r.mean_blocks_to_success > f64::from(z));
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_result_on_any_number_of_threads() {
        let p = RaceParams {
            give_up: Some(3),
            ..params(0.3, 3, true, 5_000)
        };
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map(|pool| pool.install(|| race(&p)))
        };
        let (one, two) = (on(1).ok(), on(2).ok());
        assert!(one.is_some());
        assert_eq!(one, two);
        let other = race(&RaceParams {
            seed: 15,
            ..p.clone()
        });
        assert_ne!(one, Some(other));
    }

    #[test]
    fn edge_cases_end_at_once() {
        // z = 0 with a pre-mined block: published before any honest block (exact = 1).
        let r = race(&params(0.1, 0, true, 100));
        assert_eq!(
            (r.successes, r.mean_blocks_to_success, r.blocks),
            (100, 0.0, 100)
        );
        // q = 0: no chance at all; q = 1: the payment is never confirmed.
        for q in [0.0, 1.0, f64::NAN, -3.0, 7.0] {
            let r = race(&params(q, 2, true, 100));
            assert_eq!((r.successes, r.cut_off), (0, 100), "q={q}");
        }
        assert_eq!(race(&params(0.3, 2, true, 0)), RaceResult::default());
    }

    #[test]
    fn giving_up_lowers_the_success_rate() {
        let full = race(&params(0.3, 3, true, 20_000));
        let quitter = race(&RaceParams {
            give_up: Some(1),
            ..params(0.3, 3, true, 20_000)
        });
        assert!(
            quitter.successes < full.successes,
            "{} vs {}",
            quitter.successes,
            full.successes
        );
        assert!(quitter.blocks < full.blocks, "giving up ends trials sooner");
    }

    #[test]
    fn the_chain_code_keeps_the_first_seen_branch_at_equal_work() {
        let setup = Setup::new(0.3, &params(0.3, 3, true, 1));
        let mut chain = Chain::new(setup.params.clone(), setup.retarget.clone());
        let (h, a) = (setup.honest.snapshot(), setup.attacker.snapshot());
        for b in &h[..3] {
            assert_eq!(submit(&mut chain, b.block.clone()), Accepted::Tip);
        }
        for b in &a[..3] {
            assert_eq!(submit(&mut chain, b.block.clone()), Accepted::SideBranch);
        }
        assert_eq!(chain.tip().hash, h[2].hash, "a tie keeps the first seen");
        assert_eq!(submit(&mut chain, a[3].block.clone()), Accepted::Tip);
        assert_eq!(chain.tip().hash, a[3].hash, "more work reorganises");
        assert_eq!(chain.get(1).map(|e| e.hash), Some(a[0].hash));
    }

    #[test]
    fn branches_extend_on_demand_and_cut_off_is_counted() {
        let setup = Setup::new(0.3, &params(0.3, 3, true, 1));
        let mut view = View {
            honest: setup.honest.snapshot(),
            attacker: setup.attacker.snapshot(),
        };
        assert_eq!(view.honest.len(), INITIAL_BRANCH);
        // Past the initial branch (and regtest's first halving at 150): still valid blocks.
        let mut chain = Chain::new(setup.params.clone(), setup.retarget.clone());
        let len = 2 * INITIAL_BRANCH as u64 + 1;
        for height in 1..=len {
            submit(&mut chain, view.honest(&setup.honest, height).block.clone());
        }
        assert_eq!(u64::from(chain.height()), len);
        assert!(setup.honest.snapshot().len() >= len as usize);
        // q = 0.45: the cut-off comes ~140 blocks behind; some trials reach it, some succeed.
        let r = race(&params(0.45, 6, true, 2_000));
        assert!(r.cut_off > 0 && r.successes > 0, "{r:?}");
        assert_eq!(cut_deficit(0.0), Some(1));
        assert_eq!(cut_deficit(0.5), None);
        // (1/9)^12.57 = 1e-12.
        assert_eq!(cut_deficit(0.1), Some(13));
    }

    /// Blocks connected per second on one thread (run with --ignored --nocapture).
    #[test]
    #[ignore]
    fn throughput() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build();
        let Ok(pool) = pool else { return };
        let p = params(0.1, 6, true, 300_000);
        pool.install(|| race(&p));
        let start = Instant::now();
        let r = pool.install(|| race(&p));
        let s = start.elapsed().as_secs_f64();
        eprintln!(
            "{} blocks in {s:.2} s: {:.0} blocks/s, {:.1} M blocks/min on one thread",
            r.blocks,
            r.blocks as f64 / s,
            r.blocks as f64 / s * 60.0 / 1e6
        );
    }
}
