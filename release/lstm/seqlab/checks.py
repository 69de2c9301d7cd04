"""Public checks for the exercises of Section 3.4.

Each check calls your function on small fixed inputs (stored in fixtures.npz) and compares
with the expected outputs. On success it prints one line; on failure it raises CheckFailure
whose message says what went wrong and, where it can, why (which gate block, which time
step, which axis). In Jupyter a failed check shows that message alone, in a box, without a
traceback. `progress()` runs every check and prints one line per exercise.

The fixtures use different sizes on every axis (N = 2, D = 3, H = 4, T = 5), so a shape
message names the axis unambiguously.

The grader uses other, random inputs and shapes: passing these checks is necessary, not
sufficient.
"""
import contextlib
import os
import re
import textwrap
import traceback
import warnings

import numpy as np

__all__ = ["CheckFailure", "NotImplementedYet", "check_sigmoid", "check_lstm_gates",
           "check_lstm_step_forward", "check_lstm_forward", "check_lstm_step_backward",
           "check_lstm_backward", "check_clip_grad_norm", "progress"]

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures.npz")
RTOL = 1e-7               # the grader's: max |actual - expected| <= RTOL * max |expected|, per output
SIGMOID_RTOL = 1e-12      # the grader's for sigmoid, entry by entry ("exact to float64 rounding")
CLIP_RTOL = 1e-9          # the grader's for clip_grad_norm: it sees the 1e-6 of max_norm / (total_norm + 1e-6)
TINY = 1e-300             # the grader's floor: a difference this small is no difference


class CheckFailure(AssertionError):
    """A public check failed; the message is the whole explanation.

    IPython shows an exception through its `_render_traceback_` when it has one: here the
    message alone, in a box (no traceback: it would point into this file, not at your bug)."""

    def _render_traceback_(self):
        return box(str(self), "check failed" if type(self) is CheckFailure else "not ready yet")


def box(message, title, width=96):
    """The message wrapped and framed, as a list of lines."""
    lines, keep = [], "\u00a0"   # formulas such as `1 - g**2` stay on one line
    for paragraph in message.split("\n"):
        glued = re.sub(r"(?<=\S) ([-+*/=]|\*\*) (?=\S)", lambda m: keep + m.group(1) + keep, paragraph)
        lines += [line.replace(keep, " ") for line in
                  textwrap.wrap(glued, width - 4, break_on_hyphens=False)] or [""]
    inner = max([len(line) for line in lines] + [len(title) + 4])
    top = "\u250c\u2500 " + title + " " + "\u2500" * (inner - len(title) - 1) + "\u2510"
    body = ["\u2502 " + line.ljust(inner) + " \u2502" for line in lines]
    return [top] + body + ["\u2514" + "\u2500" * (inner + 2) + "\u2518"]


def _num(value):
    """A number as plain text: 0.123457, never np.float64(0.123457)."""
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return repr(value)


# sigmoid far in the tails, as float64 rounds the exact value (the smallest are subnormal):
# a sigmoid that clips x at +-500 is off by many orders of magnitude there. As in the grader,
# differences below TINY pass (the values at -700 and below).
SIGMOID_TAIL = np.array([-600.0, -700.0, -709.9, -745.5, -40.0, 40.0, 709.9, 745.5])
SIGMOID_TAIL_OUT = np.array([float.fromhex(v) for v in (
    "0x1.4dd4d0d12c071p-866", "0x1.14f2b0fb9307fp-1010", "0x0.38eac7a36430fp-1022", "0x0.0p+0",
    "0x1.39792499b1a24p-58", "0x1.0p+0", "0x1.0p+0", "0x1.0p+0")])


class NotImplementedYet(CheckFailure):
    """The function still raises NotImplementedError."""


_cache = {}


def _fixtures():
    if "data" not in _cache:
        with np.load(FIXTURES) as data:
            _cache["data"] = {k: data[k] for k in data.files}
    return _cache["data"]


def _get(prefix):
    data = _fixtures()
    return {k[len(prefix) + 1:]: v.copy() for k, v in data.items() if k.startswith(prefix + ".")}


def _raise(exc):
    # The message above says what is wrong and what to do.
    raise exc from None


def _fail(name, message):
    __tracebackhide__ = True
    _raise(CheckFailure(f"{name}: {message}"))


# numpy's floating-point errors during a call: only sigmoid must be silent (CONTRACT); in any
# other function they decide nothing, as in the grader. Warnings (warnings.warn) and prints are
# the student's own and decide nothing either.
SILENT = dict(divide="raise", over="raise", invalid="raise", under="ignore")
UNWATCHED = dict(all="ignore")


def _call(name, fn, *args):
    """Call the student's function as the grader does; NotImplementedError explained."""
    __tracebackhide__ = True
    if not callable(fn):
        _fail(name, f"expected a function, got {type(fn).__name__}")
    try:
        with np.errstate(**(SILENT if name == "sigmoid" else UNWATCHED)):
            return fn(*args)
    except NotImplementedError as exc:
        where = _where(exc)
        inner = where[0] if where else name
        if inner != name and inner in __all__ + _EXERCISES:
            _raise(NotImplementedYet(
                f"{name} calls {inner}, which is not implemented yet: write the body of "
                f"{inner} first, run its cell, then run {name}'s cells again."))
        _raise(NotImplementedYet(
            f"{name} is not implemented yet: write its body in the cell above "
            f"(replace `raise NotImplementedError()`), run that cell, then run this one again."
        ))
    except FloatingPointError as exc:
        _raise(CheckFailure(
            f"{name}: numpy warned during the call ({exc}){_at(exc)}. A correct {name} computes "
            f"without overflow or invalid operations; see the hint in the instructions."
        ))
    except CheckFailure:
        raise
    except Exception as exc:  # student's bug: say which error, briefly, and where
        _raise(CheckFailure(f"{name} raised {type(exc).__name__}: {exc}{_at(exc)}"))


_EXERCISES = ["sigmoid", "lstm_gates", "lstm_step_forward", "lstm_forward",
              "lstm_step_backward", "lstm_backward", "clip_grad_norm"]


def _where(exc):
    """(function, line number, source line) of the innermost frame of the student's code."""
    here = os.path.dirname(os.path.abspath(__file__))
    numpy_dir = os.path.dirname(np.__file__)
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        path = os.path.abspath(frame.filename) if frame.filename else ""
        if path.startswith(here) or path.startswith(numpy_dir) or "site-packages" in path:
            continue
        found = (frame.name, frame.lineno, (frame.line or "").strip())
    return found


def _at(exc):
    where = _where(exc)
    if not where:
        return ""
    fname, lineno, line = where
    return f" (in {fname}, line {lineno}: `{line}`)" if line else f" (in {fname}, line {lineno})"


def _array(name, label, value, shape, why=None, axes=None, sizes=None):
    __tracebackhide__ = True
    if not isinstance(value, np.ndarray):
        _fail(name, f"{label} should be a numpy array, got {type(value).__name__}")
    if value.shape != tuple(shape):
        msg = f"{label} " + shape_words(value.shape, tuple(shape), axes, sizes)
        if why:
            hint = why(value.shape)
            if hint:
                msg += f": {hint}"
        _fail(name, msg)
    if value.dtype != np.float64:
        _fail(name, f"{label} has dtype {value.dtype}, expected float64: keep the inputs' precision "
                    f"(the grader takes the points of any other dtype, float32 included)")
    bad = ~np.isfinite(value)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        _fail(name, f"{label} contains NaN or inf (first at index {idx})")


def _close(name, label, actual, expected, rtol=RTOL, hint=None):
    __tracebackhide__ = True
    scale = max(float(np.max(np.abs(expected))), 1e-12) if expected.size else 1.0
    diff = np.abs(actual - expected)
    err = float(diff.max()) / scale if diff.size else 0.0
    if not err <= rtol:
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
        got, want = _told_apart(actual[idx], expected[idx])
        msg = (f"{label} is wrong: relative error {err:.2e} (tolerance {rtol:.0e}); largest "
               f"difference at index {idx}: got {got}, expected {want}")
        if hint:
            msg += f". {hint}"
        _fail(name, msg)


