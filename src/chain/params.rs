//! Chain parameters: genesis, subsidy schedule, pow limit, and the controller's defaults. A named
//! preset (`regtest`, the default) or a JSON file.

use crate::pow::{CompactTarget, Target};
use bitcoin::consensus::encode::deserialize;
use bitcoin::{Amount, Block, Network};
use serde::Deserialize;
use std::path::Path;

/// The difficulty controller a chain file asks for (command-line flags override it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerDefaults {
    /// asert, bitcoin, lwma or fixed.
    pub retarget: Option<String>,
    /// Target interval in whole seconds.
    pub block_time: Option<i64>,
    /// Blocks per window (bitcoin, lwma).
    pub window: Option<u32>,
    /// asert's half-life in seconds.
    pub half_life: Option<i64>,
}

/// The rules a local chain is created with.
#[derive(Clone, Debug)]
pub struct ChainParams {
    /// Preset or file name.
    pub name: String,
    /// Block 0: every chain of these rules starts from it.
    pub genesis: Block,
    /// Subsidy of the first block.
    pub initial_subsidy: Amount,
    /// Blocks between halvings.
    pub halving_interval: u32,
    /// The easiest target a difficulty controller may set.
    pub pow_limit: Target,
    /// The controller this chain asks for, if any.
    pub controller: ControllerDefaults,
    /// The network whose addresses the chain pays to (payouts of other networks are refused):
    /// regtest unless a chain file says otherwise.
    pub network: Network,
}

/// Why chain parameters were refused.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// Neither a preset's name nor an existing file.
    #[error("unknown chain preset '{0}', and no file of that name exists{dir}; presets: regtest, or give the path of a JSON chain file (see the README)", dir = relative_to(.0))]
    UnknownPreset(String),
    /// The file (first field) exists but could not be read; the second field is why.
    #[error("cannot read the chain file {0}: {1}")]
    Read(String, String),
    /// The file (first field) is not valid chain parameters; the second field says what is wrong.
    #[error("chain file {0}: {1}")]
    Invalid(String, String),
}

/// " (relative to DIR)" for a relative file name, so the error says where it was looked for.
fn relative_to(name: &str) -> String {
    match std::env::current_dir() {
        Ok(dir) if Path::new(name).is_relative() => format!(" (relative to {})", dir.display()),
        _ => String::new(),
    }
}

/// The JSON form of a chain file; every field is optional and defaults to regtest's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainFile {
    name: Option<String>,
    /// `regtest`, `mainnet`, `testnet`, `signet`, or a whole block in hex.
    genesis: Option<String>,
    subsidy_sats: Option<u64>,
    halving_interval: Option<u32>,
    /// nBits of the easiest target, e.g. `207fffff`.
    pow_limit_bits: Option<String>,
    /// Whose addresses payouts must be: `regtest`, `mainnet`, `testnet`, `testnet4` or `signet`
    /// [default: the genesis's network when genesis names one, else regtest].
    network: Option<String>,
    #[serde(default)]
    controller: ControllerDefaults,
}

pub use crate::pow::REGTEST_POW_LIMIT_BITS;

impl ChainParams {
    /// Regtest-like, the default for local mining: Bitcoin's regtest genesis block
    /// (`0f9188f1…`, nBits `0x207fffff`), 50 coins per block halving every 150 blocks, and
    /// regtest's pow limit (`0x207fffff`) for the difficulty controllers.
    pub fn regtest() -> ChainParams {
        ChainParams {
            name: "regtest".into(),
            genesis: bitcoin::constants::genesis_block(Network::Regtest),
            initial_subsidy: Amount::from_sat(50 * 100_000_000),
            halving_interval: 150,
            pow_limit: Target::from_compact(CompactTarget::from_consensus(REGTEST_POW_LIMIT_BITS))
                .unwrap_or(Target::MAX),
            controller: ControllerDefaults::default(),
            network: Network::Regtest,
        }
    }

