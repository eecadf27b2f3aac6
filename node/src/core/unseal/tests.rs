use super::*;

const SHARE_A: &str = "0a0b0c0d";
const SHARE_B: &str = "1a1b1c1d";
const SHARE_C: &str = "2a2b2c2d";

fn shamir(shares: u64, threshold: u64) -> SealConfig {
    SealConfig::shamir(shares, threshold).unwrap()
}

fn awskms(shares: u64, threshold: u64) -> SealConfig {
    SealConfig::auto("awskms", shares, threshold).unwrap()
}

fn sealed(config: &SealConfig) -> UnsealFacts<'_> {
    UnsealFacts {
        config: Some(config),
        joining: false,
        configured_seal: if config.is_auto() { "awskms" } else { "shamir" },
        migration: false,
        unsealed: false,
    }
}

fn share(key: &str) -> UnsealRequest<'_> {
    UnsealRequest {
        key: Some(key),
        ..Default::default()
    }
}

fn reset() -> UnsealRequest<'static> {
    UnsealRequest {
        reset: true,
        ..Default::default()
    }
}

fn nonce(n: &str) -> impl FnOnce() -> String + '_ {
    move || n.to_string()
}

fn no_nonce() -> String {
    panic!("no new attempt may start here")
}

fn combined(step: UnsealStep) -> (Vec<Vec<u8>>, u8, KeyUse) {
    match step {
        UnsealStep::Combine {
            shares,
            threshold,
            then,
        } => (shares.iter().map(|s| s.to_vec()).collect(), threshold, then),
        other => panic!("expected Combine, got {other:?}"),
    }
}

