# Inputs of the lab module. Required: lab_name, ssh_public_key, allowed_cidr.
# terraform.tfvars.example shows a complete set.

variable "lab_name" {
  description = "Name of this lab. Every resource is tagged lab = <lab_name> and named after it."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,23}$", var.lab_name))
    error_message = "lab_name must be 1-24 characters: lowercase letters, digits and hyphens, starting with a letter or digit."
  }
}

variable "region" {
  description = "AWS region for every resource (and the region lab renders into seal \"awskms\" and auto_join)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as us-east-1."
  }
}

variable "cluster_name" {
  description = "Name of the cluster these nodes form (lab's cluster name; part of names, the KMS alias and the join tag)."
  type        = string
  default     = "primary"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,15}$", var.cluster_name))
    error_message = "cluster_name must be 1-16 characters: lowercase letters, digits and hyphens, starting with a letter or digit."
  }
}

variable "node_count" {
  description = "Number of labnode servers (EC2 instances) in the cluster. 3 or 5 for a real quorum."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 9 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 1 to 9."
  }
}

variable "instance_type" {
  description = "EC2 instance type of every node. Must be x86_64 when ami_id is left to the Amazon Linux 2023 lookup."
  type        = string
  default     = "t3.small"
}

variable "ami_id" {
  description = "AMI of the nodes. null: the latest Amazon Linux 2023 x86_64 AMI (looked up at plan time; later releases do not replace running nodes)."
  type        = string
  default     = null
}

variable "ssh_user" {
  description = "Login user of the AMI; lab connects as this user (ec2-user on Amazon Linux)."
  type        = string
  default     = "ec2-user"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]*$", var.ssh_user))
    error_message = "ssh_user must be a plain Unix user name."
  }
}

variable "ssh_public_key" {
  description = "The operator's OpenSSH public key text (not a path), e.g. the contents of ~/.ssh/id_ed25519.pub. Becomes the instances' key pair."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be the text of an ed25519 or RSA OpenSSH public key (\"ssh-ed25519 AAAA...\"), not a file path: use TF_VAR_ssh_public_key=\"$(cat ~/.ssh/id_ed25519.pub)\"."
  }
}

variable "allowed_cidr" {
  description = "The operator's IPv4 address range, e.g. 203.0.113.7/32: the only source allowed to reach ssh (22) and the API port."
  type        = string

  validation {
    condition     = can(cidrhost(var.allowed_cidr, 0)) && !strcontains(var.allowed_cidr, ":")
    error_message = "allowed_cidr must be an IPv4 CIDR block such as 203.0.113.7/32 (curl -s https://checkip.amazonaws.com gives your address)."
  }
}

variable "create_vpc" {
  description = "false: use the region's default VPC and one of its default subnets. true: create a VPC 10.42.0.0/16 with one public subnet 10.42.1.0/24."
  type        = bool
  default     = false
}

variable "join_tag_key" {
  description = "EC2 tag key that retry_join { auto_join = \"provider=aws tag_key=... tag_value=...\" } looks for."
  type        = string
  default     = "vault"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.:/=+@-]{1,128}$", var.join_tag_key)) && !startswith(var.join_tag_key, "aws:") && !contains(["Name", "lab", "lab-node"], var.join_tag_key)
    error_message = "join_tag_key must be a valid EC2 tag key without spaces (auto_join splits its settings on spaces), must not start with aws: and must not be one of the module's own tags (Name, lab, lab-node)."
  }
}

variable "join_tag_value" {
  description = "Value of the join tag on every node of this cluster. null: \"<lab_name>-<cluster_name>\"."
  type        = string
  default     = null

  validation {
    condition     = var.join_tag_value == null || can(regex("^[A-Za-z0-9_.:/=+@-]{1,256}$", var.join_tag_value))
    error_message = "join_tag_value must be a valid EC2 tag value without spaces (auto_join splits its settings on spaces)."
  }
}

variable "api_port" {
  description = "labnode API port (listener address, api_addr and auto_join_port)."
  type        = number
  default     = 8200

  validation {
    condition     = var.api_port >= 1 && var.api_port <= 65535 && floor(var.api_port) == var.api_port
    error_message = "api_port must be a TCP port number (1-65535)."
  }
}

variable "cluster_port" {
  description = "labnode cluster port (raft, request forwarding; cluster_address and cluster_addr)."
  type        = number
  default     = 8201

  validation {
    condition     = var.cluster_port >= 1 && var.cluster_port <= 65535 && floor(var.cluster_port) == var.cluster_port
    error_message = "cluster_port must be a TCP port number (1-65535)."
  }
}
