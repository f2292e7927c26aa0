//! Commit messages from minijinja templates.
//!
//! The template sees `app` (the app name), `changes` (one row per written value: `image`, the
//! repository, e.g. `ghcr.io/acme/api`; `name`, the image's short name in the app config;
//! `file`; `from` and `to` as written; `tag`, the new tag alone; `digest`, when this row wrote
//! one; `reason`, why the policy chose it) and `images` (one row per image and new tag, however
//! many files and forms: `image`, `name`, `from`, `to` and `tag`, `digest`, `ref`, `reason`).
//! docs/templates.md has the table.
//!
//! Invariant: an undefined variable is an error, never an empty string in a commit message; the
//! same function renders for a pass and for `validate`.

use minijinja::Environment;

use crate::forge;

/// The message used when an app sets no `commit_message`.
pub const DEFAULT_COMMIT_MESSAGE: &str = "\
chore({{ app }}): update {% if images|length == 1 %}{{ images[0].name }} to {{ images[0].to }}\
{% else %}{{ images|length }} images{% endif %}

{% for c in changes %}- {{ c.image }}: {{ c.from }} -> {{ c.to }}{% if c.digest and c.digest not in c.to %} ({{ c.digest }}){% endif %} in {{ c.file }}
{% endfor %}
Updated by imagebump.
";

/// The message of a grouped commit (`git.group_commits`) when `git.group_commit_message` is not
/// set. It sees `apps` (the names of the apps that changed), `changes` (as above, each with its
/// `app`) and `images`.
pub const DEFAULT_GROUP_COMMIT_MESSAGE: &str = "\
chore: update {% if images|length == 1 %}{{ images[0].name }} to {{ images[0].to }}\
{% else %}{{ images|length }} images{% endif %} in {{ apps|length }} app{% if apps|length != 1 %}s{% endif %}

{% for c in changes %}- {{ c.app }}: {{ c.image }}: {{ c.from }} -> {{ c.to }}{% if c.digest and c.digest not in c.to %} ({{ c.digest }}){% endif %} in {{ c.file }}
{% endfor %}
Updated by imagebump.
";

/// One change of a grouped commit as its template sees it: a [`ChangeContext`] and its app.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupedChange {
    pub app: String,
    #[serde(flatten)]
    pub change: ChangeContext,
}

/// A grouped commit's template that failed to render.
#[derive(Debug, thiserror::Error)]
#[error("git.group_commit_message failed: {0}")]
pub struct GroupMessageError(minijinja::Error);

/// Render `template` (or the default) for a grouped commit of several apps' changes.
pub fn render_group(
    template: Option<&str>,
    changes: &[GroupedChange],
) -> Result<String, GroupMessageError> {
    let mut apps: Vec<&str> = Vec::new();
    for c in changes {
        if !apps.contains(&c.app.as_str()) {
            apps.push(&c.app);
        }
    }
    let images = forge::images(changes.iter().map(|c| &c.change));
    let text = render_template(
        template.unwrap_or(DEFAULT_GROUP_COMMIT_MESSAGE),
        minijinja::context! { apps => apps, changes => changes, images => images },
    )
    .map_err(GroupMessageError)?;
    Ok(text.unwrap_or_else(|| "chore: update image tags\n".to_string()))
}

/// Render `template` with `context`; the text with one final newline, or `None` when it is
/// blank.
fn render_template(
    template: &str,
    context: minijinja::Value,
) -> Result<Option<String>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    // A typo is an error (and `validate` finds it first), never an empty string in a commit.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let text = env.template_from_str(template)?.render(context)?;
    let text = text.trim_end();
    Ok((!text.is_empty()).then(|| format!("{text}\n")))
}

/// One change as a template sees it (the same rows a pull request body lists).
pub use crate::forge::ChangeRow as ChangeContext;

/// A template that failed to render.
#[derive(Debug, thiserror::Error)]
#[error("commit message template of app `{app}` failed: {source}")]
pub struct MessageError {
    app: String,
    source: minijinja::Error,
}

