//! A run's parameters and the faults a replica may have.

use super::*;
use std::fmt;
use std::str::FromStr;

/// What a replica does wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Honest.
    None,
    /// Stops completely at `at_ms` (virtual or real ms from the start): receives, sends and
    /// times out no more. Honest until then.
    Crash {
        /// When it stops, ms from the start.
        at_ms: f64,
    },
    /// Receives and runs the protocol but never sends anything.
    Silent,
    /// Byzantine: every PRE-PREPARE, PREPARE, COMMIT and CHECKPOINT it sends carries a wrong
    /// digest, every REPLY a wrong result.
    WrongDigest,
    /// Byzantine: as primary it sends half of the backups a pre-prepare for the request and the
    /// other half a pre-prepare for the null request, at the same n, and casts no commit for
    /// either. As a backup it is honest.
    Equivocate,
    /// Byzantine, one of a coalition: as primary it equivocates like [`Fault::Equivocate`]; as
    /// any replica it sends PREPARE and COMMIT for every digest it sees at any n (in
    /// pre-prepares, prepares, commits), so that conflicting requests each find a quorum.
    Collude,
    /// Honest, but every message it sends is delayed by `ms` more.
    Delay {
        /// The extra delay of each message, ms.
        ms: f64,
    },
}

impl Fault {
    /// The extra delay of a message the replica sends at `now_ms`, or `None` when it sends
    /// nothing (silent, crashed).
    pub fn send_delay(&self, now_ms: f64) -> Option<f64> {
        match *self {
            Fault::Silent => None,
            Fault::Crash { at_ms } if now_ms >= at_ms => None,
            Fault::Delay { ms } => Some(ms),
            _ => Some(0.0),
        }
    }

    /// Whether the replica has stopped (crashed) by `now_ms`: it then receives nothing and its
    /// timers do not fire.
    pub fn is_down(&self, now_ms: f64) -> bool {
        matches!(*self, Fault::Crash { at_ms } if now_ms >= at_ms)
    }

    /// When the replica crashes, if it does.
    pub fn crash_at(&self) -> Option<f64> {
        match *self {
            Fault::Crash { at_ms } => Some(at_ms),
            _ => None,
        }
    }

    /// Whether it may send what the protocol forbids; such replicas are left out of the safety
    /// check (crashed, silent and slow replicas are not).
    pub fn is_byzantine(&self) -> bool {
        matches!(
            self,
            Fault::WrongDigest | Fault::Equivocate | Fault::Collude
        )
    }

    pub(super) fn behaviour(&self) -> Behaviour {
        match self {
            Fault::WrongDigest => Behaviour::WrongDigest,
            Fault::Equivocate => Behaviour::Equivocate,
            Fault::Collude => Behaviour::Collude,
            _ => Behaviour::Honest,
        }
    }
}

const FAULT_FORMS: &str =
    "none, crash, crash@MS, silent, wrong-digest, equivocate, collude or delay:MS";

/// Why a text is not a [`Fault`]; the message lists the accepted forms.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FaultParseError {
    /// `crash@MS` or `delay:MS` with an MS that is not a finite number ≥ 0.
    #[error(
        "fault {input:?}: {value:?} is not a time in ms (a number ≥ 0); accepted forms: {}",
        FAULT_FORMS
    )]
    Time {
        /// The whole text given.
        input: String,
        /// The part after `@` or `:`.
        value: String,
    },
    /// None of the accepted forms.
    #[error("unknown fault {input:?}: accepted forms are {}", FAULT_FORMS)]
    Unknown {
        /// The text given.
        input: String,
    },
}

impl FromStr for Fault {
    type Err = FaultParseError;

