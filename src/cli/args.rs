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
    after_help = "Exit codes: 0 success (check: no match, or a replication rate within --max-replication-rate); \
1 the gate failed (--fail-on-match and something matched, or the replication rate is above \
--max-replication-rate); 2 error (bad arguments, no index, a path that does not exist, 0 images checked \
without --allow-empty, an output file that cannot be written).\n\
Index names (-i NAME) live in $LOOKALIKE_HOME/indexes/NAME (default ~/.local/share/lookalike); a value with \
a '/' or starting with '.' is a path.\n\
Set NO_COLOR to disable colours. Progress bars go to stderr, results to stdout.\n\
Shell completions: `lookalike completions bash` (zsh, fish, elvish, powershell); a man page: `lookalike man`."
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
    /// as an ONNX file (an int8 QDQ file runs in int8 on the CPU engine,
    /// about 3× faster with AVX-512 VNNI; LOOKALIKE_CNN_F32=1 runs it in
    /// f32). Give the
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
        long_about = "Walks DIR recursively (JPEG, PNG, WebP, GIF, BMP, TIFF) and describes every image: PDQ and \
pHash (plus PDQ of the image with borders and caption bars trimmed), 128 keypoints for geometric verification \
(unless --no-keypoints) and a learned embedding (unless --hash-only; EfficientNet-Lite0, or --model), appended to \
the index. Re-running on a grown folder processes only new or changed files; \
identical files are recorded without decoding again; files gone from DIR are marked removed. Unreadable, \
corrupt, truncated, empty and oversized files are skipped and listed (also in INDEX/skipped.tsv). Work is \
committed every 50 000 images or 30 s, so an interrupted run loses little and a rerun finishes the job.",
        after_help = "Tar shards (WebDataset, img2dataset): DIR may be a .tar file, a folder of them or a brace \
pattern, read as a stream without extracting; each image member is recorded as SHARD.tar/MEMBER. A rerun \
skips shards whose size and mtime are unchanged. --files-from FILE (- for standard input) adds paths listed \
one per line.\n\n\
Example:\n  lookalike index data/train --index mymodel\n  \
lookalike index data/train --index ./idx --hash-only   # faster on a CPU, no embeddings\n  \
lookalike index data/train -i big --profile compact    # 0.7 KB an image, verifies from the files\n  \
lookalike index 'shards/{00000..00999}.tar' -i laion\n  \
find data -name '*.jpg' | lookalike index --files-from - -i mymodel"
    )]
    Index(IndexArgs),
    /// Find the training images closest to one image.
    #[command(after_help = "Example:\n  lookalike query outputs/0001.png --index mymodel -k 20")]
    Query(QueryArgs),
    /// Check a folder of generated images: matches, verdicts, replication rate.
    #[command(
        long_about = "Checks every image under DIR against the index and prints each match with its training \
image, distances and verdict (exact / near-duplicate / none), then the replication rate: the share of \
checked images with a match. --csv writes one row per (image, candidate) for pipelines and scorers; \
--json the full report, --json-lines one JSON object per image as it finishes. For CI gates: \
--fail-on-match exits with code 1 if anything matched, --max-replication-rate R if more than R of the images \
matched; --min-score S counts only matches scoring at least S. Checking 0 images is an error (exit 2) unless \
--allow-empty.",
        after_help = "DIR may also be a .tar shard, a folder of shards or a brace pattern such as \
'out/{00000..00009}.tar' (members are reported as SHARD.tar/MEMBER), and --files-from FILE (- for standard \
input) adds paths listed one per line.\n\n\
Example:\n  lookalike check outputs/ --index mymodel --fail-on-match\n  \
lookalike check outputs/ -i mymodel --max-replication-rate 2% --report report.html\n\n\
Exit codes: 0 passed, 1 the gate failed, 2 error."
    )]
    Check(CheckArgs),
    /// Print PDQ (hex, ThreatExchange format), PDQ quality and pHash (hex, imagehash format) of images.
    #[command(
        after_help = "Example:\n  lookalike hash photo.jpg\n  lookalike hash images/ --csv > hashes.csv"
    )]
    Hash(HashArgs),
    /// Describe an index: format version, segments, records; validates every file.
    #[command(after_help = "Example:\n  lookalike info --index mymodel --json")]
    Info(InfoArgs),
    /// Merge every segment of an index into one (also done gradually after `index`).
    #[command(
        long_about = "Merges all segments of the index into one: superseded records and records of removed files \
are dropped, descriptors are copied (not recomputed), and one HNSW graph and one PDQ table are built over the \
result. Crash-safe: the old segments are removed only after the new manifest is committed; an interrupted run \
loses nothing and a rerun finishes. `check` runs meanwhile keep reading the segments they opened."
    )]
    Compact(CompactArgs),
    /// Combine indexes built in parts (one per shard, on many machines) into one.
    #[command(
        long_about = "Combines indexes built with the same settings (decode setting, embedding model, \
keypoints) into OUT by attaching their segments as they are: nothing is decoded or described again, and \
column files are hard-linked when OUT is on the same filesystem (else copied). Build one index in parts, \
say one part per WebDataset shard on a cluster, then merge the parts. Inputs are taken in the order \
given: a later input's record of a path supersedes an earlier one's, and a file whose bytes equal a file \
of an earlier input is flagged as an exact duplicate, as `index` would flag it. OUT may be new or an \
existing index (the inputs' segments then come after its own). Crash-safe: OUT's manifest is committed \
once, at the end, under OUT's writer lock; an interrupted merge leaves OUT as it was.",
        after_help = "Segments are attached, not merged (each keeps its HNSW graph and PDQ table, and \
`check` gives the same results as on the parts); run `lookalike compact -i OUT` afterwards for fewer \
segments and faster checks. Refused: an input built with another decode setting (--exact, --thumb-side), \
embedding model (--hash-only, --model) or keypoint setting (--no-keypoints) than OUT or the first input; \
OUT among the inputs.\n\n\
Example:\n  lookalike index shards/00003.tar -i parts/part-00003 -q   # on each worker, one part per shard\n  \
lookalike merge ./laion parts/part-*\n  \
lookalike compact -i ./laion\n  \
lookalike info -i ./laion      # its content digest equals a one-run index of the shards"
    )]
    Merge(MergeArgs),
    /// Find near-duplicate groups inside the indexed training set.
    #[command(
        long_about = "Groups the indexed images that are near copies of each other: same bytes, or upright PDQ \
distance <= --max-distance (low-quality hashes also need pHash to agree). Every member of a group is within the \
threshold of every other member (clique grouping, no chaining through intermediate images). Rotated or mirrored \
duplicates are not grouped: the index keeps one upright hash per image. Exact brute force over all pairs, on all cores.",
        after_help = "Example:\n  lookalike dedup --index mymodel --report dedup.html"
    )]
    Dedup(DedupArgs),
    /// Check a folder with known answers and score the run (recall, µAP, false alarms).
    #[command(
        long_about = "Runs `check` on QUERY_DIR and scores it against a ground-truth CSV with columns \
query,expected,transform (expected empty = a negative query that should match nothing): recall@1/@10, \
µAP (DISC21 micro-AP, negatives included), recall at ≤ 1 % false alarms on negative queries, the \
precision/recall/false-alarm rate of the verdicts at the default thresholds, and a per-transform table. \
Use it to see how lookalike does on your own data before trusting a threshold.",
        after_help = "Example:\n  lookalike eval queries/ --truth truth.csv --index mymodel"
    )]
    Eval(EvalArgs),
    /// Serve checks over HTTP: POST an image, get its result (see README, "serve").
    #[command(
        long_about = "Runs an HTTP service that checks posted images against the index, so a pipeline pays \
for the index and model once, not per image. Listens on loopback (127.0.0.1:8080) unless --addr says \
otherwise.\n\nRoutes: POST /v1/check (the image as the raw body, or the multipart field \"image\"; query \
parameters k, hash_only, verify, name) answers the lookalike.check/1 result object that `check --json` \
gives for the image; POST /v1/check/batch (multipart, one image per part); GET /v1/info; GET /healthz; \
GET /metrics (Prometheus); GET /v1/openapi.json.\n\nBad uploads (empty, truncated, not an image, over \
--max-mib or --max-pixels) get a 4xx with a JSON message; more than --max-concurrent checks in flight \
get 503 with Retry-After. New segments that `index` commits to the same index are served without a \
restart. SIGTERM or Ctrl-C stops it after the requests in flight.\n\nExample:\n  lookalike serve -i mymodel \
--token-file token.txt &\n  curl -H \"Authorization: Bearer $(cat token.txt)\" --data-binary @out/0001.png \\\n    \
'http://127.0.0.1:8080/v1/check?k=5'"
    )]
    Serve(ServeArgs),
    /// Print a shell completion script (generated from these definitions).
    #[command(
        after_help = "Example:\n  lookalike completions bash > ~/.local/share/bash-completion/completions/lookalike\n  \
lookalike completions zsh > ~/.zfunc/_lookalike"
    )]
    Completions(CompletionsArgs),
    /// Print a man page in roff (generated from these definitions).
    #[command(after_help = "Example:\n  lookalike man > lookalike.1 && man ./lookalike.1")]
    Man,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A fraction in [0, 1], written as such (0.05) or as a percentage (5%).
