//! What a pool sends a miner, as typed values, and their JSON lines: replies ([`Response`],
//! with Stratum's error codes and the typed results of `mining.subscribe` and
//! `mining.configure`) and the pool's method calls ([`Notification`]). What a miner sends is in
//! [`super::request`]. The server builds its lines from these types and the client decodes the
//! pool's lines into them: the one place either role turns these messages into JSON and back.

use super::job::{hex_u32, u32_hex, NotifyJob, StratumError};
use serde_json::{json, Value};

/// Stratum's error codes (DESIGN §3), as a server answers a request with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// 20: any other reason.
    Other,
    /// 21: stale job (job not found).
    Stale,
    /// 22: duplicate share.
    Duplicate,
    /// 23: low difficulty share.
    LowDifficulty,
    /// 24: unauthorized worker.
    Unauthorized,
    /// 25: not subscribed.
    NotSubscribed,
}

impl ErrorCode {
    /// The number sent.
    pub(crate) fn code(self) -> i64 {
        match self {
            ErrorCode::Other => 20,
            ErrorCode::Stale => 21,
            ErrorCode::Duplicate => 22,
            ErrorCode::LowDifficulty => 23,
            ErrorCode::Unauthorized => 24,
            ErrorCode::NotSubscribed => 25,
        }
    }
}

/// A reply's `error` as sent (never null): Stratum's `[code, message, data]`, or whatever else a
/// pool sends (a JSON-RPC 2 object `{code, message}`, a bare string), kept as it came.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ReplyError(Value);

impl ReplyError {
    /// `[code, message, null]`, as this crate's server sends it.
    pub(crate) fn new(code: ErrorCode, message: &str) -> ReplyError {
        ReplyError(json!([code.code(), message, null]))
    }

    /// The error as received; `None` for null (no error).
    pub(crate) fn from_value(error: &Value) -> Option<ReplyError> {
        (!error.is_null()).then(|| ReplyError(error.clone()))
    }

    /// The error as sent.
    pub(crate) fn as_value(&self) -> &Value {
        &self.0
    }

    /// The code: the first element of `[code, ...]` or an object's `code`.
    pub(crate) fn code(&self) -> Option<i64> {
        self.0
            .get(0)
            .or_else(|| self.0.get("code"))
            .and_then(Value::as_i64)
    }

    /// `"{code} {message}"`, or the JSON as sent when it has no code and message.
    pub(crate) fn text(&self) -> String {
        let (code, message) = match &self.0 {
            Value::Array(a) => (a.first(), a.get(1)),
            Value::Object(o) => (o.get("code"), o.get("message")),
            other => return other.to_string(),
        };
        match (
            code.and_then(Value::as_i64),
            message.and_then(Value::as_str),
        ) {
            (Some(code), Some(message)) => format!("{code} {message}"),
            _ => self.0.to_string(),
        }
    }

    /// Stratum's "stale job" (21), or a message that says so.
    pub(crate) fn is_stale(&self) -> bool {
        if self.code() == Some(ErrorCode::Stale.code()) {
            return true;
        }
        let text = self.text().to_ascii_lowercase();
        text.contains("stale") || text.contains("job not found")
    }
}

/// `error` (a reply's `error` member, null for none) as text: see [`ReplyError::text`]. The
/// client's tests read raw `error` members through it.
#[cfg(test)]
pub(crate) fn error_text(error: &Value) -> String {
    match ReplyError::from_value(error) {
        Some(e) => e.text(),
        None => "no reason given".into(),
    }
}

/// Whether `error` (a reply's `error` member) says the share's job was stale. The client's
/// tests read raw `error` members through it.
#[cfg(test)]
pub(crate) fn is_stale_error(error: &Value) -> bool {
    ReplyError::from_value(error).is_some_and(|e| e.is_stale())
}

/// A reply to a request: `{"id", "result", "error"}`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Response {
    /// The request's id, echoed.
    pub(crate) id: Value,
    /// Its shape depends on the method ([`Subscribed`], [`Configured`], `true`, ...).
    pub(crate) result: Value,
    /// `None` when `error` is null (a success).
    pub(crate) error: Option<ReplyError>,
}

