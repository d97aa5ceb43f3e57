//! The seed's proof-of-work experiments, simulated on the project's own chain code: forks from
//! propagation delay, the double-spend (51%) attack, finality after z blocks, selfish mining.
//! Each sim builds real blocks and connects them with [`crate::chain::Chain`] (validation and
//! most-work fork choice); only time and who finds the next block are drawn at random. Every
//! figure comes with its 95% interval and the published result it is checked against
//! (`theory`).

pub mod compare;
pub mod dpos;
pub mod forks;
#[cfg(feature = "node")]
pub mod live;
pub mod pbft;
pub mod pos;
pub mod race;
pub mod selfish;
pub mod stake;
pub mod stats;
pub mod theory;
