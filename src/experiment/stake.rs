//! What the seed's stake-based systems ([`pos`](super::pos), [`dpos`](super::dpos)) share:
//! accounts and their balances, the genesis allocation file, the block header they hash, and the
//! measures their results are judged with (concentration: Gini and the Nakamoto coefficient;
//! goodness of fit: Pearson's χ²).
//!
//! # Accounts
//! An account is a name and a balance; its 20-byte id is the first 20 bytes of SHA-256 of the
//! name's UTF-8 bytes ([`account_id`]): a fixed-width value for the kernel and the headers to
//! hash, derived from the name alone so that a genesis file needs no ids. Names must therefore
//! be unique.
//!
//! # The genesis allocation file
//! JSON, one object per account, in the order the results list them:
//!
//! ```json
//! {"accounts": [{"name": "alice", "balance": 1000}, {"name": "bob", "balance": 250}]}
//! ```
//!
//! [`load_genesis`] reads and checks it (at least one account, unique non-empty names, a
//! positive total that fits in `u64`); [`write_genesis`] writes one; [`default_genesis`] makes a
//! skewed (Pareto) allocation so that the concentration figures have something to show.

use super::stats::chi_square_p;
use crate::hash::sha256d;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// Expected count below which a χ² cell is merged (see [`chi_square`]).
pub const MIN_EXPECTED_PER_CELL: f64 = 5.0;

/// One account: a name, its id and its balance (the stake it holds, in indivisible units).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The account's name, unique in its list.
    pub name: String,
    /// `SHA-256(name)[..20]` ([`account_id`]), shown as hex.
    #[serde(serialize_with = "hex_bytes")]
    pub id: [u8; 20],
    /// The stake it holds, in indivisible units.
    pub balance: u64,
}

impl Account {
    /// An account named `name` holding `balance`, its id derived from the name.
    pub fn new(name: impl Into<String>, balance: u64) -> Account {
        let name = name.into();
        Account {
            id: account_id(&name),
            name,
            balance,
        }
    }
}

/// An account's id: the first 20 bytes of SHA-256 of the name's UTF-8 bytes. Twenty bytes, as a
/// Bitcoin address's hash, is ample against accidental collisions and keeps the kernel's
/// preimage ([`pos::kernel_preimage`](super::pos::kernel_preimage)) short.
pub fn account_id(name: &str) -> [u8; 20] {
    let digest = Sha256::digest(name.as_bytes());
    let mut id = [0u8; 20];
    id.copy_from_slice(&digest[..20]);
    id
}

fn hex_bytes<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// Why a genesis allocation or an account list cannot be used. Each message says what is wrong
/// and how to fix it; `origin` names the file (or "the account list").
#[derive(Debug, thiserror::Error)]
pub enum StakeError {
    // The I/O error is part of the message and not also a `source`: `error: {e:#}` prints a
    // source chain after the message, which would show it twice.
    /// The genesis file could not be read.
    #[error("cannot read the genesis file {origin}: {cause}; check the path (`miner experiment pos --write-genesis FILE` writes a default allocation)")]
    Read {
        /// The file's path.
        origin: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The genesis file could not be written.
    #[error("cannot write the genesis file {origin}: {cause}; check that the folder exists and is writable")]
    Write {
        /// The file's path.
        origin: String,
        /// The I/O (or serialisation) error.
        cause: std::io::Error,
    },
    /// The file is not JSON of the genesis layout.
    #[error("{origin} is not a valid genesis allocation (line {line}, column {column}: {message}); expected {{\"accounts\": [{{\"name\": \"alice\", \"balance\": 1000}}, ...]}} with whole, non-negative balances")]
    BadJson {
        /// The file's path.
        origin: String,
        /// Where the parser stopped: line, 1-based.
        line: usize,
        /// Where the parser stopped: column, 1-based.
        column: usize,
        /// The parser's message, without its position.
        message: String,
    },
    /// No accounts.
    #[error(
        "{origin} lists no accounts; add at least one {{\"name\": ..., \"balance\": ...}} entry"
    )]
    Empty {
        /// The file, or "the account list".
        origin: String,
    },
    /// An account has an empty name.
    #[error("entry {index} of {origin} has an empty name; give every account a name (its id is derived from it)")]
    EmptyName {
        /// The file, or "the account list".
        origin: String,
        /// The entry's position, 0-based.
        index: usize,
    },
    /// Two accounts share a name.
    #[error("account name '{name}' appears twice in {origin} (entries {first} and {second}); names must be unique because the account id is derived from the name")]
    DuplicateName {
        /// The file, or "the account list".
        origin: String,
        /// The repeated name.
        name: String,
        /// The first entry with it, 0-based.
        first: usize,
        /// The second entry with it, 0-based.
        second: usize,
    },
    /// Two accounts share an id (possible only for accounts not built with [`Account::new`]).
    #[error("accounts '{first}' and '{second}' in {origin} have the same id; build accounts with Account::new so that the id is derived from the name")]
    DuplicateId {
        /// The file, or "the account list".
        origin: String,
        /// The first account's name.
        first: String,
        /// The second account's name.
        second: String,
    },
    /// Every balance is 0.
    #[error("the balances in {origin} add up to 0; give at least one account a positive balance (stake decides who makes blocks)")]
    ZeroTotal {
        /// The file, or "the account list".
        origin: String,
    },
    /// The balances' sum does not fit in `u64`.
    #[error("the balances in {origin} add up to more than 2^64 - 1; use smaller units")]
    TotalOverflow {
        /// The file, or "the account list".
        origin: String,
    },
    /// [`chi_square`] got a different number of counts and shares.
    #[error("chi-square: {observed} observed counts but {expected} expected shares; give one share per cell")]
    LengthMismatch {
        /// Observed counts given.
        observed: usize,
        /// Expected shares given.
        expected: usize,
    },
    /// [`chi_square`]'s expected shares are not finite and non-negative with a positive sum.
    #[error("chi-square: expected shares must be finite and not negative, with a positive sum")]
    BadShares,
}