fn parse_fraction(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.strip_suffix('%') {
        Some(p) => (p.trim(), 100.0),
        None => (s.trim(), 1.0),
    };
    let v: f64 = num.parse().map_err(|_| {
        format!("{s:?} is not a number (a fraction like 0.05 or a percentage like 5%)")
    })?;
    let v = v / scale;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s} is outside 0 to 1 (0 % to 100 %)"));
    }
    Ok(v)
}

/// `-k`: a count of candidates, 1 or more (0 would turn detection off).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
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
    #[arg(long, short = 'k', default_value_t = 10, value_parser = at_least_one())]
    pub top_k: usize,
    /// Skip geometric verification (keypoints + RANSAC): PDQ evidence only.
    /// Faster; misses crops, odd-angle rotations, pastes and perspective copies.
    #[arg(long)]
    pub no_verify: bool,
    /// Search each image whole only, not also the regions where a copy may
    /// sit inside it (a picture in a screenshot, or pasted onto another).
    /// Faster; misses such copies.
    #[arg(long)]
    pub no_regions: bool,
    /// Ignore the index's learned embeddings: hashes and keypoints only.
    #[arg(long)]
    pub hash_only: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
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
    /// Index name or path. A value with a '/' or starting with '.' is a
    /// path. A name is ./NAME if that is an index folder, else
    /// $LOOKALIKE_HOME/indexes/NAME ($LOOKALIKE_HOME defaults to
    /// $XDG_DATA_HOME/lookalike, i.e. ~/.local/share/lookalike), so it
    /// finds the same index from any folder.
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
    /// Default: the setting the index was built with; `check`, `query` and
    /// `eval` refuse a setting other than the index's.
    #[arg(long, conflicts_with = "thumb_side", overrides_with = "fast")]
    pub exact: bool,
    /// Fast mode at the default --thumb-side (512): the opposite of --exact.
    #[arg(long, overrides_with = "exact")]
    pub fast: bool,
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
    /// Accept a DIR with no image files (an empty index, or every record
    /// marked removed) instead of failing with exit code 2.
    #[arg(long)]
    pub allow_empty: bool,
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
    /// What each image keeps. full (the default): keypoints and the f16
    /// embedding, about 8 KB an image. compact: neither, about 0.7 KB an
    /// image at scale (1.4 KB on a 1 000-image set): embeddings are compared
    /// through their int8 codes, and `check` reads a candidate's training
    /// file again to extract its keypoints when it verifies it, so the
    /// training files must stay where they were indexed (a candidate whose
    /// file is gone or changed is scored without verification, with a
    /// warning). Detection is about as good (µAP 0.932 against 0.934 on our
    /// corpus). Set on the first run and recorded in the index.
    #[arg(long, value_enum, value_name = "PROFILE")]
    pub profile: Option<ProfileArg>,
    /// Summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `index --profile`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ProfileArg {
    /// Keypoints and f16 embeddings stored.
    Full,
    /// Codes only; keypoints read back from the training files.
    Compact,
}

