//! The datagram relay: stdin lines out as datagrams, datagrams in as lines, either on a
//! connected socket (`connect udp://...`) or on a bound one that answers whoever speaks
//! (`listen udp://...`).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags};

use super::text::{Datagrams, hex_message, needs_newline};
use super::{
    Accept, CHUNK, Direction, Dump, End, Framing, HIGH_WATER, InputEof, MAX_DATAGRAM, MAX_PEERS,
    Options, emit, read_input, wait,
};
use crate::addr::Endpoint;
use crate::error::{Error, Result};
use crate::socket::{AccessList, DatagramSocket, Peer, Shutdown};

/// Datagrams taken from the socket per wake-up, so stdin is never starved.
const RECVS_PER_WAKE: usize = 64;

/// Which datagram relay.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode<'a> {
    /// A socket connected to `remote`: one peer, and errors about it are errors.
    Connected(&'a Endpoint),
    /// A bound socket answering the peers it hears from.
    Listening {
        accept: Accept,
        access: &'a AccessList,
        local: &'a Endpoint,
    },
}

pub(super) fn relay<O: Write>(
    socket: &DatagramSocket,
    mode: Mode<'_>,
    input: BorrowedFd<'_>,
    mut output: O,
    options: &Options,
    stop: &Shutdown,
) -> Result<End> {
    let name = match mode {
        Mode::Connected(remote) => remote.to_string(),
        Mode::Listening { local, .. } => local.to_string(),
    };
    if options.framing != Framing::Raw {
        return Err(Error::Setting(
            "frames (--frame) need a stream: tcp or unix".into(),
        ));
    }
    let fail = |e: io::Error| Error::io(name.clone(), e);
    socket.set_nonblocking(true).map_err(fail)?;
    let connected = matches!(mode, Mode::Connected(_));
    // Listening, the socket is read even with --send-only: that is how peers are learnt.
    let receive = !connected || options.direction != Direction::SendOnly;
    let print = options.direction != Direction::SendOnly;
    let mut input_open = options.direction != Direction::RecvOnly;
    let mut lines = Datagrams::new(MAX_DATAGRAM, options.line_endings);
    let mut outbox = Outbox::default();
    let mut peers: VecDeque<Peer> = VecDeque::new();
    let mut replies_until: Option<Instant> = None;
    let mut stdin_buf = vec![0u8; CHUNK];
    let mut buf = vec![0u8; 64 * 1024];
    let mut fresh = Vec::new();
    loop {
        if stop.is_triggered() {
            return Ok(End::Stopped);
        }
        if connected && !input_open && outbox.is_empty() {
            match (options.direction, options.input_eof) {
                (Direction::SendOnly, _) => return Ok(End::InputDone),
                (Direction::Both, InputEof::HalfClose) => {
                    let until =
                        *replies_until.get_or_insert_with(|| Instant::now() + options.reply_wait);
                    if Instant::now() >= until {
                        return Ok(End::InputDone);
                    }
                }
                // --no-shutdown, or --recv-only: until stopped.
                _ => {}
            }
        }
        let read_stdin = input_open && outbox.len < HIGH_WATER && (connected || !peers.is_empty());
        let mut interest = PollFlags::empty();
        if receive {
            interest |= PollFlags::IN;
        }
        if !outbox.is_empty() {
            interest |= PollFlags::OUT;
        }

        let stop_fd = stop.fd();
        let mut fds = vec![
            PollFd::new(&stop_fd, PollFlags::IN),
            PollFd::new(socket, interest),
        ];
        if read_stdin {
            fds.push(PollFd::new(&input, PollFlags::IN));
        }
        let deadline = if outbox.is_empty() {
            replies_until
        } else {
            None
        };
        wait(&mut fds, deadline).map_err(|e| Error::io("poll", e))?;
        let ready: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
        drop(fds);
        if !ready[0].is_empty() {
            return Ok(End::Stopped);
        }

        if !ready[1].is_empty() {
            if !receive {
                // --send-only, connected: the only news can be an error (say, refused).
                if let Some(e) = socket2::SockRef::from(socket).take_error().map_err(fail)? {
                    return Err(fail(e));
                }
            }
            for _ in 0..if receive { RECVS_PER_WAKE } else { 0 } {
                let got = match socket {
                    DatagramSocket::Udp(s) if connected => s.recv(&mut buf).map(|n| (n, None)),
                    DatagramSocket::Unix(s) if connected => s.recv(&mut buf).map(|n| (n, None)),
                    _ => socket.recv_from(&mut buf).map(|(n, p)| (n, Some(p))),
                };
                let (n, from) = match got {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if connected => return Err(fail(e)),
                    // An ICMP error about one peer concerns that peer only.
                    Err(e) => {
                        tracing::warn!("{name}: {e}");
                        continue;
                    }
                };
                if let (Some(peer), Mode::Listening { access, .. }) = (&from, mode) {
                    if !access.permits(peer.ip()) {
                        tracing::info!(%peer, "ignored: denied by the access list");
                        continue;
                    }
                    remember(&mut peers, peer);
                }
                if print {
                    let datagram = &buf[..n];
                    if options.dump == Dump::Hex {
                        let mut dump = Vec::new();
                        hex_message(datagram, &mut dump);
                        emit(&mut output, &[&dump])?;
                    } else {
                        let newline: &[u8] = if needs_newline(datagram) { b"\n" } else { b"" };
                        emit(&mut output, &[datagram, newline])?;
                    }
                }
                if replies_until.is_some() {
                    replies_until = Some(Instant::now() + options.reply_wait);
                }
            }
            if !outbox.is_empty() {
                outbox.flush(socket).map_err(fail)?;
            }
        }

        if read_stdin && !ready[2].is_empty() {
            match read_input(input, &mut stdin_buf)? {
                None => {}
                Some(0) => {
                    lines.finish(&mut fresh);
                    input_open = false;
                }
                Some(n) => lines.push(&stdin_buf[..n], &mut fresh),
            }
            if connected {
                outbox
                    .queue
                    .extend(fresh.drain(..).inspect(|d| outbox.len += d.len()));
                outbox.flush(socket).map_err(fail)?;
            } else {
                let Mode::Listening { accept, .. } = mode else {
                    unreachable!()
                };
                for datagram in fresh.drain(..) {
                    broadcast(socket, &datagram, &mut peers, accept);
                }
            }
        }
    }
}