/// The genesis file's layout.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    accounts: Vec<GenesisEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisEntry {
    name: String,
    balance: u64,
}

/// Reads a genesis allocation file (see the module documentation) and checks it as
/// [`check_accounts`] does.
pub fn load_genesis(path: impl AsRef<Path>) -> Result<Vec<Account>, StakeError> {
    let path = path.as_ref();
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|cause| StakeError::Read {
        origin: origin.clone(),
        cause,
    })?;
    let file: GenesisFile = serde_json::from_str(&text).map_err(|e| StakeError::BadJson {
        origin: origin.clone(),
        line: e.line(),
        column: e.column(),
        // serde_json's text ends with the same position: said once, in the message's own words.
        message: {
            let text = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            text.strip_suffix(&at).map_or(text.clone(), str::to_string)
        },
    })?;
    let accounts: Vec<Account> = file
        .accounts
        .into_iter()
        .map(|e| Account::new(e.name, e.balance))
        .collect();
    check_accounts_in(&accounts, &origin)?;
    Ok(accounts)
}

/// Writes `accounts` as a genesis allocation file (pretty-printed JSON; ids are not written,
/// they follow from the names).
pub fn write_genesis(path: impl AsRef<Path>, accounts: &[Account]) -> Result<(), StakeError> {
    let path = path.as_ref();
    let file = GenesisFile {
        accounts: accounts
            .iter()
            .map(|a| GenesisEntry {
                name: a.name.clone(),
                balance: a.balance,
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&file).map_err(|e| StakeError::Write {
        origin: path.display().to_string(),
        cause: std::io::Error::other(e),
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|cause| StakeError::Write {
        origin: path.display().to_string(),
        cause,
    })
}

/// Checks an account list: not empty, names non-empty and unique, ids unique, a positive total
/// that fits in `u64`. Returns the total (the supply).
pub fn check_accounts(accounts: &[Account]) -> Result<u64, StakeError> {
    check_accounts_in(accounts, "the account list")
}

fn check_accounts_in(accounts: &[Account], origin: &str) -> Result<u64, StakeError> {
    let origin = origin.to_string();
    if accounts.is_empty() {
        return Err(StakeError::Empty { origin });
    }
    let mut names: HashMap<&str, usize> = HashMap::with_capacity(accounts.len());
    let mut ids: HashMap<[u8; 20], usize> = HashMap::with_capacity(accounts.len());
    let mut total: u64 = 0;
    for (i, a) in accounts.iter().enumerate() {
        if a.name.is_empty() {
            return Err(StakeError::EmptyName { origin, index: i });
        }
        if let Some(&first) = names.get(a.name.as_str()) {
            return Err(StakeError::DuplicateName {
                origin,
                name: a.name.clone(),
                first,
                second: i,
            });
        }
        names.insert(&a.name, i);
        if let Some(&first) = ids.get(&a.id) {
            return Err(StakeError::DuplicateId {
                origin,
                first: accounts[first].name.clone(),
                second: a.name.clone(),
            });
        }
        ids.insert(a.id, i);
        total = total
            .checked_add(a.balance)
            .ok_or_else(|| StakeError::TotalOverflow {
                origin: origin.clone(),
            })?;
    }
    if total == 0 {
        return Err(StakeError::ZeroTotal { origin });
    }
    Ok(total)
}

/// Pareto shape of [`default_genesis`]: α = log₄5 ≈ 1.16 is the "80/20" distribution (a fifth of
/// the holders own four fifths of the stake, in expectation over a large population).
pub const DEFAULT_PARETO_ALPHA: f64 = 1.16;
/// The smallest balance [`default_genesis`] gives.
pub const DEFAULT_MIN_BALANCE: u64 = 1_000;
/// The largest balance [`default_genesis`] gives, in multiples of the smallest: it keeps the
/// total far from `u64::MAX` for any sensible number of accounts.
pub(crate) const DEFAULT_MAX_MULTIPLE: f64 = 1e9;

/// `n_accounts` accounts named `acct000`, `acct001`, ... with Pareto-distributed balances
/// (shape [`DEFAULT_PARETO_ALPHA`], at least [`DEFAULT_MIN_BALANCE`]): a few large holders and
/// many small ones, as real stake distributions are, so that Gini coefficients and Nakamoto
/// coefficients say something. Deterministic for a seed.
pub fn default_genesis(n_accounts: usize, seed: u64) -> Vec<Account> {
    let mut rng = StdRng::seed_from_u64(seed);
    let width = n_accounts.saturating_sub(1).to_string().len().max(3);
    (0..n_accounts)
        .map(|i| {
            // 1 - [0, 1) is (0, 1]: never 0, so the power is finite.
            let u: f64 = 1.0 - rng.gen::<f64>();
            let multiple = u
                .powf(-1.0 / DEFAULT_PARETO_ALPHA)
                .min(DEFAULT_MAX_MULTIPLE);
            let balance = (DEFAULT_MIN_BALANCE as f64 * multiple).floor() as u64;
            Account::new(format!("acct{i:0width$}"), balance)
        })
        .collect()
}

/// Pearson's χ² goodness-of-fit test of counts against the shares a model expects.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChiSquare {
    /// `Σ (observed − expected)² / expected` over the cells after merging.
    pub statistic: f64,
    /// Degrees of freedom: cells after merging, less one.
    pub df: u64,
    /// `P(χ²_df ≥ statistic)`, [`gamma_q`](super::stats::gamma_q)`(df/2, statistic/2)`; 1 when `df` is 0.
    pub p_value: f64,
    /// Cells tested (after merging).
    pub cells: usize,
    /// Input cells merged because their expected count was below [`MIN_EXPECTED_PER_CELL`].
    pub merged: usize,
}

/// χ² test of `observed` counts against `expected_shares` (one per cell, normalised by their
/// sum, so they need not add up to exactly 1): expected count `nᵢ = N·shareᵢ / Σshare` with
/// `N = Σ observed`.
///
/// The χ² distribution is a large-sample approximation that needs every expected count to be
/// at least about 5 (Cochran's rule), so cells expected below [`MIN_EXPECTED_PER_CELL`] are
/// merged into one pooled cell; if the pooled cell is itself expected below 5 it is merged
/// with the smallest of the other cells. With no other cell everything is one cell: `df` 0, p 1.
pub fn chi_square(observed: &[u64], expected_shares: &[f64]) -> Result<ChiSquare, StakeError> {
    if observed.len() != expected_shares.len() {
        return Err(StakeError::LengthMismatch {
            observed: observed.len(),
            expected: expected_shares.len(),
        });
    }
    let share_sum: f64 = expected_shares.iter().sum();
    if expected_shares.iter().any(|s| !s.is_finite() || *s < 0.0)
        || !share_sum.is_finite()
        || share_sum <= 0.0
    {
        return Err(StakeError::BadShares);
    }
    let n: f64 = observed.iter().map(|&o| o as f64).sum();
    let mut cells: Vec<(f64, f64)> = Vec::with_capacity(observed.len());
    let mut pooled = (0.0, 0.0);
    let mut merged = 0usize;
    for (&o, &s) in observed.iter().zip(expected_shares) {
        let e = n * s / share_sum;
        if e < MIN_EXPECTED_PER_CELL {
            pooled.0 += o as f64;
            pooled.1 += e;
            merged += 1;
        } else {
            cells.push((o as f64, e));
        }
    }
    if merged > 0 {
        if pooled.1 >= MIN_EXPECTED_PER_CELL || cells.is_empty() {
            cells.push(pooled);
        } else if let Some(smallest) = cells
            .iter_mut()
            .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal))
        {
            smallest.0 += pooled.0;
            smallest.1 += pooled.1;
        }
    }
    let df = cells.len().saturating_sub(1) as u64;
    if df == 0 {
        return Ok(ChiSquare {
            statistic: 0.0,
            df,
            p_value: 1.0,
            cells: cells.len(),
            merged,
        });
    }
    let statistic: f64 = cells
        .iter()
        .map(|&(o, e)| {
            if e > 0.0 {
                (o - e) * (o - e) / e
            } else if o > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        })
        .sum();
    Ok(ChiSquare {
        statistic,
        df,
        p_value: chi_square_p(statistic, df),
        cells: cells.len(),
        merged,
    })
}

