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
