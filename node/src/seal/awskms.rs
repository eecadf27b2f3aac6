//! The `awskms` auto-unseal seal: envelope encryption under an AWS KMS key.
//!
//! KMS never sees the protected bytes. Each [`AwsKms::encrypt`] draws a fresh 32-byte data
//! key, seals the payload with AES-256-GCM, and asks KMS (`Encrypt`) to wrap only the data
//! key; [`AwsKms::decrypt`] unwraps it with KMS `Decrypt`. This mirrors Vault's awskms
//! wrapper, so payloads of any size cost one small KMS call.
//!
//! Dependencies: `aws-sdk-kms` + `aws-config` (about 25 s of one core, debug). The SDK is
//! worth that here because `aws-config` brings the whole standard region and credential
//! chain (env, shared files, web identity, instance role, IMDS) that an operator expects
//! from an AWS seal, and rebuilding it by hand would be larger and less trustworthy.
//!
//! # Blob format (version 1)
//!
//! ```text
//! [0x01]                          version
//! [u16 BE][key id, UTF-8]         the key that wrapped the data key (ARN from KMS Encrypt)
//! [u32 BE][wrapped data key]      KMS CiphertextBlob
//! [12 bytes]                      AES-GCM nonce
//! [rest]                          AES-256-GCM ciphertext || 16-byte tag
//! ```
//!
//! The version byte and the key id are bound in as AES-GCM associated data, so a blob whose
//! header was edited fails to open even if KMS would unwrap its data key.

use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::web_identity_token::{StaticConfiguration, WebIdentityTokenCredentialsProvider};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyState;
use rand::RngCore;
use zeroize::Zeroizing;

use labnode_config::AwsKmsConfig;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const DATA_KEY_LEN: usize = 32;
/// Region used when nothing else names one, as Vault does.
const DEFAULT_REGION: &str = "us-east-1";
/// An unreachable KMS must fail the seal in seconds, not hang startup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the awskms seal could not reach, verify or use its key; every variant names the key
/// id and the endpoint so an operator knows which KMS to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// No key id in the config nor in AWSKMS_WRAPPER_KEY_ID / VAULT_AWSKMS_SEAL_KEY_ID.
    #[error(
        "seal \"awskms\": no kms_key_id (set it in the seal stanza, \
         AWSKMS_WRAPPER_KEY_ID or VAULT_AWSKMS_SEAL_KEY_ID)"
    )]
    MissingKeyId,
    /// The KMS endpoint did not answer (connection refused, DNS, TLS or timeout).
    #[error("awskms: KMS endpoint {endpoint} unreachable while using key {key_id}: {reason}")]
    Unreachable {
        key_id: String,
        endpoint: String,
        reason: String,
    },
    /// KMS says the key does not exist (wrong id, alias, region or account).
    #[error("awskms: key {key_id} not found at {endpoint}")]
    KeyNotFound { key_id: String, endpoint: String },
    /// The key exists but cannot be used (disabled, pending deletion, ...).
    #[error("awskms: key {key_id} at {endpoint} is not usable: key state is {state}, expected Enabled")]
    KeyNotEnabled {
        key_id: String,
        endpoint: String,
        state: String,
    },
    /// Any other KMS refusal (access denied, wrong key for a ciphertext, throttling, ...).
    #[error("awskms: KMS {operation} with key {key_id} at {endpoint} failed: {reason}")]
    Kms {
        operation: &'static str,
        key_id: String,
        endpoint: String,
        reason: String,
    },
    /// The bytes handed to [`AwsKms::decrypt`] are not a blob this module wrote.
    #[error("awskms: malformed sealed blob: {0}")]
    MalformedBlob(String),
    /// AES-GCM refuses payloads beyond its limit (about 64 GiB).
    #[error("awskms: payload of {0} bytes is too large to seal")]
    PayloadTooLarge(usize),
    /// The payload did not authenticate under the unwrapped data key (tampered or foreign blob).
    #[error("awskms: sealed blob does not authenticate under the key {key_id} unwrapped")]
    Authentication { key_id: String },
}

/// A verified handle on one KMS key; cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    key_id: String,
    endpoint: String,
}