impl Response {
    /// A success: `result` and no error.
    pub(crate) fn ok(id: &Value, result: Value) -> Response {
        Response {
            id: id.clone(),
            result,
            error: None,
        }
    }

    /// A refusal: a null result and `[code, message, null]`.
    pub(crate) fn error(id: &Value, code: ErrorCode, message: &str) -> Response {
        Response {
            id: id.clone(),
            result: Value::Null,
            error: Some(ReplyError::new(code, message)),
        }
    }

    /// Reads a reply (a message without a method); missing members read as null.
    pub(crate) fn from_value(message: &Value) -> Response {
        let member = |name: &str| message.get(name).cloned().unwrap_or(Value::Null);
        Response {
            id: member("id"),
            error: ReplyError::from_value(&member("error")),
            result: member("result"),
        }
    }

    /// `{"id", "result", "error"}`, error null when there is none.
    pub(crate) fn to_value(&self) -> Value {
        let error = self
            .error
            .as_ref()
            .map_or(&Value::Null, ReplyError::as_value);
        json!({"id": self.id, "result": self.result, "error": error})
    }

    /// The JSON line, newline included.
    pub(crate) fn to_line(&self) -> String {
        line(self.to_value())
    }

    /// The error as text ("no reason given" without one).
    pub(crate) fn error_text(&self) -> String {
        self.error
            .as_ref()
            .map_or_else(|| "no reason given".into(), ReplyError::text)
    }

    /// Whether the result is `true` with no error (an accepted share, an authorized worker).
    pub(crate) fn is_true(&self) -> bool {
        self.result.as_bool() == Some(true) && self.error.is_none()
    }
}

/// `mining.subscribe`'s result: `[[["mining.set_difficulty", session], ["mining.notify",
/// session]], extranonce1, extranonce2_size]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscribed {
    /// The subscription id of `mining.notify`, which a miner offers back on its next subscribe
    /// to restore the extranonce1 (`None`: the pool named none).
    pub(crate) session: Option<String>,
    /// The connection's extranonce1 (sent as hex).
    pub(crate) extranonce1: Vec<u8>,
    /// Bytes of extranonce2 the miner rolls.
    pub(crate) extranonce2_size: usize,
}

impl Subscribed {
    /// The result as a server sends it: both subscriptions named by the session id.
    pub(crate) fn to_value(&self) -> Value {
        let subscriptions = match &self.session {
            Some(s) => json!([["mining.set_difficulty", s], ["mining.notify", s]]),
            None => json!([]),
        };
        json!([
            subscriptions,
            hex::encode(&self.extranonce1),
            self.extranonce2_size
        ])
    }

    /// Reads a pool's answer (extranonce2 sizes of 0 to 32 bytes); the error names what is
    /// missing and shows the answer.
    pub(crate) fn from_value(result: &Value) -> Result<Subscribed, StratumError> {
        let extranonce1 = result
            .get(1)
            .and_then(Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| {
                StratumError::Malformed(format!(
                    "mining.subscribe's answer has no hex extranonce1: {result}"
                ))
            })?;
        let size = result
            .get(2)
            .and_then(Value::as_u64)
            .filter(|n| *n <= 32)
            .ok_or_else(|| {
                StratumError::Malformed(format!(
                    "mining.subscribe's answer has no extranonce2 size (0 to 32): {result}"
                ))
            })?;
        Ok(Subscribed {
            session: notify_subscription(&result[0]),
            extranonce1,
            extranonce2_size: size as usize,
        })
    }
}

/// The subscription id of `mining.notify` in a subscribe answer's first element: a list of
/// `[method, id]` pairs, or (some pools) one pair alone.
pub(crate) fn notify_subscription(subs: &Value) -> Option<String> {
    let pair = |p: &Value| -> Option<String> {
        let a = p.as_array()?;
        if a.first()?.as_str()? == "mining.notify" {
            a.get(1)?.as_str().map(str::to_string)
        } else {
            None
        }
    };
    pair(subs).or_else(|| subs.as_array()?.iter().find_map(pair))
}

/// One answer in `mining.configure`'s result (BIP 310).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Granted {
    /// `"version-rolling": true` and `"version-rolling.mask"`.
    VersionRolling { mask: u32 },
    /// `"minimum-difficulty"`: whether the floor asked was taken.
    MinimumDifficulty(bool),
    /// An extension refused (false).
    Refused(String),
}

