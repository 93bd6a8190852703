//! Deterministic message payloads that cost nothing to make or check.
//!
//! Every message is a window into one pseudo-random pattern, starting at an offset
//! derived from (connection, sequence number). Sending is a slice of the pattern (no
//! per-message generation) and checking an echo is a `memcmp` against the same slice.
//! Consecutive messages start at different offsets, so a byte echoed on the wrong
//! connection, twice, or out of order shows up as a mismatch.

/// Distinct window offsets; the pattern is this much longer than one message.
const OFFSETS: usize = 256;

/// The pattern messages are cut from.
#[derive(Debug)]
pub(crate) struct Pattern {
    bytes: Vec<u8>,
    size: usize,
}

impl Pattern {
    /// A pattern for messages of `size` bytes.
    pub(crate) fn new(size: usize) -> Pattern {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let bytes = (0..size + OFFSETS)
            .map(|_| {
                // xorshift64: fast, and no short period to hide a shifted window.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Pattern { bytes, size }
    }

    /// Where message `seq` of connection `conn` starts in the pattern.
    pub(crate) fn offset(conn: u64, seq: u64) -> u32 {
        // splitmix64's finaliser: adjacent inputs land far apart.
        let mut z = (conn << 40 ^ seq).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % OFFSETS as u64) as u32
    }

    /// The whole message starting at `offset`.
    pub(crate) fn message(&self, offset: u32) -> &[u8] {
        let start = offset as usize;
        &self.bytes[start..start + self.size]
    }

    /// Message bytes `from..from + len` of the message at `offset`.
    pub(crate) fn part(&self, offset: u32, from: usize, len: usize) -> &[u8] {
        let start = offset as usize + from;
        &self.bytes[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_windows_that_differ_between_neighbours() {
        let p = Pattern::new(64);
        let a = Pattern::offset(1, 0);
        let b = Pattern::offset(1, 1);
        assert!(a < OFFSETS as u32);
        assert_eq!(p.message(a).len(), 64);
        assert_eq!(p.part(a, 10, 5), &p.message(a)[10..15]);
        // Consecutive offsets are rarely equal, and never all the same.
        let distinct: std::collections::HashSet<u32> =
            (0..100).map(|s| Pattern::offset(7, s)).collect();
        assert!(distinct.len() > 50, "{}", distinct.len());
        if a != b {
            assert_ne!(p.message(a), p.message(b));
        }
    }
}
