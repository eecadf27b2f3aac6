//! Cloud auto-join: turns a go-discover `auto_join` string (`provider=aws ...`) into the
//! candidate leader URLs that `retry_join` challenges.
//!
//! Each round makes exactly one EC2 `DescribeInstances` call, filtered on
//! `tag:<tag_key>=<tag_value>` and `instance-state-name=running`, as go-discover does.
//!
//! Dependencies: the call is a SigV4-signed Query-API POST sent with `reqwest`, signed by
//! `aws-sigv4`, parsed with `roxmltree`; credentials and the region fall back to
//! `aws-config`'s standard chains (already built for the awskms seal). `aws-sdk-ec2` would
//! do the same single call but costs ~5.5 min of one core per cold debug build (~11 min
//! release) — about half the project's cold build — for one request and four XML paths,
//! so cheaper CI wins here.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use aws_config::meta::region::RegionProviderChain;
use aws_config::Region;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// EC2 Query-API version whose response shape the parser below reads.
const EC2_API_VERSION: &str = "2016-11-15";
const IAM_API_VERSION: &str = "2010-05-08";
/// Discovery runs in a 2-second retry loop: a dead endpoint must not stall it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Why a discovery round produced no candidate list.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The `auto_join` string is malformed, names another provider, or lacks a key.
    #[error("auto_join: {0}")]
    InvalidAutoJoin(String),
    /// No `region=` key and none from AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config or IMDS.
    #[error("auto_join: no region (add region=... or set AWS_REGION)")]
    NoRegion,
    /// Neither static keys nor the default AWS credential chain produced credentials.
    #[error("auto_join: no AWS credentials: {0}")]
    Credentials(String),
    /// The request could not be signed (bad endpoint URL, ...).
    #[error("auto_join: cannot sign EC2 request for {endpoint}: {reason}")]
    Signing { endpoint: String, reason: String },
    /// The EC2 endpoint did not answer.
    #[error("auto_join: EC2 endpoint {endpoint} unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// EC2 answered with an error (auth failure, throttling, bad filter, ...).
    #[error("auto_join: EC2 {endpoint} returned HTTP {status} {code}: {message}")]
    Api {
        endpoint: String,
        status: u16,
        code: String,
        message: String,
    },
    /// EC2 answered 2xx but not with XML this module understands.
    #[error("auto_join: unreadable EC2 response from {endpoint}: {reason}")]
    BadResponse { endpoint: String, reason: String },
}

/// Runs one discovery round for `auto_join` and returns `scheme://IP:port` candidates
/// (IPv6 bracketed), de-duplicated in EC2's order.
pub async fn discover_aws(auto_join: &str, scheme: &str, port: u16) -> Result<Vec<String>, DiscoverError> {
    let result = discover_round(auto_join, scheme, port).await;
    if let Err(e) = &result {
        tracing::warn!(error = %e, "auto_join: provider=aws discovery failed");
    }
    result
}

async fn discover_round(auto_join: &str, scheme: &str, port: u16) -> Result<Vec<String>, DiscoverError> {
    let args = AwsArgs::parse(auto_join)?;
    let region = match &args.region {
        Some(region) => region.clone(),
        None => RegionProviderChain::default_provider()
            .region()
            .await
            .map(|r| r.to_string())
            .ok_or(DiscoverError::NoRegion)?,
    };
    let credentials = match (&args.access_key_id, &args.secret_access_key) {
        (Some(access), Some(secret)) => Credentials::new(
            access,
            secret,
            args.session_token.clone(),
            None,
            "labnode-auto-join",
        ),
        _ => aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
            .region(Region::new(region.clone()))
            .build()
            .await
            .provide_credentials()
            .await
            .map_err(|e| DiscoverError::Credentials(error_chain(&e)))?,
    };
    let ec2 = QueryClient::ec2(args.endpoint.as_deref(), &region, credentials)?;
    let xml = ec2
        .call(&[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", &format!("tag:{}", args.tag_key)),
            ("Filter.1.Value.1", &args.tag_value),
            ("Filter.2.Name", "instance-state-name"),
            ("Filter.2.Value.1", "running"),
        ])
        .await?;
    let addresses =
        instance_addresses(&xml, args.addr_type).map_err(|reason| DiscoverError::BadResponse {
            endpoint: ec2.endpoint.clone(),
            reason,
        })?;
    let candidates = candidate_urls(&addresses, scheme, port);
    tracing::debug!(
        %region,
        tag_key = %args.tag_key,
        tag_value = %args.tag_value,
        addr_type = ?args.addr_type,
        ?candidates,
        "auto_join: provider=aws discovery round"
    );
    Ok(candidates)
}

