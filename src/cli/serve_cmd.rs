//! `lookalike serve`: turns the arguments into a [`crate::serve::Config`]
//! and runs the server.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::args::ServeArgs;
use crate::ingest::decode::FAST_MIN_SIDE;
use crate::ingest::DecodeMode;

pub(crate) fn run(a: ServeArgs, quiet: bool) -> Result<i32> {
    let token = match &a.token_file {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the token file {}", p.display()))?;
            let t = text.trim();
            if t.is_empty() {
                bail!("token file {} is empty", p.display());
            }
            Some(t.to_string())
        }
    };
    if !(a.timeout_secs > 0.0 && a.timeout_secs.is_finite()) {
        bail!("--timeout-secs must be a positive number of seconds");
    }
    let decode = if a.exact {
        Some((DecodeMode::Exact, FAST_MIN_SIDE))
    } else {
        a.thumb_side.map(|n| (DecodeMode::Fast, n))
    };
    let workers = a.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let config = crate::serve::Config {
        index_dir: super::index_ref(&a.sel)?.dir().to_path_buf(),
        addr: a.addr,
        engine: super::engine(a.device.device, quiet)?,
        decode,
        max_bytes: a.max_mib.saturating_mul(1 << 20),
        max_pixels: a.max_pixels,
        token,
        timeout: Duration::from_secs_f64(a.timeout_secs),
        max_concurrent: a.max_concurrent.max(1),
        workers: workers.max(1),
        reload_every: Duration::from_millis(a.reload_ms.max(10)),
        batch_wait: Duration::from_millis(a.batch_wait_ms.min(10_000)),
        ann_min_rows: super::ann_min_rows(),
        kernel: super::hamming_kernel(),
        regions: !a.no_regions,
        log_requests: a.log_requests,
    };
    crate::serve::run(config)?;
    Ok(super::EXIT_OK)
}
