# The cluster's seal "awskms" key. Nodes store the unseal key wrapped by it (kms:Encrypt)
# and unwrap it at every start (kms:Decrypt): they unseal themselves after init, a crash
# or a reboot. All nodes of a cluster must share this key (the join challenge needs it).
#
# No key policy is given, so the default one applies: the account may delegate use of the
# key through IAM, which iam.tf does for the node role only.

resource "aws_kms_key" "seal" {
  description             = "lab ${var.lab_name}: awskms seal of labnode cluster ${var.cluster_name}"
  deletion_window_in_days = 7
  enable_key_rotation     = true

  tags = merge(local.tags, {
    Name = "lab-${local.prefix}"
  })
}

resource "aws_kms_alias" "seal" {
  name          = "alias/lab-${local.prefix}"
  target_key_id = aws_kms_key.seal.key_id
}
