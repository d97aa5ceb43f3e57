//! `miner retarget-sim`: simulate difficulty controllers under a hash-rate profile.

use super::retarget_args::RetargetArgs;
use anyhow::{Context, Result};
use clap::Args;
use miner::chain::ChainParams;
use miner::experiment::retarget as sim;
use miner::pow::retarget::{Algorithm, AlgorithmName};

#[derive(Args, Debug)]
pub(crate) struct SimArgs {
    /// Controllers to compare, comma-separated: asert,bitcoin,lwma,fixed.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "asert,bitcoin,lwma"
    )]
    pub(crate) algo: Vec<AlgorithmName>,
    /// Blocks to simulate.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub(crate) blocks: u64,
    /// Hash rate over the run: 'steps' (1 MH/s; 10x from N/4; 1x from N/2; an on/off miner
    /// from 3N/4), or segments like '1M,10M@2500,1M@5000,onoff(1M/10M/50)@7500' (H/s with
    /// k/M/G/T; '@' gives the block a segment starts at).
    #[arg(long, value_name = "PROFILE", default_value = "steps")]
    pub(crate) hashrate: String,
    /// Random seed (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Write the per-block series here as CSV (nothing is written unless asked).
    #[arg(long, value_name = "FILE")]
    pub(crate) csv: Option<std::path::PathBuf>,
    /// Draw difficulty, hash rate and interval over height here as SVG (nothing is written
    /// unless asked).
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<std::path::PathBuf>,
    /// Write both into this directory (created if missing), as retarget-sim.csv and
    /// retarget-sim.svg; --csv and --svg still name their own files.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<std::path::PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) retarget: RetargetArgs,
}

pub(crate) fn retarget_sim(args: SimArgs) -> Result<()> {
    let profile = sim::Profile::parse(&args.hashrate, args.blocks).context("--hashrate")?;
    let mut seen = Vec::new();
    let algorithms: Vec<Algorithm> = args
        .algo
        .iter()
        .filter(|a| {
            let new = !seen.contains(*a);
            seen.push(**a);
            new
        })
        .map(|&a| args.retarget.algorithm(a))
        .collect();
    let cfg = sim::SimConfig {
        algorithms,
        spacing: args.retarget.spacing(),
        blocks: args.blocks,
        profile,
        seed: args.seed,
        pow_limit: ChainParams::regtest().pow_limit,
    };
    let runs = sim::simulate(&cfg);
    let stats: Vec<sim::SimStats> = runs.iter().map(|r| sim::stats(r, &cfg)).collect();
    // Files only when asked: --csv/--svg name them, --out DIR gives both a default name there.
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--out {}: cannot create that directory", dir.display()))?;
    }
    let in_out = |name: &str| args.out.as_ref().map(|d| d.join(name));
    let csv = args.csv.clone().or_else(|| in_out("retarget-sim.csv"));
    let svg = args.svg.clone().or_else(|| in_out("retarget-sim.svg"));
    if let Some(path) = &csv {
        sim::write_csv(&runs, path).with_context(|| format!("--csv {}", path.display()))?;
    }
    if let Some(path) = &svg {
        miner::experiment::chart::write_retarget(&runs, cfg.spacing, path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("--svg {}", path.display()))?;
    }
    let written: Vec<String> = [&csv, &svg]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{}", sim::table(&stats, cfg.spacing));
        println!(
            "recover@H: blocks after the hash-rate step at block H until the {}-block mean interval is within {:.0}% of T",
            sim::RECOVERY_WINDOW,
            sim::RECOVERY_TOLERANCE * 100.0
        );
        if written.is_empty() {
            println!("no files written: --csv FILE, --svg FILE or --out DIR save the series and the chart");
        } else {
            println!("wrote {}", written.join(" and "));
        }
    }
    Ok(())
}
