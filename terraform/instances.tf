# The nodes: node_count instances at fixed addresses, tagged for auto_join.

resource "aws_key_pair" "operator" {
  key_name   = "lab-${local.prefix}"
  public_key = var.ssh_public_key

  tags = merge(local.tags, {
    Name = "lab-${local.prefix}"
  })
}

locals {
  nodes = [
    for i in range(var.node_count) : {
      name       = "node${i + 1}"
      private_ip = cidrhost(local.subnet_cidr, local.first_host + i)
    }
  ]
}

resource "aws_instance" "node" {
  count = var.node_count

  ami                         = local.ami_id
  instance_type               = var.instance_type
  subnet_id                   = local.subnet_id
  private_ip                  = local.nodes[count.index].private_ip
  associate_public_ip_address = true
  vpc_security_group_ids      = [aws_security_group.node.id]
  key_name                    = aws_key_pair.operator.key_name
  iam_instance_profile        = aws_iam_instance_profile.node.name

  # IMDSv2 only; labnode's AWS credential chain speaks it. Hop limit 1: containers on
  # the node do not get the role.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    # The AMI's size (8 GiB for Amazon Linux 2023) is plenty for a lab's raft data.
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true

    tags = merge(local.tags, {
      Name = "${local.prefix}-${local.nodes[count.index].name}"
    })
  }

  # Prepares the machine only (/opt/lab for the ssh user, /etc/lab/instance.json).
  # lab uploads the labnode binary, the node's HCL and its systemd unit over ssh
  # afterwards, so a new labnode never needs a new instance.
  user_data = templatefile("${path.module}/user-data.sh.tftpl", {
    lab_name     = var.lab_name
    cluster_name = var.cluster_name
    ssh_user     = var.ssh_user
    instance_json = jsonencode({
      lab            = var.lab_name
      name           = local.nodes[count.index].name
      cluster        = var.cluster_name
      private_ip     = local.nodes[count.index].private_ip
      api_port       = var.api_port
      cluster_port   = var.cluster_port
      join_tag_key   = var.join_tag_key
      join_tag_value = local.join_tag_value
    })
  })

  tags = merge(local.tags, {
    Name               = "${local.prefix}-${local.nodes[count.index].name}"
    "lab-node"         = "${var.cluster_name}/${local.nodes[count.index].name}"
    (var.join_tag_key) = local.join_tag_value
  })

  # The role's policy must be in place before labnode asks KMS for anything; with a new
  # VPC, the route to the internet before lab tries ssh.
  depends_on = [
    aws_iam_role_policy.node,
    aws_route_table_association.lab,
  ]

  lifecycle {
    # A newer Amazon Linux release must not replace running nodes (and their raft data).
    ignore_changes = [ami]
  }
}
