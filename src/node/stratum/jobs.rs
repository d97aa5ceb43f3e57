//! The job store: the jobs sent to miners with what judging their shares needs, and the
//! duplicate set of shares on the current tip.

use crate::block::Template;
use crate::pow::Target;
use crate::stratum::{Notification, NotifyJob};
use std::collections::{HashSet, VecDeque};

/// Share header hashes kept for the duplicate check on one tip (oldest forgotten first).
const MAX_SEEN_SHARES: usize = 1 << 19;

/// A job sent to miners, with what judging its shares needs.
pub(super) struct JobEntry {
    pub(super) job: NotifyJob,
    pub(super) template: Template,
    pub(super) network_target: Target,
    /// The previous block's display hash, compared with the chain's tip (the tip watch).
    pub(super) prev_display: String,
    /// The `mining.notify` line with clean_jobs false and true, serialized once for every miner.
    pub(super) notify_lines: [String; 2],
}

impl JobEntry {
    /// The entry for `job`, built from `template`: its `mining.notify` lines serialized once.
    pub(super) fn new(job: NotifyJob, template: Template) -> JobEntry {
        let network_target = template.target;
        let notify_lines = [false, true].map(|clean| {
            Notification::Notify(NotifyJob {
                clean,
                ..job.clone()
            })
            .to_line()
        });
        let mut prev = job.prev_hash;
        prev.reverse();
        JobEntry {
            prev_display: hex::encode(prev),
            job,
            template,
            network_target,
            notify_lines,
        }
    }
}

/// The duplicate check: the header hashes of shares on one tip, whatever job id they named
/// (a refreshed job reissues the same coinbase and branch, so the same header). Cleared when
/// the tip changes; past [`MAX_SEEN_SHARES`] the oldest are forgotten.
#[derive(Default)]
pub(super) struct SeenShares {
    tip: String,
    hashes: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl SeenShares {
    /// Whether `hash` is new on `tip` (and now remembered).
    pub(super) fn insert(&mut self, tip: &str, hash: [u8; 32]) -> bool {
        if self.tip != tip {
            self.tip = tip.to_string();
            self.hashes.clear();
            self.order.clear();
        }
        if !self.hashes.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        while self.order.len() > MAX_SEEN_SHARES {
            if let Some(old) = self.order.pop_front() {
                self.hashes.remove(&old);
            }
        }
        true
    }
}
