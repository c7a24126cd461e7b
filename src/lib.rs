//! lookalike: index a training corpus, then ask whether generated images
//! copied from it.
//!
//! The library is what the `lookalike` binary, and the coming Python
//! package and HTTP service, call. Its modules, by concern:
//!
//! * [`ingest`]: find image files, read and decode them within limits.
//! * [`descriptors`]: one module per descriptor (PDQ, pHash, trimmed view,
//!   keypoints, learned embedding), each the CPU reference.
//! * [`cnn`]: the network as data and its CPU layers (the embedding model).
//! * [`engine`]: one interface, two engines — the CPU engine and the WGSL
//!   engine ([`gpu`]) — that describe images and scan hashes alike.
//! * [`index`]: the on-disk index — format, segments, memory maps, writer,
//!   compatibility policy.
//! * [`search`]: Hamming scans, ANN, verification, fusion, calibration,
//!   verdicts, dedup.
//! * [`pipeline`]: the drivers — build or update an index, check images,
//!   evaluate a run.
//! * [`report`]: table, CSV, HTML output.
//! * [`cli`]: the command line (arguments and printing only).
//!
//! Build an index, then check images against it:
//!
//! ```no_run
//! use lookalike::index::Index;
//! use lookalike::pipeline::{self, BuildOptions, CheckOptions};
//!
//! let hidden = indicatif::ProgressBar::hidden();
//! let dir = std::path::Path::new("indexes/mymodel");
//! let stats = pipeline::update(dir, "data/train".as_ref(), &BuildOptions::new(), &hidden)?;
//! println!("{} images described", stats.described);
//!
//! let index = Index::open(dir)?;
//! let opts = CheckOptions::for_index(&index);
//! let (files, skipped) = pipeline::collect_queries("outputs".as_ref());
//! let report = pipeline::check(&index, files, skipped, &opts, &hidden)?;
//! println!("replication rate {:.1} %", 100.0 * report.replication_rate);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Describe one image (the hashes `lookalike hash` prints):
//!
//! ```
//! let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
//! let d = lookalike::descriptors::describe_query(&img);
//! assert_eq!(d.pdq[0].to_hex().len(), 64);
//! ```

#![warn(missing_docs)]

pub mod cli;
pub mod cnn;
pub mod descriptors;
pub mod engine;
pub mod error;
pub mod fuzzing;
pub mod gpu;
pub mod index;
pub mod ingest;
pub mod pipeline;
pub mod report;
pub mod resample;
pub mod search;
pub mod serve;
