//! The command table: every command and command group of the CLI, defined once with its
//! synopsis and flag set. Dispatch, vault's usage listings and `-h` all read this table,
//! so a command cannot be reachable without being listed, or listed without running.

use std::future::Future;
use std::pin::Pin;

use super::flags::{Flag, FlagSet, HttpOnly, HttpOutput, Kind, Parsed};
use super::{format, kv, logical, operator, policy, raft, secrets, server, token, CmdResult};

/// How a command runs once its flags are parsed.
pub enum Action {
    /// On the calling thread; the command builds the runtime it needs (`server`, which
    /// also keeps ignoring SIGPIPE so a vanished client never kills a node).
    Blocking(fn(Parsed) -> CmdResult),
    /// On the CLI's current-thread tokio runtime.
    Async(fn(Parsed) -> Pin<Box<dyn Future<Output = CmdResult>>>),
}

/// One runnable command.
pub struct Command {
    /// The words that name it, e.g. `operator raft list-peers`.
    pub path: &'static str,
    /// One line for the listings, as vault words it.
    pub synopsis: &'static str,
    /// Every flag it accepts (its flag set's list).
    pub flags: fn() -> Vec<Flag>,
    /// What it does.
    pub action: Action,
}

/// A word that only groups subcommands (`operator`, `kv metadata`).
pub struct Group {
    /// The words that name it.
    pub path: &'static str,
    /// One line for the listings.
    pub synopsis: &'static str,
}

/// A table entry: the handler gets its typed flags and the positional arguments.
macro_rules! command {
    ($path:literal, $synopsis:literal, $flags:ty, blocking $handler:path) => {
        Command {
            path: $path,
            synopsis: $synopsis,
            flags: <$flags as FlagSet>::flags,
            action: Action::Blocking(|parsed| $handler(<$flags as FlagSet>::resolve(&parsed), parsed.args)),
        }
    };
    ($path:literal, $synopsis:literal, $flags:ty, $handler:path) => {
        Command {
            path: $path,
            synopsis: $synopsis,
            flags: <$flags as FlagSet>::flags,
            action: Action::Async(|parsed| {
                Box::pin(async move { $handler(<$flags as FlagSet>::resolve(&parsed), parsed.args).await })
            }),
        }
    };
}

