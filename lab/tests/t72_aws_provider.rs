//! `lab up --provider aws` without AWS: LocalStack plays EC2, IAM and KMS (its instances are
//! records only), and a real OpenSSH server listening on the instances' loopback addresses
//! plays their sshd. lab creates the resources, reaches "the instances" over ssh, uploads
//! labnode and starts one node per instance; the nodes find each other by EC2 tag and
//! unseal through KMS. Then faults, `lab down`, and the ways it can go wrong.
//!
//! Needs LocalStack (see testkit::localstack) and /usr/sbin/sshd (scripts/test.sh installs
//! openssh-server).

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::localstack::Aws;
use common::sshd::Sshd;
use common::Lab;
use testkit::ports::PortBlock;

/// A LocalStack subnet on loopback addresses no other test uses: 127.0.X.0/24 in a VPC of
/// its own (LocalStack keeps terminated instances' addresses taken, so every run needs
/// fresh ones).
struct Subnet {
    id: String,
    prefix: String,
}

impl Subnet {
    fn new(aws: &Aws, salt: u32) -> Subnet {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let third = 40 + (std::process::id() ^ nanos ^ salt) % 200;
        let vpc = aws.call(
            &aws.ec2,
            &[("Action", "CreateVpc"), ("CidrBlock", "127.0.0.0/16")],
        );
        let vpc = Aws::texts(&vpc, "vpcId").remove(0);
        let cidr = format!("127.0.{third}.0/24");
        let subnet = aws.call(
            &aws.ec2,
            &[("Action", "CreateSubnet"), ("VpcId", &vpc), ("CidrBlock", &cidr)],
        );
        Subnet {
            id: Aws::texts(&subnet, "subnetId").remove(0),
            prefix: format!("127.0.{third}"),
        }
    }

    /// The address lab gives node `i` (host 11 onwards in a /24).
    fn address(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 11 + i)
    }
}

/// Credentials for LocalStack and no instance metadata lookups (nothing may leave loopback).
fn aws_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A lab name unique to this run, so tag searches only see this test's resources.
fn lab_name(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("t72-{test}-{:x}", (nanos as u64) ^ u64::from(std::process::id()))
}

/// Kills, on drop, any node process whose config lives under `dir` (the "instances'"
/// files), in case a failing test never reached `lab down`.
struct RemoteDir(tempfile::TempDir);