def _told_apart(got, want):
    """Two numbers as text, with as many digits as it takes to show they differ (up to 17)."""
    texts, digits = (_num(got), _num(want)), 6
    while texts[0] == texts[1] and digits < 17:
        digits += 3
        texts = tuple(f"{float(v):.{digits}g}" for v in (got, want))
    return texts


def _close_each(name, label, actual, expected, hint=None):
    """The grader's sigmoid rule: |actual - expected| <= SIGMOID_RTOL * |expected| at every entry,
    up to TINY (values below it, deep in the subnormals, are free)."""
    __tracebackhide__ = True
    excess = np.abs(actual - expected) - SIGMOID_RTOL * np.abs(expected)
    if (excess > TINY).any():
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), excess.shape))
        rel = abs(actual[idx] - expected[idx]) / max(abs(expected[idx]), TINY)
        got, want = _told_apart(actual[idx], expected[idx])
        msg = (f"{label} is wrong: relative error {rel:.2e} at index {idx} (tolerance {SIGMOID_RTOL:.0e} "
               f"at every entry): got {got}, expected {want}")
        _fail(name, msg + (f". {hint}" if hint else ""))


def _unchanged(name, names, before, after):
    __tracebackhide__ = True
    for label, b, a in zip(names, before, after):
        if isinstance(b, np.ndarray) and not np.array_equal(a, b):
            _fail(name, f"modified its input `{label}`: a graded function must leave its "
                        f"arguments unchanged. In-place operations such as `{label} *= ...` or "
                        f"`{label} += ...` (also after `d = {label}`, which is the same array) change "
                        f"the caller's array; write `d = {label} + ...` or `d = {label} * ...`, which "
                        f"makes a new array, or start from `{label}.copy()`. The grader takes half of "
                        f"this exercise's points for it, even when every value is right")


def _tuple(name, result, n, labels):
    __tracebackhide__ = True
    if not isinstance(result, (tuple, list)) or len(result) != n:
        got = (f"a {type(result).__name__} of {len(result)}" if isinstance(result, (tuple, list))
               else type(result).__name__)
        _fail(name, f"should return a tuple of {n} ({', '.join(labels)}), got {got}")
    return result


def _stacked_hint(H):
    def why(shape):
        if shape and shape[-1] == 4 * H and 4 * H not in shape[:-1]:
            return "last dimension 4H instead of H: did you return the stacked activations " \
                   "instead of one gate's slice?"
        if len(shape) >= 2 and shape[-1] != H and shape[0] == H:
            return "dimensions look swapped: check the order of the matrix product"
        return None
    return why


def _judge(name, outs, want, note=None, after=None):
    """Compare every output, then say what is wrong in words (explain_outputs)."""
    __tracebackhide__ = True
    ok = {k: close(outs[k], want[k], RTOL) for k in want}
    if all(ok.values()):
        return
    worst = max((k for k in want if not ok[k]),
                key=lambda k: float(np.max(np.abs(outs[k] - want[k]))) / max(float(np.max(np.abs(want[k]))), 1e-12))
    err = float(np.max(np.abs(outs[worst] - want[worst]))) / max(float(np.max(np.abs(want[worst]))), 1e-12)
    message = explain_outputs(name, outs, want, RTOL, ok)
    if after and "gradient on next_c" in message:
        message += after()
    wrong = [k for k in want if not ok[k]]
    message += (f" (wrong: {_words(wrong)}; largest relative error {err:.2e} in {worst}, "
                f"tolerance {RTOL:.0e})")
    if note:
        message = (note() or "") + message
    _fail(name, message)


_QUIET = []   # progress() runs the checks without their "all checks passed" line


HIDDEN = ("the grader's hidden cases test more: other shapes (one sample, one step, a hidden size "
          "of 1), saturated gates, larger inputs")


def _ok(name, note=""):
    """The line of a passing check; a graded exercise's says that the grader tests more."""
    if not _QUIET:
        print(f"{name}: all checks passed" + (f" ({HIDDEN})" if name in _EXERCISES else "") + note)


# ---------------------------------------------------------------- the checks

def check_sigmoid(sigmoid):
    __tracebackhide__ = True
    name = "sigmoid"
    fx = _get(name)
    out = _call(name, sigmoid, SIGMOID_TAIL.copy())
    _array(name, "sigmoid far in the tails", out, SIGMOID_TAIL.shape)
    bad = np.abs(out - SIGMOID_TAIL_OUT) - SIGMOID_RTOL * np.abs(SIGMOID_TAIL_OUT) > TINY
    if bad.any():
        k = int(np.argmax(bad))
        if out[k] == 0:
            _fail(name, f"sigmoid({_num(SIGMOID_TAIL[k])}) is 0, expected {_num(SIGMOID_TAIL_OUT[k])}: your "
                        f"formula rounds values this small to 0 (as 1 - 1 / (1 + exp(x)) or "
                        f"0.5 * (1 + tanh(x / 2)) do). Exact to float64 rounding means to a relative "
                        f"precision, down to the tiny values far in the negative tail: e / (1 + e) with "
                        f"e = np.exp(-np.abs(x)) keeps them")
        if abs(out[k] - SIGMOID_TAIL_OUT[k]) <= 0.5 * SIGMOID_TAIL_OUT[k]:   # close, but not to rounding
            _close_each(name, "sigmoid far in the tails", out, SIGMOID_TAIL_OUT)
        _fail(name, f"sigmoid({_num(SIGMOID_TAIL[k])}) is {_num(out[k])}, expected "
                    f"{_num(SIGMOID_TAIL_OUT[k])}: sigmoid must be exact to float64 rounding on the "
                    f"whole line, and far in the tails the exact value is tiny but not the value at a "
                    f"clipped x. Did you clip x (to +-500, say) to avoid overflow? No clipping is "
                    f"needed: e = np.exp(-np.abs(x)) is never larger than 1, so it cannot overflow")
    x = fx["x"]
    x0 = x.copy()
    out = _call(name, sigmoid, x)
    _array(name, "sigmoid(x)", out, x.shape)
    _unchanged(name, ["x"], [x0], [x])
    _close_each(name, "sigmoid(x)", out, fx["out"])
    big = fx["big"]
    out = _call(name, sigmoid, big)
    _array(name, "sigmoid on large |x|", out, big.shape)
    _close_each(name, "sigmoid on large |x| (up to 1e4 in absolute value)", out, fx["big_out"],
                hint="sigmoid must be exact to float64 rounding on the whole line: with e = np.exp(-np.abs(x)), "
                     "1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0")
    s = _call(name, sigmoid, np.array(0.0))     # a 0-d array: its result is one too, or a float
    _array(name, "sigmoid(np.array(0.0)), of a 0-d array,", np.asarray(s), ())
    _close_each(name, "sigmoid(np.array(0.0))", np.asarray(s), np.array(0.5))
    _ok(name)


def check_lstm_gates(lstm_gates):
    __tracebackhide__ = True
    with _upstream_blame("lstm_gates", lstm_gates):
        _check_lstm_gates(lstm_gates)
    _ok("lstm_gates")


def _check_lstm_gates(lstm_gates):
    __tracebackhide__ = True
    name = "lstm_gates"
    fx = _get(name)
    args = [fx[k] for k in ("x", "prev_h", "Wx", "Wh", "b")]
    before = [a.copy() for a in args]
    N, H = fx["prev_h"].shape
    res = _tuple(name, _call(name, lstm_gates, *args), 4, ["i", "f", "g", "o"])
    _unchanged(name, ["x", "prev_h", "Wx", "Wh", "b"], before, args)
    for label, out in zip("ifgo", res):
        _array(name, label, out, (N, H), _stacked_hint(H), ("N", "H"))
    _judge(name, dict(zip("ifgo", res)), {g: fx[g] for g in "ifgo"})


def check_lstm_step_forward(lstm_step_forward):
    __tracebackhide__ = True
    with _upstream_blame("lstm_step_forward", lstm_step_forward):
        _check_lstm_step_forward(lstm_step_forward)
    _ok("lstm_step_forward")


