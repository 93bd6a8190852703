//! The well-known ports table (what `/etc/services` answers), shipped inside the binary so
//! it works the same on every machine.
//!
//! The data is `data/services`: Debian netbase's `/etc/services`, derived from the IANA
//! registry (its header names the exact source). It is parsed once, on first use.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The table's text, in `/etc/services` format.
const SERVICES: &str = include_str!("../../data/services");

/// One line of the table: a service on one port and protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service's name (`ssh`).
    pub name: &'static str,
    /// The port number.
    pub port: u16,
    /// The transport: `tcp`, `udp`, `sctp` or `ddp`.
    pub protocol: &'static str,
    /// Other names for it (`www` for `http`).
    pub aliases: Vec<&'static str>,
    /// The comment of the line, if any.
    pub description: Option<&'static str>,
}

/// What to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// One port number.
    Port(u16),
    /// An inclusive range of port numbers.
    Range(u16, u16),
    /// A service name or alias, case-insensitive.
    Name(String),
}

/// A query that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port query {input:?}: {reason}")]
pub struct QueryError {
    input: String,
    reason: &'static str,
}

impl FromStr for Query {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Query, QueryError> {
        let bad = |reason| QueryError {
            input: s.to_owned(),
            reason,
        };
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| bad("ports are numbers from 0 to 65535"))
        };
        if let Some((lo, hi)) = s
            .split_once('-')
            .filter(|(lo, _)| lo.bytes().all(|b| b.is_ascii_digit()) && !lo.is_empty())
        {
            let (lo, hi) = (port(lo)?, port(hi)?);
            if lo > hi {
                return Err(bad("a range goes from the lower port to the higher"));
            }
            return Ok(Query::Range(lo, hi));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            return port(s).map(Query::Port);
        }
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(bad(
                "expected a port, a range like 20-25, or a service name",
            ));
        }
        Ok(Query::Name(s.to_ascii_lowercase()))
    }
}

impl Service {
    fn matches(&self, query: &Query) -> bool {
        match query {
            Query::Port(p) => self.port == *p,
            Query::Range(lo, hi) => (*lo..=*hi).contains(&self.port),
            Query::Name(n) => {
                self.name.eq_ignore_ascii_case(n)
                    || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
            }
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.port, self.protocol, self.name)
    }
}

/// The whole table, in port order (then protocol).
pub fn table() -> &'static [Service] {
    static TABLE: OnceLock<Vec<Service>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut services: Vec<Service> = SERVICES.lines().filter_map(parse_line).collect();
        services.sort_by(|a, b| (a.port, a.protocol).cmp(&(b.port, b.protocol)));
        services
    })
}

/// Every entry matching `query`, in port order.
pub fn lookup(query: &Query) -> Vec<&'static Service> {
    table().iter().filter(|s| s.matches(query)).collect()
}

/// The service name of `port` over `protocol` (`"tcp"`, `"udp"`), if the table has one.
pub fn name_of(port: u16, protocol: &str) -> Option<&'static str> {
    table()
        .iter()
        .find(|s| s.port == port && s.protocol == protocol)
        .map(|s| s.name)
}

/// `name  port/proto  [aliases...]  [# comment]`; blank lines and comments give `None`.
fn parse_line(line: &'static str) -> Option<Service> {
    let (fields, comment) = match line.split_once('#') {
        Some((f, c)) => (f, Some(c.trim()).filter(|c| !c.is_empty())),
        None => (line, None),
    };
    let mut words = fields.split_whitespace();
    let name = words.next()?;
    let (port, protocol) = words.next()?.split_once('/')?;
    Some(Service {
        name,
        port: port.parse().ok()?,
        protocol,
        aliases: words.collect(),
        description: comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorials_ports_are_all_there() {
        for (port, name) in [
            (20, "ftp-data"),
            (21, "ftp"),
            (22, "ssh"),
            (25, "smtp"),
            (80, "http"),
            (443, "https"),
            (3306, "mysql"),
        ] {
            assert_eq!(name_of(port, "tcp"), Some(name), "{port}");
        }
    }

    #[test]
    fn queries_by_number_name_alias_and_range() {
        let http: Vec<String> = lookup(&"HTTP".parse().unwrap())
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(http, ["80/tcp http"]);
        assert_eq!(lookup(&"www".parse().unwrap())[0].port, 80);
        let range = lookup(&"20-25".parse().unwrap());
        assert!(range.iter().all(|s| (20..=25).contains(&s.port)));
        assert_eq!(range.first().map(|s| s.name), Some("ftp-data"));
        assert_eq!(range.last().map(|s| s.name), Some("smtp"));
        let https = lookup(&Query::Port(443));
        assert_eq!(
            https.iter().map(|s| s.protocol).collect::<Vec<_>>(),
            ["tcp", "udp"]
        );
        assert_eq!(https[1].description, Some("HTTP/3"));
    }

    #[test]
    fn bad_queries_are_errors() {
        assert!("25-20".parse::<Query>().is_err());
        assert!("70000".parse::<Query>().is_err());
        assert!("1-99999".parse::<Query>().is_err());
        assert!("".parse::<Query>().is_err());
        assert_eq!("x-y".parse::<Query>(), Ok(Query::Name("x-y".into())));
    }

    #[test]
    fn parsing_skips_comments_and_keeps_aliases() {
        assert_eq!(parse_line("# comment"), None);
        assert_eq!(parse_line(""), None);
        let s = parse_line("smtp\t\t25/tcp\t\tmail\t# Simple Mail").unwrap();
        assert_eq!(
            (s.name, s.port, s.protocol, s.aliases, s.description),
            ("smtp", 25, "tcp", vec!["mail"], Some("Simple Mail"))
        );
    }
}
