//! PyO3 bindings: the private `gopark._core` module. Keep this layer thin; the
//! typed Python API lives in python/gopark and `_core.pyi` describes every symbol.

use pyo3::prelude::*;

/// The engine's version.
#[pyfunction]
fn version() -> &'static str {
    crate::VERSION
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    Ok(())
}
