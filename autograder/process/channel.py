"""The grader's side of worker.py: one sandboxed process per session, and its arena.

A `ForkServer` is one session: a sandboxed worker process started for it (sandbox.StudentProcess)
that runs the notebook's cells, then serves `call`s of the student's functions until it is
closed. No state passes from one session to the next: each has its own process, pipes, arena and
working folder, and the grader starts a new one (impl.StudentImpl) for every fresh session.
Arguments travel through the `Arena`, a memfd both processes map: after the call the grader
reads the arguments back itself (an argument changed in place is seen there, whatever the
student's process says) and the call's status slot, where the worker's own code wrote the
call's nonce and the numpy floating-point errors the call raised. Replies are checked against a
schema and their text is cut to a short, printable first line: nothing the student's process
sends can crash the grader or carry more than a line of text to the feedback. Every write to the
student's pipes is bounded in time: a process that stops reading is killed.
"""
import fcntl
import hashlib
import hmac
import marshal
import os
import secrets
import select
import time
from dataclasses import dataclass, field

import numpy as np

from autograder.process import wire
from autograder.process.sandbox import StudentProcess, exit_reason

GRACE_SECONDS = 2.0      # after a call's own limit, before the session is killed
ALIGN = 64               # bytes: every array in the arena starts on such a boundary
PAGE = os.sysconf("SC_PAGE_SIZE")
STATUS_BYTES = 48        # nonce (16) | floating-point error flags (8) | dicts changed (8) | signature (16)
FP_NAMES = {1: "divide by zero", 2: "overflow", 8: "invalid value"}
TEXT_LIMIT = 120         # characters of student text a message may carry
PIPE_BYTES = 1 << 20     # buffer of the session's pipes
SEND_SECONDS = 10.0      # the student's process reads what the grader sends within this, or is killed
READ_CHUNK = 1 << 20     # bytes a message's buffer starts with
UPCALL_WALL_SECONDS = 0.001   # a call's time limit grows this much per stand-in request (a round trip)


class ChannelTimeout(Exception):
    """The student's code did not answer in time (its session has been killed)."""


class ChannelClosed(Exception):
    """The session died or broke the protocol (it has been killed); the message says how."""


def clean(text, limit=TEXT_LIMIT):
    """Student text -> its first line, printable characters only, at most `limit` long."""
    line = str(text).strip().split("\n", 1)[0] if text else ""
    line = "".join(c if c.isprintable() else "?" for c in line)
    return line if len(line) <= limit else line[:limit - 1] + "…"


@dataclass(frozen=True)
class Opaque:
    """An argument that is a value kept inside the session (a student's cache), by its key."""
    key: int


def frame(obj):
    data = marshal.dumps(obj)
    return len(data).to_bytes(8, "big") + data


class Reader:
    """Reads framed messages (8-byte big-endian length, then the body) from a non-blocking pipe,
    each body straight into a buffer of its own, which grows with what arrives (at most twice
    that, or READ_CHUNK: an announced size costs nothing until it is sent); at most `size_limit`
    bytes a message."""

    def __init__(self, fd, size_limit):
        self.fd, self.size_limit, self.last_size = fd, size_limit, 0
        os.set_blocking(fd, False)
        self.clear()

    def clear(self):
        self.head, self.body, self.got, self.size = b"", None, 0, 0

    def message(self, decode):
        """The message read completely, decoded (and forgotten), or None; `last_size`: its bytes."""
        if self.body is None or self.got < self.size:
            return None
        body, self.last_size = self.body, self.size
        self.clear()
        return decode(body)

    def fill(self):
        """Read what is available, up to the end of the current message; False at end of file."""
        try:
            while self.body is None or self.got < self.size:
                if self.body is None:
                    chunk = os.read(self.fd, 8 - len(self.head))
                    if not chunk:
                        return False
                    self.head += chunk
                    if len(self.head) == 8:
                        self.size = int.from_bytes(self.head, "big")
                        if self.size > self.size_limit:
                            raise ChannelClosed(f"sent a message of {self.size} bytes, over the limit of "
                                                f"{self.size_limit} (a reply is bounded by the size of the "
                                                f"arguments the grader sent)")
                        self.body = bytearray(min(self.size, READ_CHUNK))
                    continue
                if self.got == len(self.body):   # full, and more is announced: double it
                    self.body.extend(bytes(min(self.size - self.got, self.got)))
                count = os.readv(self.fd, [memoryview(self.body)[self.got:]])
                if not count:
                    return False
                self.got += count
        except BlockingIOError:
            pass
        return True

    def drain(self):
        """Discard everything the pipe holds now, and any message begun."""
        while True:
            try:
                if not os.read(self.fd, 1 << 20):
                    break
            except BlockingIOError:
                break
        self.clear()


