//! One HTTP request: method, content type, the bounded body, then the request path shared
//! with stdio ([`super::super::wire`]).

use std::sync::Arc;

use hyper::header::{self, HeaderValue};
use hyper::StatusCode;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

use super::super::{errors, wire, Caller};
use super::conn::{Conn, Exec};

/// What every request of the server shares.
pub(super) struct Shared {
    pub(super) methods: jsonrpsee::Methods,
    pub(super) limits: wire::Limits,
    pub(super) max_request_bytes: usize,
}

fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(status: StatusCode, body: String) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Answered before the body was read to its end: the connection cannot be reused.
fn closing(mut r: HttpResponse) -> HttpResponse {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The content types jsonrpsee accepts as JSON.
fn is_json(v: Option<&HeaderValue>) -> bool {
    v.and_then(|v| v.to_str().ok()).is_some_and(|c| {
        let c = c.to_ascii_lowercase().replace(' ', "");
        matches!(
            c.as_str(),
            "application/json"
                | "application/json;charset=utf-8"
                | "application/json-rpc"
                | "application/json-rpc;charset=utf-8"
        )
    })
}

/// Why a request body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit (by `Content-Length` or by the bytes that arrived).
    TooLarge,
    /// The HTTP framing of the body is broken (bad chunk, connection cut).
    Broken,
}

/// Whether a declared `Content-Length` is already over `limit`.
pub fn declared_too_large(headers: &hyper::HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// Reads a body of at most `limit` bytes (stops reading at the first byte over it).
async fn read_body(body: hyper::body::Incoming, limit: usize) -> Result<Vec<u8>, BodyError> {
    use hyper::body::Body;
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
        match frame {
            None => return Ok(buf),
            Some(Err(_)) => return Err(BodyError::Broken),
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    if buf.len() + d.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    buf.extend_from_slice(d);
                }
            }
        }
    }
}

/// One HTTP request: `POST` with a JSON content type and a body within the limit, then
/// the shared request path ([`wire`]). Status codes: 200 with a JSON-RPC response (errors
/// included: parse errors and invalid requests too), 204 when only notifications were
/// sent, 413 over the size limit, 400 for a broken HTTP body, 405 / 415 for the wrong
/// method / content type.
pub(super) async fn http_request(
    req: HttpRequest<hyper::body::Incoming>,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    caller: Caller,
) -> HttpResponse {
    conn.request_started();
    if req.method() != hyper::Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Used HTTP Method is not allowed. POST is required\n",
        );
    }
    if !is_json(req.headers().get(header::CONTENT_TYPE)) {
        return closing(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Supplied content type is not allowed. Content-Type: application/json is required\n",
        ));
    }
    let limit = shared.max_request_bytes;
    let too_large = || {
        tracing::warn!(limit, "request body too large");
        closing(json(
            StatusCode::PAYLOAD_TOO_LARGE,
            errors::too_large_response(limit).to_string(),
        ))
    };
    if declared_too_large(req.headers(), limit) {
        return too_large();
    }
    let body = match read_body(req.into_body(), limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Broken) => {
            return closing(text(StatusCode::BAD_REQUEST, "Malformed HTTP body\n"))
        }
    };
    if !conn.begin_exec() {
        return closing(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "Connection closing\n",
        ));
    }
    let _exec = Exec(conn.clone());
    let msg = match wire::parse(&body, &shared.limits) {
        // An empty body is not JSON.
        wire::Message::Empty => wire::Message::Reject(wire::parse_error()),
        m => m,
    };
    let mut ext = jsonrpsee::Extensions::new();
    ext.insert(caller);
    let out = wire::handle(&shared.methods, msg, &ext, &shared.limits).await;
    match out {
        Some(body) => json(StatusCode::OK, body),
        None => {
            let mut r = HttpResponse::new(HttpBody::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_length_over_limit() {
        let mut h = hyper::HeaderMap::new();
        assert!(!declared_too_large(&h, 10));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert!(declared_too_large(&h, 10));
        assert!(!declared_too_large(&h, 11));
        assert!(is_json(Some(&HeaderValue::from_static(
            "Application/JSON; charset=UTF-8"
        ))));
        assert!(!is_json(Some(&HeaderValue::from_static("text/plain"))));
        assert!(!is_json(None));
    }
}