impl RemoteDir {
    fn new() -> RemoteDir {
        RemoteDir(tempfile::Builder::new().prefix("lab-remote-").tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn node_pids(&self) -> Vec<u32> {
        common::node_pids_under(self.path())
    }
}

impl Drop for RemoteDir {
    fn drop(&mut self) {
        for pid in self.node_pids() {
            // SAFETY: kill on a pid whose cmdline names this test's directory.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// What most tests here run against: LocalStack, a fresh subnet, a real sshd on its first
/// three addresses, a directory standing for the instances' disks, and free ports. Declare
/// it before the `Lab`, so the lab's final `down` still reaches the sshd.
struct Rig {
    endpoint: String,
    aws: Aws,
    subnet: Subnet,
    addresses: Vec<String>,
    sshd: Sshd,
    remote: RemoteDir,
    ports: PortBlock,
}

impl Rig {
    /// Three machines; `None` (after a SKIP notice) when `LABNODE_SKIP_LOCALSTACK=1`.
    fn new(salt: u32) -> Option<Rig> {
        Rig::with_machines(salt, 3)
    }

    /// `machines` machines (one per node of the topology).
    fn with_machines(salt: u32, machines: usize) -> Option<Rig> {
        let endpoint = testkit::localstack::endpoint()?;
        let aws = Aws::new(&endpoint);
        let subnet = Subnet::new(&aws, salt);
        let addresses: Vec<String> = (0..machines).map(|i| subnet.address(i)).collect();
        let sshd = Sshd::start_on(&addresses.iter().map(String::as_str).collect::<Vec<_>>());
        Some(Rig {
            endpoint,
            aws,
            subnet,
            addresses,
            sshd,
            remote: RemoteDir::new(),
            ports: PortBlock::new(machines as u16),
        })
    }

    /// A lab home whose commands have LocalStack's credentials.
    fn lab(&self) -> Lab {
        let mut lab = Lab::new();
        lab.env = aws_env();
        lab
    }

    /// `lab up --provider aws` for lab `name` on this rig, with lab's own new key pair.
    fn up_args(&self, name: &str) -> Vec<String> {
        [
            "up",
            "--provider",
            "aws",
            "--endpoint",
            &self.endpoint,
            "--name",
            name,
            "--subnet-id",
            &self.subnet.id,
            "--reach",
            "private",
            "--ssh-port",
            &self.sshd.port().to_string(),
            "--ssh-user",
            &Sshd::user(),
            "--remote-dir",
            &self.remote.path().display().to_string(),
            "--ssh-timeout",
            "20",
            "--base-port",
            &self.ports.arg(),
            "--yes",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// The same with the key this sshd authorizes.
    fn up_args_with_key(&self, name: &str) -> Vec<String> {
        let mut args = self.up_args(name);
        args.extend([
            "--ssh-key".to_owned(),
            self.sshd.client_key().display().to_string(),
        ]);
        args
    }
}

fn run(lab: &Lab, args: &[String]) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.run(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `lab status` until `check` accepts it.
fn wait_status(lab: &Lab, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = lab.status();
        if check(&status) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The course's production shape end to end: three instances made by lab, one node each
/// over ssh, auto_join by tag, auto-unseal by KMS, a crash and a restart, and `lab down`
/// leaving nothing in LocalStack and no process behind.
#[test]
fn aws_lab_over_ssh_auto_joins_unseals_survives_a_crash_and_leaves_nothing() {
    let Some(rig) = Rig::new(1) else {
        return;
    };
    let Rig {
        endpoint,
        aws,
        addresses,
        sshd,
        remote,
        ports,
        ..
    } = &rig;
    let lab = rig.lab();
    let name = lab_name("ha3");

    let args = rig.up_args_with_key(&name);
    let up = run(&lab, &args);
    let progress = stderr(&up);
    assert!(
        up.status.success(),
        "lab up failed:\n{progress}\nsshd:\n{}",
        sshd.log()
    );
    assert!(progress.contains("estimated cost: $0.066 per hour"), "{progress}");
    for address in addresses {
        assert!(
            progress.contains(&format!("waiting for ssh on {}@{address}:", Sshd::user())),
            "{progress}"
        );
    }

    let status = lab.status();
    assert_eq!(
        common::states(&status),
        ["leader", "follower", "follower"],
        "{status}"
    );
    let nodes = status["clusters"][0]["nodes"].as_array().unwrap();
    for (node, address) in nodes.iter().zip(addresses) {
        assert_eq!(
            node["api_addr"],
            format!("http://{address}:{}", ports.base),
            "{status}"
        );
    }
    assert_eq!(aws.live_instances(&name).len(), 3);
    let owned = aws.leftovers(&name);
    assert_eq!(
        owned.len(),
        5,
        "security group, key pair, role, profile, alias: {owned:?}"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.home().join("state.json")).unwrap()).unwrap();
    let key_id = state["aws"]["keys"][0]["key_id"].as_str().unwrap().to_owned();
    assert_eq!(aws.key_state(&key_id), "Enabled");
    // Each node's files went where the plan said, its HCL readable by the owner only.
    let hcl = remote.path().join("primary/node-b/node.hcl");
    let text = std::fs::read_to_string(&hcl).unwrap();
    assert!(text.contains(&format!("tag_value={name}-primary")), "{text}");
    assert!(
        text.contains(&format!("address         = \"{}:{}\"", addresses[1], ports.base)),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&hcl).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // First contact recorded every instance's host key.
    let known = std::fs::read_to_string(lab.home().join("known_hosts")).unwrap();
    for address in addresses {
        assert!(known.contains(&format!("[{address}]:{}", sshd.port())), "{known}");
    }
    assert_eq!(remote.node_pids().len(), 3);

    // The leader crashes; the others elect a new one; restarted, it unseals through KMS.
    lab.ok(&["fault", "kill", "node-a"]);
    wait_status(&lab, "a follower takes over", |s| {
        let states = common::states(s);
        states[0] == "down" && states[1..].contains(&"leader".to_owned())
    });
    lab.ok(&["fault", "start", "node-a"]);
    wait_status(&lab, "node-a rejoins", |s| {
        let node = &s["clusters"][0]["nodes"][0];
        node["state"] == "follower" && node["sealed"] == false
    });
    let mut logs = lab.command(&["logs", "node-a"]).output().unwrap();
    assert!(logs.status.success());
    logs.stdout.truncate(1 << 20);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("unsealed"),
        "node-a's log over ssh"
    );

    let down = lab.command(&["down"]).output().unwrap();
    let progress = stderr(&down);
    assert!(down.status.success(), "{progress}");
    assert!(progress.contains("terminated 3 EC2 instance(s)"), "{progress}");
    assert!(
        remote.node_pids().is_empty(),
        "node processes left: {:?}",
        remote.node_pids()
    );
    assert!(aws.live_instances(&name).is_empty());
    assert_eq!(aws.leftovers(&name), Vec::<String>::new());
    assert_eq!(aws.key_state(&key_id), "PendingDeletion");
    let sweep = lab
        .command(&["down", "--sweep", "--name", &name, "--endpoint", endpoint])
        .output()
        .unwrap();
    assert!(
        stderr(&sweep).contains(&format!("nothing tagged lab={name} left")),
        "{}",
        stderr(&sweep)
    );
}

/// Bad input and failures half-way: each gives one clear message and leaves no resource
/// tagged with the lab's name behind.
#[test]
fn aws_failures_are_clear_and_leave_no_half_made_resources() {
    let Some(rig) = Rig::new(2) else {
        return;
    };
    let Rig {
        aws,
        addresses,
        remote,
        ..
    } = &rig;
    let fails = |lab: &Lab, args: &[String], expect: &[&str]| {
        let out = run(lab, args);
        let text = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded:\n{text}");
        for part in expect {
            assert!(text.contains(part), "{args:?}: expected {part:?} in:\n{text}");
        }
        assert!(
            !lab.home().join("state.json").exists(),
            "state left behind:\n{text}"
        );
        text
    };

    // No credentials anywhere: refused before anything is created.
    let mut lab = Lab::new();
    let empty = tempfile::tempdir().unwrap();
    let nowhere = empty.path().join("none").display().to_string();
    lab.env = vec![
        ("HOME".to_owned(), empty.path().display().to_string()),
        ("AWS_CONFIG_FILE".to_owned(), nowhere.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE".to_owned(), nowhere),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
    ];
    let mut command = lab.command(&["up"]);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ] {
        command.env_remove(var);
    }
    let name = lab_name("nocreds");
    let args = rig.up_args(&name);
    let out = command.args(&args[1..]).output().unwrap();
    let text = stderr(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("no AWS credentials") || text.contains("finding AWS credentials"),
        "{text}"
    );
    assert!(text.contains("AWS_ACCESS_KEY_ID"), "{text}");

    // A region that does not exist: named, with the known ones.
    let lab = rig.lab();
    let mut args = rig.up_args(&lab_name("region"));
    args.extend(["--region".to_owned(), "us-east-9".to_owned()]);
    fails(&lab, &args, &["unknown region \"us-east-9\"", "us-east-1"]);

    // An image that does not exist: named, before anything is created.
    let name = lab_name("ami");
    let mut args = rig.up_args(&name);
    args.extend(["--ami".to_owned(), "ami-0000000000000dead".to_owned()]);
    fails(&lab, &args, &["DescribeImages", "ami-0000000000000dead"]);
    assert_eq!(aws.leftovers(&name), Vec::<String>::new());

    // Without --yes and without a terminal: nothing is created.
    let name = lab_name("noyes");
    let args: Vec<String> = rig.up_args(&name).into_iter().filter(|a| a != "--yes").collect();
    fails(&lab, &args, &["will create", "--yes"]);
    assert_eq!(aws.leftovers(&name), Vec::<String>::new());

    // A key the instances do not accept (lab's own new key pair is not in this sshd's
    // authorized_keys): refused at the first instance, and everything made is deleted.
    let name = lab_name("badkey");
    let args = rig.up_args(&name);
    let text = fails(&lab, &args, &["refused the key", &addresses[0]]);
    assert!(text.contains("deleted key pair"), "{text}");
    assert!(aws.live_instances(&name).is_empty(), "{text}");
    assert_eq!(aws.leftovers(&name), Vec::<String>::new(), "{text}");
    assert!(!lab.home().join("ssh").join(format!("lab-{name}.pem")).exists());

    // EC2 refuses the third instance (its address is taken, as a quota or capacity limit
    // would refuse it): the first two instances and every other resource are removed.
    // A subnet of its own: LocalStack keeps the addresses of the instances above taken.
    let subnet = Subnet::new(aws, 4);
    let addresses: Vec<String> = (0..3).map(|i| subnet.address(i)).collect();
    let squatter = aws.call(
        &aws.ec2,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("SubnetId", &subnet.id),
            ("PrivateIpAddress", &addresses[2]),
        ],
    );
    let squatter = Aws::texts(&squatter, "instanceId").remove(0);
    let name = lab_name("refused");
    let mut args = rig.up_args_with_key(&name);
    let at = args.iter().position(|a| a == "--subnet-id").unwrap() + 1;
    args[at] = subnet.id.clone();
    let text = fails(
        &lab,
        &args,
        &[
            "RunInstances for primary/node-c failed",
            "terminated 2 EC2 instance(s)",
        ],
    );
    assert!(aws.live_instances(&name).is_empty(), "{text}");
    assert_eq!(aws.leftovers(&name), Vec::<String>::new(), "{text}");
    assert_eq!(
        aws.instance_state(&squatter),
        "running",
        "lab touched an instance it does not own"
    );
    aws.call(
        &aws.ec2,
        &[("Action", "TerminateInstances"), ("InstanceId.1", &squatter)],
    );
    assert!(remote.node_pids().is_empty());
}

/// `lab down --sweep` finds what a lost `state.json` no longer records: everything tagged
/// with the lab's name (IAM by its path), and nothing of another lab.
#[test]
fn sweep_deletes_tagged_leftovers_without_state() {
    let Some(endpoint) = testkit::localstack::endpoint() else {
        return;
    };
    let aws = Aws::new(&endpoint);
    let name = lab_name("sweep");
    let other = lab_name("other");
    let subnet = Subnet::new(&aws, 3);
    let tag = |resource: &str, lab: &str| -> Vec<(String, String)> {
        vec![
            ("TagSpecification.1.ResourceType".into(), resource.into()),
            ("TagSpecification.1.Tag.1.Key".into(), "lab".into()),
            ("TagSpecification.1.Tag.1.Value".into(), lab.into()),
        ]
    };
    let call = |client: &aws_query::QueryClient, base: &[(&str, &str)], extra: Vec<(String, String)>| {
        let mut params: Vec<(&str, &str)> = base.to_vec();
        params.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        aws.call(client, &params)
    };
    for lab in [&name, &other] {
        call(
            &aws.ec2,
            &[
                ("Action", "RunInstances"),
                ("ImageId", "ami-12345678"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("SubnetId", &subnet.id),
            ],
            tag("instance", lab),
        );
        let group = format!("lab-{lab}");
        call(
            &aws.ec2,
            &[
                ("Action", "CreateSecurityGroup"),
                ("GroupName", &group),
                ("GroupDescription", "t72"),
            ],
            tag("security-group", lab),
        );
        call(
            &aws.ec2,
            &[("Action", "CreateKeyPair"), ("KeyName", &group)],
            tag("key-pair", lab),
        );
        let role = format!("lab-{lab}-node");
        let path = format!("/lab/{lab}/");
        aws.call(
            &aws.iam,
            &[
                ("Action", "CreateRole"),
                ("RoleName", &role),
                ("Path", &path),
                ("AssumeRolePolicyDocument", "{}"),
            ],
        );
        aws.call(
            &aws.iam,
            &[
                ("Action", "CreateInstanceProfile"),
                ("InstanceProfileName", &role),
                ("Path", &path),
            ],
        );
        aws.call(
            &aws.iam,
            &[
                ("Action", "AddRoleToInstanceProfile"),
                ("InstanceProfileName", &role),
                ("RoleName", &role),
            ],
        );
        let key = aws
            .runtime
            .block_on(
                aws.kms
                    .create_key()
                    .tags(
                        aws_sdk_kms::types::Tag::builder()
                            .tag_key("lab")
                            .tag_value(lab)
                            .build()
                            .unwrap(),
                    )
                    .send(),
            )
            .unwrap();
        let key_id = key.key_metadata().unwrap().key_id().to_owned();
        aws.runtime
            .block_on(
                aws.kms
                    .create_alias()
                    .alias_name(format!("alias/lab-{lab}-primary"))
                    .target_key_id(&key_id)
                    .send(),
            )
            .unwrap();
    }
    assert_eq!(aws.live_instances(&name).len(), 1);
    assert_eq!(aws.leftovers(&name).len(), 5, "{:?}", aws.leftovers(&name));

    let mut lab = Lab::new();
    lab.env = aws_env();
    let out = lab
        .command(&["down", "--sweep", "--name", &name, "--endpoint", &endpoint])
        .output()
        .unwrap();
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("terminated 1 EC2 instance(s)"), "{text}");
    assert!(aws.live_instances(&name).is_empty(), "{text}");
    assert_eq!(aws.leftovers(&name), Vec::<String>::new(), "{text}");
    assert_eq!(
        aws.live_instances(&other).len(),
        1,
        "another lab's instance was swept"
    );
    assert_eq!(
        aws.leftovers(&other).len(),
        5,
        "another lab's resources were swept"
    );

    let cleanup = lab
        .command(&["down", "--sweep", "--name", &other, "--endpoint", &endpoint])
        .output()
        .unwrap();
    assert!(cleanup.status.success(), "{}", stderr(&cleanup));
    assert_eq!(aws.leftovers(&other), Vec::<String>::new());
}

/// `--from-terraform DIR`: lab adopts the instances and key a `terraform/` deployment made
/// (its `lab` output, read by the real terraform from a state file whose resources the
/// test created in LocalStack), runs a node on each over ssh, and on `lab down` stops the
/// nodes but leaves the resources to `terraform destroy`.
#[test]
fn from_terraform_adopts_the_deployment_and_leaves_it_to_terraform() {
    // lab runs terraform from PATH to read the deployment's outputs.
    if testkit::locate::terraform().is_none() {
        return;
    }
    let Some(rig) = Rig::new(5) else {
        return;
    };
    let Rig {
        endpoint,
        aws,
        subnet,
        addresses,
        sshd,
        remote,
        ports,
        ..
    } = &rig;
    let name = lab_name("tf");
    let join = format!("{name}-primary");

    let key = aws.runtime.block_on(aws.kms.create_key().send()).unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let mut nodes = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        let xml = aws.call(
            &aws.ec2,
            &[
                ("Action", "RunInstances"),
                ("ImageId", "ami-12345678"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("SubnetId", &subnet.id),
                ("PrivateIpAddress", address),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "vault"),
                ("TagSpecification.1.Tag.1.Value", &join),
                ("TagSpecification.1.Tag.2.Key", "lab"),
                ("TagSpecification.1.Tag.2.Value", &name),
            ],
        );
        nodes.push(serde_json::json!({
            "name": format!("node{}", i + 1),
            "instance_id": Aws::texts(&xml, "instanceId").remove(0),
            "private_ip": address,
            "public_ip": "",
        }));
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/terraform.tfstate");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    state["outputs"]["lab"]["value"] = serde_json::json!({
        "name": name, "region": "us-east-1", "cluster": "primary", "kms_key_id": key_id,
        "join_tag_key": "vault", "join_tag_value": join, "ssh_user": Sshd::user(),
        "api_port": ports.base, "cluster_port": ports.base + 1, "nodes": nodes,
    });
    let deployment = tempfile::tempdir().unwrap();
    std::fs::write(deployment.path().join("terraform.tfstate"), state.to_string()).unwrap();

    let lab = rig.lab();
    let args: Vec<String> = [
        "up",
        "--provider",
        "aws",
        "--from-terraform",
        &deployment.path().display().to_string(),
        "--endpoint",
        endpoint,
        "--ssh-key",
        &sshd.client_key().display().to_string(),
        "--ssh-port",
        &sshd.port().to_string(),
        "--reach",
        "private",
        "--remote-dir",
        &remote.path().display().to_string(),
        "--ssh-timeout",
        "20",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let up = run(&lab, &args);
    let progress = stderr(&up);
    assert!(up.status.success(), "{progress}\nsshd:\n{}", sshd.log());
    assert!(progress.contains("nothing will be created"), "{progress}");
    assert_eq!(common::states(&lab.status()), ["leader", "follower", "follower"]);
    assert_eq!(
        aws.leftovers(&name),
        Vec::<String>::new(),
        "lab created resources while adopting"
    );

    let down = lab.command(&["down"]).output().unwrap();
    let progress = stderr(&down);
    assert!(down.status.success(), "{progress}");
    assert!(progress.contains("terraform destroy"), "{progress}");
    assert!(remote.node_pids().is_empty());
    assert_eq!(
        aws.live_instances(&name).len(),
        3,
        "adopted instances were terminated"
    );
    assert_eq!(
        aws.key_state(&key_id),
        "Enabled",
        "adopted key was scheduled for deletion"
    );

    for node in &nodes {
        aws.call(
            &aws.ec2,
            &[
                ("Action", "TerminateInstances"),
                ("InstanceId.1", node["instance_id"].as_str().unwrap()),
            ],
        );
    }
    aws.runtime
        .block_on(
            aws.kms
                .schedule_key_deletion()
                .key_id(&key_id)
                .pending_window_in_days(7)
                .send(),
        )
        .unwrap();
}

/// The drills are provider-agnostic: `dr-failover` on six EC2 instances (two auto-unsealed
/// clusters) reached over ssh enables DR, kills the whole primary cluster through ssh,
/// generates a DR operation token from the primary's recovery keys, promotes the
/// secondary and reads back every acknowledged write; its lab is gone afterwards.
#[test]
fn dr_failover_drill_runs_over_ssh() {
    let Some(rig) = Rig::with_machines(6, 6) else {
        return;
    };
    let lab = rig.lab();
    let name = lab_name("drill");
    let report = tempfile::tempdir().unwrap();
    let mut args = rig.up_args_with_key(&name);
    args.splice(0..1, ["drill".to_owned(), "dr-failover".to_owned()]);
    args.extend(["--report".to_owned(), report.path().display().to_string()]);
    let out = run(&lab, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("PASSED"), "{stdout}");
    let journal = std::fs::read_to_string(report.path().join("journal.json")).unwrap();
    assert!(journal.contains("3 recovery keys of primary"), "{journal}");
    assert!(rig.remote.node_pids().is_empty());
    assert!(rig.aws.live_instances(&name).is_empty());
    assert_eq!(rig.aws.leftovers(&name), Vec::<String>::new());
}

/// Practice exercises run on EC2 too: `remove-failed-peer` kills node-c over ssh at setup,
/// fails its check as set up, passes after the scripted solution; `reset` brings the
/// exercise back on the same provider; `awskms-auto-unseal` (a node of the operator's own,
/// next to LocalStack) is refused with a clear message.
#[test]
fn practice_runs_on_aws_and_resets_on_aws() {
    let Some(rig) = Rig::new(7) else {
        return;
    };
    let lab = rig.lab();
    let name = lab_name("practice");
    let mut args = rig.up_args_with_key(&name);
    args.splice(
        0..1,
        [
            "practice".to_owned(),
            "start".to_owned(),
            "remove-failed-peer".to_owned(),
        ],
    );
    let start = run(&lab, &args);
    assert!(start.status.success(), "{}", stderr(&start));
    assert!(String::from_utf8_lossy(&start.stdout).contains("node-c crashed"));
    assert_eq!(rig.aws.live_instances(&name).len(), 3);
    assert!(
        !lab.run(&["practice", "check"]).status.success(),
        "passes before the task is done"
    );
    lab.ok(&["practice", "solution", "--run"]);
    let check = lab.ok(&["practice", "check"]);
    assert!(check.contains("PASS"), "{check}");

    // reset tears the lab down and brings the exercise back on aws with the same options.
    // LocalStack never frees a terminated instance's address, so there the new instances
    // are refused (real EC2 frees them); the refusal shows which provider reset used, and
    // nothing is left behind either way.
    let reset = lab.run(&["practice", "reset"]);
    let text = stderr(&reset);
    assert!(text.contains("terminated 3 EC2 instance(s)"), "{text}");
    assert!(text.contains(&format!("lab {name} will create")), "{text}");
    assert!(
        reset.status.success() || text.contains("IP already in use"),
        "{text}"
    );
    lab.ok(&["down"]);
    assert!(rig.aws.live_instances(&name).is_empty());
    assert_eq!(rig.aws.leftovers(&name), Vec::<String>::new());
    assert!(rig.remote.node_pids().is_empty());

    let mut args = rig.up_args_with_key(&lab_name("kms"));
    args.splice(
        0..1,
        [
            "practice".to_owned(),
            "start".to_owned(),
            "awskms-auto-unseal".to_owned(),
        ],
    );
    let refused = run(&lab, &args);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("local provider"),
        "{}",
        stderr(&refused)
    );
}
