//! Reference TLS echo server for `bench/tls.sh`: the idiomatic tokio + tokio-rustls echo,
//! nothing tuned. A multi-thread runtime (one worker per CPU it may run on), a task per
//! connection, the handshake by `TlsAcceptor`, a 16 KiB buffer per task, `read` then
//! `write_all` until EOF. rustls on ring with its default settings (TLS 1.3 and 1.2, its
//! cipher suites and key exchange groups in its order, the client's order followed, an
//! in-memory session cache for resumption), as sockit's.
//!
//! Run: `ref-tokio-tls PORT CERT KEY` (PORT 0: any free port; CERT and KEY in PEM).
//! Prints `listening on tls://127.0.0.1:PORT` to stderr once ready, like every sockit
//! server.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, cert, key] = &args[..] else {
        eprintln!("usage: ref-tokio-tls PORT CERT KEY");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("PORT is a number");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("read CERT")
        .collect::<Result<_, _>>()
        .expect("parse CERT");
    let key = PrivateKeyDer::from_pem_file(key).expect("read KEY");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("listening on tls://{}", listener.local_addr()?);
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(socket).await else {
                return;
            };
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if tls.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
