//! Walks one HCL file (through hcl-edit, which keeps byte spans) into a [`Fragment`]:
//! the settings that file contributes, each checked against the keys labnode knows.

use std::ops::Range;
use std::path::PathBuf;

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body, Structure};
use hcl_edit::template::Element;
use hcl_edit::Span;

use super::values::{self, suggest};
use super::{ConfigError, Location};
use crate::model::{AwsKmsConfig, ListenerConfig, RaftConfig, RetryJoin, SealConfig};

/// Top-level keys, for suggestions.
const TOP_KEYS: &[&str] = &[
    "api_addr",
    "cluster_addr",
    "cluster_name",
    "ui",
    "log_level",
    "log_format",
    "disable_mlock",
    "default_lease_ttl",
    "max_lease_ttl",
    "pid_file",
    "disable_cache",
    "plugin_directory",
];
/// Top-level blocks, for suggestions.
const TOP_BLOCKS: &[&str] = &["storage", "listener", "seal", "telemetry"];
/// `storage "raft"` keys, for suggestions.
const RAFT_KEYS: &[&str] = &[
    "path",
    "node_id",
    "performance_multiplier",
    "snapshot_threshold",
    "trailing_logs",
    "max_entry_size",
    "retry_join_as_non_voter",
    "autopilot_reconcile_interval",
    "autopilot_update_interval",
];
/// `retry_join` keys, for suggestions.
const RETRY_JOIN_KEYS: &[&str] = &[
    "leader_api_addr",
    "auto_join",
    "auto_join_scheme",
    "auto_join_port",
    "leader_tls_servername",
    "leader_ca_cert_file",
    "leader_ca_cert",
    "leader_client_cert_file",
    "leader_client_cert",
    "leader_client_key_file",
    "leader_client_key",
];
/// `listener "tcp"` keys, including those accepted for compatibility and ignored.
const LISTENER_KEYS: &[&str] = &[
    "address",
    "cluster_address",
    "tls_disable",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "tls_min_version",
    "tls_require_and_verify_client_cert",
    "max_request_size",
    "max_request_duration",
    "tls_max_version",
    "tls_cipher_suites",
    "tls_disable_client_certs",
    "http_idle_timeout",
    "http_read_header_timeout",
    "http_read_timeout",
    "http_write_timeout",
    "proxy_protocol_behavior",
    "proxy_protocol_authorized_addrs",
    "x_forwarded_for_authorized_addrs",
    "x_forwarded_for_hop_skips",
    "x_forwarded_for_reject_not_authorized",
    "x_forwarded_for_reject_not_present",
    "disable_unauthed_generate_root_endpoints",
    "disable_unauthed_rekey_endpoints",
];
/// Blocks inside `listener "tcp"` that are accepted and ignored.
const LISTENER_BLOCKS: &[&str] = &["telemetry", "custom_response_headers"];
/// `seal "awskms"` keys.
const AWSKMS_KEYS: &[&str] = &[
    "region",
    "kms_key_id",
    "endpoint",
    "access_key",
    "secret_key",
    "session_token",
    "shared_creds_filename",
    "shared_creds_profile",
    "role_arn",
    "role_session_name",
    "web_identity_token_file",
    "disabled",
];
/// TLS versions a listener may require.
const TLS_VERSIONS: &[&str] = &["tls10", "tls11", "tls12", "tls13"];

/// A value together with where it was defined, so a conflict can name both places.
#[derive(Debug, Clone)]
pub(crate) struct Located<T> {
    pub(crate) at: Location,
    pub(crate) value: T,
}

/// `storage` before environment overrides: raft's path may still come from VAULT_RAFT_PATH.
#[derive(Debug, Clone)]
pub(crate) enum StorageDraft {
    /// `path` is `None` until a file or the environment provides it.
    Raft {
        path: Option<PathBuf>,
        config: RaftConfig,
    },
    Inmem,
}

/// What one file (or several merged files) contributes; `None` means "not set here".
#[derive(Debug, Clone, Default)]
pub(crate) struct Fragment {
    pub(crate) storage: Option<Located<StorageDraft>>,
    pub(crate) seal: Option<Located<SealConfig>>,
    pub(crate) listeners: Vec<ListenerConfig>,
    pub(crate) api_addr: Option<String>,
    pub(crate) cluster_addr: Option<String>,
    pub(crate) cluster_name: Option<String>,
    pub(crate) ui: Option<bool>,
    pub(crate) log_level: Option<String>,
    pub(crate) log_format: Option<String>,
    pub(crate) disable_mlock: Option<bool>,
    pub(crate) warnings: Vec<String>,
}

