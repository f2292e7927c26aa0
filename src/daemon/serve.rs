//! Serving a router on a TCP listener with the limits an exposed port needs.
//!
//! Invariant: no client can hold a connection or a task longer than the limits allow, whatever
//! it sends or does not send. A new connection must send its first byte within
//! [`ServeLimits::header_timeout`] and then its whole request head within as long again; a
//! connection serves one request and is closed (no keep-alive, so nothing sits idle between
//! requests); at most [`ServeLimits::max_connections`] connections are open at once (others are
//! closed as soon as they are accepted). Body timeouts and byte budgets are the handlers' (see
//! `webhook`), since only they know when a body is read.
//!
//! Design choice: hyper-util's connection builder instead of `axum::serve`, which sets no header
//! read timeout at all (150 idle or half-sent connections were all still open after 90 s).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;

/// Connection limits of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time allowed for a request's head (request line and headers), counted from the moment
    /// the connection opens or becomes idle after a response: slow and idle clients are closed.
    pub header_timeout: Duration,
    /// Connections open at once; a connection over the limit is closed at once.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    /// 10 s for a request head, 1,024 connections.
    fn default() -> Self {
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then waits up to `grace` for the requests
/// in flight. Returns when every connection is closed or the grace period ended.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: Shutdown,
    grace: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!("connection limit reached; closing a new connection");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            // hyper's header timer starts at the first byte: a client that connects and sends
            // nothing is closed here.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // Errors are clients going away, timing out or sending garbage: nothing to report.
            let _ = watcher.watch(connection.into_owned()).await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open at exit are closed");
    }
}
