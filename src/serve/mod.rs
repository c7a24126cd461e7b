//! `lookalike serve`: an HTTP service that checks posted images against an
//! index, for pipelines that gate each generated image before it ships.
//!
//! Built on axum and tokio (well-kept, widely used). The async workers only
//! move bytes: decoding, describing and searching run on the blocking pool,
//! at most [`Config::workers`] at a time, and the index and engine are
//! opened once and shared by all requests.
//!
//! * [`router`]: routes and the middleware around them (token, admission,
//!   timeout, metrics).
//! * [`handlers`]: what each route does.
//! * [`limits`]: request limits, error answers, the token comparison.
//! * [`metrics`]: Prometheus counters and the latency histogram.
//! * [`reload`]: the open index, swapped when another process commits a
//!   new generation.
//! * [`batch`]: with the GPU engine, concurrent requests checked together
//!   (one dispatch).

pub mod batch;
pub mod handlers;
pub mod limits;
pub mod metrics;
pub mod reload;
pub mod router;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::engine::Engine;
use crate::ingest::DecodeMode;
use crate::search::hamming::Kernel;

/// How the server runs; `lookalike serve`'s options.
#[derive(Clone)]
pub struct Config {
    /// The index folder.
    pub index_dir: PathBuf,
    /// Where to listen (loopback unless told otherwise).
    pub addr: SocketAddr,
    /// Describes queries; one engine for all requests.
    pub engine: Arc<dyn Engine>,
    /// Decode setting forced on the command line; `None`: the index's own.
    pub decode: Option<(DecodeMode, u32)>,
    /// Largest request body, in bytes (larger: 413).
    pub max_bytes: u64,
    /// Largest image, in pixels (more: 413, checked before decoding).
    pub max_pixels: u64,
    /// Bearer token every route but `/healthz` requires; `None`: open.
    pub token: Option<String>,
    /// Longest a request may take, body upload included (longer: 503).
    pub timeout: Duration,
    /// Check requests admitted at once, running or queued; more: 503 with
    /// `Retry-After`.
    pub max_concurrent: usize,
    /// Check requests doing CPU (or GPU) work at once; the rest of the
    /// admitted ones wait their turn.
    pub workers: usize,
    /// With an engine that batches (the GPU): how long a batch of check
    /// requests waits for more after its first (`batch`).
    pub batch_wait: Duration,
    /// How often the index manifest is looked at for a new generation.
    pub reload_every: Duration,
    /// Segments with at least this many records search embeddings by graph.
    pub ann_min_rows: usize,
    /// CPU Hamming scan kernel.
    pub kernel: Kernel,
    /// Also search the regions inside each image (`--no-regions`: off).
    pub regions: bool,
    /// Print one line per request on stderr.
    pub log_requests: bool,
}

/// Runs the server until SIGTERM or Ctrl-C, then finishes the requests in
/// flight and returns. Prints `listening on http://ADDR` on stderr once the
/// socket is bound (the port, when `addr` asked for port 0).
pub fn run(config: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers.clamp(1, 4))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<()> {
    let state = router::State::new(config.clone())?;
    let snap = state.index.current();
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    let local = listener.local_addr()?;
    eprintln!(
        "lookalike serve: listening on http://{local} (index {}, {} images, generation {}, {}{})",
        config.index_dir.display(),
        snap.index.live_count(),
        snap.generation,
        config.engine.label(),
        if config.token.is_some() {
            ", bearer token required"
        } else {
            ""
        }
    );
    drop(snap);
    let reloader = tokio::spawn(reload::watch(state.index.clone(), config.reload_every));
    let app = router::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server failed")?;
    reloader.abort();
    eprintln!("lookalike serve: stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("lookalike serve: shutting down, finishing requests in flight");
}
