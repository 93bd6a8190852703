//! SOCKS5 (RFC 1928) with user/password authentication (RFC 1929), both ends: the
//! [`Client`] a connection through a proxy speaks (`--proxy socks5://`), and the
//! [`Server`] the proxy speaks. Only CONNECT is offered: BIND and UDP ASSOCIATE are
//! answered "command not supported".
//!
//! The exchange, each message a few bytes:
//!
//! ```text
//! client: 05 N METHODS...            (00 = no authentication, 02 = user/password)
//! server: 05 METHOD                  (FF = none of them)
//! client: 01 ULEN USER PLEN PASS     (only if METHOD was 02)
//! server: 01 STATUS                  (00 = accepted)
//! client: 05 01 00 ATYP ADDR PORT    (ATYP 01 IPv4, 03 name, 04 IPv6; PORT big-endian)
//! server: 05 REP 00 ATYP ADDR PORT   (REP 00 = connected; ADDR:PORT the proxy's own end)
//! ```
//!
//! Both ends are sans-IO: `receive` takes what has arrived and answers with what to send
//! or what the driver must decide (check a password, connect somewhere), and how many
//! bytes it used; bytes past a message stay the caller's (the relayed stream may follow).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::{Credentials, ProxyError};

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_METHOD: u8 = 0xff;
const AUTH_VERSION: u8 = 1;
const CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_NAME: u8 = 3;
const ATYP_V6: u8 = 4;

/// Where a proxy is asked to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address the client resolved itself (`socks5://`).
    Ip(SocketAddr),
    /// A name the proxy resolves (`socks5h://`, or a server told a name), and a port.
    Name(String, u16),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(a) => write!(f, "{a}"),
            Target::Name(n, p) => write!(f, "{n}:{p}"),
        }
    }
}

/// A SOCKS5 server's answer to a connection request (RFC 1928 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// Connected: the relay starts.
    Succeeded = 0,
    /// Something else went wrong.
    GeneralFailure = 1,
    /// The destination is not allowed (`--deny-dest`, or private by default).
    NotAllowed = 2,
    /// No route to the destination's network.
    NetworkUnreachable = 3,
    /// The destination did not answer, or its name did not resolve.
    HostUnreachable = 4,
    /// The destination refused the connection.
    ConnectionRefused = 5,
    /// The connection attempt timed out.
    TtlExpired = 6,
    /// Not CONNECT.
    CommandNotSupported = 7,
    /// An address type other than IPv4, IPv6 or a name.
    AddressTypeNotSupported = 8,
}

impl Reply {
    /// The reply's meaning as a client reports it.
    pub fn sentence(code: u8) -> String {
        match code {
            1 => "general failure".into(),
            2 => "connection not allowed by its rules".into(),
            3 => "network unreachable".into(),
            4 => "host unreachable".into(),
            5 => "connection refused by the destination".into(),
            6 => "connection timed out".into(),
            7 => "command not supported".into(),
            8 => "address type not supported".into(),
            c => format!("unknown reply {c}"),
        }
    }
}

/// What a client does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientStep {
    /// Send these bytes and go on receiving.
    Send(Vec<u8>),
    /// The proxy connected; what follows is the destination's stream. The address is the
    /// proxy's own end of that connection, as it reported it.
    Connected(Target),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Method,
    Auth,
    Reply,
    Done,
}

/// The client side: greeting, authentication if the proxy asks for it, then CONNECT.
#[derive(Debug)]
pub struct Client {
    /// Which message is expected next.
    state: ClientState,
    /// What to connect to, sent once the proxy has let us in.
    target: Target,
    /// A user and password to offer (from `socks5://user:pass@`); without them only "no
    /// authentication" is offered.
    auth: Option<Credentials>,
}

