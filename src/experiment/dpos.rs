//! Delegated proof of stake as the seed describes it: holders vote with their stake, the top N
//! candidates become delegates and make blocks in turn; EOS-style irreversibility.
//!
//! # Election
//! Approval voting, as EOS: each holder backs up to `votes_per_holder` candidates ([`cast_votes`];
//! every account may stand) and each backed candidate receives the holder's whole stake
//! ([`tally`]). The top N by stake-weighted votes are the delegates ([`elect`]; ties to the
//! account listed first). Holders prefer large candidates: a holder's ballot is drawn without
//! replacement with probability proportional to the candidates' stake (Gumbel top-k), from the
//! run's seed.
//!
//! # Production
//! Rounds of N slots of `slot_time_s` each. At the start of each round the delegates' order is
//! shuffled by a generator seeded with the hash of the chain's last block (so every node derives
//! the same order); each delegate makes one block in its slot on the chain, or misses the slot
//! if it is offline (`offline_share` of the first delegates, chosen by the seed, stay offline
//! throughout) or, independently, with `miss_probability`. With a single chain every delegate
//! sees, there are no forks. A header's `time` is its slot number ([`StakeHeader`]; EOS's block
//! timestamps count half-second slots too).
//!
//! # Irreversibility
//! As EOS: a block is irreversible once blocks from `⌊2N/3⌋ + 1` distinct producers, its own
//! producer included, are on the chain at or above it ([`confirmations_needed`]). The last
//! irreversible block (LIB) is therefore the `⌊2N/3⌋+1`-th largest of the producers' latest
//! block heights ([`last_irreversible`]). A block's time to irreversibility is the time from its
//! slot to the slot of the block that made it irreversible: with every delegate online and each
//! in its turn it is exactly `⌊2N/3⌋` slots. It needs `⌊2N/3⌋ + 1` delegates online: with N/3
//! or more of them offline (more than `N − ⌊2N/3⌋ − 1`) no block ever becomes irreversible.
//!
//! # Voting out
//! At the end of each round holders withdraw their votes from every delegate that has missed
//! more than `vote_out_missed_share` of its slots since it was elected (once it has had
//! [`VOTE_OUT_MIN_SLOTS`] slots, so one unlucky miss does not end a delegate) and give them to
//! the best non-delegate candidate not already voted out; the delegates are then elected anew.
//! A share of 1 or more never votes anyone out.
//!
//! # What is not simulated
//! Transactions: a block carries `txs_per_block` of them for the throughput figures, its header
//! committing to their number only; balances, hence votes, stay at the genesis allocation.

use super::stake::{check_accounts, Account, StakeError, StakeHeader};
use super::stats::{gini, nakamoto_coefficient, quantile_sorted, BFT_THIRD, MAJORITY};
use crate::hash::sha256d;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Slots a delegate must have had before it can be voted out.
pub const VOTE_OUT_MIN_SLOTS: u64 = 3;

/// Distinct producers whose blocks make a block irreversible among `delegates`: `⌊2N/3⌋ + 1`.
pub fn confirmations_needed(delegates: usize) -> usize {
    2 * delegates / 3 + 1
}

/// Delegates offline for a share: `round(share × N)`.
pub(crate) fn offline_count(delegates: usize, offline_share: f64) -> usize {
    ((offline_share.clamp(0.0, 1.0) * delegates as f64).round() as usize).min(delegates)
}

