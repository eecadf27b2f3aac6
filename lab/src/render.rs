//! Node HCL from handlebars templates, checked by labnode's own config parser.
//!
//! The templates ship inside the binary (from `templates/`) so `lab` runs from anywhere;
//! `--templates DIR` or `LAB_TEMPLATES` swaps in a directory with the same file names to
//! experiment with other stanzas. Every rendered file is parsed by
//! [`labnode_config::parse_str`] before any process starts, so a template mistake is
//! reported with a file and line instead of as a node that never comes up.

use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use labnode_config::{Config, StorageConfig};
use serde::Serialize;

/// The node configuration template's file name, in `templates/` or the override directory.
pub const NODE_TEMPLATE: &str = "node.hcl.hbs";

/// The EC2 user data template's file name, in `templates/` or the override directory.
pub const USER_DATA_TEMPLATE: &str = "user-data.sh.hbs";

/// The shipped node template, used when no override directory is given.
const EMBEDDED_NODE_TEMPLATE: &str = include_str!("../../templates/node.hcl.hbs");
/// The shipped user data template.
const EMBEDDED_USER_DATA_TEMPLATE: &str = include_str!("../../templates/user-data.sh.hbs");

/// Why a node configuration could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The override template could not be read.
    #[error("{}: cannot read template: {source}", path.display())]
    Read {
        /// The template file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The template is not valid handlebars.
    #[error("{origin}: template syntax error: {message}")]
    Syntax {
        /// Where the template came from.
        origin: String,
        /// The handlebars parser's explanation.
        message: String,
    },
    /// Rendering failed, typically a variable the context does not have (strict mode).
    #[error("{origin}: rendering {node}: {message}")]
    Render {
        /// Where the template came from.
        origin: String,
        /// `cluster/node`.
        node: String,
        /// The handlebars explanation.
        message: String,
    },
    /// The rendered text is not a configuration labnode accepts.
    #[error("rendered configuration for {node} is rejected by labnode: {source}")]
    Config {
        /// `cluster/node`.
        node: String,
        /// labnode's parser error, pointing at the line (boxed: it is large).
        source: Box<labnode_config::ConfigError>,
    },
    /// A user data value would break out of the shell script it is written into.
    #[error("user data for {node}: {message}")]
    UnsafeUserData {
        /// `cluster/node`.
        node: String,
        /// Which value and why.
        message: String,
    },
    /// The rendered configuration parses but disagrees with what lab will talk to.
    #[error("rendered configuration for {node}: {message}; the template must use the context values")]
    Mismatch {
        /// `cluster/node`.
        node: String,
        /// Which value differs.
        message: String,
    },
}

/// Everything the node template may use; providers fill it, so a new provider only
/// changes values, never the template's variable names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeContext {
    /// Raft `node_id`.
    pub node_id: String,
    /// `cluster_name`.
    pub cluster_name: String,
    /// Raft data directory on the host.
    pub data_path: String,
    /// Advertised API URL.
    pub api_addr: String,
    /// Advertised cluster URL (always https: cluster traffic is mTLS).
    pub cluster_addr: String,
    /// The `listener "tcp"` stanza.
    pub listener: ListenerContext,
    /// The `seal` stanza (none for Shamir).
    pub seal: SealContext,
    /// The `retry_join` stanzas.
    pub join: JoinContext,
    /// `ui`.
    pub ui: bool,
    /// `log_level`.
    pub log_level: String,
}

/// Bind addresses of the API and cluster listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerContext {
    /// API bind `host:port`.
    pub address: String,
    /// Cluster bind `host:port`.
    pub cluster_address: String,
    /// True for the local provider: plain HTTP on loopback.
    pub tls_disable: bool,
}

/// Seal facts; `awskms` is `None` for Shamir, which needs no stanza.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealContext {
    /// `seal "awskms"` values, supplied by a provider that has a KMS.
    pub awskms: Option<AwsKmsContext>,
}

/// `seal "awskms"` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwsKmsContext {
    /// AWS region of the key.
    pub region: String,
    /// Key id, ARN or alias.
    pub kms_key_id: String,
    /// KMS endpoint override (LocalStack's URL), if any.
    pub endpoint: Option<String>,
    /// Static credentials (LocalStack's test/test); `None` uses the AWS default chain.
    pub credentials: Option<StaticCredentials>,
}

