//! `sockit connect --frame` / `sockit listen --frame` and `--hex`, against Python peers
//! that speak length-prefixed frames (docs/frame.md) with `struct.pack('>I', len)`, and against each other.

use std::time::Duration;

use crate::util::{Proc, WAIT, assert_exit_0, assert_fails_with, connect};

/// Helpers every Python peer starts with. Every blocking call has a timeout.
const PRELUDE: &str = r#"
import socket, struct, sys, time
def server():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(('127.0.0.1', 0))
    s.listen(1)
    s.settimeout(20)
    print(s.getsockname()[1], flush=True)
    c, _ = s.accept()
    c.settimeout(20)
    # Each send its own segment, so the splits below reach sockit as written.
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c
def frame(b):
    return struct.pack('>I', len(b)) + b
def read_all(c):
    got = b''
    while True:
        b = c.recv(65536)
        if not b:
            return got
        got += b
"#;

fn python(body: &str) -> Proc {
    let indent = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let body: String = body
        .lines()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    Proc::python(&format!("{PRELUDE}\n{body}"), &[])
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

#[test]
fn stdin_lines_go_out_as_frames_byte_exact() {
    // The peer reports, in hex, exactly the bytes it received.
    let mut py = python(
        r#"
        c = server()
        print(read_all(c).hex(), flush=True)
        "#,
    );
    let port = py.first_line();
    let mut sockit = connect(&port, &["--frame"]);
    sockit.feed_and_close("hello\r\n\nwörld\n\u{0}bin\u{7f}\nlast".into());
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    let got = String::from_utf8(py.stdout()).unwrap();
    let want = [
        frame(b"hello"),
        frame(b""),
        frame("wörld".as_bytes()),
        frame(b"\0bin\x7f"),
        frame(b"last"),
    ]
    .concat();
    let want: String = want.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got.lines().nth(1), Some(want.as_str()));
}

#[test]
fn frames_print_as_lines_however_tcp_cuts_them() {
    // Two frames (and an empty one) in one segment; then one frame in four writes, cut
    // inside its header and inside its payload: the tutorials' sticky packets.
    let mut py = python(
        r#"
        c = server()
        c.sendall(frame(b'one') + frame(b'') + frame(b'two'))
        time.sleep(0.2)
        f = frame(b'split across writes')
        for piece in (f[:2], f[2:5], f[5:12], f[12:]):
            c.sendall(piece)
            time.sleep(0.2)
        c.sendall(frame(b'last'))
        c.close()
        "#,
    );
    let port = py.first_line();
    let mut sockit = connect(&port, &["--frame", "--recv-only"]);
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    assert_eq!(
        String::from_utf8(sockit.stdout()).unwrap(),
        "one\n\ntwo\nsplit across writes\nlast\n"
    );
}

#[test]
fn an_over_long_length_header_ends_the_connection_with_one_line() {
    // 4 GiB announced: refused as soon as the header is in, while the peer stays open.
    let mut py = python(
        r#"
        c = server()
        c.sendall(frame(b'ok') + b'\xff\xff\xff\xff')
        c.settimeout(10)
        read_all(c)
        "#,
    );
    let port = py.first_line();
    let mut sockit = connect(&port, &["--frame"]);
    assert_fails_with(&mut sockit, "frame of 4294967295 bytes exceeds the limit");
    assert_eq!(
        sockit.stdout(),
        b"ok\n",
        "frames before the bad one are printed"
    );
    assert_exit_0(&mut py);
}

#[test]
fn max_frame_sets_the_limit() {
    let mut py = python(
        r#"
        c = server()
        c.sendall(frame(b'1234') + frame(b'12345'))
        c.settimeout(10)
        read_all(c)
        "#,
    );
    let port = py.first_line();
    let mut sockit = connect(&port, &["--frame", "--max-frame", "4"]);
    assert_fails_with(&mut sockit, "frame of 5 bytes exceeds the limit of 4 bytes");
    assert_eq!(sockit.stdout(), b"1234\n");
    assert_exit_0(&mut py);
}

#[test]
fn a_frame_cut_short_by_the_peer_closing_is_reported() {
    let mut py = python(
        r#"
        c = server()
        c.sendall(frame(b'whole') + struct.pack('>I', 10) + b'abc')
        c.close()
        "#,
    );
    let port = py.first_line();
    let mut sockit = connect(&port, &["--frame", "--recv-only"]);
    assert_fails_with(&mut sockit, "middle of a frame (7 of 14 bytes)");
    assert_eq!(sockit.stdout(), b"whole\n");
    assert_exit_0(&mut py);
}

#[test]
fn hex_dumps_each_frame_like_xxd() {
    let mut py = python(
        r#"
        c = server()
        c.sendall(frame(b'hello, frames!\n\x00\x01\xff') + frame(b'') + frame(b'A'))
        c.close()
        "#,
    );
    let port = py.first_line();
    let mut sockit = connect(&port, &["--frame", "--hex", "--recv-only"]);
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    let want = "\
00000000: 6865 6c6c 6f2c 2066 7261 6d65 7321 0a00  hello, frames!..
00000010: 01ff                                     ..
00000000:
00000000: 41                                       A
";
    assert_eq!(String::from_utf8(sockit.stdout()).unwrap(), want);
}

