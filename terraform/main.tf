# The lab module: one labnode (Vault-compatible) HA cluster on EC2, in the course's
# production shape. Each node gets a fixed private address, the instance role that
# labnode's seal "awskms" and retry_join { auto_join = "provider=aws ..." } need, and the
# join tag. The nodes come up empty: `lab up --provider aws --from-terraform DIR` reads
# `terraform output -json lab` and installs and starts labnode on them over ssh.
#
# network.tf: VPC, subnet, security group · kms.tf: the seal key · iam.tf: the node role
# instances.tf: key pair and instances · outputs.tf: the `lab` contract and helpers

provider "aws" {
  region = var.region
}

locals {
  # `lab` on every resource, so the whole lab can be found (and billed) by one tag.
  tags = {
    lab = var.lab_name
  }

  # Prefix of every name: two clusters of one lab (primary, dr) never collide.
  prefix = "${var.lab_name}-${var.cluster_name}"

  join_tag_value = coalesce(var.join_tag_value, local.prefix)

  ami_id = var.ami_id != null ? var.ami_id : data.aws_ami.al2023[0].id

  # Node i (from 0) gets host 11 + i of the subnet, as the course's node-11, node-12...
  # so every address is known before any instance boots.
  first_host = 11
}

# The newest Amazon Linux 2023 (standard, not minimal) for x86_64.
data "aws_ami" "al2023" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = ["al2023-ami-2023.*-x86_64"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

# Availability zones that offer the instance type (not every zone has every type,
# e.g. us-east-1e has no t3): the subnet is placed, or picked, in one of them.
data "aws_ec2_instance_type_offerings" "node" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [var.instance_type]
  }

  lifecycle {
    postcondition {
      condition     = length(self.locations) > 0
      error_message = "No availability zone of ${var.region} offers instance type ${var.instance_type}."
    }
  }
}
