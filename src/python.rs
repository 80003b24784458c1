//! PyO3 bindings: the private `gopark._core` module. Keep this layer thin; the
//! typed Python API lives in python/gopark/formats/trace.py and `_core.pyi` describes
//! every symbol. Columns are handed over as numpy arrays that take ownership of the
//! Rust vectors (no copy).

use std::fs::File;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};

use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::TraceError;
use crate::TraceReader;
use crate::event::Event;
use crate::spec;

pyo3::create_exception!(_core, TraceDecodeError, pyo3::exceptions::PyValueError);

/// The engine's version.
#[pyfunction]
fn version() -> &'static str {
    crate::VERSION
}

/// Wire event type numbers by name (for tools that encode test traces).
#[pyfunction]
fn wire_event_types(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (i, sp) in spec::SPECS.iter().enumerate() {
        if !sp.name.is_empty() {
            d.set_item(sp.name, (i, sp.args.to_vec()))?;
        }
    }
    Ok(d)
}

fn decode_error(e: &TraceError) -> PyErr {
    TraceDecodeError::new_err((e.kind.name(), e.offset, e.message.clone()))
}

/// Run engine code, turning a panic (a bug) into a Python exception instead of an abort.
fn guarded<T>(f: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        PyRuntimeError::new_err(
            "internal error in the trace engine (panic); please report it with the trace",
        )
    })
}

type Source = Box<dyn Read + Send + Sync>;

/// A trace being read, generation by generation.
#[pyclass(module = "gopark._core")]
struct Reader {
    inner: TraceReader<Source>,
    summary_taken: bool,
}

fn columns<'py>(py: Python<'py>, evs: &[Event]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    macro_rules! col {
        ($name:literal, $f:expr) => {
            d.set_item(
                $name,
                evs.iter().map($f).collect::<Vec<_>>().into_pyarray(py),
            )?;
        };
    }
    col!("time", |e: &Event| e.time);
    col!("kind", |e: &Event| e.kind);
    col!("type", |e: &Event| e.typ);
    col!("thread", |e: &Event| e.m);
    col!("proc", |e: &Event| e.p);
    col!("goroutine", |e: &Event| e.g);
    col!("stack", |e: &Event| e.stack);
    col!("scope", |e: &Event| e.scope);
    col!("resource", |e: &Event| e.resource);
    col!("from_state", |e: &Event| e.from);
    col!("to_state", |e: &Event| e.to);
    col!("name", |e: &Event| e.name);
    col!("message", |e: &Event| e.message);
    col!("transition_stack", |e: &Event| e.tstack);
    col!("value0", |e: &Event| e.values[0]);
    col!("value1", |e: &Event| e.values[1]);
    col!("value2", |e: &Event| e.values[2]);
    Ok(d)
}

#[pymethods]
impl Reader {
    /// Open a trace file (read as a stream).
    #[staticmethod]
    fn from_path(path: &str) -> PyResult<Self> {
        let f = File::open(path).map_err(|e| PyOSError::new_err(format!("{path}: {e}")))?;
        let r = guarded(|| TraceReader::new(Box::new(f) as Source))?;
        r.map(|inner| Reader {
            inner,
            summary_taken: false,
        })
        .map_err(|e| decode_error(&e))
    }

