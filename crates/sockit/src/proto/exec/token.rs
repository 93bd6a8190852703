//! The shared secret and the challenge–response that proves a client knows it: the server
//! sends random bytes, the client answers HMAC-SHA256(token, challenge), compared in
//! constant time. Reading and creating token files is the driver's ([`crate::exec::token`]).

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::message::{CHALLENGE_LEN, MAC_LEN};

/// The shared secret. Its bytes are the HMAC key, exactly as stored in the token file.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from its bytes; `None` for an empty one (no secret at all).
    pub fn new(bytes: &[u8]) -> Option<Token> {
        (!bytes.is_empty()).then(|| Token(bytes.into()))
    }

    fn mac(&self, challenge: &[u8; CHALLENGE_LEN]) -> Hmac<Sha256> {
        // HMAC takes keys of any length (long ones are hashed first): this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(challenge);
        mac
    }

    /// The client's answer to `challenge`: HMAC-SHA256(token, challenge).
    pub fn respond(&self, challenge: &[u8; CHALLENGE_LEN]) -> [u8; MAC_LEN] {
        self.mac(challenge).finalize().into_bytes().into()
    }

    /// Whether `response` answers `challenge`, compared in constant time.
    pub fn verify(&self, challenge: &[u8; CHALLENGE_LEN], response: &[u8]) -> bool {
        self.mac(challenge).verify_slice(response).is_ok()
    }
}
