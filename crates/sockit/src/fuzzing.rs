//! Invariant checks shared by the fuzz targets in `fuzz/` and the corpus replay test, so
//! that CI exercises exactly what the fuzzer does. Each takes arbitrary bytes and panics
//! when an invariant breaks; "no panic" alone is not the bar.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::frame::{FrameError, HEADER_LEN, LengthCodec};
use crate::proto::exec::{
    Action, CHALLENGE_LEN, Kind, Message, Permits, Policy, ProtocolError, Session, State, Token,
};

/// Frame decoder: the first byte picks the limit (0..=1020) and the second a chunk size
/// (1..=256); the rest is the stream. Decoding it whole and in chunks must agree frame for
/// frame and error for error, every frame must respect the limit, re-encoding the frames
/// must give back exactly the bytes consumed, and an over-long header must not make the
/// decoder reserve that length.
pub fn check_frame_decoder(data: &[u8]) {
    let (max, chunk, wire) = match data {
        [a, b, rest @ ..] => (*a as usize * 4, *b as usize + 1, rest),
        _ => return,
    };
    let whole = decode_all(max, wire, wire.len().max(1));
    let pieces = decode_all(max, wire, chunk);
    assert_eq!(whole, pieces, "decoding depends on how the input is cut");

    let (frames, end) = whole;
    let codec = LengthCodec::new(max);
    let mut re = BytesMut::new();
    for f in &frames {
        assert!(
            f.len() <= max,
            "a frame of {} bytes passed a limit of {max}",
            f.len()
        );
        codec
            .encode_frame(f, &mut re)
            .expect("a decoded frame re-encodes");
    }
    assert_eq!(
        &re[..],
        &wire[..re.len()],
        "re-encoding differs from the input"
    );
    match end {
        End::Clean => assert_eq!(re.len(), wire.len()),
        End::TooLong(len) => {
            assert!(len > max as u64);
            let at = re.len();
            let header = u32::from_be_bytes(wire[at..at + HEADER_LEN].try_into().unwrap());
            assert_eq!(
                u64::from(header),
                len,
                "the error names the announced length"
            );
        }
        End::Truncated { have, want } => {
            assert!(have < want);
            assert_eq!(
                re.len() + have,
                wire.len(),
                "truncation counts the leftover bytes"
            );
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    TooLong(u64),
    Truncated { have: usize, want: usize },
}

fn decode_all(max: usize, wire: &[u8], chunk: usize) -> (Vec<Vec<u8>>, End) {
    let mut codec = LengthCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode_frame(&mut buf) {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(FrameError::TooLong { len, .. }) => {
                    // Nothing near the announced size was reserved.
                    assert!(buf.capacity() <= 2 * (wire.len() + max) + 64);
                    return (frames, End::TooLong(len));
                }
                Err(e) => panic!("decode_frame only fails for over-long frames: {e}"),
            }
        }
    }
    match codec.decode_eof(&mut buf) {
        Ok(None) => (frames, End::Clean),
        Ok(Some(_)) => panic!("decode_eof found a frame decode_frame missed"),
        Err(FrameError::Truncated { have, want }) => (frames, End::Truncated { have, want }),
        Err(e) => panic!("unexpected error at end of input: {e}"),
    }
}

