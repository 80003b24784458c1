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
use crate::event::{Event, EventColumns};
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

/// A vector as a numpy array, trimmed first (numpy keeps whatever capacity it gets).
fn array<T: numpy::Element>(py: Python<'_>, mut v: Vec<T>) -> Bound<'_, PyArray1<T>> {
    v.shrink_to_fit();
    v.into_pyarray(py)
}

fn columns(py: Python<'_>, c: EventColumns) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("time", array(py, c.time))?;
    d.set_item("kind", array(py, c.kind))?;
    d.set_item("type", array(py, c.typ))?;
    d.set_item("thread", array(py, c.m))?;
    d.set_item("proc", array(py, c.p))?;
    d.set_item("goroutine", array(py, c.g))?;
    d.set_item("stack", array(py, c.stack))?;
    d.set_item("scope", array(py, c.scope))?;
    d.set_item("resource", array(py, c.resource))?;
    d.set_item("from_state", array(py, c.from))?;
    d.set_item("to_state", array(py, c.to))?;
    d.set_item("name", array(py, c.name))?;
    d.set_item("message", array(py, c.message))?;
    d.set_item("transition_stack", array(py, c.tstack))?;
    d.set_item("value0", array(py, c.value0))?;
    d.set_item("value1", array(py, c.value1))?;
    d.set_item("value2", array(py, c.value2))?;
    Ok(d)
}

impl Reader {
    fn open(src: Source, facts: bool) -> PyResult<Self> {
        let mut inner = guarded(|| TraceReader::new(src))?.map_err(|e| decode_error(&e))?;
        if facts {
            inner.summary.collect_facts();
        }
        Ok(Reader {
            inner,
            summary_taken: false,
        })
    }
}

/// One field of a list of rows as a numpy column.
fn column<'py, T, V: numpy::Element>(
    py: Python<'py>,
    rows: &[T],
    field: impl Fn(&T) -> V,
) -> Bound<'py, PyArray1<V>> {
    rows.iter().map(field).collect::<Vec<_>>().into_pyarray(py)
}

#[pymethods]
impl Reader {
    /// Open a trace file (read as a stream); `facts`: also gather step 2's facts.
    #[staticmethod]
    #[pyo3(signature = (path, facts = false))]
    fn from_path(path: &str, facts: bool) -> PyResult<Self> {
        let f = File::open(path).map_err(|e| PyOSError::new_err(format!("{path}: {e}")))?;
        Reader::open(Box::new(f), facts)
    }

    /// Read a trace held in memory (the bytes are copied once).
    #[staticmethod]
    #[pyo3(signature = (data, facts = false))]
    fn from_bytes(data: &[u8], facts: bool) -> PyResult<Self> {
        Reader::open(Box::new(Cursor::new(data.to_vec())), facts)
    }

    /// The N of the "go 1.N trace" header.
    fn version(&self) -> u32 {
        self.inner.version()
    }

    /// The next generation's events as columns, or None at the end. At damage, the
    /// events before it are returned and the next call raises
    /// TraceDecodeError(kind, offset, message); earlier results stay valid.
    fn next_generation<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let mut out = EventColumns::default();
        let inner = &mut self.inner;
        let res =
            py.detach(|| guarded(|| inner.next_generation_with(&mut |e: &Event| out.push(e))))?;
        match res {
            // Events ordered before the damage come first; the error on the next call.
            Err(_) if !out.is_empty() => Ok(Some(columns(py, out)?)),
            Err(e) => Err(decode_error(&e)),
            Ok(false) if out.is_empty() => Ok(None),
            Ok(_) => Ok(Some(columns(py, out)?)),
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
        d.set_item("id", array(py, t.id))?;
        d.set_item("created", array(py, t.created))?;
        d.set_item("creator", array(py, t.creator))?;
        d.set_item("create_stack", array(py, t.create_stack))?;
        d.set_item("start_stack", array(py, t.start_stack))?;
        d.set_item("first_seen", array(py, t.first_seen))?;
        d.set_item("first_run", array(py, t.first_run))?;
        d.set_item("ended", array(py, t.ended))?;
        d.set_item("state", array(py, t.state))?;
        d.set_item("since", array(py, t.since))?;
        d.set_item("running_ns", array(py, t.running_ns))?;
        d.set_item("runnable_ns", array(py, t.runnable_ns))?;
        d.set_item("syscall_ns", array(py, t.syscall_ns))?;
        d.set_item("blocked_ns", array(py, t.blocked_ns))?;
        d.set_item("start_runnable_ns", array(py, t.start_runnable_ns))?;
        d.set_item("start_syscall_ns", array(py, t.start_syscall_ns))?;
        d.set_item("block_reason", array(py, t.block_reason))?;
        d.set_item("block_stack", array(py, t.block_stack))?;
        d.set_item("block_time", array(py, t.block_time))?;
        d.set_item("unblocker", array(py, t.unblocker))?;
        d.set_item("unblock_stack", array(py, t.unblock_stack))?;
        d.set_item("last_stack", array(py, t.last_stack))?;
        d.set_item("transitions", array(py, t.transitions))?;
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

    /// Step 2's facts (see facts.rs), once the trace is read to the end, and only once:
    /// per-goroutine columns in the summary's row order, the counted runnable intervals,
    /// and the runnable_by_stack / site / pair columns. None if not asked for.
    fn facts<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        if !self.inner.is_done() {
            return Err(PyRuntimeError::new_err(
                "the trace is not read to the end yet",
            ));
        }
        let Some(f) = self.inner.summary.take_facts() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        let g = f.goroutines;
        d.set_item("wakes", array(py, g.wakes))?;
        d.set_item("runtime_wakes", array(py, g.runtime_wakes))?;
        d.set_item("first_wake_ns", array(py, g.first_wake))?;
        d.set_item("last_wake_ns", array(py, g.last_wake))?;
        d.set_item("first_state", array(py, g.first_state))?;
        d.set_item("runnable_waits", array(py, g.runnable_waits))?;
        d.set_item("runnable_ns", array(py, g.runnable_ns))?;
        d.set_item("latencies_ns", array(py, f.latencies))?;
        let by_stack = &f.runnable_by_stack;
        d.set_item("runnable_stack", column(py, by_stack, |r| r.0))?;
        d.set_item("runnable_stack_n", column(py, by_stack, |r| r.1))?;
        d.set_item("runnable_stack_ns", column(py, by_stack, |r| r.2))?;
        let sites = &f.sites;
        d.set_item("site_stack", column(py, sites, |r| r.0))?;
        d.set_item("site_reason", column(py, sites, |r| r.1))?;
        d.set_item("site_waits", column(py, sites, |r| r.2.waits))?;
        d.set_item("site_wait_ns", column(py, sites, |r| r.2.wait_ns))?;
        d.set_item("site_open_waits", column(py, sites, |r| r.2.open_waits))?;
        d.set_item("site_open_ns", column(py, sites, |r| r.2.open_ns))?;
        let pairs = &f.wait_pairs;
        d.set_item("pair_goroutine", column(py, pairs, |r| r.0))?;
        d.set_item("pair_stack", column(py, pairs, |r| r.1))?;
        d.set_item("pair_count", column(py, pairs, |r| r.2))?;
        d.set_item("procs", f.procs)?;
        Ok(Some(d))
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
