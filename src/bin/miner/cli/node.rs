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
    /// Connections open at once; past it new connections are closed at once [default: 512, or
    /// fewer where file descriptors are short: see "File descriptors" in the README].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) rpc_max_connections: Option<u64>,
    /// Longpolls waiting at once; past it a longpoll is answered at once.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) rpc_max_longpolls: u64,
    /// Bytes of request line and headers (at least 8192); past it: HTTP 431.
    #[arg(long, value_name = "BYTES", default_value_t = 16384, value_parser = clap::value_parser!(u64).range(8192..=1_048_576))]
    pub(crate) rpc_max_header_bytes: u64,
    /// Bytes of a request body; past it: HTTP 413.
    #[arg(long, value_name = "BYTES", default_value_t = miner::node::MAX_BODY_BYTES as u64, value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824))]
    pub(crate) rpc_max_body_bytes: u64,
    /// Seconds to receive a request's headers; past it: HTTP 408 and the connection closed.
    #[arg(long, value_name = "S", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) rpc_header_timeout: u64,
    /// Seconds to receive a request's body; past it: HTTP 408.
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) rpc_body_timeout: u64,
    /// Seconds a kept-alive connection may sit idle between requests.
    #[arg(long, value_name = "S", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) rpc_idle_timeout: u64,
    /// Accept P2P peers on [ADDR:]PORT (address 127.0.0.1 unless given). Off unless given.
    #[arg(long, value_name = "[ADDR:]PORT", value_parser = parse_listen)]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Dial a P2P peer at ADDR:PORT (repeatable); redialed with backoff when the connection ends.
    /// `ADDR:PORT@MS` sets the relay delay for that peer alone (see --relay-delay).
    #[arg(long, value_name = "ADDR:PORT[@MS]", value_parser = parse_connect)]
    pub(crate) connect: Vec<miner::node::p2p::Dial>,
    /// Hold every outgoing block announcement this many milliseconds (the block goes at once when
    /// asked for), to set propagation delay on loopback for experiments (forks between nodes).
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub(crate) relay_delay: u64,
    /// Ban score at which a misbehaving peer is dropped and its address banned (Core's -banscore).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) banscore: u32,
    /// Seconds a misbehaving peer's address stays banned (Core's -bantime); `listbanned`,
    /// `setban`, `clearbanned` manage bans.
    #[arg(long, value_name = "S", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=10 * 365 * 86_400))]
    pub(crate) bantime: u64,
    /// Seconds a peer may take to deliver a block we requested; past it the block is asked
    /// again and the peer's ban score rises by 50.
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) p2p_stall_timeout: u64,
    /// P2P network magic as 8 hex digits in wire order, instead of the chain network's (regtest
    /// `fabfb5da`); Bitcoin SV's regtest speaks `dab5bffa`.
    #[arg(long, value_name = "HEX", value_parser = parse_magic)]
    pub(crate) p2p_magic: Option<bitcoin::p2p::Magic>,
    /// Serve Stratum v1 miners on [ADDR:]PORT (address 127.0.0.1 unless given; port 0: any free
    /// port, printed as `stratum: listening on ADDR:PORT`). Off unless given.
    #[arg(long, value_name = "[ADDR:]PORT", value_parser = parse_listen)]
    pub(crate) stratum: Option<std::net::SocketAddr>,
    /// Who may mine over Stratum: `any` (any user and password), `rpc` (the node's RPC user and
    /// password, or `__cookie__` and the cookie file's password), or a FILE of `user:password`
    /// lines.
    #[arg(
        long,
        value_name = "any|rpc|FILE",
        default_value = "any",
        requires = "stratum"
    )]
    pub(crate) stratum_auth: String,
    /// Initial share difficulty of a Stratum connection (Bitcoin difficulty: a share meets
    /// 0xFFFF·2^208 / D; fractional ok). Never above the network's: then every share is a block.
    #[arg(long, value_name = "D", default_value = "1", value_parser = parse_share_difficulty, requires = "stratum")]
    pub(crate) stratum_difficulty: f64,
    /// Vardiff: seconds between shares each connection's difficulty is moved toward.
    #[arg(long, value_name = "S", default_value = "5", value_parser = parse_interval, requires = "stratum")]
    pub(crate) stratum_share_interval: f64,
    /// Vardiff floor (and the lowest `mining.suggest_difficulty` honoured).
    #[arg(long, value_name = "D", default_value = "0.001", value_parser = parse_share_difficulty, requires = "stratum")]
    pub(crate) stratum_min_difficulty: f64,
    /// Vardiff ceiling.
    #[arg(long, value_name = "D", default_value = "1e15", value_parser = parse_share_difficulty, requires = "stratum")]
    pub(crate) stratum_max_difficulty: f64,
    /// Address (or hex output script) the coinbase of Stratum-mined blocks pays
    /// [default: OP_TRUE, anyone can spend, as `mine` pays].
    #[arg(long, value_name = "ADDRESS", requires = "stratum")]
    pub(crate) stratum_payout: Option<String>,
    /// Stratum miners connected at once; past it new connections are closed at once [default:
    /// 20000, or the file descriptors left after the reserve, the RPC and the peers, whichever
    /// is fewer; a value above what the process can hold is refused, naming the numbers].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000), requires = "stratum")]
    pub(crate) stratum_max_connections: Option<u64>,
    /// Seconds a Stratum miner has to subscribe and authorize after connecting.
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), requires = "stratum")]
    pub(crate) stratum_handshake_timeout: u64,
    /// Seconds a Stratum miner may send nothing before it is disconnected.
    #[arg(long, value_name = "S", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400), requires = "stratum")]
    pub(crate) stratum_idle_timeout: u64,
    /// Seconds between refreshed Stratum jobs (new ntime, clean_jobs=false) while the tip is
    /// unchanged.
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600), requires = "stratum")]
    pub(crate) stratum_refresh: u64,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as `miner=debug`).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub(crate) log_level: String,
    #[command(flatten)]
    pub(crate) retarget: RetargetArgs,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

