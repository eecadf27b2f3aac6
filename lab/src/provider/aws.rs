//! The aws provider: a lab on EC2 instances, driven over ssh.
//!
//! [`Provider::plan`] resolves the region, credentials and subnet and gives every node a
//! fixed private address in that subnet, so each node's HCL (and the user data carrying it)
//! is complete before any instance exists. [`Provider::preflight`] prints what will be
//! created with an hourly cost estimate and asks for confirmation. [`Provider::provision`]
//! creates one KMS key per cluster, a security group, a key pair, an IAM role with an
//! instance profile and one tagged instance per node, recording each in `state.json` as it
//! exists; then it waits for ssh on every instance and installs the labnode binary.
//! Everything carries the tag `lab=<name>`, so `lab down --sweep` finds leftovers even
//! without `state.json`. With `--from-terraform DIR` the machines come from the module in
//! `terraform/` instead and nothing is created or deleted here.
//!
//! EC2 and IAM go through labnode's signed Query-API client (the SDK crates for them would
//! double the build); KMS through the AWS SDK; credentials and region through the standard
//! AWS chain (`--profile`, environment, shared files, SSO, instance metadata).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_query::{QueryClient, QueryError};
use aws_sdk_kms::config::Region;
use aws_sdk_kms::error::DisplayErrorContext;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::cloud::{self, real_error, retire_kms_key, xml_text, xml_texts, KEY_DELETION_DAYS};
use super::terraform::{self, TerraformLab};
use super::{
    kms_and_tag_join, node_on_address, LocalProvider, PlannedCluster, PlannedNode, Provider, ProviderError,
};
use crate::bringup::launch_for;
use crate::host::{systemd_unit, Host, SshHost, SshTarget};
use crate::render::{AwsKmsContext, JoinContext, Renderer, SealContext, StaticCredentials, UserDataContext};
use crate::state::{AwsResources, Ec2Instance, Ec2Lab, KmsKey, LabHome, NodeState, SshAddress, State};
use crate::topology::{SealKind, Topology};

const NAME: &str = "aws";
/// The auto_join tag key, as in the course.
const JOIN_TAG: &str = "vault";
/// Every resource carries `lab=<name>`.
const LAB_TAG: &str = "lab";
/// Marks an instance with its `cluster/node`.
const NODE_TAG: &str = "lab-node";
/// The inline policy attached to the nodes' role.
const ROLE_POLICY: &str = "lab-node";
/// Amazon Linux 2023 for x86_64, the default image (`--ami` picks another).
const DEFAULT_AMI_NAME: &str = "al2023-ami-2023.*-kernel-6.1-x86_64";
/// Host numbers below this are left to AWS (reserved) and to whatever else lives there.
const FIRST_HOST: u32 = 11;
/// Emulators (LocalStack) accept any key; nodes get these when `--endpoint` is set, as
/// there is no instance profile behind an emulator.
const EMULATOR_KEY: &str = "test";
/// How long instances may take to reach `running` / `terminated`.
const STATE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long AWS may take to make a new instance profile usable by RunInstances.
const IAM_PROPAGATION: Duration = Duration::from_secs(90);
/// How long a security group may stay in use by terminating instances.
const SG_RELEASE_TIMEOUT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(2);
/// The regions lab knows; a typo fails before any call instead of as a DNS error.
const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];
/// On-demand Linux prices per hour in us-east-1 (other regions cost up to ~30% more).
const INSTANCE_PRICES: &[(&str, f64)] = &[
    ("t3.micro", 0.0104),
    ("t3.small", 0.0208),
    ("t3.medium", 0.0416),
    ("t3.large", 0.0832),
    ("t3a.micro", 0.0094),
    ("t3a.small", 0.0188),
    ("t3a.medium", 0.0376),
    ("m5.large", 0.096),
    ("m6i.large", 0.096),
    ("m7i.large", 0.1008),
    ("c6i.large", 0.085),
];
/// A public IPv4 address, per hour.
const PUBLIC_IPV4_PER_HOUR: f64 = 0.005;
/// An 8 GiB gp3 root volume ($0.08 per GiB-month), per hour.
const ROOT_VOLUME_PER_HOUR: f64 = 8.0 * 0.08 / 730.0;
/// A KMS key ($1 per month), per hour.
const KMS_KEY_PER_HOUR: f64 = 1.0 / 730.0;

/// Which of an instance's addresses lab uses for ssh and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    /// The public IPv4 address (lab runs outside the VPC).
    Public,
    /// The private address (lab runs inside the VPC, over a VPN, or against an emulator).
    Private,
}

/// `lab up --provider aws` settings, resolved from the flags (kept by `lab practice` so
/// `reset` brings the exercise back up the same way).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AwsOptions {
    /// The `lab=` tag value; `None` derives one from the lab home.
    pub name: Option<String>,
    /// The AWS profile.
    pub profile: Option<String>,
    /// The region; `None` takes the AWS chain's.
    pub region: Option<String>,
    /// One endpoint for EC2, IAM and KMS (LocalStack), also written into the node configs.
    pub endpoint: Option<String>,
    /// Instance type.
    pub instance_type: String,
    /// Image; `None` finds the newest Amazon Linux 2023.
    pub ami: Option<String>,
    /// Subnet; `None` uses the default VPC's first default subnet.
    pub subnet_id: Option<String>,
    /// Who may reach the API and ssh; `None` asks checkip.amazonaws.com (127.0.0.1/32 with an endpoint).
    pub allow_cidr: Option<String>,
    /// Login on the instances.
    pub ssh_user: String,
    /// The operator's private key, whose `.pub` becomes the key pair; `None` creates one.
    pub ssh_key: Option<PathBuf>,
    /// sshd's port on the instances.
    pub ssh_port: u16,
    /// Public or private addresses.
    pub reach: Reach,
    /// lab's directory on the instances.
    pub remote_dir: PathBuf,
    /// How long to wait for ssh on new instances.
    pub ssh_timeout: Duration,
    /// Skip the confirmation.
    pub yes: bool,
    /// Adopt the machines of a `terraform/` deployment instead of creating any.
    pub from_terraform: Option<PathBuf>,
}

/// What `plan` resolved and `provision` uses.
#[derive(Debug, Clone)]
struct Setup {
    name: String,
    region: String,
    subnet_id: String,
    vpc_id: String,
    cidr: String,
    ami: String,
    root_device: String,
    terraform: Option<TerraformLab>,
}

/// Labs on EC2 instances reached over ssh.
pub struct AwsProvider {
    options: AwsOptions,
    local: LocalProvider,
    home: LabHome,
    remote_labnode: PathBuf,
    ssh_key: Mutex<Option<PathBuf>>,
    setup: Mutex<Option<Setup>>,
    /// `cluster/node` -> the private address `plan` gave it.
    private_ips: Mutex<HashMap<String, String>>,
    hosts: Mutex<HashMap<String, Arc<SshHost>>>,
}

/// What every instance is launched with.
struct Machines {
    group: String,
    key_name: String,
    profile: String,
}

/// The AWS clients of one command, with the operator's credentials.
struct Clients {
    ec2: QueryClient,
    iam: QueryClient,
    kms: aws_sdk_kms::Client,
}