/// An access key pair written into the seal stanza.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticCredentials {
    /// `access_key`.
    pub access_key: String,
    /// `secret_key`.
    pub secret_key: String,
}

/// How a node finds its peers: explicit leader URLs (local) or cloud discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JoinContext {
    /// One `retry_join { leader_api_addr }` per other node of the cluster.
    pub leader_api_addrs: Vec<String>,
    /// One `retry_join { auto_join }` stanza instead, for tag-based discovery.
    pub auto_join: Option<AutoJoinContext>,
}

/// A go-discover `auto_join` stanza.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutoJoinContext {
    /// e.g. `provider=aws region=us-east-1 tag_key=vault tag_value=primary`.
    pub discover: String,
    /// `http` or `https`.
    pub scheme: String,
    /// API port of the discovered nodes.
    pub port: u16,
}

/// What the EC2 user data template writes at an instance's first boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserDataContext {
    /// `cluster/node`.
    pub node: String,
    /// The login that owns lab's files (lab uploads as this user).
    pub ssh_user: String,
    /// lab's directory on the instance.
    pub remote_dir: String,
    /// The node's directory.
    pub node_dir: String,
    /// The node's HCL path.
    pub config_path: String,
    /// The rendered node HCL.
    pub config: String,
    /// The systemd unit's name.
    pub service: String,
    /// The systemd unit's text.
    pub unit: String,
}

/// Loaded node and user data templates, ready to render any number of nodes.
pub struct Renderer {
    handlebars: Handlebars<'static>,
    origin: String,
    user_data: Handlebars<'static>,
    user_data_origin: String,
}

impl Renderer {
    /// Loads `node.hcl.hbs` from `dir`, or the embedded copy when `dir` is `None`; the
    /// user data template likewise, from `dir` when it has one.
    pub fn new(dir: Option<&Path>) -> Result<Renderer, RenderError> {
        let (text, origin) = load_template(dir, NODE_TEMPLATE, EMBEDDED_NODE_TEMPLATE, true)?;
        let handlebars = compile(NODE_TEMPLATE, text, &origin, escape_hcl_string)?;
        let (text, user_data_origin) =
            load_template(dir, USER_DATA_TEMPLATE, EMBEDDED_USER_DATA_TEMPLATE, false)?;
        // Values are checked shell-safe before rendering; the texts go into quoted heredocs.
        let user_data = compile(USER_DATA_TEMPLATE, text, &user_data_origin, handlebars::no_escape)?;
        Ok(Renderer {
            handlebars,
            origin,
            user_data,
            user_data_origin,
        })
    }

    /// Renders an instance's user data: a shell script writing the node's HCL and unit.
    pub fn render_user_data(&self, context: &UserDataContext) -> Result<String, RenderError> {
        let unsafe_data = |message: String| RenderError::UnsafeUserData {
            node: context.node.clone(),
            message,
        };
        for (name, value) in [
            ("ssh_user", &context.ssh_user),
            ("remote_dir", &context.remote_dir),
            ("node_dir", &context.node_dir),
            ("config_path", &context.config_path),
            ("service", &context.service),
        ] {
            if value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
            {
                return Err(unsafe_data(format!(
                    "{name} \"{value}\" may only hold letters, digits and / . _ -"
                )));
            }
        }
        for (name, value, delimiter) in [
            ("config", &context.config, "LAB_NODE_HCL"),
            ("unit", &context.unit, "LAB_NODE_UNIT"),
        ] {
            if value.lines().any(|line| line == delimiter) {
                return Err(unsafe_data(format!("{name} contains the line {delimiter}")));
            }
        }
        self.user_data
            .render(USER_DATA_TEMPLATE, context)
            .map_err(|e| RenderError::Render {
                origin: self.user_data_origin.clone(),
                node: context.node.clone(),
                message: e.to_string(),
            })
    }

