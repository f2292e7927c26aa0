//! One shutdown signal shared by everything that must stop: the daemon's server, scheduler and
//! queue, and the engine (which starts no commit or push once it is triggered).
//!
//! Invariant: once triggered, a signal stays triggered; every clone sees the same state. It
//! sits below both the engine and the daemon so that neither imports the other.

use std::sync::Arc;

use tokio::sync::watch;

/// One shutdown signal shared by everything that must stop. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (sender, _) = watch::channel(false);
        Shutdown {
            sender: Arc::new(sender),
        }
    }

    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once the shutdown has started (at once if it already has).
    pub async fn wait(&self) {
        let mut receiver = self.sender.subscribe();
        // The sender lives as long as `self`, so this only returns when the value is true.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }
}
