//! Planning: where the machines come from ([`Ec2Plan`]) and what every node is told
//! (addresses in the subnet, the KMS key alias, the auto_join tag), all before anything
//! exists.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

pub(super) use crate::provider::terraform::TerraformLab;

use super::{AwsProvider, Reach, EMULATOR_KEY, JOIN_TAG};
use crate::provider::{
    kms_and_tag_join, node_on_address, terraform, PlannedCluster, PlannedNode, ProviderError,
};
use crate::render::{AwsKmsContext, JoinContext, SealContext, StaticCredentials};
use crate::state::SshAddress;
use crate::topology::{Cluster, SealKind, Topology};

/// Host numbers below this are left to AWS (reserved) and to whatever else lives there.
const FIRST_HOST: u32 = 11;

/// Where the aws provider's machines come from, as `plan` resolved it.
#[derive(Debug, Clone)]
pub(crate) enum Ec2Plan {
    /// lab creates them.
    Create(Box<NewMachines>),
    /// A Terraform deployment made them; lab only adopts them.
    Adopt(TerraformLab),
}

/// What `provision` creates the machines with.
#[derive(Debug, Clone)]
pub(crate) struct NewMachines {
    /// The `lab=` tag value.
    pub name: String,
    pub region: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub ami: String,
    /// The image's root device, which the encrypted volume mapping names.
    pub root_device: String,
    /// `cluster/node` -> the private address the node's config was rendered with.
    pub private_ips: HashMap<String, String>,
}

impl AwsProvider {
    /// Region, subnet and image (or the Terraform outputs), resolved once per `up`.
    pub(super) fn resolve(&self) -> Result<Ec2Plan, ProviderError> {
        if let Some(dir) = &self.options.from_terraform {
            let lab = terraform::read_outputs(dir).map_err(Self::unsupported)?;
            return Ok(Ec2Plan::Adopt(lab));
        }
        let name = self.lab_name();
        if name.is_empty() || name.len() > 40 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Self::unsupported(format!(
                "lab name \"{name}\" must be 1 to 40 letters, digits or dashes"
            )));
        }
        self.runtime()?.block_on(async {
            let region = self.region().await?;
            let clients = self.connect(&region).await?;
            let (subnet_id, vpc_id, cidr) = self.subnet(&clients).await?;
            let (ami, root_device) = self.ami(&clients).await?;
            Ok(Ec2Plan::Create(Box::new(NewMachines {
                name,
                region,
                subnet_id,
                vpc_id,
                cidr,
                ami,
                root_device,
                private_ips: HashMap::new(),
            })))
        })
    }

    /// The clusters of `topology` on the machines of `ec2`; fills in the private address
    /// of every new machine.
    pub(super) fn plan_clusters(
        &self,
        topology: &Topology,
        ec2: &mut Ec2Plan,
    ) -> Result<Vec<PlannedCluster>, ProviderError> {
        let machines = match ec2 {
            Ec2Plan::Adopt(lab) => return self.plan_terraform(topology, lab),
            Ec2Plan::Create(machines) => machines,
        };
        let total: usize = topology.clusters.iter().map(|c| c.nodes.len()).sum();
        let addresses = node_addresses(&machines.cidr, &machines.name, total).map_err(Self::unsupported)?;
        let mut next = addresses.into_iter();
        let mut plan = Vec::new();
        for cluster in &topology.clusters {
            let ports = (cluster.nodes[0].api_port, cluster.nodes[0].cluster_port);
            let (seal, join) = kms_and_tag_join(
                AwsKmsContext {
                    region: machines.region.clone(),
                    kms_key_id: kms_alias(&machines.name, &cluster.name),
                    endpoint: self.options.endpoint.clone(),
                    credentials: self.node_credentials(),
                },
                self.auto_join(
                    &machines.region,
                    JOIN_TAG,
                    &format!("{}-{}", machines.name, cluster.name),
                ),
                ports.0,
            );
            let mut nodes = Vec::new();
            for node in &cluster.nodes {
                let ip = next.next().unwrap_or(Ipv4Addr::UNSPECIFIED).to_string();
                machines
                    .private_ips
                    .insert(format!("{}/{}", cluster.name, node.name), ip.clone());
                nodes.push(self.plan_node(
                    cluster,
                    &node.name,
                    &ip,
                    None,
                    &self.options.ssh_user,
                    &seal,
                    &join,
                    ports,
                ));
            }
            plan.push(PlannedCluster {
                name: cluster.name.clone(),
                seal: SealKind::Awskms,
                dr_role: cluster.dr_role,
                nodes,
            });
        }
        Ok(plan)
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
    pub(super) fn plan_node(
        &self,
        cluster: &Cluster,
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
            return Err(Self::unsupported(format!(
                "the Terraform module builds one cluster; topology {} has {} (use single, ha3 or ha5)",
                topology.name,
                topology.clusters.len()
            )));
        };
        if cluster.nodes.len() != lab.nodes.len() {
            return Err(Self::unsupported(format!(
                "the Terraform deployment has {} instances but topology {} has {} nodes; \
                 pick the matching --topology or change node_count",
                lab.nodes.len(),
                topology.name,
                cluster.nodes.len()
            )));
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
}

/// The alias of a cluster's KMS key, which its nodes' seal stanza names.
pub(super) fn kms_alias(name: &str, cluster: &str) -> String {
    format!("alias/lab-{name}-{cluster}")
}

/// `(network, host count)` of an IPv4 CIDR.
pub(super) fn subnet_range(cidr: &str) -> Result<(u32, u32), String> {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::provider::aws::AwsOptions;
    use crate::provider::LocalProvider;
    use crate::state::LabHome;

    #[test]
    fn the_plan_carries_each_node_address_that_provision_launches_it_at() {
        let provider = AwsProvider::new(
            LocalProvider::new(PathBuf::from("labnode")),
            &LabHome::new(PathBuf::from("/lab")),
            AwsOptions {
                reach: Reach::Private,
                ..AwsOptions::default()
            },
        );
        let mut ec2 = Ec2Plan::Create(Box::new(NewMachines {
            name: "demo".into(),
            region: "eu-west-1".into(),
            subnet_id: "subnet-1".into(),
            vpc_id: "vpc-1".into(),
            cidr: "10.0.1.0/24".into(),
            ami: "ami-1".into(),
            root_device: "/dev/xvda".into(),
            private_ips: HashMap::new(),
        }));
        let topology = Topology::load("dr", None).unwrap();
        let clusters = provider.plan_clusters(&topology, &mut ec2).unwrap();
        let Ec2Plan::Create(machines) = &ec2 else {
            panic!("not a plan of new machines");
        };
        assert_eq!(machines.private_ips.len(), 2 * 3);
        for cluster in &clusters {
            for node in &cluster.nodes {
                let ip = &machines.private_ips[&format!("{}/{}", cluster.name, node.state.name)];
                assert_eq!(
                    node.state.api_addr,
                    format!("http://{ip}:{}", node.state.api_port)
                );
                let kms = node.context.seal.awskms.as_ref().unwrap();
                assert_eq!(kms.kms_key_id, format!("alias/lab-demo-{}", cluster.name));
            }
        }
        assert_eq!(machines.private_ips["primary/node-a"], "10.0.1.11");
    }

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
}