#[test]
fn uninitialized_refuses_every_request() {
    let facts = UnsealFacts {
        config: None,
        joining: true,
        configured_seal: "shamir",
        migration: false,
        unsealed: false,
    };
    let mut progress = UnsealProgress::default();
    for request in [share(SHARE_A), reset(), UnsealRequest::default()] {
        let err = progress.step(&facts, request, no_nonce).unwrap_err();
        assert!(matches!(err, SealStateError::NotInitialized));
        assert_eq!(err.to_string(), "Vault is not initialized");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn shares_below_the_threshold_report_progress_under_one_nonce() {
    let config = shamir(3, 3);
    let mut progress = UnsealProgress::default();
    assert_eq!((progress.progress(), progress.nonce()), (0, ""));
    let step = progress
        .step(&sealed(&config), share(SHARE_A), nonce("n-1"))
        .unwrap();
    assert_eq!(step, UnsealStep::Report);
    assert_eq!((progress.progress(), progress.nonce()), (1, "n-1"));
    let step = progress.step(&sealed(&config), share(SHARE_B), no_nonce).unwrap();
    assert_eq!(step, UnsealStep::Report);
    assert_eq!((progress.progress(), progress.nonce()), (2, "n-1"));
}

#[test]
fn the_threshold_share_hands_over_all_shares_and_resets_progress() {
    let config = shamir(3, 2);
    let mut progress = UnsealProgress::default();
    progress
        .step(&sealed(&config), share(SHARE_A), nonce("n-1"))
        .unwrap();
    let step = progress.step(&sealed(&config), share(SHARE_B), no_nonce).unwrap();
    let (shares, threshold, then) = combined(step);
    assert_eq!(
        shares,
        vec![hex::decode(SHARE_A).unwrap(), hex::decode(SHARE_B).unwrap()]
    );
    assert_eq!((threshold, then), (2, KeyUse::OpenBarrier));
    // Success or a wrong key alike, the next share starts a new attempt (as Vault does).
    assert_eq!((progress.progress(), progress.nonce()), (0, ""));
    progress
        .step(&sealed(&config), share(SHARE_A), nonce("n-2"))
        .unwrap();
    assert_eq!((progress.progress(), progress.nonce()), (1, "n-2"));
}

#[test]
fn one_of_one_combines_at_the_first_share() {
    let config = shamir(1, 1);
    let mut progress = UnsealProgress::default();
    let step = progress
        .step(&sealed(&config), share(SHARE_A), nonce("n"))
        .unwrap();
    let (shares, threshold, then) = combined(step);
    assert_eq!((shares.len(), threshold, then), (1, 1, KeyUse::OpenBarrier));
}

#[test]
fn a_duplicate_share_is_refused_and_keeps_progress() {
    let config = shamir(3, 3);
    let mut progress = UnsealProgress::default();
    progress
        .step(&sealed(&config), share(SHARE_A), nonce("n-1"))
        .unwrap();
    let err = progress
        .step(&sealed(&config), share(SHARE_A), no_nonce)
        .unwrap_err();
    assert_eq!(err.to_string(), "given key share is a duplicate");
    assert_eq!(err.status(), 400);
    // The same bytes in base64 are the same share.
    let err = progress
        .step(&sealed(&config), share("CgsMDQ=="), no_nonce)
        .unwrap_err();
    assert!(matches!(err, SealStateError::DuplicateShare));
    assert_eq!((progress.progress(), progress.nonce()), (1, "n-1"));
}

#[test]
fn a_share_of_another_length_is_refused_and_keeps_progress() {
    let config = shamir(3, 3);
    let mut progress = UnsealProgress::default();
    progress
        .step(&sealed(&config), share(SHARE_A), nonce("n-1"))
        .unwrap();
    let err = progress
        .step(&sealed(&config), share("0a0b0c0d0e"), no_nonce)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid key: key share has the wrong length for this seal"
    );
    assert_eq!((progress.progress(), progress.nonce()), (1, "n-1"));
}

#[test]
fn a_missing_or_undecodable_key_is_refused() {
    let config = shamir(3, 2);
    let mut progress = UnsealProgress::default();
    for request in [UnsealRequest::default(), share("")] {
        let err = progress.step(&sealed(&config), request, no_nonce).unwrap_err();
        assert_eq!(
            err.to_string(),
            "'key' must be specified in request body as JSON, or 'reset' set to true"
        );
    }
    let err = progress
        .step(&sealed(&config), share("not a key!"), no_nonce)
        .unwrap_err();
    assert_eq!(err.to_string(), "'key' must be a valid hex or base64 string");
    assert_eq!(err.status(), 400);
    assert_eq!(progress.progress(), 0);
}

#[test]
fn reset_forgets_the_attempt_and_is_refused_while_unsealed() {
    let config = shamir(3, 2);
    let mut progress = UnsealProgress::default();
    progress
        .step(&sealed(&config), share(SHARE_A), nonce("n-1"))
        .unwrap();
    // Reset wins over a key given with it.
    let request = UnsealRequest {
        key: Some(SHARE_B),
        reset: true,
        migrate: false,
    };
    assert_eq!(
        progress.step(&sealed(&config), request, no_nonce).unwrap(),
        UnsealStep::Report
    );
    assert_eq!((progress.progress(), progress.nonce()), (0, ""));

    let unsealed = UnsealFacts {
        unsealed: true,
        ..sealed(&config)
    };
    let err = progress.step(&unsealed, reset(), no_nonce).unwrap_err();
    assert_eq!(err.to_string(), "vault is unsealed");
    assert_eq!(err.status(), 400);
}

#[test]
fn a_share_sent_to_an_unsealed_node_only_reports() {
    let config = shamir(3, 2);
    let unsealed = UnsealFacts {
        unsealed: true,
        ..sealed(&config)
    };
    let mut progress = UnsealProgress::default();
    assert_eq!(
        progress.step(&unsealed, share(SHARE_A), no_nonce).unwrap(),
        UnsealStep::Report
    );
    assert_eq!(progress.progress(), 0);
    // The key is still required.
    let err = progress
        .step(&unsealed, UnsealRequest::default(), no_nonce)
        .unwrap_err();
    assert!(matches!(err, SealStateError::KeyMissing));
}

#[test]
fn a_joining_node_opens_the_join_challenge_with_the_key() {
    let config = shamir(1, 1);
    let joining = UnsealFacts {
        joining: true,
        ..sealed(&config)
    };
    let step = UnsealProgress::default()
        .step(&joining, share(SHARE_A), nonce("n"))
        .unwrap();
    assert_eq!(combined(step).2, KeyUse::CompleteJoin);
}

#[test]
fn an_auto_unseal_node_unseals_itself_and_takes_no_shares() {
    let config = awskms(3, 2);
    let mut progress = UnsealProgress::default();
    let step = progress.step(&sealed(&config), share(SHARE_A), no_nonce).unwrap();
    assert_eq!(step, UnsealStep::AutoUnseal);
    let unsealed = UnsealFacts {
        unsealed: true,
        ..sealed(&config)
    };
    assert_eq!(
        progress.step(&unsealed, reset(), no_nonce).unwrap(),
        UnsealStep::Report
    );
    assert_eq!(progress.progress(), 0);
}

#[test]
fn a_pending_migration_needs_the_migrate_flag_and_names_the_keys() {
    let stored = shamir(3, 2);
    let facts = UnsealFacts {
        configured_seal: "awskms",
        migration: true,
        ..sealed(&stored)
    };
    let mut progress = UnsealProgress::default();
    let err = progress.step(&facts, share(SHARE_A), no_nonce).unwrap_err();
    assert_eq!(
        err.to_string(),
        "seal migration pending: storage uses the shamir seal but the configuration the awskms seal; \
         unseal with -migrate and the current unseal keys"
    );
    assert_eq!(err.status(), 400);
    // A reset is allowed without -migrate.
    assert_eq!(
        progress.step(&facts, reset(), no_nonce).unwrap(),
        UnsealStep::Report
    );
    let migrate = |key| UnsealRequest {
        key: Some(key),
        reset: false,
        migrate: true,
    };
    assert_eq!(
        progress.step(&facts, migrate(SHARE_A), nonce("m")).unwrap(),
        UnsealStep::Report
    );
    let step = progress.step(&facts, migrate(SHARE_B), no_nonce).unwrap();
    let (_, threshold, then) = combined(step);
    assert_eq!((threshold, then), (2, KeyUse::MigrateSeal));
    assert_eq!(progress.progress(), 0);
}

#[test]
fn migrating_away_from_awskms_collects_the_recovery_shares() {
    let stored = awskms(3, 3);
    let facts = UnsealFacts {
        configured_seal: "shamir",
        migration: true,
        ..sealed(&stored)
    };
    let mut progress = UnsealProgress::default();
    let err = progress.step(&facts, share(SHARE_A), no_nonce).unwrap_err();
    assert!(err
        .to_string()
        .ends_with("unseal with -migrate and the current recovery keys"));
    let migrate = |key| UnsealRequest {
        key: Some(key),
        reset: false,
        migrate: true,
    };
    progress.step(&facts, migrate(SHARE_A), nonce("m")).unwrap();
    progress.step(&facts, migrate(SHARE_B), no_nonce).unwrap();
    let (shares, threshold, then) = combined(progress.step(&facts, migrate(SHARE_C), no_nonce).unwrap());
    assert_eq!((shares.len(), threshold, then), (3, 3, KeyUse::MigrateSeal));
}

#[test]
fn the_debug_form_of_a_step_shows_no_key_material() {
    let config = shamir(1, 1);
    let step = UnsealProgress::default()
        .step(&sealed(&config), share("deadbeef"), nonce("n"))
        .unwrap();
    let shown = format!("{step:?}");
    assert_eq!(shown, "Combine { shares: 1, threshold: 1, then: OpenBarrier }");
}

fn init(shares: u64, threshold: u64, recovery_shares: u64, recovery_threshold: u64) -> InitRequest {
    InitRequest {
        secret_shares: shares,
        secret_threshold: threshold,
        recovery_shares,
        recovery_threshold,
        ..Default::default()
    }
}

#[test]
fn init_is_refused_once_initialized_and_with_pgp_keys() {
    let err = plan_init(&init(1, 1, 0, 0), None, true).unwrap_err();
    assert_eq!(err.to_string(), "Vault is already initialized");
    assert_eq!(err.status(), 400);
    for req in [
        InitRequest {
            pgp_keys: Some(vec!["k".into()]),
            ..init(1, 1, 0, 0)
        },
        InitRequest {
            root_token_pgp_key: Some("k".into()),
            ..init(1, 1, 0, 0)
        },
        InitRequest {
            recovery_pgp_keys: Some(vec!["k".into()]),
            ..init(1, 1, 0, 0)
        },
    ] {
        let err = plan_init(&req, None, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PGP-encrypted key shares are not supported by labnode"
        );
    }
    // Empty PGP lists are what clients send by default.
    let req = InitRequest {
        pgp_keys: Some(vec![]),
        root_token_pgp_key: Some(String::new()),
        ..init(1, 1, 0, 0)
    };
    assert!(plan_init(&req, None, false).is_ok());
}

#[test]
fn shamir_init_takes_secret_shares_only() {
    let config = plan_init(&init(5, 3, 0, 0), None, false).unwrap();
    assert_eq!(config, shamir(5, 3));
    let err = plan_init(&init(5, 3, 5, 3), None, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameters recovery_shares,recovery_threshold not applicable to seal type shamir"
    );
    let err = plan_init(&init(3, 5, 0, 0), None, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid seal configuration: threshold cannot be larger than shares"
    );
    assert_eq!(err.status(), 400);
}

#[test]
fn auto_unseal_init_takes_recovery_shares_only() {
    let config = plan_init(&init(0, 0, 5, 3), Some("awskms"), false).unwrap();
    assert_eq!(config, awskms(5, 3));
    assert_eq!(config.operator_shares(), (5, 3));
    assert_eq!(
        plan_init(&init(0, 0, 0, 0), Some("awskms"), false)
            .unwrap()
            .operator_shares(),
        (0, 0)
    );
    let err = plan_init(&init(5, 3, 0, 0), Some("awskms"), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameters secret_shares,secret_threshold not applicable to seal type awskms"
    );
    let err = plan_init(&init(0, 0, 3, 1), Some("awskms"), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid recovery configuration: recovery threshold must be greater than one for multiple shares"
    );
}

#[test]
fn health_codes_follow_vaults_precedence_and_overrides() {
    let active = HealthFacts {
        initialized: true,
        ..Default::default()
    };
    let q = HealthQuery::default();
    assert_eq!(HealthFacts::default().code(&q), 501);
    let removed_and_sealed = HealthFacts {
        removed: true,
        sealed: true,
        ..active
    };
    assert_eq!(removed_and_sealed.code(&q), 530);
    let sealed = HealthFacts {
        sealed: true,
        ..active
    };
    assert_eq!(sealed.code(&q), 503);
    let dr_standby = HealthFacts {
        dr_secondary: true,
        standby: true,
        ..active
    };
    assert_eq!(dr_standby.code(&q), 472);
    let standby = HealthFacts {
        standby: true,
        ..active
    };
    assert_eq!(standby.code(&q), 429);
    assert_eq!(active.code(&q), 200);

    let standbyok = HealthQuery {
        standbyok: true,
        ..Default::default()
    };
    assert_eq!(standby.code(&standbyok), 200);
    let overrides = HealthQuery {
        activecode: Some(201),
        standbycode: Some(202),
        drsecondarycode: Some(203),
        sealedcode: Some(204),
        uninitcode: Some(205),
        removedcode: Some(206),
        ..Default::default()
    };
    assert_eq!(active.code(&overrides), 201);
    assert_eq!(standby.code(&overrides), 202);
    assert_eq!(dr_standby.code(&overrides), 203);
    assert_eq!(sealed.code(&overrides), 204);
    assert_eq!(HealthFacts::default().code(&overrides), 205);
    assert_eq!(removed_and_sealed.code(&overrides), 206);
}
