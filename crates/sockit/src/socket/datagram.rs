//! [`DatagramSocket`]: one bound datagram socket, UDP or Unix, behind one type.

use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;

use super::Peer;

/// A bound datagram socket.
#[derive(Debug)]
pub enum DatagramSocket {
    /// UDP.
    Udp(UdpSocket),
    /// Unix datagram.
    Unix(UnixDatagram),
}

impl DatagramSocket {
    /// Receives one datagram and who sent it.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Peer)> {
        match self {
            DatagramSocket::Udp(s) => s.recv_from(buf).map(|(n, a)| (n, Peer::Inet(a))),
            DatagramSocket::Unix(s) => s.recv_from(buf).map(|(n, a)| (n, Peer::from_unix(&a))),
        }
    }

    /// Sends one datagram to `peer`; an unnamed Unix peer cannot be answered.
    pub fn send_to(&self, buf: &[u8], peer: &Peer) -> io::Result<usize> {
        match (self, peer) {
            (DatagramSocket::Udp(s), Peer::Inet(a)) => s.send_to(buf, a),
            (DatagramSocket::Unix(s), Peer::Unix(Some(p))) => s.send_to(buf, p),
            _ => Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("cannot reply to {peer}"),
            )),
        }
    }

    /// Blocking or non-blocking I/O.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            DatagramSocket::Udp(s) => s.set_nonblocking(on),
            DatagramSocket::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Another handle on the same socket (a `dup`).
    pub fn try_clone(&self) -> io::Result<DatagramSocket> {
        Ok(match self {
            DatagramSocket::Udp(s) => DatagramSocket::Udp(s.try_clone()?),
            DatagramSocket::Unix(s) => DatagramSocket::Unix(s.try_clone()?),
        })
    }
}
