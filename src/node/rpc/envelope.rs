//! The JSON-RPC envelope: requests (single or batch) in, replies out, with the HTTP status and
//! error codes Bitcoin Core uses.

use super::methods::call;
use super::Context;
use serde_json::{json, Value};

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcError {
    /// The code Core answers the same failure with (e.g. -32601 method not found, -8 invalid
    /// parameter).
    pub(crate) code: i64,
    /// What went wrong, in Core's words where Core has them.
    pub(crate) message: String,
}

impl RpcError {
    pub(super) fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }
    pub(super) fn params(message: impl Into<String>) -> RpcError {
        RpcError::new(-32602, format!("Invalid params: {}", message.into()))
    }
}

/// Core's codes.
pub(super) const PARSE_ERROR: i64 = -32700;
pub(super) const INVALID_REQUEST: i64 = -32600;
pub(super) const METHOD_NOT_FOUND: i64 = -32601;
pub(super) const INVALID_PARAMETER: i64 = -8;
pub(super) const INVALID_ADDRESS: i64 = -5;
pub(super) const DESERIALIZATION_ERROR: i64 = -22;
pub(super) const MISC_ERROR: i64 = -1;

/// Handles one HTTP body: returns the HTTP status and the JSON reply, as Core's HTTP server does
/// (JSON-RPC 1.0 errors come with status 500, or 404 for an unknown method; 2.0 always 200).
pub(crate) fn dispatch(ctx: &Context, body: &[u8]) -> (u16, String) {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let reply = json!({"result": null, "error": {"code": PARSE_ERROR, "message": format!("Parse error: {e}")}, "id": null});
            return (500, reply.to_string());
        }
    };
    match request {
        Value::Array(batch) => {
            let replies: Vec<Value> = batch.iter().map(|r| one(ctx, r).1).collect();
            (200, Value::Array(replies).to_string())
        }
        single => {
            let (status, reply) = one(ctx, &single);
            (status, reply.to_string())
        }
    }
}

/// The `longpollid` of a single `getblocktemplate` request, if the body is one: the server waits
/// for the tip to move (asynchronously, holding no thread) before it dispatches such a request.
/// A longpoll inside a batch is answered at once.
pub(crate) fn longpoll_id(body: &[u8]) -> Option<String> {
    if !body.windows(10).any(|w| w == b"longpollid") {
        return None;
    }
    let request: Value = serde_json::from_slice(body).ok()?;
    if request.get("method")?.as_str()? != "getblocktemplate" {
        return None;
    }
    let id = request.get("params")?.get(0)?.get("longpollid")?.as_str()?;
    Some(id.to_string())
}

pub(super) fn one(ctx: &Context, request: &Value) -> (u16, Value) {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let v2 = request.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let result = match request.get("method").and_then(Value::as_str) {
        None => Err(RpcError::new(
            INVALID_REQUEST,
            "Invalid Request: no method string",
        )),
        Some(method) => {
            let params = match request.get("params") {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => Ok(a.clone()),
                Some(_) => Err(RpcError::params("params must be an array")),
            };
            params.and_then(|p| call(ctx, method, &p))
        }
    };
    match (result, v2) {
        (Ok(value), false) => (200, json!({"result": value, "error": null, "id": id})),
        (Ok(value), true) => (200, json!({"jsonrpc": "2.0", "result": value, "id": id})),
        (Err(e), v2) => {
            let error = json!({"code": e.code, "message": e.message});
            if v2 {
                (200, json!({"jsonrpc": "2.0", "error": error, "id": id}))
            } else {
                let status = if e.code == METHOD_NOT_FOUND { 404 } else { 500 };
                (status, json!({"result": null, "error": error, "id": id}))
            }
        }
    }
}
