"""The audit hook of the student's process: the second line behind the kernel sandbox.

Copied next to worker.py into the student's sandbox; imports only the standard library.
`install(writable, readable)` refuses, inside Python: files outside `readable` (reads) or
`writable` (writes), directories opened as files (no dir_fd tricks), changing directory,
processes (including the private `_posixsubprocess.fork_exec`), sockets, native code
(`ctypes` and its every event, CPython's test modules, subinterpreters), the autodiff
libraries, and the introspection that reaches the grader's own frames and objects
(`gc`, `sys._getframe`, `sys._current_frames`, trace and profile functions, frames of
tracebacks, generators and coroutines). Where bubblewrap runs, the kernel enforces the file,
process and network parts too; elsewhere this hook is the only line for them.
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
    "gc.get_objects", "gc.get_referrers", "gc.get_referents",
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
FRAME_ATTRIBUTES = {"tb_frame", "gi_frame", "cr_frame", "ag_frame"}
# traceback's functions that return a summary of the stack (names and lines, no frames): they
# may call sys._getframe (pyparsing, which matplotlib imports, calls extract_stack).
SUMMARIES = {traceback.extract_stack.__code__, traceback.format_stack.__code__, traceback.print_stack.__code__}
PATH_EVENTS = {   # event -> which roots its first argument must be inside
    "os.listdir": "readable", "os.scandir": "readable",
    "os.remove": "writable", "os.rename": "writable", "os.rmdir": "writable", "os.mkdir": "writable",
    "os.symlink": "writable", "os.link": "writable", "os.truncate": "writable",
    "os.chmod": "writable", "os.chown": "writable", "os.utime": "writable",
}


class ImportRefused(ImportError):
    """A blocked module: an ImportError, which libraries with optional dependencies catch."""


class FrameRefused(ValueError):
    """sys._getframe refused: a ValueError, which namedtuple, typing, enum and logging catch
    (they fall back to not knowing their caller's module)."""


class FrameAttributeRefused(AttributeError):
    """A frame reached through a traceback, generator or coroutine refused (hasattr is False)."""


class Refused(types.ModuleType):
    """What other modules see in place of a blocked module (or function) they had imported:
    every function of it refuses to run."""

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return self

    def __call__(self, *args, **kwargs):
        raise PermissionError(f"the grader does not allow {self.__name__}")


def install(writable, readable):
    """Install the audit hook: reads only under `readable` (or `writable`), writes only under
    `writable`; everything in the module docstring refused. Modules named in BLOCKED_MODULES
    that are already imported (numpy imports ctypes) are removed first; `_posixsubprocess`
    becomes a module whose functions refuse, so that subprocess (matplotlib imports it) imports."""
    writable = tuple(os.path.realpath(p) for p in writable)
    readable = tuple(os.path.realpath(p) for p in readable) + writable
    roots = {"readable": readable, "writable": writable}
    trusted = trusted_code(sys._getframe(1).f_globals)
    scrub_modules()
    sys.modules["_posixsubprocess"] = Refused("_posixsubprocess")
    state = {"busy": None}      # the thread running the hook's own introspection

    def hook(event, args):
        if state["busy"] == _thread.get_ident():
            return
        if event in BLOCKED_EVENTS or event.startswith("ctypes."):
            raise PermissionError(f"the grader does not allow {event}")
        if event == "import" and args[0].partition(".")[0] in BLOCKED_MODULES:
            raise ImportRefused(f"the grader does not allow importing {args[0]}")
        if event == "sys._getframe" or (event == "object.__getattr__" and args[1] in FRAME_ATTRIBUTES):
            state["busy"] = _thread.get_ident()
            try:
                caller = sys._getframe(1)
                allowed = caller.f_code in SUMMARIES if event == "sys._getframe" else called_from(caller, trusted)
            finally:
                state["busy"] = None
            if not allowed:
                refused = FrameRefused if event == "sys._getframe" else FrameAttributeRefused
                raise refused(f"the grader does not allow {event if event == 'sys._getframe' else args[1]}")
        elif event == "open":
            check_open(*args, roots)
        elif event in PATH_EVENTS:
            path = args[0] if args else "."
            if path is not None and not inside(path, roots[PATH_EVENTS[event]]):
                raise PermissionError(f"the grader does not allow {event} on {path!r}")

    sys.addaudithook(hook)


def check_open(path, mode, flags, roots):
    """Refuse opening `path` outside the roots for its mode, and opening any directory."""
    if path is None or isinstance(path, int):
        return
    writing = (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE_FLAGS)
    if not inside(path, roots["writable" if writing else "readable"]):
        raise PermissionError(f"the grader does not allow opening {path!r}")
    if (mode is None and flags & getattr(os, "O_DIRECTORY", 0)) or os.path.isdir(path):
        raise PermissionError(f"the grader does not allow opening the folder {path!r}")


def inside(path, roots):
    """True when `path` (str, bytes, path-like or a descriptor) resolves under one of `roots`.
    Relative paths resolve against the working folder, which cannot change (chdir refused)."""
    if isinstance(path, int):
        return True
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    real = os.path.realpath(os.fspath(path))
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)


def trusted_code(module_globals):
    """Code objects of the functions and methods defined in the module that installs the
    guard (the worker): they may read traceback frames (to say where a cell failed)."""
    name, found = module_globals.get("__name__"), set()
    for value in list(module_globals.values()):
        members = vars(value).values() if isinstance(value, type) and value.__module__ == name else [value]
        for member in members:
            if isinstance(member, types.FunctionType) and member.__module__ == name:
                found.add(member.__code__)
    return frozenset(found)


def called_from(frame, trusted):
    """True when the frame accessing a frame attribute is trusted code, or the traceback
    module called (directly) by trusted code."""
    while frame is not None and frame.f_code.co_filename == traceback.__file__:
        frame = frame.f_back
    return frame is not None and frame.f_code in trusted


def scrub_modules():
    """Forget blocked modules that are already imported, and replace every reference other
    modules hold to them (or to their functions) by a module that refuses everything."""
    blocked = {name: sys.modules.pop(name) for name in list(sys.modules)
               if name.partition(".")[0] in BLOCKED_MODULES}
    blocked_ids = {id(m) for m in blocked.values()}
    refused = Refused("this function")
    for module in list(sys.modules.values()):
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if id(value) in blocked_ids or (isinstance(value, (type, types.BuiltinFunctionType))
                                            and value.__module__ in blocked):
                try:
                    setattr(module, attr, refused)
                except (AttributeError, TypeError):
                    pass
