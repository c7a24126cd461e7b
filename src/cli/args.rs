//! Command-line arguments. `--help` on each command teaches its use.
//!
//! The clap types carry `#[allow(missing_docs)]` instead of doc comments:
//! clap turns `///` on a type into `--help` text, so their documentation is
//! the help text on their fields and subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[allow(missing_docs)]
#[derive(Parser, Debug)]
#[command(
    name = "lookalike",
    version,
    about = "Did this generated image copy something from the training set?",
    long_about = "lookalike indexes a training corpus once (perceptual hashes in a memory-mapped index), \
then checks generated images against it: ranked training matches with scores, a verdict, and a \
replication rate you can gate CI on.\n\n\
Typical use:\n  lookalike index data/train --index mymodel\n  lookalike check outputs/ --index mymodel --fail-on-match\n  lookalike query outputs/0001.png --index mymodel",
    after_help = "Exit codes: 0 success (or no match), 1 a match was found and --fail-on-match was given, 2 error.\n\
Set NO_COLOR to disable colours. Progress bars go to stderr, results to stdout."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Worker threads (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Embed with this model instead of the built-in EfficientNet-Lite0:
    /// SSCD (Meta's copy-detection ResNet-50) as safetensors with torchvision
    /// names (scripts/convert_sscd.py makes one from Meta's checkpoints) or
    /// as an ONNX file (int8 QDQ files are dequantized at load). Give the
    /// same model to `index` and to `query`/`check`/`eval`: the index records
    /// which model made its embeddings and refuses others.
    #[arg(long, global = true, env = "LOOKALIKE_MODEL", value_name = "PATH")]
    pub model: Option<PathBuf>,
}

#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Index a dataset folder (re-run it to add new or changed files only).
    #[command(
        long_about = "Walks DIR recursively (JPEG, PNG, WebP, GIF, BMP, TIFF), computes PDQ and pHash for every \
image and appends them to the index. Re-running on a grown folder processes only new or changed files; \
identical files are recorded without decoding again; files gone from DIR are marked removed. Unreadable, \
corrupt, truncated, empty and oversized files are skipped and listed (also in INDEX/skipped.tsv). Work is \
committed every 50 000 images or 30 s, so an interrupted run loses little and a rerun finishes the job.",
        after_long_help = "Tar shards (WebDataset, img2dataset): DIR may be a .tar file, a folder of them or a brace \
pattern, read as a stream without extracting; each image member is recorded as SHARD.tar/MEMBER. A rerun \
skips shards whose size and mtime are unchanged. Examples:\n  lookalike index 'shards/{00000..00999}.tar' -i laion\n  \
find data -name '*.jpg' | lookalike index --files-from - -i mymodel"
    )]
    Index(IndexArgs),
    /// Find the training images closest to one image.
    Query(QueryArgs),
    /// Check a folder of generated images: matches, verdicts, replication rate.
    #[command(
        long_about = "Checks every image under DIR against the index and prints each match with its training \
image, distances and verdict (exact / near-duplicate / none), then the replication rate: the share of \
checked images with a match. --csv writes one row per (image, candidate) for pipelines and scorers; \
--json the full report. --fail-on-match exits with code 1 if anything matched, for CI gates.",
        after_long_help = "DIR may also be a .tar shard, a folder of shards or a brace pattern such as \
'out/{00000..00009}.tar' (members are reported as SHARD.tar/MEMBER), and --files-from FILE (- for standard \
input) adds paths listed one per line."
    )]
    Check(CheckArgs),
    /// Print PDQ (hex, ThreatExchange format), PDQ quality and pHash (hex, imagehash format) of images.
    Hash(HashArgs),
    /// Describe an index: format version, segments, records; validates every file.
    Info(InfoArgs),
    /// Find near-duplicate groups inside the indexed training set.
    #[command(
        long_about = "Groups the indexed images that are near copies of each other: same bytes, or upright PDQ \
distance <= --max-distance (low-quality hashes also need pHash to agree). Every member of a group is within the \
threshold of every other member (clique grouping, no chaining through intermediate images). Rotated or mirrored \
duplicates are not grouped: the index keeps one upright hash per image. Exact brute force over all pairs, on all cores."
    )]
    Dedup(DedupArgs),
    /// Check a folder with known answers and score the run (recall, µAP, false alarms).
    #[command(
        long_about = "Runs `check` on QUERY_DIR and scores it against a ground-truth CSV with columns \
query,expected,transform (expected empty = a negative query that should match nothing): recall@1/@10, \
µAP (DISC21 micro-AP, negatives included), recall at ≤ 1 % false alarms on negative queries, the \
precision/recall/false-alarm rate of the verdicts at the default thresholds, and a per-transform table. \
Use it to see how lookalike does on your own data before trusting a threshold."
    )]
    Eval(EvalArgs),
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder of query images named in the ground truth.
    pub dir: PathBuf,
    /// Ground-truth CSV: query,expected,transform[,...].
    #[arg(long, value_name = "CSV")]
    pub truth: PathBuf,
    #[command(flatten)]
    pub sel: IndexSel,
    /// Candidates kept per query.
    #[arg(long, short = 'k', default_value_t = 10)]
    pub top_k: usize,
    /// Skip geometric verification (keypoints + RANSAC): PDQ evidence only.
    /// Faster; misses crops, odd-angle rotations, pastes and perspective copies.
    #[arg(long)]
    pub no_verify: bool,
    /// Ignore the index's learned embeddings: hashes and keypoints only.
    #[arg(long)]
    pub hash_only: bool,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// Write the check run's CSV here too (for other scorers).
    #[arg(long, value_name = "FILE")]
    pub save_csv: Option<PathBuf>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[allow(missing_docs)]
