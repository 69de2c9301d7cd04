"""What a student's process can and cannot do, with bubblewrap and without it (README, Isolation).

The kernel-level limits are tested with the audit hook switched off (a no-op guard.py in the
scratch folder): what holds then holds because of the kernel (cgroups, tmpfs, namespaces)."""
import inspect
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from autograder.process import sandbox
from autograder.process.channel import ForkServer
from autograder.config import Limits
from autograder.process.impl import Crashed, StudentFailure, StudentImpl, TimedOut

REPO = Path(__file__).resolve().parent.parent
BWRAP = pytest.mark.skipif(not sandbox.bubblewrap_works(), reason="bubblewrap does not work on this machine")
CGROUPS = pytest.mark.skipif(not sandbox.cgroup_parents(), reason="this machine lets us create no cgroups")
MODES = [pytest.param("bubblewrap", marks=BWRAP), "none"]

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


def student(mode, tmp_path, memory_mb=1024, call_seconds=3, cells=PROBES, guard=True, **limits):
    scratch = sandbox.make_scratch(None, "lstm.ipynb")
    if mode != "uid":     # (the uid's processes cannot reach pytest's folders; the next run removes it)
        shutil.move(scratch, tmp_path / "scratch")
        scratch = tmp_path / "scratch"
    if not guard:
        (scratch / "agent" / "guard.py").write_text(
            "def install(writable, readable):\n    return (lambda fn, *args: fn(*args)), (lambda: None)\n")
    limits = Limits(wall_seconds=60, call_seconds=call_seconds, memory_mb=memory_mb, **limits)

    return StudentImpl(lambda seconds: ForkServer(scratch, limits, mode, [[0, cells]], seconds), {}, limits,
                       lambda: 60)


def text(value):
    return str(np.asarray(value)) if not isinstance(value, str) else value


@pytest.mark.parametrize("mode", MODES)
def test_the_reference_and_the_hidden_tests_are_out_of_reach(mode, tmp_path):
    impl = student(mode, tmp_path)
    try:
        for secret in ("solutions/lstm.py", "assignments/lstm/exercises.py", "grading.yml"):
            got = text(impl.call("try_read", str(REPO / secret)))
            assert got in ("FileNotFoundError", "Refused"), (secret, got)
        assert text(impl.call("try_list", str(REPO))) in ("FileNotFoundError", "Refused")
        assert text(impl.call("try_import")) == "ModuleNotFoundError"
        assert text(impl.call("try_read", "/proc/1/environ")) in ("FileNotFoundError", "Refused")
        assert text(impl.call("try_run")) == "Refused"
        assert text(impl.call("try_connect")) in ("Refused", "OSError", "ConnectionRefusedError")
        with pytest.raises(StudentFailure, match="Refused"):     # sessions write no file
            impl.call("write_here")
    finally:
        impl.close()


@pytest.mark.parametrize("mode", MODES)
def test_memory_and_time_limits_cost_only_the_call(mode, tmp_path):
    impl = student(mode, tmp_path, memory_mb=1024, call_seconds=1)
    try:
        with pytest.raises(Crashed, match="out of memory"):
            impl.call("allocate", 4.0)
        assert float(impl.call("allocate", 0.01)) > 0          # the same process goes on
        with pytest.raises(TimedOut):
            impl.call("spin")                                  # ignores the soft alarm: killed
        assert float(impl.call("allocate", 0.01)) > 0           # a new session for the next call
        assert impl.sessions == 2
    finally:
        impl.close()


@BWRAP
def test_no_network_device_inside_bubblewrap(tmp_path):
    assert "--unshare-all" in sandbox.bubblewrap_prefix(tmp_path, 64)
    assert str(REPO) not in " ".join(a for a in sandbox.bubblewrap_prefix(tmp_path, 64) if ".venv" not in a)
    assert inspect.getsource(sandbox).count("--ro-bind") >= 1


