//! The JWT form of secondary activation tokens: the real single-use wrapping token
//! travels as `jti`, the primary's API address as `addr`, signed by the primary.
//!
//! Vault signs these with ES512; labnode uses ES256 (P-256, what `ring` signs),
//! which only labnode nodes ever verify.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::{Deserialize, Serialize};

/// The claims of an activation token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub accessor: String,
    pub addr: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub nbf: i64,
    #[serde(rename = "type")]
    pub token_type: String,
}

/// Why an activation token could not be signed (ring's errors are kept as they are;
/// without ring's `std` feature they are not `std::error::Error`s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    #[error("generating the token signing key: {0}")]
    GenerateKey(ring::error::Unspecified),
    #[error("token signing key: {0}")]
    SigningKey(ring::error::KeyRejected),
    #[error("{0}")]
    EncodeClaims(#[source] serde_json::Error),
    #[error("signing: {0}")]
    Sign(ring::error::Unspecified),
}

/// A new P-256 signing key (PKCS#8 DER).
pub fn generate_key() -> Result<Vec<u8>, JwtError> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map(|doc| doc.as_ref().to_vec())
        .map_err(JwtError::GenerateKey)
}

/// Signs `claims` with the PKCS#8 key.
pub fn sign(pkcs8: &[u8], claims: &Claims) -> Result<String, JwtError> {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
        .map_err(JwtError::SigningKey)?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(JwtError::EncodeClaims)?);
    let signing_input = format!("{header}.{body}");
    let sig = key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .map_err(JwtError::Sign)?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(sig.as_ref())
    ))
}

/// Whether `token` has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

/// Reads the claims without checking the signature (the secondary cannot; the primary does).
pub fn claims_unverified(token: &str) -> Option<Claims> {
    let body = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// The claims if the signature verifies under the key's public half.
pub fn verify(pkcs8: &[u8], token: &str) -> Option<Claims> {
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new()).ok()?;
    let (signing_input, sig) = token.rsplit_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref())
        .verify(signing_input.as_bytes(), &sig)
        .ok()?;
    claims_unverified(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_forgeries_do_not() {
        let key = generate_key().unwrap();
        let claims = Claims {
            accessor: "acc".into(),
            addr: "https://primary:8200".into(),
            exp: 2,
            iat: 1,
            jti: "hvs.real".into(),
            nbf: 1,
            token_type: "wrapping".into(),
        };
        let token = sign(&key, &claims).unwrap();
        assert!(looks_like_jwt(&token));
        assert_eq!(verify(&key, &token), Some(claims.clone()));
        let other = generate_key().unwrap();
        assert_eq!(verify(&other, &token), None);
        let mut forged_claims = claims.clone();
        forged_claims.jti = "hvs.other".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_body, parts[2]);
        assert_eq!(verify(&key, &forged), None);
        assert_eq!(claims_unverified(&forged).unwrap().jti, "hvs.other");
    }
}
