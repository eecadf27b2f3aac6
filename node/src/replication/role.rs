//! A cluster's DR role and its transitions as plain state: each operator request is
//! checked against the current role and answered with the next role, what to do
//! around it ([`RoleAction`]) and the warning Vault prints, or with the refusal.
//! No I/O happens here; `Core` persists the role and performs the actions
//! (`primary.rs`, `secondary.rs`).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ReplicationError, SecondaryProgress};
use crate::cluster::IssuingCa;

pub const ENABLE_PRIMARY_WARNING: &str = "This cluster is being enabled as a primary for replication. Vault will be unavailable for a brief period and will resume service shortly.";
pub const DEMOTE_WARNING: &str = "This cluster is being demoted to a replication secondary. Vault will be unavailable for a brief period and will resume service shortly.";
pub const DISABLE_PRIMARY_WARNING: &str = "This cluster is having replication disabled. Vault will be unavailable for a brief period and will resume service shortly.";
pub const PROMOTE_WARNING: &str = "This cluster is being promoted to a replication primary. Vault will be unavailable for a brief period and will resume service shortly.";
pub const ENABLE_SECONDARY_WARNING: &str = "Vault has successfully found secondary information; it may take a while to perform setup tasks. Vault will be unavailable until these tasks and initial sync complete.";

/// One secondary as its primary knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownSecondary {
    pub id: String,
    pub revoked: bool,
}

/// A DR primary's persistent state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrimaryState {
    pub cluster_id: String,
    /// host:port secondaries dial.
    pub primary_cluster_addr: String,
    /// Issues the secondaries' client certificates.
    pub replication_ca: IssuingCa,
    /// PKCS#8 key signing activation tokens.
    #[serde(with = "crate::barrier::b64")]
    pub jwt_key: Vec<u8>,
    pub secondaries: BTreeMap<String, KnownSecondary>,
}

/// A DR secondary's persistent state; `primary_cluster_addr` is empty when it has no
/// primary (a demoted primary, or after `update-primary` with an empty token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryState {
    pub cluster_id: String,
    pub secondary_id: String,
    pub primary_cluster_addr: String,
    pub primary_api_addr: String,
    /// Every cluster address of the primary, tried in turn.
    pub known_primary_cluster_addrs: Vec<String>,
    /// Trust for the primary's cluster port, and this secondary's client credentials.
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl SecondaryState {
    /// A secondary without a primary that keeps the cluster's id (a demoted primary).
    fn without_primary(cluster_id: String) -> Self {
        Self {
            cluster_id,
            secondary_id: String::new(),
            primary_cluster_addr: String::new(),
            primary_api_addr: String::new(),
            known_primary_cluster_addrs: vec![],
            ca_pem: String::new(),
            client_cert_pem: String::new(),
            client_key_pem: String::new(),
        }
    }
}

/// This cluster's DR role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum DrState {
    #[default]
    Disabled,
    Primary(PrimaryState),
    Secondary(SecondaryState),
}

/// The secrets a new primary signs and issues with, made (for the cluster id given
/// to the maker) only once a transition to the primary role was accepted.
pub struct PrimaryKeys {
    pub replication_ca: IssuingCa,
    pub jwt_key: Vec<u8>,
}

/// What `Core` does around a role change, in order, after persisting the new role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleAction {
    /// Re-install the cluster port's credentials: a primary also trusts its replication CA.
    InstallClusterTls,
    /// Forget the stream progress of every secondary.
    ForgetAllProgress,
    /// Forget the stream progress of one secondary.
    ForgetProgress(String),
    /// Set what the secondary's stream status reports.
    ResetStream {
        state: &'static str,
        connection: &'static str,
    },
    /// Re-read mounts, policies and keyring: the replicated tables are now served here.
    ReloadTables,
}

/// An accepted role change.
pub struct Transition {
    pub next: DrState,
    pub actions: Vec<RoleAction>,
    pub warning: Option<&'static str>,
}

/// What `update-primary` does.
pub enum UpdatePrimary {
    /// An empty token: forget the primary and stop streaming.
    Forget(Box<Transition>),
    /// Follow the primary the token came from (activate, copy, stream).
    Follow,
}

/// The address secondaries dial: the requested one without its scheme, else this node's.
pub fn primary_cluster_addr(requested: Option<String>, own_cluster_addr: &str) -> String {
    requested
        .map(|a| a.split_once("://").map(|(_, r)| r.to_string()).unwrap_or(a))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| own_cluster_addr.to_string())
}

