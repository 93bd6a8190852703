//! `sockit proxy`: a SOCKS5 and HTTP CONNECT proxy on one port, told apart by the first
//! byte (`0x05` is SOCKS5; a letter is an HTTP request line), around the sans-IO steps of
//! [`crate::proto::proxy`].
//!
//! Every connection is a tokio task on the server's one accept loop (admission gate,
//! `--max-conns`, client allow/deny lists). Before it has a tunnel, a client costs a few
//! bytes and a few seconds: its whole head (greeting, credentials, request) must arrive
//! within the head deadline and fit in [`MAX_HEAD`] bytes. The destination is judged by
//! the [`Policy`] on the address about to be connected, after name resolution, so a name
//! that resolves to 127.0.0.1 is loopback. After the CONNECT, bytes go through `forward`'s
//! relay (splice, half-close, reset, idle timeout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::proto::proxy::connect::{self, Refusal};
use crate::proto::proxy::policy::Policy;
use crate::proto::proxy::socks5::{self, Reply, ServerStep, Target};
use crate::proto::proxy::{Credentials, ProxyError};
use crate::server::Server;
use crate::socket::{Peer, TokioStream};
use crate::text::terminal_safe;

/// The most bytes a client's head may take (SOCKS5 greeting, credentials and request, or
/// an HTTP CONNECT head): enough for any real one, little for a stranger to cost.
pub const MAX_HEAD: usize = 8 * 1024;

/// What a proxy server allows and how long things may take.
#[derive(Debug, Clone)]
pub struct ProxyServer {
    /// Users and passwords; empty: no authentication (SOCKS5 "no authentication", HTTP
    /// without `Proxy-Authorization`).
    pub users: Vec<Credentials>,
    /// Where clients may be connected.
    pub policy: Policy,
    /// How long connecting to a destination may take.
    pub connect_timeout: Duration,
    /// How long a client has for its whole head, before it has a tunnel.
    pub head_timeout: Duration,
}

/// Serves `server` as a proxy until its shutdown handle is triggered.
pub fn serve(server: Server, proxy: ProxyServer) -> Result<()> {
    let idle = server.config().idle_timeout;
    let proxy = Arc::new(proxy);
    server.serve_tasks_plain(b"", move |stream, peer, _stopping| {
        connection(stream, peer, proxy.clone(), idle)
    })
}

/// One client: its head within the deadline, then the relay.
async fn connection(
    mut stream: TokioStream,
    peer: Peer,
    proxy: Arc<ProxyServer>,
    idle: Option<Duration>,
) {
    let head = tokio::time::timeout(
        proxy.head_timeout,
        Box::pin(head(&mut stream, &peer, &proxy)),
    );
    let (target, early) = match head.await {
        Ok(Ok(Some(tunnel))) => tunnel,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::info!(%peer, "client dropped: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "client dropped: no request within {:?}", proxy.head_timeout);
            return;
        }
    };
    let mut target = target;
    if !early.is_empty() && target.write_all(&early).await.is_err() {
        return;
    }
    crate::forward::relay_plain(stream, target, &peer, idle).await;
}

/// Reads the client's head and answers it: the destination connected (and any bytes the
/// client sent past its head, for the destination), or `None` when the client was
/// refused (answered, logged).
async fn head(
    stream: &mut TokioStream,
    peer: &Peer,
    proxy: &ProxyServer,
) -> Result<Option<(TokioStream, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(512);
    read_more(stream, &mut buf).await?;
    if buf[0] == 5 {
        socks(stream, peer, proxy, buf).await
    } else if buf[0].is_ascii_alphabetic() {
        http(stream, peer, proxy, buf).await
    } else {
        Err(ProxyError::Socks("neither SOCKS5 nor an HTTP request".into()).into())
    }
}

