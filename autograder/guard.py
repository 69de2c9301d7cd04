"""The audit hook of a student's session: the second line behind the kernel sandbox.

`install(writable, readable)` refuses processes, sockets, native-library loading, files outside
`readable` (reads) or `writable` (writes), and the introspection a notebook could use to reach
the worker's own code (frames, the garbage collector, tracing), and shared memory (mmap). It
returns two functions only the worker holds, in local variables:
- `as_grader(fn, *args)` runs the worker's own `fn` with the hook off (to read a traceback's
  frames, to map the arena, to fork); nothing of the student's may run while the hook is off;
- `seal()` takes back every write permission: a session forked to serve calls writes no file,
  so nothing one session does reaches the next.
Standard library only: copied into the sandbox next to worker.py.
"""
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
BLOCKED_EVENTS = {
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "pty.spawn", "socket.connect", "socket.bind", "socket.sendto",
    "socket.sendmsg", "socket.getaddrinfo", "ctypes.dlopen", "ctypes.dlsym",
    "ctypes.addressof", "ctypes.PyObj_FromPtr", "os.kill", "os.killpg", "signal.pthread_kill",
    "sys._current_frames", "sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "mmap.__new__",
}
BLOCKED_ATTRIBUTES = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_code", "gi_code"}


class Refused(PermissionError):
    """What the hook raises."""


class RefusedFrame(ValueError):
    """Raised for sys._getframe: the standard library's fallbacks for a missing frame
    (collections.namedtuple, typing) catch ValueError, so honest code using them still runs."""


def install(writable, readable):
    """Install the hook for the rest of the process; returns (as_grader, seal) (module docstring)."""
    writable = [os.path.realpath(p) for p in writable]
    readable = tuple(os.path.realpath(p) for p in readable) + tuple(writable)
    allowed = [False]

    def inside(path, roots):
        if isinstance(path, int):
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        real = os.path.realpath(os.fspath(path))
        return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)

    def hook(event, args):
        if allowed[0]:
            return
        if event in BLOCKED_EVENTS or event.startswith("ctypes."):
            raise Refused(f"the grader does not allow {event}")
        if event == "sys._getframe":
            raise RefusedFrame("the grader does not allow frame introspection")
        if event == "object.__getattr__" and args[1] in BLOCKED_ATTRIBUTES:
            raise Refused(f"the grader does not allow reading {args[1]}")
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags & WRITE_FLAGS)
            if path is not None and not inside(path, writable if writing else readable):
                raise Refused(f"the grader does not allow opening {path!r}")
        elif event in ("os.listdir", "os.scandir", "os.chdir", "os.remove", "os.rename",
                       "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.truncate"):
            path = args[0] if args else "."
            roots = readable if event in ("os.listdir", "os.scandir") else writable
            if path is not None and not inside(path, roots):
                raise Refused(f"the grader does not allow {event} on {path!r}")

    def as_grader(fn, *args):
        allowed[0] = True
        try:
            return fn(*args)
        finally:
            allowed[0] = False

    def seal():
        writable[:] = [os.path.realpath("/dev/null")]

    sys.addaudithook(hook)
    return as_grader, seal
