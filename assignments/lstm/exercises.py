"""Hidden cases, probes and judges of the seven LSTM exercises (CONTRACT section 1).

Hidden inputs use what the public checks never do: N = 1, T = 1, D != H, a non-zero initial
state and saturated gates (weights large enough that many gates sit near 0 or 1). Sizes are
drawn per student.

No double penalty: an output that differs from the reference is still right when it is
right *given the student's own upstream function*, provided that function is itself close
to correct (passed, diagnosed as a known misconception, or within CLOSE of the reference):
- lstm_step_forward is also judged with the student's lstm_gates,
- lstm_forward with the student's lstm_step_forward,
- lstm_step_backward and lstm_backward against centered differences of the student's own
  forward function (directional derivatives along random directions), and, when the student's
  forward behaves exactly like a misconception already named on a forward exercise, against
  that misconception's backward: a tanh forget gate costs lstm_gates and not also the backward
  exercises, whose sigmoid derivative no longer fits the gate.
"""
import numpy as np

from autograder import compare
from autograder.exercise import Exercise
from autograder.impl import StudentFailure, Unavailable, unpack

CLOSE = 0.25            # relative error under which an upstream function counts as "close"
GATES = ("i", "f", "g", "o")
STEP_GRADS = ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")
SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")


# ---------------------------------------------------------------- hidden inputs

def sizes(rng, n=None):
    """(N, D, H) with D != H."""
    D = int(rng.integers(2, 7))
    H = int(rng.choice([h for h in range(3, 8) if h != D]))
    return (int(rng.integers(2, 5)) if n is None else n), D, H


def weights(rng, D, H, scale):
    """Wx (D, 4H), Wh (H, 4H), b (4H,); scale 1 is a typical init, 6 saturates most gates."""
    return (rng.normal(0, scale / np.sqrt(D), (D, 4 * H)),
            rng.normal(0, scale / np.sqrt(H), (H, 4 * H)),
            rng.normal(0, 0.5 * scale, 4 * H))


def step_cases(rng):
    """One-step inputs: a single sample, a batch, and a batch with saturated gates."""
    cases = []
    for n, scale in ((1, 1.0), (None, 1.0), (None, 6.0)):
        N, D, H = sizes(rng, n)
        Wx, Wh, b = weights(rng, D, H, scale)
        cases.append(dict(x=rng.normal(size=(N, D)), prev_h=rng.normal(0, 0.5, (N, H)),
                          prev_c=rng.normal(size=(N, H)), Wx=Wx, Wh=Wh, b=b,
                          dnext_h=rng.normal(size=(N, H)), dnext_c=rng.normal(size=(N, H)),
                          seed=int(rng.integers(2**31))))
    return cases


def sequence_cases(rng):
    """Sequence inputs: N = T = 1, a batch over several steps, and saturated gates."""
    cases = []
    for n, T, scale in ((1, 1, 1.0), (None, int(rng.integers(4, 7)), 1.0), (None, 4, 6.0)):
        N, D, H = sizes(rng, n)
        Wx, Wh, b = weights(rng, D, H, scale)
        cases.append(dict(x=rng.normal(size=(N, T, D)), h0=rng.normal(0, 0.5, (N, H)), Wx=Wx, Wh=Wh,
                          b=b, dh=rng.normal(size=(N, T, H)), seed=int(rng.integers(2**31))))
    return cases


def sigmoid_cases(rng):
    """The whole range where exp overflows or underflows, a 3-d batch, and a 0-d array."""
    extremes = np.array([-1e4, -1000.0, -745.5, -709.9, -40.0, -1.0, -1e-8, 0.0,
                         1e-8, 1.0, 40.0, 709.9, 745.5, 1000.0, 1e4])
    shape = tuple(int(k) for k in rng.integers(1, 5, size=3))
    return [dict(x=extremes), dict(x=rng.normal(0, 30, shape)), dict(x=np.array(rng.normal()))]


