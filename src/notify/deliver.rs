//! One delivery task per sink: it takes events from the sink's bounded queue one at a time and
//! sends each, retrying a failed try after a doubling pause, a bounded number of times.
//!
//! Invariant: every event handed to a task ends as exactly one `delivered` or `failed`
//! outcome (each retry also counted as `retried`), reported to the [`Observer`]; a sink's URL
//! and key are held as [`Secret`]s and never appear in an outcome's text or a log line (errors
//! are described without their URL).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use tokio::sync::mpsc;

use super::event::Event;
use super::payload;
use crate::config::SinkKind;
use crate::secret::Secret;

/// What became of one event at one sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The sink answered 2xx.
    Delivered,
    /// A try failed and another follows.
    Retried,
    /// Every try failed (or the sink refused it for good with a 4xx): given up.
    Failed,
    /// The sink's queue was full (it is slow or down): never sent.
    Dropped,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Delivered,
        Outcome::Retried,
        Outcome::Failed,
        Outcome::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
        }
    }
}

/// Told of every outcome (the daemon counts them in its metrics and shows them on the page).
/// `detail` says what went wrong, without a URL or key.
pub trait Observer: Send + Sync {
    fn outcome(&self, sink: &str, event: &str, outcome: Outcome, detail: Option<&str>);
}

/// A sink, its secrets read.
pub struct Target {
    pub name: String,
    pub kind: SinkKind,
    pub url: Secret,
    /// The HMAC key (`webhook`).
    pub key: Option<Secret>,
}

/// How hard a task tries.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries per event, the first included (at least 1).
    pub attempts: u32,
    /// Pause after the first failed try; doubled after each, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

/// Sends the events of `queue` to `target` until the queue is closed and empty.
pub async fn run(
    target: Target,
    retry: Retry,
    client: reqwest::Client,
    mut queue: mpsc::Receiver<Arc<Event>>,
    observer: Arc<dyn Observer>,
) {
    while let Some(event) = queue.recv().await {
        let mut pause = retry.backoff;
        let attempts = retry.attempts.max(1);
        for attempt in 1..=attempts {
            match send(&target, &client, &event).await {
                Ok(()) => {
                    observer.outcome(&target.name, event.event, Outcome::Delivered, None);
                    break;
                }
                Err(failure) => {
                    let last = attempt == attempts || !failure.retry;
                    tracing::warn!(
                        sink = %target.name,
                        event = event.event,
                        id = %event.id,
                        attempt,
                        error = %failure.text,
                        gave_up = last,
                        "notification not delivered"
                    );
                    if last {
                        observer.outcome(
                            &target.name,
                            event.event,
                            Outcome::Failed,
                            Some(&failure.text),
                        );
                        break;
                    }
                    observer.outcome(
                        &target.name,
                        event.event,
                        Outcome::Retried,
                        Some(&failure.text),
                    );
                    // A sink that says when to come back (a 429 or 503 with `Retry-After`) is
                    // not asked sooner, however short the backoff.
                    let wait = failure
                        .retry_after
                        .map_or(pause, |asked| asked.min(MAX_RETRY_AFTER).max(pause));
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(retry.max_backoff);
                }
            }
        }
    }
}

struct Failure {
    text: String,
    /// Worth another try (a 5xx, 408, 429 or no answer), not a refusal for good.
    retry: bool,
    /// The sink's `Retry-After`, in seconds (the form Slack sends), on a 429 or 503.
    retry_after: Option<Duration>,
}

/// The longest `Retry-After` honoured: a sink asking for more is asked again after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

async fn send(target: &Target, client: &reqwest::Client, event: &Event) -> Result<(), Failure> {
    let mut request = client
        .post(target.url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    let body = match target.kind {
        SinkKind::Slack => payload::slack_body(event),
        SinkKind::Webhook => {
            let body = payload::webhook_body(event);
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let key = target.key.as_ref().map_or("", |k| k.expose());
            request = request
                .header("X-Imagebump-Event", event.event)
                .header("X-Imagebump-Delivery", &event.id)
                .header("X-Imagebump-Timestamp", timestamp.to_string())
                .header(
                    "X-Imagebump-Signature",
                    payload::signature(key.as_bytes(), timestamp, &body),
                );
            body
        }
    };
    let response = request.body(body).send().await.map_err(|e| Failure {
        text: describe(&e),
        retry: true,
        retry_after: None,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
    .flatten()
    .and_then(|v| v.to_str().ok())
    .and_then(|v| v.trim().parse::<u64>().ok())
    .map(Duration::from_secs);
    Err(Failure {
        text: match retry_after {
            Some(wait) => format!(
                "the sink answered HTTP {} (retry after {} s)",
                status.as_u16(),
                wait.as_secs()
            ),
            None => format!("the sink answered HTTP {}", status.as_u16()),
        },
        retry: status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS,
        retry_after,
    })
}

/// A transport error in words, without its URL (the URL is a secret).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".into()
    } else if error.is_connect() {
        "cannot connect".into()
    } else {
        let mut text = error.to_string();
        if let Some(url) = error.url() {
            text = text.replace(url.as_str(), "<sink URL>");
        }
        format!("request failed: {text}")
    }
}
