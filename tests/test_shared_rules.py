"""Rules that several modules share through one function: these pin what each caller relies on."""

from __future__ import annotations

from gopark.analysis import classify
from gopark.analysis.heap import site_frame
from gopark.model import Frame


def test_runtime_frames_for_waits_keep_the_std_internal_packages() -> None:
    # internal/poll and internal/sync are where io-wait and mutex goroutines park.
    assert classify.is_runtime("runtime.gopark")
    assert classify.is_runtime("internal/runtime/maps.(*table).grow")
    assert classify.is_runtime("runtime/internal/atomic.Load")
    assert not classify.is_runtime("internal/poll.runtime_pollWait")
    assert not classify.is_runtime("internal/sync.(*Mutex).Lock")
    assert not classify.is_runtime("runtime/pprof.writeGoroutine")
    assert not classify.is_runtime("main.main")


def test_allocation_sites_skip_the_std_internal_packages() -> None:
    assert classify.is_runtime("internal/bytealg.MakeNoZero", with_internal=True)
    assert classify.is_runtime("runtime.mallocgc", with_internal=True)
    assert not classify.is_runtime("strings.(*Builder).grow", with_internal=True)
    assert not classify.is_runtime("runtime/pprof.StartCPUProfile", with_internal=True)
    stack = (Frame("runtime.mallocgc", "", 0), Frame("", "", 0),
             Frame("internal/bytealg.MakeNoZero", "", 0),
             Frame("strings.(*Builder).grow", "", 0), Frame("main.render", "", 0))
    assert site_frame(stack) == stack[3]
    only_runtime = (Frame("runtime.mallocgc", "", 0),)
    assert site_frame(only_runtime) == only_runtime[0]
    assert site_frame(()) is None
