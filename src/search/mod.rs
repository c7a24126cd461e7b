//! Search: exact Hamming top-k and range queries over PDQ (every query
//! orientation at once, on the CPU or batched on an engine's kernel),
//! embedding nearest neighbours, geometric verification, fusion of the
//! evidence into calibrated scores, verdicts, and near copies inside the
//! corpus. Only searches: reading folders and describing images is the
//! pipeline's job (`crate::pipeline`).

pub mod ann;
pub mod batch;
pub mod calibrate;
pub mod dedup;
pub mod fanout;
pub mod fusion;
pub mod hamming;
pub mod judge;
pub mod regions;
pub mod result;
pub mod shortlist;
pub mod verdict;
pub mod verify;

pub use hamming::{search, Match, SearchParams};
pub use result::{CheckReport, MatchOut, QueryResult, Thresholds};
pub use verdict::{verdict, Verdict};
