//! `miner node`: serve the local chain over JSON-RPC.

use super::args::parse_difficulty;
use super::backend_args::{check_threads, BackendArgs};
use super::retarget_args::RetargetArgs;
use super::{chain_flags, ctrl_c_flag, data_dir, note_other_chains};
use anyhow::{Context, Result};
use clap::Args;
use miner::chain::{Chain, ChainParams};
use miner::pow::Difficulty;
use std::sync::Arc;

#[derive(Args, Debug)]
pub(crate) struct NodeArgs {
    /// Chain parameters: the preset `regtest`, or a JSON chain file (genesis, subsidy, halving
    /// interval, pow limit, controller; see the README).
    #[arg(long, value_name = "PRESET|FILE", default_value = "regtest")]
    pub(crate) chain: String,
    /// Where the chain store (chain.redb) and the cookie file (.cookie) live
    /// [default: the user's data directory, e.g. ~/.local/share/miner].
    #[arg(long, value_name = "DIR")]
    pub(crate) datadir: Option<std::path::PathBuf>,
    /// Address to listen on. Anything but loopback exposes the node to the network.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub(crate) rpcbind: std::net::IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, value_name = "PORT", default_value_t = 18443)]
    pub(crate) rpcport: u16,
    /// RPC user name (with --rpcpassword) instead of a cookie file.
    #[arg(long, value_name = "USER", requires = "rpcpassword")]
    pub(crate) rpcuser: Option<String>,
    /// RPC password (with --rpcuser).
    #[arg(long, value_name = "PASSWORD", requires = "rpcuser")]
    pub(crate) rpcpassword: Option<String>,
    /// Starting difficulty D of the chain (as for `mine`).
    #[arg(long, short = 'd', value_name = "D", default_value = "1e7", value_parser = parse_difficulty, allow_negative_numbers = true)]
    pub(crate) difficulty: Difficulty,
    /// Seconds a longpoll waits for a new tip before answering anyway.
    #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) longpoll_timeout: u64,
    #[command(flatten)]
    pub(crate) retarget: RetargetArgs,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

pub(crate) fn node(args: NodeArgs) -> Result<()> {
    use miner::node::{Credentials, NodeState, Server};
    check_threads(args.backend.threads)?;
    let datadir = data_dir(args.datadir.as_deref(), "")?;
    let params = ChainParams::load(&args.chain).context("--chain")?;
    let retarget = args
        .retarget
        .merged(&params.controller)?
        .params(args.difficulty.to_target(), params.pow_limit);
    let store = Chain::store_path(&datadir, &params, &retarget);
    let chain = Chain::open(&store, params, retarget).context("--datadir")?;
    note_other_chains(
        &store,
        &chain_flags(&args.chain, &args.difficulty, chain.retarget()),
        chain.height(),
    );
    let backend = args.backend.with_datadir(args.datadir.as_deref()).build()?;
    let (credentials, cookie) = match (&args.rpcuser, &args.rpcpassword) {
        (Some(user), Some(password)) => (
            Credentials {
                user: user.clone(),
                password: password.clone(),
            },
            None,
        ),
        _ => (Credentials::cookie(), Some(datadir.join(".cookie"))),
    };
    let mut state = NodeState::new(chain, backend);
    state.longpoll_timeout = std::time::Duration::from_secs(args.longpoll_timeout);
    let state = Arc::new(state);
    let server = Server::bind(
        std::net::SocketAddr::new(args.rpcbind, args.rpcport),
        state.clone(),
        credentials,
        cookie.clone(),
    )?;
    let (height, tip) = state.tip();
    let addr = server
        .local_addr()
        .map_or_else(|| "?".into(), |a| a.to_string());
    eprintln!(
        "miner node: chain in {} at height {height} ({tip})",
        store.display()
    );
    match &cookie {
        Some(path) => eprintln!(
            "listening on http://{addr} (auth: cookie file {})",
            path.display()
        ),
        None => eprintln!("listening on http://{addr} (auth: --rpcuser/--rpcpassword)"),
    }
    let stop = ctrl_c_flag();
    server.run(stop);
    let (height, tip) = state.tip();
    eprintln!("miner node stopped at height {height} ({tip})");
    Ok(())
}
