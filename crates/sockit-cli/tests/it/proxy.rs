//! Proxies. `--proxy`: `connect` and `http get` through proxies nobody here wrote:
//! microsocks (SOCKS5, with and without a user), tinyproxy and ncat's HTTP proxy (HTTP
//! CONNECT, with and without a user); TLS end to end through a tunnel; every refusal named
//! in one line. `sockit proxy`: curl through it by SOCKS5 and CONNECT, its destination
//! rules, its passwords, and clients that say nothing or garbage.

use std::process::Command;

use crate::util::{
    Proc, Server, TempDir, assert_exit_0, assert_fails_with, contains, free_port, spawn_listening,
};

/// microsocks on a free port, with a user and password if given.
fn microsocks(auth: Option<(&str, &str)>) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new("microsocks");
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((user, password)) = auth {
        cmd.args(["-u", user, "-P", password]);
    }
    (spawn_listening(cmd, port), port)
}

/// tinyproxy in the foreground on a free port, every CONNECT port allowed (its default
/// configuration allows 443 and 563 only; with no ConnectPort line, all are).
fn tinyproxy(dir: &TempDir) -> (Proc, u16) {
    let port = free_port();
    let conf = dir.path("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!("Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\n"),
    )
    .unwrap();
    let mut cmd = Command::new("tinyproxy");
    cmd.arg("-d").arg("-c").arg(&conf);
    (spawn_listening(cmd, port), port)
}

/// ncat as an HTTP proxy (`--proxy-type http`), asking for `user:password` if given.
fn ncat_proxy(auth: Option<&str>) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new("ncat");
    cmd.args([
        "-l",
        "-k",
        "127.0.0.1",
        &port.to_string(),
        "--proxy-type",
        "http",
    ]);
    if let Some(a) = auth {
        cmd.args(["--proxy-auth", a]);
    }
    (spawn_listening(cmd, port), port)
}

/// `sockit connect --proxy PROXY ADDR [FLAGS]`: a line there and its echo back. Not a
/// half-close before the echo: microsocks closes both ways at the first EOF.
fn round_trip(proxy: &str, addr: &str, flags: &[&str]) {
    let mut args = vec!["connect", "--proxy", proxy, addr];
    args.extend_from_slice(flags);
    let mut c = Proc::sockit(&args);
    let line = format!("through {proxy}\n");
    c.write(line.as_bytes());
    c.wait_stdout_contains(&line);
    c.close_stdin();
    assert_exit_0(&mut c);
}

/// `sockit connect --proxy PROXY ADDR` failing with one line containing `needle`.
fn refused(proxy: &str, addr: &str, needle: &str) {
    let mut c = Proc::sockit(&["connect", "--proxy", proxy, addr]);
    c.close_stdin();
    assert_fails_with(&mut c, needle);
}

#[test]
fn connect_through_microsocks_with_and_without_a_user() {
    let echo = Server::start(&["echo", "127.0.0.1:0"]);
    let target = echo.addr();
    let named = format!("localhost:{}", echo.port());
    let (_open, open) = microsocks(None);
    let (_locked, locked) = microsocks(Some(("bob", "s3cret")));

    round_trip(&format!("socks5://127.0.0.1:{open}"), &target, &[]);
    // socks5h: the proxy resolves the name; socks5: sockit does.
    round_trip(&format!("socks5h://127.0.0.1:{open}"), &named, &[]);
    round_trip(&format!("socks5://127.0.0.1:{open}"), &named, &[]);
    round_trip(
        &format!("socks5://bob:s3cret@127.0.0.1:{locked}"),
        &target,
        &[],
    );

    refused(
        &format!("socks5://bob:wrong@127.0.0.1:{locked}"),
        &target,
        "refused the user name or password",
    );
    refused(
        &format!("socks5://127.0.0.1:{locked}"),
        &target,
        "requires a user and password",
    );
    let closed = format!("127.0.0.1:{}", free_port());
    refused(&format!("socks5://127.0.0.1:{open}"), &closed, "refused");
    refused(
        &format!("socks5://127.0.0.1:{}", free_port()),
        &target,
        "connect to proxy",
    );
    echo.stop();
}

