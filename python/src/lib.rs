//! `rookery._rookery`, the native half of the `rookery` Python package: a
//! Rookery session, lazy DataFrames whose results cross to Python through
//! the Arrow C data interface (no copy), PNG thumbnails for notebooks, and
//! Rookery's functions as datafusion-python capsules. The Python half
//! (`python/rookery/`) builds the user-facing API on these.

use pyo3::prelude::*;

mod arrow_capsules;
mod dataframe;
mod errors;
mod ffi_export;
mod session;
mod thumbnails;
mod wait;

#[pymodule]
fn _rookery(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<errors::Error>())?;
    m.add_class::<session::Session>()?;
    m.add_class::<dataframe::DataFrame>()?;
    m.add_class::<dataframe::BatchStream>()?;
    m.add_class::<arrow_capsules::ArrowArray>()?;
    m.add_class::<ffi_export::ExportedScalar>()?;
    m.add_class::<ffi_export::ExportedAggregate>()?;
    m.add_class::<ffi_export::ExportedTableFunction>()?;
    m.add_function(wrap_pyfunction!(thumbnails::png_thumbnails, m)?)?;
    m.add_function(wrap_pyfunction!(ffi_export::ffi_exports, m)?)?;
    m.add_function(wrap_pyfunction!(session::parse_byte_size, m)?)?;
    Ok(())
}
