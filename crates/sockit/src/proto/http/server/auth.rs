//! HTTP Basic authentication for `http serve --auth/--auth-file`: the users and their
//! secrets, and the verdict on a request's `Authorization` header.
//!
//! Secrets are plain passwords given on the command line (kept only as their SHA-256,
//! compared in constant time) or hashes from a file, one `user:hash` per line: argon2
//! (`$argon2id$...`, the PHC string `argon2`/`argon2-cffi` write) or bcrypt (`$2b$...`,
//! what `htpasswd -B` writes). A request naming an unknown user is checked against the
//! first user's secret all the same, so the time taken does not tell which names exist,
//! and an attacker pays a hash for every guess.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::proto::http::basic_credentials;

/// The `WWW-Authenticate` challenge sent with every 401.
pub const CHALLENGE: &str = "Basic realm=\"sockit\", charset=\"UTF-8\"";

/// The users allowed in, with their secrets. Empty means nobody: build it with
/// [`Users::add`] and [`Users::add_file`], and serve without auth when there is none.
#[derive(Default)]
pub struct Users {
    /// Every user, in the order given; the first one's secret stands in for unknown names.
    entries: Vec<User>,
}

struct User {
    /// The user name, as the client must send it.
    name: String,
    /// What the password is checked against.
    secret: Secret,
}

enum Secret {
    /// SHA-256 of a password given on the command line: equal lengths, so comparing them
    /// in constant time says nothing about the password's length or prefix.
    Plain([u8; 32]),
    /// An argon2 PHC string, parsed once when loaded.
    Argon2(String),
    /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`).
    Bcrypt(String),
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("Users")
            .field("count", &self.entries.len())
            .finish()
    }
}

/// A `user:secret` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `:`, or an empty user name.
    #[error("expected user:password, got {0:?}")]
    Syntax(String),
    /// A user name holding a control character (it goes into log lines).
    #[error("user name {0:?} holds a control character")]
    BadName(String),
    /// An `--auth-file` line whose hash is neither argon2 nor bcrypt, or does not parse.
    #[error("line {line}: {reason}")]
    BadHash {
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a request's `Authorization` header is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right for this user.
    Allowed(String),
    /// No usable `Basic` credentials at all: 401, nothing to log.
    Missing,
    /// Credentials naming this user with a wrong password (or an unknown user): 401.
    Refused(String),
}

impl Users {
    /// Whether no user was added (auth is off).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a `user:password` given on the command line.
    pub fn add(&mut self, spec: &str) -> Result<(), AuthError> {
        let (name, password) = split_user(spec)?;
        self.entries.push(User {
            name: name.to_owned(),
            secret: Secret::Plain(Sha256::digest(password.as_bytes()).into()),
        });
        Ok(())
    }

    /// Adds the users of an auth file's text: one `user:hash` per line; blank lines and
    /// lines starting with `#` are skipped.
    pub fn add_file(&mut self, text: &str) -> Result<(), AuthError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| AuthError::BadHash {
                line: i + 1,
                reason,
            };
            let (name, hash) = split_user(line).map_err(|e| bad(e.to_string()))?;
            let secret = if hash.starts_with("$argon2") {
                argon2::PasswordHash::new(hash)
                    .map_err(|e| bad(format!("argon2 hash for {name:?}: {e}")))?;
                Secret::Argon2(hash.to_owned())
            } else if hash.starts_with("$2") {
                hash.parse::<bcrypt::HashParts>()
                    .map_err(|e| bad(format!("bcrypt hash for {name:?}: {e}")))?;
                Secret::Bcrypt(hash.to_owned())
            } else {
                return Err(bad(format!(
                    "the hash for {name:?} is neither argon2 ($argon2id$...) nor bcrypt ($2b$...)"
                )));
            };
            self.entries.push(User {
                name: name.to_owned(),
                secret,
            });
        }
        Ok(())
    }

    /// The verdict on an `Authorization` header value (or its absence).
    pub fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        let Some((name, password)) = authorization.and_then(basic_credentials) else {
            return Verdict::Missing;
        };
        // Every entry is looked at, none skipped early: which one matched is not timed.
        let mut found: Option<&User> = None;
        for u in &self.entries {
            let same: bool = u.name.as_bytes().ct_eq(name.as_bytes()).into();
            if same && found.is_none() {
                found = Some(u);
            }
        }
        let Some(first) = self.entries.first() else {
            return Verdict::Refused(name);
        };
        let ok = found.unwrap_or(first).secret.verify(password.as_bytes());
        if ok && found.is_some() {
            Verdict::Allowed(name)
        } else {
            Verdict::Refused(name)
        }
    }
}