/// `mining.configure`'s result: one member per extension asked, in the order asked (a later
/// answer under the same name replaces an earlier one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Configured(pub(crate) Vec<Granted>);

impl Configured {
    /// The result object as a server sends it: `"NAME": true|false` per extension and the
    /// granted mask as `"version-rolling.mask"`.
    pub(crate) fn to_value(&self) -> Value {
        let mut result = serde_json::Map::new();
        for granted in &self.0 {
            match granted {
                Granted::VersionRolling { mask } => {
                    result.insert("version-rolling".into(), Value::Bool(true));
                    result.insert("version-rolling.mask".into(), Value::from(u32_hex(*mask)));
                }
                Granted::MinimumDifficulty(taken) => {
                    result.insert("minimum-difficulty".into(), Value::Bool(*taken));
                }
                Granted::Refused(name) => {
                    result.insert(name.clone(), Value::Bool(false));
                }
            }
        }
        Value::Object(result)
    }

    /// The version-rolling mask a pool granted: `Some` when it answered `"version-rolling":
    /// true` (a mask that does not read as 8 hex digits is 0), `None` otherwise.
    pub(crate) fn version_rolling(result: &Value) -> Option<u32> {
        if result.get("version-rolling").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        Some(
            result
                .get("version-rolling.mask")
                .and_then(|v| hex_u32(v, "mask").ok())
                .unwrap_or(0),
        )
    }
}

/// `client.reconnect`'s params: where to go (missing parts: the current host and port) and
/// how long to wait first. Decoding is lenient: what does not read is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reconnect {
    /// A non-empty host.
    pub(crate) host: Option<String>,
    /// A non-zero port (a number or a string of digits).
    pub(crate) port: Option<u16>,
    /// Seconds to wait (a number or a string of digits).
    pub(crate) wait: Option<u64>,
}

impl Reconnect {
    /// Reads `[host, port, wait]`, any of them missing or unreadable.
    pub(crate) fn from_params(p: &Value) -> Reconnect {
        let number = |v: &Value| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        };
        Reconnect {
            host: p
                .get(0)
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty())
                .map(str::to_string),
            port: p
                .get(1)
                .and_then(number)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0),
            wait: p.get(2).and_then(number),
        }
    }

    /// The params, up to the last part given (`[]` for none; a missing part before a given one
    /// is sent as "" or 0, which read back as absent).
    pub(crate) fn params(&self) -> Value {
        let mut p = vec![
            Value::from(self.host.clone().unwrap_or_default()),
            Value::from(self.port.unwrap_or(0)),
            Value::from(self.wait.unwrap_or(0)),
        ];
        let given = [
            self.host.is_some(),
            self.port.is_some(),
            self.wait.is_some(),
        ];
        p.truncate(given.iter().rposition(|g| *g).map_or(0, |i| i + 1));
        Value::Array(p)
    }
}

/// A method the pool calls on the miner: notifications (id null), and the two calls a miner
/// answers at once (`mining.ping`, `client.get_version`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Notification {
    /// `mining.notify`: a job (its `clean` flag: drop the jobs before it).
    Notify(NotifyJob),
    /// `mining.set_difficulty [d]`: the share difficulty from the next job (positive and
    /// finite).
    SetDifficulty(f64),
    /// `mining.set_extranonce [extranonce1, extranonce2_size]` (sizes of 0 to 32 bytes).
    SetExtranonce {
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
    },
    /// `mining.set_version_mask [mask]`.
    SetVersionMask(u32),
    /// `client.reconnect`.
    Reconnect(Reconnect),
    /// `client.show_message [text]` (a missing text reads as "").
    ShowMessage(String),
    /// `mining.ping`: answered "pong".
    Ping,
    /// `client.get_version`: answered with the miner's name.
    GetVersion,
}

/// A known method whose params do not decode.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BadCall {
    /// The method's name.
    pub(crate) method: &'static str,
    /// The params as sent.
    pub(crate) params: Value,
    /// What does not decode.
    pub(crate) why: StratumError,
}

