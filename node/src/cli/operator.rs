//! `vault status` and `vault operator ...` (init, unseal, seal, step-down, members,
//! validate-config, generate-root), with vault's tables and exit codes.

use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{Body, Client};
use super::flags::{flag_set, CommaList, HttpFlags, HttpOnly, HttpOutput, OutputFlags};
use super::format::{self, Format};
use super::{expect_args, read_secret, CliError, CmdResult, Context};

fn skip_empty(s: &str) -> bool {
    s.is_empty()
}

fn skip_zero(n: &u64) -> bool {
    *n == 0
}

fn skip_false(b: &bool) -> bool {
    !*b
}

/// `sys/seal-status`, serialized in the Go `SealStatusResponse` field order.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct SealStatus {
    #[serde(rename = "type")]
    kind: String,
    initialized: bool,
    sealed: bool,
    t: i64,
    n: i64,
    progress: i64,
    nonce: String,
    version: String,
    build_date: String,
    migration: bool,
    #[serde(skip_serializing_if = "skip_empty")]
    cluster_name: String,
    #[serde(skip_serializing_if = "skip_empty")]
    cluster_id: String,
    recovery_seal: bool,
    #[serde(skip_serializing_if = "skip_empty")]
    recovery_seal_type: String,
    #[serde(skip_serializing_if = "skip_empty")]
    storage_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<String>>,
}

/// `sys/leader`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Leader {
    ha_enabled: bool,
    is_self: bool,
    active_time: String,
    leader_address: String,
    leader_cluster_address: String,
    performance_standby: bool,
    performance_standby_last_remote_wal: u64,
    last_wal: u64,
    raft_committed_index: u64,
    raft_applied_index: u64,
}

/// Vault's `SealStatusOutput`: seal status plus the leader fields.
#[derive(Debug, Serialize)]
struct StatusOutput {
    #[serde(flatten)]
    seal: SealStatus,
    ha_enabled: bool,
    #[serde(skip_serializing_if = "skip_false")]
    is_self: bool,
    #[serde(skip_serializing_if = "skip_empty")]
    active_time: String,
    #[serde(skip_serializing_if = "skip_empty")]
    leader_address: String,
    #[serde(skip_serializing_if = "skip_empty")]
    leader_cluster_address: String,
    #[serde(skip_serializing_if = "skip_false")]
    performance_standby: bool,
    #[serde(skip_serializing_if = "skip_zero")]
    performance_standby_last_remote_wal: u64,
    #[serde(skip_serializing_if = "skip_zero")]
    last_wal: u64,
    #[serde(skip_serializing_if = "skip_zero")]
    raft_committed_index: u64,
    #[serde(skip_serializing_if = "skip_zero")]
    raft_applied_index: u64,
}

