//! `vault operator raft ...`: peers, join, remove-peer, snapshots and autopilot state.

use serde_json::{json, Value};

use super::client::{Body, Client};
use super::flags::{flag_set, HttpFlags, HttpOnly, OutputFlags};
use super::format::{self, Format};
use super::{expect_args, CliError, CmdResult, Context};

flag_set! {
    /// Commands that print and may run on a DR secondary with a DR operation token.
    pub struct DrTokenFlags [http: HttpFlags, output: OutputFlags] {
        /// A DR operation token, for a DR secondary.
        dr_token: Option<String> = "dr-token",
    }
}

/// The `Node | Address | State | Voter` rows of a raft configuration response.
fn peer_rows(data: &Value) -> Vec<Vec<String>> {
    let servers = data
        .pointer("/config/servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    servers
        .iter()
        .map(|s| {
            let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let leader = s.get("leader").and_then(Value::as_bool).unwrap_or(false);
            let voter = s.get("voter").and_then(Value::as_bool).unwrap_or(false);
            vec![
                text("node_id"),
                text("address"),
                if leader { "leader" } else { "follower" }.to_string(),
                voter.to_string(),
            ]
        })
        .collect()
}

/// `vault operator raft list-peers`.
pub async fn list_peers(f: DrTokenFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let path = "sys/storage/raft/configuration";
    let secret = match f.dr_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => {
            let body = Body::Json(json!({ "dr_operation_token": t }));
            client
                .send("PUT", path, &[], &body)
                .await
                .and_then(|r| r.secret())
        }
        None => client.logical_read("GET", path, &[]).await,
    }
    .context("Error reading the raft cluster configuration")?;
    let Some(secret) = secret else {
        return Err(CliError::Remote("No raft cluster configuration found".into()));
    };
    if fmt != Format::Table {
        format::output_secret(&secret, fmt)?;
        return Ok(0);
    }
    let data = Value::Object(secret.data.unwrap_or_default());
    format::out(&format::table(
        &["Node", "Address", "State", "Voter"],
        peer_rows(&data),
    ));
    Ok(0)
}

/// Reads `@file` values like vault's `parseFlagFile`.
fn flag_file(raw: &str) -> Result<String, String> {
    match raw.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("error reading file: open {path}: {e}"))
        }
        None => Ok(raw.to_string()),
    }
}

flag_set! {
    /// Flags of `operator raft join`.
    pub struct JoinFlags [http: HttpFlags, output: OutputFlags] {
        /// A go-discover string instead of a leader address.
        auto_join: Option<String> = "auto-join",
        /// Scheme of the discovered addresses.
        auto_join_scheme: Option<String> = "auto-join-scheme",
        /// Port of the discovered addresses.
        auto_join_port: Option<i64> = "auto-join-port",
        /// The leader's CA certificate (or `@file`).
        leader_ca_cert: Option<String> = "leader-ca-cert",
        /// A client certificate for the leader (or `@file`).
        leader_client_cert: Option<String> = "leader-client-cert",
        /// Its key (or `@file`).
        leader_client_key: Option<String> = "leader-client-key",
        /// Keep retrying until joined.
        retry: bool = "retry",
        /// Join as a permanent non-voter.
        non_voter: bool = "non-voter",
    }
}

