//! What the caller of a training run can do while it runs: hear about each
//! epoch, and stop it. `cnn_train` checks the cancel flag before every
//! batch, so a cancel takes effect within one batch (well under a second).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::train::EpochReport;

type ProgressFn = dyn Fn(&EpochReport) + Send + Sync;

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    progress: RwLock<Option<Arc<ProgressFn>>>,
}

/// Shared between a session's `cnn_train` and whoever drives the session
/// (the REPL cancels on Ctrl-C and prints progress; a library user may do
/// neither). Clones share one state.
#[derive(Clone, Default)]
pub struct TrainingControl {
    inner: Arc<Inner>,
}

impl TrainingControl {
    /// Stops the trainings running now (and any started before `reset`).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
    }

    /// Clears a cancel, before the next statement.
    pub fn reset(&self) {
        self.inner.cancelled.store(false, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Calls `report` after every epoch of every training (replacing the
    /// previous callback).
    pub fn on_progress(&self, report: impl Fn(&EpochReport) + Send + Sync + 'static) {
        if let Ok(mut progress) = self.inner.progress.write() {
            *progress = Some(Arc::new(report));
        }
    }

    pub fn report(&self, epoch: &EpochReport) {
        let progress = self.inner.progress.read().ok().and_then(|p| p.clone());
        if let Some(progress) = progress {
            progress(epoch);
        }
    }
}

impl fmt::Debug for TrainingControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainingControl")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

// Function definitions compare and hash by identity of their control.
impl PartialEq for TrainingControl {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for TrainingControl {}

impl Hash for TrainingControl {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.inner) as usize).hash(state);
    }
}
