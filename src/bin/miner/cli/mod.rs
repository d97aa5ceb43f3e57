//! The command line: clap structs and the handlers that wire the library together.
//!
//! One module per command, each beside its clap structs (`mine`, `scan`, `bench`, `devices`,
//! `retarget_sim`, `node`, `experiment`); the flag groups several commands share live in `backend_args` and
//! `retarget_args`, the value parsers in `args`, and the helpers they share here. A new command
//! is a new module plus one `Command` variant and one line in [`run`].

mod args;
mod backend_args;
mod bench;
mod devices;
mod experiment;
mod mine;
mod node;
mod retarget_args;
mod retarget_sim;
mod scan;

use self::bench::{bench, BenchArgs};
use self::devices::{devices, DevicesArgs};
use self::experiment::{experiment, ExperimentArgs};
use self::mine::{mine, MineArgs};
use self::node::{node, NodeArgs};
use self::retarget_sim::{retarget_sim, SimArgs};
use self::scan::{scan, ScanArgs};
use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use miner::pow::retarget::{Algorithm, RetargetParams};
use miner::pow::Difficulty;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A proof-of-work mining engine: Bitcoin-exact block templates and SHA-256d nonce search.
///
/// Difficulty D is the expected number of hashes per block: a block is valid when
/// SHA256d(header), read as a little-endian 256-bit number, is at most floor((2^256-1)/D).
#[derive(Parser, Debug)]
#[command(
    name = "miner",
    version,
    propagate_version = true,
    override_usage = "miner [MINE OPTIONS]\n       miner <COMMAND> [OPTIONS]",
    after_help = "With no command, miner runs `mine`: `miner --difficulty 1e6 --blocks 5` is \
                  `miner mine --difficulty 1e6 --blocks 5`. `miner mine --help` lists its flags."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Mine blocks onto a local chain that starts from the regtest genesis block.
    ///
    /// Prints one line per block (height, hash, nonce, hashes tried, seconds, hash rate), a live
    /// hash-rate line on a terminal, and a summary at the end. Ctrl-C stops cleanly and still
    /// prints the summary.
    Mine(MineArgs),
    /// Search the nonces of one 80-byte header and print every nonce that meets the target.
    Scan(ScanArgs),
    /// Measure hash rates: every CPU kernel against the plain `sha2` loop in the same run, and
    /// the GPU with `--backend gpu|all`.
    Bench(BenchArgs),
    /// List the GPU adapters wgpu finds (the index and name `--adapter` takes).
    Devices(DevicesArgs),
    /// Simulate difficulty controllers under a hash-rate profile, without hashing: a table of
    /// interval statistics and recovery after each step; on request (--csv, --svg, --out) the
    /// series as CSV and an SVG chart.
    RetargetSim(SimArgs),
    /// Serve the local chain over Bitcoin Core's JSON-RPC (getblocktemplate, submitblock, ...)
    /// on 127.0.0.1, so other miners and processes can mine against it.
    Node(NodeArgs),
    /// The seed's proof-of-work experiments, simulated on the chain code: double-spend (the 51%
    /// attack), forks from propagation delay, selfish mining, finality after k blocks; each
    /// beside the published result (Nakamoto, Rosenfeld, Eyal & Sirer) with a 95% interval.
    Experiment(ExperimentArgs),
}

/// Entry point for `main`.
pub fn run() -> Result<()> {
    quiet_mesa_runtime_dir();
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    match cli.command {
        Command::Mine(args) => mine(args),
        Command::Scan(args) => scan(args),
        Command::Bench(args) => bench(args),
        Command::Devices(args) => devices(args),
        Command::RetargetSim(args) => retarget_sim(args),
        Command::Node(args) => node(args),
        Command::Experiment(args) => experiment(args),
    }
}

/// `argv` with `mine` inserted when no command is named: no arguments at all, or a first
/// argument that is a flag other than help/version (`miner --difficulty 1e6`). A first argument
/// that is not a flag is left to clap, so a mistyped command is still reported as one.
pub fn with_default_command(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = argv.get(1).and_then(|a| a.to_str());
    let mines = match first {
        None => argv.len() <= 1,
        Some(a) => a.starts_with('-') && !matches!(a, "-h" | "--help" | "-V" | "--version"),
    };
    if mines {
        argv.insert(1.min(argv.len()), "mine".into());
    }
    argv
}

