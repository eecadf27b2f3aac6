//! Taking a lab away: stopping its nodes, deleting what `state.json` records, and
//! `lab down --sweep`, which finds everything tagged with the lab's name instead.

use std::time::{Duration, Instant};

use aws_sdk_kms::error::DisplayErrorContext;

use super::ec2::{described_instances, Clients};
use super::{AwsProvider, LAB_TAG, POLL};
use crate::host::Host;
use crate::provider::cloud::{retire_kms_key, xml_texts, KEY_DELETION_DAYS};
use crate::provider::ProviderError;
use crate::state::{AwsResources, Ec2Instance, Ec2Lab, KmsKey, State};

/// How long instances may take to reach `terminated`.
const TERMINATED_TIMEOUT: Duration = Duration::from_secs(600);

impl AwsProvider {
    /// Stops every recorded node process over ssh; an unreachable machine is reported, not
    /// fatal (its instance is about to be terminated).
    pub(super) fn stop_nodes(&self, state: &State) -> Vec<String> {
        let mut lines = Vec::new();
        for cluster in &state.clusters {
            for node in &cluster.nodes {
                let Some(process) = &node.process else { continue };
                let host = self.ssh_host(node);
                let name = format!("{}/{}", cluster.name, node.name);
                if !host.is_running(process) {
                    continue;
                }
                match crate::fault::stop_process(host.as_ref(), process) {
                    Ok(()) => lines.push(format!("stopped {name} (pid {}) over ssh", process.pid)),
                    Err(e) => lines.push(format!("could not stop {name} over ssh: {e}")),
                }
            }
        }
        lines
    }

    /// Deletes what `aws` records: instances (waiting until terminated), security group,
    /// key pair, IAM role and profile, KMS keys. Already-gone resources are skipped.
    pub(super) async fn delete_all(
        &self,
        clients: &Clients,
        aws: &AwsResources,
    ) -> Result<Vec<String>, ProviderError> {
        let mut done = Vec::new();
        let lab = aws.ec2_lab.clone().unwrap_or_default();
        let ids: Vec<&str> = aws.instances.iter().map(|i| i.instance_id.as_str()).collect();
        if !ids.is_empty() {
            self.terminate_instances(clients, &ids).await?;
            self.await_terminated(clients, &ids).await?;
            done.push(format!(
                "terminated {} EC2 instance(s): {}",
                ids.len(),
                ids.join(" ")
            ));
        }
        if let Some(group) = &lab.security_group_id {
            self.delete_security_group(clients, group).await?;
            done.push(format!("deleted security group {group}"));
        }
        if let Some(key) = &lab.key_pair {
            self.ec2_delete(
                clients,
                &format!("DeleteKeyPair {key}"),
                &[("Action", "DeleteKeyPair"), ("KeyName", key)],
            )
            .await?;
            done.push(format!("deleted key pair {key}"));
        }
        if lab.ssh_key_created && lab.ssh_key.exists() {
            std::fs::remove_file(&lab.ssh_key).map_err(|source| crate::state::StateError::Io {
                path: lab.ssh_key.clone(),
                source,
            })?;
        }
        if let Some(role) = &lab.role {
            let mut calls: Vec<Vec<(&str, &str)>> = Vec::new();
            if let Some(profile) = lab.instance_profile.as_deref() {
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
                self.iam_delete(clients, &format!("{} {role}", params[0].1), &params)
                    .await?;
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

    async fn await_terminated(&self, clients: &Clients, ids: &[&str]) -> Result<(), ProviderError> {
        let started = Instant::now();
        loop {
            let Some(described) = self.describe_instances_unless_gone(clients, ids).await? else {
                return Ok(());
            };
            if described.values().all(|(state, _)| state == "terminated") {
                return Ok(());
            }
            if started.elapsed() > TERMINATED_TIMEOUT {
                return Err(self.cloud_error(
                    "waiting for termination",
                    format!(
                        "instances still not terminated after {}s",
                        TERMINATED_TIMEOUT.as_secs()
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
                self.ec2(
                    clients,
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
            .iam(clients, &[("Action", "ListRoles"), ("PathPrefix", &path)])
            .await?;
        let role = iam_names_under(&roles, "RoleName", &path).into_iter().next();
        let profiles = self
            .iam(
                clients,
                &[("Action", "ListInstanceProfiles"), ("PathPrefix", &path)],
            )
            .await?;
        let instance_profile = iam_names_under(&profiles, "InstanceProfileName", &path)
            .into_iter()
            .next();
        let role_policy = match &role {
            Some(role) => {
                let policies = self
                    .iam(clients, &[("Action", "ListRolePolicies"), ("RoleName", role)])
                    .await?;
                xml_texts(&policies, "member").into_iter().next()
            }
            None => None,
        };
        Ok(AwsResources {
            endpoint: self.options.endpoint.clone().unwrap_or_default(),
            region: region.to_owned(),
            keys: self.find_tagged_keys(clients, name).await?,
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

    /// The KMS keys behind `alias/lab-<name>-*` that carry the tag `lab=<name>`.
    async fn find_tagged_keys(&self, clients: &Clients, name: &str) -> Result<Vec<KmsKey>, ProviderError> {
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
        Ok(keys)
    }

    /// `lab down --sweep`: deletes everything tagged with this lab's name.
    pub fn sweep(&self) -> Result<Vec<String>, ProviderError> {
        let name = self.lab_name();
        self.runtime()?.block_on(async {
            let region = self.region().await?;
            let clients = self.connect(&region).await?;
            let found = self.find_tagged(&clients, &name, &region).await?;
            let mut done = self.delete_all(&clients, &found).await?;
            if done.is_empty() {
                done.push(format!("nothing tagged {LAB_TAG}={name} left in {region}"));
            }
            Ok(done)
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
