//! Command line: [`RawArgs`] is what clap parsed, as close to the flags as possible;
//! [`RawArgs::resolve`] turns it into [`Settings`], with the topology loaded, the templates
//! read and the lab home made absolute, so commands never look at raw strings again.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::practice::PracticeAction;
use crate::provider::{AwsOptions, ProviderChoice, ProviderKind, Reach, DEFAULT_LOCALSTACK_ENDPOINT};
use crate::render::{RenderError, Renderer};
use crate::runbook::{Runbook, RunbookError};
use crate::state::LabHome;
use crate::topology::{Topology, TopologyError};

/// Why the command line could not be turned into settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// `--topology` names no built-in or a bad file.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// `--templates` is unusable.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The drill names no built-in or a bad runbook.
    #[error(transparent)]
    Runbook(#[from] RunbookError),
    /// The current directory is needed for a relative lab home and is unavailable.
    #[error("cannot determine the current directory: {0}")]
    CurrentDir(std::io::Error),
    /// A flag that only means something for another provider.
    #[error("{flag} only applies to --provider {applies_to}")]
    WrongProvider {
        /// The flag as typed.
        flag: &'static str,
        /// The provider it belongs to.
        applies_to: &'static str,
    },
}

/// Where the nodes of a new lab run: shared by `up` and `drill`.
#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    /// Where the nodes run.
    #[arg(long, value_enum, default_value = "local")]
    pub provider: ProviderKind,
    /// The AWS API URL: LocalStack's for --provider localstack (default
    /// $LAB_LOCALSTACK_ENDPOINT or http://127.0.0.1:4566); for --provider aws only to
    /// use an emulator instead of AWS.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// AWS settings.
    #[command(flatten)]
    pub aws: Box<AwsMachineArgs>,
}

/// Where an AWS lab lives: shared by `up --provider aws` and `down --sweep`.
#[derive(Debug, Clone, Args)]
pub struct AwsAccessArgs {
    /// The lab's name: every AWS resource is tagged lab=NAME (default: derived from the lab home).
    #[arg(long)]
    pub name: Option<String>,
    /// AWS profile from ~/.aws/config (default: the standard chain, AWS_PROFILE).
    #[arg(long)]
    pub profile: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's).
    #[arg(long)]
    pub region: Option<String>,
}

/// Machines of an AWS lab (`up --provider aws`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "AWS (--provider aws)")]
pub struct AwsMachineArgs {
    /// Where lab finds the lab's AWS resources.
    #[command(flatten)]
    pub access: AwsAccessArgs,
    /// EC2 instance type of every node.
    #[arg(long, default_value = "t3.small")]
    pub instance_type: String,
    /// Image (default: the newest Amazon Linux 2023 for x86_64).
    #[arg(long)]
    pub ami: Option<String>,
    /// Subnet for the instances (default: the default VPC's first default subnet).
    #[arg(long)]
    pub subnet_id: Option<String>,
    /// Who may reach the API and ssh (default: your public address/32, from checkip.amazonaws.com).
    #[arg(long)]
    pub allow_cidr: Option<String>,
    /// Login on the instances.
    #[arg(long, default_value = "ec2-user")]
    pub ssh_user: String,
    /// Your private key; its KEY.pub becomes the key pair (default: lab creates one under the home).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// sshd's port on the instances.
    #[arg(long, default_value_t = 22)]
    pub ssh_port: u16,
    /// Reach the instances at their public or private addresses.
    #[arg(long, value_enum, default_value = "public")]
    pub reach: Reach,
    /// lab's directory on the instances.
    #[arg(long, default_value = "/opt/lab")]
    pub remote_dir: PathBuf,
    /// Seconds to wait for ssh on new instances.
    #[arg(long, default_value_t = 300)]
    pub ssh_timeout: u64,
    /// Create the resources without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Adopt the instances of a terraform/ deployment (its `lab` output) instead of creating any.
    #[arg(long)]
    pub from_terraform: Option<PathBuf>,
}

