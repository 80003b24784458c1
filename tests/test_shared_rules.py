"""Rules that several modules share through one function: these pin what each caller relies on."""

from __future__ import annotations

import gzip
from dataclasses import replace

import pytest
from gopark.analysis import classify
from gopark.analysis.heap import site_frame
from gopark.cli import build_parser
from gopark.cli.arguments import client_options, collect_options
from gopark.errors import InputError
from gopark.formats.inflate import gunzip
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


def test_gunzip_reads_one_member_across_many_chunks() -> None:
    # 40 MiB of zeros inflate in several chunks from a few KiB of input.
    data = b"\0" * (40 << 20) + b"end"
    assert gunzip(gzip.compress(data), "z.gz") == data
    assert gunzip(gzip.compress(data) + b"\0" * 512, "z.gz") == data  # NUL padding is fine


def test_gunzip_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))
    with pytest.raises(InputError, match=r"^bomb\.gz: byte \d+: gzip data inflates to more "
                       r"than 1,048,576 bytes \(the limit\)$"):
        gunzip(bomb, "bomb.gz", max_bytes=1 << 20)
    assert len(gunzip(bomb, "bomb.gz", max_bytes=64 << 20)) == 64 << 20


def test_gunzip_names_where_the_data_goes_wrong() -> None:
    packed = gzip.compress(b"goroutine 1 [running]:\n" * 1000)
    with pytest.raises(InputError, match=rf"^x\.gz: byte {len(packed) - 9}: gzip data ends early"):
        gunzip(packed[:-9], "x.gz")
    with pytest.raises(InputError, match=rf"^x\.gz: byte {len(packed)}: unexpected data after"):
        gunzip(packed + packed, "x.gz")
    damaged = bytearray(packed)
    damaged[12:20] = b"\xff" * 8
    with pytest.raises(InputError, match=r"^x\.gz: gzip stream: damaged gzip data"):
        gunzip(bytes(damaged), "x.gz")


@pytest.mark.parametrize("command", ["collect", "diagnose", "watch"])
def test_live_commands_read_the_access_options_alike(command: str) -> None:
    args = build_parser().parse_args([
        command, "https://svc:6060/debug/pprof/", "--timeout", "3s", "--header", "X-Token: s3",
        "--insecure", "--cacert", "ca.pem", "--cert", "c.pem", "--key", "k.pem"])
    got = client_options(args)
    assert (got.timeout, got.headers, got.insecure, got.cacert, got.cert, got.key) == (
        3.0, (("X-Token", "s3"),), True, "ca.pem", "c.pem", "k.pem")
    if command != "watch":
        assert collect_options(args).client == replace(got, max_bytes=args.max_size)
