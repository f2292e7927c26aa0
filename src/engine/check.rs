//! Checks of the configuration that need the engine's knowledge, run by `validate`, `once` and
//! `run` before any pass: every template rendered against a sample of the context it gets at
//! commit time (undefined variables are errors), and every `*_env` secret reference resolved.
//!
//! Invariant: a template is tried through the very function that renders it in a pass, so
//! `validate` cannot accept what a commit, a pull request or a bot branch would refuse. The
//! configuration records where each template and reference is ([`crate::config::read::Refs`]);
//! this module only says what is wrong with it.

use crate::config::read::{Diagnostic, EnvRef, FileRef, TemplateKind, TemplateRef};
use crate::forge::{self, ChangeRow};

use super::message::{self, GroupedChange};
use super::pull_request;

/// The sample change sets a template is rendered against: one image pinned by digest, and two
/// images (one in two files), so both sides of the usual `{% if images|length == 1 %}` run.
fn samples() -> Vec<Vec<ChangeRow>> {
    let api = ChangeRow {
        image: "registry.example.com/acme/api".into(),
        name: "api".into(),
        file: "k8s/deploy.yaml".into(),
        from: "1.4.2".into(),
        to: "1.4.3".into(),
        digest: Some(format!("sha256:{}", "0123456789abcdef".repeat(4))),
        reason: "semver ~1.4: newest of 3 matching tags".into(),
        tag: "1.4.3".into(),
    };
    let web = ChangeRow {
        image: "registry.example.com/acme/web".into(),
        name: "web".into(),
        file: "charts/web/values.yaml".into(),
        from: "2.0.0".into(),
        to: "2.1.0".into(),
        digest: None,
        reason: "semver ^2: newest of 5 matching tags".into(),
        tag: "2.1.0".into(),
    };
    let mut api_values = api.clone();
    api_values.file = "charts/api/values.yaml".into();
    vec![vec![api.clone()], vec![api, api_values, web]]
}

const SAMPLE_APP: &str = "sample-app";

/// Render `text` as the template `kind` is, with `changes`.
fn render(kind: TemplateKind, text: &str, changes: &[ChangeRow]) -> Result<(), String> {
    match kind {
        TemplateKind::CommitMessage => message::render(Some(text), SAMPLE_APP, changes)
            .map(drop)
            .map_err(|e| detail(&e)),
        TemplateKind::GroupCommitMessage => {
            let grouped: Vec<GroupedChange> = changes
                .iter()
                .enumerate()
                .map(|(i, change)| GroupedChange {
                    app: format!("{SAMPLE_APP}-{}", i % 2),
                    change: change.clone(),
                })
                .collect();
            message::render_group(Some(text), &grouped)
                .map(drop)
                .map_err(|e| detail(&e))
        }
        TemplateKind::PullRequestTitle => forge::render_title(Some(text), SAMPLE_APP, changes)
            .map(drop)
            .map_err(|e| detail(&e)),
        TemplateKind::PullRequestBody => forge::render_body(Some(text), SAMPLE_APP, changes)
            .map(drop)
            .map_err(|e| detail(&e)),
        TemplateKind::PullRequestBranch => {
            pull_request::bot_branch(Some(text), SAMPLE_APP).map(drop)
        }
    }
}

/// An error's message with its source (minijinja puts the detail there).
fn detail(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(&format!(": {more}"));
        }
        source = s.source();
    }
    text
}

/// The variables `text` reads that its context does not have, in every branch (a static look,
/// so an `{% if %}` the samples do not enter is covered too).
fn undefined_variables(kind: TemplateKind, text: &str) -> Vec<String> {
    let env = minijinja::Environment::new();
    let Ok(template) = env.template_from_str(text) else {
        return Vec::new();
    };
    let mut names: Vec<String> = template.undeclared_variables(false).into_iter().collect();
    names.sort();
    let Some(sample) = samples().into_iter().next() else {
        return Vec::new();
    };
    // Asked of the real renderer, so the context is never listed twice.
    names
        .into_iter()
        .filter(|name| {
            let probe =
                format!("{{% if {name} is defined %}}x{{% else %}}{{{{ {name} }}}}{{% endif %}}");
            render(kind, &probe, &sample).is_err()
        })
        .collect()
}

