"""Implementations a probe can call: the student's (remote, sandboxed) or a local one.

A probe (written by an assignment) calls functions only through ``impl.call(name, *args,
opaque=(k, ...))`` so that the same probe runs against the student, the reference and every
misconception. Results come back as numpy arrays, floats and lists/dicts of them; the
positions listed in ``opaque`` (a student's cache, say) come back as handles that can only be
passed to a later call of the same implementation (and, for the student, the same session).
Each call leaves a CallRecord in ``impl.log``: the arguments it changed, the numpy
floating-point errors it raised and its time, all established outside the student's process.
"""
import contextlib
import copy
import time
from dataclasses import dataclass, field

import numpy as np

from autograder.process.channel import UPCALL_WALL_SECONDS, ChannelClosed, ChannelTimeout, Opaque, fp_errors

# A reply may hold at most REPLY_FACTOR times the bytes of the arrays the grader sent to its
# session so far, plus REPLY_SLACK: a reply over that is refused before it is read (the grader's
# memory stays bounded by what it sent, whatever the student's process announces).
REPLY_FACTOR = 4
REPLY_SLACK = 8 * 2**20


class StudentFailure(Exception):
    """A call of a student function that produced no usable result."""
    status = "error"

    def __init__(self, fn, message, error=None):
        super().__init__(f"{fn}: {message}")
        self.fn, self.message = fn, message   # fn: the function the grader called (its own fact)
        self.error = error or {}      # the worker's validated report, shown to the student, never evidence


class NotImplementedYet(StudentFailure):
    status = "not_implemented"


class NotDefined(StudentFailure):
    status = "missing"


class TimedOut(StudentFailure):
    status = "timeout"


class CallTimedOut(TimedOut):
    """The call itself ran past its time limit (not the notebook's cells, nor the submission's
    total time)."""


class Crashed(StudentFailure):
    status = "crashed"


@dataclass
class CallRecord:
    """What one call did besides returning: arguments it changed, floating-point errors it
    raised (numpy's divide, overflow, invalid) and how long it took (less the grader's time
    answering its stand-ins): wall time, and CPU time (None where it cannot be measured: a
    student's session without a cgroup); the stand-in requests it made and their bytes, answers
    included."""
    fn: str
    modified: list = field(default_factory=list)
    fp_errors: list = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = None
    upcalls: int = 0
    upcall_bytes: int = 0


@dataclass(frozen=True)
class Handle:
    """A value that stayed inside an implementation (e.g. a student's cache)."""
    owner: object
    key: object


def same_value(before, after):
    """True when an argument came back unchanged (arrays: bitwise, NaNs included)."""
    if isinstance(before, dict):
        return (isinstance(after, dict) and before.keys() == after.keys()
                and all(same_value(before[k], after[k]) for k in before))
    if isinstance(before, np.ndarray):
        after = np.asarray(after)
        return (after.shape == before.shape and after.dtype == before.dtype
                and np.array_equal(before, after, equal_nan=True))
    return True


class Impl:
    """Common bookkeeping: the call log a probe's caller reads."""
    enforces_limits = False     # True for the student's: a call's `seconds` is a limit it must meet

    def __init__(self, parameter_names):
        self.parameter_names = parameter_names   # fn -> tuple of argument names
        self.log = []

    def names(self, fn, positions):
        names = self.parameter_names.get(fn, ())
        return [names[k] if k < len(names) else f"argument {k + 1}" for k in positions]

    @contextlib.contextmanager
    def fresh(self):
        """Calls inside see nothing of earlier calls (the student's: a new session)."""
        yield

    def new_session(self):
        """The next call sees nothing of earlier calls (the student's: it opens a new session)."""

    @contextlib.contextmanager
    def substituted(self, names, reference, opaque, budget):
        """Calls inside find `reference`'s functions `names` where they call those functions by
        name (each judged on its own: its upstream answers as the reference would). opaque: fn ->
        positions of its results that stay with the reference (a cache); budget: calls of those
        functions one call may make. This base class stands in for nothing."""
        yield


