//! AES-256-GCM primitives and the on-disk entry format.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use rand::RngCore;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// 32 random bytes from the OS generator.
pub fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}

fn cipher(key: &[u8]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// Encrypts `plain` under `key` with `aad` bound in: `[version][nonce][ciphertext]`.
pub fn seal(key: &[u8], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = cipher(key)
        .encrypt(&nonce, Payload { msg: plain, aad })
        .expect("AES-GCM encryption cannot fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Reverses [`seal`]; `None` when the key, AAD or bytes are wrong.
pub fn open(key: &[u8], aad: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
    if key.len() != 32 || blob.len() < 1 + NONCE_LEN || blob[0] != VERSION {
        return None;
    }
    let nonce = Nonce::from_slice(&blob[1..1 + NONCE_LEN]);
    cipher(key)
        .decrypt(
            nonce,
            Payload {
                msg: &blob[1 + NONCE_LEN..],
                aad,
            },
        )
        .ok()
}

/// Encrypts a barrier entry: `[version][term u32 BE][nonce][ciphertext]`.
pub fn seal_term(term: u32, key: &[u8], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let inner = seal(key, aad, plain);
    let mut out = Vec::with_capacity(inner.len() + 4);
    out.push(VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&inner[1..]);
    out
}

/// The key term a barrier entry was written under.
pub fn term_of(blob: &[u8]) -> Option<u32> {
    (blob.len() > 5 && blob[0] == VERSION).then(|| u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
}

/// Decrypts a barrier entry with its term's key.
pub fn open_term(key: &[u8], aad: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
    let mut inner = Vec::with_capacity(blob.len() - 4);
    inner.push(VERSION);
    inner.extend_from_slice(blob.get(5..)?);
    open(key, aad, &inner)
}

/// Serde adapter: bytes as standard base64.
pub mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes bytes as base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Reads base64 into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = random_key();
        let blob = seal_term(7, &key, b"path", b"hello");
        assert_eq!(term_of(&blob), Some(7));
        assert_eq!(open_term(&key, b"path", &blob).unwrap(), b"hello");
        assert!(open_term(&key, b"other", &blob).is_none());
        let mut bad = blob.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open_term(&key, b"path", &bad).is_none());
    }
}
