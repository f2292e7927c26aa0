//! Turning the configuration into each stage's own settings, resolving secret references.
//!
//! This is the one place where `*_env` and `*_file` references are read. A missing variable or
//! file is an error naming the reference (never its value).
//!
//! Invariant: a secret's value goes only into the stage's secret type
//! ([`crate::secret::Secret`]); errors name the reference, never the value.

use std::path::Path;

use crate::config::{self, App, Config, ImageConfig, PolicyConfig, RegistryConfig, TargetConfig};
use crate::edit::{self, Target};
use crate::forge::{self, ForgeSettings};
use crate::git::{self, Author, Credential, CredentialRule, GitSettings};
use crate::policy::{Filter, Kind, Order, Parsing, Policy, Range};
use crate::registry::{self, Platform, RegistryAuth, RegistrySettings};

pub use crate::report::SettingsError;

fn env(var: &str, what: impl Into<String>) -> Result<String, SettingsError> {
    env_is_set(var).ok_or_else(|| SettingsError::MissingEnv {
        var: var.to_string(),
        what: what.into(),
    })
}

/// The variable's value, if set and not empty (what every `*_env` reference needs).
pub(crate) fn env_is_set(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|value| !value.is_empty())
}

fn file(path: &Path, what: impl Into<String>) -> Result<String, SettingsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| SettingsError::File {
            path: path.display().to_string(),
            what: what.into(),
            reason: e.to_string(),
        })
}

/// Registry settings for the client, one per `registries:` entry.
pub fn registries(config: &Config) -> Result<Vec<RegistrySettings>, SettingsError> {
    config
        .global
        .registries
        .iter()
        .map(registry_settings)
        .collect()
}

fn registry_settings(r: &config::RegistryConfig) -> Result<RegistrySettings, SettingsError> {
    let what = |key: &str| format!("registries[{}].{key}", r.prefix);
    let mut settings = RegistrySettings::new(r.prefix.clone());
    settings.auth = if let Some(path) = &r.docker_config {
        RegistryAuth::DockerConfig(path.clone())
    } else if let (Some(username), Some(var)) = (&r.username, &r.password_env) {
        RegistryAuth::Basic {
            username: username.clone(),
            password: registry::Secret::new(env(var, what("password_env"))?),
        }
    } else if let Some(var) = &r.token_env {
        RegistryAuth::Token(registry::Secret::new(env(var, what("token_env"))?))
    } else {
        RegistryAuth::Anonymous
    };
    settings.requests_per_second = r.requests_per_second;
    if let Some(n) = r.max_concurrency {
        settings.max_concurrency = n as usize;
    }
    settings.insecure = r.insecure;
    settings.ca_file = r.ca_file.clone();
    let caps = r.tag_list;
    if let Some(n) = caps.max_pages {
        settings.tag_list.max_pages = n as usize;
    }
    if let Some(n) = caps.max_tags {
        settings.tag_list.max_tags = n as usize;
    }
    if let Some(n) = caps.max_mib {
        settings.tag_list.max_bytes = (n as usize).saturating_mul(1024 * 1024);
    }
    if let Some(timeout) = caps.timeout {
        settings.tag_list.timeout = timeout;
    }
    if let Some(p) = &r.platform {
        settings.platform = p.parse::<Platform>().map_err(|e| SettingsError::Invalid {
            what: what("platform"),
            reason: e.to_string(),
        })?;
    }
    Ok(settings)
}

/// The secret of one webhook receiver, from its `secret_env`; one too short to authenticate
/// anything is refused (the message says its length, never the value).
pub fn webhook_secret(r: &config::ReceiverConfig) -> Result<crate::secret::Secret, SettingsError> {
    let what = format!("webhook receiver `{}`", r.kind);
    let secret = env(&r.secret_env, what.clone())?;
    if let Some(why) = crate::secret::weak_secret(&secret) {
        return Err(SettingsError::Invalid {
            what: format!("environment variable `{}` ({what})", r.secret_env),
            reason: format!("too short to be a webhook secret: {why}"),
        });
    }
    Ok(crate::secret::Secret::new(secret))
}