#[test]
fn hex_dumps_a_raw_stream_with_running_offsets() {
    let mut py = python(
        r#"
        c = server()
        c.sendall(b'0123456789abcdefXY')
        time.sleep(0.3)
        c.sendall(b'\x00tail')
        c.close()
        "#,
    );
    let port = py.first_line();
    let mut sockit = connect(&port, &["--hex", "--recv-only"]);
    assert_exit_0(&mut sockit);
    assert_exit_0(&mut py);
    let want = "\
00000000: 3031 3233 3435 3637 3839 6162 6364 6566  0123456789abcdef
00000010: 5859                                     XY
00000012: 0074 6169 6c                             .tail
";
    assert_eq!(String::from_utf8(sockit.stdout()).unwrap(), want);
}

#[test]
fn listen_frame_and_connect_frame_talk_to_each_other() {
    let mut listen = Proc::sockit(&["listen", "--frame", "127.0.0.1:0"]);
    let endpoint = listen.listening_on();
    let mut connect = Proc::sockit(&["connect", "--frame", &endpoint]);
    connect.feed_and_close(b"from connect\r\n\nsecond line\n".to_vec());
    let got = listen.wait_stdout(|b| b.ends_with(b"second line\n"));
    assert_eq!(got, b"from connect\n\nsecond line\n");
    listen.feed_and_close(b"from listen\nno newline".to_vec());
    assert_exit_0(&mut connect);
    assert_exit_0(&mut listen);
    assert_eq!(connect.stdout(), b"from listen\nno newline\n");
}

#[test]
fn listen_k_frame_drops_a_bad_client_and_serves_the_others() {
    let mut listen = Proc::sockit(&["listen", "-k", "--frame", "127.0.0.1:0"]);
    let endpoint = listen.listening_on();
    let port = endpoint.rsplit_once(':').unwrap().1.to_owned();
    let mut good = Proc::sockit(&["connect", "--frame", &endpoint]);
    good.feed(b"before\n".to_vec());
    listen.wait_stdout(|b| b.ends_with(b"before\n"));
    // A client that announces 4 GiB is dropped with a warning.
    let mut bad = Proc::python(
        r#"
import socket, sys
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)
c.sendall(b'\xff\xff\xff\xff')
print('closed' if c.recv(1) == b'' else 'open', flush=True)
"#,
        &[&port],
    );
    assert_eq!(bad.first_line(), "closed");
    assert_exit_0(&mut bad);
    good.feed(b"after\n".to_vec());
    listen.wait_stdout(|b| b.ends_with(b"before\nafter\n"));
    listen.feed(b"to all\n".to_vec());
    good.wait_stdout(|b| b == b"to all\n");
    good.close_stdin();
    crate::util::signal(&listen.child, 15);
    assert_exit_0(&mut listen);
    assert!(
        listen.stderr().contains("exceeds the limit"),
        "{:?}",
        listen.stderr()
    );
    assert_exit_0(&mut good);
}

#[test]
fn frame_on_a_datagram_address_is_a_usage_error() {
    for args in [
        &["connect", "--frame", "udp://127.0.0.1:9"][..],
        &["listen", "--frame", "udp://127.0.0.1:0"][..],
        &["connect", "--max-frame", "4", "127.0.0.1:9"][..],
        &["connect", "--frame", "--crlf", "127.0.0.1:9"][..],
    ] {
        let mut p = Proc::sockit(args);
        p.close_stdin();
        let status = p.wait_exit(WAIT);
        assert_eq!(status.code(), Some(2), "{args:?}: {:?}", p.stderr());
        assert_eq!(p.stderr().trim_end().lines().count(), 1, "{:?}", p.stderr());
    }
}

#[test]
fn a_stdin_line_over_the_limit_is_an_error() {
    let mut py = python(
        r#"
        c = server()
        print(read_all(c).hex(), flush=True)
        "#,
    );
    let port = py.first_line();
    let mut sockit = connect(&port, &["--frame", "--max-frame", "4"]);
    sockit.feed_and_close(b"abcd\nabcde\n".to_vec());
    assert_fails_with(
        &mut sockit,
        "stdin line: frame of 5 bytes exceeds the limit of 4",
    );
    let status = py.wait_exit(Duration::from_secs(20));
    assert!(status.success());
}

#[test]
fn hex_dumps_each_datagram_on_its_own() {
    let mut py = Proc::python(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0))
s.settimeout(20)
print(s.getsockname()[1], flush=True)
data, peer = s.recvfrom(65536)
s.sendto(b'hi\x00' + data, peer)
s.sendto(b'', peer)
"#,
        &[],
    );
    let port = py.first_line();
    let mut sockit = Proc::sockit(&[
        "connect",
        "--hex",
        "--reply-wait",
        "500ms",
        &format!("udp://127.0.0.1:{port}"),
    ]);
    sockit.feed_and_close(b"x\n".to_vec());
    assert_exit_0(&mut py);
    assert_exit_0(&mut sockit);
    let want = "\
00000000: 6869 0078                                hi.x
00000000:
";
    assert_eq!(String::from_utf8(sockit.stdout()).unwrap(), want);
}
