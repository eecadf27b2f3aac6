//! Where a lab's machines come from and what the node templates are told about them.
//!
//! A provider turns a [`Topology`] into planned nodes (addresses, paths, the seal and join
//! facts for the template), checks the resources are free, hands out the [`Host`] that
//! runs the nodes, and tears everything down. `local` runs Shamir clusters on 127.0.0.1;
//! `localstack` runs the same processes on 127.0.1.x with the awskms seal and EC2
//! auto_join, creating the KMS keys and instances in LocalStack ([`Provider::provision`])
//! and deleting them in [`Provider::teardown`]; `aws` creates real (or emulated) EC2
//! instances and runs each node on its own instance over ssh.

mod aws;
mod cloud;
mod local;
mod localstack;
mod terraform;

pub use aws::{AwsOptions, AwsProvider, Reach};
pub use local::LocalProvider;
pub use localstack::{
    kms_client as localstack_kms_client, LocalStackProvider, DEFAULT_ENDPOINT as DEFAULT_LOCALSTACK_ENDPOINT,
};
pub use terraform::{TerraformLab, TerraformNode};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::{Host, HostError};
use crate::render::{
    AutoJoinContext, AwsKmsContext, JoinContext, ListenerContext, NodeContext, RenderError, Renderer,
    SealContext,
};
use crate::state::{LabHome, NodeState, State, StateError};
use crate::topology::{Cluster, DrRole, SealKind, Topology};

/// Which provider `lab up --provider` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderKind {
    /// Processes on 127.0.0.1, no sudo, no cloud.
    Local,
    /// Processes on 127.0.1.x, auto-unsealed by LocalStack's KMS, joined by EC2 tags.
    Localstack,
    /// One EC2 instance per node, driven over ssh (`--endpoint` for LocalStack's EC2).
    Aws,
}

impl ProviderKind {
    /// The name recorded in `state.json`, so later commands rebuild the same provider.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Localstack => "localstack",
            ProviderKind::Aws => "aws",
        }
    }
}

/// Why a provider could not plan, check, start or remove a lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No labnode binary where lab looks for it.
    #[error("cannot find labnode: looked next to lab ({}), in LABNODE_BIN and on PATH; build it with `cargo build -p labnode` or set LABNODE_BIN", next_to_lab.display())]
    LabnodeNotFound {
        /// The sibling path that was tried first.
        next_to_lab: PathBuf,
    },
    /// The labnode binary exists but does not run.
    #[error("{} does not run (`labnode version` failed): {detail}", labnode.display())]
    LabnodeBroken {
        /// The binary.
        labnode: PathBuf,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// Ports the lab needs are taken; nothing was started.
    #[error("cannot start the lab, ports already in use (nothing was started):\n{}", .0.join("\n"))]
    PortsInUse(Vec<String>),
    /// The topology asks for something this provider cannot supply.
    #[error("provider {provider}: {message}")]
    Unsupported {
        /// The provider's name.
        provider: &'static str,
        /// What is missing and what to use instead.
        message: String,
    },
    /// A cloud API call (LocalStack's EC2 or KMS) failed.
    #[error("provider {provider}: {action} failed: {message}")]
    Cloud {
        /// The provider's name.
        provider: &'static str,
        /// The API action and its subject.
        action: String,
        /// The API's or transport's explanation.
        message: String,
    },
    /// `state.json` names a provider this build does not have.
    #[error("this lab was started by provider \"{0}\", which this lab binary does not know")]
    UnknownProvider(String),
    /// Starting or stopping a process failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A node's user data could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Reading or writing lab state failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What a provider decided for a topology before anything exists: the clusters to record
/// and render, and (aws) where their machines come from. Only [`Provider::plan`] makes one,
/// and [`Provider::preflight`] and [`Provider::provision`] take it, so neither can run
/// before planning.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The clusters in start order.
    pub clusters: Vec<PlannedCluster>,
    /// The aws provider's machines: created by lab, or adopted from Terraform.
    ec2: Option<aws::Ec2Plan>,
}

impl Plan {
    /// A plan of processes on machines that already exist (local, localstack).
    pub fn of_clusters(clusters: Vec<PlannedCluster>) -> Plan {
        Plan { clusters, ec2: None }
    }

    /// Every planned node with its cluster's name, in start order.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &PlannedNode)> {
        self.clusters
            .iter()
            .flat_map(|c| c.nodes.iter().map(move |n| (c.name.as_str(), n)))
    }
}

/// One cluster, planned: the state to record and the template context of each node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCluster {
    /// Cluster name.
    pub name: String,
    /// Seal type.
    pub seal: SealKind,
    /// DR role it is prepared for.
    pub dr_role: Option<DrRole>,
    /// Nodes in start order.
    pub nodes: Vec<PlannedNode>,
}

/// One node, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNode {
    /// What `state.json` will record (no process yet).
    pub state: NodeState,
    /// What the node template renders from.
    pub context: NodeContext,
}

