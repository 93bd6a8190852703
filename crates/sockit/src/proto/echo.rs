//! The echo protocol: send back what arrived, optionally upper-cased ("send back
//! data.upper()"), over streams and datagrams alike; an empty datagram is echoed too.

use crate::server::{DatagramService, Flow, Handler, Output, Reply, Service};
use crate::socket::Peer;

/// An echo server; with `upper`, ASCII letters come back upper-cased (other bytes as sent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo {
    /// Upper-case ASCII letters in the reply.
    pub upper: bool,
}

impl Echo {
    fn reply(&self, data: &[u8], out: &mut Vec<u8>) {
        if self.upper {
            out.extend(data.iter().map(u8::to_ascii_uppercase));
        } else {
            out.extend_from_slice(data);
        }
    }
}

impl Handler for Echo {
    fn on_data(&mut self, data: &[u8], out: &mut Output) -> Flow {
        self.reply(data, out);
        Flow::Continue
    }
}

impl Service for Echo {
    type Handler = Echo;

    fn handler(&self, _peer: &Peer) -> Echo {
        *self
    }
}

impl DatagramService for Echo {
    fn on_datagram(&self, data: &[u8], _peer: &Peer, out: &mut Vec<u8>) -> Reply {
        self.reply(data, out);
        Reply::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_and_upper_cases_only_ascii_letters() {
        let mut out = Output::new();
        assert_eq!(
            Echo { upper: false }.on_data(b"ab\xff", &mut out),
            Flow::Continue
        );
        assert_eq!(*out, b"ab\xff");
        let mut out = Vec::new();
        let reply =
            Echo { upper: true }.on_datagram("héllo 1".as_bytes(), &Peer::Unix(None), &mut out);
        assert_eq!((reply, &out[..]), (Reply::Send, "HéLLO 1".as_bytes()));
        out.clear();
        let reply = Echo { upper: false }.on_datagram(b"", &Peer::Unix(None), &mut out);
        assert_eq!((reply, &out[..]), (Reply::Send, &b""[..]));
    }
}
