//! Search: exact Hamming top-k and range queries over PDQ, every query
//! orientation at once, and the verdict attached to each match.

pub mod ann;
pub mod calibrate;
pub mod check;
pub mod dedup;
pub mod eval;
pub mod fusion;
pub mod hamming;
pub mod verdict;
pub mod verify;

pub use hamming::{search, Match, SearchParams};
pub use verdict::{verdict, Verdict};
