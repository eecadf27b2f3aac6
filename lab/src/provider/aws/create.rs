//! Creating a lab's machines, one named step per resource (keys, security group, key pair,
//! role, instances), each recording what it made in `state.json` before the next begins,
//! so a failure part-way leaves a record `lab down` deletes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_kms::error::DisplayErrorContext;
use base64::Engine as _;

use super::ec2::Clients;
use super::hosts::public_key_of;
use super::plan::{kms_alias, NewMachines};
use super::{AwsProvider, Reach, JOIN_TAG, LAB_TAG, NAME, POLL};
use crate::bringup::launch_for;
use crate::host::systemd_unit;
use crate::provider::cloud;
use crate::provider::cloud::xml_text;
use crate::provider::ProviderError;
use crate::render::{Renderer, UserDataContext};
use crate::state::{AwsResources, Ec2Instance, Ec2Lab, KmsKey, State};

/// Marks an instance with its `cluster/node`.
const NODE_TAG: &str = "lab-node";
/// The inline policy attached to the nodes' role.
const ROLE_POLICY: &str = "lab-node";
/// How long instances may take to reach `running`.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(600);

/// The nodes' trust policy: only EC2 may assume the role.
const ASSUME_ROLE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// What every instance is launched with.
struct LaunchWith {
    group: String,
    key_name: String,
    profile: String,
}

/// Where the private key of a key pair lab created is saved, under the home.
pub(super) fn created_key_path(name: &str) -> PathBuf {
    Path::new("ssh").join(format!("lab-{name}.pem"))
}

impl AwsProvider {
    /// Creates every resource, recording each in `state` as soon as it exists.
    pub(super) async fn create_all(
        &self,
        clients: &Clients,
        machines: &NewMachines,
        state: &mut State,
        configs: &[(PathBuf, String)],
        renderer: &Renderer,
    ) -> Result<(), ProviderError> {
        let mut aws = AwsResources {
            endpoint: self.options.endpoint.clone().unwrap_or_default(),
            region: machines.region.clone(),
            vpc_id: Some(machines.vpc_id.clone()),
            subnet_id: Some(machines.subnet_id.clone()),
            ec2_lab: Some(Ec2Lab {
                name: machines.name.clone(),
                profile: self.options.profile.clone(),
                remote_dir: self.options.remote_dir.clone(),
                ..Ec2Lab::default()
            }),
            ..AwsResources::default()
        };
        let aws = &mut aws;
        self.record(state, aws)?;
        self.create_keys(clients, machines, state, aws).await?;
        let launch = LaunchWith {
            group: self.create_security_group(clients, machines, state, aws).await?,
            key_name: self.create_key_pair(clients, machines, state, aws).await?,
            profile: self.create_role(clients, machines, state, aws).await?,
        };
        self.launch_instances(clients, machines, state, aws, &launch, configs, renderer)
            .await?;
        self.await_running(clients, state, aws).await?;
        self.record(state, aws)
    }

