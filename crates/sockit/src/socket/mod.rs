//! The socket layer: the bottom of sockit, the sockets every server, client, relay and
//! load generator opens, and the rules every server applies to them. It imports nothing
//! above it (no `server`, no protocol core, no driver): only [`crate::addr`] and
//! [`crate::error`].
//!
//! - [`Stream`], [`Listener`], [`DatagramSocket`]: TCP and Unix sockets behind one type
//!   each; [`Peer`]: who is on the other side.
//! - `listener`: binding (SO_REUSEADDR, SO_REUSEPORT for several loops on one port).
//! - `unix_path`: the file of a Unix socket, cleared when stale, removed when its owner
//!   goes, but only while it is still that socket.
//! - [`raise_nofile_limit`]: room for many descriptors, for servers and load generators
//!   that hold many connections.
//! - [`Shutdown`]: one handle that stops a server, observed by every model.
//! - [`AccessList`]: which client networks may connect.
//! - `gate`: admission (access list, then the connection limit) shared by every model.
//! - `tls`: TLS on any stream: [`ServerTls`], [`ClientTls`], [`TlsStream`], and
//!   [`tls_sentence`] for its errors.
//! - [`Wire`]: a connection plain or in TLS, as the relay and the transfer hold it.
//! - [`TokioStream`] and `tokio`'s accept loop: the same sockets and rules for the
//!   drivers on tokio (the `async` model, exec, chat); [`tokio_tls`]: TLS on a
//!   [`TokioStream`] for exec and chat, and [`tls_tunnel`] for their blocking clients.

pub mod access;
mod datagram;
pub(crate) mod gate;
pub(crate) mod listener;
mod nofile;
mod peer;
mod shutdown;
mod stream;
pub mod tls;
pub(crate) mod tokio;
pub mod tokio_tls;
pub(crate) mod unix_path;
mod wire;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

pub use self::tokio::TokioStream;
pub use access::{AccessList, Network};
pub use datagram::DatagramSocket;
pub use listener::Listener;
pub use nofile::raise_nofile_limit;
pub use peer::Peer;
pub use shutdown::Shutdown;
pub(crate) use shutdown::Wake;
pub use stream::Stream;
pub use tls::{
    ClientAuth, ClientOptions, ClientTls, Fingerprint, Identity, ServerTls, TlsStream, tls_sentence,
};
pub use tokio_tls::tls_tunnel;
pub use wire::Wire;

macro_rules! impl_fd {
    ($($ty:ident { $($var:ident),* }),*) => {$(
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                match self { $($ty::$var(s) => s.as_fd(),)* }
            }
        }
        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.as_fd().as_raw_fd()
            }
        }
    )*};
}
impl_fd!(
    Listener { Tcp, Unix },
    Stream { Tcp, Unix },
    DatagramSocket { Udp, Unix }
);
