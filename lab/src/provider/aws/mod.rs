//! The aws provider: a lab on EC2 instances, driven over ssh.
//!
//! [`Provider::plan`] resolves the region, credentials and subnet and gives every node a
//! fixed private address in that subnet, so each node's HCL (and the user data carrying it)
//! is complete before any instance exists; what it resolved travels in the [`Plan`].
//! [`Provider::preflight`] prints what will be created with an hourly cost estimate and
//! asks for confirmation. [`Provider::provision`] creates one KMS key per cluster, a
//! security group, a key pair, an IAM role with an instance profile and one tagged
//! instance per node, recording each in `state.json` as it exists; then it waits for ssh
//! on every instance and installs the labnode binary. Everything carries the tag
//! `lab=<name>`, so `lab down --sweep` finds leftovers even without `state.json`. With
//! `--from-terraform DIR` the machines come from the module in `terraform/` instead and
//! nothing is created or deleted here.
//!
//! By concern: [`region`] (region and credentials), [`ec2`] (every EC2 and IAM call, through
//! labnode's signed Query-API client, as the SDK crates for them would double the build;
//! KMS through the AWS SDK), [`plan`] (addresses and node contexts), [`create`] (the named
//! creation steps), [`delete`] (teardown and sweep), [`cost`] (the bill and the prompt),
//! [`hosts`] (ssh and the labnode binary on the instances).

mod cost;
mod create;
mod delete;
mod ec2;
mod hosts;
mod plan;
mod region;

pub(crate) use plan::Ec2Plan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{LocalProvider, Plan, Provider, ProviderError};
use crate::host::{Host, SshHost};
use crate::render::Renderer;
use crate::state::{AwsResources, Ec2Lab, LabHome, NodeState, State};
use crate::topology::Topology;

const NAME: &str = "aws";
/// The auto_join tag key, as in the course.
const JOIN_TAG: &str = "vault";
/// Every resource carries `lab=<name>`.
const LAB_TAG: &str = "lab";
/// Emulators (LocalStack) accept any key; nodes get these when `--endpoint` is set, as
/// there is no instance profile behind an emulator.
const EMULATOR_KEY: &str = "test";
/// Between two polls of a waiting step.
const POLL: Duration = Duration::from_secs(2);

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

/// Labs on EC2 instances reached over ssh.
pub struct AwsProvider {
    options: AwsOptions,
    local: LocalProvider,
    home: LabHome,
    remote_labnode: PathBuf,
    /// One ssh connection per `user@host:port`, opened on first use.
    hosts: Mutex<HashMap<String, Arc<SshHost>>>,
}

impl AwsProvider {
    /// A provider for a new lab in `home` running `local`'s labnode on the instances.
    pub fn new(local: LocalProvider, home: &LabHome, options: AwsOptions) -> AwsProvider {
        AwsProvider {
            remote_labnode: options.remote_dir.join("bin/labnode"),
            options,
            local,
            home: home.clone(),
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
            ssh_key: Some(lab.ssh_key),
            ..AwsOptions::default()
        };
        AwsProvider::new(LocalProvider::new(state.labnode.clone()), home, options)
    }

    /// The lab name: `--name`, else one derived from the home, stable across commands.
    fn lab_name(&self) -> String {
        self.options.name.clone().unwrap_or_else(|| {
            let digest = Sha256::digest(self.home.root().as_os_str().as_encoded_bytes());
            let id: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            id
        })
    }

