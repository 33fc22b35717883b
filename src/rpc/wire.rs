//! The request path both transports share: one message (a stdio line or an HTTP body) is
//! framed and validated by [`parse`] — pure, nothing runs, no I/O (the fuzz target calls
//! it) — then [`handle`] runs its valid calls against the method table and assembles the
//! answer within the response bound.
//!
//! Rules (docs/rpc.md, "Limits"):
//! - a message is one request object or a batch (array) of 1..=`max_batch` of them;
//!   invalid JSON → -32700, an empty batch or a message that is neither → -32600, a longer
//!   batch → -31008 (nothing runs);
//! - every request object is validated before anything runs, in a batch element by
//!   element: `jsonrpc` must be `"2.0"`, `method` a string, `params` absent, null, an
//!   object or an array, and `id` absent (a notification: run, never answered), null, a
//!   string or an integer (-2^63 ..= 2^64-1, written without fraction or exponent).
//!   Anything else gets -32600 with the id echoed as the client wrote it, and never runs;
//! - the id of a call is echoed byte for byte (jsonrpsee itself only knows u64 and string
//!   ids: calls are dispatched with a null id and the client's id is put back);
//! - the responses of one message together stay within `max_response_bytes` (plus one
//!   short error object per batch element): a call whose result does not fit gets -31008
//!   (it ran; its result is dropped) and the rest of the batch does not run (-31008 each).

use jsonrpsee::core::JsonRawValue as RawValue;
use jsonrpsee::types::{ErrorCode, ErrorObject, Id, Params};
use jsonrpsee::{ConnectionId, Extensions, MethodCallback, MethodResponse, Methods};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::errors::{self, codes};

/// Default largest batch (number of request objects in one array).
pub const DEFAULT_MAX_BATCH: usize = 100;
/// Default bound of the responses to one message (one call or a whole batch): 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The bounds of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest batch.
    pub max_batch: usize,
    /// Bound of the responses to one message.
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: DEFAULT_MAX_BATCH,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// One request object, validated.
#[derive(Debug)]
pub enum Entry<'a> {
    /// A call: run, answered with `id` (the raw JSON text the client sent) echoed.
    Call {
        /// Raw JSON of the id.
        id: &'a str,
        /// Method name.
        method: String,
        /// Raw JSON of the params (absent or null: `None`).
        params: Option<&'a str>,
    },
    /// A notification: run, never answered.
    Notification {
        /// Method name.
        method: String,
        /// Raw JSON of the params.
        params: Option<&'a str>,
    },
    /// Not a valid request: answered with this error response, never run.
    Invalid(String),
}

/// A framed message.
#[derive(Debug)]
pub enum Message<'a> {
    /// Only whitespace (stdio skips it; HTTP answers a parse error).
    Empty,
    /// One request object.
    Single(Entry<'a>),
    /// A batch of 1..=`max_batch` entries.
    Batch(Vec<Entry<'a>>),
    /// The whole message is refused with this response; nothing runs.
    Reject(String),
}

/// JSON whitespace (RFC 8259): what may surround a message.
fn is_json_ws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A complete error response. `id` is raw JSON text.
pub fn error_response(id: &str, code: i32, message: &str, cause: Option<&str>) -> String {
    let mut err = serde_json::json!({"code": code, "message": message});
    if let Some(c) = cause {
        err["data"] = errors::cause_data(c);
    }
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{err}}}")
}

/// -32700, id null.
pub fn parse_error() -> String {
    error_response("null", codes::PARSE_ERROR, "Parse error", None)
}

fn invalid(id: &str, cause: &str) -> String {
    error_response(id, codes::INVALID_REQUEST, "Invalid request", Some(cause))
}

/// Frames and validates one message. Runs nothing.
pub fn parse<'a>(body: &'a [u8], limits: &Limits) -> Message<'a> {
    if body.iter().all(is_json_ws) {
        return Message::Empty;
    }
    let Ok(top) = serde_json::from_slice::<&RawValue>(body) else {
        return Message::Reject(parse_error());
    };
    let text = top.get();
    if !text.starts_with('[') {
        return Message::Single(entry(top));
    }
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else {
        return Message::Reject(parse_error());
    };
    if items.is_empty() {
        return Message::Reject(invalid("null", "empty batch"));
    }
    if items.len() > limits.max_batch {
        return Message::Reject(error_response(
            "null",
            codes::TOO_LARGE,
            errors::message(codes::TOO_LARGE),
            Some(&format!(
                "batch of {} requests exceeds the limit of {} (nothing was run)",
                items.len(),
                limits.max_batch
            )),
        ));
    }
    Message::Batch(items.into_iter().map(entry).collect())
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// The members of a request object, as raw JSON (`None`: absent; a present `null` is
/// `Some("null")`).
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

