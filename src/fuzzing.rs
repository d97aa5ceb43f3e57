//! Harness functions for coverage-guided fuzzing: one per decoder that takes bytes from outside
//! the process (P2P frames, Stratum lines on both sides, JSON-RPC bodies, `submitblock`'s
//! block). Each takes arbitrary bytes and must never panic, loop or block. The cargo-fuzz
//! targets in `fuzz/` call these functions, and `tests/node/fuzz_corpus.rs` replays the kept corpora
//! through the very same functions in a plain `cargo test`, so a crash the fuzzer found stays
//! fixed without libFuzzer.
//!
//! Not a stable interface: it exists for the fuzz crate and the replay test.

use crate::backend::{Backend, BackendError, JobsReport, ScanReport, StopAt};
use crate::chain::{Chain, ChainParams};
use crate::node::{HttpStats, NodeState, RpcContext};
use crate::pow::retarget::RetargetParams;
use crate::pow::CompactTarget;
use bitcoin::hashes::Hash;
use serde_json::{json, Value};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::OnceLock;

/// A harness: arbitrary bytes in, nothing out; it must not panic.
pub type Harness = fn(&[u8]);

/// Every harness by the name of its fuzz target (`fuzz/fuzz_targets/NAME.rs`) and corpus
/// directory (`fuzz/corpus/NAME`).
pub const TARGETS: &[(&str, Harness)] = &[
    ("p2p_frame", p2p_frame),
    ("stratum_server_line", stratum_server_line),
    ("stratum_client_line", stratum_client_line),
    ("jsonrpc", jsonrpc),
    ("submitblock", submitblock),
];

/// A fixed clock for the chain's future-time rule, so a replayed input takes the same path
/// every time (2033-05-18; blocks up to two hours past it are not too new).
const NOW: u32 = 2_000_000_000;

/// The chain the harnesses validate against: regtest's genesis, with regtest's easy fixed
/// target (about one nonce in two meets it), so mutated blocks often pass proof of work and
/// reach the contextual checks.
fn regtest_chain() -> Chain {
    let params = ChainParams::regtest();
    let retarget = RetargetParams::fixed(
        CompactTarget::from_consensus(crate::pow::REGTEST_POW_LIMIT_BITS),
        params.pow_limit,
    );
    Chain::new(params, retarget)
}

/// P2P: one frame from a peer, through the node's frame decoder
/// (`node::p2p::decode_frame`: magic, length limit, checksum, the message's payload
/// with Core's leniency for trailing bytes). The input is decoded as it came, then again with
/// its magic, length and checksum fields made right for its payload, so the fuzzer reaches
/// every message's payload decoder without having to find SHA-256d checksums.
pub fn p2p_frame(data: &[u8]) {
    use crate::node::p2p::decode_frame;
    let magic = bitcoin::p2p::Magic::from(bitcoin::Network::Regtest);
    let _ = decode_frame(magic, data);
    if data.len() >= 24 {
        let payload = &data[24..];
        let mut frame = data.to_vec();
        frame[..4].copy_from_slice(&magic.to_bytes());
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        frame[16..20].copy_from_slice(&len.to_le_bytes());
        let digest = bitcoin::hashes::sha256d::Hash::hash(payload);
        frame[20..24].copy_from_slice(&digest.as_byte_array()[..4]);
        let _ = decode_frame(magic, &frame);
    }
}

/// Stratum server: one line from a miner, through the protocol's request decoder
/// (`crate::stratum::parse_request`: the JSON envelope, the method and each method's params),
/// then the version-rolling check a submit's version bits meet.
pub fn stratum_server_line(data: &[u8]) {
    use crate::stratum::{parse_request, Request};
    match parse_request(data) {
        Ok(Request::Submit { submit, .. }) => {
            let _ = crate::stratum::share::rolled_version(
                0x2000_0000,
                crate::stratum::VERSION_ROLLING_MASK,
                submit.version_bits,
            );
        }
        Ok(Request::SuggestDifficulty { difficulty, .. }) => {
            let _ = crate::stratum::share_target(difficulty);
        }
        Ok(_) => {}
        Err(e) => {
            let _ = (e.id(), e.to_string());
        }
    }
}

