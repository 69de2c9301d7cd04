"""Hidden cases, probes and judges of the seven LSTM exercises (CONTRACT section 1).

Hidden inputs use what the public checks never do: N = 1, T = 1, D = 1, H = 1, D != H, a
non-zero initial state, saturated gates (weights large enough that many gates sit near 0 or 1)
and larger cases. Sizes are drawn per student and per submitted notebook.

Each function is judged on its own (autograder.judging.exercise): while it runs, the graded
functions it calls by name (its `upstream`: lstm_gates calls sigmoid, lstm_step_forward calls
lstm_gates, lstm_forward loops over lstm_step_forward, lstm_backward over lstm_step_backward)
answer as the reference would, computed by the grader; a step's cache then stays with the
grader, and the student's code holds a handle to it. One mistake upstream therefore costs only
the function that holds it. An output that fails that way gets a second chance through the
student's own chain, provided the student's upstream function is itself close to correct on the
very inputs used (within CLOSE of the reference there, or equal to the misconception already
named on its exercise):
- lstm_step_forward is also judged with the student's lstm_gates,
- lstm_forward with the student's lstm_step_forward,
- lstm_step_backward and lstm_backward against centered differences of the student's own
  forward function (directional derivatives along a random direction and step that depend on
  the gradients the student returned), and, when the student's forward behaves exactly like a
  misconception already named on a forward exercise, against that misconception's backward: a
  tanh forget gate costs lstm_gates and not also the backward exercises.
Every such second opinion runs the student's code in a fresh session, and what it answers is
verified on the spot. A forward pass whose differences vanish where the reference's do not
gives none.

The backward exercises' larger cases are derivation cases (drawn from the same ranges as the
forward exercises' larger cases; T 24-32, so that differences pushed through the recurrence cost
the square of the length while a derived pass costs the length): the student's forward and
backward calls together may take `derive_factor` (grading.yml) times the reference's on the
same inputs, in wall time and in CPU time; a backward pass computed by numerical
differentiation of a forward pass, in the backward or ahead of it in the forward, takes hundreds
to thousands of times that. Too slow twice, or right on the small cases and wrong on a larger
one, costs the whole exercise and flags it (autograder.judging.exercise).
"""
import hashlib

import numpy as np

from autograder.judging import compare
from autograder.judging.exercise import Exercise, TooSlow
from autograder.process.impl import CallTimedOut, StudentFailure, unpack

CLOSE = 0.25            # relative error under which an upstream function counts as "close"
GATES = ("i", "f", "g", "o")
STEP_GRADS = ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")
SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")
LARGER = dict(n=(6, 10), d=(24, 48), h=(48, 96), t=(24, 32))   # ranges (inclusive) of the larger cases' sizes
KEPT = {"lstm_step_forward": (2,), "lstm_forward": (1,)}      # results the reference keeps: its caches


# ---------------------------------------------------------------- hidden inputs

def sizes(rng, n=None, d=None, h=None):
    """(N, D, H), D != H unless one of them is given."""
    D = d or int(rng.integers(2, 7))
    H = h or int(rng.choice([k for k in range(3, 8) if k != D]))
    return (int(rng.integers(2, 5)) if n is None else n), D, H


def weights(rng, D, H, scale):
    """Wx (D, 4H), Wh (H, 4H), b (4H,); scale 1 is a typical init, 6 saturates most gates."""
    return (rng.normal(0, scale / np.sqrt(D), (D, 4 * H)),
            rng.normal(0, scale / np.sqrt(H), (H, 4 * H)),
            rng.normal(0, 0.5 * scale, 4 * H))


STEP_SHAPES = [  # (label, N, D, H, scale)
    ("one sample", 1, None, None, 1.0),
    ("hidden size 1", None, None, 1, 1.0),
    ("input size 1, saturated gates", None, 1, None, 6.0),
]
SEQUENCE_SHAPES = [  # (label, N, T, D, H, scale)
    ("one sample, one step", 1, 1, None, None, 1.0),
    ("hidden size 1", None, 3, None, 1, 1.0),
    ("input size 1", None, 3, 1, None, 1.0),
    ("saturated gates", None, 4, None, None, 6.0),
]
LARGER_CASES = 3     # of each exercise, after the shapes above


