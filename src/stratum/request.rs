//! What a miner sends a pool, as a typed [`Request`]: decoded from one line with no pool state
//! ([`parse_request`]: the JSON-RPC envelope `id`, `method`, `params`, the method, and each
//! method's params) by the server, and encoded ([`Request::to_line`]) by the client. The
//! server's `handle_line` matches on the result; fuzzers and tests call [`parse_request`]
//! directly.
//!
//! What is decided here is only what the line says. Whether the connection is subscribed, the
//! worker authorized, the job known or the share good is the server's business.

use super::job::{hex_bytes, hex_u32, u32_hex, EXTRANONCE2_SIZE};
use super::message::line;
use serde_json::{json, Value};

/// One decoded request line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Request {
    /// A blank line, or a reply to something the server sent (it expects none): ignored.
    Nothing,
    /// `mining.subscribe [user agent, session]`; `session` is the subscription id a resuming
    /// miner offers back (the server reads it with [`resumed_extranonce1`]). Either is `None`
    /// when missing or not a string.
    Subscribe {
        id: Value,
        user_agent: Option<String>,
        session: Option<String>,
    },
    /// `mining.authorize [user, password]` (missing or non-string values read as "").
    Authorize {
        id: Value,
        user: String,
        password: String,
    },
    /// `mining.submit [worker, job_id, extranonce2, ntime, nonce, (version bits)]`.
    Submit { id: Value, submit: Submit },
    /// `mining.configure [names, options]` (BIP 310).
    Configure {
        id: Value,
        extensions: Vec<Extension>,
    },
    /// `mining.suggest_difficulty [d]` (a number or, as cpuminer-opt sends it, a quoted
    /// number), or `mining.suggest_target [hex]` converted to its difficulty. Positive and
    /// finite.
    SuggestDifficulty { id: Value, difficulty: f64 },
    /// `mining.extranonce.subscribe`.
    ExtranonceSubscribe { id: Value },
    /// `mining.ping`.
    Ping { id: Value },
    /// `mining.get_transactions`.
    GetTransactions { id: Value },
}

/// A `mining.submit`'s params, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Submit {
    /// The worker name (an authorized user).
    pub(crate) worker: String,
    /// The job the share is for.
    pub(crate) job_id: String,
    /// Decoded from a miner: [`EXTRANONCE2_SIZE`] bytes; sent by the client: the size its
    /// pool set.
    pub(crate) extranonce2: Vec<u8>,
    /// The header's time, Unix seconds.
    pub(crate) ntime: u32,
    /// The header's nonce.
    pub(crate) nonce: u32,
    /// The 6th param (version rolling), when given and not null.
    pub(crate) version_bits: Option<u32>,
}

/// One extension named in `mining.configure`, with its options.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Extension {
    /// `version-rolling`: the mask the miner asks for (`None`: none given, the server's whole
    /// mask) and `version-rolling.min-bit-count`.
    VersionRolling {
        mask: Option<u32>,
        min_bit_count: Option<u64>,
    },
    /// `minimum-difficulty`: the floor asked (`None`: absent, negative or not a number).
    MinimumDifficulty { value: Option<f64> },
    /// An extension the server does not know (answered false).
    Other(String),
}

/// Why a line is not a request the server can act on; each maps to one error answer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum RequestError {
    /// Not JSON, or JSON that is not an object: answered with id null.
    #[error("malformed message: expected a JSON object")]
    NotAnObject,
    /// An object with neither a method nor a result or error.
    #[error("malformed message: no method")]
    NoMethod { id: Value },
    #[error("unknown method {method:?}")]
    UnknownMethod { id: Value, method: String },
    /// A known method whose params do not decode. `worker` is a submit's first param when it
    /// is a string (so the server can check it was authorized before counting the reject).
    #[error("{message}")]
    BadParams {
        id: Value,
        method: &'static str,
        worker: Option<String>,
        message: String,
    },
}

