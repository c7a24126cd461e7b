//! lookalike: index a training corpus, then ask whether generated images copied
//! from it. The pipeline is ingest → descriptors → index → search → report; the
//! binary (`src/main.rs`) only wires these together.

pub mod cli;
pub mod cnn;
pub mod descriptors;
pub mod error;
pub mod gpu;
pub mod index;
pub mod ingest;
pub mod report;
pub mod resample;
pub mod search;