KERNEL = """
import os, time, signal
def fill(folder, count, mb):
    written = 0
    try:
        for k in range(count):
            with open(f"{folder}/fill{k}", "wb") as f:
                for _ in range(mb):
                    f.write(b"x" * 2**20)
                    written += 1
    except OSError as exc:
        return [written, exc.errno]
    return [written, 0]
def hold(children, mb):
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            block = bytearray(mb * 2**20)
            for k in range(0, len(block), 4096):
                block[k] = 1
            time.sleep(30)
            os._exit(0)
        pids.append(pid)
    time.sleep(4)
    return sum(os.waitpid(p, os.WNOHANG) == (0, 0) for p in pids)
def bomb():
    count = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            count += 1
    except OSError:
        return count
def detach(path):
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(2)
            open(path, "w").write("still alive")
        os._exit(0)
    os.waitpid(child, 0)    # the grandchild exists, in a session of its own
    return 1
def torch_here():
    import torch
    return torch.zeros(1).numpy()
"""


TMPFS = pytest.mark.skipif(not sandbox.tmpfs_works(), reason="the grader may not mount a tmpfs here")


@pytest.mark.parametrize("mode", [pytest.param("bubblewrap", marks=BWRAP), pytest.param("none", marks=TMPFS)])
def test_a_tmpfs_bounds_what_a_student_writes(mode, tmp_path):
    """40 x 60 MB into /tmp (bubblewrap's), and 1 GB into the working folder: the tmpfs
    (tmpfs_mb) stops both, in memory, not on the host disk (no rlimit would: each file is under
    the file-size limit)."""
    impl = student(mode, tmp_path, cells=KERNEL, guard=False, tmpfs_mb=64)
    try:
        if mode == "bubblewrap":
            written, errno = map(int, impl.call("fill", "/tmp", 40, 60))
            assert errno == 28 and 50 <= written <= 64, (written, errno)     # ENOSPC at 64 MB
        written, errno = map(int, impl.call("fill", ".", 20, 60))
        assert errno == 28 and written <= 64, (written, errno)
        assert not any(p.name.startswith("fill") for p in (tmp_path / "scratch").iterdir())
    finally:
        impl.close()


@CGROUPS
@pytest.mark.parametrize("mode", MODES)
def test_forked_children_share_one_memory_limit(mode, tmp_path):
    """Four children holding 300 MB each: rlimits (per process) allow it, the cgroup does not."""
    impl = student(mode, tmp_path, memory_mb=700, call_seconds=8, cells=KERNEL, guard=False, tmpfs_mb=16)
    try:
        alive = int(impl.call("hold", 4, 300))
        assert alive <= 2, alive
    except Crashed:
        pass                                          # the OOM killer chose the worker itself
    finally:
        impl.close()


@CGROUPS
@pytest.mark.parametrize("mode", MODES)
def test_a_fork_bomb_stops_at_the_process_limit(mode, tmp_path):
    impl = student(mode, tmp_path, cells=KERNEL, guard=False, processes=20)
    try:
        assert 5 <= int(impl.call("bomb")) < 20
    finally:
        impl.close()


@CGROUPS
@pytest.mark.parametrize("mode", MODES)
def test_nothing_outlives_the_student_process(mode, tmp_path):
    """A detached grandchild (its own session) is killed with the submission: it never writes."""
    marker = tmp_path / "marker"
    os.chmod(tmp_path, 0o777)
    impl = student(mode, tmp_path, cells=KERNEL, guard=False)
    assert int(impl.call("detach", str(marker) if mode == "none" else "/tmp/work/marker")) == 1
    impl.close()
    time.sleep(3)
    assert not marker.exists()
    assert not [p for root in sandbox.cgroup_parents().values() for p in root.glob(sandbox.cgroup_prefix() + "*")]


@pytest.mark.parametrize("mode", MODES)
def test_autodiff_libraries_cannot_be_imported(mode, tmp_path):
    impl = student(mode, tmp_path, cells=KERNEL)
    try:
        with pytest.raises(StudentFailure, match="ImportRefused"):
            impl.call("torch_here")
    finally:
        impl.close()