@dataclass
class Placed:
    """Where one call's arguments lie in the arena, to read them back after the call."""
    base: int
    length: int
    status: int
    nonce: bytes
    arrays: list = field(default_factory=list)     # (argument position, offset, original bytes)
    dicts: list = field(default_factory=list)      # argument positions of dicts, in order


class Arena:
    """A memfd shared with one session's worker; each call's arguments go to fresh pages (a
    student's cache may keep views of earlier arguments for the whole session)."""

    def __init__(self):
        self.fd = os.memfd_create("autograder-arena", 0)
        self.cursor = 0

    def place(self, args):
        """Arguments -> (worker specs, Placed). Arrays and dicts of arrays go to the arena."""
        base = -(-self.cursor // PAGE) * PAGE
        placed = Placed(base, 0, base, secrets.token_bytes(16))
        chunks, cursor = [], base + STATUS_BYTES

        def spec(value, position):
            nonlocal cursor
            if isinstance(value, np.generic):
                value = np.asarray(value)
            if isinstance(value, np.ndarray):
                data = np.ascontiguousarray(value).tobytes()
                cursor = -(-cursor // ALIGN) * ALIGN
                chunks.append((cursor, data))
                placed.arrays.append((position, cursor, data))
                offset, cursor = cursor, cursor + len(data)
                return ("a", (offset - base, value.size, value.dtype.str, value.shape))
            if isinstance(value, dict):
                if position not in placed.dicts:
                    placed.dicts.append(position)
                return ("d", {str(k): spec(v, position) for k, v in value.items()})
            if isinstance(value, Opaque):
                return ("h", value.key)
            if value is None or isinstance(value, (bool, int, float, str)):
                return ("v", value)
            raise TypeError(f"cannot pass a {type(value).__name__} to a student function")

        specs = [spec(a, k) for k, a in enumerate(args)]
        placed.length = max(cursor - base, STATUS_BYTES)
        self.cursor = base + placed.length
        if os.fstat(self.fd).st_size < self.cursor:
            os.ftruncate(self.fd, -(-self.cursor // PAGE) * PAGE)
        os.pwrite(self.fd, bytes(STATUS_BYTES), base)
        for offset, data in chunks:
            os.pwrite(self.fd, data, offset)
        return specs, placed

    def read_back(self, placed, key):
        """-> (argument positions changed, floating-point flags), or ChannelClosed when the
        worker's own code did not finish the call (no status signed with the session's `key`
        for this call's nonce)."""
        status = os.pread(self.fd, STATUS_BYTES, placed.status)
        signature = hashlib.blake2b(status[:32], key=key, digest_size=16).digest()
        if status[:16] != placed.nonce or not hmac.compare_digest(status[32:48], signature):
            raise ChannelClosed("answered a call without finishing it (a forged reply)")
        changed = {p for p, offset, data in placed.arrays if os.pread(self.fd, len(data), offset) != data}
        dict_bits = int.from_bytes(status[24:32], "little")
        changed |= {p for k, p in enumerate(placed.dicts) if dict_bits >> k & 1}
        return sorted(changed), int.from_bytes(status[16:24], "little")

    def close(self):
        os.close(self.fd)


def fp_errors(flags):
    """numpy floating-point flags -> names ("overflow", ...)."""
    return [name for bit, name in FP_NAMES.items() if flags & bit]


# ---------------------------------------------------------------- replies: schema

def is_text(value):
    return isinstance(value, str)


def valid_error(error):
    return (isinstance(error, dict) and is_text(error.get("type")) and is_text(error.get("message"))
            and (error.get("where") is None or (isinstance(error["where"], list) and len(error["where"]) == 2
                                                and all(type(n) is int for n in error["where"])))
            and isinstance(error.get("functions", []), list) and all(map(is_text, error.get("functions", []))))


def checked_error(error):
    """A validated error report with its text cleaned."""
    return {"type": clean(error["type"], 60), "message": clean(error["message"]),
            "where": error["where"], "functions": [clean(f, 60) for f in error.get("functions", [])]}


def checked_run_reply(reply):
    """The session's report after the cells, validated: {"cell_errors": [...], "threads": n}."""
    errors = reply.get("cell_errors") if isinstance(reply, dict) else None
    if not isinstance(errors, list) or not all(
            isinstance(e, list) and len(e) == 4 and type(e[0]) is int and is_text(e[1]) and is_text(e[2])
            and type(e[3]) is int for e in errors) or type(reply.get("threads")) is not int:
        raise ChannelClosed("sent a malformed report after running its cells")
    return {"cell_errors": [[i, clean(t, 60), clean(m), line] for i, t, m, line in errors[:50]],
            "threads": reply["threads"]}


def checked_call_reply(reply):
    if isinstance(reply, dict) and reply.get("ok") is True and set(reply) == {"ok", "result"}:
        return reply
    if isinstance(reply, dict) and reply.get("ok") is False and valid_error(reply.get("error")):
        return {"ok": False, "error": checked_error(reply["error"])}
    raise ChannelClosed("sent a malformed reply")


def decode_reply(body):
    try:
        return wire.decode(body)
    except wire.WireError as exc:
        raise ChannelClosed(f"sent an unreadable reply ({exc})") from None


# ---------------------------------------------------------------- the fork server

def checked_upcall(message):
    """A stand-in's request during a call, validated: (function name, arguments), or None when
    the message is not one."""
    if (isinstance(message, dict) and set(message) == {"upcall", "args"} and is_text(message["upcall"])
            and isinstance(message["args"], list)):
        return message["upcall"], message["args"]
    return None


REFUSED_UPCALL = {"ok": False, "type": "RuntimeError", "message": "no stand-in answers here"}


@dataclass
class CallOutcome:
    reply: dict
    modified: list          # argument positions changed in place
    fp_errors: list         # numpy floating-point errors the call raised
    seconds: float          # the call's time, less the grader's own time answering its stand-ins
    cpu_seconds: float      # CPU time of all the session's processes during the call; None without a cgroup
    upcalls: int = 0        # stand-in requests it made (answered or refused)
    upcall_bytes: int = 0   # their bytes and their answers' together


class ForkServer:
    """One session: a sandboxed worker process of its own, for one submission.

    Starting it runs the notebook's cells (at most `seconds`), then reads the key that signs the
    session's status slots; `report` is what the worker said of the cells: {"cell_errors":
    [...], "threads": n}, validated. The session stays open until a call times out, breaks the
    protocol or crashes, or `close_session()`: then its process and everything it started are
    killed, and a new session is a new ForkServer."""

    def __init__(self, scratch, limits, mode, cells, seconds):
        self.arena = Arena()
        ctl_in_r, self.ctl_in = os.pipe()
        self.ctl_out, ctl_out_w = os.pipe()
        req_r, self.req = os.pipe()
        self.rep, rep_w = os.pipe()
        for fd in (self.req, self.rep):   # results of megabytes in a few writes, not hundreds
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:
                pass
        child_fds = [ctl_in_r, ctl_out_w, req_r, rep_w, self.arena.fd]
        self.process = None
        try:
            self.process = StudentProcess(scratch, limits, mode, child_fds)
        finally:
            for fd in child_fds[:4]:
                os.close(fd)
            if self.process is None:
                self._close_channel()
        for fd in (self.ctl_in, self.req):   # writes wait in select, with a deadline (_send)
            os.set_blocking(fd, False)
        self.control, self.replies = Reader(self.ctl_out, 1 << 20), Reader(self.rep, wire.MAX_MESSAGE_BYTES)
        self.session_open, self.key = True, b""
        try:
            self.report = self._run_cells(cells, limits.call_seconds, seconds)
            self.key = self._read_key()
        except BaseException:
            self.kill()
            raise

    def _run_cells(self, cells, cell_seconds, seconds):
        self._send(self.ctl_in, {"cells": cells, "cell_seconds": float(cell_seconds)})
        kind, report = self._await(seconds, want_reply=False)
        if kind == "timeout":
            raise ChannelTimeout(f"its cells did not finish running within {seconds:.0f} s")
        report = checked_run_reply(report)
        if report["threads"]:
            raise ChannelClosed(f"its cells left {report['threads']} thread(s) running "
                                "(the grader does not run notebooks that start threads)")
        return report

    def _read_key(self):
        """The session's first message, sent before any student code ran: its 32-byte key."""
        first = self._wait_reply(5.0, "while starting")
        key = first.get("key") if isinstance(first, dict) and set(first) == {"key"} else None
        try:
            key = bytes.fromhex(key)
        except (TypeError, ValueError):
            key = b""
        if len(key) != 32:
            self.close_session()
            raise ChannelClosed("sent something else than its key when it started")
        return key

    def _send(self, fd, obj):
        """Write one message to the student's process, which must read it within SEND_SECONDS:
        else it is killed (ChannelClosed); -> its size in bytes."""
        data, seconds = memoryview(frame(obj)), SEND_SECONDS
        size = len(data)
        deadline = time.monotonic() + seconds
        try:
            while data:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [fd], [], left)[1]:
                    self.kill()
                    raise ChannelClosed(f"it did not read what the grader sent within {seconds:g} s")
                try:
                    data = data[os.write(fd, data):]
                except BlockingIOError:
                    pass
        except OSError:
            raise ChannelClosed(exit_reason(self.process.kill(grace=1.0), "its channel closed")) from None
        return size

    def _await(self, seconds, want_reply):
        """Wait for a session reply (want_reply) or a control message; -> (kind, message)."""
        deadline = time.monotonic() + seconds
        while True:
            if want_reply:
                message = self.replies.message(decode_reply)
                if message is not None:
                    return "reply", message
            message = self.control.message(decode_reply)
            if message is not None:
                return "control", message
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.rep, self.ctl_out] if want_reply else [self.ctl_out], [], [],
                                        max(left, 0))
            if not ready:
                return "timeout", None
            for fd, reader in ((self.rep, self.replies), (self.ctl_out, self.control)):
                if fd in ready and not reader.fill():
                    raise ChannelClosed(exit_reason(self.process.kill(grace=1.0), "its process ended"))

    def bound_replies(self, size):
        """Replies of more than `size` bytes (wire.MAX_MESSAGE_BYTES at most) are refused before
        they are read: the session is closed (ChannelClosed)."""
        self.replies.size_limit = min(size, wire.MAX_MESSAGE_BYTES)

    def close_session(self):
        """End the session: its process, and everything it started, is killed."""
        self.session_open = False
        self.kill()

    def _wait_reply(self, seconds, doing, grace=GRACE_SECONDS):
        kind, message = self._await(seconds + grace, want_reply=True)
        if kind == "reply":
            return message
        self.close_session()
        if kind == "timeout":
            raise ChannelTimeout(f"no answer within {seconds:g} s")
        raise ChannelClosed(f"sent a message nobody asked for {doing}")

    def call(self, fn, args, opaque, seconds, stubs=None, answer=None, grace=GRACE_SECONDS):
        """Call `fn` in the open session; -> CallOutcome (reply validated, arguments read back).
        The session is killed `grace` seconds after `seconds`, which the grader's time answering
        stand-ins, and UPCALL_WALL_SECONDS a request, extend.

        stubs: {name: parameter names} of the functions the grader stands in for during the call;
        answer(name, args) -> the marshal answer to a stand-in's request (computed in this
        process; its time is not the student's)."""
        specs, placed = self.arena.place(args)
        request = {"op": "call", "fn": fn, "args": specs, "opaque": list(opaque), "status": 0,
                   "base": placed.base, "length": placed.length, "nonce": placed.nonce, "stubs": stubs or {}}
        started, cpu_started = time.monotonic(), self.process.cgroup.cpu_seconds()
        deadline, answering, upcalls, upcall_bytes = started + seconds, 0.0, 0, 0
        self._send(self.req, request)
        try:
            while True:
                message = self._wait_reply(max(deadline - time.monotonic(), 0.0), "while running it", grace)
                upcall = checked_upcall(message)
                if upcall is None:
                    break
                begun = time.monotonic()
                upcalls += 1
                upcall_bytes += self.replies.last_size + self._send(
                    self.req, answer(*upcall) if answer and stubs else REFUSED_UPCALL)
                answering += time.monotonic() - begun
                deadline += time.monotonic() - begun + UPCALL_WALL_SECONDS
            reply = checked_call_reply(message)
        except ChannelClosed:   # a malformed or forged reply: the session's next words cannot be trusted either
            self.close_session()
            raise
        elapsed = time.monotonic() - started - answering
        cpu = None if cpu_started is None else self.process.cgroup.cpu_seconds() - cpu_started
        if not reply["ok"]:
            return CallOutcome(reply, [], [], elapsed, cpu, upcalls, upcall_bytes)
        try:
            modified, flags = self.arena.read_back(placed, self.key)
        except ChannelClosed:
            self.close_session()
            raise
        return CallOutcome(reply, modified, fp_errors(flags), elapsed, cpu, upcalls, upcall_bytes)

    def alive(self):
        return self.process is not None and self.process.process.poll() is None

    def kill(self):
        """Kill the session's process (and all it started) and close its channel."""
        if self.process is None:
            return
        self.process.kill()
        self.process = None
        self.session_open = False
        self._close_channel()

    def _close_channel(self):
        for fd in (self.ctl_in, self.ctl_out, self.req, self.rep):
            try:
                os.close(fd)
            except OSError:
                pass
        self.arena.close()
