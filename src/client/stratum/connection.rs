//! One TCP connection to a pool: the reader thread, which decodes the pool's lines (through
//! the protocol's [`PoolLine`] and [`Notification`]), answers pings at once and passes the rest
//! on; the probe of a pool; and failback, the watch on the pools before the current one.

use super::url::PoolUrl;
use super::USER_AGENT;
use crate::stratum::{
    BadCall, ErrorCode, Notification, NotifyJob, PoolLine, Request, Response, StratumError,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest line accepted from a pool (a notify with a deep merkle branch is a few KiB).
const MAX_LINE: usize = 1 << 20;

/// A message from the pool, as the reader thread passes it on.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// `mining.notify`: the job, or why it does not decode.
    Notify(Result<NotifyJob, StratumError>),
    /// `mining.set_difficulty`, `mining.set_extranonce`, `mining.set_version_mask` or
    /// `client.reconnect`, decoded.
    Pool(Notification),
    /// One of those whose params do not decode.
    Ignored(BadCall),
    Note(String),
    Reply {
        id: u64,
        response: Response,
    },
    Closed(String),
}

/// One TCP connection to a pool and its reader thread: the client's side.
pub(super) struct PoolConn {
    stream: TcpStream,
    pub(super) writer: Arc<Mutex<TcpStream>>,
    pub(super) rx: Receiver<Incoming>,
    /// Raised by the reader on a clean job, a new difficulty, extranonce or mask, a reconnect
    /// request and a closed connection: the backend's cancel flag.
    pub(super) abort: Arc<AtomicBool>,
    pub(super) next_id: u64,
    reader: Option<JoinHandle<()>>,
    last_message: Arc<Mutex<Instant>>,
}

fn connect(host: &str, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{host} resolves to no address"),
    );
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn write_line(writer: &Mutex<TcpStream>, line: &str) -> std::io::Result<()> {
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    w.write_all(line.as_bytes())?;
    w.flush()
}

impl PoolConn {
    pub(super) fn open(host: &str, port: u16) -> std::io::Result<PoolConn> {
        let stream = connect(host, port, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let writer = Arc::new(Mutex::new(stream.try_clone()?));
        let read_half = stream.try_clone()?;
        let (tx, rx) = mpsc::channel();
        let abort = Arc::new(AtomicBool::new(false));
        let last_message = Arc::new(Mutex::new(Instant::now()));
        let reader = {
            let (writer, abort, last) = (writer.clone(), abort.clone(), last_message.clone());
            std::thread::Builder::new()
                .name("stratum-reader".into())
                .spawn(move || read_loop(read_half, &writer, &tx, &abort, &last))?
        };
        Ok(PoolConn {
            stream,
            writer,
            rx,
            abort,
            next_id: 1,
            reader: Some(reader),
            last_message,
        })
    }

    /// Sends the request `make` builds for the next id; that id.
    pub(super) fn send(&mut self, make: impl FnOnce(Value) -> Request) -> std::io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        write_line(&self.writer, &make(Value::from(id)).to_line())?;
        Ok(id)
    }

    pub(super) fn idle(&self) -> Duration {
        self.last_message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }
}

