"""Hidden feedback that names the mistake: the `explain` hook of the LSTM exercises.

The engine (autograder.judging.exercise) asks `explain(name, actual, expected, case, seen)` for a
better message whenever an output fails against the reference. This module answers in the
terms of Section 3.4, with the same attribution the public checks give in the notebook (the
functions `explain_outputs`, `relation`, `gate_blocks` of `seqlab/checks.py`, shipped to
students and read here from the source folder):

- for arrays with a 4H axis, which gate block is wrong and which are right, and what that
  points at ("the g block of db, dWx and dWh is wrong; i, f and o are right: check the
  derivative of tanh for g"), or that the blocks are stacked in another order;
- an array that is all zeros, off by a sign or a constant factor, transposed, reversed or
  shifted in time, or has a wrong axis;
- outputs judged in the order that isolates a cause: dprev_c and db before dx and dprev_h,
  the time steps of dx before the weights in lstm_backward;
- when the forward exercise whose cache a backward pass reads already lost points
  (ctx.results), that part of the errors may come from there ("your lstm_step_forward
  (Exercise 3) already loses points, and lstm_step_backward works on its cache"): every other
  function is judged on its own (the grader stands in for the functions it calls), so its
  errors are its own.

Messages name exercises as the notebook does and use the names of the judged function's
arguments and outputs; they never contain input values or reference code. Every output of
a case gets the same text, which the engine prints once.
"""
import importlib.util
from pathlib import Path

import numpy as np

SEQLAB_CHECKS = Path(__file__).resolve().parents[2] / "source" / "lstm" / "seqlab" / "checks.py"
LSTM_EXERCISES = ("lstm_gates", "lstm_step_forward", "lstm_forward", "lstm_step_backward", "lstm_backward")
BUILT_ON = {   # backward exercise -> the forward function whose cache it reads (the grader cannot stand in for it)
    "lstm_step_backward": ("lstm_step_forward", "lstm_step_backward works on its cache"),
    "lstm_backward": ("lstm_forward", "lstm_backward works on its cache"),
}
_loaded = {}


def attribution():
    """The public checks' module (seqlab/checks.py), loaded once from the source folder."""
    if "checks" not in _loaded:
        spec = importlib.util.spec_from_file_location("_lstm_public_checks", SEQLAB_CHECKS)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded["checks"] = module
    return _loaded["checks"]


def upstream_note(exercise, results):
    """'your lstm_step_backward (Exercise 5) already loses points: ...' or ''."""
    if exercise not in BUILT_ON:
        return ""
    upstream, why = BUILT_ON[exercise]
    earlier = results.get(upstream)
    if earlier is None or earlier.status == "passed":
        return ""
    label = f"Exercise {attribution().EXERCISE_NUMBER[upstream]}"
    return (f"Your {upstream} ({label}) already loses points, and {why}: part of these errors may come "
            f"from there, so fix {label} first. ")


def float64_arrays(value):
    """True when value is a float64 numpy array, or a dict of them: what the explanations read.
    Anything else (float32, a list) is told by the comparison's own message, as the public
    check tells it ("has dtype float32, expected float64"): read as numbers, it would pass
    for a value off by a constant factor of about 1."""
    if isinstance(value, dict):
        return all(float64_arrays(v) for v in value.values())
    return isinstance(value, np.ndarray) and value.dtype == np.float64


def explain(name, actual, expected, case, seen):
    """The engine's hook: one message for the failing outputs of this case, or None."""
    if not all(float64_arrays(v) for v in seen.outputs.values()):
        return None
    checks = attribution()
    rtol = seen.tolerance["rtol"]
    if seen.exercise in LSTM_EXERCISES:
        text = checks.explain_outputs(seen.exercise, seen.outputs, seen.expected, rtol, dict(seen.passed))
        if not text:
            return None
        if seen.exercise == "lstm_step_backward" and "gradient on next_c" in text:
            text += next_c_gradient(case, seen, rtol)
        return upstream_note(seen.exercise, seen.results) + text
    if seen.exercise == "clip_grad_norm":
        return explain_clip(name, actual, expected, rtol, checks)
    return None


def next_c_gradient(case, seen, rtol):
    """Which term the student's gradient on next_c lacks, read back from their dprev_c
    (= that gradient times f), when their forward pass is right; '' when it cannot tell."""
    from solutions import lstm as reference   # the grader's process only
    earlier = seen.results.get("lstm_step_forward")
    if earlier is None or earlier.status != "passed":
        return ""
    c = case
    i, f, g, o = reference.lstm_gates(c["x"], c["prev_h"], c["Wx"], c["Wh"], c["b"])
    return attribution().next_c_gradient_story(seen.outputs["dprev_c"], f, o, f * c["prev_c"] + i * g,
                                               c["dnext_h"], c["dnext_c"])


def explain_clip(name, actual, expected, rtol, checks):
    """total_norm off by a factor, a clipped array zero or scaled wrongly; else None."""
    if name == "total_norm":
        rel = checks.relation(actual, expected, rtol)
        if rel and "factor" in rel:
            return (f"total_norm {rel}: it is the square root of the sum of the squares of every "
                    "entry of every array")
        return None
    if name == "clipped" and isinstance(actual, dict) and isinstance(expected, dict) and set(actual) == set(expected):
        for key in sorted(expected):   # dict order is the student's
            rel = checks.relation(actual[key], expected[key], rtol)
            if rel:
                return (f"clipped[{key!r}] {rel}: when total_norm > max_norm every array is multiplied by "
                        "max_norm / (total_norm + 1e-6), otherwise it comes back unchanged in value")
    return None