/// Exec messages: any payload either fails to parse or parses to a message that encodes
/// to one frame which parses back to the same message (byte bodies byte for byte). Then
/// the same bytes, read as a stream of frames, drive a server [`Session`]: it never
/// panics, runs a program at most once and only after a valid authentication, and once
/// it refuses it stays done. (An empty `A` frame in the input stands for the correct
/// answer, which a fuzzer could never guess.)
pub fn check_exec_message(data: &[u8]) {
    check_payload(data);

    let policy = Policy {
        token: Token::new(b"fuzz").expect("non-empty"),
        permits: Permits::resolve_with(
            &["echo".into(), "/bin/sh".into()],
            Some("/bin".as_ref()),
            |_| true,
        )
        .expect("every file exists here"),
        max_output: 1 << 20,
    };
    let challenge = [0x5a; CHALLENGE_LEN];
    let token = policy.token.clone();
    let mut session = Session::new(Arc::new(policy), challenge);
    let mut codec = LengthCodec::new(1 << 16);
    let mut buf = BytesMut::from(data);
    let mut authenticated = false;
    let mut spawned = false;
    while let Ok(Some(frame)) = codec.decode_frame(&mut buf) {
        let msg = match Message::decode(frame.freeze()) {
            Ok(msg) => msg,
            Err(ProtocolError::BadLength {
                kind: Kind::Auth,
                len: 0,
                ..
            }) => Message::Auth(token.respond(&challenge)),
            Err(_) => continue,
        };
        let before = session.state();
        let kind = msg.kind();
        let result = session.on_message(msg);
        match (&result, before) {
            (Err(_), _) => assert_eq!(session.state(), State::Done),
            (Ok(Action::None), State::AwaitAuth) => {
                assert_eq!(kind, Kind::Auth);
                authenticated = true;
            }
            (Ok(Action::Spawn { program, argv }), State::AwaitRun) => {
                assert!(authenticated && !spawned, "spawn without auth, or twice");
                assert!(program.is_absolute());
                assert!(argv[0] == "echo" || argv[0] == "/bin/sh", "{argv:?}");
                spawned = true;
            }
            (Ok(Action::Stdin(d)), State::Running { stdin_open: true }) => {
                assert!(!d.is_empty());
            }
            (Ok(Action::CloseStdin), State::Running { stdin_open: true }) => {}
            (ok, state) => panic!("{ok:?} in state {state:?}"),
        }
        if before == State::Done {
            assert!(result.is_err(), "a finished session accepted {kind}");
        }
    }
}

fn check_payload(data: &[u8]) {
    let Ok(msg) = Message::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert_eq!(msg.kind() as u8, data[0]);
    let frame = msg.to_frame().expect("a decoded payload fits in a frame");
    let mut wire = BytesMut::from(&frame[..]);
    let payload = LengthCodec::default()
        .decode_frame(&mut wire)
        .expect("valid frame")
        .expect("whole frame");
    assert!(wire.is_empty());
    let again = Message::decode(payload.clone().freeze()).expect("re-encoded message parses");
    assert_eq!(again, msg, "decode(encode(m)) != m");
    let byte_exact = match &msg {
        Message::Refuse(text) => std::str::from_utf8(&data[1..]) == Ok(text.as_str()),
        Message::Run { .. } | Message::Exit(_) => false,
        _ => true,
    };
    if byte_exact {
        assert_eq!(&payload[..], data, "a byte body changed on the way");
    }
}

