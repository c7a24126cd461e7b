//! The drivers: what `index`, `check`/`query` and `eval` do, end to end, on
//! top of storage (`crate::index`), search (`crate::search`) and an engine
//! (`crate::engine`). Each reads its inputs in bounded batches, so memory
//! stays flat whatever the corpus size.
//!
//! * [`mod@build`]: walk a folder, describe new or changed images, append them
//!   to an index in crash-safe commits.
//! * [`mod@check`]: describe query images and search an index; the report that
//!   `check --json` prints.
//! * [`check_parts`]: the same check fanned out over several index parts,
//!   in process (the stages are `crate::search::fanout`).
//! * [`mod@compact`]: merge every segment of an index into one.
//! * [`eval`]: score a check against ground truth.
//! * [`mod@merge_indexes`]: combine indexes built in parts into one.

pub mod build;
pub mod check;
pub mod check_parts;
pub mod compact;
mod deferred;
pub mod eval;
pub mod merge_indexes;

pub use build::{build, build_from, update, update_from, BuildOptions, BuildStats};
pub use check::{check, check_decoded, check_images, check_inputs, collect_queries, CheckOptions};
pub use compact::{compact, CompactStats};
pub use merge_indexes::{merge_indexes, MergeStats};
