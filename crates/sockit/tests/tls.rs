//! TLS as a layer under every model: `TlsService` around the echo (and a handler that
//! sends a file) served by each model on a loopback port, spoken to by rustls clients, by
//! Python's `ssl` and by `openssl s_client`, and by peers that do not speak TLS at all.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};
use sockit::proto::echo::Echo;
use sockit::server::{Config, Flow, Handler, Model, Output, Server, Service, TlsService};
use sockit::socket::{Peer, Shutdown};

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

/// A self-signed certificate for `localhost` and 127.0.0.1, made once by the `openssl`
/// CLI, with the configurations that serve and trust it.
struct Certs {
    /// The certificate's PEM file, for peers that read it themselves.
    cert: PathBuf,
    /// What `TlsService` is built from.
    server: Arc<ServerConfig>,
    /// A client that trusts the certificate and nothing else.
    client: Arc<ClientConfig>,
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sockit-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert) = (dir.join("k.pem"), dir.join("c.pem"));
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            // webpki refuses a CA certificate (openssl's default) as the server's own.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .stderr(Stdio::null())
            .status()
            .expect("the openssl CLI");
        assert!(status.success());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(chain[0].clone()).unwrap();
        let server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Certs {
            cert,
            server: Arc::new(server),
            client: Arc::new(client),
        }
    })
}

/// A running server: where it listens, its stop handle and its thread.
struct Running {
    addr: SocketAddr,
    stop: Shutdown,
    thread: Option<std::thread::JoinHandle<sockit::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(t) = self.thread.take() {
            let result = t.join().expect("serve thread panicked");
            if !std::thread::panicking() {
                assert!(result.is_ok(), "{result:?}");
            }
        }
    }
}

