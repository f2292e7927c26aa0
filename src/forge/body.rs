//! Titles and bodies of the pull requests, rendered from minijinja templates.
//!
//! Templates see `app`, `changes` (one row per written value: `image`, `name`, `file`, `from`,
//! `to` as written, `tag`, `digest` (or none), `reason`: the same rows as the commit message
//! templates), `images` (one row per image and new tag: `image`, `name`, `from`, `to`/`tag`,
//! `digest`, `ref`, `reason`; see [`images`]) and `fingerprint`. Undefined variables are errors, so a typo in a template is reported instead
//! of rendering an empty string. Blocks are trimmed (`trim_blocks`, `lstrip_blocks`), so a
//! `{% for %}` on its own line leaves no blank line behind.
//!
//! Invariant: the fingerprint in a body names exactly the versions the body proposes, so a closed
//! pull request is recognised whatever its template.

use std::collections::HashMap;

use minijinja::{Environment, UndefinedBehavior, context};
use serde::Serialize;

use super::{ForgeError, fingerprint};

/// The default title: `chore(shop): update api to 1.4.3, web to 2.0.1` (up to three images,
/// else `chore(shop): update 5 images`).
pub const DEFAULT_TITLE_TEMPLATE: &str = "chore({{ app }}): update \
{% if images|length <= 3 %}\
{% for i in images %}{{ i.name }} to {{ i.to }}{% if not loop.last %}, {% endif %}{% endfor %}\
{% else %}{{ images|length }} images{% endif %}";

/// The default body: a table of the changes and the policy behind each new tag.
pub const DEFAULT_BODY_TEMPLATE: &str = "\
imagebump proposes new image tags for **{{ app }}**.

| Image | File | From | To |
| --- | --- | --- | --- |
{% for c in changes %}
| `{{ c.image }}` | `{{ c.file }}` | `{{ c.from }}` | `{{ c.to }}`{% if c.digest and c.digest not in c.to %} (`{{ c.digest }}`){% endif %} |
{% endfor %}

Why these tags:
{% for i in images %}
- `{{ i.name }}` → `{{ i.to }}`: {{ i.reason }}
{% endfor %}
{% if promotions %}

Promoted after soaking:
{% for p in promotions %}
- `{{ p.name }}` `{{ p.tag }}` from **{{ p.source }}** (`{{ p.file }}{% if p.line %}:{{ p.line }}{% endif %}`): \
written there by {% if p.link %}[`{{ p.short }}`]({{ p.link }}){% else %}`{{ p.commit }}`{% endif %} \
on {{ p.since }}, soaked {{ p.soaked }}{% if p.digest %}, digest `{{ p.digest }}`{% endif %}

{% endfor %}
{% endif %}

imagebump keeps this pull request up to date: newer images update it in place. Closing it without \
merging stops imagebump from proposing these same versions again.
";

/// One edited target of the change set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRow {
    /// The image repository, `ghcr.io/acme/shop-api`.
    pub image: String,
    /// The image's name in the app config, `api`.
    pub name: String,
    /// The edited file, relative to the repository root.
    pub file: String,
    /// The tag (or reference) written before.
    pub from: String,
    /// The new tag (or reference).
    pub to: String,
    /// The digest this row wrote (`sha256:…`): only when `to` holds it or is it.
    pub digest: Option<String>,
    /// Why the policy chose `to`, `semver ~1.4: newest of 12 matching tags`.
    pub reason: String,
    /// The new tag alone (`1.4.3`), whatever form `to` was written in.
    pub tag: String,
}