/// Which instance address becomes a candidate (go-discover's `addr_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddrType {
    PrivateV4,
    PublicV4,
    PublicV6,
}

/// The provider=aws keys labnode honours.
#[derive(Debug, PartialEq)]
struct AwsArgs {
    region: Option<String>,
    tag_key: String,
    tag_value: String,
    addr_type: AddrType,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    endpoint: Option<String>,
}

impl AwsArgs {
    fn parse(auto_join: &str) -> Result<AwsArgs, DiscoverError> {
        let pairs = crate::config::parse_auto_join(auto_join)
            .map_err(|e| DiscoverError::InvalidAutoJoin(e.replace(auto_join, &redact(auto_join))))?;
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        for (key, _) in &pairs {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                tracing::warn!(key = %key, "auto_join: ignoring unknown provider=aws key");
            }
        }
        match get("service").as_deref() {
            None | Some("ec2") => {}
            Some(other) => {
                return Err(DiscoverError::InvalidAutoJoin(format!(
                    "service={other} is not supported (labnode discovers EC2 instances only)"
                )))
            }
        }
        let required = |key: &str| {
            get(key).ok_or_else(|| {
                DiscoverError::InvalidAutoJoin(format!("provider=aws needs {key}=... (EC2 tag filter)"))
            })
        };
        let addr_type = match get("addr_type").as_deref() {
            None | Some("private_v4") => AddrType::PrivateV4,
            Some("public_v4") => AddrType::PublicV4,
            Some("public_v6") => AddrType::PublicV6,
            Some(other) => {
                tracing::warn!(addr_type = %other, "auto_join: unknown addr_type, using private_v4");
                AddrType::PrivateV4
            }
        };
        let endpoint = get("endpoint");
        if let Some(url) = &endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(DiscoverError::InvalidAutoJoin(format!(
                    "endpoint={url} must be a URL starting with http:// or https://"
                )));
            }
        }
        Ok(AwsArgs {
            region: get("region"),
            tag_key: required("tag_key")?,
            tag_value: required("tag_value")?,
            addr_type,
            access_key_id: get("access_key_id"),
            secret_access_key: get("secret_access_key"),
            session_token: get("session_token"),
            endpoint,
        })
    }
}

const KNOWN_KEYS: &[&str] = &[
    "provider",
    "region",
    "tag_key",
    "tag_value",
    "addr_type",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "endpoint",
    "service",
    "ecs_cluster",
    "ecs_family",
];

