//! Runbooks: scripted failover drills. [`format`] reads `scenarios/drills/*.toml` into
//! checked [`Runbook`]s; [`engine`] runs one against a lab and produces a
//! [`crate::report::DrillReport`].

mod engine;
mod format;

pub use engine::Engine;
pub use format::{Action, AssertKind, CanaryAction, FaultKind, Mark, Runbook, Step, Targets, WaitKind};

use std::path::{Path, PathBuf};

/// The built-in drills by name, as shipped in `scenarios/drills/`.
const BUILT_INS: &[(&str, &str)] = &[
    (
        "leader-loss",
        include_str!("../../../scenarios/drills/leader-loss.toml"),
    ),
    (
        "partition-leader",
        include_str!("../../../scenarios/drills/partition-leader.toml"),
    ),
    (
        "two-of-five",
        include_str!("../../../scenarios/drills/two-of-five.toml"),
    ),
    (
        "dr-failover",
        include_str!("../../../scenarios/drills/dr-failover.toml"),
    ),
    (
        "dr-failover-batch",
        include_str!("../../../scenarios/drills/dr-failover-batch.toml"),
    ),
    (
        "failback",
        include_str!("../../../scenarios/drills/failback.toml"),
    ),
    (
        "snapshot-restore",
        include_str!("../../../scenarios/drills/snapshot-restore.toml"),
    ),
];

/// Why a runbook could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunbookError {
    /// Neither a built-in drill nor an existing file.
    #[error("unknown drill \"{0}\": not a built-in ({names}) and no such file", names = built_in_names().join(", "))]
    Unknown(String),
    /// The file could not be read.
    #[error("{}: cannot read runbook: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not valid TOML, or a top-level field the format does not have.
    #[error("{origin}: {message}")]
    Parse {
        /// File path or built-in name.
        origin: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A step is malformed.
    #[error("{origin}: step {number} ({name}): {message}")]
    Step {
        /// File path or built-in name.
        origin: String,
        /// 1-based step number.
        number: usize,
        /// The step's name, or `unnamed`.
        name: String,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// The names of the built-in drills.
pub fn built_in_names() -> Vec<&'static str> {
    BUILT_INS.iter().map(|(name, _)| *name).collect()
}

impl Runbook {
    /// Loads a built-in drill by name or a runbook file by path.
    pub fn load(spec: &str) -> Result<Runbook, RunbookError> {
        if let Some((name, text)) = BUILT_INS.iter().find(|(name, _)| *name == spec) {
            return Runbook::from_toml(text, name);
        }
        let path = Path::new(spec);
        if !path.exists() {
            return Err(RunbookError::Unknown(spec.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| RunbookError::Read {
            path: path.to_owned(),
            source,
        })?;
        Runbook::from_toml(&text, spec)
    }
}

/// Splits a command line into words: whitespace separates, single and double quotes group.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_parses() {
        for name in built_in_names() {
            let runbook = Runbook::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!runbook.steps.is_empty(), "{name}");
        }
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words("write kv/x value='a b' other=\"c\"").unwrap(),
            ["write", "kv/x", "value=a b", "other=c"]
        );
        assert_eq!(split_words("x ''").unwrap(), ["x", ""]);
        assert!(split_words("a 'b").is_err());
    }
}
