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
The same probe runs against the student (sandboxed), the reference and each misconception.
"""
from dataclasses import asdict, dataclass, field
from typing import Callable

from autograder import compare
from autograder.impl import StudentFailure
from autograder.sandbox import GraderError


@dataclass(frozen=True)
class Exercise:
    id: str
    cases: Callable
    probe: Callable
    weights: dict
    judge: Callable = None
    elementwise: bool = False   # compare entry by entry (sigmoid) rather than norm-wise
    explain: Callable = None    # explain(name, actual, expected, case, seen) -> str | None


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
    passed: bool
    message: str = ""


@dataclass
class ExerciseResult:
    id: str
    points: float
    max_points: float
    status: str                  # passed | partial | failed | not_implemented | error | timeout | crashed | missing
    message: str = ""
    parts: list = field(default_factory=list)
    misconception: dict = None
    modified_inputs: list = field(default_factory=list)

    def to_json(self):
        return asdict(self)


@dataclass
class Context:
    """What a judge may use: both implementations, tolerances, earlier results, the catalogue."""
    student: object
    reference: object
    tolerance: dict
    results: dict = field(default_factory=dict)       # exercise id -> ExerciseResult so far
    misconception_impls: list = field(default_factory=list)   # [(Misconception, LocalImpl)]

    @property
    def rtol(self):
        return self.tolerance["rtol"]


def default_judge(ctx, exercise, case, student_out, expected_out):
    rtol = ctx.tolerance["sigmoid_rtol"] if exercise.elementwise else ctx.rtol
    return {name: compare.values(student_out[name], expected_out[name], rtol, exercise.elementwise)
            for name in exercise.weights}


def grade_exercise(exercise, ctx, cases, max_points, input_penalty):
    """Run the exercise's probe on every hidden case; all-or-nothing per output, summed by weight."""
    ctx.student.log.clear()
    verdicts = {name: (True, "") for name in exercise.weights}
    student_outs = []
    try:
        for case in cases:
            student_out = exercise.probe(ctx.student, case)
            expected_out = exercise.probe(ctx.reference, case)
            student_outs.append(student_out)
            judged = (exercise.judge or default_judge)(ctx, exercise, case, student_out, expected_out)
            for name, (ok, message) in judged.items():
                if not ok and verdicts[name][0]:
                    verdicts[name] = (False, failure_message(exercise, ctx, name, message, case,
                                                             student_out, expected_out, judged))
    except StudentFailure as failure:
        return ExerciseResult(exercise.id, 0.0, max_points, failure.status, failure.message)
    except GraderError:
        raise
    except Exception as exc:   # what came back was so malformed that judging it failed
        return ExerciseResult(exercise.id, 0.0, max_points, "error",
                              f"its result could not be checked ({type(exc).__name__}: {exc})")
    modified = sorted({n for record in ctx.student.log if record.fn == exercise.id for n in record.modified})
    parts = [Part(name, w, verdicts[name][0], verdicts[name][1]) for name, w in exercise.weights.items()]
    fraction = sum(p.weight for p in parts if p.passed) / sum(p.weight for p in parts)
    points = round(max_points * fraction * ((1 - input_penalty) if modified else 1.0), 4)
    status = "passed" if points == max_points else ("partial" if points > 0 else "failed")
    messages = list(dict.fromkeys(p.message for p in parts if not p.passed))
    if modified:
        messages.append(f"modified its input(s) {', '.join(modified)}: a graded function must "
                        "leave its arguments unchanged (work on copies)")
    result = ExerciseResult(exercise.id, points, max_points, status, "; ".join(messages), parts,
                            modified_inputs=modified)
    if status != "passed":
        result.misconception = diagnose(exercise, ctx, cases, student_outs, modified)
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


def diagnose(exercise, ctx, cases, student_outs, modified):
    """The first catalogued misconception whose outputs (and changed inputs) equal the student's."""
    rtol = ctx.tolerance["sigmoid_rtol"] if exercise.elementwise else ctx.rtol
    for misconception, impl in ctx.misconception_impls:
        if exercise.id not in misconception.affects:
            continue
        impl.log.clear()
        try:
            outs = [exercise.probe(impl, case) for case in cases]
        except Exception:   # a misconception may crash on inputs where the student's code did not
            continue
        changed = sorted({n for record in impl.log if record.fn == exercise.id for n in record.modified})
        if changed == modified and all(
                compare.values(s[name], m[name], rtol, exercise.elementwise)[0]
                for s, m in zip(student_outs, outs) for name in exercise.weights):
            return {"name": misconception.name, "title": misconception.title,
                    "hint": misconception.hint, "section": misconception.section}
    return None