/// Every command.
pub const COMMANDS: &[Command] = &[
    command!("server", "Start a Vault server", server::ServerFlags, blocking server::run),
    command!("status", "Print seal and HA status", HttpOutput, operator::status),
    command!(
        "read",
        "Read data and retrieves secrets",
        logical::SecretFlags,
        logical::read
    ),
    command!(
        "write",
        "Write data, configuration, and secrets",
        logical::WriteFlags,
        logical::write
    ),
    command!(
        "delete",
        "Delete secrets and configuration",
        HttpOutput,
        logical::delete
    ),
    command!("list", "List data or secrets", logical::ListFlags, logical::list),
    command!("login", "Authenticate locally", token::LoginFlags, token::login),
    command!(
        "unwrap",
        "Unwrap a wrapped secret",
        logical::SecretFlags,
        logical::unwrap
    ),
    command!(
        "print token",
        "Prints the Vault token currently in use",
        (),
        token::print_token
    ),
    command!("version", "Prints the Vault CLI version", (), version),
    command!(
        "operator init",
        "Initializes a server",
        operator::InitFlags,
        operator::init
    ),
    command!(
        "operator unseal",
        "Unseals the Vault server",
        operator::UnsealFlags,
        operator::unseal
    ),
    command!(
        "operator seal",
        "Seals the Vault server",
        HttpOnly,
        operator::seal
    ),
    command!(
        "operator step-down",
        "Forces Vault to resign active duty",
        HttpOnly,
        operator::step_down
    ),
    command!(
        "operator validate-config",
        "Validate Vault configuration files",
        (),
        operator::validate_config
    ),
    command!(
        "operator members",
        "Returns the list of nodes in the cluster",
        HttpOutput,
        operator::members
    ),
    command!(
        "operator generate-root",
        "Generates a new root token",
        operator::GenerateRootFlags,
        operator::generate_root
    ),
    command!(
        "operator raft list-peers",
        "Returns the Raft peer set",
        raft::DrTokenFlags,
        raft::list_peers
    ),
    command!(
        "operator raft join",
        "Joins a node to the Raft cluster",
        raft::JoinFlags,
        raft::join
    ),
    command!(
        "operator raft remove-peer",
        "Removes a node from the Raft cluster",
        raft::RemovePeerFlags,
        raft::remove_peer
    ),
    command!(
        "operator raft snapshot save",
        "Saves a snapshot of the current state of the Raft cluster into a file",
        HttpOnly,
        raft::snapshot_save
    ),
    command!(
        "operator raft snapshot restore",
        "Installs the provided snapshot, returning the cluster to the state defined in it",
        raft::RestoreFlags,
        raft::snapshot_restore
    ),
    command!(
        "operator raft autopilot state",
        "Displays the state of the raft cluster under integrated storage as seen by autopilot",
        raft::DrTokenFlags,
        raft::autopilot_state
    ),
    command!(
        "kv get",
        "Retrieves data from the KV store",
        kv::GetFlags,
        kv::get
    ),
    command!(
        "kv put",
        "Sets or updates data in the KV store",
        kv::PutFlags,
        kv::put
    ),
    command!(
        "kv patch",
        "Sets or updates data in the KV store without overwriting",
        kv::PutFlags,
        kv::patch
    ),
    command!(
        "kv delete",
        "Deletes versions in the KV store",
        kv::VersionsFlags,
        kv::delete
    ),
    command!(
        "kv undelete",
        "Undeletes versions in the KV store",
        kv::VersionsFlags,
        kv::undelete
    ),
    command!(
        "kv destroy",
        "Permanently removes one or more versions in the KV store",
        kv::VersionsFlags,
        kv::destroy
    ),
    command!("kv list", "List data or secrets", kv::MountFlags, kv::list),
    command!(
        "kv metadata get",
        "Retrieves key metadata from the KV store",
        kv::MetadataGetFlags,
        kv::metadata_get
    ),
    command!(
        "kv metadata put",
        "Sets or updates key settings in the KV store",
        kv::MetadataPutFlags,
        kv::metadata_put
    ),
    command!(
        "kv metadata delete",
        "Deletes all versions and metadata for a key in the KV store",
        kv::MountFlags,
        kv::metadata_delete
    ),
    command!(
        "secrets enable",
        "Enable a secrets engine",
        secrets::EnableFlags,
        secrets::enable
    ),
    command!(
        "secrets disable",
        "Disable a secret engine",
        HttpOnly,
        secrets::disable
    ),
    command!(
        "secrets list",
        "List enabled secrets engines",
        secrets::ListFlags,
        secrets::list
    ),
    command!(
        "secrets tune",
        "Tune a secrets engine configuration",
        secrets::TuneFlags,
        secrets::tune
    ),
    command!(
        "token create",
        "Create a new token",
        token::CreateFlags,
        token::create
    ),
    command!(
        "token lookup",
        "Display information about a token",
        token::LookupFlags,
        token::lookup
    ),
    command!(
        "token revoke",
        "Revoke a token and its children",
        token::RevokeFlags,
        token::revoke
    ),
    command!(
        "token renew",
        "Renew a token lease",
        token::RenewFlags,
        token::renew
    ),
    command!(
        "token capabilities",
        "Print capabilities of a token on a path",
        HttpOutput,
        token::capabilities
    ),
    command!(
        "policy write",
        "Uploads a named policy from a file",
        HttpOnly,
        policy::write
    ),
    command!(
        "policy read",
        "Prints the contents of a policy",
        HttpOutput,
        policy::read
    ),
    command!(
        "policy list",
        "Lists the installed policies",
        HttpOutput,
        policy::list
    ),
    command!(
        "policy delete",
        "Deletes a policy by name",
        HttpOnly,
        policy::delete
    ),
    command!("policy fmt", "Formats a policy on disk", (), policy::fmt),
];

