//! Real mainnet headers (docs/ARCHITECTURE.md §6): they hash to their published hashes, their nBits decode
//! to targets the hashes meet, and the CPU backend finds their nonces when started a few million
//! nonces below them.

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, TxMerkleNode};
use miner::backend::{Backend, CpuBackend, StopAt};
use miner::block::{header_bits, header_bytes};
use miner::hash::{display_hash, sha256d, Job};
use miner::pow::{CompactTarget, Target};
use std::sync::atomic::{AtomicBool, AtomicU64};

use crate::kernel_coverage::tested_kernels;

struct Vector {
    height: u32,
    version: i32,
    prev: &'static str,
    merkle_root: &'static str,
    time: u32,
    bits: u32,
    nonce: u32,
    hash: &'static str,
}

const VECTORS: &[Vector] = &[
    // Block 0: the genesis block.
    Vector {
        height: 0,
        version: 1,
        prev: "0000000000000000000000000000000000000000000000000000000000000000",
        merkle_root: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
        time: 1231006505,
        bits: 0x1d00ffff,
        nonce: 2083236893,
        hash: "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    },
    // Block 1: the first block mined after genesis.
    Vector {
        height: 1,
        version: 1,
        prev: "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        merkle_root: "0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098",
        time: 1231469665,
        bits: 0x1d00ffff,
        nonce: 2573394689,
        hash: "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
    },
    // Block 125552: the example block of the Bitcoin wiki's hashing walkthrough.
    Vector {
        height: 125552,
        version: 1,
        prev: "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81",
        merkle_root: "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3",
        time: 1305998791,
        bits: 0x1a44b9f2,
        nonce: 2504433986,
        hash: "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d",
    },
];

/// Display-order hex (as explorers show hashes) to raw bytes.
fn display_to_raw(hex_str: &str) -> [u8; 32] {
    let mut b: [u8; 32] = hex::decode(hex_str).unwrap().try_into().unwrap();
    b.reverse();
    b
}

fn header(v: &Vector) -> Header {
    Header {
        version: Version::from_consensus(v.version),
        prev_blockhash: BlockHash::from_byte_array(display_to_raw(v.prev)),
        merkle_root: TxMerkleNode::from_byte_array(display_to_raw(v.merkle_root)),
        time: v.time,
        bits: bitcoin::CompactTarget::from_consensus(v.bits),
        nonce: v.nonce,
    }
}

#[test]
fn mainnet_headers_hash_to_their_published_hashes() {
    for v in VECTORS {
        let h = header(v);
        let bytes = header_bytes(&h);
        assert_eq!(display_hash(&sha256d(&bytes)), v.hash, "block {}", v.height);
        let target = Target::from_compact(header_bits(&h)).unwrap();
        assert!(
            target.is_met_by(&sha256d(&bytes)),
            "block {} meets its nBits",
            v.height
        );
        // Every kernel computes the same hash through the midstate path.
        let job = Job::new(&bytes, &target);
        assert_eq!(
            display_hash(&job.hash(v.nonce)),
            v.hash,
            "block {} via midstate",
            v.height
        );
        for kernel in tested_kernels("mainnet_headers_hash_to_their_published_hashes") {
            let mut hits = Vec::new();
            kernel.scan(&job, v.nonce, 1, &mut hits);
            assert_eq!(hits, vec![v.nonce], "{kernel} on block {}", v.height);
        }
    }
}

#[test]
fn cpu_backend_finds_the_real_nonces_from_millions_below() {
    let backend = CpuBackend::best().unwrap();
    for v in VECTORS {
        let bytes = header_bytes(&header(v));
        let target = Target::from_compact(header_bits(&header(v))).unwrap();
        let job = Job::new(&bytes, &target);
        let start = u64::from(v.nonce) - 3_000_000;
        let progress = AtomicU64::new(0);
        let report = backend
            .scan(
                &job,
                start..start + 4_000_000,
                StopAt::End,
                &AtomicBool::new(false),
                &progress,
            )
            .unwrap();
        assert_eq!(report.hits, vec![v.nonce], "block {}", v.height);
        assert_eq!(report.hashes, 4_000_000);
        assert_eq!(progress.into_inner(), 4_000_000);
        assert!(!report.cancelled);
    }
}

#[test]
fn cpu_backend_stops_on_cancel_and_says_so() {
    let backend = CpuBackend::best().unwrap();
    let job = Job::new(&[0u8; 80], &Target::from_words([0; 8]));
    let cancel = AtomicBool::new(true);
    let report = backend
        .scan(&job, 0..1 << 32, StopAt::End, &cancel, &AtomicU64::new(0))
        .unwrap();
    assert!(report.cancelled);
    assert!(report.hashes < 1 << 32);
}

// Bitcoin Core's unit test for `GetDifficulty` (src/test/blockchain_tests.cpp), one test per
// case and with Core's own tolerance (|difficulty - expected| < 0.00001): bdiff from nBits alone.

/// Core's `TestDifficulty(nbits, expected)`.
fn core_difficulty(bits: u32, expected: f64) {
    let got = CompactTarget::from_consensus(bits).bdiff();
    assert!(
        (got - expected).abs() < 0.00001,
        "Difficulty of 0x{bits:08x} was {got} but was expected to be {expected}"
    );
}

#[test]
fn get_difficulty_for_very_low_target() {
    core_difficulty(0x1f111111, 0.000001);
}

#[test]
fn get_difficulty_for_low_target() {
    core_difficulty(0x1ef88f6f, 0.000016);
}

#[test]
fn get_difficulty_for_mid_target() {
    core_difficulty(0x1df88f6f, 0.004023);
}

#[test]
fn get_difficulty_for_high_target() {
    core_difficulty(0x1cf88f6f, 1.029916);
}

#[test]
fn get_difficulty_for_very_high_target() {
    // With Core's absolute tolerance this is bit-for-bit equality at 5.9e24.
    core_difficulty(0x12345678, 5913134931067755359633408.0);
}

#[test]
fn get_difficulty_of_sign_bit_nbits_uses_the_mantissa_as_core_does() {
    // SetCompact calls these negative (or zero), so they have no target; Core's GetDifficulty
    // still divides 0xffff by the whole 24-bit mantissa.
    assert_eq!(
        CompactTarget::from_consensus(0x1d80_0000).bdiff(),
        65535.0 / 8_388_608.0
    );
    assert_eq!(
        CompactTarget::from_consensus(0x1d80_ffff).bdiff(),
        65535.0 / 8_454_143.0
    );
    assert!(Target::from_compact(CompactTarget::from_consensus(0x1d80_ffff)).is_err());
    // Regtest's 0x207fffff: 0xffff / 0x7fffff / 256^3, Core's 4.656542373906925e-10.
    let regtest = CompactTarget::from_consensus(0x207f_ffff).bdiff();
    assert_eq!(regtest, 65535.0 / 8_388_607.0 / 256.0 / 256.0 / 256.0);
    assert!((regtest - 4.656_542_373_906_925e-10).abs() < 1e-24);
}

#[test]
fn bdiff_from_nbits_agrees_with_the_exact_target_ratio_on_real_headers() {
    for v in VECTORS {
        let bits = CompactTarget::from_consensus(v.bits);
        let exact = Target::from_compact(bits).unwrap().bdiff();
        let core = bits.bdiff();
        assert!(
            ((core - exact) / exact).abs() < 1e-15,
            "block {}: {core} vs {exact}",
            v.height
        );
    }
    // Block 125552 (0x1a44b9f2), as explorers show it.
    let b = CompactTarget::from_consensus(0x1a44_b9f2).bdiff();
    assert!((b - 244_112.487_774_77).abs() < 1e-6, "{b}");
}