/// Length of [`StakeHeader::encode`].
pub const HEADER_LEN: usize = 104;

/// The header of a stake block, hashed to identify it: `Hash(B) = SHA-256d(encode())`.
///
/// Fixed-width fields, integers little-endian, hashes in internal byte order (as Bitcoin's
/// header, DESIGN §3):
///
/// | bytes | field |
/// |---|---|
/// | 0..32 | `prev`: the parent block's hash |
/// | 32..40 | `height`: u64 |
/// | 40..60 | `maker`: the making account's id (zero for genesis) |
/// | 60..68 | `time`: u64 — PoS: seconds since 1970; DPoS: the slot number |
/// | 68..72 | `bits`: u32, the compact per-stake-unit target (PoS; 0 in DPoS) |
/// | 72..104 | `tx_digest`: [`tx_digest`] of the block's transfers |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StakeHeader {
    /// The parent block's hash (zero for genesis).
    pub prev: [u8; 32],
    /// The block's height (0: genesis).
    pub height: u64,
    /// The making account's id (zero for genesis).
    pub maker: [u8; 20],
    /// PoS: seconds since 1970; DPoS: the slot number.
    pub time: u64,
    /// The compact per-stake-unit target (PoS; 0 in DPoS).
    pub bits: u32,
    /// [`tx_digest`] of the block's transfers.
    pub tx_digest: [u8; 32],
}

