//! `sockit chat join`: the full-duplex chat client. On a terminal, incoming lines appear
//! above the line being typed without garbling it ([`super::tty`]); otherwise it is plain
//! line I/O, stdin to the server and the server to stdout.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sockit::Endpoint;
use sockit::socket::tls::HANDSHAKE_TIMEOUT;
use sockit::socket::{Stream, tls_tunnel};
use sockit::text::terminal_safe;

use crate::args::{TlsClientArgs, parse_duration};

/// Chat client: type lines, see the room's lines as they come, even mid-typing.
///
/// The first line is your nick (or give --nick). On a terminal, incoming lines are
/// printed above the line you are typing, which is redrawn intact; Ctrl-C, Ctrl-D on an
/// empty line, or /quit leave. Otherwise (pipes, files) stdin lines go to the server and
/// the server's lines to stdout; EOF leaves (sockit sends /quit and waits for the server
/// to close). Either way the server's control characters are printed escaped (\x1b), never
/// raw.
///
/// tls://HOST:PORT speaks TLS, trusting the server by the system's roots, --cacert, or
/// --pin (the fingerprint a zero-setup `chat serve tls://` prints).
///
/// Exit status: 0 after /quit or EOF; 1 when the server closes the connection or cannot
/// be reached or trusted (one line on stderr says so); 2 on bad usage.
///
/// Examples:
///   sockit chat join 127.0.0.1:7001 --nick alice
///   sockit chat join tls://chat.example:7443 --pin sha256:... --nick alice
///   printf 'bob\nhello from a script\n' | sockit chat join 127.0.0.1:7001
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Chat server: HOST:PORT, tcp://, tls://, unix:PATH.
    addr: Endpoint,
    /// Your nick (otherwise the first line you type).
    #[arg(long)]
    nick: Option<String>,
    /// Give up connecting after this long (e.g. 5s).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    timeout: Option<Duration>,
    #[command(flatten)]
    tls: TlsClientArgs,
}

/// What the main loop reacts to, from the reader threads and the signal thread.
pub(super) enum Event {
    /// A line from the server (with its newline, if it had one).
    Server(Vec<u8>),
    /// The server closed the connection.
    ServerClosed,
    /// Reading from the server failed.
    ServerFailed(io::Error),
    /// A line from stdin (plain mode).
    Input(Vec<u8>),
    /// stdin ended (plain mode).
    InputEof,
    /// A key or resize (terminal mode).
    Term(crossterm::event::Event),
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
}

/// How long, after sending /quit, the server has to close before sockit leaves anyway.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// Longest line shown from the server; a longer one is shown in pieces.
const MAX_SHOWN: usize = 64 * 1024;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before connecting: a bad --cacert is reported with nothing sent.
    let tls = args.tls.client_tls(&args.addr)?;
    if let Some(nick) = &args.nick
        && (nick.is_empty() || nick.chars().any(|c| c.is_control() || c == ' '))
    {
        return Err(crate::usage(format!("invalid nick {nick:?}")));
    }
    let stream = Stream::connect(&args.addr, args.timeout)?;
    let stream = match (&tls, &args.addr) {
        (Some(tls), Endpoint::Tls(hp)) => {
            let handshake = args.timeout.unwrap_or(HANDSHAKE_TIMEOUT);
            tls_tunnel(stream, tls, &hp.host, handshake)?
        }
        _ => stream,
    };
    let mut writer = stream.try_clone().context("cannot duplicate the socket")?;
    if let Some(nick) = &args.nick {
        writer
            .write_all(format!("{nick}\n").as_bytes())
            .with_context(|| format!("cannot send the nick to {}", args.addr))?;
    }
    let (tx, rx) = mpsc::channel();
    spawn_server_reader(stream, tx.clone());
    spawn_signal_watcher(tx.clone())?;
    let chat = Session {
        addr: args.addr,
        writer,
        quit_by: None,
    };
    if io::stdin().is_terminal() && io::stdout().is_terminal() {
        super::tty::run(chat, tx, rx)
    } else {
        spawn_stdin_reader(tx);
        plain(chat, rx)
    }
}

