//! The localstack provider: the course's production layout, on one machine.
//!
//! Every node is a local `labnode server` (run by [`LocalProvider`]'s host) bound to the
//! private address of its own EC2 instance in LocalStack (127.0.1.11, .12, ...: loopback,
//! so nothing leaves the machine). Each cluster gets a KMS key for its `seal "awskms"` and
//! finds its peers with `retry_join { auto_join = "provider=aws tag_key=vault ..." }`; all
//! nodes of a cluster share one API port, as auto_join assumes.
//!
//! [`Provider::provision`] creates the VPC, subnet, keys and instances, reusing any that
//! carry this lab home's `lab-home` tag or alias (so a second attempt does not duplicate
//! them), and records each in `state.json` as soon as it exists. [`Provider::teardown`]
//! terminates the instances (recorded or tagged), deletes the subnet and VPC and schedules
//! the keys for deletion after 7 days, the minimum KMS allows.
//!
//! EC2 calls go through labnode's signed Query-API client, KMS calls through the AWS SDK
//! labnode already builds; both with LocalStack's fixed test/test credentials.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_query::ec2::{DescribeInstances, Filter, Instance};
use aws_query::QueryClient;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::types::KeyState;
use sha2::{Digest, Sha256};

use super::cloud::{self, real_error, retire_kms_key, xml_text, KEY_DELETION_DAYS};
use super::{
    kms_and_tag_join, node_on_address, LocalProvider, Plan, PlannedCluster, Provider, ProviderError,
};
use crate::host::Host;
use crate::render::{AwsKmsContext, Renderer, StaticCredentials};
use crate::state::{AwsResources, Ec2Instance, KmsKey, LabHome, NodeState, State};
use crate::topology::{SealKind, Topology};

/// Where LocalStack listens unless `--endpoint` or `LAB_LOCALSTACK_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";

const NAME: &str = "localstack";
const REGION: &str = "us-east-1";
/// LocalStack accepts any key; these are its documented defaults.
const ACCESS_KEY: &str = "test";
const SECRET_KEY: &str = "test";
const VPC_CIDR: &str = "127.0.0.0/16";
const SUBNET_CIDR: &str = "127.0.1.0/24";
/// Node i of the lab (across clusters) gets 127.0.1.(11 + i), as the course's node-11...
const SUBNET_PREFIX: [u8; 3] = [127, 0, 1];
const FIRST_HOST: usize = 11;
/// The auto_join tag key, as in the course; the value is per cluster and per lab home.
const JOIN_TAG: &str = "vault";
/// Marks every resource with the lab home that owns it.
const HOME_TAG: &str = "lab-home";
/// Marks an instance with its `cluster/node`.
const NODE_TAG: &str = "lab-node";
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Local processes on LocalStack-registered instances, sealed by LocalStack's KMS.
pub struct LocalStackProvider {
    local: LocalProvider,
    endpoint: String,
}

impl LocalStackProvider {
    /// Runs `local`'s labnode against LocalStack at `endpoint`.
    pub fn new(local: LocalProvider, endpoint: &str) -> LocalStackProvider {
        LocalStackProvider {
            local,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        }
    }

    /// The provider that started `state`, at the endpoint it recorded.
    pub fn from_state(state: &State) -> LocalStackProvider {
        let endpoint = state
            .aws
            .as_ref()
            .map_or(DEFAULT_ENDPOINT, |aws| aws.endpoint.as_str());
        LocalStackProvider::new(LocalProvider::new(state.labnode.clone()), endpoint)
    }

    fn auto_join(&self, tag: &str) -> String {
        format!(
            "provider=aws region={REGION} tag_key={JOIN_TAG} tag_value={tag} endpoint={} \
             access_key_id={ACCESS_KEY} secret_access_key={SECRET_KEY}",
            self.endpoint
        )
    }