/// `first`, then every other address of `rest` once.
pub fn merge_addrs(first: &str, rest: &[String]) -> Vec<String> {
    let mut out = vec![first.to_string()];
    for a in rest {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

fn valid_secondary_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn new_primary(
    cluster_id: String,
    cluster_addr: String,
    keys: impl FnOnce(&str) -> Result<PrimaryKeys, ReplicationError>,
) -> Result<Transition, ReplicationError> {
    let keys = keys(&cluster_id)?;
    Ok(Transition {
        next: DrState::Primary(PrimaryState {
            cluster_id,
            primary_cluster_addr: cluster_addr,
            replication_ca: keys.replication_ca,
            jwt_key: keys.jwt_key,
            secondaries: BTreeMap::new(),
        }),
        actions: vec![RoleAction::InstallClusterTls],
        warning: None,
    })
}

impl DrState {
    /// `disabled`, `primary` or `secondary`.
    pub fn mode(&self) -> &'static str {
        match self {
            DrState::Disabled => "disabled",
            DrState::Primary(_) => "primary",
            DrState::Secondary(_) => "secondary",
        }
    }

    /// `primary/enable`: only a cluster on raft without a DR role becomes a primary.
    pub fn enable_primary(
        &self,
        on_raft: bool,
        cluster_id: &str,
        cluster_addr: String,
        keys: impl FnOnce(&str) -> Result<PrimaryKeys, ReplicationError>,
    ) -> Result<Transition, ReplicationError> {
        if !on_raft {
            return Err(ReplicationError::RequiresRaft);
        }
        match self {
            DrState::Primary(_) => Err(ReplicationError::AlreadyPrimary),
            DrState::Secondary(_) => Err(ReplicationError::PromoteBeforeEnablingPrimary),
            DrState::Disabled => Ok(Transition {
                warning: Some(ENABLE_PRIMARY_WARNING),
                ..new_primary(cluster_id.to_string(), cluster_addr, keys)?
            }),
        }
    }

    /// `primary/secondary-token`: the primary to issue the token with, and the role
    /// that records the new secondary once the token exists.
    pub fn issue_secondary_token(&self, id: &str) -> Result<(&PrimaryState, Transition), ReplicationError> {
        let DrState::Primary(primary) = self else {
            return Err(ReplicationError::EnablePrimaryFirst);
        };
        if !valid_secondary_id(id) {
            return Err(ReplicationError::InvalidSecondaryId);
        }
        if primary.secondaries.get(id).is_some_and(|s| !s.revoked) {
            return Err(ReplicationError::SecondaryExists { id: id.to_string() });
        }
        let mut next = primary.clone();
        next.secondaries.insert(
            id.to_string(),
            KnownSecondary {
                id: id.to_string(),
                revoked: false,
            },
        );
        let transition = Transition {
            next: DrState::Primary(next),
            actions: vec![],
            warning: None,
        };
        Ok((primary, transition))
    }

    /// `primary/revoke-secondary`: the secondary's stream is refused from now on.
    pub fn revoke_secondary(&self, id: &str) -> Result<Transition, ReplicationError> {
        let DrState::Primary(primary) = self else {
            return Err(ReplicationError::NotPrimary);
        };
        let mut next = primary.clone();
        let entry = next
            .secondaries
            .get_mut(id)
            .ok_or_else(|| ReplicationError::UnknownSecondary { id: id.to_string() })?;
        entry.revoked = true;
        Ok(Transition {
            next: DrState::Primary(next),
            actions: vec![RoleAction::ForgetProgress(id.to_string())],
            warning: None,
        })
    }

    /// `primary/demote`: a secondary without a primary that keeps data and cluster id.
    /// `Core` drains to the secondaries ([`behind_after_drain`]) before applying it.
    pub fn demote(&self) -> Result<Transition, ReplicationError> {
        let DrState::Primary(primary) = self else {
            return Err(ReplicationError::NotPrimary);
        };
        Ok(Transition {
            next: DrState::Secondary(SecondaryState::without_primary(primary.cluster_id.clone())),
            actions: vec![RoleAction::InstallClusterTls],
            warning: Some(DEMOTE_WARNING),
        })
    }

    /// `primary/disable`: no role; the secondaries are cut off.
    pub fn disable_primary(&self) -> Result<Transition, ReplicationError> {
        if !matches!(self, DrState::Primary(_)) {
            return Err(ReplicationError::NotPrimary);
        }
        Ok(Transition {
            next: DrState::Disabled,
            actions: vec![RoleAction::InstallClusterTls, RoleAction::ForgetAllProgress],
            warning: Some(DISABLE_PRIMARY_WARNING),
        })
    }

    /// `secondary/enable`: only a cluster on raft without a DR role becomes a secondary
    /// (`Core` then activates the token and copies the primary).
    pub fn enable_secondary(&self, on_raft: bool) -> Result<(), ReplicationError> {
        if !on_raft {
            return Err(ReplicationError::RequiresRaft);
        }
        match self {
            DrState::Primary(_) => Err(ReplicationError::PrimaryCannotBecomeSecondary),
            DrState::Secondary(_) => Err(ReplicationError::AlreadySecondary),
            DrState::Disabled => Ok(()),
        }
    }

    /// `secondary/update-primary`: follow a new primary, or forget it (empty token).
    pub fn update_primary(&self, token_given: bool) -> Result<UpdatePrimary, ReplicationError> {
        let DrState::Secondary(current) = self else {
            return Err(ReplicationError::NotSecondary);
        };
        if token_given {
            return Ok(UpdatePrimary::Follow);
        }
        let mut next = current.clone();
        next.primary_cluster_addr.clear();
        next.known_primary_cluster_addrs.clear();
        Ok(UpdatePrimary::Forget(Box::new(Transition {
            next: DrState::Secondary(next),
            actions: vec![RoleAction::ResetStream {
                state: "idle",
                connection: "idle",
            }],
            warning: None,
        })))
    }

    /// `secondary/promote`: this cluster becomes the primary, keeping its cluster id.
    pub fn promote(
        &self,
        cluster_addr: String,
        keys: impl FnOnce(&str) -> Result<PrimaryKeys, ReplicationError>,
    ) -> Result<Transition, ReplicationError> {
        let DrState::Secondary(secondary) = self else {
            return Err(ReplicationError::NotSecondary);
        };
        let mut transition = new_primary(secondary.cluster_id.clone(), cluster_addr, keys)?;
        transition.actions.extend([
            RoleAction::ReloadTables,
            RoleAction::ResetStream {
                state: "idle",
                connection: "shutdown",
            },
        ]);
        transition.warning = Some(PROMOTE_WARNING);
        Ok(transition)
    }

    /// Whether a sync or stream request from secondary `id` is served here.
    pub fn check_stream_peer(&self, id: &str) -> Result<(), ReplicationError> {
        match self {
            DrState::Primary(p) if p.secondaries.get(id).is_some_and(|s| !s.revoked) => Ok(()),
            DrState::Primary(_) => Err(ReplicationError::StreamPeerUnknown { id: id.to_string() }),
            _ => Err(ReplicationError::StreamNotPrimary),
        }
    }

    /// A DR operation token is only asked for on a secondary, and must be given.
    pub fn check_operation_token(&self, token: &str) -> Result<(), ReplicationError> {
        if !matches!(self, DrState::Secondary(_)) {
            return Err(ReplicationError::NotSecondary);
        }
        if token.is_empty() {
            return Err(ReplicationError::OperationTokenRequired);
        }
        Ok(())
    }
}

/// A live secondary that had not acknowledged everything when a demotion's drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub id: String,
    pub acked: u64,
    pub target: u64,
}

impl Behind {
    /// The warning a demotion answers with for this secondary.
    pub fn warning(&self) -> String {
        let Behind { id, acked, target } = self;
        format!(
            "secondary {id} acknowledged WAL {acked} of {target} before the demotion; \
             writes after {acked} are not on it"
        )
    }
}

/// The secondaries that streamed since `live_since` but have not acknowledged `target`;
/// a demotion drains until this is empty (or its deadline passes).
pub fn behind_after_drain(
    progress: &HashMap<String, SecondaryProgress>,
    target: u64,
    live_since: DateTime<Utc>,
) -> Vec<Behind> {
    let mut behind: Vec<Behind> = progress
        .iter()
        .filter(|(_, p)| p.last_heartbeat > live_since && p.last_ack < target)
        .map(|(id, p)| Behind {
            id: id.clone(),
            acked: p.last_ack,
            target,
        })
        .collect();
    behind.sort_by(|a, b| a.id.cmp(&b.id));
    behind
}

#[cfg(test)]
mod tests;