impl From<ProfileArg> for crate::index::Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Full => crate::index::Profile::Full,
            ProfileArg::Compact => crate::index::Profile::Compact,
        }
    }
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The image to look up.
    pub image: PathBuf,
    #[command(flatten)]
    pub sel: IndexSel,
    /// Exit with code 1 when the image matched (as `check --fail-on-match`).
    #[arg(long)]
    pub fail_on_match: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// How many candidates to list.
    #[arg(long, short = 'k', default_value_t = 10, value_parser = at_least_one())]
    pub top_k: usize,
    /// Skip geometric verification (keypoints + RANSAC): PDQ evidence only.
    /// Faster; misses crops, odd-angle rotations, pastes and perspective copies.
    #[arg(long)]
    pub no_verify: bool,
    /// Search each image whole only, not also the regions where a copy may
    /// sit inside it (a picture in a screenshot, or pasted onto another).
    /// Faster; misses such copies.
    #[arg(long)]
    pub no_regions: bool,
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
    #[arg(long, short = 'k', default_value_t = 10, value_parser = at_least_one())]
    pub top_k: usize,
    /// Skip geometric verification (keypoints + RANSAC): PDQ evidence only.
    /// Faster; misses crops, odd-angle rotations, pastes and perspective copies.
    #[arg(long)]
    pub no_verify: bool,
    /// Search each image whole only, not also the regions where a copy may
    /// sit inside it (a picture in a screenshot, or pasted onto another).
    /// Faster; misses such copies.
    #[arg(long)]
    pub no_regions: bool,
    /// Ignore the index's learned embeddings: hashes and keypoints only.
    #[arg(long)]
    pub hash_only: bool,
    /// Exit with code 1 when any image matched (for CI gates).
    #[arg(long)]
    pub fail_on_match: bool,
    /// Exit with code 1 when the replication rate (matched / checked) is
    /// above R: a fraction (0.02) or a percentage (2%). Matches at or under
    /// that rate exit 0.
    #[arg(long, value_name = "R", value_parser = parse_fraction, conflicts_with = "fail_on_match")]
    pub max_replication_rate: Option<f64>,
    /// A match counts only when its score is at least S (0 to 1): the bar
    /// for verdicts, counts, the rate and the gates. A value under the
    /// default threshold (thresholds.match_score in --json) changes nothing.
    #[arg(long, value_name = "S", value_parser = parse_fraction)]
    pub min_score: Option<f64>,
    /// One JSON object per image on stdout as it finishes (the per-image
    /// entries of --json's "results"), nothing else; the summary goes to stderr.
    #[arg(long, conflicts_with_all = ["json", "csv"])]
    pub json_lines: bool,
    /// List images without a match in the table too.
    #[arg(long)]
    pub all: bool,
    /// Accept an existing folder with no image (or none that could be
    /// read): report 0 images checked and exit 0. Without it, checking 0
    /// images fails with exit code 2. A path that does not exist always fails.
    #[arg(long)]
    pub allow_empty: bool,
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
    /// Decode at full resolution (the default here): hashes match the
    /// reference tools (Meta's PDQ, imagehash).
    #[arg(long, overrides_with = "fast")]
    pub exact: bool,
    /// Use the fast scaled JPEG decode (what `index` uses by default) instead
    /// of full-resolution decoding.
    #[arg(long, overrides_with = "exact")]
    pub fast: bool,
    /// Fast mode keeping the short side at least this many pixels (as
    /// `index --thumb-side`); implies --fast.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(32..=8192), conflicts_with = "exact")]
    pub thumb_side: Option<u32>,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct CompactArgs {
    #[command(flatten)]
    pub sel: IndexSel,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The index to write: created if missing, else the inputs' segments
    /// come after its own. A name or a path, as --index reads it.
    #[arg(value_name = "OUT")]
    pub out: String,
    /// The indexes to merge, in order (names or paths).
    #[arg(value_name = "INDEX", required = true)]
    pub inputs: Vec<String>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
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

#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub sel: IndexSel,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "IP:PORT")]
    pub addr: std::net::SocketAddr,
    /// Require `Authorization: Bearer <token>` on every route but /healthz,
    /// the token being this file's content (surrounding whitespace ignored).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Refuse request bodies larger than this many MiB (413).
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    pub max_mib: u64,
    /// Refuse images with more pixels than this, read from the header
    /// before decoding (413; decompression bombs).
    #[arg(long, default_value_t = 128_000_000, value_name = "PIXELS")]
    pub max_pixels: u64,
    /// Decode at full resolution; default: the setting the index was built with.
    #[arg(long, conflicts_with = "thumb_side")]
    pub exact: bool,
    /// Fast mode's smallest short side; default: the index's setting.
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(32..=8192))]
    pub thumb_side: Option<u32>,
    /// Longest a request may take, upload included (then 503).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub timeout_secs: f64,
    /// Check requests admitted at once (running or waiting for a worker);
    /// more get 503 with Retry-After.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_concurrent: usize,
    /// Checks running at once (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// How often to look for a new index generation, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub reload_ms: u64,
    /// With the GPU engine, concurrent check requests are described in one
    /// dispatch: how long a batch waits for more requests after its first,
    /// in milliseconds (0: only those already waiting). Ignored on the CPU.
    #[arg(long, default_value_t = 2, value_name = "MS")]
    pub batch_wait_ms: u64,
    /// Search each image whole only, not also the regions where a copy may
    /// sit inside it (a picture in a screenshot, or pasted onto another):
    /// faster per request, blind to such copies.
    #[arg(long)]
    pub no_regions: bool,
    /// One line per request on stderr.
    #[arg(long)]
    pub log_requests: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}
