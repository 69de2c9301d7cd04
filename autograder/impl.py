"""Implementations a probe can call: the student's (remote, sandboxed) or a local one.

A probe (written by an assignment) calls functions only through ``impl.call(name, *args,
opaque=(k, ...))`` so that the same probe runs against the student, the reference and every
misconception. Results come back as numpy arrays, floats and lists/dicts of them; the
positions listed in ``opaque`` (a student's cache, say) come back as handles that can only be
passed to a later call of the same implementation.
"""
import copy
import warnings
from dataclasses import dataclass, field

import numpy as np

from autograder.sandbox import ChannelClosed, ChannelTimeout, StudentProcess


class Unavailable(Exception):
    """An implementation cannot answer this call (a replay of recorded results that never
    saw these arguments); judges treat it as "no second opinion", never as the student's fault."""


class StudentFailure(Exception):
    """A call of a student function that produced no usable result."""
    status = "error"

    def __init__(self, fn, message):
        super().__init__(f"{fn}: {message}")
        self.fn, self.message = fn, message


class NotImplementedYet(StudentFailure):
    status = "not_implemented"


class NotDefined(StudentFailure):
    status = "missing"


class TimedOut(StudentFailure):
    status = "timeout"


class Crashed(StudentFailure):
    status = "crashed"


@dataclass
class CallRecord:
    """What one call did besides returning: arguments it changed, warnings it raised."""
    fn: str
    modified: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


@dataclass(frozen=True)
class Handle:
    """A value that stayed inside an implementation (e.g. a student's cache)."""
    owner: int
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

    def __init__(self, parameter_names):
        self.parameter_names = parameter_names   # fn -> tuple of argument names
        self.log = []

    def record(self, fn, args, args_after, caught):
        names = self.parameter_names.get(fn, ())
        modified = [names[k] if k < len(names) else f"argument {k + 1}"
                    for k, (a, b) in enumerate(zip(args, args_after))
                    if b is not None and not same_value(a, b)]
        self.log.append(CallRecord(fn, modified, list(caught)))


class LocalImpl(Impl):
    """Functions from a namespace in this process: the reference or a misconception."""

    def __init__(self, namespace, parameter_names):
        super().__init__(parameter_names)
        self.namespace = namespace

    def call(self, fn, *args, opaque=()):
        args = [h.key if isinstance(h, Handle) else h for h in args]
        work = copy.deepcopy(args)
        with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn", under="ignore"):
            warnings.simplefilter("always")
            result = self.namespace[fn](*work)
        self.record(fn, args, work, [str(w.message) for w in caught])
        if opaque:
            result = list(result)
            for k in opaque:
                result[k] = Handle(id(self), result[k])
        return to_arrays(result)


class StudentImpl(Impl):
    """The student's functions, in a sandboxed process started (and restarted) on demand.

    `start()` must return (StudentProcess, run reply); it is called again after a timeout or a
    crash, so one hang costs only the call it stopped.
    """

    def __init__(self, start, parameter_names, call_seconds, deadline_seconds):
        super().__init__(parameter_names)
        self.start, self.call_seconds, self.time_left = start, call_seconds, deadline_seconds
        self.process, self.incarnation, self.run_reply = None, 0, None

    def ensure_started(self):
        if self.process is None:
            self.incarnation += 1
            self.process, self.run_reply = self.start()
        return self.process

    def call(self, fn, *args, opaque=()):
        process = self.ensure_started()
        wire_args = []
        for a in args:
            if isinstance(a, Handle):
                if a.owner != self.incarnation:
                    raise Crashed(fn, "its input came from a process that has since been restarted")
                a = {"handle": a.key}
            wire_args.append(a)
        seconds = min(self.call_seconds, self.time_left())
        if seconds <= 0:
            raise TimedOut(fn, "the submission used up its total time limit")
        try:
            reply = process.request({"op": "call", "fn": fn, "args": wire_args,
                                     "opaque": list(opaque), "seconds": seconds}, seconds)
        except ChannelTimeout:
            self.process = None
            raise TimedOut(fn, f"did not return within {seconds:g} s") from None
        except ChannelClosed as exc:
            self.process = None
            raise Crashed(fn, f"{exc} while running it") from None
        if not reply.get("ok"):
            raise failure(fn, reply.get("error") or {})
        self.record(fn, args, reply.get("args_after") or [], reply.get("warnings") or [])
        result = reply.get("result")
        if opaque:
            result = list(result)
            for k in opaque:
                result[k] = Handle(self.incarnation, result[k]["handle"])
        return to_arrays(result)

    def close(self):
        if self.process is not None:
            self.process.kill()
            self.process = None


def unpack(result, names, fn):
    """A probe's check that `fn` returned len(names) values; a clear failure otherwise."""
    if not isinstance(result, tuple) or len(result) != len(names):
        got = f"{len(result)} values" if isinstance(result, tuple) else f"a single {type(result).__name__}"
        raise StudentFailure(fn, f"returned {got}; expected {len(names)}: ({', '.join(names)})")
    return result


def failure(fn, error):
    """The worker's error report -> the matching StudentFailure."""
    kind, message, where = error.get("type", "Error"), error.get("message", ""), error.get("where", "")
    text = f"{kind}: {message}" if message else kind
    if where:
        text += f" ({where})"
    if kind == "NotImplementedError":
        return NotImplementedYet(fn, "not implemented yet")
    if kind == "NotDefined":
        return NotDefined(fn, message)
    if kind == "StudentTimeout":
        return TimedOut(fn, f"did not return in time ({message})")
    if kind == "MemoryError":
        return Crashed(fn, "ran out of memory (the memory limit is in grading.yml)")
    return StudentFailure(fn, f"raised {text}")


def to_arrays(value):
    """Plain results -> arrays where they are numbers (lists of arrays stay lists)."""
    if isinstance(value, (list, tuple)):
        return tuple(to_arrays(v) for v in value)
    if isinstance(value, dict):
        return {k: to_arrays(v) for k, v in value.items()}
    if isinstance(value, (Handle, str)) or value is None:
        return value
    return np.asarray(value)


__all__ = ["Impl", "LocalImpl", "StudentImpl", "Handle", "StudentFailure", "Unavailable", "NotImplementedYet",
           "NotDefined", "TimedOut", "Crashed", "StudentProcess"]