/// Every group, parents before children.
pub const GROUPS: &[Group] = &[
    Group {
        path: "kv",
        synopsis: "Interact with Vault's Key-Value storage",
    },
    Group {
        path: "kv metadata",
        synopsis: "Interact with Vault's Key-Value storage",
    },
    Group {
        path: "operator",
        synopsis: "Perform operator-specific tasks",
    },
    Group {
        path: "operator raft",
        synopsis: "Interact with Vault's raft storage backend",
    },
    Group {
        path: "operator raft autopilot",
        synopsis: "Interact with autopilot subsystem of integrated storage",
    },
    Group {
        path: "operator raft snapshot",
        synopsis: "Restores and saves snapshots from the Raft cluster",
    },
    Group {
        path: "policy",
        synopsis: "Interact with policies",
    },
    Group {
        path: "print",
        synopsis: "Prints runtime configurations",
    },
    Group {
        path: "secrets",
        synopsis: "Interact with secrets engines",
    },
    Group {
        path: "token",
        synopsis: "Interact with tokens",
    },
];

/// Top-level commands vault lists first.
const COMMON: &[&str] = &[
    "read", "write", "delete", "list", "login", "server", "status", "unwrap",
];

/// `vault version`.
async fn version((): (), _args: Vec<String>) -> CmdResult {
    format::out(&format!("Vault v{} (labnode)", env!("CARGO_PKG_VERSION")));
    Ok(0)
}

/// What the words on the command line name.
pub enum Found<'a> {
    /// A command, with the words after its path.
    Command(&'static Command, &'a [String]),
    /// A group without a known subcommand after it: its listing (exit 1), with the words
    /// after its path.
    Group(&'static Group, &'a [String]),
    /// Nothing known: the top-level listing, exit 127.
    Unknown,
}

/// Whether `path`'s words are the first words of `words`.
fn names(path: &str, words: &[String]) -> Option<usize> {
    let parts: Vec<&str> = path.split(' ').collect();
    (words.len() >= parts.len() && parts.iter().zip(words).all(|(p, w)| p == w)).then_some(parts.len())
}

/// Finds what `words` name: the longest command path, else the longest group path.
pub fn find(words: &[String]) -> Found<'_> {
    let command = COMMANDS
        .iter()
        .filter_map(|c| names(c.path, words).map(|n| (c, n)))
        .max_by_key(|(_, n)| *n);
    let group = GROUPS
        .iter()
        .filter_map(|g| names(g.path, words).map(|n| (g, n)))
        .max_by_key(|(_, n)| *n);
    match (command, group) {
        (Some((c, n)), Some((_, g))) if n > g => Found::Command(c, &words[n..]),
        (Some((c, n)), None) => Found::Command(c, &words[n..]),
        (_, Some((g, n))) => Found::Group(g, &words[n..]),
        (None, None) => Found::Unknown,
    }
}

/// Whether the words ask for help (`-h`, `-help`, `--help`) instead of naming a command.
pub fn asks_help(rest: &[String]) -> bool {
    rest.first()
        .is_some_and(|w| matches!(w.as_str(), "-h" | "-help" | "--help"))
}

/// The direct children of `parent` (commands and groups) with their synopses, sorted.
fn children(parent: &str) -> Vec<(&'static str, &'static str)> {
    let depth = if parent.is_empty() {
        0
    } else {
        parent.split(' ').count()
    };
    let under = |path: &str| {
        let parts: Vec<&str> = path.split(' ').collect();
        parts.len() == depth + 1 && (depth == 0 || parts[..depth].join(" ") == parent)
    };
    let last = |path: &'static str| path.rsplit(' ').next().unwrap_or(path);
    let mut out: Vec<(&str, &str)> = COMMANDS
        .iter()
        .map(|c| (c.path, c.synopsis))
        .chain(GROUPS.iter().map(|g| (g.path, g.synopsis)))
        .filter(|(p, _)| under(p))
        .map(|(p, s)| (last(p), s))
        .collect();
    out.sort_unstable();
    out
}

/// `    name<pad>synopsis` lines, the name column `pad` wider than the longest name.
fn listing(entries: &[(&str, &str)], pad: usize) -> String {
    let width = entries.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + pad;
    entries
        .iter()
        .map(|(n, s)| format!("    {n:<width$}{s}\n"))
        .collect()
}

/// Vault's listing for a group: usage, synopsis, subcommands (mitchellh/cli's layout).
pub fn group_help(group: &Group) -> String {
    format!(
        "Usage: vault {} <subcommand> [options] [args]\n\n  {}.\n\nSubcommands:\n{}",
        group.path,
        group.synopsis,
        listing(&children(group.path), 4).trim_end()
    )
}