/// The connection as both modes use it.
pub(super) struct Session {
    pub(super) addr: Endpoint,
    writer: Stream,
    /// Set once /quit was sent: the server closing is then the expected end.
    quit_by: Option<Instant>,
}

impl Session {
    /// Sends one line typed by the user.
    pub(super) fn send(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let trimmed = String::from_utf8_lossy(line);
        let trimmed = trimmed.trim();
        if trimmed == "/quit" || trimmed.starts_with("/quit ") {
            self.quit_by.get_or_insert(Instant::now() + QUIT_WAIT);
        }
        let mut bytes = line.to_vec();
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        match self.writer.write_all(&bytes) {
            Ok(()) => Ok(()),
            Err(_) if self.quit_by.is_some() => Ok(()),
            Err(e) => Err(self.lost(Some(e))),
        }
    }

    /// Leaves: sends /quit once; the server's close (or [`QUIT_WAIT`]) ends the session.
    pub(super) fn quit(&mut self) {
        if self.quit_by.is_none() {
            self.quit_by = Some(Instant::now() + QUIT_WAIT);
            let _ = self.writer.write_all(b"/quit\n");
        }
    }

    /// How long the main loop may wait for the next event.
    pub(super) fn wait(&self) -> Option<Duration> {
        self.quit_by
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// The session ends here: fine after /quit, an error otherwise.
    pub(super) fn ended(&self, error: Option<io::Error>) -> anyhow::Result<ExitCode> {
        if self.quit_by.is_some() {
            Ok(ExitCode::SUCCESS)
        } else {
            Err(self.lost(error))
        }
    }

    fn lost(&self, error: Option<io::Error>) -> anyhow::Error {
        match error {
            Some(e) => anyhow::anyhow!("lost the connection to {}: {e}", self.addr),
            None => anyhow::anyhow!("{} closed the connection", self.addr),
        }
    }
}

/// Plain line I/O: stdin lines to the server, the server's lines to stdout.
fn plain(mut chat: Session, rx: mpsc::Receiver<Event>) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    loop {
        let event = match chat.wait() {
            None => rx.recv().ok(),
            Some(left) => match rx.recv_timeout(left) {
                Ok(e) => Some(e),
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(ExitCode::SUCCESS),
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        match event {
            Some(Event::Server(line)) => {
                // Escaped into a pipe too: it may end on a terminal (`| tee`, `| less -R`),
                // and a server other than sockit's may send anything.
                let mut shown =
                    terminal_safe(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned();
                shown.push('\n');
                out.write_all(shown.as_bytes())?;
                out.flush()?;
            }
            Some(Event::Input(line)) => chat.send(&line)?,
            Some(Event::InputEof) | Some(Event::Signal) => chat.quit(),
            Some(Event::ServerClosed) | None => return chat.ended(None),
            Some(Event::ServerFailed(e)) => return chat.ended(Some(e)),
            Some(Event::Term(_)) => {}
        }
    }
}

/// Reads the server's lines (a line over [`MAX_SHOWN`] comes in pieces).
fn spawn_server_reader(stream: Stream, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        let mut reader = io::BufReader::with_capacity(64 * 1024, stream);
        loop {
            let mut line = Vec::new();
            let read = (&mut reader)
                .take(MAX_SHOWN as u64)
                .read_until(b'\n', &mut line);
            let event = match read {
                Ok(0) => Event::ServerClosed,
                Ok(_) => Event::Server(line),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Event::ServerFailed(e),
            };
            let last = !matches!(event, Event::Server(_));
            if tx.send(event).is_err() || last {
                return;
            }
        }
    });
}

fn spawn_stdin_reader(tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut line = Vec::new();
            let event = match (&mut stdin)
                .take(MAX_SHOWN as u64)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => Event::InputEof,
                Ok(_) => Event::Input(line),
            };
            let last = matches!(event, Event::InputEof);
            if tx.send(event).is_err() || last {
                return;
            }
        }
    });
}

fn spawn_signal_watcher(tx: mpsc::Sender<Event>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install signal handlers")?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if tx.send(Event::Signal).is_err() {
                return;
            }
        }
    });
    Ok(())
}