pub(crate) fn node(args: NodeArgs) -> Result<()> {
    use miner::node::{Credentials, Limits, NodeState, Server};
    use std::time::Duration;
    check_threads(args.backend.threads)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).with_context(|| {
        format!(
            "--log-level {}: use error, warn, info, debug or trace",
            args.log_level
        )
    })?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    if matches!(&args.rpcpassword, Some(p) if p.is_empty()) {
        anyhow::bail!("--rpcpassword is empty: an empty password is refused (leave out --rpcuser/--rpcpassword to use a cookie file)");
    }
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
        // The cookie lives beside the chain it opens: nodes with other chain rules in the same
        // data directory each keep their own.
        _ => (
            Credentials::cookie(),
            Some(store.parent().unwrap_or(&datadir).join(".cookie")),
        ),
    };
    let network = chain.params().network;
    let mut state = NodeState::new(chain, backend);
    state.longpoll_timeout = std::time::Duration::from_secs(args.longpoll_timeout);
    let state = Arc::new(state);
    let (caps, caps_line) = descriptor_caps(&args)?;
    let limits = Limits {
        max_connections: caps.rpc as usize,
        max_longpolls: args.rpc_max_longpolls as usize,
        max_header_bytes: args.rpc_max_header_bytes as usize,
        max_body_bytes: args.rpc_max_body_bytes as usize,
        header_timeout: Duration::from_secs(args.rpc_header_timeout),
        body_timeout: Duration::from_secs(args.rpc_body_timeout),
        idle_timeout: Duration::from_secs(args.rpc_idle_timeout),
        ..Limits::default()
    };
    let credentials_for_stratum = credentials.clone();
    let server = Server::bind(
        std::net::SocketAddr::new(args.rpcbind, args.rpcport),
        state.clone(),
        credentials,
        cookie.clone(),
    )?
    .with_limits(limits);
    let p2p_listener = match args.listen {
        Some(at) => Some(
            std::net::TcpListener::bind(at)
                .with_context(|| format!("--listen {at}: cannot listen for peers"))?,
        ),
        None => None,
    };
    let p2p_addr = p2p_listener.as_ref().and_then(|l| l.local_addr().ok());
    let server = if p2p_listener.is_some() || !args.connect.is_empty() {
        server.with_p2p(miner::node::p2p::Config {
            listen: p2p_listener,
            connect: args.connect.clone(),
            magic: args.p2p_magic,
            settings: miner::node::p2p::Settings {
                banscore: args.banscore,
                bantime: Duration::from_secs(args.bantime),
                stall_timeout: Duration::from_secs(args.p2p_stall_timeout),
                relay_delay: Duration::from_millis(args.relay_delay),
                banlist: Some(store.parent().unwrap_or(&datadir).join("banlist.json")),
            },
            max_inbound: caps.p2p_inbound as usize,
        })
    } else {
        server
    };
    let (server, stratum_at) = match args.stratum {
        Some(at) => {
            let mut config = stratum_config(&args, at, network, &credentials_for_stratum)?;
            config.max_connections = caps.stratum as usize;
            let bound = config.local_addr();
            (server.with_stratum(config), bound)
        }
        None => (server, None),
    };
    if !args.rpcbind.is_loopback() {
        eprintln!(
            "warning: --rpcbind {} is not loopback: the node's RPC is open to the network (anyone who can reach it may try passwords; failed attempts are delayed 250 ms)",
            args.rpcbind
        );
    }
    let (height, tip) = state.tip();
    let addr = server
        .local_addr()
        .map_or_else(|| "?".into(), |a| a.to_string());
    eprintln!(
        "miner node: chain in {} at height {height} ({tip})",
        store.display()
    );
    eprintln!("{caps_line}");
    if let Some(at) = p2p_addr {
        eprintln!("listening for peers on {at}");
    }
    if let Some(at) = stratum_at {
        eprintln!("stratum: listening on {at}");
    }
    for dial in &args.connect {
        match dial.relay_delay {
            Some(d) => eprintln!(
                "connecting to peer {} (relay delay {} ms)",
                dial.addr,
                d.as_millis()
            ),
            None => eprintln!("connecting to peer {}", dial.addr),
        }
    }
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