    /// The private key lab logs in with: the operator's (`--ssh-key`, or the one recorded
    /// in `state.json`), else the one [`create`] saves under the home for the key pair.
    fn ssh_key_file(&self) -> PathBuf {
        self.options
            .ssh_key
            .clone()
            .unwrap_or_else(|| self.home.root().join(create::created_key_path(&self.lab_name())))
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

    fn unsupported(message: impl Into<String>) -> ProviderError {
        ProviderError::Unsupported {
            provider: NAME,
            message: message.into(),
        }
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime, ProviderError> {
        super::cloud::runtime().map_err(|e| self.cloud_error("starting an async runtime", e))
    }

    /// Writes what exists so far to `state.json`, so a failure after this point still
    /// deletes it.
    fn record(&self, state: &mut State, aws: &AwsResources) -> Result<(), ProviderError> {
        state.aws = Some(aws.clone());
        Ok(self.home.save(state)?)
    }

    /// Records the instances of a Terraform deployment as adopted, never to be deleted here.
    fn adopt(
        &self,
        lab: &plan::TerraformLab,
        home: &LabHome,
        state: &mut State,
    ) -> Result<(), ProviderError> {
        state.aws = Some(AwsResources {
            endpoint: self.options.endpoint.clone().unwrap_or_default(),
            region: lab.region.clone(),
            instances: lab
                .nodes
                .iter()
                .map(|n| crate::state::Ec2Instance {
                    node: format!("{}/{}", lab.cluster, n.name),
                    instance_id: n.instance_id.clone(),
                    private_ip: n.private_ip.clone(),
                })
                .collect(),
            ec2_lab: Some(Ec2Lab {
                name: lab.name.clone(),
                profile: self.options.profile.clone(),
                adopted: true,
                ssh_key: self.ssh_key_file(),
                remote_dir: self.options.remote_dir.clone(),
                ..Ec2Lab::default()
            }),
            ..AwsResources::default()
        });
        Ok(home.save(state)?)
    }

    /// The aws part of `plan`, which only this provider's [`Provider::plan`] makes.
    fn ec2_plan<'p>(&self, plan: &'p Plan) -> Result<&'p Ec2Plan, ProviderError> {
        plan.ec2
            .as_ref()
            .ok_or_else(|| Self::unsupported("this plan was made by another provider"))
    }
}

impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn plan(&self, topology: &Topology, _home: &LabHome) -> Result<Plan, ProviderError> {
        let mut ec2 = self.resolve()?;
        let clusters = self.plan_clusters(topology, &mut ec2)?;
        Ok(Plan {
            clusters,
            ec2: Some(ec2),
        })
    }

    fn preflight(&self, plan: &Plan) -> Result<(), ProviderError> {
        self.local.check_labnode()?;
        if let Some(key) = &self.options.ssh_key {
            hosts::public_key_of(key).map_err(Self::unsupported)?;
        }
        if let Some(cidr) = &self.options.allow_cidr {
            plan::subnet_range(cidr)
                .map_err(|message| Self::unsupported(format!("--allow-cidr: {message}")))?;
        }
        match self.ec2_plan(plan)? {
            Ec2Plan::Adopt(lab) => {
                if self.options.ssh_key.is_none() {
                    return Err(Self::unsupported(
                        "--from-terraform needs --ssh-key: the private key whose public half \
                         the module's ssh_public_key holds",
                    ));
                }
                eprintln!(
                    "==> adopting Terraform lab {} in {}: {} instance(s); nothing will be created",
                    lab.name,
                    lab.region,
                    lab.nodes.len()
                );
                Ok(())
            }
            Ec2Plan::Create(machines) => {
                eprint!("{}", self.proposal(&plan.clusters, machines));
                self.confirm()
            }
        }
    }

    fn provision(
        &self,
        plan: &Plan,
        home: &LabHome,
        state: &mut State,
        configs: &[(PathBuf, String)],
        renderer: &Renderer,
    ) -> Result<(), ProviderError> {
        match self.ec2_plan(plan)? {
            Ec2Plan::Adopt(lab) => self.adopt(lab, home, state)?,
            Ec2Plan::Create(machines) => self.runtime()?.block_on(async {
                let clients = self.connect(&machines.region).await?;
                self.create_all(&clients, machines, state, configs, renderer)
                    .await
            })?,
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
            let clients = self.connect(&region).await?;
            self.delete_all(&clients, aws).await
        })?);
        Ok(done)
    }
}