impl RequestError {
    /// The request's id (null when the line had none or was not an object).
    pub(crate) fn id(&self) -> Value {
        match self {
            RequestError::NotAnObject => Value::Null,
            RequestError::NoMethod { id }
            | RequestError::UnknownMethod { id, .. }
            | RequestError::BadParams { id, .. } => id.clone(),
        }
    }
}

/// Decodes one request line (a trailing `\r` allowed). Pure: no pool state.
pub(crate) fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(Request::Nothing);
    }
    let message: Value = match serde_json::from_slice(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err(RequestError::NotAnObject),
    };
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // A reply to something we sent (none expects an answer): ignored.
        if message.get("result").is_none() && message.get("error").is_none() {
            return Err(RequestError::NoMethod { id });
        }
        return Ok(Request::Nothing);
    };
    let empty = Vec::new();
    let params = message
        .get("params")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let bad = |method: &'static str, worker: Option<String>, message: &str| {
        Err(RequestError::BadParams {
            id: id.clone(),
            method,
            worker,
            message: message.to_string(),
        })
    };
    match method {
        "mining.subscribe" => {
            let text = |i: usize| params.get(i).and_then(Value::as_str).map(str::to_string);
            Ok(Request::Subscribe {
                user_agent: text(0),
                session: text(1),
                id,
            })
        }
        "mining.authorize" => {
            let text = |i: usize| {
                params
                    .get(i)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            Ok(Request::Authorize {
                user: text(0),
                password: text(1),
                id,
            })
        }
        "mining.submit" => {
            const M: &str = "mining.submit";
            let worker = params.first().and_then(Value::as_str).map(str::to_string);
            if params.len() < 5 {
                return bad(M, worker, "mining.submit: expected 5 or 6 params");
            }
            let Some(job_id) = params[1].as_str() else {
                return bad(M, worker, "job id: expected a string");
            };
            let en2 = hex_bytes(&params[2], "extranonce2")
                .ok()
                .filter(|b| b.len() == EXTRANONCE2_SIZE);
            let Some(extranonce2) = en2 else {
                return bad(M, worker, "extranonce2: expected 8 hex digits");
            };
            let (Ok(ntime), Ok(nonce)) =
                (hex_u32(&params[3], "ntime"), hex_u32(&params[4], "nonce"))
            else {
                return bad(M, worker, "ntime and nonce: expected 8 hex digits each");
            };
            let version_bits = match params.get(5) {
                None | Some(Value::Null) => None,
                Some(v) => match hex_u32(v, "version bits") {
                    Ok(b) => Some(b),
                    Err(_) => return bad(M, worker, "version bits: expected 8 hex digits"),
                },
            };
            let Some(worker) = worker else {
                return bad(M, None, "worker: expected a string");
            };
            Ok(Request::Submit {
                id,
                submit: Submit {
                    worker,
                    job_id: job_id.to_string(),
                    extranonce2,
                    ntime,
                    nonce,
                    version_bits,
                },
            })
        }
        "mining.configure" => {
            let names: Vec<&str> = params
                .first()
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let no_options = serde_json::Map::new();
            let options = params
                .get(1)
                .and_then(Value::as_object)
                .unwrap_or(&no_options);
            let mut extensions = Vec::with_capacity(names.len().min(16));
            for name in names {
                extensions.push(match name {
                    "version-rolling" => {
                        let mask = match options.get("version-rolling.mask") {
                            None | Some(Value::Null) => None,
                            Some(v) => match mask_hex(v) {
                                Some(m) => Some(m),
                                None => return bad(
                                    "mining.configure",
                                    None,
                                    "version-rolling.mask: expected a string of 1 to 8 hex digits",
                                ),
                            },
                        };
                        Extension::VersionRolling {
                            mask,
                            min_bit_count: options
                                .get("version-rolling.min-bit-count")
                                .and_then(Value::as_u64),
                        }
                    }
                    "minimum-difficulty" => Extension::MinimumDifficulty {
                        value: options
                            .get("minimum-difficulty.value")
                            .and_then(Value::as_f64)
                            .filter(|d| d.is_finite() && *d >= 0.0),
                    },
                    other => Extension::Other(other.to_string()),
                });
            }
            Ok(Request::Configure { id, extensions })
        }
        "mining.suggest_difficulty" | "mining.suggest_target" => {
            let d = match (method, params.first()) {
                // cpuminer-opt sends the value as a quoted string ("0.5").
                ("mining.suggest_difficulty", Some(v)) => v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())),
                (_, Some(v)) => hex_bytes(v, "target").ok().and_then(|b| {
                    let b: [u8; 32] = b.try_into().ok()?;
                    let mut le = b;
                    le.reverse();
                    Some(crate::stratum::difficulty_of(&le))
                }),
                _ => None,
            };
            match d.filter(|d| d.is_finite() && *d > 0.0) {
                Some(difficulty) => Ok(Request::SuggestDifficulty { id, difficulty }),
                None => bad(
                    if method == "mining.suggest_target" {
                        "mining.suggest_target"
                    } else {
                        "mining.suggest_difficulty"
                    },
                    None,
                    "expected a positive difficulty",
                ),
            }
        }
        "mining.extranonce.subscribe" => Ok(Request::ExtranonceSubscribe { id }),
        "mining.ping" => Ok(Request::Ping { id }),
        "mining.get_transactions" => Ok(Request::GetTransactions { id }),
        _ => Err(RequestError::UnknownMethod {
            id,
            method: method.chars().take(100).collect(),
        }),
    }
}

