//! `lookalike serve` end to end: the server runs on 127.0.0.1 (port 0; the
//! port is read from its startup line) and is spoken to over a raw
//! TcpStream, so bodies can be cut short, streamed or lied about.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A running server, stopped (SIGKILL) when dropped.
struct Server {
    child: Child,
    addr: String,
    log: mpsc::Receiver<String>,
}

impl Server {
    /// `lookalike serve` on `index` with the CPU engine unless `extra`
    /// names a `--device`.
    fn start(index: &str, extra: &[&str]) -> Server {
        let device: &[&str] = if extra.contains(&"--device") {
            &[]
        } else {
            &["--device", "cpu"]
        };
        let mut child = bin()
            .args(["serve", "-i", index, "--addr", "127.0.0.1:0"])
            .args(device)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lookalike serve");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Owned before anything can panic, so Drop stops the process.
        let mut srv = Server {
            child,
            addr: String::new(),
            log: rx,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = srv
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("server printed no listening line");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                srv.addr = rest.split_whitespace().next().unwrap().to_string();
                return srv;
            }
        }
    }

    fn connect(&self) -> TcpStream {
        connect(&self.addr)
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        request(&self.addr, method, path, headers, body)
    }

    fn post(&self, path: &str, body: &[u8]) -> Answer {
        self.request("POST", path, &[], body)
    }

    fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &[], b"")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A refusal: the status is a 4xx and the body says why.
    fn assert_client_error(&self, status: u16, kind: &str) -> String {
        let v = self.json();
        assert_eq!(self.status, status, "{v}");
        assert_eq!(v["kind"], kind, "{v}");
        let msg = v["error"].as_str().unwrap().to_string();
        assert!(!msg.is_empty());
        msg
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Sends a whole request and reads the answer.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = connect(addr);
    write_head(&mut s, method, path, headers, Some(body.len()));
    // A server may refuse from the head alone (Content-Length over the
    // limit) and close while the body is still being sent; the answer it
    // sent first is what the test checks, so a broken pipe here is expected.
    let _ = s.write_all(body);
    read_answer(&mut s)
}

fn write_head(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    len: Option<usize>,
) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = len {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
}

fn read_answer(s: &mut TcpStream) -> Answer {
    let mut raw = vec![];
    // The server may close with part of an oversized upload unread; what it
    // sent before is what counts.
    let _ = s.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 4 + n..];
    }
    out
}

/// A small hash-only index of synthetic JPEGs: (guard, index path, images).
fn small_index(n: usize) -> (tempfile::TempDir, String, Vec<PathBuf>) {
    let t = tempfile::tempdir().unwrap();
    let files = make_corpus(&t.path().join("db"), n, 1);
    let idx = t.path().join("idx").display().to_string();
    index(&t.path().join("db"), &idx);
    (t, idx, files)
}

