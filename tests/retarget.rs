//! Difficulty controllers against published vectors: aserti3-2d's test vectors published with
//! Bitcoin Cash Node (qa-assets `test_vectors/aserti3-2d`, runs generated from BCHN's C++
//! `CalculateASERT`). Bitcoin's four Core vectors are unit tests in `src/pow/retarget/bitcoin.rs`.

use miner::pow::retarget::asert;
use miner::pow::CompactTarget;
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
