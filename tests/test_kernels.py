"""Finding, building and calling the compiled kernels.

The kernels' results are tested through their callers (tests/source/test_recordbatch.py,
tests/parse/test_screen.py, tests/parse/test_utf8.py), each with both builds. This module
checks the loader, and that the two builds agree on damaged input, where a compiled loop that
reads out of bounds would show.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.memory_records import MemoryRecordsBuilder

import batchalert.kernels
from batchalert.errors import SourceError
from batchalert.kernels import Kernels, build, build_cpus, find_module, module_name
from batchalert.source import recordbatch
from batchalert.source.recordbatch import RecordSet

Loader = Callable[[], Kernels]


@pytest.fixture
def fresh_load() -> Iterator[Loader]:
    """Clear `load()`'s cache before and after the test, so that each test finds anew."""
    batchalert.kernels.load.cache_clear()
    yield batchalert.kernels.load
    batchalert.kernels.load.cache_clear()


def record_set(count: int, compression: int = 0) -> bytes:
    builder = MemoryRecordsBuilder(magic=2, compression_type=compression, batch_size=1 << 20)
    for index in range(count):
        value = b'{"log":"GET /x/%d HTTP/1.1\\" 404\\n"}' % index
        builder.append(timestamp=1_700_000_000_000 + index, key=None, value=value, headers=[])
    builder.close()
    return bytes(builder.buffer())