    fn cloud_error(&self, action: impl Into<String>, message: impl ToString) -> ProviderError {
        ProviderError::Cloud {
            provider: NAME,
            action: action.into(),
            message: format!("{} (LocalStack at {})", message.to_string(), self.endpoint),
        }
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime, ProviderError> {
        cloud::runtime().map_err(|e| self.cloud_error("starting an async runtime", e))
    }

    fn clients(&self) -> Result<(QueryClient, aws_sdk_kms::Client), ProviderError> {
        let ec2 = QueryClient::ec2(Some(&self.endpoint), REGION, credentials())
            .map_err(|e| self.cloud_error("creating the EC2 client", e))?;
        Ok((ec2, kms_client(&self.endpoint)))
    }

    /// One EC2 call, its errors named after the action.
    async fn ec2(&self, ec2: &QueryClient, params: &[(&str, &str)]) -> Result<String, ProviderError> {
        cloud::query(ec2, params)
            .await
            .map_err(|(action, message)| self.cloud_error(action, message))
    }

    /// The instances matching every filter.
    async fn describe_instances(
        &self,
        ec2: &QueryClient,
        filters: Vec<Filter>,
    ) -> Result<Vec<Instance>, ProviderError> {
        let request = DescribeInstances {
            filters,
            instance_ids: Vec::new(),
        };
        ec2.send(&request)
            .await
            .map_err(|e| self.cloud_error("DescribeInstances", e))
    }

    async fn provision_all(&self, home: &LabHome, state: &mut State) -> Result<(), ProviderError> {
        let (ec2, kms) = self.clients()?;
        let owner = home.root().display().to_string();
        let id = lab_id(home);
        let mut aws = state.aws.take().unwrap_or_else(|| AwsResources {
            endpoint: self.endpoint.clone(),
            region: REGION.to_owned(),
            ..AwsResources::default()
        });

        let vpc_id = match self.find_tagged(&ec2, "DescribeVpcs", &owner, "vpcId").await? {
            Some(vpc) => vpc,
            None => {
                let xml = self
                    .ec2(&ec2, &[("Action", "CreateVpc"), ("CidrBlock", VPC_CIDR)])
                    .await?;
                let vpc = xml_text(&xml, "vpcId").map_err(|e| self.cloud_error("CreateVpc", e))?;
                self.tag(&ec2, &vpc, &owner).await?;
                vpc
            }
        };
        aws.vpc_id = Some(vpc_id.clone());
        state.aws = Some(aws.clone());
        home.save(state)?;

        let subnets = self
            .ec2(
                &ec2,
                &[
                    ("Action", "DescribeSubnets"),
                    ("Filter.1.Name", "vpc-id"),
                    ("Filter.1.Value.1", &vpc_id),
                ],
            )
            .await?;
        let subnet_id = match xml_text(&subnets, "subnetId") {
            Ok(subnet) => subnet,
            Err(_) => {
                let xml = self
                    .ec2(
                        &ec2,
                        &[
                            ("Action", "CreateSubnet"),
                            ("VpcId", &vpc_id),
                            ("CidrBlock", SUBNET_CIDR),
                        ],
                    )
                    .await?;
                let subnet = xml_text(&xml, "subnetId").map_err(|e| self.cloud_error("CreateSubnet", e))?;
                self.tag(&ec2, &subnet, &owner).await?;
                subnet
            }
        };
        aws.subnet_id = Some(subnet_id.clone());
        state.aws = Some(aws.clone());
        home.save(state)?;

        for cluster in state.clusters.clone() {
            let alias = format!("alias/lab-{id}-{}", cluster.name);
            let key_id = self.ensure_key(&kms, &alias, &owner).await?;
            aws.keys.push(KmsKey {
                cluster: cluster.name.clone(),
                key_id,
                alias,
            });
            state.aws = Some(aws.clone());
            home.save(state)?;
            let tag = join_tag(&cluster.name, &id);
            for node in &cluster.nodes {
                let name = format!("{}/{}", cluster.name, node.name);
                let ip = node_ip(&node.api_addr).ok_or_else(|| {
                    self.cloud_error(
                        "RunInstances",
                        format!("{name} has no IP address in {}", node.api_addr),
                    )
                })?;
                let instance_id = self
                    .ensure_instance(&ec2, &subnet_id, &ip, &tag, &owner, &name)
                    .await?;
                aws.instances.push(Ec2Instance {
                    node: name,
                    instance_id,
                    private_ip: ip,
                });
                state.aws = Some(aws.clone());
                home.save(state)?;
            }
        }
        Ok(())
    }

    /// The first `id_field` of a Describe call filtered on this home's tag.
    async fn find_tagged(
        &self,
        ec2: &QueryClient,
        action: &str,
        owner: &str,
        id_field: &str,
    ) -> Result<Option<String>, ProviderError> {
        let filter = format!("tag:{HOME_TAG}");
        let xml = self
            .ec2(
                ec2,
                &[
                    ("Action", action),
                    ("Filter.1.Name", &filter),
                    ("Filter.1.Value.1", owner),
                ],
            )
            .await?;
        Ok(xml_text(&xml, id_field).ok())
    }

    async fn tag(&self, ec2: &QueryClient, resource: &str, owner: &str) -> Result<(), ProviderError> {
        self.ec2(
            ec2,
            &[
                ("Action", "CreateTags"),
                ("ResourceId.1", resource),
                ("Tag.1.Key", HOME_TAG),
                ("Tag.1.Value", owner),
            ],
        )
        .await
        .map(drop)
    }

    /// The enabled key behind `alias`, or a new key that `alias` then points at.
    async fn ensure_key(
        &self,
        kms: &aws_sdk_kms::Client,
        alias: &str,
        owner: &str,
    ) -> Result<String, ProviderError> {
        let existing = kms.describe_key().key_id(alias).send().await;
        let alias_exists = match &existing {
            Ok(out) => {
                if let Some(meta) = out.key_metadata() {
                    if meta.key_state() == Some(&KeyState::Enabled) {
                        return Ok(meta.key_id().to_owned());
                    }
                }
                true
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found_exception()) => false,
            Err(e) => return Err(self.cloud_error(format!("DescribeKey {alias}"), DisplayErrorContext(e))),
        };
        let key_id = cloud::create_kms_key(kms, format!("lab seal key for {owner}"), None)
            .await
            .map_err(|(action, message)| self.cloud_error(action, message))?;
        let aliased = if alias_exists {
            kms.update_alias()
                .alias_name(alias)
                .target_key_id(&key_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| DisplayErrorContext(e).to_string())
        } else {
            kms.create_alias()
                .alias_name(alias)
                .target_key_id(&key_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| DisplayErrorContext(e).to_string())
        };
        aliased.map_err(|e| self.cloud_error(format!("pointing {alias} at {key_id}"), e))?;
        Ok(key_id)
    }

    /// The live instance tagged with this home and node (started if stopped), or a new one.
    async fn ensure_instance(
        &self,
        ec2: &QueryClient,
        subnet_id: &str,
        ip: &str,
        tag: &str,
        owner: &str,
        node: &str,
    ) -> Result<String, ProviderError> {
        let found = self
            .describe_instances(
                ec2,
                vec![
                    Filter::new(format!("tag:{HOME_TAG}"), [owner]),
                    Filter::new(format!("tag:{NODE_TAG}"), [node]),
                    Filter::new(
                        "instance-state-name",
                        ["pending", "running", "stopping", "stopped"],
                    ),
                ],
            )
            .await?;
        if let Some(instance) = found.into_iter().next().map(|i| i.instance_id) {
            self.ec2(ec2, &[("Action", "StartInstances"), ("InstanceId.1", &instance)])
                .await?;
            return Ok(instance);
        }
        let xml = self
            .ec2(
                ec2,
                &[
                    ("Action", "RunInstances"),
                    ("ImageId", "ami-12345678"),
                    ("InstanceType", "t3.micro"),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("SubnetId", subnet_id),
                    ("PrivateIpAddress", ip),
                    ("TagSpecification.1.ResourceType", "instance"),
                    ("TagSpecification.1.Tag.1.Key", JOIN_TAG),
                    ("TagSpecification.1.Tag.1.Value", tag),
                    ("TagSpecification.1.Tag.2.Key", HOME_TAG),
                    ("TagSpecification.1.Tag.2.Value", owner),
                    ("TagSpecification.1.Tag.3.Key", NODE_TAG),
                    ("TagSpecification.1.Tag.3.Value", node),
                    ("TagSpecification.1.Tag.4.Key", "Name"),
                    ("TagSpecification.1.Tag.4.Value", node),
                ],
            )
            .await?;
        xml_text(&xml, "instanceId").map_err(|e| self.cloud_error(format!("RunInstances for {node}"), e))
    }

    async fn delete_all(&self, home: &LabHome, aws: &AwsResources) -> Result<Vec<String>, ProviderError> {
        let (ec2, kms) = self.clients()?;
        let owner = home.root().display().to_string();
        let mut done = Vec::new();

        // Recorded instances, plus any tagged for this home that a crash left unrecorded.
        let tagged = self
            .describe_instances(
                &ec2,
                vec![Filter::new(format!("tag:{HOME_TAG}"), [owner.as_str()])],
            )
            .await?;
        let mut instances: Vec<String> = aws.instances.iter().map(|i| i.instance_id.clone()).collect();
        for id in tagged.into_iter().map(|i| i.instance_id) {
            if !instances.contains(&id) {
                instances.push(id);
            }
        }
        for id in &instances {
            let terminated = ec2
                .call(&[("Action", "TerminateInstances"), ("InstanceId.1", id)])
                .await;
            if let Some(e) = real_error(terminated) {
                return Err(self.cloud_error(format!("TerminateInstances {id}"), e));
            }
        }
        if !instances.is_empty() {
            done.push(format!(
                "terminated {} EC2 instance(s): {}",
                instances.len(),
                instances.join(" ")
            ));
        }
        for (what, action, key, id) in [
            ("subnet", "DeleteSubnet", "SubnetId", &aws.subnet_id),
            ("VPC", "DeleteVpc", "VpcId", &aws.vpc_id),
        ] {
            let Some(id) = id else { continue };
            if let Some(e) = real_error(ec2.call(&[("Action", action), (key, id)]).await) {
                return Err(self.cloud_error(format!("{action} {id}"), e));
            }
            done.push(format!("deleted {what} {id}"));
        }
        for key in &aws.keys {
            retire_kms_key(&kms, &key.key_id, &key.alias)
                .await
                .map_err(|(action, message)| self.cloud_error(action, message))?;
            done.push(format!(
                "KMS key {} ({}) scheduled for deletion in {KEY_DELETION_DAYS} days",
                key.key_id, key.alias
            ));
        }
        Ok(done)
    }
}

impl Provider for LocalStackProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn plan(&self, topology: &Topology, home: &LabHome) -> Result<Plan, ProviderError> {
        let total: usize = topology.clusters.iter().map(|c| c.nodes.len()).sum();
        if FIRST_HOST + total > 255 {
            return Err(ProviderError::Unsupported {
                provider: NAME,
                message: format!(
                    "{total} nodes do not fit the subnet {SUBNET_CIDR} (at most {})",
                    255 - FIRST_HOST
                ),
            });
        }
        let id = lab_id(home);
        let mut host = FIRST_HOST;
        let mut plan = Vec::new();
        for cluster in &topology.clusters {
            // auto_join yields addresses, not ports: every node of a cluster uses the
            // first node's ports on its own address.
            let api_port = cluster.nodes[0].api_port;
            let cluster_port = cluster.nodes[0].cluster_port;
            let (seal, join) = kms_and_tag_join(
                AwsKmsContext {
                    region: REGION.to_owned(),
                    kms_key_id: format!("alias/lab-{id}-{}", cluster.name),
                    endpoint: Some(self.endpoint.clone()),
                    credentials: Some(StaticCredentials {
                        access_key: ACCESS_KEY.to_owned(),
                        secret_key: SECRET_KEY.to_owned(),
                    }),
                },
                self.auto_join(&join_tag(&cluster.name, &id)),
                api_port,
            );
            let mut nodes = Vec::new();
            for node in &cluster.nodes {
                let ip = Ipv4Addr::new(SUBNET_PREFIX[0], SUBNET_PREFIX[1], SUBNET_PREFIX[2], host as u8);
                host += 1;
                nodes.push(node_on_address(
                    cluster,
                    &node.name,
                    &ip.to_string(),
                    (api_port, cluster_port),
                    home.node_dir(&cluster.name, &node.name),
                    &seal,
                    &join,
                ));
            }
            plan.push(PlannedCluster {
                name: cluster.name.clone(),
                seal: SealKind::Awskms,
                dr_role: cluster.dr_role,
                nodes,
            });
        }
        Ok(Plan::of_clusters(plan))
    }

