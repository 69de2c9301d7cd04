"""Runs inside the student's sandbox: one session, which runs the notebook's cells, then serves calls.

Started by sandbox.py as ``python -I -S worker.py CTL_IN CTL_OUT REQUEST REPLY ARENA SITE...``
(SITE: the grader's site-packages folders, put on sys.path by hand: Python starts without `site`,
and no .pth file runs), from a read-only folder outside the student's working folder, which is
the current directory. It imports numpy, sends the key that signs its calls' status slots,
installs the audit hook (guard.py), takes signal handlers away from the notebook, runs the
notebook's cells ({"cells": [[index, source], ...], "cell_seconds": s} on the control channel),
then serves calls until the grader ends it. Every session is a process of its own, started for
it: the grader grades in one session and starts a new process, which runs the cells again, for
every second opinion it asks of the student's code. Nothing links two sessions: no descriptor,
mapping, memory or working folder of one exists in the next (sandbox.py gives each its own).

Control channel (grader -> worker: framed marshal; worker -> grader: wire.py, checked there):
    {"cells": ..., "cell_seconds": s} -> {"cell_errors": [[index, type, message, line], ...], "threads": n}
Session channel (grader -> worker: marshal; worker -> grader: wire.py, numbers only):
    first, unasked, {"key": hex}: the key that signs this session's status slots
    {"op": "call", "fn", "args", "opaque", "status", "base", "length", "nonce", "stubs"}
        -> {"ok": true, "result": ...} or {"ok": false, "error": {"type", "message", "where", "functions"}}
    During a call, each function named in "stubs" ({name: [parameter names, kept positions]}) is a stand-in: the
    student's code that calls it sends {"upcall": name, "args": [...]} and gets the grader's
    answer, {"ok": true, "result": encoded} or {"ok": false, "type", "message"} (marshal), computed
    by the grader (the reference's values: no line of the reference is in this process). Values
    the grader keeps for itself (a reference's cache) reach the student as `GraderValue` handles.

Arguments arrive as arrays over the ARENA (a memfd of this session's, which the grader reads back
itself: an argument changed in place is seen there), and after each call the worker writes the
call's nonce, the numpy floating-point errors the call raised and the argument dicts it changed
into the call's status slot of the arena, signed with the session's key. The code doing that is
bound in local variables before any student code runs; signals are blocked whenever it runs; a
notebook that leaves a thread running is not served, and a call after which a thread of the
student's is alive is void. All of this is a second line: the notebook owns this process, and
what decides points is established by the grader's own process and the kernel (README,
"Isolation"). This file imports only the standard library, numpy, wire.py and guard.py.
"""
import _blake2      # hashlib's blake2b, without hashlib's OpenSSL import (milliseconds per submission)
import _signal
import _thread
import marshal
import mmap
import os
import sys
import types

sys.path.extend(sys.argv[6:])    # the grader's site-packages: started with -S, no .pth file runs here
import numpy as np  # noqa: E402
from numpy._core import _ufunc_config  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # python -I leaves it out
import guard  # noqa: E402  (copied next to this file)
import wire  # noqa: E402

MESSAGE_LIMIT = 160          # characters of a student's exception message sent back
FP_REPORTED = 1 | 2 | 8      # numpy's divide, overflow and invalid flags (underflow is not an error)
THREAD_GRACE = 1.0           # seconds a notebook's threads get to finish after its cells


def _traceback():
    try:
        raise RuntimeError
    except RuntimeError as exc:
        return exc.__traceback__


TRACEBACK = _traceback()          # its type is the one real tracebacks have


class GraderValue:
    """A value the grader keeps on its side (say the reference's cache of a step), handed to the
    student's code by a stand-in and given back to another stand-in; opaque here."""
    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __repr__(self):
        return "<a value kept by the grader>"


def decoded(value, _frombuffer=np.frombuffer, _dtype=np.dtype, _tuple=tuple):
    """A stand-in's answer (marshal data from the grader) -> arrays, numbers, tuples, handles."""
    kind = value[0]
    if kind == "a":
        _, data, dtype, shape = value
        return _frombuffer(data, dtype=_dtype(dtype)).reshape(shape).copy()
    if kind == "t":
        return _tuple(decoded(v) for v in value[1])
    if kind == "r":
        return GraderValue(value[1])
    return value[1]


class StudentTimeout(BaseException):
    """Raised inside a cell when its time is up (BaseException: a bare except: still catches
    it, and then the grader's hard kill takes over)."""


