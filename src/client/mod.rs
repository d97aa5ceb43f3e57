//! The getblocktemplate client behind `miner mine --node URL`: fetches templates from any node
//! that speaks BIP 22 (`miner node`, bitcoind), builds its own coinbase to the payout, mines with
//! any backend, longpolls for new tips, submits, and reconnects with backoff.

pub mod stratum;

use crate::backend::{Backend, StopAt, NONCE_END};
use crate::block::{header_bytes, header_hash, Template};
use crate::pow::CompactTarget;
use base64::Engine;
use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, ScriptBuf, Transaction};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No HTTP answer from the URL (first field): refused, timed out, name not resolved; the
    /// second field is why.
    #[error("cannot reach the node at {0}: {1}")]
    Unreachable(String, String),
    /// HTTP 401: wrong user, password or cookie.
    #[error("the node refused the credentials (HTTP 401): check --rpcuser/--rpcpassword or --rpccookiefile")]
    Unauthorized,
    /// A JSON-RPC error object in the node's answer.
    #[error("the node answered error {code}: {message}")]
    Rpc {
        /// The error's `code` (Bitcoin Core's `RPC_*` numbers).
        code: i64,
        /// The error's `message`.
        message: String,
    },
    /// The answer is not a JSON-RPC reply, or not the shape the method returns (also used for a
    /// backend failure while mining a template).
    #[error("the node's answer is not JSON-RPC: {0}")]
    BadReply(String),
    /// A URL no retry can make work (bad scheme, no host, bad port).
    #[error("'{url}' cannot be a node's address: {why}; give http://HOST:PORT, e.g. http://127.0.0.1:18443")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The template's `default_witness_commitment` is not the BIP 141 commitment this client
    /// computes from the template's own transactions (with the all-zero witness reserved value,
    /// as Bitcoin Core uses), so a block built on either would likely be rejected: stop rather
    /// than mine blocks that cannot count.
    #[error("the node's default_witness_commitment {node} is not the commitment computed from the template's transactions ({ours}); blocks mined on this template would be rejected, so mining stops. The node may use a non-zero witness reserved value, which this client does not support; please report it with the output of `bitcoin-cli getblocktemplate '{{\"rules\":[\"segwit\"]}}'`")]
    WitnessCommitmentMismatch {
        /// The script hex the node sent.
        node: String,
        /// The script hex computed here.
        ours: String,
    },
}

/// The node URL to call for what a user typed: `host:port` (no scheme) is taken as
/// `http://host:port`; a URL that can never work (a scheme other than http, https, which this
/// build cannot speak, no host, a port that is not 1 to 65535) is an error, so the client fails
/// at once instead of retrying forever.
pub fn parse_node_url(input: &str) -> Result<String, ClientError> {
    let text = input.trim();
    let bad = |why: &str| ClientError::BadUrl {
        url: text.to_string(),
        why: why.to_string(),
    };
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_string(), text),
    };
    match scheme.as_str() {
        "http" => {}
        "https" => {
            return Err(bad(
                "this build speaks plain HTTP only (no TLS); node RPC is plain HTTP on \
                 127.0.0.1, so use http://",
            ))
        }
        other => return Err(bad(&format!("the scheme '{other}' is not http"))),
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(bad("text after the IPv6 address is not ':PORT'")),
            },
            None => return Err(bad("the IPv6 address has no closing ']'")),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(bad("it names no host"));
    }
    if host.contains(char::is_whitespace) {
        return Err(bad("the host contains a space"));
    }
    if let Some(p) = port {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            Ok(n) => return Err(bad(&format!("port {n} is not between 1 and 65535"))),
            Err(_) if p.is_empty() => return Err(bad("the port after ':' is empty")),
            Err(_) => return Err(bad(&format!("port '{p}' is not a number"))),
        }
    }
    Ok(if text.contains("://") {
        format!("http://{rest}")
    } else {
        format!("http://{text}")
    })
}

/// A JSON-RPC 1.0 client with Basic auth.
#[derive(Clone)]
pub struct RpcClient {
    url: String,
    auth: String,
    agent: ureq::Agent,
}

