"""Exercises and how one is judged: probes on hidden cases, partial credit, diagnosis.

An assignment defines each exercise as
- `cases(rng)`: the hidden inputs (a list of dicts), drawn from a per-student generator;
- `probe(impl, case)`: calls the implementation's functions and returns named outputs;
- `weights`: output name -> share of the points;
- optionally `judge(ctx, exercise, case, student_out, expected_out)`: name -> (passed, message), for
  outputs that may also be right in another sense (e.g. a backward pass consistent with the
  student's own forward pass). The default compares every output with the reference.
- optionally `explain(name, actual, expected, case, seen)` -> str or None: a message for an output
  that failed, in the assignment's own terms (which part of it is wrong and why; `seen` holds the
  case's other outputs). None, or an error inside it, falls back to compare's message. Outputs
  explained by the same text share one sentence in the exercise's message.
- optionally `upstream`: the graded functions the exercise's function may call; the exercise is
  judged *on its own*: while it runs, the student's code that calls one of them by name gets the
  reference's answer from the grader (impl.StandIns; `kept`: fn -> positions of its results the
  reference keeps, such as a cache; `budget(case)`: calls of them one call may make). An output
  that fails that way gets a second chance through the student's own chain (the student's own
  upstream functions, `judge`'s second opinions), in a fresh session: the better of the two counts.
The same probe runs against the student (sandboxed), the reference and each misconception.

Cases marked `derive` are derivation cases (a backward pass must be derived, not differentiated
numerically): the grader times the reference's probe on them, and the student's last two calls
(its forward and backward passes) together may take `limits.derive_factor` times that, in wall
time (at least `derive_floor_seconds`) and in CPU time, all its processes counted (at least
`derive_cpu_floor_seconds`); a probe that is slower twice, or an output that is right on every
other case and wrong on a derivation case, costs the whole exercise and flags it. An output
wrong on a derivation case earns nothing.
Only values the grader computed decide: no exception, message or traceback excuses a case.
"""
from dataclasses import asdict, dataclass, field
from typing import Callable

from autograder.judging import compare
from autograder.process.impl import StudentFailure
from autograder.process.sandbox import GraderError


class Disqualified(StudentFailure):
    """The exercise earns nothing at all, whatever its other cases show (e.g. a backward pass
    computed by numerical differentiation); `flag` names why, for the TA."""
    status = "flagged"

    def __init__(self, fn, message, flag):
        super().__init__(fn, message)
        self.flag = flag


class TooSlow(StudentFailure):
    """Raised by a probe when its timed calls took longer than a derivation case allows;
    `forward_slow`: the student's forward pass was slow itself (then the exercise is flagged
    `too_slow` rather than `numerical_gradient`)."""
    status = "timeout"

    def __init__(self, fn, message, forward_slow):
        super().__init__(fn, message)
        self.forward_slow = forward_slow


@dataclass(frozen=True)
class Exercise:
    id: str
    cases: Callable
    probe: Callable
    weights: dict
    judge: Callable = None
    elementwise: bool = False   # compare entry by entry (sigmoid) rather than norm-wise
    explain: Callable = None    # explain(name, actual, expected, case, seen) -> str | None
    upstream: tuple = ()        # graded functions the grader stands in for, to judge this one on its own
    kept: dict = field(default_factory=dict)   # fn -> positions of its results the reference keeps (caches)
    budget: Callable = None     # budget(case) -> stand-in calls one call may make
    slow_message: Callable = None   # slow_message(case, TooSlow, numerical) -> the student's message
    tolerance: str = None       # the grading.yml tolerance its outputs are compared with (default: rtol,
                                # or sigmoid_rtol when elementwise)


@dataclass(frozen=True)
class Seen:
    """What an `explain` hook sees besides the failing output: the whole case."""
    exercise: str
    outputs: dict        # output name -> the student's value on this case
    expected: dict       # output name -> the reference's
    passed: dict         # output name -> passed on this case (second opinions included)
    results: dict        # exercise id -> ExerciseResult of the exercises graded before
    tolerance: dict


@dataclass
class Part:
    name: str
    weight: float
    passed: bool               # passed on every hidden case it was judged on
    message: str = ""
    credit: float = 0.0        # share of its cases passed


@dataclass
class ExerciseResult:
    id: str
    points: float
    max_points: float
    status: str                  # passed | partial | failed | not_implemented | error | timeout | crashed | missing | flagged
    message: str = ""
    parts: list = field(default_factory=list)
    misconception: dict = None
    modified_inputs: list = field(default_factory=list)
    cases: list = field(default_factory=list)    # per hidden case: "passed", "failed", "crashed", "excused"
    flags: list = field(default_factory=list)    # integrity findings for the TA (e.g. "numerical_gradient")

    def to_json(self):
        return asdict(self)