class StandIns:
    """The grader's side of the stand-ins in a student's session: each request a stand-in sends
    (worker.stand_in) is checked and answered with `reference`'s values, computed here.

    A request is data from the student's process: its function must be one of `names`, it may
    make at most `budget` of them in one call, its arrays must be real numbers with at most three
    axes, none longer than the longest axis of the arrays the grader itself passed in this block
    (so whatever the reference computes stays the size of the case), and a handle must be one this
    object gave out. Caches and other values listed in `opaque` stay here; the student's code gets
    their keys."""

    def __init__(self, reference, names, parameter_names, opaque, budget):
        self.reference, self.names, self.opaque, self.budget = reference, tuple(names), opaque, budget
        self.stubs = {name: [list(parameter_names[name]), list(opaque.get(name, ()))] for name in self.names}
        self.kept = []                # handles of values the reference keeps (its caches)
        self.calls, self.longest = 0, 1

    def begin(self, args):
        """A new call of the student's, with these arguments: its stand-ins' count starts again."""
        shapes = [np.shape(a) for a in flatten(args) if isinstance(a, np.ndarray)]
        self.calls, self.longest = 0, max([self.longest] + [n for shape in shapes for n in shape])

    def answer(self, name, args):
        """A stand-in's request -> its marshal answer."""
        if name not in self.names:
            return refusal("TypeError", f"the grader does not stand in for {name[:40]} here")
        self.calls += 1
        if self.calls > self.budget:
            return refusal("ValueError", f"the grader's stand-in for {name} answers at most {self.budget} calls "
                                         "of one function call")
        try:
            values = [self.argument(a) for a in args]
        except ValueError as exc:
            return refusal("ValueError", f"{name}: {exc}")
        try:
            result = self.reference.call(name, *values, opaque=self.opaque.get(name, ()))
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:   # wrong arguments
            return refusal(type(exc).__name__ if isinstance(exc, TypeError) else "ValueError",
                           f"{name}: {str(exc)[:120]}")
        return {"ok": True, "result": self.encoded(result)}

    def argument(self, value):
        """One argument a stand-in sent -> the value the reference is called with."""
        if isinstance(value, dict) and set(value) == {"grader_value"}:
            key = value["grader_value"]
            if type(key) is not int or not 0 <= key < len(self.kept):
                raise ValueError("got a value the grader did not give out")
            return self.kept[key]
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):   # ragged lists
            raise ValueError("got an argument that is not an array") from None
        if array.dtype.kind not in "biuf" or array.ndim > 3 or max(array.shape, default=0) > self.longest:
            raise ValueError(f"got an array of dtype {array.dtype} and shape {array.shape}")
        return array

    def encoded(self, value):
        """The reference's result -> marshal data worker.decoded reads (arrays as bytes)."""
        if isinstance(value, Handle):
            self.kept.append(value)
            return ("r", len(self.kept) - 1)
        if isinstance(value, tuple):
            return ("t", [self.encoded(v) for v in value])
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            array = np.ascontiguousarray(value)
            return ("a", array.tobytes(), array.dtype.str, list(array.shape))
        return ("v", value.item() if isinstance(value, np.generic) else value)


def refusal(kind, message):
    return {"ok": False, "type": kind, "message": message}


def flatten(values):
    """Arrays and other leaves of nested tuples, lists and dicts."""
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from flatten(value)
        elif isinstance(value, dict):
            yield from flatten(value.values())
        else:
            yield value


class LocalImpl(Impl):
    """Functions from a namespace in this process: the reference or a misconception.

    watch_inputs: call on copies of the arguments and record which ones the call changed (a
    misconception may change them on purpose); False for the reference, which never does
    (tests/test_reference_torch.py) and is then called on the arguments themselves."""

    def __init__(self, namespace, parameter_names, watch_inputs=True):
        super().__init__(parameter_names)
        self.namespace, self.watch_inputs = namespace, watch_inputs

    @contextlib.contextmanager
    def substituted(self, names, reference, opaque, budget):
        """The reference's functions put in this namespace for the block (a misconception's
        functions then call the reference's upstream, as the student's do)."""
        if not isinstance(reference, LocalImpl) or reference.namespace is self.namespace:
            yield
            return
        own = {name: self.namespace.get(name) for name in names}
        self.namespace.update({name: reference.namespace[name] for name in names})
        try:
            yield
        finally:
            self.namespace.update(own)

    def call(self, fn, *args, opaque=(), seconds=None):
        """fn(*args) here (`seconds`, a time limit, is the student's only)."""
        handles = [isinstance(a, Handle) for a in args]
        args = [a.key if handle else a for a, handle in zip(args, handles)]
        work = [a if handle or not self.watch_inputs else copy.deepcopy(a) for a, handle in zip(args, handles)]
        flags = [0]
        started, cpu_started = time.monotonic(), time.process_time()

        def on_fp_error(kind, flag):
            flags[0] |= flag
        with np.errstate(all="call", under="ignore", call=on_fp_error):
            result = self.namespace[fn](*work)
        seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
        changed = [k for k, (a, b) in enumerate(zip(args, work)) if a is not b and not same_value(a, b)]
        self.log.append(CallRecord(fn, self.names(fn, changed), fp_errors(flags[0]), seconds, cpu_seconds))
        if opaque:
            result = list(result)
            for k in opaque:
                result[k] = Handle(id(self), result[k])
        return to_arrays(result)