impl RpcClient {
    /// A client of the node at `url` (`http://HOST:PORT`), authenticating as `user:password`.
    /// Opens no connection: the first call does.
    pub fn new(url: &str, user: &str, password: &str) -> RpcClient {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        RpcClient {
            url: url.to_string(),
            auth: format!("Basic {auth}"),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .build(),
        }
    }

    /// Calls `method`; `timeout` bounds the whole call (longpolls need minutes).
    pub fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let body = json!({"id": 1, "method": method, "params": params}).to_string();
        let response = self
            .agent
            .post(&self.url)
            .timeout(timeout)
            .set("Authorization", &self.auth)
            .set("Content-Type", "application/json")
            .send_string(&body);
        let text = match response {
            Ok(r) => r
                .into_string()
                .map_err(|e| ClientError::BadReply(e.to_string()))?,
            Err(ureq::Error::Status(401, _)) => return Err(ClientError::Unauthorized),
            // Core answers JSON-RPC errors with HTTP 500/404 and a JSON body.
            Err(ureq::Error::Status(_, r)) => r
                .into_string()
                .map_err(|e| ClientError::BadReply(e.to_string()))?,
            Err(ureq::Error::Transport(t))
                if matches!(
                    t.kind(),
                    ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme
                ) =>
            {
                return Err(ClientError::BadUrl {
                    url: self.url.clone(),
                    why: t.to_string(),
                })
            }
            Err(e) => return Err(ClientError::Unreachable(self.url.clone(), e.to_string())),
        };
        let reply: Value = serde_json::from_str(&text)
            .map_err(|_| ClientError::BadReply(text.chars().take(200).collect()))?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            return Err(ClientError::Rpc {
                code: err["code"].as_i64().unwrap_or(0),
                message: err["message"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }
}

/// A template as the node sent it, decoded.
#[derive(Clone, Debug)]
pub struct NodeTemplate {
    /// The block to mine: the node's header fields and transactions, our coinbase and payout.
    pub template: Template,
    /// The node's `longpollid`, to ask for the next template when the tip changes (`None`:
    /// the node does not longpoll).
    pub longpollid: Option<String>,
}

fn field<'a>(t: &'a Value, name: &str) -> Result<&'a Value, ClientError> {
    t.get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| ClientError::BadReply(format!("template has no '{name}'")))
}