#[test]
fn connect_through_http_proxies_and_tls_end_to_end() {
    let dir = TempDir::new("proxy-http");
    let echo = Server::start(&["echo", "127.0.0.1:0"]);
    let target = echo.addr();
    let (_tiny, tiny) = tinyproxy(&dir);
    let (_ncat, ncat) = ncat_proxy(Some("bob:s3cret"));

    round_trip(&format!("http://127.0.0.1:{tiny}"), &target, &[]);
    round_trip(&format!("http://bob:s3cret@127.0.0.1:{ncat}"), &target, &[]);

    // TLS runs end to end: the proxy sees ciphertext, the pin is checked through it.
    let tls = Server::start(&["echo", "tls://127.0.0.1:0"]);
    let pin = tls.tls_pin();
    round_trip(
        &format!("http://127.0.0.1:{tiny}"),
        &tls.endpoint,
        &["--pin", &pin],
    );
    let (_socks, socks) = microsocks(None);
    round_trip(
        &format!("socks5h://127.0.0.1:{socks}"),
        &tls.endpoint,
        &["--pin", &pin],
    );

    refused(
        &format!("http://bob:wrong@127.0.0.1:{ncat}"),
        &target,
        "refused the user name or password",
    );
    refused(
        &format!("http://127.0.0.1:{ncat}"),
        &target,
        "requires a user and password",
    );
    // tinyproxy cannot reach a closed port: its status line, named.
    let closed = format!("127.0.0.1:{}", free_port());
    refused(
        &format!("http://127.0.0.1:{tiny}"),
        &closed,
        "the proxy answered 5",
    );
    echo.stop();
    tls.stop();
}

