# ---- primary/node-a.hcl
storage "raft" {
  path    = "/lab/primary/node-a/data"
  node_id = "node-a"
  retry_join {
    leader_api_addr = "http://127.0.0.1:8210"
  }
  retry_join {
    leader_api_addr = "http://127.0.0.1:8220"
  }
}

listener "tcp" {
  address         = "127.0.0.1:8200"
  cluster_address = "127.0.0.1:8201"
  tls_disable     = true
}

api_addr     = "http://127.0.0.1:8200"
cluster_addr = "https://127.0.0.1:8201"
cluster_name = "primary"
ui           = true
log_level    = "info"

# ---- primary/node-b.hcl
storage "raft" {
  path    = "/lab/primary/node-b/data"
  node_id = "node-b"
  retry_join {
    leader_api_addr = "http://127.0.0.1:8200"
  }
  retry_join {
    leader_api_addr = "http://127.0.0.1:8220"
  }
}

listener "tcp" {
  address         = "127.0.0.1:8210"
  cluster_address = "127.0.0.1:8211"
  tls_disable     = true
}

api_addr     = "http://127.0.0.1:8210"
cluster_addr = "https://127.0.0.1:8211"
cluster_name = "primary"
ui           = true
log_level    = "info"

# ---- primary/node-c.hcl
storage "raft" {
  path    = "/lab/primary/node-c/data"
  node_id = "node-c"
  retry_join {
    leader_api_addr = "http://127.0.0.1:8200"
  }
  retry_join {
    leader_api_addr = "http://127.0.0.1:8210"
  }
}

listener "tcp" {
  address         = "127.0.0.1:8220"
  cluster_address = "127.0.0.1:8221"
  tls_disable     = true
}

api_addr     = "http://127.0.0.1:8220"
cluster_addr = "https://127.0.0.1:8221"
cluster_name = "primary"
ui           = true
log_level    = "info"

# ---- secondary/node-a.hcl
storage "raft" {
  path    = "/lab/secondary/node-a/data"
  node_id = "node-a"
  retry_join {
    leader_api_addr = "http://127.0.0.1:8240"
  }
  retry_join {
    leader_api_addr = "http://127.0.0.1:8250"
  }
}

listener "tcp" {
  address         = "127.0.0.1:8230"
  cluster_address = "127.0.0.1:8231"
  tls_disable     = true
}

api_addr     = "http://127.0.0.1:8230"
cluster_addr = "https://127.0.0.1:8231"
cluster_name = "secondary"
ui           = true
log_level    = "info"

# ---- secondary/node-b.hcl
storage "raft" {
  path    = "/lab/secondary/node-b/data"
  node_id = "node-b"
  retry_join {
    leader_api_addr = "http://127.0.0.1:8230"
  }
  retry_join {
    leader_api_addr = "http://127.0.0.1:8250"
  }
}

listener "tcp" {
  address         = "127.0.0.1:8240"
  cluster_address = "127.0.0.1:8241"
  tls_disable     = true
}

api_addr     = "http://127.0.0.1:8240"
cluster_addr = "https://127.0.0.1:8241"
cluster_name = "secondary"
ui           = true
log_level    = "info"

# ---- secondary/node-c.hcl
storage "raft" {
  path    = "/lab/secondary/node-c/data"
  node_id = "node-c"
  retry_join {
    leader_api_addr = "http://127.0.0.1:8230"
  }
  retry_join {
    leader_api_addr = "http://127.0.0.1:8240"
  }
}

listener "tcp" {
  address         = "127.0.0.1:8250"
  cluster_address = "127.0.0.1:8251"
  tls_disable     = true
}

api_addr     = "http://127.0.0.1:8250"
cluster_addr = "https://127.0.0.1:8251"
cluster_name = "secondary"
ui           = true
log_level    = "info"
