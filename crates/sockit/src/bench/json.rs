//! JSON objects for the reports of `sockit bench --json`, written key by key.
//!
//! Why not a `serde_json::Map`: it sorts its keys unless serde_json's `preserve_order`
//! feature (and with it `indexmap`) is turned on for the whole crate, and a report reads
//! best in its own order (what was run, then what happened, then latencies). Strings are
//! still escaped by serde_json; numbers are written as they are, floats to three decimals.

use std::fmt::{Display, Write};

/// A JSON object being written, key by key, in insertion order.
pub(crate) struct Object {
    buf: String,
}

impl Object {
    pub(crate) fn new() -> Object {
        Object {
            buf: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        string(&mut self.buf, key);
        self.buf.push(':');
    }

    /// A string value, escaped.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        string(&mut self.buf, value);
    }

    /// An integer value.
    pub(crate) fn num(&mut self, key: &str, value: impl Display) {
        self.key(key);
        let _ = write!(self.buf, "{value}");
    }

    /// A float with three decimals; JSON has no NaN or infinity, so those become null.
    pub(crate) fn float(&mut self, key: &str, value: f64) {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.buf, "{value:.3}");
        } else {
            self.buf.push_str("null");
        }
    }

    /// A value that is already JSON (a nested object).
    pub(crate) fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.buf.push_str(json);
    }

    pub(crate) fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

/// Writes `s` as a JSON string literal.
fn string(out: &mut String, s: &str) {
    // Serializing a `&str` cannot fail: it has no map keys or floats to reject.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_objects_with_escapes() {
        let mut inner = Object::new();
        inner.num("n", 3u64);
        let mut o = Object::new();
        o.str("path", "unix:/tmp/a \"b\"\\\n\u{1}");
        o.float("rate", 1.23456);
        o.float("bad", f64::NAN);
        o.raw("inner", &inner.finish());
        assert_eq!(
            o.finish(),
            r#"{"path":"unix:/tmp/a \"b\"\\\n\u0001","rate":1.235,"bad":null,"inner":{"n":3}}"#
        );
        assert_eq!(Object::new().finish(), "{}");
    }
}