impl Fragment {
    /// Folds a later fragment into this one: later scalars win, listeners accumulate,
    /// storage and seal may only be defined once.
    pub(crate) fn merge(&mut self, later: Fragment) -> Result<(), ConfigError> {
        if let Some(storage) = later.storage {
            self.set_storage(storage)?;
        }
        if let Some(seal) = later.seal {
            self.set_seal(seal)?;
        }
        self.listeners.extend(later.listeners);
        override_with(&mut self.api_addr, later.api_addr);
        override_with(&mut self.cluster_addr, later.cluster_addr);
        override_with(&mut self.cluster_name, later.cluster_name);
        override_with(&mut self.ui, later.ui);
        override_with(&mut self.log_level, later.log_level);
        override_with(&mut self.log_format, later.log_format);
        override_with(&mut self.disable_mlock, later.disable_mlock);
        self.warnings.extend(later.warnings);
        Ok(())
    }

    fn set_storage(&mut self, storage: Located<StorageDraft>) -> Result<(), ConfigError> {
        match &self.storage {
            Some(first) => Err(ConfigError::Duplicate {
                at: storage.at,
                first: first.at.clone(),
                what: "storage".to_owned(),
            }),
            None => {
                self.storage = Some(storage);
                Ok(())
            }
        }
    }

    fn set_seal(&mut self, seal: Located<SealConfig>) -> Result<(), ConfigError> {
        match &self.seal {
            Some(first) => Err(ConfigError::Duplicate {
                at: seal.at,
                first: first.at.clone(),
                what: "seal".to_owned(),
            }),
            None => {
                self.seal = Some(seal);
                Ok(())
            }
        }
    }
}

/// Replaces `slot` when the later source sets the value.
fn override_with<T>(slot: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *slot = later;
    }
}

/// Parses the text of one file named `origin` (used in every message).
pub(crate) fn parse_fragment(text: &str, origin: &str) -> Result<Fragment, ConfigError> {
    let mut cx = Cx::new(text, origin);
    let body = cx.parse_body(text)?;
    let mut fragment = Fragment::default();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => cx.top_attribute(&mut fragment, attr)?,
            Structure::Block(block) => cx.top_block(&mut fragment, block)?,
        }
    }
    fragment.warnings = cx.warnings;
    Ok(fragment)
}

/// Parsing context: the file name, its line table and the warnings gathered so far.
struct Cx<'a> {
    origin: &'a str,
    /// Byte offsets of every '\n', to turn spans into line numbers.
    newlines: Vec<usize>,
    warnings: Vec<String>,
}