    /// Read a trace held in memory (the bytes are copied once).
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        let src: Source = Box::new(Cursor::new(data.to_vec()));
        let r = guarded(|| TraceReader::new(src))?;
        r.map(|inner| Reader {
            inner,
            summary_taken: false,
        })
        .map_err(|e| decode_error(&e))
    }

    /// The N of the "go 1.N trace" header.
    fn version(&self) -> u32 {
        self.inner.version()
    }

    /// The next generation's events as columns, or None at the end. At damage, the
    /// events before it are returned and the next call raises
    /// TraceDecodeError(kind, offset, message); earlier results stay valid.
    fn next_generation<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let mut out = Vec::new();
        let inner = &mut self.inner;
        let res = py.detach(|| guarded(|| inner.next_generation(&mut out)))?;
        match res {
            // Events ordered before the damage come first; the error on the next call.
            Err(_) if !out.is_empty() => Ok(Some(columns(py, &out)?)),
            Err(e) => Err(decode_error(&e)),
            Ok(false) if out.is_empty() => Ok(None),
            Ok(_) => Ok(Some(columns(py, &out)?)),
        }
    }

    /// Read the rest keeping only the summary; returns the number of events read.
    /// Stops at damage without raising (see `error`).
    fn drain(&mut self, py: Python<'_>) -> PyResult<u64> {
        let inner = &mut self.inner;
        py.detach(|| guarded(|| inner.drain()))
    }

    /// The error that stopped reading, as (kind, offset, message), or None.
    fn error(&self) -> Option<(&'static str, u64, String)> {
        self.inner
            .error
            .as_ref()
            .map(|e| (e.kind.name(), e.offset, e.message.clone()))
    }

    /// Bytes consumed so far, and the end of the last complete generation.
    fn offsets(&self) -> (u64, u64) {
        (self.inner.offset(), self.inner.good_bytes())
    }

    /// Catalog strings (index = string ID).
    fn strings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.catalog.strings())
    }

    /// Catalog frames as columns pc, func, file, line (index = frame ID).
    fn frames<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let f = self.inner.catalog.frames();
        let d = PyDict::new(py);
        d.set_item(
            "pc",
            f.iter().map(|x| x.pc).collect::<Vec<_>>().into_pyarray(py),
        )?;
        d.set_item(
            "func",
            f.iter()
                .map(|x| x.func)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "file",
            f.iter()
                .map(|x| x.file)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "line",
            f.iter()
                .map(|x| x.line)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        Ok(d)
    }

    /// Stack table: (starts, frame_ids); stack i is frame_ids[starts[i]:starts[i+1]],
    /// innermost frame first. Stack 0 is "no stack".
    fn stacks<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u32>>) {
        let (starts, frames) = self.inner.catalog.stack_table();
        (
            starts.to_vec().into_pyarray(py),
            frames.to_vec().into_pyarray(py),
        )
    }

    /// Per-goroutine summary as columns, plus blocked time by reason as (row, reason
    /// string ID, ns) columns under "reason_*". Once the trace is read to the end the
    /// columns are handed over without copying, and only once; before that, a copy.
    fn summary<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if self.summary_taken {
            return Err(PyRuntimeError::new_err(
                "the summary was already taken from this reader",
            ));
        }
        let done = self.inner.is_done();
        let s = &mut self.inner.summary;
        let reasons = s.reasons();
        let t = if done {
            self.summary_taken = true;
            std::mem::take(&mut s.goroutines)
        } else {
            s.goroutines.clone()
        };
        let d = PyDict::new(py);
        d.set_item("id", t.id.into_pyarray(py))?;
        d.set_item("created", t.created.into_pyarray(py))?;
        d.set_item("creator", t.creator.into_pyarray(py))?;
        d.set_item("create_stack", t.create_stack.into_pyarray(py))?;
        d.set_item("start_stack", t.start_stack.into_pyarray(py))?;
        d.set_item("first_seen", t.first_seen.into_pyarray(py))?;
        d.set_item("first_run", t.first_run.into_pyarray(py))?;
        d.set_item("ended", t.ended.into_pyarray(py))?;
        d.set_item("state", t.state.into_pyarray(py))?;
        d.set_item("since", t.since.into_pyarray(py))?;
        d.set_item("running_ns", t.running_ns.into_pyarray(py))?;
        d.set_item("runnable_ns", t.runnable_ns.into_pyarray(py))?;
        d.set_item("syscall_ns", t.syscall_ns.into_pyarray(py))?;
        d.set_item("blocked_ns", t.blocked_ns.into_pyarray(py))?;
        d.set_item("start_runnable_ns", t.start_runnable_ns.into_pyarray(py))?;
        d.set_item("start_syscall_ns", t.start_syscall_ns.into_pyarray(py))?;
        d.set_item("block_reason", t.block_reason.into_pyarray(py))?;
        d.set_item("block_stack", t.block_stack.into_pyarray(py))?;
        d.set_item("block_time", t.block_time.into_pyarray(py))?;
        d.set_item("unblocker", t.unblocker.into_pyarray(py))?;
        d.set_item("unblock_stack", t.unblock_stack.into_pyarray(py))?;
        d.set_item("last_stack", t.last_stack.into_pyarray(py))?;
        d.set_item("transitions", t.transitions.into_pyarray(py))?;
        d.set_item(
            "reason_row",
            reasons
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "reason_string",
            reasons
                .iter()
                .map(|r| r.1)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        d.set_item(
            "reason_ns",
            reasons
                .iter()
                .map(|r| r.2)
                .collect::<Vec<_>>()
                .into_pyarray(py),
        )?;
        Ok(d)
    }

    /// Whole-trace counters so far.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.inner.summary.counts;
        let d = PyDict::new(py);
        d.set_item("events", c.events)?;
        d.set_item("transitions", c.transitions)?;
        d.set_item("cpu_samples", c.cpu_samples)?;
        d.set_item("gc_cycles", c.gc_cycles)?;
        d.set_item("stw_pauses", c.stw_pauses)?;
        d.set_item("stw_ns", c.stw_ns)?;
        d.set_item("first_time", c.first_time)?;
        d.set_item("last_time", c.last_time)?;
        d.set_item("by_kind", c.by_kind.to_vec())?;
        Ok(d)
    }

    /// One dict per generation read: gen, offsets, start time, clock snapshot, events.
    fn generations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let l = PyList::empty(py);
        for g in &self.inner.generations {
            let d = PyDict::new(py);
            d.set_item("gen", g.genno)?;
            d.set_item("start_offset", g.start_offset)?;
            d.set_item("end_offset", g.end_offset)?;
            d.set_item("start_time", g.start_time)?;
            d.set_item("ns_per_tick", g.ns_per_tick)?;
            d.set_item("events", g.events)?;
            d.set_item("experimental_bytes", g.experimental_bytes)?;
            match g.clock {
                Some(c) => d.set_item("clock", (c.trace, c.mono, c.sec, c.nsec))?,
                None => d.set_item("clock", py.None())?,
            }
            l.append(d)?;
        }
        Ok(l)
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(wire_event_types, m)?)?;
    m.add_class::<Reader>()?;
    m.add("TraceDecodeError", m.py().get_type::<TraceDecodeError>())?;
    Ok(())
}