def _check_lstm_step_forward(lstm_step_forward):
    __tracebackhide__ = True
    name = "lstm_step_forward"
    fx = _get(name)
    labels = ("x", "prev_h", "prev_c", "Wx", "Wh", "b")
    args = [fx[k] for k in labels]
    before = [a.copy() for a in args]
    N, H = fx["prev_h"].shape
    next_h, next_c, _ = _tuple(name, _call(name, lstm_step_forward, *args), 3,
                               ["next_h", "next_c", "cache"])
    _unchanged(name, labels, before, args)
    _array(name, "next_h", next_h, (N, H), _stacked_hint(H), ("N", "H"))
    _array(name, "next_c", next_c, (N, H), _stacked_hint(H), ("N", "H"))
    _judge(name, {"next_h": next_h, "next_c": next_c}, {"next_h": fx["next_h"], "next_c": fx["next_c"]})


def check_lstm_forward(lstm_forward):
    __tracebackhide__ = True
    with _upstream_blame("lstm_forward", lstm_forward):
        _check_lstm_forward(lstm_forward)
    _ok("lstm_forward")


def _check_lstm_forward(lstm_forward):
    __tracebackhide__ = True
    name = "lstm_forward"
    fx = _get(name)
    labels = ("x", "h0", "Wx", "Wh", "b")
    args = [fx[k] for k in labels]
    before = [a.copy() for a in args]
    N, T, _ = fx["x"].shape
    H = fx["h0"].shape[1]
    h, _ = _tuple(name, _call(name, lstm_forward, *args), 2, ["h", "cache"])
    _unchanged(name, labels, before, args)
    _array(name, "h", h, (N, T, H), _stacked_hint(H), ("N", "T", "H"))
    _judge(name, {"h": h}, {"h": fx["h"]})


def check_lstm_step_backward(lstm_step_backward, lstm_step_forward=None):
    """Needs your lstm_step_forward for the cache; found in the notebook's namespace."""
    __tracebackhide__ = True
    name = "lstm_step_backward"
    fx = _get(name)
    forward = lstm_step_forward or _caller_function("lstm_step_forward")
    labels = ("x", "prev_h", "prev_c", "Wx", "Wh", "b")
    args = [fx[k] for k in labels]
    cache = _forward_cache(name, "lstm_step_forward", forward, args,
                           ["next_h", "next_c", "cache"], [fx["next_h"], fx["next_c"]])
    dnext_h, dnext_c = fx["dnext_h"], fx["dnext_c"]
    before = [dnext_h.copy(), dnext_c.copy()]
    outs = ["dx", "dprev_h", "dprev_c", "dWx", "dWh", "db"]
    res = _tuple(name, _call(name, lstm_step_backward, dnext_h, dnext_c, cache), 6, outs)
    _unchanged(name, ["dnext_h", "dnext_c"], before, [dnext_h, dnext_c])
    for label, out in zip(outs, res):
        _array(name, label, out, fx[label].shape, axes=AXES[name][label], sizes=sizes_of(name, fx))
    story = lambda: next_c_gradient_story(res[2], fx["gate_f"], fx["gate_o"], fx["next_c"],   # noqa: E731
                                          dnext_h, dnext_c)
    _judge(name, dict(zip(outs, res)), {k: fx[k] for k in outs},
           lambda: _backward_note(lstm_step_backward, forward, name), after=story)
    _ok(name)


def check_lstm_backward(lstm_backward, lstm_forward=None):
    """Needs your lstm_forward for the cache; found in the notebook's namespace."""
    __tracebackhide__ = True
    name = "lstm_backward"
    fx = _get(name)
    forward = lstm_forward or _caller_function("lstm_forward")
    labels = ("x", "h0", "Wx", "Wh", "b")
    args = [fx[k] for k in labels]
    cache = _forward_cache(name, "lstm_forward", forward, args, ["h", "cache"], [fx["h"]])
    dh = fx["dh"]
    before = [dh.copy()]
    outs = ["dx", "dh0", "dWx", "dWh", "db"]
    res = _tuple(name, _call(name, lstm_backward, dh, cache), 5, outs)
    _unchanged(name, ["dh"], before, [dh])
    for label, out in zip(outs, res):
        _array(name, label, out, fx[label].shape, axes=AXES[name][label], sizes=sizes_of(name, fx))
    _judge(name, dict(zip(outs, res)), {k: fx[k] for k in outs},     # the notes run other exercises: on failure only
           lambda: _carried_story(lstm_backward, fx, dict(zip(outs, res))) or _backward_note(lstm_backward, forward))
    _ok(name)


def _carried_story(backward, fx, outs):
    """When the notebook's lstm_step_forward and lstm_step_backward pass their checks, run BPTT
    on them (no reference: the student's own steps) in the two usual wrong ways; when the
    student's lstm_backward matches one, say which. '' otherwise."""
    space = getattr(backward, "__globals__", {})
    step_f, step_b = space.get("lstm_step_forward"), space.get("lstm_step_backward")
    if not (callable(step_f) and callable(step_b)) or failure_of("lstm_step_backward", step_b, space):
        return ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                x, h0, Wx, Wh, b, dh = (fx[k].copy() for k in ("x", "h0", "Wx", "Wh", "b", "dh"))
                N, T, _ = x.shape
                h, c, caches = h0, np.zeros_like(h0), []
                for t in range(T):
                    h, c, cache = step_f(x[:, t], h, c, Wx, Wh, b)
                    caches.append(cache)
                stories = {
                    (False, True): "your lstm_backward gives what BPTT gives when the gradient on h at step t is "
                                   "dh[:, t] alone: add the gradient carried back from step t + 1, "
                                   "dnext_h = dh[:, t] + dprev_h. ",
                    (True, False): "your lstm_backward gives what BPTT gives when the cell-state gradient is not "
                                   "carried from step to step: pass step t + 1's dprev_c as step t's dnext_c (zero "
                                   "only after the last step). ",
                }
                for (accumulate, carry), words in stories.items():
                    dprev_h, dprev_c, dx = np.zeros_like(h0), np.zeros_like(h0), np.zeros_like(x)
                    for t in reversed(range(T)):
                        got = step_b(dh[:, t] + (dprev_h if accumulate else 0.0),
                                     dprev_c if carry else np.zeros_like(h0), caches[t])
                        dx[:, t], dprev_h, dprev_c = got[0], got[1], got[2]
                    if close(outs["dx"], dx, 1e-6) and not close(dx, fx["dx"], RTOL):
                        return words
    except Exception:   # noqa: BLE001 - only a note
        return ""
    return ""


def check_clip_grad_norm(clip_grad_norm):
    __tracebackhide__ = True
    name = "clip_grad_norm"
    fx = _get(name)
    keys = sorted({k.split(".")[1] for k in fx if k.startswith("grads.")})
    shared = False
    for case in ("big", "small"):
        grads = {k: fx[f"grads.{k}"] * (1.0 if case == "big" else 1e-3) for k in keys}
        before, originals = {k: v.copy() for k, v in grads.items()}, dict(grads)
        max_norm = float(fx["max_norm"])
        clipped, total = _tuple(name, _call(name, clip_grad_norm, grads, max_norm), 2, ["clipped", "total_norm"])
        _clip_inputs_unchanged(name, grads, before, originals, clipped)
        if not isinstance(clipped, dict):
            _fail(name, f"clipped should be a dict, got {type(clipped).__name__}")
        if set(clipped) != set(keys):
            _fail(name, f"clipped has keys {sorted(clipped)}, expected {keys}")
        shared = shared or clipped is grads or any(
            isinstance(clipped[k], np.ndarray) and np.shares_memory(clipped[k], grads[k]) for k in keys)
        want_total = float(np.sqrt(sum(np.sum(before[k] ** 2) for k in keys)))
        _array(name, "total_norm", np.asarray(total), ())     # a float, or a 0-d float64 array
        _close(name, "total_norm", np.asarray(total), np.array(want_total), rtol=CLIP_RTOL,
               hint="total_norm is the L2 norm of all arrays together, sqrt of the sum of all squared entries")
        scale = max_norm / (want_total + 1e-6) if want_total > max_norm else 1.0
        label = "norm above" if case == "big" else "norm below"
        for k in keys:
            got = clipped[k]
            _array(name, f"clipped[{k!r}]", got, before[k].shape)
            if (want_total > max_norm and not close(got, before[k] * scale, CLIP_RTOL)
                    and close(got, before[k] * (max_norm / want_total), CLIP_RTOL)):
                _fail(name, f"clipped[{k!r}] is scaled by max_norm / total_norm = "
                            f"{max_norm / want_total:.12g}; the scale is max_norm / (total_norm + 1e-6) "
                            f"= {scale:.12g}, as in PyTorch's clip_grad_norm_: add the 1e-6")
            _close(name, f"clipped[{k!r}] ({label} max_norm)", got, before[k] * scale, rtol=CLIP_RTOL,
                   hint="scale = max_norm / (total_norm + 1e-6) only when total_norm > max_norm")
    _ok(name, SHARED_NOTE if shared else "")