@dataclass
class Context:
    """What a judge may use: both implementations, tolerances, limits, earlier results, the catalogue."""
    student: object
    reference: object
    tolerance: dict
    limits: object = None                             # config.Limits (derivation cases' time)
    results: dict = field(default_factory=dict)       # exercise id -> ExerciseResult so far
    misconception_impls: list = field(default_factory=list)   # [(Misconception, LocalImpl)]

    @property
    def rtol(self):
        return self.tolerance["rtol"]


def exercise_rtol(exercise, ctx):
    """The tolerance of the exercise's comparisons with the reference (and its misconceptions)."""
    return ctx.tolerance[exercise.tolerance or ("sigmoid_rtol" if exercise.elementwise else "rtol")]


def default_judge(ctx, exercise, case, student_out, expected_out):
    rtol = exercise_rtol(exercise, ctx)
    return {name: compare.values(student_out[name], expected_out[name], rtol, exercise.elementwise)
            for name in exercise.weights if name in expected_out}


def first_of_each(failures):
    """[(case index, failure)] -> the first case of each distinct failure, in order."""
    seen = {}
    for k, failure in failures:
        seen.setdefault((type(failure), failure.fn, failure.message), (k, failure))
    return list(seen.values())


def failure_text(exercise, failure):
    """A failure in words, naming the function when the grader's call that failed was of another
    graded function (the forward pass whose cache a backward probe needs)."""
    if failure.fn == exercise.id:
        return failure.message
    return f"{failure.fn} (called by the grader to make the inputs of {exercise.id}) {failure.message}"


def label(case, k):
    return f"hidden case {k + 1}" + (f" ({case['label']})" if isinstance(case, dict) and case.get("label") else "")


@dataclass
class Attempt:
    """One case judged one way: the student's outputs and their verdicts, or the failure."""
    outputs: dict = None
    verdicts: dict = None       # name -> (passed, message)
    failure: StudentFailure = None
    on_its_own: bool = False    # judged with the grader standing in for its upstream

    @property
    def passed(self):
        return self.verdicts is not None and all(ok for ok, _ in self.verdicts.values())


def time_derivation_case(exercise, ctx, case):
    """On a derivation case, the limits of the student's forward and backward calls together,
    from the reference's own time on the same inputs (best of three, in this process): wall
    time case["seconds"], CPU time case["cpu_seconds"]; and the reference's forward pass alone,
    case["reference_forward"] = (wall, CPU) seconds. -> the reference's outputs."""
    wall, cpu, forward = [], [], []
    for _ in range(3):
        expected = exercise.probe(ctx.reference, case)
        calls = ctx.reference.log[-2:]
        wall.append(sum(c.seconds for c in calls))
        cpu.append(sum(c.cpu_seconds for c in calls))
        forward.append((calls[0].seconds, calls[0].cpu_seconds))
    limits = ctx.limits
    case["seconds"] = max(limits.derive_floor_seconds, limits.derive_factor * min(wall))
    case["cpu_seconds"] = max(limits.derive_cpu_floor_seconds, limits.derive_factor * min(cpu))
    case["reference_forward"] = tuple(min(f[k] for f in forward) for k in (0, 1))
    return expected


def attempt(exercise, ctx, case, expected_out, on_its_own, explained):
    """Run the probe on the student and judge it: on its own (the grader stands in for its
    upstream, outputs compared with the reference), or through the student's own chain (the
    exercise's judge, with its second opinions). `explained`: the outputs whose failure was
    already explained (only the first is: explaining is slow, and only it is shown)."""
    try:
        if on_its_own:
            budget = exercise.budget(case) if exercise.budget else 64
            with ctx.student.substituted(exercise.upstream, ctx.reference, exercise.kept, budget):
                student_out = exercise.probe(ctx.student, case)
        else:
            student_out = exercise.probe(ctx.student, case)
    except (Disqualified, TooSlow, GraderError):
        raise
    except StudentFailure as failure:
        return Attempt(failure=failure, on_its_own=on_its_own)
    judge = default_judge if on_its_own else exercise.judge or default_judge
    try:
        verdicts = judge(ctx, exercise, case, student_out, expected_out)
    except GraderError:
        raise
    except StudentFailure:      # a second opinion's own call failed: no second opinion
        verdicts = default_judge(ctx, exercise, case, student_out, expected_out)
    except Exception as exc:   # what came back was so malformed that judging it failed
        verdicts = {name: (False, f"could not be checked ({type(exc).__name__})") for name in exercise.weights}
    verdicts = {name: (ok, "" if ok else f"{name} {message}" if name in explained
                       else failure_message(exercise, ctx, name, message, case, student_out, expected_out, verdicts))
                for name, (ok, message) in verdicts.items()}
    explained |= {name for name, (ok, _) in verdicts.items() if not ok}   # the first failure is the one shown
    return Attempt(student_out, verdicts, on_its_own=on_its_own)