def larger_sizes(rng):
    """(N, T, D, H) of a larger case, each drawn from LARGER's range, D != H."""
    n, t, d = (int(rng.integers(lo, hi + 1)) for lo, hi in (LARGER["n"], LARGER["t"], LARGER["d"]))
    h = int(rng.choice([k for k in range(LARGER["h"][0], LARGER["h"][1] + 1) if k != d]))
    return n, t, d, h


def step_case(rng, label, n, d, h, scale):
    N, D, H = sizes(rng, n, d, h)
    Wx, Wh, b = weights(rng, D, H, scale)
    return dict(label=label, x=rng.normal(size=(N, D)), prev_h=rng.normal(0, 0.5, (N, H)),
                prev_c=rng.normal(size=(N, H)), Wx=Wx, Wh=Wh, b=b, dnext_h=rng.normal(size=(N, H)),
                dnext_c=rng.normal(size=(N, H)), seed=int(rng.integers(2**31)))


def sequence_case(rng, label, n, T, d, h, scale):
    N, D, H = sizes(rng, n, d, h)
    Wx, Wh, b = weights(rng, D, H, scale)
    return dict(label=label, x=rng.normal(size=(N, T, D)), h0=rng.normal(0, 0.5, (N, H)), Wx=Wx, Wh=Wh,
                b=b, dh=rng.normal(size=(N, T, H)), seed=int(rng.integers(2**31)))


def larger_step_cases(rng, derive):
    cases = []
    for _ in range(LARGER_CASES):
        n, _, d, h = larger_sizes(rng)
        cases.append(dict(step_case(rng, "a larger batch", n, d, h, 1.0), derive=derive))
    return cases


def larger_sequence_cases(rng, derive):
    cases = []
    for _ in range(LARGER_CASES):
        n, t, d, h = larger_sizes(rng)
        cases.append(dict(sequence_case(rng, "a longer sequence", n, t, d, h, 1.0), derive=derive))
    return cases


def step_cases(rng):
    """One-step inputs: one sample, H = 1, D = 1 with saturated gates, three larger batches."""
    return [step_case(rng, *shape) for shape in STEP_SHAPES] + larger_step_cases(rng, derive=False)


def step_backward_cases(rng):
    """step_cases, the larger ones being derivation cases."""
    return [step_case(rng, *shape) for shape in STEP_SHAPES] + larger_step_cases(rng, derive=True)


def sequence_cases(rng):
    """Sequences: N = T = 1, H = 1, D = 1, saturated gates (batches of 2-4 samples unless said
    otherwise), three longer sequences with larger batches."""
    return [sequence_case(rng, *shape) for shape in SEQUENCE_SHAPES] + larger_sequence_cases(rng, derive=False)


def backward_cases(rng):
    """sequence_cases, the longer ones being derivation cases."""
    return [sequence_case(rng, *shape) for shape in SEQUENCE_SHAPES] + larger_sequence_cases(rng, derive=True)


def stand_in_budget(case):
    """Calls of upstream stand-ins one call may make: one per sample and step, four times over
    (a loop over the batch inside a loop over time, a forward pass recomputed in the backward)."""
    x = case.get("x") if isinstance(case, dict) else None
    shape = np.shape(x) if x is not None else ()
    return 64 + 4 * (shape[0] if shape else 1) * (shape[1] if len(shape) == 3 else 1)


def sigmoid_cases(rng):
    """The whole range where exp overflows or underflows, a 3-d batch, and a 0-d array."""
    extremes = np.array([-1e4, -1000.0, -745.5, -709.9, -40.0, -1.0, -1e-8, 0.0,
                         1e-8, 1.0, 40.0, 709.9, 745.5, 1000.0, 1e4])
    shape = tuple(int(k) for k in rng.integers(1, 5, size=3))
    return [dict(label="extreme values", x=extremes, silent=True), dict(label="a 3-d array", x=rng.normal(0, 30, shape)),
            dict(label="a 0-d array", x=np.array(rng.normal()))]


def clip_cases(rng):
    """Clipping needed, not needed, and a single array far over the limit."""
    _, D, H = sizes(rng)
    grads = {"Wx": rng.normal(size=(D, 4 * H)), "Wh": rng.normal(size=(H, 4 * H)), "b": rng.normal(size=4 * H)}
    total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    return [dict(label="over the limit", grads=grads, max_norm=0.3 * total),
            dict(label="under the limit", grads=grads, max_norm=2.0 * total),
            dict(label="one array", grads={"W": 5.0 * rng.normal(size=(3, 2))}, max_norm=1.0)]