SHARED_NOTE = (". Note: clipped is your grads dict itself, or holds its arrays, where nothing is scaled. "
               "That costs no points (the arrays are unchanged), but the contract asks for a new dict: a "
               "caller who then changes clipped in place changes grads too (return g.copy())")


def _clip_inputs_unchanged(name, grads, before, originals, clipped):
    """The grader takes half the points of a clip_grad_norm that changes the caller's dict (its
    keys, or an array it holds replaced by another) or arrays (their values)."""
    __tracebackhide__ = True
    if set(grads) == set(before) and all(grads[k] is originals[k] and np.array_equal(grads[k], before[k])
                                         for k in before):
        return
    alias = [k for k in before if isinstance(clipped, dict) and isinstance(clipped.get(k), np.ndarray)
             and k in grads and np.shares_memory(clipped[k], grads[k])]
    if alias:
        k = alias[0]
        _fail(name, f"the input arrays were modified: clipped[{k!r}] is the caller's array "
                    f"grads[{k!r}] itself, scaled in place. dict(grads) or grads.copy() makes a "
                    f"new dict but keeps the same arrays, so `clipped[k] *= scale` changes the "
                    f"caller's gradients too. Build new arrays: "
                    f"`clipped = {{k: g * scale for k, g in grads.items()}}`. The grader takes half of "
                    f"this exercise's points for it, even when every value is right")
    _fail(name, "the input dict or its arrays were modified; return a new dict of new arrays. The grader "
                "takes half of this exercise's points for it, even when every value is right")


# ---------------------------------------------------------------- the optional GRU (not graded)

def _gru_case():
    rng = np.random.default_rng(23)
    N, D, H = 2, 3, 4
    return (rng.normal(size=(N, D)), rng.normal(size=(N, H)), rng.normal(size=(D, 3 * H)) * 0.5,
            rng.normal(size=(H, 3 * H)) * 0.5, rng.normal(size=3 * H) * 0.5)


def _gru_variants(x, h, Wx, Wh, b):
    """The right next_h of Section 3.5's GRU, and what the usual slips give instead."""
    H = h.shape[1]
    logistic = lambda z: 0.5 + 0.5 * np.tanh(0.5 * z)   # noqa: E731
    a = x @ Wx + b
    z, r = logistic(a[:, :H] + h @ Wh[:, :H]), logistic(a[:, H:2 * H] + h @ Wh[:, H:2 * H])
    n = np.tanh(a[:, 2 * H:] + (r * h) @ Wh[:, 2 * H:])
    z2, r2 = logistic(a[:, H:2 * H] + h @ Wh[:, H:2 * H]), logistic(a[:, :H] + h @ Wh[:, :H])
    n2 = np.tanh(a[:, 2 * H:] + (r2 * h) @ Wh[:, 2 * H:])
    return (1 - z) * n + z * h, {
        "z and 1 - z are swapped: next_h = (1 - z) * n + z * prev_h, so z is the share of the old state "
        "that is kept": z * n + (1 - z) * h,
        "the reset gate is applied after the product with Wh_n (PyTorch's form); this exercise uses Cho "
        "et al.'s form, n = tanh(x Wx_n + (r * prev_h) Wh_n + b_n)":
            (1 - z) * np.tanh(a[:, 2 * H:] + r * (h @ Wh[:, 2 * H:])) + z * h,
        "the reset gate is not used: n = tanh(x Wx_n + (r * prev_h) Wh_n + b_n)":
            (1 - z) * np.tanh(a[:, 2 * H:] + h @ Wh[:, 2 * H:]) + z * h,
        "z and r are swapped: the 3H columns hold [z | r | n]": (1 - z2) * n2 + z2 * h,
    }


def check_gru_step_forward(gru_step_forward):
    """The optional GRU exercise of Section 3.5 (not graded): prints its verdict, in a box when
    something is wrong, and returns True when gru_step_forward is right. It never raises: the
    exercise is optional, and nothing after it depends on it."""
    name = "gru_step_forward"
    args = _gru_case()
    try:
        if not callable(gru_step_forward):
            _fail(name, f"expected a function, got {type(gru_step_forward).__name__}")
        before = [a.copy() for a in args]
        out = _call(name, gru_step_forward, *args)
        _unchanged(name, ["x", "prev_h", "Wx", "Wh", "b"], before, list(args))
        want, slips = _gru_variants(*before)
        _array(name, "next_h", out if not isinstance(out, tuple) else out[0], want.shape, axes=("N", "H"))
        got = out if not isinstance(out, tuple) else out[0]
        if not close(got, want, RTOL):
            why = next((words for words, value in slips.items() if close(got, value, RTOL)), None)
            _fail(name, f"next_h is wrong: {why}" if why else
                  "next_h is wrong: z = sigmoid(x Wx_z + prev_h Wh_z + b_z), r likewise with its blocks, "
                  "n = tanh(x Wx_n + (r * prev_h) Wh_n + b_n), next_h = (1 - z) * n + z * prev_h")
    except CheckFailure as exc:
        title = "not written yet (optional)" if isinstance(exc, NotImplementedYet) else "check failed"
        print("\n".join(box(str(exc), title)))
        return False
    _ok(name)
    return True


# ---------------------------------------------------------------- whose bug is it?
#
# A function that calls another exercise (lstm_step_forward calls lstm_gates, which calls
# sigmoid) inherits its bugs. When a check fails, the exercises the function calls are checked
# too, and the message names the first of them that fails its own check: that is the exercise
# to fix first. Where the fixtures allow, the function is also run with a stand-in that returns
# the right values for the fixture's inputs (no formula, only stored answers), which tells
# whether the function itself is right.

class _Inconclusive(Exception):
    """A stand-in was called with inputs it has no stored answer for."""


def calls(fn):
    """{name: function} of the exercises fn calls, directly or through each other, in the
    order of the exercises: read from the names its code uses, found in its own globals."""
    found, todo = {}, [fn]
    while todo:
        f = todo.pop()
        code, space = getattr(f, "__code__", None), getattr(f, "__globals__", {})
        codes = [code] if code is not None else []
        names = set()
        while codes:
            c = codes.pop()
            names.update(c.co_names)
            codes.extend(k for k in c.co_consts if hasattr(k, "co_names"))
        for n in names:
            g = space.get(n)
            if n in _EXERCISES and n not in found and callable(g) and g is not fn:
                found[n] = g
                todo.append(g)
    return {n: found[n] for n in _EXERCISES if n in found}