def better(first, second):
    """Two attempts at one case -> one: an output passes when it passes in either; a failing
    output keeps the first attempt's message (judged on its own: the function's own mistake)."""
    if second is None or first.passed:
        return first
    if first.verdicts is None:
        return second if second.verdicts is not None else first
    if second.verdicts is None:
        return first
    verdicts = {n: v if v[0] or not second.verdicts[n][0] else second.verdicts[n] for n, v in first.verdicts.items()}
    return Attempt(first.outputs, verdicts, on_its_own=first.on_its_own)


def run_case(exercise, ctx, case, expected_out, on_its_own, explained):
    """One case's attempt; on a derivation case a probe too slow is tried again once in a new
    session (a loaded machine), then raised."""
    try:
        return attempt(exercise, ctx, case, expected_out, on_its_own, explained)
    except TooSlow:
        if not case.get("derive"):
            raise
    ctx.student.new_session()
    return attempt(exercise, ctx, case, expected_out, on_its_own, explained)


def grade_exercise(exercise, ctx, cases, max_points, input_penalty):
    """Run the exercise's probe on every hidden case and judge it; credit is per case: an
    output earns its weight times the share of the cases it passed, and a crash or timeout on
    one case costs that case only. An exercise with `upstream` is judged on its own first; its
    failing cases are judged again through the student's own chain, in a new session (each of
    their second opinions in one of its own)."""
    ctx.student.log.clear()
    on_its_own = bool(exercise.upstream)
    expected = []
    for case in cases:
        derive = isinstance(case, dict) and case.get("derive")
        expected.append(time_derivation_case(exercise, ctx, case) if derive else exercise.probe(ctx.reference, case))
    attempts, explained, current = [None] * len(cases), set(), 0
    try:
        for current, case in enumerate(cases):
            try:
                attempts[current] = run_case(exercise, ctx, case, expected[current], on_its_own, explained)
            except TooSlow as slow:
                if not on_its_own:
                    raise
                attempts[current] = Attempt(failure=slow, on_its_own=True)   # its own chain may be faster
        if on_its_own and not all(a.passed for a in attempts):
            own_chain = set()
            ctx.student.new_session()   # (not a fresh() block: each second opinion needs a session of its own)
            for current, case in enumerate(cases):
                if not attempts[current].passed:
                    second = run_case(exercise, ctx, case, expected[current], False, own_chain)
                    attempts[current] = better(attempts[current], second)
    except Disqualified as flagged:
        return disqualified(exercise, max_points, len(cases), flagged.message, flagged.flag)
    except TooSlow as slow:
        case, numerical = cases[current], not slow.forward_slow
        message = exercise.slow_message(case, slow, numerical) if exercise.slow_message else slow.message
        return disqualified(exercise, max_points, len(cases), message,
                            "numerical_gradient" if numerical else "too_slow")
    return score(exercise, ctx, cases, max_points, input_penalty, attempts)


def disqualified(exercise, max_points, count, message, flag):
    return ExerciseResult(exercise.id, 0.0, max_points, "flagged", message, flags=[flag], cases=["flagged"] * count)


DERIVED_ONLY = ("is right on every smaller hidden case but not on a larger one, where a backward pass "
                "computed by numerical differentiation cannot keep up: such a pass earns no points "
                "(if you derived it, ask a TA to look at it)")


def upstream_failure(exercise, ctx, case, failure):
    """A grader-made call of another graded function failed on an ordinary case (the student's
    forward pass, say, which a backward probe needs for its cache) and that function lost points
    on its own cases: the case is not charged to this exercise. Never on a derivation case."""
    other = ctx.results.get(failure.fn)
    return (failure.fn != exercise.id and other is not None and other.points < other.max_points
            and not case.get("derive"))


