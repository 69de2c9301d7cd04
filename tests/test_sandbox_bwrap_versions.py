"""bubblewrap 0.6 (Ubuntu 22.04) has no `--size`: the grader must ask bwrap once what it
offers, leave the option out there, still grade in bubblewrap, and say in every result that
/tmp is then bounded by the cgroup only. A fake `bwrap` first on PATH plays 0.6.1: it reports
that version, a help without `--size`, refuses `--size` as 0.6 does, and runs the real bwrap
for everything else."""
import os
import shutil
import stat

import pytest

from autograder.process import sandbox
from tests.test_isolation import student

REAL_BWRAP = shutil.which("bwrap")
PROBES = ("bubblewrap_problem", "bubblewrap_sizes_tmpfs")

FAKE_06 = """#!/bin/sh
case "$1" in
  --version) echo "bubblewrap 0.6.1"; exit 0 ;;
  --help) {real} --help 2>&1 | grep -v -- '--size'; exit 0 ;;
esac
for arg in "$@"; do
  if [ "$arg" = "--size" ]; then echo "bwrap: Unknown option --size" >&2; exit 1; fi
done
exec {real} "$@"
"""


@pytest.fixture
def fresh_probes():
    """The cached bwrap probes cleared before and after the test (PATH may change in it)."""
    for name in PROBES:
        getattr(sandbox, name).cache_clear()
    yield
    for name in PROBES:
        getattr(sandbox, name).cache_clear()


@pytest.fixture
def bwrap_06(tmp_path, monkeypatch, fresh_probes):
    """A PATH whose first bwrap behaves as bubblewrap 0.6.1."""
    if REAL_BWRAP is None:
        pytest.skip("bubblewrap is not installed")
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "bwrap"
    fake.write_text(FAKE_06.format(real=REAL_BWRAP))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return fake


def test_bwrap_06_is_recognised_and_never_given_size(bwrap_06, tmp_path):
    assert not sandbox.bubblewrap_sizes_tmpfs()
    prefix = sandbox.bubblewrap_prefix(tmp_path, 64)
    assert "--size" not in prefix and "--tmpfs" in prefix
    refused = " ".join(sandbox.refused_protections("bubblewrap"))
    assert "tmpfs size" in refused and "cgroup" in refused


def test_bwrap_06_still_grades_in_bubblewrap(bwrap_06, tmp_path):
    """The probe the grader makes (the full command line, run) passes under 0.6, so `auto` picks
    bubblewrap, and a student's function runs there and answers."""
    if sandbox.bubblewrap_problem() is not None:
        pytest.skip(f"bubblewrap does not work here: {sandbox.bubblewrap_problem()}")
    assert sandbox.choose_mode("auto") == "bubblewrap"
    impl = student("bubblewrap", tmp_path, cells="import os\ndef f():\n    return os.getcwd()\n")
    try:
        assert str(impl.call("f")) == sandbox.SANDBOX_HOME
    finally:
        impl.close()


def test_a_bwrap_with_size_gets_it(fresh_probes, tmp_path):
    if REAL_BWRAP is None:
        pytest.skip("bubblewrap is not installed")
    import subprocess
    if "--size" not in subprocess.run([REAL_BWRAP, "--help"], capture_output=True, text=True).stdout:
        pytest.skip("the bwrap installed here is older than 0.7")
    assert sandbox.bubblewrap_sizes_tmpfs()
    prefix = sandbox.bubblewrap_prefix(tmp_path, 64)
    assert prefix[prefix.index("--size") + 1] == str(64 * 2**20)
    assert "tmpfs size" not in " ".join(sandbox.refused_protections("bubblewrap"))
