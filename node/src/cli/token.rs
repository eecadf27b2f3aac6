//! `vault token ...`, `vault login` and `vault print token`.

use labnode_duration::GoDuration;
use serde_json::{json, Map, Value};

use super::client::{self, Body, Client, Secret, SecretAuth};
use super::flags::{flag_set, CommaList, FieldFlag, HttpFlags, HttpOutput, OutputFlags};
use super::format::{self, Format};
use super::logical::show;
use super::{expect_args, read_secret, CliError, CmdResult, Context};

/// `vault print token`.
pub async fn print_token((): (), args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    format::out(&client::default_token().unwrap_or_default());
    Ok(0)
}

flag_set! {
    /// Flags of `token create`.
    pub struct CreateFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag] {
        /// The token's id (root only).
        id: Option<String> = "id",
        /// Display name.
        display_name: Option<String> = "display-name",
        /// Initial TTL.
        ttl: Option<GoDuration> = "ttl",
        /// Hard maximum TTL.
        explicit_max_ttl: Option<GoDuration> = "explicit-max-ttl",
        /// Renewal period of a periodic token.
        period: Option<GoDuration> = "period",
        /// Whether it can be renewed (default true).
        renewable: Option<bool> = "renewable",
        /// No parent.
        orphan: bool = "orphan",
        /// Leave out the `default` policy.
        no_default_policy: bool = "no-default-policy",
        /// Number of uses (0: unlimited).
        use_limit: Option<i64> = "use-limit",
        /// Create against this token role.
        role: Option<String> = "role",
        /// `service` or `batch`.
        token_type: Option<String> = "type",
        /// Policies to attach.
        policy: CommaList = "policy",
        /// `k=v` metadata.
        metadata: Vec<String> = "metadata",
        /// Entity alias to bind.
        entity_alias: Option<String> = "entity-alias",
    }
}

/// The `auth/token/create` body exactly as vault's `TokenCreateRequest` serializes it.
fn create_body(f: &CreateFlags) -> Value {
    let mut b = Map::new();
    if let Some(id) = f.id.as_deref().filter(|s| !s.is_empty()) {
        b.insert("id".into(), json!(id));
    }
    if !f.policy.items.is_empty() {
        b.insert("policies".into(), json!(f.policy.items));
    }
    let meta: Map<String, Value> = f
        .metadata
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), json!(v))))
        .collect();
    if !meta.is_empty() {
        b.insert("meta".into(), Value::Object(meta));
    }
    let go = |d: Option<GoDuration>| json!(d.unwrap_or_default().to_string());
    b.insert("ttl".into(), go(f.ttl));
    b.insert("explicit_max_ttl".into(), go(f.explicit_max_ttl));
    b.insert("period".into(), go(f.period));
    if f.orphan {
        b.insert("no_parent".into(), json!(true));
    }
    if f.no_default_policy {
        b.insert("no_default_policy".into(), json!(true));
    }
    b.insert(
        "display_name".into(),
        json!(f.display_name.as_deref().unwrap_or_default()),
    );
    b.insert("num_uses".into(), json!(f.use_limit.unwrap_or(0)));
    b.insert("renewable".into(), json!(f.renewable.unwrap_or(true)));
    b.insert("type".into(), json!(f.token_type.as_deref().unwrap_or("service")));
    b.insert(
        "entity_alias".into(),
        json!(f.entity_alias.as_deref().unwrap_or_default()),
    );
    Value::Object(b)
}

/// `vault token create`.
pub async fn create(f: CreateFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 0)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let path = match f.role.as_deref().filter(|r| !r.is_empty()) {
        Some(role) => format!("auth/token/create/{role}"),
        None => "auth/token/create".to_string(),
    };
    let resp = client
        .send("POST", &path, &[], &Body::Json(create_body(&f)))
        .await
        .context("Error creating token")?;
    let secret = resp.secret()?.unwrap_or_default();
    show(&secret, f.field.field.as_deref(), fmt)
}

flag_set! {
    /// Flags of `token lookup`.
    pub struct LookupFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag] {
        /// The argument is an accessor.
        accessor: bool = "accessor",
    }
}

/// `vault token lookup [TOKEN]`.
pub async fn lookup(f: LookupFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 1)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let arg = args.first().cloned();
    let resp = match (f.accessor, arg) {
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
    show(&secret, f.field.field.as_deref(), fmt)
}