#[test]
fn http_get_through_socks5_and_http_proxies() {
    let dir = TempDir::new("proxy-get");
    std::fs::write(dir.path("hello.txt"), b"hello through a proxy\n").unwrap();
    let site = Server::start(&[
        "http",
        "serve",
        dir.path("").to_str().unwrap(),
        "127.0.0.1:0",
    ]);
    let url = format!("http://127.0.0.1:{}/hello.txt", site.port());
    let (_socks, socks) = microsocks(None);
    let (_tiny, tiny) = tinyproxy(&dir);
    for proxy in [
        format!("socks5://127.0.0.1:{socks}"),
        format!("socks5h://127.0.0.1:{socks}"),
        format!("http://127.0.0.1:{tiny}"),
    ] {
        let mut get = Proc::sockit(&["http", "get", "--proxy", &proxy, &url]);
        assert_exit_0(&mut get);
        assert_eq!(get.stdout(), b"hello through a proxy\n", "{proxy}");
    }
    // The proxy is really in the way: none there, no page.
    let mut get = Proc::sockit(&[
        "http",
        "get",
        "--proxy",
        &format!("socks5://127.0.0.1:{}", free_port()),
        &url,
    ]);
    assert_fails_with(&mut get, "connect to proxy");
    // A bad proxy URL is a usage error.
    let out = crate::util::sockit()
        .args(["http", "get", "--proxy", "socks4://127.0.0.1:1", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    site.stop();
}

#[test]
fn proxy_usage_errors_are_exit_2() {
    for args in [
        &["connect", "--proxy", "socks5://127.0.0.1:1", "unix:/tmp/x"][..],
        &[
            "connect",
            "--proxy",
            "socks5://127.0.0.1:1",
            "udp://127.0.0.1:1",
        ],
        &["connect", "--proxy", "ftp://127.0.0.1:1", "127.0.0.1:1"],
        &["connect", "--proxy", "socks5://127.0.0.1:0", "127.0.0.1:1"],
    ] {
        let out = crate::util::sockit().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

/// `curl` through `sockit proxy` with `ARGS...` to `url`: its exit code and body.
fn curl_through(args: &[&str], url: &str) -> (Option<i32>, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    (out.status.code(), out.stdout)
}

#[test]
fn sockit_proxy_serves_curl_by_socks5_and_http_connect_and_sockit_connect() {
    let dir = TempDir::new("proxy-server");
    std::fs::write(dir.path("page.txt"), b"through sockit proxy\n").unwrap();
    let site = Server::start(&[
        "http",
        "serve",
        dir.path("").to_str().unwrap(),
        "127.0.0.1:0",
    ]);
    let url = format!("http://127.0.0.1:{}/page.txt", site.port());
    let proxy = Server::start(&["proxy", "127.0.0.1:0", "--allow-dest", "127.0.0.1"]);
    let p = proxy.port();
    for args in [
        vec!["--socks5-hostname".to_owned(), format!("127.0.0.1:{p}")],
        vec!["--socks5".to_owned(), format!("127.0.0.1:{p}")],
        // -p: a CONNECT tunnel for an http:// URL too (without it curl sends the proxy a
        // GET, which a tunnel-only proxy answers 405).
        vec![
            "-p".to_owned(),
            "-x".to_owned(),
            format!("http://127.0.0.1:{p}"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, body) = curl_through(&args, &url);
        assert_eq!(code, Some(0), "{args:?}");
        assert_eq!(body, b"through sockit proxy\n", "{args:?}");
    }
    // Without -p curl asks the proxy for a GET: refused with 405, not relayed.
    let (_, body) = curl_through(
        &["-x", &format!("http://127.0.0.1:{p}"), "-w", "%{http_code}"],
        &url,
    );
    assert!(
        contains(&body, b"405"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // sockit's own client, both ways, to an echo.
    let echo = Server::start(&["echo", "127.0.0.1:0"]);
    round_trip(&format!("socks5h://127.0.0.1:{p}"), &echo.addr(), &[]);
    round_trip(&format!("http://127.0.0.1:{p}"), &echo.addr(), &[]);
    echo.stop();
    site.stop();
    proxy.stop();
}

#[test]
fn sockit_proxy_refuses_private_destinations_unless_allowed_and_denied_ones() {
    let echo = Server::start(&["echo", "127.0.0.1:0"]);
    let target = echo.addr();
    // No --allow-dest: loopback is refused, by name too (localhost resolves to it).
    let open = Server::start(&["proxy", "127.0.0.1:0"]);
    let p = open.port();
    refused(&format!("socks5://127.0.0.1:{p}"), &target, "not allowed");
    refused(
        &format!("socks5h://127.0.0.1:{p}"),
        &format!("localhost:{}", echo.port()),
        "not allowed",
    );
    refused(&format!("http://127.0.0.1:{p}"), &target, "answered 403");
    // --deny-dest wins over --allow-dest; ports narrow a rule.
    let ruled = Server::start(&[
        "proxy",
        "127.0.0.1:0",
        "--allow-dest",
        "127.0.0.0/8",
        "--deny-dest",
        &format!("127.0.0.1:{}", echo.port()),
    ]);
    refused(
        &format!("socks5://127.0.0.1:{}", ruled.port()),
        &target,
        "not allowed",
    );
    let other = Server::start(&["echo", "127.0.0.2:0"]);
    round_trip(
        &format!("socks5://127.0.0.1:{}", ruled.port()),
        &other.addr(),
        &[],
    );
    other.stop();
    echo.stop();
    open.stop();
    ruled.stop();
}

#[test]
fn sockit_proxy_with_auth_refuses_clients_without_the_password() {
    let dir = TempDir::new("proxy-auth");
    std::fs::write(
        dir.path("users.txt"),
        "# users\nalice:s3cret\nbob:hunter2\n",
    )
    .unwrap();
    let echo = Server::start(&["echo", "127.0.0.1:0"]);
    let target = echo.addr();
    let proxy = Server::start(&[
        "proxy",
        "127.0.0.1:0",
        "--allow-dest",
        "127.0.0.1",
        "--auth-file",
        dir.path("users.txt").to_str().unwrap(),
    ]);
    let p = proxy.port();
    round_trip(&format!("socks5://bob:hunter2@127.0.0.1:{p}"), &target, &[]);
    round_trip(&format!("http://alice:s3cret@127.0.0.1:{p}"), &target, &[]);
    refused(
        &format!("socks5://127.0.0.1:{p}"),
        &target,
        "requires a user and password",
    );
    refused(
        &format!("socks5://bob:wrong@127.0.0.1:{p}"),
        &target,
        "refused the user name or password",
    );
    refused(
        &format!("http://127.0.0.1:{p}"),
        &target,
        "requires a user and password",
    );
    refused(
        &format!("http://alice:wrong@127.0.0.1:{p}"),
        &target,
        "refused the user name or password",
    );
    // curl, with and without the credentials.
    let site_dir = TempDir::new("proxy-auth-site");
    std::fs::write(site_dir.path("x.txt"), b"x\n").unwrap();
    let site = Server::start(&[
        "http",
        "serve",
        site_dir.path("").to_str().unwrap(),
        "127.0.0.1:0",
    ]);
    let url = format!("http://127.0.0.1:{}/x.txt", site.port());
    let (code, body) = curl_through(
        &["-x", &format!("socks5h://alice:s3cret@127.0.0.1:{p}")],
        &url,
    );
    assert_eq!((code, body.as_slice()), (Some(0), &b"x\n"[..]));
    let (code, _) = curl_through(&["-x", &format!("socks5h://127.0.0.1:{p}")], &url);
    assert_ne!(code, Some(0));
    let (code, body) = curl_through(
        &["-p", "-x", &format!("http://alice:s3cret@127.0.0.1:{p}")],
        &url,
    );
    assert_eq!((code, body.as_slice()), (Some(0), &b"x\n"[..]));
    site.stop();
    echo.stop();
    proxy.stop();
}

#[test]
fn sockit_proxy_drops_silent_and_garbage_clients_without_harming_others() {
    use std::io::{Read, Write};
    let echo = Server::start(&["echo", "127.0.0.1:0"]);
    let proxy = Server::start(&[
        "proxy",
        "127.0.0.1:0",
        "--allow-dest",
        "127.0.0.1",
        "--header-timeout",
        "1s",
    ]);
    let addr = format!("127.0.0.1:{}", proxy.port());
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    let mut garbage = std::net::TcpStream::connect(&addr).unwrap();
    garbage.write_all(b"\x16\x03\x01\x00\x05hello").unwrap();
    // A good client is served meanwhile.
    round_trip(
        &format!("socks5://127.0.0.1:{}", proxy.port()),
        &echo.addr(),
        &[],
    );
    for s in [&mut silent, &mut garbage] {
        s.set_read_timeout(Some(crate::util::WAIT)).unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(rest.is_empty(), "{rest:?}");
    }
    echo.stop();
    proxy.stop();
}

/// `forward --proxy`: the target is reached through a proxy (microsocks, and sockit's
/// own by CONNECT); a proxy that refuses costs that client only.
#[test]
fn forward_reaches_its_target_through_a_proxy() {
    let echo = Server::start(&["echo", "127.0.0.1:0"]);
    let (_socks, socks) = microsocks(None);
    let ours = Server::start(&["proxy", "127.0.0.1:0", "--allow-dest", "127.0.0.1"]);
    for proxy in [
        format!("socks5h://127.0.0.1:{socks}"),
        format!("http://127.0.0.1:{}", ours.port()),
    ] {
        let fwd = Server::start(&["forward", "127.0.0.1:0", &echo.addr(), "--proxy", &proxy]);
        let mut c = Proc::sockit(&["connect", &fwd.addr()]);
        c.write(b"via forward and proxy\n");
        c.wait_stdout_contains("via forward and proxy\n");
        c.close_stdin();
        assert_exit_0(&mut c);
        fwd.stop();
    }
    // A proxy that refuses the destination (loopback, not allowed): the client is closed,
    // the forwarder goes on.
    let strict = Server::start(&["proxy", "127.0.0.1:0"]);
    let fwd = Server::start(&[
        "forward",
        "127.0.0.1:0",
        &echo.addr(),
        "--proxy",
        &format!("socks5://127.0.0.1:{}", strict.port()),
    ]);
    let mut c = Proc::sockit(&["connect", &fwd.addr(), "--recv-only"]);
    let status = c.wait_exit(crate::util::WAIT);
    assert!(c.stdout().is_empty(), "{status}");
    // Bad usage: a proxy for a Unix target.
    let out = crate::util::sockit()
        .args([
            "forward",
            "127.0.0.1:0",
            "unix:/tmp/x",
            "--proxy",
            "socks5://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    fwd.stop();
    strict.stop();
    ours.stop();
    echo.stop();
}
