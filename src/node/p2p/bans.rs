//! Bans by IP address, as Core's `-bantime` and `setban` keep them: an address whose peer ran
//! up a ban score of `--banscore` (100) is refused for `--bantime` seconds, inbound and
//! outbound. Loopback is not exempt (as in Core without `-whitelist`), so on one machine a
//! misbehaving local peer bans every peer from 127.0.0.1: `clearbanned` lifts it.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// One ban, in seconds since 1970.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ban {
    pub created: u64,
    pub until: u64,
}

/// Banned addresses.
#[derive(Debug, Default)]
pub struct BanList {
    bans: BTreeMap<IpAddr, Ban>,
}

impl BanList {
    /// Bans `ip` from `now` for `seconds` (a ban already longer is kept).
    pub fn add(&mut self, ip: IpAddr, now: u64, seconds: u64) {
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
    }

    /// Lifts the ban on `ip`; whether there was one.
    pub fn remove(&mut self, ip: IpAddr) -> bool {
        self.bans.remove(&ip).is_some()
    }

    /// Lifts every ban.
    pub fn clear(&mut self) {
        self.bans.clear();
    }

    /// Whether `ip` is banned at `now` (an expired ban is dropped).
    pub fn is_banned(&mut self, ip: IpAddr, now: u64) -> bool {
        match self.bans.get(&ip) {
            Some(ban) if ban.until > now => true,
            Some(_) => {
                self.bans.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Bans in force at `now`, by address.
    pub fn list(&mut self, now: u64) -> Vec<(IpAddr, Ban)> {
        self.bans.retain(|_, b| b.until > now);
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
}