# ---------------------------------------------------------------- probes

def probe_sigmoid(impl, case):
    """values, and on the extreme case whether the call raised numpy floating-point errors
    (overflow, invalid value, divide by zero: established outside the student's process)."""
    y = impl.call("sigmoid", case["x"])
    return {"values": y, "silent": np.array(not impl.log[-1].fp_errors)} if case.get("silent") else {"values": y}


def probe_gates(impl, case):
    c = case
    return dict(zip(GATES, unpack(impl.call("lstm_gates", c["x"], c["prev_h"], c["Wx"], c["Wh"], c["b"]),
                                  GATES, "lstm_gates")))


def step_forward(impl, c, seconds=None):
    return unpack(impl.call("lstm_step_forward", c["x"], c["prev_h"], c["prev_c"], c["Wx"], c["Wh"], c["b"],
                            opaque=(2,), seconds=seconds), ("next_h", "next_c", "cache"), "lstm_step_forward")


def probe_step_forward(impl, case):
    next_h, next_c, _ = step_forward(impl, case)
    return {"next_h": next_h, "next_c": next_c}


def sequence_forward(impl, c, seconds=None):
    return unpack(impl.call("lstm_forward", c["x"], c["h0"], c["Wx"], c["Wh"], c["b"], opaque=(1,), seconds=seconds),
                  ("h", "cache"), "lstm_forward")


def probe_forward(impl, case):
    return {"h": sequence_forward(impl, case)[0]}


def derivation_limit(impl, case):
    """The wall-time limit of a derivation case's forward and backward calls together (None on
    other cases, and for the reference: the grader times it to set the limit)."""
    return case.get("seconds") if impl.enforces_limits else None


def timed_forward(impl, case, forward, fn):
    """forward(impl, case, seconds) before backward function `fn`: on a derivation case it too
    must end within the limit (a forward pass that differentiates ahead is too slow), else TooSlow
    (the stand-ins' round trips extend its deadline as they happen: channel.UPCALL_WALL_SECONDS)."""
    limit = derivation_limit(impl, case)
    try:
        return forward(impl, case, seconds=limit)
    except CallTimedOut:
        if limit is None:
            raise
        raise TooSlow(fn, "did not get its cache in time: the forward pass before it did not finish "
                      f"(the limit was {limit:.2f} s)", True) from None


def timed_backward(impl, case, fn, *args):
    """Call a backward function right after its forward pass; on a derivation case the two
    calls together must stay within the grader's limits from the reference's own time
    (case["seconds"] of wall time, case["cpu_seconds"] of CPU time), the time of the grader's
    stand-ins' round trips left out (impl.stand_in_wall, impl.stand_in_cpu), else TooSlow."""
    forward = impl.log[-1]
    limit = derivation_limit(impl, case)
    if limit is None:
        return impl.call(fn, *args)
    forward_wall = forward.seconds - impl.stand_in_wall(forward)
    if forward_wall >= limit:
        raise TooSlow(fn, f"did not get its cache in time: the forward pass before it took {forward_wall:.3f} s "
                      f"(the limit was {limit:.2f} s)", True)
    try:
        grads = impl.call(fn, *args, seconds=limit - forward_wall)
    except CallTimedOut:
        raise TooSlow(fn, f"did not finish in time (the limit was {limit:.2f} s)",
                      forward_slow(impl, case, forward)) from None
    backward = impl.log[-1]
    seconds = forward_wall + backward.seconds - impl.stand_in_wall(backward)
    if seconds > limit:
        raise TooSlow(fn, f"took {seconds:.3f} s with the forward pass before it (the limit was {limit:.2f} s)",
                      forward_slow(impl, case, forward))
    cpu = own_cpu(impl, [forward, backward], case["cpu_seconds"])
    if cpu is not None and cpu > case["cpu_seconds"]:
        raise TooSlow(fn, f"used {cpu:.3f} s of CPU time with the forward pass before it (the limit was "
                      f"{case['cpu_seconds']:.3f} s)", forward_slow(impl, case, forward))
    return grads