    fn preflight(&self, plan: &Plan) -> Result<(), ProviderError> {
        self.local.check_labnode()?;
        let health = format!("{}/_localstack/health", self.endpoint);
        let answer = reqwest::blocking::Client::builder()
            .timeout(HEALTH_TIMEOUT)
            .build()
            .and_then(|client| client.get(&health).send())
            .and_then(|response| response.error_for_status());
        if let Err(e) = answer {
            return Err(self.cloud_error(
                "health check",
                format!(
                    "{e}; start it with `scripts/localstack.sh start`, or point --endpoint / \
                     LAB_LOCALSTACK_ENDPOINT at it"
                ),
            ));
        }
        let mut busy = Vec::new();
        for cluster in &plan.clusters {
            for node in &cluster.nodes {
                for address in [
                    &node.context.listener.address,
                    &node.context.listener.cluster_address,
                ] {
                    if TcpListener::bind(address.as_str()).is_err() {
                        busy.push(format!(
                            "  {address} ({}/{}) is in use",
                            cluster.name, node.state.name
                        ));
                    }
                }
            }
        }
        if busy.is_empty() {
            Ok(())
        } else {
            busy.push("  stop that process or choose other ports with --base-port N".to_owned());
            Err(ProviderError::PortsInUse(busy))
        }
    }