impl BadCall {
    /// For a `mining.notify`, its `clean_jobs` flag (9th param), read even when the job does not
    /// decode: a client drops its work on it all the same.
    pub(crate) fn clean(&self) -> bool {
        self.params.get(8).and_then(Value::as_bool).unwrap_or(false)
    }
}

impl Notification {
    /// The method's name on the wire.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Notification::Notify(_) => "mining.notify",
            Notification::SetDifficulty(_) => "mining.set_difficulty",
            Notification::SetExtranonce { .. } => "mining.set_extranonce",
            Notification::SetVersionMask(_) => "mining.set_version_mask",
            Notification::Reconnect(_) => "client.reconnect",
            Notification::ShowMessage(_) => "client.show_message",
            Notification::Ping => "mining.ping",
            Notification::GetVersion => "client.get_version",
        }
    }

    /// The params as sent.
    pub(crate) fn params(&self) -> Value {
        match self {
            Notification::Notify(job) => job.to_notify(),
            Notification::SetDifficulty(d) => json!([d]),
            Notification::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => json!([hex::encode(extranonce1), extranonce2_size]),
            Notification::SetVersionMask(mask) => json!([u32_hex(*mask)]),
            Notification::Reconnect(r) => r.params(),
            Notification::ShowMessage(text) => json!([text]),
            Notification::Ping | Notification::GetVersion => json!([]),
        }
    }

    /// `{"id": null, "method", "params"}`.
    pub(crate) fn to_value(&self) -> Value {
        json!({"id": null, "method": self.method(), "params": self.params()})
    }

    /// The JSON line, newline included.
    pub(crate) fn to_line(&self) -> String {
        line(self.to_value())
    }

    /// Decodes a call of `method`; `None` for a method that is not one of these.
    pub(crate) fn decode(method: &str, params: &Value) -> Option<Result<Notification, BadCall>> {
        let bad = |method: &'static str, why: String| BadCall {
            method,
            params: params.clone(),
            why: StratumError::Malformed(why),
        };
        Some(match method {
            "mining.notify" => NotifyJob::from_notify(params)
                .map(Notification::Notify)
                .map_err(|why| BadCall {
                    method: "mining.notify",
                    params: params.clone(),
                    why,
                }),
            "mining.set_difficulty" => params
                .get(0)
                .and_then(Value::as_f64)
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(Notification::SetDifficulty)
                .ok_or_else(|| {
                    bad(
                        "mining.set_difficulty",
                        "expected a positive number".to_string(),
                    )
                }),
            "mining.set_extranonce" => {
                let en1 = params
                    .get(0)
                    .and_then(Value::as_str)
                    .and_then(|h| hex::decode(h).ok());
                let size = params.get(1).and_then(Value::as_u64).filter(|n| *n <= 32);
                match (en1, size) {
                    (Some(extranonce1), Some(size)) => Ok(Notification::SetExtranonce {
                        extranonce1,
                        extranonce2_size: size as usize,
                    }),
                    _ => Err(bad(
                        "mining.set_extranonce",
                        "expected [hex extranonce1, extranonce2 size of 0 to 32]".to_string(),
                    )),
                }
            }
            "mining.set_version_mask" => match params.get(0).map(|v| hex_u32(v, "mask")) {
                Some(Ok(mask)) => Ok(Notification::SetVersionMask(mask)),
                Some(Err(StratumError::Malformed(why))) => Err(bad("mining.set_version_mask", why)),
                None => Err(bad(
                    "mining.set_version_mask",
                    "expected a mask".to_string(),
                )),
            },
            "client.reconnect" => Ok(Notification::Reconnect(Reconnect::from_params(params))),
            "client.show_message" => Ok(Notification::ShowMessage(
                params
                    .get(0)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )),
            "mining.ping" => Ok(Notification::Ping),
            "client.get_version" => Ok(Notification::GetVersion),
            _ => return None,
        })
    }
}

/// One line from a pool, decoded as far as the envelope.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PoolLine {
    /// Blank (whitespace only).
    Blank,
    /// Not JSON: its first 120 characters.
    NotJson(String),
    /// A method call (params: null when missing).
    Call {
        id: Value,
        method: String,
        params: Value,
    },
    /// Anything without a method: a reply.
    Reply(Response),
}

