//! `vault token ...`, `vault login` and `vault print token`.

use serde_json::{json, Map, Value};

use super::client::{self, Body, Client, Secret, SecretAuth};
use super::duration;
use super::flags::{self, flag, Kind, FIELD, HTTP, OUTPUT};
use super::format::{self, Format};
use super::logical::show;
use super::{expect_args, read_secret, CliError, CmdResult, Context};

/// Dispatches `token <sub>`.
pub async fn run(sub: &str, args: &[String]) -> CmdResult {
    match sub {
        "create" => create(args).await,
        "lookup" => lookup(args).await,
        "revoke" => revoke(args).await,
        "renew" => renew(args).await,
        _ => capabilities(args).await,
    }
}

/// Dispatches the top-level `login` and `print token`.
pub async fn run_top(cmd: &str, args: &[String]) -> CmdResult {
    match cmd {
        "login" => login(args).await,
        _ => {
            let p = flags::parse(&[], args)?;
            expect_args(&p.args, 0, 0)?;
            format::out(&client::default_token().unwrap_or_default());
            Ok(0)
        }
    }
}

/// The `auth/token/create` body exactly as vault's `TokenCreateRequest` serializes it.
fn create_body(p: &flags::Parsed) -> Value {
    let mut b = Map::new();
    if let Some(id) = p.str("id").filter(|s| !s.is_empty()) {
        b.insert("id".into(), json!(id));
    }
    let policies = p.list("policy");
    if !policies.is_empty() {
        b.insert("policies".into(), json!(policies));
    }
    let meta: Map<String, Value> = p
        .list("metadata")
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), json!(v))))
        .collect();
    if !meta.is_empty() {
        b.insert("meta".into(), Value::Object(meta));
    }
    b.insert("ttl".into(), json!(duration::format(p.duration("ttl"))));
    b.insert(
        "explicit_max_ttl".into(),
        json!(duration::format(p.duration("explicit-max-ttl"))),
    );
    b.insert("period".into(), json!(duration::format(p.duration("period"))));
    if p.bool("orphan") {
        b.insert("no_parent".into(), json!(true));
    }
    if p.bool("no-default-policy") {
        b.insert("no_default_policy".into(), json!(true));
    }
    b.insert("display_name".into(), json!(p.string("display-name")));
    b.insert("num_uses".into(), json!(p.int("use-limit", 0)));
    let renewable = !p.is_set("renewable") || p.bool("renewable");
    b.insert("renewable".into(), json!(renewable));
    b.insert("type".into(), json!(p.str("type").unwrap_or("service")));
    b.insert("entity_alias".into(), json!(p.string("entity-alias")));
    Value::Object(b)
}

const CREATE_FLAGS: &[flags::Flag] = &[
    flag("id", Kind::Str),
    flag("display-name", Kind::Str),
    flag("ttl", Kind::Duration),
    flag("explicit-max-ttl", Kind::Duration),
    flag("period", Kind::Duration),
    flag("renewable", Kind::Bool),
    flag("orphan", Kind::Bool),
    flag("no-default-policy", Kind::Bool),
    flag("use-limit", Kind::Int),
    flag("role", Kind::Str),
    flag("type", Kind::Str),
    flag("policy", Kind::List),
    flag("metadata", Kind::Multi),
    flag("entity-alias", Kind::Str),
];

async fn create(args: &[String]) -> CmdResult {
    let p = flags::parse(&[HTTP, OUTPUT, FIELD, CREATE_FLAGS], args)?;
    expect_args(&p.args, 0, 0)?;
    let fmt = Format::resolve(p.str("format"))?;
    let client = Client::from_flags(&p)?;
    let path = match p.str("role").filter(|r| !r.is_empty()) {
        Some(role) => format!("auth/token/create/{role}"),
        None => "auth/token/create".to_string(),
    };
    let resp = client
        .send("POST", &path, &[], &Body::Json(create_body(&p)))
        .await
        .context("Error creating token")?;
    let secret = resp.secret()?.unwrap_or_default();
    show(&secret, p.str("field"), fmt)
}

async fn lookup(args: &[String]) -> CmdResult {
    let p = flags::parse(&[HTTP, OUTPUT, FIELD, &[flag("accessor", Kind::Bool)]], args)?;
    expect_args(&p.args, 0, 1)?;
    let fmt = Format::resolve(p.str("format"))?;
    let client = Client::from_flags(&p)?;
    let arg = p.args.first().cloned();
    let resp = match (p.bool("accessor"), arg) {
        (true, None) => return Err(CliError::Usage("Not enough arguments (expected 1, got 0)".into())),
        (true, Some(a)) => {
            client
                .send(
                    "POST",
                    "auth/token/lookup-accessor",
                    &[],
                    &Body::Json(json!({ "accessor": a })),
                )
                .await
        }
        (false, Some(t)) => {
            client
                .send(
                    "POST",
                    "auth/token/lookup",
                    &[],
                    &Body::Json(json!({ "token": t })),
                )
                .await
        }
        (false, None) => {
            client
                .send("GET", "auth/token/lookup-self", &[], &Body::Empty)
                .await
        }
    }
    .context("Error looking up token")?;
    let secret = resp.secret()?.unwrap_or_default();
    show(&secret, p.str("field"), fmt)
}