/// Each holder's ballot: up to `votes_per_holder` candidates, drawn without replacement with
/// probability proportional to their stake (key `ln stake − ln(−ln U)`, the largest keys win);
/// holders and candidates without stake take no part. Deterministic for `rng`'s seed.
pub fn cast_votes(stakes: &[u64], votes_per_holder: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    let candidates: Vec<usize> = (0..stakes.len()).filter(|&c| stakes[c] > 0).collect();
    let ln_stake: Vec<f64> = candidates
        .iter()
        .map(|&c| (stakes[c] as f64).ln())
        .collect();
    let k = votes_per_holder.min(candidates.len());
    let mut keys: Vec<(f64, usize)> = Vec::with_capacity(candidates.len());
    stakes
        .iter()
        .map(|&stake| {
            if stake == 0 || k == 0 {
                return Vec::new();
            }
            keys.clear();
            for (j, &c) in candidates.iter().enumerate() {
                let u: f64 = 1.0 - rng.gen::<f64>();
                keys.push((ln_stake[j] - (-u.ln()).ln(), c));
            }
            keys.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut ballot: Vec<usize> = keys[..k].iter().map(|&(_, c)| c).collect();
            ballot.sort_unstable();
            ballot
        })
        .collect()
}

/// Stake-weighted approval votes per candidate: each holder's whole stake to each candidate on
/// its ballot (ballot `h` is holder `h`'s; a candidate listed twice counts once).
pub fn tally(ballots: &[Vec<usize>], stakes: &[u64]) -> Vec<u64> {
    let mut votes = vec![0u64; stakes.len()];
    let mut seen = Vec::new();
    for (h, ballot) in ballots.iter().enumerate() {
        let stake = stakes.get(h).copied().unwrap_or(0);
        seen.clear();
        for &c in ballot {
            if c < votes.len() && !seen.contains(&c) {
                seen.push(c);
                votes[c] = votes[c].saturating_add(stake);
            }
        }
    }
    votes
}

/// The top `n` candidates by votes, most votes first (ties to the lower index).
pub fn elect(votes: &[u64], n: usize) -> Vec<usize> {
    elect_excluding(votes, n, &[])
}

fn elect_excluding(votes: &[u64], n: usize, excluded: &[bool]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..votes.len())
        .filter(|&c| !excluded.get(c).copied().unwrap_or(false))
        .collect();
    order.sort_by(|&a, &b| votes[b].cmp(&votes[a]).then(a.cmp(&b)));
    if order.len() < n {
        // Not enough eligible candidates: fill up with the excluded, best first.
        let mut rest: Vec<usize> = (0..votes.len()).filter(|c| !order.contains(c)).collect();
        rest.sort_by(|&a, &b| votes[b].cmp(&votes[a]).then(a.cmp(&b)));
        order.extend(rest);
    }
    order.truncate(n);
    order
}

/// The last irreversible height given each producer's latest block height (0 for none): the
/// `needed`-th largest, or 0 (genesis) when fewer producers have made blocks.
pub fn last_irreversible(latest: &[u64], needed: usize) -> u64 {
    if needed == 0 {
        return latest.iter().copied().max().unwrap_or(0);
    }
    let mut heights: Vec<u64> = latest.iter().copied().filter(|&h| h > 0).collect();
    if heights.len() < needed {
        return 0;
    }
    heights.select_nth_unstable_by(needed - 1, |a, b| b.cmp(a));
    heights[needed - 1]
}

/// One DPoS run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DposParams {
    /// Holders and candidates (every account may be elected).
    pub accounts: Vec<Account>,
    /// N, the number of delegates (EOS and Steemit 21, Ark 51, BitShares and Lisk 101).
    pub delegates: usize,
    /// Seconds per slot (EOS: 0.5).
    pub slot_time_s: f64,
    /// Rounds of N slots.
    pub rounds: u64,
    /// Share of the first elected delegates that stay offline, in [0, 1].
    pub offline_share: f64,
    /// Chance that an online delegate misses its slot anyway, in [0, 1].
    pub miss_probability: f64,
    /// Vote a delegate out when it has missed more than this share of its slots (1 or more:
    /// never).
    pub vote_out_missed_share: f64,
    /// Candidates each holder backs (EOS allows 30).
    pub votes_per_holder: usize,
    /// Transactions per block, for the throughput figures.
    pub txs_per_block: u32,
    /// Seed of the run's random draws; the same seed gives the same run.
    pub seed: u64,
}

