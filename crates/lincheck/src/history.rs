//! What a client did and saw: one record per KV operation, with the times it was invoked and
//! answered. Times are microseconds since the recording started, from one monotonic clock.

use serde::{Deserialize, Serialize};

/// One KV v2 operation on one key as a client issued it and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Position in the recorded history, for reports.
    pub id: usize,
    /// The client task that issued it; a client has one operation in flight at a time.
    pub client: usize,
    /// The KV v2 key.
    pub key: String,
    /// What was asked.
    pub input: Input,
    /// When the request was about to be sent (µs).
    pub invoke: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// Read the current version.
    Read,
    /// Write a value no other write uses.
    Write {
        /// The unique value.
        value: u64,
    },
    /// KV v2 check-and-set: write only if the current version is `expected_version`
    /// (0: only if the key has never been written).
    Cas {
        /// The version the client last saw.
        expected_version: u64,
        /// The unique value.
        value: u64,
    },
}

impl Input {
    /// The value a write or check-and-set would store.
    pub fn written_value(&self) -> Option<u64> {
        match *self {
            Input::Read => None,
            Input::Write { value } | Input::Cas { value, .. } => Some(value),
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server answered; the operation took effect exactly as `output` says, at some
    /// instant between `invoke` and `returned`.
    Ok {
        /// When the answer arrived (µs).
        returned: u64,
        /// What the answer said.
        output: Output,
    },
    /// The operation certainly had no effect (the request never reached a server).
    Fail,
    /// No answer, or an error after the request was sent (timeout, reset, 5xx): it may have
    /// taken effect at any instant after `invoke`, or never.
    Unknown,
}

/// What a successful answer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// A read: the current version and its value (version 0 and no value: never written).
    Read {
        /// The key's current version.
        version: u64,
        /// The value stored at that version.
        value: Option<u64>,
    },
    /// A write or check-and-set was stored as this version.
    Written {
        /// The new version.
        version: u64,
    },
    /// A check-and-set was refused because the current version differed.
    CasRejected,
}
