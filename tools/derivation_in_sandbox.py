"""Derivation cases as the grader sees them: for each submission in a class folder, the wall time
of every backward call it made on a derivation case (in its sandbox, through the arena, with the
grader's stand-ins answering its upstream calls on the first attempt) against the reference's
time on the same inputs (best of three, in the grader's process: what the limit is built from).

    python benchmarks/bench_derivation_sandbox.py ROOT [STUDENT ...]

ROOT is laid out as `grade` expects (ROOT/<student>/<assignment>/<notebook>); e.g. the class that
tests/test_numerical_families.py builds. Grades in this process, one submission at a time; only
observes (wraps the grader's timing functions to record what they measured).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assignments.lstm import exercises   # noqa: E402
from autograder import config as configuration   # noqa: E402
from autograder.grade import Grader   # noqa: E402
from autograder.judging import exercise as judging   # noqa: E402

BACKWARD = ("lstm_step_backward", "lstm_backward")


def main(root, only):
    config = configuration.load("lstm")
    grader = Grader.prepare(config)
    reference_seconds, calls = {}, []
    time_case, timed_backward = judging.time_derivation_case, exercises.timed_backward

    def timing_reference(exercise, ctx, case):
        expected = time_case(exercise, ctx, case)
        reference_seconds[id(case)] = min(r.seconds for r in ctx.reference.log[-6:] if r.fn == exercise.id)
        return expected

    def timing_student(impl, case, fn, *args):
        try:
            return timed_backward(impl, case, fn, *args)
        finally:
            if impl.enforces_limits and case.get("derive") and impl.log and impl.log[-1].fn == fn:
                calls.append((fn, impl.log[-1].seconds, reference_seconds.get(id(case))))

    judging.time_derivation_case, exercises.timed_backward = timing_reference, timing_student
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        if only and folder.name not in only:
            continue
        calls.clear()
        result = grader.grade(folder.name, next(folder.glob(f"*/{config.notebook}")))
        points = {e["id"]: e["points"] for e in result["exercises"]}
        for fn in BACKWARD:
            seen = [(s, r) for f, s, r in calls if f == fn and r]
            if not seen:
                continue
            ratios = [s / r for s, r in seen]
            print(f"{folder.name:30s} {fn:19s} {points[fn]:4g} pts  {len(seen)} calls  "
                  f"{min(s for s, _ in seen) * 1e3:7.1f}-{max(s for s, _ in seen) * 1e3:7.1f} ms  "
                  f"reference {min(r for _, r in seen) * 1e3:5.2f}-{max(r for _, r in seen) * 1e3:5.2f} ms  "
                  f"{min(ratios):6.0f}-{max(ratios):6.0f}x", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], set(sys.argv[2:]))
