//! The sequential specification of one KV v2 key: a versioned register. Every stored write
//! bumps the version by one; a check-and-set stores only at the expected version.

use crate::history::{Input, Output};

/// The state of one key: its version (0 = never written) and the value stored there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Register {
    /// Number of stored writes.
    pub version: u64,
    /// The latest value, `None` before the first write.
    pub value: Option<u64>,
}

impl Register {
    fn stored(self, value: u64) -> Register {
        Register {
            version: self.version + 1,
            value: Some(value),
        }
    }

    /// The state after `input` takes effect here and answers `output`, or `None` when this
    /// state cannot produce that answer. `output` is `None` for an operation whose answer was
    /// lost: it is then assumed to have taken effect (not taking effect at all is the
    /// checker's other choice).
    pub fn step(self, input: Input, output: Option<Output>) -> Option<Register> {
        match (input, output) {
            (Input::Read, None) => Some(self),
            (Input::Read, Some(Output::Read { version, value })) => {
                (version == self.version && value == self.value).then_some(self)
            }
            (Input::Write { value }, None) => Some(self.stored(value)),
            (Input::Write { value }, Some(Output::Written { version })) => {
                (version == self.version + 1).then(|| self.stored(value))
            }
            (
                Input::Cas {
                    expected_version,
                    value,
                },
                None,
            ) => (expected_version == self.version).then(|| self.stored(value)),
            (
                Input::Cas {
                    expected_version,
                    value,
                },
                Some(Output::Written { version }),
            ) => {
                (expected_version == self.version && version == self.version + 1).then(|| self.stored(value))
            }
            (Input::Cas { expected_version, .. }, Some(Output::CasRejected)) => {
                (expected_version != self.version).then_some(self)
            }
            // An answer of the wrong kind for the request: no state explains it.
            (Input::Read, Some(Output::Written { .. } | Output::CasRejected))
            | (Input::Write { .. }, Some(Output::Read { .. } | Output::CasRejected))
            | (Input::Cas { .. }, Some(Output::Read { .. })) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: Register = Register {
        version: 0,
        value: None,
    };

    #[test]
    fn a_write_bumps_the_version_and_must_report_the_new_one() {
        let one = EMPTY
            .step(Input::Write { value: 7 }, Some(Output::Written { version: 1 }))
            .unwrap();
        assert_eq!(
            one,
            Register {
                version: 1,
                value: Some(7)
            }
        );
        assert_eq!(
            one.step(Input::Write { value: 8 }, Some(Output::Written { version: 1 })),
            None
        );
    }

    #[test]
    fn a_read_must_see_the_current_version_and_value() {
        let one = EMPTY.step(Input::Write { value: 7 }, None).unwrap();
        let seen = |version, value| Some(Output::Read { version, value });
        assert_eq!(one.step(Input::Read, seen(1, Some(7))), Some(one));
        assert_eq!(one.step(Input::Read, seen(0, None)), None);
        assert_eq!(one.step(Input::Read, seen(1, Some(8))), None);
    }

    #[test]
    fn check_and_set_stores_only_at_the_expected_version() {
        let cas = |expected_version| Input::Cas {
            expected_version,
            value: 9,
        };
        assert_eq!(EMPTY.step(cas(0), Some(Output::CasRejected)), None);
        assert_eq!(EMPTY.step(cas(1), Some(Output::CasRejected)), Some(EMPTY));
        assert_eq!(EMPTY.step(cas(1), None), None);
        assert_eq!(
            EMPTY.step(cas(0), Some(Output::Written { version: 1 })),
            Some(Register {
                version: 1,
                value: Some(9)
            })
        );
        assert_eq!(
            EMPTY.step(
                cas(0),
                Some(Output::Read {
                    version: 0,
                    value: None
                })
            ),
            None
        );
    }
}
