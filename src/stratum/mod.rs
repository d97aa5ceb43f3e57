//! Stratum v1, the protocol alone, shared by the server (`miner node --stratum`,
//! `crate::node::stratum`) and the client (`miner mine --pool`, `crate::client::stratum`):
//! typed messages and their JSON lines (`request`, `message`), jobs (`mining.notify`), the
//! header a share implies and share targets (`job`), and the share check (`share`). No I/O
//! and no role state here (as SRI's `sv1` crate keeps the protocol apart from the roles).
//!
//! The wire conventions, as pooler's cpuminer and every pool apply them:
//! - `prevhash` is the previous block's hash in internal byte order with each 4-byte word's
//!   bytes reversed ("word-swapped");
//! - `version`, `nbits`, `ntime` and a submitted `nonce` are the big-endian hex of the 32-bit
//!   number (the header stores them little-endian);
//! - the coinbase is `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2` (its non-witness
//!   serialization); the merkle root starts from its double SHA-256 and is hashed with each
//!   branch entry (raw bytes, internal order) in turn;
//! - a share meets `DIFF1 / difficulty`, DIFF1 = 0xFFFF · 2^208 (Bitcoin's difficulty 1).
//!
//! In `miner`'s templates the extranonce is the 8-byte little-endian push after the BIP34
//! height; a Stratum server splits it into a 4-byte extranonce1 per connection and a 4-byte
//! extranonce2 the miner rolls, so `extranonce1 ‖ extranonce2` read little-endian is the
//! template's extranonce.
// Its crate-internal parts serve the server and the client, both behind the `node` feature;
// without it only the public part (`NotifyJob`, `share_target`, ...) has a use.
#![cfg_attr(not(feature = "node"), allow(dead_code, unused_imports))]

pub(crate) mod job;
pub(crate) mod message;
pub(crate) mod request;
pub(crate) mod share;

pub use self::job::*;
pub(crate) use self::message::*;
pub(crate) use self::request::{parse_request, Extension, Request, RequestError, Submit};
