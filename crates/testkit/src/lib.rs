//! Test infrastructure for the workspace's integration tests, and nothing else: loopback ports
//! from a locked range ([`ports`]), the binaries and tools a test runs ([`locate`]), the
//! LocalStack probe and its KMS client ([`localstack`]), running a CLI and reading its result
//! ([`cli`]), `labnode` processes ([`node`], [`server`]) and multi-node clusters
//! ([`cluster`]) that are killed on drop, also when a test panics.
//!
//! It is a dev-dependency only: no production crate may depend on it, and it depends on no
//! crate of this workspace (it runs `labnode` as a process), so an edit in the server never
//! rebuilds it.
//!
//! A missing prerequisite fails the test with a message saying how to get it; only an
//! explicit environment variable (`LABNODE_SKIP_BAO=1`, `LABNODE_SKIP_LOCALSTACK=1`,
//! `LABNODE_SKIP_TERRAFORM=1`) turns that into `SKIP: <test>: <reason>` and an early return.

pub mod cli;
pub mod cluster;
pub mod kv;
pub mod localstack;
pub mod locate;
pub mod node;
pub mod ports;
pub mod server;
pub mod tls;

pub use cluster::{Cluster, ClusterBuilder, RetryJoin};
pub use node::{Node, NodeConfig};
pub use server::{Reply, Server};

/// Prints `SKIP: <test>: <reason>`; the test harness names each test's thread after the test.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    eprintln!("SKIP: {test}: {reason}");
}

/// Whether the environment variable `var` is `1`: an explicit request to skip.
pub fn skip_requested(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}
