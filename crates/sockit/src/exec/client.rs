//! The exec client, blocking: one command per connection. Output is written to the two
//! writers as it arrives; stdin, when given, is forwarded by a thread of its own so that
//! sending input and receiving output never wait on each other. Over `tls://`, the
//! connection is the socket layer's [`tls_tunnel`]: the same reads and writes, in TLS.

use std::io::{self, Read, Write};
use std::net::Shutdown as How;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::frame::LengthCodec;
use crate::proto::exec::{ExitStatus, Kind, MAX_CHUNK, Message, ProtocolError, Token, prefix};
use crate::socket::tls::HANDSHAKE_TIMEOUT;
use crate::socket::{ClientTls, Stream, tls_tunnel};

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The program ran and ended this way.
    Exited(ExitStatus),
    /// The server refused or stopped it, and said why (any output before that was written).
    Refused(String),
}

/// Runs commands on an exec server.
#[derive(Debug, Clone)]
pub struct Client {
    /// Where the server is.
    endpoint: Endpoint,
    /// The shared secret the challenge is answered with.
    token: Token,
    /// Bounds connecting and the whole command.
    timeout: Option<Duration>,
    /// How to trust a `tls://` server; `None` for plain connections.
    tls: Option<ClientTls>,
}

impl Client {
    /// A client of the server at `endpoint`, authenticating with `token`.
    pub fn new(endpoint: Endpoint, token: Token) -> Client {
        Client {
            endpoint,
            token,
            timeout: None,
            tls: None,
        }
    }

    /// Speaks TLS, trusting the server as `tls` says (for a `tls://` endpoint).
    pub fn tls(mut self, tls: Option<ClientTls>) -> Client {
        self.tls = tls;
        self
    }

    /// Bounds connecting and the whole command; past it the connection is closed (which
    /// makes the server kill the program) and [`Client::run`] fails with `TimedOut`.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Client {
        self.timeout = timeout;
        self
    }

    /// Runs `argv` remotely. Remote stdout and stderr go to `stdout` and `stderr` as they
    /// arrive; `stdin`, if given, is read to its end and sent (without it the program's
    /// stdin is empty). A thread blocked reading `stdin` is left to finish on its own.
    pub fn run<R: Read + Send + 'static>(
        &self,
        argv: &[String],
        stdin: Option<R>,
        stdout: &mut impl Write,
        stderr: &mut impl Write,
    ) -> Result<Outcome> {
        let stream = Stream::connect(&self.endpoint, self.timeout)?;
        let stream = match (&self.tls, &self.endpoint) {
            (Some(tls), Endpoint::Tls(hp)) => {
                let handshake = self.timeout.unwrap_or(HANDSHAKE_TIMEOUT);
                tls_tunnel(stream, tls, &hp.host, handshake)?
            }
            _ => stream,
        };
        let watchdog = match self.timeout {
            Some(t) => Some(Watchdog::start(self.dup(&stream)?, t)),
            None => None,
        };
        let result = self.converse(&stream, argv, stdin, stdout, stderr);
        // Whatever happened, the connection ends here, which also stops the stdin thread.
        let _ = stream.shutdown(How::Both);
        match watchdog.map(Watchdog::stop) {
            Some(true) => Err(Error::io(
                format!("exec on {}", self.endpoint),
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out after {:?}", self.timeout.unwrap_or_default()),
                ),
            )),
            _ => result,
        }
    }

    fn dup(&self, stream: &Stream) -> Result<Stream> {
        stream
            .try_clone()
            .map_err(|e| Error::io(format!("dup connection to {}", self.endpoint), e))
    }

    fn converse<R: Read + Send + 'static>(
        &self,
        stream: &Stream,
        argv: &[String],
        stdin: Option<R>,
        stdout: &mut impl Write,
        stderr: &mut impl Write,
    ) -> Result<Outcome> {
        let mut reader = Reader {
            stream,
            codec: LengthCodec::default(),
            buf: BytesMut::new(),
        };
        let challenge = match reader.next()? {
            Message::Challenge(c) => c,
            Message::Refuse(reason) => return Ok(Outcome::Refused(reason)),
            other => return Err(unexpected(&other)),
        };
        let mut hello = BytesMut::new();
        Message::Auth(self.token.respond(&challenge)).encode(&mut hello)?;
        Message::Run {
            argv: argv.to_vec(),
        }
        .encode(&mut hello)?;
        if stdin.is_none() {
            Message::Stdin(Bytes::new()).encode(&mut hello)?;
        }
        let send_err = |e| Error::io(format!("send to {}", self.endpoint), e);
        (&*stream).write_all(&hello).map_err(send_err)?;
        if let Some(input) = stdin {
            let writer = self.dup(stream)?;
            std::thread::spawn(move || forward_stdin(input, writer));
        }
        let write_err = |what: &str, e| Error::io(format!("write {what}"), e);
        loop {
            match reader.next()? {
                Message::Stdout(b) => stdout.write_all(&b).map_err(|e| write_err("stdout", e))?,
                Message::Stderr(b) => stderr.write_all(&b).map_err(|e| write_err("stderr", e))?,
                Message::Exit(status) => {
                    stdout.flush().map_err(|e| write_err("stdout", e))?;
                    return Ok(Outcome::Exited(status));
                }
                Message::Refuse(reason) => {
                    stdout.flush().map_err(|e| write_err("stdout", e))?;
                    return Ok(Outcome::Refused(reason));
                }
                other => return Err(unexpected(&other)),
            }
        }
    }
}

fn unexpected(msg: &Message) -> Error {
    Error::Exec(ProtocolError::OutOfOrder {
        kind: msg.kind(),
        state: "from the server",
    })
}

/// The server's messages, one frame each.
struct Reader<'a> {
    stream: &'a Stream,
    codec: LengthCodec,
    buf: BytesMut,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<Message> {
        let mut stream = self.stream;
        match self.codec.read_frame(&mut stream, &mut self.buf)? {
            Some(payload) => Ok(Message::decode(payload.freeze())?),
            None => Err(Error::io(
                "exec",
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection before the exit status",
                ),
            )),
        }
    }
}

/// Sends `input` as `I` frames, then the empty one; stops when the connection does.
fn forward_stdin(mut input: impl Read, stream: Stream) {
    let mut chunk = vec![0u8; MAX_CHUNK];
    let mut frame = BytesMut::with_capacity(MAX_CHUNK + 8);
    loop {
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading stdin failed; ending the program's input");
                0
            }
        };
        frame.clear();
        frame.put_slice(&prefix(Kind::Stdin, n).expect("a chunk fits in a frame"));
        frame.put_slice(&chunk[..n]);
        if (&stream).write_all(&frame).is_err() || n == 0 {
            return;
        }
    }
}

/// Closes the connection when the time is up, unless stopped first.
struct Watchdog {
    done: mpsc::Sender<()>,
    fired: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Watchdog {
    fn start(stream: Stream, limit: Duration) -> Watchdog {
        let (done, wait) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let thread = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                flag.store(true, Ordering::SeqCst);
                let _ = stream.shutdown(How::Both);
            }
        });
        Watchdog {
            done,
            fired,
            thread,
        }
    }

    /// Stops the watchdog; whether it had fired.
    fn stop(self) -> bool {
        drop(self.done);
        let _ = self.thread.join();
        self.fired.load(Ordering::SeqCst)
    }
}
