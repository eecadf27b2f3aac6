//! LocalStack for the tests that create EC2 and KMS resources: whether it is up (SKIP when
//! it is not, unless LABNODE_REQUIRE_LOCALSTACK is set) and a client to check what exists.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_query::ec2::{DescribeInstances, Filter, Instance};
use aws_query::iam::{ListInstanceProfiles, ListRoles, Member};
use aws_query::{QueryClient, Request};

/// The LocalStack endpoint, or `None` (after a SKIP notice) when it is down and not required.
pub fn localstack(test: &str) -> Option<String> {
    let endpoint = std::env::var("LABNODE_LOCALSTACK_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:4566".to_owned());
    let health = reqwest::blocking::Client::new()
        .get(format!("{endpoint}/_localstack/health"))
        .timeout(Duration::from_secs(3))
        .send()
        .and_then(|r| r.error_for_status());
    match health {
        Ok(_) => Some(endpoint),
        Err(e) => {
            if std::env::var("LABNODE_REQUIRE_LOCALSTACK").is_ok_and(|v| !v.is_empty() && v != "0") {
                panic!(
                    "LABNODE_REQUIRE_LOCALSTACK is set but LocalStack at {endpoint} is not reachable: {e}"
                );
            }
            eprintln!(
                "SKIP {test}: LocalStack not reachable at {endpoint} ({e}); \
                 run scripts/localstack.sh start (set LABNODE_REQUIRE_LOCALSTACK=1 to fail instead)"
            );
            None
        }
    }
}

/// Runs EC2 (labnode's signed client) and KMS checks against LocalStack.
pub struct Aws {
    pub runtime: tokio::runtime::Runtime,
    pub ec2: QueryClient,
    pub iam: QueryClient,
    pub kms: aws_sdk_kms::Client,
}

impl Aws {
    pub fn new(endpoint: &str) -> Aws {
        let credentials = Credentials::new("test", "test", None, None, "t60");
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(credentials.clone())
            .build();
        Aws {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            ec2: QueryClient::ec2(Some(endpoint), "us-east-1", credentials.clone()).unwrap(),
            iam: QueryClient::iam(Some(endpoint), credentials).unwrap(),
            kms: aws_sdk_kms::Client::from_conf(config),
        }
    }

    /// The state name of an instance.
    pub fn instance_state(&self, id: &str) -> String {
        let instances = self.send(
            &self.ec2,
            &DescribeInstances {
                instance_ids: vec![id.to_owned()],
                ..DescribeInstances::default()
            },
        );
        instances
            .into_iter()
            .find_map(|i| i.state)
            .unwrap_or_else(|| panic!("no instance state for {id}"))
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

    /// One typed EC2 or IAM request that must succeed; what its answer holds.
    pub fn send<R: Request>(&self, client: &QueryClient, request: &R) -> R::Output {
        self.runtime
            .block_on(client.send(request))
            .unwrap_or_else(|e| panic!("{}: {e}", R::ACTION))
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

    /// The names of the IAM list members whose `Path` is exactly `path` (LocalStack ignores
    /// `PathPrefix` for some lists).
    pub fn members_at(members: Vec<Member>, path: &str) -> Vec<String> {
        members
            .into_iter()
            .filter(|m| m.path == path)
            .map(|m| m.name)
            .collect()
    }

    /// Instances tagged `lab=NAME` that are not terminated.
    pub fn live_instances(&self, lab: &str) -> Vec<String> {
        let request = DescribeInstances {
            filters: vec![
                Filter::new("tag:lab", [lab]),
                Filter::new(
                    "instance-state-name",
                    ["pending", "running", "stopping", "stopped"],
                ),
            ],
            instance_ids: Vec::new(),
        };
        let instances: Vec<Instance> = self.send(&self.ec2, &request);
        instances.into_iter().map(|i| i.instance_id).collect()
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
        let path_prefix = Some(path.clone());
        let roles = self.send(
            &self.iam,
            &ListRoles {
                path_prefix: path_prefix.clone(),
            },
        );
        found.extend(labelled("role", Aws::members_at(roles, &path)));
        let profiles = self.send(&self.iam, &ListInstanceProfiles { path_prefix });
        found.extend(labelled("instance profile", Aws::members_at(profiles, &path)));
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
