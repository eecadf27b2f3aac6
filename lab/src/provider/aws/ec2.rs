//! Every EC2 and IAM call of the aws provider, through the aws-query crate's signed Query-API client,
//! and the answers it reads: the one file that knows that client and its error type. The
//! steps elsewhere pass the call's parameters and get the answer or a worded
//! [`ProviderError`]; refusals a step must tell apart (already gone, still in use, a new
//! instance profile not yet visible) are handled here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_query::{QueryClient, QueryError};

use super::{AwsProvider, POLL};
use crate::provider::cloud::{self, real_error};
use crate::provider::ProviderError;

/// Amazon Linux 2023 for x86_64, the default image (`--ami` picks another).
pub(super) const DEFAULT_AMI_NAME: &str = "al2023-ami-2023.*-kernel-6.1-x86_64";
/// How long AWS may take to make a new instance profile usable by RunInstances.
const IAM_PROPAGATION: Duration = Duration::from_secs(90);
/// How long a security group may stay in use by terminating instances.
const SG_RELEASE_TIMEOUT: Duration = Duration::from_secs(300);

/// The AWS clients of one command, with the operator's credentials.
pub(super) struct Clients {
    ec2: QueryClient,
    iam: QueryClient,
    /// KMS, through the AWS SDK.
    pub kms: aws_sdk_kms::Client,
}

impl Clients {
    /// Clients for `region` (one `endpoint` for all of them with an emulator); a failure is
    /// the client that could not be made and why.
    pub fn new(
        config: &SdkConfig,
        endpoint: Option<&str>,
        region: &str,
        credentials: Credentials,
    ) -> Result<Clients, (String, String)> {
        let ec2 = QueryClient::ec2(endpoint, region, credentials.clone())
            .map_err(|e| ("creating the EC2 client".to_owned(), e.to_string()))?;
        let iam = QueryClient::iam(endpoint, credentials)
            .map_err(|e| ("creating the IAM client".to_owned(), e.to_string()))?;
        Ok(Clients {
            ec2,
            iam,
            kms: aws_sdk_kms::Client::new(config),
        })
    }
}

/// `("InstanceId.1", id), ...` after `("Action", action)`.
fn with_instance_ids(action: &str, ids: &[&str]) -> Vec<(String, String)> {
    let mut params = vec![("Action".to_owned(), action.to_owned())];
    for (i, id) in ids.iter().enumerate() {
        params.push((format!("InstanceId.{}", i + 1), (*id).to_owned()));
    }
    params
}

