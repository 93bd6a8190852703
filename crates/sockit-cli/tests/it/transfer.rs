//! `sockit send` / `sockit recv`: trees arrive byte-exact with modes and checkable sums,
//! broken transfers resume, unsafe names and lying or corrupted senders are refused, and
//! the receiver keeps serving through all of it; over `tls://` too.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sockit::proto::transfer::{Algo, Header, Kind, Link, Message, RelPath, VERSION};

use crate::util::{TempDir, WAIT, sockit, wait_timeout};

/// A running `sockit recv`, its stdout and stderr collected.
struct Recv {
    child: Child,
    addr: String,
    stdout: Option<JoinHandle<String>>,
    stderr: mpsc::Receiver<String>,
}

impl Recv {
    fn start(dir: &Path, extra: &[&str]) -> Recv {
        Recv::start_on("127.0.0.1:0", dir, extra)
    }

    /// A zero-setup `recv tls://` and the fingerprint it printed; `addr` is the whole
    /// `tls://` endpoint, as `send` takes it.
    fn start_tls(dir: &Path, extra: &[&str]) -> (Recv, String) {
        let recv = Recv::start_on("tls://127.0.0.1:0", dir, extra);
        let pin = crate::util::tls_pin_of(&recv.wait_stderr("tls fingerprint "));
        (recv, pin)
    }

    /// `recv ADDR --dir DIR EXTRA...`; `addr` is then what it listens on, without `tcp://`.
    fn start_on(listen: &str, dir: &Path, extra: &[&str]) -> Recv {
        let mut child = sockit()
            .args(["recv", listen, "--dir"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockit recv");
        let mut out = child.stdout.take().expect("piped");
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = child.stderr.take().expect("piped");
        let (tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = stderr.recv_timeout(WAIT).expect("recv printed nothing");
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?}"));
        let addr = addr.strip_prefix("tcp://").unwrap_or(addr).to_owned();
        Recv {
            child,
            addr,
            stdout: Some(stdout),
            stderr,
        }
    }

    fn socket_addr(&self) -> SocketAddr {
        self.addr.parse().expect("inet address")
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("recv never said {needle:?}"),
            }
        }
    }

    /// Waits for it to exit (without -k, after one sender).
    fn wait(mut self) -> (ExitStatus, String, String) {
        let status = wait_timeout(&mut self.child, WAIT).expect("recv did not exit");
        self.output(status)
    }

    /// Stops it with SIGTERM.
    fn stop(mut self) -> (ExitStatus, String, String) {
        crate::util::signal(&self.child, 15);
        let status = wait_timeout(&mut self.child, WAIT).expect("recv did not stop");
        self.output(status)
    }

    fn output(&mut self, status: ExitStatus) -> (ExitStatus, String, String) {
        let out = self.stdout.take().expect("once").join().expect("stdout");
        let err: Vec<String> = self.stderr.try_iter().collect();
        (status, out, err.join("\n"))
    }
}