/// Git settings: author, credentials and the commit signing key.
pub fn git(config: &Config) -> Result<GitSettings, SettingsError> {
    let g = &config.global.git;
    let mut credentials = Vec::new();
    for c in &g.credentials {
        let what = |key: &str| format!("git.credentials[{}].{key}", c.url);
        let credential = if let Some(key_file) = &c.ssh_key_file {
            Credential::SshKey {
                key_file: key_file.clone(),
                passphrase: match &c.ssh_passphrase_env {
                    Some(var) => Some(git::Secret::new(env(var, what("ssh_passphrase_env"))?)),
                    None => None,
                },
                known_hosts_file: c.known_hosts_file.clone().unwrap_or_default(),
            }
        } else {
            let password = match (&c.password_env, &c.password_file) {
                (Some(var), _) => env(var, what("password_env"))?,
                (None, Some(path)) => file(path, what("password_file"))?,
                (None, None) => {
                    return Err(SettingsError::Invalid {
                        what: what("url"),
                        reason: "no password_env, password_file or ssh_key_file".into(),
                    });
                }
            };
            Credential::UserPass {
                username: c.username.clone().unwrap_or_else(|| "git".into()),
                password: git::Secret::new(password),
            }
        };
        credentials.push(CredentialRule {
            url_prefix: c.url.clone(),
            credential,
        });
    }
    Ok(GitSettings {
        author: Author {
            name: g.author_name.clone(),
            email: g.author_email.clone(),
        },
        credentials,
        accept_unknown_hosts: false,
        signing_key: match &g.signing_key_file {
            Some(path) => Some(std::sync::Arc::new(
                git::SigningKey::from_file(path).map_err(|reason| SettingsError::Invalid {
                    what: "git.signing_key_file".into(),
                    reason,
                })?,
            )),
            None => None,
        },
    })
}

/// The policy of one image. Its platform filter is the image's `platform` (a string or a
/// list), else that of the registry entry serving it (longest prefix), else none.
pub fn policy(image: &ImageConfig, registries: &[RegistryConfig]) -> Result<Policy, SettingsError> {
    let invalid = |reason: String| SettingsError::Invalid {
        what: format!("image `{}` policy", image.name),
        reason,
    };
    let kind = match &image.policy {
        PolicyConfig::Semver { range, strict } => Kind::Semver {
            range: Range::parse(range).map_err(|e| invalid(e.to_string()))?,
            parsing: if *strict {
                Parsing::Strict
            } else {
                Parsing::Loose
            },
        },
        PolicyConfig::Alphabetical { descending } => Kind::Alphabetical(order(*descending)),
        PolicyConfig::Numerical { descending } => Kind::Numerical(order(*descending)),
        PolicyConfig::NewestBuild => Kind::NewestBuild,
        PolicyConfig::Digest { tag } => Kind::Digest { tag: tag.clone() },
    };
    let filter = Filter::new(
        image.include.as_deref(),
        &image.exclude,
        image.extract.as_deref(),
    )
    .map_err(|e| invalid(e.to_string()))?;
    let mut policy = Policy::new(kind);
    policy.filter = filter;
    policy.allow_downgrade = image.allow_downgrade;
    policy.min_age = image
        .min_age
        .map(|d| time::Duration::try_from(d).unwrap_or(time::Duration::MAX));
    policy.pin_digest = image.pin_digest;
    let platforms = if image.platforms.is_empty() {
        registry_of(&image.image.name(), registries)
            .map(|r| r.platforms.clone())
            .unwrap_or_default()
    } else {
        image.platforms.clone()
    };
    policy.platforms = canonical_platforms(&platforms).map_err(invalid)?;
    Ok(policy)
}

/// `platforms` (`os/arch[/variant]`) canonical (`linux/arm64` is `linux/arm64/v8`), each once,
/// in their order; `Err` says why one does not parse.
fn canonical_platforms(platforms: &[String]) -> Result<Vec<String>, String> {
    let mut canonical: Vec<String> = Vec::new();
    for p in platforms {
        let parsed = p
            .parse::<Platform>()
            .map_err(|e| e.to_string())?
            .canonical();
        if !canonical.contains(&parsed) {
            canonical.push(parsed);
        }
    }
    Ok(canonical)
}

/// The platforms the registry entry serving `name` (`host/repository`) requires of every tag a
/// policy picks (its `platform` list), canonical (`linux/arm64` is `linux/arm64/v8`); empty
/// without such an entry.
pub fn registry_platforms(name: &str, config: &Config) -> Result<Vec<String>, SettingsError> {
    let Some(registry) = registry_of(name, &config.global.registries) else {
        return Ok(Vec::new());
    };
    canonical_platforms(&registry.platforms).map_err(|reason| SettingsError::Invalid {
        what: format!("registries[{}].platform", registry.prefix),
        reason,
    })
}

/// The registry entry whose `prefix` serves `name` (`host/repository`), the longest first.
fn registry_of<'a>(name: &str, registries: &'a [RegistryConfig]) -> Option<&'a RegistryConfig> {
    registries
        .iter()
        .filter(|r| {
            let prefix = r
                .prefix
                .trim()
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            !prefix.is_empty()
                && (name == prefix
                    || (name.starts_with(prefix) && name[prefix.len()..].starts_with('/')))
        })
        .max_by_key(|r| r.prefix.len())
}

fn order(descending: bool) -> Order {
    if descending { Order::Desc } else { Order::Asc }
}