def failure_of(fname, fn, namespace=None):
    """None when fn passes the public check of exercise fname, else its CheckFailure (the
    check prints nothing). A backward check takes the forward pass from namespace (default:
    the functions fn can see)."""
    space = namespace if namespace is not None else getattr(fn, "__globals__", {})
    args = [fn]
    if fname in _FORWARD_OF:
        args.append(space.get(_FORWARD_OF[fname]))
        if not callable(args[-1]):
            return CheckFailure(f"{fname}: its check needs {_FORWARD_OF[fname]}, which is not defined "
                                f"yet: run its cell")
    _QUIET.append(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            globals()[f"check_{fname}"](*args)
    except CheckFailure as exc:
        return exc
    except Exception as exc:   # noqa: BLE001 - the student's code can do anything
        return CheckFailure(f"{fname}: its check could not run ({type(exc).__name__}: {exc})")
    finally:
        _QUIET.pop()
    return None


_FORWARD_OF = {"lstm_step_backward": "lstm_step_forward", "lstm_backward": "lstm_forward"}


def first_failing(fn, name, skip=()):
    """(exercise, CheckFailure) of the first exercise, in the exercises' order, among fn (the
    notebook's function for exercise `name`) and the exercises it calls, that fails its public
    check; None when all pass. Exercises in skip are not checked."""
    found = dict(calls(fn))
    found[name] = fn
    for n in _EXERCISES:
        if n in found and n not in skip:
            space = dict(getattr(found[n], "__globals__", {}))
            space.update(found)
            exc = failure_of(n, found[n], space)
            if exc is not None:
                return n, exc
    return None


def _without_name(fname, exc):
    text = str(exc)
    return text[len(fname) + 2:] if text.startswith(fname + ": ") else text


def _upstream_failure(name, fn):
    """(exercise, failure) of the first exercise fn calls that fails its own check, or None."""
    for dep, f in calls(fn).items():
        if dep == name or EXERCISE_NUMBER[dep] > EXERCISE_NUMBER[name]:
            continue
        exc = failure_of(dep, f)
        if exc is not None:
            return dep, exc
    return None


def _stand_in_gates():
    """lstm_gates that knows the right gates of the step-backward fixture's inputs only."""
    fx = _get("lstm_step_backward")
    want = [fx[k] for k in ("x", "prev_h", "Wx", "Wh", "b")]

    def lstm_gates(x, prev_h, Wx, Wh, b):
        got = (x, prev_h, Wx, Wh, b)
        if all(np.shape(a) == e.shape and np.array_equal(a, e) for a, e in zip(got, want)):
            return tuple(fx[f"gate_{g}"].copy() for g in GATES)
        raise _Inconclusive()
    return lstm_gates, fx


def right_with_right_gates(step_forward):
    """True when step_forward, given the right gates in place of the lstm_gates it calls,
    returns the right next_h and next_c; False when it does not; None when it cannot be told
    (it does not call lstm_gates on its own inputs, or it fails otherwise)."""
    space = getattr(step_forward, "__globals__", None)
    if space is None or "lstm_gates" not in space:
        return None
    stand_in, fx = _stand_in_gates()
    args = [fx[k].copy() for k in ("x", "prev_h", "prev_c", "Wx", "Wh", "b")]
    saved = space["lstm_gates"]
    space["lstm_gates"] = stand_in
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                next_h, next_c = step_forward(*args)[:2]
        return close(next_h, fx["next_h"], RTOL) and close(next_c, fx["next_c"], RTOL)
    except Exception:   # noqa: BLE001 - _Inconclusive or the student's own error
        return None
    finally:
        space["lstm_gates"] = saved


@contextlib.contextmanager
def _upstream_blame(name, fn):
    """Run a check; when it fails and an exercise that fn calls fails its own check, the
    message says so first, and names the exercise to fix."""
    __tracebackhide__ = True
    try:
        yield
    except NotImplementedYet:
        raise
    except CheckFailure as exc:
        found = _upstream_failure(name, fn) if callable(fn) else None
        if not found:
            own = _own_steps_failure(name, fn) if callable(fn) else None
            if own:
                _raise(CheckFailure(_own_steps_message(name, *own)))
            raise
        dep, dexc = found
        k = EXERCISE_NUMBER[dep]
        verdict = right_with_right_gates(fn) if (name, dep) == ("lstm_step_forward", "lstm_gates") else None
        upstream = (f"{name} calls your {dep} (Exercise {k}), which fails its own check: "
                    f"{_without_name(dep, dexc).rstrip('.')}.")
        if verdict:
            message = (f"your {name} itself is right: given the right gates in place of what your {dep} returns, "
                       f"it returns the right next_h and next_c. The problem is upstream: {upstream} "
                       f"Fix Exercise {k} first (its check cell says the same); this check passes then.")
        else:
            message = (f"the problem starts upstream: {upstream} Fix Exercise {k} first, then run this "
                       f"cell again. What this check sees now, with your {dep}: {_without_name(name, exc)}")
            if verdict is False:
                message += (f" (Even with the right gates your {name} is not right: once Exercise {k} "
                            f"passes, this check will say what is left.)")
        _raise(CheckFailure(f"{name}: {message}"))


def _own_steps_failure(name, fn):
    """For lstm_forward that does not call lstm_step_forward: (exercise, failure) when it returns
    what the notebook's own lstm_step_forward gives, looped over the fixture's steps, and that
    chain fails its own check (the first failing exercise of lstm_step_forward and what it
    calls); None otherwise. The grader's second opinion judges lstm_forward the same way."""
    step = getattr(fn, "__globals__", {}).get("lstm_step_forward")
    if name != "lstm_forward" or not callable(step) or step is fn:
        return None
    first = first_failing(step, "lstm_step_forward")
    if first is None or isinstance(first[1], NotImplementedYet):
        return None
    fx = _get(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                h = fn(*(fx[k].copy() for k in ("x", "h0", "Wx", "Wh", "b")))[0]
                prev_h, prev_c, steps = fx["h0"].copy(), np.zeros_like(fx["h0"]), []
                for t in range(fx["x"].shape[1]):
                    prev_h, prev_c = step(fx["x"][:, t].copy(), prev_h, prev_c, fx["Wx"].copy(),
                                          fx["Wh"].copy(), fx["b"].copy())[:2]
                    steps.append(np.array(prev_h, dtype=float))
    except Exception:   # noqa: BLE001 - no verdict then
        return None
    return first if close(h, np.stack(steps, axis=1), RTOL) else None


def _own_steps_message(name, dep, dexc):
    k = EXERCISE_NUMBER[dep]
    who = "that" if dep == "lstm_step_forward" else f"your {dep}, which it calls,"
    return (f"{name}: the problem starts upstream: your {name} gives what your own lstm_step_forward gives, "
            f"step after step, and {who} fails its own check (Exercise {k}): "
            f"{_without_name(dep, dexc).rstrip('.')}. Fix Exercise {k} first: the grader judges your {name} "
            f"on your own steps too, so it is the same mistake, charged once, where it is made.")


def _backward_note(backward, forward, name="lstm_backward"):
    """When an exercise that the backward function `name` or its forward pass calls fails its
    own check, say so before the backward check's message, naming the first such exercise: the
    errors most likely come from there (an lstm_step_forward that changes prev_c in place
    corrupts the cache of an lstm_forward built on it, although that forward pass returns the
    right h; float32 gates leave next_h within tolerance and the gradients outside it). The
    grader stands in for those exercises and judges the backward pass on its own."""
    found = {}
    for f in (forward, backward):
        for n, g in calls(f).items():
            found.setdefault(n, g)
    for n in _EXERCISES:
        if n not in found or n == name:
            continue
        space = dict(getattr(found[n], "__globals__", {}))
        space.update(found)
        exc = failure_of(n, found[n], space)
        if exc is None:
            continue
        if n == "lstm_step_backward":
            break
        k = EXERCISE_NUMBER[n]
        return (f"your {n} (Exercise {k}) fails its own check, and your {_FORWARD_OF[name]} and {name} "
                f"build on it, so these errors most likely come from there: fix Exercise {k} first. Its "
                f"check says: {_without_name(n, exc).rstrip('.')}. What this check sees now: ")
    return _step_backward_note() if name == "lstm_backward" else ""


def _step_backward_note():
    """When the notebook's own lstm_step_backward fails its check, say so before lstm_backward's
    message: BPTT written on top of it inherits its errors."""
    import __main__
    step, forward = getattr(__main__, "lstm_step_backward", None), getattr(__main__, "lstm_step_forward", None)
    if not callable(step) or not callable(forward):
        return ""
    _QUIET.append(True)
    try:
        check_lstm_step_backward(step, forward)
    except CheckFailure:
        return (f"your lstm_step_backward ({'Exercise 5'}) fails its own "
                "check: if lstm_backward calls it, these errors most likely come from there rather "
                "than from the time loop, so fix Exercise 5 first. ")
    except Exception:   # noqa: BLE001 - only a note
        return ""
    finally:
        _QUIET.pop()
    return ""


def progress(namespace=None):
    """Run every public check on the notebook's functions; print one line per exercise."""
    import __main__
    ns = vars(__main__) if namespace is None else namespace
    upstream = {"lstm_step_backward": "lstm_step_forward", "lstm_backward": "lstm_forward"}
    passed = 0
    _QUIET.append(True)
    try:
        for fn in _EXERCISES:
            label = f"{exercise_label(fn)[:11]:<11} {fn:<19}"
            needs = [fn] + ([upstream[fn]] if fn in upstream else [])
            missing = [n for n in needs if not callable(ns.get(n))]
            if missing:
                print(f"{label} -  {_words(missing)} not defined yet: run {'its' if len(missing) == 1 else 'their'} cell")
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    globals()[f"check_{fn}"](*[ns[n] for n in needs])
            except NotImplementedYet:
                print(f"{label} -  not implemented yet")
            except CheckFailure as exc:
                text = str(exc)
                text = text[len(fn) + 2:] if text.startswith(fn + ": ") else text
                lead = f"{label} X  "
                print(textwrap.fill(" ".join(text.split()), 100, initial_indent=lead,
                                    subsequent_indent=" " * len(lead), break_on_hyphens=False))
            except Exception as exc:   # noqa: BLE001 - one line, whatever happened
                print(f"{label} X  the check itself failed: {type(exc).__name__}")
            else:
                passed += 1
                print(f"{label} ok")
    finally:
        _QUIET.pop()
    print(f"{passed} of {len(_EXERCISES)} exercises pass their public checks "
          "(the grader then tests them on other inputs)")
    return passed


def _forward_cache(name, fname, forward, args, labels, expected):
    """Run the student's forward pass for a backward check; its cache is what we need."""
    __tracebackhide__ = True
    copies = [a.copy() for a in args]
    try:
        res = _tuple(fname, _call(fname, forward, *copies), len(labels), labels)
    except NotImplementedYet:
        _raise(NotImplementedYet(
            f"{name} cannot be checked yet: it needs the cache of your {fname}, which is not "
            f"implemented yet. Implement {fname} (and {name}), run their cells, then this one."
        ))
    except CheckFailure as exc:
        _raise(CheckFailure(f"{name} cannot be checked: calling your {fname} for its cache "
                           f"failed ({exc})"))
    inputs = _ARGS[fname]
    changed = [n for n, a, c in zip(inputs, args, copies) if not np.array_equal(a, c)]
    if changed:
        n = changed[0]
        _fail(name, f"{name} cannot be checked yet: your {fname} (Exercise {EXERCISE_NUMBER[fname]}) "
                    f"modifies its input `{n}`, so the cache it returns holds the changed array and "
                    f"every gradient computed from it is off, whatever {name} does. Fix Exercise "
                    f"{EXERCISE_NUMBER[fname]} first: compute a new array (for instance "
                    f"`next_c = f * prev_c + i * g`) instead of changing `{n}` in place "
                    f"(`{n} *= ...`, `{n} += ...`); its check names the same input")
    for label, out, ref in zip(labels, res, expected):
        if (not isinstance(out, np.ndarray) or out.shape != ref.shape
                or not np.all(np.isfinite(out))
                or np.max(np.abs(out - ref)) > RTOL * max(np.max(np.abs(ref)), 1e-12)):
            root, why = fname, failure_of(fname, forward)
            for dep, f in calls(forward).items():
                dexc = failure_of(dep, f)
                if dexc is not None and EXERCISE_NUMBER[dep] < EXERCISE_NUMBER[fname]:
                    root, why = dep, dexc
                    break
            via = "" if root == fname else f", because of your {root}, which it calls"
            said = (f"Its check says: {_without_name(root, why).rstrip('.')}" if why is not None else
                    f"(Its own check passes: the bug shows on these inputs only.)")
            _fail(name, f"{name} is checked with the cache of your {fname}, but its {label} is "
                        f"not correct yet{via}. Fix Exercise {EXERCISE_NUMBER[root]} ({root}) first, "
                        f"then run this cell again. {said}")
    return res[-1]


_ARGS = {"lstm_step_forward": ("x", "prev_h", "prev_c", "Wx", "Wh", "b"),
         "lstm_forward": ("x", "h0", "Wx", "Wh", "b")}


def _caller_function(fname):
    """Find a function the notebook defined (e.g. your lstm_forward) in __main__."""
    import __main__
    fn = getattr(__main__, fname, None)
    if fn is None:
        _fail(fname, f"{fname} is not defined: run its cell first")
    return fn


# ---------------------------------------------------------------- what is wrong, in words
#
# Shared with the grader's hidden feedback (assignments/lstm/explain.py reads these
# functions): given a function's outputs and the expected ones, say which part is wrong,
# in terms of the maths of Section 3.4. Nothing here knows the inputs' values.

EXERCISE_NUMBER = {"sigmoid": 1, "lstm_gates": 2, "lstm_step_forward": 3, "lstm_forward": 4,
                   "lstm_step_backward": 5, "lstm_backward": 6, "clip_grad_norm": 7}
GATES = ("i", "f", "g", "o")
GATE_ARRAYS = ("db", "dWx", "dWh")      # gradients with a 4H axis, judged block by block
AXES = {   # the axis names of each output, for shape messages
    "lstm_step_backward": {"dx": ("N", "D"), "dprev_h": ("N", "H"), "dprev_c": ("N", "H"),
                           "dWx": ("D", "4H"), "dWh": ("H", "4H"), "db": ("4H",)},
    "lstm_backward": {"dx": ("N", "T", "D"), "dh0": ("N", "H"), "dWx": ("D", "4H"),
                      "dWh": ("H", "4H"), "db": ("4H",)},
    "lstm_forward": {"h": ("N", "T", "H")},
    "lstm_step_forward": {"next_h": ("N", "H"), "next_c": ("N", "H")},
    "lstm_gates": dict.fromkeys(GATES, ("N", "H")),
}
# Why a set of wrong gate blocks of the pre-activation gradient is wrong (step backward).
BLOCK_CAUSES = {
    "g": "check the derivative of tanh for g: g is already tanh of its pre-activation, so the "
         "derivative is 1 - g**2 (not the sigmoid's, and tanh is not applied again)",
    "i": "check the input gate's gradient: next_c = f * prev_c + i * g gives i the gradient on "
         "next_c times g, then the sigmoid derivative i * (1 - i)",
    "f": "check the forget gate's gradient: next_c = f * prev_c + i * g gives f the gradient on "
         "next_c times prev_c, then the sigmoid derivative f * (1 - f)",
    "o": "check the output gate's gradient: next_h = o * tanh(next_c) gives o the gradient "
         "dnext_h * tanh(next_c), then the sigmoid derivative o * (1 - o)",
    "ifg": "i, f and g all receive the gradient on next_c and o does not: check that gradient, "
           "dnext_c plus the path through next_h = o * tanh(next_c), which brings "
           "dnext_h * o * (1 - tanh(next_c)**2)",
}


def exercise_label(fn):
    """'Exercise 5 (lstm_step_backward)', as the notebook numbers them."""
    return f"Exercise {EXERCISE_NUMBER[fn]} ({fn})" if fn in EXERCISE_NUMBER else fn


def _words(items):
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _isare(items):
    return "is" if len(list(items)) == 1 else "are"


def _real(value):
    try:
        a = np.asarray(value)
    except Exception:   # noqa: BLE001 - anything that is not an array is "not comparable"
        return None
    return a.astype(np.float64) if a.dtype.kind in "biuf" else None


def close(actual, expected, rtol, scale=None):
    """max |actual - expected| <= rtol * scale (default max |expected|), finite, same shape."""
    a, e = _real(actual), _real(expected)
    if a is None or e is None or a.shape != e.shape or not np.all(np.isfinite(a)):
        return False
    if scale is None:
        scale = float(np.max(np.abs(e), initial=0.0))
    return float(np.max(np.abs(a - e), initial=0.0)) <= rtol * max(scale, 1e-300)


def sizes_of(fn, want):
    """{axis name: size} of every output of fn, e.g. {"N": 2, "D": 3, "H": 4, "4H": 16}."""
    sizes = {}
    for n, axes in AXES.get(fn, {}).items():
        shape = np.shape(want[n]) if n in want else ()
        if len(shape) == len(axes):
            sizes.update(zip(axes, shape))
    return sizes


def shape_words(shape, expected, axes=None, sizes=None):
    """'has shape (2, 4, 3), expected (N, T, D) = (2, 5, 3): axis 1 should be T (5) but is 4, which is H'."""
    msg = f"has shape {tuple(shape)}, expected {tuple(expected)}"
    if axes and len(axes) == len(expected):
        names = f"({axes[0]},)" if len(axes) == 1 else f"({', '.join(axes)})"
        msg = f"has shape {tuple(shape)}, expected {names} = {tuple(expected)}"
        sizes = {**(sizes or {}), **dict(zip(axes, expected))}
        if len(shape) != len(expected):
            return msg + f": {len(shape)} axes instead of {len(expected)}"
        wrong = [k for k, (s, e) in enumerate(zip(shape, expected)) if s != e]
        notes = []
        for k in wrong:
            others = [n for n, v in sizes.items() if v == shape[k] and n != axes[k]]
            note = f"axis {k} should be {axes[k]} ({expected[k]}) but is {shape[k]}"
            if len(others) == 1:
                note += f", which is {others[0]}"
            notes.append(note)
        msg += ": " + "; ".join(notes)
    return msg


def relation(actual, expected, rtol, axes=None, time_axis=None, sizes=None):
    """How a wrong array relates to the expected one, or None: 'is all zeros', 'has the
    opposite sign', 'is the expected value times 2', 'is transposed', 'at time step 0 it
    holds the expected step 2', or a shape message naming the axis."""
    a, e = _real(actual), _real(expected)
    if a is None or e is None:
        return None
    if a.shape != e.shape:
        if a.ndim == 2 and a.shape == e.shape[::-1] and close(a.T, e, rtol):
            return f"is transposed: it has shape {a.shape}, expected {e.shape}"
        return shape_words(a.shape, e.shape, axes, sizes)
    if not np.all(np.isfinite(a)) or not np.any(e):
        return None
    if not np.any(a):
        return "is all zeros"
    if close(-a, e, rtol):
        return "has the opposite sign of the right value everywhere"
    k = float(np.sum(a * e) / np.sum(e * e))
    if np.isfinite(k) and k != 0 and close(a, k * e, rtol):
        simple = [q for q in (2, 3, 4, 0.5, 1 / 3, 0.25) if abs(abs(k) - q) <= 1e-6 * q]
        if simple:   # a factor that says something about the formula; others could echo inputs
            return f"is the right value times {k:.4g} everywhere (a constant factor is wrong)"
        return "is a constant multiple of the right value everywhere (a constant factor is wrong)"
    if time_axis is not None and a.ndim > time_axis and a.shape[time_axis] > 1:
        T, scale = a.shape[time_axis], float(np.max(np.abs(e)))
        step = lambda z, t: np.take(z, t, axis=time_axis)   # noqa: E731
        match = [[s for s in range(T) if close(step(a, t), step(e, s), rtol, scale)] for t in range(T)]
        if all(len(m) == 1 for m in match) and any(m != [t] for t, m in enumerate(match)):
            if all(m == [T - 1 - t] for t, m in enumerate(match)):
                return ("is the right array reversed in time: its step t holds the right value of "
                        "step T - 1 - t")
            t = next(t for t, m in enumerate(match) if m != [t])
            return f"is the right value at another time step: its step {t} holds the right step {match[t][0]}"
    return None


MEANING = {   # what an output is, said when it comes back as all zeros
    ("lstm_backward", "dh0"): "dh0 is the gradient on h0, the one the loop carries back past the first step",
    ("lstm_step_backward", "dprev_c"): "dprev_c is the gradient on next_c times f",
    ("lstm_step_backward", "dprev_h"): "dprev_h takes the pre-activation gradient back through Wh",
}
ACTIVATION = {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid"}


def _gate_source(value, gates):
    """(activation, block) such that value = activation(pre-activation of that block), read
    back through the inverse activations where nothing saturates; None when none fits."""
    v = _real(value)
    if v is None or any(_real(gates[g]) is None or _real(gates[g]).shape != v.shape for g in GATES):
        return None
    pre = {}
    for g in GATES:   # the right pre-activations, from the right gates
        e = _real(gates[g])
        pre[g] = np.arctanh(np.clip(e, -0.999999, 0.999999)) if g == "g" else \
            np.log(np.clip(e, 1e-6, 1 - 1e-6) / np.clip(1 - e, 1e-6, 1))
    firm = np.ones(v.shape, bool)
    for g in GATES:
        e = _real(gates[g])
        firm &= (np.abs(e) < 0.999) if g == "g" else ((e > 1e-3) & (e < 1 - 1e-3))
    inverse = {"sigmoid": lambda z: np.log(z / (1 - z)), "tanh": np.arctanh}
    ranges = {"sigmoid": (v > 1e-3) & (v < 1 - 1e-3), "tanh": np.abs(v) < 0.999}
    for act in ("sigmoid", "tanh"):
        mask = firm & ranges[act]
        if mask.sum() < max(1, v.size // 3):
            continue
        with np.errstate(all="ignore"):
            back = inverse[act](np.where(mask, v, 0.5 if act == "sigmoid" else 0.0))
        for g in GATES:
            scale = float(np.max(np.abs(pre[g][mask]), initial=0.0)) or 1.0
            if float(np.max(np.abs(back[mask] - pre[g][mask]))) <= 1e-5 * scale:
                return act, g
    return None


def gate_blocks(actual, expected, rtol):
    """For an array whose last axis is 4H: ({gate: right?}, order) where order names the
    right gate each of actual's blocks equals when the blocks are a permutation, else None.
    None when the shapes do not allow it."""
    a, e = _real(actual), _real(expected)
    if a is None or e is None or a.shape != e.shape or not a.ndim or a.shape[-1] % 4:
        return None
    H = a.shape[-1] // 4
    scale = float(np.max(np.abs(e), initial=0.0))
    blocks = lambda z, k: z[..., k * H:(k + 1) * H]   # noqa: E731
    right = {g: close(blocks(a, k), blocks(e, k), rtol, scale) for k, g in enumerate(GATES)}
    order = None
    if not all(right.values()):
        match = [[GATES[j] for j in range(4) if close(blocks(a, k), blocks(e, j), rtol, scale)]
                 for k in range(4)]
        if all(len(m) == 1 for m in match) and len({m[0] for m in match}) == 4:
            order = tuple(m[0] for m in match)
    return right, order


def _block_summary(outs, want, rtol, names):
    """(sentence, wrong gates, kind) about the 4H arrays `names`; kind is "order" when their
    blocks are the right ones in another order, "blocks" otherwise, None when none applies."""
    analysed = {n: gate_blocks(outs[n], want[n], rtol) for n in names}
    analysed = {n: r for n, r in analysed.items() if r is not None}
    if not analysed:
        return None, set(), None
    orders = {r[1] for r in analysed.values()}
    if len(orders) == 1 and None not in orders:
        order = orders.pop()
        return (f"the gate blocks of {_words(analysed)} are in the order [{' | '.join(order)}]: "
                f"the 4H columns hold [i | f | g | o], the order of the forward pass, so stack "
                f"the gates' pre-activation gradients in that order"), set(), "order"
    wrong = {g for r in analysed.values() for g, good in r[0].items() if not good}
    gates = [g for g in GATES if g in wrong]
    rights = [g for g in GATES if g not in wrong]
    text = (f"the {_words(gates)} block{'s' if len(gates) > 1 else ''} of {_words(analysed)} "
            f"{'is' if len(gates) == 1 else 'are'} wrong")
    if rights:
        text += f"; {_words(rights)} {_isare(rights)} right"
    return text, wrong, "blocks"


def explain_outputs(fn, outs, want, rtol, ok=None):
    """What is wrong with a function's outputs, in words: one message, or None.

    outs, want: output name -> the function's and the expected value; ok: output name ->
    passed (default: compared here). Outputs are judged in the order that isolates a cause:
    for a backward pass the cell-state gradient and the gate blocks first, then what is
    computed from them (dx, dprev_h, dh0)."""
    ok = ok or {n: close(outs[n], want[n], rtol) for n in want}
    bad = [n for n in want if not ok[n]]
    if not bad:
        return None
    axes = AXES.get(fn, {})
    said, sentences = set(), []

    def say(text, names):
        if text:
            sentences.append(text)
        said.update(names)

    # shapes and plain relations first: for that output they are the whole story
    for n in bad:
        rel = relation(outs[n], want[n], rtol, axes.get(n), sizes=sizes_of(fn, want))
        if rel:
            say(f"{n} {rel}" + (f": {MEANING[fn, n]}" if (fn, n) in MEANING and "zeros" in rel else ""), [n])
    if fn in ("lstm_step_backward", "lstm_backward"):
        _explain_backward(fn, outs, want, rtol, ok, [n for n in bad if n not in said], say)
    elif fn == "lstm_gates":
        for n in bad:
            same = [g for g in GATES if g != n and close(outs[n], want[g], rtol)]
            if same and n not in said:
                say(f"your {n} is the right {same[0]}: the 4H columns are ordered "
                    f"[i | f | g | o], so {n} is block {GATES.index(n) + 1} of 4", [n])
            twice = [g for g in GATES if n not in said and _real(outs[n]) is not None and _real(want[g]) is not None
                     and close(outs[n], 1.0 / (1.0 + np.exp(-np.clip(_real(want[g]), -50, 50))), rtol)]
            if twice:
                say(f"your {n} is the sigmoid of the already activated {twice[0]}: each gate is the activation "
                    f"of its own block of the pre-activations (keep pre-activations and gates apart)", [n])
            found = None if n in said else _gate_source(outs[n], want)
            if found and found != (ACTIVATION[n], n):
                act, block = found
                first = not any("pre-activations" in t for t in sentences)
                say(f"your {n} is the {act} of the {block} block of the pre-activations; it should be the "
                    f"{ACTIVATION[n]} of the {n} block" + (" (the 4H columns are ordered [i | f | g | o], "
                                                           "and g alone uses tanh)" if first else ""), [n])
        rest = [n for n in bad if n not in said]
        good = [g for g in GATES if ok[g]]
        if rest:
            say(f"{_words(rest)} {_isare(rest)} wrong" + (f"; {_words(good)} {_isare(good)} right" if good else "")
                + ": i, f and o are the sigmoid of their block of the pre-activations, g the tanh of its block",
                rest)
    elif fn == "lstm_step_forward":
        if "next_c" in bad and "next_c" not in said:
            say("next_c is wrong: next_c = f * prev_c + i * g", ["next_c"])
        if "next_h" in bad and "next_h" not in said:
            say("next_h is wrong as a consequence" if "next_c" in bad else
                "next_h is wrong although next_c is right: next_h = o * tanh(next_c)", ["next_h"])
    elif fn == "lstm_forward" and "h" in bad and "h" not in said:
        say(_time_story("h", outs["h"], want["h"], rtol, forward=True), ["h"])
    for n in bad:
        if n not in said:
            say(f"{n} is wrong", [n])
    text = "; ".join(sentences)
    return text + "." if text else None


def _time_story(n, actual, expected, rtol, forward):
    """Which time steps of an (N, T, ...) output are right, and what that points at."""
    a, e = _real(actual), _real(expected)
    if a is None or e is None or a.shape != e.shape or a.ndim < 3:
        return f"{n} is wrong"
    T, scale = a.shape[1], float(np.max(np.abs(e)))
    right = [close(a[:, t], e[:, t], rtol, scale) for t in range(T)]
    rel = relation(a, e, rtol, time_axis=1)
    if rel and ("reversed" in rel or "another time step" in rel):
        loop = "runs t = 0, 1, ..., T - 1" if forward else "runs from t = T - 1 down to 0"
        return f"{n} {rel}: check the time loop (it {loop}) and where each step's result goes"
    if forward:
        if right[0]:
            return (f"{n} is right at the first time step and wrong after it: each step must "
                    "receive the previous step's next_h and next_c")
        return (f"{n} is already wrong at the first time step: it starts from prev_h = h0 and a "
                "zero cell state, then takes one step of lstm_step_forward")
    if right[-1]:
        return (f"{n} is right at the last time step and wrong before it: what is carried back "
                "from step t + 1 to step t is wrong (the gradient on h at step t is dh[:, t] plus "
                "the one carried back from step t + 1, and the cell-state gradient is carried too)")
    return (f"{n} is already wrong at the last time step, where nothing has been carried back yet "
            "when the loop runs from t = T - 1 down to 0: the error is in one step's backward pass, "
            "or in the loop's direction")


def next_c_gradient_story(dprev_c, f, o, next_c, dnext_h, dnext_c):
    """Which term a wrong gradient on next_c lacks, read back from dprev_c (= that gradient
    times f) where f is not tiny; '' when none of the usual ones fits."""
    dprev_c, f, o, next_c = (_real(v) for v in (dprev_c, f, o, next_c))
    if dprev_c is None or dprev_c.shape != f.shape:
        return ""
    firm = f > 1e-3
    if not firm.any():
        return ""
    dc = dprev_c[firm] / f[firm]
    tanh_c = np.tanh(next_c)
    candidates = {
        "it lacks dnext_c, the gradient that reaches next_c directly": dnext_h * o * (1 - tanh_c ** 2),
        "it lacks the path through next_h": dnext_c,
        "its path through next_h lacks the tanh derivative 1 - tanh(next_c)**2": dnext_c + dnext_h * o,
    }
    for words, value in candidates.items():
        if close(dc, value[firm], 1e-6):
            return f" Read back from your dprev_c, your gradient on next_c is one term short: {words}."
    return ""


def _block_cause(wrong):
    """What a set of wrong gate blocks of the pre-activation gradient points at, or None."""
    key = "".join(g for g in GATES if g in wrong)
    if key in BLOCK_CAUSES:
        return BLOCK_CAUSES[key]
    if len(wrong) >= 2 and wrong <= {"i", "f", "g"}:   # f's block vanishes where prev_c is zero
        return BLOCK_CAUSES["ifg"]
    return None


def _explain_backward(fn, outs, want, rtol, ok, bad, say):
    """dprev_c and the gate blocks first, then what is computed from them."""
    bptt = fn == "lstm_backward"
    blocks, wrong, kind = None, set(), None
    weights = [n for n in ("dWx", "dWh") if n in bad]
    if "db" in bad:    # the pre-activation gradient itself is wrong: read its gate blocks
        blocks, wrong, kind = _block_summary(outs, want, rtol, [n for n in GATE_ARRAYS if n in bad])
        weights = [] if kind else weights
    arrays = [n for n in GATE_ARRAYS if n in bad]
    if bptt and "dx" in bad:
        say(_time_story("dx", outs["dx"], want["dx"], rtol, forward=False), ["dx"])
    elif bptt and arrays and ok.get("dh0", True):
        say(f"dx and dh0 are right, so the gradient of every step's pre-activations is right, but "
            f"{_words(arrays)} {_isare(arrays)} not: {'each is' if len(arrays) > 1 else 'it is'} a sum over "
            "all time steps (and the batch) of one term per step", arrays)
        kind, weights = None, []
    cause = _block_cause(wrong) if kind == "blocks" else None
    if kind == "blocks" and len(wrong) == 4:
        blocks = f"every gate block of {_words(arrays)} is wrong"
    if "dprev_c" in bad:
        if kind == "blocks" and cause == BLOCK_CAUSES["ifg"]:
            say(f"dprev_c is wrong, and {blocks}: {cause}", ["dprev_c"] + arrays)
            kind = None
        elif ok.get("db"):
            say("dprev_c is wrong while db is right: dprev_c is the gradient on next_c (dnext_c plus the "
                "path through next_h) times f", ["dprev_c"])
        else:
            say("dprev_c is wrong: it is the gradient on next_c (dnext_c plus the path through next_h) "
                "times f", ["dprev_c"])
    if kind in ("order", "blocks"):
        if bptt and "dx" in bad and not cause and kind == "blocks":
            say(f"{_words(arrays)} {_isare(arrays)} wrong as a consequence", arrays)
        else:
            say(blocks + (f": {cause}" if cause else ""), arrays)
    for n in weights:
        source = ("the input x" if n == "dWx" else
                  "the hidden state that entered each step (h0 at the first step)" if bptt else "prev_h")
        total = ", summed over all time steps" if bptt else ""
        say(f"{n} is wrong while db is right, so the pre-activation gradient is right: {n} multiplies "
            f"it by {source}{total}", [n])
    rest = [n for n in ("dx", "dprev_h", "dh0") if n in bad and not (bptt and n == "dx")]
    if bptt and "dh0" in rest and ok.get("dx"):
        say("dh0 is wrong while dx is right at every time step: dh0 is the gradient on h0, the one "
            "carried back past the first step", ["dh0"])
    elif rest and ("db" in bad or (bptt and "dx" in bad)):
        say(f"{_words(rest)} {_isare(rest)} wrong as a consequence", rest)
    elif rest:
        say(" and ".join(f"{n} is wrong" for n in rest) + " while db is right, so the pre-activation "
            "gradient is right: check how it goes back through " + _words(
                ["Wx" if n == "dx" else "Wh" for n in rest]), rest)