/// Why an id is refused (`None`: acceptable).
pub fn bad_id(raw: &str) -> Option<&'static str> {
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Null) | Ok(Value::String(_)) => None,
        Ok(Value::Number(n)) if n.is_i64() || n.is_u64() => None,
        Ok(Value::Number(_)) => Some("a number with a fraction, an exponent or out of range"),
        Ok(Value::Bool(_)) => Some("a boolean"),
        Ok(Value::Array(_)) => Some("an array"),
        Ok(Value::Object(_)) => Some("an object"),
        Err(_) => Some("unreadable"),
    }
}

fn entry(raw: &RawValue) -> Entry<'_> {
    let text = raw
        .get()
        .trim_matches(|c: char| c.is_ascii() && is_json_ws(&(c as u8)));
    if !text.starts_with('{') {
        return Entry::Invalid(invalid("null", "not a request object"));
    }
    let req: RawRequest<'_> = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            return Entry::Invalid(invalid(
                "null",
                &format!(
                    "malformed request object: {}",
                    errors::scrub(&e.to_string())
                ),
            ))
        }
    };
    let id = req.id.map(RawValue::get);
    if let Some(raw_id) = id {
        if let Some(why) = bad_id(raw_id) {
            return Entry::Invalid(invalid(
                raw_id,
                &format!(
                    "id must be a string, an integer or null (got {why}); the request was not run"
                ),
            ));
        }
    }
    let echo = id.unwrap_or("null");
    if req
        .jsonrpc
        .map(RawValue::get)
        .map(serde_json::from_str::<String>)
        .and_then(Result::ok)
        .as_deref()
        != Some("2.0")
    {
        return Entry::Invalid(invalid(echo, "\"jsonrpc\" must be \"2.0\""));
    }
    let Some(method) = req
        .method
        .map(RawValue::get)
        .and_then(|m| serde_json::from_str::<String>(m).ok())
    else {
        return Entry::Invalid(invalid(echo, "\"method\" must be a string"));
    };
    let params = match req.params.map(RawValue::get) {
        None | Some("null") => None,
        Some(p) if p.starts_with('{') || p.starts_with('[') => Some(p),
        Some(_) => {
            return Entry::Invalid(invalid(echo, "\"params\" must be an object or an array"))
        }
    };
    match id {
        Some(id) => Entry::Call { id, method, params },
        None => Entry::Notification { method, params },
    }
}

/// Runs one call with a null id and at most `max` bytes of response.
async fn run(
    methods: &Methods,
    method: &str,
    params: Option<&str>,
    ext: &Extensions,
    max: usize,
) -> MethodResponse {
    let params = Params::new(params).into_owned();
    match methods.method(method) {
        Some(MethodCallback::Async(cb)) => {
            cb(Id::Null, params, ConnectionId(0), max, ext.clone()).await
        }
        Some(MethodCallback::Sync(cb)) => cb(Id::Null, params, max, ext.clone()),
        _ => MethodResponse::error(Id::Null, ErrorObject::from(ErrorCode::MethodNotFound)),
    }
}

/// jsonrpsee's code for a response over the bound (its `BoundedWriter`). No kubecert method
/// error uses it (kubecert's codes are in [`errors::KUBECERT_CODES`]), so a call answered with
/// it ran over the bound, and gets kubecert's [`codes::TOO_LARGE`] with the cause.
const JSONRPSEE_OVERSIZED: i32 = jsonrpsee::types::error::OVERSIZED_RESPONSE_CODE;

fn too_large(id: &str, cause: &str) -> String {
    error_response(
        id,
        codes::TOO_LARGE,
        errors::message(codes::TOO_LARGE),
        Some(cause),
    )
}

