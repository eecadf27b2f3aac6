//! `lab`: renders labnode configurations, runs HA and DR clusters of labnode processes,
//! and tears them down again. The binary is a thin wrapper over [`commands::run`].
//!
//! Layers, outside in: [`cli`] (flags to settings), [`commands`] (one function per
//! command), [`lifecycle`] (a whole lab up and down, for commands and practice),
//! [`bringup`] (init/unseal/join), [`fault`] (kill/stop/start/partition/heal of a node),
//! [`status`], [`provider`] (where machines come
//! from), [`host`] (how processes run on them), [`render`] (HCL templates),
//! [`topology`] (lab shapes), [`state`] (`.lab/`), [`api`] (the Vault HTTP endpoints).
//! Drills: [`runbook`] (format and step engine), [`canary`] (the writer measuring RTO and
//! RPO), [`report`] (journal, summary, Markdown and HTML).
//!
//! It must never import the server crate (`labnode`): it runs nodes as processes and talks to
//! them over the Vault API, sharing only `labnode-config` (to check rendered HCL) and
//! `aws-query` (EC2/IAM calls) with the server.

pub mod api;
pub mod bringup;
pub mod canary;
pub mod cli;
pub mod commands;
pub mod fault;
pub mod host;
pub mod lifecycle;
pub mod practice;
pub mod provider;
pub mod render;
pub mod report;
pub mod runbook;
pub mod state;
pub mod status;
pub mod topology;

use std::path::PathBuf;

/// Why a command failed; each layer's error passes through unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// Topology loading.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// Template rendering or config checking.
    #[error(transparent)]
    Render(#[from] render::RenderError),
    /// Provider planning, preflight or teardown.
    #[error(transparent)]
    Provider(#[from] provider::ProviderError),
    /// A process or file action on a host.
    #[error(transparent)]
    Host(#[from] host::HostError),
    /// Lab state.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// `lab practice`.
    #[error(transparent)]
    Practice(#[from] practice::PracticeError),
    /// Bring-up of a node.
    #[error(transparent)]
    Bringup(#[from] bringup::BringupError),
    /// `lab fault`.
    #[error(transparent)]
    Fault(#[from] fault::FaultError),
    /// Writing a drill report.
    #[error(transparent)]
    Report(#[from] report::ReportError),
    /// `lab up` while a lab exists.
    #[error("a lab ({topology}) already exists in {}; use it, or remove it with `lab down`", home.display())]
    AlreadyUp {
        /// The lab home.
        home: PathBuf,
        /// The running lab's topology.
        topology: String,
    },
    /// `lab up` failed; what it started has been removed.
    #[error("{source}\nthe lab was not started; processes were stopped and data removed, logs are kept under {}", home.display())]
    UpFailed {
        /// What went wrong.
        source: Box<LabError>,
        /// Where the logs are.
        home: PathBuf,
    },
    /// A command that needs one node was given a cluster.
    #[error("\"{0}\" is a cluster; this command needs a node (NODE or CLUSTER/NODE)")]
    NotANode(String),
    /// A local file or terminal action failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
