//! What the node tests share beyond `testkit`: the binary under test and LocalStack's EC2
//! records (built with the server's own signed Query client).

#![allow(dead_code, reason = "each test binary uses a different part of this module")]

use std::path::Path;

pub mod localstack;

/// The binary under test.
pub fn labnode() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_labnode"))
}

/// A fresh single-node directory on two free ports (node_id `node1`).
pub fn node() -> testkit::Node {
    testkit::Node::new(labnode(), "node1")
}

/// A cluster builder for nodes named `names` running the binary under test.
pub fn cluster(names: &[&str]) -> testkit::ClusterBuilder<'static> {
    testkit::ClusterBuilder::new(labnode(), names)
}
