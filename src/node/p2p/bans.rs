//! Bans by IP address, as Core's `-bantime` and `setban` keep them: an address whose peer ran
//! up a ban score of `--banscore` (100) is refused for `--bantime` seconds, inbound and
//! outbound. Loopback is not exempt (as in Core without `-whitelist`), so on one machine a
//! misbehaving local peer bans every peer from 127.0.0.1: `clearbanned` lifts it.
//!
//! Bans outlive a restart as Core's do: with a file (`banlist.json` in the data directory, Core's
//! format: `{"banned_nets": [{"version", "address": "IP/32", "ban_created", "banned_until"}]}`)
//! they are loaded at start (expired ones dropped) and the file is rewritten on every change.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One ban, in seconds since 1970.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ban {
    /// When it was imposed.
    pub(crate) created: u64,
    /// When it ends: the address is refused while the time is before this.
    pub(crate) until: u64,
}

/// Banned addresses.
#[derive(Debug, Default)]
pub(crate) struct BanList {
    bans: BTreeMap<IpAddr, Ban>,
    /// Where the bans are kept (none: in memory only).
    path: Option<PathBuf>,
}

impl BanList {
    /// The bans kept in `path` that are still in force at `now`; a missing or unreadable
    /// file starts an empty list (logged). Changes are written back to `path`.
    pub(crate) fn load(path: &Path, now: u64) -> BanList {
        let mut list = BanList {
            bans: BTreeMap::new(),
            path: Some(path.to_path_buf()),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return list,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "p2p: cannot read the ban list");
                return list;
            }
        };
        let Ok(doc) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!(path = %path.display(), "p2p: the ban list is not JSON; starting empty");
            return list;
        };
        for entry in doc["banned_nets"].as_array().into_iter().flatten() {
            let ip = entry["address"]
                .as_str()
                .map(|a| a.split('/').next().unwrap_or(a))
                .and_then(|a| a.parse::<IpAddr>().ok());
            let (Some(ip), Some(created), Some(until)) = (
                ip,
                entry["ban_created"].as_u64(),
                entry["banned_until"].as_u64(),
            ) else {
                continue;
            };
            if until > now {
                list.bans.insert(ip, Ban { created, until });
            }
        }
        list.save();
        list
    }

    /// Writes the list to its file (through a temporary file and a rename, so a crash leaves
    /// the old list or the new one); a failure is logged, the bans stay in force in memory.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        let nets: Vec<Value> = self
            .bans
            .iter()
            .map(|(ip, b)| {
                let prefix = if ip.is_ipv4() { 32 } else { 128 };
                json!({
                    "version": 1,
                    "address": format!("{ip}/{prefix}"),
                    "ban_created": b.created,
                    "banned_until": b.until,
                })
            })
            .collect();
        let text = json!({ "banned_nets": nets }).to_string();
        let tmp = path.with_extension("json.tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "p2p: cannot write the ban list");
        }
    }

    /// Bans `ip` from `now` for `seconds` (a ban already longer is kept).
    pub(crate) fn add(&mut self, ip: IpAddr, now: u64, seconds: u64) {
        let until = now.saturating_add(seconds);
        let ban = self.bans.entry(ip).or_insert(Ban {
            created: now,
            until,
        });
        if ban.until < until {
            *ban = Ban {
                created: now,
                until,
            };
        }
        self.save();
    }

    /// Lifts the ban on `ip`; whether there was one.
    pub(crate) fn remove(&mut self, ip: IpAddr) -> bool {
        let was = self.bans.remove(&ip).is_some();
        if was {
            self.save();
        }
        was
    }

    /// Lifts every ban.
    pub(crate) fn clear(&mut self) {
        self.bans.clear();
        self.save();
    }

    /// Whether `ip` is banned at `now` (an expired ban is dropped).
    pub(crate) fn is_banned(&mut self, ip: IpAddr, now: u64) -> bool {
        match self.bans.get(&ip) {
            Some(ban) if ban.until > now => true,
            Some(_) => {
                self.bans.remove(&ip);
                self.save();
                false
            }
            None => false,
        }
    }

    /// Bans in force at `now`, by address.
    pub(crate) fn list(&mut self, now: u64) -> Vec<(IpAddr, Ban)> {
        let before = self.bans.len();
        self.bans.retain(|_, b| b.until > now);
        if self.bans.len() != before {
            self.save();
        }
        self.bans.iter().map(|(ip, b)| (*ip, *b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_holds_until_it_expires_and_a_longer_one_wins() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let mut bans = BanList::default();
        assert!(!bans.is_banned(ip, 100));
        bans.add(ip, 100, 50);
        assert!(bans.is_banned(ip, 149));
        assert!(!bans.is_banned(ip, 150));
        assert!(bans.list(150).is_empty());
        bans.add(ip, 200, 100);
        bans.add(ip, 210, 10);
        assert_eq!(
            bans.list(210),
            vec![(
                ip,
                Ban {
                    created: 200,
                    until: 300
                }
            )]
        );
        assert!(bans.remove(ip));
        assert!(!bans.is_banned(ip, 210));
    }

    #[test]
    fn bans_are_kept_in_the_file_and_expired_ones_dropped_at_load() {
        let dir = std::env::temp_dir().join(format!("miner-banlist-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("banlist.json");
        let _ = std::fs::remove_file(&path);
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([10, 0, 0, 1]));
        let b: IpAddr = "10.0.0.2".parse().unwrap_or(IpAddr::from([10, 0, 0, 2]));
        let mut bans = BanList::load(&path, 100);
        bans.add(a, 100, 1000);
        bans.add(b, 100, 50);
        let mut again = BanList::load(&path, 120);
        assert_eq!(again.list(120).len(), 2);
        // At 200 b's ban has expired: dropped at load, and from the file.
        let mut later = BanList::load(&path, 200);
        assert_eq!(
            later.list(200),
            vec![(
                a,
                Ban {
                    created: 100,
                    until: 1100
                }
            )]
        );
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            text.contains("10.0.0.1/32") && !text.contains("10.0.0.2"),
            "{text}"
        );
        later.clear();
        assert!(BanList::load(&path, 200).list(200).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
