//! Cloud auto-join: turns a go-discover `auto_join` string (`provider=aws ...`) into the
//! candidate leader URLs that `retry_join` challenges.
//!
//! Each round makes exactly one EC2 `DescribeInstances` call, filtered on
//! `tag:<tag_key>=<tag_value>` and `instance-state-name=running`, as go-discover does.
//!
//! The call goes through the `aws-query` crate's signed Query client; credentials and the
//! region fall back to `aws-config`'s standard chains (already built for the awskms seal).

use std::collections::HashSet;
use std::net::IpAddr;

use aws_config::meta::region::RegionProviderChain;
use aws_config::Region;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_query::ec2::{DescribeInstances, Filter, Instance};
use aws_query::{ErrorChain, QueryClient, QueryError};

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
    #[error("auto_join: no AWS credentials: {}", ErrorChain(source))]
    Credentials {
        /// What the credential chain said.
        source: CredentialsError,
    },
    /// The `DescribeInstances` call failed (unreachable, refused, unreadable answer, ...).
    #[error("auto_join: {0}")]
    Ec2(#[from] QueryError),
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
            .map_err(|source| DiscoverError::Credentials { source })?,
    };
    let ec2 = QueryClient::ec2(args.endpoint.as_deref(), &region, credentials)?;
    let instances = ec2
        .send(&DescribeInstances {
            filters: vec![
                Filter::new(format!("tag:{}", args.tag_key), [args.tag_value.as_str()]),
                Filter::new("instance-state-name", ["running"]),
            ],
            instance_ids: Vec::new(),
        })
        .await?;
    let addresses = instance_addresses(&instances, args.addr_type);
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
        let pairs = labnode_config::parse_auto_join(auto_join)
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

/// The addresses of `addr_type` of every instance, in EC2's order; an address that does
/// not parse is logged and skipped.
fn instance_addresses(instances: &[Instance], addr_type: AddrType) -> Vec<IpAddr> {
    let texts = instances.iter().flat_map(|instance| match addr_type {
        AddrType::PrivateV4 => instance.private_ip_address.iter().cloned().collect::<Vec<_>>(),
        AddrType::PublicV4 => instance.public_ip_address.iter().cloned().collect(),
        AddrType::PublicV6 => instance.ipv6_addresses.clone(),
    });
    let mut addresses = Vec::new();
    for text in texts {
        match text.trim().parse::<IpAddr>() {
            Ok(ip) => addresses.push(ip),
            Err(_) => tracing::warn!(address = %text, "auto_join: skipping unparsable instance address"),
        }
    }
    addresses
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

    /// The instances of `xml` as the EC2 client reads them.
    fn instances(xml: &str) -> Vec<Instance> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        <DescribeInstances as aws_query::Request>::read(doc.root_element())
    }

    fn addresses(addr_type: AddrType) -> Vec<String> {
        instance_addresses(&instances(RESPONSE), addr_type)
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
        assert!(instance_addresses(&instances(xml), AddrType::PrivateV4).is_empty());
    }

    #[test]
    fn unparsable_addresses_are_skipped() {
        let instance = Instance {
            instance_id: "i-1".into(),
            private_ip_address: Some("not-an-ip".into()),
            ipv6_addresses: vec!["2600:1f18::11".into(), "::zz".into()],
            ..Instance::default()
        };
        assert!(instance_addresses(std::slice::from_ref(&instance), AddrType::PrivateV4).is_empty());
        assert_eq!(
            instance_addresses(&[instance], AddrType::PublicV6),
            ["2600:1f18::11".parse::<IpAddr>().unwrap()]
        );
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
    fn query_failures_read_as_auto_join_errors() {
        let api = DiscoverError::from(QueryError::Api {
            service: aws_query::Service::Ec2,
            endpoint: "http://127.0.0.1:4566/".into(),
            status: 401,
            code: "AuthFailure".into(),
            message: "AWS was not able to validate the provided access credentials".into(),
        });
        assert_eq!(
            api.to_string(),
            "auto_join: EC2 http://127.0.0.1:4566/ returned HTTP 401 AuthFailure: \
             AWS was not able to validate the provided access credentials"
        );
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
}
