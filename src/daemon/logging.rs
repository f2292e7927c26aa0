//! Log setup: tracing-subscriber with an env filter, as text or JSON lines on stderr.
//!
//! Invariant: configured once per process, before anything logs. Design choice: the level comes
//! from `--log-level` when given, else `RUST_LOG`, else `info`, and both accept full
//! env-filter directives (`info,imagebump::daemon=debug`).

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|_| LoggingError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use super::*;

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
