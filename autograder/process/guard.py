"""The audit hook of the student's process: the second line behind the kernel sandbox.

Copied next to worker.py into the student's sandbox; imports only the standard library.
`install(writable, readable)` refuses, inside Python: files outside `readable` (reads) or
`writable` (writes), directories opened as files (no dir_fd tricks), changing directory,
processes (including the private `_posixsubprocess.fork_exec`), sockets, shared memory
(mmap), native code (`ctypes` and its every event, CPython's test modules, subinterpreters),
the autodiff libraries, and the introspection that reaches the worker's own frames and objects
(`gc`, `sys._getframe`, `sys._current_frames`, trace and profile functions, frames of
tracebacks, generators and coroutines). Where bubblewrap runs, the kernel enforces the file,
process and network parts too; elsewhere this hook is the only line for them.

It returns two functions only the worker holds, in local variables:
- `as_grader(fn, *args)` runs the worker's own `fn` with the hook off in the calling thread (to
  read a traceback's frames, to map the arena); no student code may run meanwhile;
- `seal()` takes back every write permission (the calls write no file).
traceback's stack summaries are replaced by versions that never hand a frame to code a notebook
could replace (`replace_stack_summaries`). All of this is a second line inside a process the
notebook owns (README, "Isolation"): known routes are closed, the boundary is the kernel's.
"""
import _thread
import os
import sys
import traceback
import types

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
BLOCKED_EVENTS = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "os.chdir",
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "sys._current_frames", "sys.settrace", "sys.setprofile",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "mmap.__new__",
}
# Native code, process creation, subinterpreters, and libraries that differentiate for the student.
BLOCKED_MODULES = {
    "ctypes", "_ctypes", "_posixsubprocess", "_testcapi", "_testinternalcapi", "_testbuffer",
    "_testmultiphase", "_testsinglephase", "_testimportmultiple", "_xxsubinterpreters",
    "_xxinterpchannels", "_xxtestfuzz",
    "torch", "functorch", "torchgen", "jax", "jaxlib", "autograd", "tensorflow", "keras",
    "tf_keras", "mxnet", "theano", "aesara", "pytensor", "tinygrad", "mlx", "chainer", "cupy",
    "paddle", "mindspore", "oneflow", "dynet", "numdifftools", "sympy", "casadi",
}
# Attributes that hand out frames or generators' code. Not f_code: a frame cannot be had in the
# first place.
FRAME_ATTRIBUTES = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "gi_code"}
# A function's code and default arguments, refused on the functions of the worker's own files
# (this folder: worker.py, wire.py, guard.py), which bind what they need as defaults.
PROTECTED_ATTRIBUTES = {"__code__", "__defaults__", "__kwdefaults__"}
OWN_FOLDER = os.path.dirname(os.path.realpath(__file__)) + os.sep
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
PATH_EVENTS = {   # event -> which roots its path arguments (both, for two-path events) must be inside
    "os.listdir": "readable", "os.scandir": "readable",
    "os.remove": "writable", "os.rename": "writable", "os.rmdir": "writable", "os.mkdir": "writable",
    "os.symlink": "writable", "os.link": "writable", "os.truncate": "writable",
    "os.chmod": "writable", "os.chown": "writable", "os.utime": "writable",
}


class Refused(PermissionError):
    """What the hook raises, unless a more specific type below lets honest code fall back."""


class ImportRefused(ImportError):
    """A blocked module: an ImportError, which libraries with optional dependencies catch."""


class RefusedFrame(ValueError):
    """sys._getframe refused: a ValueError, which namedtuple, typing, enum and logging catch
    (they fall back to not knowing their caller's module)."""


class RefusedAttribute(AttributeError):
    """A frame reached through a traceback, generator or coroutine refused (hasattr is False)."""


class RefusedModule(types.ModuleType):
    """What other modules see in place of a blocked module (or function) they had imported:
    every function of it refuses to run."""

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self

    def __call__(self, *args, **kwargs):
        raise Refused(f"the grader does not allow {self.__name__}")


