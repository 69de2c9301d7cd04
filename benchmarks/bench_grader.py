"""Grading speed: our grader against `nbgrader autograde` on the same 24 submissions, same run.

The submissions are the solution notebook (answer cells from the reference) with the `demo`
cells removed: nbgrader cannot skip cells, and training runs would measure the demos rather
than the graders. Both graders get the same notebooks and the same 2 cores.

Per-submission overhead = our wall time per submission with one job, minus the time the
functions themselves take on that student's hidden inputs (the reference, in process).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assignments.lstm.samples import solved
from autograder import config as configuration
from autograder.judging.exercise import Context, grade_exercise
from autograder.grade import Grader, find_submissions, grade_all, notebook_digest
from autograder.process.impl import LocalImpl
from autograder.samples import write_submission

REPO = Path(__file__).resolve().parent.parent
STUDENTS = 24


def without_demos(notebook):
    notebook["cells"] = [c for c in notebook["cells"] if "demo" not in c.get("metadata", {}).get("tags", [])]
    return notebook


def make_course(root, config):
    """A throwaway nbgrader course: config, source, release, gradebook, 24 submissions."""
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copytree(REPO / "source", root / "source")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["nbgrader", "generate_assignment", config.name, "--force"], cwd=root, env=env,
                   check=True, capture_output=True)
    notebook = without_demos(solved()(config))
    for k in range(STUDENTS):
        folder = write_submission(root / "submitted", f"s{k:02d}", config.name, config.notebook, notebook)
        shutil.copytree(config.release_dir, folder / config.name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(config.notebook))
    return env


def function_seconds(grader, student_id, notebook):
    """Time the reference takes on one student's hidden inputs: the 'student's own compute'."""
    config = grader.config
    names = config.parameter_names()
    reference = LocalImpl(vars(config.reference), names)
    ctx = Context(LocalImpl(vars(config.reference), names), reference, config.tolerance, config.limits)
    started = time.perf_counter()
    for exercise in config.exercises:
        grade_exercise(exercise, ctx, exercise.cases(grader.rng(student_id, exercise.id, notebook_digest(notebook))),
                       config.points[exercise.id], 0.5)
    return (time.perf_counter() - started) / 2   # the loop ran the reference twice per probe


def main():
    config = configuration.load("lstm")
    print("\n== Grading: python -m autograder vs nbgrader autograde (24 submissions, 2 cores) ==")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = make_course(root, config)
        submissions = find_submissions(root / "submitted", config.name, config.notebook)
        grader = Grader.prepare(config)

        started = time.perf_counter()
        results = grade_all(grader, submissions, jobs=2)
        ours = time.perf_counter() - started
        assert all(r["score"] == config.max_score for r in results), "the solution must earn full marks"

        started = time.perf_counter()
        done = subprocess.run(["nbgrader", "autograde", config.name, "--force"], cwd=root, env=env,
                              capture_output=True, text=True)
        theirs = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr[-2000:])

        started = time.perf_counter()
        grade_all(grader, submissions[:6], jobs=1)
        one = (time.perf_counter() - started) / 6
        compute = sum(function_seconds(grader, s, path) for s, path in submissions[:6]) / 6

    print(f"ours ({grader.sandbox}, 2 jobs)   : {ours:7.2f} s  ({ours / STUDENTS:.3f} s per submission)")
    print(f"nbgrader autograde        : {theirs:7.2f} s  ({theirs / STUDENTS:.3f} s per submission)"
          + ("" if done.returncode == 0 else "  [nbgrader FAILED, see above]"))
    print(f"ratio ours / nbgrader     : {ours / theirs:7.3f}   (goal <= 0.5)")
    print(f"per submission, 1 job     : {one:7.3f} s, of which the functions' own compute {compute:.3f} s")
    print(f"overhead per submission   : {one - compute:7.3f} s   (goal <= 0.3 s)")
    print(json.dumps({"ours_s": round(ours, 3), "nbgrader_s": round(theirs, 3), "ratio": round(ours / theirs, 3),
                      "overhead_s": round(one - compute, 3)}))


if __name__ == "__main__":
    main()