/// The stanzas of a cluster that unseals through KMS and finds its peers by EC2 tag
/// (`discover` is the go-discover string; every node listens on `api_port`).
fn kms_and_tag_join(kms: AwsKmsContext, discover: String, api_port: u16) -> (SealContext, JoinContext) {
    let seal = SealContext { awskms: Some(kms) };
    let join = JoinContext {
        leader_api_addrs: Vec::new(),
        auto_join: Some(AutoJoinContext {
            discover,
            scheme: "http".to_owned(),
            port: api_port,
        }),
    };
    (seal, join)
}

/// A node listening on `ip` with its cluster's shared ports, its files in `dir`: how the
/// providers whose nodes each have an address of their own (localstack, aws) plan a node.
fn node_on_address(
    cluster: &Cluster,
    node_name: &str,
    ip: &str,
    (api_port, cluster_port): (u16, u16),
    dir: PathBuf,
    seal: &SealContext,
    join: &JoinContext,
) -> PlannedNode {
    let data = dir.join("data");
    let context = NodeContext {
        node_id: node_name.to_owned(),
        cluster_name: cluster.name.clone(),
        data_path: data.display().to_string(),
        api_addr: format!("http://{ip}:{api_port}"),
        cluster_addr: format!("https://{ip}:{cluster_port}"),
        listener: ListenerContext {
            address: format!("{ip}:{api_port}"),
            cluster_address: format!("{ip}:{cluster_port}"),
            tls_disable: true,
        },
        seal: seal.clone(),
        join: join.clone(),
        ui: true,
        log_level: cluster.log_level.clone(),
    };
    PlannedNode {
        state: NodeState {
            name: node_name.to_owned(),
            api_addr: context.api_addr.clone(),
            api_port,
            cluster_port,
            config: dir.join("node.hcl"),
            log: dir.join("labnode.log"),
            data,
            dir,
            process: None,
            ssh: None,
        },
        context,
    }
}

/// A source of machines for a lab.
pub trait Provider {
    /// The name recorded in `state.json`.
    fn name(&self) -> &'static str;
    /// Assigns addresses, paths, seal and join facts to every node of the topology.
    fn plan(&self, topology: &Topology, home: &LabHome) -> Result<Plan, ProviderError>;
    /// Checks, before anything starts, that the plan can run (ports free, binary works).
    fn preflight(&self, plan: &Plan) -> Result<(), ProviderError>;
    /// Creates the cloud resources `plan` refers to, recording each in `state` (and
    /// `state.json`) as it is made, so `teardown` finds them even after a failure.
    /// `configs` are the rendered node files in node order, for providers whose machines
    /// receive them at boot (EC2 user data, rendered with `renderer`).
    fn provision(
        &self,
        _plan: &Plan,
        _home: &LabHome,
        _state: &mut State,
        _configs: &[(PathBuf, String)],
        _renderer: &Renderer,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
    /// The host that runs `node` (one machine for every node locally, one per node on EC2).
    fn host(&self, node: &NodeState) -> Arc<dyn Host>;
    /// The labnode executable on the hosts.
    fn labnode(&self) -> &Path;
    /// The labnode executable on this machine, which `lab shell` offers as `vault`.
    fn local_labnode(&self) -> &Path {
        self.labnode()
    }
    /// Stops every process of the lab in `home`, including ones `state` does not know
    /// about (a crash between start and record), and deletes the cloud resources `state`
    /// records; returns one line per thing stopped or deleted.
    fn teardown(&self, home: &LabHome, state: Option<&State>) -> Result<Vec<String>, ProviderError>;
}

/// The provider `lab up` asked for, with its settings.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    /// Processes on 127.0.0.1.
    #[default]
    Local,
    /// LocalStack at this URL.
    Localstack {
        /// LocalStack's URL.
        endpoint: String,
    },
    /// EC2 instances over ssh.
    Aws(Box<AwsOptions>),
}

/// Builds the provider `up` asked for, for a lab in `home`.
pub fn for_choice(choice: &ProviderChoice, home: &LabHome) -> Result<Box<dyn Provider>, ProviderError> {
    match choice {
        ProviderChoice::Local => Ok(Box::new(LocalProvider::discover()?)),
        ProviderChoice::Localstack { endpoint } => Ok(Box::new(LocalStackProvider::new(
            LocalProvider::discover()?,
            endpoint,
        ))),
        ProviderChoice::Aws(options) => Ok(Box::new(AwsProvider::new(
            LocalProvider::discover()?,
            home,
            (**options).clone(),
        ))),
    }
}

/// Rebuilds the provider that started an existing lab, for every command after `up`.
pub fn for_state(state: &State, home: &LabHome) -> Result<Box<dyn Provider>, ProviderError> {
    match state.provider.as_str() {
        "local" => Ok(Box::new(LocalProvider::new(state.labnode.clone()))),
        "localstack" => Ok(Box::new(LocalStackProvider::from_state(state))),
        "aws" => Ok(Box::new(AwsProvider::from_state(state, home))),
        other => Err(ProviderError::UnknownProvider(other.to_owned())),
    }
}
