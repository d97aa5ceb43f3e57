//! Difficulty controllers against published vectors: aserti3-2d's test vectors published with
//! Bitcoin Cash Node (qa-assets `test_vectors/aserti3-2d`, runs generated from BCHN's C++
//! `CalculateASERT`), and asert's anchoring as BCHN's `GetNextASERTWorkRequired` (the anchor's
//! nBits, the anchor's parent's time), on a bare history and on a mined chain. Bitcoin's four
//! Core vectors are unit tests in `src/pow/retarget/bitcoin.rs`.

use miner::pow::retarget::{asert, Algorithm, AsertAnchor, BlockInfo, RetargetParams};
use miner::pow::{CompactTarget, Target};
use num_bigint::BigUint;

/// One run: the anchor block and rows of (parent height, parent time, expected next nBits).
struct Run {
    what: &'static str,
    anchor_height: u64,
    anchor_parent_time: i64,
    anchor_bits: u32,
    rows: &'static [(u64, i64, u32)],
}

const RUNS: &[Run] = &[
    Run {
        // run1: steady 600 s blocks at the pow limit stay there.
        what: "run01 steady at pow limit",
        anchor_height: 1,
        anchor_parent_time: 0,
        anchor_bits: 0x1d00ffff,
        rows: &[
            (2, 1200, 0x1d00ffff),
            (3, 1800, 0x1d00ffff),
            (11, 6600, 0x1d00ffff),
        ],
    },
    Run {
        // run2: steady 600 s blocks at an arbitrary target keep it exactly.
        what: "run02 steady at 0x1a2b3c4d",
        anchor_height: 1,
        anchor_parent_time: 0,
        anchor_bits: 0x1a2b3c4d,
        rows: &[
            (2, 1200, 0x1a2b3c4d),
            (6, 3600, 0x1a2b3c4d),
            (11, 6600, 0x1a2b3c4d),
        ],
    },
    Run {
        // run3: steady at the minimum target 0x01010000.
        what: "run03 steady at minimum target",
        anchor_height: 1,
        anchor_parent_time: 0,
        anchor_bits: 0x01010000,
        rows: &[(2, 1200, 0x01010000), (11, 6600, 0x01010000)],
    },
    Run {
        // run4: from the minimum target, each block one half-life late: the target doubles
        // per block, through every compact size, until it clamps at the pow limit.
        what: "run04 half-life jumps up to the limit",
        anchor_height: 1,
        anchor_parent_time: 0,
        anchor_bits: 0x01010000,
        rows: &[
            (2, 174000, 0x01020000),
            (3, 347400, 0x01040000),
            (7, 1041000, 0x01400000),
            (8, 1214400, 0x02008000), // mantissa would set the sign bit: size grows
            (9, 1387800, 0x02010000),
            (100, 17167200, 0x0d080000),
            (223, 38495400, 0x1c400000),
            (224, 38668800, 0x1d008000),
            (225, 38842200, 0x1d00ffff), // clamped to the pow limit
            (226, 39015600, 0x1d00ffff),
        ],
    },
    Run {
        // run5: from the limit, heights jump by a half-life of blocks with no time passing
        // (time falls ever further behind schedule): the target halves until the minimum.
        what: "run05 height jumps without time down to the minimum",
        anchor_height: 1,
        anchor_parent_time: 0,
        anchor_bits: 0x1d00ffff,
        rows: &[
            (2, 0, 0x1d00fec5),
            (290, 0, 0x1c7f62c0),
            (578, 0, 0x1c3fb160),
            (2306, 0, 0x1c00fec5),
            (30242, 0, 0x0f7f62c0),
            (59906, 0, 0x0300fec5),
            (60194, 0, 0x027f6200), // precision runs out in small sizes
            (62498, 0, 0x017f0000),
            (64226, 0, 0x01010000), // clamped: a target of 0 becomes 1
            (64514, 0, 0x01010000),
        ],
    },
    Run {
        // run6: deterministic random solve times around a real nBits; includes blocks with
        // equal timestamps (9 and 10 at 7099).
        what: "run06 random solve times",
        anchor_height: 1,
        anchor_parent_time: 0,
        anchor_bits: 0x1802aee8,
        rows: &[
            (2, 1200, 0x1802aee8),
            (3, 1310, 0x1802ad91),
            (4, 1327, 0x1802abf8),
            (8, 2746, 0x1802a94b),
            (9, 7099, 0x1802b39c),
            (10, 7099, 0x1802b1f2),
            (11, 7657, 0x1802b1d4),
            (22, 18902, 0x1802bed6),
            (100, 63111, 0x1802b78d),
            (300, 189476, 0x1802c992),
            (620, 378438, 0x1802c0ec),
        ],
    },
    Run {
        // run8: a down-ramping hash rate: the target climbs to the pow limit and stays.
        what: "run08 down-ramping hash rate",
        anchor_height: 1,
        anchor_parent_time: 0,
        anchor_bits: 0x1802aee8,
        rows: &[
            (12, 9595, 0x1802b58d),
            (22, 33606, 0x1802e994),
            (187, 1078358, 0x19008158),
            (426, 5430357, 0x1c00a57c),
            (481, 6842136, 0x1d00a31a),
            (485, 6993399, 0x1d00ffff),
            (501, 7462933, 0x1d00ffff),
        ],
    },
    Run {
        // run9: 300 s blocks across the signed 32-bit height boundary.
        what: "run09 heights across 2^31",
        anchor_height: 2147483642,
        anchor_parent_time: 1234567290,
        anchor_bits: 0x1802aee8,
        rows: &[
            (2147483643, 1234568190, 0x1802ae16),
            (2147483647, 1234569390, 0x1802aacd),
            (2147483648, 1234569690, 0x1802a9fa),
            (2147483652, 1234570890, 0x1802a6b7),
        ],
    },
    Run {
        // run10: 900 s blocks across the signed 64-bit height boundary and 32-bit time.
        what: "run10 heights across 2^63, times across 2^31",
        anchor_height: 9223372036854775802,
        anchor_parent_time: 2147483047,
        anchor_bits: 0x1802aee8,
        rows: &[
            (9223372036854775803, 2147484547, 0x1802afbb),
            (9223372036854775807, 2147488147, 0x1802b30e),
            (9223372036854775808, 2147489047, 0x1802b3e5),
            (9223372036854775812, 2147492647, 0x1802b73d),
        ],
    },
];

