# `lab` is the contract with `lab up --provider aws --from-terraform DIR`, which reads
# `terraform -chdir=DIR output -json lab`. Keep its keys and their meaning exactly; lab
# (and lab/tests/t71_terraform.rs) depend on them. The other outputs are for people.

output "lab" {
  description = "What lab adopts: the cluster, its seal key, its join tag and its nodes (read by lab up --from-terraform)."
  value = {
    name           = var.lab_name
    region         = var.region
    cluster        = var.cluster_name
    kms_key_id     = aws_kms_key.seal.key_id
    join_tag_key   = var.join_tag_key
    join_tag_value = local.join_tag_value
    ssh_user       = var.ssh_user
    api_port       = var.api_port
    cluster_port   = var.cluster_port
    nodes = [for i, inst in aws_instance.node : {
      name        = "node${i + 1}"
      instance_id = inst.id
      private_ip  = inst.private_ip
      public_ip   = inst.public_ip
    }]
  }
}

output "ssh_commands" {
  description = "ssh into each node (use the private key that matches ssh_public_key)."
  value       = { for i, inst in aws_instance.node : "node${i + 1}" => "ssh ${var.ssh_user}@${inst.public_ip}" }
}

output "api_urls" {
  description = "Each node's labnode API from the operator's address (VAULT_ADDR). Plain HTTP: a lab, not production."
  value       = { for i, inst in aws_instance.node : "node${i + 1}" => "http://${inst.public_ip}:${var.api_port}" }
}

output "auto_join" {
  description = "The retry_join auto_join setting that finds this cluster's nodes (credentials come from the instance role)."
  value       = "provider=aws region=${var.region} tag_key=${var.join_tag_key} tag_value=${local.join_tag_value}"
}

output "kms_key_alias" {
  description = "Alias of the cluster's seal key."
  value       = aws_kms_alias.seal.name
}

output "kms_key_arn" {
  description = "ARN of the cluster's seal key (what the node role may use)."
  value       = aws_kms_key.seal.arn
}

output "security_group_id" {
  description = "The nodes' security group."
  value       = aws_security_group.node.id
}

output "subnet_id" {
  description = "The subnet the nodes are in."
  value       = local.subnet_id
}