impl Drop for Recv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sockit send ARGS...` to its end.
fn send(args: &[&std::ffi::OsStr]) -> (ExitStatus, String, String) {
    let child = sockit()
        .arg("send")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockit send");
    finish(child)
}

fn finish(mut child: Child) -> (ExitStatus, String, String) {
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_timeout(&mut child, WAIT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("sockit send did not finish");
    });
    (status, t_out.join().unwrap(), t_err.join().unwrap())
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

fn random_file(path: &Path, len: u64) {
    let mut src = std::fs::File::open("/dev/urandom").unwrap().take(len);
    let mut dst = std::fs::File::create(path).unwrap();
    assert_eq!(std::io::copy(&mut src, &mut dst).unwrap(), len);
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The tree of the first test: empty, tiny and big files, empty and nested folders.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("nested/deeper")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::write(root.join("zero"), b"").unwrap();
    std::fs::write(root.join("one"), b"1").unwrap();
    std::fs::write(root.join("nested/deeper/notes.txt"), b"hello\n").unwrap();
    random_file(&root.join("nested/big.bin"), 100 << 20);
    set_mode(&root.join("one"), 0o600);
    set_mode(&root.join("nested/deeper/notes.txt"), 0o640);
    set_mode(&root.join("nested/big.bin"), 0o755);
    set_mode(&root.join("nested/deeper"), 0o750);
    set_mode(&root.join("empty-dir"), 0o700);
}

/// Every path under `root` (relative) with its kind and mode, and file contents' length.
fn listing(root: &Path) -> BTreeMap<PathBuf, (bool, u32, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            out.insert(
                rel,
                (meta.is_dir(), meta.permissions().mode() & 0o777, meta.len()),
            );
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn assert_same_tree(sent: &Path, got: &Path) {
    let (a, b) = (listing(sent), listing(got));
    for (path, (is_dir, mode, len)) in &a {
        let (g_dir, g_mode, g_len) = b
            .get(path)
            .unwrap_or_else(|| panic!("{} missing", path.display()));
        assert_eq!(is_dir, g_dir, "{}", path.display());
        assert_eq!(mode, g_mode, "mode of {}", path.display());
        if !is_dir {
            assert_eq!(len, g_len, "{}", path.display());
            assert!(
                std::fs::read(sent.join(path)).unwrap() == std::fs::read(got.join(path)).unwrap(),
                "{} differs",
                path.display()
            );
        }
    }
    assert_eq!(a.len(), b.len(), "extra files received: {b:?}");
}

/// `TOOL FILES...` run in `dir`, its output as (digest, path) lines sorted.
fn tool_sums(tool: &str, dir: &Path, files: &[&str]) -> Vec<String> {
    let out = Command::new(tool)
        .args(files)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(out.status.success(), "{tool} failed");
    sorted_lines(&String::from_utf8(out.stdout).unwrap())
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
    v.sort();
    v
}

const TREE_FILES: [&str; 4] = [
    "tree/nested/big.bin",
    "tree/nested/deeper/notes.txt",
    "tree/one",
    "tree/zero",
];

#[test]
fn a_tree_arrives_byte_exact_with_modes_and_checkable_sums() {
    let tmp = TempDir::new("xfer-tree");
    let tree = tmp.path("tree");
    make_tree(&tree);
    for algo in ["sha256", "md5", "blake3"] {
        let dir = tmp.path(&format!("out-{algo}"));
        let recv = Recv::start(&dir, &[]);
        let (status, sent_out, err) =
            send(&[os(&recv.addr), tree.as_os_str(), os("--checksum"), os(algo)]);
        assert!(status.success(), "send --checksum {algo}: {err}");
        // Without -k the receiver exits once the sender is done, successfully.
        let (rstatus, printed, rerr) = recv.wait();
        assert!(rstatus.success(), "recv: {rerr}");
        assert_same_tree(&tree, &dir.join("tree"));

        let printed = sorted_lines(&printed);
        assert_eq!(printed.len(), TREE_FILES.len(), "{printed:?}");
        assert_eq!(
            sorted_lines(&sent_out),
            printed,
            "sender and receiver agree"
        );
        let expected = match algo {
            "sha256" => tool_sums("sha256sum", &dir, &TREE_FILES),
            "md5" => tool_sums("md5sum", &dir, &TREE_FILES),
            _ => {
                let mut v: Vec<String> = TREE_FILES
                    .iter()
                    .map(|f| {
                        let data = std::fs::read(dir.join(f)).unwrap();
                        format!("{}  {f}", blake3::hash(&data).to_hex())
                    })
                    .collect();
                v.sort();
                v
            }
        };
        assert_eq!(printed, expected, "{algo} lines match the reference tool");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn as_sends_one_file_under_another_name() {
    let tmp = TempDir::new("xfer-as");
    let src = tmp.path("original.txt");
    std::fs::write(&src, b"renamed on the way\n").unwrap();
    let dir = tmp.path("out");
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[
        os(&recv.addr),
        src.as_os_str(),
        os("--as"),
        os("sub/new name.txt"),
    ]);
    assert!(status.success(), "{err}");
    let (rstatus, printed, _) = recv.wait();
    assert!(rstatus.success());
    assert_eq!(
        std::fs::read(dir.join("sub/new name.txt")).unwrap(),
        b"renamed on the way\n"
    );
    assert!(!dir.join("original.txt").exists());
    assert!(printed.ends_with("  sub/new name.txt\n"), "{printed:?}");

    // An unsafe --as is a usage error, before anything is sent.
    let (status, _, err) = send(&[os("127.0.0.1:9"), src.as_os_str(), os("--as"), os("../x")]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains(".."), "{err}");
}

/// What a test proxy does to the sender's bytes.
#[derive(Clone, Copy)]
enum Tamper {
    /// Flip every bit of the byte at this stream offset.
    Flip(u64),
    /// Forward this many bytes, then swallow the rest.
    Stall(u64),
}

/// A one-connection TCP proxy to `target` that tampers with the client's bytes; replies
/// pass untouched. Returns its address.
fn proxy(target: SocketAddr, tamper: Tamper) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut upstream = TcpStream::connect(target).unwrap();
        let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut u2, &mut c2);
            let _ = c2.shutdown(Shutdown::Write);
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut pos = 0u64;
        loop {
            let n = match client.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &mut buf[..n];
            let forward = match tamper {
                Tamper::Flip(at) => {
                    if (pos..pos + n as u64).contains(&at) {
                        chunk[(at - pos) as usize] ^= 0xff;
                    }
                    n
                }
                Tamper::Stall(limit) => limit.saturating_sub(pos).min(n as u64) as usize,
            };
            pos += n as u64;
            if upstream.write_all(&chunk[..forward]).is_err() {
                break;
            }
        }
        let _ = upstream.shutdown(Shutdown::Write);
    });
    addr
}

/// The receiver's partial files in `dir` (not recursive).
fn partials(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".sockit-partial-")
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_killed_transfer_resumes_and_says_how_much() {
    let tmp = TempDir::new("xfer-resume");
    let src = tmp.path("big.bin");
    random_file(&src, 40 << 20);
    let dir = tmp.path("out");
    let recv = Recv::start(&dir, &["-k"]);

    // The proxy lets 12 MiB through, then holds the rest: the sender is killed while the
    // receiver sits on a partial file.
    let via = proxy(recv.socket_addr(), Tamper::Stall(12 << 20));
    let mut sender = sockit()
        .args(["send", &via.to_string()])
        .arg(&src)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("partial data", || {
        partials(&dir)
            .first()
            .is_some_and(|p| std::fs::metadata(p).unwrap().len() >= 4 << 20)
    });
    sender.kill().unwrap();
    let _ = sender.wait();
    // The receiver notices the cut and keeps what it has.
    recv.wait_stderr("kept for a resume");
    let partial = partials(&dir).pop().unwrap();
    assert!(!dir.join("big.bin").exists(), "nothing in place yet");
    let have = std::fs::metadata(&partial).unwrap().len();
    assert!(have < 40 << 20);

    let (status, _, err) = send(&[os(&recv.addr), src.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(
        err.contains("resumed") && err.contains(&format!("({have} bytes)")),
        "sender should say how much it resumed: {err}"
    );
    assert!(std::fs::read(&src).unwrap() == std::fs::read(dir.join("big.bin")).unwrap());
    assert!(partials(&dir).is_empty());
    let (_, printed, rerr) = recv.stop();
    let want = format!(
        "{}  big.bin",
        blake3::hash(&std::fs::read(&src).unwrap()).to_hex()
    );
    assert_eq!(printed.trim_end(), want);
    assert!(rerr.contains("resumed after"), "{rerr}");
}

#[test]
fn a_corrupted_byte_is_caught_and_a_clean_retry_succeeds() {
    let tmp = TempDir::new("xfer-flip");
    let src = tmp.path("data.bin");
    random_file(&src, 4 << 20);
    let dir = tmp.path("out");
    let recv = Recv::start(&dir, &["-k"]);

    let via = proxy(recv.socket_addr(), Tamper::Flip(1 << 20));
    let (status, _, err) = send(&[os(&via.to_string()), src.as_os_str()]);
    assert!(!status.success(), "a corrupted transfer must fail");
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(!dir.join("data.bin").exists());
    assert!(partials(&dir).is_empty(), "corrupt data is discarded");

    let (status, _, err) = send(&[os(&recv.addr), src.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(std::fs::read(&src).unwrap() == std::fs::read(dir.join("data.bin")).unwrap());
    let (_, printed, _) = recv.stop();
    assert_eq!(printed.lines().count(), 1, "{printed}");
}

/// A hand-driven sender that can say anything.
struct RawSender {
    stream: TcpStream,
    codec: sockit::frame::LengthCodec,
    buf: bytes::BytesMut,
}

impl RawSender {
    fn connect(addr: &str) -> RawSender {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut s = RawSender {
            stream,
            codec: sockit::proto::transfer::codec(),
            buf: bytes::BytesMut::new(),
        };
        s.send(&Message::Hello { version: VERSION }.to_frame());
        assert_eq!(s.recv(), Some(Message::Hello { version: VERSION }));
        s
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn recv(&mut self) -> Option<Message> {
        let frame = self
            .codec
            .read_frame(&mut self.stream, &mut self.buf)
            .ok()??;
        Some(Message::decode(&frame).unwrap())
    }

    /// The receiver's refusal, which must come.
    fn refusal(&mut self) -> String {
        match self.recv() {
            Some(Message::Error(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

/// A file header frame with any path bytes at all.
fn raw_header(path: &[u8], size: u64) -> Vec<u8> {
    let valid = Message::Header(Header {
        kind: Kind::File,
        algo: Algo::Blake3,
        mode: 0o644,
        size,
        path: RelPath::new("x").unwrap(),
    })
    .to_frame();
    let mut payload = valid[4..valid.len() - 1].to_vec();
    payload.extend_from_slice(path);
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

fn file_header(path: &str, size: u64) -> Vec<u8> {
    raw_header(path.as_bytes(), size)
}

#[test]
fn unsafe_names_are_refused_and_nothing_lands_outside_dir() {
    let tmp = TempDir::new("xfer-unsafe");
    let outside = tmp.path("outside");
    let dir = tmp.path("dir");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("target"), dir.join("filelink")).unwrap();
    let recv = Recv::start(&dir, &["-k"]);

    let abs = outside.join("abs");
    let cases: &[(&[u8], &str)] = &[
        (b"/tmp/absolute", "absolute"),
        (abs.as_os_str().as_encoded_bytes(), "absolute"),
        (b"../escape", "\"..\""),
        (b"a/../../escape", "\"..\""),
        (b"a\0b", "NUL"),
        (b"a//b", "empty path component"),
        (b"a/", "empty path component"),
        (b"./a", "\".\""),
        (b"link/inside", "symbolic link"),
        (b"link/deeper/inside", "symbolic link"),
        (b"filelink", "symbolic link"),
        (b".sockit-partial-0000", "reserved"),
    ];
    for (path, why) in cases {
        let mut s = RawSender::connect(&recv.addr);
        s.send(&raw_header(path, 5));
        let reason = s.refusal();
        assert!(
            reason.contains(why),
            "{:?}: refusal {reason:?} should mention {why}",
            String::from_utf8_lossy(path)
        );
        // Whatever the sender does next, nothing is written.
        let _ = s.stream.write_all(b"12345");
    }
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["filelink", "link"]);

    // And the receiver still serves an honest sender.
    let ok = tmp.path("ok.txt");
    std::fs::write(&ok, b"fine").unwrap();
    let (status, _, err) = send(&[os(&recv.addr), ok.as_os_str()]);
    assert!(status.success(), "{err}");
    assert_eq!(std::fs::read(dir.join("ok.txt")).unwrap(), b"fine");
    let (status, _, rerr) = recv.stop();
    assert!(status.success(), "{rerr}");
}

#[test]
fn a_sender_lying_about_the_size_gets_nothing_in_place() {
    let tmp = TempDir::new("xfer-lies");
    let dir = tmp.path("dir");
    let recv = Recv::start(&dir, &["-k"]);
    let digest = |data: &[u8]| blake3::hash(data).as_bytes().to_vec();

    // Announces 1000 bytes, sends 500, closes: not in place (the 500 wait for a resume,
    // which verifies them whole).
    let mut s = RawSender::connect(&recv.addr);
    s.send(&file_header("short", 1000));
    assert!(matches!(s.recv(), Some(Message::Offer { offset: 0, .. })));
    s.send(&[7u8; 500]);
    drop(s);
    // Announces 100 bytes, sends 200 and the digest of all 200.
    let mut s = RawSender::connect(&recv.addr);
    s.send(&file_header("long", 100));
    assert!(matches!(s.recv(), Some(Message::Offer { offset: 0, .. })));
    s.send(&[7u8; 200]);
    s.send(&Message::Digest(digest(&[7u8; 200])).to_frame());
    let reason = s.refusal();
    assert!(reason.contains("protocol error"), "{reason}");
    // Sends the right number of bytes with the digest of other bytes.
    let mut s = RawSender::connect(&recv.addr);
    s.send(&file_header("wrong", 100));
    assert!(matches!(s.recv(), Some(Message::Offer { offset: 0, .. })));
    s.send(&[7u8; 100]);
    s.send(&Message::Digest(digest(&[8u8; 100])).to_frame());
    assert!(s.refusal().contains("digest mismatch"));
    // A digest of the wrong length.
    let mut s = RawSender::connect(&recv.addr);
    s.send(&file_header("odd", 1));
    assert!(matches!(s.recv(), Some(Message::Offer { offset: 0, .. })));
    s.send(b"x");
    s.send(&Message::Digest(vec![0; 5]).to_frame());
    assert!(s.refusal().contains("digest of 5 bytes"));

    let (_, printed, _) = recv.stop();
    assert_eq!(printed, "", "nothing was verified");
    for name in ["short", "long", "wrong", "odd"] {
        assert!(!dir.join(name).exists(), "{name} must not be in place");
    }
    // Only the honest-looking cut file left partial data, for a resume.
    assert_eq!(partials(&dir).len(), 1);
    assert_eq!(std::fs::metadata(&partials(&dir)[0]).unwrap().len(), 500);
}

#[test]
fn existing_files_are_kept_matched_skipped_or_overwritten() {
    let tmp = TempDir::new("xfer-existing");
    let src = tmp.path("f.txt");
    std::fs::write(&src, b"new contents").unwrap();
    let dir = tmp.path("dir");
    std::fs::create_dir_all(&dir).unwrap();

    // Identical file already there: counts as received, nothing resent.
    std::fs::write(dir.join("f.txt"), b"new contents").unwrap();
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[os(&recv.addr), src.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(err.contains("identical"), "{err}");
    assert!(recv.wait().0.success());

    // Same size, other contents: refused by default, file untouched.
    std::fs::write(dir.join("f.txt"), b"old contents").unwrap();
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[os(&recv.addr), src.as_os_str()]);
    assert!(!status.success());
    assert!(err.contains("--overwrite"), "{err}");
    assert!(!recv.wait().0.success());
    assert_eq!(std::fs::read(dir.join("f.txt")).unwrap(), b"old contents");

    // --skip-existing: skipped, untouched, success.
    let recv = Recv::start(&dir, &["--skip-existing"]);
    let (status, _, err) = send(&[os(&recv.addr), src.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(err.contains("skipped"), "{err}");
    assert!(recv.wait().0.success());
    assert_eq!(std::fs::read(dir.join("f.txt")).unwrap(), b"old contents");

    // --overwrite: replaced.
    let recv = Recv::start(&dir, &["--overwrite"]);
    let (status, _, err) = send(&[os(&recv.addr), src.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(recv.wait().0.success());
    assert_eq!(std::fs::read(dir.join("f.txt")).unwrap(), b"new contents");
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    /// `None` where mounting is not allowed (not root, no mount namespace rights).
    fn mount(at: &Path, size: &str) -> Option<SmallFs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallFs(at.to_path_buf()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_reported_and_leaves_no_file() {
    let tmp = TempDir::new("xfer-enospc");
    let dir = tmp.path("small");
    let Some(_fs) = SmallFs::mount(&dir, "1m") else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let big = tmp.path("big.bin");
    random_file(&big, 3 << 20);
    let recv = Recv::start(&dir, &["-k"]);
    let (status, _, err) = send(&[os(&recv.addr), big.as_os_str()]);
    assert!(!status.success());
    assert!(err.contains("no space left"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "nothing may stay behind: {left:?}");

    // The receiver goes on serving, and a file that fits arrives.
    let small = tmp.path("small.txt");
    std::fs::write(&small, b"fits").unwrap();
    let (status, _, err) = send(&[os(&recv.addr), small.as_os_str()]);
    assert!(status.success(), "{err}");
    assert_eq!(std::fs::read(dir.join("small.txt")).unwrap(), b"fits");
    let (status, _, rerr) = recv.stop();
    assert!(status.success(), "{rerr}");
}

#[test]
fn several_senders_at_once_over_a_unix_socket() {
    let tmp = TempDir::new("xfer-many");
    let dir = tmp.path("dir");
    let sock = tmp.path("recv.sock");
    let mut child = sockit()
        .args(["recv", &format!("unix:{}", sock.display()), "-k", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.starts_with("listening on unix:"), "{first}");
    // Keep reading, so the receiver never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = format!("unix:{}", sock.display());
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let src = tmp.path(&format!("f{i}.bin"));
            random_file(&src, (3 << 20) + i);
            sockit()
                .args(["send", &addr])
                .arg(&src)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for s in senders {
        let (status, _, err) = finish(s);
        assert!(status.success(), "{err}");
    }
    for i in 0..4 {
        let name = format!("f{i}.bin");
        assert!(std::fs::read(tmp.path(&name)).unwrap() == std::fs::read(dir.join(&name)).unwrap());
    }
    crate::util::signal(&child, 15);
    assert!(wait_timeout(&mut child, WAIT).unwrap().success());
    assert!(!sock.exists(), "socket file removed on exit");
}

/// A sender announcing directories with mode 000: the one the transfer makes takes it, the
/// ones already in DIR keep theirs (a sender must not lock the receiver out of its own).
#[test]
fn recv_keeps_the_mode_of_existing_directories() {
    let tmp = TempDir::new("xfer-dirmode");
    let dir = tmp.path("dir");
    std::fs::create_dir_all(dir.join("old/inner")).unwrap();
    set_mode(&dir.join("old"), 0o755);
    set_mode(&dir.join("old/inner"), 0o750);
    let recv = Recv::start(&dir, &[]);
    let mut s = RawSender::connect(&recv.addr);
    for path in ["old", "old/inner", "old/new"] {
        s.send(
            &Message::Header(Header {
                kind: Kind::Dir,
                algo: Algo::Blake3,
                mode: 0,
                size: 0,
                path: RelPath::new(path).unwrap(),
            })
            .to_frame(),
        );
        assert_eq!(s.recv(), Some(Message::Ack(Vec::new())), "{path}");
    }
    s.send(&Message::End.to_frame());
    assert_eq!(s.recv(), Some(Message::End));
    let (status, _, err) = recv.wait();
    let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
    let new = mode("old/new");
    set_mode(&dir.join("old/new"), 0o700);
    assert!(status.success(), "{err}");
    assert_eq!(mode("old"), 0o755);
    assert_eq!(mode("old/inner"), 0o750);
    assert_eq!(
        new, 0,
        "the directory the transfer made takes the sender's mode"
    );
}

/// What a hostile peer puts in every string it controls: a window title and a screen clear.
const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J";

#[test]
fn recv_escapes_the_senders_file_name() {
    let tmp = TempDir::new("xfer-escape-name");
    let src = tmp.path(&format!("evil{HOSTILE}.txt"));
    std::fs::write(&src, b"harmless bytes, hostile name\n").unwrap();
    let dir = tmp.path("out");
    let recv = Recv::start(&dir, &["-k"]);
    // Twice: the second time the file is already there, which is said on stderr.
    for _ in 0..2 {
        let (status, _, err) = send(&[os(&recv.addr), src.as_os_str()]);
        assert!(status.success(), "{err}");
    }
    let (_, printed, logged) = recv.stop();
    assert!(printed.contains("evil\\x1b]0;pwned\\x07"), "{printed:?}");
    assert!(!printed.contains('\x1b'), "ESC on stdout: {printed:?}");
    assert!(!logged.contains('\x1b'), "ESC on stderr: {logged:?}");
    // The file itself keeps its real name.
    assert!(dir.join(format!("evil{HOSTILE}.txt")).exists());
}

#[test]
fn send_escapes_the_receivers_refusal() {
    let tmp = TempDir::new("xfer-escape-refusal");
    let src = tmp.path("a.txt");
    std::fs::write(&src, b"refused anyway\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // A receiver that greets, then refuses whatever comes with a hostile reason.
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut codec = sockit::proto::transfer::codec();
        let mut buf = bytes::BytesMut::new();
        let hello = codec.read_frame(&mut stream, &mut buf).unwrap().unwrap();
        assert!(matches!(Message::decode(&hello), Ok(Message::Hello { .. })));
        stream
            .write_all(&Message::Hello { version: VERSION }.to_frame())
            .unwrap();
        let _ = codec.read_frame(&mut stream, &mut buf);
        let refusal = Message::Error(format!("no{HOSTILE} thanks"));
        stream.write_all(&refusal.to_frame()).unwrap();
        let _ = stream.shutdown(Shutdown::Write);
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    });
    let (status, out, err) = send(&[os(&addr), src.as_os_str()]);
    receiver.join().unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("no\\x1b]0;pwned\\x07"), "{err:?}");
    assert!(!err.contains('\x1b'), "ESC on stderr: {err:?}");
    assert!(!out.contains('\x1b'), "ESC on stdout: {out:?}");
}

#[test]
fn recv_lets_a_killed_senders_resend_resume() {
    let tmp = TempDir::new("xfer-kill-resend");
    let dir = tmp.path("out");
    let recv = Recv::start(&dir, &["-k"]);
    // Several rounds: the race (the old session still draining its socket when the resend
    // asks for the same file) is lost most of the time, not every time.
    for round in 0..3 {
        let src = tmp.path(&format!("big{round}.bin"));
        random_file(&src, 256 << 20);
        let mut sender = sockit()
            .args(["send", &recv.addr])
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("partial data", || {
            partials(&dir)
                .first()
                .is_some_and(|p| std::fs::metadata(p).map_or(0, |m| m.len()) >= 2 << 20)
        });
        sender.kill().unwrap();
        let _ = sender.wait();
        // At once: no waiting for the receiver to notice.
        let (status, _, err) = send(&[os(&recv.addr), src.as_os_str()]);
        assert!(status.success(), "round {round}: {err}");
        assert!(err.contains("resum"), "round {round}: no resume: {err}");
        let name = format!("big{round}.bin");
        assert!(
            std::fs::read(&src).unwrap() == std::fs::read(dir.join(&name)).unwrap(),
            "round {round}: other bytes"
        );
        std::fs::remove_file(&src).unwrap();
        std::fs::remove_file(dir.join(&name)).unwrap();
    }
    let (status, _, rerr) = recv.stop();
    assert!(status.success(), "{rerr}");
}

fn symlink(target: &str, at: &Path) {
    std::os::unix::fs::symlink(target, at).unwrap();
}

/// The target of `at`, which must be a symbolic link.
fn link_target(at: &Path) -> String {
    let meta = std::fs::symlink_metadata(at).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
    assert!(
        meta.file_type().is_symlink(),
        "{} is not a link",
        at.display()
    );
    std::fs::read_link(at)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The summary line of `sockit send`.
fn summary(err: &str) -> &str {
    err.lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no summary in {err:?}"))
}

#[test]
fn send_carries_symbolic_links_that_stay_inside() {
    let tmp = TempDir::new("xfer-links");
    let tree = tmp.path("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::write(tree.join("a/real.txt"), b"real\n").unwrap();
    symlink("real.txt", &tree.join("a/same-dir"));
    symlink("a/real.txt", &tree.join("down"));
    symlink("../real.txt", &tree.join("a/b/up-one"));
    symlink("b", &tree.join("a/dir-link"));
    // Dangling, but inside: carried as it is, like tar and rsync -l do.
    symlink("not-yet", &tree.join("a/dangling"));
    let dir = tmp.path("dir");
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str()]);
    assert!(status.success(), "{err}");
    let (status, _, rerr) = recv.wait();
    assert!(status.success(), "{rerr}");
    let got = dir.join("tree");
    assert_eq!(link_target(&got.join("a/same-dir")), "real.txt");
    assert_eq!(link_target(&got.join("down")), "a/real.txt");
    assert_eq!(link_target(&got.join("a/b/up-one")), "../real.txt");
    assert_eq!(link_target(&got.join("a/dir-link")), "b");
    assert_eq!(link_target(&got.join("a/dangling")), "not-yet");
    assert_eq!(std::fs::read(got.join("down")).unwrap(), b"real\n");
    assert!(
        summary(&err).contains("1 file(s), 5 link(s)"),
        "{}",
        summary(&err)
    );
    assert!(!summary(&err).contains("skipped"), "{err}");

    // Sent again: the same links are already there, which is fine.
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(summary(&err).contains("5 link(s)"), "{err}");
    let (status, _, rerr) = recv.wait();
    assert!(status.success(), "{rerr}");

    // A link that changed: kept and refused by default, replaced with --overwrite,
    // skipped and named with --skip-existing.
    std::fs::remove_file(tree.join("down")).unwrap();
    symlink("a/b", &tree.join("down"));
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str()]);
    assert!(!status.success());
    assert!(
        err.contains("tree/down already exists and differs"),
        "{err}"
    );
    drop(recv);
    assert_eq!(link_target(&got.join("down")), "a/real.txt");
    let recv = Recv::start(&dir, &["--skip-existing"]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(
        summary(&err).contains("skipped 2: tree/a/real.txt, tree/down"),
        "{err}"
    );
    recv.wait();
    assert_eq!(link_target(&got.join("down")), "a/real.txt");
    let recv = Recv::start(&dir, &["--overwrite"]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str()]);
    assert!(status.success(), "{err}");
    recv.wait();
    assert_eq!(link_target(&got.join("down")), "a/b");
    assert_eq!(partials(&got), Vec::<PathBuf>::new());
}

#[test]
fn recv_refuses_links_that_escape_dir() {
    let tmp = TempDir::new("xfer-links-out");
    let tree = tmp.path("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("file"), b"x").unwrap();
    symlink("/etc/passwd", &tree.join("abs"));
    symlink("../../outside", &tree.join("climb"));
    symlink("../../..", &tree.join("sub/climb-more"));
    symlink("sub/../../x", &tree.join("twisty"));
    symlink("file", &tree.join("fine"));
    let dir = tmp.path("dir");
    let recv = Recv::start(&dir, &["-k"]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str()]);
    assert!(status.success(), "{err}");
    for (name, why) in [
        ("tree/abs", "absolute"),
        ("tree/climb", "climbs out"),
        ("tree/sub/climb-more", "climbs out"),
        ("tree/twisty", "after a name"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("skipped {name}:")) && l.contains(why)),
            "sender should name {name} ({why}): {err}"
        );
        assert!(
            std::fs::symlink_metadata(dir.join(name)).is_err(),
            "{name} must not be created"
        );
    }
    assert!(summary(&err).contains("1 link(s)"), "{err}");
    assert!(summary(&err).contains("skipped 4: "), "{err}");
    assert_eq!(link_target(&dir.join("tree/fine")), "file");
    let line = recv.wait_stderr("skipped link tree/abs");
    assert!(
        line.contains("/etc/passwd") && line.contains("absolute"),
        "{line}"
    );
    let line = recv.wait_stderr("received 1 file(s), 1 link(s); skipped 4");
    assert!(!line.contains('\x1b'), "{line}");

    // A hostile sender says what it likes: refused links are skipped, the session goes on.
    let mut s = RawSender::connect(&recv.addr);
    let link = |path: &str, target: &[u8]| {
        Message::Link(Link {
            path: RelPath::new(path).unwrap(),
            target: target.to_vec(),
        })
        .to_frame()
    };
    for (path, target, why) in [
        ("x", &b"../../../etc"[..], "climbs out"),
        ("y", b"/etc/shadow", "absolute"),
        ("d/z", b"./../..", "climbs out"),
        ("w", b"a/../../..", "after a name"),
        ("e", format!("..{HOSTILE}/../..").as_bytes(), "after a name"),
    ] {
        s.send(&link(path, target));
        match s.recv() {
            Some(Message::Skip { reason }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("{path}: expected a skip, got {other:?}"),
        }
    }
    s.send(&link("ok", b"x"));
    assert_eq!(s.recv(), Some(Message::Ack(vec![])));
    s.send(&Message::End.to_frame());
    assert_eq!(s.recv(), Some(Message::End));
    // A link whose path is unsafe is refused like a file's.
    let mut s = RawSender::connect(&recv.addr);
    let mut payload = vec![b'F', 2, 0, 0, 0, 0, 0];
    payload.extend_from_slice(&1u64.to_be_bytes());
    payload.extend_from_slice(b"../px");
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    s.send(&frame);
    assert!(s.refusal().contains("\"..\""));
    let (_, _, logged) = recv.stop();
    assert!(!logged.contains('\x1b'), "ESC on stderr: {logged:?}");
    assert!(
        logged.contains("skipped link e -> ..\\x1b]0;pwned"),
        "{logged}"
    );
    for name in ["x", "y", "d/z", "w", "e"] {
        assert!(std::fs::symlink_metadata(dir.join(name)).is_err(), "{name}");
    }
    assert_eq!(link_target(&dir.join("ok")), "x");
    assert!(std::fs::symlink_metadata(tmp.path("outside")).is_err());
}

#[test]
fn send_follow_links_sends_the_targets() {
    let tmp = TempDir::new("xfer-follow");
    let tree = tmp.path("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("file"), b"contents\n").unwrap();
    std::fs::write(tree.join("sub/inner"), b"inner\n").unwrap();
    std::fs::write(tmp.path("outside.txt"), b"from outside\n").unwrap();
    symlink("file", &tree.join("file-link"));
    symlink("sub", &tree.join("dir-link"));
    symlink("../outside.txt", &tree.join("outside-link"));
    // Back to a folder being sent: followed, it would never end.
    symlink("..", &tree.join("sub/loop"));
    let dir = tmp.path("dir");
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str(), os("--follow-links")]);
    assert!(status.success(), "{err}");
    let (status, _, rerr) = recv.wait();
    assert!(status.success(), "{rerr}");
    let got = dir.join("tree");
    for (name, want) in [
        ("file-link", &b"contents\n"[..]),
        ("dir-link/inner", b"inner\n"),
        ("outside-link", b"from outside\n"),
    ] {
        let meta = std::fs::symlink_metadata(got.join(name)).unwrap();
        assert!(meta.is_file(), "{name} should be a regular file");
        assert_eq!(std::fs::read(got.join(name)).unwrap(), want, "{name}");
    }
    assert!(
        std::fs::symlink_metadata(got.join("dir-link"))
            .unwrap()
            .is_dir()
    );
    // The loop is met twice: in sub, and in sub again through dir-link.
    for name in ["sub/loop", "dir-link/loop"] {
        assert!(std::fs::symlink_metadata(got.join(name)).is_err(), "{name}");
        assert!(
            err.lines()
                .any(|l| l.contains("skipped") && l.contains(name) && l.contains("loop")),
            "{err}"
        );
    }
    let line = summary(&err);
    assert!(line.contains("5 file(s), 0 link(s)"), "{line}");
    assert!(
        line.contains("skipped 2: tree/dir-link/loop, tree/sub/loop"),
        "{line}"
    );
}

#[test]
fn send_names_and_counts_what_it_skips() {
    let tmp = TempDir::new("xfer-skips");
    let tree = tmp.path("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("file"), b"x").unwrap();
    let fifo = tree.join(format!("fifo{HOSTILE}"));
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let _socket = std::os::unix::net::UnixListener::bind(tree.join("sock")).unwrap();
    symlink("nowhere", &tree.join("dangling"));
    let dir = tmp.path("dir");

    // Carried as a link, the dangling one is sent; the FIFO and socket are not.
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str()]);
    assert!(status.success(), "{err}");
    recv.wait();
    assert!(!err.contains('\x1b'), "ESC on stderr: {err:?}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(lines.len(), 3, "one line each, and the summary: {err}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("fifo\\x1b]0;pwned") && l.contains("FIFO")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sock") && l.contains("socket")),
        "{err}"
    );
    let line = summary(&err);
    assert!(line.contains("1 file(s), 1 link(s)"), "{line}");
    assert!(line.contains("skipped 2: "), "{line}");
    assert!(std::fs::symlink_metadata(dir.join("tree/sock")).is_err());
    assert_eq!(std::fs::read_dir(dir.join("tree")).unwrap().count(), 2);
    assert_eq!(link_target(&dir.join("tree/dangling")), "nowhere");

    // Followed, the dangling link has nothing to send: it is named and counted too.
    let dir = tmp.path("dir2");
    let recv = Recv::start(&dir, &[]);
    let (status, _, err) = send(&[os(&recv.addr), tree.as_os_str(), os("-L")]);
    assert!(status.success(), "{err}");
    recv.wait();
    assert!(
        err.lines().any(|l| l.contains("skipped")
            && l.contains("dangling")
            && l.contains("dangling symbolic link")),
        "{err}"
    );
    let line = summary(&err);
    assert!(line.contains("1 file(s), 0 link(s)"), "{line}");
    assert!(line.contains("skipped 3: "), "{line}");
    assert!(std::fs::symlink_metadata(dir.join("tree/dangling")).is_err());
}

/// Writes `frame` to `s` one byte every 200 ms, starting the clock at its first byte,
/// until the receiver closes the connection; how long that took, or `None` if the whole
/// frame went out (or 5 s passed) without a close.
fn trickle_frame(s: &mut TcpStream, frame: &[u8]) -> Option<Duration> {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut bytes = frame.iter();
    let mut answered = false;
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(5) {
        if !answered {
            let byte = bytes.next()?;
            if s.write_all(&[*byte]).is_err() {
                return Some(started.elapsed());
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            // The receiver's refusal, before it closes.
            Ok(_) => answered = true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[test]
fn recv_cuts_a_transfer_header_that_trickles() {
    let tmp = TempDir::new("xfer-trickle");
    let dir = tmp.path("dir");
    let recv = Recv::start(
        &dir,
        &["-k", "--header-timeout", "1s", "--idle-timeout", "5s"],
    );
    let in_time = |took: Option<Duration>, what: &str| {
        let took = took.unwrap_or_else(|| panic!("{what}: never cut"));
        assert!(
            took >= Duration::from_millis(900) && took <= Duration::from_millis(2500),
            "{what}: cut after {took:?}"
        );
    };
    // The first frame (the hello's place), announced long and sent a byte at a time.
    let mut s = TcpStream::connect(&recv.addr).unwrap();
    let mut first = 50u32.to_be_bytes().to_vec();
    first.extend_from_slice(&[0u8; 50]);
    in_time(trickle_frame(&mut s, &first), "hello");
    recv.wait_stderr("header timeout");
    // A file header after a proper hello; its contents would keep the idle timeout.
    let mut s = RawSender::connect(&recv.addr);
    in_time(
        trickle_frame(&mut s.stream, &file_header(&"n".repeat(200), 10)),
        "file header",
    );
    recv.wait_stderr("header timeout");
    // Meanwhile, and after, a real sender is served.
    let file = tmp.path("f");
    random_file(&file, 100_000);
    let (status, _, err) = send(&[os(&recv.addr), file.as_os_str()]);
    assert!(status.success(), "{err}");
    let (_, printed, _) = recv.stop();
    assert_eq!(printed.lines().count(), 1, "{printed}");
}

/// A folder of several files, one of 20 MiB, for the TLS tests.
fn make_tls_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/empty-dir")).unwrap();
    std::fs::write(root.join("notes.txt"), b"over tls\n").unwrap();
    std::fs::write(root.join("zero"), b"").unwrap();
    random_file(&root.join("sub/big.bin"), (20 << 20) + 7);
    random_file(&root.join("sub/small.bin"), 70_001);
    set_mode(&root.join("sub/small.bin"), 0o640);
}

const TLS_TREE_FILES: [&str; 4] = [
    "tree/notes.txt",
    "tree/sub/big.bin",
    "tree/sub/small.bin",
    "tree/zero",
];

#[test]
fn send_recv_over_tls_pinned_zero_setup() {
    let tmp = TempDir::new("xfer-tls");
    let tree = tmp.path("tree");
    make_tls_tree(&tree);
    let dir = tmp.path("out");
    let (recv, pin) = Recv::start_tls(&dir, &[]);
    assert!(recv.addr.starts_with("tls://127.0.0.1:"), "{}", recv.addr);
    let (status, sent_out, err) = send(&[
        os("--pin"),
        os(&pin),
        os(&recv.addr),
        tree.as_os_str(),
        os("--checksum"),
        os("sha256"),
    ]);
    assert!(status.success(), "send over tls: {err}");
    assert!(err.contains("sent 4 file(s)"), "{err}");
    let (rstatus, printed, rerr) = recv.wait();
    assert!(rstatus.success(), "recv: {rerr}");
    assert_same_tree(&tree, &dir.join("tree"));
    // Verified: each file's digest, as both sides printed it, is sha256sum's.
    let printed = sorted_lines(&printed);
    assert_eq!(
        sorted_lines(&sent_out),
        printed,
        "sender and receiver agree"
    );
    assert_eq!(printed, tool_sums("sha256sum", &dir, &TLS_TREE_FILES));
}

/// `recv tls:// --client-ca` takes files only from a `send` with `--client-cert` (mutual
/// TLS); a sender without one is refused in one line, and so is the receiver's log line.
#[test]
fn send_recv_over_mutual_tls_needs_the_client_certificate() {
    let tmp = TempDir::new("xfer-mtls");
    let tree = tmp.path("tree");
    make_tls_tree(&tree);
    let ca = crate::util::openssl_cert(&tmp, "sockit test CA");
    let alice = crate::util::openssl_signed(&tmp, &ca, "alice");
    let dir = tmp.path("out");
    let (recv, pin) = Recv::start_tls(&dir, &["-k", "--client-ca", &ca.0]);
    let (status, out, err) = send(&[os("--pin"), os(&pin), os(&recv.addr), tree.as_os_str()]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("the server requires a client certificate"),
        "{err}"
    );
    let line = recv.wait_stderr("TLS handshake");
    assert!(
        line.contains("the client presented no certificate"),
        "{line}"
    );
    assert!(
        !dir.join("tree").exists(),
        "nothing received without a certificate"
    );

    let (status, _, err) = send(&[
        os("--pin"),
        os(&pin),
        os("--client-cert"),
        os(&alice.0),
        os("--client-key"),
        os(&alice.1),
        os(&recv.addr),
        tree.as_os_str(),
    ]);
    assert!(status.success(), "send with a client certificate: {err}");
    assert!(err.contains("sent 4 file(s)"), "{err}");
    assert_same_tree(&tree, &dir.join("tree"));
    let (rstatus, printed, rerr) = recv.stop();
    assert!(rstatus.success(), "recv: {rerr}");
    assert_eq!(printed.lines().count(), 4, "{printed}");
}

