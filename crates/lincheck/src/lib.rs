//! lincheck: linearizability of labnode's KV v2 under faults.
//!
//! Owns the history types ([`history`]), the versioned-register model of one key
//! ([`register`]), the Wing–Gong/Porcupine checker ([`checker`]), and the recorder that drives
//! client tasks against a running lab cluster while it kills and pauses the leader ([`run`],
//! over [`vault`] for the HTTP API and [`lab`] for the `lab` binary and signals).
//!
//! It talks to labnode only through its HTTP API and to the lab only through the `lab` binary
//! and its `state.json`; it must never import `labnode` or `lab`, so what it checks is what
//! any client sees.

pub mod checker;
pub mod history;
pub mod lab;
pub mod register;
pub mod report;
pub mod run;
pub mod vault;