impl Client {
    /// A client for `target`, and the greeting to send first. A name or credential that
    /// SOCKS5 cannot carry (over 255 bytes, empty) is an error before anything is sent.
    pub fn new(target: Target, auth: Option<Credentials>) -> Result<(Client, Vec<u8>), ProxyError> {
        if let Target::Name(name, _) = &target
            && (name.is_empty() || name.len() > 255)
        {
            return Err(socks("a destination name must be 1 to 255 bytes"));
        }
        if let Some(c) = &auth
            && (c.user.is_empty() || c.user.len() > 255 || c.password.len() > 255)
        {
            return Err(socks(
                "a SOCKS5 user must be 1 to 255 bytes and a password at most 255",
            ));
        }
        let greeting = match auth {
            Some(_) => vec![VERSION, 2, NO_AUTH, USER_PASS],
            None => vec![VERSION, 1, NO_AUTH],
        };
        Ok((
            Client {
                state: ClientState::Method,
                target,
                auth,
            },
            greeting,
        ))
    }

    /// Takes the proxy's bytes: `Ok(None)` until a whole message is there, then the next
    /// step and the bytes it used.
    pub fn receive(&mut self, input: &[u8]) -> Result<Option<(ClientStep, usize)>, ProxyError> {
        match self.state {
            ClientState::Method => {
                let Some(&[version, method]) =
                    input.get(..2).map(|s| <&[u8; 2]>::try_from(s).expect("2"))
                else {
                    return Ok(None);
                };
                if version != VERSION {
                    return Err(socks("the proxy does not speak SOCKS5"));
                }
                match (method, &self.auth) {
                    (NO_AUTH, _) => {
                        self.state = ClientState::Reply;
                        Ok(Some((ClientStep::Send(self.request()), 2)))
                    }
                    (USER_PASS, Some(c)) => {
                        self.state = ClientState::Auth;
                        let mut out = vec![AUTH_VERSION, c.user.len() as u8];
                        out.extend_from_slice(c.user.as_bytes());
                        out.push(c.password.len() as u8);
                        out.extend_from_slice(c.password.as_bytes());
                        Ok(Some((ClientStep::Send(out), 2)))
                    }
                    (USER_PASS, None) | (NO_METHOD, None) => Err(socks(
                        "the proxy requires a user and password (socks5://USER:PASS@HOST:PORT)",
                    )),
                    (NO_METHOD, Some(_)) => Err(socks(
                        "the proxy accepts none of our authentication methods",
                    )),
                    _ => Err(socks("the proxy chose a method we did not offer")),
                }
            }
            ClientState::Auth => {
                let Some(&[_, status]) =
                    input.get(..2).map(|s| <&[u8; 2]>::try_from(s).expect("2"))
                else {
                    return Ok(None);
                };
                if status != 0 {
                    return Err(socks("the proxy refused the user name or password"));
                }
                self.state = ClientState::Reply;
                Ok(Some((ClientStep::Send(self.request()), 2)))
            }
            ClientState::Reply => {
                if input.len() < 2 {
                    return Ok(None);
                }
                if input[0] != VERSION {
                    return Err(socks("the proxy's reply is not SOCKS5"));
                }
                if input[1] != Reply::Succeeded as u8 {
                    return Err(ProxyError::Socks(format!(
                        "the proxy could not connect to {}: {}",
                        self.target,
                        Reply::sentence(input[1])
                    )));
                }
                let Some((bound, len)) = read_address(input, 3)? else {
                    return Ok(None);
                };
                self.state = ClientState::Done;
                Ok(Some((ClientStep::Connected(bound), len)))
            }
            ClientState::Done => Err(socks("the SOCKS5 exchange is over")),
        }
    }

    fn request(&self) -> Vec<u8> {
        let mut out = vec![VERSION, CONNECT, 0];
        write_address(&mut out, &self.target);
        out
    }
}

/// What a server's driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send these bytes and go on receiving.
    Send(Vec<u8>),
    /// Send these bytes, then close: the client cannot go further.
    Refuse(Vec<u8>),
    /// Check these credentials and answer with [`Server::authenticated`].
    Authenticate(Credentials),
    /// Decide whether to connect there, try, and answer with [`Server::reply`].
    Connect(Target),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Greeting,
    Auth,
    Request,
    Done,
}