/// `vault operator raft join [LEADER_API_ADDR]`.
pub async fn join(f: JoinFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 1)?;
    let leader = args.first().cloned().unwrap_or_default();
    let auto_join = f.auto_join.unwrap_or_default();
    if leader.is_empty() && auto_join.is_empty() {
        return Err(CliError::Usage(
            "Please provide exactly one of leader-api-addr or auto-join".into(),
        ));
    }
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let file = |value: &Option<String>, what: &str| {
        flag_file(value.as_deref().unwrap_or_default())
            .map_err(|e| CliError::Local(format!("Failed to parse {what}: {e}")))
    };
    let body = json!({
        "auto_join": auto_join,
        "auto_join_scheme": f.auto_join_scheme.as_deref().unwrap_or_default(),
        "auto_join_port": f.auto_join_port.unwrap_or(0),
        "leader_api_addr": leader,
        "leader_ca_cert": file(&f.leader_ca_cert, "leader CA certificate")?,
        "leader_client_cert": file(&f.leader_client_cert, "leader client certificate")?,
        "leader_client_key": file(&f.leader_client_key, "leader client key")?,
        "retry": f.retry,
        "non_voter": f.non_voter,
    });
    let client = Client::from_flags(&f.http)?;
    let resp = client
        .send("POST", "sys/storage/raft/join", &[], &Body::Json(body))
        .await
        .context("Error joining the node to the Raft cluster")?;
    let v: Value = resp.json()?.unwrap_or_default();
    if fmt != Format::Table {
        format::print_structured(
            &json!({ "joined": v.get("joined").cloned().unwrap_or(Value::Bool(false)) }),
            fmt,
        )?;
        return Ok(0);
    }
    let joined = v.get("joined").and_then(Value::as_bool).unwrap_or(false);
    format::out(&format::kv_table(vec![("Joined".into(), joined.to_string())]));
    Ok(0)
}

flag_set! {
    /// Flags of `operator raft remove-peer`.
    pub struct RemovePeerFlags [http: HttpFlags] {
        /// A DR operation token, for a DR secondary.
        dr_token: Option<String> = "dr-token",
    }
}

/// `vault operator raft remove-peer SERVER_ID`.
pub async fn remove_peer(f: RemovePeerFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let client = Client::from_flags(&f.http)?;
    let mut body = json!({ "server_id": args[0] });
    if let Some(t) = f.dr_token.as_deref().filter(|t| !t.is_empty()) {
        body["dr_operation_token"] = json!(t);
    }
    client
        .send("PUT", "sys/storage/raft/remove-peer", &[], &Body::Json(body))
        .await
        .context("Error removing the peer from raft cluster")?;
    format::out("Peer removed successfully!");
    Ok(0)
}

/// `vault operator raft snapshot save FILE`.
pub async fn snapshot_save(f: HttpOnly, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let client = Client::from_flags(&f.http)?;
    let resp = client
        .send("GET", "sys/storage/raft/snapshot", &[], &Body::Empty)
        .await
        .context("Error taking the snapshot")?;
    std::fs::write(&args[0], &resp.body)
        .map_err(|e| CliError::Local(format!("Error opening output file: {e}")))?;
    Ok(0)
}

flag_set! {
    /// Flags of `operator raft snapshot restore`.
    pub struct RestoreFlags [http: HttpFlags] {
        /// Install a snapshot of another cluster.
        force: bool = "force",
    }
}

/// `vault operator raft snapshot restore FILE`.
pub async fn snapshot_restore(f: RestoreFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 1)?;
    let snap =
        std::fs::read(&args[0]).map_err(|e| CliError::Local(format!("Error opening snapshot file: {e}")))?;
    let client = Client::from_flags(&f.http)?;
    let path = if f.force {
        "sys/storage/raft/snapshot-force"
    } else {
        "sys/storage/raft/snapshot"
    };
    client
        .send("POST", path, &[], &Body::Raw(snap))
        .await
        .context("Error installing the snapshot")?;
    Ok(0)
}

/// Vault's `formatServer` for one autopilot server.
fn format_server(s: &Value, indent: &str) -> String {
    let t = |k: &str| s.get(k).map(format::go_value).unwrap_or_default();
    let mut out = format!("{indent}{}\n", t("id"));
    for (label, key) in [
        ("Name:              ", "name"),
        ("Address:           ", "address"),
        ("Status:            ", "status"),
        ("Node Status:       ", "node_status"),
        ("Healthy:           ", "healthy"),
        ("Last Contact:      ", "last_contact"),
        ("Last Term:         ", "last_term"),
        ("Last Index:        ", "last_index"),
        ("Version:           ", "version"),
    ] {
        out.push_str(&format!("{indent}   {label}{}\n", t(key)));
    }
    for (label, key) in [
        ("Upgrade Version:   ", "upgrade_version"),
        ("Redundancy Zone:   ", "redundancy_zone"),
        ("Node Type:         ", "node_type"),
    ] {
        let v = s.get(key).and_then(Value::as_str).unwrap_or_default();
        if !v.is_empty() {
            out.push_str(&format!("{indent}   {label}{v}\n"));
        }
    }
    out
}

