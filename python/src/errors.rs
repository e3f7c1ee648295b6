//! `rookery.Error`, and the guard that keeps Rust panics out of Python.

use std::panic::AssertUnwindSafe;

use datafusion::common::DataFusionError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;
use pyo3::PyResult;

create_exception!(
    rookery,
    Error,
    PyException,
    "An error from Rookery's engine (bad SQL, a missing or corrupt file, a memory limit, a bad option), with the engine's message."
);

/// The engine's error as a `rookery.Error`, with DataFusion's message.
pub fn engine_error(e: DataFusionError) -> PyErr {
    Error::new_err(e.to_string())
}

/// Runs `work`, making a panic in it a `rookery.Error` instead of pyo3's
/// `PanicException` (a `BaseException` that `except Exception` misses).
pub fn guarded<T>(work: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => Err(engine_error(rookery::exec::panic_error(payload.as_ref()))),
    }
}
