//! Hostile inputs that must be reported, never hang, eat memory or reach the
//! terminal raw: FIFOs and sockets in a dataset folder, file names that are
//! not UTF-8 or hold escape sequences, extreme aspect ratios, and error
//! messages that quote the same I/O error twice.
#![cfg(unix)]

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Runs the CLI, failing the test (instead of hanging it) after 60 s.
fn run_bounded(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("lookalike {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

fn skipped(v: &Value) -> Vec<(String, String)> {
    v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn fifos_and_sockets_in_a_folder_are_listed_as_skipped_never_opened() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 3, 0);
    mkfifo(&data.join("pipe.jpg"));
    mkfifo(&data.join("pipe_without_extension"));
    let _sock = std::os::unix::net::UnixListener::bind(data.join("sock.png")).unwrap();
    let idx = t.path().join("idx");

    let check_list = |v: &Value| {
        let s = skipped(v);
        let reason = |name: &str| {
            s.iter()
                .find(|(p, _)| p.ends_with(name))
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| panic!("{name} not listed: {s:?}"))
        };
        assert_eq!(reason("pipe.jpg"), "not a regular file (FIFO)");
        assert_eq!(
            reason("pipe_without_extension"),
            "not a regular file (FIFO)"
        );
        assert_eq!(reason("sock.png"), "not a regular file (socket)");
    };
    let o = run_bounded(&[
        os("index"),
        data.as_os_str(),
        os("--index"),
        idx.as_os_str(),
        os("--hash-only"),
        os("--json"),
        os("-q"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    check_list(&v);
    assert_eq!(v["described"].as_u64(), Some(3), "{v}");

    let o = run_bounded(&[
        os("check"),
        data.as_os_str(),
        os("--index"),
        idx.as_os_str(),
        os("--hash-only"),
        os("--json"),
        os("-q"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    check_list(&v);
    assert_eq!(v["matched"].as_u64(), Some(3), "{v}");
}

/// Decodes the JSON string literals of `text` the way Python's
/// `os.fsencode(json.loads(...))` does: `\udcXX` (a lone surrogate from
/// "surrogateescape") is the byte XX, everything else is UTF-8.
fn json_strings_as_bytes(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut s = vec![];
        while text[i] != b'"' {
            if text[i] != b'\\' {
                s.push(text[i]);
                i += 1;
                continue;
            }
            let e = text[i + 1];
            i += 2;
            match e {
                b'u' => {
                    let hex = std::str::from_utf8(&text[i..i + 4]).unwrap();
                    let u = u32::from_str_radix(hex, 16).unwrap();
                    i += 4;
                    if (0xDC80..=0xDCFF).contains(&u) {
                        s.push((u - 0xDC00) as u8);
                    } else {
                        let c = char::from_u32(u).expect("no other surrogates in our output");
                        s.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                }
                b'n' => s.push(b'\n'),
                b't' => s.push(b'\t'),
                b'r' => s.push(b'\r'),
                b'b' => s.push(8),
                b'f' => s.push(12),
                other => s.push(other),
            }
        }
        i += 1;
        out.push(s);
    }
    out
}

fn bytes_path(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(std::ffi::OsStr::from_bytes(name))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn file_names_are_kept_as_bytes_and_escaped_on_the_terminal() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 2, 40);
    let ff = bytes_path(&data, b"copy_\xff.jpg");
    let esc = bytes_path(&data, b"copy_\x1b[31mred.jpg");
    std::fs::copy(data.join("img_040.jpg"), &ff).unwrap();
    std::fs::copy(data.join("img_041.jpg"), &esc).unwrap();
    std::fs::write(bytes_path(&data, b"bad_\x1b[2J\xfe.jpg"), b"not an image").unwrap();
    let idx = t.path().join("idx");
    let base = |cmd: &str| -> Vec<std::ffi::OsString> {
        vec![
            cmd.into(),
            data.clone().into(),
            "--index".into(),
            idx.clone().into(),
            "--hash-only".into(),
            "-q".into(),
        ]
    };
    let go = |args: Vec<std::ffi::OsString>, extra: &[&str]| {
        let mut a: Vec<&std::ffi::OsStr> = args.iter().map(|s| s.as_os_str()).collect();
        a.extend(extra.iter().map(|s| os(s)));
        let o = run_bounded(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };

    // Index: JSON holds every name exactly, the table and skipped.tsv escape.
    let o = go(base("index"), &["--json"]);
    let strings = json_strings_as_bytes(&o.stdout);
    let bad = data.as_os_str().as_bytes().to_vec();
    let bad = [&bad[..], b"/bad_\x1b[2J\xfe.jpg"].concat();
    assert!(
        strings.contains(&bad),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let log = std::fs::read(idx.join("skipped.tsv")).unwrap();
    assert!(contains(&log, br"bad_\x1b[2J\xfe.jpg"), "{log:?}");
    assert!(!log.contains(&0x1b), "{log:?}");
    std::fs::remove_dir_all(&idx).unwrap();
    let o = go(base("index"), &[]);
    assert!(
        contains(&o.stdout, br"bad_\x1b[2J\xfe.jpg"),
        "{}",
        stdout(&o)
    );
    assert!(!o.stdout.contains(&0x1b), "{:?}", stdout(&o));

    // check --json: the query and candidate names come back as the exact bytes.
    let o = go(base("check"), &["--json"]);
    let strings = json_strings_as_bytes(&o.stdout);
    for p in [&ff, &esc] {
        let b = p.as_os_str().as_bytes().to_vec();
        // Once as the query, once as its own training match.
        let n = strings.iter().filter(|s| **s == b).count();
        assert!(n >= 2, "{:?} found {n} times", p);
    }
    // Valid names are plain JSON text, no escapes.
    let text = String::from_utf8(o.stdout.clone()).expect("JSON output is UTF-8");
    assert!(text.contains("img_040.jpg\""));
    assert!(text.contains(r"copy_\udcff.jpg"), "{text}");
    assert!(text.contains(r"copy_\u001b[31mred.jpg"), "{text}");

    // check --csv: the raw bytes.
    let o = go(base("check"), &["--csv"]);
    assert!(contains(&o.stdout, b"copy_\xff.jpg"));
    assert!(contains(&o.stdout, b"copy_\x1b[31mred.jpg"));

    // The table: visible escapes, no raw escape character, for matches and
    // the skipped list alike.
    let o = go(base("check"), &["--all"]);
    let out = stdout(&o);
    assert!(out.contains(r"copy_\xff.jpg"), "{out}");
    assert!(out.contains(r"copy_\x1b[31mred.jpg"), "{out}");
    assert!(out.contains(r"bad_\x1b[2J\xfe.jpg"), "{out}");
    assert!(!o.stdout.contains(&0x1b), "{out}");
}

fn save_png(img: &image::RgbImage, p: &Path) {
    img.save_with_format(p, image::ImageFormat::Png).unwrap();
}

#[test]
fn extreme_aspect_ratios_are_skipped_from_the_header_and_retried() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    save_png(&synthetic(7, 2000, 100), &data.join("banner_1to20.png"));
    save_png(&synthetic(8, 100, 2000), &data.join("tall_1to20.png"));
    save_png(
        &image::RgbImage::new(1, 20_000),
        &data.join("line_1x20000.png"),
    );
    save_png(
        &image::RgbImage::new(30_000, 2),
        &data.join("line_30000x2.png"),
    );
    let idx = t.path().join("idx");
    let index = || {
        let o = run(&[
            "index",
            data.to_str().unwrap(),
            "--index",
            idx.to_str().unwrap(),
            "--hash-only",
            "--json",
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let v = index();
    assert_eq!(v["described"].as_u64(), Some(2), "{v}");
    let s = skipped(&v);
    assert_eq!(s.len(), 2, "{s:?}");
    for (p, r) in &s {
        assert!(p.contains("line_"), "{p}");
        assert!(r.contains("aspect ratio limit"), "{r}");
        assert!(r.contains("1:100"), "{r}");
    }
    // A limit of the run, not the file's fault: tried again next time.
    let v = index();
    assert_eq!(v["previously_failed"].as_u64(), Some(0), "{v}");
    assert_eq!(skipped(&v).len(), 2, "{v}");
}

#[test]
fn io_errors_are_quoted_once() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    make_corpus(&data, 2, 0);
    let idx = t.path().join("idx");
    let o = run(&[
        "index",
        data.to_str().unwrap(),
        "--index",
        idx.to_str().unwrap(),
        "--hash-only",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(idx.join("seg-000001").join("phash.col")).unwrap();
    let o = run(&["info", "--index", idx.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("phash.col"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}