/// Stratum client: one line from a pool, as the client's reader routes it
/// (`client::stratum::route_line`, through the protocol's decoders), then what the session
/// does with each message (jobs, difficulty, version mask, reconnect, replies and their errors).
pub fn stratum_client_line(data: &[u8]) {
    use crate::client::stratum::{
        reconnect_target, rolling_mask, route_line, Incoming, Routed, ShareJob,
    };
    use crate::stratum::{Notification, ReplyError, Subscribed};
    let Routed::Pass(incoming, _) = route_line(data) else {
        return;
    };
    match incoming {
        Incoming::Notify(Ok(job)) => {
            if let Some(target) = crate::stratum::share_target(1.0) {
                let version = job.version;
                let work = ShareJob::new(job, &[0; 4], &[0; 4], version, 0, target);
                let _ = work.submit_params("fuzz", 0);
            }
        }
        Incoming::Pool(Notification::SetDifficulty(d)) => {
            let _ = crate::stratum::share_target(d);
        }
        Incoming::Pool(Notification::Reconnect(r)) => {
            let _ = reconnect_target(&r.params(), "127.0.0.1", 3333);
        }
        Incoming::Reply { response, .. } => {
            let _ = response.error_text();
            let _ = response.error.as_ref().map(ReplyError::is_stale);
            let error = response
                .error
                .as_ref()
                .map_or(&Value::Null, ReplyError::as_value);
            let _ = rolling_mask(&response.result, error);
            let _ = Subscribed::from_value(&response.result);
        }
        Incoming::Notify(Err(_))
        | Incoming::Pool(_)
        | Incoming::Ignored(_)
        | Incoming::Note(_)
        | Incoming::Closed(_) => {}
    }
}

/// A backend that never hashes: `generatetoaddress` under the fuzzer ends at once instead of
/// mining.
struct NoWork;

impl Backend for NoWork {
    fn name(&self) -> String {
        "fuzz (no work)".into()
    }

    fn scan(
        &self,
        _job: &crate::hash::Job,
        _nonces: Range<u64>,
        _stop: StopAt,
        _cancel: &AtomicBool,
        _progress: &AtomicU64,
    ) -> Result<ScanReport, BackendError> {
        Ok(ScanReport {
            hits: Vec::new(),
            hashes: 0,
            cancelled: true,
        })
    }

    fn search_jobs(
        &self,
        _jobs: &mut dyn FnMut(u64) -> crate::hash::Job,
        _cancel: &AtomicBool,
        _progress: &AtomicU64,
    ) -> Result<JobsReport, BackendError> {
        Ok(JobsReport {
            hit: None,
            hashes: 0,
            cancelled: true,
        })
    }
}

/// The node the JSON-RPC harness talks to: an in-memory regtest chain and a backend that never
/// mines, already told to stop (so `generatetoaddress` and the clock waits end at once).
fn node() -> &'static RpcContext {
    static NODE: OnceLock<RpcContext> = OnceLock::new();
    NODE.get_or_init(|| {
        let state = NodeState::new(regtest_chain(), Box::new(NoWork));
        state.shut_down();
        let mut node = RpcContext::new(std::sync::Arc::new(state));
        node.transport = Some(std::sync::Arc::new(HttpStats::default()));
        node
    })
}

/// JSON-RPC: one HTTP body, through the node's dispatcher (`node::rpc::dispatch`: the envelope,
/// batches, every method's argument decoding and the method itself) against a real node state,
/// and the server's longpoll sniffing of the same body.
pub fn jsonrpc(data: &[u8]) {
    let _ = crate::node::rpc_longpoll_id(data);
    let _ = crate::node::rpc_dispatch(node(), data);
}

/// `submitblock`: the input's bytes as the hex argument of a `submitblock` call, decoded and
/// validated as the method does (hex, the block's consensus decoding, then `Chain::submit`),
/// each input against a fresh regtest chain so runs are reproducible; and the raw bytes as the
/// argument string as well (trimmed and hex-decoded).
pub fn submitblock(data: &[u8]) {
    let mut chain = regtest_chain();
    let _ = crate::node::decode_block_hex(&hex::encode(data)).map(|b| chain.submit(b, NOW));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::node::decode_block_hex(text).map(|b| chain.submit(b, NOW));
    }
}

/// A request body for `method` with `params` (for seeding corpora).
pub fn rpc_body(method: &str, params: Value) -> Vec<u8> {
    json!({"jsonrpc": "1.0", "id": "fuzz", "method": method, "params": params})
        .to_string()
        .into_bytes()
}