/// The proxy side: reads the greeting, the credentials and the request, one step at a
/// time, so a client that has not authenticated cannot make the proxy connect anywhere.
#[derive(Debug)]
pub struct Server {
    /// Which message is expected next.
    state: ServerState,
    /// Whether a user and password are required (`--auth`): "no authentication" is then
    /// never chosen, whatever the client offers.
    require_auth: bool,
}

impl Server {
    /// A server that requires a user and password, or not.
    pub fn new(require_auth: bool) -> Server {
        Server {
            state: ServerState::Greeting,
            require_auth,
        }
    }

    /// Takes the client's bytes: `Ok(None)` until a whole message is there, then the next
    /// step and the bytes it used. Malformed bytes are an error: close the connection.
    pub fn receive(&mut self, input: &[u8]) -> Result<Option<(ServerStep, usize)>, ProxyError> {
        match self.state {
            ServerState::Greeting => {
                if input.len() < 2 {
                    return Ok(None);
                }
                if input[0] != VERSION {
                    return Err(socks("not SOCKS5"));
                }
                let n = input[1] as usize;
                if n == 0 {
                    return Err(socks("a SOCKS5 greeting offering no method"));
                }
                let Some(methods) = input.get(2..2 + n) else {
                    return Ok(None);
                };
                let want = if self.require_auth {
                    USER_PASS
                } else {
                    NO_AUTH
                };
                if !methods.contains(&want) {
                    self.state = ServerState::Done;
                    return Ok(Some((ServerStep::Refuse(vec![VERSION, NO_METHOD]), 2 + n)));
                }
                self.state = if self.require_auth {
                    ServerState::Auth
                } else {
                    ServerState::Request
                };
                Ok(Some((ServerStep::Send(vec![VERSION, want]), 2 + n)))
            }
            ServerState::Auth => {
                if input.len() < 2 {
                    return Ok(None);
                }
                if input[0] != AUTH_VERSION {
                    return Err(socks("a user/password message of another version"));
                }
                let ulen = input[1] as usize;
                let Some(&plen) = input.get(2 + ulen) else {
                    return Ok(None);
                };
                let end = 3 + ulen + plen as usize;
                if input.len() < end {
                    return Ok(None);
                }
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let creds = Credentials {
                    user: text(&input[2..2 + ulen]),
                    password: text(&input[3 + ulen..end]),
                };
                Ok(Some((ServerStep::Authenticate(creds), end)))
            }
            ServerState::Request => {
                if input.len() < 4 {
                    return Ok(None);
                }
                if input[0] != VERSION || input[2] != 0 {
                    return Err(socks("a malformed SOCKS5 request"));
                }
                if input[1] != CONNECT {
                    self.state = ServerState::Done;
                    return Ok(Some((
                        ServerStep::Refuse(Server::reply(Reply::CommandNotSupported, None)),
                        input.len(),
                    )));
                }
                match read_address(input, 3) {
                    Ok(Some((target, len))) => {
                        self.state = ServerState::Done;
                        Ok(Some((ServerStep::Connect(target), len)))
                    }
                    Ok(None) => Ok(None),
                    Err(_) => {
                        self.state = ServerState::Done;
                        Ok(Some((
                            ServerStep::Refuse(Server::reply(Reply::AddressTypeNotSupported, None)),
                            input.len(),
                        )))
                    }
                }
            }
            ServerState::Done => Err(socks("the SOCKS5 exchange is over")),
        }
    }

    /// The answer to [`ServerStep::Authenticate`]: what to send; after a refusal, close.
    pub fn authenticated(&mut self, ok: bool) -> Vec<u8> {
        self.state = if ok {
            ServerState::Request
        } else {
            ServerState::Done
        };
        vec![AUTH_VERSION, if ok { 0 } else { 1 }]
    }

    /// The answer to a request: `reply`, and the proxy's own end of the connection it
    /// made (`None` when it made none: the zero address).
    pub fn reply(reply: Reply, bound: Option<SocketAddr>) -> Vec<u8> {
        let mut out = vec![VERSION, reply as u8, 0];
        let bound = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        write_address(&mut out, &Target::Ip(bound));
        out
    }
}