fn row(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// Vault's `OutputSealStatus`: reads `sys/leader` and prints the combined table/JSON.
async fn output_seal_status(client: &Client, seal: SealStatus, fmt: Format) -> CmdResult {
    let leader = match client.send("GET", "sys/leader", &[], &Body::Empty).await {
        Ok(r) => r.json::<Leader>()?.unwrap_or_default(),
        Err(CliError::Transport(e)) if e.to_string().contains("Vault is sealed") => Leader {
            ha_enabled: true,
            ..Leader::default()
        },
        Err(e) => {
            return Err(e)
                .context("Error checking leader status")
                .map_err(|e| CliError::Local(e.to_string()))
        }
    };
    let out = StatusOutput {
        seal,
        ha_enabled: leader.ha_enabled,
        is_self: leader.is_self,
        active_time: leader.active_time,
        leader_address: leader.leader_address,
        leader_cluster_address: leader.leader_cluster_address,
        performance_standby: leader.performance_standby,
        performance_standby_last_remote_wal: leader.performance_standby_last_remote_wal,
        last_wal: leader.last_wal,
        raft_committed_index: leader.raft_committed_index,
        raft_applied_index: leader.raft_applied_index,
    };
    if fmt != Format::Table {
        format::print_structured(&out, fmt)?;
        return Ok(0);
    }
    let s = &out.seal;
    let prefix = if s.recovery_seal { "Recovery " } else { "" };
    let mut rows = vec![
        row(&format!("{prefix}Seal Type"), &s.kind),
        row("Initialized", s.initialized),
        row("Sealed", s.sealed),
        row(&format!("Total {prefix}Shares"), s.n),
        row("Threshold", s.t),
    ];
    if s.sealed {
        rows.push(row("Unseal Progress", format!("{}/{}", s.progress, s.t)));
        rows.push(row("Unseal Nonce", &s.nonce));
    }
    if s.migration {
        rows.push(row("Seal Migration in Progress", s.migration));
    }
    rows.push(row("Version", &s.version));
    rows.push(row("Build Date", &s.build_date));
    rows.push(row("Storage Type", &s.storage_type));
    if !s.cluster_name.is_empty() && !s.cluster_id.is_empty() {
        rows.push(row("Cluster Name", &s.cluster_name));
        rows.push(row("Cluster ID", &s.cluster_id));
    }
    rows.push(row("HA Enabled", out.ha_enabled));
    if out.ha_enabled {
        if !s.sealed {
            rows.push(row("HA Cluster", &out.leader_cluster_address));
            let mode = if out.is_self { "active" } else { "standby" };
            rows.push(row("HA Mode", mode));
            if out.is_self && !out.active_time.is_empty() && !out.active_time.starts_with("0001-01-01") {
                rows.push(row("Active Since", &out.active_time));
            }
            if !out.is_self {
                let addr = if out.leader_address.is_empty() {
                    "<none>"
                } else {
                    &out.leader_address
                };
                rows.push(row("Active Node Address", addr));
            }
            if out.performance_standby {
                rows.push(row("Performance Standby Node", true));
                rows.push(row(
                    "Performance Standby Last Remote WAL",
                    out.performance_standby_last_remote_wal,
                ));
            }
        }
        if out.raft_committed_index > 0 {
            rows.push(row("Raft Committed Index", out.raft_committed_index));
        }
        if out.raft_applied_index > 0 {
            rows.push(row("Raft Applied Index", out.raft_applied_index));
        }
        if out.last_wal != 0 {
            rows.push(row("Last WAL", out.last_wal));
        }
    }
    format::out(&format::kv_table(rows));
    Ok(0)
}

async fn seal_status(client: &Client) -> Result<SealStatus, CliError> {
    let resp = client.send("GET", "sys/seal-status", &[], &Body::Empty).await?;
    Ok(resp.json::<SealStatus>()?.unwrap_or_default())
}

/// `vault status`: 0 unsealed, 2 sealed, 1 on error.
pub async fn status(f: HttpOutput, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let seal = seal_status(&client)
        .await
        .context("Error checking seal status")
        .map_err(|e| CliError::Local(e.to_string()))?;
    let sealed = seal.sealed;
    let code = output_seal_status(&client, seal, fmt).await?;
    Ok(if sealed { 2 } else { code })
}

/// Vault's `InitResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitResponse {
    keys: Vec<String>,
    keys_base64: Vec<String>,
    recovery_keys: Vec<String>,
    recovery_keys_base64: Vec<String>,
    root_token: String,
}

/// Vault's `machineInit` (the `-format=json` output of `operator init`).
#[derive(Debug, Serialize)]
struct MachineInit {
    unseal_keys_b64: Vec<String>,
    unseal_keys_hex: Vec<String>,
    unseal_shares: i64,
    unseal_threshold: i64,
    recovery_keys_b64: Option<Vec<String>>,
    recovery_keys_hex: Option<Vec<String>>,
    recovery_keys_shares: i64,
    recovery_keys_threshold: i64,
    root_token: String,
}

flag_set! {
    /// Flags of `operator init`.
    pub struct InitFlags [http: HttpFlags, output: OutputFlags] {
        /// Unseal key shares (default 5; none under an auto seal unless given).
        key_shares: Option<i64> = "key-shares",
        /// Shares needed to unseal (default 3).
        key_threshold: Option<i64> = "key-threshold",
        /// PGP keys to encrypt the unseal keys with.
        pgp_keys: CommaList = "pgp-keys",
        /// PGP key to encrypt the root token with.
        root_token_pgp_key: Option<String> = "root-token-pgp-key",
        /// Recovery key shares under an auto seal (default 5).
        recovery_shares: Option<i64> = "recovery-shares",
        /// Recovery shares needed (default 3).
        recovery_threshold: Option<i64> = "recovery-threshold",
        /// PGP keys to encrypt the recovery keys with.
        recovery_pgp_keys: CommaList = "recovery-pgp-keys",
        /// Only report whether the server is initialized.
        status: bool = "status",
    }
}