/// Mesa's software Vulkan (lavapipe) prints "error: XDG_RUNTIME_DIR is invalid or not set in
/// the environment." whenever wgpu opens it without that variable, which reads like our own
/// failure. When it is unset, point it at a private directory of ours before any thread starts.
#[cfg(unix)]
pub(crate) fn quiet_mesa_runtime_dir() {
    let set =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if set {
        return;
    }
    let dir = std::env::temp_dir().join(format!("miner-runtime-{}", current_uid_tag()));
    let made = std::fs::create_dir_all(&dir).is_ok() && {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok()
    };
    if made {
        // Edition 2021: set_var is safe; this runs first in `run`, before any thread exists.
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

#[cfg(not(unix))]
pub(crate) fn quiet_mesa_runtime_dir() {}

/// The user's name (or "user"), so each user gets their own runtime directory.
#[cfg(unix)]
pub(crate) fn current_uid_tag() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .unwrap_or_else(|| "user".into())
}

/// A cancel flag raised by Ctrl-C (a second Ctrl-C exits at once).
pub(crate) fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = flag.clone();
    let installed = ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will not stop cleanly: {e}");
    }
    flag
}

/// Exits with status 130, as shells expect of a program stopped by SIGINT, once the summary
/// is out.
pub(crate) fn exit_130_if(interrupted: bool) {
    if interrupted {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(130);
    }
}

/// The flags (besides --datadir) that select the chain with these rules, for `mine` and `node`
/// alike: `--chain` unless regtest, `--difficulty`, and the controller's settings in full.
pub(crate) fn chain_flags(
    chain: &str,
    difficulty: &Difficulty,
    retarget: &RetargetParams,
) -> String {
    let mut flags = Vec::new();
    if chain != "regtest" {
        flags.push(format!("--chain {chain}"));
    }
    flags.push(format!("--difficulty {difficulty}"));
    let spacing = retarget.spacing;
    match retarget.algorithm {
        Algorithm::Fixed => {}
        Algorithm::Asert { half_life } => flags.push(format!(
            "--retarget asert --block-time {spacing} --half-life {half_life}"
        )),
        Algorithm::Bitcoin { window } => flags.push(format!(
            "--retarget bitcoin --block-time {spacing} --window {window}"
        )),
        Algorithm::Lwma { window } => flags.push(format!(
            "--retarget lwma --block-time {spacing} --window {window}"
        )),
    }
    flags.join(" ")
}

/// Records the flags beside the store at `store`, and when its chain is new (height 0) lists
/// the other chains of the data directory with the flags that select them, so a user who
/// mined with other flags sees where those blocks are instead of an empty chain.
pub(crate) fn note_other_chains(store: &std::path::Path, flags: &str, height: u32) {
    if let Err(e) = miner::chain::store::record_flags(store, flags) {
        eprintln!(
            "warning: could not record the chain's flags beside {}: {e}",
            store.display()
        );
    }
    if height != 0 {
        return;
    }
    let Some(root) = store.parent().and_then(std::path::Path::parent) else {
        return;
    };
    let others: Vec<_> = miner::chain::store::list_stores(root)
        .into_iter()
        .filter(|s| s.path != store)
        .collect();
    if others.is_empty() {
        return;
    }
    eprintln!(
        "note: this chain ({flags}) is new; {} holds {} other chain{}, each continued by its own flags:",
        root.display(),
        others.len(),
        if others.len() == 1 { "" } else { "s" }
    );
    for s in others {
        let name = s
            .path
            .strip_prefix(root)
            .unwrap_or(&s.path)
            .display()
            .to_string();
        let height = match (s.height, s.in_use) {
            (_, true) => "in use by another miner process".to_string(),
            (Some(h), _) => format!("height {h}"),
            (None, _) => "unreadable".to_string(),
        };
        let how = match (&s.flags, &s.rules) {
            (Some(f), _) => format!("flags: {f}"),
            (None, Some(r)) => format!("rules: {r}"),
            (None, None) => "flags not recorded".to_string(),
        };
        eprintln!("  {name}: {height}; {how}");
    }
}

/// `--datadir`, or the user's data directory; `or_else` completes the error's advice.
pub(crate) fn data_dir(
    flag: Option<&std::path::Path>,
    or_else: &str,
) -> Result<std::path::PathBuf> {
    match flag
        .map(std::path::Path::to_path_buf)
        .or_else(|| dirs::data_dir().map(|d| d.join("miner")))
    {
        Some(d) => Ok(d),
        None => {
            bail!("--datadir: no user data directory is known here; pass --datadir DIR{or_else}")
        }
    }
}