/// Puts the client's raw `id` into a response made with a null id.
fn with_id(resp: &str, id: &str) -> String {
    const PREFIX: &str = "{\"jsonrpc\":\"2.0\",\"id\":null,";
    if let Some(rest) = resp.strip_prefix(PREFIX) {
        return format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},{rest}");
    }
    // jsonrpsee always writes that prefix; anything else is rebuilt.
    match (
        serde_json::from_str::<Value>(resp),
        serde_json::from_str::<Value>(id),
    ) {
        (Ok(mut v), Ok(idv)) if v.is_object() => {
            v["id"] = idv;
            v.to_string()
        }
        _ => error_response(id, codes::INTERNAL, "Internal error", None),
    }
}

/// What is left of the response bound of one message.
struct Budget {
    limit: usize,
    left: usize,
    exhausted: bool,
}

impl Budget {
    /// Runs a call (or answers that it was not run) within the budget.
    async fn call(
        &mut self,
        methods: &Methods,
        id: Option<&str>,
        method: &str,
        params: Option<&str>,
        ext: &Extensions,
    ) -> Option<String> {
        if self.exhausted {
            tracing::warn!(method, "batch response bound reached: call not run");
            return id.map(|id| {
                too_large(
                    id,
                    &format!(
                        "not run: the responses of this batch reached the {}-byte bound",
                        self.limit
                    ),
                )
            });
        }
        let rp = run(methods, method, params, ext, self.left).await;
        if rp.as_error_code() == Some(JSONRPSEE_OVERSIZED) {
            self.exhausted = true;
            tracing::warn!(
                method,
                limit = self.limit,
                "response over the bound: result dropped"
            );
            return id.map(|id| {
                too_large(
                    id,
                    &format!(
                        "the call ran but its response exceeds the {} bytes left of the \
                         {}-byte response bound; the result was dropped",
                        self.left, self.limit
                    ),
                )
            });
        }
        let id = id?;
        let out = with_id(rp.into_json().get(), id);
        self.left = self.left.saturating_sub(out.len());
        if self.left == 0 {
            self.exhausted = true;
        }
        Some(out)
    }
}

/// Runs the valid calls of `msg` (with `ext` as their extensions: the socket's caller) and
/// returns the answer; `None` when nothing is to be answered (notifications only, or an
/// empty message).
pub async fn handle(
    methods: &Methods,
    msg: Message<'_>,
    ext: &Extensions,
    limits: &Limits,
) -> Option<String> {
    let mut budget = Budget {
        limit: limits.max_response_bytes,
        left: limits.max_response_bytes,
        exhausted: false,
    };
    match msg {
        Message::Empty => None,
        Message::Reject(r) => Some(r),
        Message::Single(e) => one(methods, e, ext, &mut budget).await,
        Message::Batch(entries) => {
            let mut out = Vec::new();
            for e in entries {
                if let Some(r) = one(methods, e, ext, &mut budget).await {
                    out.push(r);
                }
            }
            if out.is_empty() {
                None
            } else {
                Some(format!("[{}]", out.join(",")))
            }
        }
    }
}