flag_set! {
    /// Flags of `token revoke`.
    pub struct RevokeFlags [http: HttpFlags] {
        /// Revoke the token in use.
        revoke_self: bool = "self",
        /// The argument is an accessor.
        accessor: bool = "accessor",
        /// `orphan` keeps the children.
        mode: Option<String> = "mode",
    }
}

/// `vault token revoke [TOKEN]`.
pub async fn revoke(f: RevokeFlags, args: Vec<String>) -> CmdResult {
    let client = Client::from_flags(&f.http)?;
    let mode = f.mode.unwrap_or_default();
    if f.revoke_self {
        expect_args(&args, 0, 0)
            .map_err(|_| CliError::Usage("Tokens cannot be specified with -self".into()))?;
        client
            .send("PUT", "auth/token/revoke-self", &[], &Body::Empty)
            .await
            .context("Error revoking token")?;
        format::out("Success! Revoked token (if it existed)");
        return Ok(0);
    }
    expect_args(&args, 1, 1)?;
    let arg = &args[0];
    let (path, body) = if f.accessor {
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

flag_set! {
    /// Flags of `token renew`.
    pub struct RenewFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag] {
        /// The TTL asked for.
        increment: Option<GoDuration> = "increment",
        /// Short for `-increment`, and wins over it.
        i: Option<GoDuration> = "i",
    }
}

/// `vault token renew [TOKEN]`.
pub async fn renew(f: RenewFlags, args: Vec<String>) -> CmdResult {
    expect_args(&args, 0, 1)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let secs = f.i.or(f.increment).unwrap_or_default().whole_secs();
    let resp = match args.first() {
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
    show(&secret, f.field.field.as_deref(), fmt)
}

/// `vault token capabilities [TOKEN] PATH`.
pub async fn capabilities(f: HttpOutput, args: Vec<String>) -> CmdResult {
    expect_args(&args, 1, 2)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let client = Client::from_flags(&f.http)?;
    let (path, resp) = if args.len() == 2 {
        let (token, path) = (&args[0], &args[1]);
        let body = json!({ "token": token, "path": path });
        (
            path.clone(),
            client
                .send("POST", "sys/capabilities", &[], &Body::Json(body))
                .await,
        )
    } else {
        let path = &args[0];
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

flag_set! {
    /// Flags of `login` (only the token method exists here).
    pub struct LoginFlags [http: HttpFlags, output: OutputFlags, field: FieldFlag]
    ignore { "path": Str }
    {
        /// The auth method; only `token`.
        method: Option<String> = "method",
        /// Do not write `~/.vault-token`.
        no_store: bool = "no-store",
        /// Print nothing.
        no_print: bool = "no-print",
        /// Print only the token.
        token_only: bool = "token-only",
    }
}

/// `vault login [TOKEN]`.
pub async fn login(f: LoginFlags, args: Vec<String>) -> CmdResult {
    let method = f.method.as_deref().unwrap_or("token");
    if method != "token" {
        return Err(CliError::Usage(format!("Unknown auth method: {method}. Use \"vault auth list\" to see the complete list of auth methods. Additionally, some auth methods are only available via the HTTP API.")));
    }
    expect_args(&args, 0, 1)?;
    let fmt = Format::resolve(f.output.format.as_deref())?;
    let token = match args.first().map(|t| t.trim().to_string()) {
        Some(t) if t == "-" => read_secret("")?,
        Some(t) => t,
        None => read_secret("Token (will be hidden): ")?,
    };
    let mut client = Client::from_flags(&f.http)?;
    client.token = Some(token.clone());
    let resp = client
        .send("GET", "auth/token/lookup-self", &[], &Body::Empty)
        .await
        .context("Error authenticating: error looking up token")?;
    let looked = resp.secret()?.unwrap_or_default();
    let secret = auth_from_lookup(&token, &looked.data.unwrap_or_default());
    if !f.no_store {
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
    if f.no_print {
        return Ok(0);
    }
    if f.token_only {
        format::print_raw(&token);
        return Ok(0);
    }
    if let Some(field) = f.field.field.as_deref().filter(|f| !f.is_empty()) {
        return format::print_secret_field(&secret, field, fmt);
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
    use super::super::flags::{self, FlagSet};
    use super::*;

    fn parsed(args: &[&str]) -> CreateFlags {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        CreateFlags::resolve(&flags::parse(&CreateFlags::flags(), &args).unwrap())
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
