//! Configuration errors: every problem found while loading carries the key it concerns
//! (`trunk[1].address`, `route[0].to`, `sip.listen`, or the env var that set it) and a typed kind.
//! Loading collects all of them into [`ConfigErrors`] instead of stopping at the first.

use std::fmt;
use std::path::PathBuf;

/// What is wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read {}: {kind}", path.display())]
    Io {
        /// File that was read.
        path: PathBuf,
        /// What the OS said.
        kind: std::io::ErrorKind,
    },
    /// The file is not valid TOML.
    #[error("TOML syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The TOML parser's message.
        message: String,
    },
    /// A key or section this version does not know (often a typo).
    #[error("unknown key")]
    UnknownKey,
    /// A required key is absent.
    #[error("missing required key")]
    Missing,
    /// The value has the wrong type or shape.
    #[error("invalid value `{value}`: expected {expected}")]
    Invalid {
        /// The value as written.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A number outside its allowed range.
    #[error("{value} is out of range {min}..={max}")]
    OutOfRange {
        /// The value as written.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// A name that must be unique is used twice.
    #[error("duplicate name `{name}` (first used at {first})")]
    Duplicate {
        /// The repeated name.
        name: String,
        /// Key of the first use.
        first: String,
    },
    /// A route names a trunk that is not configured.
    #[error("unknown trunk `{name}`")]
    UnknownTrunk {
        /// The trunk name.
        name: String,
    },
    /// A route (`to` or `fork`) names an `[[app]]` that is not configured.
    #[error("unknown app `{name}`")]
    UnknownApp {
        /// The app name.
        name: String,
    },
    /// A route target kind this version cannot route to yet (`queue`, `ivr`).
    #[error(
        "unsupported target `{target}` (only trunk:NAME, fax, app:NAME and device:ID for now)"
    )]
    UnsupportedTarget {
        /// The target as written.
        target: String,
    },
    /// A host name did not resolve to any address.
    #[error("cannot resolve host `{host}`")]
    Unresolvable {
        /// The host as written.
        host: String,
    },
    /// This key is set but needs another key that is absent.
    #[error("requires `{needs}` to be set")]
    Requires {
        /// The key that is needed.
        needs: &'static str,
    },
}

/// One problem at one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {kind}")]
pub struct ConfigError {
    /// Where: `sip.listen`, `trunk[1].address`, `route[0].to`, or an env var name such as
    /// `SWITCHBOARD_SIP_T1_MS` when the value came from the environment.
    pub key: String,
    /// What.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// An error at `key`.
    pub fn new(key: impl Into<String>, kind: ConfigErrorKind) -> Self {
        Self {
            key: key.into(),
            kind,
        }
    }
}

/// All problems found while loading; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The error at `key`, if any (handy in tests and tools).
    pub fn at(&self, key: &str) -> Option<&ConfigErrorKind> {
        self.0.iter().find(|e| e.key == key).map(|e| &e.kind)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_line_per_error() {
        let errs = ConfigErrors(vec![
            ConfigError::new("sip.listen", ConfigErrorKind::Missing),
            ConfigError::new(
                "route[0].to",
                ConfigErrorKind::UnknownTrunk { name: "x".into() },
            ),
            ConfigError::new(
                "route[1].fork",
                ConfigErrorKind::UnknownApp { name: "bot".into() },
            ),
        ]);
        assert_eq!(
            errs.to_string(),
            "sip.listen: missing required key\nroute[0].to: unknown trunk `x`\n\
             route[1].fork: unknown app `bot`"
        );
        assert_eq!(errs.at("sip.listen"), Some(&ConfigErrorKind::Missing));
    }
}
