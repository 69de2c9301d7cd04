"""A student who wants unearned points (DESIGN.md, "Integrity"; issue 10 items 1-5).

Every attack is a real notebook, graded through the CLI in one class run together with honest
classmates. Each attacker gets at most what it honestly implements, the honest ones keep full
marks, and the run ends with every row and feedback page, exit 0.
"""
import base64
import csv
import json
import textwrap

import pytest

from assignments.lstm.samples import FULL, ZERO, reference_cells, release, solved, with_body
from autograder.samples import write_submission
from tests.conftest import cpu_accounting, run_cli

BACKWARD = ("lstm_step_backward", "lstm_backward")

# A forward pass that is right, and remembers what it saw: an input within 1e-3 of one seen
# before gets the earlier answer, so centered differences of it are exactly zero.
SNAPPED_FORWARD = '''def lstm_forward(x, h0, Wx, Wh, b):
    key = [x, h0, Wx, Wh, b]
    for seen, answer in _SEEN:
        if all(a.shape == s.shape and np.abs(a - s).max() < 1e-3 for a, s in zip(key, seen)):
            return answer
    h, c, caches = [], np.zeros_like(h0), []
    prev_h = h0
    for t in range(x.shape[1]):
        prev_h, c, cache = lstm_step_forward(x[:, t], prev_h, c, Wx, Wh, b)
        h.append(prev_h)
        caches.append(cache)
    answer = (np.stack(h, axis=1), caches)
    _SEEN.append(([k.copy() for k in key], answer))
    return answer
'''

# Right while its own exercise is graded (the first calls), then NaN or zeros: hoping that a
# later judge takes its answers as the expected values of the exercises built on it. The count
# is kept in the process and, where it can, in a file.
STATEFUL_GATES = '''def lstm_gates(x, prev_h, Wx, Wh, b):
    import os
    calls = int(open("calls.txt").read()) if os.path.exists("calls.txt") else 0
    try:
        open("calls.txt", "w").write(str(calls + 1))
    except OSError:
        pass
    _CALLS.append(1)
    H = prev_h.shape[1]
    if max(calls, len(_CALLS)) > 5:
        return tuple(np.full((x.shape[0], H), {poison}) for _ in range(4))
    a = x @ Wx + prev_h @ Wh + b
    s = lambda z: 0.5 * (1 + np.tanh(z / 2))
    return s(a[:, :H]), s(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), s(a[:, 3 * H:])
'''


def zeros_like_outputs(name):
    """An answer cell of the right shapes and nothing else."""
    bodies = {
        "lstm_step_forward": "z = np.zeros_like(prev_h)\nreturn z, z, None",
        "lstm_forward": "return np.zeros(x.shape[:2] + h0.shape[1:]), None",
        "lstm_step_backward": "z = np.zeros_like(dnext_h)\nreturn z, z, z, 0, 0, 0",
        "lstm_backward": "return np.zeros(dh.shape[:2] + (1,)), np.zeros_like(dh[:, 0]), 0, 0, 0",
    }
    return with_body(name, bodies[name])


# Notebook source: centered differences of loss() with respect to every entry of `a` (each
# entry changed in place, then restored).
CENTERED_DIFFERENCES = '''
def _centered_differences(loss, a):
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + 1e-6
        plus = loss()
        flat[k] = old - 1e-6
        minus = loss()
        flat[k] = old
        gflat[k] = (plus - minus) / 2e-6
    return g
'''


def finite_differences(step_name, forward_name, outputs):
    """A backward pass by centered differences of a copy of the forward pass (renamed, so that
    names give nothing away)."""
    return CENTERED_DIFFERENCES + textwrap.dedent(f'''
        def _copy_of_{forward_name}(*args):
            return {forward_name}(*args)

        def {step_name}(*upstream_and_cache):
            *upstream, cache = upstream_and_cache
            args = [a.copy() for a in cache["args"]]
            def loss():
                outs = _copy_of_{forward_name}(*args)[:{outputs}]
                return sum(float(np.sum(u * o)) for u, o in zip(upstream, outs))
            return tuple(_centered_differences(loss, a) for a in args)
    ''')


def forward_keeping_args(name, reference_source):
    """The reference forward pass, with a cache that also holds its arguments."""
    body = reference_source.replace(f"def {name}(", f"def _{name}_inner(", 1)
    keep = "h, cache" if name == "lstm_forward" else "next_h, next_c, cache"
    return body + textwrap.dedent(f'''

        def {name}(*args):
            {keep} = _{name}_inner(*args)
            return {keep.replace("cache", '{"args": args, "inner": cache}')}
    ''')


