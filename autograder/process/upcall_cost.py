"""What a stand-in's round trip costs a student's process in CPU time, measured on this machine.

Judged on its own (impl.StandIns), a student's function that calls a graded function by name
gets the grader's answer through a stand-in (worker.stand_in): the student's process encodes the
arguments, writes them, waits, reads and decodes the answer. On a derivation case, where the
grader limits the CPU time of the student's processes, that work is the grader's mechanism and
not the student's: the CPU limit grants it back, request by request, at MARGIN times what the
same requests cost a session of the grader's own (trusted cells, the same worker and sandbox;
the fastest of REPEATS), so that a loop calling a stand-in per sample and step costs nothing
(its requests also copy the arguments for the student's own cache, which the measured ones do
not), and requests made only to earn time earn at most half of what they cost: on a derivation
case, a few percent of what numerical differentiation takes. It is measured only when a
derivation case's CPU time is over the limit without the grant, and not at all where no cgroup
counts a session's CPU time. (The wall-clock limit grants a fixed channel.UPCALL_WALL_SECONDS
a request.)
"""
from dataclasses import dataclass

import numpy as np

from autograder.process import sandbox
from autograder.process.channel import ForkServer
from autograder.process.impl import LocalImpl, StandIns

CELLS = [[0, "def calibrate(x, k):\n    for _ in range(int(k)):\n        echo(x)\n    return 0.0\n"]]
REQUESTS = 40                  # stand-in requests per measured call
SHAPES = ((1,), (96, 384))     # a one-number array, and the largest array of a derivation case
REPEATS = 3                    # the fastest of these counts (a loaded machine only adds time)
MARGIN = 1.5
_measured = {}                 # sandbox mode -> UpcallCost, once per grader process


@dataclass(frozen=True)
class UpcallCost:
    """CPU seconds of one stand-in round trip in the student's process: per request, and per
    byte of the request and its answer together (None where a session's CPU time cannot be
    measured: no cgroup)."""
    per_request: float = None
    per_byte: float = None

    def cpu_seconds(self, requests, size):
        """CPU seconds granted for `requests` round trips of `size` bytes in all (0 where not
        measured)."""
        return 0.0 if self.per_request is None else MARGIN * (self.per_request * requests + self.per_byte * size)


def measured(scratch, limits, mode):
    """This machine's UpcallCost in sandbox `mode`, measured once per process in a session
    started in `scratch`."""
    if mode not in _measured:
        _measured[mode] = measure(scratch, limits, mode)
    return _measured[mode]


def measure(scratch, limits, mode):
    """Time REQUESTS round trips of each of SHAPES against none, in a session of the grader's
    own; -> UpcallCost fitted to the two sizes."""
    if not sandbox.cpu_accounting():
        return UpcallCost()
    try:
        server = ForkServer(scratch, limits, mode, CELLS, limits.call_seconds)
    except Exception as exc:
        raise sandbox.GraderError(f"cannot measure what a stand-in costs a student's process: {exc}") from exc
    echo = LocalImpl({"echo": lambda x: x}, {"echo": ("x",)}, watch_inputs=False)
    try:
        points = []   # (bytes, CPU seconds) of one round trip, per shape
        for shape in SHAPES:
            x, best = np.zeros(shape), None
            for _ in range(REPEATS):
                idle, busy = (call(server, echo, x, requests) for requests in (0, REQUESTS))
                if idle.cpu_seconds is None:
                    return UpcallCost()
                seconds = (busy.cpu_seconds - idle.cpu_seconds) / REQUESTS
                best = seconds if best is None else min(best, seconds)
            points.append((busy.upcall_bytes / REQUESTS, max(best, 0.0)))
    except Exception as exc:
        raise sandbox.GraderError(f"cannot measure what a stand-in costs a student's process: {exc}") from exc
    finally:
        server.close_session()
    (small_bytes, small), (large_bytes, large) = points
    per_byte = max(large - small, 0.0) / (large_bytes - small_bytes)
    return UpcallCost(max(small - per_byte * small_bytes, 0.0), per_byte)


def call(server, echo, x, requests):
    """calibrate(x, requests) in the session, its stand-in answered by `echo`; -> CallOutcome."""
    stand_ins = StandIns(echo, ("echo",), {"echo": ("x",)}, {}, REQUESTS)
    stand_ins.begin([x])
    outcome = server.call("calibrate", [x, requests], [], 10.0, stand_ins.stubs, stand_ins.answer)
    if not outcome.reply["ok"] or outcome.upcalls != requests:
        raise sandbox.GraderError(f"the calibration call answered {outcome.reply} after {outcome.upcalls} requests")
    return outcome
