//! TLS as a layer between the socket and a [`Handler`]: [`TlsService`] wraps any
//! [`Service`], so one handler (an echo, an HTTP server) is served over TLS by every model
//! without the model knowing.
//!
//! rustls is sans-IO like a handler: ciphertext in (`read_tls`, `process_new_packets`),
//! plaintext out (`reader`), plaintext in (`writer`), ciphertext out (`write_tls`). So the
//! wrapper's `on_data` takes ciphertext, hands the inner handler the plaintext, and
//! encrypts what the inner handler queued into the [`Output`] the model writes.
//!
//! A TLS server cannot `sendfile` (the bytes must pass through the cipher), so file ranges
//! the inner handler queues are read in pieces of [`CHUNK`] and encrypted; at most that much
//! plaintext is encrypted per call, the rest waits for [`Handler::on_drained`], so one
//! connection sending a large file holds neither its event loop nor memory for long.
//!
//! The handshake is a head: [`Handler::in_head`] answers `true` until it completes, so
//! [`Config::header_timeout`](super::Config::header_timeout) cuts a peer that stalls
//! half-way in every model. A peer that speaks plaintext or garbage, or fails verification,
//! gets rustls's alert and loses its connection, logged in one line with the reason.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

use super::output::Front;
use super::{Flow, Handler, Output, Service};
use crate::socket::Peer;
use crate::socket::tls::{Fingerprint, Role, tls_sentence};

/// Most plaintext encrypted per handler call (and the size of the buffer a file range is
/// read through): large enough that records are full and calls few, small enough to bound
/// what one connection queues and how long it holds its thread or event loop.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A [`Service`] served over TLS: each connection's handler is the inner service's,
/// wrapped in a [`TlsHandler`].
///
/// ```no_run
/// use std::sync::Arc;
/// use sockit::proto::echo::Echo;
/// use sockit::server::{Config, Model, Server, TlsService};
///
/// # fn config() -> rustls::ServerConfig { unimplemented!() }
/// let tls: Arc<rustls::ServerConfig> = Arc::new(config()); // certificate and key
/// let server = Server::bind(&"127.0.0.1:0".parse()?, Config::default())?;
/// server.serve(TlsService::new(Echo::default(), tls))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TlsService<S> {
    /// Makes the handler each connection's plaintext goes to.
    inner: S,
    /// Certificates, keys and protocol settings, shared by every connection.
    config: Arc<ServerConfig>,
}

impl<S: Service> TlsService<S> {
    /// Serves `inner` over TLS as `config` says (certificate chain, key, ALPN, versions).
    pub fn new(inner: S, config: Arc<ServerConfig>) -> TlsService<S> {
        TlsService { inner, config }
    }
}

impl<S: Service> Service for TlsService<S> {
    type Handler = TlsHandler<S::Handler>;

    fn handler(&self, peer: &Peer) -> TlsHandler<S::Handler> {
        TlsHandler::new(self.config.clone(), self.inner.handler(peer), peer.clone())
    }

    /// Empty: a refused peer expects a handshake, not plaintext, so it is just closed.
    fn busy_message(&self) -> &[u8] {
        b""
    }

    fn speaks_tls(&self) -> bool {
        true
    }
}

/// One TLS connection: the rustls state and the inner handler its plaintext goes to.
pub struct TlsHandler<H> {
    /// The TLS state machine; `None` only if rustls refused to start a connection with the
    /// configuration, which then ends the connection at once.
    conn: Option<ServerConnection>,
    /// The handler that sees plaintext.
    inner: H,
    /// Who this is, for the one line logged when TLS fails.
    peer: Peer,
    /// What the inner handler queued and is not yet encrypted; kept between calls (its
    /// byte buffer keeps its capacity) so that a large reply is encrypted in bounded steps.
    plain: Output,
    /// The buffer file ranges are read through before encryption; allocated when the
    /// first range is sent, then reused.
    file_buf: Vec<u8>,
    /// The handshake completed and the inner handler's `on_connect` ran.
    connected: bool,
    /// The inner handler queued something since its last `on_drained`: it is owed one
    /// once that is encrypted and written.
    owed_drain: bool,
    /// The inner handler's last word was `Flow::Close`: it is not called again, and the
    /// connection ends once its output is out.
    inner_closed: bool,
    /// The inner handler's `on_eof` ran (the peer's close_notify, or end of stream).
    inner_eof: bool,
    /// Our close_notify is queued: nothing more is encrypted.
    finished: bool,
}