#[test]
fn send_over_tls_refuses_a_wrong_pin() {
    let tmp = TempDir::new("xfer-tls-pin");
    let tree = tmp.path("tree");
    make_tls_tree(&tree);
    let dir = tmp.path("out");
    let (recv, pin) = Recv::start_tls(&dir, &["-k"]);
    let wrong = format!("sha256:{}", "0".repeat(64));
    assert_ne!(pin, wrong);
    let (status, out, err) = send(&[os("--pin"), os(&wrong), os(&recv.addr), tree.as_os_str()]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("sockit: ") && err.contains("pin"), "{err}");
    // The receiver saw the handshake fail, wrote nothing, and is still there.
    recv.wait_stderr("TLS handshake");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written"
    );
    let (status, _, err) = send(&[os("--pin"), os(&pin), os(&recv.addr), tree.as_os_str()]);
    assert!(status.success(), "the right pin after a wrong one: {err}");
    assert_same_tree(&tree, &dir.join("tree"));
    let (status, _, rerr) = recv.stop();
    assert!(status.success(), "{rerr}");
}

#[test]
fn recv_tls_refuses_a_plain_text_sender_and_serves_a_tls_one() {
    let tmp = TempDir::new("xfer-tls-plain");
    let tree = tmp.path("tree");
    make_tls_tree(&tree);
    let dir = tmp.path("out");
    // Without -k: a refused handshake is no sender served, so it waits for the next one.
    let (recv, pin) = Recv::start_tls(&dir, &[]);
    let host_port = recv.addr.strip_prefix("tls://").unwrap().to_owned();
    let (status, _, err) = send(&[os(&host_port), tree.as_os_str()]);
    assert_eq!(status.code(), Some(1), "a plain sender must fail: {err}");
    assert!(err.contains("tls://"), "a hint: {err}");
    let warning = recv.wait_stderr("warning");
    assert!(warning.contains("does not speak TLS"), "{warning}");
    // Garbage that is not even the transfer protocol: its connection is closed too.
    let mut raw = TcpStream::connect(&host_port).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(&[0xff; 64]).unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(
        answer.first().is_none_or(|&b| b == 0x15),
        "a TLS alert at most: {answer:?}"
    );
    recv.wait_stderr("warning");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing written"
    );
    let (status, _, err) = send(&[os("--pin"), os(&pin), os(&recv.addr), tree.as_os_str()]);
    assert!(status.success(), "the TLS sender after them: {err}");
    let (rstatus, _, rerr) = recv.wait();
    assert!(rstatus.success(), "recv: {rerr}");
    assert_same_tree(&tree, &dir.join("tree"));
}