#[test]
fn asert_matches_bitcoin_cash_node_vectors() {
    // aserti3-2d parameters: 600 s spacing, two-day half-life, pow limit 2^224 - 1.
    let limit = (BigUint::from(1u8) << 224) - 1u8;
    for run in RUNS {
        let reference = CompactTarget::from_consensus(run.anchor_bits)
            .decode()
            .value;
        for &(height, time, expected) in run.rows {
            let height_diff = height.wrapping_sub(run.anchor_height) as i64;
            let target = asert::next_target(
                &reference,
                600,
                time - run.anchor_parent_time,
                height_diff,
                &limit,
                2 * 24 * 3600,
            );
            let got = CompactTarget::encode(&target, false).to_consensus();
            assert_eq!(
                got, expected,
                "{}: height {height}, time {time}: got 0x{got:08x}",
                run.what
            );
        }
    }
}

#[test]
fn asert_time_going_backwards_only_makes_it_harder() {
    let limit = (BigUint::from(1u8) << 224) - 1u8;
    let reference = CompactTarget::from_consensus(0x1802aee8).decode().value;
    let at = |time_diff: i64| asert::next_target(&reference, 600, time_diff, 10, &limit, 172800);
    // On schedule: unchanged.
    assert_eq!(at(6600), reference);
    // Earlier and earlier parent times (even before the anchor): monotonically smaller targets.
    let mut last = at(6600);
    for t in [6000, 0, -600, -86_400, -10_000_000] {
        let next = at(t);
        assert!(next < last, "time diff {t}");
        last = next;
    }
    // Far enough back the target bottoms out at 1, never 0.
    assert_eq!(at(i64::MIN / 4), BigUint::from(1u8));
    // Far enough ahead it clamps to the limit.
    assert_eq!(at(i64::MAX / 4), limit);
}