/// Appends what the client sends next; its end or a head over [`MAX_HEAD`] is an error.
async fn read_more(stream: &mut TokioStream, buf: &mut Vec<u8>) -> Result<()> {
    if buf.len() >= MAX_HEAD {
        return Err(ProxyError::Socks(format!("a head over {MAX_HEAD} bytes")).into());
    }
    let start = buf.len();
    buf.resize(MAX_HEAD, 0);
    let n = stream.read(&mut buf[start..]).await;
    buf.truncate(start + *n.as_ref().unwrap_or(&0));
    match n {
        Ok(0) => Err(Error::io(
            "read the request",
            std::io::ErrorKind::UnexpectedEof.into(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(Error::io("read the request", e)),
    }
}

async fn socks(
    stream: &mut TokioStream,
    peer: &Peer,
    proxy: &ProxyServer,
    mut buf: Vec<u8>,
) -> Result<Option<(TokioStream, Vec<u8>)>> {
    let mut server = socks5::Server::new(!proxy.users.is_empty());
    loop {
        let Some((step, used)) = server.receive(&buf)? else {
            read_more(stream, &mut buf).await?;
            continue;
        };
        buf.drain(..used);
        match step {
            ServerStep::Send(bytes) => send(stream, &bytes).await?,
            ServerStep::Refuse(bytes) => {
                tracing::info!(%peer, "socks5 client refused: no acceptable method or request");
                let _ = stream.write_all(&bytes).await;
                return Ok(None);
            }
            ServerStep::Authenticate(creds) => {
                let ok = authenticate(&proxy.users, &creds);
                send(stream, &server.authenticated(ok)).await?;
                if !ok {
                    tracing::warn!(%peer, "socks5: wrong password for user {:?}", terminal_safe(creds.user.as_bytes()));
                    return Ok(None);
                }
            }
            ServerStep::Connect(target) => {
                return match dial(&target, proxy).await {
                    Ok(conn) => {
                        let bound = match &conn {
                            TokioStream::Tcp(s) => s.local_addr().ok(),
                            _ => None,
                        };
                        tracing::info!(%peer, "socks5 tunnel to {}", shown(&target));
                        send(stream, &socks5::Server::reply(Reply::Succeeded, bound)).await?;
                        Ok(Some((conn, buf)))
                    }
                    Err(refused) => {
                        tracing::info!(%peer, "socks5 tunnel to {} refused: {}", shown(&target), refused.reason);
                        let _ = stream
                            .write_all(&socks5::Server::reply(refused.socks, None))
                            .await;
                        Ok(None)
                    }
                };
            }
        }
    }
}

async fn http(
    stream: &mut TokioStream,
    peer: &Peer,
    proxy: &ProxyServer,
    mut buf: Vec<u8>,
) -> Result<Option<(TokioStream, Vec<u8>)>> {
    let (asked, used) = loop {
        if let Some(done) = connect::parse(&buf)? {
            break done;
        }
        read_more(stream, &mut buf).await?;
    };
    buf.drain(..used);
    let request = match asked {
        Ok(request) => request,
        Err(refusal) => {
            let status = match refusal {
                Refusal::NotConnect => 405,
                Refusal::BadTarget => 400,
            };
            tracing::info!(%peer, "http proxy client refused: {status}");
            let _ = stream.write_all(&connect::answer(status)).await;
            return Ok(None);
        }
    };
    if !proxy.users.is_empty() {
        let ok = request
            .auth
            .as_ref()
            .is_some_and(|c| authenticate(&proxy.users, c));
        if !ok {
            if let Some(c) = &request.auth {
                tracing::warn!(%peer, "http proxy: wrong password for user {:?}", terminal_safe(c.user.as_bytes()));
            }
            let _ = stream.write_all(&connect::answer(407)).await;
            return Ok(None);
        }
    }
    let target = Target::Name(request.target.host.clone(), request.target.port);
    match dial(&target, proxy).await {
        Ok(conn) => {
            tracing::info!(%peer, "http tunnel to {}", shown(&target));
            send(stream, &connect::answer(200)).await?;
            Ok(Some((conn, buf)))
        }
        Err(refused) => {
            tracing::info!(%peer, "http tunnel to {} refused: {}", shown(&target), refused.reason);
            let _ = stream.write_all(&connect::answer(refused.http)).await;
            Ok(None)
        }
    }
}

async fn send(stream: &mut TokioStream, bytes: &[u8]) -> Result<()> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| Error::io("answer the client", e))
}

/// Whether `creds` are one of `users`, comparing every entry in constant time, so the
/// time taken does not tell which part was right.
fn authenticate(users: &[Credentials], creds: &Credentials) -> bool {
    let mut found = subtle::Choice::from(0);
    for u in users {
        found |= u.user.as_bytes().ct_eq(creds.user.as_bytes())
            & u.password.as_bytes().ct_eq(creds.password.as_bytes());
    }
    found.into()
}

/// Why a destination was not connected, as each protocol says it.
struct Refused {
    /// For the log line.
    reason: String,
    /// The SOCKS5 reply.
    socks: Reply,
    /// The HTTP status.
    http: u16,
}

/// Resolves `target`, keeps the addresses the policy allows, and connects to the first
/// that answers within the connect timeout.
async fn dial(target: &Target, proxy: &ProxyServer) -> std::result::Result<TokioStream, Refused> {
    let addrs: Vec<SocketAddr> = match target {
        Target::Ip(a) => vec![*a],
        Target::Name(host, port) => {
            let lookup = tokio::net::lookup_host((host.as_str(), *port));
            match tokio::time::timeout(proxy.connect_timeout, lookup).await {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => {
                    return Err(refused(
                        format!("cannot resolve: {e}"),
                        Reply::HostUnreachable,
                        502,
                    ));
                }
                Err(_) => {
                    return Err(refused(
                        "name lookup timed out".into(),
                        Reply::HostUnreachable,
                        504,
                    ));
                }
            }
        }
    };
    let mut denial = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match proxy.policy.check(*a) {
            Ok(()) => true,
            Err(why) => {
                denial.get_or_insert(format!("{a}: {why}"));
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(match denial {
            Some(why) => refused(why, Reply::NotAllowed, 403),
            None => refused("no address".into(), Reply::HostUnreachable, 502),
        });
    }
    let mut last = None;
    for addr in allowed {
        match tokio::time::timeout(proxy.connect_timeout, tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(TokioStream::Tcp(s));
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(std::io::ErrorKind::TimedOut.into()),
        }
    }
    let e = last.expect("at least one address tried");
    Err(match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            refused(e.to_string(), Reply::ConnectionRefused, 502)
        }
        std::io::ErrorKind::TimedOut => refused("connect timed out".into(), Reply::TtlExpired, 504),
        std::io::ErrorKind::NetworkUnreachable => {
            refused(e.to_string(), Reply::NetworkUnreachable, 502)
        }
        std::io::ErrorKind::HostUnreachable => refused(e.to_string(), Reply::HostUnreachable, 502),
        _ => refused(e.to_string(), Reply::GeneralFailure, 502),
    })
}

fn refused(reason: String, socks: Reply, http: u16) -> Refused {
    Refused {
        reason,
        socks,
        http,
    }
}

/// A destination for a log line: a name the client chose, escaped.
fn shown(target: &Target) -> String {
    terminal_safe(target.to_string().as_bytes()).to_string()
}