def own_cpu(impl, records, limit=0.0):
    """CPU seconds of the student's calls `records`, less their stand-ins' round trips (None where
    CPU time is not measured). Within `limit` without that, it is not worked out (it may take
    measuring what a round trip costs)."""
    if any(r.cpu_seconds is None for r in records):
        return None
    spent = sum(r.cpu_seconds for r in records)
    return spent if spent <= limit else spent - sum(impl.stand_in_cpu(r) for r in records)


def forward_slow(impl, case, forward):
    """Was the student's forward pass more than ten times the reference's (at least 1 ms), on
    the CPU clock where it is measured (a loaded machine does not change it), else the wall's?"""
    reference_wall, reference_cpu = case["reference_forward"]
    cpu = own_cpu(impl, [forward])
    own, reference = (forward.seconds - impl.stand_in_wall(forward), reference_wall) if cpu is None \
        else (cpu, reference_cpu)
    return own > 10 * max(reference, 1e-3)


def slow_message(case, slow, numerical):
    """What a student reads when a backward pass was too slow on a derivation case."""
    N, H = np.shape(case["x"])[0], np.shape(case["Wh"])[0]
    return (f"{slow.fn} {slow.message} on a larger hidden case (N = {N}, H = {H}), twice, where the forward and "
            "backward passes derived by hand take a few milliseconds together. "
            + ("A backward pass computed by numerical differentiation of the forward pass earns no points: "
               "the exercise is to derive it." if numerical else
               "Your forward pass is slow too: make both faster (vectorise over the batch with numpy)."))


def probe_step_backward(impl, case):
    _, _, cache = timed_forward(impl, case, step_forward, "lstm_step_backward")
    grads = timed_backward(impl, case, "lstm_step_backward", case["dnext_h"], case["dnext_c"], cache)
    return dict(zip(STEP_GRADS, unpack(grads, STEP_GRADS, "lstm_step_backward")))


def probe_backward(impl, case):
    _, cache = timed_forward(impl, case, sequence_forward, "lstm_backward")
    grads = timed_backward(impl, case, "lstm_backward", case["dh"], cache)
    return dict(zip(SEQ_GRADS, unpack(grads, SEQ_GRADS, "lstm_backward")))


def probe_clip(impl, case):
    clipped, total = unpack(impl.call("clip_grad_norm", case["grads"], case["max_norm"]),
                            ("clipped", "total_norm"), "clip_grad_norm")
    return {"clipped": clipped, "total_norm": total}


# ---------------------------------------------------------------- judges (no double penalty)

def finite_arrays(values):
    """The values as float arrays, or None when any is not a finite real array."""
    try:
        arrays = [np.asarray(v, dtype=float) for v in values]
    except (TypeError, ValueError):
        return None
    return arrays if all(np.all(np.isfinite(a)) for a in arrays) else None


def close(student_values, reference_values):
    """True when every student value is a finite array within CLOSE of the reference's."""
    student = finite_arrays(student_values)
    reference = [np.asarray(v, float) for v in reference_values]
    return (student is not None and len(student) == len(reference)
            and all(a.shape == r.shape and compare.relative_error(a, r)[0] < CLOSE
                    for a, r in zip(student, reference)))


