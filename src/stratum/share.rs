//! Judging a `mining.submit`: the header the share implies (built from the job as the miner
//! builds it), its hash, and whether it meets the network target (a block) and the share target.
//! Pure functions, so the recorded cpuminer session can be replayed through them.

use crate::hash::sha256d;
use crate::pow::Target;
use crate::stratum::{difficulty_of, share_target, NotifyJob, EXTRANONCE1_SIZE, EXTRANONCE2_SIZE};

/// A submitted share, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Submission {
    /// The connection's extranonce1, as it goes into the coinbase.
    pub(crate) extranonce1: [u8; EXTRANONCE1_SIZE],
    /// The miner's extranonce2, as it goes into the coinbase.
    pub(crate) extranonce2: [u8; EXTRANONCE2_SIZE],
    /// The header's time, Unix seconds.
    pub(crate) ntime: u32,
    /// The header's nonce.
    pub(crate) nonce: u32,
    /// The header's version after rolling (the job's outside the mask, the miner's inside).
    pub(crate) version: u32,
}

/// How a share was judged: its header and hash, and which targets it meets.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ShareCheck {
    /// The header hash, internal (little-endian) order.
    pub(crate) hash: [u8; 32],
    /// The 80-byte header the share implies.
    pub(crate) header: [u8; 80],
    /// It meets the network target: a block.
    pub(crate) block: bool,
    /// It meets the share target (always true for a block: a share is never harder than a block).
    pub(crate) share: bool,
    /// The share's own difficulty (DIFF1 / hash).
    pub(crate) hash_difficulty: f64,
}

impl ShareCheck {
    /// The hash in display order (as block explorers and `getbestblockhash` write it).
    pub(crate) fn display_hash(&self) -> String {
        let mut h = self.hash;
        h.reverse();
        hex::encode(h)
    }
}

/// The version a share's header carries: the job's bits outside `mask`, the miner's inside.
/// `None` when the miner changed bits outside the mask (a 6th parameter that is either only the
/// rolled bits or the whole rolled version is accepted, as miners send both).
pub(crate) fn rolled_version(job_version: u32, mask: u32, bits: Option<u32>) -> Option<u32> {
    let Some(bits) = bits else {
        return Some(job_version);
    };
    let outside = bits & !mask;
    if outside != 0 && outside != job_version & !mask {
        return None;
    }
    Some((job_version & !mask) | (bits & mask))
}

/// The share difficulty actually applied: the connection's, but never harder than a block.
pub(crate) fn effective_difficulty(difficulty: f64, network_target: &Target) -> f64 {
    let network = difficulty_of(&network_target.to_le_bytes());
    if network.is_finite() && network > 0.0 {
        difficulty.min(network)
    } else {
        difficulty
    }
}

/// Judges `s` against `job`: the block check (network target) first, then the share target
/// for `difficulty`.
pub(crate) fn check(
    job: &NotifyJob,
    s: &Submission,
    difficulty: f64,
    network_target: &Target,
) -> ShareCheck {
    let header = job.header(&s.extranonce1, &s.extranonce2, s.ntime, s.nonce, s.version);
    let hash = sha256d(&header);
    let block = network_target.is_met_by(&hash);
    let share = block || share_target(difficulty).is_some_and(|t| t.is_met_by(&hash));
    ShareCheck {
        hash,
        header,
        block,
        share,
        hash_difficulty: difficulty_of(&hash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::CompactTarget;
    use serde_json::json;

    /// The session recorded with pooler's cpuminer 2.5.1 against a plain Stratum server
    /// (issue 15), replayed through the server's share check.
    #[test]
    fn the_recorded_cpuminer_share_is_accepted_with_the_recorded_hash() {
        let notify = json!(["job1",
            "466e2206590b1a116012afcabf5beb433a4fc3281f2a335e3cb7b2c70f9188f1",
            "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff130101",
            "2f737631746573742fffffffff0100f2052a01000000015100000000",
            ["2a6a41aeb1abf285919a8dd916b4d4799966a855d6bd9b5d9f2c2d6131647687",
             "d21e8f4234eb72e398934de4ee626c8164d9136d6844600874ce330a45d76d83"],
            "20000000", "207fffff", "6b04fcf5", true]);
        let job = NotifyJob::from_notify(&notify).expect("notify");
        // submit ["test.worker","job1","00000000","6b04fcf5","6df82800"]
        let s = Submission {
            extranonce1: [0xf0, 0, 0, 0x0f],
            extranonce2: [0, 0, 0, 0],
            ntime: 0x6b04_fcf5,
            nonce: 0x6df8_2800,
            version: rolled_version(job.version, 0, None).unwrap(),
        };
        // A network target far harder than the share, so the share check itself decides.
        let hard = Target::from_compact(CompactTarget::from_consensus(0x1d00_ffff)).unwrap();
        let v = check(&job, &s, 0.001, &hard);
        assert_eq!(
            v.display_hash(),
            "0000034576ebe4f1518437dd6e8c78a38a88a0e5df09ab22d6ae1f9c905958c1"
        );
        assert!(v.share && !v.block, "{v:?}");
        // Under the recorded nBits (regtest's 207fffff) the same share is also a block.
        let regtest = Target::from_compact(CompactTarget::from_consensus(
            crate::pow::REGTEST_POW_LIMIT_BITS,
        ))
        .unwrap();
        assert!(check(&job, &s, 0.001, &regtest).block);
        // At difficulty 10 it is low.
        assert!(!check(&job, &s, 10.0, &hard).share);
        // Another nonce does not meet 0.001.
        let other = Submission { nonce: 1, ..s };
        assert!(!check(&job, &other, 0.001, &hard).share);
    }

    #[test]
    fn version_rolling_stays_inside_the_mask() {
        let mask = 0x1fff_e000;
        assert_eq!(rolled_version(0x2000_0000, mask, None), Some(0x2000_0000));
        assert_eq!(
            rolled_version(0x2000_0000, mask, Some(0x0000_2000)),
            Some(0x2000_2000)
        );
        // The whole rolled version is accepted too.
        assert_eq!(
            rolled_version(0x2000_0000, mask, Some(0x2000_4000)),
            Some(0x2000_4000)
        );
        assert_eq!(rolled_version(0x2000_0000, mask, Some(0x0000_0001)), None);
        assert_eq!(rolled_version(0x2000_0000, 0, Some(0x0000_2000)), None);
    }

    #[test]
    fn a_share_is_never_harder_than_a_block() {
        let regtest = Target::from_compact(CompactTarget::from_consensus(
            crate::pow::REGTEST_POW_LIMIT_BITS,
        ))
        .unwrap();
        let d = effective_difficulty(1.0, &regtest);
        assert!(d < 1e-9, "{d}");
        let hard = Target::from_compact(CompactTarget::from_consensus(0x1d00_ffff)).unwrap();
        assert_eq!(effective_difficulty(0.5, &hard), 0.5);
    }
}
