//! Configuration errors: every problem found while loading carries the key it concerns
//! (`trunk[1].address`, `route[0].to`, `sip.listen`, or the env var that set it) and a typed kind.
//! Loading collects all of them into [`ConfigErrors`] instead of stopping at the first.

use std::fmt;
use std::path::PathBuf;

/// What is wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read {}: {}", path.display(), io_words(*kind))]
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
    /// A key or section this version does not know (often a typo), with the known key that
    /// is spelled closest, if one is close.
    #[error("unknown key{}", did_you_mean.as_ref().map(|k| format!("; did you mean `{k}`?")).unwrap_or_default())]
    UnknownKey {
        /// The closest known key at the same place.
        did_you_mean: Option<String>,
    },
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
    /// A route whose `match` pattern an earlier route already has: it would never be chosen.
    #[error("route `{pattern}` is already matched by {first}: this route would never be chosen")]
    DuplicateRoute {
        /// The pattern as normalised (`0044*`, `*`, `123`).
        pattern: String,
        /// Key of the earlier route's `match`.
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

/// What the OS said about a file, in words (`entity not found` is Rust's, not a person's).
fn io_words(kind: std::io::ErrorKind) -> String {
    use std::io::ErrorKind as K;
    match kind {
        K::NotFound => "no such file".into(),
        K::PermissionDenied => "permission denied".into(),
        K::IsADirectory => "it is a directory".into(),
        K::InvalidData => "it is not UTF-8 text".into(),
        other => other.to_string(),
    }
}

/// A place in the configuration file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line.
    pub line: usize,
    /// Column (characters).
    pub column: usize,
}

impl Position {
    /// The position of byte offset `at` in `text`.
    pub(crate) fn of(text: &str, at: usize) -> Position {
        let (line, column) = crate::spans::line_col(text, at);
        Position { line, column }
    }
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
    /// Where in the file the key (or, for a missing key, its table) is written; `None` for
    /// a value from the environment or a file that could not be read.
    pub position: Option<Position>,
}

impl ConfigError {
    /// An error at `key`.
    pub fn new(key: impl Into<String>, kind: ConfigErrorKind) -> Self {
        Self {
            key: key.into(),
            kind,
            position: None,
        }
    }

    /// The error as `check-config` prints it: `FILE:LINE:COLUMN: key: what` (the form editors
    /// and compilers use), `FILE: key: what` without a position, the read error alone for a
    /// file that cannot be read.
    pub fn render(&self, file: &str) -> String {
        match (&self.kind, self.position) {
            (ConfigErrorKind::Io { .. }, _) => self.kind.to_string(),
            (ConfigErrorKind::Syntax { message, .. }, Some(p)) => {
                format!(
                    "{file}:{}:{}: TOML syntax error: {message}",
                    p.line, p.column
                )
            }
            (_, Some(p)) => format!("{file}:{}:{}: {self}", p.line, p.column),
            (_, None) => format!("{file}: {self}"),
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

impl ConfigErrors {
    /// Every error, one line each, as [`ConfigError::render`] prints it, in file order
    /// (errors without a position, from the environment, last).
    pub fn render(&self, file: &str) -> String {
        let mut errors: Vec<&ConfigError> = self.0.iter().collect();
        errors.sort_by_key(|e| {
            e.position
                .map_or((usize::MAX, usize::MAX), |p| (p.line, p.column))
        });
        errors
            .iter()
            .map(|e| e.render(file))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

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