def trusted_upstream(ctx, upstream, student_values, values_of):
    """May the student's values (computed by their own functions of the exercises `upstream`,
    in a fresh session) stand in for the expected ones? Only when, on these very inputs, they
    are within CLOSE of the reference's, or equal to those of a misconception named on one of
    those exercises (a forward mistake already paid for).

    values_of(impl) -> the same values computed by another implementation."""
    student = finite_arrays(student_values)
    if student is None:
        return False
    try:
        if close(student, values_of(ctx.reference)):
            return True
    except (ValueError, TypeError):
        pass
    named = {ctx.results[e].misconception["name"] for e in upstream
             if e in ctx.results and ctx.results[e].misconception}
    for misconception, impl in ctx.misconception_impls:
        if misconception.name in named:
            try:
                if all(compare.values(a, np.asarray(m, float), ctx.rtol)[0] for a, m in zip(student, values_of(impl))):
                    return True
            except Exception:   # the misconception cannot compute these
                continue
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
        except StudentFailure:
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
    with ctx.student.fresh():
        student_fwd = finite_arrays(forward_outputs(ctx.student, case))
    if student_fwd is None:
        return None
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
        with ctx.student.fresh():
            gates = unpack(ctx.student.call("lstm_gates", *args), GATES, "lstm_gates")
        if not trusted_upstream(ctx, ("lstm_gates",), gates, lambda impl: impl.call("lstm_gates", *args)):
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
        with ctx.student.fresh():
            for t in range(x.shape[1]):
                step = dict(x=x[:, t], prev_h=prev_h, prev_c=prev_c, Wx=Wx, Wh=Wh, b=b)
                inputs.append(step)
                prev_h, prev_c, _ = step_forward(ctx.student, step)
                if np.shape(prev_h) != h0.shape or np.shape(prev_c) != h0.shape:
                    return None     # states of the wrong shape (of any size) go no further
                steps += [prev_h, prev_c]
                prev_h, prev_c = np.asarray(prev_h, float), np.asarray(prev_c, float)
        if not trusted_upstream(ctx, ("lstm_gates", "lstm_step_forward"), steps,
                                lambda impl: [v for step in inputs for v in step_forward(impl, step)[:2]]):
            return None
        return {"h": compare.values(student_out["h"], np.stack(steps[::2], axis=1), ctx.rtol)}
    return judge_with_fallback(ctx, exercise, student_out, expected_out, with_own_steps)


def perturbation_rng(case, student_out):
    """Directions and steps nobody can know in advance: they depend on the gradients the
    student's backward returned (and on the hidden case, itself seeded by the notebook)."""
    digest = hashlib.sha256(str(case["seed"]).encode())
    for value in student_out.values():
        digest.update(np.ascontiguousarray(np.asarray(value, dtype=float)).tobytes())
    return np.random.default_rng(int.from_bytes(digest.digest()[:8], "big"))


def directional_check(ctx, forward, inputs, grads, names, rng):
    """Each gradient vs centered differences of the student's own forward pass along a random
    direction, with a random step; {grad name: (passed, message)}, or None when the student's
    forward is not a function to trust here (its values at the perturbed points are not close
    to the reference's, or its differences vanish where the reference's do not).

    forward(impl, inputs) -> (list of output arrays, loss); the student's run in one fresh session."""
    h, rtol = ctx.tolerance["gradient_step"], ctx.tolerance["gradient_rtol"]
    verdicts, points = {}, []
    for arg, name in names:
        grad, base = np.asarray(grads[name], float), inputs[arg]
        if grad.shape != base.shape:
            verdicts[name] = (False, f"{name} has shape {grad.shape}, expected {base.shape}")
            continue
        v, step = rng.normal(size=base.shape), h * rng.uniform(0.5, 2.0)   # one random direction finds any error
        points.append((name, v, step, {**inputs, arg: base + step * v}, {**inputs, arg: base - step * v}))
    with ctx.student.fresh():
        student = [(forward(ctx.student, plus), forward(ctx.student, minus)) for _, _, _, plus, minus in points]
    for (name, v, step, plus, minus), (s_plus, s_minus) in zip(points, student):
        r_plus, r_minus = forward(ctx.reference, plus), forward(ctx.reference, minus)
        if not (close(s_plus[0], r_plus[0]) and close(s_minus[0], r_minus[0])):
            return None
        numeric = (s_plus[1] - s_minus[1]) / (2 * step)
        reference_numeric = (r_plus[1] - r_minus[1]) / (2 * step)
        if abs(reference_numeric) > 1e-6 and abs(numeric) < 1e-3 * abs(reference_numeric):
            return None        # differences that vanish: a forward that remembers, not a function
        if name in verdicts:
            continue
        analytic = float(np.sum(np.asarray(grads[name], float) * v))
        err = abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-10)
        if not np.isfinite(analytic) or not np.isfinite(numeric) or not err <= rtol:
            verdicts[name] = (False, f"{name} disagrees with a numerical gradient of your own "
                                     f"forward pass (relative error {err:.1e})")
    return {name: verdicts.get(name, (True, "")) for _, name in names}


