//! Why an edit was refused: one error type for the whole editor, positions in the original
//! file.
//!
//! Invariant: every error that points into the file carries the 1-based line and column of
//! the original text ([`EditError::position`]); none carries the file's content beyond the
//! offending value.

/// Why an edit was refused. Positions are 1-based line:column of the original file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file is not UTF-8 text")]
    NotUtf8,
    #[error("{line}:{col}: not valid YAML: {message}")]
    Parse {
        line: usize,
        col: usize,
        message: String,
    },
    #[error("the file is {size} bytes; the editor accepts at most {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("{line}:{col}: nesting deeper than {limit} levels")]
    TooDeep {
        line: usize,
        col: usize,
        limit: usize,
    },
    #[error("invalid path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("path {path} not found: {reason}")]
    PathNotFound { path: String, reason: String },
    #[error("{line}:{col}: {what} is a {found}, expected a scalar")]
    NotScalar {
        line: usize,
        col: usize,
        what: String,
        found: &'static str,
    },
    #[error("{line}:{col}: {what} is ambiguous: {reason}")]
    Ambiguous {
        line: usize,
        col: usize,
        what: String,
        reason: String,
    },
    #[error("invalid value {value:?}: {reason}")]
    InvalidValue { value: String, reason: String },
    #[error("{line}:{col}: cannot edit this value: {reason}")]
    Unsupported {
        line: usize,
        col: usize,
        reason: String,
    },
    #[error("{line}:{col}: edit refused by the safety check: {reason}")]
    Verify {
        line: usize,
        col: usize,
        reason: String,
    },
}

impl EditError {
    /// Line and column the error points at, when it has one.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            EditError::Parse { line, col, .. }
            | EditError::TooDeep { line, col, .. }
            | EditError::NotScalar { line, col, .. }
            | EditError::Ambiguous { line, col, .. }
            | EditError::Unsupported { line, col, .. }
            | EditError::Verify { line, col, .. } => Some((*line, *col)),
            _ => None,
        }
    }
}
