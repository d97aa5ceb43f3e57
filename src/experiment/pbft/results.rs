//! What a run reports: message counts, the safety and liveness checks, latencies.

use super::*;
use crate::experiment::stats::quantile_sorted;
use serde::Serialize;
use std::collections::BTreeMap;

/// Messages sent, by type: a multicast to m receivers counts m.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounts {
    /// Client requests, client retransmissions and backups' forwards to the primary.
    pub request: u64,
    /// PRE-PREPAREs (those quoted in a NEW-VIEW count as part of it).
    pub pre_prepare: u64,
    /// PREPAREs.
    pub prepare: u64,
    /// COMMITs.
    pub commit: u64,
    /// REPLYs to clients.
    pub reply: u64,
    /// CHECKPOINTs.
    pub checkpoint: u64,
    /// VIEW-CHANGEs.
    pub view_change: u64,
    /// NEW-VIEWs.
    pub new_view: u64,
    /// State-transfer requests.
    pub fetch_state: u64,
    /// State-transfer answers.
    pub state: u64,
}

impl MessageCounts {
    /// Counts `copies` sends of a message.
    pub fn add(&mut self, m: &Message, copies: u64) {
        let slot = match m {
            Message::Request(_) => &mut self.request,
            Message::PrePrepare(_) => &mut self.pre_prepare,
            Message::Prepare(_) => &mut self.prepare,
            Message::Commit(_) => &mut self.commit,
            Message::Reply(_) => &mut self.reply,
            Message::Checkpoint(_) => &mut self.checkpoint,
            Message::ViewChange(_) => &mut self.view_change,
            Message::NewView(_) => &mut self.new_view,
            Message::FetchState(_) => &mut self.fetch_state,
            Message::State(_) => &mut self.state,
        };
        *slot += copies;
    }

    /// Adds another count to this one.
    pub fn merge(&mut self, o: &MessageCounts) {
        self.request += o.request;
        self.pre_prepare += o.pre_prepare;
        self.prepare += o.prepare;
        self.commit += o.commit;
        self.reply += o.reply;
        self.checkpoint += o.checkpoint;
        self.view_change += o.view_change;
        self.new_view += o.new_view;
        self.fetch_state += o.fetch_state;
        self.state += o.state;
    }

    /// Every message sent, all types together.
    pub fn total(&self) -> u64 {
        self.request
            + self.pre_prepare
            + self.prepare
            + self.commit
            + self.reply
            + self.checkpoint
            + self.view_change
            + self.new_view
            + self.fetch_state
            + self.state
    }
}

/// What a run gave. Latencies are virtual ms in the sim and real ms live; figures over no
/// completed requests are 0.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PbftResult {
    /// N: replicas.
    pub n: usize,
    /// Replicas with a fault other than `none`.
    pub faulty: usize,
    /// Q: the quorum size the run used.
    pub quorum: usize,
    /// Requests the clients issued (first sends, not retransmissions).
    pub requests_issued: u64,
    /// Requests their clients accepted.
    pub requests_completed: u64,
    /// No two honest (not Byzantine) replicas committed different digests at the same sequence
    /// number, and none committed two at one (checked on every commit, before garbage
    /// collection).
    pub safety_ok: bool,
    /// The lowest sequence number where safety failed.
    pub first_violation: Option<u64>,
    /// Every request was completed (accepted by its client) before the time limit.
    pub liveness_ok: bool,
    /// The most views an honest replica entered through NEW-VIEW.
    pub view_changes: u64,
    /// The highest view of an honest replica at the end.
    pub final_view: u64,
    /// Every message sent ([`MessageCounts::total`]).
    pub messages_total: u64,
    /// Messages per completed request.
    pub messages_per_request: f64,
    /// Messages sent, by type.
    pub messages: MessageCounts,
    /// From issue to the client's acceptance of f + 1 matching replies.
    pub latency_mean_ms: f64,
    /// Median latency, same measure.
    pub latency_p50_ms: f64,
    /// 99th-percentile latency, same measure.
    pub latency_p99_ms: f64,
    /// The largest message log an honest replica held (pre-prepares, prepares, commits,
    /// checkpoints and pre-prepares kept for the next view), over the whole run.
    pub max_log_len: u64,
    /// The lowest stable checkpoint (low water mark h) among the honest replicas still up at
    /// the end.
    pub stable_checkpoint: u64,
    /// Messages replicas and clients dropped because a MAC failed.
    pub mac_failures: u64,
    /// Messages with a valid MAC that replicas rejected as malformed (a digest that does not
    /// match, a bad proof, a conflicting pre-prepare).
    pub rejected: u64,
    /// Replicas that caught up by state transfer, summed over replicas.
    pub state_transfers: u64,
    /// Live only: messages lost because a link's queue was full or a frame too large (0 in
    /// the sim, whose links are reliable).
    pub messages_dropped: u64,
    /// When the run ended (ms).
    pub elapsed_ms: f64,
}