    /// `none`, `crash` (at 0 ms), `crash@500`, `silent`, `wrong-digest`, `equivocate`,
    /// `collude`, `delay:200`.
    fn from_str(s: &str) -> Result<Fault, FaultParseError> {
        let t = s.trim().to_ascii_lowercase();
        let ms = |v: &str| -> Result<f64, FaultParseError> {
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                _ => Err(FaultParseError::Time {
                    input: s.to_string(),
                    value: v.to_string(),
                }),
            }
        };
        match t.as_str() {
            "none" | "honest" => Ok(Fault::None),
            "crash" => Ok(Fault::Crash { at_ms: 0.0 }),
            "silent" => Ok(Fault::Silent),
            "wrong-digest" => Ok(Fault::WrongDigest),
            "equivocate" => Ok(Fault::Equivocate),
            "collude" => Ok(Fault::Collude),
            _ => {
                if let Some(v) = t.strip_prefix("crash@") {
                    Ok(Fault::Crash { at_ms: ms(v)? })
                } else if let Some(v) = t.strip_prefix("delay:") {
                    Ok(Fault::Delay { ms: ms(v)? })
                } else {
                    Err(FaultParseError::Unknown {
                        input: s.to_string(),
                    })
                }
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => write!(f, "none"),
            Fault::Crash { at_ms } => write!(f, "crash@{at_ms}"),
            Fault::Silent => write!(f, "silent"),
            Fault::WrongDigest => write!(f, "wrong-digest"),
            Fault::Equivocate => write!(f, "equivocate"),
            Fault::Collude => write!(f, "collude"),
            Fault::Delay { ms } => write!(f, "delay:{ms}"),
        }
    }
}

/// What a replica's state machine does differently (the network faults are the drivers').
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Behaviour {
    Honest,
    WrongDigest,
    Equivocate,
    Collude,
}

/// One PBFT run, simulated or live.
#[derive(Clone, Debug, PartialEq)]
pub struct PbftParams {
    /// Replicas, N.
    pub n: usize,
    /// The fault of each replica (length N).
    pub faults: Vec<Fault>,
    /// Quorum size Q; `None` for [`default_quorum`] (2f + 1 when N = 3f + 1).
    pub quorum: Option<usize>,
    /// Executions between checkpoints, k.
    pub checkpoint_interval: u64,
    /// Sequence numbers a replica accepts above its low water mark, L (at least k; 2k in the
    /// paper).
    pub window: u64,
    /// Closed-loop clients, one request outstanding each.
    pub clients: usize,
    /// Requests issued in all, across the clients.
    pub requests: u64,
    /// Seeds the link delays (sim) and the keys (both).
    pub seed: u64,
    /// Sim: the fixed part of every link's delay, ms.
    pub link_delay_ms: f64,
    /// Sim: the mean of the exponential jitter added to each message's delay, ms.
    pub jitter_ms: f64,
    /// A replica's view-change timer (doubled at each expiry), and a client's wait before it
    /// sends its request to all replicas (doubled at each retry, up to 8×), ms.
    pub view_change_timeout_ms: f64,
    /// The run stops here, finished or not, ms (virtual in the sim, real live).
    pub time_limit_ms: f64,
}

impl Default for PbftParams {
    fn default() -> PbftParams {
        PbftParams::with_replicas(4)
    }
}

impl PbftParams {
    /// The defaults with `n` honest replicas: k = 16, L = 32, 2 clients, 100 requests, 10 ms
    /// links with 2 ms mean jitter, 500 ms view-change timeout, 60 s limit, seed 1.
    pub fn with_replicas(n: usize) -> PbftParams {
        PbftParams {
            n,
            faults: vec![Fault::None; n],
            quorum: None,
            checkpoint_interval: 16,
            window: 32,
            clients: 2,
            requests: 100,
            seed: 1,
            link_delay_ms: 10.0,
            jitter_ms: 2.0,
            view_change_timeout_ms: 500.0,
            time_limit_ms: 60_000.0,
        }
    }

    /// f = ⌊(N − 1)/3⌋, the Byzantine replicas N tolerates.
    pub fn f(&self) -> usize {
        self.n.saturating_sub(1) / 3
    }