async fn one(
    methods: &Methods,
    e: Entry<'_>,
    ext: &Extensions,
    budget: &mut Budget,
) -> Option<String> {
    match e {
        Entry::Invalid(r) => Some(r),
        Entry::Call { id, method, params } => {
            budget.call(methods, Some(id), &method, params, ext).await
        }
        Entry::Notification { method, params } => {
            budget.call(methods, None, &method, params, ext).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits {
            max_batch: 3,
            max_response_bytes: 1000,
        }
    }

    fn parse_str(s: &str) -> Message<'_> {
        parse(s.as_bytes(), &lim())
    }

    fn invalid_cause(e: &Entry<'_>) -> (Value, String) {
        let Entry::Invalid(r) = e else {
            panic!("not invalid: {e:?}");
        };
        let v: Value = serde_json::from_str(r).expect("json");
        assert_eq!(v["error"]["code"], -32600, "{v}");
        (
            v["id"].clone(),
            v["error"]["data"]["cause"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    #[test]
    fn ids() {
        for bad in [
            "1.5",
            "-2.5",
            "1e3",
            "1.0",
            "{}",
            "[1]",
            "true",
            "18446744073709551616",
        ] {
            let m = format!("{{\"jsonrpc\":\"2.0\",\"id\":{bad},\"method\":\"check\"}}");
            let Message::Single(e) = parse_str(&m) else {
                panic!("{m}");
            };
            let (id, cause) = invalid_cause(&e);
            assert_eq!(id, serde_json::from_str::<Value>(bad).expect("id"), "{m}");
            assert!(
                cause.contains("id must be a string, an integer or null"),
                "{cause}"
            );
        }
        for good in [
            "1",
            "-3",
            "0",
            "\"a\"",
            "null",
            "18446744073709551615",
            "-9223372036854775808",
        ] {
            let m = format!("{{\"jsonrpc\":\"2.0\",\"id\":{good},\"method\":\"check\"}}");
            assert!(
                matches!(parse_str(&m), Message::Single(Entry::Call { id, .. }) if id == good),
                "{m}"
            );
        }
        let m = "{\"jsonrpc\":\"2.0\",\"method\":\"check\",\"params\":{}}";
        assert!(matches!(
            parse_str(m),
            Message::Single(Entry::Notification {
                params: Some("{}"),
                ..
            })
        ));
    }

    #[test]
    fn framing() {
        assert!(matches!(parse_str("  \r\n"), Message::Empty));
        for garbage in ["{not json", "nul", "[1,", "}", "\u{c}{}"] {
            let Message::Reject(r) = parse_str(garbage) else {
                panic!("{garbage}");
            };
            assert!(r.contains("-32700"), "{r}");
        }
        assert!(matches!(parse(b"\xff{}", &lim()), Message::Reject(_)));
        let Message::Reject(r) = parse_str("[]") else {
            panic!("[]");
        };
        assert!(r.contains("-32600"));
        let Message::Reject(r) = parse_str("[1,2,3,4]") else {
            panic!("long batch");
        };
        assert!(
            r.contains("-31008") && r.contains("batch of 4 requests"),
            "{r}"
        );
        let Message::Batch(b) = parse_str("[1, {\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"x\"}, {\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"x\"}]") else {
            panic!("batch");
        };
        assert_eq!(invalid_cause(&b[0]).1, "not a request object");
        assert!(invalid_cause(&b[1]).1.contains("duplicate field"));
        assert_eq!(invalid_cause(&b[2]).0, 7);
        let Message::Single(e) =
            parse_str("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}")
        else {
            panic!();
        };
        assert!(invalid_cause(&e).1.contains("params"));
    }

    fn run_msg(s: &str, limits: Limits) -> Option<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let module =
            crate::rpc::module(crate::rpc::Enforce::None, crate::confine::Roots::default());
        rt.block_on(handle(
            &module,
            parse(s.as_bytes(), &limits),
            &Extensions::new(),
            &limits,
        ))
    }

    #[test]
    fn ids_are_echoed_and_responses_bounded() {
        let r = run_msg(
            "{\"jsonrpc\":\"2.0\",\"id\":-7,\"method\":\"version\"}",
            Limits::default(),
        )
        .expect("answer");
        assert!(
            r.starts_with("{\"jsonrpc\":\"2.0\",\"id\":-7,\"result\":"),
            "{r}"
        );
        // Over the bound: -31008 with the id.
        let small = Limits {
            max_batch: 10,
            max_response_bytes: 300,
        };
        let r = run_msg(
            "{\"jsonrpc\":\"2.0\",\"id\":\"d\",\"method\":\"rpc.discover\"}",
            small,
        )
        .expect("answer");
        let v: Value = serde_json::from_str(&r).expect("json");
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            ("d".into(), (-31008).into())
        );
        // A batch: the second version does not fit; the third does not run.
        let v1 = run_msg(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}",
            Limits::default(),
        )
        .expect("answer");
        let budget = Limits {
            max_batch: 10,
            max_response_bytes: v1.len() + 10,
        };
        let r = run_msg(
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"},{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"version\"},{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"version\"}]",
            budget,
        )
        .expect("answer");
        let v: Value = serde_json::from_str(&r).expect("json");
        assert!(v[0]["result"].is_object(), "{v}");
        assert_eq!(v[1]["error"]["code"], -31008);
        assert!(v[2]["error"]["data"]["cause"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not run"));
        // Notifications only: no answer.
        assert_eq!(
            run_msg(
                "[{\"jsonrpc\":\"2.0\",\"method\":\"version\"}]",
                Limits::default()
            ),
            None
        );
    }
}
