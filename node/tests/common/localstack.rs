//! LocalStack EC2 records on loopback addresses for the auto_join tests, made with the
//! server's own signed Query client (the probe and KMS helpers are in `testkit::localstack`).

use aws_query::QueryClient;
use testkit::localstack::{credentials, REGION};

/// The text of the first element named `name` in an EC2 XML response.
pub fn xml_text(xml: &str, name: &str) -> String {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .find(|n| n.tag_name().name() == name)
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        .to_owned()
}

/// A VPC, a subnet and tagged instances in LocalStack, removed on drop (also when a test fails).
pub struct Ec2Lab {
    pub ec2: QueryClient,
    pub vpc_id: String,
    pub subnet_id: String,
    pub instances: Vec<String>,
}

impl Ec2Lab {
    /// VPC 127.0.0.0/16 with the subnet `cidr` (each test its own /24).
    pub async fn new(endpoint: &str, cidr: &str) -> Ec2Lab {
        let ec2 = QueryClient::ec2(Some(endpoint), REGION, credentials()).unwrap();
        let vpc = ec2
            .call(&[("Action", "CreateVpc"), ("CidrBlock", "127.0.0.0/16")])
            .await
            .expect("CreateVpc");
        let mut lab = Ec2Lab {
            ec2,
            vpc_id: xml_text(&vpc, "vpcId"),
            subnet_id: String::new(),
            instances: Vec::new(),
        };
        let subnet = lab
            .ec2
            .call(&[
                ("Action", "CreateSubnet"),
                ("VpcId", &lab.vpc_id),
                ("CidrBlock", cidr),
            ])
            .await
            .expect("CreateSubnet");
        lab.subnet_id = xml_text(&subnet, "subnetId");
        lab
    }

    /// An instance at `ip` tagged vault=`tag`; returns its id.
    pub async fn run_instance(&mut self, ip: &str, tag: &str) -> String {
        let xml = self
            .ec2
            .call(&[
                ("Action", "RunInstances"),
                ("ImageId", "ami-12345678"),
                ("InstanceType", "t3.micro"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("SubnetId", &self.subnet_id),
                ("PrivateIpAddress", ip),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "vault"),
                ("TagSpecification.1.Tag.1.Value", tag),
            ])
            .await
            .expect("RunInstances");
        let id = xml_text(&xml, "instanceId");
        self.instances.push(id.clone());
        id
    }

    /// StopInstances, StartInstances, ... on one instance.
    pub async fn instance_action(&self, action: &str, id: &str) {
        self.ec2
            .call(&[("Action", action), ("InstanceId.1", id)])
            .await
            .unwrap_or_else(|e| panic!("{action} {id}: {e}"));
    }
}

impl Drop for Ec2Lab {
    fn drop(&mut self) {
        let ec2 = self.ec2.clone();
        let (vpc, subnet) = (self.vpc_id.clone(), self.subnet_id.clone());
        let instances = std::mem::take(&mut self.instances);
        // Drop cannot await inside the test's runtime; clean up on a thread with its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if !instances.is_empty() {
                    let mut params = vec![("Action".to_owned(), "TerminateInstances".to_owned())];
                    for (i, id) in instances.iter().enumerate() {
                        params.push((format!("InstanceId.{}", i + 1), id.clone()));
                    }
                    let params: Vec<(&str, &str)> =
                        params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    if let Err(e) = ec2.call(&params).await {
                        eprintln!("cleanup: TerminateInstances failed: {e}");
                    }
                }
                for (action, key, id) in [
                    ("DeleteSubnet", "SubnetId", &subnet),
                    ("DeleteVpc", "VpcId", &vpc),
                ] {
                    if let Err(e) = ec2.call(&[("Action", action), (key, id)]).await {
                        eprintln!("cleanup: {action} {id} failed: {e}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}