/// Raises the file-descriptor limit toward the hard one (as Core does) and shares what the
/// process may open between the RPC, the peers and Stratum; the caps and the line that says
/// them (printed after the chain's line). A cap asked for
/// that does not fit is an error naming the numbers.
fn descriptor_caps(args: &NodeArgs) -> Result<(miner::node::fds::Caps, String)> {
    use miner::node::fds;
    let asked = fds::Asked {
        rpc: args.rpc_max_connections,
        stratum: args.stratum_max_connections,
        stratum_on: args.stratum.is_some(),
        listen: args.listen.is_some(),
        outbound: args.connect.len() as u64,
    };
    let limit = fds::raise_limit(fds::wanted(&asked));
    let caps = fds::plan(limit, &asked)?;
    let raised = if limit.soft > limit.was {
        format!("raised from {}, ", limit.was)
    } else {
        String::new()
    };
    let mut line = format!(
        "file descriptors: {} ({raised}hard limit {}): at most {} RPC connections",
        limit.soft, limit.hard, caps.rpc
    );
    if asked.listen || asked.outbound > 0 {
        line += &format!(
            ", {} inbound and {} outbound peers",
            caps.p2p_inbound, caps.p2p_outbound
        );
    }
    if asked.stratum_on {
        line += &format!(", {} Stratum miners", caps.stratum);
    }
    Ok((caps, line))
}