/// `vault operator init`.
pub async fn init(f: InitFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    if f.status {
        let resp = client
            .send("GET", "sys/init", &[], &Body::Empty)
            .await
            .context("Error checking init status")
            .map_err(|e| CliError::Local(e.to_string()))?;
        let v: Value = resp.json()?.unwrap_or_default();
        if v.get("initialized").and_then(Value::as_bool) == Some(true) {
            format::out("Vault is initialized");
            return Ok(0);
        }
        format::out("Vault is not initialized");
        return Ok(2);
    }
    let seal = seal_status(&client).await.context("Error getting seal status")?;
    // Under an auto seal the unseal-key defaults do not apply, under Shamir the recovery ones.
    let (unseal_default, recovery_default) = if seal.recovery_seal {
        ((0, 0), (5, 3))
    } else {
        ((5, 3), (0, 0))
    };
    let shares = f.key_shares.unwrap_or(unseal_default.0);
    let threshold = f.key_threshold.unwrap_or(unseal_default.1);
    let rshares = f.recovery_shares.unwrap_or(recovery_default.0);
    let rthreshold = f.recovery_threshold.unwrap_or(recovery_default.1);
    let list = |l: &CommaList| {
        if l.items.is_empty() {
            Value::Null
        } else {
            json!(l.items)
        }
    };
    let body = json!({
        "secret_shares": shares,
        "secret_threshold": threshold,
        "pgp_keys": list(&f.pgp_keys),
        "recovery_shares": rshares,
        "recovery_threshold": rthreshold,
        "recovery_pgp_keys": list(&f.recovery_pgp_keys),
        "root_token_pgp_key": f.root_token_pgp_key.unwrap_or_default(),
    });
    let resp = client
        .send("PUT", "sys/init", &[], &Body::Json(body))
        .await
        .context("Error initializing")?;
    let r: InitResponse = resp.json()?.unwrap_or_default();
    if fmt != Format::Table {
        let opt = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let m = MachineInit {
            unseal_keys_b64: r.keys_base64.clone(),
            unseal_keys_hex: r.keys.clone(),
            unseal_shares: shares,
            unseal_threshold: threshold,
            recovery_keys_b64: opt(&r.recovery_keys_base64),
            recovery_keys_hex: opt(&r.recovery_keys),
            recovery_keys_shares: rshares,
            recovery_keys_threshold: rthreshold,
            root_token: r.root_token,
        };
        format::print_structured(&m, fmt)?;
        return Ok(0);
    }
    let pick = |hex: &[String], b64: &[String], i: usize| {
        if b64.len() == hex.len() {
            b64[i].clone()
        } else {
            hex[i].clone()
        }
    };
    for i in 0..r.keys.len() {
        format::out(&format!(
            "Unseal Key {}: {}",
            i + 1,
            pick(&r.keys, &r.keys_base64, i)
        ));
    }
    for i in 0..r.recovery_keys.len() {
        format::out(&format!(
            "Recovery Key {}: {}",
            i + 1,
            pick(&r.recovery_keys, &r.recovery_keys_base64, i)
        ));
    }
    format::out("");
    format::out(&format!("Initial Root Token: {}", r.root_token));
    if !r.keys.is_empty() {
        format::out("");
        format::out(&format::wrap_at_length(&format!(
            "Vault initialized with {shares} key shares and a key threshold of {threshold}. Please \
             securely distribute the key shares printed above. When the Vault is re-sealed, \
             restarted, or stopped, you must supply at least {threshold} of these keys to unseal it \
             before it can start servicing requests."
        )));
        format::out("");
        format::out(&format::wrap_at_length(&format!(
            "Vault does not store the generated root key. Without at least {threshold} keys to \
             reconstruct the root key, Vault will remain permanently sealed!"
        )));
        format::out("");
        format::out(&format::wrap_at_length(
            "It is possible to generate new unseal keys, provided you have a quorum of existing \
             unseal keys shares. See \"vault operator rekey\" for more information.",
        ));
    } else {
        format::out("");
        format::out("Success! Vault is initialized");
    }
    if !r.recovery_keys.is_empty() {
        format::out("");
        format::out(&format::wrap_at_length(&format!(
            "Recovery key initialized with {rshares} key shares and a key threshold of {rthreshold}. \
             Please securely distribute the key shares printed above."
        )));
    }
    Ok(0)
}