impl<'a> Cx<'a> {
    fn new(text: &str, origin: &'a str) -> Self {
        let newlines = text.match_indices('\n').map(|(i, _)| i).collect();
        Cx {
            origin,
            newlines,
            warnings: Vec::new(),
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + 1
    }

    fn at(&self, span: Option<Range<usize>>) -> Location {
        let line = self.line_of(span.map_or(0, |s| s.start));
        Location {
            file: self.origin.to_owned(),
            line,
            column: None,
        }
    }

    fn invalid(&self, span: Option<Range<usize>>, message: String) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(span),
            message,
        }
    }

    fn warn(&mut self, span: Option<Range<usize>>, message: &str) {
        let at = self.at(span);
        self.warnings.push(format!("{at}: {message}"));
    }

    /// Parses HCL, tolerating only the course's stray trailing comma after an attribute
    /// value at the end of a line (blanked out, with a warning); any other error is fatal.
    fn parse_body(&mut self, text: &str) -> Result<Body, ConfigError> {
        let mut text = text.to_owned();
        loop {
            let err = match hcl_edit::parser::parse_body(&text) {
                Ok(body) => return Ok(body),
                Err(err) => err,
            };
            let offset = err.location().offset();
            let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
            let line_text = text[line_start..].lines().next().unwrap_or_default().to_owned();
            let key: String = line_text
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let at = Location {
                file: self.origin.to_owned(),
                line: err.location().line(),
                column: Some(err.location().column()),
            };
            if is_stray_trailing_comma(&text, offset) {
                self.warnings.push(format!(
                    "{at}: stray trailing comma after {key} accepted; remove the trailing comma \
                     (HCL separates attributes with newlines)"
                ));
                text.replace_range(offset..=offset, " ");
                continue;
            }
            if err.message().contains("redefined attribute") {
                return Err(ConfigError::Invalid {
                    at: Location { column: None, ..at },
                    message: format!("duplicate key \"{key}\" (set each key once per block)"),
                });
            }
            return Err(ConfigError::Syntax {
                at,
                message: format!("{} in `{}`", err.message(), line_text.trim()),
            });
        }
    }

    fn top_attribute(&mut self, f: &mut Fragment, attr: &Attribute) -> Result<(), ConfigError> {
        let key = attr.key.as_str();
        match key {
            "api_addr" => f.api_addr = Some(self.url(attr)?),
            "cluster_addr" => f.cluster_addr = Some(self.url(attr)?),
            "cluster_name" => f.cluster_name = Some(self.nonempty_string(attr)?),
            "ui" => f.ui = Some(self.boolean(attr)?),
            "log_level" => {
                let text = self.string(attr)?;
                f.log_level = Some(values::parse_log_level(&text).map_err(|e| self.value_err(attr, &e))?);
            }
            "log_format" => {
                let text = self.string(attr)?;
                f.log_format = Some(values::parse_log_format(&text).map_err(|e| self.value_err(attr, &e))?);
            }
            "disable_mlock" => f.disable_mlock = Some(self.boolean(attr)?),
            "default_lease_ttl" | "max_lease_ttl" => {
                self.duration(attr)?;
            }
            "pid_file" | "plugin_directory" => {
                self.string(attr)?;
            }
            "disable_cache" => {
                self.boolean(attr)?;
            }
            _ => return Err(self.unknown_key(attr, "at the top level", TOP_KEYS, TOP_BLOCKS)),
        }
        Ok(())
    }

    fn top_block(&mut self, f: &mut Fragment, block: &Block) -> Result<(), ConfigError> {
        let at = self.at(block.span());
        match block.ident.as_str() {
            "storage" => {
                let value = match self.single_label(block, "storage", "raft")? {
                    "raft" => self.raft(block)?,
                    "inmem" => {
                        self.no_keys(block, "storage \"inmem\"")?;
                        StorageDraft::Inmem
                    }
                    other => {
                        return Err(self.invalid(
                            block.span(),
                            format!(
                                "unknown storage type \"{other}\" (labnode supports \"raft\" and \"inmem\")"
                            ),
                        ))
                    }
                };
                f.set_storage(Located { at, value })
            }
            "seal" => {
                let value = match self.single_label(block, "seal", "awskms")? {
                    "shamir" => {
                        self.no_keys(block, "seal \"shamir\"")?;
                        SealConfig::Shamir
                    }
                    "awskms" => SealConfig::AwsKms(self.awskms(block)?),
                    other => {
                        return Err(self.invalid(
                            block.span(),
                            format!(
                                "unknown seal type \"{other}\" (labnode supports \"shamir\" and \"awskms\")"
                            ),
                        ))
                    }
                };
                f.set_seal(Located { at, value })
            }
            "listener" => match self.single_label(block, "listener", "tcp")? {
                "tcp" => {
                    let listener = self.listener(block)?;
                    f.listeners.push(listener);
                    Ok(())
                }
                other => Err(self.invalid(
                    block.span(),
                    format!("unknown listener type \"{other}\" (labnode supports \"tcp\")"),
                )),
            },
            "telemetry" => self.no_labels(block, "telemetry"),
            _ => Err(self.unknown_block(block, "at the top level", TOP_BLOCKS, TOP_KEYS)),
        }
    }

    fn raft(&mut self, block: &Block) -> Result<StorageDraft, ConfigError> {
        let mut path = None;
        let mut config = RaftConfig {
            path: PathBuf::new(),
            node_id: None,
            performance_multiplier: 0,
            snapshot_threshold: 8192,
            trailing_logs: 10_000,
            max_entry_size: 1 << 20,
            retry_join_as_non_voter: false,
            autopilot_reconcile_interval: None,
            autopilot_update_interval: None,
            retry_join: Vec::new(),
        };
        let context = "in storage \"raft\"";
        for structure in block.body.iter() {
            let attr = match structure {
                Structure::Block(inner) if inner.ident.as_str() == "retry_join" => {
                    self.no_labels(inner, "retry_join")?;
                    config.retry_join.push(self.retry_join(inner)?);
                    continue;
                }
                Structure::Block(inner) => {
                    return Err(self.unknown_block(inner, context, &["retry_join"], RAFT_KEYS))
                }
                Structure::Attribute(attr) => attr,
            };
            match attr.key.as_str() {
                "path" => path = Some(PathBuf::from(self.nonempty_string(attr)?)),
                "node_id" => config.node_id = Some(self.nonempty_string(attr)?),
                "performance_multiplier" => {
                    let value = self.uint(attr)?;
                    if value > 10 {
                        return Err(self.value_err(attr, &format!("expected 0 to 10, found {value}")));
                    }
                    config.performance_multiplier = value;
                }
                "snapshot_threshold" => config.snapshot_threshold = self.positive(attr)?,
                "trailing_logs" => config.trailing_logs = self.uint(attr)?,
                "max_entry_size" => config.max_entry_size = self.positive(attr)?,
                "retry_join_as_non_voter" => config.retry_join_as_non_voter = self.boolean(attr)?,
                "autopilot_reconcile_interval" => {
                    config.autopilot_reconcile_interval = Some(self.duration(attr)?)
                }
                "autopilot_update_interval" => config.autopilot_update_interval = Some(self.duration(attr)?),
                _ => return Err(self.unknown_key(attr, context, RAFT_KEYS, &["retry_join"])),
            }
        }
        Ok(StorageDraft::Raft { path, config })
    }

    fn retry_join(&mut self, block: &Block) -> Result<RetryJoin, ConfigError> {
        let mut join = RetryJoin::default();
        let mut pem_files: Vec<(&Attribute, &str)> = Vec::new();
        let mut inline: Vec<&str> = Vec::new();
        for attr in self.attributes_only(block, "in retry_join", RETRY_JOIN_KEYS)? {
            match attr.key.as_str() {
                "leader_api_addr" => join.leader_api_addr = Some(self.url(attr)?),
                "auto_join" => {
                    let text = self.nonempty_string(attr)?;
                    values::parse_auto_join(&text).map_err(|e| self.value_err(attr, &e))?;
                    join.auto_join = Some(text);
                }
                "auto_join_scheme" => {
                    let scheme = self.string(attr)?;
                    if scheme != "http" && scheme != "https" {
                        return Err(
                            self.value_err(attr, &format!("expected http or https, found \"{scheme}\""))
                        );
                    }
                    join.auto_join_scheme = Some(scheme);
                }
                "auto_join_port" => {
                    let port = self.uint_text(attr)?;
                    join.auto_join_port =
                        Some(values::check_port(&port, 1).map_err(|e| self.value_err(attr, &e))?);
                }
                "leader_tls_servername" => join.leader_tls_servername = Some(self.nonempty_string(attr)?),
                "leader_ca_cert_file" => pem_files.push((attr, "leader_ca_cert")),
                "leader_client_cert_file" => pem_files.push((attr, "leader_client_cert")),
                "leader_client_key_file" => pem_files.push((attr, "leader_client_key")),
                "leader_ca_cert" => {
                    join.leader_ca_cert = Some(self.nonempty_string(attr)?);
                    inline.push("leader_ca_cert");
                }
                "leader_client_cert" => {
                    join.leader_client_cert = Some(self.nonempty_string(attr)?);
                    inline.push("leader_client_cert");
                }
                _ => {
                    join.leader_client_key = Some(self.nonempty_string(attr)?);
                    inline.push("leader_client_key");
                }
            }
        }
        for (attr, field) in pem_files {
            if inline.contains(&field) {
                return Err(self.value_err(attr, &format!("set either {field} or {field}_file, not both")));
            }
            let file = self.nonempty_string(attr)?;
            let pem = std::fs::read_to_string(&file)
                .map_err(|e| self.value_err(attr, &format!("cannot read \"{file}\": {e}")))?;
            let slot = match field {
                "leader_ca_cert" => &mut join.leader_ca_cert,
                "leader_client_cert" => &mut join.leader_client_cert,
                _ => &mut join.leader_client_key,
            };
            *slot = Some(pem);
        }
        match (&join.leader_api_addr, &join.auto_join) {
            (Some(_), Some(_)) => Err(self.invalid(
                block.span(),
                "retry_join: set either leader_api_addr or auto_join, not both".to_owned(),
            )),
            (None, None) => Err(self.invalid(
                block.span(),
                "retry_join: missing required key \"leader_api_addr\" or \"auto_join\"".to_owned(),
            )),
            _ => Ok(join),
        }
    }

    fn listener(&mut self, block: &Block) -> Result<ListenerConfig, ConfigError> {
        let mut listener = ListenerConfig::default();
        let context = "in listener \"tcp\"";
        for structure in block.body.iter() {
            let attr = match structure {
                Structure::Block(inner) if LISTENER_BLOCKS.contains(&inner.ident.as_str()) => continue,
                Structure::Block(inner) => {
                    return Err(self.unknown_block(inner, context, LISTENER_BLOCKS, LISTENER_KEYS))
                }
                Structure::Attribute(attr) => attr,
            };
            match attr.key.as_str() {
                "address" => listener.address = self.bind_address(attr)?,
                "cluster_address" => listener.cluster_address = Some(self.bind_address(attr)?),
                "tls_disable" => listener.tls_disable = self.boolean(attr)?,
                "tls_cert_file" => listener.tls_cert_file = Some(self.nonempty_string(attr)?.into()),
                "tls_key_file" => listener.tls_key_file = Some(self.nonempty_string(attr)?.into()),
                "tls_client_ca_file" => {
                    listener.tls_client_ca_file = Some(self.nonempty_string(attr)?.into())
                }
                "tls_min_version" => {
                    let version = self.string(attr)?;
                    if !TLS_VERSIONS.contains(&version.as_str()) {
                        return Err(self.value_err(
                            attr,
                            &format!("expected one of tls10, tls11, tls12, tls13, found \"{version}\""),
                        ));
                    }
                    listener.tls_min_version = version;
                }
                "tls_require_and_verify_client_cert" => {
                    listener.tls_require_and_verify_client_cert = self.boolean(attr)?;
                }
                "max_request_size" => listener.max_request_size = self.uint(attr)?,
                "max_request_duration" => listener.max_request_duration = self.duration(attr)?,
                "http_idle_timeout"
                | "http_read_header_timeout"
                | "http_read_timeout"
                | "http_write_timeout" => {
                    self.duration(attr)?;
                }
                "tls_disable_client_certs"
                | "x_forwarded_for_reject_not_authorized"
                | "x_forwarded_for_reject_not_present"
                | "disable_unauthed_generate_root_endpoints"
                | "disable_unauthed_rekey_endpoints" => {
                    self.boolean(attr)?;
                }
                key if LISTENER_KEYS.contains(&key) => {}
                _ => return Err(self.unknown_key(attr, context, LISTENER_KEYS, LISTENER_BLOCKS)),
            }
        }
        match (&listener.tls_cert_file, &listener.tls_key_file) {
            (Some(_), None) | (None, Some(_)) if !listener.tls_disable => Err(self.invalid(
                block.span(),
                "listener \"tcp\": tls_cert_file and tls_key_file must be set together".to_owned(),
            )),
            (None, None) if !listener.tls_disable => {
                self.warn(
                    block.span(),
                    "listener \"tcp\" has TLS enabled but no tls_cert_file/tls_key_file; \
                     set both, or tls_disable = true",
                );
                Ok(listener)
            }
            _ => Ok(listener),
        }
    }

    fn awskms(&mut self, block: &Block) -> Result<AwsKmsConfig, ConfigError> {
        let mut kms = AwsKmsConfig::default();
        for attr in self.attributes_only(block, "in seal \"awskms\"", AWSKMS_KEYS)? {
            let key = attr.key.as_str();
            if key == "disabled" {
                kms.disabled = self.boolean(attr)?;
                continue;
            }
            let value = if key == "endpoint" {
                self.url(attr)?
            } else {
                self.nonempty_string(attr)?
            };
            let slot = match key {
                "region" => &mut kms.region,
                "kms_key_id" => &mut kms.kms_key_id,
                "endpoint" => &mut kms.endpoint,
                "access_key" => &mut kms.access_key,
                "secret_key" => &mut kms.secret_key,
                "session_token" => &mut kms.session_token,
                "shared_creds_filename" => &mut kms.shared_creds_filename,
                "shared_creds_profile" => &mut kms.shared_creds_profile,
                "role_arn" => &mut kms.role_arn,
                "role_session_name" => &mut kms.role_session_name,
                _ => &mut kms.web_identity_token_file,
            };
            *slot = Some(value);
        }
        Ok(kms)
    }

    /// The attributes of a block that has no nested blocks; unknown keys are errors.
    fn attributes_only<'b>(
        &self,
        block: &'b Block,
        context: &str,
        known: &[&str],
    ) -> Result<Vec<&'b Attribute>, ConfigError> {
        block
            .body
            .iter()
            .map(|structure| match structure {
                Structure::Attribute(attr) if known.contains(&attr.key.as_str()) => Ok(attr),
                Structure::Attribute(attr) => Err(self.unknown_key(attr, context, known, &[])),
                Structure::Block(inner) => Err(self.unknown_block(inner, context, &[], known)),
            })
            .collect()
    }

    fn no_keys(&self, block: &Block, what: &str) -> Result<(), ConfigError> {
        match block.body.iter().next() {
            None => Ok(()),
            Some(structure) => Err(self.invalid(structure.span(), format!("{what} takes no keys"))),
        }
    }

    fn no_labels(&self, block: &Block, what: &str) -> Result<(), ConfigError> {
        if block.labels.is_empty() {
            Ok(())
        } else {
            Err(self.invalid(
                block.span(),
                format!("{what} takes no label: write {what} {{ ... }}"),
            ))
        }
    }

    fn single_label<'b>(&self, block: &'b Block, what: &str, example: &str) -> Result<&'b str, ConfigError> {
        match block.labels.as_slice() {
            [label] => Ok(label.as_str()),
            _ => Err(self.invalid(
                block.span(),
                format!(
                    "{what} needs exactly one label naming its type, e.g. {what} \"{example}\" {{ ... }}"
                ),
            )),
        }
    }

    fn unknown_key(&self, attr: &Attribute, context: &str, keys: &[&str], blocks: &[&str]) -> ConfigError {
        let key = attr.key.as_str();
        if blocks.contains(&key) {
            return self.invalid(
                attr.span(),
                format!("{key} is a block, not a key: write {key} {{ ... }}"),
            );
        }
        let hint = suggest(key, keys)
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        self.invalid(attr.span(), format!("unknown key \"{key}\" {context}{hint}"))
    }

    fn unknown_block(&self, block: &Block, context: &str, blocks: &[&str], keys: &[&str]) -> ConfigError {
        let name = block.ident.as_str();
        if keys.contains(&name) {
            return self.invalid(
                block.span(),
                format!("{name} is a key, not a block: write {name} = ..."),
            );
        }
        let hint = suggest(name, blocks)
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        self.invalid(block.span(), format!("unknown block \"{name}\" {context}{hint}"))
    }

    fn value_err(&self, attr: &Attribute, message: &str) -> ConfigError {
        self.invalid(attr.span(), format!("{}: {message}", attr.key.as_str()))
    }

    fn type_err(&self, attr: &Attribute, expected: &str) -> ConfigError {
        self.value_err(
            attr,
            &format!("expected {expected}, found {}", render(&attr.value)),
        )
    }

    /// A literal string: quoted, or a heredoc without interpolation.
    fn string(&self, attr: &Attribute) -> Result<String, ConfigError> {
        let literal = match &attr.value {
            Expression::String(s) => Some(s.value().clone()),
            Expression::StringTemplate(t) => literal_template(t.iter()),
            Expression::HeredocTemplate(h) => literal_template(h.template.iter()),
            _ => None,
        };
        literal.ok_or_else(|| self.type_err(attr, "a string without interpolation"))
    }

    fn nonempty_string(&self, attr: &Attribute) -> Result<String, ConfigError> {
        let text = self.string(attr)?;
        if text.trim().is_empty() {
            return Err(self.value_err(attr, "expected a non-empty string, found \"\""));
        }
        Ok(text)
    }

    /// An address string; surrounding whitespace (the course's `" https://..."`) is trimmed
    /// with a warning rather than rejected.
    fn address_string(&mut self, attr: &Attribute) -> Result<String, ConfigError> {
        let text = self.string(attr)?;
        let trimmed = text.trim();
        if trimmed.len() != text.len() {
            let key = attr.key.as_str();
            self.warn(
                attr.span(),
                &format!("{key} = \"{text}\" has surrounding whitespace; using \"{trimmed}\" (remove the whitespace)"),
            );
        }
        Ok(trimmed.to_owned())
    }

    fn url(&mut self, attr: &Attribute) -> Result<String, ConfigError> {
        let text = self.address_string(attr)?;
        values::check_url(&text).map_err(|e| self.value_err(attr, &e))?;
        Ok(text)
    }

    fn bind_address(&mut self, attr: &Attribute) -> Result<String, ConfigError> {
        let text = self.address_string(attr)?;
        values::check_host_port(&text).map_err(|e| self.value_err(attr, &e))?;
        Ok(text)
    }

    /// true/false, 0/1, or those as strings.
    fn boolean(&self, attr: &Attribute) -> Result<bool, ConfigError> {
        let parsed = match &attr.value {
            Expression::Bool(b) => Some(*b.value()),
            Expression::Number(n) => match n.as_u64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Expression::String(s) => values::parse_bool_str(s),
            _ => None,
        };
        parsed.ok_or_else(|| self.type_err(attr, "a boolean (true/false or 0/1)"))
    }

    /// A non-negative integer, as a number or a numeric string, returned as text.
    fn uint_text(&self, attr: &Attribute) -> Result<String, ConfigError> {
        match &attr.value {
            Expression::Number(n) if n.as_u64().is_some() => Ok(n.value().to_string()),
            Expression::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(s.value().clone())
            }
            _ => Err(self.type_err(attr, "a non-negative integer")),
        }
    }

    fn uint(&self, attr: &Attribute) -> Result<u64, ConfigError> {
        let text = self.uint_text(attr)?;
        text.parse()
            .map_err(|_| self.type_err(attr, "a non-negative integer"))
    }

    fn positive(&self, attr: &Attribute) -> Result<u64, ConfigError> {
        match self.uint(attr)? {
            0 => Err(self.value_err(attr, "expected a positive integer, found 0")),
            value => Ok(value),
        }
    }

    /// Integer seconds or a Go duration string.
    fn duration(&self, attr: &Attribute) -> Result<std::time::Duration, ConfigError> {
        match &attr.value {
            Expression::Number(n) => match n.as_u64() {
                Some(secs) => Ok(std::time::Duration::from_secs(secs)),
                None => Err(self.type_err(attr, "a duration (seconds or a string such as \"90s\")")),
            },
            Expression::String(s) => values::parse_duration(s).map_err(|e| self.value_err(attr, &e)),
            _ => Err(self.type_err(attr, "a duration (seconds or a string such as \"90s\")")),
        }
    }
}

/// The parser reports a stray `,` as "expected newline"; accept it only when nothing but
/// whitespace or a comment follows on that line.
fn is_stray_trailing_comma(text: &str, offset: usize) -> bool {
    if text.as_bytes().get(offset) != Some(&b',') {
        return false;
    }
    let rest = text[offset + 1..].lines().next().unwrap_or_default().trim();
    rest.is_empty() || rest.starts_with('#') || rest.starts_with("//")
}

/// Concatenates a template made only of literal text (no `${}` or `%{}`).
fn literal_template<'t>(mut elements: impl Iterator<Item = &'t Element>) -> Option<String> {
    elements.try_fold(String::new(), |mut acc, element| {
        acc.push_str(element.as_literal()?.value());
        Some(acc)
    })
}

/// How a value appears in messages: strings quoted, everything else as written.
fn render(expr: &Expression) -> String {
    match expr {
        Expression::String(s) => format!("\"{}\"", s.value()),
        Expression::HeredocTemplate(_) => "a heredoc with interpolation".to_owned(),
        other => {
            let mut stripped = other.clone();
            hcl_edit::Decorate::decor_mut(&mut stripped).clear();
            stripped.to_string()
        }
    }
}
