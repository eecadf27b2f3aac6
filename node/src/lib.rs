//! labnode: a secrets server that speaks the Vault HTTP API on Raft integrated storage.
//!
//! Layers, outside in: [`cli`] (the vault-compatible command line), [`http`] (the
//! `/v1` API), [`core`] (seal state, tokens, routing), [`backends`] (sys, kv, token),
//! [`barrier`] (encryption of every entry), [`seal`] (Shamir), [`storage`] (the
//! physical trait) and [`raft`] (Integrated Storage), with the `labnode-config` crate feeding them
//! and [`server`] wiring them into a running node.
//!
//! It must never import `lab` or `testkit`: labs drive a node through its CLI and HTTP API,
//! and what lab shares with the server lives in the leaf crates (`labnode-config`,
//! `aws-query`, `labnode-duration`).

pub mod backends;
pub mod barrier;
pub mod cli;
pub mod cluster;
pub mod core;
pub mod http;
pub mod raft;
pub mod replication;
pub mod seal;
pub mod server;
pub mod storage;
