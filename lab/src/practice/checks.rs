//! Grading: each check asks the running lab over HTTP and answers pass or fail with what
//! it saw. A check that cannot reach the lab fails; it never aborts the others.

use serde_json::{json, Value};

use super::exercise::{Check, CheckKind, DrOperationToken, Read, RoleToken, Voters};
use super::http::Vault;
use super::template::{scalar, Context};
use super::PracticeError;
use crate::api::NodeClient;
use crate::state::Target;

/// The outcome of one check.
pub struct Outcome {
    /// The check's description.
    pub describe: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// Runs every check.
pub fn grade(ctx: &Context<'_>, checks: &[Check]) -> Vec<Outcome> {
    checks
        .iter()
        .map(|check| {
            let (passed, detail) = match check
                .kind()
                .map_err(PracticeError::Check)
                .and_then(|k| run(ctx, k))
            {
                Ok(result) => result,
                Err(e) => (false, e.to_string()),
            };
            Outcome {
                describe: check.describe.clone(),
                passed,
                detail,
            }
        })
        .collect()
}

fn run(ctx: &Context<'_>, kind: CheckKind<'_>) -> Result<(bool, String), PracticeError> {
    match kind {
        CheckKind::Voters(check) => voters(ctx, check),
        CheckKind::Unsealed(check) => {
            let mut sealed = Vec::new();
            for name in &check.nodes {
                let Target::Node(c, n) = ctx.state.resolve(Some(name))? else {
                    return Err(PracticeError::Check(format!("{name} is a cluster, not a node")));
                };
                let health =
                    NodeClient::new(&ctx.state.clusters[c].nodes[n].api_addr).and_then(|c| c.health());
                match health {
                    Ok(h) if h.is_unsealed_member() => {}
                    Ok(h) => sealed.push(format!("{name} (health {})", h.status)),
                    Err(_) => sealed.push(format!("{name} (down)")),
                }
            }
            Ok(if sealed.is_empty() {
                (true, "all unsealed".to_owned())
            } else {
                (false, format!("not serving: {}", sealed.join(", ")))
            })
        }
        CheckKind::Read(check) => read(ctx, check),
        CheckKind::RoleToken(check) => role_token(ctx, check),
        CheckKind::DrOperationToken(check) => dr_operation_token(ctx, check),
        CheckKind::File(check) => {
            let path = ctx.render(&check.path)?;
            Ok(match std::fs::metadata(&path) {
                Ok(meta) if meta.len() > 0 => (true, format!("{path}: {} bytes", meta.len())),
                Ok(_) => (false, format!("{path} is empty")),
                Err(e) => (false, format!("{path}: {e}")),
            })
        }
    }
}

fn voters(ctx: &Context<'_>, check: &Voters) -> Result<(bool, String), PracticeError> {
    let config = Vault::active(ctx, check.cluster.as_deref())?.get("sys/storage/raft/configuration")?;
    let servers = config
        .pointer("/data/config/servers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut seen: Vec<String> = Vec::new();
    let mut voters: Vec<&str> = Vec::new();
    for server in &servers {
        let id = server["node_id"].as_str().unwrap_or("?");
        let voter = server["voter"] == true;
        if voter {
            voters.push(id);
        }
        let leader = if server["leader"] == true { " (leader)" } else { "" };
        let role = if voter { "" } else { " (non-voter)" };
        seen.push(format!("{id}{leader}{role}"));
    }
    let mut expected: Vec<&str> = check.nodes.iter().map(String::as_str).collect();
    expected.sort_unstable();
    voters.sort_unstable();
    let passed = voters == expected && servers.len() == expected.len();
    Ok((passed, format!("peers: {}", seen.join(", "))))
}

fn read(ctx: &Context<'_>, check: &Read) -> Result<(bool, String), PracticeError> {
    let mut vault = Vault::active(ctx, check.at.as_deref())?;
    if let Some(token) = &check.token {
        vault = vault.with_token(&ctx.render(token)?);
    }
    let response = vault.get(&check.path)?;
    let Some(value) = response.pointer(&check.pointer) else {
        return Ok((false, format!("{} has no {}", check.path, check.pointer)));
    };
    let shown = format!("{}{} = {value}", check.path, check.pointer);
    if let Some(expected) = &check.equals {
        let expected = ctx.render(expected)?;
        if scalar(value) != expected {
            return Ok((false, format!("{shown}, expected {expected}")));
        }
    }
    if let Some(item) = &check.contains {
        let item = ctx.render(item)?;
        let found = value
            .as_array()
            .is_some_and(|a| a.iter().any(|v| scalar(v) == item));
        if !found {
            return Ok((false, format!("{shown}, expected it to hold {item}")));
        }
    }
    if let Some([low, high]) = &check.between {
        let bound = |text: &String| -> Result<i64, PracticeError> {
            let rendered = ctx.render(text)?;
            rendered
                .parse()
                .map_err(|_| PracticeError::Check(format!("bound {rendered} is not an integer")))
        };
        let (low, high) = (bound(low)?, bound(high)?);
        let number = scalar(value).parse::<i64>().ok();
        if !number.is_some_and(|v| (low..=high).contains(&v)) {
            return Ok((false, format!("{shown}, expected an integer in {low}..={high}")));
        }
    }
    Ok((true, shown))
}

fn role_token(ctx: &Context<'_>, check: &RoleToken) -> Result<(bool, String), PracticeError> {
    let root = Vault::active(ctx, check.at.as_deref())?;
    let created = root.put(&format!("auth/token/create/{}", check.role), json!({}))?;
    let Some(token) = created.pointer("/auth/client_token").and_then(Value::as_str) else {
        return Ok((
            false,
            format!("auth/token/create/{} returned no token", check.role),
        ));
    };
    let own = root.with_token(token);
    let lookup = own.get("auth/token/lookup-self")?;
    let token_type = lookup.pointer("/data/type").map(scalar).unwrap_or_default();
    let caps = own.put("sys/capabilities-self", json!({ "paths": [check.path] }))?;
    let granted: Vec<String> = caps
        .pointer(&format!(
            "/data/{}",
            check.path.replace('~', "~0").replace('/', "~1")
        ))
        .or_else(|| caps.pointer("/data/capabilities"))
        .and_then(Value::as_array)
        .map(|a| a.iter().map(scalar).collect())
        .unwrap_or_default();
    let detail = format!(
        "token from role {}: type {token_type}, capabilities on {}: [{}]",
        check.role,
        check.path,
        granted.join(", ")
    );
    let passed = token_type == check.token_type && check.capabilities.iter().all(|c| granted.contains(c));
    Ok((passed, detail))
}

fn dr_operation_token(ctx: &Context<'_>, check: &DrOperationToken) -> Result<(bool, String), PracticeError> {
    let file = ctx.render(&check.file)?;
    let token = match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
        Ok(_) => return Ok((false, format!("{file} is empty"))),
        Err(e) => return Ok((false, format!("{file}: {e}"))),
    };
    let secondary = Vault::active(ctx, Some(&check.at))?.with_token("");
    Ok(
        match secondary.put(
            "sys/storage/raft/configuration",
            json!({ "dr_operation_token": token }),
        ) {
            Ok(_) => (true, format!("{} accepts the token in {file}", check.at)),
            Err(e) => (false, format!("{} rejects the token in {file}: {e}", check.at)),
        },
    )
}