impl Drop for PoolConn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn read_loop(
    stream: TcpStream,
    writer: &Mutex<TcpStream>,
    tx: &Sender<Incoming>,
    abort: &AtomicBool,
    last: &Mutex<Instant>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let why = loop {
        let room = (MAX_LINE + 1).saturating_sub(line.len()) as u64;
        match (&mut reader).take(room).read_until(b'\n', &mut line) {
            Ok(0) => break "the pool closed the connection".to_string(),
            Ok(_) if line.last() != Some(&b'\n') => {
                if line.len() > MAX_LINE {
                    break format!("the pool sent a line over {MAX_LINE} bytes");
                }
            }
            Ok(_) => {
                *last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                let routed = route_line(&line);
                line.clear();
                if !deliver(routed, writer, tx, abort) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break format!("reading from the pool failed: {e}"),
        }
    };
    let _ = tx.send(Incoming::Closed(why));
    abort.store(true, Ordering::SeqCst);
}

/// What the client does with one line from the pool: pass a message on to the mining side
/// (`cancels`: and raise the abort flag), answer the pool at once, or nothing.
#[derive(Debug)]
pub(crate) enum Routed {
    Pass(Incoming, bool),
    Answer(Value),
    Ignore,
}

/// Decodes one line from the pool (its bytes as read, newline included) into what the client
/// does with it: the whole of the client's parsing of pool input before the session's handling
/// (through the protocol's [`PoolLine`] and [`Notification`]), kept free of I/O so it can be
/// fuzzed (`crate::fuzzing`).
pub(crate) fn route_line(line: &[u8]) -> Routed {
    match PoolLine::parse(line) {
        PoolLine::Blank => Routed::Ignore,
        PoolLine::NotJson(shown) => Routed::Pass(
            Incoming::Note(format!("the pool sent a line that is not JSON: {shown}")),
            false,
        ),
        PoolLine::Reply(response) => match response.id.as_u64() {
            Some(id) => Routed::Pass(Incoming::Reply { id, response }, false),
            None => Routed::Ignore,
        },
        PoolLine::Call { id, method, params } => route_call(&id, &method, &params),
    }
}

/// Routes one method call from the pool (see [`route_line`]).
fn route_call(id: &Value, method: &str, params: &Value) -> Routed {
    let Some(decoded) = Notification::decode(method, params) else {
        if id.is_null() {
            return Routed::Ignore;
        }
        let unknown = format!("unknown method {method}");
        return Routed::Answer(Response::error(id, ErrorCode::Other, &unknown).to_value());
    };
    let (incoming, cancels) = match decoded {
        Err(bad) if bad.method == "mining.notify" => {
            let clean = bad.clean();
            (Incoming::Notify(Err(bad.why)), clean)
        }
        Err(bad) => (Incoming::Ignored(bad), true),
        Ok(Notification::Notify(job)) => {
            let clean = job.clean;
            (Incoming::Notify(Ok(job)), clean)
        }
        Ok(Notification::Ping) => {
            return Routed::Answer(Response::ok(id, Value::from("pong")).to_value());
        }
        Ok(Notification::GetVersion) => {
            return Routed::Answer(Response::ok(id, Value::from(USER_AGENT)).to_value());
        }
        Ok(Notification::ShowMessage(text)) => (
            Incoming::Note(format!("message from the pool: {text}")),
            false,
        ),
        Ok(other) => (Incoming::Pool(other), true),
    };
    Routed::Pass(incoming, cancels)
}

/// Acts on a routed line (answering pings and version queries here); false once the mining
/// side is gone.
fn deliver(
    routed: Routed,
    writer: &Mutex<TcpStream>,
    tx: &Sender<Incoming>,
    abort: &AtomicBool,
) -> bool {
    let (incoming, cancels) = match routed {
        Routed::Pass(incoming, cancels) => (incoming, cancels),
        Routed::Answer(reply) => {
            let _ = write_line(writer, &crate::stratum::message::line(reply));
            return true;
        }
        Routed::Ignore => return true,
    };
    // The message first, then the flag: whoever sees the flag finds the message queued. A job
    // message is queued holding the writer, which a submit holds from its staleness check to
    // its write: whatever this side writes after this (a pong) comes after any submit that did
    // not see the message.
    let _writer = (!matches!(incoming, Incoming::Reply { .. }))
        .then(|| writer.lock().unwrap_or_else(|e| e.into_inner()));
    if tx.send(incoming).is_err() {
        return false;
    }
    if cancels {
        abort.store(true, Ordering::SeqCst);
    }
    true
}

/// Whether a pool answers `mining.subscribe` within a few seconds.
fn probe(host: &str, port: u16) -> bool {
    let Ok(mut s) = connect(host, port, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
    let subscribe = Request::Subscribe {
        id: Value::from(1),
        user_agent: Some(USER_AGENT.into()),
        session: None,
    };
    if s.write_all(subscribe.to_line().as_bytes()).is_err() {
        return false;
    }
    let mut reader = BufReader::new(s.take(64 * 1024));
    for _ in 0..4 {
        let mut l = String::new();
        match reader.read_line(&mut l) {
            Ok(n) if n > 0 => match PoolLine::parse(l.as_bytes()) {
                PoolLine::Reply(r) if r.id.as_u64() == Some(1) => return !r.result.is_null(),
                PoolLine::Call { id, .. } if id.as_u64() == Some(1) => return false,
                _ => {}
            },
            _ => return false,
        }
    }
    false
}

/// Failback: while on a later pool, a thread probes the earlier ones every interval; the first
/// that answers is where the client goes back to.
pub(super) struct Failback {
    /// The earlier pool that answered (`usize::MAX`: none yet).
    found: Arc<AtomicUsize>,
    probing: Arc<AtomicBool>,
    last_probe: Instant,
}

impl Failback {
    pub(super) fn new() -> Failback {
        Failback {
            found: Arc::new(AtomicUsize::new(usize::MAX)),
            probing: Arc::new(AtomicBool::new(false)),
            last_probe: Instant::now(),
        }
    }

    /// An earlier pool than `index` that answered a probe, if any; else starts a probe round
    /// of `pools[..index]` when `interval` has passed since the last one and none is running.
    pub(super) fn poll(
        &mut self,
        index: usize,
        pools: &[PoolUrl],
        interval: Duration,
    ) -> Option<usize> {
        let to = self.found.load(Ordering::SeqCst);
        if to < index {
            return Some(to);
        }
        if index > 0
            && self.last_probe.elapsed() >= interval
            && !self.probing.swap(true, Ordering::SeqCst)
        {
            self.last_probe = Instant::now();
            let earlier: Vec<(usize, String, u16)> = pools[..index]
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.host.clone(), p.port))
                .collect();
            let (failback, probing) = (self.found.clone(), self.probing.clone());
            std::thread::spawn(move || {
                for (i, host, port) in earlier {
                    if probe(&host, port) {
                        failback.store(i, Ordering::SeqCst);
                        break;
                    }
                }
                probing.store(false, Ordering::SeqCst);
            });
        }
        None
    }
}