    /// Q: the override or [`default_quorum`].
    pub fn quorum_size(&self) -> usize {
        self.quorum.unwrap_or_else(|| default_quorum(self.n))
    }

    /// Checks the parameters; the error names the field and the accepted range.
    pub fn check(&self) -> Result<(), ParamsError> {
        if self.n < 1 || self.n > MAX_REPLICAS {
            return Err(ParamsError::Replicas(self.n));
        }
        if self.faults.len() != self.n {
            return Err(ParamsError::Faults {
                given: self.faults.len(),
                n: self.n,
            });
        }
        let q = self.quorum_size();
        if q < 1 || q > self.n {
            return Err(ParamsError::Quorum {
                quorum: q,
                n: self.n,
            });
        }
        if self.checkpoint_interval < 1 {
            return Err(ParamsError::CheckpointInterval);
        }
        if self.window < self.checkpoint_interval {
            return Err(ParamsError::WindowBelowInterval {
                window: self.window,
                k: self.checkpoint_interval,
            });
        }
        if self.window > MAX_WINDOW {
            return Err(ParamsError::WindowTooLarge(self.window));
        }
        if self.clients < 1 || self.clients > MAX_CLIENTS {
            return Err(ParamsError::Clients(self.clients));
        }
        let ms = |name: &str, x: f64, positive: bool| -> Result<(), ParamsError> {
            if !x.is_finite() || x < 0.0 || (positive && x == 0.0) {
                return Err(ParamsError::Time {
                    name: name.to_string(),
                    value: x,
                    positive,
                });
            }
            Ok(())
        };
        ms("link delay (ms)", self.link_delay_ms, false)?;
        ms("jitter (ms)", self.jitter_ms, false)?;
        ms(
            "view-change timeout (ms)",
            self.view_change_timeout_ms,
            true,
        )?;
        ms("time limit (ms)", self.time_limit_ms, true)?;
        for (i, f) in self.faults.iter().enumerate() {
            match *f {
                Fault::Crash { at_ms } => ms(&format!("replica {i}'s crash time"), at_ms, false)?,
                Fault::Delay { ms: d } => ms(&format!("replica {i}'s delay"), d, false)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// The largest window L [`PbftParams::check`] accepts: 2^20 sequence numbers.
const MAX_WINDOW: u64 = 1 << 20;

/// Which parameter of a [`PbftParams`] is out of range, and the range (from
/// [`PbftParams::check`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// The replica count N is 0 or above 256.
    #[error("replicas n = {0}: must be between 1 and {max}", max = MAX_REPLICAS)]
    Replicas(usize),
    /// The fault list does not hold one fault per replica.
    #[error("{given} faults given for n = {n} replicas: give one per replica")]
    Faults {
        /// Faults in the list.
        given: usize,
        /// Replicas.
        n: usize,
    },
    /// The quorum Q is 0 or above N.
    #[error("quorum {quorum}: must be between 1 and n = {n}")]
    Quorum {
        /// The quorum asked for.
        quorum: usize,
        /// Replicas.
        n: usize,
    },
    /// The checkpoint interval k is 0.
    #[error("checkpoint interval k = 0: must be at least 1")]
    CheckpointInterval,
    /// The window L is below the checkpoint interval k, so the low water mark could not move.
    #[error("window L = {window} is below the checkpoint interval k = {k}: the low water mark could never move (use L ≥ k, e.g. 2k)")]
    WindowBelowInterval {
        /// The window L.
        window: u64,
        /// The checkpoint interval k.
        k: u64,
    },
    /// The window L is above 2^20.
    #[error("window L = {0}: at most 2^20")]
    WindowTooLarge(u64),
    /// The client count is 0 or above 4,096.
    #[error("clients = {0}: must be between 1 and {max}", max = MAX_CLIENTS)]
    Clients(usize),
    /// A time in ms (delay, jitter, timeout, a replica's crash or delay) is not finite, is
    /// negative, or is 0 where it must be positive.
    #[error("{name} = {value}: must be a finite number {}", if *.positive { "> 0" } else { "≥ 0" })]
    Time {
        /// Which time, as the message names it (`jitter (ms)`, `replica 2's delay`).
        name: String,
        /// The value given.
        value: f64,
        /// Whether it must be above 0 (else at least 0).
        positive: bool,
    },
}

/// The default quorum for N replicas: ⌈(N + f + 1)/2⌉ with f = ⌊(N − 1)/3⌋, which is the
/// paper's 2f + 1 when N = 3f + 1 and otherwise the smallest size for which any two quorums
/// share f + 1 replicas (2f + 1 alone would not, e.g. at N = 5: two quorums of 3 share one
/// replica, which may be the faulty one).
pub fn default_quorum(n: usize) -> usize {
    let f = n.saturating_sub(1) / 3;
    (n + f + 2) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print() {
        for (s, f) in [
            ("none", Fault::None),
            ("crash", Fault::Crash { at_ms: 0.0 }),
            ("crash@500", Fault::Crash { at_ms: 500.0 }),
            ("silent", Fault::Silent),
            ("wrong-digest", Fault::WrongDigest),
            ("equivocate", Fault::Equivocate),
            ("collude", Fault::Collude),
            ("delay:200", Fault::Delay { ms: 200.0 }),
        ] {
            assert_eq!(s.parse::<Fault>(), Ok(f));
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f));
        }
        for bad in ["lie", "crash@", "crash@-1", "delay:x", "delay:inf"] {
            let e = bad.parse::<Fault>().expect_err(bad);
            let e = e.to_string();
            assert!(e.contains("wrong-digest") && e.contains("delay:MS"), "{e}");
        }
    }

    #[test]
    fn params_check_names_the_problem() {
        let ok = PbftParams::default();
        assert_eq!(ok.check(), Ok(()));
        let cases: Vec<(PbftParams, &str)> = vec![
            (
                PbftParams {
                    n: 0,
                    faults: vec![],
                    ..ok.clone()
                },
                "replicas",
            ),
            (
                PbftParams {
                    faults: vec![Fault::None; 3],
                    ..ok.clone()
                },
                "faults",
            ),
            (
                PbftParams {
                    quorum: Some(5),
                    ..ok.clone()
                },
                "quorum",
            ),
            (
                PbftParams {
                    quorum: Some(0),
                    ..ok.clone()
                },
                "quorum",
            ),
            (
                PbftParams {
                    checkpoint_interval: 0,
                    ..ok.clone()
                },
                "checkpoint interval",
            ),
            (
                PbftParams {
                    window: 8,
                    ..ok.clone()
                },
                "window",
            ),
            (
                PbftParams {
                    clients: 0,
                    ..ok.clone()
                },
                "clients",
            ),
            (
                PbftParams {
                    view_change_timeout_ms: 0.0,
                    ..ok.clone()
                },
                "timeout",
            ),
            (
                PbftParams {
                    jitter_ms: f64::NAN,
                    ..ok.clone()
                },
                "jitter",
            ),
        ];
        for (p, word) in cases {
            let e = p.check().expect_err(word);
            assert!(e.to_string().contains(word), "{e:?} should name {word}");
        }
    }

    #[test]
    fn default_quorum_is_2f_plus_1_at_3f_plus_1_and_intersects_in_f_plus_1() {
        for f in 0..6 {
            assert_eq!(default_quorum(3 * f + 1), 2 * f + 1);
        }
        for n in 1..40 {
            let (q, f) = (default_quorum(n), (n - 1) / 3);
            assert!(2 * q > n + f, "n {n}: two quorums share f + 1 replicas");
            assert!(q <= n - f, "n {n}: live with f silent");
        }
    }
}
