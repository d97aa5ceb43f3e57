//! A pool's address: `stratum+tcp://HOST:PORT` as the user gives it.

use super::PoolError;

/// A pool's address as the user gave it, and where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUrl {
    /// The URL as given (trimmed): what summaries name the pool by.
    pub url: String,
    /// Host name or IP address to connect to (an IPv6 address without its brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Reads `stratum+tcp://HOST:PORT` (also `stratum://`, `tcp://` or a bare `HOST:PORT`; IPv6 as
/// `[::1]:3333`). TLS schemes and URLs without a port are refused.
pub fn parse_pool_url(input: &str) -> Result<PoolUrl, PoolError> {
    let text = input.trim();
    let bad = |why: &str| PoolError::BadUrl {
        url: text.to_string(),
        why: why.to_string(),
    };
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("stratum+tcp".to_string(), text),
    };
    match scheme.as_str() {
        "stratum+tcp" | "stratum" | "tcp" => {}
        "stratum+ssl" | "stratum+tls" | "ssl" | "tls" => {
            return Err(bad(
                "this build speaks plain TCP only (no TLS); use the pool's stratum+tcp:// port",
            ))
        }
        other => return Err(bad(&format!("the scheme '{other}' is not stratum+tcp"))),
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once("]:") {
            Some((h, p)) => (h, p),
            None => return Err(bad("an IPv6 address needs the form [ADDR]:PORT")),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => return Err(bad("it names no port (pools differ: 3333 is common)")),
        }
    };
    if host.is_empty() {
        return Err(bad("it names no host"));
    }
    if host.contains(char::is_whitespace) {
        return Err(bad("the host contains a space"));
    }
    let port = match port.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => n as u16,
        Ok(n) => return Err(bad(&format!("port {n} is not between 1 and 65535"))),
        Err(_) if port.is_empty() => return Err(bad("the port after ':' is empty")),
        Err(_) => return Err(bad(&format!("port '{port}' is not a number"))),
    };
    Ok(PoolUrl {
        url: text.to_string(),
        host: host.to_string(),
        port,
    })
}
