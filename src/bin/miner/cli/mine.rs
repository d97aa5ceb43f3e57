//! `miner mine`: mine blocks onto a local chain, or for a node with `--node`.

use super::args::{parse_difficulty, parse_payout_arg};
use super::backend_args::{print_parts, BackendArgs};
use super::retarget_args::RetargetArgs;
use super::{chain_flags, ctrl_c_flag, data_dir, exit_130_if, note_other_chains};
use crate::output::{count, BlockStatus, HashRate, LiveRate};
use anyhow::{bail, Context, Result};
use clap::Args;
use miner::block::{Payout, DEFAULT_PAYOUT_HEX};
use miner::chain::{Chain, ChainParams};
use miner::hash::display_hash;
use miner::mining::{mine_next_with_clock, MineOutcome, MinedBlock, SystemClock};
use miner::pow::retarget::Algorithm;
use miner::pow::{Difficulty, Target};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub(crate) struct MineArgs {
    /// Difficulty D, the expected hashes per block: 250000, 1e6, 1.5e9 (at least 1).
    ///
    /// The header stores the target as compact nBits, which rounds it down slightly; the
    /// effective difficulty is printed next to D.
    #[arg(long, short = 'd', value_name = "D", default_value = "1e7", value_parser = parse_difficulty, allow_negative_numbers = true)]
    pub(crate) difficulty: Difficulty,
    /// Stop after N blocks [default: mine until Ctrl-C]. With --pool: after N block candidates
    /// (accepted shares that meet the job's nBits; whether the pool submits them as blocks is
    /// the pool's business, and it does not say).
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) blocks: Option<u64>,
    /// Coinbase payout: an address of the chain's network (regtest: bcrt1…, m…, n…, 2…; a
    /// mainnet chain file: bc1…, 1…, 3…) or an output script in hex.
    #[arg(long, value_name = "ADDR|SCRIPT", default_value = DEFAULT_PAYOUT_HEX, value_parser = parse_payout_arg)]
    pub(crate) payout: Payout,
    /// Print one JSON object per line: one per block, then a summary.
    #[arg(long)]
    pub(crate) json: bool,
    /// Chain parameters: the preset `regtest`, or a JSON chain file (genesis, subsidy, halving
    /// interval, pow limit, controller; see the README).
    #[arg(long, value_name = "PRESET|FILE", default_value = "regtest")]
    pub(crate) chain: String,
    /// Data directory of the crash-safe chain store; each set of chain rules (preset or file,
    /// controller, starting difficulty) keeps its own chain in a subdirectory, continued on the
    /// next run with the same rules, and `miner node` with the same flags serves it
    /// [default: the user's data directory, e.g. ~/.local/share/miner].
    #[arg(long, value_name = "DIR", conflicts_with = "node")]
    pub(crate) datadir: Option<std::path::PathBuf>,
    /// Mine a throwaway chain in memory instead (nothing is stored).
    #[arg(long, conflicts_with_all = ["datadir", "node"])]
    pub(crate) memory: bool,
    /// Mine for a node instead of a local chain: its JSON-RPC URL (getblocktemplate and
    /// submitblock), e.g. http://127.0.0.1:18443 for `miner node` or a regtest bitcoind.
    #[arg(long, value_name = "URL", conflicts_with = "pool")]
    pub(crate) node: Option<String>,
    /// Mine for a Stratum v1 pool instead of a local chain: stratum+tcp://HOST:PORT (e.g. a
    /// `miner node --stratum 3333` at stratum+tcp://127.0.0.1:3333). Repeat for failover: the
    /// pools are tried in order, and mining returns to an earlier one when it answers again.
    #[arg(long, value_name = "URL", conflicts_with = "memory")]
    pub(crate) pool: Vec<String>,
    /// Worker name for --pool (`mining.authorize`); pools usually want ACCOUNT.WORKER.
    #[arg(long, value_name = "USER", default_value = "miner", requires = "pool")]
    pub(crate) user: String,
    /// Worker password for --pool.
    #[arg(long, value_name = "PASSWORD", default_value = "x", requires = "pool")]
    pub(crate) pass: String,
    /// With --pool: stop after N accepted shares (with --blocks, whichever comes first).
    #[arg(long, value_name = "N", requires = "pool", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) shares: Option<u64>,
    /// With several --pool: seconds between probes of the earlier pools while mining on a later
    /// one.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 15.0,
        requires = "pool"
    )]
    pub(crate) failback_interval: f64,
    /// With --pool: do not offer BIP 310 version rolling (`mining.configure`). Without this
    /// flag, a pool that closes the connection (or stays silent) on `mining.configure` is
    /// reconnected to once without it.
    #[arg(long, requires = "pool")]
    pub(crate) no_version_rolling: bool,
    /// RPC user for --node (with --rpcpassword).
    #[arg(long, value_name = "USER", requires = "rpcpassword", requires = "node")]
    pub(crate) rpcuser: Option<String>,
    /// RPC password for --node (with --rpcuser).
    #[arg(long, value_name = "PASSWORD", requires = "rpcuser")]
    pub(crate) rpcpassword: Option<String>,
    /// Cookie file with the node's credentials (`miner node` and bitcoind write `.cookie`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "node",
        conflicts_with = "rpcuser"
    )]
    pub(crate) rpccookiefile: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) retarget: RetargetArgs,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

