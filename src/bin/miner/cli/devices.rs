//! `miner devices`: list the GPU adapters.

use anyhow::Result;
use clap::Args;
use miner::backend::gpu::list_adapters;

#[derive(Args, Debug)]
pub(crate) struct DevicesArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn devices(args: DevicesArgs) -> Result<()> {
    let adapters = list_adapters();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!("no GPU adapters found (install a Vulkan driver, e.g. apt-get install mesa-vulkan-drivers)");
    }
    for a in adapters {
        println!(
            "{}: {} ({}, {}, driver {})",
            a.index, a.name, a.backend, a.device_type, a.driver
        );
    }
    Ok(())
}
