# ---- primary/node-a.hcl
storage "raft" {
  path    = "/lab/primary/node-a/data"
  node_id = "node-a"
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
