//! The pass's context as a repository job receives it: the job fetches its checkout and reads
//! its targets' histories while the registry's tag lists are still coming in, and waits for the
//! context only when it is about to plan.
//!
//! Invariant: a job plans with the pass's one complete context or not at all; a pass that ends
//! before its context is complete (cancelled, or panicked while listing) wakes every waiting job
//! with [`PassAbandoned`], so no job waits forever holding its repository's lock.

use std::cell::OnceCell;
use std::sync::Arc;
use std::sync::mpsc;

use super::WriteContext;

/// The pass ended before its tag lists were ready; nothing was planned.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the pass ended before its tag lists were ready; nothing was planned")]
pub(crate) struct PassAbandoned;

/// One job's handle on the pass's context (a job runs on one blocking thread).
pub(crate) struct Pending {
    receiver: mpsc::Receiver<Arc<WriteContext>>,
    received: OnceCell<Arc<WriteContext>>,
}

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
        Pending {
            receiver,
            received: OnceCell::new(),
        }
    }

    /// Hands the complete context to every job.
    pub(crate) fn send(self, ctx: &Arc<WriteContext>) {
        for sender in self.0 {
            // A job that already ended (it had nothing to wait for) dropped its receiver.
            let _ = sender.send(Arc::clone(ctx));
        }
    }
}

impl Pending {
    /// The pass's context, waiting for it the first time.
    pub(crate) fn get(&self) -> Result<&Arc<WriteContext>, PassAbandoned> {
        if let Some(ctx) = self.received.get() {
            return Ok(ctx);
        }
        let ctx = self.receiver.recv().map_err(|_| PassAbandoned)?;
        Ok(self.received.get_or_init(|| ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_whose_pass_ended_without_a_context_is_told_so() {
        let mut senders = Senders::new();
        let pending = senders.pending();
        let waiting = std::thread::spawn(move || pending.get().map(drop));
        drop(senders);
        assert!(matches!(waiting.join(), Ok(Err(PassAbandoned))));
    }
}
