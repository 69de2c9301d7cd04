"""Public checks for the exercises of Section 3.4.

Each check calls your function on small fixed inputs (stored in fixtures.npz) and compares
with the expected outputs. On success it prints one line; on failure it raises CheckFailure
whose message says what went wrong and, where it can, why.

The grader uses other, random inputs and shapes: passing these checks is necessary, not
sufficient.
"""
import os
import traceback
import warnings

import numpy as np

__all__ = ["CheckFailure", "NotImplementedYet", "check_sigmoid", "check_lstm_gates",
           "check_lstm_step_forward", "check_lstm_forward", "check_lstm_step_backward",
           "check_lstm_backward", "check_clip_grad_norm"]

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures.npz")
RTOL = 1e-7


class CheckFailure(AssertionError):
    """A public check failed; the message is the whole explanation."""


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


def _call(name, fn, *args):
    """Call the student's function; no warnings allowed, NotImplementedError explained."""
    __tracebackhide__ = True
    if not callable(fn):
        _fail(name, f"expected a function, got {type(fn).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
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
    except (FloatingPointError, RuntimeWarning) as exc:
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


def _array(name, label, value, shape, why=None):
    __tracebackhide__ = True
    if not isinstance(value, np.ndarray):
        _fail(name, f"{label} should be a numpy array, got {type(value).__name__}")
    if value.shape != tuple(shape):
        msg = f"{label} has shape {value.shape}, expected {tuple(shape)}"
        if why:
            hint = why(value.shape)
            if hint:
                msg += f": {hint}"
        _fail(name, msg)
    if not np.issubdtype(value.dtype, np.floating):
        _fail(name, f"{label} has dtype {value.dtype}, expected a floating dtype (float64)")
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
        msg = (f"{label} is wrong: relative error {err:.2e} (tolerance {rtol:.0e}); largest "
               f"difference at index {idx}: got {actual[idx]!r}, expected {expected[idx]!r}")
        if hint:
            msg += f". {hint}"
        _fail(name, msg)


def _unchanged(name, names, before, after):
    __tracebackhide__ = True
    for label, b, a in zip(names, before, after):
        if isinstance(b, np.ndarray) and not np.array_equal(a, b):
            _fail(name, f"your function modified its input `{label}`; a graded function must "
                        f"never change its arguments (work on copies, avoid `+=` on inputs)")


def _tuple(name, result, n, labels):
    __tracebackhide__ = True
    if not isinstance(result, (tuple, list)) or len(result) != n:
        got = (f"a {type(result).__name__} of {len(result)}" if isinstance(result, (tuple, list))
               else type(result).__name__)
        _fail(name, f"should return a tuple of {n} ({', '.join(labels)}), got {got}")
    return result


def _stacked_hint(H):
    def why(shape):
        if shape and shape[-1] == 4 * H:
            return "last dimension 4H instead of H: did you return the stacked activations " \
                   "instead of one gate's slice?"
        if len(shape) >= 2 and shape[-1] != H and shape[0] == H:
            return "dimensions look swapped: check the order of the matrix product"
        return None
    return why


def _ok(name):
    print(f"{name}: all checks passed")


# ---------------------------------------------------------------- the checks

def check_sigmoid(sigmoid):
    __tracebackhide__ = True
    name = "sigmoid"
    fx = _get(name)
    x = fx["x"]
    x0 = x.copy()
    out = _call(name, sigmoid, x)
    _array(name, "sigmoid(x)", out, x.shape)
    _unchanged(name, ["x"], [x0], [x])
    _close(name, "sigmoid(x)", out, fx["out"], rtol=1e-12)
    big = fx["big"]
    out = _call(name, sigmoid, big)
    _array(name, "sigmoid on large |x|", out, big.shape)
    _close(name, "sigmoid on large |x| (up to 1e4 in absolute value)", out, fx["big_out"],
           rtol=1e-12, hint="For very negative x, 1/(1+exp(-x)) overflows: use exp(-|x|)")
    s = _call(name, sigmoid, np.float64(0.0))
    if not np.isclose(float(np.asarray(s)), 0.5, rtol=0, atol=1e-15):
        _fail(name, f"sigmoid(0.0) should be 0.5, got {s!r}")
    _ok(name)


def check_lstm_gates(lstm_gates):
    __tracebackhide__ = True
    name = "lstm_gates"
    fx = _get(name)
    args = [fx[k] for k in ("x", "prev_h", "Wx", "Wh", "b")]
    before = [a.copy() for a in args]
    N, H = fx["prev_h"].shape
    res = _tuple(name, _call(name, lstm_gates, *args), 4, ["i", "f", "g", "o"])
    _unchanged(name, ["x", "prev_h", "Wx", "Wh", "b"], before, args)
    for label, out in zip("ifgo", res):
        _array(name, label, out, (N, H), _stacked_hint(H))
    for label, out in zip("ifgo", res):
        _close(name, label, out, fx[label],
               hint="The 4H columns are ordered [i | f | g | o]; g uses tanh, the others sigmoid")
    _ok(name)


def check_lstm_step_forward(lstm_step_forward):
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
    _array(name, "next_h", next_h, (N, H), _stacked_hint(H))
    _array(name, "next_c", next_c, (N, H), _stacked_hint(H))
    _close(name, "next_c", next_c, fx["next_c"], hint="next_c = f * prev_c + i * g")
    _close(name, "next_h", next_h, fx["next_h"], hint="next_h = o * tanh(next_c)")
    _ok(name)


def check_lstm_forward(lstm_forward):
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
    _array(name, "h", h, (N, T, H), _stacked_hint(H))
    _close(name, "h[:, 0] (first step)", h[:, 0], fx["h"][:, 0],
           hint="The first step uses prev_h = h0 and prev_c = zeros")
    _close(name, "h", h, fx["h"],
           hint="Each step must feed its own next_h and next_c into the next step")
    _ok(name)


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
    for label, out, ref in zip(outs, res, args):
        _array(name, label, out, ref.shape)
    hints = {"dprev_c": "dprev_c = dc * f, where dc includes dnext_c and the path through next_h",
             "db": "db sums the pre-activation gradient over the batch"}
    for label, out in zip(outs, res):
        _close(name, label, out, fx[label], hint=hints.get(label))
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
    for label, out, ref in zip(outs, res, args):
        _array(name, label, out, ref.shape)
    hints = {"dWx": "weight gradients are summed over all time steps",
             "dWh": "weight gradients are summed over all time steps",
             "db": "weight gradients are summed over all time steps",
             "dh0": "carry dprev_h and dprev_c backwards from step to step",
             "dx": "at step t the upstream gradient on h is dh[:, t] plus dprev_h from step t+1"}
    for label, out in zip(outs, res):
        _close(name, label, out, fx[label], hint=hints.get(label))
    _ok(name)


def check_clip_grad_norm(clip_grad_norm):
    __tracebackhide__ = True
    name = "clip_grad_norm"
    fx = _get(name)
    keys = sorted({k.split(".")[1] for k in fx if k.startswith("grads.")})
    for case in ("big", "small"):
        grads = {k: fx[f"grads.{k}"] * (1.0 if case == "big" else 1e-3) for k in keys}
        before = {k: v.copy() for k, v in grads.items()}
        max_norm = float(fx["max_norm"])
        res = _tuple(name, _call(name, clip_grad_norm, grads, max_norm), 2,
                     ["clipped", "total_norm"])
        clipped, total = res
        if set(grads) != set(before) or any(not np.array_equal(grads[k], before[k]) for k in keys):
            _fail(name, "the input dict or its arrays were modified; return a new dict of new arrays")
        if not isinstance(clipped, dict):
            _fail(name, f"clipped should be a dict, got {type(clipped).__name__}")
        if clipped is grads:
            _fail(name, "clipped is the input dict itself; return a new dict")
        if set(clipped) != set(keys):
            _fail(name, f"clipped has keys {sorted(clipped)}, expected {keys}")
        try:
            total = float(total)
        except (TypeError, ValueError):
            _fail(name, f"total_norm should be a float, got {type(total).__name__}")
        want_total = float(np.sqrt(sum(np.sum(before[k] ** 2) for k in keys)))
        if not abs(total - want_total) <= 1e-9 * want_total:
            _fail(name, f"total_norm is {total!r}, expected {want_total!r}: the L2 norm of all "
                        f"arrays together, sqrt of the sum of all squared entries")
        scale = max_norm / (want_total + 1e-6) if want_total > max_norm else 1.0
        for k in keys:
            _array(name, f"clipped[{k!r}]", np.asarray(clipped[k]), before[k].shape)
            _close(name, f"clipped[{k!r}] ({'norm above' if case == 'big' else 'norm below'} "
                         f"max_norm)", np.asarray(clipped[k]), before[k] * scale,
                   hint="scale = max_norm / (total_norm + 1e-6) only when total_norm > max_norm")
    _ok(name)


def _forward_cache(name, fname, forward, args, labels, expected):
    """Run the student's forward pass for a backward check; its cache is what we need."""
    __tracebackhide__ = True
    try:
        res = _tuple(fname, _call(fname, forward, *[a.copy() for a in args]), len(labels), labels)
    except NotImplementedYet:
        _raise(NotImplementedYet(
            f"{name} cannot be checked yet: it needs the cache of your {fname}, which is not "
            f"implemented yet. Implement {fname} (and {name}), run their cells, then this one."
        ))
    except CheckFailure as exc:
        _raise(CheckFailure(f"{name} cannot be checked: calling your {fname} for its cache "
                           f"failed ({exc})"))
    for label, out, ref in zip(labels, res, expected):
        if (not isinstance(out, np.ndarray) or out.shape != ref.shape
                or not np.all(np.isfinite(out))
                or np.max(np.abs(out - ref)) > RTOL * max(np.max(np.abs(ref)), 1e-12)):
            _fail(name, f"{name} is checked with the cache of your {fname}, but its {label} is "
                        f"not correct yet: make {fname}'s check pass first")
    return res[-1]


def _caller_function(fname):
    """Find a function the notebook defined (e.g. your lstm_forward) in __main__."""
    import __main__
    fn = getattr(__main__, fname, None)
    if fn is None:
        _fail(fname, f"{fname} is not defined: run its cell first")
    return fn
