//! The pass's context as a repository job receives it: the job prepares its round (fetch,
//! history) while the registry's tag lists are still coming in, and waits for the context only
//! when it is about to plan.
//!
//! Invariant: a job plans with the pass's one complete context or not at all; a pass that ends
//! before its context is complete (cancelled, or panicked while listing) wakes every waiting job
//! with [`PassAbandoned`], so no job waits forever.

use std::sync::Arc;
use std::sync::mpsc;

use super::WriteContext;

/// The pass ended before its tag lists were ready; nothing was planned.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the pass ended before its tag lists were ready; nothing was planned")]
pub(crate) struct PassAbandoned;

/// One job's handle on the pass's context.
pub(crate) struct Pending(mpsc::Receiver<Arc<WriteContext>>);

/// The pass's side: sends the context to every job once it is complete.
pub(crate) struct Senders(Vec<mpsc::SyncSender<Arc<WriteContext>>>);

impl Senders {
    pub(crate) fn new() -> Self {
        Senders(Vec::new())
    }

    /// A handle for one more job.
    pub(crate) fn pending(&mut self) -> Pending {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.0.push(sender);
        Pending(receiver)
    }

    /// Hands the complete context to every job.
    pub(crate) fn send(self, ctx: &Arc<WriteContext>) {
        for sender in self.0 {
            // A job that is gone (it panicked) dropped its receiver: nothing to hand.
            let _ = sender.send(Arc::clone(ctx));
        }
    }
}

impl Pending {
    /// Blocks until the pass's context is complete.
    pub(crate) fn wait(self) -> Result<Arc<WriteContext>, PassAbandoned> {
        self.0.recv().map_err(|_| PassAbandoned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_whose_pass_ended_without_a_context_is_told_so() {
        let mut senders = Senders::new();
        let pending = senders.pending();
        let waiting = std::thread::spawn(move || pending.wait().map(drop));
        drop(senders);
        assert!(matches!(waiting.join(), Ok(Err(PassAbandoned))));
    }
}
