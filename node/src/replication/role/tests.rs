use super::*;
use crate::replication::primary::primary_keys;

fn refusal<T>(result: Result<T, ReplicationError>) -> ReplicationError {
    match result {
        Ok(_) => panic!("the transition was accepted"),
        Err(e) => e,
    }
}

fn no_keys(_: &str) -> Result<PrimaryKeys, ReplicationError> {
    panic!("keys may only be made for an accepted transition")
}

fn primary(ids: &[(&str, bool)]) -> DrState {
    let transition = DrState::Disabled
        .enable_primary(true, "cluster-1", "10.0.0.1:8201".into(), primary_keys)
        .unwrap();
    let DrState::Primary(mut state) = transition.next else {
        panic!("enable_primary did not make a primary");
    };
    for (id, revoked) in ids {
        let known = KnownSecondary {
            id: id.to_string(),
            revoked: *revoked,
        };
        state.secondaries.insert(id.to_string(), known);
    }
    DrState::Primary(state)
}

fn secondary() -> DrState {
    DrState::Secondary(SecondaryState {
        cluster_id: "cluster-1".into(),
        secondary_id: "dr-1".into(),
        primary_cluster_addr: "10.0.0.1:8201".into(),
        primary_api_addr: "https://10.0.0.1:8200".into(),
        known_primary_cluster_addrs: vec!["10.0.0.1:8201".into(), "10.0.0.2:8201".into()],
        ca_pem: "CA".into(),
        client_cert_pem: "CERT".into(),
        client_key_pem: "KEY".into(),
    })
}

fn as_primary(state: &DrState) -> &PrimaryState {
    match state {
        DrState::Primary(p) => p,
        other => panic!("expected a primary, got {}", other.mode()),
    }
}

fn as_secondary(state: &DrState) -> &SecondaryState {
    match state {
        DrState::Secondary(s) => s,
        other => panic!("expected a secondary, got {}", other.mode()),
    }
}

fn assert_refused(err: ReplicationError, message: &str, status: u16) {
    assert_eq!((err.to_string().as_str(), err.status()), (message, status));
}

#[test]
fn modes_are_vaults_names() {
    assert_eq!(DrState::Disabled.mode(), "disabled");
    assert_eq!(primary(&[]).mode(), "primary");
    assert_eq!(secondary().mode(), "secondary");
}

#[test]
fn enable_primary_makes_keys_for_this_cluster_and_trusts_its_ca() {
    let mut made_for = String::new();
    let transition = DrState::Disabled
        .enable_primary(true, "cluster-7", "10.0.0.9:8201".into(), |id| {
            made_for = id.to_string();
            primary_keys(id)
        })
        .unwrap();
    assert_eq!(made_for, "cluster-7");
    let p = as_primary(&transition.next);
    assert_eq!(
        (p.cluster_id.as_str(), p.primary_cluster_addr.as_str()),
        ("cluster-7", "10.0.0.9:8201")
    );
    assert!(p.secondaries.is_empty());
    assert!(!p.jwt_key.is_empty());
    assert_eq!(transition.actions, vec![RoleAction::InstallClusterTls]);
    assert_eq!(transition.warning, Some(ENABLE_PRIMARY_WARNING));
}

#[test]
fn enable_primary_is_refused_without_raft_and_on_any_role() {
    let err = refusal(DrState::Disabled.enable_primary(false, "c", "a".into(), no_keys));
    assert_refused(err, "DR replication requires raft storage", 400);
    let err = refusal(primary(&[]).enable_primary(true, "c", "a".into(), no_keys));
    assert_refused(err, "this cluster is already a DR primary", 400);
    let err = refusal(secondary().enable_primary(true, "c", "a".into(), no_keys));
    assert_refused(
        err,
        "this cluster is a DR secondary; promote it before enabling it as a primary",
        400,
    );
}

#[test]
fn a_secondary_token_records_the_secondary_only_in_the_next_role() {
    let current = primary(&[]);
    let (issuer, transition) = current.issue_secondary_token("dr-1_a.B").unwrap();
    assert!(issuer.secondaries.is_empty());
    let next = as_primary(&transition.next);
    assert_eq!(
        next.secondaries.get("dr-1_a.B"),
        Some(&KnownSecondary {
            id: "dr-1_a.B".into(),
            revoked: false
        })
    );
    assert_eq!(next.jwt_key, issuer.jwt_key);
    assert!(transition.actions.is_empty());
    assert_eq!(transition.warning, None);
}