/// Packet parsers: arbitrary bytes parsed as IPv4, IPv6, ICMP, ICMPv6 and TCP never panic;
/// whatever parses rebuilds to the same bytes (checksum fields aside: 0x0000 and 0xffff are
/// the same ones'-complement sum) and parses back to the same value. Then the bytes, read as
/// fields, build an echo request and a TCP segment whose checksums verify and which parse
/// back to exactly what was built.
pub fn check_packets(data: &[u8]) {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use crate::net::packet::{Icmp, IcmpVersion, Ipv4Header, Ipv6Header, TcpHeader};

    let same_except = |a: &[u8], b: &[u8], skip: std::ops::Range<usize>| {
        assert_eq!(a.len(), b.len(), "rebuilt length differs");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                skip.contains(&i) || x == y,
                "byte {i} differs: {x:#x} vs {y:#x}"
            );
        }
    };
    if let Ok((h, payload)) = Ipv4Header::parse(data) {
        assert!(usize::from(h.total_len) <= data.len() && payload.len() < usize::from(h.total_len));
        if data[0] == 0x45 {
            let mut out = Vec::new();
            h.write(&mut out);
            same_except(&out, &data[..20], 10..12);
            let again = Ipv4Header::parse(&[&out[..], payload].concat()).map(|p| p.0);
            assert_eq!(again, Ok(h));
        }
    }
    if let Ok((h, payload)) = Ipv6Header::parse(data) {
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(&out[..], &data[..40]);
        assert_eq!(payload.len(), usize::from(h.payload_len));
    }
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    for (version, addrs) in [
        (IcmpVersion::V4, None),
        (IcmpVersion::V6, None),
        (IcmpVersion::V6, Some((v6, v6))),
    ] {
        if let Ok(icmp) = Icmp::parse(version, addrs, data) {
            let _ = icmp.quoted_echo(version);
            let _ = icmp.describe(version);
            if !matches!(icmp, Icmp::Other { .. }) {
                let mut out = Vec::new();
                icmp.write(version, addrs, &mut out);
                // Errors keep their quote but not the word after the checksum (unused,
                // or the MTU / pointer of a few codes): it is written as zeros.
                let skip = match icmp {
                    Icmp::Unreachable { .. } | Icmp::TimeExceeded { .. } => 2..8,
                    _ => 2..4,
                };
                same_except(&out, data, skip);
                assert_eq!(Icmp::parse(version, addrs, &out), Ok(icmp));
            }
        }
    }
    for addrs in [None, Some((v4, v4)), Some((v6, v6))] {
        if let Ok((tcp, payload)) = TcpHeader::parse(addrs, data) {
            let (src, dst) = addrs.unwrap_or((v4, v4));
            let mut out = Vec::new();
            tcp.write(src, dst, payload, &mut out)
                .expect("parsed options fit");
            assert_eq!(out.len(), data.len());
            assert_eq!(out[12] >> 4, data[12] >> 4);
            same_except(&out[..12], &data[..12], 0..0);
            same_except(&out[13..], &data[13..], 3..5);
            assert_eq!(TcpHeader::parse(Some((src, dst)), &out), Ok((tcp, payload)));
        }
    }

    // Fields from the bytes: build, then parse with checksums verified.
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let word = |i: usize| u16::from_be_bytes([byte(i), byte(i + 1)]);
    let payload = data.get(8..).unwrap_or(&[]);
    let echo = Icmp::EchoRequest {
        ident: word(0),
        seq: word(2),
        payload,
    };
    for (version, addrs) in [(IcmpVersion::V4, None), (IcmpVersion::V6, Some((v6, v6)))] {
        let mut out = Vec::new();
        echo.write(version, addrs, &mut out);
        assert_eq!(Icmp::parse(version, addrs, &out), Ok(echo));
    }
    let options_len = usize::from(byte(4) % 11) * 4;
    let options = payload
        .iter()
        .copied()
        .cycle()
        .take(options_len.min(payload.len() * 40))
        .collect::<Vec<_>>();
    let tcp = TcpHeader {
        src_port: word(0),
        dst_port: word(2),
        seq: u32::from(word(4)) << 16 | u32::from(word(6)),
        ack: u32::from(word(2)) << 16 | u32::from(word(0)),
        flags: byte(5),
        window: word(6),
        urgent: word(1),
        options,
    };
    for (src, dst) in [(v4, v4), (v6, v6)] {
        let mut out = Vec::new();
        tcp.write(src, dst, payload, &mut out)
            .expect("at most 40 bytes of options");
        let (back, rest) = TcpHeader::parse(Some((src, dst)), &out).expect("checksum verifies");
        assert_eq!((back, rest), (tcp.clone(), payload));
    }
}

