//! The node's HTTP edge: one tokio runtime owns every socket, hyper's HTTP/1 server parses, and
//! each limit is answered the HTTP way (431, 413, 408, a closed connection past the connection
//! limit). The JSON-RPC methods stay synchronous (`rpc::dispatch`) and run on tokio's blocking
//! pool, so hashing (`generatetoaddress`) and store writes (`submitblock`) never hold an async
//! worker; a longpoll is an async wait on the tip watch that holds no thread at all.

use super::p2p::Peers;
use super::rpc::{dispatch, longpoll_id, Context, Counters};
use super::state::NodeState;
use super::{Credentials, MAX_BODY_BYTES};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

/// The server's limits; each is a `miner node` flag.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// Longpolls waiting at once; past it a longpoll is answered at once with the current
    /// template (so submitblock and queries are always served).
    pub max_longpolls: usize,
    /// Bytes of a request line and headers (at least 8192, hyper's floor); past it: 431.
    pub max_header_bytes: usize,
    /// Bytes of a request body; past it: 413.
    pub max_body_bytes: usize,
    /// Time to receive a request's headers, from when the server starts waiting for them; past
    /// it: 408 and the connection closed.
    pub header_timeout: Duration,
    /// Time to receive a request's body once its headers are in; past it: 408.
    pub body_timeout: Duration,
    /// Time a kept-alive connection may sit idle between requests before it is closed.
    pub idle_timeout: Duration,
    /// Delay before a failed authentication is answered (Bitcoin Core: 250 ms).
    pub auth_failure_delay: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            max_longpolls: 256,
            max_header_bytes: 16 * 1024,
            max_body_bytes: MAX_BODY_BYTES,
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(15),
            auth_failure_delay: Duration::from_millis(250),
        }
    }
}

/// The HTTP edge's counters, reported by `getnodestats` under these names.
#[derive(Default, Debug)]
pub(crate) struct HttpStats {
    /// Connections open now.
    pub(crate) connections_open: AtomicU64,
    /// Connections accepted since start.
    pub(crate) connections_total: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub(crate) connections_refused: AtomicU64,
    /// Failed accepts (EMFILE, ENFILE, ...).
    pub(crate) accept_errors: AtomicU64,
    /// Requests received.
    pub(crate) requests: AtomicU64,
    /// Requests without valid credentials (answered 401 after `auth_failure_delay`).
    pub(crate) auth_failures: AtomicU64,
    /// Requests whose body was over `max_body_bytes` (413).
    pub(crate) bodies_too_large: AtomicU64,
    /// Requests whose headers or body did not arrive in time (408).
    pub(crate) request_timeouts: AtomicU64,
    /// Longpolls waiting now.
    pub(crate) longpolls_active: AtomicU64,
    /// Longpolls answered at once because `max_longpolls` were waiting.
    pub(crate) longpolls_refused: AtomicU64,
}

impl HttpStats {
    /// Adds one to a counter.
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counters for HttpStats {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("connections_open", get(&self.connections_open)),
            ("connections_total", get(&self.connections_total)),
            ("connections_refused", get(&self.connections_refused)),
            ("accept_errors", get(&self.accept_errors)),
            ("requests", get(&self.requests)),
            ("auth_failures", get(&self.auth_failures)),
            ("bodies_too_large", get(&self.bodies_too_large)),
            ("request_timeouts", get(&self.request_timeouts)),
            ("longpolls_active", get(&self.longpolls_active)),
            ("longpolls_refused", get(&self.longpolls_refused)),
        ]
    }
}

/// hyper's smallest read buffer, hence the smallest header limit.
const MIN_HEADER_BYTES: usize = 8192;
/// Pause after a failed accept (EMFILE, ENFILE, ...), so a full file table is not spun on.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A bound server, not yet serving.
pub struct Server {
    listener: std::net::TcpListener,
    state: Arc<NodeState>,
    credentials: Credentials,
    cookie_file: Option<PathBuf>,
    limits: Limits,
    p2p: Option<super::p2p::Config>,
    stratum: Option<super::stratum::Config>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound: the address and the OS's reason.
    #[error("cannot listen on {0}: {1} (is another node running? pick another --rpcport)")]
    Bind(SocketAddr, String),
    /// The cookie file could not be written: its path and the I/O error.
    #[error("cannot write the cookie file {0}: {1}")]
    Cookie(PathBuf, std::io::Error),
    /// The credentials' password is empty.
    #[error("an empty RPC password is refused: give --rpcpassword a value, or leave out --rpcuser/--rpcpassword to use a cookie file")]
    EmptyPassword,
}