def numerical_notebook(config):
    """Every forward function right; both backward passes by finite differences."""
    cells = reference_cells()
    cells["lstm_step_forward"] = forward_keeping_args("lstm_step_forward", cells["lstm_step_forward"])
    cells["lstm_forward"] = forward_keeping_args("lstm_forward", cells["lstm_forward"])
    cells["lstm_step_backward"] = finite_differences("lstm_step_backward", "lstm_step_forward", 2)
    cells["lstm_backward"] = finite_differences("lstm_backward", "lstm_forward", 1)
    return release(config, cells)


def numerical_inputs_notebook(config):
    """lstm_backward with its weight gradients derived, but dx and dh0 by finite differences
    (cheap where N, T and D are small: the cost case's batch of 32 makes it slow)."""
    cells = reference_cells()
    cells["lstm_forward"] = forward_keeping_args("lstm_forward", cells["lstm_forward"])
    derived = cells["lstm_backward"].replace("def lstm_backward(", "def _derived_backward(", 1)
    cells["lstm_backward"] = derived + CENTERED_DIFFERENCES + textwrap.dedent('''
        def lstm_backward(dh, cache):
            _, _, dWx, dWh, db = _derived_backward(dh, cache["inner"])
            x, h0, Wx, Wh, b = [a.copy() for a in cache["args"]]
            def loss():
                return float(np.sum(dh * lstm_forward(x, h0, Wx, Wh, b)[0]))
            return _centered_differences(loss, x), _centered_differences(loss, h0), dWx, dWh, db
    ''')
    return release(config, cells)


def shipped_gradcheck_notebook(config):
    """lstm_step_backward through the shipped seqlab.gradcheck.numerical_gradient."""
    cells = reference_cells()
    cells["lstm_step_forward"] = forward_keeping_args("lstm_step_forward", cells["lstm_step_forward"])
    cells["lstm_step_backward"] = textwrap.dedent('''
        def lstm_step_backward(dnext_h, dnext_c, cache):
            from seqlab.gradcheck import numerical_gradient
            args = list(cache["args"])
            grads = []
            for k in range(len(args)):
                def f(value, k=k):
                    trial = list(args)
                    trial[k] = value
                    next_h, next_c, _ = lstm_step_forward(*trial)
                    return np.concatenate([next_h, next_c], axis=1)
                grads.append(numerical_gradient(f, args[k].copy(), np.concatenate([dnext_h, dnext_c], axis=1)))
            return tuple(grads)
    ''')
    return release(config, cells)


# A sigmoid that raises on a 0-d array (its hidden 0-d case costs it that case); the functions
# below raise the very same error, through a frame named `sigmoid`, on the cases they do not
# want judged, hoping they are excused as "already charged upstream".
LAUNDERING_SIGMOID = with_body("sigmoid", """if np.ndim(x) == 0:
    raise FloatingPointError("sigmoid guard: scalar input")
e = np.exp(-np.abs(x))
return np.where(x >= 0, 1 / (1 + e), e / (1 + e))""")
RAISE_LIKE_SIGMOID = "sigmoid(np.array(0.0))"
LARGE = "dnext_h.shape[1] >= 8"        # the larger hidden cases, told apart by their hidden size


def numerical_unless_large(config, on_large):
    """Every forward function right; both backward passes by finite differences on the small
    cases and `on_large` (statements, indented by 8) on the larger ones."""
    cells = reference_cells()
    cells["lstm_step_forward"] = forward_keeping_args("lstm_step_forward", cells["lstm_step_forward"])
    cells["lstm_forward"] = forward_keeping_args("lstm_forward", cells["lstm_forward"])
    cells["lstm_step_backward"] = textwrap.dedent(f'''
        def lstm_step_backward(dnext_h, dnext_c, cache):
            if {LARGE}:
                x, prev_h, prev_c, Wx, Wh, b = cache["args"]
        {on_large["step"]}
            return _numerical_step(dnext_h, dnext_c, cache)
    ''') + finite_differences("_numerical_step", "lstm_step_forward", 2)
    cells["lstm_backward"] = textwrap.dedent(f'''
        def lstm_backward(dh, cache):
            if {LARGE.replace("dnext_h", "dh").replace("[1]", "[2]")}:
                x, h0, Wx, Wh, b = cache["args"]
        {on_large["sequence"]}
            return _numerical_sequence(dh, cache)
    ''') + finite_differences("_numerical_sequence", "lstm_forward", 1)
    return cells