impl PoolLine {
    /// Decodes one line as read (newline included, invalid UTF-8 replaced).
    pub(crate) fn parse(line: &[u8]) -> PoolLine {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return PoolLine::Blank;
        }
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return PoolLine::NotJson(text.chars().take(120).collect());
        };
        match message.get("method").and_then(Value::as_str) {
            Some(method) => PoolLine::Call {
                id: message.get("id").cloned().unwrap_or(Value::Null),
                method: method.to_string(),
                params: message.get("params").cloned().unwrap_or(Value::Null),
            },
            None => PoolLine::Reply(Response::from_value(&message)),
        }
    }
}

/// `value` as one JSON line, newline included.
pub(crate) fn line(value: Value) -> String {
    let mut line = value.to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_keep_the_wire_shape_both_ways() {
        let r = Response::error(&json!(4), ErrorCode::LowDifficulty, "Low difficulty share");
        assert_eq!(
            r.to_line(),
            "{\"error\":[23,\"Low difficulty share\",null],\"id\":4,\"result\":null}\n"
        );
        let back = match PoolLine::parse(r.to_line().as_bytes()) {
            PoolLine::Reply(back) => back,
            other => panic!("{other:?}"),
        };
        assert_eq!(back, r);
        assert!(!back.error.as_ref().unwrap().is_stale());
        assert_eq!(back.error_text(), "23 Low difficulty share");
        assert!(
            Response::error(&json!(1), ErrorCode::Stale, "Job not found")
                .error
                .unwrap()
                .is_stale()
        );
        assert!(Response::ok(&json!(1), json!(true)).is_true());
    }

    #[test]
    fn subscribe_and_configure_results_read_back() {
        let s = Subscribed {
            session: Some("0a0b0c0d".into()),
            extranonce1: vec![10, 11, 12, 13],
            extranonce2_size: 4,
        };
        assert_eq!(
            s.to_value(),
            json!([
                [
                    ["mining.set_difficulty", "0a0b0c0d"],
                    ["mining.notify", "0a0b0c0d"]
                ],
                "0a0b0c0d",
                4
            ])
        );
        assert_eq!(Subscribed::from_value(&s.to_value()), Ok(s));
        assert!(Subscribed::from_value(&json!([[], "zz", 4])).is_err());
        let c = Configured(vec![
            Granted::VersionRolling { mask: 0x1fff_e000 },
            Granted::MinimumDifficulty(false),
            Granted::Refused("x".into()),
        ]);
        let v = c.to_value();
        assert_eq!(
            v,
            json!({"version-rolling": true, "version-rolling.mask": "1fffe000",
                   "minimum-difficulty": false, "x": false})
        );
        assert_eq!(Configured::version_rolling(&v), Some(0x1fff_e000));
    }

    #[test]
    fn notifications_round_trip_through_their_lines() {
        let all = [
            Notification::SetDifficulty(0.5),
            Notification::SetExtranonce {
                extranonce1: vec![1, 2],
                extranonce2_size: 4,
            },
            Notification::SetVersionMask(0x1fff_e000),
            Notification::Reconnect(Reconnect::default()),
            Notification::Reconnect(Reconnect {
                host: None,
                port: Some(3334),
                wait: None,
            }),
            Notification::ShowMessage("hi".into()),
        ];
        for n in all {
            let PoolLine::Call { method, params, .. } = PoolLine::parse(n.to_line().as_bytes())
            else {
                panic!("{n:?}")
            };
            assert_eq!(Notification::decode(&method, &params), Some(Ok(n)));
        }
        assert_eq!(
            Notification::Reconnect(Reconnect::default()).to_line(),
            "{\"id\":null,\"method\":\"client.reconnect\",\"params\":[]}\n"
        );
        assert_eq!(Notification::decode("mining.nope", &json!([])), None);
        let bad = Notification::decode("mining.set_difficulty", &json!(["x"]));
        assert!(matches!(
            Notification::decode("mining.set_difficulty", &json!([-1])),
            Some(Err(BadCall {
                method: "mining.set_difficulty",
                ..
            }))
        ));
        assert!(matches!(
            bad,
            Some(Err(BadCall {
                method: "mining.set_difficulty",
                ..
            }))
        ));
    }
}