flag_set! {
    /// Flags of `operator unseal`.
    pub struct UnsealFlags [http: HttpFlags, output: OutputFlags] {
        /// Discard the key shares given so far.
        reset: bool = "reset",
        /// The share is for a seal migration.
        migrate: bool = "migrate",
    }
}

/// `vault operator unseal [KEY]`.
pub async fn unseal(f: UnsealFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 1)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    if f.reset {
        let resp = client
            .send("PUT", "sys/unseal", &[], &Body::Json(json!({"reset": true})))
            .await
            .context("Error resetting unseal process")?;
        let s = resp.json::<SealStatus>()?.unwrap_or_default();
        return output_seal_status(&client, s, fmt).await;
    }
    let key = match args.first() {
        Some(k) => k.trim().to_string(),
        None => read_secret("Unseal Key (will be hidden): ")?,
    };
    let body = json!({"key": key, "reset": false, "migrate": f.migrate});
    let resp = client
        .send("PUT", "sys/unseal", &[], &Body::Json(body))
        .await
        .context("Error unsealing")?;
    let s = resp.json::<SealStatus>()?.unwrap_or_default();
    output_seal_status(&client, s, fmt).await
}

/// `vault operator seal`.
pub async fn seal(f: HttpOnly, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let client = Client::from_flags(&f.http)?;
    client
        .send("PUT", "sys/seal", &[], &Body::Empty)
        .await
        .context("Error sealing")?;
    format::out("Success! Vault is sealed.");
    Ok(0)
}

/// `vault operator step-down`.
pub async fn step_down(f: HttpOnly, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let client = Client::from_flags(&f.http)?;
    client
        .send("PUT", "sys/step-down", &[], &Body::Empty)
        .await
        .context("Error stepping down")?;
    format::out(&format!("Success! Stepped down: {}", client.addr));
    Ok(0)
}

/// `vault operator validate-config FILE...`: the server's own config loader.
pub async fn validate_config((): (), args: Vec<String>) -> CmdResult {
    if args.is_empty() {
        return Err(CliError::Usage("Not enough arguments (expected 1, got 0)".into()));
    }
    let paths: Vec<std::path::PathBuf> = args.iter().map(std::path::PathBuf::from).collect();
    labnode_config::load(&paths).map_err(|e| CliError::Local(e.to_string()))?;
    format::out("Success! Configuration is valid.");
    Ok(0)
}

/// `vault operator members`.
pub async fn members(f: HttpOutput, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let resp = client
        .send("GET", "sys/ha-status", &[], &Body::Empty)
        .await
        .context("Error listing HA nodes")?;
    let v: Value = resp.json()?.unwrap_or_default();
    let nodes = v
        .get("nodes")
        .or_else(|| v.pointer("/data/nodes"))
        .cloned()
        .unwrap_or(Value::Array(vec![]));
    if fmt != Format::Table {
        format::print_structured(&format::sorted(&json!({ "nodes": nodes })), fmt)?;
        return Ok(0);
    }
    let s = |n: &Value, k: &str| n.get(k).map(format::go_value).unwrap_or_default();
    let rows = nodes
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    let echo = n
                        .get("last_echo")
                        .and_then(Value::as_str)
                        .map(format::go_time)
                        .unwrap_or_default();
                    vec![
                        s(n, "hostname"),
                        s(n, "api_address"),
                        s(n, "cluster_address"),
                        n.get("active_node")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                            .to_string(),
                        s(n, "version"),
                        s(n, "upgrade_version"),
                        echo,
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let header = [
        "Host Name",
        "API Address",
        "Cluster Address",
        "Active Node",
        "Version",
        "Upgrade Version",
        "Last Echo",
    ];
    format::out(&format::table(&header, rows));
    Ok(0)
}

/// Vault's `GenerateRootStatusResponse`, in its field order.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct GenerateStatus {
    nonce: String,
    started: bool,
    progress: i64,
    required: i64,
    complete: bool,
    encoded_token: String,
    encoded_root_token: String,
    pgp_fingerprint: String,
    otp: String,
    otp_length: usize,
}