fn index(dir: &Path, idx: &str) {
    let o = run(&[
        "index",
        &dir.display().to_string(),
        "-i",
        idx,
        "--hash-only",
        "--device",
        "cpu",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "lookalike-test-boundary-7d1f";
    let mut body = vec![];
    for (field, file, data) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn a_copy_is_found_and_answered_as_query_json_gives_it() {
    let (_t, idx, files) = small_index(6);
    let srv = Server::start(&idx, &[]);
    let img = &files[3];
    let bytes = std::fs::read(img).unwrap();
    let name = img.display().to_string();
    let a = srv.post(&format!("/v1/check?k=3&name={name}"), &bytes);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("application/json"));
    let got = a.json();
    assert_eq!(got["verdict"], "exact");
    assert_eq!(got["matches"][0]["same_bytes"], true);
    assert!(got["matches"][0]["candidate"]
        .as_str()
        .unwrap()
        .ends_with("img_004.jpg"));
    // The same object `query --json` prints for the file.
    let o = run(&["query", &name, "-i", &idx, "-k", "3", "--json", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got, want);

    // Multipart, with the upload's file name as the query's name; hash-only
    // and unverified requests answer too.
    let (ct, body) = multipart(&[("image", "mine.jpg", &bytes)]);
    let a = srv.request(
        "POST",
        "/v1/check?k=1&hash_only=true&verify=false",
        &[("Content-Type", &ct)],
        &body,
    );
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    assert_eq!(v["query"], "mine.jpg");
    assert_eq!(v["matches"].as_array().unwrap().len(), 1);
    assert_eq!(v["matches"][0]["keypoint_matches"], Value::Null);

    // A batch: one entry per part, a bad part gets its own error.
    let other = std::fs::read(&files[0]).unwrap();
    let (ct, body) = multipart(&[
        ("a", "a.jpg", &bytes),
        ("b", "b.txt", b"not an image"),
        ("c", "c.jpg", &other),
    ]);
    let a = srv.request(
        "POST",
        "/v1/check/batch?k=2",
        &[("Content-Type", &ct)],
        &body,
    );
    let v = a.json();
    assert_eq!(a.status, 200, "{v}");
    assert_eq!(v["images_checked"], 2);
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["query"], "a.jpg");
    assert_eq!(r[0]["verdict"], "exact");
    assert_eq!(r[1]["query"], "b.txt");
    assert_eq!(r[1]["kind"], "bad_image");
    assert!(r[2]["matches"][0]["candidate"]
        .as_str()
        .unwrap()
        .ends_with("img_001.jpg"));

    // Bad parameters are the client's fault.
    srv.post("/v1/check?k=0", &bytes)
        .assert_client_error(400, "bad_request");
    srv.post("/v1/check?kk=3", &bytes)
        .assert_client_error(400, "bad_request");
}

/// A training image pasted small onto another picture is matched through
/// its region; `regions=false` searches the whole page only.
#[test]
fn a_pasted_copy_is_found_through_its_region_unless_turned_off() {
    let t = tempfile::tempdir().unwrap();
    make_corpus(&t.path().join("db"), 4, 1);
    let pic = synthetic(300, 180, 130);
    pic.save(t.path().join("db/pic.png")).unwrap();
    let idx = t.path().join("idx").display().to_string();
    index(&t.path().join("db"), &idx);
    let srv = Server::start(&idx, &[]);
    let (w, h) = pic.dimensions();
    // Pasted onto a picture that is not in the index (a smooth blue
    // gradient), so no trimmed view of the whole page finds it.
    let mut page = image::RgbImage::from_fn(w * 3, h * 3, |x, y| {
        image::Rgb([30 + (x / 8).min(60) as u8, 60 + (y / 8).min(60) as u8, 210])
    });
    image::imageops::replace(&mut page, &pic, w as i64, h as i64);
    let mut png = std::io::Cursor::new(Vec::new());
    page.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let png = png.into_inner();
    let v = srv.post("/v1/check?k=1", &png).json();
    let best = &v["matches"][0];
    assert!(
        best["candidate"].as_str().unwrap().ends_with("pic.png"),
        "{v}"
    );
    let r = &best["region"];
    assert!(
        r["x"]
            .as_f64()
            .is_some_and(|x| (x - 1.0 / 3.0).abs() < 0.03),
        "{v}"
    );
    let v = srv.post("/v1/check?k=1&regions=false", &png).json();
    assert!(v["matches"][0]["region"].is_null(), "{v}");
}

#[test]
fn bad_bodies_get_a_4xx_with_a_message_never_a_5xx() {
    let (_t, idx, files) = small_index(2);
    let srv = Server::start(&idx, &["--max-mib", "1", "--max-pixels", "50000000"]);
    let jpeg = std::fs::read(&files[0]).unwrap();

    srv.post("/v1/check", b"")
        .assert_client_error(400, "bad_request");
    let m = srv
        .post("/v1/check", &jpeg[..jpeg.len() / 2])
        .assert_client_error(422, "bad_image");
    assert!(m.contains("truncated") || m.contains("corrupt"), "{m}");
    let m = srv
        .post("/v1/check", b"this is plain text, not a picture")
        .assert_client_error(422, "bad_image");
    assert!(m.contains("not an image"), "{m}");
    // Decompression bombs: refused from the header, before any pixel.
    let m = srv
        .post("/v1/check", &png_bomb(100_000, 100_000))
        .assert_client_error(413, "image_limit");
    assert!(m.contains("decompression bomb"), "{m}");
    srv.post("/v1/check", &png_bomb(60_000, 100))
        .assert_client_error(413, "image_limit");
    // A corrupt PNG inside the limits.
    srv.post("/v1/check", &png_bomb(2000, 2000))
        .assert_client_error(422, "bad_image");

    // A 1 GB upload announced by Content-Length: refused without reading it.
    let mut s = srv.connect();
    write_head(&mut s, "POST", "/v1/check", &[], Some(1 << 30));
    let m = read_answer(&mut s).assert_client_error(413, "body_too_large");
    assert!(m.contains("1 MiB"), "{m}");

    // Chunked, no length announced: refused once past the limit.
    let mut s = srv.connect();
    write_head(
        &mut s,
        "POST",
        "/v1/check",
        &[("Transfer-Encoding", "chunked")],
        None,
    );
    let chunk = vec![0xAB; 64 << 10];
    for _ in 0..32 {
        let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
        c.extend_from_slice(&chunk);
        c.extend_from_slice(b"\r\n");
        if s.write_all(&c).is_err() {
            break; // the server answered and closed
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    read_answer(&mut s).assert_client_error(413, "body_too_large");

    // Same in a multipart upload.
    let (ct, body) = multipart(&[("image", "big.jpg", &vec![0u8; 2 << 20])]);
    srv.request("POST", "/v1/check", &[("Content-Type", &ct)], &body)
        .assert_client_error(413, "body_too_large");

    // Still serving, and the refusals are counted by kind.
    assert_eq!(srv.post("/v1/check", &jpeg).status, 200);
    let metrics = String::from_utf8(srv.get("/metrics").body).unwrap();
    assert!(
        metrics.contains("lookalike_http_errors_total{kind=\"image_limit\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("lookalike_http_requests_total{route=\"/v1/check\",status=\"200\"} 1"));
    assert!(metrics.contains("lookalike_http_request_duration_seconds_count{route=\"/v1/check\"}"));
}

#[test]
fn without_the_token_requests_get_401() {
    let (t, idx, files) = small_index(2);
    let token_file = t.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let srv = Server::start(&idx, &["--token-file", &token_file.display().to_string()]);
    let jpeg = std::fs::read(&files[0]).unwrap();
    let a = srv.post("/v1/check", &jpeg);
    a.assert_client_error(401, "unauthorized");
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    let wrong = srv.request(
        "POST",
        "/v1/check",
        &[("Authorization", "Bearer s3cret-tokem")],
        &jpeg,
    );
    wrong.assert_client_error(401, "unauthorized");
    srv.get("/v1/info").assert_client_error(401, "unauthorized");
    srv.get("/metrics").assert_client_error(401, "unauthorized");
    let ok = srv.request(
        "POST",
        "/v1/check",
        &[("Authorization", "Bearer s3cret-token")],
        &jpeg,
    );
    assert_eq!(ok.status, 200);
    assert_eq!(srv.get("/healthz").status, 200);
}

#[test]
fn an_image_indexed_while_serving_is_found_without_a_restart() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    make_corpus(&db, 3, 1);
    let idx = t.path().join("idx").display().to_string();
    index(&db, &idx);
    let srv = Server::start(&idx, &["--reload-ms", "50"]);
    let new = make_corpus(&t.path().join("later"), 1, 40).remove(0);
    let bytes = std::fs::read(&new).unwrap();
    let before = srv.post("/v1/check", &bytes).json();
    assert_eq!(before["verdict"], "none", "{before}");
    let generation = srv.get("/v1/info").json()["generation"].as_u64().unwrap();

    // Requests keep being answered while `index` commits.
    std::fs::copy(&new, db.join("img_040.jpg")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, addr, bytes) = (stop.clone(), srv.addr.clone(), bytes.clone());
        std::thread::spawn(move || {
            let mut answered = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let a = request(&addr, "POST", "/v1/check?k=1", &[], &bytes);
                assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
                answered += 1;
            }
            answered
        })
    };
    index(&db, &idx);
    let deadline = Instant::now() + Duration::from_secs(20);
    while srv.get("/v1/info").json()["generation"].as_u64().unwrap() == generation {
        assert!(
            Instant::now() < deadline,
            "the new generation was not picked up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(load.join().unwrap() > 0);
    let after = srv.post("/v1/check", &bytes).json();
    assert_eq!(after["verdict"], "exact", "{after}");
    assert_eq!(after["matches"][0]["same_bytes"], true);
    let info = srv.get("/v1/info").json();
    assert_eq!(info["images"], 4);
    let reloaded = srv.log.try_iter().any(|l| l.contains("index reloaded"));
    assert!(reloaded);
}

#[test]
fn over_the_concurrency_limit_answers_503_with_retry_after() {
    let (_t, idx, files) = small_index(2);
    let srv = Server::start(&idx, &["--max-concurrent", "1", "--timeout-secs", "5"]);
    let jpeg = std::fs::read(&files[0]).unwrap();
    // A slow upload holds the only admission.
    let mut slow = srv.connect();
    write_head(&mut slow, "POST", "/v1/check", &[], Some(jpeg.len()));
    slow.write_all(&jpeg[..100]).unwrap();
    // Wait until the server has admitted the slow upload: a check sent
    // earlier could take the only permit first and the slow one be refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8(srv.get("/metrics").body)
        .unwrap()
        .contains("lookalike_requests_in_flight 1")
    {
        assert!(
            Instant::now() < deadline,
            "the slow upload was never admitted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let deadline = Instant::now() + Duration::from_secs(4);
    let busy = loop {
        let a = srv.post("/v1/check", &jpeg);
        if a.status == 503 {
            break a;
        }
        assert_eq!(a.status, 200);
        assert!(Instant::now() < deadline, "never refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    busy.assert_client_error(503, "overloaded");
    assert_eq!(busy.header("retry-after"), Some("1"));
    // Health and info are not checks: never refused.
    assert_eq!(srv.get("/healthz").status, 200);
    // The slow upload completes and is answered.
    slow.write_all(&jpeg[100..]).unwrap();
    assert_eq!(read_answer(&mut slow).status, 200);
    assert_eq!(srv.post("/v1/check", &jpeg).status, 200);
}

#[test]
fn a_stalled_upload_times_out() {
    let (_t, idx, _files) = small_index(1);
    let srv = Server::start(&idx, &["--timeout-secs", "0.5"]);
    let mut s = srv.connect();
    write_head(&mut s, "POST", "/v1/check", &[], Some(1000));
    s.write_all(b"\xff\xd8\xff").unwrap();
    let a = read_answer(&mut s);
    a.assert_client_error(503, "timeout");
    assert_eq!(a.header("retry-after"), Some("1"));
}

#[test]
fn openapi_lists_the_routes_and_info_describes_the_index() {
    let (_t, idx, _files) = small_index(3);
    let srv = Server::start(&idx, &[]);
    let doc = srv.get("/v1/openapi.json");
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for route in [
        "/v1/check",
        "/v1/check/batch",
        "/v1/info",
        "/healthz",
        "/metrics",
        "/v1/openapi.json",
    ] {
        assert!(doc["paths"].get(route).is_some(), "{route} missing");
        // Every documented route exists.
        let method = if route.starts_with("/v1/check") {
            "POST"
        } else {
            "GET"
        };
        assert_ne!(srv.request(method, route, &[], b"").status, 404, "{route}");
    }
    let info = srv.get("/v1/info").json();
    assert_eq!(info["images"], 3);
    assert_eq!(info["schema"], "lookalike.check/1");
    // The CPU engine checks each request on its own.
    assert_eq!(info["batching"], false);
    assert_eq!(srv.get("/nope").status, 404);
}

/// The value of an unlabelled counter in `/metrics` text.
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

/// With the GPU engine (lavapipe in CI), concurrent requests are described
/// in shared batches, and each still gets its own image's answer: the
/// object the CPU engine's `query --json` gives for that file.
#[test]
fn the_gpu_engine_batches_concurrent_requests() {
    if let Err(e) = lookalike::gpu::GpuEngine::new(lookalike::gpu::DeviceChoice::Gpu) {
        if std::env::var("LOOKALIKE_REQUIRE_GPU").as_deref() == Ok("1") {
            panic!("LOOKALIKE_REQUIRE_GPU=1 but no adapter: {e:#}");
        }
        eprintln!("serve batching: SKIPPED, no wgpu adapter ({e:#}); set LOOKALIKE_REQUIRE_GPU=1 to fail instead");
        return;
    }
    let (_t, idx, files) = small_index(6);
    // A long wait, so requests sent together surely share a batch.
    let srv = Server::start(&idx, &["--device", "gpu", "--batch-wait-ms", "400"]);
    let info = srv.get("/v1/info").json();
    assert_eq!(info["batching"], true, "{info}");
    let answers: Vec<(usize, Answer)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..files.len())
            .map(|i| {
                let (addr, file) = (srv.addr.as_str(), &files[i]);
                s.spawn(move || {
                    let bytes = std::fs::read(file).unwrap();
                    let path = format!("/v1/check?k=3&name={}", file.display());
                    (i, request(addr, "POST", &path, &[], &bytes))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, a) in answers {
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let got = a.json();
        let name = files[i].display().to_string();
        let o = run(&[
            "query", &name, "-i", &idx, "-k", "3", "--json", "-q", "--device", "cpu",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let want: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(got, want, "request {i}");
        assert_eq!(got["verdict"], "exact");
    }
    let text = String::from_utf8(srv.get("/metrics").body).unwrap();
    let batches = counter(&text, "lookalike_engine_batches_total");
    let images = counter(&text, "lookalike_engine_batch_images_total");
    assert_eq!(images, files.len() as u64, "{text}");
    assert!(
        batches < images,
        "no request shared a batch: {batches} batches\n{text}"
    );
}
