# Where the nodes live: the default VPC (create_vpc = false) or a small VPC of their own.

# --- create_vpc = false: the region's default VPC and one of its default subnets ---

data "aws_vpc" "default" {
  count   = var.create_vpc ? 0 : 1
  default = true
}

data "aws_subnets" "default" {
  count = var.create_vpc ? 0 : 1

  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }

  filter {
    name   = "default-for-az"
    values = ["true"]
  }

  filter {
    name   = "availability-zone"
    values = data.aws_ec2_instance_type_offerings.node.locations
  }
}

data "aws_subnet" "default" {
  count = var.create_vpc ? 0 : 1
  id    = sort(data.aws_subnets.default[0].ids)[0]

  lifecycle {
    precondition {
      condition     = length(data.aws_subnets.default[0].ids) > 0
      error_message = "The default VPC has no default subnet in a zone that offers ${var.instance_type}; set create_vpc = true or pick another instance_type."
    }
  }
}

# --- create_vpc = true: 10.42.0.0/16 with one public subnet ---

resource "aws_vpc" "lab" {
  count                = var.create_vpc ? 1 : 0
  cidr_block           = "10.42.0.0/16"
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.tags, {
    Name = local.prefix
  })
}

resource "aws_subnet" "lab" {
  count                   = var.create_vpc ? 1 : 0
  vpc_id                  = aws_vpc.lab[0].id
  cidr_block              = "10.42.1.0/24"
  availability_zone       = sort(data.aws_ec2_instance_type_offerings.node.locations)[0]
  map_public_ip_on_launch = true

  tags = merge(local.tags, {
    Name = "${local.prefix}-public"
  })
}

resource "aws_internet_gateway" "lab" {
  count  = var.create_vpc ? 1 : 0
  vpc_id = aws_vpc.lab[0].id

  tags = merge(local.tags, {
    Name = local.prefix
  })
}

resource "aws_route_table" "lab" {
  count  = var.create_vpc ? 1 : 0
  vpc_id = aws_vpc.lab[0].id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.lab[0].id
  }

  tags = merge(local.tags, {
    Name = "${local.prefix}-public"
  })
}

resource "aws_route_table_association" "lab" {
  count          = var.create_vpc ? 1 : 0
  subnet_id      = aws_subnet.lab[0].id
  route_table_id = aws_route_table.lab[0].id
}

locals {
  vpc_id      = var.create_vpc ? aws_vpc.lab[0].id : data.aws_vpc.default[0].id
  subnet_id   = var.create_vpc ? aws_subnet.lab[0].id : data.aws_subnet.default[0].id
  subnet_cidr = var.create_vpc ? aws_subnet.lab[0].cidr_block : data.aws_subnet.default[0].cidr_block
}

# --- The nodes' security group ---

resource "aws_security_group" "node" {
  name        = "lab-${local.prefix}"
  description = "lab ${var.lab_name}: labnode cluster ${var.cluster_name}"
  vpc_id      = local.vpc_id

  ingress {
    description = "ssh from the operator (lab installs and starts labnode over ssh)"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = [var.allowed_cidr]
  }

  ingress {
    description = "labnode API from the operator (lab, vault/bao CLI)"
    from_port   = var.api_port
    to_port     = var.api_port
    protocol    = "tcp"
    cidr_blocks = [var.allowed_cidr]
  }

  ingress {
    description = "labnode API between nodes (auto_join bootstrapping: joiners call the leader API)"
    from_port   = var.api_port
    to_port     = var.api_port
    protocol    = "tcp"
    self        = true
  }

  ingress {
    description = "labnode cluster port between nodes (raft, request forwarding)"
    from_port   = var.cluster_port
    to_port     = var.cluster_port
    protocol    = "tcp"
    self        = true
  }

  egress {
    description = "everything out (EC2 and KMS endpoints, package mirrors)"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(local.tags, {
    Name = "lab-${local.prefix}"
  })

  lifecycle {
    precondition {
      condition     = var.api_port != var.cluster_port
      error_message = "api_port and cluster_port must differ."
    }
  }
}
