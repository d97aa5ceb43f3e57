//! Chain parameters: genesis, subsidy schedule. One preset for now, regtest-like.

use crate::pow::{CompactTarget, Target};
use bitcoin::{Amount, Block, Network};

/// The rules a local chain is created with.
#[derive(Clone, Debug)]
pub struct ChainParams {
    /// Preset name.
    pub name: &'static str,
    pub genesis: Block,
    /// Subsidy of the first block.
    pub initial_subsidy: Amount,
    /// Blocks between halvings.
    pub halving_interval: u32,
    /// The easiest target a difficulty controller may set.
    pub pow_limit: Target,
}

impl ChainParams {
    /// Regtest-like, the default for local mining: Bitcoin's regtest genesis block
    /// (`0f9188f1…`, nBits `0x207fffff`), 50 coins per block halving every 150 blocks, and
    /// regtest's pow limit (`0x207fffff`) for the difficulty controllers.
    pub fn regtest() -> ChainParams {
        ChainParams {
            name: "regtest",
            genesis: bitcoin::constants::genesis_block(Network::Regtest),
            initial_subsidy: Amount::from_sat(50 * 100_000_000),
            halving_interval: 150,
            pow_limit: Target::from_compact(CompactTarget::from_consensus(0x207f_ffff))
                .unwrap_or(Target::MAX),
        }
    }

    /// The block subsidy at `height` (Core's `GetBlockSubsidy`: zero after 64 halvings).
    pub fn subsidy(&self, height: u32) -> Amount {
        let halvings = height / self.halving_interval.max(1);
        if halvings >= 64 {
            return Amount::ZERO;
        }
        Amount::from_sat(self.initial_subsidy.to_sat() >> halvings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsidy_halves() {
        let p = ChainParams::regtest();
        assert_eq!(p.subsidy(0), Amount::from_sat(5_000_000_000));
        assert_eq!(p.subsidy(149), Amount::from_sat(5_000_000_000));
        assert_eq!(p.subsidy(150), Amount::from_sat(2_500_000_000));
        assert_eq!(p.subsidy(150 * 64), Amount::ZERO);
    }
}
