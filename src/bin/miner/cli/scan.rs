//! `miner scan`: search the nonces of one header.

use super::args::{parse_count, parse_difficulty, parse_header, parse_nonce};
use super::backend_args::{print_parts, BackendArgs};
use super::ctrl_c_flag;
use crate::output::{HashRate, LiveRate};
use anyhow::{bail, Context, Result};
use clap::Args;
use miner::backend::{StopAt, NONCE_END};
use miner::hash::{display_hash, sha256d, Job};
use miner::pow::{CompactTarget, Difficulty, Target};
use serde_json::json;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub(crate) struct ScanArgs {
    /// The 80-byte block header as 160 hex digits (its nonce field is ignored).
    #[arg(long, value_name = "HEX", value_parser = parse_header)]
    pub(crate) header: [u8; 80],
    /// First nonce to try.
    #[arg(long, value_name = "S", default_value_t = 0, value_parser = parse_nonce, allow_negative_numbers = true)]
    pub(crate) start: u32,
    /// Nonces to try [default: from --start to the end of the range, 2^32].
    #[arg(long, value_name = "C", value_parser = parse_count, allow_negative_numbers = true)]
    pub(crate) count: Option<u64>,
    /// Target floor((2^256-1)/D) instead of the header's own nBits.
    #[arg(long, short = 'd', value_name = "D", value_parser = parse_difficulty, allow_negative_numbers = true, conflicts_with = "bits")]
    pub(crate) difficulty: Option<Difficulty>,
    /// Target from these nBits (hex, e.g. 1d00ffff) instead of the header's own.
    #[arg(long, value_name = "B")]
    pub(crate) bits: Option<CompactTarget>,
    /// Print JSON: one object per hit, then a summary.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

pub(crate) fn scan(args: ScanArgs) -> Result<()> {
    let start = u64::from(args.start);
    let count_nonces = args.count.unwrap_or(NONCE_END - start);
    let end = start + count_nonces;
    if end > NONCE_END {
        bail!(
            "--count: {} from --start {} passes the last nonce 4294967295; the most from there is {}",
            count_nonces,
            args.start,
            NONCE_END - start
        );
    }
    let header_bits = CompactTarget::from_consensus(u32::from_le_bytes([
        args.header[72],
        args.header[73],
        args.header[74],
        args.header[75],
    ]));
    let target = match (&args.difficulty, args.bits) {
        (Some(d), _) => d.to_target(),
        (None, Some(bits)) => Target::from_compact(bits).with_context(|| format!("--bits {bits}"))?,
        (None, None) => Target::from_compact(header_bits).with_context(|| {
            format!("the header's nBits {header_bits} give no usable target; pass --difficulty or --bits")
        })?,
    };
    let backend = args.backend.build()?;
    let job = Job::new(&args.header, &target);
    if !args.json {
        eprintln!(
            "scanning nonces {}..={} against target {target} with {}{}",
            start,
            end - 1,
            backend.name(),
            args.backend.kernel_line()
        );
    }
    let cancel = ctrl_c_flag();
    let progress = Arc::new(AtomicU64::new(0));
    let live = LiveRate::start("scanning".into(), progress.clone());
    let started = Instant::now();
    let report = backend.scan(&job, start..end, StopAt::End, &cancel, &progress)?;
    let seconds = started.elapsed().as_secs_f64();
    drop(live);
    let mut header = args.header;
    for &nonce in &report.hits {
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        let hash = display_hash(&sha256d(&header));
        if args.json {
            println!(
                "{}",
                json!({"type": "hit", "nonce": nonce, "hash": hash, "header": hex::encode(header)})
            );
        } else {
            println!("nonce {nonce:>10}  hash {hash}");
        }
    }
    let rate = HashRate::from_count(report.hashes, seconds);
    let (kernel, kernel_choice, kernel_rates) = args.backend.kernel_json();
    if args.json {
        println!(
            "{}",
            json!({"type": "summary", "hits": report.hits.len(), "hashes": report.hashes,
                   "seconds": seconds, "hashrate_hs": rate.0, "interrupted": report.cancelled,
                   "target": target.to_string(), "kernel": kernel, "kernel_choice": kernel_choice,
                   "kernel_rates_mhs": kernel_rates})
        );
    } else {
        println!(
            "{} hits in {} nonces, {seconds:.2} s, {rate}{}",
            report.hits.len(),
            report.hashes,
            if report.cancelled {
                " (interrupted)"
            } else {
                ""
            }
        );
    }
    print_parts(backend.as_ref(), args.json);
    Ok(())
}
