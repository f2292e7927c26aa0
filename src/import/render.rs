//! The imported configuration as plain data, and its YAML text. Every string is written
//! double-quoted (JSON escapes are valid YAML), so no value can change meaning.

/// `imagebump.yaml`.
#[derive(Debug, Clone, Default)]
pub struct GlobalOut {
    pub author: Option<(String, String)>,
    /// `git.credentials[]`, each one already a flow mapping's inner text.
    pub credentials: Vec<Vec<(String, String)>>,
    pub registries: Vec<RegistryOut>,
    /// Comments put at the top (where to mount secrets).
    pub comments: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOut {
    pub prefix: String,
    pub insecure: bool,
    pub docker_config: Option<String>,
    pub ca_file: Option<String>,
    pub platforms: Vec<String>,
    /// `requests_per_second`, as written by the source.
    pub requests_per_second: Option<String>,
}

/// One app file.
#[derive(Debug, Clone, Default)]
pub struct AppOut {
    /// The source object, for the file's first comment.
    pub source: String,
    pub name: String,
    pub repo: String,
    pub branch: String,
    pub interval: Option<String>,
    pub commit_message: Option<String>,
    pub pull_request: Option<PullRequestOut>,
    pub images: Vec<ImageOut>,
}

#[derive(Debug, Clone, Default)]
pub struct PullRequestOut {
    pub forge: String,
    pub token_env: String,
    pub branch: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImageOut {
    pub name: String,
    pub image: String,
    /// The policy as a flow mapping: `{semver: "5.0.x", strict: true}`.
    pub policy: String,
    pub include: Option<String>,
    pub exclude: Vec<String>,
    pub extract: Option<String>,
    pub pin_digest: bool,
    pub platforms: Vec<String>,
    pub targets: Vec<TargetOut>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetOut {
    pub file: String,
    pub path: Option<String>,
    pub field: Option<String>,
    pub marker: Option<String>,
}

/// A YAML double-quoted scalar.
pub fn q(text: &str) -> String {
    // serde_json's string escapes are a subset of YAML's double-quoted escapes.
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

impl GlobalOut {
    pub fn render(&self, tool: &str) -> String {
        let mut out = format!(
            "# Written by `imagebump import {tool}`: the registry and git parts of the global file.\n"
        );
        for comment in &self.comments {
            out.push_str(&format!("# {comment}\n"));
        }
        out.push_str("apps: apps/\n");
        if self.author.is_some() || !self.credentials.is_empty() {
            out.push_str("git:\n");
            if let Some((name, email)) = &self.author {
                out.push_str(&format!(
                    "  author: {{name: {}, email: {}}}\n",
                    q(name),
                    q(email)
                ));
            }
            if !self.credentials.is_empty() {
                out.push_str("  credentials:\n");
                for credential in &self.credentials {
                    let fields: Vec<String> = credential
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", q(v)))
                        .collect();
                    out.push_str(&format!("    - {{{}}}\n", fields.join(", ")));
                }
            }
        }
        if !self.registries.is_empty() {
            out.push_str("registries:\n");
            for registry in &self.registries {
                out.push_str(&format!("  - prefix: {}\n", q(&registry.prefix)));
                if registry.insecure {
                    out.push_str("    insecure: true\n");
                }
                if let Some(path) = &registry.docker_config {
                    out.push_str(&format!("    docker_config: {}\n", q(path)));
                }
                if let Some(path) = &registry.ca_file {
                    out.push_str(&format!("    ca_file: {}\n", q(path)));
                }
                if !registry.platforms.is_empty() {
                    out.push_str(&format!("    platform: {}\n", list(&registry.platforms)));
                }
                if let Some(rate) = &registry.requests_per_second {
                    out.push_str(&format!("    requests_per_second: {rate}\n"));
                }
            }
        }
        out
    }
}

impl AppOut {
    pub fn render(&self, tool: &str) -> String {
        let mut out = format!(
            "# Imported by `imagebump import {tool}` from {}.\n",
            self.source
        );
        out.push_str(&format!("name: {}\n", q(&self.name)));
        out.push_str(&format!("repo: {}\n", q(&self.repo)));
        out.push_str(&format!("branch: {}\n", q(&self.branch)));
        if let Some(interval) = &self.interval {
            out.push_str(&format!("interval: {}\n", q(interval)));
        }
        if let Some(message) = &self.commit_message {
            out.push_str(&format!("commit_message: {}\n", q(message)));
        }
        if let Some(pr) = &self.pull_request {
            out.push_str("write: pull-request\npull_request:\n");
            out.push_str(&format!("  forge: {}\n", q(&pr.forge)));
            out.push_str(&format!("  token_env: {}\n", q(&pr.token_env)));
            if let Some(branch) = &pr.branch {
                out.push_str(&format!("  branch: {}\n", q(branch)));
            }
        }
        out.push_str("images:\n");
        for image in &self.images {
            out.push_str(&format!("  - name: {}\n", q(&image.name)));
            out.push_str(&format!("    image: {}\n", q(&image.image)));
            out.push_str(&format!("    policy: {}\n", image.policy));
            if image.include.is_some() || !image.exclude.is_empty() || image.extract.is_some() {
                out.push_str("    tags:\n");
                if let Some(include) = &image.include {
                    out.push_str(&format!("      include: {}\n", q(include)));
                }
                if !image.exclude.is_empty() {
                    out.push_str(&format!("      exclude: {}\n", list(&image.exclude)));
                }
                if let Some(extract) = &image.extract {
                    out.push_str(&format!("      extract: {}\n", q(extract)));
                }
            }
            if image.pin_digest {
                out.push_str("    pin_digest: true\n");
            }
            if !image.platforms.is_empty() {
                out.push_str(&format!("    platform: {}\n", list(&image.platforms)));
            }
            out.push_str("    targets:\n");
            for target in &image.targets {
                let mut fields = vec![format!("file: {}", q(&target.file))];
                if let Some(path) = &target.path {
                    fields.push(format!("path: {}", q(path)));
                }
                if let Some(field) = &target.field {
                    fields.push(format!("field: {}", q(field)));
                }
                if let Some(marker) = &target.marker {
                    fields.push(format!("marker: {}", q(marker)));
                }
                out.push_str(&format!("      - {{{}}}\n", fields.join(", ")));
            }
        }
        out
    }
}