/// Why [`DposParams`] cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum DposParamsError {
    /// The accounts fail [`check_accounts`].
    #[error(transparent)]
    Accounts(#[from] StakeError),
    /// `delegates` is 0 or more than the accounts.
    #[error("the number of delegates must be between 1 and the number of accounts ({accounts}); got {delegates}")]
    Delegates {
        /// The delegates asked for.
        delegates: usize,
        /// The accounts there are.
        accounts: usize,
    },
    /// `slot_time_s` is not a positive finite number.
    #[error("the slot time must be a positive number of seconds (EOS uses 0.5)")]
    SlotTime,
    /// `rounds` is 0.
    #[error("the number of rounds must be at least 1")]
    Rounds,
    /// `offline_share` is outside [0, 1].
    #[error("the offline share must be between 0 and 1")]
    OfflineShare,
    /// `miss_probability` is outside [0, 1].
    #[error("the miss probability must be between 0 and 1")]
    MissProbability,
    /// `vote_out_missed_share` is NaN or negative.
    #[error("the vote-out threshold must be a share of missed slots, not negative (1 or more disables voting out)")]
    VoteOut,
    /// `votes_per_holder` is 0.
    #[error("each holder must back at least one candidate")]
    VotesPerHolder,
}

impl DposParams {
    /// `delegates` producers over `accounts`: half-second slots, 100 rounds, everyone online,
    /// voting out above half the slots missed, 30 votes per holder, 100 transactions per block,
    /// seed 1.
    pub fn new(accounts: Vec<Account>, delegates: usize) -> DposParams {
        DposParams {
            accounts,
            delegates,
            slot_time_s: 0.5,
            rounds: 100,
            offline_share: 0.0,
            miss_probability: 0.0,
            vote_out_missed_share: 0.5,
            votes_per_holder: 30,
            txs_per_block: 100,
            seed: 1,
        }
    }

    /// Whether [`run`] can use these parameters; returns the supply.
    pub fn check(&self) -> Result<u64, DposParamsError> {
        let supply = check_accounts(&self.accounts)?;
        if self.delegates == 0 || self.delegates > self.accounts.len() {
            return Err(DposParamsError::Delegates {
                delegates: self.delegates,
                accounts: self.accounts.len(),
            });
        }
        if !self.slot_time_s.is_finite() || self.slot_time_s <= 0.0 {
            return Err(DposParamsError::SlotTime);
        }
        if self.rounds == 0 {
            return Err(DposParamsError::Rounds);
        }
        if !(0.0..=1.0).contains(&self.offline_share) {
            return Err(DposParamsError::OfflineShare);
        }
        if !(0.0..=1.0).contains(&self.miss_probability) {
            return Err(DposParamsError::MissProbability);
        }
        if self.vote_out_missed_share.is_nan() || self.vote_out_missed_share < 0.0 {
            return Err(DposParamsError::VoteOut);
        }
        if self.votes_per_holder == 0 {
            return Err(DposParamsError::VotesPerHolder);
        }
        Ok(supply)
    }
}

/// One account's part in a [`DposResult`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DposAccount {
    /// The account's name.
    pub name: String,
    /// Its stake, in units.
    pub balance: u64,
    /// Stake-weighted votes at the end.
    pub votes: u64,
    /// Blocks it made.
    pub blocks: u64,
    /// Slots it missed as a delegate.
    pub missed: u64,
    /// It was among the delegates that stayed offline.
    pub offline: bool,
    /// It was a delegate at the end.
    pub delegate_at_end: bool,
    /// It was voted out for missing slots.
    pub voted_out: bool,
}