impl<H> std::fmt::Debug for TlsHandler<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsHandler")
            .field("peer", &self.peer)
            .field("connected", &self.connected)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<H: Handler> TlsHandler<H> {
    /// A connection from `peer` about to begin its handshake under `config`, whose
    /// plaintext goes to `inner`.
    pub fn new(config: Arc<ServerConfig>, inner: H, peer: Peer) -> TlsHandler<H> {
        let conn = match ServerConnection::new(config) {
            Ok(conn) => Some(conn),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot start TLS connection");
                None
            }
        };
        TlsHandler {
            conn,
            inner,
            peer,
            plain: Output::new(),
            file_buf: Vec::new(),
            connected: false,
            owed_drain: false,
            inner_closed: false,
            inner_eof: false,
            finished: false,
        }
    }

    /// The inner handler, to look at its state.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// Feeds ciphertext to rustls and plaintext to the inner handler. `Err` is the reason
    /// the connection must end (its alert, if any, is queued in rustls).
    fn feed(&mut self, mut data: &[u8]) -> Result<(), Failure> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::NoConnection);
        };
        let mut peer_closed = false;
        while !data.is_empty() {
            // `&[u8]` reads by advancing the slice; rustls takes what its buffer holds.
            let n = conn.read_tls(&mut data).map_err(Failure::Read)?;
            if n == 0 {
                // close_notify received: nothing after it counts.
                break;
            }
            let state = conn.process_new_packets()?;
            peer_closed |= state.peer_has_closed();
            if !self.connected && !conn.is_handshaking() {
                self.connected = true;
                if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
                    // Mutual TLS: which client this is, for SOCKIT_LOG=info.
                    tracing::info!(peer = %self.peer, client = %Fingerprint::of(leaf), "TLS client certificate accepted");
                }
                let flow = self.inner.on_connect(&mut self.plain);
                self.inner_closed |= flow == Flow::Close;
                self.owed_drain |= !self.plain.is_empty();
            }
            // Hand over the plaintext without copying it out of rustls.
            let mut reader = conn.reader();
            loop {
                let chunk = match reader.fill_buf() {
                    Ok([]) | Err(_) => break,
                    Ok(chunk) => chunk,
                };
                let len = chunk.len();
                if !self.inner_closed && !self.inner_eof {
                    let flow = self.inner.on_data(chunk, &mut self.plain);
                    self.inner_closed |= flow == Flow::Close;
                    self.owed_drain |= !self.plain.is_empty();
                }
                reader.consume(len);
            }
        }
        if peer_closed {
            self.inner_end();
        }
        Ok(())
    }

    /// Bookkeeping after an inner handler call that returned `flow`.
    fn after_inner(&mut self, flow: Flow) {
        self.inner_closed |= flow == Flow::Close;
        self.owed_drain |= !self.plain.is_empty();
    }

    /// The peer is done sending: the inner handler is told, once, if it is still there.
    fn inner_end(&mut self) {
        if self.connected && !self.inner_eof && !self.inner_closed {
            self.inner.on_eof(&mut self.plain);
            self.owed_drain |= !self.plain.is_empty();
        }
        self.inner_eof = true;
    }

    /// Moves what rustls has to send (handshake, records, alerts) into `out`.
    fn flush_tls(&mut self, out: &mut Output) {
        if let Some(conn) = self.conn.as_mut() {
            while conn.wants_write() {
                // Writing to a `Vec` cannot fail.
                match conn.write_tls(&mut **out) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }

    /// Encrypts at most [`CHUNK`] bytes of what the inner handler queued into `out`.
    /// `Ok(true)`: everything queued is encrypted.
    fn encrypt(&mut self, out: &mut Output) -> Result<bool, Failure> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::NoConnection);
        };
        let mut budget = CHUNK;
        while budget > 0 {
            let took = match self.plain.front() {
                None => return Ok(true),
                Some(Front::Bytes(b)) => {
                    let b = &b[..b.len().min(budget)];
                    write_plain(conn, b, out)?;
                    b.len()
                }
                Some(Front::File { file, offset, len }) => {
                    let want = usize::try_from(len).unwrap_or(usize::MAX).min(budget);
                    if self.file_buf.len() < want {
                        self.file_buf.resize(want.min(CHUNK), 0);
                    }
                    let n = read_some(file, &mut self.file_buf[..want], offset)?;
                    write_plain(conn, &self.file_buf[..n], out)?;
                    n
                }
            };
            self.plain.consume(took);
            budget -= took;
        }
        Ok(self.plain.is_empty())
    }

    /// The common end of every call: encrypt what is queued (bounded), and decide whether
    /// the connection goes on. Never leaves unencrypted output behind without ciphertext in
    /// `out`, so the driver always comes back through `on_drained` for the rest.
    fn advance(&mut self, out: &mut Output) -> Flow {
        if self.finished {
            self.flush_tls(out);
            return Flow::Close;
        }
        loop {
            self.flush_tls(out);
            if !self.connected {
                return Flow::Continue;
            }
            match self.encrypt(out) {
                Ok(true) => {}
                Ok(false) => return Flow::Continue,
                Err(reason) => return self.fail(&reason, out),
            }
            if self.inner_closed {
                return self.close(out);
            }
            if self.inner_eof {
                // The inner handler's last words may continue through `on_drained`; only
                // once it adds nothing more does the connection end.
                if !out.is_empty() {
                    return Flow::Continue;
                }
                if self.owed_drain {
                    self.owed_drain = false;
                    let flow = self.inner.on_drained(&mut self.plain);
                    self.after_inner(flow);
                    if !self.plain.is_empty() || self.inner_closed {
                        continue;
                    }
                }
                return self.close(out);
            }
            return Flow::Continue;
        }
    }

    /// Ends the connection cleanly: close_notify after everything else.
    fn close(&mut self, out: &mut Output) -> Flow {
        if let Some(conn) = self.conn.as_mut() {
            conn.send_close_notify();
        }
        self.finished = true;
        self.flush_tls(out);
        Flow::Close
    }

    /// Ends the connection for `reason`, logged once; rustls's alert (if it queued one)
    /// goes out first.
    fn fail(&mut self, reason: &Failure, out: &mut Output) -> Flow {
        if reason.is_client_certificate() {
            // Mutual TLS turned someone away: the operator should see who and why.
            tracing::warn!(peer = %self.peer, %reason, "TLS connection refused");
        } else {
            // Scanners and plain-text clients are routine, not worth a warning.
            tracing::info!(peer = %self.peer, %reason, "TLS connection refused");
        }
        self.finished = true;
        self.flush_tls(out);
        Flow::Close
    }
}

