//! TLS on stream sockets, for every client and server of sockit: `tls://` is an address
//! kind like `tcp://`, so TLS belongs here, under the commands, not inside each of them.
//!
//! - [`ServerTls`]: a server's certificate and key, from PEM files (checked to belong
//!   together before anything is bound) or made on the spot ([`ServerTls::self_signed`],
//!   zero setup: clients trust it by its [`Fingerprint`]).
//!   With [`ServerTls::with_client_auth`] it requires a certificate of every client
//!   ([`ClientAuth`]: signed by a `--client-ca`, or pinned), refused at the handshake.
//! - [`ClientTls`]: how a client decides to trust a server ([`ClientOptions`]): the
//!   system's roots, the certificates of a `--cacert` file (a self-signed server
//!   certificate listed there is trusted as itself, as curl and Python do), one pinned
//!   fingerprint, or nothing at all (`--insecure`); and the [`Identity`] it shows a
//!   server that asks for one. Both sides trust certificates the same way (`Trust`).
//! - [`TlsStream`]: a [`Stream`] with TLS on it, blocking or non-blocking; its handshake
//!   has a deadline and [`TlsStream::shutdown_write`] is TLS's half-close (close_notify).
//! - [`tls_sentence`]: every rustls error as one sentence for a person.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown as How;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

use super::Stream;
use crate::error::{Error, Result};

/// How long a handshake may take when the caller gives no deadline of its own: a peer
/// that connects and says nothing must not hold a client or a listener forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The SHA-256 of a certificate's DER bytes, written `sha256:<64 hex digits>`: what a
/// zero-setup server prints and what `--pin` takes, so trust needs no CA at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of one certificate (DER).
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    /// `sha256:<hex>`; the hex may be in either case and split by colons, as
    /// `openssl x509 -fingerprint -sha256` prints it.
    fn from_str(s: &str) -> Result<Fingerprint> {
        let bad = || {
            Error::Tls(format!(
                "invalid pin {s:?}: expected sha256: and 64 hex digits"
            ))
        };
        let hex = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("SHA256:"))
            .ok_or_else(bad)?;
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

/// A server's TLS identity and configuration, shared by every connection it accepts.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// What rustls needs to accept a connection; an `Arc` so the server models can hand it
    /// to each connection without copying the certificate.
    config: Arc<rustls::ServerConfig>,
    /// The leaf certificate's fingerprint, for the line a zero-setup server prints.
    fingerprint: Fingerprint,
}

impl ServerTls {
    /// Loads a PEM certificate chain (leaf first) and its private key (PKCS#8, RSA or
    /// SEC1). A key that does not belong to the certificate is refused here, so a server
    /// never binds with an identity no client could verify.
    pub fn from_files(cert: &Path, key: &Path) -> Result<ServerTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = read_identity(&provider, cert, key)?;
        Self::from_certified(provider, certified)
    }

    /// Makes a self-signed certificate in memory for `names` (DNS names or IP addresses:
    /// those the server listens on), so a TLS server needs no files; clients trust it by
    /// [`ServerTls::fingerprint`] (`--pin`).
    pub fn self_signed(names: &[String]) -> Result<ServerTls> {
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| Error::Tls(format!("cannot make a self-signed certificate: {e}")))?;
        let chain = vec![made.cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = certified_key(&provider, chain, key, &|e| {
            format!("self-signed certificate: {e}")
        })?;
        Self::from_certified(provider, certified)
    }

    /// The rustls configuration, for whatever drives the connections (the relay, the
    /// server models).
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// The same identity offering these ALPN protocols (`http/1.1` for HTTPS), so a
    /// client that asks for one gets it named in the handshake.
    pub fn with_alpn(mut self, protocols: &[&[u8]]) -> ServerTls {
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        self.config = Arc::new(config);
        self
    }

    /// The SHA-256 of the leaf certificate, `sha256:<hex>`, what `--pin` takes.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The same identity, asking every client for a certificate and refusing, at the
    /// handshake, those that present none or one `auth` does not trust (mutual TLS). The
    /// CA file is read here, so a bad one is reported before anything is bound.
    pub fn with_client_auth(mut self, auth: &ClientAuth) -> Result<ServerTls> {
        let provider = self.config.crypto_provider().clone();
        let verifier = ClientVerifier::new(provider.clone(), auth)?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(self.config.cert_resolver.clone());
        config.alpn_protocols = self.config.alpn_protocols.clone();
        self.config = Arc::new(config);
        Ok(self)
    }

    fn from_certified(provider: Arc<CryptoProvider>, certified: CertifiedKey) -> Result<ServerTls> {
        let fingerprint = Fingerprint::of(&certified.cert[0]);
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        Ok(ServerTls {
            config: Arc::new(config),
            fingerprint,
        })
    }
}

/// Which client certificates a server accepts (`--client-ca`, `--client-pin`): one
/// signed by a CA of `ca` (or listed there itself), or one whose fingerprint is pinned.
/// Either passes; a client with neither is refused at the handshake.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    /// A PEM file of the CAs that sign client certificates; a self-signed client
    /// certificate listed there is trusted as itself, as `--cacert` does for servers.
    pub ca: Option<PathBuf>,
    /// Client certificates trusted by their SHA-256 alone: for a few known clients with
    /// self-made certificates, no CA needed.
    pub pins: Vec<Fingerprint>,
}

