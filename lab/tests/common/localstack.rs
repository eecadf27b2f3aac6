//! LocalStack for the tests that create EC2 and KMS resources: a client to check what
//! exists (the probe itself is `testkit::localstack::endpoint`).

use aws_query::QueryClient;
use testkit::localstack::{credentials, REGION};

/// Runs EC2 (labnode's signed client) and KMS checks against LocalStack.
pub struct Aws {
    pub runtime: tokio::runtime::Runtime,
    pub ec2: QueryClient,
    pub iam: QueryClient,
    pub kms: aws_sdk_kms::Client,
}

impl Aws {
    pub fn new(endpoint: &str) -> Aws {
        Aws {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            ec2: QueryClient::ec2(Some(endpoint), REGION, credentials()).unwrap(),
            iam: QueryClient::iam(Some(endpoint), credentials()).unwrap(),
            kms: testkit::localstack::kms(endpoint),
        }
    }

    /// The state name of an instance.
    pub fn instance_state(&self, id: &str) -> String {
        let xml = self
            .runtime
            .block_on(
                self.ec2
                    .call(&[("Action", "DescribeInstances"), ("InstanceId.1", id)]),
            )
            .unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        doc.descendants()
            .find(|n| n.tag_name().name() == "instanceState")
            .and_then(|s| s.children().find(|c| c.tag_name().name() == "name"))
            .and_then(|n| n.text())
            .unwrap_or_else(|| panic!("no instance state in {xml}"))
            .to_owned()
    }

    /// EC2's error code for describing a VPC, `None` when it exists.
    pub fn vpc_error(&self, id: &str) -> Option<String> {
        match self
            .runtime
            .block_on(self.ec2.call(&[("Action", "DescribeVpcs"), ("VpcId.1", id)]))
        {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    pub fn key_state(&self, id: &str) -> String {
        let out = self
            .runtime
            .block_on(self.kms.describe_key().key_id(id).send())
            .unwrap();
        out.key_metadata()
            .unwrap()
            .key_state()
            .unwrap()
            .as_str()
            .to_owned()
    }
}

impl Aws {
    /// One EC2 or IAM call that must succeed; its XML answer.
    pub fn call(&self, client: &QueryClient, params: &[(&str, &str)]) -> String {
        self.runtime
            .block_on(client.call(params))
            .unwrap_or_else(|e| panic!("{params:?}: {e}"))
    }

    /// One EC2 or IAM call's error text, `None` when it succeeds.
    pub fn error(&self, client: &QueryClient, params: &[(&str, &str)]) -> Option<String> {
        self.runtime
            .block_on(client.call(params))
            .err()
            .map(|e| e.to_string())
    }

    /// The texts of every element named `name` in `xml`.
    pub fn texts(xml: &str, name: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        doc.descendants()
            .filter(|n| n.tag_name().name() == name)
            .filter_map(|n| n.text().map(str::to_owned))
            .collect()
    }

    /// `field` of the IAM list members whose `Path` is exactly `path` (LocalStack ignores
    /// `PathPrefix` for some lists).
    pub fn members_at(xml: &str, field: &str, path: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        doc.descendants()
            .filter(|n| n.tag_name().name() == "member")
            .filter(|m| {
                m.children()
                    .any(|c| c.tag_name().name() == "Path" && c.text() == Some(path))
            })
            .filter_map(|m| {
                m.children()
                    .find(|c| c.tag_name().name() == field)?
                    .text()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Instances tagged `lab=NAME` that are not terminated.
    pub fn live_instances(&self, lab: &str) -> Vec<String> {
        let xml = self.call(
            &self.ec2,
            &[
                ("Action", "DescribeInstances"),
                ("Filter.1.Name", "tag:lab"),
                ("Filter.1.Value.1", lab),
                ("Filter.2.Name", "instance-state-name"),
                ("Filter.2.Value.1", "pending"),
                ("Filter.2.Value.2", "running"),
                ("Filter.2.Value.3", "stopping"),
                ("Filter.2.Value.4", "stopped"),
            ],
        );
        Aws::texts(&xml, "instanceId")
    }

    /// Everything else `lab=NAME` owns: security groups, key pairs, IAM roles, KMS aliases.
    pub fn leftovers(&self, lab: &str) -> Vec<String> {
        let mut found = Vec::new();
        let labelled =
            |kind: &'static str, names: Vec<String>| names.into_iter().map(move |n| format!("{kind} {n}"));
        for (action, field, kind) in [
            ("DescribeSecurityGroups", "groupId", "security group"),
            ("DescribeKeyPairs", "keyName", "key pair"),
        ] {
            let xml = self.call(
                &self.ec2,
                &[
                    ("Action", action),
                    ("Filter.1.Name", "tag:lab"),
                    ("Filter.1.Value.1", lab),
                ],
            );
            found.extend(labelled(kind, Aws::texts(&xml, field)));
        }
        let path = format!("/lab/{lab}/");
        let roles = self.call(&self.iam, &[("Action", "ListRoles"), ("PathPrefix", &path)]);
        found.extend(labelled("role", Aws::members_at(&roles, "RoleName", &path)));
        let profiles = self.call(
            &self.iam,
            &[("Action", "ListInstanceProfiles"), ("PathPrefix", &path)],
        );
        found.extend(labelled(
            "instance profile",
            Aws::members_at(&profiles, "InstanceProfileName", &path),
        ));
        let aliases = self.runtime.block_on(self.kms.list_aliases().send()).unwrap();
        let prefix = format!("alias/lab-{lab}-");
        found.extend(
            aliases
                .aliases()
                .iter()
                .filter_map(|a| a.alias_name())
                .filter(|a| a.starts_with(&prefix))
                .map(|a| format!("kms {a}")),
        );
        found.sort();
        found.dedup();
        found
    }
}
