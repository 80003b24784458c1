"""Zipped bundles: every command reads them as it reads the folder; hostile zips are
refused with one line naming the zip and the member; `gopark collect -o X.zip` writes one.

One real collection (the sendaftertimeout leak on Go 1.27, with a short trace) is zipped
the two ways people do it — the folder inside (``zip -r b.zip b/``) and flat (from inside
the folder) — and shared by most tests. Damaged and hostile zips are made from it.
"""

from __future__ import annotations

import json
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gofixtures
import pytest
from gopark.cli import main
from gopark.collect import (
    CollectOptions,
    bundlezip,
    collect_bundle,
    open_bundle,
    zip_bundle,
)
from gopark.demo.goprocess import GoProcess
from gopark.errors import GoparkError, InputError
from gopark.inputs import load_inputs

GOPARK = [sys.executable, "-m", "gopark"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "b"
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "50", "-rate", "40"]) as p:
        collect_bundle(p.base_url, out, CollectOptions(interval=0.5, duration=2, trace=0.5))
    b = open_bundle(out)
    assert b.status == "complete" and b.select("trace") and b.select("goroutine", "debug2")
    return out


@pytest.fixture(scope="module")
def nested(folder: Path) -> Path:
    """As `zip -r b.zip b/` makes it: the folder (and its directory entry) inside."""
    return Path(shutil.make_archive(str(folder.parent / "nested"), "zip",
                                    root_dir=folder.parent, base_dir=folder.name))


@pytest.fixture(scope="module")
def flat(folder: Path) -> Path:
    """As `cd b && zip ../b.zip *` makes it: the files at the top of the zip."""
    return Path(shutil.make_archive(str(folder.parent / "flat"), "zip", root_dir=folder))