/// The editor target of one configured target.
pub fn target(t: &TargetConfig) -> Result<Target, SettingsError> {
    if t.names_directory() && t.path.is_some() {
        return Err(SettingsError::Invalid {
            what: format!("target {}", t.file),
            reason: "a directory target has no Helm values `path`".into(),
        });
    }
    if let Some(path) = &t.path {
        let path = edit::parse_value_path(path).map_err(|e| SettingsError::Invalid {
            what: format!("target {} path", t.file),
            reason: e.to_string(),
        })?;
        return Ok(Target::Helm {
            path,
            field: t.field.unwrap_or_default(),
        });
    }
    if let Some(policy) = &t.marker {
        return Ok(Target::Marker {
            policy: policy.clone(),
        });
    }
    Ok(Target::Auto)
}

/// Forge settings of a pull-request app.
pub fn forge(app: &App) -> Result<ForgeSettings, SettingsError> {
    let invalid = |reason: String| SettingsError::Invalid {
        what: format!("app `{}` pull_request", app.name),
        reason,
    };
    let pr = app
        .pull_request
        .as_ref()
        .ok_or_else(|| invalid("missing".into()))?;
    let kind = pr.forge;
    let token = env(
        &pr.token_env,
        format!("app `{}` pull_request.token_env", app.name),
    )?;
    // `api_url` and `project` default to what the repo URL implies (the public API for
    // github.com and gitlab.com, else the forge's API path on the repo's own host), as
    // docs/pull-requests.md says: a self-hosted forge's token never goes to a public instance.
    let mut settings = ForgeSettings::for_repo(
        kind,
        &app.repo,
        pr.api_url.as_deref(),
        pr.project.as_deref(),
        forge::Secret::new(token),
        &pr.token_env,
    )
    .map_err(|e| invalid(e.to_string()))?;
    settings.labels = pr.labels.clone();
    settings.reviewers = pr.reviewers.clone();
    settings.assignees = pr.assignees.clone();
    settings.draft = pr.draft;
    Ok(settings)
}

/// `git.maintenance` as the clone cache takes it (a limit of 0 is off: never reached).
pub fn maintenance(config: &config::MaintenanceConfig) -> git::Maintenance {
    let limit = |n: u32| match n {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    git::Maintenance {
        max_packs: limit(config.max_packs),
        max_loose_objects: limit(config.max_loose_objects),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn git_maintenance_reaches_the_cache_as_limits_and_0_is_off() {
        let limits = |max_packs, max_loose_objects| {
            maintenance(&config::MaintenanceConfig {
                max_packs,
                max_loose_objects,
            })
        };
        assert_eq!(
            maintenance(&config::MaintenanceConfig::default()),
            git::Maintenance::DEFAULT
        );
        assert_eq!(
            limits(3, 0),
            git::Maintenance {
                max_packs: 3,
                max_loose_objects: usize::MAX,
            }
        );
        assert_eq!(limits(0, 0), git::Maintenance::OFF);
        // The config refuses a `max_packs` at which the cache would clone again instead.
        assert_eq!(config::REBUILD_PAST_PACKS as usize, git::MAX_PACKS);
    }

    fn pr_app(forge: &str, repo: &str) -> App {
        let text = format!(
            "name: shop\nrepo: {repo}\nwrite: pull-request\npull_request: {{forge: {forge}, token_env: PATH}}\nimages:\n  - image: nginx\n    policy: {{semver: '^1'}}\n    targets: [{{file: k8s/deploy.yaml}}]\n"
        );
        let mut diags = config::read::Diagnostics::new(Path::new("apps/shop.yaml"));
        let app = config::parse_app(Path::new("apps/shop.yaml"), &text, &mut diags);
        assert!(diags.list.is_empty(), "{:?}", diags.list);
        app.unwrap()
    }

    /// Regression: a self-hosted forge's token went to the public instance (api.github.com,
    /// gitlab.com) because `api_url` was not derived from the repo's host as documented.
    #[test]
    fn the_api_url_is_derived_from_the_repo_host() {
        for (kind, repo, api) in [
            (
                "gitlab",
                "https://gitlab.acme.internal/group/sub/shop.git",
                "https://gitlab.acme.internal/api/v4",
            ),
            (
                "github",
                "https://ghe.acme.internal/acme/shop.git",
                "https://ghe.acme.internal/api/v3",
            ),
            (
                "gitea",
                "git@git.acme.internal:acme/shop.git",
                "https://git.acme.internal/api/v1",
            ),
            (
                "github",
                "https://github.com/acme/shop.git",
                "https://api.github.com",
            ),
            (
                "gitlab",
                "https://gitlab.com/acme/shop.git",
                "https://gitlab.com/api/v4",
            ),
        ] {
            let settings = super::forge(&pr_app(kind, repo)).unwrap();
            assert_eq!(settings.api_url, api, "{repo}");
        }
    }
}