def clip_cases(rng):
    """Clipping needed, not needed, and a single array far over the limit."""
    _, D, H = sizes(rng)
    grads = {"Wx": rng.normal(size=(D, 4 * H)), "Wh": rng.normal(size=(H, 4 * H)), "b": rng.normal(size=4 * H)}
    total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    return [dict(grads=grads, max_norm=0.3 * total), dict(grads=grads, max_norm=2.0 * total),
            dict(grads={"W": 5.0 * rng.normal(size=(3, 2))}, max_norm=1.0)]


# ---------------------------------------------------------------- probes

def probe_sigmoid(impl, case):
    y = impl.call("sigmoid", case["x"])
    return {"values": y, "silent": np.array(not impl.log[-1].warnings)}


def probe_gates(impl, case):
    c = case
    return dict(zip(GATES, unpack(impl.call("lstm_gates", c["x"], c["prev_h"], c["Wx"], c["Wh"], c["b"]),
                                  GATES, "lstm_gates")))


def step_forward(impl, c):
    return unpack(impl.call("lstm_step_forward", c["x"], c["prev_h"], c["prev_c"], c["Wx"], c["Wh"], c["b"],
                            opaque=(2,)), ("next_h", "next_c", "cache"), "lstm_step_forward")


def probe_step_forward(impl, case):
    next_h, next_c, _ = step_forward(impl, case)
    return {"next_h": next_h, "next_c": next_c}


def sequence_forward(impl, c):
    return unpack(impl.call("lstm_forward", c["x"], c["h0"], c["Wx"], c["Wh"], c["b"], opaque=(1,)),
                  ("h", "cache"), "lstm_forward")


def probe_forward(impl, case):
    return {"h": sequence_forward(impl, case)[0]}


def probe_step_backward(impl, case):
    _, _, cache = step_forward(impl, case)
    grads = impl.call("lstm_step_backward", case["dnext_h"], case["dnext_c"], cache)
    return dict(zip(STEP_GRADS, unpack(grads, STEP_GRADS, "lstm_step_backward")))


def probe_backward(impl, case):
    _, cache = sequence_forward(impl, case)
    grads = impl.call("lstm_backward", case["dh"], cache)
    return dict(zip(SEQ_GRADS, unpack(grads, SEQ_GRADS, "lstm_backward")))


def probe_clip(impl, case):
    clipped, total = unpack(impl.call("clip_grad_norm", case["grads"], case["max_norm"]),
                            ("clipped", "total_norm"), "clip_grad_norm")
    return {"clipped": clipped, "total_norm": total}


# ---------------------------------------------------------------- judges (no double penalty)

def upstream_close(ctx, exercise_id, student_values, reference_values):
    """May an exercise be judged on top of the student's own `exercise_id` function?

    reference_values() -> the reference's values for student_values, asked only when the
    earlier verdict does not settle it (a replayed reference may not know them)."""
    earlier = ctx.results.get(exercise_id)
    if earlier is not None and (earlier.status == "passed" or earlier.misconception):
        return True
    try:
        return all(compare.relative_error(np.asarray(s, float), np.asarray(r, float))[0] < CLOSE
                   for s, r in zip(student_values, reference_values()))
    except (ValueError, TypeError):   # wrong shapes: not close
        return False


def judge_with_fallback(ctx, exercise, student_out, expected_out, *alternatives):
    """Compare with the reference; outputs that fail get further chances, in order, against
    each alternative() -> {name: (passed, message)} or None (computed only when needed)."""
    verdicts = {n: compare.values(student_out[n], expected_out[n], ctx.rtol) for n in exercise.weights}
    for alternative in alternatives:
        if all(ok for ok, _ in verdicts.values()):
            break
        try:
            other = alternative()
        except (StudentFailure, Unavailable):
            continue
        if other:
            verdicts = {n: (v if v[0] or not other[n][0] else other[n]) for n, v in verdicts.items()}
    return verdicts