/// HTTP's own parsing (what `httparse` does not do). The first byte picks a cut size
/// (1..=256); the rest is read as a chunked body: decoding it whole and in pieces must agree
/// (body, bytes consumed, completion, error), never produce more body than input, and stop
/// at the end of the message. The same bytes, chunk-encoded, must decode back to
/// themselves. Read as a response head, they must give a head no longer than the input and
/// the limits, whose prefix is never already complete, and whose body framing never
/// panics.
pub fn check_http_chunked(data: &[u8]) {
    use crate::proto::http::{MAX_HEAD, MAX_HEADERS, client::response::parse_head};

    let (cut, wire) = match data {
        [a, rest @ ..] => (*a as usize + 1, rest),
        _ => return,
    };
    let whole = chunked_all(wire, wire.len().max(1));
    let pieces = chunked_all(wire, cut);
    assert_eq!(
        whole, pieces,
        "chunked decoding depends on how the input is cut"
    );
    if let Ok((body, used, done)) = &whole {
        assert!(body.len() <= *used && *used <= wire.len());
        if !done {
            assert_eq!(*used, wire.len(), "an unfinished body leaves input unread");
        }
    }

    let mut encoded = Vec::new();
    for piece in wire.chunks(cut) {
        encoded.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        encoded.extend_from_slice(piece);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\n\r\nextra");
    assert_eq!(
        chunked_all(&encoded, 7),
        Ok((wire.to_vec(), encoded.len() - 5, true)),
        "encode then decode is not the identity"
    );

    if let Ok(Some((head, n))) = parse_head(wire) {
        assert!(n <= wire.len() && n <= MAX_HEAD);
        assert!(head.headers.len() <= MAX_HEADERS);
        assert_eq!(head.raw, &wire[..n]);
        assert!(!matches!(parse_head(&wire[..n - 1]), Ok(Some(_))));
        let _ = head.framing(false);
        assert_eq!(
            head.framing(true),
            Ok(crate::proto::http::client::response::BodyFraming::Empty)
        );
    }
}

type Chunked = Result<(Vec<u8>, usize, bool), crate::proto::http::HttpError>;

fn chunked_all(wire: &[u8], cut: usize) -> Chunked {
    let mut decoder = crate::proto::http::client::chunked::ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut used = 0;
    for piece in wire.chunks(cut) {
        used += decoder.decode(piece, &mut body)?;
        if decoder.is_done() {
            break;
        }
    }
    Ok((body, used, decoder.is_done()))
}

/// The file server's request path: the first byte picks a cut size (1..=256), the rest is
/// what a client sends, served from a small fixed tree (text files, a 20 kB file that goes
/// by `sendfile`, a symlink out of the root, a secret outside it). Fed whole and in pieces
/// (each followed by the drain calls a driver makes, then end of stream), the handler must
/// send the same bytes (`Date` aside); nothing from outside the root ever appears; and
/// when no request is a HEAD (whose responses carry no body), what it sends parses as a
/// sequence of complete responses whose bodies match their `Content-Length`. Each request
/// is also put to the pure decision function (see [`check_http_decisions`]).
pub fn check_http_serve(data: &[u8]) {
    use crate::proto::http::client::response::{BodyFraming, parse_head};

    let (cut, wire) = match data {
        [a, rest @ ..] => (*a as usize + 1, rest),
        _ => return,
    };
    check_http_decisions(wire);
    let whole = serve_all(wire, wire.len().max(1));
    let pieces = serve_all(wire, cut);
    assert_eq!(
        whole, pieces,
        "the responses depend on how the requests were cut"
    );
    assert!(
        memchr::memmem::find(&whole, b"TOPSECRET").is_none(),
        "a file outside the root was served"
    );
    if memchr::memmem::find(wire, b"HEAD").is_some() {
        return;
    }
    let mut rest = &whole[..];
    while !rest.is_empty() {
        let Ok(Some((head, n))) = parse_head(rest) else {
            panic!("not a response: {:?}", String::from_utf8_lossy(rest));
        };
        let len = match head.framing(false) {
            Ok(BodyFraming::Empty) => 0,
            Ok(BodyFraming::Length(len)) => usize::try_from(len).unwrap_or(usize::MAX),
            other => panic!("a response without a length: {other:?}"),
        };
        assert!(
            rest.len() - n >= len,
            "a body shorter than its Content-Length"
        );
        rest = &rest[n + len..];
    }
}

/// The requests at the start of `wire`, each put to the file server's decisions against
/// made-up facts (missing, a directory, something else, files of several sizes): the
/// same request and facts always give the same decision; a method other than GET/HEAD is
/// 501 and a target that is not a path 400; a directory without its slash redirects to a
/// location that is a path (never `//` or `/\`, which browsers read as a host) naming the
/// same directory, and with it asks for the index; a file's answer is 304 only for a
/// conditional request (and always when `If-None-Match` names its tag), 206 and 416 only
/// for a `Range`, and a 206 range lies inside the file. A request whose body framing is in
/// doubt (two `Content-Length`, any `Transfer-Encoding`) never gets a body length.
pub fn check_http_decisions(wire: &[u8]) {
    use crate::proto::http::server::conditional::Validators;
    use crate::proto::http::server::decide::{Decision, FileFacts, Found, decide, target_path};
    use crate::proto::http::server::head::reason;
    use crate::proto::http::server::request::{BodyLenError, parse_request};

    let segments = |path: &str| -> Vec<Vec<u8>> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_encoding::percent_decode(s.as_bytes()).collect())
            .collect()
    };
    let mut rest = wire;
    while let Ok(Some((req, n))) = parse_request(rest) {
        rest = &rest[n..];
        let count = |name: &str| req.headers.iter().filter(|(h, _)| h == name).count();
        if count("content-length") > 1 {
            assert_eq!(req.body_len(), Err(BodyLenError::Invalid), "two lengths");
        }
        if count("transfer-encoding") > 0 {
            assert!(
                req.body_len().is_err(),
                "a body length despite Transfer-Encoding"
            );
        }
        let path = match target_path(&req) {
            Ok(path) => path,
            Err(d) => {
                let want = if matches!(req.method.as_str(), "GET" | "HEAD") {
                    Decision::Error(400)
                } else {
                    Decision::NotImplemented
                };
                assert_eq!(d, want, "{} {}", req.method, req.target);
                continue;
            }
        };
        assert!(path.starts_with('/'));
        assert_eq!(
            decide(&req, path, &Found::Missing(404)),
            Decision::Error(404)
        );
        assert_eq!(decide(&req, path, &Found::Other), Decision::Error(403));
        match decide(&req, path, &Found::Dir) {
            Decision::Index => assert!(path.ends_with('/')),
            Decision::Redirect(loc) => {
                assert!(!path.ends_with('/'));
                assert!(
                    loc.starts_with('/') && !loc.starts_with("//") && !loc.starts_with("/\\"),
                    "{path:?} redirects to {loc:?}, which names a host"
                );
                assert!(!loc.contains(['\r', '\n']), "{loc:?}");
                let loc_path = loc.split('?').next().unwrap_or("");
                assert!(loc_path.ends_with('/'), "{loc:?}");
                assert_eq!(segments(loc_path), segments(path), "{path:?} -> {loc:?}");
            }
            other => panic!("a directory answered {other:?}"),
        }
        let name = path.rsplit('/').next().unwrap_or("");
        let etag = "\"5f-a\"";
        let conditional = count("if-none-match") + count("if-modified-since") > 0;
        let ranged = count("range") > 0;
        let names_tag = req.header("if-none-match").is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii() == etag.as_bytes())
        });
        for size in [0, 1, 13, 20_000, u64::MAX] {
            let facts = Found::File(FileFacts {
                name,
                size,
                validators: Validators {
                    etag,
                    last_modified: "Thu, 01 Jan 1970 00:01:35 GMT",
                    mtime: 0x5f,
                },
            });
            let d = decide(&req, path, &facts);
            assert_eq!(d, decide(&req, path, &facts), "decisions are pure");
            assert_ne!(reason(d.status()), "Unknown", "{d:?}");
            if names_tag {
                assert_eq!(d, Decision::NotModified);
            }
            match d {
                Decision::NotModified => assert!(conditional, "304 unasked"),
                Decision::Unsatisfiable { size: s } => assert!(ranged && s == size),
                Decision::File {
                    range: Some((a, b)),
                    ..
                } => assert!(ranged && a <= b && b < size, "{a}-{b} of {size}"),
                Decision::File { range: None, .. } => {}
                other => panic!("a file answered {other:?}"),
            }
        }
    }
}

