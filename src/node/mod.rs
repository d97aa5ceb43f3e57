//! `miner node`: the local chain served over Bitcoin Core's JSON-RPC (HTTP, Basic auth) on
//! loopback, with getblocktemplate (BIP 22, longpoll) and submitblock (BIP 22 answers).

pub mod fds;
mod http;
pub mod p2p;
mod rpc;
pub(crate) mod state;
pub mod stratum;

/// For the fuzzing harnesses (`crate::fuzzing`): the RPC decoders without the HTTP server.
pub(crate) use http::HttpStats;
pub use http::{Limits, ServeError, Server};
pub(crate) use rpc::Context as RpcContext;
pub(crate) use rpc::{decode_block_hex, dispatch as rpc_dispatch, longpoll_id as rpc_longpoll_id};
pub use state::NodeState;

use base64::Engine;
use std::path::Path;

/// Largest request body accepted by default (a 1 MB block is 2 MB of hex).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Who may call: the one user name and password of HTTP Basic auth (`--rpcuser` /
/// `--rpcpassword`, or a random cookie). The Stratum server's `--stratum-auth rpc` takes the
/// same pair.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The user name (`__cookie__` for cookie credentials).
    pub user: String,
    /// The password; [`Server::bind`] refuses an empty one.
    pub password: String,
}

impl Credentials {
    /// Random cookie credentials, as bitcoind writes to `.cookie`.
    pub fn cookie() -> Credentials {
        let mut bytes = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
        Credentials {
            user: "__cookie__".into(),
            password: hex::encode(bytes),
        }
    }

    /// `user:password`, the cookie file's content.
    pub(crate) fn line(&self) -> String {
        format!("{}:{}", self.user, self.password)
    }

    /// Reads a cookie file (`user:password`).
    pub fn from_cookie_file(path: &Path) -> std::io::Result<Credentials> {
        let text = std::fs::read_to_string(path)?;
        let (user, password) = text.trim().split_once(':').ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "cookie file is not user:password",
            )
        })?;
        Ok(Credentials {
            user: user.into(),
            password: password.into(),
        })
    }

    /// Whether an `Authorization` header value carries these credentials (Basic auth).
    pub(crate) fn matches(&self, header: &[u8]) -> bool {
        let Some(encoded) = header.strip_prefix(b"Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii())
        else {
            return false;
        };
        // Compare the whole credential without an early exit on the first differing byte.
        let want = self.line().into_bytes();
        decoded.len() == want.len()
            && decoded
                .iter()
                .zip(&want)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}