/// What a DPoS run measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DposResult {
    /// N.
    pub delegates: usize,
    /// `⌊2N/3⌋ + 1`.
    pub confirmations_needed: usize,
    /// Rounds of N slots run.
    pub rounds: u64,
    /// Slots run: `rounds × delegates`.
    pub slots: u64,
    /// Seconds per slot.
    pub slot_time_s: f64,
    /// Blocks made (all on the one chain).
    pub blocks: u64,
    /// Slots in which no block was made.
    pub missed_slots: u64,
    /// `missed_slots / slots`.
    pub missed_share: f64,
    /// Slots missed in each round.
    pub missed_per_round: Vec<u32>,
    /// Share of the first round's slots missed.
    pub missed_share_first_round: f64,
    /// Share of the last round's slots missed.
    pub missed_share_last_round: f64,
    /// The accounts that stayed offline.
    pub offline: Vec<String>,
    /// The delegates elected at the start.
    pub initial_delegates: Vec<String>,
    /// The delegates at the end.
    pub final_delegates: Vec<String>,
    /// Delegates voted out, in order.
    pub voted_out: Vec<String>,
    /// Rounds completed before the delegates included no offline account (0 when none was
    /// offline; `None` if some still were at the end).
    pub rounds_to_recover: Option<u64>,
    /// Height of the last irreversible block at the end (0: none became irreversible).
    pub lib_height: u64,
    /// Blocks that became irreversible.
    pub irreversible_blocks: u64,
    /// Blocks not yet irreversible at the end.
    pub pending_at_end: u64,
    /// The round (from 1) in which the LIB first advanced.
    pub lib_first_round: Option<u64>,
    /// Seconds from a block's slot to the slot that made it irreversible, over the blocks that
    /// became irreversible (`None` when none did).
    pub irreversible_mean_s: Option<f64>,
    /// Median of the same seconds.
    pub irreversible_p50_s: Option<f64>,
    /// 99th percentile of the same seconds.
    pub irreversible_p99_s: Option<f64>,
    /// Least of the same seconds.
    pub irreversible_min_s: Option<f64>,
    /// Most of the same seconds.
    pub irreversible_max_s: Option<f64>,
    /// `slots × slot_time_s`.
    pub duration_s: f64,
    /// Blocks per second achieved: `blocks / duration_s`.
    pub blocks_per_s: f64,
    /// Transactions per second achieved: `blocks_per_s × txs_per_block`.
    pub txs_per_s: f64,
    /// Blocks per second with every slot filled: `1 / slot_time_s`.
    pub nominal_blocks_per_s: f64,
    /// Transactions per second with every slot filled.
    pub nominal_txs_per_s: f64,
    /// Each account's part, in the order of [`DposParams::accounts`].
    pub per_account: Vec<DposAccount>,
    /// Gini of blocks made, over all accounts (non-producers count as zero). The Nakamoto
    /// coefficients below are the same over either set.
    pub blocks_gini_all: f64,
    /// Gini of blocks made, over the accounts that made any.
    pub blocks_gini_producers: f64,
    /// Fewest accounts that made more than half the blocks.
    pub blocks_nakamoto_majority: usize,
    /// Fewest accounts that made more than a third of the blocks.
    pub blocks_nakamoto_third: usize,
    /// Gini of the stake, over all accounts.
    pub stake_gini: f64,
    /// Fewest accounts that hold more than half the stake.
    pub stake_nakamoto_majority: usize,
    /// Fewest accounts that hold more than a third of the stake.
    pub stake_nakamoto_third: usize,
    /// The chain's last block, display order.
    pub tip_hash: String,
}

/// How each round's order is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schedule {
    /// Shuffled by the hash of the previous round's last block (what [`run`] does).
    Shuffled,
    /// The elected order every round (for the exact irreversibility check).
    #[cfg_attr(not(test), allow(dead_code))]
    RoundRobin,
}

/// Runs the DPoS chain described in the module documentation. Deterministic for given
/// parameters and seed.
pub fn run(p: &DposParams) -> Result<DposResult, DposParamsError> {
    simulate(p, Schedule::Shuffled)
}

