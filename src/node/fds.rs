//! File descriptors: every connection the node holds is one, and a process past its limit
//! (`ulimit -n`, often 1,024) cannot `accept` at all: every listener fails with EMFILE and the
//! RPC goes dead with the Stratum and P2P ports. So, as Bitcoin Core does at start
//! (`RaiseFileDescriptorLimit`), the node raises its soft limit toward the hard limit, and
//! derives its connection caps from the descriptors it actually has: a reserve for the store,
//! the listeners and the process's own files first, then the RPC, the peers, and Stratum gets
//! what is left. A cap an operator asks for that does not fit is refused with the numbers.

/// Descriptors kept for everything that is not a connection: stdio, the store (redb), the
/// listening sockets, the runtime's epoll and wake fds, the cookie and ban files, log files.
pub const RESERVED: u64 = 64;
/// The RPC's connections when not asked for (`--rpc-max-connections`) and descriptors allow.
pub const RPC_DEFAULT: u64 = 512;
/// The RPC keeps at least this many connections (a node with fewer descriptors is refused).
pub const RPC_MIN: u64 = 16;
/// Inbound peers when descriptors allow (Core: 125 connections, 8 of them outbound).
pub const P2P_INBOUND_DEFAULT: u64 = 117;
/// Stratum miners when not asked for (`--stratum-max-connections`) and descriptors allow.
pub const STRATUM_DEFAULT: u64 = 20_000;