/// A certificate and its private key, as PEM files: a client's identity for servers that
/// ask for one (`--client-cert`, `--client-key`).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, RSA or SEC1).
    pub key: PathBuf,
}

/// Reads a certificate chain and its key, checked to belong together: the one loader for
/// a server's identity and a client's, so both refuse a mismatch with the same words.
fn read_identity(provider: &Arc<CryptoProvider>, cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| {
            Error::Tls(format!(
                "cannot read certificate file {}: {e}",
                cert.display()
            ))
        })?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("bad certificate file {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(Error::Tls(format!(
            "no certificate in {} (expected PEM: -----BEGIN CERTIFICATE-----)",
            cert.display()
        )));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        Error::Tls(format!(
            "no usable private key in {} (expected PEM: PKCS#8, RSA or EC): {e}",
            key.display()
        ))
    })?;
    certified_key(provider, chain, der, &|e| {
        format!(
            "the key in {} does not go with the certificate in {}: {e}",
            key.display(),
            cert.display()
        )
    })
}

/// A chain and its key as rustls signs with them; a key that is not the leaf's is an
/// error worded by `mismatch`.
fn certified_key(
    provider: &Arc<CryptoProvider>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    mismatch: &dyn Fn(&str) -> String,
) -> Result<CertifiedKey> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::Tls(mismatch(&format!("unusable key ({e})"))))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        Error::Tls(mismatch(match e {
            rustls::Error::InconsistentKeys(_) => "the public keys differ",
            _ => "the certificate does not parse",
        }))
    })?;
    Ok(certified)
}

/// Reads the certificates of a trust file (`--cacert`, `--client-ca`); `what` names it
/// in errors.
fn read_trusted(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Tls(format!("cannot read {what} {}: {e}", path.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("bad {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "no certificates in {what} {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// What a client trusts and asks for; the command-line flags of every TLS client.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// A PEM file whose certificates are trusted instead of the system's roots: CAs, and
    /// self-signed server certificates trusted as themselves (`--cacert`).
    pub cacert: Option<PathBuf>,
    /// Trust exactly the server certificate with this fingerprint, nothing else (`--pin`):
    /// the way to trust a zero-setup server.
    pub pin: Option<Fingerprint>,
    /// Check nothing (`-k`): encryption without knowing who is on the other end.
    pub insecure: bool,
    /// The name sent as SNI and checked in the certificate, when it is not the host
    /// connected to (`--servername`): connecting by IP to a named server, say.
    pub servername: Option<String>,
    /// Protocols offered by ALPN (`--alpn h2`), for servers that insist on one.
    pub alpn: Vec<String>,
    /// The certificate and key shown to a server that asks for one (mutual TLS); read
    /// and checked to match before any connection is made.
    pub identity: Option<Identity>,
}

/// A client's TLS configuration, built once from [`ClientOptions`]: the CA file read, the
/// pin and name checked, before any connection is made.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// What rustls needs to connect; shared by every connection (redirects, reconnects).
    config: Arc<rustls::ClientConfig>,
    /// `--servername`, checked once here so a bad one is reported before connecting.
    servername: Option<ServerName<'static>>,
}

impl ClientTls {
    /// Reads the CA file (or the system's roots) and builds the configuration.
    pub fn new(options: &ClientOptions) -> Result<ClientTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let identity = options
            .identity
            .as_ref()
            .map(|id| read_identity(&provider, &id.cert, &id.key))
            .transpose()?;
        Self::with_identity(provider, options, identity)
    }

    /// [`ClientTls::new`] with the identity already loaded.
    fn with_identity(
        provider: Arc<CryptoProvider>,
        options: &ClientOptions,
        identity: Option<CertifiedKey>,
    ) -> Result<ClientTls> {
        let need_roots = !options.insecure && options.pin.is_none();
        let trusted = match &options.cacert {
            Some(path) => read_trusted(path, "CA file")?,
            None if need_roots => rustls_native_certs::load_native_certs().certs,
            None => Vec::new(),
        };
        // A --cacert certificate that does not parse is an error; the system's stores
        // carry odd ones, which are skipped.
        let (roots, trust) = Trust::new(
            trusted,
            options.cacert.as_deref(),
            options.pin.into_iter().collect(),
        )?;
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?,
            )
        };
        let verifier = Verifier {
            provider: provider.clone(),
            webpki,
            trust,
            insecure: options.insecure,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match identity {
            Some(certified) => builder.with_client_cert_resolver(Arc::new(
                rustls::sign::SingleCertAndKey::from(certified),
            )),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = options.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let servername = options.servername.as_deref().map(server_name).transpose()?;
        Ok(ClientTls {
            config: Arc::new(config),
            servername,
        })
    }

    /// The rustls configuration, for a driver that runs its own connection.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// The name to send and check for a connection to `host`: `--servername`, else
    /// `host` itself (a name or an IP address).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>> {
        match &self.servername {
            Some(name) => Ok(name.clone()),
            None => server_name(host),
        }
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| Error::Tls(format!("{host:?} is not a valid TLS server name")))
}

/// A [`Stream`] with TLS on it. Works blocking (clients that read and write in turn) and
/// non-blocking (the relay's poll loop: then poll for writing while
/// [`TlsStream::wants_write`], and read without polling while [`TlsStream::buffered`]).
pub struct TlsStream {
    /// The TLS state machine, client or server.
    conn: rustls::Connection,
    /// The socket the records travel on.
    sock: Stream,
    /// close_notify was queued: the TCP write side is shut once it has left, so peers
    /// that wait for the socket's EOF (not only TLS's) see it too.
    fin_pending: bool,
    /// The peer's close_notify was already read as EOF once: [`TlsStream::buffered`] must
    /// not keep saying there is something to read.
    eof_read: bool,
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("sock", &self.sock)
            .finish()
    }
}