async fn revoke(args: &[String]) -> CmdResult {
    let own: &[flags::Flag] = &[
        flag("self", Kind::Bool),
        flag("accessor", Kind::Bool),
        flag("mode", Kind::Str),
    ];
    let p = flags::parse(&[HTTP, own], args)?;
    let client = Client::from_flags(&p)?;
    let mode = p.string("mode");
    if p.bool("self") {
        expect_args(&p.args, 0, 0)
            .map_err(|_| CliError::Usage("Tokens cannot be specified with -self".into()))?;
        client
            .send("PUT", "auth/token/revoke-self", &[], &Body::Empty)
            .await
            .context("Error revoking token")?;
        format::out("Success! Revoked token (if it existed)");
        return Ok(0);
    }
    expect_args(&p.args, 1, 1)?;
    let arg = &p.args[0];
    let (path, body) = if p.bool("accessor") {
        ("auth/token/revoke-accessor", json!({ "accessor": arg }))
    } else if mode == "orphan" {
        ("auth/token/revoke-orphan", json!({ "token": arg }))
    } else {
        ("auth/token/revoke", json!({ "token": arg }))
    };
    client
        .send("PUT", path, &[], &Body::Json(body))
        .await
        .context("Error revoking token")?;
    format::out("Success! Revoked token (if it existed)");
    Ok(0)
}

async fn renew(args: &[String]) -> CmdResult {
    let own: &[flags::Flag] = &[flag("increment", Kind::Duration), flag("i", Kind::Duration)];
    let p = flags::parse(&[HTTP, OUTPUT, FIELD, own], args)?;
    expect_args(&p.args, 0, 1)?;
    let fmt = Format::resolve(p.str("format"))?;
    let client = Client::from_flags(&p)?;
    let inc = if p.is_set("i") {
        p.duration("i")
    } else {
        p.duration("increment")
    };
    let secs = i64::try_from(inc / duration::SECOND).unwrap_or(0);
    let resp = match p.args.first() {
        Some(t) => {
            let body = json!({ "token": t, "increment": secs });
            client
                .send("PUT", "auth/token/renew", &[], &Body::Json(body))
                .await
        }
        None => {
            client
                .send(
                    "PUT",
                    "auth/token/renew-self",
                    &[],
                    &Body::Json(json!({ "increment": secs })),
                )
                .await
        }
    }
    .context("Error renewing token")?;
    let secret = resp.secret()?.unwrap_or_default();
    show(&secret, p.str("field"), fmt)
}

async fn capabilities(args: &[String]) -> CmdResult {
    let p = flags::parse(&[HTTP, OUTPUT], args)?;
    expect_args(&p.args, 1, 2)?;
    let fmt = Format::resolve(p.str("format"))?;
    let client = Client::from_flags(&p)?;
    let (path, resp) = if p.args.len() == 2 {
        let (token, path) = (&p.args[0], &p.args[1]);
        let body = json!({ "token": token, "path": path });
        (
            path.clone(),
            client
                .send("POST", "sys/capabilities", &[], &Body::Json(body))
                .await,
        )
    } else {
        let path = &p.args[0];
        let body = json!({ "path": path });
        (
            path.clone(),
            client
                .send("POST", "sys/capabilities-self", &[], &Body::Json(body))
                .await,
        )
    };
    let resp = resp.context("Error listing capabilities")?;
    let v: Value = resp.json()?.unwrap_or_default();
    let data = v.get("data").filter(|d| d.is_object()).unwrap_or(&v);
    let caps = data
        .get(&path)
        .or_else(|| data.get("capabilities"))
        .and_then(Value::as_array)
        .cloned();
    let Some(caps) = caps else {
        return Err(CliError::Remote("No capabilities found".into()));
    };
    let mut caps: Vec<String> = caps.iter().map(format::go_value).collect();
    caps.sort();
    if fmt != Format::Table {
        format::print_structured(&caps, fmt)?;
    } else {
        format::out(&caps.join(", "));
    }
    Ok(0)
}