impl<H: Handler> Handler for TlsHandler<H> {
    fn on_connect(&mut self, out: &mut Output) -> Flow {
        // The inner handler's `on_connect` waits for the handshake: its greeting must be
        // encrypted.
        if self.conn.is_none() {
            return self.fail(&Failure::NoConnection, out);
        }
        Flow::Continue
    }

    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        if self.finished {
            return Flow::Close;
        }
        if let Err(reason) = self.feed(data) {
            return self.fail(&reason, out);
        }
        self.advance(out)
    }

    fn on_drained(&mut self, out: &mut Output) -> Flow {
        if self.finished {
            return Flow::Close;
        }
        if self.plain.is_empty() && self.owed_drain && !self.inner_closed {
            self.owed_drain = false;
            let flow = self.inner.on_drained(&mut self.plain);
            self.after_inner(flow);
        }
        self.advance(out)
    }

    fn on_eof(&mut self, out: &mut Output) {
        if self.finished {
            return;
        }
        if !self.connected {
            tracing::debug!(peer = %self.peer, "peer left during the TLS handshake");
            self.finished = true;
            return;
        }
        self.inner_end();
        let _ = self.advance(out);
    }

    fn in_head(&self) -> bool {
        match &self.conn {
            Some(conn) if conn.is_handshaking() && !self.finished => true,
            Some(_) if self.connected && !self.finished => self.inner.in_head(),
            _ => false,
        }
    }

    fn on_head_timeout(&mut self, out: &mut Output) {
        if !self.connected {
            tracing::info!(
                peer = %self.peer,
                reason = "handshake not complete within the header timeout",
                "TLS connection refused"
            );
            return;
        }
        self.inner.on_head_timeout(&mut self.plain);
        // Last words are a few bytes (an HTTP 408): one bounded step encrypts them.
        let _ = self.encrypt(out);
        self.close(out);
    }
}

