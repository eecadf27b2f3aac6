//! A small SigV4-signed client for the AWS Query APIs labnode and lab use (EC2, IAM): one
//! form-encoded POST per call, signed with `aws-sigv4` and sent with `reqwest`, answers read
//! with `roxmltree`. Typed requests ([`ec2::DescribeInstances`], [`iam::ListRoles`], ...) say what a call sends
//! and return what its answer holds; [`QueryClient::call`] sends any other action as raw
//! parameters. Every failure is one [`QueryError`] carrying the API's code and message.
//!
//! `aws-sdk-ec2` would make the same calls but costs ~5.5 min of one core per cold debug
//! build (~11 min release), about half the workspace's cold build, for a handful of actions.
//!
//! This crate owns signing, transport and response reading only. It must never import the
//! server (`labnode`), `lab`, the config crate or the AWS SDK crates, and it takes
//! credentials and the region from its caller rather than resolving them itself.

mod client;
pub mod ec2;
mod error;
pub mod iam;
mod xml;

pub use client::{QueryClient, Request, Service};
pub use error::{ErrorChain, QueryError};