def read(fd, _read=os.read, _loads=marshal.loads, _from=int.from_bytes, _len=len, _min=min):
    """One framed marshal message (8-byte big-endian length, then the data), or None at EOF."""
    head = b""
    while _len(head) < 8:
        chunk = _read(fd, 8 - _len(head))
        if not chunk:
            return None
        head += chunk
    size, body = _from(head, "big"), b""
    while _len(body) < size:
        chunk = _read(fd, _min(size - _len(body), 1 << 20))
        if not chunk:
            return None
        body += chunk
    return _loads(body)


def frame(header, _to_bytes=int.to_bytes, _len=len):
    """A wire.py message with a JSON header built by the caller and no arrays."""
    body = _to_bytes(_len(header), 4, "big") + header
    return _to_bytes(_len(body), 8, "big") + body


def put(fd, data, _write=os.write):
    """Write all of `data` to `fd`."""
    while data:
        data = data[_write(fd, data):]


def stand_in(name, parameters, kept, own, request_fd, reply_fd, handles, _read=read, _send=wire.send,
             _plain=wire.plain, _decoded=decoded, _exit=os._exit, _type=type, _list=list, _len=len, _id=id,
             _value=GraderValue, _ndarray=np.ndarray, _copy=np.array, _callable=callable, _exception=Exception):
    """The grader's stand-in for the student's function `name` during one call: it sends its
    arguments to the grader and returns what the grader answers.

    Results at the positions `kept` (a cache) stay with the grader. The student's code gets the
    cache of its own function `own`, run on copies of the same arguments, so that code reading
    its own cache's layout still works; `handles` (id -> (that cache, the grader's key), kept for
    the session) turns it back into the grader's key when it is passed to another stand-in."""
    def sent(value):
        if _type(value) is _value:
            return {"grader_value": value.key}
        known = handles.get(_id(value))
        if known is not None and known[0] is value:
            return {"grader_value": known[1]}
        return _plain(value)

    def stub(*args, **kwargs):
        args = _list(args)
        for parameter in parameters[_len(args):]:
            if parameter not in kwargs:
                break
            args.append(kwargs.pop(parameter))
        if kwargs or _len(args) != _len(parameters):
            raise TypeError(f"{name}() takes the arguments ({', '.join(parameters)})")
        _send(reply_fd, {"upcall": name, "args": [sent(a) for a in args]})
        answer = _read(request_fd)
        if answer is None:
            _exit(0)
        if not answer["ok"]:
            raise (TypeError if answer["type"] == "TypeError" else ValueError)(answer["message"])
        result = _decoded(answer["result"])
        if kept and _callable(own):
            try:
                mine = own(*[_copy(a) if _type(a) is _ndarray else a for a in args])
                result = _list(result)
                for k in kept:
                    if mine[k] is not None:     # (None is everybody's: it stays the grader's handle)
                        handles[_id(mine[k])] = (mine[k], result[k].key)
                        result[k] = mine[k]
                result = tuple(result)
            except _exception:      # its own function fails: the student's code gets the handle itself
                result = tuple(result)
        return result
    stub.__name__ = stub.__qualname__ = name
    return stub


def runnable(source):
    """Notebook cell source -> Python source: IPython magics and shell escapes are dropped."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        if not lines[0].lstrip().startswith(("%%time", "%%timeit", "%%capture")):
            return ""
        lines = lines[1:]
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[:len(line) - len(stripped)] + "pass"
        out.append(line)
    return "\n".join(out)


def cell_frames(tb, _text=str.__str__, _starts=str.startswith, _digits=str.isdigit, _int=int, _len=len):
    """[(cell index, function name, line)] of a traceback's frames in the student's cells,
    innermost last. Reads frames, so the worker calls it through guard's as_grader; it runs no
    code a notebook could have replaced (C attribute reads and unbound str methods only)."""
    frames = []
    while tb is not None and _len(frames) < 1000:
        code = tb.tb_frame.f_code
        filename = _text(code.co_filename)
        if _starts(filename, "<cell ") and _digits(filename[6:-1]):
            frames.append((_int(filename[6:-1]), _text(code.co_name), tb.tb_lineno))
        tb = tb.tb_next
    return frames


def describe(exc, as_grader, _type=type, _str=str, _traceback_type=type(TRACEBACK), _frames=cell_frames):
    """An exception -> {"type", "message", "where", "functions"}: short, pointing into the
    student's cells; `functions` names the notebook functions the traceback went through."""
    try:
        lines = _str(exc).strip().splitlines()
    except BaseException:      # a student's __str__ may raise too
        lines = []
    try:
        name = _str(_type(exc).__name__)
    except BaseException:
        name = "Exception"
    tb = exc.__traceback__ if isinstance(exc, BaseException) else None
    frames = as_grader(_frames, tb) if _type(tb) is _traceback_type else []
    return {"type": name[:60], "message": (lines[0] if lines else "")[:MESSAGE_LIMIT],
            "where": [frames[-1][0], frames[-1][2]] if frames else None,
            "functions": [f[1] for f in frames][-20:]}


