//! The cluster port: Raft RPCs and forwarded client requests between nodes.

pub mod discover;

pub use discover::{discover_aws, DiscoverError};

use std::time::Duration;

/// Scheme used on the cluster port.
pub const SCHEME: &str = "http";

/// The client a node uses to reach other nodes' cluster ports.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
}