/// `decode`, clamped to `limit`, through `asert::next_target`, re-encoded: the arithmetic of
/// BCHN's `GetNextASERTWorkRequired` given its anchor's nBits and its anchor parent's time.
fn bchn_next_bits(
    anchor_bits: CompactTarget,
    anchor_height: u64,
    anchor_parent_time: i64,
    parent: &BlockInfo,
    spacing: i64,
    half_life: i64,
    limit: &BigUint,
) -> CompactTarget {
    let reference = anchor_bits.decode().value.min(limit.clone());
    let target = asert::next_target(
        &reference,
        spacing,
        parent.time - anchor_parent_time,
        parent.height as i64 - anchor_height as i64,
        limit,
        half_life,
    );
    CompactTarget::encode(&target, false)
}

fn asert_params(half_life: i64) -> RetargetParams {
    RetargetParams {
        algorithm: Algorithm::Asert { half_life },
        spacing: 600,
        pow_limit: Target::from_compact(CompactTarget::from_consensus(0x207fffff)).unwrap(),
        initial: CompactTarget::from_consensus(0x1d00ffff),
    }
}

/// The controller takes the reference target from its anchor (block 2) and measures from the
/// anchor's parent's (block 1's) real header time, as BCHN's `GetNextASERTWorkRequired` does
/// with `pindexAnchorBlock->nBits` and `pindexAnchorBlock->pprev->GetBlockTime()`. The old
/// code anchored on block 1 with an invented parent time `block1.time - spacing` and block 1's
/// nBits: here block 2 carries other nBits than block 1, so the old anchoring gives another
/// answer and fails this test.
#[test]
fn asert_anchors_on_block_2_and_block_1s_real_time() {
    let p = asert_params(3600);
    let limit = p.pow_limit.to_biguint();
    let t1 = 1_700_000_037; // off any 600 s grid
    let block = |height: u64, time: i64, bits: u32| BlockInfo {
        height,
        time,
        bits: CompactTarget::from_consensus(bits),
    };
    let chain = [
        block(1, t1, 0x1d00ffff),
        block(2, t1 + 1234, 0x1c7fffff),
        block(3, t1 + 1300, 0x1c7e0000),
        block(4, t1 + 4100, 0x1c7d0000),
        block(5, t1 + 4700, 0x1c7c0000),
    ];
    for n in 2..=chain.len() {
        let history = &chain[..n];
        let parent = &history[n - 1];
        let want = bchn_next_bits(chain[1].bits, 2, chain[0].time, parent, 600, 3600, &limit);
        assert_eq!(p.next_bits(history), want, "after block {}", parent.height);
        // The caller that holds only the parent and the anchor gets the same.
        let anchor = AsertAnchor::find(history).expect("blocks 1 and 2 are in the history");
        assert_eq!(
            anchor,
            AsertAnchor {
                height: 2,
                bits: chain[1].bits,
                parent_time: t1
            }
        );
        assert_eq!(
            p.next_bits_with_anchor(std::slice::from_ref(parent), Some(&anchor)),
            want
        );
        // The old anchoring (block 1's nBits, time from `block1.time - spacing`) differs.
        let old = bchn_next_bits(
            chain[0].bits,
            1,
            chain[0].time - 600,
            parent,
            600,
            3600,
            &limit,
        );
        assert_ne!(
            old, want,
            "after block {}: the test separates them",
            parent.height
        );
    }
    // Blocks 1 and 2 get the initial nBits: no anchor exists yet.
    assert_eq!(p.next_bits(&[]), p.initial);
    assert_eq!(p.next_bits(&chain[..1]), p.initial);
}