    /// One KMS key per cluster, tagged, behind the alias the node configs name.
    async fn create_keys(
        &self,
        clients: &Clients,
        machines: &NewMachines,
        state: &mut State,
        aws: &mut AwsResources,
    ) -> Result<(), ProviderError> {
        let name = &machines.name;
        for cluster in &state.clusters.clone() {
            let alias = kms_alias(name, &cluster.name);
            let key_id = cloud::create_kms_key(
                &clients.kms,
                format!("lab {name}: seal key of cluster {}", cluster.name),
                Some(kms_tag(LAB_TAG, name)?),
            )
            .await
            .map_err(|(action, message)| self.cloud_error(action, message))?;
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
        machines: &NewMachines,
        state: &mut State,
        aws: &mut AwsResources,
    ) -> Result<String, ProviderError> {
        let name = &machines.name;
        let group_name = format!("lab-{name}");
        let xml = self
            .ec2(
                clients,
                &[
                    ("Action", "CreateSecurityGroup"),
                    ("GroupName", &group_name),
                    (
                        "GroupDescription",
                        "lab nodes: API and ssh from the operator, cluster port between members",
                    ),
                    ("VpcId", &machines.vpc_id),
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
            self.ec2(clients, &params).await?;
        }
        Ok(group)
    }

    /// The key pair lab logs in with: the operator's public key, or a new one whose
    /// private half is saved under the home (0600); returns its name.
    async fn create_key_pair(
        &self,
        clients: &Clients,
        machines: &NewMachines,
        state: &mut State,
        aws: &mut AwsResources,
    ) -> Result<String, ProviderError> {
        let name = &machines.name;
        let key_name = format!("lab-{name}");
        let key_pair = [
            ("KeyName", key_name.as_str()),
            ("TagSpecification.1.ResourceType", "key-pair"),
            ("TagSpecification.1.Tag.1.Key", LAB_TAG),
            ("TagSpecification.1.Tag.1.Value", name),
        ];
        let key_file = match &self.options.ssh_key {
            Some(private) => {
                let public = public_key_of(private).map_err(Self::unsupported)?;
                let material = base64::engine::general_purpose::STANDARD.encode(public.trim());
                let import = [
                    ("Action", "ImportKeyPair"),
                    ("PublicKeyMaterial", material.as_str()),
                ];
                self.ec2(clients, &[&import[..], &key_pair].concat()).await?;
                private.clone()
            }
            None => {
                let create = [("Action", "CreateKeyPair"), ("KeyType", "rsa")];
                let xml = self.ec2(clients, &[&create[..], &key_pair].concat()).await?;
                let material =
                    xml_text(&xml, "keyMaterial").map_err(|e| self.cloud_error("CreateKeyPair", e))?;
                let path = self.home.save_private(
                    &created_key_path(name),
                    format!("{}\n", material.trim()).as_bytes(),
                )?;
                lab_record(aws).ssh_key_created = true;
                path
            }
        };
        let lab = lab_record(aws);
        lab.key_pair = Some(key_name.clone());
        lab.ssh_key = key_file;
        self.record(state, aws)?;
        Ok(key_name)
    }

    /// The nodes' IAM role, its policy and instance profile; returns the profile's name.
    async fn create_role(
        &self,
        clients: &Clients,
        machines: &NewMachines,
        state: &mut State,
        aws: &mut AwsResources,
    ) -> Result<String, ProviderError> {
        let name = &machines.name;
        let role = format!("lab-{name}-node");
        let path = format!("/lab/{name}/");
        self.iam(
            clients,
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
        let policy = node_policy(&aws.keys, &machines.region);
        self.iam(
            clients,
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
        self.iam(
            clients,
            &[
                ("Action", "CreateInstanceProfile"),
                ("InstanceProfileName", &role),
                ("Path", &path),
            ],
        )
        .await?;
        lab_record(aws).instance_profile = Some(role.clone());
        self.record(state, aws)?;
        self.iam(
            clients,
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
        machines: &NewMachines,
        state: &mut State,
        aws: &mut AwsResources,
        launch: &LaunchWith,
        configs: &[(PathBuf, String)],
        renderer: &Renderer,
    ) -> Result<(), ProviderError> {
        let name = &machines.name;
        let mut rendered = configs.iter();
        for c in 0..state.clusters.len() {
            let cluster = state.clusters[c].name.clone();
            let join = format!("{name}-{cluster}");
            for n in 0..state.clusters[c].nodes.len() {
                let node = state.clusters[c].nodes[n].clone();
                let qualified = format!("{cluster}/{}", node.name);
                let config = rendered.next().map(|(_, text)| text.clone()).unwrap_or_default();
                let service = launch_for(&self.remote_labnode, &cluster, &node);
                let user_data = renderer.render_user_data(&UserDataContext {
                    node: qualified.clone(),
                    ssh_user: node.ssh.as_ref().map_or_else(String::new, |s| s.user.clone()),
                    remote_dir: self.options.remote_dir.display().to_string(),
                    node_dir: node.dir.display().to_string(),
                    config_path: node.config.display().to_string(),
                    config,
                    service: service.service.clone(),
                    unit: systemd_unit(&service),
                })?;
                let private_ip = machines.private_ips.get(&qualified).cloned().ok_or_else(|| {
                    self.cloud_error("RunInstances", format!("{qualified} has no planned address"))
                })?;
                let user_data = base64::engine::general_purpose::STANDARD.encode(user_data);
                let instance_name = format!("{name}-{}", qualified.replace('/', "-"));
                let params = [
                    ("Action", "RunInstances"),
                    ("ImageId", machines.ami.as_str()),
                    ("InstanceType", self.options.instance_type.as_str()),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("SubnetId", machines.subnet_id.as_str()),
                    ("PrivateIpAddress", private_ip.as_str()),
                    ("SecurityGroupId.1", launch.group.as_str()),
                    ("KeyName", launch.key_name.as_str()),
                    ("IamInstanceProfile.Name", launch.profile.as_str()),
                    ("UserData", user_data.as_str()),
                    ("MetadataOptions.HttpTokens", "required"),
                    ("BlockDeviceMapping.1.DeviceName", machines.root_device.as_str()),
                    ("BlockDeviceMapping.1.Ebs.VolumeSize", "8"),
                    ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
                    ("BlockDeviceMapping.1.Ebs.Encrypted", "true"),
                    ("TagSpecification.1.ResourceType", "instance"),
                    ("TagSpecification.1.Tag.1.Key", LAB_TAG),
                    ("TagSpecification.1.Tag.1.Value", name.as_str()),
                    ("TagSpecification.1.Tag.2.Key", JOIN_TAG),
                    ("TagSpecification.1.Tag.2.Value", join.as_str()),
                    ("TagSpecification.1.Tag.3.Key", NODE_TAG),
                    ("TagSpecification.1.Tag.3.Value", qualified.as_str()),
                    ("TagSpecification.1.Tag.4.Key", "Name"),
                    ("TagSpecification.1.Tag.4.Value", instance_name.as_str()),
                    ("TagSpecification.2.ResourceType", "volume"),
                    ("TagSpecification.2.Tag.1.Key", LAB_TAG),
                    ("TagSpecification.2.Tag.1.Value", name.as_str()),
                ];
                let instance = self.run_instance(clients, &qualified, &params).await?;
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

    /// Waits until every instance runs (and has its public address when lab uses those),
    /// then records the addresses lab reaches each node at.
    async fn await_running(
        &self,
        clients: &Clients,
        state: &mut State,
        aws: &AwsResources,
    ) -> Result<(), ProviderError> {
        let started = Instant::now();
        let ids: Vec<&str> = aws.instances.iter().map(|i| i.instance_id.as_str()).collect();
        loop {
            let described = self.describe_instances(clients, &ids).await?;
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
            if started.elapsed() > RUNNING_TIMEOUT {
                return Err(self.cloud_error(
                    "waiting for the instances",
                    format!(
                        "not all running{} after {}s",
                        if self.options.reach == Reach::Public {
                            " with a public address"
                        } else {
                            ""
                        },
                        RUNNING_TIMEOUT.as_secs()
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
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
