//! Rookery's functions for a datafusion-python session, as the capsules
//! of `datafusion-ffi` that datafusion-python 55 takes
//! (`ScalarUDF.from_pycapsule`, `AggregateUDF.from_pycapsule`,
//! `udtf(obj, name)`).
//!
//! What crosses: every scalar and aggregate function and the table
//! functions (`images()`, `image_tiles()`). What does not: that session's
//! memory pool (the functions reserve in a pool of their own, 80 % of the
//! machine's memory as in a Rookery session), its `rookery.*` options
//! (the functions use the defaults), and `COPY ... STORED AS IMAGES` and
//! `CREATE EXTERNAL TABLE ... STORED AS IMAGES` (file formats and table
//! factories have no FFI form).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use datafusion::catalog::TableFunctionImpl;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::TaskContextProvider;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::udaf::FFI_AggregateUDF;
use datafusion_ffi::udf::FFI_ScalarUDF;
use datafusion_ffi::udtf::FFI_TableFunction;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use tokio::runtime::Runtime;

use crate::errors::{engine_error, guarded, Error};
use crate::session::engine_runtime;

/// The session the exported functions belong to: its runtime runs their
/// async work (scans), and it gives them a task context. It lives as long
/// as the process, because the capsules handed out hold only handles to
/// it and a datafusion-python session may use them at any time.
struct Exporter {
    runtime: Runtime,
    ctx: Arc<SessionContext>,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

fn exporter() -> PyResult<&'static Exporter> {
    if let Some(exporter) = EXPORTER.get() {
        return Ok(exporter);
    }
    let runtime = engine_runtime()?;
    let builder = SessionStateBuilder::new()
        .with_config(SessionConfig::new())
        .with_runtime_env(rookery::session::runtime_env(None).map_err(engine_error)?);
    // Without DataFusion's defaults: the state holds Rookery's functions only.
    let state = rookery::register(builder).build();
    let ctx = Arc::new(SessionContext::new_with_state(state));
    Ok(EXPORTER.get_or_init(|| Exporter { runtime, ctx }))
}

#[pyclass(frozen, module = "rookery._rookery")]
pub struct ExportedScalar {
    udf: Arc<ScalarUDF>,
}

#[pymethods]
impl ExportedScalar {
    fn __datafusion_scalar_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        PyCapsule::new_with_value(py, FFI_ScalarUDF::from(Arc::clone(&self.udf)), c"datafusion_scalar_udf")
    }
}

#[pyclass(frozen, module = "rookery._rookery")]
pub struct ExportedAggregate {
    udaf: Arc<AggregateUDF>,
}

#[pymethods]
impl ExportedAggregate {
    fn __datafusion_aggregate_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        PyCapsule::new_with_value(
            py,
            FFI_AggregateUDF::from(Arc::clone(&self.udaf)),
            c"datafusion_aggregate_udf",
        )
    }
}

#[pyclass(frozen, module = "rookery._rookery")]
pub struct ExportedTableFunction {
    function: Arc<dyn TableFunctionImpl>,
}

#[pymethods]
impl ExportedTableFunction {
    /// datafusion-python passes its session, whose logical codec the
    /// function's arguments cross with; without one, DataFusion's default
    /// codec and Rookery's own task context serve.
    #[pyo3(signature = (session=None))]
    fn __datafusion_table_function__<'py>(
        &self,
        py: Python<'py>,
        session: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let exporter = exporter()?;
        let handle = Some(exporter.runtime.handle().clone());
        let codec = match session {
            Some(session) => logical_codec(session)?,
            None => {
                let provider: Arc<dyn TaskContextProvider> = exporter.ctx.clone();
                FFI_LogicalExtensionCodec::new_default(&provider)
            }
        };
        let function = FFI_TableFunction::new_with_ffi_codec(Arc::clone(&self.function), handle, codec);
        PyCapsule::new_with_value(py, function, c"datafusion_table_function")
    }
}

/// The logical extension codec of a datafusion-python session (or the
/// capsule itself).
fn logical_codec(session: Bound<'_, PyAny>) -> PyResult<FFI_LogicalExtensionCodec> {
    const GETTER: &str = "__datafusion_logical_extension_codec__";
    let capsule = if session.hasattr(GETTER)? {
        session.getattr(GETTER)?.call0()?
    } else {
        session
    };
    let capsule = capsule.cast::<PyCapsule>()?;
    let codec = capsule
        .pointer_checked(Some(c"datafusion_logical_extension_codec"))?
        .cast::<FFI_LogicalExtensionCodec>();
    // SAFETY: a capsule of this name holds this struct; it is cloned
    // through its own clone function, the capsule keeps its copy.
    Ok(unsafe { codec.as_ref() }.clone())
}

/// Every function to export, as `(kind, name, object)`: kind is
/// "scalar", "aggregate" or "table".
#[pyfunction]
pub fn ffi_exports(py: Python<'_>) -> PyResult<Vec<(String, String, Py<PyAny>)>> {
    guarded(|| {
        let exporter = exporter()?;
        let state = exporter.ctx.state();
        let mut exports = Vec::new();
        // By name: sorted, and an alias does not export its function twice.
        let scalars: BTreeMap<_, _> = state
            .scalar_functions()
            .values()
            .map(|f| (f.name().to_string(), f))
            .collect();
        for (name, udf) in scalars {
            let udf = Arc::clone(udf);
            exports.push((
                "scalar".to_string(),
                name,
                Py::new(py, ExportedScalar { udf })?.into_any(),
            ));
        }
        let aggregates: BTreeMap<_, _> = state
            .aggregate_functions()
            .values()
            .map(|f| (f.name().to_string(), f))
            .collect();
        for (name, udaf) in aggregates {
            let udaf = Arc::clone(udaf);
            exports.push((
                "aggregate".to_string(),
                name,
                Py::new(py, ExportedAggregate { udaf })?.into_any(),
            ));
        }
        let mut tables: Vec<_> = state.table_functions().iter().collect();
        tables.sort_by(|a, b| a.0.cmp(b.0));
        for (name, function) in tables {
            let function = Arc::clone(function.function());
            exports.push((
                "table".to_string(),
                name.clone(),
                Py::new(py, ExportedTableFunction { function })?.into_any(),
            ));
        }
        if exports.is_empty() {
            return Err(Error::new_err("no Rookery functions to export"));
        }
        Ok(exports)
    })
}
