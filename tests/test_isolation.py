"""What a student's process can and cannot do, with bubblewrap and without it (README, Isolation)."""
import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest

from autograder import sandbox
from autograder.config import Limits
from autograder.impl import Crashed, StudentImpl, TimedOut

REPO = Path(__file__).resolve().parent.parent
MODES = [pytest.param(True, id="bubblewrap", marks=pytest.mark.skipif(
    not sandbox.bubblewrap_works(), reason="bubblewrap does not work on this machine")),
    pytest.param(False, id="plain")]

PROBES = f'''
import os, socket, subprocess
def try_read(path):
    try:
        return len(open(path, "rb").read())
    except Exception as exc:
        return type(exc).__name__
def try_list(path):
    try:
        return len(os.listdir(path))
    except Exception as exc:
        return type(exc).__name__
def try_run():
    try:
        return subprocess.run(["true"]).returncode
    except Exception as exc:
        return type(exc).__name__
def try_connect():
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1)
        return "connected"
    except Exception as exc:
        return type(exc).__name__
def try_import():
    try:
        __import__("solutions.lstm")
        return "imported"
    except Exception as exc:
        return type(exc).__name__
def write_here():
    open("scratch.txt", "w").write("ok")
    return open("scratch.txt").read()
def allocate(gigabytes):
    return np.ones(int(gigabytes * 2**27)).sum()
def spin():
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
import numpy as np
'''


def student(use_bubblewrap, tmp_path, memory_mb=1024, call_seconds=3):
    scratch = sandbox.make_scratch(None, "lstm.ipynb")
    shutil.move(scratch, tmp_path / "scratch")
    scratch = tmp_path / "scratch"
    limits = Limits(wall_seconds=60, call_seconds=call_seconds, memory_mb=memory_mb)

    def start():
        process = sandbox.StudentProcess(scratch, limits, use_bubblewrap)
        return process, process.request({"op": "run", "cells": [[0, PROBES]], "cell_seconds": 10}, 30)
    return StudentImpl(start, {}, call_seconds, lambda: 60)


def text(value):
    return str(np.asarray(value)) if not isinstance(value, str) else value


@pytest.mark.parametrize("use_bubblewrap", MODES)
def test_the_reference_and_the_hidden_tests_are_out_of_reach(use_bubblewrap, tmp_path):
    impl = student(use_bubblewrap, tmp_path)
    try:
        for secret in ("solutions/lstm.py", "assignments/lstm/exercises.py", "grading.yml"):
            got = text(impl.call("try_read", str(REPO / secret)))
            assert got in ("FileNotFoundError", "PermissionError"), (secret, got)
        assert text(impl.call("try_list", str(REPO))) in ("FileNotFoundError", "PermissionError")
        assert text(impl.call("try_import")) == "ModuleNotFoundError"
        assert text(impl.call("try_read", "/proc/1/environ")) in ("FileNotFoundError", "PermissionError")
        assert text(impl.call("try_run")) == "PermissionError"
        assert text(impl.call("try_connect")) in ("PermissionError", "OSError", "ConnectionRefusedError")
        assert text(impl.call("write_here")) == "ok"
    finally:
        impl.close()


@pytest.mark.parametrize("use_bubblewrap", MODES)
def test_memory_and_time_limits_cost_only_the_call(use_bubblewrap, tmp_path):
    impl = student(use_bubblewrap, tmp_path, memory_mb=1024, call_seconds=1)
    try:
        with pytest.raises(Crashed, match="out of memory"):
            impl.call("allocate", 4.0)
        assert float(impl.call("allocate", 0.01)) > 0          # the same process goes on
        with pytest.raises(TimedOut):
            impl.call("spin")                                  # ignores the soft alarm: killed
        assert text(impl.call("write_here")) == "ok"            # restarted for the next call
        assert impl.incarnation == 2
    finally:
        impl.close()


def test_no_network_device_inside_bubblewrap(tmp_path):
    if not sandbox.bubblewrap_works():
        pytest.skip("bubblewrap does not work on this machine")
    assert "--unshare-all" in sandbox.bubblewrap_prefix(tmp_path)
    assert str(REPO) not in " ".join(a for a in sandbox.bubblewrap_prefix(tmp_path) if ".venv" not in a)
    assert inspect.getsource(sandbox).count("--ro-bind") >= 1
