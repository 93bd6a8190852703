//! `tls://` addresses: the commands that cannot speak TLS yet refuse them (never plain
//! text in their place).

use crate::util::sockit;

#[test]
fn tls_addresses_are_refused_by_commands_that_cannot_speak_tls_yet() {
    let dir = crate::util::TempDir::new("tls-refused");
    let file = dir.path("f");
    std::fs::write(&file, b"x").unwrap();
    let file = file.to_str().unwrap();
    let d = dir.0.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["echo", "tls://127.0.0.1:0"], "echo"),
        (&["http", "serve", d, "tls://127.0.0.1:0"], "http serve"),
        (&["chat", "serve", "tls://127.0.0.1:0"], "chat serve"),
        (
            &["chat", "join", "--nick", "a", "tls://127.0.0.1:1"],
            "chat join",
        ),
        (&["recv", "tls://127.0.0.1:0", "--dir", d], "recv"),
        (&["send", "tls://127.0.0.1:1", file], "send"),
        (&["bench", "echo", "tls://127.0.0.1:1"], "bench echo"),
        (&["bench", "conns", "tls://127.0.0.1:1"], "bench conns"),
        (
            &["exec", "serve", "--permit", "cat", "tls://127.0.0.1:0"],
            "exec serve",
        ),
    ];
    for (args, name) in cases {
        let out = sockit().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim_end(),
            format!("sockit: tls:// is not supported by `sockit {name}` yet"),
            "{args:?}"
        );
    }
}