/// Why a TLS connection ends early; logged, never returned (each connection's failure is
/// its own).
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// rustls could not be started with the configuration.
    #[error("no TLS connection (the configuration was refused)")]
    NoConnection,
    /// The peer's bytes are not TLS, fail the handshake (verification, versions, ciphers)
    /// or break the record layer; the reason is rustls's, in words.
    #[error("{}", tls_sentence(.0, Role::Client))]
    Tls(#[from] rustls::Error),
    /// rustls refused the ciphertext (its buffer is full).
    #[error("reading TLS records: {0}")]
    Read(std::io::Error),
    /// rustls refused plaintext to encrypt.
    #[error("encrypting: {0}")]
    Encrypt(std::io::Error),
    /// rustls took no plaintext and had nothing to send, so no progress is possible.
    #[error("TLS connection takes no more plaintext")]
    Stuck,
    /// A file range being sent could not be read.
    #[error("reading a file to send: {0}")]
    File(std::io::Error),
    /// A file range's file ended before the range did, after its length was announced.
    #[error("file shrank while being sent")]
    FileShrank,
}

impl Failure {
    /// The client's certificate was missing or refused (mutual TLS).
    fn is_client_certificate(&self) -> bool {
        matches!(
            self,
            Failure::Tls(
                rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_)
            )
        )
    }
}

