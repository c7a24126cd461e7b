//! Routes and the middleware around them. From the outside in: metrics and
//! the request log (every route), the per-request timeout, the body limits,
//! the bearer token (every route but `/healthz`), and on the check routes
//! the admission limit that answers 503 instead of queueing without bound.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State as With};
use axum::http::header;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Semaphore;

use super::batch::Batcher;
use super::handlers;
use super::limits::{authorized, ApiError, ErrorKind, RETRY_AFTER_S};
use super::metrics::{Gauges, Metrics};
use super::reload::IndexHandle;
use super::Config;

/// What every request shares.
pub struct State {
    /// The server's options.
    pub config: Config,
    /// The served index, swapped on reload.
    pub index: Arc<IndexHandle>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Batches concurrent checks when the engine gains from it (GPU).
    pub batcher: Option<Batcher>,
    /// Admission: one permit per check request in flight.
    pub admit: Arc<Semaphore>,
    /// One permit per check doing CPU/GPU work.
    pub workers: Arc<Semaphore>,
}

/// The state as handlers and middleware get it.
pub type Shared = Arc<State>;

impl State {
    /// Opens the index and sets up the limits.
    pub fn new(config: Config) -> Result<Shared> {
        let index = Arc::new(IndexHandle::open(config.clone())?);
        let metrics = Arc::new(Metrics::default());
        let batcher = if config.engine.batches_queries() {
            Some(Batcher::start(config.batch_wait, metrics.clone())?)
        } else {
            None
        };
        Ok(Arc::new(State {
            batcher,
            admit: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            metrics,
            index,
            config,
        }))
    }

    /// The gauges `/metrics` shows next to the counters.
    pub fn gauges(&self) -> Gauges {
        let snap = self.index.current();
        Gauges {
            in_flight: self.config.max_concurrent.max(1) - self.admit.available_permits(),
            generation: snap.generation,
            images: snap.index.live_count(),
            unverifiable: snap.index.unverifiable().0,
        }
    }
}

/// The application: every route with its middleware.
pub fn router(state: Shared) -> Router {
    let checks = Router::new()
        .route("/v1/check", post(handlers::check))
        .route("/v1/check/batch", post(handlers::batch))
        .layer(from_fn_with_state(state.clone(), admit));
    let guarded = Router::new()
        .merge(checks)
        .route("/v1/info", get(handlers::info))
        .route("/v1/openapi.json", get(handlers::openapi))
        .route("/metrics", get(handlers::metrics))
        .layer(from_fn_with_state(state.clone(), auth));
    let body_limit = usize::try_from(state.config.max_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .merge(guarded)
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn_with_state(state.clone(), announced_size))
        .layer(from_fn_with_state(state.clone(), timeout))
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// 413 at once for a body whose `Content-Length` is over the limit, before
/// a byte of it is read (the body limit alone would wait for it to arrive).
async fn announced_size(With(st): With<Shared>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > st.config.max_bytes) {
        return ApiError::too_large(st.config.max_bytes).into_response();
    }
    next.run(req).await
}

/// 401 unless the configured bearer token is presented.
async fn auth(With(st): With<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.config.token {
        if !authorized(req.headers(), token) {
            return ApiError::new(
                ErrorKind::Unauthorized,
                "missing or wrong bearer token: send the header `Authorization: Bearer <token>` \
                 with the token of --token-file",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// 503 with `Retry-After` when `--max-concurrent` check requests are in
/// flight already; the permit is held until the answer (or the timeout).
async fn admit(With(st): With<Shared>, req: Request, next: Next) -> Response {
    let Ok(_permit) = st.admit.clone().try_acquire_owned() else {
        return ApiError::new(
            ErrorKind::Overloaded,
            format!(
                "server busy: {} check requests in flight (--max-concurrent); retry after {RETRY_AFTER_S} s",
                st.config.max_concurrent
            ),
        )
        .into_response();
    };
    next.run(req).await
}

/// 503 when a request (upload included) takes longer than `--timeout-secs`.
/// Work already on a worker finishes there; its answer is dropped.
async fn timeout(With(st): With<Shared>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(st.config.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            ErrorKind::Timeout,
            format!(
                "request took longer than the {} s limit (--timeout-secs)",
                st.config.timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// Counts every answer for `/metrics` and logs it with `--log-requests`.
async fn observe(With(st): With<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let res = next.run(req).await;
    let took = start.elapsed();
    let error = res.extensions().get::<ErrorKind>().copied();
    st.metrics
        .record(&route, res.status().as_u16(), took, error);
    if st.config.log_requests {
        eprintln!(
            "{method} {route} {} {:.1} ms{}",
            res.status().as_u16(),
            took.as_secs_f64() * 1e3,
            error.map(|k| format!(" {}", k.label())).unwrap_or_default()
        );
    }
    res
}
