//! What a new lab will cost and the operator's go-ahead, before anything is created.

use std::io::{BufRead, IsTerminal, Write};

use super::plan::NewMachines;
use super::{AwsProvider, Reach, LAB_TAG, NAME};
use crate::provider::{PlannedCluster, ProviderError};

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

impl AwsProvider {
    /// The bill of materials and its hourly cost, as shown before anything is created.
    pub(super) fn proposal(&self, plan: &[PlannedCluster], setup: &NewMachines) -> String {
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
    pub(super) fn confirm(&self) -> Result<(), ProviderError> {
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::provider::aws::AwsOptions;
    use crate::provider::LocalProvider;
    use crate::render::{JoinContext, SealContext};
    use crate::state::LabHome;
    use crate::topology::SealKind;

    #[test]
    fn proposal_lists_resources_and_prices_them() {
        let home = LabHome::new(PathBuf::from("/lab"));
        let provider = AwsProvider::new(
            LocalProvider::new(PathBuf::from("labnode")),
            &home,
            AwsOptions::default(),
        );
        let setup = NewMachines {
            name: "demo".into(),
            region: "us-east-1".into(),
            subnet_id: "subnet-1".into(),
            vpc_id: "vpc-1".into(),
            cidr: "10.0.1.0/24".into(),
            ami: "ami-1".into(),
            root_device: "/dev/xvda".into(),
            private_ips: Default::default(),
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
}