@BWRAP
def test_bubblewrap_hides_the_autodiff_libraries_even_without_the_hook(tmp_path):
    impl = student("bubblewrap", tmp_path, cells=KERNEL, guard=False)
    try:
        with pytest.raises(StudentFailure, match="(AttributeError|ImportError|ModuleNotFoundError)"):
            impl.call("torch_here")
    finally:
        impl.close()


INTROSPECTION = '''
import collections, enum, logging, sys, threading, traceback, typing
def outcome(source):
    try:
        exec(source, {"sys": sys, "threading": threading, "traceback": traceback})
        return "allowed"
    except BaseException as exc:
        return type(exc).__name__
def attempts():
    return {name: outcome(source) for name, source in ATTEMPTS.items()}
def honest():
    Point = collections.namedtuple("Point", "x y")
    Pair = typing.NamedTuple("Pair", [("a", int)])
    Colour = enum.Enum("Colour", "RED GREEN")
    logging.getLogger("student").warning("logged")
    traceback.extract_stack()
    return [Point(1, 2).y, Pair(3).a, Colour.GREEN.value]
'''
ATTEMPTS = {
    "sys._getframe": "sys._getframe()",
    "sys._current_frames": "sys._current_frames()",
    "sys.settrace": "sys.settrace(lambda *a: None)",
    "sys.setprofile": "sys.setprofile(lambda *a: None)",
    "threading.settrace": "seen = []\nthreading.settrace(lambda *a: seen.append(a))\n"
                          "t = threading.Thread(target=len, args=([],))\nt.start()\nt.join()\n"
                          "if not seen:\n    raise PermissionError('the thread ran untraced')",
    "gc.get_objects": "import gc\ngc.get_objects()",
    "gc.get_referrers": "import gc\ngc.get_referrers(sys)",
    "gc.get_referents": "import gc\ngc.get_referents(sys)",
    "tb_frame": "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n    exc.__traceback__.tb_frame",
    "traceback.walk_tb": "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n    list(traceback.walk_tb(exc.__traceback__))",
    "gi_frame": "(x for x in []).gi_frame",
    "gi_code": "(x for x in []).gi_code",
    "mmap": "import mmap\nmmap.mmap(-1, 4096)",
    "cr_frame": "async def f():\n    pass\nc = f()\nc.close()\nc.cr_frame",
    "ctypes": "import ctypes",
    "_ctypes": "import _ctypes",
    "_testcapi": "import _testcapi",
    "_testinternalcapi": "import _testinternalcapi",
    "_xxsubinterpreters": "import _xxsubinterpreters",
    "torch": "import torch",
    "jax": "import jax",
    "autograd": "import autograd",
    "sympy": "import sympy",
    "_posixsubprocess.fork_exec": "import _posixsubprocess\n_posixsubprocess.fork_exec()",
    "subprocess._fork_exec": "import subprocess\nsubprocess._fork_exec()",
    "os.chdir": "import os\nos.chdir('/')",
    "os.fchdir": "import os\nos.fchdir(0)",
    "open a folder": "import os\nos.open('.', os.O_RDONLY)",
}
EXPECTED = {name: "RefusedAttribute" for name in ("tb_frame", "traceback.walk_tb", "gi_frame", "gi_code", "cr_frame")}
EXPECTED.update({name: "ImportRefused" for name in ("ctypes", "_ctypes", "_testcapi", "_testinternalcapi",
                                                    "_xxsubinterpreters", "torch", "jax", "autograd", "sympy")})
EXPECTED["sys._getframe"] = "RefusedFrame"
EXPECTED["threading.settrace"] = "PermissionError"   # raised by the cell: the thread ran untraced


def test_the_guard_refuses_introspection_native_code_and_autodiff_but_not_honest_code(tmp_path):
    """Every bypass and introspection path, in a real student process (no kernel sandbox, so
    only the audit hook stands); namedtuple, typing, enum, logging and extract_stack still work."""
    cells = INTROSPECTION + f"\nATTEMPTS = {ATTEMPTS!r}\n"
    impl = student("none", tmp_path, cells=cells)
    try:
        got = {name: str(value) for name, value in impl.call("attempts").items()}
        assert got == {name: EXPECTED.get(name, "Refused") for name in ATTEMPTS}
        assert [int(v) for v in impl.call("honest")] == [2, 3, 2]
    finally:
        impl.close()