impl Server {
    /// Binds `addr`; with `cookie_file`, writes the credentials there (removed on shutdown).
    pub fn bind(
        addr: SocketAddr,
        state: Arc<NodeState>,
        credentials: Credentials,
        cookie_file: Option<PathBuf>,
    ) -> Result<Server, ServeError> {
        if credentials.password.is_empty() {
            return Err(ServeError::EmptyPassword);
        }
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| ServeError::Bind(addr, e.to_string()))?;
        if let Some(path) = &cookie_file {
            write_private(path, &credentials.line())
                .map_err(|e| ServeError::Cookie(path.clone(), e))?;
        }
        Ok(Server {
            listener,
            state,
            credentials,
            cookie_file,
            limits: Limits::default(),
            p2p: None,
            stratum: None,
        })
    }

    /// Also speaks Bitcoin's P2P protocol (`--listen`, `--connect`) on the same runtime.
    pub fn with_p2p(mut self, config: super::p2p::Config) -> Server {
        self.p2p = Some(config);
        self
    }

    /// Replaces the default limits.
    pub fn with_limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Also serves Stratum v1 miners (`--stratum`) on the same runtime; HTTP replies then carry
    /// `X-Stratum: stratum+tcp://ADDR:PORT`.
    pub fn with_stratum(mut self, config: super::stratum::Config) -> Server {
        self.stratum = Some(config);
        self
    }

    /// Serves until `stop` is raised (by a signal) or the `stop` RPC is called.
    pub fn run(self, stop: Arc<AtomicBool>) {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("miner-node")
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the async runtime");
                self.state.shut_down();
                return;
            }
        };
        let Server {
            listener,
            state,
            credentials,
            cookie_file,
            limits,
            p2p,
            stratum,
        } = self;
        let stats = Arc::new(HttpStats::default());
        let rpc = Arc::new(Context {
            state: state.clone(),
            peers: Arc::new(Peers::default()),
            stratum: std::sync::OnceLock::new(),
            transport: Some(stats.clone()),
        });
        if let Some(config) = p2p {
            let _guard = runtime.enter();
            super::p2p::spawn(config, state.clone(), rpc.peers.clone(), stop.clone());
        }
        let stratum_at = stratum.as_ref().and_then(|c| c.local_addr());
        let stratum_task = stratum.map(|config| {
            let _guard = runtime.enter();
            super::stratum::spawn(config, state.clone(), stop.clone(), &rpc.stratum)
        });
        let shared = Arc::new(Shared {
            longpolls: Arc::new(Semaphore::new(limits.max_longpolls)),
            state,
            rpc,
            stats,
            credentials,
            limits,
            stratum_at,
        });
        runtime.block_on(serve(shared.clone(), listener, stop));
        if let Some(task) = stratum_task {
            // Every miner is told client.reconnect before the runtime goes.
            runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
            });
        }
        runtime.shutdown_timeout(Duration::from_secs(2));
        if let Some(path) = &cookie_file {
            // Remove the cookie only if it is still ours.
            let ours = std::fs::read_to_string(path)
                .is_ok_and(|text| text.trim() == shared.credentials.line());
            if ours {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// What every connection task shares.
struct Shared {
    state: Arc<NodeState>,
    /// What the RPC methods answer from.
    rpc: Arc<Context>,
    stats: Arc<HttpStats>,
    credentials: Credentials,
    limits: Limits,
    longpolls: Arc<Semaphore>,
    /// Where Stratum miners connect, when `--stratum` listens (the `X-Stratum` header).
    stratum_at: Option<SocketAddr>,
}

/// Adds one to a gauge for as long as it lives.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU64) -> Gauge<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(shared: Arc<Shared>, listener: std::net::TcpListener, stop: Arc<AtomicBool>) {
    let state = shared.state.clone();
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listening socket");
            state.shut_down();
            return;
        }
    };
    let max = shared.limits.max_connections;
    let connections = Arc::new(Semaphore::new(max));
    let (shutdown, shutdown_seen) = watch::channel(false);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = connections.clone().try_acquire_owned() else {
                        HttpStats::bump(&shared.stats.connections_refused);
                        tracing::warn!(%peer, limit = max, "connection limit reached: connection closed");
                        drop(stream);
                        continue;
                    };
                    let (shared, shutdown_seen) = (shared.clone(), shutdown_seen.clone());
                    tokio::spawn(async move {
                        connection(&shared, stream, peer, shutdown_seen).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    HttpStats::bump(&shared.stats.accept_errors);
                    tracing::warn!(error = %e, "accept failed; retrying in {} ms", ACCEPT_BACKOFF.as_millis());
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = tick.tick() => {
                if stop.load(Ordering::SeqCst) || state.stopping() {
                    break;
                }
            }
        }
    }
    drop(listener);
    state.shut_down();
    let _ = shutdown.send(true);
    // Let in-flight replies (the `stop` call's own included) go out.
    let deadline = Instant::now() + Duration::from_secs(5);
    while connections.available_permits() < max && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// When the connection last started or finished a request, and how many are in flight.