    /// Renders one node and checks the result with labnode's parser.
    pub fn render_node(&self, context: &NodeContext) -> Result<String, RenderError> {
        let node = format!("{}/{}", context.cluster_name, context.node_id);
        let text = self
            .handlebars
            .render(NODE_TEMPLATE, context)
            .map_err(|e| RenderError::Render {
                origin: self.origin.clone(),
                node: node.clone(),
                message: e.to_string(),
            })?;
        let config = labnode_config::parse_str(&text, &format!("{node}.hcl")).map_err(|source| {
            RenderError::Config {
                node: node.clone(),
                source: Box::new(source),
            }
        })?;
        check_matches(&config, context).map_err(|message| RenderError::Mismatch { node, message })?;
        Ok(text)
    }
}

/// A template from `dir`, or the embedded text; the user data template may be absent from
/// `dir` (an override directory made before it existed), the node template may not.
fn load_template(
    dir: Option<&Path>,
    name: &str,
    embedded: &str,
    required: bool,
) -> Result<(String, String), RenderError> {
    if let Some(dir) = dir {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok((text, path.display().to_string())),
            Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RenderError::Read { path, source: e })
            }
            Err(_) => {}
        }
    }
    Ok((embedded.to_owned(), format!("templates/{name}")))
}

/// A strict registry holding one template.
fn compile(
    name: &str,
    text: String,
    origin: &str,
    escape: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Result<Handlebars<'static>, RenderError> {
    let mut handlebars = Handlebars::new();
    handlebars.set_strict_mode(true);
    handlebars.register_escape_fn(escape);
    handlebars
        .register_template_string(name, text)
        .map_err(|e| RenderError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
    Ok(handlebars)
}

/// lab talks to the addresses in the context and finds data where it said; a template
/// that writes other values would leave lab polling the wrong place.
fn check_matches(config: &Config, context: &NodeContext) -> Result<(), String> {
    let StorageConfig::Raft(raft) = &config.storage else {
        return Err("storage is not \"raft\"".to_owned());
    };
    if raft.node_id.as_deref() != Some(context.node_id.as_str()) {
        return Err(format!(
            "node_id is {:?}, expected \"{}\"",
            raft.node_id, context.node_id
        ));
    }
    if raft.path != Path::new(&context.data_path) {
        return Err(format!(
            "raft path is \"{}\", expected \"{}\"",
            raft.path.display(),
            context.data_path
        ));
    }
    let address = config.listeners.first().map(|l| l.address.as_str());
    if address != Some(context.listener.address.as_str()) {
        return Err(format!(
            "listener address is {address:?}, expected \"{}\"",
            context.listener.address
        ));
    }
    Ok(())
}

/// Every interpolation sits inside an HCL string (or is a number/bool, which this leaves
/// alone), so escape what would end the string or start an HCL template sequence.
fn escape_hcl_string(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace("${", "$${")
        .replace("%{", "%%{")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> NodeContext {
        NodeContext {
            node_id: "node-a".into(),
            cluster_name: "primary".into(),
            data_path: "/lab/primary/node-a/data".into(),
            api_addr: "http://127.0.0.1:8200".into(),
            cluster_addr: "https://127.0.0.1:8201".into(),
            listener: ListenerContext {
                address: "127.0.0.1:8200".into(),
                cluster_address: "127.0.0.1:8201".into(),
                tls_disable: true,
            },
            seal: SealContext { awskms: None },
            join: JoinContext {
                leader_api_addrs: vec!["http://127.0.0.1:8210".into()],
                auto_join: None,
            },
            ui: true,
            log_level: "info".into(),
        }
    }

    fn user_data() -> UserDataContext {
        UserDataContext {
            node: "primary/node-a".into(),
            ssh_user: "ec2-user".into(),
            remote_dir: "/opt/lab".into(),
            node_dir: "/opt/lab/primary/node-a".into(),
            config_path: "/opt/lab/primary/node-a/node.hcl".into(),
            config: "api_addr = \"http://10.0.1.11:8200\"\n".into(),
            service: "labnode-primary-node-a".into(),
            unit: "[Service]\nExecStart=/opt/lab/bin/labnode server\n".into(),
        }
    }

    #[test]
    fn user_data_writes_the_config_and_unit_verbatim() {
        let text = Renderer::new(None)
            .unwrap()
            .render_user_data(&user_data())
            .unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        assert!(
            text.contains("cat >/opt/lab/primary/node-a/node.hcl <<'LAB_NODE_HCL'\napi_addr = \"http://10.0.1.11:8200\"\n\nLAB_NODE_HCL\n"),
            "{text}"
        );
        assert!(
            text.contains("/etc/systemd/system/labnode-primary-node-a.service"),
            "{text}"
        );
        assert!(
            text.contains("install -d -m 0700 -o ec2-user /opt/lab/primary/node-a"),
            "{text}"
        );
    }

    #[test]
    fn user_data_refuses_values_that_would_escape_the_script() {
        let renderer = Renderer::new(None).unwrap();
        let mut context = user_data();
        context.ssh_user = "ec2-user; rm -rf /".into();
        let err = renderer.render_user_data(&context).unwrap_err().to_string();
        assert!(
            err.contains("ssh_user") && err.contains("primary/node-a"),
            "{err}"
        );
        let mut context = user_data();
        context.config = "x\nLAB_NODE_HCL\nreboot\n".into();
        let err = renderer.render_user_data(&context).unwrap_err().to_string();
        assert!(err.contains("contains the line LAB_NODE_HCL"), "{err}");
    }

    #[test]
    fn shamir_retry_join_renders_exactly() {
        let text = Renderer::new(None).unwrap().render_node(&context()).unwrap();
        assert_eq!(
            text,
            r#"storage "raft" {
  path    = "/lab/primary/node-a/data"
  node_id = "node-a"
  retry_join {
    leader_api_addr = "http://127.0.0.1:8210"
  }
}

listener "tcp" {
  address         = "127.0.0.1:8200"
  cluster_address = "127.0.0.1:8201"
  tls_disable     = true
}

api_addr     = "http://127.0.0.1:8200"
cluster_addr = "https://127.0.0.1:8201"
cluster_name = "primary"
ui           = true
log_level    = "info"
"#
        );
    }

    #[test]
    fn awskms_and_auto_join_branch_renders_and_parses() {
        let mut ctx = context();
        ctx.seal.awskms = Some(AwsKmsContext {
            region: "us-east-1".into(),
            kms_key_id: "alias/lab".into(),
            endpoint: Some("http://127.0.0.1:4566".into()),
            credentials: Some(StaticCredentials {
                access_key: "test".into(),
                secret_key: "test".into(),
            }),
        });
        ctx.join = JoinContext {
            leader_api_addrs: vec![],
            auto_join: Some(AutoJoinContext {
                discover: "provider=aws region=us-east-1 tag_key=vault tag_value=primary".into(),
                scheme: "http".into(),
                port: 8200,
            }),
        };
        let text = Renderer::new(None).unwrap().render_node(&ctx).unwrap();
        assert!(text.contains("seal \"awskms\" {\n  region     = \"us-east-1\"\n  kms_key_id = \"alias/lab\"\n  endpoint   = \"http://127.0.0.1:4566\"\n  access_key = \"test\"\n  secret_key = \"test\"\n}"), "{text}");
        assert!(
            text.contains(
                "auto_join        = \"provider=aws region=us-east-1 tag_key=vault tag_value=primary\""
            ),
            "{text}"
        );
        assert!(!text.contains("leader_api_addr"), "{text}");
    }

    #[test]
    fn quotes_in_values_cannot_break_out_of_strings() {
        assert_eq!(escape_hcl_string(r#"a"b\c${x}"#), r#"a\"b\\c$${x}"#);
    }

    #[test]
    fn override_template_that_ignores_context_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(NODE_TEMPLATE),
            "storage \"raft\" {\n  path = \"/elsewhere\"\n  node_id = \"{{node_id}}\"\n}\nlistener \"tcp\" {\n  address = \"{{listener.address}}\"\n  tls_disable = true\n}\n",
        )
        .unwrap();
        let err = Renderer::new(Some(dir.path()))
            .unwrap()
            .render_node(&context())
            .unwrap_err();
        assert!(err.to_string().contains("raft path"), "{err}");
        std::fs::write(dir.path().join(NODE_TEMPLATE), "path = \"{{nope}}\"\n").unwrap();
        let err = Renderer::new(Some(dir.path()))
            .unwrap()
            .render_node(&context())
            .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        std::fs::write(dir.path().join(NODE_TEMPLATE), "{{#if ui}}\n").unwrap();
        assert!(matches!(
            Renderer::new(Some(dir.path())),
            Err(RenderError::Syntax { .. })
        ));
    }
}