fn print_generate_status(s: &GenerateStatus, fmt: Format) -> CmdResult {
    if fmt != Format::Table {
        format::print_structured(s, fmt)?;
        return Ok(0);
    }
    let mut rows = vec![
        vec!["Nonce".to_string(), s.nonce.clone()],
        vec!["Started".into(), s.started.to_string()],
        vec!["Progress".into(), format!("{}/{}", s.progress, s.required)],
        vec!["Complete".into(), s.complete.to_string()],
    ];
    if !s.pgp_fingerprint.is_empty() {
        rows.push(vec!["PGP Fingerprint".into(), s.pgp_fingerprint.clone()]);
    }
    if !s.encoded_token.is_empty() {
        rows.push(vec!["Encoded Token".into(), s.encoded_token.clone()]);
    } else if !s.encoded_root_token.is_empty() {
        rows.push(vec!["Encoded Root Token".into(), s.encoded_root_token.clone()]);
    }
    if !s.otp.is_empty() {
        format::err(&format::wrap_at_length(
            "A One-Time-Password has been generated for you and is shown in the OTP field. You will \
             need this value to decode the resulting root token, so keep it safe.",
        ));
        rows.push(vec!["OTP".into(), s.otp.clone()]);
    }
    if s.otp_length != 0 {
        rows.push(vec!["OTP Length".into(), s.otp_length.to_string()]);
    }
    format::out(&format::columns(&rows));
    Ok(0)
}