/// ATYP, address and port of `target`.
fn write_address(out: &mut Vec<u8>, target: &Target) {
    match target {
        Target::Ip(a) => {
            match a.ip() {
                IpAddr::V4(v4) => {
                    out.push(ATYP_V4);
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.push(ATYP_V6);
                    out.extend_from_slice(&v6.octets());
                }
            }
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Target::Name(name, port) => {
            out.push(ATYP_NAME);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&port.to_be_bytes());
        }
    }
}

/// The ATYP-address-port at `input[at..]`, and where it ends.
fn read_address(input: &[u8], at: usize) -> Result<Option<(Target, usize)>, ProxyError> {
    let Some(&atyp) = input.get(at) else {
        return Ok(None);
    };
    let (len, addr_at) = match atyp {
        ATYP_V4 => (4, at + 1),
        ATYP_V6 => (16, at + 1),
        ATYP_NAME => match input.get(at + 1) {
            Some(&n) if n > 0 => (n as usize, at + 2),
            Some(_) => return Err(socks("an empty destination name")),
            None => return Ok(None),
        },
        _ => return Err(socks("an unknown SOCKS5 address type")),
    };
    let end = addr_at + len + 2;
    if input.len() < end {
        return Ok(None);
    }
    let addr = &input[addr_at..addr_at + len];
    let port = u16::from_be_bytes([input[end - 2], input[end - 1]]);
    let target = match atyp {
        ATYP_V4 => Target::Ip(SocketAddr::new(
            IpAddr::from(<[u8; 4]>::try_from(addr).expect("4")),
            port,
        )),
        ATYP_V6 => Target::Ip(SocketAddr::new(
            IpAddr::from(<[u8; 16]>::try_from(addr).expect("16")),
            port,
        )),
        _ => {
            let name = std::str::from_utf8(addr)
                .ok()
                .filter(|n| crate::addr::check_host(n).is_ok())
                .ok_or_else(|| socks("a destination name that is not a host name"))?;
            Target::Name(name.to_owned(), port)
        }
    };
    Ok(Some((target, end)))
}

