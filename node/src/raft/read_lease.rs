//! When the leader may answer reads from its own state machine.
//!
//! A node that believes it leads can be wrong: paused (SIGSTOP, a long GC-like stall, a
//! frozen VM) while the others elect a new leader and commit writes, it resumes still in the
//! Leader state and would answer from stale data. So the leader reads locally only inside a
//! lease: when a quorum confirms its leadership (openraft's `ensure_linearizable`, which also
//! waits until the state machine has applied everything committed), the lease runs for half
//! the minimum election timeout from the instant the confirmation *started*. No other node
//! can be elected before that: followers neither time out nor grant votes (openraft's leader
//! lease) within an election timeout of the last heartbeat they accepted, which was sent
//! after that instant. The clock is monotonic and keeps running while the process is stopped,
//! so a resumed leader finds its lease expired and asks the quorum again, which then fails.
//!
//! The lease is a plain state type; the confirmation itself is the caller's I/O.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A leader's permission to read locally, valid for one term until an instant.
#[derive(Debug)]
pub(crate) struct ReadLease {
    duration: Duration,
    /// (term, valid until) of the last confirmation.
    granted: Mutex<Option<(u64, Instant)>>,
    /// One confirmation in flight at a time; readers that queue behind it reuse its result.
    refresh: tokio::sync::Mutex<()>,
}

impl ReadLease {
    /// A lease that lasts `duration` from the start of each confirmation.
    pub(crate) fn new(duration: Duration) -> ReadLease {
        ReadLease {
            duration,
            granted: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether a confirmation in `term` still covers a read at `now`.
    pub(crate) fn covers(&self, term: u64, now: Instant) -> bool {
        let granted = *self.granted.lock().unwrap_or_else(|p| p.into_inner());
        granted.is_some_and(|(t, until)| t == term && now < until)
    }

    /// Records that a confirmation in `term`, started at `started`, succeeded.
    pub(crate) fn confirmed(&self, term: u64, started: Instant) {
        let until = started + self.duration;
        let mut granted = self.granted.lock().unwrap_or_else(|p| p.into_inner());
        let keep = granted.is_some_and(|(t, old)| t == term && old >= until);
        if !keep {
            *granted = Some((term, until));
        }
    }

    /// Returns once a confirmation in `term` covers a read now, running `confirm`
    /// (at most one at a time) when none does.
    pub(crate) async fn ensure<E, F, Fut>(&self, term: u64, confirm: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        if self.covers(term, Instant::now()) {
            return Ok(());
        }
        let _refresh = self.refresh.lock().await;
        // Inside a lease no other leader exists, so a confirmation that finished while this
        // read queued covers it as well.
        if self.covers(term, Instant::now()) {
            return Ok(());
        }
        let started = Instant::now();
        confirm().await?;
        self.confirmed(term, started);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(100);

    #[test]
    fn a_confirmation_covers_reads_of_its_term_until_the_lease_runs_out() {
        let lease = ReadLease::new(LEASE);
        let t0 = Instant::now();
        assert!(!lease.covers(3, t0));
        lease.confirmed(3, t0);
        assert!(lease.covers(3, t0 + LEASE / 2));
        assert!(!lease.covers(3, t0 + LEASE));
        assert!(!lease.covers(4, t0), "a newer term needs its own confirmation");
    }

    #[test]
    fn an_older_confirmation_never_shortens_the_lease() {
        let lease = ReadLease::new(LEASE);
        let t0 = Instant::now();
        lease.confirmed(3, t0 + LEASE);
        lease.confirmed(3, t0);
        assert!(lease.covers(3, t0 + LEASE + LEASE / 2));
        lease.confirmed(4, t0);
        assert!(
            !lease.covers(3, t0),
            "a confirmation in a new term replaces the old one"
        );
    }

    #[tokio::test]
    async fn ensure_confirms_only_when_no_lease_covers_the_read() {
        let lease = ReadLease::new(Duration::from_secs(60));
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let confirm = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<(), ()>(())
        };
        lease.ensure(1, confirm).await.unwrap();
        lease.ensure(1, confirm).await.unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        lease.ensure(2, confirm).await.unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_failed_confirmation_grants_nothing() {
        let lease = ReadLease::new(Duration::from_secs(60));
        assert_eq!(lease.ensure(1, || async { Err("deposed") }).await, Err("deposed"));
        assert!(!lease.covers(1, Instant::now()));
    }

    #[tokio::test]
    async fn an_expired_lease_is_confirmed_again() {
        let lease = ReadLease::new(Duration::from_millis(1));
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let confirm = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<(), ()>(())
        };
        lease.ensure(1, confirm).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        lease.ensure(1, confirm).await.unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
