//! The HTTP surface: `/healthz`, `/readyz`, `/metrics`, `/api/v1/status` and the webhooks.
//!
//! Invariant: handlers only read shared state or queue checks; none calls the worker directly,
//! so a slow registry never slows an HTTP answer. Design choice: the router is built by a plain
//! function, [`router`], over a cheap-to-clone [`HttpState`], so tests drive it with
//! `tower::ServiceExt::oneshot` without a socket, and the daemon serves the very same router.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::Worker;
use super::metrics::{self, Metrics};
use super::queue::{CheckQueue, Checks};
use super::status::StatusStore;
use super::webhook::{self, Receiver, ReceiverKind, Receivers, WebhookLimits};

/// What the HTTP handlers share. Clone it freely (all fields are `Arc`s).
#[derive(Clone)]
pub struct HttpState {
    pub(crate) checks: Arc<dyn CheckQueue>,
    pub(crate) metrics: Arc<Metrics>,
    status: Arc<StatusStore>,
    receivers: Arc<RwLock<Receivers>>,
    ready_after_first_cycle: Arc<AtomicBool>,
    pub(crate) webhook_limits: WebhookLimits,
}

impl HttpState {
    /// State for a daemon whose checks go through `checks`. With `ready_after_first_cycle`,
    /// `/readyz` answers 503 until the first full cycle ended.
    pub fn new<W: Worker>(
        checks: &Arc<Checks<W>>,
        receivers: Vec<Receiver>,
        ready_after_first_cycle: bool,
    ) -> HttpState {
        let queue: Arc<dyn CheckQueue> = checks.clone();
        HttpState {
            checks: queue,
            metrics: checks.metrics().clone(),
            status: checks.status().clone(),
            receivers: Arc::new(RwLock::new(Arc::new(receivers))),
            ready_after_first_cycle: Arc::new(AtomicBool::new(ready_after_first_cycle)),
            webhook_limits: WebhookLimits::default(),
        }
    }

    /// Replaces the receivers and the readiness rule (after a reload).
    pub fn reconfigure(&self, receivers: Vec<Receiver>, ready_after_first_cycle: bool) {
        *self
            .receivers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(receivers);
        self.ready_after_first_cycle
            .store(ready_after_first_cycle, Ordering::SeqCst);
    }

    pub(crate) fn receivers(&self) -> Receivers {
        self.receivers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        !self.checks.shutting_down()
            && (!self.ready_after_first_cycle.load(Ordering::SeqCst)
                || self.checks.full_cycles() > 0)
    }
}

/// Every route on one listener: webhooks and the operator routes (the daemon without
/// `http.listen`, and the tests).
pub fn router(state: HttpState) -> Router {
    webhook_router(state.clone()).merge(status_router(state))
}

/// The webhook routes alone: what may be exposed through an Ingress.
pub fn webhook_router(state: HttpState) -> Router {
    Router::new()
        .route("/webhook/{kind}", post(receive))
        .route("/webhook/{kind}/{secret}", post(receive_with_secret))
        .with_state(state)
}

/// The operator routes: `/` (the status page), `/healthz`, `/readyz`, `/metrics`,
/// `/api/v1/status` (served on
/// `http.listen` when it is set, so they never share the public webhook port).
pub fn status_router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/status", get(status))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else if state.checks.shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first check cycle has not ended yet\n",
        )
            .into_response()
    }
}

async fn metrics_text(State(state): State<HttpState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn page(State(state): State<HttpState>) -> Response {
    let snapshot = state.status.snapshot(state.ready());
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let notifications = state.metrics.notification_status();
    match super::page::render_with_notifications(&snapshot, &notifications, &now) {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the status page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the status page\n",
            )
                .into_response()
        }
    }
}

async fn status(State(state): State<HttpState>) -> Response {
    axum::Json(state.status.snapshot(state.ready())).into_response()
}

/// `POST /webhook/{kind}`.
async fn receive(
    State(state): State<HttpState>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, &kind, None, headers, body).await
}

/// `POST /webhook/{kind}/{secret}`.
async fn receive_with_secret(
    State(state): State<HttpState>,
    Path((kind, secret)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(state, &kind, Some(secret), headers, body).await
}

async fn handle(
    state: HttpState,
    kind: &str,
    path_secret: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(kind) = kind.parse::<ReceiverKind>() else {
        return webhook::Rejection::NotConfigured.into_response();
    };
    let receivers = state.receivers();
    let accepted = webhook::accept(
        state.checks.as_ref(),
        &receivers,
        &state.webhook_limits,
        kind,
        path_secret,
        &headers,
        body,
    )
    .await;
    match accepted {
        Ok(accepted) => {
            state
                .metrics
                .webhook_event(kind.as_str(), accepted.outcome());
            let now = time::OffsetDateTime::now_utc();
            for (registry, repository) in &accepted.pushes {
                state.status.webhook_received(registry, repository, now);
            }
            (
                StatusCode::ACCEPTED,
                axum::Json(serde_json::json!({
                    "scheduled": accepted.scheduled,
                    "coalesced": accepted.coalesced,
                    "unknown_repositories": accepted.unknown,
                    "ignored_events": accepted.ignored,
                })),
            )
                .into_response()
        }
        Err(rejection) => {
            state
                .metrics
                .webhook_event(kind.as_str(), rejection.outcome());
            tracing::debug!(
                receiver = kind.as_str(),
                outcome = rejection.outcome(),
                "webhook refused"
            );
            rejection.into_response()
        }
    }
}
