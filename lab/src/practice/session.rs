//! `.lab/practice.json`: which exercise runs, since when, how many hints were shown.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::provider::ProviderChoice;

use super::template::Context;
use super::PracticeError;
use crate::state::{LabHome, State};

/// The running exercise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Built-in name or file path, as given to `start`.
    pub exercise: String,
    /// API port of the first node, so `reset` reuses the ports.
    pub base_port: u16,
    /// When the task was shown (seconds since the epoch).
    pub started_unix: u64,
    /// Hints shown so far.
    pub hints_shown: usize,
    /// Values `start` recorded for placeholders.
    pub vars: BTreeMap<String, String>,
    /// Where the lab runs, so `reset` brings it back the same way.
    #[serde(default)]
    pub provider: ProviderChoice,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn path(home: &LabHome) -> PathBuf {
    home.root().join("practice.json")
}

impl Session {
    /// A session starting now.
    pub fn new(
        exercise: &str,
        base_port: u16,
        vars: BTreeMap<String, String>,
        provider: ProviderChoice,
    ) -> Session {
        Session {
            exercise: exercise.to_owned(),
            base_port,
            started_unix: now(),
            hints_shown: 0,
            vars,
            provider,
        }
    }

    /// Time since the task was shown.
    pub fn elapsed(&self) -> Duration {
        Duration::from_secs(now().saturating_sub(self.started_unix))
    }

    /// Reads the session, failing with "no exercise started" when absent.
    pub fn load(home: &LabHome) -> Result<Session, PracticeError> {
        let path = path(home);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PracticeError::Invalid {
                origin: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PracticeError::NoSession {
                home: home.root().to_owned(),
            }),
            Err(source) => Err(PracticeError::Io { path, source }),
        }
    }

    /// The placeholder context of this session against the running lab.
    pub fn context<'a>(&'a self, home: &'a LabHome, state: &'a State) -> Context<'a> {
        Context {
            home,
            state,
            vars: &self.vars,
        }
    }

    /// Writes the session.
    pub fn save(&self, home: &LabHome) -> Result<(), PracticeError> {
        let path = path(home);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| PracticeError::Invalid {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, bytes).map_err(|source| PracticeError::Io { path, source })
    }
}
