//! The bytes each sink sends: Slack's Block Kit message, and the signed JSON of the `webhook`
//! sink (`X-Imagebump-Signature: sha256=HEX`, the HMAC-SHA256 of `TIMESTAMP.BODY` under the
//! sink's key, with `X-Imagebump-Timestamp: TIMESTAMP` in Unix seconds).
//!
//! Invariant: pure; what is signed is exactly the timestamp header, a dot and the body bytes
//! sent, so a receiver checks the signature on the raw body before parsing it.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::event::Event;

/// The `webhook` sink's body: the event as JSON (docs/notifications.md).
pub fn webhook_body(event: &Event) -> Vec<u8> {
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_vec(event).unwrap_or_default()
}

/// `sha256=HEX`: the HMAC-SHA256 of `{timestamp}.{body}` under `key`.
pub fn signature(key: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped (they start links and mentions).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack's limit on one text object.
const MAX_TEXT: usize = 2900;

fn clip(text: String) -> String {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A Slack incoming webhook message (Block Kit): a header, one line per image written
/// (`name` `from` → `to`), and a context line with the repository, the commit or pull request
/// link, or the error. `text` is the plain fallback Slack shows in notifications.
pub fn slack_body(event: &Event) -> Vec<u8> {
    let app = &event.app;
    let title = match event.event {
        "committed" => format!("{app}: {} committed", images(event.changes.len())),
        "pull_request" => {
            let action = event.pull_request.as_ref().map_or("opened", |p| p.action);
            format!(
                "{app}: pull request {action} ({})",
                images(event.changes.len())
            )
        }
        "failed" => format!(
            "{app}: failing ({} checks in a row)",
            event.failures.unwrap_or(0)
        ),
        _ => format!("{app}: recovered"),
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(title.clone())}
    })];
    if !event.changes.is_empty() {
        let lines: Vec<String> = event
            .changes
            .iter()
            .map(|c| {
                format!(
                    "*{}* (`{}`): `{}` → `{}`",
                    escape(&c.image),
                    escape(&c.repository),
                    escape(&c.from),
                    escape(&c.to)
                )
            })
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(lines.join("\n"))}
        }));
    }
    if let Some(error) = &event.error {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(format!("*Error:* {}", escape(error)))}
        }));
    }
    let mut context = format!(
        "`{}` · branch `{}`",
        escape(&event.repo),
        escape(&event.branch)
    );
    if let Some(pr) = &event.pull_request {
        context.push_str(&format!(" · <{}|pull request>", escape(&pr.url)));
    }
    if let Some(sha) = &event.commit {
        let short: String = sha.chars().take(12).collect();
        match &event.commit_url {
            Some(url) => {
                context.push_str(&format!(" · commit <{}|{}>", escape(url), escape(&short)))
            }
            None => context.push_str(&format!(" · commit `{}`", escape(&short))),
        }
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": clip(context)}]
    }));
    let fallback = match event.changes.as_slice() {
        [] => title,
        changes => format!(
            "{title}: {}",
            changes
                .iter()
                .map(|c| format!("{} {} → {}", c.image, c.from, c.to))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let message: Value = json!({"text": clip(fallback), "blocks": blocks});
    serde_json::to_vec(&message).unwrap_or_default()
}

fn images(n: usize) -> String {
    if n == 1 {
        "1 image".into()
    } else {
        format!("{n} images")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::NotifyEvent;
    use crate::notify::event::{Change, SCHEMA_VERSION};

    fn event() -> Event {
        Event {
            version: SCHEMA_VERSION,
            event: "committed",
            kind: NotifyEvent::Committed,
            id: "0f".into(),
            at: "2026-12-04T05:00:00Z".into(),
            app: "shop".into(),
            repo: "https://github.com/acme/deploy.git".into(),
            branch: "main".into(),
            changes: vec![Change {
                image: "api".into(),
                repository: "ghcr.io/acme/api".into(),
                from: "1.0.0".into(),
                to: "1.1.0".into(),
                file: "values.yaml".into(),
                line: 4,
            }],
            commit: Some("0123456789abcdef".into()),
            commit_url: Some("https://github.com/acme/deploy/commit/0123456789abcdef".into()),
            pull_request: None,
            failures: None,
            error: None,
        }
    }

    /// A known answer, from `printf '1700000000.{}' | openssl dgst -sha256 -hmac key`.
    #[test]
    fn the_signature_covers_timestamp_dot_body() {
        assert_eq!(
            signature(b"key", 1_700_000_000, b"{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(
            signature(b"key", 1_700_000_001, b"{}"),
            signature(b"key", 1_700_000_000, b"{}")
        );
    }

    #[test]
    fn slack_message_has_blocks_and_escapes() {
        let mut e = event();
        e.changes[0].from = "<1.0.0&>".into();
        let body: Value = serde_json::from_slice(&slack_body(&e)).unwrap();
        assert_eq!(body["blocks"][0]["type"], "header");
        let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(
            section.contains("`&lt;1.0.0&amp;&gt;` → `1.1.0`"),
            "{section}"
        );
        let context = body["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert!(
            context
                .contains("<https://github.com/acme/deploy/commit/0123456789abcdef|0123456789ab>"),
            "{context}"
        );
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains("api <1.0.0&> → 1.1.0")
        );
    }

    #[test]
    fn webhook_body_is_the_documented_shape() {
        let body: Value = serde_json::from_slice(&webhook_body(&event())).unwrap();
        assert_eq!(body["version"], 1);
        assert_eq!(body["event"], "committed");
        assert_eq!(body["changes"][0]["to"], "1.1.0");
        assert!(body.get("kind").is_none());
    }
}