def score(exercise, ctx, cases, max_points, input_penalty, attempts):
    """Per-case attempts -> the ExerciseResult (points, parts, messages, diagnosis)."""
    judged = [a.verdicts for a in attempts]
    states = ["passed" if a.passed else "failed" if a.verdicts is not None else "crashed" for a in attempts]
    charged = []
    for k, a in enumerate(attempts):
        if a.failure is not None:
            if upstream_failure(exercise, ctx, cases[k], a.failure):
                states[k] = "excused"
            else:
                charged.append((k, a.failure))
    derive = [k for k, case in enumerate(cases) if isinstance(case, dict) and case.get("derive")]
    parts = []
    for name, weight in exercise.weights.items():
        outcomes = [(k, v[name]) for k, v in enumerate(judged) if v is not None and name in v]
        outcomes += [(k, (False, "")) for k, _ in charged]
        first_failure = next((message for _, (ok, message) in outcomes if not ok and message), "")
        credit = sum(ok for _, (ok, _) in outcomes) / len(outcomes) if outcomes else 0.0
        wrong_on_derivation = any(not ok for k, (ok, _) in outcomes if k in derive)
        if wrong_on_derivation and derive and all(ok for k, (ok, _) in outcomes if k not in derive) \
                and any(k not in derive for k, _ in outcomes):
            return disqualified(exercise, max_points, len(cases), f"{exercise.id} {DERIVED_ONLY}",
                                "numerical_gradient")
        if wrong_on_derivation:
            credit = 0.0
        parts.append(Part(name, weight, bool(outcomes) and credit == 1.0, first_failure, credit))
    fraction = sum(p.weight * p.credit for p in parts) / sum(p.weight for p in parts)
    modified = sorted({n for record in ctx.student.log if record.fn == exercise.id for n in record.modified})
    points = round(max_points * fraction * ((1 - input_penalty) if modified else 1.0), 4)
    signatures = {(type(failure), failure.fn, failure.message) for _, failure in charged}
    if charged and all(v is None for v in judged) and len(signatures) == 1:
        status, messages = charged[0][1].status, [failure_text(exercise, charged[0][1])]
    else:
        status = "passed" if points == max_points else ("partial" if points > 0 else "failed")
        messages = [f"on {label(cases[k], k)}: {failure_text(exercise, failure)}"
                    for k, failure in first_of_each(charged)[:2]]
        messages += list(dict.fromkeys(p.message for p in parts if p.message))
    if modified:
        messages.append(f"modified its input(s) {', '.join(modified)}: a graded function must "
                        "leave its arguments unchanged (work on copies)")
    result = ExerciseResult(exercise.id, points, max_points, status, "; ".join(messages), parts,
                            modified_inputs=modified, cases=states)
    if status not in ("passed",) and len(charged) < len(cases):
        result.misconception = diagnose(exercise, ctx, cases, attempts, modified)
    return result


def failure_message(exercise, ctx, name, message, case, student_out, expected_out, judged):
    """A failing output's message: the exercise's explanation when it has one, else compare's."""
    if exercise.explain is not None:
        seen = Seen(exercise.id, student_out, expected_out, {n: bool(v[0]) for n, v in judged.items()},
                    ctx.results, ctx.tolerance)
        try:
            better = exercise.explain(name, student_out[name], expected_out[name], case, seen)
        except Exception:   # an explanation never costs a grade nor hides the plain verdict
            better = None
        if better:
            return better
    return f"{name} {message}"


def diagnose(exercise, ctx, cases, attempts, modified):
    """The first catalogued misconception whose outputs (and changed inputs) equal the student's
    on every case the student answered, each computed the way the student's were (on its own, or
    through its own chain); derivation cases, large ones that time the student's code, are left
    out: they would only make diagnosing slow."""
    rtol = exercise_rtol(exercise, ctx)
    answered = [(case, a) for case, a in zip(cases, attempts)
                if a.outputs is not None and not (isinstance(case, dict) and case.get("derive"))]
    if not answered:
        return None
    for misconception, impl in ctx.misconception_impls:
        if exercise.id not in misconception.affects:
            continue
        impl.log.clear()
        try:
            outs = []
            for case, a in answered:
                upstream = exercise.upstream if a.on_its_own else ()
                with impl.substituted(upstream, ctx.reference, exercise.kept, None):
                    outs.append(exercise.probe(impl, case))
        except Exception:   # a misconception may crash on inputs where the student's code did not
            continue
        changed = sorted({n for record in impl.log if record.fn == exercise.id for n in record.modified})
        if changed == modified and all(
                compare.values(a.outputs[name], m[name], rtol, exercise.elementwise)[0]
                for (_, a), m in zip(answered, outs) for name in exercise.weights if name in a.outputs and name in m):
            return {"name": misconception.name, "title": misconception.title,
                    "hint": misconception.hint, "section": misconception.section}
    return None
