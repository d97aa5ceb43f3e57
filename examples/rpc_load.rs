//! Load for `miner node`: C clients, each on one kept-alive connection, call `getblockcount` for
//! S seconds; prints requests per second, p50 and p99 latency, and non-200 answers.
//!
//! `cargo run --release --example rpc_load -- ADDR COOKIE_FILE C S`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: rpc_load ADDR COOKIE_FILE CLIENTS SECONDS");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let cookie = std::fs::read_to_string(&args[2]).expect("read the cookie file");
    let auth = base64_encode(cookie.trim().as_bytes());
    let clients: usize = args[3].parse().expect("CLIENTS");
    let seconds: u64 = args[4].parse().expect("SECONDS");
    let until = Instant::now() + Duration::from_secs(seconds);
    let body = r#"{"id":1,"method":"getblockcount","params":[]}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, request) = (addr.clone(), request.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                while Instant::now() < until {
                    if conn.is_none() {
                        match TcpStream::connect(&addr) {
                            Ok(s) => {
                                let r = BufReader::new(s.try_clone().unwrap());
                                conn = Some((s, r));
                            }
                            Err(_) => {
                                errors += 1;
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        }
                    }
                    let (s, r) = conn.as_mut().unwrap();
                    let started = Instant::now();
                    match call(s, r, &request) {
                        Some((200, keep)) => {
                            latencies.push(started.elapsed());
                            if !keep {
                                conn = None;
                            }
                        }
                        _ => {
                            errors += 1;
                            conn = None;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.join().unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)));
    println!(
        "clients {clients:4}  {:8.0} req/s  p50 {:7.2} ms  p99 {:7.2} ms  errors {errors}",
        all.len() as f64 / seconds as f64,
        pct(0.50).map_or(0.0, |d| d.as_secs_f64() * 1e3),
        pct(0.99).map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}

/// One request; the status and whether the connection stays open.
fn call(s: &mut TcpStream, r: &mut BufReader<TcpStream>, request: &str) -> Option<(u16, bool)> {
    s.write_all(request.as_bytes()).ok()?;
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut keep) = (0usize, true);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if lower.starts_with("connection:") && lower.contains("close") {
            keep = false;
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).ok()?;
    Some((status, keep))
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