/// Vault's top-level listing: common commands, then the others.
pub fn top_help() -> String {
    let all = children("");
    let (common, other): (Vec<_>, Vec<_>) = all.iter().partition(|(n, _)| COMMON.contains(n));
    let mut common = common;
    common.sort_by_key(|(n, _)| COMMON.iter().position(|c| c == n));
    format!(
        "Usage: vault <command> [args]\n\nCommon commands:\n{}\nOther commands:\n{}",
        listing(&common, 6),
        listing(&other, 6).trim_end()
    )
}

/// `-h` on a command: its usage and every flag it takes.
pub fn command_help(command: &Command) -> String {
    let mut flags = (command.flags)();
    flags.sort_by_key(|f| f.name);
    let options: String = flags
        .iter()
        .map(|f| match f.kind {
            Kind::Bool => format!("  -{}\n", f.name),
            _ => format!("  -{}=<value>\n", f.name),
        })
        .collect();
    format!(
        "Usage: vault {} [options] [args]\n\n  {}.\n\nCommand Options:\n{}",
        command.path,
        command.synopsis,
        options.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(String::from).collect()
    }

    #[test]
    fn every_path_once_and_every_parent_a_group() {
        let mut paths: Vec<&str> = COMMANDS.iter().map(|c| c.path).collect();
        paths.extend(GROUPS.iter().map(|g| g.path));
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), paths.len(), "a path is defined twice");
        for path in paths {
            if let Some((parent, _)) = path.rsplit_once(' ') {
                assert!(
                    GROUPS.iter().any(|g| g.path == parent),
                    "{path} has no group {parent}"
                );
            }
        }
        for g in GROUPS {
            assert!(!children(g.path).is_empty(), "group {} is empty", g.path);
        }
    }

    #[test]
    fn no_command_declares_a_flag_twice() {
        for c in COMMANDS {
            let mut names: Vec<&str> = (c.flags)().iter().map(|f| f.name).collect();
            let total = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), total, "{} declares a flag twice", c.path);
        }
    }

    #[test]
    fn lookup_takes_the_longest_path() {
        let w = words("operator raft snapshot save /tmp/x");
        let Found::Command(c, rest) = find(&w) else {
            panic!("not found")
        };
        assert_eq!(c.path, "operator raft snapshot save");
        assert_eq!(rest, ["/tmp/x"]);
        let w = words("kv get -field=a secret/x");
        let Found::Command(c, rest) = find(&w) else {
            panic!("not found")
        };
        assert_eq!((c.path, rest.len()), ("kv get", 2));
    }

    #[test]
    fn unknown_words_are_never_guessed() {
        for line in [
            "operator raft frobnicate",
            "operator frobnicate",
            "operator",
            "kv metadata x",
            "print",
        ] {
            assert!(matches!(find(&words(line)), Found::Group(..)), "{line}");
        }
        let w = words("operator raft snapshot -h");
        let Found::Group(g, rest) = find(&w) else { panic!() };
        assert_eq!(g.path, "operator raft snapshot");
        assert!(asks_help(rest));
        assert!(asks_help(&words("--help")) && !asks_help(&words("frobnicate -h")));
        for line in ["frobnicate", "", "-h", "raft list-peers"] {
            assert!(matches!(find(&words(line)), Found::Unknown), "{line}");
        }
    }

    #[test]
    fn listings_use_vaults_layout() {
        let snapshot = GROUPS
            .iter()
            .find(|g| g.path == "operator raft snapshot")
            .unwrap();
        assert_eq!(
            group_help(snapshot),
            "Usage: vault operator raft snapshot <subcommand> [options] [args]\n\n  Restores and saves \
             snapshots from the Raft cluster.\n\nSubcommands:\n    restore    Installs the provided \
             snapshot, returning the cluster to the state defined in it\n    save       Saves a snapshot \
             of the current state of the Raft cluster into a file"
        );
        let top = top_help();
        assert!(top.starts_with(
            "Usage: vault <command> [args]\n\nCommon commands:\n    read        Read data and retrieves secrets\n"
        ));
        assert!(
            top.contains("\nOther commands:\n    kv            Interact with Vault's Key-Value storage\n")
        );
        let get = COMMANDS.iter().find(|c| c.path == "kv get").unwrap();
        let help = command_help(get);
        assert!(
            help.contains("\n  -field=<value>\n") && help.contains("\n  -tls-skip-verify\n"),
            "{help}"
        );
    }
}