#[test]
fn a_secondary_token_is_refused_off_a_primary_for_bad_or_taken_ids() {
    for state in [DrState::Disabled, secondary()] {
        let err = refusal(state.issue_secondary_token("dr-1"));
        assert_refused(
            err,
            "this cluster is not a DR primary; run sys/replication/dr/primary/enable first",
            400,
        );
    }
    let current = primary(&[("dr-1", false), ("old", true)]);
    for id in ["", "a b", "dr/1", "ü", &"x".repeat(129)] {
        let err = refusal(current.issue_secondary_token(id));
        assert_refused(err, "id must be 1-128 letters, digits, '-', '_' or '.'", 400);
    }
    assert!(current.issue_secondary_token(&"x".repeat(128)).is_ok());
    let err = refusal(current.issue_secondary_token("dr-1"));
    assert_refused(
        err,
        "a secondary with id \"dr-1\" already exists; revoke it or pick another id",
        400,
    );
    // A revoked id may be given out again.
    let (_, transition) = current.issue_secondary_token("old").unwrap();
    assert!(!as_primary(&transition.next).secondaries["old"].revoked);
}

#[test]
fn revoking_marks_the_secondary_and_forgets_its_progress() {
    let transition = primary(&[("dr-1", false)]).revoke_secondary("dr-1").unwrap();
    assert!(as_primary(&transition.next).secondaries["dr-1"].revoked);
    assert_eq!(
        transition.actions,
        vec![RoleAction::ForgetProgress("dr-1".into())]
    );
    let err = refusal(primary(&[]).revoke_secondary("dr-9"));
    assert_refused(err, "no secondary with id \"dr-9\"", 400);
    for state in [DrState::Disabled, secondary()] {
        assert_refused(
            refusal(state.revoke_secondary("dr-1")),
            "this cluster is not a DR primary",
            400,
        );
    }
}

#[test]
fn only_known_unrevoked_secondaries_may_stream() {
    let current = primary(&[("live", false), ("gone", true)]);
    assert!(current.check_stream_peer("live").is_ok());
    for id in ["gone", "stranger"] {
        let err = refusal(current.check_stream_peer(id));
        assert_refused(err, &format!("secondary \"{id}\" is unknown or revoked"), 403);
    }
    for state in [DrState::Disabled, secondary()] {
        let err = refusal(state.check_stream_peer("live"));
        assert_refused(err, "this cluster is not a DR primary", 403);
    }
}

#[test]
fn demotion_keeps_the_cluster_id_and_has_no_primary() {
    let transition = primary(&[("dr-1", false)]).demote().unwrap();
    let s = as_secondary(&transition.next);
    assert_eq!(s.cluster_id, "cluster-1");
    assert!(s.primary_cluster_addr.is_empty() && s.known_primary_cluster_addrs.is_empty());
    assert!(s.client_key_pem.is_empty() && s.secondary_id.is_empty());
    assert_eq!(transition.actions, vec![RoleAction::InstallClusterTls]);
    assert_eq!(transition.warning, Some(DEMOTE_WARNING));
    for state in [DrState::Disabled, secondary()] {
        assert_refused(refusal(state.demote()), "this cluster is not a DR primary", 400);
    }
}

#[test]
fn disabling_a_primary_cuts_off_every_secondary() {
    let transition = primary(&[("dr-1", false)]).disable_primary().unwrap();
    assert!(matches!(transition.next, DrState::Disabled));
    assert_eq!(
        transition.actions,
        vec![RoleAction::InstallClusterTls, RoleAction::ForgetAllProgress]
    );
    assert_eq!(transition.warning, Some(DISABLE_PRIMARY_WARNING));
    for state in [DrState::Disabled, secondary()] {
        assert_refused(
            refusal(state.disable_primary()),
            "this cluster is not a DR primary",
            400,
        );
    }
}

#[test]
fn only_a_cluster_without_a_role_becomes_a_secondary() {
    assert!(DrState::Disabled.enable_secondary(true).is_ok());
    let err = refusal(DrState::Disabled.enable_secondary(false));
    assert_refused(err, "DR replication requires raft storage", 400);
    let err = refusal(primary(&[]).enable_secondary(true));
    assert_refused(
        err,
        "this cluster is a DR primary; it cannot become a secondary",
        400,
    );
    let err = refusal(secondary().enable_secondary(true));
    assert_refused(
        err,
        "this cluster is already a DR secondary; use update-primary to change primaries",
        400,
    );
}

