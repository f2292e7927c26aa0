//! Log setup: tracing-subscriber with an env filter, as text or JSON lines on stderr.
//!
//! Invariant: configured once per process, before anything logs. Design choice: the level comes
//! from `--log-level` when given, else `RUST_LOG`, else `info`, and both accept full
//! env-filter directives (`info,imagebump::daemon=debug`). Text lines carry colour codes only
//! when stderr is a terminal and `NO_COLOR` is unset or empty (<https://no-color.org>), so log
//! files and collectors get plain text.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// The log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(LoggingError::Format(other.to_string())),
        }
    }
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("unknown log format {0:?}: use text or json")]
    Format(String),
    #[error(
        "invalid log level {directive:?}: {reason} (use error, warn, info, debug, trace or a RUST_LOG filter)"
    )]
    Level { directive: String, reason: String },
    #[error("logging was already set up in this process")]
    AlreadySet,
}

/// Installs the global subscriber. `level` (from `--log-level`) wins over `RUST_LOG`.
pub fn init_logging(format: LogFormat, level: Option<&str>) -> Result<(), LoggingError> {
    let directive = match level {
        Some(level) => level.to_string(),
        None => std::env::var("RUST_LOG")
            .ok()
            .filter(|value| !value.trim().is_empty())
            .unwrap_or_else(|| "info".to_string()),
    };
    let filter = EnvFilter::try_new(&directive).map_err(|error| LoggingError::Level {
        directive: directive.clone(),
        reason: error.to_string(),
    })?;
    let ansi = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|_| LoggingError::AlreadySet)
}

/// Colour codes only on a terminal, and never when `NO_COLOR` is set to a non-empty value.
fn use_colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsString::new())));
        assert!(!use_colour(true, Some(OsString::from("1"))));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<LogFormat>().ok(), Some(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>().ok(), Some(LogFormat::Text));
        assert!(matches!(
            "yaml".parse::<LogFormat>(),
            Err(LoggingError::Format(_))
        ));
    }
}
