# One labnode node on Raft integrated storage, plain HTTP on loopback.
#   labnode server -config=docs/examples/single.hcl
storage "raft" {
  path    = ".lab/single/data"
  node_id = "node1"
}

listener "tcp" {
  address         = "127.0.0.1:8200"
  cluster_address = "127.0.0.1:8201"
  tls_disable     = true
}

api_addr      = "http://127.0.0.1:8200"
cluster_addr  = "http://127.0.0.1:8201"
disable_mlock = true