    fn provision(
        &self,
        _plan: &Plan,
        home: &LabHome,
        state: &mut State,
        _configs: &[(PathBuf, String)],
        _renderer: &Renderer,
    ) -> Result<(), ProviderError> {
        self.runtime()?.block_on(self.provision_all(home, state))
    }

    fn host(&self, node: &NodeState) -> Arc<dyn Host> {
        self.local.host(node)
    }

    fn labnode(&self) -> &Path {
        self.local.labnode()
    }

    fn teardown(&self, home: &LabHome, state: Option<&State>) -> Result<Vec<String>, ProviderError> {
        let mut done = self.local.teardown(home, state)?;
        if let Some(aws) = state.and_then(|s| s.aws.as_ref()) {
            done.extend(self.runtime()?.block_on(self.delete_all(home, aws))?);
        }
        Ok(done)
    }
}

/// A KMS client for LocalStack at `endpoint`, with its fixed test credentials and short
/// timeouts (a LocalStack that is not running fails fast).
pub fn kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(credentials())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "lab-localstack")
}

/// Short and stable per lab home, so two homes never share tags or aliases.
fn lab_id(home: &LabHome) -> String {
    let digest = Sha256::digest(home.root().as_os_str().as_encoded_bytes());
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

/// The `vault` tag value of a cluster's instances.
fn join_tag(cluster: &str, id: &str) -> String {
    format!("{cluster}-{id}")
}

/// The host part of `http://IP:PORT`.
fn node_ip(api_addr: &str) -> Option<String> {
    let rest = api_addr.strip_prefix("http://")?;
    let (ip, _) = rest.rsplit_once(':')?;
    Some(ip.to_owned())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn plan_binds_each_node_to_its_instance_address_with_auto_join_and_awskms() {
        let topology = Topology::load("dr", Some(18200)).unwrap();
        let home = LabHome::new(PathBuf::from("/lab"));
        let provider = LocalStackProvider::new(
            LocalProvider::new(PathBuf::from("labnode")),
            "http://127.0.0.1:4566/",
        );
        let plan = provider.plan(&topology, &home).unwrap();
        let id = lab_id(&home);
        let b = &plan.clusters[0].nodes[1].context;
        assert_eq!(b.listener.address, "127.0.1.12:18200");
        assert_eq!(b.cluster_addr, "https://127.0.1.12:18201");
        assert!(b.join.leader_api_addrs.is_empty());
        let auto_join = b.join.auto_join.as_ref().unwrap();
        assert_eq!(auto_join.port, 18200);
        assert!(
            auto_join.discover.contains(&format!(
                "tag_key=vault tag_value=primary-{id} endpoint=http://127.0.0.1:4566 "
            )),
            "{}",
            auto_join.discover
        );
        let kms = b.seal.awskms.as_ref().unwrap();
        assert_eq!(kms.kms_key_id, format!("alias/lab-{id}-primary"));
        let secondary = &plan.clusters[1];
        assert_eq!(secondary.seal, SealKind::Awskms);
        assert_eq!(secondary.nodes[0].context.listener.address, "127.0.1.14:18230");
        assert_eq!(secondary.nodes[0].state.api_addr, "http://127.0.1.14:18230");
        assert_ne!(lab_id(&LabHome::new(PathBuf::from("/other"))), id);
        assert_eq!(node_ip("http://127.0.1.14:18230").as_deref(), Some("127.0.1.14"));
        // The rendered file is one labnode accepts.
        crate::render::Renderer::new(None)
            .unwrap()
            .render_node(b)
            .unwrap();
    }
}