impl AwsKms {
    /// Resolves region, endpoint, credentials and key id, then checks with `DescribeKey` that
    /// the key exists and is Enabled, so a bad seal stanza fails at startup instead of at
    /// the first unseal.
    pub async fn connect(cfg: &AwsKmsConfig) -> Result<AwsKms, KmsError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let key_id = env("AWSKMS_WRAPPER_KEY_ID")
            .or_else(|| env("VAULT_AWSKMS_SEAL_KEY_ID"))
            .or_else(|| cfg.kms_key_id.clone().filter(|v| !v.is_empty()))
            .ok_or(KmsError::MissingKeyId)?;
        let endpoint_override = env("AWS_KMS_ENDPOINT").or_else(|| cfg.endpoint.clone());

        // config → AWS_REGION → AWS_DEFAULT_REGION → ~/.aws/config → IMDS → us-east-1. An
        // explicit region short-circuits the chain, so IMDS is never consulted then.
        let region = RegionProviderChain::first_try(cfg.region.clone().map(Region::new))
            .or_default_provider()
            .region()
            .await
            .unwrap_or_else(|| Region::from_static(DEFAULT_REGION));
        let endpoint = endpoint_override
            .clone()
            .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region.clone())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(profile) = &cfg.shared_creds_profile {
            loader = loader.profile_name(profile);
        }
        if let Some(file) = &cfg.shared_creds_filename {
            loader = loader.profile_files(
                EnvConfigFiles::builder()
                    .include_default_config_file(true)
                    .with_file(EnvConfigFileKind::Credentials, file)
                    .build(),
            );
        }
        match (
            &cfg.access_key,
            &cfg.secret_key,
            &cfg.role_arn,
            &cfg.web_identity_token_file,
        ) {
            (Some(access), Some(secret), _, _) => {
                loader = loader.credentials_provider(Credentials::new(
                    access,
                    secret,
                    cfg.session_token.clone(),
                    None,
                    "labnode-seal-awskms",
                ));
            }
            (_, _, Some(role_arn), Some(token_file)) => {
                let provider = WebIdentityTokenCredentialsProvider::builder()
                    .configure(
                        &aws_config::provider_config::ProviderConfig::default()
                            .with_region(Some(region.clone())),
                    )
                    .static_configuration(StaticConfiguration {
                        web_identity_token_file: token_file.into(),
                        role_arn: role_arn.clone(),
                        session_name: cfg
                            .role_session_name
                            .clone()
                            .unwrap_or_else(|| "labnode-seal-awskms".to_owned()),
                    })
                    .build();
                loader = loader.credentials_provider(provider);
            }
            _ => {}
        }
        let shared = loader.load().await;
        let mut kms_config = aws_sdk_kms::config::Builder::from(&shared);
        if let Some(url) = &endpoint_override {
            kms_config = kms_config.endpoint_url(url);
        }
        let kms = AwsKms {
            client: aws_sdk_kms::Client::from_conf(kms_config.build()),
            key_id,
            endpoint,
        };
        kms.verify_key().await?;
        tracing::debug!(key_id = %kms.key_id, endpoint = %kms.endpoint, %region, "awskms seal key verified");
        Ok(kms)
    }

    /// The key id as configured (id, ARN or alias); new blobs are wrapped under it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `plaintext` under a fresh data key that KMS wraps; see the module doc for the
    /// blob layout.
    pub async fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        OsRng.fill_bytes(data_key.as_mut());
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(data_key.to_vec()))
            .send()
            .await
            .map_err(|e| self.sdk_error("Encrypt", &self.key_id, e))?;
        let wrapped_key = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| self.missing_field("Encrypt", "CiphertextBlob"))?;
        let key_id = out.key_id().unwrap_or(&self.key_id).to_owned();
        let (nonce, ciphertext) = seal_payload(data_key.as_ref(), &key_id, plaintext)?;
        Ok(SealedBlob {
            key_id,
            wrapped_key,
            nonce,
            ciphertext,
        }
        .to_bytes())
    }

    /// Opens a blob written by [`AwsKms::encrypt`]: KMS unwraps the data key (under the key id
    /// recorded in the blob), then AES-GCM authenticates and decrypts the payload.
    pub async fn decrypt(&self, blob: &[u8]) -> Result<Vec<u8>, KmsError> {
        let sealed = SealedBlob::parse(blob)?;
        let out = self
            .client
            .decrypt()
            .key_id(&sealed.key_id)
            .ciphertext_blob(Blob::new(sealed.wrapped_key.clone()))
            .send()
            .await
            .map_err(|e| self.sdk_error("Decrypt", &sealed.key_id, e))?;
        let data_key = Zeroizing::new(
            out.plaintext()
                .map(|b| b.as_ref().to_vec())
                .ok_or_else(|| self.missing_field("Decrypt", "Plaintext"))?,
        );
        open_payload(&data_key, &sealed)
    }

    /// `DescribeKey`: the key must exist and be Enabled.
    async fn verify_key(&self) -> Result<(), KmsError> {
        let out = self
            .client
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| self.sdk_error("DescribeKey", &self.key_id, e))?;
        let state = out.key_metadata().and_then(|m| m.key_state());
        match state {
            Some(KeyState::Enabled) => Ok(()),
            other => Err(KmsError::KeyNotEnabled {
                key_id: self.key_id.clone(),
                endpoint: self.endpoint.clone(),
                state: other.map_or("unknown", |s| s.as_str()).to_owned(),
            }),
        }
    }

    /// Sorts an SDK failure into the variant an operator can act on.
    fn sdk_error<E, R>(&self, operation: &'static str, key_id: &str, err: SdkError<E, R>) -> KmsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let key_id = key_id.to_owned();
        let endpoint = self.endpoint.clone();
        if matches!(err, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) {
            return KmsError::Unreachable {
                key_id,
                endpoint,
                reason: DisplayErrorContext(&err).to_string(),
            };
        }
        match err.code() {
            Some("NotFoundException") => KmsError::KeyNotFound { key_id, endpoint },
            Some("DisabledException") => KmsError::KeyNotEnabled {
                key_id,
                endpoint,
                state: "Disabled".to_owned(),
            },
            Some("KMSInvalidStateException") => KmsError::KeyNotEnabled {
                key_id,
                endpoint,
                state: err.message().unwrap_or("invalid state").to_owned(),
            },
            _ => KmsError::Kms {
                operation,
                key_id,
                endpoint,
                reason: DisplayErrorContext(&err).to_string(),
            },
        }
    }

    fn missing_field(&self, operation: &'static str, field: &str) -> KmsError {
        KmsError::Kms {
            operation,
            key_id: self.key_id.clone(),
            endpoint: self.endpoint.clone(),
            reason: format!("response has no {field}"),
        }
    }
}

