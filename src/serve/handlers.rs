//! What each route does. A check decodes the posted bytes in memory with
//! the same limits and decode setting as `check` on files, then answers
//! with the `lookalike.check/1` result object `check --json` gives for that
//! image. The work runs on the blocking pool, never on an async worker.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State as With};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rayon::prelude::*;

use super::batch::Images;
use super::limits::{ApiError, CheckParams, ErrorKind, MAX_BATCH_PARTS};
use super::router::Shared;
use crate::ingest::decode::decode;
use crate::pipeline::{check_decoded, CheckOptions};
use crate::search::result::{QueryResult, SCHEMA};

/// The OpenAPI 3 description of the routes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /healthz`: 200 while the server runs (no token needed).
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Any other path: 404 with a JSON message.
pub async fn not_found() -> Response {
    let mut r = (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "no such route (see /v1/openapi.json)",
            "kind": "not_found",
        })),
    )
        .into_response();
    r.extensions_mut().insert(ErrorKind::BadRequest);
    r
}

/// `GET /v1/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(With(st): With<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(&st.gauges()),
    )
        .into_response()
}

/// `GET /v1/info`: the served index, the engine and the limits.
pub async fn info(With(st): With<Shared>) -> Response {
    let snap = st.index.current();
    let idx = &snap.index;
    let m = idx.manifest();
    let c = &st.config;
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "service": "lookalike",
            "version": env!("CARGO_PKG_VERSION"),
            "schema": SCHEMA,
            "index": crate::ingest::names::path_text(idx.dir()),
            "generation": snap.generation,
            "segments": idx.segments().len(),
            "records": idx.record_count(),
            "images": idx.live_count(),
            "decode": snap.opts.mode.label(&snap.opts.limits),
            "embedding_model": idx.embedding_model(),
            "keypoints": idx.has_keypoints(),
            "profile": idx.profile().name(),
            "engine": c.engine.label(),
            "max_bytes": c.max_bytes,
            "max_pixels": c.max_pixels,
            "timeout_s": c.timeout.as_secs_f64(),
            "max_concurrent": c.max_concurrent,
            "workers": c.workers,
            "batching": st.batcher.is_some(),
            "batch_wait_ms": st.batcher.as_ref().map(|_| c.batch_wait.as_millis() as u64),
            "default_k": 10,
            "built_with": m.writer.clone(),
        }),
    )
}

/// `POST /v1/check`: one image as the raw body, or as the multipart field
/// `image`. Query parameters: `k`, `hash_only`, `verify`, `regions`, `name`.
pub async fn check(With(st): With<Shared>, req: Request) -> Result<Response, ApiError> {
    let params = params(&req)?;
    let (upload, body) = if is_multipart(&req) {
        let mut mp = Multipart::from_request(req, &st)
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text(), st.config.max_bytes))?;
        let mut found = None;
        while let Some(field) = mp
            .next_field()
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text(), st.config.max_bytes))?
        {
            if field.name() == Some("image") {
                let name = field.file_name().map(str::to_string);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| multipart_error(e.status(), e.body_text(), st.config.max_bytes))?;
                found = Some((name, bytes));
                break;
            }
        }
        found.ok_or_else(|| {
            ApiError::new(
                ErrorKind::BadRequest,
                "multipart body without a field named \"image\"",
            )
        })?
    } else {
        let body = Bytes::from_request(req, &st).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(st.config.max_bytes)
            } else {
                ApiError::new(ErrorKind::BadRequest, e.body_text())
            }
        })?;
        (None, body)
    };
    if body.is_empty() {
        return Err(ApiError::new(
            ErrorKind::BadRequest,
            "empty body: send the image's bytes as the body (or as the multipart field \"image\")",
        ));
    }
    let name = params
        .name
        .clone()
        .or(upload)
        .unwrap_or_else(|| "upload".into());
    let mut out = run_checks(&st, &params, vec![(name, body)]).await?;
    let r = out.pop().expect("one result per image")?;
    Ok(json_response(StatusCode::OK, &r))
}

/// `POST /v1/check/batch`: a multipart body, each part one image (any
/// field name). Answers `{"results": [...]}` in part order: the result
/// object of each image, or `{"query", "error", "kind"}` for a part that
/// could not be checked.
pub async fn batch(With(st): With<Shared>, req: Request) -> Result<Response, ApiError> {
    let params = params(&req)?;
    if !is_multipart(&req) {
        return Err(ApiError::new(
            ErrorKind::BadRequest,
            "a batch is a multipart/form-data body with one image per part",
        ));
    }
    let max = st.config.max_bytes;
    let mut mp = Multipart::from_request(req, &st)
        .await
        .map_err(|e| multipart_error(e.status(), e.body_text(), max))?;
    let mut parts = vec![];
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| multipart_error(e.status(), e.body_text(), max))?
    {
        if parts.len() == MAX_BATCH_PARTS {
            return Err(ApiError::new(
                ErrorKind::BadRequest,
                format!("more than {MAX_BATCH_PARTS} images in one batch"),
            ));
        }
        let name = field
            .file_name()
            .or(field.name())
            .map(str::to_string)
            .unwrap_or_else(|| format!("part-{}", parts.len() + 1));
        let bytes = field
            .bytes()
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text(), max))?;
        parts.push((name, bytes));
    }
    if parts.is_empty() {
        return Err(ApiError::new(ErrorKind::BadRequest, "batch without images"));
    }
    let names: Vec<String> = parts.iter().map(|p| p.0.clone()).collect();
    let out = run_checks(&st, &params, parts).await?;
    let snap = st.index.current();
    let mut results = Vec::with_capacity(out.len());
    let mut checked = 0;
    for (name, r) in names.into_iter().zip(out) {
        results.push(match r {
            Ok(q) => {
                checked += 1;
                serde_json::to_value(&q).map_err(internal)?
            }
            Err(e) => {
                let mut v = e.json();
                v["query"] = serde_json::Value::String(name);
                v
            }
        });
    }
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "schema": SCHEMA,
            "index": crate::ingest::names::path_text(snap.index.dir()),
            "index_records": snap.index.live_count(),
            "images_checked": checked,
            "results": results,
        }),
    ))
}