def judge_step_backward(ctx, exercise, case, student_out, expected_out):
    def against_own_forward():
        def forward(impl, inputs):
            next_h, next_c, _ = step_forward(impl, inputs)
            return [next_h, next_c], float(np.sum(case["dnext_h"] * next_h) + np.sum(case["dnext_c"] * next_c))
        names = list(zip(("x", "prev_h", "prev_c", "Wx", "Wh", "b"), STEP_GRADS))
        with ctx.student.fresh():    # one session for the forward pass and its differences
            if not trusted_upstream(ctx, ("lstm_gates", "lstm_step_forward"), step_forward(ctx.student, case)[:2],
                                    lambda impl: step_forward(impl, case)[:2]):
                return None
            return directional_check(ctx, forward, case, student_out, names, perturbation_rng(case, student_out))

    def like_misconception():
        return like_named_misconception(ctx, exercise, case, student_out, lambda impl, c: step_forward(impl, c)[:2],
                                        ("lstm_gates", "lstm_step_forward"))
    return judge_with_fallback(ctx, exercise, student_out, expected_out, against_own_forward, like_misconception)


def judge_backward(ctx, exercise, case, student_out, expected_out):
    def against_own_forward():
        def forward(impl, inputs):
            h = sequence_forward(impl, inputs)[0]
            return [h], float(np.sum(case["dh"] * h))
        names = list(zip(("x", "h0", "Wx", "Wh", "b"), SEQ_GRADS))
        with ctx.student.fresh():    # one session for the forward pass and its differences
            if not trusted_upstream(ctx, ("lstm_gates", "lstm_step_forward", "lstm_forward"),
                                    sequence_forward(ctx.student, case)[:1],
                                    lambda impl: sequence_forward(impl, case)[:1]):
                return None
            return directional_check(ctx, forward, case, student_out, names, perturbation_rng(case, student_out))

    def like_misconception():
        return like_named_misconception(ctx, exercise, case, student_out, lambda impl, c: sequence_forward(impl, c)[:1],
                                        ("lstm_gates", "lstm_step_forward", "lstm_forward"))
    return judge_with_fallback(ctx, exercise, student_out, expected_out, against_own_forward, like_misconception)


def explain(name, actual, expected, case, seen):
    """Feedback that names the mistake (assignments/lstm/explain.py, imported when first needed)."""
    from assignments.lstm import explain as lstm_explain
    return lstm_explain.explain(name, actual, expected, case, seen)


UPSTREAM = {   # the graded functions each may call by name, which the grader stands in for
    "lstm_gates": ("sigmoid",),
    "lstm_step_forward": ("sigmoid", "lstm_gates"),
    "lstm_forward": ("sigmoid", "lstm_gates", "lstm_step_forward"),
    "lstm_step_backward": ("sigmoid", "lstm_gates"),
    "lstm_backward": ("sigmoid", "lstm_gates", "lstm_step_forward", "lstm_step_backward"),
}
ON_ITS_OWN = dict(kept=KEPT, budget=stand_in_budget)

EXERCISES = [
    Exercise("sigmoid", sigmoid_cases, probe_sigmoid, {"values": 3, "silent": 1}, elementwise=True),
    Exercise("lstm_gates", step_cases, probe_gates, dict.fromkeys(GATES, 1), explain=explain,
             upstream=UPSTREAM["lstm_gates"], **ON_ITS_OWN),
    Exercise("lstm_step_forward", step_cases, probe_step_forward, {"next_h": 1, "next_c": 1}, judge_step_forward,
             explain=explain, upstream=UPSTREAM["lstm_step_forward"], **ON_ITS_OWN),
    Exercise("lstm_forward", sequence_cases, probe_forward, {"h": 1}, judge_forward, explain=explain,
             upstream=UPSTREAM["lstm_forward"], **ON_ITS_OWN),
    Exercise("lstm_step_backward", step_backward_cases, probe_step_backward, dict.fromkeys(STEP_GRADS, 1),
             judge_step_backward, explain=explain, upstream=UPSTREAM["lstm_step_backward"],
             slow_message=slow_message, **ON_ITS_OWN),
    Exercise("lstm_backward", backward_cases, probe_backward, dict.fromkeys(SEQ_GRADS, 1), judge_backward,
             explain=explain, upstream=UPSTREAM["lstm_backward"], slow_message=slow_message, **ON_ITS_OWN),
    Exercise("clip_grad_norm", clip_cases, probe_clip, {"clipped": 2, "total_norm": 1}, explain=explain,
             tolerance="clip_rtol"),
]