/// The extranonce1 a resuming miner asks back with its subscribe's `session`: 8 hex digits
/// (anything else is no request to resume).
pub(crate) fn resumed_extranonce1(session: Option<&str>) -> Option<u32> {
    let b = hex::decode(session?).ok()?;
    <[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes)
}

impl Request {
    /// The method and params as sent (`None` for [`Request::Nothing`], which is no request).
    fn method_params(&self) -> Option<(&'static str, Value)> {
        Some(match self {
            Request::Nothing => return None,
            Request::Subscribe {
                user_agent,
                session,
                ..
            } => {
                let mut p = Vec::new();
                if user_agent.is_some() || session.is_some() {
                    p.push(Value::from(user_agent.clone().unwrap_or_default()));
                }
                if let Some(s) = session {
                    p.push(Value::from(s.as_str()));
                }
                ("mining.subscribe", Value::Array(p))
            }
            Request::Authorize { user, password, .. } => {
                ("mining.authorize", json!([user, password]))
            }
            Request::Submit { submit, .. } => ("mining.submit", submit.params()),
            Request::Configure { extensions, .. } => {
                let mut names = Vec::new();
                let mut options = serde_json::Map::new();
                for e in extensions {
                    match e {
                        Extension::VersionRolling {
                            mask,
                            min_bit_count,
                        } => {
                            names.push(Value::from("version-rolling"));
                            if let Some(m) = mask {
                                options.insert("version-rolling.mask".into(), u32_hex(*m).into());
                            }
                            if let Some(n) = min_bit_count {
                                options.insert("version-rolling.min-bit-count".into(), (*n).into());
                            }
                        }
                        Extension::MinimumDifficulty { value } => {
                            names.push(Value::from("minimum-difficulty"));
                            if let Some(v) = value {
                                options.insert("minimum-difficulty.value".into(), (*v).into());
                            }
                        }
                        Extension::Other(name) => names.push(Value::from(name.as_str())),
                    }
                }
                ("mining.configure", json!([names, options]))
            }
            Request::SuggestDifficulty { difficulty, .. } => {
                ("mining.suggest_difficulty", json!([difficulty]))
            }
            Request::ExtranonceSubscribe { .. } => ("mining.extranonce.subscribe", json!([])),
            Request::Ping { .. } => ("mining.ping", json!([])),
            Request::GetTransactions { .. } => ("mining.get_transactions", json!([])),
        })
    }