impl TlsStream {
    /// TLS over a connected socket as a client, handshake done within `timeout`; a
    /// certificate that is not trusted is an error saying why, in one sentence.
    pub fn connect(
        sock: Stream,
        tls: &ClientTls,
        host: &str,
        timeout: Duration,
    ) -> Result<TlsStream> {
        let mut s = TlsStream::client(sock, tls, host)?;
        s.handshake(timeout, &format!("TLS handshake with {host}"), Role::Server)?;
        Ok(s)
    }

    /// TLS over an accepted socket as a server, handshake done within `timeout` (a client
    /// that says nothing, or plain text, is refused rather than waited for).
    pub fn accept(sock: Stream, tls: &ServerTls, timeout: Duration) -> Result<TlsStream> {
        let mut s = TlsStream::server(sock, tls)?;
        s.handshake(timeout, "TLS handshake", Role::Client)?;
        Ok(s)
    }

    /// A client connection whose handshake happens as it is read and written (a
    /// non-blocking driver); [`TlsStream::connect`] is the blocking way.
    pub fn client(sock: Stream, tls: &ClientTls, host: &str) -> Result<TlsStream> {
        let conn = rustls::ClientConnection::new(tls.config(), tls.server_name(host)?)
            .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?;
        Ok(TlsStream::new(conn.into(), sock))
    }

    /// A server connection whose handshake happens as it is read and written.
    pub fn server(sock: Stream, tls: &ServerTls) -> Result<TlsStream> {
        let conn = rustls::ServerConnection::new(tls.config())
            .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?;
        Ok(TlsStream::new(conn.into(), sock))
    }

    fn new(conn: rustls::Connection, sock: Stream) -> TlsStream {
        TlsStream {
            conn,
            sock,
            fin_pending: false,
            eof_read: false,
        }
    }

    /// One step of the handshake on a non-blocking socket: `Ok(true)` once it is done,
    /// `Ok(false)` while it waits for the peer (poll the socket for reading, and for
    /// writing while [`TlsStream::wants_write`]). For a caller that waits for other
    /// things too (a stop handle) and keeps its own deadline.
    pub fn handshake_step(&mut self) -> Result<bool> {
        let peer = self.peer_role();
        let step = (|| -> io::Result<bool> {
            loop {
                match self.write_pending() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    other => other?,
                }
                if !self.conn.is_handshaking() {
                    return Ok(true);
                }
                match self.conn.read_tls(&mut self.sock) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
                if let Err(e) = self.conn.process_new_packets() {
                    // The alert saying why, if the socket takes it.
                    let _ = self.write_pending();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        })();
        step.map_err(|e| handshake_error("TLS handshake", e, HANDSHAKE_TIMEOUT, peer))
    }

    /// The socket under the TLS.
    pub fn get_ref(&self) -> &Stream {
        &self.sock
    }

    /// The protocol ALPN settled on, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Blocking or non-blocking I/O on the socket.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.sock.set_nonblocking(on)
    }

    /// TLS's half-close: sends close_notify (the peer reads EOF), then shuts the socket's
    /// write side once it has left. Reading goes on. Non-blocking, `Ok` may leave bytes
    /// queued: they go with [`TlsStream::write_pending`] when the socket has room.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if !self.fin_pending {
            self.conn.send_close_notify();
            self.fin_pending = true;
        }
        match self.write_pending() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    /// TLS bytes (records, or the half-close) wait for room in the socket.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write() || self.fin_pending
    }

    /// Sends what TLS has queued; `WouldBlock` when a non-blocking socket is full.
    pub fn write_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.sock)?;
        }
        if self.fin_pending {
            self.fin_pending = false;
            match self.sock.shutdown(How::Write) {
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Decrypted bytes (or the peer's close_notify) wait to be read: poll would not say
    /// so, the socket has nothing left for them.
    pub fn buffered(&mut self) -> bool {
        match self.conn.process_new_packets() {
            Ok(state) => {
                state.plaintext_bytes_to_read() > 0 || (state.peer_has_closed() && !self.eof_read)
            }
            // The error comes out of the next read.
            Err(_) => true,
        }
    }

    fn handshake(&mut self, timeout: Duration, what: &str, peer: Role) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let result = (|| {
            self.sock.set_nonblocking(false)?;
            while self.conn.is_handshaking() || self.conn.wants_write() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.sock.set_read_timeout(Some(left))?;
                self.sock.set_write_timeout(Some(left))?;
                self.conn.complete_io(&mut self.sock)?;
            }
            self.sock.set_read_timeout(None)?;
            self.sock.set_write_timeout(None)
        })();
        result.map_err(|e| handshake_error(what, e, timeout, peer))
    }
}

