//! Long synchronous work called from an async runtime's worker thread
//! (training, waiting for a model download): the runtime is told, so it
//! moves that worker's other tasks (a server's `/health`, a cancel, other
//! partitions' I/O) to another thread while the work runs.
//!
//! Not for work inside a query's hot path: decoding frames and loading an
//! ONNX Runtime session stay in place, since while a worker hands its tasks
//! on, the scans of other partitions run ahead and buffer decoded frames
//! (measured: 1.3-1.8x the seed count's peak RSS). `rookery serve` runs
//! queries on a runtime of their own, so its `/health` and cancels do not
//! wait on them.

/// Runs `work` on this thread, letting the tokio runtime it belongs to (if
/// a multi-threaded one) hand this worker's other tasks to another thread
/// meanwhile. Outside a runtime, or on a current-thread one, it just runs.
pub fn off_async_worker<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Drives `work` (object store I/O) to completion from synchronous code
/// inside or outside a runtime. On a multi-threaded runtime's worker it
/// hands the worker's other tasks on (`block_in_place`) and drives the I/O
/// itself, so no second runtime is kept and no worker waits on one.
/// Elsewhere (a current-thread runtime, or none) the I/O runs on a
/// short-lived thread with a runtime of its own. `Err` says why it could
/// not run.
pub fn block_on_io<T: Send>(work: impl std::future::Future<Output = T> + Send) -> Result<T, String> {
    use tokio::runtime::{Builder, Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| handle.block_on(work)))
        }
        _ => std::thread::scope(|scope| {
            let io = scope.spawn(|| {
                Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|runtime| runtime.block_on(work))
                    .map_err(|e| format!("cannot start I/O: {e}"))
            });
            io.join().map_err(|_| "I/O stopped before it finished".to_string())?
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_anywhere() {
        assert_eq!(off_async_worker(|| 1), 1);
        let current = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(current.block_on(async { off_async_worker(|| 2) }), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_tasks_go_on_meanwhile() {
        let ticker = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            "ticked"
        });
        // Blocks its worker for longer than the ticker needs.
        off_async_worker(|| std::thread::sleep(std::time::Duration::from_millis(300)));
        assert_eq!(ticker.await.unwrap(), "ticked");
    }
}