impl AwsProvider {
    /// A provider for a new lab in `home` running `local`'s labnode on the instances.
    pub fn new(local: LocalProvider, home: &LabHome, options: AwsOptions) -> AwsProvider {
        AwsProvider {
            remote_labnode: options.remote_dir.join("bin/labnode"),
            options,
            local,
            home: home.clone(),
            ssh_key: Mutex::new(None),
            setup: Mutex::new(None),
            private_ips: Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The provider that started `state`, reaching its instances as `up` did.
    pub fn from_state(state: &State, home: &LabHome) -> AwsProvider {
        let aws = state.aws.clone().unwrap_or_default();
        let lab = aws.ec2_lab.clone().unwrap_or_default();
        let options = AwsOptions {
            name: Some(lab.name.clone()),
            profile: lab.profile.clone(),
            region: Some(aws.region.clone()),
            endpoint: (!aws.endpoint.is_empty()).then(|| aws.endpoint.clone()),
            remote_dir: lab.remote_dir.clone(),
            ..AwsOptions::default()
        };
        let provider = AwsProvider::new(LocalProvider::new(state.labnode.clone()), home, options);
        *lock(&provider.ssh_key) = Some(lab.ssh_key);
        provider
    }

    /// The lab name: `--name`, else one derived from the home, stable across commands.
    fn lab_name(&self) -> String {
        self.options.name.clone().unwrap_or_else(|| {
            let digest = Sha256::digest(self.home.root().as_os_str().as_encoded_bytes());
            let id: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            id
        })
    }

    fn cloud_error(&self, action: impl Into<String>, message: impl ToString) -> ProviderError {
        ProviderError::Cloud {
            provider: NAME,
            action: action.into(),
            message: match &self.options.endpoint {
                Some(endpoint) => format!("{} (endpoint {endpoint})", message.to_string()),
                None => message.to_string(),
            },
        }
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime, ProviderError> {
        cloud::runtime().map_err(|e| self.cloud_error("starting an async runtime", e))
    }

    /// The region (`--region`, else the AWS chain's), checked against the known regions.
    async fn region(&self) -> Result<String, ProviderError> {
        let region = match &self.options.region {
            Some(region) => region.clone(),
            None => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(profile) = &self.options.profile {
                    loader = loader.profile_name(profile);
                }
                let config = loader.load().await;
                config.region().map(|r| r.to_string()).ok_or_else(|| {
                    self.cloud_error(
                        "choosing a region",
                        "no region: pass --region, set AWS_REGION, or set one in the profile",
                    )
                })?
            }
        };
        if !REGIONS.contains(&region.as_str()) {
            return Err(self.cloud_error(
                "choosing a region",
                format!(
                    "unknown region \"{region}\"; known regions: {}",
                    REGIONS.join(", ")
                ),
            ));
        }
        Ok(region)
    }

    /// Clients for `region` with the operator's credentials, which must resolve now.
    async fn clients(&self, region: &str) -> Result<Clients, ProviderError> {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
        if let Some(profile) = &self.options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &self.options.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        let no_credentials = |detail: String| {
            self.cloud_error(
                "finding AWS credentials",
                format!(
                    "{detail}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass --profile, \
                     or run `aws configure`"
                ),
            )
        };
        let credentials: Credentials = config
            .credentials_provider()
            .ok_or_else(|| no_credentials("no credential provider".to_owned()))?
            .provide_credentials()
            .await
            .map_err(|e| no_credentials(DisplayErrorContext(e).to_string()))?;
        let endpoint = self.options.endpoint.as_deref();
        let ec2 = QueryClient::ec2(endpoint, region, credentials.clone())
            .map_err(|e| self.cloud_error("creating the EC2 client", e))?;
        let iam = QueryClient::iam(endpoint, credentials)
            .map_err(|e| self.cloud_error("creating the IAM client", e))?;
        Ok(Clients {
            ec2,
            iam,
            kms: aws_sdk_kms::Client::new(&config),
        })
    }

    /// One EC2 or IAM call, its errors named after the action.
    async fn call(&self, client: &QueryClient, params: &[(&str, &str)]) -> Result<String, ProviderError> {
        cloud::query(client, params)
            .await
            .map_err(|(action, message)| self.cloud_error(action, message))
    }

    /// The subnet to use and its VPC and CIDR: `--subnet-id`, else the default VPC's first
    /// default subnet.
    async fn subnet(&self, ec2: &QueryClient) -> Result<(String, String, String), ProviderError> {
        let xml = match &self.options.subnet_id {
            Some(id) => {
                self.call(ec2, &[("Action", "DescribeSubnets"), ("SubnetId.1", id)])
                    .await?
            }
            None => {
                self.call(
                    ec2,
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

    /// `--ami`, else the newest Amazon Linux 2023 image for x86_64.
    /// `--ami`, else the newest Amazon Linux 2023 image for x86_64; with its root device
    /// name, which the encrypted root volume mapping must name (AL2023 /dev/xvda, Ubuntu
    /// /dev/sda1: another name would add a second disk instead).
    async fn ami(&self, ec2: &QueryClient) -> Result<(String, String), ProviderError> {
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
        let xml = self.call(ec2, &params).await?;
        newest_image(&xml).ok_or_else(|| {
            let message = match &self.options.ami {
                Some(ami) => format!("image {ami} not found in this region"),
                None => format!("no Amazon Linux 2023 image ({DEFAULT_AMI_NAME}) found; pass --ami"),
            };
            self.cloud_error("DescribeImages", message)
        })
    }

    /// Region, subnet and image, resolved once per `up`.
    fn resolve_setup(&self) -> Result<Setup, ProviderError> {
        if let Some(dir) = &self.options.from_terraform {
            let lab = terraform::read_outputs(dir).map_err(|message| ProviderError::Unsupported {
                provider: NAME,
                message,
            })?;
            return Ok(Setup {
                name: lab.name.clone(),
                region: lab.region.clone(),
                subnet_id: String::new(),
                vpc_id: String::new(),
                cidr: String::new(),
                ami: String::new(),
                root_device: String::new(),
                terraform: Some(lab),
            });
        }
        let name = self.lab_name();
        if name.is_empty() || name.len() > 40 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ProviderError::Unsupported {
                provider: NAME,
                message: format!("lab name \"{name}\" must be 1 to 40 letters, digits or dashes"),
            });
        }
        self.runtime()?.block_on(async {
            let region = self.region().await?;
            let clients = self.clients(&region).await?;
            let (subnet_id, vpc_id, cidr) = self.subnet(&clients.ec2).await?;
            let (ami, root_device) = self.ami(&clients.ec2).await?;
            Ok(Setup {
                name,
                region,
                subnet_id,
                vpc_id,
                cidr,
                ami,
                root_device,
                terraform: None,
            })
        })
    }

    fn node_credentials(&self) -> Option<StaticCredentials> {
        self.options.endpoint.as_ref().map(|_| StaticCredentials {
            access_key: EMULATOR_KEY.to_owned(),
            secret_key: EMULATOR_KEY.to_owned(),
        })
    }

    fn auto_join(&self, region: &str, key: &str, value: &str) -> String {
        let mut discover =
            format!("provider=aws region={region} tag_key={key} tag_value={value} addr_type=private_v4");
        if let Some(endpoint) = &self.options.endpoint {
            discover.push_str(&format!(
                " endpoint={endpoint} access_key_id={EMULATOR_KEY} secret_access_key={EMULATOR_KEY}"
            ));
        }
        discover
    }

    /// Everything a planned node needs, given its address and its cluster's seal and join.
    #[allow(clippy::too_many_arguments)]
    fn plan_node(
        &self,
        cluster: &crate::topology::Cluster,
        node_name: &str,
        ip: &str,
        public_ip: Option<&str>,
        ssh_user: &str,
        seal: &SealContext,
        join: &JoinContext,
        ports: (u16, u16),
    ) -> PlannedNode {
        let dir = self.options.remote_dir.join(&cluster.name).join(node_name);
        let mut planned = node_on_address(cluster, node_name, ip, ports, dir, seal, join);
        // lab reaches the node where --reach says; the public address may come at launch.
        let reach_ip = match (self.options.reach, public_ip) {
            (Reach::Private, _) => Some(ip),
            (Reach::Public, public) => public,
        };
        planned.state.api_addr = reach_ip.map_or_else(String::new, |ip| format!("http://{ip}:{}", ports.0));
        planned.state.ssh = Some(SshAddress {
            host: reach_ip.unwrap_or_default().to_owned(),
            port: self.options.ssh_port,
            user: ssh_user.to_owned(),
        });
        planned
    }

    fn plan_terraform(
        &self,
        topology: &Topology,
        lab: &TerraformLab,
    ) -> Result<Vec<PlannedCluster>, ProviderError> {
        let [cluster] = topology.clusters.as_slice() else {
            return Err(ProviderError::Unsupported {
                provider: NAME,
                message: format!(
                    "the Terraform module builds one cluster; topology {} has {} (use single, ha3 or ha5)",
                    topology.name,
                    topology.clusters.len()
                ),
            });
        };
        if cluster.nodes.len() != lab.nodes.len() {
            return Err(ProviderError::Unsupported {
                provider: NAME,
                message: format!(
                    "the Terraform deployment has {} instances but topology {} has {} nodes; \
                     pick the matching --topology or change node_count",
                    lab.nodes.len(),
                    topology.name,
                    cluster.nodes.len()
                ),
            });
        }
        let (seal, join) = kms_and_tag_join(
            AwsKmsContext {
                region: lab.region.clone(),
                kms_key_id: lab.kms_key_id.clone(),
                endpoint: self.options.endpoint.clone(),
                credentials: self.node_credentials(),
            },
            self.auto_join(&lab.region, &lab.join_tag_key, &lab.join_tag_value),
            lab.api_port,
        );
        let nodes = cluster
            .nodes
            .iter()
            .zip(&lab.nodes)
            .map(|(node, machine)| {
                self.plan_node(
                    cluster,
                    &node.name,
                    &machine.private_ip,
                    machine.public_ip.as_deref(),
                    &lab.ssh_user,
                    &seal,
                    &join,
                    (lab.api_port, lab.cluster_port),
                )
            })
            .collect();
        Ok(vec![PlannedCluster {
            name: cluster.name.clone(),
            seal: SealKind::Awskms,
            dr_role: cluster.dr_role,
            nodes,
        }])
    }

    /// Creates every resource, recording each in `state` as soon as it exists.
    async fn create_all(
        &self,
        clients: &Clients,
        setup: &Setup,
        state: &mut State,
        configs: &[(PathBuf, String)],
        renderer: &Renderer,
    ) -> Result<(), ProviderError> {
        let mut aws = AwsResources {
            endpoint: self.options.endpoint.clone().unwrap_or_default(),
            region: setup.region.clone(),
            vpc_id: Some(setup.vpc_id.clone()),
            subnet_id: Some(setup.subnet_id.clone()),
            ec2_lab: Some(Ec2Lab {
                name: setup.name.clone(),
                profile: self.options.profile.clone(),
                remote_dir: self.options.remote_dir.clone(),
                ..Ec2Lab::default()
            }),
            ..AwsResources::default()
        };
        let aws = &mut aws;
        self.record(state, aws)?;
        self.create_keys(clients, setup, state, aws).await?;
        let machines = Machines {
            group: self.create_security_group(clients, setup, state, aws).await?,
            key_name: self.create_key_pair(clients, setup, state, aws).await?,
            profile: self.create_role(clients, setup, state, aws).await?,
        };
        self.launch_instances(clients, setup, state, aws, &machines, configs, renderer)
            .await?;
        self.await_running(&clients.ec2, state, aws).await?;
        self.record(state, aws)
    }

    /// Writes what exists so far to `state.json`, so a failure after this point still
    /// deletes it.
    fn record(&self, state: &mut State, aws: &AwsResources) -> Result<(), ProviderError> {
        state.aws = Some(aws.clone());
        Ok(self.home.save(state)?)
    }

    /// One KMS key per cluster, tagged, behind the alias the node configs name.
    async fn create_keys(
        &self,
        clients: &Clients,
        setup: &Setup,
        state: &mut State,
        aws: &mut AwsResources,
    ) -> Result<(), ProviderError> {
        let name = &setup.name;
        for cluster in &state.clusters.clone() {
            let alias = kms_alias(name, &cluster.name);
            let created = clients
                .kms
                .create_key()
                .description(format!("lab {name}: seal key of cluster {}", cluster.name))
                .tags(kms_tag(LAB_TAG, name)?)
                .send()
                .await
                .map_err(|e| self.cloud_error("CreateKey", DisplayErrorContext(e)))?;
            let key_id = created
                .key_metadata()
                .map(|m| m.key_id().to_owned())
                .ok_or_else(|| self.cloud_error("CreateKey", "no KeyMetadata in the answer"))?;
            aws.keys.push(KmsKey {
                cluster: cluster.name.clone(),
                key_id: key_id.clone(),
                alias: alias.clone(),
            });
            self.record(state, aws)?;
            clients
                .kms
                .create_alias()
                .alias_name(&alias)
                .target_key_id(&key_id)
                .send()
                .await
                .map_err(|e| self.cloud_error(format!("CreateAlias {alias}"), DisplayErrorContext(e)))?;
        }
        Ok(())
    }

    /// The security group: API and ssh from the operator, API and cluster port between
    /// members; returns its id.
    async fn create_security_group(
        &self,
        clients: &Clients,
        setup: &Setup,
        state: &mut State,
        aws: &mut AwsResources,
    ) -> Result<String, ProviderError> {
        let name = &setup.name;
        let group_name = format!("lab-{name}");
        let xml = self
            .call(
                &clients.ec2,
                &[
                    ("Action", "CreateSecurityGroup"),
                    ("GroupName", &group_name),
                    (
                        "GroupDescription",
                        "lab nodes: API and ssh from the operator, cluster port between members",
                    ),
                    ("VpcId", &setup.vpc_id),
                    ("TagSpecification.1.ResourceType", "security-group"),
                    ("TagSpecification.1.Tag.1.Key", LAB_TAG),
                    ("TagSpecification.1.Tag.1.Value", name),
                ],
            )
            .await?;
        let group = xml_text(&xml, "groupId").map_err(|e| self.cloud_error("CreateSecurityGroup", e))?;
        lab_record(aws).security_group_id = Some(group.clone());
        self.record(state, aws)?;
        let allow = self.allow_cidr().await?;
        let (api_port, cluster_port) = state
            .clusters
            .first()
            .and_then(|c| c.nodes.first())
            .map_or((8200, 8201), |n| (n.api_port, n.cluster_port));
        let mut rules: Vec<(u16, Option<&str>)> = vec![
            (api_port, Some(allow.as_str())),
            (self.options.ssh_port, Some(allow.as_str())),
            (api_port, None),
            (cluster_port, None),
        ];
        rules.dedup();
        for (port, cidr) in &rules {
            let port = port.to_string();
            let mut params = vec![
                ("Action", "AuthorizeSecurityGroupIngress"),
                ("GroupId", group.as_str()),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", port.as_str()),
                ("IpPermissions.1.ToPort", port.as_str()),
            ];
            match cidr {
                Some(cidr) => params.push(("IpPermissions.1.IpRanges.1.CidrIp", cidr)),
                None => params.push(("IpPermissions.1.Groups.1.GroupId", group.as_str())),
            }
            self.call(&clients.ec2, &params).await?;
        }
        Ok(group)
    }

    /// The key pair lab logs in with: the operator's public key, or a new one whose
    /// private half is saved under the home (0600); returns its name.
    async fn create_key_pair(
        &self,
        clients: &Clients,
        setup: &Setup,
        state: &mut State,
        aws: &mut AwsResources,
    ) -> Result<String, ProviderError> {
        let name = &setup.name;
        let key_name = format!("lab-{name}");
        let key_pair = [
            ("KeyName", key_name.as_str()),
            ("TagSpecification.1.ResourceType", "key-pair"),
            ("TagSpecification.1.Tag.1.Key", LAB_TAG),
            ("TagSpecification.1.Tag.1.Value", name),
        ];
        let key_file = match &self.options.ssh_key {
            Some(private) => {
                let public = public_key_of(private).map_err(|message| ProviderError::Unsupported {
                    provider: NAME,
                    message,
                })?;
                let material = base64::engine::general_purpose::STANDARD.encode(public.trim());
                let import = [
                    ("Action", "ImportKeyPair"),
                    ("PublicKeyMaterial", material.as_str()),
                ];
                self.call(&clients.ec2, &[&import[..], &key_pair].concat())
                    .await?;
                private.clone()
            }
            None => {
                let create = [("Action", "CreateKeyPair"), ("KeyType", "rsa")];
                let xml = self
                    .call(&clients.ec2, &[&create[..], &key_pair].concat())
                    .await?;
                let material =
                    xml_text(&xml, "keyMaterial").map_err(|e| self.cloud_error("CreateKeyPair", e))?;
                let path = Path::new("ssh").join(format!("{key_name}.pem"));
                let path = self
                    .home
                    .save_private(&path, format!("{}\n", material.trim()).as_bytes())?;
                lab_record(aws).ssh_key_created = true;
                path
            }
        };
        {
            let lab = lab_record(aws);
            lab.key_pair = Some(key_name.clone());
            lab.ssh_key = key_file.clone();
        }
        *lock(&self.ssh_key) = Some(key_file);
        self.record(state, aws)?;
        Ok(key_name)
    }

    /// The nodes' IAM role, its policy and instance profile; returns the profile's name.
    async fn create_role(
        &self,
        clients: &Clients,
        setup: &Setup,
        state: &mut State,
        aws: &mut AwsResources,
    ) -> Result<String, ProviderError> {
        let name = &setup.name;
        let role = format!("lab-{name}-node");
        let path = format!("/lab/{name}/");
        self.call(
            &clients.iam,
            &[
                ("Action", "CreateRole"),
                ("RoleName", &role),
                ("Path", &path),
                ("AssumeRolePolicyDocument", ASSUME_ROLE_POLICY),
                (
                    "Description",
                    "lab nodes: auto_join discovery and the awskms seal",
                ),
                ("Tags.member.1.Key", LAB_TAG),
                ("Tags.member.1.Value", name),
            ],
        )
        .await?;
        lab_record(aws).role = Some(role.clone());
        self.record(state, aws)?;
        let policy = node_policy(&aws.keys, &setup.region);
        self.call(
            &clients.iam,
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", &role),
                ("PolicyName", ROLE_POLICY),
                ("PolicyDocument", &policy),
            ],
        )
        .await?;
        lab_record(aws).role_policy = Some(ROLE_POLICY.to_owned());
        self.record(state, aws)?;
        self.call(
            &clients.iam,
            &[
                ("Action", "CreateInstanceProfile"),
                ("InstanceProfileName", &role),
                ("Path", &path),
            ],
        )
        .await?;
        lab_record(aws).instance_profile = Some(role.clone());
        self.record(state, aws)?;
        self.call(
            &clients.iam,
            &[
                ("Action", "AddRoleToInstanceProfile"),
                ("InstanceProfileName", &role),
                ("RoleName", &role),
            ],
        )
        .await?;
        Ok(role)
    }

    /// One instance per node, each with its user data, recorded as it launches.
    #[allow(clippy::too_many_arguments)]
    async fn launch_instances(
        &self,
        clients: &Clients,
        setup: &Setup,
        state: &mut State,
        aws: &mut AwsResources,
        machines: &Machines,
        configs: &[(PathBuf, String)],
        renderer: &Renderer,
    ) -> Result<(), ProviderError> {
        let name = &setup.name;
        let mut rendered = configs.iter();
        for c in 0..state.clusters.len() {
            let cluster = state.clusters[c].name.clone();
            let join = format!("{name}-{cluster}");
            for n in 0..state.clusters[c].nodes.len() {
                let node = state.clusters[c].nodes[n].clone();
                let qualified = format!("{cluster}/{}", node.name);
                let config = rendered.next().map(|(_, text)| text.clone()).unwrap_or_default();
                let launch = launch_for(&self.remote_labnode, &cluster, &node);
                let user_data = renderer.render_user_data(&UserDataContext {
                    node: qualified.clone(),
                    ssh_user: node.ssh.as_ref().map_or_else(String::new, |s| s.user.clone()),
                    remote_dir: self.options.remote_dir.display().to_string(),
                    node_dir: node.dir.display().to_string(),
                    config_path: node.config.display().to_string(),
                    config,
                    service: launch.service.clone(),
                    unit: systemd_unit(&launch),
                })?;
                let private_ip = lock(&self.private_ips).get(&qualified).cloned().ok_or_else(|| {
                    self.cloud_error("RunInstances", format!("{qualified} has no planned address"))
                })?;
                let instance = self
                    .run_instance(
                        clients,
                        setup,
                        &qualified,
                        &private_ip,
                        &join,
                        &machines.group,
                        &machines.key_name,
                        &machines.profile,
                        &user_data,
                    )
                    .await?;
                aws.instances.push(Ec2Instance {
                    node: qualified,
                    instance_id: instance,
                    private_ip,
                });
                self.record(state, aws)?;
            }
        }
        Ok(())
    }

    /// RunInstances for one node, retrying while a new instance profile propagates.
    #[allow(clippy::too_many_arguments)]
    async fn run_instance(
        &self,
        clients: &Clients,
        setup: &Setup,
        node: &str,
        private_ip: &str,
        join_tag: &str,
        group: &str,
        key_name: &str,
        profile: &str,
        user_data: &str,
    ) -> Result<String, ProviderError> {
        let user_data = base64::engine::general_purpose::STANDARD.encode(user_data);
        let instance_name = format!("{}-{}", setup.name, node.replace('/', "-"));
        let params = [
            ("Action", "RunInstances"),
            ("ImageId", setup.ami.as_str()),
            ("InstanceType", self.options.instance_type.as_str()),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", setup.subnet_id.as_str()),
            ("PrivateIpAddress", private_ip),
            ("SecurityGroupId.1", group),
            ("KeyName", key_name),
            ("IamInstanceProfile.Name", profile),
            ("UserData", user_data.as_str()),
            ("MetadataOptions.HttpTokens", "required"),
            ("BlockDeviceMapping.1.DeviceName", setup.root_device.as_str()),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "8"),
            ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
            ("BlockDeviceMapping.1.Ebs.Encrypted", "true"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", LAB_TAG),
            ("TagSpecification.1.Tag.1.Value", setup.name.as_str()),
            ("TagSpecification.1.Tag.2.Key", JOIN_TAG),
            ("TagSpecification.1.Tag.2.Value", join_tag),
            ("TagSpecification.1.Tag.3.Key", NODE_TAG),
            ("TagSpecification.1.Tag.3.Value", node),
            ("TagSpecification.1.Tag.4.Key", "Name"),
            ("TagSpecification.1.Tag.4.Value", instance_name.as_str()),
            ("TagSpecification.2.ResourceType", "volume"),
            ("TagSpecification.2.Tag.1.Key", LAB_TAG),
            ("TagSpecification.2.Tag.1.Value", setup.name.as_str()),
        ];
        let started = Instant::now();
        loop {
            match clients.ec2.call(&params).await {
                Ok(xml) => {
                    return xml_text(&xml, "instanceId")
                        .map_err(|e| self.cloud_error(format!("RunInstances for {node}"), e))
                }
                Err(e) if is_profile_propagation(&e) && started.elapsed() < IAM_PROPAGATION => {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(self.cloud_error(format!("RunInstances for {node}"), e)),
            }
        }
    }

    /// Waits until every instance runs (and has its public address when lab uses those),
    /// then records the addresses lab reaches each node at.
    async fn await_running(
        &self,
        ec2: &QueryClient,
        state: &mut State,
        aws: &AwsResources,
    ) -> Result<(), ProviderError> {
        let started = Instant::now();
        loop {
            let mut params = vec![("Action".to_owned(), "DescribeInstances".to_owned())];
            for (i, instance) in aws.instances.iter().enumerate() {
                params.push((format!("InstanceId.{}", i + 1), instance.instance_id.clone()));
            }
            let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let xml = self.call(ec2, &borrowed).await?;
            let described = described_instances(&xml);
            let no_public = aws.instances.iter().find(|i| {
                described
                    .get(&i.instance_id)
                    .is_some_and(|(state, public)| state == "running" && public.is_none())
            });
            if let (Reach::Public, Some(instance)) = (self.options.reach, no_public) {
                return Err(self.cloud_error(
                    "waiting for the instances",
                    format!(
                        "{} ({}) runs without a public address: its subnet does not assign one; \
                         use --reach private from inside the VPC, or a subnet with public addresses",
                        instance.instance_id, instance.node
                    ),
                ));
            }
            let ready = aws.instances.iter().all(|i| {
                described.get(&i.instance_id).is_some_and(|(state, public)| {
                    state == "running" && (self.options.reach == Reach::Private || public.is_some())
                })
            });
            if ready {
                for cluster in &mut state.clusters {
                    for node in &mut cluster.nodes {
                        let qualified = format!("{}/{}", cluster.name, node.name);
                        let Some(instance) = aws.instances.iter().find(|i| i.node == qualified) else {
                            continue;
                        };
                        let address = match self.options.reach {
                            Reach::Private => Some(instance.private_ip.clone()),
                            Reach::Public => {
                                described.get(&instance.instance_id).and_then(|(_, p)| p.clone())
                            }
                        };
                        if let (Some(address), Some(ssh)) = (address, node.ssh.as_mut()) {
                            node.api_addr = format!("http://{address}:{}", node.api_port);
                            ssh.host = address;
                        }
                    }
                }
                return Ok(());
            }
            if started.elapsed() > STATE_TIMEOUT {
                return Err(self.cloud_error(
                    "waiting for the instances",
                    format!(
                        "not all running{} after {}s",
                        if self.options.reach == Reach::Public {
                            " with a public address"
                        } else {
                            ""
                        },
                        STATE_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `--allow-cidr`, else the operator's public address (loopback with an emulator).
    async fn allow_cidr(&self) -> Result<String, ProviderError> {
        if let Some(cidr) = &self.options.allow_cidr {
            return Ok(cidr.clone());
        }
        if self.options.endpoint.is_some() {
            return Ok("127.0.0.1/32".to_owned());
        }
        let answer = async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?;
            client
                .get("https://checkip.amazonaws.com/")
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        };
        let text = answer.await.map_err(|e| {
            self.cloud_error(
                "finding your public address",
                format!("checkip.amazonaws.com: {e}; pass --allow-cidr ADDRESS/32"),
            )
        })?;
        let ip: Ipv4Addr = text.trim().parse().map_err(|_| {
            self.cloud_error(
                "finding your public address",
                format!("checkip.amazonaws.com answered {text:?}; pass --allow-cidr ADDRESS/32"),
            )
        })?;
        Ok(format!("{ip}/32"))
    }

    /// Waits for ssh on every node's machine and installs the labnode binary there.
    fn prepare_hosts(&self, state: &State) -> Result<(), ProviderError> {
        let local = self.local.labnode();
        for cluster in &state.clusters {
            for node in &cluster.nodes {
                let host = self.ssh_host(node);
                let target = host.target().clone();
                eprintln!(
                    "==> {}/{}: waiting for ssh on {}@{}:{}",
                    cluster.name, node.name, target.user, target.host, target.port
                );
                host.wait_ready(self.options.ssh_timeout)?;
                // sshd answers before cloud-init ran the user data that creates lab's
                // directories; where there is cloud-init, wait for it to finish.
                let booted = host.exec(Path::new("/bin/sh"), &["-c", CLOUD_INIT_WAIT])?;
                if !booted.success {
                    return Err(self.cloud_error(
                        format!("user data on {}/{}", cluster.name, node.name),
                        format!(
                            "cloud-init reported a failure: {}; see /var/log/cloud-init-output.log there",
                            booted.stdout.trim()
                        ),
                    ));
                }
                host.install_executable(local, &self.remote_labnode)?;
                let version = host.exec(&self.remote_labnode, &["version"])?;
                if !version.success {
                    return Err(ProviderError::LabnodeBroken {
                        labnode: self.remote_labnode.clone(),
                        detail: format!(
                            "on {}: {} (is the instance's OS older than the one labnode was built on?)",
                            target.host,
                            version.stderr.trim()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The ssh host of `node`, one per address, connected on first use.
    fn ssh_host(&self, node: &NodeState) -> Arc<SshHost> {
        let address = node.ssh.clone().unwrap_or(SshAddress {
            host: String::new(),
            port: self.options.ssh_port,
            user: self.options.ssh_user.clone(),
        });
        let key = format!("{}@{}:{}", address.user, address.host, address.port);
        let key_file = lock(&self.ssh_key)
            .clone()
            .or_else(|| self.options.ssh_key.clone())
            .unwrap_or_default();
        lock(&self.hosts)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(SshHost::new(SshTarget {
                    host: address.host,
                    port: address.port,
                    user: address.user,
                    key_file,
                    known_hosts: self.home.root().join("known_hosts"),
                }))
            })
            .clone()
    }

    /// Stops every recorded node process over ssh; an unreachable machine is reported, not
    /// fatal (its instance is about to be terminated).
    fn stop_nodes(&self, state: &State) -> Vec<String> {
        let mut lines = Vec::new();
        for cluster in &state.clusters {
            for node in &cluster.nodes {
                let Some(process) = &node.process else { continue };
                let host = self.ssh_host(node);
                let name = format!("{}/{}", cluster.name, node.name);
                if !host.is_running(process) {
                    continue;
                }
                match host.stop(process, Duration::from_secs(10)) {
                    Ok(()) => lines.push(format!("stopped {name} (pid {}) over ssh", process.pid)),
                    Err(e) => lines.push(format!("could not stop {name} over ssh: {e}")),
                }
            }
        }
        lines
    }

    /// Deletes what `aws` records: instances (waiting until terminated), security group,
    /// key pair, IAM role and profile, KMS keys. Already-gone resources are skipped.
    async fn delete_all(&self, clients: &Clients, aws: &AwsResources) -> Result<Vec<String>, ProviderError> {
        let mut done = Vec::new();
        let lab = aws.ec2_lab.clone().unwrap_or_default();
        let ids: Vec<&str> = aws.instances.iter().map(|i| i.instance_id.as_str()).collect();
        if !ids.is_empty() {
            let mut params = vec![("Action".to_owned(), "TerminateInstances".to_owned())];
            for (i, id) in ids.iter().enumerate() {
                params.push((format!("InstanceId.{}", i + 1), (*id).to_owned()));
            }
            let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Some(e) = real_error(clients.ec2.call(&borrowed).await) {
                return Err(self.cloud_error("TerminateInstances", e));
            }
            self.await_terminated(&clients.ec2, &ids).await?;
            done.push(format!(
                "terminated {} EC2 instance(s): {}",
                ids.len(),
                ids.join(" ")
            ));
        }
        if let Some(group) = &lab.security_group_id {
            let started = Instant::now();
            loop {
                let result = clients
                    .ec2
                    .call(&[("Action", "DeleteSecurityGroup"), ("GroupId", group)])
                    .await;
                match real_error(result) {
                    None => break,
                    Some(QueryError::Api { code, .. })
                        if code == "DependencyViolation" && started.elapsed() < SG_RELEASE_TIMEOUT =>
                    {
                        tokio::time::sleep(POLL).await;
                    }
                    Some(e) => return Err(self.cloud_error(format!("DeleteSecurityGroup {group}"), e)),
                }
            }
            done.push(format!("deleted security group {group}"));
        }
        if let Some(key) = &lab.key_pair {
            if let Some(e) = real_error(
                clients
                    .ec2
                    .call(&[("Action", "DeleteKeyPair"), ("KeyName", key)])
                    .await,
            ) {
                return Err(self.cloud_error(format!("DeleteKeyPair {key}"), e));
            }
            done.push(format!("deleted key pair {key}"));
        }
        if lab.ssh_key_created && lab.ssh_key.exists() {
            std::fs::remove_file(&lab.ssh_key).map_err(|source| crate::state::StateError::Io {
                path: lab.ssh_key.clone(),
                source,
            })?;
        }
        if let Some(role) = &lab.role {
            let profile = lab.instance_profile.as_deref();
            let mut calls: Vec<Vec<(&str, &str)>> = Vec::new();
            if let Some(profile) = profile {
                calls.push(vec![
                    ("Action", "RemoveRoleFromInstanceProfile"),
                    ("InstanceProfileName", profile),
                    ("RoleName", role),
                ]);
                calls.push(vec![
                    ("Action", "DeleteInstanceProfile"),
                    ("InstanceProfileName", profile),
                ]);
            }
            if let Some(policy) = &lab.role_policy {
                calls.push(vec![
                    ("Action", "DeleteRolePolicy"),
                    ("RoleName", role),
                    ("PolicyName", policy),
                ]);
            }
            calls.push(vec![("Action", "DeleteRole"), ("RoleName", role)]);
            for params in calls {
                if let Some(e) = real_error(clients.iam.call(&params).await) {
                    return Err(self.cloud_error(format!("{} {role}", params[0].1), e));
                }
            }
            done.push(format!("deleted IAM role and instance profile {role}"));
        }
        for key in &aws.keys {
            retire_kms_key(&clients.kms, &key.key_id, &key.alias)
                .await
                .map_err(|(action, message)| self.cloud_error(action, message))?;
            done.push(format!(
                "KMS key {} ({}) scheduled for deletion in {KEY_DELETION_DAYS} days",
                key.key_id, key.alias
            ));
        }
        Ok(done)
    }

    async fn await_terminated(&self, ec2: &QueryClient, ids: &[&str]) -> Result<(), ProviderError> {
        let started = Instant::now();
        loop {
            let mut params = vec![("Action".to_owned(), "DescribeInstances".to_owned())];
            for (i, id) in ids.iter().enumerate() {
                params.push((format!("InstanceId.{}", i + 1), (*id).to_owned()));
            }
            let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let described = match ec2.call(&borrowed).await {
                Ok(xml) => described_instances(&xml),
                Err(e) => match real_error(Err(e)) {
                    None => return Ok(()),
                    Some(e) => return Err(self.cloud_error("DescribeInstances", e)),
                },
            };
            if described.values().all(|(state, _)| state == "terminated") {
                return Ok(());
            }
            if started.elapsed() > STATE_TIMEOUT {
                return Err(self.cloud_error(
                    "waiting for termination",
                    format!(
                        "instances still not terminated after {}s",
                        STATE_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Everything tagged `lab=<name>` (and the IAM entities under `/lab/<name>/`), as a
    /// record `delete_all` can work through.
    async fn find_tagged(
        &self,
        clients: &Clients,
        name: &str,
        region: &str,
    ) -> Result<AwsResources, ProviderError> {
        let tag = format!("tag:{LAB_TAG}");
        let by_tag = |action: &'static str| {
            let tag = tag.clone();
            async move {
                self.call(
                    &clients.ec2,
                    &[
                        ("Action", action),
                        ("Filter.1.Name", &tag),
                        ("Filter.1.Value.1", name),
                    ],
                )
                .await
            }
        };
        let instances_xml = by_tag("DescribeInstances").await?;
        let instances = described_instances(&instances_xml)
            .into_iter()
            .filter(|(_, (state, _))| state != "terminated")
            .map(|(id, _)| Ec2Instance {
                node: String::new(),
                instance_id: id,
                private_ip: String::new(),
            })
            .collect();
        let security_group_id = xml_texts(&by_tag("DescribeSecurityGroups").await?, "groupId")
            .into_iter()
            .next();
        let key_pair = xml_texts(&by_tag("DescribeKeyPairs").await?, "keyName")
            .into_iter()
            .next();
        let path = format!("/lab/{name}/");
        let roles = self
            .call(&clients.iam, &[("Action", "ListRoles"), ("PathPrefix", &path)])
            .await?;
        let role = iam_names_under(&roles, "RoleName", &path).into_iter().next();
        let profiles = self
            .call(
                &clients.iam,
                &[("Action", "ListInstanceProfiles"), ("PathPrefix", &path)],
            )
            .await?;
        let instance_profile = iam_names_under(&profiles, "InstanceProfileName", &path)
            .into_iter()
            .next();
        let role_policy = match &role {
            Some(role) => {
                let policies = self
                    .call(
                        &clients.iam,
                        &[("Action", "ListRolePolicies"), ("RoleName", role)],
                    )
                    .await?;
                xml_texts(&policies, "member").into_iter().next()
            }
            None => None,
        };
        let mut keys = Vec::new();
        let prefix = format!("alias/lab-{name}-");
        let aliases = clients
            .kms
            .list_aliases()
            .limit(100)
            .send()
            .await
            .map_err(|e| self.cloud_error("ListAliases", DisplayErrorContext(e)))?;
        for alias in aliases.aliases() {
            let (Some(alias_name), Some(key_id)) = (alias.alias_name(), alias.target_key_id()) else {
                continue;
            };
            if !alias_name.starts_with(&prefix) {
                continue;
            }
            let tags = clients
                .kms
                .list_resource_tags()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| {
                    self.cloud_error(format!("ListResourceTags {key_id}"), DisplayErrorContext(e))
                })?;
            if tags
                .tags()
                .iter()
                .any(|t| t.tag_key() == LAB_TAG && t.tag_value() == name)
            {
                keys.push(KmsKey {
                    cluster: alias_name[prefix.len()..].to_owned(),
                    key_id: key_id.to_owned(),
                    alias: alias_name.to_owned(),
                });
            }
        }
        Ok(AwsResources {
            endpoint: self.options.endpoint.clone().unwrap_or_default(),
            region: region.to_owned(),
            keys,
            instances,
            ec2_lab: Some(Ec2Lab {
                name: name.to_owned(),
                security_group_id,
                key_pair,
                role,
                role_policy,
                instance_profile,
                ..Ec2Lab::default()
            }),
            ..AwsResources::default()
        })
    }

    /// `lab down --sweep`: deletes everything tagged with this lab's name.
    pub fn sweep(&self) -> Result<Vec<String>, ProviderError> {
        let name = self.lab_name();
        self.runtime()?.block_on(async {
            let region = self.region().await?;
            let clients = self.clients(&region).await?;
            let found = self.find_tagged(&clients, &name, &region).await?;
            let mut done = self.delete_all(&clients, &found).await?;
            if done.is_empty() {
                done.push(format!("nothing tagged {LAB_TAG}={name} left in {region}"));
            }
            Ok(done)
        })
    }

    /// The bill of materials and its hourly cost, as shown before anything is created.
    fn proposal(&self, plan: &[PlannedCluster], setup: &Setup) -> String {
        let nodes: usize = plan.iter().map(|c| c.nodes.len()).sum();
        let keys = plan.len();
        let price = INSTANCE_PRICES
            .iter()
            .find(|(t, _)| *t == self.options.instance_type)
            .map(|(_, p)| *p);
        let public = if self.options.reach == Reach::Public {
            PUBLIC_IPV4_PER_HOUR
        } else {
            0.0
        };
        let mut text = format!(
            "lab {} will create in {} (subnet {}, image {}):\n",
            setup.name, setup.region, setup.subnet_id, setup.ami
        );
        text.push_str(&format!(
            "  {nodes} x EC2 instance {} with an 8 GiB encrypted gp3 volume, tagged {LAB_TAG}={}\n",
            self.options.instance_type, setup.name
        ));
        text.push_str(&format!("  {keys} x KMS key (deleted 7 days after `lab down`)\n"));
        text.push_str("  1 x security group, 1 x key pair, 1 x IAM role with an instance profile\n");
        match price {
            Some(price) => {
                let hourly =
                    nodes as f64 * (price + ROOT_VOLUME_PER_HOUR + public) + keys as f64 * KMS_KEY_PER_HOUR;
                text.push_str(&format!(
                    "estimated cost: ${hourly:.3} per hour (${:.2} per day) at us-east-1 on-demand prices\n",
                    hourly * 24.0
                ));
            }
            None => text.push_str(&format!(
                "estimated cost: unknown for instance type {} (lab knows {})\n",
                self.options.instance_type,
                INSTANCE_PRICES
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        text
    }

    /// Asks on the terminal unless `--yes`; without a terminal, refuses.
    fn confirm(&self) -> Result<(), ProviderError> {
        if self.options.yes {
            return Ok(());
        }
        let refused = |message: &str| ProviderError::Unsupported {
            provider: NAME,
            message: message.to_owned(),
        };
        if !std::io::stdin().is_terminal() {
            return Err(refused(
                "nothing created: confirm with --yes when not running on a terminal",
            ));
        }
        eprint!("create these resources? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| refused(&format!("cannot read the answer: {e}")))?;
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            Ok(())
        } else {
            Err(refused("nothing created: not confirmed"))
        }
    }
}

impl Default for AwsOptions {
    /// The flags' defaults: a t3.small per node on Amazon Linux 2023, reached publicly.
    fn default() -> AwsOptions {
        AwsOptions {
            name: None,
            profile: None,
            region: None,
            endpoint: None,
            instance_type: "t3.small".to_owned(),
            ami: None,
            subnet_id: None,
            allow_cidr: None,
            ssh_user: "ec2-user".to_owned(),
            ssh_key: None,
            ssh_port: 22,
            reach: Reach::Public,
            remote_dir: PathBuf::from("/opt/lab"),
            ssh_timeout: Duration::from_secs(300),
            yes: false,
            from_terraform: None,
        }
    }
}

impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn plan(&self, topology: &Topology, _home: &LabHome) -> Result<Vec<PlannedCluster>, ProviderError> {
        let setup = self.resolve_setup()?;
        *lock(&self.setup) = Some(setup.clone());
        if let Some(lab) = &setup.terraform {
            return self.plan_terraform(topology, lab);
        }
        let total: usize = topology.clusters.iter().map(|c| c.nodes.len()).sum();
        let addresses = node_addresses(&setup.cidr, &setup.name, total).map_err(|message| {
            ProviderError::Unsupported {
                provider: NAME,
                message,
            }
        })?;
        let mut next = addresses.into_iter();
        let mut plan = Vec::new();
        for cluster in &topology.clusters {
            let ports = (cluster.nodes[0].api_port, cluster.nodes[0].cluster_port);
            let (seal, join) = kms_and_tag_join(
                AwsKmsContext {
                    region: setup.region.clone(),
                    kms_key_id: kms_alias(&setup.name, &cluster.name),
                    endpoint: self.options.endpoint.clone(),
                    credentials: self.node_credentials(),
                },
                self.auto_join(
                    &setup.region,
                    JOIN_TAG,
                    &format!("{}-{}", setup.name, cluster.name),
                ),
                ports.0,
            );
            let nodes = cluster
                .nodes
                .iter()
                .map(|node| {
                    let ip = next.next().unwrap_or(Ipv4Addr::UNSPECIFIED).to_string();
                    lock(&self.private_ips).insert(format!("{}/{}", cluster.name, node.name), ip.clone());
                    self.plan_node(
                        cluster,
                        &node.name,
                        &ip,
                        None,
                        &self.options.ssh_user,
                        &seal,
                        &join,
                        ports,
                    )
                })
                .collect();
            plan.push(PlannedCluster {
                name: cluster.name.clone(),
                seal: SealKind::Awskms,
                dr_role: cluster.dr_role,
                nodes,
            });
        }
        Ok(plan)
    }

    fn preflight(&self, plan: &[PlannedCluster]) -> Result<(), ProviderError> {
        self.local.check_labnode()?;
        if let Some(key) = &self.options.ssh_key {
            public_key_of(key).map_err(|message| ProviderError::Unsupported {
                provider: NAME,
                message,
            })?;
        }
        if let Some(cidr) = &self.options.allow_cidr {
            subnet_range(cidr).map_err(|message| ProviderError::Unsupported {
                provider: NAME,
                message: format!("--allow-cidr: {message}"),
            })?;
        }
        let setup = lock(&self.setup).clone();
        let Some(setup) = setup else {
            return Err(ProviderError::Unsupported {
                provider: NAME,
                message: "preflight before plan".to_owned(),
            });
        };
        match &setup.terraform {
            Some(lab) => {
                if self.options.ssh_key.is_none() {
                    return Err(ProviderError::Unsupported {
                        provider: NAME,
                        message: "--from-terraform needs --ssh-key: the private key whose public half \
                                  the module's ssh_public_key holds"
                            .to_owned(),
                    });
                }
                eprintln!(
                    "==> adopting Terraform lab {} in {}: {} instance(s); nothing will be created",
                    lab.name,
                    lab.region,
                    lab.nodes.len()
                );
                Ok(())
            }
            None => {
                eprint!("{}", self.proposal(plan, &setup));
                self.confirm()
            }
        }
    }

    fn provision(
        &self,
        home: &LabHome,
        state: &mut State,
        configs: &[(PathBuf, String)],
        renderer: &Renderer,
    ) -> Result<(), ProviderError> {
        let setup = lock(&self.setup)
            .clone()
            .ok_or_else(|| ProviderError::Unsupported {
                provider: NAME,
                message: "provision before plan".to_owned(),
            })?;
        match &setup.terraform {
            Some(lab) => {
                let key = self.options.ssh_key.clone().unwrap_or_default();
                *lock(&self.ssh_key) = Some(key.clone());
                state.aws = Some(AwsResources {
                    endpoint: self.options.endpoint.clone().unwrap_or_default(),
                    region: lab.region.clone(),
                    instances: lab
                        .nodes
                        .iter()
                        .map(|n| Ec2Instance {
                            node: format!("{}/{}", lab.cluster, n.name),
                            instance_id: n.instance_id.clone(),
                            private_ip: n.private_ip.clone(),
                        })
                        .collect(),
                    ec2_lab: Some(Ec2Lab {
                        name: lab.name.clone(),
                        profile: self.options.profile.clone(),
                        adopted: true,
                        ssh_key: key,
                        remote_dir: self.options.remote_dir.clone(),
                        ..Ec2Lab::default()
                    }),
                    ..AwsResources::default()
                });
                home.save(state)?;
            }
            None => {
                self.runtime()?.block_on(async {
                    let clients = self.clients(&setup.region).await?;
                    self.create_all(&clients, &setup, state, configs, renderer).await
                })?;
            }
        }
        self.prepare_hosts(state)
    }

    fn host(&self, node: &NodeState) -> Arc<dyn Host> {
        self.ssh_host(node)
    }

    fn labnode(&self) -> &Path {
        &self.remote_labnode
    }

    fn local_labnode(&self) -> &Path {
        self.local.labnode()
    }

    fn teardown(&self, _home: &LabHome, state: Option<&State>) -> Result<Vec<String>, ProviderError> {
        let Some(state) = state else {
            return Ok(Vec::new());
        };
        let mut done = self.stop_nodes(state);
        let Some(aws) = &state.aws else {
            return Ok(done);
        };
        if aws.ec2_lab.as_ref().is_some_and(|lab| lab.adopted) {
            done.push(
                "the instances and keys belong to Terraform: `terraform destroy` removes them".to_owned(),
            );
            return Ok(done);
        }
        let region = aws.region.clone();
        done.extend(self.runtime()?.block_on(async {
            let clients = self.clients(&region).await?;
            self.delete_all(&clients, aws).await
        })?);
        Ok(done)
    }
}

/// Waits for cloud-init (absent on emulated machines: then nothing to wait for).
const CLOUD_INIT_WAIT: &str =
    "if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null || { cloud-init status; exit 1; }; fi";

/// The nodes' trust policy: only EC2 may assume the role.
const ASSUME_ROLE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// What a node may do: find its peers, and use its cluster's keys (nothing else).
fn node_policy(keys: &[KmsKey], region: &str) -> String {
    let key_arns: Vec<String> = keys
        .iter()
        .map(|k| format!("arn:aws:kms:{region}:*:key/{}", k.key_id))
        .collect();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": key_arns}
        ]
    })
    .to_string()
}

fn kms_alias(name: &str, cluster: &str) -> String {
    format!("alias/lab-{name}-{cluster}")
}

fn kms_tag(key: &str, value: &str) -> Result<aws_sdk_kms::types::Tag, ProviderError> {
    aws_sdk_kms::types::Tag::builder()
        .tag_key(key)
        .tag_value(value)
        .build()
        .map_err(|e| ProviderError::Cloud {
            provider: NAME,
            action: "CreateKey".to_owned(),
            message: e.to_string(),
        })
}

fn lab_record(aws: &mut AwsResources) -> &mut Ec2Lab {
    aws.ec2_lab.get_or_insert_with(Ec2Lab::default)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `(network, host count)` of an IPv4 CIDR.
fn subnet_range(cidr: &str) -> Result<(u32, u32), String> {
    let (ip, bits) = cidr
        .split_once('/')
        .ok_or_else(|| format!("\"{cidr}\" is not an IPv4 CIDR (like 10.0.1.0/24)"))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| format!("\"{cidr}\": bad address"))?;
    let bits: u32 = bits
        .parse()
        .ok()
        .filter(|b| *b <= 32)
        .ok_or_else(|| format!("\"{cidr}\": bad prefix length"))?;
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    Ok((u32::from(ip) & mask, 1u32 << (32 - bits)))
}

/// `count` consecutive addresses in `cidr` for the lab's nodes: from host 11 in small
/// subnets; in large ones (a default VPC's /20) at an offset derived from the lab name, so
/// two labs in one subnet rarely collide (AWS refuses a taken address with a clear error).
fn node_addresses(cidr: &str, name: &str, count: usize) -> Result<Vec<Ipv4Addr>, String> {
    let (network, size) = subnet_range(cidr)?;
    let count = count as u32;
    // AWS reserves the first four addresses and the last one of every subnet.
    let usable_end = size.saturating_sub(1);
    if FIRST_HOST + count > usable_end {
        return Err(format!("{count} nodes do not fit subnet {cidr}"));
    }
    let spare = usable_end - FIRST_HOST - count;
    let offset = if size > 256 {
        let digest = Sha256::digest(name.as_bytes());
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % (spare + 1)
    } else {
        0
    };
    Ok((0..count)
        .map(|i| Ipv4Addr::from(network + FIRST_HOST + offset + i))
        .collect())
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
fn described_instances(xml: &str) -> HashMap<String, (String, Option<String>)> {
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

/// The names of the IAM entities in a List answer whose path is exactly `path` (emulators
/// ignore `PathPrefix`, and a prefix would also match `/lab/<name>-other/`).
fn iam_names_under(xml: &str, name_field: &str, path: &str) -> Vec<String> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.has_tag_name("member"))
        .filter(|member| {
            member
                .children()
                .any(|c| c.has_tag_name("Path") && c.text() == Some(path))
        })
        .filter_map(|member| {
            member
                .children()
                .find(|c| c.has_tag_name(name_field))
                .and_then(|c| c.text())
                .map(str::to_owned)
        })
        .collect()
}

/// RunInstances' refusal while a just-created instance profile is not yet visible to EC2.
fn is_profile_propagation(error: &QueryError) -> bool {
    matches!(error, QueryError::Api { code, message, .. }
        if code == "InvalidParameterValue" && message.contains("iamInstanceProfile"))
}

/// The public half of an operator's private key: `KEY.pub` beside it.
fn public_key_of(private: &Path) -> Result<String, String> {
    if let Err(e) = std::fs::metadata(private) {
        return Err(format!("--ssh-key {}: {e}", private.display()));
    }
    let public = PathBuf::from(format!("{}.pub", private.display()));
    std::fs::read_to_string(&public).map_err(|e| {
        format!(
            "--ssh-key {}: cannot read its public key {} ({e}); create it with `ssh-keygen -y -f {} > {}`",
            private.display(),
            public.display(),
            private.display(),
            public.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_start_at_host_11_or_at_a_name_derived_offset() {
        let small = node_addresses("10.0.1.0/24", "demo", 3).unwrap();
        assert_eq!(
            small,
            ["10.0.1.11", "10.0.1.12", "10.0.1.13"].map(|a| a.parse::<Ipv4Addr>().unwrap())
        );
        let large = node_addresses("172.31.16.0/20", "demo", 3).unwrap();
        let (network, size) = subnet_range("172.31.16.0/20").unwrap();
        assert_eq!(large.len(), 3);
        for (i, address) in large.iter().enumerate() {
            let host = u32::from(*address) - network;
            assert!((FIRST_HOST..size - 1).contains(&host), "{address}");
            assert_eq!(u32::from(*address), u32::from(large[0]) + i as u32);
        }
        assert_ne!(large, node_addresses("172.31.16.0/20", "other", 3).unwrap());
        assert_eq!(
            large,
            node_addresses("172.31.16.0/20", "demo", 3).unwrap(),
            "stable per name"
        );
        assert!(node_addresses("10.0.1.0/28", "demo", 5)
            .unwrap_err()
            .contains("do not fit"));
        assert!(subnet_range("10.0.1.0").unwrap_err().contains("not an IPv4 CIDR"));
        assert!(subnet_range("10.0.1.0/33").unwrap_err().contains("prefix length"));
        assert!(subnet_range("10.0.300.0/24").unwrap_err().contains("bad address"));
    }

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

    #[test]
    fn iam_lists_are_filtered_by_exact_path() {
        let xml = r#"<ListInstanceProfilesResponse><ListInstanceProfilesResult><InstanceProfiles>
            <member><Path>/lab/demo/</Path><InstanceProfileName>lab-demo-node</InstanceProfileName>
              <Roles><member><Path>/lab/demo/</Path><RoleName>lab-demo-node</RoleName></member></Roles></member>
            <member><Path>/lab/demo-2/</Path><InstanceProfileName>lab-demo-2-node</InstanceProfileName></member>
            <member><Path>/</Path><InstanceProfileName>unrelated</InstanceProfileName></member>
        </InstanceProfiles></ListInstanceProfilesResult></ListInstanceProfilesResponse>"#;
        assert_eq!(
            iam_names_under(xml, "InstanceProfileName", "/lab/demo/"),
            ["lab-demo-node"]
        );
        assert_eq!(iam_names_under(xml, "RoleName", "/lab/demo/"), ["lab-demo-node"]);
    }

    #[test]
    fn node_policy_allows_discovery_and_only_the_lab_keys() {
        let keys = [KmsKey {
            cluster: "primary".into(),
            key_id: "k-1".into(),
            alias: "alias/lab-demo-primary".into(),
        }];
        let policy: serde_json::Value = serde_json::from_str(&node_policy(&keys, "eu-west-1")).unwrap();
        assert_eq!(policy["Statement"][0]["Action"][0], "ec2:DescribeInstances");
        assert_eq!(
            policy["Statement"][1]["Resource"],
            serde_json::json!(["arn:aws:kms:eu-west-1:*:key/k-1"])
        );
        assert_eq!(
            policy["Statement"][1]["Action"],
            serde_json::json!(["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"])
        );
    }

    #[test]
    fn proposal_lists_resources_and_prices_them() {
        let home = LabHome::new(PathBuf::from("/lab"));
        let provider = AwsProvider::new(
            LocalProvider::new(PathBuf::from("labnode")),
            &home,
            AwsOptions::default(),
        );
        let setup = Setup {
            name: "demo".into(),
            region: "us-east-1".into(),
            subnet_id: "subnet-1".into(),
            vpc_id: "vpc-1".into(),
            cidr: "10.0.1.0/24".into(),
            ami: "ami-1".into(),
            root_device: "/dev/xvda".into(),
            terraform: None,
        };
        let node = |name: &str| {
            provider.plan_node(
                &crate::topology::Topology::load("ha3", None).unwrap().clusters[0],
                name,
                "10.0.1.11",
                None,
                "ec2-user",
                &SealContext { awskms: None },
                &JoinContext {
                    leader_api_addrs: Vec::new(),
                    auto_join: None,
                },
                (8200, 8201),
            )
        };
        let plan = [PlannedCluster {
            name: "primary".into(),
            seal: SealKind::Awskms,
            dr_role: None,
            nodes: vec![node("a"), node("b"), node("c")],
        }];
        let text = provider.proposal(&plan, &setup);
        assert!(text.contains("3 x EC2 instance t3.small"), "{text}");
        assert!(text.contains("1 x KMS key"), "{text}");
        // 3 x (0.0208 + volume + public IPv4 0.005) + one key.
        assert!(text.contains("estimated cost: $0.081 per hour"), "{text}");
        assert_eq!(
            plan[0].nodes[0].state.ssh.as_ref().unwrap().host,
            "",
            "public address unknown until launch"
        );
        assert_eq!(
            plan[0].nodes[0].state.config,
            Path::new("/opt/lab/primary/a/node.hcl")
        );
    }

    #[test]
    fn only_a_known_region_and_a_pub_key_beside_the_private_one_pass() {
        assert!(REGIONS.contains(&"us-east-1") && !REGIONS.contains(&"us-east-9"));
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        std::fs::write(&key, "private").unwrap();
        assert!(public_key_of(&key).unwrap_err().contains("ssh-keygen -y -f"));
        std::fs::write(dir.path().join("id.pub"), "ssh-ed25519 AAAA me\n").unwrap();
        assert_eq!(public_key_of(&key).unwrap(), "ssh-ed25519 AAAA me\n");
        assert!(public_key_of(&dir.path().join("missing"))
            .unwrap_err()
            .contains("--ssh-key"));
    }
}