/// Feeds `wire` to a fresh handler `cut` bytes at a time, draining as a driver does, and
/// returns everything it would send, with `Date` headers blanked.
fn serve_all(wire: &[u8], cut: usize) -> Vec<u8> {
    use crate::server::{Flow, Handler, Output, Service};
    use crate::socket::Peer;

    let mut handler = http_tree().handler(&Peer::Unix(None));
    let mut out = Output::new();
    let mut sent = Vec::new();
    let take = |out: &mut Output, sent: &mut Vec<u8>| {
        sent.extend_from_slice(&out.take_all().expect("read a served file"));
    };
    let mut open = true;
    for piece in wire.chunks(cut) {
        let mut flow = handler.on_data(piece, &mut out);
        while !out.is_empty() {
            take(&mut out, &mut sent);
            if flow == Flow::Continue {
                flow = handler.on_drained(&mut out);
            }
        }
        if flow == Flow::Close {
            open = false;
            break;
        }
    }
    if open {
        handler.on_eof(&mut out);
        while !out.is_empty() {
            take(&mut out, &mut sent);
            if handler.on_drained(&mut out) == Flow::Close {
                take(&mut out, &mut sent);
                break;
            }
        }
    }
    blank_dates(&sent)
}

/// `Date: <29 characters>` becomes `Date: -`: the only part of a response that depends on
/// when it was made.
fn blank_dates(sent: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sent.len());
    let mut rest = sent;
    while let Some(i) = memchr::memmem::find(rest, b"\r\nDate: ") {
        out.extend_from_slice(&rest[..i + 8]);
        out.push(b'-');
        rest = &rest[(i + 8 + 29).min(rest.len())..];
    }
    out.extend_from_slice(rest);
    out
}