impl Secret {
    /// Whether `password` is this secret's, at the cost of the secret's own hash.
    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Secret::Plain(digest) => {
                let given: [u8; 32] = Sha256::digest(password).into();
                given.ct_eq(digest).into()
            }
            Secret::Argon2(hash) => {
                use argon2::PasswordVerifier as _;
                argon2::Argon2::default()
                    .verify_password(password, hash.as_str())
                    .is_ok()
            }
            Secret::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        }
    }
}

/// `user` and the rest of `user:rest`; the name must be non-empty and free of controls.
fn split_user(spec: &str) -> Result<(&str, &str), AuthError> {
    let (name, rest) = spec
        .split_once(':')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| {
            AuthError::Syntax(crate::text::terminal_safe(spec.as_bytes()).into_owned())
        })?;
    if name.chars().any(char::is_control) {
        return Err(AuthError::BadName(
            crate::text::terminal_safe(name.as_bytes()).into_owned(),
        ));
    }
    Ok((name, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> Vec<u8> {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
        .into_bytes()
    }

    #[test]
    fn plain_passwords() {
        let mut u = Users::default();
        u.add("alice:s3cret:with:colons").unwrap();
        u.add("bob:x").unwrap();
        assert_eq!(
            u.check(Some(&basic("alice:s3cret:with:colons"))),
            Verdict::Allowed("alice".into())
        );
        assert_eq!(
            u.check(Some(&basic("bob:x"))),
            Verdict::Allowed("bob".into())
        );
        assert_eq!(
            u.check(Some(&basic("bob:y"))),
            Verdict::Refused("bob".into())
        );
        // Alice's password is not good for an unknown user, though it is what is checked.
        assert_eq!(
            u.check(Some(&basic("eve:s3cret:with:colons"))),
            Verdict::Refused("eve".into())
        );
        assert_eq!(u.check(None), Verdict::Missing);
        assert_eq!(u.check(Some(b"Bearer x")), Verdict::Missing);
        assert!(matches!(u.add("nocolon"), Err(AuthError::Syntax(_))));
        assert!(matches!(u.add(":pw"), Err(AuthError::Syntax(_))));
        assert!(matches!(u.add("a\x1bb:pw"), Err(AuthError::BadName(_))));
    }

    #[test]
    fn hashes_from_a_file() {
        // Made by Python's `bcrypt` and `argon2-cffi`, for the password "password".
        let text = "# users\n\nbc:$2b$05$5L3A/Z/VRgpO283Js8/cw.9AIaMwVLyQcszqA8u9oN3wqsT7MyAHa\n\
                    ar:$argon2id$v=19$m=8192,t=1,p=1$BGUtT6FyT/ghr1Ih15MEPQ$WmqPUfcPzV+R3v642ONd/gHheSlbMc9xQShmaPi1v+Y\n";
        let mut u = Users::default();
        u.add_file(text).unwrap();
        assert_eq!(
            u.check(Some(&basic("bc:password"))),
            Verdict::Allowed("bc".into())
        );
        assert_eq!(
            u.check(Some(&basic("bc:Password"))),
            Verdict::Refused("bc".into())
        );
        assert_eq!(
            u.check(Some(&basic("ar:password"))),
            Verdict::Allowed("ar".into())
        );
        assert_eq!(
            u.check(Some(&basic("ar:passwort"))),
            Verdict::Refused("ar".into())
        );
        let e = u.add_file("x:$1$md5crypt\n").unwrap_err();
        assert!(matches!(e, AuthError::BadHash { line: 1, .. }), "{e}");
        let e = u.add_file("\nx:$argon2id$garbage\n").unwrap_err();
        assert!(matches!(e, AuthError::BadHash { line: 2, .. }), "{e}");
    }
}
