//! The difficulty-controller flags shared by `mine`, `node` and `retarget-sim`.

use super::args::parse_duration_secs;
use anyhow::{bail, Context, Result};
use clap::Args;
use miner::pow::retarget::{
    Algorithm, AlgorithmName, RetargetParams, DEFAULT_ASERT_HALF_LIFE_BLOCKS,
    DEFAULT_BITCOIN_WINDOW, DEFAULT_LWMA_WINDOW,
};
use miner::pow::Target;

/// Difficulty-controller flags shared by `mine` and `retarget-sim`.
#[derive(Args, Debug, Clone)]
pub(crate) struct RetargetArgs {
    /// Target block interval for the difficulty controller: 600, 10s, 2m, 1h [default: 10s].
    /// Giving it without --retarget selects asert.
    #[arg(long, value_name = "T", value_parser = parse_duration_secs, allow_negative_numbers = true)]
    pub(crate) block_time: Option<i64>,
    /// Difficulty controller: fixed (every block at --difficulty), asert (aserti3-2d), bitcoin
    /// (retarget every --window blocks), lwma (LWMA-1 over --window blocks)
    /// [default: fixed, or asert when --block-time is given].
    #[arg(long, value_name = "ALGO")]
    pub(crate) retarget: Option<AlgorithmName>,
    /// Blocks per window: bitcoin's retarget period [default: 2016] or lwma's N [default: 45].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub(crate) window: Option<u32>,
    /// asert's half-life: 3600, 8m, 2h [default: 48 block times].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs, allow_negative_numbers = true)]
    pub(crate) half_life: Option<i64>,
}

/// Default target interval for local mining with a controller.
pub(crate) const DEFAULT_BLOCK_TIME_S: i64 = 10;

impl RetargetArgs {
    /// These flags, with a chain file's controller settings filling what they leave out.
    pub(crate) fn merged(
        &self,
        defaults: &miner::chain::ControllerDefaults,
    ) -> Result<RetargetArgs> {
        let retarget = match (&self.retarget, &defaults.retarget) {
            (Some(r), _) => Some(*r),
            (None, Some(name)) => Some(name.parse().context("chain file: controller.retarget")?),
            (None, None) => None,
        };
        let merged = RetargetArgs {
            block_time: self.block_time.or(defaults.block_time),
            retarget,
            window: self.window.or(defaults.window),
            half_life: self.half_life.or(defaults.half_life),
        };
        for warning in self.ignored_flags(merged.name()) {
            eprintln!("warning: {warning}");
        }
        merged.check_visible_spacing(self.block_time.is_some())?;
        Ok(merged)
    }

    /// The controller these flags select: --retarget, else asert when --block-time is given,
    /// else fixed.
    pub(crate) fn name(&self) -> AlgorithmName {
        self.retarget.unwrap_or(if self.block_time.is_some() {
            AlgorithmName::Asert
        } else {
            AlgorithmName::Fixed
        })
    }

    /// One line per flag given on the command line that the controller `name` does not read.
    pub(crate) fn ignored_flags(&self, name: AlgorithmName) -> Vec<String> {
        let mut out = Vec::new();
        match name {
            AlgorithmName::Fixed => {
                let given: Vec<&str> = [
                    (self.block_time.is_some(), "--block-time"),
                    (self.window.is_some(), "--window"),
                    (self.half_life.is_some(), "--half-life"),
                ]
                .iter()
                .filter(|(g, _)| *g)
                .map(|(_, f)| *f)
                .collect();
                if !given.is_empty() {
                    out.push(format!(
                        "{} ignored: --retarget fixed keeps every block at --difficulty; \
                         use --retarget asert, bitcoin or lwma for a controller that reads {}",
                        given.join(", "),
                        if given.len() == 1 { "it" } else { "them" }
                    ));
                }
            }
            AlgorithmName::Asert => {
                if self.window.is_some() {
                    out.push(
                        "--window ignored: asert has no window (it reads --half-life); \
                         --window is for --retarget bitcoin or lwma"
                            .into(),
                    );
                }
            }
            AlgorithmName::Bitcoin | AlgorithmName::Lwma => {
                if self.half_life.is_some() {
                    let which = if name == AlgorithmName::Lwma {
                        "lwma"
                    } else {
                        "bitcoin"
                    };
                    out.push(format!(
                        "--half-life ignored: {which} has no half-life (it reads --window); \
                         --half-life is for --retarget asert"
                    ));
                }
            }
        }
        out
    }

    /// Refuses a block time the controller cannot see. Header times are whole seconds and a
    /// solve time counts as at least 1 s in LWMA, so at a 1 s target every fast block looks on
    /// time and the difficulty can never rise.
    pub(crate) fn check_visible_spacing(&self, from_flag: bool) -> Result<()> {
        let spacing = self.spacing();
        if self.name() == AlgorithmName::Lwma && spacing < 2 {
            let source = if from_flag {
                format!("--block-time {spacing}")
            } else {
                format!("the chain file's controller.block_time {spacing}")
            };
            bail!(
                "{source}: lwma cannot work at a {spacing} s block time: header times are whole \
                 seconds and lwma counts every solve time as at least 1 s, so blocks faster than \
                 the target look on time and the difficulty never rises. Use --block-time 2 or \
                 more, or --retarget asert (which reads the total time since its anchor)"
            );
        }
        Ok(())
    }

    pub(crate) fn spacing(&self) -> i64 {
        self.block_time.unwrap_or(DEFAULT_BLOCK_TIME_S)
    }

    pub(crate) fn algorithm(&self, name: AlgorithmName) -> Algorithm {
        let spacing = self.spacing();
        match name {
            AlgorithmName::Fixed => Algorithm::Fixed,
            AlgorithmName::Bitcoin => Algorithm::Bitcoin {
                window: self.window.unwrap_or(DEFAULT_BITCOIN_WINDOW),
            },
            AlgorithmName::Asert => Algorithm::Asert {
                half_life: self
                    .half_life
                    .unwrap_or(DEFAULT_ASERT_HALF_LIFE_BLOCKS * spacing),
            },
            AlgorithmName::Lwma => Algorithm::Lwma {
                window: self.window.unwrap_or(DEFAULT_LWMA_WINDOW),
            },
        }
    }

    /// The controller `mine` runs, starting at `initial`.
    pub(crate) fn params(&self, initial: Target, pow_limit: Target) -> RetargetParams {
        let algorithm = self.algorithm(self.name());
        // A controller never goes easier than the limit, so it starts no easier either.
        let initial = if algorithm == Algorithm::Fixed {
            initial
        } else {
            initial.min(pow_limit)
        };
        RetargetParams {
            algorithm,
            spacing: self.spacing(),
            pow_limit,
            initial: initial.to_compact_lossy(),
        }
    }
}