struct Activity {
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
    opened: Instant,
}

impl Activity {
    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

async fn connection(
    shared: &Arc<Shared>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let stats = &shared.stats;
    let _open = Gauge::up(&stats.connections_open);
    HttpStats::bump(&stats.connections_total);
    let _ = stream.set_nodelay(true);
    // A Stratum address on all interfaces is named by the address this client reached.
    let x_stratum = shared.stratum_at.and_then(|mut at| {
        if at.ip().is_unspecified() {
            at.set_ip(stream.local_addr().ok()?.ip());
        }
        HeaderValue::from_str(&format!("stratum+tcp://{at}")).ok()
    });
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
        opened: Instant::now(),
    });
    let service = {
        let (shared, activity) = (shared.clone(), activity.clone());
        hyper::service::service_fn(move |request| {
            let (shared, activity, x_stratum) =
                (shared.clone(), activity.clone(), x_stratum.clone());
            async move {
                activity.in_flight.fetch_add(1, Ordering::SeqCst);
                activity.touch();
                let mut response = handle(&shared, request, peer).await;
                if let Some(value) = x_stratum {
                    response.headers_mut().insert("x-stratum", value);
                }
                activity.touch();
                activity.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let limits = &shared.limits;
    // Not pinned in place: on a header timeout the socket is taken back (`into_parts`) to
    // answer 408, which hyper does not send itself.
    let mut conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES))
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    let mut closing = false;
    let result = loop {
        // While a request runs (a longpoll, a long generatetoaddress) the connection is not
        // idle: look again an idle period later rather than at a deadline already past, which
        // would wake this loop without pause.
        let idle_at = if activity.in_flight.load(Ordering::SeqCst) > 0 {
            Instant::now() + limits.idle_timeout
        } else {
            activity.idle_deadline(limits.idle_timeout)
        };
        tokio::select! {
            result = &mut conn => break result,
            _ = tokio::time::sleep_until(idle_at), if !closing => {
                let idle = activity.in_flight.load(Ordering::SeqCst) == 0
                    && Instant::now() >= activity.idle_deadline(limits.idle_timeout);
                if idle {
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                    closing = true;
                }
            }
            _ = shutdown.changed(), if !closing => {
                std::pin::Pin::new(&mut conn).graceful_shutdown();
                closing = true;
            }
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            HttpStats::bump(&stats.request_timeouts);
            tracing::warn!(%peer, "request headers not received in {:?}: 408", limits.header_timeout);
            use tokio::io::AsyncWriteExt;
            let mut stream = conn.into_parts().io.into_inner();
            let answer = stream.write_all(
                b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            );
            let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
        } else if e.is_parse_too_large() {
            tracing::warn!(%peer, "request headers over {} bytes: 431", limits.max_header_bytes.max(MIN_HEADER_BYTES));
        } else {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn json_reply(status: u16, mut body: String) -> Response<Full<Bytes>> {
    // Bitcoin Core ends every JSON reply with a newline; clients that read by line need it.
    body.push('\n');
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = reply(status, body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A reply after which the connection is closed (the rest of the request was not read).
fn closing(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = reply(status, Bytes::new());
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let (stats, limits) = (&shared.stats, &shared.limits);
    HttpStats::bump(&stats.requests);
    let authorized = request
        .headers()
        .get(AUTHORIZATION)
        .is_some_and(|v| shared.credentials.matches(v.as_bytes()));
    if !authorized {
        HttpStats::bump(&stats.auth_failures);
        tracing::warn!(%peer, "authentication failed");
        // A fixed delay, as Core's, that holds no thread: guessing costs the guesser time.
        tokio::time::sleep(limits.auth_failure_delay).await;
        let mut response = reply(StatusCode::UNAUTHORIZED, Bytes::new());
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"jsonrpc\""),
        );
        return response;
    }
    if request.method() != Method::POST {
        return json_reply(405, r#"{"error":"JSON-RPC uses POST"}"#.into());
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match read_body(request.into_body(), declared, limits).await {
        Body::Complete(body) => body,
        Body::TooLarge => {
            HttpStats::bump(&stats.bodies_too_large);
            tracing::warn!(%peer, limit = limits.max_body_bytes, "request body too large: 413");
            return closing(StatusCode::PAYLOAD_TOO_LARGE);
        }
        Body::TimedOut => {
            HttpStats::bump(&stats.request_timeouts);
            tracing::warn!(%peer, "request body not received in {:?}: 408", limits.body_timeout);
            return closing(StatusCode::REQUEST_TIMEOUT);
        }
        Body::Broken => return closing(StatusCode::BAD_REQUEST),
    };
    if let Some(id) = longpoll_id(&body) {
        wait_for_new_tip(shared, &id, peer).await;
    }
    let rpc = shared.rpc.clone();
    let span = tracing::info_span!("rpc", %peer);
    match tokio::task::spawn_blocking(move || span.in_scope(|| dispatch(&rpc, &body))).await {
        Ok((status, body)) => json_reply(status, body),
        Err(e) => {
            tracing::error!(%peer, error = %e, "an RPC handler failed");
            json_reply(
                500,
                r#"{"result":null,"error":{"code":-1,"message":"internal error"},"id":null}"#
                    .into(),
            )
        }
    }
}

/// A request body as read.
enum Body {
    Complete(Bytes),
    TooLarge,
    TimedOut,
    Broken,
}

/// Bytes of an oversized body read and thrown away before the 413, so a client that sends its
/// whole body before reading (most do) gets the status instead of a reset connection.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
/// Time given to that draining.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads a body of at most `max_body_bytes` within `body_timeout`; past the size, what follows
/// is read and dropped (up to [`DRAIN_BYTES`] for [`DRAIN_TIME`]), never kept.
async fn read_body(mut body: Incoming, declared: Option<u64>, limits: &Limits) -> Body {
    let max = limits.max_body_bytes;
    let too_large = declared.is_some_and(|n| n > max as u64);
    if !too_large {
        let read = async {
            let mut data = Vec::with_capacity(declared.unwrap_or(0) as usize);
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Some(Body::Broken);
                };
                if let Ok(chunk) = frame.into_data() {
                    if data.len() + chunk.len() > max {
                        return None;
                    }
                    data.extend_from_slice(&chunk);
                }
            }
            Some(Body::Complete(data.into()))
        };
        match tokio::time::timeout(limits.body_timeout, read).await {
            Err(_) => return Body::TimedOut,
            Ok(Some(done)) => return done,
            Ok(None) => {} // over the limit: drain below
        }
    }
    let drain = async {
        let mut drained = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(chunk) = frame.into_data() {
                drained += chunk.len() as u64;
                if drained > DRAIN_BYTES {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    Body::TooLarge
}

/// Waits, holding no thread, until the tip differs from `longpollid`, the longpoll timeout
/// passes, or the node stops. When the client goes away hyper drops this future, ending the wait.
/// Past the longpoll limit it returns at once (the caller then answers with the current template).
async fn wait_for_new_tip(shared: &Shared, longpollid: &str, peer: SocketAddr) {
    let state = &shared.state;
    let Ok(_permit) = shared.longpolls.clone().try_acquire_owned() else {
        HttpStats::bump(&shared.stats.longpolls_refused);
        tracing::warn!(%peer, limit = shared.limits.max_longpolls, "longpoll limit reached: answered at once");
        return;
    };
    let _active = Gauge::up(&shared.stats.longpolls_active);
    let mut tip = state.watch_tip();
    let deadline = tokio::time::sleep(state.longpoll_timeout);
    tokio::pin!(deadline);
    loop {
        if *tip.borrow_and_update() != longpollid || state.stopping() {
            return;
        }
        tokio::select! {
            changed = tip.changed() => if changed.is_err() { return },
            _ = &mut deadline => return,
        }
    }
}

/// Writes a file readable by the owner only, atomically: a temporary file beside it (mode 0600
/// from creation), then a rename, so a reader sees the old content or the new, never a part,
/// and the mode is 0600 even where an older file had another.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cookie".into());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&temp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        std::io::Write::write_all(&mut file, content.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::write_private;

    #[test]
    fn cookie_rewrite_replaces_content_and_makes_an_old_0644_file_0600() {
        let dir = std::env::temp_dir().join(format!("miner-cookie-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(".cookie");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, "old:secret-that-is-longer").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        write_private(&path, "__cookie__:new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "__cookie__:new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
