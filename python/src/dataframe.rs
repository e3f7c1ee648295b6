//! A lazy DataFrame for Python: nothing runs until results are asked for;
//! then batches stream from the engine one at a time, each handed over as
//! Arrow without a copy.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, RecordBatchReader};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ffi_stream::FFI_ArrowArrayStream;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::dataframe::DataFrame as EngineFrame;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use rookery::display::compact_for_text;
use rookery::exec::panic_error;
use rookery::progress::PlanProgress;
use rookery_models::control::TrainingControl;
use tokio::runtime::Runtime;

use crate::arrow_capsules::{schema_capsule, ArrowArray};
use crate::errors::{engine_error, guarded, Error};
use crate::wait::wait;

#[pyclass(frozen, module = "rookery._rookery")]
pub struct DataFrame {
    frame: EngineFrame,
    runtime: Arc<Runtime>,
    training: TrainingControl,
    progress: PlanProgress,
}

impl DataFrame {
    pub fn new(frame: EngineFrame, runtime: Arc<Runtime>, training: TrainingControl, progress: PlanProgress) -> Self {
        Self {
            frame,
            runtime,
            training,
            progress,
        }
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(self.frame.schema().as_arrow().clone())
    }

    /// Starts the query: planning errors are raised here.
    fn start(&self, py: Python<'_>, tick: Option<&Bound<'_, PyAny>>) -> PyResult<SendableRecordBatchStream> {
        wait(
            py,
            &self.runtime,
            {
                let (progress, frame) = (self.progress.clone(), self.frame.clone());
                async move { progress.execute(frame).await }
            },
            tick,
            &self.training,
        )
    }

    fn collect_all(&self, py: Python<'_>, frame: EngineFrame) -> PyResult<Vec<RecordBatch>> {
        wait(py, &self.runtime, frame.collect(), None, &self.training)
    }
}

#[pymethods]
impl DataFrame {
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema())
    }

    /// Runs the query and returns its stream of batches.
    #[pyo3(signature = (tick=None))]
    fn execute(&self, py: Python<'_>, tick: Option<Bound<'_, PyAny>>) -> PyResult<BatchStream> {
        guarded(|| {
            let stream = self.start(py, tick.as_ref())?;
            Ok(BatchStream {
                schema: self.schema(),
                stream: Mutex::new(Some(stream)),
                runtime: Arc::clone(&self.runtime),
                training: self.training.clone(),
            })
        })
    }

    /// The Arrow C stream of the results (the PyCapsule interface): any
    /// Arrow consumer reads them batch by batch without a copy.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The results are given in their own schema (the protocol lets a
        // producer ignore a requested one).
        let _ = requested_schema;
        guarded(|| {
            let stream = self.start(py, None)?;
            let reader = BlockingReader {
                schema: self.schema(),
                stream,
                runtime: Arc::clone(&self.runtime),
            };
            let stream = FFI_ArrowArrayStream::new(Box::new(reader));
            PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
        })
    }

    /// The first `n` rows (then `offset` skipped first), still lazy.
    #[pyo3(signature = (n, offset=0))]
    fn limit(&self, n: usize, offset: usize) -> PyResult<DataFrame> {
        let frame = self.frame.clone().limit(offset, Some(n)).map_err(engine_error)?;
        Ok(DataFrame::new(
            frame,
            Arc::clone(&self.runtime),
            self.training.clone(),
            self.progress.clone(),
        ))
    }

    /// The query's plan as text (`analyze` runs it and adds its metrics).
    #[pyo3(signature = (verbose=false, analyze=false))]
    fn explain(&self, py: Python<'_>, verbose: bool, analyze: bool) -> PyResult<String> {
        guarded(|| {
            let frame = self.frame.clone().explain(verbose, analyze).map_err(engine_error)?;
            let batches = self.collect_all(py, frame)?;
            Ok(pretty_format_batches(&batches)
                .map_err(|e| Error::new_err(e.to_string()))?
                .to_string())
        })
    }

    /// The first `n` rows as a text table; images and binary values are
    /// summarised as the CLI shows them.
    fn show_text(&self, py: Python<'_>, n: usize) -> PyResult<String> {
        guarded(|| {
            let frame = self.frame.clone().limit(0, Some(n)).map_err(engine_error)?;
            let batches = self.collect_all(py, frame)?;
            let batches = batches
                .iter()
                .map(|batch| compact_for_text(batch, false))
                .collect::<datafusion::common::Result<Vec<_>>>()
                .map_err(engine_error)?;
            if batches.is_empty() {
                return Ok(format!("(no rows; columns: {})", self.column_names().join(", ")));
            }
            Ok(pretty_format_batches(&batches)
                .map_err(|e| Error::new_err(e.to_string()))?
                .to_string())
        })
    }

    /// Number of rows, counted by the engine.
    #[pyo3(signature = (tick=None))]
    fn count(&self, py: Python<'_>, tick: Option<Bound<'_, PyAny>>) -> PyResult<usize> {
        guarded(|| {
            wait(
                py,
                &self.runtime,
                self.frame.clone().count(),
                tick.as_ref(),
                &self.training,
            )
        })
    }

    fn column_names(&self) -> Vec<String> {
        self.schema().fields().iter().map(|f| f.name().clone()).collect()
    }
}

/// A running query's results, one batch per `next_batch`.
#[pyclass(frozen, module = "rookery._rookery")]
pub struct BatchStream {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
    runtime: Arc<Runtime>,
    training: TrainingControl,
}

#[pymethods]
impl BatchStream {
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        schema_capsule(py, &self.schema)
    }

    /// The next batch (a struct array of its columns), or None at the end.
    /// Ctrl-C while waiting stops the query and raises KeyboardInterrupt.
    #[pyo3(signature = (tick=None))]
    fn next_batch(&self, py: Python<'_>, tick: Option<Bound<'_, PyAny>>) -> PyResult<Option<ArrowArray>> {
        guarded(|| {
            let taken = self.stream.lock().ok().and_then(|mut slot| slot.take());
            let Some(mut stream) = taken else {
                return Ok(None);
            };
            // The stream travels with the task, so an interrupt that aborts
            // the task drops it and so stops the query.
            let (stream, batch) = wait(
                py,
                &self.runtime,
                async move {
                    let batch = stream.next().await.transpose()?;
                    Ok((stream, batch))
                },
                tick.as_ref(),
                &self.training,
            )?;
            match batch {
                Some(batch) => {
                    if let Ok(mut slot) = self.stream.lock() {
                        *slot = Some(stream);
                    }
                    Ok(Some(ArrowArray::from_batch(batch)))
                }
                None => Ok(None),
            }
        })
    }

    /// Stops the query and frees what it holds.
    fn close(&self) {
        if let Ok(mut slot) = self.stream.lock() {
            slot.take();
        }
    }
}

/// The engine's stream as a blocking Arrow reader, for the C stream
/// interface: each `next` waits for the next batch on the session's
/// runtime. A panic in the query becomes the reader's error, since it
/// must not unwind across the C interface.
struct BlockingReader {
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    runtime: Arc<Runtime>,
}

impl Iterator for BlockingReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = std::panic::catch_unwind(AssertUnwindSafe(|| self.runtime.block_on(self.stream.next())));
        match next {
            Ok(next) => next.map(|batch| batch.map_err(|e| ArrowError::ExternalError(Box::new(e)))),
            Err(payload) => Some(Err(ArrowError::ExternalError(Box::new(panic_error(payload.as_ref()))))),
        }
    }
}

impl RecordBatchReader for BlockingReader {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