/// Decodes and checks `images` (name, bytes) on a worker (with a batching
/// engine: decodes there, then checks in the next batch), against the
/// index as it is now. Per image its result or why it was refused; `Err`
/// when the whole request failed (the engine, a dead worker).
async fn run_checks(
    st: &Shared,
    params: &CheckParams,
    images: Vec<(String, Bytes)>,
) -> Result<Vec<Result<QueryResult, ApiError>>, ApiError> {
    let top_k = params.top_k()?;
    // Wait for a worker; admission already bounds how many wait here.
    let permit = st.workers.clone().acquire_owned().await.map_err(internal)?;
    let snap = st.index.current();
    let mut opts = snap.opts.clone();
    opts.top_k = top_k;
    opts.verify = params.verify.unwrap_or(true);
    opts.regions = params.regions.unwrap_or(opts.regions);
    if params.hash_only.unwrap_or(false) {
        opts.embed = false;
    }
    let batching = st.batcher.is_some();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // On the rayon pool, not tokio's blocking threads: the check's own
    // parallel loops then run on the thread that waits for them, and no
    // idle pool thread spins against a blocking thread for the cores.
    let metrics = st.metrics.clone();
    rayon::spawn(move || {
        let _permit = permit;
        let (good, refused) = decode_all(images, &opts);
        let now = (!batching && !good.is_empty()).then(|| {
            metrics.record_batch(good.len());
            check_decoded(&snap.index, &good, &opts).map(|r| r.results)
        });
        let _ = tx.send((good, refused, now, snap, opts));
    });
    let (good, refused, now, snap, opts) = rx.await.map_err(internal)?;
    let results = match (now, &st.batcher) {
        (Some(r), _) => r.map_err(internal)?,
        // Decoded, and the worker freed: the check joins the next batch.
        (None, Some(b)) if !good.is_empty() => b.check(snap, opts, good).await.map_err(internal)?,
        (None, _) => vec![],
    };
    let mut found = results.into_iter();
    Ok(refused
        .into_iter()
        .map(|r| match r {
            None => found
                .next()
                .ok_or_else(|| internal("a checked image has no result")),
            Some(e) => Err(e),
        })
        .collect())
}

/// The images that decoded (name, content hash, pixels), in order, and per
/// posted image why it was refused (`None`: it is among the decoded).
fn decode_all(
    images: Vec<(String, Bytes)>,
    opts: &CheckOptions,
) -> (Images, Vec<Option<ApiError>>) {
    let decoded: Vec<Result<_, ApiError>> = images
        .into_par_iter()
        .map(|(name, bytes)| {
            if bytes.is_empty() {
                return Err(ApiError::new(ErrorKind::BadRequest, "empty image"));
            }
            let hash = xxhash_rust::xxh3::xxh3_128(&bytes);
            decode(&bytes, opts.mode, &opts.limits)
                .map(|d| (name, hash, d.rgb))
                .map_err(|f| ApiError::new(ErrorKind::of_failure(&f), f.reason))
        })
        .collect();
    let mut good = Vec::with_capacity(decoded.len());
    let refused = decoded
        .into_iter()
        .map(|d| match d {
            Ok(img) => {
                good.push(img);
                None
            }
            Err(e) => Some(e),
        })
        .collect();
    (good, refused)
}

/// The query parameters, or 400 naming the bad one.
fn params(req: &Request) -> Result<CheckParams, ApiError> {
    match req.uri().query() {
        None => Ok(CheckParams::default()),
        Some(_) => Query::<CheckParams>::try_from_uri(req.uri())
            .map(|q| q.0)
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::BadRequest,
                    format!(
                        "{} (parameters: k, hash_only, verify, regions, name)",
                        e.body_text()
                    ),
                )
            }),
    }
}

fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// A multipart refusal: over the body limit (413) or malformed (400).
fn multipart_error(status: StatusCode, text: String, max_bytes: u64) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(max_bytes)
    } else {
        ApiError::new(ErrorKind::BadRequest, text)
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

/// `value` as `check --json` prints it (pretty, with escaped name bytes
/// written as lone surrogates), newline-terminated.
fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let mut body = Vec::with_capacity(4096);
    if let Err(e) = crate::report::json::write_pretty(&mut body, value) {
        return internal(e).into_response();
    }
    body.push(b'\n');
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