/// Runs Vault-style HA and DR labs from labnode clusters on this machine.
#[derive(Debug, Parser)]
#[command(name = "lab", version, about)]
pub struct RawArgs {
    /// Directory holding the lab's state, configs, data and logs.
    #[arg(long, global = true, env = "LAB_HOME", default_value = ".lab")]
    pub home: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: RawCommand,
}

/// Flags shared by the commands that render configurations.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// single, ha3, ha5, dr, or a topology TOML file.
    #[arg(long, default_value = "ha3")]
    pub topology: String,
    /// API port of the first node; node i gets base + 10*i, its cluster port is API + 1.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Directory with a node.hcl.hbs replacing the built-in template.
    #[arg(long, env = "LAB_TEMPLATES")]
    pub templates: Option<PathBuf>,
}

/// The subcommands, as typed.
#[derive(Debug, Subcommand)]
pub enum RawCommand {
    /// Render, start, initialize and unseal a lab, then print its status.
    Up {
        /// Topology, ports and templates.
        #[command(flatten)]
        render: RenderArgs,
        /// Where the nodes run.
        #[command(flatten)]
        provider: ProviderArgs,
        /// Print the final status as JSON on stdout (progress still goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Show every node: address, leader/follower/sealed/down, voter, sealed.
    Status {
        /// {"clusters":[{"name","nodes":[{"name","api_addr","state","voter","sealed"}]}]}
        #[arg(long)]
        json: bool,
    },
    /// Print `export VAULT_ADDR=... VAULT_TOKEN=...` for a node or a cluster's active node.
    Env {
        /// NODE, CLUSTER or CLUSTER/NODE (default: the first cluster).
        target: Option<String>,
    },
    /// Print a cluster's root token and unseal keys.
    Creds {
        /// Cluster (default: the first one).
        cluster: Option<String>,
        /// As `vault operator init -format=json` prints them.
        #[arg(long)]
        json: bool,
    },
    /// Open $SHELL with VAULT_ADDR, VAULT_TOKEN and a `vault` command on PATH.
    Shell {
        /// NODE, CLUSTER or CLUSTER/NODE (default: the first cluster).
        target: Option<String>,
    },
    /// Print a node's labnode log.
    Logs {
        /// NODE or CLUSTER/NODE.
        node: String,
        /// Keep printing as the log grows.
        #[arg(short, long)]
        follow: bool,
    },
    /// Break things on purpose: kill, stop or start nodes.
    Fault {
        /// The fault.
        #[command(subcommand)]
        action: FaultAction,
    },
    /// Write every node's HCL to a directory for inspection, without starting anything.
    Render {
        /// Topology, ports and templates.
        #[command(flatten)]
        render: RenderArgs,
        /// Output directory; files are OUT/<cluster>/<node>.hcl.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a failover drill: bring up its topology, run its steps, report, tear down.
    Drill {
        /// A built-in drill (leader-loss, partition-leader, two-of-five, dr-failover, dr-failover-batch,
        /// failback, snapshot-restore) or a runbook TOML file.
        drill: String,
        /// Write journal.json, report.md and report.html here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Run the drill N times (a fresh lab each time) and report per-step p50/p95.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
        /// API port of the first node.
        #[arg(long)]
        base_port: Option<u16>,
        /// Directory with a node.hcl.hbs replacing the built-in template.
        #[arg(long, env = "LAB_TEMPLATES")]
        templates: Option<PathBuf>,
        /// Where each run's lab runs.
        #[command(flatten)]
        provider: ProviderArgs,
    },
    /// Exam-style exercises: list, start NAME, check, hint, reset, solution.
    Practice {
        /// The practice command.
        #[command(subcommand)]
        action: PracticeArgs,
    },
    /// Stop every node and remove data (logs are kept); idempotent.
    Down {
        /// Also delete the whole lab home, logs included.
        #[arg(long)]
        purge: bool,
        /// Also find and delete every AWS resource tagged lab=NAME, even without state.json.
        #[arg(long)]
        sweep: bool,
        /// Where to sweep.
        #[command(flatten)]
        access: AwsAccessArgs,
        /// The AWS API URL, for sweeping an emulator.
        #[arg(long)]
        endpoint: Option<String>,
    },
}

/// `lab practice ...`, as typed.
#[derive(Debug, Clone, Subcommand)]
pub enum PracticeArgs {
    /// List the exercises.
    List,
    /// Bring up an exercise's lab, prepare it, print the task and start the timer.
    Start {
        /// A built-in exercise name (see `list`) or an exercise TOML file.
        #[arg(value_name = "NAME")]
        exercise: String,
        /// API port of the first node (as `lab up --base-port`).
        #[arg(long)]
        base_port: Option<u16>,
        /// Where the exercise's lab runs (as `lab up`).
        #[command(flatten)]
        provider: ProviderArgs,
    },
    /// Grade the lab: pass or fail per check, and the time taken so far.
    Check,
    /// Show the next hint.
    Hint,
    /// Tear the exercise's lab down and start it again (timer and hints too).
    Reset,
    /// Print the scripted solution.
    Solution {
        /// Also run it against the lab.
        #[arg(long)]
        run: bool,
    },
}

impl PracticeArgs {
    fn resolve(self) -> Result<PracticeAction, CliError> {
        Ok(match self {
            PracticeArgs::List => PracticeAction::List,
            PracticeArgs::Start {
                exercise,
                base_port,
                provider,
            } => PracticeAction::Start {
                exercise,
                base_port,
                provider: provider.choice()?,
            },
            PracticeArgs::Check => PracticeAction::Check,
            PracticeArgs::Hint => PracticeAction::Hint,
            PracticeArgs::Reset => PracticeAction::Reset,
            PracticeArgs::Solution { run } => PracticeAction::Solution { run },
        })
    }
}

/// `lab fault ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum FaultAction {
    /// SIGKILL a node or every node of a cluster (a crash).
    Kill {
        /// NODE, CLUSTER or CLUSTER/NODE.
        target: String,
    },
    /// Stop a node or cluster gracefully (SIGTERM).
    Stop {
        /// NODE, CLUSTER or CLUSTER/NODE.
        target: String,
    },
    /// Cut a node's cluster port from its peers (both directions); clients still reach it.
    Partition {
        /// NODE, CLUSTER or CLUSTER/NODE.
        target: String,
    },
    /// Undo `partition`.
    Heal {
        /// NODE, CLUSTER or CLUSTER/NODE.
        target: String,
    },
    /// Start a stopped or killed node again (it comes back sealed).
    Start {
        /// NODE, CLUSTER or CLUSTER/NODE.
        target: String,
        /// Unseal it with the cluster's stored keys and wait until it rejoined.
        #[arg(long)]
        unseal: bool,
    },
}

/// Resolved settings: everything a command needs, already validated.
pub struct Settings {
    /// The lab home, absolute.
    pub home: LabHome,
    /// The command with its resolved inputs.
    pub command: Command,
}

/// A command ready to run.
pub enum Command {
    /// `lab up`.
    Up {
        /// The lab shape with ports assigned.
        topology: Topology,
        /// The node template.
        renderer: Renderer,
        /// Where nodes run, with that provider's settings.
        provider: ProviderChoice,
        /// JSON output.
        json: bool,
    },
    /// `lab status`.
    Status {
        /// JSON output.
        json: bool,
    },
    /// `lab env`.
    Env {
        /// NODE|CLUSTER.
        target: Option<String>,
    },
    /// `lab creds`.
    Creds {
        /// CLUSTER.
        cluster: Option<String>,
        /// JSON output.
        json: bool,
    },
    /// `lab shell`.
    Shell {
        /// NODE|CLUSTER.
        target: Option<String>,
    },
    /// `lab logs`.
    Logs {
        /// NODE.
        node: String,
        /// Follow.
        follow: bool,
    },
    /// `lab fault`.
    Fault(FaultAction),
    /// `lab render`.
    Render {
        /// The lab shape with ports assigned.
        topology: Topology,
        /// The node template.
        renderer: Renderer,
        /// Output directory.
        out: PathBuf,
    },
    /// `lab drill`.
    Drill {
        /// The checked runbook.
        runbook: Runbook,
        /// Its topology with ports assigned.
        topology: Topology,
        /// The node template.
        renderer: Renderer,
        /// Report directory.
        report: Option<PathBuf>,
        /// Runs.
        repeat: u32,
        /// Where each run's lab runs.
        provider: ProviderChoice,
    },
    /// `lab practice`.
    Practice(PracticeAction),
    /// `lab down`.
    Down {
        /// Delete the home too.
        purge: bool,
        /// Sweep AWS for resources tagged with the lab's name, here.
        sweep: Option<Box<AwsOptions>>,
    },
}

impl ProviderArgs {
    /// The provider and its settings; AWS flags with another provider are refused, not ignored.
    pub fn choice(self) -> Result<ProviderChoice, CliError> {
        let ProviderArgs {
            provider: kind,
            endpoint,
            aws,
        } = self;
        let aws = *aws;
        if kind != ProviderKind::Aws {
            let stray = [
                ("--name", aws.access.name.is_some()),
                ("--profile", aws.access.profile.is_some()),
                ("--region", aws.access.region.is_some()),
                ("--ami", aws.ami.is_some()),
                ("--subnet-id", aws.subnet_id.is_some()),
                ("--allow-cidr", aws.allow_cidr.is_some()),
                ("--ssh-key", aws.ssh_key.is_some()),
                ("--from-terraform", aws.from_terraform.is_some()),
            ];
            if let Some((flag, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(CliError::WrongProvider {
                    flag,
                    applies_to: "aws",
                });
            }
        }
        Ok(match kind {
            ProviderKind::Local => {
                if endpoint.is_some() {
                    return Err(CliError::WrongProvider {
                        flag: "--endpoint",
                        applies_to: "localstack or aws",
                    });
                }
                ProviderChoice::Local
            }
            ProviderKind::Localstack => ProviderChoice::Localstack {
                endpoint: endpoint
                    .or_else(|| std::env::var("LAB_LOCALSTACK_ENDPOINT").ok())
                    .unwrap_or_else(|| DEFAULT_LOCALSTACK_ENDPOINT.to_owned()),
            },
            ProviderKind::Aws => ProviderChoice::Aws(Box::new(AwsOptions {
                name: aws.access.name,
                profile: aws.access.profile,
                region: aws.access.region,
                endpoint,
                instance_type: aws.instance_type,
                ami: aws.ami,
                subnet_id: aws.subnet_id,
                allow_cidr: aws.allow_cidr,
                ssh_user: aws.ssh_user,
                ssh_key: aws.ssh_key,
                ssh_port: aws.ssh_port,
                reach: aws.reach,
                remote_dir: aws.remote_dir,
                ssh_timeout: Duration::from_secs(aws.ssh_timeout),
                yes: aws.yes,
                from_terraform: aws.from_terraform,
            })),
        })
    }
}

impl RenderArgs {
    fn resolve(self) -> Result<(Topology, Renderer), CliError> {
        let topology = Topology::load(&self.topology, self.base_port)?;
        let renderer = Renderer::new(self.templates.as_deref())?;
        Ok((topology, renderer))
    }
}

impl RawArgs {
    /// Loads and checks everything the flags point at.
    pub fn resolve(self) -> Result<Settings, CliError> {
        let home = if self.home.is_absolute() {
            self.home
        } else {
            std::env::current_dir()
                .map_err(CliError::CurrentDir)?
                .join(self.home)
        };
        let command = match self.command {
            RawCommand::Up {
                render,
                provider,
                json,
            } => {
                let (topology, renderer) = render.resolve()?;
                Command::Up {
                    topology,
                    renderer,
                    provider: provider.choice()?,
                    json,
                }
            }
            RawCommand::Render { render, out } => {
                let (topology, renderer) = render.resolve()?;
                Command::Render {
                    topology,
                    renderer,
                    out,
                }
            }
            RawCommand::Status { json } => Command::Status { json },
            RawCommand::Env { target } => Command::Env { target },
            RawCommand::Creds { cluster, json } => Command::Creds { cluster, json },
            RawCommand::Shell { target } => Command::Shell { target },
            RawCommand::Logs { node, follow } => Command::Logs { node, follow },
            RawCommand::Fault { action } => Command::Fault(action),
            RawCommand::Drill {
                drill,
                report,
                repeat,
                base_port,
                templates,
                provider,
            } => {
                let provider = provider.choice()?;
                let runbook = Runbook::load(&drill)?;
                let (topology, renderer) = RenderArgs {
                    topology: runbook.topology.clone(),
                    base_port,
                    templates,
                }
                .resolve()?;
                Command::Drill {
                    runbook,
                    topology,
                    renderer,
                    report,
                    repeat,
                    provider,
                }
            }
            RawCommand::Practice { action } => Command::Practice(action.resolve()?),
            RawCommand::Down {
                purge,
                sweep,
                access,
                endpoint,
            } => Command::Down {
                purge,
                sweep: sweep.then(|| {
                    Box::new(AwsOptions {
                        name: access.name,
                        profile: access.profile,
                        region: access.region,
                        endpoint,
                        ..AwsOptions::default()
                    })
                }),
            },
        };
        Ok(Settings {
            home: LabHome::new(home),
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_is_a_valid_clap_definition() {
        use clap::CommandFactory;
        RawArgs::command().debug_assert();
    }

    #[test]
    fn flags_resolve_to_settings() {
        let raw = RawArgs::try_parse_from([
            "lab",
            "--home",
            "/tmp/x",
            "up",
            "--topology",
            "dr",
            "--base-port",
            "9000",
        ])
        .unwrap();
        let settings = raw.resolve().unwrap();
        assert_eq!(settings.home.root(), std::path::Path::new("/tmp/x"));
        let Command::Up {
            topology, provider, ..
        } = settings.command
        else {
            panic!("not up");
        };
        assert!(matches!(provider, ProviderChoice::Local));
        assert_eq!(topology.clusters[1].nodes[0].api_port, 9030);
        let relative = RawArgs::try_parse_from(["lab", "--home", "rel", "status"])
            .unwrap()
            .resolve()
            .unwrap();
        assert!(relative.home.root().is_absolute());
        assert!(RawArgs::try_parse_from(["lab", "up", "--provider", "cloud"]).is_err());
        let localstack = RawArgs::try_parse_from([
            "lab",
            "up",
            "--provider",
            "localstack",
            "--endpoint",
            "http://127.0.0.1:4567",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        let Command::Up { provider, .. } = localstack.command else {
            panic!("not up");
        };
        assert!(
            matches!(&provider, ProviderChoice::Localstack { endpoint } if endpoint == "http://127.0.0.1:4567"),
            "{provider:?}"
        );
        let stray = RawArgs::try_parse_from(["lab", "up", "--ssh-key", "/k"])
            .unwrap()
            .resolve();
        assert_eq!(
            stray.err().map(|e| e.to_string()).as_deref(),
            Some("--ssh-key only applies to --provider aws")
        );
        let aws = RawArgs::try_parse_from([
            "lab",
            "up",
            "--provider",
            "aws",
            "--region",
            "eu-west-1",
            "--reach",
            "private",
            "--yes",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        let Command::Up {
            provider: ProviderChoice::Aws(options),
            ..
        } = aws.command
        else {
            panic!("not aws");
        };
        assert_eq!(options.region.as_deref(), Some("eu-west-1"));
        assert_eq!(options.reach, Reach::Private);
        assert!(options.yes);
        assert_eq!(options.ssh_user, "ec2-user");
    }
}