TAMPER = '''
import sys, _thread
guard = sys.modules["guard"]
for name in ("BLOCKED_EVENTS", "BLOCKED_MODULES", "FRAME_ATTRIBUTES", "PROTECTED_ATTRIBUTES", "SUMMARIES"):
    try:
        getattr(guard, name).clear()
    except Exception:
        pass
guard.caller_code = lambda *a: None
guard.check_open = guard.inside = lambda *a, **k: True
_thread.get_ident = lambda: 0
'''
TAMPER_ATTEMPTS = {
    **ATTEMPTS,
    "signal.signal": "import signal\nsignal.signal(signal.SIGUSR1, lambda s, f: None)",
    "_signal.signal": "import _signal\n_signal.signal(10, lambda s, f: None)",
    "signal.signal.__wrapped__": "import signal\nsignal.signal.__wrapped__(10, lambda s, f: None)",
    "a fresh _signal": "import _imp, importlib.machinery\n"
                       "_imp.create_builtin(importlib.machinery.ModuleSpec('_signal', None)).signal(10, print)",
    "a worker function's defaults": "sys.modules['__main__'].session.__defaults__ = ()",
    "a worker function's code": "sys.modules['__main__'].main.__code__ = (lambda: 1).__code__",
    "a guard function's defaults": "sys.modules['guard'].install.__defaults__ = ()",
}
TAMPER_EXPECTED = {**EXPECTED, "signal.signal.__wrapped__": "AttributeError", "a fresh _signal": "ImportError"}


def test_the_guard_and_the_worker_hold_when_the_notebook_tampers_with_them(tmp_path):
    """The cells empty the guard's sets, replace its functions and _thread.get_ident, then try
    every path again, and the signal handlers that would hand them the worker's frames: the
    hook reads only what it bound at install time, and no handler can be installed."""
    cells = INTROSPECTION + TAMPER + f"\nATTEMPTS = {TAMPER_ATTEMPTS!r}\n"
    impl = student("none", tmp_path, cells=cells)
    try:
        got = {name: str(value) for name, value in impl.call("attempts").items()}
        assert got == {name: TAMPER_EXPECTED.get(name, "Refused") for name in TAMPER_ATTEMPTS}
    finally:
        impl.close()


