//! Blocks: the template builder (coinbase with BIP34 height and extranonce, merkle root, 80-byte
//! header) and the payout script. Consensus encoding is the `bitcoin` crate's.

mod jobs;
mod payout;
mod template;

pub use jobs::JobSource;

pub use payout::{
    network_name, parse_payout, Payout, PayoutError, WrongNetwork, DEFAULT_PAYOUT_HEX,
};
pub use template::{
    MiningJob, Template, TemplateBuilder, DEFAULT_TEMPLATE_VALUE_SAT, WITNESS_COMMITMENT_HEADER,
    WITNESS_RESERVED_VALUE,
};

use crate::hash::sha256d;
use bitcoin::block::Header;
use bitcoin::consensus::encode::serialize;

/// The 80 bytes that are hashed: the header in consensus encoding.
pub fn header_bytes(header: &Header) -> [u8; 80] {
    let bytes = serialize(header);
    let mut out = [0u8; 80];
    out.copy_from_slice(&bytes);
    out
}

/// SHA-256d of the header, raw byte order (compare as little-endian; reverse to display).
pub fn header_hash(header: &Header) -> [u8; 32] {
    sha256d(&header_bytes(header))
}

/// The nBits field of a header as our [`crate::pow::CompactTarget`].
pub fn header_bits(header: &Header) -> crate::pow::CompactTarget {
    crate::pow::CompactTarget::from_consensus(header.bits.to_consensus())
}