/// Serves `inner` over TLS under `model` on a loopback port, with a header timeout.
fn serve<S: Service>(model: Model, header_timeout: Duration, inner: S) -> Running {
    let config = Config {
        model,
        idle_timeout: Some(WAIT),
        header_timeout: Some(header_timeout),
        ..Config::default()
    };
    let server = Server::bind(&"127.0.0.1:0".parse().unwrap(), config).unwrap();
    let addr: SocketAddr = server.local_endpoint().resolve().unwrap()[0];
    let stop = server.shutdown_handle();
    let service = TlsService::new(inner, certs().server.clone());
    Running {
        addr,
        stop,
        thread: Some(std::thread::spawn(move || server.serve(service))),
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// A rustls client connected to `addr`, trusting the test certificate.
fn tls_client(addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(certs().client.clone(), name).unwrap();
    StreamOwned::new(conn, tcp(addr))
}

/// What client `i` sends: distinct per client, long enough to span several records.
fn payload(i: usize) -> Vec<u8> {
    (0..40_000 + i * 7)
        .map(|j| (i * 31 + j % 253) as u8)
        .collect()
}

/// Sends `data`, reads its echo back, ends with close_notify and returns the echo.
fn echo_once(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut tls = tls_client(addr);
    let reader_data = data.to_vec();
    tls.write_all(&reader_data).unwrap();
    tls.flush().unwrap();
    let mut got = vec![0; data.len()];
    tls.read_exact(&mut got).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    // The server answers close_notify with its own and closes: a clean end, not an error.
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    got
}

#[test]
fn every_model_serves_a_tls_echo_to_100_concurrent_clients() {
    for model in Model::ALL {
        let server = serve(model, WAIT, Echo::default());
        let addr = server.addr;
        let clients: Vec<_> = (0..100)
            .map(|i| std::thread::spawn(move || (i, echo_once(addr, &payload(i)))))
            .collect();
        for c in clients {
            let (i, got) = c.join().expect("client thread");
            assert!(got == payload(i), "{model}: client {i} got other bytes");
        }
        // A peer nobody here wrote: Python's ssl module, verifying the certificate.
        let script = "import socket, ssl, sys\n\
            ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
            with socket.create_connection(('127.0.0.1', int(sys.argv[2])), timeout=30) as raw:\n\
            \x20   with ctx.wrap_socket(raw, server_hostname='localhost') as s:\n\
            \x20       msg = b'python says hello ' * 1000\n\
            \x20       s.sendall(msg)\n\
            \x20       got = b''\n\
            \x20       while len(got) < len(msg):\n\
            \x20           chunk = s.recv(65536)\n\
            \x20           if not chunk: break\n\
            \x20           got += chunk\n\
            \x20       assert got == msg, len(got)\n\
            \x20       s.unwrap()\n\
            print('ok')\n";
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&certs().cert)
            .arg(addr.port().to_string())
            .output()
            .expect("python3");
        assert!(
            out.status.success() && out.stdout == b"ok\n",
            "{model}: python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Reads what a refused peer gets until the server closes; the server must close.
fn refused(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close: {e}"),
    }
    got
}

#[test]
fn plaintext_and_garbage_are_refused_without_harming_a_tls_client() {
    // `blocking` serves one connection at a time, so nothing is served "at the same time"
    // there; the refusal itself is covered under it by the stalling test's model loop.
    for model in Model::ALL.into_iter().filter(|m| *m != Model::Blocking) {
        let server = serve(model, WAIT, Echo::default());
        let mut good = tls_client(server.addr);
        good.write_all(b"first half, ").unwrap();
        let mut got = [0u8; 12];
        good.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"first half, ");

        let mut plain = tcp(server.addr);
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut garbage = tcp(server.addr);
        garbage.write_all(&[0xff; 300]).unwrap();
        for (what, peer) in [("plaintext", plain), ("garbage", garbage)] {
            let answer = refused(peer);
            // A TLS alert record (content type 21), then the close.
            assert_eq!(answer.first(), Some(&21), "{model}, {what}: {answer:?}");
        }

        // A client that does not trust the certificate: its handshake fails, and the
        // server drops it on the client's alert.
        let trusts_nobody = ClientConfig::builder()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(trusts_nobody), name).unwrap();
        let mut doubter = StreamOwned::new(conn, tcp(server.addr));
        let err = doubter.write_all(b"x").and_then(|()| doubter.flush());
        let err = err.and_then(|()| doubter.read(&mut [0; 1]).map(drop));
        assert!(err.is_err(), "{model}: the handshake must fail");

        good.write_all(b"second half").unwrap();
        let mut got = [0u8; 11];
        good.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"second half", "{model}");
    }
}

#[test]
fn a_client_stalling_mid_handshake_is_cut_at_the_header_timeout() {
    let limit = Duration::from_millis(400);
    for model in Model::ALL {
        let server = serve(model, limit, Echo::default());
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = ClientConnection::new(certs().client.clone(), name).unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();

        // Half a ClientHello, then silence; and a whole one, the server's answer read,
        // then silence instead of the client's Finished.
        for whole in [false, true] {
            let mut s = tcp(server.addr);
            let start = Instant::now();
            if whole {
                s.write_all(&hello).unwrap();
            } else {
                s.write_all(&hello[..hello.len() / 2]).unwrap();
            }
            let got = refused(s);
            let took = start.elapsed();
            assert!(
                took >= limit.mul_f32(0.9) && took < WAIT / 2,
                "{model}, whole hello {whole}: cut after {took:?}"
            );
            assert_eq!(got.is_empty(), !whole, "{model}: {} bytes", got.len());
        }

        // The server is none the worse for it.
        assert_eq!(echo_once(server.addr, b"still here"), b"still here");
    }
}

#[test]
fn openssl_s_client_talks_to_the_tls_echo() {
    for model in [Model::Epoll, Model::Threads] {
        let server = serve(model, WAIT, Echo::default());
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error"])
            .arg("-connect")
            .arg(server.addr.to_string())
            .args(["-servername", "localhost", "-verify_hostname", "localhost"])
            .arg("-CAfile")
            .arg(&certs().cert)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let line = b"hello from openssl s_client\n";
        stdin.write_all(line).unwrap();
        stdin.flush().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while got.len() < line.len() {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        let deadline = Instant::now() + WAIT;
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);
        let got = reader.join().unwrap();
        assert_eq!(got, line, "{model}: {}", String::from_utf8_lossy(&got));
    }
}