/// A promoted image's evidence (`promotions` in templates): where its new tag soaked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromotionRow {
    /// The image's name in the app config, `api`.
    pub name: String,
    /// The promoted tag.
    pub tag: String,
    /// The source app (`promote.from`).
    pub source: String,
    /// The source's target file, relative to its repository root.
    pub file: String,
    /// The line of the image's reference there, when found.
    pub line: Option<usize>,
    /// The first-parent commit that brought the tag to the source's branch (full id).
    pub commit: String,
    /// The same, abbreviated.
    pub short: String,
    /// A link to that commit, for the forges whose commit URLs are known.
    pub link: Option<String>,
    /// When (RFC 3339, UTC).
    pub since: String,
    /// How long the source has held it (`1d 1h`).
    pub soaked: String,
    /// The digest the registry gives for the tag (and the source pinned, if it did).
    pub digest: Option<String>,
}

/// One image and its new tag, for templates that don't care about files or written forms:
/// one row per image repository and new tag, however many targets and forms it was written to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRow {
    /// The image repository, `ghcr.io/acme/shop-api`.
    pub image: String,
    /// The image's name in the app config, `api`.
    pub name: String,
    /// What the first target held before (as written there).
    pub from: String,
    /// The new tag (`1.4.3`); the same as `tag`.
    pub to: String,
    /// The new tag (`1.4.3`).
    pub tag: String,
    /// The digest written for it somewhere, if any.
    pub digest: Option<String>,
    /// `image:tag`, with `@digest` when one was written.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Why the policy chose the tag.
    pub reason: String,
}

/// The change rows folded to one row per image and new tag, in order.
pub fn images<'a>(changes: impl IntoIterator<Item = &'a ChangeRow>) -> Vec<ImageRow> {
    let mut rows: Vec<ImageRow> = Vec::new();
    // Each (image, tag)'s row, so that 1,000 changes are not 500,000 comparisons.
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    for c in changes {
        let key = (c.image.as_str(), c.tag.as_str());
        if let Some(row) = index.get(&key).and_then(|&at| rows.get_mut(at)) {
            if row.digest.is_none() && c.digest.is_some() {
                row.digest.clone_from(&c.digest);
                row.reference = format!(
                    "{}:{}@{}",
                    row.image,
                    row.tag,
                    c.digest.as_deref().unwrap_or_default()
                );
            }
            continue;
        }
        let reference = match &c.digest {
            Some(d) => format!("{}:{}@{d}", c.image, c.tag),
            None => format!("{}:{}", c.image, c.tag),
        };
        index.insert(key, rows.len());
        rows.push(ImageRow {
            image: c.image.clone(),
            name: c.name.clone(),
            from: c.from.clone(),
            to: c.tag.clone(),
            tag: c.tag.clone(),
            digest: c.digest.clone(),
            reference,
            reason: c.reason.clone(),
        });
    }
    rows
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env
}

fn render(
    which: &str,
    source: &str,
    app: &str,
    (changes, promotions): (&[ChangeRow], &[PromotionRow]),
) -> Result<String, ForgeError> {
    let env = environment();
    let error = |err: minijinja::Error| ForgeError::Template {
        template: which.to_string(),
        detail: match err.detail() {
            Some(detail) => format!("{} ({detail})", err.kind()),
            None => err.to_string(),
        },
    };
    let template = env.template_from_str(source).map_err(error)?;
    template
        .render(context! {
            app => app,
            changes => changes,
            images => images(changes),
            promotions => promotions,
            fingerprint => fingerprint(changes),
        })
        .map_err(error)
}

/// The one-line title (newlines folded). `template` `None` uses [`DEFAULT_TITLE_TEMPLATE`].
pub fn render_title(
    template: Option<&str>,
    app: &str,
    changes: &[ChangeRow],
) -> Result<String, ForgeError> {
    let text = render(
        "title",
        template.unwrap_or(DEFAULT_TITLE_TEMPLATE),
        app,
        (changes, &[]),
    )?;
    let title = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() {
        return Err(ForgeError::Template {
            template: "title".to_string(),
            detail: "renders an empty title".to_string(),
        });
    }
    Ok(title)
}