impl StakeHeader {
    /// The header's bytes, as the table above.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..32].copy_from_slice(&self.prev);
        b[32..40].copy_from_slice(&self.height.to_le_bytes());
        b[40..60].copy_from_slice(&self.maker);
        b[60..68].copy_from_slice(&self.time.to_le_bytes());
        b[68..72].copy_from_slice(&self.bits.to_le_bytes());
        b[72..104].copy_from_slice(&self.tx_digest);
        b
    }

    /// `SHA-256d(encode())`, raw byte order.
    pub fn hash(&self) -> [u8; 32] {
        sha256d(&self.encode())
    }
}

/// A transfer between two accounts (by index into the account list), its fee going to the
/// block's maker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// The sender's index in the account list.
    pub from: u32,
    /// The receiver's index in the account list.
    pub to: u32,
    /// Units moved from sender to receiver.
    pub amount: u64,
    /// Units the sender pays the block's maker, on top of `amount`.
    pub fee: u64,
}

/// Bytes of one transfer in [`tx_digest`]: sender id, receiver id, amount and fee (u64 LE).
pub const TRANSFER_LEN: usize = 56;

/// The digest a header commits its transfers with: SHA-256d of their concatenated encodings
/// (sender id ‖ receiver id ‖ amount ‖ fee, [`TRANSFER_LEN`] bytes each), or 32 zero bytes for
/// none. A flat digest, not a Merkle tree: nothing here proves inclusion of one transfer.
pub fn tx_digest(transfers: &[Transfer], accounts: &[Account]) -> [u8; 32] {
    if transfers.is_empty() {
        return [0u8; 32];
    }
    let mut bytes = Vec::with_capacity(transfers.len() * TRANSFER_LEN);
    for t in transfers {
        let id = |i: u32| accounts.get(i as usize).map(|a| a.id).unwrap_or([0xff; 20]);
        bytes.extend_from_slice(&id(t.from));
        bytes.extend_from_slice(&id(t.to));
        bytes.extend_from_slice(&t.amount.to_le_bytes());
        bytes.extend_from_slice(&t.fee.to_le_bytes());
    }
    sha256d(&bytes)
}

/// The genesis allocation's digest, committed to by the genesis block's `tx_digest`: SHA-256d
/// of each account's id and balance (u64 LE) in order.
pub(crate) fn allocation_digest(accounts: &[Account]) -> [u8; 32] {
    let mut bytes = Vec::with_capacity(accounts.len() * 28);
    for a in accounts {
        bytes.extend_from_slice(&a.id);
        bytes.extend_from_slice(&a.balance.to_le_bytes());
    }
    sha256d(&bytes)
}

