//! `imagebump tags IMAGE`: list a repository's tags, semver ones first in semver order.
//!
//! Invariant: arguments in, the tag list asked once (with a platform filter, also the
//! candidates' manifests, best first, through the engine's decision loop, as a pass asks
//! them), lines out; the sort is only presentation (the policies own tag selection).

use std::path::PathBuf;
use std::process::ExitCode;

use super::policy_flags::PolicyFlags;
use crate::policy::{Parsing, Version};
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
    /// With a policy flag: pick only a tag that has an image for this platform (os/arch[/variant];
    /// repeatable), as an image's `platform:` list in the config does. With --config, the
    /// matching registry's `platform` list applies too.
    #[arg(long, value_name = "OS/ARCH")]
    pub require_platform: Vec<Platform>,
    /// Take the registry settings (credentials, CA, insecure, platform) from this global
    /// config file's `registries:` instead of the flags above.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["username", "token_env", "docker_config", "insecure", "ca_file"])]
    pub config: Option<PathBuf>,
    /// With a policy flag, the tag the policy picks is marked with `<-` and the reason.
    #[command(flatten)]
    pub policy: PolicyFlags,
}

fn env_secret(var: &str) -> Result<Secret, String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        _ => Err(format!("environment variable {var} is not set or empty")),
    }
}

/// The image, the registry settings, and the platforms a picked tag must have images for
/// (canonical, possibly repeated).
type Resolved = (ImageRef, Vec<RegistrySettings>, Vec<String>);

fn resolve(args: &Args) -> Result<Resolved, String> {
    let image = ImageRef::parse(&args.image).map_err(|e| e.to_string())?;
    let mut platforms: Vec<String> = args
        .require_platform
        .iter()
        .map(Platform::canonical)
        .collect();
    if let Some(path) = &args.config {
        let loaded = crate::config::load(path).map_err(|e| e.to_string())?;
        let settings =
            crate::engine::settings::registries(&loaded.config).map_err(|e| e.to_string())?;
        platforms.extend(
            crate::engine::settings::registry_platforms(&image.name(), &loaded.config)
                .map_err(|e| e.to_string())?,
        );
        return Ok((image, settings, platforms));
    }
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
    Ok((image, vec![settings], platforms))
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
    let policy = if args.policy.is_set() {
        match args.policy.to_policy() {
            Ok(policy) => Some(policy),
            Err(e) => return e.exit(),
        }
    } else if !args.require_platform.is_empty() {
        eprintln!(
            "error: --require-platform filters the tag a policy picks: add a policy flag (--semver, --alphabetical or --numerical)"
        );
        return ExitCode::from(EXIT_USAGE);
    } else {
        None
    };
    let (image, settings, platforms) = match resolve(&args) {
        Ok(resolved) => resolved,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let client = match Client::new(settings, ClientOptions::default()) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match super::runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(client.list_tags(&image)) {
        Ok(tags) => {
            let pick = policy.and_then(|mut policy| {
                // Each once, in the order given (the flags', then the registry's).
                let mut seen = std::collections::HashSet::new();
                policy.platforms = platforms;
                policy.platforms.retain(|p| seen.insert(p.clone()));
                let now = time::OffsetDateTime::now_utc();
                // The loop a pass runs: a platform filter asks the registry for the
                // candidates' manifests, best first.
                let decided = runtime.block_on(crate::engine::decide_tags(
                    &client, &image, &policy, &tags, now,
                ));
                match decided {
                    Ok(decision) => Some(decision),
                    Err(error) => {
                        eprintln!("no pick: {error}");
                        None
                    }
                }
            });
            let mut out = String::new();
            for tag in sort_tags(tags) {
                out.push_str(&tag);
                if let Some(decision) = pick.as_ref().filter(|d| d.tag == tag) {
                    out.push_str(&format!("    <- {}", decision.reason));
                }
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

/// Semver tags first, in ascending semver order; the others after, alphabetically.
/// (Strict parsing: `X.Y.Z` with an optional `v`, as the policy module reads Flux tags.)
pub(crate) fn sort_tags(tags: Vec<String>) -> Vec<String> {
    let mut versions: Vec<(Version, String)> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for tag in tags {
        match Version::parse(&tag, Parsing::Strict) {
            Some(v) => versions.push((v, tag)),
            None => others.push(tag),
        }
    }
    versions.sort_by(|(x, a), (y, b)| x.precedence(y).then_with(|| a.cmp(b)));
    others.sort();
    versions
        .into_iter()
        .map(|(_, tag)| tag)
        .chain(others)
        .collect()
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