impl Read for TlsStream {
    /// `Ok(0)` is the peer's close_notify; a socket closed without one is
    /// `UnexpectedEof` (the caller decides whether a truncation matters).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(0) if !buf.is_empty() => {
                    self.eof_read = true;
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            self.conn.read_tls(&mut self.sock)?;
            let processed = self.conn.process_new_packets();
            // Alerts, handshake replies, key updates: out now if the socket takes them;
            // otherwise `wants_write` says so to the caller.
            let _ = self.write_pending();
            if let Err(e) = processed {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    tls_sentence(&e, self.peer_role()),
                ));
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let flushed = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        };
        flushed(self.write_pending())?;
        let n = self.conn.writer().write(buf)?;
        flushed(self.write_pending())?;
        if n == 0 && !buf.is_empty() {
            // rustls's own buffer is full too: the socket must drain first.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// All the slices in one go: rustls packs them into the same records (many small
    /// messages cost one record, one seal and one `writev`, not one each).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let flushed = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        };
        flushed(self.write_pending())?;
        let n = self.conn.writer().write_vectored(bufs)?;
        flushed(self.write_pending())?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.writer().flush()?;
        self.write_pending()
    }
}

impl AsFd for TlsStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl TlsStream {
    fn peer_role(&self) -> Role {
        match self.conn {
            rustls::Connection::Client(_) => Role::Server,
            rustls::Connection::Server(_) => Role::Client,
        }
    }
}

/// Which side the peer is, for the words of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The peer is a server: we are the client, checking its certificate.
    Server,
    /// The peer is a client.
    Client,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// A failed handshake as one sentence: timed out, the peer's TLS error, or the peer
/// gone mid-way.
pub(crate) fn handshake_error(what: &str, e: io::Error, timeout: Duration, peer: Role) -> Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return Error::Tls(format!("{what}: timed out after {}", humanize(timeout)));
    }
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return Error::Tls(format!("{what}: {}", tls_sentence(tls, peer)));
    }
    let ended = match e.kind() {
        io::ErrorKind::UnexpectedEof => Some("closed"),
        io::ErrorKind::ConnectionReset => Some("reset"),
        _ => None,
    };
    if let Some(how) = ended {
        return Error::Tls(format!(
            "{what}: the {} {how} the connection during the handshake",
            peer.name()
        ));
    }
    Error::io(what, e)
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A TLS failure in words for the user. rustls's own `Display` shows its enums' insides
/// (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`); this says what it
/// means, about the `peer`, in one sentence.
pub fn tls_sentence(e: &rustls::Error, peer: Role) -> String {
    use rustls::{CertificateError as Cert, Error as E};
    let who = peer.name();
    let cert = |why: &str| format!("the {who}'s certificate {why}");
    match e {
        E::InvalidCertificate(c) => match c {
            Cert::UnknownIssuer => {
                cert("is not signed by a trusted certificate authority (unknown issuer)")
            }
            Cert::NotValidForName => cert("is not valid for this host name (name mismatch)"),
            Cert::NotValidForNameContext { presented, .. } if presented.is_empty() => {
                cert("names no host (name mismatch)")
            }
            Cert::NotValidForNameContext { presented, .. } => cert(&format!(
                "is not valid for this host name, only for {} (name mismatch)",
                presented.join(", ")
            )),
            Cert::Expired | Cert::ExpiredContext { .. } => cert("has expired"),
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => cert("is not valid yet"),
            Cert::Revoked => cert("has been revoked"),
            Cert::BadSignature => cert("has a signature that does not verify"),
            Cert::BadEncoding => cert("is malformed"),
            Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                cert(&format!("is not meant for a TLS {who}"))
            }
            Cert::UnhandledCriticalExtension => {
                cert("has a critical extension sockit cannot check")
            }
            // A trusted authority of the same name but another kind of key: not the signer.
            Cert::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => cert(
                "is not signed by a trusted certificate authority (unknown issuer: no trusted key matches its signature)",
            ),
            Cert::UnsupportedSignatureAlgorithmContext { .. } => {
                cert("is signed with an algorithm sockit does not support")
            }
            Cert::Other(other) => {
                if let Some(pin) = other.0.downcast_ref::<PinMismatch>() {
                    return cert(&format!(
                        "is not the pinned one (pin mismatch: it is {})",
                        pin.0
                    ));
                }
                match other.0.downcast_ref::<webpki::Error>() {
                    Some(webpki::Error::CaUsedAsEndEntity) => cert(&format!(
                        "is a certificate authority's, not a {who}'s (a CA certificate cannot be a {who} certificate)"
                    )),
                    Some(webpki::Error::EndEntityUsedAsCa) => cert(&format!(
                        "is signed by another {who}'s certificate, not by a certificate authority"
                    )),
                    Some(
                        webpki::Error::PathLenConstraintViolated
                        | webpki::Error::NameConstraintViolation,
                    ) => cert("chain breaks its certificate authority's constraints"),
                    _ => cert("was refused"),
                }
            }
            _ => cert("was refused"),
        },
        E::NoCertificatesPresented => format!("the {who} presented no certificate"),
        E::AlertReceived(alert) => {
            use rustls::AlertDescription as A;
            let named = words(&format!("{alert:?}"));
            match (peer, alert) {
                // A server sends these about the client's certificate only: ours.
                (Role::Server, A::CertificateRequired) => {
                    format!("the server requires a client certificate ({named} alert)")
                }
                (
                    Role::Server,
                    A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::AccessDenied,
                ) => format!("the server refused our certificate ({named} alert)"),
                _ => format!("the {who} broke off the handshake ({named} alert)"),
            }
        }
        E::PeerIncompatible(_) => format!(
            "handshake failure: the {who} offers no TLS version or cipher suite sockit supports"
        ),
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. }
        | E::PeerMisbehaved(_)
        | E::PeerSentOversizedRecord => match peer {
            Role::Server => {
                "handshake failure: the server does not speak TLS as expected (is it plain http?)"
                    .into()
            }
            Role::Client => {
                "handshake failure: the client does not speak TLS (plain text on a tls:// address?)"
                    .into()
            }
        },
        E::DecryptError => format!("handshake failure: the {who}'s data could not be decrypted"),
        _ => "handshake failure".into(),
    }
}

