//! Replays the saved fuzz corpus (`fuzz/corpus/<target>/*`) through the same invariant
//! checks the fuzz targets run, plus a few thousand generated inputs, so that `cargo test`
//! exercises them without libFuzzer or a nightly toolchain.

use std::path::PathBuf;

use sockit::fuzzing::{
    check_chat, check_exec_message, check_frame_decoder, check_http_chunked, check_http_serve,
    check_packets,
};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus in {}", dir.display());
    files
}

/// Deterministic pseudo-random inputs, biased towards the kinds and small lengths that
/// reach past the first checks.
fn generated(count: usize, seed: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count).map(move |_| {
        let len = (next() % 64) as usize;
        (0..len)
            .map(|i| match next() % 8 {
                0 => b"CARIOEX!"[(next() % 8) as usize],
                1 if i % 5 < 3 => 0,
                _ => next() as u8,
            })
            .collect()
    })
}

#[test]
fn frame_decoder_corpus_holds_the_invariants() {
    for (path, data) in corpus("frame_decoder") {
        let result = std::panic::catch_unwind(|| check_frame_decoder(&data));
        assert!(result.is_ok(), "{} broke an invariant", path.display());
    }
    generated(5000, 1).for_each(|d| check_frame_decoder(&d));
}

#[test]
fn exec_message_corpus_holds_the_invariants() {
    for (path, data) in corpus("exec_message") {
        let result = std::panic::catch_unwind(|| check_exec_message(&data));
        assert!(result.is_ok(), "{} broke an invariant", path.display());
    }
    generated(5000, 2).for_each(|d| check_exec_message(&d));
}

#[test]
fn packets_corpus_holds_the_invariants() {
    for (path, data) in corpus("packets") {
        let result = std::panic::catch_unwind(|| check_packets(&data));
        assert!(result.is_ok(), "{} broke an invariant", path.display());
        // Every byte flipped in turn: checksums and lengths break in every way.
        for i in 0..data.len() {
            let mut bent = data.clone();
            bent[i] ^= 0x5a;
            check_packets(&bent);
        }
    }
    generated(5000, 3).for_each(|d| check_packets(&d));
}

#[test]
fn http_chunked_corpus_holds_the_invariants() {
    for (path, data) in corpus("http_chunked") {
        let result = std::panic::catch_unwind(|| check_http_chunked(&data));
        assert!(result.is_ok(), "{} broke an invariant", path.display());
    }
    generated(5000, 3).for_each(|d| check_http_chunked(&d));
}

#[test]
fn http_serve_corpus_holds_the_invariants() {
    for (path, data) in corpus("http_serve") {
        let result = std::panic::catch_unwind(|| check_http_serve(&data));
        assert!(result.is_ok(), "{} broke an invariant", path.display());
    }
    // Pipelines of plausible requests, with a little damage: what random bytes never reach.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    const METHODS: [&str; 4] = ["GET", "GET", "HEAD", "POST"];
    const PATHS: [&str; 11] = [
        "/",
        "/a.txt",
        "/t.txt",
        "/big.bin",
        "/sub",
        "/sub/",
        "/leak",
        "/out/secret",
        "/%2e%2e/outside/secret",
        "/a%2etxt",
        "/nope",
    ];
    const HEADERS: [&str; 10] = [
        "",
        "Accept-Encoding: gzip;q=0.5, br, zstd;q=0\r\n",
        "Accept-Encoding: *\r\n",
        "Range: bytes=3-9\r\n",
        "Range: bytes=-100\r\n",
        "Range: bytes=99999-\r\n",
        "If-None-Match: *\r\n",
        "Connection: close\r\n",
        "Content-Length: 4\r\n",
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    ];
    for _ in 0..300 {
        let mut wire = vec![next(256) as u8];
        for _ in 0..1 + next(4) {
            let header = HEADERS[next(HEADERS.len())];
            let request = format!(
                "{} {} HTTP/1.{}\r\nHost: x\r\n{header}\r\n{}",
                METHODS[next(METHODS.len())],
                PATHS[next(PATHS.len())],
                next(2),
                if header.starts_with("Content-Length") {
                    "body"
                } else {
                    ""
                },
            );
            wire.extend_from_slice(request.as_bytes());
        }
        if next(4) == 0 {
            let i = 1 + next(wire.len() - 1);
            wire[i] ^= 1 << next(8);
        }
        check_http_serve(&wire);
    }
}

#[test]
fn chat_lines_corpus_holds_the_invariants() {
    for (path, data) in corpus("chat_lines") {
        let result = std::panic::catch_unwind(|| check_chat(&data));
        assert!(result.is_ok(), "{} broke an invariant", path.display());
    }
    // Scripts of plausible lines, so the generated inputs reach past the nick prompt.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    const LINES: [&[u8]; 16] = [
        b"alice",
        b"ALICE",
        b"al|ce",
        b"al\\ce",
        b"/nick bob",
        b"/nick BOB",
        b"/join #dev",
        b"/join DEV",
        b"/msg alice hi",
        b"/msg bob \x1b[2J",
        b"/who",
        b"/rooms",
        b"/quit later",
        b"hello \xe2\x80\xae world",
        b"\xff\xfe",
        b"//slash",
    ];
    for _ in 0..2000 {
        let mut script = Vec::new();
        for _ in 0..1 + next(24) {
            let op = match next(16) {
                0 => 0xf0,
                1 => 0xe0,
                _ => 0,
            } | next(4) as u8;
            script.push(op);
            script.extend_from_slice(LINES[next(LINES.len())]);
            script.push(b'\n');
        }
        check_chat(&script);
    }
    generated(3000, 5).for_each(|d| check_chat(&d));
}