class StudentImpl(Impl):
    """The student's functions, in sessions (channel.py): each a sandboxed process of its own,
    started for it, which runs the notebook's cells and then serves calls.

    A session is started on demand, and again after a timeout or a crash, so a hang costs only
    the call it stopped. `fresh()` gives a block of calls a session of its own, a process no
    earlier call (and no earlier session's cells) has touched; the session the block interrupted
    waits, untouched by it, and serves the calls after it. `sessions` numbers the current
    session (handles name the session they belong to). `upcall_cost()`: what a stand-in's round
    trip costs a session on this machine (upcall_cost.UpcallCost)."""

    enforces_limits = True

    def __init__(self, start_server, parameter_names, limits, time_left, upcall_cost=None):
        super().__init__(parameter_names)
        self.start_server, self.limits, self.time_left = start_server, limits, time_left
        self.upcall_cost = upcall_cost
        self.server, self.sessions, self.started, self.run_reply = None, 0, 0, None
        self.failed_start = None      # the notebook's cells could not run: the same again next time
        self.fresh_depth = 0
        self.stand_ins = None         # StandIns while a block of calls is judged with them

    def open(self):
        """Start a new session (a new process, which runs the cells first)."""
        if self.failed_start is not None:
            raise self.failed_start
        seconds = self.time_left()
        if seconds <= 0:
            raise TimedOut("notebook", "the submission used up its total time limit")
        self.close()
        try:
            self.server = self.start_server(seconds)
        except (ChannelTimeout, ChannelClosed) as exc:
            failure = (TimedOut if isinstance(exc, ChannelTimeout) else Crashed)("notebook", str(exc))
            if self.run_reply is None:      # its cells never ran to the end: they will not next time
                self.failed_start = failure
            raise failure from None
        self.run_reply = self.run_reply or self.server.report
        self.started += 1
        self.sessions = self.started
        self.sent = 0                   # bytes of the arrays sent to this session

    def new_session(self):
        if not self.fresh_depth:
            self.close()                # the next call starts a new process

    @contextlib.contextmanager
    def fresh(self):
        if self.fresh_depth:            # already in a fresh session: share it
            yield
            return
        waiting = self.server, self.sessions
        self.server = None              # the next call starts a new session
        self.fresh_depth += 1
        try:
            yield
        finally:
            self.fresh_depth -= 1
            self.close()
            self.server, self.sessions = waiting

    @contextlib.contextmanager
    def substituted(self, names, reference, opaque, budget):
        """During the block, the student's code that calls `names` by name calls the grader's
        stand-ins, which answer with `reference`'s values (StandIns); nothing of the reference
        enters the student's process."""
        self.stand_ins = StandIns(reference, names, self.parameter_names, opaque, budget)
        try:
            yield
        finally:
            self.stand_ins = None

    def call(self, fn, *args, opaque=(), seconds=None):
        """fn(*args) in the session, within `seconds` (else the call limit of grading.yml)."""
        if self.server is None or not self.server.session_open:
            self.open()
        wire_args = []
        for a in args:
            if isinstance(a, Handle):
                if a.owner != self.sessions:
                    raise Crashed(fn, "its input came from a process that has since been restarted")
                a = Opaque(a.key)
            wire_args.append(a)
        strict = seconds is not None and seconds < self.limits.call_seconds   # a limit of the judge's: no grace
        seconds = min(self.limits.call_seconds, self.time_left(), seconds or float("inf"))
        if seconds <= 0:
            raise TimedOut(fn, "the submission used up its total time limit")
        stand_ins = self.stand_ins
        if stand_ins is not None:
            stand_ins.begin(args)
        self.sent += array_bytes(args)
        self.server.bound_replies(REPLY_FACTOR * self.sent + REPLY_SLACK)
        try:
            outcome = self.server.call(fn, wire_args, opaque, seconds, stand_ins and stand_ins.stubs,
                                       stand_ins and stand_ins.answer, **({"grace": 0.0} if strict else {}))
        except ChannelTimeout:
            raise CallTimedOut(fn, f"did not return within {seconds:g} s") from None
        except ChannelClosed as exc:
            raise Crashed(fn, f"{exc}") from None
        if not outcome.reply["ok"]:
            raise failure(fn, outcome.reply["error"])
        self.log.append(CallRecord(fn, self.names(fn, outcome.modified), outcome.fp_errors, outcome.seconds,
                                   outcome.cpu_seconds, outcome.upcalls, outcome.upcall_bytes))
        result = outcome.reply["result"]
        if opaque:
            if not isinstance(result, list) or any(not (isinstance(result[k], dict) and set(result[k]) == {"handle"}
                                                       and type(result[k]["handle"]) is int) for k in opaque):
                raise Crashed(fn, "its process sent a malformed reply")
            for k in opaque:
                result[k] = Handle(self.sessions, result[k]["handle"])
        return to_arrays(result)

    def stand_in_wall(self, record):
        """Wall seconds of `record`'s call granted back for its stand-ins' round trips on a
        derivation case (channel.UPCALL_WALL_SECONDS each)."""
        return record.upcalls * UPCALL_WALL_SECONDS

    def stand_in_cpu(self, record):
        """CPU seconds of `record`'s call that were its stand-ins' round trips, at what they cost
        a session of the grader's own (upcall_cost; measured on first use)."""
        if not record.upcalls or self.upcall_cost is None:
            return 0.0
        return self.upcall_cost().cpu_seconds(record.upcalls, record.upcall_bytes)

    def close(self):
        if self.server is not None:
            self.server.kill()
            self.server = None


