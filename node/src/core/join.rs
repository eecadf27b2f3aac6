//! The join handshake as plain state: which challenges the leader has handed out, whether an
//! answer lets a node in, and what a joining node does next.
//!
//! A joining node proves it holds the cluster's unseal key before it is let in: the leader
//! seals a random answer with that key (or KMS), and only a node that can open it sends the
//! answer back. Nothing here does I/O, reads the clock or draws random bytes: the caller
//! passes the time and a fresh answer in and carries out the decision (`core/ha.rs` on both
//! sides, `core/join_client.rs` for the joiner's requests), so every transition and refusal
//! is unit-tested below without a process or socket.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::join_client::JoinClientError;
use crate::barrier::BarrierError;
use crate::cluster::TlsError;
use crate::raft::RaftError;
use crate::seal::{KmsError, SealConfig};

/// How long a challenge stays answerable.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// How long a joiner waits for the leader's data after its answer was accepted.
pub const JOIN_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a join (either side of the handshake) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    #[error("no server_id provided")]
    NoServerId,
    #[error("no answer provided")]
    NoAnswer,
    #[error("no cluster_addr provided")]
    NoClusterAddr,
    #[error(
        "node_id \"{0}\" is already a member of this raft cluster; node IDs must be unique (remove the old peer first)"
    )]
    DuplicateNodeId(String),
    /// No challenge was issued to this node, it expired, or an earlier answer used it up.
    #[error("no expected answer for the server id provided")]
    NoExpectedAnswer,
    #[error("invalid answer given")]
    WrongAnswer,
    /// KMS could not seal a challenge on the leader.
    #[error("{0}")]
    SealChallenge(#[source] KmsError),
    #[error("adding {name} to the raft cluster: {source}")]
    AddLearner {
        name: String,
        #[source]
        source: RaftError,
    },
    #[error("no leader address given")]
    NoLeaderAddress,
    #[error("seal type mismatch: the leader uses the {leader} seal, this node the {local} seal")]
    SealTypeMismatch { leader: String, local: &'static str },
    /// Every candidate failed; the error is the last one seen.
    #[error("failed to join raft cluster: {0}")]
    NoCandidateAnswered(#[source] JoinClientError),
    /// A request to or answer from a leader candidate failed.
    #[error(transparent)]
    Client(#[from] JoinClientError),
    /// The operator's combined unseal key does not open the challenge.
    #[error("cipher: message authentication failed")]
    WrongUnsealKey,
    #[error("opening the join challenge through KMS: {0}")]
    OpenWithKms(#[source] KmsError),
    #[error("this node has no auto-unseal seal")]
    NoAutoSeal,
    #[error(transparent)]
    InstallTls(#[from] TlsError),
    #[error("starting raft: {0}")]
    StartRaft(#[source] RaftError),
    #[error("joined the raft cluster but no data arrived from the leader in {}s", JOIN_SYNC_TIMEOUT.as_secs())]
    NoDataFromLeader,
    #[error("unsealing from replicated data: {0}")]
    UnsealFromReplica(#[source] BarrierError),
}

impl JoinError {
    /// The HTTP status Vault answers with.
    pub fn status(&self) -> u16 {
        match self {
            JoinError::NoServerId
            | JoinError::NoAnswer
            | JoinError::NoClusterAddr
            | JoinError::DuplicateNodeId(_)
            | JoinError::NoExpectedAnswer
            | JoinError::WrongAnswer
            | JoinError::NoLeaderAddress
            | JoinError::SealTypeMismatch { .. }
            | JoinError::WrongUnsealKey
            | JoinError::OpenWithKms(_)
            | JoinError::NoAutoSeal => 400,
            JoinError::SealChallenge(_) => 503,
            JoinError::Client(e) => e.status(),
            JoinError::AddLearner { .. }
            | JoinError::NoCandidateAnswered(_)
            | JoinError::InstallTls(_)
            | JoinError::StartRaft(_)
            | JoinError::NoDataFromLeader
            | JoinError::UnsealFromReplica(_) => 500,
        }
    }
}

/// Refuses an empty server id, the first check of both leader-side requests.
pub fn require_server_id(server_id: &str) -> Result<(), JoinError> {
    if server_id.is_empty() {
        return Err(JoinError::NoServerId);
    }
    Ok(())
}

/// One challenge handed out and not yet answered.
struct Issued {
    answer: Zeroizing<Vec<u8>>,
    at: Instant,
}

/// A joiner's `bootstrap/answer` as the leader received it.
#[derive(Debug, Clone)]
pub struct JoinAnswer {
    pub server_id: String,
    pub answer: Vec<u8>,
    /// As sent: `host:port`, or a URL whose scheme is dropped.
    pub cluster_addr: String,
    pub api_addr: String,
    pub non_voter: bool,
}

/// What the leader does with an accepted answer: record the non-voter intent when asked,
/// then add the node as a learner (autopilot promotes it later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub server_id: String,
    /// `host:port` where peers reach the new member.
    pub cluster_addr: String,
    pub api_addr: String,
    pub record_non_voter: bool,
}

/// Leader side: the challenges handed out, one per joining node id.
#[derive(Default)]
pub struct ChallengeBook {
    issued: HashMap<String, Issued>,
}

impl ChallengeBook {
    /// Time passed: challenges older than [`CHALLENGE_TTL`] can no longer be answered.
    pub fn time_passed(&mut self, now: Instant) {
        self.issued
            .retain(|_, c| now.saturating_duration_since(c.at) < CHALLENGE_TTL);
    }

    /// A node asks for a challenge; returns the answer to seal into it.
    ///
    /// A joiner asks every candidate at once and standbys forward here, so several
    /// challenges for one node arrive together: they all hide the same answer (the first
    /// one's `fresh_answer`), or the one the joiner answers may have been replaced by a
    /// later one.
    pub fn challenge_requested<'a>(
        &mut self,
        server_id: &str,
        members: impl IntoIterator<Item = &'a str>,
        fresh_answer: Zeroizing<Vec<u8>>,
        now: Instant,
    ) -> Result<Zeroizing<Vec<u8>>, JoinError> {
        require_server_id(server_id)?;
        if members.into_iter().any(|m| m == server_id) {
            return Err(JoinError::DuplicateNodeId(server_id.to_string()));
        }
        self.time_passed(now);
        let issued = self.issued.entry(server_id.to_string()).or_insert(Issued {
            answer: fresh_answer,
            at: now,
        });
        Ok(issued.answer.clone())
    }

    /// A node sends its answer. Any answer uses the challenge up, so a wrong guess cannot
    /// be followed by another one.
    pub fn answer_received(&mut self, answer: JoinAnswer, now: Instant) -> Result<Admission, JoinError> {
        self.time_passed(now);
        let expected = self
            .issued
            .remove(&answer.server_id)
            .ok_or(JoinError::NoExpectedAnswer)?;
        if !bool::from(expected.answer.ct_eq(&answer.answer)) {
            return Err(JoinError::WrongAnswer);
        }
        let cluster_addr = match answer.cluster_addr.split_once("://") {
            Some((_, host_port)) => host_port.to_string(),
            None => answer.cluster_addr,
        };
        Ok(Admission {
            server_id: answer.server_id,
            cluster_addr,
            api_addr: answer.api_addr,
            record_non_voter: answer.non_voter,
        })
    }
}

/// Joiner side: a challenge received from a leader, waiting to be opened. `L` is how to
/// reach that leader again (the HTTP client in the core).
pub struct PendingJoin<L> {
    pub leader: L,
    pub challenge: Vec<u8>,
    pub seal_config: SealConfig,
    pub non_voter: bool,
}

/// What a join request does first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStart {
    /// Already a member, or a challenge is already waiting: report success, do nothing.
    AlreadyJoining,
    /// Ask every candidate for a challenge at once; the first answer wins.
    AskCandidates,
}

/// A join was requested (`operator raft join` or a `retry_join` round).
pub fn join_requested(
    member: bool,
    challenge_pending: bool,
    candidates: usize,
) -> Result<JoinStart, JoinError> {
    if member || challenge_pending {
        return Ok(JoinStart::AlreadyJoining);
    }
    if candidates == 0 {
        return Err(JoinError::NoLeaderAddress);
    }
    Ok(JoinStart::AskCandidates)
}

/// How the joiner opens a challenge it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenChallenge {
    /// Auto-unseal: through the shared KMS key, right away.
    WithKms,
    /// Shamir: keep the challenge until the operator's unseal shares are combined.
    WithUnsealKeys,
}

/// A challenge arrived: both nodes must use the same kind of seal.
pub fn challenge_received(
    leader_seal: &SealConfig,
    local_auto: bool,
    local_seal_type: &'static str,
) -> Result<OpenChallenge, JoinError> {
    if leader_seal.is_auto() != local_auto {
        return Err(JoinError::SealTypeMismatch {
            leader: leader_seal.seal_type.clone(),
            local: local_seal_type,
        });
    }
    Ok(if local_auto {
        OpenChallenge::WithKms
    } else {
        OpenChallenge::WithUnsealKeys
    })
}

/// What the joiner does while waiting for the leader's data after its answer was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataWaitStep {
    /// The root key and seal config arrived: unseal from them.
    Unseal,
    /// Look again shortly.
    PollAgain,
}

/// The bounded wait for the first replicated data.
#[derive(Debug, Clone, Copy)]
pub struct DataWait {
    deadline: Instant,
}

impl DataWait {
    /// Starts waiting at `now` (consensus just started).
    pub fn started(now: Instant) -> Self {
        Self {
            deadline: now + JOIN_SYNC_TIMEOUT,
        }
    }

    /// The data was looked at: unseal, poll again, or give up after [`JOIN_SYNC_TIMEOUT`].
    pub fn checked(&self, synced: bool, now: Instant) -> Result<DataWaitStep, JoinError> {
        if synced {
            Ok(DataWaitStep::Unseal)
        } else if now > self.deadline {
            Err(JoinError::NoDataFromLeader)
        } else {
            Ok(DataWaitStep::PollAgain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(vec![byte; 32])
    }

    fn answer(server_id: &str, given: &[u8]) -> JoinAnswer {
        JoinAnswer {
            server_id: server_id.into(),
            answer: given.to_vec(),
            cluster_addr: "https://10.0.0.2:8201".into(),
            api_addr: "https://10.0.0.2:8200".into(),
            non_voter: false,
        }
    }

    fn seal(seal_type: &str) -> SealConfig {
        serde_json::from_value(serde_json::json!({
            "type": seal_type, "secret_shares": 1, "secret_threshold": 1
        }))
        .unwrap()
    }

    #[test]
    fn a_correct_answer_admits_a_learner_without_the_address_scheme() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        let sealed = book.challenge_requested("node2", ["node1"], key(7), now).unwrap();
        assert_eq!(*sealed, *key(7));
        let admitted = book.answer_received(answer("node2", &key(7)), now).unwrap();
        assert_eq!(
            admitted,
            Admission {
                server_id: "node2".into(),
                cluster_addr: "10.0.0.2:8201".into(),
                api_addr: "https://10.0.0.2:8200".into(),
                record_non_voter: false,
            }
        );
    }

    #[test]
    fn a_plain_cluster_address_is_kept_and_non_voter_intent_recorded() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        book.challenge_requested("node2", [], key(1), now).unwrap();
        let mut given = answer("node2", &key(1));
        given.cluster_addr = "10.0.0.2:8201".into();
        given.non_voter = true;
        let admitted = book.answer_received(given, now).unwrap();
        assert_eq!(admitted.cluster_addr, "10.0.0.2:8201");
        assert!(admitted.record_non_voter);
    }

    #[test]
    fn concurrent_challenges_for_one_node_share_the_first_answer() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        let first = book.challenge_requested("node2", [], key(1), now).unwrap();
        let second = book
            .challenge_requested("node2", [], key(2), now + Duration::from_millis(5))
            .unwrap();
        assert_eq!(*first, *second);
        assert!(book.answer_received(answer("node2", &key(1)), now).is_ok());
    }

    #[test]
    fn different_nodes_get_their_own_answers() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        book.challenge_requested("node2", [], key(2), now).unwrap();
        book.challenge_requested("node3", [], key(3), now).unwrap();
        assert!(matches!(
            book.answer_received(answer("node3", &key(2)), now),
            Err(JoinError::WrongAnswer)
        ));
        assert!(book.answer_received(answer("node2", &key(2)), now).is_ok());
    }

    #[test]
    fn a_duplicate_node_id_is_refused_at_the_challenge() {
        let mut book = ChallengeBook::default();
        let err = book
            .challenge_requested("node2", ["node1", "node2"], key(1), Instant::now())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node_id \"node2\" is already a member of this raft cluster; node IDs must be unique (remove the old peer first)"
        );
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn an_empty_server_id_is_refused() {
        let mut book = ChallengeBook::default();
        let err = book
            .challenge_requested("", [], key(1), Instant::now())
            .unwrap_err();
        assert!(matches!(err, JoinError::NoServerId));
        assert_eq!(err.to_string(), "no server_id provided");
    }

    #[test]
    fn a_wrong_answer_is_refused_and_uses_the_challenge_up() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        book.challenge_requested("node2", [], key(1), now).unwrap();
        let err = book.answer_received(answer("node2", &key(9)), now).unwrap_err();
        assert_eq!(err.to_string(), "invalid answer given");
        assert!(matches!(
            book.answer_received(answer("node2", &key(1)), now),
            Err(JoinError::NoExpectedAnswer)
        ));
    }

    #[test]
    fn an_answer_without_a_challenge_is_refused() {
        let mut book = ChallengeBook::default();
        let err = book
            .answer_received(answer("node2", &key(1)), Instant::now())
            .unwrap_err();
        assert_eq!(err.to_string(), "no expected answer for the server id provided");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn an_expired_challenge_cannot_be_answered() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        book.challenge_requested("node2", [], key(1), now).unwrap();
        let late = now + CHALLENGE_TTL;
        assert!(matches!(
            book.answer_received(answer("node2", &key(1)), late),
            Err(JoinError::NoExpectedAnswer)
        ));
    }

    #[test]
    fn a_challenge_just_inside_its_lifetime_is_answerable() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        book.challenge_requested("node2", [], key(1), now).unwrap();
        let almost = now + CHALLENGE_TTL - Duration::from_millis(1);
        assert!(book.answer_received(answer("node2", &key(1)), almost).is_ok());
    }

    #[test]
    fn after_expiry_a_new_challenge_hides_a_new_answer() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        book.challenge_requested("node2", [], key(1), now).unwrap();
        let later = now + CHALLENGE_TTL + Duration::from_secs(1);
        let renewed = book.challenge_requested("node2", [], key(2), later).unwrap();
        assert_eq!(*renewed, *key(2));
    }

    #[test]
    fn time_passing_drops_only_expired_challenges() {
        let (mut book, now) = (ChallengeBook::default(), Instant::now());
        book.challenge_requested("old", [], key(1), now).unwrap();
        book.challenge_requested("new", [], key(2), now + Duration::from_secs(200))
            .unwrap();
        book.time_passed(now + CHALLENGE_TTL);
        assert!(book.answer_received(answer("old", &key(1)), now).is_err());
        assert!(book.answer_received(answer("new", &key(2)), now).is_ok());
    }

    #[test]
    fn a_join_request_asks_candidates_only_when_needed() {
        assert_eq!(join_requested(true, false, 0).unwrap(), JoinStart::AlreadyJoining);
        assert_eq!(join_requested(false, true, 0).unwrap(), JoinStart::AlreadyJoining);
        assert_eq!(join_requested(false, false, 2).unwrap(), JoinStart::AskCandidates);
        let err = join_requested(false, false, 0).unwrap_err();
        assert_eq!(err.to_string(), "no leader address given");
    }

    #[test]
    fn a_challenge_is_opened_by_the_matching_seal() {
        assert_eq!(
            challenge_received(&seal("shamir"), false, "shamir").unwrap(),
            OpenChallenge::WithUnsealKeys
        );
        assert_eq!(
            challenge_received(&seal("awskms"), true, "awskms").unwrap(),
            OpenChallenge::WithKms
        );
    }

    #[test]
    fn a_challenge_from_a_leader_with_another_seal_is_refused() {
        let err = challenge_received(&seal("awskms"), false, "shamir").unwrap_err();
        assert_eq!(
            err.to_string(),
            "seal type mismatch: the leader uses the awskms seal, this node the shamir seal"
        );
        assert_eq!(err.status(), 400);
        assert!(challenge_received(&seal("shamir"), true, "awskms").is_err());
    }

    #[test]
    fn the_data_wait_unseals_polls_and_gives_up() {
        let now = Instant::now();
        let wait = DataWait::started(now);
        assert_eq!(wait.checked(false, now).unwrap(), DataWaitStep::PollAgain);
        assert_eq!(
            wait.checked(true, now + JOIN_SYNC_TIMEOUT * 2).unwrap(),
            DataWaitStep::Unseal
        );
        let late = now + JOIN_SYNC_TIMEOUT + Duration::from_millis(1);
        let err = wait.checked(false, late).unwrap_err();
        assert_eq!(
            err.to_string(),
            "joined the raft cluster but no data arrived from the leader in 60s"
        );
        assert_eq!(err.status(), 500);
    }
}