def like_named_misconception(ctx, exercise, case, student_out, forward_outputs, upstream):
    """Third opinion for a backward exercise: {name: (passed, message)} or None.

    forward_outputs(impl, case) -> list of arrays; upstream: the forward exercise ids that
    forward pass is built on. When the student's forward gives exactly the outputs of a
    misconception named on one of them, backward outputs equal to that misconception's pass
    (the chapter's backward on the mistaken forward's cache): the forward mistake was paid
    for where it was made. A mistake of the backward itself is never excused this way."""
    impls = {m.name: impl for m, impl in ctx.misconception_impls}
    named = [ctx.results[e].misconception["name"] for e in upstream
             if e in ctx.results and ctx.results[e].misconception]
    candidates = [impls[name] for name in dict.fromkeys(named) if name in impls]
    if not candidates:
        return None
    student_fwd = forward_outputs(ctx.student, case)   # one more sandbox call: only when needed
    for impl in candidates:
        try:
            fwd, out = forward_outputs(impl, case), exercise.probe(impl, case)
        except Exception:   # crashes where the student's code did not, or no recorded answer
            continue
        if all(compare.values(s, m, ctx.rtol)[0] for s, m in zip(student_fwd, fwd)):
            return {n: compare.values(student_out[n], out[n], ctx.rtol) for n in exercise.weights}
    return None


def judge_step_forward(ctx, exercise, case, student_out, expected_out):
    def with_own_gates():
        args = [case[k] for k in ("x", "prev_h", "Wx", "Wh", "b")]
        gates = unpack(ctx.student.call("lstm_gates", *args), GATES, "lstm_gates")
        if not upstream_close(ctx, "lstm_gates", gates, lambda: ctx.reference.call("lstm_gates", *args)):
            return None
        i, f, g, o = (np.asarray(v, float) for v in gates)
        next_c = f * case["prev_c"] + i * g
        return {"next_c": compare.values(student_out["next_c"], next_c, ctx.rtol),
                "next_h": compare.values(student_out["next_h"], o * np.tanh(next_c), ctx.rtol)}
    return judge_with_fallback(ctx, exercise, student_out, expected_out, with_own_gates)


def judge_forward(ctx, exercise, case, student_out, expected_out):
    def with_own_steps():
        x, h0, Wx, Wh, b = (case[k] for k in ("x", "h0", "Wx", "Wh", "b"))
        prev_h, prev_c, steps, inputs = h0, np.zeros_like(h0), [], []
        for t in range(x.shape[1]):
            step = dict(x=x[:, t], prev_h=prev_h, prev_c=prev_c, Wx=Wx, Wh=Wh, b=b)
            inputs.append(step)
            prev_h, prev_c, _ = step_forward(ctx.student, step)
            steps.append(np.asarray(prev_h, float))
            prev_h, prev_c = np.asarray(prev_h, float), np.asarray(prev_c, float)
        if not upstream_close(ctx, "lstm_step_forward", steps,
                              lambda: [step_forward(ctx.reference, step)[0] for step in inputs]):
            return None
        return {"h": compare.values(student_out["h"], np.stack(steps, axis=1), ctx.rtol)}
    return judge_with_fallback(ctx, exercise, student_out, expected_out, with_own_steps)


def directional_check(ctx, loss, inputs, grads, names, seed):
    """Each gradient vs centered differences of `loss` along two random directions.

    loss(dict of inputs) -> float, built on the student's own forward function;
    returns {grad name: (passed, message)}.
    """
    h, rtol = ctx.tolerance["gradient_step"], ctx.tolerance["gradient_rtol"]
    rng = np.random.default_rng(seed)
    verdicts = {}
    for (arg, name) in names:
        grad, base = np.asarray(grads[name], float), inputs[arg]
        if grad.shape != base.shape:
            verdicts[name] = (False, f"{name} has shape {grad.shape}, expected {base.shape}")
            continue
        verdicts[name] = (True, "")
        for _ in range(2):
            v = rng.normal(size=base.shape)
            plus = loss({**inputs, arg: base + h * v})
            minus = loss({**inputs, arg: base - h * v})
            numeric, analytic = (plus - minus) / (2 * h), float(np.sum(grad * v))
            err = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-10)
            if not np.isfinite(analytic) or err > rtol:
                verdicts[name] = (False, f"{name} disagrees with a numerical gradient of your own "
                                         f"forward pass (relative error {err:.1e})")
                break
    return verdicts