/// The parsed form of the blob described in the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SealedBlob {
    key_id: String,
    wrapped_key: Vec<u8>,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl SealedBlob {
    fn to_bytes(&self) -> Vec<u8> {
        let key_id = self.key_id.as_bytes();
        let mut out = Vec::with_capacity(
            1 + 2 + key_id.len() + 4 + self.wrapped_key.len() + NONCE_LEN + self.ciphertext.len(),
        );
        out.push(VERSION);
        // KMS key ARNs are < 300 bytes and wrapped keys < 6 KiB, far inside these widths.
        out.extend_from_slice(&(key_id.len() as u16).to_be_bytes());
        out.extend_from_slice(key_id);
        out.extend_from_slice(&(self.wrapped_key.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    fn parse(blob: &[u8]) -> Result<SealedBlob, KmsError> {
        let bad = |what: &str| KmsError::MalformedBlob(what.to_owned());
        let (&version, rest) = blob.split_first().ok_or_else(|| bad("empty"))?;
        if version != VERSION {
            return Err(KmsError::MalformedBlob(format!(
                "unknown version {version} (this build reads version {VERSION})"
            )));
        }
        let (len, rest) = take(rest, 2).ok_or_else(|| bad("truncated key id length"))?;
        let (key_id, rest) = take(rest, usize::from(u16::from_be_bytes([len[0], len[1]])))
            .ok_or_else(|| bad("truncated key id"))?;
        let key_id = std::str::from_utf8(key_id).map_err(|_| bad("key id is not UTF-8"))?;
        if key_id.is_empty() {
            return Err(bad("empty key id"));
        }
        let (len, rest) = take(rest, 4).ok_or_else(|| bad("truncated wrapped key length"))?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (wrapped_key, rest) = take(rest, len).ok_or_else(|| bad("truncated wrapped key"))?;
        if wrapped_key.is_empty() {
            return Err(bad("empty wrapped key"));
        }
        let (nonce, ciphertext) = take(rest, NONCE_LEN).ok_or_else(|| bad("truncated nonce"))?;
        if ciphertext.len() < 16 {
            return Err(bad("ciphertext shorter than the AES-GCM tag"));
        }
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(nonce);
        Ok(SealedBlob {
            key_id: key_id.to_owned(),
            wrapped_key: wrapped_key.to_vec(),
            nonce: nonce_bytes,
            ciphertext: ciphertext.to_vec(),
        })
    }
}

/// Splits `n` bytes off the front, or `None` when fewer remain.
fn take(bytes: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (bytes.len() >= n).then(|| bytes.split_at(n))
}

/// Associated data: the version and key id, so header edits break authentication.
fn aad(key_id: &str) -> Vec<u8> {
    let mut aad = vec![VERSION];
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

/// AES-256-GCM under `data_key` with a random nonce.
fn seal_payload(
    data_key: &[u8],
    key_id: &str,
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), KmsError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = aad(key_id);
    let ciphertext = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(data_key))
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| KmsError::PayloadTooLarge(plaintext.len()))?;
    Ok((nonce.into(), ciphertext))
}

/// Reverses [`seal_payload`]; fails unless key, header and bytes are all genuine.
fn open_payload(data_key: &[u8], sealed: &SealedBlob) -> Result<Vec<u8>, KmsError> {
    let failed = || KmsError::Authentication {
        key_id: sealed.key_id.clone(),
    };
    let cipher = Aes256Gcm::new_from_slice(data_key).map_err(|_| failed())?;
    let aad = aad(&sealed.key_id);
    cipher
        .decrypt(
            Nonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| failed())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ID: &str = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn sample(plaintext: &[u8]) -> (Vec<u8>, SealedBlob) {
        let data_key = [7u8; DATA_KEY_LEN];
        let (nonce, ciphertext) = seal_payload(&data_key, KEY_ID, plaintext).unwrap();
        let sealed = SealedBlob {
            key_id: KEY_ID.to_owned(),
            wrapped_key: vec![0xAA; 184],
            nonce,
            ciphertext,
        };
        (data_key.to_vec(), sealed)
    }

    #[test]
    fn blob_round_trip() {
        let (data_key, sealed) = sample(b"root key material");
        let bytes = sealed.to_bytes();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(&bytes[1..3], &(KEY_ID.len() as u16).to_be_bytes());
        assert_eq!(&bytes[3..3 + KEY_ID.len()], KEY_ID.as_bytes());
        let parsed = SealedBlob::parse(&bytes).unwrap();
        assert_eq!(parsed, sealed);
        assert_eq!(open_payload(&data_key, &parsed).unwrap(), b"root key material");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let (data_key, sealed) = sample(b"");
        let parsed = SealedBlob::parse(&sealed.to_bytes()).unwrap();
        assert_eq!(open_payload(&data_key, &parsed).unwrap(), b"");
    }

    #[test]
    fn nonces_differ_between_seals() {
        let (_, a) = sample(b"x");
        let (_, b) = sample(b"x");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let (_, sealed) = sample(b"payload");
        let bytes = sealed.to_bytes();
        for len in 0..bytes.len() - "payload".len() {
            assert!(
                matches!(SealedBlob::parse(&bytes[..len]), Err(KmsError::MalformedBlob(_))),
                "prefix of {len} bytes accepted"
            );
        }
    }

    #[test]
    fn unknown_version_is_rejected() {
        let (_, sealed) = sample(b"payload");
        let mut bytes = sealed.to_bytes();
        bytes[0] = 2;
        let err = SealedBlob::parse(&bytes).unwrap_err();
        assert!(err.to_string().contains("unknown version 2"), "{err}");
    }

    #[test]
    fn tampering_fails_authentication() {
        let (data_key, sealed) = sample(b"payload");
        let mut flipped = sealed.clone();
        *flipped.ciphertext.last_mut().unwrap() ^= 1;
        assert!(matches!(
            open_payload(&data_key, &flipped),
            Err(KmsError::Authentication { .. })
        ));
        let mut renamed = sealed.clone();
        renamed.key_id = "alias/other".to_owned();
        assert!(open_payload(&data_key, &renamed).is_err());
        assert!(open_payload(&[8u8; DATA_KEY_LEN], &sealed).is_err());
        assert!(open_payload(&[7u8; 16], &sealed).is_err());
    }
}
