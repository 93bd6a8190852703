//! The core driven by hand: messages on the wire, the challenge–response, permits, and
//! whole sessions, without sockets or processes.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::frame::LengthCodec;

fn roundtrip(msg: &Message) -> Message {
    let mut wire = BytesMut::new();
    msg.encode(&mut wire).unwrap();
    let payload = LengthCodec::default()
        .decode_frame(&mut wire)
        .unwrap()
        .unwrap();
    assert!(wire.is_empty(), "one message is one frame");
    Message::decode(payload.freeze()).unwrap()
}

#[test]
fn every_kind_round_trips() {
    let msgs = [
        Message::Challenge([7; 32]),
        Message::Auth([9; 32]),
        Message::Run {
            argv: vec!["sh".into(), "-c".into(), "echo \"hi\" 'x' \\ é".into()],
        },
        Message::Stdin(Bytes::from_static(b"in\0put")),
        Message::Stdin(Bytes::new()),
        Message::Stdout(Bytes::from_static(b"\xff\x00out")),
        Message::Stderr(Bytes::from_static(b"err")),
        Message::Exit(ExitStatus::Code(3)),
        Message::Exit(ExitStatus::Signal(9)),
        Message::Refuse("not allowed: ✗".into()),
    ];
    for msg in &msgs {
        assert_eq!(&roundtrip(msg), msg);
    }
}