/// The tree the file server fuzz check serves, made once per process.
fn http_tree() -> &'static crate::http::serve::FileServer {
    use crate::http::serve::{FileServer, Log};
    static TREE: std::sync::OnceLock<FileServer> = std::sync::OnceLock::new();
    TREE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("sockit-fuzz-http-{}", std::process::id()));
        let root = base.join("root");
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(root.join("sub")).expect("make the fuzz tree");
        std::fs::create_dir_all(base.join("outside")).expect("make the fuzz tree");
        let write = |path: std::path::PathBuf, data: &[u8]| {
            std::fs::write(path, data).expect("write the fuzz tree");
        };
        write(base.join("outside/secret"), b"TOPSECRET");
        write(root.join("a.txt"), b"hello\n");
        write(root.join("sub/index.html"), b"<p>index</p>");
        let big: Vec<u8> = (0..20_000u32)
            .map(|i| b"abcdefgh"[(i % 8) as usize])
            .collect();
        write(root.join("big.bin"), &big);
        let _ = std::os::unix::fs::symlink("../outside/secret", root.join("leak"));
        let _ = std::os::unix::fs::symlink("../outside", root.join("out"));
        // Compressible and above the threshold, so Accept-Encoding in the input is
        // negotiated and compressed (in one go: the tree holds nothing large enough to be
        // streamed, so every response keeps its Content-Length).
        let text: Vec<u8> = (0..3_000u32).map(|i| b"text\n"[(i % 5) as usize]).collect();
        write(root.join("t.txt"), &text);
        let options = crate::http::serve::Options {
            compress: true,
            ..Default::default()
        };
        FileServer::with_options(&root, Log::Quiet, options).expect("serve the fuzz tree")
    })
}