def test_a_process_that_stops_reading_is_killed_not_waited_for(tmp_path, monkeypatch):
    """A worker that never reads (a notebook that swapped it, say) while the grader sends 1 MB of
    cells: the grader's write gives up after SEND_SECONDS and the process is killed."""
    from autograder.process import channel
    monkeypatch.setattr(channel, "SEND_SECONDS", 1.0)
    impl = student("none", tmp_path, cells="x = 1\n" * 200_000)
    (tmp_path / "scratch" / "agent" / "worker.py").write_text("import time\ntime.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(Crashed, match="did not read what the grader sent within 1 s"):
        impl.call("anything")
    assert time.monotonic() - started < 10
    impl.close()


CARRY = '''
import os, mmap
from multiprocessing import shared_memory
_fd = os.memfd_create("carry")
os.dup2(_fd, 0)
_map = mmap.mmap(-1, 4096)
_cells_ran = os.urandom(8).hex()       # which run of the cells a session comes from
PLACES = {"memfd on descriptor 0": 0, "shared mapping": 1, "working folder": 2, "/tmp": 3, "POSIX shared memory": 4}
def leave(secret):
    data, left = secret.encode(), []
    def attempt(place, write):
        try:
            write()
            left.append(PLACES[place])
        except Exception:
            pass
    attempt("memfd on descriptor 0", lambda: os.pwrite(0, data, 0))
    attempt("shared mapping", lambda: _map.write(data))
    attempt("working folder", lambda: open("carry.txt", "wb").write(data))
    attempt("/tmp", lambda: open("/tmp/carry.txt", "wb").write(data))
    def shm():
        block = shared_memory.SharedMemory("autograder-carry", create=True, size=64)
        block.buf[:len(data)] = data
    attempt("POSIX shared memory", shm)
    return [_cells_ran, left]
def find(secret):
    data, found = secret.encode(), []
    def attempt(place, read):
        try:
            if data in read():
                found.append(PLACES[place])
        except Exception:
            pass
    attempt("memfd on descriptor 0", lambda: os.pread(0, 64, 0))
    attempt("shared mapping", lambda: _map[:64])
    attempt("working folder", lambda: open("carry.txt", "rb").read())
    attempt("/tmp", lambda: open("/tmp/carry.txt", "rb").read())
    attempt("POSIX shared memory", lambda: bytes(shared_memory.SharedMemory("autograder-carry").buf[:64]))
    return [_cells_ran, found]
'''
UID = pytest.mark.skipif(os.geteuid() != 0, reason="the uid sandbox needs root")


@pytest.mark.parametrize("mode", [pytest.param("bubblewrap", marks=BWRAP), pytest.param("uid", marks=UID), "none"])
def test_a_fresh_session_meets_nothing_an_earlier_one_left(mode, tmp_path):
    """With the audit hook off, a session leaves a secret wherever the kernel lets it (a memfd the
    cells put on descriptor 0, a shared mapping the cells made, its working folder, /tmp, POSIX
    shared memory); a fresh session, a process of its own, finds it nowhere (in "none", with no
    kernel boundary, /tmp and /dev/shm are shared: only what the grader itself gives each
    session is checked there)."""
    impl = student(mode, tmp_path, cells=CARRY, guard=False)
    try:
        first, left = impl.call("leave", "s3cr3t-promise")
        left = np.asarray(left).tolist()
        assert {0, 1, 2} <= set(left), left          # the cells' own memfd, mapping and folder took it
        with impl.fresh():
            second, found = impl.call("find", "s3cr3t-promise")
        found = np.asarray(found).tolist()
        assert second != first                       # the cells ran again, in a process of its own
        shared = {3, 4} if mode == "none" else set()
        assert set(found) <= shared, found
        resumed, kept = impl.call("find", "s3cr3t-promise")      # the interrupted session goes on
        assert resumed == first and {0, 1, 2} <= set(np.asarray(kept).tolist())
    finally:
        impl.close()
        if mode == "none":
            for path in ("/tmp/carry.txt", "/dev/shm/autograder-carry"):
                if os.path.exists(path):
                    os.unlink(path)


CACHED_PROBES = ("landlock_abi", "confinement_works", "netns_works", "tmpfs_works", "cgroup_parents")


@UID
def test_the_uid_mode_grades_and_says_so_where_the_kernel_refuses_every_protection(tmp_path, monkeypatch):
    """A container refusing the network namespace, Landlock, seccomp, tmpfs and cgroups (simulated
    through REFUSE_ENV): the uid mode still runs the student, as a uid of its own, and names
    every protection it went without; without Landlock, the student can indeed write /tmp."""
    monkeypatch.setenv(sandbox.REFUSE_ENV, "netns,landlock,seccomp,tmpfs,cgroup")
    for name in CACHED_PROBES:
        getattr(sandbox, name).cache_clear()
    marker = f"/tmp/autograder-refused-{os.getpid()}"
    impl = student("uid", tmp_path, guard=False,
                   cells=f"import os\ndef f():\n    open({marker!r}, 'w').write('x')\n    return os.getuid()\n")
    try:
        refused = " ".join(sandbox.refused_protections("uid"))
        for name in ("cgroup", "tmpfs", "network namespace", "Landlock", "seccomp"):
            assert name in refused, refused
        assert int(impl.call("f")) in sandbox.UIDS
        assert os.path.exists(marker)
    finally:
        impl.close()
        if os.path.exists(marker):
            os.unlink(marker)
        monkeypatch.undo()
        for name in CACHED_PROBES:
            getattr(sandbox, name).cache_clear()