def unpack(result, names, fn):
    """A probe's check that `fn` returned len(names) values; a clear failure otherwise."""
    if not isinstance(result, tuple) or len(result) != len(names):
        got = f"{len(result)} values" if isinstance(result, tuple) else f"a single {type(result).__name__}"
        raise StudentFailure(fn, f"returned {got}; expected {len(names)}: ({', '.join(names)})")
    return result


def failure(fn, error):
    """The worker's validated error report -> the matching StudentFailure."""
    kind, message, where = error["type"], error["message"], error["where"]
    text = f"{kind}: {message}" if message else kind
    if where:
        text += f" (cell {where[0]}, line {where[1]})"
    if kind == "NotImplementedError":
        return NotImplementedYet(fn, "not implemented yet", error)
    if kind == "NameError" and message == f"no function named {fn} was defined":
        return NotDefined(fn, message, error)
    if kind == "MemoryError":
        return Crashed(fn, "ran out of memory (the memory limit is in grading.yml)", error)
    return StudentFailure(fn, f"raised {text}", error)


def array_bytes(value):
    """Bytes of the numpy arrays in `value` (arrays, lists, tuples and dicts of them)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.nbytes
    if isinstance(value, (list, tuple)):
        return sum(array_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(array_bytes(v) for v in value.values())
    return 0


def to_arrays(value):
    """Plain results -> arrays where they are numbers (lists of arrays stay lists)."""
    if isinstance(value, (list, tuple)):
        return tuple(to_arrays(v) for v in value)
    if isinstance(value, dict):
        return {k: to_arrays(v) for k, v in value.items()}
    if isinstance(value, (Handle, str)) or value is None:
        return value
    return np.asarray(value)


__all__ = ["Impl", "LocalImpl", "StudentImpl", "StandIns", "Handle", "StudentFailure", "NotImplementedYet",
           "NotDefined", "TimedOut", "Crashed"]
