# The nodes' instance role: exactly what labnode needs (docs/aws.md, "On real AWS").
# Credentials reach labnode through the instance profile (IMDSv2); nothing is stored
# on the machines.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "node" {
  # retry_join { auto_join = "provider=aws ..." }: DescribeInstances cannot be limited
  # to a resource.
  statement {
    sid       = "AutoJoin"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  # seal "awskms": only this cluster's key.
  statement {
    sid       = "Seal"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
    resources = [aws_kms_key.seal.arn]
  }
}

# IAM names are global to the account: the region keeps two regions' labs apart.
resource "aws_iam_role" "node" {
  name               = "lab-${local.prefix}-${var.region}"
  description        = "labnode servers of lab ${var.lab_name}, cluster ${var.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = merge(local.tags, {
    Name = "lab-${local.prefix}-${var.region}"
  })
}

resource "aws_iam_role_policy" "node" {
  name   = "labnode"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_instance_profile" "node" {
  name = "lab-${local.prefix}-${var.region}"
  role = aws_iam_role.node.name

  tags = merge(local.tags, {
    Name = "lab-${local.prefix}-${var.region}"
  })
}
