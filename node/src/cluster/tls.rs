//! Certificates: the cluster CA and member certificate (rcgen), and the rustls
//! configurations for the cluster port and a TLS API listener.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use serde::{Deserialize, Serialize};

/// The name every member certificate carries; peers check it instead of addresses,
/// since one certificate serves every node of the cluster.
pub const CLUSTER_SERVER_NAME: &str = "labnode-cluster";

/// Why TLS material could not be made or loaded; each variant keeps its cause as `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("generating cluster certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file named in the configuration could not be read.
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The contents of a file named in the configuration are not usable.
    #[error("{path}: {source}")]
    InFile { path: String, source: Box<TlsError> },
    #[error("TLS configuration: {what}: {source}")]
    Pem { what: String, source: std::io::Error },
    #[error("TLS configuration: {what}: no PEM {kind} found")]
    NoPem { what: String, kind: &'static str },
    #[error("TLS configuration: {what}: {source}")]
    Certificate { what: String, source: rustls::Error },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS configuration: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("TLS configuration: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// The cluster CA and the member certificate shared by all nodes (PEM).
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what: what.to_owned(),
            kind: "certificate",
        });
    }
    Ok(certs)
}

fn key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|source| TlsError::Pem {
            what: what.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPem {
            what: what.to_owned(),
            kind: "private key",
        })
}

fn roots(pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(pem, "cluster CA")? {
        roots.add(cert).map_err(|source| TlsError::Certificate {
            what: "cluster CA".to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

impl ClusterTls {
    /// A new CA and member certificate for the cluster `cluster_id`.
    pub fn generate(cluster_id: &str) -> Result<Self, TlsError> {
        let ca = IssuingCa::generate(&format!("labnode-cluster-ca-{cluster_id}"))?;
        let (cert_pem, key_pem) = ca.issue(
            &format!("labnode-cluster-{cluster_id}"),
            vec![CLUSTER_SERVER_NAME.to_string()],
        )?;
        Ok(Self {
            ca_pem: ca.ca_pem,
            cert_pem,
            key_pem,
        })
    }

    /// Server side: present the member certificate, require a client certificate from the
    /// cluster CA or from `extra_client_ca` (the DR replication CA on a primary).
    pub fn server_config(&self, extra_client_ca: Option<&str>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut client_roots = roots(&self.ca_pem)?;
        if let Some(extra) = extra_client_ca {
            for cert in certs(extra, "replication CA")? {
                client_roots.add(cert).map_err(|source| TlsError::Certificate {
                    what: "replication CA".to_owned(),
                    source,
                })?;
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider())
            .build()
            .map_err(TlsError::from)?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::from)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                certs(&self.cert_pem, "cluster certificate")?,
                key(&self.key_pem, "cluster key")?,
            )
            .map_err(TlsError::from)?;
        Ok(Arc::new(config))
    }

    /// Client side: trust only the cluster CA, present the member certificate.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots(&self.ca_pem)?),
            provider(),
        )
        .build()
        .map_err(TlsError::from)?;
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::from)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ClusterNameVerifier { inner }))
            .with_client_auth_cert(
                certs(&self.cert_pem, "cluster certificate")?,
                key(&self.key_pem, "cluster key")?,
            )
            .map_err(TlsError::from)
    }
}

/// A certificate authority whose key is kept (PEM) so it can issue later: the
/// cluster CA at init, the DR replication CA when a primary issues secondary tokens.
#[derive(Clone, Serialize, Deserialize)]
pub struct IssuingCa {
    pub common_name: String,
    pub ca_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa")
            .field("common_name", &self.common_name)
            .finish_non_exhaustive()
    }
}

fn ca_params(common_name: &str) -> Result<rcgen::CertificateParams, TlsError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2126, 1, 1);
    Ok(params)
}