/// Vault's `OutputAutopilotState` text.
fn autopilot_text(d: &Value) -> String {
    let t = |k: &str| d.get(k).map(format::go_value).unwrap_or_default();
    let list = |k: &str| -> Vec<String> {
        d.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(format::go_value).collect())
            .unwrap_or_default()
    };
    let mut b = String::new();
    b.push_str(&format!("Healthy:                         {}\n", t("healthy")));
    b.push_str(&format!(
        "Failure Tolerance:               {}\n",
        t("failure_tolerance")
    ));
    b.push_str(&format!("Leader:                          {}\n", t("leader")));
    b.push_str("Voters:\n");
    for v in list("voters") {
        b.push_str(&format!("   {v}\n"));
    }
    let non_voters = list("non_voters");
    if !non_voters.is_empty() {
        b.push_str("Non Voters:\n");
        for v in non_voters {
            b.push_str(&format!("   {v}\n"));
        }
    }
    if d.get("optimistic_failure_tolerance")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0
    {
        b.push_str(&format!(
            "Optimistic Failure Tolerance:    {}\n",
            t("optimistic_failure_tolerance")
        ));
    }
    b.push_str("Servers:\n");
    if let Some(servers) = d.get("servers").and_then(Value::as_object) {
        let mut ids: Vec<&String> = servers.keys().collect();
        ids.sort();
        for id in ids {
            b.push_str(&format_server(&servers[id.as_str()], "   "));
        }
    }
    b
}

/// `vault operator raft autopilot state`.
pub async fn autopilot_state(f: DrTokenFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let mut client = Client::from_flags(&f.http)?;
    if let Some(t) = f.dr_token.as_deref().filter(|t| !t.is_empty()) {
        client.token = Some(t.to_string());
    }
    let resp = client
        .send("GET", "sys/storage/raft/autopilot/state", &[], &Body::Empty)
        .await
        .context("Error checking autopilot state")?;
    let Some(secret) = resp.secret()? else {
        return Err(CliError::Remote("No autopilot state found".into()));
    };
    let data = Value::Object(secret.data.unwrap_or_default());
    if fmt != Format::Table {
        format::print_structured(&format::sorted(&data), fmt)?;
        return Ok(0);
    }
    format::out(&autopilot_text(&data));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_table_like_the_course() {
        let data = json!({"config": {"servers": [
            {"node_id": "node-a", "address": "10.0.101.22:8201", "leader": true, "voter": true},
            {"node_id": "node-b", "address": "10.0.101.23:8201", "leader": false, "voter": true}
        ]}});
        assert_eq!(
            format::table(&["Node", "Address", "State", "Voter"], peer_rows(&data)),
            "Node      Address             State       Voter\n----      -------             -----       -----\n\
             node-a    10.0.101.22:8201    leader      true\nnode-b    10.0.101.23:8201    follower    true"
        );
    }

    #[test]
    fn autopilot_layout() {
        let d = json!({"healthy": true, "failure_tolerance": 0, "leader": "node1", "voters": ["node1"],
            "servers": {"node1": {"id": "node1", "name": "node1", "address": "127.0.0.1:18311",
            "status": "leader", "node_status": "alive", "healthy": true, "last_contact": "0s",
            "last_term": 3, "last_index": 29, "version": "2.7.2", "node_type": "voter"}}});
        let text = autopilot_text(&d);
        assert!(
            text.starts_with("Healthy:                         true\nFailure Tolerance:               0\n")
        );
        assert!(text.contains("Voters:\n   node1\nServers:\n   node1\n      Name:              node1\n"));
        assert!(text.ends_with("      Node Type:         voter\n"));
    }
}