    /// The request's id (null for [`Request::Nothing`]).
    pub(crate) fn id(&self) -> Value {
        match self {
            Request::Nothing => Value::Null,
            Request::Subscribe { id, .. }
            | Request::Authorize { id, .. }
            | Request::Submit { id, .. }
            | Request::Configure { id, .. }
            | Request::SuggestDifficulty { id, .. }
            | Request::ExtranonceSubscribe { id }
            | Request::Ping { id }
            | Request::GetTransactions { id } => id.clone(),
        }
    }

    /// `{"id", "method", "params"}` (null for [`Request::Nothing`]).
    pub(crate) fn to_value(&self) -> Value {
        match self.method_params() {
            Some((method, params)) => json!({"id": self.id(), "method": method, "params": params}),
            None => Value::Null,
        }
    }

    /// The JSON line, newline included.
    pub(crate) fn to_line(&self) -> String {
        line(self.to_value())
    }
}

impl Submit {
    /// `mining.submit`'s params: worker, job id, extranonce2, ntime, nonce, and the version
    /// bits when given.
    pub(crate) fn params(&self) -> Value {
        let mut p = vec![
            Value::from(self.worker.as_str()),
            Value::from(self.job_id.as_str()),
            Value::from(hex::encode(&self.extranonce2)),
            Value::from(u32_hex(self.ntime)),
            Value::from(u32_hex(self.nonce)),
        ];
        if let Some(bits) = self.version_bits {
            p.push(Value::from(u32_hex(bits)));
        }
        Value::Array(p)
    }
}