def refuse_signal_handlers(_signal_module=_signal):
    """Take signal handlers away from the notebook (a handler receives the interrupted frame, and
    through it the worker's); -> the real `signal.signal`, for the worker's own use. A fresh
    `_signal` from `_imp.create_builtin` would bring it back: that is refused too, by a wrapper
    whose real function lives in a generator's frame, which guard.py keeps out of reach. (The
    `signal` module, when imported later, calls `_signal.signal`: refused too.)"""
    import _imp
    original, real_create = _signal_module.signal, _imp.create_builtin

    def refused(*args, **kwargs):
        raise guard.Refused("the grader does not allow signal handlers")

    for module in list(sys.modules.values()):
        for name, value in list(getattr(module, "__dict__", {}).items()):
            if value is original or (isinstance(value, types.FunctionType)      # functools.wraps
                                     and value.__dict__.get("__wrapped__") is original):
                setattr(module, name, refused)
    _signal_module.signal = refused

    def keeper(_real=real_create):
        spec, answer = (yield), None
        while True:
            if getattr(spec, "name", None) in ("_signal", "signal", "_imp"):
                answer = (False, ImportError("the grader does not allow importing that module again"))
            else:
                try:
                    answer = (True, _real(spec))
                except Exception as exc:
                    answer = (False, exc)
            spec = yield answer

    vault = keeper()
    next(vault)

    def create_builtin(spec, _send=vault.send):
        ok, value = _send(spec)
        if not ok:
            raise value
        return value
    _imp.create_builtin = create_builtin
    return original


def run_cells(namespace, cells, seconds, explain, set_handler, _setitimer=_signal.setitimer,
              _alarm=_signal.SIGALRM, _real_time=_signal.ITIMER_REAL):
    """Execute the cells in order; an error in one is recorded and the next still runs. A cell
    gets `seconds`: the worker's own SIGALRM handler (set with `set_handler`) stops it."""
    def ring(signum, frame):
        raise StudentTimeout(f"took longer than {seconds:g} s")
    errors = []
    for index, source in cells:
        try:
            code = compile(runnable(source), f"<cell {index}>", "exec")
            set_handler(_alarm, ring)
            _setitimer(_real_time, seconds)
            try:
                exec(code, namespace)
            finally:
                _setitimer(_real_time, 0)
        except BaseException as exc:  # the student's SystemExit and KeyboardInterrupt too
            info = explain(exc)
            errors.append([index, info["type"], info["message"], (info["where"] or [index, 0])[1]])
    return errors