/// The Stratum server's settings from the `--stratum-*` flags.
fn stratum_config(
    args: &NodeArgs,
    at: std::net::SocketAddr,
    network: bitcoin::Network,
    rpc: &miner::node::Credentials,
) -> Result<miner::node::stratum::Config> {
    use miner::node::stratum::{Auth, Config};
    use std::time::Duration;
    let payout = match &args.stratum_payout {
        Some(text) => {
            let payout = miner::block::Payout::parse(text)
                .map_err(|e| anyhow::anyhow!("--stratum-payout {text}: {e}"))?;
            payout
                .check_network(network)
                .map_err(|e| anyhow::anyhow!("--stratum-payout: {e}"))?;
            payout.script
        }
        None => miner::block::Payout::op_true().script,
    };
    let auth = match args.stratum_auth.as_str() {
        "any" => Auth::Any,
        "rpc" => Auth::Users([(rpc.user.clone(), rpc.password.clone())].into()),
        // `{:#}`: the error with its source (a read error's text), as one line.
        file => Auth::from_file(std::path::Path::new(file)).map_err(|e| {
            let e = anyhow::Error::from(e);
            anyhow::anyhow!("--stratum-auth {file}: {e:#} (or use `any` or `rpc`)")
        })?,
    };
    let (min, max) = (args.stratum_min_difficulty, args.stratum_max_difficulty);
    if min > max {
        anyhow::bail!("--stratum-min-difficulty {min} is above --stratum-max-difficulty {max}: lower the floor or raise the ceiling");
    }
    let d = args.stratum_difficulty;
    if d < min || d > max {
        anyhow::bail!("--stratum-difficulty {d} is outside [{min}, {max}]: give one within --stratum-min-difficulty and --stratum-max-difficulty");
    }
    let listener = std::net::TcpListener::bind(at).with_context(|| {
        format!("--stratum {at}: cannot listen for Stratum miners (is the port in use? pick another, or 0 for any free port)")
    })?;
    let mut config = Config::new(listener, payout);
    config.auth = auth;
    config.difficulty = d;
    config.min_difficulty = min;
    config.max_difficulty = max;
    config.share_interval = Duration::from_secs_f64(args.stratum_share_interval);
    config.handshake_timeout = Duration::from_secs(args.stratum_handshake_timeout);
    config.idle_timeout = Duration::from_secs(args.stratum_idle_timeout);
    config.refresh = Duration::from_secs(args.stratum_refresh);
    Ok(config)
}

/// A share difficulty: a positive finite number (fractions ok).
fn parse_share_difficulty(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && *d > 0.0)
        .ok_or_else(|| format!("{text}: expected a positive number, e.g. 1, 0.001 or 1e6"))
}

/// Seconds between shares: 0.1 to 3600.
fn parse_interval(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| (0.1..=3600.0).contains(s))
        .ok_or_else(|| format!("{text}: expected seconds from 0.1 to 3600, e.g. 5"))
}

/// `--listen`: `PORT` (on 127.0.0.1) or `ADDR:PORT`.
fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| format!("{text}: expected PORT or ADDR:PORT"))
}

/// `--connect`: `ADDR:PORT`, optionally `@MS` for that peer's relay delay.
fn parse_connect(text: &str) -> Result<miner::node::p2p::Dial, String> {
    let (addr, delay) = match text.split_once('@') {
        Some((addr, ms)) => {
            let ms: u64 = ms
                .parse()
                .ok()
                .filter(|ms| *ms <= 3_600_000)
                .ok_or_else(|| {
                    format!("{text}: after @ give the relay delay in milliseconds (0 to 3600000), e.g. 127.0.0.1:18444@250")
                })?;
            (addr, Some(std::time::Duration::from_millis(ms)))
        }
        None => (text, None),
    };
    let addr = addr.parse().map_err(|_| {
        format!("{text}: expected ADDR:PORT (e.g. 127.0.0.1:18444), optionally @MS")
    })?;
    Ok(miner::node::p2p::Dial {
        addr,
        relay_delay: delay,
    })
}

/// `--p2p-magic`: 4 bytes as 8 hex digits, in wire order.
fn parse_magic(text: &str) -> Result<bitcoin::p2p::Magic, String> {
    let bytes: [u8; 4] = hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{text}: expected 8 hex digits, e.g. fabfb5da"))?;
    Ok(bitcoin::p2p::Magic::from_bytes(bytes))
}