/// Render `template` (or the default) for `app`'s changes.
pub fn render(
    template: Option<&str>,
    app: &str,
    changes: &[ChangeContext],
) -> Result<String, MessageError> {
    let images = forge::images(changes);
    let text = render_template(
        template.unwrap_or(DEFAULT_COMMIT_MESSAGE),
        minijinja::context! { app => app, changes => changes, images => images },
    )
    .map_err(|source| MessageError {
        app: app.to_string(),
        source,
    })?;
    Ok(text.unwrap_or_else(|| format!("chore({app}): update image tags")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn change(name: &str, from: &str, to: &str) -> ChangeContext {
        ChangeContext {
            image: format!("ghcr.io/acme/{name}"),
            name: name.into(),
            file: "overlays/dev/kustomization.yaml".into(),
            from: from.into(),
            to: to.into(),
            digest: None,
            reason: "semver ^1.0".into(),
            tag: to.rsplit(':').next().unwrap_or(to).to_string(),
        }
    }

    #[test]
    fn default_message_for_one_change() {
        let msg = render(None, "shop", &[change("api", "1.0.0", "1.1.0")]).unwrap();
        assert_eq!(
            msg,
            "chore(shop): update api to 1.1.0\n\n- ghcr.io/acme/api: 1.0.0 -> 1.1.0 in overlays/dev/kustomization.yaml\n\nUpdated by imagebump.\n"
        );
    }

    #[test]
    fn default_message_for_several_changes() {
        let msg = render(
            None,
            "shop",
            &[
                change("api", "1.0.0", "1.1.0"),
                change("web", "2.0.0", "2.0.1"),
            ],
        )
        .unwrap();
        assert!(msg.starts_with("chore(shop): update 2 images\n\n"), "{msg}");
        assert!(
            msg.contains("- ghcr.io/acme/web: 2.0.0 -> 2.0.1 in"),
            "{msg}"
        );
    }

    #[test]
    fn one_image_in_two_files_is_one_image() {
        let mut second = change("api", "1.0.0", "1.1.0");
        second.file = "values.yaml".into();
        let msg = render(None, "shop", &[change("api", "1.0.0", "1.1.0"), second]).unwrap();
        assert!(
            msg.starts_with("chore(shop): update api to 1.1.0\n\n"),
            "{msg}"
        );
        assert!(msg.contains("in values.yaml\n"), "{msg}");
    }

    #[test]
    fn custom_template() {
        let t = "chore({{ app }}): {% for c in changes %}{{ c.image }} {{ c.from }} -> {{ c.to }}{% if not loop.last %}, {% endif %}{% endfor %}";
        let msg = render(
            Some(t),
            "shop",
            &[
                change("api", "1.0.0", "1.1.0"),
                change("web", "2.0.0", "2.0.1"),
            ],
        )
        .unwrap();
        assert_eq!(
            msg,
            "chore(shop): ghcr.io/acme/api 1.0.0 -> 1.1.0, ghcr.io/acme/web 2.0.0 -> 2.0.1\n"
        );
    }

    fn grouped(app: &str, name: &str, from: &str, to: &str) -> GroupedChange {
        GroupedChange {
            app: app.into(),
            change: change(name, from, to),
        }
    }

    #[test]
    fn default_group_message_names_every_app() {
        let msg = render_group(
            None,
            &[
                grouped("shop-dev", "api", "1.0.0", "1.1.0"),
                grouped("shop-prod", "api", "1.0.0", "1.1.0"),
            ],
        )
        .unwrap();
        assert_eq!(
            msg,
            "chore: update api to 1.1.0 in 2 apps\n\n- shop-dev: ghcr.io/acme/api: 1.0.0 -> 1.1.0 in overlays/dev/kustomization.yaml\n- shop-prod: ghcr.io/acme/api: 1.0.0 -> 1.1.0 in overlays/dev/kustomization.yaml\n\nUpdated by imagebump.\n"
        );
        let msg = render_group(
            None,
            &[
                grouped("shop", "api", "1.0.0", "1.1.0"),
                grouped("shop", "web", "2.0.0", "2.0.1"),
            ],
        )
        .unwrap();
        assert!(
            msg.starts_with("chore: update 2 images in 1 app\n"),
            "{msg}"
        );
    }

    #[test]
    fn custom_group_template_sees_apps_and_changes() {
        let t = "bump {{ apps|join(',') }}: {% for c in changes %}{{ c.app }}/{{ c.name }}={{ c.to }} {% endfor %}";
        let msg = render_group(
            Some(t),
            &[
                grouped("a", "api", "1.0.0", "1.1.0"),
                grouped("b", "web", "2.0.0", "2.0.1"),
            ],
        )
        .unwrap();
        assert_eq!(msg, "bump a,b: a/api=1.1.0 b/web=2.0.1\n");
        let err = render_group(Some("{{ x | nosuchfilter }}"), &[]).unwrap_err();
        assert!(
            err.to_string().contains("git.group_commit_message"),
            "{err}"
        );
    }

    #[test]
    fn broken_template_names_the_app() {
        let err = render(Some("{{ changes | nosuchfilter }}"), "shop", &[]).unwrap_err();
        assert!(err.to_string().contains("app `shop`"), "{err}");
    }
}
