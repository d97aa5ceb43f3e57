//! `miner node`: the local chain served over Bitcoin Core's JSON-RPC (HTTP, Basic auth) on
//! loopback, with getblocktemplate (BIP 22, longpoll) and submitblock (BIP 22 answers).

mod rpc;

pub use rpc::{NodeState, RpcError};

use base64::Engine;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest request body accepted (a 1 MB block is 2 MB of hex).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Requests handled at once; more get 503.
pub const MAX_CONCURRENT: usize = 64;

/// Who may call.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
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
    pub fn line(&self) -> String {
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

    fn matches(&self, header: &str) -> bool {
        let Some(encoded) = header.strip_prefix("Basic ") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
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

/// A running server.
pub struct Server {
    http: Arc<tiny_http::Server>,
    state: Arc<NodeState>,
    credentials: Credentials,
    cookie_file: Option<PathBuf>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {0}: {1} (is another node running? pick another --rpcport)")]
    Bind(SocketAddr, String),
    #[error("cannot write the cookie file {0}: {1}")]
    Cookie(PathBuf, std::io::Error),
}

impl Server {
    /// Binds `addr`; with `cookie_file`, writes the credentials there (removed on shutdown).
    pub fn bind(
        addr: SocketAddr,
        state: Arc<NodeState>,
        credentials: Credentials,
        cookie_file: Option<PathBuf>,
    ) -> Result<Server, ServeError> {
        let http =
            tiny_http::Server::http(addr).map_err(|e| ServeError::Bind(addr, e.to_string()))?;
        if let Some(path) = &cookie_file {
            write_private(path, &credentials.line())
                .map_err(|e| ServeError::Cookie(path.clone(), e))?;
        }
        Ok(Server {
            http: Arc::new(http),
            state,
            credentials,
            cookie_file,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.http.server_addr().to_ip()
    }

    /// Serves until `stop` is raised (by a signal or the `stop` method).
    pub fn run(self, stop: Arc<AtomicBool>) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        while !stop.load(Ordering::SeqCst) && !self.state.stopping() {
            let request = match self.http.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(_) => break,
            };
            if in_flight.load(Ordering::SeqCst) >= MAX_CONCURRENT {
                let _ = request.respond(tiny_http::Response::empty(503));
                continue;
            }
            in_flight.fetch_add(1, Ordering::SeqCst);
            let (state, credentials, in_flight) = (
                self.state.clone(),
                self.credentials.clone(),
                in_flight.clone(),
            );
            workers.push(std::thread::spawn(move || {
                handle(request, &state, &credentials);
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }));
            workers.retain(|w| !w.is_finished());
        }
        self.state.shut_down();
        for w in workers {
            let _ = w.join();
        }
        if let Some(path) = &self.cookie_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes a file readable by the owner only.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    std::io::Write::write_all(&mut options.open(path)?, content.as_bytes())
}

fn json_response(status: u16, body: String) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
        .expect("static header is valid");
    tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(header)
}

fn handle(mut request: tiny_http::Request, state: &NodeState, credentials: &Credentials) {
    let authorized = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .is_some_and(|h| credentials.matches(h.value.as_str()));
    if !authorized {
        let header = tiny_http::Header::from_bytes(
            &b"WWW-Authenticate"[..],
            &b"Basic realm=\"jsonrpc\""[..],
        )
        .expect("static header is valid");
        let _ = request.respond(tiny_http::Response::empty(401).with_header(header));
        return;
    }
    if request.method() != &tiny_http::Method::Post {
        let _ = request.respond(json_response(
            405,
            r#"{"error":"JSON-RPC uses POST"}"#.into(),
        ));
        return;
    }
    if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        let _ = request.respond(tiny_http::Response::empty(413));
        return;
    }
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body);
    if read.is_err() {
        let _ = request.respond(tiny_http::Response::empty(400));
        return;
    }
    if body.len() > MAX_BODY_BYTES {
        let _ = request.respond(tiny_http::Response::empty(413));
        return;
    }
    let (status, reply) = rpc::dispatch(state, &body);
    let _ = request.respond(json_response(status, reply));
}