/// Hands `data` to rustls to encrypt, moving the records into `out` as rustls's own
/// buffer fills, so every byte is taken.
fn write_plain(
    conn: &mut ServerConnection,
    mut data: &[u8],
    out: &mut Output,
) -> Result<(), Failure> {
    while !data.is_empty() {
        let n = conn.writer().write(data).map_err(Failure::Encrypt)?;
        while conn.wants_write() {
            match conn.write_tls(&mut **out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if n == 0 && !conn.wants_write() {
            return Err(Failure::Stuck);
        }
        data = &data[n..];
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes of `file` at `offset`; a file that ended before the range
/// did is an error, since the length was announced.
fn read_some(file: &File, buf: &mut [u8], offset: u64) -> Result<usize, Failure> {
    loop {
        match file.read_at(buf, offset) {
            Ok(0) if !buf.is_empty() => return Err(Failure::FileShrank),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::File(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::io::Read;
    use std::path::PathBuf;

    /// A self-signed certificate for `localhost` made by the `openssl` CLI, as server and
    /// client configurations.
    fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let dir = std::env::temp_dir().join(format!(
            "sockit-tls-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert): (PathBuf, PathBuf) = (dir.join("k.pem"), dir.join("c.pem"));
        let status = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                // webpki refuses a CA certificate as the server's own.
                "-addext",
                "basicConstraints=critical,CA:FALSE",
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(certs[0].clone()).unwrap();
        let server = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let client = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    fn client(config: &Arc<ClientConfig>) -> ClientConnection {
        ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap()
    }

    /// Echoes; closes on `bye`; counts what it was told.
    #[derive(Default)]
    struct Echo {
        connects: usize,
        eofs: usize,
        /// A line has begun and not ended: a head in progress, for `in_head`.
        partial: bool,
    }

    impl Handler for Echo {
        fn on_connect(&mut self, _out: &mut Output) -> Flow {
            self.connects += 1;
            Flow::Continue
        }
        fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
            out.extend_from_slice(data);
            self.partial = !data.ends_with(b"\n");
            if data.ends_with(b"bye") {
                Flow::Close
            } else {
                Flow::Continue
            }
        }
        fn on_eof(&mut self, out: &mut Output) {
            self.eofs += 1;
            out.extend_from_slice(b"last words");
        }
        fn in_head(&self) -> bool {
            self.partial
        }
        fn on_head_timeout(&mut self, out: &mut Output) {
            out.extend_from_slice(b"too slow");
        }
    }

    /// What a driver does, in memory: ciphertext from the client goes to the handler,
    /// whatever the handler queues goes back (with `on_drained` after each batch, as
    /// drivers call it), until neither side has anything to say. Returns the handler's last
    /// flow and the largest batch of ciphertext one call produced.
    fn converse<H: Handler>(
        server: &mut TlsHandler<H>,
        client: &mut ClientConnection,
        got: &mut Vec<u8>,
    ) -> (Flow, usize) {
        let mut out = Output::new();
        let mut biggest = 0;
        let mut flow = Flow::Continue;
        for _ in 0..10_000 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            if !wire.is_empty() && flow == Flow::Continue {
                flow = server.on_data(&wire, &mut out);
            }
            let mut progressed = !wire.is_empty();
            while !out.is_empty() {
                progressed = true;
                let bytes = out.take_all().unwrap();
                biggest = biggest.max(bytes.len());
                deliver(client, &bytes, got);
                if flow == Flow::Continue {
                    flow = server.on_drained(&mut out);
                }
            }
            if !progressed {
                break;
            }
        }
        (flow, biggest)
    }

    fn deliver(client: &mut ClientConnection, mut bytes: &[u8], got: &mut Vec<u8>) {
        while !bytes.is_empty() {
            if client.read_tls(&mut bytes).unwrap() == 0 {
                break;
            }
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(got);
        }
    }

    fn handler<H: Handler>(config: Arc<ServerConfig>, inner: H) -> TlsHandler<H> {
        let mut h = TlsHandler::new(config, inner, Peer::Unix(None));
        let mut out = Output::new();
        assert_eq!(h.on_connect(&mut out), Flow::Continue);
        assert!(out.is_empty(), "nothing is sent before the client speaks");
        h
    }

    #[test]
    fn the_handshake_is_a_head_then_plaintext_is_echoed() {
        let (sc, cc) = configs();
        let mut server = handler(sc, Echo::default());
        let mut client = client(&cc);
        let mut hello = Vec::new();
        client.write_tls(&mut hello).unwrap();
        // Half a ClientHello: a head in progress, nothing to answer yet.
        let mut out = Output::new();
        assert_eq!(server.on_data(&hello[..10], &mut out), Flow::Continue);
        assert!(server.in_head() && out.is_empty());
        assert_eq!(server.on_data(&hello[10..], &mut out), Flow::Continue);
        assert!(server.in_head(), "the client has not finished yet");
        let mut got = Vec::new();
        deliver(&mut client, &out.take_all().unwrap(), &mut got);
        client.writer().write_all(b"hello over tls\n").unwrap();
        let (flow, _) = converse(&mut server, &mut client, &mut got);
        assert_eq!(flow, Flow::Continue);
        assert!(!server.in_head());
        assert_eq!(got, b"hello over tls\n");
        assert_eq!(server.inner().connects, 1);
    }

    #[test]
    fn inner_close_sends_the_reply_then_close_notify() {
        let (sc, cc) = configs();
        let mut server = handler(sc, Echo::default());
        let mut client = client(&cc);
        let mut got = Vec::new();
        converse(&mut server, &mut client, &mut got);
        client.writer().write_all(b"bye").unwrap();
        let (flow, _) = converse(&mut server, &mut client, &mut got);
        assert_eq!(flow, Flow::Close);
        assert_eq!(got, b"bye");
        let mut rest = Vec::new();
        assert_eq!(
            client.reader().read_to_end(&mut rest).unwrap(),
            0,
            "clean close_notify"
        );
    }

    #[test]
    fn the_peers_close_notify_is_the_inner_eof_and_last_words_are_sent() {
        let (sc, cc) = configs();
        let mut server = handler(sc, Echo::default());
        let mut client = client(&cc);
        let mut got = Vec::new();
        converse(&mut server, &mut client, &mut got);
        client.writer().write_all(b"x").unwrap();
        client.send_close_notify();
        let (flow, _) = converse(&mut server, &mut client, &mut got);
        assert_eq!(flow, Flow::Close);
        assert_eq!(got, b"xlast words");
        assert_eq!(server.inner().eofs, 1);
        assert!(client.reader().read_to_end(&mut Vec::new()).is_ok());
    }

    #[test]
    fn after_the_handshake_heads_and_their_timeout_are_the_inner_handlers() {
        let (sc, cc) = configs();
        let mut server = handler(sc, Echo::default());
        let mut client = client(&cc);
        let mut got = Vec::new();
        client.writer().write_all(b"line\n").unwrap();
        converse(&mut server, &mut client, &mut got);
        assert!(!server.in_head(), "a whole line is no head in progress");
        client.writer().write_all(b"half a li").unwrap();
        converse(&mut server, &mut client, &mut got);
        assert!(server.in_head());
        let mut out = Output::new();
        server.on_head_timeout(&mut out);
        deliver(&mut client, &out.take_all().unwrap(), &mut got);
        assert_eq!(got, b"line\nhalf a litoo slow");
        let mut rest = Vec::new();
        assert_eq!(
            client.reader().read_to_end(&mut rest).unwrap(),
            0,
            "close_notify"
        );
    }

    #[test]
    fn close_notify_during_the_handshake_ends_the_connection() {
        let (sc, cc) = configs();
        let mut server = handler(sc, Echo::default());
        let mut client = client(&cc);
        let mut hello = Vec::new();
        client.write_tls(&mut hello).unwrap();
        let mut out = Output::new();
        assert_eq!(server.on_data(&hello, &mut out), Flow::Continue);
        // An unencrypted close_notify alert, as a client that gives up may send.
        let flow = server.on_data(&[21, 3, 3, 0, 2, 1, 0], &mut out);
        assert_eq!(flow, Flow::Close);
        assert!(!server.in_head());
        assert_eq!(server.inner().connects + server.inner().eofs, 0);
    }

    #[test]
    fn garbage_and_plaintext_get_an_alert_and_a_close() {
        let (sc, _) = configs();
        for input in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0xff; 64]] {
            let mut server = handler(sc.clone(), Echo::default());
            let mut out = Output::new();
            assert_eq!(server.on_data(input, &mut out), Flow::Close);
            let alert = out.take_all().unwrap();
            assert_eq!(alert.first(), Some(&0x15), "an alert record: {alert:?}");
            assert!(!server.in_head());
            assert_eq!(server.inner().connects, 0);
        }
    }

    /// Sends a file on connect, and a trailer after it.
    struct SendsFile(Option<File>, u64);

    impl Handler for SendsFile {
        fn on_connect(&mut self, out: &mut Output) -> Flow {
            out.extend_from_slice(b"<");
            if let Some(file) = self.0.take() {
                out.send_file(file, 1, self.1);
            }
            out.extend_from_slice(b">");
            Flow::Continue
        }
        fn on_data(&mut self, _data: &[u8], _out: &mut Output) -> Flow {
            Flow::Continue
        }
    }

    #[test]
    fn a_file_range_is_encrypted_in_bounded_steps() {
        let (sc, cc) = configs();
        let content: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("sockit-tls-file-{}", std::process::id()));
        std::fs::write(&path, &content).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let len = content.len() as u64 - 1;
        let mut server = handler(sc, SendsFile(Some(file), len));
        let mut client = client(&cc);
        let mut got = Vec::new();
        let (flow, biggest) = converse(&mut server, &mut client, &mut got);
        assert_eq!(flow, Flow::Continue);
        assert!(
            biggest <= CHUNK + CHUNK / 16,
            "one step produced {biggest} bytes"
        );
        assert_eq!(got.len(), content.len() + 1);
        assert_eq!(got[0], b'<');
        assert!(got[1..=content.len() - 1] == content[1..]);
        assert_eq!(got.last(), Some(&b'>'));
    }
}