/// On a real chain (regtest genesis, blocks mined in-process at chosen clock times) every
/// block's demanded nBits equal BCHN's arithmetic from block 2's nBits and block 1's header
/// time, read back from the chain's own blocks. Measuring from the genesis instead (BCHN's
/// rule with block 1 as the anchor) would pin every block to the pow limit: regtest's genesis
/// is dated 2011, years behind any schedule. That is why the anchor is block 2.
#[test]
fn a_mined_asert_chain_demands_bchns_bits_from_block_1s_time() {
    use miner::backend::CpuBackend;
    use miner::chain::{Chain, ChainParams};
    use miner::mining::{mine_next_with_clock, Clock, MineOutcome};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A clock that says what the test sets.
    struct SetClock(AtomicU64);
    impl Clock for SetClock {
        fn now(&self) -> u32 {
            self.0.load(Ordering::SeqCst) as u32
        }
        fn sleep(&self, d: std::time::Duration) {
            self.0.fetch_add(d.as_secs().max(1), Ordering::SeqCst);
        }
    }

    let params = ChainParams::regtest();
    let mut rules = asert_params(3600);
    rules.pow_limit = params.pow_limit;
    rules.initial = CompactTarget::from_consensus(0x2000ffff); // D about 2^11: quick to mine
    let limit = rules.pow_limit.to_biguint();
    let genesis_time = i64::from(params.genesis.header.time);
    let mut chain = Chain::new(params, rules.clone());
    let backend = CpuBackend::new(miner::hash::Kernel::best(), Some(1)).unwrap();
    let payout = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
    let t0: u64 = 1_800_000_000;
    // Fast, fast, then slow and fast again, so the nBits move both ways.
    let offsets = [0u64, 50, 100, 5000, 5100, 5200, 9000, 9010];
    let info = |chain: &Chain, h: u32| -> BlockInfo {
        let header = &chain
            .get(h)
            .expect("block on the active chain")
            .block
            .header;
        BlockInfo {
            height: u64::from(h),
            time: i64::from(header.time),
            bits: CompactTarget::from_consensus(header.bits.to_consensus()),
        }
    };
    let mut moved = 0;
    for (i, off) in offsets.iter().enumerate() {
        let clock = SetClock(AtomicU64::new(t0 + off));
        let outcome = mine_next_with_clock(
            &mut chain,
            &backend,
            &payout,
            &cancel,
            &progress,
            &clock,
            &mut |_| {},
        )
        .unwrap();
        assert!(matches!(outcome, MineOutcome::Mined(_)));
        let h = i as u32 + 1;
        let tip = info(&chain, h);
        assert_eq!(
            tip.time,
            (t0 + off) as i64,
            "block {h} carries the clock's time"
        );
        if h <= 2 {
            assert_eq!(
                tip.bits, rules.initial,
                "block {h} carries the initial nBits"
            );
        }
        if h < 2 {
            continue;
        }
        let (b1, b2) = (info(&chain, 1), info(&chain, 2));
        let want = bchn_next_bits(b2.bits, 2, b1.time, &tip, 600, 3600, &limit);
        assert_eq!(chain.next_bits(), want, "after block {h}");
        if want != rules.initial {
            moved += 1;
        }
        // BCHN's rule with block 1 as the anchor measures from the 2011 genesis: the limit.
        let from_genesis = bchn_next_bits(b1.bits, 1, genesis_time, &tip, 600, 3600, &limit);
        assert_eq!(from_genesis, CompactTarget::encode(&limit, false));
        assert_ne!(chain.next_bits(), from_genesis, "after block {h}");
    }
    assert!(moved >= 4, "the schedule moved the nBits: {moved}");
}