#[test]
fn a_killed_tls_transfer_resumes_over_tls() {
    let tmp = TempDir::new("xfer-tls-resume");
    let dir = tmp.path("out");
    let (recv, pin) = Recv::start_tls(&dir, &["-k"]);
    let src = tmp.path("big.bin");
    random_file(&src, 256 << 20);
    let mut sender = sockit()
        .args(["send", "--pin", &pin, &recv.addr])
        .arg(&src)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("partial data", || {
        partials(&dir)
            .first()
            .is_some_and(|p| std::fs::metadata(p).map_or(0, |m| m.len()) >= 2 << 20)
    });
    sender.kill().unwrap();
    let _ = sender.wait();
    let (status, _, err) = send(&[os("--pin"), os(&pin), os(&recv.addr), src.as_os_str()]);
    assert!(status.success(), "{err}");
    assert!(err.contains("resum"), "no resume: {err}");
    assert!(
        std::fs::read(&src).unwrap() == std::fs::read(dir.join("big.bin")).unwrap(),
        "other bytes"
    );
    let (status, _, rerr) = recv.stop();
    assert!(status.success(), "{rerr}");
}

#[test]
fn quiet_send_and_recv_print_only_digests_and_problems() {
    let tmp = TempDir::new("quiet");
    let (src, dst) = (tmp.path("src"), tmp.path("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join("a.bin");
    random_file(&file, 100_000);
    for quiet in [false, true] {
        let q: &[&str] = if quiet { &["-q"] } else { &[] };
        let recv = Recv::start(&dst, &[&["-k"], q].concat());
        // The second time the file is already there: recv notes it unless -q.
        let mut sends = Vec::new();
        for _ in 0..2 {
            let mut args = vec![os(&recv.addr), file.as_os_str()];
            args.extend(q.iter().map(|a| os(a)));
            let (status, out, err) = send(&args);
            assert!(status.success(), "{err}");
            assert_eq!(out.lines().count(), 1, "one digest line: {out}");
            sends.push(err);
        }
        if !quiet {
            recv.wait_stderr("a.bin was already here, identical");
        }
        let (_, out, err) = recv.stop();
        assert_eq!(out.lines().count(), 2, "recv's digest lines: {out}");
        if quiet {
            assert_eq!(sends, ["", ""], "send -q said something");
            assert!(!err.contains("already here"), "recv -q noted: {err}");
        } else {
            assert!(sends[0].contains("sent 1 file(s)"), "{}", sends[0]);
            assert!(sends[1].contains("already on the receiver"), "{}", sends[1]);
        }
        std::fs::remove_dir_all(&dst).unwrap();
    }
}