/// The problems of every template: a variable its context does not have, or an error when it
/// is rendered against the samples.
pub fn templates(refs: &[TemplateRef]) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for t in refs {
        let undefined = undefined_variables(t.kind, &t.text);
        if !undefined.is_empty() {
            problems.push(t.at.problem(format!(
                "`{}` uses {} not defined in its context: {}",
                t.key,
                if undefined.len() == 1 { "a variable" } else { "variables" },
                undefined
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
            continue;
        }
        if let Some(error) = samples()
            .iter()
            .find_map(|changes| render(t.kind, &t.text, changes).err())
        {
            problems.push(t.at.problem(format!(
                "`{}` fails when rendered against a sample change: {error}",
                t.key
            )));
        }
    }
    problems
}

/// The path references (`*_file`, `docker_config`, `ca_file`) naming no existing file, each at
/// its key.
pub fn missing_files(refs: &[FileRef]) -> Vec<Diagnostic> {
    refs.iter()
        .filter(|r| !r.path.exists())
        .map(|r| {
            r.at.problem(format!(
                "`{}` names {}, which does not exist",
                r.key,
                r.path.display()
            ))
        })
        .collect()
}

/// The secret references whose environment variable is not set (or empty), each at its key.
pub fn missing_env(refs: &[EnvRef]) -> Vec<Diagnostic> {
    refs.iter()
        .filter(|r| super::settings::env_is_set(&r.var).is_none())
        .map(|r| {
            r.at.problem(format!(
                "environment variable `{}` (`{}`) is not set",
                r.var, r.key
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::read::Position;

    fn check(kind: TemplateKind, text: &str) -> Vec<String> {
        templates(&[TemplateRef {
            kind,
            key: "k".into(),
            text: text.into(),
            at: Position {
                file: "apps/a.yaml".into(),
                line: 3,
                col: 5,
            },
        }])
        .into_iter()
        .map(|d| d.to_string())
        .collect()
    }

    #[test]
    fn the_default_templates_pass() {
        assert!(check(TemplateKind::CommitMessage, message::DEFAULT_COMMIT_MESSAGE).is_empty());
        assert!(
            check(
                TemplateKind::GroupCommitMessage,
                message::DEFAULT_GROUP_COMMIT_MESSAGE
            )
            .is_empty()
        );
        assert!(
            check(
                TemplateKind::PullRequestTitle,
                forge::DEFAULT_TITLE_TEMPLATE
            )
            .is_empty()
        );
        assert!(check(TemplateKind::PullRequestBody, forge::DEFAULT_BODY_TEMPLATE).is_empty());
        assert!(
            check(
                TemplateKind::PullRequestBranch,
                pull_request::DEFAULT_BRANCH
            )
            .is_empty()
        );
    }

    #[test]
    fn typos_are_found_in_every_kind_and_branch() {
        let cases = [
            (TemplateKind::CommitMessage, "{{ chnages }}", "`chnages`"),
            (
                TemplateKind::CommitMessage,
                "{% for c in changes %}{{ c.too }}{% endfor %}",
                "undefined",
            ),
            (
                TemplateKind::CommitMessage,
                "{% if images|length > 99 %}{{ imgaes }}{% endif %}x",
                "`imgaes`",
            ),
            (TemplateKind::GroupCommitMessage, "{{ app }}", "`app`"),
            (TemplateKind::PullRequestTitle, "{{ ap }}", "`ap`"),
            (
                TemplateKind::PullRequestBody,
                "{{ fingerprnt }}",
                "`fingerprnt`",
            ),
            (
                TemplateKind::PullRequestBranch,
                "bot/{{ changes }}",
                "`changes`",
            ),
            (
                TemplateKind::PullRequestBranch,
                "bot..{{ app }}",
                "not a valid branch name",
            ),
        ];
        for (kind, text, expected) in cases {
            let problems = check(kind, text);
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert!(
                problems[0].starts_with("apps/a.yaml:3:5: `k` ") && problems[0].contains(expected),
                "{text}: {problems:?}"
            );
        }
        // What each context does have.
        for (kind, text) in [
            (
                TemplateKind::CommitMessage,
                "{{ app }} {{ changes|length }} {{ images[0].to }}",
            ),
            (
                TemplateKind::GroupCommitMessage,
                "{{ apps|join(',') }} {{ changes[0].app }}",
            ),
            (
                TemplateKind::PullRequestBody,
                "{{ fingerprint }} {% for i in range(2) %}{% endfor %}",
            ),
            (TemplateKind::PullRequestBranch, "bot/{{ app }}"),
            (
                TemplateKind::CommitMessage,
                "{% set ns = namespace(n=0) %}{% for c in changes %}{{ c.image }}{% if not loop.last %}, {% endif %}{% set ns.n = ns.n + 1 %}{% endfor %} {{ ns.n }} {{ changes|map(attribute='to')|join(',') }}",
            ),
        ] {
            assert_eq!(check(kind, text), Vec::<String>::new(), "{text}");
        }
    }
}