    /// A preset by name, or else a JSON chain file at that path.
    pub fn load(name_or_path: &str) -> Result<ChainParams, ParamsError> {
        if name_or_path == "regtest" {
            return Ok(ChainParams::regtest());
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ParamsError::UnknownPreset(name_or_path.into()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ParamsError::Read(name_or_path.into(), e.to_string()))?;
        ChainParams::from_json(name_or_path, &text)
    }

    /// Parses a chain file's JSON; `origin` names it in errors.
    pub fn from_json(origin: &str, text: &str) -> Result<ChainParams, ParamsError> {
        let invalid = |why: String| ParamsError::Invalid(origin.into(), why);
        let file: ChainFile = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut p = ChainParams::regtest();
        p.name = file.name.unwrap_or_else(|| origin.to_string());
        if let Some(g) = file.genesis {
            p.network = match g.as_str() {
                "mainnet" => Network::Bitcoin,
                "testnet" => Network::Testnet,
                "signet" => Network::Signet,
                _ => Network::Regtest,
            };
            p.genesis = match g.as_str() {
                "regtest" => bitcoin::constants::genesis_block(Network::Regtest),
                "mainnet" => bitcoin::constants::genesis_block(Network::Bitcoin),
                "testnet" => bitcoin::constants::genesis_block(Network::Testnet),
                "signet" => bitcoin::constants::genesis_block(Network::Signet),
                hex_block => hex::decode(hex_block)
                    .ok()
                    .and_then(|b| deserialize::<Block>(&b).ok())
                    .ok_or_else(|| {
                        invalid(
                            "genesis is neither regtest/mainnet/testnet/signet nor a block in hex"
                                .into(),
                        )
                    })?,
            };
        }
        if let Some(n) = file.network {
            p.network = match n.as_str() {
                "regtest" => Network::Regtest,
                "mainnet" | "main" | "bitcoin" => Network::Bitcoin,
                "testnet" | "test" => Network::Testnet,
                "testnet4" => Network::Testnet4,
                "signet" => Network::Signet,
                other => {
                    return Err(invalid(format!(
                    "network '{other}' is not one of regtest, mainnet, testnet, testnet4, signet"
                )))
                }
            };
        }
        if let Some(s) = file.subsidy_sats {
            p.initial_subsidy = Amount::from_sat(s);
        }
        if let Some(h) = file.halving_interval {
            if h == 0 {
                return Err(invalid("halving_interval must be at least 1".into()));
            }
            p.halving_interval = h;
        }
        if let Some(bits) = file.pow_limit_bits {
            let bits: CompactTarget = bits
                .parse()
                .map_err(|e| invalid(format!("pow_limit_bits: {e}")))?;
            p.pow_limit =
                Target::from_compact(bits).map_err(|e| invalid(format!("pow_limit_bits: {e}")))?;
        }
        if file.controller.block_time.is_some_and(|t| t < 1) {
            return Err(invalid(
                "controller.block_time must be at least 1 second".into(),
            ));
        }
        if file.controller.half_life.is_some_and(|t| t < 1) {
            return Err(invalid(
                "controller.half_life must be at least 1 second".into(),
            ));
        }
        if file.controller.window.is_some_and(|w| w < 2) {
            return Err(invalid("controller.window must be at least 2".into()));
        }
        p.controller = file.controller;
        Ok(p)
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

    #[test]
    fn chain_files_parse_and_refuse_mistakes() {
        let p = ChainParams::from_json(
            "t.json",
            r#"{"name": "slow", "genesis": "mainnet", "subsidy_sats": 1000, "halving_interval": 10,
                "pow_limit_bits": "1d00ffff", "controller": {"retarget": "lwma", "block_time": 60, "window": 30}}"#,
        )
        .unwrap();
        assert_eq!(p.name, "slow");
        assert_eq!(p.subsidy(10), Amount::from_sat(500));
        assert_eq!(p.pow_limit, Target::DIFF1);
        assert_eq!(p.controller.window, Some(30));
        // The genesis names the network payouts must belong to, unless "network" says otherwise.
        assert_eq!(p.network, Network::Bitcoin);
        assert_eq!(ChainParams::regtest().network, Network::Regtest);
        let own =
            ChainParams::from_json("t.json", r#"{"genesis": "mainnet", "network": "signet"}"#);
        assert_eq!(own.unwrap().network, Network::Signet);
        assert_eq!(
            crate::hash::display_hash(&crate::block::header_hash(&p.genesis.header)),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        for bad in [
            r#"{"subsidy": 5}"#,
            r#"{"genesis": "moon"}"#,
            r#"{"halving_interval": 0}"#,
            r#"{"pow_limit_bits": "1d80ffff"}"#,
            r#"{"controller": {"block_time": 0}}"#,
            r#"{"controller": {"window": 1}}"#,
            r#"{"network": "moon"}"#,
            "not json",
        ] {
            assert!(ChainParams::from_json("t.json", bad).is_err(), "{bad}");
        }
        assert!(matches!(
            ChainParams::load("mainnet"),
            Err(ParamsError::UnknownPreset(_))
        ));
    }
}