fn socks(reason: &str) -> ProxyError {
    ProxyError::Socks(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, password: &str) -> Credentials {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// Runs a client against a server in memory, feeding each side the other's bytes one
    /// at a time (every cut of every message), the server connecting as `connect` says.
    fn run(
        target: Target,
        client_auth: Option<Credentials>,
        server_auth: Option<Credentials>,
        connect: Reply,
    ) -> Result<Target, ProxyError> {
        let (mut client, greeting) = Client::new(target.clone(), client_auth)?;
        let mut server = Server::new(server_auth.is_some());
        let mut to_server = greeting;
        loop {
            // The server, byte by byte.
            let mut seen = 0;
            let (step, used) = loop {
                seen += 1;
                if let Some(done) = server.receive(&to_server[..seen]).unwrap() {
                    break done;
                }
                assert!(seen < to_server.len(), "server never finished a message");
            };
            assert_eq!(used, to_server.len());
            let to_client = match step {
                ServerStep::Send(b) | ServerStep::Refuse(b) => b,
                ServerStep::Authenticate(c) => {
                    server.authenticated(Some(&c) == server_auth.as_ref())
                }
                ServerStep::Connect(t) => {
                    assert_eq!(t, target);
                    Server::reply(connect, Some("10.9.8.7:6543".parse().unwrap()))
                }
            };
            // The client, byte by byte.
            let mut seen = 0;
            let (step, used) = loop {
                seen += 1;
                if let Some(done) = client.receive(&to_client[..seen])? {
                    break done;
                }
                assert!(seen < to_client.len(), "client never finished a message");
            };
            assert_eq!(used, to_client.len());
            match step {
                ClientStep::Send(b) => to_server = b,
                ClientStep::Connected(bound) => return Ok(bound),
            }
        }
    }

    #[test]
    fn a_client_and_a_server_agree_with_and_without_a_password() {
        let bound = Target::Ip("10.9.8.7:6543".parse().unwrap());
        for target in [
            Target::Ip("127.0.0.1:80".parse().unwrap()),
            Target::Ip("[::1]:443".parse().unwrap()),
            Target::Name("example.com".into(), 8080),
        ] {
            assert_eq!(
                run(target.clone(), None, None, Reply::Succeeded).unwrap(),
                bound
            );
            let c = creds("alice", "s3cret");
            assert_eq!(
                run(target, Some(c.clone()), Some(c), Reply::Succeeded).unwrap(),
                bound
            );
        }
    }

    #[test]
    fn refusals_are_named() {
        let t = Target::Name("example.com".into(), 1);
        let err = |r: Result<Target, ProxyError>| r.unwrap_err().to_string();
        assert!(
            err(run(
                t.clone(),
                None,
                Some(creds("a", "b")),
                Reply::Succeeded
            ))
            .contains("requires a user and password")
        );
        assert!(
            err(run(
                t.clone(),
                Some(creds("a", "x")),
                Some(creds("a", "b")),
                Reply::Succeeded
            ))
            .contains("refused the user name or password")
        );
        let e = err(run(t, None, None, Reply::ConnectionRefused));
        assert!(e.contains("example.com:1") && e.contains("refused"), "{e}");
    }

    #[test]
    fn a_server_never_chooses_no_authentication_when_it_requires_a_password() {
        let mut s = Server::new(true);
        let (step, used) = s.receive(&[5, 1, 0]).unwrap().unwrap();
        assert_eq!((step, used), (ServerStep::Refuse(vec![5, 0xff]), 3));
        // Not even by skipping the greeting and asking at once.
        let mut s = Server::new(true);
        assert!(s.receive(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]).is_ok());
        assert!(s.receive(&[1, 1, b'a', 1, b'b']).is_err());
    }

    #[test]
    fn a_server_refuses_other_commands_and_address_types_and_garbage() {
        let mut s = Server::new(false);
        s.receive(&[5, 1, 0]).unwrap().unwrap();
        let (step, _) = s
            .receive(&[5, 2, 0, 1, 1, 2, 3, 4, 0, 80])
            .unwrap()
            .unwrap();
        assert_eq!(
            step,
            ServerStep::Refuse(Server::reply(Reply::CommandNotSupported, None))
        );
        let mut s = Server::new(false);
        s.receive(&[5, 1, 0]).unwrap().unwrap();
        let (step, _) = s
            .receive(&[5, 1, 0, 9, 1, 2, 3, 4, 0, 80])
            .unwrap()
            .unwrap();
        assert_eq!(
            step,
            ServerStep::Refuse(Server::reply(Reply::AddressTypeNotSupported, None))
        );
        for garbage in [&b"GET / HTTP/1.1\r\n"[..], &[4, 1, 0], &[5, 0]] {
            assert!(Server::new(false).receive(garbage).is_err(), "{garbage:?}");
        }
        // A name with a control character is no host name.
        let mut s = Server::new(false);
        s.receive(&[5, 1, 0]).unwrap().unwrap();
        let (step, _) = s
            .receive(&[5, 1, 0, 3, 3, b'a', 0x1b, b'b', 0, 80])
            .unwrap()
            .unwrap();
        assert!(matches!(step, ServerStep::Refuse(_)));
    }

    #[test]
    fn a_client_refuses_what_socks5_cannot_carry() {
        assert!(Client::new(Target::Name("x".repeat(256), 1), None).is_err());
        assert!(Client::new(Target::Name(String::new(), 1), None).is_err());
        assert!(Client::new(Target::Name("a".into(), 1), Some(creds("", "p"))).is_err());
        assert!(
            Client::new(
                Target::Name("a".into(), 1),
                Some(creds("u", &"p".repeat(256)))
            )
            .is_err()
        );
    }

    #[test]
    fn bytes_after_the_reply_are_left_for_the_relay() {
        let (mut c, _) = Client::new(Target::Ip("127.0.0.1:1".parse().unwrap()), None).unwrap();
        c.receive(&[5, 0]).unwrap().unwrap();
        let mut reply = Server::reply(Reply::Succeeded, None);
        let len = reply.len();
        reply.extend_from_slice(b"hello");
        let (_, used) = c.receive(&reply).unwrap().unwrap();
        assert_eq!(used, len);
    }
}