/// Chat lines: the input is a script of lines (split on `\n`) for a few clients of a
/// [`Scope::Local`](crate::proto::chat::Scope) chat core; each line's first byte picks the
/// client (low two bits) and what happens (`0xF_`: it disconnects, `0xE_`: it sends a line
/// too long; anything else: the rest is its line). A client that left comes back as a new
/// connection. After every step: each line the core sends is valid UTF-8, ends with one
/// `\n` and holds no other control or bidi character; nothing is addressed to a client
/// that is gone, and nothing goes to a backplane that is not there; the nicks held are
/// valid and distinct under the nick key (case mapping); and each room's member list holds
/// exactly the clients whose room it is.
pub fn check_chat(data: &[u8]) {
    use std::collections::{BTreeMap, HashSet};

    use crate::proto::chat::{
        Action as ChatAction, Chat, ClientId, Config, Leave, NickName, NodeId, RoomName,
    };

    const CLIENTS: usize = 4;
    let config = Config {
        history: 3,
        ..Config::default()
    };
    let mut chat = Chat::new(config, NodeId(1));
    let mut next_id = 0u64;
    let mut slots: [Option<ClientId>; CLIENTS] = [None; CLIENTS];
    let mut gone: HashSet<ClientId> = HashSet::new();
    let mut rooms_seen: HashSet<RoomName> = HashSet::new();
    let mut out = Vec::new();

    for line in data.split(|&b| b == b'\n') {
        let Some((&op, rest)) = line.split_first() else {
            continue;
        };
        let slot = usize::from(op & 3);
        let id = match slots[slot] {
            Some(id) => id,
            None => {
                let id = ClientId(next_id);
                next_id += 1;
                chat.connect(id, &mut out);
                slots[slot] = Some(id);
                id
            }
        };
        match op & 0xf0 {
            0xf0 => {
                chat.disconnect(id, Leave::Closed, &mut out);
                slots[slot] = None;
            }
            0xe0 => chat.line_too_long(id, &mut out),
            _ => chat.line(id, rest, &mut out),
        }
        let mut closed = Vec::new();
        for action in out.drain(..) {
            match action {
                ChatAction::Send(to, line) => {
                    assert!(!gone.contains(&to), "a line for {to:?}, who left: {line:?}");
                    assert!(to.0 < next_id, "a line for {to:?}, who never came");
                    check_chat_line(&line);
                }
                ChatAction::Room { room, line, .. } => {
                    check_chat_line(&line);
                    for member in chat.members(&room) {
                        assert!(!gone.contains(member), "{room} holds {member:?}, who left");
                    }
                    rooms_seen.insert(room);
                }
                ChatAction::Close(who) => closed.push(who),
                other => panic!("a local chat asked for a backplane: {other:?}"),
            }
        }
        for who in closed {
            gone.insert(who);
            if let Some(slot) = slots.iter_mut().find(|s| **s == Some(who)) {
                *slot = None;
            }
        }
        if op & 0xf0 == 0xf0 {
            gone.insert(id);
        }

        // Nicks: valid, and distinct under the key.
        let mut keys = HashSet::new();
        for (who, nick) in chat.nicks() {
            assert!(!gone.contains(&who), "{who:?} left but holds {nick}");
            let again = NickName::parse(nick.as_str());
            assert_eq!(again.as_ref(), Ok(&nick), "{nick:?} is held but not valid");
            assert!(
                keys.insert(nick.key()),
                "two clients hold {nick} (key {})",
                nick.key()
            );
        }
        // Rooms: each member list is exactly the clients whose room it is.
        let mut by_room: BTreeMap<RoomName, Vec<ClientId>> = BTreeMap::new();
        for id in slots.iter().flatten() {
            if let Some(room) = chat.room_of(*id) {
                by_room.entry(room.clone()).or_default().push(*id);
            }
        }
        rooms_seen.extend(chat.room_names());
        rooms_seen.extend(by_room.keys().cloned());
        for room in &rooms_seen {
            let mut members = chat.members(room).to_vec();
            members.sort_unstable();
            let mut want = by_room.get(room).cloned().unwrap_or_default();
            want.sort_unstable();
            assert_eq!(members, want, "the members of {room}");
        }
        for id in &gone {
            assert_eq!(chat.room_of(*id), None, "{id:?} left but is in a room");
        }
    }
}