/// A version-rolling mask: a string of 1 to 8 hex digits (BIP 310 sends 8; shorter ones read
/// as the number they spell). Anything else (not a string, not hex, longer) is `None`.
fn mask_hex(v: &Value) -> Option<u32> {
    let s = v.as_str()?;
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Request, RequestError> {
        parse_request(v.to_string().as_bytes())
    }

    #[test]
    fn the_envelope_blank_lines_replies_and_garbage() {
        assert_eq!(parse_request(b"  \r"), Ok(Request::Nothing));
        assert_eq!(parse_request(b"[1,2]"), Err(RequestError::NotAnObject));
        assert_eq!(parse_request(b"{nope"), Err(RequestError::NotAnObject));
        assert_eq!(
            parse(json!({"id": 3, "result": true})),
            Ok(Request::Nothing)
        );
        assert_eq!(
            parse(json!({"id": 3})),
            Err(RequestError::NoMethod { id: json!(3) })
        );
        let e = parse(json!({"id": "x", "method": "mining.nope"})).unwrap_err();
        assert_eq!(e.id(), json!("x"));
        assert_eq!(e.to_string(), "unknown method \"mining.nope\"");
    }

    #[test]
    fn submit_params_are_decoded_or_refused_naming_the_field() {
        let ok = parse(json!({"id": 4, "method": "mining.submit",
            "params": ["w", "1a", "00000001", "6b04fcf5", "6df82800", "00002000"]}));
        assert_eq!(
            ok,
            Ok(Request::Submit {
                id: json!(4),
                submit: Submit {
                    worker: "w".into(),
                    job_id: "1a".into(),
                    extranonce2: vec![0, 0, 0, 1],
                    ntime: 0x6b04_fcf5,
                    nonce: 0x6df8_2800,
                    version_bits: Some(0x2000),
                }
            })
        );
        let e = parse(json!({"id": 4, "method": "mining.submit",
            "params": ["w", "1a", "0001", "6b04fcf5", "6df82800"]}))
        .unwrap_err();
        assert!(
            matches!(&e, RequestError::BadParams { worker: Some(w), .. } if w == "w"),
            "{e:?}"
        );
        assert!(e.to_string().contains("extranonce2"), "{e}");
        let e = parse(json!({"method": "mining.submit", "params": ["w"]})).unwrap_err();
        assert!(e.to_string().contains("5 or 6 params"), "{e}");
    }

    #[test]
    fn configure_masks_must_be_hex_of_at_most_8_digits() {
        let cfg = |mask: Value| {
            parse(json!({"id": 1, "method": "mining.configure",
                "params": [["version-rolling", "minimum-difficulty", "x"],
                    {"version-rolling.mask": mask, "minimum-difficulty.value": 2}]}))
        };
        assert_eq!(
            cfg(json!("1fffe000")),
            Ok(Request::Configure {
                id: json!(1),
                extensions: vec![
                    Extension::VersionRolling {
                        mask: Some(0x1fff_e000),
                        min_bit_count: None
                    },
                    Extension::MinimumDifficulty { value: Some(2.0) },
                    Extension::Other("x".into()),
                ]
            })
        );
        for bad in [json!("zz"), json!(123), json!("f".repeat(5000)), json!("")] {
            let e = cfg(bad.clone()).unwrap_err();
            assert!(e.to_string().contains("version-rolling.mask"), "{bad}: {e}");
        }
    }

    /// What the client sends decodes on the server as it was built, and the lines keep the
    /// shape they had when the client wrote them by hand.
    #[test]
    fn requests_the_client_sends_decode_as_sent() {
        let sent = [
            Request::Subscribe {
                id: json!(1),
                user_agent: Some("miner/0.1.0".into()),
                session: Some("0a0b0c0d".into()),
            },
            Request::Authorize {
                id: json!(2),
                user: "w".into(),
                password: "x".into(),
            },
            Request::Configure {
                id: json!(3),
                extensions: vec![
                    Extension::VersionRolling {
                        mask: Some(0x1fff_e000),
                        min_bit_count: Some(2),
                    },
                    Extension::MinimumDifficulty { value: Some(2.0) },
                ],
            },
            Request::Submit {
                id: json!(4),
                submit: Submit {
                    worker: "w".into(),
                    job_id: "1a".into(),
                    extranonce2: vec![0, 0, 0, 1],
                    ntime: 0x6b04_fcf5,
                    nonce: 0x6df8_2800,
                    version_bits: Some(0x2000),
                },
            },
            Request::SuggestDifficulty {
                id: json!(5),
                difficulty: 0.5,
            },
            Request::ExtranonceSubscribe { id: json!(6) },
            Request::Ping { id: json!(7) },
            Request::GetTransactions { id: json!(8) },
        ];
        for r in sent {
            assert_eq!(parse_request(r.to_line().trim_end().as_bytes()), Ok(r));
        }
        assert_eq!(resumed_extranonce1(Some("0a0b0c0d")), Some(0x0a0b_0c0d));
        assert_eq!(resumed_extranonce1(Some("0a0b0c")), None);
        assert_eq!(resumed_extranonce1(None), None);
        let configure = Request::Configure {
            id: json!(1),
            extensions: vec![Extension::VersionRolling {
                mask: Some(0x1fff_e000),
                min_bit_count: Some(2),
            }],
        };
        assert_eq!(
            configure.to_value(),
            json!({"id": 1, "method": "mining.configure", "params": [["version-rolling"], {
                "version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]})
        );
        let subscribe = Request::Subscribe {
            id: json!(2),
            user_agent: Some("miner/0.1.0".into()),
            session: None,
        };
        assert_eq!(
            subscribe.to_line(),
            "{\"id\":2,\"method\":\"mining.subscribe\",\"params\":[\"miner/0.1.0\"]}\n"
        );
    }

    #[test]
    fn suggestions_are_positive_numbers_or_targets() {
        assert_eq!(
            parse(json!({"id": 1, "method": "mining.suggest_difficulty", "params": ["0.5"]})),
            Ok(Request::SuggestDifficulty {
                id: json!(1),
                difficulty: 0.5
            })
        );
        let t = format!("00000000ffff{}", "0".repeat(52));
        match parse(json!({"id": 1, "method": "mining.suggest_target", "params": [t]})) {
            Ok(Request::SuggestDifficulty { difficulty, .. }) => {
                assert!((difficulty - 1.0).abs() < 1e-9, "{difficulty}")
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(json!({"method": "mining.suggest_difficulty", "params": [-1]})).is_err());
    }
}
