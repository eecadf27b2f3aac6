//! The secondary's HTTP I/O towards its primary: unwrapping the activation token on
//! the primary's API, and the mutually authenticated client for its cluster port.
//! Reading the token's claims and the unwrapped answer are plain functions.

use std::time::Duration;

use serde_json::Value;

use super::jwt::{self, Claims};
use super::{ReplicationError, SecondaryState};
use crate::cluster::ClusterTls;

/// Reads an activation token's claims and refuses it when it is expired at `now`
/// (seconds since the epoch); only the primary can check its signature.
pub(super) fn activation_claims(token: &str, now: i64) -> Result<Claims, ReplicationError> {
    let claims = jwt::claims_unverified(token).ok_or(ReplicationError::TokenNotJwt)?;
    if claims.exp <= now {
        return Err(ReplicationError::TokenExpired);
    }
    Ok(claims)
}

/// The primary's API address: the operator's override, else the token's `addr`.
pub(super) fn unwrap_addr(primary_api_addr: Option<&str>, claims: &Claims) -> String {
    primary_api_addr
        .filter(|a| !a.is_empty())
        .unwrap_or(&claims.addr)
        .trim_end_matches('/')
        .to_string()
}

/// The secondary role an unwrapped activation token describes (`data` of the answer).
pub(super) fn secondary_from_activation(data: &Value, primary_api_addr: String) -> SecondaryState {
    let text = |k: &str| data[k].as_str().unwrap_or_default().to_string();
    let primary_cluster_addr = text("primary_cluster_addr");
    let primary_cluster_addr = primary_cluster_addr
        .split_once("://")
        .map(|(_, r)| r.to_string())
        .unwrap_or(primary_cluster_addr);
    let mut known: Vec<String> = data["primary_cluster_addrs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if !known.contains(&primary_cluster_addr) {
        known.insert(0, primary_cluster_addr.clone());
    }
    SecondaryState {
        cluster_id: text("cluster_id"),
        secondary_id: text("id"),
        primary_cluster_addr,
        primary_api_addr,
        known_primary_cluster_addrs: known,
        ca_pem: text("ca_cert"),
        client_cert_pem: text("client_cert"),
        client_key_pem: text("client_key"),
    }
}

fn activation_client(ca_file: Option<&str>) -> Result<reqwest::Client, ReplicationError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30));
    if let Some(path) = ca_file.filter(|p| !p.is_empty()) {
        let pem = std::fs::read(path).map_err(|source| ReplicationError::CaFileRead {
            path: path.to_string(),
            source,
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|source| ReplicationError::CaFileParse {
            path: path.to_string(),
            source,
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(ReplicationError::HttpClient)
}

/// Unwraps the activation token at the primary (which also makes it unusable).
pub(super) async fn activate(
    token: &str,
    primary_api_addr: Option<&str>,
    ca_file: Option<&str>,
) -> Result<SecondaryState, ReplicationError> {
    let claims = activation_claims(token, chrono::Utc::now().timestamp())?;
    let addr = unwrap_addr(primary_api_addr, &claims);
    let resp = activation_client(ca_file)?
        .put(format!("{addr}/v1/sys/wrapping/unwrap"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .map_err(|source| ReplicationError::PrimaryUnreachable {
            addr: addr.clone(),
            source,
        })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["errors"]
            .as_array()
            .and_then(|e| e.first())
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_string();
        return Err(ReplicationError::UnwrapRefused { addr, message });
    }
    Ok(secondary_from_activation(&body["data"], addr))
}

/// A client for the primary's cluster port with this secondary's certificate.
pub(super) fn replication_client(state: &SecondaryState) -> Result<reqwest::Client, ReplicationError> {
    let tls = ClusterTls {
        ca_pem: state.ca_pem.clone(),
        cert_pem: state.client_cert_pem.clone(),
        key_pem: state.client_key_pem.clone(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls.client_config().map_err(ReplicationError::Tls)?)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(ReplicationError::HttpClient)
}

/// GETs `url` from the primary's cluster port and decodes the postcard answer.
pub(super) async fn fetch<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: String,
) -> Result<T, ReplicationError> {
    let resp = match client.get(&url).send().await {
        Ok(resp) => resp,
        Err(source) => return Err(ReplicationError::PrimaryRequest { url, source }),
    };
    let status = resp.status();
    let bytes = match resp.bytes().await {
        Ok(bytes) => bytes,
        Err(source) => return Err(ReplicationError::PrimaryRequest { url, source }),
    };
    if !status.is_success() {
        return Err(ReplicationError::PrimaryStatus {
            url,
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    postcard::from_bytes(&bytes).map_err(|source| ReplicationError::MalformedAnswer { url, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(exp: i64, addr: &str) -> Claims {
        Claims {
            accessor: "acc".into(),
            addr: addr.into(),
            exp,
            iat: 1,
            jti: "hvs.wrapping".into(),
            nbf: 1,
            token_type: "wrapping".into(),
        }
    }

    fn token(claims: &Claims) -> String {
        jwt::sign(&jwt::generate_key().unwrap(), claims).unwrap()
    }

    #[test]
    fn an_activation_token_must_be_an_unexpired_jwt() {
        let err = activation_claims("hvs.not-a-jwt", 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the secondary activation token is not a valid token (expected a JWT)"
        );
        assert_eq!(err.status(), 400);
        let expired = token(&claims(100, "https://p:8200"));
        let err = activation_claims(&expired, 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the secondary activation token has expired; create a new one on the primary"
        );
        assert_eq!(activation_claims(&expired, 99).unwrap().jti, "hvs.wrapping");
    }

    #[test]
    fn the_unwrap_goes_to_the_override_or_the_tokens_address() {
        let c = claims(100, "https://primary:8200/");
        assert_eq!(unwrap_addr(None, &c), "https://primary:8200");
        assert_eq!(unwrap_addr(Some(""), &c), "https://primary:8200");
        assert_eq!(unwrap_addr(Some("http://other:8200/"), &c), "http://other:8200");
    }

    #[test]
    fn the_unwrapped_answer_becomes_the_secondary_role() {
        let data = json!({
            "ca_cert": "CA",
            "client_cert": "CERT",
            "client_key": "KEY",
            "cluster_id": "c-1",
            "id": "dr-1",
            "primary_cluster_addr": "https://10.0.0.1:8201",
            "primary_cluster_addrs": ["10.0.0.2:8201", "10.0.0.1:8201"],
        });
        let state = secondary_from_activation(&data, "https://10.0.0.1:8200".into());
        assert_eq!(state.cluster_id, "c-1");
        assert_eq!(state.secondary_id, "dr-1");
        assert_eq!(state.primary_cluster_addr, "10.0.0.1:8201");
        assert_eq!(state.primary_api_addr, "https://10.0.0.1:8200");
        assert_eq!(
            state.known_primary_cluster_addrs,
            vec!["10.0.0.2:8201", "10.0.0.1:8201"]
        );
        assert_eq!(
            (
                state.ca_pem.as_str(),
                state.client_cert_pem.as_str(),
                state.client_key_pem.as_str()
            ),
            ("CA", "CERT", "KEY")
        );
        // A primary address missing from the list is tried first.
        let data = json!({ "primary_cluster_addr": "p:8201", "primary_cluster_addrs": ["q:8201"] });
        let state = secondary_from_activation(&data, String::new());
        assert_eq!(state.known_primary_cluster_addrs, vec!["p:8201", "q:8201"]);
    }
}
