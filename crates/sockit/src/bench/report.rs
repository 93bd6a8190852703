//! The arithmetic of reports: failure counts by kind, latency summaries from a histogram,
//! rates, and durations written for people.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::json::Object;

/// Why a connection attempt, a connection or a message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// Nobody listening (ECONNREFUSED, or no such Unix socket file).
    Refused,
    /// No answer in time: a connect, an echo or a ping.
    Timeout,
    /// The peer reset the connection (ECONNRESET, EPIPE).
    Reset,
    /// The peer closed the connection while it was still in use.
    Closed,
    /// An echoed message differed from what was sent.
    Corrupt,
    /// A response that breaks the protocol (a head that does not parse, a bad chunk, a
    /// body longer than its Content-Length running into the next head).
    Malformed,
    /// The peer sent bytes nobody asked for.
    Unexpected,
    /// Out of file descriptors (EMFILE, ENFILE).
    NoFds,
    /// Out of local addresses or ports (EADDRNOTAVAIL).
    NoPorts,
    /// Not attempted: the run's time limit came first.
    Skipped,
    /// TLS failed: the handshake (an untrusted certificate, a server that broke it off)
    /// or a record that did not decrypt.
    Tls,
    /// Any other error.
    Other,
}

impl FailureKind {
    /// Every kind, in report order.
    pub const ALL: [FailureKind; 12] = [
        FailureKind::Refused,
        FailureKind::Timeout,
        FailureKind::Reset,
        FailureKind::Closed,
        FailureKind::Corrupt,
        FailureKind::Malformed,
        FailureKind::Unexpected,
        FailureKind::NoFds,
        FailureKind::NoPorts,
        FailureKind::Skipped,
        FailureKind::Tls,
        FailureKind::Other,
    ];

    /// The kind's name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Refused => "refused",
            FailureKind::Timeout => "timeout",
            FailureKind::Reset => "reset",
            FailureKind::Closed => "closed",
            FailureKind::Corrupt => "corrupt",
            FailureKind::Malformed => "malformed",
            FailureKind::Unexpected => "unexpected",
            FailureKind::NoFds => "no_fds",
            FailureKind::NoPorts => "no_ports",
            FailureKind::Skipped => "skipped",
            FailureKind::Tls => "tls",
            FailureKind::Other => "other",
        }
    }

    /// Classifies an OS error.
    pub fn of_io(e: &io::Error) -> FailureKind {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED | libc::ENOENT) => FailureKind::Refused,
            Some(libc::ETIMEDOUT) => FailureKind::Timeout,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => FailureKind::Reset,
            Some(libc::EMFILE | libc::ENFILE) => FailureKind::NoFds,
            Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE) => FailureKind::NoPorts,
            _ if e.kind() == io::ErrorKind::TimedOut => FailureKind::Timeout,
            // A TLS stream's records that do not decrypt, or its alerts.
            _ if e.kind() == io::ErrorKind::InvalidData => FailureKind::Tls,
            // A TLS peer that closed its socket without close_notify.
            _ if e.kind() == io::ErrorKind::UnexpectedEof => FailureKind::Closed,
            _ => FailureKind::Other,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Failures counted by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures(BTreeMap<FailureKind, u64>);

impl Failures {
    /// Counts one failure of `kind`.
    pub fn add(&mut self, kind: FailureKind) {
        self.add_n(kind, 1);
    }

    /// Counts `n` failures of `kind`.
    pub fn add_n(&mut self, kind: FailureKind, n: u64) {
        if n > 0 {
            *self.0.entry(kind).or_insert(0) += n;
        }
    }

    /// How many failures of `kind`.
    pub fn count(&self, kind: FailureKind) -> u64 {
        self.0.get(&kind).copied().unwrap_or(0)
    }

    /// All failures, of every kind.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Adds another set of counts to this one.
    pub fn merge(&mut self, other: &Failures) {
        for (&kind, &n) in &other.0 {
            self.add_n(kind, n);
        }
    }

    /// The non-zero counts, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (FailureKind, u64)> + '_ {
        self.0.iter().map(|(&k, &n)| (k, n))
    }

    pub(crate) fn to_json(&self) -> String {
        let mut o = Object::new();
        for (kind, n) in self.iter() {
            o.num(kind.name(), n);
        }
        o.finish()
    }
}

impl fmt::Display for Failures {
    /// `0`, or `3 (refused 2, reset 1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.total())?;
        let mut sep = " (";
        for (kind, n) in self.iter() {
            write!(f, "{sep}{kind} {n}")?;
            sep = ", ";
        }
        if sep == ", " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A latency distribution in a few numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// How many samples.
    pub count: u64,
    /// The fastest.
    pub min: Duration,
    /// The arithmetic mean.
    pub mean: Duration,
    /// The median.
    pub p50: Duration,
    /// 90th percentile (what wrk and wrk2 print beside the median).
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// The slowest.
    pub max: Duration,
}

