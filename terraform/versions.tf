terraform {
  # 1.5: `check` blocks, strcontains(), preconditions on data sources.
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
