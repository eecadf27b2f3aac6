//! The canary writer: a steady stream of numbered writes to the active node of a cluster
//! (falling over to another cluster's active node for DR), each acknowledgement recorded
//! with its time, and a read-back of every acknowledged number afterwards.
//!
//! Writes go to `lab-canary/w/<n>` (a kv v1 mount the canary creates); the number is the
//! key, so a missing acknowledged write is a 404 on read-back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::api::{ApiError, NodeClient};

/// The kv v1 mount the canary writes to.
pub const MOUNT: &str = "lab-canary";
/// Per-request timeout: a dead node must be noticed within a tick or two.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
/// The canary never runs longer than this, even if nobody stops it.
const MAX_RUN: Duration = Duration::from_secs(1800);
/// Read-back attempts per number before it counts as unreadable.
const READ_ATTEMPTS: usize = 5;

/// Why the canary could not start or verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CanaryError {
    /// A request failed at the transport level.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The mount could not be created.
    #[error("cannot mount {MOUNT}/ on {addr}: HTTP {status}: {body}")]
    Mount {
        /// The node.
        addr: String,
        /// Status code.
        status: u16,
        /// Response body.
        body: String,
    },
    /// A read-back answered something other than 200 or 404.
    #[error("reading back canary write {number} on {addr}: HTTP {status}")]
    ReadBack {
        /// The write.
        number: u64,
        /// The node.
        addr: String,
        /// Status code.
        status: u16,
    },
    /// The writer thread panicked.
    #[error("the canary writer thread panicked")]
    Panicked,
}

/// What the canary writes to and how fast.
#[derive(Debug, Clone)]
pub struct CanaryConfig {
    /// API addresses in order of preference: the primary cluster's nodes, then the
    /// failover cluster's. The first one answering as active (HTTP 200) gets the writes.
    pub candidates: Vec<String>,
    /// Token for writes and reads.
    pub token: String,
    /// Writes per second.
    pub rate: u32,
    /// Time zero of the drill; every time recorded is seconds since then.
    pub epoch: Instant,
}

/// One acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ack {
    /// The write's number.
    pub n: u64,
    /// When the acknowledgement arrived (seconds since the drill started).
    pub t: f64,
}

/// Everything the writer saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CanaryLog {
    /// Acknowledged writes in order.
    pub acks: Vec<Ack>,
    /// Times of failed writes.
    pub failures: Vec<f64>,
    /// Times of successful read-after-write checks.
    pub reads: Vec<f64>,
    /// (time, address) each time the writer picked an active node.
    pub targets: Vec<(f64, String)>,
}

/// A running canary writer.
pub struct Canary {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    handle: JoinHandle<CanaryLog>,
    started: Instant,
}

/// The read-back result: which acknowledged writes are gone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// Acknowledged writes checked.
    pub acked: u64,
    /// Numbers acknowledged but not readable.
    pub missing: Vec<u64>,
    /// Seconds between the first and the last missing acknowledgement (0 for none or one).
    pub missing_span_seconds: f64,
    /// The node that answered.
    pub read_from: String,
}

/// Mounts the canary's kv engine through `addr` (already mounted is fine).
pub fn prepare(addr: &str, token: &str) -> Result<(), CanaryError> {
    let client = NodeClient::new(addr)?;
    let (status, body) = client.request(
        "POST",
        &format!("sys/mounts/{MOUNT}"),
        Some(&json!({ "type": "kv" })),
        Some(token),
    )?;
    if (200..300).contains(&status)
        || body.to_string().contains("existing mount")
        || body.to_string().contains("path is already in use")
    {
        return Ok(());
    }
    Err(CanaryError::Mount {
        addr: addr.to_owned(),
        status,
        body: body.to_string(),
    })
}

impl Canary {
    /// Starts the writer thread.
    pub fn start(config: CanaryConfig) -> Canary {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let handle = {
            let stop = Arc::clone(&stop);
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || write_loop(&config, &stop, &acked))
        };
        Canary {
            stop,
            acked,
            handle,
            started: Instant::now(),
        }
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Acknowledged writes per second since the start.
    pub fn rate(&self) -> f64 {
        self.acked() as f64 / self.started.elapsed().as_secs_f64().max(0.001)
    }

    /// Stops the writer and returns what it saw.
    pub fn stop(self) -> Result<CanaryLog, CanaryError> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| CanaryError::Panicked)
    }
}

fn write_loop(config: &CanaryConfig, stop: &AtomicBool, acked: &AtomicU64) -> CanaryLog {
    let clients: Vec<NodeClient> = config
        .candidates
        .iter()
        .filter_map(|addr| NodeClient::with_timeout(addr, REQUEST_TIMEOUT).ok())
        .collect();
    let tick = Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1)));
    let now = || config.epoch.elapsed().as_secs_f64();
    let mut log = CanaryLog::default();
    let mut current: Option<usize> = None;
    let mut next = Instant::now();
    let mut number = 0u64;
    let deadline = Instant::now() + MAX_RUN;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let wait = next.saturating_duration_since(Instant::now());
        std::thread::sleep(wait);
        next = (next + tick).max(Instant::now());
        let index = match current {
            Some(index) => index,
            None => match clients
                .iter()
                .position(|c| c.health().is_ok_and(|h| h.status == 200))
            {
                Some(index) => {
                    log.targets.push((now(), config.candidates[index].clone()));
                    current = Some(index);
                    index
                }
                None => {
                    log.failures.push(now());
                    continue;
                }
            },
        };
        let client = &clients[index];
        let n = number + 1;
        let path = format!("{MOUNT}/w/{n}");
        let written = client
            .request("PUT", &path, Some(&json!({ "n": n })), Some(&config.token))
            .is_ok_and(|(status, _)| (200..300).contains(&status));
        if !written {
            log.failures.push(now());
            current = None;
            continue;
        }
        number = n;
        log.acks.push(Ack { n, t: now() });
        acked.store(n, Ordering::Relaxed);
        if client
            .request("GET", &path, None, Some(&config.token))
            .is_ok_and(|(status, _)| status == 200)
        {
            log.reads.push(now());
        }
    }
    log
}

/// Reads back every acknowledged write through `addr`.
pub fn verify(log: &CanaryLog, addr: &str, token: &str) -> Result<Verification, CanaryError> {
    let client = NodeClient::new(addr)?;
    let mut missing = Vec::new();
    let mut missing_times = Vec::new();
    for ack in &log.acks {
        let mut status = 0;
        for attempt in 0..READ_ATTEMPTS {
            match client.request("GET", &format!("{MOUNT}/w/{}", ack.n), None, Some(token)) {
                Ok((code, _)) if code == 200 || code == 404 => {
                    status = code;
                    break;
                }
                Ok((code, _)) => status = code,
                Err(e) if attempt + 1 == READ_ATTEMPTS => return Err(e.into()),
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        match status {
            200 => {}
            404 => {
                missing.push(ack.n);
                missing_times.push(ack.t);
            }
            status => {
                return Err(CanaryError::ReadBack {
                    number: ack.n,
                    addr: addr.to_owned(),
                    status,
                })
            }
        }
    }
    let span = match (missing_times.first(), missing_times.last()) {
        (Some(first), Some(last)) => last - first,
        _ => 0.0,
    };
    Ok(Verification {
        acked: log.acks.len() as u64,
        missing,
        missing_span_seconds: span,
        read_from: addr.to_owned(),
    })
}
