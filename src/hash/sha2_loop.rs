//! The baseline: the plain RustCrypto `sha2` compression function with a midstate, one nonce at a
//! time, full comparison of every hash. This is what "the plain `sha2` loop" means in
//! `BENCHMARKS.md`; `sha2` picks its own SHA-NI code on CPUs that have it.

use super::{Job, IV};
use crate::pow::Target;
use sha2::digest::generic_array::GenericArray;

/// Searches `first .. first + count`; see [`super::Kernel::scan`].
pub(crate) fn scan(job: &Job, first: u32, count: u32, hits: &mut Vec<u32>) {
    let target = Target::from_words(job.target);
    let mut block = [0u8; 64];
    for (i, w) in job.tail.iter().enumerate() {
        block[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    block[16] = 0x80;
    block[56..64].copy_from_slice(&640u64.to_be_bytes());
    let mut second = [0u8; 64];
    second[32] = 0x80;
    second[56..64].copy_from_slice(&256u64.to_be_bytes());
    for offset in 0..count {
        let nonce = first.wrapping_add(offset);
        block[12..16].copy_from_slice(&nonce.to_le_bytes());
        let mut state = job.midstate;
        sha2::compress256(&mut state, &[*GenericArray::from_slice(&block)]);
        for (i, w) in state.iter().enumerate() {
            second[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        let mut out = IV;
        sha2::compress256(&mut out, &[*GenericArray::from_slice(&second)]);
        let mut hash = [0u8; 32];
        for (i, w) in out.iter().enumerate() {
            hash[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        if target.is_met_by(&hash) {
            hits.push(nonce);
        }
    }
}