/// What a driver observed, to be turned into a [`PbftResult`].
pub(crate) struct Observed<'a> {
    pub replicas: &'a [Replica],
    pub counts: MessageCounts,
    pub latencies: Vec<f64>,
    pub issued: u64,
    pub completed: u64,
    pub client_mac_failures: u64,
    pub dropped: u64,
    pub end_ms: f64,
}

/// Nearest-rank percentile of sorted samples; 0 for none (figures over no completed requests
/// are 0).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    quantile_sorted(sorted, p)
}

/// The result both drivers report: the safety check over every honest replica's commit
/// record, liveness, counts and latencies.
pub(crate) fn summarize(p: &PbftParams, o: Observed<'_>) -> PbftResult {
    let honest: Vec<&Replica> = o
        .replicas
        .iter()
        .filter(|r| p.faults.get(r.id()).is_some_and(|f| !f.is_byzantine()))
        .collect();
    let mut first_violation: Option<u64> = None;
    let mut note = |n: u64| first_violation = Some(first_violation.map_or(n, |f| f.min(n)));
    let mut agreed: BTreeMap<u64, Digest> = BTreeMap::new();
    for r in &honest {
        if let Some(n) = r.stats().self_conflict {
            note(n);
        }
        for (&n, d) in &r.stats().committed {
            match agreed.get(&n) {
                Some(first) if first != d => note(n),
                Some(_) => {}
                None => {
                    agreed.insert(n, *d);
                }
            }
        }
    }
    let mut lat = o.latencies;
    lat.sort_by(f64::total_cmp);
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<f64>() / lat.len() as f64
    };
    let total = o.counts.total();
    let up = honest
        .iter()
        .filter(|r| !p.faults[r.id()].is_down(o.end_ms))
        .map(|r| r.low_water_mark());
    PbftResult {
        n: p.n,
        faulty: p.faults.iter().filter(|f| **f != Fault::None).count(),
        quorum: p.quorum_size(),
        requests_issued: o.issued,
        requests_completed: o.completed,
        safety_ok: first_violation.is_none(),
        first_violation,
        liveness_ok: o.completed == p.requests,
        view_changes: honest
            .iter()
            .map(|r| r.stats().views_installed)
            .max()
            .unwrap_or(0),
        final_view: honest.iter().map(|r| r.view()).max().unwrap_or(0),
        messages_total: total,
        messages_per_request: if o.completed == 0 {
            0.0
        } else {
            total as f64 / o.completed as f64
        },
        messages: o.counts,
        latency_mean_ms: mean,
        latency_p50_ms: percentile(&lat, 0.50),
        latency_p99_ms: percentile(&lat, 0.99),
        max_log_len: honest
            .iter()
            .map(|r| r.stats().max_log_len as u64)
            .max()
            .unwrap_or(0),
        stable_checkpoint: up.min().unwrap_or(0),
        mac_failures: o
            .replicas
            .iter()
            .map(|r| r.stats().mac_failures)
            .sum::<u64>()
            + o.client_mac_failures,
        rejected: o.replicas.iter().map(|r| r.stats().rejected).sum(),
        state_transfers: o.replicas.iter().map(|r| r.stats().state_transfers).sum(),
        messages_dropped: o.dropped,
        elapsed_ms: o.end_ms,
    }
}