#[derive(Args, Debug, Clone)]
pub struct IndexSel {
    /// Index name (stored in indexes/NAME) or path to an index folder.
    #[arg(
        long,
        short = 'i',
        default_value = "default",
        env = "LOOKALIKE_INDEX",
        value_name = "NAME|PATH"
    )]
    pub index: String,
}

#[allow(missing_docs)]
#[derive(Args, Debug, Clone)]
pub struct DecodeArgs {
    /// Decode at full resolution (slower) instead of DCT-domain scaled JPEG
    /// decoding; hashes then match the reference tools (Meta's PDQ, imagehash).
    /// Default: the setting the index was built with.
    #[arg(long, conflicts_with = "thumb_side")]
    pub exact: bool,
    /// Fast mode: JPEGs are decoded at 1/2, 1/4 or 1/8 scale keeping the short
    /// side at least this many pixels. 512 (the default) keeps PDQ within 8
    /// bits of the full-resolution hash; 128 is ~3x faster, finds copies as
    /// well, but its hashes drift from other tools'. Default: the index's setting.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(32..=8192))]
    pub thumb_side: Option<u32>,
    /// Skip images with more pixels than this (decompression bombs).
    #[arg(long, default_value_t = 128_000_000, value_name = "PIXELS")]
    pub max_pixels: u64,
    /// Skip files larger than this many MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub max_mib: u64,
}

#[allow(missing_docs)]
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where descriptors (and batch searches) run: auto = a hardware GPU if
    /// there is one, else the CPU; gpu = any wgpu adapter, software ones too;
    /// cpu = never touch the GPU. Results are the same on all three.
    #[arg(
        long,
        default_value = "auto",
        env = "LOOKALIKE_DEVICE",
        value_name = "auto|gpu|cpu"
    )]
    pub device: crate::gpu::DeviceChoice,
}

#[allow(missing_docs)]
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Machine-readable JSON on stdout.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// CSV on stdout.
    #[arg(long)]
    pub csv: bool,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Folder of training images, a WebDataset .tar shard, a folder of
    /// shards, or a brace pattern such as 'shards/{00000..00999}.tar'.
    #[arg(required_unless_present = "files_from")]
    pub dir: Option<PathBuf>,
    /// Also read the paths listed in FILE, one per line (images, folders or
    /// .tar shards; `-` reads standard input; blank lines are ignored).
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,
    #[command(flatten)]
    pub sel: IndexSel,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Keep records of files that are no longer in DIR.
    #[arg(long)]
    pub keep_missing: bool,
    /// Hashes and keypoints only, no learned embedding: several times faster
    /// on a CPU, finds fewer heavily edited copies. Recorded in the index.
    #[arg(long)]
    pub hash_only: bool,
    /// Store no keypoints: indexing then runs about 1.5x as fast on small
    /// images (with --hash-only --thumb-side 128, ~1 700 JPEGs/s on 2 cores)
    /// and the index is 4.6 KB per image smaller, but `check` can no longer
    /// verify geometry or find crops and odd-angle rotations by keypoints.
    /// Recorded in the index: later runs keep it.
    #[arg(long)]
    pub no_keypoints: bool,
    /// Summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The image to look up.
    pub image: PathBuf,
    #[command(flatten)]
    pub sel: IndexSel,
    /// How many candidates to list.
    #[arg(long, short = 'k', default_value_t = 10)]
    pub top_k: usize,
    /// Skip geometric verification (keypoints + RANSAC): PDQ evidence only.
    /// Faster; misses crops, odd-angle rotations, pastes and perspective copies.
    #[arg(long)]
    pub no_verify: bool,
    /// Ignore the index's learned embeddings: hashes and keypoints only.
    #[arg(long)]
    pub hash_only: bool,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Folder (or file) of generated images, a .tar shard, a folder of
    /// shards, or a brace pattern such as 'out/{00000..00009}.tar'.
    #[arg(required_unless_present = "files_from")]
    pub dir: Option<PathBuf>,
    /// Also read the paths listed in FILE, one per line (images, folders or
    /// .tar shards; `-` reads standard input; blank lines are ignored).
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,
    #[command(flatten)]
    pub sel: IndexSel,
    /// Candidates kept per image (rows per image in --csv).
    #[arg(long, short = 'k', default_value_t = 10)]
    pub top_k: usize,
    /// Skip geometric verification (keypoints + RANSAC): PDQ evidence only.
    /// Faster; misses crops, odd-angle rotations, pastes and perspective copies.
    #[arg(long)]
    pub no_verify: bool,
    /// Ignore the index's learned embeddings: hashes and keypoints only.
    #[arg(long)]
    pub hash_only: bool,
    /// Exit with code 1 when any image matched (for CI gates).
    #[arg(long)]
    pub fail_on_match: bool,
    /// List images without a match in the table too.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[allow(missing_docs)]
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Also write a self-contained HTML report (thumbnails, differences) to this file.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Rows of the HTML report that get thumbnails; the rest are listed as text.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub report_limit: usize,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct DedupArgs {
    #[command(flatten)]
    pub sel: IndexSel,
    /// Largest upright PDQ distance (of 256 bits) between two members of a group.
    #[arg(long, default_value_t = 31, value_name = "BITS", value_parser = clap::value_parser!(u32).range(0..=128))]
    pub max_distance: u32,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct HashArgs {
    /// An image file or a folder of images.
    pub path: PathBuf,
    /// Use the fast scaled JPEG decode (what `index` uses by default) instead
    /// of full-resolution decoding.
    #[arg(long)]
    pub fast: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub sel: IndexSel,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}