#[test]
fn wire_bytes_match_the_spec() {
    let mut wire = BytesMut::new();
    Message::Run {
        argv: vec!["echo".into(), "hi".into()],
    }
    .encode(&mut wire)
    .unwrap();
    let body = br#"{"argv":["echo","hi"]}"#;
    assert_eq!(&wire[..4], &(1 + body.len() as u32).to_be_bytes());
    assert_eq!(wire[4], b'R');
    assert_eq!(&wire[5..], body);

    let exit = |s: &str| Message::decode(Bytes::from(format!("X{s}")));
    assert_eq!(
        exit(r#"{"code": 0}"#),
        Ok(Message::Exit(ExitStatus::Code(0)))
    );
    assert_eq!(
        exit(r#" {"signal":15} "#),
        Ok(Message::Exit(ExitStatus::Signal(15)))
    );
}

#[test]
fn malformed_payloads_are_errors() {
    let bad = |b: &'static [u8]| Message::decode(Bytes::from_static(b)).unwrap_err();
    assert_eq!(bad(b""), ProtocolError::Empty);
    assert_eq!(bad(b"Z"), ProtocolError::UnknownKind(b'Z'));
    assert!(matches!(
        bad(b"Ashort"),
        ProtocolError::BadLength { len: 5, .. }
    ));
    assert!(matches!(bad(&[b'C'; 34]), ProtocolError::BadLength { .. }));
    for body in [
        &b"R{"[..],
        b"R[]",
        b"R{}",
        b"R{\"argv\": []}",
        b"R{\"argv\": [\"\"]}",
        b"R{\"argv\": [1]}",
        b"R{\"argv\": \"ls\"}",
        b"R{\"argv\": [\"a\\u0000b\"]}",
        b"X{}",
        b"X{\"code\": 1, \"signal\": 2}",
        b"X{\"code\": 1e99}",
        b"X{\"code\": 4294967296}",
        b"X{\"code\": -1}",
        b"X{\"code\": 256}",
        b"X{\"signal\": -1}",
        b"X{\"signal\": 0}",
        b"X{\"signal\": 65}",
        b"X\xff",
    ] {
        assert!(
            matches!(bad(body), ProtocolError::BadBody { .. }),
            "{body:?} gave {:?}",
            bad(body)
        );
    }
}

#[test]
fn output_prefix_is_a_frame_header_and_kind() {
    let p = prefix(Kind::Stdout, 10).unwrap();
    assert_eq!(p, [0, 0, 0, 11, b'O']);
    assert!(prefix(Kind::Stdout, 16 << 20).is_err());
    assert!(prefix(Kind::Stdout, usize::MAX).is_err());
}

#[test]
fn responses_are_hmac_sha256_and_only_the_exact_one_verifies() {
    // The response must equal HMAC-SHA256 as any other implementation computes it.
    let token = Token::new(b"Jefe").unwrap();
    let challenge = [0x61; 32]; // 32 × 'a'
    let mac = token.respond(&challenge);
    // python3 -c "import hmac,hashlib;print(hmac.new(b'Jefe',b'a'*32,hashlib.sha256).hexdigest())"
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "364f5c3a7b63017de4919a0b5a5aef5ada18770895ce2aec3bfdfecc8b06bf7b"
    );
    assert!(token.verify(&challenge, &mac));
    let mut wrong = mac;
    wrong[31] ^= 1;
    assert!(!token.verify(&challenge, &wrong));
    assert!(!token.verify(&challenge, &mac[..31]));
    assert!(!Token::new(b"Jeff").unwrap().verify(&challenge, &mac));
    assert!(Token::new(b"").is_none());
}

fn permits() -> Permits {
    let exists = |p: &Path| {
        [
            "/usr/local/bin/tool",
            "/usr/bin/echo",
            "/bin/echo",
            "/usr/bin/cat",
            "/opt/x/run",
        ]
        .iter()
        .any(|e| Path::new(e) == p)
    };
    Permits::resolve_with(
        &["echo".into(), "cat".into(), "/opt/x/run".into()],
        Some(OsStr::new(".:relative/bin::/usr/bin:/bin")),
        exists,
    )
    .unwrap()
}

#[test]
fn permits_resolve_names_on_path_and_absolute_paths() {
    let p = permits();
    assert_eq!(p.lookup("echo"), Some(Path::new("/usr/bin/echo")));
    assert_eq!(p.lookup("/usr/bin/echo"), Some(Path::new("/usr/bin/echo")));
    assert_eq!(p.lookup("/usr//bin/echo"), Some(Path::new("/usr/bin/echo")));
    assert_eq!(p.lookup("/opt/x/run"), Some(Path::new("/opt/x/run")));
    // Named the way it was not permitted, or not permitted at all.
    assert_eq!(p.lookup("run"), None);
    assert_eq!(p.lookup("/bin/echo"), None);
    assert_eq!(p.lookup("/usr/bin/../bin/echo"), None);
    assert_eq!(p.lookup("./echo"), None);
    assert_eq!(p.lookup("sh"), None);
    assert_eq!(p.lookup("echo "), None);
}

#[test]
fn permits_that_cannot_be_honoured_are_errors() {
    let none = |_: &Path| false;
    let path = Some(OsStr::new("/usr/bin"));
    let err = |spec: &str| Permits::resolve_with(&[spec.into()], path, none).unwrap_err();
    assert_eq!(err("nope"), PermitError::NotFound("nope".into()));
    assert_eq!(
        err("/no/such"),
        PermitError::NotExecutable("/no/such".into())
    );
    assert_eq!(err("./x"), PermitError::Relative("./x".into()));
    assert_eq!(err("bin/x"), PermitError::Relative("bin/x".into()));
    assert_eq!(err(""), PermitError::Relative("".into()));
    // `.` on PATH is not searched, even where the file exists.
    let dot = |p: &Path| p == Path::new("./echo");
    assert!(Permits::resolve_with(&["echo".into()], Some(OsStr::new(".")), dot).is_err());
}

fn session(max_output: u64) -> Session {
    let policy = Policy {
        token: Token::new(b"secret").unwrap(),
        permits: permits(),
        max_output,
    };
    Session::new(Arc::new(policy), [1; 32])
}

fn auth(s: &Session) -> Message {
    let Message::Challenge(c) = s.greeting() else {
        panic!("greeting is a challenge")
    };
    Message::Auth(Token::new(b"secret").unwrap().respond(&c))
}

fn run(argv: &[&str]) -> Message {
    Message::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn only_the_auth_frame_fits_before_authentication() {
    let mut s = session(100);
    assert_eq!(s.max_frame(), AUTH_FRAME_LEN);
    assert!(!s.authenticated());
    let mut frame = BytesMut::new();
    auth(&s).encode(&mut frame).unwrap();
    assert_eq!(frame.len(), crate::frame::HEADER_LEN + AUTH_FRAME_LEN);
    s.on_message(auth(&s)).unwrap();
    assert!(s.authenticated());
    assert_eq!(s.max_frame(), crate::frame::DEFAULT_MAX_FRAME);
}

#[test]
fn a_session_runs_through_every_state() {
    let mut s = session(100);
    assert_eq!(s.state(), State::AwaitAuth);
    assert_eq!(s.on_message(auth(&s)), Ok(Action::None));
    assert_eq!(s.state(), State::AwaitRun);
    assert_eq!(
        s.on_message(run(&["cat", "-"])),
        Ok(Action::Spawn {
            program: "/usr/bin/cat".into(),
            argv: vec!["cat".into(), "-".into()]
        })
    );
    let data = Bytes::from_static(b"abc");
    assert_eq!(
        s.on_message(Message::Stdin(data.clone())),
        Ok(Action::Stdin(data))
    );
    assert_eq!(
        s.on_message(Message::Stdin(Bytes::new())),
        Ok(Action::CloseStdin)
    );
    assert_eq!(s.state(), State::Running { stdin_open: false });
    assert_eq!(s.on_output(60), Budget::Within);
    assert_eq!(
        s.on_exit(ExitStatus::Code(0)),
        Message::Exit(ExitStatus::Code(0))
    );
    assert_eq!(s.state(), State::Done);
}

#[test]
fn wrong_tokens_and_unlisted_programs_are_refused() {
    let mut s = session(100);
    let err = s.on_message(Message::Auth([0; 32])).unwrap_err();
    assert!(err.0.contains("wrong token"), "{err}");
    assert_eq!(s.state(), State::Done);
    // Done means done: even the right answer is refused now.
    assert!(s.on_message(auth(&s)).is_err());

    let mut s = session(100);
    s.on_message(auth(&s)).unwrap();
    let err = s.on_message(run(&["sh", "-c", "id"])).unwrap_err();
    assert_eq!(err.0, "program not allowed: sh");
    assert_eq!(s.state(), State::Done);
}

#[test]
fn out_of_order_messages_are_refused() {
    let stdin = || Message::Stdin(Bytes::from_static(b"x"));
    // Before auth: a command, stdin, or any server message.
    for msg in [
        run(&["echo"]),
        stdin(),
        Message::Challenge([0; 32]),
        Message::Refuse("x".into()),
    ] {
        let mut s = session(100);
        let err = s.on_message(msg).unwrap_err();
        assert!(err.0.contains("before authentication"), "{err}");
    }
    // After auth: a second auth, or stdin before the command.
    let mut s = session(100);
    s.on_message(auth(&s)).unwrap();
    assert!(s.on_message(stdin()).is_err());
    let mut s = session(100);
    s.on_message(auth(&s)).unwrap();
    assert!(s.on_message(auth(&s)).is_err());
    // While running: a second command, output kinds, stdin after its end.
    let mut s = session(100);
    s.on_message(auth(&s)).unwrap();
    s.on_message(run(&["echo"])).unwrap();
    assert!(s.on_message(run(&["echo"])).is_err());
    let mut s = session(100);
    s.on_message(auth(&s)).unwrap();
    s.on_message(run(&["echo"])).unwrap();
    s.on_message(Message::Stdin(Bytes::new())).unwrap();
    let err = s.on_message(stdin()).unwrap_err();
    assert!(err.0.contains("after the end of stdin"), "{err}");
}

#[test]
fn output_over_the_limit_keeps_what_fits() {
    let mut s = session(100);
    assert_eq!(s.on_output(60), Budget::Within);
    assert_eq!(s.on_output(40), Budget::Within);
    assert_eq!(s.on_output(1), Budget::Exceeded { keep: 0 });
    let mut s = session(100);
    assert_eq!(s.on_output(70), Budget::Within);
    assert_eq!(s.on_output(70), Budget::Exceeded { keep: 30 });
    assert_eq!(s.state(), State::Done);
    assert!(s.over_limit().0.contains("100 bytes"));
}

#[test]
fn shell_codes_follow_the_128_plus_n_rule() {
    assert_eq!(ExitStatus::Code(3).shell_code(), 3);
    assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
}