def gopark(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GOPARK, *args], capture_output=True, text=True, timeout=timeout)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run gopark in this process (no interpreter start-up): exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def json_of(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = cli(capsys, *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def without_sources(doc: Any) -> Any:
    """The document without the fields that name the input files."""
    if isinstance(doc, dict):
        return {k: without_sources(v) for k, v in doc.items()
                if k not in ("source", "before_source", "after_source")}
    if isinstance(doc, list):
        return [without_sources(v) for v in doc]
    return doc


def test_both_layouts_read_as_the_folder(folder: Path, nested: Path, flat: Path) -> None:
    b = open_bundle(folder)
    names = [f.name for f in b.files if f.ok]
    for z, prefix in ((nested, "b/"), (flat, "")):
        zb = open_bundle(z)
        assert zb.archive is not None and zb.archive.prefix == prefix
        assert [f.to_json() for f in zb.files] == [f.to_json() for f in b.files]
        for f in zb.files:
            if f.ok:
                assert zb.read(f) == b.read(f)
                assert zb.source(f) == f"{z}:{prefix}{f.name}"
    assert names and all(n in zipfile.ZipFile(nested).namelist() for n in
                         (f"b/{n}" for n in names))


def test_diagnosis_of_the_zips_is_the_folders(folder: Path, nested: Path, flat: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    want = json_of(capsys, "diagnose", str(folder))
    leaks = [f for f in want["findings"] if f["category"] == "chan-send"
             and f["verdict"] in ("proven", "confirmed")]
    assert leaks, want["findings"]  # the comparison below is about a real finding
    for z in (nested, flat):
        got = json_of(capsys, "diagnose", str(z))
        for key in ("target", "go_version", "window", "summary", "findings"):
            assert got[key] == want[key], key


def test_goroutines_diff_and_trace_read_the_zips(folder: Path, nested: Path, flat: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (trace,) = open_bundle(folder).select("trace")
    want = {"goroutines": without_sources(json_of(capsys, "goroutines", str(folder))),
            "diff": without_sources(json_of(capsys, "diff", str(folder))),
            "trace": without_sources(json_of(capsys, "trace", str(folder / str(trace.name))))}
    for z in (nested, flat):
        for command, expected in want.items():
            got = json_of(capsys, command, str(z))
            assert without_sources(got) == expected, (z, command)
        assert json_of(capsys, "trace", str(z))["source"].startswith(f"{z}:")
    # Two bundles side by side: a zip and the folder it came from.
    diff = json_of(capsys, "diff", str(folder), str(nested))["goroutines"]
    assert diff["delta"] == 0 and diff["after_source"].startswith(f"{nested}:b/")


def test_trace_copied_out_of_a_zip_is_removed_at_exit(nested: Path, tmp_path: Path) -> None:
    script = ("import pathlib, sys; from gopark.inputs import load_inputs\n"
              "(trace,) = [i for i in load_inputs([sys.argv[1]]).items "
              "if isinstance(i, pathlib.Path)]\n"
              "print(trace, trace.stat().st_size)\n")
    r = subprocess.run([sys.executable, "-c", script, str(nested)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    copy, size = r.stdout.split()
    (trace,) = open_bundle(nested).select("trace")
    assert Path(copy).name == trace.name and int(size) == trace.size
    assert not Path(copy).exists() and not Path(copy).parent.exists()


def test_goroutines_and_diff_copy_no_trace_out_of_a_zip(nested: Path) -> None:
    """They read no trace, so a zipped bundle's trace stays in the zip (diagnose, which
    reads it, copies it out: the test above). The scratch folder for copies is made on
    first use, so it never being made means nothing was copied."""
    script = ("import sys; from gopark import inputs; from gopark.cli import main\n"
              "for command in ('goroutines', 'diff'):\n"
              "    assert main([command, sys.argv[1]]) == 0\n"
              "assert inputs.load_inputs([sys.argv[1]], traces=False).items\n"
              "print('copies', inputs._scratch.cache_info().currsize)\n"
              "inputs.load_inputs([sys.argv[1]])\n"
              "print('copies', inputs._scratch.cache_info().currsize)\n")
    r = subprocess.run([sys.executable, "-c", script, str(nested)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # none for goroutines, diff and traces=False; one (the check is real) for diagnose's load
    assert r.stdout.splitlines()[-2:] == ["copies 0", "copies 1"]


# -- hostile and damaged zips ------------------------------------------------------------


def rezip(src: Path, out: Path, extra: dict[str, bytes] | None = None,
          replace: dict[str, bytes] | None = None, drop: str | None = None) -> Path:
    """A copy of zip `src` with members added, replaced or dropped."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename == drop:
                continue
            data = (replace or {}).get(info.filename)
            zout.writestr(info, zin.read(info) if data is None else data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return out


def first_member(z: Path, suffix: str) -> str:
    return next(n for n in zipfile.ZipFile(z).namelist() if n.endswith(suffix))


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "b/../../evil", "C:\\evil",
                                  "b\\..\\..\\evil"])
def test_zip_slip_names_refused(nested: Path, tmp_path: Path, name: str) -> None:
    z = rezip(nested, tmp_path / "slip.zip", extra={name: b"x"})
    with pytest.raises(InputError, match="path escapes the archive") as e:
        open_bundle(z)
    assert str(e.value).startswith(f"{z}: member {name!r}: ")


def test_member_inflating_past_its_listed_size_is_cut(nested: Path, tmp_path: Path) -> None:
    """A zip bomb in place of a snapshot: 64 MiB of zeros (64 KiB zipped). Reading stops
    one byte past the size manifest.json lists, in bounded memory."""
    victim = first_member(nested, "-goroutine.pb.gz")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(nested) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for info in zin.infolist():
            if info.filename != victim:
                z.writestr(info, zin.read(info))
                continue
            with z.open(victim, "w") as out:
                zeros = bytes(1 << 20)
                for _ in range(64):
                    out.write(zeros)
    assert bomb.stat().st_size < 1 << 20
    measure = ("import resource, sys; from gopark.collect import open_bundle\n"
               "from gopark.errors import InputError\n"
               "b = open_bundle(sys.argv[1]); before = resource.getrusage("
               "resource.RUSAGE_SELF).ru_maxrss\n"
               "f = next(f for f in b.files if f.name and sys.argv[2].endswith(f.name))\n"
               "try:\n    b.read(f)\nexcept InputError as e:\n    print(e)\n"
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    r = subprocess.run([sys.executable, "-c", measure, str(bomb), victim],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    message, grew_kib = r.stdout.splitlines()
    assert message.startswith(f"{bomb}: member {victim!r}: inflates to more than the size "
                              "manifest.json lists"), message
    assert int(grew_kib) < 16 * 1024  # far below the 64 MiB the member inflates to
    # diagnose goes on without that snapshot, and says which member it skipped
    loaded = load_inputs([bomb])
    assert any(n.startswith(f"skipped {bomb}: member {victim!r}") for n in loaded.notes)


def test_listed_size_capped(nested: Path, tmp_path: Path) -> None:
    manifest = json.loads(zipfile.ZipFile(nested).read("b/manifest.json"))
    victim = next(e for e in manifest["files"] if e["kind"] == "heap" and e["name"])
    victim["size"] = 3 << 30
    z = rezip(nested, tmp_path / "huge.zip",
              replace={"b/manifest.json": json.dumps(manifest).encode()})
    b = open_bundle(z)
    with pytest.raises(InputError, match=r"listed as 3221225472 bytes; at most 2 GiB"):
        b.read(next(f for f in b.files if f.name == victim["name"]))


def _set_sizes(data: bytearray, name: str, size: int) -> None:
    """Make the zip's local and central headers of `name` claim `size` uncompressed bytes."""
    encoded = name.encode()
    at = data.find(b"PK\x03\x04")
    while at >= 0:
        n, m = struct.unpack_from("<HH", data, at + 26)
        if data[at + 30:at + 30 + n] == encoded:
            struct.pack_into("<L", data, at + 22, size)
        at = data.find(b"PK\x03\x04", at + 30 + n + m)
        if data[at:at + 4] != b"PK\x03\x04":
            break
    at = data.find(b"PK\x01\x02")
    while data[at:at + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack_from("<HHH", data, at + 28)
        if data[at + 46:at + 46 + n] == encoded:
            struct.pack_into("<L", data, at + 24, size)
        at += 46 + n + m + k


def test_member_whose_headers_understate_its_size(nested: Path, tmp_path: Path) -> None:
    """Headers that claim fewer bytes than the data holds (manifest.json agreeing with
    them): the member does not read as whole, and is not used."""
    victim = first_member(nested, "-goroutine-debug2.txt")
    b = open_bundle(nested)
    f = next(f for f in b.files if f.name and victim.endswith(f.name))
    manifest = json.loads(zipfile.ZipFile(nested).read("b/manifest.json"))
    for entry in manifest["files"]:
        if entry["name"] == f.name:
            entry["size"] = 100
    liar = rezip(nested, tmp_path / "liar.zip",
                 replace={"b/manifest.json": json.dumps(manifest).encode()})
    data = bytearray(liar.read_bytes())
    _set_sizes(data, victim, 100)
    liar.write_bytes(bytes(data))
    lb = open_bundle(liar)
    with pytest.raises(InputError, match=rf"member '{victim}': cannot read: Bad CRC-32"):
        lb.read(next(g for g in lb.files if g.name == f.name))


def test_damaged_member_is_a_note_and_the_rest_is_used(nested: Path, tmp_path: Path) -> None:
    victim = first_member(nested, "-goroutine-debug2.txt")
    data = bytearray(nested.read_bytes())
    info = zipfile.ZipFile(nested).getinfo(victim)
    n, m = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + n + m
    for i in range(start + 100, start + 164):
        data[i] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    loaded = load_inputs([damaged])
    skipped = [n for n in loaded.notes if n.startswith(f"skipped {damaged}: member {victim!r}")]
    assert len(skipped) == 1, loaded.notes
    assert sum(1 for i in loaded.items if getattr(i, "form", None) == "debug2") == 1


def test_damaged_trace_in_a_zip_is_named_as_its_member(nested: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """The trace is read from a temporary copy, but messages name the zip's member."""
    member = first_member(nested, "-trace.trace")
    data = zipfile.ZipFile(nested).read(member)
    half = len(data) // 2
    damaged = rezip(nested, tmp_path / "damaged.zip",
                    replace={member: data[:half] + b"\xff" * (len(data) - half)})
    doc = json_of(capsys, "diagnose", str(damaged))
    about = [n for n in doc["notes"] if "trace" in n and "byte" in n]
    assert about and all(f"{damaged}:{member}" in n for n in about), doc["notes"]
    assert not any("gopark-zip-" in n for n in doc["notes"]), doc["notes"]


def _declare_entries(z: Path, entries: int) -> None:
    data = bytearray(z.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, at + 8, entries, entries)
    z.write_bytes(bytes(data))


def test_member_count_capped(nested: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    many = tmp_path / "many.zip"
    shutil.copy(nested, many)
    _declare_entries(many, 60_000)  # declared: refused before the directory is read
    with pytest.raises(InputError, match=r"central directory: 60000 entries; a bundle has at "
                                         r"most 50000"):
        open_bundle(many)
    count = len(zipfile.ZipFile(nested).infolist())
    monkeypatch.setattr(bundlezip, "MAX_MEMBERS", count - 1)
    lying = tmp_path / "lying.zip"
    shutil.copy(nested, lying)
    _declare_entries(lying, 1)  # the declared count lies: the real count is checked too
    with pytest.raises(InputError, match=rf"more than {count - 1} entries"):
        open_bundle(lying)


def test_zips_that_are_not_one_bundle(nested: Path, flat: Path, tmp_path: Path) -> None:
    two = rezip(nested, tmp_path / "two.zip",
                extra={"c/manifest.json": zipfile.ZipFile(flat).read("manifest.json")})
    with pytest.raises(InputError, match=r"holds several bundles \(b/manifest\.json, "
                                         r"c/manifest\.json\)"):
        open_bundle(two)
    victim = first_member(nested, "-heap.pb.gz")
    with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile warns, and writes it
        twice = rezip(nested, tmp_path / "twice.zip", extra={victim: b"another"})
    with pytest.raises(InputError, match=rf"^{twice}: member '{victim}': appears twice"):
        open_bundle(twice)
    none = rezip(nested, tmp_path / "none.zip", drop="b/manifest.json")
    with pytest.raises(InputError, match="not a gopark bundle"):
        open_bundle(none)
    deep = tmp_path / "deep.zip"
    with zipfile.ZipFile(deep, "w") as z:
        z.writestr("x/y/manifest.json", "{}")
    with pytest.raises(InputError, match="not a gopark bundle"):
        open_bundle(deep)
    missing = rezip(nested, tmp_path / "missing.zip", drop=victim)
    with pytest.raises(InputError, match=rf"^{missing}:{victim}: listed in manifest\.json "
                                         "but missing"):
        open_bundle(missing)


def test_cli_errors_one_line_exit_2(nested: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.zip"
    data = nested.read_bytes()
    cut.write_bytes(data[:len(data) - 22])  # the end-of-directory record is gone
    slip = rezip(nested, tmp_path / "slip.zip", extra={"../../x": b"x"})
    for z, what in ((cut, r"damaged zip|central directory"), (slip, "path escapes")):
        for command in ("diagnose", "goroutines", "diff", "trace"):
            code, _, err = cli(capsys, command, str(z))
            assert code == 2, (command, err)
            assert err.count("\n") == 1 and err.startswith(f"gopark: error: {z}: "), err
            assert any(w in err for w in what.split("|")), err
    # and the same through a real process: exit status 2, no traceback
    r = gopark("diagnose", str(slip))
    assert r.returncode == 2 and r.stderr.startswith(f"gopark: error: {slip}: member ")
    assert r.stderr.count("\n") == 1


# -- writing zips ------------------------------------------------------------------------


def test_zip_bundle_takes_only_listed_files(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "notes-by-hand.txt").write_text("not part of the bundle")
    zb = zip_bundle(copy, tmp_path / "incident.zip")
    names = zipfile.ZipFile(tmp_path / "incident.zip").namelist()
    b = open_bundle(folder)
    assert sorted(names) == sorted(f"incident/{f.name}" for f in b.files if f.ok) \
        + ["incident/manifest.json"]
    assert [f.to_json() for f in zb.files] == [f.to_json() for f in b.files]
    assert not list(tmp_path.glob(".*"))  # no temporary file left


@pytest.fixture(scope="module")
def target() -> Iterator[GoProcess]:
    with gofixtures.run("sendaftertimeout", "1.27", ["-n", "20", "-rate", "10"]) as p:
        yield p


def test_collect_writes_a_zip(target: GoProcess, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "incident.zip"
    r = gopark("collect", target.base_url, "-o", str(out), "--duration", "1s",
               "--interval", "500ms")
    assert r.returncode == 0, r.stderr
    b = open_bundle(out)
    assert b.status == "complete" and b.archive is not None and b.archive.prefix == "incident/"
    assert r.stdout.startswith(f"bundle {out}: {len(b.files)} files, ")
    assert sorted(p.name for p in out.parent.iterdir()) == ["incident.zip"]  # nothing left
    assert load_inputs([out]).items

    code, _, err = cli(capsys, "collect", target.base_url, "-o", str(tmp_path / "plain"),
                       "--zip", "--duration", "0", "--quiet")
    assert code == 0, err
    assert open_bundle(tmp_path / "plain.zip").status == "complete"

    code, _, err = cli(capsys, "collect", target.base_url, "-o", str(out), "--duration", "0")
    assert code == 2 and err == f"gopark: error: {out}: exists; not overwritten\n"


def test_ctrl_c_zips_what_was_taken(target: GoProcess, tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    work = tmp_path / "b.zip.collecting"
    proc = subprocess.Popen([*GOPARK, "collect", target.base_url, "-o", str(out),
                             "--duration", "60s", "--interval", "200ms"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # gopark starts slowly on a loaded machine
    while True:
        try:
            if len(open_bundle(work).snapshots) >= 3:
                break
        except GoparkError:
            pass  # not created yet
        assert time.monotonic() < deadline, f"{work}: fewer than 3 snapshots"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    # Ctrl-C ignored would run on to the 60 s window's end and exit 0, failing below.
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    b = open_bundle(out)
    assert stderr == f"gopark: interrupted; kept {sum(f.ok for f in b.files)} files in {out}\n"
    assert b.status == "interrupted" and len(b.snapshots) >= 3
    assert not work.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["b.zip"]


def test_diagnose_keeps_a_zip(target: GoProcess, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    keep = tmp_path / "kept.zip"
    d = json_of(capsys, "diagnose", target.base_url, "--duration", "1s", "--interval",
                "500ms", "--keep", str(keep))
    assert f"bundle kept in {keep}" in d["notes"]
    assert open_bundle(keep).status == "complete"
    assert d["findings"] == json_of(capsys, "diagnose", str(keep))["findings"]
