//! Request limits and error answers. Every refusal is a JSON body
//! `{"error": "...", "kind": "..."}` with a 4xx status when the request is
//! at fault (bad image, over a limit, no token) and 503 when the server is
//! (busy, timed out): a bad upload never gets a 5xx.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ingest::{Failure, FailureKind};

/// Seconds a client is told to wait (`Retry-After`) when the server is busy.
pub const RETRY_AFTER_S: u64 = 1;

/// Most images one batch request may hold.
pub const MAX_BATCH_PARTS: usize = 256;

/// Largest `k` a request may ask for.
pub const MAX_K: usize = 1000;

/// Why a request was refused, for the answer and the `errors` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// Malformed request: empty body, bad query parameter, bad multipart (400).
    BadRequest,
    /// The body is over `--max-mib` (413).
    BodyTooLarge,
    /// The image is over a decode limit: pixels, aspect ratio (413).
    ImageLimit,
    /// The bytes are not a decodable image: corrupt, truncated, unknown (422).
    BadImage,
    /// More requests than `--max-concurrent` (503, `Retry-After`).
    Overloaded,
    /// The request took longer than `--timeout-secs` (503).
    Timeout,
    /// The engine failed, or a worker died (500).
    Internal,
}

impl ErrorKind {
    /// The `kind` field and the metric label.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::ImageLimit => "image_limit",
            ErrorKind::BadImage => "bad_image",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
        }
    }

    /// Every kind, for the metrics listing.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Unauthorized,
        ErrorKind::BadRequest,
        ErrorKind::BodyTooLarge,
        ErrorKind::ImageLimit,
        ErrorKind::BadImage,
        ErrorKind::Overloaded,
        ErrorKind::Timeout,
        ErrorKind::Internal,
    ];

    /// The HTTP status answering it.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::BodyTooLarge | ErrorKind::ImageLimit => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BadImage => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Overloaded | ErrorKind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The kind of a decode failure. From memory nothing is read, so an
    /// I/O failure can only be the body's fault too.
    pub fn of_failure(f: &Failure) -> ErrorKind {
        match f.kind {
            FailureKind::Limit => ErrorKind::ImageLimit,
            FailureKind::Content | FailureKind::Io => ErrorKind::BadImage,
        }
    }
}

/// A refused request: its kind and a message for the client.
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Said to the client.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// The body-size refusal.
    pub fn too_large(max_bytes: u64) -> ApiError {
        ApiError::new(
            ErrorKind::BodyTooLarge,
            format!(
                "request body larger than the {} limit (--max-mib)",
                mib_text(max_bytes)
            ),
        )
    }

    /// The JSON object of the answer.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message, "kind": self.kind.label() })
    }
}

/// "256 MiB", or bytes when under one MiB (tests use small limits).
pub fn mib_text(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.kind.status(), axum::Json(self.json())).into_response();
        if matches!(self.kind, ErrorKind::Overloaded | ErrorKind::Timeout) {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
        }
        if self.kind == ErrorKind::Unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r.extensions_mut().insert(self.kind);
        r
    }
}

/// Whether the headers carry `Authorization: Bearer <token>`. The token is
/// compared in time that depends on its length only, not on where the first
/// differing byte is.
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    constant_time_eq(given, token.as_bytes())
}

/// Byte equality that reads every byte of both inputs whatever they hold.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= (x ^ y) as u64;
    }
    // Keep the optimiser from turning the loop into an early exit.
    std::hint::black_box(diff) == 0
}

/// Query parameters of the check routes.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckParams {
    /// Candidates reported (default 10).
    pub k: Option<usize>,
    /// Ignore the index's embeddings.
    pub hash_only: Option<bool>,
    /// Geometric verification (default true).
    pub verify: Option<bool>,
    /// Also search the regions inside the image (default: the server's
    /// setting, on unless `serve --no-regions`).
    pub regions: Option<bool>,
    /// The name the result reports as `query` (default: the upload's file
    /// name, else "upload").
    pub name: Option<String>,
}

impl CheckParams {
    /// `k` checked against its bounds.
    pub fn top_k(&self) -> Result<usize, ApiError> {
        match self.k {
            None => Ok(10),
            Some(k) if (1..=MAX_K).contains(&k) => Ok(k),
            Some(k) => Err(ApiError::new(
                ErrorKind::BadRequest,
                format!("k={k} is out of range: 1 to {MAX_K}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "t0k"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0k"),
        );
        assert!(authorized(&h, "t0k"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic t0k"));
        assert!(!authorized(&h, "t0k"));
    }

    #[test]
    fn client_faults_are_4xx() {
        for k in ErrorKind::ALL {
            let s = k.status().as_u16();
            match k {
                ErrorKind::Overloaded | ErrorKind::Timeout | ErrorKind::Internal => {
                    assert!(s >= 500)
                }
                _ => assert!((400..500).contains(&s), "{k:?}"),
            }
        }
    }
}