def judge_step_backward(ctx, exercise, case, student_out, expected_out):
    def against_own_forward():
        student_fwd = step_forward(ctx.student, case)[:2]
        if not upstream_close(ctx, "lstm_step_forward", student_fwd,
                              lambda: step_forward(ctx.reference, case)[:2]):
            return None

        def loss(inputs):
            next_h, next_c, _ = step_forward(ctx.student, inputs)
            return float(np.sum(case["dnext_h"] * next_h) + np.sum(case["dnext_c"] * next_c))
        names = list(zip(("x", "prev_h", "prev_c", "Wx", "Wh", "b"), STEP_GRADS))
        return directional_check(ctx, loss, case, student_out, names, case["seed"])

    def like_misconception():
        return like_named_misconception(ctx, exercise, case, student_out, lambda impl, c: step_forward(impl, c)[:2],
                                        ("lstm_gates", "lstm_step_forward"))
    return judge_with_fallback(ctx, exercise, student_out, expected_out, against_own_forward, like_misconception)


def judge_backward(ctx, exercise, case, student_out, expected_out):
    def against_own_forward():
        if not upstream_close(ctx, "lstm_forward", sequence_forward(ctx.student, case)[:1],
                              lambda: sequence_forward(ctx.reference, case)[:1]):
            return None

        def loss(inputs):
            return float(np.sum(case["dh"] * sequence_forward(ctx.student, inputs)[0]))
        names = list(zip(("x", "h0", "Wx", "Wh", "b"), SEQ_GRADS))
        return directional_check(ctx, loss, case, student_out, names, case["seed"])

    def like_misconception():
        return like_named_misconception(ctx, exercise, case, student_out, lambda impl, c: sequence_forward(impl, c)[:1],
                                        ("lstm_gates", "lstm_step_forward", "lstm_forward"))
    return judge_with_fallback(ctx, exercise, student_out, expected_out, against_own_forward, like_misconception)


def explain(name, actual, expected, case, seen):
    """Feedback that names the mistake (assignments/lstm/explain.py); None where that module is
    not shipped (the Gradescope zip carries this module alone): compare's message then."""
    try:
        from assignments.lstm import explain as lstm_explain
    except ImportError:
        return None
    return lstm_explain.explain(name, actual, expected, case, seen)


EXERCISES = [
    Exercise("sigmoid", sigmoid_cases, probe_sigmoid, {"values": 3, "silent": 1}, elementwise=True),
    Exercise("lstm_gates", step_cases, probe_gates, dict.fromkeys(GATES, 1), explain=explain),
    Exercise("lstm_step_forward", step_cases, probe_step_forward, {"next_h": 1, "next_c": 1}, judge_step_forward,
             explain=explain),
    Exercise("lstm_forward", sequence_cases, probe_forward, {"h": 1}, judge_forward, explain=explain),
    Exercise("lstm_step_backward", step_cases, probe_step_backward, dict.fromkeys(STEP_GRADS, 1), judge_step_backward,
             explain=explain),
    Exercise("lstm_backward", sequence_cases, probe_backward, dict.fromkeys(SEQ_GRADS, 1), judge_backward,
             explain=explain),
    Exercise("clip_grad_norm", clip_cases, probe_clip, {"clipped": 2, "total_norm": 1}, explain=explain),
]