#[test]
fn update_primary_follows_a_token_or_forgets_the_primary() {
    assert!(matches!(
        secondary().update_primary(true),
        Ok(UpdatePrimary::Follow)
    ));
    let Ok(UpdatePrimary::Forget(transition)) = secondary().update_primary(false) else {
        panic!("an empty token must forget the primary");
    };
    let s = as_secondary(&transition.next);
    assert!(s.primary_cluster_addr.is_empty() && s.known_primary_cluster_addrs.is_empty());
    assert_eq!(
        (s.cluster_id.as_str(), s.client_cert_pem.as_str()),
        ("cluster-1", "CERT")
    );
    assert_eq!(
        transition.actions,
        vec![RoleAction::ResetStream {
            state: "idle",
            connection: "idle"
        }]
    );
    assert_eq!(transition.warning, None);
    for state in [DrState::Disabled, primary(&[])] {
        for token_given in [true, false] {
            let err = refusal(state.update_primary(token_given));
            assert_refused(err, "this cluster is not a DR secondary", 400);
        }
    }
}

#[test]
fn promotion_makes_a_primary_of_the_same_cluster_with_new_keys() {
    let transition = secondary().promote("10.0.1.1:8201".into(), primary_keys).unwrap();
    let p = as_primary(&transition.next);
    assert_eq!(
        (p.cluster_id.as_str(), p.primary_cluster_addr.as_str()),
        ("cluster-1", "10.0.1.1:8201")
    );
    assert!(p.secondaries.is_empty());
    assert_eq!(
        transition.actions,
        vec![
            RoleAction::InstallClusterTls,
            RoleAction::ReloadTables,
            RoleAction::ResetStream {
                state: "idle",
                connection: "shutdown"
            },
        ]
    );
    assert_eq!(transition.warning, Some(PROMOTE_WARNING));
    for state in [DrState::Disabled, primary(&[])] {
        let err = refusal(state.promote("a".into(), no_keys));
        assert_refused(err, "this cluster is not a DR secondary", 400);
    }
}

#[test]
fn a_demoted_primary_can_be_promoted_back() {
    let demoted = primary(&[("dr-1", false)]).demote().unwrap().next;
    let promoted = demoted
        .promote("10.0.0.1:8201".into(), primary_keys)
        .unwrap()
        .next;
    assert_eq!(as_primary(&promoted).cluster_id, "cluster-1");
    assert!(as_primary(&promoted).secondaries.is_empty());
}

#[test]
fn operation_tokens_are_for_secondaries_and_required() {
    assert!(secondary().check_operation_token("hvs.x").is_ok());
    let err = refusal(secondary().check_operation_token(""));
    assert_refused(err, "dr_operation_token is required", 400);
    for state in [DrState::Disabled, primary(&[])] {
        let err = refusal(state.check_operation_token("hvs.x"));
        assert_refused(err, "this cluster is not a DR secondary", 400);
    }
}

#[test]
fn the_primary_address_drops_its_scheme_and_defaults_to_this_node() {
    assert_eq!(primary_cluster_addr(None, "own:8201"), "own:8201");
    assert_eq!(primary_cluster_addr(Some(String::new()), "own:8201"), "own:8201");
    assert_eq!(
        primary_cluster_addr(Some("https://lb:8201".into()), "own:8201"),
        "lb:8201"
    );
    assert_eq!(
        primary_cluster_addr(Some("lb:8201".into()), "own:8201"),
        "lb:8201"
    );
}

#[test]
fn merged_addresses_start_with_the_first_and_hold_each_once() {
    let rest = vec!["b".to_string(), "a".to_string(), "c".to_string(), "b".to_string()];
    assert_eq!(merge_addrs("a", &rest), vec!["a", "b", "c"]);
    assert_eq!(merge_addrs("a", &[]), vec!["a"]);
}

#[test]
fn a_drain_waits_only_for_live_secondaries_that_are_behind() {
    let now = Utc::now();
    let live_since = now - chrono::Duration::seconds(10);
    let seen = |last_ack, seconds_ago| SecondaryProgress {
        last_ack,
        last_heartbeat: now - chrono::Duration::seconds(seconds_ago),
    };
    let progress: HashMap<String, SecondaryProgress> = [
        ("b-behind".to_string(), seen(40, 1)),
        ("a-behind".to_string(), seen(7, 2)),
        ("caught-up".to_string(), seen(50, 1)),
        ("stale".to_string(), seen(3, 60)),
    ]
    .into_iter()
    .collect();
    let behind = behind_after_drain(&progress, 50, live_since);
    let ids: Vec<&str> = behind.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, vec!["a-behind", "b-behind"]);
    assert_eq!(
        behind[0].warning(),
        "secondary a-behind acknowledged WAL 7 of 50 before the demotion; writes after 7 are not on it"
    );
    assert!(behind_after_drain(&progress, 3, live_since).is_empty());
}
