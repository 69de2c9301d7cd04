"""The CPU time of a student's session (issue 18): what the derivation cases' CPU limit reads.

It is counted by the session's cgroup, so it covers every process the student starts, those that
have ended included, and none of the grader's own work; where the machine gives no cgroup it is
not measured (None) and every result names the protection refused. The grader's stand-ins'
round trips are granted back at MARGIN times what they cost a session of the grader's own, so a
student who only sends requests buys little with them.
"""
import inspect

import numpy as np
import pytest

from autograder.config import Limits
from autograder.process import sandbox, upcall_cost
from autograder.process.channel import UPCALL_WALL_SECONDS
from autograder.process.impl import LocalImpl
from tests.conftest import cpu_accounting
from tests.test_isolation import MODES, student

CPU_ACCOUNTING = cpu_accounting()

CELLS = '''
import os, time

def busy_child(seconds):
    """Burn `seconds` of CPU time in a forked child; the parent only waits."""
    pid = os.fork()
    if pid == 0:
        start = time.process_time()
        while time.process_time() - start < seconds:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    return 0.0

def sleep(seconds):
    time.sleep(seconds)
    return 0.0

def requests(x, k):
    for _ in range(int(k)):
        echo(x)
    return 0.0
'''
NAMES = {"busy_child": ("seconds",), "sleep": ("seconds",), "requests": ("x", "k"), "echo": ("x",)}


def session(mode, tmp_path):
    impl = student(mode, tmp_path, guard=False, cells=CELLS)   # (the guard refuses os.fork)
    impl.parameter_names = NAMES
    return impl


@pytest.mark.parametrize("mode", MODES)
def test_a_sessions_cpu_time_counts_the_processes_it_started_and_not_its_waiting(mode, tmp_path):
    impl = session(mode, tmp_path)
    try:
        impl.call("busy_child", 0.3)
        busy = impl.log[-1]
        impl.call("sleep", 0.3)
        idle = impl.log[-1]
    finally:
        impl.close()
    if not CPU_ACCOUNTING:
        assert busy.cpu_seconds is None and idle.cpu_seconds is None
        assert any("CPU" in r for r in sandbox.refused_protections(mode)), sandbox.refused_protections(mode)
        return
    assert busy.cpu_seconds >= 0.3, busy         # the child's work, though the parent only waited
    assert idle.cpu_seconds < 0.05 < 0.25 < idle.seconds, idle
    assert not any("CPU" in r for r in sandbox.refused_protections(mode))


@pytest.mark.parametrize("mode", MODES)
def test_the_stand_ins_round_trips_are_granted_back_and_buy_almost_nothing_more(mode, tmp_path):
    """A call that does nothing but send requests (the largest array of a derivation case each)
    is left with little CPU time of its own, and what is granted back is not much more than what
    the requests cost."""
    limits = Limits(wall_seconds=60, call_seconds=10, memory_mb=1024)
    cost = upcall_cost.measure(sandbox.make_scratch(None, "lstm.ipynb"), limits, mode)
    if not CPU_ACCOUNTING:
        assert cost == upcall_cost.UpcallCost() and cost.cpu_seconds(10, 10_000) == 0.0
        return
    assert cost.per_request > 0 and cost.per_byte > 0
    impl = session(mode, tmp_path)
    echo = LocalImpl({"echo": lambda x: x}, {"echo": ("x",)}, watch_inputs=False)
    x = np.zeros(upcall_cost.SHAPES[-1])
    try:
        with impl.substituted(("echo",), echo, {}, 200):
            impl.call("requests", x, 0)
            idle = impl.log[-1]
            impl.call("requests", x, 150)
            busy = impl.log[-1]
    finally:
        impl.close()
    assert busy.upcalls == 150 and busy.upcall_bytes > 150 * 2 * x.nbytes
    cpu = cost.cpu_seconds(busy.upcalls, busy.upcall_bytes)
    spent = busy.cpu_seconds - idle.cpu_seconds
    assert impl.stand_in_wall(busy) == pytest.approx(150 * UPCALL_WALL_SECONDS)
    # (two measurements on a machine that may be loaded: within a factor of 2 of each other)
    assert spent - cpu < 0.5 * spent, (spent, cpu)                      # the round trips: granted back
    assert cpu < 2 * upcall_cost.MARGIN * spent, (spent, cpu)           # and not much more


def test_the_reference_is_timed_by_its_cpu_time_on_one_blas_thread():
    """The grader's process runs numpy's BLAS on one thread, as the student's does: a pool of
    BLAS threads waiting would count as the reference's CPU time and loosen the limit."""
    import os
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    from solutions import lstm as reference
    ref = LocalImpl(vars(reference), {n: tuple(inspect.signature(f).parameters) for n, f in vars(reference).items()
                                      if inspect.isfunction(f)}, watch_inputs=False)
    rng = np.random.default_rng(0)
    n, t, d, h = 10, 8, 48, 96
    x, h0 = rng.normal(size=(n, t, d)), rng.normal(size=(n, h))
    Wx, Wh, b = rng.normal(size=(d, 4 * h)) * 0.1, rng.normal(size=(h, 4 * h)) * 0.1, np.zeros(4 * h)
    for _ in range(5):
        ref.call("lstm_forward", x, h0, Wx, Wh, b)
    record = min(ref.log, key=lambda r: r.seconds)
    assert record.cpu_seconds < 3 * record.seconds + 0.002, record
