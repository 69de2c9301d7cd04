"""Runs inside the student's sandbox: executes the notebook's cells, then serves calls.

Started by sandbox.py as ``python -I worker.py REQUEST_FD REPLY_FD`` in a scratch copy of the
release folder. It talks to the grader only through wire messages on those two descriptors:

    {"op": "run", "cells": [[index, source], ...], "cell_seconds": s}
        -> {"cell_errors": [[index, "Type: message"], ...], "defined": [names]}
    {"op": "call", "fn": name, "args": [...], "opaque": [k, ...], "seconds": s}
        -> {"ok": true, "result": ..., "args_after": [...], "warnings": [text, ...]}
        or {"ok": false, "error": {"type", "message", "where"}}

Values that cannot travel as plain data (a student's cache object, say) stay here: result
positions listed in ``opaque`` come back as {"handle": id}, and an argument {"handle": id} is
replaced by the stored object. Nothing here is trusted by the grader: it only compares what
comes back. This file imports only the standard library, numpy and wire.py.
"""
import builtins
import os
import re
import signal
import sys
import traceback
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # python -I leaves it out
import guard  # noqa: E402  (copied next to this file)
import wire  # noqa: E402

MESSAGE_LIMIT = 300


class StudentTimeout(BaseException):
    """Raised inside student code when its time is up (BaseException: a bare except: still
    catches it, and then the grader's hard kill takes over)."""


def runnable(source):
    """Notebook cell source -> Python source: IPython magics and shell escapes are dropped."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        if not re.match(r"\s*%%(time|timeit|capture)\b", lines[0]):
            return ""
        lines = lines[1:]
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[:len(line) - len(stripped)] + "pass"
        out.append(line)
    return "\n".join(out)


def describe(exc):
    """An exception -> {"type", "message", "where"}, short, pointing into the student's cells."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    where = f"{frames[-1].filename[1:-1]}, line {frames[-1].lineno}" if frames else ""
    return {"type": type(exc).__name__, "message": str(exc)[:MESSAGE_LIMIT], "where": where}


class Alarm:
    """Soft time limit: raises StudentTimeout in the main thread after `seconds`."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        def ring(signum, frame):
            raise StudentTimeout(f"took longer than {self.seconds:g} s")
        signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)


def plain(value, depth=0):
    """A student's return value -> plain data the wire can carry, or TypeError."""
    if depth > 8:
        raise TypeError("returned a structure nested too deeply")
    if isinstance(value, (np.ndarray, np.generic)):
        if np.asarray(value).dtype.kind not in wire.NUMERIC_KINDS:
            raise TypeError(f"returned an array of dtype {np.asarray(value).dtype}, not numbers")
        return np.asarray(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:MESSAGE_LIMIT]
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    raise TypeError(f"returned a {type(value).__name__}, not an array")


class Worker:
    def __init__(self, request_fd, reply_fd):
        self.request_fd, self.reply_fd = request_fd, reply_fd
        self.namespace = {"__name__": "__main__", "__builtins__": builtins,
                          "display": lambda *args, **kwargs: None}
        self.handles = []

    def run_cells(self, cells, seconds):
        errors = []
        for index, source in cells:
            try:
                code = compile(runnable(source), f"<cell {index}>", "exec")
                with Alarm(seconds):
                    exec(code, self.namespace)
            except BaseException as exc:  # the student's SystemExit and KeyboardInterrupt too
                info = describe(exc)
                errors.append([index, f"{info['type']}: {info['message']}"])
        defined = sorted(k for k, v in self.namespace.items() if callable(v) and not k.startswith("_"))
        return {"cell_errors": errors, "defined": defined}

    def resolve(self, value):
        if isinstance(value, dict) and set(value) == {"handle"}:
            return self.handles[value["handle"]]
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def call(self, fn, args, opaque, seconds):
        function = self.namespace.get(fn)
        if not callable(function):
            return {"ok": False, "error": {"type": "NotDefined", "where": "",
                                           "message": f"no function named {fn} was defined"}}
        args = [self.resolve(a) for a in args]
        np.seterr(all="warn", under="ignore")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with Alarm(seconds):
                    result = function(*args)
            except BaseException as exc:
                return {"ok": False, "error": describe(exc)}
        try:
            if opaque:
                if not isinstance(result, (tuple, list)) or len(result) <= max(opaque):
                    raise TypeError(f"returned {type(result).__name__} "
                                    f"{'of length ' + str(len(result)) if isinstance(result, (tuple, list)) else ''}"
                                    f", expected a tuple of at least {max(opaque) + 1} items")
                result = list(result)
                for k in opaque:
                    self.handles.append(result[k])
                    result[k] = {"handle": len(self.handles) - 1}
            reply = {"ok": True, "result": plain_with_handles(result),
                     "args_after": [a if isinstance(a, (np.ndarray, dict)) else None for a in args],
                     "warnings": [f"{w.category.__name__}: {w.message}"[:MESSAGE_LIMIT] for w in caught]}
            wire.encode(reply)
            return reply
        except (TypeError, wire.WireError) as exc:
            return {"ok": False, "error": {"type": "BadReturn", "message": str(exc)[:MESSAGE_LIMIT], "where": ""}}

    def serve(self):
        while True:
            try:
                request = wire.receive(self.request_fd)
            except EOFError:
                return
            if request["op"] == "run":
                reply = self.run_cells(request["cells"], request["cell_seconds"])
            else:
                reply = self.call(request["fn"], request["args"], request["opaque"], request["seconds"])
            wire.send(self.reply_fd, reply)


def plain_with_handles(value):
    if isinstance(value, dict) and set(value) == {"handle"}:
        return value
    if isinstance(value, list):
        return [plain_with_handles(v) for v in value]
    return plain(value)


def main():
    request_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])
    here = os.getcwd()
    sys.path.insert(0, here)
    readable = [sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr/share", "/usr/lib",
                "/dev/null", "/proc/self", "/etc/localtime"] + [p for p in sys.path if p]
    guard.install(writable=[here, "/dev/null"], readable=readable)
    Worker(request_fd, reply_fd).serve()


if __name__ == "__main__":
    main()