impl IssuingCa {
    /// A new self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let cert = ca_params(common_name)?.self_signed(&key)?;
        Ok(Self {
            common_name: common_name.into(),
            ca_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a certificate usable as both TLS server and client; returns (cert, key) PEM.
    pub fn issue(&self, subject: &str, dns_names: Vec<String>) -> Result<(String, String), TlsError> {
        let ca_key = rcgen::KeyPair::from_pem(&self.key_pem)?;
        // Same name and key as the stored CA certificate, so what it signs chains to it.
        let ca = ca_params(&self.common_name)?.self_signed(&ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(dns_names)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, subject);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2126, 1, 1);
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Who is on the other end of a cluster-port connection, from its client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerRole {
    /// A node of this cluster (certificate from the cluster CA).
    Member,
    /// A DR secondary, by its secondary id (certificate from the replication CA).
    DrSecondary(String),
    /// No usable certificate (a plain TLS API listener).
    Anonymous,
}

/// Subject prefix of the client certificates issued to DR secondaries.
pub const DR_SECONDARY_SUBJECT_PREFIX: &str = "dr-secondary:";

/// Classifies a verified client certificate by its issuer and subject names.
pub fn peer_role(leaf: Option<&CertificateDer<'_>>) -> PeerRole {
    let Some(leaf) = leaf else {
        return PeerRole::Anonymous;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return PeerRole::Anonymous;
    };
    let cn = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (issuer, subject) = (cn(cert.issuer()), cn(cert.subject()));
    if issuer.starts_with("labnode-replication-ca-") {
        match subject.strip_prefix(DR_SECONDARY_SUBJECT_PREFIX) {
            Some(id) => PeerRole::DrSecondary(id.to_string()),
            None => PeerRole::Anonymous,
        }
    } else if issuer.starts_with("labnode-cluster-ca-") {
        PeerRole::Member
    } else {
        PeerRole::Anonymous
    }
}

/// Verifies a peer's chain against the cluster CA under [`CLUSTER_SERVER_NAME`],
/// whatever address was dialled.
#[derive(Debug)]
struct ClusterNameVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name =
            ServerName::try_from(CLUSTER_SERVER_NAME).map_err(|e| rustls::Error::General(e.to_string()))?;
        self.inner
            .verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The rustls configuration of a `listener "tcp"` with TLS enabled.
pub fn load_listener_tls(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
    require_client_cert: bool,
    min_version: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let file_err = |path: &Path, e: TlsError| TlsError::InFile {
        path: path.display().to_string(),
        source: Box::new(e),
    };
    let chain = certs(&read(cert_file)?, "tls_cert_file").map_err(|e| file_err(cert_file, e))?;
    let private_key = key(&read(key_file)?, "tls_key_file").map_err(|e| file_err(key_file, e))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        "tls13" => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(TlsError::from)?;
    let builder = match client_ca_file {
        Some(ca_file) => {
            let mut store = RootCertStore::empty();
            for cert in certs(&read(ca_file)?, "tls_client_ca_file").map_err(|e| file_err(ca_file, e))? {
                store
                    .add(cert)
                    .map_err(|e| file_err(ca_file, TlsError::Rustls(e)))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider());
            let verifier = if require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, private_key)
        .map_err(TlsError::from)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_builds_both_sides() {
        let tls = ClusterTls::generate("test").unwrap();
        assert!(tls.ca_pem.contains("BEGIN CERTIFICATE"));
        tls.server_config(None).unwrap();
        tls.client_config().unwrap();
        let member = certs(&tls.cert_pem, "member").unwrap();
        assert_eq!(peer_role(member.first()), PeerRole::Member);
        let replication = IssuingCa::generate("labnode-replication-ca-test").unwrap();
        let (cert, _) = replication.issue("dr-secondary:dr1", vec![]).unwrap();
        let cert = certs(&cert, "secondary").unwrap();
        assert_eq!(peer_role(cert.first()), PeerRole::DrSecondary("dr1".into()));
        tls.server_config(Some(&replication.ca_pem)).unwrap();
        assert_eq!(peer_role(None), PeerRole::Anonymous);
    }
}