/// Latency samples in nanoseconds, 3 significant digits, up to a minute.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

impl Latency {
    /// Summarises a histogram of nanoseconds; an empty one gives all zeros.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ns = Duration::from_nanos;
        Latency {
            count: h.len(),
            min: ns(h.min()),
            mean: ns(h.mean().round() as u64),
            p50: ns(h.value_at_quantile(0.50)),
            p90: ns(h.value_at_quantile(0.90)),
            p99: ns(h.value_at_quantile(0.99)),
            p999: ns(h.value_at_quantile(0.999)),
            max: ns(h.max()),
        }
    }

    pub(crate) fn to_json(self) -> String {
        let mut o = Object::new();
        let ns = |d: Duration| d.as_nanos() as u64;
        o.num("count", self.count);
        o.num("min", ns(self.min));
        o.num("mean", ns(self.mean));
        o.num("p50", ns(self.p50));
        o.num("p90", ns(self.p90));
        o.num("p99", ns(self.p99));
        o.num("p999", ns(self.p999));
        o.num("max", ns(self.max));
        o.finish()
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return f.write_str("no samples");
        }
        write!(
            f,
            "p50 {}  p99 {}  p99.9 {}  max {}  (mean {})",
            format_duration(self.p50),
            format_duration(self.p99),
            format_duration(self.p999),
            format_duration(self.max),
            format_duration(self.mean),
        )
    }
}

/// `count` per second over `over`; zero for an empty interval.
pub(crate) fn per_sec(count: f64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 { count / secs } else { 0.0 }
}

/// A duration with three significant digits and a fitting unit: `812ns`, `12.3µs`,
/// `1.20ms`, `2.50s`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    if unit == "ns" || value >= 100.0 {
        format!("{value:.0}{unit}")
    } else if value >= 10.0 {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.2}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_merge_and_print() {
        let mut a = Failures::default();
        assert_eq!(a.to_string(), "0");
        assert_eq!(a.to_json(), "{}");
        a.add(FailureKind::Reset);
        a.add_n(FailureKind::Refused, 2);
        a.add_n(FailureKind::Other, 0);
        let mut b = Failures::default();
        b.add(FailureKind::Reset);
        a.merge(&b);
        assert_eq!(a.total(), 4);
        assert_eq!(a.count(FailureKind::Reset), 2);
        assert_eq!(a.count(FailureKind::Other), 0);
        assert_eq!(a.to_string(), "4 (refused 2, reset 2)");
        assert_eq!(a.to_json(), r#"{"refused":2,"reset":2}"#);
    }

    #[test]
    fn io_errors_are_classified() {
        let kind = |code| FailureKind::of_io(&io::Error::from_raw_os_error(code));
        assert_eq!(kind(libc::ECONNREFUSED), FailureKind::Refused);
        assert_eq!(kind(libc::ENOENT), FailureKind::Refused);
        assert_eq!(kind(libc::EPIPE), FailureKind::Reset);
        assert_eq!(kind(libc::EMFILE), FailureKind::NoFds);
        assert_eq!(kind(libc::EADDRNOTAVAIL), FailureKind::NoPorts);
        assert_eq!(kind(libc::EINVAL), FailureKind::Other);
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "x");
        assert_eq!(FailureKind::of_io(&timed_out), FailureKind::Timeout);
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let mut h = new_histogram();
        // 1..=1000 µs, once each: the median is 500 µs, p99 990 µs, within 0.1%.
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::from_histogram(&h);
        let near = |d: Duration, us: f64| {
            let got = d.as_nanos() as f64 / 1000.0;
            assert!((got - us).abs() <= us * 0.001 + 0.001, "{got} vs {us}");
        };
        assert_eq!(l.count, 1000);
        near(l.min, 1.0);
        near(l.p50, 500.0);
        near(l.p99, 990.0);
        near(l.p999, 999.0);
        near(l.max, 1000.0);
        near(l.mean, 500.5);
        assert_eq!(
            Latency::from_histogram(&new_histogram()),
            Latency::default()
        );
        assert_eq!(Latency::default().to_string(), "no samples");
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(per_sec(500.0, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_sec(5.0, Duration::ZERO), 0.0);
        let d = |ns| format_duration(Duration::from_nanos(ns));
        assert_eq!(d(812), "812ns");
        assert_eq!(d(12_345), "12.3µs");
        assert_eq!(d(1_204_000), "1.20ms");
        assert_eq!(d(123_400_000), "123ms");
        assert_eq!(d(2_500_000_000), "2.50s");
    }
}