/// Decodes a BIP 22 template into our [`Template`], with our coinbase paying `payout`.
///
/// Segwit (BIP 141/145): when the template holds a transaction with witness data, or the node
/// sent `default_witness_commitment`, the coinbase gets the witness commitment output and the
/// witness reserved value ([`Template::has_witness_commitment`]); a `default_witness_commitment`
/// that differs from the computed one is [`ClientError::WitnessCommitmentMismatch`]. A
/// transaction whose `txid` or `hash` field disagrees with its `data` is refused as malformed.
/// Without either, the block is the legacy one, byte for byte.
pub fn decode_template(t: &Value, payout: &ScriptBuf) -> Result<NodeTemplate, ClientError> {
    let bad = |what: &str| ClientError::BadReply(format!("template field {what} is malformed"));
    let prev_hex = field(t, "previousblockhash")?
        .as_str()
        .ok_or_else(|| bad("previousblockhash"))?;
    let mut prev: [u8; 32] = hex::decode(prev_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("previousblockhash"))?;
    prev.reverse();
    let height = field(t, "height")?
        .as_u64()
        .and_then(|h| u32::try_from(h).ok())
        .ok_or_else(|| bad("height"))?;
    let bits = field(t, "bits")?
        .as_str()
        .and_then(|b| u32::from_str_radix(b, 16).ok())
        .ok_or_else(|| bad("bits"))?;
    let curtime = field(t, "curtime")?
        .as_u64()
        .ok_or_else(|| bad("curtime"))? as u32;
    let mintime = t.get("mintime").and_then(Value::as_u64).unwrap_or(0) as u32;
    let value = field(t, "coinbasevalue")?
        .as_u64()
        .ok_or_else(|| bad("coinbasevalue"))?;
    let version = field(t, "version")?
        .as_i64()
        .ok_or_else(|| bad("version"))? as i32;
    let mut transactions = Vec::new();
    for (i, entry) in t
        .get("transactions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let data = entry
            .get("data")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("transactions[].data"))?;
        let tx: Transaction = hex::decode(data)
            .ok()
            .and_then(|b| deserialize(&b).ok())
            .ok_or_else(|| bad("transactions[].data"))?;
        // `txid` excludes the witness, `hash` (the wtxid) includes it; a mismatch means the
        // data decoded differently here than at the node, and the merkle root would be wrong.
        for (name, computed) in [
            ("txid", tx.compute_txid().to_string()),
            ("hash", tx.compute_wtxid().to_string()),
        ] {
            if let Some(given) = entry.get(name).and_then(Value::as_str) {
                if !given.eq_ignore_ascii_case(&computed) {
                    return Err(ClientError::BadReply(format!(
                        "template transaction {i}: its {name} field is {given}, but its data \
                         hashes to {computed}"
                    )));
                }
            }
        }
        transactions.push(tx);
    }
    let mut template = Template::builder(BlockHash::from_byte_array(prev), height)
        .version(version)
        .median_time_past(mintime.saturating_sub(1))
        .time(curtime)
        .bits(CompactTarget::from_consensus(bits))
        .value(Amount::from_sat(value))
        .payout(payout.clone())
        .transactions(transactions)
        .build()
        .map_err(|e| ClientError::BadReply(format!("template bits {bits:08x}: {e}")))?;
    if let Some(default) = t.get("default_witness_commitment").filter(|v| !v.is_null()) {
        let node = default
            .as_str()
            .ok_or_else(|| bad("default_witness_commitment"))?;
        template.commit_witness = true;
        let ours = hex::encode(template.witness_commitment_script().as_bytes());
        if !node.eq_ignore_ascii_case(&ours) {
            return Err(ClientError::WitnessCommitmentMismatch {
                node: node.to_string(),
                ours,
            });
        }
    }
    Ok(NodeTemplate {
        template,
        longpollid: t
            .get("longpollid")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// One block this client mined and the node's answer to it.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// The block's height.
    pub height: u32,
    /// The block hash, raw byte order (reverse it to display it).
    pub hash: [u8; 32],
    /// The 80-byte header as submitted.
    pub header: [u8; 80],
    /// The winning nonce.
    pub nonce: u32,
    /// The winning nonce's position in the search order of this template (jobs by extranonce,
    /// nonces ascending): geometric, unlike `hashes`, which counts work in flight past the hit.
    pub trials: u64,
    /// Nonces hashed on this template, including work in flight past the hit.
    pub hashes: u64,
    /// Wall-clock seconds from starting on the template to the node's answer to the block.
    pub seconds: f64,
    /// `None` when accepted (`submitblock` answered null); else the node's reason.
    pub rejected: Option<String>,
}

/// How a client run ends.
pub struct ClientOptions {
    /// The script our coinbase pays to.
    pub payout: ScriptBuf,
    /// Stop after this many accepted blocks.
    pub blocks: Option<u64>,
    /// Longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// About how long one backend call may run before the client looks again at the stale
    /// and cancel flags: the nonce range of each call is sized from the rate measured so far
    /// ([`DEFAULT_SCAN_SLICE`] for `mine --node`; live experiments use ~10 ms so a new tip
    /// is followed within that).
    pub scan_slice: Duration,
}

/// How long one backend call runs by default before the client checks for a new tip.
pub const DEFAULT_SCAN_SLICE: Duration = Duration::from_millis(100);

/// Nonces in the next backend call: `slice` of work at the rate the last call ran, at most
/// four times the last count (so a slow backend is not handed seconds of work at first), and
/// between 256 and 2^26.
pub(crate) fn next_slice(last: u64, hashes: u64, took: Duration, slice: Duration) -> u64 {
    let rate = hashes as f64 / took.as_secs_f64().max(1e-6);
    let want = (rate * slice.as_secs_f64()) as u64;
    want.min(last.saturating_mul(4)).clamp(256, 1 << 26)
}

/// Mines against the node until `options.blocks` are accepted or `cancel` is raised. Calls
/// `on_block` for every submitted block and `on_event` for connection news (lost, retrying,
/// back, node still syncing).
pub fn run(
    client: &RpcClient,
    backend: &dyn Backend,
    options: &ClientOptions,
    cancel: &AtomicBool,
    progress: &AtomicU64,
    mut on_block: impl FnMut(&Submitted),
    mut on_event: impl FnMut(&str),
) -> Result<u64, ClientError> {
    let mut accepted = 0u64;
    let mut backoff = Duration::from_secs(1);
    let mut was_down = false;
    let watcher = TipWatcher::start(client);
    let mut slice: u64 = 4096;
    while !cancel.load(Ordering::SeqCst) && options.blocks.is_none_or(|n| accepted < n) {
        let gbt = client.call(
            "getblocktemplate",
            json!([{"rules": ["segwit"]}]),
            Duration::from_secs(30),
        );
        let t = match gbt {
            Ok(t) => {
                if was_down {
                    on_event("node is back");
                    was_down = false;
                }
                backoff = Duration::from_secs(1);
                t
            }
            Err(ClientError::Rpc { code: -10, message }) => {
                on_event(&format!(
                    "node is not ready ({message}); waiting {} s",
                    backoff.as_secs()
                ));
                sleep_unless(cancel, backoff);
                backoff = (backoff * 2).min(options.max_backoff);
                continue;
            }
            Err(e @ ClientError::Unreachable(..)) | Err(e @ ClientError::BadReply(..)) => {
                on_event(&format!("{e}; retrying in {} s", backoff.as_secs()));
                was_down = true;
                sleep_unless(cancel, backoff);
                backoff = (backoff * 2).min(options.max_backoff);
                continue;
            }
            Err(e) => return Err(e),
        };
        let nt = decode_template(&t, &options.payout)?;
        // Stop this template's search when the user cancels or the longpoll reports a new tip.
        let stale = watcher.watch(nt.longpollid.clone());
        let started = Instant::now();
        let mut hashes = 0u64;
        let mut found = None;
        'jobs: for extranonce in 0u64.. {
            let job = nt.template.job(extranonce);
            // Scan in slices of about `scan_slice` so a stale template or a cancel is noticed
            // promptly, whatever the backend's rate.
            let mut next = 0u64;
            while next < NONCE_END {
                if cancel.load(Ordering::SeqCst) || stale.load(Ordering::SeqCst) {
                    break 'jobs;
                }
                let end = (next + slice).min(NONCE_END);
                let t = Instant::now();
                let report = backend
                    .scan(&job.job, next..end, StopAt::FirstHit, cancel, progress)
                    .map_err(|e| ClientError::BadReply(format!("backend failed: {e}")))?;
                slice = next_slice(slice, report.hashes, t.elapsed(), options.scan_slice);
                hashes += report.hashes;
                if let Some(&nonce) = report.hits.first() {
                    found = Some((extranonce, nonce));
                    break 'jobs;
                }
                next = end;
            }
        }
        let Some((extranonce, nonce)) = found else {
            if stale.load(Ordering::SeqCst) {
                on_event("new tip from the node; fetching a new template");
            }
            continue;
        };
        let block = nt.template.assemble(extranonce, nonce);
        let hash = header_hash(&block.header);
        let reply = client.call(
            "submitblock",
            json!([hex::encode(serialize(&block))]),
            Duration::from_secs(30),
        );
        let rejected = match reply {
            Ok(Value::Null) => None,
            Ok(Value::String(reason)) => Some(reason),
            Ok(other) => Some(other.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if rejected.is_none() {
            accepted += 1;
        }
        on_block(&Submitted {
            height: nt.template.height,
            hash,
            header: header_bytes(&block.header),
            nonce,
            // Every slice before the hit's was searched to its end, in order.
            trials: extranonce * NONCE_END + u64::from(nonce) + 1,
            hashes,
            seconds: started.elapsed().as_secs_f64(),
            rejected,
        });
    }
    Ok(accepted)
}

/// The run's one longpoll: a thread that keeps at most one longpoll open to the node, for the
/// template being mined, and raises that template's `stale` flag when the node reports a new tip.
/// (A thread per template piled up abandoned longpolls on the node when submits failed fast.)
struct TipWatcher {
    shared: Arc<WatchState>,
}

struct WatchState {
    /// The longpollid being mined on, and the flag to raise when the tip moves past it.
    current: std::sync::Mutex<Option<(String, Arc<AtomicBool>)>>,
    done: AtomicBool,
}

impl TipWatcher {
    fn start(client: &RpcClient) -> TipWatcher {
        let shared = Arc::new(WatchState {
            current: std::sync::Mutex::new(None),
            done: AtomicBool::new(false),
        });
        let (client, state) = (client.clone(), shared.clone());
        std::thread::spawn(move || {
            let current = || {
                state
                    .current
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            };
            while !state.done.load(Ordering::SeqCst) {
                let Some((id, stale)) = current().filter(|(_, s)| !s.load(Ordering::SeqCst)) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                match client.call(
                    "getblocktemplate",
                    json!([{"rules": ["segwit"], "longpollid": id}]),
                    Duration::from_secs(120),
                ) {
                    Ok(next)
                        if next.get("longpollid").and_then(Value::as_str) != Some(id.as_str()) =>
                    {
                        stale.store(true, Ordering::SeqCst);
                        // A newer template on the same tip is stale as well.
                        if let Some((now_id, now_stale)) = current() {
                            if now_id == id {
                                now_stale.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(500)),
                }
            }
        });
        TipWatcher { shared }
    }

    /// Watches for a tip other than `longpollid`'s (nothing without one); returns the flag raised
    /// when one comes.
    fn watch(&self, longpollid: Option<String>) -> Arc<AtomicBool> {
        let stale = Arc::new(AtomicBool::new(false));
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = longpollid.map(|id| (id, stale.clone()));
        stale
    }
}

impl Drop for TipWatcher {
    fn drop(&mut self) {
        // The thread ends after its longpoll in flight, if any, returns.
        self.shared.done.store(true, Ordering::SeqCst);
    }
}

/// Sleeps `d` in 50 ms steps, ending early once `cancel` is raised.
pub(crate) fn sleep_unless(cancel: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !cancel.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_without_a_scheme_are_http_and_hopeless_ones_are_refused() {
        for (typed, used) in [
            ("127.0.0.1:18443", "http://127.0.0.1:18443"),
            ("localhost:8332/", "http://localhost:8332/"),
            ("http://127.0.0.1:18443", "http://127.0.0.1:18443"),
            ("HTTP://node.lan", "http://node.lan"),
            ("[::1]:18443", "http://[::1]:18443"),
            (
                "http://u:p@127.0.0.1:1/wallet/x",
                "http://u:p@127.0.0.1:1/wallet/x",
            ),
        ] {
            assert_eq!(parse_node_url(typed).unwrap(), used, "{typed}");
        }
        for (typed, why) in [
            ("ftp://127.0.0.1:18443", "scheme 'ftp'"),
            ("https://127.0.0.1:18443", "plain HTTP only"),
            ("http://:18443", "no host"),
            ("", "no host"),
            ("127.0.0.1:70000", "port 70000"),
            ("127.0.0.1:0", "port 0"),
            ("127.0.0.1:", "empty"),
            ("127.0.0.1:port", "'port' is not a number"),
            ("[::1:18443", "no closing"),
        ] {
            let e = parse_node_url(typed).unwrap_err().to_string();
            assert!(e.contains(why), "{typed}: {e}");
            assert!(e.contains("http://HOST:PORT"), "{typed}: {e}");
        }
    }
}