/// The auth block `vault login` shows for a token, built from `lookup-self` data.
fn auth_from_lookup(token: &str, data: &Map<String, Value>) -> Secret {
    let strings = |k: &str| -> Vec<String> {
        data.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let metadata = data.get("meta").and_then(Value::as_object).map(|m| {
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()),
                )
            })
            .collect()
    });
    let policies = strings("policies");
    let identity = strings("identity_policies");
    let mut all = policies.clone();
    all.extend(identity.iter().cloned());
    Secret {
        auth: Some(SecretAuth {
            client_token: data
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or(token)
                .to_string(),
            accessor: data
                .get("accessor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            policies: Some(all),
            token_policies: Some(policies),
            identity_policies: Some(identity),
            metadata,
            orphan: data.get("orphan").and_then(Value::as_bool).unwrap_or(false),
            entity_id: data
                .get("entity_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            lease_duration: data.get("ttl").and_then(Value::as_i64).unwrap_or(0),
            renewable: data.get("renewable").and_then(Value::as_bool).unwrap_or(false),
            mfa_requirement: None,
        }),
        ..Secret::default()
    }
}

async fn login(args: &[String]) -> CmdResult {
    let own: &[flags::Flag] = &[
        flag("method", Kind::Str),
        flag("path", Kind::Str),
        flag("no-store", Kind::Bool),
        flag("no-print", Kind::Bool),
        flag("token-only", Kind::Bool),
    ];
    let p = flags::parse(&[HTTP, OUTPUT, FIELD, own], args)?;
    let method = p.str("method").unwrap_or("token");
    if method != "token" {
        return Err(CliError::Usage(format!("Unknown auth method: {method}. Use \"vault auth list\" to see the complete list of auth methods. Additionally, some auth methods are only available via the HTTP API.")));
    }
    expect_args(&p.args, 0, 1)?;
    let fmt = Format::resolve(p.str("format"))?;
    let token = match p.args.first().map(|t| t.trim().to_string()) {
        Some(t) if t == "-" => read_secret("")?,
        Some(t) => t,
        None => read_secret("Token (will be hidden): ")?,
    };
    let mut client = Client::from_flags(&p)?;
    client.token = Some(token.clone());
    let resp = client
        .send("GET", "auth/token/lookup-self", &[], &Body::Empty)
        .await
        .context("Error authenticating: error looking up token")?;
    let looked = resp.secret()?.unwrap_or_default();
    let secret = auth_from_lookup(&token, &looked.data.unwrap_or_default());
    if !p.bool("no-store") {
        if let Some(path) = client::token_file() {
            std::fs::write(&path, &token)
                .map_err(|e| CliError::Local(format!("Error storing token: {}: {e}", path.display())))?;
        }
    }
    if std::env::var("VAULT_TOKEN").is_ok_and(|t| !t.is_empty()) {
        format::err(&format!(
            "{}\n",
            format::wrap_at_length(
                "WARNING! The VAULT_TOKEN environment variable is set! The value of this variable will \
                 take precedence; if this is unwanted please unset VAULT_TOKEN or update its value \
                 accordingly."
            )
        ));
    }
    if p.bool("no-print") {
        return Ok(0);
    }
    if p.bool("token-only") {
        format::print_raw(&token);
        return Ok(0);
    }
    if let Some(f) = p.str("field").filter(|f| !f.is_empty()) {
        return format::print_secret_field(&secret, f, fmt);
    }
    if fmt == Format::Table {
        format::out(&format!(
            "{}\n",
            format::wrap_at_length(
                "Success! You are now authenticated. The token information displayed below is already \
                 stored in the token helper. You do NOT need to run \"vault login\" again. Future Vault \
                 requests will automatically use this token."
            )
        ));
    }
    format::output_secret(&secret, fmt)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> flags::Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        flags::parse(&[HTTP, OUTPUT, FIELD, CREATE_FLAGS], &args).unwrap()
    }

    #[test]
    fn create_body_matches_vault() {
        let b = create_body(&parsed(&["-policy=a", "-ttl=1h"]));
        assert_eq!(
            b,
            json!({"policies":["a"],"ttl":"1h0m0s","explicit_max_ttl":"0s","period":"0s","display_name":"",
                   "num_uses":0,"renewable":true,"type":"service","entity_alias":""})
        );
        let b = create_body(&parsed(&[
            "-orphan",
            "-metadata=x=y",
            "-renewable=false",
            "-use-limit=2",
        ]));
        assert_eq!(b["no_parent"], json!(true));
        assert_eq!(b["meta"], json!({"x": "y"}));
        assert_eq!(b["renewable"], json!(false));
        assert_eq!(b["num_uses"], json!(2));
    }

    #[test]
    fn login_auth_block() {
        let data =
            json!({"id": "root", "accessor": "acc", "policies": ["root"], "ttl": 0, "renewable": false});
        let s = auth_from_lookup("root", data.as_object().unwrap());
        let rows = format::secret_rows(&s);
        assert_eq!(rows[0], ("token".to_string(), "root".to_string()));
        assert_eq!(rows[2], ("token_duration".to_string(), "∞".to_string()));
        assert_eq!(rows[4], ("token_policies".to_string(), "[\"root\"]".to_string()));
        assert_eq!(rows[5], ("identity_policies".to_string(), "[]".to_string()));
    }
}
