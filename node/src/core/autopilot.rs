//! Autopilot-lite as plain state: which learners the leader promotes to voters, and how
//! healthy the cluster looks to `autopilot state`.
//!
//! The leader's core feeds it the replication progress, the recorded non-voter intents and
//! the time every round (`core/ha.rs`) and carries out the promotions it returns. It only
//! ever promotes: taking a vote away is an operator's decision (`raft demote`,
//! `remove-peer`), never autopilot's, so a voter that falls behind keeps its vote and the
//! quorum never shrinks under a slow disk.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::raft::ReplicationView;

/// How long a learner must stay caught up before autopilot makes it a voter.
pub const STABILIZATION: Duration = Duration::from_secs(1);
/// Entries a member may lag behind the leader's last index and still count as caught up.
pub const CAUGHT_UP_LAG: u64 = 32;

/// Whether a member that replicated up to `matched` keeps up with a leader at `last`.
pub fn caught_up(matched: u64, last: u64) -> bool {
    matched.saturating_add(CAUGHT_UP_LAG) >= last
}

/// The cluster's health from its voters' health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterHealth {
    /// A quorum of voters is healthy.
    pub healthy: bool,
    /// How many more healthy voters may fail before the quorum is lost.
    pub failure_tolerance: usize,
}

/// Health of a cluster with `voters` voters of which `healthy_voters` keep up.
pub fn cluster_health(voters: usize, healthy_voters: usize) -> ClusterHealth {
    let quorum = voters / 2 + 1;
    ClusterHealth {
        healthy: healthy_voters >= quorum,
        failure_tolerance: healthy_voters.saturating_sub(quorum),
    }
}

/// Since when each follower has stayed caught up, as the leader saw it.
#[derive(Debug, Default)]
pub struct Autopilot {
    caught_up_since: HashMap<String, Instant>,
}

impl Autopilot {
    /// One round on the leader: returns the learners to promote now, i.e. those caught up
    /// for at least [`STABILIZATION`] whose non-voter intent is not recorded. A follower
    /// that falls behind starts its stabilization over.
    pub fn round(
        &mut self,
        view: &ReplicationView,
        stays_non_voter: &BTreeSet<String>,
        now: Instant,
    ) -> Vec<String> {
        let mut promote = Vec::new();
        for follower in &view.followers {
            if !caught_up(follower.matched_index, view.last_log_index) {
                self.caught_up_since.remove(&follower.name);
                continue;
            }
            let since = *self.caught_up_since.entry(follower.name.clone()).or_insert(now);
            let stable = now.saturating_duration_since(since) >= STABILIZATION;
            if !follower.voter && stable && !stays_non_voter.contains(&follower.name) {
                promote.push(follower.name.clone());
            }
        }
        promote
    }

    /// This node no longer leads: what it saw of the followers is stale.
    pub fn leadership_lost(&mut self) {
        self.caught_up_since.clear();
    }

    /// A peer left the cluster.
    pub fn peer_removed(&mut self, name: &str) {
        self.caught_up_since.remove(name);
    }

    /// Since when `name` has stayed caught up, if it is.
    pub fn stable_since(&self, name: &str) -> Option<Instant> {
        self.caught_up_since.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::FollowerProgress;

    fn view(last: u64, followers: &[(&str, u64, bool)]) -> ReplicationView {
        ReplicationView {
            last_log_index: last,
            followers: followers
                .iter()
                .map(|&(name, matched_index, voter)| FollowerProgress {
                    name: name.into(),
                    matched_index,
                    voter,
                })
                .collect(),
        }
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn a_learner_caught_up_for_the_stabilization_time_is_promoted() {
        let (mut pilot, t0) = (Autopilot::default(), Instant::now());
        let v = view(100, &[("node2", 100, false)]);
        assert!(pilot.round(&v, &none(), t0).is_empty());
        assert!(pilot
            .round(&v, &none(), t0 + STABILIZATION - Duration::from_millis(1))
            .is_empty());
        assert_eq!(pilot.round(&v, &none(), t0 + STABILIZATION), vec!["node2"]);
    }

    #[test]
    fn lagging_by_at_most_the_allowed_entries_counts_as_caught_up() {
        assert!(caught_up(100 - CAUGHT_UP_LAG, 100));
        assert!(!caught_up(100 - CAUGHT_UP_LAG - 1, 100));
        assert!(caught_up(u64::MAX, u64::MAX));
    }

    #[test]
    fn falling_behind_restarts_the_stabilization() {
        let (mut pilot, t0) = (Autopilot::default(), Instant::now());
        pilot.round(&view(100, &[("node2", 100, false)]), &none(), t0);
        let behind = view(200, &[("node2", 100, false)]);
        assert!(pilot.round(&behind, &none(), t0 + STABILIZATION).is_empty());
        assert_eq!(pilot.stable_since("node2"), None);
        let back = view(200, &[("node2", 200, false)]);
        let t1 = t0 + STABILIZATION * 2;
        assert!(pilot.round(&back, &none(), t1).is_empty());
        assert_eq!(pilot.round(&back, &none(), t1 + STABILIZATION), vec!["node2"]);
    }

    #[test]
    fn a_recorded_non_voter_intent_is_respected() {
        let (mut pilot, t0) = (Autopilot::default(), Instant::now());
        let v = view(10, &[("node2", 10, false), ("node3", 10, false)]);
        let intents = BTreeSet::from(["node3".to_string()]);
        pilot.round(&v, &intents, t0);
        assert_eq!(pilot.round(&v, &intents, t0 + STABILIZATION), vec!["node2"]);
    }

    #[test]
    fn voters_are_never_promoted_again_nor_demoted_when_they_fall_behind() {
        let (mut pilot, t0) = (Autopilot::default(), Instant::now());
        let v = view(10, &[("node2", 10, true)]);
        pilot.round(&v, &none(), t0);
        assert!(pilot.round(&v, &none(), t0 + STABILIZATION).is_empty());
        let behind = view(1000, &[("node2", 0, true)]);
        assert!(pilot.round(&behind, &none(), t0 + STABILIZATION * 2).is_empty());
    }

    #[test]
    fn losing_leadership_or_a_peer_forgets_what_was_seen() {
        let (mut pilot, t0) = (Autopilot::default(), Instant::now());
        let v = view(10, &[("node2", 10, false), ("node3", 10, false)]);
        pilot.round(&v, &none(), t0);
        assert_eq!(pilot.stable_since("node2"), Some(t0));
        pilot.peer_removed("node2");
        assert_eq!(pilot.stable_since("node2"), None);
        assert_eq!(pilot.stable_since("node3"), Some(t0));
        pilot.leadership_lost();
        assert_eq!(pilot.stable_since("node3"), None);
        let t1 = t0 + STABILIZATION * 5;
        assert!(pilot.round(&v, &none(), t1).is_empty());
    }

    #[test]
    fn cluster_health_needs_a_healthy_quorum_of_voters() {
        assert_eq!(
            cluster_health(3, 3),
            ClusterHealth {
                healthy: true,
                failure_tolerance: 1
            }
        );
        assert_eq!(
            cluster_health(3, 2),
            ClusterHealth {
                healthy: true,
                failure_tolerance: 0
            }
        );
        assert!(!cluster_health(3, 1).healthy);
        assert_eq!(cluster_health(5, 5).failure_tolerance, 2);
        assert!(cluster_health(1, 1).healthy);
        assert!(!cluster_health(0, 0).healthy);
    }
}
