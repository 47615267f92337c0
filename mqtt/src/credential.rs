//! MQTT credentials issued to a device at claim time and checked at MQTT CONNECT (MQTT 3.1.1
//! §3.1.3.5 password field): a 256-bit random secret, base64url without padding (RFC 4648 §5),
//! stored only as a salted SHA-256 (FIPS 180-4) hash.
//!
//! Why no slow KDF (bcrypt, scrypt, Argon2): those exist to slow down guessing of low-entropy,
//! human-chosen passwords. These secrets are 32 bytes from the OS-seeded CSPRNG, so a leaked
//! hash gives an attacker a 2^256 search no matter how fast each guess is; a slow KDF would only
//! cost CPU on every device connect (thousands at once after a restart). The per-credential
//! random salt keeps equal secrets from having equal hashes and defeats precomputation.

use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a secret.
pub const SECRET_BYTES: usize = 32;
/// Random bytes in a salt.
pub const SALT_BYTES: usize = 16;
/// Longest presented secret that is even hashed (a real one is 43 characters).
pub const MAX_PRESENTED: usize = 256;

/// A credential as stored: the salt and the salted hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// 16 random bytes, lowercase hex.
    pub salt: String,
    /// SHA-256(salt bytes || secret bytes), lowercase hex.
    pub hash: String,
}

fn salted_hash(salt: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

impl StoredCredential {
    /// The stored form of `secret` under `salt`.
    fn derive(salt: &[u8; SALT_BYTES], secret: &str) -> Self {
        Self {
            salt: hex::encode(salt),
            hash: hex::encode(salted_hash(salt, secret.as_bytes())),
        }
    }

    /// Whether `presented` is the secret, compared in constant time (`subtle`). A malformed
    /// stored record (bad hex, wrong lengths) or an overlong presented secret never matches.
    pub fn verify(&self, presented: &str) -> bool {
        if presented.len() > MAX_PRESENTED {
            return false;
        }
        let mut salt = [0u8; SALT_BYTES];
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(&self.salt, &mut salt).is_err()
            || hex::decode_to_slice(&self.hash, &mut hash).is_err()
        {
            return false;
        }
        bool::from(salted_hash(&salt, presented.as_bytes()).ct_eq(&hash))
    }
}

/// A new random credential: the secret (32 random bytes, base64url without padding, 43
/// characters), to be shown to the device once, and its stored form.
pub fn issue() -> (String, StoredCredential) {
    let mut rng = rand::thread_rng();
    let mut secret = [0u8; SECRET_BYTES];
    let mut salt = [0u8; SALT_BYTES];
    rng.fill_bytes(&mut secret);
    rng.fill_bytes(&mut salt);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let stored = StoredCredential::derive(&salt, &secret);
    (secret, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_hash() {
        // SHA-256(bytes 00..0f || "correct-horse-battery-staple"), computed with Python.
        let salt: [u8; 16] = core::array::from_fn(|i| i as u8);
        let c = StoredCredential::derive(&salt, "correct-horse-battery-staple");
        assert_eq!(c.salt, "000102030405060708090a0b0c0d0e0f");
        assert_eq!(
            c.hash,
            "340590c1994fa7d4ffc76678e23bd3db322a0562b3fd451b6e81399df5578bb3"
        );
        assert!(c.verify("correct-horse-battery-staple"));
        assert!(!c.verify("correct-horse-battery-stapl"));
    }

    #[test]
    fn issued_secret_verifies_and_others_do_not() {
        let (secret, stored) = issue();
        assert_eq!(secret.len(), 43);
        assert!(secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(stored.salt.len(), 32);
        assert_eq!(stored.hash.len(), 64);
        assert!(stored.verify(&secret));
        assert!(!stored.verify(""));
        assert!(!stored.verify(&secret[1..]));
        assert!(!stored.verify(&"a".repeat(10_000)));
        // The stored form never contains the secret.
        let json = serde_json::to_string(&stored).unwrap();
        assert!(!json.contains(&secret));
        assert!(!format!("{stored:?}").contains(&secret));
        // Two issues differ in secret and salt.
        let (secret2, stored2) = issue();
        assert_ne!(secret, secret2);
        assert_ne!(stored.salt, stored2.salt);
        assert!(!stored2.verify(&secret));
    }

    #[test]
    fn malformed_stored_credential_never_matches() {
        let (secret, stored) = issue();
        for bad in [
            StoredCredential {
                salt: "zz".into(),
                ..stored.clone()
            },
            StoredCredential {
                hash: stored.hash[2..].into(),
                ..stored.clone()
            },
            StoredCredential {
                salt: String::new(),
                hash: String::new(),
            },
        ] {
            assert!(!bad.verify(&secret));
        }
    }
}
