//! `miner experiment` and the consensus experiments behind it, in one test binary (feature
//! `cli`): the command's interface (`experiment`), PBFT (`pbft`), proof of stake and DPoS
//! (`stake`) and the trials-per-block law (`trials`). The live runs, which need the machine to
//! themselves, are in tests/solo/. See tests/engine/main.rs for why the tests are gathered this
//! way.

mod experiment;
mod pbft;
mod stake;
mod trials;
