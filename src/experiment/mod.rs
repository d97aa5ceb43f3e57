//! The seed's proof-of-work experiments, simulated on the project's own chain code: forks from
//! propagation delay, the double-spend (51%) attack, finality after z blocks, selfish mining.
//! Each sim builds real blocks and connects them with [`crate::chain::Chain`] (validation and
//! most-work fork choice); only time and who finds the next block are drawn at random. Every
//! figure comes with its 95% interval and the published result it is checked against
//! (`theory`).
//!
//! Everything here but [`retarget`] is behind the default feature `experiments`: the CPU engine
//! alone (`--no-default-features`) keeps the retarget simulator, which exercises the crate's own
//! difficulty controllers (`pow::retarget`) and needs nothing heavy, but not its SVG chart, the
//! other experiments or plotters.

#[cfg(feature = "experiments")]
pub mod chart;
#[cfg(feature = "experiments")]
pub mod compare;
#[cfg(feature = "experiments")]
pub mod dpos;
#[cfg(feature = "experiments")]
pub mod forks;
#[cfg(feature = "experiments")]
pub mod grind;
#[cfg(all(feature = "experiments", feature = "node"))]
pub mod live;
#[cfg(feature = "experiments")]
pub mod pbft;
#[cfg(feature = "experiments")]
pub mod pos;
#[cfg(feature = "experiments")]
pub mod race;
pub mod retarget;
#[cfg(feature = "experiments")]
pub mod selfish;
#[cfg(feature = "experiments")]
pub mod stake;
#[cfg(feature = "experiments")]
pub mod stats;
#[cfg(feature = "experiments")]
pub mod theory;
