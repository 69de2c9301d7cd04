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

from autograder.judging import compare
from autograder.process.impl import StudentFailure
from autograder.process.sandbox import GraderError


class Disqualified(StudentFailure):
    """Raised by a probe when the exercise earns nothing at all, whatever its other cases show
    (e.g. a backward pass computed by numerical differentiation); `flag` names why, for the TA."""
    status = "flagged"

    def __init__(self, fn, message, flag):
        super().__init__(fn, message)
        self.flag = flag


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
    failures: list = field(default_factory=list, repr=False)   # StudentFailure signatures of its crashed cases

    def to_json(self):
        data = asdict(self)
        data.pop("failures")
        return data


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
            for name in exercise.weights if name in expected_out}


def excused(failure, exercise_id, ctx):
    """A crash inside an upstream graded function that already lost points for the same failure
    (same exception and message on one of its own hidden cases) is not charged again."""
    upstream = set(failure.error.get("functions", ())) - {exercise_id}
    return any(name in ctx.results and ctx.results[name].points < ctx.results[name].max_points
               and failure.signature in ctx.results[name].failures for name in upstream)


def first_of_each(failures):
    """[(case index, failure)] -> the first case of each distinct failure, in order."""
    seen = {}
    for k, failure in failures:
        seen.setdefault(failure.signature, (k, failure))
    return list(seen.values())


def label(case, k):
    return f"hidden case {k + 1}" + (f" ({case['label']})" if isinstance(case, dict) and case.get("label") else "")


def grade_exercise(exercise, ctx, cases, max_points, input_penalty):
    """Run the exercise's probe on every hidden case and judge it; credit is per case: an
    output earns its weight times the share of the cases it passed, and a crash or timeout on
    one case costs that case only."""
    ctx.student.log.clear()
    judged, failures, student_outs, explained = [], [], [], set()
    for k, case in enumerate(cases):
        try:
            student_out = exercise.probe(ctx.student, case)
        except Disqualified as flagged:
            return ExerciseResult(exercise.id, 0.0, max_points, "flagged", flagged.message, flags=[flagged.flag],
                                  cases=["flagged"] * len(cases))
        except StudentFailure as failure:
            judged.append(None)
            failures.append((k, failure))
            student_outs.append(None)
            continue
        except GraderError:
            raise
        expected_out = exercise.probe(ctx.reference, case)
        try:
            verdicts = (exercise.judge or default_judge)(ctx, exercise, case, student_out, expected_out)
        except GraderError:
            raise
        except Exception as exc:   # what came back was so malformed that judging it failed
            verdicts = {name: (False, f"could not be checked ({type(exc).__name__})") for name in exercise.weights}
        judged.append({name: (ok, "" if ok else f"{name} {message}" if name in explained
                              else failure_message(exercise, ctx, name, message, case, student_out, expected_out,
                                                   verdicts))
                       for name, (ok, message) in verdicts.items()})
        explained |= {name for name, (ok, _) in verdicts.items() if not ok}   # the first failure is the one shown
        student_outs.append(student_out)
    return score(exercise, ctx, cases, max_points, input_penalty, judged, failures, student_outs)


def score(exercise, ctx, cases, max_points, input_penalty, judged, failures, student_outs):
    """Per-case verdicts -> the ExerciseResult (points, parts, messages, diagnosis)."""
    passed_alone = any(v is not None and all(ok for ok, _ in v.values()) for v in judged)
    states = ["passed" if v is not None and all(ok for ok, _ in v.values()) else "failed" if v is not None
              else "crashed" for v in judged]
    charged = []
    for k, failure in failures:
        if passed_alone and excused(failure, exercise.id, ctx):
            states[k] = "excused"
        else:
            charged.append((k, failure))
    parts = []
    for name, weight in exercise.weights.items():
        outcomes = [v[name] for v in judged if v is not None and name in v]
        outcomes += [(False, "")] * len(charged)
        first_failure = next((message for ok, message in outcomes if not ok and message), "")
        credit = sum(ok for ok, _ in outcomes) / len(outcomes) if outcomes else 0.0
        parts.append(Part(name, weight, bool(outcomes) and credit == 1.0, first_failure, credit))
    fraction = sum(p.weight * p.credit for p in parts) / sum(p.weight for p in parts)
    modified = sorted({n for record in ctx.student.log if record.fn == exercise.id for n in record.modified})
    points = round(max_points * fraction * ((1 - input_penalty) if modified else 1.0), 4)
    signatures = {failure.signature for _, failure in charged}
    if charged and len(charged) == len(cases) and len(signatures) == 1:
        status, messages = charged[0][1].status, [charged[0][1].message]
    else:
        status = "passed" if points == max_points else ("partial" if points > 0 else "failed")
        messages = [f"on {label(cases[k], k)}: {failure.message}" for k, failure in first_of_each(charged)[:2]]
        messages += list(dict.fromkeys(p.message for p in parts if p.message))
    if modified:
        messages.append(f"modified its input(s) {', '.join(modified)}: a graded function must "
                        "leave its arguments unchanged (work on copies)")
    result = ExerciseResult(exercise.id, points, max_points, status, "; ".join(messages), parts,
                            modified_inputs=modified, cases=states,
                            failures=[failure.signature for _, failure in failures])
    if status not in ("passed",) and len(charged) < len(cases):
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
    """The first catalogued misconception whose outputs (and changed inputs) equal the student's
    on every case the student answered (cases marked `cost`, large ones that are there to time
    the student's code, are left out: they would only make diagnosing slow)."""
    rtol = ctx.tolerance["sigmoid_rtol"] if exercise.elementwise else ctx.rtol
    answered = [(case, out) for case, out in zip(cases, student_outs)
                if out is not None and not (isinstance(case, dict) and case.get("cost"))]
    for misconception, impl in ctx.misconception_impls:
        if exercise.id not in misconception.affects:
            continue
        impl.log.clear()
        try:
            outs = [exercise.probe(impl, case) for case, _ in answered]
        except Exception:   # a misconception may crash on inputs where the student's code did not
            continue
        changed = sorted({n for record in impl.log if record.fn == exercise.id for n in record.modified})
        if changed == modified and all(
                compare.values(s[name], m[name], rtol, exercise.elementwise)[0]
                for (_, s), m in zip(answered, outs) for name in exercise.weights if name in s and name in m):
            return {"name": misconception.name, "title": misconception.title,
                    "hint": misconception.hint, "section": misconception.section}
    return None