#[cfg(test)]
mod tests {
    use super::super::stats::{gini, nakamoto_coefficient, MAJORITY};
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn ids_are_the_sha256_prefix_of_the_name() {
        let a = Account::new("alice", 5);
        let full = Sha256::digest(b"alice");
        assert_eq!(&a.id[..], &full[..20]);
        assert_eq!(
            hex::encode(a.id),
            "2bd806c97f0e00af1a1fc3328fa763a9269723c8"
        );
    }

    #[test]
    fn chi_square_merges_small_cells_and_detects_a_misfit() {
        // Fair die, 600 rolls exactly as expected: statistic 0, p 1.
        let fit = chi_square(&[100; 6], &[1.0; 6]).unwrap();
        assert_eq!((fit.statistic, fit.df, fit.merged), (0.0, 5, 0));
        assert!(close(fit.p_value, 1.0, 1e-12));
        // Two cells expected at 1 and 2 are pooled (expected 3), then merged into the smallest
        // other cell, leaving 2 cells, df 1.
        let merged = chi_square(&[50, 47, 1, 2], &[50.0, 47.0, 1.0, 2.0]).unwrap();
        assert_eq!((merged.cells, merged.merged, merged.df), (2, 2, 1));
        assert_eq!(merged.statistic, 0.0);
        // A loaded die.
        let bad = chi_square(&[200, 80, 80, 80, 80, 80], &[1.0; 6]).unwrap();
        assert!(bad.p_value < 1e-10, "{bad:?}");
        assert!(matches!(
            chi_square(&[1, 2], &[1.0]),
            Err(StakeError::LengthMismatch { .. })
        ));
        assert!(matches!(
            chi_square(&[1, 2], &[0.0, 0.0]),
            Err(StakeError::BadShares)
        ));
        assert!(matches!(
            chi_square(&[1, 2], &[f64::NAN, 1.0]),
            Err(StakeError::BadShares)
        ));
    }

    #[test]
    fn default_genesis_is_skewed_valid_and_deterministic() {
        let a = default_genesis(100, 7);
        assert_eq!(a, default_genesis(100, 7));
        assert_ne!(a, default_genesis(100, 8));
        assert_eq!(a.len(), 100);
        assert_eq!(a[0].name, "acct000");
        assert!(a.iter().all(|x| x.balance >= DEFAULT_MIN_BALANCE));
        check_accounts(&a).unwrap();
        let balances: Vec<u64> = a.iter().map(|x| x.balance).collect();
        let g = gini(&balances);
        assert!(g > 0.3 && g < 0.95, "gini {g}");
        assert!(nakamoto_coefficient(&balances, MAJORITY) < 30);
    }

    #[test]
    fn account_list_errors_name_the_problem() {
        let dup = vec![
            Account::new("a", 1),
            Account::new("b", 1),
            Account::new("a", 1),
        ];
        let e = check_accounts(&dup).unwrap_err();
        assert!(matches!(
            e,
            StakeError::DuplicateName {
                first: 0,
                second: 2,
                ..
            }
        ));
        assert!(e.to_string().contains("'a' appears twice"), "{e}");
        assert!(matches!(
            check_accounts(&[Account::new("a", 0)]),
            Err(StakeError::ZeroTotal { .. })
        ));
        assert!(matches!(check_accounts(&[]), Err(StakeError::Empty { .. })));
        assert!(matches!(
            check_accounts(&[Account::new("a", u64::MAX), Account::new("b", 1)]),
            Err(StakeError::TotalOverflow { .. })
        ));
        let mut same_id = vec![Account::new("a", 1), Account::new("b", 1)];
        same_id[1].id = same_id[0].id;
        assert!(matches!(
            check_accounts(&same_id),
            Err(StakeError::DuplicateId { .. })
        ));
        assert_eq!(
            check_accounts(&[Account::new("a", 3), Account::new("b", 4)]).unwrap(),
            7
        );
    }

    #[test]
    fn header_encoding_is_fixed_width() {
        let h = StakeHeader {
            prev: [1; 32],
            height: 0x0203,
            maker: [4; 20],
            time: 0x0506,
            bits: 0x0708_090a,
            tx_digest: [0x0b; 32],
        };
        let b = h.encode();
        assert_eq!(&b[32..40], &[3, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[60..68], &[6, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[68..72], &[0x0a, 9, 8, 7]);
        assert_eq!(h.hash(), sha256d(&b));
    }
}