def session(namespace, request_fd, reply_fd, arena_fd, explain, as_grader, key,
            _read=read, _send=wire.send, _mmap=mmap.mmap, _frombuffer=np.frombuffer, _dtype=np.dtype,
            _sigmask=_signal.pthread_sigmask, _block=_signal.SIG_BLOCK, _setmask=_signal.SIG_SETMASK,
            _all_signals=_signal.valid_signals(), _threads=_thread._count,
            _make_extobj=_ufunc_config._make_extobj, _extobj=_ufunc_config._extobj_contextvar,
            _exit=os._exit, _plain=wire.plain, _to_bytes=int.to_bytes, _callable=callable,
            _dict=dict, _len=len, _all=all, _zip=zip, _enumerate=enumerate, _list=list,
            _mac=_blake2.blake2b, _reported=FP_REPORTED, _exception=BaseException, _name_error=NameError,
            _stand_in=stand_in, _missing=object()):
    """The session's calls: served until the grader sends anything but a call, or kills it.

    Everything the call path needs is bound as a default argument above, before any student
    code runs, so that patching modules, numpy or this file's globals changes nothing here.
    Each call's status slot (nonce, floating-point flags, dicts changed) is signed with `key`,
    which the grader got from this session before any student code ran in it: whatever a
    notebook does to the rest of this process, it cannot sign a status of its own."""
    handles = []
    kept_handles = {}    # the stand-ins' caches, for the session (stand_in)
    flags = [0]

    def _map(fd, length, offset):
        return _mmap(fd, length, offset=offset)

    def on_fp_error(kind, flag):
        flags[0] |= flag

    def argument(spec, view):
        kind, value = spec
        if kind == "a":
            offset, count, dtype, shape = value
            return _frombuffer(view, dtype=_dtype(dtype), count=count, offset=offset).reshape(shape)
        if kind == "h":
            return handles[value]
        if kind == "d":
            return {k: argument(v, view) for k, v in value.items()}
        return value

    while True:
        request = _read(request_fd)
        if request is None or request["op"] != "call":
            _exit(0)
        view = as_grader(_map, arena_fd, request["length"], request["base"])
        try:
            function = namespace.get(request["fn"])
            if not _callable(function):
                raise _name_error(f"no function named {request['fn']} was defined")
            args = [argument(spec, view) for spec in request["args"]]
            dicts = [(arg, _dict(arg)) for spec, arg in _zip(request["args"], args) if spec[0] == "d"]
        except _exception as exc:
            _send(reply_fd, {"ok": False, "error": explain(exc)})
            continue
        stubs = request["stubs"]
        own = {name: namespace.get(name, _missing) for name in stubs}
        for name, (parameters, kept) in stubs.items():
            namespace[name] = _stand_in(name, parameters, kept, own[name], request_fd, reply_fd, kept_handles)
        flags[0] = 0
        token = _extobj.set(_make_extobj(all="call", under="ignore", call=on_fp_error))
        _sigmask(_setmask, [])
        try:
            result, error = function(*args), None
        except _exception as exc:   # the student's SystemExit too
            result, error = None, exc
        _sigmask(_block, _all_signals)
        _extobj.reset(token)
        for name, value in own.items():    # the student's own functions again, for the next call
            if value is _missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value
        if _threads():
            _exit(86)   # a thread was alive: it could rewrite what follows, so the call is void
        changed = 0
        for k, (arg, before) in _enumerate(dicts):
            if _len(arg) != _len(before) or not _all(name in arg and arg[name] is array
                                                     for name, array in before.items()):
                changed |= 1 << k
        status = request["status"]
        signed = request["nonce"] + _to_bytes(flags[0] & _reported, 8, "little") + _to_bytes(changed, 8, "little")
        view[status:status + 48] = signed + _mac(signed, key=key, digest_size=16).digest()
        if error is not None:
            _send(reply_fd, {"ok": False, "error": explain(error)})
            continue
        try:
            result = _list(result) if request["opaque"] else result
            for k in request["opaque"]:
                handles.append(result[k])
                result[k] = {"handle": _len(handles) - 1}
            reply = {"ok": True, "result": _plain(result)}
        except (TypeError, IndexError, KeyError, wire.WireError) as exc:
            reply = {"ok": False, "error": {"type": "BadReturn", "message": str(exc)[:MESSAGE_LIMIT],
                                            "where": None, "functions": []}}
        _send(reply_fd, reply)


def main(_threads=_thread._count, _sigmask=_signal.pthread_sigmask, _block=_signal.SIG_BLOCK,
         _all_signals=_signal.valid_signals(), _monotonic=__import__("time").monotonic,
         _sleep=__import__("time").sleep, _exit=os._exit, _send=wire.send, _describe=describe,
         _session=session, _grace=THREAD_GRACE, _urandom=os.urandom, _hex=bytes.hex, _encode=str.encode,
         _frame=frame, _put=put):
    """Everything used after the cells ran is bound above, before they run."""
    ctl_in, ctl_out, request_fd, reply_fd, arena_fd = (int(a) for a in sys.argv[1:6])
    key = _urandom(32)          # first, before any student code: it signs this session's status slots
    _put(reply_fd, _frame(b'{"key": "' + _encode(_hex(key)) + b'"}'))
    here = os.getcwd()
    sys.path.insert(0, here)
    readable = [sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr/share", "/usr/lib",
                "/dev/null", "/proc/self", "/etc/localtime"] + [p for p in sys.path if p]
    message = read(ctl_in)
    as_grader, seal = guard.install(writable=[here, "/dev/null"], readable=readable)
    set_handler = refuse_signal_handlers()

    def explain(exc):
        return _describe(exc, as_grader)

    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "display": lambda *a, **k: None}
    errors = run_cells(namespace, message["cells"], message["cell_seconds"], explain, set_handler)
    deadline = _monotonic() + _grace
    while _threads() and _monotonic() < deadline:
        _sleep(0.01)
    _sigmask(_block, _all_signals)
    threads = _threads()
    _send(ctl_out, {"cell_errors": errors, "threads": threads})
    if threads or _threads():   # (sending runs wire.py's code, which the cells may have replaced)
        _exit(86)   # a thread was alive
    seal()                      # the calls write no file
    try:
        _session(namespace, request_fd, reply_fd, arena_fd, explain, as_grader, key)
    finally:
        _exit(1)


if __name__ == "__main__":
    main()
