//! Adopting machines built by `terraform/`: its `lab` output names the instances, the KMS
//! key and the join tag, so `lab up --provider aws --from-terraform DIR` creates nothing.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

/// The `lab` output of the module in `terraform/`, as `terraform output -json lab` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TerraformLab {
    /// `lab_name`: the `lab` tag on every resource.
    pub name: String,
    /// The region the module deployed to.
    pub region: String,
    /// The one cluster the module builds.
    pub cluster: String,
    /// The seal key.
    pub kms_key_id: String,
    /// The auto_join tag key.
    pub join_tag_key: String,
    /// The auto_join tag value.
    pub join_tag_value: String,
    /// The instances' login.
    pub ssh_user: String,
    /// API port.
    pub api_port: u16,
    /// Cluster port.
    pub cluster_port: u16,
    /// The instances in node order.
    pub nodes: Vec<TerraformNode>,
}

/// One instance of the module.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TerraformNode {
    /// `node1`, `node2`, ...
    pub name: String,
    /// The EC2 instance id.
    pub instance_id: String,
    /// Its address inside the VPC, which the node binds.
    pub private_ip: String,
    /// Its public address, if it has one.
    pub public_ip: Option<String>,
}

/// Runs `terraform -chdir=DIR output -json lab` and reads the answer.
pub fn read_outputs(dir: &Path) -> Result<TerraformLab, String> {
    let output = Command::new("terraform")
        .arg(format!("-chdir={}", dir.display()))
        .args(["output", "-json", "lab"])
        .output()
        .map_err(|e| format!("cannot run terraform ({e}); is it installed and on PATH?"))?;
    if !output.status.success() {
        return Err(format!(
            "`terraform -chdir={} output -json lab` failed: {}; run `terraform apply` there first",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse_outputs(&output.stdout).map_err(|e| {
        format!(
            "the `lab` output of {} is not what lab expects ({e}); is it the module from terraform/?",
            dir.display()
        )
    })
}

/// The `lab` output's JSON; an empty node list is refused here, not at first use, and an
/// instance without a public address (Terraform prints `""`) has `None`.
fn parse_outputs(json: &[u8]) -> Result<TerraformLab, String> {
    let mut lab: TerraformLab = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    if lab.nodes.is_empty() {
        return Err("it lists no nodes".to_owned());
    }
    for node in &mut lab.nodes {
        node.public_ip = node.public_ip.take().filter(|ip| !ip.is_empty());
    }
    Ok(lab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_module_output_and_refuses_other_shapes() {
        let json = br#"{"name":"demo","region":"us-east-1","cluster":"primary","kms_key_id":"k-1",
            "join_tag_key":"vault","join_tag_value":"demo-primary","ssh_user":"ec2-user",
            "api_port":8200,"cluster_port":8201,
            "nodes":[{"name":"node1","instance_id":"i-1","private_ip":"10.0.1.11","public_ip":null}]}"#;
        let lab = parse_outputs(json).unwrap();
        assert_eq!(lab.nodes[0].private_ip, "10.0.1.11");
        assert_eq!(lab.nodes[0].public_ip, None);
        let blank = String::from_utf8_lossy(json).replace("null", "\"\"");
        assert_eq!(parse_outputs(blank.as_bytes()).unwrap().nodes[0].public_ip, None);
        assert!(parse_outputs(br#"{"name":"demo"}"#)
            .unwrap_err()
            .contains("missing field"));
        let empty = String::from_utf8_lossy(json).replace(
            r#"{"name":"node1","instance_id":"i-1","private_ip":"10.0.1.11","public_ip":null}"#,
            "",
        );
        assert!(parse_outputs(empty.as_bytes()).unwrap_err().contains("no nodes"));
    }
}