/// One line a chat core sends a client: what its terminal will show.
fn check_chat_line(line: &[u8]) {
    let text = std::str::from_utf8(line).expect("a chat line is UTF-8");
    let body = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("a chat line without its newline: {text:?}"));
    assert!(
        !body.chars().any(crate::text::is_unsafe),
        "a control or bidi character reaches a client: {body:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_pass_on_hand_made_inputs() {
        check_frame_decoder(&[10, 3, 0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 0, 0, 0, 99]);
        check_frame_decoder(&[0, 0, 0xff, 0xff, 0xff, 0xff]);
        check_frame_decoder(&[1, 0, 0, 0, 0]);
        check_exec_message(b"R{\"argv\":[\"echo\",\"hi\"]}");
        check_exec_message(b"X{\"signal\":9}");
        // Empty A (the right answer), a command, stdin, its end, then one too many.
        let mut stream = Vec::new();
        for (kind, body) in [
            (b'A', &b""[..]),
            (b'R', br#"{"argv":["echo","x"]}"#),
            (b'I', b"data"),
            (b'I', b""),
            (b'I', b"late"),
        ] {
            stream.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
            stream.push(kind);
            stream.extend_from_slice(body);
        }
        check_exec_message(&stream);
        check_packets(&[
            0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 6, 0x7c, 0xe6, 127, 0, 0, 1, 127, 0, 0, 1,
        ]);
        check_packets(&[8, 0, 0xf7, 0xfe, 0, 1, 0, 0]);
        check_packets(&[
            0x9c, 0x40, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, 0x50, 2, 4, 0, 0, 0, 0, 0,
        ]);
        check_http_chunked(b"\x02a;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\nrest");
        check_http_chunked(b"\x00HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        check_http_chunked(b"\x05ffffffffffffffff\r\nxy");
        check_http_serve(
            b"\x03GET /a.txt HTTP/1.1\r\n\r\nGET /big.bin HTTP/1.1\r\nRange: bytes=5-\r\n\r\nGET /leak HTTP/1.1\r\n\r\nGET /%2e%2e/outside/secret HTTP/1.1\r\n\r\nGET /sub HTTP/1.1\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        );
        check_http_serve(b"\x00HEAD /big.bin HTTP/1.1\r\n\r\nGET /a.txt HTTP/1.1\r\n");
        check_http_serve(b"\x01\x00garbage\r\n\r\n");
        check_http_serve(
            b"\x04GET /t.txt HTTP/1.1\r\nAccept-Encoding: br\r\n\r\nHEAD /t.txt HTTP/1.1\r\nAccept-Encoding: gzip, zstd\r\n\r\nGET /t.txt HTTP/1.0\r\nAccept-Encoding: zstd\r\nRange: bytes=1-2\r\n\r\n",
        );
        check_http_serve(
            b"\x07GET //sub?x HTTP/1.1\r\n\r\nGET /a.txt HTTP/1.1\r\nIf-None-Match: W/\"x\", \"5f-a\"\r\nRange: bytes=-3\r\n\r\nGET /big.bin HTTP/1.1\r\nRange: bytes=0-\r\nIf-Range: \"no\"\r\n\r\nPOST / HTTP/1.1\r\n\r\n",
        );
        check_http_serve(
            b"\x02GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        );
    }
}