/// Puts `peer` last (most recent); forgets the oldest past [`MAX_PEERS`]. A Unix peer
/// without a name cannot be answered and is not remembered.
fn remember(peers: &mut VecDeque<Peer>, peer: &Peer) {
    if *peer == Peer::Unix(None) {
        return;
    }
    if let Some(i) = peers.iter().position(|p| p == peer) {
        peers.remove(i);
    } else {
        tracing::info!(%peer, "new peer");
    }
    peers.push_back(peer.clone());
    if peers.len() > MAX_PEERS {
        peers.pop_front();
    }
}

/// Sends a stdin line to the last peer, or to all. A peer that cannot take it now loses
/// this datagram (datagrams may be lost; the others must not wait); a peer that is gone
/// is forgotten.
fn broadcast(socket: &DatagramSocket, datagram: &[u8], peers: &mut VecDeque<Peer>, accept: Accept) {
    let targets = match accept {
        Accept::One => peers.len().saturating_sub(1)..peers.len(),
        Accept::Many => 0..peers.len(),
    };
    let mut gone = Vec::new();
    for i in targets {
        let peer = &peers[i];
        match socket.send_to(datagram, peer) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tracing::warn!(%peer, "datagram dropped: the peer's queue is full");
            }
            Err(e) => {
                tracing::warn!(%peer, "forgotten: {e}");
                gone.push(i);
            }
        }
    }
    for i in gone.into_iter().rev() {
        peers.remove(i);
    }
}

/// Datagrams waiting for a connected peer that cannot take them yet (a Unix datagram
/// peer with a full queue).
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Vec<u8>>,
    len: usize,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn flush(&mut self, socket: &DatagramSocket) -> io::Result<()> {
        while let Some(datagram) = self.queue.front() {
            let sent = match socket {
                DatagramSocket::Udp(s) => s.send(datagram),
                DatagramSocket::Unix(s) => s.send(datagram),
            };
            match sent {
                Ok(_) => {
                    self.len -= datagram.len();
                    self.queue.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