/// `HandshakeFailure` as `handshake failure`: an enum name as words.
fn words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut after_lower = false;
    for c in name.chars() {
        // `UnknownCA` is `unknown ca`: an acronym is one word.
        if c.is_ascii_uppercase() && after_lower {
            out.push(' ');
        }
        after_lower = c.is_ascii_lowercase();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The server's certificate is not the pinned one; carries what it was, so the user can
/// see which certificate was offered.
#[derive(Debug)]
struct PinMismatch(Fingerprint);

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pin mismatch: the certificate is {}", self.0)
    }
}

impl std::error::Error for PinMismatch {}

/// What a certificate may be trusted by, whichever side presents it: pinned
/// fingerprints, certificates trusted as themselves, and the names of the trusted roots.
/// The server-certificate [`Verifier`] and the client-certificate [`ClientVerifier`]
/// share it, so both sides trust the same way.
#[derive(Debug)]
struct Trust {
    /// The subjects of the trusted roots, to tell "a CA certificate where an end
    /// entity's should be" from "nothing here trusts it" (webpki says the first for both).
    anchors: Vec<Vec<u8>>,
    /// The certificates of the trust file: one presented byte for byte as the peer's own
    /// is trusted as itself. webpki refuses that (a self-signed certificate carries
    /// `CA:TRUE`, and a CA may not be an end entity), but curl and Python accept it, and it
    /// is what `openssl req -x509` makes.
    exact: Vec<CertificateDer<'static>>,
    /// `--pin`, `--client-pin`: these leaves pass on their fingerprint alone.
    pins: Vec<Fingerprint>,
}

impl Trust {
    /// The roots for webpki and the rest. Certificates of a trust `file` must all parse
    /// (and are also trusted as themselves); the system's are skipped when they do not.
    fn new(
        certs: Vec<CertificateDer<'static>>,
        file: Option<&Path>,
        pins: Vec<Fingerprint>,
    ) -> Result<(rustls::RootCertStore, Trust)> {
        let mut roots = rustls::RootCertStore::empty();
        let mut exact = Vec::new();
        for c in certs {
            match (roots.add(c.clone()), file) {
                (Ok(()), Some(_)) => exact.push(c),
                (Ok(()), None) => {}
                (Err(e), Some(path)) => {
                    return Err(Error::Tls(format!(
                        "bad certificate in {}: {e}",
                        path.display()
                    )));
                }
                (Err(_), None) => {}
            }
        }
        let anchors = roots
            .roots
            .iter()
            .map(|a| a.subject.as_ref().to_vec())
            .collect();
        Ok((
            roots,
            Trust {
                anchors,
                exact,
                pins,
            },
        ))
    }

    /// The verdict on a certificate trusted by itself (pinned, or listed as itself),
    /// `None` if it is neither and must have a path to a root.
    fn by_itself(
        &self,
        end_entity: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Option<std::result::Result<(), rustls::Error>> {
        use rustls::CertificateError as Cert;
        if self.pins.contains(&Fingerprint::of(end_entity)) {
            return Some(Ok(()));
        }
        if !self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return None;
        }
        // Trusted as itself: its dates still count.
        let Some((not_before, not_after)) = validity(end_entity) else {
            return Some(Err(rustls::Error::InvalidCertificate(Cert::BadEncoding)));
        };
        let now = now.as_secs();
        Some(if now < not_before {
            Err(rustls::Error::InvalidCertificate(Cert::NotValidYet))
        } else if now > not_after {
            Err(rustls::Error::InvalidCertificate(Cert::Expired))
        } else {
            Ok(())
        })
    }