/// The auto_join string with secret values masked, for error messages and logs.
fn redact(auto_join: &str) -> String {
    auto_join
        .split(' ')
        .map(|word| match word.split_once('=') {
            Some((key @ ("secret_access_key" | "session_token"), _)) => format!("{key}=<redacted>"),
            _ => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A minimal signed AWS Query-API client (EC2, IAM): one form-encoded POST per call.
///
/// Public (but hidden) so lab and the LocalStack tests create VPCs, instances and roles
/// with the same signing path discovery uses, without the SDK crates that double the build.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct QueryClient {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    service: &'static str,
    api_version: &'static str,
    identity: Identity,
}

impl QueryClient {
    /// An EC2 client; `endpoint` overrides `https://ec2.<region>.amazonaws.com/`.
    pub fn ec2(
        endpoint: Option<&str>,
        region: &str,
        credentials: Credentials,
    ) -> Result<Self, DiscoverError> {
        let default = format!("https://ec2.{region}.amazonaws.com/");
        Self::build(endpoint, default, region, "ec2", EC2_API_VERSION, credentials)
    }

    /// An IAM client (a global service, signed for us-east-1); `endpoint` overrides
    /// `https://iam.amazonaws.com/`.
    pub fn iam(endpoint: Option<&str>, credentials: Credentials) -> Result<Self, DiscoverError> {
        let default = "https://iam.amazonaws.com/".to_owned();
        Self::build(
            endpoint,
            default,
            "us-east-1",
            "iam",
            IAM_API_VERSION,
            credentials,
        )
    }

    fn build(
        endpoint: Option<&str>,
        default: String,
        region: &str,
        service: &'static str,
        api_version: &'static str,
        credentials: Credentials,
    ) -> Result<Self, DiscoverError> {
        let endpoint = match endpoint {
            Some(url) if url.ends_with('/') => url.to_owned(),
            Some(url) => format!("{url}/"),
            None => default,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| DiscoverError::Unreachable {
                endpoint: endpoint.clone(),
                reason: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(QueryClient {
            http,
            endpoint,
            region: region.to_owned(),
            service,
            api_version,
            identity: credentials.into(),
        })
    }

    /// Sends `params` (which must include `Action`) and returns the 2xx response body;
    /// non-2xx answers become [`DiscoverError::Api`] with EC2's error code and message.
    pub async fn call(&self, params: &[(&str, &str)]) -> Result<String, DiscoverError> {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        form.push(("Version", self.api_version));
        let body = serde_urlencoded::to_string(&form).map_err(|e| self.signing_error(e))?;
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", CONTENT_TYPE);
        for (name, value) in self.signature_headers(&body, SystemTime::now())? {
            request = request.header(name, value);
        }
        let request = request.body(body);
        let unreachable = |e: reqwest::Error| DiscoverError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: error_chain(&e),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok(text);
        }
        let (code, message) = api_error(&text);
        Err(DiscoverError::Api {
            endpoint: self.endpoint.clone(),
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for a
    /// form-encoded POST of `body` to the endpoint.
    fn signature_headers(
        &self,
        body: &str,
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, DiscoverError> {
        let signing_params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| self.signing_error(e))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            [("content-type", CONTENT_TYPE)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| self.signing_error(e))?;
        let (instructions, _signature) = sign(signable, &signing_params)
            .map_err(|e| self.signing_error(e))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }

    fn signing_error(&self, e: impl std::fmt::Display) -> DiscoverError {
        DiscoverError::Signing {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        }
    }
}

/// `reqwest`'s top-level message hides the cause ("error sending request"); keep the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// EC2's `<Response><Errors><Error><Code/><Message/>` body, or the raw text if it is not that.
fn api_error(body: &str) -> (String, String) {
    let parsed = roxmltree::Document::parse(body).ok().and_then(|doc| {
        let error = doc.descendants().find(|n| n.has_tag_name("Error"))?;
        let text = |name: &str| {
            error
                .children()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .unwrap_or_default()
                .to_owned()
        };
        Some((text("Code"), text("Message")))
    });
    parsed.unwrap_or_else(|| ("UnknownError".to_owned(), body.chars().take(300).collect()))
}

/// The addresses of every instance in a DescribeInstances response, in document order:
/// `reservationSet/item/instancesSet/item/{privateIpAddress | ipAddress |
/// networkInterfaceSet/item/ipv6AddressesSet/item/ipv6Address}`.
fn instance_addresses(xml: &str, addr_type: AddrType) -> Result<Vec<IpAddr>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if !root.has_tag_name("DescribeInstancesResponse") {
        return Err(format!(
            "expected DescribeInstancesResponse, got <{}>",
            root.tag_name().name()
        ));
    }
    let mut addresses = Vec::new();
    let instances = children(root, "reservationSet")
        .flat_map(|set| children(set, "item"))
        .flat_map(|reservation| children(reservation, "instancesSet"))
        .flat_map(|set| children(set, "item"));
    for instance in instances {
        let texts: Vec<&str> = match addr_type {
            AddrType::PrivateV4 => children(instance, "privateIpAddress")
                .filter_map(|n| n.text())
                .collect(),
            AddrType::PublicV4 => children(instance, "ipAddress").filter_map(|n| n.text()).collect(),
            AddrType::PublicV6 => children(instance, "networkInterfaceSet")
                .flat_map(|set| children(set, "item"))
                .flat_map(|eni| children(eni, "ipv6AddressesSet"))
                .flat_map(|set| children(set, "item"))
                .flat_map(|item| children(item, "ipv6Address"))
                .filter_map(|n| n.text())
                .collect(),
        };
        for text in texts {
            match text.trim().parse::<IpAddr>() {
                Ok(ip) => addresses.push(ip),
                Err(_) => tracing::warn!(address = %text, "auto_join: skipping unparsable instance address"),
            }
        }
    }
    Ok(addresses)
}

/// Element children of `node` with local name `name` (EC2 XML carries a default namespace).
fn children<'a, 'input: 'a>(
    node: roxmltree::Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

/// `scheme://ip:port` per address, IPv6 bracketed, first occurrence wins.
fn candidate_urls(addresses: &[IpAddr], scheme: &str, port: u16) -> Vec<String> {
    let mut seen = HashSet::new();
    addresses
        .iter()
        .filter(|ip| seen.insert(**ip))
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}"),
            IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-1</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateIpAddress>10.0.1.11</privateIpAddress>
          <ipAddress>54.1.2.3</ipAddress>
          <networkInterfaceSet>
            <item>
              <privateIpAddress>10.0.1.99</privateIpAddress>
              <ipv6AddressesSet>
                <item><ipv6Address>2600:1f18::11</ipv6Address></item>
              </ipv6AddressesSet>
            </item>
          </networkInterfaceSet>
        </item>
        <item>
          <instanceId>i-2</instanceId>
          <privateIpAddress>10.0.1.12</privateIpAddress>
        </item>
      </instancesSet>
    </item>
    <item>
      <reservationId>r-2</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-3</instanceId>
          <privateIpAddress>10.0.1.13</privateIpAddress>
          <ipAddress>54.1.2.5</ipAddress>
          <networkInterfaceSet>
            <item>
              <ipv6AddressesSet>
                <item><ipv6Address>2600:1f18::13</ipv6Address></item>
                <item><ipv6Address>2600:1f18::14</ipv6Address></item>
              </ipv6AddressesSet>
            </item>
          </networkInterfaceSet>
        </item>
        <item>
          <instanceId>i-dup</instanceId>
          <privateIpAddress>10.0.1.11</privateIpAddress>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;

    fn addresses(addr_type: AddrType) -> Vec<String> {
        instance_addresses(RESPONSE, addr_type)
            .unwrap()
            .iter()
            .map(|ip| ip.to_string())
            .collect()
    }

    #[test]
    fn private_v4_reads_only_the_instance_level_address() {
        assert_eq!(
            addresses(AddrType::PrivateV4),
            ["10.0.1.11", "10.0.1.12", "10.0.1.13", "10.0.1.11"]
        );
    }

    #[test]
    fn public_v4_skips_instances_without_one() {
        assert_eq!(addresses(AddrType::PublicV4), ["54.1.2.3", "54.1.2.5"]);
    }

    #[test]
    fn public_v6_collects_every_eni_address() {
        assert_eq!(
            addresses(AddrType::PublicV6),
            ["2600:1f18::11", "2600:1f18::13", "2600:1f18::14"]
        );
    }

    #[test]
    fn empty_reservation_set_means_no_candidates() {
        let xml = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <requestId>x</requestId><reservationSet/></DescribeInstancesResponse>"#;
        assert!(instance_addresses(xml, AddrType::PrivateV4).unwrap().is_empty());
    }

    #[test]
    fn non_describe_instances_xml_is_rejected() {
        assert!(instance_addresses("<Response/>", AddrType::PrivateV4).is_err());
        assert!(instance_addresses("not xml", AddrType::PrivateV4).is_err());
    }

    #[test]
    fn urls_are_deduplicated_and_ipv6_bracketed() {
        let ips: Vec<IpAddr> = ["10.0.1.11", "2600:1f18::11", "10.0.1.11", "10.0.1.12"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            candidate_urls(&ips, "https", 8200),
            [
                "https://10.0.1.11:8200",
                "https://[2600:1f18::11]:8200",
                "https://10.0.1.12:8200"
            ]
        );
    }

    #[test]
    fn api_errors_keep_code_and_message() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>1</RequestID></Response>"#;
        assert_eq!(
            api_error(body),
            (
                "AuthFailure".to_owned(),
                "AWS was not able to validate the provided access credentials".to_owned()
            )
        );
        assert_eq!(api_error("oops").0, "UnknownError");
    }

    #[test]
    fn parses_every_key() {
        let args = AwsArgs::parse(
            "provider=aws region=eu-west-1 tag_key=vault tag_value=\"prod east\" addr_type=public_v4 \
             access_key_id=AK secret_access_key=SK session_token=ST endpoint=http://127.0.0.1:4566",
        )
        .unwrap();
        assert_eq!(
            args,
            AwsArgs {
                region: Some("eu-west-1".into()),
                tag_key: "vault".into(),
                tag_value: "prod east".into(),
                addr_type: AddrType::PublicV4,
                access_key_id: Some("AK".into()),
                secret_access_key: Some("SK".into()),
                session_token: Some("ST".into()),
                endpoint: Some("http://127.0.0.1:4566".into()),
            }
        );
    }

    #[test]
    fn defaults_and_fallbacks() {
        let args = AwsArgs::parse("provider=aws tag_key=k tag_value=v").unwrap();
        assert_eq!(args.addr_type, AddrType::PrivateV4);
        assert_eq!(args.region, None);
        assert_eq!(args.endpoint, None);
        let args = AwsArgs::parse("provider=aws tag_key=k tag_value=v addr_type=bogus").unwrap();
        assert_eq!(args.addr_type, AddrType::PrivateV4);
        let args = AwsArgs::parse("provider=aws tag_key=k tag_value=v addr_type=public_v6").unwrap();
        assert_eq!(args.addr_type, AddrType::PublicV6);
    }

    #[test]
    fn rejects_what_cannot_be_discovered() {
        let err = |text: &str| AwsArgs::parse(text).unwrap_err().to_string();
        assert!(err("provider=gce project_name=x tag_value=v").contains("\"gce\""));
        assert!(err("provider=aws tag_key=a tag_key=b tag_value=v").contains("duplicate key \"tag_key\""));
        assert!(err("region=us-east-1 tag_key=k tag_value=v").contains("provider"));
        assert!(err("provider=aws tag_value=v").contains("tag_key"));
        assert!(err("provider=aws tag_key=k").contains("tag_value"));
        assert!(err("provider=aws tag_key=k tag_value=v service=ecs").contains("service=ecs"));
        assert!(err("provider=aws tag_key=k tag_value=v endpoint=127.0.0.1:4566").contains("http://"));
    }

    #[test]
    fn errors_never_echo_secrets() {
        let text = "provider=aws tag_key=k tag_value=v secret_access_key=SUPERSECRET region=a region=b";
        let message = AwsArgs::parse(text).unwrap_err().to_string();
        assert!(message.contains("duplicate key \"region\""), "{message}");
        assert!(!message.contains("SUPERSECRET"), "{message}");
        assert!(message.contains("secret_access_key=<redacted>"), "{message}");
    }

    #[test]
    fn signature_headers_follow_sigv4() {
        let client = QueryClient::ec2(
            Some("http://127.0.0.1:4566"),
            "us-east-1",
            Credentials::new("AK", "SK", Some("ST".into()), None, "test"),
        )
        .unwrap();
        assert_eq!(client.endpoint, "http://127.0.0.1:4566/");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = client
            .signature_headers("Action=DescribeInstances", time)
            .unwrap();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        };
        assert!(header("authorization").starts_with(
            "AWS4-HMAC-SHA256 Credential=AK/20231114/us-east-1/ec2/aws4_request, SignedHeaders="
        ));
        assert!(header("authorization").contains("content-type"));
        assert_eq!(header("x-amz-date"), "20231114T221320Z");
        assert_eq!(header("x-amz-security-token"), "ST");
        let default = QueryClient::ec2(
            None,
            "eu-west-1",
            Credentials::new("AK", "SK", None, None, "test"),
        )
        .unwrap();
        assert_eq!(default.endpoint, "https://ec2.eu-west-1.amazonaws.com/");
    }
}