/// Decodes an encoded root/DR token: base64 (RawStd) XOR the OTP.
pub fn decode_token(encoded: &str, otp: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim().trim_end_matches('='))
        .map_err(|e| format!("error decoding base64'd token: {e}"))?;
    if bytes.len() != otp.len() {
        return Err(format!(
            "length of byte slices is not equivalent: {} != {}",
            bytes.len(),
            otp.len()
        ));
    }
    let out: Vec<u8> = bytes.iter().zip(otp.as_bytes()).map(|(a, b)| a ^ b).collect();
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// A random base62 OTP of the given length, as vault's `-generate-otp` makes.
pub fn generate_otp(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

flag_set! {
    /// Flags of `operator generate-root`.
    pub struct GenerateRootFlags [http: HttpFlags, output: OutputFlags] {
        /// Start an attempt.
        init: bool = "init",
        /// Cancel the attempt in progress.
        cancel: bool = "cancel",
        /// Show the attempt's progress.
        status: bool = "status",
        /// Decode this encoded token with `-otp`.
        decode: Option<String> = "decode",
        /// Print a fresh OTP of the server's length.
        generate_otp: bool = "generate-otp",
        /// The OTP for `-init` or `-decode`.
        otp: Option<String> = "otp",
        /// PGP key to encrypt the token with.
        pgp_key: Option<String> = "pgp-key",
        /// The attempt's nonce when a key is given as an argument.
        nonce: Option<String> = "nonce",
        /// Generate a DR operation token on a DR secondary.
        dr_token: bool = "dr-token",
        /// Generate a recovery token.
        recovery_token: bool = "recovery-token",
    }
}

/// `vault operator generate-root [KEY]`.
pub async fn generate_root(f: GenerateRootFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 1)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let base = if f.dr_token {
        "sys/replication/dr/secondary/generate-operation-token"
    } else if f.recovery_token {
        "sys/generate-recovery-token"
    } else {
        "sys/generate-root"
    };
    let attempt = format!("{base}/attempt");
    let get_status = || async {
        let r = client.send("GET", &attempt, &[], &Body::Empty).await?;
        Ok::<_, CliError>(r.json::<GenerateStatus>()?.unwrap_or_default())
    };
    let otp = f.otp.unwrap_or_default();
    if f.generate_otp {
        let s = get_status()
            .await
            .context("Error getting root generation status")?;
        let otp = generate_otp(s.otp_length);
        if fmt == Format::Table {
            format::print_raw(&otp);
        } else {
            format::print_structured(&json!({ "otp": otp }), fmt)?;
        }
        return Ok(0);
    }
    if let Some(encoded) = f.decode.as_deref().filter(|d| !d.is_empty()) {
        if otp.is_empty() {
            return Err(CliError::Usage("Missing otp: use -otp to supply it".into()));
        }
        get_status()
            .await
            .context("Error getting root generation status")?;
        let token = decode_token(encoded, &otp)
            .map_err(|e| CliError::Local(format!("Error decoding root token: {e}")))?;
        if fmt == Format::Table {
            format::print_raw(&token);
        } else {
            format::print_structured(&json!({ "token": token }), fmt)?;
        }
        return Ok(0);
    }
    if f.cancel {
        client
            .send("DELETE", &attempt, &[], &Body::Empty)
            .await
            .context("Error canceling root token generation")?;
        format::out("Success! Root token generation canceled (if it was started)");
        return Ok(0);
    }
    if f.init {
        let pgp = f.pgp_key.unwrap_or_default();
        if !otp.is_empty() && !pgp.is_empty() {
            return Err(CliError::Usage(
                "Error initializing: cannot specify both -otp and -pgp-key".into(),
            ));
        }
        let resp = client
            .send(
                "PUT",
                &attempt,
                &[],
                &Body::Json(json!({"otp": otp, "pgp_key": pgp})),
            )
            .await
            .context("Error initializing root generation")?;
        return print_generate_status(&resp.json::<GenerateStatus>()?.unwrap_or_default(), fmt);
    }
    if f.status {
        let s = get_status()
            .await
            .context("Error getting root generation status")?;
        return print_generate_status(&s, fmt);
    }
    let s = get_status()
        .await
        .context("Error getting root generation status")?;
    if !s.started {
        format::err(&format::wrap_at_length(
            "No root generation is in progress. Start a root generation by running \"vault operator \
             generate-root -init\".",
        ));
        format::err(&format::wrap_at_length(&format!(
            "If starting root generation using the OTP method and generating your own OTP, the length \
             of the OTP string needs to be {} characters in length.",
            s.otp_length
        )));
        return Ok(1);
    }
    let (key, nonce) = match args.first() {
        Some(k) => (k.trim().to_string(), f.nonce.unwrap_or_default()),
        None => {
            format::out(&format!("Operation nonce: {}", s.nonce));
            (read_secret("Unseal Key (will be hidden): ")?, s.nonce.clone())
        }
    };
    if nonce.is_empty() {
        return Err(CliError::Usage(
            "Missing nonce value: specify it via the -nonce flag".into(),
        ));
    }
    let resp = client
        .send(
            "PUT",
            &format!("{base}/update"),
            &[],
            &Body::Json(json!({"key": key, "nonce": nonce})),
        )
        .await
        .context("Error posting unseal key")?;
    print_generate_status(&resp.json::<GenerateStatus>()?.unwrap_or_default(), fmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otp_decode_matches_bao() {
        assert_eq!(
            decode_token(
                "HkYCLjYmWAYEFyUIHzt4HiEXN14sHhpATxA",
                "mhikfPinTqukhlIrFZRjjDBy7c"
            )
            .unwrap(),
            "s.kEPv1hPfPcwW1lgMe4FZX9xs"
        );
        assert!(decode_token("HkYC", "toolong")
            .unwrap_err()
            .contains("not equivalent"));
    }

    #[test]
    fn otp_generation() {
        let otp = generate_otp(28);
        assert_eq!(otp.len(), 28);
        assert!(otp.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn generate_root_table() {
        let s = GenerateStatus {
            nonce: "0ccf03cd-33b3-96db-577c-d5492c4cf909".into(),
            started: true,
            progress: 3,
            required: 3,
            complete: true,
            encoded_token: "LgQCHzFBBYMRNUYeFgcBHT0KJxN+WwEnIyF1dA".into(),
            ..GenerateStatus::default()
        };
        let rows = vec![
            vec!["Nonce".to_string(), s.nonce.clone()],
            vec!["Started".into(), "true".into()],
            vec!["Progress".into(), "3/3".into()],
            vec!["Complete".into(), "true".into()],
            vec!["Encoded Token".into(), s.encoded_token.clone()],
        ];
        assert_eq!(
            format::columns(&rows),
            "Nonce            0ccf03cd-33b3-96db-577c-d5492c4cf909\nStarted          true\nProgress         3/3\n\
             Complete         true\nEncoded Token    LgQCHzFBBYMRNUYeFgcBHT0KJxN+WwEnIyF1dA"
        );
    }
}