/// The body, always ending with the hidden fingerprint comment that [`super::decide`] reads
/// (appended when a custom template does not place it itself). `template` `None` uses
/// [`DEFAULT_BODY_TEMPLATE`].
pub fn render_body(
    template: Option<&str>,
    app: &str,
    changes: &[ChangeRow],
) -> Result<String, ForgeError> {
    render_promoted_body(template, app, changes, &[])
}

/// [`render_body`] with the evidence of the promoted images (`promotions`).
pub fn render_promoted_body(
    template: Option<&str>,
    app: &str,
    changes: &[ChangeRow],
    promotions: &[PromotionRow],
) -> Result<String, ForgeError> {
    let mut body = render(
        "body",
        template.unwrap_or(DEFAULT_BODY_TEMPLATE),
        app,
        (changes, promotions),
    )?;
    let fp = fingerprint(changes);
    if super::fingerprint_in_body(&body) != Some(fp.as_str()) {
        if !body.is_empty() && !body.ends_with('\n') {
            body.push('\n');
        }
        body.push_str(&format!("\n<!-- imagebump:fingerprint={fp} -->\n"));
    }
    Ok(body)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn images_fold_rows_per_image_and_tag_in_first_seen_order_keeping_a_digest() {
        let api = row("api", "values.yaml", "1.4.0", "1.4.3");
        let web = row("web", "values.yaml", "2.0.0", "2.1.0");
        let mut pinned = row("api", "kustomization.yaml", "1.4.0", "1.4.3");
        pinned.digest = Some("sha256:abc".to_string());
        let other_tag = row("api", "prod.yaml", "1.3.0", "1.4.4");
        let rows = images([&api, &web, &pinned, &other_tag]);
        let refs: Vec<&str> = rows.iter().map(|r| r.reference.as_str()).collect();
        assert_eq!(
            refs,
            [
                "ghcr.io/acme/shop-api:1.4.3@sha256:abc",
                "ghcr.io/acme/shop-web:2.1.0",
                "ghcr.io/acme/shop-api:1.4.4",
            ]
        );
        assert_eq!(rows[0].from, "1.4.0", "the first target's old value");
    }

    fn row(name: &str, file: &str, from: &str, to: &str) -> ChangeRow {
        ChangeRow {
            image: format!("ghcr.io/acme/shop-{name}"),
            name: name.to_string(),
            file: file.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            digest: None,
            reason: "semver ~1.4: newest of 3 matching tags".to_string(),
            tag: to.rsplit(':').next().unwrap_or(to).to_string(),
        }
    }

    #[test]
    fn a_promotion_shows_its_evidence_with_a_link_to_the_source_commit() {
        let changes = [row("api", "prod/values.yaml", "1.4.0", "1.5.0")];
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let promoted = PromotionRow {
            name: "api".into(),
            tag: "1.5.0".into(),
            source: "shop-staging".into(),
            file: "staging/values.yaml".into(),
            line: Some(12),
            link: super::super::commit_url("https://github.com/acme/config.git", commit),
            short: commit[..7].into(),
            commit: commit.into(),
            since: "2026-12-03T10:12:00Z".into(),
            soaked: "1d 1h".into(),
            digest: Some("sha256:abc".into()),
        };
        let body = render_promoted_body(None, "shop-prod", &changes, &[promoted]).expect("body");
        assert!(
            body.contains(
                "- `api` `1.5.0` from **shop-staging** (`staging/values.yaml:12`): written there by \
                 [`0123456`](https://github.com/acme/config/commit/0123456789abcdef0123456789abcdef01234567) \
                 on 2026-12-03T10:12:00Z, soaked 1d 1h, digest `sha256:abc`\n\nimagebump keeps"
            ),
            "{body}"
        );
        // Without promotions, the body is the one it always was.
        assert_eq!(
            render_promoted_body(None, "shop-prod", &changes, &[]).expect("body"),
            render_body(None, "shop-prod", &changes).expect("body")
        );
        assert!(
            !render_body(None, "shop-prod", &changes)
                .expect("body")
                .contains("Promoted")
        );
    }

    #[test]
    fn default_title() {
        let one = [row("api", "values-staging.yaml", "1.4.2", "1.4.3")];
        assert_eq!(
            render_title(None, "shop", &one).expect("title"),
            "chore(shop): update api to 1.4.3"
        );
        let two = [
            row("api", "values-staging.yaml", "1.4.2", "1.4.3"),
            row("api", "values-prod.yaml", "1.4.1", "1.4.3"),
            row("web", "values-staging.yaml", "2.0.0", "2.0.1"),
        ];
        assert_eq!(
            render_title(None, "shop", &two).expect("title"),
            "chore(shop): update api to 1.4.3, web to 2.0.1"
        );
        let many: Vec<ChangeRow> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| row(n, "f", "1", "2"))
            .collect();
        assert_eq!(
            render_title(None, "shop", &many).expect("title"),
            "chore(shop): update 4 images"
        );
    }

    #[test]
    fn default_body() {
        let rows = [
            row("api", "values-staging.yaml", "1.4.2", "1.4.3"),
            row("api", "values-prod.yaml", "1.4.1", "1.4.3"),
        ];
        let body = render_body(None, "shop", &rows).expect("body");
        let want = format!(
            "imagebump proposes new image tags for **shop**.

| Image | File | From | To |
| --- | --- | --- | --- |
| `ghcr.io/acme/shop-api` | `values-staging.yaml` | `1.4.2` | `1.4.3` |
| `ghcr.io/acme/shop-api` | `values-prod.yaml` | `1.4.1` | `1.4.3` |

Why these tags:
- `api` → `1.4.3`: semver ~1.4: newest of 3 matching tags

imagebump keeps this pull request up to date: newer images update it in place. Closing it \
without merging stops imagebump from proposing these same versions again.

<!-- imagebump:fingerprint={} -->
",
            fingerprint(&rows)
        );
        assert_eq!(body, want);
    }

    #[test]
    fn pinned_digest_is_shown() {
        let mut pinned = row("api", "values.yaml", "1.4.2", "1.4.3");
        pinned.digest = Some("sha256:abc".to_string());
        let body = render_body(None, "shop", &[pinned]).expect("body");
        assert!(
            body.contains("| `1.4.2` | `1.4.3` (`sha256:abc`) |"),
            "{body}"
        );
    }

    #[test]
    fn custom_templates() {
        let rows = [row("api", "v.yaml", "1", "2")];
        let title = render_title(Some("bump {{ app }}\n{{ changes[0].to }}"), "shop", &rows)
            .expect("title");
        assert_eq!(title, "bump shop 2");
        // A custom body gets the marker appended...
        let body = render_body(Some("{{ changes|length }} change"), "shop", &rows).expect("body");
        assert!(
            body.starts_with("1 change\n\n<!-- imagebump:fingerprint="),
            "{body}"
        );
        // ...unless it places it itself.
        let tpl = "<!-- imagebump:fingerprint={{ fingerprint }} -->\nhi";
        let body = render_body(Some(tpl), "shop", &rows).expect("body");
        assert_eq!(body.matches("imagebump:fingerprint").count(), 1, "{body}");
    }

    #[test]
    fn template_errors_are_reported() {
        let rows = [row("api", "v.yaml", "1", "2")];
        let err = render_title(Some("{{ ap }}"), "shop", &rows).expect_err("undefined");
        assert!(
            err.to_string().starts_with("pull request template title:"),
            "{err}"
        );
        let err = render_body(Some("{% for %}"), "shop", &rows).expect_err("syntax");
        assert!(err.to_string().contains("template body"), "{err}");
        let err =
            render_title(Some("{% if false %}x{% endif %}"), "shop", &rows).expect_err("empty");
        assert!(err.to_string().contains("empty title"), "{err}");
    }
}