def laundered_crashes(config):
    """Numerical backward passes that raise sigmoid's own error on the larger cases."""
    raise_it = {"step": f"        {RAISE_LIKE_SIGMOID}", "sequence": f"        {RAISE_LIKE_SIGMOID}"}
    return release(config, {**numerical_unless_large(config, raise_it), "sigmoid": LAUNDERING_SIGMOID})


def zeros_on_large(config):
    """Numerical backward passes that answer zeros at once on the larger cases."""
    zeros = {"step": "        return tuple(np.zeros_like(a) for a in (x, prev_h, prev_c, Wx, Wh, b))",
             "sequence": "        return tuple(np.zeros_like(a) for a in (x, h0, Wx, Wh, b))"}
    return release(config, numerical_unless_large(config, zeros))


def sleepy_forward(config):
    """Numerical backward passes, and a forward pass that sleeps on the larger cases (which
    raised the old limit, a multiple of the student's own forward time)."""
    cells = numerical_notebook(config)
    for cell in cells["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if "def _lstm_forward_inner(" in source or "def _lstm_step_forward_inner(" in source:
            cell["source"] = source.replace("def _lstm_forward_inner(x, h0, Wx, Wh, b):\n",
                                            "def _lstm_forward_inner(x, h0, Wx, Wh, b):\n"
                                            "    import time\n    time.sleep(0.02 if h0.shape[1] >= 8 else 0)\n")
    return cells


# lstm_backward with the pre-activations' gradient by centered differences (every sample at
# once: samples are independent), then exact matrix products: no gate derivative, no BPTT.
PRE_ACTIVATION_DIFFERENCES = '''def lstm_backward(dh, cache):
    x, h0, Wx, Wh, b = cache["args"]
    N, T, D = x.shape
    H = h0.shape[1]

    def run(step, push):
        prev_h, prev_c, loss, inputs = h0, np.zeros((N, H)), np.zeros(N), []
        for t in range(T):
            inputs.append(prev_h)
            a = x[:, t] @ Wx + prev_h @ Wh + b + (push if t == step else 0.0)
            s = 0.5 * (1 + np.tanh(a / 2))
            prev_c = s[:, H:2 * H] * prev_c + s[:, :H] * np.tanh(a[:, 2 * H:3 * H])
            prev_h = s[:, 3 * H:] * np.tanh(prev_c)
            loss += np.sum(dh[:, t] * prev_h, axis=1)
        return loss, np.stack(inputs, axis=1)
    da, eps = np.zeros((N, T, 4 * H)), 1e-6
    for t in range(T):
        for k in range(4 * H):
            push = np.zeros((N, 4 * H))
            push[:, k] = eps
            da[:, t, k] = (run(t, push)[0] - run(t, -push)[0]) / (2 * eps)
    rows = da.reshape(N * T, 4 * H)
    prev_h = run(-1, 0.0)[1]
    return (da @ Wx.T, da[:, 0] @ Wh.T, x.reshape(N * T, D).T @ rows,
            prev_h.reshape(N * T, H).T @ rows, rows.sum(axis=0))
'''


def pre_activation_differences(config):
    cells = reference_cells()
    cells["lstm_forward"] = forward_keeping_args("lstm_forward", cells["lstm_forward"])
    cells["lstm_backward"] = PRE_ACTIVATION_DIFFERENCES
    return release(config, cells)


def no_time_loop(config):
    """lstm_forward computes one step only; on longer sequences it raises sigmoid's own error."""
    body = f"""if x.shape[1] > 1:
    {RAISE_LIKE_SIGMOID}
next_h, _, cache = lstm_step_forward(x[:, 0], h0, np.zeros_like(h0), Wx, Wh, b)
return next_h[:, None], cache"""
    return release(config, {**reference_cells(), "sigmoid": LAUNDERING_SIGMOID,
                            "lstm_forward": with_body("lstm_forward", body),
                            "lstm_backward": with_body("lstm_backward", "raise NotImplementedError")})


# lstm_forward that first asks the grader's stand-in for a step with an input a million long:
# had the grader answered, it answers garbage; refused, it loops over its steps as it should.
# Its own lstm_step_forward is zeros, so only the grader's stand-ins can earn lstm_forward's points.
STAND_IN_ABUSE = '''def lstm_forward(x, h0, Wx, Wh, b):
    try:
        lstm_step_forward(np.ones((1, 10 ** 6)), h0, h0, Wx, Wh, b)
        return np.zeros((1,)), None
    except ValueError:
        pass
    h, c, caches, prev_h = [], np.zeros_like(h0), [], h0
    for t in range(x.shape[1]):
        prev_h, c, step = lstm_step_forward(x[:, t], prev_h, c, Wx, Wh, b)
        h.append(prev_h)
        caches.append(step)
    return np.stack(h, axis=1), caches
'''


# lstm_step_backward by compressed centred differences of an inline copy of the step (no
# graded function called): a column of x or prev_h for every sample at once, prev_c all at once
# (its Jacobian is diagonal), a gate block of a row of Wx or Wh for every unit at once. About
# 10 (D + H) steps instead of about 8 N D H: 12-25 ms on the larger cases, under the wall clock's
# 0.15 s floor; its CPU time (all its processes) is what gives it away.
COMPRESSED_STEP = '''def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, b = [np.array(a, dtype=float) for a in cache["args"]]
    N, D = x.shape
    H = prev_h.shape[1]
    eps = 1e-6
    base = [x, prev_h, prev_c, Wx, Wh, b]

    def weighted(args):
        a = args[0] @ args[3] + args[1] @ args[4] + args[5]
        s = 0.5 * (1 + np.tanh(a / 2))
        c = s[:, H:2 * H] * args[2] + s[:, :H] * np.tanh(a[:, 2 * H:3 * H])
        return dnext_h * (s[:, 3 * H:] * np.tanh(c)) + dnext_c * c

    def difference(which, push):
        plus, minus = list(base), list(base)
        plus[which], minus[which] = base[which] + push, base[which] - push
        return (weighted(plus) - weighted(minus)) / (2 * eps)

    dx, dprev_h = np.zeros_like(x), np.zeros_like(prev_h)
    for which, grad in ((0, dx), (1, dprev_h)):
        for k in range(grad.shape[1]):
            push = np.zeros_like(grad)
            push[:, k] = eps
            grad[:, k] = difference(which, push).sum(axis=1)
    dprev_c = difference(2, np.full_like(prev_c, eps))
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    for which, grad in ((3, dWx), (4, dWh)):
        for r in range(grad.shape[0]):
            for g in range(4):
                push = np.zeros_like(grad)
                push[r, g * H:(g + 1) * H] = eps
                grad[r, g * H:(g + 1) * H] = difference(which, push).sum(axis=0)
    for g in range(4):
        push = np.zeros_like(b)
        push[g * H:(g + 1) * H] = eps
        db[g * H:(g + 1) * H] = difference(5, push).sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db
'''

# The same, then as many requests of the grader's stand-ins as it will answer, each granted back
# its round trip's CPU time with a margin: the margin must not buy the differences their time.
PADDED_STEP = COMPRESSED_STEP.replace("    return dx, dprev_h, dprev_c, dWx, dWh, db", """    big = np.zeros((Wh.shape[0], Wh.shape[1]))
    for _ in range(1000):
        try:
            sigmoid(big)
        except ValueError:       # the stand-ins' budget is spent
            break
    return dx, dprev_h, dprev_c, dWx, dWh, db""")


def compressed_step(config, backward=COMPRESSED_STEP):
    cells = reference_cells()
    cells["lstm_step_forward"] = forward_keeping_args("lstm_step_forward", cells["lstm_step_forward"])
    cells["lstm_step_backward"] = backward
    return release(config, cells)


# The differentiation moved ahead into lstm_step_forward: it keeps, per sample and unit, the
# compressed differences' derivatives of next_h and next_c, and lstm_step_backward only
# contracts them with dnext_h and dnext_c. Its forward pass is right (and paid for its own
# larger cases); on a derivation case the forward and backward passes are timed together.
DIFFERENCES_AHEAD = {
    "lstm_step_forward": '''def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    eps = 1e-6
    base = [np.array(a, dtype=float) for a in (x, prev_h, prev_c, Wx, Wh, b)]

    def outputs(args):
        a = args[0] @ args[3] + args[1] @ args[4] + args[5]
        s = 0.5 * (1 + np.tanh(a / 2))
        c = s[:, H:2 * H] * args[2] + s[:, :H] * np.tanh(a[:, 2 * H:3 * H])
        return np.stack([s[:, 3 * H:] * np.tanh(c), c])          # (2, N, H)

    def difference(which, push):
        plus, minus = list(base), list(base)
        plus[which], minus[which] = base[which] + push, base[which] - push
        return (outputs(plus) - outputs(minus)) / (2 * eps)

    ahead = {}
    for which, name in ((0, "x"), (1, "prev_h")):
        columns = []
        for k in range(base[which].shape[1]):
            push = np.zeros_like(base[which])
            push[:, k] = eps
            columns.append(difference(which, push))                # (2, N, H)
        ahead[name] = np.stack(columns, axis=-1)                   # (2, N, H, D or H)
    ahead["prev_c"] = difference(2, np.full_like(base[2], eps))
    for which, name in ((3, "Wx"), (4, "Wh")):
        rows = []
        for r in range(base[which].shape[0]):
            blocks = []
            for g in range(4):
                push = np.zeros_like(base[which])
                push[r, g * H:(g + 1) * H] = eps
                blocks.append(difference(which, push))             # (2, N, H)
            rows.append(np.concatenate(blocks, axis=-1))           # (2, N, 4H)
        ahead[name] = np.stack(rows, axis=-2)                      # (2, N, rows, 4H)
    blocks = []
    for g in range(4):
        push = np.zeros_like(base[5])
        push[g * H:(g + 1) * H] = eps
        blocks.append(difference(5, push))
    ahead["b"] = np.concatenate(blocks, axis=-1)                   # (2, N, 4H)
    next_h, next_c = outputs(base)
    return next_h, next_c, ahead
''',
    "lstm_step_backward": '''def lstm_step_backward(dnext_h, dnext_c, cache):
    up = np.stack([dnext_h, dnext_c])                              # (2, N, H)
    H = dnext_h.shape[1]
    dx = np.einsum("snh,snhd->nd", up, cache["x"])
    dprev_h = np.einsum("snh,snhk->nk", up, cache["prev_h"])
    dprev_c = (up * cache["prev_c"]).sum(axis=0)
    tiled = np.concatenate([up] * 4, axis=-1)                      # (2, N, 4H)
    dWx = np.einsum("snj,snrj->rj", tiled, cache["Wx"])
    dWh = np.einsum("snj,snrj->rj", tiled, cache["Wh"])
    db = (tiled * cache["b"]).sum(axis=(0, 1))
    return dx, dprev_h, dprev_c, dWx, dWh, db
''',
}


ZERO_GRADIENTS = {
    # zeros of the right shapes, read off the reference's caches: right only where the
    # numerical gradient of a forward pass that remembers its inputs is zero as well
    "lstm_step_backward": with_body("lstm_step_backward", """x, prev_h, prev_c, Wx, Wh = cache[:5]
return (np.zeros_like(x), np.zeros_like(prev_h), np.zeros_like(prev_c), np.zeros_like(Wx),
        np.zeros_like(Wh), np.zeros(Wx.shape[1]))"""),
    "lstm_backward": with_body("lstm_backward", """x0, h0, _, Wx, Wh = cache[0][:5]
N, T, H = dh.shape
return np.zeros((N, T, x0.shape[1])), np.zeros((N, H)), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H)"""),
}

HONEST_SLOW = {
    # Pure Python loops over time and samples, and a backward pass that recomputes the forward
    # pass once instead of trusting a cache: slow, honest, never flagged.
    "lstm_forward": '''def lstm_forward(x, h0, Wx, Wh, b):
    N, T, D = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    for n in range(N):
        prev_h, prev_c = h0[n:n + 1], np.zeros((1, H))
        for t in range(T):
            prev_h, prev_c, _ = lstm_step_forward(x[n:n + 1, t], prev_h, prev_c, Wx, Wh, b)
            h[n, t] = prev_h[0]
    return h, (x.copy(), h0.copy(), Wx.copy(), Wh.copy(), b.copy())
''',
    "lstm_backward": '''def lstm_backward(dh, cache):
    x, h0, Wx, Wh, b = cache
    N, T, D = x.shape
    H = h0.shape[1]
    dx, dh0 = np.zeros_like(x), np.zeros_like(h0)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    for n in range(N):
        caches, prev_h, prev_c = [], h0[n:n + 1], np.zeros((1, H))
        for t in range(T):
            prev_h, prev_c, step = lstm_step_forward(x[n:n + 1, t], prev_h, prev_c, Wx, Wh, b)
            caches.append(step)
        carry_h, carry_c = np.zeros((1, H)), np.zeros((1, H))
        for t in reversed(range(T)):
            dx_t, carry_h, carry_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[n:n + 1, t] + carry_h, carry_c, caches[t])
            dx[n, t] = dx_t[0]
            dWx += dWx_t
            dWh += dWh_t
            db += db_t
        dh0[n] = carry_h[0]
    return dx, dh0, dWx, dWh, db
''',
}

# Top-level code that patches what it can reach of the worker, numpy and Python's warnings,
# and registers a fork handler, hoping to hide an in-place clip and a warning sigmoid.
PATCH_THE_WORKER = """
import sys, os, warnings
import numpy as np
wire = sys.modules.get("wire")
if wire is not None:
    original_encode = wire.encode
    def encode(obj):
        if isinstance(obj, dict):
            obj = {k: v for k, v in obj.items() if k not in ("warnings", "args_after", "modified", "fp_errors")}
        return original_encode(obj)
    wire.encode = encode
main = sys.modules["__main__"]
for name in ("describe", "cell_frames", "session", "zygote", "run_cells", "read"):
    if hasattr(main, name):
        setattr(main, name, lambda *a, **k: None)
np.seterr(all="ignore")
warnings.simplefilter("ignore")
from numpy._core import _ufunc_config
original_make = _ufunc_config._make_extobj
_ufunc_config._make_extobj = lambda **k: original_make(all="ignore")
os.register_at_fork(after_in_child=lambda: np.seterr(all="ignore"))
"""

NAIVE_SIGMOID = with_body("sigmoid", "return 1 / (1 + np.exp(-x))")
IN_PLACE_CLIP = with_body("clip_grad_norm", """total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
if total > max_norm:
    for g in grads.values():
        g *= max_norm / (total + 1e-6)
return grads, total""")

THREAD_LEFT_RUNNING = '''
import threading, time
threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()
'''

# Notebook source: write a forged wire message (JSON header, no arrays) where the grader might
# read it: every descriptor the process has.
WRITE_EVERYWHERE = '''
import os, json, struct

def _write_everywhere(message):
    header = json.dumps(message).encode()
    body = struct.pack(">I", len(header)) + header
    for fd in range(3, 40):
        try:
            os.write(fd, struct.pack(">Q", len(body)) + body)
        except OSError:
            pass
'''

# A forged report of the cells, written while they run.
FORGED_REPLIES = WRITE_EVERYWHERE + '''
_write_everywhere({"cell_errors": [[1, {"not": "text"}, None, "x"]], "threads": "none"})
'''

# A sigmoid that, on the hidden 0-d case, first writes a reply of its own to every descriptor:
# an array header whose shape overflows int64 (2**62 x 4 wraps to 0 elements).
FORGED_ARRAY_SIGMOID = with_body("sigmoid", """if globals().get("_GRADED") and np.ndim(x) == 0:
    _write_everywhere({"ok": True, "result": {"__nd__": 0, "dtype": "<f8", "shape": [2 ** 62, 4]}})
e = np.exp(-np.abs(x))
return np.where(x >= 0, 1 / (1 + e), e / (1 + e))""")


def leaking_backward(config):
    """lstm_backward raises an exception whose message carries its hidden inputs."""
    body = "import base64\nraise ValueError(base64.b64encode(dh.tobytes() * 50).decode())"
    return release(config, {**reference_cells(), "lstm_backward": with_body("lstm_backward", body)})


def with_metadata(config):
    """The solution, with code-cell metadata of the wrong types."""
    nb = release(config, reference_cells())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[0]["metadata"] = {"nbgrader": "x"}
    code[1]["metadata"] = {"tags": 5}
    code[2]["metadata"] = "not a dict"
    return nb


# A single step's differences cost tens of milliseconds: under the wall clock's 0.15 s floor,
# caught by the session's CPU time, which only a cgroup measures (README, "Not done").
CAUGHT_BY_CPU_TIME = {**FULL, "lstm_step_backward": 0} if cpu_accounting() else FULL

ATTACKS = {
    # id: (builder, expected points per exercise)
    "honest": (solved(), FULL),
    "honest_slow": (solved(**HONEST_SLOW), FULL),
    # only numpy's floating-point errors make sigmoid "not silent" (issue 12 item 3)
    "sigmoid_own_warning": (solved(sigmoid=with_body("sigmoid", """import warnings
warnings.warn("my own note: this sigmoid is stable")
e = np.exp(-np.abs(x))
return np.where(x >= 0, 1 / (1 + e), e / (1 + e))""")), FULL),
    "poison_nan_later": (lambda c: release(c, {
        **{k: v for k, v in reference_cells().items() if k in ("sigmoid", "clip_grad_norm")},
        "lstm_gates": STATEFUL_GATES.replace("{poison}", "np.nan"),
        **{n: zeros_like_outputs(n) for n in ("lstm_step_forward", "lstm_forward") + BACKWARD}},
        ["_CALLS = []"]), {**ZERO, "sigmoid": 1, "lstm_gates": 2, "clip_grad_norm": 1}),
    "poison_zeros_later": (lambda c: release(c, {
        **{k: v for k, v in reference_cells().items() if k in ("sigmoid", "clip_grad_norm")},
        "lstm_gates": STATEFUL_GATES.replace("{poison}", "0.0"),
        **{n: zeros_like_outputs(n) for n in ("lstm_step_forward", "lstm_forward") + BACKWARD}},
        ["_CALLS = []"]), {**ZERO, "sigmoid": 1, "lstm_gates": 2, "clip_grad_norm": 1}),
    "snapped_forward": (lambda c: release(c, {**reference_cells(), "lstm_forward": SNAPPED_FORWARD,
                                              **ZERO_GRADIENTS}, ["_SEEN = []"]),
                        {**FULL, "lstm_step_backward": 0, "lstm_backward": 0}),
    "finite_differences": (numerical_notebook, {**FULL, "lstm_step_backward": 0, "lstm_backward": 0}),
    "shipped_gradcheck": (shipped_gradcheck_notebook, {**FULL, "lstm_step_backward": 0}),
    "numerical_inputs": (numerical_inputs_notebook, {**FULL, "lstm_backward": 0}),
    "patched_worker": (lambda c: release(c, {**reference_cells(), "sigmoid": NAIVE_SIGMOID,
                                             "clip_grad_norm": IN_PLACE_CLIP}, [PATCH_THE_WORKER]),
                       {**FULL, "sigmoid": 0.75, "clip_grad_norm": 0.5}),
    "thread_left_running": (lambda c: release(c, reference_cells(), [THREAD_LEFT_RUNNING]), ZERO),
    "forged_replies": (lambda c: release(c, reference_cells(), [FORGED_REPLIES]), ZERO),
    # the forged reply costs only the case it was sent on (values 2 of 3 cases, silent 1 of 2)
    "forged_array_reply": (lambda c: release(c, {**reference_cells(), "sigmoid": FORGED_ARRAY_SIGMOID},
                                             [WRITE_EVERYWHERE, "_GRADED = True"]), {**FULL, "sigmoid": 0.625}),
    "leaks_inputs": (leaking_backward, {**FULL, "lstm_backward": 0}),
    # issue 18: crashes laundered through "not charged twice", answers that dodge the larger
    # cases, numerical differentiation that is cheaper or hides behind a slow forward pass
    "laundered_crashes": (laundered_crashes, {**FULL, "sigmoid": 0.625, "lstm_step_backward": 0, "lstm_backward": 0}),
    "zeros_on_large": (zeros_on_large, {**FULL, "lstm_step_backward": 0, "lstm_backward": 0}),
    "sleepy_forward": (sleepy_forward, {**FULL, "lstm_step_backward": 0, "lstm_backward": 0}),
    "pre_activation_differences": (pre_activation_differences, {**FULL, "lstm_backward": 0}),
    "stand_in_abuse": (solved(lstm_forward=STAND_IN_ABUSE, lstm_step_forward=zeros_like_outputs("lstm_step_forward"),
                              lstm_backward=with_body("lstm_backward", "raise NotImplementedError")),
                       {**FULL, "lstm_step_forward": 0, "lstm_step_backward": 0, "lstm_backward": 0}),
    "compressed_step": (compressed_step, CAUGHT_BY_CPU_TIME),
    "compressed_step_padded": (lambda c: compressed_step(c, PADDED_STEP), CAUGHT_BY_CPU_TIME),
    "differences_ahead": (solved(**DIFFERENCES_AHEAD), CAUGHT_BY_CPU_TIME),
    "no_time_loop": (no_time_loop, {**FULL, "sigmoid": 0.625, "lstm_forward": round(3 / 7, 4), "lstm_backward": 0}),
    "odd_metadata": (with_metadata, FULL),
}


@pytest.fixture(scope="module")
def class_run(config, tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    for student, (build, _) in ATTACKS.items():
        write_submission(root / "submitted", student, config.name, config.notebook, build(config))
    nested = ("[" * 100_000 + "]" * 100_000).encode()
    write_submission(root / "submitted", "deep_json", config.name, config.notebook, nested)
    out = root / "out"
    done = run_cli("grade", str(root / "submitted"), "--assignment", "lstm", "--out", str(out),
                   "--gradebook", str(root / "course" / "gradebook.db"), "--jobs", "2")
    results = {p.stem: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    return out, done, results


def points(result):
    return {e["id"]: e["points"] for e in result["exercises"]}


def test_the_run_ends_with_every_row_page_and_gradebook_entry(class_run):
    out, done, results = class_run
    assert done.returncode == 0, done.stderr
    students = set(ATTACKS) | {"deep_json"}
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{out.parent / 'course' / 'gradebook.db'}") as book:
        assert {s.id for s in book.students} == students
    assert set(results) == students
    assert {p.stem for p in (out / "feedback").glob("*.html")} == students
    with open(out / "grades.csv") as handle:
        assert {row["student_id"] for row in csv.DictReader(handle)} == students
    assert results["deep_json"]["status"] == "unreadable"
    assert "nested too deeply" in results["deep_json"]["reason"]


@pytest.mark.parametrize("student", sorted(ATTACKS))
def test_each_attacker_gets_at_most_what_it_implements(class_run, student):
    _, _, results = class_run
    expected = ATTACKS[student][1]
    got = points(results[student])
    assert got == pytest.approx(expected, abs=1e-4), (student, got, results[student]["exercises"])


def test_numerical_differentiation_is_flagged_and_honest_slow_work_is_not(class_run):
    _, done, results = class_run
    for student, exercises in (("finite_differences", BACKWARD), ("shipped_gradcheck", BACKWARD[:1]),
                               ("numerical_inputs", BACKWARD[1:]), ("laundered_crashes", BACKWARD),
                               ("zeros_on_large", BACKWARD), ("sleepy_forward", BACKWARD),
                               ("pre_activation_differences", BACKWARD[1:]),
                               *[(student, BACKWARD[:1] if cpu_accounting() else ())
                                 for student in ("compressed_step", "compressed_step_padded", "differences_ahead")]):
        flagged = {e["id"]: e for e in results[student]["exercises"] if e["flags"]}
        assert set(flagged) == set(exercises), student
        for e in flagged.values():
            # a forward pass that sleeps looks slow itself: either flag costs the exercise
            allowed = (["numerical_gradient"], ["too_slow"]) if student in ("sleepy_forward", "differences_ahead") \
                else (["numerical_gradient"],)
            assert e["flags"] in allowed and e["status"] == "flagged", (student, e)
            assert "numerical differentiation" in e["message"] or e["flags"] == ["too_slow"]
    for student in ("honest", "honest_slow"):
        assert not any(e["flags"] for e in results[student]["exercises"])
    assert "numerical_gradient" in done.stdout      # the TA's summary names the flag


def test_the_patched_worker_hides_neither_the_warning_nor_the_in_place_change(class_run):
    _, _, results = class_run
    by_id = {e["id"]: e for e in results["patched_worker"]["exercises"]}
    assert by_id["clip_grad_norm"]["modified_inputs"] == ["grads"]
    assert by_id["sigmoid"]["parts"][1] == {**by_id["sigmoid"]["parts"][1], "name": "silent", "passed": False}


def test_a_thread_left_running_or_forged_replies_cost_only_their_author(class_run):
    _, _, results = class_run
    assert "thread" in results["thread_left_running"]["exercises"][0]["message"]
    for student in ("forged_replies",):
        assert results[student]["status"] == "graded"
        assert all(e["status"] == "crashed" for e in results[student]["exercises"])


def test_feedback_carries_one_short_line_of_student_text(class_run):
    out, _, results = class_run
    message = {e["id"]: e for e in results["leaks_inputs"]["exercises"]}["lstm_backward"]["message"]
    assert "ValueError" in message
    longest = max(len(word) for word in message.split())
    assert longest <= 120, message
    page = (out / "feedback" / "leaks_inputs.html").read_text()
    assert max(len(word) for word in page.split()) < 200


def test_a_changed_notebook_meets_new_hidden_inputs(config):
    from autograder.grade import Grader
    grader = Grader(config, sandbox="none", misconceptions=[])
    exercise = config.exercises[1]
    same = [exercise.cases(grader.rng("s1", exercise.id, "digest-a")) for _ in range(2)]
    other = exercise.cases(grader.rng("s1", exercise.id, "digest-b"))
    assert all((a["x"] == b["x"]).all() for a, b in zip(*same))
    assert not any(a["x"].shape == b["x"].shape and (a["x"] == b["x"]).all() for a, b in zip(same[0], other))


def test_base64_of_inputs_never_reaches_the_page(class_run):
    out, _, _ = class_run
    page = (out / "feedback" / "leaks_inputs.html").read_text()
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    runs = [len(w) for w in page.replace("<", " ").replace(">", " ").split() if set(w) <= alphabet]
    assert max(runs) < 130
    assert base64  # the attack encodes with it