pub(crate) fn mine(args: MineArgs) -> Result<()> {
    if let Some(url) = args.node.clone() {
        return mine_for_node(&url, args);
    }
    if !args.pool.is_empty() {
        return mine_for_pool(args);
    }
    let backend = args.backend.with_datadir(args.datadir.as_deref()).build()?;
    let params = ChainParams::load(&args.chain).context("--chain")?;
    // As Core's generatetoaddress: an address of another network is refused (a hex script is
    // taken as it is).
    args.payout
        .check_network(params.network)
        .with_context(|| format!("--payout (for --chain {})", args.chain))?;
    let retarget = args
        .retarget
        .merged(&params.controller)?
        .params(args.difficulty.to_target(), params.pow_limit);
    let first = Target::from_compact(retarget.initial).context("--difficulty: nBits for this D")?;
    let store = if args.memory {
        None
    } else {
        let root = data_dir(args.datadir.as_deref(), " or --memory")?;
        Some(Chain::store_path(&root, &params, &retarget))
    };
    let mut chain = match &store {
        Some(path) => Chain::open(path, params, retarget).context("--datadir")?,
        None => Chain::new(params, retarget),
    };
    if let Some(path) = &store {
        let flags = chain_flags(&args.chain, &args.difficulty, chain.retarget());
        note_other_chains(path, &flags, chain.height());
    }
    match &store {
        Some(path) => eprintln!(
            "mining on the {} chain in {} at height {} ({})",
            chain.params().name,
            path.display(),
            chain.height(),
            display_hash(&chain.tip().hash)
        ),
        None => eprintln!(
            "mining on a new in-memory {} chain from genesis {}",
            chain.params().name,
            display_hash(&chain.tip().hash)
        ),
    }
    let controller = match chain.retarget().algorithm {
        Algorithm::Fixed => "fixed".to_string(),
        a => format!("{a}, block time {} s", chain.retarget().spacing),
    };
    eprintln!(
        "D = {} (nBits {}, effective D {}, bdiff {:.6e}); difficulty {controller}; backend {}{}",
        args.difficulty,
        chain.retarget().initial,
        first.difficulty(),
        chain.retarget().initial.bdiff(),
        backend.name(),
        args.backend.kernel_line()
    );
    let cancel = ctrl_c_flag();
    let progress = Arc::new(AtomicU64::new(0));
    let live = LiveRate::start("mining".into(), progress.clone());
    let started = Instant::now();
    let mut mined: Vec<MinedBlock> = Vec::new();
    let mut spare_hashes = 0u64;
    let told_clock = AtomicBool::new(false);
    while args.blocks.is_none_or(|n| (mined.len() as u64) < n) {
        live.set_block(BlockStatus {
            number: mined.len() as u64 + 1,
            of: args.blocks,
            difficulty: Target::from_compact(chain.next_bits()).map_or(0.0, |t| t.work().to_f64()),
        });
        match mine_next_with_clock(
            &mut chain,
            backend.as_ref(),
            &args.payout.script,
            &cancel,
            &progress,
            &SystemClock,
            &mut |wait| {
                // Once per run: the reason holds for every later wait too.
                if !told_clock.swap(true, Ordering::Relaxed) {
                    live.suspend(|| eprintln!("{}", clock_wait_line(wait)));
                }
            },
        )? {
            MineOutcome::Mined(block) => {
                live.suspend(|| print_block(&block, args.json));
                mined.push(*block);
            }
            MineOutcome::Cancelled { hashes, .. } => {
                spare_hashes = hashes;
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(live);
    let interrupted = cancel.load(Ordering::SeqCst);
    print_mine_summary(
        &mined,
        spare_hashes,
        seconds,
        &args.difficulty,
        interrupted,
        args.json,
        &args.backend,
    );
    print_parts(backend.as_ref(), args.json);
    exit_130_if(interrupted);
    Ok(())
}

/// Why mining pauses when blocks come faster than one per second (printed once per run).
pub(crate) fn clock_wait_line(wait: u32) -> String {
    format!(
        "waiting {wait} s for the clock: the chain's median time is more than {} s ahead of it \
         (blocks faster than 1 per s push header times ahead, and a block may be at most 2 h \
         ahead of the clock); mining goes on as the clock catches up, at about 6 blocks per s",
        miner::chain::MAX_FUTURE_BLOCK_TIME
    )
}

pub(crate) fn print_block(b: &MinedBlock, json: bool) {
    let rate = HashRate::from_count(b.hashes, b.seconds);
    if json {
        println!(
            "{}",
            json!({
                "type": "block",
                "height": b.height,
                "hash": display_hash(&b.hash),
                "header": hex::encode(b.header),
                "nonce": b.nonce,
                "extranonce": b.extranonce,
                "bits": format!("{:08x}", b.bits.to_consensus()),
                "difficulty": block_difficulty(b),
                "trials": b.trials,
                "hashes": b.hashes,
                "seconds": b.seconds,
                "hashrate_hs": rate.0,
            })
        );
    } else {
        println!(
            "block {:>5}  {}  D {:>9}  nonce {:>10}  {:>9} trials  {:>9} hashes  {:>7.2} s  {}",
            b.height,
            display_hash(&b.hash),
            count(block_difficulty(b)),
            b.nonce,
            count(b.trials as f64),
            count(b.hashes as f64),
            b.seconds,
            rate
        );
    }
}

pub(crate) fn mine_for_node(url: &str, args: MineArgs) -> Result<()> {
    use miner::client::{run, ClientOptions, RpcClient};
    use miner::node::Credentials;
    let url = &miner::client::parse_node_url(url).context("--node")?;
    let credentials = match (&args.rpcuser, &args.rpcpassword, &args.rpccookiefile) {
        (Some(u), Some(p), _) => Credentials {
            user: u.clone(),
            password: p.clone(),
        },
        (_, _, Some(file)) => Credentials::from_cookie_file(file)
            .with_context(|| format!("--rpccookiefile {}", file.display()))?,
        _ => {
            bail!("--node needs credentials: --rpcuser and --rpcpassword, or --rpccookiefile FILE")
        }
    };
    let client = RpcClient::new(url, &credentials.user, &credentials.password);
    let backend = args.backend.build()?;
    eprintln!(
        "mining for the node at {url} with {}{}",
        backend.name(),
        args.backend.kernel_line()
    );
    let cancel = ctrl_c_flag();
    let progress = Arc::new(AtomicU64::new(0));
    let live = LiveRate::start("mining".into(), progress.clone());
    let started = Instant::now();
    let options = ClientOptions {
        payout: args.payout.script.clone(),
        blocks: args.blocks,
        max_backoff: std::time::Duration::from_secs(30),
        scan_slice: miner::client::DEFAULT_SCAN_SLICE,
    };
    let json_out = args.json;
    let accepted = run(
        &client,
        backend.as_ref(),
        &options,
        &cancel,
        &progress,
        |b| {
            live.suspend(|| {
                let rate = HashRate::from_count(b.hashes, b.seconds);
                let verdict = b.rejected.clone().unwrap_or_else(|| "accepted".into());
                if json_out {
                    println!(
                        "{}",
                        json!({"type": "block", "height": b.height, "hash": display_hash(&b.hash),
                               "header": hex::encode(b.header), "nonce": b.nonce, "trials": b.trials, "hashes": b.hashes,
                               "seconds": b.seconds, "hashrate_hs": rate.0, "accepted": b.rejected.is_none(),
                               "node_answer": b.rejected})
                    );
                } else {
                    println!(
                        "block {:>5}  {}  nonce {:>10}  {:>9} trials  {:>9} hashes  {:>7.2} s  {}  {verdict}",
                        b.height,
                        display_hash(&b.hash),
                        b.nonce,
                        count(b.trials as f64),
                        count(b.hashes as f64),
                        b.seconds,
                        rate
                    );
                }
            })
        },
        |event| live.suspend(|| eprintln!("{event}")),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    drop(live);
    let rate = HashRate::from_count(progress.load(Ordering::SeqCst), seconds);
    let (kernel, kernel_choice, kernel_rates) = args.backend.kernel_json();
    if args.json {
        println!(
            "{}",
            json!({"type": "summary", "accepted": accepted, "seconds": seconds, "mean_hashrate_hs": rate.0,
                   "interrupted": cancel.load(Ordering::SeqCst), "kernel": kernel,
                   "kernel_choice": kernel_choice, "kernel_rates_mhs": kernel_rates})
        );
    } else {
        println!("{accepted} blocks accepted by {url} in {seconds:.2} s, {rate}");
    }
    exit_130_if(cancel.load(Ordering::SeqCst));
    Ok(())
}

pub(crate) fn mine_for_pool(args: MineArgs) -> Result<()> {
    use miner::client::stratum::{parse_pool_url, run, PoolOptions, ShareResult};
    let pools = args
        .pool
        .iter()
        .map(|p| parse_pool_url(p))
        .collect::<Result<Vec<_>, _>>()
        .context("--pool")?;
    if !(args.failback_interval.is_finite() && args.failback_interval > 0.0) {
        bail!(
            "--failback-interval {}: give a number of seconds above 0, e.g. 15",
            args.failback_interval
        );
    }
    let backend = args.backend.with_datadir(args.datadir.as_deref()).build()?;
    let names: Vec<&str> = pools.iter().map(|p| p.url.as_str()).collect();
    eprintln!(
        "mining for {} as {} with {}{}",
        names.join(", then "),
        args.user,
        backend.name(),
        args.backend.kernel_line()
    );
    let mut options = PoolOptions::new(pools);
    options.user = args.user.clone();
    options.password = args.pass.clone();
    options.blocks = args.blocks;
    options.shares = args.shares;
    options.version_rolling = !args.no_version_rolling;
    options.failback_interval = std::time::Duration::from_secs_f64(args.failback_interval);
    let cancel = ctrl_c_flag();
    let progress = Arc::new(AtomicU64::new(0));
    let live = LiveRate::start("mining".into(), progress.clone());
    let started = Instant::now();
    let json_out = args.json;
    let stats = run(
        &options,
        backend.as_ref(),
        &cancel,
        &progress,
        |s| {
            live.suspend(|| {
                let (result, sent, reason) = match &s.result {
                    ShareResult::Accepted => ("accepted", true, None),
                    ShareResult::Rejected(r) => ("rejected", true, Some(r.clone())),
                    ShareResult::Stale { sent, reason } => ("stale", *sent, Some(reason.clone())),
                };
                if json_out {
                    println!(
                        "{}",
                        json!({"type": "share", "pool": s.pool, "job": s.job,
                               "extranonce2": s.extranonce2, "ntime": s.ntime, "nonce": s.nonce,
                               "version": s.version, "hash": s.hash,
                               "difficulty": s.share_difficulty,
                               "hash_difficulty": s.hash_difficulty, "block": s.block,
                               "block_candidate": s.block,
                               "result": result, "sent": sent, "reason": reason})
                    );
                } else {
                    println!(
                        "share {result:<8}  {}  job {}  nonce {}  D {}{}{}",
                        s.hash,
                        s.job,
                        s.nonce,
                        s.share_difficulty,
                        if s.block { "  block candidate" } else { "" },
                        reason.map(|r| format!("  ({r})")).unwrap_or_default()
                    );
                }
            })
        },
        |event| live.suspend(|| eprintln!("{event}")),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    drop(live);
    let interrupted = cancel.load(Ordering::SeqCst);
    let total = |f: fn(&miner::client::stratum::PoolStats) -> u64| stats.iter().map(f).sum::<u64>();
    let (accepted, rejected, stale, blocks) = (
        total(|s| s.accepted),
        total(|s| s.rejected),
        total(|s| s.stale),
        total(|s| s.blocks),
    );
    let rate = HashRate::from_count(progress.load(Ordering::SeqCst), seconds);
    if args.json {
        for s in &stats {
            println!(
                "{}",
                json!({"type": "pool_summary", "pool": s.url, "accepted": s.accepted,
                       "rejected": s.rejected, "stale": s.stale, "stale_unsent": s.stale_unsent,
                       "blocks": s.blocks, "block_candidates": s.blocks,
                       "hashes": s.hashes, "seconds": s.seconds,
                       "hashrate_hs": s.hashrate(), "connects": s.connects,
                       "failures": s.failures, "difficulty": s.difficulty,
                       "version_mask": format!("{:08x}", s.version_mask)})
            );
        }
        let (kernel, kernel_choice, kernel_rates) = args.backend.kernel_json();
        println!(
            "{}",
            json!({"type": "summary", "accepted": accepted, "rejected": rejected, "stale": stale,
                   "blocks": blocks, "block_candidates": blocks, "seconds": seconds,
                   "mean_hashrate_hs": rate.0,
                   "interrupted": interrupted, "kernel": kernel,
                   "kernel_choice": kernel_choice, "kernel_rates_mhs": kernel_rates})
        );
    } else {
        if interrupted {
            println!("interrupted");
        }
        for s in &stats {
            println!(
                "pool {}: {} accepted, {} rejected, {} stale ({} not sent) shares, {} block candidates; {} over {:.2} s connected ({} connects, {} failures)",
                s.url,
                s.accepted,
                s.rejected,
                s.stale,
                s.stale_unsent,
                s.blocks,
                HashRate(s.hashrate()),
                s.seconds,
                s.connects,
                s.failures
            );
        }
        println!(
            "{accepted} shares accepted, {rejected} rejected, {stale} stale, {blocks} block candidates in {seconds:.2} s, {rate}"
        );
    }
    print_parts(backend.as_ref(), args.json);
    exit_130_if(interrupted);
    Ok(())
}

/// Expected hashes for a block at its own nBits: the work of its target.
pub(crate) fn block_difficulty(b: &MinedBlock) -> f64 {
    Target::from_compact(b.bits).map_or(0.0, |t| t.work().to_f64())
}

/// The mean of `v` and the half-width of its 95% interval (mean ± 1.96 s / sqrt(n), s the
/// sample standard deviation; `NaN` below two values).
pub(crate) fn mean_ci95(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (var / n).sqrt())
}

pub(crate) fn print_mine_summary(
    mined: &[MinedBlock],
    spare_hashes: u64,
    seconds: f64,
    d: &Difficulty,
    interrupted: bool,
    json: bool,
    backend_args: &BackendArgs,
) {
    let n = mined.len();
    let trials: Vec<f64> = mined.iter().map(|b| b.trials as f64).collect();
    let hashes: Vec<f64> = mined.iter().map(|b| b.hashes as f64).collect();
    let block_seconds: f64 = mined.iter().map(|b| b.seconds).sum();
    let total_hashes = mined.iter().map(|b| b.hashes).sum::<u64>() + spare_hashes;
    let total_trials = mined.iter().map(|b| b.trials).sum::<u64>();
    let (mean_trials, trials_half) = mean_ci95(&trials);
    let (mean_hashes, hashes_half) = mean_ci95(&hashes);
    let (expected, _) = mean_ci95(&mined.iter().map(block_difficulty).collect::<Vec<_>>());
    // Work done past each block's winning nonce (in flight when the hit landed), as a share of
    // the trials.
    let overshoot = if total_trials > 0 {
        let mined_hashes = total_hashes - spare_hashes;
        (mined_hashes as f64 - total_trials as f64) / total_trials as f64
    } else {
        f64::NAN
    };
    let mean_seconds = if n > 0 {
        block_seconds / n as f64
    } else {
        f64::NAN
    };
    let rate = HashRate::from_count(total_hashes, seconds);
    let finite = |x: f64| if x.is_finite() { json!(x) } else { json!(null) };
    let interval = |mean: f64, half: f64| {
        if half.is_finite() {
            json!([(mean - half).max(0.0), mean + half])
        } else {
            json!(null)
        }
    };
    let (kernel, kernel_choice, kernel_rates) = backend_args.kernel_json();
    if json {
        println!(
            "{}",
            json!({
                "type": "summary",
                "blocks": n,
                "seconds": seconds,
                "hashes": total_hashes,
                "trials": total_trials,
                "mean_seconds_per_block": finite(mean_seconds),
                "mean_trials_per_block": finite(mean_trials),
                "mean_trials_per_block_ci95": interval(mean_trials, trials_half),
                "mean_hashes_per_block": finite(mean_hashes),
                "mean_hashes_per_block_ci95": interval(mean_hashes, hashes_half),
                "overshoot": finite(overshoot),
                "difficulty": d.as_f64(),
                "expected_hashes_per_block": finite(expected),
                "mean_hashrate_hs": rate.0,
                "interrupted": interrupted,
                "kernel": kernel,
                "kernel_choice": kernel_choice,
                "kernel_rates_mhs": kernel_rates,
            })
        );
        return;
    }
    if interrupted {
        println!("interrupted");
    }
    if n == 0 {
        println!(
            "no block found: {} hashes in {seconds:.2} s, {rate} (you asked for D = {d})",
            count(total_hashes as f64)
        );
        return;
    }
    let ci = if trials_half.is_finite() {
        format!(
            " (95% interval {} .. {})",
            count((mean_trials - trials_half).max(0.0)),
            count(mean_trials + trials_half)
        )
    } else {
        String::new()
    };
    println!(
        "{n} blocks in {seconds:.2} s: {mean_seconds:.3} s per block, {rate}; \
         trials per block: mean {}{ci}, expected {} (the blocks' mean D after nBits rounding; \
         you asked for D = {d}); hashes done per block: mean {} ({:+.2}% past the winning nonces)",
        count(mean_trials),
        count(expected),
        count(mean_hashes),
        overshoot * 100.0,
    );
}
