//! `imagebump tags IMAGE`: list a repository's tags, semver ones first in semver order.
//!
//! Invariant: arguments in, the registry client called once, lines out; the sort is only
//! presentation (the policies own tag selection).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::reference::ImageRef;
use crate::registry::{
    Client, ClientOptions, Platform, RegistryAuth, RegistryError, RegistrySettings, Secret,
};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image whose tags to list (`nginx`, `ghcr.io/acme/app`, `localhost:5000/app`).
    pub image: String,
    /// Talk plain HTTP to the registry (local registries only).
    #[arg(long)]
    pub insecure: bool,
    /// Username for the registry (basic auth, or the token service of a bearer registry).
    #[arg(long, requires = "password_env")]
    pub username: Option<String>,
    /// Name of the environment variable holding the password.
    #[arg(long, value_name = "VAR", requires = "username")]
    pub password_env: Option<String>,
    /// Name of the environment variable holding a bearer token for the registry.
    #[arg(long, value_name = "VAR", conflicts_with = "username")]
    pub token_env: Option<String>,
    /// A docker config.json to take the registry's credentials from.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["username", "token_env"])]
    pub docker_config: Option<PathBuf>,
    /// A PEM file of extra CA certificates for the registry.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Platform picked in multi-arch images (os/arch[/variant]).
    #[arg(long, default_value = "linux/amd64")]
    pub platform: Platform,
}

fn env_secret(var: &str) -> Result<Secret, String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        _ => Err(format!("environment variable {var} is not set or empty")),
    }
}

fn resolve(args: &Args) -> Result<(ImageRef, RegistrySettings), String> {
    let image = ImageRef::parse(&args.image).map_err(|e| e.to_string())?;
    let auth = if let (Some(username), Some(var)) = (&args.username, &args.password_env) {
        RegistryAuth::Basic {
            username: username.clone(),
            password: env_secret(var)?,
        }
    } else if let Some(var) = &args.token_env {
        RegistryAuth::Token(env_secret(var)?)
    } else if let Some(path) = &args.docker_config {
        RegistryAuth::DockerConfig(path.clone())
    } else {
        RegistryAuth::Anonymous
    };
    let mut settings = RegistrySettings::new(image.registry.clone());
    settings.auth = auth;
    settings.insecure = args.insecure;
    settings.ca_file = args.ca_file.clone();
    settings.platform = args.platform.clone();
    Ok((image, settings))
}

/// Log to stderr when `IMAGEBUMP_LOG` is set (an `EnvFilter`, e.g. `debug`); a subscriber
/// installed earlier by the binary wins.
fn init_logging() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("IMAGEBUMP_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    }
}

pub fn run(args: Args) -> ExitCode {
    init_logging();
    let (image, settings) = match resolve(&args) {
        Ok(resolved) => resolved,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let client = match Client::new(vec![settings], ClientOptions::default()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(client.list_tags(&image)) {
        Ok(tags) => {
            let mut out = String::new();
            for tag in sort_tags(tags) {
                out.push_str(&tag);
                out.push('\n');
            }
            print!("{out}");
            ExitCode::from(EXIT_OK)
        }
        Err(e @ RegistryError::Settings { .. }) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// A strict semantic version (`[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]`), for display order only.
#[derive(Debug, PartialEq, Eq)]
struct Version<'a> {
    core: [u64; 3],
    pre: Vec<&'a str>,
}

fn numeric(part: &str) -> Option<u64> {
    if part.is_empty()
        || !part.bytes().all(|b| b.is_ascii_digit())
        || (part.len() > 1 && part.starts_with('0'))
    {
        return None;
    }
    part.parse().ok()
}

fn parse_version(tag: &str) -> Option<Version<'_>> {
    let text = tag.strip_prefix('v').unwrap_or(tag);
    let text = text.split_once('+').map_or(text, |(v, _)| v);
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (text, None),
    };
    let mut parts = core.split('.');
    let major = numeric(parts.next()?)?;
    let minor = numeric(parts.next()?)?;
    let patch = numeric(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    let pre: Vec<&str> = match pre {
        Some(pre) => {
            let ids: Vec<&str> = pre.split('.').collect();
            if ids.iter().any(|id| id.is_empty()) {
                return None;
            }
            ids
        }
        None => Vec::new(),
    };
    Some(Version {
        core: [major, minor, patch],
        pre,
    })
}

fn compare_versions(a: &Version<'_>, b: &Version<'_>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    a.core
        .cmp(&b.core)
        .then_with(|| match (a.pre.is_empty(), b.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (x, y) in a.pre.iter().zip(&b.pre) {
                    let order = match (numeric(x), numeric(y)) {
                        (Some(x), Some(y)) => x.cmp(&y),
                        (Some(_), None) => Ordering::Less,
                        (None, Some(_)) => Ordering::Greater,
                        (None, None) => x.cmp(y),
                    };
                    if order != Ordering::Equal {
                        return order;
                    }
                }
                a.pre.len().cmp(&b.pre.len())
            }
        })
}

/// Semver tags first, in ascending semver order; the others after, alphabetically.
pub(crate) fn sort_tags(tags: Vec<String>) -> Vec<String> {
    let (mut versions, mut others): (Vec<String>, Vec<String>) =
        tags.into_iter().partition(|t| parse_version(t).is_some());
    versions.sort_by(|a, b| match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => compare_versions(&x, &y).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    });
    others.sort();
    versions.extend(others);
    versions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_first_then_alphabetical() {
        let tags = [
            "latest",
            "1.10.0",
            "v1.2.0",
            "1.2.0-rc.1",
            "1.2.0-rc.10",
            "1.2.0-rc.2",
            "1.2.0-alpha",
            "1.2",
            "sha-abc",
            "01.2.3",
            "1.2.0+build",
            "0.9.9",
        ];
        let sorted = sort_tags(tags.iter().map(|t| t.to_string()).collect());
        assert_eq!(
            sorted,
            [
                "0.9.9",
                "1.2.0-alpha",
                "1.2.0-rc.1",
                "1.2.0-rc.2",
                "1.2.0-rc.10",
                "1.2.0+build",
                "v1.2.0",
                "1.10.0",
                "01.2.3",
                "1.2",
                "latest",
                "sha-abc",
            ]
        );
    }
}