/// The process's descriptor limit (RLIMIT_NOFILE) before and after [`raise_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit found at start.
    pub was: u64,
    /// The soft limit now: what the process may open.
    pub soft: u64,
    /// The hard limit: the most the soft one can be raised to without privileges.
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to `want`, or to the hard limit if that is lower (never
/// lowers it). Where the limit cannot be read (not a Unix), `want` is taken as available.
pub fn raise_limit(want: u64) -> Limit {
    imp::raise_limit(want)
}

#[cfg(unix)]
mod imp {
    use super::Limit;

    // rlim_t is u64 on Linux but not on every Unix: the casts are kept.
    #[allow(clippy::unnecessary_cast)]
    pub(super) fn raise_limit(want: u64) -> Limit {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` through a valid pointer to a local.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return Limit {
                was: want,
                soft: want,
                hard: want,
            };
        }
        let (was, hard) = (lim.rlim_cur as u64, lim.rlim_max as u64);
        let target = want.min(hard);
        if target > was {
            let raised = libc::rlimit {
                rlim_cur: target as libc::rlim_t,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: setrlimit reads one `rlimit` through a valid pointer to a local.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                return Limit {
                    was,
                    soft: target,
                    hard,
                };
            }
        }
        Limit {
            was,
            soft: was,
            hard,
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::Limit;

    pub(super) fn raise_limit(want: u64) -> Limit {
        Limit {
            was: want,
            soft: want,
            hard: want,
        }
    }
}

/// What the operator asked for: `None` where a flag was not given.
#[derive(Clone, Copy, Debug, Default)]
pub struct Asked {
    /// RPC connections (`--rpc-max-connections`).
    pub rpc: Option<u64>,
    /// Stratum miners (`--stratum-max-connections`).
    pub stratum: Option<u64>,
    /// Whether Stratum is served at all.
    pub stratum_on: bool,
    /// Whether peers are accepted (`--listen`).
    pub listen: bool,
    /// Peers dialed (`--connect`), one descriptor each.
    pub outbound: u64,
}

/// The connection caps the node runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// RPC connections open at once.
    pub rpc: u64,
    /// Inbound peers at once; 0 when peers are not accepted.
    pub p2p_inbound: u64,
    /// Peers dialed: one descriptor each.
    pub p2p_outbound: u64,
    /// 0 when Stratum is not served.
    pub stratum: u64,
}

impl Caps {
    /// Descriptors these caps can hold at once, with the reserve.
    pub fn total(&self) -> u64 {
        RESERVED + self.rpc + self.p2p_inbound + self.p2p_outbound + self.stratum
    }
}

/// A cap that does not fit the descriptors the process has; the message names the numbers
/// and the two ways out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// A flag asked for more connections than the descriptors left can hold.
    #[error("{flag} {asked}: this process may open {soft} file descriptors (hard limit {hard}); after {reserved} kept for the store and files{others}, at most {fits} fit. Lower {flag}, or raise the limit (`ulimit -n`, LimitNOFILE= in a systemd unit)")]
    TooHigh {
        /// The flag, e.g. `--rpc-max-connections`.
        flag: &'static str,
        /// Its value.
        asked: u64,
        /// The most that fit.
        fits: u64,
        /// The soft descriptor limit.
        soft: u64,
        /// The hard descriptor limit.
        hard: u64,
        /// Descriptors kept for the store and files ([`RESERVED`]).
        reserved: u64,
        /// What the other servers took first, as text for the message (", N for ...", or
        /// empty).
        others: String,
    },
    /// The soft limit is below what the node needs at the least.
    #[error("this process may open only {soft} file descriptors (hard limit {hard}): the node needs at least {need} ({reserved} for the store and files, {rpc_min} for the RPC{peers}). Raise the limit (`ulimit -n`)")]
    TooFew {
        /// The soft descriptor limit.
        soft: u64,
        /// The hard descriptor limit.
        hard: u64,
        /// Descriptors the node needs at the least.
        need: u64,
        /// Descriptors kept for the store and files ([`RESERVED`]).
        reserved: u64,
        /// The RPC's part of `need`: [`RPC_MIN`], or its cap where Stratum got nothing.
        rpc_min: u64,
        /// What the peers need, as text for the message (", N for inbound peers, ...", or
        /// empty).
        peers: String,
    },
}

/// Descriptors the node would like: the defaults (or what was asked) with the reserve.
pub fn wanted(asked: &Asked) -> u64 {
    let p2p = if asked.listen { P2P_INBOUND_DEFAULT } else { 0 } + asked.outbound;
    let stratum = if asked.stratum_on {
        asked.stratum.unwrap_or(STRATUM_DEFAULT)
    } else {
        0
    };
    RESERVED + asked.rpc.unwrap_or(RPC_DEFAULT) + p2p + stratum
}

/// Shares `limit` between the servers: the reserve, then the RPC (what was asked, or up to
/// [`RPC_DEFAULT`] but, beside Stratum or inbound peers, no more than an eighth of what is
/// left), the peers dialed, the inbound
/// peers (up to [`P2P_INBOUND_DEFAULT`], no more than a quarter of what is left), and Stratum
/// the rest (up to what was asked or [`STRATUM_DEFAULT`]). A flag whose value does not fit is
/// an error naming the numbers.
pub fn plan(limit: Limit, asked: &Asked) -> Result<Caps, CapError> {
    let soft = limit.soft;
    let p2p_outbound = asked.outbound;
    let peers_text = |inbound: u64| {
        let mut s = String::new();
        if inbound > 0 {
            s += &format!(", {inbound} for inbound peers");
        }
        if p2p_outbound > 0 {
            s += &format!(", {p2p_outbound} for peers dialed");
        }
        s
    };
    let floor = RESERVED + RPC_MIN + p2p_outbound + u64::from(asked.listen);
    if soft < floor {
        return Err(CapError::TooFew {
            soft,
            hard: limit.hard,
            need: floor,
            reserved: RESERVED,
            rpc_min: RPC_MIN,
            peers: peers_text(u64::from(asked.listen)),
        });
    }
    let mut left = soft - RESERVED - p2p_outbound;
    let rpc = match asked.rpc {
        Some(n) => {
            // An explicit RPC cap must leave room for at least one inbound peer and miner.
            let others = u64::from(asked.listen) + u64::from(asked.stratum_on);
            let fits = left.saturating_sub(others);
            if n > fits {
                return Err(CapError::TooHigh {
                    flag: "--rpc-max-connections",
                    asked: n,
                    fits,
                    soft,
                    hard: limit.hard,
                    reserved: RESERVED,
                    others: peers_text(0),
                });
            }
            n
        }
        // Alone, the RPC may have all that is left; beside Stratum or inbound peers, an eighth.
        None if asked.stratum_on || asked.listen => RPC_DEFAULT.min((left / 8).max(RPC_MIN)),
        None => RPC_DEFAULT.min(left),
    };
    left -= rpc;
    let p2p_inbound = if asked.listen {
        let share = if asked.stratum_on { left / 4 } else { left };
        P2P_INBOUND_DEFAULT.min(share.max(1))
    } else {
        0
    };
    left -= p2p_inbound;
    let stratum = if asked.stratum_on {
        match asked.stratum {
            Some(n) if n > left => {
                return Err(CapError::TooHigh {
                    flag: "--stratum-max-connections",
                    asked: n,
                    fits: left,
                    soft,
                    hard: limit.hard,
                    reserved: RESERVED,
                    others: format!(", {rpc} for the RPC{}", peers_text(p2p_inbound)),
                })
            }
            Some(n) => n,
            None => STRATUM_DEFAULT.min(left),
        }
    } else {
        0
    };
    if asked.stratum_on && stratum == 0 {
        return Err(CapError::TooFew {
            soft,
            hard: limit.hard,
            need: soft + 1,
            reserved: RESERVED,
            rpc_min: rpc,
            peers: peers_text(p2p_inbound),
        });
    }
    Ok(Caps {
        rpc,
        p2p_inbound,
        p2p_outbound,
        stratum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(soft: u64) -> Limit {
        Limit {
            was: soft,
            soft,
            hard: soft,
        }
    }

    fn all_on() -> Asked {
        Asked {
            rpc: None,
            stratum: None,
            stratum_on: true,
            listen: true,
            outbound: 2,
        }
    }

    #[test]
    fn the_common_1024_leaves_room_for_the_rpc_and_peers_and_fits_every_cap() {
        let caps = plan(limit(1024), &all_on()).unwrap();
        assert_eq!(caps.rpc, 119); // (1024 - 64 - 2) / 8
        assert_eq!(caps.p2p_inbound, 117);
        assert_eq!(caps.p2p_outbound, 2);
        assert_eq!(caps.stratum, 1024 - 64 - 2 - 119 - 117);
        assert_eq!(caps.total(), 1024);
    }

    #[test]
    fn a_large_limit_gives_the_defaults() {
        let caps = plan(limit(1 << 20), &all_on()).unwrap();
        assert_eq!(
            (caps.rpc, caps.p2p_inbound, caps.stratum),
            (RPC_DEFAULT, P2P_INBOUND_DEFAULT, STRATUM_DEFAULT)
        );
        assert!(caps.total() <= 1 << 20);
    }

    #[test]
    fn caps_never_exceed_the_limit() {
        for soft in [100, 120, 200, 256, 500, 1024, 4096, 20_000, 21_000] {
            for listen in [false, true] {
                for stratum_on in [false, true] {
                    let asked = Asked {
                        listen,
                        stratum_on,
                        ..all_on()
                    };
                    if let Ok(caps) = plan(limit(soft), &asked) {
                        assert!(caps.total() <= soft, "{soft} {asked:?}: {caps:?}");
                        assert!(caps.rpc >= RPC_MIN);
                        assert_eq!(caps.stratum > 0, stratum_on);
                        assert_eq!(caps.p2p_inbound > 0, listen);
                    }
                }
            }
        }
    }

    #[test]
    fn an_explicit_cap_that_does_not_fit_is_refused_with_the_numbers() {
        let asked = Asked {
            stratum: Some(20_000),
            ..all_on()
        };
        let err = plan(limit(1024), &asked).unwrap_err().to_string();
        assert!(err.starts_with("--stratum-max-connections 20000: this process may open 1024 file descriptors (hard limit 1024)"), "{err}");
        assert!(err.contains("at most 722 fit"), "{err}");
        assert!(err.contains("ulimit -n"), "{err}");
        let asked = Asked {
            rpc: Some(5000),
            ..all_on()
        };
        let err = plan(limit(1024), &asked).unwrap_err().to_string();
        assert!(err.starts_with("--rpc-max-connections 5000:"), "{err}");
        // An explicit cap that fits is kept as asked.
        let asked = Asked {
            stratum: Some(300),
            rpc: Some(100),
            ..all_on()
        };
        let caps = plan(limit(1024), &asked).unwrap();
        assert_eq!((caps.rpc, caps.stratum), (100, 300));
    }

    #[test]
    fn the_rpc_alone_may_have_every_descriptor_left() {
        let asked = Asked {
            stratum_on: false,
            listen: false,
            outbound: 0,
            ..all_on()
        };
        assert_eq!(plan(limit(128), &asked).unwrap().rpc, 64);
        assert_eq!(plan(limit(1024), &asked).unwrap().rpc, RPC_DEFAULT);
    }

    #[test]
    fn too_few_descriptors_is_refused() {
        let err = plan(limit(40), &all_on()).unwrap_err().to_string();
        assert!(err.contains("only 40 file descriptors"), "{err}");
    }

    #[test]
    fn wanted_counts_the_defaults_or_the_flags() {
        assert_eq!(
            wanted(&all_on()),
            RESERVED + RPC_DEFAULT + P2P_INBOUND_DEFAULT + 2 + STRATUM_DEFAULT
        );
        let asked = Asked {
            stratum_on: false,
            listen: false,
            outbound: 0,
            rpc: Some(10),
            stratum: None,
        };
        assert_eq!(wanted(&asked), RESERVED + 10);
    }
}