def install(writable, readable):
    """Install the audit hook for the rest of the process: reads only under `readable` (or
    `writable`), writes only under `writable`; everything in the module docstring refused.
    Returns (as_grader, seal). Blocked modules already imported (numpy imports ctypes) are
    forgotten first; `_posixsubprocess` becomes a module whose functions refuse, so that
    subprocess (matplotlib imports it) still imports.

    The hook reads only what is bound here, at install time (frozen sets, functions as default
    arguments): a notebook that empties this module's sets or replaces its functions, or
    `_thread.get_ident`, changes nothing the hook does."""
    writable = [os.path.realpath(p) for p in writable]
    roots = {"readable": tuple(os.path.realpath(p) for p in readable) + tuple(writable), "writable": writable}
    sealed = [os.path.realpath("/dev/null")]
    scrub_modules()
    sys.modules["_posixsubprocess"] = RefusedModule("_posixsubprocess")
    grader = [None]   # the thread running as_grader, if any

    def hook(event, args, _ident=_thread.get_ident, _events=frozenset(BLOCKED_EVENTS),
             _modules=frozenset(BLOCKED_MODULES), _frames=frozenset(FRAME_ATTRIBUTES),
             _paths=dict(PATH_EVENTS), _protected=frozenset(PROTECTED_ATTRIBUTES), _check_open=check_open, _inside=inside, _starts=str.startswith,
             _refused=Refused, _import_refused=ImportRefused, _frame_refused=RefusedFrame,
             _attribute_refused=RefusedAttribute, _own=OWN_FOLDER, _getattr=getattr):
        if grader[0] == _ident():
            return
        if event in _events or _starts(event, "ctypes."):
            raise _refused(f"the grader does not allow {event}")
        if event == "import" and args[0].partition(".")[0] in _modules:
            raise _import_refused(f"the grader does not allow importing {args[0]}")
        if event == "sys._getframe":
            raise _frame_refused("the grader does not allow sys._getframe")
        if event == "object.__getattr__" and args[1] in _frames:
            raise _attribute_refused(f"the grader does not allow {args[1]}")
        if event == "object.__setattr__" and args[1] in _protected and _starts(
                _getattr(_getattr(args[0], "__code__", None), "co_filename", ""), _own):
            raise _refused(f"the grader does not allow setting {args[1]} of its own functions")
        if event == "open":
            _check_open(*args, roots)
        elif event in _paths:
            two = event in ("os.rename", "os.link", "os.symlink")
            for path in (args[:2] if two else args[:1]) or ["."]:
                if path is not None and not _inside(path, roots[_paths[event]]):
                    raise _refused(f"the grader does not allow {event} on {path!r}")

    def as_grader(fn, *args, _ident=_thread.get_ident):
        grader[0] = _ident()
        try:
            return fn(*args)
        finally:
            grader[0] = None

    def seal():
        writable[:] = sealed

    sys.addaudithook(hook)
    replace_stack_summaries(as_grader)
    return as_grader, seal


def stack_entries(limit, _getframe=sys._getframe, _append=list.append, _len=len):
    """(file name, line, function name) of each frame of the caller's caller's stack,
    innermost first, at most `limit` (`limit` < 0: the outermost); run through as_grader: frames
    are read with C attribute reads only, and only strings and numbers leave."""
    entries, frame = [], _getframe(3)    # 0 this, 1 as_grader, 2 the summary function, 3 its caller
    while frame is not None and (limit is None or limit < 0 or _len(entries) < limit):
        code = frame.f_code
        _append(entries, (code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return entries[limit:] if limit is not None and limit < 0 else entries


def replace_stack_summaries(as_grader, _entries=stack_entries, _summary=traceback.FrameSummary,
                            _from_list=traceback.StackSummary.from_list, _format=traceback.format_list,
                            _print=traceback.print_list, _int=int, _add=int.__add__, _type=type):
    """traceback's extract_stack, format_stack and print_stack (pyparsing, which matplotlib
    imports, calls extract_stack) become functions that give the same summary (names and lines)
    without ever handing a frame to code a notebook could replace: sys._getframe itself is
    refused to the notebook, whoever calls it."""
    def extract_stack(f=None, limit=None):
        if f is not None:
            raise Refused("the grader does not allow summaries of a given frame")
        if limit is not None and _type(limit) is not _int:    # a plain int: nothing of the notebook's
            limit = _add(0, _int(limit))                       # runs while the hook is off
        entries = as_grader(_entries, limit)
        stack = _from_list([_summary(name, line, function, lookup_line=False) for name, line, function in entries])
        stack.reverse()
        return stack

    def format_stack(f=None, limit=None):
        return _format(extract_stack(f, limit))

    def print_stack(f=None, limit=None, file=None):
        _print(extract_stack(f, limit), file=file)
    traceback.extract_stack, traceback.format_stack, traceback.print_stack = extract_stack, format_stack, print_stack


def inside(path, roots, _realpath=os.path.realpath, _fspath=os.fspath, _fsdecode=os.fsdecode,
           _isinstance=isinstance, _any=any):
    """True when `path` (str, bytes, path-like or a descriptor) resolves under one of `roots`.
    Relative paths resolve against the working folder, which cannot change (chdir refused)."""
    if _isinstance(path, int):
        return True
    if _isinstance(path, bytes):
        path = _fsdecode(path)
    real = _realpath(_fspath(path))
    return _any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)


def check_open(path, mode, flags, roots, _inside=inside, _isdir=os.path.isdir, _write_flags=WRITE_FLAGS,
               _o_directory=O_DIRECTORY):
    """Refuse opening `path` outside the roots for its mode, and opening any directory."""
    if path is None or isinstance(path, int):
        return
    writing = (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & _write_flags)
    if not _inside(path, roots["writable" if writing else "readable"]):
        raise Refused(f"the grader does not allow opening {path!r}")
    if (mode is None and flags & _o_directory) or _isdir(path):
        raise Refused(f"the grader does not allow opening the folder {path!r}")


def scrub_modules():
    """Forget blocked modules that are already imported, and replace every reference other
    modules hold to them (or to their functions) by a module that refuses everything."""
    blocked = {name: sys.modules.pop(name) for name in list(sys.modules)
               if name.partition(".")[0] in BLOCKED_MODULES}
    blocked_ids = {id(m) for m in blocked.values()}
    refused = RefusedModule("this function")
    for module in list(sys.modules.values()):
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if id(value) in blocked_ids or (isinstance(value, (type, types.BuiltinFunctionType))
                                            and value.__module__ in blocked):
                try:
                    setattr(module, attr, refused)
                except (AttributeError, TypeError):
                    pass
