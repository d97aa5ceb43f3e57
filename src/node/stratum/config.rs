//! The Stratum server's settings: who may mine ([`Auth`]) and the limits and defaults
//! ([`Config`]), each a `miner node` flag or a documented constant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Who may mine (`--stratum-auth`).
#[derive(Clone)]
pub enum Auth {
    /// Any user name and password.
    Any,
    /// These `user → password` pairs (the RPC credentials, or a file of `user:password` lines).
    Users(HashMap<String, String>),
}

/// Names the users, never their passwords.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Any => write!(f, "Any"),
            Auth::Users(users) => write!(f, "Users({} users)", users.len()),
        }
    }
}

impl Auth {
    pub(super) fn allows(&self, user: &str, password: &str) -> bool {
        match self {
            Auth::Any => true,
            Auth::Users(users) => users.get(user).is_some_and(|p| {
                p.len() == password.len()
                    && p.bytes()
                        .zip(password.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }),
        }
    }

    /// Reads a file of `user:password` lines (blank lines and `#` comments skipped).
    pub fn from_file(path: &Path) -> Result<Auth, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, password) = line.split_once(':').ok_or_else(|| AuthFileError::Line {
                path: path.to_path_buf(),
                line: n + 1,
            })?;
            users.insert(user.to_string(), password.to_string());
        }
        if users.is_empty() {
            return Err(AuthFileError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Auth::Users(users))
    }
}

/// Why [`Auth::from_file`] found no users. The messages name the file; a read error's own
/// text is its `source`, not repeated here.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// The file could not be read.
    #[error("cannot read the Stratum user file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A line (not blank, not a `#` comment) without a `:`.
    #[error("{} line {line}: expected user:password", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line's number, counting from 1.
        line: usize,
    },
    /// No `user:password` line at all: no miner could log in.
    #[error("{}: no user:password lines, so no miner could log in", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The Stratum server's settings; each is a `miner node` flag or a documented constant.
#[derive(Debug)]
pub struct Config {
    /// The bound socket miners connect to (`--stratum [ADDR:]PORT`).
    pub listener: std::net::TcpListener,
    /// Who may mine (`--stratum-auth`).
    pub auth: Auth,
    /// Initial share difficulty of a connection.
    pub difficulty: f64,
    /// Vardiff floor.
    pub min_difficulty: f64,
    /// Vardiff ceiling (a connection's difficulty is also never above the network's).
    pub max_difficulty: f64,
    /// Target time between shares of one connection (vardiff).
    pub share_interval: Duration,
    /// Output script the coinbase of Stratum-mined blocks pays.
    pub payout: bitcoin::ScriptBuf,
    /// Miners connected at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// Bytes of one JSON line; a longer line closes the connection.
    pub max_line_bytes: usize,
    /// Time from connecting to a subscribed and authorized session.
    pub handshake_timeout: Duration,
    /// Time a connection may send nothing before it is closed.
    pub idle_timeout: Duration,
    /// Lines queued for a miner that is not reading; past it the miner is dropped.
    pub write_queue: usize,
    /// Time between refreshed (not clean) jobs on an unchanged tip.
    pub refresh: Duration,
}

impl Config {
    /// The defaults for a bound listener.
    pub fn new(listener: std::net::TcpListener, payout: bitcoin::ScriptBuf) -> Config {
        Config {
            listener,
            auth: Auth::Any,
            difficulty: 1.0,
            min_difficulty: 0.001,
            max_difficulty: 1e15,
            share_interval: Duration::from_secs(5),
            payout,
            max_connections: 20_000,
            max_line_bytes: MAX_LINE_BYTES,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            write_queue: 256,
            refresh: Duration::from_secs(30),
        }
    }

    /// The address miners connect to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Longest JSON line accepted (16 KiB).
pub(crate) const MAX_LINE_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23 item 3: `Auth::from_file`'s typed errors read as the strings they replace; a
    /// read error's text is the source's, shown once in the chain (as `miner node` prints it).
    #[test]
    fn auth_file_errors_name_the_file_and_keep_the_read_error_as_source() {
        let dir = std::env::temp_dir().join(format!("miner-auth-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing");
        let e = Auth::from_file(&missing).unwrap_err();
        let io = std::fs::read_to_string(&missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot read the Stratum user file {}", missing.display())
        );
        assert_eq!(
            std::error::Error::source(&e).map(|s| s.to_string()),
            Some(io.to_string())
        );

        let bad = dir.join("bad");
        std::fs::write(&bad, "# users\n\nalice:secret\nbob\n").unwrap();
        let e = Auth::from_file(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{} line 4: expected user:password", bad.display())
        );
        assert!(std::error::Error::source(&e).is_none());

        let empty = dir.join("empty");
        std::fs::write(&empty, "# nobody\n").unwrap();
        let e = Auth::from_file(&empty).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: no user:password lines, so no miner could log in",
                empty.display()
            )
        );

        let good = dir.join("good");
        std::fs::write(&good, "alice:secret\n").unwrap();
        assert!(Auth::from_file(&good).unwrap().allows("alice", "secret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
