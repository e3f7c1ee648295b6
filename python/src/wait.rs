//! Waiting for the engine from Python: the work runs on the session's
//! tokio runtime while the calling thread waits with the GIL released, and
//! wakes every 100 ms to let Python handle signals (Ctrl-C, Jupyter's stop
//! button) and to draw progress.

use std::future::Future;
use std::time::Duration;

use datafusion::common::{DataFusionError, Result};
use pyo3::prelude::*;
use rookery::exec::{catching_panics, panic_error};
use rookery_models::control::TrainingControl;
use tokio::runtime::Runtime;

use crate::errors::engine_error;

const POLL: Duration = Duration::from_millis(100);

/// Runs `work` to its end and returns its result. It clears `training`'s
/// cancel first, so a Ctrl-C that stopped an earlier run does not stop
/// this one. Every 100 ms Python's signal handlers run; when one raises
/// (`KeyboardInterrupt`), `training` is cancelled (a `cnn_train` stops at
/// its next batch), the task is aborted (dropping its streams stops
/// DataFusion's tasks) and the exception is raised. `tick`, when given,
/// is called at the same times (progress display).
pub fn wait<T: Send + 'static>(
    py: Python<'_>,
    runtime: &Runtime,
    work: impl Future<Output = Result<T>> + Send + 'static,
    tick: Option<&Bound<'_, PyAny>>,
    training: &TrainingControl,
) -> PyResult<T> {
    training.reset();
    let mut task = runtime.spawn(catching_panics(work));
    loop {
        let finished = py.detach(|| runtime.block_on(async { tokio::time::timeout(POLL, &mut task).await.ok() }));
        match finished {
            Some(Ok(result)) => return result.map_err(engine_error),
            Some(Err(join)) => {
                let error = if join.is_panic() {
                    panic_error(join.into_panic().as_ref())
                } else {
                    DataFusionError::Execution("the query's task was cancelled".to_string())
                };
                return Err(engine_error(error));
            }
            None => {
                // Running Python code makes the interpreter handle pending
                // signals; check_signals alone only reports them.
                let interrupted = py
                    .run(c"pass", None, None)
                    .and_then(|_| py.check_signals())
                    .and_then(|_| tick.map_or(Ok(()), |tick| tick.call0().map(drop)));
                if let Err(e) = interrupted {
                    training.cancel();
                    task.abort();
                    return Err(e);
                }
            }
        }
    }
}