    /// Why a certificate with no path to check (no roots) is refused: it is not the
    /// pinned one, or nothing trusts it.
    fn untrusted(&self, end_entity: &CertificateDer<'_>) -> rustls::Error {
        use rustls::CertificateError as Cert;
        if self.pins.is_empty() {
            rustls::Error::InvalidCertificate(Cert::UnknownIssuer)
        } else {
            rustls::Error::InvalidCertificate(Cert::Other(rustls::OtherError(Arc::new(
                PinMismatch(Fingerprint::of(end_entity)),
            ))))
        }
    }

    /// webpki objects that a CA certificate cannot be an end entity's before it looks for
    /// who signed it, so a self-signed CA certificate nobody trusts (openssl's one-liner)
    /// would be refused for the wrong reason; when no trusted root has its issuer's name,
    /// the first thing to say is that nothing trusts it.
    fn first_objection(&self, end_entity: &[u8], e: rustls::Error) -> rustls::Error {
        use rustls::CertificateError as Cert;
        let ca_as_end_entity = matches!(
            &e,
            rustls::Error::InvalidCertificate(Cert::Other(o))
                if matches!(o.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
        );
        match issuer(end_entity) {
            Some(issuer) if ca_as_end_entity && !self.anchors.iter().any(|a| a == issuer) => {
                rustls::Error::InvalidCertificate(Cert::UnknownIssuer)
            }
            _ => e,
        }
    }
}

/// The one place a client decides whether to trust a server certificate (the handshake
/// signature is always checked against it, whatever was decided).
#[derive(Debug)]
struct Verifier {
    /// The algorithms handshake signatures are checked with.
    provider: Arc<CryptoProvider>,
    /// The path check against the trusted roots; `None` when there are none (then only
    /// certificates trusted by themselves, or `insecure`, can pass).
    webpki: Option<Arc<WebPkiServerVerifier>>,
    /// The pins, the certificates trusted as themselves, the roots' names.
    trust: Trust,
    /// `--insecure`: no check.
    insecure: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as Cert;
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let pinned = self.trust.pins.contains(&Fingerprint::of(end_entity));
        match self.trust.by_itself(end_entity, now) {
            Some(Ok(())) if pinned => return Ok(ServerCertVerified::assertion()),
            Some(Ok(())) => {
                // Listed as itself: its names still count (a pin is for exactly that
                // certificate, whatever it names).
                let ee = webpki::EndEntityCert::try_from(end_entity)
                    .map_err(|_| rustls::Error::InvalidCertificate(Cert::BadEncoding))?;
                ee.verify_is_valid_for_subject_name(server_name)
                    .map_err(|_| rustls::Error::InvalidCertificate(Cert::NotValidForName))?;
                return Ok(ServerCertVerified::assertion());
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
        match &self.webpki {
            Some(webpki) => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| self.trust.first_objection(end_entity, e)),
            None => Err(self.trust.untrusted(end_entity)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The one place a server decides whether to accept a client certificate (mutual TLS):
/// pinned, listed as itself, or with a path to a `--client-ca` root. A client with no
/// certificate is refused (`client_auth_mandatory`).
#[derive(Debug)]
struct ClientVerifier {
    /// The algorithms handshake signatures are checked with.
    provider: Arc<CryptoProvider>,
    /// The path check against the `--client-ca` roots (including the clientAuth purpose
    /// where a certificate names its purposes); `None` with pins only.
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    /// The roots' names, sent in the certificate request so a client holding several
    /// certificates can pick the right one.
    hints: Vec<DistinguishedName>,
    /// The pins, the certificates trusted as themselves, the roots' names.
    trust: Trust,
}

impl ClientVerifier {
    fn new(provider: Arc<CryptoProvider>, auth: &ClientAuth) -> Result<ClientVerifier> {
        if auth.ca.is_none() && auth.pins.is_empty() {
            return Err(Error::Tls(
                "client certificates required, but neither a CA file nor a pin trusts any".into(),
            ));
        }
        let certs = match &auth.ca {
            Some(path) => read_trusted(path, "client CA file")?,
            None => Vec::new(),
        };
        let (roots, trust) = Trust::new(certs, auth.ca.as_deref(), auth.pins.clone())?;
        let hints = roots.subjects();
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?,
            )
        };
        Ok(ClientVerifier {
            provider,
            webpki,
            hints,
            trust,
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        match self.trust.by_itself(end_entity, now) {
            Some(Ok(())) => return Ok(ClientCertVerified::assertion()),
            Some(Err(e)) => return Err(e),
            None => {}
        }
        match &self.webpki {
            Some(webpki) => webpki
                .verify_client_cert(end_entity, intermediates, now)
                .map_err(|e| self.trust.first_objection(end_entity, e)),
            None => Err(self.trust.untrusted(end_entity)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The contents of a certificate's issuer Name, read from its DER.
fn issuer(der: &[u8]) -> Option<&[u8]> {
    let (cert, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0)?.1;
    }
    rest = tlv(rest, 0x02)?.1;
    rest = tlv(rest, 0x30)?.1;
    Some(tlv(rest, 0x30)?.0)
}

/// A certificate's validity period (notBefore, notAfter) in Unix seconds, read from its
/// DER: webpki checks dates only while building a path to a CA, which a certificate
/// trusted as itself never does.
fn validity(der: &[u8]) -> Option<(u64, u64)> {
    let (cert, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0)?.1; // version
    }
    rest = tlv(rest, 0x02)?.1; // serial number
    rest = tlv(rest, 0x30)?.1; // signature algorithm
    rest = tlv(rest, 0x30)?.1; // issuer
    let (validity, _) = tlv(rest, 0x30)?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Some((not_before, not_after))
}

/// One DER element of tag `tag`: its contents and what follows it.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A UTCTime or GeneralizedTime (`...Z`) as Unix seconds, and what follows it.
fn time(input: &[u8]) -> Option<(u64, &[u8])> {
    let tag = *input.first()?;
    let (text, rest) = tlv(input, tag)?;
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, text) = match tag {
        0x17 => {
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    if text.len() != 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| -> Option<i64> { text.get(i..i + 2)?.parse().ok() };
    let (month, day, h, m, s) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    Some((u64::try_from(secs).unwrap_or(0), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CertificateError as Cert, Error as E, OtherError};

    #[test]
    fn tls_errors_are_sentences_without_rusts_debug_output() {
        let other = |e: webpki::Error| E::InvalidCertificate(Cert::Other(OtherError(Arc::new(e))));
        let cases = [
            (E::InvalidCertificate(Cert::UnknownIssuer), "unknown issuer"),
            (
                E::InvalidCertificate(Cert::NotValidForName),
                "name mismatch",
            ),
            (E::InvalidCertificate(Cert::Expired), "expired"),
            (E::InvalidCertificate(Cert::NotValidYet), "not valid yet"),
            (E::InvalidCertificate(Cert::Revoked), "revoked"),
            (
                other(webpki::Error::CaUsedAsEndEntity),
                "certificate authority's, not a server's",
            ),
            (
                other(webpki::Error::EndEntityUsedAsCa),
                "another server's certificate",
            ),
            (
                other(webpki::Error::MaximumPathDepthExceeded),
                "was refused",
            ),
            (
                E::InvalidCertificate(Cert::Other(OtherError(Arc::new(PinMismatch(Fingerprint(
                    [0xab; 32],
                )))))),
                "pin mismatch: it is sha256:abab",
            ),
            (
                E::AlertReceived(rustls::AlertDescription::HandshakeFailure),
                "(handshake failure alert)",
            ),
            (E::NoCertificatesPresented, "no certificate"),
            (
                E::AlertReceived(rustls::AlertDescription::CertificateRequired),
                "the server requires a client certificate",
            ),
            (
                E::AlertReceived(rustls::AlertDescription::UnknownCA),
                "the server refused our certificate (unknown ca alert)",
            ),
            (E::General("x".into()), "handshake failure"),
        ];
        for (e, want) in cases {
            let s = tls_sentence(&e, Role::Server);
            assert!(s.contains(want), "{e:?}: {s}");
            assert!(
                !s.contains(['(', '{', '_']) || s.contains(" ("),
                "{e:?}: {s}"
            );
            assert!(!s.contains("Other") && !s.contains('{'), "{e:?}: {s}");
        }
    }

    #[test]
    fn fingerprints_print_and_parse() {
        let f = Fingerprint::of(b"x");
        let text = f.to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(text.parse::<Fingerprint>().unwrap(), f);
        // openssl's way of writing it.
        let colons: Vec<String> = f.0.iter().map(|b| format!("{b:02X}")).collect();
        let openssl = format!("SHA256:{}", colons.join(":"));
        assert_eq!(openssl.parse::<Fingerprint>().unwrap(), f);
        for bad in [
            "",
            "sha256:",
            "md5:00",
            "sha256:zz",
            &text[..text.len() - 1],
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn self_signed_identity_has_its_fingerprint_and_dates() {
        let tls = ServerTls::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (from, until) = validity(made.cert.der()).unwrap();
        // rcgen's defaults: from 1975 to 4096.
        assert!(
            from < 1_000_000_000 && until > 4_000_000_000,
            "{from} {until}"
        );
        assert_ne!(tls.fingerprint(), Fingerprint::of(made.cert.der()));
    }

    /// A zero-setup server on loopback running `serve` on its one connection; the port
    /// and the server's identity.
    fn server(
        serve: impl FnOnce(Result<TlsStream>) + Send + 'static,
    ) -> (u16, ServerTls, std::thread::JoinHandle<()>) {
        let tls = ServerTls::self_signed(&["localhost".into()]).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let theirs = tls.clone();
        let thread = std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            serve(TlsStream::accept(
                Stream::Tcp(sock),
                &theirs,
                Duration::from_secs(5),
            ));
        });
        (port, tls, thread)
    }

    fn client(port: u16, options: &ClientOptions) -> Result<TlsStream> {
        let endpoint: crate::Endpoint = format!("tls://127.0.0.1:{port}").parse().unwrap();
        let sock = Stream::connect(&endpoint, Some(Duration::from_secs(5))).unwrap();
        let tls = ClientTls::new(options)?;
        TlsStream::connect(sock, &tls, "localhost", Duration::from_secs(5))
    }

    #[test]
    fn blocking_streams_half_close_with_close_notify_and_read_on() {
        let (port, tls, thread) = server(|s| {
            let mut s = s.unwrap();
            let mut got = Vec::new();
            // Ends at the client's close_notify, not at a socket EOF.
            s.read_to_end(&mut got).unwrap();
            got.reverse();
            s.write_all(&got).unwrap();
            s.shutdown_write().unwrap();
        });
        let mut c = client(
            port,
            &ClientOptions {
                pin: Some(tls.fingerprint()),
                ..ClientOptions::default()
            },
        )
        .unwrap();
        c.write_all(b"hello").unwrap();
        c.shutdown_write().unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"olleh");
        thread.join().unwrap();
    }

    #[test]
    fn a_wrong_pin_is_one_sentence_on_both_sides() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (port, _tls, thread) = server(move |s| {
            let _ = tx.send(s.err().map(|e| e.to_string()));
        });
        let wrong = Fingerprint([7; 32]);
        let err = client(
            port,
            &ClientOptions {
                pin: Some(wrong),
                ..ClientOptions::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("pin mismatch: it is sha256:"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let theirs = rx
            .recv()
            .unwrap()
            .expect("the server's handshake failed too");
        assert!(
            theirs.contains("the client broke off the handshake"),
            "{theirs}"
        );
        thread.join().unwrap();
    }

    /// Mutual TLS in-process: a server pinning one client certificate serves it, and
    /// refuses another and none at all, each side saying why in one sentence.
    #[test]
    fn client_certificates_are_required_and_checked() {
        let made = rcgen::generate_simple_self_signed(vec!["client".to_owned()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let identity = || {
            let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
            certified_key(&provider, vec![made.cert.der().clone()], key, &|e| e.into()).unwrap()
        };
        let pinned = Fingerprint::of(made.cert.der());
        let cases = [
            (pinned, true, None),
            (
                Fingerprint([1; 32]),
                true,
                Some((
                    "pin mismatch: it is sha256:",
                    "the server refused our certificate",
                )),
            ),
            (
                pinned,
                false,
                Some((
                    "the client presented no certificate",
                    "the server requires a client certificate",
                )),
            ),
        ];
        for (pin, show, refusal) in cases {
            let tls = ServerTls::self_signed(&["localhost".into()])
                .unwrap()
                .with_client_auth(&ClientAuth {
                    ca: None,
                    pins: vec![pin],
                })
                .unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let theirs = tls.clone();
            let thread = std::thread::spawn(move || {
                let (sock, _) = listener.accept().unwrap();
                let mut s = TlsStream::accept(Stream::Tcp(sock), &theirs, Duration::from_secs(5))?;
                s.write_all(b"welcome")
                    .and_then(|()| s.shutdown_write())
                    .map_err(|e| Error::Tls(e.to_string()))
            });
            let options = ClientOptions {
                pin: Some(tls.fingerprint()),
                ..ClientOptions::default()
            };
            let ours =
                ClientTls::with_identity(provider.clone(), &options, show.then(identity)).unwrap();
            let endpoint: crate::Endpoint = format!("tls://127.0.0.1:{port}").parse().unwrap();
            let sock = Stream::connect(&endpoint, Some(Duration::from_secs(5))).unwrap();
            // TLS 1.3: the client's handshake ends before the server has judged its
            // certificate; the verdict is its first read.
            let got = TlsStream::connect(sock, &ours, "localhost", Duration::from_secs(5))
                .and_then(|mut c| {
                    let mut back = Vec::new();
                    c.read_to_end(&mut back)
                        .map_err(|e| Error::Tls(e.to_string()))?;
                    Ok(back)
                });
            let served = thread.join().unwrap();
            match refusal {
                None => {
                    assert_eq!(got.unwrap(), b"welcome");
                    served.unwrap();
                }
                Some((server_says, client_says)) => {
                    let ours = got.unwrap_err().to_string();
                    assert!(ours.contains(client_says), "{ours}");
                    let theirs = served.unwrap_err().to_string();
                    assert!(theirs.contains(server_says), "{theirs}");
                }
            }
        }
    }

    #[test]
    fn der_times_convert_to_unix_seconds() {
        let utc = [&[0x17, 13][..], b"700101000000Z"].concat();
        assert_eq!(time(&utc).unwrap().0, 0);
        let generalized = [&[0x18, 15][..], b"20260101000000Z"].concat();
        assert_eq!(time(&generalized).unwrap().0, 1_767_225_600);
        let utc49 = [&[0x17, 13][..], b"490101000000Z"].concat();
        assert_eq!(time(&utc49).unwrap().0, 2_493_072_000);
        assert!(time(&[0x17, 3, b'1', b'2', b'Z']).is_none());
    }
}