/// Sends the file it was made with once the handshake is done, then closes.
struct SendsFile(Option<(File, u64)>);

impl Handler for SendsFile {
    fn on_connect(&mut self, out: &mut Output) -> Flow {
        out.extend_from_slice(b"[");
        if let Some((file, len)) = self.0.take() {
            out.send_file(file, 0, len);
        }
        out.extend_from_slice(b"]");
        Flow::Close
    }

    fn on_data(&mut self, _data: &[u8], _out: &mut Output) -> Flow {
        Flow::Continue
    }
}

/// Opens the file anew for every connection, so each has its own offset.
struct FileService(PathBuf);

impl Service for FileService {
    type Handler = SendsFile;

    fn handler(&self, _peer: &Peer) -> SendsFile {
        let file = File::open(&self.0).unwrap();
        let len = file.metadata().unwrap().len();
        SendsFile(Some((file, len)))
    }
}

#[test]
fn a_file_range_is_served_over_tls_byte_exact_under_every_model() {
    let content: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = std::env::temp_dir().join(format!("sockit-tls-send-{}", std::process::id()));
    std::fs::write(&path, &content).unwrap();
    for model in Model::ALL {
        let server = serve(model, WAIT, FileService(path.clone()));
        let mut tls = tls_client(server.addr);
        let mut got = Vec::new();
        // The server ends with close_notify: a clean end of stream.
        tls.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), content.len() + 2, "{model}");
        assert!(got[0] == b'[' && got[got.len() - 1] == b']', "{model}");
        assert!(got[1..=content.len()] == content[..], "{model}");
    }
    std::fs::remove_file(&path).unwrap();
}

/// A server bound to `tls://` never speaks plain text by mistake: serving a service that
/// does not do TLS is an error before anything is accepted, under every model, and so
/// is handing its connections to plain tasks.
#[test]
fn a_tls_endpoint_refuses_a_service_that_does_not_speak_tls() {
    let tls: sockit::Endpoint = "tls://127.0.0.1:0".parse().unwrap();
    for model in Model::ALL {
        let config = Config {
            model,
            ..Config::default()
        };
        let server = Server::bind(&tls, config).unwrap();
        let err = server.serve(Echo::default()).unwrap_err().to_string();
        assert!(err.contains("tls://"), "{model}: {err}");
    }
    let server = Server::bind(&tls, Config::default()).unwrap();
    let err = server
        .serve_tasks(b"", |_, _, _| async {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls://"), "{err}");
}

/// The same guarantee for services that own their connections: a receiver without TLS is
/// refused on a `tls://` endpoint; with TLS it is served (and stops when told to).
#[test]
fn a_tls_endpoint_refuses_a_stream_service_that_does_not_speak_tls() {
    use sockit::transfer::{Existing, Receiver, Root};
    let tls: sockit::Endpoint = "tls://127.0.0.1:0".parse().unwrap();
    let dir = std::env::temp_dir().join(format!("sockit-tls-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = || Config {
        model: Model::Threads,
        ..Config::default()
    };
    let plain = Receiver::new(Root::open(&dir).unwrap(), Existing::Keep, |_| {});
    let server = Server::bind(&tls, config()).unwrap();
    // Stopped before it starts: without the guard it would return Ok at once, not hang.
    server.shutdown_handle().trigger();
    let err = server.serve_streams(plain).unwrap_err().to_string();
    assert!(err.contains("tls://"), "{err}");

    let identity = sockit::socket::tls::ServerTls::self_signed(&["127.0.0.1".into()]).unwrap();
    let speaks =
        Receiver::new(Root::open(&dir).unwrap(), Existing::Keep, |_| {}).with_tls(identity);
    let server = Server::bind(&tls, config()).unwrap();
    server.shutdown_handle().trigger();
    server.serve_streams(speaks).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