fn simulate(p: &DposParams, schedule: Schedule) -> Result<DposResult, DposParamsError> {
    p.check()?;
    let n_acc = p.accounts.len();
    let n = p.delegates;
    let needed = confirmations_needed(n);
    let stakes: Vec<u64> = p.accounts.iter().map(|a| a.balance).collect();
    let mut rng = StdRng::seed_from_u64(p.seed);
    let mut ballots = cast_votes(&stakes, p.votes_per_holder, &mut rng);
    let mut votes = tally(&ballots, &stakes);
    let mut voted_out = vec![false; n_acc];
    let mut delegates = elect(&votes, n);
    let initial_delegates = delegates.clone();
    let mut offline = vec![false; n_acc];
    {
        let mut pick = delegates.clone();
        pick.shuffle(&mut rng);
        for &d in pick.iter().take(offline_count(n, p.offline_share)) {
            offline[d] = true;
        }
    }
    let vote_out_on = p.vote_out_missed_share < 1.0;

    let genesis = StakeHeader {
        prev: [0; 32],
        height: 0,
        maker: [0; 20],
        time: 0,
        bits: 0,
        tx_digest: super::stake::allocation_digest(&p.accounts),
    };
    let mut tip_hash = genesis.hash();
    let mut height = 0u64;
    // Slot of each block by height (genesis at slot 0).
    let mut block_slot: Vec<u64> = vec![0];
    // Latest block height of each account that has made blocks, in order of first block.
    let mut producer_index: Vec<Option<usize>> = vec![None; n_acc];
    let mut latest: Vec<u64> = Vec::with_capacity(2 * n);
    let mut lib = 0u64;
    let mut lib_first_round = None;
    let mut to_irreversible: Vec<f64> = Vec::new();
    let mut made = vec![0u64; n_acc];
    let mut missed = vec![0u64; n_acc];
    let mut served_since = vec![0u64; n_acc];
    let mut missed_since = vec![0u64; n_acc];
    let mut missed_per_round = Vec::with_capacity(p.rounds as usize);
    let mut voted_out_names = Vec::new();
    let mut rounds_to_recover = if delegates.iter().any(|&d| offline[d]) {
        None
    } else {
        Some(0)
    };
    let mut slot = 0u64;

    for round in 0..p.rounds {
        let mut order = delegates.clone();
        if schedule == Schedule::Shuffled {
            order.shuffle(&mut StdRng::from_seed(tip_hash));
        }
        let mut missed_now = 0u32;
        for &d in &order {
            slot += 1;
            served_since[d] += 1;
            let miss = offline[d] || (p.miss_probability > 0.0 && rng.gen_bool(p.miss_probability));
            if miss {
                missed[d] += 1;
                missed_since[d] += 1;
                missed_now += 1;
                continue;
            }
            let mut digest_input = [0u8; 12];
            digest_input[..8].copy_from_slice(&slot.to_le_bytes());
            digest_input[8..].copy_from_slice(&p.txs_per_block.to_le_bytes());
            let header = StakeHeader {
                prev: tip_hash,
                height: height + 1,
                maker: p.accounts[d].id,
                time: slot,
                bits: 0,
                tx_digest: sha256d(&digest_input),
            };
            tip_hash = header.hash();
            height += 1;
            block_slot.push(slot);
            made[d] += 1;
            let entry = *producer_index[d].get_or_insert_with(|| {
                latest.push(0);
                latest.len() - 1
            });
            latest[entry] = height;
            let new_lib = last_irreversible(&latest, needed);
            if new_lib > lib {
                for h in lib + 1..=new_lib {
                    to_irreversible.push((slot - block_slot[h as usize]) as f64 * p.slot_time_s);
                }
                lib = new_lib;
                lib_first_round.get_or_insert(round + 1);
            }
        }
        missed_per_round.push(missed_now);

        if vote_out_on {
            let mut is_delegate = vec![false; n_acc];
            for &d in &delegates {
                is_delegate[d] = true;
            }
            let mut changed = false;
            for &d in &delegates {
                let served = served_since[d];
                if served < VOTE_OUT_MIN_SLOTS
                    || (missed_since[d] as f64) <= p.vote_out_missed_share * served as f64
                {
                    continue;
                }
                voted_out[d] = true;
                is_delegate[d] = false;
                voted_out_names.push(p.accounts[d].name.clone());
                let replacement = (0..n_acc)
                    .filter(|&c| !is_delegate[c] && !voted_out[c])
                    .max_by(|&a, &b| votes[a].cmp(&votes[b]).then(b.cmp(&a)));
                for (h, ballot) in ballots.iter_mut().enumerate() {
                    let Some(pos) = ballot.iter().position(|&c| c == d) else {
                        continue;
                    };
                    ballot.remove(pos);
                    votes[d] = votes[d].saturating_sub(stakes[h]);
                    if let Some(r) = replacement {
                        if !ballot.contains(&r) {
                            ballot.push(r);
                            votes[r] = votes[r].saturating_add(stakes[h]);
                        }
                    }
                }
                if let Some(r) = replacement {
                    is_delegate[r] = true;
                }
                changed = true;
            }
            if changed {
                let next = elect_excluding(&votes, n, &voted_out);
                for &d in &next {
                    if !delegates.contains(&d) {
                        served_since[d] = 0;
                        missed_since[d] = 0;
                    }
                }
                delegates = next;
            }
        }
        if rounds_to_recover.is_none() && !delegates.iter().any(|&d| offline[d]) {
            rounds_to_recover = Some(round + 1);
        }
    }

    let slots = slot;
    let blocks = height;
    let missed_slots: u64 = missed_per_round.iter().map(|&m| u64::from(m)).sum();
    let share_of_round = |m: Option<&u32>| m.map(|&m| f64::from(m) / n as f64).unwrap_or(0.0);
    let mut sorted = to_irreversible.clone();
    sorted.sort_unstable_by(f64::total_cmp);
    let stat = |f: &dyn Fn(&[f64]) -> f64| {
        if sorted.is_empty() {
            None
        } else {
            Some(f(&sorted))
        }
    };
    let duration_s = slots as f64 * p.slot_time_s;
    let blocks_per_s = blocks as f64 / duration_s;
    let producers: Vec<u64> = made.iter().copied().filter(|&b| b > 0).collect();
    let names = |ids: &[usize]| -> Vec<String> {
        ids.iter().map(|&i| p.accounts[i].name.clone()).collect()
    };
    let offline_ids: Vec<usize> = (0..n_acc).filter(|&i| offline[i]).collect();
    let per_account = p
        .accounts
        .iter()
        .enumerate()
        .map(|(i, a)| DposAccount {
            name: a.name.clone(),
            balance: a.balance,
            votes: votes[i],
            blocks: made[i],
            missed: missed[i],
            offline: offline[i],
            delegate_at_end: delegates.contains(&i),
            voted_out: voted_out[i],
        })
        .collect();
    Ok(DposResult {
        delegates: n,
        confirmations_needed: needed,
        rounds: p.rounds,
        slots,
        slot_time_s: p.slot_time_s,
        blocks,
        missed_slots,
        missed_share: missed_slots as f64 / slots as f64,
        missed_share_first_round: share_of_round(missed_per_round.first()),
        missed_share_last_round: share_of_round(missed_per_round.last()),
        missed_per_round,
        offline: names(&offline_ids),
        initial_delegates: names(&initial_delegates),
        final_delegates: names(&delegates),
        voted_out: voted_out_names,
        rounds_to_recover,
        lib_height: lib,
        irreversible_blocks: to_irreversible.len() as u64,
        pending_at_end: blocks - lib,
        lib_first_round,
        irreversible_mean_s: stat(&|v| v.iter().sum::<f64>() / v.len() as f64),
        irreversible_p50_s: stat(&|v| quantile_sorted(v, 0.5)),
        irreversible_p99_s: stat(&|v| quantile_sorted(v, 0.99)),
        irreversible_min_s: stat(&|v| v[0]),
        irreversible_max_s: stat(&|v| v[v.len() - 1]),
        duration_s,
        blocks_per_s,
        txs_per_s: blocks_per_s * f64::from(p.txs_per_block),
        nominal_blocks_per_s: 1.0 / p.slot_time_s,
        nominal_txs_per_s: f64::from(p.txs_per_block) / p.slot_time_s,
        per_account,
        blocks_gini_all: gini(&made),
        blocks_gini_producers: gini(&producers),
        blocks_nakamoto_majority: nakamoto_coefficient(&made, MAJORITY),
        blocks_nakamoto_third: nakamoto_coefficient(&made, BFT_THIRD),
        stake_gini: gini(&stakes),
        stake_nakamoto_majority: nakamoto_coefficient(&stakes, MAJORITY),
        stake_nakamoto_third: nakamoto_coefficient(&stakes, BFT_THIRD),
        tip_hash: crate::hash::display_hash(&tip_hash),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::stake::default_genesis;

    fn params(n: usize, offline_share: f64, vote_out: f64) -> DposParams {
        let mut p = DposParams::new(default_genesis(100, 11), n);
        p.rounds = 30;
        p.offline_share = offline_share;
        p.vote_out_missed_share = vote_out;
        p
    }

    #[test]
    fn election_takes_the_top_n_by_stake_weighted_votes() {
        let stakes = [100, 50, 30, 20, 10, 0];
        let ballots = vec![
            vec![3, 4],    // 100 to candidates 3 and 4
            vec![2],       // 50 to 2
            vec![2, 4, 2], // 30 to 2 and 4 (listed twice, counted once)
            vec![1],       // 20 to 1
            vec![0, 5],    // 10 to 0 and 5
            vec![1],       // no stake, no weight
        ];
        let votes = tally(&ballots, &stakes);
        assert_eq!(votes, vec![10, 20, 80, 100, 130, 10]);
        assert_eq!(elect(&votes, 3), vec![4, 3, 2]);
        // Ties go to the account listed first: 0 and 5 both have 10.
        assert_eq!(elect(&votes, 6), vec![4, 3, 2, 1, 0, 5]);
        assert_eq!(
            elect_excluding(&votes, 2, &[false, false, false, false, true]),
            vec![3, 2]
        );
    }

    #[test]
    fn ballots_prefer_large_stakes_and_follow_the_seed() {
        let stakes = [1_000_000, 1, 1, 1, 1, 0];
        let a = cast_votes(&stakes, 2, &mut StdRng::seed_from_u64(1));
        assert_eq!(a, cast_votes(&stakes, 2, &mut StdRng::seed_from_u64(1)));
        assert!(a[5].is_empty(), "no stake, no ballot");
        assert!(a[..5]
            .iter()
            .all(|b| b.len() == 2 && b.contains(&0) && !b.contains(&5)));
    }

    #[test]
    fn irreversible_exactly_two_thirds_plus_one_producers_later() {
        for n in [4usize, 21, 51, 101] {
            let mut p = params(n, 0.0, 0.5);
            p.accounts = default_genesis(150, 11);
            p.rounds = 12;
            let k = confirmations_needed(n);
            let lag = (k - 1) as f64 * p.slot_time_s;
            // Each in turn: every block is irreversible exactly ⌊2N/3⌋ slots later.
            let r = simulate(&p, Schedule::RoundRobin).unwrap();
            assert_eq!(r.blocks, 12 * n as u64);
            assert_eq!(r.pending_at_end, (k - 1) as u64, "N = {n}");
            assert_eq!(r.irreversible_min_s, Some(lag), "N = {n}");
            assert_eq!(r.irreversible_max_s, Some(lag), "N = {n}");
            // Shuffled rounds: never sooner (exactly that for a block whose next ⌊2N/3⌋ slots are in
            // its own round), and less than two rounds later.
            let s = run(&p).unwrap();
            assert_eq!(s.irreversible_min_s, Some(lag), "N = {n}");
            assert!(s.irreversible_max_s.unwrap() < 2.0 * n as f64 * p.slot_time_s);
        }
    }

    #[test]
    fn offline_beyond_a_third_stops_irreversibility() {
        // N = 21 needs 15 producers: 6 offline leaves 15, 7 (a third) leaves 14.
        let ok = run(&params(21, 6.0 / 21.0, 1.0)).unwrap();
        assert!(ok.lib_height > 0 && ok.missed_slots == 6 * 30);
        assert_eq!(ok.offline.len(), 6);
        for share in [7.0 / 21.0, 0.4, 0.6] {
            let r = run(&params(21, share, 1.0)).unwrap();
            assert_eq!(r.lib_height, 0, "offline {share}");
            assert_eq!(r.irreversible_blocks, 0);
            assert_eq!(r.irreversible_p50_s, None);
            assert_eq!(r.pending_at_end, r.blocks);
            assert!(r.voted_out.is_empty() && r.rounds_to_recover.is_none());
        }
    }

    #[test]
    fn voting_out_replaces_offline_delegates_and_irreversibility_resumes() {
        let r = run(&params(21, 0.4, 0.5)).unwrap();
        assert_eq!(r.offline.len(), 8);
        assert!(r.voted_out.len() >= 8, "{:?}", r.voted_out);
        assert!(r.offline.iter().all(|o| !r.final_delegates.contains(o)));
        // Voted out after VOTE_OUT_MIN_SLOTS rounds.
        assert_eq!(r.rounds_to_recover, Some(VOTE_OUT_MIN_SLOTS));
        assert_eq!(r.missed_share_first_round, 8.0 / 21.0);
        assert_eq!(r.missed_share_last_round, 0.0);
        assert!(r.lib_height > 0);
        assert!(r.lib_first_round.unwrap() > VOTE_OUT_MIN_SLOTS);
        assert!(r.pending_at_end < 2 * 21);
    }

    #[test]
    fn random_misses_and_determinism() {
        let mut p = params(21, 0.1, 0.5);
        p.miss_probability = 0.05;
        let a = run(&p).unwrap();
        assert_eq!(a, run(&p).unwrap());
        assert!(a.missed_slots > 0 && a.blocks + a.missed_slots == a.slots);
        assert!((a.blocks_per_s - a.blocks as f64 / a.duration_s).abs() < 1e-12);
        assert_eq!(a.txs_per_s, a.blocks_per_s * 100.0);
        p.seed = 2;
        assert_ne!(run(&p).unwrap().tip_hash, a.tip_hash);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut p = params(21, 0.0, 0.5);
        p.delegates = 101;
        assert!(matches!(
            run(&p),
            Err(DposParamsError::Delegates {
                delegates: 101,
                accounts: 100
            })
        ));
        p.delegates = 21;
        p.slot_time_s = 0.0;
        assert!(matches!(p.check(), Err(DposParamsError::SlotTime)));
        p.slot_time_s = 0.5;
        p.offline_share = 1.5;
        assert!(matches!(p.check(), Err(DposParamsError::OfflineShare)));
        p.offline_share = 0.0;
        p.vote_out_missed_share = f64::NAN;
        assert!(matches!(p.check(), Err(DposParamsError::VoteOut)));
    }

    #[test]
    fn lib_is_the_kth_largest_latest_height() {
        assert_eq!(last_irreversible(&[5, 9, 0, 7], 3), 5);
        assert_eq!(last_irreversible(&[5, 9, 0, 7], 4), 0);
        assert_eq!(confirmations_needed(21), 15);
        assert_eq!(confirmations_needed(101), 68);
        assert_eq!(offline_count(21, 0.4), 8);
    }
}