def decode(kernels: Kernels, data: bytes) -> object:
    """Decode `data` with `kernels`, CRCs unchecked so that damage reaches the decoder;
    return the rows, or the error."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recordbatch, "load_kernels", lambda: kernels)
        try:
            pieces = RecordSet(data).decode(-(1 << 62), 1 << 62, check_crcs=False)
        except SourceError as exc:  # CorruptBatchError included
            return ("error", str(exc))
    return [(columns.offsets.tolist(), columns.timestamps.tolist(),
             columns.keys.to_pylist(), columns.values.to_pylist()) for columns in pieces]


class TestLoad:
    def test_module_found_in_variable_dir_first(self, ahead_of_time_kernels: Kernels,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                fresh_load: Loader) -> None:
        module = Path(ahead_of_time_kernels._backend.__file__)
        shutil.copy(module, tmp_path / module.name)
        monkeypatch.setenv("BATCHALERT_KERNELS_DIR", str(tmp_path))

        assert find_module() == tmp_path / module.name
        assert fresh_load().ahead_of_time

    def test_missing_module_falls_back_to_jit(self, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture,
                                                     fresh_load: Loader) -> None:
        monkeypatch.setattr(batchalert.kernels, "find_module", lambda: None)

        with caplog.at_level(logging.INFO, logger="batchalert.kernels"):
            kernels = fresh_load()

        assert not kernels.ahead_of_time
        assert "python -m batchalert.kernels.build" in caplog.text
        assert decode(kernels, record_set(3))[0][0] == [0, 1, 2]  # type: ignore[index]

    def test_module_of_other_sources_ignored(self, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "_batchalert_kernels_000000000000.cpython-311-x86_64-linux-gnu.so"
         ).write_bytes(b"stale")
        monkeypatch.setenv("BATCHALERT_KERNELS_DIR", str(tmp_path))

        found = find_module()

        assert found is None or found.parent != tmp_path

    def test_unloadable_module_falls_back(self, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture,
                                          fresh_load: Loader) -> None:
        broken = tmp_path / (module_name() + ".cpython-311-x86_64-linux-gnu.so")
        broken.write_bytes(b"not a shared object")
        monkeypatch.setattr(batchalert.kernels, "find_module", lambda: broken)

        kernels = fresh_load()

        assert not kernels.ahead_of_time
        assert str(broken) in caplog.text

    def test_name_follows_sources(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        sources = ("layout.py", "recordsets.py", "text.py", "bitmasks.py", "fields.py", "build.py")
        for name in sources:
            shutil.copy(Path(batchalert.kernels.__file__).parent / name, tmp_path / name)
        monkeypatch.setattr(batchalert.kernels, "_PACKAGE_DIR", tmp_path)
        for name in sources:
            before = module_name()
            with (tmp_path / name).open("a") as source:
                source.write("\n# changed\n")

            assert module_name() != before, name
        assert module_name().startswith("_batchalert_kernels_")


class TestBuild:
    def test_earlier_modules_removed(self, built_kernels: Path) -> None:
        names = sorted(path.name for path in built_kernels.glob("_batchalert_kernels_*"))

        assert [name.split(".")[0] for name in names] == sorted(
            module_name(cpu) for cpu in ["", *build_cpus()])

    def test_module_for_this_cpu_first(self, built_kernels: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
        if not build_cpus():
            pytest.skip("this architecture has only the baseline build")
        for module in built_kernels.glob("_batchalert_kernels_*"):
            shutil.copy(module, tmp_path / module.name)
        monkeypatch.setenv("BATCHALERT_KERNELS_DIR", str(tmp_path))

        monkeypatch.setattr(batchalert.kernels, "usable_cpus", lambda: build_cpus())
        best = find_module()
        monkeypatch.setattr(batchalert.kernels, "usable_cpus", lambda: [])
        baseline = find_module()

        assert best is not None and best.name.startswith(module_name(build_cpus()[0]) + ".")
        assert baseline is not None and baseline.name.startswith(module_name() + ".")

    def test_existing_module_not_rebuilt(self, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
        for cpu in ["", *build_cpus()]:
            (tmp_path / (module_name(cpu) + ".so")).write_bytes(b"")
        monkeypatch.setattr(batchalert.kernels.build, "find_module",
                            lambda: tmp_path / (module_name() + ".so"))

        def fail_if_built(directory: Path) -> Path:
            raise AssertionError("built again")

        monkeypatch.setattr(batchalert.kernels.build, "build", fail_if_built)

        with caplog.at_level(logging.INFO, logger="batchalert.kernels.build"):
            assert build.main([]) == 0
        assert "already built" in caplog.text
        for cpu in ["", *build_cpus()]:
            assert str(tmp_path / (module_name(cpu) + ".so")) in caplog.text

    def test_missing_compiler_named(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
        monkeypatch.setenv("CC", "no-such-compiler -O2")

        assert build.main(["--out", str(tmp_path)]) == 1
        assert "'no-such-compiler' not found" in caplog.text
        assert "apt-get install gcc" in caplog.text
        assert list(tmp_path.iterdir()) == []

    def test_compiler_failure_reported(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
        def fail(directory: Path) -> Path:
            raise RuntimeError("no C compiler")

        monkeypatch.setattr(batchalert.kernels.build, "build", fail)

        assert build.main(["--out", str(tmp_path)]) == 1
        assert "no C compiler" in caplog.text
        assert "numba at run time" in caplog.text


class TestArguments:
    def test_output_must_be_boolean(self, ahead_of_time_kernels: Kernels) -> None:
        offsets = np.array([0, 1], np.int64)
        data = np.frombuffer(b"\xff", np.uint8)

        with pytest.raises(TypeError, match="Boolean"):
            ahead_of_time_kernels.mark_invalid_utf8(offsets, data, np.zeros(1, np.int8))

    def test_other_integer_types_converted(self, ahead_of_time_kernels: Kernels) -> None:
        invalid = np.zeros(2, np.bool_)

        ahead_of_time_kernels.mark_invalid_utf8(np.array([0, 1, 3], np.int32),
                                                np.frombuffer(b"a\xc3(", np.uint8), invalid)

        assert invalid.tolist() == [False, True]


class TestBuildsAgree:
    def test_on_intact_record_sets(self, ahead_of_time_kernels: Kernels,
                                   jit_kernels: Kernels) -> None:
        data = record_set(50) + record_set(7, compression=2)

        result = decode(ahead_of_time_kernels, data)

        assert result == decode(jit_kernels, data)
        assert isinstance(result, list)
        assert sum(len(offsets) for offsets, *_ in result) == 57

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.data())
    def test_on_damaged_record_sets(self, ahead_of_time_kernels: Kernels,
                                    jit_kernels: Kernels, data: st.DataObject) -> None:
        damaged = bytearray(record_set(data.draw(st.integers(1, 20))))
        for _ in range(data.draw(st.integers(1, 8))):
            index = data.draw(st.integers(0, len(damaged) - 1))
            damaged[index] = data.draw(st.integers(0, 255))
        damaged = damaged[:data.draw(st.integers(0, len(damaged)))]

        assert decode(ahead_of_time_kernels, bytes(damaged)) == decode(jit_kernels,
                                                                       bytes(damaged))

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.binary(max_size=40), max_size=20))
    def test_on_utf8(self, ahead_of_time_kernels: Kernels, jit_kernels: Kernels,
                     values: list[bytes]) -> None:
        offsets = np.zeros(len(values) + 1, np.int64)
        offsets[1:] = np.cumsum([len(v) for v in values])
        data = np.frombuffer(b"".join(values) or b"\0", np.uint8)
        results = []
        for kernels in (ahead_of_time_kernels, jit_kernels):
            invalid = np.zeros(len(values), np.bool_)
            kernels.mark_invalid_utf8(offsets, data, invalid)
            results.append(invalid.tolist())

        expected = []
        for value in values:
            try:
                value.decode("utf-8")
                expected.append(False)
            except UnicodeDecodeError:
                expected.append(True)
        assert results == [expected, expected]


class TestGil:
    """The kernels release the GIL, so a reader thread decodes while another thread screens."""

    @pytest.mark.parametrize("build_name", ["ahead_of_time_kernels", "jit_kernels"])
    def test_other_threads_run_during_a_call(self, request: pytest.FixtureRequest,
                                             build_name: str) -> None:
        kernels: Kernels = request.getfixturevalue(build_name)
        # 64 MB of valid UTF-8 takes tens of milliseconds, far longer than the other thread's
        # nap. With the switch interval at 100 s, a kernel that held the GIL would keep that
        # thread from recording its wake-up until after the call.
        value = ("ascii and ü " * 1000).encode()
        data = np.frombuffer(value * (64_000_000 // len(value)), np.uint8)
        offsets = np.arange(0, len(data) + 1, len(value), dtype=np.int64)
        invalid = np.zeros(len(offsets) - 1, np.bool_)
        kernels.mark_invalid_utf8(offsets[:2], data, invalid[:1])  # compiled before timing
        woke: list[bool] = []
        nap = threading.Thread(target=lambda: (time.sleep(0.002), woke.append(True)))
        interval = sys.getswitchinterval()
        sys.setswitchinterval(100)
        try:
            nap.start()
            kernels.mark_invalid_utf8(offsets, data, invalid)
            woke_during_call = bool(woke)
        finally:
            sys.setswitchinterval(interval)
            nap.join()

        assert not invalid.any()
        assert woke_during_call
