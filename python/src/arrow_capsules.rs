//! The Arrow PyCapsule interface both ways: arrays and schemas out as
//! `arrow_array` / `arrow_schema` capsules, arrays and streams in from any
//! object with `__arrow_c_array__` / `__arrow_c_stream__` (pyarrow,
//! polars, pandas through pyarrow, nanoarrow). Buffers are shared, never
//! copied.

use std::sync::Arc;

use datafusion::arrow::array::{make_array, ArrayRef, RecordBatch, StructArray};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use datafusion::arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyTuple};

use crate::errors::Error;

/// An Arrow array handed to Python: `pyarrow.array(x)` (or
/// `pyarrow.record_batch(x)` for a struct of columns) takes it without a
/// copy through `__arrow_c_array__`.
#[pyclass(frozen, module = "rookery._rookery")]
pub struct ArrowArray {
    array: ArrayRef,
}

impl ArrowArray {
    pub fn new(array: ArrayRef) -> Self {
        Self { array }
    }

    /// A batch as one struct array of its columns.
    pub fn from_batch(batch: RecordBatch) -> Self {
        Self::new(Arc::new(StructArray::from(batch)))
    }
}

#[pymethods]
impl ArrowArray {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        // A consumer may ask for another schema; this one is given as it is
        // (the protocol lets a producer ignore the request).
        let _ = requested_schema;
        let (array, schema) = to_ffi(&self.array.to_data()).map_err(|e| Error::new_err(e.to_string()))?;
        let schema = PyCapsule::new_with_value(py, schema, c"arrow_schema")?;
        let array = PyCapsule::new_with_value(py, array, c"arrow_array")?;
        PyTuple::new(py, [schema.into_any(), array.into_any()])
    }

    fn __len__(&self) -> usize {
        self.array.len()
    }
}

/// An `arrow_schema` capsule of `schema`.
pub fn schema_capsule<'py>(py: Python<'py>, schema: &Schema) -> PyResult<Bound<'py, PyCapsule>> {
    let schema = FFI_ArrowSchema::try_from(schema).map_err(|e| Error::new_err(e.to_string()))?;
    PyCapsule::new_with_value(py, schema, c"arrow_schema")
}

/// `obj.method()` of the PyCapsule interface; a TypeError naming `what`
/// was expected when `obj` has no such method.
fn export<'py>(obj: &Bound<'py, PyAny>, method: &str, what: &str) -> PyResult<Bound<'py, PyAny>> {
    if !obj.hasattr(method)? {
        return Err(PyTypeError::new_err(format!(
            "expected {what} (an object with {method}), got {}",
            obj.get_type().name()?
        )));
    }
    obj.call_method0(method)
}

/// The array behind `obj.__arrow_c_array__()`, sharing its buffers.
pub fn import_array(obj: &Bound<'_, PyAny>) -> PyResult<ArrayRef> {
    let pair = export(obj, "__arrow_c_array__", "an Arrow array")?;
    let (schema, array): (Bound<'_, PyCapsule>, Bound<'_, PyCapsule>) = pair.extract()?;
    let schema = schema.pointer_checked(Some(c"arrow_schema"))?.cast::<FFI_ArrowSchema>();
    let array = array.pointer_checked(Some(c"arrow_array"))?.cast::<FFI_ArrowArray>();
    // SAFETY: the capsules are named by the protocol and point at its
    // structs; `from_raw` moves the array out and leaves a released one
    // behind, which the capsule's destructor then skips.
    let data = unsafe {
        let array = FFI_ArrowArray::from_raw(array.as_ptr());
        from_ffi(array, schema.as_ref())
    }
    .map_err(|e| Error::new_err(format!("cannot read the Arrow array: {e}")))?;
    Ok(make_array(data))
}

/// The stream behind `obj.__arrow_c_stream__()`, moved out of its capsule.
pub fn import_stream(obj: &Bound<'_, PyAny>) -> PyResult<ArrowArrayStreamReader> {
    let capsule = export(obj, "__arrow_c_stream__", "an Arrow table or stream")?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let stream = capsule
        .pointer_checked(Some(c"arrow_array_stream"))?
        .cast::<FFI_ArrowArrayStream>();
    // SAFETY: as in `import_array`; `from_raw` takes the stream over and
    // marks the capsule's copy released.
    unsafe { ArrowArrayStreamReader::from_raw(stream.as_ptr()) }
        .map_err(|e| Error::new_err(format!("cannot read the Arrow stream: {e}")))
}