fn borrowed(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

impl AwsProvider {
    /// One EC2 call, its errors named after the action.
    pub(super) async fn ec2(
        &self,
        clients: &Clients,
        params: &[(&str, &str)],
    ) -> Result<String, ProviderError> {
        self.query(&clients.ec2, params).await
    }

    /// One IAM call, its errors named after the action.
    pub(super) async fn iam(
        &self,
        clients: &Clients,
        params: &[(&str, &str)],
    ) -> Result<String, ProviderError> {
        self.query(&clients.iam, params).await
    }

    async fn query(&self, client: &QueryClient, params: &[(&str, &str)]) -> Result<String, ProviderError> {
        cloud::query(client, params)
            .await
            .map_err(|(action, message)| self.cloud_error(action, message))
    }

    /// An EC2 delete call; a resource that is already gone is not an error.
    pub(super) async fn ec2_delete(
        &self,
        clients: &Clients,
        what: &str,
        params: &[(&str, &str)],
    ) -> Result<(), ProviderError> {
        self.gone_is_done(what, clients.ec2.call(params).await)
    }

    /// An IAM delete call; an entity that is already gone is not an error.
    pub(super) async fn iam_delete(
        &self,
        clients: &Clients,
        what: &str,
        params: &[(&str, &str)],
    ) -> Result<(), ProviderError> {
        self.gone_is_done(what, clients.iam.call(params).await)
    }

    /// A delete's answer: done, also when the resource was already gone.
    fn gone_is_done(&self, what: &str, answer: Result<String, QueryError>) -> Result<(), ProviderError> {
        match real_error(answer) {
            None => Ok(()),
            Some(e) => Err(self.cloud_error(what, e)),
        }
    }

    /// The subnet to use and its VPC and CIDR: `--subnet-id`, else the default VPC's first
    /// default subnet.
    pub(super) async fn subnet(&self, clients: &Clients) -> Result<(String, String, String), ProviderError> {
        let xml = match &self.options.subnet_id {
            Some(id) => {
                self.ec2(clients, &[("Action", "DescribeSubnets"), ("SubnetId.1", id)])
                    .await?
            }
            None => {
                self.ec2(
                    clients,
                    &[
                        ("Action", "DescribeSubnets"),
                        ("Filter.1.Name", "default-for-az"),
                        ("Filter.1.Value.1", "true"),
                    ],
                )
                .await?
            }
        };
        let doc = roxmltree::Document::parse(&xml).map_err(|e| self.cloud_error("DescribeSubnets", e))?;
        let mut subnets: Vec<(String, String, String)> = doc
            .descendants()
            .filter(|n| n.has_tag_name("item") && n.children().any(|c| c.has_tag_name("subnetId")))
            .filter_map(|item| {
                let text = |name: &str| {
                    item.children()
                        .find(|c| c.has_tag_name(name))
                        .and_then(|c| c.text())
                        .map(str::to_owned)
                };
                Some((text("subnetId")?, text("vpcId")?, text("cidrBlock")?))
            })
            .collect();
        subnets.sort();
        subnets.into_iter().next().ok_or_else(|| {
            self.cloud_error(
                "DescribeSubnets",
                "no default VPC subnet in this region; pass --subnet-id with a subnet whose \
                 instances you can reach",
            )
        })
    }

    /// `--ami`, else the newest Amazon Linux 2023 image for x86_64; with its root device
    /// name, which the encrypted root volume mapping must name (AL2023 /dev/xvda, Ubuntu
    /// /dev/sda1: another name would add a second disk instead).
    pub(super) async fn ami(&self, clients: &Clients) -> Result<(String, String), ProviderError> {
        let params: Vec<(&str, &str)> = match &self.options.ami {
            Some(ami) => vec![("Action", "DescribeImages"), ("ImageId.1", ami)],
            None => vec![
                ("Action", "DescribeImages"),
                ("Owner.1", "amazon"),
                ("Filter.1.Name", "name"),
                ("Filter.1.Value.1", DEFAULT_AMI_NAME),
                ("Filter.2.Name", "architecture"),
                ("Filter.2.Value.1", "x86_64"),
            ],
        };
        let xml = self.ec2(clients, &params).await?;
        newest_image(&xml).ok_or_else(|| {
            let message = match &self.options.ami {
                Some(ami) => format!("image {ami} not found in this region"),
                None => format!("no Amazon Linux 2023 image ({DEFAULT_AMI_NAME}) found; pass --ami"),
            };
            self.cloud_error("DescribeImages", message)
        })
    }

    /// RunInstances for `node`, retrying while a new instance profile propagates; returns
    /// the instance id.
    pub(super) async fn run_instance(
        &self,
        clients: &Clients,
        node: &str,
        params: &[(&str, &str)],
    ) -> Result<String, ProviderError> {
        let started = Instant::now();
        loop {
            match clients.ec2.call(params).await {
                Ok(xml) => {
                    return cloud::xml_text(&xml, "instanceId")
                        .map_err(|e| self.cloud_error(format!("RunInstances for {node}"), e))
                }
                Err(e) if is_profile_propagation(&e) && started.elapsed() < IAM_PROPAGATION => {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(self.cloud_error(format!("RunInstances for {node}"), e)),
            }
        }
    }

    /// `instanceId -> (state, public IP)` of the instances `ids`.
    pub(super) async fn describe_instances(
        &self,
        clients: &Clients,
        ids: &[&str],
    ) -> Result<HashMap<String, (String, Option<String>)>, ProviderError> {
        let params = with_instance_ids("DescribeInstances", ids);
        let xml = self.ec2(clients, &borrowed(&params)).await?;
        Ok(described_instances(&xml))
    }

    /// As [`AwsProvider::describe_instances`], but `None` when EC2 no longer knows them.
    pub(super) async fn describe_instances_unless_gone(
        &self,
        clients: &Clients,
        ids: &[&str],
    ) -> Result<Option<HashMap<String, (String, Option<String>)>>, ProviderError> {
        let params = with_instance_ids("DescribeInstances", ids);
        match clients.ec2.call(&borrowed(&params)).await {
            Ok(xml) => Ok(Some(described_instances(&xml))),
            Err(e) => match real_error(Err(e)) {
                None => Ok(None),
                Some(e) => Err(self.cloud_error("DescribeInstances", e)),
            },
        }
    }

    /// TerminateInstances; instances already gone are not an error.
    pub(super) async fn terminate_instances(
        &self,
        clients: &Clients,
        ids: &[&str],
    ) -> Result<(), ProviderError> {
        let params = with_instance_ids("TerminateInstances", ids);
        self.ec2_delete(clients, "TerminateInstances", &borrowed(&params))
            .await
    }

    /// DeleteSecurityGroup, retried while terminating instances still hold the group.
    pub(super) async fn delete_security_group(
        &self,
        clients: &Clients,
        group: &str,
    ) -> Result<(), ProviderError> {
        let started = Instant::now();
        loop {
            let result = clients
                .ec2
                .call(&[("Action", "DeleteSecurityGroup"), ("GroupId", group)])
                .await;
            match real_error(result) {
                None => return Ok(()),
                Some(QueryError::Api { code, .. })
                    if code == "DependencyViolation" && started.elapsed() < SG_RELEASE_TIMEOUT =>
                {
                    tokio::time::sleep(POLL).await;
                }
                Some(e) => return Err(self.cloud_error(format!("DeleteSecurityGroup {group}"), e)),
            }
        }
    }
}

/// RunInstances' refusal while a just-created instance profile is not yet visible to EC2.
fn is_profile_propagation(error: &QueryError) -> bool {
    matches!(error, QueryError::Api { code, message, .. }
        if code == "InvalidParameterValue" && message.contains("iamInstanceProfile"))
}

/// `(image id, root device name)` of the newest image in a DescribeImages answer.
fn newest_image(xml: &str) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .filter(|n| n.has_tag_name("item") && n.children().any(|c| c.has_tag_name("imageId")))
        .filter_map(|item| {
            let text = |name: &str| {
                item.children()
                    .find(|c| c.has_tag_name(name))
                    .and_then(|c| c.text())
                    .map(str::to_owned)
            };
            let root = text("rootDeviceName").unwrap_or_else(|| "/dev/xvda".to_owned());
            Some((text("creationDate").unwrap_or_default(), text("imageId")?, root))
        })
        .max()
        .map(|(_, id, root)| (id, root))
}

/// `instanceId -> (state, public IP)` from a DescribeInstances answer.
pub(super) fn described_instances(xml: &str) -> HashMap<String, (String, Option<String>)> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return HashMap::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("item") && n.children().any(|c| c.has_tag_name("instanceId")))
        .filter_map(|item| {
            let child = |name: &str| item.children().find(|c| c.has_tag_name(name));
            let id = child("instanceId")?.text()?.to_owned();
            let state = child("instanceState")
                .and_then(|s| s.children().find(|c| c.has_tag_name("name")))
                .and_then(|n| n.text())
                .unwrap_or_default()
                .to_owned();
            let public = child("ipAddress").and_then(|n| n.text()).map(str::to_owned);
            Some((id, (state, public)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_image_and_its_root_device_are_chosen() {
        let xml = r#"<DescribeImagesResponse><imagesSet>
            <item><imageId>ami-old</imageId><creationDate>2025-01-01T00:00:00.000Z</creationDate>
              <rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/xvda</deviceName></item></blockDeviceMapping></item>
            <item><imageId>ami-new</imageId><creationDate>2025-07-21T00:00:00.000Z</creationDate>
              <rootDeviceName>/dev/sda1</rootDeviceName></item>
        </imagesSet></DescribeImagesResponse>"#;
        assert_eq!(
            newest_image(xml),
            Some(("ami-new".to_owned(), "/dev/sda1".to_owned()))
        );
        assert_eq!(
            newest_image("<DescribeImagesResponse><imagesSet/></DescribeImagesResponse>"),
            None
        );
    }

    #[test]
    fn describe_instances_answer_gives_state_and_public_address() {
        let xml = r#"<DescribeInstancesResponse><reservationSet><item><instancesSet>
            <item><instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState>
              <privateIpAddress>10.0.1.11</privateIpAddress><ipAddress>54.1.2.3</ipAddress>
              <groupSet><item><groupId>sg-1</groupId></item></groupSet></item>
            <item><instanceId>i-2</instanceId><instanceState><name>pending</name></instanceState></item>
        </instancesSet></item></reservationSet></DescribeInstancesResponse>"#;
        let described = described_instances(xml);
        assert_eq!(described.len(), 2);
        assert_eq!(
            described["i-1"],
            ("running".to_owned(), Some("54.1.2.3".to_owned()))
        );
        assert_eq!(described["i-2"], ("pending".to_owned(), None));
    }
}
